/*
 * gc.c - the cycle collector: CPython's generational collector (3.11 to
 * 3.13, and 3.14.5 again) over the objects of GC types.
 *
 * Data layout: a tracked object is on one of four circular doubly linked
 * lists through its GC pre-header (object.h): generations 0, 1, 2 and the
 * permanent generation (om_gc_freeze).  Each list has a sentinel head.
 *
 *   head.next -> obj.next -> ... -> head      (next: a plain address)
 *   head.prev <- obj.prev <- ...              (prev: address | flags)
 *
 * prev's two low bits are flags: FINALIZED (PEP 442, object.h) and
 * COLLECTING (in the generation being collected).  While a collection
 * computes reachability, prev holds the object's gc_refs shifted left by
 * two instead of an address, and next's low bit marks the tentatively
 * UNREACHABLE; both are plain again before any user code runs (a
 * finalizer, a clear, a callback).  An object is tracked <=> next != 0.
 *
 * A collection of generation g (CPython's steps): merge the younger
 * generations into g; gc_refs = refcnt; subtract the references from
 * inside g; what keeps gc_refs > 0 is reachable from outside, and so is
 * what it reaches; the rest is unreachable.  Reachable tuples of atomic
 * items are untracked; the survivors move to g + 1.  Of the unreachable,
 * those with a legacy_del and what they reach are uncollectable (the
 * garbage list); the others get their finalizers, once each; the ones a
 * finalizer resurrected survive (with what they reach); the rest are
 * cleared, which breaks the cycles so reference counting frees them.
 *
 * Counting: generation 0's count is GC allocations minus deallocations
 * since its last collection, of memory from and back to the OBJ domain
 * (an object a free list takes or gives is neither, as in CPython 3.11);
 * a generation's count is collections of the one below since its own.
 * A GC allocation collects when count 0 passes threshold 0: the oldest
 * generation whose count passed its threshold, the oldest only when its
 * pending survivors are 25% of its size, both measured in work (objects
 * plus the references they hold: what a collection visits), not in
 * objects as CPython's: a list of a million numbers is one object there,
 * and a million visits.
 *
 * The object layer calls in as CPython's object allocator does:
 * omi_gc_on_alloc (count, maybe collect), omi_gc_unlink (untrack, at
 * every GC object's end) and omi_gc_uncount (its memory gone back); and
 * omi_gc_emergency when a GC object's memory could not be had (a full
 * collection before its one retry).  Zeal (om_gc_set_zeal) sends every
 * GC allocation down the slow path, which counts them to force its
 * collections, or answers "fail" to send each through the emergency.
 *
 * Invariants (checked by omi_gc_check, which also checks weakref.1-2 on
 * every ref, class.1, 3-5 on every instance and dict.1-2 on every
 * tracked dict, all of them being tracked objects):
 *   1. Outside a collection, every list is a well-formed circular list:
 *      x.next.prev == x, every member is tracked, no member has
 *      COLLECTING or UNREACHABLE set.
 *   2. Every member of a list is an object of a GC type with refcnt > 0.
 *   3. An untracked dict or list that a tracked object holds holds no
 *      item that may be tracked (the rule that lets them leave the lists:
 *      dict.c, list.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "object.h"
#include "options.h"
#include "probe.h"

#define NGENS 3
#define PREV_COLLECTING ((uintptr_t)2)
#define PREV_FLAGS (GC_PREV_FINALIZED | PREV_COLLECTING)
#define NEXT_UNREACHABLE ((uintptr_t)1)
#define REFS_SHIFT 2
#define MAX_CALLBACKS 32
#define INC_ROUND_SLICES 4000       /* increments per round: 0.025% each */
#define INC_MIN_SLICE 1024          /* old objects per increment, at least */
#define INC_FULL_MIN 100000         /* no fallback full collection below */
#define INC_HUGE_BYTES (64 * 1024)  /* containers increments leave alone */

typedef struct omi_gc_head gc_head;

struct generation {
    gc_head head;               /* generation 0's: omi_gc_young's */
    int threshold;
    long count;                 /* generation 0's: omi_gc_young's */
};

static struct {
    bool ready;
    bool enabled;
    bool collecting;
    enum om_gc_zeal zeal;           /* om_gc_set_zeal, OBJMEM_GC_TORTURE */
    long zeal_every;                /* GC allocations between its
                                       collections (young, full) */
    long zeal_count;                /* ... since the last one */
    size_t emergencies;             /* om_gc_get_emergency_count */
    unsigned debug;
    struct generation gens[NGENS];
    gc_head permanent;
    size_t long_lived_total;        /* work (objects + their references)
                                       of the survivors of the last full
                                       collection */
    size_t long_lived_pending;      /* ... of those moved into generation
                                       2 since */
    bool incremental;               /* om_gc_set_incremental */
    size_t old_size;                /* generation 2's size, kept up to date
                                       by collections (deaths by refcount
                                       are not seen: an upper bound) */
    size_t old_full_size;           /* its size after the last full one */
    size_t round_left;              /* old objects this round has still to
                                       scan (incremental mode) */
    size_t promoted;                /* survivors the last generation 1
                                       collection made old */
    struct om_gc_stats stats[NGENS];
    struct { om_gc_callback cb; void *ctx; } callbacks[MAX_CALLBACKS];
    int ncallbacks;
    om_object *garbage;             /* gc.garbage, made on first use */
} gc = {
    .enabled = true,
    .gens = { { .threshold = 700 }, { .threshold = 10 }, { .threshold = 10 } },
};

struct omi_gc_young omi_gc_young = {
    { (uintptr_t)&omi_gc_young.head, (uintptr_t)&omi_gc_young.head }, 0, 700
};

static gc_head *gen_head(int i)
{
    return i == 0 ? &omi_gc_young.head : &gc.gens[i].head;
}

static long *gen_count(int i)
{
    return i == 0 ? &omi_gc_young.count : &gc.gens[i].count;
}

/* Automatic collection is on when enabled, threshold 0 > 0, and no
 * collection is under way; the emergency collection only then. */
static bool auto_on(void)
{
    return gc.enabled && !gc.collecting && gc.gens[0].threshold > 0;
}

/* What omi_gc_on_alloc compares with: threshold 0 while automatic
 * collection is on, LONG_MAX while it is off; 0 (every GC allocation
 * takes the slow path) while zeal is on, which works with threshold 0
 * too, not while disabled or collecting. */
static void update_auto(void)
{
    bool zeal = gc.zeal != OM_GC_ZEAL_OFF;

    omi_gc_young.threshold =
        !gc.enabled || gc.collecting ? LONG_MAX :
        zeal ? 0 : gc.gens[0].threshold > 0 ? gc.gens[0].threshold :
        LONG_MAX;
}

int om_gc_set_zeal(enum om_gc_zeal mode, long every)
{
    if ((unsigned)mode > OM_GC_ZEAL_EMERGENCY ||
        (mode != OM_GC_ZEAL_OFF && mode != OM_GC_ZEAL_EMERGENCY &&
         every < 1))
        return -EINVAL;
    gc.zeal = mode;
    gc.zeal_every = mode == OM_GC_ZEAL_YOUNG || mode == OM_GC_ZEAL_FULL ?
                    every : 0;
    gc.zeal_count = 0;
    update_auto();
    return 0;
}

enum om_gc_zeal om_gc_get_zeal(long *every)
{
    if (every)
        *every = gc.zeal_every;
    return gc.zeal;
}

size_t om_gc_get_emergency_count(void)
{
    return gc.emergencies;
}

/* OBJMEM_GC_TORTURE (options.c has checked its form): 1 or young:N,
 * full:N, emergency; 0 or unset: off. */
__attribute__((constructor)) static void gc_zeal_from_env(void)
{
    const char *v;
    long every = 1;

    omi_options_load();
    v = omi_option_str(OMI_OPT_GC_TORTURE);
    if (strncmp(v, "young:", 6) == 0 || strncmp(v, "full:", 5) == 0)
        every = strtol(strchr(v, ':') + 1, NULL, 10);
    (void)om_gc_set_zeal(strcmp(v, "1") == 0 ? OM_GC_ZEAL_YOUNG :
                         v[0] == 'y' ? OM_GC_ZEAL_YOUNG :
                         v[0] == 'f' ? OM_GC_ZEAL_FULL :
                         v[0] == 'e' ? OM_GC_ZEAL_EMERGENCY :
                         OM_GC_ZEAL_OFF, every);
}

/* ---- Lists ---- */

static gc_head *gc_next(const gc_head *g)
{
    return (gc_head *)(g->next & ~NEXT_UNREACHABLE);
}

static gc_head *gc_prev(const gc_head *g)
{
    return (gc_head *)(g->prev & ~PREV_FLAGS);
}

static void set_prev(gc_head *g, gc_head *prev)
{
    g->prev = (g->prev & PREV_FLAGS) | (uintptr_t)prev;
}

static void list_init(gc_head *list)
{
    list->next = (uintptr_t)list;
    list->prev = (uintptr_t)list;
}

static bool list_is_empty(const gc_head *list)
{
    return list->next == (uintptr_t)list;
}

static void list_append(gc_head *node, gc_head *list)
{
    gc_head *last = gc_prev(list);

    set_prev(node, last);
    last->next = (uintptr_t)node;
    node->next = (uintptr_t)list;
    list->prev = (uintptr_t)node;
}

static void list_remove(gc_head *node)
{
    gc_head *prev = gc_prev(node), *next = gc_next(node);

    prev->next = (uintptr_t)next;
    set_prev(next, prev);
    node->next = 0;
}

static void list_move(gc_head *node, gc_head *list)
{
    list_remove(node);
    list_append(node, list);
}

/* Move all of from to the end of to; from ends empty. */
static void list_merge(gc_head *from, gc_head *to)
{
    if (!list_is_empty(from)) {
        gc_head *to_last = gc_prev(to), *first = gc_next(from),
                *last = gc_prev(from);
        to_last->next = (uintptr_t)first;
        set_prev(first, to_last);
        last->next = (uintptr_t)to;
        to->prev = (uintptr_t)last;
    }
    list_init(from);
}

static size_t list_size(const gc_head *list)
{
    size_t n = 0;

    for (gc_head *g = gc_next(list); g != list; g = gc_next(g))
        n++;
    return n;
}

static om_object *object_of(gc_head *g)
{
    return (om_object *)(g + 1);
}

static void init(void)
{
    for (int i = 1; i < NGENS; i++)
        list_init(gen_head(i));
    list_init(&gc.permanent);
    gc.ready = true;
}

static inline void ready(void)
{
    if (unlikely(!gc.ready))
        init();
}

/* ---- Tracking ---- */

static bool is_gc(const om_object *o)
{
    return (o->type->flags & OM_TPFLAGS_GC) != 0;
}

void om_gc_track(om_object *o)
{
    if (o && is_gc(o) && omi_object_gc_head(o)->next == 0)
        omi_gc_link(o);
}

void om_gc_untrack(om_object *o)
{
    if (o && is_gc(o))
        omi_gc_unlink(o);
}

bool om_gc_is_tracked(const om_object *o)
{
    return o && is_gc(o) && omi_object_gc_head(o)->next != 0;
}

bool om_gc_is_finalized(const om_object *o)
{
    return o && is_gc(o) &&
           (omi_object_gc_head(o)->prev & GC_PREV_FINALIZED) != 0;
}

/* ---- Reachability (no user code runs in here) ---- */

static size_t get_refs(const gc_head *g)
{
    return (size_t)(g->prev >> REFS_SHIFT);
}

static void set_refs(gc_head *g, size_t refs)
{
    g->prev = (g->prev & PREV_FLAGS) | ((uintptr_t)refs << REFS_SHIFT);
}

/* Is o in the set being collected (a GC object, COLLECTING)? */
static gc_head *collecting_head(om_object *o)
{
    gc_head *g;

    if (!o || !is_gc(o))
        return NULL;
    g = omi_object_gc_head(o);
    return (g->next != 0 && (g->prev & PREV_COLLECTING)) ? g : NULL;
}

/* gc_refs = refcnt, COLLECTING set, for every object of list. */
static void update_refs(gc_head *list)
{
    for (gc_head *g = gc_next(list); g != list; g = gc_next(g)) {
        om_object *o = object_of(g);
        /* an immortal object is always reachable */
        size_t refs = om_is_immortal(o) ? ((size_t)1 << 40)
                                         : (size_t)o->refcnt;
        OM_ASSERT(o->refcnt > 0);
        g->prev |= PREV_COLLECTING;
        set_refs(g, refs);
    }
}

static int visit_decref(om_object *child, void *arg)
{
    gc_head *g = collecting_head(child);

    if (g && get_refs(g) > 0)
        set_refs(g, get_refs(g) - 1);
    return 0;
}

/* Subtract the references from inside list: what is left comes from
 * outside. */
static void subtract_refs(gc_head *list)
{
    for (gc_head *g = gc_next(list); g != list; g = gc_next(g)) {
        om_object *o = object_of(g);
        if (o->type->traverse)
            o->type->traverse(o, visit_decref, NULL);
    }
}

/* What move_unreachable learns on its way, so that the passes that would
 * have nothing to do are skipped. */
struct scan {
    size_t left;                /* objects in unreachable */
    size_t kept;                /* objects left in young, still tracked */
    size_t refs;                /* references the kept hold (visited) */
    bool special;               /* some may have a finalizer to run or a
                                   legacy_del (conservative) */
    bool finalizers;            /* some may have a finalizer to run */
    bool untrack;               /* untrack the reachable atomic tuples */
    bool untrack_mutable;       /* ... and dicts and lists (a full
                                   collection) */
};

struct reach {
    gc_head *reachable;
    struct scan *scan;
};

static int visit_reachable(om_object *child, void *arg)
{
    struct reach *r = arg;
    gc_head *reachable = r->reachable, *g = collecting_head(child);

    r->scan->refs++;
    if (!g)
        return 0;
    if (g->next & NEXT_UNREACHABLE) {
        /* Tentatively unreachable: unlink it from that list (whose prev
         * links are addresses) and put it back at the end of reachable,
         * to be scanned in turn. */
        gc_head *prev = gc_prev(g), *next = gc_next(g);
        prev->next = g->next;           /* keeps the UNREACHABLE bit */
        set_prev(next, prev);
        list_append(g, reachable);
        set_refs(g, 1);
        r->scan->left--;
    } else if (get_refs(g) == 0) {
        set_refs(g, 1);                 /* ahead in reachable: scanned */
    }
    return 0;
}

static int visit_may_be_tracked(om_object *child, void *arg)
{
    return omi_gc_may_be_tracked(child) ? 1 : 0;
}

/* CPython's rule: a tuple whose items are all set and none may be
 * tracked cannot be in a cycle (only its creator fills it, NULL items
 * first). */
static bool tuple_is_atomic(const om_object *t)
{
    for (size_t i = 0; i < om_tuple_len(t); i++) {
        om_object *item = om_tuple_get(t, i);
        if (!item || omi_gc_may_be_tracked(item))
            return false;
    }
    return true;
}

/* May o leave the lists if it holds nothing that may be tracked, by
 * CPython's rules (scan->untrack: tuples; scan->untrack_mutable: dicts,
 * and lists by the same rule (list.c), only in a full collection, as
 * CPython's dicts: one being built would otherwise be checked again and
 * again)? */
static inline bool may_untrack(const om_object *o, const struct scan *scan)
{
    const struct om_type *t = o->type;

    return scan->untrack &&
           (t == &om_tuple_type ||
            (scan->untrack_mutable &&
             (t == &om_dict_type || t == &om_list_type)));
}

/* Does o, a container may_untrack accepted, hold nothing that may be
 * tracked? */
static OM_NOINLINE bool is_atomic_container(om_object *o)
{
    if (o->type == &om_tuple_type)
        return tuple_is_atomic(o);
    return o->type->traverse(o, visit_may_be_tracked, NULL) == 0;
}

/*
 * Split young after update_refs and subtract_refs: objects with gc_refs
 * > 0, and all they reach, stay (COLLECTING cleared, prev links
 * restored); the rest move to unreachable (COLLECTING still set).  young
 * is walked forward only, since its prev fields hold gc_refs.  With
 * scan->untrack, a reachable atomic container is untracked on the way
 * (its next cleared, left out of the list), and scan->kept counts what
 * stays: two walks of the list fewer than passes of their own (bench_gc
 * full_1e6: 16.9 -> 12.3 ns an object).
 */
static void move_unreachable(gc_head *young, gc_head *unreachable,
                             struct scan *scan)
{
    gc_head *prev = young, *g = gc_next(young);
    struct reach reach = { young, scan };

    while (g != young) {
        om_object *o = object_of(g);
        if (get_refs(g) > 0) {
            if (may_untrack(o, scan) && is_atomic_container(o)) {
                /* reaches no tracked object: nothing to traverse */
                prev->next = g->next;
                g->next = 0;
                g->prev &= GC_PREV_FINALIZED;
                g = gc_next(prev);
                continue;
            }
            if (o->type->traverse)
                o->type->traverse(o, visit_reachable, &reach);
            set_prev(g, prev);
            g->prev &= ~PREV_COLLECTING;
            prev = g;
            scan->kept++;
        } else {
            gc_head *last = gc_prev(unreachable);
            prev->next = g->next;
            last->next = (uintptr_t)g | NEXT_UNREACHABLE;
            set_prev(g, last);
            g->next = (uintptr_t)unreachable | NEXT_UNREACHABLE;
            unreachable->prev = (uintptr_t)g;
            scan->left++;
            if (o->type->finalize && !(g->prev & GC_PREV_FINALIZED))
                scan->special = scan->finalizers = true;
            if (o->type->legacy_del)
                scan->special = true;
        }
        g = gc_next(prev);
    }
    young->prev = (uintptr_t)prev;
    unreachable->next &= ~NEXT_UNREACHABLE;
}

static void deduce_unreachable(gc_head *young, gc_head *unreachable,
                               struct scan *scan)
{
    list_init(unreachable);
    update_refs(young);
    subtract_refs(young);
    move_unreachable(young, unreachable, scan);
}

/* Clear the UNREACHABLE marks of a list move_unreachable made. */
static void clear_unreachable_marks(gc_head *list)
{
    for (gc_head *g = gc_next(list); g != list; g = gc_next(g))
        g->next &= ~NEXT_UNREACHABLE;
}

/* Clear COLLECTING, and the UNREACHABLE marks a skipped pass left. */
static void clear_collecting(gc_head *list)
{
    for (gc_head *g = gc_next(list); g != list; g = gc_next(g)) {
        g->prev &= ~PREV_COLLECTING;
        g->next &= ~NEXT_UNREACHABLE;
    }
}

/* ---- Finalizers and garbage ---- */

static bool has_legacy_del(const om_object *o)
{
    return o->type->legacy_del != NULL;
}

/* Move the objects with a legacy_del from unreachable to finalizers;
 * clear every UNREACHABLE mark on the way. */
static void move_legacy_finalizers(gc_head *unreachable, gc_head *finalizers,
                                   struct scan *scan)
{
    gc_head *next;

    for (gc_head *g = gc_next(unreachable); g != unreachable; g = next) {
        g->next &= ~NEXT_UNREACHABLE;
        next = gc_next(g);
        if (has_legacy_del(object_of(g))) {
            g->prev &= ~PREV_COLLECTING;
            list_move(g, finalizers);
            scan->left--;
        }
    }
}

struct move_to {
    gc_head *list;
    size_t moved;
};

static int visit_move(om_object *child, void *arg)
{
    struct move_to *to = arg;
    gc_head *g = collecting_head(child);

    if (g) {
        g->prev &= ~PREV_COLLECTING;
        list_move(g, to->list);
        to->moved++;
    }
    return 0;
}

/* What the legacy-finalizer objects reach is uncollectable too: those
 * objects leave unreachable (scan->left counts them out). */
static void move_legacy_finalizer_reachable(gc_head *finalizers,
                                            struct scan *scan)
{
    struct move_to to = { finalizers, 0 };

    for (gc_head *g = gc_next(finalizers); g != finalizers; g = gc_next(g)) {
        om_object *o = object_of(g);
        if (o->type->traverse)
            o->type->traverse(o, visit_move, &to);
    }
    scan->left -= to.moved;
}

/*
 * CPython's handle_weakrefs, before any finalizer or clear: clear every
 * weak reference to an unreachable object, and every unreachable ref (its
 * callback could otherwise see cleared objects); then call the callbacks
 * of the cleared refs that are not garbage themselves (newest first for
 * each target), each ref moved to old.
 */
static size_t handle_weakrefs(gc_head *unreachable, gc_head *old)
{
    gc_head calls;
    size_t ncalls = 0;

    if (omi_weakref_live == 0)
        return 0;                       /* no ref anywhere: nothing to do */
    list_init(&calls);
    for (gc_head *g = gc_next(unreachable); g != unreachable;
         g = gc_next(g)) {
        om_object *o = object_of(g), *r;
        if (o->type == &omi_weakref_type)
            omi_weakref_clear(o);
        if (!o->type->weaklist_offset)
            continue;
        while ((r = omi_weakref_first(o)) != NULL) {
            gc_head *rg = omi_object_gc_head(r);
            omi_weakref_clear(r);
            if (!omi_weakref_has_callback(r) || rg->next == 0 ||
                (rg->prev & PREV_COLLECTING))
                continue;               /* no callback, or garbage too */
            om_incref(r);
            list_move(rg, &calls);
        }
    }
    while (!list_is_empty(&calls)) {
        gc_head *g = gc_next(&calls);
        list_move(g, old);
        omi_weakref_call(object_of(g));    /* drops our reference */
        ncalls++;
    }
    return ncalls;
}

/* PEP 442: each object's finalizer once, the object alive meanwhile. */
static void finalize_garbage(gc_head *collectable)
{
    gc_head seen;

    list_init(&seen);
    while (!list_is_empty(collectable)) {
        gc_head *g = gc_next(collectable);
        om_object *o = object_of(g);
        list_move(g, &seen);
        if (o->type->finalize && !(g->prev & GC_PREV_FINALIZED)) {
            g->prev |= GC_PREV_FINALIZED;
            om_incref(o);
            o->type->finalize(o);
            om_decref(o);
        }
    }
    list_merge(&seen, collectable);
}

/* The objects a finalizer made reachable again go to old, with what they
 * reach; the still unreachable go to still. */
static void handle_resurrected(gc_head *unreachable, gc_head *still,
                               gc_head *old)
{
    struct scan again = { 0 };

    clear_collecting(unreachable);
    deduce_unreachable(unreachable, still, &again);
    clear_unreachable_marks(still);
    list_merge(unreachable, old);
}

static om_object *garbage_list(void)
{
    if (!gc.garbage) {
        gc.garbage = om_list_new(0);
        if (gc.garbage)
            om_gc_untrack(gc.garbage);  /* a root, never collected */
    }
    return gc.garbage;
}

static void print_object(const char *what, om_object *o)
{
    omi_print_fd(2, "gc: %s <%s %p>\n", what, o->type->name, (void *)o);
}

/* Clear each object (which breaks its cycle); what survives its clear
 * moves to old. */
static void delete_garbage(gc_head *collectable, gc_head *old)
{
    while (!list_is_empty(collectable)) {
        gc_head *g = gc_next(collectable);
        om_object *o = object_of(g);

        if (gc.debug & OM_GC_DEBUG_SAVEALL) {
            om_object *list = garbage_list();
            if (list)
                om_list_append(list, o);
        } else if (o->type->clear) {
            om_incref(o);
            o->type->clear(o);
            om_decref(o);
        }
        if (gc_next(collectable) == g) {  /* still alive */
            g->prev &= ~PREV_COLLECTING;
            list_move(g, old);
        }
    }
}

/* Uncollectable objects: those with a legacy_del (all with SAVEALL) go to
 * the garbage list; all of them to old. */
static void handle_legacy_finalizers(gc_head *finalizers, gc_head *old)
{
    for (gc_head *g = gc_next(finalizers); g != finalizers; g = gc_next(g)) {
        om_object *o = object_of(g);
        if ((gc.debug & OM_GC_DEBUG_SAVEALL) || has_legacy_del(o)) {
            om_object *list = garbage_list();
            if (list)
                om_list_append(list, o);
        }
    }
    list_merge(finalizers, old);
}

/* ---- A collection ---- */

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void print_start(int generation)
{
    omi_print_fd(2, "gc: collecting generation %d...\n", generation);
    omi_print_fd(2, "gc: objects in each generation: %zu %zu %zu\n",
                 list_size(gen_head(0)), list_size(gen_head(1)),
                 list_size(gen_head(2)));
    omi_print_fd(2, "gc: objects in permanent generation: %zu\n",
                 list_size(&gc.permanent));
}

/*
 * Collect the set young (its objects COLLECTING-free, on one list): the
 * garbage goes, the rest moves to old (stays, when old == young: the
 * oldest generation).  full: a collection of the whole old generation
 * (dicts and lists are untracked then).  *survivors gets the objects
 * moved or kept, *work those plus the references they hold.  Returns the
 * collected, *uncollectable the rest of the unreachable.
 */
static size_t collect_set(gc_head *young, gc_head *old, bool full,
                          size_t *survivors, size_t *work,
                          size_t *uncollectable)
{
    gc_head unreachable, finalizers, final;
    struct scan scan = { .untrack = true, .untrack_mutable = full };
    size_t collected = 0, n = 0;

    deduce_unreachable(young, &unreachable, &scan);
    *survivors = scan.kept;
    *work = scan.kept + scan.refs;
    if (young != old)
        list_merge(young, old);

    /* Plain garbage (no finalizer, no legacy_del) skips this pass and
     * keeps its UNREACHABLE marks, which every list operation masks and
     * the last pass (delete_garbage) drops with the objects. */
    list_init(&finalizers);
    if (scan.special) {
        move_legacy_finalizers(&unreachable, &finalizers, &scan);
        move_legacy_finalizer_reachable(&finalizers, &scan);
    }
    if (gc.debug & OM_GC_DEBUG_COLLECTABLE)
        for (gc_head *g = gc_next(&unreachable); g != &unreachable;
             g = gc_next(g))
            print_object("collectable", object_of(g));

    /* Only user code (a callback, a finalizer) can resurrect: without any,
     * the unreachable are still unreachable and need no second look. */
    if (handle_weakrefs(&unreachable, old) > 0 || scan.finalizers) {
        if (scan.finalizers)
            finalize_garbage(&unreachable);
        handle_resurrected(&unreachable, &final, old);
        collected = list_size(&final);
    } else {
        list_init(&final);
        list_merge(&unreachable, &final);
        collected = scan.left;
    }
    delete_garbage(&final, old);

    for (gc_head *g = gc_next(&finalizers); g != &finalizers;
         g = gc_next(g)) {
        n++;
        if (gc.debug & OM_GC_DEBUG_UNCOLLECTABLE)
            print_object("uncollectable", object_of(g));
    }
    handle_legacy_finalizers(&finalizers, old);
    *uncollectable = n;
    return collected;
}

/*
 * Look at up to n objects from the front of the old generation: move
 * them to list, except the huge containers (om_sizeof over
 * INC_HUGE_BYTES: visiting a million items would be the whole pause),
 * which go to the back and are left to full collections.
 */
static size_t take_old(gc_head *list, size_t n)
{
    gc_head *old = gen_head(NGENS - 1);
    size_t seen = 0, taken = 0;

    while (seen < n && !list_is_empty(old)) {
        gc_head *g = gc_next(old);
        seen++;
        if (om_sizeof(object_of(g)) > INC_HUGE_BYTES) {
            list_move(g, old);
            continue;
        }
        list_move(g, list);
        taken++;
    }
    return taken;
}

/*
 * One increment (incremental mode): a generation 0 collection, then the
 * next slice of the old generation, taken from its front and collected
 * as a set of its own; the slice's survivors join the old generation's
 * back, so a round of increments scans every old object once.  Young
 * objects still grow old through generation 1, whose collections (every
 * 10th) make no slice: an object that lives through one generation 0
 * collection gets a second chance to die young, so short-lived objects
 * do not swell the old generation (3.14.0's growth).  A slice is 0.025%
 * of the old generation, 1024 objects, or twice what the last
 * generation 1 collection made old per generation 0 collection,
 * whichever is most: the old generation is scanned faster than it
 * grows, so a program that makes garbage that dies old cannot outrun
 * the rounds.  Each pause is then a generation 0 collection and about a
 * thousand old objects (bench_gc: p99 0.3 ms -> below 0.1 ms with 3M
 * old objects), or one of generation 1.
 *
 * A set is any part of the heap: what it holds that the rest refers to
 * counts as referred to from outside, so an increment never frees a live
 * object; a cycle split between slices waits for a round where it is
 * not, and the full collection that the old generation's doubling
 * triggers bounds what waits.  That full collection is also the only one
 * to scan the huge containers, which increments leave out (take_old).
 */
static size_t collect(int generation, size_t *uncollectable);

static size_t collect_increment(size_t *uncollectable)
{
    gc_head slice_list;
    size_t slice, taken, survivors, work, collected, young_unc;
    size_t per = gc.gens[1].threshold > 0 ? (size_t)gc.gens[1].threshold
                                          : 1;  /* threshold 1 may be 0 */

    collected = collect(0, &young_unc);
    if (gc.round_left == 0)
        gc.round_left = gc.old_size;    /* a new round */
    slice = gc.old_size / INC_ROUND_SLICES;
    if (slice < 2 * gc.promoted / per)
        slice = 2 * gc.promoted / per;
    if (slice < INC_MIN_SLICE)
        slice = INC_MIN_SLICE;
    if (slice > gc.round_left)
        slice = gc.round_left;
    list_init(&slice_list);
    taken = take_old(&slice_list, slice);
    gc.round_left -= slice;
    collected += collect_set(&slice_list, gen_head(NGENS - 1), false,
                             &survivors, &work, uncollectable);
    *uncollectable += young_unc;
    gc.old_size = gc.old_size - taken + survivors;
    return collected;
}

static size_t collect(int generation, size_t *uncollectable)
{
    gc_head *young = gen_head(generation), *old;
    size_t collected, survivors, work;
    uint64_t t0 = 0, us;

    if (gc.debug & OM_GC_DEBUG_STATS) {
        t0 = now_us();
        print_start(generation);
    }
    if (generation + 1 < NGENS)
        (*gen_count(generation + 1))++;
    for (int i = 0; i <= generation; i++)
        *gen_count(i) = 0;
    for (int i = 0; i < generation; i++)
        list_merge(gen_head(i), young);
    old = generation + 1 < NGENS ? gen_head(generation + 1) : young;

    collected = collect_set(young, old, young == old, &survivors, &work,
                            uncollectable);
    if (generation == NGENS - 2) {
        gc.long_lived_pending += work;
        gc.old_size += survivors;
        gc.promoted = survivors;
    } else if (generation == NGENS - 1) {
        gc.long_lived_pending = 0;
        gc.long_lived_total = work;
        gc.old_size = gc.old_full_size = survivors;
        gc.round_left = 0;
        om_clear_freelists();
    }

    if (gc.debug & OM_GC_DEBUG_STATS) {
        us = now_us() - t0;
        omi_print_fd(2, "gc: done, %zu unreachable, %zu uncollectable, "
                     "%lu.%04lus elapsed\n", collected + *uncollectable,
                     *uncollectable, (unsigned long)(us / 1000000),
                     (unsigned long)(us % 1000000 / 100));
    }
    gc.stats[generation].collections++;
    gc.stats[generation].collected += collected;
    gc.stats[generation].uncollectable += *uncollectable;
    return collected;
}

static void invoke_callbacks(const char *phase, int generation,
                             size_t collected, size_t uncollectable)
{
    struct om_gc_info info = { generation, collected, uncollectable };

    for (int i = 0; i < gc.ncallbacks; i++)
        gc.callbacks[i].cb(phase, &info, gc.callbacks[i].ctx);
}

/* A collection of generation (INCREMENT: an increment, which callbacks
 * and stats see as generation 2), with the callbacks around it. */
#define INCREMENT (-1)

static size_t collect_with_callbacks(int generation)
{
    int shown = generation == INCREMENT ? NGENS - 1 : generation;
    size_t collected, uncollectable;

    gc.collecting = true;
    update_auto();
    OMI_PROBE2(gc__start, shown, generation == INCREMENT);
    invoke_callbacks("start", shown, 0, 0);
    if (generation == INCREMENT) {
        collected = collect_increment(&uncollectable);
        gc.stats[shown].collections++;
        gc.stats[shown].collected += collected;
        gc.stats[shown].uncollectable += uncollectable;
    } else {
        collected = collect(generation, &uncollectable);
    }
    invoke_callbacks("stop", shown, collected, uncollectable);
    OMI_PROBE2(gc__done, collected, uncollectable);
    gc.collecting = false;
    update_auto();
    return collected + uncollectable;
}

ptrdiff_t om_gc_collect(int generation)
{
    ready();
    if (generation < 0 || generation >= NGENS) {
        errno = EINVAL;
        return -1;
    }
    if (gc.collecting)
        return 0;
    return (ptrdiff_t)collect_with_callbacks(generation);
}

/* The automatic collection: the oldest generation past its threshold
 * (the oldest only when 25% of its work is new since its last
 * collection: full collections then cost a bounded multiple of the work
 * that made them, as CPython's rule intends, though a container's items
 * are visited and not counted there).  forced (a young zeal collection):
 * threshold 0 taken as 0, and generation 0 collected, not an increment. */
static void collect_generations(bool forced)
{
    if (gc.incremental) {
        /* Generation 1 as before, generation 0 with a slice of the old
         * generation (an increment); a full collection only when the old
         * generation doubled since the last one. */
        long t0 = forced ? 0 : gc.gens[0].threshold;
        if (gc.old_size > 2 * (gc.old_full_size > INC_FULL_MIN ?
                               gc.old_full_size : INC_FULL_MIN))
            collect_with_callbacks(NGENS - 1);
        else if (*gen_count(1) > gc.gens[1].threshold)
            collect_with_callbacks(NGENS - 2);
        else if (*gen_count(0) > t0)
            collect_with_callbacks(forced ? 0 : INCREMENT);
        return;
    }
    for (int i = NGENS - 1; i >= 0; i--) {
        long threshold = i == 0 && forced ? 0 : gc.gens[i].threshold;
        if (*gen_count(i) <= threshold)
            continue;
        if (i == NGENS - 1 &&
            gc.long_lived_pending < gc.long_lived_total / 4)
            continue;
        collect_with_callbacks(i);
        break;
    }
}

bool omi_gc_collect_auto(void)
{
    bool due = false;

    ready();
    if (gc.zeal == OM_GC_ZEAL_YOUNG || gc.zeal == OM_GC_ZEAL_FULL) {
        due = ++gc.zeal_count >= gc.zeal_every;
        if (due)
            gc.zeal_count = 0;
        if (due && gc.zeal == OM_GC_ZEAL_FULL) {
            collect_with_callbacks(NGENS - 1);
            return false;
        }
    }
    if (due || (auto_on() && omi_gc_young.count > gc.gens[0].threshold))
        collect_generations(due);
    /* Emergency zeal: this allocation fails first (where the emergency
     * collection may run, so that the retry comes). */
    return gc.zeal == OM_GC_ZEAL_EMERGENCY && auto_on();
}

bool omi_gc_emergency(size_t size)
{
    ready();
    if (!auto_on())
        return false;
    gc.emergencies++;
    if (gc.debug & OM_GC_DEBUG_STATS)
        omi_print_fd(2, "gc: emergency collection: an allocation of %zu "
                     "bytes failed\n", size);
    collect_with_callbacks(NGENS - 1);
    om_collect(false);
    return true;
}

/* ---- Settings, freeze, stats, callbacks ---- */

void om_gc_enable(void)
{
    ready();
    gc.enabled = true;
    update_auto();
}

void om_gc_disable(void)
{
    ready();
    gc.enabled = false;
    update_auto();
}

bool om_gc_is_enabled(void) { return gc.enabled; }

void om_gc_set_threshold(int t0, int t1, int t2)
{
    int t[NGENS] = { t0, t1, t2 };

    ready();
    for (int i = 0; i < NGENS; i++)
        gc.gens[i].threshold = t[i] < 0 ? 0 : t[i];
    update_auto();
}

void om_gc_get_threshold(int out[3])
{
    ready();
    for (int i = 0; out && i < NGENS; i++)
        out[i] = gc.gens[i].threshold;
}

void om_gc_get_count(int out[3])
{
    for (int i = 0; out && i < NGENS; i++)
        out[i] = *gen_count(i) > INT_MAX ? INT_MAX : (int)*gen_count(i);
}

void om_gc_freeze(void)
{
    ready();
    for (int i = 0; i < NGENS; i++) {
        list_merge(gen_head(i), &gc.permanent);
        *gen_count(i) = 0;
    }
    gc.old_size = gc.round_left = 0;
}

void om_gc_unfreeze(void)
{
    ready();
    gc.old_size += list_size(&gc.permanent);
    list_merge(&gc.permanent, gen_head(NGENS - 1));
}

/* Immortalize child; an untracked container joins the walk (at the end
 * of the permanent list, so the walk needs no stack of its own). */
static int visit_immortalize(om_object *child, void *arg)
{
    if (om_is_immortal(child))
        return 0;
    om_set_immortal(child);
    if (is_gc(child) && omi_object_gc_head(child)->next == 0)
        list_append(omi_object_gc_head(child), &gc.permanent);
    return 0;
}

void om_immortalize_heap(void)
{
    om_gc_freeze();
    for (gc_head *g = gc_next(&gc.permanent); g != &gc.permanent;
         g = gc_next(g)) {
        om_object *o = object_of(g);
        om_set_immortal(o);
        if (o->type->traverse)
            o->type->traverse(o, visit_immortalize, NULL);
    }
}

size_t om_gc_get_freeze_count(void)
{
    ready();
    return list_size(&gc.permanent);
}

void om_gc_get_stats(struct om_gc_stats out[3])
{
    for (int i = 0; out && i < NGENS; i++)
        out[i] = gc.stats[i];
}

int om_gc_callback_add(om_gc_callback cb, void *ctx)
{
    if (!cb)
        return -EINVAL;
    if (gc.ncallbacks == MAX_CALLBACKS)
        return -ENOSPC;
    gc.callbacks[gc.ncallbacks].cb = cb;
    gc.callbacks[gc.ncallbacks].ctx = ctx;
    gc.ncallbacks++;
    return 0;
}

int om_gc_callback_remove(om_gc_callback cb, void *ctx)
{
    for (int i = 0; i < gc.ncallbacks; i++) {
        if (gc.callbacks[i].cb == cb && gc.callbacks[i].ctx == ctx) {
            for (int j = i + 1; j < gc.ncallbacks; j++)
                gc.callbacks[j - 1] = gc.callbacks[j];
            gc.ncallbacks--;
            return 0;
        }
    }
    return -ENOENT;
}

void om_gc_set_incremental(bool on)
{
    ready();
    gc.incremental = on;
    gc.round_left = 0;
}

bool om_gc_is_incremental(void)
{
    return gc.incremental;
}

void om_gc_set_debug(unsigned flags) { gc.debug = flags; }
unsigned om_gc_get_debug(void) { return gc.debug; }

om_object *om_gc_garbage(void)
{
    return garbage_list();
}

/* CPython's shutdown message: uncollectable objects left on the garbage
 * list (unless SAVEALL put them there), listed with UNCOLLECTABLE.  A
 * destructor, after main and the atexit handlers. */
__attribute__((destructor)) static void gc_at_exit(void)
{
    size_t n = gc.garbage ? om_list_len(gc.garbage) : 0;

    if (n == 0 || (gc.debug & OM_GC_DEBUG_SAVEALL))
        return;
    if (gc.debug & OM_GC_DEBUG_UNCOLLECTABLE) {
        omi_print_fd(2, "objmem: gc: %zu uncollectable objects at "
                     "shutdown\n", n);
        for (size_t i = 0; i < n; i++)
            print_object("uncollectable", om_list_get(gc.garbage, i));
    } else {
        omi_print_fd(2, "objmem: gc: %zu uncollectable objects at "
                     "shutdown; use om_gc_set_debug("
                     "OM_GC_DEBUG_UNCOLLECTABLE) to list them\n", n);
    }
}

/* ---- Introspection ---- */

/* Append the objects of list to result (not result itself). */
static int append_objects(om_object *result, gc_head *list)
{
    for (gc_head *g = gc_next(list); g != list; g = gc_next(g))
        if (object_of(g) != result &&
            om_list_append(result, object_of(g)) != 0)
            return -ENOMEM;
    return 0;
}

om_object *om_gc_get_objects(int generation)
{
    om_object *result;
    int rc = 0;

    ready();
    if (generation < -1 || generation >= NGENS) {
        errno = EINVAL;
        return NULL;
    }
    if (!(result = om_list_new(0)))
        return NULL;
    for (int i = 0; i < NGENS && rc == 0; i++)
        if (generation == -1 || generation == i)
            rc = append_objects(result, gen_head(i));
    if (rc != 0) {
        om_decref(result);
        errno = ENOMEM;
        return NULL;
    }
    return result;
}

static int visit_append(om_object *child, void *arg)
{
    return om_list_append(arg, child) != 0 ? -ENOMEM : 0;
}

om_object *om_gc_get_referents(om_object *o)
{
    om_object *result;

    if (!o) {
        errno = EINVAL;
        return NULL;
    }
    if (!(result = om_list_new(0)))
        return NULL;
    if (is_gc(o) && o->type->traverse &&
        o->type->traverse(o, visit_append, result) != 0) {
        om_decref(result);
        errno = ENOMEM;
        return NULL;
    }
    return result;
}

static int visit_is(om_object *child, void *arg)
{
    return child == arg;
}

om_object *om_gc_get_referrers(om_object *o)
{
    gc_head *lists[NGENS + 1] = { gen_head(0), gen_head(1),
                                  gen_head(2), &gc.permanent };
    om_object *result;

    ready();
    if (!o) {
        errno = EINVAL;
        return NULL;
    }
    if (!(result = om_list_new(0)))
        return NULL;
    for (int i = 0; i <= NGENS; i++) {
        for (gc_head *g = gc_next(lists[i]); g != lists[i];
             g = gc_next(g)) {
            om_object *r = object_of(g);
            if (r == result || !r->type->traverse ||
                r->type->traverse(r, visit_is, o) == 0)
                continue;
            if (om_list_append(result, r) != 0) {
                om_decref(result);
                errno = ENOMEM;
                return NULL;
            }
        }
    }
    return result;
}

/* ---- Checks ---- */

/* Invariant 3 for child, an object that a tracked object holds. */
static int visit_check_untracked(om_object *child, void *arg)
{
    (void)arg;
    if (child && (child->type == &om_dict_type ||
                  child->type == &om_list_type) &&
        !om_gc_is_tracked(child) &&
        child->type->traverse(child, visit_may_be_tracked, NULL) != 0)
        return omi_check_fail("gc.3", child, "an untracked %s holds an "
                              "item that may be tracked", child->type->name);
    return 0;
}

static int check_list(gc_head *list, const char *name)
{
    gc_head *prev = list;
    size_t n = 0;

    for (gc_head *g = gc_next(list); g != list; prev = g, g = gc_next(g)) {
        om_object *o = object_of(g);
        if (g->next == 0 || (g->next & NEXT_UNREACHABLE) ||
            (g->prev & PREV_COLLECTING) || gc_prev(g) != prev)
            return omi_check_fail("gc.1", o, "%s list broken", name);
        if (!is_gc(o) || o->refcnt <= 0)
            return omi_check_fail("gc.2", o, "%s holds a dead or non-GC "
                                  "object", name);
        if (o->type == &om_dict_type && omi_dict_check(o) != 0)
            return -EFAULT;             /* dict.1-2, every tracked dict */
        if (o->type == &omi_weakref_type && omi_weakref_check(o) != 0)
            return -EFAULT;             /* weakref.1-2, for every ref */
        if (omi_class_check_instance(o) != 0)
            return -EFAULT;             /* class.1, 3-5, every instance */
        if (o->type->traverse &&
            o->type->traverse(o, visit_check_untracked, NULL) != 0)
            return -EFAULT;
        if (++n > ((size_t)1 << 40))
            return omi_check_fail("gc.1", list, "%s loops", name);
    }
    if (gc_prev(list) != prev)
        return omi_check_fail("gc.1", list, "%s tail broken", name);
    return 0;
}

int omi_gc_check(void)
{
    static const char *const names[NGENS] = { "generation 0",
                                              "generation 1",
                                              "generation 2" };
    int rc;

    if (!gc.ready || gc.collecting)
        return 0;
    for (int i = 0; i < NGENS; i++)
        if ((rc = check_list(gen_head(i), names[i])) != 0)
            return rc;
    return check_list(&gc.permanent, "permanent generation");
}
