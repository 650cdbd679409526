/*
 * test_rss.c - freed memory really goes back to the OS: RSS read from
 * /proc/self/statm drops after 99% of a million blocks are freed, with no
 * call, under each purge policy; and a batch loop that frees and allocates
 * again keeps its pages under the default (deferred) policy; a medium
 * span faults in its pages as its blocks are handed out, and
 * om_collect(true) gives back the pages inside its free blocks.
 *
 * With 64-byte blocks a 4 KiB page holds 64 of them; when 1% survive at
 * random a page is empty with probability 0.99^64 = 52.6%, which bounds
 * what any page-granular allocator can give back.
 */
#include <sys/mman.h>
#include <time.h>

#include "testutil.h"
#include "cow.h"

enum { N = 1000000 };

static void **v;
static uint32_t *order;
static size_t rss0, rss1;

static void shuffle(uint32_t *a, size_t n)
{
    uint64_t r = 99;

    for (size_t i = 0; i < n; i++)
        a[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rnd_next(&r) % (i + 1));
        uint32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Sanitizers keep shadow memory that grows with every page touched (and
 * with every block ASan poisons) and is never given back: RSS figures
 * mean nothing there.  Release and debug builds run these tests. */
static void skip_under_sanitizers(void)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    skip();
#endif
}

static int setup(void **state)
{
    v = malloc(N * sizeof(*v));
    order = malloc(N * sizeof(*order));
    memset(v, 0xff, N * sizeof(*v));    /* fault it in (not calloc) */
    shuffle(order, N);
    return 0;
}

static int teardown(void **state)
{
    free(v);
    free(order);
    return 0;
}

/* Allocate N 64-byte blocks, then free a random 99% of them. */
static void allocate_then_free_99(void)
{
    om_collect(true);
    rss0 = rss_bytes();
    for (size_t i = 0; i < N; i++)
        memset(v[i] = om_malloc(64), 1, 64);
    rss1 = rss_bytes();
    assert_true(rss1 - rss0 >= (size_t)N * 64);
    for (size_t i = 0; i < N / 100 * 99; i++)
        om_free(v[order[i]]);
}

static double fraction_back(size_t rss)
{
    return (double)(rss1 - rss) / (double)(rss1 - rss0);
}

static void free_survivors(void)
{
    for (size_t i = N / 100 * 99; i < N; i++)
        om_free(v[order[i]]);
}

/* Default policy: back within a second, with no call into objmem. */
static void test_rss_drops_deferred(void **state)
{
    size_t before = blocks_in_use();
    double back = 0;

    skip_under_sanitizers();
    assert_int_equal(om_set_purge_delay(250), 0);
    allocate_then_free_99();
    for (int waited = 0; waited < 1000 && back < 0.45; waited += 50) {
        sleep_ms(50);
        back = fraction_back(rss_bytes());
    }
    print_message("deferred: %.1f%% of %zu KiB back within 1 s, no call\n",
                  100 * back, (rss1 - rss0) >> 10);
    assert_true(back >= 0.45);
    om_collect(true);
    assert_true(fraction_back(rss_bytes()) >= 0.48);
    free_survivors();
    assert_heap_clean(before);
}

/* Immediate policy: back during the frees themselves. */
static void test_rss_drops_immediate(void **state)
{
    size_t before = blocks_in_use();
    double back;

    skip_under_sanitizers();
    assert_int_equal(om_set_purge_delay(0), 0);
    allocate_then_free_99();
    back = fraction_back(rss_bytes());
    print_message("immediate: %.1f%% back right after the frees\n",
                  100 * back);
    assert_true(back >= 0.45);
    free_survivors();
    assert_int_equal(om_set_purge_delay(250), 0);
    assert_heap_clean(before);
}

/* Never: nothing goes back until om_collect. */
static void test_rss_never(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s0, s1;

    skip_under_sanitizers();
    assert_int_equal(om_set_purge_delay(-1), 0);
    assert_int_equal(om_get_purge_delay(), -1);
    allocate_then_free_99();
    assert_int_equal(om_stats_get(&s0), 0);
    sleep_ms(300);
    assert_int_equal(om_stats_get(&s1), 0);
    assert_int_equal(s1.bytes_purged_total, s0.bytes_purged_total);
    om_collect(true);
    assert_true(fraction_back(rss_bytes()) >= 0.48);
    free_survivors();
    assert_int_equal(om_set_purge_delay(250), 0);
    assert_heap_clean(before);
}

/* A batch loop that frees everything and allocates again within the delay
 * reuses its pages: nothing is purged between rounds. */
static void test_batch_keeps_pages(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s0, s1;

    skip_under_sanitizers();
    assert_int_equal(om_set_purge_delay(10000), 0);
    om_collect(true);
    for (int round = 0; round < 4; round++) {
        if (round == 1)
            assert_int_equal(om_stats_get(&s0), 0);
        for (size_t i = 0; i < N / 4; i++)
            v[i] = om_malloc(16 + i % 497);
        for (size_t i = 0; i < N / 4; i++)
            om_free(v[i]);
    }
    assert_int_equal(om_stats_get(&s1), 0);
    assert_int_equal(s1.bytes_purged_total, s0.bytes_purged_total);
    assert_int_equal(s1.arenas_total, s0.arenas_total);
    assert_int_equal(om_set_purge_delay(250), 0);
    assert_heap_clean(before);
}

/* A medium span (om_gp_malloc's blocks above 512 bytes) faults in its
 * pages a block at a time: the largest class (32 KiB) has spans of 32 pages and 4 blocks, and a span taken
 * after a full purge is not resident.  Each malloc threads the next
 * block (writing its first word); before carving was lazy, the first
 * malloc wrote all four and faulted in pages 0, 8, 16 and 24 at once. */
static void test_span_faults_block_by_block(void **state)
{
    enum { BIG = 32768, NB = 4, PAGES = NB * BIG / 4096 };
    size_t before = blocks_in_use();
    unsigned char vec[PAGES];
    char *p[NB];

    skip_under_sanitizers();
    om_collect(true);
    for (int i = 0; i < NB; i++) {
        p[i] = om_gp_malloc(BIG);
        assert_non_null(p[i]);
        assert_ptr_equal(p[i], p[0] + (size_t)i * BIG);  /* one span */
        assert_int_equal(om_check(), 0);
        assert_int_equal(mincore(p[0], NB * BIG, vec), 0);
        for (int pg = 0; pg < PAGES; pg++)
            assert_int_equal(vec[pg] & 1,
                             pg % (BIG / 4096) == 0 && pg / 8 <= i);
    }
    for (int i = 0; i < NB; i++)
        om_gp_free(p[i]);
    assert_heap_clean(before);
}

/* Residency of the 32 pages of a 32 KiB class's span at p, one bit a
 * page, page 0 lowest. */
static uint32_t span_resident(const char *p)
{
    unsigned char vec[32];
    uint32_t bits = 0;

    assert_int_equal(mincore((void *)(uintptr_t)p, 32 * 4096, vec), 0);
    for (int pg = 0; pg < 32; pg++)
        bits |= (uint32_t)(vec[pg] & 1) << pg;
    return bits;
}

/* Four 32 KiB blocks, one span (from a full purge on), each written
 * through with its own letter: 'a' + i. */
static void written_span(char *p[4])
{
    om_collect(true);
    for (int i = 0; i < 4; i++) {
        p[i] = om_gp_malloc(32768);
        assert_non_null(p[i]);
        memset(p[i], 'a' + i, 32768);
        assert_ptr_equal(p[i], p[0] + (size_t)i * 32768);
    }
}

/* om_collect(true) gives back the pages inside the free blocks of a
 * medium span still in use (as glibc's malloc_trim does its free
 * chunks'): of a span of four 32 KiB blocks with the middle two free,
 * every page but their first ones.  The live blocks keep their bytes;
 * the freed ones come back by malloc and calloc (zeroed). */
static void test_collect_trims_medium_blocks(void **state)
{
    enum { BIG = 32768, NB = 4 };
    size_t before = blocks_in_use();
    char *p[NB], *q, *r;

    skip_under_sanitizers();
    written_span(p);
    om_gp_free(p[1]);
    om_gp_free(p[2]);
    assert_int_equal(span_resident(p[0]), 0xffffffffu);
    om_collect(true);
    /* Pages 9..15 and 17..23 went; 8 and 16 hold the free list. */
    assert_int_equal(span_resident(p[0]), 0xff0101ffu);
    for (size_t k = 0; k < BIG; k++)
        assert_true(p[0][k] == 'a' && p[3][k] == 'd');
    assert_int_equal(om_check(), 0);
    q = om_gp_calloc(1, BIG);
    r = om_gp_malloc(BIG);
    assert_true((q == p[1] && r == p[2]) || (q == p[2] && r == p[1]));
    for (size_t k = 0; k < BIG; k++)
        assert_int_equal(q[k], 0);
    memset(r, 'r', BIG);
    assert_int_equal(om_check(), 0);
    om_gp_free(q);
    om_gp_free(r);
    om_gp_free(p[0]);
    om_gp_free(p[3]);
    assert_heap_clean(before);
}

/* And the pages of a span past the blocks it has carved: a span that
 * takes back the run its predecessor dirtied carves its blocks a page
 * at a time, and the rest of the run stays resident until
 * om_collect(true) gives back all but the one block handed out. */
static void test_collect_trims_uncarved(void **state)
{
    enum { BIG = 32768, NB = 4 };
    size_t before = blocks_in_use();
    char *p[NB], *q;

    skip_under_sanitizers();
    written_span(p);
    for (int i = 0; i < NB; i++)
        om_gp_free(p[i]);               /* the span's run: free, dirty */
    q = om_gp_malloc(BIG);
    assert_ptr_equal(q, p[0]);          /* the lowest free run */
    assert_int_equal(span_resident(q), 0xffffffffu);
    memset(q, 'q', BIG);
    om_collect(true);
    assert_int_equal(span_resident(q), 0x000000ffu);
    for (size_t k = 0; k < BIG; k++)
        assert_int_equal(q[k], 'q');
    assert_int_equal(om_check(), 0);
    om_gp_free(q);
    assert_heap_clean(before);
}

/* ---- Copy-on-write after fork: om_immortalize_heap ---- */

/* Instagram's story: a worker that only reads the parent's objects still
 * copies their pages (refcounts, GC links).  After om_immortalize_heap it
 * copies less than 1% of the heap. */
static void immortal_scenario(void)
{
    om_object *root = cow_build_heap(100000);
    struct om_stats s;
    long plain, frozen, immortal, heap_kb;

    om_stats_get(&s);
    heap_kb = (long)(s.bytes_in_use / 1024);
    plain = cow_child_dirties(root);
    om_gc_freeze();
    frozen = cow_child_dirties(root);
    om_immortalize_heap();
    immortal = cow_child_dirties(root);
    fprintf(stderr, "heap %ld kB; child dirtied %ld kB plain, %ld kB "
            "frozen, %ld kB immortalized\n", heap_kb, plain, frozen,
            immortal);
    if (plain < heap_kb / 2)            /* the measurement sees writes */
        _exit(10);
    if (immortal * 100 >= heap_kb)
        _exit(11);
    fprintf(stderr, "cow ok\n");
}

static void test_immortalized_heap_stays_shared(void **state)
{
    char out[1024];
    int status;

    skip_under_sanitizers();
    status = run_child(immortal_scenario, true, out, sizeof(out));
    print_message("%s", out);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    assert_non_null(strstr(out, "cow ok"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss_drops_deferred),
        cmocka_unit_test(test_rss_drops_immediate),
        cmocka_unit_test(test_rss_never),
        cmocka_unit_test(test_batch_keeps_pages),
        cmocka_unit_test(test_span_faults_block_by_block),
        cmocka_unit_test(test_collect_trims_medium_blocks),
        cmocka_unit_test(test_collect_trims_uncarved),
        cmocka_unit_test(test_immortalized_heap_stays_shared),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
