/*
 * objmem.c - the objmem command.  Verbs:
 *
 *   objmem tour      the guided tour of the articles' experiments, run on
 *                    objmem with this machine's figures
 *   objmem stats     the sys._debugmallocstats() report of a fresh heap
 *   objmem version
 *
 * It uses only the public header, as any program would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "objmem.h"

#define POOL_BYTES 4096
#define ARENA_BYTES (1u << 20)
#define ARENA_POOLS 253         /* pools per arena: 256 pages less 3 */
#define TOUR_BLOCKS 1000000

/* ---- Helpers ---- */

static size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t rnd_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double mib(size_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static void heading(const char *title)
{
    printf("\n== %s ==\n\n", title);
}

static struct om_stats stats(void)
{
    struct om_stats s;
    om_stats_get(&s);
    return s;
}

/* ---- Step 1: size classes ---- */

static void tour_classes(void)
{
    heading("1. Size classes: 16-byte steps up to 512 bytes");
    printf("A request is rounded up to a multiple of 16; each class has "
           "its own pools.\nA pool is one 4 KiB page with no header in it "
           "(descriptors live in the\narena's first pages), so all 4096 "
           "bytes hold blocks.\n\n");
    printf("request    class  block  blocks/pool  bytes lost/pool\n");
    for (unsigned sc = 0; sc < 32; sc++) {
        unsigned size = (sc + 1) * 16;
        if (sc > 3 && sc < 30 && sc % 4 != 3)
            continue;
        printf("%3u-%-3u    %5u  %5u  %11u  %15u\n", size - 15, size, sc,
               size, POOL_BYTES / size, POOL_BYTES % size);
    }
    printf("(every class is printed by `objmem stats`; requests of 0 or "
           "over 512 bytes\ngo to the raw domain, the system allocator.)\n");
}

/* ---- Step 2: a pool and an arena filling up ---- */

static void show_fill(const char *what, size_t n, size_t base_pools)
{
    struct om_stats s = stats();
    printf("%-34s %8zu blocks  %5zu pools  %3zu arenas\n", what, n,
           s.pools_in_use - base_pools, s.arenas_current);
}

static void tour_fill(void)
{
    enum { N = 30000 };
    static void *v[N];
    size_t base = stats().pools_in_use, per_pool = POOL_BYTES / 48;
    size_t marks[] = { 1, per_pool, per_pool + 1, ARENA_POOLS * per_pool,
                       ARENA_POOLS * per_pool + 1 };
    size_t m = 0;

    heading("2. A pool and an arena filling up (48-byte blocks)");
    printf("A pool of the 48-byte class holds %zu blocks; an arena holds "
           "%d pools\n(256 pages, %d of them the arena header).\n\n",
           per_pool, ARENA_POOLS, 256 - ARENA_POOLS);
    for (size_t i = 0; i < N && m < 5; i++) {
        v[i] = om_malloc(48);
        if (i + 1 == marks[m]) {
            const char *what[] = { "first block:", "first pool full:",
                                   "one more block, a second pool:",
                                   "first arena full:",
                                   "one more block, a second arena:" };
            show_fill(what[m++], i + 1, base);
        }
    }
    for (size_t i = 0; i < ARENA_POOLS * per_pool + 1; i++)
        om_free(v[i]);
    om_collect(true);
}

/* ---- Step 3: a million blocks, 99% freed ---- */

struct survivors {
    size_t arenas;              /* distinct 1 MiB arenas holding one */
    size_t pools16k;            /* distinct 16 KiB regions holding one */
    size_t pages;               /* distinct 4 KiB pages holding one */
};

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

/* Count the distinct units of each size that the survivors pin. */
static struct survivors pinned(uintptr_t *kept, size_t n)
{
    struct survivors s = { 0, 0, 0 };
    uintptr_t last[3] = { 0, 0, 0 };
    const uintptr_t unit[3] = { ARENA_BYTES, 16384, POOL_BYTES };
    size_t *count[3] = { &s.arenas, &s.pools16k, &s.pages };

    qsort(kept, n, sizeof(*kept), cmp_ptr);
    for (size_t i = 0; i < n; i++)
        for (int u = 0; u < 3; u++)
            if (i == 0 || kept[i] / unit[u] != last[u]) {
                last[u] = kept[i] / unit[u];
                (*count[u])++;
            }
    return s;
}

static void print_rss(const char *what, size_t rss, size_t base,
                      size_t peak)
{
    printf("  %-40s RSS %8.1f MiB", what, mib(rss));
    if (peak > base && rss < peak)
        printf("   (%.0f%% of the growth back)",
               100.0 * (double)(peak - rss) / (double)(peak - base));
    printf("\n");
}

static void tour_million(void)
{
    void **v = malloc(TOUR_BLOCKS * sizeof(*v));
    uintptr_t *kept = malloc(TOUR_BLOCKS / 100 * sizeof(*kept));
    size_t base, peak, after, nkept = 0, bytes = 0;
    struct survivors pin;
    uint64_t r = 2024;

    heading("3. One million small blocks, 99% freed: does RSS go down?");
    printf("The articles' complaint: free the objects and RSS stays "
           "high.\n\n");
    memset(v, 0xff, TOUR_BLOCKS * sizeof(*v));  /* fault in the tour's own */
    memset(kept, 0xff, TOUR_BLOCKS / 100 * sizeof(*kept));     /* arrays */
    base = rss_bytes();
    print_rss("before:", base, base, 0);
    for (size_t i = 0; i < TOUR_BLOCKS; i++) {
        size_t size = 32 + (size_t)(rnd_next(&r) % 97);
        v[i] = om_malloc(size);
        memset(v[i], 0x5a, size);
        bytes += size;
    }
    peak = rss_bytes();
    printf("  allocated %d blocks of 32..128 bytes (%.1f MiB requested)\n",
           TOUR_BLOCKS, mib(bytes));
    print_rss("after allocating:", peak, base, peak);
    for (size_t i = 0; i < TOUR_BLOCKS; i++) {
        if (rnd_next(&r) % 100 == 0 && nkept < TOUR_BLOCKS / 100)
            kept[nkept++] = (uintptr_t)v[i];
        else
            om_free(v[i]);
    }
    after = rss_bytes();
    print_rss("after freeing 99%, no call:", after, base, peak);
    printf("  (free pages are kept for %ld ms in case the program allocates "
           "again,\n   then objmem's purger thread gives them back: no "
           "call needed)\n", om_get_purge_delay());
    sleep(1);
    print_rss("one second later, still no call:", rss_bytes(), base, peak);
    om_collect(true);
    after = rss_bytes();
    print_rss("after om_collect(true):", after, base, peak);

    pin = pinned(kept, nkept);
    printf("\n%zu survivors.  What each policy must keep resident for "
           "them:\n", nkept);
    printf("  pymalloc, whole 1 MiB arenas only:      %8.1f MiB "
           "(%zu arenas)\n", mib(pin.arenas * ARENA_BYTES), pin.arenas);
    printf("  pymalloc at best, 16 KiB pools:         %8.1f MiB "
           "(%zu pools)\n", mib(pin.pools16k * 16384), pin.pools16k);
    printf("  objmem, 4 KiB pools (pages):            %8.1f MiB "
           "(%zu pages)\n", mib(pin.pages * POOL_BYTES), pin.pages);
    printf("  objmem measured: RSS above the start    %8.1f MiB\n",
           mib(after > base ? after - base : 0));
    for (size_t i = 0; i < nkept; i++)
        om_free((void *)kept[i]);
    printf("\nThe survivors freed too: their pages are kept for reuse (RSS "
           "%.1f MiB);\nom_collect(true) gives them back now instead of "
           "after the delay:\n", mib(rss_bytes()));
    om_collect(true);
    print_rss("after om_collect(true):", rss_bytes(), base, peak);
    free(kept);
    free(v);
}

/* ---- Step 4: the report ---- */

static void tour_report(void)
{
    struct om_stats s = stats();

    heading("4. The heap at the end: om_debug_malloc_stats()");
    printf("bytes mapped %zu, resident %zu, in use %zu; purged so far "
           "%llu\n\n", s.bytes_mapped, s.bytes_resident, s.bytes_in_use,
           (unsigned long long)s.bytes_purged_total);
    om_debug_malloc_stats(stdout);
}

static int cmd_tour(void)
{
    printf("objmem %s: a guided tour of the small-object allocator\n",
           om_version());
    tour_classes();
    tour_fill();
    tour_million();
    tour_report();
    return om_check() == 0 ? 0 : 1;
}

static int cmd_stats(void)
{
    void *p = om_malloc(1);
    om_debug_malloc_stats(stdout);
    om_free(p);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: objmem tour | stats | version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "tour") == 0)
        return cmd_tour();
    if (strcmp(argv[1], "stats") == 0)
        return cmd_stats();
    if (strcmp(argv[1], "version") == 0) {
        printf("objmem %s\n", om_version());
        return 0;
    }
    usage(stderr);
    return 2;
}
