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
 *   the table    sums keyed by (traceback id + 1) << 8 | domain index:
 *                open addressing, linear probing, a mapping of its own,
 *                under tot_lock.  A generation's sums only: a clear
 *                (omi_totals_clear, after trace.c's generation moved on)
 *                empties it, and a move of an entry of another
 *                generation is dropped (the generation is read under the
 *                lock, so the two cannot cross).
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
 *   2. Every sum of the table, and every thread's entry of the current
 *      generation, names a traceback below trace.c's count and counts at
 *      least one allocation (n >= OMI_TOTAL_ONE); its variances are not
 *      negative.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "os.h"
#include "trace.h"

#define TABLE_MIN 256           /* slots of a first table */

struct sum {
    uint64_t key;               /* (id + 1) << 8 | domain index; 0: empty */
    uint64_t n;                 /* allocations * OMI_TOTAL_ONE */
    uint64_t bytes;
    double cvar, svar;
};

static pthread_mutex_t tot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sum *table;
static size_t table_mask;       /* capacity - 1; table NULL: 0 */
static size_t table_used;
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

/* Room in the table for one more key: false when a bigger one is needed
 * (the caller maps it outside the lock).  Under tot_lock. */
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

/* Take tot_lock with room in the table for one more key; false (the lock
 * not held) when no memory. */
static bool lock_with_room(void)
{
    for (;;) {
        size_t cap, old_cap;
        struct sum *fresh, *old;

        pthread_mutex_lock(&tot_lock);
        if (table_has_room())
            return true;
        cap = table ? (table_mask + 1) * 2 : TABLE_MIN;
        pthread_mutex_unlock(&tot_lock);
        fresh = omi_os_map(table_bytes(cap), 0);
        if (!fresh)
            return false;
        pthread_mutex_lock(&tot_lock);
        old_cap = table ? table_mask + 1 : 0;
        if (old_cap >= cap) {           /* another thread grew it */
            pthread_mutex_unlock(&tot_lock);
            omi_os_unmap(fresh, table_bytes(cap));
            continue;
        }
        old = table_move(fresh, cap);
        pthread_mutex_unlock(&tot_lock);
        if (old)
            omi_os_unmap(old, table_bytes(old_cap));
    }
}

/* An entry's sums to the table, when of the current generation.  Under
 * tot_lock, with room for a key. */
static void entry_move(uint64_t key, uint64_t n, uint64_t bytes, double cvar,
                       double svar)
{
    struct sum *s;

    if (!key || (uint32_t)(key >> 32) != omi_trace_generation())
        return;                 /* empty, or from before a clear */
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

void omi_totals_miss(struct omi_total_entry *e, uint64_t key, uint64_t n,
                     uint64_t bytes, double cvar, double svar)
{
    if (!lock_with_room())
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

/* Every entry of acc to the table.  Under tot_lock.  false: no room (the
 * caller grows the table and comes again). */
static bool flush_all(struct omi_total_entry *acc)
{
    for (size_t i = 0; i < OMI_TOTAL_ACC; i++) {
        if (!atomic_load_explicit(&acc[i].key, memory_order_relaxed))
            continue;
        if (!table_has_room())
            return false;
        entry_flush(&acc[i]);
    }
    return true;
}

void omi_totals_release(int slot)
{
    struct omi_total_entry *acc = atomic_load(&accs[slot]);
    bool done = acc == NULL;

    while (!done && lock_with_room()) {
        done = flush_all(acc);
        pthread_mutex_unlock(&tot_lock);
    }
    for (size_t i = 0; acc && i < OMI_TOTAL_ACC; i++)
        entry_take(&acc[i], 0, 0, 0, 0, 0);     /* no memory: dropped */
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
    table_used = 0;
    pthread_mutex_unlock(&tot_lock);
    if (unmap && old)
        omi_os_unmap(old, table_bytes(cap));
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
        bound = table_used + entries_bound();
        pthread_mutex_unlock(&tot_lock);
        while (cap < 2 * bound + 2)
            cap *= 2;
        all = omi_region_alloc(scratch, table_bytes(cap));
        if (!all)
            return -ENOMEM;
        pthread_mutex_lock(&tot_lock);
        if (table_used + entries_bound() > bound) {
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
