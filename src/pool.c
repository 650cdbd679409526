/*
 * pool.c - L2: pools and blocks.  A pool is one page holding blocks of
 * one size class; its descriptor (pool.h) sits in the arena header.
 *
 * Blocks are threaded on the free list when a pool takes a class, all at
 * once: the pool is one page, which the first block handed out faults in
 * anyway, so lazy carving (pymalloc's nextoffset) would save no RSS here.
 * Always in address order, also for a pool coming back to the class it
 * last held: the list its frees left runs backwards and, after a big free,
 * objects made one after another landed in scattered places (a collection
 * walking a million of them took 69 ns an object instead of 13).
 *
 * Invariants: pool.h lists them (1-4); omi_pool_check verifies them.
 */
#include "arena.h"
#include "tool.h"

char *omi_pool_page(const struct pool *pool)
{
    return (char *)omi_arena_of_pool(pool) + omi_pool_index(pool) * POOL_SIZE;
}

OM_NO_ASAN void omi_pool_init(struct pool *pool, unsigned sc)
{
    size_t size = omi_pool_class_size(sc);
    char *page = omi_pool_page(pool);
    size_t n = POOL_SIZE / size;

    OM_ASSERT(pool->used == 0);
    for (size_t i = 0; i + 1 < n; i++)
        *(void **)(page + i * size) = page + (i + 1) * size;
    *(void **)(page + (n - 1) * size) = NULL;
    omi_tool_freed(page, POOL_SIZE);
    pool->free = page;
    pool->sc = (uint8_t)sc;
}

bool omi_pool_is_block(const struct pool *pool, const void *p)
{
    size_t offset = (size_t)((const char *)p - omi_pool_page(pool));
    size_t size = omi_pool_block_size(pool);

    return atomic_load_explicit(&pool->owner, memory_order_relaxed) != 0 &&
           offset < omi_pool_capacity(pool) * size && offset % size == 0;
}

/* Count the free list, checking each block; -1 if it is broken. */
static OM_NO_ASAN long count_free(const struct pool *pool)
{
    long n = 0;

    for (void *b = pool->free; b; b = *(void **)b) {
        if (omi_arena_of(b) != omi_arena_of_pool(pool) ||
            !omi_pool_is_block(pool, b) || n > (long)omi_pool_capacity(pool)) {
            return omi_check_fail("pool.3", pool, "free block %p after %ld",
                                  b, n);
        }
        n++;
    }
    return n;
}

static int check_free_state(const struct pool *pool)
{
    if (atomic_load(&pool->owner) != 0 || pool->used != 0)
        return omi_check_fail("pool.2", pool, "free pool with owner %p, "
                              "%u used", (void *)atomic_load(&pool->owner),
                              pool->used);
    return 0;
}

int omi_pool_check(const struct pool *pool)
{
    uintptr_t owner = atomic_load(&pool->owner);
    long nfree;

    unsigned state = omi_pool_state(pool);

    if (state == POOL_CLEAN || state == POOL_DIRTY)
        return check_free_state(pool);
    if (pool->sc >= NCLASSES)
        return omi_check_fail("pool.1", pool, "class %u", pool->sc);
    if ((state == POOL_FULL) != ((owner & OWNER_FULL) != 0) ||
        (owner & ~OWNER_FULL) == 0 || state == POOL_PURGING ||
        (state == POOL_FULL && pool->free != NULL))
        return omi_check_fail("pool.2", pool, "state %u, owner %p, free %p",
                              state, (void *)owner, pool->free);
    nfree = count_free(pool);
    if (nfree < 0)
        return (int)nfree;
    if (pool->used + (size_t)nfree != omi_pool_capacity(pool) ||
        pool->scratch > pool->used)
        return omi_check_fail("pool.4", pool, "used %u + free %ld != "
                              "capacity %zu, or %u cached or remote",
                              pool->used, nfree, omi_pool_capacity(pool),
                              pool->scratch);
    return 0;
}
