/*
 * heapmap.c - X (cross-cutting): the heap map a snapshot carries (the
 * public struct om_heap_map): every arena page by page, as the pool
 * descriptors say, and the large blocks.  With the traces' addresses it
 * answers "which blocks keep which pages from going back to the OS".
 *
 * Like check.c it reads other modules' structures: it holds the arena
 * lock and pauses the purger while it reads the descriptors.  The
 * descriptors of pools that other threads own are read without their
 * owners' cooperation, so a map taken while threads allocate is a close
 * picture, not an exact one (a pool's used count may be a block off).
 * The memory it fills is the snapshot's region, reserved before the lock
 * is taken: no system call under the lock.
 *
 *   map -> arenas[narenas]: address, npages, pages -> page[npages]
 *       -> large[nlarge]:   address, mapped bytes
 *
 * Invariants:
 *   1. A BLOCKS page starts a run of `pages` pages whose others are TAIL;
 *      used <= pages * page_size / block_size.
 *   2. The header pages are the first META_POOLS of each arena.
 */
#include <errno.h>

#include "heap.h"
#include "large.h"
#include "tool.h"
#include "trace.h"

#define SLACK 16                /* arenas or large blocks more than seen */

/* Read while the owners allocate (see above): TSan is told so. */
static OM_RACY_READS struct om_heap_page page_of(struct pool *p, size_t i)
{
    unsigned sc = p->sc;

    if (i < META_POOLS)
        return (struct om_heap_page){ OM_PAGE_HEADER, 0, 0, 0 };
    switch (omi_pool_state(p)) {
    case POOL_DIRTY:
        return (struct om_heap_page){ OM_PAGE_FREE, 0, 0, 0 };
    case POOL_CLEAN:
    case POOL_PURGING:
        return (struct om_heap_page){ OM_PAGE_PURGED, 0, 0, 0 };
    case POOL_TAIL:
        return (struct om_heap_page){ OM_PAGE_TAIL, 0, 0, 0 };
    default:
        return (struct om_heap_page){
            OM_PAGE_BLOCKS, (uint8_t)omi_class_pages(sc), p->used,
            (uint32_t)omi_pool_class_size(sc) };
    }
}

static size_t count_arenas(void)
{
    size_t n = 0;

    omi_arena_lock();
    for (struct arena *a = omi_arena_first(); a; a = a->all_next)
        n++;
    omi_arena_unlock();
    return n;
}

/* Fill up to cap arenas (their pages reserved in pages[]): how many
 * there are (more than cap: try again). */
static size_t fill_arenas(struct om_heap_arena *arenas,
                          struct om_heap_page *pages, size_t cap)
{
    size_t n = 0;

    omi_purge_pause();
    omi_arena_lock();
    for (struct arena *a = omi_arena_first(); a; a = a->all_next, n++) {
        struct om_heap_page *pg = &pages[n * POOLS_PER_ARENA];

        if (n >= cap)
            continue;
        arenas[n] = (struct om_heap_arena){ (uintptr_t)a, POOLS_PER_ARENA,
                                            pg };
        for (size_t i = 0; i < POOLS_PER_ARENA; i++)
            pg[i] = page_of(&a->pools[i], i);
    }
    omi_arena_unlock();
    omi_purge_resume();
    return n;
}

static int take_arenas(struct om_heap_map *m, struct omi_region *r)
{
    for (int tries = 0; tries < 4; tries++) {
        size_t cap = count_arenas() + SLACK, n;
        struct om_heap_arena *arenas = omi_region_alloc(
            r, cap * sizeof(*arenas));
        struct om_heap_page *pages = omi_region_alloc(
            r, cap * POOLS_PER_ARENA * sizeof(*pages));

        if (!arenas || !pages)
            return -ENOMEM;
        n = fill_arenas(arenas, pages, cap);
        if (n <= cap) {
            m->arenas = arenas;
            m->narenas = n;
            return 0;
        }
    }
    return -EAGAIN;
}

static int take_large(struct om_heap_map *m, struct omi_region *r)
{
    struct omi_large_totals t;
    struct om_heap_large *large;
    size_t cap;

    omi_large_totals(&t);
    cap = t.blocks + SLACK;
    large = omi_region_alloc(r, cap * sizeof(*large));
    if (!large)
        return -ENOMEM;
    m->large = large;
    m->nlarge = omi_large_list(large, cap);
    return 0;
}

int omi_heapmap_take(struct om_snapshot *s)
{
    struct om_heap_map *m = omi_region_alloc(&s->mem, sizeof(*m));
    int rc;

    if (!m)
        return -ENOMEM;
    m->page_size = POOL_SIZE;
    rc = take_arenas(m, &s->mem);
    if (rc == 0)
        rc = take_large(m, &s->mem);
    if (rc == 0)
        s->heap = m;
    return rc;
}
