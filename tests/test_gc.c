/*
 * test_gc.c - the cycle collector: cycles through each core container,
 * finalizers (once, resurrection), legacy finalizers and the garbage
 * list, SAVEALL, callbacks, stats, generations and thresholds, automatic
 * collection, freeze, tracking rules, introspection, a deep cycle.  Each
 * test ends with no live test objects and om_check() passing.
 */
#include <errno.h>

#include "testnode.h"
#include "object.h"

static size_t live0, blocks0;

/* OBJMEM_GC_TORTURE=1 collects at every GC allocation: the tests of what
 * happens between automatic collections skip their counting checks. */
static bool torture(void)
{
    const char *v = getenv("OBJMEM_GC_TORTURE");
    return v && strcmp(v, "1") == 0;
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
    assert_true(s1[0].collections > s0[0].collections);
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
    assert_int_equal(om_check(), -EFAULT);
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
    assert_int_equal(om_check(), -EFAULT);
    hb->prev = saved_prev;
    assert_int_equal(om_check(), 0);
    om_decref(a);
    om_decref(b);
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

int main(void)
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
        cmocka_unit_test_setup(test_list_tracking, setup),
        cmocka_unit_test_setup(test_check_finds_untracked_container, setup),
        cmocka_unit_test_setup(test_incremental_collects_old_garbage, setup),
        cmocka_unit_test_setup(test_incremental_bounded_growth, setup),
        cmocka_unit_test_setup(test_incremental_leaves_huge_containers,
                               setup),
        cmocka_unit_test_setup(test_deep_cycle, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
