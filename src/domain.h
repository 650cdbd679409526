/*
 * domain.h - L1: the three allocator domains (raw, mem, obj) and their
 * replaceable tables, as CPython's PyMem_SetAllocator.
 */
#ifndef OM_DOMAIN_H
#define OM_DOMAIN_H

#include "base.h"
#include "os.h"

/* The live tables, indexed by enum om_domain.  Written only by
 * om_set_allocator (and the debug hooks through it). */
extern struct om_allocator omi_domains[3];

/* The default tables: the system allocator (raw) and the small-object
 * allocator (mem, obj). */
extern const struct om_allocator omi_domain_default_raw;
extern const struct om_allocator omi_domain_default_small;

/* alloc.c: the small-object allocator's table functions. */
void *omi_small_malloc(void *ctx, size_t size);
void *omi_small_calloc(void *ctx, size_t nelem, size_t elsize);
void *omi_small_realloc(void *ctx, void *p, size_t size);
void omi_small_free(void *ctx, void *p);

/* alloc.c: om_aligned_alloc's block (alignment a power of two above 16)
 * as table t would serve it, untraced: t the small-object allocator's,
 * the system's or om_gp_allocator; NULL with ENOTSUP for any other. */
void *omi_alloc_aligned_in(const struct om_allocator *t, size_t alignment,
                           size_t size);

/* alloc.c: where the general-purpose family sends pointers that are not
 * objmem's (all NULL: they are reported as bad frees). */
struct omi_gp_foreign {
    void (*free)(void *p);
    void *(*realloc)(void *p, size_t size);
    size_t (*usable_size)(const void *p);
};

void omi_gp_set_foreign(const struct omi_gp_foreign *f);
/* om_gp_free of p, a block of pool, its small pool in use
 * (omi_arena_small_pool): tracing's free (trace.c) has looked it up. */
struct pool;
void omi_gp_free_in(struct pool *pool, void *p);

/* alloc.c: live MEM/OBJ requests served by the RAW domain. */
long omi_alloc_raw_blocks(void);

/*
 * omi_domain_small[d]: what domain d's entry points may do without
 * calling its table.  SMALL: the table is the small-object allocator's
 * own, so they call the fast paths directly.  SAMPLED: the table is
 * tracing's wrapper (trace.c) over that one while tracing samples, so
 * they take sampling's countdown and the fast paths inline, and call the
 * table only for what the wrapper would do more than that (a sample, a
 * request for RAW, a free into a pool whose blocks have traces).
 */
enum { OMI_TABLE_OTHER, OMI_TABLE_SMALL, OMI_TABLE_SAMPLED };
extern uint8_t omi_domain_small[3];

/* trace.c: domain d's table is now tracing's sampling wrapper over the
 * small-object allocator (on), or no longer (off). */
void omi_domain_set_sampled(enum om_domain d, bool on);

/* trace.c: the table that tracing's wrapper of domain d wraps, while d's
 * live table is that wrapper; else NULL. */
const struct om_allocator *omi_trace_under(enum om_domain d);
/* trace.c: the table under t when t is tracing's wrapper, else NULL. */
const struct om_allocator *omi_trace_wrapped(const struct om_allocator *t);

/* trace.c: om_aligned_alloc while MEM's table is not the small-object
 * allocator's own: the block of the live table, or under tracing's
 * wrapper of the table it wraps (omi_alloc_aligned_in), then traced as
 * the wrapper's malloc traces one of size bytes. */
void *omi_trace_aligned(size_t alignment, size_t size);

/* True while domain d's table is the unwrapped system allocator: RAW's
 * default, MEM's and OBJ's with allocator=malloc. */
bool omi_domain_is_system(enum om_domain d);

/* debug.c's constructor applies the allocator option (malloc, debug,
 * malloc_debug) unless the shim, which applies it itself, says false. */
extern bool omi_allocator_auto;

/* nomem.c: om_check's part (invariant nomem.1). */
int omi_nomem_check(void);
/* nomem.c: the table under t when t is its wrapper, else NULL; and an
 * om_aligned_alloc request through that wrapper counted (true: it fails,
 * errno = ENOMEM). */
const struct om_allocator *omi_nomem_under(const struct om_allocator *t);
bool omi_nomem_fails_aligned(void);

/* debug.c: true while the debug hooks wrap domain d. */
bool omi_debug_hooks_on(enum om_domain d);

/* debug.c: the size requested for a debug-hooked block p of domain d. */
size_t omi_debug_block_size(const void *p);

/*
 * The public entry points note their caller's return address here (the
 * first one reached: the shim's malloc before the om_raw_malloc it
 * calls) while tracing wants one-frame C tracebacks: trace.c then takes
 * it instead of unwinding the stack, and clears it.  An untraced call
 * (objmem's own work, os.h) notes nothing: no one would clear it, and
 * the next traced call would take its caller.
 */
extern OM_TLS uintptr_t omi_domain_caller;
extern bool omi_domain_want_caller;

#define OMI_NOTE_CALLER_AT(pc)                                              \
    do {                                                                    \
        if (unlikely(omi_domain_want_caller) && !omi_domain_caller &&       \
            !omi_os_untraced)                                               \
            omi_domain_caller = (pc);                                       \
    } while (0)
#define OMI_NOTE_CALLER()                                                   \
    OMI_NOTE_CALLER_AT((uintptr_t)__builtin_return_address(0))

#endif /* OM_DOMAIN_H */
