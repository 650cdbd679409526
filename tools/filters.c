/*
 * filters.c - the trace filters of the verbs that read a capture (top,
 * leaks, peak, pins, diff, flamegraph, pprof): tracemalloc's Filter and
 * DomainFilter on the command line, applied by om_snapshot_filter.
 *
 *   --include PATTERN[:LINE]   keep the traces whose most recent frame's
 *                              file (a source file, or a C frame's
 *                              module) matches PATTERN (fnmatch's * ?
 *                              [...]), at LINE when given
 *   --exclude PATTERN[:LINE]   leave those out
 *   --all-frames               the patterns match any frame of a
 *                              traceback, not only the most recent
 *   --domain raw|mem|obj|N     keep one allocator domain's traces: the
 *                              domain of every --include (file and
 *                              domain), or an inclusive DomainFilter
 *                              without them
 *
 * A trace is kept when it passes one inclusive filter at least (when
 * there are any) and every exclusive one.  The filtered snapshot keeps
 * the module table, so C frames still give their file addresses.
 *
 * Data: struct objmem_filters, the file filters as parsed (a pattern
 * points into argv, its ":LINE" cut off there), the domain, -1 for any,
 * and all_frames; objmem_filter makes om_filter's array of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* "PATTERN:LINE" into the pattern (argv's string cut at the colon) and
 * the line; a pattern without a numeric suffix is taken whole. */
static void split_line(char *arg, unsigned *lineno)
{
    char *colon = strrchr(arg, ':'), *end;
    unsigned long n;

    *lineno = 0;
    if (!colon || colon == arg || !colon[1] || colon[1] == '-')
        return;
    errno = 0;
    n = strtoul(colon + 1, &end, 10);
    if (*end || errno || n == 0 || n > 0xffffffffUL)
        return;
    *colon = '\0';
    *lineno = (unsigned)n;
}

/* "raw", "mem", "obj" or a number: the domain, or -1. */
static int parse_domain(const char *v)
{
    static const char *const names[] = { "raw", "mem", "obj" };
    char *end;
    long n;

    for (int i = 0; i < 3; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    errno = 0;
    n = strtol(v, &end, 10);
    return *v && !*end && !errno && n >= 0 && n <= 0x7fffffff ? (int)n : -1;
}

int objmem_filter_option(int argc, char **argv, int *i,
                         struct objmem_filters *fl)
{
    const char *a = argv[*i];
    bool include = strcmp(a, "--include") == 0;
    bool exclude = strcmp(a, "--exclude") == 0;
    bool domain = strcmp(a, "--domain") == 0;
    struct om_filter *f = &fl->f[fl->n];

    if (strcmp(a, "--all-frames") == 0) {
        fl->all_frames = true;
        return 1;
    }
    if (!include && !exclude && !domain)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "objmem: %s needs a %s\n", a,
                domain ? "domain (raw, mem, obj or a number)" : "pattern");
        return -1;
    }
    *i += 1;
    if (domain) {
        fl->domain = parse_domain(argv[*i]);
        if (fl->domain < 0)
            fprintf(stderr, "objmem: --domain raw, mem, obj or a number, "
                    "not '%s'\n", argv[*i]);
        return fl->domain < 0 ? -1 : 1;
    }
    if (fl->n == OBJMEM_FILTERS_MAX - 1) {
        fprintf(stderr, "objmem: more than %d filters\n",
                OBJMEM_FILTERS_MAX - 1);
        return -1;
    }
    *f = (struct om_filter){ .inclusive = include, .domain = -1 };
    split_line(argv[*i], &f->lineno);
    f->filename_pattern = argv[*i];
    fl->n++;
    return 1;
}

const struct om_snapshot *objmem_filter(const struct om_snapshot *s,
                                        const char *path,
                                        const struct objmem_filters *fl,
                                        struct om_snapshot **owned)
{
    struct om_filter f[OBJMEM_FILTERS_MAX];
    bool inclusive = false;
    size_t n = fl->n;

    *owned = NULL;
    if (!s || (fl->n == 0 && fl->domain < 0))
        return s;
    for (size_t k = 0; k < fl->n; k++) {
        f[k] = fl->f[k];
        f[k].all_frames = fl->all_frames;
        if (f[k].inclusive)
            f[k].domain = fl->domain;
        inclusive |= f[k].inclusive;
    }
    if (!inclusive && fl->domain >= 0)
        f[n++] = (struct om_filter){ .inclusive = true,
                                     .domain = fl->domain };
    if (!(*owned = om_snapshot_filter(s, f, n)))
        fprintf(stderr, "objmem: %s: filtering: %s\n", path,
                strerror(errno));
    return *owned;
}

void objmem_snapshot_sums(const struct om_snapshot *s, double *bytes,
                          double *count)
{
    struct om_trace_info t;

    *bytes = *count = 0;
    for (size_t i = 0; i < om_snapshot_count(s); i++)
        if (om_snapshot_trace(s, i, &t) == 0) {
            *bytes += (double)t.size * t.weight;
            *count += t.weight;
        }
}

void objmem_filter_note(FILE *out, const struct objmem_filters *fl,
                        const struct om_snapshot *all,
                        const struct om_snapshot *kept, bool allocs)
{
    static const char *const names[] = { "raw", "mem", "obj" };
    double bytes, n_kept, n_all;

    if (fl->n == 0 && fl->domain < 0)
        return;
    fputs("# filters:", out);
    for (size_t k = 0; k < fl->n; k++) {
        const struct om_filter *f = &fl->f[k];

        fprintf(out, " --%s %s", f->inclusive ? "include" : "exclude",
                f->filename_pattern);
        if (f->lineno)
            fprintf(out, ":%u", f->lineno);
    }
    if (fl->domain >= 0 && fl->domain < 3)
        fprintf(out, " --domain %s", names[fl->domain]);
    else if (fl->domain >= 0)
        fprintf(out, " --domain %d", fl->domain);
    if (allocs) {
        objmem_snapshot_sums(kept, &bytes, &n_kept);
        objmem_snapshot_sums(all, &bytes, &n_all);
    } else {
        n_kept = (double)om_snapshot_count(kept);
        n_all = (double)om_snapshot_count(all);
    }
    fprintf(out, "%s: %.0f of %.0f %s kept\n",
            fl->all_frames ? " --all-frames" : "", n_kept, n_all,
            allocs ? "allocations" : "traces");
}
