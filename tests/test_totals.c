/*
 * test_totals.c - the allocations of the run (totals.c,
 * om_snapshot_allocations): every traced allocation counted by traceback
 * and domain, freed or not, exact under full tracing and in threads,
 * estimated with standard errors under sampling; clears, captures,
 * filters and running out of memory.
 */
#include "testutil.h"

#include <math.h>
#include <pthread.h>

#include "trace.h"


/* Four allocation sites, told apart by their code. */
TEST_SITE(site_a, om_malloc(size))
TEST_SITE(site_b, om_malloc(size))

static __attribute__((noinline)) void *site_c(void *p, size_t size)
{
    void *q = om_realloc(p, size);

    __asm__ volatile("" ::: "memory");
    return q;
}

TEST_SITE(site_raw, om_raw_malloc(size))

/* pc is in fn: of the sites, fn starts last at or below pc. */
static bool pc_in(const void *pc, const void *fn)
{
    const void *sites[] = { (void *)site_a, (void *)site_b, (void *)site_c,
                            (void *)site_raw };
    uintptr_t best = 0;

    for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++)
        if ((uintptr_t)sites[i] <= (uintptr_t)pc &&
            (uintptr_t)sites[i] > best)
            best = (uintptr_t)sites[i];
    return best == (uintptr_t)fn && (uintptr_t)pc < best + 4096;
}

/* The statistic (by traceback) of the site fn in s; fails if none. */
static struct om_statistic site_stat(const struct om_snapshot *s,
                                     const void *fn)
{
    struct om_statistic *st;
    size_t n;

    assert_int_equal(om_snapshot_statistics(s, OM_KEY_TRACEBACK, false, &st,
                                            &n), 0);
    for (size_t i = 0; i < n; i++)
        if (st[i].traceback->nframe >= 1 &&
            pc_in(st[i].traceback->frames[0].pc, fn))
            return st[i];
    fail_msg("no statistic for the site");
    return st[0];
}

static void assert_site(const struct om_snapshot *s, const void *fn,
                        size_t size, size_t count)
{
    struct om_statistic st = site_stat(s, fn);

    assert_int_equal(st.size, size);
    assert_int_equal(st.count, count);
    assert_true(st.size_error == 0 && st.count_error == 0);
}

/* The sums of every statistic of s (by traceback). */
static void totals_of(const struct om_snapshot *s, size_t *size,
                      size_t *count)
{
    struct om_statistic *st;
    size_t n;

    assert_int_equal(om_snapshot_statistics(s, OM_KEY_TRACEBACK, false, &st,
                                            &n), 0);
    *size = *count = 0;
    for (size_t i = 0; i < n; i++) {
        *size += st[i].size;
        *count += st[i].count;
    }
}

/* Site a allocates 1..1000 bytes and frees each; b keeps three 4096-byte
 * blocks; c reallocates one of them; raw allocates in RAW. */
static void test_allocations_by_site(void **state)
{
    void *b[3];
    struct om_snapshot *s, *back;
    const struct om_snapshot *a;
    struct om_trace_info t;
    struct om_filter raw_only = { true, NULL, 0, false, OM_DOMAIN_RAW };
    struct om_snapshot *f;
    char path[] = "/tmp/objmem-totals-XXXXXX";
    size_t size, count;
    void *r;

    assert_int_equal(om_trace_start(1), 0);
    for (size_t i = 1; i <= 1000; i++)
        om_free(site_a(i));
    for (int i = 0; i < 3; i++)
        b[i] = site_b(4096);
    b[2] = site_c(b[2], 8192);
    r = site_raw(77);
    s = om_trace_take_snapshot();
    assert_non_null(s);
    a = om_snapshot_allocations(s);
    assert_non_null(a);
    assert_null(om_snapshot_allocations(a));
    assert_null(om_snapshot_peak(a));
    assert_null(om_snapshot_heap(a));
    assert_site(a, (void *)site_a, 500500, 1000);
    assert_site(a, (void *)site_b, 3 * 4096, 3);
    assert_site(a, (void *)site_c, 8192, 1);
    assert_site(a, (void *)site_raw, 77, 1);
    /* 500500 / 1000: 500 records of 501 bytes and 500 of 500. */
    assert_int_equal(om_snapshot_count(a), 5);
    for (size_t i = 0; i < om_snapshot_count(a); i++) {
        assert_int_equal(om_snapshot_trace(a, i, &t), 0);
        assert_int_equal(t.address, 0);
        assert_int_equal(t.time_ms, 0);
        if (pc_in(t.traceback->frames[0].pc, (void *)site_a))
            assert_true((t.size == 501 || t.size == 500) &&
                        t.weight == 500);
    }
    /* What is live is another matter. */
    assert_site(s, (void *)site_b, 2 * 4096, 2);
    assert_site(s, (void *)site_c, 8192, 1);
    totals_of(s, &size, &count);
    assert_int_equal(count, 4);
    /* Filters take domains as for any snapshot. */
    f = om_snapshot_filter(a, &raw_only, 1);
    assert_non_null(f);
    totals_of(f, &size, &count);
    assert_int_equal(size, 77);
    assert_int_equal(count, 1);
    om_snapshot_free(f);
    /* A capture keeps them. */
    close(mkstemp(path));
    assert_int_equal(om_snapshot_dump(s, path), 0);
    back = om_snapshot_load(path);
    assert_non_null(back);
    assert_non_null(om_snapshot_allocations(back));
    assert_site(om_snapshot_allocations(back), (void *)site_a, 500500, 1000);
    assert_site(om_snapshot_allocations(back), (void *)site_c, 8192, 1);
    assert_int_equal(om_snapshot_count(om_snapshot_allocations(back)), 5);
    om_snapshot_free(back);
    unlink(path);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);

    /* A clear starts them afresh; so does a stop. */
    om_trace_clear_traces();
    s = om_trace_take_snapshot();
    assert_int_equal(om_snapshot_count(om_snapshot_allocations(s)), 0);
    om_snapshot_free(s);
    for (size_t i = 0; i < 5; i++)
        om_free(site_a(64));
    s = om_trace_take_snapshot();
    assert_site(om_snapshot_allocations(s), (void *)site_a, 320, 5);
    assert_int_equal(om_snapshot_count(om_snapshot_allocations(s)), 1);
    om_snapshot_free(s);
    om_trace_stop();
    assert_int_equal(om_trace_start(1), 0);
    s = om_trace_take_snapshot();
    assert_int_equal(om_snapshot_count(om_snapshot_allocations(s)), 0);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
    for (int i = 0; i < 3; i++)
        om_free(b[i]);
    om_raw_free(r);
}

/* ---- Threads, and more sites than a thread's entries ---- */

#define THREADS 4
#define LINES 600                       /* > OMI_TOTAL_ACC */
#define ROUNDS 5

static __thread unsigned line_now;

static int line_frames(void *ctx, struct om_frame *frames, int max)
{
    (void)ctx;
    if (max > 0)
        frames[0] = (struct om_frame){ "app.py", "f", line_now, NULL };
    return 1;
}

static char tracked[THREADS][16];

static void *thread_lines(void *arg)
{
    int t = (int)(intptr_t)arg;

    for (int r = 0; r < ROUNDS; r++)
        for (unsigned line = 1; line <= LINES; line++) {
            line_now = line;
            om_free(om_malloc(line));
        }
    line_now = LINES + 1;               /* a domain of the runtime's own */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(om_trace_track(1000 + (unsigned)t % 2,
                                        tracked[t], 10), 0);
        assert_int_equal(om_trace_untrack(1000 + (unsigned)t % 2,
                                          tracked[t]), 0);
    }
    return NULL;
}

static void test_allocations_threads(void **state)
{
    pthread_t th[THREADS];
    struct om_snapshot *s;
    const struct om_snapshot *a;
    struct om_statistic *st;
    size_t n, size, count, seen = 0;

    om_trace_set_frame_source(line_frames, NULL);
    assert_int_equal(om_trace_start(1), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, thread_lines,
                                        (void *)(intptr_t)t), 0);
    for (int k = 0; k < 20; k++) {      /* snapshots while they run */
        s = om_trace_take_snapshot();
        assert_non_null(s);
        totals_of(om_snapshot_allocations(s), &size, &count);
        assert_true(count <= THREADS * (ROUNDS * LINES + 3));
        om_snapshot_free(s);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    s = om_trace_take_snapshot();
    a = om_snapshot_allocations(s);
    assert_int_equal(om_snapshot_statistics(a, OM_KEY_LINENO, false, &st,
                                            &n), 0);
    assert_int_equal(n, LINES + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned line = st[i].traceback->frames[0].lineno;

        if (line == LINES + 1) {        /* both domains: one line */
            assert_int_equal(st[i].count, THREADS * 3);
            assert_int_equal(st[i].size, THREADS * 3 * 10);
        } else {
            assert_int_equal(st[i].count, THREADS * ROUNDS);
            assert_int_equal(st[i].size, THREADS * ROUNDS * line);
        }
        seen++;
    }
    assert_int_equal(seen, LINES + 1);
    /* Its two domains stay apart (totals.c keeps a traceback's first
     * domain in its chunk, the other in the table): 6 blocks each. */
    for (int d = 1000; d <= 1001; d++) {
        struct om_filter only = { true, NULL, 0, false, d };
        struct om_snapshot *f = om_snapshot_filter(a, &only, 1);

        assert_non_null(f);
        totals_of(f, &size, &count);
        assert_int_equal(count, THREADS / 2 * 3);
        assert_int_equal(size, THREADS / 2 * 3 * 10);
        om_snapshot_free(f);
    }
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* ---- Sampling: estimates, and their errors ---- */

/* 20,000 blocks of 1000 bytes sampled at a mean of 4096: each sample
 * weighs w = 1 / (1 - exp(-1000/4096)) = 4.62 and p = 0.217, about 4,330
 * samples; the standard error of the bytes is 1000 sqrt(k w (w - 1)),
 * about 1.3% of the 20 MB.  The gaps are seeded: the check is the same
 * at every run. */
static void test_allocations_sampled(void **state)
{
    struct om_snapshot *s;
    struct om_statistic st;
    double truth = 20000.0 * 1000;

    omi_trace_seed(0x9E3779B97F4A7C15ull);
    assert_int_equal(om_trace_start_sampling(4096), 0);
    for (int i = 0; i < 20000; i++)
        om_free(site_a(1000));
    s = om_trace_take_snapshot();
    st = site_stat(om_snapshot_allocations(s), (void *)site_a);
    assert_true(st.size_error > 0.005 * truth &&
                st.size_error < 0.03 * truth);
    assert_true(fabs((double)st.size - truth) < 4 * st.size_error);
    assert_true(fabs((double)st.count - 20000) < 4 * st.count_error);
    assert_true(fabs(st.size_error / 1000 - st.count_error) <
                0.01 * st.count_error);
    assert_int_equal(om_snapshot_count(s), 0);   /* nothing live */
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* ---- Out of memory: an allocation goes uncounted, nothing breaks ---- */

static void test_allocations_oom(void **state)
{
    struct om_snapshot *s;
    size_t size, count;

    om_trace_set_frame_source(line_frames, NULL);
    assert_int_equal(om_trace_start(1), 0);
    line_now = 1;
    om_free(om_malloc(8));              /* the entries are mapped */
    assert_int_equal(om_debug_fail_maps(0, true), 0);
    for (unsigned line = 1; line <= LINES; line++) {
        void *p;

        line_now = line;
        p = om_malloc(8);
        assert_non_null(p);
        om_free(p);
    }
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_int_equal(om_check(), 0);
    s = om_trace_take_snapshot();
    assert_non_null(s);
    totals_of(om_snapshot_allocations(s), &size, &count);
    assert_true(count >= 1 && count <= LINES + 1);
    assert_int_equal(size, 8 * count);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* ---- om_check finds a broken invariant of the totals ----
 *
 * Each test breaks one invariant by hand, sees om_check name it, mends
 * it and sees om_check pass.
 */

/* The key of the allocations of traceback id in domain dom, of this
 * generation (an entry's, trace.h). */
static uint64_t total_key(uint32_t id, unsigned dom)
{
    return (uint64_t)omi_trace_generation() << 32 | (uint64_t)id << 8 | dom;
}

/* Tracing on, a block traced at site_a in *p: its traceback's id. */
static uint32_t traced_block(void **p)
{
    struct omi_trace_rec v;

    assert_int_equal(om_trace_start(1), 0);
    *p = site_a(48);
    assert_true(omi_tags_find(OM_DOMAIN_MEM, (uintptr_t)*p,
                              omi_trace_generation(), &v));
    return v.tb;
}

/* An allocation of 48 bytes of traceback id in domain dom, moved as a
 * thread with no counter slot moves it: to the chunk when it is id's
 * first domain, else to the table. */
static void move_sum(uint32_t id, unsigned dom)
{
    omi_totals_miss(NULL, total_key(id, dom), OMI_TOTAL_ONE, 48, 0, 0);
}

/* The table (totals.1): a key twice (a slot overwritten with another's
 * key), and one key more counted than it holds. */
static void test_check_totals_1(void **state)
{
    struct omi_totals_debug raw, obj;
    uint64_t key;
    void *p;
    uint32_t id = traced_block(&p);

    move_sum(id, OM_DOMAIN_MEM);
    move_sum(id, OM_DOMAIN_RAW);
    move_sum(id, OM_DOMAIN_OBJ);
    omi_totals_debug(id, OM_DOMAIN_RAW, &raw);
    omi_totals_debug(id, OM_DOMAIN_OBJ, &obj);
    assert_non_null(raw.key);
    assert_non_null(obj.key);
    key = *obj.key;
    *obj.key = *raw.key;
    assert_check_finds("totals.1");
    *obj.key = key;
    assert_int_equal(om_check(), 0);
    ++*raw.table_used;
    assert_check_finds("totals.1");
    --*raw.table_used;
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* The entry of key of the main thread, which holds tracing's counter
 * slot 0 (it traced first). */
static struct omi_total_entry *main_entry(uint64_t key)
{
    struct omi_total_entry *acc = omi_totals_thread(0);

    for (size_t i = 0; acc && i < OMI_TOTAL_ACC; i++)
        if (atomic_load(&acc[i].key) == key)
            return &acc[i];
    fail_msg("no entry of key %#llx", (unsigned long long)key);
    return NULL;
}

/* A thread's entry (totals.2) naming a traceback not made yet, then one
 * with a variance below 0. */
static void test_check_totals_2(void **state)
{
    struct omi_total_entry *e;
    void *p;
    uint32_t id = traced_block(&p);

    e = main_entry(total_key(id, OM_DOMAIN_MEM));
    atomic_store(&e->key, total_key(0xffffff, OM_DOMAIN_MEM));
    assert_check_finds("totals.2");
    atomic_store(&e->key, total_key(id, OM_DOMAIN_MEM));
    assert_int_equal(om_check(), 0);
    atomic_store(&e->cvar, -1.0);
    assert_check_finds("totals.2");
    atomic_store(&e->cvar, 0.0);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* The chunks (totals.3): the last one above dir_top; a first sum whose
 * count was lost, its bytes kept; one first sum more counted than the
 * chunks hold; then, with a second domain in the table, the chunk's sums
 * said to be of that domain. */
static void test_check_totals_3(void **state)
{
    struct omi_totals_debug d;
    uint64_t n;
    void *p;
    uint32_t id = traced_block(&p);

    move_sum(id, OM_DOMAIN_MEM);
    omi_totals_debug(id, OM_DOMAIN_MEM, &d);
    assert_non_null(d.n);
    assert_int_equal(*d.dom, OM_DOMAIN_MEM);
    --*d.dir_top;
    assert_check_finds("totals.3");
    ++*d.dir_top;
    assert_int_equal(om_check(), 0);
    n = *d.n;
    *d.n = 0;
    assert_check_finds("totals.3");
    *d.n = n;
    assert_int_equal(om_check(), 0);
    ++*d.first_used;
    assert_check_finds("totals.3");
    --*d.first_used;
    assert_int_equal(om_check(), 0);
    move_sum(id, OM_DOMAIN_RAW);
    *d.dom = OM_DOMAIN_RAW;
    assert_check_finds("totals.3");
    *d.dom = OM_DOMAIN_MEM;
    assert_int_equal(om_check(), 0);
    om_free(p);
}

#define T(f) cmocka_unit_test_setup_teardown(f, trace_setup, trace_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_allocations_by_site),
        T(test_allocations_threads),
        T(test_allocations_sampled),
        T(test_allocations_oom),
        T(test_check_totals_1),
        T(test_check_totals_2),
        T(test_check_totals_3),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
