/*
 * test_timeline.c - the timeline (timeline.c, om_snapshot_timeline): the
 * traced memory and the resident set over a traced run, its highest
 * point the peak, a capture's round trip, a fork child's own points; the
 * merging of neighbours once the points fill, and the peak counted in the
 * interval it rose in, both driven sample by sample.
 */
#include "testutil.h"

#include <unistd.h>

#include "os.h"
#include "trace.h"

#define BLOCKS 40000
#define BLOCK 256

static const struct om_time_point *highest(const struct om_time_point *p,
                                           size_t n)
{
    const struct om_time_point *best = &p[0];

    for (size_t i = 1; i < n; i++)
        best = p[i].traced > best->traced ? &p[i] : best;
    return best;
}

/* Points in strictly increasing time, each resident set a whole number of
 * pages and not 0 (/proc is there). */
static void assert_sound(const struct om_time_point *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(p[i].rss > 0);
        assert_int_equal(p[i].rss % omi_os_page_size(), 0);
        if (i)
            assert_true(p[i].time_ms > p[i - 1].time_ms);
    }
}

/* A run: idle, 10 MB allocated and held, freed, and the pages given back
 * (the purger's delay).  The ticker's points see each phase; the highest
 * is the peak exactly; the resident set falls after the frees; a capture
 * keeps every point. */
static void test_timeline_run(void **state)
{
    static void *blocks[BLOCKS];
    char path[] = "/tmp/objmem-timeline-XXXXXX";
    const struct om_time_point *p, *q, *top;
    struct om_snapshot *s, *back;
    size_t n, cur, pk, held_rss = 0, i;

    (void)state;
    assert_int_equal(om_trace_start(1), 0);
    omi_os_sleep_ms(80);
    for (i = 0; i < BLOCKS; i++)
        assert_non_null(blocks[i] = om_malloc(BLOCK));
    omi_os_sleep_ms(120);
    held_rss = omi_os_rss();
    for (i = 0; i < BLOCKS; i++)
        om_free(blocks[i]);
    /* the purger gives the pages back after its delay (50 ms) */
    for (int tries = 0; tries < 100 && omi_os_rss() + (5 << 20) > held_rss;
         tries++)
        omi_os_sleep_ms(20);
    omi_os_sleep_ms(40);
    om_trace_get_traced_memory(&cur, &pk);
    assert_int_equal(pk, (size_t)BLOCKS * BLOCK);
    s = om_trace_take_snapshot();
    assert_non_null(s);
    n = om_snapshot_timeline(s, &p);
    /* 240 ms at least, 64 ticks a second */
    assert_true(n >= 8);
    assert_sound(p, n);
    top = highest(p, n);
    assert_int_equal(top->traced, (size_t)BLOCKS * BLOCK);
    assert_true(top->rss >= (size_t)BLOCKS * BLOCK);
    assert_int_equal(p[0].traced, 0);
    assert_int_equal(p[n - 1].traced, 0);
    assert_true(p[n - 1].rss + (5 << 20) <= held_rss);
    /* the points before the blocks, the ones holding them, the ones
     * after: one each at least */
    for (i = 0; i < n && p[i].traced == 0; i++)
        ;
    assert_true(i >= 1 && i < n);
    assert_true(p[n - 1].time_ms >= top->time_ms + 40);
    /* the round trip keeps every point */
    close(mkstemp(path));
    assert_int_equal(om_snapshot_dump(s, path), 0);
    back = om_snapshot_load(path);
    assert_non_null(back);
    unlink(path);
    assert_int_equal(om_snapshot_timeline(back, &q), n);
    assert_memory_equal(q, p, n * sizeof(*p));
    /* the peak's snapshot has none */
    assert_int_equal(om_snapshot_timeline(om_snapshot_peak(back), &q), 0);
    assert_null(q);
    om_snapshot_free(back);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
    /* stopped, and started again: a new run, from its first tick */
    om_trace_stop();
    assert_int_equal(om_trace_start(1), 0);
    s = om_trace_take_snapshot();
    assert_non_null(s);
    n = om_snapshot_timeline(s, &p);
    assert_true(n >= 1 && n <= 3);
    assert_true(p[0].time_ms < 100);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* The child of test_timeline_fork: 300 ms after the fork, with a block
 * allocated at once (which starts the child's ticker, sampled or not) and
 * 4 MB held for the last 150 ms; says "fork ok" when its timeline holds 6
 * points or more after the fork (of about 18), 3 or more of them in the
 * quiet first 150 ms (of about 8), and, when every block is traced, its
 * highest holds the 4 MB. */
static uint64_t fork_ms;
static bool fork_sampled;

static void timeline_in_child(void)
{
    const struct om_time_point *p;
    struct om_snapshot *s;
    void *first = om_malloc(64), *blocks[1024];
    size_t n, i, after = 0, quiet = 0;

    omi_os_sleep_ms(150);
    for (i = 0; i < 1024; i++)
        blocks[i] = om_malloc(4096);
    omi_os_sleep_ms(150);
    s = om_trace_take_snapshot();
    n = om_snapshot_timeline(s, &p);
    for (i = 0; i < n; i++) {
        after += p[i].time_ms > fork_ms + 20;
        quiet += p[i].time_ms > fork_ms + 20 && p[i].time_ms < fork_ms + 130;
    }
    fprintf(stderr, "child: %zu points, %zu after the fork at %llu ms, "
            "%zu before the 4 MB, highest %zu\n", n, after,
            (unsigned long long)fork_ms, quiet,
            (size_t)highest(p, n)->traced);
    /* 280 ms at 64 ticks a second, a third of the ticks at least; a
     * sampled run's highest point is an estimate */
    if (after >= 6 && quiet >= 3 &&
        (fork_sampled || highest(p, n)->traced >= 1024 * 4096) &&
        om_check() == 0)
        fprintf(stderr, "fork ok\n");
    om_snapshot_free(s);
    for (i = 0; i < 1024; i++)
        om_free(blocks[i]);
    om_free(first);
}

/* A fork child's timeline is its parent's up to the fork, then its own:
 * its first allocation starts its ticker, while every block is traced
 * (sampled false) and while tracing samples (a 64-byte request is almost
 * never a sample at a mean of 512 KiB: the ticker must not wait for one). */
static void timeline_fork(bool sampled)
{
    struct om_snapshot *s;
    const struct om_time_point *p;
    char out[1024];
    size_t n;
    int status;

    fork_sampled = sampled;
    assert_int_equal(sampled ? om_trace_start_sampling(512 * 1024)
                             : om_trace_start(1), 0);
    /* this thread's countdown drawn, as a busy program's is */
    om_free(om_malloc(64));
    omi_os_sleep_ms(100);
    s = om_trace_take_snapshot();
    assert_non_null(s);
    n = om_snapshot_timeline(s, &p);
    assert_true(n >= 2);
    fork_ms = p[n - 1].time_ms;
    om_snapshot_free(s);
    status = run_child(timeline_in_child, false, out, sizeof(out));
    print_message("%s", out);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_non_null(strstr(out, "fork ok"));
    assert_int_equal(om_check(), 0);
}

static void test_timeline_fork(void **state)
{
    (void)state;
    timeline_fork(false);
}

static void test_timeline_fork_sampled(void **state)
{
    (void)state;
    timeline_fork(true);
}

/* 10,000 samples a tick apart, traced = tick: the points fill at 4096
 * ticks (timeline.c's CAP: two merge into one), and at 8192 again, so
 * 2,500 points are left, 4 ticks each, each with its last tick's figures
 * (the largest). */
static void test_timeline_merge(void **state)
{
    struct omi_region r = { 0 };
    struct om_time_point *p;
    size_t page = omi_os_page_size();
    uint32_t run;
    ssize_t n;

    (void)state;
    omi_timeline_restart();
    run = omi_timeline_run();
    for (uint64_t t = 0; t < 10000; t++)
        omi_timeline_add(run, t, t, 0, t * page);
    assert_int_equal(om_check(), 0);
    n = omi_timeline_take(&r, 64, &p);
    assert_int_equal(n, 2500);
    for (ssize_t i = 0; i < n; i++) {
        assert_int_equal(p[i].time_ms, (uint64_t)(4 * i) * 1000 / 64);
        assert_int_equal(p[i].traced, 4 * i + 3);
        assert_int_equal(p[i].rss, (4 * i + 3) * page);
    }
    /* a sample of an ended run is dropped */
    omi_timeline_restart();
    omi_timeline_add(run, 20000, 1, 0, page);
    assert_int_equal(omi_timeline_take(&r, 64, &p), 0);
    assert_null(p);
    omi_timeline_release();
    omi_region_release(&r);
    assert_int_equal(om_check(), 0);
}

/* The peak, when it rose since the last sample, is what the interval
 * held at most; a peak already seen is not counted again. */
static void test_timeline_peak(void **state)
{
    struct omi_region r = { 0 };
    struct om_time_point *p;
    uint32_t run;

    (void)state;
    omi_timeline_restart();
    run = omi_timeline_run();
    omi_timeline_add(run, 0, 10, 10, 0);
    omi_timeline_add(run, 1, 5, 100, 0);      /* rose to 100 in between */
    omi_timeline_add(run, 2, 5, 100, 0);      /* the same peak */
    omi_timeline_add(run, 3, 7, 50, 0);       /* reset lower */
    omi_timeline_add(run, 4, 7, 60, 0);       /* rose again */
    omi_timeline_add(run, 4, 8, 60, 0);       /* the same tick: merged */
    assert_int_equal(omi_timeline_take(&r, 64, &p), 5);
    assert_int_equal(p[0].traced, 10);
    assert_int_equal(p[1].traced, 100);
    assert_int_equal(p[2].traced, 5);
    assert_int_equal(p[3].traced, 7);
    assert_int_equal(p[4].traced, 60);
    assert_int_equal(p[4].time_ms, 62);
    omi_timeline_release();
    omi_region_release(&r);
    assert_int_equal(om_check(), 0);
}

/* ---- om_check finds a broken invariant of the timeline ----
 *
 * Driven sample by sample, tracing off: each test breaks one invariant
 * by hand, sees om_check name it, mends it and sees om_check pass.
 */

/* timeline.1: a step that is not a power of two; points given back
 * with their count left. */
static void test_check_timeline_1(void **state)
{
    struct omi_timeline_debug d;

    (void)state;
    omi_timeline_restart();
    omi_timeline_add(omi_timeline_run(), 0, 1, 0, omi_os_page_size());
    omi_timeline_debug(0, &d);
    assert_int_equal(*d.step, 1);
    *d.step = 3;
    assert_check_finds("timeline.1");
    *d.step = 1;
    assert_int_equal(om_check(), 0);
    omi_timeline_release();
    omi_timeline_debug(0, &d);
    assert_null(d.tick);
    *d.n = 1;
    assert_check_finds("timeline.1");
    *d.n = 0;
    assert_int_equal(om_check(), 0);
}

/* timeline.2: a point no later than the one before; a sample whose
 * resident set is not a whole number of pages. */
static void test_check_timeline_2(void **state)
{
    size_t page = omi_os_page_size();
    struct omi_timeline_debug d;
    uint32_t run;

    (void)state;
    omi_timeline_restart();
    run = omi_timeline_run();
    omi_timeline_add(run, 0, 1, 0, page);
    omi_timeline_add(run, 1, 2, 0, page);
    omi_timeline_debug(1, &d);
    assert_non_null(d.tick);
    *d.tick = 0;
    assert_check_finds("timeline.2");
    *d.tick = 1;
    assert_int_equal(om_check(), 0);
    omi_timeline_add(run, 2, 3, 0, page + 1);
    assert_check_finds("timeline.2");
    omi_timeline_debug(2, &d);
    assert_non_null(d.rss);
    *d.rss = page;                      /* mended: whole pages */
    assert_int_equal(om_check(), 0);
    omi_timeline_release();
}

#define T(f) cmocka_unit_test_setup_teardown(f, trace_setup, trace_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_timeline_run),
        T(test_timeline_fork),
        T(test_timeline_fork_sampled),
        T(test_timeline_merge),
        T(test_timeline_peak),
        T(test_check_timeline_1),
        T(test_check_timeline_2),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
