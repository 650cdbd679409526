/*
 * fuzz_util.h - what the operation-stream fuzz targets (fuzz_alloc.c,
 * fuzz_trace.c) share: the input reader, the four malloc families
 * called by number, and the worker thread that runs one operation at a
 * time while the main thread waits.  Static functions: include it once,
 * in a target that defines fail() (a one-line report, then abort).
 *
 *   reader: p, n -- take() gives the next byte, 0 past the end.
 *   worker: fn, arg -- the job; fn NULL: none (under lock).
 *
 * Invariants:
 *   1. take() never reads past p + n; take_bytes(r, k) is little-endian.
 *   2. on_worker(fn, arg) returns once fn(arg) has run on the worker,
 *      and only one of the two threads runs at a time.
 *   3. counts_now() gives the block counters every input restores.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objmem.h"

static void fail(const char *what);

/* The loops over block bytes are kept out of libFuzzer's coverage: their
 * compares, traced, took most of the time; they find nothing new. */
#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#define NO_COVERAGE __attribute__((noinline))
#endif

enum family { GP, MEM, OBJ, RAW, NFAMILY };

/* ---- Reading the input ---- */

struct reader {
    const uint8_t *p;
    size_t n;
};

static unsigned take(struct reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static size_t take_bytes(struct reader *r, int n)
{
    size_t v = 0;

    for (int i = 0; i < n; i++)
        v |= (size_t)take(r) << (8 * i);
    return v;
}

/* ---- The families ---- */

static void *call_malloc(enum family fam, size_t size)
{
    switch (fam) {
    case GP:
        return om_gp_malloc(size);
    case MEM:
        return om_malloc(size);
    case OBJ:
        return om_obj_malloc(size);
    default:
        return om_raw_malloc(size);
    }
}

static void *call_calloc(enum family fam, size_t nelem, size_t elsize)
{
    switch (fam) {
    case GP:
        return om_gp_calloc(nelem, elsize);
    case MEM:
        return om_calloc(nelem, elsize);
    case OBJ:
        return om_obj_calloc(nelem, elsize);
    default:
        return om_raw_calloc(nelem, elsize);
    }
}

static void *call_realloc(enum family fam, void *p, size_t size)
{
    switch (fam) {
    case GP:
        return om_gp_realloc(p, size);
    case MEM:
        return om_realloc(p, size);
    case OBJ:
        return om_obj_realloc(p, size);
    default:
        return om_raw_realloc(p, size);
    }
}

static void call_free(enum family fam, void *p)
{
    switch (fam) {
    case GP:
        om_gp_free(p);
        break;
    case MEM:
        om_free(p);
        break;
    case OBJ:
        om_obj_free(p);
        break;
    default:
        om_raw_free(p);
    }
}

/* ---- The worker thread ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    void (*fn)(void *);         /* the job; NULL: none */
    void *arg;
    bool started;
} worker = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL,
             NULL, false };

static void *worker_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&worker.lock);
    for (;;) {
        while (!worker.fn)
            pthread_cond_wait(&worker.changed, &worker.lock);
        pthread_mutex_unlock(&worker.lock);
        worker.fn(worker.arg);
        pthread_mutex_lock(&worker.lock);
        worker.fn = NULL;
        pthread_cond_broadcast(&worker.changed);
    }
    return NULL;
}

/* Run fn(arg) on the worker and wait until it is done. */
static void on_worker(void (*fn)(void *), void *arg)
{
    pthread_t t;

    if (!worker.started) {
        if (pthread_create(&t, NULL, worker_main, NULL) != 0)
            fail("cannot start the worker thread");
        pthread_detach(t);
        worker.started = true;
    }
    pthread_mutex_lock(&worker.lock);
    worker.fn = fn;
    worker.arg = arg;
    pthread_cond_broadcast(&worker.changed);
    while (worker.fn)
        pthread_cond_wait(&worker.changed, &worker.lock);
    pthread_mutex_unlock(&worker.lock);
}

/* ---- The counters an input must leave as it found them ---- */

struct counts {
    size_t blocks, raw, large;
};

static struct counts counts_now(void)
{
    struct om_stats s;

    if (om_stats_get(&s) != 0)
        fail("om_stats_get failed");
    return (struct counts){ s.blocks_in_use, s.raw_blocks, s.large_blocks };
}

#endif /* FUZZ_UTIL_H */
