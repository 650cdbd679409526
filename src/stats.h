/*
 * stats.h - X: what other layers add to om_debug_malloc_stats, and the
 * figures the malloc shim's statistics functions read (stats.c).
 */
#ifndef OM_STATS_H
#define OM_STATS_H

#include <stdio.h>

#include "base.h"
#include "config.h"

/* A section printed at the end of the report (the object layer's free
 * lists, as CPython's report ends with them). */
void omi_stats_set_extra(void (*print)(FILE *out));

/* v with thousands separators, right-aligned in 21 columns, newline. */
void omi_stats_print_value(FILE *out, uint64_t v);

/*
 * om_stats_get's figures into *out and, from the same walk, the free
 * blocks of each size class in its pools in use (blocks in the heaps'
 * block caches included) into free_blocks[0 .. NCLASSES - 1].  Allocates
 * nothing; exact while other threads are not allocating.
 */
void omi_stats_get_classes(struct om_stats *out, size_t *free_blocks);

#endif /* OM_STATS_H */
