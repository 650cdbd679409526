/*
 * test_gc.c - the cycle collector: cycles through each core container,
 * finalizers (once, resurrection), legacy finalizers and the garbage
 * list, SAVEALL, callbacks, stats, generations and thresholds, automatic
 * collection, freeze, tracking rules, introspection, a deep cycle, and
 * random graphs of every kind of container, with finalizers and weak
 * references, checked against a model of what their roots reach.  Each
 * test ends with no live test objects and om_check() passing.
 */
#include <errno.h>

#include "testnode.h"
#include "config.h"         /* ARENA_SIZE, POOL_SIZE */
#include "object.h"

static size_t live0, blocks0;

/* OBJMEM_GC_TORTURE (zeal) forces collections at GC allocations: the
 * tests of what happens between automatic collections skip their
 * counting checks. */
static bool torture(void)
{
    return om_gc_get_zeal(NULL) != OM_GC_ZEAL_OFF;
}

/* ---- Node types (testnode.h) ---- */

static int finalized;                   /* finalizer calls */
static int legacy_calls;
static om_object *saved;                /* a finalizer's resurrection */
static bool resurrect;

static int cleared_seen;                /* finalizers that met a cleared node */

static void node_finalize(om_object *o)
{
    struct node *n = (struct node *)o;

    finalized++;
    if (!n->ref || (n->ref->type->flags & OM_TPFLAGS_GC &&
                    n->ref->type->traverse == node_traverse &&
                    !((struct node *)n->ref)->ref))
        cleared_seen++;                 /* a neighbour cleared too soon */
    if (resurrect && !saved) {
        om_incref(o);
        saved = o;
    }
}

static void node_legacy_del(om_object *o)
{
    legacy_calls++;
}

static const struct om_type node_type =
    NODE_TYPE("node", NULL, NULL, 0);

static const struct om_type fin_node_type =
    NODE_TYPE("fin_node", node_finalize, NULL, 0);

static const struct om_type legacy_node_type =
    NODE_TYPE("legacy_node", NULL, node_legacy_del, 0);

static int setup(void **state)
{
    om_gc_set_threshold(700, 10, 10);
    om_gc_enable();
    om_gc_set_debug(0);
    (void)om_gc_garbage();              /* made once, before live0 */
    (void)om_str_literal("other");      /* immortal, as attribute names */
    om_gc_collect(2);                   /* nothing pending from before */
    om_clear_freelists();
    live0 = om_live_objects();
    blocks0 = blocks_in_use();
    finalized = legacy_calls = 0;
    saved = NULL;
    resurrect = false;
    return 0;
}

static void assert_clean(void)
{
    assert_int_equal(om_list_len(om_gc_garbage()), 0);
    assert_int_equal(om_live_objects(), live0);
    om_clear_freelists();
    assert_heap_clean(blocks0);
}

/* ---- Cycles through each container ---- */

/* A list that holds itself: refcounting cannot free it; the collector
 * finds exactly one unreachable object. */
static void test_self_cycle_list(void **state)
{
    om_object *l = om_list_new(0);

    assert_int_equal(om_list_append(l, l), 0);
    om_decref(l);
    assert_int_equal(om_live_objects(), live0 + 1);
    assert_int_equal(om_gc_collect(2), 1);
    assert_int_equal(om_live_objects(), live0);
    assert_clean();
}

static void test_self_cycle_dict(void **state)
{
    om_object *d = om_dict_new(), *k = om_str_from_utf8("me", 2);

    assert_false(om_gc_is_tracked(d));
    assert_int_equal(om_dict_set(d, k, d), 0);
    assert_true(om_gc_is_tracked(d));  /* a container went in */
    om_decref(k);
    om_decref(d);
    assert_int_equal(om_gc_collect(2), 1);
    assert_clean();
}

/* A tuple in a cycle through a list: (l,) and l = [t]. */
static void test_tuple_list_cycle(void **state)
{
    om_object *l = om_list_new(0), *t = om_tuple_pack(1, l);

    assert_int_equal(om_list_append(l, t), 0);
    om_decref(t);
    om_decref(l);
    assert_int_equal(om_gc_collect(torture() ? 2 : 0), 2);
    assert_clean();
}

/* Two instances that point at each other, a.other = b, b.other = a,
 * dropped; with_dicts: vars() gave each a dict first.  What a full
 * collection then finds. */
static ptrdiff_t collect_instance_pair(bool with_dicts)
{
    om_object *cls = om_class_new("C", NULL, 0, 0);
    om_object *a = om_instance_new(cls), *b = om_instance_new(cls);

    assert_int_equal(om_setattr(a, "other", b), 0);
    assert_int_equal(om_setattr(b, "other", a), 0);
    if (with_dicts) {
        om_decref(om_instance_dict(a));
        om_decref(om_instance_dict(b));
    }
    om_decref(a);
    om_decref(b);
    om_decref(cls);
    return om_gc_collect(2);
}

/* Key-sharing values are no objects: the cycle is the two instances, as
 * python3 counts it; with dicts, two instances and two dicts. */
static void test_instance_two_cycle(void **state)
{
    assert_int_equal(collect_instance_pair(false), 2);
    assert_clean();
    assert_int_equal(collect_instance_pair(true), 4);
    assert_clean();
}

/* Reachable objects survive and move to the next generation. */
static void test_reachable_survives(void **state)
{
    om_object *l, *objs;
    int count[3];

    if (torture())
        skip();                         /* counts move on every allocation */
    l = om_list_new(0);
    assert_int_equal(om_list_append(l, l), 0);  /* a cycle, still held */
    assert_int_equal(om_gc_collect(0), 0);
    objs = om_gc_get_objects(1);
    assert_non_null(objs);
    bool found = false;
    for (size_t i = 0; i < om_list_len(objs); i++)
        found |= om_list_get(objs, i) == l;
    assert_true(found);
    om_decref(objs);
    om_gc_get_count(count);
    assert_int_equal(count[1], 1);      /* one collection of generation 0 */
    assert_int_equal(om_gc_collect(1), 0);
    om_gc_get_count(count);
    assert_int_equal(count[1], 0);
    assert_int_equal(count[2], 1);
    om_gc_get_count(NULL);              /* nowhere to write: nothing */
    om_gc_get_threshold(NULL);
    om_gc_get_stats(NULL);
    om_gc_get_count(count);
    assert_int_equal(count[2], 1);
    om_list_clear(l);
    om_decref(l);
    assert_clean();
}

/* ---- Finalizers ---- */

/* A 2-cycle of finalizable nodes: each finalizer runs exactly once, then
 * both are freed. */
static void test_finalizers_run_once(void **state)
{
    om_object *a = node_new(&fin_node_type, NULL);
    om_object *b = node_new(&fin_node_type, a);

    node_set(a, b);
    om_decref(a);
    om_decref(b);
    assert_int_equal(om_gc_collect(2), 2);
    assert_int_equal(finalized, 2);
    assert_clean();
}

/* A ring of three finalizable nodes: every finalizer runs exactly once,
 * before any node is cleared, so each sees its neighbour intact. */
static void test_finalizer_chain(void **state)
{
    om_object *a = node_new(&fin_node_type, NULL);
    om_object *b = node_new(&fin_node_type, a);
    om_object *c = node_new(&fin_node_type, b);

    node_set(a, c);                     /* a -> c -> b -> a */
    om_decref(a);
    om_decref(b);
    om_decref(c);
    cleared_seen = 0;
    assert_int_equal(om_gc_collect(2), 3);
    assert_int_equal(finalized, 3);
    assert_int_equal(cleared_seen, 0);
    assert_clean();
}

/* Transitive resurrection: a saves itself, and b, which a refers to,
 * lives on with it; both finalizers ran once and never run again. */
static void test_transitive_resurrection(void **state)
{
    om_object *a = node_new(&fin_node_type, NULL);
    om_object *b = node_new(&fin_node_type, a);

    node_set(a, b);
    om_decref(b);
    resurrect = true;
    saved = NULL;
    om_decref(a);                       /* a <-> b, garbage */
    assert_int_equal(om_gc_collect(2), 0);
    assert_int_equal(finalized, 2);     /* both ran; one saved itself */
    assert_non_null(saved);
    assert_true(om_gc_is_tracked(a) && om_gc_is_tracked(b));
    assert_true(om_gc_is_finalized(a) && om_gc_is_finalized(b));
    om_object *s = saved;
    saved = NULL;
    resurrect = false;
    om_decref(s);
    assert_int_equal(om_gc_collect(2), 2);
    assert_int_equal(finalized, 2);
    assert_clean();
}

/* A finalizer that saves its object: it survives the collection,
 * finalized; when it dies later, its finalizer does not run again. */
static void test_resurrection(void **state)
{
    om_object *a = node_new(&fin_node_type, NULL);

    node_set(a, a);
    om_decref(a);
    resurrect = true;
    assert_int_equal(om_gc_collect(2), 0);  /* resurrected: not collected */
    assert_int_equal(finalized, 1);
    assert_ptr_equal(saved, a);
    assert_true(om_gc_is_finalized(a));
    assert_true(om_gc_is_tracked(a));
    saved = NULL;
    om_decref(a);                       /* the cycle again, unreachable */
    assert_int_equal(om_gc_collect(2), 1);
    assert_int_equal(finalized, 1);     /* once per object */
    assert_clean();
}

/* A legacy_del in a cycle: uncollectable; it and what it reaches go to
 * the garbage list, and the stats count it. */
static void test_legacy_uncollectable(void **state)
{
    struct om_gc_stats s0[3], s1[3];
    om_object *a = node_new(&legacy_node_type, NULL);
    om_object *b = node_new(&node_type, a);

    node_set(a, b);
    om_decref(a);
    om_decref(b);
    om_gc_get_stats(s0);
    assert_int_equal(om_gc_collect(2), 2);    /* 2 found, 0 collected */
    om_gc_get_stats(s1);
    assert_int_equal(s1[2].collections, s0[2].collections + 1);
    assert_int_equal(s1[2].collected, s0[2].collected);
    assert_int_equal(s1[2].uncollectable, s0[2].uncollectable + 2);
    assert_int_equal(om_list_len(om_gc_garbage()), 1);
    assert_ptr_equal(om_list_get(om_gc_garbage(), 0), a);
    assert_int_equal(legacy_calls, 0);
    /* What a program does: break the cycle by hand, drop the garbage. */
    node_set(a, om_none());
    om_list_clear(om_gc_garbage());
    assert_int_equal(legacy_calls, 1);  /* the refcount freed it */
    assert_clean();
}

/* Uncollectable garbage left at exit: CPython's shutdown message. */
static void leave_uncollectable(void)
{
    om_object *a = node_new(&legacy_node_type, NULL);

    node_set(a, a);
    om_decref(a);
    om_gc_collect(2);
}

static void leave_uncollectable_listed(void)
{
    om_gc_set_debug(OM_GC_DEBUG_UNCOLLECTABLE);
    leave_uncollectable();
}

static void test_shutdown_message(void **state)
{
    assert_exits_saying(leave_uncollectable,
                        "gc: 1 uncollectable objects at shutdown; use "
                        "om_gc_set_debug(OM_GC_DEBUG_UNCOLLECTABLE)");
    assert_exits_saying(leave_uncollectable_listed,
                        "gc: uncollectable <legacy_node 0x");
    assert_clean();
}

/* SAVEALL: every unreachable object goes to the garbage list instead. */
static void test_saveall(void **state)
{
    om_object *l = om_list_new(0);

    assert_int_equal(om_list_append(l, l), 0);
    om_decref(l);
    om_gc_set_debug(OM_GC_DEBUG_SAVEALL);
    assert_int_equal(om_gc_collect(2), 1);
    om_gc_set_debug(0);
    assert_int_equal(om_list_len(om_gc_garbage()), 1);
    assert_ptr_equal(om_list_get(om_gc_garbage(), 0), l);
    om_list_clear(om_gc_garbage());     /* the cycle is unreachable again */
    assert_int_equal(om_gc_collect(2), 1);
    assert_clean();
}

/* ---- Callbacks, nesting, bad input ---- */

static char phases[8][8];
static struct om_gc_info infos[8];
static int ncalls;
static ptrdiff_t nested;

static void callback(const char *phase, const struct om_gc_info *info,
                     void *ctx)
{
    if (ncalls < 8) {
        snprintf(phases[ncalls], sizeof(phases[0]), "%s", phase);
        infos[ncalls] = *info;
    }
    ncalls++;
    *(int *)ctx += 1;
    nested = om_gc_collect(0);          /* no nested collection: 0 */
}

static void test_callbacks(void **state)
{
    om_object *l = om_list_new(0);
    int calls = 0;

    ncalls = 0;
    assert_int_equal(om_gc_callback_add(callback, &calls), 0);
    assert_int_equal(om_list_append(l, l), 0);
    om_decref(l);
    assert_int_equal(om_gc_collect(1), 1);
    assert_int_equal(ncalls, 2);
    assert_int_equal(calls, 2);
    assert_string_equal(phases[0], "start");
    assert_int_equal(infos[0].generation, 1);
    assert_int_equal(infos[0].collected, 0);
    assert_string_equal(phases[1], "stop");
    assert_int_equal(infos[1].generation, 1);
    assert_int_equal(infos[1].collected, 1);
    assert_int_equal(infos[1].uncollectable, 0);
    assert_int_equal(nested, 0);
    assert_int_equal(om_gc_callback_remove(callback, &calls), 0);
    assert_int_equal(om_gc_callback_remove(callback, &calls), -ENOENT);
    assert_int_equal(om_gc_callback_add(NULL, NULL), -EINVAL);
    om_gc_collect(0);
    assert_int_equal(ncalls, 2);        /* removed: not called */
    errno = 0;
    assert_int_equal(om_gc_collect(3), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(om_gc_collect(-1), -1);
    assert_clean();
}

/* ---- Automatic collection, thresholds ---- */

/* With threshold 0 = 50, making 1000 garbage cycles collects them on the
 * way; with threshold 0 = 0 (or disabled) nothing is collected. */
static void test_automatic(void **state)
{
    struct om_gc_stats s0[3], s1[3];

    if (torture())
        skip();                         /* thresholds do not apply */
    om_gc_set_threshold(50, 10, 10);
    om_gc_get_stats(s0);
    for (int i = 0; i < 1000; i++) {
        om_object *l = om_list_new(0);
        assert_int_equal(om_list_append(l, l), 0);
        om_decref(l);
    }
    om_gc_get_stats(s1);
    assert_true(s1[0].collections > s0[0].collections);
    assert_true(om_live_objects() < live0 + 1000);

    om_gc_collect(2);
    om_gc_set_threshold(0, 10, 10);
    om_gc_get_stats(s0);
    for (int i = 0; i < 1000; i++) {
        om_object *l = om_list_new(0);
        assert_int_equal(om_list_append(l, l), 0);
        om_decref(l);
    }
    om_gc_get_stats(s1);
    assert_int_equal(s1[0].collections, s0[0].collections);
    assert_int_equal(om_live_objects(), live0 + 1000);
    assert_int_equal(om_gc_collect(2), 1000);
    int t[3];
    om_gc_get_threshold(t);
    assert_int_equal(t[0], 0);
    assert_int_equal(t[1], 10);
    assert_clean();
}

/* An automatic collection started from inside a finalizer (which
 * allocates containers) runs, and every finalizer still runs once. */
static void finalize_allocating(om_object *o)
{
    finalized++;
    for (int i = 0; i < 30; i++) {      /* garbage cycles: counts grow */
        om_object *l = om_list_new(0);
        assert_int_equal(om_list_append(l, l), 0);
        om_decref(l);
    }
}

static const struct om_type alloc_fin_type =
    NODE_TYPE("alloc_fin", finalize_allocating, NULL, 0);

static void test_collect_from_finalizer(void **state)
{
    struct om_gc_stats s0[3], s1[3];

    om_gc_set_threshold(10, 10, 10);
    om_gc_get_stats(s0);
    for (int i = 0; i < 20; i++)
        om_decref(node_new(&alloc_fin_type, NULL));  /* finalizer on free */
    om_gc_get_stats(s1);
    assert_int_equal(finalized, 20);
    assert_true(s1[0].collections + s1[2].collections >
                s0[0].collections + s0[2].collections);  /* full: zeal's */
    om_gc_collect(2);
    assert_clean();
}

/* ---- Freeze ---- */

static void test_freeze(void **state)
{
    om_object *l = om_list_new(0);

    assert_int_equal(om_list_append(l, l), 0);
    om_decref(l);
    om_gc_freeze();
    assert_true(om_gc_get_freeze_count() >= 1);
    assert_int_equal(om_gc_collect(2), 0);     /* frozen: not looked at */
    assert_int_equal(om_live_objects(), live0 + 1);
    om_gc_unfreeze();
    assert_int_equal(om_gc_get_freeze_count(), 0);
    assert_int_equal(om_gc_collect(2), 1);
    assert_clean();
}

/* ---- Tracking rules and introspection ---- */

static void test_tracking_rules(void **state)
{
    om_object *i = om_int_from_i64(1000), *f = om_float_from_double(1.5);
    om_object *s = om_str_from_utf8("x", 1), *l = om_list_new(0);
    om_object *d = om_dict_new(), *t = om_tuple_pack(2, i, s);
    om_object *t2 = om_tuple_pack(1, l);

    assert_false(om_gc_is_tracked(i));
    assert_false(om_gc_is_tracked(f));
    assert_false(om_gc_is_tracked(s));
    assert_false(om_gc_is_tracked(l));   /* empty list (list.c) */
    assert_false(om_gc_is_tracked(d));   /* empty dict */
    assert_int_equal(om_dict_set(d, s, i), 0);
    assert_false(om_gc_is_tracked(d));   /* atomic key and value */
    assert_false(om_gc_is_tracked(t));   /* atomic items: from birth */
    assert_true(om_gc_is_tracked(t2));   /* holds a list */
    assert_int_equal(om_gc_collect(0), 0);
    assert_false(om_gc_is_tracked(t));
    assert_true(om_gc_is_tracked(t2));   /* still holds a list */
    assert_int_equal(om_dict_set(d, s, t), 0);
    assert_false(om_gc_is_tracked(d));   /* an untracked tuple */
    assert_int_equal(om_dict_set(d, s, t2), 0);
    assert_true(om_gc_is_tracked(d));
    om_object *cls = om_class_new("T", NULL, 0, 0), *inst;
    inst = om_instance_new(cls);
    assert_true(om_gc_is_tracked(inst));
    assert_false(om_gc_is_tracked(cls));    /* classes are not containers */
    om_decref(inst);
    om_decref(cls);
    om_object *fresh = om_tuple_new(1);
    assert_true(om_gc_is_tracked(fresh));  /* tracked when made */
    om_decref(fresh);
    fresh = om_tuple_pack(2, i, i);        /* untracked ... */
    assert_false(om_gc_is_tracked(fresh));
    om_incref(l);
    assert_int_equal(om_tuple_set(fresh, 1, l), 0);
    assert_true(om_gc_is_tracked(fresh));  /* ... until it holds a list */
    om_decref(fresh);
    om_decref(t2);
    om_decref(t);
    om_decref(d);
    om_decref(l);
    om_decref(s);
    om_decref(f);
    om_decref(i);
    assert_clean();
}

/* A tree of tuples built bottom-up, none holding anything that may be
 * tracked, is never tracked: the collector does not see it, and the
 * tuple of a list in it is (CPython 3.11 tracked every node, and took a
 * collection per level to untrack them). */
static om_object *leafy_tree(int depth)
{
    static om_object *level[1 << 12];
    size_t n = (size_t)1 << depth;

    for (size_t i = 0; i < n; i++)
        level[i] = om_tuple_pack(2, om_none(), om_none());
    for (; n > 1; n /= 2)                   /* pair each level up */
        for (size_t i = 0; i < n / 2; i++) {
            om_object *l = level[2 * i], *r = level[2 * i + 1];
            level[i] = om_tuple_pack(2, l, r);
            om_decref(l);
            om_decref(r);
        }
    return level[0];
}

static size_t count_tracked(void)
{
    om_object *objs = om_gc_get_objects(-1);
    size_t n = om_list_len(objs);

    om_decref(objs);
    return n;
}

static void test_tuple_tree_never_tracked(void **state)
{
    size_t before = count_tracked();
    om_object *t = leafy_tree(12), *l = om_list_new(0), *top;

    assert_false(om_gc_is_tracked(t));
    assert_false(om_gc_is_tracked(om_tuple_get(om_tuple_get(t, 0), 1)));
    top = om_tuple_pack(2, t, l);                   /* holds a list */
    assert_true(om_gc_is_tracked(top));
    assert_int_equal(count_tracked(), before + 1);  /* top; l is empty */
    om_decref(top);
    om_decref(l);
    om_decref(t);
    assert_clean();
}

/* A full collection untracks the dicts that hold nothing that may be
 * tracked; a young collection leaves them. */
static void test_dict_untracked_by_full_collection(void **state)
{
    om_object *d = om_dict_new(), *k = om_str_from_utf8("k", 1);
    om_object *l = om_list_new(0), *i = om_int_from_i64(5);

    assert_int_equal(om_dict_set(d, k, l), 0);
    assert_true(om_gc_is_tracked(d));
    assert_int_equal(om_dict_set(d, k, i), 0);  /* atomic again */
    assert_true(om_gc_is_tracked(d));           /* tracking stays */
    assert_int_equal(om_gc_collect(0), 0);
    assert_true(om_gc_is_tracked(d));
    assert_int_equal(om_gc_collect(2), 0);
    assert_false(om_gc_is_tracked(d));
    assert_int_equal(om_dict_set(d, k, l), 0);  /* a container again */
    assert_true(om_gc_is_tracked(d));
    om_decref(d);
    om_decref(k);
    om_decref(l);
    om_decref(i);
    assert_clean();
}

/* A list follows the dicts' rule: born untracked, tracked from the first
 * item that may be in a cycle, whichever way it goes in, untracked again
 * by a full collection only; a cycle through a list is still found. */
static void test_list_tracking(void **state)
{
    om_object *l = om_list_new(3), *i = om_int_from_i64(1000);
    om_object *s = om_str_from_utf8("s", 1), *t = om_tuple_pack(2, i, s);
    om_object *inner = om_list_new(0), *d = om_dict_new();
    om_object *holds_d = om_tuple_pack(1, d);

    assert_false(om_gc_is_tracked(l));            /* three Nones */
    assert_int_equal(om_list_append(l, i), 0);
    assert_int_equal(om_list_append(l, s), 0);
    assert_int_equal(om_list_append(l, t), 0);    /* an untracked tuple */
    assert_int_equal(om_list_extend(l, t), 0);
    assert_false(om_gc_is_tracked(l));
    om_incref(inner);
    assert_int_equal(om_list_set(l, 0, inner), 0);   /* steals */
    assert_true(om_gc_is_tracked(l));
    om_incref(i);
    assert_int_equal(om_list_set(l, 0, i), 0);    /* atomic again */
    assert_int_equal(om_gc_collect(1), 0);
    assert_true(om_gc_is_tracked(l));             /* a young one keeps it */
    assert_int_equal(om_check(), 0);
    assert_int_equal(om_gc_collect(2), 0);
    assert_false(om_gc_is_tracked(l));            /* a full one does not */
    assert_int_equal(om_list_extend(l, holds_d), 0);  /* d, by extend */
    assert_true(om_gc_is_tracked(l));
    assert_int_equal(om_list_len(l), 9);
    assert_int_equal(om_gc_collect(2), 0);
    assert_true(om_gc_is_tracked(l));             /* the dict may be */
    assert_int_equal(om_list_append(l, inner), 0);
    assert_int_equal(om_list_append(inner, l), 0);  /* l -> inner -> l */
    assert_true(om_gc_is_tracked(inner));
    om_decref(holds_d);
    om_decref(d);
    om_decref(t);
    om_decref(s);
    om_decref(i);
    om_decref(l);
    om_decref(inner);
    assert_int_equal(om_gc_collect(2), 2);  /* l and inner; the empty d
                                               was not tracked */
    assert_clean();
}

/* om_check finds an untracked list that holds a list (gc.3): the rule
 * that lets atomic lists leave the collector broken by hand. */
static void test_check_finds_untracked_container(void **state)
{
    om_object *holder = om_list_new(0), *l = om_list_new(0);
    om_object *inner = om_list_new(0);

    assert_int_equal(om_list_append(l, inner), 0);
    assert_int_equal(om_list_append(holder, l), 0);
    assert_true(om_gc_is_tracked(holder) && om_gc_is_tracked(l));
    assert_int_equal(om_check(), 0);
    om_gc_untrack(l);                   /* holds inner, yet untracked */
    assert_check_finds("gc.3");
    om_gc_track(l);
    assert_int_equal(om_check(), 0);
    om_decref(inner);
    om_decref(l);
    om_decref(holder);
    assert_clean();
}

/* om_check finds a broken generation list (gc.1) and says so; the list
 * mended, it passes again. */
static void test_check_finds_broken_list(void **state)
{
    om_object *a = om_list_new(0), *b = om_list_new(0);
    struct omi_gc_head *hb = omi_object_gc_head(b);
    uintptr_t saved_prev;

    om_gc_track(a);                     /* empty lists are not */
    om_gc_track(b);
    saved_prev = hb->prev;
    assert_int_equal(om_check(), 0);
    hb->prev = (uintptr_t)hb;           /* b's prev no longer a's head */
    assert_check_finds("gc.1");
    hb->prev = saved_prev;
    assert_int_equal(om_check(), 0);
    om_decref(a);
    om_decref(b);
    assert_clean();
}

/* om_check finds a generation list holding a dead object (gc.2): one
 * whose refcnt went to 0, one freed (its type the freed one, which is
 * no GC type) while still on the list; mended, it passes again. */
static void test_check_finds_dead_member(void **state)
{
    om_object *a = node_new(&node_type, NULL);
    ptrdiff_t refcnt = a->refcnt;

    assert_true(om_gc_is_tracked(a));
    assert_int_equal(om_check(), 0);
    a->refcnt = 0;
    assert_check_finds("gc.2");
    a->refcnt = refcnt;
    assert_int_equal(om_check(), 0);
    a->type = &omi_freed_type;
    assert_check_finds("gc.2");
    a->type = &node_type;
    assert_int_equal(om_check(), 0);
    om_decref(a);
    assert_clean();
}

/* ---- Incremental mode ---- */

/* Keep n new empty lists in holder (old once collected twice), tracked
 * by hand (an empty list is not: list.c) to stand for the containers a
 * program keeps; only a full collection would untrack them. */
static void fill(om_object *holder, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        om_object *l = om_list_new(0);
        om_gc_track(l);
        assert_int_equal(om_list_append(holder, l), 0);
        om_decref(l);
    }
}

/* Allocation that triggers automatic collections: n lists that live a
 * little (dropped 5000 at a time). */
static void churn(size_t n)
{
    om_object *tmp = om_list_new(0);

    for (size_t i = 0; i < n; i++) {
        om_object *l = om_list_new(0);
        assert_int_equal(om_list_append(tmp, l), 0);
        om_decref(l);
        if (i % 5000 == 4999)
            om_list_clear(tmp);
    }
    om_decref(tmp);
}

/* Garbage cycles that reached the old generation are collected by
 * increments (the old generation stays far below the 200,000 objects
 * that would bring a full collection). */
static void test_incremental_collects_old_garbage(void **state)
{
    struct om_gc_stats s0[3], s1[3];
    om_object *old, *holder;
    size_t before;

    if (torture())
        skip();                         /* no increments: every alloc is
                                           a generation 0 collection */
    old = om_list_new(0);
    holder = om_list_new(0);
    om_gc_set_incremental(true);
    fill(old, 20000);
    for (int i = 0; i < 1000; i++) {    /* cycles, alive for now */
        om_object *l = om_list_new(0);
        assert_int_equal(om_list_append(l, l), 0);
        assert_int_equal(om_list_append(holder, l), 0);
        om_decref(l);
    }
    om_gc_collect(1);
    om_gc_collect(1);                   /* all of it in generation 2 */
    om_list_clear(holder);              /* 1000 old garbage cycles */
    before = om_live_objects();
    om_gc_get_stats(s0);
    churn(400000);
    om_gc_get_stats(s1);
    assert_true(s1[2].collections > s0[2].collections);   /* increments */
    assert_true(om_live_objects() <= before - 1000);
    om_gc_set_incremental(false);
    om_decref(holder);
    om_decref(old);
    om_gc_collect(2);
    assert_clean();
}

/* Threshold 1 at 0 (allowed, as gc.set_threshold(1, 0)) in incremental
 * mode: an increment sizes its slice per generation 1 collection and
 * divided by that threshold (fuzz_objects found it). */
static void test_incremental_threshold1_zero(void **state)
{
    struct om_gc_stats s0[3], s1[3];
    om_object *n[8];

    if (torture())
        skip();                         /* no increments: every alloc is
                                           a generation 0 collection */
    om_gc_set_incremental(true);
    om_gc_set_threshold(1, 0, 10);
    om_gc_get_stats(s0);
    for (int i = 0; i < 8; i++)
        n[i] = node_new(&node_type, NULL);      /* no free list: counted */
    om_gc_get_stats(s1);
    assert_true(s1[2].collections > s0[2].collections);   /* increments */
    for (int i = 0; i < 8; i++)
        om_decref(n[i]);
    om_gc_set_threshold(700, 10, 10);
    om_gc_set_incremental(false);
    assert_clean();
}

/* A huge container (over 64 KiB) in an old garbage cycle: increments
 * leave it out, so the cycle waits for a full collection. */
static void test_incremental_leaves_huge_containers(void **state)
{
    om_object *big, *keep;
    size_t before;

    if (torture())
        skip();
    big = om_list_new(0);
    keep = om_list_new(0);
    fill(big, 10000);                   /* 80 KB of items */
    assert_int_equal(om_list_append(big, big), 0);     /* a cycle */
    fill(keep, 1000);
    om_gc_set_incremental(true);
    om_gc_collect(1);
    om_gc_collect(1);                   /* all old */
    om_decref(big);                     /* garbage: big and its 10,000 */
    before = om_live_objects();
    churn(200000);                      /* rounds of increments */
    assert_true(om_live_objects() >= before);   /* big still there */
    assert_int_equal(om_gc_collect(2), 10001);  /* a full one finds it */
    om_gc_set_incremental(false);
    om_decref(keep);
    assert_clean();
}

/* 3.14.0's failure: cycles that die old, made fast.  A ring of 20,000
 * slots, each new 2-cycle replacing the one there (which has reached the
 * old generation by then): the heap stays bounded. */
static void test_incremental_bounded_growth(void **state)
{
    enum { RING = 20000, STEPS = 300000 };
    size_t peak = 0, base;
    om_object *ring;

    if (torture())
        skip();
    ring = om_list_new(RING);
    om_gc_set_incremental(true);
    base = om_live_objects();
    for (size_t i = 0; i < STEPS; i++) {
        om_object *a = om_list_new(0), *b = om_list_new(0);
        assert_int_equal(om_list_append(a, b), 0);
        assert_int_equal(om_list_append(b, a), 0);
        om_decref(b);
        assert_int_equal(om_list_set(ring, i % RING, a), 0);  /* steals */
        if (om_live_objects() > peak)
            peak = om_live_objects();
    }
    /* Live: 2 * RING in the ring; the rest is garbage waiting.  Without
     * collection it would reach 2 * STEPS = 600,000; with the fallback
     * full collection alone (the old generation doubling past 100,000),
     * above 200,000.  Increments keep it below 120,000 (73,024 here). */
    print_message("incremental: peak %zu objects above the start (ring "
                  "holds %d)\n", peak - base, 2 * RING);
    assert_true(peak - base < 2 * RING * 3);
    om_gc_set_incremental(false);
    om_decref(ring);
    om_gc_collect(2);
    assert_clean();
}

static bool list_has(om_object *list, om_object *o)
{
    for (size_t i = 0; i < om_list_len(list); i++)
        if (om_list_get(list, i) == o)
            return true;
    return false;
}

static void test_referents_referrers(void **state)
{
    om_object *a = om_list_new(0), *b = om_list_new(0);
    om_object *x = om_int_from_i64(7);
    om_object *refs;

    assert_int_equal(om_list_append(a, b), 0);
    assert_int_equal(om_list_append(a, x), 0);
    refs = om_gc_get_referents(a);
    assert_int_equal(om_list_len(refs), 2);
    assert_ptr_equal(om_list_get(refs, 0), b);
    assert_ptr_equal(om_list_get(refs, 1), x);
    om_decref(refs);
    refs = om_gc_get_referrers(b);
    assert_int_equal(om_list_len(refs), 1);
    assert_ptr_equal(om_list_get(refs, 0), a);
    om_decref(refs);
    refs = om_gc_get_objects(-1);
    assert_true(list_has(refs, a));     /* holds a list */
    assert_false(list_has(refs, b));    /* empty: untracked */
    assert_false(list_has(refs, refs));
    assert_false(list_has(refs, x));
    om_decref(refs);
    errno = 0;
    assert_null(om_gc_get_objects(3));
    assert_int_equal(errno, EINVAL);
    om_decref(a);
    om_decref(b);
    om_decref(x);
    assert_clean();
}

/* A cycle 1,000,000 lists long: the collector walks it without
 * recursion, and freeing it takes a flat stack (the trashcan). */
static void test_deep_cycle(void **state)
{
    enum { N = 1000000 };
    om_object *first = om_list_new(0), *cur = first;

    for (int i = 1; i < N; i++) {
        om_object *next = om_list_new(0);
        assert_int_equal(om_list_append(cur, next), 0);
        om_decref(next);
        cur = next;
    }
    assert_int_equal(om_list_append(cur, first), 0);
    om_decref(first);
    assert_int_equal(om_gc_collect(2), N);
    assert_clean();
}

/* ---- Random graphs against a model ---- */

/*
 * A random graph of nodes (with and without a finalizer), instances
 * (some with a dict of their own), lists, dicts and tuples, mirrored by
 * a model of its edges.  The test holds some objects (the roots) and
 * changes the graph step by step, touching only what the roots reach
 * (the rest may go at any GC allocation), collecting a random generation
 * between steps, and checks the heap against reachability in the model
 * after each step and each collection:
 *   - what the roots reach is alive, and every live object holds what
 *     the model says (a wrong clear leaves an object alive but empty);
 *   - an unreachable object that no unreachable cycle reaches was freed
 *     at once, by reference counting;
 *   - after om_gc_collect(2) nothing unreachable is left (with the heap
 *     frozen, no cycle and nothing a cycle reaches goes), and it
 *     returned the number of tracked objects it found, exactly;
 *   - each finalizer ran once, when its object died, and found its
 *     reference intact (PEP 442: finalizers run before any clear);
 *   - a callback ref the test holds was called once, when its target
 *     died, with the target's refs cleared; one that a dict of the graph
 *     holds: never while its target lives, once when the dict outlived
 *     the target, never when both were garbage in one full collection;
 *   - om_live_objects() counts the model's live objects, exactly.
 * Liveness is read through a weak reference to each object; lists, dicts
 * and tuples take none, so each holds a tag (below) that nothing else
 * holds, and the weak reference names the tag, which dies with it.
 * Objects come in clusters of 16, most edges inside one, so that whole
 * clusters of cycles become garbage at once.  Rounds run with low
 * thresholds (automatic collections between the test's), incremental
 * mode (with ballast enough that increments split the graph) and a
 * frozen heap.  A failure names the round's seed and the step.
 */
enum { RG_MAX = 640, RG_SLOTS = 6, RG_GREFS = 64, RG_STEPS = 12 };

enum rg_kind { RG_NODE, RG_FIN, RG_INST, RG_LIST, RG_DICT, RG_TUPLE,
               RG_KINDS };

static const char *const rg_kind_name[RG_KINDS] = {
    "node", "fin_node", "instance", "list", "dict", "tuple",
};

/* A graph dict's keys: its slots 0 .. RG_SLOTS - 1, its tag, its refs.
 * Small ints are immortal: the keys add no object to count. */
#define RG_TAG_KEY 100
#define RG_REF_KEY 200

enum rg_when { RG_STEP, RG_PARTIAL, RG_FULL };  /* what came before a check */

struct rg_cb {                          /* a callback ref's record */
    om_object *ref;                     /* the ref (NULL: none) */
    int target;                         /* the object it names */
    int calls;
};

struct rg_obj {
    om_object *o;                       /* valid while alive */
    om_object *tag;                     /* list, dict, tuple: its tag */
    om_object *idict;                   /* an instance's own dict, if any */
    om_object *wr;                      /* the test's ref to o or tag */
    struct rg_cb cb;                    /* a callback ref the test holds */
    enum rg_kind kind;
    int out[RG_SLOTS];                  /* edge targets; -1: none */
    int nout;                           /* slots in use */
    int nrefs;                          /* dicts: refs held (keys 200..) */
    int fin_calls;                      /* fin_node: finalizer calls */
    int indeg;                          /* rg_mark_cyclic's count */
    int cluster;                        /* most edges stay inside one */
    bool root;                          /* the test holds a reference */
    bool reach;                         /* the roots reach it */
    bool cyclic;                        /* unreachable, a cycle reaches it */
    bool alive, was;                    /* at this check, at the last */
};

struct rg_gref {                        /* a callback ref a dict holds */
    int target, holder;
    int key;                            /* its key in the dict */
    int expect;                         /* calls expected; -1: not known */
    struct rg_cb cb;
};

static struct {
    struct rg_obj obj[RG_MAX];
    struct rg_gref gref[RG_GREFS];
    int n, ngref;
    size_t nheld;                       /* refs the test holds */
    uint64_t seed, rnd;
    int step;
    int near;                           /* the cluster rg_is_near takes */
    om_object *cls;                     /* the instances' class */
    om_object *ballast;                 /* a list of plain nodes */
    int per;                            /* ballast nodes per new object */
    size_t nballast;
    size_t base;                        /* om_live_objects() at the start */
    bool frozen;
    const char *broken;                 /* what a finalizer or callback saw */
    int gen2_started, gen2_asked;       /* collections of generation 2 */
    int made, died_between, died_in_collect;   /* for the summary */
} rg;

/* A tag: a weakly referenceable object that is no container. */
struct rg_tag {
    om_object base;
    void *weaklist;
};

static void rg_tag_dealloc(om_object *o)
{
    om_object_free(o);
}

static const struct om_type rg_tag_type = {
    .name = "rg_tag", .basic_size = sizeof(struct rg_tag),
    .dealloc = rg_tag_dealloc,
    .weaklist_offset = offsetof(struct rg_tag, weaklist),
};

struct rg_node {
    struct node n;
    int id;                             /* its index in the model */
};

/* The finalizer runs before the collector clears anything: the node
 * still points where the model says. */
static void rg_finalize(om_object *o)
{
    struct rg_node *n = (struct rg_node *)o;
    struct rg_obj *m = &rg.obj[n->id];

    m->fin_calls++;
    if (n->n.ref != (m->out[0] >= 0 ? rg.obj[m->out[0]].o : NULL) &&
        !rg.broken)
        rg.broken = "a finalizer met its node cleared";
}

#define RG_NODE_TYPE(tname, fin)                                            \
    {                                                                       \
        .name = tname, .basic_size = sizeof(struct rg_node),                \
        .flags = OM_TPFLAGS_GC, .dealloc = node_dealloc,                    \
        .traverse = node_traverse, .clear = node_clear, .finalize = fin,    \
        .weaklist_offset = offsetof(struct node, weaklist),                 \
    }

static const struct om_type rg_node_type = RG_NODE_TYPE("rg_node", NULL);
static const struct om_type rg_fin_type =
    RG_NODE_TYPE("rg_fin_node", rg_finalize);

/* Callbacks run once every ref to their target is cleared (theirs and
 * the test's), each given its own ref. */
static void rg_callback(om_object *ref, void *ctx)
{
    struct rg_cb *cb = ctx;
    om_object *t = om_weakref_get(ref);
    om_object *u = om_weakref_get(rg.obj[cb->target].wr);

    cb->calls++;
    if ((ref != cb->ref || t || u) && !rg.broken)
        rg.broken = t || u ? "a callback met a ref not cleared"
                           : "a callback was given another ref";
    om_xdecref(t);
    om_xdecref(u);
}

/* Counts the collections of generation 2, increments among them. */
static void rg_gc_callback(const char *phase, const struct om_gc_info *info,
                           void *ctx)
{
    if (info->generation == 2 && strcmp(phase, "start") == 0)
        rg.gen2_started++;
}

static void rg_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Fail, saying where: the round's seed and the step. */
static void rg_fail(const char *fmt, ...)
{
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    fail_msg("random graph %#llx, step %d: %s",
             (unsigned long long)rg.seed, rg.step, what);
}

static int rg_below(int n)
{
    return (int)(rnd_next(&rg.rnd) % (uint64_t)n);
}

/* What the weak references to m name. */
static om_object *rg_target(const struct rg_obj *m)
{
    return m->tag ? m->tag : m->o;
}

/* ---- The model ---- */

/* Mark what is unreachable but reached from an unreachable cycle of
 * live objects (alive at the last check: a dead object's references are
 * gone): peel off, as Kahn's sort does, the unreachable objects that
 * nothing unreachable refers to, until only the cycles and their reach
 * are left. */
static void rg_mark_cyclic(void)
{
    int queue[RG_MAX], head = 0, tail = 0;

    for (int i = 0; i < rg.n; i++) {
        rg.obj[i].indeg = 0;
        rg.obj[i].cyclic = !rg.obj[i].reach && rg.obj[i].alive;
    }
    for (int i = 0; i < rg.n; i++)
        for (int k = 0; rg.obj[i].cyclic && k < rg.obj[i].nout; k++)
            if (rg.obj[i].out[k] >= 0)
                rg.obj[rg.obj[i].out[k]].indeg++;
    for (int i = 0; i < rg.n; i++)
        if (rg.obj[i].cyclic && rg.obj[i].indeg == 0)
            queue[tail++] = i;
    while (head < tail) {
        struct rg_obj *m = &rg.obj[queue[head++]];
        m->cyclic = false;
        for (int k = 0; k < m->nout; k++)
            if (m->out[k] >= 0 && rg.obj[m->out[k]].cyclic &&
                --rg.obj[m->out[k]].indeg == 0)
                queue[tail++] = m->out[k];
    }
}

/* Reachability from the roots, then rg_mark_cyclic. */
static void rg_reach(void)
{
    int queue[RG_MAX], head = 0, tail = 0;

    for (int i = 0; i < rg.n; i++) {
        rg.obj[i].reach = rg.obj[i].root;
        if (rg.obj[i].root)
            queue[tail++] = i;
    }
    while (head < tail) {
        struct rg_obj *m = &rg.obj[queue[head++]];
        for (int k = 0; k < m->nout; k++) {
            int t = m->out[k];
            if (t >= 0 && !rg.obj[t].reach) {
                rg.obj[t].reach = true;
                queue[tail++] = t;
            }
        }
    }
    rg_mark_cyclic();
}

static bool rg_is_mutable(const struct rg_obj *m)
{
    return m->kind != RG_TUPLE;
}

static bool rg_has_edge(const struct rg_obj *m)
{
    for (int k = 0; rg_is_mutable(m) && k < m->nout; k++)
        if (m->out[k] >= 0)
            return true;
    return false;
}

static bool rg_is_near(const struct rg_obj *m)
{
    return m->cluster == rg.near;
}

static bool rg_is_root(const struct rg_obj *m)
{
    return m->root;
}

static bool rg_is_not_root(const struct rg_obj *m)
{
    return !m->root;
}

static bool rg_lacks_cb(const struct rg_obj *m)
{
    return !m->cb.ref;
}

static bool rg_has_room(const struct rg_obj *m)
{
    return m->kind == RG_DICT && m->nrefs < 2;
}

/* A random reachable object that pred accepts (NULL: any); -1: none. */
static int rg_pick(bool (*pred)(const struct rg_obj *))
{
    int seen = 0, pick = -1;

    for (int i = 0; i < rg.n; i++)
        if (rg.obj[i].reach && (!pred || pred(&rg.obj[i])) &&
            rg_below(++seen) == 0)
            pick = i;
    return pick;
}

/* A random reachable object, in cluster c three times in four (when it
 * has one): the graph is made of clusters, their own cycles inside,
 * that die whole when the last reference from outside goes. */
static int rg_pick_near(int c)
{
    int b = -1;

    rg.near = c;
    if (rg_below(4) != 0)
        b = rg_pick(rg_is_near);
    return b >= 0 ? b : rg_pick(NULL);
}

/* ---- Changing the graph (what the roots reach only) ---- */

/* Point slot of a at b, or empty it (b < 0), and the model with it.  A
 * list's slot k is its item k + 1 (item 0 is the tag); slot nout appends
 * to it. */
static void rg_link(int a, int slot, int b)
{
    struct rg_obj *m = &rg.obj[a];
    om_object *o = m->o, *to = b >= 0 ? rg.obj[b].o : NULL;
    om_object *key = om_int_from_i64(slot);

    switch (m->kind) {
    case RG_NODE:
    case RG_FIN:
        if (to)
            node_set(o, to);
        else
            node_clear(o);
        break;
    case RG_INST:
        assert_int_equal(to ? om_setattr(o, "other", to)
                            : om_delattr(o, "other"), 0);
        break;
    case RG_LIST:
        if (slot == m->nout) {
            assert_int_equal(om_list_append(o, to), 0);
            m->nout++;
            break;
        }
        to = to ? to : om_none();
        om_incref(to);
        assert_int_equal(om_list_set(o, (size_t)slot + 1, to), 0);
        break;
    case RG_DICT:
        assert_int_equal(to ? om_dict_set(o, key, to)
                            : om_dict_del(o, key), 0);
        break;
    default:
        fail_msg("a tuple's edges do not change");
    }
    m->out[slot] = b;
    om_decref(key);
}

/* A slot of a to point somewhere: a list grows to RG_SLOTS. */
static int rg_slot_for(const struct rg_obj *m)
{
    if (m->kind == RG_LIST && m->nout < RG_SLOTS)
        return rg_below(m->nout + 1);
    return m->kind == RG_LIST || m->kind == RG_DICT ? rg_below(RG_SLOTS)
                                                    : 0;
}

/* A tuple of tag and up to three reachable objects: a tuple's edges are
 * for life, and point only at older objects. */
static om_object *rg_make_tuple(struct rg_obj *m, om_object *tag)
{
    om_object *it[3];
    int want = rg_below(4);

    for (m->nout = 0; m->nout < want; m->nout++) {
        if ((m->out[m->nout] = rg_pick_near(m->cluster)) < 0)
            break;
        it[m->nout] = rg.obj[m->out[m->nout]].o;
    }
    switch (m->nout) {
    case 0:
        return om_tuple_pack(1, tag);
    case 1:
        return om_tuple_pack(2, tag, it[0]);
    case 2:
        return om_tuple_pack(3, tag, it[0], it[1]);
    default:
        return om_tuple_pack(4, tag, it[0], it[1], it[2]);
    }
}

/* A list, dict or tuple holding a new tag. */
static om_object *rg_make_holder(struct rg_obj *m)
{
    om_object *tag = om_new(&rg_tag_type), *o;
    om_object *key = om_int_from_i64(RG_TAG_KEY);

    assert_non_null(tag);
    m->tag = tag;
    if (m->kind == RG_LIST) {
        o = om_list_new(0);
        assert_non_null(o);
        assert_int_equal(om_list_append(o, tag), 0);
    } else if (m->kind == RG_DICT) {
        o = om_dict_new();
        assert_non_null(o);
        assert_int_equal(om_dict_set(o, key, tag), 0);
        m->nout = RG_SLOTS;
    } else {
        o = rg_make_tuple(m, tag);
    }
    assert_non_null(o);
    om_decref(tag);
    return o;
}

/* The object of model entry m (number id), of m->kind. */
static om_object *rg_make(struct rg_obj *m, int id)
{
    om_object *o;

    switch (m->kind) {
    case RG_NODE:
    case RG_FIN:
        o = node_new(m->kind == RG_FIN ? &rg_fin_type : &rg_node_type, NULL);
        ((struct rg_node *)o)->id = id;
        m->nout = 1;
        return o;
    case RG_INST:
        o = om_instance_new(rg.cls);
        assert_non_null(o);
        if (rg_below(3) == 0) {         /* vars(o): a dict of its own */
            m->idict = om_instance_dict(o);
            assert_non_null(m->idict);
            om_decref(m->idict);
        }
        m->nout = 1;
        return o;
    default:
        return rg_make_holder(m);
    }
}

/* The test holds a callback ref to m. */
static void rg_add_cb(struct rg_obj *m)
{
    m->cb.target = (int)(m - rg.obj);
    m->cb.ref = om_weakref_new(rg_target(m), rg_callback, &m->cb);
    assert_non_null(m->cb.ref);
    rg.nheld++;
}

/* Dict h holds a callback ref to t, under a key of its own. */
static void rg_add_gref(int h, int t)
{
    struct rg_gref *g = &rg.gref[rg.ngref];
    om_object *key;

    g->holder = h;
    g->target = t;
    g->key = RG_REF_KEY + rg.obj[h].nrefs;
    key = om_int_from_i64(g->key);
    g->expect = -1;
    g->cb.calls = 0;
    g->cb.target = t;
    g->cb.ref = om_weakref_new(rg_target(&rg.obj[t]), rg_callback, &g->cb);
    assert_non_null(g->cb.ref);
    assert_int_equal(om_dict_set(rg.obj[h].o, key, g->cb.ref), 0);
    om_decref(g->cb.ref);
    om_decref(key);
    rg.obj[h].nrefs++;
    rg.ngref++;
}

/* A new object of a random kind, a root, with the test's weak ref to it
 * and, one time in three, a callback ref; then rg.per ballast nodes,
 * which the old generation keeps between the graph's objects: with more
 * than a slice (1024) of them, increments split the graph.  (The reach
 * flags must be current: a tuple picks its items.) */
static int rg_new(void)
{
    int i = rg.n;
    struct rg_obj *m = &rg.obj[i];

    assert_true(i < RG_MAX);
    memset(m, 0, sizeof(*m));
    memset(m->out, -1, sizeof(m->out));
    m->kind = (enum rg_kind)rg_below(RG_KINDS);
    m->cluster = i / 16;
    m->o = rg_make(m, i);
    m->root = m->reach = m->alive = true;
    rg.n++;
    m->wr = om_weakref_new(rg_target(m), NULL, NULL);
    assert_non_null(m->wr);
    rg.nheld++;
    if (rg_below(3) == 0)
        rg_add_cb(m);
    for (int k = 0; k < rg.per; k++, rg.nballast++) {
        om_object *b = node_new(&node_type, NULL);
        assert_int_equal(om_list_append(rg.ballast, b), 0);
        om_decref(b);
    }
    return i;
}

static void rg_drop_root(int i)
{
    rg.obj[i].root = false;
    om_decref(rg.obj[i].o);
}

static void rg_add_edge(void)
{
    int a = rg_pick(rg_is_mutable), b;

    if (a >= 0 && (b = rg_pick_near(rg.obj[a].cluster)) >= 0)
        rg_link(a, rg_slot_for(&rg.obj[a]), b);
}

static void rg_remove_edge(void)
{
    int a = rg_pick(rg_has_edge), slot = -1, seen = 0;

    if (a < 0)
        return;
    for (int k = 0; k < rg.obj[a].nout; k++)
        if (rg.obj[a].out[k] >= 0 && rg_below(++seen) == 0)
            slot = k;
    rg_link(a, slot, -1);
}

/* A new object, kept as a root, or put in a reachable container, or
 * dropped at once (after pointing at itself, sometimes): garbage. */
static void rg_add_object(void)
{
    int i, a;

    if (rg.n == RG_MAX)
        return;
    i = rg_new();
    switch (rg_below(3)) {
    case 0:
        return;
    case 1:
        if ((a = rg_pick(rg_is_mutable)) >= 0)
            rg_link(a, rg_slot_for(&rg.obj[a]), i);
        break;
    default:
        if (rg_is_mutable(&rg.obj[i]) && rg_below(2))
            rg_link(i, rg_slot_for(&rg.obj[i]), i);
    }
    rg_drop_root(i);
}

static void rg_add_ref(void)
{
    int a;

    if (rg_below(2)) {
        if ((a = rg_pick(rg_lacks_cb)) >= 0)
            rg_add_cb(&rg.obj[a]);
    } else if (rg.ngref < RG_GREFS && (a = rg_pick(rg_has_room)) >= 0) {
        rg_add_gref(a, rg_pick(NULL));
    }
}

/* One random change, as likely to add references as to drop them.  A
 * frozen heap gets only those that drop references: a new object, or an
 * item that an untracked list or dict gets, would be tracked, and the
 * collector could then free what the freeze did not take. */
static void rg_change(void)
{
    int a;

    rg_reach();
    switch (rg_below(rg.frozen ? 5 : 12)) {
    case 0: case 1:
        if ((a = rg_pick(rg_is_root)) >= 0)
            rg_drop_root(a);
        break;
    case 2: case 3: case 4:
        rg_remove_edge();
        break;
    case 5: case 6: case 7:
        rg_add_edge();
        break;
    case 8: case 9:
        rg_add_object();
        break;
    case 10:
        if ((a = rg_pick(rg_is_not_root)) >= 0) {
            om_incref(rg.obj[a].o);
            rg.obj[a].root = true;
        }
        break;
    default:
        rg_add_ref();
    }
}

/* n objects, all roots while edges go in, then nine roots in ten
 * dropped. */
static void rg_build(int n)
{
    for (int i = 0; i < n; i++) {
        rg_reach();
        rg_new();
        for (int e = 1 + rg_below(4); e > 0; e--)
            rg_add_edge();
        if (rg_below(4) == 0)
            rg_add_ref();
    }
    for (int i = 0; i < rg.n; i++)
        if (rg_below(10) != 0)
            rg_drop_root(i);
}

/* ---- Checking the heap against the model ---- */

/* Item k of m's container as the model has it (a list's slot k - 1). */
static om_object *rg_item(const struct rg_obj *m, int k)
{
    if (k == 0)
        return m->tag;
    if (m->out[k - 1] < 0)
        return m->kind == RG_LIST ? om_none() : NULL;
    return rg.obj[m->out[k - 1]].o;
}

/* The references a dict holds: its tag, its slots, the graph's refs
 * (keyed from RG_REF_KEY on). */
static bool rg_dict_as_modelled(int i)
{
    const struct rg_obj *m = &rg.obj[i];
    size_t n = 1 + (size_t)m->nrefs;
    bool same = om_dict_get(m->o, om_int_from_i64(RG_TAG_KEY)) == m->tag;

    for (int k = 0; k < RG_SLOTS; k++) {
        n += m->out[k] >= 0;
        same &= om_dict_get(m->o, om_int_from_i64(k)) == rg_item(m, k + 1);
    }
    for (int g = 0; g < rg.ngref; g++)
        if (rg.gref[g].holder == i)
            same &= om_dict_get(m->o, om_int_from_i64(rg.gref[g].key)) ==
                    rg.gref[g].cb.ref;
    return same && om_dict_len(m->o) == n;
}

/* Does live object i hold what the model says?  A collector that
 * clears a live object (one it took for garbage, wrongly) leaves it
 * alive but empty. */
static bool rg_as_modelled(int i)
{
    const struct rg_obj *m = &rg.obj[i];
    om_object *a;
    bool same;

    switch (m->kind) {
    case RG_NODE:
    case RG_FIN:
        return ((struct node *)m->o)->ref == rg_item(m, 1);
    case RG_INST:
        a = om_getattr(m->o, "other");
        same = a == rg_item(m, 1);
        om_xdecref(a);
        if (m->idict) {                 /* it keeps the dict it has */
            a = om_instance_dict(m->o);
            same &= a == m->idict;
            om_xdecref(a);
        }
        return same;
    case RG_LIST:
        same = om_list_len(m->o) == (size_t)m->nout + 1;
        for (int k = 0; same && k <= m->nout; k++)
            same = om_list_get(m->o, (size_t)k) == rg_item(m, k);
        return same;
    case RG_DICT:
        return rg_dict_as_modelled(i);
    default:
        same = om_tuple_len(m->o) == (size_t)m->nout + 1;
        for (int k = 0; same && k <= m->nout; k++)
            same = om_tuple_get(m->o, (size_t)k) == rg_item(m, k);
        return same;
    }
}

/* Object i against the model: its liveness read now, what it holds,
 * its finalizer and callback counts. */
static void rg_check_obj(int i, enum rg_when when)
{
    struct rg_obj *m = &rg.obj[i];
    om_object *t = om_weakref_get(m->wr);
    const char *kind = rg_kind_name[m->kind];

    m->was = m->alive;
    m->alive = t != NULL;
    if (m->was && !m->alive)
        *(when == RG_STEP ? &rg.died_between : &rg.died_in_collect) += 1;
    if (t && (t != rg_target(m) || !m->was))
        rg_fail("%s %d: its weak ref gives %s", kind, i,
                m->was ? "another object" : "it back from the dead");
    om_xdecref(t);
    if (m->reach && !m->alive)
        rg_fail("%s %d is reachable, and dead", kind, i);
    if (m->alive && !rg_as_modelled(i))
        rg_fail("%s %d is alive, and not as it was left", kind, i);
    if (!m->reach && m->alive && !m->cyclic)
        rg_fail("%s %d: no reference left, still alive", kind, i);
    if (!m->reach && m->alive && !rg.frozen && when == RG_FULL)
        rg_fail("%s %d is unreachable, alive after a full collection",
                kind, i);
    if (m->cyclic && m->was && !m->alive && rg.frozen)
        rg_fail("%s %d, frozen garbage, was freed", kind, i);
    if (m->kind == RG_FIN && m->fin_calls != !m->alive)
        rg_fail("%s %d, %s: its finalizer ran %d times", kind, i,
                m->alive ? "alive" : "dead", m->fin_calls);
    if (m->cb.ref && m->cb.calls != !m->alive)
        rg_fail("%s %d, %s: its callback ran %d times", kind, i,
                m->alive ? "alive" : "dead", m->cb.calls);
}

/* A ref in the graph: its callback runs when its target dies while it
 * lives, and not when both are garbage in one collection; when both
 * died in one step (one chain of deallocations), either may be first. */
static void rg_check_gref(int i, enum rg_when when)
{
    struct rg_gref *g = &rg.gref[i];
    const struct rg_obj *t = &rg.obj[g->target], *h = &rg.obj[g->holder];

    if (t->alive) {
        if (!h->alive)
            g->expect = 0;              /* went with its dict */
        if (g->cb.calls != 0)
            rg_fail("ref %d: callback before its target died", i);
        return;
    }
    if (g->expect < 0 && h->alive)
        g->expect = 1;                  /* it outlived its target */
    else if (g->expect < 0 && when == RG_FULL && t->was && h->was)
        g->expect = 0;                  /* garbage with its target */
    else if (g->expect < 0 && g->cb.calls <= 1)
        g->expect = g->cb.calls;
    if (g->cb.calls != g->expect)
        rg_fail("ref %d (in dict %d, to %s %d): callback ran %d times, "
                "%d expected", i, g->holder, rg_kind_name[t->kind],
                g->target, g->cb.calls, g->expect);
}

/* Objects alive by the weak refs: the model's, their tags and dicts,
 * the refs. */
static size_t rg_expected_live(void)
{
    size_t n = rg.base + rg.nheld + rg.nballast;

    for (int i = 0; i < rg.n; i++)
        if (rg.obj[i].alive)
            n += 1 + (rg.obj[i].tag || rg.obj[i].idict);
    for (int i = 0; i < rg.ngref; i++)
        if (rg.obj[rg.gref[i].holder].alive)
            n++;
    return n;
}

/* The whole heap against the model (when: what came just before). */
static void rg_check(enum rg_when when)
{
    rg_reach();
    for (int i = 0; i < rg.n; i++)
        rg_check_obj(i, when);
    for (int i = 0; i < rg.ngref; i++)
        rg_check_gref(i, when);
    if (rg.broken)
        rg_fail("%s", rg.broken);
    if (om_live_objects() != rg_expected_live())
        rg_fail("%zu objects live, %zu expected", om_live_objects(),
                rg_expected_live());
    assert_int_equal(om_list_len(om_gc_garbage()), 0);
    assert_int_equal(om_check(), 0);
}

/* What om_gc_collect(2) finds, right after rg_check: the unreachable
 * objects left that are tracked (instances' dicts too), and the refs
 * their dicts hold. */
static ptrdiff_t rg_expected_found(void)
{
    ptrdiff_t n = 0;

    for (int i = 0; i < rg.n; i++)
        if (!rg.obj[i].reach && rg.obj[i].alive)
            n += om_gc_is_tracked(rg.obj[i].o) +
                 (rg.obj[i].idict && om_gc_is_tracked(rg.obj[i].idict));
    for (int i = 0; i < rg.ngref; i++)
        if (!rg.obj[rg.gref[i].holder].reach &&
            rg.obj[rg.gref[i].holder].alive)
            n++;
    return n;
}

/* Collect generation gen (after rg_check), then check.  A younger
 * generation, or an increment, finds some of the garbage at most. */
static void rg_collect(int gen)
{
    ptrdiff_t found = rg_expected_found(), got = om_gc_collect(gen);

    rg.gen2_asked += gen == 2;
    if (rg.frozen ? got != 0 : gen == 2 ? got != found
                                         : got < 0 || got > found)
        rg_fail("om_gc_collect(%d) found %td, expected %s%td", gen, got,
                rg.frozen || gen == 2 ? "" : "at most ",
                rg.frozen ? 0 : found);
    rg_check(gen == 2 ? RG_FULL : RG_PARTIAL);
}

/* Steps of up to n changes, each checked, then collected or not. */
static void rg_steps(int steps, int n)
{
    for (int s = 0; s < steps; s++, rg.step++) {
        for (int k = 1 + rg_below(n); k > 0; k--)
            rg_change();
        rg_check(RG_STEP);
        if (rg_below(4) > 0)
            rg_collect(rg_below(3));
    }
}

/* Freeze the heap, young objects and garbage cycles included, then drop
 * references: the collector frees no frozen object, though reference
 * counting does; unfrozen, a full collection finds the garbage. */
static void rg_frozen_steps(void)
{
    for (int k = 0; k < 16; k++)        /* young objects, some garbage */
        rg_change();
    rg_check(RG_STEP);
    om_gc_freeze();
    assert_true(om_gc_get_freeze_count() > 0);
    rg.frozen = true;
    rg_steps(4, 8);
    om_gc_unfreeze();
    assert_int_equal(om_gc_get_freeze_count(), 0);
    rg.frozen = false;
    rg_collect(2);
}

/* The end of a round: no roots, a full collection (every finalizer and
 * callback has run then), the refs dropped: back to the start. */
static void rg_release(void)
{
    for (int i = 0; i < rg.n; i++)
        if (rg.obj[i].root)
            rg_drop_root(i);
    rg_check(RG_STEP);
    rg_collect(2);
    for (int i = 0; i < rg.n; i++) {
        om_decref(rg.obj[i].wr);
        om_xdecref(rg.obj[i].cb.ref);
    }
    rg.nheld = 0;
    assert_int_equal(om_list_clear(rg.ballast), 0);
    rg.nballast = 0;
    assert_int_equal(om_live_objects(), rg.base);
}

/* One graph: built, changed step by step (frozen for a while, when
 * freeze), released; with threshold 0 at t0, increments or not. */
static void rg_round(uint64_t seed, int t0, bool incremental, bool freeze)
{
    rg.seed = rg.rnd = seed;
    rg.n = rg.ngref = rg.step = 0;
    rg.nheld = 0;
    rg.gen2_started = rg.gen2_asked = 0;
    om_gc_set_threshold(t0, t0 < 700 ? 3 : 10, t0 < 700 ? 3 : 10);
    om_gc_set_incremental(incremental);
    rg.cls = om_class_new("RG", NULL, 0, 0);
    rg.ballast = om_list_new(0);
    assert_true(rg.cls && rg.ballast);
    rg.per = incremental ? 8 : 0;
    rg.base = om_live_objects();
    rg_build(200 + rg_below(100));
    rg_check(RG_STEP);
    if (freeze)
        rg_frozen_steps();
    rg_steps(RG_STEPS, 24);
    rg_release();
    if (incremental && !torture())      /* increments ran */
        assert_true(rg.gen2_started > rg.gen2_asked);
    rg.made += rg.n;
    om_decref(rg.ballast);
    om_decref(rg.cls);
    om_gc_set_incremental(false);
}

static void test_random_graphs(void **state)
{
    static const struct {
        uint64_t seed;
        int t0;                         /* threshold 0 */
        bool incremental, freeze;
    } rounds[] = {
        { 0x9e3779b97f4a7c15ull, 700, false, false },
        { 0x243f6a8885a308d3ull, 25, false, false },
        { 0x13198a2e03707344ull, 25, true, false },
        { 0xa4093822299f31d0ull, 100, true, false },
        { 0x082efa98ec4e6c89ull, 700, false, true },
        { 0x452821e638d01377ull, 10, true, true },
    };

    memset(&rg, 0, sizeof(rg));
    assert_int_equal(om_gc_callback_add(rg_gc_callback, NULL), 0);
    for (size_t r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++)
        rg_round(rounds[r].seed, rounds[r].t0, rounds[r].incremental,
                 rounds[r].freeze);
    assert_int_equal(om_gc_callback_remove(rg_gc_callback, NULL), 0);
    print_message("random graphs: %d objects, %d freed between "
                  "collections, %d by om_gc_collect\n", rg.made,
                  rg.died_between, rg.died_in_collect);
    om_gc_set_threshold(700, 10, 10);
    assert_int_equal(om_gc_collect(2), 0);
    assert_clean();
}

/* ---- Static probes (src/probe.h), as gdb reads them ---- */

/* In a child run under gdb: 50 garbage 2-cycles of lists collected, then
 * 60,000 blocks of 64 bytes (several arenas), all but every 1000th freed
 * and given back (purges), then the rest (the arenas released); no
 * purger thread. */
static int probe_child(void)
{
    static void *v[60000];

    om_set_purge_delay(-1);             /* only om_collect gives back */
    for (int i = 0; i < 50; i++) {
        om_object *a = om_list_new(0), *b = om_list_new(0);

        if (!a || !b || om_list_append(a, b) != 0 ||
            om_list_append(b, a) != 0)
            return 3;
        om_decref(a);
        om_decref(b);
    }
    if (om_gc_collect(2) != 100)
        return 4;
    for (int i = 0; i < 60000; i++)
        if (!(v[i] = om_malloc(64)))
            return 5;
    for (int i = 0; i < 60000; i++)
        if (i % 1000)
            om_free(v[i]);
    om_collect(true);
    for (int i = 0; i < 60000; i += 1000)
        om_free(v[i]);
    om_collect(true);
    return om_check() == 0 ? 0 : 6;
}

/* A gdb command file that prints a line for each probe hit: "NAME A B"
 * (addresses as their remainder modulo the arena or the page). */
static const char probe_script[] =
    "set pagination off\n"
    "break -probe-stap objmem:arena__new\n"
    "commands\nsilent\n"
    "printf \"hit arena__new %ld\\n\", $_probe_arg0 % %ARENA%\n"
    "continue\nend\n"
    "break -probe-stap objmem:arena__release\n"
    "commands\nsilent\n"
    "printf \"hit arena__release %ld\\n\", $_probe_arg0 % %ARENA%\n"
    "continue\nend\n"
    "break -probe-stap objmem:purge\n"
    "commands\nsilent\n"
    "printf \"hit purge %ld %ld\\n\", $_probe_arg0 % %POOL%, "
    "$_probe_arg1 % %POOL% + ($_probe_arg1 > 0)\n"
    "continue\nend\n"
    "break -probe-stap objmem:gc__start\n"
    "commands\nsilent\n"
    "printf \"hit gc__start %ld %ld\\n\", $_probe_arg0, $_probe_arg1\n"
    "continue\nend\n"
    "break -probe-stap objmem:gc__done\n"
    "commands\nsilent\n"
    "printf \"hit gc__done %ld %ld\\n\", $_probe_arg0, $_probe_arg1\n"
    "continue\nend\n"
    "run\n";

/* gdb finds the five probes by name and reads their arguments: the
 * collection's generation and count, arenas aligned to their size and
 * each released, purges of whole pages; and nothing else. */
static void test_probes(void **state)
{
    static const char *const kinds[] = {
        "hit gc__start 2 0\n", "hit gc__done 100 0\n",
        "hit arena__new 0\n", "hit arena__release 0\n",
        "hit purge 0 1\n",
    };
    static char script[2048];
    char path[64], cmd[8192], self[4096], line[512];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    int seen[5] = { 0 }, others = 0;
    bool exited = false;
    size_t n = 0;
    FILE *f;

    if (system("gdb --version >/dev/null 2>&1") != 0)
        skip();
    assert_true(len > 0);
    self[len] = '\0';
    /* The script with the sizes in it. */
    for (const char *s = probe_script; *s; ) {
        if (strncmp(s, "%ARENA%", 7) == 0 || strncmp(s, "%POOL%", 6) == 0) {
            bool arena = s[1] == 'A';
            n += (size_t)snprintf(script + n, sizeof(script) - n, "%zu",
                                  arena ? ARENA_SIZE : POOL_SIZE);
            s += arena ? 7 : 6;
        } else {
            script[n++] = *s++;
        }
    }
    script[n] = '\0';
    snprintf(path, sizeof(path), "/tmp/om_probes.%d.gdb", (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(script, f);
    assert_int_equal(fclose(f), 0);
    /* LeakSanitizer cannot run under ptrace; the child collects only
     * when it says (test_gc_torture runs this program too). */
    snprintf(cmd, sizeof(cmd), "env -u OBJMEM_GC_TORTURE "
             "ASAN_OPTIONS=detect_leaks=0 gdb -batch -nx -x %s --args '%s' "
             "--probe-child 2>&1", path, self);
    f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        size_t k = 0;

        exited |= strstr(line, "exited normally") != NULL;
        while (k < 5 && strcmp(line, kinds[k]) != 0)
            k++;
        if (k < 5)
            seen[k]++;
        else if (strncmp(line, "hit ", 4) == 0 && others++ == 0)
            print_error("unexpected probe hit: %s", line);
    }
    assert_int_equal(pclose(f), 0);
    unlink(path);
    assert_true(exited);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    assert_true(seen[2] >= 4);          /* 3.84 MB of blocks */
    assert_int_equal(seen[3], seen[2]);
    assert_true(seen[4] >= 1);
    assert_int_equal(others, 0);
}

/* ---- Zeal and the emergency collection ---- */

static size_t collections(int generation)
{
    struct om_gc_stats st[3];

    om_gc_get_stats(st);
    return st[generation].collections;
}

/* n plain nodes made and dropped: n GC allocations. */
static void make_nodes(int n)
{
    for (int i = 0; i < n; i++)
        om_decref(node_new(&node_type, NULL));
}

static void test_zeal_settings(void **state)
{
    long every, old_every;
    enum om_gc_zeal old = om_gc_get_zeal(&old_every);

    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_FULL, 0), -EINVAL);
    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_YOUNG, -3), -EINVAL);
    assert_int_equal(om_gc_set_zeal((enum om_gc_zeal)4, 1), -EINVAL);
    assert_int_equal(om_gc_get_zeal(&every), old);    /* nothing changed */
    assert_int_equal(every, old_every);
    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_FULL, 100), 0);
    assert_int_equal(om_gc_get_zeal(&every), OM_GC_ZEAL_FULL);
    assert_int_equal(every, 100);
    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_EMERGENCY, 0), 0);
    assert_int_equal(om_gc_get_zeal(&every), OM_GC_ZEAL_EMERGENCY);
    assert_int_equal(every, 0);
    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_OFF, 0), 0);
    assert_int_equal(om_gc_get_zeal(NULL), OM_GC_ZEAL_OFF);
    assert_int_equal(om_gc_set_zeal(old, old_every), 0);
    assert_clean();
}

/* SpiderMonkey's gczeal tests count collections exactly: with automatic
 * collection off (threshold 0), full:100 over 1000 GC allocations is 10
 * full collections and no other; young:7 over 700 is 100 collections,
 * of whichever generation's turn it was; and none while disabled. */
static void test_zeal_counts_exactly(void **state)
{
    long old_every;
    enum om_gc_zeal old = om_gc_get_zeal(&old_every);
    size_t c0 = collections(0), c1 = collections(1), c2 = collections(2);

    om_gc_set_threshold(0, 10, 10);
    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_FULL, 100), 0);
    make_nodes(1000);
    assert_int_equal(collections(2) - c2, 10);
    assert_int_equal(collections(1) - c1, 0);
    assert_int_equal(collections(0) - c0, 0);

    c0 = collections(0), c1 = collections(1), c2 = collections(2);
    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_YOUNG, 7), 0);
    make_nodes(700);
    assert_int_equal(collections(0) - c0 + collections(1) - c1 +
                     collections(2) - c2, 100);
    assert_true(collections(0) - c0 >= 80);
    assert_true(collections(1) - c1 >= 8);

    c0 = collections(0), c1 = collections(1), c2 = collections(2);
    om_gc_disable();
    make_nodes(700);
    om_gc_enable();
    assert_int_equal(collections(0) + collections(1) + collections(2),
                     c0 + c1 + c2);
    assert_int_equal(om_gc_set_zeal(old, old_every), 0);
    om_gc_set_threshold(700, 10, 10);
    assert_clean();
}

/* Emergency zeal: every GC allocation fails first, and the emergency
 * collection (a full one) comes before its retry, which succeeds with
 * errno untouched; the cycle made before the first is collected.  With
 * threshold 0 (automatic collection off) no allocation fails and none
 * collects. */
static void test_zeal_emergency(void **state)
{
    long old_every;
    enum om_gc_zeal old = om_gc_get_zeal(&old_every);
    size_t e0 = om_gc_get_emergency_count(), c2 = collections(2);
    om_object *a = node_new(&node_type, NULL), *b = node_new(&node_type, a);

    node_set(a, b);                     /* a <-> b */
    om_decref(a);
    om_decref(b);
    om_gc_set_threshold(1000000, 10, 10);
    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_EMERGENCY, 0), 0);
    for (int i = 0; i < 50; i++) {
        om_object *n;

        errno = 1234;
        n = om_new(&node_type);
        assert_non_null(n);
        assert_int_equal(errno, 1234);
        om_decref(n);
        if (i == 0)
            assert_int_equal(om_live_objects(), live0);   /* a, b gone */
    }
    assert_int_equal(om_gc_get_emergency_count() - e0, 50);
    assert_int_equal(collections(2) - c2, 50);

    om_gc_set_threshold(0, 10, 10);
    make_nodes(50);
    assert_int_equal(om_gc_get_emergency_count() - e0, 50);
    assert_int_equal(collections(2) - c2, 50);
    assert_int_equal(om_gc_set_zeal(old, old_every), 0);
    om_gc_set_threshold(700, 10, 10);
    assert_clean();
}

/* Blocks of size bytes from the OBJ domain until it has none left (the
 * OS refusing every mapping), chained through their first word. */
static void *exhaust(size_t size)
{
    void *chain = NULL, *p;

    while ((p = om_obj_malloc(size)) != NULL) {
        *(void **)p = chain;
        chain = p;
    }
    assert_int_equal(errno, ENOMEM);
    return chain;
}

static void release(void *chain)
{
    while (chain) {
        void *next = *(void **)chain;
        om_obj_free(chain);
        chain = next;
    }
}

/* The real thing: the OS refuses memory, and 20,000 garbage 2-cycles
 * hold the only free room.  While the collector is disabled a new node
 * fails (NULL, ENOMEM, no emergency); enabled, the emergency collection
 * frees the cycles and the node is made, with 100 more after it and no
 * second emergency. */
static void test_emergency_rescues(void **state)
{
    enum { CYCLES = 20000 };
    long old_every;
    enum om_gc_zeal old = om_gc_get_zeal(&old_every);
    size_t e0 = om_gc_get_emergency_count(), c2, collected;
    struct om_gc_stats st[3];
    om_object *keep[101];
    void *filler;

    assert_int_equal(om_gc_set_zeal(OM_GC_ZEAL_OFF, 0), 0);
    om_gc_set_threshold(1000000, 10, 10);
    for (int i = 0; i < CYCLES; i++) {
        om_object *a = node_new(&node_type, NULL);
        om_object *b = node_new(&node_type, a);
        node_set(a, b);
        om_decref(a);
        om_decref(b);
    }
    assert_int_equal(om_live_objects(), live0 + 2 * CYCLES);
    assert_int_equal(om_debug_fail_maps(0, true), 0);
    filler = exhaust(16 + sizeof(struct node));   /* a node's block */

    om_gc_disable();
    errno = 0;
    assert_null(om_new(&node_type));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(om_gc_get_emergency_count(), e0);
    assert_int_equal(om_live_objects(), live0 + 2 * CYCLES);

    om_gc_enable();
    om_gc_get_stats(st);
    c2 = st[2].collections;
    collected = st[2].collected;
    for (int i = 0; i < 101; i++)
        assert_non_null(keep[i] = om_new(&node_type));
    om_gc_get_stats(st);
    assert_int_equal(om_gc_get_emergency_count() - e0, 1);
    assert_int_equal(st[2].collections - c2, 1);
    assert_int_equal(st[2].collected - collected, 2 * CYCLES);
    assert_int_equal(om_live_objects(), live0 + 101);

    assert_int_equal(om_debug_fail_maps(0, false), 0);
    for (int i = 0; i < 101; i++)
        om_decref(keep[i]);
    release(filler);
    assert_int_equal(om_gc_set_zeal(old, old_every), 0);
    om_gc_set_threshold(700, 10, 10);
    assert_int_equal(om_check(), 0);
    assert_clean();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_self_cycle_list, setup),
        cmocka_unit_test_setup(test_self_cycle_dict, setup),
        cmocka_unit_test_setup(test_tuple_list_cycle, setup),
        cmocka_unit_test_setup(test_instance_two_cycle, setup),
        cmocka_unit_test_setup(test_reachable_survives, setup),
        cmocka_unit_test_setup(test_finalizers_run_once, setup),
        cmocka_unit_test_setup(test_resurrection, setup),
        cmocka_unit_test_setup(test_finalizer_chain, setup),
        cmocka_unit_test_setup(test_transitive_resurrection, setup),
        cmocka_unit_test_setup(test_legacy_uncollectable, setup),
        cmocka_unit_test_setup(test_saveall, setup),
        cmocka_unit_test_setup(test_shutdown_message, setup),
        cmocka_unit_test_setup(test_dict_untracked_by_full_collection,
                               setup),
        cmocka_unit_test_setup(test_callbacks, setup),
        cmocka_unit_test_setup(test_automatic, setup),
        cmocka_unit_test_setup(test_collect_from_finalizer, setup),
        cmocka_unit_test_setup(test_freeze, setup),
        cmocka_unit_test_setup(test_tracking_rules, setup),
        cmocka_unit_test_setup(test_tuple_tree_never_tracked, setup),
        cmocka_unit_test_setup(test_referents_referrers, setup),
        cmocka_unit_test_setup(test_check_finds_broken_list, setup),
        cmocka_unit_test_setup(test_check_finds_dead_member, setup),
        cmocka_unit_test_setup(test_list_tracking, setup),
        cmocka_unit_test_setup(test_check_finds_untracked_container, setup),
        cmocka_unit_test_setup(test_incremental_collects_old_garbage, setup),
        cmocka_unit_test_setup(test_incremental_bounded_growth, setup),
        cmocka_unit_test_setup(test_incremental_threshold1_zero, setup),
        cmocka_unit_test_setup(test_incremental_leaves_huge_containers,
                               setup),
        cmocka_unit_test_setup(test_deep_cycle, setup),
        cmocka_unit_test_setup(test_random_graphs, setup),
        cmocka_unit_test_setup(test_probes, setup),
        cmocka_unit_test_setup(test_zeal_settings, setup),
        cmocka_unit_test_setup(test_zeal_counts_exactly, setup),
        cmocka_unit_test_setup(test_zeal_emergency, setup),
        cmocka_unit_test_setup(test_emergency_rescues, setup),
    };

    if (argc > 1 && strcmp(argv[1], "--probe-child") == 0)
        return probe_child();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
