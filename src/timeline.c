/*
 * timeline.c - X (cross-cutting): the timeline of a traced run, the
 * traced memory and the process's resident set over time
 * (om_snapshot_timeline): memray's and heaptrack's memory-over-time
 * chart, and, drawn together, the gap between what the program holds and
 * what the OS counts against it.
 *
 * trace.c's ticker thread, which runs while tracing does, adds a sample
 * each tick (1/64 s): the tick, the traced memory and its peak, and the
 * resident set (omi_os_rss, read before any lock is taken).  Samples go
 * to points:
 *
 *   points, a mapping of CAP points made at the first sample:
 *   +-------------------+-------------------+-----+------------------+
 *   | tick, traced, rss | tick, traced, rss | ... | the open point   |
 *   +-------------------+-------------------+-----+------------------+
 *     n points; step: the ticks a point covers (1, then doubling)
 *
 * A sample less than step ticks after the last point's start (or before
 * it: a snapshot's sample, read on the clock) goes into it, the larger
 * of each figure; else it opens a new point.  When CAP
 * points are kept, each two neighbours merge (the first's tick, the
 * larger figures) and step doubles: a run of any length keeps CAP/2 to
 * CAP points of its whole length, a tick apart for the first minute.
 * The traced figure of a sample is the peak when the peak rose since the
 * last sample (the peak was reached in between): the timeline's highest
 * point is the peak, which a sample a tick could miss.
 *
 * A run is one span of tracing: omi_timeline_restart (tracing starts)
 * and omi_timeline_release (it stops) each begin a new run, and a sample
 * carries the run it was taken in (omi_timeline_run, read under trace.c's
 * tick_lock with the tick), so the sample of a run that has ended is
 * dropped.  Nothing here allocates through objmem; no system call is
 * made under tl_lock (the mapping is made before it and unmapped after).
 *
 * Invariants (om_check through omi_timeline_check):
 *   1. n <= CAP, and n == 0 whenever points is NULL; step is a power of
 *      two, at most 2^24 (trace.c's ticks are 24 bits).
 *   2. The points' ticks strictly increase, and each point's rss is 0 or
 *      a whole number of pages.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "os.h"
#include "trace.h"

#define CAP 4096                /* points kept at most */
#define STEP_MAX ((uint64_t)1 << 24)

struct point {
    uint64_t tick;
    uint64_t traced, rss;
};

static pthread_mutex_t tl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct point *points;    /* CAP of them, mapped; or NULL */
static size_t n, touched;       /* points in use; the most ever */
static uint64_t step = 1;
static uint64_t last_peak;      /* the peak at the last sample */
static _Atomic uint32_t run;

static size_t map_bytes(void)
{
    return CAP * sizeof(struct point);
}

uint32_t omi_timeline_run(void)
{
    return atomic_load(&run);
}

/* No points, and a new run (tl_lock held). */
static void forget(void)
{
    n = 0;
    step = 1;
    last_peak = 0;
    atomic_fetch_add(&run, 1);
}

void omi_timeline_restart(void)
{
    pthread_mutex_lock(&tl_lock);
    forget();
    pthread_mutex_unlock(&tl_lock);
}

void omi_timeline_release(void)
{
    struct point *old;

    pthread_mutex_lock(&tl_lock);
    forget();
    old = points;
    points = NULL;
    touched = 0;
    pthread_mutex_unlock(&tl_lock);
    if (old)
        omi_os_unmap(old, map_bytes());
}

/* Each two neighbours into one: half the points, twice the step. */
static void halve(void)
{
    for (size_t i = 0; 2 * i < n; i++) {
        struct point a = points[2 * i];

        if (2 * i + 1 < n) {
            const struct point *b = &points[2 * i + 1];

            a.traced = a.traced > b->traced ? a.traced : b->traced;
            a.rss = a.rss > b->rss ? a.rss : b->rss;
        }
        points[i] = a;
    }
    n = (n + 1) / 2;
    step *= 2;
}

/* A sample into the points (tl_lock held, points mapped). */
static void add_locked(uint64_t tick, size_t traced, size_t pk, size_t rss)
{
    struct point *last = n ? &points[n - 1] : NULL;

    if (pk > last_peak && pk > traced)
        traced = pk;
    last_peak = pk;
    if (last && tick >= last->tick + step && n == CAP && step < STEP_MAX) {
        halve();                /* the last point may now cover tick */
        last = &points[n - 1];
    }
    if (last && tick < last->tick + step) {
        last->traced = traced > last->traced ? traced : last->traced;
        last->rss = rss > last->rss ? rss : last->rss;
        return;
    }
    if (n == CAP)
        return;
    points[n++] = (struct point){ tick, traced, rss };
    touched = n > touched ? n : touched;
}

void omi_timeline_add(uint32_t r, uint64_t tick, size_t traced, size_t pk,
                      size_t rss)
{
    struct point *fresh = NULL;

    pthread_mutex_lock(&tl_lock);
    if (!points && r == atomic_load(&run)) {
        pthread_mutex_unlock(&tl_lock);
        fresh = omi_os_map(map_bytes(), 0);
        pthread_mutex_lock(&tl_lock);
        if (!points) {
            points = fresh;
            fresh = NULL;
        }
    }
    if (points && r == atomic_load(&run))
        add_locked(tick, traced, pk, rss);
    pthread_mutex_unlock(&tl_lock);
    if (fresh)
        omi_os_unmap(fresh, map_bytes());
}

ssize_t omi_timeline_take(struct omi_region *r, unsigned ticks_per_s,
                          struct om_time_point **out)
{
    struct om_time_point *p;
    size_t k, cap;

    *out = NULL;
    pthread_mutex_lock(&tl_lock);
    cap = n + 16;               /* a few ticks' more while it maps */
    pthread_mutex_unlock(&tl_lock);
    if (!(p = omi_region_alloc(r, cap * sizeof(*p))))
        return -ENOMEM;
    pthread_mutex_lock(&tl_lock);
    for (k = 0; k < n && k < cap; k++)
        p[k] = (struct om_time_point){ points[k].tick * 1000 / ticks_per_s,
                                       (size_t)points[k].traced,
                                       (size_t)points[k].rss };
    pthread_mutex_unlock(&tl_lock);
    *out = k ? p : NULL;
    return (ssize_t)k;
}

size_t omi_timeline_memory(void)
{
    size_t bytes;

    pthread_mutex_lock(&tl_lock);
    bytes = touched * sizeof(struct point);
    pthread_mutex_unlock(&tl_lock);
    return omi_os_page_round(bytes);
}

int omi_timeline_check(void)
{
    int rc = 0;

    pthread_mutex_lock(&tl_lock);
    if (n > CAP || (!points && n) || (step & (step - 1)) || step > STEP_MAX)
        rc = omi_check_fail("timeline.1", points, "%zu points, step %lu",
                            n, (unsigned long)step);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i && points[i].tick <= points[i - 1].tick)
            rc = omi_check_fail("timeline.2", &points[i], "tick %lu after "
                                "%lu", (unsigned long)points[i].tick,
                                (unsigned long)points[i - 1].tick);
        else if (points[i].rss % omi_os_page_size())
            rc = omi_check_fail("timeline.2", &points[i], "rss %lu",
                                (unsigned long)points[i].rss);
    }
    pthread_mutex_unlock(&tl_lock);
    return rc;
}

void omi_timeline_fork_prepare(void)
{
    pthread_mutex_lock(&tl_lock);
}

void omi_timeline_fork_parent(void)
{
    pthread_mutex_unlock(&tl_lock);
}

void omi_timeline_fork_child(void)
{
    pthread_mutex_init(&tl_lock, NULL);
}

/* ---- Tests ---- */

void omi_timeline_debug(size_t i, struct omi_timeline_debug *out)
{
    struct point *p;

    pthread_mutex_lock(&tl_lock);
    p = points && i < n ? &points[i] : NULL;
    *out = (struct omi_timeline_debug){ &n, &step, p ? &p->tick : NULL,
                                        p ? &p->rss : NULL };
    pthread_mutex_unlock(&tl_lock);
}
