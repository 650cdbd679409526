/*
 * os.h - L1: pages from the kernel, and helper threads.  The only module
 * with platform code.
 */
#ifndef OM_OS_H
#define OM_OS_H

#include "base.h"

/* The OS page size, read once. */
size_t omi_os_page_size(void);
/* size rounded up to a whole number of pages. */
size_t omi_os_page_round(size_t size);

/* The process's resident set in bytes (/proc/self/statm: open, read and
 * close each time, no stdio, no allocation); 0 when it cannot be read.
 * errno is kept. */
size_t omi_os_rss(void);

/*
 * Map size bytes of zeroed read-write memory aligned to align (a power of
 * two, at least the page size).  NULL when the kernel refuses or fault
 * injection says so.  errno is kept.
 */
void *omi_os_map(size_t size, size_t align);

/*
 * Move or resize the mapping [p, p+old_size) to new_size bytes (page
 * multiples), keeping its contents; the new address, or NULL (the old
 * mapping untouched).  errno is kept.
 */
void *omi_os_remap(void *p, size_t old_size, size_t new_size);

/* Tests: the next mapping asks the kernel for addr (a hint: the kernel
 * gives it when the range is free, somewhere else otherwise). */
void omi_os_debug_next_at(void *addr);

/* Unmap [p, p+size).  errno is kept. */
void omi_os_unmap(void *p, size_t size);

/*
 * Give [p, p+size) back to the OS: RSS drops at once, the range stays
 * mapped and reads as zeroes when touched again.  errno is kept.
 */
void omi_os_purge(void *p, size_t size);

/*
 * True while the calling thread does objmem's own work: tracing records
 * none of the allocations it makes then (the unwinder's, the
 * symboliser's, a frame source's, the C library's for a helper thread).
 * Tracing's reentrancy flag (trace.c) is this one, so that a module below
 * it can set it too.
 */
extern OM_TLS bool omi_os_untraced;

/*
 * Start fn(NULL) on a detached thread with every signal blocked (a helper
 * of objmem's must take none of the program's): 0, or a negative errno.
 * The C library's allocations for the thread (its TLS) are untraced.
 * fn calls omi_os_helper_begin first, asks omi_os_helper_orphaned every
 * omi_os_helper_poll_ms, and when it answers true calls omi_os_helper_end
 * and returns.
 */
int omi_os_thread_start(void *(*fn)(void *));

/* The kinds of helper threads: the purger and tracing's ticker. */
#define OMI_OS_HELPER_KINDS 2

/* A helper starts (counted; the thread named name, at most 15 chars). */
void omi_os_helper_begin(const char *name);

/* A helper leaves (no longer counted). */
void omi_os_helper_end(void);

/*
 * True when the program has left: its main thread is gone (pthread_exit)
 * and every other thread is a helper, so the helpers must end for the
 * process to end.  Once the main thread is known to have left it reads
 * /proc (three system calls); before, it makes none.  errno is kept.
 */
bool omi_os_helper_orphaned(void);

/* How often a helper asks: 1000 ms, or 20 once the main thread has left
 * and for a second after a thread's exit. */
long omi_os_helper_poll_ms(void);

/* A thread of the program is exiting (its heap's pthread key destructor);
 * after the main thread's, helpers ask more often.  errno is kept. */
void omi_os_thread_leaving(void);
/* Whether getpid() is the pid objmem's fork handlers last saw: false in a
 * child of vfork (or of a raw clone), which runs no fork handler and, for
 * vfork, shares its parent's memory and locks. */
bool omi_os_known_process(void);

/* om_check's part: invariant os.4.  0, or the fatal path's code. */
int omi_os_check(void);

/* The CLOCK_REALTIME time ms milliseconds from now, for a timed wait. */
struct timespec;
void omi_os_deadline(struct timespec *until, long ms);

/* Sleep ms milliseconds (through signals).  errno is kept. */
void omi_os_sleep_ms(long ms);

#endif /* OM_OS_H */
