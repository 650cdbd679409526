/*
 * tags.c - X (cross-cutting): the traces of objmem's own small blocks,
 * kept beside their pages instead of in trace.c's hash table.
 *
 * A hash table keyed by the block's address costs a cache miss on every
 * malloc and every free (the slots of consecutive blocks lie far apart)
 * and 30 to 45 bytes a trace.  A small block of objmem's lies in a pool
 * page of one class, so its trace can be a word in an array beside the
 * page, at the block's index: consecutive blocks, consecutive words,
 * 8 bytes a trace, and no lock.
 *
 *   pool:   the page's descriptor (pool.h) holds its record's handle,
 *           32 bits: chunk number << 13 | 32-byte unit in the chunk
 *           (0: none), so the lookup costs no load beyond the
 *           descriptor the free path reads anyway
 *   chunks: 256 KiB mappings records are cut from (chunks[], at most
 *           16384: 4 GiB of records; beyond, the hash table)
 *   record: | sc | capacity | handle | page | next | prev |
 *           tag[capacity] |, 32-aligned; next and prev link the records
 *           in use (those with a page), next alone a free list
 *   tag:    | time:21 | epoch:2 | slack:6 | inner:5 | domain:5 |
 *           sampled:1 | tb + 1:24 |   0: no trace; size = class size -
 *           slack; inner: where in its block the pointer is, in 16-byte
 *           steps (0 but under the debug hooks, whose pointers are 16
 *           bytes in); epoch: the low bits of trace.c's generation, so
 *           that a tag written as a clear or a stop came reads as none
 *
 * A record is made for a page (under `lock`, from a chunk) the first
 * time a block of it is traced.  When L2 gives the page back (every block
 * of it free: no thread can be writing one of its tags), its record,
 * zeroed, goes to the free list of its class, and the descriptor's
 * handle to 0: a page never changes class with a record.  Without that,
 * a third of the records of Python's churn were of pages no longer in
 * use (907 of 3121).  Records are never unmapped: stopping tracing
 * zeroes them, and the next traces reuse them (tracing after a stop must
 * not find a record gone under a late writer).
 *
 * A tag is written by the thread that allocated the block and cleared by
 * the one that frees it, with plain (relaxed) atomic loads and stores: no
 * two threads hold the same block, so no locked instruction is needed.
 * A tag written as tracing stops or clears carries the old epoch, and
 * every reader takes it for none.  Readers (snapshots, om_check) hold
 * `lock`, so no record changes page under them.
 *
 * A block that cannot be tagged (not in an arena, a medium or large
 * block, a tracked domain beyond 127, no memory for a record) goes to the
 * hash table: trace.c asks here first.
 *
 * Invariants (omi_tags_check):
 *   1. A non-zero tag lies in a record whose page is a small pool of the
 *      record's class (USED or FULL), at an index below its capacity.
 *   2. A record on a free list has no non-zero tag.
 *   3. recip divides exactly: (g * recip[d]) >> 16 == g / d for every
 *      step g in a page and every small class's d.
 *   4. A record with a page is the one its page's descriptor names, and
 *      the page is a small pool (USED or FULL) of the record's class: a
 *      page given back keeps no record (pool.h's invariant 6 is the
 *      descriptors' side).
 *   5. Every record made is on exactly one list: in use (with a page,
 *      linked both ways) or its class's free list (no page).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "arena.h"
#include "os.h"
#include "pool.h"
#include "trace.h"

#define PAGE_BITS 12
#define TB_BITS 24
#define DOMAIN_SHIFT 25
#define INNER_SHIFT 30
#define SLACK_SHIFT 35
#define EPOCH_SHIFT 41
#define TIME_SHIFT 43
#define MAX_DOMAIN 31
#define MAX_INNER 31
#define MAX_SLACK 63
#define MAX_TIME ((1u << 21) - 1)
#define EPOCHS 3
#define RECORD_ALIGN 32
#define UNIT_BITS 5                     /* a handle counts 32-byte units */
#define CHUNK_BITS 18                   /* records come in 256 KiB chunks */
#define CHUNK ((size_t)1 << CHUNK_BITS)
#define MAX_CHUNKS 16384                /* 4 GiB of records */

_Static_assert(POOL_SIZE == (size_t)1 << PAGE_BITS, "a pool is a page");
_Static_assert(NSMALL <= 32 && ALIGNMENT == 16, "recip's classes");
_Static_assert(RECORD_ALIGN == 1 << UNIT_BITS, "a unit is an alignment");
_Static_assert((uint64_t)MAX_CHUNKS << (CHUNK_BITS - UNIT_BITS) <=
                   (uint64_t)1 << 32, "a handle is 32 bits");

struct record {
    uint16_t sc;
    uint16_t capacity;
    uint32_t handle;                    /* its own handle */
    uintptr_t page;                     /* its page's address; 0: free */
    struct record *next;                /* in use, or on a free list */
    struct record *prev;                /* in use; NULL on a free list */
    _Atomic uint64_t tag[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* The chunks records are cut from, in the order they were mapped: a
 * handle's high bits index them.  A slot is written (under lock) before
 * any handle into its chunk is published (release), so a reader that
 * loaded a handle (acquire) reads the slot written. */
static char *chunks[MAX_CHUNKS];
static size_t nchunks, chunk_used;      /* under lock */
static char *spare;                     /* a chunk mapped, not yet cut */
static struct record *free_records[NSMALL];
/* The records with a page, the only ones walks read: a walk of every
 * record ever made (the list before) read each free one's header, a
 * cache miss apiece.  Python dicts' capture at exit, after its peak left
 * tens of thousands of records free, took 9.3 ms, half of it there. */
static struct record *live_records;     /* under lock */
static size_t nrecords;                 /* made, under lock */

/* ---- Records and their handles ---- */

OM_INLINE struct record *record_at(uint32_t h)
{
    return (struct record *)(chunks[h >> (CHUNK_BITS - UNIT_BITS)] +
                             ((size_t)(h & ((1u << (CHUNK_BITS - UNIT_BITS)) -
                                            1)) << UNIT_BITS));
}

/* size bytes (a multiple of RECORD_ALIGN) of zeroed memory for a record,
 * with its handle in *h: NULL when the last chunk is full and there is
 * no spare (or no more handles).  Under lock.  The first unit of the
 * first chunk is left unused: handle 0 is none. */
static struct record *record_room(size_t size, uint32_t *h)
{
    if (nchunks == 0 || chunk_used + size > CHUNK) {
        if (nchunks == MAX_CHUNKS || !spare)
            return NULL;
        chunks[nchunks++] = spare;
        spare = NULL;
        chunk_used = nchunks == 1 ? RECORD_ALIGN : 0;
    }
    *h = (uint32_t)((nchunks - 1) << (CHUNK_BITS - UNIT_BITS) |
                    chunk_used >> UNIT_BITS);
    chunk_used += size;
    return record_at(*h);
}

/* The record of a small pool's page, or NULL.  Its class is the pool's:
 * the record goes (omi_tags_pool_released) before the page changes
 * class. */
OM_INLINE struct record *record_of(const struct pool *pool)
{
    uint32_t h = atomic_load_explicit(&pool->tags, memory_order_acquire);

    return h ? record_at(h) : NULL;
}

/* A record for class sc, from its free list or new: NULL when a new one
 * needs a chunk and there is no spare.  Under lock. */
static struct record *record_new(unsigned sc)
{
    struct record *r = free_records[sc];
    size_t cap = omi_class_capacity(sc);
    uint32_t h;

    if (r) {
        free_records[sc] = r->next;
        r->next = NULL;
        return r;
    }
    r = record_room((sizeof(*r) + cap * sizeof(r->tag[0]) + RECORD_ALIGN -
                     1) & ~(size_t)(RECORD_ALIGN - 1), &h);
    if (!r)
        return NULL;
    r->sc = (uint16_t)sc;
    r->capacity = (uint16_t)cap;
    r->handle = h;
    nrecords++;
    return r;
}

/* r gets page p and joins the records in use.  Under lock. */
static void record_use(struct record *r, uintptr_t p)
{
    r->page = p & ~(uintptr_t)(POOL_SIZE - 1);
    r->prev = NULL;
    r->next = live_records;
    if (live_records)
        live_records->prev = r;
    live_records = r;
}

/* Put r, whose page has no live block, on its class's free list, its
 * tags zeroed (a tag of an older epoch may remain).  Under lock. */
static void record_free(struct record *r)
{
    for (size_t i = 0; i < r->capacity; i++)
        atomic_store_explicit(&r->tag[i], 0, memory_order_relaxed);
    if (r->prev)
        r->prev->next = r->next;
    else
        live_records = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->page = 0;
    r->prev = NULL;
    r->next = free_records[r->sc];
    free_records[r->sc] = r;
}

void omi_tags_pool_released(struct pool *pool)
{
    uint32_t h;

    pthread_mutex_lock(&lock);
    h = atomic_load(&pool->tags);
    if (h) {
        atomic_store_explicit(&pool->tags, 0, memory_order_relaxed);
        record_free(record_at(h));
    }
    pthread_mutex_unlock(&lock);
}

/* The record of small pool pool (p in its page), made when missing: NULL
 * when there is no memory.  A chunk is mapped outside the lock, as the
 * spare the next record is cut from. */
static OM_NOINLINE struct record *record_make(struct pool *pool, uintptr_t p)
{
    struct record *r;
    char *c = NULL;

    for (int tries = 0;; tries++) {
        pthread_mutex_lock(&lock);
        if (c && !spare) {
            spare = c;
            c = NULL;
        }
        r = record_of(pool);
        if (!r && (r = record_new(pool->sc))) {
            record_use(r, p);
            atomic_store_explicit(&pool->tags, r->handle,
                                  memory_order_release);
        }
        pthread_mutex_unlock(&lock);
        if (c)                          /* another thread gave a spare */
            omi_os_unmap(c, CHUNK);
        if (r || tries == 1 || !(c = omi_os_map(CHUNK, RECORD_ALIGN)))
            return r;
    }
}

/* ---- Tags ---- */

/* ceil(2^16 / d) for the small classes' 16-byte steps d = 1..32: a
 * quotient g / d (g < 256 steps in a page) is (g * recip[d]) >> 16,
 * exact for each such pair (om_check tries them all: invariant 3). */
static const uint32_t recip[33] = {
    0u, 65536u, 32768u, 21846u, 16384u, 13108u, 10923u, 9363u, 8192u, 7282u,
    6554u, 5958u, 5462u, 5042u, 4682u, 4370u, 4096u, 3856u, 3641u, 3450u,
    3277u, 3121u, 2979u, 2850u, 2731u, 2622u, 2521u, 2428u, 2341u, 2260u,
    2185u, 2115u, 2048u
};

/* Where p lies in its page: the block's index and, in 16-byte steps,
 * its offset in the block (a small block is 16-byte steps: no divide). */
static size_t index_in(uintptr_t p, size_t block, unsigned *inner)
{
    unsigned g = (unsigned)(p & (POOL_SIZE - 1)) >> 4;
    unsigned d = (unsigned)(block >> 4);
    unsigned q = (g * recip[d]) >> 16;

    *inner = g - q * d;
    return q;
}

static uint64_t tag_pack(const struct omi_trace_rec *v, size_t block,
                         unsigned inner, unsigned epoch)
{
    uint64_t size = v->meta >> 1, time = v->dt & 0xffffff;

    return (uint64_t)(v->tb + 1) | (v->meta & 1) << TB_BITS |
           (uint64_t)(v->dt >> 24) << DOMAIN_SHIFT |
           (uint64_t)inner << INNER_SHIFT |
           (uint64_t)(block - size) << SLACK_SHIFT |
           (uint64_t)(epoch & EPOCHS) << EPOCH_SHIFT |
           (time > MAX_TIME ? MAX_TIME : time) << TIME_SHIFT;
}

/* A tag of this epoch: a trace; of another: none. */
static bool tag_live(uint64_t t, unsigned epoch)
{
    return t && ((t >> EPOCH_SHIFT) & EPOCHS) == (epoch & EPOCHS);
}

/* The trace of the tag t of the block at block_start. */
static struct omi_trace_rec tag_unpack(uint64_t t, uintptr_t block_start,
                                       size_t block)
{
    uint64_t size = block - ((t >> SLACK_SHIFT) & MAX_SLACK);
    uintptr_t ptr = block_start + ((t >> INNER_SHIFT) & MAX_INNER) * 16;

    return (struct omi_trace_rec){
        ptr, size << 1 | ((t >> TB_BITS) & 1),
        (uint32_t)(t & ((1u << TB_BITS) - 1)) - 1,
        (uint32_t)((t >> DOMAIN_SHIFT) & MAX_DOMAIN) << 24 |
            (uint32_t)(t >> TIME_SHIFT) };
}

int omi_tags_put(const struct omi_trace_rec *v, unsigned epoch,
                 struct omi_trace_rec *old)
{
    struct pool *pool = omi_arena_small_pool((void *)v->ptr);
    size_t block, size = v->meta >> 1, i;
    struct record *r;
    unsigned inner;
    uint64_t was;

    if (!pool || v->dt >> 24 > MAX_DOMAIN || v->tb >= (1u << TB_BITS) - 1)
        return 0;
    block = omi_pool_class_size(pool->sc);
    i = index_in(v->ptr, block, &inner);
    if (size > block || block - size > MAX_SLACK || (v->ptr & 15))
        return 0;
    r = record_of(pool);
    if (unlikely(!r) && !(r = record_make(pool, v->ptr)))
        return 0;
    was = atomic_load_explicit(&r->tag[i], memory_order_relaxed);
    atomic_store_explicit(&r->tag[i], tag_pack(v, block, inner, epoch),
                          memory_order_relaxed);
    if (!tag_live(was, epoch))
        return 1;
    *old = tag_unpack(was, v->ptr - inner * 16, block);
    return 2;
}

/* The tag word of p (NULL: none), with its block's size and p's place
 * in the block; pool: p's small pool in use, or NULL (not known). */
OM_INLINE _Atomic uint64_t *tag_of(struct pool *pool, uintptr_t p,
                                   size_t *block, unsigned *inner)
{
    struct record *r;

    if (!pool)
        pool = omi_arena_small_pool((void *)p);
    r = pool ? record_of(pool) : NULL;

    if (!r)
        return NULL;
    *block = omi_pool_class_size(pool->sc);
    return &r->tag[index_in(p, *block, inner)];
}

/* Tag t is the trace of exactly (domain, p), of this epoch. */
static bool tag_matches(uint64_t t, unsigned domain, unsigned inner,
                        unsigned epoch)
{
    return tag_live(t, epoch) &&
           ((t >> DOMAIN_SHIFT) & MAX_DOMAIN) == domain &&
           ((t >> INNER_SHIFT) & MAX_INNER) == inner;
}

/* The tag word of (domain, p) with its trace in *out, or NULL; *word is
 * the word p's tag would be in (NULL: none), whatever it holds. */
OM_INLINE _Atomic uint64_t *tag_find(struct pool *pool, unsigned domain,
                                     uintptr_t p, unsigned epoch,
                                     struct omi_trace_rec *out,
                                     _Atomic uint64_t **word)
{
    size_t block = 0;
    unsigned inner = 0;
    _Atomic uint64_t *t = tag_of(pool, p, &block, &inner);
    uint64_t v = t ? atomic_load_explicit(t, memory_order_relaxed) : 0;

    *word = t;
    if (!tag_matches(v, domain, inner, epoch))
        return NULL;
    *out = tag_unpack(v, p - inner * 16, block);
    return t;
}

int omi_tags_take(struct pool *pool, unsigned domain, uintptr_t p,
                  unsigned epoch, struct omi_trace_rec *out)
{
    _Atomic uint64_t *word;
    _Atomic uint64_t *t = tag_find(pool, domain, p, epoch, out, &word);
    uint64_t v = word ? atomic_load_explicit(word, memory_order_relaxed) : 0;

    if (t || (v && !tag_live(v, epoch)))   /* taken, or a stale epoch's */
        atomic_store_explicit(word, 0, memory_order_relaxed);
    return t != NULL;
}

int omi_tags_find(unsigned domain, uintptr_t p, unsigned epoch,
                  struct omi_trace_rec *out)
{
    _Atomic uint64_t *word;

    return tag_find(NULL, domain, p, epoch, out, &word) != NULL;
}

/* ---- Walking every record (under lock) ---- */

typedef void (*tag_fn)(void *ctx, _Atomic uint64_t *tag, uintptr_t ptr,
                       size_t block, const struct record *r);

/* Every tag of the records in use (each has a page). */
OM_INLINE void walk(tag_fn fn, void *ctx)
{
    for (struct record *r = live_records; r; r = r->next) {
        size_t block = omi_pool_class_size(r->sc);
        struct record *next = r->next;

        /* The list is walked by pointer: without this, each record's
         * header and tags are cache misses the walk waits for.  So the
         * next record's lines are asked for while this one is read: its
         * header now, a line of its tags every 8 tags of this one. */
        if (next)
            __builtin_prefetch(next);
        for (size_t i = 0; i < r->capacity; i++) {
            if (next && i % 8 == 0)
                __builtin_prefetch(&next->tag[i]);
            if (atomic_load_explicit(&r->tag[i], memory_order_relaxed))
                fn(ctx, &r->tag[i], r->page + i * block, block, r);
        }
    }
}

struct each {
    void (*fn)(void *ctx, const struct omi_trace_rec *v);
    void *ctx;
    unsigned epoch;
};

OM_INLINE void each_one(void *ctx, _Atomic uint64_t *tag, uintptr_t ptr,
                     size_t block, const struct record *r)
{
    struct each *e = ctx;
    uint64_t t = atomic_load_explicit(tag, memory_order_relaxed);
    struct omi_trace_rec v = tag_unpack(t, ptr, block);

    if (tag_live(t, e->epoch))
        e->fn(e->ctx, &v);
}

void omi_tags_each(void (*fn)(void *ctx, const struct omi_trace_rec *v),
                   void *ctx, unsigned epoch)
{
    struct each e = { fn, ctx, epoch };

    pthread_mutex_lock(&lock);
    walk(each_one, &e);
    pthread_mutex_unlock(&lock);
}

struct sum {
    struct omi_peak_sum *sums;
    size_t ntb;
    unsigned epoch;
    void (*fn)(void *ctx, const struct omi_trace_rec *v);
    void *ctx;
};

/* peak_add (trace.c) for an exact tag, without unpacking it: the pass
 * over every tag at each new peak called a function per tag. */
OM_INLINE void sum_one(void *ctx, _Atomic uint64_t *tag, uintptr_t ptr,
                       size_t block, const struct record *r)
{
    struct sum *e = ctx;
    uint64_t t = atomic_load_explicit(tag, memory_order_relaxed);
    uint64_t tb = (t & ((1u << TB_BITS) - 1)) - 1;
    struct omi_peak_sum *p;

    if (!tag_live(t, e->epoch) || tb >= e->ntb)
        return;
    if (unlikely((t >> TB_BITS) & 1)) {
        struct omi_trace_rec v = tag_unpack(t, ptr, block);

        e->fn(e->ctx, &v);
        return;
    }
    p = &e->sums[tb];
    p->count = ((p->count + OMI_PEAK_ONE) & OMI_PEAK_COUNT_MASK) |
               ((t >> DOMAIN_SHIFT) & MAX_DOMAIN) << OMI_PEAK_DOMAIN_SHIFT;
    p->bytes += (block - ((t >> SLACK_SHIFT) & MAX_SLACK)) << OMI_PEAK_BITS;
}

void omi_tags_sum(struct omi_peak_sum *sums, size_t ntb, unsigned epoch,
                  void (*fn)(void *ctx, const struct omi_trace_rec *v),
                  void *ctx)
{
    struct sum e = { sums, ntb, epoch, fn, ctx };

    pthread_mutex_lock(&lock);
    walk(sum_one, &e);
    pthread_mutex_unlock(&lock);
}

static void clear_one(void *ctx, _Atomic uint64_t *tag, uintptr_t ptr,
                      size_t block, const struct record *r)
{
    atomic_store_explicit(tag, 0, memory_order_seq_cst);
}

/* Forget every tag.  The records stay with their pages, zeroed, for the
 * next traces (they are tracing's memory until the process ends). */
void omi_tags_clear(void)
{
    pthread_mutex_lock(&lock);
    walk(clear_one, NULL);
    pthread_mutex_unlock(&lock);
}

size_t omi_tags_memory(void)
{
    size_t n;

    pthread_mutex_lock(&lock);
    n = nchunks ? (nchunks - 1) * CHUNK + omi_os_page_round(chunk_used) : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

/* fork(): trace.c's handlers, after its own locks. */
void omi_tags_fork_prepare(void)
{
    pthread_mutex_lock(&lock);
}

void omi_tags_fork_parent(void)
{
    pthread_mutex_unlock(&lock);
}

void omi_tags_fork_child(void)
{
    pthread_mutex_init(&lock, NULL);
}

/* ---- om_check ---- */

static void audit_one(void *ctx, _Atomic uint64_t *tag, uintptr_t ptr,
                      size_t block, const struct record *r)
{
    int *rc = ctx;
    struct pool *pool = omi_arena_small_pool((void *)ptr);

    if (*rc == 0 && (!pool || pool->sc != r->sc))
        *rc = omi_check_fail("tags.1", (void *)ptr, "a tag on a page that "
                             "is not a small pool of its class");
}

/* Invariants 2 and 5 (the free lists' side): the free records are
 * empty, have no page and are not linked as in use; *n counts them. */
static int audit_free(size_t *n)
{
    for (unsigned sc = 0; sc < NSMALL; sc++)
        for (struct record *r = free_records[sc]; r; r = r->next) {
            if (r->page || r->prev || r->sc != sc || ++*n > nrecords)
                return omi_check_fail("tags.5", r, "a record of class %u "
                                      "on class %u's free list, or one "
                                      "with a page", r->sc, sc);
            for (size_t i = 0; i < r->capacity; i++)
                if (atomic_load(&r->tag[i]))
                    return omi_check_fail("tags.2", r, "a tag in a free "
                                          "record");
        }
    return 0;
}

/* Invariant 5 (the records in use): each has a page and is linked both
 * ways; *n counts them.  Before the walks, which a loop would hang. */
static int audit_links(size_t *n)
{
    const struct record *before = NULL;

    for (struct record *r = live_records; r; before = r, r = r->next)
        if (!r->page || r->prev != before || ++*n > nrecords)
            return omi_check_fail("tags.5", r, "a record in use with no "
                                  "page or a broken link");
    return 0;
}

/* Invariant 4: each record in use is its page's. */
static int audit_pages(void)
{
    for (struct record *r = live_records; r; r = r->next) {
        struct pool *pool = omi_arena_small_pool((void *)r->page);

        if (!pool || atomic_load(&pool->tags) != r->handle ||
            record_at(r->handle) != r || pool->sc != r->sc)
            return omi_check_fail("tags.4", (void *)r->page, "a record of "
                                  "class %u on a page that is not its "
                                  "class's pool", r->sc);
    }
    return 0;
}

/* Invariant 3. */
static int audit_recip(void)
{
    for (unsigned d = 1; d <= NSMALL; d++)
        for (unsigned g = 0; g < POOL_SIZE >> 4; g++)
            if ((g * recip[d]) >> 16 != g / d)
                return omi_check_fail("tags.3", NULL, "%u / %u", g, d);
    return 0;
}

int omi_tags_check(void)
{
    int rc = audit_recip();

    if (rc)
        return rc;
    size_t n = 0;

    pthread_mutex_lock(&lock);
    rc = audit_links(&n);
    if (rc == 0)
        walk(audit_one, &rc);
    if (rc == 0)
        rc = audit_free(&n);
    if (rc == 0)
        rc = audit_pages();
    if (rc == 0 && n != nrecords)
        rc = omi_check_fail("tags.5", NULL, "%zu records made, %zu in use "
                            "or free", nrecords, n);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Pool invariant 6's other half: tagged pools (those whose tags is not
 * 0, counted by om_check) are as many as the records in use, each of
 * which its own pool names (invariant 4, checked before this): so no
 * pool names a record that is free or another page's. */
int omi_tags_check_pools(size_t tagged)
{
    size_t n = 0;

    pthread_mutex_lock(&lock);
    for (struct record *r = live_records; r && n <= nrecords; r = r->next)
        n++;
    pthread_mutex_unlock(&lock);
    if (n != tagged)
        return omi_check_fail("pool.6", NULL, "%zu pools name a tags "
                              "record, %zu records in use", tagged, n);
    return 0;
}

/* ---- Tests ---- */

void omi_tags_debug(uint32_t h, struct omi_tags_debug *out)
{
    struct record *r;

    pthread_mutex_lock(&lock);
    r = record_at(h);
    *out = (struct omi_tags_debug){ r, &r->page, &r->next, &r->prev,
                                    &nrecords };
    pthread_mutex_unlock(&lock);
}
