/*
 * check.c - X (cross-cutting): om_check(), the auditor.  It walks every
 * heap, arena, pool, free list and remote list and verifies each numbered
 * invariant of arena.h, pool.h and heap.h, plus the arena map's own:
 *
 *   map.1  the arena map marks exactly the arenas on the global list, and
 *          its window's base and bias agree.
 *
 * It pauses the purger and holds the arena lock while it walks; other
 * threads must not allocate meanwhile (their heaps are theirs alone).  Heaps orphaned by fork() are
 * skipped: they may have been mid-update when their thread vanished.
 */
#include <errno.h>

#include "domain.h"
#include "heap.h"
#include "large.h"
#include "object.h"
#include "os.h"
#include "purge.h"
#include "trace.h"

static bool heap_is_checked(const struct heap *h)
{
    return atomic_load(&h->state) != HEAP_ORPHANED;
}

static bool heap_is_known(const struct heap *h)
{
    for (struct heap *k = omi_heap_first(); k; k = omi_heap_next(k))
        if (k == h)
            return true;
    return false;
}

/* Every listed arena is marked, and there are as many marks as arenas:
 * so nothing else is marked. */
static int check_map(void)
{
    size_t arenas = 0;

    for (struct arena *a = omi_arena_first(); a; a = a->all_next) {
        if (omi_arena_of(a) != a)
            return omi_check_fail("map.1", a, "arena not marked");
        arenas++;
    }
    if (omi_arena_map_bits() != arenas)
        return omi_check_fail("map.1", NULL, "%zu marks for %zu arenas",
                              omi_arena_map_bits(), arenas);
    return omi_arena_map_check();
}

static int check_arenas(void)
{
    int rc;

    for (struct arena *a = omi_arena_first(); a; a = a->all_next) {
        if (!heap_is_known(a->heap))
            return omi_check_fail("arena.5", a, "owner heap %p unknown",
                                  (void *)a->heap);
        if (!heap_is_checked(a->heap))
            continue;
        if ((rc = omi_arena_check(a)))
            return rc;
        for (size_t i = META_POOLS; i < POOLS_PER_ARENA; i++)
            if ((rc = omi_pool_check(&a->pools[i])))
                return rc;
    }
    return 0;
}

/* Pools whose tags is not 0, in every arena (pool.h, invariant 6). */
static size_t tagged_pools(void)
{
    size_t n = 0;

    for (struct arena *a = omi_arena_first(); a; a = a->all_next)
        for (size_t i = META_POOLS; i < POOLS_PER_ARENA; i++)
            n += atomic_load(&a->pools[i].tags) != 0;
    return n;
}

int om_check(void)
{
    size_t tagged = 0;
    int rc = 0;

    omi_purge_pause();
    omi_arena_lock();
    for (struct arena *a = omi_arena_first(); a; a = a->all_next)
        for (size_t i = 0; i < POOLS_PER_ARENA; i++)
            a->pools[i].scratch = 0;
    for (struct heap *h = omi_heap_first(); h && rc == 0;
         h = omi_heap_next(h))
        if (heap_is_checked(h))
            rc = omi_heap_check(h);
    if (rc == 0)
        rc = check_arenas();
    if (rc == 0)
        rc = check_map();
    if (rc == 0)
        tagged = tagged_pools();
    omi_arena_unlock();
    if (rc == 0)
        rc = omi_large_check();
    if (rc == 0)
        rc = omi_freelist_check();
    if (rc == 0)
        rc = omi_str_check();
    if (rc == 0)
        rc = omi_gc_check();
    if (rc == 0)
        rc = omi_trace_check();
    if (rc == 0)
        rc = omi_tags_check_pools(tagged);
    if (rc == 0)
        rc = omi_os_check();
    if (rc == 0)
        rc = omi_nomem_check();
    omi_purge_resume();
    return rc;
}
