/*
 * fuzz_alloc.c - libFuzzer target: the four malloc families (gp, mem,
 * obj, raw) driven by an operation stream, each outcome checked against
 * a shadow model, in the manner of Scudo's allocator_fuzzer.
 *
 * The input is read as a stream of operations (at most MAX_OPS, and
 * MAX_CALLS allocator calls in all): an opcode byte c, a byte a, and the
 * operation's own bytes; a read past the end gives 0, and the stream
 * ends with the input.  c % 16 is the operation; c's bits 4-5 both set
 * run it on the worker thread (a pthread made once, which runs one
 * operation at a time while the main thread waits: deterministic, and
 * every free of the other thread's block takes the remote-free path).
 * fam is a % 4 (gp, mem, obj, raw); a size is a selector byte and up to
 * three more (draw_size: 0, tiny, small, a class edge, medium, large).
 *
 *   c%16  bytes after c      what
 *   0,14  a slot size        malloc into slot (its old block freed first)
 *   1     a slot size k      calloc: elsize from k, nelem = size / elsize
 *   2     a slot al size     aligned (gp for even a, else mem), al drawn
 *   3,15  a slot size        realloc (of NULL, of family fam, when empty)
 *   4     a slot             free
 *   5     a slot             verify contents and usable size
 *   6     a k                a huge request of family fam, kind a >> 2:
 *                            NULL with ENOMEM (do_huge)
 *   7     a k                an invalid alignment: NULL with EINVAL
 *   8     a                  om_collect(c & 0x40)
 *   9     a                  om_set_purge_delay(0, -1 or 50)
 *   10    a n                fault injection (do_fault) for 1 + n % 32 ops
 *   11    a                  om_check (CHECK_GAP ops apart at least),
 *                            overlap check
 *   12    a slot n size      1 + n % 64 allocations into slot + 1, ...
 *   13    a slot n order     free 1 + n % 64 slots from slot
 *
 * The model, one row per slot:
 *
 *   slots[NSLOTS]: p | size asked | usable | align asked | seed | family
 *
 * Every live block is filled over its whole usable size with a pattern
 * keyed by (slot, seed); the pattern of byte i depends on i, so a block
 * moved by realloc to the wrong offset is seen.
 *
 * Invariants (each checked; fail() aborts with one line otherwise):
 *   1. A successful call leaves errno as it was; a failed one returns
 *      NULL with ENOMEM (EINVAL for a bad alignment).  An allocation
 *      fails only while a fault is injected or when it is huge.
 *   2. usable >= size asked, and stays what it was until the block goes.
 *   3. A block's pattern is intact when it is verified, reallocated (up
 *      to the smaller of the old and new sizes) and freed; calloc's
 *      bytes read zero; live blocks do not overlap.
 *   4. Every block is aligned as asked: 16 for gp and for mem/obj
 *      requests of 1..SMALL_THRESHOLD bytes, pointer-size otherwise.
 *   5. gp realloc(p, 0) frees p and returns NULL (glibc's rule).
 *   6. om_check() == 0 every CHECK_EVERY ops and at the end of an input.
 *   7. At the end of an input, all slots freed, and after an input that
 *      used the worker its and the main thread's remote frees taken back
 *      (om_collect(true) on each: the tests' om_collect(true) after a
 *      cross-thread free, and the worker's own, since a waiting thread
 *      runs no slow path), blocks_in_use, raw_blocks and large_blocks are
 *      what they were before it; fault injection is off and the purge
 *      delay restored.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objmem.h"
#include "config.h"
#include "domain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSLOTS 256
#define MAX_OPS 500
#define MAX_CALLS 4000
#define CHECK_EVERY 64
#define CHECK_GAP 32                    /* ops between om_check calls */
#define LIVE_CAP ((size_t)32 << 20)     /* usable bytes live at once */
#define TOUCH_BUDGET ((size_t)12 << 20) /* bytes filled and read */
#define LARGE_MAX ((size_t)1 << 20)
#define SENTINEL 0x5eed
#define PATTERN_STEP 0x9e3779b97f4a7c15ull

enum kind { MALLOC, CALLOC, ALIGNED, REALLOC };

struct slot {
    unsigned char *p;           /* NULL: empty */
    size_t size;                /* bytes asked */
    size_t usable;              /* usable size when allocated */
    size_t align;               /* alignment it must have */
    uint32_t seed;              /* its pattern's seed */
    uint8_t family;             /* enum family */
};

/* One input's state.  Only one thread touches it at a time: the worker
 * runs while the main thread waits. */
static struct {
    struct slot slots[NSLOTS];
    size_t live;                /* usable bytes of the live blocks */
    size_t touched;             /* bytes filled or read so far */
    unsigned calls;             /* allocator calls so far */
    unsigned fault_ops;         /* > 0: a fault is injected this long */
    unsigned checked_at;        /* op of the last om_check */
    bool remote;                /* the worker ran an op */
    uint32_t next_seed;
} run;

static unsigned op_index;
static const char *op_name = "start";

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_alloc: op %u (%s): %s\n", op_index, op_name,
            what);
    abort();
}

#include "fuzz_util.h"

/* Class edges: fixed ones, and each medium class's size, one off. */
static size_t edge_size(unsigned b)
{
    static const size_t fixed[] = {
        1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256,
        257, 496, 511, 512, 513, 4095, 4096, 4097, 32767, 32768, 32769,
        36864, 36865, 65536, 65537, 131072, 262145, 1 << 20
    };
    unsigned k = b % 48, nfixed = sizeof(fixed) / sizeof(fixed[0]);
    size_t base = (size_t)512 << (k / 8);

    if (b < 3 * nfixed)
        return fixed[b % nfixed];
    return base + (k % 8 + 1) * base / 8 + (b / 48) % 3 - 1;
}

/* Bytes the input may still fill and read. */
static size_t budget_left(void)
{
    return run.touched < TOUCH_BUDGET ? TOUCH_BUDGET - run.touched : 0;
}

/* A size: 0, small, an edge, medium or large (large and medium ones
 * only while the budget allows). */
static size_t draw_size(struct reader *r)
{
    unsigned sel = take(r);
    size_t size;

    switch (sel % 8) {
    case 0:
        return 0;
    case 1:
        return 1 + take(r) % 64;
    case 2:
    case 3:
        return 1 + take_bytes(r, 2) % SMALL_THRESHOLD;
    case 4:
    case 5:
        size = edge_size(take(r));
        break;
    case 6:
        size = SMALL_THRESHOLD + 1 +
               take_bytes(r, 2) % (MEDIUM_MAX - SMALL_THRESHOLD);
        break;
    default:
        size = MEDIUM_MAX + 1 + take_bytes(r, 3) % (LARGE_MAX - MEDIUM_MAX);
    }
    if (size > SMALL_THRESHOLD && 8 * size > budget_left())
        size = 1 + size % SMALL_THRESHOLD;
    return size;
}

/* A valid alignment: 1..4096 mostly, up to 64 KiB for gp (whose block
 * is then at least that big: only while the budget allows). */
static size_t draw_align(unsigned b, enum family fam)
{
    unsigned shift = b % 16;

    if (shift > 12 && (fam != GP || (b & 0x80) == 0 ||
                       8 * ((size_t)1 << shift) > budget_left()))
        shift = b % 13;
    return (size_t)1 << shift;
}

/* ---- The pattern ---- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t slot_key(unsigned slot, uint32_t seed)
{
    return mix(((uint64_t)slot << 32 | seed) + PATTERN_STEP);
}

static NO_COVERAGE void fill(unsigned char *p, size_t n, uint64_t key)
{
    size_t i;
    uint64_t w;

    for (i = 0; i + 8 <= n; i += 8) {
        w = key + i * PATTERN_STEP;
        memcpy(p + i, &w, 8);
    }
    w = key + i * PATTERN_STEP;
    memcpy(p + i, &w, n - i);
    run.touched += n;
}

/* The first n bytes of p hold key's pattern. */
static NO_COVERAGE bool holds(const unsigned char *p, size_t n,
                               uint64_t key)
{
    size_t i;
    uint64_t w, v;

    run.touched += n;
    for (i = 0; i + 8 <= n; i += 8) {
        w = key + i * PATTERN_STEP;
        memcpy(&v, p + i, 8);
        if (v != w)
            return false;
    }
    w = key + i * PATTERN_STEP;
    return memcmp(p + i, &w, n - i) == 0;
}

static NO_COVERAGE bool all_zero(const unsigned char *p, size_t n)
{
    run.touched += n;
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* ---- The families ---- */

/* Aligned allocation exists for gp and mem only. */
static void *call_aligned(enum family fam, size_t align, size_t size)
{
    return fam == GP ? om_gp_aligned_alloc(align, size)
                     : om_aligned_alloc(align, size);
}

static size_t usable_size(enum family fam, const void *p)
{
    return fam == GP ? om_gp_usable_size(p) : om_usable_size(p);
}

/* The alignment every block of fam of size bytes has (invariant 4). */
static size_t natural_align(enum family fam, size_t size, enum kind kind)
{
    if (fam == GP)
        return ALIGNMENT;
    if ((fam == MEM || fam == OBJ) && kind != REALLOC && size >= 1 &&
        size <= SMALL_THRESHOLD)
        return ALIGNMENT;
    return sizeof(void *);
}

static void run_on(bool remote, void (*fn)(void *), void *arg)
{
    if (remote) {
        run.remote = true;
        on_worker(fn, arg);
    }
    else
        fn(arg);
}

/* ---- Operations on slots ---- */

struct request {
    enum kind kind;
    enum family fam;
    unsigned slot;
    size_t size;                /* bytes asked (nelem * elsize) */
    size_t nelem, elsize;       /* calloc */
    size_t align;               /* aligned */
};

static void expect_errno(int want, const char *what)
{
    if (errno != want)
        fail(what);
}

/* A NULL from an allocation that must succeed unless a fault is on. */
static void null_allowed(void)
{
    expect_errno(ENOMEM, "an allocation failed with errno other than "
                 "ENOMEM");
    if (run.fault_ops == 0)
        fail("an allocation failed while no fault was injected");
}

/* Verify slot s's whole block: usable size unchanged, pattern intact. */
static void verify(unsigned i)
{
    struct slot *s = &run.slots[i];

    if (usable_size(s->family, s->p) != s->usable)
        fail("the usable size of a live block changed");
    if (!holds(s->p, s->usable, slot_key(i, s->seed)))
        fail("a live block's contents changed (overlap or corruption)");
}

static void set_slot(unsigned i, enum family fam, void *p, size_t size,
                     size_t align)
{
    struct slot *s = &run.slots[i];
    size_t usable = usable_size(fam, p);

    if (usable < size)
        fail("usable size below the size asked");
    if ((uintptr_t)p % align)
        fail("a block is not aligned as it must be");
    *s = (struct slot){ p, size, usable, align, run.next_seed++,
                        (uint8_t)fam };
    run.live += usable;
    fill(s->p, usable, slot_key(i, s->seed));
}

static void release(unsigned i)
{
    struct slot *s = &run.slots[i];

    verify(i);
    run.calls++;
    errno = SENTINEL;
    call_free(s->family, s->p);
    expect_errno(SENTINEL, "free changed errno");
    run.live -= s->usable;
    s->p = NULL;
}

static void free_slot(void *arg)
{
    unsigned i = *(unsigned *)arg;

    if (run.slots[i].p)
        release(i);
}

static void do_alloc(void *arg)
{
    const struct request *q = arg;
    size_t align = natural_align(q->fam, q->size, q->kind);
    void *p;

    if (run.slots[q->slot].p)
        release(q->slot);
    run.calls++;
    errno = SENTINEL;
    if (q->kind == CALLOC)
        p = call_calloc(q->fam, q->nelem, q->elsize);
    else if (q->kind == ALIGNED)
        p = call_aligned(q->fam, q->align, q->size);
    else
        p = call_malloc(q->fam, q->size);
    if (!p) {
        null_allowed();
        return;
    }
    expect_errno(SENTINEL, "a successful allocation changed errno");
    if (q->kind == CALLOC && !all_zero(p, q->size))
        fail("calloc's block does not read zero");
    if (q->kind == ALIGNED && q->align > align)
        align = q->align;
    set_slot(q->slot, q->fam, p, q->size, align);
}

/* realloc of slot q->slot's block (of NULL, with q->fam, when empty). */
static void do_realloc(void *arg)
{
    const struct request *q = arg;
    struct slot *s = &run.slots[q->slot];
    struct slot old = *s;
    size_t keep;
    void *p;

    if (!old.p)
        old.family = (uint8_t)q->fam;
    else if (usable_size(old.family, old.p) != old.usable)
        fail("the usable size of a live block changed");
    run.calls++;
    errno = SENTINEL;
    p = call_realloc(old.family, old.p, q->size);
    if (!p && old.p && old.family == GP && q->size == 0) {
        expect_errno(SENTINEL, "gp realloc(p, 0) changed errno");
        run.live -= old.usable;         /* freed (invariant 5) */
        s->p = NULL;
        return;
    }
    if (!p) {
        null_allowed();
        if (old.p)
            verify(q->slot);            /* still there, intact */
        return;
    }
    expect_errno(SENTINEL, "a successful realloc changed errno");
    if (old.family == GP && old.p && q->size == 0)
        fail("gp realloc(p, 0) returned a block");
    keep = old.size < q->size ? old.size : q->size;
    if (old.p && !holds(p, keep, slot_key(q->slot, old.seed)))
        fail("realloc lost the block's contents");
    if (old.p)
        run.live -= old.usable;
    set_slot(q->slot, old.family, p, q->size,
             natural_align(old.family, q->size, REALLOC));
}

/* ---- Requests that must fail ---- */

/* A huge request (over PTRDIFF_MAX, or calloc overflowing): NULL with
 * ENOMEM.  kind 0..3: malloc, calloc overflowing, calloc over
 * PTRDIFF_MAX, realloc of a slot; 4: aligned. */
static void do_huge(enum family fam, unsigned kind, unsigned k)
{
    unsigned shift = 1 + k % 63, i = k % NSLOTS;
    size_t huge = SIZE_MAX - (size_t)(k % 8) * 4096 - k / 8;
    struct slot *s = &run.slots[i];
    void *p;

    run.calls++;
    errno = SENTINEL;
    switch (kind % 5) {
    case 0:
        p = call_malloc(fam, huge);
        break;
    case 1:
        p = call_calloc(fam, ((size_t)1 << (64 - shift)) + k,
                        (size_t)1 << shift);
        break;
    case 2:
        p = call_calloc(fam, (size_t)1 << (62 - shift % 8),
                        (size_t)1 << (shift % 8 + 1));      /* 2^63 */
        break;
    case 3:
        if (s->p)
            verify(i);
        p = call_realloc(s->p ? s->family : fam, s->p, huge);
        break;
    default:
        p = call_aligned(fam, (size_t)1 << (k % 13), huge);
    }
    if (p)
        fail("a huge request returned a block");
    expect_errno(ENOMEM, "a huge request failed without ENOMEM");
    if (kind % 5 == 3 && s->p)
        verify(i);
}

/* An alignment that is not a power of two: NULL with EINVAL. */
static void do_bad_align(enum family fam, unsigned k)
{
    static const size_t bad[] = {
        0, 3, 5, 6, 7, 12, 24, 48, 100, 513, 3 << 10, 4097, 12288,
        SIZE_MAX, SIZE_MAX / 2, ((size_t)1 << 40) + 16
    };
    size_t align = bad[k % (sizeof(bad) / sizeof(bad[0]))];

    run.calls++;
    errno = SENTINEL;
    if (call_aligned(fam, align, k / 16 * 64))
        fail("an invalid alignment gave a block");
    expect_errno(EINVAL, "an invalid alignment failed without EINVAL");
}

/* ---- Whole-heap checks and settings ---- */

/* No two live blocks overlap: sorted by address, each ends before the
 * next starts. */
static void check_overlap(void)
{
    const struct slot *v[NSLOTS];
    unsigned n = 0;

    for (unsigned i = 0; i < NSLOTS; i++) {
        const struct slot *s = &run.slots[i];
        unsigned j = n++;

        if (!s->p) {
            n--;
            continue;
        }
        for (; j > 0 && v[j - 1]->p > s->p; j--)
            v[j] = v[j - 1];
        v[j] = s;
    }
    for (unsigned i = 1; i < n; i++)
        if (v[i - 1]->p + v[i - 1]->usable > v[i]->p)
            fail("two live blocks overlap");
}

static void check_heap(void)
{
    run.checked_at = op_index;
    if (om_check() != 0)
        fail("om_check found the heap broken");
    check_overlap();
}

static void do_collect(void *arg)
{
    om_collect(*(bool *)arg);
}

static void fault_off(void)
{
    if (om_debug_fail_maps(0, false) != 0)
        fail("om_debug_fail_maps(0, false) refused");
    run.fault_ops = 0;
}

/* Fault injection on for the next n ops: the nth map fails, or every
 * one; now and then a negative nth, which must be refused. */
static void do_fault(unsigned b, unsigned n)
{
    bool every = (b & 0x80) != 0;

    if ((b & 0x7f) == 0x7f && om_debug_fail_maps(-1, every) != -EINVAL)
        fail("om_debug_fail_maps(-1) was not refused");
    if (om_debug_fail_maps(every ? 0 : 1 + b % 8, every) != 0)
        fail("om_debug_fail_maps refused a valid setting");
    run.fault_ops = 1 + n % 32;
}

static void do_purge_delay(unsigned b)
{
    static const long delays[] = { 0, -1, 50 };
    long ms = delays[b % 3];

    if (om_set_purge_delay(ms) != 0 || om_get_purge_delay() != ms)
        fail("om_set_purge_delay did not take");
}

/* ---- Bursts ---- */

struct burst {
    struct request q;           /* the first slot is q.slot + 1 */
    unsigned n;
    unsigned order;             /* free runs: 0 forwards, 1 backwards,
                                   2 every third slot */
};

/* n allocations of one size into slots first, first+1, ... */
static void do_burst(void *arg)
{
    struct burst *b = arg;
    struct request q = b->q;

    for (unsigned j = 0; j < b->n && run.calls < MAX_CALLS; j++) {
        q.slot = (q.slot + 1) % NSLOTS;
        if (run.live + q.size > LIVE_CAP || 4 * q.size > budget_left())
            return;
        do_alloc(&q);
    }
}

/* Free n slots from first, in the order asked. */
static void do_free_run(void *arg)
{
    const struct burst *b = arg;

    for (unsigned j = 0; j < b->n; j++) {
        unsigned i = b->order % 3 == 0 ? b->q.slot + j
                   : b->order % 3 == 1 ? b->q.slot + b->n - 1 - j
                                       : b->q.slot + 3 * j;

        i %= NSLOTS;
        free_slot(&i);
    }
}

/* ---- The stream ---- */

static enum family draw_family(unsigned b)
{
    return (enum family)(b % NFAMILY);
}

/* calloc's nelem and elsize for about size bytes; size set to their
 * product. */
static void split_calloc(struct request *q, unsigned k)
{
    q->elsize = k % 4 == 0 ? 1 : 1 + k % 24;
    q->nelem = q->size / q->elsize;
    if (k == 0xff)
        q->nelem = 0;
    if (k == 0xfe)
        q->elsize = 0;
    q->size = q->nelem * q->elsize;
}

static void step(struct reader *r)
{
    unsigned c = take(r), op = c % 16, a = take(r);
    bool remote = (c & 0x30) == 0x30;
    struct request q = { 0 };
    struct burst b = { 0 };

    q.fam = draw_family(a);
    switch (op) {
    case 0:
    case 14:
    case 1:
    case 2:
        op_name = op == 1 ? "calloc" : op == 2 ? "aligned" : "malloc";
        q.kind = op == 1 ? CALLOC : op == 2 ? ALIGNED : MALLOC;
        q.slot = take(r) % NSLOTS;
        if (op == 2) {
            q.fam = q.fam % 2 ? MEM : GP;
            q.align = draw_align(take(r), q.fam);
        }
        q.size = draw_size(r);
        if (op == 1)
            split_calloc(&q, take(r));
        if (run.live + q.size + q.align <= LIVE_CAP)
            run_on(remote, do_alloc, &q);
        break;
    case 3:
    case 15:
        op_name = "realloc";
        q.kind = REALLOC;
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
        op_name = "verify";
        q.slot = take(r) % NSLOTS;
        if (run.slots[q.slot].p)
            verify(q.slot);
        break;
    case 6:
        op_name = "huge";
        do_huge(q.fam, a >> 2, take(r));
        break;
    case 7:
        op_name = "bad alignment";
        do_bad_align(q.fam % 2 ? MEM : GP, take(r));
        break;
    case 8: {
        bool force = c & 0x40;

        op_name = "collect";
        run_on(remote, do_collect, &force);
        break;
    }
    case 9:
        op_name = "purge delay";
        do_purge_delay(a);
        break;
    case 10:
        op_name = "fault";
        do_fault(a, take(r));
        return;                         /* not counted down now */
    case 11:
        op_name = "check";
        if (op_index - run.checked_at >= CHECK_GAP)
            check_heap();
        else
            check_overlap();
        break;
    case 12:
        op_name = "burst";
        q.kind = MALLOC;
        q.slot = take(r) % NSLOTS;
        b.n = 1 + take(r) % 64;
        q.size = draw_size(r);
        b.q = q;
        run_on(remote, do_burst, &b);
        break;
    default:
        op_name = "free run";
        b.q.slot = take(r) % NSLOTS;
        b.n = 1 + take(r) % 64;
        b.order = take(r);
        run_on(remote, do_free_run, &b);
    }
    if (run.fault_ops > 0 && --run.fault_ops == 0)
        fault_off();
}

/* ---- One input ---- */

/* The model assumes the domains' default tables. */
static void check_setup(void)
{
    if (omi_domain_small[OM_DOMAIN_MEM] != OMI_TABLE_SMALL ||
        omi_domain_small[OM_DOMAIN_OBJ] != OMI_TABLE_SMALL ||
        !omi_domain_is_system(OM_DOMAIN_RAW))
        fail("the domains' tables are not the defaults (unset "
             "OBJMEM_ALLOCATOR)");
}

/* Invariant 7. */
static void finish(struct counts before, long delay)
{
    struct counts after;
    bool force = true;

    op_name = "end";
    if (run.fault_ops)
        fault_off();
    for (unsigned i = 0; i < NSLOTS; i++)
        if (run.slots[i].p)
            release(i);
    if (run.remote) {
        on_worker(do_collect, &force);
        om_collect(true);
    }
    if (om_set_purge_delay(delay) != 0)
        fail("cannot restore the purge delay");
    check_heap();
    after = counts_now();
    if (after.blocks != before.blocks)
        fail("blocks_in_use differs from its value before the input");
    if (after.raw != before.raw)
        fail("raw_blocks differs from its value before the input");
    if (after.large != before.large)
        fail("large_blocks differs from its value before the input");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = { data, size };
    struct counts before;
    long delay = om_get_purge_delay();

    check_setup();
    memset(&run, 0, sizeof(run));
    before = counts_now();
    for (op_index = 0; op_index < MAX_OPS && r.n > 0 &&
                       run.calls < MAX_CALLS; op_index++) {
        step(&r);
        if (op_index % CHECK_EVERY == CHECK_EVERY - 1) {
            op_name = "periodic check";
            check_heap();
        }
    }
    finish(before, delay);
    return 0;
}
