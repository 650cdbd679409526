/*
 * alloc.c - L2: the small-object allocator's entry points: the malloc
 * family of the MEM and OBJ domains and their fast paths.
 *
 * malloc fast path: TLS heap -> the heap's block cache for the class ->
 * pop, or when it is empty, the first pool of the class -> pop.
 * free fast path: arena map -> pool descriptor -> owner check -> push on
 * the heap's cache for the class (a small block of any pool of ours,
 * while the cache holds fewer than CACHE_LIMIT), else on the pool's list
 * (a USED pool of ours).  Anything else (a FULL pool and a full cache,
 * an emptied pool, another thread's pool, a double free) leaves for
 * heap.c.  Requests of 0 bytes or above
 * SMALL_THRESHOLD go to the RAW domain, as CPython's; pointers that are not
 * objmem's go back to the RAW domain on free and realloc.
 *
 * When a domain's table is still the default one, its entry point calls
 * the fast path directly instead of through the table: the table is read
 * (one load and compare) but the indirect call is saved.  While tracing
 * samples such a domain, its entry points do the same for every request
 * that the tracing wrapper would serve from the fast path without a
 * trace (see "Sampling inline" below).
 *
 * Invariants:
 *   1. A block handed out lies in a USED or FULL pool of the size class of
 *      its request, at a block boundary, and is 16-byte aligned.
 *   2. errno is untouched unless NULL is returned.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "heap.h"
#include "large.h"
#include "tool.h"
#include "trace.h"

static _Atomic long raw_blocks;         /* live requests served by RAW */

/* ---- Large requests: the RAW domain ---- */

static OM_NOINLINE void *large_alloc(size_t size)
{
    void *p;

    if (unlikely(size > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    p = om_raw_malloc(size);
    if (p)
        atomic_fetch_add_explicit(&raw_blocks, 1, memory_order_relaxed);
    return p;
}

static OM_NOINLINE void large_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&raw_blocks, 1, memory_order_relaxed);
    om_raw_free(p);
}

long omi_alloc_raw_blocks(void)
{
    return atomic_load(&raw_blocks);
}

/* ---- Fast paths ---- */

/* A block for a request of 1..SMALL_THRESHOLD bytes. */
OM_INLINE OM_NO_ASAN void *block_alloc(size_t size)
{
    struct heap *h;
    struct cache *c;
    struct pool *pool;
    void **b;
    unsigned sc;

    sc = omi_pool_class(size);
    h = omi_heap_tls;
    c = &h->cache[sc];
    b = c->head;
    if (likely(b)) {
        c->head = *b;
        c->count--;
        omi_tool_handed_out(b, omi_pool_class_size(sc));
        return b;
    }
    pool = h->first[sc];
    b = pool->free;
    if (unlikely(!b))
        return omi_heap_malloc_slow(h, sc);
    pool->free = *b;
    pool->used++;
    omi_tool_handed_out(b, omi_pool_class_size(sc));
    return b;
}

OM_INLINE OM_NO_ASAN void *small_alloc(size_t size)
{
    if (unlikely(size - 1 >= SMALL_THRESHOLD))
        return large_alloc(size);
    return block_alloc(size);
}

/*
 * Sampling inline (OMI_TABLE_SAMPLED, domain.h).  The domain's table is
 * tracing's wrapper over the default one; the entry points do here what
 * that wrapper does in the common case, without the indirect calls: a
 * small request the countdown skips comes from the fast path, and a free
 * into a pool with no traced block (pool.h, invariant 5) goes to it.
 * Everything else goes through the table.
 */
static OM_NOINLINE void table_free(int d, void *p)
{
    omi_domains[d].free(omi_domains[d].ctx, p);
}

/* Saturating: a count at UINT16_MAX stays there (too many is safe). */
void omi_alloc_note_trace(uintptr_t p, int by)
{
    struct pool *pool = omi_arena_small_pool((void *)p);
    uint16_t v;

    if (!pool)
        return;
    v = atomic_load_explicit(&pool->traced, memory_order_relaxed);
    do {
        if (v == UINT16_MAX || (by < 0 && v == 0))
            return;
    } while (!atomic_compare_exchange_weak_explicit(
                 &pool->traced, &v, (uint16_t)(v + by),
                 memory_order_relaxed, memory_order_relaxed));
}

bool omi_alloc_trace_noted(uintptr_t p)
{
    struct pool *pool = omi_arena_small_pool((void *)p);

    return !pool || atomic_load(&pool->traced) > 0;
}

/*
 * A small block freed into any pool of ours goes on the heap's cache for
 * its class, which malloc pops first: a program whose live blocks fill
 * and empty many pools of a class (1,000 live blocks of 16..512 bytes:
 * a 512-byte pool holds 8) reuses its freed blocks while they are hot,
 * with no pool changing state.  A full cache (CACHE_LIMIT) takes nothing
 * more, so a flood of frees (a batch freed) goes straight to the pools:
 * into one of our USED pools, on its list; into one of our FULL pools,
 * through heap.c, which makes it partial.  block_free_in is the part
 * after p's pool is known (h: the thread's heap).
 */
OM_INLINE OM_NO_ASAN void block_free_in(struct heap *h, struct pool *pool,
                                        void *p)
{
    struct cache *c;
    uintptr_t kind;

    /* Every block is 16-byte aligned: anything else is an interior
     * pointer, which the slow path reports. */
    if (unlikely((uintptr_t)p & (ALIGNMENT - 1)))
        goto slow;
    /* 0: our USED pool; OWNER_FULL: our FULL pool; else: not ours. */
    kind = atomic_load_explicit(&pool->owner, memory_order_relaxed) ^
           (uintptr_t)h;
    if (likely((kind & ~OWNER_FULL) == 0)) {
        c = &h->cache[pool->sc];        /* a medium class's is full */
        if (unlikely(p == c->head))     /* a double free */
            goto slow;
        if (likely(c->count < CACHE_LIMIT)) {
            OM_ASSERT(omi_pool_is_block(pool, p));
            *(void **)p = c->head;
            c->head = p;
            c->count++;
            omi_tool_freed(p, omi_pool_block_size(pool));
            return;
        }
    }
    if (likely(kind == 0) && likely(p != pool->free)) {
        OM_ASSERT(omi_pool_is_block(pool, p));
        *(void **)p = pool->free;
        pool->free = p;
        omi_tool_freed(p, omi_pool_block_size(pool));
        if (unlikely(--pool->used == 0))
            omi_heap_pool_emptied(h, pool);
        return;
    }
slow:
    omi_heap_free_slow(h, pool, p);
}

OM_INLINE OM_NO_ASAN void block_free(void *p, void (*not_ours)(void *),
                                     int sampled)
{
    struct pool *pool;

    if (unlikely(!omi_arena_owns(p))) {
        if (sampled >= 0)
            table_free(sampled, p);
        else
            not_ours(p);
        return;
    }
    pool = omi_arena_pool_of(omi_arena_base(p), p);
    if (sampled >= 0 &&
        unlikely(atomic_load_explicit(&pool->traced, memory_order_relaxed))) {
        table_free(sampled, p);
        return;
    }
    block_free_in(omi_heap_tls, pool, p);
}

OM_INLINE OM_NO_ASAN void small_free(void *p)
{
    block_free(p, large_free, -1);
}

/* Block bytes at p when p is one of our blocks, else 0. */
static size_t small_size(const void *p)
{
    struct arena *a = omi_arena_of(p);

    return a ? omi_pool_block_size(omi_pool_head(omi_arena_pool_of(a, p)))
             : 0;
}

static OM_NO_ASAN void *small_calloc(size_t nelem, size_t elsize)
{
    size_t size;
    void *p;

    if (unlikely(__builtin_mul_overflow(nelem, elsize, &size))) {
        errno = ENOMEM;
        return NULL;
    }
    if (size - 1 >= SMALL_THRESHOLD) {
        p = om_raw_calloc(nelem, elsize);
        if (p)
            atomic_fetch_add_explicit(&raw_blocks, 1, memory_order_relaxed);
        return p;
    }
    p = small_alloc(size);
    if (p)
        memset(p, 0, size);
    return p;
}

/* Keep p when size fits it and uses more than half of it (a quarter for
 * a small block, as CPython's); else move it. */
static bool fits(size_t size, size_t usable)
{
    return size <= usable && (usable <= SMALL_THRESHOLD ? 4 * size > 3 *
                              usable : 2 * size > usable);
}

/*
 * CPython's rules: a block shrinking by less than a quarter stays; a
 * foreign block stays with RAW; otherwise allocate, copy, free.
 */
static OM_NO_ASAN void *small_realloc(void *p, size_t size)
{
    size_t old;
    void *q;

    if (!p)
        return small_alloc(size);
    old = small_size(p);
    if (old == 0)
        return om_raw_realloc(p, size);
    if (fits(size, old))
        return p;
    q = small_alloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, size < old ? size : old);
    small_free(p);
    return q;
}

/* ---- The default MEM/OBJ table ---- */

OM_NO_ASAN void *omi_small_malloc(void *ctx, size_t size)
{
    return small_alloc(size);
}

OM_NO_ASAN void *omi_small_calloc(void *ctx, size_t nelem, size_t elsize)
{
    return small_calloc(nelem, elsize);
}

OM_NO_ASAN void *omi_small_realloc(void *ctx, void *p, size_t size)
{
    return small_realloc(p, size);
}

OM_NO_ASAN void omi_small_free(void *ctx, void *p)
{
    small_free(p);
}


/* ---- Entry points of the MEM and OBJ domains ---- */

/* A sampled domain's request of size bytes that its wrapper would serve
 * from the fast path with no trace (trace.h). */
OM_INLINE bool sample_skips(size_t size)
{
    return likely(size - 1 < SMALL_THRESHOLD) &&
           likely(omi_trace_countdown_skips(size));
}

/* Domain d's malloc: its entry point's body, inlined there and into
 * om_aligned_alloc, so that the caller noted is theirs (an inlined
 * __builtin_return_address is the return address of the function it is
 * inlined into). */
OM_INLINE OM_NO_ASAN void *domain_malloc(int d, size_t size)
{
    unsigned mode = omi_domain_small[d];

    if (likely(mode == OMI_TABLE_SMALL))
        return small_alloc(size);
    if (mode == OMI_TABLE_SAMPLED && sample_skips(size))
        return block_alloc(size);
    OMI_NOTE_CALLER();
    return omi_domains[d].malloc(omi_domains[d].ctx, size);
}

#define DOMAIN_ENTRY_POINTS(d, prefix)                                      \
    OM_NO_ASAN void *prefix##malloc(size_t size)                            \
    {                                                                       \
        return domain_malloc(d, size);                                      \
    }                                                                       \
    OM_NO_ASAN void *prefix##calloc(size_t nelem, size_t elsize)            \
    {                                                                       \
        unsigned mode = omi_domain_small[d];                                \
        size_t size;                                                        \
                                                                            \
        if (likely(mode == OMI_TABLE_SMALL) ||                              \
            (mode == OMI_TABLE_SAMPLED &&                                   \
             !__builtin_mul_overflow(nelem, elsize, &size) &&               \
             sample_skips(size)))                                           \
            return small_calloc(nelem, elsize);                             \
        OMI_NOTE_CALLER();                                                  \
        return omi_domains[d].calloc(omi_domains[d].ctx, nelem, elsize);    \
    }                                                                       \
    OM_NO_ASAN void *prefix##realloc(void *p, size_t size)                  \
    {                                                                       \
        OMI_NOTE_CALLER();                                                  \
        return omi_domains[d].realloc(omi_domains[d].ctx, p, size);         \
    }                                                                       \
    OM_NO_ASAN void prefix##free(void *p)                                   \
    {                                                                       \
        unsigned mode = omi_domain_small[d];                                \
                                                                            \
        if (likely(mode == OMI_TABLE_SMALL))                                \
            small_free(p);                                                  \
        else if (mode == OMI_TABLE_SAMPLED)                                 \
            block_free(p, large_free, d);                                   \
        else                                                                \
            omi_domains[d].free(omi_domains[d].ctx, p);                     \
    }

DOMAIN_ENTRY_POINTS(OM_DOMAIN_MEM, om_)
DOMAIN_ENTRY_POINTS(OM_DOMAIN_OBJ, om_obj_)

/* ---- Sizes and alignment ---- */

/* Table t is the system allocator's (RAW's default; MEM's with
 * allocator=malloc).  t may be NULL. */
static bool is_system_table(const struct om_allocator *t)
{
    return t && t->malloc == omi_domain_default_raw.malloc;
}

/* a's four functions are those of table t. */
static bool same_table(const struct om_allocator *a,
                       const struct om_allocator *t)
{
    return a->malloc == t->malloc && a->calloc == t->calloc &&
           a->realloc == t->realloc && a->free == t->free;
}

/* The table that serves RAW: its live one, seen through tracing's
 * wrapper and the fault injection's, in either order. */
static const struct om_allocator *raw_table(void)
{
    const struct om_allocator *t = &omi_domains[OM_DOMAIN_RAW], *u;

    for (int i = 0; i < 2; i++, t = u)
        if (!(u = omi_trace_wrapped(t)) && !(u = omi_nomem_under(t)))
            break;
    return t;
}

size_t om_usable_size(const void *p)
{
    size_t size;

    if (!p)
        return 0;
    if (omi_debug_hooks_on(OM_DOMAIN_MEM) || omi_debug_hooks_on(OM_DOMAIN_OBJ))
        return omi_debug_block_size(p);
    /* A large block of om_gp_allocator's (a domain's table, or RAW's
     * under MEM's defaults) is no system block. */
    if ((size = small_size(p)) || (size = omi_large_size(p)))
        return size;
    return omi_domain_is_system(OM_DOMAIN_RAW) ||
                   is_system_table(raw_table())
               ? malloc_usable_size((void *)(uintptr_t)p)
               : 0;
}

/* A block of the system allocator aligned to alignment (a power of two),
 * or NULL with errno: ENOMEM above PTRDIFF_MAX, as the RAW domain's
 * rule, whatever the system allocator would say (ASan's aborts). */
static void *sys_aligned(size_t alignment, size_t size)
{
    void *p = NULL;
    int rc;

    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (alignment < sizeof(void *))
        alignment = sizeof(void *);
    rc = posix_memalign(&p, alignment, size ? size : 1);
    if (rc != 0) {
        errno = rc;
        return NULL;
    }
    return p;
}

/* Over-aligned large blocks come from the allocator that serves RAW
 * directly, when it is the system's or om_gp_allocator, under any
 * wrappers of tracing and the fault injection (the block is traced and
 * counted in MEM, where om_aligned_alloc asked for it). */
static void *large_aligned(size_t alignment, size_t size)
{
    const struct om_allocator *t = raw_table();
    void *p;

    if (same_table(t, &om_gp_allocator))
        return om_gp_aligned_alloc(alignment, size);
    if (!omi_domain_is_system(OM_DOMAIN_RAW) && !is_system_table(t)) {
        errno = ENOTSUP;
        return NULL;
    }
    p = sys_aligned(alignment, size);
    if (p)
        atomic_fetch_add_explicit(&raw_blocks, 1, memory_order_relaxed);
    return p;
}

/* An over-aligned block of the small-object allocator, untraced.  A
 * class whose size is a multiple of the alignment has every block
 * aligned: pools are page-aligned and hold no header. */
OM_INLINE OM_NO_ASAN void *small_aligned(size_t alignment, size_t size)
{
    size_t rounded = ((size ? size : 1) + alignment - 1) & ~(alignment - 1);

    if (alignment <= SMALL_THRESHOLD && rounded <= SMALL_THRESHOLD &&
        rounded >= size)
        return small_alloc(rounded);
    return large_aligned(alignment, size);
}

OM_NO_ASAN void *omi_alloc_aligned_in(const struct om_allocator *t,
                                      size_t alignment, size_t size)
{
    const struct om_allocator *u = omi_nomem_under(t);

    if (u)                              /* a request of its window */
        return omi_nomem_fails_aligned()
                   ? NULL
                   : omi_alloc_aligned_in(u, alignment, size);
    if (is_system_table(t))
        return sys_aligned(alignment, size);
    if (same_table(t, &omi_domain_default_small))
        return small_aligned(alignment, size);
    if (same_table(t, &om_gp_allocator))
        return om_gp_aligned_alloc(alignment, size);
    errno = ENOTSUP;
    return NULL;
}

OM_NO_ASAN void *om_aligned_alloc(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= ALIGNMENT)
        return domain_malloc(OM_DOMAIN_MEM, size);
    if (omi_domain_is_system(OM_DOMAIN_MEM))
        return sys_aligned(alignment, size);    /* allocator=malloc */
    if (unlikely(omi_domain_small[OM_DOMAIN_MEM] != OMI_TABLE_SMALL)) {
        /* om_gp_allocator, tracing's wrapper, or ENOTSUP (trace.c). */
        OMI_NOTE_CALLER();
        return omi_trace_aligned(alignment, size);
    }
    return small_aligned(alignment, size);
}

/* ---- The general-purpose family: every size from objmem ----
 *
 * What the shim's malloc is (and om_gp_malloc for a runtime that wants
 * objmem for everything): small requests from the pools as above, medium
 * ones from the spans of the medium classes, large ones mapped one by one
 * (large.c).  A pointer that is none of these is foreign: it goes to the
 * allocator set by omi_gp_set_foreign (the shim: the C library's), or it
 * is reported as a bad free.
 */

static struct omi_gp_foreign foreign;

void omi_gp_set_foreign(const struct omi_gp_foreign *f)
{
    foreign = *f;
}

static OM_COLD void foreign_free(void *p)
{
    if (foreign.free)
        foreign.free(p);
    else
        omi_fatal("free of an address objmem never handed out", p,
                  "not in an arena, not a large block");
}

static OM_NOINLINE OM_NO_ASAN void *medium_alloc(size_t size)
{
    unsigned sc = omi_pool_medium_class(size);
    struct heap *h = omi_heap_tls;
    struct pool *pool = h->first[sc];
    void **b = pool->free;

    if (likely(b)) {
        pool->free = *b;
        pool->used++;
        omi_tool_handed_out(b, omi_pool_class_size(sc));
        return b;
    }
    return omi_heap_malloc_slow(h, sc);
}

static OM_NOINLINE void *gp_big(size_t size)
{
    bool zeroed;

    if (size <= MEDIUM_MAX)
        return medium_alloc(size);
    return omi_large_alloc(size, 0, &zeroed);
}

OM_NO_ASAN void *om_gp_malloc(size_t size)
{
    if (likely(size - 1 < SMALL_THRESHOLD))
        return small_alloc(size);
    return size ? gp_big(size) : small_alloc(1);
}

static void gp_not_ours(void *p)
{
    if (p && !omi_large_free(p))
        foreign_free(p);
}

OM_NO_ASAN void om_gp_free(void *p)
{
    block_free(p, gp_not_ours, -1);
}

OM_NO_ASAN void omi_gp_free_in(struct pool *pool, void *p)
{
    block_free_in(omi_heap_tls, pool, p);
}

OM_NO_ASAN void *om_gp_calloc(size_t nelem, size_t elsize)
{
    size_t size;
    bool zeroed = false;
    void *p;

    if (unlikely(__builtin_mul_overflow(nelem, elsize, &size))) {
        errno = ENOMEM;
        return NULL;
    }
    if (size > MEDIUM_MAX)
        p = omi_large_alloc(size, 0, &zeroed);
    else
        p = om_gp_malloc(size);
    if (p && !zeroed)
        memset(p, 0, size);
    return p;
}

size_t om_gp_usable_size(const void *p)
{
    size_t size;

    if (!p)
        return 0;
    if ((size = small_size(p)) || (size = omi_large_size(p)))
        return size;
    return foreign.usable_size ? foreign.usable_size(p) : 0;
}

OM_NO_ASAN void *om_gp_realloc(void *p, size_t size)
{
    size_t old;
    void *q;

    if (!p)
        return om_gp_malloc(size);
    if (size == 0) {            /* glibc's rule: free, return NULL */
        om_gp_free(p);
        return NULL;
    }
    old = small_size(p);
    if (!old && (old = omi_large_size(p)) && size > MEDIUM_MAX &&
        !fits(size, old))
        return omi_large_realloc(p, size);
    if (!old) {
        if (!foreign.realloc)
            omi_fatal("realloc of an address objmem never handed out", p,
                      "not in an arena, not a large block");
        return foreign.realloc(p, size);
    }
    if (fits(size, old))
        return p;
    q = om_gp_malloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, size < old ? size : old);
    om_gp_free(p);
    return q;
}

OM_NO_ASAN void *om_gp_aligned_alloc(size_t alignment, size_t size)
{
    bool zeroed;

    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= ALIGNMENT)
        return om_gp_malloc(size);
    if (size < alignment)
        size = alignment;
    /* A block of a class whose size is a multiple of the alignment (up
     * to a page) is aligned: pools and spans are page-aligned, blocks
     * have no header. */
    if (alignment <= POOL_SIZE && size <= MEDIUM_MAX) {
        unsigned sc = size <= SMALL_THRESHOLD ? omi_pool_class(size)
                                              : omi_pool_medium_class(size);
        for (; sc < NCLASSES; sc++)
            if (omi_pool_class_size(sc) % alignment == 0)
                return om_gp_malloc(omi_pool_class_size(sc));
    }
    return omi_large_alloc(size, alignment, &zeroed);
}

static void *gp_table_malloc(void *ctx, size_t size)
{
    return om_gp_malloc(size);
}

static void *gp_table_calloc(void *ctx, size_t nelem, size_t elsize)
{
    return om_gp_calloc(nelem, elsize);
}

static void *gp_table_realloc(void *ctx, void *p, size_t size)
{
    return om_gp_realloc(p, size ? size : 1);
}

static void gp_table_free(void *ctx, void *p)
{
    om_gp_free(p);
}

const struct om_allocator om_gp_allocator = {
    NULL, gp_table_malloc, gp_table_calloc, gp_table_realloc, gp_table_free
};
