/*
 * benchutil.h - what the benchmark programs share: clocks, the child's
 * report lines, reading a child's output, sorting figures.  Header-only
 * (static inline), so each program takes what it uses.
 */
#ifndef OM_BENCHUTIL_H
#define OM_BENCHUTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

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

#endif /* OM_BENCHUTIL_H */
