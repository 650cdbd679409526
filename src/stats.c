/*
 * stats.c - X (cross-cutting): om_stats_get and om_debug_malloc_stats, the
 * report of CPython's sys._debugmallocstats() for objmem's pools; and
 * omi_stats_get_classes, om_stats_get's figures with the free blocks of
 * each class, for the shim's mallinfo2 and malloc_info (preload.c).
 *
 * All walk every arena under the arena lock into a snapshot on the stack
 * (nothing allocated through objmem), drop the lock, then report.  The
 * report's arena figures balance to the byte:
 *
 *   allocated blocks + available blocks + unused pools + pool headers
 *     + quantization + arena alignment + orphaned arenas
 *     == arenas * ARENA_SIZE
 *
 * where "pool headers" are the arena header pages that hold the pool
 * descriptors (objmem keeps no header inside a pool), arena alignment
 * is 0 (arenas are mapped aligned), and "orphaned arenas" are the pools
 * of the arenas of heaps orphaned by fork() (a fork child's): their
 * threads may have been mid-update when the fork came (a span's pools
 * taken, its tails not marked yet: a child of stress_malloc counted 21
 * pools twice, one report in 30), so their descriptors are not read for
 * the classes and count whole; their blocks are never handed out again.
 *
 * OBJMEM_MALLOC_STATS=1 in the environment prints the report on stderr
 * at exit, as CPython's PYTHONMALLOCSTATS does.
 *
 * Invariants:
 *   1. The balance above holds for every snapshot.
 *   2. Nothing here allocates while holding the lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "heap.h"
#include "large.h"
#include "stats.h"

struct class_row {
    size_t pools;               /* pools holding the class (a span's
                                   pools all count) */
    size_t used;                /* blocks handed out */
    size_t avail;               /* blocks free in those pools, including
                                   those in the heaps' block caches */
};

struct snapshot {
    struct class_row rows[NCLASSES];
    struct omi_arena_totals arenas;
    size_t dirty;               /* free pools, resident */
    size_t clean;               /* free pools, not resident */
    size_t quantization;        /* bytes at the end of in-use pools */
    size_t orphaned;            /* arenas of heaps orphaned by fork() */
    size_t orphaned_clean;      /* their pools not resident */
    size_t heaps[HEAP_ORPHANED + 1];    /* heaps by state */
    struct omi_large_totals large;
};

/* An arena of a heap orphaned by fork(): only its pools' residency is
 * read (a free pool's state is set last, so it is one of the free states
 * or not free). */
static void count_orphaned(const struct arena *a, struct snapshot *s)
{
    s->orphaned++;
    for (size_t i = META_POOLS; i < POOLS_PER_ARENA; i++) {
        unsigned state = omi_pool_state(&a->pools[i]);

        s->orphaned_clean += state == POOL_CLEAN || state == POOL_PURGING;
    }
}

static void count_arena(const struct arena *a, struct snapshot *s)
{
    if (a->heap && atomic_load(&a->heap->state) == HEAP_ORPHANED) {
        count_orphaned(a, s);
        return;
    }
    for (size_t i = META_POOLS; i < POOLS_PER_ARENA; i++) {
        const struct pool *pool = &a->pools[i];
        struct class_row *row = &s->rows[pool->sc];

        unsigned state = omi_pool_state(pool);

        if (state == POOL_CLEAN || state == POOL_PURGING) {
            s->clean++;
        } else if (state == POOL_DIRTY) {
            s->dirty++;
        } else if (state != POOL_TAIL) {        /* the head counts all */
            size_t bytes = omi_class_pages(pool->sc) * POOL_SIZE;
            row->pools += omi_class_pages(pool->sc);
            row->used += pool->used;
            row->avail += omi_pool_capacity(pool) - pool->used;
            s->quantization += bytes - omi_pool_capacity(pool) *
                                       omi_pool_block_size(pool);
        }
    }
}

static void take_snapshot(struct snapshot *s)
{
    memset(s, 0, sizeof(*s));
    omi_arena_lock();
    for (const struct arena *a = omi_arena_first(); a; a = a->all_next)
        count_arena(a, s);
    omi_arena_totals(&s->arenas);
    omi_arena_unlock();
    omi_large_totals(&s->large);
    for (struct heap *h = omi_heap_first(); h; h = omi_heap_next(h)) {
        s->heaps[atomic_load(&h->state)]++;
        if (atomic_load(&h->state) == HEAP_ORPHANED)
            continue;
        for (unsigned sc = 0; sc < NSMALL; sc++) {
            s->rows[sc].used -= h->cache[sc].count;
            s->rows[sc].avail += h->cache[sc].count;
        }
    }
}

/* om_stats_get's figures from snapshot s. */
static void fill_stats(const struct snapshot *s, struct om_stats *out)
{
    size_t nheaps;

    memset(out, 0, sizeof(*out));
    for (unsigned sc = 0; sc < NCLASSES; sc++) {
        out->blocks_in_use += s->rows[sc].used;
        out->bytes_in_use += s->rows[sc].used * omi_pool_class_size(sc);
        out->pools_in_use += s->rows[sc].pools;
    }
    nheaps = s->heaps[HEAP_ACTIVE] + s->heaps[HEAP_ABANDONED] +
             s->heaps[HEAP_CLAIMED] + s->heaps[HEAP_ORPHANED];
    out->bytes_mapped = s->arenas.current * ARENA_SIZE +
                        nheaps * omi_heap_struct_bytes() + s->large.bytes +
                        s->large.cached_bytes + s->large.table_bytes;
    out->bytes_resident = out->bytes_mapped -
                          (s->clean + s->orphaned_clean) * POOL_SIZE;
    out->large_blocks = s->large.blocks;
    out->large_bytes = s->large.bytes;
    out->large_cached_bytes = s->large.cached_bytes;
    out->large_maps_total = s->large.maps_total;
    out->raw_blocks = omi_alloc_raw_blocks() > 0 ?
                      (size_t)omi_alloc_raw_blocks() : 0;
    out->pools_free_dirty = s->dirty;
    out->pools_free_clean = s->clean;
    out->arenas_current = s->arenas.current;
    out->arenas_highwater = s->arenas.highwater;
    out->arenas_total = s->arenas.total;
    out->heaps_active = s->heaps[HEAP_ACTIVE] + s->heaps[HEAP_CLAIMED];
    out->heaps_abandoned = s->heaps[HEAP_ABANDONED];
    out->bytes_purged_total = s->arenas.purged_bytes;
    out->bytes_unmapped_total = s->arenas.unmapped_bytes;
    out->pools_per_arena = USABLE_POOLS;
}

int om_stats_get(struct om_stats *out)
{
    struct snapshot s;

    if (!out)
        return -EINVAL;
    take_snapshot(&s);
    fill_stats(&s, out);
    return 0;
}

void omi_stats_get_classes(struct om_stats *out, size_t *free_blocks)
{
    struct snapshot s;

    take_snapshot(&s);
    fill_stats(&s, out);
    for (unsigned sc = 0; sc < NCLASSES; sc++)
        free_blocks[sc] = s.rows[sc].avail;
}

/* ---- The report ---- */

static void (*print_extra)(FILE *out);

void omi_stats_set_extra(void (*print)(FILE *out))
{
    print_extra = print;
}

/* v with thousands separators, right-aligned in 21 columns. */
void omi_stats_print_value(FILE *out, uint64_t v)
{
    char digits[32], text[40];
    int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
    int j = 0;

    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            text[j++] = ',';
        text[j++] = digits[i];
    }
    text[j] = '\0';
    fprintf(out, "%21s\n", text);
}

/* CPython's printone: the label padded to 35 columns, '=', the value. */
static void print_one(FILE *out, const char *label, uint64_t v)
{
    fprintf(out, "%-35s=", label);
    omi_stats_print_value(out, v);
}

static void print_classes(FILE *out, const struct snapshot *s)
{
    fprintf(out, "Small block threshold = %zu, in %d size classes; "
            "medium up to %zu, in %d more.\n\n", SMALL_THRESHOLD, NSMALL,
            MEDIUM_MAX, NMEDIUM);
    fprintf(out, "class   size   num pools   blocks in use  avail blocks\n"
                 "-----   ----   ---------   -------------  ------------\n");
    for (unsigned sc = 0; sc < NCLASSES; sc++) {
        const struct class_row *r = &s->rows[sc];
        if (r->pools == 0)
            continue;
        fprintf(out, "%5u %6zu %11zu %15zu %13zu\n", sc,
                omi_pool_class_size(sc), r->pools, r->used, r->avail);
    }
    fputc('\n', out);
}

static void print_arenas(FILE *out, const struct snapshot *s)
{
    size_t used = 0, avail = 0, unused = s->dirty + s->clean;
    size_t n = s->arenas.current, headers, total, orphaned;
    char label[64];

    for (unsigned sc = 0; sc < NCLASSES; sc++) {
        used += s->rows[sc].used * omi_pool_class_size(sc);
        avail += s->rows[sc].avail * omi_pool_class_size(sc);
    }
    headers = n * META_POOLS * POOL_SIZE;
    orphaned = s->orphaned * USABLE_POOLS * POOL_SIZE;
    print_one(out, "# arenas allocated total", s->arenas.total);
    print_one(out, "# arenas reclaimed", s->arenas.total - n);
    print_one(out, "# arenas highwater mark", s->arenas.highwater);
    print_one(out, "# arenas allocated current", n);
    snprintf(label, sizeof(label), "%zu arenas * %zu bytes/arena", n,
             ARENA_SIZE);
    print_one(out, label, n * ARENA_SIZE);
    fputc('\n', out);
    print_one(out, "# bytes in allocated blocks", used);
    print_one(out, "# bytes in available blocks", avail);
    snprintf(label, sizeof(label), "%zu unused pools * %zu bytes", unused,
             POOL_SIZE);
    print_one(out, label, unused * POOL_SIZE);
    print_one(out, "# bytes lost to pool headers", headers);
    print_one(out, "# bytes lost to quantization", s->quantization);
    print_one(out, "# bytes lost to arena alignment", 0);
    if (s->orphaned)
        print_one(out, "# bytes in arenas orphaned by fork", orphaned);
    total = used + avail + unused * POOL_SIZE + headers + s->quantization +
            orphaned;
    print_one(out, "Total", total);
    if (total != n * ARENA_SIZE)
        fprintf(out, "*** totals do not balance: %zu != %zu\n", total,
                n * ARENA_SIZE);
    fputc('\n', out);
}

static void print_returned(FILE *out, const struct snapshot *s)
{
    fprintf(out, "memory given back to the OS\n");
    print_one(out, "# unused pools resident", s->dirty * POOL_SIZE);
    print_one(out, "# unused pools given back", s->clean * POOL_SIZE);
    print_one(out, "# bytes purged total", s->arenas.purged_bytes);
    print_one(out, "# bytes unmapped total", s->arenas.unmapped_bytes);
    fputc('\n', out);
    fprintf(out, "arena map counts\n");
    print_one(out, "# arena map bits set", s->arenas.current);
    print_one(out, "# bytes reserved for the arena map",
              omi_arena_map_bytes());
    fputc('\n', out);
}

static void print_heaps(FILE *out, const struct snapshot *s)
{
    long raw = omi_alloc_raw_blocks();

    fprintf(out, "heaps\n");
    print_one(out, "# heaps active", s->heaps[HEAP_ACTIVE] +
                                         s->heaps[HEAP_CLAIMED]);
    print_one(out, "# heaps abandoned", s->heaps[HEAP_ABANDONED]);
    print_one(out, "# heaps orphaned by fork", s->heaps[HEAP_ORPHANED]);
    print_one(out, "# blocks served by the raw domain",
              raw > 0 ? (uint64_t)raw : 0);
    fputc('\n', out);
    fprintf(out, "large blocks (above %zu bytes, mapped)\n",
            MEDIUM_MAX);
    print_one(out, "# large blocks", s->large.blocks);
    print_one(out, "# bytes in large blocks", s->large.bytes);
    print_one(out, "# bytes in cached mappings", s->large.cached_bytes);
    print_one(out, "# large mappings made total", s->large.maps_total);
}

void om_debug_malloc_stats(FILE *out)
{
    struct snapshot s;

    if (!out)
        return;
    take_snapshot(&s);
    print_classes(out, &s);
    print_arenas(out, &s);
    print_returned(out, &s);
    print_heaps(out, &s);
    if (print_extra)
        print_extra(out);
    fflush(out);
}

/* OBJMEM_MALLOC_STATS=1 (CPython's PYTHONMALLOCSTATS): the report on
 * stderr when the program exits.  A destructor, so it runs after main and
 * the atexit handlers, never on an allocator path. */
__attribute__((destructor)) static void stats_at_exit(void)
{
    const char *env = getenv("OBJMEM_MALLOC_STATS");

    if (env && env[0] && strcmp(env, "0") != 0)
        om_debug_malloc_stats(stderr);
}
