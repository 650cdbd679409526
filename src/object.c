/*
 * object.c - L3: objects: allocation with CPython's GC pre-header,
 * reference counting with immortal objects (PEP 683), deallocation with
 * PEP 442 finalizers and CPython's trashcan, the live-object count.
 *
 * Layout (a GC type; other types have no pre-header):
 *
 *   mem                     o = mem + 16
 *   | gc next | gc prev     | refcnt | type | (size) | the type's fields
 *   +------ 16 bytes -------+-- om_object --+
 *
 * Objects live in the OBJ domain, or on their type's free list.
 *
 * Deallocation (om_dealloc, when a refcnt reaches 0): the finalizer runs
 * first, once for a GC object (the FINALIZED bit), with the object alive
 * (refcnt 1) so that it may resurrect it; then the legacy tp_del the same
 * way; then the type's dealloc.  A dealloc drops the references the
 * object holds, which may deallocate more objects recursively: past
 * TRASH_DEPTH nested deallocs of GC objects (only containers nest; a
 * non-GC object's dealloc is a plain call), a GC object waits on a deferred list
 * (linked through its pre-header) instead, and the outermost dealloc
 * empties that list, so a chain of a million nested containers takes a
 * bounded stack (CPython's trashcan).
 *
 * Invariants:
 *   1. omi_object_made - omi_object_freed == the objects whose memory
 *      the OBJ domain gave (om_new, om_new_var, ...) and has not had
 *      back: the live objects and those on free lists.
 *   2. A freed object's type reads omi_freed_type until its memory is
 *      reused, so that debug builds catch a refcount change on it.
 */
#include <errno.h>
#include <string.h>

#include "object.h"

#define TRASH_DEPTH 50

size_t omi_object_made, omi_object_freed;       /* invariant 1 */
static unsigned depth;                  /* nested deallocs now */
static om_object *deferred;             /* the trashcan */

/* What a freed object's type field reads (invariant 2). */
const struct om_type omi_freed_type = { .name = "<freed object>" };

size_t om_live_objects(void)
{
    return omi_object_made - omi_object_freed - omi_freelist_total();
}

/* ---- Allocation ---- */

/* A GC object's memory that its first allocation did not get (or that
 * the emergency zeal kept from it): once more, after the emergency
 * collection where automatic collection is on; else NULL with errno =
 * ENOMEM, and the object uncounted.  After a failed first attempt that
 * the emergency rescued, errno reads ENOMEM (objmem.h, section 7). */
static OM_NOINLINE char *after_emergency(const struct om_type *t,
                                         size_t size, bool zero)
{
    char *mem;

    if (!(t->flags & OM_TPFLAGS_GC))
        return NULL;
    (void)omi_gc_emergency(size);
    mem = zero ? om_obj_calloc(1, size) : om_obj_malloc(size);
    if (!mem)
        omi_gc_uncount();
    return mem;
}

/* An object of type t with extra bytes after basic_size, from fl when fl
 * holds objects of that size: zeroed, or with zero false only its
 * pre-header (the caller sets every field after the header). */
OM_INLINE om_object *alloc_object(const struct om_type *t, size_t extra,
                                  struct om_freelist *fl, bool zero)
{
    size_t pre = omi_object_presize(t), size;
    char *mem = NULL;
    om_object *o;

    if (__builtin_add_overflow(extra, t->basic_size + pre, &size)) {
        errno = ENOMEM;
        return NULL;
    }
    if (unlikely(t->flags & OM_TPFLAGS_PLAIN) &&
        ((t->flags & OM_TPFLAGS_GC) || t->finalize || t->legacy_del ||
         t->weaklist_offset)) {
        errno = EINVAL;                 /* a broken promise */
        return NULL;
    }
    if (fl && size == fl->size && (mem = omi_freelist_pop(fl))) {
        memset(mem, 0, zero ? size : pre);
    } else {
        bool fail = (t->flags & OM_TPFLAGS_GC) && omi_gc_on_alloc();

        if (likely(!fail))              /* omi_gc_on_alloc may collect */
            mem = zero ? om_obj_calloc(1, size) : om_obj_malloc(size);
        if (unlikely(!mem) && (mem = after_emergency(t, size, zero)) == NULL)
            return NULL;
        if (!zero)
            memset(mem, 0, pre);
        omi_object_made++;
    }
    o = (om_object *)(mem + pre);
    omi_object_born(o, t);
    return o;
}

OM_INLINE om_object *new_items(const struct om_type *t, size_t nitems,
                               struct om_freelist *fl, bool zero)
{
    size_t extra;
    om_object *o;

    if (__builtin_mul_overflow(nitems, t->item_size, &extra)) {
        errno = ENOMEM;
        return NULL;
    }
    o = alloc_object(t, extra, fl, zero);
    if (o && t->item_size)
        ((om_varobject *)o)->size = (ptrdiff_t)nitems;
    return o;
}

om_object *omi_object_new_from(const struct om_type *t, size_t nitems,
                               struct om_freelist *fl)
{
    return new_items(t, nitems, fl, true);
}

om_object *omi_object_new_unzeroed(const struct om_type *t, size_t nitems,
                                   struct om_freelist *fl)
{
    return new_items(t, nitems, fl, false);
}

om_object *omi_object_new_extra(const struct om_type *t, size_t extra)
{
    return alloc_object(t, extra, NULL, true);
}

om_object *om_new(const struct om_type *t)
{
    return om_new_var(t, 0);
}

om_object *om_new_var(const struct om_type *t, size_t nitems)
{
    if (!t) {
        errno = EINVAL;
        return NULL;
    }
    return omi_object_new_from(t, nitems, t->freelist);
}

/* The item count of o (an int keeps its sign in the size). */
static size_t item_count(const om_object *o)
{
    ptrdiff_t n = ((const om_varobject *)o)->size;

    return (size_t)(n < 0 ? -n : n);
}

size_t om_sizeof(const om_object *o)
{
    const struct om_type *t;
    size_t items;

    if (!o)
        return 0;
    t = o->type;
    items = t->item_size ? item_count(o) * t->item_size : 0;

    if (t->size_of)
        return omi_object_presize(t) + t->size_of(o);
    return omi_object_presize(t) + t->basic_size + items;
}

void omi_object_free_into(om_object *o, struct om_freelist *fl)
{
    const struct om_type *t = o->type;
    char *mem = (char *)o - omi_object_presize(t);
    size_t size = omi_object_presize(t) + t->basic_size +
                  (t->item_size ? item_count(o) * t->item_size : 0);

    if (fl && size == fl->size && omi_object_release(o, t, fl))
        return;
    omi_object_give_back(o, t, mem);
}

void om_object_free(om_object *o)
{
    omi_object_free_into(o, o->type->freelist);
}

/* ---- Deallocation ---- */

static bool is_gc(const om_object *o)
{
    return (o->type->flags & OM_TPFLAGS_GC) != 0;
}

/*
 * Run slot (finalize or legacy_del) on o, whose refcnt reached 0, with o
 * alive meanwhile.  True when o came back to life (the slot kept a
 * reference to it).
 */
static bool run_finalizer(om_object *o, void (*slot)(om_object *))
{
    o->refcnt = 1;
    slot(o);
    return --o->refcnt != 0;
}

/* PEP 442: the finalizer of a GC object runs once in its life.  Then the
 * weak references to o are cleared and their callbacks run (weakref.c),
 * then the legacy tp_del, as CPython's subtype_dealloc orders them. */
static bool finalize(om_object *o)
{
    const struct om_type *t = o->type;

    if (t->finalize && !(is_gc(o) &&
                         (omi_object_gc_head(o)->prev & GC_PREV_FINALIZED))) {
        if (is_gc(o))
            omi_object_gc_head(o)->prev |= GC_PREV_FINALIZED;
        if (run_finalizer(o, t->finalize))
            return true;
    }
    if (t->weaklist_offset &&
        *(void **)((char *)o + t->weaklist_offset)) {
        o->refcnt = 1;                  /* alive for the callbacks */
        omi_weakref_clear_all(o);
        if (--o->refcnt != 0)
            return true;
    }
    return t->legacy_del && run_finalizer(o, t->legacy_del);
}

/* Deallocate the objects that waited in the trashcan. */
static void empty_trashcan(void)
{
    while (deferred) {
        om_object *o = deferred;
        deferred = (om_object *)omi_object_gc_head(o)->next;
        omi_object_gc_head(o)->next = 0;
        depth++;
        o->type->dealloc(o);
        depth--;
    }
}

/* A GC object's dealloc: unlinked from its generation, and deferred to
 * the trashcan past TRASH_DEPTH nested deallocs. */
static OM_NOINLINE void dealloc_gc(om_object *o)
{
    omi_gc_unlink(o);                   /* before next links the trashcan */
    if (depth >= TRASH_DEPTH) {
        omi_object_gc_head(o)->next = (uintptr_t)deferred;
        deferred = o;
        return;
    }
    depth++;
    o->type->dealloc(o);
    depth--;
    if (depth == 0)
        empty_trashcan();
}

static OM_NOINLINE void dealloc_finalizing(om_object *o)
{
    if (finalize(o))
        return;                         /* resurrected */
    if (is_gc(o))
        dealloc_gc(o);
    else
        o->type->dealloc(o);
}

/*
 * The common case (no finalizer, no legacy_del, no weak references) is
 * one test of the three slots ORed, then a tail call; GC objects count in
 * the trashcan's depth, others do not.  The slots were tested one by one,
 * with the GC path in the same function: a float made and dropped took
 * 3.7 ns, 3.0 then (bench_objects floats, A/B).  om_decref skips this
 * function for an OM_TPFLAGS_PLAIN type (it would end in t->dealloc),
 * which saves a call and the three loads: 2.55 -> 2.3 ns a float.
 */
void om_dealloc(om_object *o)
{
    const struct om_type *t = o->type;

    OM_ASSERT(o->refcnt == 0);
    if (unlikely(((uintptr_t)t->finalize | (uintptr_t)t->legacy_del |
                  t->weaklist_offset) != 0))
        dealloc_finalizing(o);
    else if (t->flags & OM_TPFLAGS_GC)
        dealloc_gc(o);
    else
        t->dealloc(o);
}

/* ---- Immortality and checks ---- */

void om_set_immortal(om_object *o)
{
    o->refcnt = OM_IMMORTAL_REFCNT;
}

void om_refcnt_check(const om_object *o, int delta)
{
    if (unlikely(o->type == &omi_freed_type))
        omi_fatal(delta > 0 ? "incref of a freed object" :
                              "decref of a freed object", o,
                  "the object was deallocated before");
    if (unlikely(!om_is_immortal(o) && o->refcnt + delta < 0))
        omi_fatal("decref below zero", o, "object of type %s, refcnt %ld",
                  o->type->name, (long)o->refcnt);
}
