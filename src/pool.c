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
 * A medium class's span is threaded the same way, but a page at a time
 * (pool.h): its blocks are 4 or more over up to 64 pages, and a span
 * whose class has a block or two in use must not fault in the rest.  Its
 * tail descriptors point at the head.  The medium table below is what
 * config.h promises: eight classes per doubling, and for each, among the
 * page counts from the fewest that hold 4 blocks to twice that, the
 * fewest that lose at most 1/32 of the span at its end, or failing that
 * the one that loses the smallest share (tests/test_gp.c recomputes the
 * rule; docs/design.md has the figures).
 *
 * Invariants: pool.h lists them (1-6); omi_pool_check verifies them
 * (5 with trace.c).
 */
#include "arena.h"
#include "tool.h"

const struct omi_medium_class omi_medium[NMEDIUM_MAX] = {
    {   576,  1,  7 }, {   640,  1,  6 }, {   704,  2, 11 }, {   768,  1,  5 },
    {   832,  2,  9 }, {   896,  2,  9 }, {   960,  1,  4 }, {  1024,  1,  4 },
    {  1152,  2,  7 }, {  1280,  2,  6 }, {  1408,  4, 11 }, {  1536,  3,  8 },
    {  1664,  3,  7 }, {  1792,  4,  9 }, {  1920,  2,  4 }, {  2048,  2,  4 },
    {  2304,  4,  7 }, {  2560,  5,  8 }, {  2816,  5,  7 }, {  3072,  3,  4 },
    {  3328,  5,  6 }, {  3584,  7,  8 }, {  3840,  4,  4 }, {  4096,  4,  4 },
    {  4608,  8,  7 }, {  5120,  5,  4 }, {  5632,  7,  5 }, {  6144,  6,  4 },
    {  6656, 10,  6 }, {  7168,  7,  4 }, {  7680, 15,  8 }, {  8192,  8,  4 },
    {  9216,  9,  4 }, { 10240, 10,  4 }, { 11264, 11,  4 }, { 12288, 12,  4 },
    { 13312, 13,  4 }, { 14336, 14,  4 }, { 15360, 15,  4 }, { 16384, 16,  4 },
    { 18432, 18,  4 }, { 20480, 20,  4 }, { 22528, 22,  4 }, { 24576, 24,  4 },
    { 26624, 26,  4 }, { 28672, 28,  4 }, { 30720, 30,  4 }, { 32768, 32,  4 },
    { 36864, 36,  4 }, { 40960, 40,  4 }, { 45056, 44,  4 }, { 49152, 48,  4 },
    { 53248, 52,  4 }, { 57344, 56,  4 }, { 61440, 60,  4 }, { 65536, 64,  4 },
};

char *omi_pool_page(const struct pool *pool)
{
    return (char *)omi_arena_of_pool(pool) + omi_pool_index(pool) * POOL_SIZE;
}

/* Thread the blocks of pool's span from block `from` (the first not
 * threaded) to the last that starts in the same page: they become the
 * free list, which was empty.  A one-page pool gets all its blocks. */
OM_INLINE OM_NO_ASAN void carve(struct pool *pool, size_t from)
{
    size_t size = omi_pool_class_size(pool->sc);
    size_t to = omi_pool_capacity(pool);
    char *page = omi_pool_page(pool), *b, *last;

    if (omi_class_pages(pool->sc) > 1) {
        size_t end = (from * size / POOL_SIZE + 1) * POOL_SIZE;
        size_t cap = to;

        to = (end + size - 1) / size;
        if (to > cap)
            to = cap;
        pool[1].used = (uint16_t)(cap - to);
    }
    last = page + (to - 1) * size;
    for (b = page + from * size; b < last; b += size)
        *(void **)b = b + size;
    *(void **)last = NULL;
    pool->free = page + from * size;
}

OM_NO_ASAN void omi_pool_init(struct pool *pool, unsigned sc)
{
    size_t pages = omi_class_pages(sc);

    OM_ASSERT(pool->used == 0);
    for (size_t i = 1; i < pages; i++) {
        struct pool *tail = pool + i;
        tail->free = pool;
        tail->sc = (uint8_t)sc;
        omi_pool_set_state(tail, POOL_TAIL);
    }
    pool->sc = (uint8_t)sc;
    omi_tool_freed(omi_pool_page(pool), pages * POOL_SIZE);
    carve(pool, 0);
    atomic_store_explicit(&pool->traced, 0, memory_order_relaxed);
}

OM_NO_ASAN void omi_pool_carve(struct pool *pool)
{
    OM_ASSERT(pool->free == NULL && omi_pool_uncarved(pool) > 0);
    carve(pool, omi_pool_capacity(pool) - omi_pool_uncarved(pool));
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

/* A TAIL pool: its head is a span of its class that covers it.  The
 * head is a descriptor of this arena before it is read, and its class
 * one of the table's before the table is read. */
static int check_tail(const struct pool *pool)
{
    const struct pool *head = omi_arena_check_pool(pool->free);
    struct arena *a = omi_arena_of_pool(pool);
    unsigned hs;

    if (!head || head != pool->free || omi_arena_of_pool(head) != a ||
        head >= pool)
        return omi_check_fail("pool.1", pool, "tail's head %p",
                              pool->free);
    hs = omi_pool_state(head);
    if ((hs != POOL_USED && hs != POOL_FULL) || head->sc != pool->sc ||
        head->sc >= NCLASSES ||
        head + omi_class_pages(head->sc) <= pool ||
        atomic_load(&pool->owner) != 0 ||
        pool->used > (pool == head + 1 ? omi_pool_capacity(head) : 0))
        return omi_check_fail("pool.1", pool, "tail of %p: head state %u "
                              "class %u, own class %u", (const void *)head,
                              hs, head->sc, pool->sc);
    return 0;
}

int omi_pool_check(const struct pool *pool)
{
    uintptr_t owner = atomic_load(&pool->owner);
    long nfree;

    unsigned state = omi_pool_state(pool);

    if (atomic_load(&pool->tags) &&
        ((state != POOL_USED && state != POOL_FULL) || pool->sc >= NSMALL))
        return omi_check_fail("pool.6", pool, "tags record %u on a pool of "
                              "state %u, class %u", atomic_load(&pool->tags),
                              state, pool->sc);
    if (state == POOL_CLEAN || state == POOL_DIRTY)
        return check_free_state(pool);
    if (state == POOL_TAIL)
        return check_tail(pool);
    if (pool->sc >= NCLASSES ||
        omi_pool_index(pool) + omi_class_pages(pool->sc) > POOLS_PER_ARENA)
        return omi_check_fail("pool.1", pool, "class %u", pool->sc);
    for (size_t i = 1; i < omi_class_pages(pool->sc); i++)
        if (omi_pool_state(pool + i) != POOL_TAIL || pool[i].free != pool)
            return omi_check_fail("pool.1", pool + i, "pool %zu of a span "
                                  "is not its tail", i);
    if ((state == POOL_FULL) != ((owner & OWNER_FULL) != 0) ||
        (owner & ~OWNER_FULL) == 0 || state == POOL_PURGING ||
        state > POOL_TAIL ||
        (state == POOL_FULL && (pool->free || omi_pool_uncarved(pool))))
        return omi_check_fail("pool.2", pool, "state %u, owner %p, free %p",
                              state, (void *)owner, pool->free);
    nfree = count_free(pool);
    if (nfree < 0)
        return (int)nfree;
    if (pool->used + (size_t)nfree + omi_pool_uncarved(pool) !=
        omi_pool_capacity(pool) || pool->scratch > pool->used)
        return omi_check_fail("pool.4", pool, "used %u + free %ld + "
                              "uncarved %zu != capacity %zu, or %u cached "
                              "or remote", pool->used, nfree,
                              omi_pool_uncarved(pool),
                              omi_pool_capacity(pool), pool->scratch);
    return 0;
}
