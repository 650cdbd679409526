/*
 * objmem.c - the objmem command: its verbs, its help, `objmem config`.
 *
 *   objmem run [OPTIONS] -- CMD ARGS...   CMD on the malloc shim, then a
 *                                         summary of its memory (run.c)
 *   objmem stats [--json] FILE            a saved report, re-read (run.c)
 *   objmem python ARGS...                 python3 ARGS... on objmem: execs
 *                                         objmem-python (tools/python.c)
 *   objmem top|leaks|peak|allocs|diff|pins|timeline CAPTURE...
 *                                         read traced runs' captures
 *                                         (reports.c; pins.c;
 *                                         timeline.c; their filters:
 *                                         filters.c)
 *   objmem flamegraph|pprof CAPTURE ...   write a capture for other
 *                                         tools (export.c)
 *   objmem config [--env]                 the options in force, and where
 *                                         each came from
 *   objmem tour                           the guided tour (tour.c)
 *   objmem version
 *   objmem VERB --help, objmem help VERB  one verb's block of HELP (with
 *                                         the filters' for the capture
 *                                         verbs)
 *
 * It uses only the public header, as any program would.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objmem.h"
#include "cli.h"

static const char *HELP =
    "usage: objmem VERB [ARGS]     (objmem VERB --help: one verb's usage)\n"
    "\n"
    "  run [--stats] [--debug] [--output FILE] [--no-children]\n"
    "      [--conf KEY:VALUE,...] [--python] [--] CMD [ARGS...]\n"
    "        run CMD with objmem as its malloc (LD_PRELOAD=libobjmem-"
    "preload.so),\n"
    "        then print a summary of its memory on stderr: peak and final "
    "RSS,\n"
    "        bytes in use, arenas and pools, what went back to the OS.\n"
    "        --stats      add the per-class table\n"
    "        --debug      CPython's debug hooks on every block "
    "(OBJMEM_ALLOCATOR=debug)\n"
    "        --output F   keep the report in F (%p: the pid), for objmem "
    "stats\n"
    "        --no-children  programs CMD starts run on the C library's "
    "malloc\n"
    "        --conf K:V   more options (objmem config lists them)\n"
    "        --python     run python3 ARGS... with PYTHONMALLOC=malloc\n"
    "        --trace[=N]  trace every block, tracebacks of N frames "
    "(default 16),\n"
    "                     and write a capture at exit (and on SIGUSR2):\n"
    "                     objmem.PROG.PID.trace, for top, leaks and diff\n"
    "        --sample=B   trace a sample instead: one byte in B on average "
    "(512 KiB:\n"
    "                     cheap enough for production); estimates with "
    "their error\n"
    "        --follow-fork  traced, processes forked from it (without exec)\n"
    "                     write captures of their own too: a server's workers\n"
    "        The exit status is CMD's (128 + N when signal N killed it);\n"
    "        signals sent to run (TERM, HUP, USR2, ...) go on to CMD.\n"
    "  python [--trace[=N]] [--sample=B] [--follow-fork] ARGS...\n"
    "        run python3 ARGS... with objmem as the allocator of its three "
    "domains\n"
    "        (the launcher objmem-python; its subprocesses too); traced,\n"
    "        tracebacks name Python files and lines, as tracemalloc's\n"
    "  top FILE [--by lineno|filename|traceback] [--cumulative] "
    "[--limit N]\n"
    "      [--json]\n"
    "        the biggest allocation sites of a capture (--json: as one "
    "JSON object,\n"
    "        for scripts, in top, leaks, peak, allocs, pins and diff; "
    "--limit 0: all)\n"
    "  leaks FILE [--limit N]\n"
    "        what was still allocated when the traced program exited, by "
    "traceback\n"
    "  peak FILE [--by ...] [--cumulative] [--limit N]\n"
    "        what was live at the high-water mark of the traced memory\n"
    "  allocs FILE [--by ...] [--cumulative] [--sort size|count] "
    "[--limit N]\n"
    "        every allocation of the run, freed or not (reallocations "
    "too): the\n"
    "        sites that keep the allocator busy; --sort count: the most "
    "calls first\n"
    "  pins FILE [--by ...] [--limit N] [--html OUT] [--json]\n"
    "        which sites keep memory from going back to the OS: what "
    "freeing each\n"
    "        site's blocks would give back, the nearly empty arenas and "
    "the ages of\n"
    "        their blocks; --html draws the heap map, a row per arena, a "
    "cell per page\n"
    "  timeline FILE [--rows N] [--json] [--html OUT]\n"
    "        the traced memory and the resident set over the run, 64 "
    "points a second\n"
    "        at first (a table of N rows with bars; --json: every point; "
    "--html: a\n"
    "        chart): when the peak came, and whether RSS followed the "
    "heap down\n"
    "  diff OLD NEW [--by ...] [--cumulative] [--limit N] [--allocs]\n"
    "        what grew (or shrank) between two captures; --allocs: what "
    "was\n"
    "        allocated between them (two captures of one run, SIGUSR2's)\n"
    "  flamegraph FILE [--html OUT] [--allocs]\n"
    "        a capture as folded stacks on stdout (flamegraph.pl, inferno,\n"
    "        speedscope), bytes per stack; --html OUT: a flame graph page "
    "to\n"
    "        open in a browser (self-contained: zoom, search); --allocs: "
    "the\n"
    "        allocations of the run instead of what was live\n"
    "  pprof FILE -o OUT\n"
    "        a capture as pprof's profile.proto (go tool pprof -http=: "
    "OUT):\n"
    "        alloc_objects, alloc_space, inuse_objects and inuse_space by "
    "traceback\n"
    "  filters, for top, leaks, peak, allocs, pins, diff, flamegraph, "
    "pprof:\n"
    "        --include PAT[:LINE]  keep traces whose most recent frame's "
    "file\n"
    "                     (or C frame's module) matches PAT (* ? [...])\n"
    "        --exclude PAT[:LINE]  leave them out\n"
    "        --all-frames  match any frame of a traceback\n"
    "        --domain raw|mem|obj|N  one allocator domain's traces (and "
    "with\n"
    "                     --include, those that match in it)\n"
    "  stats [--json] [--classes] FILE\n"
    "        re-read a report that run --output or OBJMEM_SHOW_STATS=1 "
    "left\n"
    "  config [--env]\n"
    "        the options in force and where each came from; --env prints "
    "them\n"
    "        as shell assignments\n"
    "  tour  the guided tour of the articles' experiments (make demo)\n"
    "  version\n"
    "\n"
    "The environment: OBJMEM_<KEY>=VALUE for one option, "
    "OBJMEM_CONF=KEY:VALUE,...\n"
    "for several (OBJMEM_<KEY> wins).  See objmem(1).\n";

static int config(int argc, char **argv)
{
    bool env = argc > 1 && strcmp(argv[1], "--env") == 0;
    struct om_option o;
    const char *w;

    if (argc > 2 || (argc == 2 && !env)) {
        fprintf(stderr, "usage: objmem config [--env]\n");
        return 2;
    }
    if (!env)
        printf("%-12s %-18s %-20s %s\n", "key", "value", "from", "meaning");
    for (unsigned i = 0; om_option_get(i, &o); i++) {
        if (env)
            printf("%s='%s'\n", o.var, o.value);
        else
            printf("%-12s %-18s %-20s %s\n", o.key, o.value, o.source,
                   o.help);
    }
    for (unsigned i = 0; (w = om_option_warning(i)); i++)
        fprintf(stderr, "objmem: warning: %s\n", w);
    return 0;
}

/* objmem python: exec objmem-python, from beside this program, with
 * the tracing options (which come first) in its environment. */
static int python(int argc, char **argv)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 16);
    struct objmem_trace_opts t = { NULL, NULL, false };
    char *slash;

    while (argc > 1 && objmem_trace_option(argv[1], &t)) {
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    objmem_trace_environment(&t);
    if (n <= 0)
        return 2;
    path[n] = '\0';
    slash = strrchr(path, '/');
    strcpy(slash + 1, "objmem-python");
    argv[0] = path;
    execv(path, argv);
    fprintf(stderr, "objmem: cannot run %s: %s\n", path, strerror(errno));
    return 127;
}

/* Print HELP's block that starts "  name" (up to the next block), into
 * out after prefix: false when there is none. */
static bool help_block(FILE *out, const char *prefix, const char *name)
{
    size_t len = strlen(name);
    const char *p = HELP, *end;

    while ((p = strstr(p, "\n  ")) &&
           (strncmp(p + 3, name, len) != 0 || (p[3 + len] != ' ' &&
                                                p[3 + len] != ',' &&
                                                p[3 + len] != '\n')))
        p++;
    if (!p || !len)
        return false;
    for (end = p + 1; (end = strchr(end, '\n')) && end[1]; end++)
        if (end[1] == '\n' || (end[1] == ' ' && end[2] == ' ' &&
                               end[3] >= 'a' && end[3] <= 'z'))
            break;
    fprintf(out, "%s%.*s\n", prefix,
            (int)((end ? end : p + strlen(p)) - p - 3), p + 3);
    return true;
}

/* objmem VERB --help (or -h), objmem help VERB: the verb's usage, and the
 * filters for the verbs that read a capture; 2 for no such verb. */
static int verb_help(const char *verb)
{
    static const char *const filtered[] = { "top", "leaks", "peak", "allocs",
                                            "pins", "diff", "flamegraph",
                                            "pprof" };

    if (!help_block(stdout, "usage: objmem ", verb)) {
        fprintf(stderr, "objmem: unknown verb '%s'\n", verb);
        return 2;
    }
    for (size_t i = 0; i < sizeof(filtered) / sizeof(*filtered); i++)
        if (strcmp(verb, filtered[i]) == 0)
            help_block(stdout, "", "filters");
    return 0;
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int main(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";

    /* objmem python --help is python3's */
    if (argc > 2 && is_help(argv[2]) && strcmp(verb, "python") != 0)
        return verb_help(verb);
    if (argc > 2 && strcmp(verb, "help") == 0)
        return verb_help(argv[2]);
    if (strcmp(verb, "run") == 0)
        return objmem_run(argc - 1, argv + 1);
    if (strcmp(verb, "stats") == 0)
        return objmem_stats(argc - 1, argv + 1);
    if (strcmp(verb, "python") == 0)
        return python(argc - 1, argv + 1);
    if (strcmp(verb, "config") == 0)
        return config(argc - 1, argv + 1);
    if (strcmp(verb, "top") == 0)
        return objmem_top(argc - 1, argv + 1);
    if (strcmp(verb, "leaks") == 0)
        return objmem_leaks(argc - 1, argv + 1);
    if (strcmp(verb, "peak") == 0)
        return objmem_peak(argc - 1, argv + 1);
    if (strcmp(verb, "allocs") == 0)
        return objmem_allocs(argc - 1, argv + 1);
    if (strcmp(verb, "pins") == 0)
        return objmem_pins(argc - 1, argv + 1);
    if (strcmp(verb, "diff") == 0)
        return objmem_diff(argc - 1, argv + 1);
    if (strcmp(verb, "timeline") == 0)
        return objmem_timeline(argc - 1, argv + 1);
    if (strcmp(verb, "flamegraph") == 0)
        return objmem_flamegraph(argc - 1, argv + 1);
    if (strcmp(verb, "pprof") == 0)
        return objmem_pprof(argc - 1, argv + 1);
    if (strcmp(verb, "tour") == 0)
        return objmem_tour();
    if (strcmp(verb, "version") == 0 || strcmp(verb, "--version") == 0) {
        printf("objmem %s\n", om_version());
        return 0;
    }
    if (strcmp(verb, "help") == 0 || is_help(verb)) {
        fputs(HELP, stdout);
        return 0;
    }
    if (*verb)
        fprintf(stderr, "objmem: unknown verb '%s'\n", verb);
    fputs(HELP, stderr);
    return 2;
}
