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
#include <sys/stat.h>
#include <sys/wait.h>
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

static void summary(FILE *out, const struct report *r, bool classes)
{
    char a[32], b[32], c[32];

    fprintf(out, "objmem: %s (pid %s), allocator %s\n",
            field(r, "program"), field(r, "pid"), field(r, "allocator"));
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
        fputc('"', out);
        for (; *v; v++) {
            if (*v == '"' || *v == '\\')
                fputc('\\', out);
            if ((unsigned char)*v < 0x20)
                fprintf(out, "\\u%04x", *v);
            else
                fputc(*v, out);
        }
        fputc('"', out);
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
    const char *trace;          /* frames to trace (OBJMEM_TRACE), or NULL */
    const char *sample;         /* OBJMEM_TRACE_SAMPLE, or NULL */
};

/* --trace[=N] and --sample=BYTES, as environment values: false when
 * arg is neither. */
bool objmem_trace_option(const char *arg, const char **trace,
                         const char **sample)
{
    if (strcmp(arg, "--trace") == 0)
        *trace = "16";
    else if (strncmp(arg, "--trace=", 8) == 0)
        *trace = arg + 8;
    else if (strncmp(arg, "--sample=", 9) == 0)
        *sample = arg + 9;
    else
        return false;
    return true;
}

/* Put the tracing options in the environment (before exec). */
void objmem_trace_environment(const char *trace, const char *sample)
{
    if (trace)
        setenv("OBJMEM_TRACE", trace, 1);
    if (sample)
        setenv("OBJMEM_TRACE_SAMPLE", sample, 1);
}

static int run_usage(void)
{
    fprintf(stderr, "usage: objmem run [--stats] [--debug] [--output FILE] "
            "[--no-children]\n                  [--conf KEY:VALUE,...] "
            "[--python] [--trace[=N]] [--sample=BYTES]\n"
            "                  [--] CMD [ARGS...]\n");
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

/* The program's environment: ours, plus the shim and its options. */
static void child_environment(const struct run_opts *o, const char *lib,
                              const char *pattern)
{
    const char *old = getenv("LD_PRELOAD");
    char *preload;

    if (old && *old) {
        if (asprintf(&preload, "%s:%s", lib, old) < 0)
            _exit(127);
    } else {
        preload = strdup(lib);
    }
    setenv("LD_PRELOAD", preload, 1);
    setenv("OBJMEM_SHOW_STATS", "1", 1);
    setenv("OBJMEM_OUTPUT", pattern, 1);
    if (o->debug)
        setenv("OBJMEM_ALLOCATOR", "debug", 1);
    if (!o->children)
        setenv("OBJMEM_CHILDREN", "0", 1);
    if (o->conf)
        setenv("OBJMEM_CONF", o->conf, 1);
    if (o->python)
        setenv("PYTHONMALLOC", "malloc", 1);
    objmem_trace_environment(o->trace, o->sample);
}

/* Say where a traced run's capture went (the default name, here). */
void objmem_trace_found(long pid)
{
    char suffix[64];
    DIR *d = opendir(".");
    struct dirent *e;
    size_t len;

    if (!d)
        return;
    len = (size_t)snprintf(suffix, sizeof(suffix), ".%ld.trace", pid);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);

        if (strncmp(e->d_name, "objmem.", 7) == 0 && n > len &&
            strcmp(e->d_name + n - len, suffix) == 0)
            fprintf(stderr, "  capture in %s: objmem top %s (or leaks, "
                    "diff)\n", e->d_name, e->d_name);
    }
    closedir(d);
}

/* The report of process pid among the reports in dir, into *out (false:
 * none); the count of the others in *others, and the one of them with the
 * highest peak RSS in *big (its text NULL when there is none). */
static bool find_report(const char *dir, long pid, size_t *others,
                        struct report *out, struct report *big)
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
        if (!parse_report(text, &r)) {
            free(text);
            continue;
        }
        if (strtol(field(&r, "pid"), NULL, 10) == pid && !found) {
            *out = r;
            found = true;
            continue;
        }
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

int objmem_run(int argc, char **argv)
{
    struct run_opts o = { .children = true };
    char lib[PATH_MAX], tmpdir[] = "/tmp/objmem-run-XXXXXX";
    char pattern[PATH_MAX], dir[PATH_MAX], **cmd, *slash;
    char *py[argc + 2];
    int i, status, code;
    size_t others;
    struct report r, big;
    char peak[32];
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
        } else if (!objmem_trace_option(argv[i], &o.trace, &o.sample)) {
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
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "objmem: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        child_environment(&o, lib, pattern);
        execvp(cmd[0], cmd);
        fprintf(stderr, "objmem: cannot run '%s': %s\n", cmd[0],
                strerror(errno));
        _exit(127);
    }
    /* The terminal's ^C and ^\ are for the program. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    code = WIFEXITED(status) ? WEXITSTATUS(status)
                             : 128 + WTERMSIG(status);
    snprintf(dir, sizeof(dir), "%s", pattern);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    if (find_report(dir, pid, &others, &r, &big)) {
        fprintf(stderr, "\n");
        summary(stderr, &r, o.stats);
        if (others && o.children) {
            fprintf(stderr, "  %zu more process%s ran on objmem%s%s\n",
                    others, others == 1 ? "" : "es",
                    o.output ? ", reports in " : "", o.output ? dir : "");
            fprintf(stderr, "  the largest: %s (pid %s), peak RSS %s\n",
                    field(&big, "program"), field(&big, "pid"),
                    human(num(&big, "peak_rss"), peak, sizeof(peak)));
        }
        if (WIFSIGNALED(status))
            fprintf(stderr, "  killed by signal %d\n", WTERMSIG(status));
    } else if (code != 127) {
        const char *why = unreachable(cmd[0]);

        if (why)
            fprintf(stderr, "objmem: %s %s: the shim cannot reach its "
                    "malloc\n", cmd[0], why);
        else
            fprintf(stderr, "objmem: %s (pid %ld) left no report: it ended "
                    "without running its exit handlers (_exit, a signal), "
                    "or it does not use the C library's malloc\n", cmd[0],
                    (long)pid);
        /* A shell that ends with _exit (dash), a launcher: what it ran. */
        if (others) {
            fprintf(stderr, "objmem: %zu process%s it started ran on "
                    "objmem%s%s; the largest:\n\n", others,
                    others == 1 ? "" : "es", o.output ? ", reports in " : "",
                    o.output ? dir : "");
            summary(stderr, &big, o.stats);
        }
    }
    if (o.trace || o.sample)
        objmem_trace_found(pid);
    free(r.text);
    free(big.text);
    if (!o.output)
        remove_dir(tmpdir);
    return code;
}
