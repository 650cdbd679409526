/*
 * heap.h - L2: heaps, the per-thread owners of arenas and pools.
 */
#ifndef OM_HEAP_H
#define OM_HEAP_H

#include "arena.h"

enum heap_state {
    HEAP_ACTIVE = 1,            /* owned by a live thread */
    HEAP_ABANDONED,             /* its thread exited; nobody works on it */
    HEAP_CLAIMED,               /* a thread works on it on its behalf */
    HEAP_ORPHANED               /* fork() child: its thread is gone and it
                                   may be mid-update; never touched again */
};

/*
 * Usable arenas sit in bins by free-pool count: bin 1 + (nfree - 1) / 8
 * for a partly used arena, EMPTY_BIN for an arena with no used pool.  A new
 * pool comes from the lowest non-empty bin: the fullest arenas, to within
 * BIN_WIDTH pools (pymalloc keeps its list exactly sorted, which costs a
 * list move, and cache misses on neighbouring arenas, at every change).
 */
#define BIN_WIDTH 8
#define EMPTY_BIN ((USABLE_POOLS - 1 + BIN_WIDTH - 1) / BIN_WIDTH + 1)
#define NBINS (EMPTY_BIN + 1)

/*
 * A heap's block cache for one class: up to CACHE_LIMIT blocks freed into
 * its own pools, threaded through their first word; malloc pops from it
 * before the first pool of the class.  A free into a pool would otherwise
 * move pools between states: a FULL pool back among the partial pools,
 * which the next malloc exhausts, and a partial pool emptied and released,
 * which the next malloc takes again: in a steady state with a few blocks
 * per pool, nearly every operation.  A full cache takes no more frees
 * (they go to their pools); om_collect and thread exit empty it.
 */
struct cache {
    void *head;                         /* last block freed into it */
    uint32_t count;                     /* blocks on the list */
    uint32_t unused;
};

/*
 * A heap.  Only its owner (the thread whose omi_heap_tls it is, or the
 * thread that claimed it) reads or writes it, except `remote`, `state`
 * and `collect_request`, which are atomics any thread may touch.
 * Invariants (checked by omi_heap_check):
 *   1. first[sc] is the empty pool or a USED pool (a span's head for a
 *      medium class) of class sc owned by this heap, not marked partial.
 *   2. A pool of this heap is marked in its arena's partial[sc] <=> it is
 *      USED, of class sc, and not first[sc]; a partial pool has a free
 *      block.  An arena is on the list partial_arenas[sc] <=> it marks a
 *      pool in partial[sc].
 *   3. An arena of this heap is in bins[bin_of(nfree)] <=> its nfree > 0;
 *      binmap bit b <=> bins[b] is not empty.
 *   4. ndirty == the sum of its arenas' dirty hints; under the immediate
 *      policy ndirty <= PURGE_TRIGGER_POOLS and at most one arena with no
 *      used pool is kept (deferred: empty arenas wait for the purger;
 *      never: they stay, for om_collect).  "The policy" is `policy`, the
 *      one the heap last applied: after om_set_purge_delay a heap
 *      conforms to the new one at its next pool release or collect, not
 *      before (its thread may be waiting, and no other thread may touch
 *      the heap).
 *   5. Every block on the remote list lies in a USED or FULL pool of this
 *      heap, at a block boundary.
 *   6. Every block in cache[sc] lies in a USED or FULL pool of class sc of
 *      this heap, at a block boundary; count is the list's length.  Only
 *      the small classes have a cache: a medium class's is empty with
 *      count CACHE_LIMIT, so that a medium free, seeing it full, goes to
 *      its span (and the free path need not test the class).
 *   7. next_pool[sc] is NULL or a pool of an arena of this heap.
 */
struct heap {
    struct pool *first[NCLASSES];       /* allocation pool of each class */
    struct cache cache[NCLASSES];       /* block caches: the fast paths
                                           (a medium class's: empty, full) */
    struct arena *partial_arenas[NCLASSES];    /* arenas with partials */
    struct pool *next_pool[NSMALL];     /* the reserved pool after the
                                           class's last new pool, or NULL */
    _Atomic(void *) remote;             /* blocks freed by other threads */
    _Atomic int state;                  /* enum heap_state */
    _Atomic int collect_request;        /* 0, 1 (collect) or 2 (force) */
    size_t ndirty;                      /* dirty hints in our arenas */
    size_t nempty;                      /* arenas with no used pool */
    uint16_t trim_epoch;                /* purge epoch of the last trim */
    uint8_t policy;                     /* enum purge_mode last applied */
    struct arena *bins[NBINS];          /* usable arenas by free pools */
    uint64_t binmap;                    /* non-empty bins */
    struct heap *_Atomic all_next;      /* list of every heap ever made */
};

/* The calling thread's heap; &omi_heap_empty until its first slow path. */
extern OM_TLS struct heap *omi_heap_tls;
extern struct heap omi_heap_empty;

/* Allocation slow path: the first pool and the cache of class sc are
 * empty; take the next pool with a free block, a new pool or a new arena.
 * NULL with errno = ENOMEM when the OS refuses. */
void *omi_heap_malloc_slow(struct heap *h, unsigned sc);

/* Free slow path: the pool is another heap's or not in use, p is the head
 * of the cache or of the pool's list (a double free), or p goes into one
 * of our FULL pools while its class's cache is full. */
void omi_heap_free_slow(struct heap *h, struct pool *pool, void *p);

/* The last block of a pool of h was freed. */
void omi_heap_pool_emptied(struct heap *h, struct pool *pool);

/*
 * bytes of fresh pages are about to be mapped for a large block (large.c:
 * a cache miss, or a growing realloc, in a program that does not churn
 * large mappings): the calling thread's heap first gives back about as
 * many of its dirty pools that have been dirty for min_age purge epochs
 * or more (0: any), the emptiest arenas' first, whole arenas at a time.
 * Memory freed in small blocks so makes room for the large one, as in a
 * heap that reuses it (glibc's), instead of staying resident beside it
 * for the purge delay.  Nothing under the never-purge policy.
 */
void omi_heap_make_room(size_t bytes, unsigned min_age);

/* Bytes mapped for one heap structure. */
size_t omi_heap_struct_bytes(void);

/* Walk every heap (append-only list; read with acquire). */
struct heap *omi_heap_first(void);
struct heap *omi_heap_next(const struct heap *h);

/* Register L2's fork handlers (once; idempotent).  One handler set, in
 * one order, for every L2 lock: the purger paused first (its work takes
 * the large cache's lock and the arena lock), then the large cache's
 * lock, the heap list's, the arena list's.  Called by the first heap, the
 * first large block and tracing's first start (trace.c registers its own
 * handlers after these, so that they run first). */
void omi_heap_fork_once(void);

/* Verify a heap's invariants (other threads quiescent). */
int omi_heap_check(const struct heap *h);

#endif /* OM_HEAP_H */
