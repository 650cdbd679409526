/*
 * test_oom.c - the OS refusing memory.  Fault injection in os.c fails the
 * nth mapping from now, or every one.  Each failure must give NULL with
 * ENOMEM, leak nothing, and leave an allocator that works afterwards.
 */
#include <pthread.h>

#include "testutil.h"

static void *malloc_in_thread(void *arg)
{
    void *p;

    errno = 0;
    p = om_malloc(64);
    if (!p && errno == ENOMEM)
        return (void *)1;
    om_free(p);
    return NULL;
}

/* A new thread cannot even get a heap: NULL + ENOMEM, then it recovers. */
static void test_every_map_fails_new_thread(void **state)
{
    size_t before = blocks_in_use();
    pthread_t t;
    void *failed;

    assert_int_equal(om_debug_fail_maps(0, true), 0);
    pthread_create(&t, NULL, malloc_in_thread, NULL);
    pthread_join(t, &failed);
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_ptr_equal(failed, (void *)1);
    pthread_create(&t, NULL, malloc_in_thread, NULL);
    pthread_join(t, &failed);
    assert_null(failed);
    assert_heap_clean(before);
}

enum { MAX_BLOCKS = 40000 };
static void *blocks[MAX_BLOCKS];

/* Allocate up to n blocks of mixed sizes; the count made, and whether a
 * NULL (with ENOMEM) stopped it. */
static size_t allocate_some(size_t n, bool *failed)
{
    size_t i;

    *failed = false;
    for (i = 0; i < n; i++) {
        errno = 0;
        blocks[i] = (i % 3) ? om_malloc(16 + i % 497) : om_calloc(2, 40);
        if (!blocks[i]) {
            assert_int_equal(errno, ENOMEM);
            *failed = true;
            break;
        }
    }
    return i;
}

static void free_some(size_t n)
{
    for (size_t i = 0; i < n; i++)
        om_free(blocks[i]);
}

/* Every map failing: allocation stops with ENOMEM once the arenas that
 * exist are full; afterwards it all works again. */
static void test_every_map_fails(void **state)
{
    size_t before = blocks_in_use(), n;
    bool failed;

    om_collect(true);
    assert_int_equal(om_debug_fail_maps(0, true), 0);
    n = allocate_some(MAX_BLOCKS, &failed);
    assert_true(failed);
    free_some(n);
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_heap_clean(before);
    n = allocate_some(MAX_BLOCKS, &failed);
    assert_false(failed);
    free_some(n);
    assert_heap_clean(before);
}

/* Fail the 1st, 2nd, ... map until the scenario (about 8 MB, so several
 * arenas) runs through; check the heap after each. */
static void test_fail_nth_map_sweep(void **state)
{
    size_t before = blocks_in_use(), n;
    int failures = 0;
    bool failed = true;

    for (long nth = 1; failed && nth < 100; nth++) {
        om_collect(true);
        assert_int_equal(om_debug_fail_maps(nth, false), 0);
        n = allocate_some(MAX_BLOCKS, &failed);
        failures += failed;
        free_some(n);
        assert_heap_clean(before);
    }
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_false(failed);
    assert_true(failures >= 5);
    assert_int_equal(om_debug_fail_maps(-1, false), -EINVAL);
    assert_heap_clean(before);
}

/* Resize the large block *p (its first *size bytes 0xa5) to want bytes
 * while maps fail as om_debug_fail_maps(nth, every) says: either it is
 * resized, its bytes kept, or NULL comes back with ENOMEM and the block
 * is as it was.  Returns whether it failed. */
static bool resize_failing(unsigned char **p, size_t *size, size_t want,
                           long nth, bool every)
{
    unsigned char *q;

    assert_int_equal(om_debug_fail_maps(nth, every), 0);
    errno = 0;
    q = om_gp_realloc(*p, want);
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    if (q) {
        *p = q;
        *size = want < *size ? want : *size;
    } else {
        assert_int_equal(errno, ENOMEM);
    }
    for (size_t k = 0; k < *size; k += 997)
        assert_int_equal((*p)[k], 0xa5);
    *size = om_gp_usable_size(*p);
    memset(*p, 0xa5, *size);
    return q == NULL;
}

/* A large block resized while maps fail, never the fatal path.  Each
 * failed or moved resize records the block again in the large-block
 * table, so 400 of them reach its rehash point, which needs a map: every
 * map failing, then the first, second or third from now
 * (fuzz/corpus/alloc/crash-large-realloc-under-fault). */
static void test_large_realloc_fails(void **state)
{
    size_t before = blocks_in_use(), size = 40000;
    unsigned char *p = om_gp_malloc(size);
    int failures = 0;

    assert_non_null(p);
    memset(p, 0xa5, size);
    for (int i = 0; i < 400; i++)
        assert_true(resize_failing(&p, &size, 70000 + (size_t)(i % 2) *
                                   30000, 0, true));
    for (int i = 0; i < 400; i++)
        failures += resize_failing(&p, &size, 40000 + (size_t)(i % 3) *
                                   30000, 1 + i / 3 % 3, false);
    assert_true(failures > 0);
    om_gp_free(p);
    om_collect(true);
    assert_heap_clean(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_map_fails_new_thread),
        cmocka_unit_test(test_every_map_fails),
        cmocka_unit_test(test_fail_nth_map_sweep),
        cmocka_unit_test(test_large_realloc_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
