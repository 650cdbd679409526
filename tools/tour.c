/*
 * tour.c - `objmem tour` (make demo): the guided tour of the articles'
 * experiments, run on objmem with this machine's figures (and python3's,
 * when it is installed).  It uses only the public header, as any program
 * would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "objmem.h"
#include "cli.h"
#include "cow.h"

#define POOL_BYTES 4096
#define ARENA_BYTES (1u << 20)
#define TOUR_BLOCKS 1000000

/* ---- Helpers ---- */

static size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t rnd_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double mib(size_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static void heading(const char *title)
{
    printf("\n== %s ==\n\n", title);
}

static struct om_stats stats(void)
{
    struct om_stats s;
    om_stats_get(&s);
    return s;
}

/* ---- Step 1: size classes ---- */

static void tour_classes(void)
{
    heading("1. Size classes: 16-byte steps up to 512 bytes");
    printf("A request is rounded up to a multiple of 16; each class has "
           "its own pools.\nA pool is one 4 KiB page with no header in it "
           "(descriptors live in the\narena's first pages), so all 4096 "
           "bytes hold blocks.\n\n");
    printf("request    class  block  blocks/pool  bytes lost/pool\n");
    for (unsigned sc = 0; sc < 32; sc++) {
        unsigned size = (sc + 1) * 16;
        if (sc > 3 && sc < 30 && sc % 4 != 3)
            continue;
        printf("%3u-%-3u    %5u  %5u  %11u  %15u\n", size - 15, size, sc,
               size, POOL_BYTES / size, POOL_BYTES % size);
    }
    printf("(every class is printed by `objmem stats`; requests of 0 or "
           "over 512 bytes\ngo to the raw domain, the system allocator.)\n");
}

/* ---- Step 2: a pool and an arena filling up ---- */

static void show_fill(const char *what, size_t n, size_t base_pools)
{
    struct om_stats s = stats();
    printf("%-34s %8zu blocks  %5zu pools  %3zu arenas\n", what, n,
           s.pools_in_use - base_pools, s.arenas_current);
}

static void tour_fill(void)
{
    enum { N = 30000 };
    static void *v[N];
    struct om_stats s0 = stats();
    size_t base = s0.pools_in_use, per_pool = POOL_BYTES / 48;
    size_t arena_pools = s0.pools_per_arena;
    size_t marks[] = { 1, per_pool, per_pool + 1, arena_pools * per_pool,
                       arena_pools * per_pool + 1 };
    size_t m = 0;

    heading("2. A pool and an arena filling up (48-byte blocks)");
    printf("A pool of the 48-byte class holds %zu blocks; an arena holds "
           "%zu pools\n(256 pages, %zu of them the arena header).\n\n",
           per_pool, arena_pools, 256 - arena_pools);
    for (size_t i = 0; i < N && m < 5; i++) {
        v[i] = om_malloc(48);
        if (i + 1 == marks[m]) {
            const char *what[] = { "first block:", "first pool full:",
                                   "one more block, a second pool:",
                                   "first arena full:",
                                   "one more block, a second arena:" };
            show_fill(what[m++], i + 1, base);
        }
    }
    for (size_t i = 0; i < arena_pools * per_pool + 1; i++)
        om_free(v[i]);
    om_collect(true);
}

/* ---- Step 3: a million blocks, 99% freed ---- */

struct survivors {
    size_t arenas;              /* distinct 1 MiB arenas holding one */
    size_t pools16k;            /* distinct 16 KiB regions holding one */
    size_t pages;               /* distinct 4 KiB pages holding one */
};

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

/* Count the distinct units of each size that the survivors pin. */
static struct survivors pinned(uintptr_t *kept, size_t n)
{
    struct survivors s = { 0, 0, 0 };
    uintptr_t last[3] = { 0, 0, 0 };
    const uintptr_t unit[3] = { ARENA_BYTES, 16384, POOL_BYTES };
    size_t *count[3] = { &s.arenas, &s.pools16k, &s.pages };

    qsort(kept, n, sizeof(*kept), cmp_ptr);
    for (size_t i = 0; i < n; i++)
        for (int u = 0; u < 3; u++)
            if (i == 0 || kept[i] / unit[u] != last[u]) {
                last[u] = kept[i] / unit[u];
                (*count[u])++;
            }
    return s;
}

static void print_rss(const char *what, size_t rss, size_t base,
                      size_t peak)
{
    printf("  %-40s RSS %8.1f MiB", what, mib(rss));
    if (peak > base && rss < peak)
        printf("   (%.0f%% of the growth back)",
               100.0 * (double)(peak - rss) / (double)(peak - base));
    printf("\n");
}

static void tour_million(void)
{
    void **v = malloc(TOUR_BLOCKS * sizeof(*v));
    uintptr_t *kept = malloc(TOUR_BLOCKS / 100 * sizeof(*kept));
    size_t base, peak, after, nkept = 0, bytes = 0;
    struct survivors pin;
    uint64_t r = 2024;

    heading("3. One million small blocks, 99% freed: does RSS go down?");
    printf("The articles' complaint: free the objects and RSS stays "
           "high.\n\n");
    memset(v, 0xff, TOUR_BLOCKS * sizeof(*v));  /* fault in the tour's own */
    memset(kept, 0xff, TOUR_BLOCKS / 100 * sizeof(*kept));     /* arrays */
    base = rss_bytes();
    print_rss("before:", base, base, 0);
    for (size_t i = 0; i < TOUR_BLOCKS; i++) {
        size_t size = 32 + (size_t)(rnd_next(&r) % 97);
        v[i] = om_malloc(size);
        memset(v[i], 0x5a, size);
        bytes += size;
    }
    peak = rss_bytes();
    printf("  allocated %d blocks of 32..128 bytes (%.1f MiB requested)\n",
           TOUR_BLOCKS, mib(bytes));
    print_rss("after allocating:", peak, base, peak);
    for (size_t i = 0; i < TOUR_BLOCKS; i++) {
        if (rnd_next(&r) % 100 == 0 && nkept < TOUR_BLOCKS / 100)
            kept[nkept++] = (uintptr_t)v[i];
        else
            om_free(v[i]);
    }
    after = rss_bytes();
    print_rss("after freeing 99%, no call:", after, base, peak);
    printf("  (free pages are kept for %ld ms in case the program allocates "
           "again,\n   then objmem's purger thread gives them back: no "
           "call needed)\n", om_get_purge_delay());
    sleep(1);
    print_rss("one second later, still no call:", rss_bytes(), base, peak);
    om_collect(true);
    after = rss_bytes();
    print_rss("after om_collect(true):", after, base, peak);

    pin = pinned(kept, nkept);
    printf("\n%zu survivors.  What each policy must keep resident for "
           "them:\n", nkept);
    printf("  pymalloc, whole 1 MiB arenas only:      %8.1f MiB "
           "(%zu arenas)\n", mib(pin.arenas * ARENA_BYTES), pin.arenas);
    printf("  pymalloc at best, 16 KiB pools:         %8.1f MiB "
           "(%zu pools)\n", mib(pin.pools16k * 16384), pin.pools16k);
    printf("  objmem, 4 KiB pools (pages):            %8.1f MiB "
           "(%zu pages)\n", mib(pin.pages * POOL_BYTES), pin.pages);
    printf("  objmem measured: RSS above the start    %8.1f MiB\n",
           mib(after > base ? after - base : 0));
    for (size_t i = 0; i < nkept; i++)
        om_free((void *)kept[i]);
    printf("\nThe survivors freed too: their pages are kept for reuse (RSS "
           "%.1f MiB);\nom_collect(true) gives them back now instead of "
           "after the delay:\n", mib(rss_bytes()));
    om_collect(true);
    print_rss("after om_collect(true):", rss_bytes(), base, peak);
    free(kept);
    free(v);
}

/* ---- Step 4: objects (layer 3), beside python3 ---- */

/* The same figures from python3, one per line, in step 4's order; false
 * when python3 cannot be run. */
static const char *PY_FIGURES =
    "import sys\n"
    "def one(src): return eval(compile(src, \"<tour>\", \"eval\"))\n"
    "print(int(one(\"256\") is one(\"256\")), "
    "int(one(\"257\") is one(\"257\")))\n"
    "print(int(one(\"\\\"hello\\\"\") is one(\"\\\"hello\\\"\")), "
    "int(one(\"\\\"hello world\\\"\") is "
    "one(\"\\\"hello world\\\"\")), "
    "int(sys.intern(\"hello world\") is sys.intern(\"hello world\")))\n"
    "print(sys.getrefcount(None))\n"
    "class A: pass\n"
    "class B:\n    __slots__ = (\"x\", \"y\")\n"
    "print(*[sys.getsizeof(v) for v in (0, 0.0, \"\", (), [], {}, A())])\n"
    "l = []\nout = []\n"
    "for i in range(20):\n    l.append(i); out.append(sys.getsizeof(l))\n"
    "print(*out)\n"
    "def deep(o, seen):\n"
    "    if id(o) in seen: return 0\n"
    "    seen.add(id(o)); s = sys.getsizeof(o)\n"
    "    if isinstance(o, dict): s += sum(deep(k, seen) + deep(v, seen) "
    "for k, v in o.items())\n"
    "    elif isinstance(o, (list, tuple)): s += sum(deep(i, seen) "
    "for i in o)\n"
    "    elif hasattr(o, \"__dict__\"): s += deep(o.__dict__, seen)\n"
    "    elif hasattr(o, \"__slots__\"): s += sum(deep(getattr(o, n), seen)"
    " for n in o.__slots__)\n"
    "    return s\n"
    "d = {\"key\": [1, 2, 3], \"other\": \"hello\"}\n"
    "print(sys.getsizeof(d), deep(d, set()))\n"
    "a = A(); a.x = 1.5; a.y = 2.5; b = B(); b.x = 1.5; b.y = 2.5\n"
    "print(sys.getsizeof(a), deep(a, set()), sys.getsizeof(b), "
    "deep(b, set()))\n"
    "import tracemalloc\n"
    "def per(cls, n=10000):\n"
    "    keep = [None] * n; tracemalloc.start()\n"
    "    t0 = tracemalloc.get_traced_memory()[0]\n"
    "    for i in range(n):\n"
    "        o = cls(); o.x = 1.5; o.y = 2.5; keep[i] = o\n"
    "    t = tracemalloc.get_traced_memory()[0] - t0\n"
    "    tracemalloc.stop(); return round(t / n)\n"
    "print(per(A), per(B))\n";

/* Run script with the interpreter python; its first n numbers into v. */
static bool python_figures_with(const char *python, const char *script,
                                long *v, int n)
{
    char path[] = "/tmp/objmem-tour-XXXXXX";
    char cmd[4200];
    int fd = mkstemp(path), got = 0;
    FILE *f;

    if (fd < 0)
        return false;
    if (write(fd, script, strlen(script)) < 0)
        got = -1;
    close(fd);
    snprintf(cmd, sizeof(cmd), "%s %s 2>/dev/null", python, path);
    f = got == 0 ? popen(cmd, "r") : NULL;
    while (f && got < n && fscanf(f, "%ld", &v[got]) == 1)
        got++;
    if (f)
        pclose(f);
    unlink(path);
    return got == n;
}

static bool python_figures(const char *script, long *v, int n)
{
    return python_figures_with("python3", script, v, n);
}

static const char *yes(long v)
{
    return v ? "True" : "False";
}

/* A list built as the compiler builds [1, 2, 3]: [] extended. */
static om_object *list_literal(void)
{
    om_object *l = om_list_new(0), *t;

    t = om_tuple_pack(3, om_int_from_i64(1), om_int_from_i64(2),
                      om_int_from_i64(3));
    om_list_extend(l, t);
    om_decref(t);
    return l;
}

static void row(const char *label, const char *ours, bool have,
                const char *theirs)
{
    printf("  %-33s%-11s%s\n", label, ours, have ? theirs : "-");
}

static void tour_identity(const long *py, bool have)
{
    char ours[24], theirs[24];
    om_object *a = om_int_from_i64(256), *b = om_int_from_i64(256);
    om_object *c = om_int_from_i64(257), *d = om_int_from_i64(257);
    om_object *h1 = om_str_literal("hello"), *h2 = om_str_literal("hello");
    om_object *w1 = om_str_literal("hello world");
    om_object *w2 = om_str_literal("hello world");
    om_object *i1 = om_intern("hello world"), *i2 = om_intern("hello world");

    printf("  %-33s%-11s%s\n", "", "objmem", "python3");
    row("256 is 256 (small-int cache):", yes(a == b), have, yes(py[0]));
    row("257 is 257:", yes(c == d), have, yes(py[1]));
    row("\"hello\" is \"hello\" (literals):", yes(h1 == h2), have,
        yes(py[2]));
    row("\"hello world\" literals:", yes(w1 == w2), have, yes(py[3]));
    row("after sys.intern / om_intern:", yes(i1 == i2), have, yes(py[4]));
    snprintf(ours, sizeof(ours), "%ld", (long)om_refcnt(om_none()));
    snprintf(theirs, sizeof(theirs), "%ld", py[5]);
    row("refcount of None:", ours, have, theirs);
    printf("  (None is immortal, as in CPython 3.12+; python3 3.11 still "
           "counts it)\n");
    om_decref(c);
    om_decref(d);
    om_decref(w1);
    om_decref(w2);
    om_decref(i1);
    om_decref(i2);
}

static void tour_sizes(const long *py, bool have)
{
    const char *names[] = { "0", "0.0", "\"\"", "()", "[]", "{}",
                            "instance" };
    om_object *cls = om_class_new("A", NULL, 0, 0), *v[7];

    v[0] = om_int_from_i64(0);
    v[1] = om_float_from_double(0.0);
    v[2] = om_str_from_utf8("", 0);
    v[3] = om_tuple_new(0);
    v[4] = om_list_new(0);
    v[5] = om_dict_new();
    v[6] = om_instance_new(cls);
    printf("\nsizes of empty objects (sys.getsizeof / om_sizeof), bytes:\n");
    for (int i = 0; i < 7; i++) {
        printf("  %-10s objmem %4zu   python3 ", names[i], om_sizeof(v[i]));
        have ? printf("%4ld\n", py[6 + i]) : printf("   -\n");
        om_decref(v[i]);
    }
    om_decref(cls);
}

static void tour_growth(const long *py, bool have)
{
    om_object *l = om_list_new(0), *one = om_int_from_i64(1);

    printf("\nlist over-allocation: size after each of 20 appends\n"
           "  objmem  ");
    for (int i = 0; i < 20; i++) {
        om_list_append(l, one);
        printf(" %zu", om_sizeof(l));
    }
    printf("\n  python3 ");
    for (int i = 0; i < 20 && have; i++)
        printf(" %ld", py[13 + i]);
    printf("%s\n", have ? "" : " -");
    om_decref(l);
}

/* Bytes that 10,000 instances of cls with x and y set hold, each, as
 * tracing counts them (python3's figure is tracemalloc's). */
static size_t traced_per_instance(om_object *cls)
{
    enum { N = 10000 };
    om_object *keep = om_list_new(N), *x = om_float_from_double(1.5);
    size_t t0, t1, peak;

    om_trace_start(1);
    om_trace_get_traced_memory(&t0, &peak);
    for (size_t i = 0; i < N; i++) {
        om_object *o = om_instance_new(cls);
        om_setattr(o, "x", x);
        om_setattr(o, "y", x);
        om_list_set(keep, i, o);            /* steals o */
    }
    om_trace_get_traced_memory(&t1, &peak);
    om_trace_stop();
    om_decref(keep);
    om_decref(x);
    return (t1 - t0 + N / 2) / N;
}

static void tour_deep(const long *py, bool have)
{
    om_object *d = om_dict_new(), *l = list_literal(), *hello;
    const char *slots[] = { "x", "y" };
    om_object *a_cls = om_class_new("A", NULL, 0, 0);
    om_object *b_cls = om_class_new("B", slots, 2, 0);
    om_object *a = om_instance_new(a_cls), *b = om_instance_new(b_cls);
    om_object *x = om_float_from_double(1.5), *y = om_float_from_double(2.5);

    hello = om_str_literal("hello");
    om_dict_set(d, om_str_literal("key"), l);
    om_dict_set(d, om_str_literal("other"), hello);
    printf("\n{\"key\": [1, 2, 3], \"other\": \"hello\"}: shallow %zu, deep "
           "%zu bytes (python3: ", om_sizeof(d), om_deep_sizeof(d));
    have ? printf("%ld, %ld)\n", py[33], py[34]) : printf("-)\n");
    om_setattr(a, "x", x);
    om_setattr(a, "y", y);
    om_setattr(b, "x", x);
    om_setattr(b, "y", y);
    printf("\ninstances with x = 1.5, y = 2.5, in bytes: shallow / deep / "
           "per instance\n(tracemalloc's count over 10,000 of them):\n");
    printf("  with a dict:     objmem %3zu / %3zu / %3zu   python3 ",
           om_sizeof(a), om_deep_sizeof(a), traced_per_instance(a_cls));
    have ? printf("%3ld / %3ld / %3ld\n", py[35], py[36], py[39])
         : printf("-\n");
    printf("  with two slots:  objmem %3zu / %3zu / %3zu   python3 ",
           om_sizeof(b), om_deep_sizeof(b), traced_per_instance(b_cls));
    have ? printf("%3ld / %3ld / %3ld\n", py[37], py[38], py[40])
         : printf("-\n");
    printf("(key-sharing, as python3: the class keeps the names x and y "
           "once, an instance\nonly its values, 32 bytes.  python3's deep "
           "walk reads a.__dict__, which makes\na dict for the occasion, "
           "and counts the names; objmem's counts the values.\nThe "
           "instance is 48 bytes, not 3.11's 56: one word in front of it "
           "holds the dict\nor the values, as in CPython 3.12, where 3.11 "
           "keeps two, one always empty.)\n");
    om_decref(d);
    om_decref(l);
    om_decref(a);
    om_decref(b);
    om_decref(a_cls);
    om_decref(b_cls);
    om_decref(x);
    om_decref(y);
}

static void tour_objects(void)
{
    long py[41];
    bool have = python_figures(PY_FIGURES, py, 41);

    heading("4. Objects (layer 3): caches, interning, sizes, beside python3");
    if (!have)
        printf("(python3 not found: its column is left empty)\n\n");
    tour_identity(py, have);
    tour_sizes(py, have);
    tour_growth(py, have);
    tour_deep(py, have);
}

/* ---- Step 5: the cycle collector, beside python3 ---- */

/* python3's figures for step 5: the article's two-node cycle, the
 * thresholds, and the copy-on-write experiment (heap kB, then what a
 * forked reader dirties, plain and after gc.freeze()). */
static const char *PY_GC =
    "import gc, os\n"
    "class Node:\n    def __init__(self): self.ref = None\n"
    "a = Node(); b = Node(); a.ref = b; b.ref = a\n"
    "del a, b\n"
    "print(gc.collect())\n"
    "print(*gc.get_threshold())\n"
    "def kb(key, path):\n"
    "    for l in open(path):\n"
    "        if l.startswith(key): return int(l.split()[1])\n"
    "r0 = kb('VmRSS:', '/proc/self/status')\n"
    "root = [[1000 + i, 'value %d' % i] for i in range(100000)]\n"
    "print(kb('VmRSS:', '/proc/self/status') - r0)\n"
    "def child():\n"
    "    r, w = os.pipe(); pid = os.fork()\n"
    "    if pid == 0:\n"
    "        d0 = kb('Private_Dirty:', '/proc/self/smaps_rollup')\n"
    "        for item in root:\n"
    "            for x in item: pass\n"
    "        gc.collect()\n"
    "        d = kb('Private_Dirty:', '/proc/self/smaps_rollup') - d0\n"
    "        os.write(w, str(d).encode()); os._exit(0)\n"
    "    os.close(w); v = int(os.read(r, 64)); os.waitpid(pid, 0)\n"
    "    return v\n"
    "print(child()); gc.freeze(); print(child())\n";

static long finalizer_runs;
static om_object *lazarus;              /* what the finalizer saved */

static void save_self(om_object *o)
{
    finalizer_runs++;
    if (!lazarus) {
        om_incref(o);
        lazarus = o;
    }
}

struct gc_node {
    om_object base;
    om_object *ref;
};

static int gc_node_traverse(om_object *o, om_visitproc visit, void *arg)
{
    om_object *ref = ((struct gc_node *)o)->ref;
    return ref ? visit(ref, arg) : 0;
}

static int gc_node_clear(om_object *o)
{
    om_object *ref = ((struct gc_node *)o)->ref;

    ((struct gc_node *)o)->ref = NULL;
    om_xdecref(ref);
    return 0;
}

static void gc_node_dealloc(om_object *o)
{
    gc_node_clear(o);
    om_object_free(o);
}

static const struct om_type phoenix_type = {
    .name = "Phoenix",
    .basic_size = sizeof(struct gc_node),
    .flags = OM_TPFLAGS_GC,
    .dealloc = gc_node_dealloc,
    .traverse = gc_node_traverse,
    .clear = gc_node_clear,
    .finalize = save_self,
};

static void tour_cycle(const long *py, bool have)
{
    om_object *cls = om_class_new("Node", NULL, 0, 0), *a, *b;
    size_t live0;

    (void)om_str_literal("ref");        /* the attribute name, immortal */
    live0 = om_live_objects();
    a = om_instance_new(cls);
    b = om_instance_new(cls);

    printf("The article's Node cycle: a.ref = b; b.ref = a; del a, b\n");
    om_setattr(a, "ref", b);
    om_setattr(b, "ref", a);
    om_decref(a);
    om_decref(b);
    printf("  after del: %zu objects still alive (refcounts never reach "
           "0)\n", om_live_objects() - live0);
    printf("  Collected: %zd objects   (python3: ", om_gc_collect(2));
    if (have)
        printf("%ld", py[0]);
    else
        printf("-");
    printf(")\n  (the two nodes: their attributes are key-sharing values, "
           "not dict objects)\n");
    om_decref(cls);
}

static void tour_generations(const long *py, bool have)
{
    int t[3], c[3];
    om_object *keep = om_list_new(0), *objs;

    om_gc_get_threshold(t);
    printf("\nGenerations and thresholds: (%d, %d, %d)   (python3: ", t[0],
           t[1], t[2]);
    if (have)
        printf("(%ld, %ld, %ld))\n", py[1], py[2], py[3]);
    else
        printf("-)\n");
    for (int nested = 0; nested < 2; nested++) {
        om_gc_collect(2);
        for (int i = 0; i < 500; i++) {
            om_object *l = om_list_new(0), *inner = om_list_new(0);
            if (nested)
                om_list_append(l, inner);
            om_list_append(keep, l);
            om_decref(inner);
            om_decref(l);
        }
        om_gc_get_count(c);
        printf("  500 %s made and kept: counts (%d, %d, %d)\n",
               nested ? "lists of an empty list" : "empty lists", c[0], c[1],
               c[2]);
        om_gc_collect(0);
        objs = om_gc_get_objects(1);
        printf("    after om_gc_collect(0), generation 1 holds %zu "
               "object(s)\n", om_list_len(objs));
        om_decref(objs);
        om_list_clear(keep);
    }
    printf("  (an empty list, or one of numbers and strings, is not tracked "
           "here: it cannot\n  be in a cycle until a container goes in, as "
           "a dict in python3, which\n  tracks every list: "
           "gc.is_tracked([]) is True there, om_gc_is_tracked false)\n");
    om_decref(keep);
}

static void tour_resurrection(void)
{
    struct gc_node *n = (struct gc_node *)om_new(&phoenix_type);
    om_object *o = &n->base;

    om_gc_track(o);
    n->ref = o;                         /* a cycle of one */
    om_incref(o);
    om_decref(o);
    printf("\nA finalizer that resurrects (PEP 442): a Phoenix in a cycle "
           "saves itself\n");
    ptrdiff_t found = om_gc_collect(2);
    printf("  om_gc_collect(2) = %zd: the finalizer ran %ld time(s), the "
           "object lives on,\n  om_gc_is_finalized = %s\n", found,
           finalizer_runs, om_gc_is_finalized(o) ? "True" : "False");
    lazarus = NULL;
    om_decref(o);                       /* the cycle is garbage again */
    found = om_gc_collect(2);
    printf("  dropped again: om_gc_collect(2) = %zd, the finalizer ran %ld "
           "time(s) in all\n", found, finalizer_runs);
}

/* The article's cache: get_resource() through a WeakValueDictionary. */
static om_object *get_resource(om_object *cache, om_object *cls,
                               const char *name)
{
    om_object *key = om_str_from_utf8(name, strlen(name));
    om_object *r = om_weakvaluedict_get(cache, key);

    if (r) {
        printf("  Cache hit: %s\n", name);
    } else {
        printf("  Cache miss: %s, creating new\n", name);
        r = om_instance_new(cls);
        om_weakvaluedict_set(cache, key, r);
    }
    om_decref(key);
    return r;
}

static void tour_weakrefs(void)
{
    om_object *cache = om_weakvaluedict_new();
    om_object *cls = om_class_new("ExpensiveResource", NULL, 0, 0);
    om_object *r1, *r2, *r3;

    printf("\nThe article's cache with a WeakValueDictionary:\n");
    r1 = get_resource(cache, cls, "dataset_a");
    r2 = get_resource(cache, cls, "dataset_a");
    om_decref(r1);
    om_decref(r2);
    printf("  del r1, r2: the cache holds %zu entries\n",
           om_weakvaluedict_len(cache));
    r3 = get_resource(cache, cls, "dataset_a");
    om_decref(r3);
    om_decref(cache);
    om_decref(cls);
}

/* Freeze before fork: in a child process of its own, so that the
 * immortal heap does not stay in this one. */
static void tour_fork(const long *py, bool have)
{
    fflush(stdout);
    pid_t pid = fork();

    if (pid == 0) {
        om_object *root = cow_build_heap(100000);
        struct om_stats s;
        long plain, frozen, immortal;

        om_stats_get(&s);
        plain = cow_child_dirties(root);
        om_gc_freeze();
        frozen = cow_child_dirties(root);
        om_immortalize_heap();
        immortal = cow_child_dirties(root);
        printf("\nFreeze before fork: a parent builds 100,000 [int, str] "
               "lists (%zu kB of\nobjects); a forked worker reads every "
               "object and collects. Its private\ndirty memory grows by "
               "(kB):\n", s.bytes_in_use / 1024);
        printf("  %-34s %8s %8s\n", "", "objmem", "python3");
        printf("  %-34s %8ld %8ld\n", "no freeze", plain, have ? py[5] : -1);
        printf("  %-34s %8ld %8ld\n", "om_gc_freeze / gc.freeze()", frozen,
               have ? py[6] : -1);
        printf("  %-34s %8ld %8s\n", "freeze + om_immortalize_heap()",
               immortal, "(none)");
        if (have)
            printf("  (python3's heap: %ld kB of RSS growth)\n", py[4]);
        fflush(stdout);
        _exit(0);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    printf("  (freezing keeps the collector's hands off the shared pages, "
           "but every incref\n  still writes; immortal objects take no "
           "writes at all)\n");
}

static void tour_gc(void)
{
    long py[7];
    bool have = python_figures(PY_GC, py, 7);

    heading("5. The cycle collector, beside python3");
    tour_cycle(py, have);
    tour_generations(py, have);
    tour_resurrection();
    tour_weakrefs();
    tour_fork(py, have);
}

/* ---- Step 6: CPython itself on objmem ---- */

/* The article's experiment in Python, RSS above the start in KiB. */
static const char *PY_RSS =
    "import time\n"
    "def rss():\n"
    "    with open('/proc/self/statm') as f:\n"
    "        return int(f.read().split()[1]) * 4\n"
    "r0 = rss()\n"
    "lst = [str(i) for i in range(1_000_000)]\n"
    "r1 = rss()\n"
    "del lst\n"
    "r2 = rss()\n"
    "time.sleep(0.3)\n"
    "r2b = rss()\n"
    "lst = [str(i) for i in range(1_000_000)]\n"
    "keep = lst[::100]\n"
    "del lst\n"
    "r3 = rss()\n"
    "time.sleep(0.3)\n"
    "r4 = rss()\n"
    "print(r1 - r0, r2 - r0, r2b - r0, r3 - r0, r4 - r0)\n";

/* The launcher beside this program, in out: false when not built. */
static bool find_launcher(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 16);

    if (n <= 0)
        return false;
    out[n] = '\0';
    strcpy(strrchr(out, '/') + 1, "objmem-python");
    return access(out, X_OK) == 0;
}

static void tour_cpython(void)
{
    char launcher[4096];
    long py[5], om[5];
    bool have_py, have_om = false;

    heading("6. CPython itself on objmem: the article's experiment");
    printf("objmem-python is the local CPython with objmem in its three "
           "allocator\ndomains (objmem python ARGS).  The article: "
           "\"lst = [...]; del lst: RSS may\nnot drop\".  A million "
           "strings, deleted; again, keeping one in a hundred.\n\n");
    have_om = find_launcher(launcher, sizeof(launcher)) &&
              python_figures_with(launcher, PY_RSS, om, 5);
    have_py = python_figures(PY_RSS, py, 5);
    if (!have_om) {
        printf("(objmem-python is not built here: no CPython to embed)\n");
        return;
    }
    printf("RSS above the start, MiB            python3   objmem-python\n");
    for (int k = 0; k < 5; k++) {
        static const char *const step[] = {
            "1M strings built", "all deleted, at once", "... 0.3 s later",
            "rebuilt, 1% kept, at once", "... 0.3 s later" };
        char mine[32] = "-";
        if (have_py)
            snprintf(mine, sizeof(mine), "%.1f", mib((size_t)py[k] * 1024));
        printf("%-34s %8s   %13.1f\n", step[k], mine,
               mib((size_t)om[k] * 1024));
    }
    printf("\npymalloc gives back an arena as soon as all of its 1 MiB is "
           "free, and only\nthen; objmem gives back every 4 KiB page that "
           "stays free for the purge\ndelay (50 ms): a little later when all "
           "goes, and most of it when 1%%\nsurvive.\n");
}

/* ---- Step 7: which blocks keep the memory ---- */

/* The survivors, traced: a capture (NAME.1) taken by SIGUSR2 a fifth of
 * a second after the del (the purge delay gone by). */
static const char *PY_PINS =
    "import os, signal, time\n"
    "def build():\n"
    "    return [str(i) for i in range(1_000_000)]\n"
    "lst = build()\n"
    "keep = lst[::100]\n"
    "del lst\n"
    "time.sleep(0.2)\n"
    "os.kill(os.getpid(), signal.SIGUSR2)\n"
    "x = [1]\n";

static void tour_pins(void)
{
    char launcher[4096], dir[] = "/tmp/objmem-tour-XXXXXX";
    char script[64], cmd[4400], capture[64];
    char *argv[] = { "pins", capture, "--by", "filename", "--limit", "2",
                     NULL };
    char *tl_argv[] = { "timeline", capture, "--rows", "8", NULL };
    FILE *f;
    int rc;

    heading("7. Which blocks keep the memory: objmem pins");
    if (!find_launcher(launcher, sizeof(launcher)) || !mkdtemp(dir)) {
        printf("(objmem-python is not built here: no CPython to embed)\n");
        return;
    }
    snprintf(script, sizeof(script), "%s/survivors.py", dir);
    snprintf(capture, sizeof(capture), "%s/tour.1", dir);
    f = fopen(script, "w");
    if (f) {
        fputs(PY_PINS, f);
        fclose(f);
    }
    printf("The same survivors, traced (objmem python --trace=2; a capture "
           "on SIGUSR2\n0.2 s after the del).  Which allocation sites keep "
           "pages and arenas from\ngoing back, and what freeing them would "
           "give back:\n\n");
    fflush(stdout);
    snprintf(cmd, sizeof(cmd), "OBJMEM_TRACE=2 OBJMEM_TRACE_FILE=%s/tour "
             "%s %s", dir, launcher, script);
    rc = system(cmd) == 0 && access(capture, R_OK) == 0;
    if (rc) {
        objmem_pins(6, argv);
        printf("\nAnd over time (objmem timeline): the traced bytes fall "
               "at the del; the\nresident set falls after the purge delay, "
               "but not as far (the dots):\n\n");
        fflush(stdout);
        objmem_timeline(4, tl_argv);
    } else {
        printf("(the traced run failed)\n");
    }
    fflush(stdout);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("(cannot remove %s)\n", dir);
    printf("\nNo profiler tells this: memray's documentation says a "
           "leaked block keeps its\narena and \"you won't be able to tell "
           "which object was leaked\".  objmem pins\n--html draws the heap "
           "map: a row per arena, a cell per page.\n");
}

/* ---- Step 8: the report ---- */

static void tour_report(void)
{
    struct om_stats s = stats();

    heading("8. The heap at the end: om_debug_malloc_stats()");
    printf("bytes mapped %zu, resident %zu, in use %zu; purged so far "
           "%llu\n\n", s.bytes_mapped, s.bytes_resident, s.bytes_in_use,
           (unsigned long long)s.bytes_purged_total);
    om_debug_malloc_stats(stdout);
}

int objmem_tour(void)
{
    printf("objmem %s: a guided tour of the small-object allocator\n",
           om_version());
    tour_classes();
    tour_fill();
    tour_million();
    tour_objects();
    tour_gc();
    tour_cpython();
    tour_pins();
    tour_report();
    return om_check() == 0 ? 0 : 1;
}
