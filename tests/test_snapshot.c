/*
 * test_snapshot.c - snapshots without tracing: built by hand through the
 * builder (src/trace.h), then statistics for each key (cumulative or
 * not, ties, weights and their errors), compare, filters and their glob
 * patterns, the capture file (round trip, every truncation, every flipped
 * byte, unknown sections, crafted damage), and out of memory everywhere.
 */
#define _GNU_SOURCE 1           /* memmem */
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>

#include "testutil.h"
#include "trace.h"

#define MAX_FRAMES 16
#define FILE_MAX 8192
#define NO_FUNCTION 0xffffffffu     /* a frame's function: none */

static char dir[64];            /* a fresh directory for the captures */

/* ---- Helpers ---- */

/* dir/name into buf (PATH_MAX bytes). */
static const char *path_of(char *buf, const char *name)
{
    snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return buf;
}

/*
 * Frames from "file:line[:function] ..." (most recent first; "" is no
 * frame) into f, their strings in buf.  Returns the count.
 */
static unsigned parse_frames(const char *spec, struct om_frame *f,
                             char *buf, size_t size)
{
    unsigned n = 0;
    char *save = NULL, *end;

    snprintf(buf, size, "%s", spec);
    for (char *tok = strtok_r(buf, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        char *colon = strchr(tok, ':');

        assert_true(n < MAX_FRAMES);
        f[n] = (struct om_frame){ tok, NULL, 0, NULL };
        if (colon) {
            *colon = '\0';
            f[n].lineno = (unsigned)strtoul(colon + 1, &end, 10);
            if (*end == ':')
                f[n].function = end + 1;
        }
        n++;
    }
    return n;
}

/* A new traceback of s from spec, total_nframe = total (0: nframe). */
static uint32_t add_tb(struct om_snapshot *s, const char *spec,
                       unsigned total)
{
    struct om_frame f[MAX_FRAMES];
    char buf[512];
    unsigned n = parse_frames(spec, f, buf, sizeof(buf));
    long i = omi_snapshot_add_traceback(s, f, n, total ? total : n);

    assert_true(i >= 0);
    return (uint32_t)i;
}

/* count traces of size bytes and weight w in domain, on one new
 * traceback made of spec. */
static void add_n(struct om_snapshot *s, unsigned domain, uint64_t size,
                  double w, const char *spec, int count)
{
    uint32_t tb = add_tb(s, spec, 0);

    for (int i = 0; i < count; i++)
        assert_int_equal(omi_snapshot_add_trace(s, tb, domain, size, w), 0);
}

static struct om_snapshot *new_snapshot(void)
{
    struct om_snapshot *s = omi_snapshot_new(4, 0);

    assert_non_null(s);
    return s;
}

/* tb as "file:line[:function] ..." (most recent first), in a static
 * buffer. */
static const char *fmt_tb(const struct om_traceback *tb)
{
    static char buf[1024];
    size_t n = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < tb->nframe; i++) {
        const struct om_frame *f = &tb->frames[i];

        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s:%u%s%s",
                              i ? " " : "", f->filename, f->lineno,
                              f->function ? ":" : "",
                              f->function ? f->function : "");
    }
    return buf;
}

struct want {
    const char *tb;
    size_t size, count;
};

struct want_diff {
    const char *tb;
    size_t size;
    long size_diff;
    size_t count;
    long count_diff;
};

static void expect_stats(const struct om_snapshot *s, enum om_key key,
                         bool cumulative, const struct want *w, size_t nw)
{
    struct om_statistic *st = NULL;
    size_t n = 99;

    assert_int_equal(om_snapshot_statistics(s, key, cumulative, &st, &n), 0);
    assert_int_equal(n, nw);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(fmt_tb(st[i].traceback), w[i].tb);
        assert_int_equal(st[i].size, w[i].size);
        assert_int_equal(st[i].count, w[i].count);
    }
}

static void expect_diffs(const struct om_snapshot *now,
                         const struct om_snapshot *before, enum om_key key,
                         bool cumulative, const struct want_diff *w,
                         size_t nw)
{
    struct om_statistic_diff *d = NULL;
    size_t n = 99;

    assert_int_equal(om_snapshot_compare(now, before, key, cumulative, &d,
                                         &n), 0);
    assert_int_equal(n, nw);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(fmt_tb(d[i].traceback), w[i].tb);
        assert_int_equal(d[i].size, w[i].size);
        assert_int_equal(d[i].size_diff, w[i].size_diff);
        assert_int_equal(d[i].count, w[i].count);
        assert_int_equal(d[i].count_diff, w[i].count_diff);
    }
}

static void assert_close(double a, double b)
{
    assert_true(a - b < 1e-9 && b - a < 1e-9);
}

/* The data of CPython's test_tracemalloc create_snapshots(). */
static struct om_snapshot *tracemalloc_data(void)
{
    struct om_snapshot *s = new_snapshot();

    add_n(s, 0, 10, 1, "a.py:2 b.py:4", 3);
    add_n(s, 1, 2, 1, "a.py:5 b.py:4", 1);
    add_n(s, 2, 66, 1, "b.py:1", 1);
    add_n(s, 3, 7, 1, "<unknown>:0", 1);
    return s;
}

/* ---- The builder ---- */

/* Equal strings are one pointer, copied; the set grows. */
static void test_intern(void **state)
{
    struct om_snapshot *s = new_snapshot();
    static const char *first[3000];
    char buf[32] = "alloc.c";
    const char *a = omi_snapshot_intern(s, buf);

    assert_non_null(a);
    assert_ptr_not_equal(a, buf);
    buf[0] = 'X';
    assert_string_equal(a, "alloc.c");
    assert_ptr_equal(omi_snapshot_intern(s, "alloc.c"), a);
    assert_ptr_not_equal(omi_snapshot_intern(s, "alloc.h"), a);
    assert_null(omi_snapshot_intern(s, NULL));
    assert_ptr_equal(omi_snapshot_intern(s, ""), omi_snapshot_intern(s, ""));
    for (int i = 0; i < 3000; i++) {
        snprintf(buf, sizeof(buf), "file%d.c", i);
        first[i] = omi_snapshot_intern(s, buf);
        assert_string_equal(first[i], buf);
    }
    assert_true(s->strings.mask + 1 >= 2 * s->strings.used);
    for (int i = 0; i < 3000; i++) {
        snprintf(buf, sizeof(buf), "file%d.c", i);
        assert_ptr_equal(omi_snapshot_intern(s, buf), first[i]);
    }
    assert_ptr_equal(omi_snapshot_intern(s, "alloc.c"), a);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* Tracebacks are copied with interned strings; traces read back. */
static void test_builder(void **state)
{
    struct om_snapshot *s = omi_snapshot_new(7, 512);
    struct om_frame f[2] = { { NULL, "fn", 3, (void *)0x40 },
                             { "main.c", NULL, 9, NULL } };
    struct om_trace_info info;
    long tb = omi_snapshot_add_traceback(s, f, 2, 5);
    const struct om_traceback *t;

    assert_int_equal(tb, 0);
    f[1].filename = "other.c";
    assert_int_equal(omi_snapshot_add_traceback(s, NULL, 0, 0), 1);
    assert_int_equal(omi_snapshot_add_trace(s, 0, 3, 100, 2.5), 0);
    assert_int_equal(omi_snapshot_add_trace(s, 1, 0, 7, 1), 0);
    assert_int_equal(om_snapshot_count(s), 2);
    assert_int_equal(om_snapshot_traceback_limit(s), 7);
    assert_int_equal(om_snapshot_trace(s, 0, &info), 0);
    assert_int_equal(info.domain, 3);
    assert_int_equal(info.size, 100);
    assert_close(info.weight, 2.5);
    t = info.traceback;
    assert_int_equal(t->nframe, 2);
    assert_int_equal(t->total_nframe, 5);
    assert_string_equal(fmt_tb(t), "<unknown>:3:fn main.c:9");
    assert_ptr_equal(t->frames[0].pc, (void *)0x40);
    assert_ptr_equal(t->frames[1].filename, omi_snapshot_intern(s, "main.c"));
    assert_ptr_equal(t->frames[0].filename,
                     omi_snapshot_intern(s, "<unknown>"));
    assert_int_equal(om_snapshot_trace(s, 1, &info), 0);
    assert_int_equal(info.traceback->nframe, 0);
    assert_int_equal(om_snapshot_trace(s, 2, &info), -ERANGE);
    assert_int_equal(om_snapshot_trace(NULL, 0, &info), -EINVAL);
    assert_int_equal(om_snapshot_trace(s, 0, NULL), -EINVAL);
    assert_int_equal(om_snapshot_count(NULL), 0);
    assert_int_equal(om_snapshot_traceback_limit(NULL), -EINVAL);
    om_snapshot_free(s);
    om_snapshot_free(NULL);
    assert_int_equal(om_check(), 0);
}

/* 100,000 traces and 5,000 tracebacks: the arrays grow, indices hold. */
static void test_builder_grows(void **state)
{
    struct om_snapshot *s = new_snapshot();
    struct om_trace_info info;
    char spec[64];

    for (int i = 0; i < 5000; i++) {
        snprintf(spec, sizeof(spec), "f%d.c:%d", i % 100, i);
        assert_int_equal(add_tb(s, spec, 0), i);
    }
    for (int i = 0; i < 100000; i++)
        assert_int_equal(omi_snapshot_add_trace(s, (uint32_t)(i % 5000),
                                                0, (uint64_t)i, 1), 0);
    assert_int_equal(om_snapshot_count(s), 100000);
    for (int i = 0; i < 100000; i += 997) {
        assert_int_equal(om_snapshot_trace(s, (size_t)i, &info), 0);
        assert_int_equal(info.size, i);
        assert_int_equal(info.traceback->frames[0].lineno, i % 5000);
    }
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* A region counts the pages it cut from, not the tails of its chunks
 * that nothing was cut from (om_trace_get_memory's traceback region). */
static void test_region_touched(void **state)
{
    struct omi_region r = { 0 };
    const size_t k = 1024;
    char *a, *b, *c;

    if (sysconf(_SC_PAGESIZE) != 4096)
        skip();
    assert_int_equal(omi_region_touched(&r), 0);
    assert_int_equal(omi_region_check(&r), 0);
    /* A 64 KiB chunk, 16 bytes of header, 104 bytes cut: one page. */
    assert_non_null(omi_region_alloc(&r, 100));
    assert_int_equal(r.mapped, 64 * k);
    assert_int_equal(omi_region_touched(&r), 4 * k);
    /* Cut at byte 128 up to 40128: ten pages. */
    assert_non_null(a = omi_region_alloc(&r, 40000));
    assert_int_equal(omi_region_touched(&r), 40 * k);
    /* 30000 bytes do not fit in the 25408 left: a new chunk, the first's
     * last six pages never cut. */
    assert_non_null(b = omi_region_alloc(&r, 30000));
    assert_int_equal(r.mapped, 128 * k);
    assert_int_equal(r.left, 24 * k);
    assert_int_equal(omi_region_touched(&r), 40 * k + 32 * k);
    /* A request bigger than a chunk gets its own, cut to its end. */
    assert_non_null(c = omi_region_alloc(&r, 100000));
    assert_int_equal(r.mapped, 128 * k + 100 * k);
    assert_int_equal(r.left, 24 * k + 32 * k);
    assert_int_equal(omi_region_touched(&r), 40 * k + 32 * k + 100 * k);
    assert_true(a[39999] == 0 && b[0] == 0 && c[99999] == 0);
    assert_int_equal(omi_region_check(&r), 0);
    omi_region_release(&r);
    assert_int_equal(omi_region_touched(&r), 0);
    assert_int_equal(omi_region_check(&r), 0);
    assert_int_equal(om_check(), 0);
}

/* ---- Statistics ---- */

/* CPython's test_snapshot_group_by_{traceback,lineno,file}. */
static void test_statistics_keys(void **state)
{
    struct om_snapshot *s = tracemalloc_data();
    const struct want by_file[] = {
        { "b.py:0", 66, 1 }, { "a.py:0", 32, 4 }, { "<unknown>:0", 7, 1 },
    };
    const struct want by_line[] = {
        { "b.py:1", 66, 1 }, { "a.py:2", 30, 3 }, { "<unknown>:0", 7, 1 },
        { "a.py:5", 2, 1 },
    };
    const struct want by_tb[] = {
        { "b.py:1", 66, 1 }, { "a.py:2 b.py:4", 30, 3 },
        { "<unknown>:0", 7, 1 }, { "a.py:5 b.py:4", 2, 1 },
    };

    expect_stats(s, OM_KEY_FILENAME, false, by_file, 3);
    expect_stats(s, OM_KEY_LINENO, false, by_line, 4);
    expect_stats(s, OM_KEY_TRACEBACK, false, by_tb, 4);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* CPython's test_snapshot_group_by_cumulative, and a recursive frame:
 * tracemalloc counts every occurrence of a frame (no set). */
static void test_statistics_cumulative(void **state)
{
    struct om_snapshot *s = tracemalloc_data(), *r = new_snapshot();
    const struct want by_file[] = {
        { "b.py:0", 98, 5 }, { "a.py:0", 32, 4 }, { "<unknown>:0", 7, 1 },
    };
    const struct want by_line[] = {
        { "b.py:1", 66, 1 }, { "b.py:4", 32, 4 }, { "a.py:2", 30, 3 },
        { "<unknown>:0", 7, 1 }, { "a.py:5", 2, 1 },
    };
    const struct want rec_line[] = {
        { "r.c:5", 20, 2 }, { "r.c:9", 10, 1 },
    };
    const struct want rec_file[] = { { "r.c:0", 30, 3 } };

    expect_stats(s, OM_KEY_FILENAME, true, by_file, 3);
    expect_stats(s, OM_KEY_LINENO, true, by_line, 5);
    add_n(r, 0, 10, 1, "r.c:5 r.c:5 r.c:9", 1);
    expect_stats(r, OM_KEY_LINENO, true, rec_line, 2);
    expect_stats(r, OM_KEY_FILENAME, true, rec_file, 1);
    om_snapshot_free(s);
    om_snapshot_free(r);
    assert_int_equal(om_check(), 0);
}

/* Equal sizes: more blocks first; equal both: the bigger traceback in
 * tracemalloc's order (frames oldest first: file, line, function). */
static void test_statistics_ties(void **state)
{
    struct om_snapshot *s = new_snapshot(), *t = new_snapshot();
    const struct want by_tb[] = {
        { "c.c:1", 10, 1 }, { "a.c:2", 10, 1 }, { "b.c:1 a.c:1", 10, 1 },
        { "a.c:1", 10, 1 }, { "z.c:1", 9, 1 },
    };
    const struct want by_line[] = {
        { "m.c:6", 12, 2 }, { "n.c:5", 12, 1 }, { "m.c:5:g", 12, 1 },
        { "m.c:5:f", 12, 1 }, { "m.c:5", 12, 1 },
    };

    add_n(s, 0, 10, 1, "a.c:1", 1);
    add_n(s, 0, 10, 1, "b.c:1 a.c:1", 1);
    add_n(s, 0, 10, 1, "c.c:1", 1);
    add_n(s, 0, 10, 1, "a.c:2", 1);
    add_n(s, 0, 9, 1, "z.c:1", 1);
    expect_stats(s, OM_KEY_TRACEBACK, false, by_tb, 5);
    add_n(t, 0, 12, 1, "m.c:5:f", 1);
    add_n(t, 0, 12, 1, "m.c:5:g", 1);
    add_n(t, 0, 12, 1, "m.c:5", 1);
    add_n(t, 0, 6, 1, "m.c:6", 2);
    add_n(t, 0, 12, 1, "n.c:5", 1);
    expect_stats(t, OM_KEY_LINENO, false, by_line, 5);
    om_snapshot_free(s);
    om_snapshot_free(t);
    assert_int_equal(om_check(), 0);
}

/* A line key compares file, line, function and pc; a traceback key all
 * frames and total_nframe; equal content in two tracebacks is one group. */
static void test_statistics_key_fields(void **state)
{
    struct om_snapshot *s = new_snapshot();
    struct om_frame f[2] = { { "p.c", "f", 3, (void *)0x10 },
                             { "p.c", "f", 3, (void *)0x20 } };
    struct om_statistic *st;
    size_t n;

    for (int i = 0; i < 2; i++) {
        long tb = omi_snapshot_add_traceback(s, &f[i], 1, 1);
        assert_int_equal(omi_snapshot_add_trace(s, (uint32_t)tb, 0, 5, 1), 0);
    }
    add_n(s, 0, 1, 1, "q.c:1", 1);
    add_n(s, 0, 2, 1, "q.c:1", 1);
    uint32_t deep = add_tb(s, "q.c:1", 9);
    assert_int_equal(omi_snapshot_add_trace(s, deep, 0, 4, 1), 0);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_LINENO, false, &st, &n),
                     0);
    assert_int_equal(n, 3);
    assert_string_equal(fmt_tb(st[0].traceback), "q.c:1");
    assert_int_equal(st[0].size, 7);
    assert_ptr_equal(st[1].traceback->frames[0].pc, (void *)0x20);
    assert_ptr_equal(st[2].traceback->frames[0].pc, (void *)0x10);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_TRACEBACK, false, &st,
                                            &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(st[0].size, 5);
    assert_int_equal(st[0].traceback->total_nframe, 1);
    assert_int_equal(st[0].count, 1);
    assert_int_equal(st[2].size, 4);
    assert_int_equal(st[2].traceback->total_nframe, 9);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_FILENAME, false, &st,
                                            &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(fmt_tb(st[0].traceback), "p.c:0");
    assert_null(st[0].traceback->frames[0].function);
    assert_null(st[0].traceback->frames[0].pc);
    om_snapshot_free(s);
    /* Enough keys on one line that their probe runs meet. */
    s = new_snapshot();
    for (int i = 0; i < 300; i++) {
        char spec[32];

        snprintf(spec, sizeof(spec), "k.c:1:f%d", i);
        add_n(s, 0, 1, 1, spec, 1);
    }
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_LINENO, false, &st, &n),
                     0);
    assert_int_equal(n, 300);
    assert_string_equal(fmt_tb(st[0].traceback), "k.c:1:f99");
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* A traceback with no frame counts as ("<unknown>", 0). */
static void test_statistics_no_frames(void **state)
{
    struct om_snapshot *s = new_snapshot();
    struct om_frame nofile = { NULL, NULL, 0, NULL };
    const struct want one[] = { { "<unknown>:0", 8, 2 } };
    struct om_statistic *st;
    size_t n;

    add_n(s, 0, 3, 1, "", 1);
    assert_int_equal(omi_snapshot_add_trace(
                         s, (uint32_t)omi_snapshot_add_traceback(s, &nofile,
                                                                 1, 1),
                         0, 5, 1), 0);
    expect_stats(s, OM_KEY_FILENAME, false, one, 1);
    expect_stats(s, OM_KEY_LINENO, false, one, 1);
    expect_stats(s, OM_KEY_FILENAME, true, one, 1);
    expect_stats(s, OM_KEY_LINENO, true, one, 1);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_TRACEBACK, false, &st,
                                            &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(st[0].traceback->nframe, 1);
    assert_int_equal(st[1].traceback->nframe, 0);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* Sampled traces: sums of size * w and of w, rounded; errors are
 * sqrt(sum size^2 w (w - 1)) and sqrt(sum w (w - 1)). */
static void test_statistics_weights(void **state)
{
    struct om_snapshot *s = omi_snapshot_new(1, 4096);
    struct om_statistic *st;
    size_t n;

    add_n(s, 0, 10, 2.5, "w.c:1", 1);
    add_n(s, 0, 10, 1.5, "w.c:1", 1);
    add_n(s, 0, 6, 1, "w.c:1", 1);
    add_n(s, 0, 10, 2, "x.c:1", 2);
    add_n(s, 0, 100, 1, "e.c:1", 1);
    add_n(s, 0, 3, 1.5, "r.c:1", 1);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_LINENO, false, &st, &n),
                     0);
    assert_int_equal(n, 4);
    assert_string_equal(fmt_tb(st[0].traceback), "e.c:1");
    assert_close(st[0].size_error, 0);
    assert_close(st[0].count_error, 0);
    assert_string_equal(fmt_tb(st[1].traceback), "w.c:1");
    assert_int_equal(st[1].size, 46);
    assert_int_equal(st[1].count, 5);
    assert_close(st[1].size_error, 21.213203435596427);
    assert_close(st[1].count_error, 2.1213203435596424);
    assert_string_equal(fmt_tb(st[2].traceback), "x.c:1");
    assert_int_equal(st[2].size, 40);
    assert_int_equal(st[2].count, 4);
    assert_close(st[2].size_error, 20);
    assert_close(st[2].count_error, 2);
    assert_string_equal(fmt_tb(st[3].traceback), "r.c:1");
    assert_int_equal(st[3].size, 5);    /* 4.5 rounds up */
    assert_int_equal(st[3].count, 2);   /* 1.5 too */
    assert_close(st[3].count_error, 0.8660254037844386);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* Sums of 2^52 and over are whole already and come out as they are: an
 * odd one plus 0.5 would round to even, one more (fuzz_reports: top's
 * total one over the traces' bytes). */
static void test_statistics_big_odd(void **state)
{
    struct om_snapshot *s = omi_snapshot_new(1, 4096);
    struct om_statistic *st;
    size_t n;

    add_n(s, 0, ((size_t)1 << 52) + 1, 1, "b.c:1", 1);
    add_n(s, 0, ((size_t)1 << 53) - 1, 1, "c.c:1", 1);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_LINENO, false, &st, &n),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(fmt_tb(st[0].traceback), "c.c:1");
    assert_true(st[0].size == ((size_t)1 << 53) - 1);
    assert_string_equal(fmt_tb(st[1].traceback), "b.c:1");
    assert_true(st[1].size == ((size_t)1 << 52) + 1);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

static void test_statistics_args(void **state)
{
    struct om_snapshot *s = new_snapshot();
    struct om_statistic *st = (void *)1;
    size_t n = 5;

    assert_int_equal(om_snapshot_statistics(s, OM_KEY_LINENO, false, &st, &n),
                     0);
    assert_int_equal(n, 0);
    assert_null(st);
    assert_int_equal(om_snapshot_statistics(NULL, OM_KEY_LINENO, false, &st,
                                            &n), -EINVAL);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_LINENO, false, NULL,
                                            &n), -EINVAL);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_LINENO, false, &st,
                                            NULL), -EINVAL);
    assert_int_equal(om_snapshot_statistics(s, (enum om_key)3, false, &st,
                                            &n), -EINVAL);
    assert_int_equal(om_snapshot_statistics(s, (enum om_key)-1, false, &st,
                                            &n), -EINVAL);
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_TRACEBACK, true, &st,
                                            &n), -EINVAL);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* ---- Compare ---- */

static void test_compare(void **state)
{
    struct om_snapshot *before = new_snapshot(), *now = new_snapshot();
    const struct want_diff by_line[] = {
        { "a.c:1", 50, 30, 5, 3 }, { "d.c:4", 30, 30, 1, 1 },
        { "b.c:2", 20, -30, 1, 0 }, { "c.c:3", 0, -7, 0, -1 },
    };
    const struct want_diff back[] = {
        { "b.c:2", 50, 30, 1, 0 }, { "a.c:1", 20, -30, 2, -3 },
        { "d.c:4", 0, -30, 0, -1 }, { "c.c:3", 7, 7, 1, 1 },
    };
    const struct want_diff self[] = {
        { "a.c:1", 50, 0, 5, 0 }, { "d.c:4", 30, 0, 1, 0 },
        { "b.c:2", 20, 0, 1, 0 },
    };
    struct om_statistic_diff *d;
    size_t n;

    add_n(before, 0, 10, 1, "a.c:1", 2);
    add_n(before, 0, 50, 1, "b.c:2", 1);
    add_n(before, 0, 7, 1, "c.c:3", 1);
    add_n(now, 0, 10, 1, "a.c:1", 5);
    add_n(now, 0, 20, 1, "b.c:2", 1);
    add_n(now, 0, 30, 1, "d.c:4", 1);
    expect_diffs(now, before, OM_KEY_LINENO, false, by_line, 4);
    expect_diffs(before, now, OM_KEY_LINENO, false, back, 4);
    expect_diffs(now, now, OM_KEY_TRACEBACK, false, self, 3);
    /* before's group lives in now's memory, with now's strings. */
    assert_int_equal(om_snapshot_compare(now, before, OM_KEY_TRACEBACK,
                                         false, &d, &n), 0);
    assert_ptr_equal(d[3].traceback->frames[0].filename,
                     omi_snapshot_intern(now, "c.c"));
    om_snapshot_free(before);
    assert_string_equal(fmt_tb(d[3].traceback), "c.c:3");
    om_snapshot_free(now);
    assert_int_equal(om_check(), 0);
}

/* Sums beyond PTRDIFF_MAX (a loaded capture may hold any sizes up to
 * it): the sizes saturate at SIZE_MAX, the differences at +-PTRDIFF_MAX. */
static void test_compare_saturates(void **state)
{
    struct om_snapshot *big = new_snapshot(), *small = new_snapshot();
    struct om_statistic_diff *d;
    size_t n;

    add_n(big, 0, PTRDIFF_MAX, 1, "a.c:1", 3);
    add_n(small, 0, 8, 1, "a.c:1", 1);
    assert_int_equal(om_snapshot_compare(big, small, OM_KEY_LINENO, false,
                                         &d, &n), 0);
    assert_int_equal(n, 1);
    assert_true(d[0].size == SIZE_MAX);
    assert_true(d[0].size_diff == PTRDIFF_MAX);
    assert_int_equal(d[0].count_diff, 2);
    assert_int_equal(om_snapshot_compare(small, big, OM_KEY_LINENO, false,
                                         &d, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(d[0].size, 8);
    assert_true(d[0].size_diff == -PTRDIFF_MAX);
    assert_int_equal(d[0].count_diff, -2);
    om_snapshot_free(big);
    om_snapshot_free(small);
    assert_int_equal(om_check(), 0);
}

static void test_compare_cumulative(void **state)
{
    struct om_snapshot *before = new_snapshot(), *now = new_snapshot();
    struct om_snapshot *empty = new_snapshot();
    const struct want_diff by_file[] = {
        { "x.c:0", 10, 10, 1, 1 }, { "main.c:0", 10, 6, 1, 0 },
        { "y.c:0", 0, -4, 0, -1 },
    };
    const struct want_diff gone[] = {
        { "y.c:1", 0, -4, 0, -1 }, { "main.c:9", 0, -4, 0, -1 },
    };
    struct om_statistic_diff *d = (void *)1;
    size_t n = 3;

    add_n(now, 0, 10, 1, "x.c:1 main.c:9", 1);
    add_n(before, 0, 4, 1, "y.c:1 main.c:9", 1);
    expect_diffs(now, before, OM_KEY_FILENAME, true, by_file, 3);
    expect_diffs(empty, before, OM_KEY_LINENO, true, gone, 2);
    assert_int_equal(om_snapshot_compare(empty, empty, OM_KEY_LINENO, false,
                                         &d, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(om_snapshot_compare(now, before, OM_KEY_TRACEBACK, true,
                                         &d, &n), -EINVAL);
    assert_int_equal(om_snapshot_compare(now, NULL, OM_KEY_LINENO, false,
                                         &d, &n), -EINVAL);
    assert_int_equal(om_snapshot_compare(NULL, now, OM_KEY_LINENO, false,
                                         &d, &n), -EINVAL);
    assert_int_equal(om_snapshot_compare(now, before, (enum om_key)7, false,
                                         &d, &n), -EINVAL);
    om_snapshot_free(before);
    om_snapshot_free(now);
    om_snapshot_free(empty);
    assert_int_equal(om_check(), 0);
}

/* ---- Filters ---- */

/* Whether one trace at file:line passes the filter (pattern, lineno). */
static bool glob_keeps(const char *pattern, const char *file)
{
    struct om_snapshot *s = new_snapshot(), *out;
    struct om_frame f = { file, NULL, 1, NULL };
    struct om_filter filter = { true, pattern, 0, false, -1 };
    size_t kept;

    assert_int_equal(omi_snapshot_add_trace(
                         s, (uint32_t)omi_snapshot_add_traceback(s, &f, 1, 1),
                         0, 1, 1), 0);
    out = om_snapshot_filter(s, &filter, 1);
    assert_non_null(out);
    kept = om_snapshot_count(out);
    om_snapshot_free(out);
    om_snapshot_free(s);
    return kept == 1;
}

static void test_filter_glob(void **state)
{
    assert_true(glob_keeps("*", "a.c"));
    assert_true(glob_keeps("*.c", "src/a.c"));
    assert_false(glob_keeps("*.c", "a.h"));
    assert_false(glob_keeps("*.C", "a.c"));
    assert_true(glob_keeps("src/a*.c", "src/alloc.c"));
    assert_true(glob_keeps("src/a*.c", "src/a.c"));
    assert_false(glob_keeps("src/a*.c", "src/b.c"));
    assert_true(glob_keeps("?rc/*", "src/x"));
    assert_false(glob_keeps("?rc/*", "srcx/x"));
    assert_true(glob_keeps("src/[a-c]*", "src/b.c"));
    assert_false(glob_keeps("src/[a-c]*", "src/d.c"));
    assert_false(glob_keeps("src/[!a]*", "src/a.c"));
    assert_true(glob_keeps("src/[!a]*", "src/b.c"));
    assert_true(glob_keeps("[]]x", "]x"));
    assert_true(glob_keeps("[!]]x", "ax"));
    assert_false(glob_keeps("[!]]x", "]x"));
    assert_true(glob_keeps("a[", "a["));
    assert_false(glob_keeps("a[", "ab"));
    assert_true(glob_keeps("[!]x", "[!]x"));
    assert_false(glob_keeps("[z-a]", "m"));
    assert_true(glob_keeps("[a-]", "-"));
    assert_true(glob_keeps("[a-]", "a"));
    assert_false(glob_keeps("[a-]", "b"));
    assert_true(glob_keeps("[ab-dx]", "c"));
    assert_false(glob_keeps("[ab-dx]", "e"));
    assert_true(glob_keeps("*a*b*c", "xaybzc"));
    assert_false(glob_keeps("*a*b*c", "xaybz"));
    assert_true(glob_keeps("a*", "a"));
    assert_false(glob_keeps("a?", "a"));
    assert_true(glob_keeps("*.pyc", "x.py"));
    assert_true(glob_keeps("*.py", "x.pyc"));
    assert_true(glob_keeps("x.pyc", "x.pyc"));
    assert_false(glob_keeps("x.pyc", "x.pyo"));
    assert_true(glob_keeps("/a/*/c.py", "/a/b/x/c.py"));
    assert_int_equal(om_check(), 0);
}

/*
 * Four traces, told apart by their sizes (1, 2, 4, 8):
 *   size 1, domain 0: a.c:1 b.c:2      size 4, domain 0: c.c:5
 *   size 2, domain 1: b.c:3 a.c:4      size 8, domain 2: no frame
 * The sum of the sizes that pass.
 */
static size_t kept_mask(const struct om_filter *f, size_t n)
{
    struct om_snapshot *s = new_snapshot(), *out;
    struct om_trace_info info;
    size_t mask = 0;

    add_n(s, 0, 1, 1, "a.c:1 b.c:2", 1);
    add_n(s, 1, 2, 1, "b.c:3 a.c:4", 1);
    add_n(s, 0, 4, 1, "c.c:5", 1);
    add_n(s, 2, 8, 1, "", 1);
    out = om_snapshot_filter(s, f, n);
    assert_non_null(out);
    for (size_t i = 0; i < om_snapshot_count(out); i++) {
        assert_int_equal(om_snapshot_trace(out, i, &info), 0);
        mask += info.size;
    }
    om_snapshot_free(out);
    om_snapshot_free(s);
    return mask;
}

#define KEPT(...)                                                          \
    kept_mask((const struct om_filter[]){ __VA_ARGS__ },                  \
              sizeof((const struct om_filter[]){ __VA_ARGS__ }) /         \
                  sizeof(struct om_filter))

static void test_filter_semantics(void **state)
{
    /* { inclusive, pattern, lineno, all_frames, domain } */
    assert_int_equal(KEPT({ true, "a.c", 0, false, -1 }), 1);
    assert_int_equal(KEPT({ true, "a.c", 0, true, -1 }), 3);
    assert_int_equal(KEPT({ false, "a.c", 0, false, -1 }), 14);
    assert_int_equal(KEPT({ false, "a.c", 0, true, -1 }), 12);
    assert_int_equal(KEPT({ true, "a.c", 4, true, -1 }), 2);
    assert_int_equal(KEPT({ true, "a.c", 4, false, -1 }), 0);
    assert_int_equal(KEPT({ false, "b.c", 2, true, -1 }), 14);
    assert_int_equal(KEPT({ false, "b.c", 2, false, -1 }), 15);
    assert_int_equal(KEPT({ true, "*", 0, false, 0 }), 5);
    assert_int_equal(KEPT({ false, "a.c", 0, true, 1 }), 13);
    assert_int_equal(KEPT({ false, "*", 0, false, 0 }), 10);
    assert_int_equal(KEPT({ true, NULL, 0, false, 1 }), 2);
    assert_int_equal(KEPT({ false, NULL, 0, false, 2 }), 7);
    assert_int_equal(KEPT({ true, NULL, 0, false, -1 }), 15);
    assert_int_equal(KEPT({ false, NULL, 0, false, -1 }), 0);
    assert_int_equal(KEPT({ true, "<unknown>", 0, false, -1 }), 8);
    assert_int_equal(KEPT({ true, "<unknown>", 1, false, -1 }), 0);
    assert_int_equal(KEPT({ true, "a.c", 0, false, -1 },
                          { true, "c.c", 0, false, -1 }), 5);
    assert_int_equal(KEPT({ true, "*", 0, false, -1 },
                          { false, NULL, 0, false, 2 }), 7);
    assert_int_equal(KEPT({ true, "*", 0, true, -1 },
                          { false, "b.c", 0, true, -1 },
                          { false, "c.c", 0, false, -1 }), 8);
    assert_int_equal(kept_mask(NULL, 0), 15);
    assert_int_equal(om_check(), 0);
}

/* The result is a snapshot of its own: copied tracebacks and counters. */
static void test_filter_copies(void **state)
{
    struct om_snapshot *s = omi_snapshot_new(9, 100), *out;
    struct om_filter f = { true, "k*", 0, false, -1 };
    const struct want w[] = { { "keep.c:1:fn", 30, 3 } };
    struct om_trace_info info;

    s->lost = 4;
    s->current = 50;
    s->peak = 70;
    add_n(s, 0, 10, 2, "keep.c:1:fn", 1);
    add_n(s, 0, 10, 1, "drop.c:1", 3);
    add_n(s, 0, 10, 1, "keep.c:1:fn", 1);
    out = om_snapshot_filter(s, &f, 1);
    assert_non_null(out);
    assert_int_equal(out->ntracebacks, 2);
    assert_int_equal(om_snapshot_trace(out, 0, &info), 0);
    assert_ptr_not_equal(info.traceback->frames[0].filename,
                         omi_snapshot_intern(s, "keep.c"));
    om_snapshot_free(s);
    expect_stats(out, OM_KEY_LINENO, false, w, 1);
    assert_int_equal(om_snapshot_traceback_limit(out), 9);
    assert_int_equal(out->sample_mean, 100);
    assert_int_equal(out->lost, 4);
    assert_int_equal(out->current, 50);
    assert_int_equal(out->peak, 70);
    errno = 0;
    assert_null(om_snapshot_filter(NULL, &f, 1));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(om_snapshot_filter(out, NULL, 1));
    assert_int_equal(errno, EINVAL);
    f.domain = -2;
    errno = 0;
    assert_null(om_snapshot_filter(out, &f, 1));
    assert_int_equal(errno, EINVAL);
    om_snapshot_free(out);
    assert_int_equal(om_check(), 0);
}

/* ---- The capture file ---- */

static void write_bytes(const char *path, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    assert_int_equal(close(fd), 0);
}

static size_t read_bytes(const char *path, unsigned char *b, size_t size)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    assert_true(fd >= 0);
    n = read(fd, b, size);
    assert_true(n > 0 && (size_t)n < size);
    close(fd);
    return (size_t)n;
}

/* Load b[0..n) from a file: the snapshot, or NULL with errno. */
static struct om_snapshot *load_bytes(const void *b, size_t n)
{
    char path[PATH_MAX];

    write_bytes(path_of(path, "bytes.omt"), b, n);
    return om_snapshot_load(path);
}

/* Loading b[0..n) fails with EINVAL, saying what. */
static void expect_damaged(const void *b, size_t n, const char *what)
{
    errno = 0;
    assert_null(load_bytes(b, n));
    assert_int_equal(errno, EINVAL);
    if (!strstr(om_snapshot_load_error(), what))
        fail_msg("load error \"%s\" does not say \"%s\"",
                 om_snapshot_load_error(), what);
}

static uint64_t fnv1a(const unsigned char *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void put_le(unsigned char *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* A snapshot with every kind of field worth keeping. */
static struct om_snapshot *rich_snapshot(void)
{
    struct om_snapshot *s = omi_snapshot_new(5, 4096);
    struct om_frame f[2] = { { "héllo.c", "fn", 12, (void *)0xdeadbeef00 },
                             { "main.c", NULL, 3, NULL } };

    s->lost = 3;
    s->current = 1000;
    s->peak = 2000;
    assert_int_equal(omi_snapshot_add_traceback(s, f, 2, 40), 0);
    assert_int_equal(omi_snapshot_add_trace(s, 0, 0, 100, 1), 0);
    assert_int_equal(omi_snapshot_add_trace(s, 0, 7, 33, 2.5), 0);
    add_tb(s, "unused.c:1", 0);
    add_n(s, 2, 5, 1, "", 2);
    add_n(s, 1, 64, 1.25, "x.py:7:g main.c:3", 1);
    return s;
}

static void expect_same_traces(const struct om_snapshot *a,
                               const struct om_snapshot *b)
{
    struct om_trace_info x, y;

    assert_int_equal(om_snapshot_count(a), om_snapshot_count(b));
    for (size_t i = 0; i < om_snapshot_count(a); i++) {
        char fa[1024];

        assert_int_equal(om_snapshot_trace(a, i, &x), 0);
        assert_int_equal(om_snapshot_trace(b, i, &y), 0);
        assert_int_equal(x.domain, y.domain);
        assert_int_equal(x.size, y.size);
        assert_true(x.weight == y.weight);
        assert_int_equal(x.traceback->total_nframe, y.traceback->total_nframe);
        snprintf(fa, sizeof(fa), "%s", fmt_tb(x.traceback));
        assert_string_equal(fa, fmt_tb(y.traceback));
        for (unsigned k = 0; k < x.traceback->nframe; k++)
            assert_ptr_equal(x.traceback->frames[k].pc,
                             y.traceback->frames[k].pc);
    }
}

static void expect_same_statistics(const struct om_snapshot *a,
                                   const struct om_snapshot *b,
                                   enum om_key key, bool cumulative)
{
    struct om_statistic *x, *y;
    size_t nx, ny;

    assert_int_equal(om_snapshot_statistics(a, key, cumulative, &x, &nx), 0);
    assert_int_equal(om_snapshot_statistics(b, key, cumulative, &y, &ny), 0);
    assert_int_equal(nx, ny);
    for (size_t i = 0; i < nx; i++) {
        char fa[1024];

        snprintf(fa, sizeof(fa), "%s", fmt_tb(x[i].traceback));
        assert_string_equal(fa, fmt_tb(y[i].traceback));
        assert_int_equal(x[i].size, y[i].size);
        assert_int_equal(x[i].count, y[i].count);
        assert_true(x[i].size_error == y[i].size_error);
        assert_true(x[i].count_error == y[i].count_error);
    }
}

static void expect_same(const struct om_snapshot *a,
                        const struct om_snapshot *b)
{
    expect_same_traces(a, b);
    assert_same_modules(a, b);
    expect_same_statistics(a, b, OM_KEY_FILENAME, false);
    expect_same_statistics(a, b, OM_KEY_LINENO, false);
    expect_same_statistics(a, b, OM_KEY_TRACEBACK, false);
    expect_same_statistics(a, b, OM_KEY_FILENAME, true);
    expect_same_statistics(a, b, OM_KEY_LINENO, true);
}

static void test_dump_load(void **state)
{
    struct om_snapshot *s = rich_snapshot(), *t, *e = new_snapshot(), *u;
    char path[PATH_MAX], tmp[PATH_MAX + 32];

    assert_int_equal(om_snapshot_dump(s, path_of(path, "rich.omt")), 0);
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
    t = om_snapshot_load(path);
    assert_non_null(t);
    assert_string_equal(om_snapshot_load_error(), "");
    expect_same(s, t);
    assert_int_equal(om_snapshot_traceback_limit(t), 5);
    assert_int_equal(t->sample_mean, 4096);
    assert_int_equal(t->lost, 3);
    assert_int_equal(t->current, 1000);
    assert_int_equal(t->peak, 2000);
    assert_int_equal(t->ntracebacks, s->ntracebacks);
    assert_int_equal(om_snapshot_dump(e, path), 0);   /* replaces it */
    u = om_snapshot_load(path);
    assert_non_null(u);
    assert_int_equal(om_snapshot_count(u), 0);
    assert_int_equal(om_snapshot_dump(s, "/nonexistent/dir/x.omt"), -ENOENT);
    assert_int_equal(om_snapshot_dump(NULL, path), -EINVAL);
    assert_int_equal(om_snapshot_dump(s, NULL), -EINVAL);
    unlink(path);
    om_snapshot_free(s);
    om_snapshot_free(t);
    om_snapshot_free(e);
    om_snapshot_free(u);
    assert_int_equal(om_check(), 0);
}

/* A raw capture (a module table; C frames with their return addresses,
 * named when loaded): the loader names each C frame from its module's
 * file.  A module whose file is not there gives its frames its name only
 * (test_trace and test_preload read real files); a pc outside every
 * module is unknown; a frame source's frames (no pc) stay as they were.
 * The result is named and keeps the table: its dump (MAPS) loads as it
 * is, and so does a snapshot named in the process with its table. */
static void test_dump_load_modules(void **state)
{
    struct om_snapshot *s = new_snapshot(), *t, *u;
    struct om_frame f[4] = {
        { "raw", NULL, 0, (const void *)0x1234 },
        { "raw", NULL, 0, (const void *)0x5800 },
        { "raw", NULL, 0, (const void *)0x9000 },
        { "raw", NULL, 0, (const void *)0x2ff0 },
    };
    char path[PATH_MAX];
    struct omi_module *mods;
    long tb;

    tb = omi_snapshot_add_traceback(s, f, 4, 4);
    assert_int_equal(tb, 0);
    assert_int_equal(omi_snapshot_add_trace(s, 0, 0, 64, 1), 0);
    add_n(s, 0, 8, 1, "app.py:3:g", 1);
    mods = omi_region_alloc(&s->mem, 2 * sizeof(*mods));
    assert_non_null(mods);
    mods[0] = (struct omi_module){ omi_snapshot_intern(s, "/no/such/lib.so"),
                                   0x1000, 0x1000, 0x3000, 20, { 1, 2, 3 } };
    mods[1] = (struct omi_module){ omi_snapshot_intern(s, "/no/lib2.so"),
                                   0x5000, 0x5000, 0x6000, 0, { 0 } };
    s->mods = mods;
    s->nmods = 2;
    assert_int_equal(om_snapshot_find_module(s, f[0].pc), 0);
    assert_int_equal(om_snapshot_find_module(s, f[1].pc), 1);
    assert_int_equal(om_snapshot_find_module(s, f[2].pc), -ENOENT);
    assert_int_equal(om_snapshot_find_module(s, (const void *)0x3000),
                     -ENOENT);
    assert_int_equal(om_snapshot_find_module(s, (const void *)0xfff),
                     -ENOENT);
    /* named in the process: nothing to name at load */
    assert_int_equal(om_snapshot_dump(s, path_of(path, "raw.omt")), 0);
    t = om_snapshot_load(path);
    assert_non_null(t);
    expect_same(s, t);
    assert_string_equal(fmt_tb(t->tracebacks[0]), "raw:0 raw:0 raw:0 raw:0");
    om_snapshot_free(t);
    s->raw = true;
    assert_int_equal(om_snapshot_dump(s, path), 0);
    t = om_snapshot_load(path);
    assert_non_null(t);
    assert_false(t->raw);
    assert_same_modules(s, t);
    assert_string_equal(fmt_tb(t->tracebacks[0]), "/no/such/lib.so:0 "
                        "/no/lib2.so:0 <unknown>:0 /no/such/lib.so:0");
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(t->tracebacks[0]->frames[i].pc, f[i].pc);
    assert_string_equal(fmt_tb(t->tracebacks[1]), "app.py:3:g");
    assert_int_equal(om_snapshot_dump(t, path), 0);
    u = om_snapshot_load(path);
    assert_non_null(u);
    expect_same(t, u);
    unlink(path);
    om_snapshot_free(s);
    om_snapshot_free(t);
    om_snapshot_free(u);
    assert_int_equal(om_check(), 0);
}

/* A capture many times the size of the write buffer. */
static void test_dump_load_big(void **state)
{
    struct om_snapshot *s = omi_snapshot_new(8, 1000), *t;
    char spec[128], path[PATH_MAX];
    struct stat st;

    for (int i = 0; i < 3000; i++) {
        snprintf(spec, sizeof(spec), "dir%d/file%d.c:%d:fn%d lib.c:%d",
                 i % 7, i % 500, i, i % 300, i % 11);
        add_n(s, (unsigned)(i % 3), (uint64_t)i * 8,
              i % 5 ? 1 : 1 + i / 1000.0, spec, 1 + i % 4);
    }
    assert_int_equal(om_snapshot_dump(s, path_of(path, "big.omt")), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 200000);
    t = om_snapshot_load(path);
    assert_non_null(t);
    expect_same(s, t);
    unlink(path);
    om_snapshot_free(s);
    om_snapshot_free(t);
    assert_int_equal(om_check(), 0);
}

/* Strings compare interned into a snapshot stay out of its capture. */
static void test_dump_only_named_strings(void **state)
{
    struct om_snapshot *s = new_snapshot(), *b = new_snapshot();
    unsigned char buf[FILE_MAX];
    struct om_statistic_diff *d;
    char path[PATH_MAX];
    size_t n;

    add_n(s, 0, 1, 1, "kept.c:1", 1);
    add_n(b, 0, 1, 1, "only_before.c:1", 1);
    assert_int_equal(om_snapshot_compare(s, b, OM_KEY_LINENO, false, &d, &n),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(om_snapshot_dump(s, path_of(path, "named.omt")), 0);
    n = read_bytes(path, buf, sizeof(buf));
    assert_null(memmem(buf, n, "only_before", 11));
    assert_non_null(memmem(buf, n, "kept.c", 6));
    unlink(path);
    om_snapshot_free(s);
    om_snapshot_free(b);
    assert_int_equal(om_check(), 0);
}

static void test_load_missing(void **state)
{
    errno = 0;
    assert_null(om_snapshot_load("/nonexistent/x.omt"));
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(om_snapshot_load_error(), "cannot open"));
    errno = 0;
    assert_null(om_snapshot_load(dir));
    assert_int_equal(errno, EINVAL);
    assert_non_null(strstr(om_snapshot_load_error(), "not a regular file"));
    errno = 0;
    assert_null(om_snapshot_load(NULL));
    assert_int_equal(errno, EINVAL);
    expect_damaged("", 0, "truncated at byte 0");
    expect_damaged("PK\3\4 not a capture at all, a zip maybe", 39,
                   "bad magic");
    expect_damaged("OMT", 3, "truncated at byte 3");
    expect_damaged("OMTRACEX", 8, "bad magic");
    assert_int_equal(om_check(), 0);
}

/* A small capture, its bytes in buf: the size. */
static size_t small_capture(unsigned char *buf, size_t size)
{
    struct om_snapshot *s = new_snapshot();
    char path[PATH_MAX];
    size_t n;

    add_n(s, 0, 10, 1, "a.c:1:f b.c:2", 2);
    add_n(s, 1, 7, 2, "", 1);
    assert_int_equal(om_snapshot_dump(s, path_of(path, "small.omt")), 0);
    n = read_bytes(path, buf, size);
    unlink(path);
    om_snapshot_free(s);
    return n;
}

/* Every prefix of a capture is refused, and says where it ends. */
static void test_load_truncated(void **state)
{
    unsigned char buf[FILE_MAX];
    size_t n = small_capture(buf, sizeof(buf));
    char what[64];
    struct om_snapshot *s;

    for (size_t len = 0; len < n; len++) {
        snprintf(what, sizeof(what), "truncated at byte %zu", len);
        expect_damaged(buf, len, what);
    }
    s = load_bytes(buf, n);
    assert_non_null(s);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* Every byte flipped: refused, by the check that guards that byte. */
static void test_load_flipped(void **state)
{
    unsigned char buf[FILE_MAX];
    size_t n = small_capture(buf, sizeof(buf));

    for (size_t i = 0; i < n; i++) {
        const char *what = i < 8             ? "bad magic"
                           : i < 12          ? "unsupported version"
                           : i < 16          ? "bad header"
                           : i < n - 24      ? "bad checksum"
                           : i < n - 8       ? "truncated"
                                             : "bad checksum";

        buf[i] ^= 0x41;
        expect_damaged(buf, n, what);
        buf[i] ^= 0x41;
    }
    assert_int_equal(om_check(), 0);
}

/* Insert an unknown section at byte at of buf[0..*n) and fix the sum. */
static void insert_section(unsigned char *buf, size_t *n, size_t at)
{
    unsigned char sec[16 + 5] = "XTRA";

    put_le(sec + 4, 0, 4);
    put_le(sec + 8, 5, 8);
    memcpy(sec + 16, "later", 5);
    memmove(buf + at + sizeof(sec), buf + at, *n - at);
    memcpy(buf + at, sec, sizeof(sec));
    *n += sizeof(sec);
    put_le(buf + *n - 8, fnv1a(buf, *n - 24), 8);
}

/* A later version's sections are skipped, wherever they are. */
static void test_load_unknown_section(void **state)
{
    unsigned char buf[FILE_MAX];
    size_t n = small_capture(buf, sizeof(buf));
    struct om_snapshot *s;
    const struct want w[] = { { "a.c:1:f", 20, 2 }, { "<unknown>:0", 14, 2 } };

    insert_section(buf, &n, n - 24);
    insert_section(buf, &n, 16);
    s = load_bytes(buf, n);
    assert_non_null(s);
    expect_stats(s, OM_KEY_LINENO, false, w, 2);
    om_snapshot_free(s);
    buf[16 + 4] = 1;                    /* its reserved field */
    put_le(buf + n - 8, fnv1a(buf, n - 24), 8);
    expect_damaged(buf, n, "section at byte 16: bad header");
    assert_int_equal(om_check(), 0);
}

/* ---- Crafted captures ---- */

/* What a crafted capture holds: one traceback of one frame, one trace,
 * each field settable. */
struct craft {
    uint32_t version;
    uint64_t meta_len;
    int metas;                  /* META sections: 0, 1 or 2 */
    bool no_strs, no_tbks, no_trcs, end_inside;
    uint64_t ntb, ntr;          /* as META says */
    const char *strs;
    size_t strs_len;
    uint32_t nframe, file_off, func_off, frame_reserved;
    bool total_short;           /* total_nframe 0, below nframe */
    uint32_t trace_tb;
    uint64_t trace_size;        /* 0: the usual 10 bytes */
    double weight;
    uint32_t trcs_reserved;
    uint64_t trcs_len;
    int mods;                   /* MODS sections, mod_n modules each */
    bool maps;                  /* MAPS sections instead */
    int mod_n;                  /* 0: 1 */
    uint64_t mod_len;           /* 0: the usual 64 bytes each */
    uint32_t mod_path, mod_id_len;
    uint64_t mod_lo, mod_hi;
    bool addr;                  /* an ADDR section */
    bool vars;                  /* a VARS section: var, var / 4 */
    double var;
    int time_secs;              /* TIME sections, of `times` points: */
    int times;                  /* 10 ms, 100 B, a page apart (from 0) */
    bool time_back;             /* the last point 15 ms back */
    int time_pad;               /* zero bytes after the points */
};

static const struct craft good = {
    .version = 1, .meta_len = 56, .metas = 1, .ntb = 1, .ntr = 1,
    .strs = "a.c\0f", .strs_len = 6, .nframe = 1, .file_off = 0,
    .func_off = 4, .weight = 1, .trcs_len = 24,
};

struct fb {
    unsigned char *b;
    size_t n;
};

static void f_le(struct fb *f, uint64_t v, int bytes)
{
    put_le(f->b + f->n, v, bytes);
    f->n += (size_t)bytes;
}

static void f_section(struct fb *f, const char *tag, uint64_t len,
                      uint32_t reserved)
{
    memcpy(f->b + f->n, tag, 4);
    f->n += 4;
    f_le(f, reserved, 4);
    f_le(f, len, 8);
}

static void craft_meta(struct fb *f, const struct craft *k)
{
    unsigned char m[64] = { 0 };
    uint64_t fields[] = { 0, 0, 10, 10, k->ntb, k->ntr };

    put_le(m, 1, 4);
    for (int i = 0; i < 6; i++)
        put_le(m + 8 + 8 * i, fields[i], 8);
    f_section(f, "META", k->meta_len, 0);
    memcpy(f->b + f->n, m, k->meta_len);
    f->n += k->meta_len;
}

static void craft_tbks(struct fb *f, const struct craft *k)
{
    f_section(f, "TBKS", 8 + 24, 0);
    f_le(f, k->nframe, 4);
    f_le(f, k->total_short ? 0 : 1, 4);
    f_le(f, k->file_off, 4);
    f_le(f, k->func_off, 4);
    f_le(f, 7, 4);
    f_le(f, k->frame_reserved, 4);
    f_le(f, 0x1234, 8);
}

static void craft_trcs(struct fb *f, const struct craft *k)
{
    uint64_t w;

    memcpy(&w, &k->weight, sizeof(w));
    f_section(f, "TRCS", k->trcs_len, k->trcs_reserved);
    f_le(f, k->trace_size ? k->trace_size : 10, 8);
    f_le(f, w, 8);
    f_le(f, k->trace_tb, 4);
    f_le(f, 0, 4);
}

/* MODS or MAPS: mod_n modules, each its path at mod_path, spanning
 * [mod_lo, mod_hi). */
static void craft_mods(struct fb *f, const struct craft *k)
{
    uint64_t len = k->mod_len ? k->mod_len : 64;
    int n = k->mod_n ? k->mod_n : 1;

    f_section(f, k->maps ? "MAPS" : "MODS", len * (uint64_t)n, 0);
    for (int i = 0; i < n; i++) {
        f_le(f, k->mod_path, 4);
        f_le(f, k->mod_id_len, 4);
        f_le(f, k->mod_lo, 8);
        f_le(f, k->mod_lo, 8);
        f_le(f, k->mod_hi, 8);
        memset(f->b + f->n, 0xab, (size_t)len - 32);
        f->n += (size_t)len - 32;
    }
}

static size_t craft(unsigned char *b, const struct craft *k)
{
    struct fb f = { b, 0 };

    memcpy(b, "OMTRACE", 8);
    f.n = 8;
    f_le(&f, k->version, 4);
    f_le(&f, 0, 4);
    for (int i = 0; i < k->metas; i++)
        craft_meta(&f, k);
    if (!k->no_strs) {
        f_section(&f, "STRS", k->strs_len, 0);
        memcpy(b + f.n, k->strs, k->strs_len);
        f.n += k->strs_len;
    }
    if (!k->no_tbks)
        craft_tbks(&f, k);
    if (k->end_inside) {
        f_section(&f, "END", 8, 0);
        f_le(&f, 0, 8);
    }
    if (!k->no_trcs)
        craft_trcs(&f, k);
    if (k->addr) {
        f_section(&f, "ADDR", 16, 0);
        f_le(&f, 0x5000, 8);
        f_le(&f, 40, 8);
    }
    if (k->vars) {
        double v[2] = { k->var, k->var / 4 };
        uint64_t bits;

        f_section(&f, "VARS", 16, 0);
        for (int i = 0; i < 2; i++) {
            memcpy(&bits, &v[i], sizeof(bits));
            f_le(&f, bits, 8);
        }
    }
    for (int i = 0; i < k->mods; i++)
        craft_mods(&f, k);
    for (int i = 0; i < k->time_secs; i++) {
        f_section(&f, "TIME", (uint64_t)k->times * 24 + (uint64_t)k->time_pad,
                  0);
        for (int j = 0; j < k->times; j++) {
            f_le(&f, (uint64_t)(10 * j - (k->time_back && j + 1 == k->times
                                          ? 15 : 0)), 8);
            f_le(&f, (uint64_t)(100 * j), 8);
            f_le(&f, (uint64_t)(4096 * j), 8);
        }
        for (int j = 0; j < k->time_pad; j++)
            f_le(&f, 0, 1);
    }
    f_section(&f, "END", 8, 0);
    f_le(&f, fnv1a(b, f.n - 16), 8);
    return f.n;
}

static void expect_crafted_bad(const struct craft *k, const char *what)
{
    unsigned char buf[FILE_MAX];

    expect_damaged(buf, craft(buf, k), what);
}

/* good, with some fields changed: later designators override earlier
 * ones, which is what -Woverride-init warns about. */
#pragma GCC diagnostic ignored "-Woverride-init"
#define CRAFT(...) (&(struct craft){ .version = 1, .meta_len = 56,         \
    .metas = 1, .ntb = 1, .ntr = 1, .strs = "a.c\0f", .strs_len = 6,      \
    .nframe = 1, .func_off = 4, .weight = 1, .trcs_len = 24, __VA_ARGS__ })

static void test_load_crafted(void **state)
{
    unsigned char buf[FILE_MAX];
    const struct want w[] = { { "a.c:7:f", 10, 1 } };
    struct om_snapshot *s = load_bytes(buf, craft(buf, &good));

    assert_non_null(s);
    expect_stats(s, OM_KEY_LINENO, false, w, 1);
    assert_ptr_equal(s->tracebacks[0]->frames[0].pc, (void *)0x1234);
    om_snapshot_free(s);
    s = load_bytes(buf, craft(buf, CRAFT(.meta_len = 64)));
    assert_non_null(s);                 /* a later, longer META */
    om_snapshot_free(s);
    s = load_bytes(buf, craft(buf, CRAFT(.trace_size = PTRDIFF_MAX)));
    assert_non_null(s);                 /* the biggest block there can be */
    om_snapshot_free(s);
    s = load_bytes(buf, craft(buf, CRAFT(.func_off = 0xffffffff)));
    assert_non_null(s);                 /* no function */
    assert_null(s->tracebacks[0]->frames[0].function);
    om_snapshot_free(s);
    /* A raw capture: the frame at 0x1234 is named by the loader, from
     * module "a.c" (not a file: its module's name only). */
    s = load_bytes(buf, craft(buf, CRAFT(.mods = 1, .mod_lo = 0x1000,
                                         .mod_hi = 0x2000)));
    assert_non_null(s);
    assert_string_equal(fmt_tb(s->tracebacks[0]), "a.c:0");
    assert_ptr_equal(s->tracebacks[0]->frames[0].pc, (void *)0x1234);
    assert_int_equal(s->nmods, 1);
    assert_int_equal(om_snapshot_find_module(s, (void *)0x1234), 0);
    om_snapshot_free(s);
    /* The same table in a named capture (MAPS): the frame stays. */
    s = load_bytes(buf, craft(buf, CRAFT(.mods = 1, .mod_lo = 0x1000,
                                         .mod_hi = 0x2000, .maps = true)));
    assert_non_null(s);
    expect_stats(s, OM_KEY_LINENO, false, w, 1);
    assert_int_equal(s->nmods, 1);
    assert_int_equal(om_snapshot_find_module(s, (void *)0x1234), 0);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* ADDR gives a trace its address and time; VARS makes the records sums,
 * whose standard errors are the roots of their variances (sampled), and
 * which have neither. */
static void test_load_crafted_sums(void **state)
{
    unsigned char buf[FILE_MAX];
    struct om_snapshot *s;
    struct om_trace_info t;
    struct om_statistic *st;
    size_t n;

    s = load_bytes(buf, craft(buf, CRAFT(.addr = true)));
    assert_non_null(s);
    assert_false(s->sums);
    assert_int_equal(om_snapshot_trace(s, 0, &t), 0);
    assert_int_equal(t.address, 0x5000);
    assert_int_equal(t.time_ms, 40);
    om_snapshot_free(s);
    s = load_bytes(buf, craft(buf, CRAFT(.vars = true, .var = 400,
                                         .weight = 3)));
    assert_non_null(s);
    assert_true(s->sums);
    assert_int_equal(om_snapshot_trace(s, 0, &t), 0);
    assert_int_equal(t.address, 0);
    assert_int_equal(t.time_ms, 0);
    s->sample_mean = 4096;              /* errors are given when sampled */
    assert_int_equal(om_snapshot_statistics(s, OM_KEY_LINENO, false, &st,
                                            &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(st[0].size, 30);
    assert_int_equal(st[0].count, 3);
    assert_true(st[0].size_error == 20 && st[0].count_error == 10);
    om_snapshot_free(s);
    expect_crafted_bad(CRAFT(.vars = true, .var = -1),
                       "sum 0 has a variance below 0 or not finite");
    expect_crafted_bad(CRAFT(.vars = true, .var = NAN),
                       "sum 0 has a variance below 0 or not finite");
    expect_crafted_bad(CRAFT(.vars = true, .var = INFINITY),
                       "sum 0 has a variance below 0 or not finite");
    expect_crafted_bad(CRAFT(.vars = true, .addr = true),
                       "both an ADDR and a VARS section");
    assert_int_equal(om_check(), 0);
}

/* TIME: the timeline's points, read back; a bad one says why. */
static void test_load_crafted_timeline(void **state)
{
    unsigned char buf[FILE_MAX];
    const struct om_time_point *p;
    struct om_snapshot *s;

    (void)state;
    s = load_bytes(buf, craft(buf, CRAFT(.time_secs = 1, .times = 3)));
    assert_non_null(s);
    assert_int_equal(om_snapshot_timeline(s, &p), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(p[i].time_ms, 10 * i);
        assert_int_equal(p[i].traced, 100 * i);
        assert_int_equal(p[i].rss, 4096 * i);
    }
    om_snapshot_free(s);
    s = load_bytes(buf, craft(buf, CRAFT(.times = 3)));
    assert_non_null(s);
    assert_int_equal(om_snapshot_timeline(s, &p), 0);
    assert_null(p);
    om_snapshot_free(s);
    expect_crafted_bad(CRAFT(.time_secs = 1, .times = 0),
                       "TIME section of 0 bytes");
    expect_crafted_bad(CRAFT(.time_secs = 1, .times = 2, .time_pad = 5),
                       "TIME section of 53 bytes");
    expect_crafted_bad(CRAFT(.time_secs = 1, .times = 3, .time_back = true),
                       "TIME section: point 2 at 5 ms, after 10");
    expect_crafted_bad(CRAFT(.time_secs = 2, .times = 1),
                       "a second TIME section at byte");
    assert_int_equal(om_check(), 0);
}

static void test_load_crafted_damage(void **state)
{
    expect_crafted_bad(CRAFT(.version = 2), "unsupported version 2");
    expect_crafted_bad(CRAFT(.file_off = 99),
                       "traceback 0 names string offset 99 beyond the "
                       "string table");
    expect_crafted_bad(CRAFT(.file_off = 6), "offset 6 beyond");
    expect_crafted_bad(CRAFT(.func_off = 77), "offset 77 beyond");
    expect_crafted_bad(CRAFT(.file_off = 1),
                       "traceback 0 names string offset 1 inside a string");
    expect_crafted_bad(CRAFT(.func_off = 5), "offset 5 inside a string");
    expect_crafted_bad(CRAFT(.trace_tb = 1), "trace 0 names traceback 1 of 1");
    expect_crafted_bad(CRAFT(.strs = "a.c\0fx", .strs_len = 6),
                       "does not end with a NUL");
    expect_crafted_bad(CRAFT(.trace_size = (uint64_t)PTRDIFF_MAX + 1),
                       "trace 0 has a size of 9223372036854775808 bytes");
    expect_crafted_bad(CRAFT(.trace_size = UINT64_MAX),
                       "trace 0 has a size of 18446744073709551615 bytes");
    expect_crafted_bad(CRAFT(.weight = 0.5), "trace 0 has a weight");
    expect_crafted_bad(CRAFT(.weight = NAN), "trace 0 has a weight");
    expect_crafted_bad(CRAFT(.weight = INFINITY), "trace 0 has a weight");
    expect_crafted_bad(CRAFT(.metas = 0), "no META section");
    expect_crafted_bad(CRAFT(.metas = 2), "a second META section at byte");
    expect_crafted_bad(CRAFT(.no_strs = true), "no STRS section");
    expect_crafted_bad(CRAFT(.no_tbks = true), "no TBKS section");
    expect_crafted_bad(CRAFT(.no_trcs = true), "no TRCS section");
    expect_crafted_bad(CRAFT(.ntr = 2), "TRCS section of 24 bytes for 2");
    expect_crafted_bad(CRAFT(.ntb = 2), "traceback 1 runs past");
    expect_crafted_bad(CRAFT(.ntb = 0, .trace_tb = 0),
                       "TBKS section has 32 bytes after its 0 tracebacks");
    expect_crafted_bad(CRAFT(.ntb = 1ull << 32), "too many");
    expect_crafted_bad(CRAFT(.nframe = 2), "traceback 0 runs past");
    expect_crafted_bad(CRAFT(.nframe = 70000), "has 70000 frames");
    expect_crafted_bad(CRAFT(.frame_reserved = 1), "reserved field");
    expect_crafted_bad(CRAFT(.total_short = true),
                       "traceback 0 has 1 frames, more than its total 0");
    expect_crafted_bad(CRAFT(.trcs_reserved = 1), "bad header");
    expect_crafted_bad(CRAFT(.trcs_len = 25), "runs into the END section");
    expect_crafted_bad(CRAFT(.trcs_len = 1ull << 62),
                       "runs into the END section");
    expect_crafted_bad(CRAFT(.end_inside = true), "END section at byte");
    expect_crafted_bad(CRAFT(.meta_len = 40), "META section of 40 bytes");
    expect_crafted_bad(CRAFT(.mods = 1, .mod_len = 65, .mod_hi = 1),
                       "MODS section of 65 bytes, not a multiple of 64");
    expect_crafted_bad(CRAFT(.mods = 1, .mod_path = 6, .mod_hi = 1),
                       "module 0 names string offset 6 beyond the string "
                       "table");
    expect_crafted_bad(CRAFT(.mods = 1, .mod_path = 2, .mod_hi = 1),
                       "module 0 names string offset 2 inside a string");
    expect_crafted_bad(CRAFT(.mods = 1, .mod_id_len = 33, .mod_hi = 1),
                       "module 0 has a build ID of 33 bytes, more than 32");
    expect_crafted_bad(CRAFT(.mods = 1, .mod_lo = 5, .mod_hi = 5),
                       "module 0 spans no address");
    expect_crafted_bad(CRAFT(.mods = 2, .mod_hi = 1),
                       "a second module table (MODS) at byte");
    expect_crafted_bad(CRAFT(.mods = 2, .mod_hi = 1, .maps = true),
                       "a second module table (MAPS) at byte");
    expect_crafted_bad(CRAFT(.mods = 1, .mod_n = 2, .mod_hi = 9),
                       "module 1 starts below the end of the one before "
                       "it");
    expect_crafted_bad(CRAFT(.mods = 1, .mod_len = 65, .mod_hi = 1,
                             .maps = true),
                       "MAPS section of 65 bytes, not a multiple of 64");
    assert_int_equal(om_check(), 0);
}

/* A capture of n traces, each on a traceback of its own whose one frame
 * names the only string, len bytes long; in a fresh buffer (*size). */
static unsigned char *repeat_capture(size_t len, uint32_t n, size_t *size)
{
    unsigned char *b = malloc(len + 64 * (size_t)n + 4096);
    struct fb f = { b, 16 };
    uint64_t one;
    unsigned char meta[64] = { 4 };

    assert_non_null(b);
    memcpy(b, "OMTRACE\0\1\0\0\0\0\0\0\0", 16);
    put_le(meta + 40, n, 8);
    put_le(meta + 48, n, 8);
    f_section(&f, "META", sizeof(meta), 0);
    memcpy(b + f.n, meta, sizeof(meta));
    f.n += sizeof(meta);
    f_section(&f, "STRS", len + 1, 0);
    memset(b + f.n, 'a', len);
    b[f.n + len] = '\0';
    f.n += len + 1;
    f_section(&f, "TBKS", 32 * (uint64_t)n, 0);
    for (uint32_t i = 0; i < n; i++) {
        f_le(&f, 1, 4);                     /* nframe, total_nframe */
        f_le(&f, 1, 4);
        f_le(&f, 0, 4);                     /* the string, no function */
        f_le(&f, NO_FUNCTION, 4);
        f_le(&f, i, 4);                     /* lineno, 0, pc */
        f_le(&f, 0, 4);
        f_le(&f, 0, 8);
    }
    f_section(&f, "TRCS", 24 * (uint64_t)n, 0);
    memcpy(&one, &(double){ 1 }, sizeof(one));
    for (uint32_t i = 0; i < n; i++) {
        f_le(&f, 16, 8);
        f_le(&f, one, 8);
        f_le(&f, i, 4);
        f_le(&f, 0, 4);
    }
    f_section(&f, "END", 8, 0);
    f_le(&f, fnv1a(b, f.n - 16), 8);
    *size = f.n;
    return b;
}

/* What loading costs grows as the file does.  An offset into STRS must
 * start a string, and a module's path fit PATH_MAX: a file that named
 * every suffix of one long string had the loader copy each (a 1.6 MB
 * file took 9.6 GB).  And a string is interned once an offset: 20000
 * frames naming one string of 500 KB took 2.7 s to hash it each time. */
static void test_load_crafted_strings(void **state)
{
    static char strs[PATH_MAX + 2];
    static unsigned char buf[FILE_MAX];
    unsigned char *b;
    struct om_snapshot *s;
    clock_t t0;
    size_t n;

    memset(strs, '/', sizeof(strs) - 1);
    expect_crafted_bad(CRAFT(.strs = strs, .strs_len = PATH_MAX + 2,
                             .func_off = NO_FUNCTION, .mods = 1,
                             .mod_hi = 1),
                       "module 0's path is longer than 4096 bytes");
    strs[PATH_MAX] = '\0';
    s = load_bytes(buf, craft(buf, CRAFT(.strs = strs,
                                         .strs_len = PATH_MAX + 1,
                                         .func_off = NO_FUNCTION, .mods = 1,
                                         .mod_hi = 1, .maps = true)));
    assert_non_null(s);
    assert_int_equal(strlen(s->mods[0].path), PATH_MAX);
    om_snapshot_free(s);
    b = repeat_capture(1 << 18, 20000, &n);
    t0 = clock();
    s = load_bytes(b, n);
    assert_true(clock() - t0 < CLOCKS_PER_SEC);     /* was 2.7 s to 30 s */
    free(b);
    assert_non_null(s);
    assert_int_equal(om_snapshot_count(s), 20000);
    assert_ptr_equal(s->tracebacks[0]->frames[0].filename,
                     s->tracebacks[19999]->frames[0].filename);
    assert_true(omi_region_touched(&s->mem) < 2 * n);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* What filter, compare and dump read of the strings grows as the file
 * does: 20000 frames naming one string of 256 KiB had each frame hash it
 * (interning it in the result, finding its slot to write it) and match
 * it against the pattern, 5 GB read where 256 KiB will do (a 1.6 MB
 * capture took 9 s in `objmem top --include`, 6 s in `objmem diff`).
 * omi_snapshot_string_bytes counts what was read. */
static void test_crafted_strings_once(void **state)
{
    const size_t len = 1 << 18;
    struct om_filter f = { .inclusive = true, .domain = -1,
                           .filename_pattern = "a*a" };
    struct om_snapshot *s, *again, *kept;
    struct om_statistic_diff *d;
    char path[PATH_MAX];
    unsigned char *b;
    size_t n;

    b = repeat_capture(len, 20000, &n);
    s = load_bytes(b, n);
    again = load_bytes(b, n);
    free(b);
    assert_non_null(s);
    assert_non_null(again);
    omi_snapshot_string_bytes = 0;
    kept = om_snapshot_filter(s, &f, 1);
    assert_non_null(kept);
    assert_int_equal(om_snapshot_count(kept), 20000);
    assert_int_equal(omi_snapshot_string_bytes, 2 * len);  /* match, copy */
    omi_snapshot_string_bytes = 0;
    assert_int_equal(om_snapshot_compare(kept, again, OM_KEY_LINENO, false,
                                         &d, &n), 0);
    assert_int_equal(n, 20000);
    assert_int_equal(d[0].size_diff, 0);
    assert_int_equal(d[19999].count_diff, 0);
    assert_int_equal(omi_snapshot_string_bytes, len);      /* interned */
    omi_snapshot_string_bytes = 0;
    assert_int_equal(om_snapshot_dump(kept, path_of(path, "long.omt")), 0);
    assert_int_equal(omi_snapshot_string_bytes, len);      /* its slot */
    unlink(path);
    om_snapshot_free(kept);
    om_snapshot_free(again);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* Bytes after END: the end is not an END section. */
static void test_load_trailing(void **state)
{
    unsigned char buf[FILE_MAX];
    size_t n = craft(buf, &good);

    memcpy(buf + n, "junk", 4);
    expect_damaged(buf, n + 4, "no END section at the end");
    assert_int_equal(om_check(), 0);
}

/* A capture with a right checksum but any field changed (a crafted or
 * damaged file that the checksum does not catch): the loader refuses it
 * with EINVAL and a reason, or what it loads answers every query, and
 * compares with itself and with the original.  A seeded walk of 3000
 * changes, single bytes and whole words set to edge values; the
 * comparison once took a sum beyond PTRDIFF_MAX into a signed overflow
 * (found so, on objmem-python's captures). */
static void test_load_mutated(void **state)
{
    static const uint64_t edges[] = {
        0, 1, 2, 7, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
        (uint64_t)PTRDIFF_MAX, (uint64_t)PTRDIFF_MAX + 1, UINT64_MAX,
    };
    struct om_snapshot *orig = new_snapshot(), *s;
    struct omi_module *mods;
    unsigned char base[FILE_MAX], buf[FILE_MAX];
    struct om_statistic_diff *d;
    struct om_statistic *st;
    char path[PATH_MAX];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t n, m, loaded = 0;

    add_n(orig, 0, 10, 1, "a.c:1:f b.c:2:g", 2);
    add_n(orig, 1, 700, 3.5, "c.c:3:h", 1);
    add_n(orig, 2, 1 << 20, 1, "a.c:1:f", 1);
    add_n(orig, 0, 24, 1, "", 1);
    /* and a module table, with a C frame in it */
    mods = omi_region_alloc(&orig->mem, sizeof(*mods));
    assert_non_null(mods);
    *mods = (struct omi_module){ omi_snapshot_intern(orig, "lib.so"), 0x1000,
                                 0x1000, 0x3000, 2, { 7, 7 } };
    orig->mods = mods;
    orig->nmods = 1;
    orig->raw = true;
    assert_true(omi_snapshot_add_traceback(orig, &(struct om_frame){
        "lib.so", NULL, 0, (const void *)0x1800 }, 1, 1) >= 0);
    assert_int_equal(omi_snapshot_add_trace(orig, 4, 0, 32, 1), 0);
    assert_int_equal(om_snapshot_dump(orig, path_of(path, "m.omt")), 0);
    n = read_bytes(path, base, sizeof(base));
    unlink(path);
    for (int i = 0; i < 3000; i++) {
        size_t at;

        memcpy(buf, base, n);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        at = 16 + (size_t)(x >> 8) % (n - 24 - 16 - 8);
        if (x & 1)
            buf[at] ^= (unsigned char)(1u << (x >> 1 & 7));
        else
            put_le(buf + (at & ~(size_t)3), edges[(x >> 1) % 12],
                   x & 2 ? 8 : 4);
        put_le(buf + n - 8, fnv1a(buf, n - 24), 8);
        errno = 0;
        s = load_bytes(buf, n);
        if (!s) {
            assert_int_equal(errno, EINVAL);
            assert_true(om_snapshot_load_error()[0] != '\0');
            continue;
        }
        loaded++;
        for (int k = OM_KEY_FILENAME; k <= OM_KEY_TRACEBACK; k++) {
            assert_int_equal(om_snapshot_statistics(s, k, false, &st, &m), 0);
            /* cumulative: by file and by line (tracemalloc's rule) */
            assert_int_equal(om_snapshot_statistics(s, k, true, &st, &m),
                             k == OM_KEY_TRACEBACK ? -EINVAL : 0);
            assert_int_equal(om_snapshot_compare(s, s, k, false, &d, &m), 0);
            for (size_t j = 0; j < m; j++)
                assert_true(d[j].size_diff == 0 && d[j].count_diff == 0);
            assert_int_equal(om_snapshot_compare(s, orig, k, false, &d, &m),
                             0);
        }
        om_snapshot_free(s);
    }
    /* Most changes hit a size, a weight, a line or a pc and still load. */
    assert_true(loaded > 300 && loaded < 2700);
    om_snapshot_free(orig);
    assert_int_equal(om_check(), 0);
}

/* ---- Out of memory ---- */

typedef int (*op_fn)(void *ctx);

/* Run op with the nth mapping failing, n = 1, 2, ... until it succeeds;
 * each failure is -ENOMEM, and check (if any) holds after each run, with
 * no failure armed.  Returns the failures. */
static int sweep(op_fn op, void *ctx, void (*check)(void *ctx))
{
    int failures = 0, err;

    for (long nth = 1;; nth++) {
        assert_int_equal(om_debug_fail_maps(nth, false), 0);
        err = op(ctx);
        assert_int_equal(om_debug_fail_maps(0, false), 0);
        if (check)
            check(ctx);
        if (err == 0)
            break;
        assert_int_equal(err, -ENOMEM);
        failures++;
        assert_true(nth < 1000);
    }
    return failures;
}

static int op_build(void *ctx)
{
    struct om_snapshot *s = omi_snapshot_new(3, 0);
    char spec[32];
    int err = s ? 0 : -errno;

    for (int i = 0; i < 2000 && !err; i++) {
        struct om_frame f = { spec, NULL, (unsigned)i, NULL };
        long tb;

        snprintf(spec, sizeof(spec), "file%d.c", i % 700);
        tb = omi_snapshot_add_traceback(s, &f, 1, 1);
        err = tb < 0 ? (int)tb
                     : omi_snapshot_add_trace(s, (uint32_t)tb, 0, 1, 1);
    }
    for (int i = 0; i < 30000 && !err; i++)
        err = omi_snapshot_add_trace(s, 0, 0, 1, 1);
    if (!err)
        assert_int_equal(om_snapshot_count(s), 32000);
    om_snapshot_free(s);
    return err;
}

struct pair {
    struct om_snapshot *now, *before;
    struct om_snapshot *loaded;         /* op_load's, checked later */
};

/* now is intact, and what op_load loaded (if anything) is the same. */
static void check_pair(void *ctx)
{
    struct pair *p = ctx;
    struct om_snapshot *ref = rich_snapshot();

    expect_same(p->now, ref);
    om_snapshot_free(ref);
    if (p->loaded)
        expect_same(p->loaded, p->now);
    om_snapshot_free(p->loaded);
    p->loaded = NULL;
}

static int op_statistics(void *ctx)
{
    struct pair *p = ctx;
    struct om_statistic *st;
    size_t n;
    int err = 0;

    for (int key = 0; key < 3 && !err; key++)
        for (int cum = 0; cum <= (key < 2) && !err; cum++)
            err = om_snapshot_statistics(p->now, (enum om_key)key, cum, &st,
                                         &n);
    return err;
}

static int op_compare(void *ctx)
{
    struct pair *p = ctx;
    struct om_statistic_diff *d;
    size_t n;
    int err = om_snapshot_compare(p->now, p->before, OM_KEY_TRACEBACK, false,
                                  &d, &n);

    if (!err)
        err = om_snapshot_compare(p->now, p->before, OM_KEY_LINENO, true, &d,
                                  &n);
    if (!err)
        assert_int_equal(n, 5);
    return err;
}

static int op_filter(void *ctx)
{
    struct pair *p = ctx;
    struct om_filter f = { false, "main.c", 0, true, -1 };
    struct om_snapshot *out = om_snapshot_filter(p->now, &f, 1);

    if (!out)
        return -errno;
    assert_int_equal(om_snapshot_count(out), 2);
    om_snapshot_free(out);
    return 0;
}

static int op_dump(void *ctx)
{
    struct pair *p = ctx;
    char path[PATH_MAX];

    return om_snapshot_dump(p->now, path_of(path, "oom.omt"));
}

static int op_load(void *ctx)
{
    struct pair *p = ctx;
    char path[PATH_MAX];

    p->loaded = om_snapshot_load(path_of(path, "oom.omt"));
    if (!p->loaded) {
        assert_string_equal(om_snapshot_load_error(), "out of memory");
        return -errno;
    }
    return 0;
}

static void test_out_of_memory(void **state)
{
    struct pair p = { rich_snapshot(), new_snapshot(), NULL };
    char path[PATH_MAX];

    add_n(p.before, 0, 1, 1, "before.c:1 main.c:3", 1);
    assert_int_equal(om_debug_fail_maps(0, true), 0);
    errno = 0;
    assert_null(omi_snapshot_new(1, 0));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_true(sweep(op_build, NULL, NULL) >= 5);
    assert_true(sweep(op_statistics, &p, check_pair) >= 1);
    assert_true(sweep(op_compare, &p, check_pair) >= 1);
    assert_true(sweep(op_filter, &p, check_pair) >= 1);
    assert_true(sweep(op_dump, &p, check_pair) >= 1);
    assert_true(sweep(op_load, &p, check_pair) >= 1);
    unlink(path_of(path, "oom.omt"));
    om_snapshot_free(p.now);
    om_snapshot_free(p.before);
    assert_int_equal(om_check(), 0);
}

/* A full array or string set that cannot grow refuses, keeping all. */
static void test_out_of_memory_growth(void **state)
{
    struct om_snapshot *s = new_snapshot();
    const char *a = omi_snapshot_intern(s, "a.c");
    size_t used;
    char buf[32];

    add_tb(s, "a.c:1", 0);
    assert_int_equal(omi_snapshot_add_trace(s, 0, 0, 1, 1), 0);
    while (s->ntraces < s->traces_cap)
        assert_int_equal(omi_snapshot_add_trace(s, 0, 0, 1, 1), 0);
    assert_int_equal(om_debug_fail_maps(1, false), 0);
    assert_int_equal(omi_snapshot_add_trace(s, 0, 0, 1, 1), -ENOMEM);
    assert_int_equal(om_snapshot_count(s), s->traces_cap);
    for (int i = 0; 2 * (s->strings.used + 1) <= s->strings.mask + 1; i++) {
        snprintf(buf, sizeof(buf), "s%d", i);
        assert_non_null(omi_snapshot_intern(s, buf));
    }
    used = s->strings.used;
    assert_int_equal(om_debug_fail_maps(0, true), 0);
    errno = 0;
    assert_null(omi_snapshot_intern(s, "one more"));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(s->strings.used, used);
    assert_ptr_equal(omi_snapshot_intern(s, "a.c"), a);
    assert_int_equal(om_debug_fail_maps(0, false), 0);
    assert_non_null(omi_snapshot_intern(s, "one more"));
    assert_int_equal(omi_snapshot_add_trace(s, 0, 0, 1, 1), 0);
    om_snapshot_free(s);
    assert_int_equal(om_check(), 0);
}

/* Address space used, from /proc/self/statm. */
static size_t vm_bytes(void)
{
    unsigned long size = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu", &size), 1);
    fclose(f);
    return size * (size_t)sysconf(_SC_PAGESIZE);
}

/* Everything a snapshot maps goes back: 200 rounds of everything. */
static void test_no_leak(void **state)
{
    struct pair p = { NULL, new_snapshot(), NULL };
    size_t before = 0;
    char path[PATH_MAX];

    add_n(p.before, 0, 1, 1, "before.c:1 main.c:3", 1);
    for (int round = 0; round < 201; round++) {
        struct om_snapshot *big = new_snapshot();

        if (round == 1)
            before = vm_bytes();
        p.now = rich_snapshot();
        for (int i = 0; i < 3000; i++)
            add_n(big, 0, 1, 1, "big.c:1", 1);
        assert_int_equal(op_statistics(&p), 0);
        assert_int_equal(op_compare(&p), 0);
        assert_int_equal(op_filter(&p), 0);
        assert_int_equal(op_dump(&p), 0);
        assert_int_equal(op_load(&p), 0);
        check_pair(&p);
        om_snapshot_free(p.now);
        om_snapshot_free(big);
    }
    assert_true(vm_bytes() < before + (4 << 20));
    unlink(path_of(path, "oom.omt"));
    om_snapshot_free(p.before);
    assert_int_equal(om_check(), 0);
}

static int make_dir(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/om_snapshot.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    char path[PATH_MAX];

    unlink(path_of(path, "bytes.omt"));
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intern),
        cmocka_unit_test(test_builder),
        cmocka_unit_test(test_builder_grows),
        cmocka_unit_test(test_region_touched),
        cmocka_unit_test(test_statistics_keys),
        cmocka_unit_test(test_statistics_cumulative),
        cmocka_unit_test(test_statistics_ties),
        cmocka_unit_test(test_statistics_key_fields),
        cmocka_unit_test(test_statistics_no_frames),
        cmocka_unit_test(test_statistics_weights),
        cmocka_unit_test(test_statistics_big_odd),
        cmocka_unit_test(test_statistics_args),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_compare_saturates),
        cmocka_unit_test(test_compare_cumulative),
        cmocka_unit_test(test_filter_glob),
        cmocka_unit_test(test_filter_semantics),
        cmocka_unit_test(test_filter_copies),
        cmocka_unit_test(test_dump_load),
        cmocka_unit_test(test_dump_load_modules),
        cmocka_unit_test(test_dump_load_big),
        cmocka_unit_test(test_dump_only_named_strings),
        cmocka_unit_test(test_load_missing),
        cmocka_unit_test(test_load_truncated),
        cmocka_unit_test(test_load_flipped),
        cmocka_unit_test(test_load_unknown_section),
        cmocka_unit_test(test_load_crafted),
        cmocka_unit_test(test_load_crafted_sums),
        cmocka_unit_test(test_load_crafted_timeline),
        cmocka_unit_test(test_load_crafted_damage),
        cmocka_unit_test(test_load_crafted_strings),
        cmocka_unit_test(test_crafted_strings_once),
        cmocka_unit_test(test_load_mutated),
        cmocka_unit_test(test_load_trailing),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_out_of_memory_growth),
        cmocka_unit_test(test_no_leak),
    };

    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
