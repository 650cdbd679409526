/*
 * bench_shim.c - whole programs on objmem.  A program, never a test: it
 * prints medians, min..max and ratios, from one run.
 *
 * Part 1, CPython: Python workloads of our own (object churn, dict-heavy,
 * string-heavy, a JSON round trip, a small class-heavy simulation;
 * workloads.h, shared with bench_trace) on the stock python3 (pymalloc +
 * glibc) and on objmem-python (every domain on objmem).  Targets (issue
 * 5): objmem-python at least as fast, peak RSS at most 0.9x.
 *
 * Part 2, the shim: real programs - python3 with PYTHONMALLOC=malloc on
 * the JSON workload, sqlite3 running 100k inserts and queries, git log -p
 * on this repository, the threaded stress program - under glibc, Debian's
 * mimalloc and jemalloc (LD_PRELOAD), and objmem's shim.  Targets: no
 * slower than mimalloc on any program, lower peak RSS than glibc on every
 * one.
 *
 * Each measurement is a fresh process; the configurations alternate
 * within each repetition.  Time is the child's CPU time (user + system,
 * from wait4) - the machine is shared and noisy - and peak RSS its
 * ru_maxrss.  Ratios: time anchor / objmem (> 1: objmem is faster); RSS
 * objmem / anchor (< 1: objmem uses less).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "objmem.h"
#include "benchutil.h"
#include "workloads.h"

#define REPS 5
#define LIBDIR "/usr/lib/x86_64-linux-gnu/"

/* ---- Printing ---- */

struct series {
    double cpu[REPS], rss[REPS];
    int failed;
};

static void add(struct series *se, int rep, struct child_cost s)
{
    se->cpu[rep] = s.cpu_s;
    se->rss[rep] = s.rss_mb;
    if (!WIFEXITED(s.status) || WEXITSTATUS(s.status) != 0)
        se->failed++;
}

static void print_row(const char *what, const char *config,
                      const struct series *se, const struct series *ours)
{
    double lo, hi, rlo, rhi, x, y;
    double cpu = median(se->cpu, REPS, &lo, &hi);
    double rss = median(se->rss, REPS, &rlo, &rhi);
    double ocpu = median(ours->cpu, REPS, &x, &y);
    double orss = median(ours->rss, REPS, &x, &y);

    printf("  %-9s %-14s %7.3f s  %6.3f..%-6.3f  %7.1f MB  %6.1f..%-6.1f",
           what, config, cpu, lo, hi, rss, rlo, rhi);
    if (se != ours)
        printf("  time %5.2fx  RSS %5.2fx", cpu / ocpu, orss / rss);
    if (se->failed)
        printf("  (%d runs failed)", se->failed);
    putchar('\n');
}

/* ---- Part 1: CPython ---- */

static void part_python(const char *dir)
{
    char path[NWORK][512];
    char *env_none[] = { NULL };

    printf("\n== CPython: stock python3 (pymalloc) vs objmem-python, %d "
           "runs each ==\n", REPS);
    printf("  %-9s %-14s %9s  %-14s  %10s  %-14s  %s\n", "workload",
           "interpreter", "cpu", "min..max", "peak RSS", "min..max",
           "stock/objmem time, objmem/stock RSS");
    for (size_t w = 0; w < NWORK; w++) {
        FILE *f;
        /* w_: a script named json.py would import itself. */
        snprintf(path[w], sizeof(path[w]), "%s/w_%s.py", dir,
                 workloads[w].name);
        f = fopen(path[w], "w");
        if (!f)
            die("cannot write %s", path[w]);
        fputs(workloads[w].script, f);
        fclose(f);
    }
    for (size_t w = 0; w < NWORK; w++) {
        struct series stock = { 0 }, ours = { 0 };
        char *py[] = { OM_PYTHON, path[w], NULL };
        char *om[] = { OM_LAUNCHER, path[w], NULL };
        for (int r = 0; r < REPS; r++) {
            if (r % 2) {
                add(&ours, r, measure_child(om, env_none, NULL));
                add(&stock, r, measure_child(py, env_none, NULL));
            } else {
                add(&stock, r, measure_child(py, env_none, NULL));
                add(&ours, r, measure_child(om, env_none, NULL));
            }
        }
        print_row(workloads[w].name, "objmem-python", &ours, &ours);
        print_row("", "python3", &stock, &ours);
    }
}

/* ---- Part 2: programs on the shim ---- */

enum { GLIBC, MIMALLOC, JEMALLOC, OBJMEM, NCONF };

static const char *conf_name[NCONF] = { "glibc", "mimalloc", "jemalloc",
                                        "objmem (shim)" };

static void part_shim(const char *dir)
{
    static char preload[NCONF][600];
    const char *lib[NCONF] = { NULL, LIBDIR "libmimalloc.so.2",
                               LIBDIR "libjemalloc.so.2", OM_PRELOAD };
    char sql[512], json[512], gitdir[600];
    bool have[NCONF];
    FILE *f;

    snprintf(sql, sizeof(sql), "%s/script.sql", dir);
    f = fopen(sql, "w");
    if (!f)
        die("cannot write %s", sql);
    fputs("create table t(id integer primary key, name text, grp integer, "
          "val real);\n"
          "with recursive c(x) as (select 1 union all select x+1 from c "
          "where x < 100000) insert into t select x, 'name' || x, x % 97, "
          "x * 1.5 from c;\n"
          "create index t_grp on t(grp);\n"
          "select grp, count(*), sum(val) from t group by grp;\n"
          "select length(group_concat(name)) from t where grp < 50;\n"
          "delete from t where id % 3 = 0;\n"
          "select count(*) from t where name like '%77%';\n", f);
    fclose(f);
    snprintf(json, sizeof(json), "%s/w_json.py", dir);
    snprintf(gitdir, sizeof(gitdir), "%s", OM_SRC_DIR);
    for (int c = 0; c < NCONF; c++) {
        have[c] = !lib[c] || access(lib[c], R_OK) == 0;
        snprintf(preload[c], sizeof(preload[c]), "LD_PRELOAD=%s",
                 lib[c] ? lib[c] : "");
    }
    printf("\n== Programs on the shim: glibc, mimalloc, jemalloc, objmem; "
           "%d runs each ==\n", REPS);
    printf("  %-9s %-14s %9s  %-14s  %10s  %-14s  %s\n", "program",
           "malloc", "cpu", "min..max", "peak RSS", "min..max",
           "anchor/objmem time, objmem/anchor RSS");
    struct prog {
        const char *name;
        char *argv[8];
        const char *in;
        bool pymalloc_off;
    } progs[] = {
        { "python3", { OM_PYTHON, json, NULL }, NULL, true },
        { "sqlite3", { "sqlite3", ":memory:", NULL }, sql, false },
        { "git", { "git", "-C", gitdir, "log", "-p", "-n", "400", NULL },
          NULL, false },
        { "stress", { OM_STRESS, "--no-foreign", NULL }, NULL, false },
    };
    for (size_t p = 0; p < sizeof(progs) / sizeof(progs[0]); p++) {
        struct series se[NCONF] = { 0 };
        for (int r = 0; r < REPS; r++)
            for (int k = 0; k < NCONF; k++) {
                int c = (k + r) % NCONF;     /* rotate who goes first */
                char *env[] = { preload[c],
                                progs[p].pymalloc_off ? "PYTHONMALLOC=malloc"
                                                      : NULL, NULL };
                if (have[c])
                    add(&se[c], r, measure_child(progs[p].argv, env,
                                           progs[p].in));
            }
        print_row(progs[p].name, conf_name[OBJMEM], &se[OBJMEM],
                  &se[OBJMEM]);
        for (int c = 0; c < OBJMEM; c++)
            if (have[c])
                print_row("", conf_name[c], &se[c], &se[OBJMEM]);
            else
                printf("  %-9s %-14s not installed\n", "", conf_name[c]);
    }
    printf("  (python3 runs the json workload with PYTHONMALLOC=malloc; the "
           "stress program's\n  error count is not checked here: Debian's "
           "mimalloc 2.0.9 misaligns some\n  posix_memalign blocks, which "
           "it reports)\n");
}

int main(void)
{
    char dir[] = "/tmp/bench_shim-XXXXXX";
    const char *const prefixes[] = { "OBJMEM_", "PYTHON", "LD_PRELOAD",
                                     NULL };
    char cmd[64];

    if (!mkdtemp(dir))
        die("mkdtemp: %s", strerror(errno));
    printf("bench_shim: whole programs on objmem (objmem %s)\n",
           OM_VERSION_STRING);
    print_environment(prefixes, "");
    part_python(dir);
    part_shim(dir);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        die("cannot remove %s", dir);
    return 0;
}
