/*
 * debug.c - X (cross-cutting): the debug hooks, objmem's PYTHONMALLOC=debug.
 *
 * om_setup_debug_hooks() wraps each of the three domains in a hook table.
 * The hooks ask the wrapped ("underlying") table for 3 words more than the
 * caller wants, frame the caller's bytes with guard bytes and a small
 * header, and check the frame when the block comes back.  The byte values
 * and the layout are CPython's, so a dump reads the same in both:
 *
 *   CLEANBYTE 0xCD      fresh bytes from malloc and from realloc growth
 *                       (calloc leaves zeroes)
 *   DEADBYTE 0xDD       every byte of a freed block, header included
 *   FORBIDDENBYTE 0xFD  the guard bytes around the data
 *
 * A block, S = sizeof(size_t) = 8, N = the size asked for, p = the pointer
 * the caller gets, base = p - 2S = the pointer of the underlying table:
 *
 *   base                      p                       p+N        p+N+S
 *   |  N, big-endian  |id|pad |  data: N bytes        |  trailer |
 *   |     S bytes     |1 |S-1 |  0xCD (malloc),       |  S bytes |
 *   |                 |  |0xFD|  0x00 (calloc)        |  0xFD    |
 *
 * The id byte names the domain that allocated the block: 'r' (RAW),
 * 'm' (MEM), 'o' (OBJ).  p stays 16-byte aligned when base is.  Storing N
 * big-endian makes it readable in a hex dump.
 *
 * Each domain has one static context, {api_id, underlying}; the hook table
 * of a domain carries it as ctx.  The contexts are written once, by
 * om_setup_debug_hooks(), before the hooks go live; afterwards the hooks
 * only read them, and everything else they touch is the block itself or
 * the stack, so they are as thread-safe as the tables they wrap.
 *
 * free and realloc check the frame first.  A failed check prints the block
 * as CPython's _PyObject_DebugDumpAddress does, then goes to omi_fatal()
 * with the check's name; neither allocates.  The checks, in order:
 *
 *   "double free"            the id byte and its pad read 0xDD: the hooks
 *                            have freed this block already.  Some
 *                            allocators reuse the first words of a free
 *                            block (glibc writes 16 bytes there), so a
 *                            block whose id is no API id and whose first
 *                            data word is all 0xDD counts as freed too.
 *   "bad ID"                 the block came from another domain.
 *   "bad leading pad byte"   a write before p (buffer underflow).
 *   "bad trailing pad byte"  a write at p+N or beyond (buffer overflow).
 *
 * realloc poisons the old block before calling the underlying realloc: it
 * saves up to ERASE_BYTES data bytes at each end and writes 0xDD over them
 * and over the header and trailer.  If the block moves, the old copy is
 * left reading as freed memory; the new one gets its frame rewritten and
 * the saved bytes back.  If the underlying realloc fails, the old block is
 * restored the same way, so it stays valid and intact.
 *
 * Invariants (each checked on every free and realloc, by check_block()):
 *   1. A live hooked block of domain d has api id hooks[d].api_id at p[-S].
 *   2. p[-S+1 : 0] and p[N : N+S] are FORBIDDENBYTE, N read at p[-2S].
 *   3. A block freed by the hooks reads DEADBYTE from base to base+N+3S
 *      until its underlying allocator reuses it.
 *   4. The hooks never change errno when they succeed, and never allocate
 *      except through the underlying table.
 *
 * The hooks go on at start-up when the environment has
 * OBJMEM_ALLOCATOR=debug or malloc_debug (a constructor, which also gives
 * MEM and OBJ the system table for malloc and malloc_debug; a program
 * that starts before
 * constructors run, such as a preloaded shim, calls om_setup_debug_hooks()
 * itself).  See docs/design.md, "Debug hooks".
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "options.h"

#define SST sizeof(size_t)
#define HEAD_BYTES (2 * SST)            /* size word, id byte, pad */
#define EXTRA_BYTES (3 * SST)           /* header plus trailer */
#define MAX_REQUEST ((size_t)PTRDIFF_MAX - EXTRA_BYTES)
#define ERASE_BYTES 64                  /* poisoned at each end by realloc */
#define DUMP_BYTES 8                    /* data bytes dumped at each end */

#define CLEANBYTE 0xCD
#define DEADBYTE 0xDD
#define FORBIDDENBYTE 0xFD

_Static_assert(HEAD_BYTES % 16 == 0, "the header keeps p 16-byte aligned");

/* One per domain; written by om_setup_debug_hooks() only. */
struct hook_ctx {
    char api_id;                        /* 'r', 'm' or 'o' */
    struct om_allocator underlying;     /* the table the hooks wrap */
};

static struct hook_ctx hooks[3] = {
    [OM_DOMAIN_RAW] = { .api_id = 'r' },
    [OM_DOMAIN_MEM] = { .api_id = 'm' },
    [OM_DOMAIN_OBJ] = { .api_id = 'o' },
};
static atomic_bool installed;

/* Public prefixes, for naming the function that failed a check. */
static const char *const api_prefix[3] = { "om_raw_", "om_", "om_obj_" };

/* What check_block() found wrong, in the order it looks. */
enum fault { DOUBLE_FREE, BAD_ID, BAD_LEADING_PAD, BAD_TRAILING_PAD };

/* The data bytes realloc takes out of the old block while it moves. */
struct saved_ends {
    unsigned char bytes[2 * ERASE_BYTES]; /* head bytes, then tail bytes */
    size_t head_count;                  /* saved from p[0] on */
    size_t tail_count;                  /* saved up to p[N], after head */
};

/* ---- The frame ---- */

static void write_size(unsigned char *at, size_t n)
{
    for (size_t i = SST; i > 0; i--) {
        at[i - 1] = (unsigned char)(n & 0xff);
        n >>= 8;
    }
}

static size_t read_size(const unsigned char *at)
{
    size_t n = 0;

    for (size_t i = 0; i < SST; i++)
        n = (n << 8) | at[i];
    return n;
}

static bool all_bytes(const unsigned char *at, unsigned char v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (at[i] != v)
            return false;
    return true;
}

static bool is_api_id(unsigned char id)
{
    return id == 'r' || id == 'm' || id == 'o';
}

/* Write the header and trailer of a block of size bytes at base. */
static unsigned char *frame(const struct hook_ctx *ctx, unsigned char *base,
                            size_t size)
{
    unsigned char *p = base + HEAD_BYTES;

    write_size(base, size);
    p[-(ptrdiff_t)SST] = (unsigned char)ctx->api_id;
    memset(p - SST + 1, FORBIDDENBYTE, SST - 1);
    memset(p + size, FORBIDDENBYTE, SST);
    return p;
}

static enum om_domain domain_of(const struct hook_ctx *ctx)
{
    return (enum om_domain)(ctx - hooks);
}

/* ---- Reporting: the dump, then the fatal path ---- */

/* "'m'" for an API id, "0x41" for any other byte; buf holds 8 bytes. */
static const char *api_text(unsigned char id, char *buf)
{
    static const char hex[] = "0123456789abcdef";

    if (is_api_id(id)) {
        buf[0] = '\'';
        buf[1] = (char)id;
        buf[2] = '\'';
        buf[3] = '\0';
    } else {
        memcpy(buf, "0x", 2);
        buf[2] = hex[id >> 4];
        buf[3] = hex[id & 15];
        buf[4] = '\0';
    }
    return buf;
}

/* Print the status of count pad bytes at pad; before: they precede p. */
static void dump_pads(const unsigned char *pad, size_t count, bool before)
{
    if (before)
        omi_print_fd(2, "    The %zu pad bytes at p-%zu are ", count, count);
    else
        omi_print_fd(2, "    The %zu pad bytes at tail=%p are ", count,
                     (const void *)pad);
    if (all_bytes(pad, FORBIDDENBYTE, count)) {
        omi_print_fd(2, "FORBIDDENBYTE, as expected.\n");
        return;
    }
    omi_print_fd(2, "not all FORBIDDENBYTE (0x%02x):\n", FORBIDDENBYTE);
    for (size_t i = 0; i < count; i++) {
        const char *ouch = pad[i] == FORBIDDENBYTE ? "" : " *** OUCH";

        if (before)
            omi_print_fd(2, "        at p-%zu: 0x%02x%s\n", count - i,
                         pad[i], ouch);
        else
            omi_print_fd(2, "        at tail+%zu: 0x%02x%s\n", i, pad[i],
                         ouch);
    }
}

/* Append " xx" for each of n bytes at at to line, which has room. */
static size_t put_hex(char *line, size_t len, const unsigned char *at,
                      size_t n)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        line[len++] = ' ';
        line[len++] = hex[at[i] >> 4];
        line[len++] = hex[at[i] & 15];
    }
    return len;
}

/* "    Data at p: cd cd ...": up to 8 bytes from the start, 8 at the end. */
static void dump_data(const unsigned char *p, size_t size)
{
    char line[64 + 6 * DUMP_BYTES];
    size_t len = 0, head = size < DUMP_BYTES ? size : DUMP_BYTES;

    len = put_hex(line, len, p, head);
    if (size - head > DUMP_BYTES) {
        memcpy(line + len, " ...", 4);
        len += 4;
        head = size - DUMP_BYTES;
    }
    len = put_hex(line, len, p + head, size - head);
    line[len] = '\0';
    omi_print_fd(2, "    Data at p:%s\n", size == 0 ? " <empty>" : line);
}

/*
 * Dump the block at p to stderr as CPython does.  size_known: the header's
 * size word is the block's (not a freed or foreign header), so the tail
 * and the data can be read.
 */
static void dump_block(const unsigned char *p, bool size_known)
{
    size_t size = read_size(p - HEAD_BYTES);
    char api[8];

    omi_print_fd(2, "Debug memory block at address p=%p: API %s\n",
                 (const void *)p, api_text(p[-(ptrdiff_t)SST], api));
    if (size_known)
        omi_print_fd(2, "    %zu bytes originally requested\n", size);
    else
        omi_print_fd(2, "    size word 0x%zx not trusted: the header is "
                     "freed or foreign memory\n", size);
    dump_pads(p - SST + 1, SST - 1, true);
    if (size_known) {
        dump_pads(p + size, SST, false);
        dump_data(p, size);
    }
    omi_print_fd(2, "\n");
}

/*
 * The block at p failed check during op ("free" or "realloc") in the
 * domain of ctx: dump it and die.  The details name the function, the
 * size and the domains.
 */
static OM_NORETURN OM_COLD void fail(const struct hook_ctx *ctx,
                                     const unsigned char *p, const char *op,
                                     enum fault fault)
{
    const char *fn = api_prefix[domain_of(ctx)];
    unsigned char id = p[-(ptrdiff_t)SST];
    size_t size = read_size(p - HEAD_BYTES);
    bool size_known = fault != DOUBLE_FREE && is_api_id(id) &&
                      size <= MAX_REQUEST;
    char api[8];

    dump_block(p, size_known);
    switch (fault) {
    case DOUBLE_FREE:
        omi_fatal("double free", p, "%s%s: block of API '%c' freed twice "
                  "(its header reads 0xdd: its size is lost)", fn, op,
                  ctx->api_id);
    case BAD_ID:
        omi_fatal("bad ID", p, "%s%s: block of %zu bytes allocated with "
                  "API %s, %s with API '%c'%s", fn, op, size,
                  api_text(id, api), op[0] == 'f' ? "freed" : "reallocated",
                  ctx->api_id, size_known ? "" : " (size word not trusted)");
    case BAD_LEADING_PAD:
        omi_fatal("bad leading pad byte", p, "%s%s: block of %zu bytes, API "
                  "'%c': buffer underflow: a byte before the block was "
                  "written", fn, op, size, ctx->api_id);
    case BAD_TRAILING_PAD:
    default:
        omi_fatal("bad trailing pad byte", p, "%s%s: block of %zu bytes, API "
                  "'%c': buffer overflow: a byte after the block was "
                  "written", fn, op, size, ctx->api_id);
    }
}

/* Has the block at p been freed by the hooks already? (invariant 3) */
static bool looks_freed(const unsigned char *p)
{
    const unsigned char *id = p - SST;

    if (all_bytes(id, DEADBYTE, SST))
        return true;
    return !is_api_id(*id) && all_bytes(p, DEADBYTE, SST);
}

/* Die unless p is a live block of ctx's domain with its frame intact. */
static void check_block(const struct hook_ctx *ctx, const unsigned char *p,
                        const char *op)
{
    if (unlikely(looks_freed(p)))
        fail(ctx, p, op, DOUBLE_FREE);
    if (unlikely(p[-(ptrdiff_t)SST] != (unsigned char)ctx->api_id))
        fail(ctx, p, op, BAD_ID);
    if (unlikely(!all_bytes(p - SST + 1, FORBIDDENBYTE, SST - 1)))
        fail(ctx, p, op, BAD_LEADING_PAD);
    if (unlikely(!all_bytes(p + read_size(p - HEAD_BYTES), FORBIDDENBYTE,
                            SST)))
        fail(ctx, p, op, BAD_TRAILING_PAD);
}

/* ---- The hooks ---- */

static void *hook_malloc(void *c, size_t size)
{
    const struct hook_ctx *ctx = c;
    unsigned char *base;

    if (unlikely(size > MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    base = ctx->underlying.malloc(ctx->underlying.ctx, size + EXTRA_BYTES);
    if (unlikely(base == NULL))
        return NULL;
    memset(base + HEAD_BYTES, CLEANBYTE, size);
    return frame(ctx, base, size);
}

static void *hook_calloc(void *c, size_t nelem, size_t elsize)
{
    const struct hook_ctx *ctx = c;
    unsigned char *base;
    size_t size;

    if (unlikely(__builtin_mul_overflow(nelem, elsize, &size) ||
                 size > MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    base = ctx->underlying.calloc(ctx->underlying.ctx, 1, size + EXTRA_BYTES);
    if (unlikely(base == NULL))
        return NULL;
    return frame(ctx, base, size);
}

static void hook_free(void *c, void *ptr)
{
    const struct hook_ctx *ctx = c;
    unsigned char *p = ptr, *base;

    if (ptr == NULL)
        return;
    check_block(ctx, p, "free");
    base = p - HEAD_BYTES;
    memset(base, DEADBYTE, read_size(base) + EXTRA_BYTES);
    ctx->underlying.free(ctx->underlying.ctx, base);
}

/* Save the data ends of the size-byte block at p, then poison them. */
static void erase_ends(unsigned char *p, size_t size, struct saved_ends *s)
{
    if (size <= sizeof(s->bytes)) {
        s->head_count = size;
        s->tail_count = 0;
    } else {
        s->head_count = ERASE_BYTES;
        s->tail_count = ERASE_BYTES;
    }
    memcpy(s->bytes, p, s->head_count);
    memcpy(s->bytes + s->head_count, p + size - s->tail_count,
           s->tail_count);
    memset(p - HEAD_BYTES, DEADBYTE, HEAD_BYTES + s->head_count);
    memset(p + size - s->tail_count, DEADBYTE, s->tail_count + SST);
}

/* Put the saved ends of an old_size block back, clipped to new_size. */
static void restore_ends(unsigned char *p, size_t old_size, size_t new_size,
                         const struct saved_ends *s)
{
    size_t tail_at = old_size - s->tail_count;

    memcpy(p, s->bytes, s->head_count < new_size ? s->head_count : new_size);
    if (s->tail_count > 0 && tail_at < new_size)
        memcpy(p + tail_at, s->bytes + s->head_count,
               new_size - tail_at < s->tail_count ? new_size - tail_at
                                                  : s->tail_count);
}

/*
 * Resize, keeping the frame: on failure the old block is framed and
 * restored again and NULL returned with the underlying table's errno.
 */
static void *hook_realloc(void *c, void *ptr, size_t size)
{
    const struct hook_ctx *ctx = c;
    unsigned char *p = ptr, *base, *q;
    struct saved_ends saved;
    size_t old_size;

    if (ptr == NULL)
        return hook_malloc(c, size);
    check_block(ctx, p, "realloc");
    if (unlikely(size > MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    base = p - HEAD_BYTES;
    old_size = read_size(base);
    erase_ends(p, old_size, &saved);
    q = ctx->underlying.realloc(ctx->underlying.ctx, base,
                                size + EXTRA_BYTES);
    if (unlikely(q == NULL)) {
        restore_ends(frame(ctx, base, old_size), old_size, old_size, &saved);
        return NULL;
    }
    p = frame(ctx, q, size);
    restore_ends(p, old_size, size, &saved);
    if (size > old_size)
        memset(p + old_size, CLEANBYTE, size - old_size);
    return p;
}

/* ---- Installing ---- */

/* Save domain d's table in its context and put the hook table in front. */
static void wrap_domain(enum om_domain d)
{
    const struct om_allocator table = {
        .ctx = &hooks[d],
        .malloc = hook_malloc,
        .calloc = hook_calloc,
        .realloc = hook_realloc,
        .free = hook_free,
    };

    om_get_allocator(d, &hooks[d].underlying);
    om_set_allocator(d, &table);
}

/*
 * Install the hooks on the three domains, once.  Like om_set_allocator,
 * call it while no other thread allocates; blocks allocated before it
 * cannot be freed after it.
 */
int om_setup_debug_hooks(void)
{
    if (atomic_exchange(&installed, true))
        return -EALREADY;
    wrap_domain(OM_DOMAIN_RAW);
    wrap_domain(OM_DOMAIN_MEM);
    wrap_domain(OM_DOMAIN_OBJ);
    return 0;
}

bool omi_debug_hooks_on(enum om_domain d)
{
    if ((unsigned)d >= OM_ARRAY_LEN(hooks))
        return false;
    return omi_domains[d].malloc == hook_malloc &&
           omi_domains[d].ctx == &hooks[d];
}

size_t omi_debug_block_size(const void *p)
{
    if (p == NULL)
        return 0;
    return read_size((const unsigned char *)p - HEAD_BYTES);
}

/*
 * OBJMEM_ALLOCATOR, before main() allocates: malloc and malloc_debug give
 * MEM and OBJ the system table (PYTHONMALLOC=malloc: every block is the C
 * library's, so that Valgrind or the C library's own checks see each
 * one); debug and malloc_debug install the hooks.
 */
__attribute__((weak)) bool omi_allocator_auto = true;

__attribute__((constructor)) static void allocator_from_environment(void)
{
    const char *a;

    if (!omi_allocator_auto)
        return;                         /* the shim: start() did it */
    a = omi_option_str(OMI_OPT_ALLOCATOR);

    if (strncmp(a, "malloc", 6) == 0) {
        om_set_allocator(OM_DOMAIN_MEM, &omi_domain_default_raw);
        om_set_allocator(OM_DOMAIN_OBJ, &omi_domain_default_raw);
    }
    if (strcmp(a, "debug") == 0 || strcmp(a, "malloc_debug") == 0)
        om_setup_debug_hooks();
}
