/*
 * check.c - X (cross-cutting): om_check(), the auditor.  It walks every
 * heap, arena, pool, free list and remote list and verifies each numbered
 * invariant of arena.h, pool.h and heap.h, plus the arena map's own:
 *
 *   map.1  the arena map marks exactly the arenas on the global list, and
 *          its window's base and bias agree.
 *
 * It pauses the purger and holds the arena lock while it walks; other
 * threads must not allocate meanwhile (their heaps are theirs alone).
 * Heaps orphaned by fork() are skipped: they may have been mid-update
 * when their thread vanished.
 *
 * On a corrupted heap it reports and returns -EFAULT; it never crashes,
 * hangs or writes but its pools' scratch counts (fuzz/fuzz_check.c
 * corrupts a heap to hold it to that).  So no pointer read out of
 * metadata is followed before it is tested: an arena by the map
 * (omi_arena_of(a) == a, which reads only the map), a heap by being on
 * the heap list, a pool descriptor by lying in the descriptors of a
 * marked arena (omi_arena_check_pool), a block by lying in its pool at
 * a block boundary; a class is below NCLASSES before a table lookup; a
 * list walk stops after as many steps as the list can hold (the arenas
 * mapped, a pool's capacity, its blocks in use).  What it trusts: the
 * arena map once no mark is found that no arena made (check_arena_list),
 * the head of the arena list and the count of arenas mapped, the heap
 * list, and large.c's table and cache arrays (their entries are only
 * compared, never followed).
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

/*
 * arena.1 and map.1 for the global list itself, before anything else
 * walks it: no mark that no arena made, every arena on the list marked
 * (so its header is mapped: a pointer is followed only after the map
 * vouched for it), and as many arenas on it as are mapped, so a wild
 * all_next is reported and not followed, and a cycle is reported after
 * as many steps as arenas instead of hanging om_check.
 */
static int check_arena_list(void)
{
    struct omi_arena_totals t;
    size_t n = 0;

    if (omi_arena_map_count() > omi_arena_map_bits())
        return omi_check_fail("map.1", NULL, "%zu bits set in the map, "
                              "%zu marks made", omi_arena_map_count(),
                              omi_arena_map_bits());
    omi_arena_totals(&t);
    for (struct arena *a = omi_arena_first(); a; a = a->all_next) {
        if (omi_arena_of(a) != a)
            return omi_check_fail("arena.1", a, "not aligned or not in "
                                  "the map");
        if (++n > t.current)
            return omi_check_fail("arena.1", a, "more arenas on the list "
                                  "than the %zu mapped: a cycle",
                                  t.current);
    }
    if (n != t.current)
        return omi_check_fail("arena.1", NULL, "%zu arenas on the list, "
                              "%zu mapped", n, t.current);
    return 0;
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
    rc = check_arena_list();
    for (struct arena *a = omi_arena_first(); a && rc == 0; a = a->all_next)
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
