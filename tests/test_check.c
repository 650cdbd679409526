/*
 * test_check.c - the auditor audited: each invariant of the small-object
 * allocator that om_check() verifies (the arena map, arenas, pools,
 * heaps, the helper count; region.c's through omi_region_check) is
 * broken here by hand, one at a time, in a live heap.  om_check() must
 * return -EFAULT and name that invariant on stderr (assert_check_finds);
 * mended, it must pass again.  So no check of these is one that cannot
 * fail.
 *
 * Each test breaks something the checks before it do not look at, since
 * om_check() stops at the first invariant broken (heaps first, then
 * arenas and their pools, then the map, the large blocks, the objects,
 * tracing and the helpers).  The background purger is off (purge delay
 * -1) so that nothing but the test touches a broken structure, and the
 * block caches are emptied first (om_collect) where a check of them
 * would come first.
 *
 * Not covered here: arena.5 (an arena owned by an unknown heap) is in its
 * heap's bins, or holds its first pools, so heap.3 or heap.1 finds it
 * first.  The objects' invariants are broken in test_object, test_gc and
 * test_weakref, tracing's in test_trace, test_totals, test_timeline and
 * test_stackwalk.
 */
#include "testutil.h"

#include <sys/prctl.h>

#include "heap.h"
#include "large.h"
#include "os.h"
#include "region.h"
#include "tool.h"

static size_t blocks0;

static int setup(void **state)
{
    (void)state;
    om_collect(true);                   /* the caches emptied */
    blocks0 = blocks_in_use();
    assert_int_equal(om_check(), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_heap_clean(blocks0);
    return 0;
}

static struct pool *pool_of(void *p)
{
    return omi_arena_pool_of(omi_arena_of(p), p);
}

/* The bit of pool in one of its arena's per-pool bitmaps. */
static uint64_t *bit_word(uint64_t *map, const struct pool *pool)
{
    return &map[omi_pool_index(pool) / 64];
}

static uint64_t bit_of(const struct pool *pool)
{
    return (uint64_t)1 << (omi_pool_index(pool) % 64);
}

/* A free pool of a's in state CLEAN (with its clean bit), or NULL. */
static struct pool *clean_pool(struct arena *a)
{
    for (size_t i = META_POOLS; i < POOLS_PER_ARENA; i++)
        if (omi_pool_state(&a->pools[i]) == POOL_CLEAN &&
            (*bit_word(a->clean, &a->pools[i]) & bit_of(&a->pools[i])))
            return &a->pools[i];
    return NULL;
}

/*
 * Blocks of size bytes into b[] until the pool of b[0] is FULL (the next
 * malloc of the class took another pool): the count, b[0]'s pool FULL
 * and not the class's first pool.
 */
static size_t fill_pool(size_t size, void **b, size_t max)
{
    size_t n = 0;

    do {
        assert_true(n < max);
        b[n] = om_malloc(size);
        assert_non_null(b[n]);
        n++;
    } while (omi_pool_state(pool_of(b[0])) != POOL_FULL);
    return n;
}

static void free_all(void **b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        om_free(b[i]);
}

/* Fill the cache of size's class: CACHE_LIMIT blocks from its pools,
 * freed (the cache is empty before: the setup's om_collect). */
static void fill_cache(size_t size)
{
    void *c[CACHE_LIMIT];

    for (size_t i = 0; i < CACHE_LIMIT; i++)
        assert_non_null(c[i] = om_malloc(size));
    free_all(c, CACHE_LIMIT);
    assert_int_equal(omi_heap_tls->cache[omi_pool_class(size)].count,
                     CACHE_LIMIT);
}

/* The word of the arena map that marks the arena at a. */
static _Atomic uint64_t *map_word_of(const void *a)
{
    _Atomic uint64_t *w = omi_arena_map_word(a);

    assert_non_null(w);
    return w;
}

/* ---- The arena map and the arenas ---- */

/* map.1: a mark that no arena made (a stray write into the map). */
static void test_map_stray_mark(void **state)
{
    void *p = om_malloc(16);
    size_t w = 0;
    uint64_t clear, bit;

    (void)state;
    while (atomic_load(&omi_arena_map[w]) == UINT64_MAX)
        w++;
    clear = ~atomic_load(&omi_arena_map[w]);
    bit = clear & (0 - clear);          /* the word's lowest clear bit */
    atomic_fetch_or(&omi_arena_map[w], bit);
    assert_check_finds("map.1");
    atomic_fetch_and(&omi_arena_map[w], ~bit);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* arena.1: an arena the map does not mark. */
static void test_arena_not_in_map(void **state)
{
    void *p = om_malloc(16);
    struct arena *a = omi_arena_of(p);
    _Atomic uint64_t *word = map_word_of(a);
    uint64_t bit = (uint64_t)1 << (((uintptr_t)a >> ARENA_BITS) % 64);

    (void)state;
    assert_true(atomic_load(word) & bit);
    atomic_fetch_and(word, ~bit);
    assert_check_finds("arena.1");
    atomic_fetch_or(word, bit);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* arena.2: a pool of the arena's header with an owner. */
static void test_arena_header_pool_owned(void **state)
{
    void *p = om_malloc(16);
    struct arena *a = omi_arena_of(p);

    (void)state;
    atomic_store(&a->pools[0].owner, (uintptr_t)omi_heap_tls);
    assert_check_finds("arena.2");
    atomic_store(&a->pools[0].owner, 0);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* arena.3: a free pool in state DIRTY without its dirty bit. */
static void test_arena_state_without_bit(void **state)
{
    void *p = om_malloc(16);
    struct pool *pool = clean_pool(omi_arena_of(p));

    (void)state;
    assert_non_null(pool);
    omi_pool_set_state(pool, POOL_DIRTY);
    assert_check_finds("arena.3");
    omi_pool_set_state(pool, POOL_CLEAN);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* arena.4: one DIRTY pool more counted than there are. */
static void test_arena_dirty_count(void **state)
{
    void *p = om_malloc(16);
    struct arena *a = omi_arena_of(p);

    (void)state;
    atomic_fetch_add(&a->dirty_in, 1);
    assert_check_finds("arena.4");
    atomic_fetch_sub(&a->dirty_in, 1);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* arena.6: a pool in use reserved for a class's run. */
static void test_arena_reserved_pool_used(void **state)
{
    void *p = om_malloc(16);
    struct arena *a = omi_arena_of(p);
    struct pool *pool = pool_of(p);

    (void)state;
    *bit_word(a->reserved, pool) |= bit_of(pool);
    assert_check_finds("arena.6");
    *bit_word(a->reserved, pool) &= ~bit_of(pool);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* ---- Pools ---- */

/* pool.1: a FULL pool whose class is none. */
static void test_pool_class_out_of_range(void **state)
{
    void *b[64];
    size_t n = fill_pool(512, b, 64);
    struct pool *pool = pool_of(b[0]);
    uint8_t sc = pool->sc;

    (void)state;
    pool->sc = 255;
    assert_check_finds("pool.1");
    pool->sc = sc;
    assert_int_equal(om_check(), 0);
    free_all(b, n);
}

/* pool.1: a span's second page not its tail (its head is another). */
static void test_pool_span_tail(void **state)
{
    void *p = om_gp_malloc(20000);
    struct pool *head = omi_pool_head(pool_of(p)), *tail = head + 1;
    void *saved;

    (void)state;
    assert_true(omi_class_pages(head->sc) > 1);
    assert_int_equal(omi_pool_state(tail), POOL_TAIL);
    saved = tail->free;
    tail->free = tail;
    assert_check_finds("pool.1");
    tail->free = saved;
    assert_int_equal(om_check(), 0);
    om_gp_free(p);
}

/* pool.2: a FULL pool whose owner word says it is not. */
static void test_pool_full_without_flag(void **state)
{
    void *b[64];
    size_t n = fill_pool(512, b, 64);
    struct pool *pool = pool_of(b[0]);

    (void)state;
    atomic_fetch_and(&pool->owner, ~OWNER_FULL);
    assert_check_finds("pool.2");
    atomic_fetch_or(&pool->owner, OWNER_FULL);
    assert_int_equal(om_check(), 0);
    free_all(b, n);
}

/* pool.3: a free list that leads into the middle of a live block. */
static void test_pool_free_list_interior(void **state)
{
    void *p = om_malloc(48);
    struct pool *pool = pool_of(p);
    void *saved = pool->free;

    (void)state;
    assert_non_null(saved);             /* the class's first pool */
    pool->free = (char *)p + 16;
    assert_check_finds("pool.3");
    pool->free = saved;
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* pool.4: one block more counted in use than the pool holds. */
static void test_pool_used_count(void **state)
{
    void *p = om_malloc(48);
    struct pool *pool = pool_of(p);

    (void)state;
    pool->used++;
    assert_check_finds("pool.4");
    pool->used--;
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* pool.6: a tags record on a free pool. */
static void test_pool_tags_on_free_pool(void **state)
{
    void *p = om_malloc(16);
    struct pool *pool = clean_pool(omi_arena_of(p));

    (void)state;
    assert_non_null(pool);
    atomic_store(&pool->tags, 1);
    assert_check_finds("pool.6");
    atomic_store(&pool->tags, 0);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* pool.6: a pool naming a tags record that is another page's (the
 * record of a traced block's page, named by a pool with no trace). */
static void test_pool_tags_of_another_page(void **state)
{
    void *q = om_malloc(512), *p;
    struct pool *untraced = pool_of(q), *traced;

    (void)state;
    assert_int_equal(om_trace_start(1), 0);
    p = om_malloc(16);
    traced = pool_of(p);
    assert_int_not_equal(atomic_load(&traced->tags), 0);
    assert_int_equal(atomic_load(&untraced->tags), 0);
    atomic_store(&untraced->tags, atomic_load(&traced->tags));
    assert_check_finds("pool.6");
    atomic_store(&untraced->tags, 0);
    assert_int_equal(om_check(), 0);
    om_free(p);
    om_trace_stop();
    om_free(q);
}

/* ---- Heaps ---- */

/* heap.1: the class's first pool marked partial. */
static void test_heap_first_marked_partial(void **state)
{
    void *p = om_malloc(48);
    struct pool *pool = pool_of(p);
    struct arena *a = omi_arena_of(p);

    (void)state;
    assert_ptr_equal(omi_heap_tls->first[pool->sc], pool);
    *bit_word(a->partial[pool->sc], pool) |= bit_of(pool);
    assert_check_finds("heap.1");
    *bit_word(a->partial[pool->sc], pool) &= ~bit_of(pool);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* heap.2: a FULL pool marked partial. */
static void test_heap_full_marked_partial(void **state)
{
    void *b[64];
    size_t n = fill_pool(512, b, 64);
    struct pool *pool = pool_of(b[0]);
    struct arena *a = omi_arena_of(b[0]);

    (void)state;
    *bit_word(a->partial[pool->sc], pool) |= bit_of(pool);
    assert_check_finds("heap.2");
    *bit_word(a->partial[pool->sc], pool) &= ~bit_of(pool);
    assert_int_equal(om_check(), 0);
    free_all(b, n);
}

/* heap.2: an arena with a partial pool left off its class's list. */
static void test_heap_arena_off_class_list(void **state)
{
    void *b[64];
    size_t n = fill_pool(512, b, 64);
    struct pool *pool = pool_of(b[0]);
    struct heap *h = omi_heap_tls;
    struct arena *saved;
    unsigned sc = pool->sc;

    (void)state;
    /* A free into the FULL pool while the class's cache is full goes to
     * the pool, which is partial then. */
    fill_cache(512);
    om_free(b[0]);
    assert_int_equal(omi_pool_state(pool), POOL_USED);
    assert_ptr_not_equal(h->first[sc], pool);
    saved = h->partial_arenas[sc];
    assert_non_null(saved);
    h->partial_arenas[sc] = NULL;
    assert_check_finds("heap.2");
    h->partial_arenas[sc] = saved;
    assert_int_equal(om_check(), 0);
    free_all(b + 1, n - 1);
}

/* heap.3: the bit of an empty bin set. */
static void test_heap_bin_bit(void **state)
{
    void *p = om_malloc(16);
    struct heap *h = omi_heap_tls;
    unsigned b = 1;

    (void)state;
    while (h->bins[b])
        b++;
    assert_true(b < NBINS);
    h->binmap |= (uint64_t)1 << b;
    assert_check_finds("heap.3");
    h->binmap &= ~((uint64_t)1 << b);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* heap.4: the heap's count of dirty hints one above its arenas'. */
static void test_heap_dirty_hints(void **state)
{
    void *p = om_malloc(16);
    struct heap *h = omi_heap_tls;

    (void)state;
    h->ndirty++;
    assert_check_finds("heap.4");
    h->ndirty--;
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* heap.5: a remote list holding an address of no pool (the stack). */
static void test_heap_remote_stranger(void **state)
{
    void *p = om_malloc(16);
    struct heap *h = omi_heap_tls;
    void *stranger[2] = { NULL, NULL }, *saved;

    (void)state;
    saved = atomic_exchange(&h->remote, (void *)stranger);
    assert_null(saved);
    assert_check_finds("heap.5");
    atomic_store(&h->remote, saved);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* heap.6: a block cache counting a block it does not hold. */
static void test_heap_cache_count(void **state)
{
    void *p = om_malloc(16);
    struct heap *h = omi_heap_tls;

    (void)state;
    h->cache[0].count++;
    assert_check_finds("heap.6");
    h->cache[0].count--;
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* heap.6: a medium class's cache not counted full, which would let a
 * medium block's free take it; and a medium block freed while its
 * cache is full goes to its span, not the cache. */
static void test_heap_medium_cache(void **state)
{
    void *p = om_gp_malloc(SMALL_THRESHOLD + 1);
    unsigned sc = pool_of(p)->sc;
    struct heap *h = omi_heap_tls;

    (void)state;
    assert_true(sc >= NSMALL && sc < NCLASSES);
    assert_int_equal(h->cache[sc].count, CACHE_LIMIT);
    h->cache[sc].count--;
    assert_check_finds("heap.6");
    h->cache[sc].count++;
    assert_int_equal(om_check(), 0);
    om_gp_free(p);
    assert_null(h->cache[sc].head);
    assert_int_equal(h->cache[sc].count, CACHE_LIMIT);
    assert_int_equal(om_check(), 0);
}

/* heap.6: a block cache holding a block of another class's pool. */
static void test_heap_cache_wrong_class(void **state)
{
    void *b[64];
    size_t n = fill_pool(512, b, 64);
    struct heap *h = omi_heap_tls;
    struct cache *c = &h->cache[0];
    void *saved_head = c->head;
    uint32_t saved_count = c->count;

    (void)state;
    om_free(b[0]);                      /* into the FULL pool: cached */
    assert_ptr_equal(h->cache[pool_of(b[0])->sc].head, b[0]);
    /* The 512-byte block moved to class 0's cache, the count with it. */
    h->cache[pool_of(b[0])->sc].head = NULL;
    h->cache[pool_of(b[0])->sc].count--;
    c->head = b[0];
    c->count = 1;
    assert_null(saved_head);
    assert_check_finds("heap.6");
    c->head = saved_head;
    c->count = saved_count;
    h->cache[pool_of(b[0])->sc].head = b[0];
    h->cache[pool_of(b[0])->sc].count++;
    assert_int_equal(om_check(), 0);
    free_all(b + 1, n - 1);
}

/* heap.7: a class's next pool in an arena's header. */
static void test_heap_next_pool_in_header(void **state)
{
    void *p = om_malloc(16);
    struct heap *h = omi_heap_tls;
    struct pool *saved = h->next_pool[0];

    (void)state;
    h->next_pool[0] = &omi_arena_of(p)->pools[0];
    assert_check_finds("heap.7");
    h->next_pool[0] = saved;
    assert_int_equal(om_check(), 0);
    om_free(p);
}

/* ---- Large blocks ---- */

/* large.1: a live mapping's size not a page multiple; large.2: a cached
 * mapping that is a live block too, or whose head is a block that does
 * not end where it starts; large.3: the high-water mark of the count
 * below the count. */
static void test_large_checks(void **state)
{
    void *p = om_gp_malloc(1 << 20), *q = om_gp_malloc(1 << 20);
    struct omi_large_debug d;
    size_t saved_count;
    void *saved_addr;

    (void)state;
    om_gp_free(q);                      /* its mapping cached */
    omi_large_debug(p, &d);
    assert_non_null(d.size);
    assert_non_null(d.cached_addr);
    *d.size += 1;
    assert_check_finds("large.1");
    *d.size -= 1;
    assert_int_equal(om_check(), 0);
    saved_addr = *d.cached_addr;
    *d.cached_addr = p;
    assert_check_finds("large.2");
    *d.cached_addr = saved_addr;
    assert_int_equal(om_check(), 0);
    assert_int_equal(*d.cached_head, 0);
    *d.cached_head = (uintptr_t)p + 4096;   /* not a block (yet): fine */
    assert_int_equal(om_check(), 0);
    *d.cached_head = (uintptr_t)p;      /* a block, not ending there */
    if ((char *)p + (1 << 20) != saved_addr)
        assert_check_finds("large.2");
    *d.cached_head = 0;
    assert_int_equal(om_check(), 0);
    saved_count = *d.max_count;
    *d.max_count = 0;
    assert_check_finds("large.3");
    *d.max_count = saved_count;
    assert_int_equal(om_check(), 0);
    om_gp_free(p);
}

/* ---- The helper threads and the regions ---- */

/* os.4: more helper threads counted than objmem has kinds of. */
static void test_os_helper_count(void **state)
{
    char name[16] = "";
    void *p = om_malloc(16);

    (void)state;
    assert_int_equal(prctl(PR_GET_NAME, name, 0, 0, 0), 0);
    for (int i = 0; i <= OMI_OS_HELPER_KINDS; i++)
        omi_os_helper_begin("not a helper");
    assert_check_finds("os.4");
    for (int i = 0; i <= OMI_OS_HELPER_KINDS; i++)
        omi_os_helper_end();
    assert_int_equal(prctl(PR_SET_NAME, name, 0, 0, 0), 0);
    assert_int_equal(om_check(), 0);
    om_free(p);
}

static int region_check_of(const void *r)
{
    return omi_region_check(r);
}

/* region.1-3 (tracing's memory; om_check asks omi_region_check of it):
 * the free room outside the newest chunk, the chunks' sum wrong, whole
 * pages left over more than mapped. */
static void test_region_checks(void **state)
{
    struct omi_region r = { 0 };
    char *cur;
    size_t mapped, left;

    (void)state;
    assert_int_equal(omi_region_check(&r), 0);
    assert_non_null(omi_region_alloc(&r, 100));
    assert_int_equal(omi_region_check(&r), 0);
    cur = r.cur;
    r.cur = r.end + 16;
    assert_finds(region_check_of, &r, "region.1");
    r.cur = cur;
    mapped = r.mapped;
    r.mapped += omi_os_page_size();
    assert_finds(region_check_of, &r, "region.2");
    r.mapped = mapped;
    left = r.left;
    r.left = r.mapped;
    assert_finds(region_check_of, &r, "region.3");
    r.left = left;
    assert_int_equal(omi_region_check(&r), 0);
    omi_region_release(&r);
    assert_int_equal(omi_region_check(&r), 0);
    r.mapped = omi_os_page_size();      /* no chunk, yet bytes mapped */
    assert_finds(region_check_of, &r, "region.1");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_map_stray_mark),
        T(test_arena_not_in_map),
        T(test_arena_header_pool_owned),
        T(test_arena_state_without_bit),
        T(test_arena_dirty_count),
        T(test_arena_reserved_pool_used),
        T(test_pool_class_out_of_range),
        T(test_pool_span_tail),
        T(test_pool_full_without_flag),
        T(test_pool_free_list_interior),
        T(test_pool_used_count),
        T(test_pool_tags_on_free_pool),
        T(test_pool_tags_of_another_page),
        T(test_heap_first_marked_partial),
        T(test_heap_full_marked_partial),
        T(test_heap_arena_off_class_list),
        T(test_heap_bin_bit),
        T(test_heap_dirty_hints),
        T(test_heap_remote_stranger),
        T(test_heap_cache_count),
        T(test_heap_medium_cache),
        T(test_heap_cache_wrong_class),
        T(test_heap_next_pool_in_header),
        T(test_large_checks),
        T(test_os_helper_count),
        T(test_region_checks),
    };

    /* Nothing but the tests touches a pool: no background purge. */
    assert_int_equal(om_set_purge_delay(-1), 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
