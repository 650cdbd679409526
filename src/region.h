/*
 * region.h - X (cross-cutting): bump memory from the OS, freed all at
 * once (region.c), for the modules that must not allocate through objmem:
 * tracing and its snapshots.
 */
#ifndef OM_REGION_H
#define OM_REGION_H

#include "base.h"

struct omi_region_chunk;

/* All zero is an empty region. */
struct omi_region {
    struct omi_region_chunk *chunks;    /* newest first */
    char *cur, *end;                    /* free room in the newest */
    size_t mapped;                      /* bytes mapped, headers included */
    size_t left;                        /* whole pages never cut, at the
                                           ends of the older chunks */
};

/* size bytes, zeroed, 16-byte aligned; NULL with errno = ENOMEM. */
void *omi_region_alloc(struct omi_region *r, size_t size);
/* The bytes mapped, less the whole pages at the ends of the chunks that
 * nothing was cut from (never written, so never resident). */
size_t omi_region_touched(const struct omi_region *r);
/* Invariants 1-3 of region.c: 0, or omi_check_fail's code. */
int omi_region_check(const struct omi_region *r);
/* Unmap every chunk; the region is empty and usable again. */
void omi_region_release(struct omi_region *r);

#endif /* OM_REGION_H */
