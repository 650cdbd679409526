/*
 * pool.h - L2: pools (one 4 KiB page each) and their blocks.
 *
 * A pool holds blocks of one size class.  Its descriptor lives out of band
 * in its arena's header (arena.h), so every byte of the page is block
 * space: no per-block header, no pool header in the page, and a free pool
 * is exactly one page that can be given back to the OS.
 *
 *   page:  | block 0 | block 1 | ... | block cap-1 | (4096 % size unused)
 *   free:  a singly linked list threaded through the first word of each
 *          free block; NULL-terminated.
 *
 * A medium class (above SMALL_THRESHOLD, config.h) has a span: a run of
 * omi_class_pages(sc) contiguous pools whose first (the head) describes
 * the whole run, as a small pool describes its page.  The other pools of
 * the run are TAIL: their descriptor points at the head (`free`), so any
 * address in the run finds its head in two loads.
 *
 *   span:  | head page | tail page | ... |   blocks straddle the pages
 *          | block 0 | block 1 | block 2 | ... (pages * 4096 % size unused)
 *
 * A span's blocks are threaded a page at a time ("carved"): those that
 * start in the page of the first block not threaded yet, when the free
 * list runs dry.  The first tail descriptor's `used` counts the blocks
 * not threaded yet, so a span of one 32 KiB block faults in 32 KiB, not
 * the 128 KiB of its four.
 *
 * Pool states (docs/design.md §3 draws the machine):
 *   CLEAN    free, not resident: never used, or given back with madvise
 *   DIRTY    free, resident: kept for reuse until it is purged
 *   USED     holds a class: its heap's first pool of the class, or a
 *            partial pool (marked in its arena's partial bitmap)
 *   FULL     holds a class, no free block it knows of, in no bitmap
 *   PURGING  free, being given back by a thread other than its owner
 *   TAIL     a pool of a span other than its head; owner 0, free = head
 *
 * The state is written by the owner heap's thread, except that the purger
 * (purge.c) may move DIRTY -> PURGING (by CAS) -> CLEAN.  So the owner
 * takes a DIRTY pool back by CAS too, and reads the state atomically.
 */
#ifndef OM_POOL_H
#define OM_POOL_H

#include <stdatomic.h>

#include "base.h"
#include "config.h"

enum pool_state { POOL_CLEAN, POOL_DIRTY, POOL_USED, POOL_FULL,
                  POOL_PURGING, POOL_TAIL };

/* Low bit of the owner word: the pool is FULL (so not on a list). */
#define OWNER_FULL ((uintptr_t)1)

/*
 * A pool descriptor.  Invariants (checked by omi_pool_check):
 *   1. USED/FULL: sc < NCLASSES (block size, capacity and pages from
 *      the class); TAIL: free is the head of its span, a USED or FULL
 *      pool of the same class whose run covers this pool; used == 0,
 *      but for the first tail, whose used is the span's uncarved count.
 *   2. The state is one of enum pool_state.  USED: owner == heap
 *      address; FULL: owner == heap | OWNER_FULL, free == NULL and
 *      nothing uncarved; CLEAN/DIRTY/PURGING: owner == 0, used == 0.
 *   3. Every free-list block lies in the pool at a block boundary; the
 *      list has no cycle.
 *   4. used + |free| + uncarved == capacity; used counts the blocks
 *      handed out, those in the heap's block cache and those on its
 *      remote list; the uncarved blocks are the span's last ones.
 *   5. A USED or FULL small pool's traced is at least the number of its
 *      blocks with a trace in tracing's table (omi_trace_check verifies
 *      it): a free into a pool whose traced is 0 has no trace to forget.
 *      It may count too many (traces cleared all at once), never too
 *      few; it is zeroed when the pool gets its class.
 *   6. tags is 0 but on a USED or FULL small pool (tags.c's record of
 *      the page goes when the pool goes back to its arena); a non-zero
 *      tags names a record in use: the pools with one are as many as
 *      tags.c's records in use, each of which names its pool (tags.4).
 */
struct pool {
    /* heap address | OWNER_FULL; 0 when free */
    _Alignas(32) _Atomic uintptr_t owner;
    void *free;                 /* first free block, NULL when none */
    uint8_t sc;                 /* size class, kept while DIRTY */
    _Atomic uint8_t state;      /* enum pool_state */
    uint16_t used;              /* blocks not on the free list: handed
                                   out, in the heap's cache, or remote */
    _Atomic uint16_t dirty_since; /* purge epoch when it became DIRTY */
    uint16_t scratch;           /* om_check's tally of cached and remote
                                   blocks */
    _Atomic uint16_t traced;    /* small pools: at least the traces of its
                                   blocks in tracing's table (trace.c) */
    uint16_t pad;
    _Atomic uint32_t tags;      /* small pools: the handle of the record
                                   of its blocks' tags (tags.c); 0: none */
};

/* 32 bytes, aligned to 32: a descriptor never straddles two cache lines
 * (at 24 bytes, two in eight did, and an operation on such a pool
 * touched two lines: bench_alloc's LIFO pattern went from 4.1-4.2 to
 * 3.6-3.8 ns per malloc+free with this alignment, A/B, 3 runs each).
 * The header and 256 descriptors take 12,224 bytes, 3 pages as at 24
 * bytes, so an arena still gives 253 of its 256 pools to blocks.  The
 * block size and the capacity follow from sc, the position from the
 * descriptor's address. */
_Static_assert(sizeof(struct pool) == 32, "a descriptor is 32 bytes");

/* The state, read or written by the owner (relaxed: it alone writes any
 * state but DIRTY's successors). */
OM_INLINE unsigned omi_pool_state(const struct pool *pool)
{
    return atomic_load_explicit(&pool->state, memory_order_relaxed);
}

OM_INLINE void omi_pool_set_state(struct pool *pool, unsigned state)
{
    atomic_store_explicit(&pool->state, (uint8_t)state, memory_order_relaxed);
}

/* The medium classes (pool.c): block bytes, pools per span, blocks. */
struct omi_medium_class {
    uint32_t size;
    uint16_t pages;
    uint16_t capacity;
};
extern const struct omi_medium_class omi_medium[NMEDIUM_MAX];

/* The size class of a request of 1..SMALL_THRESHOLD bytes. */
OM_INLINE unsigned omi_pool_class(size_t size)
{
    return (unsigned)((size - 1) >> ALIGNMENT_SHIFT);
}

/* The class of a request of SMALL_THRESHOLD+1..MEDIUM_MAX bytes: eight
 * per doubling, the doubling from the top bit of size - 1, the eighth
 * from the three bits below it. */
OM_INLINE unsigned omi_pool_medium_class(size_t size)
{
    size_t s = size - 1;
    unsigned top = 63u - (unsigned)__builtin_clzll(s);     /* 9.. */
    unsigned eighth = (unsigned)(s >> (top - 3)) & 7;

    return NSMALL + (top - 9) * MEDIUM_STEPS + eighth;
}

/* Block bytes of class sc. */
OM_INLINE size_t omi_pool_class_size(unsigned sc)
{
    if (likely(sc < NSMALL))
        return ((size_t)sc + 1) << ALIGNMENT_SHIFT;
    return omi_medium[sc - NSMALL].size;
}

/* Pools per span of class sc (1 for the small classes). */
OM_INLINE size_t omi_class_pages(unsigned sc)
{
    return sc < NSMALL ? 1 : omi_medium[sc - NSMALL].pages;
}

/* Blocks per pool (span) of class sc. */
OM_INLINE size_t omi_class_capacity(unsigned sc)
{
    if (sc < NSMALL)
        return POOL_SIZE / omi_pool_class_size(sc);
    return omi_medium[sc - NSMALL].capacity;
}

/* Block bytes and blocks per pool of the class a pool holds. */
OM_INLINE size_t omi_pool_block_size(const struct pool *pool)
{
    return omi_pool_class_size(pool->sc);
}

OM_INLINE size_t omi_pool_capacity(const struct pool *pool)
{
    return omi_class_capacity(pool->sc);
}

/* The pool that describes the blocks of pool's page: itself, or the head
 * of its span.  Stable while any block of the span is live. */
OM_INLINE struct pool *omi_pool_head(struct pool *pool)
{
    if (unlikely(atomic_load_explicit(&pool->state, memory_order_relaxed) ==
                 POOL_TAIL))
        return pool->free;
    return pool;
}

/* The first byte of the page a pool describes. */
char *omi_pool_page(const struct pool *pool);

/* The blocks of pool's span not threaded on its free list yet (0 for a
 * one-page pool). */
OM_INLINE size_t omi_pool_uncarved(const struct pool *pool)
{
    return omi_class_pages(pool->sc) > 1 ? pool[1].used : 0;
}

/*
 * Give a pool just taken from its arena (the head of a run of
 * omi_class_pages(sc) pools) size class sc: thread the blocks that start
 * in its first page on the free list in address order (all of them for
 * a one-page pool), and make the rest of the run its TAIL.
 */
void omi_pool_init(struct pool *pool, unsigned sc);

/* Thread the next page's blocks of pool's span, whose free list is
 * empty and which has uncarved blocks. */
void omi_pool_carve(struct pool *pool);

/*
 * True when p is at a block boundary inside pool, a pool holding a class.
 * Reads only the fields that stay fixed while a block of the pool is live,
 * so any thread may call it for a block it holds.
 */
bool omi_pool_is_block(const struct pool *pool, const void *p);

/* Verify the descriptor's invariants; scratch holds the count of its
 * blocks found in its heap's cache and remote list.  A TAIL pool is
 * checked against its head. */
int omi_pool_check(const struct pool *pool);

#endif /* OM_POOL_H */
