/*
 * test_preload.c - the malloc shim, libobjmem-preload.so, under programs
 * nobody here wrote and one of our own: the exported symbols; a threaded
 * stress program (8 threads, cross-thread frees, thread exit, fork, a
 * foreign pointer); sqlite3 running 100k inserts and queries; git on this
 * repository; CPython's own tests with PYTHONMALLOC=malloc.  Each must
 * print the same as without the shim.  Then the options: the stats report
 * (to a file named with the pid, never to the program's stderr), verbose,
 * OBJMEM_CONF, children=0, and the debug allocator catching an overflow;
 * glibc's statistics functions (mallinfo2, mallinfo, malloc_stats,
 * malloc_info) reporting objmem's figures, or glibc's with
 * allocator=malloc.
 *
 * Then the objmem command: run (output, status, summary, --stats,
 * --output; a service: signals passed on, a traced pre-forking server
 * and its worker's capture, names), stats (text, JSON, errors), config.
 *
 * Then the exporters: flamegraph (folded stacks, and the HTML page as
 * headless Chromium renders it) and pprof (read back with a protobuf
 * reader of our own).
 *
 * Then objmem-python: CPython as python3, on objmem, with its children;
 * the allocator CPython's domains get from PYTHONMALLOC and the allocator
 * option (under memcheck, the C library's: a freed object read is seen).
 *
 * Paths come from the build (PRELOAD, STRESS, VICTIM, TRACE_VICTIM,
 * SERVE_VICTIM, MALLINFO_CHILD, TOOL, LIBOBJMEM, LAUNCHER, SRC_DIR,
 * PYTHON; LAUNCHER and PYTHON are "" when there is no CPython).
 */
#define _GNU_SOURCE 1                   /* memmem */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "testutil.h"

/* trace_victim's source, as its debug information names it: the lines
 * below are its malloc calls' and main's calls'. */
#define VICTIM_SRC SRC_DIR "/tests/trace_victim.c"

static char tmp[256];

static int setup(void **state)
{
    snprintf(tmp, sizeof(tmp), "/tmp/objmem-preload-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* Read a whole file into buf (size bytes at most); its length. */
static size_t slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;

    if (f) {
        n = fread(buf, 1, size - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return n;
}

/*
 * Run a shell command line with env prepended (env may be ""), stdout and
 * stderr into files of tmp; return the exit status (as the shell's $?).
 */
static int run(const char *env, const char *cmd)
{
    char line[8192];
    int status;

    snprintf(line, sizeof(line), "cd '%s' && env %s sh -c '%s' >'%s/out' "
             "2>'%s/err'", tmp, env, cmd, tmp, tmp);
    status = system(line);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static char out_plain[1 << 20], out_shim[1 << 20], err[1 << 16];

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void read_out(char *buf)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/out", tmp);
    slurp(path, buf, sizeof(out_plain));
    snprintf(path, sizeof(path), "%s/err", tmp);
    slurp(path, err, sizeof(err));
}

/* Run the shell command line made from fmt; its status, with its output
 * read into out_shim and err. */
__attribute__((format(printf, 1, 2))) static int shell(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    status = run("", cmd);
    read_out(out_shim);
    return status;
}

/* cmd prints the same, and exits the same, with and without the shim
 * (and extra in the environment); the shim's run says nothing on
 * stderr. */
static void same_with_shim(const char *extra, const char *cmd)
{
    char env[1024];
    int plain, shim;

    plain = run("", cmd);
    read_out(out_plain);
    snprintf(env, sizeof(env), "LD_PRELOAD=%s %s", PRELOAD, extra);
    shim = run(env, cmd);
    read_out(out_shim);
    if (strcmp(out_plain, out_shim) != 0 || plain != shim)
        fail_msg("'%s': %d vs %d\n--- plain:\n%.2000s\n--- shim:\n%.2000s\n"
                 "--- stderr:\n%s", cmd, plain, shim, out_plain, out_shim,
                 err);
    assert_int_equal(plain, 0);
}

/* The library exports the malloc family, glibc's statistics functions,
 * C++'s operator new and delete, _exit and _Exit, and nothing else. */
static void test_exports(void **state)
{
    char cmd[512];
    const char *want = "_Exit _ZdaPv _ZdaPvm _ZdlPv _ZdlPvm _Znam _Znwm "
                       "__libc_calloc __libc_free __libc_malloc "
                       "__libc_memalign __libc_pvalloc __libc_realloc "
                       "__libc_valloc _exit aligned_alloc calloc free "
                       "mallinfo mallinfo2 malloc malloc_info malloc_stats "
                       "malloc_trim malloc_usable_size memalign "
                       "posix_memalign pvalloc realloc reallocarray valloc ";

    snprintf(cmd, sizeof(cmd), "nm -D --defined-only %s | awk \"{print "
             "\\$3}\" | sort | tr \"\\n\" \" \"", PRELOAD);
    assert_int_equal(run("", cmd), 0);
    read_out(out_plain);
    assert_string_equal(out_plain, want);
}

static void test_stress(void **state)
{
    same_with_shim("", STRESS);
    assert_non_null(strstr(out_shim, "errors: 0\n"));
    assert_non_null(strstr(out_shim, "fork child: ok\n"));
}

static void write_sql(void)
{
    char path[300];
    FILE *f;

    snprintf(path, sizeof(path), "%s/script.sql", tmp);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("create table t(id integer primary key, name text, grp integer, "
          "val real);\n"
          "with recursive c(x) as (select 1 union all select x+1 from c "
          "where x < 100000) insert into t select x, 'name' || x || "
          "substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26), x % 97, "
          "x * 1.5 from c;\n"
          "create index t_grp on t(grp);\n"
          "select count(*), sum(val), max(length(name)) from t;\n"
          "select grp, count(*), sum(id) from t group by grp order by grp;\n"
          "select length(group_concat(name)) from t where grp < 10;\n"
          "delete from t where id % 3 = 0;\n"
          "select count(*), sum(grp) from t;\n"
          "select name from t where grp = 42 order by id desc limit 3;\n"
          "vacuum;\n"
          "select count(*) from t where name like '%7%';\n", f);
    fclose(f);
}

/* The main thread leaves by pthread_exit: the process still ends when its
 * last thread does, with its exit handlers (the purger kept it alive, with
 * every signal blocked: only SIGKILL ended it). */
static void test_main_exits(void **state)
{
    same_with_shim("", "timeout -s KILL 60 " STRESS " --main-exits");
    assert_non_null(strstr(out_shim, "errors: 0\nexit handlers: ran\n"));
}

static void test_sqlite(void **state)
{
    if (system("command -v sqlite3 >/dev/null") != 0)
        skip();
    write_sql();
    same_with_shim("", "sqlite3 :memory: < script.sql");
    assert_non_null(strstr(out_shim, "100000|7500075000.0|35\n"));
    same_with_shim("OBJMEM_ALLOCATOR=debug",
                   "sqlite3 :memory: < script.sql");
}

static void test_git(void **state)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "git -C %s log -p -n 60 --stat | cksum; "
             "git -C %s rev-list --all --objects | wc -l", SRC_DIR, SRC_DIR);
    if (run("", "git -C " SRC_DIR " rev-parse HEAD") != 0)
        skip();                 /* not a git checkout */
    same_with_shim("", cmd);
}

/* CPython's own tests, every domain on the shim (PYTHONMALLOC=malloc). */
static void test_python(void **state)
{
    if (PYTHON[0] == '\0')
        skip();
    same_with_shim("PYTHONMALLOC=malloc", PYTHON " -m test -q test_dict "
                   "test_list test_json test_weakref test_gc 2>&1 | "
                   "grep -E \"^(Total tests|Result)\"");
    assert_non_null(strstr(out_shim, "Result: SUCCESS"));
}

/* show_stats: the report goes to a file named with the pid, and the
 * program's stderr stays empty.  The program's fork child, which leaves
 * by _exit, writes one too (the shim's _exit). */
static void test_report_file(void **state)
{
    char cmd[512], path[512], report[1 << 16], env[512];
    DIR *d;
    struct dirent *e;
    int found = 0;
    long pids[2][2];            /* pid, ppid of each stress_malloc report */

    snprintf(env, sizeof(env), "LD_PRELOAD=%s OBJMEM_SHOW_STATS=1", PRELOAD);
    snprintf(cmd, sizeof(cmd), "%s", STRESS);
    assert_int_equal(run(env, cmd), 0);
    read_out(out_shim);
    assert_string_equal(err, "");
    d = opendir(tmp);
    assert_non_null(d);
    /* objmem.<pid>.stats, of the program (the shell, sh -c, made one
     * too: every process on the shim writes its own). */
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "objmem.", 7) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmp, e->d_name);
        slurp(path, report, sizeof(report));
        assert_non_null(strstr(report, "# objmem report 1\n"));
        if (strstr(report, "stress_malloc\n")) {
            char pid[64], *at = strstr(report, "\npeak_rss: ");
            unsigned long long peak = 0, final = 0;

            snprintf(pid, sizeof(pid), "\npid: %.*s\n",
                     (int)(strlen(e->d_name) - 13), e->d_name + 7);
            assert_non_null(strstr(report, pid));
            assert_true(found < 2);
            assert_int_equal(sscanf(strstr(report, pid), "\npid: %ld\n"
                                    "ppid: %ld", &pids[found][0],
                                    &pids[found][1]), 2);
            assert_non_null(at);
            assert_int_equal(sscanf(at, "\npeak_rss: %llu\nfinal_rss: %llu",
                                    &peak, &final), 2);
            /* the peak is never below what is resident at the end */
            assert_true(final > 0 && peak >= final);
            assert_non_null(strstr(report, "Small block threshold"));
            assert_null(strstr(report, "do not balance"));
            found++;
        }
    }
    closedir(d);
    assert_int_equal(found, 2);
    /* one is the other's child */
    assert_true(pids[0][1] == pids[1][0] || pids[1][1] == pids[0][0]);
}

static void test_report_output_option(void **state)
{
    char env[1024], path[512], report[1 << 16];

    snprintf(env, sizeof(env), "LD_PRELOAD=%s OBJMEM_CONF=show_stats:1,"
             "output:%s/r.%%e.txt", PRELOAD, tmp);
    assert_int_equal(run(env, "exec " VICTIM), 0);
    read_out(out_shim);
    assert_string_equal(err, "");
    snprintf(path, sizeof(path), "%s/r.preload_victim.txt", tmp);
    assert_true(slurp(path, report, sizeof(report)) > 0);
    assert_non_null(strstr(report, "program: "));
    /* output:stderr is the one way onto the program's stderr. */
    snprintf(env, sizeof(env), "LD_PRELOAD=%s OBJMEM_SHOW_STATS=yes "
             "OBJMEM_OUTPUT=stderr", PRELOAD);
    assert_int_equal(run(env, "exec " VICTIM), 0);
    read_out(out_shim);
    assert_non_null(strstr(err, "# objmem report 1\n"));
}

static void test_verbose_and_conf(void **state)
{
    char env[512];

    snprintf(env, sizeof(env), "LD_PRELOAD=%s OBJMEM_VERBOSE=on "
             "OBJMEM_CONF=purge_delay:5,nosuchkey:1,show_stats:maybe "
             "OBJMEM_PURGE_DELAY=7", PRELOAD);
    assert_int_equal(run(env, "exec " VICTIM), 0);
    read_out(out_shim);
    assert_non_null(strstr(err, "objmem: purge_delay = 7 "
                                "(OBJMEM_PURGE_DELAY)\n"));
    assert_non_null(strstr(err, "objmem: show_stats = 0 (default)\n"));
    assert_non_null(strstr(err, "unknown key nosuchkey"));
    assert_non_null(strstr(err, "bad value for show_stats"));
}

static void test_children(void **state)
{
    char env[512];

    snprintf(env, sizeof(env), "LD_PRELOAD=%s", PRELOAD);
    assert_int_equal(run(env, "echo \"[$LD_PRELOAD]\""), 0);
    read_out(out_shim);
    assert_non_null(strstr(out_shim, "libobjmem-preload.so]"));
    snprintf(env, sizeof(env), "LD_PRELOAD=%s OBJMEM_CHILDREN=0", PRELOAD);
    assert_int_equal(run(env, "echo \"[$LD_PRELOAD]\""), 0);
    read_out(out_shim);
    assert_string_equal(out_shim, "[]\n");
}

/* OBJMEM_ALLOCATOR=debug: CPython's debug hooks on every block. */
/* With allocator a (debug or malloc_debug) the victim runs clean, and
 * its overflow is caught. */
static void overflow_caught(const char *a)
{
    char env[512];

    snprintf(env, sizeof(env), "LD_PRELOAD=%s OBJMEM_ALLOCATOR=%s",
             PRELOAD, a);
    assert_int_equal(run(env, "exec " VICTIM), 0);
    assert_int_not_equal(run(env, "exec " VICTIM " overflow"), 0);
    read_out(out_shim);
    assert_non_null(strstr(err, "bad trailing pad byte"));
}

static void test_debug_catches_overflow(void **state)
{
    char env[512];

    overflow_caught("debug");
    /* Without the debug allocator the overflow goes unseen. */
    snprintf(env, sizeof(env), "LD_PRELOAD=%s", PRELOAD);
    assert_int_equal(run(env, "exec " VICTIM " overflow"), 0);
}

/* allocator=malloc: objmem steps aside, every block is the C library's
 * (the stress program's threads, cross-thread frees and fork included;
 * its report counts nothing of objmem's); malloc_debug: the debug hooks
 * over the C library's malloc catch the victim's overflow. */
static void test_allocator_malloc(void **state)
{
    char env[1024], path[512], report[1 << 16];

    snprintf(env, sizeof(env), "LD_PRELOAD=%s OBJMEM_ALLOCATOR=malloc "
             "OBJMEM_SHOW_STATS=1 OBJMEM_OUTPUT=%s/libc.%%e.stats",
             PRELOAD, tmp);
    assert_int_equal(run(env, "exec " STRESS), 0);
    snprintf(path, sizeof(path), "%s/libc.stress_malloc.stats", tmp);
    slurp(path, report, sizeof(report));
    assert_non_null(strstr(report, "\nallocator: malloc\n"));
    assert_non_null(strstr(report, "\nblocks_in_use: 0\n"));
    assert_non_null(strstr(report, "\nlarge_maps_total: 0\n"));
    assert_non_null(strstr(report, "\narenas_total: 0\n"));
    unlink(path);
    overflow_caught("malloc_debug");
}

/* ---- glibc's statistics functions: objmem's figures ---- */

/* The figure on the line "name value" of out_shim. */
static size_t child_figure(const char *name)
{
    char key[128];
    const char *p;

    snprintf(key, sizeof(key), "\n%s ", name);
    if (strncmp(out_shim, key + 1, strlen(key + 1)) == 0)
        p = out_shim + strlen(key + 1);
    else if ((p = strstr(out_shim, key)))
        p += strlen(key);
    else
        fail_msg("no figure %s in:\n%.3000s", name, out_shim);
    return strtoull(p, NULL, 10);
}

/* The text mallinfo_child printed between "--- what\n" and "--- end\n",
 * into buf. */
static void child_text(const char *what, char *buf, size_t size)
{
    char mark[64];
    const char *p, *end;

    snprintf(mark, sizeof(mark), "--- %s\n", what);
    p = strstr(out_shim, mark);
    assert_non_null(p);
    p += strlen(mark);
    end = strstr(p, "--- end\n");
    assert_non_null(end);
    assert_true((size_t)(end - p) < size);
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = '\0';
}

/* mallinfo2 before and after 1000 mallocs of 100 bytes (class 112) and a
 * 1 MiB one; mallinfo; keepcost after malloc_trim(0). */
static void check_mallinfo2(void)
{
    size_t usable = child_figure("usable"), big = child_figure("big_usable");
    const char *names[] = { "a", "b", "c", "d", "e", "t" };
    char key[32], key2[32], key3[32];

    assert_int_equal(usable, 112);
    for (size_t i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "%s.uordblks", names[i]);
        snprintf(key2, sizeof(key2), "%s.fordblks", names[i]);
        snprintf(key3, sizeof(key3), "%s.arena", names[i]);
        assert_int_equal(child_figure(key) + child_figure(key2),
                         child_figure(key3));
    }
    assert_int_equal(child_figure("b.uordblks") - child_figure("a.uordblks"),
                     1000 * 112);
    assert_int_equal(child_figure("c.uordblks"), child_figure("a.uordblks"));
    /* The 1 MiB block: one mapping more, of its usable (mapped) size. */
    assert_true(big >= (1 << 20) && big % 4096 == 0);
    assert_int_equal(child_figure("d.hblks"), child_figure("c.hblks") + 1);
    assert_int_equal(child_figure("d.hblkhd") - child_figure("c.hblkhd"),
                     big);
    assert_int_equal(child_figure("e.hblks"), child_figure("c.hblks"));
    assert_int_equal(child_figure("e.hblkhd"), child_figure("c.hblkhd"));
    assert_int_equal(child_figure("mallinfo_agrees"), 1);
    assert_true(child_figure("e.keepcost") >= big);     /* cached */
    assert_int_equal(child_figure("t.keepcost"), 0);
}

/* malloc_stats: glibc's lines, "in use bytes" uordblks in Arena 0 and
 * uordblks + hblkhd in the total, as glibc's. */
static void check_malloc_stats(void)
{
    char text[4096], want[4096];
    size_t arena = child_figure("stats.arena");
    size_t in_use = child_figure("stats.uordblks");
    size_t hblkhd = child_figure("stats.hblkhd");
    size_t regions = child_figure("stats.max_regions");
    size_t max_bytes = child_figure("stats.max_bytes");

    assert_true(hblkhd >= 1 << 20);
    assert_int_equal(child_figure("stats.arena_in_use"), in_use);
    assert_int_equal(child_figure("stats.total_in_use"), in_use + hblkhd);
    assert_true(regions >= 1 && max_bytes >= hblkhd);
    child_text("stats", text, sizeof(text));
    snprintf(want, sizeof(want), "Arena 0:\n"
             "system bytes     = %10zu\nin use bytes     = %10zu\n"
             "Total (incl. mmap):\n"
             "system bytes     = %10zu\nin use bytes     = %10zu\n"
             "max mmap regions = %10zu\nmax mmap bytes   = %10zu\n",
             arena, in_use, arena + hblkhd, in_use + hblkhd, regions,
             max_bytes);
    assert_string_equal(text, want);
}

/* malloc_info: glibc's XML, whose mmap total is hblks and hblkhd; a
 * non-zero options is refused. */
static void check_malloc_info(void)
{
    static char xml[1 << 16];
    const char *head = "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n";
    size_t n;

    assert_int_equal(child_figure("info.rc"), 0);
    assert_true(child_figure("info.hblks") >= 1);
    assert_int_equal(child_figure("info.mmap_count"),
                     child_figure("info.hblks"));
    assert_int_equal(child_figure("info.mmap_size"),
                     child_figure("info.hblkhd"));
    assert_int_equal((int)child_figure("info.bad_rc"), -1);
    assert_int_equal(child_figure("info.bad_errno"), EINVAL);
    child_text("info", xml, sizeof(xml));
    n = strlen(xml);
    assert_memory_equal(xml, head, strlen(head));
    assert_true(n > 10);
    assert_string_equal(xml + n - 10, "</malloc>\n");
    assert_non_null(strstr(xml, "</sizes>\n<total type=\"fast\" count=\"0\" "
                                "size=\"0\"/>\n<total type=\"rest\" "));
    assert_non_null(strstr(xml, "\n<system type=\"max\" size=\""));
    assert_non_null(strstr(xml, "\n<aspace type=\"mprotect\" size=\""));
}

/* mallinfo2, mallinfo, malloc_stats and malloc_info report objmem's
 * figures under the shim (mallinfo_child prints them). */
static void test_mallinfo(void **state)
{
    char env[512];

    snprintf(env, sizeof(env), "LD_PRELOAD=%s", PRELOAD);
    assert_int_equal(run(env, "exec " MALLINFO_CHILD), 0);
    read_out(out_shim);
    check_mallinfo2();
    check_malloc_stats();
    check_malloc_info();
}

/* allocator=malloc: the four are the C library's, whose uordblks counts
 * its own chunks (at least the 100 bytes asked for, each). */
static void test_mallinfo_libc(void **state)
{
    char env[512];

    snprintf(env, sizeof(env), "LD_PRELOAD=%s OBJMEM_ALLOCATOR=malloc",
             PRELOAD);
    assert_int_equal(run(env, "exec " MALLINFO_CHILD " libc"), 0);
    read_out(out_shim);
    assert_true(child_figure("libc.rise") >= 1000 * 100);
}

/* A program that locks all its memory under the default RLIMIT_MEMLOCK
 * (8 MiB, as a user without CAP_IPC_LOCK has) gets its lock under the
 * shim as under glibc: the shim adds little to the process's virtual
 * size (a flat arena map of 32 MiB had made mlockall fail with ENOMEM). */
static void test_mlockall(void **state)
{
    const char *cmd = "setpriv --bounding-set -ipc_lock prlimit "
                      "--memlock=8388608:8388608 " VICTIM " mlockall";

    if (run("", cmd) != 0) {
        read_out(out_plain);
        print_message("cannot drop CAP_IPC_LOCK here: %s%s\n", out_plain, err);
        skip();
    }
    same_with_shim("", cmd);
    assert_string_equal(out_shim, "mlockall: ok\n");
}

/* ---- The objmem command ---- */

/* A program that leaves by _exit or _Exit, which run no exit handlers,
 * still has its report (the shim's _exit writes it first); one that does
 * so with its signals blocked (maybe in a signal handler) has none, and
 * a child of vfork, which shares its parent's memory, writes nothing. */
static void test_tool_run_exit(void **state)
{
    static const char *const how[] = { "exit", "Exit" };
    char cmd[1024];

    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof(cmd), "%s run -- %s %s 7", TOOL, VICTIM,
                 how[i]);
        assert_int_equal(run("", cmd), 7);
        read_out(out_shim);
        assert_non_null(strstr(err, "objmem: " VICTIM " (pid "));
        assert_non_null(strstr(err, "  in use at exit    "));
        assert_null(strstr(err, "left no report"));
    }
    snprintf(cmd, sizeof(cmd), "%s run -- %s blocked 5", TOOL, VICTIM);
    assert_int_equal(run("", cmd), 5);
    read_out(out_shim);
    assert_non_null(strstr(err, ") left no report: it ended without "
                                "running its exit handlers"));
    snprintf(cmd, sizeof(cmd), "%s run -- %s vfork", TOOL, VICTIM);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_string_equal(out_shim, "child: 9\n");
    assert_non_null(strstr(err, "objmem: " VICTIM " (pid "));
    assert_null(strstr(err, "more process"));
    assert_null(strstr(err, "processes it started"));
}

/* A traced program that SIGTERM, SIGINT or SIGHUP would end writes the
 * capture and the report its exit would have (the ticker does, then it
 * dies by the signal); SIGUSR1, which has no handler of ours, ends it
 * without either. */
static void test_trace_fatal_signal(void **state)
{
    static const char *const sig[] = { "TERM", "HUP", "INT", "USR1" };
    static const int status[] = { 143, 129, 130, 138 };
    char cmd[1024], want[64];

    /* sh starts a background job with SIGINT ignored, and tracing puts
     * its handler over the default action only: env gives it back. */
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof(cmd), "rm -f sig.trace sig.report w.out; "
                 "OBJMEM_TRACE=2 OBJMEM_TRACE_FILE=sig.trace "
                 "OBJMEM_SHOW_STATS=1 OBJMEM_OUTPUT=sig.report LD_PRELOAD=%s "
                 "env --default-signal=INT %s wait > w.out & until grep -q "
                 "ready w.out; do sleep 0.05; done; kill -%s $!; wait $!; "
                 "echo status $?; "
                 "grep -c \"^pid: $!$\" sig.report; ls sig.trace; "
                 "%s top sig.trace --limit 1; true", PRELOAD, VICTIM, sig[i],
                 TOOL);
        assert_int_equal(run("", cmd), 0);
        read_out(out_shim);
        /* The capture, then the report (om_set_exit_writer's), then death
         * by the signal; nothing for a signal not handled. */
        snprintf(want, sizeof(want), "status %d\n%s", status[i],
                 i < 3 ? "1\nsig.trace\n# objmem top: sig.trace: " : "");
        assert_true(starts_with(out_shim, want));
        if (i == 3)
            assert_null(strstr(out_shim, "# objmem top"));
    }
}

/* objmem run: the program's output and exit status, a summary on
 * stderr. */
static void test_tool_run(void **state)
{
    char cmd[1024];

    write_sql();
    snprintf(cmd, sizeof(cmd), "%s run -- sqlite3 :memory: < script.sql",
             TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(out_shim, "100000|7500075000.0|35\n"));
    assert_non_null(strstr(err, "objmem: /usr/bin/sqlite3 (pid "));
    assert_non_null(strstr(err, "  peak RSS "));
    assert_non_null(strstr(err, "  given back "));
    assert_null(strstr(err, "class   size"));
    /* The exit status is the program's; --stats adds the class table;
     * --output keeps the report, and objmem stats reads it back. */
    snprintf(cmd, sizeof(cmd), "%s run --stats --output %s/kept.%%p -- "
             "%s overflow; echo status $?", TOOL, tmp, VICTIM);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_string_equal(out_shim, "status 0\n");
    assert_non_null(strstr(err, "class   size   num pools"));
    snprintf(cmd, sizeof(cmd), "%s stats --json %s/kept.*", TOOL, tmp);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(out_shim, "{\"program\": \""));
    assert_non_null(strstr(out_shim, "\"peak_rss\": "));
    snprintf(cmd, sizeof(cmd), "%s run -- sh -c \"kill -USR1 \\$\\$\"; "
             "echo status $?", TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_string_equal(out_shim, "status 138\n");
    /* The processes it started: how many, and the one with the highest
     * peak; when it leaves no report itself (killed here), the summary is
     * that one's. */
    snprintf(cmd, sizeof(cmd), "%s run -- bash -c \"true; sqlite3 "
             ":memory: < script.sql; echo done\"", TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(err, "objmem: /usr/bin/bash (pid "));
    assert_non_null(strstr(err, "\n  1 more process ran on objmem\n"
                                "  the largest: /usr/bin/sqlite3 (pid "));
    snprintf(cmd, sizeof(cmd), "%s run -- sh -c \"sqlite3 :memory: < "
             "script.sql; %s overflow; kill -KILL \\$\\$\"", TOOL, VICTIM);
    assert_int_equal(run("", cmd), 137);
    read_out(out_shim);
    assert_non_null(strstr(err, "objmem: sh (pid "));
    assert_non_null(strstr(err, ") left no report: signal 9 (Killed) ended "
                                "it before its exit handlers\n"));
    assert_non_null(strstr(err, "objmem: 2 processes it started ran on "
                                "objmem; the largest:\n\nobjmem: "
                                "/usr/bin/sqlite3 (pid "));
    assert_non_null(strstr(err, "  peak RSS "));
}

static void write_py(const char *name, const char *text);

/* A service under `objmem run --trace=4` (with --follow-fork when
 * forks): the signals sent to run reach it, SIGUSR2 for a capture
 * meanwhile, SIGTERM 0.3 s later to stop it; its summary follows.  It
 * moved to /, but its captures are written where it started. */
static void serve_traced(bool forks)
{
    assert_int_equal(shell(
             "rm -f objmem.serve_victim.* srv.out; %s run --trace=4%s -- %s "
             "> srv.out & p=$!; i=0; until grep -q ready srv.out; do "
             "i=$((i+1)); [ $i -gt 3000 ] && exit 9; sleep 0.01; done; "
             "kill -USR2 $p; "
             "until ls objmem.serve_victim.*.trace.1 > cap1 2>/dev/null; do "
             "i=$((i+1)); [ $i -gt 3000 ] && exit 8; sleep 0.01; done; "
             "sleep 0.3; kill -TERM $p; wait $p; echo status $?; cat srv.out; "
             "ls objmem.serve_victim.*", TOOL, forks ? " --follow-fork" : "",
             SERVE_VICTIM), 0);
}

/* The capture of process pid, as `objmem top` reads it, into out_shim. */
static void serve_top(const char *name)
{
    assert_int_equal(shell("%s top %s --limit 3", TOOL, name), 0);
}

static void test_tool_run_service(void **state)
{
    char master[64], worker[64], *p;
    long pid_master = 0, pid_worker = 0;

    serve_traced(true);
    assert_non_null(strstr(out_shim, "status 0\nready\nstopped\n"));
    p = strstr(err, "objmem: " SERVE_VICTIM " (pid ");
    assert_non_null(p);
    pid_master = strtol(p + strlen("objmem: " SERVE_VICTIM " (pid "), NULL,
                        10);
    assert_non_null(strstr(err, "\n  1 more process ran on objmem\n"));
    snprintf(master, sizeof(master), "objmem.serve_victim.%ld.trace",
             pid_master);
    p = strstr(err, "  1 more capture, of the processes it started: "
                    "objmem.serve_victim.");
    assert_non_null(p);
    pid_worker = strtol(p + strlen("  1 more capture, of the processes it "
                                   "started: objmem.serve_victim."), NULL,
                        10);
    assert_true(pid_worker > 0 && pid_worker != pid_master);
    snprintf(worker, sizeof(worker), "objmem.serve_victim.%ld.trace",
             pid_worker);
    assert_non_null(strstr(err, "  capture in "));
    assert_non_null(strstr(err, master));
    /* Both captures and the SIGUSR2 one, in the directory it started in. */
    assert_non_null(strstr(out_shim, master));
    assert_non_null(strstr(out_shim, worker));
    assert_non_null(strstr(out_shim, ".trace.1\n"));
    /* The worker holds its blocks and the master's it inherited. */
    serve_top(worker);
    assert_non_null(strstr(out_shim, " in worker_block\n    58.6 KiB in 20 "
                                     "blocks"));
    assert_non_null(strstr(out_shim, " in master_block\n    9.8 KiB in 10 "
                                     "blocks"));
    serve_top(master);
    assert_non_null(strstr(out_shim, " in master_block\n    9.8 KiB in 10 "
                                     "blocks"));
    assert_null(strstr(out_shim, "worker_block"));
    /* The worker's timeline goes on after the fork: its last 0.25 s (of
     * 0.3 at least, long after the fork), 16 ticks, hold 5 points or more
     * (the ticker started in the worker). */
    write_py("late.py", "import json, sys\n"
             "p = json.load(sys.stdin)['points']\n"
             "n = sum(1 for x in p if x[0] > p[-1][0] - 250)\n"
             "print('late points', n >= 5, n)\n");
    assert_int_equal(shell("%s timeline %s --json | python3 late.py", TOOL,
                           worker), 0);
    assert_true(starts_with(out_shim, "late points True "));
    /* Without --follow-fork, the master's capture alone. */
    serve_traced(false);
    assert_non_null(strstr(out_shim, "status 0\nready\nstopped\n"));
    assert_null(strstr(err, "more capture"));
    assert_non_null(strstr(err, "  capture in objmem.serve_victim."));
    p = out_shim;
    for (int n = 0; n < 3; n++) {       /* status, ready, stopped */
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    /* objmem.serve_victim.M.trace and its .1, nothing else. */
    assert_non_null(strstr(p, ".trace\nobjmem.serve_victim."));
    assert_non_null(strstr(p, ".trace.1\n"));
    assert_null(strchr(strstr(p, ".trace.1\n") + 9, '\n'));
    assert_int_equal(strncmp(p, "objmem.serve_victim.", 20), 0);
}

/* An idle service (no allocation after it is ready) still answers
 * SIGUSR2: tracing's ticker writes the capture within a tick, and the
 * one at exit follows. */
static void test_tool_run_idle_service(void **state)
{
    assert_int_equal(shell(
             "rm -f objmem.serve_victim.* srv.out; %s run --trace=4 -- %s idle "
             "> srv.out & p=$!; i=0; until grep -q ready srv.out; do "
             "i=$((i+1)); [ $i -gt 3000 ] && exit 9; sleep 0.01; done; "
             "kill -USR2 $p; i=0; "
             "until ls objmem.serve_victim.*.trace.1 > cap1 2>/dev/null; do "
             "i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.01; done; "
             "kill -TERM $p; wait $p; echo status $?; %s top "
             "objmem.serve_victim.*.trace.1 --limit 1",
             TOOL, SERVE_VICTIM, TOOL), 0);
    assert_true(starts_with(out_shim, "status 0\n# objmem top: "
                                      "objmem.serve_victim."));
    assert_non_null(strstr(out_shim, " in master_block\n    9.8 KiB in 10 "
                                     "blocks"));
    assert_non_null(strstr(err, "  capture in objmem.serve_victim."));
}

/* A signal ends a program before its exit handlers: run says which. A
 * program started by another name (a link) is named as started, with its
 * file; a relative report name is taken from where it started. */
static void test_tool_run_names(void **state)
{
    assert_int_equal(shell("%s run -- sleep 10 & p=$!; sleep 0.3; kill -TERM "
                           "$p; wait $p; echo status $?", TOOL), 0);
    assert_string_equal(out_shim, "status 143\n");
    assert_non_null(strstr(err, ") left no report: signal 15 (Terminated) "
                                "ended it before its exit handlers (with "
                                "--trace, SIGTERM, SIGINT and SIGHUP leave "
                                "one)\n  peak RSS "));
    assert_non_null(strstr(err, " (the kernel's count)\n"));
    /* Traced, the program writes its report (and capture) first. */
    assert_int_equal(shell("rm -f objmem.preload_victim.* rw.out; %s run "
                           "--trace=2 -- %s wait > rw.out & p=$!; until grep "
                           "-q ready rw.out; do sleep 0.05; done; kill -TERM "
                           "$p; wait $p; echo status $?; ls "
                           "objmem.preload_victim.* | wc -l; rm -f "
                           "objmem.preload_victim.*", TOOL, VICTIM), 0);
    assert_string_equal(out_shim, "status 143\n1\n");
    assert_non_null(strstr(err, "\n  peak RSS "));
    assert_non_null(strstr(err, "\n  killed by signal 15\n"));
    assert_null(strstr(err, "left no report"));
    assert_int_equal(shell("ln -sf %s alias-victim && %s run -- "
                           "./alias-victim", TRACE_VICTIM, TOOL), 0);
    assert_non_null(strstr(err, "objmem: alias-victim (" TRACE_VICTIM
                                ", pid "));
    /* serve_victim moves to / and forks: both reports come here. */
    assert_int_equal(shell("rm -f srv.out rep.*; ln -sf %s alias-server && "
                           "OBJMEM_SHOW_STATS=1 OBJMEM_OUTPUT=rep.%%e.%%p "
                           "LD_PRELOAD=%s ./alias-server > srv.out & p=$!; "
                           "i=0; until grep -q ready srv.out; do i=$((i+1)); "
                           "[ $i -gt 3000 ] && exit 9; sleep 0.01; done; kill "
                           "-TERM $p; wait $p; echo status $?; ls rep.* | wc "
                           "-l; head -3 rep.alias-server.$p", SERVE_VICTIM,
                           PRELOAD), 0);
    assert_non_null(strstr(out_shim, "status 0\n2\n# objmem report 1\n"
                                     "program: " SERVE_VICTIM "\nname: "
                                     "alias-server\n"));
    /* A name without %p is the first process's; its fork adds .PID. */
    assert_int_equal(shell("rm -rf named srv.out; mkdir named; "
                           "OBJMEM_SHOW_STATS=1 OBJMEM_OUTPUT=named/rep "
                           "LD_PRELOAD=%s %s > srv.out & p=$!; i=0; until "
                           "grep -q ready srv.out; do i=$((i+1)); [ $i -gt "
                           "3000 ] && exit 9; sleep 0.01; done; kill -TERM $p; "
                           "wait $p; ls named | wc -l; grep -c \"^pid: $p$\" "
                           "named/rep; ls named/rep.* | grep -c -v "
                           "\"rep.$p$\"", PRELOAD, SERVE_VICTIM), 0);
    assert_string_equal(out_shim, "2\n1\n1\n");
}

/* run --output NAME into a directory that holds an earlier run's
 * reports: the summary counts this run's processes only, the program
 * keeps NAME and the processes it started write NAME.PID. */
static void test_tool_run_output(void **state)
{
    write_sql();
    for (int k = 1; k <= 2; k++) {
        assert_int_equal(shell("%s%s run --output runs/rep -- bash -c "
                               "\"true; sqlite3 :memory: < script.sql > "
                               "/dev/null; echo done\"; ls runs | wc -l",
                               k == 1 ? "rm -rf runs; mkdir runs; " : "",
                               TOOL), 0);
        assert_non_null(strstr(err, "objmem: /usr/bin/bash (pid "));
        assert_non_null(strstr(err, "\n  1 more process ran on objmem, "
                                    "reports in runs\n  the largest: "
                                    "/usr/bin/sqlite3 (pid "));
    }
    assert_string_equal(out_shim, "done\n3\n");
    assert_int_equal(shell("p=$(sed -n \"s/^pid: //p\" runs/rep); grep -c "
                           "\"^run: $p\\.\" runs/rep; grep -l \"^ppid: $p$\" "
                           "runs/rep.* | wc -l"), 0);
    assert_string_equal(out_shim, "1\n1\n");
}

/* Run the objmem command with args (env prepended); its status, with its
 * output read into out_shim and err. */
static int tool(const char *env, const char *args)
{
    char cmd[2048];
    int status;

    snprintf(cmd, sizeof(cmd), "%s %s", TOOL, args);
    status = run(env, cmd);
    read_out(out_shim);
    return status;
}

/* Errors: one clear line and a non-zero status. */
static void test_tool_errors(void **state)
{
    char line[1024], text[1024];

    assert_int_equal(tool("", "run -- /no/such/program"), 127);
    assert_string_equal(err, "objmem: cannot run '/no/such/program': No "
                             "such file or directory\n");
    /* A program the shim cannot reach says why, and keeps its status;
     * the kernel's peak RSS follows. */
    snprintf(line, sizeof(line), "run -- %s", STATIC_VICTIM);
    assert_int_equal(tool("", line), 0);
    snprintf(text, sizeof(text), "objmem: %s is linked statically: the "
             "shim cannot reach its malloc\n  peak RSS ", STATIC_VICTIM);
    assert_true(starts_with(err, text));
    assert_non_null(strstr(err, " (the kernel's count)\n"));
    if (geteuid() == 0) {
        /* Set-user-ID for nobody: the loader ignores LD_PRELOAD. */
        snprintf(line, sizeof(line), "cp /bin/true %s/suid && chown 65534 "
                 "%s/suid && chmod 4755 %s/suid", tmp, tmp, tmp);
        assert_int_equal(system(line), 0);
        snprintf(line, sizeof(line), "run -- %s/suid", tmp);
        assert_int_equal(tool("", line), 0);
        snprintf(text, sizeof(text), "objmem: %s/suid runs set-user-ID or "
                 "set-group-ID (the loader ignores LD_PRELOAD there): the "
                 "shim cannot reach its malloc\n  peak RSS ", tmp);
        assert_true(starts_with(err, text));
    }
    assert_int_equal(tool("", "stats /etc/hostname"), 1);
    assert_string_equal(err, "objmem: /etc/hostname: not an objmem "
                             "report\n");
    assert_int_equal(tool("", "stats /no/such/file"), 1);
    assert_string_equal(err, "objmem: /no/such/file: No such file or "
                             "directory\n");
    assert_int_equal(tool("", "frobnicate"), 2);
    assert_non_null(strstr(err, "objmem: unknown verb 'frobnicate'\n"));
    assert_int_equal(tool("", "--help"), 0);
    assert_non_null(strstr(out_shim, "usage: objmem VERB"));
    /* A verb's own usage: objmem VERB --help, or objmem help VERB. */
    assert_int_equal(tool("", "top --help"), 0);
    assert_int_equal(strncmp(out_shim, "usage: objmem top FILE [--by ", 29),
                     0);
    assert_non_null(strstr(out_shim, "\nfilters, for top, "));
    assert_non_null(strstr(out_shim, "\n        --include PAT[:LINE] "));
    assert_null(strstr(out_shim, "objmem leaks"));
    assert_int_equal(tool("", "help pins"), 0);
    assert_int_equal(strncmp(out_shim, "usage: objmem pins FILE ", 24), 0);
    assert_non_null(strstr(out_shim, "\nfilters, for top, leaks, peak, "
                                     "allocs, pins"));
    assert_int_equal(tool("", "help allocs"), 0);
    assert_int_equal(strncmp(out_shim, "usage: objmem allocs FILE ", 26), 0);
    assert_non_null(strstr(out_shim, "\n        --include PAT[:LINE] "));
    assert_int_equal(tool("", "help stats"), 0);
    assert_null(strstr(out_shim, "filters"));
    assert_int_equal(tool("", "version -h"), 0);
    assert_string_equal(out_shim, "usage: objmem version\n");
    assert_int_equal(tool("", "frobnicate --help"), 2);
    assert_string_equal(err, "objmem: unknown verb 'frobnicate'\n");
}

/* objmem config: each option, its value and where it came from. */
static void test_tool_config(void **state)
{
    assert_int_equal(tool("OBJMEM_CONF=purge_delay:40,output:x.%p "
                          "OBJMEM_OUTPUT=y.%p", "config"), 0);
    assert_non_null(strstr(out_shim, "purge_delay  40                 "
                                     "OBJMEM_CONF "));
    assert_non_null(strstr(out_shim, "output       y.%p               "
                                     "OBJMEM_OUTPUT "));
    assert_non_null(strstr(out_shim, "show_stats   0                  "
                                     "default "));
    assert_int_equal(tool("OBJMEM_VERBOSE=yes", "config --env"), 0);
    assert_non_null(strstr(out_shim, "OBJMEM_VERBOSE='yes'\n"));
}

/* ---- Tracing: captures and the verbs that read them ---- */

/* objmem run --trace: the capture at exit holds the leaks, by function,
 * and none of the freed blocks; top and leaks read it. */
static void test_trace_run(void **state)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "%s run --trace=3 -- %s && ls", TOOL,
             TRACE_VICTIM);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(err, "  capture in objmem.trace_victim."));
    assert_non_null(strstr(out_shim, "objmem.trace_victim."));
    snprintf(cmd, sizeof(cmd), "%s top --by lineno objmem.trace_victim.*",
             TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    /* 103 leaks, and perhaps the C library's own (stdio buffers). */
    assert_non_null(strstr(out_shim, "#1: "));
    assert_non_null(strstr(out_shim, " in victim_leak_big"));
    assert_non_null(strstr(out_shim, "    14.6 KiB in 3 blocks (average "
                                     "4.9 KiB)\n"));
    assert_non_null(strstr(out_shim, " in victim_leak_small"));
    assert_non_null(strstr(out_shim, "    3.9 KiB in 100 blocks (average "
                                     "40 B)\n"));
    snprintf(cmd, sizeof(cmd), "%s leaks objmem.trace_victim.* --limit 1",
             TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(out_shim, "# objmem leaks (live at exit): "));
    assert_non_null(strstr(out_shim, "#1: "));
    /* One frame: the shim's malloc notes its caller, no unwinding. */
    assert_int_equal(run("OBJMEM_TRACE=1 OBJMEM_TRACE_FILE=one LD_PRELOAD="
                         PRELOAD, "exec " TRACE_VICTIM), 0);
    assert_int_equal(tool("", "top one --limit 2"), 0);
    assert_non_null(strstr(out_shim, "\n#1: " VICTIM_SRC ":19 in "
                                     "victim_leak_big\n    14.6 KiB in 3 "
                                     "blocks"));
    assert_non_null(strstr(out_shim, "\n#2: " VICTIM_SRC ":29 in "
                                     "victim_leak_small\n    3.9 KiB in 100 "
                                     "blocks"));
    snprintf(cmd, sizeof(cmd), "%s leaks objmem.trace_victim.* --limit 1",
             TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    /* Function, file and line (libdw, when a snapshot is taken). */
    assert_non_null(strstr(out_shim, "#1: " VICTIM_SRC ":19 in "
                                     "victim_leak_big\n        "
                                     VICTIM_SRC ":43 in main\n"));
    assert_null(strstr(out_shim, "#2: "));
}

/* SIGUSR2 asks for a capture meanwhile (NAME.1), which the ticker writes
 * while the victim waits for it (the next traced allocation's path is
 * serve_victim's); diff compares two. */
static void test_trace_signal_and_diff(void **state)
{
    char cmd[1024];

    /* exec: the shell, traced too, would write its own at its exit */
    snprintf(cmd, sizeof(cmd), "exec %s signal", TRACE_VICTIM);
    assert_int_equal(run("OBJMEM_TRACE=2 OBJMEM_TRACE_FILE=cap LD_PRELOAD="
                         PRELOAD, cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s diff cap.1 cap --limit 2", TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(out_shim, "# objmem diff: cap.1 -> cap\n"));
    assert_non_null(strstr(out_shim, "#1: "));
    assert_non_null(strstr(out_shim, " in victim_leak_big"));
    assert_non_null(strstr(out_shim, "    14.6 KiB (+14.6 KiB), 3 blocks "
                                     "(+3)\n"));
    assert_non_null(strstr(out_shim, "    3.9 KiB (+3.9 KiB), 100 blocks "
                                     "(+100)\n"));
    /* Without exec, the shell writes its capture and report at exit
     * too: the victim's, first, keep the names; the shell finds them
     * written since it started, and adds .PID to its own. */
    snprintf(cmd, sizeof(cmd), "rm -f shared.*; OBJMEM_TRACE=2 "
             "OBJMEM_TRACE_FILE=shared.trace OBJMEM_SHOW_STATS=1 "
             "OBJMEM_OUTPUT=shared.report LD_PRELOAD=%s sh -c \"%s; echo "
             "\\$\\$ > shared.pid\"; ls shared.* | wc -l; s=$(cat "
             "shared.pid); ls shared.trace.$s shared.report.$s; grep ^name: "
             "shared.report; %s top shared.trace --limit 1", PRELOAD,
             TRACE_VICTIM, TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_true(starts_with(out_shim, "5\nshared.report."));
    assert_non_null(strstr(out_shim, "\nname: trace_victim\n"));
    assert_non_null(strstr(out_shim, " in victim_leak_big\n    14.6 KiB"));
    /* One process writing its report again keeps the name. */
    if (PYTHON[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -f again.*; OBJMEM_OUTPUT=again.r "
             "LD_PRELOAD=%s %s -c \"import ctypes; w = ctypes.CDLL(None)."
             "om_report_write; print(w(), w())\"; ls again.*", LIBOBJMEM,
             PYTHON);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_string_equal(out_shim, "0 0\nagain.r\n");
}

/* A C++ program's sites are its functions that call operator new (the
 * leading frames in operator new are left out), named as the source
 * spells them; the flame graph's frames too.  With one frame too: the
 * shim's operator new notes its caller.  Out of memory, the shim's new
 * calls the new-handler, then throws std::bad_alloc, as libstdc++'s. */
static void test_trace_cxx(void **state)
{
    static const char *const sites[] = {
        " in app::make_array(int)\n    19.5 KiB in 5 blocks (average 3.9 "
        "KiB)\n",
        " in app::make_node(int)\n    2.3 KiB in 50 blocks (average 48 B)\n",
    };

    for (int nframes = 1; nframes <= 4; nframes += 3) {
        assert_int_equal(shell("rm -f objmem.cxx_victim.*; %s run --trace=%d "
                               "-- %s && %s top objmem.cxx_victim.*.trace "
                               "--limit 3", TOOL, nframes, CXX_VICTIM, TOOL),
                         0);
        for (size_t i = 0; i < sizeof(sites) / sizeof(*sites); i++)
            assert_non_null(strstr(out_shim, sites[i]));
        assert_null(strstr(out_shim, "_Zn"));
        assert_null(strstr(out_shim, "operator new"));
    }
    assert_int_equal(shell("%s leaks objmem.cxx_victim.*.trace --limit 3",
                           TOOL), 0);
    assert_non_null(strstr(out_shim, " in app::make_array(int)\n        "));
    assert_non_null(strstr(out_shim, " in main\n"));
    assert_int_equal(shell("%s flamegraph objmem.cxx_victim.*.trace", TOOL),
                     0);
    assert_non_null(strstr(out_shim, ";app::make_node(int) ("));
    assert_null(strstr(out_shim, "_Zn"));
    same_with_shim("", CXX_VICTIM " oom");
    assert_string_equal(out_shim, "bad_alloc after 2 calls of the handler\n"
                                  "nothrow new: nullptr\n");
    same_with_shim("OBJMEM_TRACE=1", CXX_VICTIM " oom");
    same_with_shim("OBJMEM_ALLOCATOR=malloc", CXX_VICTIM " oom");
}

/* Whether the file at tmp/name holds the bytes tag: "MODS", a raw
 * capture's module table, or "MAPS", a named one's. */
static bool has_section(const char *name, const char *tag)
{
    static char buf[1 << 20];
    char path[512];
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    n = slurp(path, buf, sizeof(buf));
    assert_true(n > 0 && n < sizeof(buf) - 1);
    return memmem(buf, n, tag, 4) != NULL;
}

/* A damaged capture: one clear line, status 1. */
static void test_trace_bad_capture(void **state)
{
    assert_int_equal(tool("", "top /etc/hostname"), 1);
    assert_string_equal(err, "objmem: /etc/hostname: not an objmem capture "
                             "(bad magic)\n");
    assert_int_equal(tool("", "top /no/such/file"), 1);
    assert_string_equal(err, "objmem: /no/such/file: No such file or "
                             "directory\n");
    /* A long read says how it goes (big captures on a terminal, or
     * OBJMEM_PROGRESS=1). */
    assert_int_equal(tool("OBJMEM_PROGRESS=1", "top /etc/hostname"), 1);
    assert_non_null(strstr(err, "objmem: reading /etc/hostname ("));
    assert_non_null(strstr(err, " MiB)... failed, "));
    assert_int_equal(tool("", "top a b"), 2);
    assert_int_equal(tool("", "top --by size x"), 2);
    assert_string_equal(err, "objmem: --by lineno, filename or traceback, "
                             "not 'size'\n");
}

/* Write a Python script, text, as tmp/name. */
static void write_py(const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Run tmp/script under `objmem python --trace=nframes` (env added to the
 * environment), which writes a capture at the script's SIGUSR2, and read
 * `objmem top ARGS` of that capture into out_shim. */
static void python_top(const char *env, const char *script, int nframes,
                       const char *args)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "OBJMEM_TRACE_FILE=py %s python --trace=%d "
             "%s && %s top py.1 %s", TOOL, nframes, script, TOOL, args);
    assert_int_equal(run(env, cmd), 0);
    read_out(out_shim);
}

/* objmem python --trace: tracebacks name Python files and lines.  A
 * stack deeper than the limit says so, one exactly as deep does not (the
 * key and the frames judge "deeper" alike, pytrace.c's has_older). */
static void test_trace_python(void **state)
{
    if (LAUNCHER[0] == '\0')
        skip();
    write_py("app.py", "keep = []\n"
             "def grow():\n"
             "    for i in range(4000):\n"
             "        keep.append(bytes(1000))\n"
             "def main():\n"
             "    grow()\n"
             "    return bytes(3000)\n"
             "last = main()\n"
             "import os, signal\n"
             "os.kill(os.getpid(), signal.SIGUSR2)\n"
             "x = [1]\n");
    /* The bytes objects and the list's growth, all from line 4 (the
     * script's name is as CPython gives it: a full path). */
    for (int libc = 0; libc <= 1; libc++) {
        /* The same over the C library's malloc (OBJMEM_ALLOCATOR=malloc:
         * tracing wraps it in every domain). */
        python_top(libc ? "OBJMEM_ALLOCATOR=malloc" : "", "app.py", 4,
                   "--by traceback --limit 1");
        assert_non_null(strstr(out_shim, "app.py:4 in grow\n        "));
        assert_non_null(strstr(out_shim, "app.py:6 in main\n        "));
        assert_non_null(strstr(out_shim, "app.py:8 in <module>\n    4.0 "
                               "MiB in 4001 blocks (average 1.0 KiB)\n"));
        assert_non_null(strstr(out_shim, "\n#1: /"));
    }
    /* At 2 frames, grow's stack goes on past the limit, main's not. */
    python_top("", "app.py", 2, "--by traceback --limit 1000");
    assert_non_null(strstr(out_shim, "app.py:6 in main\n        ... 1 more "
                                     "frames\n    4.0 MiB in 4001 blocks"));
    assert_non_null(strstr(out_shim, "app.py:7 in main\n        "));
    assert_non_null(strstr(out_shim, "app.py:8 in <module>\n    3.0 KiB "
                                     "in 1 blocks"));
}

/* os._exit runs no exit handlers: objmem-python's _exit writes the
 * capture (and the report) first, in a forked child too with
 * --follow-fork (multiprocessing's workers leave so).  A Pool's context
 * ends its workers by SIGTERM: each writes its capture before it dies. */
static void test_trace_python_exit(void **state)
{
    char cmd[1024];
    const char *at;
    int n = 0;

    if (LAUNCHER[0] == '\0')
        skip();
    write_py("fx.py", "import os\n"
             "keep = [bytes(1000) for i in range(300)]\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    mine = [bytes(2000) for i in range(50)]\n"
             "    os._exit(0)\n"
             "os.waitpid(pid, 0)\n"
             "os._exit(4)\n");
    snprintf(cmd, sizeof(cmd), "OBJMEM_TRACE_FILE=fx.%%p OBJMEM_SHOW_STATS=1 "
             "OBJMEM_OUTPUT=fxr.%%p %s python --trace=1 --follow-fork fx.py; "
             "echo status $?; ls fx.[0-9]* fxr.* | wc -l; for f in fx.[0-9]*; "
             "do "
             "%s top $f --limit 0; done", TOOL, TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_true(starts_with(out_shim, "status 4\n4\n"));
    for (at = out_shim; (at = strstr(at, "fx.py:2 in <listcomp>\n    305.0 "
                                         "KiB in 301 blocks")); at++)
        n++;
    assert_int_equal(n, 2);             /* the parent's and the child's */
    assert_non_null(strstr(out_shim, "fx.py:5 in <listcomp>\n    99.7 KiB "
                                     "in 51 blocks"));
    /* Without --follow-fork, the parent's alone. */
    assert_int_equal(run("", "rm -f fx.[0-9]*"), 0);
    snprintf(cmd, sizeof(cmd), "OBJMEM_TRACE_FILE=fx.%%p %s python "
             "--trace=1 fx.py; ls fx.[0-9]* | wc -l", TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_string_equal(out_shim, "1\n");
    write_py("fpool.py", "import multiprocessing as mp\n"
             "def work(n):\n"
             "    return len([bytes(100) for i in range(n)])\n"
             "if __name__ == \"__main__\":\n"
             "    with mp.Pool(2) as p:\n"
             "        print(sum(p.map(work, [1000] * 4)))\n");
    for (int forks = 0; forks <= 1; forks++) {
        snprintf(cmd, sizeof(cmd), "rm -f fp.[0-9]* fr.[0-9]*; "
                 "OBJMEM_TRACE_FILE=fp.%%p OBJMEM_SHOW_STATS=1 "
                 "OBJMEM_OUTPUT=fr.%%p %s python --trace=1%s fpool.py; "
                 "ls fp.[0-9]* | wc -l; ls fr.[0-9]* | wc -l", TOOL,
                 forks ? " --follow-fork" : "");
        assert_int_equal(run("", cmd), 0);
        read_out(out_shim);
        /* Every worker writes its stats report before SIGTERM ends it,
         * and its capture with --follow-fork. */
        assert_string_equal(out_shim, forks ? "4000\n3\n3\n"
                                            : "4000\n1\n3\n");
    }
}

/* Lines read on from a code object's last lookup (pytrace.c): a site
 * before the last one in the same code (line 5 after line 7, a jump
 * back) and module-level sites in order come out on their own lines. */
static void test_trace_python_lines(void **state)
{
    if (LAUNCHER[0] == '\0')
        skip();
    write_py("lines.py", "keep = []\n"
             "def back():\n"
             "    for i in range(2):\n"
             "        if i:\n"
             "            keep.append(bytearray(70000))\n"
             "        else:\n"
             "            keep.append(bytearray(50000))\n"
             "back()\n"
             "keep.append(bytearray(30000))\n"
             "x = 1\n"
             "keep.append(bytearray(20000))\n"
             "import os, signal\n"
             "os.kill(os.getpid(), signal.SIGUSR2)\n");
    python_top("", "lines.py", 1, "--by lineno --limit 1000");
    /* Each bytearray and its buffer; line 7 also made the list's array. */
    assert_non_null(strstr(out_shim, "lines.py:5 in back\n    68.4 KiB "
                                     "in 2 "));
    assert_non_null(strstr(out_shim, "lines.py:7 in back\n    48.9 KiB "
                                     "in 3 "));
    assert_non_null(strstr(out_shim, "lines.py:9 in <module>\n    29.4 KiB "
                                     "in 2 "));
    assert_non_null(strstr(out_shim, "lines.py:11 in <module>\n    19.6 KiB "
                                     "in 2 "));
    assert_null(strstr(out_shim, "lines.py:10 "));
    assert_null(strstr(out_shim, "lines.py:6 "));
}

/* ---- Exports: folded stacks, the HTML flame graph, pprof ---- */

/* A capture of trace_victim with tracebacks of 2 frames (the leaking
 * function and main), exp.trace in tmp; the bytes it traced. */
static size_t victim_capture(void)
{
    char path[300];
    struct om_snapshot *s;
    struct om_snapshot_info info;

    assert_int_equal(run("OBJMEM_TRACE=2 OBJMEM_TRACE_FILE=exp.trace "
                         "LD_PRELOAD=" PRELOAD, "exec " TRACE_VICTIM), 0);
    snprintf(path, sizeof(path), "%s/exp.trace", tmp);
    s = om_snapshot_load(path);
    assert_non_null(s);
    om_snapshot_get_info(s, &info);
    om_snapshot_free(s);
    assert_true(info.current >= 19000);
    return info.current;
}

/* Folded stacks: one line per stack, the root first; the three calls of
 * victim_leak_big in main make one line, as their frames read the same;
 * the lines add up to the capture's bytes. */
static void test_export_folded(void **state)
{
    static char text[sizeof(out_shim) + 2];
    size_t total = victim_capture(), sum = 0, lines = 0;

    assert_int_equal(tool("", "flamegraph exp.trace"), 0);
    assert_string_equal(err, "");
    snprintf(text, sizeof(text), "\n%s", out_shim);
    assert_non_null(strstr(text, "\n[truncated];main (" VICTIM_SRC ":43);"
                                 "victim_leak_big (" VICTIM_SRC ":19) "
                                 "15000\n"));
    assert_non_null(strstr(text, "\n[truncated];main (" VICTIM_SRC ":45);"
                                 "victim_leak_small (" VICTIM_SRC ":29) "
                                 "4000\n"));
    for (char *line = out_shim, *end; *line; line = end + 1) {
        char *space, *num_end;

        end = strchr(line, '\n');
        assert_non_null(end);
        *end = '\0';
        space = strrchr(line, ' ');
        assert_non_null(space);
        assert_true(space > line);
        sum += strtoull(space + 1, &num_end, 10);
        assert_true(num_end == end && num_end > space + 1);
        lines++;
    }
    assert_int_equal(sum, total);
    assert_true(lines >= 2);
    assert_int_equal(tool("", "flamegraph"), 2);
    assert_int_equal(tool("", "flamegraph /etc/hostname"), 1);
    assert_string_equal(err, "objmem: /etc/hostname: not an objmem capture "
                             "(bad magic)\n");
}

/* Open page (a file of tmp) in headless Chromium: the DOM after its
 * scripts ran, in out_shim. */
static const char *dump_dom(const char *page)
{
    char cmd[1024];
    struct timespec t0, t1;
    int rc;

    if (system("command -v chromium >/dev/null 2>&1") != 0)
        fail_msg("chromium is not installed: the page tests need it (a "
                 "test dependency: scripts/deps.sh test, or apt-get install "
                 "chromium)");
    snprintf(cmd, sizeof(cmd), "timeout 60 chromium --headless --no-sandbox "
             "--disable-gpu --user-data-dir=%s/chromium --dump-dom "
             "file://%s/%s", tmp, tmp, page);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = run("", cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    read_out(out_shim);
    if (rc != 0)
        fail_msg("chromium failed (%d):\n%.4000s", rc, err);
    print_message("chromium --dump-dom %s: %.2f s\n", page,
                  (double)(t1.tv_sec - t0.tv_sec) +
                      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return out_shim;
}

/* The page, opened in headless Chromium: after its script ran, the DOM
 * has the title, the totals and a box for victim_leak_big. */
static void test_export_html(void **state)
{
    char want[256];
    size_t total = victim_capture();
    const char *box, *div, *dom;

    assert_int_equal(tool("", "flamegraph exp.trace --html exp.html"), 0);
    assert_string_equal(err, "");
    dom = dump_dom("exp.html");
    assert_non_null(strstr(dom, "<h1>objmem flame graph: exp.trace</h1>"));
    /* the timeline's chart above it, its two lines drawn */
    assert_non_null(strstr(dom, "<polyline id=\"traced\""));
    assert_non_null(strstr(dom, "<polyline id=\"rss\""));
    snprintf(want, sizeof(want), " traces, %zu bytes (", total);
    assert_non_null(strstr(dom, want));
    /* The box is a div of class f that the script made (the data, in the
     * page too, has the name only in quotes). */
    box = strstr(dom, ">victim_leak_big (" VICTIM_SRC ":19)</div>");
    assert_non_null(box);
    for (div = box; div > dom && *div != '<'; div--)
        ;
    assert_memory_equal(div, "<div class=\"f\"", 14);
    assert_non_null(strstr(div, "15000 bytes (14.6 KiB)"));
}

/* A protobuf reader, to check pprof's file field by field. */
struct wire {
    const unsigned char *p, *end;
};

static uint64_t wire_varint(struct wire *w)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        unsigned char c;

        assert_true(w->p < w->end);
        c = *w->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    fail_msg("pprof: a varint longer than 10 bytes");
    return 0;
}

/* The next field of w (false at the end): its number, its wire type, a
 * varint's value in *v, a length-delimited field's bytes in *sub. */
static bool wire_next(struct wire *w, unsigned *field, unsigned *type,
                      uint64_t *v, struct wire *sub)
{
    uint64_t key;

    if (w->p == w->end)
        return false;
    key = wire_varint(w);
    *field = (unsigned)(key >> 3);
    *type = (unsigned)(key & 7);
    *v = wire_varint(w);
    if (*type == 2) {
        assert_true(*v <= (uint64_t)(w->end - w->p));
        sub->p = w->p;
        sub->end = w->p + *v;
        w->p += *v;
    } else {
        assert_int_equal(*type, 0);
    }
    return true;
}

/* A repeated varint field, packed or not, into out; how many. */
static size_t wire_ints(unsigned type, uint64_t v, struct wire *sub,
                        uint64_t *out, size_t max)
{
    size_t n = 0;

    if (type == 0) {
        out[0] = v;
        return 1;
    }
    while (sub->p < sub->end) {
        assert_true(n < max);
        out[n++] = wire_varint(sub);
    }
    return n;
}

/* What the test reads from a profile. */
struct pprof_read {
    struct wire strings[4096];
    size_t nstrings;
    uint64_t types[8][2];       /* sample_type: type, unit */
    size_t ntypes;
    uint64_t period_type[2], period, default_type;
    uint64_t values[4];         /* summed over the samples */
    uint64_t names[1024];       /* Function.name */
    uint64_t maps[256][8];      /* Mapping: id .. has_filenames */
    uint64_t locs[1024][3];     /* Location: id, mapping_id, address */
    size_t nfunctions, nlocations, nsamples, nmaps;
};

/* A ValueType, or the fields of a message that are varints, by number. */
static void read_varints(struct wire *m, uint64_t *out, unsigned max)
{
    unsigned field, type;
    uint64_t v;
    struct wire sub;

    while (wire_next(m, &field, &type, &v, &sub))
        if (type == 0 && field >= 1 && field <= max)
            out[field - 1] = v;
}

static void read_sample(struct wire *m, struct pprof_read *r)
{
    unsigned field, type;
    uint64_t v, ints[256];
    struct wire sub;

    while (wire_next(m, &field, &type, &v, &sub)) {
        size_t n = wire_ints(type, v, &sub, ints, 256);

        if (field == 1) {
            for (size_t i = 0; i < n; i++)
                assert_true(ints[i] != 0);          /* location ids */
        } else if (field == 2) {
            assert_int_equal(n, r->ntypes);         /* a value per type */
            for (size_t i = 0; i < n && i < 4; i++)
                r->values[i] += ints[i];
        }
    }
    r->nsamples++;
}

static void read_profile(struct wire *w, struct pprof_read *r)
{
    unsigned field, type;
    uint64_t v, fn[5];
    struct wire sub;

    while (wire_next(w, &field, &type, &v, &sub)) {
        if (field == 1) {
            assert_true(r->ntypes < 8);
            read_varints(&sub, r->types[r->ntypes++], 2);
        } else if (field == 2) {
            read_sample(&sub, r);
        } else if (field == 3) {
            assert_true(r->nmaps < 256);
            read_varints(&sub, r->maps[r->nmaps++], 8);
        } else if (field == 4) {
            assert_true(r->nlocations < 1024);
            read_varints(&sub, r->locs[r->nlocations++], 3);
        } else if (field == 5) {
            memset(fn, 0, sizeof(fn));
            read_varints(&sub, fn, 5);
            assert_true(fn[0] != 0 && r->nfunctions < 1024);
            r->names[r->nfunctions++] = fn[1];
        } else if (field == 6) {
            assert_true(r->nstrings < 4096);
            r->strings[r->nstrings++] = sub;
        } else if (field == 11) {
            read_varints(&sub, r->period_type, 2);
        } else if (field == 12) {
            r->period = v;
        } else if (field == 14) {
            r->default_type = v;
        }
    }
}

/* The profile's string i is s. */
static bool pprof_string_is(const struct pprof_read *r, uint64_t i,
                            const char *s)
{
    assert_true(i < r->nstrings);
    return (size_t)(r->strings[i].end - r->strings[i].p) == strlen(s) &&
           memcmp(r->strings[i].p, s, strlen(s)) == 0;
}

/* `objmem pprof CAPTURE -o NAME.pb`, read back into *r (its strings
 * point into a static buffer: one profile at a time). */
static void pprof_of(const char *capture, struct pprof_read *r)
{
    static unsigned char data[1 << 20];
    struct wire w;
    char path[300];
    size_t n;

    snprintf(path, sizeof(path), "pprof %s -o %s.pb", capture, capture);
    assert_int_equal(tool("", path), 0);
    assert_string_equal(err, "");
    snprintf(path, sizeof(path), "%s/%s.pb", tmp, capture);
    n = slurp(path, (char *)data, sizeof(data));
    assert_true(n > 0 && n < sizeof(data) - 1);
    w.p = data;
    w.end = data + n;
    memset(r, 0, sizeof(*r));
    read_profile(&w, r);
}

/* The has_functions flag (Mapping field 7) of the mapping of file. */
static uint64_t pprof_has_functions(const struct pprof_read *r,
                                    const char *file)
{
    for (size_t i = 0; i < r->nmaps; i++)
        if (pprof_string_is(r, r->maps[i][4], file)) {
            assert_int_equal(r->maps[i][7], r->maps[i][6]);
            return r->maps[i][6];
        }
    fail_msg("no mapping of %s", file);
    return 0;
}

/* A capture from the environment names its C frames when it is loaded
 * (the process keeps its module table: no libdw in it), as a capture
 * named in the process would; a module rebuilt or gone since keeps its
 * frames unnamed, its file given with the frame's address in it, which
 * addr2line reads in the file as it was (`top` and the flame graph);
 * OBJMEM_TRACE_SYMBOLS=1 names them in the process, for a capture read
 * elsewhere. */
static void test_trace_named_at_load(void **state)
{
    static const char *const sites[] = {
        "\n#1: " VICTIM_SRC ":19 in victim_leak_big\n    14.6 KiB in 3 "
        "blocks",
        "\n#2: " VICTIM_SRC ":29 in victim_leak_small\n    3.9 KiB in 100 "
        "blocks",
    };
    static struct pprof_read r;
    char cmd[1024], unnamed[600], *at;
    unsigned long offset = 0;

    snprintf(cmd, sizeof(cmd), "cp %s victim && "
             "OBJMEM_TRACE_FILE=late ./victim && "
             "OBJMEM_TRACE_FILE=early OBJMEM_TRACE_SYMBOLS=1 ./victim",
             TRACE_VICTIM);
    assert_int_equal(run("OBJMEM_TRACE=2 LD_PRELOAD=" PRELOAD, cmd), 0);
    assert_true(has_section("late", "MODS"));
    assert_false(has_section("late", "MAPS"));
    assert_false(has_section("early", "MODS"));
    assert_true(has_section("early", "MAPS"));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tool("", i ? "top early --limit 2"
                                    : "top late --limit 2"),
                         0);
        for (size_t k = 0; k < sizeof(sites) / sizeof(*sites); k++)
            assert_non_null(strstr(out_shim, sites[k]));
    }
    /* Another program of ours where the victim was, with symbols and
     * lines of its own: its build ID is not the one recorded. */
    snprintf(unnamed, sizeof(unnamed), "\n#1: %s/victim [+0x", tmp);
    assert_int_equal(shell("cp %s victim", SERVE_VICTIM), 0);
    assert_int_equal(tool("", "top late --limit 1"), 0);
    assert_non_null(at = strstr(out_shim, unnamed));
    assert_int_equal(sscanf(at + strlen(unnamed), "%lx]\n", &offset), 1);
    assert_null(strstr(out_shim, "victim_leak"));
    assert_int_equal(shell("addr2line -f -e %s 0x%lx", TRACE_VICTIM, offset),
                     0);
    assert_int_equal(strncmp(out_shim, "victim_leak_big\n", 16), 0);
    /* the flame graph's frame carries the same offset, as its leaf */
    snprintf(cmd, sizeof(cmd), "[victim+0x%lx] ", offset);
    assert_int_equal(tool("", "flamegraph late"), 0);
    assert_non_null(strstr(out_shim, cmd));
    /* pprof is told to name the unnamed module's frames itself */
    snprintf(cmd, sizeof(cmd), "%s/victim", tmp);
    pprof_of("late", &r);
    assert_int_equal(pprof_has_functions(&r, cmd), 0);
    pprof_of("early", &r);
    assert_int_equal(pprof_has_functions(&r, cmd), 1);
    assert_int_equal(tool("", "top early --limit 1"), 0);
    assert_non_null(strstr(out_shim, sites[0]));
    assert_int_equal(shell("rm victim"), 0);
    assert_int_equal(tool("", "top late --limit 1"), 0);
    assert_non_null(strstr(out_shim, unnamed));
}

/* pprof's profile.proto, read back: the string table, Go's heap sample
 * types (what was allocated over the run, then what is live), a sample
 * per traceback whose bytes add up to the capture's,
 * victim_leak_big among the functions, and the victim's mapping: its
 * addresses hold its locations', its build ID is its file's, its frames
 * have their functions. */
static void test_export_pprof(void **state)
{
    static struct pprof_read r;
    size_t total = victim_capture();
    bool found = false;

    pprof_of("exp.trace", &r);
    assert_true(r.nstrings > 0);
    assert_true(r.strings[0].p == r.strings[0].end);        /* "" */
    assert_int_equal(r.ntypes, 4);
    assert_true(pprof_string_is(&r, r.types[0][0], "alloc_objects"));
    assert_true(pprof_string_is(&r, r.types[0][1], "count"));
    assert_true(pprof_string_is(&r, r.types[1][0], "alloc_space"));
    assert_true(pprof_string_is(&r, r.types[1][1], "bytes"));
    assert_true(pprof_string_is(&r, r.types[2][0], "inuse_objects"));
    assert_true(pprof_string_is(&r, r.types[2][1], "count"));
    assert_true(pprof_string_is(&r, r.types[3][0], "inuse_space"));
    assert_true(pprof_string_is(&r, r.types[3][1], "bytes"));
    assert_true(pprof_string_is(&r, r.default_type, "inuse_space"));
    assert_true(pprof_string_is(&r, r.period_type[0], "space"));
    assert_true(pprof_string_is(&r, r.period_type[1], "bytes"));
    assert_int_equal(r.period, 1);
    assert_int_equal(r.values[3], total);
    assert_true(r.values[2] >= 103);
    /* victim_temp's 50 blocks of 100 bytes, freed, are allocations */
    assert_int_equal(r.values[1], total + 5000);
    assert_int_equal(r.values[0], r.values[2] + 50);
    assert_true(r.nsamples >= 2 && r.nlocations >= 3);
    for (size_t i = 0; i < r.nfunctions; i++)
        found |= pprof_string_is(&r, r.names[i], "victim_leak_big");
    assert_true(found);
    found = false;
    for (size_t i = 0; i < r.nmaps; i++) {
        const uint64_t *m = r.maps[i];
        const struct wire *id = &r.strings[m[5]];
        char hex[41];
        size_t in = 0;

        assert_int_equal(m[0], i + 1);
        if (!pprof_string_is(&r, m[4], TRACE_VICTIM))
            continue;
        found = true;
        assert_true(m[1] > 0 && m[1] < m[2]);
        assert_int_equal(id->end - id->p, 40);      /* 20 bytes, in hex */
        memcpy(hex, id->p, 40);
        hex[40] = '\0';
        assert_int_equal(strspn(hex, "0123456789abcdef"), 40);
        assert_int_equal(shell("readelf -n %s", TRACE_VICTIM), 0);
        assert_non_null(strstr(out_shim, hex));
        for (size_t k = 0; k < r.nlocations; k++)
            if (r.locs[k][1] == m[0]) {
                assert_true(r.locs[k][2] >= m[1] && r.locs[k][2] < m[2]);
                in++;
            }
        assert_true(in >= 2);               /* main, victim_leak_big */
    }
    assert_true(found);
    assert_int_equal(pprof_has_functions(&r, TRACE_VICTIM), 1);
    assert_int_equal(tool("", "pprof exp.trace"), 2);
    assert_string_equal(err, "usage: objmem pprof FILE -o OUT\n");
    assert_int_equal(tool("", "pprof exp.trace -o /no/such/dir/x.pb"), 1);
    assert_string_equal(err, "objmem: /no/such/dir/x.pb: No such file or "
                             "directory\n");
}

/* --json: the reports' figures as one JSON object that python3 reads;
 * the frames with their module and file offset (addr2line names it), the
 * total the capture's, the filters' counts, a diff's changes. */
static void test_report_json(void **state)
{
    size_t total = victim_capture();
    char want[512];
    const char *at;
    unsigned long offset = 0;

    assert_int_equal(tool("", "leaks exp.trace --json --limit 1"), 0);
    assert_string_equal(err, "");
    assert_true(starts_with(out_shim, "{\"report\": \"leaks\", \"file\": "
                            "\"exp.trace\", \"traces\": 103, "));
    assert_non_null(strstr(out_shim, "\"sample_mean\": 0, \"lost\": 0, \"by\": "
                                     "\"traceback\", \"cumulative\": false, "
                                     "\"statistics\": [\n  {\"size\": 5000, "
                                     "\"count\": 1, \"traceback\": {"));
    snprintf(want, sizeof(want), "{\"file\": \"%s\", \"line\": 19, "
             "\"function\": \"victim_leak_big\", \"module\": \"%s\", "
             "\"offset\": ", VICTIM_SRC, TRACE_VICTIM);
    assert_non_null(at = strstr(out_shim, want));
    assert_int_equal(sscanf(at + strlen(want), "%lu}", &offset), 1);
    snprintf(want, sizeof(want), "\"others\": {\"statistics\": 3, \"size\": "
             "%zu}, \"total\": %zu}\n", total - 5000, total);
    assert_non_null(strstr(out_shim, want));
    assert_int_equal(shell("addr2line -f -e %s 0x%lx", TRACE_VICTIM, offset),
                     0);
    assert_int_equal(strncmp(out_shim, "victim_leak_big\n", 16), 0);
    /* every verb's object reads as JSON */
    assert_int_equal(shell("for v in top leaks peak; do %s $v exp.trace "
                           "--json --limit 0 | python3 -m json.tool "
                           ">/dev/null || exit 1; done && %s diff exp.trace "
                           "exp.trace --json | python3 -m json.tool "
                           ">/dev/null", TOOL, TOOL), 0);
    assert_int_equal(tool("", "top exp.trace --json --include "
                              "\"*/trace_victim.c:29\""), 0);
    assert_non_null(strstr(out_shim, ", \"by\": \"lineno\", \"cumulative\": "
                                     "false, \"filtered\": {\"kept\": 100, "
                                     "\"of\": 103}, \"statistics\": [\n  {"
                                     "\"size\": 4000, \"count\": 100, "));
    assert_int_equal(tool("", "diff exp.trace exp.trace --json --by "
                              "filename"), 0);
    assert_true(starts_with(out_shim, "{\"report\": \"diff\", \"old\": "
                            "\"exp.trace\", \"new\": \"exp.trace\", \"by\": "
                            "\"filename\", "));
    assert_non_null(strstr(out_shim, "\"size_diff\": 0, \"count\": 103, "
                                     "\"count_diff\": 0, "));
    /* Sampled (a mean of one byte samples every block): the estimates
     * with their errors. */
    assert_int_equal(run("OBJMEM_TRACE_SAMPLE=1 OBJMEM_TRACE_FILE=smp.trace "
                         "LD_PRELOAD=" PRELOAD, "exec " TRACE_VICTIM), 0);
    assert_int_equal(tool("", "top smp.trace --json"), 0);
    assert_non_null(strstr(out_shim, "\"sample_mean\": 1, \"lost\": 0, "));
    assert_non_null(strstr(out_shim, "\n  {\"size\": 15000, \"count\": 3, "
                                     "\"size_error\": 0.0, \"count_error\": "
                                     "0.00, \"traceback\": "));
    assert_int_equal(tool("", "top smp.trace"), 0);
    assert_non_null(strstr(out_shim, ":19 in victim_leak_big\n    14.6 KiB "
                                     "+- 0 B in 3 blocks (average 4.9 KiB)\n"));
}

/* objmem allocs: every allocation of the run, freed or not, by site;
 * --sort count, --json, the filters; diff --allocs between two captures
 * of one run; the flame graph of the allocations. */
static void test_report_allocs(void **state)
{
    size_t total = victim_capture();
    char want[512];

    assert_int_equal(tool("", "allocs exp.trace"), 0);
    assert_string_equal(err, "");
    snprintf(want, sizeof(want), "# objmem allocs (every allocation of the "
             "run, freed or not): exp.trace: 153 allocations, %.1f KiB "
             "allocated\n#1: " VICTIM_SRC ":19 in victim_leak_big\n    "
             "14.6 KiB in 3 allocations (average 4.9 KiB)\n",
             (double)(total + 5000) / 1024);
    assert_true(starts_with(out_shim, want));
    assert_non_null(strstr(out_shim, "\n#2: " VICTIM_SRC ":56 in "
                                     "victim_temp\n    4.9 KiB in 50 "
                                     "allocations (average 100 B)\n"));
    /* the most calls first */
    assert_int_equal(tool("", "allocs exp.trace --sort count --limit 1"), 0);
    assert_non_null(strstr(out_shim, "\n#1: " VICTIM_SRC ":29 in "
                                     "victim_leak_small\n    3.9 KiB in 100 "
                                     "allocations (average 40 B)\n2 others: "));
    assert_int_equal(tool("", "allocs exp.trace --json --limit 0 --include "
                              "\"*/trace_victim.c:56\""), 0);
    snprintf(want, sizeof(want), "{\"report\": \"allocs\", \"file\": "
             "\"exp.trace\", \"allocations\": 153, \"allocated\": %zu, "
             "\"sample_mean\": 0, \"lost\": 0, \"by\": \"lineno\", "
             "\"cumulative\": false, \"sort\": \"size\", \"filtered\": "
             "{\"kept\": 50, \"of\": 153}, \"statistics\": [\n  {\"size\": "
             "5000, \"count\": 50, ", total + 5000);
    assert_true(starts_with(out_shim, want));
    assert_int_equal(shell("%s allocs exp.trace --json --limit 0 | python3 "
                           "-m json.tool >/dev/null", TOOL), 0);
    assert_int_equal(tool("", "allocs exp.trace --include \"*:56\""), 0);
    assert_non_null(strstr(out_shim, "\n# filters: --include *:56: 50 of 153 "
                                     "allocations kept\n#1: "));
    assert_int_equal(tool("", "allocs exp.trace --sort calls"), 2);
    assert_string_equal(err, "objmem: --sort size or count, not 'calls'\n");
    /* A capture by SIGUSR2 before the first block: what came after it */
    assert_int_equal(run("OBJMEM_TRACE=2 OBJMEM_TRACE_FILE=two.trace "
                         "LD_PRELOAD=" PRELOAD, "exec " TRACE_VICTIM " x"),
                     0);
    assert_int_equal(tool("", "diff --allocs two.trace.1 two.trace"), 0);
    assert_true(starts_with(out_shim, "# objmem diff --allocs (what was "
                            "allocated between them): two.trace.1 -> "
                            "two.trace\n"));
    assert_non_null(strstr(out_shim, ":56 in victim_temp\n    4.9 KiB "
                                     "(+4.9 KiB), 50 allocations (+50)\n"));
    /* The folded stacks of the allocations add up to their bytes. */
    assert_int_equal(tool("", "flamegraph exp.trace --allocs"), 0);
    assert_non_null(strstr(out_shim, "victim_temp (" VICTIM_SRC ":56) "
                                     "5000\n"));
}

/* tracemalloc's filters on the command line: --include and --exclude
 * by file (and line), --all-frames, --domain; the header says them and
 * what they kept; the exports read the same traces. */
static void test_report_filters(void **state)
{
#define BIG "\n#1: " VICTIM_SRC ":19 in victim_leak_big\n"
    static const struct {
        const char *args, *has[2], *lacks;
    } cases[] = {
        { "top exp.trace --include \"*/trace_victim.c:29\"",
          { "\n# filters: --include */trace_victim.c:29: 100 of ",
            "\n#1: " VICTIM_SRC ":29 in victim_leak_small\n    3.9 KiB in "
            "100 blocks" }, "victim_leak_big" },
        /* two inclusive filters: either; an exclusive one: never */
        { "top exp.trace --include \"*/trace_victim.c\" --include \"*.h\" "
          "--exclude \"*:29\"", { BIG "    14.6 KiB in 3 blocks", NULL },
          "victim_leak_small" },
        /* main is the frame below: it matches with --all-frames only */
        { "leaks exp.trace --include \"*/trace_victim.c:43\"",
          { ".c:43: 0 of ", "\ntotal: 0 B\n" }, "victim_leak" },
        { "leaks exp.trace --all-frames --include \"*/trace_victim.c:43\"",
          { "--all-frames: 3 of ", BIG "        " VICTIM_SRC ":43 in main\n" },
          "victim_leak_small" },
        /* the shim's blocks are the raw domain's */
        { "top exp.trace --domain mem",
          { "# filters: --domain mem: 0 of ", "\ntotal: 0 B\n" }, "#1" },
        { "top exp.trace --domain raw --include \"*/trace_victim.c:19\"",
          { "--domain raw: 3 of ", BIG }, "victim_leak_small" },
        { "diff exp.trace exp.trace --exclude \"*/trace_victim.c\"",
          { "# filters: --exclude */trace_victim.c: ", NULL }, "victim_leak" },
    };
#undef BIG
    char want[512];

    victim_capture();
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        assert_int_equal(tool("", cases[i].args), 0);
        for (int k = 0; k < 2 && cases[i].has[k]; k++)
            assert_non_null(strstr(out_shim, cases[i].has[k]));
        assert_null(strstr(out_shim, cases[i].lacks));
    }
    assert_int_equal(tool("", "flamegraph exp.trace --include "
                              "\"*/trace_victim.c:29\""), 0);
    snprintf(want, sizeof(want), "[truncated];main (%s:45);victim_leak_small "
             "(%s:29) 4000\n", VICTIM_SRC, VICTIM_SRC);
    assert_string_equal(out_shim, want);
    /* Errors. */
    assert_int_equal(tool("", "top exp.trace --include"), 2);
    assert_string_equal(err, "objmem: --include needs a pattern\n");
    assert_int_equal(tool("", "pprof exp.trace -o x.pb --domain heap"), 2);
    assert_non_null(strstr(err, "objmem: --domain raw, mem, obj or a number, "
                                "not 'heap'\n"));
}

/* The line of figures under the heading `name` of out, into fig. */
static void figures_after(const char *out, const char *name, char *fig,
                          size_t size)
{
    const char *at = strstr(out, name), *end;

    assert_non_null(at);
    at += strlen(name);
    end = strchr(at, '\n');
    assert_non_null(end);
    assert_true(strncmp(at, "    ", 4) == 0 && (size_t)(end - at) < size);
    memcpy(fig, at, (size_t)(end - at));
    fig[end - at] = '\0';
}

/* pins --json on test_trace_pins' capture: the text's figures as
 * numbers, which python3 checks against each other: the site left out is
 * the site named, the filters' counts add up, the arenas' pages and
 * occupancy add up (253 pages of blocks an arena, docs/design.md 2). */
static void pins_json(void)
{
    write_py("pinsjson.py",
             "import json, sys\n"
             "a, x, k, one = (json.load(open(f + '.json'))\n"
             "                for f in ('all', 'ex', 'inc', 'one'))\n"
             "s = a['sites'][0]\n"
             "assert s['traceback']['frames'] == [{'file': sys.argv[1] +\n"
             "    '/pins.py', 'line': 0, 'function': None}], s\n"
             "assert s['arenas'] >= 1 and s['release'] > s['bytes'], s\n"
             "fig = lambda d: [d[f] for f in ('blocks', 'bytes', 'release',\n"
             "                                'units', 'arenas', 'pinned')]\n"
             "assert fig(x['left_out']) == fig(s), x\n"
             "assert 'pins.py' not in json.dumps(x['sites'])\n"
             "assert x['filtered']['kept'] + s['blocks'] == \\\n"
             "    x['filtered']['of'] == a['traced_blocks'], x\n"
             "assert [fig(t) for t in k['sites']] == [fig(s)], k\n"
             "assert 'left_out' not in a and 'filtered' not in a\n"
             "assert a['pages'] == a['arenas'] * 253 * 4096, a\n"
             "assert sum(a['occupancy'].values()) == a['arenas'], a\n"
             "sp = a['sparse_arenas']\n"
             "assert len(sp) == a['sparse']['arenas'] >= 1, a\n"
             "assert sum(r['live'] for r in sp) == a['sparse']['live']\n"
             "assert all(20 * r['live'] < r['usable'] for r in sp), sp\n"
             "assert sp[0]['blockers'][0]['traceback'] == s['traceback']\n"
             "assert len(one['sites']) == 1 and fig(one['sites'][0]) == \\\n"
             "    fig(s) and len(one['sparse_arenas']) == 1, one\n"
             "print('ok')\n");
    assert_int_equal(shell("%s pins pin.1 --by filename --limit 0 --json "
                           ">all.json && %s pins pin.1 --by filename --limit "
                           "0 --json --exclude \"*/pins.py\" >ex.json && %s "
                           "pins pin.1 --by filename --json --include "
                           "\"*/pins.py\" >inc.json && %s pins pin.1 --by "
                           "filename --limit 1 --json >one.json && python3 "
                           "pinsjson.py %s", TOOL, TOOL, TOOL, TOOL, tmp), 0);
    assert_string_equal(out_shim, "ok\n");
    assert_int_equal(tool("", "pins pin.1 --json --limit 1"), 0);
    assert_true(starts_with(out_shim, "{\"report\": \"pins\", \"file\": "
                            "\"pin.1\", \"by\": \"lineno\", "));
    assert_non_null(strstr(out_shim, "\"frames\": [{\"file\": "));
    assert_non_null(strstr(out_shim, "/pins.py\", \"line\": 5, "
                                     "\"function\": \"<listcomp>\"}]}"));
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* objmem timeline on test_trace_pins' capture: the points in time order,
 * the highest the capture's peak (top --json's), the table's rows, the
 * chart's two lines; the verb's errors. */
static void timeline_checks(void)
{
    const char *dom;

    write_py("tljson.py",
             "import json\n"
             "t, top = (json.load(open(f + '.json')) for f in ('tl', 'top'))\n"
             "p = t['points']\n"
             "assert len(p) >= 2, t\n"
             "assert all(a[0] < b[0] for a, b in zip(p, p[1:])), p\n"
             "assert all(x[2] > 0 and x[2] % 4096 == 0 for x in p), p\n"
             "hi = max(x[1] for x in p)\n"
             "assert hi == t['peak_traced']['bytes'] == top['peak'], (hi, t)\n"
             "assert [x[0] for x in p if x[1] == hi][0] == \\\n"
             "    t['peak_traced']['time_ms']\n"
             "assert max(x[2] for x in p) == t['peak_rss']['bytes']\n"
             "print('ok')\n");
    assert_int_equal(shell("%s timeline pin.1 --json >tl.json && %s top "
                           "pin.1 --json --limit 1 >top.json && python3 "
                           "tljson.py", TOOL, TOOL), 0);
    assert_string_equal(out_shim, "ok\n");
    assert_int_equal(tool("", "timeline pin.1 --rows 5 --html tl.html"), 0);
    assert_true(starts_with(out_shim, "# objmem timeline: pin.1: "));
    assert_non_null(strstr(out_shim, "\n# traced: peak "));
    assert_non_null(strstr(out_shim, "\n# RSS: peak "));
    assert_non_null(strstr(out_shim, "\n     time       traced          RSS\n"
                                     "   0.0"));
    assert_int_equal(count_lines(out_shim), 4 + 1 + 5);
    dom = dump_dom("tl.html");
    assert_non_null(strstr(dom, "<polyline id=\"rss\""));
    assert_non_null(strstr(dom, "<polyline id=\"traced\""));
    assert_non_null(strstr(dom, "<p id=\"timeline-note\">Over "));
    assert_int_equal(tool("", "timeline"), 2);
    assert_int_equal(tool("", "timeline pin.1 --rows 0"), 2);
    assert_int_equal(tool("", "timeline no-such.trace"), 1);
}

/* objmem pins and peak, on the articles' experiment: many objects made,
 * one in 100 kept, the rest deleted.  The survivors, all from pins.py,
 * keep whole arenas; the page draws them.  Filters name fewer sites, with
 * the same figures.  (The sleep gives the timeline 13 ticks at least,
 * for timeline_checks' 5 rows: without it, a loaded machine's run could
 * hold 4.) */
static void test_trace_pins(void **state)
{
    char cmd[1024], want[512], fig[512], fig2[512];
    const char *dom, *rect;
    size_t rects = 0;

    if (LAUNCHER[0] == '\0')
        skip();
    write_py("pins.py", "import os, signal, time\n"
             "class Node:\n"
             "    def __init__(self, i): self.i = i; self.s = 'n%d' % i\n"
             "def build():\n"
             "    return [Node(i) for i in range(60000)]\n"
             "data = build()\n"
             "keep = data[::100]\n"
             "del data\n"
             "time.sleep(0.2)\n"
             "os.kill(os.getpid(), signal.SIGUSR2)\n"
             "x = [1]\n");
    snprintf(cmd, sizeof(cmd), "OBJMEM_TRACE_FILE=pin %s python --trace=2 "
             "pins.py && %s pins pin.1 --by filename --limit 1 --html "
             "pins.html", TOOL, TOOL);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    snprintf(want, sizeof(want), "\n#1: %s/pins.py\n", tmp);
    assert_non_null(strstr(out_shim, want));
    assert_non_null(strstr(out_shim, " whole arena"));
    assert_non_null(strstr(out_shim, "nearly empty arenas (under 5% used)"));
    assert_non_null(strstr(out_shim, " of live blocks keep "));
    figures_after(out_shim, want, fig, sizeof(fig));
    assert_non_null(strstr(fig, " whole arena"));
    /* Left out, pins.py's blocks keep what they kept, as one site. */
    assert_int_equal(tool("", "pins pin.1 --by filename --exclude "
                              "\"*/pins.py\""), 0);
    assert_null(strstr(out_shim, want));
    assert_non_null(strstr(out_shim, "\n# filters: --exclude */pins.py: "));
    figures_after(out_shim, "\nthe blocks the filters leave out, "
                  "together:\n", fig2, sizeof(fig2));
    assert_string_equal(fig2, fig);
    assert_non_null(strstr(out_shim, " x (the blocks the filters leave "
                                     "out)\n"));
    /* Kept, pins.py alone is named, with its figures. */
    assert_int_equal(tool("", "pins pin.1 --by filename --include "
                              "\"*/pins.py\""), 0);
    figures_after(out_shim, want, fig2, sizeof(fig2));
    assert_string_equal(fig2, fig);
    assert_null(strstr(out_shim, "\n#2: "));
    assert_int_equal(tool("", "pins pin.1 --domain 7"), 0);
    assert_non_null(strstr(out_shim, "--domain 7: 0 of "));
    assert_non_null(strstr(out_shim, "\n  nothing: no site the filters keep "
                                     "keeps memory alone\n"));
    assert_int_equal(tool("", "pins pin.1 --domain x"), 2);
    /* What was live at the peak: the list's objects. */
    assert_int_equal(tool("", "peak pin.1 --limit 1"), 0);
    assert_non_null(strstr(out_shim, "# objmem peak (live at the high-water "
                                     "mark): pin.1: "));
    assert_non_null(strstr(out_shim, "/pins.py:5 in <listcomp>\n"));
    /* The heap map: a cell per page, the site in the table. */
    dom = dump_dom("pins.html");
    assert_non_null(strstr(dom, "<svg id=\"heap\""));
    snprintf(want, sizeof(want), "<tr class=\"site\"><td>%s/pins.py</td>",
             tmp);
    assert_non_null(strstr(dom, want));
    for (rect = dom; (rect = strstr(rect, "<rect class=\"page\"")); rect++)
        rects++;
    assert_true(rects >= 256);
    assert_non_null(strstr(dom, "<svg id=\"timeline\""));
    pins_json();
    timeline_checks();
}

/* ---- objmem-python: CPython embedded, every domain on objmem ---- */

static void test_launcher(void **state)
{
    char cmd[1024];

    if (LAUNCHER[0] == '\0')
        skip();
    /* As python3 would: the exit status, -E, and sys.executable is the
     * launcher, so the interpreters it starts run on objmem too (custom
     * allocators make CPython refuse to name them). */
    snprintf(cmd, sizeof(cmd), "%s python -E -c \"import sys, subprocess, "
             "_testcapi\n"
             "def name():\n"
             "    try: return _testcapi.pymem_getallocatorsname()\n"
             "    except RuntimeError as e: return str(e)\n"
             "print(sys.executable.endswith(\\\"objmem-python\\\"), name())\n"
             "out = subprocess.run([sys.executable, \\\"-c\\\", "
             "\\\"import _testcapi\\\\ntry: _testcapi."
             "pymem_getallocatorsname()\\\\nexcept RuntimeError as e: "
             "print(e)\\\"], capture_output=True, text=True).stdout\n"
             "print(out.strip())\n"
             "raise SystemExit(7)\"", TOOL);
    assert_int_equal(run("", cmd), 7);
    read_out(out_shim);
    assert_string_equal(out_shim, "True cannot get allocators name\n"
                                  "cannot get allocators name\n");
    /* PYTHONMALLOC=debug and -X dev put the debug hooks on objmem. */
    snprintf(cmd, sizeof(cmd), "%s -c \"import _testcapi; "
             "_testcapi.pymem_buffer_overflow()\"", LAUNCHER);
    assert_int_not_equal(run("PYTHONMALLOC=debug", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(err, "bad trailing pad byte"));
    snprintf(cmd, sizeof(cmd), "%s -X dev -c \"import _testcapi; "
             "_testcapi.pymem_buffer_overflow()\"", LAUNCHER);
    assert_int_not_equal(run("", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(err, "bad trailing pad byte"));
    /* OBJMEM_SHOW_STATS: its report, as the shim's. */
    snprintf(cmd, sizeof(cmd), "%s -c \"x = [str(i) for i in range(10000)]"
             "\" && %s stats launcher.report", LAUNCHER, TOOL);
    assert_int_equal(run("OBJMEM_SHOW_STATS=1 OBJMEM_OUTPUT=launcher.report",
                         cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(out_shim, "objmem-python (pid "));
}

/* sys.executable as python3 finds its own: through a symlink, the
 * link's path, so that a venv made by the launcher is a venv (its
 * bin/python finds its pyvenv.cfg); under an argv[0] that names another
 * program, the launcher's own path. */
static void test_launcher_executable(void **state)
{
    char cmd[1024], want[600];

    if (LAUNCHER[0] == '\0')
        skip();
    write_py("where.py", "import sys\n"
             "print(sys.executable)\n"
             "print(sys.prefix)\n"
             "print(sys.prefix != sys.base_prefix)\n");
    snprintf(cmd, sizeof(cmd), "rm -rf venv && %s -m venv --without-pip "
             "venv && venv/bin/python where.py", LAUNCHER);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    snprintf(want, sizeof(want), "%s/venv/bin/python\n%s/venv\nTrue\n",
             tmp, tmp);
    assert_string_equal(out_shim, want);
    snprintf(cmd, sizeof(cmd), "bash -c \"exec -a python3 %s where.py\"",
             LAUNCHER);
    assert_int_equal(run("", cmd), 0);
    read_out(out_shim);
    snprintf(want, sizeof(want), "%s\n", LAUNCHER);
    assert_true(starts_with(out_shim, want));
    assert_non_null(strstr(out_shim, "\nFalse\n"));
}

/* A Valgrind tool's preload path (it need not exist: the dynamic linker
 * skips it with a warning). */
#define MEMCHECK_PRELOAD \
    "LD_PRELOAD=/nonexistent/valgrind/vgpreload_memcheck-amd64-linux.so"

/* Which allocator CPython's domains get: PYTHONMALLOC decides when set
 * (not under -E), else the allocator option (its default under a tool
 * that watches malloc too); objmem's tables have no name for CPython. */
static void test_launcher_allocator(void **state)
{
    static const struct {
        const char *env, *args, *name;
    } cases[] = {
        { "", "", "cannot get allocators name" },
        { "OBJMEM_ALLOCATOR=malloc", "", "malloc" },
        { "OBJMEM_CONF=allocator:malloc", "", "malloc" },
        { "OBJMEM_ALLOCATOR=malloc_debug", "", "malloc_debug" },
        { "OBJMEM_ALLOCATOR=malloc", "-X dev", "malloc_debug" },
        { "PYTHONMALLOC=malloc", "", "malloc" },
        { "PYTHONMALLOC=malloc_debug", "", "malloc_debug" },
        { "PYTHONMALLOC=malloc", "-E", "cannot get allocators name" },
        { "OBJMEM_ALLOCATOR=malloc PYTHONMALLOC=pymalloc", "",
          "cannot get allocators name" },
        { MEMCHECK_PRELOAD, "", "malloc" },
        { MEMCHECK_PRELOAD " OBJMEM_ALLOCATOR=objmem", "",
          "cannot get allocators name" },
    };
    char cmd[1024], want[128];

    if (LAUNCHER[0] == '\0')
        skip();
    write_py("name.py", "import _testcapi\n"
             "try: print(_testcapi.pymem_getallocatorsname())\n"
             "except RuntimeError as e: print(e)\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(cmd, sizeof(cmd), "%s %s name.py", LAUNCHER,
                 cases[i].args);
        assert_int_equal(run(cases[i].env, cmd), 0);
        read_out(out_shim);
        snprintf(want, sizeof(want), "%s\n", cases[i].name);
        if (strcmp(out_shim, want) != 0)
            fail_msg("%s objmem-python %s: '%s', not '%s'", cases[i].env,
                     cases[i].args, out_shim, cases[i].name);
    }
    /* OBJMEM_ALLOCATOR=debug: CPython's debug hooks over objmem. */
    snprintf(cmd, sizeof(cmd), "%s -c \"import _testcapi; "
             "_testcapi.pymem_buffer_overflow()\"", LAUNCHER);
    assert_int_not_equal(run("OBJMEM_ALLOCATOR=debug", cmd), 0);
    read_out(out_shim);
    assert_non_null(strstr(err, "bad trailing pad byte"));
}

/* Under memcheck, objmem-python's objects are the C library's blocks, so
 * a read of a freed object is seen; in objmem's pools it is not. */
static void test_launcher_under_valgrind(void **state)
{
    char cmd[1024];

    if (LAUNCHER[0] == '\0' || system("valgrind --version >/dev/null "
                                      "2>&1") != 0)
        skip();
    write_py("uaf.py", "import ctypes\n"
             "b = bytearray(b'x' * 200)\n"
             "at = id(b)\n"
             "del b\n"
             "ctypes.string_at(at, 8)\n"
             "print('read')\n");
    snprintf(cmd, sizeof(cmd), "valgrind -q --error-exitcode=9 %s uaf.py",
             LAUNCHER);
    assert_int_equal(run("", cmd), 9);
    read_out(out_shim);
    assert_string_equal(out_shim, "read\n");
    assert_non_null(strstr(err, "Invalid read of size 8"));
    assert_int_equal(run("OBJMEM_ALLOCATOR=objmem", cmd), 0);
    read_out(out_shim);
    assert_string_equal(out_shim, "read\n");
    assert_null(strstr(err, "Invalid read"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exports),
        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_main_exits),
        cmocka_unit_test(test_allocator_malloc),
        cmocka_unit_test(test_mallinfo),
        cmocka_unit_test(test_mallinfo_libc),
        cmocka_unit_test(test_mlockall),
        cmocka_unit_test(test_sqlite),
        cmocka_unit_test(test_git),
        cmocka_unit_test(test_python),
        cmocka_unit_test(test_report_file),
        cmocka_unit_test(test_report_output_option),
        cmocka_unit_test(test_verbose_and_conf),
        cmocka_unit_test(test_children),
        cmocka_unit_test(test_debug_catches_overflow),
        cmocka_unit_test(test_tool_run),
        cmocka_unit_test(test_tool_run_exit),
        cmocka_unit_test(test_trace_fatal_signal),
        cmocka_unit_test(test_tool_run_service),
        cmocka_unit_test(test_tool_run_idle_service),
        cmocka_unit_test(test_tool_run_names),
        cmocka_unit_test(test_tool_run_output),
        cmocka_unit_test(test_tool_errors),
        cmocka_unit_test(test_tool_config),
        cmocka_unit_test(test_launcher),
        cmocka_unit_test(test_launcher_allocator),
        cmocka_unit_test(test_launcher_executable),
        cmocka_unit_test(test_launcher_under_valgrind),
        cmocka_unit_test(test_trace_run),
        cmocka_unit_test(test_trace_signal_and_diff),
        cmocka_unit_test(test_trace_cxx),
        cmocka_unit_test(test_trace_named_at_load),
        cmocka_unit_test(test_trace_bad_capture),
        cmocka_unit_test(test_trace_python),
        cmocka_unit_test(test_trace_python_lines),
        cmocka_unit_test(test_trace_python_exit),
        cmocka_unit_test(test_trace_pins),
        cmocka_unit_test(test_export_folded),
        cmocka_unit_test(test_export_html),
        cmocka_unit_test(test_export_pprof),
        cmocka_unit_test(test_report_filters),
        cmocka_unit_test(test_report_json),
        cmocka_unit_test(test_report_allocs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
