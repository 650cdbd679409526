/*
 * testutil.h - what every objmem test shares: cmocka, the leak check that
 * ends each test, and small helpers.
 */
#ifndef OM_TESTUTIL_H
#define OM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objmem.h"

/* Blocks handed out from the pools now. */
static inline size_t blocks_in_use(void)
{
    struct om_stats s;
    assert_int_equal(om_stats_get(&s), 0);
    return s.blocks_in_use;
}

/* The end of every allocator test: sound heap, no block left over. */
static inline void assert_heap_clean(size_t blocks_before)
{
    assert_int_equal(om_check(), 0);
    assert_int_equal(blocks_in_use(), blocks_before);
}

/* Resident bytes of this process, from /proc/self/statm. */
static inline size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* splitmix64: the tests' deterministic random numbers. */
static inline uint64_t rnd_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif /* OM_TESTUTIL_H */
