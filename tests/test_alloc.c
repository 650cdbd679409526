/*
 * test_alloc.c - the small-object allocator, single-threaded: size
 * classes, alignment, realloc, calloc, foreign pointers, arena release,
 * aligned allocation, errno, the stats report, the arena map's window and
 * what lies outside it, and a random sequence of a million operations
 * checked against a shadow model.
 */
#include <malloc.h>

#include "testutil.h"
#include "arena.h"
#include "heap.h"
#include "os.h"
#include "purge.h"

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* Every size 0..4096: 16-byte aligned, usable size as the class says. */
static void test_size_classes(void **state)
{
    size_t before = blocks_in_use();

    for (size_t size = 0; size <= 4096; size++) {
        void *p = om_malloc(size), *q = om_obj_malloc(size);
        size_t usable = om_usable_size(p);

        assert_non_null(p);
        assert_non_null(q);
        assert_int_equal((uintptr_t)p % 16, 0);
        assert_int_equal((uintptr_t)q % 16, 0);
        if (size >= 1 && size <= 512) {
            assert_int_equal(usable, round16(size));
            assert_int_equal(blocks_in_use(), before + 2);
        } else {
            assert_true(usable >= size);
            assert_int_equal(blocks_in_use(), before);
        }
        memset(p, 0xab, size);
        memset(q, 0xcd, size);
        om_free(p);
        om_obj_free(q);
    }
    assert_heap_clean(before);
}

static void fill(unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i);
}

static void assert_filled(const unsigned char *p, size_t n,
                          unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i], (unsigned char)(seed + i));
}

/* realloc within a class, across classes, to and from large blocks. */
static void test_realloc_rules(void **state)
{
    size_t before = blocks_in_use();
    unsigned char *p = om_malloc(100), *q;

    fill(p, 100, 7);
    q = om_realloc(p, 110);             /* same class of 112: in place */
    assert_ptr_equal(q, p);
    q = om_realloc(p, 90);              /* 96 > 3/4 of 112: in place */
    assert_ptr_equal(q, p);
    q = om_realloc(p, 300);             /* grows: moves, keeps the bytes */
    assert_ptr_not_equal(q, p);
    assert_filled(q, 90, 7);
    assert_int_equal(om_usable_size(q), 304);
    p = om_realloc(q, 40);              /* shrinks by more than 1/4: moves */
    assert_filled(p, 40, 7);
    assert_int_equal(om_usable_size(p), 48);
    q = om_realloc(p, 5000);            /* to a large block */
    assert_filled(q, 40, 7);
    assert_int_equal(blocks_in_use(), before);
    fill(q, 5000, 3);
    p = om_realloc(q, 200);             /* a large block stays with RAW */
    assert_filled(p, 200, 3);
    assert_int_equal(blocks_in_use(), before);
    om_free(p);
    p = om_realloc(NULL, 64);           /* realloc(NULL) is malloc */
    assert_int_equal(om_usable_size(p), 64);
    q = om_realloc(p, 0);               /* realloc(p, 0) keeps a block */
    assert_non_null(q);
    om_free(q);
    assert_heap_clean(before);
}

/* nelem * elsize overflowing gives NULL and ENOMEM in every domain. */
static void test_calloc_rules(void **state)
{
    size_t before = blocks_in_use();
    unsigned char *p;

    errno = 0;
    assert_null(om_calloc(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(om_obj_calloc((size_t)1 << 33, (size_t)1 << 33));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(om_raw_calloc(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(om_malloc(SIZE_MAX - 8));
    assert_int_equal(errno, ENOMEM);
    for (int round = 0; round < 3; round++) {
        p = om_malloc(200);
        memset(p, 0xff, 200);
        om_free(p);
        p = om_calloc(20, 10);          /* likely the same block again */
        for (int i = 0; i < 200; i++)
            assert_int_equal(p[i], 0);
        om_free(p);
    }
    p = om_calloc(0, 0);
    assert_non_null(p);
    om_free(p);
    assert_heap_clean(before);
}

/* Blocks objmem did not allocate go to the RAW domain. */
static void test_foreign_pointers(void **state)
{
    size_t before = blocks_in_use();
    char *p = malloc(100), *q;

    assert_true(om_usable_size(p) >= 100);
    strcpy(p, "foreign");
    q = om_realloc(p, 50);              /* stays with RAW, bytes kept */
    assert_string_equal(q, "foreign");
    assert_int_equal(blocks_in_use(), before);
    om_free(q);
    om_obj_free(malloc(10));
    om_free(NULL);
    om_obj_free(NULL);
    assert_heap_clean(before);
}

/* Immediate policy: arenas that empty are unmapped at once; om_collect
 * gives back the last one. */
static void test_arena_release(void **state)
{
    enum { N = 100000 };
    size_t before = blocks_in_use();
    void **v = calloc(N, sizeof(*v));
    struct om_stats s0, s1, s2;

    assert_int_equal(om_set_purge_delay(0), 0);
    om_collect(true);
    assert_int_equal(om_stats_get(&s0), 0);
    for (int i = 0; i < N; i++)
        v[i] = om_malloc(64);           /* 6.4 MB: at least 6 arenas */
    assert_int_equal(om_stats_get(&s1), 0);
    assert_true(s1.arenas_current >= s0.arenas_current + 6);
    for (int i = 0; i < N; i++)
        om_free(v[i]);
    assert_int_equal(om_stats_get(&s2), 0);
    /* Kept: one empty arena, and the arenas of the pools that the block
     * cache pins (at most 64 blocks of the class: 64 pools, 2 arenas). */
    assert_true(s2.arenas_current <= s0.arenas_current + 3);
    /* ... and every other arena went back to the OS whole. */
    assert_int_equal(s2.arenas_total, s1.arenas_total);
    assert_int_equal(s2.bytes_unmapped_total - s0.bytes_unmapped_total,
                     (s1.arenas_current - s2.arenas_current) * 1048576);
    om_collect(true);
    assert_int_equal(om_stats_get(&s2), 0);
    assert_int_equal(s2.arenas_current, s0.arenas_current);
    assert_int_equal(s2.pools_free_dirty, 0);
    free(v);
    assert_int_equal(om_set_purge_delay(250), 0);
    assert_heap_clean(before);
}

/* Deferred policy: emptied arenas keep their pages for the delay, then the
 * purger gives the pages back with no call; om_collect unmaps them. */
static void test_arena_release_deferred(void **state)
{
    enum { N = 100000 };
    size_t before = blocks_in_use();
    void **v = calloc(N, sizeof(*v));
    struct om_stats s0, s1, s2;

    assert_int_equal(om_set_purge_delay(100), 0);
    om_collect(true);
    assert_int_equal(om_stats_get(&s0), 0);
    for (int i = 0; i < N; i++)
        v[i] = om_malloc(64);
    for (int i = 0; i < N; i++)
        om_free(v[i]);
    assert_int_equal(om_stats_get(&s1), 0);
    assert_true(s1.pools_free_dirty >= 1500);   /* kept for reuse */
    /* The purger counts a run's bytes after its madvise, once its pools
     * are no longer DIRTY: wait for both.  (It may start before the frees
     * end on a loaded machine, hence s0, not s1.) */
    for (int waited = 0; waited < 3000; waited += 20) {
        usleep(20000);
        assert_int_equal(om_stats_get(&s2), 0);
        if (s2.pools_free_dirty == 0 &&
            s2.bytes_purged_total >= s0.bytes_purged_total + 1500 * 4096)
            break;
    }
    assert_int_equal(s2.pools_free_dirty, 0);
    assert_true(s2.bytes_purged_total >= s0.bytes_purged_total +
                                             1500 * 4096);
    assert_true(s2.bytes_resident <= s0.bytes_resident + 2 * 1048576);
    om_collect(true);
    assert_int_equal(om_stats_get(&s2), 0);
    assert_int_equal(s2.arenas_current, s0.arenas_current);
    free(v);
    assert_int_equal(om_set_purge_delay(250), 0);
    assert_heap_clean(before);
}

/* A switch to the immediate policy after frees under the never or the
 * deferred one: om_check passes at once (a heap keeps to the policy it
 * last applied), and at its next pool release the heap conforms: at most
 * one empty arena, at most PURGE_TRIGGER_POOLS dirty pools (heap.4;
 * fuzz/corpus/alloc/crash-purge-policy-switch). */
static void test_purge_policy_switch(void **state)
{
    enum { N = 5000 };
    size_t before = blocks_in_use();
    long delay = om_get_purge_delay();
    static void *v[N];
    struct om_stats s;

    for (int round = 0; round < 2; round++) {
        om_collect(true);
        assert_int_equal(om_set_purge_delay(round ? 100000 : -1), 0);
        for (int i = 0; i < N; i++)
            v[i] = om_malloc(512);      /* 8 a pool: 625 pools */
        for (int i = 0; i < N; i++)
            om_free(v[i]);
        assert_int_equal(om_stats_get(&s), 0);
        assert_true(s.pools_free_dirty > PURGE_TRIGGER_POOLS);
        assert_int_equal(om_set_purge_delay(0), 0);
        assert_int_equal(om_check(), 0);
        /* The class's cache (full: it took the first frees), then the
         * class's first pool and one more, which empties: the cache
         * takes the first CACHE_LIMIT frees back, the pool the rest. */
        for (int i = 0; i < CACHE_LIMIT + 16; i++)
            v[i] = om_malloc(512);
        for (int i = 0; i < CACHE_LIMIT + 16; i++)
            om_free(v[i]);
        assert_int_equal(omi_heap_tls->policy, PURGE_IMMEDIATE);
        assert_true(omi_heap_tls->ndirty <= PURGE_TRIGGER_POOLS);
        assert_true(omi_heap_tls->nempty <= 1);
        assert_int_equal(om_check(), 0);
    }
    assert_int_equal(om_set_purge_delay(delay), 0);
    om_collect(true);
    assert_heap_clean(before);
}

/* The never policy gives nothing back by itself: arenas emptied by frees
 * stay mapped with their pages (no page fault when they fill again; they
 * were unmapped beyond one until 2026-11-23), and om_collect(true) gives
 * them back. */
static void test_purge_never_keeps_arenas(void **state)
{
    enum { N = 4 * 2048 };              /* 512 bytes: 4 arenas' worth */
    size_t before = blocks_in_use();
    long delay = om_get_purge_delay();
    static void *v[N];
    struct om_stats s0, s1, s2;

    om_collect(true);
    assert_int_equal(om_set_purge_delay(-1), 0);
    assert_int_equal(om_stats_get(&s0), 0);
    for (int i = 0; i < N; i++)
        v[i] = om_malloc(512);
    assert_int_equal(om_stats_get(&s1), 0);
    assert_true(s1.arenas_current >= s0.arenas_current + 3);
    for (int i = 0; i < N; i++)
        om_free(v[i]);
    assert_int_equal(om_stats_get(&s2), 0);
    assert_int_equal(s2.arenas_current, s1.arenas_current);
    assert_true(s2.pools_free_dirty >= 2 * USABLE_POOLS);
    assert_true(omi_heap_tls->nempty >= 2);
    assert_int_equal(om_check(), 0);
    om_collect(true);
    assert_int_equal(om_stats_get(&s2), 0);
    assert_true(s2.arenas_current <= s0.arenas_current);
    assert_int_equal(omi_heap_tls->nempty, 0);
    assert_int_equal(om_set_purge_delay(delay), 0);
    assert_heap_clean(before);
}

/* Alignments up to the threshold come from the pools, larger from RAW. */
static void test_aligned_alloc(void **state)
{
    size_t before = blocks_in_use();

    for (size_t align = 1; align <= 8192; align *= 2) {
        for (size_t size = 0; size <= 1100; size += 37) {
            void *p = om_aligned_alloc(align, size);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % align, 0);
            assert_true(om_usable_size(p) >= size);
            memset(p, 1, size);
            om_free(p);
        }
    }
    errno = 0;
    assert_null(om_aligned_alloc(24, 10));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(om_aligned_alloc(0, 10));
    assert_int_equal(errno, EINVAL);
    /* Above PTRDIFF_MAX: ENOMEM, as the RAW domain's rule, at every
     * alignment; not the system allocator's verdict (under ASan an
     * abort; fuzz/corpus/alloc/crash-aligned-alloc-huge). */
    for (size_t align = 1; align <= 8192; align *= 2) {
        errno = 0;
        assert_null(om_aligned_alloc(align, SIZE_MAX - 100));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(om_aligned_alloc(align, (size_t)PTRDIFF_MAX + 1));
        assert_int_equal(errno, ENOMEM);
    }
    assert_heap_clean(before);
}

/* errno is left alone by calls that succeed, also those that map. */
static void test_errno_kept(void **state)
{
    size_t before = blocks_in_use();
    void *v[20000];

    errno = 4321;
    for (int i = 0; i < 20000; i++)
        v[i] = om_malloc(16 + (size_t)(i % 400));
    for (int i = 0; i < 20000; i++)
        om_free(v[i]);
    om_collect(true);
    assert_int_equal(errno, 4321);
    assert_heap_clean(before);
}

/* The sys._debugmallocstats report: sections present, totals balance. */
static void test_stats_report(void **state)
{
    size_t before = blocks_in_use(), len = 0, total, arenas;
    char *text = NULL, *line;
    FILE *f = open_memstream(&text, &len);
    void *v[1000];

    for (int i = 0; i < 1000; i++)
        v[i] = om_malloc((size_t)(i % 512) + 1);
    om_debug_malloc_stats(f);
    fclose(f);
    assert_non_null(strstr(text, "Small block threshold = 512, in 32 size "
                                 "classes; medium up to 32768, in 48 "
                                 "more."));
    assert_non_null(strstr(text, "class   size   num pools   blocks in use"));
    assert_null(strstr(text, "do not balance"));
    line = strstr(text, "# arenas allocated current");
    assert_non_null(line);
    arenas = strtoul(strchr(line, '=') + 1, NULL, 10);
    line = strstr(text, "\nTotal");
    assert_non_null(line);
    {
        char digits[32];
        size_t j = 0;
        for (char *c = strchr(line, '=') + 1; *c && *c != '\n'; c++)
            if (*c >= '0' && *c <= '9')
                digits[j++] = *c;
        digits[j] = '\0';
        total = strtoul(digits, NULL, 10);
    }
    assert_int_equal(total, arenas * 1048576);
    free(text);
    for (int i = 0; i < 1000; i++)
        om_free(v[i]);
    assert_heap_clean(before);
}

/* OBJMEM_MALLOC_STATS=1: the report on stderr at exit (a re-executed
 * child of this test, which allocates and exits). */
static void test_stats_at_exit(void **state)
{
    char cmd[512], line[256];
    bool seen_header = false, seen_total = false;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "OBJMEM_MALLOC_STATS=1 /proc/%d/exe "
             "--alloc-and-exit 2>&1 >/dev/null", (int)getpid());
    f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        seen_header |= strstr(line, "Small block threshold = 512") != NULL;
        seen_total |= strncmp(line, "Total", 5) == 0;
    }
    assert_int_equal(pclose(f), 0);
    assert_true(seen_header);
    assert_true(seen_total);
    assert_int_equal(om_check(), 0);
}

static void free_interior(void)
{
    char *p = om_malloc(64);
    om_free(p + 8);
}

static void free_misaligned_interior(void)
{
    char *p = om_malloc(64);
    om_free(p + 3);
}

static void free_twice(void)
{
    void *p = om_malloc(32), *q = om_malloc(32);
    om_free(q);
    om_free(p);
    om_free(p);
}

static void free_twice_full_pool(void)
{
    void *v[300];
    for (int i = 0; i < 300; i++)
        v[i] = om_malloc(16);           /* fills a pool of 256: FULL */
    om_free(v[10]);
    om_free(v[10]);
}

static void free_in_free_pool(void)
{
    char *p = om_malloc(48), *q;
    om_free(p);
    q = om_malloc(48);
    om_free(q);
    om_collect(true);                   /* the pool goes back */
    p = om_malloc(64);                  /* an arena exists */
    /* Its header's second page: never a pool's, whatever else the
     * process allocated before. */
    om_free((char *)((uintptr_t)p & ~(uintptr_t)((1 << 20) - 1)) + 4096);
}

/* Release builds too: interior pointers and double frees that the fast
 * path can see are reported, not pushed on a free list. */
static void test_bad_frees_are_fatal(void **state)
{
    const char *bad = "not an allocated block";

    assert_dies_saying(free_interior, bad);
    assert_dies_saying(free_misaligned_interior, bad);
    assert_dies_saying(free_twice, "double free");
    assert_dies_saying(free_twice_full_pool, "double free");
    assert_dies_saying(free_in_free_pool, bad);
    assert_int_equal(om_check(), 0);
}

#if defined(__SANITIZE_ADDRESS__)
/* A block freed into a USED pool, then read. */
static void use_after_free(void)
{
    char *keep = om_malloc(64), *p = om_malloc(64);
    p[0] = 1;
    om_free(p);
    ((volatile char *)p)[8];
    om_free(keep);
}

/* A block freed into a FULL pool (it goes to the heap's cache), then
 * written. */
static void use_after_free_cached(void)
{
    void *v[300];
    for (int i = 0; i < 300; i++)
        v[i] = om_malloc(16);           /* fills a pool of 256: FULL */
    om_free(v[3]);
    ((volatile char *)v[3])[4] = 1;
}

/* ASan builds: a use after free inside a pool is seen (tool.h). */
static void test_asan_sees_pool_use_after_free(void **state)
{
    assert_dies_saying(use_after_free, "use-after-poison");
    assert_dies_saying(use_after_free_cached, "use-after-poison");
    assert_int_equal(om_check(), 0);
}
#endif

struct shadow {
    unsigned char *p;
    size_t size;
    unsigned char seed;
};

static size_t random_size(uint64_t *r)
{
    uint64_t x = rnd_next(r);
    if (x % 16 == 0)
        return (size_t)(x >> 20) % 5000;    /* sometimes large or 0 */
    return 1 + (size_t)(x >> 20) % 512;
}

/* One random step: allocate, free or realloc, checking contents. */
static void random_step(struct shadow *live, size_t *n, uint64_t *r)
{
    uint64_t x = rnd_next(r);
    size_t i = *n ? (size_t)(x >> 32) % *n : 0;
    unsigned op = (unsigned)(x % 3);

    if (*n == 0 || (op == 0 && *n < 20000)) {
        struct shadow *s = &live[(*n)++];
        s->size = random_size(r);
        s->seed = (unsigned char)x;
        s->p = (x & 64) ? om_malloc(s->size) : om_calloc(1, s->size);
        assert_non_null(s->p);
        fill(s->p, s->size, s->seed);
    } else if (op == 1) {
        assert_filled(live[i].p, live[i].size, live[i].seed);
        om_free(live[i].p);
        live[i] = live[--(*n)];
    } else {
        size_t size = random_size(r);
        size_t keep = size < live[i].size ? size : live[i].size;
        live[i].p = om_realloc(live[i].p, size);
        assert_non_null(live[i].p);
        assert_filled(live[i].p, keep, live[i].seed);
        live[i].size = size;
        fill(live[i].p, size, live[i].seed);
    }
}

/* An arena outside the map's window (4 TiB around the first arena) is
 * marked in the outside map, whose leaf is mapped when the first such
 * arena needs it; when that mapping fails, so does the arena, and nothing
 * is left marked.  (Skipped where mmap does not take address hints:
 * ThreadSanitizer keeps the program's mappings in its own ranges.) */
static void test_arena_outside_window(void **state)
{
    size_t before = blocks_in_use(), map_before, bits_before;
    void *p = om_malloc(64);
    struct arena *home = omi_arena_of(p), *far;
    uintptr_t base, slot;
    char *at;

    omi_arena_lock();
    base = omi_arena_map_window();
    map_before = omi_arena_map_bytes();
    bits_before = omi_arena_map_bits();
    omi_arena_unlock();
    assert_non_null(home);
    assert_int_equal(base % 64, 0);
    assert_true(((uintptr_t)home >> ARENA_BITS) - base < MAP_WINDOW);
    assert_int_equal(map_before, MAP_WORDS * 8 + MAP_ROOT_SIZE * 8);
    /* A slot below the window, or above it when the window is low. */
    slot = base > MAP_WINDOW + 8192 ? base - MAP_WINDOW / 2 - 777
                                    : base + MAP_WINDOW + 777;
    at = (char *)(slot << ARENA_BITS);
    assert_false(omi_arena_owns(at));

    omi_os_debug_next_at(at);
    far = omi_arena_new(home->heap);
    assert_non_null(far);
    if ((char *)far != at) {
        omi_arena_release(far);
        om_free(p);
        skip();
    }
    assert_int_equal(omi_arena_map_bytes(), map_before + 32768);
    omi_arena_lock();
    assert_int_equal(omi_arena_map_bits(), bits_before + 1);
    omi_arena_unlock();
    assert_true(omi_arena_owns(at + 12345));
    assert_ptr_equal(omi_arena_of(at + ARENA_SIZE - 1), far);
    assert_false(omi_arena_owns(at + ARENA_SIZE));
    assert_false(omi_arena_owns(at - 1));
    assert_ptr_equal(omi_arena_of(p), home);    /* the window's still */
    omi_arena_release(far);
    assert_false(omi_arena_owns(at + 12345));
    assert_int_equal(omi_arena_map_bytes(), map_before + 32768);  /* stays */

    /* Another leaf's slot: the arena's own mapping works, its leaf's
     * fails, and the arena goes with it. */
    if (slot < base)
        at -= (size_t)1 << (MAP_LEAF_BITS + ARENA_BITS);
    else
        at += (size_t)1 << (MAP_LEAF_BITS + ARENA_BITS);
    assert_int_equal(om_debug_fail_maps(2, false), 0);
    omi_os_debug_next_at(at);
    assert_null(omi_arena_new(home->heap));
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_false(omi_arena_owns(at));
    assert_int_equal(omi_arena_map_bytes(), map_before + 32768);
    omi_arena_lock();
    assert_int_equal(omi_arena_map_bits(), bits_before);
    omi_arena_unlock();
    om_free(p);
    assert_heap_clean(before);
}

/* 1M random operations against a shadow model, om_check every 10k. */
static void test_random_shadow(void **state)
{
    size_t before = blocks_in_use(), n = 0;
    struct shadow *live = calloc(20001, sizeof(*live));
    uint64_t r = 42;

    for (long step = 1; step <= 1000000; step++) {
        random_step(live, &n, &r);
        if (step % 10000 == 0)
            assert_int_equal(om_check(), 0);
    }
    while (n > 0) {
        assert_filled(live[n - 1].p, live[n - 1].size, live[n - 1].seed);
        om_free(live[--n].p);
    }
    free(live);
    assert_heap_clean(before);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--alloc-and-exit") == 0) {
        void *p = om_malloc(100);       /* left for the report to show */
        return p ? 0 : 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_classes),
        cmocka_unit_test(test_realloc_rules),
        cmocka_unit_test(test_calloc_rules),
        cmocka_unit_test(test_foreign_pointers),
        cmocka_unit_test(test_arena_release),
        cmocka_unit_test(test_arena_release_deferred),
        cmocka_unit_test(test_purge_policy_switch),
        cmocka_unit_test(test_purge_never_keeps_arenas),
        cmocka_unit_test(test_aligned_alloc),
        cmocka_unit_test(test_errno_kept),
        cmocka_unit_test(test_stats_report),
        cmocka_unit_test(test_stats_at_exit),
        cmocka_unit_test(test_bad_frees_are_fatal),
        cmocka_unit_test(test_arena_outside_window),
#if defined(__SANITIZE_ADDRESS__)
        cmocka_unit_test(test_asan_sees_pool_use_after_free),
#endif
        cmocka_unit_test(test_random_shadow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
