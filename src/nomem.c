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
 * left as it was, and errno is ENOMEM.
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

static void *nm_malloc(void *ctx, size_t size)
{
    return fails() ? NULL : UNDER(ctx)->malloc(UNDER(ctx)->ctx, size);
}

static void *nm_calloc(void *ctx, size_t nelem, size_t elsize)
{
    return fails() ? NULL
                   : UNDER(ctx)->calloc(UNDER(ctx)->ctx, nelem, elsize);
}

static void *nm_realloc(void *ctx, void *p, size_t size)
{
    return fails() ? NULL : UNDER(ctx)->realloc(UNDER(ctx)->ctx, p, size);
}

static void nm_free(void *ctx, void *p)
{
    UNDER(ctx)->free(UNDER(ctx)->ctx, p);
}

static bool is_wrapper(const struct om_allocator *a, enum om_domain d)
{
    return a->malloc == nm_malloc && a->ctx == (void *)(uintptr_t)d;
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
