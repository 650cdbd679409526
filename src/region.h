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
};

/* size bytes, zeroed, 16-byte aligned; NULL with errno = ENOMEM. */
void *omi_region_alloc(struct omi_region *r, size_t size);
/* Unmap every chunk; the region is empty and usable again. */
void omi_region_release(struct omi_region *r);

#endif /* OM_REGION_H */
