/*
 * bench_objects.c - the object benchmark: the same object work done
 * through CPython's C API (libpython3.11) and through objmem's object
 * layer, in one run.
 *
 * A program, never a test: it prints medians and ratios, nothing passes
 * or fails.  See bench/README.md for how to run it and read it.
 *
 * Parent and children.  The parent runs --reps repetitions.  In each one
 * it runs every (backend, pattern) once, each in a fresh child process (a
 * fork and an exec of this binary with "--child BACKEND PATTERN"), which
 * does the work and prints its figures on a pipe, one "val KEY NUMBER"
 * line each.  The two backends alternate in time (which goes first turns
 * every repetition), and neither ever sees the other's heap.  Each figure
 * in the report is the median of the children, with their min..max.
 *
 * CPython is never linked in.  Its child opens libpython3.11 with
 * dlopen(RTLD_NOW | RTLD_LOCAL), takes the functions it calls with dlsym,
 * and starts the interpreter with Py_InitializeEx(0) (no site, no signal
 * handlers), so this thread holds the GIL.  Py_DECREF is a macro, so the
 * child calls Py_DecRef.  The objmem child never loads libpython, and
 * checks /proc/self/maps to prove it.
 *
 * The same calls on both sides.  Every object operation goes through one
 * table of function pointers (struct obj_api): for CPython mostly the
 * libpython functions themselves, for objmem small wrappers in this file
 * (its types differ, and om_incref/om_decref are inline).  So each
 * operation costs one indirect call on both sides, and objmem pays one
 * direct call more inside its wrapper.  Strings are formatted into a
 * mapped table before the timer starts, so formatting is not timed.
 *
 * Figures.  Time: CLOCK_THREAD_CPUTIME_ID of the pattern, drops included
 * (user and system CPU of the thread: page faults count, waiting for a
 * CPU does not).  Memory: the peak RSS growth, VmHWM at the end of the
 * pattern minus VmRSS right before it, with the high-water mark reset
 * (clear_refs 5) just before, so libpython's large start-up RSS and any
 * start-up peak are left out.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "objmem.h"
#include "benchutil.h"

/* ---- Settings ---- */

#define NBACKENDS 2
#define NPATTERNS 7
#define MAX_REPS 99
#define SMALL_INTS 100          /* values 0..99: cached in both */
#define INTERN_DISTINCT 10000   /* distinct strings in the intern pattern */
#define LIST_ROUNDS 5           /* lists built and dropped per child */
#define DROP_STEP 7919          /* the drop pattern's order: i * 7919 % n */
#define NAME_TEXT 15            /* bytes of a prepared name, NUL included */
#define CHILD_TIMEOUT_S 300     /* a child still running then is killed */
#define OUT_MAX 16384           /* bytes kept from one child's output */
#define INFO_MAX 2048           /* bytes kept of a backend's info lines */
#define KIB 1024.0
#define MIB (1024.0 * 1024.0)

/*
 * How much work each child does: the counts, ten times fewer with
 * --quick.  A default run (70 children) takes about 12 s on 2 cores.
 */
struct settings {
    long floats;                /* floats made and dropped */
    long tuples;                /* 2-tuples made and dropped */
    long list_items;            /* items appended to each list */
    long dict_keys;             /* str keys inserted into the dict */
    long interns;               /* strings interned and dropped */
    long instances;             /* instances made, kept, read, dropped */
    long drop_items;            /* tuples in the list the drop pattern drops */
    int reps;                   /* children per (backend, pattern) */
    bool quick;                 /* ten times fewer operations */
};

static void settings_init(struct settings *s, bool quick, int reps)
{
    long scale = quick ? 10 : 1;

    s->quick = quick;
    s->reps = reps > 0 ? reps : quick ? 3 : 5;
    s->floats = 10000000 / scale;
    s->tuples = 10000000 / scale;
    s->list_items = 1000000 / scale;
    s->dict_keys = 1000000 / scale;
    s->interns = 1000000 / scale;
    s->instances = 1000000 / scale;
    s->drop_items = 1000000 / scale;
}

/* ---- Small helpers ---- */

#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif

/* CPU time of the whole process, every thread's. */
static double process_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/*
 * A field of /proc/self/status in kB ("VmRSS", "VmHWM").  Read with
 * read(2) into the stack, so that reading it allocates nothing.
 */
static double status_kb(const char *field)
{
    char buf[8192];
    const char *at;
    ssize_t n;
    int fd = open("/proc/self/status", O_RDONLY);

    if (fd < 0)
        die("cannot open /proc/self/status: %s", strerror(errno));
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    at = strstr(buf, field);
    if (!at || at[strlen(field)] != ':')
        die("no %s in /proc/self/status", field);
    return strtod(at + strlen(field) + 1, NULL);
}

/*
 * Reset this process's peak RSS (VmHWM) to its RSS now, by writing 5 to
 * /proc/self/clear_refs (Linux 4.0 and later).  Returns false when the
 * kernel refuses.
 */
static bool reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    bool ok;

    if (fd < 0)
        return false;
    ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

static void unmap_array(void *p, size_t n, size_t elem)
{
    munmap(p, n * elem);
}

/* ---- Prepared names ---- */

/* One string made before the timer starts: "k123", NUL-terminated. */
struct name {
    char text[NAME_TEXT];
    unsigned char len;          /* bytes before the NUL */
};

/* Write prefix and the decimal digits of v (>= 0) into nm. */
static void name_set(struct name *nm, char prefix, long v)
{
    char digits[24];
    int n = 0, len = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    nm->text[len++] = prefix;
    while (n > 0)
        nm->text[len++] = digits[--n];
    nm->text[len] = '\0';
    nm->len = (unsigned char)len;
}

/* n names prefix0, prefix1, ... in a mapped table (unmap_array it). */
static struct name *names_new(char prefix, long n)
{
    struct name *t = map_array((size_t)n, sizeof(*t));

    for (long i = 0; i < n; i++)
        name_set(&t[i], prefix, i);
    return t;
}

/* ---- The object API of each backend (child side) ----
 *
 * Objects are void * here: a PyObject * or an om_object *.  Constructors
 * return a new reference or NULL; actions return 0 or non-zero.
 */
struct obj_api {
    void *(*float_new)(double v);
    void *(*int_new)(long v);
    void *(*tuple_pack2)(void *a, void *b);
    void *(*list_new)(ptrdiff_t n);
    int (*list_append)(void *list, void *item);
    ptrdiff_t (*list_len)(void *list);
    void *(*dict_new)(void);
    int (*dict_set)(void *dict, void *key, void *value);
    ptrdiff_t (*dict_len)(void *dict);
    void *(*str_new)(const char *s, ptrdiff_t len);
    void *(*intern)(const char *s);
    void (*decref)(void *o);
    void *(*class_new)(const char *name);   /* a class without slots */
    void *(*instance_new)(void *cls);
    int (*setattr)(void *o, int name, void *value);  /* name: ATTR_X.. */
    void *(*getattr)(void *o, int name);             /* new reference */
};

/* The attribute names of the instances pattern, by number: objmem takes
 * the C string, CPython the str object made (interned) once, as an
 * extension module's cached identifiers. */
enum { ATTR_X, ATTR_Y, NATTRS };
static const char *const attr_names[NATTRS] = { "x", "y" };

static void *om_float_new(double v)
{
    return om_float_from_double(v);
}

static void *om_int_new(long v)
{
    return om_int_from_i64(v);
}

static void *om_pack2(void *a, void *b)
{
    return om_tuple_pack(2, a, b);
}

static void *om_list_make(ptrdiff_t n)
{
    return om_list_new((size_t)n);
}

static int om_list_add(void *list, void *item)
{
    return om_list_append(list, item);
}

static ptrdiff_t om_list_size(void *list)
{
    return (ptrdiff_t)om_list_len(list);
}

static void *om_dict_make(void)
{
    return om_dict_new();
}

static int om_dict_put(void *dict, void *key, void *value)
{
    return om_dict_set(dict, key, value);
}

static ptrdiff_t om_dict_size(void *dict)
{
    return (ptrdiff_t)om_dict_len(dict);
}

static void *om_str_new(const char *s, ptrdiff_t len)
{
    return om_str_from_utf8(s, (size_t)len);
}

static void *om_intern_str(const char *s)
{
    return om_intern(s);
}

static void om_drop(void *o)
{
    om_decref(o);
}

static void *om_class_make(const char *name)
{
    return om_class_new(name, NULL, 0, 0);
}

static void *om_instance_make(void *cls)
{
    return om_instance_new(cls);
}

static int om_attr_set(void *o, int name, void *value)
{
    return om_setattr(o, attr_names[name], value);
}

static void *om_attr_get(void *o, int name)
{
    return om_getattr(o, attr_names[name]);
}

/* State of the child: which backend it is, and CPython's calls that
 * the table cannot take as they are. */
static struct {
    void *(*py_pack)(ptrdiff_t n, ...); /* PyTuple_Pack */
    void *python;                       /* libpython's handle, or NULL */
    void *(*call)(void *callable, const char *fmt, ...);
                                        /* PyObject_CallFunction */
    void *type_type;                    /* &PyType_Type */
    void *(*call_noargs)(void *callable);
    int (*set_attr)(void *o, void *name, void *value);
    void *(*get_attr)(void *o, void *name);
    void *names[NATTRS];                /* interned str objects */
} child;

static void *py_pack2(void *a, void *b)
{
    return child.py_pack(2, a, b);
}

/* type(name, (), {}): a class as a class statement without a body. */
static void *py_class_new(const char *name)
{
    return child.call(child.type_type, "s(){}", name);
}

static void *py_instance_new(void *cls)
{
    return child.call_noargs(cls);
}

static int py_setattr(void *o, int name, void *value)
{
    return child.set_attr(o, child.names[name], value);
}

static void *py_getattr(void *o, int name)
{
    return child.get_attr(o, child.names[name]);
}

static int open_objmem(struct obj_api *api)
{
    api->float_new = om_float_new;
    api->int_new = om_int_new;
    api->tuple_pack2 = om_pack2;
    api->list_new = om_list_make;
    api->list_append = om_list_add;
    api->list_len = om_list_size;
    api->dict_new = om_dict_make;
    api->dict_set = om_dict_put;
    api->dict_len = om_dict_size;
    api->str_new = om_str_new;
    api->intern = om_intern_str;
    api->decref = om_drop;
    api->class_new = om_class_make;
    api->instance_new = om_instance_make;
    api->setattr = om_attr_set;
    api->getattr = om_attr_get;
    emit("info", "objmem %s, linked statically", om_version());
    return 0;
}

/* dlsym of a function libpython must have; dies when it is missing. */
static void *py_sym(const char *name)
{
    void *sym = dlsym(child.python, name);

    if (!sym)
        die("libpython has no symbol %s", name);
    return sym;
}

/* dlopen the first libpython that loads, RTLD_NOW | RTLD_LOCAL. */
static void *open_libpython(void)
{
    static const char *const names[] = {
        "libpython3.11.so.1.0", "libpython3.11.so", NULL
    };
    const char *err = "no name tried";

    for (const char *const *n = names; *n; n++) {
        void *h = dlopen(*n, RTLD_NOW | RTLD_LOCAL);

        if (h)
            return h;
        err = dlerror();
    }
    emit("skip", "cannot load libpython3.11: %s", err ? err : "?");
    return NULL;
}

/*
 * Start the interpreter without site and without signal handlers, so that
 * this thread holds the GIL; report its version and whether pymalloc is
 * its object allocator (_PyObject_DebugMallocStats answers 0 if not).
 */
static void start_python(void)
{
    void (*init)(int) = py_sym("Py_InitializeEx");
    const char *(*version)(void) = py_sym("Py_GetVersion");
    int (*stats)(FILE *) = dlsym(child.python, "_PyObject_DebugMallocStats");
    int *no_site = dlsym(child.python, "Py_NoSiteFlag");
    FILE *null = fopen("/dev/null", "w");

    if (no_site)
        *no_site = 1;
    init(0);
    emit("info", "Python %.*s via dlopen(RTLD_LOCAL), no site",
         (int)strcspn(version(), " "), version());
    if (stats && null && !stats(null))
        emit("warn", "pymalloc is not Python's object allocator here");
    if (null)
        fclose(null);
}

static void *check(void *o, const char *what);

static int open_cpython(struct obj_api *api)
{
    unsetenv("PYTHONMALLOC");
    child.python = open_libpython();
    if (!child.python)
        return -1;
    start_python();
    api->float_new = (void *(*)(double))py_sym("PyFloat_FromDouble");
    api->int_new = (void *(*)(long))py_sym("PyLong_FromLong");
    child.py_pack = (void *(*)(ptrdiff_t, ...))py_sym("PyTuple_Pack");
    api->tuple_pack2 = py_pack2;
    api->list_new = (void *(*)(ptrdiff_t))py_sym("PyList_New");
    api->list_append = (int (*)(void *, void *))py_sym("PyList_Append");
    api->list_len = (ptrdiff_t (*)(void *))py_sym("PyList_Size");
    api->dict_new = (void *(*)(void))py_sym("PyDict_New");
    api->dict_set = (int (*)(void *, void *, void *))
                    py_sym("PyDict_SetItem");
    api->dict_len = (ptrdiff_t (*)(void *))py_sym("PyDict_Size");
    api->str_new = (void *(*)(const char *, ptrdiff_t))
                   py_sym("PyUnicode_FromStringAndSize");
    api->intern = (void *(*)(const char *))
                  py_sym("PyUnicode_InternFromString");
    api->decref = (void (*)(void *))py_sym("Py_DecRef");
    child.call = (void *(*)(void *, const char *, ...))
                 py_sym("PyObject_CallFunction");
    child.type_type = py_sym("PyType_Type");
    child.call_noargs = (void *(*)(void *))py_sym("PyObject_CallNoArgs");
    child.set_attr = (int (*)(void *, void *, void *))
                     py_sym("PyObject_SetAttr");
    child.get_attr = (void *(*)(void *, void *))py_sym("PyObject_GetAttr");
    for (int i = 0; i < NATTRS; i++)
        child.names[i] = check(api->intern(attr_names[i]), "intern");
    api->class_new = py_class_new;
    api->instance_new = py_instance_new;
    api->setattr = py_setattr;
    api->getattr = py_getattr;
    return 0;
}

struct backend {
    const char *name;
    int (*open)(struct obj_api *api);
};

static const struct backend backends[NBACKENDS] = {
    {"CPython", open_cpython},
    {"objmem", open_objmem},
};

#define B_CPYTHON 0
#define B_OBJMEM 1

/* ---- Patterns (child side) ----
 *
 * Each returns the thread CPU time of its work in ns.  Set-up that both
 * backends share (prepared names, the cached small ints) and the length
 * checks are outside the timed part.
 */

static void *check(void *o, const char *what)
{
    if (!o)
        die("%s returned NULL", what);
    return o;
}

/* floats: make a float, drop it; n times. */
static NOIPA double time_floats(const struct obj_api *api,
                                const struct settings *s)
{
    double t0 = thread_ns();

    for (long i = 0; i < s->floats; i++)
        api->decref(check(api->float_new((double)i * 0.5), "float_new"));
    return thread_ns() - t0;
}

/* New references to the ints 0..SMALL_INTS-1 (cached in both). */
static void small_ints(const struct obj_api *api, void **ints)
{
    for (long v = 0; v < SMALL_INTS; v++)
        ints[v] = check(api->int_new(v), "int_new");
}

static void drop_all(const struct obj_api *api, void **objs, long n)
{
    for (long i = 0; i < n; i++)
        api->decref(objs[i]);
}

/* tuples: pack (i % 100, (i + 1) % 100) into a 2-tuple, drop it. */
static NOIPA double time_tuples(const struct obj_api *api,
                                const struct settings *s)
{
    void *ints[SMALL_INTS];
    double t0, ns;

    small_ints(api, ints);
    t0 = thread_ns();
    for (long i = 0; i < s->tuples; i++) {
        void *t = api->tuple_pack2(ints[i % SMALL_INTS],
                                   ints[(i + 1) % SMALL_INTS]);

        api->decref(check(t, "tuple_pack"));
    }
    ns = thread_ns() - t0;
    drop_all(api, ints, SMALL_INTS);
    return ns;
}

/* Append the ints 0..n-1 (made by int_new) to a new list. */
static void *fill_list(const struct obj_api *api, long n)
{
    void *list = check(api->list_new(0), "list_new");

    for (long i = 0; i < n; i++) {
        void *item = check(api->int_new(i), "int_new");

        if (api->list_append(list, item) != 0)
            die("list_append failed at item %ld", i);
        api->decref(item);
    }
    return list;
}

/* list: LIST_ROUNDS times, build a list of n ints by append, drop it. */
static NOIPA double time_list(const struct obj_api *api,
                              const struct settings *s)
{
    double ns = 0;

    for (int r = 0; r < LIST_ROUNDS; r++) {
        double t0 = thread_ns(), t1, t2;
        void *list = fill_list(api, s->list_items);

        t1 = thread_ns();
        if (api->list_len(list) != s->list_items)
            die("the list has %td items, not %ld", api->list_len(list),
                s->list_items);
        t2 = thread_ns();
        api->decref(list);
        ns += (t1 - t0) + (thread_ns() - t2);
    }
    return ns;
}

/* Insert key names[i] -> small int i % 100 for every i into a new dict. */
static void *fill_dict(const struct obj_api *api, const struct name *names,
                       long n, void **ints)
{
    void *dict = check(api->dict_new(), "dict_new");

    for (long i = 0; i < n; i++) {
        void *key = check(api->str_new(names[i].text, names[i].len),
                          "str_new");

        if (api->dict_set(dict, key, ints[i % SMALL_INTS]) != 0)
            die("dict_set failed at key %s", names[i].text);
        api->decref(key);
    }
    return dict;
}

/* dict: insert n distinct str keys "k0", "k1", ... and drop the dict. */
static NOIPA double time_dict(const struct obj_api *api,
                              const struct settings *s)
{
    struct name *names = names_new('k', s->dict_keys);
    void *ints[SMALL_INTS], *dict;
    double t0, t1, t2, ns;

    small_ints(api, ints);
    t0 = thread_ns();
    dict = fill_dict(api, names, s->dict_keys, ints);
    t1 = thread_ns();
    if (api->dict_len(dict) != s->dict_keys)
        die("the dict has %td keys, not %ld", api->dict_len(dict),
            s->dict_keys);
    t2 = thread_ns();
    api->decref(dict);
    ns = (t1 - t0) + (thread_ns() - t2);
    drop_all(api, ints, SMALL_INTS);
    unmap_array(names, (size_t)s->dict_keys, sizeof(*names));
    return ns;
}

/* intern: intern "s<i % 10000>" and drop the reference; n times. */
static NOIPA double time_intern(const struct obj_api *api,
                                const struct settings *s)
{
    struct name *names = names_new('s', INTERN_DISTINCT);
    double t0 = thread_ns(), ns;

    for (long i = 0; i < s->interns; i++)
        api->decref(check(api->intern(names[i % INTERN_DISTINCT].text),
                          "intern"));
    ns = thread_ns() - t0;
    unmap_array(names, INTERN_DISTINCT, sizeof(*names));
    return ns;
}

/* instances: make n instances of one class and set x and y (cached
 * small ints) on each; read x back from each; drop them all.  The
 * instances are kept in an array mapped before the timer starts. */
static NOIPA double time_instances(const struct obj_api *api,
                                   const struct settings *s)
{
    void *ints[SMALL_INTS], *cls, **keep;
    size_t bytes = (size_t)s->instances * sizeof(void *);
    long wrong = 0;
    double t0, ns;

    keep = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (keep == MAP_FAILED)
        die("cannot map %zu bytes", bytes);
    small_ints(api, ints);
    cls = check(api->class_new("C"), "class_new");
    t0 = thread_ns();
    for (long i = 0; i < s->instances; i++) {
        keep[i] = check(api->instance_new(cls), "instance_new");
        if (api->setattr(keep[i], ATTR_X, ints[i % SMALL_INTS]) != 0 ||
            api->setattr(keep[i], ATTR_Y, ints[(i + 1) % SMALL_INTS]))
            die("setattr failed at instance %ld", i);
    }
    for (long i = 0; i < s->instances; i++) {
        void *x = check(api->getattr(keep[i], ATTR_X), "getattr");

        wrong += x != ints[i % SMALL_INTS];
        api->decref(x);
    }
    drop_all(api, keep, s->instances);
    ns = thread_ns() - t0;
    if (wrong)
        die("getattr gave %ld wrong values", wrong);
    api->decref(cls);
    drop_all(api, ints, SMALL_INTS);
    unmap_array(keep, (size_t)s->instances, sizeof(void *));
    return ns;
}

/* drop: n 2-tuples (a float, an int: both made, not cached) appended to
 * a list in a scattered order (tuple i * DROP_STEP % n at position i, n
 * not a multiple of DROP_STEP), then the list dropped; only the drop is
 * timed.  What `del big_list` costs when its objects were made long
 * before and lie apart: each item's header is a cache miss. */
static NOIPA double time_drop(const struct obj_api *api,
                              const struct settings *s)
{
    long n = s->drop_items;
    size_t bytes = (size_t)n * sizeof(void *);
    void **made, *list;
    double t0, ns;

    made = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (made == MAP_FAILED)
        die("cannot map %zu bytes", bytes);
    for (long i = 0; i < n; i++) {
        void *f = check(api->float_new((double)i), "float_new");
        void *v = check(api->int_new(1000 + i), "int_new");

        made[i] = check(api->tuple_pack2(f, v), "tuple_pack");
        api->decref(f);
        api->decref(v);
    }
    list = check(api->list_new(0), "list_new");
    for (long i = 0; i < n; i++)
        if (api->list_append(list, made[(size_t)i * DROP_STEP % (size_t)n]))
            die("list_append failed at item %ld", i);
    drop_all(api, made, n);             /* the list holds the only ones */
    if (api->list_len(list) != n)
        die("the list has %td items, not %ld", api->list_len(list), n);
    t0 = thread_ns();
    api->decref(list);
    ns = thread_ns() - t0;
    unmap_array(made, (size_t)n, sizeof(void *));
    return ns;
}

static void describe_floats(const struct settings *s)
{
    printf("%ld times: make a float (i * 0.5), drop it\n", s->floats);
}

static void describe_tuples(const struct settings *s)
{
    printf("%ld times: pack the cached small ints i %% 100 and\n"
           "   (i + 1) %% 100 into a 2-tuple, drop it\n", s->tuples);
}

static void describe_list(const struct settings *s)
{
    printf("%d rounds: append the ints 0..%ld to an empty list, drop "
           "the list;\n   each int made by PyLong_FromLong / "
           "om_int_from_i64, its reference then dropped\n",
           LIST_ROUNDS, s->list_items - 1);
}

static void describe_dict(const struct settings *s)
{
    printf("insert %ld distinct str keys \"k0\"..\"k%ld\" into an "
           "empty dict,\n   value the cached int i %% 100; drop the "
           "dict\n", s->dict_keys, s->dict_keys - 1);
}

static void describe_instances(const struct settings *s)
{
    printf("make %ld instances of a class without slots, set x and y "
           "on each\n   (cached ints), read x back from each, drop "
           "them (not one of the issue's five)\n", s->instances);
}

static void describe_drop(const struct settings *s)
{
    printf("make %ld 2-tuples of a float and an int, append them to a "
           "list\n   in a scattered order (i * %d %% n), time the "
           "list's drop alone\n   (not one of the issue's five)\n",
           s->drop_items, DROP_STEP);
}

static void describe_intern(const struct settings *s)
{
    printf("%ld times: intern \"s<i %% %d>\" (%d distinct), drop the "
           "reference\n", s->interns, INTERN_DISTINCT, INTERN_DISTINCT);
}

/* Operations a pattern does, for ns/op. */
static long ops_floats(const struct settings *s) { return s->floats; }
static long ops_tuples(const struct settings *s) { return s->tuples; }
static long ops_list(const struct settings *s)
{
    return s->list_items * LIST_ROUNDS;
}
static long ops_dict(const struct settings *s) { return s->dict_keys; }
static long ops_intern(const struct settings *s) { return s->interns; }
static long ops_instances(const struct settings *s)
{
    return s->instances;
}
static long ops_drop(const struct settings *s) { return s->drop_items; }

struct pattern {
    const char *name;
    const char *op;             /* what one op is */
    double (*time)(const struct obj_api *api, const struct settings *s);
    long (*ops)(const struct settings *s);
    void (*describe)(const struct settings *s);
};

static const struct pattern patterns[NPATTERNS] = {
    {"floats", "make + drop", time_floats, ops_floats, describe_floats},
    {"tuples", "pack + drop", time_tuples, ops_tuples, describe_tuples},
    {"list", "int + append (+ its share of the drop)", time_list,
     ops_list, describe_list},
    {"dict", "str key + insert (+ its share of the drop)", time_dict,
     ops_dict, describe_dict},
    {"intern", "intern + drop", time_intern, ops_intern, describe_intern},
    {"instances", "new + 2 setattr + getattr + drop", time_instances,
     ops_instances, describe_instances},
    {"drop", "one item dropped (a tuple, its float and its int)",
     time_drop, ops_drop, describe_drop},
};

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
 * Make and drop one object of every kind the patterns use, in both
 * backends, before anything is measured.  CPython's start-up has already
 * set its allocator and free lists going; this does the same for objmem,
 * so that neither side's first-use set-up lands in a pattern's figures.
 */
static void warm_instances(const struct obj_api *api, void *value)
{
    void *cls = check(api->class_new("Warm"), "class_new");
    void *o = check(api->instance_new(cls), "instance_new");

    if (api->setattr(o, ATTR_X, value) != 0 ||
        api->setattr(o, ATTR_Y, value) != 0)
        die("warm-up: setattr failed");
    api->decref(check(api->getattr(o, ATTR_X), "getattr"));
    api->decref(o);
    api->decref(cls);
}

static void warm_up(const struct obj_api *api)
{
    void *one = check(api->int_new(1), "int_new");
    void *key = check(api->str_new("warm", 4), "str_new");
    void *list = check(api->list_new(0), "list_new");
    void *dict = check(api->dict_new(), "dict_new");

    api->decref(check(api->float_new(0.5), "float_new"));
    api->decref(check(api->tuple_pack2(one, one), "tuple_pack"));
    if (api->list_append(list, one) != 0 ||
        api->dict_set(dict, key, one) != 0)
        die("warm-up: list_append or dict_set failed");
    api->decref(list);
    api->decref(dict);
    api->decref(key);
    api->decref(check(api->intern("warm"), "intern"));
    warm_instances(api, one);
    api->decref(one);
}

/* Warn if any mapping of this process comes from libpython. */
static void check_no_libpython(void)
{
    char line[4096];
    FILE *f = fopen("/proc/self/maps", "r");
    bool found = false;

    if (!f) {
        emit("warn", "cannot read /proc/self/maps to check for libpython");
        return;
    }
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, "libpython") != NULL;
    fclose(f);
    if (found)
        emit("warn", "libpython is mapped in the objmem child");
    else
        emit("info", "no libpython in /proc/self/maps");
}

/*
 * Run pattern pat and print its figures: ns (thread CPU), base (RSS
 * before it, kB), peak (VmHWM after it minus base, kB) and other (CPU
 * time of the process's other threads meanwhile, ns: objmem's purger).
 * objmem also checks that the pattern left no object alive.
 */
static void measure(int b, int pat, const struct obj_api *api,
                    const struct settings *s)
{
    size_t live = om_live_objects();
    bool reset = reset_peak_rss();
    double base = status_kb("VmRSS");
    double t0 = thread_ns(), p0 = process_ns();
    double ns = patterns[pat].time(api, s);
    double other = (process_ns() - p0) - (thread_ns() - t0);
    double peak = status_kb("VmHWM");

    if (!reset)
        emit("warn", "cannot reset VmHWM (clear_refs): peak RSS includes "
             "the start-up peak");
    emit_val("ns", ns);
    emit_val("base", base);
    emit_val("peak", peak - base);
    emit_val("other", other > 0 ? other : 0);
    if (b == B_OBJMEM && om_live_objects() != live)
        emit("warn", "%s left %zd objects alive", patterns[pat].name,
             (ssize_t)(om_live_objects() - live));
}

/*
 * argv: exe --child BACKEND PATTERN [--quick].  Prints its figures on
 * stdout (the parent's pipe) and ends with "done".
 */
static int child_main(int argc, char **argv)
{
    static char outbuf[OUT_MAX];
    int b = find_backend(argv[2]), pat = find_pattern(argv[3]);
    struct settings s;
    struct obj_api api;

    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
    if (b < 0 || pat < 0)
        die("child: unknown backend or pattern");
    settings_init(&s, argc > 4 && strcmp(argv[4], "--quick") == 0, 0);
    alarm(CHILD_TIMEOUT_S);
    if (backends[b].open(&api) != 0) {
        emit("skip", "backend not usable (see the lines above)");
        return 0;
    }
    warm_up(&api);
    measure(b, pat, &api, &s);
    if (b == B_OBJMEM)
        check_no_libpython();
    emit("done", "%s %s", argv[2], argv[3]);
    fflush(stdout);
    return 0;
}

/* ---- Results (parent side) ---- */

enum key { K_NS, K_BASE, K_PEAK, K_OTHER, NKEYS };

static const char *const key_names[NKEYS] = {
    "ns", "base", "peak", "other"
};

/* One (pattern, backend): every child's figure for each key. */
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

/* The parent's state. */
static struct {
    struct cell cells[NPATTERNS][NBACKENDS];
    bool pattern_on[NPATTERNS];         /* chosen by --pattern */
    char skip[NBACKENDS][512];          /* why a backend is unusable */
    char info[NBACKENDS][INFO_MAX];     /* its first child's info lines */
    char warn[NBACKENDS][INFO_MAX];     /* distinct warnings */
    char crashes[4096];                 /* one line per failed child */
    int ncrashes;
    char self[PATH_MAX];                /* this executable */
} run;

/* "KEY NUMBER" of a val line. */
static void parse_val(const char *text, struct child_report *rep)
{
    char key[32];
    double v;

    if (sscanf(text, "%31s %lf", key, &v) != 2)
        return;
    for (int k = 0; k < NKEYS; k++)
        if (strcmp(key, key_names[k]) == 0) {
            rep->v[k] = v;
            rep->has[k] = true;
        }
}

/* One line of a child's output, into rep and the run's text buffers. */
static void parse_line(char *line, int b, bool keep_info,
                       struct child_report *rep)
{
    char *text = strchr(line, ' ');

    if (text)
        *text++ = '\0';
    rep->done |= strcmp(line, "done") == 0;
    rep->skip |= strcmp(line, "skip") == 0;
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
static void crash(const char *where, const char *what)
{
    size_t used = strlen(run.crashes);

    fprintf(stderr, "\nbench_objects: CHILD FAILED: %s: %s\n", where,
            what);
    snprintf(run.crashes + used, sizeof(run.crashes) - used,
             "  %s: %s\n", where, what);
    run.ncrashes++;
}

/* ---- Running children (parent side) ---- */

/*
 * Fork and exec "--child BACKEND PATTERN [--quick]"; *fd gets the read
 * end of its stdout's pipe.
 */
static pid_t spawn_child(int b, int pat, const struct settings *s, int *fd)
{
    char child_opt[] = "--child", quick_opt[] = "--quick";
    char backend[32], pattern[32];
    char *argv[] = {
        run.self, child_opt, backend, pattern, s->quick ? quick_opt : NULL,
        NULL
    };
    pid_t pid;

    snprintf(backend, sizeof(backend), "%s", backends[b].name);
    snprintf(pattern, sizeof(pattern), "%s", patterns[pat].name);
    if ((pid = exec_child(run.self, argv, fd)) < 0)
        die("cannot start a child: %s", strerror(errno));
    return pid;
}

/* Run one child of backend b on pattern pat and keep what it measured. */
static void run_child(int b, int pat, int rep_no, const struct settings *s)
{
    static char out[OUT_MAX];
    struct child_report rep;
    char why[128], where[128];
    int fd, status;
    pid_t pid = spawn_child(b, pat, s, &fd);

    memset(&rep, 0, sizeof(rep));
    read_all(fd, out, sizeof(out));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        continue;
    parse_output(out, b, &rep);
    snprintf(where, sizeof(where), "%s %s (rep %d)", backends[b].name,
             patterns[pat].name, rep_no + 1);
    if (child_failure(status, rep.done, rep.skip, CHILD_TIMEOUT_S, why,
                      sizeof(why)))
        crash(where, why);
    else if (rep.done)
        commit(&rep, &run.cells[pat][b]);
}

/*
 * One repetition: every chosen pattern once per backend, the backend that
 * goes first turning each repetition.
 */
static void run_rep(int rep_no, const struct settings *s)
{
    for (int pat = 0; pat < NPATTERNS; pat++) {
        if (!run.pattern_on[pat])
            continue;
        fprintf(stderr, "[rep %d/%d] %-7s:", rep_no + 1, s->reps,
                patterns[pat].name);
        for (int i = 0; i < NBACKENDS; i++) {
            int b = (i + rep_no) % NBACKENDS;

            if (run.skip[b][0])
                continue;
            fprintf(stderr, " %s", backends[b].name);
            run_child(b, pat, rep_no, s);
        }
        fputc('\n', stderr);
    }
}

/* ---- Report (parent side) ---- */

/* Median of (pat, b, k) scaled by scale, or NAN when no child gave one. */
static double cell_median(int pat, int b, enum key k, double scale,
                          double *lo, double *hi)
{
    const struct cell *c = &run.cells[pat][b];
    double m;

    if (c->n[k] == 0)
        return *lo = *hi = NAN;
    m = median(c->v[k], c->n[k], lo, hi);
    *lo *= scale;
    *hi *= scale;
    return m * scale;
}

/* "12.3" for most figures, "4.56" under 10, "0.123" under 1. */
static const char *fmt_num(double v, char *buf, size_t size)
{
    double a = fabs(v);

    snprintf(buf, size, a < 1 ? "%.3f" : a < 10 ? "%.2f" : a < 1000 ?
             "%.1f" : "%.0f", v);
    return buf;
}

/* "median [min..max]" of (pat, b, k) scaled, or "-" when there is none. */
static const char *fmt_cell(int pat, int b, enum key k, double scale,
                            char *buf, size_t size)
{
    double lo, hi, m = cell_median(pat, b, k, scale, &lo, &hi);
    char a[24], l[24], h[24];

    if (isnan(m))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%s [%s..%s]", fmt_num(m, a, sizeof(a)),
                 fmt_num(lo, l, sizeof(l)), fmt_num(hi, h, sizeof(h)));
    return buf;
}

/* ns per op, as the median of the children; NAN when there is none. */
static double ns_per_op(int pat, int b, const struct settings *s)
{
    double lo, hi;

    return cell_median(pat, b, K_NS, 1.0 / patterns[pat].ops(s), &lo, &hi);
}

static double peak_mib(int pat, int b)
{
    double lo, hi;

    return cell_median(pat, b, K_PEAK, KIB / MIB, &lo, &hi);
}

/* CPython time / objmem time; > 1: objmem is faster. */
static const char *fmt_speedup(int pat, const struct settings *s,
                               char *buf, size_t size)
{
    double c = ns_per_op(pat, B_CPYTHON, s), o = ns_per_op(pat, B_OBJMEM, s);

    if (isnan(c) || isnan(o) || !(o > 0))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.2f", c / o);
    return buf;
}

/*
 * objmem's peak RSS growth / CPython's; <= 1: objmem uses no more.  Growth
 * under 1 MiB on both sides is a few pages either way, so no ratio then.
 */
static const char *fmt_rss_ratio(int pat, char *buf, size_t size)
{
    double c = peak_mib(pat, B_CPYTHON), o = peak_mib(pat, B_OBJMEM);

    if (isnan(c) || isnan(o))
        snprintf(buf, size, "-");
    else if (c < 1 && o < 1)
        snprintf(buf, size, "n/a (both < 1 MiB)");
    else if (!(c > 0))
        snprintf(buf, size, "inf (CPython grew 0)");
    else
        snprintf(buf, size, "%.2f", o / c);
    return buf;
}

static void print_row(int pat, int b, const struct settings *s)
{
    double ops = patterns[pat].ops(s);
    char ns[96], ms[96], mib[96];

    if (run.cells[pat][b].n[K_NS] == 0) {
        printf("  %-8s %s\n", backends[b].name, run.skip[b][0] ?
               "unavailable (see Backends)" : "no result");
        return;
    }
    printf("  %-8s %-24s %-22s %-22s (n=%d)\n", backends[b].name,
           fmt_cell(pat, b, K_NS, 1.0 / ops, ns, sizeof(ns)),
           fmt_cell(pat, b, K_NS, 1e-6, ms, sizeof(ms)),
           fmt_cell(pat, b, K_PEAK, KIB / MIB, mib, sizeof(mib)),
           run.cells[pat][b].n[K_NS]);
}

/*
 * A note when b's other threads (objmem's purger) used more than 0.5 ms
 * of CPU during the pattern: that time is not in the figures above.
 */
static void print_other(int pat, int b)
{
    double lo, hi, m = cell_median(pat, b, K_OTHER, 1e-6, &lo, &hi);
    char a[24], l[24], h[24];

    if (isnan(m) || hi < 0.5)
        return;
    printf("  note: %s's other threads used %s [%s..%s] ms of CPU meanwhile"
           " (not counted above)\n", backends[b].name,
           fmt_num(m, a, sizeof(a)), fmt_num(lo, l, sizeof(l)),
           fmt_num(hi, h, sizeof(h)));
}

static void print_pattern(int pat, const struct settings *s)
{
    char speed[32], rss[48];

    printf("\n== %s: ", patterns[pat].name);
    patterns[pat].describe(s);
    printf("   one op = %s; median [min..max] of the children\n",
           patterns[pat].op);
    printf("  %-8s %-24s %-22s %-22s\n", "backend", "ns/op", "total ms",
           "peak RSS growth MiB");
    for (int b = 0; b < NBACKENDS; b++)
        print_row(pat, b, s);
    printf("  speed-up CPython/objmem = %s x (> 1: objmem faster); "
           "peak RSS objmem/CPython = %s\n",
           fmt_speedup(pat, s, speed, sizeof(speed)),
           fmt_rss_ratio(pat, rss, sizeof(rss)));
    for (int b = 0; b < NBACKENDS; b++)
        print_other(pat, b);
}

/* One summary cell: "12.3 ns/op, +4.5 MiB". */
static void print_summary_cell(int pat, int b, const struct settings *s)
{
    double ns = ns_per_op(pat, b, s), mib = peak_mib(pat, b);
    char a[32], m[32];

    if (isnan(ns))
        printf(" - |");
    else
        printf(" %s ns/op, +%s MiB |", fmt_num(ns, a, sizeof(a)),
               fmt_num(mib, m, sizeof(m)));
}

static void print_summary(const struct settings *s)
{
    char speed[32], rss[48];

    printf("\n== Summary: medians; ns/op of thread CPU time, peak RSS "
           "growth during the pattern\n   targets (printed, not "
           "pass/fail): speed-up >= 1.5, peak RSS objmem/CPython <= 1.0"
           "\n\n| pattern | CPython | objmem | speed-up (x), target >= 1.5 "
           "| peak RSS objmem/CPython, target <= 1.0 |\n"
           "|---|---|---|---|---|\n");
    for (int pat = 0; pat < NPATTERNS; pat++) {
        if (!run.pattern_on[pat])
            continue;
        printf("| %s |", patterns[pat].name);
        for (int b = 0; b < NBACKENDS; b++)
            print_summary_cell(pat, b, s);
        printf(" %s | %s |\n", fmt_speedup(pat, s, speed, sizeof(speed)),
               fmt_rss_ratio(pat, rss, sizeof(rss)));
    }
}

/* Median start-up RSS (before the pattern) over all of b's children. */
static double startup_mib(int b)
{
    double all[MAX_REPS * NPATTERNS];
    int n = 0;

    for (int pat = 0; pat < NPATTERNS; pat++)
        for (int i = 0; i < run.cells[pat][b].n[K_BASE]; i++)
            all[n++] = run.cells[pat][b].v[K_BASE][i];
    if (n == 0)
        return NAN;
    qsort(all, (size_t)n, sizeof(*all), cmp_double);
    return all[n / 2] * KIB / MIB;
}

/* What each backend's first child found: versions, checks, warnings. */
static void print_backends(void)
{
    printf("\n== Backends (as their first child found them)\n");
    for (int b = 0; b < NBACKENDS; b++) {
        char *save = NULL;

        printf("  %s:\n", backends[b].name);
        if (run.skip[b][0])
            printf("    UNAVAILABLE: %s\n", run.skip[b]);
        for (char *l = strtok_r(run.info[b], "\n", &save); l;
             l = strtok_r(NULL, "\n", &save))
            printf("    %s\n", l);
        if (!isnan(startup_mib(b)))
            printf("    RSS before the pattern (start-up, not counted): "
                   "%.1f MiB (median)\n", startup_mib(b));
        for (char *l = strtok_r(run.warn[b], "\n", &save); l;
             l = strtok_r(NULL, "\n", &save))
            printf("    WARNING: %s\n", l);
    }
}

/* Variables that change how a backend behaves, if any are set. */
static void print_env_notes(void)
{
    static const char *const prefixes[] = {
        "OBJMEM_", "PYTHONHASHSEED", "PYTHONDEVMODE", "PYTHONTRACEMALLOC",
        "MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD", NULL
    };

    print_environment(prefixes, "");
}

static void print_header(const struct settings *s)
{
    printf("objmem bench_objects %s: %d reps%s; each (backend, pattern) "
           "runs in a fresh child,\nthe backends alternating; time = "
           "CLOCK_THREAD_CPUTIME_ID of the pattern (drops included);\n"
           "peak RSS growth = VmHWM after the pattern - VmRSS before it "
           "(VmHWM reset just before).\n%ld CPUs online.\n", om_version(),
           s->reps, s->quick ? " (--quick: 10x fewer ops)" : "",
           sysconf(_SC_NPROCESSORS_ONLN));
    print_env_notes();
}

static void print_report(const struct settings *s, double seconds)
{
    print_backends();
    for (int pat = 0; pat < NPATTERNS; pat++)
        if (run.pattern_on[pat])
            print_pattern(pat, s);
    print_summary(s);
    printf("\nwall time %.0f s\n", seconds);
    if (run.ncrashes)
        printf("\n%d CHILDREN FAILED (their figures are left out):\n%s",
               run.ncrashes, run.crashes);
}

/* ---- Options and main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_objects [--reps N] [--quick] "
            "[--pattern P[,P...]]\n"
            "patterns: floats tuples list dict intern instances drop\n"
            "--reps: children per (backend, pattern), 1..%d (default 5, "
            "3 with --quick)\n--quick: 10x fewer operations\n", MAX_REPS);
}

/* Turn on the patterns named in a comma list; -1 on an unknown name. */
static int parse_patterns(char *list)
{
    char *save = NULL;

    memset(run.pattern_on, 0, sizeof(run.pattern_on));
    for (char *w = strtok_r(list, ",", &save); w;
         w = strtok_r(NULL, ",", &save)) {
        if (find_pattern(w) < 0) {
            fprintf(stderr, "bench_objects: unknown pattern '%s'\n", w);
            return -1;
        }
        run.pattern_on[find_pattern(w)] = true;
    }
    return 0;
}

/* One option at argv[*i]; 0, or -1 after printing why. */
static int parse_option(int argc, char **argv, int *i, bool *quick,
                        int *reps)
{
    const char *opt = argv[*i];
    char *arg = *i + 1 < argc ? argv[*i + 1] : NULL;

    if (strcmp(opt, "--quick") == 0) {
        *quick = true;
        return 0;
    }
    if (!arg || (strcmp(opt, "--reps") && strcmp(opt, "--pattern"))) {
        usage(stderr);
        return -1;
    }
    (*i)++;
    if (strcmp(opt, "--pattern") == 0)
        return parse_patterns(arg);
    *reps = atoi(arg);
    if (*reps >= 1 && *reps <= MAX_REPS)
        return 0;
    fprintf(stderr, "bench_objects: --reps wants 1..%d\n", MAX_REPS);
    return -1;
}

static int parse_options(int argc, char **argv, struct settings *s)
{
    bool quick = false;
    int reps = 0;

    for (int pat = 0; pat < NPATTERNS; pat++)
        run.pattern_on[pat] = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            exit(0);
        }
        if (parse_option(argc, argv, &i, &quick, &reps) != 0)
            return -1;
    }
    settings_init(s, quick, reps);
    return 0;
}

static int parent_main(const struct settings *s)
{
    double t0 = wall_s();
    ssize_t n = readlink("/proc/self/exe", run.self, sizeof(run.self) - 1);

    if (n <= 0)
        die("cannot read /proc/self/exe: %s", strerror(errno));
    run.self[n] = '\0';
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
