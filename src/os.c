/*
 * os.c - L1: memory from the OS.  mmap, munmap and madvise live here and
 * nowhere else, so the rest of objmem builds on any system that can give
 * it aligned, zeroed, purgeable memory.
 *
 * Helper threads (the purger, tracing's ticker) start here too: detached,
 * taking no signal, named "objmem-*", and sleep here.  They must not keep
 * a program alive: without them, a process whose main thread leaves by
 * pthread_exit ends (the C library calls exit(0)) when its last thread
 * does.  With a helper running forever it never would (and, every thread
 * left blocking every signal, not even SIGTERM ends it).  So once the
 * main thread has left (a pthread key set in it at load, and its heap's,
 * see it go), each helper asks about once a second, and every 20 ms for
 * a second after any thread's exit, whether it is among the program's
 * last (the main thread a zombie and every other thread a helper), and
 * then returns: the last one out ends the process as the program's own
 * last thread would have, atexit handlers and all (its stack is sized
 * for them), about as soon.  While the main thread runs, no helper asks
 * (no system call).
 *
 * Fault injection (om_debug_fail_maps): fail the nth map from now, or every
 * map.  The sweep in tests/test_oom.c uses it to prove that each failure
 * gives NULL + ENOMEM, leaks nothing and leaves a working allocator.
 *
 * Invariants:
 *   1. Every mapping returned is aligned as asked and zero-filled.
 *   2. errno is the same after each function as before it.
 *   3. No lock is held here: callers make these calls outside their locks.
 *   4. helpers counts only threads between omi_os_helper_begin and
 *      omi_os_helper_end, so it never exceeds the helpers alive: 0 to 2
 *      (the purger, the ticker), in a fork child too.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "os.h"

static size_t page_size;
static atomic_long fail_countdown;   /* > 0: the map that brings it to 0 fails */
static atomic_bool fail_every;

size_t omi_os_page_size(void)
{
    if (unlikely(page_size == 0)) {
        long n = sysconf(_SC_PAGESIZE);
        page_size = n > 0 ? (size_t)n : 4096;
    }
    return page_size;
}

size_t omi_os_page_round(size_t size)
{
    size_t page = omi_os_page_size();

    return (size + page - 1) & ~(page - 1);
}

size_t omi_os_rss(void)
{
    char buf[128];
    int saved = errno, fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    size_t pages = 0;
    ssize_t i = 0;

    if (fd >= 0)
        close(fd);
    errno = saved;
    /* "size resident shared ...": skip the first number and its space */
    while (i < n && buf[i] >= '0' && buf[i] <= '9')
        i++;
    if (i >= n || buf[i++] != ' ')
        return 0;
    for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        pages = pages * 10 + (size_t)(buf[i] - '0');
    return pages * omi_os_page_size();
}

int om_debug_fail_maps(long nth, bool every)
{
    if (nth < 0)
        return -EINVAL;
    atomic_store(&fail_countdown, nth);
    atomic_store(&fail_every, every);
    return 0;
}

/* True when fault injection says this map must fail. */
static bool injected_failure(void)
{
    long n;

    if (atomic_load_explicit(&fail_every, memory_order_relaxed))
        return true;
    n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &n, n - 1))
            return n == 1;
    }
    return false;
}

static _Atomic(void *) next_at;         /* tests: omi_os_debug_next_at */

static void *map_raw(size_t size)
{
    void *hint = atomic_load_explicit(&next_at, memory_order_relaxed), *p;

    if (unlikely(hint != NULL))
        hint = atomic_exchange(&next_at, NULL);
    p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void omi_os_debug_next_at(void *addr)
{
    atomic_store(&next_at, addr);
}

void *omi_os_map(size_t size, size_t align)
{
    int saved = errno;
    uintptr_t base, start;
    void *p;

    if (injected_failure())
        return NULL;
    if (align < omi_os_page_size())
        align = omi_os_page_size();
    p = map_raw(size);
    if (p && ((uintptr_t)p & (align - 1)) != 0) {
        /* Over-map by align and trim both ends to the aligned range. */
        munmap(p, size);
        p = map_raw(size + align);
        if (p) {
            base = (uintptr_t)p;
            start = (base + align - 1) & ~(uintptr_t)(align - 1);
            if (start > base)
                munmap(p, start - base);
            if (start + size < base + size + align)
                munmap((void *)(start + size), base + align - start);
            p = (void *)start;
        }
    }
    errno = saved;
    return p;
}

void *omi_os_remap(void *p, size_t old_size, size_t new_size)
{
    int saved = errno;
    void *q;

    if (injected_failure())
        return NULL;
    q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

void omi_os_unmap(void *p, size_t size)
{
    int saved = errno;

    munmap(p, size);
    errno = saved;
}

void omi_os_purge(void *p, size_t size)
{
    int saved = errno;

    madvise(p, size, MADV_DONTNEED);
    errno = saved;
}

/* ---- Helper threads ---- */

static atomic_int helpers;              /* invariant 4 */
static atomic_bool main_left;           /* the main thread has exited */
static atomic_long last_leave_ms;       /* when a thread last exited */
static pthread_key_t main_key;          /* set in the main thread only */
static bool main_key_made;
static pid_t known_pid;                 /* set at load and in fork children */

/* The main thread's exit: its value of main_key goes, this runs. */
static void main_exiting(void *value)
{
    (void)value;
    omi_os_thread_leaving();
}

/* Watch the main thread: the thread that calls fork is the child's. */
static void watch_main(void)
{
    if (main_key_made)
        pthread_setspecific(main_key, &main_key);
}

/* A fork child has none of its parent's helpers, a new main thread and a
 * pid of its own. */
static void helpers_fork_child(void)
{
    known_pid = getpid();
    atomic_store(&helpers, 0);
    atomic_store(&main_left, false);
    watch_main();
}

/* At load, in the main thread (a program's, or the launcher's), or in a
 * thread that loads objmem later (its heap's exit still tells). */
__attribute__((constructor)) static void os_init(void)
{
    known_pid = getpid();
    pthread_atfork(NULL, NULL, helpers_fork_child);
    if (gettid() != getpid())
        return;
    main_key_made = pthread_key_create(&main_key, main_exiting) == 0;
    watch_main();
}

OM_TLS bool omi_os_untraced;

bool omi_os_known_process(void)
{
    return known_pid == getpid();
}

int omi_os_thread_start(void *(*fn)(void *))
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    bool was = omi_os_untraced;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the thread takes none */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Virtual size only: the exit handlers may run here (see above). */
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    omi_os_untraced = true;
    rc = pthread_create(&t, &attr, fn, NULL);
    omi_os_untraced = was;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

void omi_os_helper_begin(const char *name)
{
    int saved = errno;

    atomic_fetch_add(&helpers, 1);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    errno = saved;
}

void omi_os_helper_end(void)
{
    atomic_fetch_sub(&helpers, 1);
}

/*
 * Field 3 (the state) and field 20 (the thread count) of /proc/self/stat,
 * which are the main thread's state and the whole process's count.  The
 * name (field 2) may hold spaces and parentheses: fields are counted from
 * its last ')'.  False when the file cannot be read.
 */
static bool read_stat(char *state, long *threads)
{
    char buf[512], *p, *end;
    ssize_t n;
    int fd, field;

    fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    for (p = end = buf; *p; p++)
        if (*p == ')')
            end = p;
    if (end == buf || end[1] != ' ' || !end[2])
        return false;
    *state = end[2];
    p = end + 3;
    for (field = 3; field < 20 && *p; p++)
        if (*p == ' ')
            field++;
    if (field != 20 || *p < '0' || *p > '9')
        return false;
    for (*threads = 0; *p >= '0' && *p <= '9'; p++)
        *threads = *threads * 10 + (*p - '0');
    return true;
}

bool omi_os_helper_orphaned(void)
{
    int saved = errno, counted = atomic_load(&helpers);    /* first */
    long threads;
    char state;
    bool orphaned;

    if (!atomic_load(&main_left))
        return false;                   /* no system call while it runs */
    orphaned = read_stat(&state, &threads) && state == 'Z' &&
               threads == (long)counted + 1;
    errno = saved;
    return orphaned;
}

static long coarse_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long omi_os_helper_poll_ms(void)
{
    if (atomic_load_explicit(&main_left, memory_order_relaxed) &&
        coarse_ms() - atomic_load(&last_leave_ms) < 1000)
        return 20;
    return 1000;
}

void omi_os_thread_leaving(void)
{
    int saved = errno;

    if (gettid() == getpid())
        atomic_store(&main_left, true);
    atomic_store(&last_leave_ms, coarse_ms());
    errno = saved;
}

int omi_os_check(void)
{
    int n = atomic_load(&helpers);

    if (n < 0 || n > OMI_OS_HELPER_KINDS)
        return omi_check_fail("os.4", NULL, "%d helpers counted, at most %d "
                              "run", n, OMI_OS_HELPER_KINDS);
    return 0;
}

void omi_os_deadline(struct timespec *until, long ms)
{
    clock_gettime(CLOCK_REALTIME, until);
    until->tv_sec += ms / 1000;
    until->tv_nsec += (ms % 1000) * 1000000L;
    if (until->tv_nsec >= 1000000000L) {
        until->tv_sec++;
        until->tv_nsec -= 1000000000L;
    }
}

void omi_os_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    int saved = errno;

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    errno = saved;
}
