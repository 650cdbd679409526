/*
 * freelist.c - L3: free lists, the object-specific allocators of the
 * articles' layer 3.  A type with a free list keeps up to cap of its freed
 * objects and hands them out again before asking the OBJ domain, as
 * CPython does for floats (100), tuples (2000 of each size up to 20),
 * lists and dicts (80).  The lists are linked through the first word of
 * each object's memory.  om_clear_freelists empties them all; the stats
 * report lists them in CPython's format.
 *
 * Invariants (checked by omi_freelist_check):
 *   1. len == the length of the list; it and the hot one are <= cap.
 *   2. Every list in use is on the registry, once.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "object.h"
#include "stats.h"

static struct om_freelist *registry;

static void print_freelists(FILE *out);

void omi_freelist_register(struct om_freelist *fl)
{
    if (fl->registered)
        return;
    fl->registered = true;
    fl->next = registry;
    registry = fl;
    omi_stats_set_extra(print_freelists);
}

void omi_freelist_push_first(struct om_freelist *fl, void *mem, bool gc)
{
    omi_freelist_register(fl);
    fl->gc = gc;
    omi_freelist_put(fl, mem, gc);
}

struct om_freelist *om_freelist_new(const char *name, size_t size,
                                    size_t cap)
{
    struct om_freelist *fl;

    if (!name || size < sizeof(void *)) {
        errno = EINVAL;
        return NULL;
    }
    fl = om_raw_calloc(1, sizeof(*fl));
    if (!fl)
        return NULL;
    fl->name = name;
    fl->size = size;
    fl->cap = cap;
    omi_freelist_register(fl);
    return fl;
}

void om_clear_freelists(void)
{
    for (struct om_freelist *fl = registry; fl; fl = fl->next) {
        void *mem;
        while ((mem = omi_freelist_pop(fl)) != NULL)
            omi_object_memory_back(mem, fl->gc);
    }
}

size_t omi_freelist_total(void)
{
    size_t n = 0;

    for (struct om_freelist *fl = registry; fl; fl = fl->next)
        n += omi_freelist_count(fl);
    return n;
}

/* CPython's _PyDebugAllocatorStats line: "N free <name>s * S bytes each". */
static void print_freelists(FILE *out)
{
    char label[128];

    fputc('\n', out);
    for (struct om_freelist *fl = registry; fl; fl = fl->next) {
        snprintf(label, sizeof(label), "%zu free %ss * %zu bytes each",
                 omi_freelist_count(fl), fl->name, fl->size);
        fprintf(out, "%48s =", label);
        omi_stats_print_value(out,
                              (uint64_t)(omi_freelist_count(fl) * fl->size));
    }
}

int omi_freelist_check(void)
{
    size_t seen = 0;

    for (struct om_freelist *fl = registry; fl; fl = fl->next) {
        size_t n = 0;
        for (void *m = fl->head; m && n <= fl->cap; m = *(void **)m)
            n++;
        if (n != fl->len || omi_freelist_count(fl) > fl->cap)
            return omi_check_fail("freelist.1", fl, "%s: len %zu, %zu on "
                                  "the list, cap %zu", fl->name, fl->len, n,
                                  fl->cap);
        if (++seen > 4096)
            return omi_check_fail("freelist.2", fl, "registry loops");
    }
    return 0;
}
