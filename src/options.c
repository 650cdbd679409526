/*
 * options.c - X (cross-cutting): objmem's run-time options, read from the
 * environment once, without allocating (the shim reads them from inside
 * its first malloc).
 *
 * Each option has a key and one variable, OBJMEM_<KEY>; OBJMEM_CONF gives
 * several at once as "key:value,key:value".  Precedence, lowest first:
 * the built-in default, OBJMEM_CONF, the option's own variable, then an
 * API call where there is one (om_set_purge_delay).  A bad value or an
 * unknown key keeps the lower value and leaves a warning, which
 * OBJMEM_VERBOSE=1 prints and `objmem config` shows.
 *
 * Values: booleans 1/0, true/false, yes/no, on/off; integers in decimal.
 * The environment comes from environ, or from /proc/self/environ when the
 * first call comes before the C library has set environ up.
 *
 * Invariants:
 *   1. After omi_options_load, every option's value is valid for its kind
 *      and its source names where it came from.
 *   2. Nothing here allocates.
 */
#define _GNU_SOURCE 1 /* environ */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "options.h"

enum kind { BOOL, LONG, STRING };

struct option {
    const char *key;
    const char *var;
    enum kind kind;
    const char *def;
    const char *help;
    const char *source;
    char value[OMI_OPTION_MAX];
};

static struct option options[OMI_OPT_COUNT] = {
    [OMI_OPT_SHOW_STATS] = { "show_stats", "OBJMEM_SHOW_STATS", BOOL, "0",
        "write the stats report when the program exits", NULL, "" },
    [OMI_OPT_OUTPUT] = { "output", "OBJMEM_OUTPUT", STRING,
        "objmem.%p.stats", "where reports go: a file (%p: the pid, %e: "
        "the program's name, %%: %), or stderr, or stdout", NULL, "" },
    [OMI_OPT_ALLOCATOR] = { "allocator", "OBJMEM_ALLOCATOR", STRING,
        "objmem", "objmem; debug: CPython's debug hooks on every block; "
        "malloc: the C library's malloc for every block (the default under "
        "a tool that watches malloc: Valgrind's memcheck, massif, "
        "helgrind, drd, dhat; heaptrack, memusage, libc_malloc_debug); "
        "malloc_debug: both", NULL,
        "" },
    [OMI_OPT_VERBOSE] = { "verbose", "OBJMEM_VERBOSE", BOOL, "0",
        "print the options and their sources on stderr at start", NULL,
        "" },
    [OMI_OPT_PURGE_DELAY] = { "purge_delay", "OBJMEM_PURGE_DELAY", LONG,
        "50", "ms a free page stays resident before it goes back (0: at "
        "once, < 0: never)", NULL, "" },
    [OMI_OPT_CHILDREN] = { "children", "OBJMEM_CHILDREN", BOOL, "1",
        "programs this one starts run on objmem too (the shim)", NULL,
        "" },
    [OMI_OPT_TRACE] = { "trace", "OBJMEM_TRACE", LONG, "0",
        "trace every allocation with tracebacks of this many frames "
        "(1..128; 0: off), as PYTHONTRACEMALLOC", NULL, "" },
    [OMI_OPT_TRACE_SAMPLE] = { "trace_sample", "OBJMEM_TRACE_SAMPLE", LONG,
        "0", "trace a sample instead: one sampled byte per this many, on "
        "average (512 KiB is cheap enough for production; 0: off)", NULL,
        "" },
    [OMI_OPT_TRACE_FILE] = { "trace_file", "OBJMEM_TRACE_FILE", STRING,
        "objmem.%e.%p.trace", "the capture file a traced run writes at "
        "exit (%p: the pid, %e: the program's name); SIGUSR2 writes "
        "NAME.1, NAME.2, ... meanwhile", NULL, "" },
    [OMI_OPT_TRACE_PEAK] = { "trace_peak", "OBJMEM_TRACE_PEAK", LONG, "25",
        "a capture keeps the traces at their peak, summed again when the "
        "peak grows by this many percent (0: not kept)", NULL, "" },
    [OMI_OPT_TRACE_FORKS] = { "trace_forks", "OBJMEM_TRACE_FORKS", BOOL,
        "0", "a process forked from a traced one (without exec) writes a "
        "capture of its own at exit too: the workers of a pre-forking "
        "server", NULL, "" },
    [OMI_OPT_TRACE_SYMBOLS] = { "trace_symbols", "OBJMEM_TRACE_SYMBOLS",
        BOOL, "0", "a capture names its C frames in the process that "
        "writes it (libdw: tens of ms and of MB each time), not when it is "
        "loaded: for a capture read on another machine", NULL, "" },
    [OMI_OPT_RUN] = { "run", "OBJMEM_RUN", STRING, "", "set by `objmem "
        "run`: PID.ID, the program it started and the run; each report "
        "names the run, and a report or capture name without %p is that "
        "program's alone (another process writes NAME.PID)", NULL, "" },
    [OMI_OPT_GC_TORTURE] = { "gc_torture", "OBJMEM_GC_TORTURE", STRING,
        "0", "for testing a runtime: collections forced at GC allocations "
        "(om_gc_set_zeal): 1 or young:N, the automatic collection every "
        "N of them; full:N, a full collection every N; emergency, each "
        "fails first, so an emergency collection comes before its retry; "
        "0: off", NULL, "" },
};

#define MAX_WARNINGS 8
static char warnings[MAX_WARNINGS][160];
static unsigned nwarnings;
static atomic_int state;                /* 0 not loaded, 1 loading, 2 done */

/* ---- The environment, without allocating ---- */

static char proc_env[64 * 1024];
static size_t proc_env_len;

/* environ before the C library set it up: read /proc/self/environ. */
static void read_proc_environ(void)
{
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return;
    while (proc_env_len < sizeof(proc_env) - 1 &&
           (n = read(fd, proc_env + proc_env_len,
                     sizeof(proc_env) - 1 - proc_env_len)) > 0)
        proc_env_len += (size_t)n;
    close(fd);
}

/* name's value in what read_proc_environ read, or NULL. */
static const char *proc_env_get(const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < proc_env_len; i += strlen(proc_env + i) + 1)
        if (strncmp(proc_env + i, name, len) == 0 &&
            proc_env[i + len] == '=')
            return proc_env + i + len + 1;
    return NULL;
}

static const char *env_get(const char *name)
{
    return environ ? getenv(name) : proc_env_get(name);
}

/* ---- Values ---- */

/* v (len bytes) is exactly w. */
static bool is_word(const char *v, size_t len, const char *w)
{
    return strlen(w) == len && strncmp(v, w, len) == 0;
}

/*
 * A tool that watches malloc to see every block: a Valgrind tool that
 * replaces it (memcheck, massif, helgrind, drd, dhat: each preloads
 * vgpreload_<tool>-<platform>.so beside vgpreload_core; callgrind and
 * cachegrind preload the core alone, and measure the pools as they run),
 * heaptrack, glibc's memusage, or glibc's malloc debugging (mtrace,
 * mcheck and MALLOC_CHECK_ live in libc_malloc_debug.so since 2.34).
 * Under one the pools would hide every block from it, so the allocator
 * option defaults to malloc there, as CPython built with Valgrind
 * support uses malloc under Valgrind.  Returns the tool's name (the
 * option's source), or NULL.  A tool attached later (heaptrack -p)
 * cannot be seen: OBJMEM_ALLOCATOR=malloc is for that.
 */
static const char *malloc_watcher(void)
{
    static const char vg[] = "/vgpreload_";     /* Valgrind's paths */
    static const char *const libs[][2] = {
        { "libheaptrack_", "heaptrack" },
        { "libmemusage.so", "memusage" },
        { "libc_malloc_debug.so", "libc_malloc_debug" },
    };
    const char *v = env_get("LD_PRELOAD"), *s;

    if (!v && environ && proc_env_len == 0) {
        /* heaptrack's library unsets LD_PRELOAD as it starts (so that
         * the program's children are not traced), before main; the
         * process's first environment still has it. */
        read_proc_environ();
        v = proc_env_get("LD_PRELOAD");
    }
    if (!v)
        return NULL;
    for (s = v; (s = strstr(s, vg)); s++)
        if (strncmp(s + sizeof(vg) - 1, "core-", 5) != 0)
            return "Valgrind";
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
        if (strstr(v, libs[i][0]))
            return libs[i][1];
    return NULL;
}

static void append(char *w, size_t *n, const char *s, size_t len)
{
    size_t room = sizeof(warnings[0]) - 1 - *n;

    if (len > room)
        len = room;
    memcpy(w + *n, s, len);
    *n += len;
    w[*n] = '\0';
}

/* Keep the warning what + a[0:alen] + b. */
static void warn(const char *what, const char *a, size_t alen,
                 const char *b)
{
    char *w;
    size_t n = 0;

    if (nwarnings == MAX_WARNINGS)
        return;
    w = warnings[nwarnings++];
    append(w, &n, what, strlen(what));
    append(w, &n, a, alen);
    if (b)
        append(w, &n, b, strlen(b));
}

/* v is word followed by N, a decimal from 1 to 10^9 - 1. */
static bool every_n(const char *v, size_t len, const char *word)
{
    size_t w = strlen(word);

    if (len <= w || len > w + 9 || strncmp(v, word, w) != 0 || v[w] == '0')
        return false;
    for (size_t i = w; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

static bool parse_bool(const char *v, size_t len, bool *out)
{
    static const char *const yes[] = { "1", "true", "yes", "on" };
    static const char *const no[] = { "0", "false", "no", "off" };

    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == len && strncasecmp(v, yes[i], len) == 0)
            return *out = true, true;
        if (strlen(no[i]) == len && strncasecmp(v, no[i], len) == 0)
            return *out = false, true;
    }
    return false;
}

static bool valid(const struct option *o, const char *v, size_t len)
{
    bool b;
    size_t i = 0;

    if (len == 0 || len >= OMI_OPTION_MAX)
        return false;
    switch (o->kind) {
    case BOOL:
        return parse_bool(v, len, &b);
    case LONG:
        if (v[0] == '-')
            i = 1;
        if (i == len)
            return false;
        for (; i < len; i++)
            if (v[i] < '0' || v[i] > '9')
                return false;
        return len < 19;
    case STRING:
        if (o == &options[OMI_OPT_GC_TORTURE])
            return is_word(v, len, "0") || is_word(v, len, "1") ||
                   is_word(v, len, "emergency") ||
                   every_n(v, len, "young:") || every_n(v, len, "full:");
        if (o == &options[OMI_OPT_ALLOCATOR])
            return is_word(v, len, "objmem") || is_word(v, len, "debug") ||
                   is_word(v, len, "pymalloc") ||
                   is_word(v, len, "malloc") ||
                   is_word(v, len, "malloc_debug");
        return true;
    }
    return false;
}

static void set(struct option *o, const char *v, size_t len,
                const char *source)
{
    if (!valid(o, v, len)) {
        warn("bad value for ", o->key, strlen(o->key), " (kept the "
             "lower-precedence value)");
        return;
    }
    memcpy(o->value, v, len);
    o->value[len] = '\0';
    o->source = source;
}

static struct option *by_key(const char *key, size_t len)
{
    for (unsigned i = 0; i < OMI_OPT_COUNT; i++)
        if (strlen(options[i].key) == len &&
            strncmp(options[i].key, key, len) == 0)
            return &options[i];
    return NULL;
}

/* OBJMEM_CONF: "key:value,key:value". */
static void parse_conf(const char *conf)
{
    while (*conf) {
        const char *end = strchr(conf, ','), *colon;
        size_t len = end ? (size_t)(end - conf) : strlen(conf);
        struct option *o;

        colon = memchr(conf, ':', len);
        if (!colon) {
            if (len)
                warn("OBJMEM_CONF: no ':' in ", conf, len, NULL);
        } else if (!(o = by_key(conf, (size_t)(colon - conf)))) {
            warn("OBJMEM_CONF: unknown key ", conf, (size_t)(colon - conf),
                 NULL);
        } else {
            set(o, colon + 1, len - (size_t)(colon - conf) - 1,
                "OBJMEM_CONF");
        }
        conf += len + (end ? 1 : 0);
    }
}

void omi_options_load(void)
{
    int expected = 0;
    const char *conf, *watcher;

    if (atomic_load_explicit(&state, memory_order_acquire) == 2)
        return;
    if (!atomic_compare_exchange_strong(&state, &expected, 1)) {
        while (atomic_load(&state) != 2)
            ;                   /* another thread is reading: brief */
        return;
    }
    if (!environ)
        read_proc_environ();
    for (unsigned i = 0; i < OMI_OPT_COUNT; i++) {
        strcpy(options[i].value, options[i].def);
        options[i].source = "default";
    }
    if ((watcher = malloc_watcher())) {
        strcpy(options[OMI_OPT_ALLOCATOR].value, "malloc");
        options[OMI_OPT_ALLOCATOR].source = watcher;
    }
    if ((conf = env_get("OBJMEM_CONF")))
        parse_conf(conf);
    for (unsigned i = 0; i < OMI_OPT_COUNT; i++) {
        const char *v = env_get(options[i].var);
        if (v)
            set(&options[i], v, strlen(v), options[i].var);
    }
    atomic_store_explicit(&state, 2, memory_order_release);
}

const char *omi_option_str(enum omi_opt opt)
{
    omi_options_load();
    return options[opt].value;
}

long omi_option_long(enum omi_opt opt)
{
    omi_options_load();
    return strtol(options[opt].value, NULL, 10);
}

bool omi_option_bool(enum omi_opt opt)
{
    bool b = false;

    omi_options_load();
    parse_bool(options[opt].value, strlen(options[opt].value), &b);
    return b;
}

bool om_option_get(unsigned i, struct om_option *out)
{
    if (i >= OMI_OPT_COUNT || !out)
        return false;
    omi_options_load();
    out->key = options[i].key;
    out->var = options[i].var;
    out->value = options[i].value;
    out->def = options[i].def;
    out->source = options[i].source;
    out->help = options[i].help;
    return true;
}

const char *om_option_warning(unsigned i)
{
    omi_options_load();
    return i < nwarnings ? warnings[i] : NULL;
}
