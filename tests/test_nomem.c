/*
 * test_nomem.c - every allocation of every operation refused in turn
 * (om_debug_fail_allocs), as Lua's memerr.lua and CPython's set_nomemory
 * tests do.  For each operation below, the sweep runs it with request n
 * failing (transient: n alone; persistent: n and every one after), for n
 * = 0, 1, 2, ... until a run meets no failure.  Every run must end in a
 * clean success or a clean failure: NULL with errno = ENOMEM or -ENOMEM,
 * the operation's target as it was, the refcounts of its arguments as
 * they were, and, once what it made is dropped, the live objects and
 * blocks in use back where they were and om_check() == 0.  The first
 * tests check the window's own arithmetic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objmem.h"
#include "testutil.h"
#include "domain.h"             /* after cmocka: its symbols not hidden */

#define MAX_REQUESTS 2000       /* no operation here makes more */

/* ---- The window ---- */

static void test_window_arguments(void **state)
{
    assert_int_equal(om_debug_fail_allocs(-2, 0), -EINVAL);
    assert_int_equal(om_debug_fail_allocs(5, 5), -EINVAL);
    assert_int_equal(om_debug_fail_allocs(5, 3), -EINVAL);
    assert_int_equal(om_debug_fail_allocs(-1, 0), 0);      /* off: no-op */
    assert_int_equal(omi_domain_small[OM_DOMAIN_MEM], OMI_TABLE_SMALL);
    assert_int_equal(om_check(), 0);
}

/* Requests 2 and 3 of MEM, OBJ and RAW together fail; frees do not
 * count; a failed realloc keeps its block; errno is ENOMEM only for the
 * failures.  Stopping puts the small-object fast paths back. */
static void test_window_counts(void **state)
{
    size_t blocks = blocks_in_use();
    void *a, *b, *c, *d, *e;

    assert_int_equal(om_debug_fail_allocs(2, 4), 0);
    assert_int_equal(omi_domain_small[OM_DOMAIN_MEM], OMI_TABLE_OTHER);
    errno = 0;
    assert_non_null(a = om_malloc(24));                     /* 0 */
    om_free(om_obj_malloc(8));                              /* 1 */
    assert_int_equal(errno, 0);
    assert_null(om_raw_malloc(100));                        /* 2 */
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    memset(a, 0x5a, 24);
    assert_null(om_realloc(a, 400));                        /* 3 */
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(((unsigned char *)a)[23], 0x5a);       /* kept */
    errno = 0;
    assert_non_null(b = om_obj_calloc(3, 8));               /* 4 */
    assert_non_null(c = om_realloc(a, 400));                /* 5 */
    assert_int_equal(((unsigned char *)c)[23], 0x5a);
    assert_int_equal(errno, 0);
    assert_int_equal(om_debug_failed_allocs(), 2);

    /* Persistent from request 1. */
    assert_int_equal(om_debug_fail_allocs(1, 0), 0);
    assert_non_null(d = om_malloc(8));                      /* 0 */
    for (int i = 0; i < 10; i++)
        assert_null(e = om_obj_malloc(8));
    assert_int_equal(om_debug_failed_allocs(), 10);

    assert_int_equal(om_debug_fail_allocs(-1, 0), 0);
    assert_int_equal(omi_domain_small[OM_DOMAIN_MEM], OMI_TABLE_SMALL);
    assert_int_equal(omi_domain_small[OM_DOMAIN_OBJ], OMI_TABLE_SMALL);
    assert_int_equal(om_debug_failed_allocs(), 10);
    assert_non_null(e = om_obj_malloc(8));
    om_free(c);
    om_obj_free(b);
    om_free(d);
    om_obj_free(e);
    assert_int_equal(om_check(), 0);
    assert_heap_clean(blocks);
}

/* Tracing started over the window keeps it under its wrapper: stopping
 * the window then passes requests through, and the tables come back in
 * order as each stops. */
static void test_window_under_tracing(void **state)
{
    size_t blocks = blocks_in_use();
    struct om_allocator t;
    void *p;

    assert_int_equal(om_debug_fail_allocs(0, 0), 0);
    assert_int_equal(om_trace_start(1), 0);
    assert_null(om_malloc(16));
    assert_int_equal(om_debug_fail_allocs(-1, 0), 0);   /* stays under */
    assert_int_equal(om_check(), 0);
    assert_non_null(p = om_malloc(16));
    om_free(p);
    om_trace_stop();
    om_get_allocator(OM_DOMAIN_MEM, &t);
    assert_true(t.malloc != omi_domain_default_small.malloc);
    assert_int_equal(om_debug_fail_allocs(-1, 0), 0);   /* now it goes */
    om_get_allocator(OM_DOMAIN_MEM, &t);
    assert_true(t.malloc == omi_domain_default_small.malloc);
    assert_int_equal(omi_domain_small[OM_DOMAIN_MEM], OMI_TABLE_SMALL);
    assert_int_equal(om_check(), 0);
    assert_heap_clean(blocks);
}

/* A large MEM or OBJ request, which its table passes on to RAW, is one
 * request (it was two: the second failed the first); om_aligned_alloc is
 * one too, small or large, under the window alone and under tracing. */
static void test_window_requests_once(void **state)
{
    size_t blocks = blocks_in_use();
    void *a, *b, *c;

    for (int traced = 0; traced < 2; traced++) {
        assert_int_equal(om_debug_fail_allocs(1, 2), 0);
        assert_int_equal(traced ? om_trace_start(1) : 0, 0);
        errno = 0;
        assert_non_null(a = om_malloc(1 << 20));            /* 0 */
        assert_null(om_obj_malloc(1 << 20));                /* 1 */
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_non_null(b = om_obj_realloc(NULL, 1 << 20)); /* 2 */
        assert_int_equal(errno, 0);
        assert_int_equal(om_debug_failed_allocs(), 1);
        om_free(a);
        om_obj_free(b);

        assert_int_equal(om_debug_fail_allocs(0, 1), 0);
        assert_null(om_aligned_alloc(64, 100));             /* 0 */
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_non_null(a = om_aligned_alloc(64, 100));     /* 1 */
        assert_non_null(b = om_aligned_alloc(4096, 1 << 20));
        assert_non_null(c = om_aligned_alloc(16, 40));      /* om_malloc */
        assert_int_equal(errno, 0);
        assert_int_equal((uintptr_t)a % 64, 0);
        assert_int_equal((uintptr_t)b % 4096, 0);
        assert_true(om_usable_size(b) >= 1 << 20);
        assert_int_equal(om_debug_failed_allocs(), 1);
        assert_int_equal(om_debug_fail_allocs(0, 1), 0);
        assert_null(om_aligned_alloc(4096, 1 << 20));       /* 0 */
        assert_int_equal(om_debug_failed_allocs(), 1);
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        om_free(a);
        om_free(b);
        om_free(c);
        if (traced)
            om_trace_stop();
        assert_int_equal(om_debug_fail_allocs(-1, 0), 0);
    }
    assert_int_equal(om_check(), 0);
    assert_heap_clean(blocks);
}

/* A table of one's own: the C library's, through functions of ours. */
static void *own_malloc(void *ctx, size_t size)
{
    return malloc(size);
}

static void *own_calloc(void *ctx, size_t nelem, size_t elsize)
{
    return calloc(nelem, elsize);
}

static void *own_realloc(void *ctx, void *p, size_t size)
{
    return realloc(p, size);
}

static void own_free(void *ctx, void *p)
{
    free(p);
}

/* With om_gp_allocator in RAW, a large over-aligned block is
 * om_gp_aligned_alloc's (it was ENOTSUP); a table of one's own in RAW
 * still gives ENOTSUP. */
static void test_aligned_raw_gp(void **state)
{
    size_t blocks = blocks_in_use();
    struct om_allocator raw, own;
    void *p;

    om_get_allocator(OM_DOMAIN_RAW, &raw);
    om_set_allocator(OM_DOMAIN_RAW, &om_gp_allocator);
    for (int traced = 0; traced < 2; traced++) {
        assert_int_equal(traced ? om_trace_start(1) : 0, 0);
        errno = 0;
        assert_non_null(p = om_aligned_alloc(8192, 3 << 20));
        assert_int_equal((uintptr_t)p % 8192, 0);
        assert_true(om_usable_size(p) >= 3 << 20);
        memset(p, 0x33, 3 << 20);
        assert_int_equal(errno, 0);
        assert_int_equal(om_check(), 0);
        om_free(p);
        if (traced)
            om_trace_stop();
    }
    own = (struct om_allocator){ NULL, own_malloc, own_calloc, own_realloc,
                                 own_free };
    om_set_allocator(OM_DOMAIN_RAW, &own);
    errno = 0;
    assert_null(om_aligned_alloc(8192, 3 << 20));
    assert_int_equal(errno, ENOTSUP);
    om_set_allocator(OM_DOMAIN_RAW, &raw);
    assert_int_equal(om_check(), 0);
    assert_heap_clean(blocks);
}

/* ---- The sweep ---- */

static long win_start, win_stop;
static bool armed;

/* Called by an operation once its inputs are made: its requests from
 * now are the ones counted. */
static void arm(void)
{
    assert_int_equal(om_debug_fail_allocs(win_start, win_stop), 0);
    armed = true;
}

/* Called by an operation when the call under test has returned. */
static void disarm(void)
{
    assert_int_equal(om_debug_fail_allocs(-1, 0), 0);
    armed = false;
}

static void assert_enomem(int rc)
{
    assert_int_equal(rc, -ENOMEM);
}

static om_object *int_of(long v)
{
    om_object *o = om_int_from_i64(v);

    assert_non_null(o);
    return o;
}

/* A list of n distinct ints. */
static om_object *list_of(long n, long base)
{
    om_object *l = om_list_new(0);

    assert_non_null(l);
    for (long i = 0; i < n; i++) {
        om_object *x = int_of(base + i);
        assert_int_equal(om_list_append(l, x), 0);
        om_decref(x);
    }
    return l;
}

/* Each operation returns true when the call under test succeeded. */

static bool op_list_new(void)
{
    om_object *l;

    arm();
    l = om_list_new(100);
    disarm();
    if (!l) {
        assert_int_equal(errno, ENOMEM);
        return false;
    }
    assert_int_equal(om_list_len(l), 100);
    om_decref(l);
    return true;
}

/* Appends that grow the list, one at a time, up to 600 items. */
static bool op_list_append(void)
{
    om_object *l = list_of(8, 1000), *x = int_of(777777);
    ptrdiff_t rx = x->refcnt;
    int rc = 0;
    size_t n = 8;

    arm();
    while (n < 600 && (rc = om_list_append(l, x)) == 0)
        n++;
    disarm();
    assert_int_equal(om_list_len(l), n);
    assert_int_equal(x->refcnt, rx + (ptrdiff_t)n - 8);
    if (rc)
        assert_enomem(rc);
    om_decref(l);
    om_decref(x);
    return rc == 0;
}

static bool op_list_extend(void)
{
    om_object *a = list_of(10, 0), *b = list_of(300, 100);
    int rc;

    arm();
    rc = om_list_extend(a, b);
    disarm();
    if (rc) {
        assert_enomem(rc);
        assert_int_equal(om_list_len(a), 10);
    } else {
        assert_int_equal(om_list_len(a), 310);
    }
    om_decref(a);
    om_decref(b);
    return rc == 0;
}

static bool op_tuple_pack(void)
{
    om_object *a = int_of(1 << 20), *b = om_list_new(0), *t;

    arm();
    t = om_tuple_pack(2, a, b);
    disarm();
    assert_int_equal(a->refcnt, t ? 2 : 1);
    assert_int_equal(b->refcnt, t ? 2 : 1);
    if (!t)
        assert_int_equal(errno, ENOMEM);
    om_xdecref(t);
    om_decref(a);
    om_decref(b);
    return t != NULL;
}

/* A dict built by 200 sets (it resizes on the way), keys strings. */
static bool op_dict_build(void)
{
    om_object *d = om_dict_new(), *v = int_of(5000);
    ptrdiff_t rv = v->refcnt;
    size_t n = 0;
    int rc = 0;

    assert_non_null(d);
    arm();
    while (n < 200) {
        char name[16];
        om_object *k;

        snprintf(name, sizeof(name), "key%zu", n);
        if ((k = om_str_from_utf8(name, strlen(name))) == NULL) {
            rc = -errno;
            break;
        }
        rc = om_dict_set(d, k, v);
        om_decref(k);
        if (rc)
            break;
        n++;
    }
    disarm();
    assert_int_equal(om_dict_len(d), n);
    assert_int_equal(v->refcnt, rv + (ptrdiff_t)n);
    if (rc)
        assert_enomem(rc);
    om_decref(d);
    om_decref(v);
    return rc == 0;
}

static bool op_str(void)
{
    char text[2000];
    om_object *s;

    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 26);
    arm();
    s = om_str_from_utf8(text, sizeof(text));
    disarm();
    if (!s) {
        assert_int_equal(errno, ENOMEM);
        return false;
    }
    assert_int_equal(om_str_len(s), sizeof(text));
    om_decref(s);
    return true;
}

static bool op_int_text(void)
{
    char digits[201];
    om_object *i;
    char *back = NULL;

    memset(digits, '7', 200);
    digits[200] = 0;
    arm();
    i = om_int_from_string(digits, 10);
    if (i)
        back = om_int_to_string(i);
    disarm();
    if (!i || !back) {
        assert_int_equal(errno, ENOMEM);
        om_xdecref(i);
        return false;
    }
    assert_string_equal(back, digits);
    om_free(back);
    om_decref(i);
    return true;
}

static bool op_float(void)
{
    om_object *f;

    arm();
    f = om_float_from_double(2.5);
    disarm();
    if (!f) {
        assert_int_equal(errno, ENOMEM);
        return false;
    }
    om_decref(f);
    return true;
}

/* An instance with 40 attributes (past the 30 names a class shares, so
 * it gets a dict of its own on the way). */
static bool op_instance(void)
{
    om_object *cls = om_class_new("Point", NULL, 0, 0), *o;
    om_object *v = int_of(123456);           /* not a cached one */
    ptrdiff_t rv = v->refcnt;
    int rc = 0, n = 0;

    assert_non_null(cls);
    arm();
    o = om_instance_new(cls);
    while (o && n < 40) {
        char name[16];
        snprintf(name, sizeof(name), "attr%d", n);
        if ((rc = om_setattr(o, name, v)) != 0)
            break;
        n++;
    }
    disarm();
    if (!o) {
        assert_int_equal(errno, ENOMEM);
    } else {
        assert_int_equal(v->refcnt, rv + n);
        for (int i = 0; i < n; i++) {
            char name[16];
            om_object *got;
            snprintf(name, sizeof(name), "attr%d", i);
            assert_ptr_equal(got = om_getattr(o, name), v);
            om_decref(got);
        }
        if (rc)
            assert_enomem(rc);
        om_decref(o);
    }
    om_decref(cls);
    om_decref(v);
    om_gc_collect(2);                   /* a class is in a cycle */
    return o && rc == 0;
}

static bool op_slots_instance(void)
{
    static const char *const names[] = { "x", "y", "z" };
    om_object *cls = om_class_new("P3", names, 3, 0), *o;

    assert_non_null(cls);
    arm();
    o = om_instance_new(cls);
    disarm();
    if (!o)
        assert_int_equal(errno, ENOMEM);
    om_xdecref(o);
    om_decref(cls);
    om_gc_collect(2);
    return o != NULL;
}

static int callbacks;

static void count_callback(om_object *ref, void *ctx)
{
    (void)ref;
    (void)ctx;
    callbacks++;
}

/* Two refs to an instance, one with a callback; the callback runs once
 * when the instance dies, exactly when its ref was made. */
static bool op_weakref(void)
{
    om_object *cls = om_class_new("T", NULL, 0, 0), *o, *r1, *r2 = NULL;

    assert_non_null(cls);
    assert_non_null(o = om_instance_new(cls));
    callbacks = 0;
    arm();
    r1 = om_weakref_new(o, NULL, NULL);
    if (r1)
        r2 = om_weakref_new(o, count_callback, NULL);
    disarm();
    if (!r1 || !r2)
        assert_int_equal(errno, ENOMEM);
    assert_int_equal(om_weakref_count(o), (r1 != NULL) + (r2 != NULL));
    om_decref(o);
    assert_int_equal(callbacks, r2 != NULL);
    if (r1)
        assert_null(om_weakref_get(r1));
    om_xdecref(r1);
    om_xdecref(r2);
    om_decref(cls);
    om_gc_collect(2);
    return r1 && r2;
}

/* A WeakValueDictionary of 50 entries, then its values die: it empties. */
static bool op_weakvaluedict(void)
{
    om_object *cls = om_class_new("V", NULL, 0, 0), *d, *vals[50];
    int rc = 0, n = 0;

    assert_non_null(cls);
    assert_non_null(d = om_weakvaluedict_new());
    for (int i = 0; i < 50; i++)
        assert_non_null(vals[i] = om_instance_new(cls));
    arm();
    while (n < 50) {
        om_object *k = om_int_from_i64(n);
        if (!k) {
            rc = -errno;
            break;
        }
        rc = om_weakvaluedict_set(d, k, vals[n]);
        om_decref(k);
        if (rc)
            break;
        n++;
    }
    disarm();
    if (rc)
        assert_enomem(rc);
    assert_int_equal(om_weakvaluedict_len(d), n);
    for (int i = 0; i < 50; i++)
        om_decref(vals[i]);
    assert_int_equal(om_weakvaluedict_len(d), 0);
    om_decref(d);
    om_decref(cls);
    om_gc_collect(2);
    return rc == 0;
}

/* repr of a nested structure, and gc.get_referrers / get_objects. */
static bool op_repr_and_lists(void)
{
    om_object *inner = list_of(20, 0), *d = om_dict_new(), *k, *r = NULL;
    om_object *refs = NULL;

    assert_non_null(k = om_str_from_utf8("k", 1));
    assert_int_equal(om_dict_set(d, k, inner), 0);
    arm();
    r = om_repr(d);
    if (r)
        refs = om_gc_get_referrers(inner);
    disarm();
    if (!r || !refs) {
        assert_int_equal(errno, ENOMEM);
    } else {
        assert_int_equal(om_list_len(refs), 1);
        assert_ptr_equal(om_list_get(refs, 0), d);
        assert_int_equal(strncmp(om_str_utf8(r), "{'k': [0, 1, 2", 14), 0);
    }
    om_xdecref(r);
    om_xdecref(refs);
    om_decref(k);
    om_decref(d);
    om_decref(inner);
    return r && refs;
}

static bool op_deep_sizeof(void)
{
    static size_t expected;             /* from the first, unrefused run */
    om_object *l = list_of(300, 0);
    size_t n;

    arm();
    n = om_deep_sizeof(l);
    disarm();
    om_decref(l);
    if (n == (size_t)-1) {
        assert_int_equal(errno, ENOMEM);
        return false;
    }
    if (!expected)
        expected = n;
    assert_int_equal(n, expected);
    return true;
}

struct op {
    const char *name;
    bool (*run)(void);
};

static const struct op ops[] = {
    { "list_new", op_list_new },
    { "list_append", op_list_append },
    { "list_extend", op_list_extend },
    { "tuple_pack", op_tuple_pack },
    { "dict_build", op_dict_build },
    { "str", op_str },
    { "int_text", op_int_text },
    { "float", op_float },
    { "instance", op_instance },
    { "slots_instance", op_slots_instance },
    { "weakref", op_weakref },
    { "weakvaluedict", op_weakvaluedict },
    { "repr_and_lists", op_repr_and_lists },
    { "deep_sizeof", op_deep_sizeof },
};

/* Runs op with requests [n, n + 1) or [n, inf) failing, n = 0, 1, ...,
 * until a run meets no failure; returns that n (the requests it made). */
static long sweep(const struct op *op, bool persistent)
{
    long n;

    for (n = 0; n < MAX_REQUESTS; n++) {
        size_t live, blocks;
        bool ok;

        om_clear_freelists();
        live = om_live_objects();
        blocks = blocks_in_use();
        win_start = n;
        win_stop = persistent ? 0 : n + 1;
        ok = op->run();
        assert_false(armed);
        om_clear_freelists();
        if (om_live_objects() != live || blocks_in_use() != blocks ||
            om_check() != 0)
            fail_msg("%s, request %ld failing (%s): %zu -> %zu objects, "
                     "%zu -> %zu blocks", op->name, n,
                     persistent ? "persistent" : "transient", live,
                     om_live_objects(), blocks, blocks_in_use());
        if (om_debug_failed_allocs() == 0) {
            assert_true(ok);
            return n;
        }
    }
    fail_msg("%s: still failing after %d requests", op->name, MAX_REQUESTS);
    return -1;
}

static void test_sweep(void **state)
{
    size_t blocks;

    /* What a first run makes once for good (interned names, a class's
     * shared keys cache, gc.garbage) is made before the counts. */
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        win_start = -1;
        win_stop = 0;
        assert_true(ops[i].run());
    }
    om_clear_freelists();
    blocks = blocks_in_use();
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        long t = sweep(&ops[i], false), p = sweep(&ops[i], true);

        assert_int_equal(t, p);         /* the same requests either way */
        assert_true(t > 0);
        print_message("%-16s %4ld requests, each refused in turn\n",
                      ops[i].name, t);
    }
    om_clear_freelists();
    assert_int_equal(om_check(), 0);
    assert_heap_clean(blocks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_arguments),
        cmocka_unit_test(test_window_counts),
        cmocka_unit_test(test_window_under_tracing),
        cmocka_unit_test(test_window_requests_once),
        cmocka_unit_test(test_aligned_raw_gp),
        cmocka_unit_test(test_sweep),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
