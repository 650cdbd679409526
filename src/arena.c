/*
 * arena.c - L2: arenas, the 1 MiB units objmem maps from the OS, and the
 * arena map that recognises objmem's addresses.
 *
 * An arena belongs to one heap (heap.c), so handing out and taking back its
 * pools takes no lock.  Only the global list of all arenas (for stats and
 * om_check) and the totals are shared; they sit under one mutex, which is
 * never held across a system call: arenas are mapped before the lock is
 * taken and unmapped after it is dropped.
 *
 * The arena map answers "is p ours?" for free() and realloc() without
 * reading memory that may not be mapped (CPython's address_in_range, with
 * a flat bitmap instead of a radix tree): one bit per 1 MiB slot of the
 * 48-bit address space, 32 MiB of BSS of which only the words covering
 * arenas are ever written.  One load instead of the two a tree costs.
 * Layout of an arena and of its free-pool bitmaps: arena.h.
 *
 * Invariants (checked by omi_arena_check, numbered as in arena.h):
 *   1. Every arena is ARENA_SIZE-aligned, marked in the arena map, and on
 *      the global list; the map marks no other address.
 *   2. Header pools are never handed out.
 *   3. dirty bit <=> DIRTY, clean bit <=> CLEAN.
 *   4. nfree == |dirty| + |clean|, ndirty == |dirty|.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "arena.h"
#include "os.h"
#include "probe.h"
#include "tool.h"

_Atomic uint64_t omi_arena_map[MAP_WORDS];
#define MAP_BIAS_UNSET ((uintptr_t)1 << 63)    /* every slot outside */
_Atomic uintptr_t omi_arena_map_bias = MAP_BIAS_UNSET;
static uintptr_t map_base;              /* the window's first slot */
_Atomic(_Atomic uint64_t *) omi_arena_outside[MAP_ROOT_SIZE];
static atomic_size_t outside_leaves;    /* leaves mapped, never unmapped */
static size_t map_bits;                 /* bits set, under arena_lock */

static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
static struct arena *all_arenas;         /* global list, under arena_lock */
static struct omi_arena_totals totals;   /* under arena_lock */
static atomic_uint_least64_t purged_bytes;
static _Atomic uint16_t epoch;          /* advanced by the purger's ticks */

_Static_assert(META_POOLS < POOLS_PER_ARENA / 8,
               "the header takes a small part of the arena");

/* ---- The arena map ---- */

#define LEAF_BYTES (((size_t)1 << MAP_LEAF_BITS) / 8)
#define LEAF_MASK (((uintptr_t)1 << MAP_LEAF_BITS) - 1)

/* The word that holds slot's bit (arena lock held; the first arena places
 * the window around itself), or NULL when slot is outside the window and
 * its leaf is not mapped yet. */
static _Atomic uint64_t *map_word(uintptr_t slot)
{
    _Atomic uint64_t *leaf;

    if (atomic_load(&omi_arena_map_bias) == MAP_BIAS_UNSET) {
        map_base = slot > MAP_WINDOW / 2 ?
                   (slot - MAP_WINDOW / 2) & ~(uintptr_t)63 : 0;
        atomic_store(&omi_arena_map_bias, (uintptr_t)omi_arena_map -
                     (map_base >> 6) * sizeof(uint64_t));
    }
    if (slot - map_base < MAP_WINDOW)
        return &omi_arena_map[(slot - map_base) >> 6];
    leaf = atomic_load(&omi_arena_outside[slot >> MAP_LEAF_BITS]);
    return leaf ? &leaf[(slot & LEAF_MASK) >> 6] : NULL;
}

/* Map the leaf for slot (no lock held: a system call); false when the
 * kernel refuses.  A leaf stays for the process's life, as CPython's. */
static bool map_add_leaf(uintptr_t slot)
{
    _Atomic uint64_t *leaf = omi_os_map(LEAF_BYTES, 0), *none = NULL;
    _Atomic(_Atomic uint64_t *) *root = &omi_arena_outside[slot >>
                                                           MAP_LEAF_BITS];

    if (!leaf)
        return false;
    if (atomic_compare_exchange_strong(root, &none, leaf))
        atomic_fetch_add(&outside_leaves, 1);
    else
        omi_os_unmap(leaf, LEAF_BYTES);         /* another thread's won */
    return true;
}

/* Set or clear a's bit (arena lock held); map_bits counts the set bits.
 * False (nothing done) when a's bit needs a leaf not mapped yet. */
static bool map_mark(uintptr_t a, bool on)
{
    uintptr_t slot = a >> ARENA_BITS;
    uint64_t bit = (uint64_t)1 << (slot & 63);
    _Atomic uint64_t *word = map_word(slot);
    uint64_t old;

    if (!word)
        return false;
    if (on)
        old = atomic_fetch_or(word, bit);
    else
        old = atomic_fetch_and(word, ~bit);
    if (((old & bit) != 0) != on)
        map_bits += on ? 1 : (size_t)-1;
    return true;
}

size_t omi_arena_map_bits(void)
{
    return map_bits;
}

uintptr_t omi_arena_map_window(void)
{
    return map_base;
}

/* The bits set in the window and in the leaves outside it. */
static size_t map_popcount(void)
{
    size_t n = 0;

    for (size_t w = 0; w < MAP_WORDS; w++)
        n += (size_t)__builtin_popcountll(atomic_load_explicit(
                 &omi_arena_map[w], memory_order_relaxed));
    for (size_t r = 0; r < MAP_ROOT_SIZE; r++) {
        _Atomic uint64_t *leaf = atomic_load(&omi_arena_outside[r]);

        for (size_t w = 0; leaf && w < LEAF_BYTES / 8; w++)
            n += (size_t)__builtin_popcountll(atomic_load_explicit(
                     &leaf[w], memory_order_relaxed));
    }
    return n;
}

size_t omi_arena_map_count(void)
{
    return map_popcount();
}

_Atomic uint64_t *omi_arena_map_word(const void *a)
{
    uintptr_t slot = (uintptr_t)a >> ARENA_BITS;
    uintptr_t base = omi_arena_map_window();
    _Atomic uint64_t *leaf;

    if (slot - base < MAP_WINDOW)
        return &omi_arena_map[(slot - base) / 64];
    leaf = atomic_load(&omi_arena_outside[slot >> MAP_LEAF_BITS]);
    return leaf ? &leaf[(slot & (((uintptr_t)1 << MAP_LEAF_BITS) - 1)) / 64]
                : NULL;
}

int omi_arena_map_check(void)
{
    uintptr_t bias = atomic_load(&omi_arena_map_bias);
    size_t set;

    if (map_base % 64 != 0)
        return omi_check_fail("map.1", NULL, "window at slot %#lx, not a "
                              "multiple of 64", (unsigned long)map_base);
    if (bias != MAP_BIAS_UNSET && bias != (uintptr_t)omi_arena_map -
                                          (map_base >> 6) * sizeof(uint64_t))
        return omi_check_fail("map.1", NULL, "bias %#lx for a window at "
                              "slot %#lx", (unsigned long)bias,
                              (unsigned long)map_base);
    if (bias == MAP_BIAS_UNSET && map_bits != 0)
        return omi_check_fail("map.1", NULL, "%zu marks, no window",
                              map_bits);
    /* map_bits is kept by map_mark; the bits themselves are counted
     * here, so that a mark no arena made (a stray write into the map)
     * is found too. */
    if ((set = map_popcount()) != map_bits)
        return omi_check_fail("map.1", NULL, "%zu bits set in the map, "
                              "%zu marks made", set, map_bits);
    return 0;
}

size_t omi_arena_map_bytes(void)
{
    return sizeof(omi_arena_map) + sizeof(omi_arena_outside) +
           atomic_load(&outside_leaves) * LEAF_BYTES;
}

/* ---- Arena lifetime ---- */

/* The map bit and the list entry change together, under the lock, so
 * that a fork() child never sees one without the other. */
static bool list_insert(struct arena *a)
{
    omi_arena_lock();
    while (!map_mark((uintptr_t)a, true)) {
        omi_arena_unlock();
        if (!map_add_leaf((uintptr_t)a >> ARENA_BITS))
            return false;
        omi_arena_lock();
    }
    a->all_next = all_arenas;
    a->all_prev = NULL;
    if (all_arenas)
        all_arenas->all_prev = a;
    all_arenas = a;
    totals.current++;
    totals.total++;
    if (totals.current > totals.highwater)
        totals.highwater = totals.current;
    omi_arena_unlock();
    return true;
}

static void list_remove(struct arena *a)
{
    omi_arena_lock();
    map_mark((uintptr_t)a, false);
    if (a->all_prev)
        a->all_prev->all_next = a->all_next;
    else
        all_arenas = a->all_next;
    if (a->all_next)
        a->all_next->all_prev = a->all_prev;
    totals.current--;
    totals.unmapped_bytes += ARENA_SIZE;
    omi_arena_unlock();
}

struct arena *omi_arena_new(struct heap *h)
{
    struct arena *a = omi_os_map(ARENA_SIZE, ARENA_SIZE);

    if (!a)
        return NULL;
    if ((uintptr_t)a >> ADDRESS_BITS) {         /* beyond the map's reach */
        omi_os_unmap(a, ARENA_SIZE);
        return NULL;
    }
    /* The mapping is zeroed: every pool is CLEAN with owner 0. */
    a->heap = h;
    a->nfree = USABLE_POOLS;
    for (size_t i = META_POOLS; i < POOLS_PER_ARENA; i++)
        a->clean[i / 64] |= (uint64_t)1 << (i % 64);
    if (!list_insert(a)) {
        omi_os_unmap(a, ARENA_SIZE);
        return NULL;
    }
    OMI_PROBE1(arena__new, (uintptr_t)a);
    return a;
}

void omi_arena_release(struct arena *a)
{
    OM_ASSERT(a->nfree == USABLE_POOLS);
    list_remove(a);
    /* Off the list, nobody can pin it any more; wait out a purger that
     * pinned it before. */
    while (atomic_load(&a->pins) != 0)
        sched_yield();
    /* ASan's poison outlives the mapping: whatever is mapped here next
     * (a thread's stack, say) must not inherit it. */
    omi_tool_handed_out(a, ARENA_SIZE);
    OMI_PROBE1(arena__release, (uintptr_t)a);
    omi_os_unmap(a, ARENA_SIZE);
}

/* ---- Free pools ---- */

/* Add n to a counter that only the calling thread writes: a plain load
 * and store, no locked instruction (arena.h says who writes which). */
static void bump(_Atomic uint32_t *counter, uint32_t n)
{
    atomic_store_explicit(counter,
                          atomic_load_explicit(counter, memory_order_relaxed)
                          + n, memory_order_relaxed);
}

/* Index of the lowest set bit of a 256-bit map, or -1. */
static int lowest_bit(const uint64_t *map)
{
    for (int w = 0; w < (int)(POOLS_PER_ARENA / 64); w++)
        if (map[w])
            return w * 64 + __builtin_ctzll(map[w]);
    return -1;
}

static void bit_clear(uint64_t *map, size_t i)
{
    map[i / 64] &= ~((uint64_t)1 << (i % 64));
}

static bool bit_test(const uint64_t *map, size_t i)
{
    return (map[i / 64] >> (i % 64)) & 1;
}

/*
 * Make a pool that was free USED.  A DIRTY pool is taken back by CAS (the
 * purger may be about to purge it); one that the purger is purging is
 * waited for.  True when the page kept its contents.
 */
static bool claim(struct arena *a, struct pool *pool)
{
    uint8_t state = POOL_DIRTY;

    if (atomic_compare_exchange_strong_explicit(&pool->state, &state,
                                                POOL_USED,
                                                memory_order_acquire,
                                                memory_order_acquire)) {
        bump(&a->dirty_taken, 1);
        return true;
    }
    while (state == POOL_PURGING) {
        sched_yield();
        state = atomic_load_explicit(&pool->state, memory_order_acquire);
    }
    OM_ASSERT(state == POOL_CLEAN);
    omi_pool_set_state(pool, POOL_USED);
    return false;
}

/* Take free pool i (its bit is set in dirty or clean) and make it USED;
 * a reservation on it ends. */
static void take_index(struct arena *a, size_t i)
{
    bit_clear(a->reserved, i);
    if (bit_test(a->dirty, i)) {
        bit_clear(a->dirty, i);
        a->ndirty--;
    } else {
        bit_clear(a->clean, i);
    }
    a->nfree--;
    (void)claim(a, &a->pools[i]);
}

/* Lowest index set in map and not in mask, or -1. */
static int lowest_bit_but(const uint64_t *map, const uint64_t *mask)
{
    for (int w = 0; w < (int)(POOLS_PER_ARENA / 64); w++)
        if (map[w] & ~mask[w])
            return w * 64 + __builtin_ctzll(map[w] & ~mask[w]);
    return -1;
}

/* A free pool: a dirty one first (resident), then a clean one; a reserved
 * one only when there is nothing else. */
struct pool *omi_arena_take_pool(struct arena *a)
{
    int i = lowest_bit_but(a->dirty, a->reserved);

    if (i < 0)
        i = lowest_bit_but(a->clean, a->reserved);
    if (i < 0)
        i = lowest_bit(a->ndirty > 0 ? a->dirty : a->clean);
    OM_ASSERT(a->nfree > 0 && i >= (int)META_POOLS);
    take_index(a, (size_t)i);
    return &a->pools[i];
}

/* The lowest run of n set bits inside one word of map (n <= 64): its
 * first index, or -1.  A run across two words is not seen. */
static int lowest_run(const uint64_t *map, size_t n)
{
    for (int w = 0; w < (int)(POOLS_PER_ARENA / 64); w++) {
        uint64_t starts = map[w];
        for (size_t k = 1; k < n && starts; k++)
            starts &= map[w] >> k;
        if (starts)
            return w * 64 + __builtin_ctzll(starts);
    }
    return -1;
}

struct pool *omi_arena_take_reserving(struct arena *a, size_t n,
                                      bool dirty_only)
{
    uint64_t map[POOLS_PER_ARENA / 64];
    int first;

    if ((dirty_only ? a->ndirty : a->nfree) < n)
        return NULL;
    for (size_t w = 0; w < POOLS_PER_ARENA / 64; w++)
        map[w] = (a->dirty[w] | (dirty_only ? 0 : a->clean[w])) &
                 ~a->reserved[w];
    if ((first = lowest_run(map, n)) < 0)
        return NULL;
    take_index(a, (size_t)first);
    for (size_t j = (size_t)first + 1; j < (size_t)first + n; j++)
        a->reserved[j / 64] |= (uint64_t)1 << (j % 64);
    return &a->pools[first];
}

bool omi_arena_is_reserved(const struct arena *a, const struct pool *pool)
{
    return bit_test(a->reserved, omi_pool_index(pool));
}

bool omi_arena_take_reserved(struct arena *a, struct pool *pool)
{
    size_t i = omi_pool_index(pool);

    if (!bit_test(a->reserved, i))
        return false;
    OM_ASSERT(bit_test(a->dirty, i) || bit_test(a->clean, i));
    take_index(a, i);
    return true;
}

/* A word at a time: the free pools' bits (header pools have none,
 * invariant 2), a run of ones or of zeros per step, carried across words.
 * Testing bit by bit, git log -p under the shim spent 0.9% of its time
 * here (its 32 KiB blocks take spans of 32 pools). */
struct pool *omi_arena_take_run(struct arena *a, size_t n)
{
    size_t run = 0;

    if (a->nfree < n)
        return NULL;
    for (size_t w = 0; w < POOLS_PER_ARENA / 64; w++) {
        uint64_t avail = a->dirty[w] | a->clean[w];
        unsigned bit = 0;

        while (bit < 64) {
            uint64_t rest = avail >> bit;
            /* ~rest has the `bit` top bits set: ones <= 64 - bit */
            unsigned ones = ~rest ? (unsigned)__builtin_ctzll(~rest) : 64;

            if (ones == 0) {
                run = 0;
                bit = rest ? bit + (unsigned)__builtin_ctzll(rest) : 64;
                continue;
            }
            if (run + ones >= n) {
                size_t first = w * 64 + bit - run;

                for (size_t j = first; j < first + n; j++)
                    take_index(a, j);
                return &a->pools[first];
            }
            run += ones;
            bit += ones;
        }
    }
    return NULL;
}

void omi_arena_put_pool(struct arena *a, struct pool *pool)
{
    size_t i = omi_pool_index(pool);

    OM_ASSERT(i >= META_POOLS && !bit_test(a->dirty, i));
    a->dirty[i / 64] |= (uint64_t)1 << (i % 64);
    a->ndirty++;
    a->nfree++;
    atomic_store_explicit(&pool->dirty_since, atomic_load(&epoch),
                          memory_order_relaxed);
    atomic_store_explicit(&pool->state, POOL_DIRTY, memory_order_release);
    bump(&a->dirty_in, 1);
}

/* DIRTY for at least min_age epochs?  Then mark it PURGING (by CAS). */
static bool mark_purging(struct pool *pool, uint16_t now, unsigned min_age)
{
    uint8_t state = POOL_DIRTY;

    if (atomic_load_explicit(&pool->state, memory_order_relaxed) !=
        POOL_DIRTY)
        return false;
    if ((uint16_t)(now - atomic_load_explicit(&pool->dirty_since,
                                              memory_order_relaxed)) <
        min_age)
        return false;
    return atomic_compare_exchange_strong(&pool->state, &state,
                                          POOL_PURGING);
}

/* Give back pools [start, start+n), all PURGING, and make them CLEAN. */
static void purge_run(struct arena *a, size_t start, size_t n)
{
    omi_os_purge(omi_pool_page(&a->pools[start]), n * POOL_SIZE);
    OMI_PROBE2(purge, (uintptr_t)omi_pool_page(&a->pools[start]),
               n * POOL_SIZE);
    for (size_t i = start; i < start + n; i++)
        atomic_store_explicit(&a->pools[i].state, POOL_CLEAN,
                              memory_order_release);
}

size_t omi_arena_purge(struct arena *a, unsigned min_age, bool by_purger)
{
    uint16_t now = atomic_load(&epoch);
    size_t purged = 0, i = META_POOLS;

    if (omi_arena_dirty_count(a) == 0)
        return 0;
    while (i < POOLS_PER_ARENA) {
        size_t start = i;
        while (i < POOLS_PER_ARENA && mark_purging(&a->pools[i], now,
                                                   min_age))
            i++;
        if (i > start) {
            bump(by_purger ? &a->purged_bg : &a->purged_owner,
                 (uint32_t)(i - start));
            purge_run(a, start, i - start);
            purged += i - start;
        } else {
            i++;
        }
    }
    atomic_fetch_add_explicit(&purged_bytes, purged * POOL_SIZE,
                              memory_order_relaxed);
    return purged;
}

size_t omi_arena_sync_hints(struct arena *a)
{
    size_t moved = 0;

    for (size_t i = META_POOLS; a->ndirty > 0 && i < POOLS_PER_ARENA; i++) {
        if (!bit_test(a->dirty, i) ||
            omi_pool_state(&a->pools[i]) == POOL_DIRTY)
            continue;
        bit_clear(a->dirty, i);
        a->clean[i / 64] |= (uint64_t)1 << (i % 64);
        a->ndirty--;
        moved++;
    }
    return moved;
}

/* ---- Epoch, totals and pins for the purger ---- */

uint16_t omi_arena_epoch(void)
{
    return atomic_load(&epoch);
}

void omi_arena_epoch_advance(void)
{
    atomic_fetch_add(&epoch, 1);
}

uint32_t omi_arena_dirty_count(const struct arena *a)
{
    return atomic_load_explicit(&a->dirty_in, memory_order_relaxed) -
           atomic_load_explicit(&a->dirty_taken, memory_order_relaxed) -
           atomic_load_explicit(&a->purged_owner, memory_order_relaxed) -
           atomic_load_explicit(&a->purged_bg, memory_order_relaxed);
}

size_t omi_arena_dirty_total(void)
{
    size_t total = 0;

    omi_arena_lock();
    for (struct arena *a = all_arenas; a; a = a->all_next)
        total += omi_arena_dirty_count(a);
    omi_arena_unlock();
    return total;
}

size_t omi_arena_pin_dirty(struct arena **out, size_t max)
{
    size_t n = 0;

    omi_arena_lock();
    for (struct arena *a = all_arenas; a && n < max; a = a->all_next) {
        if (omi_arena_dirty_count(a)) {
            atomic_fetch_add(&a->pins, 1);
            out[n++] = a;
        }
    }
    omi_arena_unlock();
    return n;
}

void omi_arena_unpin(struct arena *a)
{
    atomic_fetch_sub(&a->pins, 1);
}

/* ---- The global list ---- */

void omi_arena_lock(void)
{
    pthread_mutex_lock(&arena_lock);
}

void omi_arena_unlock(void)
{
    pthread_mutex_unlock(&arena_lock);
}

struct arena *omi_arena_first(void)
{
    return all_arenas;
}

void omi_arena_totals(struct omi_arena_totals *out)
{
    *out = totals;
    out->purged_bytes = atomic_load(&purged_bytes);
}

void omi_arena_fork_prepare(void)
{
    pthread_mutex_lock(&arena_lock);
}

void omi_arena_fork_parent(void)
{
    pthread_mutex_unlock(&arena_lock);
}

void omi_arena_fork_child(void)
{
    pthread_mutex_init(&arena_lock, NULL);
}

/* ---- Checks ---- */

/* Invariant 3 for pool i. */
static bool pool_bits_agree(const struct pool *pool, bool d, bool c)
{
    unsigned state = omi_pool_state(pool);

    if (state == POOL_DIRTY)
        return d && !c;
    if (state == POOL_CLEAN)
        return !(d && c);
    return !d && !c;            /* USED, FULL; never PURGING here */
}

static int check_bits(const struct arena *a)
{
    size_t nd = 0, nc = 0, ndirty_state = 0;

    for (size_t i = 0; i < POOLS_PER_ARENA; i++) {
        const struct pool *pool = &a->pools[i];
        bool d = bit_test(a->dirty, i), c = bit_test(a->clean, i);

        if (i < META_POOLS && (d || c || atomic_load(&pool->owner) ||
                               omi_pool_state(pool) != POOL_CLEAN))
            return omi_check_fail("arena.2", pool, "header pool %zu in use",
                                  i);
        if (i >= META_POOLS && (!pool_bits_agree(pool, d, c) ||
                                (omi_pool_state(pool) == POOL_CLEAN &&
                                 !d && !c)))
            return omi_check_fail("arena.3", pool,
                                  "pool %zu state %u, dirty %d clean %d", i,
                                  omi_pool_state(pool), d, c);
        nd += d;
        nc += c;
        ndirty_state += i >= META_POOLS &&
                        omi_pool_state(pool) == POOL_DIRTY;
    }
    for (size_t w = 0; w < POOLS_PER_ARENA / 64; w++)
        if (a->reserved[w] & ~(a->dirty[w] | a->clean[w]))
            return omi_check_fail("arena.6", a, "a reserved pool is not "
                                  "free (word %zu)", w);
    if (a->nfree != nd + nc || a->ndirty != nd ||
        omi_arena_dirty_count(a) != ndirty_state)
        return omi_check_fail("arena.4", a, "nfree %u ndirty %u dirty_count "
                              "%u, bits %zu+%zu, %zu DIRTY", a->nfree,
                              a->ndirty, omi_arena_dirty_count(a), nd,
                              nc, ndirty_state);
    return 0;
}

struct pool *omi_arena_check_pool(const void *p)
{
    struct arena *a = omi_arena_of(p);
    uintptr_t off;

    if (!a)
        return NULL;
    off = (uintptr_t)p - (uintptr_t)&a->pools[META_POOLS];
    if (off >= USABLE_POOLS * sizeof(struct pool) ||
        off % sizeof(struct pool) != 0)
        return NULL;
    return &a->pools[META_POOLS + off / sizeof(struct pool)];
}

int omi_arena_check(const struct arena *a)
{
    const struct arena *b;

    if (((uintptr_t)a & ARENA_MASK) != 0 || omi_arena_of(a) != a)
        return omi_check_fail("arena.1", a, "not aligned or not in the map");
    for (b = all_arenas; b && b != a; b = b->all_next)
        ;
    if (b != a)
        return omi_check_fail("arena.1", a, "not on the global list");
    return check_bits(a);
}
