/*
 * large.h - L2: large blocks, each mapped on its own (large.c).
 */
#ifndef OM_LARGE_H
#define OM_LARGE_H

#include "arena.h"
#include "purge.h"

/*
 * Map a block of at least size bytes aligned to align (at least the
 * page); *zeroed says whether it is fresh from the OS.  NULL with errno =
 * ENOMEM when the OS refuses.
 */
void *omi_large_alloc(size_t size, size_t align, bool *zeroed);

/* Free p if it is a large block (true); false when it is not objmem's. */
bool omi_large_free(void *p);

/* The usable bytes of large block p, or 0 when p is not one. */
size_t omi_large_size(const void *p);

/* Resize large block p to size bytes (above MEDIUM_MAX), moving it if
 * need be; NULL with errno = ENOMEM (p untouched) when the OS refuses. */
void *omi_large_realloc(void *p, size_t size);

/* Unmap the cached mappings unused for min_age purge epochs (0: all);
 * returns the bytes unmapped. */
size_t omi_large_purge(unsigned min_age);

/*
 * The small-block heap is growing (a new arena): unmap cached mappings,
 * the biggest first, until the cache is within its limit (CACHE_BASE and
 * a share of the live large bytes) without the allowance for one big
 * mapping.
 */
void omi_large_trim(void);

/* Copy up to max live large blocks (address, mapped bytes) into out:
 * how many were copied. */
size_t omi_large_list(struct om_heap_large *out, size_t max);

/* fork(): take, release and (in the child) reset the cache's lock; called
 * by heap.c's handlers only (omi_heap_fork_once). */
void omi_large_fork_prepare(void);
void omi_large_fork_parent(void);
void omi_large_fork_child(void);

/* Bytes in the cache of freed mappings (the purger's work). */
size_t omi_large_cached_bytes(void);

struct omi_large_totals {
    size_t blocks;              /* live large blocks */
    size_t bytes;               /* their mapped bytes */
    size_t cached_bytes;        /* freed mappings kept for reuse */
    size_t table_bytes;         /* the address table */
    uint64_t maps_total;        /* mappings ever made */
    size_t max_blocks;          /* most live large blocks at once */
    size_t max_bytes;           /* most mapped bytes in them at once */
};

/* The figures above, read under the cache's lock. */
void omi_large_totals(struct omi_large_totals *out);

/* Verify large.c's invariants. */
int omi_large_check(void);
/* Tests: the mapped size that the table holds for large block p (NULL
 * when p is none), the first cached mapping's address and head (NULL
 * when none is cached), and the high-water mark of the count, so that a
 * test can break invariants 1-3 by hand and mend them (no other thread
 * allocating meanwhile). */
struct omi_large_debug {
    size_t *size;
    void **cached_addr;
    uintptr_t *cached_head;
    size_t *max_count;
};
void omi_large_debug(const void *p, struct omi_large_debug *out);

#endif /* OM_LARGE_H */
