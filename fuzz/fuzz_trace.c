/*
 * fuzz_trace.c - libFuzzer target: tracing (trace.c, tracemalloc in C)
 * while the four malloc families allocate, every outcome checked
 * against a shadow model of the traces.
 *
 * It owns the tracing state of the process for the length of an input:
 * it starts and stops tracing, samples, installs a frame source, the
 * debug hooks (only while it does not trace and no block of a domain is
 * live: the one time om_set_allocator may swap a table) and fault
 * injection, and it leaves all of them as it found them.
 *
 * The input is a stream of operations, read as fuzz_alloc's is, with
 * the reader, families and worker of fuzz_util.h (an opcode byte c, a
 * byte a, the operation's own bytes; 0 past the end):
 * c % 16 is the operation, and c's bits 4-5 both set run an allocation
 * or a free on the worker thread (made once; it runs one operation while
 * the main thread waits), so that a traced block is freed remotely.
 * fam is a % 4 (gp, mem, obj, raw).
 *
 *   c%16  bytes after c   what
 *   0     a slot size     malloc into slot (its old block freed first)
 *   1     a slot size k   calloc (elsize from k)
 *   2     a slot al size  aligned: gp for even a, else mem
 *   3     a slot size     realloc (of NULL, of family fam, when empty)
 *   4     a slot          free
 *   5     a               om_trace_start(limits[a % 8]): 0 and 129 too
 *   6     a               om_trace_stop, or (a odd) clear_traces
 *   7     a               om_trace_start_sampling(means[a % 8])
 *   8     a               reset the peak (a odd), keep_peak (a & 2)
 *   9     a slot          get_object_traceback of slot's block, or (a
 *                         odd) of a freed one
 *   10    a               snapshot: statistics, compare, filter, dump
 *                         (of C frames, symbolised by libdw: slow, so
 *                         only for a & 0x80, first of the input)
 *   11    a n             frame source of n frames, or (a odd) none;
 *                         a & 4: with a frame key (a & 8: one that
 *                         answers 0, "ask the source")
 *   12    a n             fault injection (om_debug_fail_maps) n ops
 *   13    a e size        om_trace_track of tracked entry e (a fixed
 *                         address and domain: objmem's three, or 7,
 *                         4096, 2^32 - 1), or (a odd) untrack it, or
 *                         (a & 2 too) untrack it in another domain
 *   14    a               om_collect(a & 2), om_check (a odd)
 *   15    a               debug hooks on or off
 *
 * The model, one row per slot, and the tracing state:
 *
 *   slots[NSLOTS]: p | size | family | traced | bytes | nframe | total
 *   run: tracing | limit | mean | source | cur | peak | allocs | ...
 *
 * The tracked entries are the same rows, for addresses of a static
 * buffer that om_trace_track traces in their domain: with size bytes
 * (never sampled), the current frames, and counted as an allocation;
 * a lost one leaves the address's old trace.  get_object_traceback sees
 * only objmem's three domains.
 *
 * A block is traced when it was allocated through a domain (not gp)
 * while tracing was on, since the last start, clear, change of frame
 * source or of sampling mean, and its trace was not lost (om_trace_lost
 * moved; only under fault injection).  Its bytes are its requested size
 * (calloc: nelem * elsize), or under sampling the estimate size / p,
 * computed here as trace.c does.  A sampled block's being traced is
 * random: the model reads it from om_trace_get_object_traceback once,
 * right after the allocation, and checks everything else against it.
 *
 * Invariants (each checked; fail() aborts with one line otherwise):
 *   1. om_trace_get_traced_memory: (0, 0) while not tracing; else
 *      current is the sum of the traced blocks' bytes exactly (trace.2)
 *      and peak its maximum since the last reset or clear; exactly when
 *      one thread traced since the last clear, within 2 x 256 KiB a
 *      counter above it when both did (trace.c's counters: a reset
 *      keeps their deltas).
 *   2. get_object_traceback is non-NULL exactly for traced live blocks,
 *      NULL for a freed one (unless a live block took its address); its
 *      frames: a frame source's min(n, limit), total n, in its order;
 *      the C stack's at most limit, total at most limit + 1.
 *   3. A snapshot (NULL with EAGAIN while not tracing) holds one trace
 *      per traced block, with its address, domain and size, weight 1
 *      unsampled and >= 1 sampled; statistics of every key add up to the
 *      model's bytes and count (cumulative: each frame counts, a trace
 *      of no frame once); compare gives the difference of the totals;
 *      a domain filter keeps that domain's traces; a dump loads back
 *      with the same traces and totals; the allocations' snapshot counts
 *      every traced allocation since the clear; a tracked entry is a
 *      trace as a block is.
 *   7. om_trace_track and _untrack give -EAGAIN while not tracing; track
 *      gives 0, or -ENOMEM only under fault injection; untracking in a
 *      domain that does not hold the address changes nothing.
 *   4. Invalid arguments (limits 0, 129, -1; mean 0 or above 2^40) give
 *      -EINVAL and change nothing; a valid start under fault injection
 *      may give -ENOMEM and change nothing.
 *   5. Allocations fail only under fault injection, with ENOMEM; an
 *      aligned mem request above 16 fails with ENOTSUP exactly while
 *      the debug hooks are in, and while tracing it is traced as a mem
 *      malloc of its size (sampled alike).
 *   6. At the end of an input: tracing stopped (every traceback NULL),
 *      all blocks freed, the tables back, om_check() == 0, blocks_in_use,
 *      raw_blocks and large_blocks as before it, and tracing's own memory
 *      less its caches that outlive a stop (tags, totals, stack rules)
 *      the same after every input.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objmem.h"
#include "config.h"
#include "domain.h"
#include "fmath.h"
#include "stackwalk.h"
#include "trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSLOTS 128
#define NTRACKED 12
#define NFREED 16               /* freed addresses remembered */
#define MAX_OPS 400
#define MAX_SNAPS 8             /* snapshots an input */
#define MAX_DUMPS 1             /* dump/load round trips an input */
#define LIVE_CAP ((size_t)16 << 20)
#define LARGE_MAX ((size_t)1 << 20)
#define PEAK_SLACK ((size_t)4 << 18)    /* 2 counters x 2 x 256 KiB */
#define SENTINEL 0x5eed

struct slot {
    unsigned char *p;           /* NULL: empty */
    size_t size;                /* bytes asked */
    size_t bytes;               /* what its trace adds to current */
    int nframe, total;          /* its traceback's; nframe -1: C stack */
    uint8_t family;             /* enum family */
    uint8_t fill;               /* its bytes' value */
    bool traced;
    unsigned domain;            /* a tracked entry's */
};

/* The tracked entries' addresses: never allocated by objmem. */
static char track_room[NTRACKED][16];
static const unsigned track_domains[] = { OM_DOMAIN_RAW, OM_DOMAIN_MEM,
                                          OM_DOMAIN_OBJ, 7, 4096,
                                          UINT32_MAX };
#define NTDOMAIN (sizeof(track_domains) / sizeof(track_domains[0]))

static struct {
    struct slot slots[NSLOTS];
    struct slot tracked[NTRACKED];
    uintptr_t freed[NFREED];    /* addresses freed lately */
    unsigned nfreed;
    bool tracing;
    int limit;                  /* frames a traceback keeps */
    size_t mean;                /* 0: every block traced */
    int source;                 /* frames the source gives; -1: none */
    bool debug;                 /* the debug hooks' tables are in */
    size_t cur, peak;           /* invariant 1 */
    uint64_t allocs, alloc_bytes;       /* traced since the clear */
    unsigned threads;           /* bit 0 main, 1 worker: traced since
                                   the clear */
    bool faulted;               /* a fault was on since the clear */
    unsigned fault_ops;         /* > 0: a fault is injected this long */
    unsigned snaps, dumps;
    size_t live;                /* bytes of the live blocks */
    bool remote;                /* the worker ran an op */
    bool on_worker;             /* the op runs there now */
    struct om_snapshot *prev;   /* the last snapshot, for compare */
} run;

static unsigned op_index;
static const char *op_name = "start";

/* The domains' tables (debug hooks below). */
static struct om_allocator plain_tables[3], debug_tables[3];
static bool tables_saved;
static bool plain_default;      /* MEM's plain table is its own */

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_trace: op %u (%s): %s\n", op_index, op_name,
            what);
    abort();
}

#include "fuzz_util.h"

/* ---- Sizes ---- */

/* 0, tiny, small, a class edge, medium, rarely large. */
static size_t draw_size(struct reader *r)
{
    static const size_t edges[] = {
        1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 511, 512, 513, 4096,
        32768, 32769, 65536, 131073
    };
    unsigned sel = take(r);

    switch (sel % 8) {
    case 0:
        return 0;
    case 1:
    case 2:
        return 1 + take(r) % 64;
    case 3:
    case 4:
        return 1 + take_bytes(r, 2) % SMALL_THRESHOLD;
    case 5:
        return edges[take(r) % (sizeof(edges) / sizeof(edges[0]))];
    case 6:
        return SMALL_THRESHOLD + 1 + take_bytes(r, 2) % MEDIUM_MAX;
    default:
        return 1 + take_bytes(r, 3) % LARGE_MAX;
    }
}

/* ---- The families ---- */

/* The domain a family's blocks are traced in; -1: never traced (gp). */
static int family_domain(enum family fam)
{
    static const int domain[] = { -1, OM_DOMAIN_MEM, OM_DOMAIN_OBJ,
                                  OM_DOMAIN_RAW };

    return domain[fam];
}

/* ---- Block contents ---- */

static NO_COVERAGE bool holds(const unsigned char *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void run_on(bool remote, void (*fn)(void *), void *arg)
{
    run.on_worker = remote;
    if (remote) {
        run.remote = true;
        on_worker(fn, arg);
    } else {
        fn(arg);
    }
    run.on_worker = false;
}

/* ---- The frame source ---- */

static const char *const src_files[] = { "fz/a.py", "fz/b.py", "fz/c.py" };
static const char *const src_funcs[] = { "f", "g" };

/* run.source frames, each named by its depth. */
static int fake_frames(void *ctx, struct om_frame *frames, int max)
{
    int n = run.source;

    (void)ctx;
    for (int i = 0; i < n && i < max; i++)
        frames[i] = (struct om_frame){ src_files[i % 3], src_funcs[i % 2],
                                       (unsigned)i + 1, NULL };
    return n;
}

/* ---- The model of the traces ---- */

/* What a sampled trace of size bytes adds to current: trace.c's
 * sampled_bytes, the same operations. */
static size_t estimate(size_t size)
{
    double p = -omi_fmath_expm1(-(double)size / (double)run.mean);
    double w = p > 0 ? 1.0 / p : (double)run.mean;

    return (size_t)omi_fmath_llround((double)size * w);
}

/* Every trace forgotten: a start, a stop, a clear, a new source or
 * mean. */
static void model_clear(void)
{
    for (unsigned i = 0; i < NSLOTS; i++)
        run.slots[i].traced = false;
    for (unsigned i = 0; i < NTRACKED; i++)
        run.tracked[i].traced = false;
    run.cur = run.peak = 0;
    run.allocs = run.alloc_bytes = 0;
    run.threads = 0;
    run.faulted = run.fault_ops > 0;
}

static void model_add(size_t bytes)
{
    run.cur += bytes;
    if (run.cur > run.peak)
        run.peak = run.cur;
    run.threads |= run.on_worker ? 2 : 1;
}

static void model_forget(struct slot *s)
{
    if (!s->traced)
        return;
    run.cur -= s->bytes;
    run.threads |= run.on_worker ? 2 : 1;
    s->traced = false;
}

/* Invariant 2's frames. */
static void check_frames(const struct om_traceback *tb, const struct slot *s)
{
    if (s->nframe < 0) {            /* total: the limit then */
        if ((int)tb->nframe > s->total || tb->total_nframe < tb->nframe ||
            (int)tb->total_nframe > s->total + 1 ||
            (tb->total_nframe > tb->nframe &&
             (int)tb->nframe < s->total))
            fail("a C traceback's frame counts are out of bounds");
        return;
    }
    if ((int)tb->nframe != s->nframe || (int)tb->total_nframe != s->total)
        fail("a traceback's frame counts differ from the source's");
    for (int i = 0; i < s->nframe; i++)
        if (strcmp(tb->frames[i].filename, src_files[i % 3]) != 0 ||
            tb->frames[i].lineno != (unsigned)i + 1)
            fail("a traceback's frames differ from the source's");
}

/* Slot i's block as the model has it against get_object_traceback. */
static void check_traceback(unsigned i)
{
    const struct slot *s = &run.slots[i];
    const struct om_traceback *tb = om_trace_get_object_traceback(s->p);

    if (!tb != !s->traced)
        fail(s->traced ? "a traced block has no traceback"
                       : "an untraced block has a traceback");
    if (tb)
        check_frames(tb, s);
}

/* What a trace made now has for frames. */
static void set_frames(struct slot *s)
{
    s->nframe = run.source >= 0 ? (run.source < run.limit ? run.source
                                                          : run.limit)
                                : -1;
    s->total = run.source >= 0 ? run.source : run.limit;
}

/* After slot i got a block: is it traced?  lost: om_trace_lost before. */
static void note_alloc(unsigned i, size_t lost)
{
    struct slot *s = &run.slots[i];
    const struct om_traceback *tb;
    bool was_lost = om_trace_lost() > lost;

    s->traced = false;
    set_frames(s);
    if (!run.tracing || family_domain(s->family) < 0) {
        check_traceback(i);
        return;
    }
    if (was_lost && !run.fault_ops)
        fail("a trace was lost while no fault was injected");
    tb = om_trace_get_object_traceback(s->p);
    if (tb && was_lost)
        fail("a lost trace has a traceback");
    if (!tb && !was_lost && !run.mean)
        fail("a block allocated while tracing has no traceback");
    if (!tb)
        return;
    s->traced = true;
    s->bytes = run.mean ? estimate(s->size) : s->size;
    if (s->bytes < s->size)
        fail("a sampled trace weighs less than its size");
    check_frames(tb, s);
    model_add(s->bytes);
    run.allocs++;
    run.alloc_bytes += s->size;
}

/* Invariant 1. */
static void check_memory(void)
{
    size_t cur, peak;

    om_trace_get_traced_memory(&cur, &peak);
    if (om_trace_is_tracing() != run.tracing)
        fail("om_trace_is_tracing differs from the model");
    if (!run.tracing) {
        if (cur || peak)
            fail("traced memory is not (0, 0) while not tracing");
        return;
    }
    if (cur != run.cur)
        fail("current traced memory differs from the traced blocks' sum");
    if (peak < run.peak || peak < cur)
        fail("the traced peak is below the model's or current");
    if (peak > run.peak && (run.threads != 3 || peak > run.peak +
                                                       PEAK_SLACK))
        fail("the traced peak is above the model's");
}

/* ---- Allocations ---- */

struct request {
    int kind;                   /* 0 malloc, 1 calloc, 2 aligned */
    enum family fam;
    unsigned slot;
    size_t size, nelem, elsize, align;
};

static void null_allowed(int want)
{
    if (errno != want)
        fail("a failed allocation set the wrong errno");
    if (want == ENOMEM && run.fault_ops == 0)
        fail("an allocation failed while no fault was injected");
}

static void remember_freed(const void *p)
{
    run.freed[run.nfreed++ % NFREED] = (uintptr_t)p;
}

static void release(unsigned i)
{
    struct slot *s = &run.slots[i];

    if (!holds(s->p, s->size < 4096 ? s->size : 4096, s->fill))
        fail("a live block's contents changed");
    model_forget(s);
    errno = SENTINEL;
    call_free((enum family)s->family, s->p);
    if (errno != SENTINEL)
        fail("free changed errno");
    if (om_trace_get_object_traceback(s->p))
        fail("a freed block still has a traceback");
    remember_freed(s->p);
    run.live -= s->size;
    s->p = NULL;
}

static void free_slot(void *arg)
{
    unsigned i = *(unsigned *)arg;

    if (run.slots[i].p)
        release(i);
}

static void set_slot(unsigned i, enum family fam, void *p, size_t size,
                     size_t lost)
{
    struct slot *s = &run.slots[i];

    s->p = p;
    s->size = size;
    s->family = (uint8_t)fam;
    s->fill = (uint8_t)(i * 7 + op_index);
    memset(p, s->fill, size);
    run.live += size;
    note_alloc(i, lost);
}

/* aligned's expected outcome: align above 16 needs one of objmem's
 * tables in MEM, under tracing's wrapper or not; the debug hooks' header
 * would break the alignment. */
static bool aligned_refused(const struct request *q)
{
    return q->fam == MEM && q->align > ALIGNMENT &&
           (run.debug || !plain_default);
}

static void do_alloc(void *arg)
{
    const struct request *q = arg;
    size_t lost;
    void *p;

    if (run.slots[q->slot].p)
        release(q->slot);
    lost = om_trace_lost();
    errno = SENTINEL;
    if (q->kind == 1)
        p = call_calloc(q->fam, q->nelem, q->elsize);
    else if (q->kind == 2 && q->fam == GP)
        p = om_gp_aligned_alloc(q->align, q->size);
    else if (q->kind == 2)
        p = om_aligned_alloc(q->align, q->size);
    else
        p = call_malloc(q->fam, q->size);
    if (q->kind == 2 && aligned_refused(q)) {
        if (p)
            fail("an aligned request over the debug hooks succeeded");
        null_allowed(ENOTSUP);
        return;
    }
    if (!p) {
        null_allowed(ENOMEM);
        return;
    }
    if (errno != SENTINEL)
        fail("a successful allocation changed errno");
    if (q->kind == 1 && !holds(p, q->size, 0))
        fail("calloc's block does not read zero");
    if (q->kind == 2 && (uintptr_t)p % q->align)
        fail("an aligned block is not aligned");
    set_slot(q->slot, q->fam, p, q->size, lost);
}

/* realloc: the old trace goes, the new block is traced as a new one. */
static void do_realloc(void *arg)
{
    const struct request *q = arg;
    struct slot *s = &run.slots[q->slot];
    struct slot old = *s;
    enum family fam = old.p ? (enum family)old.family : q->fam;
    size_t lost = om_trace_lost(), keep;
    void *p;

    if (old.p && !holds(old.p, old.size < 4096 ? old.size : 4096,
                        old.fill))
        fail("a live block's contents changed");
    errno = SENTINEL;
    p = call_realloc(fam, old.p, q->size);
    if (!p && old.p && fam == GP && q->size == 0) {
        remember_freed(old.p);
        run.live -= old.size;
        s->p = NULL;                    /* freed: glibc's rule */
        return;
    }
    if (!p) {
        null_allowed(ENOMEM);
        if (old.p)
            check_traceback(q->slot);   /* the old trace came back */
        return;
    }
    if (errno != SENTINEL)
        fail("a successful realloc changed errno");
    keep = old.size < q->size ? old.size : q->size;
    if (old.p && !holds(p, keep < 4096 ? keep : 4096, old.fill))
        fail("realloc lost the block's contents");
    if (old.p) {
        model_forget(s);
        run.live -= old.size;
        if (p != old.p)
            remember_freed(old.p);
    }
    set_slot(q->slot, fam, p, q->size, lost);
}

/* ---- Tracing's switches ---- */

static void check_settings(void)
{
    if (om_trace_is_tracing() != run.tracing)
        fail("om_trace_is_tracing differs from the model");
    if (run.tracing && om_trace_get_traceback_limit() != run.limit)
        fail("the traceback limit differs from the model");
    if (om_trace_sampling_mean() != (run.tracing ? run.mean : 0))
        fail("the sampling mean differs from the model");
}

/* A start that took: tracing afresh unless it was on. */
static void started(int limit, size_t mean)
{
    if (!run.tracing || mean != run.mean)
        model_clear();
    run.tracing = true;
    run.limit = limit;
    run.mean = mean;
}

static void do_start(unsigned a)
{
    static const int limits[] = { 0, 1, 2, 5, 16, 128, 129, -1 };
    int n = limits[a % 8], rc = om_trace_start(n);

    if (n < 1 || n > 128) {
        if (rc != -EINVAL)
            fail("om_trace_start took an invalid limit");
    } else if (rc == 0) {
        started(n, run.tracing ? run.mean : 0);
    } else if (rc != -ENOMEM || !run.fault_ops) {
        fail("om_trace_start failed");
    }
    check_settings();
}

static void do_sampling(unsigned a)
{
    static const size_t means[] = { 1, 64, 4096, 64, 65536, 1 << 20, 0,
                                    ((size_t)1 << 40) + 1 };
    size_t m = means[a % 8];
    int rc = om_trace_start_sampling(m);

    if (m == 0 || m > ((size_t)1 << 40)) {
        if (rc != -EINVAL)
            fail("om_trace_start_sampling took an invalid mean");
    } else if (rc == 0) {
        started(run.tracing ? run.limit : 16, m);
    } else if (rc != -ENOMEM || !run.fault_ops) {
        fail("om_trace_start_sampling failed");
    }
    check_settings();
}

/* Invariant 6's first half, and 2 after a stop. */
static void do_stop(void)
{
    om_trace_stop();
    run.tracing = false;
    run.mean = 0;
    model_clear();
    for (unsigned i = 0; i < NSLOTS; i++)
        if (run.slots[i].p)
            check_traceback(i);
    for (unsigned i = 0; i < NTRACKED; i++)
        if (om_trace_get_object_traceback(track_room[i]))
            fail("a tracked address has a traceback after a stop");
    check_settings();
}

/* A key for fake_frames: one per depth, as the frames are. */
static uint64_t fake_key(void *ctx, int max)
{
    (void)ctx;
    return ((uint64_t)run.source + 1) * 0x9e3779b97f4a7c15ULL ^
           (uint64_t)max;
}

static uint64_t no_key(void *ctx, int max)
{
    (void)ctx;
    (void)max;
    return 0;
}

static void do_source(unsigned a, unsigned n)
{
    if (a & 1) {
        om_trace_set_frame_source(NULL, NULL);
        run.source = -1;
    } else {
        run.source = (int)(a & 2 ? n : n % 8);
        om_trace_set_frame_source(fake_frames, NULL);
        if (a & 4)
            om_trace_set_frame_key(a & 8 ? no_key : fake_key);
    }
    if (run.tracing)
        model_clear();          /* frames of two kinds: start afresh */
}

static void do_traceback(unsigned a, unsigned i)
{
    uintptr_t p = run.freed[i % NFREED];

    if (!(a & 1)) {
        if (run.slots[i].p)
            check_traceback(i);
        return;
    }
    for (unsigned j = 0; j < NSLOTS; j++)
        if ((uintptr_t)run.slots[j].p == p)
            return;             /* taken again: checked as live */
    if (p && om_trace_get_object_traceback((void *)p))
        fail("a freed block's address has a traceback");
}

static void fault_off(void)
{
    if (om_debug_fail_maps(0, false) != 0)
        fail("om_debug_fail_maps(0, false) refused");
    run.fault_ops = 0;
}

static void do_fault(unsigned a, unsigned n)
{
    bool every = (a & 0x80) != 0;

    if (om_debug_fail_maps(every ? 0 : 1 + a % 8, every) != 0)
        fail("om_debug_fail_maps refused a valid setting");
    run.fault_ops = 1 + n % 16;
    run.faulted = true;
}

/* ---- Tracked entries ---- */

static void do_track(unsigned a, unsigned e, size_t size)
{
    struct slot *t = &run.tracked[e];
    unsigned d = track_domains[e % NTDOMAIN];
    unsigned other = track_domains[(e + 1 + a / 4 % (NTDOMAIN - 1)) %
                                   NTDOMAIN];
    const struct om_traceback *tb;
    size_t lost = om_trace_lost();
    int rc;

    t->p = (unsigned char *)track_room[e];
    t->domain = d;
    if (a & 1) {
        rc = om_trace_untrack(a & 2 ? other : d, t->p);
        if (rc != (run.tracing ? 0 : -EAGAIN))
            fail("om_trace_untrack gave the wrong result");
        if (!(a & 2))
            model_forget(t);
        if (d <= OM_DOMAIN_OBJ &&
            !om_trace_get_object_traceback(t->p) != !t->traced)
            fail("an untrack left the wrong trace");
        return;
    }
    rc = om_trace_track(d, t->p, size);
    if (!run.tracing) {
        if (rc != -EAGAIN)
            fail("om_trace_track while not tracing is not -EAGAIN");
        return;
    }
    if (rc != 0 && (rc != -ENOMEM || !run.fault_ops ||
                    om_trace_lost() == lost))
        fail("om_trace_track failed");
    /* get_object_traceback looks in objmem's three domains only. */
    tb = d <= OM_DOMAIN_OBJ ? om_trace_get_object_traceback(t->p) : NULL;
    if (rc == -ENOMEM) {            /* lost: an old trace stays */
        if (d <= OM_DOMAIN_OBJ && !tb != !t->traced)
            fail("a lost track changed the address's trace");
        return;
    }
    if (!tb && d <= OM_DOMAIN_OBJ)
        fail("a tracked address has no traceback");
    model_forget(t);
    t->size = t->bytes = size;
    t->traced = true;
    set_frames(t);
    if (tb)
        check_frames(tb, t);
    model_add(size);
    run.allocs++;
    run.alloc_bytes += size;
}

/* ---- Debug hooks ----
 *
 * om_setup_debug_hooks goes on once per process; after that the model
 * swaps the three tables between the plain ones and the hooks' (both
 * saved here), only while it does not trace and no domain block lives.
 */

static void save_tables(void)
{
    for (int d = 0; d < 3; d++)
        om_get_allocator((enum om_domain)d, &plain_tables[d]);
    plain_default = omi_domain_small[OM_DOMAIN_MEM] == OMI_TABLE_SMALL ||
                    omi_domain_is_system(OM_DOMAIN_MEM);
    if (om_setup_debug_hooks() == 0) {
        for (int d = 0; d < 3; d++) {
            om_get_allocator((enum om_domain)d, &debug_tables[d]);
            om_set_allocator((enum om_domain)d, &plain_tables[d]);
        }
    } else {
        memcpy(debug_tables, plain_tables, sizeof(debug_tables));
    }
    tables_saved = true;
}

static void set_tables(bool debug)
{
    for (int d = 0; d < 3; d++)
        om_set_allocator((enum om_domain)d, debug ? &debug_tables[d]
                                                  : &plain_tables[d]);
    run.debug = debug && memcmp(debug_tables, plain_tables,
                                sizeof(debug_tables)) != 0;
}

static void do_debug_hooks(void)
{
    for (unsigned i = 0; i < NSLOTS; i++)
        if (run.slots[i].p && run.slots[i].family != GP)
            return;             /* a domain block lives: not now */
    if (!run.tracing)
        set_tables(!run.debug);
}

/* ---- Snapshots ---- */

struct sums {
    size_t size, count;
};

/* The slot holding address a in domain d, or NULL. */
static const struct slot *slot_at(uintptr_t a, unsigned d)
{
    for (unsigned i = 0; i < NSLOTS; i++) {
        const struct slot *s = &run.slots[i];

        if ((uintptr_t)s->p == a && s->traced &&
            family_domain((enum family)s->family) == (int)d)
            return s;
    }
    for (unsigned i = 0; i < NTRACKED; i++) {
        const struct slot *s = &run.tracked[i];

        if ((uintptr_t)s->p == a && s->traced && s->domain == d)
            return s;
    }
    return NULL;
}

/* Invariant 3's traces; the totals of s as a key cumulative or not
 * groups them (a trace counts once per frame, at least once). */
static void check_traces(const struct om_snapshot *s, struct sums *flat,
                         struct sums *cumul, size_t *per_domain)
{
    size_t n = om_snapshot_count(s), live = 0;
    struct om_trace_info t;

    for (unsigned i = 0; i < NSLOTS; i++)
        live += run.slots[i].p && run.slots[i].traced;
    for (unsigned i = 0; i < NTRACKED; i++)
        live += run.tracked[i].traced;
    if (n != live)
        fail("a snapshot's trace count differs from the traced blocks");
    *flat = *cumul = (struct sums){ 0, 0 };
    for (size_t i = 0; i < n; i++) {
        const struct slot *sl;
        unsigned k;

        if (om_snapshot_trace(s, i, &t) != 0)
            fail("om_snapshot_trace failed");
        sl = slot_at(t.address, t.domain);
        if (!sl || sl->size != t.size)
            fail("a snapshot's trace is no traced block of that size");
        if (run.mean ? t.weight < 1.0 : t.weight != 1.0)
            fail("a trace's weight is wrong");
        check_frames(t.traceback, sl);
        k = t.traceback->nframe ? t.traceback->nframe : 1;
        flat->size += t.size;
        flat->count++;
        cumul->size += t.size * k;
        cumul->count += k;
        if (t.domain <= OM_DOMAIN_OBJ)
            per_domain[t.domain]++;
    }
}

static struct sums stat_sums(const struct om_snapshot *s, enum om_key key,
                             bool cumulative)
{
    struct om_statistic *st;
    struct sums sum = { 0, 0 };
    size_t n;
    int rc = om_snapshot_statistics(s, key, cumulative, &st, &n);

    if (rc == -ENOMEM && run.fault_ops)
        return (struct sums){ SIZE_MAX, SIZE_MAX };
    if (rc != 0)
        fail("om_snapshot_statistics failed");
    for (size_t i = 0; i < n; i++) {
        if (i && st[i].size > st[i - 1].size)
            fail("statistics are not biggest first");
        sum.size += st[i].size;
        sum.count += st[i].count;
    }
    return sum;
}

/* compare(now, before) against the totals of each. */
static void check_compare(const struct om_snapshot *now, enum om_key key,
                          bool cumulative, struct sums want_now)
{
    struct om_statistic_diff *d;
    struct om_snapshot_info info;
    struct sums before = stat_sums(run.prev, key, cumulative);
    ptrdiff_t size_diff = 0, count_diff = 0;
    size_t n, size = 0;
    int rc = om_snapshot_compare(now, run.prev, key, cumulative, &d, &n);

    if (rc == -ENOMEM && run.fault_ops)
        return;
    if (rc != 0)
        fail("om_snapshot_compare failed");
    for (size_t i = 0; i < n; i++) {
        size += d[i].size;
        size_diff += d[i].size_diff;
        count_diff += d[i].count_diff;
    }
    om_snapshot_get_info(run.prev, &info);
    if (before.size == SIZE_MAX || run.mean || info.sample_mean)
        return;                 /* estimates: no exact sum */
    if (size != want_now.size ||
        size_diff != (ptrdiff_t)(want_now.size - before.size) ||
        count_diff != (ptrdiff_t)(want_now.count - before.count))
        fail("compare's sums are not the difference of the totals");
}

/* A domain filter keeps its domain's traces, or the others. */
static void check_filter(const struct om_snapshot *s, unsigned a,
                         const size_t *per_domain)
{
    struct om_filter f = { !(a & 0x20), NULL, 0, false, (int)(a % 3) };
    size_t n = om_snapshot_count(s), want;
    struct om_snapshot *k;

    if (a & 0x40) {
        f.filename_pattern = a & 0x80 ? "fz/[ab]*" : "*";
        f.all_frames = a & 0x10;
        f.domain = -1;
    }
    k = om_snapshot_filter(s, &f, 1);
    if (!k && run.fault_ops && errno == ENOMEM)
        return;
    if (!k)
        fail("om_snapshot_filter failed");
    if (f.domain >= 0) {
        want = per_domain[f.domain];
        if (om_snapshot_count(k) != (f.inclusive ? want : n - want))
            fail("a domain filter kept the wrong traces");
    }
    if (om_snapshot_count(k) > n)
        fail("a filter kept more traces than there were");
    om_snapshot_free(k);
}

/* Dump s to a file and load it back: the same traces and totals. */
static void check_dump(const struct om_snapshot *s, struct sums want)
{
    char path[64];
    struct om_snapshot *back;
    struct sums got;

    snprintf(path, sizeof(path), "/tmp/fuzz_trace.%ld.capture",
             (long)getpid());
    if (om_snapshot_dump(s, path) != 0) {
        if (!run.fault_ops)
            fail("om_snapshot_dump failed");
        unlink(path);
        return;
    }
    back = om_snapshot_load(path);
    unlink(path);
    if (!back && run.fault_ops)
        return;
    if (!back)
        fail("a dumped snapshot does not load");
    if (om_snapshot_count(back) != om_snapshot_count(s))
        fail("a loaded snapshot's trace count differs");
    got = stat_sums(back, OM_KEY_TRACEBACK, false);
    if (got.size != SIZE_MAX && !run.mean &&
        (got.size != want.size || got.count != want.count))
        fail("a loaded snapshot's totals differ");
    om_snapshot_free(back);
}

/* The allocations' snapshot counts each traced allocation since the
 * clear (exact: no fault since, so no allocation counted but lost). */
static void check_allocs(const struct om_snapshot *s)
{
    const struct om_snapshot *a = om_snapshot_allocations(s);
    struct sums got;

    if (!a || run.mean || run.faulted)
        return;
    got = stat_sums(a, OM_KEY_TRACEBACK, false);
    if (got.count != run.allocs || got.size != run.alloc_bytes)
        fail("the allocations' totals differ from the traced ones");
}

static void do_snapshot(unsigned a)
{
    struct om_snapshot *s;
    enum om_key key = (enum om_key)(a % 3);
    bool cumulative = key != OM_KEY_TRACEBACK && (a & 4);
    struct sums flat, cumul, got;
    size_t per_domain[3] = { 0, 0, 0 };

    if (run.snaps >= MAX_SNAPS ||
        (run.source < 0 && (run.snaps || !(a & 0x80)) && run.tracing))
        return;                 /* C frames: libdw, slow: rarely */
    run.snaps++;
    errno = 0;
    s = om_trace_take_snapshot();
    if (!run.tracing) {
        if (s || errno != EAGAIN)
            fail("a snapshot while not tracing is not NULL with EAGAIN");
        return;
    }
    if (!s && run.fault_ops && errno == ENOMEM)
        return;
    if (!s)
        fail("om_trace_take_snapshot failed");
    check_traces(s, &flat, &cumul, per_domain);
    got = stat_sums(s, key, cumulative);
    if (got.size != SIZE_MAX && !run.mean &&
        (cumulative ? got.size != cumul.size || got.count != cumul.count
                    : got.size != flat.size || got.count != flat.count))
        fail("statistics do not add up to the traces");
    if (got.size != SIZE_MAX && run.mean &&
        (got.size < flat.size || got.count < flat.count))
        fail("sampled statistics add up to less than the traces");
    if (run.prev)
        check_compare(s, key, cumulative, cumulative ? cumul : flat);
    check_filter(s, a, per_domain);
    check_allocs(s);
    if ((a & 0x18) == 0x18 && run.dumps++ < MAX_DUMPS)
        check_dump(s, flat);
    om_snapshot_free(run.prev);
    run.prev = s;
}

/* ---- The stream ---- */

static void step(struct reader *r)
{
    unsigned c = take(r), op = c % 16, a = take(r);
    bool remote = (c & 0x30) == 0x30;
    struct request q = { 0 };

    q.fam = (enum family)(a % NFAMILY);
    switch (op) {
    case 0:
    case 1:
    case 2:
        op_name = op == 1 ? "calloc" : op == 2 ? "aligned" : "malloc";
        q.kind = (int)op;
        q.slot = take(r) % NSLOTS;
        if (op == 2) {
            q.fam = a % 2 ? MEM : GP;
            q.align = (size_t)1 << take(r) % 13;
        }
        q.size = draw_size(r);
        if (op == 1) {
            q.elsize = 1 + take(r) % 24;
            q.nelem = q.size / q.elsize;
            q.size = q.nelem * q.elsize;
        }
        if (run.live + q.size <= LIVE_CAP)
            run_on(remote, do_alloc, &q);
        break;
    case 3:
        op_name = "realloc";
        q.slot = take(r) % NSLOTS;
        q.size = draw_size(r);
        if (run.live + q.size <= LIVE_CAP)
            run_on(remote, do_realloc, &q);
        break;
    case 4:
        op_name = "free";
        q.slot = take(r) % NSLOTS;
        run_on(remote, free_slot, &q.slot);
        break;
    case 5:
        op_name = "trace start";
        do_start(a);
        break;
    case 6:
        op_name = a & 1 ? "clear traces" : "trace stop";
        if (!(a & 1))
            do_stop();
        else if (om_trace_clear_traces(), run.tracing)
            model_clear();
        break;
    case 7:
        op_name = "start sampling";
        do_sampling(a);
        break;
    case 8:
        op_name = "reset peak";
        if (a & 1) {
            om_trace_reset_peak();
            run.peak = run.cur;         /* the counters' deltas stay */
        }
        if (a & 2)
            om_trace_keep_peak(a & 4 ? 0 : 1 + a % 50);
        break;
    case 9:
        op_name = "object traceback";
        do_traceback(a, take(r) % NSLOTS);
        break;
    case 10:
        op_name = "snapshot";
        do_snapshot(a);
        break;
    case 11:
        op_name = "frame source";
        do_source(a, take(r));
        break;
    case 12:
        op_name = "fault";
        do_fault(a, take(r));
        return;
    case 13:
        op_name = "track";
        q.slot = take(r) % NTRACKED;
        do_track(a, q.slot, draw_size(r));
        break;
    case 14:
        op_name = "collect";
        om_collect(a & 2);
        if ((a & 1) && om_check() != 0)
            fail("om_check found the heap broken");
        break;
    default:
        op_name = "debug hooks";
        do_debug_hooks();
    }
    check_memory();
    if (run.fault_ops > 0 && --run.fault_ops == 0)
        fault_off();
}

/* ---- One input ---- */

/* Tracing's own memory less what outlives a stop: the same after every
 * input (invariant 6): 0 until the first start maps the filter (32 KiB,
 * kept), that after. */
static void check_own_memory(void)
{
    static size_t first;
    size_t own = om_trace_get_memory() - omi_tags_memory() -
                 omi_totals_memory() - omi_stackwalk_memory();

    if (first == 0)
        first = own;
    if (own != first)
        fail("tracing's own memory after a stop is not what it was");
}

static void do_collect(void *arg)
{
    (void)arg;
    om_collect(true);
}

/* Invariant 6. */
static void finish(struct counts before)
{
    struct counts after;

    op_name = "end";
    if (run.fault_ops)
        fault_off();
    do_stop();
    check_memory();
    om_trace_set_frame_source(NULL, NULL);
    om_trace_keep_peak(0);
    for (unsigned i = 0; i < NSLOTS; i++)
        if (run.slots[i].p)
            release(i);
    set_tables(false);
    om_snapshot_free(run.prev);
    run.prev = NULL;
    if (run.remote)
        on_worker(do_collect, NULL);
    om_collect(true);
    if (om_check() != 0)
        fail("om_check found the heap broken");
    check_own_memory();
    after = counts_now();
    if (after.blocks != before.blocks || after.raw != before.raw ||
        after.large != before.large)
        fail("the block counters differ from their values before");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = { data, size };
    struct counts before;

    if (!tables_saved)
        save_tables();
    if (om_trace_is_tracing())
        fail("tracing is on before the input (unset OBJMEM_TRACE)");
    memset(&run, 0, sizeof(run));
    run.source = -1;
    run.limit = 1;
    before = counts_now();
    for (op_index = 0; op_index < MAX_OPS && r.n > 0; op_index++)
        step(&r);
    finish(before);
    return 0;
}
