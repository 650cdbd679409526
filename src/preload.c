/*
 * preload.c - the malloc shim: libobjmem-preload.so, so that
 * LD_PRELOAD=libobjmem-preload.so CMD runs CMD with objmem as its malloc.
 * Built into its own library with the rest of objmem linked in statically
 * and hidden; it exports the malloc family, glibc's statistics functions
 * and C++'s operator new and delete, and nothing else (preload.map).
 * mallinfo2, mallinfo, malloc_stats and malloc_info report objmem's
 * figures, not glibc's heap (which holds next to nothing): the section
 * "glibc's statistics functions" below maps each field.
 *
 * Every size comes from objmem's general-purpose family (alloc.c): the
 * pools, the medium spans, large mappings.  Rules kept from glibc's
 * "Replacing malloc": free keeps errno; nothing here calls a libc function
 * that allocates on an allocation path; TLS is initial-exec (base.h); fork
 * is safe (heap.c and large.c take their locks around it).
 *
 * Start-up: the options are read at the first call, whichever comes first
 * (a malloc from the C library's own start-up, or the constructor), from
 * environ or from /proc/self/environ before environ exists (options.c).
 * With allocator=debug every block goes through the RAW domain, whose
 * table is then objmem's general-purpose family wrapped in CPython's
 * debug hooks; the choice is made before the first block is handed out,
 * so every block has its frame.  With allocator=malloc objmem steps
 * aside: every call goes to the C library's function (LIBC mode; the
 * default under a tool that watches malloc, options.c), and
 * malloc_debug puts the debug hooks over the C library's malloc.  An
 * over-aligned block (alignment above
 * 16) cannot carry the frame: in debug mode it is a mapping of its own,
 * recognised on free by being page-aligned and in the large-block table
 * (a framed block never starts on a page).
 *
 * Foreign pointers - blocks the C library allocated before objmem took
 * over, or through its own __libc_malloc - go back to the C library's
 * functions, found with dlsym(RTLD_NEXT) when the first one is seen.
 *
 * At exit (a destructor, so after main and the atexit handlers), with
 * show_stats, om_report_write (report.c) writes the report where the
 * output option says.
 *
 * Invariants:
 *   1. Before the first block is handed out, mode is decided and never
 *      changes afterwards.
 *   2. Every exported function keeps errno unless it fails.
 *   3. mallinfo2's uordblks + fordblks == arena, and mallinfo,
 *      malloc_stats and malloc_info report the same figures, gathered
 *      the same way (gather).
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arena.h"
#include "domain.h"
#include "large.h"
#include "options.h"
#include "os.h"
#include "stats.h"
#include "trace.h"

#pragma GCC visibility push(default)
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t nelem, size_t elsize);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int malloc_trim(size_t pad);
/* C++'s operator new, new[], delete and delete[] (sized ones too), by
 * their symbols. */
void *_Znwm(size_t size);
void *_Znam(size_t size);
void _ZdlPv(void *p);
void _ZdaPv(void *p);
void _ZdlPvm(void *p, size_t size);
void _ZdaPvm(void *p, size_t size);
#pragma GCC visibility pop

/* FAST: om_gp_* directly.  TRACE and DEBUG: through the RAW domain, which
 * is om_gp_allocator (or, for malloc_debug, the C library's) wrapped by
 * tracing or by the debug hooks (or both).  LIBC: the C library's
 * functions. */
enum mode { MODE_UNSET, MODE_STARTING, MODE_FAST, MODE_TRACE, MODE_DEBUG,
            MODE_LIBC };

static _Atomic int mode;
/* The thread deciding the mode: its own calls meanwhile (dlsym's, say)
 * are served by om_gp, and gp_blocks notes that LIBC mode has some. */
static OM_TLS bool in_start;
static atomic_bool gp_blocks;
/* allocator=malloc or malloc_debug: the C library's heap holds the
 * blocks, so its statistics functions are the ones that describe them. */
static bool libc_stats;

/* ---- Foreign pointers: the C library's own ---- */

static struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    int (*trim)(size_t);
    void (*free)(void *);
    void *(*realloc)(void *, size_t);
    size_t (*usable_size)(void *);
    struct mallinfo2 (*mallinfo2)(void);
    struct mallinfo (*mallinfo)(void);
    void (*stats)(void);
    int (*info)(int, FILE *);
} libc;

/* The C library's statistics functions (LIBC mode forwards to them). */
static void libc_resolve_stats(void)
{
    libc.mallinfo2 = (struct mallinfo2 (*)(void))dlsym(RTLD_NEXT,
                                                       "mallinfo2");
    libc.mallinfo = (struct mallinfo (*)(void))dlsym(RTLD_NEXT, "mallinfo");
    libc.stats = (void (*)(void))dlsym(RTLD_NEXT, "malloc_stats");
    libc.info = (int (*)(int, FILE *))dlsym(RTLD_NEXT, "malloc_info");
}

static void libc_resolve(void)
{
    if (!libc.free) {
        libc.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
        libc.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
        libc.memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT,
                                                         "memalign");
        libc.trim = (int (*)(size_t))dlsym(RTLD_NEXT, "malloc_trim");
        libc.usable_size = (size_t (*)(void *))dlsym(RTLD_NEXT,
                                                     "malloc_usable_size");
        libc.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT,
                                                        "realloc");
        libc.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    }
    if (!libc.free)
        omi_fatal("free of an address objmem never handed out", NULL,
                  "and the C library's free cannot be found");
}

/* p is a block of objmem's (a pool's, a span's or a large mapping). */
static bool ours(const void *p)
{
    return omi_arena_owns(p) || omi_large_size(p) != 0;
}

/* LIBC mode: a block objmem handed out while the mode was being decided
 * goes back to objmem, any other to the C library. */
static bool libc_block(const void *p)
{
    return !p || !atomic_load_explicit(&gp_blocks, memory_order_relaxed) ||
           !ours(p);
}

static void foreign_free(void *p)
{
    libc_resolve();
    libc.free(p);
}

static void *foreign_realloc(void *p, size_t size)
{
    libc_resolve();
    return libc.realloc(p, size);
}

static size_t foreign_usable_size(const void *p)
{
    libc_resolve();
    return libc.usable_size ? libc.usable_size((void *)(uintptr_t)p) : 0;
}

static const struct omi_gp_foreign foreign = {
    foreign_free, foreign_realloc, foreign_usable_size
};

/* The C library's malloc family as a domain table: RAW's for
 * malloc_debug, under the debug hooks. */
static void *libc_table_malloc(void *ctx, size_t size)
{
    return libc.malloc(size);
}

static void *libc_table_calloc(void *ctx, size_t nelem, size_t elsize)
{
    return libc.calloc(nelem, elsize);
}

static void *libc_table_realloc(void *ctx, void *p, size_t size)
{
    return libc.realloc(p, size);
}

static void libc_table_free(void *ctx, void *p)
{
    libc.free(p);
}

static const struct om_allocator libc_table = {
    NULL, libc_table_malloc, libc_table_calloc, libc_table_realloc,
    libc_table_free
};

/* ---- Start-up ---- */

/* debug.c must not apply the allocator option from its constructor:
 * start() has, before the first block. */
bool omi_allocator_auto = false;

/* Tracing from the shim: the capture module must not start it from its
 * constructor, before the RAW domain is objmem's (start() does). */
bool omi_capture_auto = false;

static void trace_entries(void)
{
    static const void *const fns[] = {
        (const void *)malloc, (const void *)free, (const void *)calloc,
        (const void *)realloc, (const void *)reallocarray,
        (const void *)posix_memalign, (const void *)aligned_alloc,
        (const void *)memalign, (const void *)valloc, (const void *)pvalloc,
        (const void *)__libc_malloc, (const void *)__libc_calloc,
        (const void *)__libc_realloc, (const void *)__libc_memalign,
    };

    for (size_t i = 0; i < OM_ARRAY_LEN(fns); i++)
        omi_trace_add_entry(fns[i]);
}

static void start(void)
{
    int expected = MODE_UNSET;
    const char *a;

    if (!atomic_compare_exchange_strong(&mode, &expected, MODE_STARTING)) {
        while (atomic_load(&mode) == MODE_STARTING)
            ;                   /* another thread's first call: brief */
        return;
    }
    in_start = true;
    omi_options_load();
    omi_gp_set_foreign(&foreign);
    a = omi_option_str(OMI_OPT_ALLOCATOR);
    if (strncmp(a, "malloc", 6) == 0) {
        libc_resolve();
        libc_resolve_stats();
        libc_stats = true;
    }
    if (strcmp(a, "malloc") == 0) {
        atomic_store(&mode, MODE_LIBC);
        in_start = false;
        return;
    }
    if (strcmp(a, "debug") == 0 || strcmp(a, "malloc_debug") == 0) {
        om_set_allocator(OM_DOMAIN_RAW, a[0] == 'm' ? &libc_table
                                                    : &om_gp_allocator);
        om_setup_debug_hooks();
        atomic_store(&mode, MODE_DEBUG);
    } else if (omi_option_long(OMI_OPT_TRACE) > 0 ||
               omi_option_long(OMI_OPT_TRACE_SAMPLE) > 0) {
        om_set_allocator(OM_DOMAIN_RAW, &om_gp_allocator);
        atomic_store(&mode, MODE_TRACE);
    } else {
        atomic_store(&mode, MODE_FAST);
        in_start = false;
        return;
    }
    in_start = false;
    trace_entries();
    omi_capture_start();
}

/* The mode, starting objmem at the first call. */
OM_INLINE int current_mode(void)
{
    int m = atomic_load_explicit(&mode, memory_order_relaxed);

    if (unlikely(m < MODE_FAST)) {
        if (in_start) {                 /* our own call from start() */
            atomic_store(&gp_blocks, true);
            return MODE_FAST;
        }
        start();
        m = atomic_load(&mode);
    }
    return m;
}

OM_INLINE bool libc_mode(void)
{
    return unlikely(current_mode() == MODE_LIBC);
}

OM_INLINE bool debug_mode(void)
{
    return current_mode() == MODE_DEBUG;
}

/* TRACE or DEBUG: every call goes through the RAW domain. */
OM_INLINE bool domain_mode(void)
{
    int m = current_mode();

    return unlikely(m != MODE_FAST && m != MODE_LIBC);
}

/* ---- Debug mode's over-aligned blocks ---- */

static bool is_unframed(const void *p)
{
    return ((uintptr_t)p & (omi_os_page_size() - 1)) == 0 &&
           omi_large_size(p) != 0;
}

static void *debug_aligned(size_t alignment, size_t size)
{
    bool zeroed;

    if (alignment <= 16)
        return om_raw_malloc(size);
    return omi_large_alloc(size ? size : 1, alignment, &zeroed);
}

static size_t debug_usable_size(const void *p)
{
    if (!p)
        return 0;
    if (is_unframed(p))
        return omi_large_size(p);
    return omi_debug_block_size(p);
}

static void debug_free(void *p)
{
    if (p && is_unframed(p))
        om_gp_free(p);
    else
        om_raw_free(p);
}

static void *debug_realloc(void *p, size_t size)
{
    void *q;
    size_t old;

    if (!p || !is_unframed(p))
        return om_raw_realloc(p, size);
    q = om_raw_malloc(size);
    if (!q)
        return NULL;
    old = omi_large_size(p);
    memcpy(q, p, old < size ? old : size);
    om_gp_free(p);
    return q;
}

/* ---- The malloc family ---- */

#define EXPORT __attribute__((visibility("default")))

/* The four hot entry points read the mode once, the fast one first. */

EXPORT void *malloc(size_t size)
{
    int m = current_mode();

    if (likely(m == MODE_FAST))
        return om_gp_malloc(size);
    if (m == MODE_LIBC)
        return libc.malloc(size);
    OMI_NOTE_CALLER();
    return om_raw_malloc(size);
}

EXPORT void free(void *p)
{
    int m = current_mode();

    if (likely(m == MODE_FAST) || (m == MODE_LIBC && !libc_block(p)))
        om_gp_free(p);
    else if (m == MODE_LIBC)
        libc.free(p);
    else if (m == MODE_DEBUG)
        debug_free(p);
    else
        om_raw_free(p);
}

EXPORT void *calloc(size_t nelem, size_t elsize)
{
    int m = current_mode();

    if (likely(m == MODE_FAST))
        return om_gp_calloc(nelem, elsize);
    if (m == MODE_LIBC)
        return libc.calloc(nelem, elsize);
    OMI_NOTE_CALLER();
    return om_raw_calloc(nelem, elsize);
}

EXPORT void *realloc(void *p, size_t size)
{
    int m = current_mode();

    if (likely(m == MODE_FAST) || (m == MODE_LIBC && !libc_block(p)))
        return om_gp_realloc(p, size);
    if (m == MODE_LIBC)
        return libc.realloc(p, size);
    OMI_NOTE_CALLER();
    if (m != MODE_DEBUG)
        return om_raw_realloc(p, size);
    if (p && size == 0) {
        debug_free(p);
        return NULL;
    }
    return debug_realloc(p, size);
}

EXPORT void *reallocarray(void *p, size_t nelem, size_t elsize)
{
    size_t size;

    if (domain_mode())
        OMI_NOTE_CALLER();
    if (__builtin_mul_overflow(nelem, elsize, &size)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, size);
}

/* Tracing: an over-aligned block is om_gp's, traced in RAW by hand, so
 * that free (om_raw_free) forgets it as any other. */
static void *trace_aligned(size_t alignment, size_t size)
{
    void *p = om_gp_aligned_alloc(alignment, size);

    if (p)
        om_trace_track(OM_DOMAIN_RAW, p, size);
    return p;
}

static void *aligned(size_t alignment, size_t size)
{
    if (libc_mode())
        return libc.memalign(alignment, size);
    if (!domain_mode())
        return om_gp_aligned_alloc(alignment, size);
    if (debug_mode())
        return debug_aligned(alignment, size);
    return trace_aligned(alignment, size);
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
    int saved = errno;
    void *p;

    if (domain_mode())
        OMI_NOTE_CALLER();
    if (alignment % sizeof(void *) != 0 ||
        (alignment & (alignment - 1)) != 0 || alignment == 0)
        return EINVAL;
    p = aligned(alignment, size);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *out = p;
    return 0;
}

EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    if (domain_mode())
        OMI_NOTE_CALLER();
    return aligned(alignment, size);
}

/* glibc's memalign takes any alignment and rounds it up to a power of
 * two. */
EXPORT void *memalign(size_t alignment, size_t size)
{
    size_t a = 1;

    if (domain_mode())
        OMI_NOTE_CALLER();
    while (a < alignment && a)
        a <<= 1;
    if (!a) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(a, size);
}

EXPORT void *valloc(size_t size)
{
    if (domain_mode())
        OMI_NOTE_CALLER();
    return aligned(omi_os_page_size(), size);
}

EXPORT void *pvalloc(size_t size)
{
    size_t page = omi_os_page_size();
    size_t rounded = (size + page - 1) & ~(page - 1);

    if (domain_mode())
        OMI_NOTE_CALLER();
    if (rounded < size) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned(page, rounded ? rounded : page);
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (libc_mode() && libc_block(p))
        return libc.usable_size ? libc.usable_size(p) : 0;
    if (unlikely(debug_mode()))
        return debug_usable_size(p);
    return om_gp_usable_size(p);
}

/* glibc's malloc_trim: give back what is free now; 1 when memory may
 * have been released. */
EXPORT int malloc_trim(size_t pad)
{
    if (libc_mode())
        return libc.trim ? libc.trim(pad) : 0;
    om_collect(true);
    return 1;
}

/* ---- C++'s operator new and delete ----
 *
 * Interposed, as tcmalloc's and jemalloc's libraries do: a C++ block
 * comes from objmem in one call, not through libstdc++'s operator new,
 * its PLT and malloc, and a one-frame trace notes the C++ code that
 * called new, not operator new (whose frame would be every C++
 * program's one site).  new and new[] of any size (the aligned and
 * nothrow forms stay libstdc++'s, over aligned_alloc and our new), and
 * delete and delete[], sized or not.  Out of memory, new calls the
 * new-handler and tries again, or throws std::bad_alloc when there is
 * none, through libstdc++'s own functions (dlsym: a program with a C++
 * operator new has libstdc++).  In LIBC mode libstdc++'s answer, so that
 * a tool that watches malloc (memcheck) still sees new and delete.
 */

enum { CXX_NEW, CXX_NEW_ARRAY, CXX_DELETE, CXX_DELETE_ARRAY, CXX_NAMES };

/* libstdc++'s definitions (LIBC mode), found when first needed. */
static void *cxx_next(int which)
{
    static const char *const names[CXX_NAMES] = { "_Znwm", "_Znam",
                                                  "_ZdlPv", "_ZdaPv" };
    static void *next[CXX_NAMES];

    if (!next[which])
        next[which] = dlsym(RTLD_NEXT, names[which]);
    if (!next[which])
        omi_fatal("C++'s operator new or delete", NULL,
                  "and libstdc++'s cannot be found");
    return next[which];
}

/* new found no memory: the new-handler's turn (true: try again), else
 * std::bad_alloc thrown. */
static bool cxx_no_memory(void)
{
    static void (*(*get_handler)(void))(void);
    static void (*throw_bad_alloc)(void);
    void (*handler)(void);

    if (!get_handler)
        *(void **)&get_handler = dlsym(RTLD_DEFAULT,
                                       "_ZSt15get_new_handlerv");
    handler = get_handler ? get_handler() : NULL;
    if (handler) {
        handler();
        return true;
    }
    if (!throw_bad_alloc)
        *(void **)&throw_bad_alloc = dlsym(RTLD_DEFAULT,
                                           "_ZSt17__throw_bad_allocv");
    if (throw_bad_alloc)
        throw_bad_alloc();      /* does not return */
    omi_fatal("C++'s operator new", NULL,
              "out of memory, and std::bad_alloc cannot be thrown");
    return false;
}

/* new and new[] past the fast path: caller is the C++ code's call. */
static __attribute__((noinline)) void *cxx_new(size_t size, int which,
                                               uintptr_t caller)
{
    for (;;) {
        int m = current_mode();
        void *p;

        if (m == MODE_LIBC)
            return ((void *(*)(size_t))cxx_next(which))(size);
        if (m == MODE_FAST) {
            p = om_gp_malloc(size);
        } else {
            OMI_NOTE_CALLER_AT(caller);
            p = om_raw_malloc(size);
        }
        if (p || !cxx_no_memory())
            return p;
    }
}

EXPORT void *_Znwm(size_t size)
{
    void *p;

    if (likely(current_mode() == MODE_FAST) &&
        likely((p = om_gp_malloc(size)) != NULL))
        return p;
    return cxx_new(size, CXX_NEW, (uintptr_t)__builtin_return_address(0));
}

EXPORT void *_Znam(size_t size)
{
    void *p;

    if (likely(current_mode() == MODE_FAST) &&
        likely((p = om_gp_malloc(size)) != NULL))
        return p;
    return cxx_new(size, CXX_NEW_ARRAY,
                   (uintptr_t)__builtin_return_address(0));
}

/* delete and delete[], sized (_ZdlPvm, _ZdaPvm) or not. */
static void cxx_delete(void *p, int which)
{
    if (unlikely(current_mode() == MODE_LIBC))
        ((void (*)(void *))cxx_next(which))(p);
    else
        free(p);
}

EXPORT void _ZdlPv(void *p) { cxx_delete(p, CXX_DELETE); }
EXPORT void _ZdaPv(void *p) { cxx_delete(p, CXX_DELETE_ARRAY); }

EXPORT void _ZdlPvm(void *p, size_t size)
{
    (void)size;
    cxx_delete(p, CXX_DELETE);
}

EXPORT void _ZdaPvm(void *p, size_t size)
{
    (void)size;
    cxx_delete(p, CXX_DELETE_ARRAY);
}

/* The glibc names that some programs call directly. */
EXPORT void *__libc_malloc(size_t size) { return malloc(size); }
EXPORT void __libc_free(void *p) { free(p); }
EXPORT void *__libc_calloc(size_t n, size_t s) { return calloc(n, s); }
EXPORT void *__libc_realloc(void *p, size_t s) { return realloc(p, s); }
EXPORT void *__libc_memalign(size_t a, size_t s) { return memalign(a, s); }
EXPORT void *__libc_valloc(size_t s) { return valloc(s); }
EXPORT void *__libc_pvalloc(size_t s) { return pvalloc(s); }

/* ---- glibc's statistics functions ---- */

/*
 * mallinfo2, mallinfo, malloc_stats and malloc_info.  Under the shim
 * glibc's own would describe glibc's heap, which holds next to nothing;
 * these describe objmem's, as tcmalloc's override does its own.  One
 * "arena" for the whole process: the pools' arenas (every heap's), with
 * the large mappings beside them as glibc's mmapped chunks.  mallinfo2's
 * fields, from omi_stats_get_classes (om_stats_get's figures, stats.c)
 * and omi_large_totals (large.c):
 *
 *   arena     arenas_current * ARENA_SIZE: the bytes the pools' arenas
 *             hold from the OS now, header pages and free pools included
 *             (given-back pools too: still mapped); not the large mappings
 *   uordblks  bytes_in_use: the blocks handed out from those arenas, small
 *             and medium, at their class sizes (a block in a heap's block
 *             cache is free)
 *   fordblks  arena - uordblks: free blocks, free pools, the arena header
 *             pages and the pools' tail bytes; so uordblks + fordblks ==
 *             arena exactly (both come from one walk of the arenas)
 *   ordblks   free "chunks": the free blocks of the pools in use, plus the
 *             free pools (dirty and clean)
 *   hblks     large_blocks: the live large mappings
 *   hblkhd    large_bytes: their mapped bytes (each block's
 *             malloc_usable_size: its request rounded up to the page and
 *             to its size class of pages, large.c)
 *   keepcost  pools_free_dirty * POOL_SIZE + large_cached_bytes: what
 *             malloc_trim(0) (om_collect(true)) gives back at once, the
 *             free resident pools and the cache of freed large mappings.
 *             A lower bound: the pools a trim first empties (a heap's
 *             emptied first pool of a class, pools whose last blocks sit
 *             in a heap's block cache) are not counted.  Right after
 *             malloc_trim(0) in a single-threaded program it is 0: the
 *             trim gave all of it back
 *   smblks, fsmblks, usmblks  0: no fastbins (glibc's usmblks is 0 too)
 *
 * mallinfo is the same figures in ints, each saturating at INT_MAX
 * (glibc's wrap).  malloc_stats prints glibc's layout ("Arena 0:", then
 * "Total (incl. mmap):" and the high-water marks) with omi_print_fd, on
 * fd 2 without stdio and without allocating: "system bytes" is arena
 * (arena + hblkhd in the total), "in use bytes" uordblks (uordblks +
 * hblkhd in the total), as glibc's; the figures are printed whole where
 * glibc's are truncated to 32 bits.  "max mmap regions" and "max mmap
 * bytes" are large.c's high-water marks of hblks and hblkhd.
 * malloc_info writes glibc's XML to the caller's FILE with fprintf, the
 * one place the shim uses stdio: the figures are gathered first and no
 * objmem lock is held while it prints (fprintf may call malloc).  One
 * <heap nr="0">; a <size> per class with free blocks in its pools in use
 * (from the request sizes the class serves to its block size; total =
 * count * block size); "fast" is 0 0, "rest" is ordblks and fordblks,
 * "mmap" hblks and hblkhd, system "current" arena and "max" the arenas'
 * high-water mark in bytes, aspace "total" and "mprotect" arena.  A
 * non-zero options gives -1 with errno EINVAL, as the manual page says
 * (glibc's code returns EINVAL itself).
 *
 * With allocator=malloc (LIBC mode) or malloc_debug the C library's heap
 * holds the blocks, and the four forward to its functions.  mallopt is
 * not exported: it stays glibc's, and tunes only glibc's heap.
 */

struct figures {
    struct mallinfo2 mi;            /* mallinfo2's fields, mapped above */
    size_t system_max;              /* most arena bytes at once */
    size_t max_mmaps;               /* most live large mappings at once */
    size_t max_mmapped;             /* most bytes in them at once */
    size_t free_blocks[NCLASSES];   /* per class, in its pools in use */
};

static size_t max_of(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Every figure the four report, from one walk; no lock held after. */
static void gather(struct figures *f)
{
    struct om_stats s;
    struct omi_large_totals large;
    size_t arena, nfree = 0;

    omi_stats_get_classes(&s, f->free_blocks);
    omi_large_totals(&large);
    for (unsigned sc = 0; sc < NCLASSES; sc++)
        nfree += f->free_blocks[sc];
    arena = s.arenas_current * ARENA_SIZE;
    memset(&f->mi, 0, sizeof(f->mi));
    f->mi.arena = arena;
    f->mi.uordblks = s.bytes_in_use < arena ? s.bytes_in_use : arena;
    f->mi.fordblks = arena - f->mi.uordblks;
    f->mi.ordblks = nfree + s.pools_free_dirty + s.pools_free_clean;
    f->mi.hblks = s.large_blocks;
    f->mi.hblkhd = s.large_bytes;
    f->mi.keepcost = s.pools_free_dirty * POOL_SIZE + s.large_cached_bytes;
    f->system_max = max_of(s.arenas_highwater * ARENA_SIZE, arena);
    f->max_mmaps = max_of(large.max_blocks, s.large_blocks);
    f->max_mmapped = max_of(large.max_bytes, s.large_bytes);
}

/* The C library's heap holds the blocks (starting objmem if need be). */
static bool stats_are_libc(void)
{
    (void)current_mode();
    return libc_stats;
}

/* objmem's figures in glibc's fields (the mapping above). */
EXPORT struct mallinfo2 mallinfo2(void)
{
    struct figures f;

    if (stats_are_libc())
        return libc.mallinfo2 ? libc.mallinfo2() : (struct mallinfo2){ 0 };
    gather(&f);
    return f.mi;
}

/* v in an int: INT_MAX when it does not fit. */
static int saturate(size_t v)
{
    return v > INT_MAX ? INT_MAX : (int)v;
}

/* glibc declares mallinfo deprecated (its ints wrap); it is defined here
 * all the same, for the programs that still call it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
EXPORT struct mallinfo mallinfo(void)
{
    struct figures f;
    const struct mallinfo2 *m = &f.mi;

    if (stats_are_libc())
        return libc.mallinfo ? libc.mallinfo() : (struct mallinfo){ 0 };
    gather(&f);
    return (struct mallinfo){
        .arena = saturate(m->arena), .ordblks = saturate(m->ordblks),
        .smblks = saturate(m->smblks), .hblks = saturate(m->hblks),
        .hblkhd = saturate(m->hblkhd), .usmblks = saturate(m->usmblks),
        .fsmblks = saturate(m->fsmblks), .uordblks = saturate(m->uordblks),
        .fordblks = saturate(m->fordblks), .keepcost = saturate(m->keepcost),
    };
}
#pragma GCC diagnostic pop

/* glibc's text on fd 2, with write(2): no stdio, no allocation. */
EXPORT void malloc_stats(void)
{
    struct figures f;
    const struct mallinfo2 *m = &f.mi;

    if (stats_are_libc()) {
        if (libc.stats)
            libc.stats();
        return;
    }
    gather(&f);
    omi_print_fd(2, "Arena 0:\n"
                 "system bytes     = %10zu\n"
                 "in use bytes     = %10zu\n"
                 "Total (incl. mmap):\n"
                 "system bytes     = %10zu\n"
                 "in use bytes     = %10zu\n"
                 "max mmap regions = %10zu\n"
                 "max mmap bytes   = %10zu\n",
                 m->arena, m->uordblks, m->arena + m->hblkhd,
                 m->uordblks + m->hblkhd, f.max_mmaps, f.max_mmapped);
}

/* malloc_info's <heap>: the classes with free blocks, then its totals. */
/* malloc_info's lines of the memory from the system, in a <heap> and in
 * the totals alike (one heap: the same figures). */
static void info_system(FILE *fp, const struct figures *f)
{
    fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n", f->mi.arena,
            f->system_max, f->mi.arena, f->mi.arena);
}

static void info_heap(FILE *fp, const struct figures *f)
{
    const struct mallinfo2 *m = &f->mi;
    size_t from = 1;

    fputs("<heap nr=\"0\">\n<sizes>\n", fp);
    for (unsigned sc = 0; sc < NCLASSES; sc++) {
        size_t to = omi_pool_class_size(sc), n = f->free_blocks[sc];
        if (n)
            fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" "
                    "count=\"%zu\"/>\n", from, to, n * to, n);
        from = to + 1;
    }
    fprintf(fp, "</sizes>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n",
            m->ordblks, m->fordblks);
    info_system(fp, f);
    fputs("</heap>\n", fp);
}

/* glibc's XML on fp: 0, or -1 with errno EINVAL for options != 0 (or
 * no fp).  fprintf may allocate: every figure is taken before it runs. */
EXPORT int malloc_info(int options, FILE *fp)
{
    struct figures f;
    const struct mallinfo2 *m = &f.mi;
    int saved = errno;

    if (stats_are_libc())
        return libc.info ? libc.info(options, fp) : 0;
    if (options != 0 || !fp) {
        errno = EINVAL;
        return -1;
    }
    gather(&f);
    fputs("<malloc version=\"1\">\n", fp);
    info_heap(fp, &f);
    fprintf(fp, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n",
            m->ordblks, m->fordblks, m->hblks, m->hblkhd);
    info_system(fp, &f);
    fputs("</malloc>\n", fp);
    errno = saved;
    return 0;
}

/* ---- Start and exit ---- */

static bool is_shim(const char *s, size_t len)
{
    static const char name[] = "libobjmem-preload.so";
    size_t n = sizeof(name) - 1;

    return len >= n && memcmp(s + len - n, name, n) == 0 &&
           (len == n || s[len - n - 1] == '/');
}

/* Drop our entry from LD_PRELOAD (children=0): in place, no allocation. */
static void leave_children(void)
{
    char *v = getenv("LD_PRELOAD"), *w, *r;

    if (!v)
        return;
    for (r = w = v; *r;) {
        size_t len = strcspn(r, ": ");
        if (len && !is_shim(r, len)) {
            if (w != v)
                *w++ = ':';
            memmove(w, r, len);
            w += len;
        }
        r += len;
        while (*r == ':' || *r == ' ')
            r++;
    }
    *w = '\0';
}

static void preload_exit(void);

__attribute__((constructor)) static void preload_start(void)
{
    (void)debug_mode();
    om_set_exit_writer(preload_exit);
    if (!omi_option_bool(OMI_OPT_CHILDREN))
        leave_children();
    if (omi_option_bool(OMI_OPT_VERBOSE)) {
        struct om_option info;
        const char *w;
        for (unsigned i = 0; om_option_get(i, &info); i++)
            omi_print_fd(2, "objmem: %s = %s (%s)\n", info.key, info.value,
                         info.source);
        for (unsigned i = 0; (w = om_option_warning(i)); i++)
            omi_print_fd(2, "objmem: warning: %s\n", w);
    }
}

/* The report, once: at _exit (which skips the destructor) or at exit. */
static atomic_flag reported = ATOMIC_FLAG_INIT;

__attribute__((destructor)) static void preload_exit(void)
{
    if (omi_option_bool(OMI_OPT_SHOW_STATS) &&
        !atomic_flag_test_and_set(&reported))
        om_report_write();
}

/* _exit and _Exit (exported: the C library's own exit reaches its _exit
 * directly, so only the program's and its libraries' calls come here)
 * write what exit would have first: the capture, then the report. */
static OM_NORETURN void leave(int status)
{
    om_exit_early();
    for (;;)
        syscall(SYS_exit_group, status);
}

EXPORT void _exit(int status)
{
    leave(status);
}

EXPORT void _Exit(int status)
{
    leave(status);
}
