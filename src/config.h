/*
 * config.h - every tunable of objmem, each with its reason and a
 * compile-time check.  Everything is derived from three shifts.
 *
 *   ALIGNMENT_SHIFT 4  -> 16-byte blocks and size classes, as CPython 3.8+
 *                         (the x86-64 ABI's max_align_t).
 *   POOL_BITS      12  -> 4 KiB pools: one pool is one OS page, so an empty
 *                         pool is exactly a page that madvise can give back.
 *                         pymalloc's 16 KiB pools cap what it could give
 *                         back after a random 99% free at ~18% of the freed
 *                         bytes; 4 KiB pages allow ~63% (docs/design.md §4).
 *   ARENA_BITS     20  -> 1 MiB arenas, as pymalloc on 64-bit: 256 pools,
 *                         few mmap calls, and a small unit to unmap whole.
 *
 * Request -> class table (OM_SMALL_THRESHOLD = 512):
 *
 *   request   class  block   blocks/pool
 *     1-16      0      16        256
 *    17-32      1      32        128
 *    33-48      2      48         85   (16 bytes lost per pool)
 *     ...
 *   497-512    31     512          8
 */
#ifndef OM_CONFIG_H
#define OM_CONFIG_H

#include <limits.h>

#define ALIGNMENT_SHIFT 4
#define ALIGNMENT (1u << ALIGNMENT_SHIFT)

#ifndef OM_SMALL_THRESHOLD
#define OM_SMALL_THRESHOLD 512
#endif
#define SMALL_THRESHOLD ((size_t)OM_SMALL_THRESHOLD)
#define NSMALL (OM_SMALL_THRESHOLD >> ALIGNMENT_SHIFT)

/*
 * Medium classes: requests above SMALL_THRESHOLD up to MEDIUM_MAX, served
 * when objmem is the whole process's malloc (the shim, om_gp_malloc).
 * Eight classes per doubling (576, 640, 704, ..., 1024, 1152, ...), so
 * rounding a request up wastes less than 12.5%; a class's blocks sit in a
 * span of contiguous pools that holds at least 4 blocks and loses little
 * to its tail: at most 1/32 where a span of up to twice the fewest pages
 * allows it (pool.c's table, docs/design.md).  Four per
 * doubling (up to 20% lost) left sqlite3 3.2 MB above glibc's 14 MB peak:
 * its 1032- and 4104-byte requests lost a quarter each.  Larger requests
 * are mapped one by one (large.c).  32 KiB: bench/README.md has the
 * figures for 16, 32 and 64 KiB.
 */
#ifndef OM_MEDIUM_MAX
#define OM_MEDIUM_MAX 32768
#endif
#define MEDIUM_MAX ((size_t)OM_MEDIUM_MAX)
#define MEDIUM_STEPS 8          /* classes per doubling */
#define NMEDIUM_MAX 56          /* classes in pool.c's table: to 64 KiB */
#define NMEDIUM (OM_MEDIUM_MAX == 16384 ? 40 : OM_MEDIUM_MAX == 32768 ? 48 : \
                 56)
#define NCLASSES (NSMALL + NMEDIUM)

#define POOL_BITS 12
#define POOL_SIZE ((size_t)1 << POOL_BITS)
#define POOL_MASK (POOL_SIZE - 1)

#define ARENA_BITS 20
#define ARENA_SIZE ((size_t)1 << ARENA_BITS)
#define ARENA_MASK (ARENA_SIZE - 1)
#define POOLS_PER_ARENA (ARENA_SIZE / POOL_SIZE)

/*
 * The arena map (arena.h): one bit per 1 MiB slot of a window of 4 TiB
 * (2^22 slots in 2^16 words, 512 KiB of BSS) placed around the first
 * arena, where mmap puts every arena in practice; free() pays one load
 * to ask "is p ours?", and the window's base, a word in a hot line.  An
 * arena outside the window is marked in a two-level map of the 48-bit
 * address space (a root of 1024 pointers, 32 KiB leaves mapped when an
 * arena first needs one).  A flat map of the whole space took 32 MiB of
 * BSS: mlockall() then locked 37 MB where glibc locks 2.4, and failed
 * for a user under the default 8 MiB RLIMIT_MEMLOCK (docs/design.md).
 */
#define ADDRESS_BITS 48
#define MAP_WINDOW_BITS 22
#define MAP_WINDOW ((uintptr_t)1 << MAP_WINDOW_BITS)
#define MAP_WORDS ((size_t)1 << (MAP_WINDOW_BITS - 6))
#define MAP_LEAF_BITS 18
#define MAP_ROOT_SIZE ((size_t)1 << (ADDRESS_BITS - ARENA_BITS - MAP_LEAF_BITS))

/*
 * The immediate purge policy (purge.c; the default is deferred, by time).
 * Empty pools stay resident ("dirty") for reuse until a heap holds more
 * than PURGE_TRIGGER_POOLS of them; it then gives back the dirty pools of
 * its emptiest arenas until PURGE_KEEP_POOLS remain.  The reserve spares a
 * free/allocate loop page faults (~1.3 us per 4 KiB page here), the
 * trigger bounds what a heap keeps to 1 MiB.
 */
#define PURGE_TRIGGER_POOLS 256
#define PURGE_KEEP_POOLS 64

/*
 * Blocks a heap keeps per class in its block cache; a free past them
 * goes to its pool.  The cache lets a free and a malloc meet
 * without touching pool state (churn); each cached block may pin a page,
 * so the limit also bounds what a heap holds back from the purge
 * (64 blocks per class in use: at most 256 KiB of pages per class).
 */
#ifndef CACHE_LIMIT
#define CACHE_LIMIT 64
#endif

_Static_assert(ALIGNMENT == 16, "blocks are 16-byte aligned");
_Static_assert(OM_SMALL_THRESHOLD % ALIGNMENT == 0,
               "the threshold is a multiple of the alignment");
_Static_assert(NCLASSES <= 255, "a size class fits in a byte");
_Static_assert(OM_SMALL_THRESHOLD == 512, "medium classes start at 512");
_Static_assert(OM_MEDIUM_MAX == 16384 || OM_MEDIUM_MAX == 32768 ||
               OM_MEDIUM_MAX == 65536, "the medium limit is 16, 32 or 64 KiB");
_Static_assert(POOL_SIZE >= 4096, "a pool is at least one 4 KiB page");
_Static_assert(POOLS_PER_ARENA == 256, "bitmaps below hold 256 pools");
_Static_assert(PURGE_KEEP_POOLS < PURGE_TRIGGER_POOLS,
               "the reserve is below the trigger");
_Static_assert(MAP_LEAF_BITS > 6 && MAP_WINDOW_BITS > 6,
               "the maps have whole words");
_Static_assert(ADDRESS_BITS - ARENA_BITS > MAP_LEAF_BITS,
               "the outside map has a root");

#endif /* OM_CONFIG_H */
