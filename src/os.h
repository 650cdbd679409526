/*
 * os.h - L1: pages from the kernel, and helper threads.  The only module
 * with platform code.
 */
#ifndef OM_OS_H
#define OM_OS_H

#include "base.h"

/* The OS page size, read once. */
size_t omi_os_page_size(void);

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

/* Unmap [p, p+size).  errno is kept. */
void omi_os_unmap(void *p, size_t size);

/*
 * Give [p, p+size) back to the OS: RSS drops at once, the range stays
 * mapped and reads as zeroes when touched again.  errno is kept.
 */
void omi_os_purge(void *p, size_t size);

/*
 * Start fn(NULL) on a detached thread with a 64 KiB stack and every
 * signal blocked (a helper of objmem's must take none of the program's):
 * 0, or a negative errno.
 */
int omi_os_thread_start(void *(*fn)(void *));

/* Sleep ms milliseconds (through signals).  errno is kept. */
void omi_os_sleep_ms(long ms);

#endif /* OM_OS_H */
