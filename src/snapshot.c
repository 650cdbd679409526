/*
 * snapshot.c - X (cross-cutting): snapshots of the traces, tracemalloc's
 * Snapshot in C: statistics grouped by file, by line or by traceback, the
 * comparison of two snapshots, filters, and the capture file (dump and
 * load).  Like trace.c it never allocates through objmem: its memory
 * comes from the OS, in a region or in mappings of its own.
 *
 * A snapshot is built through the builder (omi_snapshot_new, _intern,
 * _add_traceback, _add_trace) by trace.c, by the filter and by the
 * loader; after that only statistics and compare write into it, to keep
 * their results.  So even the const calls are not thread-safe: one
 * thread at a time uses a snapshot.
 *
 *   struct om_snapshot            mem, the region: the struct itself, the
 *   +--------------+              interned strings, the tracebacks, and
 *   | mem          |------------> the results of statistics and compare
 *   | strings      |--+           (arrays and the key tracebacks they
 *   | traces       |-+|           point to)
 *   | tracebacks   |+||
 *   +--------------+|||           mappings of their own, grown by
 *                   ||+---------> doubling (mremap: the big arrays waste
 *                   |+----------> nothing in the region, and free unmaps
 *                   +-----------> them): the string set's slots,
 *                                 traces[ntraces], tracebacks[ntracebacks]
 *
 * The string set is open addressing with linear probing, keyed by a
 * hash of the bytes taken eight at a time (str_hash); growing maps a
 * table twice the size, moves the pointers and unmaps the old one.
 * Strings live in the region and are never freed before the snapshot.
 *
 * Statistics group in two passes: the traces' sums per traceback (so the
 * per-trace work is four additions), then each used traceback's sums go
 * to its group(s), found through a hash map keyed by the group's
 * traceback: 1 frame (filename, NULL, 0, NULL) for OM_KEY_FILENAME, the
 * most recent frame (all four fields) for OM_KEY_LINENO, the whole
 * traceback (frames and total_nframe) for OM_KEY_TRACEBACK.  A traceback
 * with no frame counts as one frame ("<unknown>", 0).  Keys compare by
 * pointer: their strings are interned in the snapshot the results go to
 * (compare interns the older snapshot's into the newer one).  Results
 * sort biggest first, ties broken by the traceback as tracemalloc orders
 * them (frames oldest first), so the order never depends on hashing.
 *
 * Cumulative mode adds a traceback's sums to the group of every one of
 * its frames, repeats included: a recursive frame counts once per
 * occurrence, as Lib/tracemalloc.py's _group_by does (it iterates the
 * frames, with no set).  A sampled trace of weight w = 1/p stands for w
 * blocks of its size; the standard error of a sum is the square root of
 * sum(size^2 * (1 - p) / p^2), that is of sum(size^2 * w * (w - 1)), the
 * unbiased estimate of the Horvitz-Thompson variance.
 *
 * Filters are Lib/tracemalloc.py's Filter and DomainFilter (pattern
 * NULL), in its words: _match_traceback, _match, _filter_trace.  Patterns
 * are matched by glob_match, written here since libc's fnmatch may
 * allocate; a trailing ".pyc" reads ".py" in patterns and filenames
 * both.  What a filter says of a traceback does not depend on the trace,
 * so it is worked out once per traceback.  The result copies the
 * tracebacks its traces use, strings interned anew.
 *
 * The capture file (om_snapshot_dump, om_snapshot_load), version 1.
 * Integers little-endian, offsets in bytes:
 *
 *   0   "OMTRACE\0"     magic
 *   8   u32 version 1 | u32 0
 *   16  sections: | u32 tag | u32 0 | u64 length | payload[length] |
 *       ...
 *   end-24  END:  | "END\0" | u32 0 | u64 8 | u64 FNV-1a of bytes
 *                                             [0, end-24) |
 *
 *   META  i32 traceback_limit, u32 0, then u64 sample_mean, lost,
 *         current, peak, ntracebacks, ntraces, trace_memory (64 bytes;
 *         56, without trace_memory, is read too; a longer META is a later
 *         version's: the rest is skipped)
 *   STRS  the strings, each NUL-terminated, back to back
 *   TBKS  ntracebacks records: u32 nframe, u32 total_nframe (at least
 *         nframe: the frames the stack had), then nframe
 *         frames of 24 bytes: u32 filename (the offset in STRS of a
 *         string's first byte), u32 function (offset, or 0xffffffff:
 *         none), u32 lineno, u32 0, u64 pc
 *   TRCS  ntraces records of 24 bytes: u64 size, f64 weight,
 *         u32 traceback (index in TBKS), u32 domain
 *   MAPS  (optional, never inside PEAK: the peak's are the same) records
 *         of 64 bytes, one per module the process had loaded, by
 *         address, disjoint: u32 path (offset in STRS, as a frame's; at
 *         most PATH_MAX bytes), u32 build ID
 *         length (at most 32), u64 load bias, u64 lo, u64 hi (its
 *         segments span [lo, hi)), 32 bytes of build ID, zero-padded
 *   MODS  the same, in a raw capture; a file has one of the two
 *   ADDR  (optional) ntraces records of 16 bytes: u64 address, u64 time
 *   VARS  (optional, not with ADDR) the records are sums, one per
 *         traceback and domain: ntraces records of 16 bytes, f64 the
 *         variance of the bytes, f64 that of the count
 *   HEAP  (optional) the heap map
 *   TIME  (optional, never nested) the timeline: records of 24 bytes,
 *         u64 time_ms (strictly increasing), u64 traced, u64 rss
 *   PEAK  (optional, not nested) the snapshot at the peak, a capture
 *   ALOC  (optional, not nested) the allocations of the run, a capture
 *
 * A raw capture (capture.c's, unless OBJMEM_TRACE_SYMBOLS) has C frames
 * that give only their module and return address: the loader names them
 * after decoding (decode_modules: symbols.c's OFFLINE session, each pc
 * asked once), the nested captures' too, and leaves out operator new's
 * frames as a snapshot taken in the process does.  What it returns is
 * named, with the module table (s and its parts), and its dump writes
 * MAPS.
 *
 * Each of the four is there once, in any order; other tags are skipped
 * (later versions add sections: a snapshot at the peak, a heap map), and
 * walk_sections hands each section to a handler, whatever reads the
 * file.  The loader checks the frame first (magic, version, END last,
 * checksum), then every count, offset and index, since a crafted file
 * can carry a right checksum.  An offset into STRS must be a string's
 * start, and the loader interns the string at an offset once (a table
 * of 8 bytes per byte of STRS, while it loads), so what it maps and
 * hashes grows as the file does: a string named at each of its bytes,
 * or a long one named by every frame, cost the square (a 1.6 MB file
 * took 44 s and 9.6 GB).  Dump writes STRS with only the strings
 * that frames name, to NAME.tmp renamed to NAME when complete; its
 * buffers are mapped, not on the stack, since capture.c dumps from
 * inside the allocator.
 *
 * Invariants (snapshot_is_sound, an OM_ASSERT_EXPENSIVE when filter and
 * load finish and when statistics, compare and dump start):
 *   1. strings.used is the number of non-NULL slots, at most half of
 *      them; each string sits in the probe run of its hash, and no two
 *      are equal.
 *   2. Every frame's filename, and its function when not NULL, is a
 *      string of the set (interned: equal strings, one pointer).
 *   3. ntraces <= traces_cap and ntracebacks <= tracebacks_cap; each
 *      array is NULL with a capacity of 0, or a mapping of
 *      omi_os_page_round(cap * element) bytes.
 *   4. Every trace names a traceback below ntracebacks, and its weight is
 *      at least 1 (1: traced exactly); a sum's variances are finite and
 *      not negative.
 *   5. What statistics and compare return lives in mem, until
 *      om_snapshot_free.
 *   6. Every module's path is a string of the set, its range is not
 *      empty and its build ID fits; the modules are sorted by address
 *      and disjoint (om_snapshot_find_module's binary search).
 *   7. The timeline is NULL exactly when it has no point, and its times
 *      strictly increase.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os.h"
#include "trace.h"

#define UNKNOWN "<unknown>"         /* a frame with no file, as tracemalloc */
#define STRTAB_MIN 512              /* slots of a first string set: a page */
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define NONE SIZE_MAX               /* no group / no index */

/* The capture file: see the essay. */
#define MAGIC "OMTRACE"             /* with its NUL: 8 bytes */
#define VERSION 1
#define TAG(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | \
     (uint32_t)(d) << 24)
#define TAG_META TAG('M', 'E', 'T', 'A')
#define TAG_STRINGS TAG('S', 'T', 'R', 'S')
#define TAG_TRACEBACKS TAG('T', 'B', 'K', 'S')
#define TAG_TRACES TAG('T', 'R', 'C', 'S')
#define TAG_ADDRS TAG('A', 'D', 'D', 'R')
#define TAG_HEAP TAG('H', 'E', 'A', 'P')
#define TAG_PEAK TAG('P', 'E', 'A', 'K')
#define TAG_ALLOCS TAG('A', 'L', 'O', 'C')
#define TAG_VARS TAG('V', 'A', 'R', 'S')
#define TAG_MODS TAG('M', 'O', 'D', 'S')
#define TAG_MAPS TAG('M', 'A', 'P', 'S')
#define TAG_TIME TAG('T', 'I', 'M', 'E')
#define TAG_END TAG('E', 'N', 'D', 0)
#define HEADER_BYTES 16             /* magic, version, 0 */
#define SECTION_BYTES 16            /* tag, 0, length */
#define END_BYTES (SECTION_BYTES + 8)
#define META_BYTES 72            /* written; from 56 up is read */
#define META_MIN 56
#define ADDR_BYTES 16               /* address, time */
#define VAR_BYTES 16                /* a sum's two variances */
#define HEAP_HEAD_BYTES 24          /* page size, arenas, large blocks */
#define ARENA_BYTES 16              /* address, npages, 0 */
#define PAGE_BYTES 8
#define LARGE_BYTES 16
#define POINT_BYTES 24              /* time, traced, rss */
#define TB_BYTES 8                  /* nframe, total_nframe */
#define FRAME_BYTES 24
#define TRACE_BYTES 24
#define MOD_BYTES (32 + OMI_BUILD_ID_MAX)   /* path .. hi, the build ID */
#define NO_STRING UINT32_MAX        /* a frame with no function */
#define MAX_FRAMES 65535            /* per traceback, tracemalloc's limit */
#define WRITE_BUF 16384
#define ERROR_BYTES 200

static const struct om_frame unknown_frame = { UNKNOWN, NULL, 0, NULL };

static OM_TLS char load_error[ERROR_BYTES];
OM_TLS size_t omi_snapshot_string_bytes;

/* ---- Memory ---- */

/* Room for n elements of size bytes in r; NULL + ENOMEM on overflow. */
static void *alloc_array(struct omi_region *r, size_t n, size_t size)
{
    if (n && size > SIZE_MAX / 2 / n) {
        errno = ENOMEM;
        return NULL;
    }
    return omi_region_alloc(r, n * size);
}

/*
 * The mapped array p of *cap elements of elem bytes, doubled (or first
 * mapped): the new address, *cap updated; NULL when out of memory, the
 * array untouched.  elem must be below the page size.
 */
static void *grow_array(void *p, size_t *cap, size_t elem)
{
    size_t old = omi_os_page_round(*cap * elem);
    size_t bytes = old ? 2 * old : omi_os_page_size();
    void *q;

    if (bytes < old)
        return NULL;
    q = old ? omi_os_remap(p, old, bytes) : omi_os_map(bytes, 0);
    if (q)
        *cap = bytes / elem;
    return q;
}

static void unmap_array(void *p, size_t cap, size_t elem)
{
    if (p)
        omi_os_unmap(p, omi_os_page_round(cap * elem));
}

/*
 * The one place const goes: statistics and compare keep their results in
 * the snapshot they read (invariant 5), which the public API shows as
 * const because its traces never change.
 */
static struct om_snapshot *writable(const struct om_snapshot *s)
{
    return (struct om_snapshot *)(uintptr_t)s;
}

/* ---- Strings ---- */

/* FNV-1a, 64 bits: the capture's checksum. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

/* A string's hash in the table, eight bytes a step: the byte-wise FNV-1a
 * it replaced, a dependent multiply a byte, was a quarter of a Python
 * capture written at exit (the table is asked for every frame's file and
 * function three times: interned, marked, written). */
static uint64_t str_hash(const char *str)
{
    size_t n = strlen(str);
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;

    omi_snapshot_string_bytes += n;
    for (; n >= 8; str += 8, n -= 8) {
        memcpy(&w, str, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, str, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ h >> 29;
}

/* The slot of t that holds str, or the empty one where it would go. */
static size_t strtab_slot(const struct omi_strtab *t, const char *str)
{
    uint64_t h = str_hash(str);
    size_t i = (size_t)(h ^ (h >> 32)) & t->mask;

    while (t->slots[i] && strcmp(t->slots[i], str) != 0)
        i = (i + 1) & t->mask;
    return i;
}

static size_t strtab_bytes(const struct omi_strtab *t)
{
    return (t->mask + 1) * sizeof(t->slots[0]);
}

/* Map a table twice the size (or a first one) and move the strings into
 * it: false when out of memory, t untouched. */
static bool strtab_grow(struct omi_strtab *t)
{
    size_t cap = t->slots ? 2 * (t->mask + 1) : STRTAB_MIN;
    struct omi_strtab bigger = { NULL, cap - 1, t->used };

    bigger.slots = omi_os_map(cap * sizeof(bigger.slots[0]), 0);
    if (!bigger.slots)
        return false;
    for (size_t i = 0; t->slots && i <= t->mask; i++)
        if (t->slots[i])
            bigger.slots[strtab_slot(&bigger, t->slots[i])] = t->slots[i];
    if (t->slots)
        omi_os_unmap(t->slots, strtab_bytes(t));
    *t = bigger;
    return true;
}

const char *omi_snapshot_intern(struct om_snapshot *s, const char *str)
{
    struct omi_strtab *t = &s->strings;
    size_t i, len;
    char *copy;

    if (!str)
        return NULL;
    if (t->slots && t->slots[i = strtab_slot(t, str)])
        return t->slots[i];
    if ((t->used + 1) * 2 > t->mask + 1 && !strtab_grow(t)) {
        errno = ENOMEM;
        return NULL;
    }
    len = strlen(str);
    copy = omi_region_alloc(&s->mem, len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, str, len + 1);
    t->slots[strtab_slot(t, copy)] = copy;
    t->used++;
    return copy;
}

/*
 * A memo keyed by a string's address (or any pointer): what a string of a
 * snapshot has been found to be, its copy in another snapshot or a
 * filter's verdict, worked out once a string rather than once a frame.
 * Strings are interned, so an address stands for its bytes; without the
 * memo, n frames naming one string of L bytes cost n * L (a 1.6 MB
 * capture took 9 s to filter).  Room for nkeys keys, set when made: the
 * slots are at least twice as many, so probing ends.
 */
struct memo {
    const void **keys;          /* per slot: a key, or NULL */
    uintptr_t *vals;            /* its value; 0: not worked out yet */
    size_t mask;
};

/* A memo for nkeys keys in r: false when out of memory. */
static bool memo_init(struct memo *m, struct omi_region *r, size_t nkeys)
{
    size_t slots = 2;

    while (slots < 2 * nkeys + 2)
        slots *= 2;
    m->keys = alloc_array(r, slots, sizeof(m->keys[0]));
    m->vals = alloc_array(r, slots, sizeof(m->vals[0]));
    m->mask = slots - 1;
    return m->keys && m->vals;
}

/* The slot of m that holds key, or the empty one where it would go. */
static size_t memo_slot(const struct memo *m, const void *key)
{
    uint64_t h = (uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ull;
    size_t i = (size_t)(h >> 29) & m->mask;

    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & m->mask;
    return i;
}

/* key's value in m, 0 when new (then key has a slot: set it). */
static uintptr_t *memo_val(struct memo *m, const void *key)
{
    size_t i = memo_slot(m, key);

    m->keys[i] = key;
    return &m->vals[i];
}

/* key's value in m, 0 when it has none. */
static uintptr_t memo_get(const struct memo *m, const void *key)
{
    size_t i = memo_slot(m, key);

    return m->keys[i] ? m->vals[i] : 0;
}

/* str (a string of another snapshot, or NULL) interned in s, once a
 * string when m is not NULL: NULL + ENOMEM when out of memory. */
static const char *intern_memo(struct om_snapshot *s, struct memo *m,
                               const char *str)
{
    uintptr_t *v;

    if (!m || !str)
        return omi_snapshot_intern(s, str);
    v = memo_val(m, str);
    if (!*v)
        *v = (uintptr_t)omi_snapshot_intern(s, str);
    return (const char *)*v;
}

/* ---- The builder ---- */

struct om_snapshot *omi_snapshot_new(int traceback_limit,
                                     uint64_t sample_mean)
{
    struct omi_region mem = { 0 };
    struct om_snapshot *s = omi_region_alloc(&mem, sizeof(*s));

    if (!s)
        return NULL;
    s->mem = mem;           /* the region now owns the struct it holds */
    s->traceback_limit = traceback_limit;
    s->sample_mean = sample_mean;
    return s;
}

/* A traceback of nframe frames (not filled in) in s's region. */
static struct om_traceback *new_traceback(struct om_snapshot *s,
                                          unsigned nframe, unsigned total)
{
    struct om_traceback *tb;

    tb = alloc_array(&s->mem, 1, sizeof(*tb) + nframe * sizeof(tb->frames[0]));
    if (tb) {
        tb->nframe = nframe;
        tb->total_nframe = total;
    }
    return tb;
}

/* *to = f with its strings interned in s (no file: "<unknown>"), once
 * a string with a memo m; false when out of memory. */
static bool copy_frame(struct om_snapshot *s, struct memo *m,
                       struct om_frame *to, const struct om_frame *f)
{
    to->filename = intern_memo(s, m, f->filename ? f->filename : UNKNOWN);
    to->function = intern_memo(s, m, f->function);
    to->lineno = f->lineno;
    to->pc = f->pc;
    return to->filename && (to->function || !f->function);
}

/* Append tb to s's tracebacks: its index, or -ENOMEM. */
static long append_traceback(struct om_snapshot *s, struct om_traceback *tb)
{
    void *grown;

    if (s->ntracebacks >= UINT32_MAX)
        return -ENOMEM;
    if (s->ntracebacks == s->tracebacks_cap) {
        grown = grow_array(s->tracebacks, &s->tracebacks_cap,
                           sizeof(s->tracebacks[0]));
        if (!grown)
            return -ENOMEM;
        s->tracebacks = grown;
    }
    s->tracebacks[s->ntracebacks] = tb;
    return (long)s->ntracebacks++;
}

/* omi_snapshot_add_traceback, its strings interned through m (NULL:
 * none). */
static long add_traceback(struct om_snapshot *s, struct memo *m,
                          const struct om_frame *frames, unsigned nframe,
                          unsigned total_nframe)
{
    struct om_traceback *tb;

    OM_ASSERT(s && (frames || nframe == 0));
    tb = new_traceback(s, nframe, total_nframe);
    if (!tb)
        return -ENOMEM;
    for (unsigned i = 0; i < nframe; i++)
        if (!copy_frame(s, m, &tb->frames[i], &frames[i]))
            return -ENOMEM;
    return append_traceback(s, tb);
}

long omi_snapshot_add_traceback(struct om_snapshot *s,
                                const struct om_frame *frames,
                                unsigned nframe, unsigned total_nframe)
{
    return add_traceback(s, NULL, frames, nframe, total_nframe);
}

int omi_snapshot_add_record(struct om_snapshot *s,
                            const struct omi_snap_trace *t)
{
    void *grown;

    OM_ASSERT(t->traceback < s->ntracebacks);
    OM_ASSERT(t->weight >= 1.0);
    if (s->ntraces == s->traces_cap) {
        grown = grow_array(s->traces, &s->traces_cap, sizeof(*t));
        if (!grown)
            return -ENOMEM;
        s->traces = grown;
    }
    s->traces[s->ntraces++] = *t;
    return 0;
}

/* s's module table: a copy of from[0..n) (sorted by lo), its paths
 * interned: 0 or -ENOMEM. */
static int copy_modules(struct om_snapshot *s, const struct omi_module *from,
                        size_t n)
{
    struct omi_module *to = n ? omi_region_alloc(&s->mem, n * sizeof(*to))
                              : NULL;

    if (n && !to)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        to[i] = from[i];
        if (!(to[i].path = omi_snapshot_intern(s, from[i].path)))
            return -ENOMEM;
    }
    s->mods = to;
    s->nmods = n;
    return 0;
}

int omi_snapshot_set_modules(struct om_snapshot *s,
                             const struct omi_symbols *sym)
{
    const struct omi_module *from;
    size_t n = omi_symbols_modules(sym, &from);

    return copy_modules(s, from, n);
}

int omi_snapshot_add_trace(struct om_snapshot *s, uint32_t traceback,
                           uint32_t domain, uint64_t size, double weight)
{
    struct omi_snap_trace t = { .size = size, .weight = weight,
                                .traceback = traceback, .domain = domain };

    return omi_snapshot_add_record(s, &t);
}

/* ---- Accessors ---- */

size_t om_snapshot_count(const struct om_snapshot *s)
{
    return s ? s->ntraces : 0;
}

int om_snapshot_trace(const struct om_snapshot *s, size_t i,
                      struct om_trace_info *out)
{
    const struct omi_snap_trace *t;

    if (!s || !out)
        return -EINVAL;
    if (i >= s->ntraces)
        return -ERANGE;
    t = &s->traces[i];
    out->domain = t->domain;
    out->size = (size_t)t->size;
    out->traceback = s->tracebacks[t->traceback];
    out->weight = t->weight;
    out->address = s->sums ? 0 : (uintptr_t)t->addr;
    out->time_ms = s->sums ? 0 : t->time_ms;
    return 0;
}

int om_snapshot_traceback_limit(const struct om_snapshot *s)
{
    return s ? s->traceback_limit : -EINVAL;
}

const struct om_snapshot *om_snapshot_peak(const struct om_snapshot *s)
{
    return s ? s->at_peak : NULL;
}

const struct om_snapshot *om_snapshot_allocations(const struct om_snapshot *s)
{
    return s ? s->allocs : NULL;
}

size_t omi_snapshot_parts(struct om_snapshot *s,
                          struct om_snapshot *out[OMI_SNAPSHOT_PARTS])
{
    size_t n = 0;

    if (s) {
        out[n++] = s;
        if (s->at_peak)
            out[n++] = s->at_peak;
        if (s->allocs)
            out[n++] = s->allocs;
    }
    return n;
}

const struct om_heap_map *om_snapshot_heap(const struct om_snapshot *s)
{
    return s ? s->heap : NULL;
}

size_t om_snapshot_timeline(const struct om_snapshot *s,
                            const struct om_time_point **points)
{
    *points = s ? s->timeline : NULL;
    return s ? s->ntimeline : 0;
}

size_t om_snapshot_module_count(const struct om_snapshot *s)
{
    return s ? s->nmods : 0;
}

int om_snapshot_module(const struct om_snapshot *s, size_t i,
                       struct om_module *out)
{
    const struct omi_module *m;

    if (!s || !out)
        return -EINVAL;
    if (i >= s->nmods)
        return -ERANGE;
    m = &s->mods[i];
    out->path = m->path;
    out->start = (uintptr_t)m->lo;
    out->end = (uintptr_t)m->hi;
    out->bias = (uintptr_t)m->bias;
    out->build_id = m->id;
    out->build_id_size = m->id_len;
    return 0;
}

int om_snapshot_find_module(const struct om_snapshot *s, const void *pc)
{
    size_t lo = 0, hi;

    if (!s)
        return -EINVAL;
    for (hi = s->nmods; lo < hi;) {     /* the first module above pc */
        size_t mid = lo + (hi - lo) / 2;

        if (s->mods[mid].lo <= (uintptr_t)pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || (uintptr_t)pc >= s->mods[lo - 1].hi || lo - 1 > INT_MAX)
        return -ENOENT;
    return (int)(lo - 1);
}

void om_snapshot_get_info(const struct om_snapshot *s,
                          struct om_snapshot_info *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!s)
        return;
    out->ntraces = s->ntraces;
    out->traceback_limit = s->traceback_limit;
    out->sample_mean = (size_t)s->sample_mean;
    out->lost = (size_t)s->lost;
    out->current = (size_t)s->current;
    out->peak = (size_t)s->peak;
    out->trace_memory = (size_t)s->trace_memory;
    out->time_ms = s->time_ms;
}

void om_snapshot_free(struct om_snapshot *s)
{
    struct omi_region mem;

    if (!s)
        return;
    om_snapshot_free(s->at_peak);
    om_snapshot_free(s->allocs);
    unmap_array(s->traces, s->traces_cap, sizeof(s->traces[0]));
    unmap_array(s->tracebacks, s->tracebacks_cap, sizeof(s->tracebacks[0]));
    if (s->strings.slots)
        omi_os_unmap(s->strings.slots, strtab_bytes(&s->strings));
    mem = s->mem;           /* s lives in mem: copy it out first */
    omi_region_release(&mem);
}

/* ---- The checker (invariants 1-4) ---- */

static bool is_interned(const struct omi_strtab *t, const char *str)
{
    return str && t->slots && t->slots[strtab_slot(t, str)] == str;
}

static bool strings_are_sound(const struct omi_strtab *t)
{
    size_t used = 0;

    if (!t->slots)
        return t->used == 0;
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->slots[i])
            continue;
        if (!is_interned(t, t->slots[i]))
            return false;
        used++;
    }
    return used == t->used && 2 * used <= t->mask + 1;
}

static bool traceback_is_sound(const struct om_snapshot *s,
                               const struct om_traceback *tb)
{
    for (unsigned i = 0; i < tb->nframe; i++) {
        const struct om_frame *f = &tb->frames[i];

        if (!is_interned(&s->strings, f->filename))
            return false;
        if (f->function && !is_interned(&s->strings, f->function))
            return false;
    }
    return true;
}

/* A sum's variance: finite and not negative. */
static bool var_is_sound(double v)
{
    return v >= 0 && v <= DBL_MAX;
}

static bool snapshot_is_sound(const struct om_snapshot *s)
{
    if (s->ntraces > s->traces_cap || s->ntracebacks > s->tracebacks_cap)
        return false;
    if (!strings_are_sound(&s->strings))
        return false;
    for (size_t i = 0; i < s->ntracebacks; i++)
        if (!traceback_is_sound(s, s->tracebacks[i]))
            return false;
    for (size_t i = 0; i < s->ntraces; i++)
        if (s->traces[i].traceback >= s->ntracebacks ||
            !(s->traces[i].weight >= 1.0))
            return false;
    for (size_t i = 0; s->sums && i < s->ntraces; i++)
        if (!var_is_sound(s->traces[i].size_var) ||
            !var_is_sound(s->traces[i].count_var))
            return false;
    for (size_t i = 0; i < s->nmods; i++)
        if (!is_interned(&s->strings, s->mods[i].path) ||
            s->mods[i].lo >= s->mods[i].hi ||
            s->mods[i].id_len > OMI_BUILD_ID_MAX ||
            (i > 0 && s->mods[i].lo < s->mods[i - 1].hi))
            return false;
    if (!s->timeline != !s->ntimeline)
        return false;
    for (size_t i = 1; i < s->ntimeline; i++)
        if (s->timeline[i].time_ms <= s->timeline[i - 1].time_ms)
            return false;
    return true;
}

/* ---- Grouping ---- */

/* Sums over a set of traces; sums, so sets merge in any order. */
struct acc {
    double size;                /* sum of size * weight: bytes */
    double count;               /* sum of weight: blocks */
    double size_var;            /* sum of size^2 * weight * (weight - 1) */
    double count_var;           /* sum of weight * (weight - 1) */
};

struct group {
    const struct om_traceback *key;     /* strings interned in dst */
    bool owned;                 /* key is one of dst's own tracebacks */
    size_t other;               /* compare: the other side's group, NONE */
    struct acc acc;
};

/* The groups of src's traces, with keys whose strings are dst's. */
struct grouping {
    const struct om_snapshot *src;
    struct om_snapshot *dst;
    struct omi_region *scratch; /* groups, map, keys not yet in dst */
    enum om_key key;
    bool cumulative;
    struct group *groups;
    size_t n, cap;
    size_t *map;                /* group index + 1 per slot; 0: empty */
    size_t mask;
    struct memo strings;        /* src != dst: src's strings as dst's */
};

/* A key of one frame, on the stack. */
union key1 {
    struct om_traceback tb;
    char room[sizeof(struct om_traceback) + sizeof(struct om_frame)];
};

/* Add a trace, or a sum (sums: its variances are its own). */
static void acc_trace(struct acc *a, const struct omi_snap_trace *t,
                      bool sums)
{
    double size = (double)t->size, w = t->weight, var = w * (w - 1);

    a->size += size * w;
    a->count += w;
    a->size_var += sums ? t->size_var : size * size * var;
    a->count_var += sums ? t->count_var : var;
}

static void acc_add(struct acc *a, const struct acc *b)
{
    a->size += b->size;
    a->count += b->count;
    a->size_var += b->size_var;
    a->count_var += b->count_var;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x9e3779b97f4a7c15ull;
}

static uint64_t key_hash(const struct om_traceback *k)
{
    uint64_t h = mix(k->nframe, k->total_nframe);

    for (unsigned i = 0; i < k->nframe; i++) {
        h = mix(h, (uintptr_t)k->frames[i].filename);
        h = mix(h, (uintptr_t)k->frames[i].function);
        h = mix(h, k->frames[i].lineno);
        h = mix(h, (uintptr_t)k->frames[i].pc);
    }
    return h ^ (h >> 29);
}

/* Keys are equal when their frames' fields are: strings by pointer. */
static bool key_equal(const struct om_traceback *a,
                      const struct om_traceback *b)
{
    if (a->nframe != b->nframe || a->total_nframe != b->total_nframe)
        return false;
    for (unsigned i = 0; i < a->nframe; i++) {
        const struct om_frame *x = &a->frames[i], *y = &b->frames[i];

        if (x->filename != y->filename || x->function != y->function ||
            x->lineno != y->lineno || x->pc != y->pc)
            return false;
    }
    return true;
}

/* The map slot that holds key's group, or the empty one for it. */
static size_t probe(const struct grouping *g, const struct om_traceback *key)
{
    size_t i = (size_t)key_hash(key) & g->mask;

    while (g->map[i] && !key_equal(g->groups[g->map[i] - 1].key, key))
        i = (i + 1) & g->mask;
    return i;
}

static struct om_traceback *copy_key(struct omi_region *r,
                                     const struct om_traceback *key)
{
    size_t bytes = sizeof(*key) + key->nframe * sizeof(key->frames[0]);
    struct om_traceback *copy = omi_region_alloc(r, bytes);

    if (copy)
        memcpy(copy, key, bytes);
    return copy;
}

/* key's group, added when new (owned: key is dst's, else it is copied
 * into the scratch region); NULL when out of memory. */
static struct group *group_of(struct grouping *g,
                              const struct om_traceback *key, bool owned)
{
    size_t i = probe(g, key);
    struct group *grp;

    if (g->map[i])
        return &g->groups[g->map[i] - 1];
    OM_ASSERT(g->n < g->cap);
    grp = &g->groups[g->n];
    grp->key = owned ? key : copy_key(g->scratch, key);
    if (!grp->key)
        return NULL;
    grp->owned = owned;
    grp->other = NONE;
    g->map[i] = ++g->n;
    return grp;
}

/* key's group, or NULL when there is none. */
static struct group *find_group(const struct grouping *g,
                                const struct om_traceback *key)
{
    size_t i;

    if (g->n == 0)
        return NULL;
    i = probe(g, key);
    return g->map[i] ? &g->groups[g->map[i] - 1] : NULL;
}

/* A string of src's as one of dst's; NULL stays NULL, and NULL is also
 * out of memory when str is not. */
static const char *dst_string(struct grouping *g, const char *str)
{
    if (g->src == g->dst && str != unknown_frame.filename)
        return str;
    return intern_memo(g->dst, g->src == g->dst ? NULL : &g->strings, str);
}

/* f as a frame of a key of g's kind, with dst's strings: false when out
 * of memory. */
static bool key_frame(struct grouping *g, const struct om_frame *f,
                      struct om_frame *out)
{
    bool by_file = g->key == OM_KEY_FILENAME;

    out->filename = dst_string(g, f->filename);
    out->function = by_file ? NULL : dst_string(g, f->function);
    out->lineno = by_file ? 0 : f->lineno;
    out->pc = by_file ? NULL : f->pc;
    return out->filename && (out->function || by_file || !f->function);
}

/* Add a to the group of the 1-frame key made of f: 0 or -ENOMEM. */
static int add_by_frame(struct grouping *g, const struct om_frame *f,
                        const struct acc *a)
{
    union key1 k;
    struct group *grp;

    k.tb.nframe = k.tb.total_nframe = 1;
    if (!key_frame(g, f, &k.tb.frames[0]))
        return -ENOMEM;
    grp = group_of(g, &k.tb, false);
    if (!grp)
        return -ENOMEM;
    acc_add(&grp->acc, a);
    return 0;
}

/* Add a to the group of the whole traceback tb: 0 or -ENOMEM. */
static int add_by_traceback(struct grouping *g, const struct om_traceback *tb,
                            const struct acc *a)
{
    struct om_traceback *key;
    struct group *grp;

    if (g->src == g->dst) {
        grp = group_of(g, tb, true);
    } else {
        key = copy_key(g->scratch, tb);
        if (!key)
            return -ENOMEM;
        for (unsigned i = 0; i < tb->nframe; i++)
            if (!key_frame(g, &tb->frames[i], &key->frames[i]))
                return -ENOMEM;
        grp = group_of(g, key, false);
    }
    if (!grp)
        return -ENOMEM;
    acc_add(&grp->acc, a);
    return 0;
}

/* Add a, the sums of tb's traces, to tb's group(s): 0 or -ENOMEM. */
static int add_traceback_sums(struct grouping *g,
                              const struct om_traceback *tb,
                              const struct acc *a)
{
    unsigned n = g->cumulative ? tb->nframe : 1;
    int err = 0;

    if (g->key == OM_KEY_TRACEBACK)
        return add_by_traceback(g, tb, a);
    if (tb->nframe == 0)
        return add_by_frame(g, &unknown_frame, a);
    for (unsigned i = 0; i < n && !err; i++)
        err = add_by_frame(g, &tb->frames[i], a);
    return err;
}

/* The sums of each of src's tracebacks' traces (count 0: unused). */
static struct acc *sum_by_traceback(const struct grouping *g)
{
    const struct om_snapshot *src = g->src;
    struct acc *sums;

    sums = alloc_array(g->scratch, src->ntracebacks, sizeof(*sums));
    if (!sums)
        return NULL;
    for (size_t i = 0; i < src->ntraces; i++)
        acc_trace(&sums[src->traces[i].traceback], &src->traces[i],
                  src->sums);
    return sums;
}

/* Room for every group there can be: one per used traceback, or one per
 * frame of it when cumulative; the map at most half full. */
static int alloc_groups(struct grouping *g, const struct acc *sums)
{
    size_t bound = 0, slots = 2;

    for (size_t i = 0; i < g->src->ntracebacks; i++) {
        unsigned nframe = g->src->tracebacks[i]->nframe;

        if (sums[i].count > 0)
            bound += g->cumulative && nframe > 1 ? nframe : 1;
    }
    while (slots < 2 * bound)
        slots *= 2;
    g->groups = alloc_array(g->scratch, bound, sizeof(g->groups[0]));
    g->map = alloc_array(g->scratch, slots, sizeof(g->map[0]));
    g->cap = bound;
    g->mask = slots - 1;
    return g->groups && g->map ? 0 : -ENOMEM;
}

static void grouping_init(struct grouping *g, const struct om_snapshot *src,
                          const struct om_snapshot *dst,
                          struct omi_region *scratch, enum om_key key,
                          bool cumulative)
{
    memset(g, 0, sizeof(*g));
    g->src = src;
    g->dst = writable(dst);
    g->scratch = scratch;
    g->key = key;
    g->cumulative = cumulative;
}

/* Group g->src's traces: 0 or -ENOMEM. */
static int group_traces(struct grouping *g)
{
    struct acc *sums;
    int err = 0;

    if (g->src->ntraces == 0)
        return 0;
    sums = sum_by_traceback(g);
    if (!sums || alloc_groups(g, sums) != 0)
        return -ENOMEM;
    /* src's strings and "<unknown>" */
    if (g->src != g->dst &&
        !memo_init(&g->strings, g->scratch, g->src->strings.used + 1))
        return -ENOMEM;
    for (size_t i = 0; i < g->src->ntracebacks && !err; i++)
        if (sums[i].count > 0)
            err = add_traceback_sums(g, g->src->tracebacks[i], &sums[i]);
    return err;
}

/* ---- Sorting ---- */

typedef int (*order_fn)(const void *a, const void *b);

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

/* NULL before any string. */
static int cmp_str(const char *a, const char *b)
{
    if (a == b)
        return 0;
    if (!a || !b)
        return a ? 1 : -1;
    return strcmp(a, b);
}

static int cmp_frame(const struct om_frame *a, const struct om_frame *b)
{
    int c = cmp_str(a->filename, b->filename);

    if (!c)
        c = cmp_u64(a->lineno, b->lineno);
    if (!c)
        c = cmp_str(a->function, b->function);
    return c ? c : cmp_u64((uintptr_t)a->pc, (uintptr_t)b->pc);
}

/* tracemalloc's order: frames compared oldest first, a traceback before
 * one that extends it; then total_nframe. */
static int cmp_traceback(const struct om_traceback *a,
                         const struct om_traceback *b)
{
    unsigned n = a->nframe < b->nframe ? a->nframe : b->nframe;
    int c = 0;

    for (unsigned i = 1; i <= n && !c; i++)
        c = cmp_frame(&a->frames[a->nframe - i], &b->frames[b->nframe - i]);
    if (!c)
        c = cmp_u64(a->nframe, b->nframe);
    return c ? c : cmp_u64(a->total_nframe, b->total_nframe);
}

static uint64_t magnitude(ptrdiff_t d)
{
    return d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
}

/* Biggest first: (size, count, traceback) descending. */
static int statistic_order(const void *pa, const void *pb)
{
    const struct om_statistic *a = pa, *b = pb;
    int c = cmp_u64(b->size, a->size);

    if (!c)
        c = cmp_u64(b->count, a->count);
    return c ? c : cmp_traceback(b->traceback, a->traceback);
}

/* (|size_diff|, size, |count_diff|, count, traceback) descending. */
static int diff_order(const void *pa, const void *pb)
{
    const struct om_statistic_diff *a = pa, *b = pb;
    int c = cmp_u64(magnitude(b->size_diff), magnitude(a->size_diff));

    if (!c)
        c = cmp_u64(b->size, a->size);
    if (!c)
        c = cmp_u64(magnitude(b->count_diff), magnitude(a->count_diff));
    if (!c)
        c = cmp_u64(b->count, a->count);
    return c ? c : cmp_traceback(b->traceback, a->traceback);
}

static void swap_bytes(char *a, char *b, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        char t = a[i];

        a[i] = b[i];
        b[i] = t;
    }
}

/* Move base[root] down the heap base[0..n) until both children go before
 * it in order. */
static void sift_down(char *base, size_t size, size_t root, size_t n,
                      order_fn order)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n &&
            order(base + child * size, base + (child + 1) * size) < 0)
            child++;
        if (order(base + root * size, base + child * size) >= 0)
            return;
        swap_bytes(base + root * size, base + child * size, size);
    }
}

/* Heapsort: no memory at all (glibc's qsort may call malloc). */
static void sort(void *base, size_t n, size_t size, order_fn order)
{
    char *b = base;

    for (size_t i = n / 2; i-- > 0;)
        sift_down(b, size, i, n, order);
    for (size_t end = n; end-- > 1;) {
        swap_bytes(b, b + end * size, size);
        sift_down(b, size, 0, end, order);
    }
}

/* ---- Statistics and compare ---- */

/* √x without libm: halve the exponent for a guess, then Newton. */
static double root(double x)
{
    uint64_t bits;
    double r;

    if (!(x > 0) || x > DBL_MAX)
        return x > 0 ? x : 0;
    memcpy(&bits, &x, sizeof(bits));
    bits = (bits >> 1) + ((uint64_t)0x3ff << 51);
    memcpy(&r, &bits, sizeof(r));
    for (int i = 0; i < 64; i++) {
        double next = 0.5 * (r + x / r);

        if (next == r)
            break;
        r = next;
    }
    return r;
}

/* A sum of weighted sizes, rounded to the nearest whole.  From 2^52 up a
 * double holds only whole numbers, and x + 0.5 would round to even: an
 * odd sum would come out one more (a capture's sizes are anything). */
static size_t round_sum(double x)
{
    if (!(x > 0))
        return 0;
    if (x >= (double)SIZE_MAX)
        return SIZE_MAX;
    return x >= 4503599627370496.0 ? (size_t)x : (size_t)(x + 0.5);
}

static int check_query(const struct om_snapshot *s, enum om_key key,
                       bool cumulative, const void *out, const size_t *n)
{
    if (!s || !out || !n || (unsigned)key > OM_KEY_TRACEBACK)
        return -EINVAL;
    return cumulative && key == OM_KEY_TRACEBACK ? -EINVAL : 0;
}

/* grp's key as a traceback of dst: its own, or a copy in its region. */
static const struct om_traceback *result_key(struct om_snapshot *dst,
                                             const struct group *grp)
{
    return grp->owned ? grp->key : copy_key(&dst->mem, grp->key);
}

static bool fill_statistic(struct om_snapshot *dst, struct om_statistic *st,
                           const struct group *grp)
{
    st->traceback = result_key(dst, grp);
    st->size = round_sum(grp->acc.size);
    st->count = round_sum(grp->acc.count);
    /* An exact snapshot has no error, whatever its weights (the one at
     * the peak keeps a record per traceback, weighing its blocks). */
    st->size_error = dst->sample_mean ? root(grp->acc.size_var) : 0;
    st->count_error = dst->sample_mean ? root(grp->acc.count_var) : 0;
    return st->traceback != NULL;
}

/* The sorted statistics of g's groups, in dst's region: 0 or -ENOMEM. */
static int make_statistics(const struct grouping *g,
                           struct om_statistic **out, size_t *n)
{
    struct om_statistic *st;

    st = alloc_array(&g->dst->mem, g->n, sizeof(*st));
    if (!st)
        return -ENOMEM;
    for (size_t i = 0; i < g->n; i++)
        if (!fill_statistic(g->dst, &st[i], &g->groups[i]))
            return -ENOMEM;
    sort(st, g->n, sizeof(*st), statistic_order);
    *out = st;
    *n = g->n;
    return 0;
}

int om_snapshot_statistics(const struct om_snapshot *s, enum om_key key,
                           bool cumulative, struct om_statistic **out,
                           size_t *n)
{
    struct omi_region scratch = { 0 };
    struct grouping g;
    int err = check_query(s, key, cumulative, out, n);

    if (err)
        return err;
    OM_ASSERT_EXPENSIVE(snapshot_is_sound(s));
    *out = NULL;
    *n = 0;
    if (s->ntraces == 0)
        return 0;
    grouping_init(&g, s, s, &scratch, key, cumulative);
    err = group_traces(&g);
    if (!err)
        err = make_statistics(&g, out, n);
    omi_region_release(&scratch);
    return err;
}

/* a - b, saturated to [-PTRDIFF_MAX, PTRDIFF_MAX]: the sums of a loaded
 * capture may be anything up to SIZE_MAX. */
static ptrdiff_t size_diff(size_t a, size_t b)
{
    size_t d = a >= b ? a - b : b - a;

    if (d > PTRDIFF_MAX)
        d = PTRDIFF_MAX;
    return a >= b ? (ptrdiff_t)d : -(ptrdiff_t)d;
}

/* *d for the group grp, whose sums are now (NULL: only in before) and
 * before (NULL: only in now); false when out of memory. */
static bool fill_diff(struct om_snapshot *dst, struct om_statistic_diff *d,
                      const struct group *grp, const struct acc *now,
                      const struct acc *before)
{
    size_t size_before = before ? round_sum(before->size) : 0;
    size_t count_before = before ? round_sum(before->count) : 0;

    d->traceback = result_key(dst, grp);
    d->size = now ? round_sum(now->size) : 0;
    d->count = now ? round_sum(now->count) : 0;
    d->size_diff = size_diff(d->size, size_before);
    d->count_diff = size_diff(d->count, count_before);
    return d->traceback != NULL;
}

/* Pair each of before's groups with now's same key; the count of the
 * groups only in before. */
static size_t match_groups(struct grouping *now, struct grouping *before)
{
    size_t gone = 0;

    for (size_t i = 0; i < before->n; i++) {
        struct group *match = find_group(now, before->groups[i].key);

        if (match) {
            match->other = i;
            before->groups[i].other = (size_t)(match - now->groups);
        } else {
            gone++;
        }
    }
    return gone;
}

/* Fill d[] with now's groups, then before's unmatched: false on ENOMEM. */
static bool fill_diffs(const struct grouping *now,
                       const struct grouping *before,
                       struct om_statistic_diff *d)
{
    struct om_snapshot *dst = now->dst;

    for (size_t i = 0; i < now->n; i++) {
        const struct group *grp = &now->groups[i];
        const struct acc *old = grp->other == NONE
                                    ? NULL : &before->groups[grp->other].acc;

        if (!fill_diff(dst, d++, grp, &grp->acc, old))
            return false;
    }
    for (size_t i = 0; i < before->n; i++) {
        const struct group *grp = &before->groups[i];

        if (grp->other == NONE && !fill_diff(dst, d++, grp, NULL, &grp->acc))
            return false;
    }
    return true;
}

static int make_diffs(struct grouping *now, struct grouping *before,
                      struct om_statistic_diff **out, size_t *n)
{
    size_t total = now->n + match_groups(now, before);
    struct om_statistic_diff *d;

    if (total == 0)
        return 0;
    d = alloc_array(&now->dst->mem, total, sizeof(*d));
    if (!d || !fill_diffs(now, before, d))
        return -ENOMEM;
    sort(d, total, sizeof(*d), diff_order);
    *out = d;
    *n = total;
    return 0;
}

int om_snapshot_compare(const struct om_snapshot *now,
                        const struct om_snapshot *before, enum om_key key,
                        bool cumulative, struct om_statistic_diff **out,
                        size_t *n)
{
    struct omi_region scratch = { 0 };
    struct grouping g_now, g_before;
    int err = check_query(now, key, cumulative, out, n);

    if (err || !before)
        return err ? err : -EINVAL;
    OM_ASSERT_EXPENSIVE(snapshot_is_sound(now) && snapshot_is_sound(before));
    *out = NULL;
    *n = 0;
    grouping_init(&g_now, now, now, &scratch, key, cumulative);
    grouping_init(&g_before, before, now, &scratch, key, cumulative);
    err = group_traces(&g_now);
    if (!err)
        err = group_traces(&g_before);
    if (!err)
        err = make_diffs(&g_now, &g_before, out, n);
    omi_region_release(&scratch);
    return err;
}

/* ---- Filters ---- */

/* Where the class opened by pat[i] == '[' closes, or 0 when it does not
 * (then '[' is itself, as in Python's fnmatch).  A ']' right after "["
 * or "[!" is a member. */
static size_t class_end(const char *pat, size_t plen, size_t i)
{
    size_t j = i + 1;

    if (j < plen && pat[j] == '!')
        j++;
    if (j < plen && pat[j] == ']')
        j++;
    while (j < plen && pat[j] != ']')
        j++;
    return j < plen ? j : 0;
}

/* Whether c is in the class pat[i] == '[' .. pat[end] == ']': members and
 * ranges a-z ('-' first or last is itself), "[!" negates. */
static bool in_class(const char *pat, size_t i, size_t end, unsigned char c)
{
    bool negate = pat[i + 1] == '!', found = false;

    for (size_t k = i + 1 + negate; k < end; k++) {
        unsigned char lo = (unsigned char)pat[k], hi = lo;

        if (k + 2 < end && pat[k + 1] == '-') {
            hi = (unsigned char)pat[k + 2];
            k += 2;
        }
        found |= lo <= c && c <= hi;
    }
    return found != negate;
}

/* Match c against the one-character element at pat[*i] (not '*') and
 * step *i past it. */
static bool match_one(const char *pat, size_t plen, size_t *i, char c)
{
    size_t end;
    bool in;

    if (pat[*i] == '?') {
        ++*i;
        return true;
    }
    if (pat[*i] == '[' && (end = class_end(pat, plen, *i)) != 0) {
        in = in_class(pat, *i, end, (unsigned char)c);
        *i = end + 1;
        return in;
    }
    return pat[(*i)++] == c;
}

/*
 * fnmatch on counted strings: '*' any run (slashes too), '?' any one
 * character, [...] a class; no escapes, case-sensitive (Python's
 * fnmatch on POSIX).  A star that fails moves on by one character: only
 * the last star ever needs to, so the loop is linear in practice.
 */
static bool glob_match(const char *pat, size_t plen, const char *str,
                       size_t slen)
{
    size_t p = 0, s = 0, star = NONE, star_s = 0, next;

    while (s < slen) {
        next = p;
        if (p < plen && pat[p] == '*') {
            star = ++p;
            star_s = s;
        } else if (p < plen && match_one(pat, plen, &next, str[s])) {
            p = next;
            s++;
        } else if (star != NONE) {
            p = star;
            s = ++star_s;
        } else {
            return false;
        }
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}

/* The length of name as tracemalloc normalises it: "x.pyc" is "x.py". */
static size_t normal_len(const char *name)
{
    size_t n = strlen(name);

    return n >= 4 && memcmp(name + n - 4, ".pyc", 4) == 0 ? n - 1 : n;
}

/* A filter ready to run, with what it said of each traceback, and of
 * each file (by the string's address: its pattern matched once a
 * string, not once a frame). */
struct prepared {
    const struct om_filter *f;
    size_t plen;                /* the pattern's normal_len */
    uint8_t *memo;              /* per traceback: 0 not yet, 1 no, 2 yes */
    struct memo files;          /* per file: 0 not yet, 1 no, 2 yes */
};

/* Filter._match_frame_impl: pattern NULL matches every file. */
static bool frame_matches(struct prepared *pf, const struct om_frame *fr)
{
    const char *pat = pf->f->filename_pattern;
    uintptr_t *v;

    if (pat) {
        v = memo_val(&pf->files, fr->filename);
        if (!*v) {
            size_t len = normal_len(fr->filename);

            omi_snapshot_string_bytes += len;
            *v = 1 + glob_match(pat, pf->plen, fr->filename, len);
        }
        if (*v == 1)
            return false;
    }
    return pf->f->lineno == 0 || fr->lineno == pf->f->lineno;
}

/* Filter._match_traceback: the most recent frame (or any frame, with
 * all_frames) matches, for an inclusive filter; none does, for an
 * exclusive one.  No frame: ("<unknown>", 0). */
static bool traceback_matches(struct prepared *pf,
                              const struct om_traceback *tb)
{
    unsigned n = pf->f->all_frames ? tb->nframe : 1;
    bool hit = false;

    if (tb->nframe == 0)
        hit = frame_matches(pf, &unknown_frame);
    for (unsigned i = 0; i < n && i < tb->nframe && !hit; i++)
        hit = frame_matches(pf, &tb->frames[i]);
    return hit == pf->f->inclusive;
}

/* Filter._match (and DomainFilter's, pattern NULL): the domain narrows
 * an inclusive filter, and an exclusive one rejects only in it. */
static bool filter_passes(struct prepared *pf, const struct om_snapshot *s,
                          const struct omi_snap_trace *t)
{
    bool res, in_domain;

    if (!pf->memo[t->traceback])
        pf->memo[t->traceback] =
            1 + traceback_matches(pf, s->tracebacks[t->traceback]);
    res = pf->memo[t->traceback] == 2;
    if (pf->f->domain < 0)
        return res;
    in_domain = t->domain == (unsigned)pf->f->domain;
    return pf->f->inclusive ? res && in_domain : res || !in_domain;
}

/* Snapshot._filter_trace: one inclusive filter passes (when there are
 * any) and every exclusive one does. */
static bool trace_is_kept(struct prepared *pf, size_t n,
                          const struct om_snapshot *s,
                          const struct omi_snap_trace *t)
{
    bool any_inclusive = false, included = false;

    for (size_t i = 0; i < n; i++) {
        bool pass = filter_passes(&pf[i], s, t);

        if (!pf[i].f->inclusive && !pass)
            return false;
        any_inclusive |= pf[i].f->inclusive;
        included |= pf[i].f->inclusive && pass;
    }
    return !any_inclusive || included;
}

static struct prepared *prepare(struct omi_region *scratch,
                                const struct om_snapshot *s,
                                const struct om_filter *f, size_t n)
{
    struct prepared *pf = alloc_array(scratch, n, sizeof(*pf));

    for (size_t i = 0; pf && i < n; i++) {
        pf[i].f = &f[i];
        pf[i].plen = f[i].filename_pattern
                         ? normal_len(f[i].filename_pattern) : 0;
        pf[i].memo = alloc_array(scratch, s->ntracebacks, 1);
        if (!pf[i].memo ||      /* s's files and "<unknown>" */
            !memo_init(&pf[i].files, scratch, s->strings.used + 1))
            return NULL;
    }
    return pf;
}

/* An empty snapshot with s's limit, mean and counters. */
static struct om_snapshot *snapshot_like(const struct om_snapshot *s)
{
    struct om_snapshot *out = omi_snapshot_new(s->traceback_limit,
                                               s->sample_mean);

    if (out) {
        out->lost = s->lost;
        out->current = s->current;
        out->peak = s->peak;
        out->trace_memory = s->trace_memory;
        out->time_ms = s->time_ms;
        out->raw = s->raw;
        out->sums = s->sums;
        if (copy_modules(out, s->mods, s->nmods) != 0) {
            om_snapshot_free(out);
            out = NULL;
        }
    }
    return out;
}

/* Copy the trace t of from into to, with its traceback the first time
 * (index + 1 kept in remap; its strings interned through m): 0 or
 * -ENOMEM. */
static int copy_trace(struct om_snapshot *to, const struct om_snapshot *from,
                      const struct omi_snap_trace *t, uint32_t *remap,
                      struct memo *m)
{
    const struct om_traceback *tb = from->tracebacks[t->traceback];
    struct omi_snap_trace copy;
    long index;

    if (!remap[t->traceback]) {
        index = add_traceback(to, m, tb->frames, tb->nframe,
                              tb->total_nframe);
        if (index < 0)
            return (int)index;
        remap[t->traceback] = (uint32_t)index + 1;
    }
    copy = *t;
    copy.traceback = remap[t->traceback] - 1;
    return omi_snapshot_add_record(to, &copy);
}

static bool filters_are_valid(const struct om_filter *f, size_t n)
{
    if (n && !f)
        return false;
    for (size_t i = 0; i < n; i++)
        if (f[i].domain < -1)
            return false;
    return true;
}

/* Copy into out the traces of s that pf keeps: 0 or -ENOMEM. */
static int copy_kept(struct om_snapshot *out, const struct om_snapshot *s,
                     struct prepared *pf, size_t n, uint32_t *remap,
                     struct memo *m)
{
    int err = 0;

    for (size_t i = 0; i < s->ntraces && !err; i++)
        if (trace_is_kept(pf, n, s, &s->traces[i]))
            err = copy_trace(out, s, &s->traces[i], remap, m);
    return err;
}

struct om_snapshot *om_snapshot_filter(const struct om_snapshot *s,
                                       const struct om_filter *f, size_t n)
{
    struct omi_region scratch = { 0 };
    struct om_snapshot *out;
    struct prepared *pf;
    struct memo strings;        /* s's strings as out's */
    uint32_t *remap;

    if (!s || !filters_are_valid(f, n)) {
        errno = EINVAL;
        return NULL;
    }
    out = snapshot_like(s);
    pf = prepare(&scratch, s, f, n);
    remap = alloc_array(&scratch, s->ntracebacks, sizeof(*remap));
    if (!out || !pf || !remap ||
        !memo_init(&strings, &scratch, s->strings.used + 1) ||
        copy_kept(out, s, pf, n, remap, &strings) != 0) {
        om_snapshot_free(out);
        out = NULL;
    }
    omi_region_release(&scratch);
    if (!out)
        errno = ENOMEM;
    OM_ASSERT_EXPENSIVE(!out || snapshot_is_sound(out));
    return out;
}

/* ---- Dump ---- */

/* Buffered write(2) that sums what it writes; the first error sticks.
 * The buffer is in the scratch region, not on the stack: the exit hook
 * and the SIGUSR2 capture (capture.c) dump from inside the allocator. */
struct writer {
    int fd;                     /* -1: only count */
    int err;                    /* 0, or the first -errno */
    uint64_t sum[2];            /* FNV-1a of every byte put: of the file,
                                   and of the nested capture (PEAK); not
                                   kept by a writer that only counts */
    size_t mark[2];             /* buf[mark[i]..used) not in sum[i] yet */
    int depth;                  /* 1 inside the nested capture */
    uint64_t count;             /* bytes put */
    unsigned char *buf;         /* WRITE_BUF bytes */
    size_t used;                /* bytes in buf */
};

/* Where each string goes in STRS: per slot of the set, offset + 1, or 0
 * for a string no frame names (compare may have interned it). */
struct string_plan {
    uint64_t *offset;
    uint64_t bytes;             /* the length of STRS */
    struct memo slots;          /* a string's slot + 1, hashed once */
};

/* Add the bytes put since the last fold to the sums, once a buffer: the
 * file's and the nested capture's in one pass where both run (two
 * independent chains of multiplies).  Summed on every put, the bytes took
 * a quarter of a Python capture written at exit. */
static void fold(struct writer *w)
{
    const unsigned char *b = w->buf;
    uint64_t h0, h1;

    if (w->fd < 0)
        return;
    if (!w->depth) {
        w->sum[0] = fnv1a(w->sum[0], b + w->mark[0], w->used - w->mark[0]);
    } else {
        h0 = fnv1a(w->sum[0], b + w->mark[0], w->mark[1] - w->mark[0]);
        h1 = w->sum[1];
        for (size_t i = w->mark[1]; i < w->used; i++) {
            h0 = (h0 ^ b[i]) * FNV_PRIME;
            h1 = (h1 ^ b[i]) * FNV_PRIME;
        }
        w->sum[0] = h0;
        w->sum[1] = h1;
    }
    w->mark[0] = w->mark[1] = w->used;
}

static void flush(struct writer *w)
{
    size_t done = 0;

    fold(w);
    while (!w->err && done < w->used) {
        ssize_t n = write(w->fd, w->buf + done, w->used - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            w->err = n < 0 ? -errno : -EIO;
        else
            done += (size_t)n;
    }
    w->used = w->mark[0] = w->mark[1] = 0;
}

static void put(struct writer *w, const void *p, size_t n)
{
    const unsigned char *b = p;

    w->count += n;
    if (w->fd < 0)
        return;
    while (n > 0) {
        size_t k = WRITE_BUF - w->used;

        k = n < k ? n : k;
        memcpy(w->buf + w->used, b, k);
        w->used += k;
        b += k;
        n -= k;
        if (w->used == WRITE_BUF)
            flush(w);
    }
}

static void put_u32(struct writer *w, uint32_t v)
{
    unsigned char b[4];

    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put(w, b, sizeof(b));
}

static void put_u64(struct writer *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_section(struct writer *w, uint32_t tag, uint64_t len)
{
    put_u32(w, tag);
    put_u32(w, 0);
    put_u64(w, len);
}

/* The offset in STRS of a string of s's set. */
static uint32_t string_offset(const struct om_snapshot *s,
                              const struct string_plan *plan, const char *str)
{
    uintptr_t slot = str ? memo_get(&plan->slots, str) : 0;

    if (!str)
        return NO_STRING;
    if (!slot)                  /* not marked by plan_strings: never */
        slot = strtab_slot(&s->strings, str) + 1;
    return (uint32_t)(plan->offset[slot - 1] - 1);
}

/* Mark str, a string of s's set, as written (its slot found once). */
static void mark_string(const struct omi_strtab *t, struct string_plan *plan,
                        const char *str)
{
    uintptr_t *slot = memo_val(&plan->slots, str);

    if (!*slot)
        *slot = strtab_slot(t, str) + 1;
    plan->offset[*slot - 1] = 1;
}

/* Mark the strings the frames name, and the modules' at the top, then
 * give them offsets in slot order: 0, or -ENOMEM, or -EFBIG when STRS
 * outgrows u32 offsets. */
static int plan_strings(const struct om_snapshot *s, bool top,
                        struct omi_region *r, struct string_plan *plan)
{
    const struct omi_strtab *t = &s->strings;

    plan->bytes = 0;
    plan->offset = alloc_array(r, t->mask + 1, sizeof(plan->offset[0]));
    if (!plan->offset || !memo_init(&plan->slots, r, t->used))
        return -ENOMEM;
    for (size_t i = 0; i < s->ntracebacks; i++) {
        const struct om_traceback *tb = s->tracebacks[i];

        for (unsigned k = 0; k < tb->nframe; k++) {
            mark_string(t, plan, tb->frames[k].filename);
            if (tb->frames[k].function)
                mark_string(t, plan, tb->frames[k].function);
        }
    }
    for (size_t i = 0; top && i < s->nmods; i++)
        mark_string(t, plan, s->mods[i].path);
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        if (!plan->offset[i])
            continue;
        plan->offset[i] = plan->bytes + 1;
        plan->bytes += strlen(t->slots[i]) + 1;
    }
    return plan->bytes > NO_STRING ? -EFBIG : 0;
}

static void write_meta(struct writer *w, const struct om_snapshot *s)
{
    put_section(w, TAG_META, META_BYTES);
    put_u32(w, (uint32_t)s->traceback_limit);
    put_u32(w, 0);
    put_u64(w, s->sample_mean);
    put_u64(w, s->lost);
    put_u64(w, s->current);
    put_u64(w, s->peak);
    put_u64(w, s->ntracebacks);
    put_u64(w, s->ntraces);
    put_u64(w, s->trace_memory);
    put_u64(w, s->time_ms);
}

static void put_f64(struct writer *w, double v)
{
    uint64_t bits;

    memcpy(&bits, &v, sizeof(bits));
    put_u64(w, bits);
}

/* ADDR, each trace's address and time; or VARS, each sum's variances. */
static void write_addrs(struct writer *w, const struct om_snapshot *s)
{
    put_section(w, s->sums ? TAG_VARS : TAG_ADDRS,
                (uint64_t)s->ntraces * ADDR_BYTES);
    for (size_t i = 0; i < s->ntraces; i++) {
        const struct omi_snap_trace *t = &s->traces[i];

        if (s->sums) {
            put_f64(w, t->size_var);
            put_f64(w, t->count_var);
        } else {
            put_u64(w, t->addr);
            put_u64(w, t->time_ms);
        }
    }
}

static uint64_t heap_bytes(const struct om_heap_map *m)
{
    uint64_t n = HEAP_HEAD_BYTES + m->nlarge * LARGE_BYTES;

    for (size_t i = 0; i < m->narenas; i++)
        n += ARENA_BYTES + m->arenas[i].npages * PAGE_BYTES;
    return n;
}

static void write_heap(struct writer *w, const struct om_heap_map *m)
{
    put_section(w, TAG_HEAP, heap_bytes(m));
    put_u64(w, m->page_size);
    put_u64(w, m->narenas);
    put_u64(w, m->nlarge);
    for (size_t i = 0; i < m->narenas; i++) {
        const struct om_heap_arena *a = &m->arenas[i];

        put_u64(w, a->address);
        put_u32(w, (uint32_t)a->npages);
        put_u32(w, 0);
        for (size_t j = 0; j < a->npages; j++) {
            const struct om_heap_page *pg = &a->pages[j];

            put_u32(w, pg->kind | (uint32_t)pg->pages << 8 |
                       (uint32_t)pg->used << 16);
            put_u32(w, pg->block_size);
        }
    }
    for (size_t i = 0; i < m->nlarge; i++) {
        put_u64(w, m->large[i].address);
        put_u64(w, m->large[i].size);
    }
}

static void write_timeline(struct writer *w, const struct om_snapshot *s)
{
    put_section(w, TAG_TIME, s->ntimeline * POINT_BYTES);
    for (size_t i = 0; i < s->ntimeline; i++) {
        put_u64(w, s->timeline[i].time_ms);
        put_u64(w, s->timeline[i].traced);
        put_u64(w, s->timeline[i].rss);
    }
}

static void write_strings(struct writer *w, const struct om_snapshot *s,
                          const struct string_plan *plan)
{
    const struct omi_strtab *t = &s->strings;

    put_section(w, TAG_STRINGS, plan->bytes);
    for (size_t i = 0; t->slots && i <= t->mask; i++)
        if (plan->offset[i])
            put(w, t->slots[i], strlen(t->slots[i]) + 1);
}

static void write_frame(struct writer *w, const struct om_snapshot *s,
                        const struct string_plan *plan,
                        const struct om_frame *f)
{
    put_u32(w, string_offset(s, plan, f->filename));
    put_u32(w, string_offset(s, plan, f->function));
    put_u32(w, f->lineno);
    put_u32(w, 0);
    put_u64(w, (uintptr_t)f->pc);
}

static void write_tracebacks(struct writer *w, const struct om_snapshot *s,
                             const struct string_plan *plan)
{
    uint64_t len = 0;

    for (size_t i = 0; i < s->ntracebacks; i++)
        len += TB_BYTES + (uint64_t)s->tracebacks[i]->nframe * FRAME_BYTES;
    put_section(w, TAG_TRACEBACKS, len);
    for (size_t i = 0; i < s->ntracebacks; i++) {
        const struct om_traceback *tb = s->tracebacks[i];

        put_u32(w, tb->nframe);
        put_u32(w, tb->total_nframe);
        for (unsigned k = 0; k < tb->nframe; k++)
            write_frame(w, s, plan, &tb->frames[k]);
    }
}

static void write_traces(struct writer *w, const struct om_snapshot *s)
{
    put_section(w, TAG_TRACES, (uint64_t)s->ntraces * TRACE_BYTES);
    for (size_t i = 0; i < s->ntraces; i++) {
        const struct omi_snap_trace *t = &s->traces[i];

        put_u64(w, t->size);
        put_f64(w, t->weight);
        put_u32(w, t->traceback);
        put_u32(w, t->domain);
    }
}

/* MODS (a raw snapshot's: the loader names its frames) or MAPS. */
static void write_mods(struct writer *w, const struct om_snapshot *s,
                       const struct string_plan *plan)
{
    put_section(w, s->raw ? TAG_MODS : TAG_MAPS,
                (uint64_t)s->nmods * MOD_BYTES);
    for (size_t i = 0; i < s->nmods; i++) {
        const struct omi_module *m = &s->mods[i];
        unsigned char id[OMI_BUILD_ID_MAX] = { 0 };

        memcpy(id, m->id, m->id_len);
        put_u32(w, string_offset(s, plan, m->path));
        put_u32(w, m->id_len);
        put_u64(w, m->bias);
        put_u64(w, m->lo);
        put_u64(w, m->hi);
        put(w, id, sizeof(id));
    }
}

static void write_capture(struct writer *w, const struct om_snapshot *s,
                          const struct string_plan *plan);

/* PEAK, the snapshot at the high-water mark, or ALOC, the allocations
 * of the run: a whole capture nested (its length counted first by a
 * writer that writes nothing). */
static void write_nested(struct writer *w, uint32_t tag,
                         const struct om_snapshot *part,
                         const struct string_plan *plan)
{
    struct writer counter = { .fd = -1, .depth = 1 };

    write_capture(&counter, part, plan);
    put_section(w, tag, counter.count);
    fold(w);
    w->depth = 1;
    w->sum[1] = FNV_OFFSET;
    write_capture(w, part, plan);
    fold(w);
    w->depth = 0;
}

static void write_capture(struct writer *w, const struct om_snapshot *s,
                          const struct string_plan *plan)
{
    uint64_t sum;

    put(w, MAGIC, sizeof(MAGIC));
    put_u32(w, VERSION);
    put_u32(w, 0);
    write_meta(w, s);
    write_strings(w, s, plan);
    write_tracebacks(w, s, plan);
    write_traces(w, s);
    write_addrs(w, s);
    if (s->nmods && w->depth == 0)
        write_mods(w, s, plan);     /* the peak's are the same */
    if (s->heap)
        write_heap(w, s->heap);
    if (s->ntimeline && w->depth == 0)
        write_timeline(w, s);
    if (s->at_peak && w->depth == 0)
        write_nested(w, TAG_PEAK, s->at_peak, plan + 1);
    if (s->allocs && w->depth == 0)
        write_nested(w, TAG_ALLOCS, s->allocs, plan + 2);
    fold(w);
    sum = w->sum[w->depth];
    put_section(w, TAG_END, 8);
    put_u64(w, sum);
    if (w->fd >= 0)
        flush(w);
}

/* Write the capture to path.tmp, then rename it to path: 0 or -errno. */
/* Whether path names something other than a regular file or nothing (a
 * device such as /dev/null, a FIFO, a symbolic link): then the capture is
 * written through it, not renamed over it. */
static bool write_through(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

/* Write the capture to path.PID.tmp, then rename it to path (a reader
 * never sees half a capture, and two processes writing one name do not
 * write into one file); or straight to path when it is not a regular
 * file: 0 or -errno. */
static int write_file(const struct om_snapshot *s,
                      const struct string_plan *plan, const char *path,
                      struct omi_region *scratch)
{
    size_t len = strlen(path);
    struct writer w = { .sum = { FNV_OFFSET, FNV_OFFSET } };
    bool direct = write_through(path);
    char *tmp = omi_region_alloc(scratch, len + 32);

    w.buf = omi_region_alloc(scratch, WRITE_BUF);
    if (!tmp || !w.buf)
        return -ENOMEM;
    snprintf(tmp, len + 32, "%s.%ld.tmp", path, (long)getpid());
    w.fd = open(direct ? path : tmp,
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0)
        return -errno;
    write_capture(&w, s, plan);
    if (close(w.fd) != 0 && !w.err)
        w.err = -errno;
    if (!direct && !w.err && rename(tmp, path) != 0)
        w.err = -errno;
    if (!direct && w.err)
        unlink(tmp);
    return w.err;
}

int om_snapshot_dump(const struct om_snapshot *s, const char *path)
{
    struct omi_region scratch = { 0 };
    struct string_plan plan[3];         /* s's, its peak's, allocs' */
    int err;

    if (!s || !path)
        return -EINVAL;
    OM_ASSERT_EXPENSIVE(snapshot_is_sound(s));
    err = plan_strings(s, true, &scratch, &plan[0]);
    if (!err && s->at_peak)
        err = plan_strings(s->at_peak, false, &scratch, &plan[1]);
    if (!err && s->allocs)
        err = plan_strings(s->allocs, false, &scratch, &plan[2]);
    if (!err)
        err = write_file(s, plan, path, &scratch);
    omi_region_release(&scratch);
    return err;
}

/* ---- Load ---- */

/* A capture file in memory. */
struct capture {
    const unsigned char *buf;
    size_t size;
};

/*
 * A handler for one section: tag, payload and length, and the offset of
 * the section in the file (for messages).  Returns 0, or a negative
 * errno with the message set.  It must skip tags it does not know.
 */
typedef int (*section_fn)(void *ctx, uint32_t tag, const unsigned char *p,
                          uint64_t len, size_t at);

struct section {
    bool seen;
    const unsigned char *p;
    uint64_t len;
};

/* Set by the fuzz targets (fuzz/fuzz_capture.c) alone: a wrong checksum
 * is let through, so that random bytes reach the checks behind it, which
 * must hold on their own ("a crafted file can carry a right checksum"). */
bool omi_snapshot_fuzzing;

/* What om_snapshot_load knows so far. */
struct loader {
    struct capture c;
    struct section meta, strings, tracebacks, traces, addrs, vars, heap;
    struct section timeline;
    struct section peak, allocs;
    struct section mods;                /* MODS or MAPS */
    const char **interned;              /* per STRS offset: its string in
                                           s, or NULL not yet; mapped */
    bool named;                         /* MAPS: frames named already */
    int depth;                          /* 1: a nested capture */
    uint64_t ntracebacks, ntraces;      /* as META says */
    struct om_snapshot *s;
};

/* Say why the load fails; returns -EINVAL, bad content's error. */
__attribute__((format(printf, 1, 2)))
static int bad(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    omi_print_format(load_error, sizeof(load_error), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int out_of_memory(void)
{
    bad("out of memory");
    return -ENOMEM;
}

/* A system call failed on path: -errno, with the message set. */
static int failed(const char *what, const char *path, int err)
{
    bad("cannot %s %s (errno %d)", what, path, err);
    return -err;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static double get_f64(const unsigned char *p)
{
    uint64_t bits = get_u64(p);
    double d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* Magic, version, the END section last and its checksum. */
static int check_frame(const struct capture *c)
{
    size_t n = c->size < sizeof(MAGIC) ? c->size : sizeof(MAGIC);
    const unsigned char *end;

    if (n && memcmp(c->buf, MAGIC, n) != 0)
        return bad("not an objmem capture (bad magic)");
    if (c->size < HEADER_BYTES)
        return bad("truncated at byte %zu", c->size);
    if (get_u32(c->buf + 8) != VERSION)
        return bad("unsupported version %u", get_u32(c->buf + 8));
    if (get_u32(c->buf + 12) != 0)
        return bad("bad header");
    if (c->size < HEADER_BYTES + END_BYTES)
        return bad("truncated at byte %zu", c->size);
    end = c->buf + c->size - END_BYTES;
    if (get_u32(end) != TAG_END ||
        get_u32(end + 4) != 0 || get_u64(end + 8) != 8)
        return bad("truncated at byte %zu (no END section at the end)",
                   c->size);
    if (get_u64(end + 16) != fnv1a(FNV_OFFSET, c->buf, c->size - END_BYTES) &&
        !omi_snapshot_fuzzing)
        return bad("bad checksum");
    return 0;
}

/* Hand the section at *at (before end) to fn and step past it. */
static int next_section(const struct capture *c, size_t *at, size_t end,
                        section_fn fn, void *ctx)
{
    const unsigned char *h = c->buf + *at;
    uint64_t len;
    int err;

    if (end - *at < SECTION_BYTES)
        return bad("section at byte %zu runs into the END section", *at);
    len = get_u64(h + 8);
    if (get_u32(h + 4) != 0)
        return bad("section at byte %zu: bad header", *at);
    if (get_u32(h) == TAG_END)
        return bad("END section at byte %zu before the end", *at);
    if (len > end - *at - SECTION_BYTES)
        return bad("section at byte %zu runs into the END section", *at);
    err = fn(ctx, get_u32(h), h + SECTION_BYTES, len, *at);
    *at += SECTION_BYTES + (size_t)len;
    return err;
}

/* Check the capture's frame, then hand each section between the header
 * and END to fn, in file order: 0, or the first error. */
static int walk_sections(const struct capture *c, section_fn fn, void *ctx)
{
    size_t at = HEADER_BYTES;
    int err = check_frame(c);

    while (!err && at < c->size - END_BYTES)
        err = next_section(c, &at, c->size - END_BYTES, fn, ctx);
    return err;
}

static const char *tag_name(uint32_t tag)
{
    return tag == TAG_META      ? "META"
           : tag == TAG_STRINGS ? "STRS"
           : tag == TAG_TRACEBACKS ? "TBKS"
           : tag == TAG_ADDRS ? "ADDR"
           : tag == TAG_HEAP ? "HEAP"
           : tag == TAG_PEAK ? "PEAK"
           : tag == TAG_ALLOCS ? "ALOC"
           : tag == TAG_VARS ? "VARS"
           : tag == TAG_MODS ? "MODS"
           : tag == TAG_TIME ? "TIME"
           : tag == TAG_MAPS ? "MAPS" : "TRCS";
}

/* The loader's handler: note where the four sections are. */
static int note_section(void *ctx, uint32_t tag, const unsigned char *p,
                        uint64_t len, size_t at)
{
    struct loader *l = ctx;
    struct section *sec = tag == TAG_META ? &l->meta
                        : tag == TAG_STRINGS ? &l->strings
                        : tag == TAG_TRACEBACKS ? &l->tracebacks
                        : tag == TAG_TRACES ? &l->traces
                        : tag == TAG_ADDRS ? &l->addrs
                        : tag == TAG_HEAP ? &l->heap
                        : tag == TAG_VARS ? &l->vars
                        : tag == TAG_PEAK && !l->depth ? &l->peak
                        : tag == TAG_ALLOCS && !l->depth ? &l->allocs
                        : tag == TAG_TIME && !l->depth ? &l->timeline
                        : (tag == TAG_MODS || tag == TAG_MAPS) && !l->depth
                            ? &l->mods
                            : NULL;

    if (!sec)
        return 0;               /* a later version's section */
    if (sec->seen && sec == &l->mods)
        return bad("a second module table (%s) at byte %zu", tag_name(tag),
                   at);
    if (sec->seen)
        return bad("a second %s section at byte %zu", tag_name(tag), at);
    if (sec == &l->mods)
        l->named = tag == TAG_MAPS;
    sec->seen = true;
    sec->p = p;
    sec->len = len;
    return 0;
}

static int decode_meta(struct loader *l)
{
    const unsigned char *p = l->meta.p;
    struct om_snapshot *s;

    if (!l->meta.seen)
        return bad("no META section");
    if (l->meta.len < META_MIN)
        return bad("META section of %lu bytes, not %d",
                   (unsigned long)l->meta.len, META_BYTES);
    l->ntracebacks = get_u64(p + 40);
    l->ntraces = get_u64(p + 48);
    if (l->ntracebacks > UINT32_MAX)
        return bad("META says %lu tracebacks, too many",
                   (unsigned long)l->ntracebacks);
    s = l->s = omi_snapshot_new((int)get_u32(p), get_u64(p + 8));
    if (!s)
        return out_of_memory();
    s->lost = get_u64(p + 16);
    s->current = get_u64(p + 24);
    s->peak = get_u64(p + 32);
    s->trace_memory = l->meta.len >= 64 ? get_u64(p + 56) : 0;
    s->time_ms = l->meta.len >= 72 ? get_u64(p + 64) : 0;
    return 0;
}

/* The mapped bytes of l's table of interned strings. */
static size_t interned_bytes(const struct loader *l)
{
    return omi_os_page_round((size_t)l->strings.len * sizeof(char *));
}

/* STRS, and the table of its offsets' strings (empty). */
static int decode_strings(struct loader *l)
{
    if (!l->strings.seen)
        return bad("no STRS section");
    if (l->strings.len && l->strings.p[l->strings.len - 1] != '\0')
        return bad("the string table does not end with a NUL");
    if (l->strings.len && !(l->interned = omi_os_map(interned_bytes(l), 0)))
        return out_of_memory();
    return 0;
}

/* Whether off, below the length of STRS, is a string's first byte. */
static bool starts_string(const struct loader *l, uint64_t off)
{
    return !off || !l->strings.p[off - 1];
}

/* The string at offset off of STRS (function: NO_STRING is none) into
 * *out, interned (once an offset): 0, -EINVAL or -ENOMEM. */
static int decode_string(struct loader *l, uint64_t tb, uint32_t off,
                         bool function, const char **out)
{
    *out = NULL;
    if (function && off == NO_STRING)
        return 0;
    if (off >= l->strings.len)
        return bad("traceback %lu names string offset %u beyond the "
                   "string table", (unsigned long)tb, off);
    if (!starts_string(l, off))
        return bad("traceback %lu names string offset %u inside a string",
                   (unsigned long)tb, off);
    if (!l->interned[off])
        l->interned[off] = omi_snapshot_intern(
            l->s, (const char *)l->strings.p + off);
    *out = l->interned[off];
    return *out ? 0 : out_of_memory();
}

static int decode_frame(struct loader *l, uint64_t tb, const unsigned char *p,
                        struct om_frame *f)
{
    int err;

    if (get_u32(p + 12) != 0)
        return bad("traceback %lu: a frame's reserved field is not 0",
                   (unsigned long)tb);
    err = decode_string(l, tb, get_u32(p), false, &f->filename);
    if (!err)
        err = decode_string(l, tb, get_u32(p + 4), true, &f->function);
    f->lineno = get_u32(p + 8);
    f->pc = (const void *)(uintptr_t)get_u64(p + 16);
    return err;
}

/* Traceback i, at *at in TBKS; *at steps past it. */
static int decode_traceback(struct loader *l, uint64_t i, uint64_t *at)
{
    const struct section *sec = &l->tracebacks;
    struct om_traceback *tb;
    uint32_t nframe, total;
    int err = 0;

    if (sec->len - *at < TB_BYTES)
        return bad("traceback %lu runs past the TBKS section",
                   (unsigned long)i);
    nframe = get_u32(sec->p + *at);
    if (nframe > MAX_FRAMES)
        return bad("traceback %lu has %u frames, more than %d",
                   (unsigned long)i, nframe, MAX_FRAMES);
    if ((sec->len - *at - TB_BYTES) / FRAME_BYTES < nframe)
        return bad("traceback %lu runs past the TBKS section",
                   (unsigned long)i);
    total = get_u32(sec->p + *at + 4);
    if (total < nframe)
        return bad("traceback %lu has %u frames, more than its total %u",
                   (unsigned long)i, nframe, total);
    tb = new_traceback(l->s, nframe, total);
    if (!tb)
        return out_of_memory();
    *at += TB_BYTES;
    for (uint32_t k = 0; k < nframe && !err; k++, *at += FRAME_BYTES)
        err = decode_frame(l, i, sec->p + *at, &tb->frames[k]);
    if (!err && append_traceback(l->s, tb) < 0)
        err = out_of_memory();
    return err;
}

static int decode_tracebacks(struct loader *l)
{
    uint64_t at = 0;
    int err = 0;

    if (!l->tracebacks.seen)
        return bad("no TBKS section");
    for (uint64_t i = 0; i < l->ntracebacks && !err; i++)
        err = decode_traceback(l, i, &at);
    if (!err && at != l->tracebacks.len)
        return bad("TBKS section has %lu bytes after its %lu tracebacks",
                   (unsigned long)(l->tracebacks.len - at),
                   (unsigned long)l->ntracebacks);
    return err;
}

static int decode_trace(struct loader *l, uint64_t i, const unsigned char *p)
{
    uint32_t tb = get_u32(p + 16);
    double weight = get_f64(p + 8);

    if (tb >= l->ntracebacks)
        return bad("trace %lu names traceback %u of %lu", (unsigned long)i,
                   tb, (unsigned long)l->ntracebacks);
    if (!(weight >= 1.0 && weight <= DBL_MAX))
        return bad("trace %lu has a weight below 1 or not finite",
                   (unsigned long)i);
    if (get_u64(p) > PTRDIFF_MAX)       /* no block is that big */
        return bad("trace %lu has a size of %lu bytes", (unsigned long)i,
                   (unsigned long)get_u64(p));
    if (omi_snapshot_add_trace(l->s, tb, get_u32(p + 20), get_u64(p),
                               weight) != 0)
        return out_of_memory();
    return 0;
}

static int decode_traces(struct loader *l)
{
    const struct section *sec = &l->traces;
    int err = 0;

    if (!sec->seen)
        return bad("no TRCS section");
    if (sec->len % TRACE_BYTES || sec->len / TRACE_BYTES != l->ntraces)
        return bad("TRCS section of %lu bytes for %lu traces",
                   (unsigned long)sec->len, (unsigned long)l->ntraces);
    for (uint64_t i = 0; i < l->ntraces && !err; i++)
        err = decode_trace(l, i, sec->p + i * TRACE_BYTES);
    return err;
}

/* ADDR (optional): each trace's address and time; or VARS (optional,
 * not with ADDR): the records are sums, each with its variances. */
static int decode_addrs(struct loader *l)
{
    const struct section *sec = l->vars.seen ? &l->vars : &l->addrs;
    const char *name = l->vars.seen ? "VARS" : "ADDR";

    if (l->vars.seen && l->addrs.seen)
        return bad("both an ADDR and a VARS section");
    if (!sec->seen)
        return 0;
    if (sec->len != l->ntraces * ADDR_BYTES)
        return bad("%s section of %lu bytes for %lu traces", name,
                   (unsigned long)sec->len, (unsigned long)l->ntraces);
    l->s->sums = l->vars.seen;
    for (uint64_t i = 0; i < l->ntraces; i++) {
        struct omi_snap_trace *t = &l->s->traces[i];
        const unsigned char *p = sec->p + i * ADDR_BYTES;

        if (!l->vars.seen) {
            t->addr = get_u64(p);
            t->time_ms = get_u64(p + 8);
            continue;
        }
        t->size_var = get_f64(p);
        t->count_var = get_f64(p + 8);
        if (!var_is_sound(t->size_var) || !var_is_sound(t->count_var))
            return bad("sum %lu has a variance below 0 or not finite",
                       (unsigned long)i);
    }
    return 0;
}

/* One page record of HEAP: false when it cannot be. */
static bool decode_page(const unsigned char *p, size_t page_size,
                        struct om_heap_page *out)
{
    uint32_t w = get_u32(p);

    out->kind = (uint8_t)w;
    out->pages = (uint8_t)(w >> 8);
    out->used = (uint16_t)(w >> 16);
    out->block_size = get_u32(p + 4);
    if (out->kind > OM_PAGE_TAIL)
        return false;
    if (out->kind != OM_PAGE_BLOCKS)
        return !out->pages && !out->used && !out->block_size;
    return out->pages && out->block_size &&
           out->used <= out->pages * page_size / out->block_size;
}

/* The arenas of HEAP from *at: 0 or an error. */
static int decode_arenas(struct loader *l, struct om_heap_map *m,
                         uint64_t *at)
{
    const struct section *sec = &l->heap;
    struct om_heap_arena *arenas = omi_region_alloc(
        &l->s->mem, (m->narenas + 1) * sizeof(*arenas));

    if (!arenas)
        return out_of_memory();
    m->arenas = arenas;
    for (size_t i = 0; i < m->narenas; i++) {
        uint64_t n;
        struct om_heap_page *pages;

        if (sec->len - *at < ARENA_BYTES)
            return bad("HEAP section ends in arena %zu", i);
        n = get_u32(sec->p + *at + 8);
        arenas[i].address = (uintptr_t)get_u64(sec->p + *at);
        arenas[i].npages = n;
        *at += ARENA_BYTES;
        if ((sec->len - *at) / PAGE_BYTES < n)
            return bad("HEAP section ends in the pages of arena %zu", i);
        pages = omi_region_alloc(&l->s->mem, (n + 1) * sizeof(*pages));
        if (!pages)
            return out_of_memory();
        for (uint64_t j = 0; j < n; j++, *at += PAGE_BYTES)
            if (!decode_page(sec->p + *at, m->page_size, &pages[j]))
                return bad("arena %zu page %lu: a bad page record", i,
                           (unsigned long)j);
        arenas[i].pages = pages;
    }
    return 0;
}

static int decode_large(struct loader *l, struct om_heap_map *m,
                        uint64_t at)
{
    const struct section *sec = &l->heap;
    struct om_heap_large *large;

    if ((sec->len - at) / LARGE_BYTES != m->nlarge ||
        (sec->len - at) % LARGE_BYTES)
        return bad("HEAP section: %lu bytes left for %zu large blocks",
                   (unsigned long)(sec->len - at), m->nlarge);
    large = omi_region_alloc(&l->s->mem, (m->nlarge + 1) * sizeof(*large));
    if (!large)
        return out_of_memory();
    for (size_t i = 0; i < m->nlarge; i++, at += LARGE_BYTES)
        large[i] = (struct om_heap_large){
            (uintptr_t)get_u64(sec->p + at),
            (size_t)get_u64(sec->p + at + 8) };
    m->large = large;
    return 0;
}

/* HEAP (optional): the heap map. */
static int decode_heap(struct loader *l)
{
    const struct section *sec = &l->heap;
    struct om_heap_map *m;
    uint64_t at = HEAP_HEAD_BYTES;
    int err;

    if (!sec->seen)
        return 0;
    if (sec->len < HEAP_HEAD_BYTES)
        return bad("HEAP section of %lu bytes", (unsigned long)sec->len);
    m = omi_region_alloc(&l->s->mem, sizeof(*m));
    if (!m)
        return out_of_memory();
    m->page_size = (size_t)get_u64(sec->p);
    m->narenas = (size_t)get_u64(sec->p + 8);
    m->nlarge = (size_t)get_u64(sec->p + 16);
    if (m->page_size < 4096 || (m->page_size & (m->page_size - 1)) ||
        m->narenas > sec->len / ARENA_BYTES ||
        m->nlarge > sec->len / LARGE_BYTES)
        return bad("HEAP section: bad page size or counts");
    err = decode_arenas(l, m, &at);
    if (!err)
        err = decode_large(l, m, at);
    if (!err)
        l->s->heap = m;
    return err;
}

/* TIME (optional): the timeline. */
static int decode_timeline(struct loader *l)
{
    const struct section *sec = &l->timeline;
    struct om_time_point *p;
    size_t n = (size_t)(sec->len / POINT_BYTES);

    if (!sec->seen)
        return 0;
    if (sec->len % POINT_BYTES || !n)
        return bad("TIME section of %lu bytes", (unsigned long)sec->len);
    if (!(p = omi_region_alloc(&l->s->mem, n * sizeof(*p))))
        return out_of_memory();
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r = sec->p + i * POINT_BYTES;

        p[i] = (struct om_time_point){ get_u64(r), (size_t)get_u64(r + 8),
                                       (size_t)get_u64(r + 16) };
        if (i && p[i].time_ms <= p[i - 1].time_ms)
            return bad("TIME section: point %zu at %lu ms, after %lu", i,
                       (unsigned long)p[i].time_ms,
                       (unsigned long)p[i - 1].time_ms);
    }
    l->s->timeline = p;
    l->s->ntimeline = n;
    return 0;
}

static int decode(struct loader *l);

/* PEAK or ALOC (optional): a nested capture, the snapshot at the peak
 * or the allocations of the run, into *out. */
static int decode_nested(const struct section *sec, struct om_snapshot **out)
{
    struct loader inner = { .depth = 1 };
    int err;

    if (!sec->seen)
        return 0;
    inner.c = (struct capture){ sec->p, (size_t)sec->len };
    err = check_frame(&inner.c);
    if (!err)
        err = walk_sections(&inner.c, note_section, &inner);
    if (!err)
        err = decode(&inner);
    if (err) {
        om_snapshot_free(inner.s);
        return err;
    }
    *out = inner.s;
    return 0;
}

/* MODS or MAPS (optional, outside PEAK): the module table, into *out
 * (paths into the file, n_out modules): 0 or -EINVAL. */
static int decode_mods(const struct loader *l, struct omi_module *out,
                       size_t *n_out)
{
    const unsigned char *p = l->mods.p;
    size_t n = (size_t)(l->mods.len / MOD_BYTES);

    if (l->mods.len % MOD_BYTES)
        return bad("%s section of %lu bytes, not a multiple of %d",
                   l->named ? "MAPS" : "MODS", (unsigned long)l->mods.len,
                   MOD_BYTES);
    for (size_t i = 0; i < n; i++, p += MOD_BYTES) {
        struct omi_module *m = &out[i];
        uint32_t off = get_u32(p);

        if (off >= l->strings.len)
            return bad("module %zu names string offset %u beyond the "
                       "string table", i, off);
        if (!starts_string(l, off))
            return bad("module %zu names string offset %u inside a string",
                       i, off);
        m->path = (const char *)l->strings.p + off;
        if (strnlen(m->path, PATH_MAX + 1) > PATH_MAX)
            return bad("module %zu's path is longer than %d bytes", i,
                       PATH_MAX);
        m->id_len = get_u32(p + 4);
        m->bias = get_u64(p + 8);
        m->lo = get_u64(p + 16);
        m->hi = get_u64(p + 24);
        if (m->id_len > OMI_BUILD_ID_MAX)
            return bad("module %zu has a build ID of %u bytes, more than "
                       "%d", i, m->id_len, OMI_BUILD_ID_MAX);
        if (m->lo >= m->hi)
            return bad("module %zu spans no address", i);
        if (i > 0 && m->lo < m[-1].hi)
            return bad("module %zu starts below the end of the one before "
                       "it", i);
        memcpy(m->id, p + 32, OMI_BUILD_ID_MAX);
    }
    *n_out = n;
    return 0;
}

/* Name the C frames of s's tracebacks with sym, each pc asked once (memo:
 * mask + 1 slots, a pc's named frame, pc NULL when empty), strings
 * interned in s; then leave out operator new's frames, as a snapshot
 * taken in the process does: 0 or -ENOMEM. */
static int name_frames(struct om_snapshot *s, struct omi_symbols *sym,
                       struct om_frame *memo, size_t mask)
{
    for (size_t i = 0; i < s->ntracebacks; i++) {
        struct om_traceback *tb = s->tracebacks[i];
        unsigned k;

        if (tb->nframe == 0 || !tb->frames[0].pc)
            continue;                   /* a frame source's */
        for (k = 0; k < tb->nframe; k++) {
            uintptr_t pc = (uintptr_t)tb->frames[k].pc;
            size_t h = (size_t)((pc * 0x9e3779b97f4a7c15ull) >> 20) & mask;

            struct om_frame named;

            while (memo[h].pc && (uintptr_t)memo[h].pc != pc)
                h = (h + 1) & mask;
            if (!memo[h].pc) {
                named = omi_symbols_frame(sym, pc);
                if (!copy_frame(s, NULL, &memo[h], &named))
                    return -ENOMEM;
            }
            tb->frames[k] = memo[h];
        }
        k = omi_symbols_trim_new(tb->frames, tb->nframe);
        tb->nframe -= k;
        tb->total_nframe -= k;
    }
    return 0;
}

/* The module table, s's and its parts'; a raw capture's (MODS) C frames
 * named from the modules' files, and its parts' with them: 0, -EINVAL or
 * -ENOMEM. */
static int decode_modules(struct loader *l)
{
    struct omi_region scratch = { 0 };
    struct omi_symbols *sym;
    struct omi_module *mods;
    struct om_frame *memo;
    struct om_snapshot *part[OMI_SNAPSHOT_PARTS];
    size_t n = (size_t)(l->mods.len / MOD_BYTES), frames = 0, slots = 64;
    size_t nparts = omi_snapshot_parts(l->s, part);
    int err;

    if (!l->mods.seen)
        return 0;
    mods = alloc_array(&scratch, n + 1, sizeof(*mods));
    if (!mods) {
        omi_region_release(&scratch);
        return out_of_memory();
    }
    if ((err = decode_mods(l, mods, &n)) != 0) {
        omi_region_release(&scratch);
        return err;
    }
    for (size_t k = 0; k < nparts && !err; k++)
        err = copy_modules(part[k], mods, n);
    if (err || l->named) {
        omi_region_release(&scratch);
        return err ? out_of_memory() : 0;
    }
    for (size_t k = 0; k < nparts; k++)
        for (size_t i = 0; i < part[k]->ntracebacks; i++)
            frames += part[k]->tracebacks[i]->nframe;
    while (slots < 2 * frames)
        slots *= 2;
    memo = alloc_array(&scratch, slots, sizeof(*memo));
    sym = memo ? omi_symbols_open_offline(mods, n) : NULL;
    err = sym ? 0 : out_of_memory();
    for (size_t k = 0; k < nparts && !err; k++) {
        memset(memo, 0, slots * sizeof(*memo));     /* its own strings */
        err = name_frames(part[k], sym, memo, slots - 1);
    }
    if (err == -ENOMEM)
        out_of_memory();
    omi_symbols_close(sym);
    omi_region_release(&scratch);
    return err;
}

static int decode(struct loader *l)
{
    int err = decode_meta(l);

    if (!err)
        err = decode_strings(l);
    if (!err)
        err = decode_tracebacks(l);
    if (!err)
        err = decode_traces(l);
    if (!err)
        err = decode_addrs(l);
    if (!err)
        err = decode_heap(l);
    if (!err)
        err = decode_timeline(l);
    if (!err && !l->depth)
        err = decode_nested(&l->peak, &l->s->at_peak);
    if (!err && !l->depth)
        err = decode_nested(&l->allocs, &l->s->allocs);
    if (l->interned)
        omi_os_unmap(l->interned, interned_bytes(l));
    l->interned = NULL;
    return err;
}

/* Read up to size bytes of fd into a fresh mapping (*mapped bytes), the
 * capture c: 0 or -errno. */
static int read_all(int fd, const char *path, size_t size,
                    struct capture *c, unsigned char **buf, size_t *mapped)
{
    size_t done = 0;

    *mapped = omi_os_page_round(size);
    *buf = omi_os_map(*mapped, 0);
    if (!*buf)
        return out_of_memory();
    while (done < size) {
        ssize_t n = read(fd, *buf + done, size - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return failed("read", path, errno);
        if (n == 0)
            break;              /* it shrank: what was read is the file */
        done += (size_t)n;
    }
    c->buf = *buf;
    c->size = done;
    return 0;
}

/* Read the file at path into c, in a fresh mapping (*mapped bytes, 0 for
 * an empty file): 0 or -errno, with the message set. */
static int read_capture(const char *path, struct capture *c,
                        unsigned char **buf, size_t *mapped)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

    if (fd < 0)
        return failed("open", path, errno);
    if (fstat(fd, &st) != 0)
        err = failed("stat", path, errno);
    else if (!S_ISREG(st.st_mode))
        err = bad("%s is not a regular file", path);
    else if (st.st_size > 0)
        err = read_all(fd, path, (size_t)st.st_size, c, buf, mapped);
    close(fd);
    return err;
}

struct om_snapshot *om_snapshot_load(const char *path)
{
    struct loader l = { 0 };
    unsigned char *buf = NULL;
    size_t mapped = 0;
    int err;

    load_error[0] = '\0';
    err = path ? read_capture(path, &l.c, &buf, &mapped) : bad("no path");
    if (!err)
        err = walk_sections(&l.c, note_section, &l);
    if (!err)
        err = decode(&l);
    if (!err)
        err = decode_modules(&l);
    if (buf)
        omi_os_unmap(buf, mapped);
    if (err) {
        om_snapshot_free(l.s);
        errno = -err;
        return NULL;
    }
    OM_ASSERT_EXPENSIVE(snapshot_is_sound(l.s));
    return l.s;
}

const char *om_snapshot_load_error(void)
{
    return load_error;
}
