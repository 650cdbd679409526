/*
 * run.c - `objmem run` and `objmem stats`.
 *
 * run: start a program with libobjmem-preload.so in LD_PRELOAD and the
 * shim's stats report switched on (OBJMEM_SHOW_STATS, OBJMEM_OUTPUT), wait
 * for it, then summarise the report its process wrote at exit: peak and
 * final RSS, bytes in use, arenas and pools, memory given back to the OS
 * (and the per-class table with --stats).  Programs it starts run on the
 * shim too (their reports are counted), unless --no-children.  The
 * summary goes to stderr, so the program's stdout stays its own; the exit
 * status is the program's (128 + the signal when one killed it).  A
 * program that left no report is looked at: linked statically, or set-
 * user-ID for someone else, LD_PRELOAD cannot reach it, and run says so.
 *
 * stats: read a saved report back (objmem run --output FILE keeps it, as
 * OBJMEM_SHOW_STATS=1 does) and print the same summary, or its figures
 * as JSON.
 *
 * A report (src/preload.c writes it): "# objmem report 1", then
 * "key: value" lines, a blank line, then the om_debug_malloc_stats table.
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define MAGIC "# objmem report 1\n"
#define MAX_FIELDS 64

struct report {
    char *text;                 /* the whole file */
    const char *table;          /* after the blank line */
    size_t n;
    const char *key[MAX_FIELDS];
    const char *value[MAX_FIELDS];
};

/* dir/name into out (size bytes); false when it does not fit. */
static bool join_path(char *out, size_t size, const char *dir,
                      const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);

    return n >= 0 && (size_t)n < size;
}

/* ---- Reading a report ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0;

    if (!f)
        return NULL;
    if (getdelim(&text, &len, '\0', f) < 0) {
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

/* Parse text (taken over); false when it is not a report. */
static bool parse_report(char *text, struct report *r)
{
    char *line, *next;

    memset(r, 0, sizeof(*r));
    r->text = text;
    if (!text || strncmp(text, MAGIC, strlen(MAGIC)) != 0)
        return false;
    for (line = text + strlen(MAGIC); *line && *line != '\n'; line = next) {
        char *colon, *end = strchr(line, '\n');
        next = end ? end + 1 : line + strlen(line);
        if (end)
            *end = '\0';
        colon = strstr(line, ": ");
        if (!colon || r->n == MAX_FIELDS)
            return false;
        *colon = '\0';
        r->key[r->n] = line;
        r->value[r->n++] = colon + 2;
    }
    r->table = *line == '\n' ? line + 1 : line;
    return r->n > 0;
}

static const char *field(const struct report *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->key[i], key) == 0)
            return r->value[i];
    return "";
}

static unsigned long long num(const struct report *r, const char *key)
{
    return strtoull(field(r, key), NULL, 10);
}

/* ---- The summary ---- */

/* bytes as "12.3 MiB" (or KiB, or B). */
static const char *human(unsigned long long bytes, char *buf, size_t size)
{
    if (bytes >= 1024ull * 1024 * 1024)
        snprintf(buf, size, "%.2f GiB", (double)bytes / (1 << 30));
    else if (bytes >= 1024 * 1024)
        snprintf(buf, size, "%.1f MiB", (double)bytes / (1 << 20));
    else if (bytes >= 1024)
        snprintf(buf, size, "%.1f KiB", (double)bytes / 1024);
    else
        snprintf(buf, size, "%llu B", bytes);
    return buf;
}

/* Who wrote r: "PROGRAM (pid N)", or "NAME (PROGRAM, pid N)" when it
 * was started by another name (a link: redis-server to redis-check-rdb). */
static const char *who(const struct report *r, char *buf, size_t size)
{
    const char *prog = field(r, "program"), *name = field(r, "name");
    const char *base = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;

    if (*name && strcmp(name, base) != 0)
        snprintf(buf, size, "%s (%s, pid %s)", name, prog, field(r, "pid"));
    else
        snprintf(buf, size, "%s (pid %s)", prog, field(r, "pid"));
    return buf;
}

static void summary(FILE *out, const struct report *r, bool classes)
{
    char a[32], b[32], c[32], w[PATH_MAX + 300];

    fprintf(out, "objmem: %s, allocator %s\n", who(r, w, sizeof(w)),
            field(r, "allocator"));
    fprintf(out, "  peak RSS          %s    final RSS %s\n",
            human(num(r, "peak_rss"), a, sizeof(a)),
            human(num(r, "final_rss"), b, sizeof(b)));
    fprintf(out, "  in use at exit    %s in %llu blocks, %s in %llu large "
            "blocks\n", human(num(r, "bytes_in_use"), a, sizeof(a)),
            num(r, "blocks_in_use"), human(num(r, "large_bytes"), b,
                                           sizeof(b)),
            num(r, "large_blocks"));
    fprintf(out, "  mapped            %s, %s of it resident\n",
            human(num(r, "bytes_mapped"), a, sizeof(a)),
            human(num(r, "bytes_resident"), b, sizeof(b)));
    fprintf(out, "  arenas            %llu now, %llu at most, %llu mapped in "
            "all\n", num(r, "arenas_current"), num(r, "arenas_highwater"),
            num(r, "arenas_total"));
    fprintf(out, "  pools             %llu in use, %llu free and resident, "
            "%llu given back\n", num(r, "pools_in_use"),
            num(r, "pools_free_dirty"), num(r, "pools_free_clean"));
    fprintf(out, "  given back        %s purged, %s of arenas unmapped; %s "
            "of large mappings cached\n",
            human(num(r, "bytes_purged_total"), a, sizeof(a)),
            human(num(r, "bytes_unmapped_total"), b, sizeof(b)),
            human(num(r, "large_cached_bytes"), c, sizeof(c)));
    if (classes)
        fprintf(out, "\n%s", r->table);
}

static void json(FILE *out, const struct report *r)
{
    fputs("{", out);
    for (size_t i = 0; i < r->n; i++) {
        const char *v = r->value[i];
        bool number = *v && strspn(v, "0123456789") == strlen(v);
        fprintf(out, "%s\"%s\": ", i ? ", " : "", r->key[i]);
        if (number) {
            fputs(v, out);
            continue;
        }
        objmem_json_string(out, v);
    }
    fputs("}\n", out);
}

/* ---- objmem stats ---- */

int objmem_stats(int argc, char **argv)
{
    bool as_json = false, classes = false;
    const char *path = NULL;
    struct report r;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (strcmp(argv[i], "--classes") == 0)
            classes = true;
        else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "usage: objmem stats [--json] [--classes] "
                    "FILE\n");
            return 2;
        } else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: objmem stats [--json] [--classes] FILE\n");
        return 2;
    }
    errno = 0;
    if (!parse_report(read_file(path), &r)) {
        fprintf(stderr, "objmem: %s: %s\n", path,
                r.text ? "not an objmem report" :
                errno ? strerror(errno) : "empty file");
        free(r.text);
        return 1;
    }
    if (as_json)
        json(stdout, &r);
    else
        summary(stdout, &r, classes);
    free(r.text);
    return 0;
}

/* ---- objmem run ---- */

/* libobjmem-preload.so: OBJMEM_PRELOAD_LIB, beside this program (the
 * build tree), or in the library directory of its install. */
static bool find_preload(char *out, size_t size)
{
    const char *env = getenv("OBJMEM_PRELOAD_LIB");
    char exe[PATH_MAX], *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *where[] = { "", "/" OM_REL_LIBDIR };

    if (env && *env) {
        int len = snprintf(out, size, "%s", env);
        return len >= 0 && (size_t)len < size && access(out, R_OK) == 0;
    }
    if (n <= 0)
        return false;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    *slash = '\0';
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        int len = snprintf(out, size, "%s%s/libobjmem-preload.so", exe,
                           where[i]);
        if (len >= 0 && (size_t)len < size && access(out, R_OK) == 0)
            return true;
    }
    return false;
}

struct run_opts {
    bool stats, debug, children, python;
    const char *output;         /* the report's path pattern, or NULL */
    const char *conf;
    struct objmem_trace_opts t;
};

/* --trace[=N], --sample=BYTES and --follow-fork into t: false when arg
 * is none of them. */
bool objmem_trace_option(const char *arg, struct objmem_trace_opts *t)
{
    if (strcmp(arg, "--trace") == 0)
        t->trace = "16";
    else if (strncmp(arg, "--trace=", 8) == 0)
        t->trace = arg + 8;
    else if (strncmp(arg, "--sample=", 9) == 0)
        t->sample = arg + 9;
    else if (strcmp(arg, "--follow-fork") == 0)
        t->forks = true;
    else
        return false;
    return true;
}

/* Put the tracing options in the environment (before exec). */
void objmem_trace_environment(const struct objmem_trace_opts *t)
{
    if (t->trace)
        setenv("OBJMEM_TRACE", t->trace, 1);
    if (t->sample)
        setenv("OBJMEM_TRACE_SAMPLE", t->sample, 1);
    if (t->forks)
        setenv("OBJMEM_TRACE_FORKS", "1", 1);
}

static int run_usage(void)
{
    fprintf(stderr, "usage: objmem run [--stats] [--debug] [--output FILE] "
            "[--no-children]\n                  [--conf KEY:VALUE,...] "
            "[--python] [--trace[=N]] [--sample=BYTES]\n"
            "                  [--follow-fork] [--] CMD [ARGS...]\n");
    return 2;
}

/* prog as execvp finds it (a name without a slash searched in PATH)
 * into path; false when not found. */
static bool find_program(const char *prog, char *path, size_t size)
{
    const char *dirs = getenv("PATH"), *end;

    if (strchr(prog, '/'))
        return snprintf(path, size, "%s", prog) < (int)size;
    for (dirs = dirs ? dirs : "/usr/bin:/bin"; *dirs; dirs = end + !!*end) {
        end = strchrnul(dirs, ':');
        snprintf(path, size, "%.*s/%s", end == dirs ? 1 : (int)(end - dirs),
                 end == dirs ? "." : dirs, prog);
        if (access(path, X_OK) == 0)
            return true;
    }
    return false;
}

/* The signals a traced run's capture.c defers, to write first. */
static bool fatal_handled(int sig)
{
    return sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
}

/* Why LD_PRELOAD cannot reach prog's malloc, or NULL when it can (or
 * prog is not a 64-bit ELF file): linked statically (no interpreter), or
 * set-user-ID or set-group-ID for someone else (the loader runs it
 * securely and ignores a preload path). */
static const char *unreachable(const char *prog)
{
    char path[PATH_MAX];
    Elf64_Ehdr eh;
    Elf64_Phdr ph;
    struct stat st;
    bool interp = false;
    int fd;

    if (!find_program(prog, path, sizeof(path)) ||
        (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(ph)) {
        close(fd);
        return NULL;
    }
    for (unsigned i = 0; i < eh.e_phnum && !interp; i++)
        interp = pread(fd, &ph, sizeof(ph),
                       (off_t)(eh.e_phoff + i * sizeof(ph))) == sizeof(ph) &&
                 ph.p_type == PT_INTERP;
    close(fd);
    if (!interp)
        return "is linked statically";
    if (((st.st_mode & S_ISUID) && st.st_uid != geteuid()) ||
        ((st.st_mode & S_ISGID) && st.st_gid != getegid()))
        return "runs set-user-ID or set-group-ID (the loader ignores "
               "LD_PRELOAD there)";
    return NULL;
}

/* This run's id, OBJMEM_RUN: the program's pid and a nonce of the
 * run's start (a pid comes back; the directory may hold older reports). */
static void run_id(char *out, size_t size, long pid, unsigned long nonce)
{
    snprintf(out, size, "%ld.%lx", pid, nonce);
}

/* The program's environment: ours, plus the shim and its options. */
static void child_environment(const struct run_opts *o, const char *lib,
                              const char *pattern, unsigned long nonce)
{
    const char *old = getenv("LD_PRELOAD");
    char *preload, id[64];

    if (old && *old) {
        if (asprintf(&preload, "%s:%s", lib, old) < 0)
            _exit(127);
    } else {
        preload = strdup(lib);
    }
    setenv("LD_PRELOAD", preload, 1);
    setenv("OBJMEM_SHOW_STATS", "1", 1);
    setenv("OBJMEM_OUTPUT", pattern, 1);
    run_id(id, sizeof(id), (long)getpid(), nonce);
    setenv("OBJMEM_RUN", id, 1);
    if (o->debug)
        setenv("OBJMEM_ALLOCATOR", "debug", 1);
    if (!o->children)
        setenv("OBJMEM_CHILDREN", "0", 1);
    if (o->conf)
        setenv("OBJMEM_CONF", o->conf, 1);
    if (o->python)
        setenv("PYTHONMALLOC", "malloc", 1);
    objmem_trace_environment(&o->t);
}

/* The pid in a capture's default name, objmem.PROG.PID.trace (0: not
 * such a name). */
static long capture_pid(const char *name)
{
    size_t n = strlen(name);
    const char *dot;
    char *end;
    long pid;

    if (strncmp(name, "objmem.", 7) != 0 || n < 13 ||
        strcmp(name + n - 6, ".trace") != 0)
        return 0;
    for (dot = name + n - 7; dot > name + 6 && *dot != '.'; dot--)
        ;
    if (dot <= name + 6)
        return 0;
    pid = strtol(dot + 1, &end, 10);
    return end == name + n - 6 && pid > 0 ? pid : 0;
}

#define MAX_SHOWN 6

/* Say where a traced run's captures went (the default names, here): the
 * program's (pid), then those of the processes it started (n pids). */
static void trace_found(long pid, const long *pids, size_t n)
{
    DIR *d = opendir(".");
    struct dirent *e;
    char shown[MAX_SHOWN][NAME_MAX + 1];
    size_t more = 0;

    if (!d)
        return;
    while ((e = readdir(d))) {
        long p = capture_pid(e->d_name);
        size_t i;

        if (p == 0)
            continue;
        if (p == pid) {
            fprintf(stderr, "  capture in %s: objmem top %s (or leaks, "
                    "diff)\n", e->d_name, e->d_name);
            continue;
        }
        for (i = 0; i < n && pids[i] != p; i++)
            ;
        if (i < n && more < MAX_SHOWN)
            snprintf(shown[more], sizeof(shown[more]), "%s", e->d_name);
        more += i < n;
    }
    closedir(d);
    if (more == 0)
        return;
    fprintf(stderr, "  %zu more capture%s, of the processes it started:",
            more, more == 1 ? "" : "s");
    for (size_t i = 0; i < more && i < MAX_SHOWN; i++)
        fprintf(stderr, " %s", shown[i]);
    if (more > MAX_SHOWN)
        fprintf(stderr, " (and %zu more)", more - MAX_SHOWN);
    fprintf(stderr, "\n");
}

#define MAX_PIDS 1024

/* The pids of the other reports find_report saw (the first MAX_PIDS). */
static long other_pids[MAX_PIDS];

/* The report of process pid among the reports of run id in dir, into
 * *out (false: none); the count of the others in *others (their pids in
 * other_pids), and the one of them with the highest peak RSS in *big
 * (its text NULL when there is none).  Reports of other runs, or of no
 * run, are not this one's. */
static bool find_report(const char *dir, long pid, const char *id,
                        size_t *others, struct report *out,
                        struct report *big)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    *others = 0;
    out->text = NULL;
    big->text = NULL;
    if (!d)
        return false;
    while ((e = readdir(d))) {
        char path[PATH_MAX], *text;
        struct report r;
        if (e->d_name[0] == '.')
            continue;
        if (!join_path(path, sizeof(path), dir, e->d_name))
            continue;
        text = read_file(path);
        if (!parse_report(text, &r) || strcmp(field(&r, "run"), id) != 0) {
            free(text);
            continue;
        }
        if (strtol(field(&r, "pid"), NULL, 10) == pid && !found) {
            *out = r;
            found = true;
            continue;
        }
        if (*others < MAX_PIDS)
            other_pids[*others] = strtol(field(&r, "pid"), NULL, 10);
        (*others)++;
        if (!big->text || num(&r, "peak_rss") > num(big, "peak_rss")) {
            free(big->text);
            *big = r;
        } else {
            free(r.text);
        }
    }
    closedir(d);
    return found;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char path[PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (join_path(path, sizeof(path), dir, e->d_name))
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/*
 * Signals sent to `objmem run` itself go on to the program, as sudo and
 * timeout pass them: kill -TERM (a service manager, pkill) stops the
 * program, whose report is then summarised, instead of leaving it
 * running with no one to wait for it; kill -USR2 asks a traced program
 * for a capture.  A signal the kernel sent (^C, ^\ and a window change
 * from the terminal, a hang-up) reached the program's process group
 * already, the program included, and is not sent twice; nor is one the
 * program sent.
 */
static const int relay_signals[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH,
};
static volatile pid_t relay_pid;

static void relay(int sig, siginfo_t *info, void *context)
{
    int saved = errno;

    (void)context;
    if (info->si_code <= 0 && info->si_pid != relay_pid)
        kill(relay_pid, sig);
    errno = saved;
}

/* Relay the signals above to pid from now on (they are blocked). */
static void relay_to(pid_t pid)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = relay;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    relay_pid = pid;
    for (size_t k = 0; k < sizeof(relay_signals) / sizeof(*relay_signals); k++)
        sigaction(relay_signals[k], &sa, NULL);
}

int objmem_run(int argc, char **argv)
{
    struct run_opts o = { .children = true };
    char lib[PATH_MAX], tmpdir[] = "/tmp/objmem-run-XXXXXX";
    char pattern[PATH_MAX], dir[PATH_MAX], **cmd, *slash;
    char *py[argc + 2];
    int i, status, code;
    size_t others;
    struct report r, big;
    char peak[32], w[PATH_MAX + 300], id[64];
    sigset_t relayed, mask;
    struct timespec now;
    struct rusage ru = { 0 };
    unsigned long nonce;
    pid_t pid;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--stats") == 0) {
            o.stats = true;
        } else if (strcmp(argv[i], "--debug") == 0) {
            o.debug = true;
        } else if (strcmp(argv[i], "--no-children") == 0) {
            o.children = false;
        } else if (strcmp(argv[i], "--python") == 0) {
            o.python = true;
        } else if (strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            o.output = argv[++i];
        } else if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc) {
            o.conf = argv[++i];
        } else if (!objmem_trace_option(argv[i], &o.t)) {
            return run_usage();
        }
    }
    if (i >= argc)
        return run_usage();
    cmd = argv + i;
    if (o.python) {             /* python3 ARGS..., on the shim */
        py[0] = getenv("OBJMEM_PYTHON") ? getenv("OBJMEM_PYTHON")
                                        : "python3";
        memcpy(py + 1, cmd, (size_t)(argc - i) * sizeof(char *));
        py[argc - i + 1] = NULL;
        cmd = py;
    }
    if (!find_preload(lib, sizeof(lib))) {
        fprintf(stderr, "objmem: cannot find libobjmem-preload.so (set "
                "OBJMEM_PRELOAD_LIB to its path)\n");
        return 2;
    }
    if (o.output) {
        snprintf(pattern, sizeof(pattern), "%s", o.output);
    } else {
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "objmem: cannot make a directory for the "
                    "report: %s\n", strerror(errno));
            return 2;
        }
        snprintf(pattern, sizeof(pattern), "%s/objmem.%%p.stats", tmpdir);
    }
    clock_gettime(CLOCK_REALTIME, &now);
    nonce = (unsigned long)now.tv_sec * 1000000000ul ^
            (unsigned long)now.tv_nsec ^ (unsigned long)getpid() << 40;
    fflush(NULL);
    sigemptyset(&relayed);
    for (size_t k = 0; k < sizeof(relay_signals) / sizeof(*relay_signals); k++)
        sigaddset(&relayed, relay_signals[k]);
    sigprocmask(SIG_BLOCK, &relayed, &mask);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "objmem: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &mask, NULL);
        child_environment(&o, lib, pattern, nonce);
        execvp(cmd[0], cmd);
        fprintf(stderr, "objmem: cannot run '%s': %s\n", cmd[0],
                strerror(errno));
        _exit(127);
    }
    relay_to(pid);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
        ;
    code = WIFEXITED(status) ? WEXITSTATUS(status)
                             : 128 + WTERMSIG(status);
    snprintf(dir, sizeof(dir), "%s", pattern);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    run_id(id, sizeof(id), (long)pid, nonce);
    if (find_report(dir, pid, id, &others, &r, &big)) {
        fprintf(stderr, "\n");
        summary(stderr, &r, o.stats);
        if (others && o.children) {
            fprintf(stderr, "  %zu more process%s ran on objmem%s%s\n",
                    others, others == 1 ? "" : "es",
                    o.output ? ", reports in " : "", o.output ? dir : "");
            fprintf(stderr, "  the largest: %s, peak RSS %s\n",
                    who(&big, w, sizeof(w)),
                    human(num(&big, "peak_rss"), peak, sizeof(peak)));
        }
        if (WIFSIGNALED(status))
            fprintf(stderr, "  killed by signal %d\n", WTERMSIG(status));
    } else if (code != 127) {
        const char *why = unreachable(cmd[0]);

        if (why)
            fprintf(stderr, "objmem: %s %s: the shim cannot reach its "
                    "malloc\n", cmd[0], why);
        else if (WIFSIGNALED(status))
            fprintf(stderr, "objmem: %s (pid %ld) left no report: signal "
                    "%d (%s) ended it before its exit handlers%s\n", cmd[0],
                    (long)pid, WTERMSIG(status), strsignal(WTERMSIG(status)),
                    fatal_handled(WTERMSIG(status)) && !o.t.trace &&
                    !o.t.sample ? " (with --trace, SIGTERM, SIGINT and "
                    "SIGHUP leave one)" : "");
        else
            fprintf(stderr, "objmem: %s (pid %ld) left no report: it ended "
                    "without running its exit handlers (_exit, a signal), "
                    "or it does not use the C library's malloc\n", cmd[0],
                    (long)pid);
        /* What the kernel counted is known whatever the program did. */
        fprintf(stderr, "  peak RSS %s (the kernel's count)\n",
                human((unsigned long long)ru.ru_maxrss * 1024, peak,
                      sizeof(peak)));
        /* A shell that ends with _exit (dash), a launcher: what it ran. */
        if (others) {
            fprintf(stderr, "objmem: %zu process%s it started ran on "
                    "objmem%s%s; the largest:\n\n", others,
                    others == 1 ? "" : "es", o.output ? ", reports in " : "",
                    o.output ? dir : "");
            summary(stderr, &big, o.stats);
        }
    }
    if (o.t.trace || o.t.sample)
        trace_found(pid, other_pids, others < MAX_PIDS ? others : MAX_PIDS);
    free(r.text);
    free(big.text);
    if (!o.output)
        remove_dir(tmpdir);
    return code;
}
