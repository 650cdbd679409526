/*
 * bench_gc.c - the cycle collector against python3's, same shapes, one
 * run.  A program, never a test: it prints medians, min..max and ratios.
 *
 * Each repetition runs objmem's shapes in fresh child processes (fork;
 * the incremental loop in one of its own) and python3's in a python3
 * process (the same shapes in Python), the two alternating which goes
 * first.  Times are thread CPU time: the machine
 * is shared and noisy.
 *
 * Shapes (issue 4):
 *   full N      a full collection with N live tracked instances
 *               (N = 1e5, 1e6, 3e6): ns per object
 *   young       a generation 0 collection with 1e6 live young instances
 *               (empty lists would not be tracked: list.c)
 *   cycles      1e6 garbage 2-cycles of lists collected, dealloc
 *               included: ns per object
 *   auto        an allocation loop of 4M steps (a new list each; one in
 *               four kept, one in sixteen a garbage cycle, default
 *               thresholds): the pauses of the automatic collections
 *               (p50, p99, max) and the collector's share of the loop's
 *               time
 *   autoi       the same loop with instances (tracked for life, where
 *               objmem's empty lists are not)
 *   inc         the auto loop again in incremental mode, 3M live
 *               instances held (python3 3.11 has no such mode: "-")
 *   trees       binary trees of tuples: a stretch tree of depth 21 made,
 *               checked, dropped, then a long-lived tree of depth 20 made,
 *               checked, dropped (6.3M nodes), collector on
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "objmem.h"
#include "benchutil.h"

#define MAX_REPS 15
#define MAX_PAUSES 100000

enum { OBJMEM, PYTHON, NBACK };

struct key {
    const char *name;           /* also the line python3 prints */
    const char *unit;
    const char *target;         /* the target for objmem */
};

static const struct key keys[] = {
    { "full_1e5", "ns/object", "<= 25" },
    { "full_1e6", "ns/object", "<= 25" },
    { "full_3e6", "ns/object", "<= 25" },
    { "young_1e6", "ns/object", "" },
    { "cycles_1e6", "ns/object", "<= 40" },
    { "auto_p50", "us", "" },
    { "auto_p99", "us", "<= 100" },
    { "auto_max", "us", "<= 5000" },
    { "auto_gc_share", "%", "<= 15" },
    { "autoi_p50", "us", "" },
    { "autoi_p99", "us", "<= 100" },
    { "autoi_max", "us", "<= 5000" },
    { "autoi_gc_share", "%", "<= 15" },
    { "inc_p50", "us", "" },
    { "inc_p99", "us", "<= 100" },
    { "inc_max", "us", "<= 5000" },
    { "inc_gc_share", "%", "<= 15" },
    { "trees", "s", "<= 0.12" },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static double results[NBACK][NKEYS][MAX_REPS];
static int nres[NBACK][NKEYS];
static bool quick;

static void put(FILE *out, const char *key, double v)
{
    fprintf(out, "%s %.6g\n", key, v);
}

/* ---- objmem's shapes (in the child) ---- */

static om_object *keep_instances(om_object *cls, long n)
{
    om_object *keep = om_list_new(0);

    for (long i = 0; i < n; i++) {
        om_object *o = om_instance_new(cls);
        om_list_append(keep, o);
        om_decref(o);
    }
    return keep;
}

static double om_full(long n)
{
    om_object *cls = om_class_new("C", NULL, 0, 0);
    om_object *keep = keep_instances(cls, n);
    double t0, ns;

    om_gc_collect(2);                   /* settle: all in generation 2 */
    t0 = thread_ns();
    om_gc_collect(2);
    ns = thread_ns() - t0;
    om_decref(keep);
    om_decref(cls);
    return ns / (double)n;
}

static double om_young(long n)
{
    om_object *cls = om_class_new("C", NULL, 0, 0), *keep;
    double t0, ns;

    om_gc_collect(2);
    om_gc_disable();
    keep = keep_instances(cls, n);
    t0 = thread_ns();
    om_gc_collect(0);
    ns = thread_ns() - t0;
    om_gc_enable();
    om_decref(keep);
    om_decref(cls);
    return ns / (double)n;
}

static double om_cycles(long n)
{
    double t0, ns;

    om_gc_collect(2);
    om_gc_disable();
    for (long i = 0; i < n; i++) {
        om_object *a = om_list_new(0), *b = om_list_new(0);
        om_list_append(b, a);
        om_list_append(a, b);
        om_decref(a);
        om_decref(b);
    }
    t0 = thread_ns();
    om_gc_collect(2);
    ns = thread_ns() - t0;
    om_gc_enable();
    return ns / (double)(2 * n);
}

static double pauses[MAX_PAUSES];
static int npauses;
static double pause_t0;

static void on_gc(const char *phase, const struct om_gc_info *info,
                  void *ctx)
{
    if (phase[1] == 't' && phase[2] == 'a')          /* "start" */
        pause_t0 = thread_ns();
    else if (npauses < MAX_PAUSES)
        pauses[npauses++] = thread_ns() - pause_t0;
}

static double percentile(double *v, int n, double p)
{
    int i = (int)(p * (n - 1) + 0.5);
    return n ? v[i] : 0;
}

/* The allocation loop; its figures go out under prefix ("auto", "autoi",
 * "inc").  Its objects are lists, or instances of cls when not NULL. */
static void om_auto(FILE *out, const char *prefix, long steps,
                    om_object *cls)
{
    om_object *keep = om_list_new(0);
    double t0, total, sum = 0;
    char key[32];

    om_gc_collect(2);
    npauses = 0;
    om_gc_callback_add(on_gc, NULL);
    t0 = thread_ns();
    for (long i = 0; i < steps; i++) {
        om_object *o = cls ? om_instance_new(cls) : om_list_new(0);
        if (i % 16 == 1 && cls)
            om_setattr(o, "me", o);     /* a garbage cycle (never kept) */
        else if (i % 16 == 1)
            om_list_append(o, o);
        if (i % 4 == 0)
            om_list_append(keep, o);
        om_decref(o);
    }
    total = thread_ns() - t0;
    om_gc_callback_remove(on_gc, NULL);
    for (int i = 0; i < npauses; i++)
        sum += pauses[i];
    qsort(pauses, (size_t)npauses, sizeof(double), cmp_double);
    snprintf(key, sizeof(key), "%s_p50", prefix);
    put(out, key, percentile(pauses, npauses, 0.50) / 1e3);
    snprintf(key, sizeof(key), "%s_p99", prefix);
    put(out, key, percentile(pauses, npauses, 0.99) / 1e3);
    snprintf(key, sizeof(key), "%s_max", prefix);
    put(out, key, npauses ? pauses[npauses - 1] / 1e3 : 0);
    snprintf(key, sizeof(key), "%s_gc_share", prefix);
    put(out, key, 100 * sum / total);
    om_decref(keep);
}

/* The same loop in incremental mode, with live instances held. */
static void om_incremental(FILE *out, long live, long steps)
{
    om_object *cls = om_class_new("C", NULL, 0, 0);
    om_object *keep = keep_instances(cls, live);

    om_gc_collect(2);
    om_gc_set_incremental(true);
    om_auto(out, "inc", steps, NULL);
    om_gc_set_incremental(false);
    om_decref(keep);
    om_decref(cls);
}

static om_object *make_tree(int depth)
{
    om_object *l, *r, *t;

    if (depth == 0)
        return om_tuple_pack(2, om_none(), om_none());
    l = make_tree(depth - 1);
    r = make_tree(depth - 1);
    t = om_tuple_pack(2, l, r);
    om_decref(l);
    om_decref(r);
    return t;
}

/* As python3's check (`l, r = tr`, whose UNPACK_SEQUENCE reads the items
 * with no call), with the unchecked accessor. */
static long check_tree(om_object *t, const om_object *none)
{
    om_object *l = om_tuple_item(t, 0);

    return l == none ? 1 : 1 + check_tree(l, none) +
                           check_tree(om_tuple_item(t, 1), none);
}

static double om_trees(int max_depth)
{
    double t0 = thread_ns();
    om_object *t = make_tree(max_depth + 1);
    long n = check_tree(t, om_none());

    om_decref(t);
    t = make_tree(max_depth);
    n += check_tree(t, om_none());
    om_decref(t);
    if (n != (2L << (max_depth + 1)) - 1 + (2L << max_depth) - 1)
        fprintf(stderr, "bench_gc: trees: wrong check %ld\n", n);
    return (thread_ns() - t0) / 1e9;
}

/* The shapes of child part (0 or 1).  The incremental loop runs in a
 * child of its own: after the shapes before it, the holes they leave in
 * the heap scatter its 3M instances, and its increments then took twice
 * as long (p99 0.3 -> 0.65 ms) for reasons that are not the collector's.
 * python3 runs it in its own process too (it has no such mode). */
static void objmem_child(FILE *out, int part)
{
    long scale = quick ? 10 : 1;

    if (part == 1) {
        om_incremental(out, 3000000 / scale, 4000000 / scale);
        return;
    }
    put(out, "full_1e5", om_full(100000 / scale));
    put(out, "full_1e6", om_full(1000000 / scale));
    put(out, "full_3e6", om_full(3000000 / scale));
    put(out, "young_1e6", om_young(1000000 / scale));
    put(out, "cycles_1e6", om_cycles(1000000 / scale));
    om_auto(out, "auto", 4000000 / scale, NULL);
    om_object *cls = om_class_new("C", NULL, 0, 0);
    om_auto(out, "autoi", 4000000 / scale, cls);
    om_decref(cls);
    put(out, "trees", om_trees(quick ? 16 : 20));
}

/* ---- python3's shapes ---- */

static const char *PY_SCRIPT =
    "import gc, sys, time\n"
    "t = time.thread_time_ns\n"
    "scale = int(sys.argv[1]); quick = scale > 1\n"
    "class C: pass\n"
    "def full(n):\n"
    "    keep = [C() for _ in range(n)]\n"
    "    gc.collect(); t0 = t(); gc.collect(); ns = t() - t0\n"
    "    del keep; return ns / n\n"
    "def young(n):\n"
    "    gc.collect(); gc.disable(); keep = [C() for _ in range(n)]\n"
    "    t0 = t(); gc.collect(0); ns = t() - t0; gc.enable()\n"
    "    del keep; return ns / n\n"
    "def cycles(n):\n"
    "    gc.collect(); gc.disable()\n"
    "    for _ in range(n):\n"
    "        a = []; b = [a]; a.append(b)\n"
    "    del a, b\n"
    "    t0 = t(); gc.collect(); ns = t() - t0; gc.enable()\n"
    "    return ns / (2 * n)\n"
    "pauses = []; start = [0]\n"
    "def cb(phase, info):\n"
    "    if phase == 'start': start[0] = t()\n"
    "    else: pauses.append(t() - start[0])\n"
    "def auto(steps, pre, make):\n"
    "    keep = []; pauses.clear(); gc.collect(); gc.callbacks.append(cb)\n"
    "    t0 = t()\n"
    "    for i in range(steps):\n"
    "        o = [] if make is list else C()\n"
    "        if i % 16 == 1:\n"
    "            if make is C: o.me = o\n"
    "            else: o.append(o)\n"
    "        if i % 4 == 0: keep.append(o)\n"
    "        del o\n"
    "    total = t() - t0; gc.callbacks.remove(cb)\n"
    "    p = sorted(pauses); n = len(p)\n"
    "    pct = lambda q: p[int(q * (n - 1) + 0.5)] if n else 0\n"
    "    print(pre + '_p50', pct(0.5) / 1e3)\n"
    "    print(pre + '_p99', pct(0.99) / 1e3)\n"
    "    print(pre + '_max', (p[-1] if n else 0) / 1e3)\n"
    "    print(pre + '_gc_share', 100 * sum(p) / total)\n"
    "def make(d):\n"
    "    return (make(d - 1), make(d - 1)) if d else (None, None)\n"
    "def check(tr):\n"
    "    l, r = tr\n"
    "    return 1 if l is None else 1 + check(l) + check(r)\n"
    "def trees(m):\n"
    "    t0 = t(); tr = make(m + 1); check(tr); del tr\n"
    "    tr = make(m); check(tr); del tr; return (t() - t0) / 1e9\n"
    "print('full_1e5', full(100000 // scale))\n"
    "print('full_1e6', full(1000000 // scale))\n"
    "print('full_3e6', full(3000000 // scale))\n"
    "print('young_1e6', young(1000000 // scale))\n"
    "print('cycles_1e6', cycles(1000000 // scale))\n"
    "auto(4000000 // scale, 'auto', list)\n"
    "auto(4000000 // scale, 'autoi', C)\n"
    "print('trees', trees(16 if quick else 20))\n";

/* ---- The driver ---- */

static void record(int b, const char *line)
{
    char name[64];
    double v;

    if (sscanf(line, "%63s %lf", name, &v) != 2)
        return;
    for (size_t k = 0; k < NKEYS; k++)
        if (strcmp(name, keys[k].name) == 0 && nres[b][k] < MAX_REPS)
            results[b][k][nres[b][k]++] = v;
}

static void read_lines(int b, FILE *in)
{
    char line[256];

    while (fgets(line, sizeof(line), in))
        record(b, line);
}

static void run_objmem_part(int part)
{
    int fds[2];
    pid_t pid;
    FILE *in;

    if (pipe(fds) != 0)
        die("pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        FILE *out = fdopen(fds[1], "w");
        close(fds[0]);
        objmem_child(out, part);
        fclose(out);
        _exit(0);
    }
    close(fds[1]);
    in = fdopen(fds[0], "r");
    read_lines(OBJMEM, in);
    fclose(in);
    waitpid(pid, NULL, 0);
}

static void run_objmem(void)
{
    run_objmem_part(0);
    run_objmem_part(1);
}

static bool run_python(void)
{
    char path[] = "/tmp/objmem-bench-gc-XXXXXX", cmd[128];
    int fd = mkstemp(path);
    bool ok;
    FILE *in;

    if (fd < 0)
        return false;
    ok = write(fd, PY_SCRIPT, strlen(PY_SCRIPT)) ==
         (ssize_t)strlen(PY_SCRIPT);
    close(fd);
    snprintf(cmd, sizeof(cmd), "python3 %s %d", path, quick ? 10 : 1);
    in = ok ? popen(cmd, "r") : NULL;
    if (in) {
        read_lines(PYTHON, in);
        ok = pclose(in) == 0;
    }
    unlink(path);
    return ok && in;
}

static void print_table(int reps)
{
    printf("\n| shape | unit | objmem median [min..max] | python3 median "
           "[min..max] | python3/objmem | objmem target |\n");
    printf("|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < NKEYS; k++) {
        double m[NBACK] = { 0, 0 }, lo, hi;
        printf("| %s | %s |", keys[k].name, keys[k].unit);
        for (int b = 0; b < NBACK; b++) {
            if (!nres[b][k]) {
                printf(" - |");
                continue;
            }
            m[b] = median(results[b][k], nres[b][k], &lo, &hi);
            printf(" %.3g [%.3g..%.3g] |", m[b], lo, hi);
        }
        if (m[OBJMEM] > 0 && m[PYTHON] > 0)
            printf(" %.2f |", m[PYTHON] / m[OBJMEM]);
        else
            printf(" - |");
        printf(" %s |\n", keys[k].target[0] ? keys[k].target : "-");
    }
    printf("\n%d repetitions%s; thread CPU time; python3/objmem > 1: objmem "
           "less (faster, shorter).\n", reps, quick ? ", --quick (10x "
           "smaller, trees of depth 16)" : "");
}

int main(int argc, char **argv)
{
    int reps = 3;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_gc [--quick] [--reps N]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS)
        reps = 3;
    printf("bench_gc: objmem %s against python3, %d repetitions\n",
           om_version(), reps);
    for (int r = 0; r < reps; r++) {
        bool py_first = r % 2 == 1;
        fprintf(stderr, "  rep %d: %s", r + 1, py_first ? "python3" : "objmem");
        if (py_first && !run_python())
            fprintf(stderr, " (python3 failed)");
        run_objmem();
        if (!py_first) {
            fprintf(stderr, " python3");
            if (!run_python())
                fprintf(stderr, " (python3 failed)");
        } else {
            fprintf(stderr, " objmem");
        }
        fprintf(stderr, "\n");
    }
    print_table(reps);
    return 0;
}
