/*
 * pytrace.c - objmem-python's frame source: while objmem traces, the
 * tracebacks of Python's blocks name Python files and lines, as
 * tracemalloc's do.
 *
 * The source walks the calling thread's interpreter frames (CPython's own
 * frame chain, read without creating frame objects, as tracemalloc does)
 * from the most recent, skipping incomplete ones.  It runs inside the
 * allocator, so it allocates nothing itself; the UTF-8 form of a name may
 * be made once by CPython, and that block is not traced (tracing is
 * reentrant-guarded).
 *
 * A frame's filename and function are the UTF-8 of its code object's
 * co_filename and co_name.  objmem keeps those pointers until tracing
 * stops, so each name object is kept alive: the first time a name is
 * seen, it gets a reference and a slot in `kept` (a fixed open-addressing
 * set; when it is full, frames name "<unknown>" instead).
 *
 * A thread that does not hold the GIL (RAW allocations may come from
 * anywhere) and an interpreter not (or no longer) initialised give no
 * frames.
 *
 * The line of a frame is cached by (code object, instruction offset).
 * A key (om_trace_set_frame_key) hashes the same, so that tracing asks
 * for the frames only when a stack is new to the thread.  A line not
 * cached is read from the code object's line table on from where its
 * last lookup stopped (`walks`), not from the table's start.
 * The caches are shared by the threads: their entries are written and
 * read with the GIL held (the source gives no frames without it).
 *
 * Invariants:
 *   1. Every pointer the source returns belongs to an object in `kept`.
 *   2. The source is called only with the GIL held, or returns 0.
 *   3. A walk reads its table only at 0 <= pos < size, size the length
 *      of the table it names (checked before each read).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>

#include "objmem.h"
#include "pytrace.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>
#include <internal/pycore_pystate.h>
#define HAVE_FRAMES 1
#else
#define HAVE_FRAMES 0
#endif

#define KEPT_SLOTS 65536                /* a power of two */

static PyObject *kept[KEPT_SLOTS];
static size_t nkept;

/* Keep o alive for as long as objmem may point into it: false when the
 * set is full. */
static int keep(PyObject *o)
{
    size_t i = ((uintptr_t)o >> 4) & (KEPT_SLOTS - 1);

    for (; kept[i]; i = (i + 1) & (KEPT_SLOTS - 1))
        if (kept[i] == o)
            return 1;
    if (nkept + 1 >= KEPT_SLOTS / 2)
        return 0;
    Py_INCREF(o);
    kept[i] = o;
    nkept++;
    return 1;
}

/* The UTF-8 of a name object, kept alive; NULL when it cannot be. */
static const char *kept_utf8(PyObject *s)
{
    const char *u;

    if (!s || !PyUnicode_Check(s) || !keep(s))
        return NULL;
    u = PyUnicode_AsUTF8(s);
    if (!u)
        PyErr_Clear();
    return u;
}

#if HAVE_FRAMES
/*
 * A frame's answer, cached by (code object, instruction offset): the line
 * (PyCode_Addr2Line decodes the line table from its start: the most
 * expensive step) and the names.  A code object freed and another made at
 * its address would read a stale entry, so an entry also checks the code
 * object's filename, name and first line.
 */
struct line_cache {
    const PyCodeObject *code;
    int lasti;
    int line;
    const PyObject *filename, *name;
    int firstlineno;
    const char *file_utf8, *name_utf8;
};

#define LINE_CACHE 4096                 /* a power of two */

static struct line_cache lines[LINE_CACHE];

/*
 * Where the last line lookup of a code object stopped in its line table
 * (co_linetable, the format of CPython's Objects/locations.md), so that
 * the next lookup at a later instruction reads on from there.
 * PyCode_Addr2Line decodes from the table's start every time: at start-
 * up, where nearly every allocation site is new, a module body's sites
 * cost it the square of the body's length (5.4 of the 12 ms that tracing
 * added to an empty script).  Entries are found by code object and
 * checked as line_cache's are, with the table's identity and size; every
 * read is bounds-checked against the table, so a stale entry can give a
 * wrong line, never a read outside the table.
 */
struct line_walk {
    const PyCodeObject *code;
    const PyObject *table, *filename, *name;
    int firstlineno;
    int size;
    int pos;                    /* the next entry's first byte */
    int start, end;             /* the last entry read covers [start, end) */
    int line;                   /* its line, -1 for none */
    int computed;               /* the line the deltas have reached */
};

#define LINE_WALKS 256                  /* a power of two */

static struct line_walk walks[LINE_WALKS];

/* An entry's first byte has bit 7 set, the bytes after it never do. */
#define ENTRY_START 0x80

/* A signed varint (6-bit chunks, low first, 0x40: more follow) at *pos. */
static int read_svarint(const uint8_t *t, int size, int *pos)
{
    unsigned v = 0;
    int shift = 0;

    while (*pos < size && shift < 30) {
        uint8_t b = t[(*pos)++];

        v |= (unsigned)(b & 63) << shift;
        shift += 6;
        if (!(b & 64))
            break;
    }
    return v & 1 ? -(int)(v >> 1) : (int)(v >> 1);
}

/* Read the entry at w->pos: false at the table's end. */
static int walk_step(struct line_walk *w, const uint8_t *t)
{
    uint8_t b;
    int code;

    if (w->pos >= w->size || !(t[w->pos] & ENTRY_START))
        return 0;
    b = t[w->pos++];
    code = b >> 3 & 15;
    if (code == 13 || code == 14)       /* no columns, long form */
        w->computed += read_svarint(t, w->size, &w->pos);
    else if (code >= 10 && code <= 12)  /* one-line form: 0 to 2 on */
        w->computed += code - 10;
    w->line = code == 15 ? -1 : w->computed;    /* 15: no location */
    w->start = w->end;
    w->end += ((b & 7) + 1) * (int)sizeof(_Py_CODEUNIT);
    while (w->pos < w->size && !(t[w->pos] & ENTRY_START))
        w->pos++;
    return 1;
}

/* PyCode_Addr2Line(code, lasti), read on from the last lookup. */
static int line_at(PyCodeObject *code, int lasti)
{
    uintptr_t h = (uintptr_t)code >> 4 ^ (uintptr_t)code >> 12;
    struct line_walk *w = &walks[h & (LINE_WALKS - 1)];
    PyObject *table = code->co_linetable;
    const uint8_t *t;

    if (lasti < 0)
        return code->co_firstlineno;
    if (!table || !PyBytes_Check(table) || PyBytes_GET_SIZE(table) > INT_MAX)
        return PyCode_Addr2Line(code, lasti);
    t = (const uint8_t *)PyBytes_AS_STRING(table);
    if (w->code != code || w->table != table ||
        w->filename != code->co_filename || w->name != code->co_name ||
        w->firstlineno != code->co_firstlineno ||
        w->size != PyBytes_GET_SIZE(table) || lasti < w->start)
        *w = (struct line_walk){ .code = code, .table = table,
                                 .filename = code->co_filename,
                                 .name = code->co_name,
                                 .firstlineno = code->co_firstlineno,
                                 .size = (int)PyBytes_GET_SIZE(table),
                                 .line = -1,
                                 .computed = code->co_firstlineno };
    while (lasti >= w->end)
        if (!walk_step(w, t))
            return -1;
    return w->line;
}

static struct line_cache *line_of(PyCodeObject *code, int lasti)
{
    size_t h = ((uintptr_t)code >> 4) * 31 + (size_t)lasti;
    struct line_cache *c = &lines[(h ^ h >> 12) & (LINE_CACHE - 1)];

    if (c->code == code && c->lasti == lasti &&
        c->filename == code->co_filename && c->name == code->co_name &&
        c->firstlineno == code->co_firstlineno)
        return c;
    c->code = code;
    c->lasti = lasti;
    c->line = line_at(code, lasti);
#if OM_DEBUG >= 2
    if (c->line != PyCode_Addr2Line(code, lasti)) {
        fprintf(stderr, "pytrace: line %d at %d of %s, PyCode_Addr2Line %d\n",
                c->line, lasti, PyUnicode_AsUTF8(code->co_qualname),
                PyCode_Addr2Line(code, lasti));
        abort();
    }
#endif
    c->filename = code->co_filename;
    c->name = code->co_name;
    c->firstlineno = code->co_firstlineno;
    c->file_utf8 = kept_utf8(code->co_filename);
    c->name_utf8 = kept_utf8(code->co_name);
    return c;
}

static void frame_of(_PyInterpreterFrame *f, struct om_frame *out)
{
    PyCodeObject *code = f->f_code;
    int lasti = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
    const struct line_cache *c = line_of(code, lasti);

    out->filename = c->file_utf8 ? c->file_utf8 : "<unknown>";
    out->function = c->name_utf8;
    out->lineno = c->line > 0 ? (unsigned)c->line : 0;
    out->pc = NULL;
}

static _PyInterpreterFrame *newest_frame(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030D0000
    return ts->current_frame;
#else
    return ts->cframe ? ts->cframe->current_frame : NULL;
#endif
}

/* The calling thread's state when it holds the GIL, else NULL: the
 * state that holds the GIL must be this thread's own.  The thread's state
 * is remembered with its thread's ident (a thread keeps one state for its
 * life, mostly); a state remembered but since deleted and made again for
 * another thread fails the ident check, and the thread asks CPython
 * again. */
static __thread PyThreadState *my_state;
static __thread unsigned long my_ident;

static inline __attribute__((always_inline)) PyThreadState *holder(void)
{
    PyThreadState *ts = _PyThreadState_GET();

    if (!ts)
        return NULL;
    if (ts == my_state && ts->thread_id == my_ident)
        return ts;
    if (ts != PyGILState_GetThisThreadState())
        return NULL;
    my_state = ts;
    my_ident = PyThread_get_thread_ident();
    return ts;
}

/*
 * Whether the stack goes on past frame f: any older frame that is
 * Python's, complete or not (3.12's C-stack entry frames are not).  The
 * source and the key both judge "deeper" by this, so equal keys give
 * equal totals.  An incomplete frame (still in its prologue) is only ever
 * the newest one, for its prologue calls nothing; so this says what
 * skipping incomplete frames all the way down would, without reading the
 * older frame and its code object (one frame, 8 to 10 runs alternated
 * with the walk that checked it: churn 228 -> 226 ms, strings 241 -> 240,
 * dicts 550 -> 547).
 */
static inline bool has_older(_PyInterpreterFrame *f)
{
    bool older = false;

    for (_PyInterpreterFrame *o = f->previous; o && !older;
         o = o->previous)
#if PY_VERSION_HEX >= 0x030C0000
        older = o->owner != FRAME_OWNED_BY_CSTACK;
#else
        older = true;
#endif
#if OM_DEBUG >= 2
    /* Debug builds check the claim: a complete frame lies beyond. */
    bool complete = false;

    for (f = f->previous; f && !complete; f = f->previous)
        complete = !_PyFrame_IsIncomplete(f);
    if (complete != older) {
        fprintf(stderr, "pytrace: an incomplete frame below the newest\n");
        abort();
    }
#endif
    return older;
}

static int python_frames(void *ctx, struct om_frame *frames, int max)
{
    PyThreadState *ts = holder();
    int n = 0;

    if (!ts || max < 1)
        return 0;
    for (_PyInterpreterFrame *f = newest_frame(ts); f; f = f->previous) {
        if (_PyFrame_IsIncomplete(f))
            continue;
        frame_of(f, &frames[n]);
        if (++n == max)
            return n + has_older(f);    /* one past max: deeper */
    }
    return n;
}

static uint64_t rotl(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

/*
 * The key of the frames python_frames would give: each frame's code
 * object and instruction, with the fields that line_of checks against a
 * code object reborn at the same address (so equal keys give equal
 * frames, as line_of's cache does), and whether the stack goes deeper.
 * One multiply a frame: the pointers are rotated and the instruction and
 * first line shifted to the high bits (above a code pointer's), so that
 * the fields spread over the word before the multiply mixes them.
 */
static uint64_t python_key(void *ctx, int max)
{
    PyThreadState *ts = holder();
    uint64_t h = 0x243f6a8885a308d3ULL;
    int n = 0;

    if (!ts || max < 1)
        return 0;
    for (_PyInterpreterFrame *f = newest_frame(ts); f; f = f->previous) {
        PyCodeObject *code;

        if (_PyFrame_IsIncomplete(f))
            continue;
        code = f->f_code;
        h = (rotl(h, 23) ^ (uintptr_t)code ^
             rotl((uintptr_t)code->co_filename, 17) ^
             rotl((uintptr_t)code->co_name, 31) ^
             (uint64_t)(unsigned)_PyInterpreterFrame_LASTI(f) << 44 ^
             (uint64_t)(unsigned)code->co_firstlineno << 52) *
            0x9e3779b97f4a7c15ULL;
        if (++n == max) {
            n += has_older(f);
            break;
        }
    }
    h ^= (uint64_t)n;
    return h ^ h >> 29;
}
#endif

int pytrace_install(void)
{
#if HAVE_FRAMES
    om_trace_set_frame_source(python_frames, NULL);
    om_trace_set_frame_key(python_key);
    return 1;
#else
    return 0;                   /* C frames only */
#endif
}
