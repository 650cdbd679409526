/*
 * trace.c - X (cross-cutting): allocation tracing, tracemalloc in C.
 *
 * Tracing wraps the three domain tables, as tracemalloc wraps CPython's
 * (and as the debug hooks do here).  A wrapper calls the table it wraps
 * ("under"), then records or forgets a trace: the block's size and domain
 * and the id of its traceback.  Nothing here allocates through objmem:
 * tables are mappings, tracebacks live in a region (region.c).
 *
 *   traces:      SHARDS tables, chosen by (domain, pointer); each
 *                an open-addressing table with linear probing under its
 *                own mutex.  A slot:
 *                | ptr | size:63 sampled:1 | tb:32 | domain:8 time:24 |
 *                domain is an index in `domains` (the three of objmem
 *                are 0, 1, 2, and om_trace_track may name up to 253
 *                more); time is when the block was traced, in ticks
 *                (1/64 s) since tracing started, saturating after three
 *                days: the ticker thread's tick_word, or the clock.
 *   tracebacks:  a tree (a trie of stacks, outermost frame at the root):
 *                a node is (the node of its caller's frame, a frame id);
 *                frames are interned (fr_dir: the frames that deep
 *                stacks share are kept once), and so are nodes: stacks
 *                that share their callers share those nodes.  A
 *                traceback is its innermost frame's node, its total and
 *                its source: 8 bytes, with as many ids of its own (the
 *                tags hold them).  Nodes and tracebacks are interned in
 *                one set keyed by (node above, what): a frame id for a
 *                node, the total and source for a traceback.  Records
 *                are in chunks (tb_dir, nd_dir, fr_dir) that never move,
 *                in the region tb_mem; the sets are mappings of their
 *                own.  All of it under tb_lock.  A
 *                per-thread cache maps a traceback's 64-bit hash (or the
 *                frame source's key for it) to its id, so that the common
 *                allocation takes no traceback lock.
 *   frames:      the C call stack (stackwalk.c; libgcc's _Unwind_Backtrace
 *                where it hands back), as return
 *                addresses, symbolised by om_trace_take_snapshot, or for a
 *                capture when it is loaded (omi_trace_take_capture; the
 *                walk stops one frame past the limit: total counts at
 *                most limit + 1); or a
 *                runtime's frame source, as (filename, function, lineno).
 *
 * Each recorded allocation is also counted, by traceback and domain, in
 * the allocations of the run (totals.c; om_snapshot_allocations), in an
 * entry of the thread's own (my_totals, the counter slot's).
 *
 * A thread that is inside tracing (or inside a snapshot) has its
 * `reentrant` flag set: the allocations it makes then (the unwinder's, the
 * symboliser's, a frame source's) go through untraced, as tracemalloc's
 * TSS flag does.  The underlying tables are called with no lock held.  A
 * trace that cannot be recorded (no memory for a table) is counted as
 * lost; the allocation succeeds all the same.
 *
 * Sampling (om_trace_start_sampling): each thread counts down the bytes
 * to its next sample, drawn from an exponential law of mean T; an
 * allocation that crosses zero is traced, flagged sampled, and weighs
 * 1 / (1 - exp(-size / T)) in the snapshot; the next gap is drawn from
 * its end (the law has no memory: one draw a block, whatever its size).
 * A free must find out cheaply whether its block was sampled: `filter`
 * counts the traces by an index of their key that keeps neighbours
 * together, and while sampling a free whose counter is zero skips the
 * table (one load, most often from a cache line that the free before
 * loaded).
 *
 * Start, stop, clear and snapshots serialise on ctl_lock.  Stop clears
 * `tracing`, then empties each shard under its lock, so an allocation
 * that saw tracing on either records before the shard is emptied or sees
 * it off under the lock.  Tracebacks are forgotten by bumping `gen`, which
 * the per-thread caches compare.
 *
 * Invariants (om_check through omi_trace_check):
 *   1. A shard's used is the number of its non-empty slots, below 3/4 of
 *      its capacity; every trace sits in its probe run (no empty slot
 *      between its home slot and itself), in the shard of its key.
 *   2. current is the sum of the sizes of the exact traces plus the
 *      weighted sizes of the sampled ones, and peak >= current.
 *   3. filter[i] is the number of the table's traces whose key has
 *      filter_index i, or UINT16_MAX (full: it stays so).
 *   4. Every trace's tb is below tb_count.
 *   5. Every node's parent is an older node (or none) and its frame id is
 *      below fr_count; every traceback's chain of nodes from its leaf
 *      is nframe long; the path set holds each node and traceback once,
 *      in its probe run, and the frame set each frame.
 *   6. A trace in the table of a small block of objmem's is counted by
 *      the block's pool (pool.h, invariant 5).
 *   7. counters_taken is the number of counters taken (the peak's slack
 *      is reckoned from it: too few would let noise keep peaks).
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unwind.h>

#include "arena.h"
#include "domain.h"
#include "fmath.h"
#include "heap.h"
#include "options.h"
#include "os.h"
#include "trace.h"
#include "stackwalk.h"
#include "tool.h"

/* fork() holds every shard's lock at once; TSan follows at most 64 held
 * locks, so its builds have half the shards (and keep the lock-order
 * checks). */
#if defined(__SANITIZE_THREAD__)
#define SHARD_BITS 5
#else
#define SHARD_BITS 6
#endif
#define SHARDS (1 << SHARD_BITS)
#define SHARD_MIN 128           /* slots of a shard's first table: a page */
#define MAX_FRAMES 128
#define SKIP_MAX 16             /* frames of the allocation path itself */
#define FILTER_BITS 14           /* 16 Ki counters: 32 KiB */
#define FILTER_GRAIN 8           /* a counter per 256 bytes */
#define TB_CACHE_SET_BITS 5     /* per-thread traceback cache: 32 sets */
#define TB_CACHE (2 << TB_CACHE_SET_BITS)       /* of two entries */
#define DEFAULT_SAMPLING_FRAMES 16

/* ---- Data ---- */

#define slot omi_trace_rec            /* trace.h: | ptr | meta | tb | dt | */

#define TICKS_PER_S 64          /* time's unit: 1/64 s */
#define TIME_MAX ((1u << 24) - 1)
#define MAX_DOMAINS 256

struct shard {
    pthread_mutex_t lock;
    struct slot *slots;
    size_t mask;                /* capacity - 1; slots NULL: 0 */
    size_t used;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
};

/* A frame as recorded: pc for C frames; filename, function, lineno for a
 * frame source's. */
struct rawframe {
    uintptr_t key;
    uintptr_t function;
    uint32_t lineno;
    uint32_t pad;
};

/* A node of the tracebacks' tree: a frame and, above it, the node of
 * the frame that called it. */
struct node {
    uint32_t parent;            /* node id + 1; 0: an outermost frame */
    uint32_t frame;             /* frame id (fr_at) */
};

/* A traceback: the node of its innermost frame. */
struct tb {
    uint32_t leaf;              /* node id + 1; 0: no frames */
    uint16_t total;             /* the stack's depth, at most TOTAL_MAX */
    uint8_t nframe;
    uint8_t source;             /* 1: frames from a frame source */
};

/* An open-addressing set of ids (+ 1, flagged IS_TB in the path set;
 * 0: empty), mapped on its own: the old table of a growth is unmapped
 * once tb_lock is dropped. */
struct idset {
    uint32_t *slots;
    size_t mask;                /* capacity - 1; slots NULL: 0 */
    size_t used;
};

#define IS_TB (1u << 31)        /* a path set entry that is a traceback */

#define TOTAL_MAX UINT16_MAX

struct tb_cache_entry {
    uint64_t hash;
    uint32_t id;
    uint32_t gen;
};

/* The wrapper of domain d keeps the table it wraps. */
struct hook {
    unsigned domain;
    struct om_allocator under;
};

static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool tracing;
static atomic_int limit = 1;
static atomic_size_t sample_mean;
static om_frame_source_fn source_fn;
static void *source_ctx;
static om_frame_key_fn key_fn;          /* NULL: the source has no keys */
static _Atomic(uint32_t) gen = 1;
static atomic_size_t current, peak;
static atomic_size_t lost;
static struct hook hooks[3];
static bool hooked[3];
static struct shard shards[SHARDS];
static _Atomic(uint16_t) *filter;       /* 1 << FILTER_BITS counters */
static _Atomic(int64_t) start_ns;       /* when tracing started */

/* The snapshot at the peak (om_trace_keep_peak): peak_pending says the
 * traced memory reached a peak above peak_threshold and has not fallen a
 * sixteenth (PEAK_DROP) below its high-water mark since; the free that
 * makes it fall keeps the traces' sums as they were before it (under
 * ctl_lock), and the next threshold is a step above the memory kept.  A
 * heap that grows with frees between is summed once, not at every step
 * (a pass at every step walked about five times its final traces). */
static atomic_uint peak_step;           /* percent; 0: off */
#define PEAK_DROP 16                    /* kept a 1/16 drop below the mark */
static atomic_size_t peak_threshold = SIZE_MAX;
static atomic_bool peak_pending;
/* At the peak, per traceback, the sum of its traces (a mapping, reused).
 * Fixed point, OMI_PEAK_ONE to a block, so that exact and sampled traces
 * both add integers: a sampled trace adds its weight and its weighted
 * size so scaled (an add in doubles per trace, and a test of the count
 * before the first, made the sum wait on the last one's store at every
 * trace).  count's top byte is the domain index of one of the traces:
 * 16 bytes a traceback, where two sums in integers and two in doubles
 * took 40 (at 25 frames, Python's churn keeps 9,000 tracebacks). */
_Static_assert(MAX_DOMAINS <= 256, "a domain index fits count's top byte");
static struct omi_peak_sum *peak_sums;
static size_t peak_sums_cap, peak_ntb;
static size_t peak_sums_hi, peak_vars_hi;       /* elements ever zeroed */
/* While sampling, beside each sum: the variances of its count and bytes
 * (snapshot.c's statistics give the standard errors from them). */
struct peak_var {
    double cvar, svar;
};
static struct peak_var *peak_vars;      /* NULL when every block traced */
static size_t peak_vars_cap;
static bool peak_valid;
static uint32_t peak_gen;               /* the tracebacks' generation */
static struct om_snapshot_info peak_info;
static _Atomic(unsigned) domains[MAX_DOMAINS] = { 0, 1, 2 };
static atomic_long ndomains = 3;

/*
 * Tracebacks and frames by id: chunks of ID_CHUNK entries that never move
 * (a snapshot reads the ids below the count it took, unlocked, while new
 * ones are added), found by a directory of chunks.  Doubling arrays kept
 * every old copy for such readers: as much memory again as the arrays.
 */
#define ID_CHUNK_BITS 10
#define ID_CHUNK ((size_t)1 << ID_CHUNK_BITS)
#define ID_MAX ((size_t)1 << 24)        /* tags hold 24-bit ids */

static pthread_mutex_t tb_lock = PTHREAD_MUTEX_INITIALIZER;
static struct omi_region tb_mem;
static struct tb *tb_dir[ID_MAX / ID_CHUNK];
static size_t tb_count;
static struct node *nd_dir[ID_MAX / ID_CHUNK];
static size_t nd_count;
static struct idset paths;              /* nodes and tracebacks */
/* The frames, interned as the nodes are (under tb_lock, in tb_mem). */
static struct rawframe *fr_dir[ID_MAX / ID_CHUNK];
static size_t fr_count;
static struct idset frames_set;

/* os.h's flag: objmem's own work, untraced. */
#define reentrant omi_os_untraced
static OM_TLS struct tb_cache_entry tb_cache[TB_CACHE];
OM_TLS int64_t omi_trace_until_sample;
static OM_TLS uint64_t rng_state;

/* ---- Small helpers ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t key_hash(unsigned domain, uintptr_t ptr)
{
    return mix64((uint64_t)ptr ^ ((uint64_t)domain << 56));
}

static unsigned slot_domain(const struct slot *v)
{
    return v->dt >> 24;
}

/* The filter counter of a key: one per 256 bytes of address space, so
 * that the frees of neighbouring blocks (blocks are freed in runs) read
 * one cache line of counters, 8 KiB of blocks, and a line is likely still
 * loaded.  The 4 MiB windows of the address space are folded in, so that
 * the counters of one window are not those of the next.  The counters of
 * one shard are a range: the shard of a key is its counter's top 6 bits. */
static size_t filter_index(unsigned domain, uintptr_t ptr)
{
    uint64_t x = ptr >> FILTER_GRAIN ^ ptr >> (FILTER_GRAIN + FILTER_BITS) ^
                 (uint64_t)domain << (FILTER_BITS - 5);

    return (size_t)x & (((size_t)1 << FILTER_BITS) - 1);
}

static struct shard *shard_of(size_t fi)
{
    return &shards[fi >> (FILTER_BITS - SHARD_BITS)];
}

#define FILTER_PER_SHARD ((size_t)1 << (FILTER_BITS - SHARD_BITS))

/* A sampled block weighs 1/p: the blocks it stands for. */
static double sample_weight(uint64_t size, size_t mean)
{
    double p = -omi_fmath_expm1(-(double)size / (double)mean);

    return p > 0 ? 1.0 / p : (double)mean;
}

/* ---- Traced memory counters ----
 *
 * current and peak are not written on every allocation (a locked
 * instruction each, an eighth of a traced Python run).  Each thread adds
 * its traces' bytes to a counter of its own (delta, with hi its high
 * point) and moves the delta to current when it passes FLUSH_BYTES either
 * way, raising peak to current + hi as it stood before the move.  Readers
 * add the deltas of every counter to current, and hi to peak.  With one
 * thread, both are exact; with several, current is exact once they stop,
 * and peak may exceed the true one by the other threads' highs (each
 * below FLUSH_BYTES), never fall below it (a move settles it first).
 * A thread gives its counter back at exit, moving what it holds; a
 * thread that finds the table full writes current and peak directly.
 * A clear (count_clears) or a reset of the peak (count_epoch) makes the
 * counters of older epochs start afresh (the readers skip them).
 */
#define COUNTERS 256
#define FLUSH_BYTES ((int64_t)256 << 10)

struct counter {
    _Atomic int64_t delta;      /* bytes since the last move */
    _Atomic int64_t hi;         /* delta's high point since the move */
    _Atomic uint32_t epoch;     /* count_epoch of hi */
    _Atomic uint32_t clears;    /* count_clears of delta */
    int64_t base;               /* the owner's: current after its move */
    atomic_bool taken;
} __attribute__((aligned(64)));

static struct counter counters[COUNTERS];
static atomic_int counters_taken;       /* counters with a live owner */
static _Atomic uint32_t count_epoch = 1, count_clears = 1;
static OM_TLS struct counter *my_counter;
static OM_TLS bool my_counter_tried;
static OM_TLS struct omi_total_entry *my_totals;   /* totals.c's, or NULL */
_Static_assert(COUNTERS == OMI_TOTAL_THREADS, "a totals slot a counter");
static pthread_key_t counter_key;
static pthread_once_t counter_once = PTHREAD_ONCE_INIT;

static void peak_raise(int64_t v)
{
    size_t old = atomic_load_explicit(&peak, memory_order_relaxed);

    while (v > 0 && (size_t)v > old &&
           !atomic_compare_exchange_weak_explicit(&peak, &old, (size_t)v,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

OM_INLINE bool above_threshold(int64_t v)
{
    return v > 0 && (size_t)v > atomic_load_explicit(&peak_threshold,
                                                     memory_order_relaxed);
}

/* How far a thread's view of the traced memory (current, plus its own
 * delta when it has a counter: own) may stand from the truth: the deltas
 * of the other counters, each within FLUSH_BYTES.  0 with one thread. */
static int64_t view_slack(bool own)
{
    int n = atomic_load_explicit(&counters_taken, memory_order_relaxed) -
            own;

    return n > 0 ? n * FLUSH_BYTES : 0;
}

/* The traced memory as this thread sees it (now: current plus its own
 * delta) reached a new high: a peak worth keeping?  Only if now passes
 * the threshold by more than the view's slack.  Before, a producer's
 * view missed its consumers' negative deltas: with little traced memory
 * and many threads the error alone crossed the threshold again after
 * each peak kept, and a pass over every trace (peak_keep) came every few
 * frees (threads-xfer traced on 16 cores: 1.3 Mblocks/s at T=16, 1.7 at
 * T=2). */
static OM_NOINLINE void peak_note(int64_t now, bool own)
{
    if (above_threshold(now - view_slack(own)))
        atomic_store_explicit(&peak_pending, true, memory_order_relaxed);
}

static void counted(size_t *cur, size_t *pk);

/* current is about to move: the peak a reader sees now (current plus
 * every counter's high point) goes into peak first.  The other counters'
 * high points stand on the current they were reached over; added to the
 * moved one they would read too low (a thread's free of another's block
 * moved it, and a peak of the two together went unseen). */
static void peak_settle(void)
{
    size_t pk;

    counted(NULL, &pk);
    peak_raise((int64_t)pk);
}

/* Without a counter: current and peak directly. */
static OM_NOINLINE void count_direct(int64_t n)
{
    int64_t now;

    if (n < 0 && atomic_load_explicit(&counters_taken, memory_order_relaxed))
        peak_settle();
    now = (int64_t)atomic_fetch_add_explicit(&current, (size_t)n,
                                             memory_order_relaxed) + n;

    if (n > 0) {
        peak_raise(now);
        if (above_threshold(now))
            peak_note(now, false);
    }
}

/* Move c's delta to current and its high point to peak (the owner, or
 * its exit).  c's epochs are the live ones. */
static void counter_move(struct counter *c)
{
    int64_t d = atomic_load_explicit(&c->delta, memory_order_relaxed);
    int64_t before;

    peak_settle();
    before = (int64_t)atomic_fetch_add_explicit(&current, (size_t)d,
                                                memory_order_relaxed);
    peak_raise(before + atomic_load_explicit(&c->hi, memory_order_relaxed));
    atomic_store_explicit(&c->delta, 0, memory_order_relaxed);
    atomic_store_explicit(&c->hi, 0, memory_order_relaxed);
    c->base = before + d;
}

/* c's epochs are old: a clear drops its delta, a reset of the peak its
 * high point. */
static OM_NOINLINE void counter_renew(struct counter *c)
{
    uint32_t clears = atomic_load(&count_clears);

    if (atomic_load_explicit(&c->clears, memory_order_relaxed) != clears) {
        atomic_store_explicit(&c->delta, 0, memory_order_relaxed);
        atomic_store_explicit(&c->clears, clears, memory_order_relaxed);
        c->base = (int64_t)atomic_load(&current);
    }
    atomic_store_explicit(&c->hi, atomic_load_explicit(
                              &c->delta, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&c->epoch, atomic_load(&count_epoch),
                          memory_order_relaxed);
}

/* Thread exit: what the counter holds goes to current. */
static void counter_release(void *p)
{
    struct counter *c = p;

    if (atomic_load_explicit(&c->epoch, memory_order_relaxed) !=
        atomic_load(&count_epoch))
        counter_renew(c);
    counter_move(c);
    omi_totals_release((int)(c - counters));
    my_counter = NULL;
    my_totals = NULL;
    atomic_fetch_sub_explicit(&counters_taken, 1, memory_order_relaxed);
    atomic_store_explicit(&c->taken, false, memory_order_release);
}

static void counter_key_make(void)
{
    if (pthread_key_create(&counter_key, counter_release) != 0)
        counter_key = (pthread_key_t)-1;
}

/* The calling thread's first trace: give it a counter, if one is free.
 * Outside every lock (pthread_setspecific may allocate). */
static OM_NOINLINE void counter_claim(void)
{
    my_counter_tried = true;
    pthread_once(&counter_once, counter_key_make);
    if (counter_key == (pthread_key_t)-1)
        return;
    for (int i = 0; i < COUNTERS; i++) {
        struct counter *c = &counters[i];
        bool no = false;

        if (atomic_load_explicit(&c->taken, memory_order_relaxed) ||
            !atomic_compare_exchange_strong(&c->taken, &no, true))
            continue;
        atomic_store(&c->delta, 0);
        atomic_store(&c->clears, atomic_load(&count_clears));
        atomic_store(&c->epoch, atomic_load(&count_epoch));
        atomic_store(&c->hi, 0);
        c->base = (int64_t)atomic_load(&current);
        if (pthread_setspecific(counter_key, c) != 0) {
            atomic_store(&c->taken, false);
            return;
        }
        my_counter = c;
        my_totals = omi_totals_thread(i);
        atomic_fetch_add_explicit(&counters_taken, 1, memory_order_relaxed);
        return;
    }
}

static inline void counter_mine(void)
{
    if (unlikely(!my_counter) && !my_counter_tried)
        counter_claim();
}

/* n bytes traced (n > 0) or forgotten (n < 0) by this thread. */
static inline void count(int64_t n)
{
    struct counter *c = my_counter;
    int64_t d;

    if (unlikely(!c)) {
        count_direct(n);
        return;
    }
    if (unlikely(atomic_load_explicit(&c->epoch, memory_order_relaxed) !=
                 atomic_load_explicit(&count_epoch, memory_order_relaxed)))
        counter_renew(c);
    d = atomic_load_explicit(&c->delta, memory_order_relaxed) + n;
    atomic_store_explicit(&c->delta, d, memory_order_relaxed);
    if (d > atomic_load_explicit(&c->hi, memory_order_relaxed)) {
        atomic_store_explicit(&c->hi, d, memory_order_relaxed);
        if (unlikely(above_threshold(c->base + d)))
            peak_note((int64_t)atomic_load_explicit(
                          &current, memory_order_relaxed) + d, true);
    }
    if (unlikely(d > FLUSH_BYTES || d < -FLUSH_BYTES))
        counter_move(c);
}

static void memory_add(size_t n)
{
    count((int64_t)n);
}

static void memory_sub(size_t n)
{
    count(-(int64_t)n);
}

/* The traced memory and its peak: current and peak with what the
 * counters hold. */
static void counted(size_t *cur, size_t *pk)
{
    uint32_t clears = atomic_load(&count_clears);
    uint32_t epoch = atomic_load(&count_epoch);
    int64_t g = (int64_t)atomic_load(&current), sum = 0, hi = 0;

    for (int i = 0; i < COUNTERS; i++) {
        const struct counter *c = &counters[i];
        int64_t d;

        if (!atomic_load_explicit(&c->taken, memory_order_acquire) ||
            atomic_load_explicit(&c->clears, memory_order_relaxed) != clears)
            continue;
        d = atomic_load_explicit(&c->delta, memory_order_relaxed);
        sum += d;
        hi += atomic_load_explicit(&c->epoch, memory_order_relaxed) == epoch
                  ? atomic_load_explicit(&c->hi, memory_order_relaxed) : d;
    }
    if (cur)
        *cur = g + sum > 0 ? (size_t)(g + sum) : 0;
    if (pk) {
        size_t p = atomic_load(&peak);

        *pk = g + hi > 0 && (size_t)(g + hi) > p ? (size_t)(g + hi) : p;
    }
}

/* A new epoch of the counters: clear (current and peak go to 0) or not
 * (the peak goes to the current traced memory). */
static void counters_restart(bool clear)
{
    size_t cur;

    if (clear) {
        atomic_fetch_add(&count_clears, 1);
        atomic_store(&current, 0);
        atomic_store(&peak, 0);
    } else {
        counted(&cur, NULL);
        atomic_store(&peak, cur);
    }
    atomic_fetch_add(&count_epoch, 1);
}

/* The estimate of the bytes a sampled trace of size bytes stands for. */
static OM_NOINLINE size_t sampled_bytes(uint64_t size)
{
    return (size_t)omi_fmath_llround((double)size *
                           sample_weight(size, atomic_load(&sample_mean)));
}

/* The bytes a trace adds to current: its size, or its estimate. */
OM_INLINE size_t trace_bytes(uint64_t meta)
{
    return likely(!(meta & 1)) ? meta >> 1 : sampled_bytes(meta >> 1);
}

/* ---- The traces: sharded open-addressing tables ---- */

static size_t slot_home(const struct shard *sh, uint64_t h)
{
    return (size_t)h & sh->mask;
}

/* The slot of (domain, ptr) in sh, or NULL.  Under sh->lock. */
static struct slot *shard_find(struct shard *sh, uint64_t h, unsigned domain,
                               uintptr_t ptr)
{
    size_t i;

    if (!sh->slots)
        return NULL;
    for (i = slot_home(sh, h);; i = (i + 1) & sh->mask) {
        struct slot *s = &sh->slots[i];

        if (!s->ptr)
            return NULL;
        if (s->ptr == ptr && slot_domain(s) == domain)
            return s;
    }
}

/* The slot of (domain, ptr) in sh, or the empty slot where it goes: one
 * probe for both.  Under sh->lock, with room in the table. */
static struct slot *shard_slot_for(struct shard *sh, uint64_t h,
                                   unsigned domain, uintptr_t ptr)
{
    size_t i = slot_home(sh, h);

    for (;; i = (i + 1) & sh->mask) {
        struct slot *s = &sh->slots[i];

        if (!s->ptr || (s->ptr == ptr && slot_domain(s) == domain))
            return s;
    }
}

/* Put a slot known to be absent into a table with room.  Under the lock. */
static void shard_put(struct slot *slots, size_t mask, const struct slot *v)
{
    size_t i = (size_t)key_hash(slot_domain(v), v->ptr) & mask;

    while (slots[i].ptr)
        i = (i + 1) & mask;
    slots[i] = *v;
}

/* Empty slot i, moving later slots of its run back (no tombstones). */
static void shard_remove_at(struct shard *sh, size_t i)
{
    size_t j = i;

    for (;;) {
        size_t home;

        j = (j + 1) & sh->mask;
        if (!sh->slots[j].ptr)
            break;
        home = (size_t)key_hash(slot_domain(&sh->slots[j]),
                                sh->slots[j].ptr) &
               sh->mask;
        /* j may move to i when its home is not in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            sh->slots[i] = sh->slots[j];
            i = j;
        }
    }
    memset(&sh->slots[i], 0, sizeof(sh->slots[i]));
    sh->used--;
}

static bool shard_full(const struct shard *sh)
{
    return !sh->slots || (sh->used + 1) * 4 > (sh->mask + 1) * 3;
}

/*
 * Make room for one more slot: map a table twice the size without the
 * lock (no system call under a lock), then move the slots under it.
 * Returns with the lock held; false when the map failed.
 */
static bool shard_grow(struct shard *sh)
{
    for (;;) {
        size_t cap = sh->slots ? (sh->mask + 1) * 2 : SHARD_MIN;
        struct slot *old = sh->slots, *fresh;
        size_t old_cap = old ? sh->mask + 1 : 0, i;

        pthread_mutex_unlock(&sh->lock);
        fresh = omi_os_map(cap * sizeof(*fresh), omi_os_page_size());
        pthread_mutex_lock(&sh->lock);
        if (!fresh)
            return false;
        if (sh->slots != old || !shard_full(sh)) {
            /* Someone else grew it meanwhile. */
            pthread_mutex_unlock(&sh->lock);
            omi_os_unmap(fresh, cap * sizeof(*fresh));
            pthread_mutex_lock(&sh->lock);
            if (!shard_full(sh))
                return true;
            continue;
        }
        for (i = 0; i < old_cap; i++)
            if (old[i].ptr)
                shard_put(fresh, cap - 1, &old[i]);
        sh->slots = fresh;
        sh->mask = cap - 1;
        pthread_mutex_unlock(&sh->lock);
        if (old)
            omi_os_unmap(old, old_cap * sizeof(*old));
        pthread_mutex_lock(&sh->lock);
        if (!shard_full(sh))
            return true;
    }
}

/* Count a trace in or out of the filter.  Under the shard's lock (the
 * counter lies in the shard's range), so a plain load and store do; the
 * free path reads without the lock.  A full counter stays full: it only
 * sends frees to the table. */
static void filter_bump(size_t fi, int by)
{
    _Atomic(uint16_t) *c = &filter[fi];
    uint16_t v = atomic_load_explicit(c, memory_order_relaxed);

    if (v != UINT16_MAX)
        atomic_store_explicit(c, (uint16_t)(v + by), memory_order_relaxed);
}

/* Forget the trace of (domain, ptr); its slot's copy in *out.  Under the
 * shard's lock; false when there was none. */
static bool trace_take(struct shard *sh, uint64_t h, unsigned domain,
                       uintptr_t ptr, struct slot *out)
{
    struct slot *s = shard_find(sh, h, domain, ptr);

    if (!s)
        return false;
    *out = *s;
    shard_remove_at(sh, (size_t)(s - sh->slots));
    filter_bump(filter_index(domain, ptr), -1);
    omi_alloc_note_trace(ptr, -1);
    memory_sub(trace_bytes(out->meta));
    return true;
}

/* A small block of objmem's: its trace is a tag (tags.c), of generation
 * g: if a stop or a clear came between, the tag reads as none.  false: it
 * cannot be a tag. */
OM_INLINE bool tag_put(const struct slot *v, uint32_t g)
{
    struct slot old;
    int rc;

    /* Sampling: the few traces go to the table, so that a free asks the
     * filter (one load) instead of the tags (a walk of the page map). */
    if (atomic_load_explicit(&sample_mean, memory_order_relaxed))
        return false;
    rc = omi_tags_put(v, g, &old);
    if (!rc)
        return false;
    if (rc == 2)
        memory_sub(trace_bytes(old.meta));
    memory_add(trace_bytes(v->meta));
    return true;
}

/* trace_put for a trace that cannot be a tag: the hash table. */
static OM_NOINLINE bool table_put(const struct slot *v, uint32_t g)
{
    uint64_t h = key_hash(slot_domain(v), v->ptr);
    size_t fi = filter_index(slot_domain(v), v->ptr);
    struct shard *sh = shard_of(fi);
    struct slot *slot;
    bool ok = true;

    pthread_mutex_lock(&sh->lock);
    if (!atomic_load_explicit(&tracing, memory_order_relaxed) ||
        atomic_load_explicit(&gen, memory_order_relaxed) != g)
        goto out;
    if (shard_full(sh) && !shard_grow(sh)) {
        ok = false;
        goto out;
    }
    if (!atomic_load_explicit(&tracing, memory_order_relaxed) ||
        atomic_load_explicit(&gen, memory_order_relaxed) != g)
        goto out;
    slot = shard_slot_for(sh, h, slot_domain(v), v->ptr);
    if (slot->ptr) {
        memory_sub(trace_bytes(slot->meta));    /* a replaced trace */
    } else {
        sh->used++;
        filter_bump(fi, 1);
        omi_alloc_note_trace(v->ptr, 1);
    }
    *slot = *v;
    memory_add(trace_bytes(v->meta));
out:
    pthread_mutex_unlock(&sh->lock);
    return ok;
}

/* Record a trace, replacing one of the same key; v->tb was interned in
 * generation g (a trace of an older one is dropped: its traceback was
 * forgotten).  false: lost. */
OM_INLINE bool trace_put(const struct slot *v, uint32_t g)
{
    return tag_put(v, g) || table_put(v, g);
}

/* After a trace went: with a peak worth keeping pending, has the traced
 * memory as this thread sees it (current, which the others' moves keep
 * within FLUSH_BYTES each, and its own delta) fallen a sixteenth below
 * the high-water mark (peak, or its own high point)?  With several
 * threads the view may be low by its slack, and a peak kept too early:
 * the next one is a step above what was kept, so a rise goes on to a
 * later one. */
OM_INLINE bool peak_due(void)
{
    struct counter *c = my_counter;
    int64_t now = 0, hw = (int64_t)atomic_load_explicit(&peak,
                                                        memory_order_relaxed);

    if (likely(!atomic_load_explicit(&peak_pending, memory_order_relaxed)))
        return false;
    if (c) {
        int64_t hi = c->base +
                     atomic_load_explicit(&c->hi, memory_order_relaxed);

        now = atomic_load_explicit(&c->delta, memory_order_relaxed);
        hw = hi > hw ? hi : hw;
    }
    now += (int64_t)atomic_load_explicit(&current, memory_order_relaxed);
    return now < hw - hw / PEAK_DROP;
}

static void peak_keep(const struct slot *extra);

/* Forget the trace of (domain, ptr), if any; its slot in *out.  pool:
 * ptr's small pool in use, or NULL (not known).  The peak is kept here
 * when this trace's going is the one that makes it due (peak_due). */
OM_INLINE bool trace_forget_in(struct pool *pool, unsigned domain,
                               uintptr_t ptr, struct slot *out)
{
    size_t fi = filter_index(domain, ptr);
    bool found;

    counter_mine();
    if (!atomic_load_explicit(&sample_mean, memory_order_relaxed) &&
        omi_tags_take(pool, domain, ptr,
                      atomic_load_explicit(&gen, memory_order_relaxed),
                      out)) {
        memory_sub(trace_bytes(out->meta));
        found = true;
    } else {
        if (!atomic_load_explicit(&filter[fi], memory_order_relaxed))
            return false;       /* no trace in the table counts here */
        pthread_mutex_lock(&shard_of(fi)->lock);
        found = trace_take(shard_of(fi), key_hash(domain, ptr), domain, ptr,
                           out);
        pthread_mutex_unlock(&shard_of(fi)->lock);
    }
    if (found && unlikely(peak_due()))
        peak_keep(out);
    return found;
}

OM_INLINE bool trace_forget(unsigned domain, uintptr_t ptr, struct slot *out)
{
    return trace_forget_in(NULL, domain, ptr, out);
}

/* The traces in all shards, read without the locks (an estimate: TSan
 * is told so). */
static OM_RACY_READS size_t shards_used(void)
{
    size_t n = 0;

    for (int i = 0; i < SHARDS; i++)
        n += atomic_load_explicit((_Atomic size_t *)&shards[i].used,
                                  memory_order_relaxed);
    return n;
}

/* omi_tags_each: count the tags, or copy them while there is room. */
struct tag_copy {
    struct slot *out;
    size_t n, cap;
};

static void tag_copy_one(void *ctx, const struct slot *v)
{
    struct tag_copy *c = ctx;

    if (c->n < c->cap)
        c->out[c->n] = *v;
    c->n++;
}

static size_t tags_count(void)
{
    struct tag_copy c = { NULL, 0, 0 };

    omi_tags_each(tag_copy_one, &c, atomic_load(&gen));
    return c.n;
}

/* Empty every shard; unmap the tables after their locks are dropped. */
static void shards_clear(void)
{
    for (int i = 0; i < SHARDS; i++) {
        struct shard *sh = &shards[i];
        struct slot *old;
        size_t cap;

        pthread_mutex_lock(&sh->lock);
        old = sh->slots;
        cap = old ? sh->mask + 1 : 0;
        sh->slots = NULL;
        sh->mask = 0;
        sh->used = 0;
        if (filter)
            memset(&filter[(size_t)i * FILTER_PER_SHARD], 0,
                   FILTER_PER_SHARD * sizeof(*filter));
        pthread_mutex_unlock(&sh->lock);
        if (old)
            omi_os_unmap(old, cap * sizeof(*old));
    }
    omi_tags_clear();
    counters_restart(true);
}

/* ---- Frames: the C stack or the runtime's frame source ---- */

struct unwind_walk {
    uintptr_t *pcs;
    int n, max;
    int total;
    uintptr_t stack_mark;       /* frames whose sp is at or below: ours */
    int last_entry;             /* index of the last allocation entry */
    bool leading;               /* still in objmem's own code */
    int lim;                    /* frames wanted */
};

/*
 * Which frames are objmem's own.  When objmem is a shared object
 * (libobjmem.so, the shim), its code is a range of addresses, and the
 * leading frames in that range are skipped.  Linked statically, it is
 * mixed with the program's code: then the frames up to the last of the
 * allocation API's entry points (each a function's code range, from its
 * unwind table) are skipped.
 */
struct code_range {
    uintptr_t lo, hi;
};

static struct code_range entries[48];
static int nentries;
static uintptr_t entries_lo = UINTPTR_MAX, entries_hi;  /* all of them */
static uintptr_t own_lo, own_hi;        /* objmem's code; 0, 0: static */
static bool own_checked;

void omi_trace_add_entry(const void *fn)
{
    struct code_range r = { (uintptr_t)fn, (uintptr_t)fn + 1 };

    for (int i = 0; i < nentries; i++)
        if (entries[i].lo == r.lo)
            return;
    omi_stackwalk_function(r.lo, &r.lo, &r.hi);
    if (nentries == (int)OM_ARRAY_LEN(entries))
        return;
    entries[nentries++] = r;
    entries_lo = r.lo < entries_lo ? r.lo : entries_lo;
    entries_hi = r.hi > entries_hi ? r.hi : entries_hi;
}

/* The call at return address pc is in an entry point. */
static bool is_entry(uintptr_t pc)
{
    if (pc - 1 < entries_lo || pc - 1 >= entries_hi)
        return false;
    for (int i = 0; i < nentries; i++)
        if (pc - 1 >= entries[i].lo && pc - 1 < entries[i].hi)
            return true;
    return false;
}

/* One frame of a walk (pc its return address, sp its stack pointer):
 * false stops it.  An omi_stackwalk_fn. */
static bool walk_frame(void *arg, uintptr_t pc, uintptr_t sp)
{
    struct unwind_walk *w = arg;

    if (sp <= w->stack_mark)
        return true;
    if (own_hi) {
        w->leading = w->leading && pc >= own_lo && pc < own_hi;
        if (w->leading)
            w->last_entry = w->total;
    } else if (w->total < SKIP_MAX && is_entry(pc)) {
        w->last_entry = w->total;
    }
    if (w->n < w->max)
        w->pcs[w->n++] = pc - 1;        /* inside the call instruction */
    w->total++;
    /* Stop one frame past the limit, once objmem's own frames are
     * known. */
    return w->total - (w->last_entry + 1) <= w->lim ||
           !(own_hi ? !w->leading : w->total >= SKIP_MAX);
}

static _Unwind_Reason_Code unwind_step(struct _Unwind_Context *ctx,
                                       void *arg)
{
    uintptr_t pc = _Unwind_GetIP(ctx);

    if (!pc)
        return _URC_END_OF_STACK;
    return walk_frame(arg, pc, _Unwind_GetCFA(ctx)) ? _URC_NO_REASON
                                                    : _URC_NORMAL_STOP;
}

/* Capture the C stack above the allocation path into f[0..lim): the
 * number of frames the stack has. */
static OM_NOINLINE int capture_c(struct rawframe *f, int lim)
{
    uintptr_t pcs[MAX_FRAMES + SKIP_MAX + 1];
    struct unwind_walk w = { pcs, 0, lim + SKIP_MAX + 1, 0, 0, -1, true,
                             lim };
    int skip, n, total;

    w.stack_mark = (uintptr_t)__builtin_frame_address(0);
    if (omi_stackwalk_walk(walk_frame, &w) < 0) {
        /* A frame the fast walk does not know: libgcc's, from the top. */
        w = (struct unwind_walk){ pcs, 0, lim + SKIP_MAX + 1, 0,
                                  w.stack_mark, -1, true, lim };
        _Unwind_Backtrace(unwind_step, &w);
    }
    skip = w.last_entry + 1;
    n = w.n - skip;
    if (n > lim)
        n = lim;
    for (int i = 0; i < n; i++)
        f[i] = (struct rawframe){ pcs[skip + i], 0, 0, 0 };
    total = w.total - skip;
    return total < 0 ? 0 : total > lim ? lim + 1 : total;
}

/* Frames from the runtime's source. */
static int capture_source(struct rawframe *f, int lim, int *nframe)
{
    struct om_frame frames[MAX_FRAMES];
    int total = source_fn(source_ctx, frames, lim);
    int n = total < lim ? total : lim;

    if (n < 0)
        n = total = 0;
    for (int i = 0; i < n; i++)
        f[i] = (struct rawframe){ (uintptr_t)frames[i].filename,
                                  (uintptr_t)frames[i].function,
                                  frames[i].lineno, 0 };
    *nframe = n;
    return total;
}

/* ---- Tracebacks: interned, with a per-thread cache ---- */

static uint64_t tb_hash(const struct rawframe *f, uint32_t n, uint32_t total,
                        uint32_t source)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)total << 32 | source);

    /* One multiply a frame (a 25-frame C stack hashed with two mix64s a
     * frame took a third of its trace); each step is a bijection of h,
     * so stacks that differ in one frame never collide. */
    for (uint32_t i = 0; i < n; i++) {
        h = (h << 23 | h >> 41) ^ f[i].key ^
            (f[i].function * 0xc2b2ae3d27d4eb4fULL) ^
            ((uint64_t)f[i].lineno << 40);
        h *= 0x9e3779b97f4a7c15ULL;
    }
    h = mix64(h);
    return h ? h : 1;
}

static bool frame_equal(const struct rawframe *a, const struct rawframe *b)
{
    return a->key == b->key && a->function == b->function &&
           a->lineno == b->lineno;
}

static uint64_t frame_hash(const struct rawframe *f)
{
    return mix64(f->key ^ mix64(f->function ^ (uint64_t)f->lineno << 40));
}

/* Records by id: ids below the counts. */
static struct tb *tb_at(size_t id)
{
    return &tb_dir[id >> ID_CHUNK_BITS][id & (ID_CHUNK - 1)];
}

static struct node *nd_at(size_t id)
{
    return &nd_dir[id >> ID_CHUNK_BITS][id & (ID_CHUNK - 1)];
}

static struct rawframe *fr_at(size_t id)
{
    return &fr_dir[id >> ID_CHUNK_BITS][id & (ID_CHUNK - 1)];
}

/* The record of id count, in a directory of chunks of elem bytes (a new
 * chunk when count starts one); NULL when out of ids or memory.  Under
 * tb_lock. */
static void *dir_next(void **dir, size_t count, size_t elem)
{
    void **chunk = &dir[count >> ID_CHUNK_BITS];

    if (count >= ID_MAX)
        return NULL;
    if (!*chunk && !(*chunk = omi_region_alloc(&tb_mem, ID_CHUNK * elem)))
        return NULL;
    return (char *)*chunk + (count & (ID_CHUNK - 1)) * elem;
}

/* What an entry of the path set is keyed by: the node above, and what
 * hangs from it (a frame id; a traceback: IS_TB, its source, its total;
 * frame ids are below ID_MAX, so the two never meet). */
static uint64_t path_hash(uint32_t above, uint32_t what)
{
    return mix64((uint64_t)above << 32 | what);
}

static uint32_t tb_what(uint32_t total, uint32_t source)
{
    return IS_TB | source << 16 | total;
}

static uint64_t path_hash_of(uint32_t v)
{
    const struct tb *t;
    const struct node *d;

    if (v & IS_TB) {
        t = tb_at((v & ~IS_TB) - 1);
        return path_hash(t->leaf, tb_what(t->total, t->source));
    }
    d = nd_at(v - 1);
    return path_hash(d->parent, d->frame);
}

static bool path_is(uint32_t v, uint32_t above, uint32_t what)
{
    const struct tb *t;
    const struct node *d;

    if (v & IS_TB) {
        t = tb_at((v & ~IS_TB) - 1);
        return (what & IS_TB) && t->leaf == above &&
               tb_what(t->total, t->source) == what;
    }
    d = nd_at(v - 1);
    return !(what & IS_TB) && d->parent == above && d->frame == what;
}

static uint64_t frame_hash_of(uint32_t v)
{
    return frame_hash(fr_at(v - 1));
}

/* Tables a growth replaced, unmapped when tb_lock is dropped. */
struct retired {
    void *p[4];
    size_t size[4];
    int n;
};

static void retired_unmap(struct retired *r)
{
    for (int i = 0; i < r->n; i++)
        omi_os_unmap(r->p[i], r->size[i]);
    r->n = 0;
}

/* Room in set s for one more id (at most 3/4 full): doubled when it
 * would not be, its old table retired.  Under tb_lock. */
static bool set_room(struct idset *s, uint64_t (*hash_of)(uint32_t v),
                     struct retired *r)
{
    size_t cap = s->slots ? (s->mask + 1) * 2 : 1024;
    uint32_t *fresh;

    if (s->slots && (s->used + 1) * 4 <= (s->mask + 1) * 3)
        return true;
    if (s->slots && r->n == 4)
        return false;           /* (cannot happen: one growth a set) */
    fresh = omi_os_map(cap * sizeof(*fresh), omi_os_page_size());
    if (!fresh)
        return false;
    for (size_t i = 0; s->slots && i <= s->mask; i++) {
        size_t j;

        if (!s->slots[i])
            continue;
        for (j = hash_of(s->slots[i]) & (cap - 1); fresh[j];
             j = (j + 1) & (cap - 1))
            ;
        fresh[j] = s->slots[i];
    }
    if (s->slots) {
        r->p[r->n] = s->slots;
        r->size[r->n++] = (s->mask + 1) * sizeof(*s->slots);
    }
    s->slots = fresh;
    s->mask = cap - 1;
    return true;
}

/* The id of frame f, interned; -1 when out of memory.  Under tb_lock. */
static long frame_intern(const struct rawframe *f, struct retired *r)
{
    uint64_t h = frame_hash(f);
    struct rawframe *to;
    size_t i;

    for (i = h & frames_set.mask; frames_set.slots && frames_set.slots[i];
         i = (i + 1) & frames_set.mask)
        if (frame_equal(fr_at(frames_set.slots[i] - 1), f))
            return (long)frames_set.slots[i] - 1;
    if (!set_room(&frames_set, frame_hash_of, r) ||
        !(to = dir_next((void **)fr_dir, fr_count, sizeof(*to))))
        return -1;
    *to = (struct rawframe){ f->key, f->function, f->lineno, 0 };
    for (i = h & frames_set.mask; frames_set.slots[i];
         i = (i + 1) & frames_set.mask)
        ;
    frames_set.slots[i] = (uint32_t)++fr_count;
    frames_set.used++;
    return (long)fr_count - 1;
}

/* The path set's entry for (above, what), interned: a node (what a frame
 * id) or a traceback (what from tb_what; nframe its depth).  Its id, or
 * -1 when out of memory.  Under tb_lock. */
static long path_intern(uint32_t above, uint32_t what, uint32_t nframe,
                        struct retired *r)
{
    uint64_t h = path_hash(above, what);
    bool is_tb = what & IS_TB;
    uint32_t v;
    size_t i;

    for (i = h & paths.mask; paths.slots && paths.slots[i];
         i = (i + 1) & paths.mask)
        if (path_is(paths.slots[i], above, what))
            return (long)(paths.slots[i] & ~IS_TB) - 1;
    if (!set_room(&paths, path_hash_of, r))
        return -1;
    if (is_tb) {
        struct tb *t = dir_next((void **)tb_dir, tb_count, sizeof(*t));

        if (!t)
            return -1;
        *t = (struct tb){ above, (uint16_t)(what & 0xffff), (uint8_t)nframe,
                          (uint8_t)(what >> 16 & 1) };
        v = (uint32_t)++tb_count | IS_TB;
    } else {
        struct node *d = dir_next((void **)nd_dir, nd_count, sizeof(*d));

        if (!d)
            return -1;
        *d = (struct node){ above, what };
        v = (uint32_t)++nd_count;
    }
    for (i = h & paths.mask; paths.slots[i]; i = (i + 1) & paths.mask)
        ;
    paths.slots[i] = v;
    paths.used++;
    return (long)(v & ~IS_TB) - 1;
}

/* The id of a traceback (f[0] the innermost of its n frames), interned
 * from its outermost frame in; -1 when out of memory.  Under tb_lock (the
 * region and the sets call mmap: only while tracebacks are new, which is
 * rare after start-up, and never on the path of an allocation that
 * merely repeats a known traceback). */
static long tb_intern_locked(const struct rawframe *f, uint32_t n,
                             uint32_t total, uint32_t source,
                             struct retired *r)
{
    uint32_t above = 0;

    for (uint32_t i = n; i-- > 0;) {
        long fid = frame_intern(&f[i], r);
        long nid = fid < 0 ? -1 : path_intern(above, (uint32_t)fid, 0, r);

        if (nid < 0)
            return -1;
        above = (uint32_t)nid + 1;
    }
    return path_intern(above, tb_what(total, source), n, r);
}

/* The set of key or hash h in the per-thread cache: the top bits of a
 * multiply, which every bit of h reaches (a frame key's low bits may all
 * be alike: its instruction offset lies in its high bits). */
OM_INLINE struct tb_cache_entry *cache_set(uint64_t h)
{
    return &tb_cache[(h * 0x9e3779b97f4a7c15ULL) >>
                     (64 - TB_CACHE_SET_BITS) << 1];
}

/* The per-thread cache: two ways per set, the newer first.  -1: a miss. */
OM_INLINE long cache_find(uint64_t h, uint32_t g)
{
    const struct tb_cache_entry *c = cache_set(h);

    if (c[0].hash == h && c[0].gen == g)
        return c[0].id;
    if (c[1].hash == h && c[1].gen == g)
        return c[1].id;
    return -1;
}

static void cache_put(uint64_t h, uint32_t id, uint32_t g)
{
    struct tb_cache_entry *c = cache_set(h);

    c[1] = c[0];
    c[0] = (struct tb_cache_entry){ h, id, g };
}

static long tb_intern(const struct rawframe *f, uint32_t n, uint32_t total,
                      uint32_t source)
{
    uint64_t h = tb_hash(f, n, total = total < TOTAL_MAX ? total : TOTAL_MAX,
                         source);
    uint32_t g = atomic_load_explicit(&gen, memory_order_acquire);
    long id = cache_find(h, g);
    struct retired r = { .n = 0 };
    int was = errno;

    if (id >= 0)
        return id;
    pthread_mutex_lock(&tb_lock);
    id = tb_intern_locked(f, n, total, source, &r);
    g = atomic_load_explicit(&gen, memory_order_relaxed);
    pthread_mutex_unlock(&tb_lock);
    retired_unmap(&r);
    /* A region out of memory says ENOMEM; the allocation being traced
     * succeeds all the same, and keeps errno (its trace is lost). */
    errno = was;
    if (id >= 0)
        cache_put(h, (uint32_t)id, g);
    return id;
}

/* The traceback id of the runtime's frames.  With a key, the per-thread
 * cache is asked first: by the key (with the limit in it: a key stands
 * for that many frames), where a miss leaves its id. */
static OM_NOINLINE long source_intern(int lim, uint64_t k, uint32_t g)
{
    struct rawframe f[MAX_FRAMES];
    int n, total;
    long id;

    f[0] = (struct rawframe){ 0, 0, 0, 0 };    /* (GCC cannot tell) */
    total = capture_source(f, lim, &n);
    id = tb_intern(f, (uint32_t)n, (uint32_t)total, 1);
    if (k && id >= 0)
        cache_put(k, (uint32_t)id, g);
    return id;
}

OM_INLINE long traceback_source(int lim)
{
    om_frame_key_fn kf = key_fn;
    uint64_t k = kf ? kf(source_ctx, lim) : 0;
    uint32_t g = atomic_load_explicit(&gen, memory_order_acquire);
    long id;

    if (k) {
        k ^= (uint64_t)lim << 57 | 1;
        if ((id = cache_find(k, g)) >= 0)
            return id;
    }
    return source_intern(lim, k, g);
}

/* The current thread's traceback id; -1 when it cannot be recorded. */
static OM_NOINLINE long traceback_c(int lim)
{
    struct rawframe f[MAX_FRAMES];
    int total = capture_c(f, lim);
    int n = total < lim ? total : lim;

    return tb_intern(f, (uint32_t)n, (uint32_t)total, 0);
}

/* One frame, whose caller the entry point noted: no unwinding (the stack
 * is taken to be deeper, as it nearly always is), and none of
 * traceback_c's frame arrays. */
static OM_NOINLINE long traceback_caller(void)
{
    struct rawframe f = { omi_domain_caller - 1, 0, 0, 0 };

    omi_domain_caller = 0;
    return tb_intern(&f, 1, 2, 0);
}

OM_INLINE long traceback_now(void)
{
    int lim = atomic_load_explicit(&limit, memory_order_relaxed);

    if (source_fn)
        return traceback_source(lim);
    return lim == 1 && omi_domain_caller ? traceback_caller()
                                         : traceback_c(lim);
}

/* Forget every traceback: the caches see a new generation. */
static void tracebacks_clear(void)
{
    struct omi_region old;
    struct retired r = { .n = 0 };
    struct idset *sets[2] = { &paths, &frames_set };

    pthread_mutex_lock(&tb_lock);
    old = tb_mem;
    memset(&tb_mem, 0, sizeof(tb_mem));
    memset(tb_dir, 0, (tb_count + ID_CHUNK - 1) / ID_CHUNK * sizeof(*tb_dir));
    memset(nd_dir, 0, (nd_count + ID_CHUNK - 1) / ID_CHUNK * sizeof(*nd_dir));
    memset(fr_dir, 0, (fr_count + ID_CHUNK - 1) / ID_CHUNK * sizeof(*fr_dir));
    for (int i = 0; i < 2; i++) {
        if (sets[i]->slots) {
            r.p[r.n] = sets[i]->slots;
            r.size[r.n++] = (sets[i]->mask + 1) * sizeof(uint32_t);
        }
        *sets[i] = (struct idset){ NULL, 0, 0 };
    }
    tb_count = nd_count = fr_count = 0;
    atomic_fetch_add(&gen, 1);
    pthread_mutex_unlock(&tb_lock);
    retired_unmap(&r);
    omi_region_release(&old);
    omi_totals_clear(false);
}

uint32_t omi_trace_generation(void)
{
    return atomic_load(&gen);
}

/* ---- Recording: what the wrappers and om_trace_track call ---- */

/* Draw the bytes to the next sample: exponential, mean T (xorshift*). */
static int64_t sample_gap(size_t mean)
{
    uint64_t x = rng_state;
    double u;

    if (!x)
        x = mix64((uintptr_t)&rng_state ^ 0x2545F4914F6CDD1DULL) | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    u = (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53;
    return (int64_t)(-omi_fmath_log1p(-u) * (double)mean) + 1;
}

void omi_trace_seed(uint64_t seed)
{
    rng_state = seed ? seed : 1;
}

/* Sampling: does this allocation of size bytes get a trace? */
static bool sample_hit(size_t size, size_t mean)
{
    if (!omi_trace_until_sample)
        omi_trace_until_sample = sample_gap(mean);
    omi_trace_until_sample -= (int64_t)size;
    if (likely(omi_trace_until_sample > 0))
        return false;
    /* A hit.  The next sample point past the block's end is as far from
     * it as a fresh gap: the gaps have no memory, so the points inside
     * the block change nothing.  One draw a block, whatever its size
     * (adding gaps until the end was passed took a million draws for
     * 1 MiB at a mean of a byte). */
    omi_trace_until_sample = sample_gap(mean);
    return true;
}

/*
 * The clock.  A trace carries the tick (1/64 s since tracing started) it
 * was made in.  Reading the clock for each (the vDSO's coarse clock and
 * the arithmetic) took 4% of objmem-python's traced time (geometric mean
 * of bench_trace's five workloads, 1.43x -> 1.37x without it), so a
 * ticker thread, started with tracing, publishes the tick in tick_word
 * once a tick and a trace reads one word.  tick_word is 0 (read the
 * clock) while no ticker runs: before its first tick, when it could not
 * start, in a fork child until its first traced allocation starts one
 * (OMI_DEFER_TICKER: the child's timeline goes on past the fork; no
 * thread is made in fork's handler).  The ticker stores only under
 * tick_lock, having seen tracing on there; tracing_set turns tracing off
 * and zeroes the word under the same lock, so no tick of a run outlives
 * it.
 */
static _Atomic uint32_t tick_word;      /* the tick + 1; 0: read the clock */
static atomic_int ticker_started;
static pthread_mutex_t tick_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick_cond = PTHREAD_COND_INITIALIZER;

/* Ticks since tracing started, from the clock. */
static uint32_t clock_ticks(void)
{
    struct timespec ts;
    int64_t ns;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec -
         atomic_load_explicit(&start_ns, memory_order_relaxed);
    if (ns <= 0)
        return 0;
    ns = ns / (1000000000 / TICKS_PER_S);
    return ns > TIME_MAX ? TIME_MAX : (uint32_t)ns;
}

/* Ticks since tracing started: the ticker's, else the clock's. */
OM_INLINE uint32_t now_ticks(void)
{
    uint32_t w = atomic_load_explicit(&tick_word, memory_order_relaxed);

    return likely(w != 0) ? w - 1 : clock_ticks();
}

/* The timeline's sample of tick t in run r (no lock held: /proc). */
static void timeline_sample(uint32_t r, uint32_t t)
{
    size_t cur, pk;

    counted(&cur, &pk);
    omi_timeline_add(r, t, cur, pk, omi_os_rss());
}

bool omi_trace_ticking(void)
{
    return atomic_load_explicit(&tick_word, memory_order_relaxed) != 0;
}

/* A capture that SIGUSR2 or a fatal signal asked for, written by the
 * ticker (no lock held) when no traced allocation came first: an idle
 * service, or a sampled one whose next sample is far off, answers within
 * a tick. */
static void capture_pending(void)
{
    if (atomic_load_explicit(&omi_trace_deferred, memory_order_relaxed) &
        (OMI_DEFER_CAPTURE | OMI_DEFER_FATAL)) {
        reentrant = true;
        omi_capture_write_pending();
        reentrant = false;
    }
}

static void *ticker_main(void *arg)
{
    struct timespec until;
    bool orphaned;
    int ticks = 0;
    uint32_t t, r;

    (void)arg;
    omi_os_helper_begin("objmem-ticker");
    pthread_mutex_lock(&tick_lock);
    for (;;) {
        if (!atomic_load(&tracing)) {
            /* Tracing stopped after a fatal signal was deferred to us. */
            pthread_mutex_unlock(&tick_lock);
            capture_pending();
            pthread_mutex_lock(&tick_lock);
            omi_os_deadline(&until, omi_os_helper_poll_ms());
            if (pthread_cond_timedwait(&tick_cond, &tick_lock, &until) ==
                    ETIMEDOUT) {
                pthread_mutex_unlock(&tick_lock);  /* no lock held: /proc */
                orphaned = omi_os_helper_orphaned();
                pthread_mutex_lock(&tick_lock);
                if (orphaned)
                    break;
            }
            continue;
        }
        t = clock_ticks();
        r = omi_timeline_run();
        atomic_store_explicit(&tick_word, t + 1, memory_order_relaxed);
        pthread_mutex_unlock(&tick_lock);
        timeline_sample(r, t);
        capture_pending();
        omi_os_sleep_ms(1000 / TICKS_PER_S);
        if (++ticks * 1000 / TICKS_PER_S >= omi_os_helper_poll_ms()) {
            ticks = 0;
            if (omi_os_helper_orphaned()) {
                pthread_mutex_lock(&tick_lock);
                break;
            }
        }
        pthread_mutex_lock(&tick_lock);
    }
    /* The process ends (os.h): traces read the clock from now on, and
     * ticker_started stays 1, so no ticker starts again meanwhile. */
    atomic_store(&tick_word, 0);
    pthread_mutex_unlock(&tick_lock);
    omi_os_helper_end();
    return NULL;
}

/* Tracing on or off; off zeroes the tick, on wakes the ticker. */
static void tracing_set(bool on)
{
    pthread_mutex_lock(&tick_lock);
    atomic_store(&tracing, on);
    if (on)
        pthread_cond_signal(&tick_cond);
    else
        atomic_store(&tick_word, 0);
    pthread_mutex_unlock(&tick_lock);
}

/* Start the ticker if none runs (no lock of tracing's held: the new
 * thread's memory may be traced). */
static void ticker_ensure(void)
{
    int expected = 0;

    if (atomic_load(&tracing) && atomic_load(&ticker_started) == 0 &&
        atomic_compare_exchange_strong(&ticker_started, &expected, 1) &&
        omi_os_thread_start(ticker_main) != 0)
        atomic_store(&ticker_started, 0);
}

/* The index of domain value d: objmem's three are themselves; others are
 * added the first time (add) or looked up: -1 when unknown or full. */
static long domain_index(unsigned d, bool add)
{
    long n;

    if (d <= OM_DOMAIN_OBJ)
        return d;
    n = atomic_load_explicit(&ndomains, memory_order_acquire);
    for (long i = 3; i < n; i++)
        if (atomic_load_explicit(&domains[i], memory_order_relaxed) == d)
            return i;
    if (!add)
        return -1;
    pthread_mutex_lock(&tb_lock);
    n = atomic_load(&ndomains);
    for (long i = 3; i < n; i++)
        if (atomic_load(&domains[i]) == d) {
            pthread_mutex_unlock(&tb_lock);
            return i;
        }
    if (n < MAX_DOMAINS) {
        atomic_store(&domains[n], d);
        atomic_store_explicit(&ndomains, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&tb_lock);
    return n < MAX_DOMAINS ? n : -1;
}

/* A sampled allocation to the totals: its weight, estimated bytes and
 * their variances. */
static OM_NOINLINE void totals_sampled(uint64_t key, size_t size)
{
    double w = sample_weight(size, atomic_load(&sample_mean));
    double var = w * (w - 1);

    omi_totals_add(my_totals, key,
                   (uint64_t)omi_fmath_llround(w * OMI_TOTAL_ONE),
                   (uint64_t)omi_fmath_llround((double)size * w), var,
                   (double)size * (double)size * var);
}

/* Trace (domain index di, p, size) with the current traceback, and count
 * it in the totals.  The caller has set reentrant. */
OM_INLINE int record(unsigned di, const void *p, size_t size, bool sampled)
{
    uint32_t g = atomic_load_explicit(&gen, memory_order_acquire);
    long id = (counter_mine(), traceback_now());
    struct slot v = { (uintptr_t)p, (uint64_t)size << 1 | sampled,
                      (uint32_t)id, di << 24 | now_ticks() };
    uint64_t key = (uint64_t)g << 32 | (uint64_t)id << 8 | di;

    if (likely(id >= 0) && !sampled)
        omi_totals_add(my_totals, key, OMI_TOTAL_ONE, size, 0, 0);
    else if (id >= 0)
        totals_sampled(key, size);
    if (id < 0 || !trace_put(&v, g)) {
        atomic_fetch_add_explicit(&lost, 1, memory_order_relaxed);
        return -ENOMEM;
    }
    return 0;
}

static bool is_tracing(void)
{
    return atomic_load_explicit(&tracing, memory_order_relaxed);
}

atomic_uint omi_trace_deferred;

/* The deferred work (trace.h), after a record: no lock held. */
static OM_NOINLINE void deferred_work(void)
{
    if (atomic_fetch_and(&omi_trace_deferred, ~(unsigned)OMI_DEFER_TICKER) &
        OMI_DEFER_TICKER)
        ticker_ensure();
    if (atomic_load(&omi_trace_deferred) &
        (OMI_DEFER_CAPTURE | OMI_DEFER_FATAL))
        omi_capture_write_pending();
}

/* After an allocation of size bytes at p in domain d. */
OM_INLINE void on_alloc(unsigned d, void *p, size_t size)
{
    size_t mean;

    if (!p || !is_tracing())
        return;
    mean = atomic_load_explicit(&sample_mean, memory_order_relaxed);
    /* Sampling reaches here only past the inline countdown, so the load
     * below costs an unsampled request nothing. */
    if (!mean || sample_hit(size, mean))
        record(d, p, size, mean != 0);
    if (unlikely(atomic_load_explicit(&omi_trace_deferred,
                                      memory_order_relaxed)))
        deferred_work();
}

/* Sampling's "no" without a call: the countdown stays above 0. */
OM_INLINE bool sample_skips(size_t size)
{
    return atomic_load_explicit(&sample_mean, memory_order_relaxed) &&
           omi_trace_countdown_skips(size);
}

/* on_alloc out of line, for the wrappers whose callers sample: the
 * countdown's "no" stays a short path (sample_skips first). */
static OM_NOINLINE void alloc_traced(unsigned d, void *p, size_t size)
{
    on_alloc(d, p, size);
}

/* ---- The snapshot at the peak ---- */

/* Forget the sums kept at the peak.  Under ctl_lock. */
static void peak_forget(void)
{
    peak_valid = false;
    atomic_store(&peak_pending, false);
    atomic_store(&peak_threshold, atomic_load(&peak_step) ? 0 : SIZE_MAX);
}

/* Add one trace to the sums of its traceback (ntb of them). */
OM_INLINE void peak_add(const struct slot *v, size_t ntb, size_t mean)
{
    uint64_t size = v->meta >> 1, n = OMI_PEAK_ONE;
    uint64_t bytes = size << OMI_PEAK_BITS;
    struct omi_peak_sum *p = &peak_sums[v->tb];

    if (v->tb >= ntb)
        return;                 /* from before a clear */
    if (unlikely(v->meta & 1)) {
        double w = sample_weight(size, mean), var = w * (w - 1);

        n = (uint64_t)(w * (double)OMI_PEAK_ONE + 0.5);
        bytes = (uint64_t)((double)size * w * (double)OMI_PEAK_ONE + 0.5);
        if (peak_vars) {
            peak_vars[v->tb].cvar += var;
            peak_vars[v->tb].svar += (double)size * (double)size * var;
        }
    }
    p->count = ((p->count + n) & OMI_PEAK_COUNT_MASK) |
               (uint64_t)slot_domain(v) << OMI_PEAK_DOMAIN_SHIFT;
    p->bytes += bytes;
}

static void peak_add_tag(void *ctx, const struct slot *v)
{
    const size_t *args = ctx;

    peak_add(v, args[0], args[1]);
}

/* Sum every trace by traceback: the table's, then the tags. */
static void peak_sum_all(size_t ntb)
{
    size_t args[2] = { ntb, atomic_load(&sample_mean) };

    for (int i = 0; i < SHARDS; i++) {
        struct shard *sh = &shards[i];

        pthread_mutex_lock(&sh->lock);
        for (size_t j = 0, n = sh->used; n && j <= sh->mask; j++)
            if (sh->slots[j].ptr) {
                peak_add(&sh->slots[j], args[0], args[1]);
                n--;
            }
        pthread_mutex_unlock(&sh->lock);
    }
    omi_tags_sum(peak_sums, ntb, atomic_load(&gen), peak_add_tag, args);
}

/* Room for n elements of elem bytes in *p (*cap of them), zeroed: a
 * mapping of its own, reused; *hi: how many of them were ever written
 * (the pages that count, om_trace_get_memory). */
static bool array_room(void **p, size_t *cap, size_t *hi, size_t n,
                       size_t elem)
{
    if (n > *cap) {
        size_t more = n * 3 / 2;
        void *fresh = omi_os_map(more * elem, omi_os_page_size());

        if (!fresh)
            return false;
        if (*p)
            omi_os_unmap(*p, *cap * elem);
        *p = fresh;
        *cap = more;
        *hi = 0;
    }
    memset(*p, 0, n * elem);
    *hi = n > *hi ? n : *hi;
    return true;
}

/* Room for n sums, and while sampling (mean) their variances. */
static bool peak_room(size_t n, size_t mean)
{
    return array_room((void **)&peak_sums, &peak_sums_cap, &peak_sums_hi,
                      n, sizeof(*peak_sums)) &&
           (!mean || array_room((void **)&peak_vars, &peak_vars_cap,
                                &peak_vars_hi, n, sizeof(*peak_vars)));
}

/* Forget the sums' mappings (tracing stopped). */
static void peak_unmap(void)
{
    if (peak_sums)
        omi_os_unmap(peak_sums, peak_sums_cap * sizeof(*peak_sums));
    if (peak_vars)
        omi_os_unmap(peak_vars, peak_vars_cap * sizeof(*peak_vars));
    peak_sums = NULL;
    peak_vars = NULL;
    peak_sums_cap = peak_vars_cap = peak_sums_hi = peak_vars_hi = 0;
}

/* A trace gone (extra) took the traced memory a sixteenth below its
 * high-water mark, which stands a step above the last one kept: keep the
 * sums per traceback of the traces as they were before it went (memory
 * in the tracebacks' number, not the traces'); a snapshot is made of them
 * only when one is taken.  The next step is from the memory kept. */
static OM_NOINLINE void peak_keep(const struct slot *extra)
{
    size_t at, cur, ntb, mean = atomic_load(&sample_mean);

    if (!atomic_exchange(&peak_pending, false))
        return;                 /* another thread keeps it */
    pthread_mutex_lock(&ctl_lock);
    counted(&cur, &at);
    cur += trace_bytes(extra->meta);
    pthread_mutex_lock(&tb_lock);
    ntb = tb_count;
    pthread_mutex_unlock(&tb_lock);
    if (atomic_load(&tracing) && peak_room(ntb + 1, mean)) {
        peak_sum_all(ntb);
        peak_add(extra, ntb, mean);
        peak_valid = true;
        peak_ntb = ntb;
        peak_gen = atomic_load(&gen);
        peak_info = (struct om_snapshot_info){
            0, atomic_load(&limit), mean, atomic_load(&lost), cur,
            at > cur ? at : cur, 0,
            (uint64_t)now_ticks() * 1000 / TICKS_PER_S };
        atomic_store(&peak_threshold,
                     cur + cur / 100 * atomic_load(&peak_step));
    }
    pthread_mutex_unlock(&ctl_lock);
}

void om_trace_keep_peak(unsigned step_percent)
{
    pthread_mutex_lock(&ctl_lock);
    atomic_store(&peak_step, step_percent);
    peak_forget();
    pthread_mutex_unlock(&ctl_lock);
}

/* ---- The wrappers ----
 *
 * Each sets reentrant around the whole call, as tracemalloc does: a MEM
 * request that the small-object allocator passes on to RAW is traced once,
 * in MEM.
 */

static void *trace_malloc(void *ctx, size_t size)
{
    struct hook *k = ctx;
    void *p;

    if (reentrant)
        return k->under.malloc(k->under.ctx, size);
    reentrant = true;
    p = k->under.malloc(k->under.ctx, size);
    if (!sample_skips(size))
        alloc_traced(k->domain, p, size);
    reentrant = false;
    omi_domain_caller = 0;
    return p;
}

static void *trace_calloc(void *ctx, size_t nelem, size_t elsize)
{
    struct hook *k = ctx;
    void *p;

    if (reentrant)
        return k->under.calloc(k->under.ctx, nelem, elsize);
    reentrant = true;
    p = k->under.calloc(k->under.ctx, nelem, elsize);
    if (!sample_skips(nelem * elsize))
        alloc_traced(k->domain, p, nelem * elsize);
    reentrant = false;
    omi_domain_caller = 0;
    return p;
}

/* The old trace goes before the underlying realloc (another thread may
 * get the old address at once) and comes back when realloc fails; when
 * it cannot (its shard filled meanwhile and could not grow), it is lost,
 * and counted so. */
static void *trace_realloc(void *ctx, void *p, size_t size)
{
    struct hook *k = ctx;
    uint32_t g = atomic_load_explicit(&gen, memory_order_acquire);
    struct slot old;
    bool had = false;
    void *q;

    if (reentrant)
        return k->under.realloc(k->under.ctx, p, size);
    reentrant = true;
    if (p && is_tracing())
        had = trace_forget(k->domain, (uintptr_t)p, &old);
    q = k->under.realloc(k->under.ctx, p, size);
    if (!q) {
        if (had && !trace_put(&old, g))
            atomic_fetch_add_explicit(&lost, 1, memory_order_relaxed);
    } else if (!sample_skips(size)) {
        on_alloc(k->domain, q, size);
    }
    reentrant = false;
    omi_domain_caller = 0;
    return q;
}

/* A free while tracing.  Sampling asks the filter first: a block without
 * a trace changes nothing, so neither the peak nor the table is looked at
 * (the peak kept at the free that takes current below its mark is the
 * same). */
static inline void on_free(unsigned d, void *p)
{
    struct slot old;

    if (!p || reentrant || !is_tracing())
        return;
    if (atomic_load_explicit(&sample_mean, memory_order_relaxed) &&
        likely(!atomic_load_explicit(&filter[filter_index(d, (uintptr_t)p)],
                                     memory_order_relaxed)))
        return;
    trace_forget(d, (uintptr_t)p, &old);
}

static void trace_free(void *ctx, void *p)
{
    struct hook *k = ctx;

    on_free(k->domain, p);
    k->under.free(k->under.ctx, p);
}

/*
 * A domain whose table is om_gp_allocator's gets these two instead of
 * trace_malloc and trace_free: the same, with om_gp's calls made directly
 * (no indirect call) and, while sampling, the countdown taken first.
 * om_gp_malloc and om_gp_free call no domain table, so the flag need not
 * be held around them.
 */
static OM_NOINLINE void gp_alloc_slow(const struct hook *k, void *p,
                                      size_t size)
{
    reentrant = true;
    on_alloc(k->domain, p, size);
    reentrant = false;
}

static OM_NOINLINE void *gp_trace_malloc_traced(void *ctx, size_t size)
{
    void *p = om_gp_malloc(size);

    if (unlikely(reentrant))
        return p;
    gp_alloc_slow(ctx, p, size);
    omi_domain_caller = 0;
    return p;
}

/* Sampling: the countdown first, so that a request it skips is a tail
 * call of om_gp_malloc with no frame of its own.  A skipped request made
 * inside tracing (reentrant) counts down too; as the countdown has no
 * memory, the traced requests' chances stay the same. */
static void *gp_trace_malloc(void *ctx, size_t size)
{
    if (likely(sample_skips(size))) {
        omi_domain_caller = 0;
        return om_gp_malloc(size);
    }
    return gp_trace_malloc_traced(ctx, size);
}

/* A small block while every block is traced: the pool looked up once,
 * for its tag and for the free. */
static void gp_trace_free(void *ctx, void *p)
{
    unsigned d = ((const struct hook *)ctx)->domain;
    struct slot old;
    struct pool *pool;

    if (likely(!reentrant && is_tracing() &&
               !atomic_load_explicit(&sample_mean, memory_order_relaxed)) &&
        likely((pool = omi_arena_small_pool(p)) != NULL)) {
        trace_forget_in(pool, d, (uintptr_t)p, &old);
        omi_gp_free_in(pool, p);
        return;
    }
    on_free(d, p);
    om_gp_free(p);
}

static bool is_hook_table(const struct om_allocator *a)
{
    return a->malloc == trace_malloc || a->malloc == gp_trace_malloc;
}

const struct om_allocator *omi_trace_wrapped(const struct om_allocator *t)
{
    return is_hook_table(t) ? &((const struct hook *)t->ctx)->under : NULL;
}

/* The table our wrapper of domain d wraps, while it is d's live one. */
const struct om_allocator *omi_trace_under(enum om_domain d)
{
    const struct om_allocator *cur = &omi_domains[d];

    if (!is_hook_table(cur) || cur->ctx != &hooks[d])
        return NULL;
    return &hooks[d].under;
}

/*
 * om_aligned_alloc while MEM's table is not the small-object allocator's
 * own (alloc.c).  Over our wrapper, the block of the table under it,
 * made with reentrant set, traced as trace_malloc traces a request of
 * size bytes (while sampling, the countdown first), so that om_free
 * forgets it as any other; else the live table's block, untraced
 * (ENOTSUP for a table not objmem's).
 */
void *omi_trace_aligned(size_t alignment, size_t size)
{
    const struct om_allocator *u = omi_trace_under(OM_DOMAIN_MEM);
    void *p;

    if (reentrant)
        return omi_alloc_aligned_in(u ? u : &omi_domains[OM_DOMAIN_MEM],
                                    alignment, size);
    if (!u) {
        omi_domain_caller = 0;
        return omi_alloc_aligned_in(&omi_domains[OM_DOMAIN_MEM], alignment,
                                    size);
    }
    reentrant = true;
    p = omi_alloc_aligned_in(u, alignment, size);
    if (p && !sample_skips(size))
        alloc_traced(OM_DOMAIN_MEM, p, size);
    reentrant = false;
    omi_domain_caller = 0;
    return p;
}

/* a's four functions are those of table t. */
static bool same_functions(const struct om_allocator *a,
                           const struct om_allocator *t)
{
    return a->malloc == t->malloc && a->calloc == t->calloc &&
           a->realloc == t->realloc && a->free == t->free;
}

/* Wrap the three domains (the ones already wrapped stay). */
static void hooks_install(void)
{
    for (unsigned d = 0; d < 3; d++) {
        struct om_allocator cur, mine;

        om_get_allocator((enum om_domain)d, &cur);
        if (is_hook_table(&cur))
            continue;
        hooks[d] = (struct hook){ d, cur };
        mine = (struct om_allocator){ &hooks[d], trace_malloc, trace_calloc,
                                      trace_realloc, trace_free };
        if (same_functions(&cur, &om_gp_allocator)) {
            mine.malloc = gp_trace_malloc;
            mine.free = gp_trace_free;
        }
        om_set_allocator((enum om_domain)d, &mine);
        hooked[d] = true;
    }
}

/* While sampling, a domain whose wrapper is ours over the small-object
 * allocator's table lets its entry points take the countdown inline
 * (alloc.c); else they call the wrapper. */
static void sampled_update(void)
{
    for (unsigned d = OM_DOMAIN_MEM; d <= OM_DOMAIN_OBJ; d++) {
        const struct om_allocator *u = &hooks[d].under;
        struct om_allocator cur;

        om_get_allocator((enum om_domain)d, &cur);
        omi_domain_set_sampled((enum om_domain)d,
                               atomic_load(&tracing) &&
                               atomic_load(&sample_mean) && hooked[d] &&
                               cur.malloc == trace_malloc &&
                               cur.ctx == &hooks[d] &&
                               same_functions(u, &omi_domain_default_small));
    }
}

/* Put back the tables we wrapped, where ours is still the live one. */
static void hooks_remove(void)
{
    for (unsigned d = 0; d < 3; d++) {
        struct om_allocator cur;

        om_get_allocator((enum om_domain)d, &cur);
        if (hooked[d] && is_hook_table(&cur) && cur.ctx == &hooks[d])
            om_set_allocator((enum om_domain)d, &hooks[d].under);
        hooked[d] = false;
    }
}

/* dl_iterate_phdr: the executable segments of the object holding arg's
 * address, when it is a shared object. */
static int find_own_code(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t me = (uintptr_t)arg, lo = UINTPTR_MAX, hi = 0;

    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;

        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        if (start < lo)
            lo = start;
        if (start + ph->p_memsz > hi)
            hi = start + ph->p_memsz;
    }
    if (me < lo || me >= hi)
        return 0;
    if (info->dlpi_name && info->dlpi_name[0]) {
        own_lo = lo;
        own_hi = hi;
    }
    return 1;
}

/* The allocation API's entry points, skipped at the top of a stack. */
static void entries_init(void)
{
    static const void *const fns[] = {
        (const void *)trace_malloc, (const void *)trace_calloc,
        (const void *)trace_realloc, (const void *)om_malloc,
        (const void *)om_calloc, (const void *)om_realloc,
        (const void *)om_raw_malloc, (const void *)om_raw_calloc,
        (const void *)om_raw_realloc, (const void *)om_obj_malloc,
        (const void *)om_obj_calloc, (const void *)om_obj_realloc,
        (const void *)om_gp_malloc, (const void *)om_gp_calloc,
        (const void *)om_gp_realloc, (const void *)om_trace_track,
        (const void *)om_aligned_alloc, (const void *)omi_trace_aligned,
    };

    for (size_t i = 0; i < OM_ARRAY_LEN(fns); i++)
        omi_trace_add_entry(fns[i]);
    dl_iterate_phdr(find_own_code, (void *)(uintptr_t)entries_init);
}

/* ---- Starting and stopping ---- */

/* The per-thread state a new tracing session must not inherit. */
static bool tables_ready(void)
{
    if (!filter) {
        filter = omi_os_map(sizeof(*filter) << FILTER_BITS,
                            omi_os_page_size());
        if (!filter)
            return false;
    }
    return true;
}

/* One-frame C tracebacks take the caller the entry points note. */
static void want_caller_update(void)
{
    omi_domain_want_caller = atomic_load(&tracing) && !source_fn &&
                             atomic_load(&limit) == 1;
}

/*
 * fork(): every lock of tracing taken, in the order they nest (ctl_lock,
 * tb_lock, the shards by index, the tags' lock), so that the child finds
 * each table whole and each lock free.  These run before L2's handlers
 * (registered after them: fork runs the last registered first), since a
 * snapshot holds ctl_lock while it takes the arena lock (heapmap.c).  The
 * child goes on tracing with the traces it inherits.
 */
static void fork_prepare(void)
{
    pthread_mutex_lock(&ctl_lock);
    pthread_mutex_lock(&tb_lock);
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_lock(&shards[i].lock);
    omi_tags_fork_prepare();
    omi_stackwalk_fork_prepare();
    omi_totals_fork_prepare();
    omi_timeline_fork_prepare();
}

static void fork_parent(void)
{
    omi_timeline_fork_parent();
    omi_totals_fork_parent();
    omi_stackwalk_fork_parent();
    omi_tags_fork_parent();
    for (int i = SHARDS - 1; i >= 0; i--)
        pthread_mutex_unlock(&shards[i].lock);
    pthread_mutex_unlock(&tb_lock);
    pthread_mutex_unlock(&ctl_lock);
}

static void bytes_one(void *ctx, const struct slot *v)
{
    *(size_t *)ctx += trace_bytes(v->meta);
}

/*
 * In the child, alone: the other threads are gone, some perhaps between
 * a trace and its count (a tag is stored or taken without a lock, then
 * counted).  Their counters go to current and are freed, and current is
 * set from the traces themselves (a walk of them all: what fork() costs
 * already, in page tables), so that trace.2 holds again.
 */
static void counters_after_fork(void)
{
    size_t bytes = 0, cur;
    int64_t mine = 0;

    for (int i = 0; i < COUNTERS; i++) {
        struct counter *c = &counters[i];

        if (c == my_counter || !atomic_load(&c->taken))
            continue;
        if (atomic_load(&c->epoch) != atomic_load(&count_epoch))
            counter_renew(c);
        counter_move(c);
        omi_totals_release(i);
        atomic_fetch_sub(&counters_taken, 1);
        atomic_store(&c->taken, false);
    }
    for (int i = 0; i < SHARDS; i++)
        for (size_t j = 0; shards[i].slots && j <= shards[i].mask; j++)
            if (shards[i].slots[j].ptr)
                bytes += trace_bytes(shards[i].slots[j].meta);
    omi_tags_each(bytes_one, &bytes, atomic_load(&gen));
    if (my_counter && atomic_load(&my_counter->clears) ==
                      atomic_load(&count_clears))
        mine = atomic_load(&my_counter->delta);
    atomic_store(&current, (size_t)((int64_t)bytes - mine));
    counted(&cur, NULL);
    peak_raise((int64_t)cur);
}

static void fork_child(void)
{
    omi_timeline_fork_child();
    omi_capture_fork_child();
    omi_totals_fork_child();
    omi_stackwalk_fork_child();
    omi_tags_fork_child();
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
    pthread_mutex_init(&tb_lock, NULL);
    pthread_mutex_init(&ctl_lock, NULL);
    /* No ticker here: the clock, until the first traced allocation starts
     * one (a thread made in fork's handler could deadlock). */
    pthread_mutex_init(&tick_lock, NULL);
    pthread_cond_init(&tick_cond, NULL);
    atomic_store(&tick_word, 0);
    atomic_store(&ticker_started, 0);
    if (atomic_load(&tracing)) {
        counters_after_fork();
        atomic_fetch_or(&omi_trace_deferred, OMI_DEFER_TICKER);
        /* While sampling, the child's first request, not its first
         * sample, starts the ticker: a countdown of 0 sends it past the
         * inline check, and draws a new gap (the law has no memory, so
         * the estimates stay unbiased). */
        omi_trace_until_sample = 0;
    }
}

static void register_fork(void)
{
    omi_heap_fork_once();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Before ctl_lock: fork() runs the handlers under the C library's own
 * lock, which pthread_atfork takes too. */
static void fork_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, register_fork);
}

static int start_locked(int nframes, size_t mean)
{
    if (!tables_ready())
        return -ENOMEM;
    if (!own_checked) {
        entries_init();
        own_checked = true;
    }
    atomic_store(&limit, nframes);
    /* This thread draws its first gap afresh.  Other threads keep theirs:
     * under the same mean that changes nothing (the exponential law has
     * no memory); under another, their first sample follows the old law. */
    if (!atomic_load(&tracing) || atomic_load(&sample_mean) != mean)
        omi_trace_until_sample = 0;
    if (atomic_load(&tracing) && atomic_load(&sample_mean) != mean) {
        /* A new mean re-weighs old samples: start afresh. */
        tracing_set(false);
        shards_clear();
        tracebacks_clear();
    }
    atomic_store(&sample_mean, mean);
    if (!atomic_load(&tracing)) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        atomic_store(&start_ns, (int64_t)ts.tv_sec * 1000000000 +
                     ts.tv_nsec);
        atomic_store(&lost, 0);
        omi_timeline_restart();
        hooks_install();
        tracing_set(true);
    }
    want_caller_update();
    sampled_update();
    return 0;
}

int om_trace_start(int nframes)
{
    int rc;

    if (nframes < 1 || nframes > MAX_FRAMES)
        return -EINVAL;
    fork_once();
    pthread_mutex_lock(&ctl_lock);
    rc = start_locked(nframes, atomic_load(&tracing) ?
                      atomic_load(&sample_mean) : 0);
    pthread_mutex_unlock(&ctl_lock);
    ticker_ensure();
    return rc;
}

int om_trace_start_sampling(size_t mean_bytes)
{
    int rc, n;

    if (!mean_bytes || mean_bytes > ((size_t)1 << 40))
        return -EINVAL;
    fork_once();
    pthread_mutex_lock(&ctl_lock);
    n = atomic_load(&tracing) ? atomic_load(&limit)
                              : DEFAULT_SAMPLING_FRAMES;
    rc = start_locked(n, mean_bytes);
    pthread_mutex_unlock(&ctl_lock);
    ticker_ensure();
    return rc;
}

void om_trace_stop(void)
{
    pthread_mutex_lock(&ctl_lock);
    if (atomic_load(&tracing)) {
        tracing_set(false);
        want_caller_update();
        sampled_update();
        hooks_remove();
        shards_clear();
        tracebacks_clear();
        atomic_store(&sample_mean, 0);
        peak_forget();
        peak_unmap();
        omi_totals_clear(true);
        omi_timeline_release();
    }
    pthread_mutex_unlock(&ctl_lock);
}

void om_trace_clear_traces(void)
{
    pthread_mutex_lock(&ctl_lock);
    if (atomic_load(&tracing)) {
        tracebacks_clear();
        shards_clear();
        peak_forget();
    }
    pthread_mutex_unlock(&ctl_lock);
}

bool om_trace_is_tracing(void)
{
    return atomic_load(&tracing);
}

int om_trace_get_traceback_limit(void)
{
    return atomic_load(&limit);
}

size_t om_trace_sampling_mean(void)
{
    return atomic_load(&sample_mean);
}

void om_trace_get_traced_memory(size_t *cur, size_t *pk)
{
    bool on = atomic_load(&tracing);
    size_t c, p;

    counted(&c, &p);
    if (cur)
        *cur = on ? c : 0;
    if (pk)
        *pk = on ? p : 0;
}

void om_trace_reset_peak(void)
{
    pthread_mutex_lock(&ctl_lock);
    counters_restart(false);
    peak_forget();
    pthread_mutex_unlock(&ctl_lock);
}

size_t om_trace_get_memory(void)
{
    size_t n;

    pthread_mutex_lock(&tb_lock);
    n = omi_region_touched(&tb_mem);
    n += paths.slots ? (paths.mask + 1) * sizeof(uint32_t) : 0;
    n += frames_set.slots ? (frames_set.mask + 1) * sizeof(uint32_t) : 0;
    pthread_mutex_unlock(&tb_lock);

    for (int i = 0; i < SHARDS; i++)
        n += shards[i].slots ? (shards[i].mask + 1) * sizeof(struct slot)
                             : 0;
    if (filter)
        n += sizeof(*filter) << FILTER_BITS;
    return n + omi_os_page_round(peak_sums_hi * sizeof(*peak_sums)) +
           omi_os_page_round(peak_vars_hi * sizeof(*peak_vars)) +
           omi_tags_memory() +
           omi_stackwalk_memory() + omi_totals_memory() +
           omi_timeline_memory();
}

size_t om_trace_lost(void)
{
    return atomic_load(&lost);
}

void om_trace_set_frame_source(om_frame_source_fn fn, void *ctx)
{
    pthread_mutex_lock(&ctl_lock);
    if (atomic_load(&tracing)) {
        /* Frames of two kinds would not compare: start afresh. */
        tracebacks_clear();
        shards_clear();
    }
    source_fn = fn;
    source_ctx = ctx;
    key_fn = NULL;
    want_caller_update();
    pthread_mutex_unlock(&ctl_lock);
}

void om_trace_set_frame_key(om_frame_key_fn fn)
{
    pthread_mutex_lock(&ctl_lock);
    if (atomic_load(&tracing)) {
        /* The cached keys of the old function go: start afresh. */
        tracebacks_clear();
        shards_clear();
    }
    key_fn = source_fn ? fn : NULL;
    pthread_mutex_unlock(&ctl_lock);
}

int om_trace_track(unsigned int domain, const void *ptr, size_t size)
{
    long di;
    int rc;

    OMI_NOTE_CALLER();
    if (!atomic_load(&tracing))
        return -EAGAIN;
    if (!ptr)
        return -EINVAL;
    if (reentrant)
        return 0;
    di = domain_index(domain, true);
    if (di < 0) {
        atomic_fetch_add(&lost, 1);
        return -ENOMEM;
    }
    reentrant = true;
    rc = record((unsigned)di, ptr, size, false);
    reentrant = false;
    omi_domain_caller = 0;
    return rc;
}

int om_trace_untrack(unsigned int domain, const void *ptr)
{
    struct slot old;

    long di;

    if (!atomic_load(&tracing))
        return -EAGAIN;
    di = domain_index(domain, false);
    if (di >= 0)
        trace_forget((unsigned)di, (uintptr_t)ptr, &old);
    return 0;
}

/* ---- Reading traces: snapshots and single blocks ---- */

/* While a snapshot is taken (under ctl_lock): libdw's session, which
 * gives C frames their function, file and line (symbols.c), opened by the
 * first C frame (a snapshot of source frames only never loads libdw); and
 * each C frame's answer, kept for the frames below memo_count (tracebacks
 * share their frames: a capture of cc1's heap at 4 frames asked about
 * the same return addresses again and again, 4 s of a 0.4 s compile). */
static struct omi_symbols *symbols;
static enum { SYMBOLS_NONE, SYMBOLS_WANTED, SYMBOLS_OPEN } symbols_state;
static bool symbols_raw;                /* a capture's: modules only */
static struct om_frame *memo;           /* .pc NULL: not asked yet */
static size_t memo_count;

/* The public form of frame id: C frames symbolised (by libdw during a
 * snapshot, else by dladdr: module and exported symbol). */
static struct om_frame frame_public(uint32_t id, bool source)
{
    const struct rawframe *f = fr_at(id);
    struct om_frame out;

    if (source)
        return (struct om_frame){ (const char *)f->key,
                                  (const char *)f->function, f->lineno,
                                  NULL };
    if (id < memo_count && memo[id].pc)
        return memo[id];
    if (symbols_state == SYMBOLS_WANTED) {
        symbols = symbols_raw ? omi_symbols_open_raw() : omi_symbols_open();
        symbols_state = SYMBOLS_OPEN;
    }
    out = omi_symbols_frame(symbols, f->key);
    if (id < memo_count)
        memo[id] = out;
    return out;
}

/* Traceback t's frames, the innermost first: the number left out at the
 * top (omi_symbols_trim_new: C++'s operator new; a raw snapshot's are
 * left for the loader to trim, once named). */
static uint32_t tb_frames(const struct tb *t, struct om_frame *out)
{
    uint32_t v = t->leaf;

    for (uint32_t i = 0; i < t->nframe; i++) {
        const struct node *d = nd_at(v - 1);

        out[i] = frame_public(d->frame, t->source);
        v = d->parent;
    }
    return t->source ? 0 : omi_symbols_trim_new(out, t->nframe);
}

/* Copy the slots of every shard into slots[0..cap): their number, or
 * more than cap when they did not fit (nothing is then to be trusted). */
static size_t shards_copy(struct slot *slots, size_t cap)
{
    size_t n = 0;

    for (int i = 0; i < SHARDS; i++) {
        struct shard *sh = &shards[i];

        pthread_mutex_lock(&sh->lock);
        if (n + sh->used <= cap && sh->slots)
            for (size_t j = 0; j <= sh->mask; j++)
                if (sh->slots[j].ptr)
                    slots[n++] = sh->slots[j];
        if (n + sh->used > cap)
            n += sh->used;
        pthread_mutex_unlock(&sh->lock);
    }
    return n;
}

/* Every trace, the table's and the tags, copied into scratch: NULL when
 * out of memory. */
static struct slot *traces_copy(struct omi_region *scratch, size_t *n)
{
    for (int tries = 0; tries < 8; tries++) {
        size_t cap = (shards_used() + tags_count()) * 5 / 4 + 1024;
        struct slot *slots = omi_region_alloc(scratch, cap * sizeof(*slots));
        struct tag_copy c;

        if (!slots)
            return NULL;
        *n = shards_copy(slots, cap);
        c = (struct tag_copy){ slots, *n, cap };
        if (*n <= cap)
            omi_tags_each(tag_copy_one, &c, atomic_load(&gen));
        *n = c.n;
        if (*n <= cap)
            return slots;
        omi_region_release(scratch);
    }
    errno = EAGAIN;
    return NULL;
}

/* Add traceback id to s (once; idx remembers): its index, or -ENOMEM. */
static long snapshot_tb(struct om_snapshot *s, long *idx, uint32_t id)
{
    struct om_frame frames[MAX_FRAMES];
    const struct tb *t = tb_at(id);
    uint32_t k;

    if (idx[id] >= 0)
        return idx[id];
    k = tb_frames(t, frames);
    idx[id] = omi_snapshot_add_traceback(s, frames, t->nframe - k,
                                         t->total - k);
    return idx[id];
}

/* What a snapshot is made from: the tracebacks as they stand, and for
 * each the index it got in the snapshot (-1: none yet). */
struct fill {
    size_t count;
    long *idx;
    size_t mean;
};

static int fill_start(struct fill *f, struct omi_region *scratch)
{
    pthread_mutex_lock(&tb_lock);
    f->count = tb_count;
    pthread_mutex_unlock(&tb_lock);
    f->mean = atomic_load(&sample_mean);
    f->idx = omi_region_alloc(scratch, (f->count + 1) * sizeof(*f->idx));
    if (!f->idx)
        return -ENOMEM;
    memset(f->idx, 0xff, (f->count + 1) * sizeof(*f->idx));
    return 0;
}

/* Add one trace (its address and time may be 0): 0 or -ENOMEM. */
static int fill_add(struct om_snapshot *s, struct fill *f,
                    const struct slot *v)
{
    uint64_t size = v->meta >> 1;
    double w = v->meta & 1 ? sample_weight(size, f->mean) : 1.0;
    long t;
    struct omi_snap_trace rec;

    if (v->tb >= f->count)
        return 0;               /* recorded as a clear came: gone */
    t = snapshot_tb(s, f->idx, v->tb);
    rec = (struct omi_snap_trace){
        .size = size, .weight = w, .addr = v->ptr,
        .time_ms = (uint64_t)(v->dt & TIME_MAX) * 1000 / TICKS_PER_S,
        .traceback = (uint32_t)t,
        .domain = atomic_load(&domains[slot_domain(v)]) };
    if (t < 0 || omi_snapshot_add_record(s, &rec) < 0)
        return -ENOMEM;
    return 0;
}

static int snapshot_fill(struct om_snapshot *s, struct omi_region *scratch)
{
    size_t n;
    struct slot *slots = traces_copy(scratch, &n);
    struct fill f;
    int rc;

    if (!slots)
        return -errno;
    rc = fill_start(&f, scratch);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fill_add(s, &f, &slots[i]);
    return rc;
}

/* The snapshot at the peak, from its sums: one record per traceback,
 * weighing its blocks, of their average size.  NULL when there is none
 * (or no memory for it). */
static struct om_snapshot *peak_snapshot(struct omi_region *scratch)
{
    struct om_snapshot *p;
    struct fill f;
    int rc;

    if (!peak_valid || peak_gen != atomic_load(&gen))
        return NULL;
    p = omi_snapshot_new(atomic_load(&limit), atomic_load(&sample_mean));
    rc = p ? fill_start(&f, scratch) : -ENOMEM;
    for (size_t i = 0; i < peak_ntb && i < f.count && rc == 0; i++) {
        const struct omi_peak_sum *ps = &peak_sums[i];
        double count = (double)(ps->count & OMI_PEAK_COUNT_MASK) / OMI_PEAK_ONE;
        double bytes = (double)ps->bytes / OMI_PEAK_ONE;
        unsigned domain = atomic_load(&domains[ps->count >>
                                               OMI_PEAK_DOMAIN_SHIFT]);
        long t;

        if (count < 1)
            continue;
        t = snapshot_tb(p, f.idx, (uint32_t)i);
        rc = t < 0 ? -ENOMEM : omi_snapshot_add_record(p,
            &(struct omi_snap_trace){
                .size = (uint64_t)omi_fmath_llround(bytes / count),
                .weight = count, .traceback = (uint32_t)t, .domain = domain,
                .size_var = peak_info.sample_mean ? peak_vars[i].svar : 0,
                .count_var = peak_info.sample_mean ? peak_vars[i].cvar : 0 });
    }
    p->sums = true;
    if (rc < 0) {
        om_snapshot_free(p);
        return NULL;
    }
    p->lost = peak_info.lost;
    p->current = peak_info.current;
    p->peak = peak_info.peak;
    p->time_ms = peak_info.time_ms;
    return p;
}

/* Add the sums t of a traceback and domain to the allocations' snapshot
 * a: 0 or -ENOMEM.  Exact ones as two records whose sizes differ by a
 * byte, so that the bytes sum exactly (one when they divide evenly);
 * sampled ones as one, with their variances. */
static int allocs_add(struct om_snapshot *a, struct fill *f,
                      const struct omi_total *t)
{
    long tb = snapshot_tb(a, f->idx, t->id);
    struct omi_snap_trace r = {
        .traceback = (uint32_t)tb,
        .domain = atomic_load(&domains[t->domain]) };
    uint64_t n = t->n / OMI_TOTAL_ONE, rem;

    if (tb < 0)
        return -ENOMEM;
    if (t->n % OMI_TOTAL_ONE || t->cvar != 0 || t->svar != 0) {
        r.weight = (double)t->n / OMI_TOTAL_ONE;
        r.size = (uint64_t)omi_fmath_llround((double)t->bytes / r.weight);
        r.size_var = t->svar;
        r.count_var = t->cvar;
        return omi_snapshot_add_record(a, &r);
    }
    rem = t->bytes % n;
    r.size = t->bytes / n + 1;
    r.weight = (double)rem;
    if (rem && omi_snapshot_add_record(a, &r) < 0)
        return -ENOMEM;
    r.size--;
    r.weight = (double)(n - rem);
    return n > rem ? omi_snapshot_add_record(a, &r) : 0;
}

/* The allocations of the run, from totals.c's sums (see allocs_add):
 * NULL when no memory for it. */
static struct om_snapshot *allocs_snapshot(struct omi_region *scratch)
{
    struct om_snapshot *a;
    struct omi_total *t = NULL;
    struct fill f;
    ssize_t n;
    int rc;

    a = omi_snapshot_new(atomic_load(&limit), atomic_load(&sample_mean));
    rc = a ? fill_start(&f, scratch) : -ENOMEM;
    n = rc < 0 ? rc : omi_totals_collect(atomic_load(&gen), f.count, scratch,
                                         &t);
    rc = n < 0 ? (int)n : 0;
    for (ssize_t i = 0; i < n && rc == 0; i++)
        rc = allocs_add(a, &f, &t[i]);
    if (rc < 0) {
        om_snapshot_free(a);
        return NULL;
    }
    a->sums = true;
    return a;
}

/* The timeline, into s, with a last sample of run r taken now (rss read
 * before ctl_lock): its highest point is the snapshot's peak. */
static int take_timeline(struct om_snapshot *s, uint32_t r, size_t rss)
{
    struct om_time_point *p;
    ssize_t k;

    omi_timeline_add(r, now_ticks(), s->current, s->peak, rss);
    k = omi_timeline_take(&s->mem, TICKS_PER_S, &p);
    if (k < 0)
        return (int)k;
    s->timeline = p;
    s->ntimeline = (size_t)k;
    return 0;
}

/* A snapshot of the traces, and of the peak's when with_peak; raw: its
 * C frames name only their modules, with the module table (a capture's,
 * named when it is loaded). */
static struct om_snapshot *take_snapshot(bool with_peak, bool raw)
{
    struct omi_region scratch = { 0 };
    struct om_snapshot *s = NULL;
    bool was = reentrant;
    int rc = -EAGAIN, was_errno = errno;
    uint32_t run = omi_timeline_run();
    size_t rss = omi_os_rss();          /* /proc: before the lock */

    pthread_mutex_lock(&ctl_lock);
    reentrant = true;
    symbols_state = SYMBOLS_WANTED;
    symbols_raw = raw;
    pthread_mutex_lock(&tb_lock);
    memo_count = fr_count;
    pthread_mutex_unlock(&tb_lock);
    memo = omi_region_alloc(&scratch, memo_count * sizeof(*memo));
    if (!memo) {                /* each frame asked each time, then */
        memo_count = 0;
        errno = was_errno;
    }
    if (atomic_load(&tracing)) {
        s = omi_snapshot_new(atomic_load(&limit), atomic_load(&sample_mean));
        rc = s ? snapshot_fill(s, &scratch) : -ENOMEM;
    }
    if (s) {
        struct om_snapshot *part[OMI_SNAPSHOT_PARTS];
        size_t cur, pk, nparts;

        s->lost = atomic_load(&lost);
        counted(&cur, &pk);
        s->current = cur;
        s->peak = pk;
        s->trace_memory = om_trace_get_memory();
        s->time_ms = (uint64_t)now_ticks() * 1000 / TICKS_PER_S;
        if (rc == 0)
            rc = omi_heapmap_take(s);
        if (rc == 0)
            rc = take_timeline(s, run, rss);
        if (with_peak && !atomic_load(&peak_pending))
            s->at_peak = peak_snapshot(&scratch);
        if ((s->allocs = allocs_snapshot(&scratch)) != NULL) {
            s->allocs->lost = s->lost;
            s->allocs->current = cur;
            s->allocs->peak = pk;
            s->allocs->time_ms = s->time_ms;
        }
        nparts = omi_snapshot_parts(s, part);
        for (size_t k = 0; k < nparts; k++) {
            part[k]->raw = raw;
            if (rc == 0 && symbols_state == SYMBOLS_OPEN)
                rc = omi_snapshot_set_modules(part[k], symbols);
        }
    }
    omi_symbols_close(symbols);
    symbols = NULL;
    symbols_state = SYMBOLS_NONE;
    memo = NULL;
    memo_count = 0;
    reentrant = was;
    pthread_mutex_unlock(&ctl_lock);
    omi_region_release(&scratch);
    if (rc < 0) {
        om_snapshot_free(s);
        errno = -rc;
        return NULL;
    }
    return s;
}

struct om_snapshot *om_trace_take_snapshot(void)
{
    return take_snapshot(true, false);
}

struct om_snapshot *omi_trace_take_capture(bool named)
{
    return take_snapshot(true, !named);
}

/* om_trace_get_object_traceback's answer, per thread. */
static __thread union {
    struct om_traceback tb;
    char bytes[sizeof(struct om_traceback) +
               MAX_FRAMES * sizeof(struct om_frame)];
} object_tb;

/* The traceback id of p's trace in domains RAW..OBJ, or -1. */
static long object_tb_id(const void *p)
{
    for (unsigned d = 0; d < 3; d++) {
        uint64_t h = key_hash(d, (uintptr_t)p);
        struct shard *sh = shard_of(filter_index(d, (uintptr_t)p));
        struct slot *sl, tag;
        long id = -1;

        if (omi_tags_find(d, (uintptr_t)p, atomic_load(&gen), &tag))
            return tag.tb;
        pthread_mutex_lock(&sh->lock);
        if ((sl = shard_find(sh, h, d, (uintptr_t)p)))
            id = sl->tb;
        pthread_mutex_unlock(&sh->lock);
        if (id >= 0)
            return id;
    }
    return -1;
}

const struct om_traceback *om_trace_get_object_traceback(const void *p)
{
    struct om_traceback *out = NULL;
    bool was = reentrant;
    long id;

    pthread_mutex_lock(&ctl_lock);
    reentrant = true;
    if (p && atomic_load(&tracing) && (id = object_tb_id(p)) >= 0) {
        size_t count;

        /* The ids below count stay where they are (chunks never move). */
        pthread_mutex_lock(&tb_lock);
        count = tb_count;
        pthread_mutex_unlock(&tb_lock);
        if ((size_t)id < count) {
            const struct tb *t = tb_at((size_t)id);

            uint32_t k;

            out = &object_tb.tb;
            k = tb_frames(t, out->frames);
            out->nframe = t->nframe - k;
            out->total_nframe = t->total - k;
        }
    }
    reentrant = was;
    pthread_mutex_unlock(&ctl_lock);
    return out;
}

/* ---- om_check ---- */

static int check_shard(int i, size_t *bytes)
{
    const struct shard *sh = &shards[i];
    uint32_t counts[FILTER_PER_SHARD] = { 0 };
    size_t used = 0;

    for (size_t j = 0; sh->slots && j <= sh->mask; j++) {
        const struct slot *v = &sh->slots[j];
        uint64_t h = key_hash(slot_domain(v), v->ptr);

        if (!v->ptr)
            continue;
        used++;
        for (size_t k = slot_home(sh, h); k != j; k = (k + 1) & sh->mask)
            if (!sh->slots[k].ptr)
                return omi_check_fail("trace.1", (void *)v->ptr,
                                      "trace outside its probe run");
        if (v->tb >= tb_count)
            return omi_check_fail("trace.4", (void *)v->ptr,
                                  "traceback %u of %zu", v->tb, tb_count);
        if (shard_of(filter_index(slot_domain(v), v->ptr)) != sh)
            return omi_check_fail("trace.1", (void *)v->ptr,
                                  "trace in shard %d", i);
        if (!omi_alloc_trace_noted(v->ptr))
            return omi_check_fail("trace.6", (void *)v->ptr,
                                  "its pool counts no traced block");
        counts[filter_index(slot_domain(v), v->ptr) % FILTER_PER_SHARD]++;
        *bytes += trace_bytes(v->meta);
    }
    if (used != sh->used || (sh->slots && used * 4 > (sh->mask + 1) * 3))
        return omi_check_fail("trace.1", sh, "shard %d: %zu used, %zu "
                              "counted", i, sh->used, used);
    for (size_t k = 0; filter && k < FILTER_PER_SHARD; k++)
        if (filter[(size_t)i * FILTER_PER_SHARD + k] != counts[k] &&
            filter[(size_t)i * FILTER_PER_SHARD + k] != UINT16_MAX)
            return omi_check_fail("trace.3", sh, "filter %zu",
                                  (size_t)i * FILTER_PER_SHARD + k);
    return 0;
}

/* omi_tags_each: the tags' bytes, and their tracebacks (trace.4). */
struct tag_audit {
    size_t bytes;
    int rc;
};

static void tag_audit_one(void *ctx, const struct slot *v)
{
    struct tag_audit *a = ctx;

    a->bytes += trace_bytes(v->meta);
    if (a->rc == 0 && v->tb >= tb_count)
        a->rc = omi_check_fail("trace.4", (void *)v->ptr, "tag names "
                               "traceback %u of %zu", v->tb, tb_count);
}

static int check_tags(size_t *bytes)
{
    struct tag_audit a = { 0, omi_tags_check() };

    if (a.rc == 0)
        omi_tags_each(tag_audit_one, &a, atomic_load(&gen));
    *bytes += a.bytes;
    return a.rc;
}

/* Invariant 5: the tree, the tracebacks and the two sets.  Under
 * tb_lock. */
static bool set_holds(const struct idset *s, uint32_t v, uint64_t h)
{
    for (size_t i = h & s->mask; s->slots && s->slots[i];
         i = (i + 1) & s->mask)
        if (s->slots[i] == v)
            return true;
    return false;
}

/* The ids set s holds: its non-empty slots (used counts them, but a
 * set that holds an id twice may count it once). */
static size_t set_count(const struct idset *s)
{
    size_t n = 0;

    for (size_t i = 0; s->slots && i <= s->mask; i++)
        n += s->slots[i] != 0;
    return n;
}

static int check_tree(void)
{
    size_t np = set_count(&paths), nf = set_count(&frames_set);

    for (size_t id = 0; id < nd_count; id++) {
        const struct node *d = nd_at(id);

        if (d->parent > id || d->frame >= fr_count)
            return omi_check_fail("trace.5", d, "node %zu: parent %u, "
                                  "frame %u of %zu", id, d->parent,
                                  d->frame, fr_count);
        if (!set_holds(&paths, (uint32_t)id + 1,
                       path_hash(d->parent, d->frame)))
            return omi_check_fail("trace.5", d, "node %zu not in the "
                                  "path set", id);
    }
    for (size_t id = 0; id < tb_count; id++) {
        const struct tb *t = tb_at(id);
        uint32_t v = t->leaf, n = 0;

        for (; v && v <= nd_count && n <= t->nframe; n++)
            v = nd_at(v - 1)->parent;
        if (v || n != t->nframe)
            return omi_check_fail("trace.5", t, "traceback %zu: %u frames "
                                  "of %u", id, n, (unsigned)t->nframe);
        if (!set_holds(&paths, (uint32_t)(id + 1) | IS_TB,
                       path_hash(t->leaf, tb_what(t->total, t->source))))
            return omi_check_fail("trace.5", t, "traceback %zu not in the "
                                  "path set", id);
    }
    for (size_t id = 0; id < fr_count; id++)
        if (!set_holds(&frames_set, (uint32_t)id + 1, frame_hash(fr_at(id))))
            return omi_check_fail("trace.5", fr_at(id), "frame %zu not in "
                                  "the frame set", id);
    if (np != nd_count + tb_count || nf != fr_count || paths.used != np ||
        frames_set.used != nf)
        return omi_check_fail("trace.5", paths.slots, "sets hold %zu and "
                              "%zu ids (used %zu and %zu), not %zu and %zu",
                              np, nf, paths.used, frames_set.used,
                              nd_count + tb_count, fr_count);
    return 0;
}

/* Invariant 7. */
static int check_counters(void)
{
    int n = 0;

    for (int i = 0; i < COUNTERS; i++)
        n += atomic_load(&counters[i].taken);
    if (n != atomic_load(&counters_taken))
        return omi_check_fail("trace.7", NULL, "%d counters taken, "
                              "counters_taken %d", n,
                              atomic_load(&counters_taken));
    return 0;
}

/* The invariants above; with no thread allocating meanwhile. */
int omi_trace_check(void)
{
    size_t bytes = 0, cur, pk;
    int rc = 0;

    pthread_mutex_lock(&ctl_lock);
    pthread_mutex_lock(&tb_lock);
    for (int i = 0; i < SHARDS && rc == 0; i++) {
        pthread_mutex_lock(&shards[i].lock);
        rc = check_shard(i, &bytes);
        pthread_mutex_unlock(&shards[i].lock);
    }
    if (rc == 0)
        rc = check_tags(&bytes);
    if (rc == 0)
        rc = check_tree();
    if (rc == 0)
        rc = omi_region_check(&tb_mem);
    if (rc == 0)
        rc = omi_stackwalk_check();
    if (rc == 0)
        rc = omi_totals_check(atomic_load(&gen), tb_count);
    if (rc == 0)
        rc = omi_timeline_check();
    pthread_mutex_unlock(&tb_lock);
    counted(&cur, &pk);
    if (rc == 0 && atomic_load(&tracing) && (bytes != cur || pk < cur))
        rc = omi_check_fail("trace.2", NULL, "current %zu, traces %zu, "
                            "peak %zu", cur, bytes, pk);
    if (rc == 0)
        rc = check_counters();
    pthread_mutex_unlock(&ctl_lock);
    return rc;
}

/* ---- Tests ---- */

void omi_trace_debug(unsigned domain, const void *p,
                     struct omi_trace_debug *out)
{
    long d = domain_index(domain, false);
    struct slot tag;
    long id = -1;

    *out = (struct omi_trace_debug){ .counters_taken = &counters_taken };
    if (d >= 0) {
        size_t fi = filter_index((unsigned)d, (uintptr_t)p);
        struct shard *sh = shard_of(fi);

        pthread_mutex_lock(&sh->lock);
        out->rec = shard_find(sh, key_hash((unsigned)d, (uintptr_t)p),
                              (unsigned)d, (uintptr_t)p);
        out->table = sh->slots;
        out->mask = &sh->mask;
        out->used = &sh->used;
        out->filter = filter ? &filter[fi] : NULL;
        pthread_mutex_unlock(&sh->lock);
        if (out->rec)
            id = out->rec->tb;
        else if (omi_tags_find((unsigned)d, (uintptr_t)p, atomic_load(&gen),
                               &tag))
            id = tag.tb;
    }
    pthread_mutex_lock(&tb_lock);
    out->paths = paths.slots;
    out->paths_used = &paths.used;
    if (id >= 0 && (size_t)id < tb_count) {
        struct tb *t = tb_at((size_t)id);

        out->nframe = &t->nframe;
        out->total = &t->total;
        if (t->leaf) {
            struct node *nd = nd_at(t->leaf - 1);

            out->parent = &nd->parent;
            out->frame = &nd->frame;
            out->key = &fr_at(nd->frame)->key;
        }
    }
    pthread_mutex_unlock(&tb_lock);
}
