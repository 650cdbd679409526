/*
 * stackwalk.c - X (cross-cutting): a fast walk of the C stack, for tracing
 * with more than one C frame.
 *
 * libgcc's _Unwind_Backtrace finds each frame's FDE and interprets its
 * call frame instructions again on every walk: about 100 ns a frame,
 * 2.6 us for a 25-frame traceback.  The rule a frame needs to find its
 * caller depends only on its address, and on x86-64 nearly every rule is
 * "CFA = rsp or rbp + offset; return address at CFA - 8; rbp kept, or
 * saved at CFA - 8k".  So the walk caches that rule by address, in one
 * 64-bit word, and a known frame costs a load of the word, of its return
 * address and perhaps of the saved rbp.
 *
 *   rules:  RULES words, direct-mapped by the low RULE_BITS bits of the
 *           address looked up (a return address - 1, or the walker's own
 *           pc); a word is
 *           | address >> RULE_BITS : 40 | rbp slot k:5 | CFA offset:16 |
 *           base rbp:1 | kind:2 |   0: empty
 *           kind OK: the rule above; END: the stack ends here (no FDE,
 *           or the return address is undefined); OTHER: a rule the walk
 *           does not know (CFA or rbp by expression or another
 *           register, a signal frame): the caller walks with libgcc.
 *
 * A rule is computed from the FDE that _Unwind_Find_FDE (libgcc's own
 * lookup) gives: the CIE's and the FDE's instructions run up to the
 * address.  The words are written and read with relaxed atomics; a word
 * names its address whole (tag and index), so a reader never takes one
 * address's rule for another's.  When a shared object is unloaded
 * (dl_iterate_phdr's count of removals moves), the cache is emptied
 * before the next walk: another object's code may come at those
 * addresses (looked for at most every 16 ms: dl_iterate_phdr takes the
 * loader's lock).
 *
 * The walk checks each CFA before it reads below it: above the last one,
 * 8-aligned, less than FRAME_MAX above it; any other gives -1.
 *
 * Invariants (omi_stackwalk_check):
 *   1. A non-empty word holds the rule computed now for the address it
 *      names (as long as no object was unloaded since it was written).
 */
#define _GNU_SOURCE 1
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "os.h"
#include "stackwalk.h"

#define RULE_BITS 13
#define RULES ((size_t)1 << RULE_BITS)
#define KIND_OK 1u
#define KIND_END 2u
#define KIND_OTHER 3u
#define BASE_RBP (1u << 2)
#define OFF_SHIFT 3
#define OFF_MAX 0xffffu
#define SLOT_SHIFT 19
#define SLOT_MAX 31u
#define TAG_SHIFT 24
#define FRAME_MAX ((uintptr_t)1 << 20)
#define WALK_MAX 4096           /* frames: a longer walk is a loop */
#define STATES 8                /* DW_CFA_remember_state depth */
#define CHECK_NS 16000000       /* unloaded objects: looked for every 16 ms */

/* DWARF's numbers of the x86-64 registers the walk follows. */
#define REG_RBP 6
#define REG_RSP 7
#define REG_RA 16

static _Atomic(_Atomic uint64_t *) rules;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int64_t next_check;      /* CLOCK_MONOTONIC_COARSE, ns */
static _Atomic unsigned long long seen_subs;

/* libgcc's FDE lookup (exported by libgcc_s and libgcc_eh). */
struct eh_bases {
    void *tbase;
    void *dbase;
    void *func;
};

extern __attribute__((visibility("default"))) const void *
_Unwind_Find_FDE(void *pc, struct eh_bases *bases);

/* ---- Reading .eh_frame ---- */

struct cursor {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t get_uleb(struct cursor *c)
{
    uint64_t v = 0;

    for (unsigned shift = 0; c->p < c->end && shift < 64; shift += 7) {
        uint8_t b = *c->p++;

        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    c->bad = true;
    return 0;
}

static int64_t get_sleb(struct cursor *c)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0x80;

    while (c->p < c->end && (b & 0x80) && shift < 64) {
        b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    }
    if (b & 0x80) {
        c->bad = true;
        return 0;
    }
    if (shift < 64 && (b & 0x40))
        v |= ~(uint64_t)0 << shift;
    return (int64_t)v;
}

/* n little-endian bytes (n <= 8). */
static uint64_t get_fixed(struct cursor *c, size_t n)
{
    uint64_t v = 0;

    if ((size_t)(c->end - c->p) < n) {
        c->bad = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)c->p[i] << (8 * i);
    c->p += n;
    return v;
}

/* Read the value of a pointer encoding's format, unapplied. */
static uint64_t get_encoded(struct cursor *c, uint8_t enc)
{
    switch (enc & 0x0f) {
    case 0x00: return get_fixed(c, sizeof(void *));     /* absptr */
    case 0x01: return get_uleb(c);
    case 0x02: case 0x0a: return get_fixed(c, 2);
    case 0x03: case 0x0b: return get_fixed(c, 4);
    case 0x04: case 0x0c: return get_fixed(c, 8);
    case 0x09: return (uint64_t)get_sleb(c);
    default: c->bad = true; return 0;
    }
}

/* What a CIE says for its FDEs. */
struct cie {
    uint64_t code_align;
    int64_t data_align;
    uint8_t fde_enc;
    bool has_aug;               /* 'z': FDEs have augmentation data */
    bool signal;                /* 'S': frames of signal handlers */
    struct cursor insns;
};

static bool read_cie(const uint8_t *at, struct cie *out)
{
    uint32_t len;
    struct cursor c;
    const char *aug;
    uint8_t version;

    memcpy(&len, at, 4);
    if (len == 0xffffffffu || len < 8)
        return false;           /* (64-bit DWARF: not in .eh_frame) */
    c = (struct cursor){ at + 8, at + 4 + len, false };
    version = (uint8_t)get_fixed(&c, 1);
    aug = (const char *)c.p;
    c.p += strnlen(aug, (size_t)(c.end - c.p)) + 1;
    if (c.p > c.end || (version != 1 && version != 3) || strstr(aug, "eh"))
        return false;
    *out = (struct cie){ .has_aug = aug[0] == 'z' };
    out->code_align = get_uleb(&c);
    out->data_align = get_sleb(&c);
    if (version == 1)
        get_fixed(&c, 1);
    else
        get_uleb(&c);           /* the return address column */
    if (out->has_aug) {
        uint64_t n = get_uleb(&c);
        struct cursor a = { c.p, c.p + n, false };

        if (n > (uint64_t)(c.end - c.p))
            return false;
        for (const char *l = aug + 1; *l && !a.bad; l++) {
            if (*l == 'R')
                out->fde_enc = (uint8_t)get_fixed(&a, 1);
            else if (*l == 'L')
                get_fixed(&a, 1);
            else if (*l == 'P')
                get_encoded(&a, (uint8_t)get_fixed(&a, 1));
            else if (*l == 'S')
                out->signal = true;
            else if (*l != 'B')
                break;          /* unknown: the length skips the rest */
        }
        c.p += n;
    }
    out->insns = c;
    return !c.bad;
}

/* An FDE: its CIE, its code range's length and its instructions. */
static bool read_fde(const uint8_t *fde, struct cie *cie, uint64_t *range,
                     struct cursor *insns)
{
    uint32_t len, delta;
    struct cursor c;

    memcpy(&len, fde, 4);
    memcpy(&delta, fde + 4, 4);
    if (len == 0xffffffffu || len < 8 || !read_cie(fde + 4 - delta, cie))
        return false;
    c = (struct cursor){ fde + 8, fde + 4 + len, false };
    get_encoded(&c, cie->fde_enc);                      /* pc_begin */
    *range = get_encoded(&c, cie->fde_enc & 0x0f);
    if (cie->has_aug)
        c.p += get_uleb(&c);
    *insns = c;
    return !c.bad && c.p <= c.end;
}

/* ---- Running the call frame instructions ---- */

enum how { SAME, AT, UNDEF, BAD };

struct row {
    int64_t cfa_off;
    int64_t bp_off, ra_off;
    uint8_t cfa_reg;            /* REG_RSP, REG_RBP; other: BAD */
    uint8_t bp_how, ra_how;
};

struct cfi {
    struct row row, init, stack[STATES];
    int depth;
    const struct cie *cie;
};

/* Register reg's rule becomes how (at offset off from the CFA). */
static void set_reg(struct row *r, uint64_t reg, enum how how, int64_t off)
{
    if (reg == REG_RBP) {
        r->bp_how = (uint8_t)how;
        r->bp_off = off;
    } else if (reg == REG_RA) {
        r->ra_how = (uint8_t)how;
        r->ra_off = off;
    }
}

static void restore_reg(struct cfi *f, uint64_t reg)
{
    if (reg == REG_RBP) {
        f->row.bp_how = f->init.bp_how;
        f->row.bp_off = f->init.bp_off;
    } else if (reg == REG_RA) {
        f->row.ra_how = f->init.ra_how;
        f->row.ra_off = f->init.ra_off;
    }
}

static void def_cfa(struct row *r, uint64_t reg, int64_t off)
{
    r->cfa_reg = reg == REG_RSP || reg == REG_RBP ? (uint8_t)reg : BAD;
    r->cfa_off = off;
}

/* One instruction whose primary opcode is 0 (op its low bits): false
 * when the walk cannot follow it. */
static bool run_extended(struct cfi *f, struct cursor *c, uint8_t op,
                         uint64_t *loc)
{
    int64_t daf = f->cie->data_align;
    uint64_t reg, n;

    switch (op) {
    case 0x00: return true;                             /* nop */
    case 0x02: *loc += get_fixed(c, 1) * f->cie->code_align; return true;
    case 0x03: *loc += get_fixed(c, 2) * f->cie->code_align; return true;
    case 0x04: *loc += get_fixed(c, 4) * f->cie->code_align; return true;
    case 0x05: reg = get_uleb(c);                       /* offset_ext */
        set_reg(&f->row, reg, AT, (int64_t)get_uleb(c) * daf); return true;
    case 0x06: restore_reg(f, get_uleb(c)); return true;
    case 0x07: set_reg(&f->row, get_uleb(c), UNDEF, 0); return true;
    case 0x08: reg = get_uleb(c);                       /* same_value */
        set_reg(&f->row, reg, reg == REG_RA ? BAD : SAME, 0); return true;
    case 0x09: reg = get_uleb(c); get_uleb(c);          /* register */
        set_reg(&f->row, reg, BAD, 0); return true;
    case 0x0a:
        if (f->depth == STATES)
            return false;
        f->stack[f->depth++] = f->row;
        return true;
    case 0x0b:
        if (f->depth == 0)
            return false;
        f->row = f->stack[--f->depth];
        return true;
    case 0x0c: reg = get_uleb(c);
        def_cfa(&f->row, reg, (int64_t)get_uleb(c)); return true;
    case 0x0d: def_cfa(&f->row, get_uleb(c), f->row.cfa_off); return true;
    case 0x0e: f->row.cfa_off = (int64_t)get_uleb(c); return true;
    case 0x0f: n = get_uleb(c); c->p += n;              /* cfa by expr */
        f->row.cfa_reg = BAD; return true;
    case 0x10: case 0x16: reg = get_uleb(c); n = get_uleb(c); c->p += n;
        set_reg(&f->row, reg, BAD, 0); return true;
    case 0x11: reg = get_uleb(c);
        set_reg(&f->row, reg, AT, get_sleb(c) * daf); return true;
    case 0x12: reg = get_uleb(c);
        def_cfa(&f->row, reg, get_sleb(c) * daf); return true;
    case 0x13: f->row.cfa_off = get_sleb(c) * daf; return true;
    case 0x14: reg = get_uleb(c); get_uleb(c);          /* val_offset */
        set_reg(&f->row, reg, BAD, 0); return true;
    case 0x15: reg = get_uleb(c); get_sleb(c);
        set_reg(&f->row, reg, BAD, 0); return true;
    case 0x2e: get_uleb(c); return true;                /* args_size */
    case 0x2f: reg = get_uleb(c);
        set_reg(&f->row, reg, AT, -(int64_t)get_uleb(c) * daf);
        return true;
    default: return false;      /* set_loc and the rest */
    }
}

/* Run instructions from address loc until the row for target stands;
 * false when one cannot be followed. */
static bool run(struct cfi *f, struct cursor c, uint64_t loc,
                uint64_t target)
{
    while (c.p < c.end && !c.bad) {
        uint8_t op = *c.p++;

        switch (op >> 6) {
        case 1:                                         /* advance_loc */
            loc += (uint64_t)(op & 0x3f) * f->cie->code_align;
            break;
        case 2:                                         /* offset */
            set_reg(&f->row, op & 0x3f, AT,
                    (int64_t)get_uleb(&c) * f->cie->data_align);
            continue;
        case 3:
            restore_reg(f, op & 0x3f);
            continue;
        default:
            if (!run_extended(f, &c, op & 0x3f, &loc))
                return false;
            if ((op & 0x3f) < 2 || (op & 0x3f) > 4)
                continue;
        }
        if (loc > target)
            return true;        /* an advance went past the target */
    }
    return !c.bad;
}

/* The rule (a word's low bits) for address a. */
static uint32_t rule_compute(uintptr_t a)
{
    struct eh_bases b;
    const uint8_t *fde = _Unwind_Find_FDE((void *)a, &b);
    struct cursor insns;
    struct cie cie;
    struct cfi f;
    uint64_t range;
    uint32_t slot;

    if (!fde)
        return KIND_END;
    if (!read_fde(fde, &cie, &range, &insns) || cie.signal)
        return KIND_OTHER;
    f = (struct cfi){ .row = { 0, 0, 0, BAD, SAME, BAD }, .cie = &cie };
    if (!run(&f, cie.insns, 0, 0) || f.depth)
        return KIND_OTHER;
    f.init = f.row;
    if (!run(&f, insns, (uintptr_t)b.func, a))
        return KIND_OTHER;
    if (f.row.ra_how == UNDEF)
        return KIND_END;
    if (f.row.cfa_reg == BAD || f.row.ra_how != AT || f.row.ra_off != -8 ||
        f.row.cfa_off <= 0 || f.row.cfa_off > (int64_t)OFF_MAX ||
        f.row.bp_how > AT)
        return KIND_OTHER;
    slot = f.row.bp_how == AT ? (uint32_t)(-f.row.bp_off / 8) : 0;
    if (f.row.bp_how == AT && (f.row.bp_off >= 0 || f.row.bp_off % 8 ||
                               slot > SLOT_MAX))
        return KIND_OTHER;
    return KIND_OK | (f.row.cfa_reg == REG_RBP ? BASE_RBP : 0) |
           (uint32_t)f.row.cfa_off << OFF_SHIFT | slot << SLOT_SHIFT;
}

/* ---- The cache ---- */

static int count_subs(struct dl_phdr_info *info, size_t size, void *arg)
{
    *(unsigned long long *)arg = info->dlpi_subs;
    return 1;
}

/* Empty the cache when an object was unloaded since the last look: at
 * most every CHECK_NS, by one thread at a time, under check_lock (which
 * fork's handlers take: a child must not inherit the loader's lock held
 * by a thread inside dl_iterate_phdr). */
static void objects_check(_Atomic uint64_t *t)
{
    struct timespec ts;
    unsigned long long subs = 0;
    int64_t now;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (now < atomic_load_explicit(&next_check, memory_order_relaxed) ||
        pthread_mutex_trylock(&check_lock) != 0)
        return;
    atomic_store_explicit(&next_check, now + CHECK_NS,
                          memory_order_relaxed);
    dl_iterate_phdr(count_subs, &subs);
    if (subs != atomic_load_explicit(&seen_subs, memory_order_relaxed)) {
        for (size_t i = 0; i < RULES; i++)
            atomic_store_explicit(&t[i], 0, memory_order_relaxed);
        atomic_store_explicit(&seen_subs, subs, memory_order_relaxed);
    }
    pthread_mutex_unlock(&check_lock);
}

/* The cache, made on the first walk; NULL when it cannot be mapped. */
static _Atomic uint64_t *cache(void)
{
    _Atomic uint64_t *t = atomic_load_explicit(&rules, memory_order_acquire);
    _Atomic uint64_t *none = NULL;

    if (!t) {
        t = omi_os_map(RULES * sizeof(*t), omi_os_page_size());
        if (!t)
            return NULL;
        if (!atomic_compare_exchange_strong(&rules, &none, t)) {
            omi_os_unmap(t, RULES * sizeof(*t));
            t = none;
        }
    }
    objects_check(t);
    return t;
}

void omi_stackwalk_fork_prepare(void)
{
    pthread_mutex_lock(&check_lock);
}

void omi_stackwalk_fork_parent(void)
{
    pthread_mutex_unlock(&check_lock);
}

void omi_stackwalk_fork_child(void)
{
    pthread_mutex_init(&check_lock, NULL);
}

static uint32_t rule_of(_Atomic uint64_t *t, uintptr_t a)
{
    _Atomic uint64_t *w = &t[a & (RULES - 1)];
    uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
    uint32_t r;

    if (v && v >> TAG_SHIFT == a >> RULE_BITS)
        return (uint32_t)v & ((1u << TAG_SHIFT) - 1);
    r = rule_compute(a);
    atomic_store_explicit(w, (uint64_t)(a >> RULE_BITS) << TAG_SHIFT | r,
                          memory_order_relaxed);
    return r;
}

/* ---- The walk ---- */

#if defined(__x86_64__)
OM_NOINLINE __attribute__((no_sanitize_address))
int omi_stackwalk_walk(omi_stackwalk_fn fn, void *ctx)
{
    _Atomic uint64_t *t = cache();
    uintptr_t pc, sp, bp, cfa, a;
    uint32_t r;

    if (!t)
        return -1;
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
                     : "=r"(pc), "=r"(sp), "=r"(bp));
    for (int n = 0; n < WALK_MAX; n++) {
        a = n ? pc - 1 : pc;    /* a return address: its call */
        r = rule_of(t, a);
        if ((r & 3) == KIND_END)
            return 0;
        if ((r & 3) != KIND_OK)
            return -1;
        cfa = (r & BASE_RBP ? bp : sp) + (r >> OFF_SHIFT & OFF_MAX);
        if (cfa <= sp || cfa - sp > FRAME_MAX || (cfa & 7))
            return -1;
        if (r >> SLOT_SHIFT & SLOT_MAX)
            bp = *(const uintptr_t *)(cfa - 8 * (r >> SLOT_SHIFT & SLOT_MAX));
        pc = *(const uintptr_t *)(cfa - 8);
        sp = cfa;
        if (!pc || !fn(ctx, pc, sp))
            return 0;
    }
    return 0;
}
#else
int omi_stackwalk_walk(omi_stackwalk_fn fn, void *ctx)
{
    (void)fn;
    (void)ctx;
    return -1;
}
#endif

bool omi_stackwalk_function(uintptr_t pc, uintptr_t *lo, uintptr_t *hi)
{
    struct eh_bases b;
    const uint8_t *fde = _Unwind_Find_FDE((void *)pc, &b);
    struct cursor insns;
    struct cie cie;
    uint64_t range;

    if (!fde || !read_fde(fde, &cie, &range, &insns))
        return false;
    *lo = (uintptr_t)b.func;
    *hi = *lo + range;
    return true;
}

size_t omi_stackwalk_memory(void)
{
    return atomic_load(&rules) ? RULES * sizeof(uint64_t) : 0;
}

int omi_stackwalk_check(void)
{
    _Atomic uint64_t *t = atomic_load(&rules);
    unsigned long long subs = 0;
    int rc = 0;

    if (!t)
        return 0;
    pthread_mutex_lock(&check_lock);
    dl_iterate_phdr(count_subs, &subs);
    for (size_t i = 0; i < RULES && rc == 0 &&
                       subs == atomic_load(&seen_subs); i++) {
        uint64_t v = atomic_load_explicit(&t[i], memory_order_relaxed);
        uintptr_t a = (uintptr_t)(v >> TAG_SHIFT) << RULE_BITS | i;
        uint32_t r = (uint32_t)v & ((1u << TAG_SHIFT) - 1);

        if (v && rule_compute(a) != r)
            rc = omi_check_fail("stackwalk.1", (void *)a, "cached rule "
                                "%#x, now %#x", r, rule_compute(a));
    }
    pthread_mutex_unlock(&check_lock);
    return rc;              /* (an object unloaded: emptied before use) */
}
