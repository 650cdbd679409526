/*
 * cli.h - the verbs of the objmem command (tools/objmem.c dispatches).
 */
#ifndef OM_CLI_H
#define OM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "objmem.h"

/* tour.c: the guided tour (make demo). */
int objmem_tour(void);

/* run.c: run a program on the shim and summarise its report; re-read a
 * saved report.  argv[0] is the verb.  Return the exit status. */
int objmem_run(int argc, char **argv);
int objmem_stats(int argc, char **argv);

/* run.c: --trace[=N] / --sample=BYTES / --follow-fork (false: arg is
 * none of them), and their environment. */
struct objmem_trace_opts {
    const char *trace;          /* frames to trace (OBJMEM_TRACE), or NULL */
    const char *sample;         /* OBJMEM_TRACE_SAMPLE, or NULL */
    bool forks;                 /* OBJMEM_TRACE_FORKS */
};
bool objmem_trace_option(const char *arg, struct objmem_trace_opts *t);
void objmem_trace_environment(const struct objmem_trace_opts *t);

/* reports.c: the verbs that read capture files, and the loader they
 * share (NULL after a message on stderr). */
struct om_snapshot;
struct om_traceback;
struct om_snapshot *objmem_capture_load(const char *path);
int objmem_top(int argc, char **argv);
int objmem_peak(int argc, char **argv);
int objmem_allocs(int argc, char **argv);
/* reports.c: bytes for people ("1.2 MiB"); a traceback's most recent
 * frame as text; its first n frames, a line each (s: the snapshot it
 * came from, whose modules give C frames their file addresses; NULL:
 * the addresses as they were). */
const char *objmem_human(double bytes, char *buf, size_t size);
/* reports.c: "lineno", "filename" or "traceback" (false: none), and a
 * key's name. */
bool objmem_parse_key(const char *v, enum om_key *key);
const char *objmem_key_name(enum om_key key);
void objmem_frame_text(const struct om_snapshot *s,
                       const struct om_traceback *tb, char *buf, size_t size);
/* reports.c: a function's name as its source spells it (a C++ name
 * demangled into buf, size bytes), else name itself.  A name longer
 * than OBJMEM_DEMANGLE_MAX stays as it is: demangling costs its length,
 * once a frame (a crafted capture's name may be megabytes long). */
#define OBJMEM_DEMANGLE_MAX 16384
const char *objmem_function_name(const char *name, char *buf, size_t size);
/* s HTML-escaped into f (nothing for NULL). */
void objmem_html_escaped(FILE *f, const char *s);
/* timeline.c: `objmem timeline`, and its chart into a page (a heading,
 * a note and an SVG element); nothing when s has no timeline. */
int objmem_timeline(int argc, char **argv);
void objmem_timeline_svg(FILE *f, const struct om_snapshot *s);
/* v as a JSON number of that many decimals; null when it is not finite
 * (a sampled capture's error can overflow: JSON has no inf or nan). */
void objmem_json_double(FILE *out, double v, int decimals);
/* s as a JSON string, quoted and escaped ("null" for NULL). */
void objmem_json_string(FILE *out, const char *s);
/* "traceback": tb as JSON (the key and its object, reports.c's header
 * comment): every frame (OM_KEY_TRACEBACK), the most recent one
 * (OM_KEY_LINENO), or only its file (OM_KEY_FILENAME: line 0). */
void objmem_json_traceback(FILE *out, const struct om_snapshot *s,
                           const struct om_traceback *tb, enum om_key by);
void objmem_print_frames(FILE *out, const struct om_snapshot *s,
                         const struct om_traceback *tb, unsigned n);

/* filters.c: --include, --exclude, --all-frames and --domain, the trace
 * filters of the verbs that read a capture. */
#define OBJMEM_FILTERS_MAX 64
struct objmem_filters {
    struct om_filter f[OBJMEM_FILTERS_MAX];     /* --include, --exclude */
    size_t n;
    int domain;                 /* --domain, or -1 */
    bool all_frames;
};
#define OBJMEM_NO_FILTERS { .n = 0, .domain = -1 }
/* 1 when argv[*i] is a filter option (its value taken: *i moves on), 0
 * when it is not one, -1 after a message when it is bad. */
int objmem_filter_option(int argc, char **argv, int *i,
                         struct objmem_filters *fl);
/* s itself without filters, else the traces they keep, a new snapshot
 * left in *owned for the caller to free; NULL after a message. */
const struct om_snapshot *objmem_filter(const struct om_snapshot *s,
                                        const char *path,
                                        const struct objmem_filters *fl,
                                        struct om_snapshot **owned);
/* The bytes and the blocks s stands for (estimates, when sampled). */
void objmem_snapshot_sums(const struct om_snapshot *s, double *bytes,
                          double *count);
/* With filters, a report's header line saying them and what they kept:
 * traces, or allocations (allocs: s is om_snapshot_allocations'). */
void objmem_filter_note(FILE *out, const struct objmem_filters *fl,
                        const struct om_snapshot *all,
                        const struct om_snapshot *kept, bool allocs);

/* pins.c: which sites keep memory from going back to the OS. */
int objmem_pins(int argc, char **argv);
int objmem_leaks(int argc, char **argv);
int objmem_diff(int argc, char **argv);

/* export.c: captures in other tools' formats (folded stacks, an HTML
 * flame graph, pprof's profile.proto). */
int objmem_flamegraph(int argc, char **argv);
int objmem_pprof(int argc, char **argv);

#endif /* OM_CLI_H */
