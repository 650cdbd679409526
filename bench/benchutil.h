/*
 * benchutil.h - what the benchmark programs share: clocks, the child's
 * report lines, starting a child and reading its output, why it failed,
 * sorting figures, measuring a whole program's CPU time and peak RSS.
 * Header-only (static inline), so each program takes what it uses.
 */
#ifndef OM_BENCHUTIL_H
#define OM_BENCHUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Say what went wrong, "PROGRAM: ...", and leave with status 3. */
__attribute__((noreturn, format(printf, 1, 2)))
static inline void die(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s: ", program_invocation_short_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(3);
}

/*
 * A zeroed array of n elements, mapped from the OS (never from the heap
 * measured) and touched, so that it is resident before any RSS is read.
 */
static inline void *map_array(size_t n, size_t elem)
{
    void *p = mmap(NULL, n * elem, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        die("mmap of %zu bytes failed", n * elem);
    memset(p, 0, n * elem);
    return p;
}

/* CPU time of the calling thread: what the figures are measured in. */
static inline double thread_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline double wall_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* qsort order for doubles. */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median, min and max of n figures (0 < n). */
static inline double median(const double *v, int n, double *lo, double *hi)
{
    double sorted[n];

    memcpy(sorted, v, (size_t)n * sizeof(*v));
    qsort(sorted, (size_t)n, sizeof(*sorted), cmp_double);
    *lo = sorted[0];
    *hi = sorted[n - 1];
    if (n % 2)
        return sorted[n / 2];
    return (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/* A note for every environment variable that starts with one of
 * prefixes (NULL-terminated): children inherit them. */
static inline void print_environment(const char *const *prefixes,
                                     const char *why)
{
    extern char **environ;

    for (char **e = environ; *e; e++)
        for (const char *const *p = prefixes; *p; p++)
            if (strncmp(*e, *p, strlen(*p)) == 0)
                printf("NOTE: the environment sets %s (children inherit "
                       "it%s)\n", *e, why);
}

/* Print one line of the child's report: "KIND text". */
__attribute__((format(printf, 2, 3)))
static inline void emit(const char *kind, const char *fmt, ...)
{
    va_list ap;

    printf("%s ", kind);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* A figure of the child's report: "val KEY NUMBER". */
static inline void emit_val(const char *key, double v)
{
    printf("val %s %.9g\n", key, v);
}

/* Read fd to its end, keeping at most size - 1 bytes; close it. */
static inline void read_all(int fd, char *buf, size_t size)
{
    char scrap[4096];
    size_t used = 0;
    ssize_t n;

    for (;;) {
        int full = used + 1 >= size;

        n = read(fd, full ? scrap : buf + used,
                 full ? sizeof(scrap) : size - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (!full)
            used += (size_t)n;
    }
    buf[used] = '\0';
    close(fd);
}

/* Add line to buf (size bytes) unless it is there already. */
static inline void add_line(char *buf, size_t size, const char *line)
{
    size_t used = strlen(buf);

    if (strstr(buf, line))
        return;
    snprintf(buf + used, size - used, "%s\n", line);
}

/* Fork and exec path with argv, its stdout into a pipe whose read end
 * goes to *fd.  The child's pid, or -1 with errno. */
static inline pid_t exec_child(const char *path, char *const argv[], int *fd)
{
    int pfd[2];
    pid_t pid;

    if (pipe(pfd) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        execv(path, argv);
        _exit(127);
    }
    close(pfd[1]);
    *fd = pfd[0];
    return pid;
}

/* Why a child failed, from its wait status and whether it printed "done"
 * or "skip"; NULL when it succeeded.  SIGALRM means it ran past
 * timeout_s. */
static inline const char *child_failure(int status, bool done, bool skip,
                                        int timeout_s, char *buf,
                                        size_t size)
{
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        snprintf(buf, size, "timed out after %d s", timeout_s);
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WEXITSTATUS(status) != 0)
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (!done && !skip)
        snprintf(buf, size, "ended without printing its results");
    else
        return NULL;
    return buf;
}

/* What a whole program cost, from wait4. */
struct child_cost {
    double cpu_s;               /* user + system */
    double rss_mb;              /* peak (ru_maxrss) */
    int status;                 /* wait status; -1 before it ran */
};

/*
 * Run argv (found on PATH) with the env entries (NULL-terminated) added,
 * stdout and stderr into /dev/null, stdin from the file in (or
 * /dev/null), and say what it cost.  The whole process counts, start-up
 * and exit included.
 */
static inline struct child_cost measure_child(char *const argv[],
                                              char *const env[],
                                              const char *in)
{
    struct child_cost c = { 0, 0, -1 };
    struct rusage ru;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        int fd = in ? open(in, O_RDONLY) : null;

        dup2(fd, 0);
        dup2(null, 1);
        dup2(null, 2);
        for (int i = 0; env[i]; i++)
            putenv(env[i]);
        execvp(argv[0], argv);
        _exit(127);
    }
    while (wait4(pid, &c.status, 0, &ru) != pid)
        if (errno != EINTR)
            die("wait4: %s", strerror(errno));
    c.cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
              (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    c.rss_mb = (double)ru.ru_maxrss / 1024.0;
    return c;
}

#endif /* OM_BENCHUTIL_H */
