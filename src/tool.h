/*
 * tool.h - X (cross-cutting): telling AddressSanitizer about the pools.
 *
 * A pool block stays mapped after it is freed, so without help ASan sees
 * nothing wrong with a use after free inside a pool.  In ASan builds a
 * block is poisoned when it goes back to a free list, the cache or a
 * remote list, and unpoisoned when it is handed out; a page is poisoned
 * whole when its blocks are threaded.  The functions that read or write
 * the links inside free blocks are marked OM_NO_ASAN: the allocator may
 * touch free blocks, the program may not.  Elsewhere (no ASan) every
 * name here is a no-op, folded away.
 *
 * Invariants (ASan builds):
 *   1. A block on any free list, in any cache or on any remote list is
 *      poisoned; a block handed out is not.
 *   2. Nothing poisoned is unmapped: an arena is unpoisoned before it
 *      goes back to the OS, since the poison would outlive the mapping.
 */
#ifndef OM_TOOL_H
#define OM_TOOL_H

#include "base.h"

#if defined(__SANITIZE_ADDRESS__)
/* (base.h hides what follows it; the ASan runtime's functions are not
 * ours to hide) */
#pragma GCC visibility push(default)
#include <sanitizer/asan_interface.h>
#pragma GCC visibility pop
#define OM_NO_ASAN __attribute__((no_sanitize_address))
#define OM_TRACK_ASAN 1
#else
#define OM_NO_ASAN
#define OM_TRACK_ASAN 0
#endif

/* A function that reads what other threads write without their
 * cooperation, on purpose (heapmap.c's descriptors, a close picture):
 * TSan does not watch it. */
#define OM_RACY_READS __attribute__((no_sanitize_thread))

/* p (n bytes) went back to the allocator. */
OM_INLINE void omi_tool_freed(const void *p, size_t n)
{
#if OM_TRACK_ASAN
    ASAN_POISON_MEMORY_REGION(p, n);
#else
    (void)p, (void)n;
#endif
}

/* p (n bytes) is handed out. */
OM_INLINE void omi_tool_handed_out(const void *p, size_t n)
{
#if OM_TRACK_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
    (void)p, (void)n;
#endif
}

#endif /* OM_TOOL_H */
