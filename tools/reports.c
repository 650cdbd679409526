/*
 * reports.c - the verbs that read capture files (snapshot dumps):
 *
 *   objmem top FILE [--by lineno|filename|traceback] [--cumulative]
 *                   [--limit N]             the biggest allocation sites
 *   objmem leaks FILE [--limit N]           what was live at exit, by
 *                                           traceback
 *   objmem peak FILE [--by ...] ...         what was live at the peak
 *   objmem allocs FILE [--by ...] [--sort size|count] ...
 *                                           every allocation of the run,
 *                                           freed or not: the sites that
 *                                           keep the allocator busy
 *   objmem diff OLD NEW [--by ...] [--cumulative] [--limit N] [--allocs]
 *                                           what grew between two captures
 *                                           (--allocs: what was allocated
 *                                           between them)
 *
 * The figures are tracemalloc's Snapshot.statistics and compare_to.  A
 * sampled capture prints estimates, each with one standard error.  C++
 * functions are named as their source spells them (the C++ runtime's
 * demangler, when the machine has libstdc++), in every verb's output.
 *
 * --json prints the same figures as one JSON object, for scripts:
 *
 *   {"report": "top", "file": F, "traces": N, "traced": B, "peak": B,
 *    "sample_mean": B, "lost": N, "by": "lineno", "cumulative": false,
 *    (allocs: "allocations": N, "allocated": B for traces .. peak,
 *    and "sort": "size" or "count")
 *    ["filtered": {"kept": N, "of": N},]
 *    "statistics": [{"size": B, "count": N, ["size_error": E,
 *                    "count_error": E,] "traceback": TB}, ...],
 *    "others": {"statistics": N, "size": B}, ["total": B]}
 *
 *   TB: {"total_nframe": N, "frames": [{"file": F, "line": N,
 *        "function": F or null, ["module": F, "offset": N | "address":
 *        N]}, ...]}, the most recent frame first; a C frame's offset is
 *        its return address less its module's load bias (addr2line's).
 *   A figure kept as a double (an error, an estimated sum) that is not
 *   finite, as a crafted or absurdly sampled capture's can be, is null.
 *   diff: {"report": "diff", "old": F, "new": F, "by", "cumulative",
 *        ["filtered",] "statistics": [{"size", "size_diff", "count",
 *        "count_diff", "traceback"}, ...]}
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "objmem.h"

/* Which snapshot of a capture a report reads. */
enum part { PART_LIVE, PART_PEAK, PART_ALLOCS };

struct report_opts {
    const char *verb;
    const char *files[2];
    int nfiles;
    enum om_key key;
    bool cumulative;
    bool json;
    bool by_count;              /* allocs --sort count */
    enum part part;             /* diff --allocs: PART_ALLOCS */
    long limit;
    struct objmem_filters filters;
};

/* "1.2 MiB": bytes for people. */
const char *objmem_human(double bytes, char *buf, size_t size)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = bytes < 0 ? -bytes : bytes;
    int u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%s%.0f B", bytes < 0 ? "-" : "", v);
    else
        snprintf(buf, size, "%s%.1f %s", bytes < 0 ? "-" : "", v, units[u]);
    return buf;
}

#define human objmem_human

typedef char *demangle_fn(const char *, char *, size_t *, int *);

/* libstdc++'s __cxa_demangle, loaded on the first C++ name; NULL when
 * the machine has none. */
static demangle_fn *demangler(void)
{
    static demangle_fn *fn;
    static bool tried;

    if (!tried) {
        void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);

        tried = true;
        if (h)
            *(void **)&fn = dlsym(h, "__cxa_demangle");
    }
    return fn;
}

const char *objmem_function_name(const char *name, char *buf, size_t size)
{
    demangle_fn *fn;
    char *plain;
    int status = -1;

    if (!name || strncmp(name, "_Z", 2) != 0 ||
        strnlen(name, OBJMEM_DEMANGLE_MAX + 1) > OBJMEM_DEMANGLE_MAX ||
        !(fn = demangler()))
        return name;
    plain = fn(name, NULL, NULL, &status);
    if (status != 0 || !plain) {
        free(plain);
        return name;
    }
    snprintf(buf, size, "%s", plain);
    free(plain);
    return buf;
}

/* One frame of s into buf: "file:line in function", or the C form
 * without a line, "module in function [+0x1a2b]": the return address in
 * the module's file (pc - load bias, as addr2line -e module takes it),
 * or the address itself when s has no module for it ("[0x7f...]").  A
 * string is read no further than buf holds: a crafted capture's names
 * may be megabytes long, shared by every frame. */
static void frame_text(const struct om_snapshot *s, const struct om_frame *f,
                       char *buf, size_t size)
{
    const char *file = f->filename ? f->filename : "<unknown>";
    int cap = size < INT_MAX ? (int)size : INT_MAX;
    char name[1024];
    struct om_module m;
    int k, n = f->lineno ? snprintf(buf, size, "%.*s:%u", cap, file,
                                    f->lineno)
                         : snprintf(buf, size, "%.*s", cap, file);

    if (n >= 0 && (size_t)n < size && f->function)
        n += snprintf(buf + n, size - (size_t)n, " in %.*s", cap,
                      objmem_function_name(f->function, name, sizeof(name)));
    if (n < 0 || (size_t)n >= size || f->lineno || !f->pc)
        return;
    k = om_snapshot_find_module(s, f->pc);      /* -EINVAL for s NULL */
    if (k >= 0 && om_snapshot_module(s, (size_t)k, &m) == 0)
        snprintf(buf + n, size - (size_t)n, " [+0x%lx]",
                 (unsigned long)((uintptr_t)f->pc - m.bias));
    else
        snprintf(buf + n, size - (size_t)n, " [%p]", f->pc);
}

void objmem_frame_text(const struct om_snapshot *s,
                       const struct om_traceback *tb, char *buf, size_t size)
{
    if (tb->nframe == 0)
        snprintf(buf, size, "<no frames>");
    else
        frame_text(s, &tb->frames[0], buf, size);
}

static void print_frame(FILE *out, const struct om_snapshot *s,
                        const struct om_frame *f)
{
    char buf[2048];

    frame_text(s, f, buf, sizeof(buf));
    fputs(buf, out);
}

void objmem_print_frames(FILE *out, const struct om_snapshot *s,
                         const struct om_traceback *tb, unsigned n)
{
    if (tb->nframe == 0) {
        fputs("<no frames>\n", out);
        return;
    }
    print_frame(out, s, &tb->frames[0]);
    fputc('\n', out);
    for (unsigned i = 1; i < n && i < tb->nframe; i++) {
        fputs("        ", out);
        print_frame(out, s, &tb->frames[i]);
        fputc('\n', out);
    }
    if (n > 1 && tb->total_nframe > tb->nframe && n >= tb->nframe)
        fprintf(out, "        ... %u more frames\n",
                tb->total_nframe - tb->nframe);
}

static void print_traceback(FILE *out, const struct om_snapshot *s,
                            const struct om_traceback *tb, bool all)
{
    objmem_print_frames(out, s, tb, all ? tb->nframe : 1);
}

static bool sampled(const struct om_snapshot *s);

/* ---- JSON ---- */

void objmem_json_string(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

void objmem_json_double(FILE *out, double v, int decimals)
{
    if (isfinite(v))
        fprintf(out, "%.*f", decimals, v);
    else
        fputs("null", out);
}

/* HTML-escape s into f. */
void objmem_html_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

static void json_frame(FILE *out, const struct om_snapshot *s,
                       const struct om_frame *f)
{
    char name[1024];
    struct om_module m;
    int k;

    fputs("{\"file\": ", out);
    objmem_json_string(out, f->filename);
    fprintf(out, ", \"line\": %u, \"function\": ", f->lineno);
    objmem_json_string(out, f->function ? objmem_function_name(
                                              f->function, name,
                                              sizeof(name))
                                        : NULL);
    if (f->pc && (k = om_snapshot_find_module(s, f->pc)) >= 0 &&
        om_snapshot_module(s, (size_t)k, &m) == 0) {
        fputs(", \"module\": ", out);
        objmem_json_string(out, m.path);
        fprintf(out, ", \"offset\": %lu",
                (unsigned long)((uintptr_t)f->pc - m.bias));
    } else if (f->pc) {
        fprintf(out, ", \"address\": %lu", (unsigned long)(uintptr_t)f->pc);
    }
    fputc('}', out);
}

void objmem_json_traceback(FILE *out, const struct om_snapshot *s,
                           const struct om_traceback *tb, enum om_key by)
{
    unsigned n = by == OM_KEY_TRACEBACK ? tb->nframe : tb->nframe != 0;

    fprintf(out, "\"traceback\": {\"total_nframe\": %u, \"frames\": [",
            tb->total_nframe);
    for (unsigned i = 0; i < n; i++) {
        struct om_frame file = { tb->frames[i].filename, NULL, 0, NULL };

        fputs(i ? ", " : "", out);
        json_frame(out, s, by == OM_KEY_FILENAME ? &file : &tb->frames[i]);
    }
    fputs("]}", out);
}

/* The keys that open a report: what it is, its options, the filters'
 * count (all: the snapshot before them). */
static void json_head(FILE *out, const struct report_opts *o,
                      const struct om_snapshot *all,
                      const struct om_snapshot *kept)
{
    double bytes, count, kept_n;

    fprintf(out, "{\"report\": \"%s\", ", o->verb);
    if (o->nfiles == 2) {
        fputs("\"old\": ", out);
        objmem_json_string(out, o->files[0]);
        fputs(", \"new\": ", out);
        objmem_json_string(out, o->files[1]);
    } else {
        struct om_snapshot_info i;

        om_snapshot_get_info(all, &i);
        fputs("\"file\": ", out);
        objmem_json_string(out, o->files[0]);
        if (o->part == PART_ALLOCS) {
            objmem_snapshot_sums(all, &bytes, &count);
            fputs(", \"allocations\": ", out);
            objmem_json_double(out, count, 0);
            fputs(", \"allocated\": ", out);
            objmem_json_double(out, bytes, 0);
        } else {
            fprintf(out, ", \"traces\": %zu, \"traced\": %zu, \"peak\": "
                    "%zu", i.ntraces, i.current, i.peak);
        }
        fprintf(out, ", \"sample_mean\": %zu, \"lost\": %zu",
                i.sample_mean, i.lost);
    }
    fprintf(out, ", \"by\": \"%s\", \"cumulative\": %s",
            objmem_key_name(o->key), o->cumulative ? "true" : "false");
    if (o->part == PART_ALLOCS && o->nfiles == 1)
        fprintf(out, ", \"sort\": \"%s\"", o->by_count ? "count" : "size");
    if (kept != all && o->part == PART_ALLOCS) {
        objmem_snapshot_sums(kept, &bytes, &kept_n);
        objmem_snapshot_sums(all, &bytes, &count);
        fputs(", \"filtered\": {\"kept\": ", out);
        objmem_json_double(out, kept_n, 0);
        fputs(", \"of\": ", out);
        objmem_json_double(out, count, 0);
        fputc('}', out);
    } else if (kept != all) {
        fprintf(out, ", \"filtered\": {\"kept\": %zu, \"of\": %zu}",
                om_snapshot_count(kept), om_snapshot_count(all));
    }
    fputs(", \"statistics\": [", out);
}

static void json_stat(FILE *out, const struct om_snapshot *s, size_t i,
                      const struct om_statistic *st)
{
    fprintf(out, "%s\n  {\"size\": %zu, \"count\": %zu, ", i ? "," : "",
            st->size, st->count);
    if (sampled(s)) {
        fputs("\"size_error\": ", out);
        objmem_json_double(out, st->size_error, 1);
        fputs(", \"count_error\": ", out);
        objmem_json_double(out, st->count_error, 2);
        fputs(", ", out);
    }
    objmem_json_traceback(out, s, st->traceback, OM_KEY_TRACEBACK);
    fputc('}', out);
}

#define PROGRESS_BYTES (32u << 20)   /* captures this big say so */

/* Whether to say how a long read goes: a big capture and a terminal, or
 * OBJMEM_PROGRESS=1. */
static bool show_progress(const char *path, double *mib)
{
    struct stat st;
    const char *force = getenv("OBJMEM_PROGRESS");

    if (stat(path, &st) != 0)
        return false;
    *mib = (double)st.st_size / (1 << 20);
    if (force && *force)
        return strcmp(force, "0") != 0;
    return st.st_size >= PROGRESS_BYTES && isatty(2);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A capture file, or NULL after a message naming what is wrong. */
struct om_snapshot *objmem_capture_load(const char *path)
{
    double mib = 0, t0 = now_s();
    bool progress = show_progress(path, &mib);
    struct om_snapshot *s;

    if (progress)
        fprintf(stderr, "objmem: reading %s (%.1f MiB)... ", path, mib);
    s = om_snapshot_load(path);
    if (progress)
        fprintf(stderr, "%s, %.2f s\n", s ? "done" : "failed",
                now_s() - t0);

    if (!s)
        fprintf(stderr, "objmem: %s: %s\n", path,
                errno == EINVAL ? om_snapshot_load_error() : strerror(errno));
    return s;
}

/* The keys' names, by enum om_key. */
static const char *const key_names[] = { "filename", "lineno", "traceback" };

bool objmem_parse_key(const char *v, enum om_key *key)
{
    for (int k = OM_KEY_FILENAME; k <= OM_KEY_TRACEBACK; k++)
        if (strcmp(v, key_names[k]) == 0) {
            *key = (enum om_key)k;
            return true;
        }
    return false;
}

const char *objmem_key_name(enum om_key key)
{
    return key_names[key];
}

/* Options and file names; false (after a message) when they are bad. */
static bool parse(int argc, char **argv, int want, struct report_opts *o)
{
    o->verb = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int filter = objmem_filter_option(argc, argv, &i, &o->filters);

        if (filter < 0)
            return false;
        if (filter > 0)
            continue;
        if (strcmp(a, "--by") == 0 && i + 1 < argc) {
            if (!objmem_parse_key(argv[++i], &o->key)) {
                fprintf(stderr, "objmem: --by lineno, filename or "
                        "traceback, not '%s'\n", argv[i]);
                return false;
            }
        } else if (strcmp(a, "--cumulative") == 0) {
            o->cumulative = true;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--sort") == 0 && i + 1 < argc &&
                   strcmp(o->verb, "allocs") == 0) {
            if (strcmp(argv[++i], "count") != 0 &&
                strcmp(argv[i], "size") != 0) {
                fprintf(stderr, "objmem: --sort size or count, not '%s'\n",
                        argv[i]);
                return false;
            }
            o->by_count = strcmp(argv[i], "count") == 0;
        } else if (strcmp(a, "--allocs") == 0 &&
                   strcmp(o->verb, "diff") == 0) {
            o->part = PART_ALLOCS;
        } else if (strcmp(a, "--limit") == 0 && i + 1 < argc) {
            o->limit = strtol(argv[++i], NULL, 10);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "objmem: unknown option '%s'\n", a);
            return false;
        } else if (o->nfiles < 2) {
            o->files[o->nfiles++] = a;
        }
    }
    if (o->nfiles != want) {
        fprintf(stderr, "objmem %s: %s\n", argv[0],
                want == 1 ? "one capture file, please"
                          : "two capture files, please: OLD NEW");
        return false;
    }
    return true;
}

static void header(FILE *out, const char *what, const struct om_snapshot *s,
                   const char *path, enum part part)
{
    struct om_snapshot_info i;
    double bytes, count;
    char a[32];

    om_snapshot_get_info(s, &i);
    objmem_snapshot_sums(s, &bytes, &count);
    if (part == PART_ALLOCS)
        fprintf(out, "# objmem %s: %s: %.0f allocations, %s allocated",
                what, path, count, human(bytes, a, sizeof(a)));
    else
        fprintf(out, "# objmem %s: %s: %zu traces, %s traced", what, path,
                i.ntraces, human((double)i.current, a, sizeof(a)));
    if (i.sample_mean)
        fprintf(out, ", sampled every %s on average (estimates +- one "
                "standard error)", human((double)i.sample_mean, a,
                                         sizeof(a)));
    fputc('\n', out);
    if (i.lost)
        fprintf(out, "# %zu traces were lost (no memory to record them)\n",
                i.lost);
}

static bool sampled(const struct om_snapshot *s)
{
    struct om_snapshot_info i;

    om_snapshot_get_info(s, &i);
    return i.sample_mean != 0;
}

static void print_stat(FILE *out, const struct om_snapshot *s, size_t rank,
                       const struct om_statistic *st, bool all,
                       const char *blocks)
{
    char a[32], b[32];

    fprintf(out, "#%zu: ", rank);
    print_traceback(out, s, st->traceback, all);
    fprintf(out, "    %s", human((double)st->size, a, sizeof(a)));
    if (sampled(s))
        fprintf(out, " +- %s", human(st->size_error, b, sizeof(b)));
    fprintf(out, " in %zu %s", st->count, blocks);
    if (sampled(s) && !strcmp(blocks, "allocations"))
        fprintf(out, " +- %.0f", st->count_error);
    if (st->count)
        fprintf(out, " (average %s)",
                human((double)st->size / (double)st->count, b, sizeof(b)));
    fputc('\n', out);
}

/* The snapshot at the peak in capture c: the one it carries, or c itself
 * when it was taken within a sixteenth of its peak (om_trace_keep_peak
 * keeps none then); the allocations of the run; or c (PART_LIVE).  NULL
 * after a message. */
static const struct om_snapshot *part_of(const struct om_snapshot *c,
                                         const char *path, enum part part)
{
    struct om_snapshot_info i;

    if (!c || part == PART_LIVE)
        return c;
    if (part == PART_ALLOCS) {
        if (!om_snapshot_allocations(c))
            fprintf(stderr, "objmem: %s: no allocations of the run in this "
                    "capture (an older objmem wrote it)\n", path);
        return om_snapshot_allocations(c);
    }
    if (om_snapshot_peak(c))
        return om_snapshot_peak(c);
    om_snapshot_get_info(c, &i);
    if (i.current >= i.peak - i.peak / 16)
        return c;
    fprintf(stderr, "objmem: %s: no snapshot at the peak in this capture "
            "(om_trace_keep_peak was off)\n", path);
    return NULL;
}

/* Most allocations first (allocs --sort count); then the most bytes. */
static int by_count(const void *a, const void *b)
{
    const struct om_statistic *x = a, *y = b;

    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

static int print_top(const char *what, const struct report_opts *o)
{
    struct om_snapshot *c = objmem_capture_load(o->files[0]), *kept;
    const struct om_snapshot *all = part_of(c, o->files[0], o->part);
    const struct om_snapshot *s = objmem_filter(all, o->files[0],
                                                &o->filters, &kept);
    struct om_statistic *st;
    double total = 0, rest = 0;
    size_t n, rest_n = 0;
    int rc;

    if (!s) {
        om_snapshot_free(c);
        return 1;
    }
    rc = om_snapshot_statistics(s, o->key, o->cumulative, &st, &n);
    if (rc < 0) {
        fprintf(stderr, "objmem: %s\n", strerror(-rc));
        om_snapshot_free(kept);
        om_snapshot_free(c);
        return 1;
    }
    if (o->by_count)
        qsort(st, n, sizeof(*st), by_count);
    if (o->json) {
        json_head(stdout, o, all, s);
    } else {
        header(stdout, what, all, o->files[0], o->part);
        objmem_filter_note(stdout, &o->filters, all, s,
                           o->part == PART_ALLOCS);
    }
    for (size_t i = 0; i < n; i++) {
        total += (double)st[i].size;
        if (o->limit > 0 && i >= (size_t)o->limit) {
            rest += (double)st[i].size;
            rest_n++;
        } else if (o->json) {
            json_stat(stdout, s, i, &st[i]);
        } else {
            print_stat(stdout, s, i + 1, &st[i], o->key == OM_KEY_TRACEBACK,
                       o->part == PART_ALLOCS ? "allocations" : "blocks");
        }
    }
    if (o->json) {
        printf("],\n \"others\": {\"statistics\": %zu, \"size\": %.0f}",
               rest_n, rest);
        if (!o->cumulative)
            printf(", \"total\": %.0f", total);
        printf("}\n");
    } else {
        char a[32];

        if (rest_n)
            printf("%zu others: %s\n", rest_n, human(rest, a, sizeof(a)));
        if (!o->cumulative)
            printf("total: %s\n", human(total, a, sizeof(a)));
    }
    om_snapshot_free(kept);
    om_snapshot_free(c);
    return 0;
}

int objmem_top(int argc, char **argv)
{
    struct report_opts o = { .key = OM_KEY_LINENO, .limit = 10,
                             .filters = OBJMEM_NO_FILTERS };

    if (!parse(argc, argv, 1, &o))
        return 2;
    return print_top("top", &o);
}

int objmem_peak(int argc, char **argv)
{
    struct report_opts o = { .key = OM_KEY_LINENO, .limit = 10,
                             .filters = OBJMEM_NO_FILTERS };

    if (!parse(argc, argv, 1, &o))
        return 2;
    o.part = PART_PEAK;
    return print_top("peak (live at the high-water mark)", &o);
}

int objmem_allocs(int argc, char **argv)
{
    struct report_opts o = { .key = OM_KEY_LINENO, .limit = 10,
                             .filters = OBJMEM_NO_FILTERS };

    if (!parse(argc, argv, 1, &o))
        return 2;
    o.part = PART_ALLOCS;
    return print_top("allocs (every allocation of the run, freed or not)",
                     &o);
}

int objmem_leaks(int argc, char **argv)
{
    struct report_opts o = { .key = OM_KEY_TRACEBACK, .limit = 10,
                             .filters = OBJMEM_NO_FILTERS };

    if (!parse(argc, argv, 1, &o))
        return 2;
    return print_top("leaks (live at exit)", &o);
}

/* d's pcs are now's, or old's when it has nothing now. */
static void print_diff(const struct om_snapshot *now,
                       const struct om_snapshot *old,
                       const struct om_statistic_diff *d, size_t rank,
                       bool all, const char *blocks)
{
    char a[32], b[32];

    printf("#%zu: ", rank);
    print_traceback(stdout, d->count ? now : old, d->traceback, all);
    printf("    %s (%s%s), %zu %s (%+td)\n",
           human((double)d->size, a, sizeof(a)), d->size_diff >= 0 ? "+" : "",
           human((double)d->size_diff, b, sizeof(b)), d->count, blocks,
           d->count_diff);
}

int objmem_diff(int argc, char **argv)
{
    struct report_opts o = { .key = OM_KEY_LINENO, .limit = 10,
                             .filters = OBJMEM_NO_FILTERS };
    struct om_snapshot *old_all, *now_all, *kept[2] = { NULL, NULL };
    const struct om_snapshot *old, *now, *old_part, *now_part = NULL;
    struct om_statistic_diff *d;
    size_t n;
    int rc;

    if (!parse(argc, argv, 2, &o))
        return 2;
    if (!(old_all = objmem_capture_load(o.files[0])))
        return 1;
    if (!(now_all = objmem_capture_load(o.files[1]))) {
        om_snapshot_free(old_all);
        return 1;
    }
    old_part = part_of(old_all, o.files[0], o.part);
    if (old_part)
        now_part = part_of(now_all, o.files[1], o.part);
    old = now_part ? objmem_filter(old_part, o.files[0], &o.filters,
                                   &kept[0]) : NULL;
    now = old ? objmem_filter(now_part, o.files[1], &o.filters, &kept[1])
              : NULL;
    rc = now ? om_snapshot_compare(now, old, o.key, o.cumulative, &d, &n)
             : -ENOMEM;
    if (rc == 0 && o.json) {
        json_head(stdout, &o, now_part, now);
        for (size_t i = 0; i < n && (o.limit <= 0 || i < (size_t)o.limit);
             i++) {
            printf("%s\n  {\"size\": %zu, \"size_diff\": %td, \"count\": "
                   "%zu, \"count_diff\": %td, ", i ? "," : "", d[i].size,
                   d[i].size_diff, d[i].count, d[i].count_diff);
            objmem_json_traceback(stdout, d[i].count ? now : old,
                                  d[i].traceback, OM_KEY_TRACEBACK);
            putchar('}');
        }
        printf("]}\n");
    } else if (rc == 0) {
        printf("# objmem diff%s: %s -> %s\n", o.part == PART_ALLOCS ?
               " --allocs (what was allocated between them)" : "",
               o.files[0], o.files[1]);
        objmem_filter_note(stdout, &o.filters, now_part, now,
                           o.part == PART_ALLOCS);
        for (size_t i = 0; i < n && (o.limit <= 0 || i < (size_t)o.limit);
             i++)
            print_diff(now, old, &d[i], i + 1, o.key == OM_KEY_TRACEBACK,
                       o.part == PART_ALLOCS ? "allocations" : "blocks");
    } else if (now) {
        fprintf(stderr, "objmem: %s\n", strerror(-rc));
    }
    om_snapshot_free(kept[0]);
    om_snapshot_free(kept[1]);
    om_snapshot_free(now_all);
    om_snapshot_free(old_all);
    return rc == 0 ? 0 : 1;
}
