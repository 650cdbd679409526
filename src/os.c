/*
 * os.c - L1: memory from the OS.  mmap, munmap and madvise live here and
 * nowhere else, so the rest of objmem builds on any system that can give
 * it aligned, zeroed, purgeable memory.
 *
 * Helper threads (the purger, tracing's ticker) start here too: detached,
 * with a small stack, taking no signal, and sleep here.
 *
 * Fault injection (om_debug_fail_maps): fail the nth map from now, or every
 * map.  The sweep in tests/test_oom.c uses it to prove that each failure
 * gives NULL + ENOMEM, leaks nothing and leaves a working allocator.
 *
 * Invariants:
 *   1. Every mapping returned is aligned as asked and zero-filled.
 *   2. errno is the same after each function as before it.
 *   3. No lock is held here: callers make these calls outside their locks.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
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

static void *map_raw(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
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

int omi_os_thread_start(void *(*fn)(void *))
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the thread takes none */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    rc = pthread_create(&t, &attr, fn, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

void omi_os_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    int saved = errno;

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    errno = saved;
}
