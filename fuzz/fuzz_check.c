/*
 * fuzz_check.c - libFuzzer target: om_check() on corrupted metadata, and
 * the no-malloc formatter of its reports (omi_print_format), in the
 * manner of Scudo's get_error_info_fuzzer.  om_check() promises that on
 * a corrupted heap it reports, and never crashes, hangs or writes.
 *
 * The first input builds a heap that every input then corrupts and
 * mends (build_heap): the purger off (purge delay -1); the main
 * thread's heap over three arenas or more, with pools FULL, partial ones
 * whose free lists run in a shuffled order, pools emptied back to their
 * arenas (DIRTY) and never used (CLEAN), blocks in its caches, medium
 * spans (TAIL pools), large blocks (one freed into large.c's cache); the
 * worker's heap (fuzz_util.h: it stays parked) holding blocks that the
 * main thread freed onto its remote list, while the main heap's remote
 * list holds blocks that the worker and a thread now gone freed; that
 * thread's heap, abandoned, with blocks still live.
 *
 * The input is a stream of records, a byte c and the record's bytes (0
 * past the end).  c % 8 names what it corrupts, or the formatter:
 *
 *   c%8  bytes       what
 *   0    a f s t v   arena a's header: field f (heap, next, prev,
 *                    all_next, all_prev, the counts, a bitmap word, a
 *                    class link, any byte), s and t the class and word
 *   1    a p f v     a pool descriptor: p one of the pools picked at
 *                    build time (each state), or (a & 0x80) pool p of
 *                    arena a; field f, or (f % 10 == 9) any byte
 *   2    k k v       the link word of a free, cached or remote block
 *   3    h f s v     heap h's fields: first, cache head and count,
 *                    partial_arenas, next_pool, remote, state, counts,
 *                    bins, binmap (s: the class or bin)
 *   4    l e v       large block l's table entry (address, size), the
 *                    first cached mapping (address, size, head),
 *                    max_count
 *   5    a b         one bit of the arena map, in arena a's word
 *   6,7  t n z ...   a format test (format_test): argument type t,
 *                    1 + n % 4 conversions (each: flags, width,
 *                    conversion, literal), a closing literal, four
 *                    8-byte arguments; z % 65 the small buffer's size
 *
 * A value v is a kind byte and its own bytes: xor a byte (x, o), eight
 * raw bytes, another real object's address (an arena, a pool
 * descriptor, a heap, a block) plus a signed byte, NULL, the field's
 * own address, a small number, the old value plus or minus one, a real
 * object's address exactly.  The heap list, the arena list's head and
 * the map beyond single bits are not corrupted: om_check trusts them
 * (check.c says why).
 *
 * Invariants (each checked; fail() aborts with one line otherwise):
 *   1. With the edits applied, om_check() returns 0 or -EFAULT (its
 *      report goes to /dev/null unless FUZZ_CHECK_VERBOSE is set: the
 *      sanitizers report on a copy of stderr, but a gcc build's UBSan
 *      only on fd 2), and never crashes or hangs.  Nothing allocates
 *      through objmem between the first edit and the last restore.
 *   2. Restored, in reverse order, om_check() == 0 and the block
 *      counters are those of the build: om_check wrote nothing but its
 *      scratch fields, and allocated nothing.
 *   3. A format (only the conversions it supports, arguments of their
 *      types) gives the same length into a buffer of the size the input
 *      picks (0..64), of 0, of its length and one more, as into a big
 *      one, the same first bytes, a terminator, nothing written past
 *      the size (ASan) or at all when the size is 0; and
 *      vsnprintf's output where the C library's meaning is the same
 *      (not %p, nor a %c with a width, nor '0' with %s, nor NULL).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objmem.h"
#include "heap.h"
#include "large.h"
#include "tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS 64
#define MAX_EDITS 24
#define MAX_ARENAS 16
#define MAX_HEAPS 8
#define MAX_POOLS 128
#define MAX_LINKS 1024
#define MAX_OBJS 512
#define MAX_LARGE 4

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_check: %s\n", what);
    abort();
}

#include "fuzz_util.h"

/* The sanitizers' reports keep going to the real stderr while fd 2 is
 * /dev/null (a crash inside om_check must be seen). */
void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

/* ---- What the build left: the targets of the edits ---- */

static struct {
    bool built;
    struct arena *arenas[MAX_ARENAS];
    size_t narenas;
    struct heap *heaps[MAX_HEAPS];
    size_t nheaps;
    struct pool *pools[MAX_POOLS];      /* one of each kind per arena */
    size_t npools;
    void *links[MAX_LINKS];             /* free, cached, remote blocks */
    size_t nlinks;
    uintptr_t objs[MAX_OBJS];           /* real objects' addresses */
    size_t nobjs;
    void *large[MAX_LARGE];
    size_t nlarge;
    struct omi_large_debug large_at[MAX_LARGE];   /* their fields */
    unsigned classes[NCLASSES];         /* the classes in use */
    size_t nclasses;
    struct counts counts;
    int devnull, report_fd;
    bool verbose;
} built;

/* One edit, undone at the end of the input. */
struct edit {
    unsigned char *addr;
    unsigned width;
    unsigned char saved[8];
};

static struct edit edits[MAX_EDITS];
static size_t nedits;

/* Bytes of metadata or of a free block (ASan poisons those), read and
 * written one at a time through volatile: no memcpy for ASan to see. */
static OM_NO_ASAN void peek(const void *addr, unsigned char *out, size_t n)
{
    const volatile unsigned char *p = addr;

    for (size_t i = 0; i < n; i++)
        out[i] = p[i];
}

static OM_NO_ASAN void poke(void *addr, const unsigned char *in, size_t n)
{
    volatile unsigned char *p = addr;

    for (size_t i = 0; i < n; i++)
        p[i] = in[i];
}

static void *peek_ptr(const void *addr)
{
    void *v;

    peek(addr, (unsigned char *)&v, sizeof(v));
    return v;
}

/* ---- Building the heap ---- */

static uint64_t rng = 0x5eedc0de;

static uint64_t next_random(void)
{
    uint64_t x = rng += 0x9e3779b97f4a7c15ull;

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void shuffle(void **b, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = next_random() % i;
        void *t = b[i - 1];

        b[i - 1] = b[j];
        b[j] = t;
    }
}

/* A batch: n blocks of size bytes, of one family. */
struct batch {
    size_t size, n;
    enum family fam;
    void **b;
};

#define NBATCH 9
static struct batch main_batches[NBATCH] = {
    { 512, 4800, MEM, NULL }, { 16, 2048, GP, NULL },
    { 48, 850, OBJ, NULL },   { 128, 320, MEM, NULL },
    { 256, 400, GP, NULL },   { 1000, 40, GP, NULL },
    { 3000, 24, GP, NULL },   { 20000, 8, GP, NULL },
    { 80, 300, MEM, NULL },
};

static void alloc_batch(struct batch *bt)
{
    bt->b = calloc(bt->n, sizeof(void *));
    if (!bt->b)
        fail("out of memory (libc)");
    for (size_t i = 0; i < bt->n; i++) {
        if (i % 7 == 3)
            bt->b[i] = call_calloc(bt->fam, 1, bt->size);
        else
            bt->b[i] = call_malloc(bt->fam, bt->size);
        if (!bt->b[i])
            fail("build: an allocation failed");
    }
}

/* Free the blocks of bt from index from, a share of them (per 16) in a
 * shuffled order; whole stretches when share is 16. */
static void free_some(struct batch *bt, size_t from, size_t to,
                      unsigned share)
{
    size_t n = 0;
    void **order;

    if (to > bt->n)
        to = bt->n;
    order = calloc(to - from + 1, sizeof(void *));
    if (!order)
        fail("out of memory (libc)");
    for (size_t i = from; i < to; i++) {
        if (bt->b[i] && next_random() % 16 < share) {
            order[n++] = bt->b[i];
            bt->b[i] = NULL;
        }
    }
    shuffle(order, n);
    for (size_t i = 0; i < n; i++)
        call_free(bt->fam, order[i]);
    free(order);
}

/* The worker's and the passing thread's jobs. */
static struct batch worker_batch = { 64, 400, MEM, NULL };
static struct batch gone_batch = { 96, 300, MEM, NULL };
static struct batch gone_medium = { 2000, 16, GP, NULL };

static void worker_alloc(void *unused)
{
    (void)unused;
    alloc_batch(&worker_batch);
    free_some(&worker_batch, 0, 40, 8);         /* its own frees */
}

/* Free some of blocks 100..259 of the main heap's batch arg from this
 * thread: remote frees. */
static void worker_free_main(void *arg)
{
    free_some(arg, 100, 260, 6);
}

static void *gone_main(void *unused)
{
    (void)unused;
    alloc_batch(&gone_batch);
    alloc_batch(&gone_medium);
    free_some(&main_batches[1], 0, 200, 4);     /* remote to main */
    free_some(&main_batches[6], 0, 12, 8);      /* spans' blocks too */
    free_some(&gone_batch, 0, 100, 8);
    return NULL;
}

static void build_blocks(void)
{
    pthread_t t;
    void *big[MAX_LARGE];

    for (int i = 0; i < NBATCH; i++)
        alloc_batch(&main_batches[i]);
    for (int i = 0; i < MAX_LARGE; i++)
        if (!(big[i] = call_malloc(GP, (size_t)(100 + 40 * i) << 10)))
            fail("build: a large allocation failed");
    big[1] = call_realloc(GP, big[1], 300 << 10);
    for (int i = 0; i < 3; i++)
        built.large[built.nlarge++] = big[i];
    /* Whole pools emptied (DIRTY), partial ones, FULL ones untouched. */
    for (int i = 0; i < NBATCH; i++) {
        struct batch *bt = &main_batches[i];

        free_some(bt, bt->n / 8, bt->n / 4, 16);
        free_some(bt, bt->n / 2, bt->n, 6);
    }
    om_collect(false);                          /* caches flushed */
    /* Frees into FULL pools: the caches. */
    free_some(&main_batches[0], 0, 40, 4);
    free_some(&main_batches[1], 0, 64, 3);
    free_some(&main_batches[3], 0, 30, 5);
    /* The worker first: a thread's first heap adopts an abandoned one. */
    on_worker(worker_alloc, NULL);
    if (pthread_create(&t, NULL, gone_main, NULL) != 0 ||
        pthread_join(t, NULL) != 0)
        fail("build: the passing thread");
    free_some(&gone_batch, 100, 300, 4);        /* into its heap */
    free_some(&worker_batch, 40, 400, 5);       /* remote to the worker */
    on_worker(worker_free_main, &main_batches[4]);
    call_free(GP, big[3]);                      /* into large.c's cache */
}

/* ---- Recording what the build left ---- */

static void add_obj(const void *p)
{
    if (p && built.nobjs < MAX_OBJS)
        built.objs[built.nobjs++] = (uintptr_t)p;
}

static void add_link(void *b)
{
    if (built.nlinks < MAX_LINKS) {
        built.links[built.nlinks++] = b;
        if (built.nlinks % 8 == 1)
            add_obj(b);
    }
}

/* The blocks of a list through their first word, at most max. */
static size_t record_list(void *b, size_t max)
{
    size_t n = 0;

    for (; b && n < max; n++, b = peek_ptr(b))
        add_link(b);
    return n;
}

static bool is_first(const struct pool *pool)
{
    for (size_t h = 0; h < built.nheaps; h++)
        if (built.heaps[h]->first[pool->sc % NCLASSES] == pool)
            return true;
    return false;
}

/* The kind of a pool, for picking one of each per arena. */
static unsigned pool_kind(const struct arena *a, size_t i)
{
    const struct pool *pool = &a->pools[i];
    unsigned state = omi_pool_state(pool);

    if (i < META_POOLS)
        return 0;
    if (state == POOL_USED)
        return is_first(pool) ? 1 : pool->sc >= NSMALL ? 2 : 3;
    return 4 + state;                   /* CLEAN DIRTY . FULL . TAIL */
}

static void record_arena(struct arena *a)
{
    unsigned seen = 0;

    add_obj(a);
    for (size_t i = 0; i < POOLS_PER_ARENA; i++) {
        struct pool *pool = &a->pools[i];
        unsigned k = pool_kind(a, i), state = omi_pool_state(pool);

        if (!(seen & (1u << k)) && built.npools < MAX_POOLS) {
            seen |= 1u << k;
            built.pools[built.npools++] = pool;
            add_obj(pool);
        }
        if (state == POOL_USED)
            record_list(pool->free, i % 5 == 0 ? 64 : 2);
    }
}

static void record_classes(void)
{
    bool used[NCLASSES] = { false };

    for (size_t k = 0; k < built.narenas; k++)
        for (size_t i = META_POOLS; i < POOLS_PER_ARENA; i++) {
            const struct pool *pool = &built.arenas[k]->pools[i];
            unsigned state = omi_pool_state(pool);

            if ((state == POOL_USED || state == POOL_FULL) &&
                pool->sc < NCLASSES)
                used[pool->sc] = true;
        }
    for (unsigned sc = 0; sc < NCLASSES; sc++)
        if (used[sc])
            built.classes[built.nclasses++] = sc;
}

static void record(void)
{
    struct heap *h;
    struct arena *a;

    for (h = omi_heap_first(); h && built.nheaps < MAX_HEAPS;
         h = omi_heap_next(h))
        built.heaps[built.nheaps++] = h;
    for (a = omi_arena_first(); a && built.narenas < MAX_ARENAS;
         a = a->all_next)
        built.arenas[built.narenas++] = a;
    if (h || a)
        fail("build: more heaps or arenas than the tables hold");
    for (size_t k = 0; k < built.nheaps; k++) {
        add_obj(built.heaps[k]);
        for (unsigned sc = 0; sc < NSMALL; sc++)
            record_list(built.heaps[k]->cache[sc].head, 64);
        record_list(atomic_load(&built.heaps[k]->remote), 512);
    }
    for (size_t k = 0; k < built.narenas; k++)
        record_arena(built.arenas[k]);
    for (size_t k = 0; k < built.nlarge; k++) {
        add_obj(built.large[k]);
        omi_large_debug(built.large[k], &built.large_at[k]);
        if (!built.large_at[k].size || !built.large_at[k].cached_addr)
            fail("build: a large block or the cached mapping is missing");
    }
    for (int i = 0; i < NBATCH; i++)
        for (size_t j = 0; j < main_batches[i].n; j += 97)
            add_obj(main_batches[i].b[j]);
    record_classes();
}

/* The build made what the edits are meant to reach (the seeds cover
 * each): else a change elsewhere has quietly made this target weaker. */
static void check_build(void)
{
    unsigned kinds = 0, states = 0;
    size_t cached = 0, remote = 0;

    for (size_t k = 0; k < built.npools; k++)
        kinds |= 1u << pool_kind(omi_arena_of_pool(built.pools[k]),
                                 omi_pool_index(built.pools[k]));
    for (size_t k = 0; k < built.nheaps; k++) {
        states |= 1u << atomic_load(&built.heaps[k]->state);
        remote += atomic_load(&built.heaps[k]->remote) != NULL;
        for (unsigned sc = 0; sc < NSMALL; sc++)
            cached += built.heaps[k]->cache[sc].count;
    }
    /* kinds: header, first, medium partial, small partial, CLEAN, DIRTY,
     * FULL and TAIL pools (pool_kind). */
    if (built.narenas < 4 || built.nheaps < 3 || kinds != 0x2bf ||
        !(states & (1u << HEAP_ABANDONED)) || remote < 2 || cached == 0)
        fail("build: the heap lacks a state the edits need");
}

static void build_heap(void)
{
    if (om_set_purge_delay(-1) != 0)
        fail("om_set_purge_delay");
    build_blocks();
    record();
    check_build();
    if (om_check() != 0)
        fail("om_check fails on the heap just built");
    built.counts = counts_now();
    built.devnull = open("/dev/null", O_WRONLY);
    built.report_fd = dup(2);
    if (built.devnull < 0 || built.report_fd < 0)
        fail("cannot open /dev/null");
    if (__sanitizer_set_report_fd)
        __sanitizer_set_report_fd((void *)(intptr_t)built.report_fd);
    built.verbose = getenv("FUZZ_CHECK_VERBOSE") != NULL;
    built.built = true;
}

/* ---- The edits ---- */

/* Save width bytes at addr, then write the value the input asks for. */
static void edit(struct reader *r, void *addr, unsigned width)
{
    struct edit *e;
    uint64_t old = 0, v;
    unsigned kind = take(r) % 8;

    if (nedits == MAX_EDITS || !addr)
        return;
    e = &edits[nedits++];
    e->addr = addr;
    e->width = width;
    peek(addr, e->saved, width);
    memcpy(&old, e->saved, width);
    switch (kind) {
    case 0: {                                   /* xor a byte */
        unsigned x = take(r), o = take(r) % width;

        v = old ^ ((uint64_t)(x ? x : 0x80) << (8 * o));
        break;
    }
    case 1:
        v = take_bytes(r, 8);
        break;
    case 2: {                                   /* an object, +- delta */
        size_t k = take(r);

        v = built.objs[k % built.nobjs] + (uint64_t)(int64_t)(int8_t)take(r);
        break;
    }
    case 3:
        v = 0;
        break;
    case 4:
        v = (uintptr_t)addr;
        break;
    case 5:
        v = take(r);
        break;
    case 6:
        v = take(r) & 1 ? old + 1 : old - 1;
        break;
    default:
        v = built.objs[take(r) % built.nobjs];
    }
    poke(addr, (unsigned char *)&v, width);
}

/* The address of the field at off in the struct at base (an atomic one
 * too: the edits write bytes). */
static void *field(void *base, size_t off)
{
    return (char *)base + off;
}

/* A class: one in use (s < 128), or any. */
static unsigned pick_class(unsigned s, unsigned n)
{
    if (s < 128 && built.nclasses) {
        unsigned sc = built.classes[s % built.nclasses];

        if (sc < n)
            return sc;
    }
    return s % n;
}

static void edit_arena(struct reader *r)
{
    struct arena *a = built.arenas[take(r) % built.narenas];
    unsigned f = take(r) % 16, s = take(r), t = take(r);
    unsigned sc = pick_class(s, NCLASSES);
    static const size_t ptrs[] = {
        offsetof(struct arena, heap), offsetof(struct arena, next),
        offsetof(struct arena, prev), offsetof(struct arena, all_next),
        offsetof(struct arena, all_prev),
    };

    if (f < 5)
        edit(r, (char *)a + ptrs[f], 8);
    else if (f == 5)
        edit(r, &a->nfree, 4);
    else if (f == 6)
        edit(r, &a->ndirty, 4);
    else if (f == 7)                    /* dirty_in .. pins */
        edit(r, field(a, offsetof(struct arena, dirty_in) + 4 * (s % 5)),
             4);
    else if (f == 8)
        edit(r, &a->dirty[t % 4], 8);
    else if (f == 9)
        edit(r, &a->clean[t % 4], 8);
    else if (f == 10)
        edit(r, &a->reserved[t % 4], 8);
    else if (f == 11)
        edit(r, &a->partial[sc][t % 4], 8);
    else if (f == 12)
        edit(r, &a->cls_next[sc], 8);
    else if (f == 13)
        edit(r, &a->cls_prev[sc], 8);
    else
        edit(r, (char *)a + (s | t << 8) % offsetof(struct arena, pools), 1);
}

static void edit_pool(struct reader *r)
{
    unsigned a = take(r), p = take(r), f = take(r) % 10;
    struct pool *pool;
    static const struct { unsigned char off, width; } fields[] = {
        { offsetof(struct pool, owner), 8 },
        { offsetof(struct pool, free), 8 },
        { offsetof(struct pool, sc), 1 },
        { offsetof(struct pool, state), 1 },
        { offsetof(struct pool, used), 2 },
        { offsetof(struct pool, dirty_since), 2 },
        { offsetof(struct pool, scratch), 2 },
        { offsetof(struct pool, traced), 2 },
        { offsetof(struct pool, tags), 4 },
    };

    if (a & 0x80)
        pool = &built.arenas[a % built.narenas]->pools[p];
    else
        pool = built.pools[p % built.npools];
    if (f < 9)
        edit(r, (char *)pool + fields[f].off, fields[f].width);
    else
        edit(r, (char *)pool + take(r) % sizeof(*pool), 1);
}

static void edit_link(struct reader *r)
{
    size_t k = take_bytes(r, 2);

    if (built.nlinks)
        edit(r, built.links[k % built.nlinks], 8);
}

static void edit_heap(struct reader *r)
{
    struct heap *h = built.heaps[take(r) % built.nheaps];
    unsigned f = take(r) % 14, s = take(r);
    unsigned sc = pick_class(s, NCLASSES), ssc = pick_class(s, NSMALL);

    switch (f) {
    case 0: edit(r, &h->first[sc], 8); break;
    case 1: edit(r, &h->cache[ssc].head, 8); break;
    case 2: edit(r, &h->cache[ssc].count, 4); break;
    case 3: edit(r, &h->partial_arenas[sc], 8); break;
    case 4: edit(r, &h->next_pool[ssc], 8); break;
    case 5: edit(r, field(h, offsetof(struct heap, remote)), 8); break;
    case 6: edit(r, field(h, offsetof(struct heap, state)), 4); break;
    case 7:
        edit(r, field(h, offsetof(struct heap, collect_request)), 4);
        break;
    case 8: edit(r, &h->ndirty, 8); break;
    case 9: edit(r, &h->nempty, 8); break;
    case 10: edit(r, &h->trim_epoch, 2); break;
    case 11: edit(r, &h->policy, 1); break;
    case 12: edit(r, &h->bins[s % NBINS], 8); break;
    default: edit(r, &h->binmap, 8); break;
    }
}

static void edit_large(struct reader *r)
{
    const struct omi_large_debug *d =
        &built.large_at[take(r) % built.nlarge];
    unsigned e = take(r) % 6;

    if (e == 0)
        edit(r, (char *)d->size - sizeof(uintptr_t), 8);    /* addr */
    else if (e == 1)
        edit(r, d->size, 8);
    else if (e == 2)
        edit(r, d->cached_addr, 8);
    else if (e == 3)
        edit(r, (char *)d->cached_addr + sizeof(void *), 8);  /* size */
    else if (e == 4)
        edit(r, d->max_count, 8);
    else
        edit(r, d->cached_head, 8);
}

/* The word of the arena map that marks the arena at a. */
static _Atomic uint64_t *map_word_of(const void *a)
{
    _Atomic uint64_t *w = omi_arena_map_word(a);

    if (!w)
        fail("an arena's leaf of the map is not mapped");
    return w;
}

/* Flip one bit: the arena's own, a neighbour's, or any of the word. */
static void edit_map(struct reader *r)
{
    struct arena *a = built.arenas[take(r) % built.narenas];
    unsigned b = take(r), slot = ((uintptr_t)a >> ARENA_BITS) % 64, bit;
    uint64_t old, v;
    struct edit *e;

    if (nedits == MAX_EDITS)
        return;
    bit = b % 4 == 0 ? slot : b % 4 == 1 ? slot + 1 : b % 4 == 2 ?
          slot + 63 : b >> 2;
    e = &edits[nedits++];
    e->addr = (unsigned char *)(uintptr_t)map_word_of(a);
    e->width = 8;
    peek(e->addr, e->saved, 8);
    memcpy(&old, e->saved, 8);
    v = old ^ ((uint64_t)1 << (bit % 64));
    poke(e->addr, (unsigned char *)&v, 8);
}

static void restore_edits(void)
{
    while (nedits > 0) {
        nedits--;
        poke(edits[nedits].addr, edits[nedits].saved, edits[nedits].width);
    }
}

/* om_check with its report sent to /dev/null. */
static int check_quietly(void)
{
    int rc;

    if (built.verbose)
        return om_check();
    if (dup2(built.devnull, 2) < 0)
        fail("dup2");
    rc = om_check();
    if (dup2(built.report_fd, 2) < 0)
        fail("dup2");
    return rc;
}

/* ---- The formatter ---- */

/* The argument types, each with the conversions that take it. */
enum argtype { T_INT, T_UNSIGNED, T_LONG, T_ULONG, T_PTRDIFF, T_SIZE,
               T_PTR, T_STRING, NTYPES };

static const char *const convs[NTYPES][2] = {
    { "d", "c" }, { "u", "x" }, { "ld", "ld" }, { "lu", "lx" },
    { "zd", "zd" }, { "zu", "zx" }, { "p", "p" }, { "s", "s" },
};

static const char *const strings[] = {
    "", "a", "objmem", "pool.3", "%d %s %%",
    "a string of seventy characters, longer than any width a test uses",
    NULL,
};
#define NSTRINGS (sizeof(strings) / sizeof(strings[0]))

static int format(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = omi_print_format(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* Call f (format or snprintf) with the four arguments as type t. */
#define CALL_AS(f, buf, size, fmt, t, v)                                  \
    ((t) == T_INT ? f(buf, size, fmt, (int)v[0], (int)v[1], (int)v[2],   \
                      (int)v[3]) :                                        \
     (t) == T_UNSIGNED ? f(buf, size, fmt, (unsigned)v[0],               \
                           (unsigned)v[1], (unsigned)v[2],                \
                           (unsigned)v[3]) :                              \
     (t) == T_LONG ? f(buf, size, fmt, (long)v[0], (long)v[1],           \
                       (long)v[2], (long)v[3]) :                          \
     (t) == T_ULONG ? f(buf, size, fmt, (unsigned long)v[0],             \
                        (unsigned long)v[1], (unsigned long)v[2],         \
                        (unsigned long)v[3]) :                            \
     (t) == T_PTRDIFF ? f(buf, size, fmt, (ptrdiff_t)v[0],               \
                          (ptrdiff_t)v[1], (ptrdiff_t)v[2],               \
                          (ptrdiff_t)v[3]) :                              \
     (t) == T_SIZE ? f(buf, size, fmt, (size_t)v[0], (size_t)v[1],       \
                       (size_t)v[2], (size_t)v[3]) :                      \
     (t) == T_PTR ? f(buf, size, fmt, (void *)(uintptr_t)v[0],           \
                      (void *)(uintptr_t)v[1], (void *)(uintptr_t)v[2],   \
                      (void *)(uintptr_t)v[3]) :                          \
     f(buf, size, fmt, strings[v[0] % NSTRINGS],                          \
       strings[v[1] % NSTRINGS], strings[v[2] % NSTRINGS],                \
       strings[v[3] % NSTRINGS]))

/* Format into a buffer of exactly size bytes (its own, so that ASan sees
 * a write past it): the big result's length, its first bytes, the
 * terminator; a size of 0 writes nothing. */
static void format_into(size_t size, const char *fmt, enum argtype t,
                        const uint64_t *v, const char *big, int len)
{
    char *buf = malloc(size ? size : 1);
    int n;

    if (!buf)
        fail("out of memory (libc)");
    buf[0] = 'Z';
    n = CALL_AS(format, buf, size, fmt, t, v);
    if (n != len)
        fail("format: the length depends on the buffer's size");
    if (size == 0 && buf[0] != 'Z')
        fail("format: a buffer of 0 bytes was written");
    if (size > 0) {
        size_t keep = (size_t)len < size - 1 ? (size_t)len : size - 1;

        if (buf[keep] != '\0' || memcmp(buf, big, keep) != 0)
            fail("format: truncated output differs or is not terminated");
    }
    free(buf);
}

/* Literal characters, never '%'. */
static void put_literal(struct reader *r, char *fmt, size_t *len)
{
    unsigned n = take(r) % 4;

    for (unsigned i = 0; i < n; i++) {
        char c = (char)(' ' + take(r) % 95);

        fmt[(*len)++] = c == '%' ? '_' : c;
    }
}

/* A format of up to four conversions that take one argument type, with
 * flags, widths, "%%" and literals between; its four arguments. */
static void format_test(struct reader *r)
{
    char fmt[128], big[4096], ref[4096];
    enum argtype t = take(r) % NTYPES;
    unsigned nconv = 1 + take(r) % 4, size = take(r) % 65;
    uint64_t v[4];
    bool comparable = t != T_PTR;
    size_t len = 0;
    int n;

    for (unsigned i = 0; i < nconv; i++) {
        unsigned fl = take(r), width = take(r) % 100;
        const char *c = convs[t][take(r) % 2];

        put_literal(r, fmt, &len);
        if (fl & 8) {
            memcpy(fmt + len, "%%", 2);
            len += 2;
        }
        fmt[len++] = '%';
        if (fl & 1)
            fmt[len++] = '-';
        if (fl & 2)
            fmt[len++] = '0';
        if (fl & 4)
            len += (size_t)sprintf(fmt + len, "%u", width);
        len += (size_t)sprintf(fmt + len, "%s", c);
        if ((*c == 'c' && (fl & 6)) || (*c == 's' && (fl & 2)))
            comparable = false;
    }
    put_literal(r, fmt, &len);
    fmt[len] = '\0';
    for (int i = 0; i < 4; i++) {
        v[i] = take_bytes(r, 8);
        if (t == T_STRING && strings[v[i] % NSTRINGS] == NULL)
            comparable = false;
    }
    n = CALL_AS(format, big, sizeof(big), fmt, t, v);
    if (n < 0 || n >= (int)sizeof(big) || big[n] != '\0')
        fail("format: the big buffer's result is not terminated");
    if (comparable) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        int m = CALL_AS(snprintf, ref, sizeof(ref), fmt, t, v);
#pragma GCC diagnostic pop

        if (m != n || memcmp(ref, big, (size_t)n) != 0)
            fail("format: output differs from the C library's");
    }
    format_into(size, fmt, t, v, big, n);
    format_into(0, fmt, t, v, big, n);
    if (n < 64) {
        format_into((size_t)n, fmt, t, v, big, n);
        format_into((size_t)n + 1, fmt, t, v, big, n);
    }
}

/* ---- The input ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = { data, size };
    struct counts after;
    int rc;

    if (!built.built)
        build_heap();
    nedits = 0;
    for (int i = 0; i < MAX_RECORDS && r.n > 0; i++) {
        switch (take(&r) % 8) {
        case 0: edit_arena(&r); break;
        case 1: edit_pool(&r); break;
        case 2: edit_link(&r); break;
        case 3: edit_heap(&r); break;
        case 4: edit_large(&r); break;
        case 5: edit_map(&r); break;
        default: format_test(&r); break;
        }
    }
    if (nedits == 0)
        return 0;
    rc = check_quietly();
    restore_edits();
    if (rc != 0 && rc != -EFAULT)
        fail("om_check on a corrupted heap returned neither 0 nor -EFAULT");
    if (om_check() != 0)
        fail("om_check fails once the edits are undone: it wrote");
    after = counts_now();
    if (memcmp(&after, &built.counts, sizeof(after)) != 0)
        fail("the block counters moved: something allocated");
    return 0;
}
