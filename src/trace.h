/*
 * trace.h - X (cross-cutting): allocation tracing (trace.c) and the
 * snapshots it takes (snapshot.c).  Neither allocates through objmem:
 * their memory comes from regions of OS pages (region.c).
 */
#ifndef OM_TRACE_H
#define OM_TRACE_H

#include <stdatomic.h>
#include <sys/types.h>

#include "region.h"

/* ---- trace.c ---- */

/* om_check: the invariants of trace.c. */
int omi_trace_check(void);

/* Tests: seed the calling thread's sampling generator (0 is made 1), so
 * that a statistical check draws the same gaps at every run. */
void omi_trace_seed(uint64_t seed);

/* A function of the allocation API (the shim's malloc, say): the frames up
 * to the last such function are left out of tracebacks. */
void omi_trace_add_entry(const void *fn);

/*
 * Tests: where trace.c keeps what om_check audits of the trace of
 * (domain, p), so that a test can break one invariant by hand and mend
 * it (no other thread tracing meanwhile).  A field is NULL when there is
 * none: rec when the trace is not in the table, the traceback's fields
 * when it has none, the node's and frame's when it has no frame.
 */
struct omi_trace_debug {
    struct omi_trace_rec *rec;      /* its slot in its shard's table */
    struct omi_trace_rec *table;    /* that table */
    size_t *mask, *used;            /* its capacity - 1, its traces */
    _Atomic(uint16_t) *filter;      /* the filter counter of its key */
    uint8_t *nframe;                /* its traceback's frames */
    uint16_t *total;                /* and their total */
    uint32_t *parent, *frame;       /* the traceback's leaf node */
    uintptr_t *key;                 /* that node's frame: a pc, or a
                                       frame source's filename */
    uint32_t *paths;                /* the set of the nodes and the
                                       tracebacks (ids + 1; 0: empty) */
    size_t *paths_used;             /* and its count */
    atomic_int *counters_taken;
};
void omi_trace_debug(unsigned domain, const void *p,
                     struct omi_trace_debug *out);

/*
 * Sampling's countdown: the bytes this thread may still allocate before
 * its next sample.  A request of size bytes that leaves it above 0 is
 * skipped here, without a call: the wrappers ask this first, and so do
 * the entry points of a sampled domain (alloc.c).  Deferred work
 * (omi_trace_deferred) is not asked about: it waits for the next request
 * the countdown does not skip, which trace.c's on_alloc sees (a fork
 * child's countdown starts at 0, so its first request does).
 */
extern OM_TLS int64_t omi_trace_until_sample;

/* Work that the next traced allocation does after its record, holding no
 * lock and inside tracing's re-entry guard (trace.c's on_alloc; the
 * ticker writes a pending capture too): a bit each, set from anywhere (a
 * signal handler too: a lock-free atomic). */
enum {
    OMI_DEFER_CAPTURE = 1,      /* SIGUSR2 asked for a capture (capture.c) */
    OMI_DEFER_TICKER = 2,       /* a fork child starts its ticker */
    OMI_DEFER_FATAL = 4,        /* a fatal signal came: the last capture,
                                   then die by it (capture.c) */
};
extern atomic_uint omi_trace_deferred;

OM_INLINE bool omi_trace_countdown_skips(size_t size)
{
    if (likely(omi_trace_until_sample > (int64_t)size)) {
        omi_trace_until_sample -= (int64_t)size;
        return true;
    }
    return false;
}

/* L2 (alloc.c): a trace of block p enters (+1) or leaves (-1) the table:
 * p's pool counts it when p is a small block of objmem's. */
void omi_alloc_note_trace(uintptr_t p, int by);
/* om_check: p's pool counts at least one trace (true for any p that is
 * not a small block). */
bool omi_alloc_trace_noted(uintptr_t p);

/* ---- trace.c and tags.c: one trace ---- */

struct omi_trace_rec {
    uintptr_t ptr;              /* the block; 0: an empty slot */
    uint64_t meta;              /* size << 1 | sampled */
    uint32_t tb;                /* traceback id */
    uint32_t dt;                /* domain index << 24 | time in ticks */
};

/* ---- tags.c: the traces of objmem's own small blocks ----
 *
 * put: 0 when v cannot be a tag (the caller uses its table), 1 when it is
 * one, 2 when it replaced *old.  take / find: 1 with the trace in *out, 0
 * when the block has no tag.  epoch: the tracebacks' generation (its low
 * bits are kept): a tag of another is none.
 */
int omi_tags_put(const struct omi_trace_rec *v, unsigned epoch,
                 struct omi_trace_rec *old);
struct pool;
/* take: pool is p's small pool in use (omi_arena_small_pool) when the
 * caller knows it, else NULL. */
int omi_tags_take(struct pool *pool, unsigned domain, uintptr_t p,
                  unsigned epoch, struct omi_trace_rec *out);
int omi_tags_find(unsigned domain, uintptr_t p, unsigned epoch,
                  struct omi_trace_rec *out);
void omi_tags_each(void (*fn)(void *ctx, const struct omi_trace_rec *v),
                   void *ctx, unsigned epoch);
/* The peak's sums (trace.c), one per traceback.  Fixed point,
 * OMI_PEAK_ONE to a block, so that exact and sampled traces both add
 * integers; count's top byte is the domain index of one of the traces. */
#define OMI_PEAK_BITS 16
#define OMI_PEAK_ONE ((uint64_t)1 << OMI_PEAK_BITS)
#define OMI_PEAK_DOMAIN_SHIFT 56
#define OMI_PEAK_COUNT_MASK (((uint64_t)1 << OMI_PEAK_DOMAIN_SHIFT) - 1)
struct omi_peak_sum {
    uint64_t count;             /* domain index << 56 | blocks * PEAK_ONE */
    uint64_t bytes;             /* bytes * PEAK_ONE */
};
/* omi_tags_each for the peak: every exact tag of this epoch adds itself
 * to sums[its traceback] (none from ntb on: from before a clear), with
 * no call per tag; a sampled one goes to fn. */
void omi_tags_sum(struct omi_peak_sum *sums, size_t ntb, unsigned epoch,
                  void (*fn)(void *ctx, const struct omi_trace_rec *v),
                  void *ctx);
void omi_tags_clear(void);
size_t omi_tags_memory(void);
/* L2 (heap.c) gives back a small pool with a record (pool->tags), every
 * block of it free: the record goes back to its class's free list. */
void omi_tags_pool_released(struct pool *pool);
int omi_tags_check(void);
/* om_check: pool.h's invariant 6 for the tagged pools, tagged of them. */
int omi_tags_check_pools(size_t tagged);
/* Tests: the record whose handle is h (a pool's tags, not 0), its page
 * and its links, and the count of records made, so that a test can break
 * invariant 5 by hand and mend it. */
struct record;
struct omi_tags_debug {
    struct record *record;
    uintptr_t *page;            /* 0: on its class's free list */
    struct record **next, **prev;
    size_t *nrecords;
};
void omi_tags_debug(uint32_t h, struct omi_tags_debug *out);
/* fork(): the tags' lock taken, released, reset (trace.c's handlers). */
void omi_tags_fork_prepare(void);
void omi_tags_fork_parent(void);
void omi_tags_fork_child(void);

/* ---- totals.c: the allocations of the run, per traceback ---- */

/* trace.c: the tracebacks' generation (a clear moves it on). */
uint32_t omi_trace_generation(void);

#define OMI_TOTAL_ONE 256               /* one allocation, in a count */
#define OMI_TOTAL_THREADS 256           /* trace.c's counter slots */
#define OMI_TOTAL_ACC_BITS 8
#define OMI_TOTAL_ACC (1 << OMI_TOTAL_ACC_BITS)  /* entries a thread */

/* A thread's sums for one key: generation << 32 | traceback id << 8 |
 * domain index (0: empty).  Written by its thread only. */
struct omi_total_entry {
    _Atomic uint64_t key;
    _Atomic uint64_t n;                 /* allocations * OMI_TOTAL_ONE */
    _Atomic uint64_t bytes;
    _Atomic double cvar, svar;          /* variances: count, bytes */
};

/* What omi_totals_collect returns: the sums of a traceback and domain. */
struct omi_total {
    uint32_t id, domain;                /* traceback id, domain index */
    uint64_t n;                         /* allocations * OMI_TOTAL_ONE */
    uint64_t bytes;
    double cvar, svar;
};

/* The entries of trace.c's counter slot (mapped the first time); NULL
 * when out of memory. */
struct omi_total_entry *omi_totals_thread(int slot);
/* A slot's thread is gone: its entries go to the table. */
void omi_totals_release(int slot);
/* An entry for another key: e's sums go to the table, and e takes the
 * new ones (e NULL: a thread with no slot; they go to the table). */
void omi_totals_miss(struct omi_total_entry *e, uint64_t key, uint64_t n,
                     uint64_t bytes, double cvar, double svar);

/* Count an allocation of generation key >> 32 in the thread's entries
 * acc (NULL: none): n in 1/OMI_TOTAL_ONE of one, its bytes, and the
 * variances of a sampled one (0 when exact). */
OM_INLINE void omi_totals_add(struct omi_total_entry *acc, uint64_t key,
                              uint64_t n, uint64_t bytes, double cvar,
                              double svar)
{
    struct omi_total_entry *e;

    if (unlikely(!acc)) {
        omi_totals_miss(NULL, key, n, bytes, cvar, svar);
        return;
    }
    e = &acc[((uint32_t)key >> 8 ^ (uint32_t)key << 6) &
             (OMI_TOTAL_ACC - 1)];
    if (unlikely(atomic_load_explicit(&e->key, memory_order_relaxed) !=
                 key)) {
        omi_totals_miss(e, key, n, bytes, cvar, svar);
        return;
    }
    atomic_store_explicit(&e->n, atomic_load_explicit(
                              &e->n, memory_order_relaxed) + n,
                          memory_order_relaxed);
    atomic_store_explicit(&e->bytes, atomic_load_explicit(
                              &e->bytes, memory_order_relaxed) + bytes,
                          memory_order_relaxed);
    if (unlikely(cvar != 0 || svar != 0)) {
        atomic_store_explicit(&e->cvar, atomic_load_explicit(
                                  &e->cvar, memory_order_relaxed) + cvar,
                              memory_order_relaxed);
        atomic_store_explicit(&e->svar, atomic_load_explicit(
                                  &e->svar, memory_order_relaxed) + svar,
                              memory_order_relaxed);
    }
}

/* Empty the table (trace.c, after its generation moved on); unmap:
 * give its memory back too (tracing stopped). */
void omi_totals_clear(bool unmap);
/* Every sum of generation g for a traceback below ntb, the table's and
 * the threads' added up, into *out (in scratch): how many, or -ENOMEM. */
ssize_t omi_totals_collect(uint32_t g, size_t ntb,
                           struct omi_region *scratch,
                           struct omi_total **out);
size_t omi_totals_memory(void);
/* om_check: the invariants of totals.c (g, ntb: trace.c's generation and
 * count of tracebacks). */
int omi_totals_check(uint32_t g, size_t ntb);
/* Tests: where totals.c keeps the sums of traceback id in domain index
 * dom (its first sums, of whichever domain, in its chunk: NULL when the
 * chunk is not mapped; its key in the table: NULL when not there), and
 * the counts om_check compares, so that a test can break an invariant
 * by hand and mend it. */
struct omi_totals_debug {
    uint64_t *n, *bytes;        /* the chunk's first sums of id */
    uint8_t *dom;               /* and their domain */
    uint64_t *key;              /* (id, dom)'s slot in the table */
    size_t *table_used, *first_used, *dir_top;
};
void omi_totals_debug(uint32_t id, unsigned dom,
                      struct omi_totals_debug *out);
void omi_totals_fork_prepare(void);
void omi_totals_fork_parent(void);
void omi_totals_fork_child(void);

/* ---- timeline.c: the traced memory and the resident set over time ---- */

/* The run a sample belongs to (read with the tick it is taken at). */
uint32_t omi_timeline_run(void);
/* Tracing starts: no points, a new run. */
void omi_timeline_restart(void);
/* Tracing stops: no points, a new run, the mapping given back. */
void omi_timeline_release(void);
/* The ticker's sample of run r: its tick, the traced memory, its peak and
 * the resident set (0: unknown); dropped when r has ended. */
void omi_timeline_add(uint32_t r, uint64_t tick, size_t traced, size_t pk,
                      size_t rss);
/* The points as the public API has them, into r (ticks_per_s: trace.c's
 * clock): how many (*out NULL when none), or -ENOMEM. */
ssize_t omi_timeline_take(struct omi_region *r, unsigned ticks_per_s,
                          struct om_time_point **out);
size_t omi_timeline_memory(void);
/* om_check: the invariants of timeline.c. */
int omi_timeline_check(void);
/* Tests: timeline.c's count of points, its step, and point i's tick and
 * resident set (NULL: no point i), so that a test can break an invariant
 * by hand and mend it. */
struct omi_timeline_debug {
    size_t *n;
    uint64_t *step;
    uint64_t *tick, *rss;
};
void omi_timeline_debug(size_t i, struct omi_timeline_debug *out);
void omi_timeline_fork_prepare(void);
void omi_timeline_fork_parent(void);
void omi_timeline_fork_child(void);

/* ---- capture.c ---- */

/* trace.c: the snapshot a capture writes, with the peak's; its C frames
 * named now (named) or when the capture is loaded (the module table
 * kept): NULL + errno. */
struct om_snapshot *omi_trace_take_capture(bool named);

/* Whether the ticker runs and ticks, so that a deferred capture is
 * written within a tick even with no traced allocation (async-signal-
 * safe: one load). */
bool omi_trace_ticking(void);
/* Write the capture that OMI_DEFER_CAPTURE asks for (SIGUSR2), and clear
 * the bit; nothing while another thread writes one. */
void omi_capture_write_pending(void);
/* fork(): the child's capture writer is free. */
void omi_capture_fork_child(void);

/* Start tracing as OBJMEM_TRACE / OBJMEM_TRACE_SAMPLE ask, with the
 * capture at exit and on SIGUSR2. */
void omi_capture_start(void);
/* false in the shim: no start from capture.c's constructor. */
extern bool omi_capture_auto;

/* ---- symbols.c: C frames to function, file and line ---- */

struct omi_symbols;

/* A module of a traced process, as a snapshot records it. */
#define OMI_BUILD_ID_MAX 32
struct omi_module {
    const char *path;           /* its file (the vdso: a name) */
    uint64_t bias;              /* load bias: address = bias + vaddr */
    uint64_t lo, hi;            /* its segments span [lo, hi) */
    uint32_t id_len;            /* bytes of its build ID; 0: none */
    unsigned char id[OMI_BUILD_ID_MAX];
};

/* A session for one snapshot (libdw's, or none: then dladdr), with the
 * table of the loaded modules (omi_symbols_modules). */
struct omi_symbols *omi_symbols_open(void);
/* A session that names no frame: each gets its module only, from the
 * table of the loaded modules (omi_symbols_modules). */
struct omi_symbols *omi_symbols_open_raw(void);
/* A session that names the frames of a process whose modules were mods
 * (n of them, any order), from their files: NULL + ENOMEM. */
struct omi_symbols *omi_symbols_open_offline(const struct omi_module *mods,
                                             size_t n);
void omi_symbols_close(struct omi_symbols *s);
/* The frame of return address pc (s may be NULL). */
struct om_frame omi_symbols_frame(struct omi_symbols *s, uintptr_t pc);
/* A LIVE or RAW session's module table, sorted by address: its
 * length. */
size_t omi_symbols_modules(const struct omi_symbols *s,
                           const struct omi_module **out);
/* Leave out the leading frames of f[0..n) in C++'s operator new, when a
 * frame follows them, as objmem's own are left out at the walk: a C++
 * program's sites are its callers, not the one function they all go
 * through.  Returns how many it left out (the rest moved to f[0]). */
unsigned omi_symbols_trim_new(struct om_frame *f, unsigned n);

/* ---- heapmap.c ---- */

struct om_snapshot;

/* Take the heap map into s (its region): 0 or -ENOMEM. */
int omi_heapmap_take(struct om_snapshot *s);

/* ---- snapshot.c: the snapshot and its builder ----
 *
 * A snapshot owns one region; everything it points to lives there.  Its
 * strings are interned: two equal strings of one snapshot are one pointer,
 * so frames compare by their fields' values.  Tracebacks are distinct.
 */
struct omi_snap_trace {
    uint64_t size;              /* bytes requested */
    double weight;              /* blocks it stands for: 1, or 1/p sampled */
    union {
        struct {                /* a trace */
            uint64_t addr;      /* the block's address */
            uint64_t time_ms;   /* traced this long after tracing began */
        };
        struct {                /* a sum (the snapshot's sums is set) */
            double size_var;    /* the variance of size * weight */
            double count_var;   /* the variance of weight */
        };
    };
    uint32_t traceback;         /* index in tracebacks */
    uint32_t domain;
};

struct omi_strtab {
    const char **slots;         /* open addressing, NULL = empty */
    size_t mask, used;
};

struct om_snapshot {
    struct omi_region mem;
    struct omi_strtab strings;
    int traceback_limit;
    uint64_t sample_mean;       /* 0: every block traced */
    uint64_t lost;              /* traces lost before it was taken */
    uint64_t current, peak;     /* traced memory when it was taken */
    uint64_t trace_memory;      /* tracing's own memory then */
    uint64_t time_ms;           /* when, after tracing began */
    const struct om_heap_map *heap;     /* in mem, or NULL */
    const struct om_time_point *timeline;   /* in mem, or NULL */
    size_t ntimeline;
    struct om_snapshot *at_peak;        /* the snapshot at the peak (it
                                           owns it), or NULL */
    struct om_snapshot *allocs;         /* the allocations of the run (it
                                           owns it), or NULL */
    bool sums;                          /* its records are sums, one per
                                           traceback and domain (at_peak's,
                                           allocs'), with variances, not
                                           addresses and times */
    const struct omi_module *mods;      /* in mem, sorted by lo: the
                                           modules the C frames' pcs fall
                                           in (none without C frames) */
    size_t nmods;
    bool raw;                           /* its C frames name only their
                                           module (capture.c dumps it,
                                           the loader names them) */
    size_t ntraces, traces_cap;
    struct omi_snap_trace *traces;
    size_t ntracebacks, tracebacks_cap;
    struct om_traceback **tracebacks;
};

/* Fuzz targets only: om_snapshot_load lets a wrong checksum through. */
extern bool omi_snapshot_fuzzing;
/* The bytes of strings this thread's snapshot code has hashed (interning)
 * or matched (filters): tests see that a string's cost is paid once, not
 * once a frame naming it. */
extern OM_TLS size_t omi_snapshot_string_bytes;

/* An empty snapshot, or NULL with errno = ENOMEM. */
struct om_snapshot *omi_snapshot_new(int traceback_limit,
                                     uint64_t sample_mean);
/* The snapshot's copy of str (NULL stays NULL); NULL + ENOMEM. */
const char *omi_snapshot_intern(struct om_snapshot *s, const char *str);
/* Append a traceback of nframe frames (copied, strings interned): its
 * index, or -ENOMEM. */
long omi_snapshot_add_traceback(struct om_snapshot *s,
                                const struct om_frame *frames,
                                unsigned nframe, unsigned total_nframe);
/* Append a trace: 0 or -ENOMEM.  _record copies a whole record (address
 * and time, or a sum's variances, too); the other leaves them 0. */
int omi_snapshot_add_trace(struct om_snapshot *s, uint32_t traceback,
                           uint32_t domain, uint64_t size, double weight);
int omi_snapshot_add_record(struct om_snapshot *s,
                            const struct omi_snap_trace *t);
/* s and the snapshots it owns (at_peak, allocs), into out: how many (0
 * for s NULL). */
#define OMI_SNAPSHOT_PARTS 3
size_t omi_snapshot_parts(struct om_snapshot *s,
                          struct om_snapshot *out[OMI_SNAPSHOT_PARTS]);
/* Give s the module table of raw session sym (copied, paths interned):
 * 0 or -ENOMEM. */
int omi_snapshot_set_modules(struct om_snapshot *s,
                             const struct omi_symbols *sym);

#endif /* OM_TRACE_H */
