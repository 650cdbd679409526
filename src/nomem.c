/*
 * nomem.c - L1: fault injection per request (om_debug_fail_allocs), as
 * CPython's _testcapi.set_nomemory and SQLite's oom-transient and
 * oom-persistent: the requests that allocate (malloc, calloc, realloc),
 * counted across the three domains from the call, fail in a window
 * [start, stop) with NULL and errno = ENOMEM.  A test sweeps start over
 * 0, 1, 2, ... to fail every allocation an operation makes in turn
 * (tests/test_nomem.c), as Lua's memerr.lua does.
 *
 * It wraps the domains' tables, as the debug hooks do, so that it costs
 * nothing while off; while on, MEM's and OBJ's fast paths go through
 * their tables.
 *
 *   wraps[d]: underlying table | its omi_domain_small mode | installed
 *   window:   next request's number (atomic) | start | stop (0: none)
 *
 * Stopping puts each underlying table back, with its mode, where the
 * wrapper is still the domain's table; where a table was set over it
 * since (tracing started meanwhile), the wrapper stays under it and
 * passes every request through, until a later start uses it again.
 *
 * A failed request calls no underlying function: a realloc's block is
 * left as it was, and errno is ENOMEM.  A request counts once: what its
 * table asks of another domain while serving it (a large MEM or OBJ
 * block from RAW) is not counted (`inside`, per thread).
 *
 * Invariant (checked by omi_nomem_check):
 *   1. Every installed wrapper's underlying table has its four functions
 *      and is not a wrapper; while the window is on, every wrapper is
 *      installed.
 */
#include <errno.h>
#include <stdatomic.h>

#include "domain.h"

static struct {
    struct om_allocator under;
    uint8_t mode;                       /* omi_domain_small's, before */
    bool installed;
} wraps[3];

static _Atomic long next;               /* the next request's number */
static _Atomic long failed;             /* failures made since the start */
static long win_start = -1, win_stop;   /* -1: off */

/* True when this request is in the window: it fails. */
static bool fails(void)
{
    long start = __atomic_load_n(&win_start, __ATOMIC_RELAXED), n;

    if (start < 0)
        return false;
    n = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
    if (n < start || (win_stop > 0 && n >= win_stop))
        return false;
    atomic_fetch_add_explicit(&failed, 1, memory_order_relaxed);
    errno = ENOMEM;
    return true;
}

#define UNDER(ctx) (&wraps[(uintptr_t)(ctx)].under)

/* Inside a request being served: what the table under it asks of
 * another domain (a large MEM block from RAW) is part of it, not a
 * request of its own. */
static _Thread_local bool inside;

enum request { MALLOC, CALLOC, REALLOC };

/* Serve a request of domain ctx: counted (and maybe failed) unless
 * inside another. */
static void *serve(void *ctx, enum request r, void *p, size_t a, size_t b)
{
    const struct om_allocator *u = UNDER(ctx);
    bool was = inside;
    void *q;

    if (!was && fails())
        return NULL;
    inside = true;
    q = r == MALLOC   ? u->malloc(u->ctx, a)
        : r == CALLOC ? u->calloc(u->ctx, a, b)
                      : u->realloc(u->ctx, p, a);
    inside = was;
    return q;
}

static void *nm_malloc(void *ctx, size_t size)
{
    return serve(ctx, MALLOC, NULL, size, 0);
}

static void *nm_calloc(void *ctx, size_t nelem, size_t elsize)
{
    return serve(ctx, CALLOC, NULL, nelem, elsize);
}

static void *nm_realloc(void *ctx, void *p, size_t size)
{
    return serve(ctx, REALLOC, p, size, 0);
}

static void nm_free(void *ctx, void *p)
{
    UNDER(ctx)->free(UNDER(ctx)->ctx, p);
}

static bool is_wrapper(const struct om_allocator *a, enum om_domain d)
{
    return a->malloc == nm_malloc && a->ctx == (void *)(uintptr_t)d;
}

const struct om_allocator *omi_nomem_under(const struct om_allocator *t)
{
    uintptr_t d = (uintptr_t)t->ctx;

    return t->malloc == nm_malloc && d <= OM_DOMAIN_OBJ ? &wraps[d].under
                                                        : NULL;
}

bool omi_nomem_fails_aligned(void)
{
    return !inside && fails();
}

int om_debug_fail_allocs(long start, long stop)
{
    if (start < -1 || (start >= 0 && stop != 0 && stop <= start))
        return -EINVAL;
    __atomic_store_n(&win_start, -1L, __ATOMIC_RELAXED);
    for (int d = OM_DOMAIN_RAW; d <= OM_DOMAIN_OBJ; d++) {
        struct om_allocator cur, w = { (void *)(uintptr_t)d, nm_malloc,
                                       nm_calloc, nm_realloc, nm_free };

        om_get_allocator((enum om_domain)d, &cur);
        if (start >= 0 && !wraps[d].installed) {
            wraps[d].under = cur;
            wraps[d].mode = omi_domain_small[d];
            wraps[d].installed = true;
            om_set_allocator((enum om_domain)d, &w);
        } else if (start < 0 && wraps[d].installed &&
                   is_wrapper(&cur, (enum om_domain)d)) {
            om_set_allocator((enum om_domain)d, &wraps[d].under);
            omi_domain_small[d] = wraps[d].mode;
            wraps[d].installed = false;
        }
    }
    atomic_store_explicit(&next, 0, memory_order_relaxed);
    if (start >= 0) {
        atomic_store_explicit(&failed, 0, memory_order_relaxed);
        win_stop = stop;
        __atomic_store_n(&win_start, start, __ATOMIC_RELAXED);
    }
    return 0;
}

long om_debug_failed_allocs(void)
{
    return atomic_load_explicit(&failed, memory_order_relaxed);
}

int omi_nomem_check(void)
{
    for (int d = OM_DOMAIN_RAW; d <= OM_DOMAIN_OBJ; d++) {
        const struct om_allocator *u = &wraps[d].under;

        if (!wraps[d].installed) {
            if (__atomic_load_n(&win_start, __ATOMIC_RELAXED) >= 0)
                return omi_check_fail("nomem.1", NULL, "domain %d not "
                                      "wrapped while failing", d);
            continue;
        }
        if (!u->malloc || !u->calloc || !u->realloc || !u->free ||
            u->malloc == nm_malloc)
            return omi_check_fail("nomem.1", u, "domain %d wraps a bad "
                                  "table", d);
    }
    return 0;
}
