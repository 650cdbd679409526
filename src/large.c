/*
 * large.c - L2: large blocks, above MEDIUM_MAX, when objmem is the whole
 * process's malloc (the shim, om_gp_malloc).  Each is a mapping of its
 * own, so freeing one gives its pages straight back, and no other block
 * shares (and pins) them.
 *
 * Two structures, under one mutex that no system call is made under:
 *
 *   table  which addresses are large blocks, and their mapped bytes: an
 *          open-addressing hash set keyed by address (linear probing,
 *          tombstones), in memory mapped here (never through objmem).
 *          free() asks it about every address that is not in an arena,
 *          so a foreign pointer (one malloc'ed before objmem took over)
 *          is recognised and handed back to its allocator.  A realloc
 *          reserves the room of the entry it puts back before it
 *          remaps (`reserved`): after the remap it cannot fail.
 *   cache  up to CACHE_SLOTS freed mappings (or pieces of them), so
 *          that a loop that allocates and frees a large buffer maps it
 *          once.  They stay resident, so their bytes are bounded by what
 *          the program holds: 256 KiB plus an eighth of the live large
 *          bytes, 64 MiB at most (a fixed 64 MiB kept 20 MB more
 *          resident than glibc through python3's json.dumps of 7 MB; a
 *          base of 1 MiB kept git log -p 0.5 MB, a tenth of its RSS,
 *          above it, for no time saved), except that the cache may
 *          always hold one mapping of up to 32 MiB.  A program that has
 *          made CHURN_MAPS large mappings churns them (git log -p makes
 *          45 in all, the threaded stress program thousands), and from
 *          then on half the live large bytes may be cached: every
 *          mapping made is a page fault on each page it touches, which
 *          a reused one has already taken.
 *          The heap's growth comes first: a new arena trims the cache
 *          to its limit without the one-mapping allowance, the biggest
 *          mappings first, as glibc's single heap would reuse a freed
 *          large chunk for small ones.  sqlite3's 2 MB group_concat
 *          buffer left 512 KiB cached through the 4 MB of 1032-byte
 *          blocks that came next, its peak: 13.1..13.2 -> 12.7..12.8 MB
 *          (3 runs alternated).  And a miss, until the program churns,
 *          first has the calling thread's heap give back about as many
 *          dirty pools (heap.c): git log -p held 640 KiB of them beside
 *          its 2 MB of large blocks at its peak (6.5..6.8 -> 6.2..6.6
 *          MB).  At most CHURN_MAPS of them.  A growing realloc
 *          (mremap: fresh pages for the growth) does the same, but
 *          gives back only pools dirty for GROWTH_MIN_AGE purge epochs
 *          or more (3/4 of the purge delay): purging every dirty pool
 *          there cost objmem-python's churn workload 20% (its lists
 *          grow each round while the pools of its tuples wait, empty,
 *          for the next), and with 2 epochs 1.5%; with 3, its time and
 *          faults did not move, and the json workload's second dumps,
 *          whose chunk list grows while the first round's objects wait
 *          for the purger, peaks at 174 MB instead of 177.
 *          A request takes the smallest cached mapping that holds it
 *          (best fit); one a quarter or more bigger than the request is
 *          split, and its tail stays cached (no system call: munmap and
 *          mremap take any page range of a mapping).  When none holds
 *          it, the biggest, if it is half the request or more, is grown
 *          to it by mremap instead of a fresh mapping: its pages are
 *          resident already, and only the growth takes page faults (git
 *          log -p asked for sizes that its freed ones just missed, and
 *          made 372 fresh mappings, 367 of them with the cache holding
 *          some: about 18k page faults -> 12k, peak RSS 19.6-19.7 ->
 *          19.3-19.4 MB; with the heap's dirty pools purged for the
 *          growth, as for a fresh mapping, 21.1k).  The purger unmaps
 *          what stays unused for the purge delay, om_collect all of it.
 *          The stress program: 8,600 mmaps and 400k page faults -> 900
 *          and 215k, 1.99 -> 1.12 s of CPU (mimalloc 1.05, glibc 0.99).
 *
 * A request is rounded up to a size class of pages, four per doubling (at
 * most 25% more, and only address space until the program touches it),
 * so that freed mappings fit later requests: a
 * threaded stress program with 1% of its requests between 64 KiB and
 * 2 MiB made 27,600 mmap/munmap pairs with exact sizes.
 *
 * A block is its mapping: page-aligned (or aligned as asked), usable to
 * the end of its last page.  A growing realloc first takes the head of
 * the cached piece split from the block's back, when it is big enough:
 * no system call, and pages already touched (a list that grows by
 * realloc took its first large size from a split mapping's head, and
 * grows into the tail: objmem-python's strings workload made 350
 * mremaps, each growth a run of page faults in fresh pages, and now 47;
 * 14.8k page faults -> 13.0k; bench/README.md, bench_shim).  Only that
 * piece, which is one mapping of the kernel's with the block.  A
 * neighbour from another mapping would make a block of two, which
 * mremap refuses to move (the churn workload failed 42 such remaps when
 * any neighbour was taken).  Otherwise mremap resizes the block without
 * a copy, and where it refuses, a copy moves it.
 *
 * The table also keeps the high-water marks of the live mappings, their
 * count and their bytes (glibc's max_n_mmaps and max_mmapped_mem, which
 * the shim's malloc_stats prints), raised where an entry goes in, under
 * the lock that is taken there anyway.
 *
 * Invariants (om_check, through omi_large_check):
 *   1. live == the table's entries; every entry's address is aligned to
 *      the page and its size a non-zero page multiple; count + tombs
 *      + reserved stays within 3/4 of the capacity.
 *   2. cached bytes == the sum of the cache's sizes; every cached
 *      mapping is page-aligned, its size a non-zero page multiple, and
 *      not in the table; a piece's head, when it has one and it is in
 *      the table, ends where the piece starts (omi_large_alloc names the
 *      head before it puts the block in the table, under a second
 *      hold of the lock; a fork between the two leaves it out).
 *   3. max_count >= count and max_bytes >= live bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "heap.h"
#include "large.h"
#include "os.h"
#include "tool.h"

#define CACHE_SLOTS 256
#define CACHE_BASE ((size_t)256 << 10)
#define CHURN_MAPS 256
#define CACHE_MAX ((size_t)64 << 20)
#define GROWTH_MIN_AGE 3
#define CACHE_ONE_MAX ((size_t)32 << 20)
#define TOMBSTONE ((uintptr_t)1)
#define MIN_CAPACITY 256

struct entry {
    uintptr_t addr;             /* 0: empty, TOMBSTONE: removed */
    size_t size;                /* mapped bytes */
};

struct cached {
    void *addr;
    size_t size;
    uint16_t since;             /* purge epoch when it was cached */
    uintptr_t head;             /* the block split from its front, which
                                   may grow into it; 0: none */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *table;
static size_t capacity, count, tombs;
static size_t reserved;         /* entries promised to reallocs under way */
static struct cached cache[CACHE_SLOTS];
static size_t ncached, cached_bytes;
static size_t live_bytes;
static size_t max_count, max_bytes;     /* high-water marks of the two */
static uint64_t maps_total;

/* fork(): heap.c's handlers call these, in their order of the L2 locks. */
void omi_large_fork_prepare(void) { pthread_mutex_lock(&lock); }
void omi_large_fork_parent(void) { pthread_mutex_unlock(&lock); }
void omi_large_fork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    reserved = 0;               /* the threads that reserved are gone */
}

/* The size class of a mapping of size bytes: pages rounded up to a
 * quarter of their power of two; 0 on overflow. */
static size_t round_class(size_t size)
{
    size_t page = omi_os_page_size(), bytes = omi_os_page_round(size);
    size_t pages = bytes / page, step;

    if (bytes < size)
        return 0;
    if (pages <= 4)
        return bytes;
    step = (size_t)1 << (61 - __builtin_clzll(pages - 1));
    pages = (pages + step - 1) & ~(step - 1);
    return pages > SIZE_MAX / page ? 0 : pages * page;
}

/* ---- The table (lock held) ---- */

static size_t slot_of(uintptr_t addr, size_t cap)
{
    uint64_t h = (uint64_t)addr * 0x9E3779B97F4A7C15ull;

    return (size_t)(h >> 20) & (cap - 1);
}

static struct entry *find(uintptr_t addr)
{
    if (!table)
        return NULL;
    for (size_t i = slot_of(addr, capacity);; i = (i + 1) & (capacity - 1)) {
        if (table[i].addr == addr)
            return &table[i];
        if (table[i].addr == 0)
            return NULL;
    }
}

static void put(struct entry *t, size_t cap, uintptr_t addr, size_t size)
{
    size_t i = slot_of(addr, cap);

    while (t[i].addr > TOMBSTONE)
        i = (i + 1) & (cap - 1);
    t[i].addr = addr;
    t[i].size = size;
}

static bool needs_room(void)
{
    return (count + tombs + reserved + 1) * 4 > capacity * 3;
}

/*
 * Make room for one more entry (lock held).  The table grows outside the
 * lock: map a bigger one, take the lock, move the entries if nobody
 * moved them meanwhile.  False (lock held) when no table can be mapped.
 */
static bool make_room(void)
{
    while (needs_room()) {
        size_t old_cap = capacity, cap = capacity ? capacity : MIN_CAPACITY;
        struct entry *old = table, *t;

        if ((count + reserved + 1) * 2 > cap)
            cap *= 2;           /* else rehashing drops the tombstones */
        pthread_mutex_unlock(&lock);
        t = omi_os_map(cap * sizeof(*t), 0);
        pthread_mutex_lock(&lock);
        if (!t)
            return false;
        if (table != old || capacity != old_cap) {  /* someone else grew */
            pthread_mutex_unlock(&lock);
            omi_os_unmap(t, cap * sizeof(*t));
            pthread_mutex_lock(&lock);
            continue;
        }
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].addr > TOMBSTONE)
                put(t, cap, old[i].addr, old[i].size);
        table = t;
        capacity = cap;
        tombs = 0;
        pthread_mutex_unlock(&lock);
        if (old)
            omi_os_unmap(old, old_cap * sizeof(*old));
        pthread_mutex_lock(&lock);
    }
    return true;
}

/* Record a mapping where make_room made room (lock held). */
static void put_entry(uintptr_t addr, size_t size)
{
    put(table, capacity, addr, size);
    count++;
    live_bytes += size;
    if (count > max_count)
        max_count = count;
    if (live_bytes > max_bytes)
        max_bytes = live_bytes;
}

/* Record a mapping; false when no table can be mapped. */
static bool insert(uintptr_t addr, size_t size)
{
    bool ok;

    pthread_mutex_lock(&lock);
    ok = make_room();
    if (ok)
        put_entry(addr, size);
    pthread_mutex_unlock(&lock);
    return ok;
}

/* Remove addr's entry (lock held); its size, or 0 when it is not ours.
 * The cached piece split from its back forgets it: the block is freed,
 * or resized by mremap, after which the two may be two mappings. */
static size_t take_entry(uintptr_t addr)
{
    struct entry *e = find(addr);
    size_t size;

    if (!e)
        return 0;
    for (size_t i = 0; i < ncached; i++)
        if (cache[i].head == addr)
            cache[i].head = 0;
    size = e->size;
    e->addr = TOMBSTONE;
    count--;
    tombs++;
    live_bytes -= size;
    return size;
}

/* ---- The cache (lock held) ---- */

/* The smallest cached mapping of at least size bytes aligned to align;
 * NULL when none is. */
static struct cached *cache_best(size_t size, size_t align)
{
    struct cached *best = NULL;

    for (size_t i = 0; i < ncached; i++) {
        struct cached *c = &cache[i];
        if (c->size >= size && ((uintptr_t)c->addr & (align - 1)) == 0 &&
            (!best || c->size < best->size))
            best = c;
    }
    return best;
}

/* The biggest cached mapping; NULL when the cache is empty. */
static struct cached *cache_biggest(void)
{
    struct cached *big = NULL;

    for (size_t i = 0; i < ncached; i++)
        if (!big || cache[i].size > big->size)
            big = &cache[i];
    return big;
}

static void cache_remove(struct cached *c)
{
    cached_bytes -= c->size;
    *c = cache[--ncached];
}

/* The cached piece split from the back of block e, when it starts where
 * e ends and holds at least size bytes (NULL when none does). */
static struct cached *cache_tail_of(const struct entry *e, size_t size)
{
    for (size_t i = 0; i < ncached; i++)
        if ((uintptr_t)cache[i].addr == e->addr + e->size)
            return cache[i].head == e->addr && cache[i].size >= size
                       ? &cache[i] : NULL;
    return NULL;
}

/* Take size bytes from the head of cached piece c. */
static void cache_take_head(struct cached *c, size_t size)
{
    if (c->size == size) {
        cache_remove(c);
        return;
    }
    c->addr = (char *)c->addr + size;
    c->size -= size;
    cached_bytes -= size;
}

/* Has the program made CHURN_MAPS mappings? */
static bool churning(void)
{
    return __atomic_load_n(&maps_total, __ATOMIC_RELAXED) >= CHURN_MAPS;
}

/* The bytes the cache may hold: CACHE_BASE and a share of the live large
 * bytes, an eighth (half once the program churns), at most CACHE_MAX. */
static size_t cache_limit(bool churn)
{
    size_t limit = CACHE_BASE + live_bytes / (churn ? 2 : 8);

    return limit < CACHE_MAX ? limit : CACHE_MAX;
}

/* ---- Entry points ---- */

void *omi_large_alloc(size_t size, size_t align, bool *zeroed)
{
    size_t need = round_class(size);
    struct cached *c, grown = { NULL, 0, 0, 0 };
    void *p = NULL;
    size_t got = need;

    omi_heap_fork_once();
    if (need == 0 || need > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (align < omi_os_page_size())
        align = omi_os_page_size();
    pthread_mutex_lock(&lock);
    if ((c = cache_best(need, align))) {
        p = c->addr;
        got = c->size;
        if (got - need >= need / 4) {   /* split: the tail stays */
            cache_take_head(c, need);
            c->head = (uintptr_t)p;
            got = need;
        } else {
            cache_remove(c);
        }
    } else if (align == omi_os_page_size() && (c = cache_biggest()) &&
               c->size >= need / 2) {
        grown = *c;             /* too small, but half or more: grown */
        cache_remove(c);
    }
    pthread_mutex_unlock(&lock);
    *zeroed = p == NULL;
    if (grown.addr) {
        omi_tool_handed_out(grown.addr, grown.size);    /* tool.h, 2 */
        p = omi_os_remap(grown.addr, grown.size, need);
        if (p)
            *zeroed = false;
        else
            omi_os_unmap(grown.addr, grown.size);
    }
    if (!p) {
        if (!churning())
            omi_heap_make_room(need, 0);
        p = omi_os_map(need, align);
        if (!p) {
            errno = ENOMEM;
            return NULL;
        }
        __atomic_fetch_add(&maps_total, 1, __ATOMIC_RELAXED);
    }
    if (!insert((uintptr_t)p, got)) {
        omi_os_unmap(p, got);
        errno = ENOMEM;
        return NULL;
    }
    omi_tool_handed_out(p, got);
    return p;
}

bool omi_large_free(void *p)
{
    struct cached evicted = { NULL, 0, 0, 0 };
    size_t size, limit;
    bool cached = false;

    pthread_mutex_lock(&lock);
    size = take_entry((uintptr_t)p);
    limit = cache_limit(churning());
    if (size && size <= CACHE_ONE_MAX) {
        if (ncached == CACHE_SLOTS ||
            (ncached > 0 && cached_bytes + size > limit)) {
            /* Make room: the oldest goes (unmapped below, unlocked). */
            size_t oldest = 0;
            for (size_t i = 1; i < ncached; i++)
                if ((int16_t)(cache[i].since - cache[oldest].since) < 0)
                    oldest = i;
            evicted = cache[oldest];
            cache_remove(&cache[oldest]);
        }
        if (ncached == 0 ||
            (ncached < CACHE_SLOTS && cached_bytes + size <= limit)) {
            /* Poisoned before another thread can take it from the cache
             * (and unpoison it), not after (tool.h, 1 and 2). */
            omi_tool_freed(p, size);
            cache[ncached++] = (struct cached){ p, size, omi_arena_epoch(),
                                                0 };
            cached_bytes += size;
            cached = true;
        }
    }
    pthread_mutex_unlock(&lock);
    if (!size)
        return false;
    if (evicted.addr) {
        omi_tool_handed_out(evicted.addr, evicted.size);   /* tool.h, 2 */
        omi_os_unmap(evicted.addr, evicted.size);
    }
    if (cached) {
        omi_purge_notify();
    } else {
        omi_os_unmap(p, size);
    }
    return true;
}

size_t omi_large_size(const void *p)
{
    struct entry *e;
    size_t size;

    pthread_mutex_lock(&lock);
    e = find((uintptr_t)p);
    size = e ? e->size : 0;
    pthread_mutex_unlock(&lock);
    return size;
}

/*
 * Grow large block p (entry e) to need bytes in place, from the cached
 * piece split from its back, when it is big enough (lock held; false
 * when it is not).  A list or a buffer that grows by realloc took its
 * first large size from the head of a cached mapping, split; its growth
 * now takes the rest with no system call, in pages it touched before,
 * instead of an mremap that moves it past the cached tail into fresh
 * pages, each a page fault.  Only that piece: the two are one mapping of
 * the kernel's, which mremap can move as one later.  A neighbour from
 * another mapping (one freed block beside another) is two, which mremap
 * refuses: objmem-python's churn workload failed 42 such remaps.
 */
static bool grow_in_place(struct entry *e, size_t need)
{
    struct cached *c = cache_tail_of(e, need - e->size);

    if (!c)
        return false;
    cache_take_head(c, need - e->size);
    live_bytes += need - e->size;
    e->size = need;
    if (live_bytes > max_bytes)
        max_bytes = live_bytes;
    return true;
}

/* A growth that mremap refused (the kernel out of room or of mappings,
 * or fault injection): a new block, the contents copied, p freed. */
static void *move_by_copy(void *p, size_t old, size_t size)
{
    bool zeroed;
    void *q = omi_large_alloc(size, 0, &zeroed);

    if (!q)
        return NULL;
    memcpy(q, p, old);
    omi_large_free(p);
    return q;
}

/*
 * Resize p: in place where the cache holds the pages after it, else with
 * mremap.  Its entry leaves the table before the remap (once p's range
 * is unmapped, another thread's new mapping may take the address), and
 * room for the entry that comes back, q's or p's, is reserved first: so a
 * resize never needs a map after the remap, when a failure could neither
 * be undone nor recorded.  With no room to be had, the block stays as it
 * was.
 */
void *omi_large_realloc(void *p, size_t size)
{
    size_t need = round_class(size), old;
    struct entry *e;
    void *q;

    if (need == 0 || need > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&lock);
    e = find((uintptr_t)p);
    OM_ASSERT(e != NULL);
    old = e->size;
    if (need > old && grow_in_place(e, need)) {
        pthread_mutex_unlock(&lock);
        omi_tool_handed_out(p, need);
        return p;
    }
    if (!make_room()) {
        pthread_mutex_unlock(&lock);
        if (need <= old)
            return p;           /* still good for a shrink */
        errno = ENOMEM;
        return NULL;
    }
    take_entry((uintptr_t)p);
    reserved++;
    pthread_mutex_unlock(&lock);
    if (need > old && !churning())
        omi_heap_make_room(need - old, GROWTH_MIN_AGE);
    q = need == old ? p : omi_os_remap(p, old, need);
    pthread_mutex_lock(&lock);
    reserved--;
    if (q)
        put_entry((uintptr_t)q, need);
    else
        put_entry((uintptr_t)p, old);   /* as it was */
    pthread_mutex_unlock(&lock);
    if (!q) {
        /* The block stays as it was: still good for a shrink. */
        if (need <= old)
            return p;
        if ((q = move_by_copy(p, old, size)))
            return q;
        errno = ENOMEM;
        return NULL;
    }
    omi_tool_handed_out(q, need);
    return q;
}

/* Unmap n mappings taken out of the cache (no lock held): their bytes. */
static size_t unmap_all(const struct cached *out, size_t n)
{
    size_t bytes = 0;

    for (size_t i = 0; i < n; i++) {
        bytes += out[i].size;
        omi_tool_handed_out(out[i].addr, out[i].size);
        omi_os_unmap(out[i].addr, out[i].size);
    }
    return bytes;
}

size_t omi_large_purge(unsigned min_age)
{
    struct cached out[CACHE_SLOTS];
    uint16_t now = omi_arena_epoch();
    size_t n = 0;

    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ncached;) {
        if ((uint16_t)(now - cache[i].since) >= min_age) {
            out[n++] = cache[i];
            cache_remove(&cache[i]);
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&lock);
    return unmap_all(out, n);
}

void omi_large_trim(void)
{
    struct cached out[CACHE_SLOTS];
    size_t n = 0;

    pthread_mutex_lock(&lock);
    while (ncached > 0 && cached_bytes > cache_limit(churning())) {
        size_t big = 0;
        for (size_t i = 1; i < ncached; i++)
            if (cache[i].size > cache[big].size)
                big = i;
        out[n++] = cache[big];
        cache_remove(&cache[big]);
    }
    pthread_mutex_unlock(&lock);
    unmap_all(out, n);
}

void omi_large_totals(struct omi_large_totals *out)
{
    pthread_mutex_lock(&lock);
    out->blocks = count;
    out->bytes = live_bytes;
    out->cached_bytes = cached_bytes;
    out->table_bytes = capacity * sizeof(struct entry);
    out->max_blocks = max_count;
    out->max_bytes = max_bytes;
    pthread_mutex_unlock(&lock);
    out->maps_total = __atomic_load_n(&maps_total, __ATOMIC_RELAXED);
}

size_t omi_large_list(struct om_heap_large *out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&lock);
    for (size_t i = 0; table && i < capacity && n < max; i++)
        if (table[i].addr > TOMBSTONE)
            out[n++] = (struct om_heap_large){ table[i].addr,
                                               table[i].size };
    pthread_mutex_unlock(&lock);
    return n;
}

size_t omi_large_cached_bytes(void)
{
    size_t n;

    pthread_mutex_lock(&lock);
    n = cached_bytes;
    pthread_mutex_unlock(&lock);
    return n;
}

void omi_large_debug(const void *p, struct omi_large_debug *out)
{
    struct entry *e;

    pthread_mutex_lock(&lock);
    e = find((uintptr_t)p);
    *out = (struct omi_large_debug){
        .size = e ? &e->size : NULL,
        .cached_addr = ncached ? &cache[0].addr : NULL,
        .cached_head = ncached ? &cache[0].head : NULL,
        .max_count = &max_count,
    };
    pthread_mutex_unlock(&lock);
}

int omi_large_check(void)
{
    size_t n = 0, sum = 0, csum = 0, page = omi_os_page_size();
    const struct entry *e;
    int rc = 0;

    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < capacity && rc == 0; i++) {
        if (table[i].addr <= TOMBSTONE)
            continue;
        n++;
        sum += table[i].size;
        if ((table[i].addr & (page - 1)) || table[i].size == 0 ||
            (table[i].size & (page - 1)))
            rc = omi_check_fail("large.1", (void *)table[i].addr,
                                "entry of %zu bytes", table[i].size);
    }
    if (rc == 0 && (n != count || sum != live_bytes ||
                    (capacity &&
                     (count + tombs + reserved) * 4 > capacity * 3)))
        rc = omi_check_fail("large.1", table, "%zu entries (count %zu), "
                            "%zu bytes (live %zu)", n, count, sum,
                            live_bytes);
    for (size_t i = 0; i < ncached && rc == 0; i++) {
        csum += cache[i].size;
        if (((uintptr_t)cache[i].addr & (page - 1)) || cache[i].size == 0 ||
            (cache[i].size & (page - 1)))
            rc = omi_check_fail("large.2", cache[i].addr,
                                "cached mapping of %zu bytes",
                                cache[i].size);
        else if (find((uintptr_t)cache[i].addr))
            rc = omi_check_fail("large.2", cache[i].addr,
                                "cached mapping is in the table");
        else if (cache[i].head && (e = find(cache[i].head)) &&
                 e->addr + e->size != (uintptr_t)cache[i].addr)
            rc = omi_check_fail("large.2", cache[i].addr,
                                "cached piece's head %p does not end "
                                "where it starts", (void *)cache[i].head);
    }
    if (rc == 0 && csum != cached_bytes)
        rc = omi_check_fail("large.2", NULL, "cache holds %zu bytes, "
                            "count %zu", csum, cached_bytes);
    if (rc == 0 && (max_count < count || max_bytes < live_bytes))
        rc = omi_check_fail("large.3", NULL, "high-water marks %zu blocks, "
                            "%zu bytes below %zu, %zu", max_count,
                            max_bytes, count, live_bytes);
    pthread_mutex_unlock(&lock);
    return rc;
}
