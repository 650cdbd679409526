/*
 * report.c - X (cross-cutting): the stats report as a file, what the shim
 * and objmem-python write at exit with show_stats and `objmem stats`
 * reads back (tools/run.c):
 *
 *   # objmem report 1
 *   program: /usr/bin/sqlite3            "key: value" lines: who (its
 *   name: sqlite3                        file, the name it was started
 *   pid: 4242                            as), the `objmem run` it is
 *   ppid: 4241                           part of (OBJMEM_RUN, when
 *   run: 4242.17a9f3c2                   set), peak and final RSS,
 *   peak_rss: 19922944                   om_stats_get's figures
 *   ...
 *                                        a blank line
 *   Small block threshold = 512, ...     om_debug_malloc_stats's report
 *
 * It goes where the output option says (options.c): a file named from a
 * pattern (%p the pid, %e the program's name; without %p, one process
 * keeps the name and others add .PID, as does one that finds the name
 * written by another since it started), or stderr, or stdout.  It
 * allocates (stdio), so it is never called on an allocation path: only
 * from destructors and the user's own calls.
 *
 * Invariants:
 *   1. The header holds one "key: value" line per figure, no blank line
 *      before the table.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "os.h"

/* The name the program was started as: argv[0]'s last component when
 * the library loaded (before a program rewrites argv as its title), as
 * core(5)'s %e.  redis-server is a link to redis-check-rdb, python3 to
 * python3.11: the name is the one the user typed.  And the directory it
 * started in, where a relative file name goes: a server that moves to
 * its data directory (PostgreSQL) or to / (a daemon) would otherwise
 * write its report and captures there, or fail to. */
static char invoked[256];
static char start_dir[4096];
static pid_t load_pid;                  /* the process that loaded us */
static struct timespec load_time;       /* when, by the coarse clock */
static _Atomic dev_t last_dev;          /* the report file it last wrote */
static _Atomic ino_t last_ino;

__attribute__((constructor)) static void remember_start(int argc, char **argv)
{
    const char *base;
    size_t n = 0;

    load_pid = getpid();
    clock_gettime(CLOCK_REALTIME_COARSE, &load_time);
    if (!getcwd(start_dir, sizeof(start_dir)))
        start_dir[0] = '\0';
    if (argc < 1 || !argv || !argv[0])
        return;
    base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (; base[n] && n + 1 < sizeof(invoked); n++)
        invoked[n] = base[n];
    invoked[n] = '\0';
}

/* The program's name (invoked, else its file's last component) into
 * name (size bytes); its file into exe (PATH_MAX bytes, "" when
 * unknown). */
static void program_names(char *name, size_t size, char *exe)
{
    ssize_t len = readlink("/proc/self/exe", exe, PATH_MAX - 1);
    const char *base;

    exe[len > 0 ? len : 0] = '\0';
    base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
    snprintf(name, size, "%s", invoked[0] ? invoked
                               : base[0] ? base : "prog");
}

/* Whether a file name without %p is this process's as it stands: the
 * program `objmem run` started (the pid OBJMEM_RUN begins with), else
 * the process that loaded objmem.  Any other (a forked worker, a
 * program it ran) adds ".PID", as core(5)'s core_uses_pid, instead of
 * writing over the program's report. */
static bool owns_plain_name(void)
{
    const char *run = omi_option_str(OMI_OPT_RUN);

    if (run[0])
        return strtol(run, NULL, 10) == (long)getpid();
    return load_pid == 0 || load_pid == getpid();
}

/* Whether another process wrote path since this one loaded us: a shell
 * and the program it runs (an exec'd process owns a plain name too), given
 * one name, both write at exit, the shell last.  File times come from the
 * coarse clock, as load_time does; a file older within the same tick
 * counts as another's (the name then only gains .PID).  The report this
 * process last wrote is its own. */
static bool written_since_load(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 &&
           (st.st_ino != atomic_load(&last_ino) ||
            st.st_dev != atomic_load(&last_dev)) &&
           (st.st_mtim.tv_sec > load_time.tv_sec ||
            (st.st_mtim.tv_sec == load_time.tv_sec &&
             st.st_mtim.tv_nsec >= load_time.tv_nsec));
}

/* Expand a file name pattern: %p the pid, %e the program's name; a
 * relative one is taken from the directory the program started in. */
void omi_report_expand(char *out, size_t size, const char *pattern)
{
    char base[256], exe[PATH_MAX];
    size_t n = 0;
    bool pid = false;

    program_names(base, sizeof(base), exe);
    if (pattern[0] != '/' && start_dir[0] && size > 0)
        n = (size_t)snprintf(out, size, "%s/", start_dir);
    if (n >= size)
        n = size - 1;
    for (const char *c = pattern; *c && n + 1 < size; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            n += (size_t)snprintf(out + n, size - n, "%d", (int)getpid());
            pid = true;
            c++;
        } else if (c[0] == '%' && c[1] == 'e') {
            n += (size_t)snprintf(out + n, size - n, "%s", base);
            c++;
        } else if (c[0] == '%' && c[1] == '%') {
            out[n++] = '%';
            c++;
        } else {
            out[n++] = *c;
        }
        if (n >= size)
            n = size - 1;
    }
    out[n < size ? n : size - 1] = '\0';
    if (!pid && (!owns_plain_name() || written_since_load(out)) && n < size)
        n += (size_t)snprintf(out + n, size - n, ".%d", (int)getpid());
    out[n < size ? n : size - 1] = '\0';
}

static FILE *open_output(void)
{
    const char *o = omi_option_str(OMI_OPT_OUTPUT);
    char path[OMI_PATH_MAX];
    struct stat st;
    int fd;

    if (strcmp(o, "stderr") == 0)
        return fdopen(dup(2), "w");
    if (strcmp(o, "stdout") == 0)
        return fdopen(dup(1), "w");
    omi_report_expand(path, sizeof(path), o);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && fstat(fd, &st) == 0) {
        /* its own, written again, keeps its name */
        atomic_store(&last_ino, st.st_ino);
        atomic_store(&last_dev, st.st_dev);
    }
    return fd < 0 ? NULL : fdopen(fd, "w");
}

int om_report_write(void)
{
    struct om_stats s;
    struct rusage ru;
    char name[256], exe[PATH_MAX];
    size_t rss, peak;
    FILE *out = open_output();

    if (!out)
        return -errno;
    program_names(name, sizeof(name), exe);
    /* The kernel's high-water mark may lag the resident count it took it
     * from (its counters are cached per thread or per CPU): the peak is
     * never below what is resident now. */
    rss = omi_os_rss();
    getrusage(RUSAGE_SELF, &ru);
    peak = (size_t)ru.ru_maxrss * 1024;
    if (peak < rss)
        peak = rss;
    om_stats_get(&s);
    fprintf(out, "# objmem report 1\n");
    fprintf(out, "program: %s\nname: %s\npid: %d\nppid: %d\n", exe, name,
            (int)getpid(), (int)getppid());
    if (omi_option_str(OMI_OPT_RUN)[0])
        fprintf(out, "run: %s\n", omi_option_str(OMI_OPT_RUN));
    fprintf(out, "allocator: %s\n", omi_option_str(OMI_OPT_ALLOCATOR));
    fprintf(out, "peak_rss: %zu\nfinal_rss: %zu\n", peak, rss);
    fprintf(out, "bytes_in_use: %zu\nblocks_in_use: %zu\n"
            "large_blocks: %zu\nlarge_bytes: %zu\n"
            "large_cached_bytes: %zu\nlarge_maps_total: %llu\n"
            "bytes_mapped: %zu\nbytes_resident: %zu\n"
            "arenas_current: %zu\narenas_highwater: %zu\n"
            "arenas_total: %zu\npools_in_use: %zu\n"
            "pools_free_dirty: %zu\npools_free_clean: %zu\n"
            "bytes_purged_total: %llu\nbytes_unmapped_total: %llu\n"
            "heaps_active: %zu\nheaps_abandoned: %zu\n\n",
            s.bytes_in_use, s.blocks_in_use, s.large_blocks, s.large_bytes,
            s.large_cached_bytes, (unsigned long long)s.large_maps_total,
            s.bytes_mapped, s.bytes_resident, s.arenas_current,
            s.arenas_highwater, s.arenas_total, s.pools_in_use,
            s.pools_free_dirty, s.pools_free_clean,
            (unsigned long long)s.bytes_purged_total,
            (unsigned long long)s.bytes_unmapped_total, s.heaps_active,
            s.heaps_abandoned);
    om_debug_malloc_stats(out);
    return fclose(out) == 0 ? 0 : -errno;
}

