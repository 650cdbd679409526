/*
 * print.c - X (cross-cutting): formatted output that never allocates, and
 * the one fatal path.
 *
 * The allocator cannot call stdio on its own paths: stdio allocates, and
 * under the malloc shim an allocation from inside the allocator would
 * recurse.  So assertion failures, detected corruption and om_check()
 * reports are formatted here into a stack buffer and written with write(2).
 *
 * Invariants:
 *   1. Nothing here allocates or takes a lock.
 *   2. omi_fatal() does not return: it prints, calls the user's handler
 *      (at most once, even if the handler itself faults), and aborts.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

#define LINE_MAX_BYTES 1024

struct out {
    char *buf;                 /* destination */
    size_t size;               /* capacity, including the terminator */
    size_t len;                /* characters written so far */
};

static _Atomic(om_error_fn) error_fn;
static void *_Atomic error_arg;
static atomic_int fatal_entered;

static void put_char(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

/* Write digits of v in base 10 or 16 into o, padded to width. */
static void put_number(struct out *o, uint64_t v, bool negative,
                       unsigned base, int width, bool left, char pad)
{
    char digits[24];
    int n = 0, total;

    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    total = n + (negative ? 1 : 0);
    if (negative && pad == '0')
        put_char(o, '-');
    for (int i = total; !left && i < width; i++)
        put_char(o, pad);
    if (negative && pad != '0')
        put_char(o, '-');
    while (n > 0)
        put_char(o, digits[--n]);
    for (int i = total; left && i < width; i++)
        put_char(o, ' ');
}

static void put_string(struct out *o, const char *s, int width, bool left)
{
    int n = (int)strlen(s);

    for (int i = n; !left && i < width; i++)
        put_char(o, ' ');
    while (*s)
        put_char(o, *s++);
    for (int i = n; left && i < width; i++)
        put_char(o, ' ');
}

/* Read the integer argument for conversion c with length modifier len. */
static uint64_t take_int(va_list *ap, char len, char c, bool *negative)
{
    bool is_signed = (c == 'd');
    int64_t s;

    *negative = false;
    if (len == 'z')
        s = is_signed ? (int64_t)va_arg(*ap, ptrdiff_t)
                      : (int64_t)va_arg(*ap, size_t);
    else if (len == 'l')
        s = is_signed ? va_arg(*ap, long) : (int64_t)va_arg(*ap, unsigned long);
    else
        s = is_signed ? va_arg(*ap, int) : (int64_t)va_arg(*ap, unsigned);
    if (is_signed && s < 0) {
        *negative = true;
        return (uint64_t)0 - (uint64_t)s;
    }
    return (uint64_t)s;
}

int omi_print_format(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    va_list args;

    va_copy(args, ap);
    for (const char *f = fmt; *f; f++) {
        bool left = false, negative;
        char pad = ' ', len = 0;
        int width = 0;

        if (*f != '%') {
            put_char(&o, *f);
            continue;
        }
        for (f++; *f == '-' || *f == '0'; f++)
            *f == '-' ? (left = true) : (pad = '0');
        for (; *f >= '0' && *f <= '9'; f++)
            width = width * 10 + (*f - '0');
        if (*f == 'l' || *f == 'z')
            len = *f++;
        switch (*f) {
        case 'd': case 'u': case 'x': {
            uint64_t v = take_int(&args, len, *f, &negative);
            put_number(&o, v, negative, *f == 'x' ? 16 : 10, width, left, pad);
            break;
        }
        case 'p':
            put_string(&o, "0x", 0, false);
            put_number(&o, (uintptr_t)va_arg(args, void *), false, 16, 0,
                       false, ' ');
            break;
        case 's': {
            const char *s = va_arg(args, const char *);
            put_string(&o, s ? s : "(null)", width, left);
            break;
        }
        case 'c':
            put_char(&o, (char)va_arg(args, int));
            break;
        case '%':
            put_char(&o, '%');
            break;
        default:
            if (*f == '\0')
                f--;
            break;
        }
    }
    va_end(args);
    if (size > 0)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return (int)o.len;
}

/* write(2) the whole buffer, retrying on EINTR; errno is kept. */
static int write_all(int fd, const char *s, size_t n)
{
    int saved = errno;
    size_t done = 0;

    while (done < n) {
        ssize_t w = write(fd, s + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    errno = saved;
    return (int)done;
}

int omi_print_fd(int fd, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = omi_print_format(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(line))
        n = (int)sizeof(line) - 1;
    return write_all(fd, line, (size_t)n);
}

void om_set_error_handler(om_error_fn fn, void *arg)
{
    atomic_store(&error_arg, arg);
    atomic_store(&error_fn, fn);
}

void omi_corruption_breakpoint(void)
{
    __asm__ volatile("" ::: "memory");
}

void omi_fatal(const char *check, const void *addr, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    om_error_fn fn;
    va_list ap;
    int n;

    omi_corruption_breakpoint();
    omi_print_fd(2, "objmem: fatal error: %s at %p\n", check, addr);
    va_start(ap, fmt);
    n = omi_print_format(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n > 0) {
        if (n > (int)sizeof(line) - 2)
            n = (int)sizeof(line) - 2;
        line[n++] = '\n';
        write_all(2, line, (size_t)n);
    }
    fn = atomic_load(&error_fn);
    if (fn && atomic_exchange(&fatal_entered, 1) == 0)
        fn(check, addr, atomic_load(&error_arg));
    abort();
}

int omi_check_fail(const char *invariant, const void *addr,
                   const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    va_list ap;

    omi_print_fd(2, "objmem: om_check: invariant %s broken at %p: ",
                 invariant, addr);
    va_start(ap, fmt);
    omi_print_format(line, sizeof(line), fmt, ap);
    va_end(ap);
    omi_print_fd(2, "%s\n", line);
    return -EFAULT;
}
