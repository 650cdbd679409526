/*
 * purge.c - L2: the deferred purge.  When do free pages go back to the OS?
 *
 * At free time, a run of frees that empties most of the heap looks the
 * same whether the program is about to allocate it all again (a batch
 * loop) or is done with it (the articles' "RSS stays high").  Purging at
 * once costs the first a page fault per page on its next round (about
 * 1.3 us per 4 KiB here); keeping the pages costs the second its RSS.  Only
 * time tells them apart, so by default a pool that empties stays resident
 * (DIRTY) and is given back when it has stayed empty for the purge delay
 * (50 ms), whether or not its thread calls objmem again.  250 ms kept
 * python3's json round trip of 80 MB of objects 28 MB above its 185 MB
 * peak: the freed objects of one phase stayed resident through the
 * next; the batch patterns reuse their pages within a few ms.
 *
 * That is the purger's job: a thread started on the first need, which
 * every tick (a quarter of the delay) advances the purge epoch and purges,
 * in every arena that holds DIRTY pools, those dirty for the delay, and
 * unmaps the cached large mappings (large.c) unused for the delay.  It
 * sleeps on a condition variable while no pool is DIRTY.  It touches only
 * DIRTY pools, by the protocol of pool.h (DIRTY -> PURGING -> CLEAN, by
 * CAS), and pins each arena it works in so that the owner cannot unmap it
 * meanwhile (arena.c).  It holds no lock across madvise.
 *
 * The purge_delay option (OBJMEM_PURGE_DELAY, milliseconds; options.c) or
 * om_set_purge_delay() choose the
 * policy: > 0 deferred as above; 0 immediate (no thread: a heap purges as
 * soon as it holds more than PURGE_TRIGGER_POOLS dirty pools, down to
 * PURGE_KEEP_POOLS); < 0 never (only om_collect gives memory back).  If
 * the thread cannot be started the policy falls back to immediate.
 *
 * Invariants:
 *   1. The purger changes no state but DIRTY -> PURGING -> CLEAN, and only
 *      in arenas it has pinned.
 *   2. While paused > 0, the purger starts no work; pause returns only
 *      when no work is under way (no pool is PURGING).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "large.h"
#include "options.h"
#include "os.h"

#define DELAY_UNSET LONG_MIN
#define PIN_BATCH 64

static _Atomic long delay_ms = DELAY_UNSET;
static atomic_bool thread_failed;       /* fall back to immediate */
static atomic_int started;              /* 0 no, 1 starting/started */
static atomic_bool sleeping;
static atomic_int paused;
static atomic_bool busy;
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;

static long delay(void)
{
    long ms = atomic_load(&delay_ms);

    if (unlikely(ms == DELAY_UNSET)) {
        ms = omi_option_long(OMI_OPT_PURGE_DELAY);
        atomic_store(&delay_ms, ms);
    }
    return ms;
}

enum purge_mode omi_purge_mode(void)
{
    long ms = delay();

    if (ms < 0)
        return PURGE_NEVER;
    if (ms == 0 || atomic_load_explicit(&thread_failed, memory_order_relaxed))
        return PURGE_IMMEDIATE;
    return PURGE_DEFERRED;
}

int om_set_purge_delay(long ms)
{
    atomic_store(&delay_ms, ms);
    omi_purge_notify();
    return 0;
}

long om_get_purge_delay(void)
{
    return delay();
}

/* ---- The purger thread ---- */

static long tick_ms(void)
{
    long t = delay() / 4;
    return t < 10 ? 10 : t > 250 ? 250 : t;
}

/* Nothing to give back: no dirty pool or cached large block, or a policy
 * that leaves them (om_set_purge_delay since the thread started). */
static bool no_work(void)
{
    return omi_purge_mode() != PURGE_DEFERRED ||
           (omi_arena_dirty_total() == 0 && omi_large_cached_bytes() == 0);
}

/*
 * Sleep while no pool is DIRTY.  A heap signals when it makes pools dirty
 * and sees the purger asleep; a signal that slips between the purger's
 * count and its wait is caught by the timeout (a second, or less once the
 * main thread has left: omi_os_helper_poll_ms), so the purger
 * needs no count that every heap updates (the counts are per arena, with
 * one writer each: arena.h).  False when the program has left (os.h):
 * the purger must end.
 */
static bool wait_for_dirt(void)
{
    struct timespec until;
    int rc;

    while (no_work()) {
        rc = 0;
        pthread_mutex_lock(&wake_lock);
        atomic_store(&sleeping, true);
        if (no_work()) {
            omi_os_deadline(&until, omi_os_helper_poll_ms());
            rc = pthread_cond_timedwait(&wake_cond, &wake_lock, &until);
        }
        atomic_store(&sleeping, false);
        pthread_mutex_unlock(&wake_lock);
        if (rc == ETIMEDOUT && omi_os_helper_orphaned())   /* no lock held */
            return false;
    }
    return true;
}

/* One tick's work: purge what has been dirty long enough. */
static void purge_old(void)
{
    struct arena *pinned[PIN_BATCH];
    enum purge_mode mode = omi_purge_mode();
    unsigned age;
    size_t n;

    if (mode == PURGE_NEVER)
        return;
    age = mode == PURGE_DEFERRED ?
          (unsigned)((delay() + tick_ms() - 1) / tick_ms()) : 0;
    atomic_store(&busy, true);
    if (atomic_load(&paused) == 0) {
        n = omi_arena_pin_dirty(pinned, PIN_BATCH);
        for (size_t i = 0; i < n; i++) {
            omi_arena_purge(pinned[i], age, true);
            omi_arena_unpin(pinned[i]);
        }
        omi_large_purge(age);
    }
    atomic_store(&busy, false);
}

static void *purger_main(void *arg)
{
    long slept = 0;

    (void)arg;
    omi_os_helper_begin("objmem-purger");
    for (;;) {
        if (no_work() && !wait_for_dirt())
            break;
        omi_os_sleep_ms(tick_ms());
        omi_arena_epoch_advance();
        purge_old();
        if ((slept += tick_ms()) >= omi_os_helper_poll_ms()) {
            slept = 0;
            if (omi_os_helper_orphaned())
                break;
        }
    }
    /* started stays 1: no purger again while the process ends. */
    omi_os_helper_end();
    return NULL;
}

void omi_purge_notify(void)
{
    int expected = 0;

    if (omi_purge_mode() != PURGE_DEFERRED)
        return;
    if (atomic_load_explicit(&started, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_strong(&started, &expected, 1)) {
        if (omi_os_thread_start(purger_main) != 0)
            atomic_store(&thread_failed, true);
        return;
    }
    if (atomic_load(&sleeping)) {
        pthread_mutex_lock(&wake_lock);
        pthread_cond_signal(&wake_cond);
        pthread_mutex_unlock(&wake_lock);
    }
}

void omi_purge_pause(void)
{
    atomic_fetch_add(&paused, 1);
    while (atomic_load(&busy))
        sched_yield();
}

void omi_purge_resume(void)
{
    atomic_fetch_sub(&paused, 1);
}

void omi_purge_fork_child(void)
{
    pthread_mutex_init(&wake_lock, NULL);
    pthread_cond_init(&wake_cond, NULL);
    atomic_store(&started, 0);
    atomic_store(&sleeping, false);
    atomic_store(&busy, false);
    atomic_store(&paused, 0);
}
