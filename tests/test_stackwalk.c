/*
 * test_stackwalk.c - the fast stack walk (stackwalk.c) against libgcc's
 * _Unwind_Backtrace: the same return addresses, frame for frame, through
 * frames of every shape the compiler makes (rsp- and rbp-based CFAs,
 * large frames, rbp saved deep), in threads; a signal frame hands the
 * walk back (-1); the rule cache passes om_check, which finds a rule
 * changed by hand.
 */
#include "testutil.h"

#include <alloca.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unwind.h>

#include "os.h"
#include "stackwalk.h"

#define MAXF 256

struct pcs {
    uintptr_t pc[MAXF];
    uintptr_t cfa[MAXF];
    int n;
};

static bool collect(void *ctx, uintptr_t pc, uintptr_t cfa)
{
    struct pcs *p = ctx;

    if (p->n < MAXF) {
        p->pc[p->n] = pc;
        p->cfa[p->n++] = cfa;
    }
    return true;
}

static _Unwind_Reason_Code gcc_step(struct _Unwind_Context *ctx, void *arg)
{
    struct pcs *p = arg;
    uintptr_t pc = _Unwind_GetIP(ctx);

    if (!pc)
        return _URC_END_OF_STACK;
    collect(p, pc, _Unwind_GetCFA(ctx));
    return _URC_NO_REASON;
}

struct both {
    struct pcs fast, gcc;
    int rc;
};

/* Both walks from the same frame; libgcc's first frame is this one's
 * caller's too (both start with their caller). */
static __attribute__((noinline)) void walk_both(struct both *b)
{
    b->fast.n = b->gcc.n = 0;
    b->rc = omi_stackwalk_walk(collect, &b->fast);
    _Unwind_Backtrace(gcc_step, &b->gcc);
    __asm__ volatile("" ::: "memory");
}

/* The fast walk's frames are libgcc's, from walk_both's caller out (a
 * whole walk: to the same end); walk_both's own frame is at two call
 * sites, so its CFA alone must agree. */
static void assert_same(const struct both *b)
{
    int i = 0, j = 0;

    assert_int_equal(b->rc, 0);
    while (j < b->gcc.n && b->gcc.cfa[j] != b->fast.cfa[0])
        j++;
    assert_true(j < b->gcc.n);
    assert_int_equal(b->fast.n - i, b->gcc.n - j);
    for (i = 1, j++; i < b->fast.n; i++, j++) {
        assert_int_equal(b->fast.pc[i], b->gcc.pc[j]);
        assert_int_equal(b->fast.cfa[i], b->gcc.cfa[j]);
    }
}

/* ---- om_check finds a rule that is not its address's (stackwalk.1) ----
 *
 * The first test: its walk makes the rule cache, at an address it chose
 * (omi_os_debug_next_at: a range it mapped and gave back), so that it can
 * change a word by hand.  A word's low 24 bits are its rule.
 */
static void test_check_stackwalk_1(void **state)
{
    struct pcs p = { .n = 0 };
    size_t reserve = 1 << 20, size, page = omi_os_page_size(), i;
    unsigned char vec[1 << 8];
    _Atomic uint64_t *rules;
    uint64_t w;

    assert_int_equal(omi_stackwalk_memory(), 0);    /* not made yet */
    rules = omi_os_map(reserve, 0);
    assert_non_null(rules);
    omi_os_unmap(rules, reserve);
    omi_os_debug_next_at(rules);
    assert_int_equal(omi_stackwalk_walk(collect, &p), 0);
    size = omi_stackwalk_memory();
    assert_true(size > 0 && size <= reserve && size / page <= sizeof(vec));
    if (mincore(rules, size, vec) != 0)
        skip();                         /* the kernel chose elsewhere */
    for (i = 0; i < size / sizeof(*rules) && !atomic_load(&rules[i]); i++)
        ;
    assert_true(i < size / sizeof(*rules));
    w = atomic_load(&rules[i]);
    atomic_store(&rules[i], w ^ 1u << 3);
    assert_check_finds("stackwalk.1");
    atomic_store(&rules[i], w);
    assert_int_equal(om_check(), 0);
}

/* ---- Frames of several shapes ---- */

static volatile int sink;

static __attribute__((noinline)) void shape_leaf(struct both *b)
{
    walk_both(b);
    sink++;
}

/* A variable-length array: the CFA is rbp-based. */
static __attribute__((noinline)) void shape_vla(struct both *b, int n)
{
    volatile char *v = alloca((size_t)n + 1);

    v[0] = (char)n;
    shape_leaf(b);
    sink += v[0];
}

/* A big frame: a large rsp offset. */
static __attribute__((noinline)) void shape_big(struct both *b, int n)
{
    volatile char big[20000];

    big[n] = 1;
    shape_vla(b, n);
    sink += big[n];
}

/* Many callee-saved registers live across the call: rbp (if saved)
 * deep in the frame. */
static __attribute__((noinline)) int shape_regs(struct both *b, int a,
                                                int c, int d, int e)
{
    int x = a * 3, y = c * 5, z = d * 7, w = e * 11, u = a ^ e, t = c + d;

    shape_big(b, a & 15);
    return x + y + z + w + u + t + sink;
}

static __attribute__((noinline)) void shape_rec(struct both *b, int depth)
{
    if (depth == 0)
        sink += shape_regs(b, sink + 1, sink + 2, sink + 3, sink + 4);
    else if (depth % 3 == 0)
        shape_rec(b, depth - 1);
    else
        shape_rec(b, depth - 1);
    __asm__ volatile("" ::: "memory");      /* no tail call */
}

static void test_shapes(void **state)
{
    static struct both b;

    shape_rec(&b, 30);
    assert_same(&b);
    assert_true(b.fast.n > 35);
    /* Again: from the rule cache this time. */
    shape_rec(&b, 30);
    assert_same(&b);
    assert_int_equal(om_check(), 0);
}

/* ---- A thread's stack ends where libgcc's does ---- */

static void *thread_walk(void *arg)
{
    shape_rec(arg, 5);
    return NULL;
}

static void test_thread(void **state)
{
    static struct both b;
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, thread_walk, &b), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_same(&b);
    assert_true(b.fast.n > 8);
}

/* ---- A signal frame: the fast walk hands back ---- */

static struct both sig_b;

static void on_signal(int sig)
{
    shape_leaf(&sig_b);
}

static void test_signal_frame(void **state)
{
    struct sigaction sa = { .sa_handler = on_signal }, old;

    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    raise(SIGUSR1);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    /* The frames up to the handler's return trampoline agree; then -1
     * (libgcc goes on through the signal frame). */
    assert_int_equal(sig_b.rc, -1);
    assert_true(sig_b.fast.n >= 2);
    assert_true(sig_b.gcc.n > sig_b.fast.n);
    for (int i = 1; i < sig_b.fast.n; i++)
        assert_int_equal(sig_b.fast.pc[i], sig_b.gcc.pc[i]);
    assert_int_equal(om_check(), 0);
}

/* ---- Stopping, and a function's code range ---- */

static bool stop_after_two(void *ctx, uintptr_t pc, uintptr_t cfa)
{
    collect(ctx, pc, cfa);
    return ((struct pcs *)ctx)->n < 2;
}

static void test_stop_and_range(void **state)
{
    struct pcs p = { .n = 0 };
    uintptr_t lo, hi;

    assert_int_equal(omi_stackwalk_walk(stop_after_two, &p), 0);
    assert_int_equal(p.n, 2);
    /* The first frame is the walker's caller: this function. */
    assert_true(omi_stackwalk_function((uintptr_t)test_stop_and_range, &lo,
                                       &hi));
    assert_int_equal(lo, (uintptr_t)test_stop_and_range);
    assert_true(hi > lo && hi - lo < 4096);
    assert_true(p.pc[0] > lo && p.pc[0] <= hi);
    assert_false(omi_stackwalk_function(0x10, &lo, &hi));
    assert_true(omi_stackwalk_memory() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_stackwalk_1),  /* first: see there */
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_thread),
        cmocka_unit_test(test_signal_frame),
        cmocka_unit_test(test_stop_and_range),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
