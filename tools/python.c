/*
 * python.c - objmem-python (`objmem python ARGS...`): the local CPython,
 * embedded, with objmem as the allocator of its three domains, run
 * exactly as `python3 ARGS...` would be.  This is the articles' whole
 * stack with pymalloc replaced by objmem.
 *
 * The order is CPython's documented one for a custom allocator: pre-
 * initialise with the arguments (so -E, -I and -X options, and the
 * PYTHON* variables, act as they do for python3), install the allocators
 * before the first block is allocated through them, then initialise and
 * run.  RAW, MEM and OBJ all get objmem's general-purpose family
 * (om_gp_*: thread-safe, every size; RAW is called without the GIL).
 * PYTHONMALLOC=debug (or malloc_debug, pymalloc_debug) and -X dev put
 * CPython's debug hooks back on top, as they would be on pymalloc.
 * sys.executable is this program, so the interpreters Python starts (the
 * test suite's workers, subprocess, multiprocessing) run on objmem too.
 * OBJMEM_SHOW_STATS=1 writes the stats report at exit, as the shim does.
 *
 * Traced (OBJMEM_TRACE=N or OBJMEM_TRACE_SAMPLE=BYTES, which `objmem
 * python --trace` sets): CPython's tables then call objmem's domains,
 * which are om_gp_* wrapped by tracing, and tracebacks name Python files
 * and lines (pytrace.c).  The capture is written at exit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "objmem.h"
#include "pytrace.h"

/* Debug hooks asked for: PYTHONMALLOC=*debug (unless -E or -I) or -X dev
 * (or PYTHONDEVMODE). */
static int wants_debug_hooks(int argc, char **argv)
{
    int ignore_env = 0, dev = 0;
    const char *v;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0 || strcmp(a, "--") == 0)
            break;              /* the script or -c/-m: options end */
        if (a[1] == 'X') {
            const char *x = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
            dev |= strcmp(x, "dev") == 0;
            continue;
        }
        if (a[1] == '-')
            continue;
        ignore_env |= strchr(a + 1, 'E') != NULL || strchr(a + 1, 'I');
        if (strchr(a + 1, 'c') || strchr(a + 1, 'm'))
            break;
        if (strchr(a + 1, 'W'))
            i++;                /* -W takes the next argument */
    }
    if (!ignore_env) {
        v = getenv("PYTHONMALLOC");
        if (v && strlen(v) >= 5 && strcmp(v + strlen(v) - 5, "debug") == 0)
            return 1;
        v = getenv("PYTHONDEVMODE");
        dev |= v && *v;
    }
    return dev;
}

/* OBJMEM_SHOW_STATS=1: the stats report at exit, as the shim writes it. */
static void report_at_exit(void)
{
    struct om_option o;

    for (unsigned i = 0; om_option_get(i, &o); i++)
        if (strcmp(o.key, "show_stats") == 0 && strcmp(o.value, "0") != 0 &&
            strcasecmp(o.value, "false") != 0 &&
            strcasecmp(o.value, "no") != 0 && strcasecmp(o.value, "off"))
            om_report_write();
}

/* Tracing's tables: CPython calls objmem's domains, which tracing wraps.
 * ADAPTERS(raw, om_raw_) defines raw_malloc ... raw_free over
 * om_raw_malloc ... om_raw_free. */
#define ADAPTERS(name, om)                                                  \
    static void *name##_malloc(void *ctx, size_t n)                         \
    {                                                                       \
        return om##malloc(n);                                               \
    }                                                                       \
    static void *name##_calloc(void *ctx, size_t n, size_t size)            \
    {                                                                       \
        return om##calloc(n, size);                                         \
    }                                                                       \
    static void *name##_realloc(void *ctx, void *p, size_t n)               \
    {                                                                       \
        return om##realloc(p, n);                                           \
    }                                                                       \
    static void name##_free(void *ctx, void *p)                             \
    {                                                                       \
        om##free(p);                                                        \
    }

ADAPTERS(raw, om_raw_)
ADAPTERS(mem, om_)
ADAPTERS(obj, om_obj_)

/* Tracing started from the environment (before main, over the default
 * tables): start it again over om_gp_* in all three domains, and give
 * CPython tables that go through the domains. */
static void setup_tracing(void)
{
    static PyMemAllocatorEx raw = { NULL, raw_malloc, raw_calloc,
                                          raw_realloc, raw_free };
    static PyMemAllocatorEx mem = { NULL, mem_malloc, mem_calloc,
                                          mem_realloc, mem_free };
    static PyMemAllocatorEx obj = { NULL, obj_malloc, obj_calloc,
                                          obj_realloc, obj_free };
    int nframes = om_trace_get_traceback_limit();
    size_t mean = om_trace_sampling_mean();

    om_trace_stop();
    om_set_allocator(OM_DOMAIN_RAW, &om_gp_allocator);
    om_set_allocator(OM_DOMAIN_MEM, &om_gp_allocator);
    om_set_allocator(OM_DOMAIN_OBJ, &om_gp_allocator);
    pytrace_install();
    if (mean)
        om_trace_start_sampling(mean);
    om_trace_start(nframes);
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &raw);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
}

static void die(PyStatus status)
{
    if (PyStatus_IsExit(status))
        exit(status.exitcode);
    Py_ExitStatusException(status);
}

int main(int argc, char **argv)
{
    /* objmem's own table: malloc(0) and calloc of 0 give unique blocks,
     * realloc to 0 keeps one, as CPython asks. */
    PyMemAllocatorEx objmem = { NULL, om_gp_allocator.malloc,
                                om_gp_allocator.calloc,
                                om_gp_allocator.realloc,
                                om_gp_allocator.free };
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    PyPreConfig pre;
    PyConfig config;
    PyStatus status;

    atexit(report_at_exit);
    PyPreConfig_InitPythonConfig(&pre);
    status = Py_PreInitializeFromBytesArgs(&pre, argc, argv);
    if (PyStatus_Exception(status))
        die(status);
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &objmem);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &objmem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &objmem);
    if (om_trace_is_tracing())
        setup_tracing();
    if (wants_debug_hooks(argc, argv))
        PyMem_SetupDebugHooks();

    PyConfig_InitPythonConfig(&config);
    status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status) && n > 0) {
        exe[n] = '\0';
        status = PyConfig_SetBytesString(&config, &config.executable, exe);
    }
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        die(status);
    return Py_RunMain();
}
