/*
 * pins.c - `objmem pins FILE [--by KEY] [--limit N] [--html OUT] [--json]
 * [filters]`: which allocation sites keep memory from going back to the
 * OS.
 *
 * objmem gives a page back when its last block is freed (after the purge
 * delay), and an arena's header and its free resident pages when the
 * arena's last block goes; a large block is its own mapping.  A capture
 * carries every traced block's address and the heap map (each arena page
 * by page: its class and used count), so the question "what would come
 * back if this site's blocks were freed?" has an exact answer:
 *
 *   unit      a run of pages holding blocks (one page for the small
 *             classes), or a large block's mapping
 *   blockers  the live blocks of a unit: the traced ones by site, and
 *             used - traced untraced ones (blocks from before tracing
 *             began, or cached by a thread)
 *   release(S)  the bytes of the units whose blockers all come from site
 *             S, plus, for each arena whose blockers all come from S, its
 *             header: what freeing S's blocks gives back (free pages go
 *             back after the purge delay whatever S does)
 *   pinned(S) each unit's free bytes shared among its blockers by size:
 *             the fragmentation S is responsible for (the shares add up
 *             to all the free bytes in partly used units)
 *
 * The report lists the sites by release, then the nearly empty arenas
 * (under 5% used) with the sites and ages of the blocks that keep them,
 * then the arenas' occupancy.  --html writes the heap map as a page: one
 * row per arena, one cell per page coloured by occupancy, each cell
 * naming its blockers.
 *
 * --json prints the report's figures as one JSON object, for scripts
 * (bytes as integers, ages in ms; TB as in reports.c, cut to the key):
 *
 *   {"report": "pins", "file": F, "by": K, "traced_blocks": N,
 *    "sample_mean": B, "arenas": N, "pages": B, "live": B,
 *    "free_resident": B, "large_blocks": N, "large": B,
 *    ["filtered": {"kept": N, "of": N},]
 *    "sites": [{SITE, "traceback": TB}, ...],
 *    ["left_out": {SITE},] "untraced_pinned": B,
 *    "sparse_arenas": [{"address": A, "live": B, "usable": B,
 *        "blockers": [{"count": N, "age_min_ms": T, "age_max_ms": T,
 *                      "traceback": TB | "left_out": true}, ...],
 *        "more_sites": N, "untraced": N}, ...],
 *    "sparse": {"arenas": N, "live": B, "kept": B},
 *    "occupancy": {"under_1": N, "1_to_5": N, "5_to_25": N,
 *                  "over_25": N}}
 *
 *   SITE: "blocks": N, "bytes": B, "release": B, "units": N,
 *         "arenas": N, "pinned": B
 *
 * Sites are tracebacks (or lines, or files: --by).  In a sampled capture
 * only the sampled blocks are known: the others count as untraced, and
 * the report says so.
 *
 * The filters (--include, --exclude, --all-frames, --domain: filters.c)
 * choose the sites the report names; the blocks they leave out still
 * keep their pages, as one site of their own ("the blocks the filters
 * leave out"), so every figure is the one without filters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "objmem.h"

#define SPARSE 0.05             /* an arena under 5% used is nearly empty */
#define UNTRACED ((size_t)-1)   /* the site of untraced blockers */

struct block {
    uintptr_t addr;
    size_t size;
    size_t site;
    uint64_t time_ms;
};

struct site {
    const struct om_traceback *tb;
    size_t blocks, bytes;       /* live */
    size_t release;             /* bytes freeing them gives back */
    size_t units, arenas;       /* units and arenas they alone keep */
    double pinned;              /* their share of the free bytes */
};

/* One run of pages (or large block) and what keeps it. */
struct unit {
    uintptr_t lo;
    size_t bytes;
    size_t first, n;            /* its blocks in the sorted array */
    size_t untraced;            /* blockers not traced */
    size_t live;                /* bytes in blockers (untraced: estimated) */
};

struct pins {
    enum om_key by;             /* what a site is */
    const struct om_snapshot *s;
    const struct om_snapshot *kept;     /* s, or the traces the filters
                                           keep */
    size_t other;               /* the site of the others, or UNTRACED */
    const struct om_heap_map *map;
    uint64_t now_ms;
    struct block *blocks;
    size_t nblocks;
    struct site *sites;
    size_t nsites;
    double untraced_pinned;
    size_t outside;             /* traced bytes outside objmem's heap */
};

static int cmp_block(const void *a, const void *b)
{
    const struct block *x = a, *y = b;

    return (x->addr > y->addr) - (x->addr < y->addr);
}

/* What makes two blocks one site: their traceback, the most recent
 * frame, or its file.  Strings are interned in a snapshot, so pointers
 * compare. */
struct site_key {
    uintptr_t w[4];
};

static struct site_key key_of(const struct om_traceback *tb, enum om_key by)
{
    struct site_key k = { { 0, 0, 0, 0 } };
    const struct om_frame *f = tb->nframe ? &tb->frames[0] : NULL;

    if (by == OM_KEY_TRACEBACK)
        k.w[0] = (uintptr_t)tb;
    else if (f && by == OM_KEY_FILENAME)
        k.w[0] = (uintptr_t)f->filename;
    else if (f)
        k = (struct site_key){ { (uintptr_t)f->filename,
                                 (uintptr_t)f->function, f->lineno,
                                 (uintptr_t)f->pc } };
    return k;
}

/* Sites by key: an open-addressing table of site index + 1. */
struct site_table {
    size_t *slots, mask;
    struct site_key *keys;      /* per site */
};

static size_t key_hash(const struct site_key *k)
{
    uint64_t h = 1469598103934665603ULL;

    for (int i = 0; i < 4; i++)
        h = (h ^ k->w[i]) * 1099511628211ULL;
    return (size_t)(h ^ h >> 29);
}

/* The site of traceback tb, added when new. */
static size_t site_of(struct pins *p, struct site_table *t,
                      const struct om_traceback *tb)
{
    struct site_key k = key_of(tb, p->by);
    size_t i = key_hash(&k) & t->mask;

    for (; t->slots[i]; i = (i + 1) & t->mask)
        if (!memcmp(&t->keys[t->slots[i] - 1], &k, sizeof(k)))
            return t->slots[i] - 1;
    t->keys[p->nsites] = k;
    t->slots[i] = p->nsites + 1;
    p->sites[p->nsites].tb = tb;
    return p->nsites++;
}

/* The traces the filters keep, as blocks sorted by address, with their
 * domain for a site: NULL when there are no filters (or no memory). */
static struct block *kept_blocks(const struct pins *p)
{
    size_t n = om_snapshot_count(p->kept);
    struct block *k = p->kept == p->s ? NULL : calloc(n + 1, sizeof(*k));
    struct om_trace_info info;

    for (size_t i = 0; k && i < n; i++) {
        om_snapshot_trace(p->kept, i, &info);
        k[i] = (struct block){ info.address, info.size, info.domain, 0 };
    }
    if (k)
        qsort(k, n, sizeof(*k), cmp_block);
    return k;
}

/* The first of blocks b[0..n), sorted, at or above addr. */
static size_t first_at(const struct block *b, size_t n, uintptr_t addr)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (b[mid].addr < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Whether the filters keep the trace info: its block is among kept's
 * (n of them), in its domain. */
static bool is_kept(const struct block *kept, size_t n,
                    const struct om_trace_info *info)
{
    for (size_t i = first_at(kept, n, info->address);
         i < n && kept[i].addr == info->address; i++)
        if (kept[i].site == info->domain)
            return true;
    return false;
}

/* The site of the blocks the filters leave out: made at the first. */
static size_t other_site(struct pins *p)
{
    if (p->other == UNTRACED) {
        p->other = p->nsites++;
        p->sites[p->other] = (struct site){ 0 };
    }
    return p->other;
}

/* The blocks, sorted by address, and their sites. */
static bool load_blocks(struct pins *p)
{
    size_t n = om_snapshot_count(p->s), cap = 16;
    size_t nkept = om_snapshot_count(p->kept);
    struct block *kept = kept_blocks(p);
    struct site_table t;
    struct om_trace_info info;

    while (cap < 2 * n)
        cap *= 2;
    t.mask = cap - 1;
    t.slots = calloc(cap, sizeof(*t.slots));
    t.keys = calloc(n + 1, sizeof(*t.keys));
    p->blocks = calloc(n + 1, sizeof(*p->blocks));
    p->sites = calloc(n + 1, sizeof(*p->sites));
    p->other = UNTRACED;
    if (p->kept != p->s && !kept)
        n = 0;
    for (size_t i = 0; t.slots && t.keys && p->blocks && p->sites && i < n;
         i++) {
        size_t site;

        om_snapshot_trace(p->s, i, &info);
        site = !kept || is_kept(kept, nkept, &info)
                   ? site_of(p, &t, info.traceback) : other_site(p);
        p->blocks[i] = (struct block){ info.address, info.size, site,
                                       info.time_ms };
        p->sites[site].blocks++;
        p->sites[site].bytes += info.size;
    }
    p->nblocks = n;
    if (p->blocks)
        qsort(p->blocks, n, sizeof(*p->blocks), cmp_block);
    free(t.slots);
    free(t.keys);
    free(kept);
    return t.slots && t.keys && p->blocks && p->sites &&
           (p->kept == p->s || kept);
}

/* The first block at or above addr. */
static size_t lower_bound(const struct pins *p, uintptr_t addr)
{
    return first_at(p->blocks, p->nblocks, addr);
}

/* The unit of page run pg at addr: its blockers. */
static struct unit unit_at(const struct pins *p, uintptr_t addr,
                           const struct om_heap_page *pg)
{
    struct unit u = { addr, (size_t)pg->pages * p->map->page_size, 0, 0,
                      0, 0 };

    u.first = lower_bound(p, addr);
    while (u.first + u.n < p->nblocks &&
           p->blocks[u.first + u.n].addr < addr + u.bytes) {
        u.live += p->blocks[u.first + u.n].size;
        u.n++;
    }
    u.untraced = pg->used > u.n ? pg->used - u.n : 0;
    u.live += u.untraced * pg->block_size;
    if (u.live > u.bytes)
        u.live = u.bytes;
    return u;
}

/* The one site of all u's blockers, or UNTRACED when none or several. */
static size_t sole_site(const struct pins *p, const struct unit *u)
{
    size_t site;

    if (u->untraced || !u->n)
        return UNTRACED;
    site = p->blocks[u->first].site;
    for (size_t i = 1; i < u->n; i++)
        if (p->blocks[u->first + i].site != site)
            return UNTRACED;
    return site;
}

/* Share u's free bytes among its blockers, by their bytes. */
static void share_free(struct pins *p, const struct unit *u,
                       const struct om_heap_page *pg)
{
    double free_bytes = (double)(u->bytes - u->live);

    if (!u->live)
        return;
    for (size_t i = 0; i < u->n; i++) {
        const struct block *b = &p->blocks[u->first + i];

        p->sites[b->site].pinned +=
            free_bytes * (double)b->size / (double)u->live;
    }
    p->untraced_pinned += free_bytes * (double)(u->untraced *
                                                pg->block_size) /
                          (double)u->live;
}

/* What one arena's blockers say: its sole site (UNTRACED: none or
 * mixed), its live bytes, and the bytes that go only with the arena. */
struct arena_tally {
    size_t site;
    bool any, mixed;
    size_t live, usable, extra, untraced;
    size_t resident;            /* header, free resident and block pages */
    size_t free;                /* free resident pages: the purger's */
};

static void tally_unit(struct pins *p, struct arena_tally *at,
                       const struct unit *u)
{
    size_t site = sole_site(p, u);

    at->live += u->live;
    at->untraced += u->untraced;
    if (site == UNTRACED && (u->n || u->untraced))
        at->mixed = true;
    else if (site != UNTRACED && at->any && at->site != site)
        at->mixed = true;
    if (site != UNTRACED) {
        at->site = site;
        at->any = true;
        p->sites[site].release += u->bytes;
        p->sites[site].units++;
    }
}

static struct arena_tally tally_arena(struct pins *p,
                                      const struct om_heap_arena *a)
{
    struct arena_tally at = { UNTRACED, false, false, 0, 0, 0, 0, 0, 0 };
    size_t psz = p->map->page_size;

    for (size_t i = 0; i < a->npages; i++) {
        const struct om_heap_page *pg = &a->pages[i];
        struct unit u;

        if (pg->kind == OM_PAGE_HEADER)
            at.extra += psz;
        if (pg->kind == OM_PAGE_FREE)
            at.free += psz;
        if (pg->kind != OM_PAGE_PURGED)
            at.resident += psz;
        if (pg->kind != OM_PAGE_HEADER)
            at.usable += psz;
        if (pg->kind != OM_PAGE_BLOCKS)
            continue;
        u = unit_at(p, a->address + i * psz, pg);
        tally_unit(p, &at, &u);
        share_free(p, &u, pg);
    }
    if (at.any && !at.mixed) {
        p->sites[at.site].release += at.extra;
        p->sites[at.site].arenas++;
    }
    return at;
}

/* Large blocks: each its own mapping. */
static void tally_large(struct pins *p)
{
    for (size_t i = 0; i < p->map->nlarge; i++) {
        size_t b = lower_bound(p, p->map->large[i].address);

        if (b < p->nblocks &&
            p->blocks[b].addr == p->map->large[i].address) {
            struct site *s = &p->sites[p->blocks[b].site];

            s->release += p->map->large[i].size;
            s->units++;
        }
    }
}

/* The heap's figures over all arenas and large blocks. */
struct heap_sums {
    size_t live, usable, free, large;
};

static struct heap_sums heap_sums(const struct pins *p,
                                  const struct arena_tally *t)
{
    struct heap_sums h = { 0, 0, 0, 0 };

    for (size_t i = 0; i < p->map->narenas; i++) {
        h.live += t[i].live;
        h.usable += t[i].usable;
        h.free += t[i].free;
    }
    for (size_t i = 0; i < p->map->nlarge; i++)
        h.large += p->map->large[i].size;
    return h;
}

/* ---- The text report ---- */

static const struct pins *sort_ctx;

/* By release, then by pinned share, biggest first. */
static int cmp_release(const void *a, const void *b)
{
    const struct site *x = &sort_ctx->sites[*(const size_t *)a];
    const struct site *y = &sort_ctx->sites[*(const size_t *)b];

    if (x->release != y->release)
        return x->release < y->release ? 1 : -1;
    return (x->pinned < y->pinned) - (x->pinned > y->pinned);
}

/* A site as its key says: its file, its most recent frame, or its
 * traceback's two most recent. */
static void site_name(const struct pins *p, const struct site *s,
                      char *buf, size_t size)
{
    const struct om_traceback *tb = s->tb;

    if (!tb)
        snprintf(buf, size, "(the blocks the filters leave out)");
    else if (p->by == OM_KEY_FILENAME && tb->nframe)  /* read no more */
        snprintf(buf, size, "%.*s", (int)size - 1, tb->frames[0].filename);
    else
        objmem_frame_text(p->s, tb, buf, size);
}

static void print_site_name(const struct pins *p, const struct site *s)
{
    char buf[1024];

    if (p->by == OM_KEY_TRACEBACK && s->tb) {
        objmem_print_frames(stdout, p->s, s->tb, 2);
        return;
    }
    site_name(p, s, buf, sizeof(buf));
    printf("%s\n", buf);
}

/* What s's blocks keep, the line under its name. */
static void print_site_figures(const struct site *s)
{
    char a[32], b[32], c[32];

    printf("    %zu blocks (%s) keep %s: %zu unit%s", s->blocks,
           objmem_human((double)s->bytes, a, sizeof(a)),
           objmem_human((double)s->release, b, sizeof(b)), s->units,
           s->units == 1 ? "" : "s");
    if (s->arenas)
        printf(" and %zu whole arena%s", s->arenas,
               s->arenas == 1 ? "" : "s");
    printf("; share of the free bytes %s\n",
           objmem_human(s->pinned, c, sizeof(c)));
}

static void print_site(const struct pins *p, const struct site *s,
                       size_t rank)
{
    printf("#%zu: ", rank);
    print_site_name(p, s);
    print_site_figures(s);
}

/* The site indices by release, biggest first (NULL: no memory). */
static size_t *sites_by_release(const struct pins *p)
{
    size_t *order = calloc(p->nsites + 1, sizeof(*order));

    if (!order)
        return NULL;
    for (size_t i = 0; i < p->nsites; i++)
        order[i] = i;
    sort_ctx = p;
    qsort(order, p->nsites, sizeof(*order), cmp_release);
    return order;
}

/* The sites the report lists, by release (the first limit of those that
 * keep anything, not the filters' others): their count, in order[]. */
static size_t listed_sites(const struct pins *p, size_t *order, long limit)
{
    size_t shown = 0;

    for (size_t i = 0; i < p->nsites; i++) {
        const struct site *s = &p->sites[order[i]];

        if ((!s->release && s->pinned < 1) || order[i] == p->other)
            continue;
        if (limit > 0 && shown >= (size_t)limit)
            break;
        order[shown++] = order[i];
    }
    return shown;
}

static void print_sites(const struct pins *p, long limit)
{
    size_t *order = sites_by_release(p), shown;
    char a[32];

    if (!order)
        return;
    printf("\nwhat freeing each site's blocks would give back to the OS:\n");
    shown = listed_sites(p, order, limit);
    for (size_t i = 0; i < shown; i++)
        print_site(p, &p->sites[order[i]], i + 1);
    if (!shown)
        printf("  nothing: no %s keeps memory alone\n",
               p->kept == p->s ? "traced block" : "site the filters keep");
    if (p->other != UNTRACED) {
        printf("the blocks the filters leave out, together:\n");
        print_site_figures(&p->sites[p->other]);
    }
    if (p->untraced_pinned >= 1)
        printf("untraced blocks' share of the free bytes: %s\n",
               objmem_human(p->untraced_pinned, a, sizeof(a)));
    free(order);
}

#define SHOW_SITES 8             /* per nearly empty arena */

/* The distinct sites of blocks [first, end) into out (at most max): how
 * many there are. */
static size_t sites_in(const struct pins *p, size_t first, size_t end,
                       size_t *out, size_t max)
{
    size_t n = 0;

    for (size_t i = first; i < end; i++) {
        size_t k = 0;

        while (k < n && k < max && out[k] != p->blocks[i].site)
            k++;
        if (k == n) {
            if (n < max)
                out[n] = p->blocks[i].site;
            n++;
        }
    }
    return n;
}

/* Site's blocks in [first, end): how many, their youngest and oldest. */
static size_t site_ages(const struct pins *p, size_t first, size_t end,
                        size_t site, uint64_t *young, uint64_t *old)
{
    size_t count = 0;

    *young = UINT64_MAX;
    *old = 0;
    for (size_t i = first; i < end; i++) {
        uint64_t age = p->now_ms - p->blocks[i].time_ms;

        if (p->blocks[i].site != site)
            continue;
        *young = age < *young ? age : *young;
        *old = age > *old ? age : *old;
        count++;
    }
    return count;
}

/* The blocks of arena a, [*first, *end), and their distinct sites (the
 * first SHOW_SITES into sites): how many there are. */
static size_t arena_sites(const struct pins *p, const struct om_heap_arena *a,
                          size_t *first, size_t *end, size_t *sites)
{
    *first = lower_bound(p, a->address);
    *end = lower_bound(p, a->address + a->npages * p->map->page_size);
    return sites_in(p, *first, *end, sites, SHOW_SITES);
}

/* The blockers of one nearly empty arena, by site, with their ages. */
static void print_arena_blockers(const struct pins *p,
                                 const struct om_heap_arena *a,
                                 const struct arena_tally *at)
{
    size_t first, end, sites[SHOW_SITES];
    size_t n = arena_sites(p, a, &first, &end, sites);

    for (size_t k = 0; k < n && k < SHOW_SITES; k++) {
        uint64_t young, old;
        size_t count = site_ages(p, first, end, sites[k], &young, &old);

        printf("      %zu x ", count);
        print_site_name(p, &p->sites[sites[k]]);
        printf("        aged %.1f..%.1f s\n", (double)young / 1000,
               (double)old / 1000);
    }
    if (n > SHOW_SITES)
        printf("      and %zu more sites\n", n - SHOW_SITES);
    if (at->untraced)
        printf("      %zu untraced blocks\n", at->untraced);
}

/* An arena's use (live over usable bytes), and whether the report
 * names it: nearly empty, with blockers. */
static bool is_sparse(const struct arena_tally *at, double *use)
{
    *use = at->usable ? (double)at->live / (double)at->usable : 0;
    return *use < SPARSE && (at->any || at->mixed);
}

/* The arenas by occupancy, and the nearly empty ones: how many, their
 * live bytes and the resident bytes they keep. */
struct sparse_sums {
    size_t hist[4], arenas, live, kept;
};

static struct sparse_sums sparse_sums(const struct pins *p,
                                      const struct arena_tally *tallies)
{
    struct sparse_sums ss = { { 0 }, 0, 0, 0 };

    for (size_t i = 0; i < p->map->narenas; i++) {
        const struct arena_tally *at = &tallies[i];
        double use;
        bool sparse = is_sparse(at, &use);

        ss.hist[use < 0.01 ? 0 : use < 0.05 ? 1 : use < 0.25 ? 2 : 3]++;
        if (!sparse)
            continue;
        ss.kept += at->resident - at->free - at->live;
        ss.live += at->live;
        ss.arenas++;
    }
    return ss;
}

static void print_sparse(const struct pins *p,
                         const struct arena_tally *tallies, long limit)
{
    struct sparse_sums ss = sparse_sums(p, tallies);
    size_t shown = 0;
    char a[32], b[32];

    printf("\nnearly empty arenas (under %.0f%% used), and what keeps "
           "them:\n", SPARSE * 100);
    for (size_t i = 0; i < p->map->narenas; i++) {
        const struct arena_tally *at = &tallies[i];
        double use;

        if (!is_sparse(at, &use) || (limit > 0 && shown >= (size_t)limit))
            continue;
        shown++;
        printf("  arena %#lx: %s live of %s (%.1f%%)\n",
               (unsigned long)p->map->arenas[i].address,
               objmem_human((double)at->live, a, sizeof(a)),
               objmem_human((double)at->usable, b, sizeof(b)), use * 100);
        print_arena_blockers(p, &p->map->arenas[i], at);
    }
    if (!ss.arenas)
        printf("  none\n");
    else if (ss.arenas > shown)
        printf("  and %zu more\n", ss.arenas - shown);
    if (ss.arenas)
        printf("%zu nearly empty arena%s: %s of live blocks keep %s from "
               "going back\n", ss.arenas, ss.arenas == 1 ? "" : "s",
               objmem_human((double)ss.live, a, sizeof(a)),
               objmem_human((double)ss.kept, b, sizeof(b)));
    printf("\narenas by occupancy: <1%%: %zu, 1-5%%: %zu, 5-25%%: %zu, "
           ">25%%: %zu\n", ss.hist[0], ss.hist[1], ss.hist[2], ss.hist[3]);
}

/* ---- The heap map as a page ---- */

/* A site's name, escaped. */
static void put_site(FILE *f, const struct pins *p, const struct site *s)
{
    char buf[1024];

    site_name(p, s, buf, sizeof(buf));
    objmem_html_escaped(f, buf);
}

/* Occupancy 0..1 as a colour: red (nearly empty: pinning) to blue
 * (full). */
static void put_colour(FILE *f, double use)
{
    int r = (int)(220 * (1 - use) + 30), g = (int)(60 + 80 * use);
    int b = (int)(60 + 170 * use);

    fprintf(f, "rgb(%d,%d,%d)", r, g, b);
}

#define CELL 4                  /* px per page */
#define ROW 14                  /* px per arena */
#define LABEL 150               /* px of the row labels */

/* The cell of a page that is not a run of blocks. */
static void put_plain_cell(FILE *f, const struct om_heap_page *pg)
{
    static const char *const fills[] = { "#777", "#ccc", "#fff" };
    static const char *const names[] = { "arena header", "free, resident",
                                         "free, given back" };

    fprintf(f, "%s\"><title>%s</title></rect>\n", fills[pg->kind],
            names[pg->kind]);
}

static void put_cell(FILE *f, const struct pins *p, uintptr_t addr,
                     const struct om_heap_page *pg, int x, int y)
{
    struct unit u;
    size_t sites[3], n;

    if (pg->kind == OM_PAGE_TAIL)
        return;
    fprintf(f, "<rect class=\"page\" x=\"%d\" y=\"%d\" width=\"%d\" "
            "height=\"%d\" fill=\"", x, y,
            CELL * (pg->kind == OM_PAGE_BLOCKS ? pg->pages : 1) - 1,
            ROW - 2);
    if (pg->kind != OM_PAGE_BLOCKS) {
        put_plain_cell(f, pg);
        return;
    }
    u = unit_at(p, addr, pg);
    put_colour(f, (double)u.live / (double)u.bytes);
    fprintf(f, "\"><title>%u-byte blocks, %u used (%.0f%%)", pg->block_size,
            pg->used, 100.0 * (double)u.live / (double)u.bytes);
    n = sites_in(p, u.first, u.first + u.n, sites, 3);
    for (size_t k = 0; k < n && k < 3; k++) {
        fputs("\n", f);
        put_site(f, p, &p->sites[sites[k]]);
    }
    if (u.untraced)
        fprintf(f, "\n%zu untraced", u.untraced);
    fputs("</title></rect>\n", f);
}

static void put_arena_row(FILE *f, const struct pins *p, size_t i,
                          const struct arena_tally *at)
{
    const struct om_heap_arena *a = &p->map->arenas[i];
    int y = (int)i * ROW;
    double use = at->usable ? (double)at->live / (double)at->usable : 0;

    fprintf(f, "<text x=\"0\" y=\"%d\" class=\"label\">%#lx %.1f%%</text>\n",
            y + ROW - 3, (unsigned long)a->address, use * 100);
    for (size_t j = 0; j < a->npages; j++)
        put_cell(f, p, a->address + j * p->map->page_size, &a->pages[j],
                 LABEL + (int)j * CELL, y);
}

static void put_site_rows(FILE *f, const struct pins *p, const size_t *order,
                          long limit)
{
    char a[32], b[32];

    fputs("<table id=\"sites\"><tr><th>site</th><th>blocks</th>"
          "<th>gives back</th><th>share of the free bytes</th></tr>\n", f);
    for (size_t i = 0; i < p->nsites && (limit <= 0 || (long)i < limit);
         i++) {
        const struct site *s = &p->sites[order[i]];

        if (!s->release && s->pinned < 1)
            break;
        fputs("<tr class=\"site\"><td>", f);
        put_site(f, p, s);
        fprintf(f, "</td><td>%zu</td><td>%s</td><td>%s</td></tr>\n",
                s->blocks, objmem_human((double)s->release, a, sizeof(a)),
                objmem_human(s->pinned, b, sizeof(b)));
    }
    fputs("</table>\n", f);
}

static void put_page(FILE *f, const struct pins *p,
                     const struct arena_tally *t, const size_t *order,
                     const char *capture, long limit)
{
    size_t width = 0;

    for (size_t i = 0; i < p->map->narenas; i++)
        if (p->map->arenas[i].npages > width)
            width = p->map->arenas[i].npages;
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
          "<title>objmem pins: ", f);
    objmem_html_escaped(f, capture);
    fputs("</title>\n<style>body{font:13px sans-serif;margin:16px}"
          ".label{font:10px monospace}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
          "</style></head><body>\n<h1>What keeps memory from going back "
          "to the OS</h1>\n<p id=\"capture\">", f);
    objmem_html_escaped(f, capture);
    fprintf(f, ": %zu arenas, %zu traced blocks. One row per arena, one "
            "cell per page: red is nearly empty (pinned), blue full, "
            "white given back, grey the arena's header. Hover a cell for "
            "its blocks' sites.</p>\n", p->map->narenas, p->nblocks);
    objmem_timeline_svg(f, p->s);
    put_site_rows(f, p, order, limit);
    fprintf(f, "<svg id=\"heap\" xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%zu\" height=\"%zu\">\n", LABEL + width * CELL,
            p->map->narenas * ROW + 2);
    for (size_t i = 0; i < p->map->narenas; i++)
        put_arena_row(f, p, i, &t[i]);
    fputs("</svg>\n</body></html>\n", f);
}

static int write_html(const struct pins *p, const struct arena_tally *t,
                      const char *path, const char *capture, long limit)
{
    size_t *order = sites_by_release(p);
    FILE *f = order ? fopen(path, "w") : NULL;
    int rc = 0;

    if (f) {
        put_page(f, p, t, order, capture, limit);
        rc = fclose(f);
    }
    if (!f || rc != 0) {
        fprintf(stderr, "objmem: %s: %s\n", path, strerror(errno));
        rc = 1;
    }
    free(order);
    return rc;
}

/* ---- JSON ---- */

static void json_figures(const struct site *s)
{
    printf("\"blocks\": %zu, \"bytes\": %zu, \"release\": %zu, "
           "\"units\": %zu, \"arenas\": %zu, \"pinned\": ", s->blocks,
           s->bytes, s->release, s->units, s->arenas);
    objmem_json_double(stdout, s->pinned, 0);
}

/* Which site: its traceback, cut to the key, or the filters' others. */
static void json_site_name(const struct pins *p, const struct site *s)
{
    if (s->tb)
        objmem_json_traceback(stdout, p->s, s->tb, p->by);
    else
        fputs("\"left_out\": true", stdout);
}

static void json_sites(const struct pins *p, long limit)
{
    size_t *order = sites_by_release(p), n = 0;

    if (order)
        n = listed_sites(p, order, limit);
    fputs(",\n \"sites\": [", stdout);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n  {", i ? "," : "");
        json_figures(&p->sites[order[i]]);
        fputs(", ", stdout);
        json_site_name(p, &p->sites[order[i]]);
        fputc('}', stdout);
    }
    fputs("]", stdout);
    if (p->other != UNTRACED) {
        fputs(",\n \"left_out\": {", stdout);
        json_figures(&p->sites[p->other]);
        fputc('}', stdout);
    }
    fputs(",\n \"untraced_pinned\": ", stdout);
    objmem_json_double(stdout, p->untraced_pinned, 0);
    free(order);
}

static void json_arena(const struct pins *p, const struct om_heap_arena *a,
                       const struct arena_tally *at)
{
    size_t first, end, sites[SHOW_SITES];
    size_t n = arena_sites(p, a, &first, &end, sites);

    printf("\n  {\"address\": %lu, \"live\": %zu, \"usable\": %zu, "
           "\"blockers\": [", (unsigned long)a->address, at->live,
           at->usable);
    for (size_t k = 0; k < n && k < SHOW_SITES; k++) {
        uint64_t young, old;
        size_t count = site_ages(p, first, end, sites[k], &young, &old);

        printf("%s{\"count\": %zu, \"age_min_ms\": %llu, \"age_max_ms\": "
               "%llu, ", k ? ", " : "", count, (unsigned long long)young,
               (unsigned long long)old);
        json_site_name(p, &p->sites[sites[k]]);
        fputc('}', stdout);
    }
    printf("], \"more_sites\": %zu, \"untraced\": %zu}",
           n > SHOW_SITES ? n - SHOW_SITES : 0, at->untraced);
}

static void json_sparse(const struct pins *p, const struct arena_tally *t,
                        long limit)
{
    struct sparse_sums ss = sparse_sums(p, t);
    size_t shown = 0;
    double use;

    fputs(",\n \"sparse_arenas\": [", stdout);
    for (size_t i = 0; i < p->map->narenas; i++) {
        if (!is_sparse(&t[i], &use) || (limit > 0 && shown >= (size_t)limit))
            continue;
        fputs(shown++ ? "," : "", stdout);
        json_arena(p, &p->map->arenas[i], &t[i]);
    }
    printf("],\n \"sparse\": {\"arenas\": %zu, \"live\": %zu, \"kept\": "
           "%zu},\n \"occupancy\": {\"under_1\": %zu, \"1_to_5\": %zu, "
           "\"5_to_25\": %zu, \"over_25\": %zu}", ss.arenas, ss.live,
           ss.kept, ss.hist[0], ss.hist[1], ss.hist[2], ss.hist[3]);
}

static void json_report(const struct pins *p, const char *path,
                        const struct arena_tally *t, long limit)
{
    struct heap_sums h = heap_sums(p, t);
    struct om_snapshot_info info;

    om_snapshot_get_info(p->s, &info);
    fputs("{\"report\": \"pins\", \"file\": ", stdout);
    objmem_json_string(stdout, path);
    printf(", \"by\": \"%s\", \"traced_blocks\": %zu, \"sample_mean\": "
           "%zu,\n \"arenas\": %zu, \"pages\": %zu, \"live\": %zu, "
           "\"free_resident\": %zu, \"large_blocks\": %zu, \"large\": %zu",
           objmem_key_name(p->by), p->nblocks, info.sample_mean,
           p->map->narenas, h.usable, h.live, h.free, p->map->nlarge,
           h.large);
    if (p->kept != p->s)
        printf(", \"filtered\": {\"kept\": %zu, \"of\": %zu}",
               om_snapshot_count(p->kept), om_snapshot_count(p->s));
    json_sites(p, limit);
    json_sparse(p, t, limit);
    fputs("}\n", stdout);
}

/* ---- The verb ---- */

static void print_header(const struct pins *p, const char *path,
                         const struct objmem_filters *fl,
                         const struct arena_tally *t)
{
    struct heap_sums h = heap_sums(p, t);
    struct om_snapshot_info info;
    char a[32], b[32], c[32];

    om_snapshot_get_info(p->s, &info);
    printf("# objmem pins: %s: %zu traced blocks; %zu arenas, %s of pages, "
           "%s of it in live blocks; %zu large blocks, %s\n", path,
           p->nblocks, p->map->narenas,
           objmem_human((double)h.usable, a, sizeof(a)),
           objmem_human((double)h.live, b, sizeof(b)), p->map->nlarge,
           objmem_human((double)h.large, c, sizeof(c)));
    if (h.free)
        printf("# %s of free pages still resident: they go back after the "
               "purge delay\n", objmem_human((double)h.free, a, sizeof(a)));
    if (info.sample_mean)
        printf("# sampled: only the sampled blocks have sites; the others "
               "count as untraced\n");
    objmem_filter_note(stdout, fl, p->s, p->kept, false);
}

static int report(struct pins *p, const char *path,
                  const struct objmem_filters *fl, long limit,
                  const char *html, bool json)
{
    struct arena_tally *t = calloc(p->map->narenas + 1, sizeof(*t));
    int rc = 0;

    if (!t || !load_blocks(p)) {
        fprintf(stderr, "objmem: out of memory\n");
        free(t);
        return 1;
    }
    for (size_t i = 0; i < p->map->narenas; i++)
        t[i] = tally_arena(p, &p->map->arenas[i]);
    tally_large(p);
    if (json) {
        json_report(p, path, t, limit);
    } else {
        print_header(p, path, fl, t);
        print_sites(p, limit);
        print_sparse(p, t, limit);
    }
    if (html)
        rc = write_html(p, t, html, path, limit);
    free(t);
    return rc;
}

static int pins_usage(void)
{
    fprintf(stderr, "usage: objmem pins FILE [--by traceback|lineno|"
            "filename] [--limit N]\n                   [--html OUT] "
            "[--json] [filters]\n");
    return 2;
}

int objmem_pins(int argc, char **argv)
{
    const char *path = NULL, *html = NULL;
    struct pins p = { 0 };
    struct objmem_filters fl = OBJMEM_NO_FILTERS;
    struct om_snapshot_info info;
    struct om_snapshot *s, *kept;
    long limit = 10;
    bool json = false;
    int rc;

    p.by = OM_KEY_LINENO;
    for (int i = 1; i < argc; i++) {
        int f = objmem_filter_option(argc, argv, &i, &fl);

        if (f < 0)
            return 2;
        if (f > 0)
            continue;
        if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
            limit = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--html") == 0 && i + 1 < argc)
            html = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--by") == 0 && i + 1 < argc &&
                 objmem_parse_key(argv[i + 1], &p.by))
            i++;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return pins_usage();
    }
    if (!path)
        return pins_usage();
    if (!(s = objmem_capture_load(path)))
        return 1;
    p.s = s;
    p.map = om_snapshot_heap(s);
    if (!p.map) {
        fprintf(stderr, "objmem: %s: no heap map in this capture\n", path);
        om_snapshot_free(s);
        return 1;
    }
    if (!(p.kept = objmem_filter(s, path, &fl, &kept))) {
        om_snapshot_free(s);
        return 1;
    }
    om_snapshot_get_info(s, &info);
    p.now_ms = info.time_ms;
    rc = report(&p, path, &fl, limit, html, json);
    free(p.blocks);
    free(p.sites);
    om_snapshot_free(kept);
    om_snapshot_free(s);
    return rc;
}
