/*
 * object.h - L3: the object layer's internals: the GC pre-header and the
 * free lists.
 */
#ifndef OM_OBJECT_H
#define OM_OBJECT_H

#include <stdio.h>
#include <string.h>

#include "arena.h"

/*
 * CPython's PyGC_Head: two words in front of every object of a GC type.
 * The collector (a later layer) links tracked objects through them and
 * keeps its flags in the low bits of prev; this layer uses the FINALIZED
 * bit (PEP 442: a finalizer runs once) and, while an object waits in the
 * trashcan, next as the link of the deferred list.
 */
struct omi_gc_head {
    uintptr_t next;
    uintptr_t prev;
};

#define GC_PREV_FINALIZED ((uintptr_t)1)

/* The pre-header of o, an object of a GC type. */
OM_INLINE struct omi_gc_head *omi_object_gc_head(const om_object *o)
{
    return (struct omi_gc_head *)(uintptr_t)o - 1;
}

/* Bytes in front of an object of type t: the GC pre-header, and in
 * front of it the managed-dict word (class.c: the attribute dict, or the
 * values array tagged with its low bit, as CPython 3.12's
 * dict_or_values; 3.11 kept the two in two words). */
OM_INLINE size_t omi_object_presize(const struct om_type *t)
{
    return ((t->flags & OM_TPFLAGS_GC) ? sizeof(struct omi_gc_head) : 0) +
           ((t->flags & OM_TPFLAGS_MANAGED_DICT) ? sizeof(void *) : 0);
}

/* The managed-dict word of an object with a managed dict (a GC type). */
OM_INLINE uintptr_t *omi_object_managed(const om_object *o)
{
    return (uintptr_t *)(uintptr_t)o - 3;
}

/*
 * A free list: freed objects of one size, up to cap of them: the latest
 * one in `hot`, the others linked through their first word.  An object
 * made and dropped in a loop goes through `hot` alone: each push and pop
 * waits only on the other's store of hot, where the list made it wait
 * on the head, the object's link and len in turn.
 * Invariants (checked by omi_freelist_check):
 *   1. len == the length of the list, len + (hot != NULL) <= cap.
 *   2. Every registered list is on the registry once.
 */
struct om_freelist {
    const char *name;           /* "float", as in the stats report */
    size_t size;                /* bytes per object, pre-header included */
    size_t cap;                 /* most objects kept */
    size_t len;                 /* objects on the list (hot not counted) */
    void *head;                 /* first listed object's memory */
    void *hot;                  /* the latest kept, or NULL */
    bool registered;            /* on the registry */
    bool gc;                    /* holds objects of a GC type (set at the
                                   first push): a clear uncounts them */
    struct om_freelist *next;   /* registry link */
};

#define OMI_FREELIST_INIT(name, size, cap) \
    { name, size, cap, 0, NULL, NULL, false, false, NULL }

/* Objects kept in fl. */
OM_INLINE size_t omi_freelist_count(const struct om_freelist *fl)
{
    return fl->len + (fl->hot != NULL);
}

/* Put fl on the registry (the stats report, om_clear_freelists). */
void omi_freelist_register(struct om_freelist *fl);
/* The objects on every free list (om_live_objects). */
size_t omi_freelist_total(void);

/* omi_freelist_put for a list with room, not registered yet: registers
 * it, then puts (out of line: the inline put keeps no register). */
void omi_freelist_push_first(struct om_freelist *fl, void *mem, bool gc);

/* Take memory for one object from fl; NULL when it is empty. */
OM_INLINE void *omi_freelist_pop(struct om_freelist *fl)
{
    void *mem = fl->hot;

    if (likely(mem)) {
        fl->hot = NULL;
        return mem;
    }
    if (!(mem = fl->head))
        return NULL;
    fl->head = *(void **)mem;
    fl->len--;
    return mem;
}

/* Keep mem (an object's memory, size bytes; gc: of a GC type) in fl,
 * which has room. */
OM_INLINE void omi_freelist_put(struct om_freelist *fl, void *mem, bool gc)
{
    OM_ASSERT(omi_freelist_count(fl) < fl->cap);
    if (unlikely(!fl->registered)) {
        omi_freelist_push_first(fl, mem, gc);
        return;
    }
    if (likely(!fl->hot)) {
        fl->hot = mem;
        return;
    }
    *(void **)mem = fl->head;
    fl->head = mem;
    fl->len++;
}

/*
 * gc.c's state that the object layer's fast paths touch (gc.c explains
 * the lists): generation 0's list, its count, and threshold 0 as it
 * applies now (LONG_MAX while automatic collection is off: disabled,
 * threshold 0, or a collection under way).
 */
struct omi_gc_young {
    struct omi_gc_head head;
    long count;
    long threshold;
};
extern struct omi_gc_young omi_gc_young;

/* weakref.c, for om_dealloc and the collector. */
extern const struct om_type omi_weakref_type;
extern size_t omi_weakref_live;
void omi_weakref_clear_all(om_object *o);
void omi_weakref_clear(om_object *ref);
om_object *omi_weakref_first(om_object *o);
bool omi_weakref_has_callback(const om_object *ref);
void omi_weakref_call(om_object *ref);
int omi_weakref_check(om_object *ref);

/* gc.c: the automatic collection, when count passed threshold (and the
 * zeal collections); true when zeal makes this allocation fail first. */
bool omi_gc_collect_auto(void);
/* gc.c: a GC object of size bytes could not be allocated: true when the
 * emergency collection ran (and the allocator's caches went back), so
 * that the caller tries once more; false when automatic collection is
 * off (disabled, threshold 0, or a collection under way). */
bool omi_gc_emergency(size_t size);
int omi_gc_check(void);

/* Called by the object layer as CPython's allocator calls its collector:
 * before a GC object's memory comes from the OBJ domain (count it, maybe
 * collect; true: fail this allocation, for the emergency zeal) ... */
OM_INLINE bool omi_gc_on_alloc(void)
{
    if (unlikely(++omi_gc_young.count > omi_gc_young.threshold))
        return omi_gc_collect_auto();
    return false;
}

/* Track o (a GC object) in generation 0 (om_gc_track). */
OM_INLINE void omi_gc_link(om_object *o)
{
    struct omi_gc_head *g = omi_object_gc_head(o), *list = &omi_gc_young.head;
    struct omi_gc_head *last = (struct omi_gc_head *)(list->prev & ~(uintptr_t)3);

    g->prev = (g->prev & 3) | (uintptr_t)last;
    last->next = (uintptr_t)g;
    g->next = (uintptr_t)list;
    list->prev = (uintptr_t)g;
}

/* Untrack o (a GC object) when it is tracked (om_gc_untrack). */
OM_INLINE void omi_gc_unlink(om_object *o)
{
    struct omi_gc_head *g = omi_object_gc_head(o), *prev, *next;

    if (!g->next)
        return;
    prev = (struct omi_gc_head *)(g->prev & ~(uintptr_t)3);
    next = (struct omi_gc_head *)(g->next & ~(uintptr_t)1);  /* mark */
    prev->next = (uintptr_t)next;
    next->prev = (next->prev & 3) | (uintptr_t)prev;
    g->next = 0;
}

/* CPython's _PyObject_GC_MAY_BE_TRACKED: o may be part of a cycle (a
 * container; a tuple only while tracked). */
OM_INLINE bool omi_gc_may_be_tracked(const om_object *o)
{
    return (o->type->flags & OM_TPFLAGS_GC) &&
           (o->type != &om_tuple_type || omi_object_gc_head(o)->next != 0);
}

/* CPython's MAINTAIN_TRACKING, for the mutable containers (dicts and
 * lists): one that is not tracked is from the first item it gets that may
 * be part of a cycle. */
OM_INLINE void omi_gc_track_for(om_object *container, const om_object *item)
{
    if (!omi_object_gc_head(container)->next && omi_gc_may_be_tracked(item))
        omi_gc_link(container);
}

/* ... and when its memory goes back (uncount it).  An object that a
 * free list takes or gives is not counted either way, as CPython 3.11's
 * free lists (a tuple popped from one skips PyObject_GC_NewVar, one
 * pushed skips PyObject_GC_Del): a make-and-drop loop through a free
 * list touches no count. */
OM_INLINE void omi_gc_uncount(void)
{
    if (omi_gc_young.count > 0)
        omi_gc_young.count--;
}

/* object.c's counts of objects whose memory came from the OBJ domain
 * (made) and went back to it (freed); an object whose memory waits on a
 * free list is neither live nor freed (om_live_objects: made - freed -
 * the free lists' objects).  So the free-list paths touch no counter: a
 * loop of makes and drops of floats waited on the store and load of two
 * counters each turn (bench_objects floats: 3.0..3.3 -> 2.7..2.8 ns). */
extern size_t omi_object_made, omi_object_freed;

/* What a freed object's type field reads until its memory is reused. */
extern const struct om_type omi_freed_type;

/*
 * Dropping a long container's items (a list's, a dict's).  In a big
 * structure made long before it is freed, each item's header is a cache
 * miss, and so is the descriptor of the pool its memory goes back to; a
 * decref loop would wait on them one after another.  Step i of a loop
 * over the items (item j at items[j * stride], j < n) prefetches, for the
 * decref's write, item i + OMI_DROP_AHEAD and its pool's descriptor; step
 * 0 also items 1 to OMI_DROP_AHEAD - 1 and the descriptors of 0 to
 * OMI_DROP_AHEAD - 1 (item 0's own load follows at once: a prefetch
 * first only slowed it).  A container of OMI_DROP_AHEAD items or fewer
 * prefetches nothing: a 2-tuple made and dropped in a loop took 10.4 ->
 * 12.1 ns with its one prefetch, so tuples and instances do not call
 * this.  A NULL item is fine: a prefetch never faults.  docs/design.md,
 * section 7, has the figures.
 */
#define OMI_DROP_AHEAD 8

OM_INLINE void omi_drop_prefetch(om_object *const *items, size_t stride,
                                 size_t i, size_t n)
{
    if (n <= OMI_DROP_AHEAD)
        return;
    if (i == 0)
        for (size_t j = 0; j < OMI_DROP_AHEAD && j < n; j++) {
            if (j > 0)
                __builtin_prefetch(items[j * stride], 1);
            omi_arena_prefetch_pool(items[j * stride]);
        }
    if (i + OMI_DROP_AHEAD < n) {
        __builtin_prefetch(items[(i + OMI_DROP_AHEAD) * stride], 1);
        omi_arena_prefetch_pool(items[(i + OMI_DROP_AHEAD) * stride]);
    }
}

/* Every object's start: refcnt 1, type t. */
OM_INLINE void omi_object_born(om_object *o, const struct om_type *t)
{
    o->refcnt = 1;
    o->type = t;
}

/* Every object's end, before its memory goes to a free list or the
 * domain: untracked (a GC type's), its type the freed one (invariant 2
 * of object.c). */
OM_INLINE void omi_object_retire(om_object *o, const struct om_type *t)
{
    if (t->flags & OM_TPFLAGS_GC)
        omi_gc_unlink(o);
    o->type = &omi_freed_type;
}

/* The fast path of om_new for type t, whose objects are fl->size bytes:
 * an object from fl, refcnt 1, its pre-header zeroed and nothing else
 * (the caller sets every field); NULL when fl is empty. */
OM_INLINE om_object *omi_object_reuse(const struct om_type *t,
                                      struct om_freelist *fl)
{
    size_t pre = omi_object_presize(t);
    om_object *o;
    char *mem;

    if (!(mem = (char *)omi_freelist_pop(fl)))
        return NULL;
    memset(mem, 0, pre);
    o = (om_object *)(mem + pre);
    omi_object_born(o, t);
    return o;
}

/* The fast path of om_object_free for o, of type t, fl->size bytes: onto
 * fl; false (and nothing done) when fl is full. */
OM_INLINE bool omi_object_release(om_object *o, const struct om_type *t,
                                  struct om_freelist *fl)
{
    char *mem = (char *)o - omi_object_presize(t);

    if (omi_freelist_count(fl) >= fl->cap)
        return false;
    omi_object_retire(o, t);
    omi_freelist_put(fl, mem, t->flags & OM_TPFLAGS_GC);
    return true;
}

/* An object of type t, which has no pre-header, no free list and is not
 * collected, in size bytes from the OBJ domain, refcnt 1 and nothing
 * else set: the caller writes every other field (int's one-digit path). */
OM_INLINE om_object *omi_object_alloc_bare(const struct om_type *t,
                                           size_t size)
{
    om_object *o = (om_object *)om_obj_malloc(size);

    OM_ASSERT(omi_object_presize(t) == 0 && !t->freelist);
    if (o) {
        omi_object_born(o, t);
        omi_object_made++;
    }
    return o;
}

/* A retired object's memory mem (gc: of a GC type) goes back to the OBJ
 * domain: uncounted, counted as freed, freed. */
OM_INLINE void omi_object_memory_back(void *mem, bool gc)
{
    if (gc)
        omi_gc_uncount();
    OM_ASSERT(omi_object_made > omi_object_freed);
    omi_object_freed++;
    om_obj_free(mem);
}

/* The end of object o, of type t, whose memory mem goes back to the OBJ
 * domain (not to a free list): retired, then given back. */
OM_INLINE void omi_object_give_back(om_object *o, const struct om_type *t,
                                    void *mem)
{
    omi_object_retire(o, t);
    omi_object_memory_back(mem, t->flags & OM_TPFLAGS_GC);
}

/* om_object_free for such an object, of type t. */
OM_INLINE void omi_object_free_bare(om_object *o, const struct om_type *t)
{
    OM_ASSERT(o->type == t && omi_object_presize(t) == 0 && !t->freelist);
    omi_object_give_back(o, t, o);
}

/* om_new_var / om_object_free with a free list of the caller's choice
 * (tuples keep one per length). */
om_object *omi_object_new_from(const struct om_type *t, size_t nitems,
                               struct om_freelist *fl);
/* The same with only the pre-header zeroed: the caller sets the items
 * (tuples: 64 bytes zeroed and then written again cost a memset call). */
om_object *omi_object_new_unzeroed(const struct om_type *t, size_t nitems,
                                   struct om_freelist *fl);
void omi_object_free_into(om_object *o, struct om_freelist *fl);

/* An object of type t with extra bytes after basic_size (str). */
om_object *omi_object_new_extra(const struct om_type *t, size_t extra);

/* int.c: CPython 3.11's int.__sizeof__ (bool uses it too). */
size_t omi_int_sizeof(const om_object *o);

/* int.c and str.c: hash and equality for dict keys. */
size_t omi_int_hash(const om_object *o);
bool omi_int_equal(const om_object *a, const om_object *b);
size_t omi_str_hash(om_object *o);
bool omi_str_equal(const om_object *a, const om_object *b);

/* str.c: the bytes of str o's text (a NUL may be among them). */
size_t omi_str_nbytes(const om_object *o);

/* dict.c: verify one dict's table (its invariants 1 and 2). */
int omi_dict_check(const om_object *d);

/* dict.c: entries in insertion order (borrowed); *pos starts at 0. */
bool omi_dict_next(const om_object *d, size_t *pos, om_object **key,
                   om_object **value);

/* class.c: the name of a class object, or NULL for another object. */
const char *omi_class_name(const om_object *o);

/* class.c: bytes of instance o's attribute values, 0 when it has none:
 * what om_deep_sizeof counts beside om_sizeof. */
size_t omi_class_values_size(const om_object *o);

/* class.c: invariants 1 and 3-5 for o when o is an instance; else 0. */
int omi_class_check_instance(const om_object *o);

/* str.c: verify the intern table. */
int omi_str_check(void);

/* Verify every registered free list. */
int omi_freelist_check(void);

#endif /* OM_OBJECT_H */
