/*
 * timeline.c - `objmem timeline FILE [--rows N] [--json] [--html OUT]`:
 * a capture's traced memory and resident set over the run
 * (om_snapshot_timeline), and the chart that pins' page shows too.
 *
 * The text report is a table of N rows (default 24) of equal time, each
 * the largest figures of the points in it (a row with none repeats the
 * point before: a point lasts until the next), with a bar: '#' for the
 * traced bytes, '.' for the resident bytes above them, the memory the
 * process holds that its live traced blocks do not account for (the
 * allocator's free pages not yet given back, fragmentation, untraced
 * memory, code).  The header names both peaks and the figures at the end.
 *
 * --json prints every point, for scripts:
 *
 *   {"report": "timeline", "file": F, "sample_mean": B,
 *    "peak_traced": {"time_ms": T, "bytes": B},
 *    "peak_rss": {"time_ms": T, "bytes": B},
 *    "points": [[time_ms, traced, rss], ...]}
 *
 * --html writes a page with the chart: an SVG of the two figures as steps
 * over time (objmem_timeline_svg, which pins.c's page uses too).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "objmem.h"

#define BAR 40                  /* characters of the widest bar */
#define CHART_W 900             /* px of the chart's plot */
#define CHART_H 220
#define CHART_LEFT 70           /* px of the value labels */

/* The point with the most traced (rss: resident) bytes, the first such. */
static size_t highest(const struct om_time_point *p, size_t n, bool rss)
{
    size_t best = 0;

    for (size_t i = 1; i < n; i++)
        if ((rss ? p[i].rss : p[i].traced) >
            (rss ? p[best].rss : p[best].traced))
            best = i;
    return best;
}

static void print_bar(size_t traced, size_t rss, size_t scale)
{
    int t = (int)((double)traced * BAR / (double)scale + 0.5);
    int r = (int)((double)rss * BAR / (double)scale + 0.5);

    fputs("  |", stdout);
    for (int i = 0; i < t; i++)
        putchar('#');
    for (int i = t; i < r; i++)
        putchar('.');
    putchar('\n');
}

/* A row: the largest figures of the points from *next on that start
 * before end (*next moves past them); none: the point before. */
static struct om_time_point row_of(const struct om_time_point *p, size_t n,
                                   size_t *next, uint64_t end)
{
    struct om_time_point r = p[*next ? *next - 1 : 0];
    bool any = false;

    for (; *next < n && p[*next].time_ms < end; (*next)++) {
        const struct om_time_point *q = &p[*next];

        r.traced = any && r.traced > q->traced ? r.traced : q->traced;
        r.rss = any && r.rss > q->rss ? r.rss : q->rss;
        any = true;
    }
    return r;
}

static void print_text(const char *path, const struct om_time_point *p,
                       size_t n, uint64_t end_ms, long rows, bool sampled)
{
    size_t ht = highest(p, n, false), hr = highest(p, n, true), next = 0;
    size_t scale = p[ht].traced > p[hr].rss ? p[ht].traced : p[hr].rss;
    uint64_t span = end_ms > p[0].time_ms ? end_ms - p[0].time_ms : 1;
    char a[32], b[32];

    printf("# objmem timeline: %s: %zu points over %.1f s\n", path, n,
           (double)end_ms / 1000);
    printf("# traced%s: peak %s at %.2f s; at the end %s\n",
           sampled ? " (estimated, sampled)" : "",
           objmem_human((double)p[ht].traced, a, sizeof(a)),
           (double)p[ht].time_ms / 1000,
           objmem_human((double)p[n - 1].traced, b, sizeof(b)));
    printf("# RSS: peak %s at %.2f s; at the end %s\n",
           objmem_human((double)p[hr].rss, a, sizeof(a)),
           (double)p[hr].time_ms / 1000,
           objmem_human((double)p[n - 1].rss, b, sizeof(b)));
    printf("# '#': traced bytes, '.': resident above them\n");
    printf("%9s  %11s  %11s\n", "time", "traced", "RSS");
    if ((size_t)rows > n)
        rows = (long)n;
    for (long k = 0; k < rows; k++) {
        uint64_t from = p[0].time_ms + span * (uint64_t)k / (uint64_t)rows;
        uint64_t to = p[0].time_ms + span * (uint64_t)(k + 1) /
                                     (uint64_t)rows;
        struct om_time_point r = row_of(p, n, &next,
                                        k + 1 == rows ? UINT64_MAX : to);

        printf("%7.2f s  %11s  %11s", (double)from / 1000,
               objmem_human((double)r.traced, a, sizeof(a)),
               objmem_human((double)r.rss, b, sizeof(b)));
        print_bar(r.traced, r.rss, scale ? scale : 1);
    }
}

static void print_json(const char *path, const struct om_time_point *p,
                       size_t n, size_t sample_mean)
{
    size_t ht = highest(p, n, false), hr = highest(p, n, true);

    fputs("{\"report\": \"timeline\", \"file\": ", stdout);
    objmem_json_string(stdout, path);
    printf(", \"sample_mean\": %zu,\n \"peak_traced\": {\"time_ms\": %llu, "
           "\"bytes\": %zu},\n \"peak_rss\": {\"time_ms\": %llu, \"bytes\": "
           "%zu},\n \"points\": [", sample_mean,
           (unsigned long long)p[ht].time_ms, p[ht].traced,
           (unsigned long long)p[hr].time_ms, p[hr].rss);
    for (size_t i = 0; i < n; i++)
        printf("%s[%llu, %zu, %zu]", i ? (i % 4 ? ", " : ",\n  ") : "\n  ",
               (unsigned long long)p[i].time_ms, p[i].traced, p[i].rss);
    fputs("]}\n", stdout);
}

/* One figure as steps: each point's value until the next point's time. */
static void put_steps(FILE *f, const char *id, const char *colour,
                      const struct om_time_point *p, size_t n, bool rss,
                      uint64_t end_ms, double top)
{
    double t0 = (double)p[0].time_ms;
    double span = end_ms > p[0].time_ms ? (double)(end_ms - p[0].time_ms)
                                        : 1;

    fprintf(f, "<polyline id=\"%s\" fill=\"none\" stroke=\"%s\" "
            "stroke-width=\"1.5\" points=\"", id, colour);
    for (size_t i = 0; i < n; i++) {
        double v = (double)(rss ? p[i].rss : p[i].traced);
        double y = CHART_H - v / top * CHART_H;
        double x0 = CHART_LEFT + ((double)p[i].time_ms - t0) / span *
                                 CHART_W;
        double x1 = CHART_LEFT + (i + 1 < n ? (double)p[i + 1].time_ms -
                                                  t0 : span) / span * CHART_W;

        fprintf(f, "%.1f,%.1f %.1f,%.1f ", x0, y + 10, x1, y + 10);
    }
    fputs("\"/>\n", f);
}

void objmem_timeline_svg(FILE *f, const struct om_snapshot *s)
{
    const struct om_time_point *p;
    size_t n = om_snapshot_timeline(s, &p), ht, hr;
    struct om_snapshot_info info;
    char a[32], b[32], c[32], d[32];
    double top;

    if (!n)
        return;
    om_snapshot_get_info(s, &info);
    ht = highest(p, n, false);
    hr = highest(p, n, true);
    top = (double)(p[ht].traced > p[hr].rss ? p[ht].traced : p[hr].rss);
    top = top > 0 ? top : 1;
    fputs("<h2>Memory over time</h2>\n", f);
    fprintf(f, "<p id=\"timeline-note\">Over %.1f s: traced memory (orange) "
            "peaked at %s, the resident set (blue) at %s; at the end %s "
            "resident for %s traced.</p>\n", (double)info.time_ms / 1000,
            objmem_human((double)p[ht].traced, a, sizeof(a)),
            objmem_human((double)p[hr].rss, b, sizeof(b)),
            objmem_human((double)p[n - 1].rss, c, sizeof(c)),
            objmem_human((double)p[n - 1].traced, d, sizeof(d)));
    fprintf(f, "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%d\" height=\"%d\">\n", CHART_LEFT + CHART_W + 10,
            CHART_H + 40);
    fprintf(f, "<line x1=\"%d\" y1=\"10\" x2=\"%d\" y2=\"%d\" "
            "stroke=\"#999\"/><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
            "stroke=\"#999\"/>\n", CHART_LEFT, CHART_LEFT, CHART_H + 10,
            CHART_LEFT, CHART_H + 10, CHART_LEFT + CHART_W, CHART_H + 10);
    fprintf(f, "<text x=\"0\" y=\"16\" class=\"axis\">%s</text>"
            "<text x=\"0\" y=\"%d\" class=\"axis\">0</text>\n",
            objmem_human(top, a, sizeof(a)), CHART_H + 10);
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"axis\">%.2f s</text>"
            "<text x=\"%d\" y=\"%d\" class=\"axis\">%.2f s</text>\n",
            CHART_LEFT, CHART_H + 28, (double)p[0].time_ms / 1000,
            CHART_LEFT + CHART_W - 50, CHART_H + 28,
            (double)info.time_ms / 1000);
    put_steps(f, "rss", "#3060c0", p, n, true, info.time_ms, top);
    put_steps(f, "traced", "#e07020", p, n, false, info.time_ms, top);
    fputs("</svg>\n", f);
}

static int write_page(const char *out, const char *path,
                      const struct om_snapshot *s)
{
    FILE *f = fopen(out, "w");
    int rc = 0;

    if (f) {
        fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
              "<title>objmem timeline: ", f);
        objmem_html_escaped(f, path);
        fputs("</title>\n<style>body{font:13px sans-serif;margin:16px}"
              ".axis{font:10px monospace}</style></head><body>\n<h1>objmem "
              "timeline</h1>\n<p id=\"capture\">", f);
        objmem_html_escaped(f, path);
        fputs("</p>\n", f);
        objmem_timeline_svg(f, s);
        fputs("</body></html>\n", f);
        rc = fclose(f);
    }
    if (!f || rc != 0) {
        fprintf(stderr, "objmem: %s: %s\n", out, strerror(errno));
        return 1;
    }
    return 0;
}

static int timeline_usage(void)
{
    fprintf(stderr, "usage: objmem timeline FILE [--rows N] [--json] "
            "[--html OUT]\n");
    return 2;
}

int objmem_timeline(int argc, char **argv)
{
    const char *path = NULL, *html = NULL;
    const struct om_time_point *p;
    struct om_snapshot_info info;
    struct om_snapshot *s;
    bool json = false;
    long rows = 24;
    size_t n;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc &&
            (rows = strtol(argv[i + 1], NULL, 10)) > 0)
            i++;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--html") == 0 && i + 1 < argc)
            html = argv[++i];
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return timeline_usage();
    }
    if (!path)
        return timeline_usage();
    if (!(s = objmem_capture_load(path)))
        return 1;
    n = om_snapshot_timeline(s, &p);
    om_snapshot_get_info(s, &info);
    if (!n) {
        fprintf(stderr, "objmem: %s: no timeline in this capture (written "
                "before objmem had one)\n", path);
        rc = 1;
    } else if (json) {
        print_json(path, p, n, info.sample_mean);
    } else {
        print_text(path, p, n, info.time_ms, rows, info.sample_mean != 0);
    }
    if (rc == 0 && html)
        rc = write_page(html, path, s);
    om_snapshot_free(s);
    return rc;
}
