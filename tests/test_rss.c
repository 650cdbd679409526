/*
 * test_rss.c - freed memory really goes back to the OS: RSS read from
 * /proc/self/statm drops after 99% of a million blocks are freed, with no
 * call, and further after om_collect(true).
 *
 * With 64-byte blocks a 4 KiB page holds 64 of them; when 1% survive at
 * random a page is empty with probability 0.99^64 = 52.6%, which bounds
 * what any page-granular allocator can give back.
 */
#include "testutil.h"

enum { N = 1000000 };

static void shuffle(uint32_t *order, size_t n)
{
    uint64_t r = 99;

    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rnd_next(&r) % (i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static void test_rss_drops(void **state)
{
    size_t before = blocks_in_use(), rss0, rss1, rss2, rss3;
    void **v = malloc(N * sizeof(*v));
    uint32_t *order = malloc(N * sizeof(*order));
    double back_nocall, back_collect;

    shuffle(order, N);
    memset(v, 0, N * sizeof(*v));
    om_collect(true);
    rss0 = rss_bytes();
    for (size_t i = 0; i < N; i++)
        memset(v[i] = om_malloc(64), 1, 64);
    rss1 = rss_bytes();
    for (size_t i = 0; i < N / 100 * 99; i++)
        om_free(v[order[i]]);
    rss2 = rss_bytes();
    om_collect(true);
    rss3 = rss_bytes();
    back_nocall = (double)(rss1 - rss2) / (double)(rss1 - rss0);
    back_collect = (double)(rss1 - rss3) / (double)(rss1 - rss0);
    print_message("RSS +%zu KiB for 1M x 64 B; freed 99%%: %.1f%% back "
                  "with no call, %.1f%% after om_collect(true)\n",
                  (rss1 - rss0) >> 10, 100 * back_nocall, 100 * back_collect);
    assert_true(rss1 - rss0 >= (size_t)N * 64);
    assert_true(back_nocall >= 0.45);
    assert_true(back_collect >= 0.48);
    for (size_t i = N / 100 * 99; i < N; i++)
        om_free(v[order[i]]);
    free(v);
    free(order);
    assert_heap_clean(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss_drops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
