/*
 * region.c - X (cross-cutting): regions, bump memory from the OS that is
 * freed all at once.  Tracing keeps its tracebacks in one, each snapshot
 * keeps everything it owns in one, and neither ever allocates through
 * objmem.
 *
 * A region is a list of chunks, each one mapping; a request is cut from
 * the newest chunk, or from a new chunk of at least CHUNK_MIN bytes (a
 * request too big for that gets a chunk of its own size).  Nothing is
 * freed before omi_region_release.  Not thread-safe: the owner locks.
 *
 *   chunk:  | struct omi_region_chunk | request | request | ... | free |
 *           ^ mapping start                                 cur^   end^
 *
 * Invariants:
 *   1. cur and end lie in the newest chunk, cur <= end, cur 8-aligned;
 *      all zero when there is no chunk.
 *   2. mapped is the sum of the chunks' sizes.
 *   3. left is a whole number of pages, below mapped.
 */
#include <errno.h>
#include <stdint.h>

#include "os.h"
#include "region.h"

#define CHUNK_MIN (64 * 1024)

struct omi_region_chunk {
    struct omi_region_chunk *next;
    size_t size;                        /* of the mapping */
};

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

/* The whole pages of the newest chunk that nothing was cut from. */
static size_t tail_pages(const struct omi_region *r)
{
    uintptr_t from = round_up((uintptr_t)r->cur, omi_os_page_size());

    return (uintptr_t)r->end > from ? (uintptr_t)r->end - from : 0;
}

/* Map a chunk with room for size bytes and make it the newest. */
static bool add_chunk(struct omi_region *r, size_t size)
{
    size_t page = omi_os_page_size();
    size_t need = round_up(sizeof(struct omi_region_chunk) + size, page);
    struct omi_region_chunk *c;

    if (need < CHUNK_MIN)
        need = CHUNK_MIN;
    c = omi_os_map(need, page);
    if (!c)
        return false;
    if (r->chunks)
        r->left += tail_pages(r);
    c->next = r->chunks;
    c->size = need;
    r->chunks = c;
    r->cur = (char *)(c + 1);
    r->end = (char *)c + need;
    r->mapped += need;
    return true;
}

/* size bytes, 16-byte aligned. */
static void *region_cut(struct omi_region *r, size_t size)
{
    char *p;

    if (size > SIZE_MAX / 2) {
        errno = ENOMEM;
        return NULL;
    }
    size = round_up(size ? size : 1, 8);
    p = (char *)round_up((uintptr_t)r->cur, 16);
    if (!r->cur || p > r->end || (size_t)(r->end - p) < size) {
        if (!add_chunk(r, size + 16)) {
            errno = ENOMEM;
            return NULL;
        }
        p = (char *)round_up((uintptr_t)r->cur, 16);
    }
    r->cur = p + size;
    return p;
}

void *omi_region_alloc(struct omi_region *r, size_t size)
{
    return region_cut(r, size);
}

size_t omi_region_touched(const struct omi_region *r)
{
    return r->chunks ? r->mapped - r->left - tail_pages(r) : 0;
}

int omi_region_check(const struct omi_region *r)
{
    const struct omi_region_chunk *c = r->chunks;
    size_t page = omi_os_page_size(), sum = 0;

    if (!c) {
        if (r->cur || r->end || r->mapped || r->left)
            return omi_check_fail("region.1", r, "no chunk, but cur %p, "
                                  "end %p, %zu mapped, %zu left", r->cur,
                                  r->end, r->mapped, r->left);
        return 0;
    }
    if (r->cur < (const char *)(c + 1) || r->cur > r->end ||
        r->end != (const char *)c + c->size || (uintptr_t)r->cur % 8)
        return omi_check_fail("region.1", c, "cur %p, end %p outside the "
                              "newest chunk of %zu bytes", r->cur, r->end,
                              c->size);
    for (; c; c = c->next)
        sum += c->size;
    if (sum != r->mapped)
        return omi_check_fail("region.2", r, "%zu mapped, chunks of %zu",
                              r->mapped, sum);
    if (r->left % page || r->left >= r->mapped)
        return omi_check_fail("region.3", r, "%zu left of %zu mapped",
                              r->left, r->mapped);
    return 0;
}

void omi_region_release(struct omi_region *r)
{
    struct omi_region_chunk *c = r->chunks, *next;

    for (; c; c = next) {
        next = c->next;
        omi_os_unmap(c, c->size);
    }
    r->chunks = NULL;
    r->cur = r->end = NULL;
    r->mapped = r->left = 0;
}
