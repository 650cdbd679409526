/*
 * base.h - what every module of objmem shares: branch hints, the assertion
 * tiers, the fatal path and the no-allocation printer (print.c).
 *
 * Assertion tiers (one OM_DEBUG level, set by the build mode):
 *   OM_ASSERT           OM_DEBUG >= 1   cheap, O(1)
 *   OM_ASSERT_INTERNAL  OM_DEBUG >= 2   may read other structures
 *   OM_ASSERT_EXPENSIVE OM_DEBUG >= 3   may walk whole lists
 * A failed assertion goes to omi_fatal(), which never allocates.
 */
#ifndef OM_BASE_H
#define OM_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objmem.h"

/*
 * Every declaration below this point, in every internal header, is hidden:
 * the public functions carry OM_API (default visibility) in objmem.h.
 * Hidden declarations also let the compiler reach internal globals
 * directly instead of through the GOT (one load fewer on the fast paths).
 * So system headers go before the internal ones in every file (tool.h
 * shows the exception).
 */
#pragma GCC visibility push(hidden)

#ifndef OM_DEBUG
#define OM_DEBUG 0
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define OM_NOINLINE __attribute__((noinline))
#define OM_INLINE static inline __attribute__((always_inline))
#define OM_COLD __attribute__((cold, noinline))
#define OM_NORETURN __attribute__((noreturn))
#define OM_TLS __thread __attribute__((tls_model("initial-exec")))
#define OM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define OM_ASSERT_AT(level, cond)                                           \
    do {                                                                    \
        if (OM_DEBUG >= (level) && unlikely(!(cond)))                       \
            omi_fatal("assertion", NULL, "%s:%d: %s", __FILE__, __LINE__,   \
                      #cond);                                               \
    } while (0)
#define OM_ASSERT(cond) OM_ASSERT_AT(1, cond)
#define OM_ASSERT_INTERNAL(cond) OM_ASSERT_AT(2, cond)
#define OM_ASSERT_EXPENSIVE(cond) OM_ASSERT_AT(3, cond)

/* ---- print.c: output that never allocates ---- */

/*
 * Format into buf (at most size bytes, always terminated) and return the
 * length.  Understands %% %c %s %d %u %ld %lu %zu %zd %x %lx %zx %p, a
 * field width and the '-' and '0' flags.
 */
int omi_print_format(char *buf, size_t size, const char *fmt, va_list ap);

/* Format and write(2) to fd; never allocates.  Returns bytes written. */
int omi_print_fd(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The one fatal path: print "objmem: fatal error: <check> at <addr>" and
 * the details to stderr without allocating, call the user's error handler,
 * abort.  Used for failed assertions and detected heap corruption.
 */
OM_NORETURN OM_COLD void omi_fatal(const char *check, const void *addr,
                                   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Called once from omi_fatal: a place for a debugger to stop. */
void omi_corruption_breakpoint(void);

/* om_check helper: report a broken invariant and return -EFAULT. */
int omi_check_fail(const char *invariant, const void *addr,
                   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* OM_BASE_H */
