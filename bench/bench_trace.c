/*
 * bench_trace.c - what tracing costs, in time and in memory.  A program,
 * never a test: it prints medians, min..max and ratios from one run, and
 * ends with the table.
 *
 * Part 1, Python: the five workloads of workloads.h, run whole, on
 *
 *   python3                       the stock interpreter (OM_PYTHON)
 *   python3 -X tracemalloc=1      CPython's tracemalloc, 1 frame
 *   python3 -X tracemalloc=25     the same, 25 frames
 *   objmem-python                 untraced (OM_LAUNCHER)
 *   OBJMEM_TRACE=1, =25           objmem's tracing, 1 and 25 frames
 *   OBJMEM_TRACE_SAMPLE=524288    objmem's sampling, 512 KiB on average
 *
 * Time is the child's CPU time (user + system, from wait4, as bench_shim
 * takes it: the machine is shared and noisy).  Each repetition runs every
 * configuration once, in an order that rotates by one place each time.
 * Ratios: tracemalloc over python3, objmem traced over objmem-python
 * untraced, and their geometric mean over the workloads.
 *
 * Tracing's own memory against the bytes it traces is read at each
 * workload's probe point (workloads.h): the tracemalloc runs call
 * tracemalloc.get_tracemalloc_memory() and get_traced_memory() there
 * (two O(1) calls, so the timed runs do it); objmem's runs send
 * themselves SIGUSR2 there, so the next allocation writes a capture, and
 * this program reads its META (om_snapshot_load, om_snapshot_get_info).
 * A capture is a snapshot of every trace, far from free, so those are
 * separate runs, one per workload and frame limit, untimed, which end
 * (os._exit) as soon as the capture is written.
 *
 * Part 2, the allocator in-process: om_malloc / om_free in a fresh child
 * (this program, exec'd with --child) per configuration: untraced,
 * om_trace_start(1), om_trace_start(25), om_trace_start_sampling(512 KiB).
 * Frames come from the C stack, so the timed loop runs DEPTH calls deep:
 * a 25-frame traceback is then full.  Time is the child's thread CPU
 * time, in ns per malloc + free; the child also reports
 * om_trace_get_memory() against the traced current.
 *
 * Targets (the tracing issue): full tracing at most 1.3x with 1 frame and
 * 2x with 25, sampling at 512 KiB at most 1.05x, tracing's own memory at
 * most 0.3x of the traced bytes.  tracemalloc, there: 4.1x, 10.4x and
 * about 0.94x.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "objmem.h"
#include "benchutil.h"
#include "workloads.h"

#define MAX_REPS 15
#define PY_REPS 3               /* Python: repetitions by default */
#define C_REPS 7                /* in-process: children per cell */
#ifndef DEPTH
#define DEPTH 24                /* calls between main and the timed loop */
#endif
#define CHURN_LIVE 100000       /* churn: blocks live */
#define LIFO_LIVE 512           /* lifo: blocks live beside the pairs */
#define SIZE_TABLE 4096         /* random sizes: lifo's, churn's fill */
#define OPS_FAST 4000000L       /* pairs when untraced or sampling */
#define OPS_TRACED 200000L      /* pairs when every block is traced */
#define SAMPLE_MEAN 524288
#define CHILD_TIMEOUT_S 300
#define MB (1024.0 * 1024.0)

#define NOIPA __attribute__((noinline, noclone))

/* ---- Part 2, the child: om_malloc / om_free in-process ---- */

enum cconf { C_OFF, C_T1, C_T25, C_SAMPLE, NCCONF };
enum cpat { P_CHURN, P_LIFO, NCPAT };

static char *const cconf_name[NCCONF] = { "off", "trace1", "trace25",
                                          "sample" };
static const char *const cconf_label[NCCONF] = {
    "untraced", "trace, 1 frame", "trace, 25 frames", "sample 512 KiB" };
static char *const cpat_name[NCPAT] = { "churn", "lifo" };

/* What the child does at the bottom of its DEPTH calls. */
struct job {
    enum cpat pat;
    long ops;                   /* timed malloc + free pairs */
    uint32_t *sizes;            /* SIZE_TABLE sizes, 16..256 */
    void **ring;                /* churn: CHURN_LIVE blocks */
};

static volatile int depth_sink;

/* A 64-bit LCG; the high half is the random part. */
static uint32_t lcg_next(uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*x >> 32);
}

static void *must_malloc(size_t size)
{
    void *p = om_malloc(size);

    if (!p)
        die("om_malloc(%zu) returned NULL", size);
    return p;
}

/* churn: free the block of a random slot, put a block of a random size
 * (16..256) there.  One random number gives both. */
static NOIPA double time_churn(struct job *j)
{
    uint64_t x = 12345;
    double t0 = thread_ns();

    for (long k = 0; k < j->ops; k++) {
        uint32_t r = lcg_next(&x);
        size_t i = (size_t)(((uint64_t)r * CHURN_LIVE) >> 32);

        om_free(j->ring[i]);
        j->ring[i] = must_malloc(16 + (r & 0xff) % 241);
        *(char *)j->ring[i] = (char)k;
    }
    return thread_ns() - t0;
}

/* lifo: malloc then free at once, sizes cycling through the table. */
static NOIPA double time_lifo(struct job *j)
{
    double t0 = thread_ns();

    for (long k = 0; k < j->ops; k++) {
        char *p = must_malloc(j->sizes[k & (SIZE_TABLE - 1)]);

        p[0] = (char)k;
        om_free(p);
    }
    return thread_ns() - t0;
}

/* The traced figures, while the pattern's blocks are live. */
static void report_memory(void)
{
    size_t cur, peak;

    om_trace_get_traced_memory(&cur, &peak);
    emit_val("own", (double)om_trace_get_memory());
    emit_val("traced", (double)cur);
}

/* Fill, time, report, drop: the pattern's whole life. */
static NOIPA void run_job(struct job *j)
{
    size_t n = j->pat == P_CHURN ? CHURN_LIVE : LIFO_LIVE;
    void **live = j->pat == P_CHURN ? j->ring : map_array(n, sizeof(*live));
    double ns;

    for (size_t i = 0; i < n; i++)
        live[i] = must_malloc(j->pat == P_CHURN ? j->sizes[i % SIZE_TABLE]
                                                : i + 1);
    ns = j->pat == P_CHURN ? time_churn(j) : time_lifo(j);
    emit_val("ns", ns / (double)j->ops);
    report_memory();
    for (size_t i = 0; i < n; i++)
        om_free(live[i]);
}

/* d more calls, then the job: tracebacks have DEPTH frames of these. */
static NOIPA void at_depth(int d, struct job *j)
{
    if (d == 0) {
        run_job(j);
        return;
    }
    at_depth(d - 1, j);
    depth_sink = d;             /* no tail call: the frame stays */
}

static void start_tracing(enum cconf c)
{
    int rc = 0;

    if (c == C_T1)
        rc = om_trace_start(1);
    else if (c == C_T25)
        rc = om_trace_start(25);
    else if (c == C_SAMPLE)
        rc = om_trace_start_sampling(SAMPLE_MEAN);
    if (rc != 0)
        die("cannot start tracing: %s", strerror(-rc));
}

static int find_name(char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* bench_trace --child PATTERN CONF: "val" lines, then "done". */
static int child_main(const char *pat, const char *conf)
{
    int p = find_name(cpat_name, NCPAT, pat);
    int c = find_name(cconf_name, NCCONF, conf);
    uint64_t x = 777;
    struct job j;

    if (p < 0 || c < 0)
        die("child: unknown pattern or configuration");
    alarm(CHILD_TIMEOUT_S);
    j.pat = (enum cpat)p;
    j.ops = c == C_T1 || c == C_T25 ? OPS_TRACED : OPS_FAST;
    j.sizes = map_array(SIZE_TABLE, sizeof(*j.sizes));
    j.ring = map_array(CHURN_LIVE, sizeof(*j.ring));
    for (int i = 0; i < SIZE_TABLE; i++)
        j.sizes[i] = 16 + lcg_next(&x) % 241;
    om_free(om_malloc(64));     /* one-time set-up, untimed */
    start_tracing((enum cconf)c);
    at_depth(DEPTH, &j);
    emit("done", "%s %s", pat, conf);
    fflush(stdout);
    return 0;
}

/* ---- Figures ---- */

/* The figures of one cell: up to MAX_REPS runs. */
struct cell {
    double v[MAX_REPS];
    int n;
    int failed;
};

static void cell_add(struct cell *c, double v)
{
    if (c->n < MAX_REPS)
        c->v[c->n++] = v;
}

static double cell_median(const struct cell *c, double *lo, double *hi)
{
    if (c->n == 0) {
        *lo = *hi = NAN;
        return NAN;
    }
    return median(c->v, c->n, lo, hi);
}

/* "lo..hi" with prec decimals, into buf. */
static const char *range_text(char *buf, size_t size, double lo, double hi,
                              int prec)
{
    snprintf(buf, size, "%.*f..%.*f", prec, lo, prec, hi);
    return buf;
}

static double geomean(const double *v, int n)
{
    double sum = 0;

    for (int i = 0; i < n; i++)
        sum += log(v[i]);
    return n ? exp(sum / n) : NAN;
}

#define NPY_MAX 8               /* Python configurations, at most */

/* What the closing table needs. */
static struct {
    double py_time[NPY_MAX];    /* geometric mean ratio per Python config */
    double py_mem[NPY_MAX];     /* largest own/traced per Python config */
    double c_time[NCPAT][NCCONF];
    double c_mem[NCCONF];       /* churn's own/traced */
    bool have_py, have_c;
    int failures;
} sum;

/* ---- Part 2, the parent: one child per (pattern, configuration) ---- */

static char self_path[PATH_MAX];

struct creport {
    double ns, own, traced;
    bool done;
};

static void parse_report(char *out, struct creport *r)
{
    char *save = NULL;

    for (char *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char key[16];
        double v;

        if (strncmp(line, "done", 4) == 0)
            r->done = true;
        if (sscanf(line, "val %15s %lf", key, &v) != 2)
            continue;
        if (strcmp(key, "ns") == 0)
            r->ns = v;
        else if (strcmp(key, "own") == 0)
            r->own = v;
        else if (strcmp(key, "traced") == 0)
            r->traced = v;
    }
}

/* One child; false (and a line on stderr) when it failed. */
static bool run_cchild(int p, int c, struct creport *r)
{
    char *argv[] = { self_path, "--child", cpat_name[p], cconf_name[c],
                     NULL };
    char out[4096], why[128];
    int fd, status;
    pid_t pid = exec_child(self_path, argv, &fd);

    if (pid < 0)
        die("cannot start a child: %s", strerror(errno));
    memset(r, 0, sizeof(*r));
    read_all(fd, out, sizeof(out));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        continue;
    parse_report(out, r);
    if (!child_failure(status, r->done, false, CHILD_TIMEOUT_S, why,
                       sizeof(why)))
        return true;
    fprintf(stderr, "bench_trace: CHILD FAILED: %s %s: %s\n", cpat_name[p],
            cconf_name[c], why);
    sum.failures++;
    return false;
}

/* The figures of one (pattern, configuration). */
struct ccell {
    struct cell ns;             /* ns per malloc + free */
    struct cell own;            /* om_trace_get_memory() */
    struct cell traced;         /* the traced current */
};

/* One child of pattern p, configuration c, into cc. */
static void run_ccell(int p, int c, struct ccell *cc)
{
    struct creport r;

    if (!run_cchild(p, c, &r)) {
        cc->ns.failed++;
        return;
    }
    cell_add(&cc->ns, r.ns);
    cell_add(&cc->own, r.own);
    cell_add(&cc->traced, r.traced);
}

/* Pattern p's row for configuration c; row[C_OFF] is the base. */
static void print_crow(int p, int c, const struct ccell *row)
{
    double lo, hi, x, y, t = cell_median(&row[c].ns, &lo, &hi);
    double base = cell_median(&row[C_OFF].ns, &x, &y);
    char range[48];

    printf("  %-7s %-17s %8.1f  %-*s", c ? "" : cpat_name[p],
           cconf_label[c], t, c != C_OFF ? 17 : 0,
           range_text(range, sizeof(range), lo, hi, 1));
    if (c != C_OFF) {
        printf(" %8.2fx", t / base);
        sum.c_time[p][c] = t / base;
    }
    if (c != C_OFF && p == P_CHURN) {
        double o = cell_median(&row[c].own, &x, &y);
        double tr = cell_median(&row[c].traced, &x, &y);
        printf("  %5.2fx (%.1f / %.1f MB)", o / tr, o / MB, tr / MB);
        sum.c_mem[c] = o / tr;
    }
    if (row[c].ns.failed)
        printf("  (%d failed)", row[c].ns.failed);
    putchar('\n');
}

static void part_alloc(void)
{
    static struct ccell cells[NCPAT][NCCONF];

    printf("\n== Part 2: om_malloc + om_free in-process, %d calls deep; "
           "thread CPU time, %d children each ==\n", DEPTH, C_REPS);
    printf("  churn: %d blocks of 16..256 bytes live, a random one replaced "
           "each op; lifo: malloc, free.\n  %ld ops untraced and sampling, "
           "%ld traced.\n", CHURN_LIVE, OPS_FAST, OPS_TRACED);
    /* Each repetition runs every cell; the order of the configurations
     * rotates by one place. */
    for (int rep = 0; rep < C_REPS; rep++)
        for (int p = 0; p < NCPAT; p++)
            for (int k = 0; k < NCCONF; k++)
                run_ccell(p, (k + rep) % NCCONF,
                          &cells[p][(k + rep) % NCCONF]);
    printf("  %-7s %-17s %8s  %-17s %9s  %s\n", "pattern", "configuration",
           "ns/op", "min..max", "ratio", "own/traced (churn)");
    for (int p = 0; p < NCPAT; p++)
        for (int c = 0; c < NCCONF; c++)
            print_crow(p, c, cells[p]);
    sum.have_c = true;
}

/* ---- Part 1: the Python workloads ---- */

#ifdef OM_LAUNCHER

enum { STOCK, TM1, TM25, OMPY, OM1, OM25, OMSAMPLE, NPYCONF };
_Static_assert(NPYCONF <= NPY_MAX, "sum's arrays hold every configuration");

struct pyconfig {
    const char *label;
    char *exe;                  /* python3 or objmem-python */
    char *xopt;                 /* python3's -X option, or NULL */
    char *env;                  /* objmem's variable, or NULL */
    int base;                   /* the configuration it is compared with */
};

static const struct pyconfig pyconf[NPYCONF] = {
    { "python3", OM_PYTHON, NULL, NULL, STOCK },
    { "tracemalloc 1", OM_PYTHON, "tracemalloc=1", NULL, STOCK },
    { "tracemalloc 25", OM_PYTHON, "tracemalloc=25", NULL, STOCK },
    { "objmem-python", OM_LAUNCHER, NULL, NULL, OMPY },
    { "objmem trace 1", OM_LAUNCHER, NULL, "OBJMEM_TRACE=1", OMPY },
    { "objmem trace 25", OM_LAUNCHER, NULL, "OBJMEM_TRACE=25", OMPY },
    { "objmem sample 512K", OM_LAUNCHER, NULL,
      "OBJMEM_TRACE_SAMPLE=524288", OMPY },
};

/* The scripts: w_ as written, t_ with tracemalloc's probe, o_ with
 * objmem's (w_: a script named json.py would import itself). */
enum script { PLAIN, TM_PROBE, OM_PROBE };

static const char *const script_prefix[] = { "w", "t", "o" };

/* The probes' preludes; each takes one path. */
static const char tm_prelude[] =
    "import tracemalloc as _tm\n"
    "def probe():\n"
    "    own, traced = _tm.get_tracemalloc_memory(), "
    "_tm.get_traced_memory()[0]\n"
    "    with open('%s', 'w') as out:\n"
    "        out.write('%%d %%d\\n' %% (own, traced))\n";

static const char om_prelude[] =
    "import os as _os, signal as _signal\n"
    "def probe():\n"
    "    _os.kill(_os.getpid(), _signal.SIGUSR2)\n"
    "    for i in range(100000):\n"
    "        keep = [i]  # the next traced allocation writes the capture\n"
    "        if _os.path.exists('%s'):\n"
    "            break\n"
    "    _os._exit(0)  # the figures are in: no more work, no exit capture\n";

static struct {
    char dir[64];               /* the temporary folder */
    char tm_out[128];           /* tracemalloc's probe writes here */
    char exit_env[160];         /* OBJMEM_TRACE_FILE of the timed runs */
    char exit_cap[128];         /* the capture they write at exit */
    char probe_env[160];        /* OBJMEM_TRACE_FILE of the memory runs */
    char probe_cap[160];        /* the capture their probe asks for */
    char probe_exit[128];       /* and the one at their exit */
    int reps;
} py;

/* The figures of one (workload, configuration). */
struct pycell {
    struct cell cpu, rss;
    double own, traced;         /* at the probe point; own < 0: none */
};

static struct pycell pycells[NWORK][NPYCONF];

static void script_path(char *buf, size_t size, enum script k, size_t w)
{
    snprintf(buf, size, "%s/%s_%s.py", py.dir, script_prefix[k],
             workloads[w].name);
}

/* Write workload w's script of kind k: the prelude, then the body, with
 * "#@ " taken out when it has a probe. */
static void write_script(size_t w, enum script k)
{
    const char *body = workloads[w].script, *at;
    char path[160];
    FILE *f;

    script_path(path, sizeof(path), k, w);
    f = fopen(path, "w");
    if (!f)
        die("cannot write %s", path);
    if (k == TM_PROBE)
        fprintf(f, tm_prelude, py.tm_out);
    else if (k == OM_PROBE)
        fprintf(f, om_prelude, py.probe_cap);
    while (k != PLAIN && (at = strstr(body, "#@ "))) {
        fwrite(body, 1, (size_t)(at - body), f);
        body = at + 3;
    }
    fputs(body, f);
    if (fclose(f) != 0)
        die("cannot write %s", path);
}

static void set_paths(void)
{
    snprintf(py.tm_out, sizeof(py.tm_out), "%s/tm.txt", py.dir);
    snprintf(py.exit_cap, sizeof(py.exit_cap), "%s/exit.trace", py.dir);
    snprintf(py.exit_env, sizeof(py.exit_env), "OBJMEM_TRACE_FILE=%s",
             py.exit_cap);
    snprintf(py.probe_exit, sizeof(py.probe_exit), "%s/probe.trace",
             py.dir);
    snprintf(py.probe_cap, sizeof(py.probe_cap), "%s.1", py.probe_exit);
    snprintf(py.probe_env, sizeof(py.probe_env), "OBJMEM_TRACE_FILE=%s",
             py.probe_exit);
}

static bool failed(const struct child_cost *k)
{
    return !WIFEXITED(k->status) || WEXITSTATUS(k->status) != 0;
}

/* Run configuration c on workload w's script of kind k. */
static struct child_cost run_python(size_t w, int c, enum script k,
                                    char *file_env)
{
    char path[160];
    char *argv[6] = { pyconf[c].exe };
    char *env[] = { file_env, pyconf[c].env, NULL };
    int n = 1;

    script_path(path, sizeof(path), k, w);
    if (pyconf[c].xopt) {
        argv[n++] = "-X";
        argv[n++] = pyconf[c].xopt;
    }
    argv[n++] = path;
    argv[n] = NULL;
    return measure_child(argv, env, NULL);
}

/* tracemalloc's figures from its probe's file, then the file goes. */
static void read_tm_probe(struct pycell *pc)
{
    FILE *f = fopen(py.tm_out, "r");
    double own, traced;

    if (!f)
        return;
    if (fscanf(f, "%lf %lf", &own, &traced) == 2 && pc->own < 0) {
        pc->own = own;
        pc->traced = traced;
    }
    fclose(f);
    unlink(py.tm_out);
}

/* One timed run; tracemalloc's also give the memory figures. */
static void timed_run(size_t w, int c)
{
    bool tm = c == TM1 || c == TM25;
    struct pycell *pc = &pycells[w][c];
    struct child_cost k = run_python(w, c, tm ? TM_PROBE : PLAIN,
                                     py.exit_env);

    unlink(py.exit_cap);
    if (failed(&k)) {
        pc->cpu.failed++;
        sum.failures++;
        fprintf(stderr, "bench_trace: %s on %s failed (status %#x)\n",
                pyconf[c].label, workloads[w].name, k.status);
        unlink(py.tm_out);
        return;
    }
    cell_add(&pc->cpu, k.cpu_s);
    cell_add(&pc->rss, k.rss_mb);
    if (tm)
        read_tm_probe(pc);
}

/* objmem's memory figures: a run whose probe asks for a capture, whose
 * META this process reads. */
static void memory_run(size_t w, int c)
{
    struct pycell *pc = &pycells[w][c];
    struct om_snapshot_info info;
    struct om_snapshot *s;

    run_python(w, c, OM_PROBE, py.probe_env);
    s = om_snapshot_load(py.probe_cap);
    if (s) {
        om_snapshot_get_info(s, &info);
        pc->own = (double)info.trace_memory;
        pc->traced = (double)info.current;
        om_snapshot_free(s);
    } else {
        fprintf(stderr, "bench_trace: %s on %s: no capture (%s)\n",
                pyconf[c].label, workloads[w].name, strerror(errno));
    }
    unlink(py.probe_cap);
    unlink(py.probe_exit);
}

static void print_pyrow(size_t w, int c)
{
    const struct pycell *pc = &pycells[w][c];
    double lo, hi, x, y, t = cell_median(&pc->cpu, &lo, &hi);
    double base = cell_median(&pycells[w][pyconf[c].base].cpu, &x, &y);
    char range[48];

    printf("  %-8s %-19s %7.3f  %-13s", c ? "" : workloads[w].name,
           pyconf[c].label, t, range_text(range, sizeof(range), lo, hi, 3));
    if (c != pyconf[c].base)
        printf(" %6.2fx", t / base);
    else
        printf(" %7s", "");
    printf("  %7.1f", cell_median(&pc->rss, &x, &y));
    if (pc->cpu.failed)
        printf("  (%d failed)", pc->cpu.failed);
    putchar('\n');
}

/* Workload w: objmem's memory runs, then the timed ones, interleaved. */
static void run_workload(size_t w)
{
    memory_run(w, OM1);
    memory_run(w, OM25);
    for (int rep = 0; rep < py.reps; rep++)
        for (int k = 0; k < NPYCONF; k++)
            timed_run(w, (k + rep) % NPYCONF);
    for (int c = 0; c < NPYCONF; c++)
        print_pyrow(w, c);
}

/* The geometric mean of each configuration's ratios. */
static void print_py_means(void)
{
    static const char *const target[NPYCONF] = {
        [OM1] = "target <= 1.3x", [OM25] = "target <= 2x",
        [OMSAMPLE] = "target <= 1.05x" };

    printf("  geometric mean of the ratios over the %zu workloads:\n",
           NWORK);
    for (int c = 0; c < NPYCONF; c++) {
        double r[NWORK], x, y;

        if (c == pyconf[c].base)
            continue;
        for (size_t w = 0; w < NWORK; w++)
            r[w] = cell_median(&pycells[w][c].cpu, &x, &y) /
                   cell_median(&pycells[w][pyconf[c].base].cpu, &x, &y);
        sum.py_time[c] = geomean(r, NWORK);
        printf("  %-8s %-19s %6.2fx", "", pyconf[c].label, sum.py_time[c]);
        if (target[c])
            printf("  %s", target[c]);
        putchar('\n');
    }
}

/* One row of the memory table: workload w under configuration c; the
 * workload's name and probe point on its first row. */
static void print_memrow(size_t w, int c, bool first)
{
    const struct pycell *pc = &pycells[w][c];

    printf("  %-8s %-19s", first ? workloads[w].name : "", pyconf[c].label);
    if (pc->own < 0) {
        printf(" %9s\n", "none");
        return;
    }
    printf(" %9.1f %10.1f %10.2fx", pc->own / MB, pc->traced / MB,
           pc->own / pc->traced);
    if (first)
        printf("  %s", workloads[w].point);
    putchar('\n');
    if (pc->own / pc->traced > sum.py_mem[c])
        sum.py_mem[c] = pc->own / pc->traced;
}

/* Own memory over traced bytes, per workload, then the largest. */
static void print_py_memory(void)
{
    static const int conf[] = { TM1, TM25, OM1, OM25 };

    printf("\n== Tracing's own memory / traced bytes, at each workload's "
           "probe point (one run each) ==\n");
    printf("  %-8s %-19s %9s %10s %11s  %s\n", "workload", "configuration",
           "own MB", "traced MB", "own/traced", "probe point");
    for (size_t w = 0; w < NWORK; w++)
        for (int i = 0; i < 4; i++)
            print_memrow(w, conf[i], i == 0);
    printf("  largest own/traced: tracemalloc %.2fx (1 frame), %.2fx (25); "
           "objmem %.2fx (1), %.2fx (25); target <= 0.3x\n",
           sum.py_mem[TM1], sum.py_mem[TM25], sum.py_mem[OM1],
           sum.py_mem[OM25]);
}

static void part_python(int reps)
{
    char cmd[128];

    snprintf(py.dir, sizeof(py.dir), "/tmp/bench_trace-XXXXXX");
    if (!mkdtemp(py.dir))
        die("mkdtemp: %s", strerror(errno));
    py.reps = reps;
    set_paths();
    for (size_t w = 0; w < NWORK; w++) {
        for (int c = 0; c < NPYCONF; c++)
            pycells[w][c].own = -1;
        for (int k = PLAIN; k <= OM_PROBE; k++)
            write_script(w, (enum script)k);
    }
    printf("\n== Part 1: Python workloads, CPU time (user + sys) of the "
           "whole run, %d runs each ==\n", reps);
    printf("  ratio: tracemalloc / python3, objmem traced / objmem-python "
           "untraced\n");
    printf("  %-8s %-19s %7s  %-13s %7s  %7s\n", "workload",
           "configuration", "cpu s", "min..max", "ratio", "RSS MB");
    for (size_t w = 0; w < NWORK; w++)
        run_workload(w);
    print_py_means();
    print_py_memory();
    sum.have_py = true;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", py.dir);
    if (system(cmd) != 0)
        die("cannot remove %s", py.dir);
}

#endif /* OM_LAUNCHER */

/* ---- The closing table ---- */

/* One row: objmem's figure, the target, tracemalloc's (NAN: none). */
static void summary_row(const char *what, double ours, double target,
                        double tm)
{
    printf("| %s | %.2fx | ≤ %gx | %s | ", what, ours, target,
           ours <= target ? "yes" : "no");
    if (isnan(tm))
        printf("— |\n");
    else
        printf("%.2fx |\n", tm);
}

static void print_summary(void)
{
    printf("\n== Summary: objmem's tracing against the issue's targets "
           "(ratios to untraced) ==\n\n");
    printf("| figure | objmem | target | met | tracemalloc |\n");
    printf("|---|---|---|---|---|\n");
#ifdef OM_LAUNCHER
    if (sum.have_py) {
        summary_row("Python time, 1 frame (geomean)", sum.py_time[OM1], 1.3,
                    sum.py_time[TM1]);
        summary_row("Python time, 25 frames (geomean)", sum.py_time[OM25],
                    2, sum.py_time[TM25]);
        summary_row("Python time, sampling 512 KiB (geomean)",
                    sum.py_time[OMSAMPLE], 1.05, NAN);
        summary_row("Python own memory / traced, 1 frame (largest)",
                    sum.py_mem[OM1], 0.3, sum.py_mem[TM1]);
        summary_row("Python own memory / traced, 25 frames (largest)",
                    sum.py_mem[OM25], 0.3, sum.py_mem[TM25]);
    }
#endif
    if (!sum.have_c)
        return;
    for (int p = 0; p < NCPAT; p++) {
        char what[80];
        static const double target[NCCONF] = { 0, 1.3, 2, 1.05 };

        for (int c = C_T1; c < NCCONF; c++) {
            snprintf(what, sizeof(what), "om_malloc %s time, %s",
                     cpat_name[p], cconf_label[c]);
            summary_row(what, sum.c_time[p][c], target[c], NAN);
        }
    }
    summary_row("om_malloc churn own memory / traced, 1 frame",
                sum.c_mem[C_T1], 0.3, NAN);
    summary_row("om_malloc churn own memory / traced, 25 frames",
                sum.c_mem[C_T25], 0.3, NAN);
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_trace [--reps N] [--part python|alloc]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *const prefixes[] = { "OBJMEM_", "OM_", "PYTHON", NULL };
    const char *part = NULL;
    int reps = PY_REPS;
    ssize_t n;

    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], argv[3]);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--part") == 0 && i + 1 < argc)
            part = argv[++i];
        else
            usage();
    }
    if (reps < 1 || reps > MAX_REPS ||
        (part && strcmp(part, "python") && strcmp(part, "alloc")))
        usage();
    n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
    if (n <= 0)
        die("readlink /proc/self/exe: %s", strerror(errno));
    self_path[n] = '\0';
    printf("bench_trace: what tracing costs (objmem %s, %ld CPUs)\n",
           OM_VERSION_STRING, sysconf(_SC_NPROCESSORS_ONLN));
    print_environment(prefixes, "");
#ifdef OM_LAUNCHER
    printf("python3: %s\nobjmem-python: %s\n", OM_PYTHON, OM_LAUNCHER);
    if (!part || strcmp(part, "python") == 0)
        part_python(reps);
#else
    printf("objmem-python was not built: part 1 (Python) is left out\n");
#endif
    if (!part || strcmp(part, "alloc") == 0)
        part_alloc();
    print_summary();
    return sum.failures ? 1 : 0;
}
