/*
 * heap.c - L2: heaps.  Each thread allocates from its own heap, which owns
 * whole arenas, so neither the fast paths nor taking a new pool need a
 * lock.  This file holds every slow path and every policy:
 *
 *   - the block cache: per class, up to CACHE_LIMIT blocks freed into the
 *     heap's own pools, which malloc pops first (alloc.c); collect and
 *     thread exit give them back to their pools;
 *   - which pool serves a class: first[sc]; when it runs out it is marked
 *     FULL and a partial pool (marked in its arena's partial bitmap, a
 *     FULL pool that got a block back) or a new pool takes its place;
 *   - which arena gives a new pool: the fullest one with a free pool
 *     (bins by free-pool count, the lowest non-empty bin first), so the
 *     others drain and can be given back;
 *   - frees from other threads: pushed on the owner heap's remote list
 *     (one CAS), taken back by the owner on its next allocation slow path;
 *   - memory return (purge.c says when): an empty pool stays resident
 *     ("dirty"); under the deferred policy the purger gives it back after
 *     the delay and the heap unmaps arenas whose pages are all given back
 *     (keeping one); under the immediate policy the heap purges the dirty
 *     pools of its emptiest arenas as soon as it holds more than
 *     PURGE_TRIGGER_POOLS, down to PURGE_KEEP_POOLS, and unmaps an empty
 *     arena when it keeps one already.  Under either, a new arena first
 *     trims large.c's cache, and a large block mapped fresh first has
 *     the heap purge about as many dirty pools (omi_heap_make_room; a
 *     large block that grows, as many of its older dirty pools).
 *     The first pool of a class is kept when it empties, so a
 *     malloc/free loop on one block stays fast;
 *   - thread exit: the heap gives back all it can and is abandoned; a
 *     thread that starts later adopts it whole.  A thread that frees into
 *     an abandoned heap claims it, puts its remote list back, and releases
 *     it again, so memory freed after its thread exits still returns;
 *   - fork: the child marks every other thread's heap ORPHANED and never
 *     touches it again (it may have been mid-update).
 *
 * Invariants: heap.h lists them (1-6); omi_heap_check verifies them.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "heap.h"
#include "large.h"
#include "os.h"
#include "tool.h"
#include "trace.h"

static struct pool empty_pool;          /* free == NULL: always slow */

struct heap omi_heap_empty = {
    .first = { [0 ... NCLASSES - 1] = &empty_pool },
    .cache = { [NSMALL ... NCLASSES - 1] = { NULL, CACHE_LIMIT, 0 } },
};

OM_TLS struct heap *omi_heap_tls = &omi_heap_empty;

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct heap *_Atomic all_heaps;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;

static void heap_collect(struct heap *h, bool force, bool trim);
static void work_abandoned(struct heap *h);

/* ---- Partial pools: per-arena bitmaps, arenas listed per class ----
 *
 * A USED pool that is not its class's first pool is "partial": marked by
 * a bit in its arena's partial[sc].  Marking and unmarking touch only
 * that arena's header, which the pool's other transitions touch anyway;
 * linked lists of pools wrote into two neighbouring descriptors, at
 * random places in memory, at each change.  Arenas that mark any partial
 * pool of class sc are on the heap's list partial_arenas[sc]; an arena
 * joins or leaves it when its bitmap turns non-empty or empty, far less
 * often than a pool changes.
 */

static bool partial_any(const struct arena *a, unsigned sc)
{
    const uint64_t *w = a->partial[sc];

    return (w[0] | w[1] | w[2] | w[3]) != 0;
}

static void class_link(struct heap *h, struct arena *a, unsigned sc)
{
    a->cls_prev[sc] = NULL;
    a->cls_next[sc] = h->partial_arenas[sc];
    if (h->partial_arenas[sc])
        h->partial_arenas[sc]->cls_prev[sc] = a;
    h->partial_arenas[sc] = a;
}

static void class_unlink(struct heap *h, struct arena *a, unsigned sc)
{
    if (a->cls_prev[sc])
        a->cls_prev[sc]->cls_next[sc] = a->cls_next[sc];
    else
        h->partial_arenas[sc] = a->cls_next[sc];
    if (a->cls_next[sc])
        a->cls_next[sc]->cls_prev[sc] = a->cls_prev[sc];
    a->cls_next[sc] = a->cls_prev[sc] = NULL;
}

static void partial_add(struct heap *h, struct pool *pool)
{
    struct arena *a = omi_arena_of_pool(pool);
    unsigned sc = pool->sc;
    bool was = partial_any(a, sc);
    size_t i = omi_pool_index(pool);

    a->partial[sc][i / 64] |= (uint64_t)1 << (i % 64);
    if (!was)
        class_link(h, a, sc);
}

static void partial_remove(struct heap *h, struct pool *pool)
{
    struct arena *a = omi_arena_of_pool(pool);
    unsigned sc = pool->sc;
    size_t i = omi_pool_index(pool);

    a->partial[sc][i / 64] &= ~((uint64_t)1 << (i % 64));
    if (!partial_any(a, sc))
        class_unlink(h, a, sc);
}

/* A partial pool of class sc, unmarked; NULL when there is none. */
static struct pool *partial_take(struct heap *h, unsigned sc)
{
    struct arena *a = h->partial_arenas[sc];
    struct pool *pool;

    if (!a)
        return NULL;
    for (unsigned w = 0;; w++) {
        if (a->partial[sc][w]) {
            pool = &a->pools[w * 64 + (unsigned)__builtin_ctzll(
                                          a->partial[sc][w])];
            partial_remove(h, pool);
            return pool;
        }
    }
}

/* The first pool of its class ran out of blocks: FULL, in no bitmap. */
static void mark_full(struct heap *h, struct pool *pool)
{
    omi_pool_set_state(pool, POOL_FULL);
    atomic_store_explicit(&pool->owner, (uintptr_t)h | OWNER_FULL,
                          memory_order_relaxed);
}

/* ---- Arena bins: usable arenas by free-pool count ---- */

_Static_assert(NBINS <= 64, "the bin map is one word");

static unsigned bin_of(unsigned nfree)
{
    return nfree == USABLE_POOLS ? EMPTY_BIN : 1 + (nfree - 1) / BIN_WIDTH;
}

static void bin_insert(struct heap *h, struct arena *a)
{
    unsigned b = bin_of(a->nfree);

    a->prev = NULL;
    a->next = h->bins[b];
    if (h->bins[b])
        h->bins[b]->prev = a;
    h->bins[b] = a;
    h->binmap |= (uint64_t)1 << b;
}

static void bin_unlink(struct heap *h, struct arena *a, unsigned b)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        h->bins[b] = a->next;
    if (a->next)
        a->next->prev = a->prev;
    if (!h->bins[b])
        h->binmap &= ~((uint64_t)1 << b);
    a->next = a->prev = NULL;
}

static void bin_remove(struct heap *h, struct arena *a)
{
    bin_unlink(h, a, bin_of(a->nfree));
}

/* a's free-pool count went from old to a->nfree: move it if its bin
 * changed (an arena with no free pool is in no bin). */
static void bin_update(struct heap *h, struct arena *a, unsigned old)
{
    if (old && a->nfree && bin_of(old) == bin_of(a->nfree))
        return;
    if (old)
        bin_unlink(h, a, bin_of(old));
    if (a->nfree)
        bin_insert(h, a);
}

/* One of the fullest arenas that has a free pool, or NULL. */
static struct arena *bin_fullest(const struct heap *h)
{
    return h->binmap ? h->bins[__builtin_ctzll(h->binmap)] : NULL;
}

/* ---- Pools and arenas: taking, giving back, purging ---- */

/* A new arena: the heap grows, so the mappings that large.c keeps for
 * reuse beyond its base go first (a program's next phase wants small
 * blocks, not the large ones it freed). */
static struct arena *add_arena(struct heap *h)
{
    struct arena *a;

    omi_large_trim();
    a = omi_arena_new(h);

    if (!a)
        return NULL;
    h->nempty++;
    bin_insert(h, a);
    return a;
}

/*
 * Pool runs.  A small class's pools are handed out one at a time, and
 * other classes take theirs in between, so without help the pools of a
 * class lie scattered: a walk over objects made one after another (a
 * collection, CPython's above all) crosses a page at every pool and finds
 * no neighbour to prefetch.  So a small class that needs a pool from
 * scratch takes the first of RUN_POOLS free pools in a row and reserves
 * the others: they stay free (untouched, purgeable), but other takes
 * leave them until nothing else is free, and the class's next pools come
 * from them in order.  CPython's gc.collect, 10 times, medians of 6 runs
 * against pymalloc's (16 KiB pools) on the same runs: over 300,000 fresh
 * [i, i] lists 0.154 -> 0.106 s (pymalloc 0.120); over 150,000 fresh
 * dicts holding a str and a list 0.420 -> 0.274 s (0.288).  Runs of 4
 * gave 0.329 for the dicts, of 16 0.247: 8, as runs of 16 free pools are
 * harder to find in a heap that has been used a while.
 */
#define RUN_POOLS 8
#define RUN_SEARCH_ARENAS 4

enum take { TAKE_ONE, TAKE_RUN, TAKE_RESERVING, TAKE_RESERVING_DIRTY,
            TAKE_RESERVED };

/* Take from a - one pool, a run of n, the first of a run of n reserving
 * the rest, or the reserved pool want - and keep the heap's counts; NULL
 * when a has no such pool. */
static struct pool *take_from(struct heap *h, struct arena *a, size_t n,
                              enum take how, struct pool *want)
{
    unsigned old = a->nfree;
    size_t hints = a->ndirty;
    struct pool *pool = NULL;

    switch (how) {
    case TAKE_ONE:
        pool = omi_arena_take_pool(a);
        break;
    case TAKE_RUN:
        pool = omi_arena_take_run(a, n);
        break;
    case TAKE_RESERVING:
    case TAKE_RESERVING_DIRTY:
        pool = omi_arena_take_reserving(a, n, how == TAKE_RESERVING_DIRTY);
        break;
    case TAKE_RESERVED:
        pool = omi_arena_take_reserved(a, want) ? want : NULL;
        break;
    }
    if (!pool)
        return NULL;
    if (old == USABLE_POOLS)
        h->nempty--;
    h->ndirty -= hints - a->ndirty;
    bin_update(h, a, old);
    return pool;
}

/* A pool for small class sc: its reserved next pool, or the first of a
 * new run in one of the fullest arenas (of resident pools if the arena
 * has any: a batch loop's next round must not fault its pages in again),
 * or any free pool, resident first. */
static struct pool *take_small(struct heap *h, unsigned sc)
{
    struct pool *pool = h->next_pool[sc];
    struct arena *a;
    unsigned looked = 0;

    h->next_pool[sc] = NULL;
    if (pool && (pool = take_from(h, omi_arena_of_pool(pool), 1,
                                  TAKE_RESERVED, pool))) {
        if (omi_pool_index(pool) + 1 < POOLS_PER_ARENA &&
            omi_arena_is_reserved(omi_arena_of_pool(pool), pool + 1)) {
            h->next_pool[sc] = pool + 1;
            __builtin_prefetch(pool + 1, 1);
        }
        return pool;
    }
    for (uint64_t m = h->binmap; m && looked < RUN_SEARCH_ARENAS;
         m &= m - 1)
        for (a = h->bins[__builtin_ctzll(m)];
             a && looked < RUN_SEARCH_ARENAS; a = a->next, looked++)
            if ((pool = take_from(h, a, RUN_POOLS, a->ndirty > 0 ?
                                  TAKE_RESERVING_DIRTY : TAKE_RESERVING,
                                  NULL))) {
                h->next_pool[sc] = pool + 1;
                return pool;
            }
    if ((a = bin_fullest(h)))
        return take_from(h, a, 1, TAKE_ONE, NULL);
    if (!(a = add_arena(h)))
        return NULL;
    pool = take_from(h, a, RUN_POOLS, TAKE_RESERVING, NULL);
    h->next_pool[sc] = pool + 1;
    return pool;
}

/* The pools of a medium class's span: the fullest arena with a run of
 * them (one pool: the fullest arena), else a new arena. */
static struct pool *take_span(struct heap *h, size_t n)
{
    enum take how = n == 1 ? TAKE_ONE : TAKE_RUN;
    struct pool *pool = NULL;
    struct arena *a;

    for (uint64_t m = h->binmap; m && !pool; m &= m - 1)
        for (a = h->bins[__builtin_ctzll(m)]; a && !pool; a = a->next)
            pool = take_from(h, a, n, how, NULL);
    if (!pool && (a = add_arena(h)))
        pool = take_from(h, a, n, how, NULL);
    return pool;
}

/* A free pool for class sc (a span's run of pools for a medium class),
 * made USED and threaded; NULL if no memory.  A run may take a walk over
 * the bins, but a new span is needed once per 4 or more medium blocks. */
static struct pool *take_pool(struct heap *h, unsigned sc)
{
    struct pool *pool = sc < NSMALL ? take_small(h, sc)
                                    : take_span(h, omi_class_pages(sc));

    if (!pool)
        return NULL;
    omi_pool_init(pool, sc);
    atomic_store_explicit(&pool->owner, (uintptr_t)h, memory_order_relaxed);
    return pool;
}

static void release_arena(struct heap *h, struct arena *a)
{
    for (unsigned sc = 0; sc < NSMALL; sc++)
        if (h->next_pool[sc] && omi_arena_of_pool(h->next_pool[sc]) == a)
            h->next_pool[sc] = NULL;
    bin_remove(h, a);
    h->ndirty -= a->ndirty;
    h->nempty--;
    omi_arena_release(a);
}

/*
 * Purge the dirty pools of the emptiest arenas until keep dirty hints
 * remain; hints of pools the purger gave back meanwhile are cleared too.
 */
static void purge(struct heap *h, size_t keep, unsigned min_age)
{
    for (unsigned b = EMPTY_BIN; b > 0 && h->ndirty > keep; b--)
        for (struct arena *a = h->bins[b]; a && h->ndirty > keep;
             a = a->next) {
            omi_arena_purge(a, min_age, false);
            h->ndirty -= omi_arena_sync_hints(a);
        }
}

void omi_heap_make_room(size_t bytes, unsigned min_age)
{
    struct heap *h = omi_heap_tls;
    size_t pools = bytes / POOL_SIZE;

    if (h->ndirty == 0 || pools == 0 || omi_purge_mode() == PURGE_NEVER)
        return;
    purge(h, h->ndirty > pools ? h->ndirty - pools : 0, min_age);
}

/*
 * The purge policy in force, h brought within its bounds first when it
 * differs from the one h last applied (om_set_purge_delay changed it):
 * when immediate, no more than one empty arena and no more than
 * PURGE_TRIGGER_POOLS dirty pools (heap.h, invariant 4).
 */
static enum purge_mode conform(struct heap *h)
{
    enum purge_mode mode = omi_purge_mode();

    if (likely(mode == h->policy))
        return mode;
    h->policy = (uint8_t)mode;
    if (mode == PURGE_IMMEDIATE)
        while (h->nempty > 1)
            release_arena(h, h->bins[EMPTY_BIN]);
    if (mode == PURGE_IMMEDIATE && h->ndirty > PURGE_TRIGGER_POOLS)
        purge(h, PURGE_KEEP_POOLS, 0);
    return mode;
}

/* The purge policy, after pools became dirty (purge.c explains it). */
static void after_dirty(struct heap *h)
{
    switch (h->policy) {
    case PURGE_DEFERRED:
        omi_purge_notify();
        break;
    case PURGE_IMMEDIATE:
        if (h->ndirty > PURGE_TRIGGER_POOLS)
            purge(h, PURGE_KEEP_POOLS, 0);
        break;
    case PURGE_NEVER:
        break;
    }
}

/*
 * Unmap the heap's empty arenas that hold no resident page, keeping one
 * empty arena.  Under the deferred policy an empty arena waits for the
 * purger (its pages may be wanted again soon); once they are all given
 * back, unmapping it costs nothing more.
 */
static void trim_empty_arenas(struct heap *h)
{
    struct arena *a = h->bins[EMPTY_BIN], *next;
    uint16_t epoch = omi_arena_epoch();

    /* Only the purger makes an empty arena clean, once per epoch: look
     * once per epoch, not at every arena that empties. */
    if (epoch == h->trim_epoch)
        return;
    h->trim_epoch = epoch;
    for (; a && h->nempty > 1; a = next) {
        next = a->next;
        if (omi_arena_dirty_count(a) == 0)
            release_arena(h, a);
    }
}

/* A pool (a span: all its pools) with no used block goes back to its
 * arena. */
static void release_pool(struct heap *h, struct pool *pool)
{
    struct arena *a = omi_arena_of_pool(pool);
    unsigned old = a->nfree;
    size_t n = omi_class_pages(pool->sc);

    conform(h);                         /* a is not empty: it keeps pool */
    /* Tracing's tags of the page (tags.c) go with it. */
    if (unlikely(atomic_load_explicit(&pool->tags, memory_order_relaxed)))
        omi_tags_pool_released(pool);
    for (size_t i = 0; i < n; i++) {
        atomic_store_explicit(&pool[i].owner, 0, memory_order_relaxed);
        pool[i].used = 0;               /* a first tail's uncarved count */
        omi_arena_put_pool(a, pool + i);
    }
    h->ndirty += n;
    bin_update(h, a, old);
    if (a->nfree == USABLE_POOLS) {
        h->nempty++;
        if (h->policy == PURGE_IMMEDIATE && h->nempty > 1)
            release_arena(h, a);
        else
            trim_empty_arenas(h);
    }
    after_dirty(h);
}

/*
 * The allocation pool of a class is kept when it empties, so that a
 * malloc/free loop on one block stays fast; so is a span of up to
 * KEEP_SPAN_PAGES pools (the medium classes up to 2 KiB but four, 19
 * pools: 76 KiB a heap at most).  Bigger spans go back at once: a thread
 * done with its buffers must not keep 128 KiB per class.
 */
#define KEEP_SPAN_PAGES 2

void omi_heap_pool_emptied(struct heap *h, struct pool *pool)
{
    unsigned sc = pool->sc;

    if (pool == h->first[sc]) {
        if (omi_class_pages(sc) <= KEEP_SPAN_PAGES)
            return;
        h->first[sc] = &empty_pool;
    } else {
        partial_remove(h, pool);
    }
    release_pool(h, pool);
}

/* ---- Frees ---- */

/* A FULL pool got a free block: it is partial now. */
static void unfull(struct heap *h, struct pool *pool)
{
    omi_pool_set_state(pool, POOL_USED);
    atomic_store_explicit(&pool->owner, (uintptr_t)h, memory_order_relaxed);
    partial_add(h, pool);
}

/* Free p into pool, a pool of h (the caller owns h). */
static OM_NO_ASAN void free_local(struct heap *h, struct pool *pool, void *p)
{
    if (unlikely(p == pool->free))
        omi_fatal("double free", p, "block of %zu bytes freed twice in a row",
                  omi_pool_block_size(pool));
    *(void **)p = pool->free;
    pool->free = p;
    omi_tool_freed(p, omi_pool_block_size(pool));
    if (omi_pool_state(pool) == POOL_FULL)
        unfull(h, pool);
    if (--pool->used == 0)
        omi_heap_pool_emptied(h, pool);
}

/* Take back the blocks other threads freed into h's pools. */
static OM_NO_ASAN void drain_remote(struct heap *h)
{
    void *b = atomic_exchange(&h->remote, NULL);

    while (b) {
        void *next = *(void **)b;
        free_local(h, omi_pool_head(omi_arena_pool_of(omi_arena_of(b), b)),
                   b);
        b = next;
    }
}

/* Push p (size bytes) on another heap's remote list.  p is poisoned
 * before it is published: after the CAS its owner may hand it out again. */
static OM_NO_ASAN void free_remote(struct heap *owner, void *p, size_t size)
{
    void *head = atomic_load_explicit(&owner->remote, memory_order_relaxed);

    omi_tool_freed(p, size);
    do {
        *(void **)p = head;
    } while (!atomic_compare_exchange_weak(&owner->remote, &head, p));
    if (atomic_load(&owner->state) == HEAP_ABANDONED)
        work_abandoned(owner);
}

/*
 * Here come: frees into another heap's pools; frees into our FULL pools
 * while the cache of their class is full; every free of a medium block
 * but those into the head page of one of our USED spans; and the bad
 * ones.
 */
void omi_heap_free_slow(struct heap *h, struct pool *pool, void *p)
{
    uintptr_t owner;
    struct heap *oh;

    pool = omi_pool_head(pool);
    owner = atomic_load_explicit(&pool->owner, memory_order_relaxed);
    oh = (struct heap *)(owner & ~OWNER_FULL);
    if ((owner == ((uintptr_t)h | OWNER_FULL) &&
         (pool->sc >= NSMALL || p != h->cache[pool->sc].head) &&
         omi_pool_is_block(pool, p)) ||
        (owner == (uintptr_t)h && pool->sc >= NSMALL &&
         omi_pool_is_block(pool, p))) {
        free_local(h, pool, p);         /* FULL no more, or medium */
        return;
    }
    if (unlikely(!oh || !omi_pool_is_block(pool, p)))
        omi_fatal("free of an address that is not an allocated block", p,
                  "pool %p state %u, block size %zu, capacity %zu, owner %p, "
                  "page %p", (void *)pool, omi_pool_state(pool),
                  omi_pool_block_size(pool), omi_pool_capacity(pool),
                  (void *)owner,
                  (void *)omi_pool_page(pool));
    if (oh == h)                /* p heads the pool's list or the cache */
        omi_fatal("double free", p, "block of %zu bytes freed twice in a row",
                  omi_pool_block_size(pool));
    free_remote(oh, p, omi_pool_block_size(pool));
}

/* ---- The block cache ---- */

/* Give every cached block back to its pool (collect, thread exit). */
static OM_NO_ASAN void cache_flush_all(struct heap *h)
{
    for (unsigned sc = 0; sc < NSMALL; sc++) {
        struct cache *c = &h->cache[sc];
        while (c->count > 0) {
            void *b = c->head;
            c->head = *(void **)b;
            c->count--;
            free_local(h, omi_arena_pool_of(omi_arena_of(b), b), b);
        }
    }
}

static OM_NO_ASAN void *pop_block(struct pool *pool)
{
    void **b = pool->free;

    pool->free = *b;
    pool->used++;
    omi_tool_handed_out(b, omi_pool_block_size(pool));
    return b;
}

/* ---- Heaps: creation, adoption, abandonment ---- */

static void heap_init(struct heap *h)
{
    for (unsigned sc = 0; sc < NCLASSES; sc++) {
        h->first[sc] = &empty_pool;
        h->cache[sc].count = sc < NSMALL ? 0 : CACHE_LIMIT;
    }
    atomic_store(&h->state, HEAP_ACTIVE);
}

size_t omi_heap_struct_bytes(void)
{
    return (sizeof(struct heap) + POOL_MASK) & ~POOL_MASK;
}

static struct heap *heap_create(void)
{
    struct heap *h = omi_os_map(omi_heap_struct_bytes(), 0);

    if (!h)
        return NULL;
    heap_init(h);
    pthread_mutex_lock(&heaps_lock);
    atomic_store(&h->all_next, atomic_load(&all_heaps));
    atomic_store(&all_heaps, h);
    pthread_mutex_unlock(&heaps_lock);
    return h;
}

/* Take an abandoned heap whole, or NULL. */
static struct heap *heap_adopt(void)
{
    for (struct heap *h = omi_heap_first(); h; h = omi_heap_next(h)) {
        int expected = HEAP_ABANDONED;
        if (atomic_compare_exchange_strong(&h->state, &expected,
                                           HEAP_ACTIVE))
            return h;
    }
    return NULL;
}

/* Thread exit: give back what we can and leave the heap to others. */
static void heap_detach(void *arg)
{
    struct heap *h = arg;

    omi_os_thread_leaving();
    if (omi_heap_tls != h)
        return;
    heap_collect(h, true, false);
    omi_heap_tls = &omi_heap_empty;
    atomic_store(&h->state, HEAP_ABANDONED);
    if (atomic_load(&h->remote))
        work_abandoned(h);
}

/* Claim an abandoned heap, put its remote frees back, give back memory. */
static void work_abandoned(struct heap *h)
{
    int expected = HEAP_ABANDONED;

    while (atomic_compare_exchange_strong(&h->state, &expected,
                                          HEAP_CLAIMED)) {
        heap_collect(h, true, false);
        atomic_store(&h->state, HEAP_ABANDONED);
        if (!atomic_load(&h->remote))
            break;
        expected = HEAP_ABANDONED;
    }
}

/* fork(): no purge under way (no PURGING pool in the child, and the purger
 * holds none of the locks below: it takes the large cache's and the arena
 * list's while it works, so pausing it after taking them could wait
 * forever), then the locks, so the child gets consistent lists. */
static void fork_prepare(void)
{
    omi_purge_pause();
    omi_large_fork_prepare();
    pthread_mutex_lock(&heaps_lock);
    omi_arena_fork_prepare();
}

static void fork_parent(void)
{
    omi_arena_fork_parent();
    pthread_mutex_unlock(&heaps_lock);
    omi_large_fork_parent();
    omi_purge_resume();
}

static void fork_child(void)
{
    omi_purge_fork_child();
    omi_large_fork_child();
    omi_arena_fork_child();
    pthread_mutex_init(&heaps_lock, NULL);
    for (struct heap *h = omi_heap_first(); h; h = omi_heap_next(h)) {
        int state = atomic_load(&h->state);
        if (h != omi_heap_tls &&
            (state == HEAP_ACTIVE || state == HEAP_CLAIMED))
            atomic_store(&h->state, HEAP_ORPHANED);
    }
}

static void register_fork(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void omi_heap_fork_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, register_fork);
}

static void setup(void)
{
    pthread_key_create(&exit_key, heap_detach);
    omi_heap_fork_once();
}

/* The calling thread's first slow path: give it a heap. */
static struct heap *heap_attach(void)
{
    struct heap *h;

    pthread_once(&setup_once, setup);
    h = heap_adopt();
    if (!h)
        h = heap_create();
    if (!h)
        return NULL;
    omi_heap_tls = h;
    pthread_setspecific(exit_key, h);
    return h;
}

struct heap *omi_heap_first(void)
{
    return atomic_load(&all_heaps);
}

struct heap *omi_heap_next(const struct heap *h)
{
    return atomic_load(&h->all_next);
}

/* ---- Allocation slow path ---- */

void *omi_heap_malloc_slow(struct heap *h, unsigned sc)
{
    struct pool *pool;

    if (unlikely(h == &omi_heap_empty) && !(h = heap_attach())) {
        errno = ENOMEM;
        return NULL;
    }
    if (atomic_load_explicit(&h->remote, memory_order_relaxed))
        drain_remote(h);
    if (unlikely(atomic_load_explicit(&h->collect_request,
                                      memory_order_relaxed))) {
        bool force = atomic_load(&h->collect_request) == 2;

        heap_collect(h, force, force);
    }
    pool = h->first[sc];
    if (pool->free)                     /* a drain put blocks back */
        return pop_block(pool);
    if (pool != &empty_pool) {
        if (omi_pool_uncarved(pool)) {  /* a span's next page */
            omi_pool_carve(pool);
            return pop_block(pool);
        }
        mark_full(h, pool);
    }
    h->first[sc] = &empty_pool;
    pool = partial_take(h, sc);
    if (!pool && !(pool = take_pool(h, sc))) {
        errno = ENOMEM;
        return NULL;
    }
    h->first[sc] = pool;
    return pop_block(pool);
}

/* ---- Collection ---- */

/* Release the first pools of their classes that hold no block. */
static void release_kept_pools(struct heap *h)
{
    for (unsigned sc = 0; sc < NCLASSES; sc++) {
        struct pool *pool = h->first[sc];
        if (pool != &empty_pool && pool->used == 0) {
            h->first[sc] = &empty_pool;
            release_pool(h, pool);
        }
    }
}

/*
 * om_collect(true) also gives back the whole pages inside the free
 * blocks of the heap's medium spans in use, and those past the blocks a
 * span has carved, as glibc's malloc_trim gives back the pages inside
 * its free chunks: a span stays while one block of it lives, and its
 * free 32 KiB blocks kept 7 resident pages each.  A free block keeps its
 * first TRIM_KEEP bytes: the free list's link, and the debug hooks'
 * header, whose 0xDD bytes say "freed".  A page given back reads as
 * zeroes, which a block handed out may hold.  No lock is held: the spans
 * are the calling thread's own.
 */
#define TRIM_KEEP 64

static void trim_range(uintptr_t from, uintptr_t to)
{
    from = (from + POOL_SIZE - 1) & ~(uintptr_t)(POOL_SIZE - 1);
    to &= ~(uintptr_t)(POOL_SIZE - 1);
    if (from < to)
        omi_os_purge((void *)from, to - from);
}

static OM_NO_ASAN void trim_span(const struct pool *head)
{
    size_t size = omi_pool_block_size(head), n = omi_pool_capacity(head);
    uintptr_t start = (uintptr_t)omi_pool_page(head);
    size_t steps = n;

    for (void *b = head->free; b && steps > 0;
         b = *(void **)b, steps--)
        trim_range((uintptr_t)b + TRIM_KEEP, (uintptr_t)b + size);
    trim_range(start + (n - omi_pool_uncarved(head)) * size,
               start + omi_class_pages(head->sc) * POOL_SIZE);
}

static void trim_medium(struct heap *h)
{
    for (unsigned sc = NSMALL; sc < NCLASSES; sc++) {
        if (omi_class_pages(sc) == 1)
            continue;
        if (h->first[sc] != &empty_pool)
            trim_span(h->first[sc]);
        for (struct arena *a = h->partial_arenas[sc]; a;
             a = a->cls_next[sc])
            for (unsigned w = 0; w < POOLS_PER_ARENA / 64; w++)
                for (uint64_t m = a->partial[sc][w]; m; m &= m - 1)
                    trim_span(&a->pools[w * 64 +
                                        (unsigned)__builtin_ctzll(m)]);
    }
}

/* force: empty pools and arenas go too; trim: om_collect(true)'s trim of
 * the medium spans (not at a thread's exit: its heap's next owner would
 * fault the pages in again). */
static void heap_collect(struct heap *h, bool force, bool trim)
{
    atomic_store_explicit(&h->collect_request, 0, memory_order_relaxed);
    conform(h);
    cache_flush_all(h);
    drain_remote(h);
    if (force) {
        release_kept_pools(h);
        while (h->bins[EMPTY_BIN])
            release_arena(h, h->bins[EMPTY_BIN]);
        if (trim)
            trim_medium(h);
    }
    purge(h, force ? 0 : PURGE_KEEP_POOLS, 0);
}

void om_collect(bool force)
{
    struct heap *self = omi_heap_tls;

    if (force)
        omi_large_purge(0);
    if (self != &omi_heap_empty)
        heap_collect(self, force, force);
    for (struct heap *h = omi_heap_first(); h; h = omi_heap_next(h)) {
        int state = atomic_load(&h->state);
        if (h == self)
            continue;
        if (state == HEAP_ABANDONED)
            work_abandoned(h);
        else if (state == HEAP_ACTIVE)
            atomic_store(&h->collect_request, force ? 2 : 1);
    }
}

/* ---- Checks ----
 *
 * om_check's (check.c): no pointer read out of a heap or an arena is
 * followed before the map vouches for it (omi_arena_of, and
 * omi_arena_check_pool for a pool descriptor), and every list walk stops
 * after as many steps as the list can hold, so a corrupted heap gets a
 * report, never a crash or a hang.  The arena list itself was checked
 * first (check_arena_list): its arenas are the ones the map marks.
 */

/* The arenas mapped: the most that any list of arenas holds. */
static size_t arenas_mapped(void)
{
    struct omi_arena_totals t;

    omi_arena_totals(&t);
    return t.current;
}

/* Invariant 1: the first pools. */
static int check_first(const struct heap *h)
{
    for (unsigned sc = 0; sc < NCLASSES; sc++) {
        const struct pool *pool = h->first[sc];
        const struct arena *a;

        if (pool == &empty_pool)
            continue;
        if (!pool || omi_arena_check_pool(pool) != pool)
            return omi_check_fail("heap.1", h, "first pool of class %u "
                                  "at %p is no pool", sc,
                                  (const void *)pool);
        a = omi_arena_of_pool(pool);
        if (omi_pool_state(pool) != POOL_USED || pool->sc != sc ||
            atomic_load(&pool->owner) != (uintptr_t)h || a->heap != h ||
            ((a->partial[sc][omi_pool_index(pool) / 64] >>
              (omi_pool_index(pool) % 64)) & 1))
            return omi_check_fail("heap.1", pool, "first pool of class %u "
                                  "is not a USED pool of its heap", sc);
    }
    return 0;
}

/* Invariant 2 for one arena of h: its partial bitmaps. */
static int check_partial_bits(const struct heap *h, const struct arena *a)
{
    for (size_t i = META_POOLS; i < POOLS_PER_ARENA; i++) {
        const struct pool *pool = &a->pools[i];
        for (unsigned sc = 0; sc < NCLASSES; sc++) {
            bool bit = (a->partial[sc][i / 64] >> (i % 64)) & 1;
            bool want = omi_pool_state(pool) == POOL_USED &&
                        pool->sc == sc && pool != h->first[sc];
            if (bit != want || (bit && pool->used >= omi_pool_capacity(pool)))
                return omi_check_fail("heap.2", pool, "partial bit %d for "
                                      "class %u, state %u", bit, sc,
                                      omi_pool_state(pool));
        }
    }
    return 0;
}

/* Whether a is on h's list of arenas with partial pools of class sc: b
 * NULL, or -EFAULT (reported) when the list leads to an address that is
 * no arena, to an arena of another heap or with no partial pool of sc,
 * or runs on longer than the arenas mapped (a cycle). */
static int class_list_find(const struct heap *h, const struct arena *a,
                           unsigned sc, const struct arena **b)
{
    size_t n = 0, max = arenas_mapped();

    for (*b = h->partial_arenas[sc]; *b && *b != a; *b = (*b)->cls_next[sc])
        if (omi_arena_of(*b) != *b || (*b)->heap != h ||
            !partial_any(*b, sc) || ++n > max)
            return omi_check_fail("heap.2", *b, "class %u list of arenas "
                                  "of heap %p: step %zu is no arena of "
                                  "its heap with a partial pool", sc,
                                  (const void *)h, n);
    return 0;
}

/* Invariant 2: every arena of h, and the per-class lists of arenas. */
static int check_partials(const struct heap *h)
{
    int rc;

    for (const struct arena *a = omi_arena_first(); a; a = a->all_next) {
        if (a->heap != h)
            continue;
        if ((rc = check_partial_bits(h, a)))
            return rc;
        for (unsigned sc = 0; sc < NCLASSES; sc++) {
            const struct arena *b;

            if ((rc = class_list_find(h, a, sc, &b)))
                return rc;
            if ((b == a) != partial_any(a, sc))
                return omi_check_fail("heap.2", a, "arena on the class %u "
                                      "list: %d, marks a partial: %d", sc,
                                      b == a, partial_any(a, sc));
        }
    }
    return 0;
}

/* Invariant 3; a bin's list is followed only to arenas (the map), and
 * for at most as many steps as there are arenas. */
static int check_bins(const struct heap *h, size_t *ndirty)
{
    size_t max = arenas_mapped();

    *ndirty = 0;
    for (unsigned b = 0; b < NBINS; b++) {
        bool bit = (h->binmap >> b) & 1;
        size_t n = 0;

        if (bit != (h->bins[b] != NULL) || (b == 0 && bit))
            return omi_check_fail("heap.3", h, "bin %u and its bit", b);
        for (const struct arena *a = h->bins[b]; a; a = a->next) {
            if (omi_arena_of(a) != a || ++n > max)
                return omi_check_fail("heap.3", a, "bin %u's list: step "
                                      "%zu is no arena, or a cycle", b, n);
            if (a->nfree == 0 || bin_of(a->nfree) != b || a->heap != h)
                return omi_check_fail("heap.3", a, "arena in bin %u has "
                                      "%u free pools", b, a->nfree);
            *ndirty += a->ndirty;
        }
    }
    return 0;
}

/* Count one more of pool's blocks found cached or remote (scratch),
 * reported when they outnumber its blocks in use (pool.4): so a list
 * with a cycle ends after at most the blocks in use of its pools. */
static int count_listed(struct pool *pool)
{
    if (pool->scratch >= pool->used)
        return omi_check_fail("pool.4", pool, "more than its %u used "
                              "blocks cached or remote: a list with a "
                              "cycle?", pool->used);
    pool->scratch++;
    return 0;
}

/* The pool describing a block at b (in arena a): its own descriptor, or
 * for a TAIL pool its span's head, if that is a pool descriptor. */
static struct pool *check_head(struct arena *a, const void *b)
{
    struct pool *pool = omi_arena_pool_of(a, b);

    if (omi_pool_state(pool) == POOL_TAIL)
        pool = omi_arena_check_pool(pool->free);
    return pool;
}

static OM_NO_ASAN int check_remote(const struct heap *h)
{
    int rc;

    for (void *b = atomic_load(&h->remote); b; b = *(void **)b) {
        struct arena *a = omi_arena_of(b);
        struct pool *pool = a ? check_head(a, b) : NULL;
        if (!pool || a->heap != h ||
            (omi_pool_state(pool) != POOL_USED &&
             omi_pool_state(pool) != POOL_FULL) || pool->sc >= NCLASSES ||
            !omi_pool_is_block(pool, b))
            return omi_check_fail("heap.5", b, "remote block not in a "
                                  "pool of its heap");
        if ((rc = count_listed(pool)))
            return rc;
    }
    return 0;
}

static OM_NO_ASAN int check_caches(const struct heap *h)
{
    int rc;

    for (unsigned sc = 0; sc < NSMALL; sc++) {
        size_t n = 0;
        for (void *b = h->cache[sc].head; b; b = *(void **)b, n++) {
            struct arena *a = omi_arena_of(b);
            struct pool *pool = a ? omi_arena_pool_of(a, b) : NULL;
            if (!pool || a->heap != h || pool->sc != sc ||
                (omi_pool_state(pool) != POOL_USED &&
                 omi_pool_state(pool) != POOL_FULL) ||
                !omi_pool_is_block(pool, b) || n > h->cache[sc].count)
                return omi_check_fail("heap.6", b, "cached block of class "
                                      "%u not in a pool of its heap", sc);
            if ((rc = count_listed(pool)))
                return rc;
        }
        if (n != h->cache[sc].count)
            return omi_check_fail("heap.6", h, "class %u cache holds %zu "
                                  "blocks, count %u", sc, n,
                                  h->cache[sc].count);
    }
    for (unsigned sc = NSMALL; sc < NCLASSES; sc++)
        if (h->cache[sc].head || h->cache[sc].count != CACHE_LIMIT)
            return omi_check_fail("heap.6", h, "medium class %u has a "
                                  "cache (count %u)", sc,
                                  h->cache[sc].count);
    return 0;
}

/* Invariant 7: the reserved next pools are in our arenas (descriptors
 * of pools that hold blocks, in arenas the map marks). */
static int check_next_pools(const struct heap *h)
{
    for (unsigned sc = 0; sc < NSMALL; sc++) {
        const struct pool *pool = h->next_pool[sc];
        if (!pool)
            continue;
        if (omi_arena_check_pool(pool) != pool ||
            omi_arena_of_pool(pool)->heap != h)
            return omi_check_fail("heap.7", pool, "next pool of class %u "
                                  "not in an arena of its heap", sc);
    }
    return 0;
}

int omi_heap_check(const struct heap *h)
{
    size_t ndirty;
    int rc;

    if ((rc = check_next_pools(h)))
        return rc;

    if ((rc = check_first(h)) || (rc = check_partials(h)) ||
        (rc = check_bins(h, &ndirty)))
        return rc;
    if (ndirty != h->ndirty ||
        (h->policy == PURGE_IMMEDIATE && h->nempty > 1) ||
        (h->policy == PURGE_IMMEDIATE &&
         h->ndirty > PURGE_TRIGGER_POOLS))
        return omi_check_fail("heap.4", h, "ndirty %zu (arenas %zu), "
                              "nempty %zu", h->ndirty, ndirty, h->nempty);
    if ((rc = check_caches(h)))
        return rc;
    return check_remote(h);
}
