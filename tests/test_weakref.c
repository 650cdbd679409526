/*
 * test_weakref.c - weak references and WeakValueDictionary, after
 * CPython's test_weakref.py: shared callback-less refs, callbacks newest
 * first with every ref cleared before any runs, refs in cycles (the
 * collector clears them first, and skips the callback of a ref that is
 * garbage too), what takes no weak reference, entries that vanish with
 * their values.  Each test ends with no live test objects and om_check()
 * passing.
 */
#include <errno.h>
#include <stddef.h>

#include "testnode.h"
#include "object.h"

static size_t live0, blocks0;

/* ---- A weakly referenceable node type with a finalizer ---- */

static char log_[256];                  /* what happened, in order */

static void log_add(const char *what)
{
    size_t n = strlen(log_);
    snprintf(log_ + n, sizeof(log_) - n, "%s ", what);
}

static void wnode_finalize(om_object *o)
{
    log_add("finalize");
}

static const struct om_type wnode_type =
    NODE_TYPE("wnode", wnode_finalize, NULL,
              offsetof(struct node, weaklist));

static om_object *wnode_new(void)
{
    return node_new(&wnode_type, NULL);
}

/* ---- Callbacks ---- */

static om_object *watched[4];           /* refs whose state callbacks check */
static int nwatched;
static bool all_cleared_in_callbacks;

static void cb_log(om_object *ref, void *ctx)
{
    log_add((const char *)ctx);
    for (int i = 0; i < nwatched; i++) {
        om_object *t = om_weakref_get(watched[i]);
        if (t) {
            all_cleared_in_callbacks = false;
            om_decref(t);
        }
    }
}

static int setup(void **state)
{
    (void)om_str_literal("x");          /* immortal, as slot names */
    (void)om_str_literal("other");      /* and attribute names */
    om_gc_collect(2);
    om_clear_freelists();
    live0 = om_live_objects();
    blocks0 = blocks_in_use();
    log_[0] = '\0';
    nwatched = 0;
    all_cleared_in_callbacks = true;
    return 0;
}

static void assert_clean(void)
{
    assert_int_equal(om_live_objects(), live0);
    om_clear_freelists();
    assert_heap_clean(blocks0);
}

/* ---- Tests ---- */

/* A ref gives its target while it lives and NULL after; callback-less
 * refs are one shared object. */
static void test_basic_ref(void **state)
{
    om_object *cls = om_class_new("C", NULL, 0, 0), *a = om_instance_new(cls);
    om_object *r1 = om_weakref_new(a, NULL, NULL);
    om_object *r2 = om_weakref_new(a, NULL, NULL), *t;

    assert_non_null(r1);
    assert_ptr_equal(r1, r2);           /* shared */
    assert_int_equal(om_refcnt(r1), 2);
    assert_int_equal(om_weakref_count(a), 1);
    t = om_weakref_get(r1);
    assert_ptr_equal(t, a);
    assert_int_equal(om_refcnt(a), 2);  /* get gave a new reference */
    om_decref(t);
    om_decref(a);                       /* the only strong reference */
    assert_null(om_weakref_get(r1));
    om_decref(r1);
    om_decref(r2);
    om_decref(cls);
    assert_clean();
}

/* ints, strs and instances of slot classes take no weak reference. */
static void test_not_weakrefable(void **state)
{
    const char *slots[] = { "x" };
    om_object *cls = om_class_new("S", slots, 1, 0);
    om_object *s = om_instance_new(cls), *i = om_int_from_i64(1000);

    errno = 0;
    assert_null(om_weakref_new(i, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(om_weakref_new(s, NULL, NULL));
    assert_null(om_weakref_new(NULL, NULL, NULL));
    assert_null(om_weakref_get(i));     /* not a ref */
    assert_int_equal(om_weakref_count(i), 0);
    om_decref(s);
    om_decref(i);
    om_decref(cls);
    assert_clean();
}

/* Refs with callbacks are never shared; when the target dies, every ref
 * is cleared before the first callback, and the callbacks run newest
 * first. */
static void test_callbacks_order(void **state)
{
    om_object *a = wnode_new();
    om_object *basic = om_weakref_new(a, NULL, NULL);
    om_object *r1 = om_weakref_new(a, cb_log, "cb1");
    om_object *r2 = om_weakref_new(a, cb_log, "cb2");

    assert_ptr_not_equal(r1, r2);
    assert_ptr_not_equal(r1, basic);
    assert_int_equal(om_weakref_count(a), 3);
    assert_int_equal(omi_weakref_check(basic), 0);
    assert_int_equal(omi_weakref_check(r1), 0);
    assert_int_equal(omi_weakref_check(r2), 0);
    watched[0] = basic;
    watched[1] = r1;
    watched[2] = r2;
    nwatched = 3;
    om_decref(a);
    assert_string_equal(log_, "finalize cb2 cb1 ");
    assert_true(all_cleared_in_callbacks);
    assert_int_equal(omi_weakref_check(r1), 0);     /* cleared, unlinked */
    om_decref(basic);
    om_decref(r1);
    om_decref(r2);
    assert_clean();
}

/* A dead ref's callback never runs. */
static void test_dead_ref_no_callback(void **state)
{
    om_object *a = wnode_new(), *r = om_weakref_new(a, cb_log, "cb");

    om_decref(r);
    assert_int_equal(om_weakref_count(a), 0);
    om_decref(a);
    assert_string_equal(log_, "finalize ");
    assert_clean();
}

/* The target in a garbage cycle, the ref held from outside: the collector
 * clears the ref and calls its callback before any finalizer runs. */
static void test_cycle_callback(void **state)
{
    om_object *a = wnode_new(), *b = wnode_new();
    om_object *r = om_weakref_new(a, cb_log, "cb");

    node_set(a, b);
    node_set(b, a);
    om_decref(a);
    om_decref(b);
    watched[0] = r;
    nwatched = 1;
    assert_int_equal(om_gc_collect(2), 2);
    assert_string_equal(log_, "cb finalize finalize ");
    assert_true(all_cleared_in_callbacks);
    assert_null(om_weakref_get(r));
    om_decref(r);
    assert_clean();
}

/* The same with plain objects (no finalizer anywhere): the collector's
 * shortest path, which a callback sends through the resurrection check. */
static void test_cycle_callback_plain(void **state)
{
    om_object *cls = om_class_new("P", NULL, 0, 0);
    om_object *a = om_instance_new(cls), *b = om_instance_new(cls);
    om_object *r = om_weakref_new(a, cb_log, "cb");

    assert_int_equal(om_setattr(a, "other", b), 0);
    assert_int_equal(om_setattr(b, "other", a), 0);
    om_decref(a);
    om_decref(b);
    assert_int_equal(om_gc_collect(2), 2);    /* 2 instances */
    assert_string_equal(log_, "cb ");
    assert_null(om_weakref_get(r));
    om_decref(r);
    om_decref(cls);
    assert_clean();
}

/* A ref held by its own target, no cycle: the target dies by refcount,
 * clearing its refs before its references, so the ref is alive and its
 * callback runs (as CPython's subtype_dealloc). */
static void test_ref_held_by_target(void **state)
{
    om_object *a = wnode_new(), *r = om_weakref_new(a, cb_log, "cb");

    node_set(a, r);                    /* a -> r -weak-> a */
    om_decref(r);
    om_decref(a);
    assert_string_equal(log_, "finalize cb ");
    assert_clean();
}

/* The ref itself is garbage: a cycle holds it, a -> [r, b], b -> a,
 * r -weak-> a.  The collector clears it and its callback does not run. */
static void test_garbage_ref_in_cycle(void **state)
{
    om_object *a = wnode_new(), *b = wnode_new();
    om_object *r = om_weakref_new(a, cb_log, "cb");
    om_object *l = om_list_new(0);

    assert_int_equal(om_list_append(l, r), 0);
    assert_int_equal(om_list_append(l, b), 0);
    node_set(a, l);                    /* a -> [r, b] */
    node_set(b, a);                    /* b -> a */
    om_decref(r);
    om_decref(l);
    om_decref(b);
    om_decref(a);
    assert_int_equal(om_gc_collect(2), 4);    /* a, b, l, r */
    assert_string_equal(log_, "finalize finalize ");
    assert_clean();
}

/* WeakValueDictionary: entries vanish with their values, by refcount or
 * by the collector. */
static void test_weakvaluedict(void **state)
{
    om_object *d = om_weakvaluedict_new(), *cls = om_class_new("C", NULL,
                                                                0, 0);
    om_object *k1 = om_str_from_utf8("one", 3), *k2 = om_int_from_i64(2);
    om_object *v1 = om_instance_new(cls), *v2 = wnode_new(), *got;

    assert_int_equal(om_weakvaluedict_set(d, k1, v1), 0);
    assert_int_equal(om_weakvaluedict_set(d, k2, v2), 0);
    assert_int_equal(om_weakvaluedict_len(d), 2);
    got = om_weakvaluedict_get(d, k1);
    assert_ptr_equal(got, v1);
    om_decref(got);
    assert_int_equal(om_weakvaluedict_set(d, k1, k2), -EINVAL);  /* int */
    assert_int_equal(om_refcnt(v1), 1);         /* held weakly only */

    om_decref(v1);                              /* dies: its entry goes */
    assert_int_equal(om_weakvaluedict_len(d), 1);
    errno = 0;
    assert_null(om_weakvaluedict_get(d, k1));
    assert_int_equal(errno, ENOENT);

    node_set(v2, v2);                          /* a garbage cycle */
    om_decref(v2);
    assert_int_equal(om_weakvaluedict_len(d), 1);
    assert_int_equal(om_gc_collect(2), 1);
    assert_int_equal(om_weakvaluedict_len(d), 0);

    assert_int_equal(om_weakvaluedict_del(d, k2), -ENOENT);
    om_decref(d);
    om_decref(k1);
    om_decref(k2);
    om_decref(cls);
    assert_clean();
}

/* Replacing a value drops the old entry's ref: the old value's death
 * later does not touch the new entry. */
static void test_weakvaluedict_replace(void **state)
{
    om_object *d = om_weakvaluedict_new(), *k = om_str_from_utf8("k", 1);
    om_object *v1 = wnode_new(), *v2 = wnode_new(), *got;

    assert_int_equal(om_weakvaluedict_set(d, k, v1), 0);
    assert_int_equal(om_weakvaluedict_set(d, k, v2), 0);
    assert_int_equal(om_weakref_count(v1), 0);
    om_decref(v1);
    got = om_weakvaluedict_get(d, k);
    assert_ptr_equal(got, v2);
    om_decref(got);
    assert_int_equal(om_weakvaluedict_del(d, k), 0);
    assert_int_equal(om_weakvaluedict_len(d), 0);
    om_decref(v2);
    om_decref(d);
    om_decref(k);
    assert_clean();
}

/* A WeakValueDictionary's own dict, which gc.get_referents hands out,
 * outlives it: a value that dies then finds no dictionary to update (its
 * callback read the freed one; fuzz_objects found it). */
static void test_weakvaluedict_dict_outlives(void **state)
{
    om_object *d = om_weakvaluedict_new(), *k = om_str_from_utf8("k", 1);
    om_object *v = wnode_new(), *refs, *dict;

    assert_int_equal(om_weakvaluedict_set(d, k, v), 0);
    refs = om_gc_get_referents(d);
    assert_int_equal(om_list_len(refs), 1);
    dict = om_list_get(refs, 0);
    om_incref(dict);
    om_decref(refs);
    assert_int_equal(om_dict_len(dict), 1);
    om_decref(d);                       /* the dictionary dies first */
    om_decref(v);                       /* then its entry's value */
    assert_int_equal(om_dict_len(dict), 1);     /* no one to delete it */
    om_decref(dict);
    om_decref(k);
    assert_clean();
}

/* weakref.c's ref object, as the tests below write into it (each checks
 * the layout against its target's list first). */
struct ref_view {
    om_object base;
    om_object *target;          /* NULL once cleared */
    struct ref_view *prev;      /* the target's list */
    struct ref_view *next;
    om_weakref_callback cb;
    void *ctx;
    om_object *key;
};

/* A wnode's refs: basic (no callback) at the head, r (callback) next. */
static struct node *two_refs(om_object **basic, om_object **r)
{
    om_object *a = wnode_new();
    struct ref_view *bv, *rv;

    *basic = om_weakref_new(a, NULL, NULL);
    *r = om_weakref_new(a, cb_log, "cb");
    bv = (struct ref_view *)*basic;
    rv = (struct ref_view *)*r;
    assert_ptr_equal(((struct node *)a)->weaklist, bv);
    assert_true(bv->target == a && bv->prev == NULL && bv->next == rv);
    assert_true(rv->target == a && rv->prev == bv && rv->next == NULL);
    assert_true(bv->cb == NULL && rv->cb == cb_log);
    assert_int_equal(om_check(), 0);
    return (struct node *)a;
}

/* two_refs' target dropped (its finalizer, then r's callback), then
 * both refs: nothing left. */
static void drop_two_refs(struct node *a, om_object *basic, om_object *r)
{
    om_decref(&a->base);
    assert_string_equal(log_, "finalize cb ");
    om_decref(basic);
    om_decref(r);
    assert_clean();
}

/* om_check finds refs that break weakref.1: one missing from its
 * target's list (the list's head lost), one cleared (no target) yet
 * still on the list; mended, it passes again. */
static void test_check_finds_ref_off_its_list(void **state)
{
    om_object *basic, *r;
    struct node *a = two_refs(&basic, &r);
    struct ref_view *rv = (struct ref_view *)r;

    a->weaklist = NULL;                 /* the list's head lost */
    assert_check_finds("weakref.1");
    a->weaklist = basic;
    assert_int_equal(om_check(), 0);
    rv->target = NULL;                  /* cleared, but still linked */
    assert_check_finds("weakref.1");
    rv->target = &a->base;
    assert_int_equal(om_check(), 0);
    drop_two_refs(a, basic, r);
}

/* om_check finds a list whose basic ref is not at the head (weakref.2):
 * the ref with a callback put in front of it; mended, it passes again. */
static void test_check_finds_basic_ref_not_first(void **state)
{
    om_object *basic, *r;
    struct node *a = two_refs(&basic, &r);
    struct ref_view *bv = (struct ref_view *)basic;
    struct ref_view *rv = (struct ref_view *)r;

    a->weaklist = rv;                   /* r, then basic */
    rv->prev = NULL;
    rv->next = bv;
    bv->prev = rv;
    bv->next = NULL;
    assert_check_finds("weakref.2");
    a->weaklist = bv;                   /* basic, then r again */
    bv->prev = NULL;
    bv->next = rv;
    rv->prev = bv;
    rv->next = NULL;
    assert_int_equal(om_check(), 0);
    drop_two_refs(a, basic, r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_basic_ref, setup),
        cmocka_unit_test_setup(test_not_weakrefable, setup),
        cmocka_unit_test_setup(test_callbacks_order, setup),
        cmocka_unit_test_setup(test_dead_ref_no_callback, setup),
        cmocka_unit_test_setup(test_cycle_callback, setup),
        cmocka_unit_test_setup(test_cycle_callback_plain, setup),
        cmocka_unit_test_setup(test_ref_held_by_target, setup),
        cmocka_unit_test_setup(test_garbage_ref_in_cycle, setup),
        cmocka_unit_test_setup(test_weakvaluedict, setup),
        cmocka_unit_test_setup(test_weakvaluedict_replace, setup),
        cmocka_unit_test_setup(test_weakvaluedict_dict_outlives, setup),
        cmocka_unit_test_setup(test_check_finds_ref_off_its_list, setup),
        cmocka_unit_test_setup(test_check_finds_basic_ref_not_first,
                               setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
