/*
 * testutil.h - what every objmem test shares: cmocka, the leak check that
 * ends each test, and small helpers.
 */
#ifndef OM_TESTUTIL_H
#define OM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "objmem.h"

/* Blocks handed out from the pools now. */
static inline size_t blocks_in_use(void)
{
    struct om_stats s;
    assert_int_equal(om_stats_get(&s), 0);
    return s.blocks_in_use;
}

/* The end of every allocator test: sound heap, no block left over. */
static inline void assert_heap_clean(size_t blocks_before)
{
    assert_int_equal(om_check(), 0);
    assert_int_equal(blocks_in_use(), blocks_before);
}

/* Snapshots a and b have the same module table. */
static inline void assert_same_modules(const struct om_snapshot *a,
                                       const struct om_snapshot *b)
{
    struct om_module x, y;

    assert_int_equal(om_snapshot_module_count(a), om_snapshot_module_count(b));
    for (size_t i = 0; i < om_snapshot_module_count(a); i++) {
        assert_int_equal(om_snapshot_module(a, i, &x), 0);
        assert_int_equal(om_snapshot_module(b, i, &y), 0);
        assert_string_equal(x.path, y.path);
        assert_int_equal(x.start, y.start);
        assert_int_equal(x.end, y.end);
        assert_int_equal(x.bias, y.bias);
        assert_int_equal(x.build_id_size, y.build_id_size);
        assert_memory_equal(x.build_id, y.build_id, x.build_id_size);
    }
}

/* Sleep ms milliseconds, through signals. */
static inline void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Resident bytes of this process, from /proc/self/statm. */
static inline size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* splitmix64: the tests' deterministic random numbers. */
static inline uint64_t rnd_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/*
 * Run act in a forked child with its stderr in a pipe.  The child must die
 * (objmem's fatal path aborts; an ASan report exits non-zero) and say
 * what.
 */
/* Run act() in a child with stderr into out; exit(3) after it when
 * exits (destructors run), _exit(0) otherwise.  Returns the wait status. */
static inline int run_child(void (*act)(void), bool exits, char *out,
                            size_t size)
{
    int fds[2], status;
    ssize_t n, len = 0;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        act();
        if (exits)
            exit(3);
        _exit(0);
    }
    close(fds[1]);
    while ((n = read(fds[0], out + len, size - 1 - (size_t)len)) > 0)
        len += n;
    out[len] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* act() dies (a signal or a failing exit) and says what on stderr. */
static inline void assert_dies_saying(void (*act)(void), const char *what)
{
    char out[8192];
    int status = run_child(act, false, out, sizeof(out));

    assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!strstr(out, what))
        fail_msg("the child died without saying \"%s\"; it said:\n%s", what,
                 out);
}

/* act() returns, and the process, exiting normally, says what. */
static inline void assert_exits_saying(void (*act)(void), const char *what)
{
    char out[8192];
    int status = run_child(act, true, out, sizeof(out));

    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    assert_non_null(strstr(out, what));
}

/*
 * check(arg), an auditor (om_check, or one of its parts), finds what a
 * test broke by hand: it returns -EFAULT and its report on stderr
 * (captured here in a temporary file) names the broken invariant
 * ("invariant heap.3 broken at ...").  The test then mends what it broke
 * and sees the auditor pass again.
 */
static inline void assert_finds(int (*check)(const void *), const void *arg,
                                const char *invariant)
{
    char path[] = "/tmp/om_check_XXXXXX", out[4096], want[64];
    int fd = mkstemp(path), saved = dup(2), rc;
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    fflush(stderr);
    assert_int_equal(dup2(fd, 2), 2);
    rc = check(arg);
    dup2(saved, 2);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    snprintf(want, sizeof(want), "invariant %s broken", invariant);
    if (rc != -EFAULT || !strstr(out, want))
        fail_msg("the check gave %d and said \"%s\", not -EFAULT and "
                 "\"%s\"", rc, out, want);
}

static inline int om_check_of(const void *unused)
{
    (void)unused;
    return om_check();
}

/* om_check() finds the invariant broken. */
static inline void assert_check_finds(const char *invariant)
{
    assert_finds(om_check_of, NULL, invariant);
}

/* The tracing tests' fixtures: every test ends with tracing off, no
 * frame source, a sound heap and no block left. */
static size_t trace_blocks0;

static inline int trace_setup(void **state)
{
    (void)state;
    trace_blocks0 = blocks_in_use();
    return 0;
}

static inline int trace_teardown(void **state)
{
    (void)state;
    om_trace_stop();
    om_trace_set_frame_source(NULL, NULL);
    assert_false(om_trace_is_tracing());
    assert_heap_clean(trace_blocks0);
    return 0;
}

/* An allocation site of its own for tracing tests: name(size) returns
 * expr (which allocates size bytes), neither inlined nor a tail call, so
 * that the traceback's frame is in name. */
#define TEST_SITE(name, expr)                                               \
    static __attribute__((noinline)) void *name(size_t size)                \
    {                                                                       \
        void *p_ = (expr);                                                  \
                                                                            \
        __asm__ volatile("" ::: "memory");                                  \
        return p_;                                                          \
    }

#endif /* OM_TESTUTIL_H */
