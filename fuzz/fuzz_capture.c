/*
 * fuzz_capture.c - libFuzzer target: the capture file loader
 * (om_snapshot_load, src/snapshot.c) on arbitrary bytes, and what the
 * objmem tools (top, leaks, peak, allocs, diff, pins, timeline) then do
 * with what it loads, through the public API.
 *
 * The input is the file.  It goes into a memfd, loaded by its
 * /proc/self/fd path (the loader wants a regular file), with the
 * checksum let through (omi_snapshot_fuzzing) so that random bytes reach
 * the checks behind it.  A snapshot that loads is walked part by part
 * (itself, its peak, its allocations):
 *
 *   accessors    info, every trace, the modules (each found by its own
 *                ends), the heap map, the timeline
 *   statistics   every key, cumulative and not, against a shadow: the
 *                groups recomputed here from the traces, keys compared
 *                by content; sizes and counts exact when the sums are
 *                exact in a double (whole numbers below 2^53), else
 *                within rounding; biggest first
 *   compare      (s, s): the groups of the shadow, every diff 0
 *   filters      a domain filter and a file filter (the shadow knows
 *                what they keep), "*" (keeps all), and a glob made of
 *                a string of the file (keeps a subsequence)
 *   memory       what the loader holds (trace.h's view: the region's
 *                touched bytes, the arrays, the string set) is at most
 *                32 bytes per input byte, plus 1 MiB
 *
 * then dumped to a second memfd and loaded from it: the same snapshot,
 * trace by trace, part by part, with the same statistics to the bit.
 * One input in four is loaded once more with its nth mapping failing
 * (n from the input's hash): a snapshot, or ENOMEM; statistics and the
 * dump under a failing mapping give their result or -ENOMEM, and leave
 * the snapshot as it was.  A raw capture (MODS) has the loader open the
 * module files it names (libdw): the seeds name this machine's.  The
 * tools' own code (tools/, its reports and pages) is not linked here.
 *
 * Invariants (fail() when one breaks):
 *   1. om_snapshot_load gives a snapshot, or NULL with errno EINVAL or
 *      ENOMEM and a message (om_snapshot_load_error); ENOMEM only when
 *      a mapping was made to fail.
 *   2. A loaded snapshot holds what the format allows: weights >= 1,
 *      sizes <= PTRDIFF_MAX, modules sorted and disjoint, heap pages
 *      well-formed, timeline strictly increasing.
 *   3. Statistics and compare agree with the shadow (above).
 *   4. dump then load is the identity on what the API shows.
 *   5. Between inputs nothing stays: every snapshot freed, fault
 *      injection off, om_check() == 0, the pools' blocks and objmem's
 *      mapped bytes as before.
 */
#define _GNU_SOURCE 1           /* memfd_create */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "objmem.h"
#include "os.h"
#include "region.h"
#include "trace.h"

#define EXACT_MAX 9007199254740992.0    /* 2^53: doubles exact below */
#define BYTES_PER_INPUT_BYTE 32         /* the loader's memory bound, */
#define BYTES_FIXED (1u << 20)          /* per input byte, plus this */
#define FAULT_MAPS 48                   /* fail one of the first maps */
#define NKEYS 5                         /* key and cumulative pairs */

static const struct om_frame unknown = { "<unknown>", NULL, 0, NULL };

static const struct {
    enum om_key key;
    bool cumulative;
} keys[NKEYS] = {
    { OM_KEY_FILENAME, false }, { OM_KEY_FILENAME, true },
    { OM_KEY_LINENO, false }, { OM_KEY_LINENO, true },
    { OM_KEY_TRACEBACK, false },
};

static int in_fd = -1, out_fd = -1;     /* the capture, its dump */
static char in_path[64], out_path[64];
static bool injecting;                  /* a mapping may fail now */

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_capture: %s\n", what);
    abort();
}

/* ---- Files ---- */

static int new_memfd(const char *name, char *path, size_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC);

    if (fd < 0)
        fail("memfd_create");
    snprintf(path, size, "/proc/self/fd/%d", fd);
    return fd;
}

/* fd's contents become data[0..size). */
static void put_file(int fd, const uint8_t *data, size_t size)
{
    size_t done = 0;

    if (ftruncate(fd, 0) != 0)
        fail("ftruncate");
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);

        if (n <= 0)
            fail("pwrite");
        done += (size_t)n;
    }
}

/* om_snapshot_load, and invariant 1 when it fails. */
static struct om_snapshot *load(const char *path)
{
    struct om_snapshot *s;

    errno = 0;
    s = om_snapshot_load(path);
    if (s)
        return s;
    if (errno != EINVAL && !(errno == ENOMEM && injecting))
        fail("load: NULL with an errno other than EINVAL (ENOMEM)");
    if (!om_snapshot_load_error()[0])
        fail("load: NULL and no message");
    return NULL;
}

/* ---- Content: strings, frames, tracebacks ---- */

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_frame(const struct om_frame *a, const struct om_frame *b)
{
    return same_str(a->filename, b->filename) &&
           same_str(a->function, b->function) && a->lineno == b->lineno &&
           a->pc == b->pc;
}

static bool same_tb(const struct om_traceback *a,
                    const struct om_traceback *b)
{
    if (a->nframe != b->nframe || a->total_nframe != b->total_nframe)
        return false;
    for (unsigned i = 0; i < a->nframe; i++)
        if (!same_frame(&a->frames[i], &b->frames[i]))
            return false;
    return true;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
}

static uint64_t hash_str(uint64_t h, const char *str)
{
    if (!str)
        return mix(h, 0x5a5a);
    for (; *str; str++)
        h = mix(h, (unsigned char)*str);
    return mix(h, 0xa5a5);
}

/* ---- The shadow: statistics recomputed from the traces ---- */

/* A key: one frame (FILENAME: its file only; LINENO: all of it), or a
 * whole traceback (TRACEBACK). */
struct skey {
    const struct om_frame *f;
    const struct om_traceback *tb;
};

struct sgroup {
    struct skey k;
    double size, count;         /* sums, as statistics makes them */
    bool matched;               /* a statistic of the library's named it */
};

struct shadow {
    enum om_key key;
    struct sgroup *g;
    size_t n, cap;
    size_t *map;                /* group index + 1; 0: empty */
    size_t mask;
    bool exact;                 /* every term a whole number < 2^53 */
};

static uint64_t key_hash(enum om_key key, const struct skey *k)
{
    uint64_t h = 0;

    if (key == OM_KEY_FILENAME)
        return hash_str(1, k->f->filename);
    if (key == OM_KEY_LINENO) {
        h = hash_str(hash_str(2, k->f->filename), k->f->function);
        return mix(mix(h, k->f->lineno), (uintptr_t)k->f->pc);
    }
    h = mix(mix(3, k->tb->nframe), k->tb->total_nframe);
    for (unsigned i = 0; i < k->tb->nframe; i++) {
        const struct om_frame *f = &k->tb->frames[i];

        h = hash_str(hash_str(h, f->filename), f->function);
        h = mix(mix(h, f->lineno), (uintptr_t)f->pc);
    }
    return h;
}

static bool key_equal(enum om_key key, const struct skey *a,
                      const struct skey *b)
{
    if (key == OM_KEY_FILENAME)
        return same_str(a->f->filename, b->f->filename);
    if (key == OM_KEY_LINENO)
        return same_frame(a->f, b->f);
    return same_tb(a->tb, b->tb);
}

static size_t *slot_of(const struct shadow *sh, const struct skey *k)
{
    size_t i = (size_t)key_hash(sh->key, k) & sh->mask;

    while (sh->map[i] && !key_equal(sh->key, &sh->g[sh->map[i] - 1].k, k))
        i = (i + 1) & sh->mask;
    return &sh->map[i];
}

static void shadow_add(struct shadow *sh, const struct skey *k, double size,
                       double count)
{
    size_t *slot = slot_of(sh, k);
    struct sgroup *g;

    if (!*slot) {
        if (sh->n == sh->cap)
            fail("shadow: more groups than room");
        sh->g[sh->n] = (struct sgroup){ *k, 0, 0, false };
        *slot = ++sh->n;
    }
    g = &sh->g[*slot - 1];
    g->size += size;
    g->count += count;
}

/* Room for every group s can make: a frame per trace's frame, or one. */
static void shadow_init(struct shadow *sh, const struct om_snapshot *s,
                        enum om_key key)
{
    size_t bound = 1, slots = 2;
    struct om_trace_info t;

    for (size_t i = 0; i < om_snapshot_count(s); i++) {
        if (om_snapshot_trace(s, i, &t) != 0)
            fail("trace: not there");
        bound += t.traceback->nframe + 1;
    }
    while (slots < 2 * bound)
        slots *= 2;
    *sh = (struct shadow){ .key = key, .cap = bound, .mask = slots - 1,
                           .exact = true };
    sh->g = calloc(bound, sizeof(*sh->g));
    sh->map = calloc(slots, sizeof(*sh->map));
    if (!sh->g || !sh->map)
        fail("shadow: out of memory");
}

static void shadow_free(struct shadow *sh)
{
    free(sh->g);
    free(sh->map);
}

/* Whether size * weight and weight are whole numbers, exact below 2^53. */
static bool is_exact(double size, double w)
{
    return size < EXACT_MAX && w < EXACT_MAX && w == floor(w) &&
           size * w < EXACT_MAX;
}

/* The groups of s's traces by key, as statistics makes them: each
 * trace's sums go to its traceback's most recent frame (cumulative:
 * every frame, repeats too), "<unknown>" for no frame; or to the whole
 * traceback. */
static void shadow_build(struct shadow *sh, const struct om_snapshot *s,
                         enum om_key key, bool cumulative)
{
    struct om_trace_info t;

    shadow_init(sh, s, key);
    for (size_t i = 0; i < om_snapshot_count(s); i++) {
        const struct om_traceback *tb;
        double size;
        unsigned n;

        om_snapshot_trace(s, i, &t);
        tb = t.traceback;
        size = (double)t.size;
        sh->exact &= is_exact(size, t.weight);
        if (key == OM_KEY_TRACEBACK) {
            shadow_add(sh, &(struct skey){ NULL, tb }, size * t.weight,
                       t.weight);
            continue;
        }
        if (tb->nframe == 0)
            shadow_add(sh, &(struct skey){ &unknown, NULL },
                       size * t.weight, t.weight);
        n = cumulative ? tb->nframe : (tb->nframe ? 1 : 0);
        for (unsigned k = 0; k < n; k++)
            shadow_add(sh, &(struct skey){ &tb->frames[k], NULL },
                       size * t.weight, t.weight);
    }
    for (size_t i = 0; i < sh->n; i++)
        sh->exact &= sh->g[i].size < EXACT_MAX && sh->g[i].count < EXACT_MAX;
}

/* The library's rounding of a sum. */
static double rounded(double x)
{
    if (!(x > 0))
        return 0;
    return x >= (double)SIZE_MAX ? (double)SIZE_MAX : floor(x + 0.5);
}

/* got is sum rounded: exactly, or within what another order of the
 * same additions can change. */
static bool sum_matches(const struct shadow *sh, size_t got, double sum)
{
    double want = rounded(sum), diff = fabs((double)got - want);

    if (sh->exact)
        return (double)got == want;
    return diff <= 2 + want * 1e-9;
}

/* The shadow's group of the statistic keyed tb, checked for the shape
 * of the key (one frame: FILENAME keeps only the file). */
static struct sgroup *group_of_key(struct shadow *sh,
                                   const struct om_traceback *tb)
{
    struct skey k = { NULL, tb };
    size_t *slot;

    if (!tb)
        fail("statistic: no traceback");
    if (sh->key != OM_KEY_TRACEBACK) {
        if (tb->nframe != 1 || tb->total_nframe != 1)
            fail("statistic: a frame key of more than one frame");
        k.f = &tb->frames[0];
        if (sh->key == OM_KEY_FILENAME &&
            (k.f->function || k.f->lineno || k.f->pc))
            fail("statistic: a file key with a line or a function");
    }
    slot = slot_of(sh, &k);
    if (!*slot)
        fail("statistic: a group the shadow does not have");
    return &sh->g[*slot - 1];
}

static void check_group(struct shadow *sh, const struct om_traceback *tb,
                        size_t size, size_t count)
{
    struct sgroup *g = group_of_key(sh, tb);

    if (g->matched)
        fail("statistic: a group twice");
    g->matched = true;
    if (!sum_matches(sh, size, g->size) || !sum_matches(sh, count, g->count))
        fail("statistic: size or count not the shadow's");
}

static void check_errors(const struct om_snapshot *s,
                         const struct om_statistic *st)
{
    struct om_snapshot_info info;

    om_snapshot_get_info(s, &info);
    if (!info.sample_mean && (st->size_error != 0 || st->count_error != 0))
        fail("statistic: an exact snapshot with an error");
    if (!(st->size_error >= 0) || !(st->count_error >= 0))
        fail("statistic: an error below 0 or NaN");
}

/* statistics(s, key, cumulative): the shadow's groups, biggest first. */
static void check_statistics(const struct om_snapshot *s, int k)
{
    struct om_statistic *st = NULL;
    struct shadow sh;
    size_t n = 0;

    if (om_snapshot_statistics(s, keys[k].key, keys[k].cumulative, &st,
                               &n) != 0)
        fail("statistics failed");
    shadow_build(&sh, s, keys[k].key, keys[k].cumulative);
    if (n != sh.n || (n && !st))
        fail("statistics: not as many groups as the shadow");
    for (size_t i = 0; i < n; i++) {
        check_group(&sh, st[i].traceback, st[i].size, st[i].count);
        check_errors(s, &st[i]);
        if (i && (st[i - 1].size < st[i].size ||
                  (st[i - 1].size == st[i].size &&
                   st[i - 1].count < st[i].count)))
            fail("statistics: not biggest first");
    }
    shadow_free(&sh);
}

/* compare(s, s): the groups of statistics, nothing grown. */
static void check_compare(const struct om_snapshot *s, int k)
{
    struct om_statistic_diff *d = NULL;
    struct shadow sh;
    size_t n = 0;

    if (om_snapshot_compare(s, s, keys[k].key, keys[k].cumulative, &d,
                            &n) != 0)
        fail("compare failed");
    shadow_build(&sh, s, keys[k].key, keys[k].cumulative);
    if (n != sh.n || (n && !d))
        fail("compare: not as many groups as the shadow");
    for (size_t i = 0; i < n; i++) {
        if (d[i].size_diff != 0 || d[i].count_diff != 0)
            fail("compare(s, s): a difference");
        check_group(&sh, d[i].traceback, d[i].size, d[i].count);
        if (i && (d[i - 1].size < d[i].size ||
                  (d[i - 1].size == d[i].size && d[i - 1].count < d[i].count)))
            fail("compare: not biggest first");
    }
    shadow_free(&sh);
}

/* ---- Accessors ---- */

static void check_trace(const struct om_trace_info *t)
{
    const struct om_traceback *tb = t->traceback;

    if (!tb)
        fail("trace: no traceback");
    if (!(t->weight >= 1) || isinf(t->weight))
        fail("trace: a weight below 1 or not finite");
    if (t->size > PTRDIFF_MAX)
        fail("trace: bigger than a block can be");
    for (unsigned i = 0; i < tb->nframe; i++)
        if (!tb->frames[i].filename)
            fail("trace: a frame with no file");
}

static void check_traces(const struct om_snapshot *s)
{
    struct om_snapshot_info info;
    struct om_trace_info t;
    size_t n = om_snapshot_count(s);

    om_snapshot_get_info(s, &info);
    if (info.ntraces != n ||
        info.traceback_limit != om_snapshot_traceback_limit(s))
        fail("info: not what the accessors say");
    for (size_t i = 0; i < n; i++) {
        if (om_snapshot_trace(s, i, &t) != 0)
            fail("trace: below the count, not there");
        check_trace(&t);
    }
    if (om_snapshot_trace(s, n, &t) != -ERANGE)
        fail("trace: past the count, not -ERANGE");
}

/* Module i of s, found by its own ends and not a byte outside them. */
static void check_module(const struct om_snapshot *s, size_t i,
                         const struct om_module *prev)
{
    struct om_module m;

    if (om_snapshot_module(s, i, &m) != 0)
        fail("module: below the count, not there");
    if (!m.path || m.start >= m.end || m.build_id_size > 32 ||
        (prev && m.start < prev->end))
        fail("module: empty, overlapping or out of order");
    if (om_snapshot_find_module(s, (void *)m.start) != (int)i ||
        om_snapshot_find_module(s, (void *)(m.end - 1)) != (int)i)
        fail("find_module: a module's own ends not in it");
    if (m.start > 0 && (!prev || m.start - 1 >= prev->end) &&
        om_snapshot_find_module(s, (void *)(m.start - 1)) != -ENOENT)
        fail("find_module: a module for the byte below one");
}

static void check_modules(const struct om_snapshot *s)
{
    struct om_module m[2];
    size_t n = om_snapshot_module_count(s);

    for (size_t i = 0; i < n; i++) {
        check_module(s, i, i ? &m[(i - 1) % 2] : NULL);
        om_snapshot_module(s, i, &m[i % 2]);
    }
    if (om_snapshot_module(s, n, &m[0]) != -ERANGE)
        fail("module: past the count, not -ERANGE");
}

static void check_page(const struct om_heap_map *h,
                       const struct om_heap_page *p)
{
    if (p->kind > OM_PAGE_TAIL)
        fail("heap: a page of no kind");
    if (p->kind != OM_PAGE_BLOCKS) {
        if (p->pages || p->used || p->block_size)
            fail("heap: a page of no blocks with block fields");
        return;
    }
    if (!p->pages || !p->block_size ||
        (unsigned __int128)p->used * p->block_size >
            (unsigned __int128)p->pages * h->page_size)
        fail("heap: a run of blocks that cannot be");
}

static void check_heap(const struct om_snapshot *s)
{
    const struct om_heap_map *h = om_snapshot_heap(s);

    if (!h)
        return;
    if (h->page_size < 4096 || (h->page_size & (h->page_size - 1)))
        fail("heap: bad page size");
    if ((h->narenas && !h->arenas) || (h->nlarge && !h->large))
        fail("heap: counts without arrays");
    for (size_t i = 0; i < h->narenas; i++) {
        if (h->arenas[i].npages && !h->arenas[i].pages)
            fail("heap: an arena's pages missing");
        for (size_t j = 0; j < h->arenas[i].npages; j++)
            check_page(h, &h->arenas[i].pages[j]);
    }
}

static void check_timeline(const struct om_snapshot *s)
{
    const struct om_time_point *p = NULL;
    size_t n = om_snapshot_timeline(s, &p);

    if (!n != !p)
        fail("timeline: points without a count, or a count without");
    for (size_t i = 1; i < n; i++)
        if (p[i].time_ms <= p[i - 1].time_ms)
            fail("timeline: time not strictly increasing");
}

/* ---- Filters ---- */

/* Trace i of s and trace j of f are the same trace. */
static bool same_trace(const struct om_snapshot *s, size_t i,
                       const struct om_snapshot *f, size_t j)
{
    struct om_trace_info a, b;

    if (om_snapshot_trace(s, i, &a) != 0 || om_snapshot_trace(f, j, &b) != 0)
        fail("trace: not there");
    return a.domain == b.domain && a.size == b.size &&
           memcmp(&a.weight, &b.weight, sizeof(a.weight)) == 0 &&
           a.address == b.address && a.time_ms == b.time_ms &&
           same_tb(a.traceback, b.traceback);
}

/* tracemalloc's normalisation: "x.pyc" reads "x.py". */
static size_t normal_len(const char *name)
{
    size_t n = strlen(name);

    return n >= 4 && memcmp(name + n - 4, ".pyc", 4) == 0 ? n - 1 : n;
}

/* A pattern with no * ? [ matches a file equal to it, normalised. */
static bool literal_matches(const char *pat, const struct om_frame *f,
                            unsigned lineno)
{
    size_t n = normal_len(pat);

    return normal_len(f->filename) == n &&
           memcmp(pat, f->filename, n) == 0 &&
           (!lineno || f->lineno == lineno);
}

/* What the shadow says filter f (literal pattern, inclusive, any domain)
 * and an exclusive filter of domain ex (-1: none) keep of trace t. */
static bool shadow_keeps(const struct om_filter *f, int ex,
                         const struct om_trace_info *t)
{
    const struct om_traceback *tb = t->traceback;
    unsigned n = f->all_frames ? tb->nframe : 1;
    bool hit = tb->nframe == 0 &&
               literal_matches(f->filename_pattern, &unknown, f->lineno);

    for (unsigned i = 0; i < n && i < tb->nframe && !hit; i++)
        hit = literal_matches(f->filename_pattern, &tb->frames[i],
                              f->lineno);
    return hit && (ex < 0 || t->domain != (unsigned)ex);
}

/* The filtered snapshot: a new one, with s's modules and none of its
 * heap, timeline or parts. */
static struct om_snapshot *filtered(const struct om_snapshot *s,
                                    const struct om_filter *f, size_t n)
{
    struct om_snapshot *out = om_snapshot_filter(s, f, n);
    const struct om_time_point *p;

    if (!out)
        fail("filter failed");
    if (om_snapshot_heap(out) || om_snapshot_timeline(out, &p) ||
        om_snapshot_peak(out) || om_snapshot_allocations(out) ||
        om_snapshot_module_count(out) != om_snapshot_module_count(s))
        fail("filter: a heap, timeline or part kept, or modules lost");
    return out;
}

/* Filter s by f (n filters): the kept traces are a subsequence of s's
 * (want non-NULL: exactly those whose want[i] is set), the same; their
 * count. */
static size_t check_filter(const struct om_snapshot *s,
                           const struct om_filter *f, size_t n,
                           const bool *want)
{
    struct om_snapshot *out = filtered(s, f, n);
    size_t j = 0, total = om_snapshot_count(s);

    for (size_t i = 0; i < total; i++) {
        bool kept = j < om_snapshot_count(out) && same_trace(s, i, out, j);

        if (want && kept != want[i])
            fail("filter: kept a trace the shadow does not, or not one");
        j += kept;
    }
    if (j != om_snapshot_count(out))
        fail("filter: traces not in order, or not s's");
    for (int k = 0; k < NKEYS; k++)
        check_statistics(out, k);
    om_snapshot_free(out);
    return j;
}

/* f[0], a literal file pattern, with f[1], an exclusive filter of
 * domain ex when ex >= 0: exactly the traces the shadow keeps. */
static void check_literal_filter(const struct om_snapshot *s,
                                 const struct om_filter *f, int ex)
{
    size_t n = om_snapshot_count(s);
    bool *want = calloc(n ? n : 1, sizeof(*want));
    struct om_trace_info t;

    if (!want)
        fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        om_snapshot_trace(s, i, &t);
        want[i] = shadow_keeps(&f[0], ex, &t);
    }
    check_filter(s, f, ex < 0 ? 1 : 2, want);
    free(want);
}

/* The filters, made from trace 0: "*", its file (literal, when it has
 * no * ? [) with its domain left out, and its function as a glob. */
static void check_filters(const struct om_snapshot *s)
{
    struct om_filter f[2] = { { .inclusive = true, .domain = -1 },
                              { .inclusive = false } };
    const struct om_traceback *tb;
    struct om_trace_info t;

    if (om_snapshot_trace(s, 0, &t) != 0)
        return;
    tb = t.traceback;
    f[0].filename_pattern = "*";
    if (check_filter(s, f, 1, NULL) != om_snapshot_count(s))
        fail("filter: \"*\" left a trace out");
    f[0].filename_pattern = tb->nframe ? tb->frames[0].filename
                                       : unknown.filename;
    f[0].all_frames = t.size & 1;
    f[0].lineno = t.size & 2 && tb->nframe ? tb->frames[0].lineno : 0;
    f[1].domain = t.domain <= INT_MAX ? (int)t.domain : -1;
    if (!strpbrk(f[0].filename_pattern, "*?["))
        check_literal_filter(s, f, f[1].domain);
    if (tb->nframe && tb->frames[0].function) {
        f[0] = (struct om_filter){ true, tb->frames[0].function, 0, true,
                                   -1 };
        check_filter(s, f, 1, NULL);
    }
}

/* ---- A part, and the whole ---- */

static void check_part(const struct om_snapshot *s)
{
    check_traces(s);
    check_modules(s);
    check_heap(s);
    check_timeline(s);
    for (int k = 0; k < NKEYS; k++) {
        check_statistics(s, k);
        check_compare(s, k);
    }
    if (om_snapshot_statistics(s, OM_KEY_TRACEBACK, true,
                               &(struct om_statistic *){ NULL },
                               &(size_t){ 0 }) != -EINVAL)
        fail("statistics: cumulative by traceback, not -EINVAL");
    check_filters(s);
}

/* The memory s and its parts hold (before any statistics). */
static size_t footprint(struct om_snapshot *s)
{
    struct om_snapshot *part[OMI_SNAPSHOT_PARTS];
    size_t n = omi_snapshot_parts(s, part), bytes = 0;

    for (size_t i = 0; i < n; i++) {
        const struct om_snapshot *p = part[i];

        bytes += omi_region_touched(&p->mem);
        bytes += omi_os_page_round(p->traces_cap * sizeof(p->traces[0]));
        bytes += omi_os_page_round(p->tracebacks_cap *
                                   sizeof(p->tracebacks[0]));
        if (p->strings.slots)
            bytes += (p->strings.mask + 1) * sizeof(p->strings.slots[0]);
    }
    return bytes;
}

/* ---- The round trip ---- */

static bool same_info(const struct om_snapshot *a, const struct om_snapshot *b)
{
    struct om_snapshot_info x, y;

    om_snapshot_get_info(a, &x);
    om_snapshot_get_info(b, &y);
    return x.ntraces == y.ntraces && x.traceback_limit == y.traceback_limit &&
           x.sample_mean == y.sample_mean && x.lost == y.lost &&
           x.current == y.current && x.peak == y.peak &&
           x.trace_memory == y.trace_memory && x.time_ms == y.time_ms;
}

static bool same_modules(const struct om_snapshot *a,
                         const struct om_snapshot *b)
{
    struct om_module x, y;

    if (om_snapshot_module_count(a) != om_snapshot_module_count(b))
        return false;
    for (size_t i = 0; i < om_snapshot_module_count(a); i++) {
        om_snapshot_module(a, i, &x);
        om_snapshot_module(b, i, &y);
        if (!same_str(x.path, y.path) || x.start != y.start ||
            x.end != y.end || x.bias != y.bias ||
            x.build_id_size != y.build_id_size ||
            memcmp(x.build_id, y.build_id, x.build_id_size) != 0)
            return false;
    }
    return true;
}

static bool same_arena(const struct om_heap_arena *a,
                       const struct om_heap_arena *b)
{
    return a->address == b->address && a->npages == b->npages &&
           (!a->npages ||
            memcmp(a->pages, b->pages, a->npages * sizeof(*a->pages)) == 0);
}

static bool same_heap(const struct om_heap_map *a, const struct om_heap_map *b)
{
    if (!a || !b)
        return a == b;
    if (a->page_size != b->page_size || a->narenas != b->narenas ||
        a->nlarge != b->nlarge ||
        (a->nlarge &&
         memcmp(a->large, b->large, a->nlarge * sizeof(*a->large)) != 0))
        return false;
    for (size_t i = 0; i < a->narenas; i++)
        if (!same_arena(&a->arenas[i], &b->arenas[i]))
            return false;
    return true;
}

static bool same_timeline(const struct om_snapshot *a,
                          const struct om_snapshot *b)
{
    const struct om_time_point *x, *y;
    size_t n = om_snapshot_timeline(a, &x);

    return n == om_snapshot_timeline(b, &y) &&
           (!n || memcmp(x, y, n * sizeof(*x)) == 0);
}

/* statistics(a) and statistics(b) are equal, group by group, to the
 * bit (their traces are the same, in the same order). */
static bool same_statistics(const struct om_snapshot *a,
                            const struct om_snapshot *b, int k)
{
    struct om_statistic *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;

    if (om_snapshot_statistics(a, keys[k].key, keys[k].cumulative, &x,
                               &nx) != 0 ||
        om_snapshot_statistics(b, keys[k].key, keys[k].cumulative, &y,
                               &ny) != 0)
        fail("statistics failed");
    if (nx != ny)
        return false;
    for (size_t i = 0; i < nx; i++)
        if (x[i].size != y[i].size || x[i].count != y[i].count ||
            memcmp(&x[i].size_error, &y[i].size_error, sizeof(double)) ||
            memcmp(&x[i].count_error, &y[i].count_error, sizeof(double)) ||
            !same_tb(x[i].traceback, y[i].traceback))
            return false;
    return true;
}

static void check_same(const struct om_snapshot *a,
                       const struct om_snapshot *b)
{
    if (!a || !b) {
        if (a != b)
            fail("round trip: a part lost or gained");
        return;
    }
    if (!same_info(a, b) || !same_modules(a, b) ||
        !same_heap(om_snapshot_heap(a), om_snapshot_heap(b)) ||
        !same_timeline(a, b))
        fail("round trip: info, modules, heap or timeline changed");
    for (size_t i = 0; i < om_snapshot_count(a); i++)
        if (!same_trace(a, i, b, i))
            fail("round trip: a trace changed");
    for (int k = 0; k < NKEYS; k++)
        if (!same_statistics(a, b, k))
            fail("round trip: statistics changed");
}

/* Dump s to the second memfd and load it back: the same, part by part. */
static void check_round_trip(const struct om_snapshot *s)
{
    struct om_snapshot *r;

    if (om_snapshot_dump(s, out_path) != 0)
        fail("dump failed");
    r = load(out_path);
    if (!r)
        fail("round trip: the dump does not load");
    check_same(s, r);
    check_same(om_snapshot_peak(s), om_snapshot_peak(r));
    check_same(om_snapshot_allocations(s), om_snapshot_allocations(r));
    om_snapshot_free(r);
}

/* ---- Out of memory ---- */

/* Fail the nth mapping from now (0: none). */
static void inject(long nth)
{
    om_debug_fail_maps(nth, false);
    injecting = nth > 0;
}

/* Load again with the nth mapping failing: a snapshot, or ENOMEM; then
 * statistics and the dump of s, each with a mapping failing: their
 * result or -ENOMEM, and s as good as before (a failure loses
 * nothing). */
static void check_out_of_memory(const struct om_snapshot *s, long nth)
{
    struct om_statistic *st;
    struct om_snapshot *r;
    size_t n;
    int err;

    inject(nth);
    r = load(in_path);
    inject(0);
    if (!r && errno != ENOMEM)
        fail("load with a mapping failing: not ENOMEM");
    om_snapshot_free(r);
    inject(1 + nth % 4);
    err = om_snapshot_statistics(s, OM_KEY_LINENO, true, &st, &n);
    inject(0);
    if (err != 0 && err != -ENOMEM)
        fail("statistics with a mapping failing: not 0 or -ENOMEM");
    check_statistics(s, 3);
    inject(1 + nth % 3);
    err = om_snapshot_dump(s, out_path);
    inject(0);
    if (err != 0 && err != -ENOMEM)
        fail("dump with a mapping failing: not 0 or -ENOMEM");
    check_round_trip(s);
}

static uint64_t input_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    return h;
}

/* ---- The target ---- */

static void check_snapshot(struct om_snapshot *s, const uint8_t *data,
                           size_t size)
{
    uint64_t h = input_hash(data, size);

    if (footprint(s) > BYTES_PER_INPUT_BYTE * size + BYTES_FIXED)
        fail("load: more memory than the file's size allows");
    check_part(s);
    if (om_snapshot_peak(s))
        check_part(om_snapshot_peak(s));
    if (om_snapshot_allocations(s))
        check_part(om_snapshot_allocations(s));
    check_round_trip(s);
    if (h % 4 == 0)
        check_out_of_memory(s, 1 + (long)(h / 4 % FAULT_MAPS));
}

/*
 * ASan builds: the __tls_get_addr interceptor of GCC 12's and clang 14's
 * runtimes takes a dynamic TLS block that malloc happened to place 16
 * bytes into a page for an old glibc's (libdw's and libelf's, loaded for
 * a raw capture), and LeakSanitizer's tracer then crashes at exit
 * ("Tracer caught signal 11"; fixed in GCC 14 and LLVM 17).  Not
 * intercepted, that memory is not scanned: no leak is hidden by it, since
 * nothing of objmem's or of this file's lives in TLS.
 */
__attribute__((visibility("default")))     /* base.h hides the rest */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "intercept_tls_get_addr=0";
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    omi_snapshot_fuzzing = true;
    in_fd = new_memfd("capture", in_path, sizeof(in_path));
    out_fd = new_memfd("capture-dump", out_path, sizeof(out_path));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct om_stats before, after;
    struct om_snapshot *s;

    if (in_fd < 0)
        LLVMFuzzerInitialize(NULL, NULL);
    if (om_stats_get(&before) != 0)
        fail("om_stats_get");
    put_file(in_fd, data, size);
    s = load(in_path);
    if (s)
        check_snapshot(s, data, size);
    om_snapshot_free(s);
    if (om_check() != 0)
        fail("om_check after the input");
    if (om_stats_get(&after) != 0 ||
        after.blocks_in_use != before.blocks_in_use ||
        after.bytes_mapped != before.bytes_mapped)
        fail("objmem's blocks or mapped bytes changed over the input");
    return 0;
}
