/*
 * stats.h - X: what other layers add to om_debug_malloc_stats.
 */
#ifndef OM_STATS_H
#define OM_STATS_H

#include <stdio.h>

#include "base.h"

/* A section printed at the end of the report (the object layer's free
 * lists, as CPython's report ends with them). */
void omi_stats_set_extra(void (*print)(FILE *out));

/* v with thousands separators, right-aligned in 21 columns, newline. */
void omi_stats_print_value(FILE *out, uint64_t v);

#endif /* OM_STATS_H */
