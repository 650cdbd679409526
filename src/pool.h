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
 * Pool states (docs/design.md §3 draws the machine):
 *   CLEAN    free, not resident: never used, or given back with madvise
 *   DIRTY    free, resident: kept for reuse until it is purged
 *   USED     holds a class: its heap's first pool of the class, or a
 *            partial pool (marked in its arena's partial bitmap)
 *   FULL     holds a class, no free block it knows of, in no bitmap
 *   PURGING  free, being given back by a thread other than its owner
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
                  POOL_PURGING };

/* Low bit of the owner word: the pool is FULL (so not on a list). */
#define OWNER_FULL ((uintptr_t)1)

/*
 * A pool descriptor.  Invariants (checked by omi_pool_check):
 *   1. USED/FULL: sc < NCLASSES (the block size is (sc + 1) * ALIGNMENT,
 *      the capacity POOL_SIZE / block size).
 *   2. USED: owner == heap address; FULL: owner == heap | OWNER_FULL and
 *      free == NULL; CLEAN/DIRTY/PURGING: owner == 0, used == 0.
 *   3. Every free-list block lies in the pool at a block boundary; the
 *      list has no cycle.
 *   4. used + |free| == capacity; used counts the blocks handed out, those
 *      in the heap's block cache and those on its remote list.
 */
struct pool {
    _Atomic uintptr_t owner;    /* heap address | OWNER_FULL; 0 when free */
    void *free;                 /* first free block, NULL when none */
    uint8_t sc;                 /* size class, kept while DIRTY */
    _Atomic uint8_t state;      /* enum pool_state */
    uint16_t used;              /* blocks not on the free list: handed
                                   out, in the heap's cache, or remote */
    _Atomic uint16_t dirty_since; /* purge epoch when it became DIRTY */
    uint16_t scratch;           /* om_check's tally of cached and remote
                                   blocks */
};

/* 24 bytes: 256 descriptors and the arena's header fit in two pages, so
 * an arena gives 254 of its 256 pools to blocks.  The block size and the
 * capacity follow from sc, the position from the descriptor's address. */
_Static_assert(sizeof(struct pool) == 24, "a descriptor is 24 bytes");

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

/* The size class of a request of 1..SMALL_THRESHOLD bytes. */
OM_INLINE unsigned omi_pool_class(size_t size)
{
    return (unsigned)((size - 1) >> ALIGNMENT_SHIFT);
}

/* Block bytes of class sc. */
OM_INLINE size_t omi_pool_class_size(unsigned sc)
{
    return ((size_t)sc + 1) << ALIGNMENT_SHIFT;
}

/* Block bytes and blocks per pool of the class a pool holds. */
OM_INLINE size_t omi_pool_block_size(const struct pool *pool)
{
    return omi_pool_class_size(pool->sc);
}

OM_INLINE size_t omi_pool_capacity(const struct pool *pool)
{
    return POOL_SIZE / omi_pool_block_size(pool);
}

/* The first byte of the page a pool describes. */
char *omi_pool_page(const struct pool *pool);

/*
 * Give a pool just taken from its arena size class sc: thread all its
 * blocks on the free list in address order.
 */
void omi_pool_init(struct pool *pool, unsigned sc);

/*
 * True when p is at a block boundary inside pool, a pool holding a class.
 * Reads only the fields that stay fixed while a block of the pool is live,
 * so any thread may call it for a block it holds.
 */
bool omi_pool_is_block(const struct pool *pool, const void *p);

/* Verify the descriptor's invariants; scratch holds the count of its
 * blocks found in its heap's cache and remote list. */
int omi_pool_check(const struct pool *pool);

#endif /* OM_POOL_H */
