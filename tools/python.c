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
 * PYTHONMALLOC=debug (or pymalloc_debug), OBJMEM_ALLOCATOR=debug and
 * -X dev put CPython's debug hooks back on top, as they would be on
 * pymalloc.  PYTHONMALLOC=malloc or malloc_debug, or else the allocator
 * option's malloc (OBJMEM_ALLOCATOR, or its default under a tool that
 * watches malloc, such as memcheck), leave CPython on the C library's
 * malloc, as python3 (see choose()).
 * sys.executable is this program, so the interpreters Python starts (the
 * test suite's workers, subprocess, multiprocessing) run on objmem too:
 * CPython finds it from argv[0], as python3 finds itself, so that a
 * symlink's path stays (a venv's bin/python finds its pyvenv.cfg, a
 * ._pth file beside the link applies), unless argv[0] names another
 * program; then it is this program's own path.
 * OBJMEM_SHOW_STATS=1 writes the stats report at exit, as the shim does.
 *
 * Traced (OBJMEM_TRACE=N or OBJMEM_TRACE_SAMPLE=BYTES, which `objmem
 * python --trace` sets): objmem's three domains are om_gp_*, tracing
 * wraps them, and CPython's tables are tracing's wrappers themselves;
 * tracebacks name Python files and lines (pytrace.c).  The capture is
 * written at exit, or at _exit (below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "objmem.h"
#include "pytrace.h"

/* What CPython's three domains get. */
struct choice {
    bool libc;          /* the C library's malloc, not objmem */
    bool hooks;         /* CPython's debug hooks on top */
    bool python;        /* PYTHONMALLOC chose: CPython applies it itself */
};

/* The value in force of objmem's option key (OBJMEM_<KEY>, OBJMEM_CONF
 * or its default); "" for no such key. */
static const char *option(const char *key)
{
    struct om_option o;

    for (unsigned i = 0; om_option_get(i, &o); i++)
        if (strcmp(o.key, key) == 0)
            return o.value;
    return "";
}

static bool ends_with_debug(const char *v)
{
    return strlen(v) >= 5 && strcmp(v + strlen(v) - 5, "debug") == 0;
}

/*
 * PYTHONMALLOC (unless -E or -I), when set, decides as it does for
 * python3: malloc and malloc_debug give the C library's malloc, any other
 * value objmem in pymalloc's place; *debug adds the debug hooks.  Else
 * the allocator option does: malloc and malloc_debug (also its default
 * under a tool that watches malloc: Valgrind's memcheck, heaptrack, ...,
 * options.c) give the C library's malloc, so that the tool sees every
 * Python object, as python3 built with Valgrind support does; debug and
 * malloc_debug add the hooks.  -X dev (or PYTHONDEVMODE) adds them too.
 */
static struct choice choose(int argc, char **argv)
{
    struct choice c = { false, false, false };
    bool ignore_env = false, dev = false;
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
        v = getenv("PYTHONDEVMODE");
        dev |= v && *v;
    }
    v = ignore_env ? NULL : getenv("PYTHONMALLOC");
    c.python = v && *v;
    if (!c.python)
        v = option("allocator");
    c.libc = strncmp(v, "malloc", 6) == 0;
    c.hooks = dev || ends_with_debug(v);
    return c;
}

/* OBJMEM_SHOW_STATS=1: the stats report at exit, as the shim writes it;
 * once, at _exit or at exit. */
static void report_at_exit(void)
{
    static atomic_flag reported = ATOMIC_FLAG_INIT;
    const char *v = option("show_stats");

    if (*v && strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0 &&
        strcasecmp(v, "no") != 0 && strcasecmp(v, "off") != 0 &&
        !atomic_flag_test_and_set(&reported))
        om_report_write();
}

/*
 * os._exit (multiprocessing's workers leave by it) and C code's _exit run
 * no exit handlers: this program's _exit, which libpython's calls reach
 * (the linker exports it, libpython referring to it), writes what exit
 * would have first, the capture and then the report, as the shim's does.
 */
static _Noreturn void leave(int status)
{
    om_exit_early();
    for (;;)
        syscall(SYS_exit_group, status);
}

void _exit(int status)
{
    leave(status);
}

void _Exit(int status)
{
    leave(status);
}

/* Tracing started from the environment (before main, over the default
 * tables): start it again over om_gp_* in all three domains (or, libc,
 * over RAW's table, the C library's malloc), and give CPython tracing's
 * wrapper tables. */
static void setup_tracing(bool libc)
{
    static const int py_domain[3] = { PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM,
                                      PYMEM_DOMAIN_OBJ };
    int nframes = om_trace_get_traceback_limit();
    size_t mean = om_trace_sampling_mean();
    struct om_allocator base = om_gp_allocator, traced;

    om_trace_stop();
    if (libc)
        om_get_allocator(OM_DOMAIN_RAW, &base);
    for (int d = OM_DOMAIN_RAW; d <= OM_DOMAIN_OBJ; d++)
        om_set_allocator((enum om_domain)d, &base);
    pytrace_install();
    if (mean)
        om_trace_start_sampling(mean);
    om_trace_start(nframes);
    /* CPython calls tracing's wrappers directly: the tables have the
     * same layout as PyMemAllocatorEx. */
    for (int d = OM_DOMAIN_RAW; d <= OM_DOMAIN_OBJ; d++) {
        PyMemAllocatorEx t;

        om_get_allocator((enum om_domain)d, &traced);
        t = (PyMemAllocatorEx){ traced.ctx, traced.malloc, traced.calloc,
                                traced.realloc, traced.free };
        PyMem_SetAllocator(py_domain[d], &t);
    }
}

/*
 * Whether argv0 names this program (me: /proc/self/exe's stat) as
 * CPython's getpath would find it: a path when it holds a '/', else the
 * first executable of that name in PATH.
 */
static bool names_me(const char *argv0, const struct stat *me)
{
    char path[PATH_MAX];
    const char *dirs = getenv("PATH"), *end;
    struct stat st;

    if (strchr(argv0, '/'))
        return stat(argv0, &st) == 0 && st.st_dev == me->st_dev &&
               st.st_ino == me->st_ino;
    for (; dirs && *dirs; dirs = *end ? end + 1 : end) {
        int len;

        end = strchr(dirs, ':');
        if (!end)
            end = dirs + strlen(dirs);
        len = snprintf(path, sizeof(path), "%.*s/%s", (int)(end - dirs),
                       dirs, argv0);
        if (len > 0 && (size_t)len < sizeof(path) &&
            access(path, X_OK) == 0 && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode))
            return st.st_dev == me->st_dev && st.st_ino == me->st_ino;
    }
    return false;
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
    struct stat me;
    PyPreConfig pre;
    PyConfig config;
    PyStatus status;
    struct choice c = choose(argc, argv);
    bool traced = om_trace_is_tracing();

    atexit(report_at_exit);
    om_set_exit_writer(report_at_exit);
    PyPreConfig_InitPythonConfig(&pre);
    if (c.libc && !c.python)
        pre.allocator = c.hooks ? PYMEM_ALLOCATOR_MALLOC_DEBUG
                                : PYMEM_ALLOCATOR_MALLOC;
    status = Py_PreInitializeFromBytesArgs(&pre, argc, argv);
    if (PyStatus_Exception(status))
        die(status);
    if (!c.libc) {
        PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &objmem);
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &objmem);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &objmem);
    }
    if (traced)
        setup_tracing(c.libc);
    if (c.hooks && (!c.libc || traced))
        PyMem_SetupDebugHooks();

    PyConfig_InitPythonConfig(&config);
    status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status) && n > 0 &&
        !(argc > 0 && stat("/proc/self/exe", &me) == 0 &&
          names_me(argv[0], &me))) {
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
