/*
 * totals.c - X (cross-cutting): the allocations of the run, per traceback
 * and domain: how many, and how many bytes, since tracing started or was
 * last cleared, freed or not (om_snapshot_allocations).
 *
 * trace.c counts each traced allocation here once it has the
 * allocation's traceback id, as a sum of five: the allocations (n, in
 * 1/OMI_TOTAL_ONE of one), the bytes, and for a sampled one the
 * variances its weight w = 1/p brings, w(w - 1) for the count and
 * size^2 w(w - 1) for the bytes (Horvitz-Thompson, as snapshot.c's
 * statistics).  Exact traces weigh 1 and bring no variance.
 *
 *   per thread   acc: OMI_TOTAL_ACC entries, direct-mapped by key, mapped
 *                when the thread claims trace.c's counter slot i
 *                (accs[i], kept for the next thread of the slot):
 *                | key | n | bytes | cvar | svar |, key = generation << 32
 *                | traceback id << 8 | domain index, 0: empty.  The
 *                owner adds to an entry with plain loads and stores
 *                (relaxed atomics: a snapshot reads them); an entry for
 *                another key goes to the table first (omi_totals_miss).
 *   chunks       a traceback's sums in the first domain it is counted
 *                in, found by its id: dir[id >> CHUNK_BITS] is a chunk
 *                of 1024 tracebacks' | n | bytes | domain |, mapped when
 *                its first sum comes (17 KiB), and its variances beside
 *                it, mapped at the first sampled sum.  17 bytes a
 *                traceback under full tracing (a table of 40-byte sums
 *                at most 3/4 full took 53 to 107: Python's churn with 25
 *                frames, 12,932 tracebacks, 1.3 MB of them).
 *   the table    the sums of a traceback's other domains, keyed by
 *                (traceback id + 1) << 8 | domain index: open
 *                addressing, linear probing, a mapping of its own.
 *   Both under tot_lock, mapped outside it (need_for says what a sum
 *   needs, provide maps it).  A generation's sums only: a clear
 *   (omi_totals_clear, after trace.c's generation moved on) empties them,
 *   and a move of an entry of another generation is dropped (the
 *   generation is read under the lock, so the two cannot cross).
 *
 * So a hot site costs its thread an entry hit, and the lock is taken when
 * an entry changes hands, as trace.c's traceback cache takes tb_lock on
 * its misses.  A snapshot (omi_totals_collect) adds, under tot_lock, the
 * table and every thread's entries of the generation: exact once the
 * threads stop, and with threads running off by the adds they make while
 * it reads.  Nothing here allocates through objmem; no system call is
 * made under tot_lock (a table is mapped before it and unmapped after).
 *
 * Invariants (om_check through omi_totals_check):
 *   1. The table's used is its number of keys, below 3/4 of its capacity;
 *      every key sits in its probe run, once.
 *   2. Every sum of the chunks and the table, and every thread's entry
 *      of the current generation, names a traceback below trace.c's count
 *      and counts at least one allocation (n >= OMI_TOTAL_ONE); its
 *      variances are not negative.
 *   3. A chunk's slot without allocations has no bytes and no variance;
 *      first_used counts the slots with, nchunks and nvars the mappings,
 *      all below dir_top; the table holds a traceback's sums only for a
 *      domain other than the one of its chunk's slot, which has some.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "os.h"
#include "trace.h"

#define TABLE_MIN 256           /* slots of a first table */
#define CHUNK_BITS 10
#define CHUNK ((size_t)1 << CHUNK_BITS)         /* tracebacks a chunk */
#define IDS ((size_t)1 << 24)                   /* ids: 24 bits a key */

struct sum {
    uint64_t key;               /* (id + 1) << 8 | domain index; 0: empty */
    uint64_t n;                 /* allocations * OMI_TOTAL_ONE */
    uint64_t bytes;
    double cvar, svar;
};

/* The first sums of CHUNK tracebacks, the ids from c << CHUNK_BITS on:
 * those of the domain each was first counted in (n 0: none yet). */
struct chunk_vars {
    double cvar[CHUNK], svar[CHUNK];
};

struct chunk {
    uint64_t n[CHUNK];          /* allocations * OMI_TOTAL_ONE */
    uint64_t bytes[CHUNK];
    uint8_t dom[CHUNK];         /* the domain index, when n */
    struct chunk_vars *vars;    /* mapped at the first variance */
};

/* What a sum must have mapped before it can move (need_for). */
enum need { NEED_NONE, NEED_CHUNK, NEED_VARS, NEED_TABLE };

static pthread_mutex_t tot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sum *table;
static size_t table_mask;       /* capacity - 1; table NULL: 0 */
static size_t table_used;
static struct chunk *dir[IDS / CHUNK];  /* bss: a page of it a 512 Ki ids */
static size_t dir_top;          /* chunks at or above: none */
static size_t nchunks, nvars;   /* chunks and variances mapped */
static size_t first_used;       /* first sums in the chunks */
static _Atomic(struct omi_total_entry *) accs[OMI_TOTAL_THREADS];

static size_t table_bytes(size_t cap)
{
    return cap * sizeof(struct sum);
}

static uint64_t sum_key(uint64_t entry_key)
{
    return (((entry_key >> 8) & 0xffffff) + 1) << 8 | (entry_key & 0xff);
}

static size_t sum_home(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & mask;
}

/* The slot of key in t (mask + 1 slots): its own, or the empty one
 * where it goes. */
static struct sum *sum_slot(struct sum *t, size_t mask, uint64_t key)
{
    size_t i = sum_home(key, mask);

    while (t[i].key && t[i].key != key)
        i = (i + 1) & mask;
    return &t[i];
}

static void sum_add(struct sum *s, uint64_t n, uint64_t bytes, double cvar,
                    double svar)
{
    s->n += n;
    s->bytes += bytes;
    s->cvar += cvar;
    s->svar += svar;
}

/* Room in the table for one more key.  Under tot_lock. */
static bool table_has_room(void)
{
    return table && (table_used + 1) * 4 < (table_mask + 1) * 3;
}

/* Move the table into fresh (cap slots, zeroed); the old one is the
 * caller's to unmap, after the lock.  Under tot_lock. */
static struct sum *table_move(struct sum *fresh, size_t cap)
{
    struct sum *old = table;

    for (size_t i = 0; old && i <= table_mask; i++)
        if (old[i].key)
            *sum_slot(fresh, cap - 1, old[i].key) = old[i];
    table = fresh;
    table_mask = cap - 1;
    return old;
}

/* A table twice as big (tot_lock not held); false when no memory. */
static bool table_grow(void)
{
    size_t cap, old_cap;
    struct sum *fresh, *old;

    pthread_mutex_lock(&tot_lock);
    cap = table ? (table_mask + 1) * 2 : TABLE_MIN;
    pthread_mutex_unlock(&tot_lock);
    fresh = omi_os_map(table_bytes(cap), 0);
    if (!fresh)
        return false;
    pthread_mutex_lock(&tot_lock);
    old_cap = table ? table_mask + 1 : 0;
    if (old_cap >= cap) {               /* another thread grew it */
        pthread_mutex_unlock(&tot_lock);
        omi_os_unmap(fresh, table_bytes(cap));
        return true;
    }
    old = table_move(fresh, cap);
    pthread_mutex_unlock(&tot_lock);
    if (old)
        omi_os_unmap(old, table_bytes(old_cap));
    return true;
}

/* An entry's key counts now: of the current generation, with sums. */
static bool counts(uint64_t key, uint64_t n)
{
    return key && n && (uint32_t)(key >> 32) == omi_trace_generation();
}

/* What must be mapped before the sums of entry key (with variances:
 * var) can move.  A traceback's first domain has its sums in its chunk,
 * any other its own in the table.  Under tot_lock. */
static enum need need_for(uint64_t key, uint64_t n, bool var)
{
    size_t id = (key >> 8) & 0xffffff, i = id & (CHUNK - 1);
    const struct chunk *c;

    if (!counts(key, n))
        return NEED_NONE;               /* dropped */
    c = dir[id >> CHUNK_BITS];
    if (!c)
        return NEED_CHUNK;
    if (!c->n[i] || c->dom[i] == (key & 0xff))
        return var && !c->vars ? NEED_VARS : NEED_NONE;
    return table_has_room() ? NEED_NONE : NEED_TABLE;
}

/* Map a chunk, or a chunk's variances, for entry key, and put it in
 * place (tot_lock not held); false when no memory. */
static bool provide(enum need need, uint64_t key)
{
    size_t ci = ((key >> 8) & 0xffffff) >> CHUNK_BITS;
    size_t size = need == NEED_CHUNK ? sizeof(struct chunk)
                                     : sizeof(struct chunk_vars);
    void *fresh;

    if (need == NEED_TABLE)
        return table_grow();
    fresh = omi_os_map(size, 0);
    if (!fresh)
        return false;
    pthread_mutex_lock(&tot_lock);
    if (need == NEED_CHUNK && !dir[ci]) {
        dir[ci] = fresh;
        dir_top = ci + 1 > dir_top ? ci + 1 : dir_top;
        nchunks++;
        fresh = NULL;
    } else if (need == NEED_VARS && dir[ci] && !dir[ci]->vars) {
        dir[ci]->vars = fresh;
        nvars++;
        fresh = NULL;
    }
    pthread_mutex_unlock(&tot_lock);
    if (fresh)
        omi_os_unmap(fresh, size);
    return true;
}

/* Take tot_lock with what the sums of entry key need mapped; false (the
 * lock not held) when no memory. */
static bool lock_for(uint64_t key, uint64_t n, bool var)
{
    for (;;) {
        enum need need;

        pthread_mutex_lock(&tot_lock);
        need = need_for(key, n, var);
        if (need == NEED_NONE)
            return true;
        pthread_mutex_unlock(&tot_lock);
        if (!provide(need, key))
            return false;
    }
}

/* An entry's sums to its traceback's chunk or to the table, when of the
 * current generation.  Under tot_lock, with what need_for asked for. */
static void entry_move(uint64_t key, uint64_t n, uint64_t bytes, double cvar,
                       double svar)
{
    size_t id = (key >> 8) & 0xffffff, i = id & (CHUNK - 1);
    struct chunk *c;
    struct sum *s;

    if (!counts(key, n))
        return;                 /* empty, or from before a clear */
    c = dir[id >> CHUNK_BITS];
    if (!c->n[i] || c->dom[i] == (key & 0xff)) {
        first_used += !c->n[i];
        c->dom[i] = (uint8_t)key;
        c->n[i] += n;
        c->bytes[i] += bytes;
        if (cvar != 0 || svar != 0) {
            c->vars->cvar[i] += cvar;
            c->vars->svar[i] += svar;
        }
        return;
    }
    s = sum_slot(table, table_mask, sum_key(key));
    if (!s->key) {
        s->key = sum_key(key);
        table_used++;
    }
    sum_add(s, n, bytes, cvar, svar);
}

static void entry_take(struct omi_total_entry *e, uint64_t key, uint64_t n,
                       uint64_t bytes, double cvar, double svar)
{
    atomic_store_explicit(&e->key, key, memory_order_relaxed);
    atomic_store_explicit(&e->n, n, memory_order_relaxed);
    atomic_store_explicit(&e->bytes, bytes, memory_order_relaxed);
    atomic_store_explicit(&e->cvar, cvar, memory_order_relaxed);
    atomic_store_explicit(&e->svar, svar, memory_order_relaxed);
}

/* e's sums to the table; e left empty.  Under tot_lock, with room. */
static void entry_flush(struct omi_total_entry *e)
{
    entry_move(atomic_load_explicit(&e->key, memory_order_relaxed),
               atomic_load_explicit(&e->n, memory_order_relaxed),
               atomic_load_explicit(&e->bytes, memory_order_relaxed),
               atomic_load_explicit(&e->cvar, memory_order_relaxed),
               atomic_load_explicit(&e->svar, memory_order_relaxed));
    entry_take(e, 0, 0, 0, 0, 0);
}

/* Take tot_lock for entry e's sums to move (e's thread). */
static bool lock_for_entry(const struct omi_total_entry *e)
{
    return lock_for(atomic_load_explicit(&e->key, memory_order_relaxed),
                    atomic_load_explicit(&e->n, memory_order_relaxed),
                    atomic_load_explicit(&e->cvar, memory_order_relaxed) !=
                            0 ||
                        atomic_load_explicit(&e->svar,
                                             memory_order_relaxed) != 0);
}

void omi_totals_miss(struct omi_total_entry *e, uint64_t key, uint64_t n,
                     uint64_t bytes, double cvar, double svar)
{
    if (!(e ? lock_for_entry(e) : lock_for(key, n, cvar != 0 || svar != 0)))
        return;                 /* no memory: the allocation goes uncounted */
    if (e) {
        entry_flush(e);
        entry_take(e, key, n, bytes, cvar, svar);
    } else {
        entry_move(key, n, bytes, cvar, svar);
    }
    pthread_mutex_unlock(&tot_lock);
}

struct omi_total_entry *omi_totals_thread(int slot)
{
    struct omi_total_entry *acc = atomic_load(&accs[slot]);

    if (!acc) {
        acc = omi_os_map(OMI_TOTAL_ACC * sizeof(*acc), 0);
        if (acc)
            atomic_store(&accs[slot], acc);
    }
    return acc;
}

void omi_totals_release(int slot)
{
    struct omi_total_entry *acc = atomic_load(&accs[slot]);

    for (size_t i = 0; acc && i < OMI_TOTAL_ACC; i++) {
        if (atomic_load_explicit(&acc[i].key, memory_order_relaxed) &&
            lock_for_entry(&acc[i])) {
            entry_flush(&acc[i]);
            pthread_mutex_unlock(&tot_lock);
        }
        entry_take(&acc[i], 0, 0, 0, 0, 0);     /* no memory: dropped */
    }
}

/* The chunks' memory back, the last first (tracing stopped). */
static void chunks_unmap(void)
{
    for (;;) {
        struct chunk *c = NULL;
        struct chunk_vars *v = NULL;

        pthread_mutex_lock(&tot_lock);
        while (dir_top && !c) {
            c = dir[--dir_top];
            dir[dir_top] = NULL;
        }
        if (c) {
            v = c->vars;
            nchunks--;
            nvars -= v != NULL;
        }
        pthread_mutex_unlock(&tot_lock);
        if (!c)
            return;
        if (v)
            omi_os_unmap(v, sizeof(*v));
        omi_os_unmap(c, sizeof(*c));
    }
}

void omi_totals_clear(bool unmap)
{
    struct sum *old;
    size_t cap;

    pthread_mutex_lock(&tot_lock);
    old = table;
    cap = table ? table_mask + 1 : 0;
    if (unmap) {
        table = NULL;
        table_mask = 0;
    } else if (table) {
        memset(table, 0, table_bytes(cap));
    }
    for (size_t ci = 0; !unmap && ci < dir_top; ci++)
        if (dir[ci]) {
            memset(dir[ci], 0, offsetof(struct chunk, vars));
            if (dir[ci]->vars)
                memset(dir[ci]->vars, 0, sizeof(struct chunk_vars));
        }
    table_used = 0;
    first_used = 0;
    pthread_mutex_unlock(&tot_lock);
    if (unmap && old)
        omi_os_unmap(old, table_bytes(cap));
    if (unmap)
        chunks_unmap();
}

/* The threads' entries of generation g: how many there can be. */
static size_t entries_bound(void)
{
    size_t n = 0;

    for (int i = 0; i < OMI_TOTAL_THREADS; i++)
        n += atomic_load(&accs[i]) ? OMI_TOTAL_ACC : 0;
    return n;
}

/* Add entry e (of generation g, traceback below ntb) to out, a table of
 * mask + 1 slots, and count its new keys in *used. */
static void collect_entry(struct sum *out, size_t mask, size_t *used,
                          uint64_t key, const struct sum *e)
{
    struct sum *s = sum_slot(out, mask, key);

    if (!s->key) {
        s->key = key;
        ++*used;
    }
    sum_add(s, e->n, e->bytes, e->cvar, e->svar);
}

static struct sum entry_read(const struct omi_total_entry *e)
{
    return (struct sum){
        atomic_load_explicit(&e->key, memory_order_relaxed),
        atomic_load_explicit(&e->n, memory_order_relaxed),
        atomic_load_explicit(&e->bytes, memory_order_relaxed),
        atomic_load_explicit(&e->cvar, memory_order_relaxed),
        atomic_load_explicit(&e->svar, memory_order_relaxed) };
}

/* The table and the threads' entries into out (mask + 1 slots, at least
 * twice what they hold): the number of keys.  Under tot_lock. */
static size_t collect_locked(struct sum *out, size_t mask, uint32_t g,
                             size_t ntb)
{
    size_t used = 0;

    for (size_t ci = 0; ci < dir_top; ci++) {
        const struct chunk *c = dir[ci];

        for (size_t i = 0; c && i < CHUNK; i++) {
            size_t id = ci << CHUNK_BITS | i;
            struct sum f = { (id + 1) << 8 | c->dom[i], c->n[i],
                             c->bytes[i], c->vars ? c->vars->cvar[i] : 0,
                             c->vars ? c->vars->svar[i] : 0 };

            if (f.n && id < ntb)
                collect_entry(out, mask, &used, f.key, &f);
        }
    }
    for (size_t i = 0; table && i <= table_mask; i++)
        if (table[i].key && (table[i].key >> 8) - 1 < ntb)
            collect_entry(out, mask, &used, table[i].key, &table[i]);
    for (int t = 0; t < OMI_TOTAL_THREADS; t++) {
        const struct omi_total_entry *acc = atomic_load(&accs[t]);

        for (size_t i = 0; acc && i < OMI_TOTAL_ACC; i++) {
            struct sum e = entry_read(&acc[i]);

            if (e.key && (uint32_t)(e.key >> 32) == g &&
                ((e.key >> 8) & 0xffffff) < ntb && e.n)
                collect_entry(out, mask, &used, sum_key(e.key), &e);
        }
    }
    return used;
}

ssize_t omi_totals_collect(uint32_t g, size_t ntb, struct omi_region *scratch,
                           struct omi_total **out)
{
    for (;;) {
        size_t bound, cap = 64, n, k = 0;
        struct sum *all;
        struct omi_total *res;

        pthread_mutex_lock(&tot_lock);
        bound = table_used + first_used + entries_bound();
        pthread_mutex_unlock(&tot_lock);
        while (cap < 2 * bound + 2)
            cap *= 2;
        all = omi_region_alloc(scratch, table_bytes(cap));
        if (!all)
            return -ENOMEM;
        pthread_mutex_lock(&tot_lock);
        if (table_used + first_used + entries_bound() > bound) {
            pthread_mutex_unlock(&tot_lock);
            continue;           /* it grew meanwhile: a bigger one */
        }
        n = collect_locked(all, cap - 1, g, ntb);
        pthread_mutex_unlock(&tot_lock);
        res = omi_region_alloc(scratch, (n + 1) * sizeof(*res));
        if (!res)
            return -ENOMEM;
        for (size_t i = 0; i < cap; i++)
            if (all[i].key)
                res[k++] = (struct omi_total){
                    (uint32_t)(all[i].key >> 8) - 1,
                    (uint32_t)(all[i].key & 0xff), all[i].n, all[i].bytes,
                    all[i].cvar, all[i].svar };
        *out = res;
        return (ssize_t)k;
    }
}

size_t omi_totals_memory(void)
{
    size_t n;

    pthread_mutex_lock(&tot_lock);
    n = table ? table_bytes(table_mask + 1) : 0;
    n += nchunks * omi_os_page_round(sizeof(struct chunk)) +
         nvars * omi_os_page_round(sizeof(struct chunk_vars));
    pthread_mutex_unlock(&tot_lock);
    return n + entries_bound() * sizeof(struct omi_total_entry);
}

void omi_totals_fork_prepare(void)
{
    pthread_mutex_lock(&tot_lock);
}

void omi_totals_fork_parent(void)
{
    pthread_mutex_unlock(&tot_lock);
}

void omi_totals_fork_child(void)
{
    pthread_mutex_init(&tot_lock, NULL);
}

/* ---- om_check ---- */

/* Invariant 2 for one sum (key: the table's form). */
static int check_sum(const void *where, uint64_t key, uint64_t n,
                     double cvar, double svar, size_t ntb)
{
    if ((key >> 8) - 1 >= ntb)
        return omi_check_fail("totals.2", where, "traceback %lu of %zu",
                              (unsigned long)((key >> 8) - 1), ntb);
    if (n < OMI_TOTAL_ONE || !(cvar >= 0) || !(svar >= 0))
        return omi_check_fail("totals.2", where, "%lu/%u allocations, "
                              "variances below 0", (unsigned long)n,
                              (unsigned)OMI_TOTAL_ONE);
    return 0;
}

/* The table's key names a traceback whose chunk has the sums of another
 * domain (invariant 3). */
static bool second_domain(uint64_t key)
{
    size_t id = (key >> 8) - 1, i = id & (CHUNK - 1);
    const struct chunk *c = id < IDS ? dir[id >> CHUNK_BITS] : NULL;

    return c && c->n[i] && c->dom[i] != (key & 0xff);
}

/* Invariants 2 and 3 for the chunks' sums. */
static int check_chunks(size_t ntb)
{
    size_t used = 0, mapped = 0, vars = 0;

    for (size_t ci = 0; ci < IDS / CHUNK; ci++) {
        const struct chunk *c = dir[ci];

        if (c && ci >= dir_top)
            return omi_check_fail("totals.3", c, "chunk %zu above %zu", ci,
                                  dir_top);
        mapped += c != NULL;
        vars += c && c->vars;
        for (size_t i = 0; c && i < CHUNK; i++) {
            double cv = c->vars ? c->vars->cvar[i] : 0;
            double sv = c->vars ? c->vars->svar[i] : 0;
            uint64_t key = ((ci << CHUNK_BITS | i) + 1) << 8 | c->dom[i];
            int rc;

            if (!c->n[i] && (c->bytes[i] || cv != 0 || sv != 0))
                return omi_check_fail("totals.3", &c->n[i], "bytes without "
                                      "allocations");
            if (c->n[i] && (rc = check_sum(&c->n[i], key, c->n[i], cv, sv,
                                           ntb)) != 0)
                return rc;
            used += c->n[i] != 0;
        }
    }
    if (used != first_used || mapped != nchunks || vars != nvars)
        return omi_check_fail("totals.3", dir, "%zu first sums, %zu counted; "
                              "%zu chunks, %zu counted", used, first_used,
                              mapped, nchunks);
    return 0;
}

static int check_table(size_t ntb)
{
    size_t used = 0;

    for (size_t i = 0; table && i <= table_mask; i++) {
        const struct sum *s = &table[i];
        int rc;

        if (!s->key)
            continue;
        used++;
        if (sum_slot(table, table_mask, s->key) != s)
            return omi_check_fail("totals.1", s, "key outside its probe "
                                  "run, or twice");
        if (!second_domain(s->key))
            return omi_check_fail("totals.3", s, "the table holds the "
                                  "first domain of traceback %lu",
                                  (unsigned long)((s->key >> 8) - 1));
        if ((rc = check_sum(s, s->key, s->n, s->cvar, s->svar, ntb)) != 0)
            return rc;
    }
    if (used != table_used || (table && used * 4 >= (table_mask + 1) * 3))
        return omi_check_fail("totals.1", table, "%zu used, %zu counted",
                              table_used, used);
    return 0;
}

int omi_totals_check(uint32_t g, size_t ntb)
{
    int rc;

    pthread_mutex_lock(&tot_lock);
    rc = check_table(ntb);
    if (rc == 0)
        rc = check_chunks(ntb);
    for (int t = 0; t < OMI_TOTAL_THREADS && rc == 0; t++) {
        const struct omi_total_entry *acc = atomic_load(&accs[t]);

        for (size_t i = 0; acc && i < OMI_TOTAL_ACC && rc == 0; i++) {
            struct sum e = entry_read(&acc[i]);

            if (e.key && (uint32_t)(e.key >> 32) == g)
                rc = check_sum(&acc[i], sum_key(e.key), e.n, e.cvar, e.svar,
                               ntb);
        }
    }
    pthread_mutex_unlock(&tot_lock);
    return rc;
}

/* ---- Tests ---- */

void omi_totals_debug(uint32_t id, unsigned dom, struct omi_totals_debug *out)
{
    struct chunk *c;
    struct sum *s;

    pthread_mutex_lock(&tot_lock);
    c = id < IDS ? dir[id >> CHUNK_BITS] : NULL;
    s = table ? sum_slot(table, table_mask, ((uint64_t)id + 1) << 8 | dom)
              : NULL;
    *out = (struct omi_totals_debug){
        c ? &c->n[id & (CHUNK - 1)] : NULL,
        c ? &c->bytes[id & (CHUNK - 1)] : NULL,
        c ? &c->dom[id & (CHUNK - 1)] : NULL,
        s && s->key ? &s->key : NULL, &table_used, &first_used, &dir_top };
    pthread_mutex_unlock(&tot_lock);
}
