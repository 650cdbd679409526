/*
 * objmem.h - the one public header of objmem, a memory manager for object
 * runtimes: CPython's memory stack rebuilt as a C library.
 *
 * Sections: 1 version, 2 the allocator domains and the malloc family,
 * 3 giving memory back, 4 stats and checks, 5 debugging, 6 objects.  See README.md for a tour
 * and docs/design.md for the layers and their invariants.
 *
 * Contracts common to every function returning memory: NULL with errno set
 * (ENOMEM, EINVAL) on failure; errno is left untouched on success.  Action
 * functions return 0 or a negative errno-style code.
 */
#ifndef OBJMEM_H
#define OBJMEM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define OM_API __declspec(dllexport)
#else
#define OM_API __attribute__((visibility("default")))
#endif

/* ---- 1. Version ---- */

#define OM_VERSION_MAJOR 0
#define OM_VERSION_MINOR 1
#define OM_VERSION_PATCH 0
#define OM_VERSION_STRING "0.1.0"

OM_API const char *om_version(void);

/* ---- 2. Allocator domains and the malloc family ----
 *
 * Three domains, as CPython's PyMem_SetAllocator: RAW (thread-safe, the
 * system allocator by default), MEM and OBJ (the small-object allocator by
 * default: blocks of up to 512 bytes come from objmem's pools, other sizes
 * and 0-byte requests go to the RAW domain).  Each domain's allocator table
 * can be read and replaced so that hooks can wrap it.  Replace a table only
 * while no other thread uses that domain, and free each block with the
 * domain it came from.
 */
enum om_domain { OM_DOMAIN_RAW, OM_DOMAIN_MEM, OM_DOMAIN_OBJ };

struct om_allocator {
    void *ctx;                                     /* first argument */
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
};

OM_API void om_get_allocator(enum om_domain d, struct om_allocator *out);
OM_API void om_set_allocator(enum om_domain d, const struct om_allocator *a);

/* RAW domain. */
OM_API void *om_raw_malloc(size_t size);
OM_API void *om_raw_calloc(size_t nelem, size_t elsize);
OM_API void *om_raw_realloc(void *p, size_t size);
OM_API void om_raw_free(void *p);

/* MEM domain. */
OM_API void *om_malloc(size_t size);
OM_API void *om_calloc(size_t nelem, size_t elsize);
OM_API void *om_realloc(void *p, size_t size);
OM_API void om_free(void *p);

/* OBJ domain. */
OM_API void *om_obj_malloc(size_t size);
OM_API void *om_obj_calloc(size_t nelem, size_t elsize);
OM_API void *om_obj_realloc(void *p, size_t size);
OM_API void om_obj_free(void *p);

/*
 * Bytes usable at p, a block of the MEM or OBJ domain (or of the RAW
 * domain while it is the system allocator, wrapped by tracing or not); 0
 * for NULL.
 */
OM_API size_t om_usable_size(const void *p);

/*
 * A MEM-domain block of size bytes aligned to alignment (a power of two);
 * free it with om_free.  Alignments up to the small threshold are served
 * from the pools; larger ones, or large sizes, by the allocator under
 * RAW: the system's (its default) or om_gp_allocator.  Alignments above
 * 16 need one of objmem's tables in MEM, wrapped by tracing or by
 * om_debug_fail_allocs or not: the default, the system table
 * (OBJMEM_ALLOCATOR=malloc: posix_memalign's block) or om_gp_allocator
 * (om_gp_aligned_alloc's block); ENOTSUP under the debug hooks (their
 * header would break the alignment) or a table of one's own, in MEM or
 * (for the large ones) in RAW.  While tracing, the block is traced as
 * om_malloc's of size bytes (sampled alike), and om_free forgets it.
 * EINVAL for a bad alignment.
 */
OM_API void *om_aligned_alloc(size_t alignment, size_t size);

/*
 * The general-purpose family: every size from objmem, as the malloc of a
 * whole process (what the LD_PRELOAD shim libobjmem-preload.so exports).
 * Up to 512 bytes from the pools; up to 32 KiB from medium size classes
 * (eight per doubling: at most 12.5% lost to rounding) in spans of pages
 * of the same arenas; above, a mapping per block, with a cache of freed
 * mappings so that a loop on a large buffer maps it once.  Free pages go
 * back to the OS as for the pools.  malloc(0) returns a unique pointer;
 * realloc(p, 0) frees p and returns NULL (glibc's rule).  A pointer that
 * objmem never handed out is reported as a bad free.  om_gp_allocator is
 * the family as a domain table (om_set_allocator(OM_DOMAIN_RAW, ...)).
 * The family is always objmem's: the allocator option (OBJMEM_ALLOCATOR)
 * chooses the domains' tables and the shim's mode, not this; a runtime
 * that installs om_gp_allocator reads the option itself to step aside
 * under memcheck, as objmem-python does (om_option_get).
 */
OM_API void *om_gp_malloc(size_t size);
OM_API void *om_gp_calloc(size_t nelem, size_t elsize);
OM_API void *om_gp_realloc(void *p, size_t size);
OM_API void om_gp_free(void *p);
OM_API size_t om_gp_usable_size(const void *p);
/* Any power-of-two alignment; EINVAL otherwise.  Never traced, as the
 * family's other calls made directly: tracing sees the family only
 * through a domain's table (om_gp_allocator), which has no aligned call
 * (om_aligned_alloc over it is traced in MEM).  A runtime reports such a
 * block with om_trace_track, as the shim does. */
OM_API void *om_gp_aligned_alloc(size_t alignment, size_t size);
OM_API extern const struct om_allocator om_gp_allocator;

/*
 * Install CPython's debug hooks on all three domains (as
 * PYTHONMALLOC=debug): guard bytes, fill patterns, the domain id in each
 * block, checks on free and realloc.  Also done at start-up when the
 * environment has OBJMEM_ALLOCATOR=debug (or malloc_debug: over the C
 * library's malloc, which malloc alone gives MEM and OBJ, as
 * PYTHONMALLOC=malloc; malloc is the default under a tool that watches
 * malloc: Valgrind's memcheck, heaptrack, memusage, ...).  Call it before any block is
 * allocated through the domains, or free only blocks allocated after it.
 * Returns 0, or -EALREADY when the hooks are already installed.
 */
OM_API int om_setup_debug_hooks(void);

/* ---- 3. Giving memory back ----
 *
 * objmem returns free pages to the OS by itself.  om_collect gives back
 * what is free now: blocks freed by other threads are put back, free pages
 * are purged, empty arenas are unmapped.  force=false purges only what is
 * above the reuse reserve; force=true purges everything free, and in the
 * live threads' heaps the pages inside free blocks above 4 KiB too (as
 * glibc's malloc_trim gives back those inside its free chunks).  It acts on
 * the calling thread's heap and on the heaps of threads that have exited,
 * and asks every other live thread to do the same at its next slow path.
 * A thread that is about to wait for long (a pool's worker between
 * bursts) should call it itself: a waiting thread runs no slow path, and
 * its caches keep pages that nobody else may give back (under the shim,
 * malloc_trim(0) is om_collect(true)).
 */
OM_API void om_collect(bool force);

/*
 * When free pages go back by themselves.  ms > 0: a page that stays free
 * for ms milliseconds is given back by a background thread (default 50,
 * or OBJMEM_PURGE_DELAY from the environment), so a loop that frees and
 * allocates again keeps its pages; 0: at once, as soon as a thread holds
 * more than 1 MiB of free pages (no thread); < 0: never (om_collect only).
 */
OM_API int om_set_purge_delay(long ms);
OM_API long om_get_purge_delay(void);

/*
 * Run-time options, read from the environment once: OBJMEM_<KEY> for
 * each, or several in OBJMEM_CONF="key:value,key:value" (the variable of
 * its own wins).  Keys: show_stats, output, allocator, verbose,
 * purge_delay, children (objmem config lists them with their meaning).
 * om_option_get fills *out with option i and returns true, false past the
 * last; om_option_warning returns the i-th complaint about the
 * environment (an unknown key, a bad value), NULL past the last.
 */
struct om_option {
    const char *key;            /* OBJMEM_CONF's key */
    const char *var;            /* its own variable, OBJMEM_<KEY> */
    const char *value;          /* the value in force */
    const char *def;            /* the built-in default */
    const char *source;         /* "default", "OBJMEM_CONF" or var */
    const char *help;           /* one line */
};
OM_API bool om_option_get(unsigned i, struct om_option *out);
OM_API const char *om_option_warning(unsigned i);

/* ---- 4. Stats and checks ---- */

struct om_stats {
    size_t bytes_mapped;        /* mapped from the OS by objmem, now */
    size_t bytes_resident;      /* mapped and not given back (upper bound) */
    size_t bytes_in_use;        /* block bytes handed out from the pools */
    size_t blocks_in_use;       /* blocks handed out from the pools */
    size_t raw_blocks;          /* MEM/OBJ requests served by RAW, live */
    size_t pools_in_use;        /* pools holding a size class */
    size_t pools_free_dirty;    /* empty pools kept resident for reuse */
    size_t pools_free_clean;    /* empty pools given back or never used */
    size_t arenas_current;      /* arenas mapped now */
    size_t arenas_highwater;    /* most arenas mapped at once */
    size_t arenas_total;        /* arenas ever mapped */
    size_t heaps_active;        /* heaps owned by a live thread */
    size_t heaps_abandoned;     /* heaps of exited threads, not adopted */
    uint64_t bytes_purged_total; /* bytes given back with madvise, ever */
    uint64_t bytes_unmapped_total; /* arena bytes unmapped, ever */
    size_t pools_per_arena;     /* pools of an arena that hold blocks */
    size_t large_blocks;        /* om_gp_* blocks mapped one by one, live */
    size_t large_bytes;         /* their mapped bytes */
    size_t large_cached_bytes;  /* freed large mappings kept for reuse */
    uint64_t large_maps_total;  /* large mappings ever made */
};

/*
 * Fill *out.  Figures are exact while other threads are not allocating.
 * In a fork() child, the pools of the other threads' heaps (orphaned:
 * their threads may have been mid-update) count as mapped and resident
 * only, in no other figure: their free blocks are never handed out.
 * Returns 0, or -EINVAL when out is NULL.
 */
OM_API int om_stats_get(struct om_stats *out);

/*
 * Write the stats report that `objmem stats` reads back where the output
 * option says (OBJMEM_OUTPUT: a file, %p the pid, %e the program's name;
 * or stderr, stdout): a header of "key: value" lines (program, pid, peak
 * and final RSS, om_stats_get's figures), a blank line, then
 * om_debug_malloc_stats's report.  The shim and objmem-python call it at
 * exit when OBJMEM_SHOW_STATS=1.  Returns 0 or a negative errno.
 */
OM_API int om_report_write(void);

/*
 * For a process about to leave through _exit (or quick_exit), which runs
 * no exit handlers: a forked worker's os._exit, a program that skips its
 * teardown.  Writes now the capture that a run traced from the
 * environment (OBJMEM_TRACE=N) writes at exit, with the same rule (a
 * forked child writes one only with OBJMEM_TRACE_FORKS=1), and it is not
 * written again.  Returns true when the caller may write its own exit
 * files too (the writer below has written them then); false, having
 * written nothing, in a child of vfork (it shares its parent's memory)
 * and in a thread that blocks a signal (it may be inside a signal
 * handler, where none of this is safe).
 */
OM_API bool om_exit_early(void);

/*
 * fn writes the caller's own exit files (the shim's and objmem-python's:
 * the stats report, once).  objmem calls it where the process ends
 * without its exit handlers and it can still write: in om_exit_early,
 * after the capture; and when SIGTERM, SIGINT or SIGHUP ends a run traced
 * from the environment by their default action, after the capture,
 * from tracing's own thread (the other threads still run).  NULL takes
 * it away.
 */
OM_API void om_set_exit_writer(void (*fn)(void));

/*
 * Write the report of CPython's sys._debugmallocstats() to out: the
 * per-class table, the arena figures, totals that balance to the byte,
 * plus what was given back to the OS.  OBJMEM_MALLOC_STATS=1 in the
 * environment prints it on stderr at exit (as PYTHONMALLOCSTATS).
 */
OM_API void om_debug_malloc_stats(FILE *out);

/*
 * Walk every arena, pool and free list and verify every invariant listed
 * in docs/design.md.  Returns 0 when sound, or -EFAULT after printing the
 * first broken invariant to stderr.  Call it while other threads are not
 * allocating.
 */
OM_API int om_check(void);

/* ---- 5. Debugging ---- */

/*
 * Called by the fatal path, after the report is printed and before abort:
 * check names the failed check, addr the address it concerns.
 */
typedef void (*om_error_fn)(const char *check, const void *addr, void *arg);
OM_API void om_set_error_handler(om_error_fn fn, void *arg);

/*
 * Fault injection for tests: make the nth OS mapping from now fail
 * (nth >= 1), or every mapping (every = true); om_debug_fail_maps(0, false)
 * turns it off.  Returns 0, or -EINVAL for a negative nth.
 */
OM_API int om_debug_fail_maps(long nth, bool every);

/*
 * Fault injection per request (CPython's _testcapi.set_nomemory, SQLite's
 * oom-transient and oom-persistent): the requests that allocate (malloc,
 * calloc, realloc) made to the three domains are numbered from 0 at the
 * call, and those from start up to but not including stop fail with NULL
 * and errno = ENOMEM (stop = 0: every one from start on); a failed
 * realloc leaves its block as it was.  A request counts once, also a
 * large MEM or OBJ one that goes on to RAW; om_aligned_alloc counts as a
 * request; the om_gp_* family is not counted.
 * om_debug_fail_allocs(-1, 0) stops it.  It wraps the domains' tables,
 * as the debug hooks do, and costs nothing while stopped; a table set
 * over it meanwhile (tracing started) keeps it under it, passing every
 * request through, until that table goes and it is stopped again.
 * Returns 0, or -EINVAL (start < -1; stop neither 0 nor above start).
 * om_debug_failed_allocs: the requests failed since the last start.
 */
OM_API int om_debug_fail_allocs(long start, long stop);
OM_API long om_debug_failed_allocs(void);

/* ---- 6. Objects ----
 *
 * The object layer, as CPython's: every object starts with a reference
 * count and a type; a type describes its size and its slots (dealloc,
 * traverse and clear for the cycle collector, PEP 442 finalize).  Objects
 * live in the OBJ domain.  Like CPython's default build, the object layer
 * is not thread-safe: one thread at a time (a GIL) works on objects.
 */
typedef struct om_object om_object;

struct om_object {
    ptrdiff_t refcnt;                   /* references; see om_is_immortal */
    const struct om_type *type;
};

/* The header of objects with a variable number of items (tuple, int). */
typedef struct om_varobject {
    om_object base;
    ptrdiff_t size;                     /* items */
} om_varobject;

typedef int (*om_visitproc)(om_object *child, void *arg);

#define OM_TPFLAGS_GC (1ul << 0)        /* a container: GC pre-header */
#define OM_TPFLAGS_MANAGED_DICT (1ul << 1) /* one pre-header word for the
                                              attribute dict or values, as
                                              CPython 3.12 */
/* A promise: no finalize, no legacy_del, no weak references, not a GC
 * container.  Then nothing but the type's dealloc has to run when a
 * refcnt reaches 0, so om_decref calls it directly, as Py_DECREF calls
 * tp_dealloc (float, int and str set it).  om_new refuses (EINVAL) a
 * type that sets it and breaks it, om_class_new a class that asks for it
 * (instances are GC objects). */
#define OM_TPFLAGS_PLAIN (1ul << 2)

struct om_freelist;

struct om_type {
    const char *name;
    size_t basic_size;                  /* as tp_basicsize */
    size_t item_size;                   /* as tp_itemsize */
    unsigned long flags;                /* OM_TPFLAGS_* */
    void (*dealloc)(om_object *);       /* releases references, frees */
    int (*traverse)(om_object *, om_visitproc, void *);
    int (*clear)(om_object *);
    void (*finalize)(om_object *);      /* PEP 442 tp_finalize */
    void (*legacy_del)(om_object *);    /* pre-PEP-442 tp_del */
    size_t weaklist_offset;             /* 0: not weakly referenceable */
    struct om_freelist *freelist;       /* NULL: none (om_freelist_new) */
    size_t (*size_of)(const om_object *); /* __sizeof__; NULL: basic_size
                                             + items * item_size */
};

/*
 * A new object of type t with refcnt 1 (its other bytes zero), or NULL
 * with errno = ENOMEM (EINVAL when t is NULL).  A GC type gets CPython's
 * two-word pre-header in front of the object.  om_new_var makes room for
 * nitems items and sets the varobject's size.
 */
OM_API om_object *om_new(const struct om_type *t);
OM_API om_object *om_new_var(const struct om_type *t, size_t nitems);

/* Give the memory of an object whose refcnt reached 0 back (through its
 * type's free list when it has one): the last step of a dealloc slot. */
OM_API void om_object_free(om_object *o);

/* Called when a refcnt reaches 0: finalize (once, PEP 442), then the
 * type's dealloc, with deep chains deferred so the C stack stays flat. */
OM_API void om_dealloc(om_object *o);

/* PEP 683: an immortal object's refcnt never changes; om_refcnt reports
 * CPython 3.12's immortal value. */
#define OM_IMMORTAL_REFCNT ((ptrdiff_t)0xFFFFFFFF)
OM_API void om_set_immortal(om_object *o);

/* Debug builds check every incref and decref through this (a NULL
 * function in release builds). */
OM_API void om_refcnt_check(const om_object *o, int delta);

static inline bool om_is_immortal(const om_object *o)
{
    return (int32_t)o->refcnt < 0;
}

static inline ptrdiff_t om_refcnt(const om_object *o)
{
    return om_is_immortal(o) ? OM_IMMORTAL_REFCNT : o->refcnt;
}

static inline void om_incref(om_object *o)
{
#if defined(OM_DEBUG_REFCNT)
    om_refcnt_check(o, 1);
#endif
    if (!om_is_immortal(o))
        o->refcnt++;
}

static inline void om_decref(om_object *o)
{
#if defined(OM_DEBUG_REFCNT)
    om_refcnt_check(o, -1);
#endif
    if (!om_is_immortal(o) && --o->refcnt == 0) {
        const struct om_type *t = o->type;

        if (t->flags & OM_TPFLAGS_PLAIN)
            t->dealloc(o);
        else
            om_dealloc(o);
    }
}

static inline void om_xincref(om_object *o)
{
    if (o)
        om_incref(o);
}

static inline void om_xdecref(om_object *o)
{
    if (o)
        om_decref(o);
}

/* sys.getsizeof: basic size, items, and the GC pre-header of GC types
 * (0 for NULL). */
OM_API size_t om_sizeof(const om_object *o);

/* Objects alive now (every build; the tests end on "no leaked object"). */
OM_API size_t om_live_objects(void);

/*
 * Free lists: a type's cache of freed objects, up to cap of them, as
 * CPython keeps for floats, tuples, lists and dicts.  om_freelist_new
 * makes one (kept for the program's life) for objects of size bytes.
 * om_clear_freelists empties all of them (as a full collection does).
 */
OM_API struct om_freelist *om_freelist_new(const char *name, size_t size,
                                           size_t cap);
OM_API void om_clear_freelists(void);

/* Singletons (borrowed references, immortal). */
OM_API om_object *om_none(void);
OM_API om_object *om_bool(bool value);

/*
 * int: arbitrary precision, CPython 3.11's layout (30-bit digits, the
 * sign in the size).  Values -5..256 are cached immortal objects, the same
 * object every time.  The constructors return a new reference, or NULL
 * with errno (ENOMEM, or EINVAL for a malformed string).
 * om_int_from_string takes an optional sign, base 2..36, or 0 to read a
 * 0x/0o/0b prefix, and '_' between digits, as Python's int(s, base).
 * om_int_as_i64 returns 0, -ERANGE when the value does not fit (*out
 * untouched), or -EINVAL for another type or a NULL out.
 * om_int_to_string returns the decimal text in memory from om_malloc
 * (free it with om_free).
 */
OM_API extern const struct om_type om_int_type;
OM_API om_object *om_int_from_i64(int64_t value);
OM_API om_object *om_int_from_string(const char *s, int base);
OM_API int om_int_as_i64(const om_object *o, int64_t *out);
OM_API char *om_int_to_string(const om_object *o);

/*
 * tuple: om_tuple_new(n) makes n empty slots (fill them with
 * om_tuple_set, which steals the reference, as PyTuple_SetItem);
 * om_tuple_pack(n, ...) takes n objects and increfs them (NULL with
 * errno = EINVAL when one is NULL: none is kept).  The empty tuple is an
 * immortal singleton.  om_tuple_get returns a borrowed reference (NULL
 * with errno = EINVAL out of range).  om_tuple_len, om_list_len,
 * om_str_len and om_dict_len are 0 for NULL or another type.
 */
OM_API extern const struct om_type om_tuple_type;
OM_API om_object *om_tuple_new(size_t n);
OM_API om_object *om_tuple_pack(size_t n, ...);
OM_API om_object *om_tuple_get(const om_object *t, size_t i);
OM_API int om_tuple_set(om_object *t, size_t i, om_object *item);
OM_API size_t om_tuple_len(const om_object *t);

/*
 * Item i of tuple t, a borrowed reference, with nothing checked: t must
 * be a tuple and i below its length (CPython's PyTuple_GET_ITEM).  Inline
 * (the items follow the om_varobject header), so that an interpreter's
 * loops over items make no call: the check of bench_gc's binary trees
 * takes half the time it takes with om_tuple_get.
 */
static inline om_object *om_tuple_item(const om_object *t, size_t i)
{
    return ((om_object *const *)((const om_varobject *)t + 1))[i];
}

/*
 * list: CPython's growth formula (appends give the same capacities, and
 * so the same om_sizeof, as python3).  om_list_new(n) makes n slots set
 * to None; om_list_append and om_list_extend (from a tuple or a list)
 * incref what they add; om_list_set steals; om_list_get is borrowed.
 * Actions return 0 or -ENOMEM / -EINVAL.
 */
OM_API extern const struct om_type om_list_type;
OM_API om_object *om_list_new(size_t n);
OM_API int om_list_append(om_object *l, om_object *item);
OM_API int om_list_extend(om_object *l, const om_object *items);
OM_API om_object *om_list_get(const om_object *l, size_t i);
OM_API int om_list_set(om_object *l, size_t i, om_object *item);
OM_API size_t om_list_len(const om_object *l);
/* list.clear(): drop every item and the item array; 0 or -EINVAL. */
OM_API int om_list_clear(om_object *l);

/* A list's layout, public as CPython's PyListObject, for om_list_item:
 * read it, never write it. */
typedef struct om_list_object {
    om_varobject head;                  /* size: items in use */
    om_object **items;
    size_t allocated;                   /* slots in items */
} om_list_object;

/* Item i of list l, borrowed, with nothing checked: l must be a list and
 * i below its length (CPython's PyList_GET_ITEM).  Inline, as
 * om_tuple_item. */
static inline om_object *om_list_item(const om_object *l, size_t i)
{
    return ((const om_list_object *)l)->items[i];
}

/*
 * str: immutable text, CPython 3.11's compact layout for ASCII (a 48-byte
 * header, then the bytes and a NUL: sys.getsizeof("hello") is 54); other
 * text is kept as UTF-8 in the same layout (its size then differs from
 * CPython's).  Length (in code points) and hash are cached.
 *   om_str_from_utf8(s, len)  a new string, never interned (but the
 *                             empty string is one immortal object);
 *   om_str_literal(s)         as a source-code constant: identifier-like
 *                             text ([A-Za-z0-9_]*) is interned and
 *                             immortal, other text is a new string;
 *   om_intern(s)              sys.intern: the one interned string equal
 *                             to s (mortal: it leaves the table when it
 *                             dies);
 *   om_str_intern(&p)         interns *p in place.
 * Constructors return a new reference, or NULL with errno (ENOMEM, or
 * EINVAL for invalid UTF-8).
 */
OM_API extern const struct om_type om_str_type;
OM_API om_object *om_str_from_utf8(const char *s, size_t len);
OM_API om_object *om_str_literal(const char *s);
OM_API om_object *om_intern(const char *s);
OM_API void om_str_intern(om_object **p);
OM_API const char *om_str_utf8(const om_object *o);
OM_API size_t om_str_len(const om_object *o);
OM_API bool om_str_is_interned(const om_object *o);

/*
 * dict: CPython 3.11's compact combined table (an index array, then the
 * entries in insertion order; 16-byte entries while every key is a str,
 * 24-byte ones otherwise), so sizes follow python3's.  str and int keys
 * compare by value, other objects by identity.  om_dict_set increfs key
 * and value (replacing the old value); om_dict_get returns a borrowed
 * reference, or NULL with errno = ENOENT; om_dict_del returns 0 or
 * -ENOENT.  Actions return -ENOMEM or -EINVAL on failure.
 */
OM_API extern const struct om_type om_dict_type;
OM_API om_object *om_dict_new(void);
OM_API int om_dict_set(om_object *d, om_object *key, om_object *value);
OM_API om_object *om_dict_get(const om_object *d, om_object *key);
OM_API int om_dict_del(om_object *d, om_object *key);
OM_API size_t om_dict_len(const om_object *d);

/*
 * Classes.  om_class_new makes a class whose instances keep their
 * attributes by key-sharing (nslots == 0: CPython's default, 56 bytes an
 * instance as python3 3.11, plus an array of values, 8 bytes a value,
 * the names being kept once by the class) or in slots (nslots > 0,
 * slot_names given: CPython's __slots__, 16 + 8 per slot and the GC
 * pre-header).  Instances keep a reference to their class.
 * om_getattr returns a new reference, or NULL with errno = ENOENT (no
 * such attribute) or EINVAL; om_setattr and om_delattr return 0,
 * -ENOENT (not a slot of the class; for om_delattr, not set), -ENOMEM or
 * -EINVAL.  Attribute names are interned.
 * om_instance_dict is vars(o): a new reference to o's attribute dict,
 * made on the first call (o's attributes then live in it, so changes
 * to it are changes to o's attributes); NULL with errno = EINVAL for a
 * slots instance or a non-instance, ENOMEM.  An instance also gets a
 * dict of its own when its class already shares 30 names and it sets
 * another (as CPython 3.11).
 */
OM_API om_object *om_class_new(const char *name,
                               const char *const *slot_names, size_t nslots,
                               unsigned long flags);
OM_API om_object *om_instance_new(om_object *cls);
OM_API om_object *om_getattr(om_object *o, const char *name);
OM_API int om_setattr(om_object *o, const char *name, om_object *value);
OM_API int om_delattr(om_object *o, const char *name);
OM_API om_object *om_instance_dict(om_object *o);

/*
 * The articles' deep_getsizeof: om_sizeof of o and of everything it
 * reaches through traverse, each object once, and the attribute values
 * of the instances among them (which sys.getsizeof leaves out).  (size_t)-1 with errno =
 * ENOMEM when the walk runs out of memory.
 */
OM_API size_t om_deep_sizeof(om_object *o);

/*
 * Python's repr(o) as a new str: None, True, 42, 1.5, 'text', (1,),
 * [1, 2], {'a': 1}, <class 'Point'>, <Point object at 0x...>; a container
 * that contains itself shows as [...].  NULL with errno = ENOMEM, or
 * ELOOP past 500 nested containers (Python's RecursionError).
 */
OM_API om_object *om_repr(om_object *o);

/* float: a new reference, or NULL with errno = ENOMEM. */
OM_API extern const struct om_type om_float_type;
OM_API om_object *om_float_from_double(double value);
OM_API double om_float_as_double(const om_object *o);

/* ---- 7. The cycle collector ----
 *
 * Python's gc module: three generations (thresholds 700, 10, 10), the
 * 25% rule for the oldest, PEP 442 finalizers run once, objects with a
 * legacy_del in a cycle kept as uncollectable on the garbage list.  The
 * core containers (tuple, list, dict, instances) track themselves as
 * CPython's do; a type of the caller's calls om_gc_track once its object
 * is filled in.  A GC object is untracked when it is freed.
 */

/* Collect generation 0..2 (and the younger ones); the unreachable objects
 * found (collected + uncollectable); -1 with errno = EINVAL for a bad
 * generation; 0 when called during a collection. */
OM_API ptrdiff_t om_gc_collect(int generation);

/*
 * The emergency collection (beyond CPython; Lua's): when a GC object
 * cannot be allocated and automatic collection is on (enabled, threshold
 * 0 > 0, no collection under way), a full collection runs, with its
 * callbacks, the allocator gives back its caches (om_collect(false)), and
 * the allocation is tried once more, so that garbage in cycles does not
 * make it fail.  Other allocations never collect, as CPython's.  A GC
 * object rescued so has errno reading ENOMEM (its first attempt failed).
 * The count is of emergency collections since the start.
 */
OM_API size_t om_gc_get_emergency_count(void);

/*
 * Zeal, for testing a runtime against the collector (SpiderMonkey's
 * gczeal, Lua's HARDMEMTESTS and EMERGENCYGCTESTS): collections forced at
 * GC allocations (those generation 0 counts: memory from the OBJ domain,
 * not from a free list), on top of the thresholds, while the collector
 * is enabled, even with threshold 0.
 *   OM_GC_ZEAL_YOUNG      every `every`th: the automatic collection with
 *                         threshold 0 taken as passed (generation 0, or
 *                         an older one whose turn it is)
 *   OM_GC_ZEAL_FULL       every `every`th: a full collection
 *   OM_GC_ZEAL_EMERGENCY  each one fails first, so the emergency
 *                         collection runs before its retry (`every` is
 *                         not used; with threshold 0, none do)
 * om_gc_set_zeal returns 0, or -EINVAL for an unknown mode or every < 1;
 * it restarts the count.  OBJMEM_GC_TORTURE sets it at start: 1 (young,
 * every one), young:N, full:N, emergency, 0 (off).
 */
enum om_gc_zeal {
    OM_GC_ZEAL_OFF,
    OM_GC_ZEAL_YOUNG,
    OM_GC_ZEAL_FULL,
    OM_GC_ZEAL_EMERGENCY
};
OM_API int om_gc_set_zeal(enum om_gc_zeal mode, long every);
OM_API enum om_gc_zeal om_gc_get_zeal(long *every);

OM_API void om_gc_enable(void);
OM_API void om_gc_disable(void);
OM_API bool om_gc_is_enabled(void);

/* Thresholds; t0 == 0 stops automatic collection.  Negative reads 0.
 * The getters (and om_gc_get_stats) write nothing when out is NULL. */
OM_API void om_gc_set_threshold(int t0, int t1, int t2);
OM_API void om_gc_get_threshold(int out[3]);
OM_API void om_gc_get_count(int out[3]);

/*
 * Incremental mode (off by default): generation 1 is collected as
 * before, but each generation 0 collection is followed by the next
 * slice of the old generation (0.025% of it, 1024 objects at least, or
 * more when young objects grow old faster), so a pause stays short
 * however large the heap.  A round of at most 4000 increments scans the
 * whole old generation; a full collection comes only when the old
 * generation has doubled since the last one, which bounds the garbage
 * that waits (a cycle split between slices, or one through a container
 * of over 64 KiB, which increments leave out).  Callbacks and stats see
 * an increment as a collection of generation 2.  om_gc_collect(2) is a
 * full collection in either mode.
 */
OM_API void om_gc_set_incremental(bool on);
OM_API bool om_gc_is_incremental(void);

/* gc.freeze: every tracked object moves to the permanent generation,
 * which no collection looks at; unfreeze moves them to the oldest. */
OM_API void om_gc_freeze(void);
OM_API void om_gc_unfreeze(void);
OM_API size_t om_gc_get_freeze_count(void);

/*
 * Beyond CPython, for pre-fork servers (Instagram's story): freeze, then
 * make every tracked object and everything it refers to immortal (an
 * untracked container met on the way is tracked in the permanent
 * generation and walked too).  A forked child that increfs, decrefs and
 * collects then writes to none of those objects' pages.  Objects only C
 * code refers to are not reached.  There is no way back.
 */
OM_API void om_immortalize_heap(void);

OM_API void om_gc_track(om_object *o);
OM_API void om_gc_untrack(om_object *o);
OM_API bool om_gc_is_tracked(const om_object *o);
OM_API bool om_gc_is_finalized(const om_object *o);

struct om_gc_stats {
    size_t collections, collected, uncollectable;
};
OM_API void om_gc_get_stats(struct om_gc_stats out[3]);

/* Called with phase "start" and "stop" around every collection, in the
 * order added; add returns 0, -EINVAL or -ENOSPC (32 at most), remove 0
 * or -ENOENT. */
struct om_gc_info {
    int generation;
    size_t collected, uncollectable;
};
typedef void (*om_gc_callback)(const char *phase,
                               const struct om_gc_info *info, void *ctx);
OM_API int om_gc_callback_add(om_gc_callback cb, void *ctx);
OM_API int om_gc_callback_remove(om_gc_callback cb, void *ctx);

/* gc.set_debug; the messages go to stderr, as CPython's. */
#define OM_GC_DEBUG_STATS (1u << 0)
#define OM_GC_DEBUG_COLLECTABLE (1u << 1)
#define OM_GC_DEBUG_UNCOLLECTABLE (1u << 2)
#define OM_GC_DEBUG_SAVEALL (1u << 5)
#define OM_GC_DEBUG_LEAK (OM_GC_DEBUG_COLLECTABLE | \
                          OM_GC_DEBUG_UNCOLLECTABLE | OM_GC_DEBUG_SAVEALL)
OM_API void om_gc_set_debug(unsigned flags);
OM_API unsigned om_gc_get_debug(void);

/* gc.garbage: a borrowed list (NULL only when it cannot be made). */
OM_API om_object *om_gc_garbage(void);

/* New lists: the tracked objects of a generation (-1: all, not the
 * frozen); the objects o refers to (through traverse); the tracked
 * objects that refer to o.  NULL with errno on failure. */
OM_API om_object *om_gc_get_objects(int generation);
OM_API om_object *om_gc_get_referents(om_object *o);
OM_API om_object *om_gc_get_referrers(om_object *o);

/* ---- 8. Weak references ----
 *
 * Python's weakref.ref: a reference that does not keep its target alive.
 * A type takes weak references when its weaklist_offset names a pointer
 * field (zeroed at birth); instances of classes without slots do.
 * om_weakref_new returns a new reference to a ref, or NULL with errno =
 * EINVAL for a target that takes none; refs without callback are shared.
 * When the target dies (or the collector finds it unreachable), all its
 * refs are cleared, then the callbacks run, newest first, each given its
 * ref; the callback of a ref that is itself garbage does not run.
 */
typedef void (*om_weakref_callback)(om_object *ref, void *ctx);
OM_API om_object *om_weakref_new(om_object *target, om_weakref_callback cb,
                                 void *ctx);
/* A new reference to the target, or NULL once it is dead. */
OM_API om_object *om_weakref_get(om_object *ref);
OM_API size_t om_weakref_count(om_object *target);

/* weakref.WeakValueDictionary: an entry goes when its value dies.  get
 * returns a new reference, or NULL with errno = ENOENT; set and del
 * return 0, -EINVAL (a value that takes no weak reference), -ENOMEM or
 * -ENOENT. */
OM_API om_object *om_weakvaluedict_new(void);
OM_API int om_weakvaluedict_set(om_object *d, om_object *key,
                                om_object *value);
OM_API om_object *om_weakvaluedict_get(om_object *d, om_object *key);
OM_API int om_weakvaluedict_del(om_object *d, om_object *key);
OM_API size_t om_weakvaluedict_len(om_object *d);

/* ---- 9. Tracing ----
 *
 * tracemalloc in C (PEP 454).  While tracing, every block allocated
 * through the three domains (and every block a runtime reports with
 * om_trace_track) has a trace: its size, its domain and the traceback of
 * its allocation, up to a limit of frames.  Tracing wraps the domain
 * tables, as the debug hooks do; its own memory comes from the OS, never
 * from objmem, and an allocation whose trace cannot be recorded still
 * succeeds (the trace is counted as lost).
 *
 * Frames come from the C call stack (unwound with DWARF call-frame
 * information; symbolised when a snapshot is taken, to function, file and
 * line with elfutils' libdw.so.1, loaded then if installed, else to the
 * module and its exported symbols), or from a frame source the runtime
 * installs, which gives its own files and lines.
 * OBJMEM_TRACE=N starts tracing with N frames, as PYTHONTRACEMALLOC;
 * OBJMEM_TRACE_SAMPLE=BYTES samples instead (below).
 */
struct om_frame {
    const char *filename;       /* source or module path; "<unknown>" */
    const char *function;       /* NULL when not known */
    unsigned int lineno;        /* 0 when not known */
    const void *pc;             /* C frames: the return address; else NULL */
};

struct om_traceback {
    unsigned int nframe;        /* frames kept, at most the limit */
    unsigned int total_nframe;  /* frames the stack had, counted to one
                                   past the limit at most (C stacks, and
                                   objmem-python's): nframe + 1 says
                                   "deeper" */
    struct om_frame frames[];   /* frames[0]: the most recent call */
};

/* Start tracing with tracebacks of up to nframes frames (1..128): 0, or
 * -EINVAL.  Already tracing: the limit changes for new traces. */
OM_API int om_trace_start(int nframes);
/* Stop tracing and forget every trace (snapshots stay valid). */
OM_API void om_trace_stop(void);
OM_API bool om_trace_is_tracing(void);
OM_API int om_trace_get_traceback_limit(void);
/* Forget the traces, keep tracing. */
OM_API void om_trace_clear_traces(void);
/* The bytes of the traced blocks now and at their peak ((0, 0) when not
 * tracing).  Sampling: the estimates. */
OM_API void om_trace_get_traced_memory(size_t *current, size_t *peak);
OM_API void om_trace_reset_peak(void);
/* Bytes of memory tracing uses for its own tables: the pages it has
 * written, not the tails of its mappings that it has not used yet. */
OM_API size_t om_trace_get_memory(void);
/*
 * Keep a snapshot of the traces at their high-water mark, for "what was
 * live at the peak" (memray's and Fil's question): taken when the traced
 * memory first falls a sixteenth below a high-water mark at least
 * step_percent above the memory last kept, as the traces stood just
 * before that free (a big block freed at the top is in it), so it holds
 * at least 15/16 of that mark.  Each take sums the traces by traceback, a
 * pass over them, once per such fall: a heap that grows with frees
 * between is summed once, when it falls.  Snapshots then carry it
 * (om_snapshot_peak); one taken while the memory stands within a
 * sixteenth of a new mark carries none: it stands for the peak itself.
 * With several threads tracing, each judges from its own view of the
 * traced memory, which may be off by 256 KiB per other thread that
 * traces: the rise must pass the step by that much, and a fall seen too
 * early keeps less than 15/16 of the mark (a rise that goes on then
 * keeps a later peak).  0 turns it off.  Captures (OBJMEM_TRACE) keep it
 * with a step of OBJMEM_TRACE_PEAK percent (25 by default).
 */
OM_API void om_trace_keep_peak(unsigned step_percent);

/* Traces that could not be recorded (out of memory) since the start. */
OM_API size_t om_trace_lost(void);

/*
 * Poisson sampling by bytes, as tcmalloc and jemalloc: each allocated byte
 * is sampled with probability 1/mean_bytes, and a block is traced when
 * one of its bytes is, with probability p = 1 - exp(-size/mean_bytes).
 * Each sampled block stands for 1/p blocks and size/p bytes, so sums are
 * unbiased; statistics carry their standard error.  Starts tracing (with
 * 16 frames) when not tracing.  0, or -EINVAL for mean_bytes 0.
 */
OM_API int om_trace_start_sampling(size_t mean_bytes);
/* The mean, or 0 when every block is traced. */
OM_API size_t om_trace_sampling_mean(void);

/*
 * A frame source: fill frames[0..max) with the current thread's frames,
 * most recent first, and return how many the stack has in all (more than
 * max when it is deeper; counting to max + 1 is enough).  filename (and function) must stay valid until
 * om_trace_stop: the runtime interns them.  It is called from inside the
 * allocator: it must not allocate through a traced domain.  NULL restores
 * the C call stack.
 */
typedef int (*om_frame_source_fn)(void *ctx, struct om_frame *frames,
                                  int max);
OM_API void om_trace_set_frame_source(om_frame_source_fn fn, void *ctx);

/*
 * A frame key, beside a source (optional): a 64-bit identity of the
 * current thread's innermost max frames and of whether the stack goes
 * deeper, cheaper to take than the frames themselves.  Equal non-zero keys
 * must mean equal frames for as long as tracing runs (a well-mixed hash of
 * code positions is one).  Tracing then keeps, per thread, the tracebacks
 * of recent keys, and asks the source only for a key it has not seen; 0:
 * no key, ask the source.  Called with the source's ctx, from inside the
 * allocator.  Setting a source forgets the key; NULL: no key.  While
 * tracing, setting a key starts afresh (the traces are cleared), as
 * setting a source does.
 */
typedef uint64_t (*om_frame_key_fn)(void *ctx, int max);
OM_API void om_trace_set_frame_key(om_frame_key_fn fn);

/* PyTraceMalloc_Track / _Untrack for blocks a runtime allocates itself:
 * 0; -EAGAIN when not tracing; -ENOMEM when the trace is lost.  Tracking
 * a tracked pointer replaces its trace. */
OM_API int om_trace_track(unsigned int domain, const void *ptr, size_t size);
OM_API int om_trace_untrack(unsigned int domain, const void *ptr);

/* The traceback of a traced block, or NULL (not traced, or not tracing).
 * Valid until the next call from the same thread.  C frames name their
 * module and exported symbol only (dladdr): snapshots say more. */
OM_API const struct om_traceback *om_trace_get_object_traceback(
    const void *ptr);

/*
 * Snapshots: a copy of the traces, symbolised, that outlives tracing.
 * The arrays that statistics, compare and filter return belong to the
 * snapshot (compare: to now) and go with om_snapshot_free.  Errors:
 * NULL or a negative errno code; take_snapshot when not tracing: EAGAIN.
 */
struct om_snapshot;

enum om_key { OM_KEY_FILENAME, OM_KEY_LINENO, OM_KEY_TRACEBACK };

struct om_statistic {
    const struct om_traceback *traceback;
    size_t size;                /* bytes (estimated when sampled) */
    size_t count;               /* blocks (estimated when sampled) */
    double size_error;          /* one standard error; 0 when exact */
    double count_error;
};

struct om_statistic_diff {
    const struct om_traceback *traceback;
    size_t size;
    ptrdiff_t size_diff;
    size_t count;
    ptrdiff_t count_diff;
};

/* tracemalloc.Filter: the pattern is fnmatch's (* ? [...]); lineno 0 is
 * any line; domain -1 any domain; pattern NULL matches every file (a
 * DomainFilter). */
struct om_filter {
    bool inclusive;
    const char *filename_pattern;
    unsigned int lineno;
    bool all_frames;
    int domain;
};

struct om_trace_info {
    unsigned int domain;
    size_t size;
    const struct om_traceback *traceback;
    double weight;              /* blocks this trace stands for (1: exact) */
    uintptr_t address;          /* the block */
    uint64_t time_ms;           /* traced this long after tracing began */
};

/*
 * The heap as the allocator saw it when the snapshot was taken: each
 * arena page by page, and the large blocks (one mapping each).  With the
 * traces' addresses, it tells which blocks keep which pages from going
 * back to the OS (`objmem pins`).
 */
enum om_page_kind {
    OM_PAGE_HEADER,             /* the arena's own header */
    OM_PAGE_FREE,               /* free, still resident */
    OM_PAGE_PURGED,             /* free, given back to the OS */
    OM_PAGE_BLOCKS,             /* blocks of one class: the first page of
                                   its run */
    OM_PAGE_TAIL                /* a later page of a run */
};

struct om_heap_page {
    uint8_t kind;               /* enum om_page_kind */
    uint8_t pages;              /* BLOCKS: pages in its run */
    uint16_t used;              /* BLOCKS: blocks handed out (or cached) */
    uint32_t block_size;        /* BLOCKS: bytes per block */
};

struct om_heap_arena {
    uintptr_t address;
    size_t npages;
    const struct om_heap_page *pages;
};

struct om_heap_large {
    uintptr_t address;
    size_t size;                /* mapped bytes */
};

struct om_heap_map {
    size_t page_size;
    size_t narenas;
    const struct om_heap_arena *arenas;
    size_t nlarge;
    const struct om_heap_large *large;
};

OM_API struct om_snapshot *om_trace_take_snapshot(void);
/* Biggest first.  cumulative (FILENAME, LINENO only): every frame of a
 * traceback counts, not only the most recent. */
OM_API int om_snapshot_statistics(const struct om_snapshot *s, enum om_key key,
                                  bool cumulative, struct om_statistic **out,
                                  size_t *n);
/* Biggest |size_diff| first; groups only in before have size 0. */
OM_API int om_snapshot_compare(const struct om_snapshot *now,
                               const struct om_snapshot *before,
                               enum om_key key, bool cumulative,
                               struct om_statistic_diff **out, size_t *n);
/* A new snapshot with the traces that pass: one inclusive filter at
 * least (when there are any), no exclusive one. */
OM_API struct om_snapshot *om_snapshot_filter(const struct om_snapshot *s,
                                              const struct om_filter *f,
                                              size_t n);
OM_API size_t om_snapshot_count(const struct om_snapshot *s);
OM_API int om_snapshot_trace(const struct om_snapshot *s, size_t i,
                             struct om_trace_info *out);
OM_API int om_snapshot_traceback_limit(const struct om_snapshot *s);
/* What tracing said when the snapshot was taken. */
struct om_snapshot_info {
    size_t ntraces;
    int traceback_limit;
    size_t sample_mean;         /* 0: every block traced */
    size_t lost;                /* traces lost for want of memory */
    size_t current, peak;       /* traced memory */
    size_t trace_memory;        /* tracing's own memory */
    uint64_t time_ms;           /* taken this long after tracing began */
};
OM_API void om_snapshot_get_info(const struct om_snapshot *s,
                                 struct om_snapshot_info *out);
/* The snapshot at the high-water mark of the traced memory (see
 * om_trace_keep_peak), which goes with s; or NULL.  It holds one trace
 * per traceback, weighing its blocks (their average size): statistics
 * and compare read it as any snapshot; it has no addresses, times or
 * heap map. */
OM_API const struct om_snapshot *om_snapshot_peak(const struct om_snapshot *s);
/* The allocations made over the run, which go with s (a snapshot taken
 * in the process, or a capture that has them); or NULL.  Every traced
 * allocation counts, freed or not, reallocations too, from the start of
 * tracing or its last clear: one trace per traceback and domain, weighing
 * its allocations (two when their average is not a whole number of bytes,
 * so that the bytes sum exactly), with no addresses, times or heap map.
 * Statistics and compare read it as any snapshot: the sites that
 * allocated the most (the allocator's work, temporary blocks included),
 * where the snapshot itself says what is live.  Sampled, the sums are
 * estimates with their standard errors. */
OM_API const struct om_snapshot *om_snapshot_allocations(
    const struct om_snapshot *s);
/* The heap map taken with the snapshot, or NULL (a filtered snapshot, or
 * a capture of an older version). */
OM_API const struct om_heap_map *om_snapshot_heap(const struct om_snapshot *s);
/* The timeline: while tracing, the ticker thread notes the traced memory
 * and the process's resident set 64 times a second.  A point covers the
 * time from its time_ms to the next point's (the last: to the snapshot),
 * and holds the most seen in it; the traced memory's peak, when it rose
 * in the interval, counts as seen (so the timeline's highest point is
 * the peak).  Points start one tick apart; when 4096 are kept, each two
 * neighbours merge into one, so a long run keeps 2048 to 4096 points of
 * its whole length.  om_snapshot_timeline gives the points of a snapshot
 * taken in the process or of a capture that has them, oldest first,
 * time_ms strictly increasing; 0 and NULL when there are none (a
 * filtered snapshot, its peak, an older capture, a fork child's after
 * the fork: its ticker is the parent's). */
struct om_time_point {
    uint64_t time_ms;           /* after tracing began, as the traces' */
    size_t traced;              /* the most traced bytes (sampled: the
                                   estimate) */
    size_t rss;                 /* the most resident bytes; 0: unknown */
};
OM_API size_t om_snapshot_timeline(const struct om_snapshot *s,
                                   const struct om_time_point **points);
/* The modules (the program, its shared objects) the traced process had
 * loaded when the snapshot was taken, for its C frames: a snapshot with
 * C frames has them, and so do its peak and a filtered copy.  A frame
 * whose function or line is not known is still found: its address in
 * the module's file, pc - bias, is what addr2line, objdump and gdb
 * take, and the build ID says which build of the file it was. */
struct om_module {
    const char *path;           /* its file (the vdso: "linux-vdso.so.1") */
    uintptr_t start, end;       /* its segments spanned [start, end) */
    uintptr_t bias;             /* load bias: pc - bias is a file address */
    const unsigned char *build_id;      /* NT_GNU_BUILD_ID's bytes */
    size_t build_id_size;               /* 0: the file has none */
};
/* How many modules s has (0 for NULL). */
OM_API size_t om_snapshot_module_count(const struct om_snapshot *s);
/* Module i of s, by address: 0, -EINVAL (s or out NULL) or -ERANGE. */
OM_API int om_snapshot_module(const struct om_snapshot *s, size_t i,
                              struct om_module *out);
/* The index of the module that holds pc (a C frame's), or -ENOENT
 * (-EINVAL for s NULL). */
OM_API int om_snapshot_find_module(const struct om_snapshot *s,
                                   const void *pc);
/* Write to path: 0 or -errno.  Load: NULL with errno (EINVAL: not a
 * capture or a damaged one; om_snapshot_load_error says what is wrong).
 * A capture that a traced run wrote (OBJMEM_TRACE) gets its C frames'
 * functions, files and lines when it is loaded, from the modules' files
 * on this machine; a module rebuilt or gone since keeps its frames
 * unnamed (its file and the address).  OBJMEM_TRACE_SYMBOLS=1 names them
 * in the traced process instead. */
OM_API int om_snapshot_dump(const struct om_snapshot *s, const char *path);
OM_API struct om_snapshot *om_snapshot_load(const char *path);
OM_API const char *om_snapshot_load_error(void);
OM_API void om_snapshot_free(struct om_snapshot *s);

#ifdef __cplusplus
}
#endif

#endif /* OBJMEM_H */
