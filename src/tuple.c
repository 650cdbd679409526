/*
 * tuple.c - L3: the tuple type: a GC varobject of n references.
 *
 *   | gc pre-header | refcnt | type | size | item 0 | ... | item n-1 |
 *
 * The empty tuple is an immortal singleton.  Freed tuples of 1..20 items
 * go on a free list per length, up to 2000 each (CPython's
 * PyTuple_MAXSAVESIZE and PyTuple_MAXFREELIST).
 *
 * Tracking.  om_tuple_new's tuple is tracked from birth (its items come
 * later).  om_tuple_pack's is tracked only when an item may be tracked
 * (CPython 3.15's rule, gh-139389): a tuple of ints, strings and
 * untracked tuples can be in no cycle, and a tree of such tuples built
 * bottom-up is never seen by the collector at all (3.11 tracks it and
 * untracks it a level per collection, because a collection's survivors
 * come back in an order that puts parents before their children).
 * om_tuple_set tracks an untracked tuple that gets an item that may be.
 *
 * Invariants:
 *   1. A tuple's items are NULL only while it is being filled.
 *   2. There is one empty tuple.
 */
#include <errno.h>
#include <stddef.h>

#include "object.h"

#define MAX_SAVE 20
#define MAX_FREE 2000
#define TUPLE_BYTES(n) (16 + sizeof(om_varobject) + (n) * sizeof(void *))

struct tuple_object {
    om_varobject head;
    om_object *items[];
};

_Static_assert(offsetof(struct tuple_object, items) == sizeof(om_varobject),
               "the items follow the header, where om_tuple_item reads");

static void tuple_dealloc(om_object *o);
static int tuple_traverse(om_object *o, om_visitproc visit, void *arg);
static int tuple_clear(om_object *o);

const struct om_type om_tuple_type = {
    .name = "tuple",
    .basic_size = sizeof(om_varobject),
    .item_size = sizeof(om_object *),
    .flags = OM_TPFLAGS_GC,
    .dealloc = tuple_dealloc,
    .traverse = tuple_traverse,
    .clear = tuple_clear,
};

#define FL(n) OMI_FREELIST_INIT(#n "-sized tuple", TUPLE_BYTES(n), MAX_FREE)
static struct om_freelist freelists[MAX_SAVE + 1] = {
    FL(0), FL(1), FL(2), FL(3), FL(4), FL(5), FL(6), FL(7), FL(8), FL(9),
    FL(10), FL(11), FL(12), FL(13), FL(14), FL(15), FL(16), FL(17), FL(18),
    FL(19), FL(20),
};

static struct {
    uintptr_t gc[2];
    om_varobject head;
} empty = { { 0, 0 }, { { OM_IMMORTAL_REFCNT, &om_tuple_type }, 0 } };

/* The item count of t, a tuple. */
static size_t tuple_size(const om_object *t)
{
    return (size_t)((const om_varobject *)t)->size;
}

static struct om_freelist *freelist_for(size_t n)
{
    return n >= 1 && n <= MAX_SAVE ? &freelists[n] : NULL;
}

/* Drop the items of o, each slot NULL before its item goes (a decref
 * may run code that looks at o). */
OM_INLINE void drop_items(om_object *o)
{
    struct tuple_object *t = (struct tuple_object *)o;

    for (size_t i = 0; i < tuple_size(o); i++) {
        om_object *item = t->items[i];
        t->items[i] = NULL;
        om_xdecref(item);
    }
}

static void tuple_dealloc(om_object *o)
{
    struct om_freelist *fl = freelist_for(tuple_size(o));

    drop_items(o);
    if (!fl || !omi_object_release(o, &om_tuple_type, fl))
        omi_object_free_into(o, fl);
}

static int tuple_traverse(om_object *o, om_visitproc visit, void *arg)
{
    struct tuple_object *t = (struct tuple_object *)o;
    int rc;

    for (size_t i = 0; i < tuple_size(o); i++)
        if (t->items[i] && (rc = visit(t->items[i], arg)) != 0)
            return rc;
    return 0;
}

static int tuple_clear(om_object *o)
{
    drop_items(o);
    return 0;
}

/* A tuple of n >= 1 items, its items not set yet, untracked. */
OM_INLINE om_object *tuple_alloc(size_t n)
{
    struct om_freelist *fl = freelist_for(n);
    om_object *t;

    if (!fl || !(t = omi_object_reuse(&om_tuple_type, fl)))
        t = omi_object_new_unzeroed(&om_tuple_type, n, NULL); /* fl empty */
    else
        ((om_varobject *)t)->size = (ptrdiff_t)n;
    return t;
}

om_object *om_tuple_new(size_t n)
{
    om_object *t;

    if (n == 0)
        return &empty.head.base;
    if ((t = tuple_alloc(n)) != NULL) {
        for (size_t i = 0; i < n; i++)
            ((struct tuple_object *)t)->items[i] = NULL;   /* invariant 1 */
        omi_gc_link(t);                 /* items NULL: traversable */
    }
    return t;
}

om_object *om_tuple_pack(size_t n, ...)
{
    bool track = false, missing = false;
    om_object *t;
    va_list ap;

    if (n == 0)
        return &empty.head.base;
    if (!(t = tuple_alloc(n)))
        return NULL;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        om_object *item = va_arg(ap, om_object *);
        if (item) {
            om_incref(item);
            track = track || omi_gc_may_be_tracked(item);
        }
        missing = missing || !item;
        ((struct tuple_object *)t)->items[i] = item;
    }
    va_end(ap);
    if (unlikely(missing)) {            /* the items given go back */
        om_decref(t);
        errno = EINVAL;
        return NULL;
    }
    if (track)
        omi_gc_link(t);
    return t;
}

size_t om_tuple_len(const om_object *t)
{
    return t && t->type == &om_tuple_type ? tuple_size(t) : 0;
}

static bool in_range(const om_object *t, size_t i)
{
    return t && t->type == &om_tuple_type && i < tuple_size(t);
}

om_object *om_tuple_get(const om_object *t, size_t i)
{
    if (!in_range(t, i)) {
        errno = EINVAL;
        return NULL;
    }
    return ((const struct tuple_object *)t)->items[i];
}

int om_tuple_set(om_object *t, size_t i, om_object *item)
{
    om_object *old;

    if (!in_range(t, i)) {
        om_xdecref(item);
        return -EINVAL;
    }
    old = ((struct tuple_object *)t)->items[i];
    ((struct tuple_object *)t)->items[i] = item;
    if (item && omi_gc_may_be_tracked(item) && !omi_gc_may_be_tracked(t))
        omi_gc_link(t);
    om_xdecref(old);
    return 0;
}
