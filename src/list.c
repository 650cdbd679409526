/*
 * list.c - L3: the list type: a GC object with an array of references in
 * the MEM domain, grown with CPython's formula, so that capacities (and
 * sys.getsizeof) follow python3's: 0, 4, 8, 16, 24, 32, 40, 52, 64, ...
 *
 *   | gc pre-header | refcnt | type | size | items* | allocated |
 *
 * Freed lists go on a free list of 80 (CPython's PyList_MAXFREELIST).
 *
 * Tracking follows CPython's rule for dicts, not its rule for lists: a
 * list is born untracked and is tracked from the first item it gets that
 * may be part of a cycle (om_list_append, om_list_extend, om_list_set:
 * the only ways in); a full collection untracks the reachable ones that
 * hold no such item (gc.c).  A list of numbers or strings, however long,
 * then costs the collector nothing (CPython visits every item of it at
 * every collection of its generation).
 *
 * Invariants:
 *   1. 0 <= size <= allocated; items is NULL iff allocated == 0.
 *   2. items[0 .. size-1] are references (not NULL).
 *   3. An untracked list holds no item that may be tracked.
 */
#include <errno.h>
#include <string.h>

#include "object.h"

/* The layout: om_list_object, in objmem.h (om_list_item reads it). */

static void list_dealloc(om_object *o);
static int list_traverse(om_object *o, om_visitproc visit, void *arg);
static int list_clear(om_object *o);
static size_t list_sizeof(const om_object *o);

static struct om_freelist list_freelist =
    OMI_FREELIST_INIT("list", 16 + sizeof(om_list_object), 80);

const struct om_type om_list_type = {
    .name = "list",
    .basic_size = sizeof(om_list_object),
    .flags = OM_TPFLAGS_GC,
    .dealloc = list_dealloc,
    .traverse = list_traverse,
    .clear = list_clear,
    .freelist = &list_freelist,
    .size_of = list_sizeof,
};

static om_list_object *as_list(const om_object *o)
{
    return (om_list_object *)(uintptr_t)o;
}

static size_t len(const om_list_object *l)
{
    return (size_t)l->head.size;
}

/* list.__sizeof__: the object and its slots, not the items. */
static size_t list_sizeof(const om_object *o)
{
    return sizeof(om_list_object) + as_list(o)->allocated *
                                        sizeof(om_object *);
}

static void list_dealloc(om_object *o)
{
    list_clear(o);
    om_object_free(o);
}

static int list_traverse(om_object *o, om_visitproc visit, void *arg)
{
    om_list_object *l = as_list(o);
    int rc;

    for (size_t i = 0; i < len(l); i++)
        if ((rc = visit(l->items[i], arg)) != 0)
            return rc;
    return 0;
}

static int list_clear(om_object *o)
{
    om_list_object *l = as_list(o);
    om_object **items = l->items;
    size_t n = len(l);

    l->items = NULL;
    l->head.size = 0;
    l->allocated = 0;
    for (size_t i = 0; i < n; i++) {
        omi_drop_prefetch(items, 1, i, n);
        om_decref(items[i]);
    }
    om_free(items);
    return 0;
}

/*
 * CPython's list_resize: keep the array while it is between half full
 * and full; else grow to newsize + newsize/8 + 6 rounded down to a
 * multiple of 4, or to newsize rounded up to 4 for a big jump.
 */
static int resize(om_list_object *l, size_t newsize)
{
    size_t want;
    om_object **items;

    if (l->allocated >= newsize && newsize >= l->allocated / 2) {
        l->head.size = (ptrdiff_t)newsize;
        return 0;
    }
    want = (newsize + (newsize >> 3) + 6) & ~(size_t)3;
    if (newsize - len(l) > want - newsize)
        want = (newsize + 3) & ~(size_t)3;
    if (newsize == 0)
        want = 0;
    items = om_realloc(l->items, want * sizeof(om_object *));
    if (!items && want)
        return -ENOMEM;
    l->items = want ? items : NULL;
    if (!want)
        om_free(items);
    l->allocated = want;
    l->head.size = (ptrdiff_t)newsize;
    return 0;
}

om_object *om_list_new(size_t n)
{
    om_object *o = om_new(&om_list_type);
    om_list_object *l;

    if (!o || n == 0)
        return o;
    l = as_list(o);
    l->items = om_malloc(n * sizeof(om_object *));
    if (!l->items || n > SIZE_MAX / sizeof(om_object *)) {
        om_decref(o);
        errno = ENOMEM;
        return NULL;
    }
    l->allocated = n;
    l->head.size = (ptrdiff_t)n;
    for (size_t i = 0; i < n; i++)
        l->items[i] = om_none();
    return o;
}

static bool is_list(const om_object *o);

size_t om_list_len(const om_object *l)
{
    return is_list(l) ? len(as_list(l)) : 0;
}

int om_list_clear(om_object *l)
{
    if (!is_list(l))
        return -EINVAL;
    return list_clear(l);
}

static bool is_list(const om_object *o)
{
    return o && o->type == &om_list_type;
}

int om_list_append(om_object *o, om_object *item)
{
    om_list_object *l = as_list(o);
    size_t n;

    if (!is_list(o) || !item)
        return -EINVAL;
    n = len(l);
    if (resize(l, n + 1) != 0)
        return -ENOMEM;
    om_incref(item);
    omi_gc_track_for(o, item);
    l->items[n] = item;
    return 0;
}

/* Borrowed pointers to the items of a tuple or a list, and their count. */
static om_object *const *items_of(const om_object *o, size_t *n)
{
    if (is_list(o)) {
        *n = len(as_list(o));
        return as_list(o)->items;
    }
    if (o && o->type == &om_tuple_type) {
        *n = om_tuple_len(o);
        return *n ? (om_object *const *)((const om_varobject *)o + 1) : NULL;
    }
    return NULL;
}

/* CPython 3.11's list_preallocate_exact: a list with no array yet that
 * extends by n gets n slots rounded up to even (so [1, 2, 3], which the
 * compiler builds by extending [], is 88 bytes, as in python3). */
static int preallocate(om_list_object *l, size_t n)
{
    size_t want = (n + 1) & ~(size_t)1;

    l->items = om_malloc(want * sizeof(om_object *));
    if (!l->items)
        return -ENOMEM;
    l->allocated = want;
    l->head.size = (ptrdiff_t)n;
    return 0;
}

/* CPython's list.extend of a sequence: one resize, then the items. */
int om_list_extend(om_object *o, const om_object *items)
{
    om_list_object *l = as_list(o);
    om_object *const *src;
    size_t n = 0, old;

    if (!is_list(o) || !(is_list(items) ||
                         (items && items->type == &om_tuple_type)))
        return -EINVAL;
    src = items_of(items, &n);
    if (n == 0)
        return 0;
    old = len(l);
    if ((l->items ? resize(l, old + n) : preallocate(l, n)) != 0)
        return -ENOMEM;
    if (items == o)
        src = l->items;                 /* l.extend(l): its array moved */
    for (size_t i = 0; i < n; i++) {
        om_incref(src[i]);
        omi_gc_track_for(o, src[i]);
        l->items[old + i] = src[i];
    }
    return 0;
}

om_object *om_list_get(const om_object *o, size_t i)
{
    if (!is_list(o) || i >= om_list_len(o)) {
        errno = EINVAL;
        return NULL;
    }
    return as_list(o)->items[i];
}

int om_list_set(om_object *o, size_t i, om_object *item)
{
    om_object *old;

    if (!is_list(o) || i >= om_list_len(o) || !item) {
        om_xdecref(item);
        return -EINVAL;
    }
    omi_gc_track_for(o, item);
    old = as_list(o)->items[i];
    as_list(o)->items[i] = item;
    om_decref(old);
    return 0;
}
