/*
 * fuzz_reports.c - libFuzzer target: the objmem verbs that read a
 * capture (tools/: reports.c, export.c, pins.c, filters.c, timeline.c),
 * run in-process on a capture that om_snapshot_load accepts.
 *
 * The input is the file, in a memfd loaded by its /proc/self/fd path
 * with the checksum let through (omi_snapshot_fuzzing), as fuzz_capture
 * does.  When it loads, each verb runs on it as the command line would
 * run it (argv), its stdout in a second memfd (out) and its stderr on
 * /dev/null while it runs (the sanitizers report on a copy of the real
 * stderr), its output files (--html, -o) in a third (page):
 *
 *   top        every --by key, --cumulative, --limit 0, --json, and the
 *              filters: --include the first trace's file, --exclude it,
 *              --include '*' --all-frames, --domain raw
 *   peak, allocs (--sort count), leaks
 *   diff       the capture against itself, and against its copy filtered
 *              by the first file (om_snapshot_filter, dumped), both ways
 *   flamegraph folded, --html, --allocs;  pprof -o
 *   pins       text, --json, --html (a capture with a heap map)
 *   timeline   text, --json, --html (a capture with one)
 *
 * What is cheap to check is checked: JSON balanced and closed, a page
 * ending "</html>\n", folded lines "frames bytes\n" whose bytes add up to
 * the statistics by traceback, a profile made of whole protobuf fields,
 * top's "total" the sum of the statistics (and of the traces' bytes,
 * when exact), a self-diff of zeros.
 *
 * Data: the three memfds and their paths, made once; argv strings are
 * copied into arg[] before each verb (filters.c cuts ":LINE" off its
 * own argument).
 *
 * Invariants (fail() when one breaks):
 *   1. A verb that needs only the capture (top, leaks, diff, flamegraph,
 *      pprof) exits 0 on a capture that loads; the others 0 or 1 (no
 *      peak, allocations, heap map or timeline: a message).
 *   2. Their output is well-formed as above.
 *   3. Between inputs nothing stays: every snapshot freed, om_check() ==
 *      0, the pools' blocks and objmem's mapped bytes as before; leaks of
 *      the tools' malloc are LeakSanitizer's, per input.
 */
#define _GNU_SOURCE 1           /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "objmem.h"
#include "trace.h"
#include "cli.h"

#define ARGS_MAX 12
#define ARG_BYTES 4096          /* an argument, a file pattern cut there */
#define EXACT_MAX 9007199254740992.0    /* 2^53 */

typedef int verb_fn(int argc, char **argv);

struct memfile {
    int fd;
    char path[64];
};

static struct memfile in, filtered, out, page;
static int err_fd = -1, std_fd = -1;    /* the real stderr and stdout */
static int null_fd = -1;                /* /dev/null */
static char *text;                      /* out's contents, after a verb */
static size_t text_len, text_cap;

/* The sanitizers' reports go where this says (weak: not in every build). */
void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

static void fail(const char *what)
{
    dprintf(err_fd >= 0 ? err_fd : 2, "fuzz_reports: %s\n", what);
    abort();
}

/* ---- Files ---- */

static void new_memfile(struct memfile *m, const char *name)
{
    m->fd = memfd_create(name, MFD_CLOEXEC);
    if (m->fd < 0)
        fail("memfd_create");
    snprintf(m->path, sizeof(m->path), "/proc/self/fd/%d", m->fd);
}

static void put_file(const struct memfile *m, const uint8_t *data,
                     size_t size)
{
    size_t done = 0;

    if (ftruncate(m->fd, 0) != 0)
        fail("ftruncate");
    while (done < size) {
        ssize_t n = pwrite(m->fd, data + done, size - done, (off_t)done);

        if (n <= 0)
            fail("pwrite");
        done += (size_t)n;
    }
}

/* m's contents into text (NUL-terminated), text_len bytes. */
static void read_file(const struct memfile *m)
{
    off_t size = lseek(m->fd, 0, SEEK_END);
    ssize_t n;

    if (size < 0)
        fail("lseek");
    if ((size_t)size + 1 > text_cap) {
        text_cap = (size_t)size + 1;
        text = realloc(text, text_cap);
        if (!text)
            fail("out of memory");
    }
    n = size ? pread(m->fd, text, (size_t)size, 0) : 0;
    if (n != size)
        fail("pread");
    text[size] = '\0';
    text_len = (size_t)size;
}

/* ---- Running a verb ---- */

/* verb with the arguments (NULL-terminated), its stdout in out, read
 * back into text; its exit status. */
static int run(verb_fn *verb, const char *name, ...)
{
    static char arg[ARGS_MAX][ARG_BYTES];
    char *argv[ARGS_MAX + 1];
    int argc = 0, rc;
    const char *a;
    va_list ap;

    snprintf(arg[argc], ARG_BYTES, "%s", name);
    argv[argc] = arg[argc];
    argc++;
    va_start(ap, name);
    while ((a = va_arg(ap, const char *)) && argc < ARGS_MAX) {
        snprintf(arg[argc], ARG_BYTES, "%s", a);
        argv[argc] = arg[argc];
        argc++;
    }
    va_end(ap);
    argv[argc] = NULL;
    put_file(&out, NULL, 0);
    put_file(&page, NULL, 0);
    fflush(stdout);
    if (dup2(out.fd, 1) != 1 || dup2(null_fd, 2) != 2)
        fail("dup2");
    rc = verb(argc, argv);
    fflush(stdout);
    fflush(stderr);
    if (dup2(err_fd, 2) != 2 || dup2(std_fd, 1) != 1)
        fail("dup2 back");
    read_file(&out);
    return rc;
}

/* ---- Output checks ---- */

/* Outside a string, a word is true, false or null (not nan, inf): the
 * length of the one at s, or fail. */
static size_t json_word(const char *s)
{
    static const char *const words[] = { "true", "false", "null" };

    for (int k = 0; k < 3; k++)
        if (strncmp(s, words[k], strlen(words[k])) == 0)
            return strlen(words[k]);
    fail("json: a word other than true, false or null");
    return 0;
}

/* JSON: strings closed, brackets balanced, one value, a newline last. */
static void check_json(const char *s, size_t n)
{
    long depth = 0;
    bool str = false;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!str && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            i += json_word(s + i) - 1;
            continue;
        }
        if (str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                str = false;
            else if ((unsigned char)c < 0x20)
                fail("json: a control character in a string");
        } else if (c == '"') {
            str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                fail("json: a bracket closed twice");
        }
    }
    if (str || depth || n < 2 || s[n - 1] != '\n' || s[n - 2] != '}')
        fail("json: not one closed object and a newline");
}

static void check_html(const struct memfile *m)
{
    read_file(m);
    if (text_len < 8 || strcmp(text + text_len - 8, "</html>\n") != 0)
        fail("html: the page does not end </html>");
}

/* Folded stacks: lines "frames bytes\n"; the bytes' sum (mod 2^64). */
static uint64_t folded_sum(const char *s, size_t n)
{
    uint64_t sum = 0;
    const char *end = s + n;

    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *sp = nl ? nl : s;
        uint64_t v = 0;

        if (!nl)
            fail("folded: a line without a newline");
        while (sp > s && sp[-1] >= '0' && sp[-1] <= '9')
            sp--;
        if (sp == nl || sp - 1 <= s || sp[-1] != ' ')
            fail("folded: a line not \"frames bytes\"");
        for (const char *d = sp; d < nl; d++)
            v = v * 10 + (uint64_t)(*d - '0');
        sum += v;
        s = nl + 1;
    }
    return sum;
}

/* The bytes of statistics by traceback (flamegraph's stacks), mod 2^64. */
static uint64_t traceback_sum(const struct om_snapshot *s)
{
    struct om_statistic *st;
    uint64_t sum = 0;
    size_t n;

    if (om_snapshot_statistics(s, OM_KEY_TRACEBACK, false, &st, &n) != 0)
        fail("statistics by traceback failed");
    for (size_t i = 0; i < n; i++)
        sum += st[i].size;
    return sum;
}

static uint64_t varint(const unsigned char **p, const unsigned char *end)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            fail("pprof: a varint cut off");
        v |= (uint64_t)(**p & 0x7f) << shift;
        if (!(*(*p)++ & 0x80))
            return v;
    }
    fail("pprof: a varint of more than 10 bytes");
    return 0;
}

/* A profile: top-level fields, varints and lengths, to the last byte. */
static void check_pprof(void)
{
    const unsigned char *p, *end;

    read_file(&page);
    p = (const unsigned char *)text;
    end = p + text_len;
    if (!text_len)
        fail("pprof: an empty profile");
    while (p < end) {
        uint64_t key = varint(&p, end), len;

        if ((key & 7) == 0) {
            varint(&p, end);
        } else if ((key & 7) == 2) {
            len = varint(&p, end);
            if (len > (uint64_t)(end - p))
                fail("pprof: a field longer than the profile");
            p += len;
        } else {
            fail("pprof: a wire type other than varint and length");
        }
    }
}

/* top --json's "total": the statistics' sizes summed as top sums them;
 * and, exact, the traces' bytes. */
static void check_total(const struct om_snapshot *s, enum om_key key)
{
    struct om_statistic *st;
    struct om_trace_info t;
    double total = 0, bytes = 0;
    bool exact = true;
    char want[64];
    size_t n;

    if (om_snapshot_statistics(s, key, false, &st, &n) != 0)
        fail("statistics failed");
    for (size_t i = 0; i < n; i++)
        total += (double)st[i].size;
    for (size_t i = 0; i < om_snapshot_count(s); i++) {
        om_snapshot_trace(s, i, &t);
        exact &= t.weight == 1 && (double)t.size < EXACT_MAX;
        bytes += (double)t.size * t.weight;
    }
    snprintf(want, sizeof(want), "\"total\": %.0f}\n", total);
    if (text_len < strlen(want) ||
        strcmp(text + text_len - strlen(want), want) != 0)
        fail("top --json: a total other than the statistics' sum");
    if (exact && bytes < EXACT_MAX && total != bytes)
        fail("top: the total is not the traces' bytes");
}

/* Every "size_diff" and "count_diff" of diff --json is 0. */
static void check_zero_diffs(void)
{
    static const char *const keys[] = { "\"size_diff\": ",
                                        "\"count_diff\": " };

    for (int k = 0; k < 2; k++)
        for (const char *p = text; (p = strstr(p, keys[k])); p++)
            if (strncmp(p + strlen(keys[k]), "0,", 2) != 0)
                fail("diff of a capture with itself: a difference");
}

/* ---- The verbs ---- */

static void expect(int rc, bool must)
{
    if (rc != 0 && (must || rc != 1))
        fail(must ? "a verb failed on a capture that loads"
                  : "a verb exited other than 0 or 1");
}

static void run_top(const struct om_snapshot *s, const char *path,
                    const char *file)
{
    static const char *const keys[] = { "lineno", "filename", "traceback" };

    for (int k = 0; k < 3; k++) {
        expect(run(objmem_top, "top", path, "--by", keys[k], "--json",
                   "--limit", "0", NULL), true);
        check_json(text, text_len);
        check_total(s, (enum om_key)(k == 0 ? OM_KEY_LINENO
                                     : k == 1 ? OM_KEY_FILENAME
                                              : OM_KEY_TRACEBACK));
        expect(run(objmem_top, "top", path, "--by", keys[k], NULL), true);
    }
    expect(run(objmem_top, "top", path, "--cumulative", "--limit", "3",
               NULL), true);
    expect(run(objmem_top, "top", path, "--include", file, "--json", NULL),
           true);
    check_json(text, text_len);
    expect(run(objmem_top, "top", path, "--exclude", file, "--by",
               "filename", NULL), true);
    expect(run(objmem_top, "top", path, "--include", "*", "--all-frames",
               "--domain", "raw", NULL), true);
    expect(run(objmem_leaks, "leaks", path, "--limit", "0", NULL), true);
    expect(run(objmem_peak, "peak", path, "--json", NULL), false);
    expect(run(objmem_allocs, "allocs", path, "--sort", "count", "--by",
               "filename", NULL), false);
}

/* The capture at path with only the traces whose most recent frame is
 * in file, dumped to filtered: false when the dump failed. */
static bool dump_filtered(const struct om_snapshot *s, const char *file)
{
    struct om_filter f = { .inclusive = true, .domain = -1,
                           .filename_pattern = file };
    struct om_snapshot *kept = om_snapshot_filter(s, &f, 1);
    int err;

    if (!kept)
        fail("om_snapshot_filter failed");
    err = om_snapshot_dump(kept, filtered.path);
    om_snapshot_free(kept);
    return err == 0;
}

static void run_diff(const struct om_snapshot *s, const char *path,
                     const char *file)
{
    expect(run(objmem_diff, "diff", path, path, "--json", "--limit", "0",
               NULL), true);
    check_json(text, text_len);
    check_zero_diffs();
    expect(run(objmem_diff, "diff", path, path, "--by", "traceback",
               "--allocs", NULL), false);
    if (!dump_filtered(s, file))
        return;
    expect(run(objmem_diff, "diff", path, filtered.path, "--cumulative",
               NULL), true);
    expect(run(objmem_diff, "diff", filtered.path, path, "--json", NULL),
           true);
    check_json(text, text_len);
}

static void run_exports(const struct om_snapshot *s, const char *path)
{
    expect(run(objmem_flamegraph, "flamegraph", path, NULL), true);
    if (folded_sum(text, text_len) != traceback_sum(s))
        fail("flamegraph: the stacks' bytes are not the statistics'");
    expect(run(objmem_flamegraph, "flamegraph", path, "--html", page.path,
               NULL), true);
    check_html(&page);
    expect(run(objmem_flamegraph, "flamegraph", path, "--allocs", NULL),
           false);
    expect(run(objmem_pprof, "pprof", path, "-o", page.path, NULL), true);
    check_pprof();
}

static void run_pins(const struct om_snapshot *s, const char *path,
                     const char *file)
{
    const struct om_time_point *p;

    if (om_snapshot_heap(s)) {
        expect(run(objmem_pins, "pins", path, "--by", "traceback", NULL),
               true);
        expect(run(objmem_pins, "pins", path, "--json", "--limit", "0",
                   "--include", file, NULL), true);
        check_json(text, text_len);
        expect(run(objmem_pins, "pins", path, "--html", page.path, NULL),
               true);
        check_html(&page);
    }
    if (om_snapshot_timeline(s, &p)) {
        expect(run(objmem_timeline, "timeline", path, "--rows", "5", NULL),
               true);
        expect(run(objmem_timeline, "timeline", path, "--json", NULL), true);
        check_json(text, text_len);
        expect(run(objmem_timeline, "timeline", path, "--html", page.path,
                   NULL), true);
        check_html(&page);
    }
}

/* The file of s's first trace's most recent frame ("*" when none). */
static const char *first_file(const struct om_snapshot *s)
{
    struct om_trace_info t;

    if (om_snapshot_trace(s, 0, &t) == 0 && t.traceback->nframe)
        return t.traceback->frames[0].filename;
    return "*";
}

/* ---- The target ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    omi_snapshot_fuzzing = true;
    new_memfile(&in, "capture");
    new_memfile(&filtered, "filtered");
    new_memfile(&out, "stdout");
    new_memfile(&page, "page");
    err_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    std_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
    null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (err_fd < 0 || std_fd < 0 || null_fd < 0)
        fail("stderr");
    if (__sanitizer_set_report_fd)
        __sanitizer_set_report_fd((void *)(intptr_t)err_fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct om_stats before, after;
    struct om_snapshot *s;

    if (in.fd <= 0)
        LLVMFuzzerInitialize(NULL, NULL);
    if (om_stats_get(&before) != 0)
        fail("om_stats_get");
    put_file(&in, data, size);
    s = om_snapshot_load(in.path);
    if (s) {
        const char *file = first_file(s);

        run_top(s, in.path, file);
        run_diff(s, in.path, file);
        run_exports(s, in.path);
        run_pins(s, in.path, file);
    }
    om_snapshot_free(s);
    if (om_check() != 0)
        fail("om_check after the input");
    if (om_stats_get(&after) != 0 ||
        after.blocks_in_use != before.blocks_in_use ||
        after.bytes_mapped != before.bytes_mapped)
        fail("objmem's blocks or mapped bytes changed over the input");
    return 0;
}
