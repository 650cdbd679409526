/*
 * arena.h - L2: arenas, 1 MiB aligned chunks of 256 pools, and the arena
 * map that says which addresses are objmem's.
 */
#ifndef OM_ARENA_H
#define OM_ARENA_H

#include "pool.h"

struct heap;

/*
 * An arena's header sits in its first pools (META_POOLS of them); the
 * descriptors of all 256 pools follow, those of the header pools unused.
 *
 *   arena (1 MiB, aligned to 1 MiB)
 *   +--------------------------+-------+-------+-----+---------+
 *   | struct arena + pools[256]| pool  | pool  | ... | pool 255|
 *   | (META_POOLS pages)       |  M    |  M+1  |     |         |
 *   +--------------------------+-------+-------+-----+---------+
 *
 * Free pools are kept in two bitmaps, owned by the owner heap's thread:
 * dirty (resident when it was put there) and clean (not resident).  The
 * purger may purge a dirty pool behind the owner's back, so a dirty bit is
 * a hint: the pool's state says what it is.
 * Invariants (checked by omi_arena_check, with no purge under way):
 *   1. The arena is ARENA_SIZE-aligned, the arena map marks it, and it is
 *      on the global arena list.
 *   2. Header pools are never handed out: state CLEAN, owner 0, no bit.
 *   3. For every other pool: state DIRTY => dirty bit; dirty bit => state
 *      DIRTY or CLEAN; clean bit => CLEAN; USED/FULL/TAIL => no bit.
 *   4. nfree == |dirty| + |clean|, ndirty == |dirty|,
 *      omi_arena_dirty_count() == pools in state DIRTY.
 *   6. reserved bit => dirty or clean bit (a reserved pool is free).
 *      (5, the owner heap is a known heap, is check.c's.)
 */
struct arena {
    struct heap *heap;          /* owner */
    struct arena *next;         /* heap's bin list (nfree > 0) */
    struct arena *prev;
    struct arena *all_next;     /* global list of arenas, under the lock */
    struct arena *all_prev;
    uint32_t nfree;             /* free pools: dirty + clean */
    uint32_t ndirty;            /* dirty bits (hints) */
    /* Pools in state DIRTY = in - taken - purged_owner - purged_bg: four
     * counters with one writer each (so no locked instruction), readable
     * by any thread. */
    _Atomic uint32_t dirty_in;      /* made DIRTY (owner) */
    _Atomic uint32_t dirty_taken;   /* taken back while DIRTY (owner) */
    _Atomic uint32_t purged_owner;  /* purged by the owner */
    _Atomic uint32_t purged_bg;     /* purged by the purger thread */
    _Atomic uint32_t pins;      /* purger threads working in the arena */
    uint64_t dirty[POOLS_PER_ARENA / 64];   /* DIRTY pools */
    uint64_t clean[POOLS_PER_ARENA / 64];   /* CLEAN pools */
    /* Owner only: free pools kept for the small class that took the pool
     * just before them (heap.c, the pool runs); taken by others last. */
    uint64_t reserved[POOLS_PER_ARENA / 64];
    /* Owner heap only: the partial pools of each class (USED, not the
     * heap's first pool of the class), and this arena's links in the
     * heap's list of arenas that have any (heap.c). */
    uint64_t partial[NCLASSES][POOLS_PER_ARENA / 64];
    struct arena *cls_next[NCLASSES];
    struct arena *cls_prev[NCLASSES];
    struct pool pools[POOLS_PER_ARENA];     /* descriptors */
};

#define META_POOLS ((sizeof(struct arena) + POOL_SIZE - 1) / POOL_SIZE)
#define USABLE_POOLS (POOLS_PER_ARENA - META_POOLS)

/*
 * The arena map (config.h): bit s % 64 of word (s - base) / 64 <=> an
 * arena at slot s (its address >> ARENA_BITS), for s in the window
 * [base, base + MAP_WINDOW); base is a multiple of 64, placed around the
 * first arena.  Slots outside the window are in the two-level map
 * (omi_arena_outside: leaves of 2^MAP_LEAF_BITS slots).  Readers take one
 * word, the bias: the address of slot s's word is bias + (s >> 6) * 8, a
 * word of omi_arena_map exactly when s is in the window (before the first
 * arena, the bias puts every slot outside), so the load's address costs
 * what a map with no window cost: a shift and an add.
 */
extern _Atomic uint64_t omi_arena_map[MAP_WORDS];
extern _Atomic uintptr_t omi_arena_map_bias;
extern _Atomic(_Atomic uint64_t *) omi_arena_outside[MAP_ROOT_SIZE];

/* True when slot, outside the window, holds an objmem arena.  Inline: a
 * call here would make every free keep p in a callee-saved register (a
 * push and a pop). */
OM_INLINE bool omi_arena_owns_outside(uintptr_t slot)
{
    _Atomic uint64_t *leaf;
    uintptr_t i = slot & (((uintptr_t)1 << MAP_LEAF_BITS) - 1);

    if (slot >> (ADDRESS_BITS - ARENA_BITS))
        return false;
    leaf = atomic_load_explicit(&omi_arena_outside[slot >> MAP_LEAF_BITS],
                                memory_order_acquire);
    return leaf && (atomic_load_explicit(&leaf[i >> 6],
                                         memory_order_relaxed) >>
                    (slot & 63)) & 1;
}

/* True when p is in an objmem arena. */
OM_INLINE bool omi_arena_owns(const void *p)
{
    uintptr_t slot = (uintptr_t)p >> ARENA_BITS, w;
    uint64_t word;

    w = atomic_load_explicit(&omi_arena_map_bias, memory_order_relaxed) +
        (slot >> 6) * sizeof(uint64_t);
    if (unlikely(w - (uintptr_t)omi_arena_map >= sizeof(omi_arena_map)))
        return omi_arena_owns_outside(slot);
    word = atomic_load_explicit((_Atomic uint64_t *)w, memory_order_relaxed);
    return (word >> (slot & 63)) & 1;
}

/* The arena an address would belong to (whether or not it is ours). */
OM_INLINE struct arena *omi_arena_base(const void *p)
{
    return (struct arena *)((uintptr_t)p & ~(uintptr_t)ARENA_MASK);
}

/* The arena holding p, or NULL when p is not in an objmem arena. */
OM_INLINE struct arena *omi_arena_of(const void *p)
{
    return omi_arena_owns(p) ? omi_arena_base(p) : NULL;
}

/* The descriptor of the pool holding p, an address in arena a. */
OM_INLINE struct pool *omi_arena_pool_of(struct arena *a, const void *p)
{
    return &a->pools[((uintptr_t)p >> POOL_BITS) & (POOLS_PER_ARENA - 1)];
}

/* Prefetch, for a write, the descriptor of the pool that holds p, when p
 * is in one of our arenas: the object layer, dropping the items of a
 * container, before they are freed (a free reads and writes its pool's
 * descriptor, a cache miss in a big heap). */
OM_INLINE void omi_arena_prefetch_pool(const void *p)
{
    if (omi_arena_owns(p))
        __builtin_prefetch(omi_arena_pool_of(omi_arena_base(p), p), 1);
}

/* The small pool in use (USED or FULL) that holds p, or NULL. */
OM_INLINE struct pool *omi_arena_small_pool(const void *p)
{
    struct pool *pool;
    unsigned state;

    if (!omi_arena_owns(p))
        return NULL;
    pool = omi_arena_pool_of(omi_arena_base(p), p);
    state = omi_pool_state(pool);
    return (state == POOL_USED || state == POOL_FULL) && pool->sc < NSMALL
           ? pool : NULL;
}

/* The arena of a pool descriptor. */
OM_INLINE struct arena *omi_arena_of_pool(const struct pool *pool)
{
    return (struct arena *)((uintptr_t)pool & ~(uintptr_t)ARENA_MASK);
}

/* The position of a pool in its arena. */
OM_INLINE size_t omi_pool_index(const struct pool *pool)
{
    return (size_t)(pool - omi_arena_of_pool(pool)->pools);
}

/* Map a new arena for heap h; NULL (errno kept) when the OS refuses. */
struct arena *omi_arena_new(struct heap *h);

/* Unmap an arena that holds no used pool. */
void omi_arena_release(struct arena *a);

/*
 * Take a free pool, dirty ones first (lowest address first), and make it
 * USED.  Precondition: a->nfree > 0; the caller owns a.
 */
struct pool *omi_arena_take_pool(struct arena *a);

/*
 * Take a run of n contiguous free pools (the lowest run), all made USED;
 * NULL when a has none.  The caller owns a.
 */
struct pool *omi_arena_take_run(struct arena *a, size_t n);

/*
 * Find a run of n contiguous free pools (dirty ones only, if dirty_only)
 * none of which is reserved, inside one 64-pool word of the bitmaps; take
 * the first (made USED) and reserve the others; NULL when a has none.
 */
struct pool *omi_arena_take_reserving(struct arena *a, size_t n,
                                      bool dirty_only);

/* Take pool, if it is still reserved (free), and make it USED; false when
 * another take has had it meanwhile. */
bool omi_arena_take_reserved(struct arena *a, struct pool *pool);

/* Whether pool is a reserved free pool. */
bool omi_arena_is_reserved(const struct arena *a, const struct pool *pool);

/* Put back a pool that has just become free (it is resident). */
void omi_arena_put_pool(struct arena *a, struct pool *pool);

/*
 * Give back the DIRTY pools that became dirty at least min_age purge
 * epochs ago, with one madvise per run of neighbours.  Called by the
 * arena's owner (by_purger false) or by the purger thread on an arena it
 * has pinned (by_purger true).  Returns the pools purged.
 */
size_t omi_arena_purge(struct arena *a, unsigned min_age, bool by_purger);

/* Pools in state DIRTY in a (any thread; exact when no purge is under
 * way). */
uint32_t omi_arena_dirty_count(const struct arena *a);

/* The owner brings its hint bitmaps up to date after purges; returns the
 * dirty bits it turned into clean ones. */
size_t omi_arena_sync_hints(struct arena *a);

/* Global figures, under the arena lock. */
struct omi_arena_totals {
    size_t current;             /* arenas mapped now */
    size_t highwater;           /* most at once */
    size_t total;               /* ever mapped */
    uint64_t purged_bytes;      /* bytes given back with madvise, ever */
    uint64_t unmapped_bytes;    /* arena bytes unmapped, ever */
};

/* The purge epoch (advanced by the purger each tick), and the count of
 * pools in state DIRTY in all arenas (walks them under the lock). */
uint16_t omi_arena_epoch(void);
void omi_arena_epoch_advance(void);
size_t omi_arena_dirty_total(void);

/* Pin up to max arenas that hold DIRTY pools (purger); unpin each. */
size_t omi_arena_pin_dirty(struct arena **out, size_t max);
void omi_arena_unpin(struct arena *a);

/* Lock the global arena list, and walk it. */
void omi_arena_lock(void);
void omi_arena_unlock(void);
struct arena *omi_arena_first(void);
void omi_arena_totals(struct omi_arena_totals *out);

/* fork(): take the lock before, release or reset it after. */
void omi_arena_fork_prepare(void);
void omi_arena_fork_parent(void);
void omi_arena_fork_child(void);

/* Bits set in the arena map (arena lock held). */
size_t omi_arena_map_bits(void);

/* For om_check's tests: the word of the map that marks the slot of the
 * arena at a (bit slot % 64), or NULL when its leaf is not mapped. */
_Atomic uint64_t *omi_arena_map_word(const void *a);

/* The bits set in the map, counted (arena lock held): more than
 * omi_arena_map_bits() means a mark no arena made. */
size_t omi_arena_map_count(void);

/* The arena map's own bytes: the window, the outside root and its leaves. */
size_t omi_arena_map_bytes(void);

/* The window's first slot (arena lock held), or 0 before the first arena. */
uintptr_t omi_arena_map_window(void);

/* om_check's part of map.1 (arena lock held): the window's base and the
 * readers' bias agree.  0, or the fatal path's code. */
int omi_arena_map_check(void);

/* Verify an arena's invariants (lock held). */
int omi_arena_check(const struct arena *a);

/*
 * om_check's test of a pool pointer read out of metadata, before it is
 * followed: the descriptor at p if p is one of a pool that can hold
 * blocks (in an arena the map marks, at a descriptor's boundary, not a
 * header pool's); else NULL.  Reads only the map.
 */
struct pool *omi_arena_check_pool(const void *p);

#endif /* OM_ARENA_H */
