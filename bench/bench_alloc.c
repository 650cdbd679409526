/*
 * bench_alloc.c - the allocation benchmark: objmem against its anchors
 * (pymalloc, mimalloc, glibc, jemalloc, tcmalloc), all in one run.
 *
 * A program, never a test: it prints medians and ratios, nothing passes
 * or fails.  See bench/README.md for how to run it and read it.
 *
 * Parent and children.  The parent runs --reps repetitions.  In each one
 * it runs every (backend, pattern) once, each in a fresh child process (a
 * fork and an exec of this binary with "--child BACKEND PATTERN"), which
 * measures and prints its figures on a pipe, one "val KEY NUMBER" line
 * each.  So the backends are interleaved in time (the backend order turns
 * by one every repetition), and no backend's heap, threads or caches leak
 * into another's figures.  Each table cell is the median of the children,
 * with their min..max.
 *
 * Which malloc is called.  objmem is linked in statically.  The anchors
 * are opened with dlopen(RTLD_NOW | RTLD_LOCAL): their malloc and free are
 * taken from their own handles, and since the library is local it cannot
 * replace the process's malloc (Debian's mimalloc and tcmalloc export
 * malloc and __libc_malloc).  glibc's malloc is taken with
 * dlsym(RTLD_DEFAULT) in a child where no anchor is loaded.  Every child
 * checks with dladdr() which file the functions it calls come from, and
 * that the process's malloc is still glibc's; it warns when one is not.
 *
 * Timing.  CLOCK_THREAD_CPUTIME_ID: user and system time of the measuring
 * thread, so page faults count but time spent waiting for a CPU does not.
 * The two thread patterns are the exception: they run T threads and time
 * the whole process by the wall clock (see "Thread patterns" below), and
 * the machine's CPU count bounds how far they can scale.
 * Every call goes through a function pointer, objmem's too, so every
 * backend pays the same call cost; "loop alone" is the same loop calling
 * dummies.  Each timed block gets its first byte written, as a caller
 * would; retention fills its blocks whole, so that RSS is honest.
 * The bench's own arrays come from mmap, not from the backend measured.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "objmem.h"
#include "benchutil.h"

/* ---- Settings ---- */

#define NBACKENDS 6
#define NPATTERNS 7
#define MAX_REPS 99
#define MAX_THREADS 512         /* most threads one child may start */
#define MAX_TLIST 16            /* most thread counts in --threads */
#define LIFO_TABLE 4096         /* sizes the lifo loop cycles through */
#define LIFO_LIVE 512           /* blocks of 1..512 bytes kept live */
#define TLOCAL_LIVE 1000        /* blocks each threads-local thread keeps */
#define RING_SLOTS 4096         /* pointers a threads-xfer ring holds */
#define RING_BATCH 32           /* blocks per publication of a ring count */
#define SPIN_TRIES 64           /* CPU pauses before a waiting thread yields */
#define CHILD_TIMEOUT_S 300     /* a child still running then is killed */
#define OUT_MAX 65536           /* bytes kept from one child's output */
#define INFO_MAX 2048           /* bytes kept of a backend's info lines */
#define MB (1024.0 * 1024.0)

/*
 * How much work each child does.  --quick shrinks the counts; the block
 * sizes never change.  The thread patterns split one total among their T
 * threads, so a cell takes about as long as T=1 or less, however large T
 * is.  A default run takes about 3 minutes on 2 cores.
 */
struct settings {
    long lifo_ops;              /* malloc+free pairs timed in lifo */
    long batch_blocks;          /* blocks allocated per batch round */
    long batch_rounds;          /* rounds per batch child */
    long churn_live;            /* live blocks during churn */
    long churn_steps;           /* free+malloc steps timed in churn */
    long hold_blocks;           /* blocks allocated in retention */
    long tlocal_steps;          /* threads-local steps, all threads */
    long txfer_blocks;          /* threads-xfer blocks, all pairs */
    int nthreads;               /* T of a thread child; 0 elsewhere */
    int tlist[MAX_TLIST];       /* thread counts, ascending, no repeats */
    int ntlist;                 /* entries in tlist */
    int reps;                   /* children per (backend, pattern) */
    bool quick;                 /* smoke-run counts */
};

/* CPUs this process may run on (its affinity mask, as nproc counts). */
static int cpus_usable(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Sort t[0..n-1] ascending and drop repeats; returns the new count. */
static int sort_unique(int *t, int n)
{
    int kept = 0;

    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            int x = t[j];

            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    for (int i = 0; i < n; i++)
        if (kept == 0 || t[i] != t[kept - 1])
            t[kept++] = t[i];
    return kept;
}

/* 1, 2 and 4 threads, and the CPU count and twice it when above 4. */
static void default_tlist(struct settings *s)
{
    int cpus = cpus_usable(), n = 0;

    s->tlist[n++] = 1;
    s->tlist[n++] = 2;
    s->tlist[n++] = 4;
    if (cpus > 4)
        s->tlist[n++] = cpus < MAX_THREADS ? cpus : MAX_THREADS;
    if (2 * cpus > 4)
        s->tlist[n++] = 2 * cpus < MAX_THREADS ? 2 * cpus : MAX_THREADS;
    s->ntlist = sort_unique(s->tlist, n);
}

static void settings_init(struct settings *s, bool quick, int reps)
{
    s->quick = quick;
    s->reps = reps > 0 ? reps : quick ? 3 : 5;
    s->lifo_ops = quick ? 2000000 : 50000000;
    s->batch_blocks = quick ? 100000 : 1000000;
    s->batch_rounds = quick ? 2 : 5;
    s->churn_live = 100000;
    s->churn_steps = quick ? 1000000 : 10000000;
    s->hold_blocks = quick ? 200000 : 2000000;
    s->tlocal_steps = quick ? 10000000 : 60000000;
    s->txfer_blocks = quick ? 1000000 : 5000000;
    s->nthreads = 0;
    default_tlist(s);
}

/* ---- Small helpers ---- */

#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif

__attribute__((noreturn))
static void oom(void)
{
    die("the backend returned NULL (out of memory)");
}

/* Minor page faults of this thread so far. */
static double minor_faults(void)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_minflt;
}

/*
 * Resident bytes of this process, from /proc/self/statm.  Read with
 * read(2) into the stack: stdio would malloc, and in the glibc child that
 * block could pin the very heap being measured.
 */
static double rss_bytes(void)
{
    char buf[128];
    long pages_size, pages_resident;
    ssize_t n;
    int fd = open("/proc/self/statm", O_RDONLY);

    if (fd < 0)
        die("cannot open /proc/self/statm: %s", strerror(errno));
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    if (sscanf(buf, "%ld %ld", &pages_size, &pages_resident) != 2)
        die("cannot parse /proc/self/statm");
    return (double)pages_resident * (double)sysconf(_SC_PAGESIZE);
}

/*
 * Bytes of this process's memory that were given back with MADV_FREE but
 * are still counted in RSS (the kernel takes them only under pressure),
 * from "LazyFree:" in /proc/self/smaps_rollup; 0 when it cannot tell.
 */
static double lazyfree_bytes(void)
{
    char buf[4096];
    const char *field;
    ssize_t n;
    int fd = open("/proc/self/smaps_rollup", O_RDONLY);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    field = strstr(buf, "LazyFree:");
    return field ? strtod(field + strlen("LazyFree:"), NULL) * 1024 : 0;
}

/* ---- Random numbers: splitmix64 with fixed seeds ---- */

/* One seed per use, the same in every child, so every backend sees the
 * same sizes and the same orders. */
enum seed {
    SEED_LIFO = 1, SEED_BATCH, SEED_ORDER, SEED_CHURN, SEED_STEPS,
    SEED_HOLD, SEED_DROP, SEED_TLOCAL, SEED_TXFER
};

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), by multiply and shift. */
static uint64_t rng_below(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(state) * n) >> 64);
}

/* n sizes, uniform in [lo, hi]. */
static uint32_t *size_table(size_t n, uint32_t lo, uint32_t hi,
                            enum seed seed)
{
    uint32_t *sizes = map_array(n, sizeof(*sizes));
    uint64_t state = seed;

    for (size_t i = 0; i < n; i++)
        sizes[i] = lo + (uint32_t)rng_below(&state, hi - lo + 1);
    return sizes;
}

/* A random permutation of 0..n-1 (Fisher-Yates). */
static uint32_t *permutation(size_t n, enum seed seed)
{
    uint32_t *order = map_array(n, sizeof(*order));
    uint64_t state = seed;

    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_below(&state, i + 1);
        uint32_t t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    return order;
}

/* ---- Backends (child side) ---- */

/* What a child measures: one backend's malloc, free and release call. */
struct heap_api {
    void *(*malloc)(size_t size);
    void (*free)(void *p);
    int (*release)(void);       /* NULL when the backend has none */
};

/* The child's state: entry points found in the anchors, and its argv. */
static struct {
    void (*mi_collect)(bool force);
    int (*mallctl)(const char *name, void *oldp, size_t *oldlenp,
                   void *newp, size_t newlen);
    void (*tc_release)(void);
    int (*malloc_trim)(size_t pad);
    bool preloaded;             /* re-executed with LD_PRELOAD */
    int argc;
    char **argv;
} child;

static int release_objmem(void)
{
    om_collect(true);
    return 0;
}

static int release_mimalloc(void)
{
    child.mi_collect(true);
    return 0;
}

/* Flush this thread's cache, then purge every arena (4096 is
 * MALLCTL_ARENAS_ALL). */
static int release_jemalloc(void)
{
    int flush = child.mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    int purge = child.mallctl("arena.4096.purge", NULL, NULL, NULL, 0);

    return purge ? purge : flush;
}

static int release_tcmalloc(void)
{
    child.tc_release();
    return 0;
}

/* malloc_trim returns 1 when it gave memory back, 0 when it had none. */
static int release_glibc(void)
{
    child.malloc_trim(0);
    return 0;
}

/* The file that holds fn, or NULL; *base gets that file's load address. */
static const char *file_of(void *fn, void **base)
{
    Dl_info info;

    if (!fn || !dladdr(fn, &info) || !info.dli_fname)
        return NULL;
    *base = info.dli_fbase;
    return info.dli_fname;
}

/*
 * Report which file fn comes from, and warn unless that file's name
 * contains want, or, when want is NULL, unless it is this executable.
 */
static void verify(const char *what, void *fn, const char *want)
{
    void *base = NULL, *self_base = NULL;
    const char *file = file_of(fn, &base);
    bool ok;

    file_of((void *)verify, &self_base);
    if (!file) {
        emit("warn", "%s: dladdr cannot tell which file holds it", what);
        return;
    }
    ok = want ? strstr(file, want) != NULL : base == self_base;
    emit("info", "%s -> %s", what, *file ? file : "(this executable)");
    if (!ok)
        emit("warn", "%s comes from %s, not from %s", what, file,
             want ? want : "this executable");
}

/*
 * Check malloc and free of an anchor, and that the process's own malloc is
 * still glibc's (or the anchor's, when it had to be preloaded).
 */
static void verify_api(const struct heap_api *api, const char *lib)
{
    verify("malloc", (void *)api->malloc, lib);
    verify("free", (void *)api->free, lib);
    verify("process malloc", dlsym(RTLD_DEFAULT, "malloc"),
           child.preloaded ? lib : "libc.so");
}

/*
 * Re-exec this child with lib in LD_PRELOAD.  Needed when dlopen fails
 * with "cannot allocate memory in static TLS block": jemalloc is built
 * with initial-exec TLS, and its TLS does not fit in the small surplus
 * that glibc keeps for libraries opened later.  Preloaded, its TLS is
 * reserved at start-up; the price is that it then serves the process's
 * own malloc too (the bench's arrays are mmapped, so they are not
 * counted).  The child says so in its info lines.  Returns on failure.
 */
static void reexec_preloaded(const char *lib)
{
    char *argv[16];
    int n = 0;

    while (n < child.argc && n < 14) {
        argv[n] = child.argv[n];
        n++;
    }
    argv[n++] = "--preloaded";
    argv[n] = NULL;
    if (setenv("LD_PRELOAD", lib, 1) != 0)
        return;
    fflush(stdout);
    execv("/proc/self/exe", argv);
    emit("warn", "re-exec with LD_PRELOAD=%s failed: %s", lib,
         strerror(errno));
}

/*
 * dlopen the first of names that loads, RTLD_NOW | RTLD_LOCAL.  Under
 * LD_PRELOAD the library is already there and dlopen returns its handle.
 * On failure emits "skip" with dlerror's text and returns NULL.
 */
static void *open_lib(const char *const *names)
{
    char why[512] = "no library name given";

    for (; *names; names++) {
        void *h = dlopen(*names, RTLD_NOW | RTLD_LOCAL);
        const char *err;

        if (h)
            return h;
        err = dlerror();
        snprintf(why, sizeof(why), "%s", err ? err : *names);
        if (strstr(why, "static TLS") && !child.preloaded)
            reexec_preloaded(*names);
    }
    emit("skip", "%s", why);
    return NULL;
}

/* dlsym, warning when the symbol is missing. */
static void *lookup(void *h, const char *name)
{
    void *sym = dlsym(h, name);

    if (!sym)
        emit("warn", "symbol %s not found", name);
    return sym;
}

static int open_objmem(struct heap_api *api)
{
    api->malloc = om_malloc;
    api->free = om_free;
    api->release = release_objmem;
    emit("info", "version %s, linked statically", om_version());
    verify("om_malloc", (void *)om_malloc, NULL);
    verify("om_free", (void *)om_free, NULL);
    return 0;
}

/*
 * Start the interpreter without signal handlers and without site, so that
 * this thread holds the GIL, as PyObject_Malloc requires.  Then ask
 * _PyObject_DebugMallocStats, which answers 0 when pymalloc is not the
 * object allocator (PYTHONMALLOC=malloc, say).
 */
static int start_python(void *h)
{
    void (*init)(int) = lookup(h, "Py_InitializeEx");
    const char *(*version)(void) = lookup(h, "Py_GetVersion");
    int (*stats)(FILE *) = lookup(h, "_PyObject_DebugMallocStats");
    int *no_site = dlsym(h, "Py_NoSiteFlag");
    FILE *null = fopen("/dev/null", "w");

    if (!init)
        return -1;
    if (no_site)
        *no_site = 1;
    init(0);
    if (version)
        emit("info", "Python %.*s", (int)strcspn(version(), " "),
             version());
    if (stats && null && !stats(null))
        emit("warn", "pymalloc is not Python's object allocator here");
    if (null)
        fclose(null);
    return 0;
}

static int open_pymalloc(struct heap_api *api)
{
    static const char *const names[] = {
        "libpython3.11.so.1.0", "libpython3.12.so.1.0",
        "libpython3.13.so.1.0", "libpython3.10.so.1.0",
        "libpython3.9.so.1.0", "libpython3.so", NULL
    };
    void *h;

    unsetenv("PYTHONMALLOC");
    h = open_lib(names);
    if (!h)
        return -1;
    api->malloc = lookup(h, "PyObject_Malloc");
    api->free = lookup(h, "PyObject_Free");
    api->release = NULL;
    if (!api->malloc || !api->free || start_python(h) != 0)
        return -1;
    verify_api(api, "libpython3");
    return 0;
}

static int open_mimalloc(struct heap_api *api)
{
    static const char *const names[] = {
        "libmimalloc.so.2", "libmimalloc.so", NULL
    };
    void *h = open_lib(names);
    int (*version)(void);

    if (!h)
        return -1;
    api->malloc = lookup(h, "mi_malloc");
    api->free = lookup(h, "mi_free");
    api->release = release_mimalloc;
    child.mi_collect = lookup(h, "mi_collect");
    version = lookup(h, "mi_version");
    if (!api->malloc || !api->free || !child.mi_collect)
        return -1;
    if (version)
        emit("info", "version %d.%d.%d", version() / 100,
             version() / 10 % 10, version() % 10);
    verify_api(api, "libmimalloc");
    return 0;
}

/* jemalloc's malloc and free from its own handle; see reexec_preloaded. */
static int open_jemalloc(struct heap_api *api)
{
    static const char *const names[] = {
        "libjemalloc.so.2", "libjemalloc.so", NULL
    };
    void *h = open_lib(names);
    const char *version = NULL;
    size_t len = sizeof(version);

    if (!h)
        return -1;
    api->malloc = lookup(h, "malloc");
    api->free = lookup(h, "free");
    api->release = release_jemalloc;
    child.mallctl = lookup(h, "mallctl");
    if (!api->malloc || !api->free || !child.mallctl)
        return -1;
    if (child.mallctl("version", &version, &len, NULL, 0) == 0)
        emit("info", "version %s", version);
    if (child.preloaded)
        emit("info", "loaded by LD_PRELOAD (dlopen: no room in the static "
             "TLS block), so it is also the process's malloc");
    verify_api(api, "libjemalloc");
    return 0;
}

/* tcmalloc_minimal first: the allocator without the profilers. */
static int open_tcmalloc(struct heap_api *api)
{
    static const char *const names[] = {
        "libtcmalloc_minimal.so.4", "libtcmalloc.so.4", NULL
    };
    void *h = open_lib(names);
    const char *(*version)(int *major, int *minor, const char **patch);
    const char *patch;
    int major, minor;

    if (!h)
        return -1;
    api->malloc = lookup(h, "tc_malloc");
    api->free = lookup(h, "tc_free");
    api->release = release_tcmalloc;
    child.tc_release = lookup(h, "MallocExtension_ReleaseFreeMemory");
    version = lookup(h, "tc_version");
    if (!api->malloc || !api->free || !child.tc_release)
        return -1;
    if (version)
        emit("info", "%s", version(&major, &minor, &patch));
    verify_api(api, "libtcmalloc");
    return 0;
}

/* The process's own malloc: nothing else is loaded in this child. */
static int open_glibc(struct heap_api *api)
{
    api->malloc = lookup(RTLD_DEFAULT, "malloc");
    api->free = lookup(RTLD_DEFAULT, "free");
    api->release = release_glibc;
    child.malloc_trim = lookup(RTLD_DEFAULT, "malloc_trim");
    if (!api->malloc || !api->free || !child.malloc_trim)
        return -1;
    emit("info", "version %s", gnu_get_libc_version());
    verify("malloc", (void *)api->malloc, "libc.so");
    verify("free", (void *)api->free, "libc.so");
    verify("malloc_trim", (void *)child.malloc_trim, "libc.so");
    return 0;
}

struct backend {
    const char *name;
    const char *release;        /* its release call, NULL for none */
    int (*open)(struct heap_api *api);
    bool needs_gil;             /* not thread-safe: no thread patterns */
};

/* In the order of the summary's columns. */
static const struct backend backends[NBACKENDS] = {
    {"objmem", "om_collect(true)", open_objmem, false},
    {"pymalloc", NULL, open_pymalloc, true},
    {"mimalloc", "mi_collect(true)", open_mimalloc, false},
    {"glibc", "malloc_trim(0)", open_glibc, false},
    {"jemalloc", "tcache.flush, arena.4096.purge", open_jemalloc, false},
    {"tcmalloc", "ReleaseFreeMemory()", open_tcmalloc, false},
};

/* ---- Patterns (child side) ---- */

static char dummy_block[64];

/* The dummies of "loop alone": a call that does nothing, kept a call. */
static NOIPA void *dummy_malloc(size_t size)
{
    (void)size;
    return dummy_block;
}

static NOIPA void dummy_free(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/*
 * Time n malloc+free pairs, the sizes cycling through sizes[LIFO_TABLE].
 * NOIPA keeps the compiler from specialising the loop for one backend.
 */
static NOIPA double time_lifo(const struct heap_api *api,
                              const uint32_t *sizes, long n)
{
    void *(*do_malloc)(size_t) = api->malloc;
    void (*do_free)(void *) = api->free;
    double t0 = thread_ns();

    for (long i = 0; i < n; i++) {
        char *p = do_malloc(sizes[i & (LIFO_TABLE - 1)]);

        if (!p)
            oom();
        p[0] = (char)i;
        do_free(p);
    }
    return thread_ns() - t0;
}

/* lifo: one block of every size 1..512 live, then malloc; free; ... */
static void run_lifo(const struct heap_api *api, const struct settings *s)
{
    static const struct heap_api dummy = {dummy_malloc, dummy_free, NULL};
    uint32_t *sizes = size_table(LIFO_TABLE, 16, 512, SEED_LIFO);
    void *live[LIFO_LIVE];
    double faults;

    for (int i = 0; i < LIFO_LIVE; i++)
        if (!(live[i] = api->malloc((size_t)i + 1)))
            oom();
    emit_val("loop", time_lifo(&dummy, sizes, s->lifo_ops) / s->lifo_ops);
    faults = minor_faults();
    emit_val("ns", time_lifo(api, sizes, s->lifo_ops) / s->lifo_ops);
    emit_val("faults", (minor_faults() - faults) * 1000 / s->lifo_ops);
    for (int i = 0; i < LIFO_LIVE; i++)
        api->free(live[i]);
}

/* One batch round: n mallocs, then n frees in order (or FIFO if NULL). */
static NOIPA double time_batch(const struct heap_api *api,
                               const uint32_t *sizes, const uint32_t *order,
                               void **p, long n)
{
    void *(*do_malloc)(size_t) = api->malloc;
    void (*do_free)(void *) = api->free;
    double t0 = thread_ns();

    for (long i = 0; i < n; i++) {
        if (!(p[i] = do_malloc(sizes[i])))
            oom();
        *(char *)p[i] = (char)i;
    }
    for (long i = 0; i < n; i++)
        do_free(p[order ? order[i] : i]);
    return thread_ns() - t0;
}

/*
 * batch-fifo and batch-random: ns per malloc+free pair over the rounds
 * after the first.  The first round mostly measures the kernel's page
 * faults on fresh memory (several us each on a VM), the same work for
 * every backend; it is reported apart as "first".  The later rounds
 * measure reuse, including the faults a backend causes itself by giving
 * pages back between rounds (see "faults", per 1000 ops).
 */
static void run_batch(const struct heap_api *api, const struct settings *s,
                      bool random_order)
{
    long n = s->batch_blocks;
    uint32_t *sizes = size_table(n, 16, 512, SEED_BATCH);
    uint32_t *order = random_order ? permutation(n, SEED_ORDER) : NULL;
    void **p = map_array(n, sizeof(*p));
    double t = 0, faults;

    emit_val("first", time_batch(api, sizes, order, p, n) / n);
    faults = minor_faults();
    for (long r = 0; r < s->batch_rounds; r++)
        t += time_batch(api, sizes, order, p, n);
    emit_val("ns", t / ((double)n * s->batch_rounds));
    emit_val("faults", (minor_faults() - faults) * 1000 /
             ((double)n * s->batch_rounds));
}

static void run_batch_fifo(const struct heap_api *api,
                           const struct settings *s)
{
    run_batch(api, s, false);
}

static void run_batch_random(const struct heap_api *api,
                             const struct settings *s)
{
    run_batch(api, s, true);
}

/*
 * The churn steps: free the block at a random slot, put a block of a
 * random size 16..512 there.  One random number gives both (the high half
 * the slot, the low half the size), so the loop's own cost stays small.
 */
static NOIPA double time_churn(const struct heap_api *api, void **p,
                               long live, long steps)
{
    void *(*do_malloc)(size_t) = api->malloc;
    void (*do_free)(void *) = api->free;
    uint64_t state = SEED_STEPS;
    double t0 = thread_ns();

    for (long k = 0; k < steps; k++) {
        uint64_t r = rng_next(&state);
        size_t i = (size_t)(((r >> 32) * (uint64_t)live) >> 32);

        do_free(p[i]);
        if (!(p[i] = do_malloc(16 + (uint32_t)r % 497)))
            oom();
        *(char *)p[i] = (char)k;
    }
    return thread_ns() - t0;
}

static void run_churn(const struct heap_api *api, const struct settings *s)
{
    long live = s->churn_live;
    uint32_t *sizes = size_table(live, 16, 512, SEED_CHURN);
    void **p = map_array(live, sizeof(*p));
    double faults;

    for (long i = 0; i < live; i++)
        if (!(p[i] = api->malloc(sizes[i])))
            oom();
    faults = minor_faults();
    emit_val("ns", time_churn(api, p, live, s->churn_steps) /
             s->churn_steps);
    emit_val("faults", (minor_faults() - faults) * 1000 / s->churn_steps);
    for (long i = 0; i < live; i++)
        api->free(p[i]);
}

/* Share of the allocation's RSS growth given back at rss_now. */
static double returned_pct(double before, double peak, double rss_now)
{
    return peak > before ? 100.0 * (peak - rss_now) / (peak - before) : 0;
}

/* Allocate n blocks of 32..128 bytes, fill them; emit payload, growth. */
static void hold_blocks(const struct heap_api *api, void **p, long n,
                        double *before, double *peak)
{
    uint32_t *sizes = size_table(n, 32, 128, SEED_HOLD);
    double payload = 0;

    *before = rss_bytes();
    for (long i = 0; i < n; i++) {
        if (!(p[i] = api->malloc(sizes[i])))
            oom();
        memset(p[i], 0xa5, sizes[i]);
        payload += sizes[i];
    }
    *peak = rss_bytes();
    emit_val("payload", payload / MB);
    emit_val("growth", (*peak - *before) / MB);
}

/*
 * retention: RSS given back after freeing a random 99% of the blocks,
 * right away, after 1 s, and after the backend's release call.
 */
static void run_retention(const struct heap_api *api,
                          const struct settings *s)
{
    long n = s->hold_blocks;
    uint32_t *order = permutation(n, SEED_DROP);
    void **p = map_array(n, sizeof(*p));
    double before, peak;

    hold_blocks(api, p, n, &before, &peak);
    for (long k = 0; k < n - n / 100; k++)
        api->free(p[order[k]]);
    emit_val("nocall", returned_pct(before, peak, rss_bytes()));
    sleep(1);
    emit_val("after1s", returned_pct(before, peak, rss_bytes()));
    if (!api->release)
        return;
    if (api->release() != 0)
        emit("warn", "the release call failed");
    emit_val("release", returned_pct(before, peak, rss_bytes()));
    emit_val("lazy", lazyfree_bytes() / MB);
}

/* ---- Thread patterns (child side) ----
 *
 * threads-local and threads-xfer time the process, not a thread.  Their T
 * threads meet at a barrier; each notes CLOCK_MONOTONIC when it leaves it
 * and when its work is done, and the figure is the work of all of them
 * divided by (last end - first start).  Thread CPU time would hide what
 * these patterns are for: threads waiting on a lock, on each other, or for
 * a CPU.  Each thread's seed depends only on its index, so every backend
 * sees the same sizes.
 */

/*
 * One thread of a thread pattern.  Aligned to 128 bytes (two cache lines,
 * for the adjacent-line prefetcher) so that no two threads' figures share
 * a line.  The array of them is mmapped by the main thread.
 */
struct worker {
    _Alignas(128) const struct heap_api *api;
    void *(*fn)(void *arg);     /* what the thread runs, with itself */
    pthread_barrier_t *start;   /* all T threads leave it together */
    struct ring *ring;          /* threads-xfer: shared with its partner */
    long n;                     /* its steps, or its pair's blocks */
    uint64_t seed;              /* splitmix64 seed (xfer: the pair's) */
    double t0;                  /* wall clock when it left the barrier */
    double t1;                  /* wall clock when its work was done */
};

/*
 * A single-producer single-consumer ring of block pointers.  The producer
 * counts the slots it has filled, the consumer those it has emptied; each
 * publishes its count (tail, head) every RING_BATCH blocks with a release
 * store, and always before it waits, so the other side, which reads it
 * with an acquire load, sees whole batches and never waits on a count that
 * is not out yet.  Each side also keeps the other's count as last read,
 * and reads it again only when the ring looks full (or empty).  So the
 * index cache lines move between the CPUs about once per batch, not once
 * per block: the harness's own cost stays small next to the cross-thread
 * frees it is there to measure.  Invariant:
 * 0 <= head <= taken <= tail <= filled <= head + RING_SLOTS.
 */
struct ring {
    _Alignas(128) atomic_size_t tail;   /* slots filled, as published */
    _Alignas(128) atomic_size_t head;   /* slots emptied, as published */
    _Alignas(128) size_t filled;        /* producer: slots filled, ever */
    size_t head_seen;                   /* producer: head as last read */
    _Alignas(128) size_t taken;         /* consumer: slots emptied, ever */
    size_t tail_seen;                   /* consumer: tail as last read */
    _Alignas(128) void *slot[RING_SLOTS];
};

_Static_assert((RING_SLOTS & (RING_SLOTS - 1)) == 0,
               "RING_SLOTS must be a power of 2: slots are count & mask");
_Static_assert(RING_SLOTS % RING_BATCH == 0,
               "a full ring must end on a whole batch");

/* Wait on the other thread: pause the CPU a few times, then yield it. */
static void backoff(unsigned *tries)
{
    if (++*tries < SPIN_TRIES) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ volatile("yield" ::: "memory");
#endif
        return;
    }
    sched_yield();
}

/* Producer: publish every filled slot, then wait until one is free. */
static void ring_wait_room(struct ring *r)
{
    unsigned tries = 0;

    atomic_store_explicit(&r->tail, r->filled, memory_order_release);
    for (;;) {
        r->head_seen = atomic_load_explicit(&r->head,
                                            memory_order_acquire);
        if (r->filled - r->head_seen < RING_SLOTS)
            return;
        backoff(&tries);
    }
}

/* Producer side: append p, waiting while the ring is full. */
static void ring_push(struct ring *r, void *p)
{
    if (r->filled - r->head_seen == RING_SLOTS)
        ring_wait_room(r);
    r->slot[r->filled++ & (RING_SLOTS - 1)] = p;
    if (r->filled % RING_BATCH == 0)
        atomic_store_explicit(&r->tail, r->filled, memory_order_release);
}

/* Producer side, at the end: publish the last, partial batch. */
static void ring_flush(struct ring *r)
{
    atomic_store_explicit(&r->tail, r->filled, memory_order_release);
}

/* Consumer: hand back every emptied slot, then wait for a filled one. */
static void ring_wait_block(struct ring *r)
{
    unsigned tries = 0;

    atomic_store_explicit(&r->head, r->taken, memory_order_release);
    for (;;) {
        r->tail_seen = atomic_load_explicit(&r->tail,
                                            memory_order_acquire);
        if (r->tail_seen != r->taken)
            return;
        backoff(&tries);
    }
}

/* Consumer side: take the oldest pointer, waiting while there is none. */
static void *ring_pop(struct ring *r)
{
    void *p;

    if (r->taken == r->tail_seen)
        ring_wait_block(r);
    p = r->slot[r->taken++ & (RING_SLOTS - 1)];
    if (r->taken % RING_BATCH == 0)
        atomic_store_explicit(&r->head, r->taken, memory_order_release);
    return p;
}

/* Wait for the other threads, then note the start time. */
static void worker_start(struct worker *w)
{
    pthread_barrier_wait(w->start);
    w->t0 = wall_s();
}

/*
 * One threads-local thread: TLOCAL_LIVE blocks of 16..512 B (untimed),
 * then from the barrier on, n steps { free a random one of them; malloc
 * 16..512 in its place }, then free them (untimed).  Its slot array is on
 * its own stack, not in the backend.
 */
static void *tlocal_thread(void *arg)
{
    struct worker *w = arg;
    void *(*do_malloc)(size_t) = w->api->malloc;
    void (*do_free)(void *) = w->api->free;
    void *slot[TLOCAL_LIVE];
    uint64_t state = w->seed;

    for (int i = 0; i < TLOCAL_LIVE; i++)
        if (!(slot[i] = do_malloc(16 + rng_below(&state, 497))))
            oom();
    worker_start(w);
    for (long k = 0; k < w->n; k++) {
        uint64_t r = rng_next(&state);
        size_t i = (size_t)(((r >> 32) * TLOCAL_LIVE) >> 32);

        do_free(slot[i]);
        if (!(slot[i] = do_malloc(16 + (uint32_t)r % 497)))
            oom();
        *(char *)slot[i] = (char)k;
    }
    w->t1 = wall_s();
    for (int i = 0; i < TLOCAL_LIVE; i++)
        do_free(slot[i]);
    return NULL;
}

/* The word that block i of a threads-xfer pair carries. */
static uint64_t xfer_word(const struct worker *w, long i)
{
    return w->seed ^ (uint64_t)i;
}

/* A threads-xfer producer: n blocks of 16..512 B, each tagged, sent on. */
static void *xfer_producer(void *arg)
{
    struct worker *w = arg;
    void *(*do_malloc)(size_t) = w->api->malloc;
    uint64_t state = w->seed;

    worker_start(w);
    for (long i = 0; i < w->n; i++) {
        uint64_t word = xfer_word(w, i);
        void *p = do_malloc(16 + rng_below(&state, 497));

        if (!p)
            oom();
        memcpy(p, &word, sizeof(word));
        ring_push(w->ring, p);
    }
    ring_flush(w->ring);
    w->t1 = wall_s();
    return NULL;
}

/*
 * Its consumer: check each block's word (the ring keeps the order, so
 * block i carries word i) and free it; every free is a cross-thread one.
 */
static void *xfer_consumer(void *arg)
{
    struct worker *w = arg;
    void (*do_free)(void *) = w->api->free;

    worker_start(w);
    for (long i = 0; i < w->n; i++) {
        void *p = ring_pop(w->ring);
        uint64_t word;

        memcpy(&word, p, sizeof(word));
        if (word != xfer_word(w, i))
            die("threads-xfer: block %ld arrived with a wrong word", i);
        do_free(p);
    }
    w->t1 = wall_s();
    return NULL;
}

/*
 * Run w[0..t-1] on t threads of their own, which all start at one barrier,
 * and join them.  Returns the seconds from the first thread's start to
 * the last one's end.
 */
static double run_workers(struct worker *w, int t)
{
    pthread_t tid[MAX_THREADS];
    pthread_barrier_t start;
    double t0 = INFINITY, t1 = -INFINITY;
    int err;

    pthread_barrier_init(&start, NULL, (unsigned)t);
    for (int i = 0; i < t; i++) {
        w[i].start = &start;
        if ((err = pthread_create(&tid[i], NULL, w[i].fn, &w[i])) != 0)
            die("pthread_create: %s", strerror(err));
    }
    for (int i = 0; i < t; i++) {
        pthread_join(tid[i], NULL);
        t0 = fmin(t0, w[i].t0);
        t1 = fmax(t1, w[i].t1);
    }
    pthread_barrier_destroy(&start);
    return t1 - t0;
}

/* threads-local: T threads, each churning blocks of its own. */
static void run_threads_local(const struct heap_api *api,
                              const struct settings *s)
{
    int t = s->nthreads;
    struct worker *w = map_array((size_t)t, sizeof(*w));
    long steps = s->tlocal_steps / t;

    for (int i = 0; i < t; i++) {
        w[i].api = api;
        w[i].fn = tlocal_thread;
        w[i].n = steps;
        w[i].seed = ((uint64_t)SEED_TLOCAL << 32) + (uint64_t)i;
    }
    emit_val("rate", (double)steps * t / run_workers(w, t) / 1e6);
}

/* threads-xfer: T/2 pairs; thread 2k produces, thread 2k+1 consumes. */
static void run_threads_xfer(const struct heap_api *api,
                             const struct settings *s)
{
    int t = s->nthreads, pairs = t / 2;
    struct worker *w = map_array((size_t)t, sizeof(*w));
    struct ring *rings = map_array((size_t)pairs, sizeof(*rings));
    long blocks = s->txfer_blocks / pairs;

    for (int i = 0; i < t; i++) {
        w[i].api = api;
        w[i].fn = i % 2 ? xfer_consumer : xfer_producer;
        w[i].ring = &rings[i / 2];
        w[i].n = blocks;
        w[i].seed = ((uint64_t)SEED_TXFER << 32) + (uint64_t)(i / 2);
    }
    emit_val("rate", (double)blocks * pairs / run_workers(w, t) / 1e6);
}

struct pattern {
    const char *name;
    void (*run)(const struct heap_api *api, const struct settings *s);
    void (*describe)(const struct settings *s); /* its table's heading */
    const char *unit;           /* the unit of its figures */
    bool threaded;              /* runs T threads: one cell per T */
};

static void describe_lifo(const struct settings *s)
{
    printf("%d blocks live (one of each size 1..%d), then N = %ld x "
           "{ p = malloc(16..512); free(p) }\n", LIFO_LIVE, LIFO_LIVE,
           s->lifo_ops);
}

static void describe_batch_fifo(const struct settings *s)
{
    printf("1 + %ld rounds x { malloc N = %ld blocks of 16..512 B, free "
           "them in allocation (FIFO) order }\n", s->batch_rounds,
           s->batch_blocks);
}

static void describe_batch_random(const struct settings *s)
{
    printf("1 + %ld rounds x { malloc N = %ld blocks of 16..512 B, free "
           "them in a random order }\n", s->batch_rounds, s->batch_blocks);
}

static void describe_churn(const struct settings *s)
{
    printf("%ld blocks of 16..512 B live, then N = %ld steps "
           "{ free a random one; malloc 16..512 in its place }\n",
           s->churn_live, s->churn_steps);
}

static void describe_retention(const struct settings *s)
{
    printf("malloc N = %ld blocks of 32..128 B (filled), free a random "
           "99%%; RSS read from /proc/self/statm\n", s->hold_blocks);
}

static void describe_threads_local(const struct settings *s)
{
    printf("T threads, each with %d blocks of 16..512 B live, then\n   "
           "N/T steps each { free a random one of its blocks; malloc "
           "16..512 in its place },\n   N = %ld steps in all, "
           "nothing shared between the threads\n", TLOCAL_LIVE,
           s->tlocal_steps);
}

static void describe_threads_xfer(const struct settings *s)
{
    printf("T/2 producer threads malloc 16..512 B, write a word in the "
           "block\n   and pass it through a %d-slot lock-free ring to its "
           "consumer thread, which checks\n   the word and frees the block"
           " (every free is cross-thread); N = %ld blocks in all\n",
           RING_SLOTS, s->txfer_blocks);
}

static const struct pattern patterns[NPATTERNS] = {
    {"lifo", run_lifo, describe_lifo, "ns/op", false},
    {"batch-fifo", run_batch_fifo, describe_batch_fifo, "ns/op", false},
    {"batch-random", run_batch_random, describe_batch_random, "ns/op",
     false},
    {"churn", run_churn, describe_churn, "ns/step", false},
    {"retention", run_retention, describe_retention, NULL, false},
    {"threads-local", run_threads_local, describe_threads_local, "Mops/s",
     true},
    {"threads-xfer", run_threads_xfer, describe_threads_xfer, "Mblocks/s",
     true},
};

#define PAT_LIFO 0
#define PAT_RETENTION 4
#define PAT_TLOCAL 5
#define PAT_TXFER 6

static int find_backend(const char *name)
{
    for (int b = 0; b < NBACKENDS; b++)
        if (strcmp(name, backends[b].name) == 0)
            return b;
    return -1;
}

static int find_pattern(const char *name)
{
    for (int pat = 0; pat < NPATTERNS; pat++)
        if (strcmp(name, patterns[pat].name) == 0)
            return pat;
    return -1;
}

/* ---- The child ---- */

/*
 * A thread child's T: a thread pattern needs one (threads-xfer an even
 * one), and a backend that needs the GIL cannot run them.  Dies if wrong.
 */
static void check_threads(int b, int pat, int t)
{
    if (!patterns[pat].threaded)
        return;
    if (backends[b].needs_gil)
        die("child: %s needs the GIL, so no thread patterns",
            backends[b].name);
    if (t < 1 || t > MAX_THREADS || (pat == PAT_TXFER && t % 2))
        die("child: %s cannot run with --threads %d", patterns[pat].name,
            t);
}

/*
 * argv: exe --child BACKEND PATTERN [--quick] [--threads T] [--preloaded].
 * Prints its figures on stdout (the parent's pipe) and ends with "done".
 */
static int child_main(int argc, char **argv)
{
    static char outbuf[OUT_MAX];
    int b = find_backend(argv[2]), pat = find_pattern(argv[3]);
    struct settings s;
    struct heap_api api;
    bool quick = false;
    int threads = 0;

    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
    child.argc = argc;
    child.argv = argv;
    for (int i = 4; i < argc; i++) {
        quick |= strcmp(argv[i], "--quick") == 0;
        child.preloaded |= strcmp(argv[i], "--preloaded") == 0;
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
    }
    if (b < 0 || pat < 0)
        die("child: unknown backend or pattern");
    check_threads(b, pat, threads);
    if (child.preloaded)
        unsetenv("LD_PRELOAD");
    settings_init(&s, quick, 0);
    s.nthreads = threads;
    alarm(CHILD_TIMEOUT_S);
    if (backends[b].open(&api) != 0) {
        emit("skip", "backend not usable (see the lines above)");
        return 0;
    }
    api.free(api.malloc(64)); /* one-time set-up, not timed */
    patterns[pat].run(&api, &s);
    emit("done", "%s %s", argv[2], argv[3]);
    fflush(stdout);
    return 0;
}

/* ---- Results (parent side) ---- */

enum key {
    K_NS, K_LOOP, K_FIRST, K_FAULTS, K_NOCALL, K_AFTER1S, K_RELEASE,
    K_GROWTH, K_PAYLOAD, K_LAZY, K_RATE, NKEYS
};

static const char *const key_names[NKEYS] = {
    "ns", "loop", "first", "faults", "nocall", "after1s", "release",
    "growth", "payload", "lazy", "rate"
};

/* One (pattern, T, backend): every child's figure for each key. */
struct cell {
    int n[NKEYS];               /* figures kept per key */
    double v[NKEYS][MAX_REPS];  /* the figures, in run order */
};

/* What one child printed, before it is known whether it succeeded. */
struct child_report {
    bool has[NKEYS];
    double v[NKEYS];
    bool done;                  /* printed "done" */
    bool skip;                  /* printed "skip" */
};

/*
 * The parent's state.  cells[pat][ti][b] is backend b on pattern pat with
 * counts[pat][ti] threads; a single-thread pattern has one count, 0.
 */
static struct {
    struct cell cells[NPATTERNS][MAX_TLIST][NBACKENDS];
    int counts[NPATTERNS][MAX_TLIST];   /* thread counts of each pattern */
    int ncounts[NPATTERNS];             /* entries in counts[pat] */
    int cpus;                           /* CPUs usable, as nproc says */
    bool backend_on[NBACKENDS];         /* chosen by --only */
    bool pattern_on[NPATTERNS];         /* chosen by --pattern */
    char skip[NBACKENDS][512];          /* why a backend is unusable */
    char info[NBACKENDS][INFO_MAX];     /* its first child's info lines */
    char warn[NBACKENDS][INFO_MAX];     /* distinct warnings */
    char crashes[4096];                 /* one line per failed child */
    int ncrashes;
    char self[PATH_MAX];                /* this executable */
} run;

static int find_key(const char *name)
{
    for (int k = 0; k < NKEYS; k++)
        if (strcmp(name, key_names[k]) == 0)
            return k;
    return -1;
}

/* "KEY NUMBER" of a val line. */
static void parse_val(const char *text, struct child_report *rep)
{
    char key[32];
    double v;
    int k;

    if (sscanf(text, "%31s %lf", key, &v) != 2 || (k = find_key(key)) < 0)
        return;
    rep->v[k] = v;
    rep->has[k] = true;
}

/* One line of a child's output, into rep and the run's text buffers. */
static void parse_line(char *line, int b, bool keep_info,
                       struct child_report *rep)
{
    char *text = strchr(line, ' ');

    if (text)
        *text++ = '\0';
    if (strcmp(line, "done") == 0)
        rep->done = true;
    if (!text)
        return;
    if (strcmp(line, "info") == 0 && keep_info)
        add_line(run.info[b], INFO_MAX, text);
    else if (strcmp(line, "warn") == 0)
        add_line(run.warn[b], INFO_MAX, text);
    else if (strcmp(line, "skip") == 0 && !run.skip[b][0])
        snprintf(run.skip[b], sizeof(run.skip[b]), "%s", text);
    else if (strcmp(line, "val") == 0)
        parse_val(text, rep);
    rep->skip |= strcmp(line, "skip") == 0;
}

static void parse_output(char *out, int b, struct child_report *rep)
{
    bool keep_info = run.info[b][0] == '\0';
    char *save = NULL;

    for (char *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        parse_line(line, b, keep_info, rep);
}

/* Keep a successful child's figures. */
static void commit(const struct child_report *rep, struct cell *c)
{
    for (int k = 0; k < NKEYS; k++)
        if (rep->has[k] && c->n[k] < MAX_REPS)
            c->v[k][c->n[k]++] = rep->v[k];
}

/* Record and print a child that crashed or ended without its results. */
__attribute__((format(printf, 2, 3)))
static void crash(const char *where, const char *fmt, ...)
{
    char what[256];
    size_t used = strlen(run.crashes);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nbench_alloc: CHILD FAILED: %s: %s\n", where, what);
    snprintf(run.crashes + used, sizeof(run.crashes) - used,
             "  %s: %s\n", where, what);
    run.ncrashes++;
}

/* ---- Running children (parent side) ---- */

/* argv for a child, in one buffer: exec wants char *, names are const. */
struct argv_buf {
    char text[PATH_MAX + 256];
    char *argv[8];
    int argc;
    size_t used;
};

static void argv_add(struct argv_buf *a, const char *s)
{
    size_t len = strlen(s) + 1;

    if (a->argc >= 7 || a->used + len > sizeof(a->text))
        return;
    memcpy(a->text + a->used, s, len);
    a->argv[a->argc++] = a->text + a->used;
    a->argv[a->argc] = NULL;
    a->used += len;
}

/*
 * Fork and exec "--child BACKEND PATTERN", with "--threads T" when t > 0;
 * *fd gets its stdout's pipe.
 */
static pid_t spawn_child(int b, int pat, int t, const struct settings *s,
                         int *fd)
{
    struct argv_buf a = {.argc = 0, .used = 0};
    char count[16];
    pid_t pid;

    argv_add(&a, run.self);
    argv_add(&a, "--child");
    argv_add(&a, backends[b].name);
    argv_add(&a, patterns[pat].name);
    if (s->quick)
        argv_add(&a, "--quick");
    if (t > 0) {
        snprintf(count, sizeof(count), "%d", t);
        argv_add(&a, "--threads");
        argv_add(&a, count);
    }
    if ((pid = exec_child(run.self, a.argv, fd)) < 0)
        die("cannot start a child: %s", strerror(errno));
    return pid;
}

/*
 * Run one child of backend b on pattern pat, with its ti-th thread count,
 * and keep what it measured.
 */
static void run_child(int b, int pat, int ti, int rep_no,
                      const struct settings *s)
{
    static char out[OUT_MAX];
    struct child_report rep;
    char why[128], where[128], threads[32] = "";
    int fd, status, t = run.counts[pat][ti];
    pid_t pid = spawn_child(b, pat, t, s, &fd);

    memset(&rep, 0, sizeof(rep));
    read_all(fd, out, sizeof(out));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        continue;
    parse_output(out, b, &rep);
    if (t > 0)
        snprintf(threads, sizeof(threads), " T=%d", t);
    snprintf(where, sizeof(where), "%s %s%s (rep %d)", backends[b].name,
             patterns[pat].name, threads, rep_no + 1);
    if (child_failure(status, rep.done, rep.skip, CHILD_TIMEOUT_S, why,
                      sizeof(why)))
        crash(where, "%s", why);
    else if (rep.done)
        commit(&rep, &run.cells[pat][ti][b]);
}

/* Can backend b run pattern pat?  Not a thread one if it needs the GIL. */
static bool can_run(int b, int pat)
{
    return run.backend_on[b] && !run.skip[b][0] &&
           !(patterns[pat].threaded && backends[b].needs_gil);
}

/*
 * Every chosen backend once on pattern pat with its ti-th thread count,
 * in an order that turns by one each repetition.
 */
static void run_cell_row(int pat, int ti, int rep_no,
                         const struct settings *s)
{
    int t = run.counts[pat][ti];

    fprintf(stderr, "[rep %d/%d] %-12s", rep_no + 1, s->reps,
            patterns[pat].name);
    if (t > 0)
        fprintf(stderr, " T=%d", t);
    fputc(':', stderr);
    for (int i = 0; i < NBACKENDS; i++) {
        int b = (i + rep_no) % NBACKENDS;

        if (!can_run(b, pat))
            continue;
        fprintf(stderr, " %s", backends[b].name);
        run_child(b, pat, ti, rep_no, s);
    }
    fputc('\n', stderr);
}

/* One repetition: every chosen pattern and thread count, once. */
static void run_rep(int rep_no, const struct settings *s)
{
    for (int pat = 0; pat < NPATTERNS; pat++)
        for (int ti = 0; run.pattern_on[pat] && ti < run.ncounts[pat];
             ti++)
            run_cell_row(pat, ti, rep_no, s);
}

/* ---- Report (parent side) ---- */

/* Median of (pat, b, k), or NAN when no child gave one. */
static double cell_median(int pat, int b, enum key k, double *lo, double *hi)
{
    const struct cell *c = &run.cells[pat][0][b];

    if (c->n[k] == 0)
        return NAN;
    return median(c->v[k], c->n[k], lo, hi);
}

/* "12.3" or "4.56": two significant decimals for small figures. */
static const char *fmt_ns(double v, char *buf, size_t size)
{
    snprintf(buf, size, v < 10 ? "%.2f" : "%.1f", v);
    return buf;
}

/* The row's text when the backend gave no figure. */
static const char *missing(int b)
{
    return run.skip[b][0] ? "unavailable (see Backends)" :
           "no result (every child failed)";
}

/* The median of (pat, b, k) as text, "-" when there is none. */
static const char *fmt_median(int pat, int b, enum key k, char *buf,
                              size_t size)
{
    double lo, hi, m = cell_median(pat, b, k, &lo, &hi);

    if (isnan(m))
        return "-";
    return fmt_ns(m, buf, size);
}

/* Does any backend have figures for key k in pattern pat? */
static bool has_key(int pat, enum key k)
{
    for (int b = 0; b < NBACKENDS; b++)
        if (run.cells[pat][0][b].n[k])
            return true;
    return false;
}

static void print_time_row(int pat, int b, double base)
{
    double lo, hi, m = cell_median(pat, b, K_NS, &lo, &hi);
    char a[32], l[32], h[32], range[80], f[32];

    if (isnan(m)) {
        printf("  %-10s %s\n", backends[b].name, missing(b));
        return;
    }
    snprintf(range, sizeof(range), "%s..%s", fmt_ns(lo, l, sizeof(l)),
             fmt_ns(hi, h, sizeof(h)));
    printf("  %-10s %9s  %-17s", backends[b].name, fmt_ns(m, a, sizeof(a)),
           range);
    if (base > 0)
        printf(" %9.2f", m / base);
    else
        printf(" %9s", "-");
    printf(" %10s", fmt_median(pat, b, K_FAULTS, f, sizeof(f)));
    if (has_key(pat, K_FIRST))
        printf(" %10s", fmt_median(pat, b, K_FIRST, f, sizeof(f)));
    printf("  (n=%d)\n", run.cells[pat][0][b].n[K_NS]);
}

/* "loop alone": every lifo child's dummy loop, pooled. */
static void print_loop_row(void)
{
    double all[MAX_REPS * NBACKENDS], lo, hi, m;
    char a[32], l[32], h[32];
    int n = 0;

    for (int b = 0; b < NBACKENDS; b++)
        for (int i = 0; i < run.cells[PAT_LIFO][0][b].n[K_LOOP]; i++)
            all[n++] = run.cells[PAT_LIFO][0][b].v[K_LOOP][i];
    if (n == 0)
        return;
    m = median(all, n, &lo, &hi);
    printf("  %-10s %9s  %s..%s  (n=%d; the same loop calling dummies, "
           "included in every row above)\n", "loop alone",
           fmt_ns(m, a, sizeof(a)), fmt_ns(lo, l, sizeof(l)),
           fmt_ns(hi, h, sizeof(h)), n);
}

static void print_time_table(int pat, const struct settings *s)
{
    double lo, hi, base = cell_median(pat, 0, K_NS, &lo, &hi);

    printf("\n== %s: ", patterns[pat].name);
    patterns[pat].describe(s);
    printf("   %s, one op = one malloc + one free; median of the children"
           " [min..max];\n   vs objmem = anchor median / objmem median "
           "(> 1: objmem is faster); faults = minor page\n   faults per "
           "1000 ops, in the timed part%s\n", patterns[pat].unit,
           has_key(pat, K_FIRST) ? "; 1st round = ns/op of the untimed "
           "first round (fresh memory)" : "");
    printf("  %-10s %9s  %-17s %9s %10s%s\n", "backend", "median",
           "min..max", "vs objmem", "faults/kop",
           has_key(pat, K_FIRST) ? "  1st round" : "");
    for (int b = 0; b < NBACKENDS; b++)
        if (run.backend_on[b])
            print_time_row(pat, b, base);
    if (pat == PAT_LIFO)
        print_loop_row();
}

/* A percentage to print: -0.04 is noise, shown as 0. */
static double pct(double v)
{
    return fabs(v) < 0.05 ? 0 : v;
}

/* "12.3 [11.9..12.8]" for one retention key, or text when missing. */
static const char *fmt_pct(int b, enum key k, char *buf, size_t size)
{
    double lo, hi, m = cell_median(PAT_RETENTION, b, k, &lo, &hi);

    if (isnan(m))
        snprintf(buf, size, "%s", k == K_RELEASE && !backends[b].release ?
                 "none" : "-");
    else
        snprintf(buf, size, "%.1f [%.1f..%.1f]", pct(m), pct(lo), pct(hi));
    return buf;
}

static void print_retention_row(int b, long blocks)
{
    double lo, hi, g = cell_median(PAT_RETENTION, b, K_GROWTH, &lo, &hi);
    char c1[48], c2[48], c3[48];

    if (isnan(g)) {
        printf("  %-10s %s\n", backends[b].name, missing(b));
        return;
    }
    printf("  %-10s %7.1f %6.1f  %-19s %-19s %-19s %s\n", backends[b].name,
           g, g * MB / (double)blocks, fmt_pct(b, K_NOCALL, c1, sizeof(c1)),
           fmt_pct(b, K_AFTER1S, c2, sizeof(c2)),
           fmt_pct(b, K_RELEASE, c3, sizeof(c3)),
           backends[b].release ? backends[b].release : "(no release call)");
}

/* Pages given back with MADV_FREE stay in RSS; say so where there are. */
static void print_lazy_notes(void)
{
    double lo, hi;

    for (int b = 0; b < NBACKENDS; b++) {
        double m = cell_median(PAT_RETENTION, b, K_LAZY, &lo, &hi);

        if (m > 0.1)
            printf("  note: %s still had %.1f MB of LazyFree (MADV_FREE) "
                   "pages in its RSS after release\n", backends[b].name, m);
    }
}

static void print_retention_table(const struct settings *s)
{
    double lo, hi, payload = NAN;

    for (int b = 0; b < NBACKENDS && isnan(payload); b++)
        payload = cell_median(PAT_RETENTION, b, K_PAYLOAD, &lo, &hi);
    printf("\n== retention: ");
    describe_retention(s);
    printf("   payload %.1f MB; growth = RSS after the mallocs - RSS "
           "before, in MB and bytes per block;\n   %% returned = (RSS peak"
           " - RSS then) / growth, median [min..max]\n", payload);
    printf("  %-10s %7s %6s  %-19s %-19s %-19s %s\n", "backend",
           "grow MB", "B/blk", "% ret. no call", "% ret. after 1 s",
           "% ret. after rel.", "release call");
    for (int b = 0; b < NBACKENDS; b++)
        if (run.backend_on[b])
            print_retention_row(b, s->hold_blocks);
    print_lazy_notes();
}

/* ---- Thread tables (parent side) ---- */

/* Median rate of (pat, ti, b), or NAN when no child gave one. */
static double rate_median(int pat, int ti, int b, double *lo, double *hi)
{
    const struct cell *c = &run.cells[pat][ti][b];

    if (c->n[K_RATE] == 0)
        return NAN;
    return median(c->v[K_RATE], c->n[K_RATE], lo, hi);
}

/*
 * Scaling efficiency of (pat, ti, b) in %: rate(T) / (min(T, CPUs) x
 * rate(T=1)), so that threads beyond the CPUs are not expected to add
 * anything.  NAN without a T=1 figure (the counts ascend: T=1 is first).
 */
static double efficiency(int pat, int ti, int b)
{
    int t = run.counts[pat][ti];
    double lo, hi, r1 = rate_median(pat, 0, b, &lo, &hi);

    if (run.counts[pat][0] != 1 || !(r1 > 0))
        return NAN;
    return 100 * rate_median(pat, ti, b, &lo, &hi) /
           ((t < run.cpus ? t : run.cpus) * r1);
}

/* Backend b's line for pattern pat with its ti-th thread count. */
static void print_rate_row(int pat, int ti, int b)
{
    double lo = 0, hi = 0, base = rate_median(pat, ti, 0, &lo, &hi);
    double m = rate_median(pat, ti, b, &lo, &hi), e = efficiency(pat, ti, b);
    char range[64], eff[16] = "-", vs[16] = "-";

    printf("  %-10s %4d", ti ? "" : backends[b].name, run.counts[pat][ti]);
    if (isnan(m)) {
        printf("  %s\n", missing(b));
        return;
    }
    snprintf(range, sizeof(range), "%.2f..%.2f", lo, hi);
    if (!isnan(e))
        snprintf(eff, sizeof(eff), "%.0f%%", e);
    if (b != 0 && base > 0 && m > 0)
        snprintf(vs, sizeof(vs), "%.2f", base / m);
    printf(" %9.2f  %-17s", m, range);
    if (pat == PAT_TLOCAL)
        printf(" %5s", eff);
    printf(" %10s  (n=%d)\n", vs, run.cells[pat][ti][b].n[K_RATE]);
}

/* The heading of a thread table: what is timed, and how to read it. */
static void print_rate_heading(int pat, const struct settings *s)
{
    const char *unit = patterns[pat].unit;

    printf("\n== %s: ", patterns[pat].name);
    patterns[pat].describe(s);
    printf("   WALL-CLOCK time (CLOCK_MONOTONIC), from the first thread "
           "leaving the start barrier\n   to the last thread's end, not "
           "CPU time.  %d CPUs usable here (nproc): above T=%d\n   the "
           "threads share CPUs, so no backend can scale further.\n",
           run.cpus, run.cpus);
    printf("   %s = million %s per second, whole process, higher is "
           "better;\n   median of the children [min..max]\n", unit,
           pat == PAT_TLOCAL ? "steps (free + malloc)" : "blocks passed");
    if (pat == PAT_TLOCAL)
        printf("   eff = %s(T) / (min(T, %d CPUs) x %s(T=1)): 100%% = "
               "perfect scaling up to the CPUs%s\n", unit, run.cpus, unit,
               run.counts[pat][0] == 1 ? "" : " (needs T=1 in --threads)");
    printf("   vs objmem = objmem median / anchor median (> 1: objmem is "
           "faster)\n");
    printf("  %-10s %4s %9s  %-17s%s %10s\n", "backend", "T", unit,
           "min..max", pat == PAT_TLOCAL ? "   eff" : "", "vs objmem");
}

static void print_rate_table(int pat, const struct settings *s)
{
    print_rate_heading(pat, s);
    for (int b = 0; b < NBACKENDS; b++) {
        if (!run.backend_on[b])
            continue;
        if (backends[b].needs_gil) {
            printf("  %-10s n/a (needs the GIL)\n", backends[b].name);
            continue;
        }
        for (int ti = 0; ti < run.ncounts[pat]; ti++)
            print_rate_row(pat, ti, b);
    }
}

/* One summary row of a thread pattern: rates, (x) = objmem / anchor. */
static void print_rate_summary_row(int pat, int ti)
{
    double lo, hi, m, base = rate_median(pat, ti, 0, &lo, &hi);

    printf("| %s %s T=%d |", patterns[pat].name, patterns[pat].unit,
           run.counts[pat][ti]);
    for (int b = 0; b < NBACKENDS; b++) {
        if (!run.backend_on[b])
            continue;
        m = rate_median(pat, ti, b, &lo, &hi);
        if (backends[b].needs_gil)
            printf(" n/a (needs the GIL) |");
        else if (isnan(m))
            printf(" - |");
        else if (b == 0 || !(base > 0) || !(m > 0))
            printf(" %.2f |", m);
        else
            printf(" %.2f (%.2fx) |", m, base / m);
    }
    putchar('\n');
}

/* One summary cell: the median, with the ratio to objmem for times. */
static void print_summary_cell(int pat, int b, enum key k)
{
    double lo, hi, m = cell_median(pat, b, k, &lo, &hi);
    double base = cell_median(pat, 0, k, &lo, &hi);
    char a[32];

    if (isnan(m))
        printf(" %s |", k == K_RELEASE && !backends[b].release ? "none" :
               "-");
    else if (pat == PAT_RETENTION)
        printf(" %.1f |", pct(m));
    else if (b == 0 || !(base > 0) || k == K_LOOP)
        printf(" %s |", fmt_ns(m, a, sizeof(a)));
    else
        printf(" %s (%.2fx) |", fmt_ns(m, a, sizeof(a)), m / base);
}

static void print_summary_row(const char *label, int pat, enum key k)
{
    if (!run.pattern_on[pat])
        return;
    printf("| %s |", label);
    for (int b = 0; b < NBACKENDS; b++)
        if (run.backend_on[b])
            print_summary_cell(pat, b, k);
    putchar('\n');
}

/* Is any thread pattern chosen? */
static bool threads_on(void)
{
    return run.pattern_on[PAT_TLOCAL] || run.pattern_on[PAT_TXFER];
}

static void print_summary(void)
{
    char label[64];

    printf("\n== Summary: medians; (x) = anchor / objmem, > 1: objmem is "
           "faster\n");
    if (threads_on())
        printf("   thread rows: wall-clock rates, higher is better, so "
               "there (x) = objmem / anchor,\n   and > 1 still means "
               "objmem is faster; %d CPUs bound their scaling\n",
               run.cpus);
    printf("\n| pattern |");
    for (int b = 0; b < NBACKENDS; b++)
        if (run.backend_on[b])
            printf(" %s |", backends[b].name);
    printf("\n|---|");
    for (int b = 0; b < NBACKENDS; b++)
        if (run.backend_on[b])
            printf("---|");
    putchar('\n');
    for (int pat = 0; pat < PAT_RETENTION; pat++) {
        snprintf(label, sizeof(label), "%s %s", patterns[pat].name,
                 patterns[pat].unit);
        print_summary_row(label, pat, K_NS);
    }
    print_summary_row("lifo loop alone ns/op", PAT_LIFO, K_LOOP);
    print_summary_row("retention growth MB", PAT_RETENTION, K_GROWTH);
    print_summary_row("retention % returned, no call", PAT_RETENTION,
                      K_NOCALL);
    print_summary_row("retention % returned, after 1 s", PAT_RETENTION,
                      K_AFTER1S);
    print_summary_row("retention % returned, after release", PAT_RETENTION,
                      K_RELEASE);
    for (int pat = PAT_TLOCAL; pat <= PAT_TXFER; pat++)
        for (int ti = 0; run.pattern_on[pat] && ti < run.ncounts[pat];
             ti++)
            print_rate_summary_row(pat, ti);
}

/* Does backend b run any of the chosen patterns? */
static bool ran_any(int b)
{
    for (int pat = 0; pat < NPATTERNS; pat++)
        if (run.pattern_on[pat] && can_run(b, pat))
            return true;
    return run.skip[b][0] != '\0';
}

/* What each backend's first child found: versions, files, warnings. */
static void print_backends(void)
{
    printf("\n== Backends (as their first child resolved them)\n");
    for (int b = 0; b < NBACKENDS; b++) {
        char *save = NULL;

        if (!run.backend_on[b])
            continue;
        printf("  %s:\n", backends[b].name);
        if (!ran_any(b))
            printf("    not run: it needs the GIL, and every chosen "
                   "pattern runs threads\n");
        if (run.skip[b][0])
            printf("    UNAVAILABLE: %s\n", run.skip[b]);
        for (char *l = strtok_r(run.info[b], "\n", &save); l;
             l = strtok_r(NULL, "\n", &save))
            printf("    %s\n", l);
        for (char *l = strtok_r(run.warn[b], "\n", &save); l;
             l = strtok_r(NULL, "\n", &save))
            printf("    WARNING: %s\n", l);
    }
}

/* Variables that change how a backend behaves, if any are set. */
static void print_env_notes(void)
{
    static const char *const prefixes[] = {
        "OBJMEM_", "OM_", "PYTHONMALLOC", "MIMALLOC_", "MALLOC_",
        "TCMALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD", NULL
    };

    print_environment(prefixes, "; figures may not be the defaults");
}

/* The thread counts of pattern pat, "1,2,4". */
static const char *fmt_counts(int pat, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int ti = 0; ti < run.ncounts[pat] && used < size; ti++)
        used += (size_t)snprintf(buf + used, size - used, "%s%d",
                                 ti ? "," : "", run.counts[pat][ti]);
    return buf;
}

static void print_header(const struct settings *s)
{
    char local[128], xfer[128];

    printf("objmem bench_alloc %s: %d reps%s; each (backend, pattern) runs"
           " in a fresh child,\ninterleaved; time = "
           "CLOCK_THREAD_CPUTIME_ID (user + system CPU of the thread);\n"
           "%ld CPUs online.  Sizes and orders come from fixed seeds, the "
           "same for every backend.\n", om_version(), s->reps,
           s->quick ? " (--quick: smaller N)" : "",
           sysconf(_SC_NPROCESSORS_ONLN));
    if (threads_on())
        printf("threads-local (T=%s) and threads-xfer (T=%s) use WALL-CLOCK"
               " time (CLOCK_MONOTONIC)\nof the whole process instead; "
               "nproc = %d CPUs bound how far they can scale.\n",
               fmt_counts(PAT_TLOCAL, local, sizeof(local)),
               fmt_counts(PAT_TXFER, xfer, sizeof(xfer)), run.cpus);
    print_env_notes();
}

static void print_report(const struct settings *s, double seconds)
{
    print_backends();
    for (int pat = 0; pat < PAT_RETENTION; pat++)
        if (run.pattern_on[pat])
            print_time_table(pat, s);
    if (run.pattern_on[PAT_RETENTION])
        print_retention_table(s);
    for (int pat = PAT_TLOCAL; pat <= PAT_TXFER; pat++)
        if (run.pattern_on[pat])
            print_rate_table(pat, s);
    print_summary();
    printf("\nwall time %.0f s\n", seconds);
    if (run.ncrashes)
        printf("\n%d CHILDREN FAILED (their figures are left out):\n%s",
               run.ncrashes, run.crashes);
}

/* ---- Options and main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_alloc [--reps N] [--quick] "
            "[--only BACKEND[,BACKEND...]] [--pattern P[,P...]]\n"
            "                   [--threads T[,T...]]\n"
            "backends: objmem pymalloc mimalloc glibc jemalloc tcmalloc\n"
            "patterns: lifo batch-fifo batch-random churn retention\n"
            "          threads-local threads-xfer\n"
            "threads: thread counts for the thread patterns (1..%d); the "
            "default is\n         1,2,4, plus nproc and 2*nproc when above"
            " 4\n", MAX_THREADS);
}

/* Parse --threads "1,2,8" into s->tlist; -1 after printing why. */
static int parse_tlist(char *list, struct settings *s)
{
    char *save = NULL, *end;
    int n = 0;

    for (char *w = strtok_r(list, ",", &save); w;
         w = strtok_r(NULL, ",", &save)) {
        long t = strtol(w, &end, 10);

        if (*end || t < 1 || t > MAX_THREADS || n == MAX_TLIST) {
            fprintf(stderr, "bench_alloc: --threads wants at most %d "
                    "counts of 1..%d, not '%s'\n", MAX_TLIST, MAX_THREADS,
                    w);
            return -1;
        }
        s->tlist[n++] = (int)t;
    }
    if (n == 0) {
        fprintf(stderr, "bench_alloc: --threads wants a count\n");
        return -1;
    }
    s->ntlist = sort_unique(s->tlist, n);
    return 0;
}

/* Turn on the items named in a comma list; -1 on an unknown name. */
static int parse_list(char *list, bool *on, int count,
                      int (*find)(const char *name))
{
    char *save = NULL;

    memset(on, 0, (size_t)count * sizeof(*on));
    for (char *w = strtok_r(list, ",", &save); w;
         w = strtok_r(NULL, ",", &save)) {
        if (find(w) < 0) {
            fprintf(stderr, "bench_alloc: unknown name '%s'\n", w);
            return -1;
        }
        on[find(w)] = true;
    }
    return 0;
}

/*
 * One option at argv[*i]; 0, or -1 after printing why.  --threads is only
 * noted in *threads: it is parsed once the settings exist.
 */
static int parse_option(int argc, char **argv, int *i, bool *quick,
                        int *reps, char **threads)
{
    const char *opt = argv[*i];
    char *arg = *i + 1 < argc ? argv[*i + 1] : NULL;

    if (strcmp(opt, "--quick") == 0) {
        *quick = true;
        return 0;
    }
    if (!arg || (strcmp(opt, "--reps") && strcmp(opt, "--only") &&
                 strcmp(opt, "--pattern") && strcmp(opt, "--threads"))) {
        usage(stderr);
        return -1;
    }
    (*i)++;
    if (strcmp(opt, "--threads") == 0) {
        *threads = arg;
        return 0;
    }
    if (strcmp(opt, "--only") == 0)
        return parse_list(arg, run.backend_on, NBACKENDS, find_backend);
    if (strcmp(opt, "--pattern") == 0)
        return parse_list(arg, run.pattern_on, NPATTERNS, find_pattern);
    *reps = atoi(arg);
    if (*reps >= 1 && *reps <= MAX_REPS)
        return 0;
    fprintf(stderr, "bench_alloc: --reps wants 1..%d\n", MAX_REPS);
    return -1;
}

static int parse_options(int argc, char **argv, struct settings *s)
{
    bool quick = false;
    int reps = 0;
    char *threads = NULL;

    for (int b = 0; b < NBACKENDS; b++)
        run.backend_on[b] = true;
    for (int pat = 0; pat < NPATTERNS; pat++)
        run.pattern_on[pat] = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            exit(0);
        }
        if (parse_option(argc, argv, &i, &quick, &reps, &threads) != 0)
            return -1;
    }
    settings_init(s, quick, reps);
    return threads ? parse_tlist(threads, s) : 0;
}

/*
 * The thread counts of pattern pat: a single 0 (no threads) for the
 * single-thread patterns, the --threads list for threads-local, and for
 * threads-xfer that list with odd counts rounded up (its threads pair).
 */
static void set_counts(int pat, const struct settings *s)
{
    int *t = run.counts[pat], n = 0;

    if (!patterns[pat].threaded) {
        t[0] = 0;
        run.ncounts[pat] = 1;
        return;
    }
    for (int i = 0; i < s->ntlist; i++)
        t[n++] = pat == PAT_TXFER ? (s->tlist[i] + 1) / 2 * 2 :
                 s->tlist[i];
    run.ncounts[pat] = sort_unique(t, n);
}

static int parent_main(const struct settings *s)
{
    double t0 = wall_s();
    ssize_t n = readlink("/proc/self/exe", run.self, sizeof(run.self) - 1);

    if (n <= 0)
        die("cannot read /proc/self/exe: %s", strerror(errno));
    run.self[n] = '\0';
    run.cpus = cpus_usable();
    for (int pat = 0; pat < NPATTERNS; pat++)
        set_counts(pat, s);
    print_header(s);
    fflush(stdout);
    for (int rep_no = 0; rep_no < s->reps; rep_no++)
        run_rep(rep_no, s);
    print_report(s, wall_s() - t0);
    return run.ncrashes ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct settings s;

    if (argc >= 4 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    if (parse_options(argc, argv, &s) != 0)
        return 2;
    return parent_main(&s);
}
