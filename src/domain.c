/*
 * domain.c - L1: the three allocator domains, as CPython's
 * PyMem_GetAllocator / PyMem_SetAllocator, and the RAW entry points.
 *
 * RAW defaults to the system allocator with CPython's rules: a request of
 * 0 bytes is made a request of 1, so it returns a unique pointer; sizes
 * above PTRDIFF_MAX fail with ENOMEM.  MEM and OBJ default to the
 * small-object allocator (alloc.c); allocator=malloc gives them the
 * system table (debug.c's constructor).
 *
 * Invariants:
 *   1. Every table has all four functions set.
 *   2. omi_domains[OM_DOMAIN_RAW] is the system table, or a table that
 *      wraps it (hooks), or the user's.
 */
#include <errno.h>
#include <stdlib.h>

#include "domain.h"

static void *sys_malloc(void *ctx, size_t size)
{
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(size ? size : 1);
}

static void *sys_calloc(void *ctx, size_t nelem, size_t elsize)
{
    if (nelem == 0 || elsize == 0)
        nelem = elsize = 1;
    if (elsize != 0 && nelem > PTRDIFF_MAX / elsize) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(nelem, elsize);
}

static void *sys_realloc(void *ctx, void *p, size_t size)
{
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, size ? size : 1);
}

static void sys_free(void *ctx, void *p)
{
    free(p);
}

const struct om_allocator omi_domain_default_raw = {
    NULL, sys_malloc, sys_calloc, sys_realloc, sys_free
};

struct om_allocator omi_domains[3] = {
    [OM_DOMAIN_RAW] = { NULL, sys_malloc, sys_calloc, sys_realloc,
                        sys_free },
    [OM_DOMAIN_MEM] = { NULL, omi_small_malloc, omi_small_calloc,
                        omi_small_realloc, omi_small_free },
    [OM_DOMAIN_OBJ] = { NULL, omi_small_malloc, omi_small_calloc,
                        omi_small_realloc, omi_small_free },
};

uint8_t omi_domain_small[3] = { OMI_TABLE_OTHER, OMI_TABLE_SMALL,
                                  OMI_TABLE_SMALL };

OM_TLS uintptr_t omi_domain_caller;
bool omi_domain_want_caller;

const struct om_allocator omi_domain_default_small = {
    NULL, omi_small_malloc, omi_small_calloc, omi_small_realloc,
    omi_small_free
};

static bool valid_domain(enum om_domain d)
{
    return (unsigned)d <= OM_DOMAIN_OBJ;
}

void om_get_allocator(enum om_domain d, struct om_allocator *out)
{
    if (valid_domain(d) && out)
        *out = omi_domains[d];
}

void om_set_allocator(enum om_domain d, const struct om_allocator *a)
{
    if (!valid_domain(d) || !a || !a->malloc || !a->calloc ||
        !a->realloc || !a->free)
        return;
    omi_domains[d] = *a;
    omi_domain_small[d] = a->malloc == omi_small_malloc &&
                          a->calloc == omi_small_calloc &&
                          a->realloc == omi_small_realloc &&
                          a->free == omi_small_free ? OMI_TABLE_SMALL
                                                    : OMI_TABLE_OTHER;
}

void omi_domain_set_sampled(enum om_domain d, bool on)
{
    if (on)
        omi_domain_small[d] = OMI_TABLE_SAMPLED;
    else if (omi_domain_small[d] == OMI_TABLE_SAMPLED)
        omi_domain_small[d] = OMI_TABLE_OTHER;
}

bool omi_domain_is_system(enum om_domain d)
{
    return omi_domains[d].malloc == sys_malloc;
}

void *om_raw_malloc(size_t size)
{
    OMI_NOTE_CALLER();
    return omi_domains[OM_DOMAIN_RAW].malloc(omi_domains[OM_DOMAIN_RAW].ctx,
                                             size);
}

void *om_raw_calloc(size_t nelem, size_t elsize)
{
    OMI_NOTE_CALLER();
    return omi_domains[OM_DOMAIN_RAW].calloc(omi_domains[OM_DOMAIN_RAW].ctx,
                                             nelem, elsize);
}

void *om_raw_realloc(void *p, size_t size)
{
    OMI_NOTE_CALLER();
    return omi_domains[OM_DOMAIN_RAW].realloc(omi_domains[OM_DOMAIN_RAW].ctx,
                                              p, size);
}

void om_raw_free(void *p)
{
    omi_domains[OM_DOMAIN_RAW].free(omi_domains[OM_DOMAIN_RAW].ctx, p);
}

const char *om_version(void)
{
    return OM_VERSION_STRING;
}
