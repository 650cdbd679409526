/*
 * test_gp.c - the general-purpose family (om_gp_*), every size from
 * objmem: the medium class table's rules, medium spans (reuse, release,
 * cross-thread frees), large mappings (the cache, realloc by mremap,
 * calloc of a reused mapping), aligned allocation at every alignment,
 * glibc's edge cases, and foreign pointers.
 */
#include <pthread.h>

#include "testutil.h"
#include "arena.h"

static struct om_stats stats(void)
{
    struct om_stats s;
    assert_int_equal(om_stats_get(&s), 0);
    return s;
}

/* Bytes a span of `pages` pools loses at its end to blocks of size. */
static size_t span_tail(size_t pages, size_t size)
{
    return pages * POOL_SIZE % size;
}

/* The table: eight classes per doubling.  Each span has, among the page
 * counts from the fewest that hold 4 blocks (least) to twice that, the
 * fewest whose tail loses at most 1/32 of the span; failing that, the one
 * that loses the smallest share (the fewest pages on a tie). */
static void test_medium_table(void **state)
{
    size_t prev = SMALL_THRESHOLD;

    for (unsigned i = 0; i < NMEDIUM_MAX; i++) {
        const struct omi_medium_class *c = &omi_medium[i];
        size_t base = (size_t)512 << (i / 8);
        size_t span = (size_t)c->pages * POOL_SIZE;
        size_t least = (4 * (size_t)c->size + POOL_SIZE - 1) / POOL_SIZE;
        size_t want = 0, best = least;

        assert_int_equal(c->size, base + (i % 8 + 1) * base / 8);
        assert_true(c->size > prev);
        assert_int_equal(c->capacity, span / c->size);
        assert_true(c->capacity >= 4);
        for (size_t p = least; p <= 2 * least && !want; p++) {
            if (span_tail(p, c->size) * 32 <= p * POOL_SIZE)
                want = p;
            /* tail(p) / p < tail(best) / best, in integers */
            if (span_tail(p, c->size) * best < span_tail(best, c->size) * p)
                best = p;
        }
        assert_int_equal(c->pages, want ? want : best);
        assert_true(span_tail(c->pages, c->size) * 8 <= span);
        prev = c->size;
    }
    /* Every request finds the smallest class that holds it. */
    for (size_t size = SMALL_THRESHOLD + 1; size <= MEDIUM_MAX; size++) {
        unsigned sc = omi_pool_medium_class(size);
        assert_true(sc >= NSMALL && sc < NCLASSES);
        assert_true(omi_pool_class_size(sc) >= size);
        assert_true(sc == NSMALL || omi_pool_class_size(sc - 1) < size);
    }
}

static void fill(unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static bool filled(const unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return false;
    return true;
}

/* Every size from 0 to past the medium limit: aligned, usable as its class
 * says (less than 12.5% over for a medium one), contents kept. */
static void test_every_size(void **state)
{
    size_t before = blocks_in_use();
    static void *v[40000];
    size_t n = 0;

    for (size_t size = 0; size <= MEDIUM_MAX + 5000; size += size < 4096 ? 1 : 61) {
        unsigned char *p = om_gp_malloc(size);
        size_t usable = om_gp_usable_size(p);

        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        assert_true(usable >= size);
        if (size > SMALL_THRESHOLD && size <= MEDIUM_MAX)
            assert_true(usable * 8 < size * 9);
        if (size > MEDIUM_MAX)
            assert_int_equal((uintptr_t)p % 4096, 0);
        fill(p, size, (unsigned char)size);
        v[n++] = p;
    }
    n = 0;
    for (size_t size = 0; size <= MEDIUM_MAX + 5000; size += size < 4096 ? 1 : 61) {
        assert_true(filled(v[n], size, (unsigned char)size));
        om_gp_free(v[n++]);
    }
    assert_int_equal(stats().large_blocks, 0);
    assert_heap_clean(before);
}

/* Many blocks of one medium class: spans fill, empty and go back. */
static void test_medium_spans_return(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s0, s1, s2;
    static void *v[2000];

    om_collect(true);
    s0 = stats();
    for (int i = 0; i < 2000; i++) {
        v[i] = om_gp_malloc(20000);     /* class 20480: 4 in 20 pages */
        assert_non_null(v[i]);
        memset(v[i], i, 20000);
    }
    s1 = stats();
    assert_int_equal(s1.blocks_in_use, s0.blocks_in_use + 2000);
    assert_int_equal(s1.pools_in_use, s0.pools_in_use + 500 * 20);
    assert_int_equal(om_check(), 0);
    for (int i = 0; i < 2000; i += 2)   /* every other: no span empties */
        om_gp_free(v[i]);
    assert_int_equal(stats().pools_in_use, s1.pools_in_use);
    for (int i = 0; i < 1000; i++) {    /* the holes are reused */
        v[2 * i] = om_gp_malloc(18500);
        assert_non_null(v[2 * i]);
    }
    assert_int_equal(stats().pools_in_use, s1.pools_in_use);
    for (int i = 0; i < 2000; i++)
        om_gp_free(v[i]);
    om_collect(true);
    s2 = stats();
    assert_int_equal(s2.pools_in_use, s0.pools_in_use);
    assert_int_equal(s2.arenas_current, s0.arenas_current);
    assert_heap_clean(before);
}

/* Spans taken and given back at random: the arena's runs stay sound. */
static void test_medium_random(void **state)
{
    size_t before = blocks_in_use();
    static void *v[4096];
    static size_t sizes[4096];
    uint64_t seed = 42;

    for (int round = 0; round < 200000; round++) {
        unsigned i = (unsigned)(rnd_next(&seed) % 4096);
        if (v[i]) {
            assert_true(filled(v[i], sizes[i] < 64 ? sizes[i] : 64,
                               (unsigned char)i));
            om_gp_free(v[i]);
            v[i] = NULL;
        } else {
            sizes[i] = 1 + rnd_next(&seed) % MEDIUM_MAX;
            v[i] = om_gp_malloc(sizes[i]);
            assert_non_null(v[i]);
            fill(v[i], sizes[i] < 64 ? sizes[i] : 64, (unsigned char)i);
        }
        if (round % 50000 == 0)
            assert_int_equal(om_check(), 0);
    }
    for (int i = 0; i < 4096; i++)
        om_gp_free(v[i]);
    assert_heap_clean(before);
}

/* A span takes the lowest run of free pools, across the 64-pool words of
 * the arena's bitmaps: 24-pool spans (class 24576, 4 blocks) fit 10 to
 * an arena's 253 free pools, only 8 if a run could not cross a word. */
static void test_spans_cross_words(void **state)
{
    size_t before = blocks_in_use();
    const size_t pages = 24, per_arena = USABLE_POOLS / pages * 4;
    static void *v[400];
    size_t most = 0;

    if (MEDIUM_MAX < 24576)
        skip();
    assert_int_equal(omi_class_pages(omi_pool_medium_class(24576)), pages);
    om_collect(true);
    for (int i = 0; i < 400; i++) {     /* 100 spans: several new arenas */
        v[i] = om_gp_malloc(24576);
        assert_non_null(v[i]);
    }
    for (int i = 0; i < 400; i++) {
        size_t same = 0;
        for (int j = 0; j < 400; j++)
            same += ((uintptr_t)v[j] >> ARENA_BITS) ==
                    ((uintptr_t)v[i] >> ARENA_BITS);
        if (same > most)
            most = same;
    }
    assert_int_equal(most, per_arena);
    assert_int_equal(om_check(), 0);
    for (int i = 0; i < 400; i++)
        om_gp_free(v[i]);
    om_collect(true);
    assert_heap_clean(before);
}

struct handoff {
    void **blocks;
    int n;
};

static void *free_all(void *arg)
{
    struct handoff *h = arg;
    for (int i = 0; i < h->n; i++) {
        assert_true(filled(h->blocks[i], 100, (unsigned char)i));
        om_gp_free(h->blocks[i]);
    }
    return NULL;
}

/* Medium and large blocks freed by another thread go back to their
 * owner's spans (the remote list) or to the cache. */
static void test_cross_thread(void **state)
{
    size_t before = blocks_in_use();
    static void *v[3000];
    struct handoff h = { v, 3000 };
    pthread_t t;

    for (int i = 0; i < 3000; i++) {
        size_t size = i % 3 == 0 ? 700 : i % 3 == 1 ? 9000 : 100000;
        v[i] = om_gp_malloc(size);
        assert_non_null(v[i]);
        fill(v[i], 100, (unsigned char)i);
    }
    assert_int_equal(pthread_create(&t, NULL, free_all, &h), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    om_collect(true);                   /* takes back the remote frees */
    assert_int_equal(stats().large_blocks, 0);
    assert_heap_clean(before);
}

/* A loop on a large buffer maps it once; the purge unmaps it. */
static void test_large_cache(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s0, s1;
    void *first, *p;

    om_collect(true);
    s0 = stats();
    first = om_gp_malloc(1 << 20);
    assert_non_null(first);
    assert_int_equal(om_gp_usable_size(first), 1 << 20);
    om_gp_free(first);
    for (int i = 0; i < 1000; i++) {
        p = om_gp_malloc((1 << 20) - 100 * i);  /* fits the cached one */
        assert_ptr_equal(p, first);
        om_gp_free(p);
    }
    s1 = stats();
    assert_int_equal(s1.large_maps_total, s0.large_maps_total + 1);
    assert_int_equal(s1.large_cached_bytes, 1 << 20);
    assert_int_equal(s1.large_blocks, 0);
    /* calloc on the reused mapping is zeroed all the same. */
    p = om_gp_malloc(1 << 20);
    memset(p, 0xee, 1 << 20);
    om_gp_free(p);
    p = om_gp_calloc(1, 1 << 20);
    assert_ptr_equal(p, first);
    for (size_t i = 0; i < 1 << 20; i += 4093)
        assert_int_equal(((unsigned char *)p)[i], 0);
    om_gp_free(p);
    om_collect(true);
    assert_int_equal(stats().large_cached_bytes, 0);
    assert_heap_clean(before);
}

/* 200 pools of 256-byte blocks made and freed: dirty pools. */
static void make_dirty_pools(void)
{
    static void *v[3200];

    for (int i = 0; i < 3200; i++)
        assert_non_null(v[i] = om_gp_malloc(256));
    for (int i = 0; i < 3200; i++)
        om_gp_free(v[i]);
}

/* From s1 to s2, 64 dirty pools or more were purged, or (never) none. */
static void assert_room_made(bool never, const struct om_stats *s1,
                             const struct om_stats *s2)
{
    if (never) {
        assert_int_equal(s2->pools_free_dirty, s1->pools_free_dirty);
        assert_int_equal(s2->bytes_purged_total, s1->bytes_purged_total);
    } else {
        assert_true(s2->pools_free_dirty + 64 <= s1->pools_free_dirty);
        assert_true(s2->bytes_purged_total >=
                    s1->bytes_purged_total + 64 * POOL_SIZE);
    }
}

/* A large block mapped fresh first has the heap give back about as many
 * dirty pools (in a program that has not churned large mappings: this
 * test runs first); none under the never-purge policy. */
static void test_large_makes_room(void **state)
{
    size_t before = blocks_in_use();
    long delay = om_get_purge_delay();
    struct om_stats s1, s2;
    void *big;

    om_collect(true);
    assert_true(stats().large_maps_total < 200);
    for (int never = 1; never >= 0; never--) {
        assert_int_equal(om_set_purge_delay(never ? -1 : 60000), 0);
        make_dirty_pools();
        s1 = stats();
        assert_true(s1.pools_free_dirty >= 64);
        big = om_gp_malloc(256 << 10);      /* 64 fresh pages */
        assert_non_null(big);
        s2 = stats();
        assert_int_equal(s2.large_maps_total, s1.large_maps_total + 1);
        assert_room_made(never, &s1, &s2);
        om_gp_free(big);
        assert_int_equal(om_check(), 0);
        om_collect(true);
    }
    assert_int_equal(om_set_purge_delay(delay), 0);
    assert_heap_clean(before);
}

/* A large block that grows (realloc, mremap) first has the heap give
 * back about as many pools, but only pools dirty for GROWTH_MIN_AGE (3)
 * purge epochs or more: those of a round just freed stay for the next
 * one; none under the never-purge policy. */
static void test_large_growth_makes_room(void **state)
{
    size_t before = blocks_in_use();
    long delay = om_get_purge_delay();
    struct om_stats s1, s2, s3;
    void *big;

    om_collect(true);
    assert_true(stats().large_maps_total < 200);
    for (int never = 1; never >= 0; never--) {
        assert_int_equal(om_set_purge_delay(never ? -1 : 60000), 0);
        big = om_gp_malloc(64 << 10);
        assert_non_null(big);
        make_dirty_pools();
        s1 = stats();
        assert_true(s1.pools_free_dirty >= 128);
        /* Dirty for less than 3 epochs: kept. */
        omi_arena_epoch_advance();
        omi_arena_epoch_advance();
        big = om_gp_realloc(big, (64 << 10) + (256 << 10));
        assert_non_null(big);
        s2 = stats();
        assert_int_equal(s2.pools_free_dirty, s1.pools_free_dirty);
        assert_int_equal(s2.bytes_purged_total, s1.bytes_purged_total);
        /* For 3: about the growth's 64 pages go. */
        omi_arena_epoch_advance();
        big = om_gp_realloc(big, (64 << 10) + (512 << 10));
        assert_non_null(big);
        s3 = stats();
        assert_int_equal(s3.large_blocks, s1.large_blocks);
        assert_room_made(never, &s1, &s3);
        om_gp_free(big);
        assert_int_equal(om_check(), 0);
        om_collect(true);
    }
    assert_int_equal(om_set_purge_delay(delay), 0);
    assert_heap_clean(before);
}

/* A new arena (the small-block heap grows) first unmaps the cached
 * mappings beyond the cache's base: the one big mapping that the cache
 * may always keep goes. */
static void test_arena_trims_cache(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s1, s2;
    static void *v[20000];
    void *big;
    size_t n = 0;

    om_collect(true);
    big = om_gp_malloc(4 << 20);
    assert_non_null(big);
    om_gp_free(big);
    s1 = stats();
    assert_int_equal(s1.large_cached_bytes, 4 << 20);
    while (n < 20000 && stats().arenas_current == s1.arenas_current)
        for (int i = 0; i < 256; i++)       /* 16 pools */
            assert_non_null(v[n++] = om_gp_malloc(256));
    s2 = stats();
    assert_int_equal(s2.arenas_current, s1.arenas_current + 1);
    assert_int_equal(s2.large_cached_bytes, 0);
    assert_int_equal(om_check(), 0);
    for (size_t i = 0; i < n; i++)
        om_gp_free(v[i]);
    om_collect(true);
    assert_heap_clean(before);
}

/* A cached mapping a quarter or more bigger than a request is split: the
 * request takes its head and the tail stays cached, for the next one; a
 * piece is a block like any other (calloc zeroes it, realloc moves it by
 * mremap, free caches it). */
static void test_large_cache_split(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s0;
    unsigned char *first, *p, *q;

    om_collect(true);
    s0 = stats();
    first = om_gp_malloc(1 << 20);
    assert_non_null(first);
    memset(first, 0xee, 1 << 20);
    om_gp_free(first);
    p = om_gp_malloc(256 << 10);
    assert_ptr_equal(p, first);
    assert_int_equal(om_gp_usable_size(p), 256 << 10);
    assert_int_equal(stats().large_cached_bytes, 768 << 10);
    q = om_gp_calloc(1, 500 << 10);             /* 512 KiB of the 768 */
    assert_ptr_equal(q, first + (256 << 10));
    assert_int_equal(om_gp_usable_size(q), 512 << 10);
    for (size_t i = 0; i < 500 << 10; i += 509)    /* what it asked */
        assert_int_equal(q[i], 0);
    assert_int_equal(stats().large_cached_bytes, 256 << 10);
    assert_int_equal(stats().large_maps_total, s0.large_maps_total + 1);
    assert_int_equal(om_check(), 0);
    fill(p, 256 << 10, 9);
    p = om_gp_realloc(p, 600 << 10);            /* q is in the way */
    assert_non_null(p);
    assert_true(filled(p, 256 << 10, 9));
    assert_int_equal(om_check(), 0);
    om_gp_free(q);
    om_gp_free(p);
    assert_int_equal(om_check(), 0);
    om_collect(true);
    assert_int_equal(stats().large_cached_bytes, 0);
    assert_heap_clean(before);
}

/* A request that no cached mapping holds grows the biggest one by
 * mremap when that is half the request or more: its pages, resident
 * already, are reused, and no mapping is made (calloc still zeroes the
 * whole block).  One under half stays cached, and the request is mapped
 * fresh. */
static void test_large_grows_cached(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s0, s1;
    unsigned char *p;

    om_collect(true);
    s0 = stats();
    p = om_gp_malloc(256 << 10);
    assert_non_null(p);
    memset(p, 0xee, 256 << 10);
    om_gp_free(p);
    assert_int_equal(stats().large_cached_bytes, 256 << 10);
    p = om_gp_calloc(1, 384 << 10);
    assert_non_null(p);
    assert_int_equal(om_gp_usable_size(p), 384 << 10);
    s1 = stats();
    assert_int_equal(s1.large_maps_total, s0.large_maps_total + 1);
    assert_int_equal(s1.large_cached_bytes, 0);
    assert_int_equal(s1.large_blocks, s0.large_blocks + 1);
    for (size_t i = 0; i < 384 << 10; i += 509)
        assert_int_equal(p[i], 0);
    assert_int_equal(om_check(), 0);
    om_gp_free(p);
    assert_int_equal(stats().large_cached_bytes, 384 << 10);
    p = om_gp_malloc(800 << 10);                /* 384 KiB < half */
    assert_non_null(p);
    assert_int_equal(stats().large_maps_total, s0.large_maps_total + 2);
    assert_int_equal(stats().large_cached_bytes, 384 << 10);
    om_gp_free(p);
    assert_int_equal(om_check(), 0);
    om_collect(true);
    assert_int_equal(stats().large_cached_bytes, 0);
    assert_heap_clean(before);
}

/* A large block that grows into the cached piece right after it (a
 * split mapping's tail) keeps its address and maps nothing: it takes the
 * head of the piece, or the whole piece, and a growth past the piece
 * moves by mremap as before. */
static void test_large_grows_into_cache(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s0;
    unsigned char *first, *p;

    om_collect(true);
    first = om_gp_malloc(1 << 20);
    assert_non_null(first);
    om_gp_free(first);
    s0 = stats();
    assert_int_equal(s0.large_cached_bytes, 1 << 20);
    p = om_gp_malloc(40 << 10);                 /* the head, split */
    assert_ptr_equal(p, first);
    fill(p, 40 << 10, 5);
    p = om_gp_realloc(p, 400 << 10);            /* 448 KiB, its class */
    assert_ptr_equal(p, first);
    assert_int_equal(om_gp_usable_size(p), 448 << 10);
    assert_int_equal(stats().large_cached_bytes, (1 << 20) - (448 << 10));
    assert_true(filled(p, 40 << 10, 5));
    fill(p, 400 << 10, 6);
    p = om_gp_realloc(p, 1 << 20);              /* the whole rest */
    assert_ptr_equal(p, first);
    assert_int_equal(om_gp_usable_size(p), 1 << 20);
    assert_int_equal(stats().large_cached_bytes, 0);
    assert_int_equal(stats().large_maps_total, s0.large_maps_total);
    assert_true(filled(p, 400 << 10, 6));
    assert_int_equal(om_check(), 0);
    p = om_gp_realloc(p, 3 << 20);              /* past it: mremap */
    assert_non_null(p);
    assert_true(filled(p, 400 << 10, 6));
    assert_int_equal(om_gp_usable_size(p), 3 << 20);
    assert_int_equal(om_check(), 0);
    om_gp_free(p);
    om_collect(true);
    assert_heap_clean(before);
}

/* A block grows in place only into the piece split from its own back,
 * which is one mapping with it: not into a piece that a freed neighbour
 * left, nor into its old tail once it has moved. */
static void test_large_grows_only_into_own_tail(void **state)
{
    size_t before = blocks_in_use();
    unsigned char *a, *b, *c;
    size_t cached;

    om_collect(true);
    a = om_gp_malloc(1 << 20);
    assert_non_null(a);
    om_gp_free(a);
    b = om_gp_malloc(256 << 10);                /* a's head */
    assert_ptr_equal(b, a);
    c = om_gp_malloc(512 << 10);                /* the next 512 KiB */
    assert_ptr_equal(c, a + (256 << 10));
    om_gp_free(c);              /* cached, nobody's tail: b ends there */
    assert_int_equal(om_check(), 0);
    cached = stats().large_cached_bytes;
    assert_true(cached >= 512 << 10);           /* c's at least */
    fill(b, 256 << 10, 8);
    b = om_gp_realloc(b, 512 << 10);
    assert_non_null(b);
    assert_ptr_not_equal(b, a);                 /* moved by mremap */
    assert_true(filled(b, 256 << 10, 8));
    assert_int_equal(stats().large_cached_bytes, cached);  /* untaken */
    assert_int_equal(om_check(), 0);
    om_gp_free(b);
    om_collect(true);
    assert_heap_clean(before);
}

/* A growth that mremap refuses moves the block by a copy; when no new
 * block can be had either, realloc fails and the block stays. */
static void test_large_realloc_copy_fallback(void **state)
{
    size_t before = blocks_in_use();
    unsigned char *p, *q;

    om_collect(true);
    p = om_gp_malloc(64 << 10);
    assert_non_null(p);
    fill(p, 64 << 10, 7);
    assert_int_equal(om_debug_fail_maps(1, false), 0);  /* the mremap */
    q = om_gp_realloc(p, 256 << 10);
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_non_null(q);
    assert_true(filled(q, 64 << 10, 7));
    assert_int_equal(om_gp_usable_size(q), 256 << 10);
    assert_int_equal(om_check(), 0);
    assert_int_equal(om_debug_fail_maps(0, true), 0);   /* every map */
    errno = 0;
    assert_null(om_gp_realloc(q, 2 << 20));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_true(filled(q, 64 << 10, 7));
    assert_int_equal(om_gp_usable_size(q), 256 << 10);
    assert_int_equal(om_check(), 0);
    om_gp_free(q);
    om_collect(true);
    assert_heap_clean(before);
}

/* realloc across the three kinds keeps the contents; a large one grows
 * in place or by mremap. */
static void test_realloc_kinds(void **state)
{
    size_t before = blocks_in_use();
    size_t sizes[] = { 1, 100, 512, 513, 4000, 32768, 32769, 100000,
                       5 << 20, 40000, 600, 24, 3 << 20, 70000, 1 };
    unsigned char *p = NULL;
    size_t have = 0;

    for (size_t i = 0; i < OM_ARRAY_LEN(sizes); i++) {
        size_t keep = have < sizes[i] ? have : sizes[i];
        p = om_gp_realloc(p, sizes[i]);
        assert_non_null(p);
        assert_true(om_gp_usable_size(p) >= sizes[i]);
        assert_true(filled(p, keep, 3));
        fill(p, sizes[i], 3);
        have = sizes[i];
    }
    assert_null(om_gp_realloc(p, 0));   /* frees p */
    assert_int_equal(stats().large_blocks, 0);
    assert_heap_clean(before);
}

/* Every power-of-two alignment from 16 to 1 MiB, at many sizes. */
static void test_aligned(void **state)
{
    size_t before = blocks_in_use();
    size_t sizes[] = { 1, 17, 100, 500, 513, 3000, 5000, 30000, 40000,
                       300000 };

    for (size_t align = 1; align <= (1 << 20); align *= 2)
        for (size_t i = 0; i < OM_ARRAY_LEN(sizes); i++) {
            unsigned char *p = om_gp_aligned_alloc(align, sizes[i]);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % align, 0);
            assert_true(om_gp_usable_size(p) >= sizes[i]);
            memset(p, 0x5a, sizes[i]);
            om_gp_free(p);
        }
    errno = 0;
    assert_null(om_gp_aligned_alloc(24, 10));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(stats().large_blocks, 0);
    assert_heap_clean(before);
}

/* glibc's edge cases, and errno. */
static void test_edges(void **state)
{
    size_t before = blocks_in_use();
    void *a, *b;

    a = om_gp_malloc(0);
    b = om_gp_malloc(0);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    errno = 1234;
    om_gp_free(a);
    om_gp_free(b);
    om_gp_free(NULL);
    b = om_gp_malloc(100000);
    om_gp_free(b);
    assert_int_equal(errno, 1234);
    assert_null(om_gp_malloc(SIZE_MAX - 10));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(om_gp_calloc(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    a = om_gp_malloc(1000);
    assert_null(om_gp_realloc(a, (size_t)1 << 62));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(om_gp_usable_size(a), 1024);       /* a is intact */
    om_gp_free(a);
    assert_int_equal(om_gp_usable_size(NULL), 0);
    assert_heap_clean(before);
}

/* om_gp_allocator as the MEM domain's table (objmem-python's set-up):
 * om_usable_size knows its large blocks (it took them for the C
 * library's, and asked malloc_usable_size about a mapping of objmem's). */
static void test_usable_size_gp_table(void **state)
{
    size_t before = blocks_in_use();
    struct om_allocator old;
    void *small, *medium, *large;

    om_get_allocator(OM_DOMAIN_MEM, &old);
    om_set_allocator(OM_DOMAIN_MEM, &om_gp_allocator);
    small = om_malloc(100);
    medium = om_malloc(5000);
    large = om_malloc(200000);
    assert_int_equal(om_usable_size(small), om_gp_usable_size(small));
    assert_int_equal(om_usable_size(medium), om_gp_usable_size(medium));
    assert_int_equal(om_usable_size(large), om_gp_usable_size(large));
    assert_true(om_usable_size(large) >= 200000);
    om_free(small);
    om_free(medium);
    om_free(large);
    om_set_allocator(OM_DOMAIN_MEM, &old);
    assert_int_equal(om_check(), 0);
    assert_heap_clean(before);
}

static void free_foreign(void)
{
    int on_stack;
    om_gp_free(&on_stack);
}

/* A pointer objmem never handed out is reported, with its address. */
static void test_foreign_is_fatal(void **state)
{
    assert_dies_saying(free_foreign, "free of an address objmem never "
                                     "handed out");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_large_makes_room),
        cmocka_unit_test(test_usable_size_gp_table),
        cmocka_unit_test(test_large_growth_makes_room),
        cmocka_unit_test(test_medium_table),
        cmocka_unit_test(test_every_size),
        cmocka_unit_test(test_medium_spans_return),
        cmocka_unit_test(test_medium_random),
        cmocka_unit_test(test_spans_cross_words),
        cmocka_unit_test(test_cross_thread),
        cmocka_unit_test(test_large_cache),
        cmocka_unit_test(test_large_cache_split),
        cmocka_unit_test(test_large_grows_cached),
        cmocka_unit_test(test_large_grows_into_cache),
        cmocka_unit_test(test_large_realloc_copy_fallback),
        cmocka_unit_test(test_large_grows_only_into_own_tail),
        cmocka_unit_test(test_arena_trims_cache),
        cmocka_unit_test(test_realloc_kinds),
        cmocka_unit_test(test_aligned),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_foreign_is_fatal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
