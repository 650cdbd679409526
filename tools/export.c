/*
 * export.c - the verbs that write a capture in other tools' formats:
 *
 *   objmem flamegraph FILE [--html OUT]   folded stacks on stdout (for
 *                                         flamegraph.pl, inferno,
 *                                         speedscope), or with --html a
 *                                         flame graph page, self-contained
 *   objmem pprof FILE -o OUT              pprof's profile.proto (go tool
 *                                         pprof, Pyroscope, speedscope)
 *
 * Both read the capture's statistics by traceback, as `objmem leaks`
 * does: a sampled capture gives its unbiased estimates, never the raw
 * sample.
 *
 * Folded stacks (Brendan Gregg's "collapsed" format): one line per stack,
 * its frames from the root to the allocating call joined by ';', a space
 * and the bytes.  A frame reads
 *
 *   function (file:line)      a frame with a line (a runtime's frames)
 *   file:line                 the same without a function
 *   function (module)         a C frame: the base name of its module
 *   [module+0x1a2b]           a C frame without a symbol: its return
 *                             address in the module's file (as
 *                             addr2line -e takes it; `objmem top` gives
 *                             the same), or [module] when the capture
 *                             has no mapping for it
 *
 * The format has no escapes: a ';' in a name is written ':', a control
 * character ' '.  A traceback cut at the limit starts with "[truncated]",
 * so that cut stacks do not pass for whole ones.  A name longer than
 * NAME_MAX_BYTES (4096, PATH_MAX: only a crafted capture's) is cut
 * there and ends "...[cut]": a line costs at most that per frame, where
 * a whole name shared by every frame made the output the square of the
 * capture (pprof keeps names whole: it writes each string once).  C
 * frames with a symbol that differ only in their return address read
 * the same; their lines are merged.
 * The HTML page draws the same stacks, under the capture's timeline
 * (timeline.c's chart, when the capture has one).
 *
 * pprof: profile.proto encoded here (pprof reads it uncompressed), with
 * Go's heap profile conventions.  The fields written:
 *
 *   Profile  1 sample_type  { alloc_objects/count, alloc_space/bytes,
 *                           inuse_objects/count, inuse_space/bytes },
 *                           the first two when the capture has the
 *                           allocations of the run
 *            2 sample       per traceback: 1 location_id (packed, the
 *                           allocating call first), 2 value (packed:
 *                           allocations and their bytes, then live
 *                           blocks and bytes)
 *            3 mapping      C frames' modules: 1 id, 2 memory_start,
 *                           3 memory_limit, 4 file_offset (0: the
 *                           first segment maps the file's start), 5
 *                           filename, 6 build_id (hex), 7
 *                           has_functions, 8 has_filenames (both 0
 *                           when a frame in it has no function, for
 *                           pprof to name it); a frame outside the
 *                           capture's modules gets one of its file's
 *                           name only
 *            4 location     1 id, 2 mapping_id, 3 address (C frames: the
 *                           return address), 4 line { 1 function_id,
 *                           2 line }
 *            5 function     1 id, 2 name, 3 system_name, 4 filename (the
 *                           source file, or the module's path)
 *            6 string_table ("" first), 9 time_nanos (the file's mtime),
 *           11 period_type space/bytes, 12 period (the sampling mean, 1
 *                           when every block was traced), 13 comment,
 *           14 default_sample_type inuse_space
 *
 * Ids and string indexes come from interning tables (struct intern).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "objmem.h"

/* The longest name (a file's, a function's) a frame of the folded stacks
 * and the page shows whole: PATH_MAX, so that no real path is cut.  A
 * crafted capture's may be megabytes, named by every frame: written
 * whole, 1.6 MB made 11 GB of stacks. */
#define NAME_MAX_BYTES 4096

/* ---- Bytes, growing ---- */

struct buf {
    unsigned char *p;
    size_t n;                   /* bytes used */
    size_t cap;                 /* bytes allocated */
};

/* A command-line tool may stop when memory runs out; the library never
 * does. */
static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (!p) {
        fputs("objmem: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static void buf_put(struct buf *b, const void *data, size_t n)
{
    if (n == 0)
        return;
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void buf_str(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* The text so far, as a C string that b keeps. */
static const char *buf_cstr(struct buf *b)
{
    buf_put(b, "", 1);
    b->n--;
    return (const char *)b->p;
}

/* ---- Interning: byte strings to ids 1, 2, ... ---- */

/*
 * Ids in the order the keys were first seen; open addressing on FNV-1a,
 * never more than half full.  pprof's strings (index = id - 1, "" first),
 * functions and locations; the page's frame names.
 */
struct intern {
    struct buf *keys;           /* keys[id - 1] */
    size_t n;                   /* ids given */
    size_t *slot;               /* an id, or 0: empty */
    size_t nslot;               /* a power of two, at least 2 * (n + 1) */
};

static uint64_t fnv1a(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void intern_grow(struct intern *t)
{
    size_t nslot = t->nslot ? 2 * t->nslot : 256;
    size_t *slot = xrealloc(NULL, nslot * sizeof(*slot));

    memset(slot, 0, nslot * sizeof(*slot));
    for (size_t id = 1; id <= t->n; id++) {
        size_t i = fnv1a(t->keys[id - 1].p, t->keys[id - 1].n) & (nslot - 1);

        while (slot[i])
            i = (i + 1) & (nslot - 1);
        slot[i] = id;
    }
    free(t->slot);
    t->slot = slot;
    t->nslot = nslot;
}

static size_t intern(struct intern *t, const void *key, size_t len)
{
    size_t i;

    if (2 * (t->n + 1) > t->nslot)
        intern_grow(t);
    i = fnv1a(key, len) & (t->nslot - 1);
    for (; t->slot[i]; i = (i + 1) & (t->nslot - 1)) {
        const struct buf *k = &t->keys[t->slot[i] - 1];

        if (k->n == len && (len == 0 || memcmp(k->p, key, len) == 0))
            return t->slot[i];
    }
    if (t->n % 256 == 0)
        t->keys = xrealloc(t->keys, (t->n + 256) * sizeof(*t->keys));
    t->keys[t->n] = (struct buf){ 0 };
    buf_put(&t->keys[t->n], key, len);
    t->slot[i] = ++t->n;
    return t->n;
}

static void intern_free(struct intern *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->keys[i].p);
    free(t->keys);
    free(t->slot);
}

/* ---- The capture, and its stacks ---- */

/* Which of a capture's snapshots an export reads: what was live, the
 * allocations of the run, or both (pprof, when the capture has them). */
enum want { WANT_LIVE, WANT_ALLOCS, WANT_BOTH };

struct capture {
    const char *path;
    struct om_snapshot *loaded;
    struct om_snapshot *kept[2];        /* filtered copies, or NULL */
    const struct om_snapshot *snap;     /* live (or the allocations:
                                           WANT_ALLOCS), filtered */
    const struct om_snapshot *asnap;    /* WANT_BOTH: the allocations,
                                           filtered; NULL: none */
    bool allocs;                        /* snap is the allocations */
    struct om_snapshot_info info;
    struct om_statistic *st, *ast;      /* by traceback, biggest first */
    size_t n, an;
};

static void capture_close(struct capture *c)
{
    om_snapshot_free(c->kept[0]);
    om_snapshot_free(c->kept[1]);
    om_snapshot_free(c->loaded);
}

/* part of c's capture, filtered, and its statistics by traceback:
 * false after a message. */
static bool capture_part(struct capture *c, const struct om_snapshot *part,
                         const struct objmem_filters *fl, int k,
                         const struct om_snapshot **snap,
                         struct om_statistic **st, size_t *n)
{
    int rc;

    if (!(*snap = objmem_filter(part, c->path, fl, &c->kept[k])))
        return false;
    rc = om_snapshot_statistics(*snap, OM_KEY_TRACEBACK, false, st, n);
    if (rc < 0)
        fprintf(stderr, "objmem: %s: %s\n", c->path, strerror(-rc));
    return rc == 0;
}

/* The capture at path, with the traces the filters keep. */
static bool capture_open(struct capture *c, const char *path,
                         const struct objmem_filters *fl, enum want want)
{
    const struct om_snapshot *all;
    bool ok;

    memset(c, 0, sizeof(*c));
    c->path = path;
    if (!(c->loaded = objmem_capture_load(path)))
        return false;
    all = om_snapshot_allocations(c->loaded);
    c->allocs = want == WANT_ALLOCS;
    if (c->allocs && !all) {
        fprintf(stderr, "objmem: %s: no allocations of the run in this "
                "capture (an older objmem wrote it)\n", path);
        capture_close(c);
        return false;
    }
    ok = capture_part(c, c->allocs ? all : c->loaded, fl, 0, &c->snap,
                      &c->st, &c->n);
    if (ok && want == WANT_BOTH && all)
        ok = capture_part(c, all, fl, 1, &c->asnap, &c->ast, &c->an);
    if (!ok) {
        capture_close(c);
        return false;
    }
    om_snapshot_get_info(c->snap, &c->info);
    return true;
}

/* The file name in path; a path longer than NAME_MAX_BYTES (no real
 * one is) whole, so that it costs no more than that to find. */
static const char *base_name(const char *path)
{
    const char *slash;

    if (strnlen(path, NAME_MAX_BYTES + 1) > NAME_MAX_BYTES)
        return path;
    slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* s as folded stacks can carry it: ';' as ':', control characters as
 * spaces; cut after NAME_MAX_BYTES bytes, marked "...[cut]". */
static void put_clean(struct buf *b, const char *s)
{
    size_t i;

    for (i = 0; s[i] && i < NAME_MAX_BYTES; i++) {
        char c = s[i];

        if (c == ';')
            c = ':';
        else if ((unsigned char)c < 0x20 || c == 0x7f)
            c = ' ';
        buf_put(b, &c, 1);
    }
    if (s[i])
        buf_str(b, "...[cut]");
}

/* One frame of snapshot s, named as the top of the file says. */
static void put_frame(struct buf *b, const struct om_snapshot *s,
                      const struct om_frame *f)
{
    const char *file = f->filename ? f->filename : "<unknown>";
    char line[32];

    if (!f->lineno && !f->function) {
        struct om_module m;
        int k = f->pc ? om_snapshot_find_module(s, f->pc) : -1;

        buf_str(b, "[");
        put_clean(b, base_name(file));
        if (k >= 0 && om_snapshot_module(s, (size_t)k, &m) == 0) {
            snprintf(line, sizeof(line), "+0x%lx",
                     (unsigned long)((uintptr_t)f->pc - m.bias));
            buf_str(b, line);
        }
        buf_str(b, "]");
        return;
    }
    if (f->function) {
        char name[1024];

        put_clean(b, objmem_function_name(f->function, name, sizeof(name)));
        buf_str(b, " (");
    }
    if (f->lineno) {
        snprintf(line, sizeof(line), ":%u", f->lineno);
        put_clean(b, file);
        buf_str(b, line);
    } else {
        put_clean(b, base_name(file));
    }
    if (f->function)
        buf_str(b, ")");
}

struct stack {
    char *text;                 /* frames, the root first, joined by ';' */
    size_t bytes;               /* estimates when sampled */
    size_t count;
};

/* A traceback of snapshot s as a line of folded stacks, without its
 * bytes (malloc'd). */
static char *stack_text(const struct om_snapshot *s,
                        const struct om_traceback *tb)
{
    struct buf b = { 0 };

    if (tb->total_nframe > tb->nframe)
        buf_str(&b, "[truncated];");
    if (tb->nframe == 0)
        buf_str(&b, "[no frames]");
    for (unsigned i = tb->nframe; i-- > 0;) {
        put_frame(&b, s, &tb->frames[i]);
        if (i > 0)
            buf_str(&b, ";");
    }
    buf_cstr(&b);
    return (char *)b.p;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(((const struct stack *)a)->text,
                  ((const struct stack *)b)->text);
}

/* The capture's stacks, one per text (sorted by it), into *out; how
 * many. */
static size_t collect_stacks(const struct capture *c, struct stack **out)
{
    struct stack *s = xrealloc(NULL, c->n * sizeof(*s));
    size_t n = 0;

    for (size_t i = 0; i < c->n; i++) {
        s[i].text = stack_text(c->snap, c->st[i].traceback);
        s[i].bytes = c->st[i].size;
        s[i].count = c->st[i].count;
    }
    qsort(s, c->n, sizeof(*s), by_text);
    for (size_t i = 0; i < c->n; i++) {
        if (n > 0 && strcmp(s[n - 1].text, s[i].text) == 0) {
            s[n - 1].bytes += s[i].bytes;
            s[n - 1].count += s[i].count;
            free(s[i].text);
        } else {
            s[n++] = s[i];
        }
    }
    *out = s;
    return n;
}

static void free_stacks(struct stack *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].text);
    free(s);
}

/* ---- Output files and arguments ---- */

/* path ("-": stdout) open for writing, or NULL after a message. */
static FILE *out_open(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");

    if (!f)
        fprintf(stderr, "objmem: %s: %s\n", path, strerror(errno));
    return f;
}

/* Close what out_open opened: 0, or 1 after a message when a write
 * failed. */
static int out_close(FILE *f, const char *path)
{
    bool bad = ferror(f) != 0;

    if (f == stdout)
        bad |= fflush(f) != 0;
    else
        bad |= fclose(f) != 0;
    if (bad) {
        fprintf(stderr, "objmem: %s: %s\n", path,
                strerror(errno ? errno : EIO));
        return 1;
    }
    return 0;
}

/* FILE, the value of the one option (opt or its other name alt), and
 * --allocs when allocs is not NULL: false after a message. */
static bool parse_args(int argc, char **argv, const char *opt,
                       const char *alt, const char **file,
                       const char **value, struct objmem_filters *fl,
                       bool *allocs)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool is_opt = strcmp(a, opt) == 0 || (alt && strcmp(a, alt) == 0);
        int filter = objmem_filter_option(argc, argv, &i, fl);

        if (filter < 0)
            return false;
        if (filter > 0)
            continue;
        if (allocs && strcmp(a, "--allocs") == 0) {
            *allocs = true;
        } else if (is_opt && i + 1 < argc) {
            *value = argv[++i];
        } else if (is_opt) {
            fprintf(stderr, "objmem: %s needs a file name\n", a);
            return false;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "objmem: unknown option '%s'\n", a);
            return false;
        } else if (*file) {
            fprintf(stderr, "objmem %s: one capture file, please\n",
                    argv[0]);
            return false;
        } else {
            *file = a;
        }
    }
    return *file != NULL;
}

/* ---- The HTML flame graph ---- */

static const char *const PAGE_CSS =
    "body { font: 13px sans-serif; margin: 12px; color: #222; }\n"
    "h1 { font-size: 17px; margin: 0 0 4px; }\n"
    "#bar { margin: 8px 0; }\n"
    "#bar > * { margin-right: 8px; }\n"
    "#graph { position: relative; overflow: hidden; }\n"
    ".f { position: absolute; height: 17px; line-height: 17px;\n"
    "     box-sizing: border-box; border: 1px solid #fff; padding: 0 3px;\n"
    "     font: 11px monospace; white-space: nowrap; overflow: hidden;\n"
    "     text-overflow: ellipsis; cursor: pointer; }\n"
    ".f:hover { border-color: #222; }\n"
    ".f.up { opacity: 0.55; }\n"
    ".f.hit { background: #c0e !important; color: #fff; }\n"
    "#info { min-height: 2.6em; margin: 8px 0 0; }\n";

/* The script, a line a string.  D, the data, comes from the page. */
static const char *const PAGE_JS[] = {
    "'use strict';",
    "const D = JSON.parse(document.getElementById('data').textContent);",
    "const ROW = 17;       /* px per frame */",
    "const MIN = 0.001;    /* narrower boxes (of the width) are not drawn */",
    "",
    "/* The tree: a node per distinct path from the root. */",
    "function node(name, parent) {",
    "  return { name: name, parent: parent, bytes: 0, kids: new Map(),",
    "           depth: parent ? parent.depth + 1 : 0 };",
    "}",
    "const root = node('all', null);",
    "let rows = 1;",
    "for (const [bytes, frames] of D.stacks) {",
    "  let n = root;",
    "  n.bytes += bytes;",
    "  for (const f of frames) {",
    "    if (!n.kids.has(f)) n.kids.set(f, node(D.frames[f], n));",
    "    n = n.kids.get(f);",
    "    n.bytes += bytes;",
    "  }",
    "  rows = Math.max(rows, n.depth + 1);",
    "}",
    "",
    "function human(b) {",
    "  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];",
    "  let u = 0;",
    "  for (; b >= 1024 && u < 4; u++) b /= 1024;",
    "  return (u ? b.toFixed(1) : String(b)) + ' ' + units[u];",
    "}",
    "function percent(b) {",
    "  return (root.bytes ? 100 * b / root.bytes : 0).toFixed(2) + '%';",
    "}",
    "function describe(n) {",
    "  return n.name + '\\n' + n.bytes + ' bytes (' + human(n.bytes) +",
    "         '), ' + percent(n.bytes) + ' of all';",
    "}",
    "/* Memory is green, as flamegraph.pl --colors=mem; [...] is grey. */",
    "function color(name) {",
    "  let h = 0;",
    "  for (let i = 0; i < name.length; i++)",
    "    h = (h * 31 + name.charCodeAt(i)) >>> 0;",
    "  if (name[0] === '[') return 'hsl(0, 0%, ' + (75 + h % 10) + '%)';",
    "  return 'hsl(' + (90 + h % 60) + ', ' + (35 + (h >>> 8) % 30) +",
    "         '%, ' + (55 + (h >>> 16) % 15) + '%)';",
    "}",
    "function el(tag, props, parent) {",
    "  const e = Object.assign(document.createElement(tag), props);",
    "  parent.appendChild(e);",
    "  return e;",
    "}",
    "",
    "const body = document.body;",
    "el('h1', { textContent: 'objmem flame graph: ' + D.file }, body);",
    "el('p', { id: 'totals', textContent: (D.what === 'blocks' ?",
    "          D.traces + ' traces, ' : 'allocated over the run: ') +",
    "          D.bytes + ' bytes (' + human(D.bytes) + ') in ' + D.blocks +",
    "          ' ' + D.what + (D.sample_mean ? ', sampled every ' +",
    "          human(D.sample_mean) + ' on average: estimates' : '') +",
    "          (D.lost ? ', ' + D.lost + ' traces lost' : '') }, body);",
    "const bar = el('div', { id: 'bar' }, body);",
    "const search = el('input', { id: 'search', type: 'search',",
    "                             placeholder: 'search (regexp)' }, bar);",
    "const reset = el('button', { textContent: 'Reset zoom' }, bar);",
    "const found = el('span', { id: 'found' }, bar);",
    "const graph = el('div', { id: 'graph' }, body);",
    "const info = el('pre', { id: 'info',",
    "  textContent: 'Click a frame to zoom in; hover for its bytes.' }, body);",
    "",
    "let zoom = root;",
    "function box(n, x, w) {",
    "  const d = el('div', { className: 'f', textContent: n.name,",
    "                        title: describe(n) }, graph);",
    "  d.style.left = 100 * x + '%';",
    "  d.style.width = 100 * w + '%';",
    "  d.style.bottom = n.depth * ROW + 'px';",
    "  d.style.background = color(n.name);",
    "  d.node = n;",
    "  return d;",
    "}",
    "/* n at x, w (fractions of the width), its children in name order. */",
    "function layout(n, x, w) {",
    "  box(n, x, w);",
    "  const kids = [...n.kids.values()];",
    "  kids.sort((a, b) => (a.name > b.name) - (a.name < b.name));",
    "  for (const k of kids) {",
    "    const kw = n.bytes ? w * k.bytes / n.bytes : 0;",
    "    if (kw >= MIN) layout(k, x, kw);",
    "    x += kw;",
    "  }",
    "}",
    "/* The zoomed node full width, its callers under it, dimmed. */",
    "function draw() {",
    "  graph.textContent = '';",
    "  graph.style.height = rows * ROW + 'px';",
    "  for (let a = zoom.parent; a; a = a.parent)",
    "    box(a, 0, 1).classList.add('up');",
    "  layout(zoom, 0, 1);",
    "  mark();",
    "}",
    "",
    "/* Bytes under the matching frames (a match within one counts once). */",
    "function matched(n, re) {",
    "  if (n !== root && re.test(n.name)) return n.bytes;",
    "  let sum = 0;",
    "  for (const k of n.kids.values()) sum += matched(k, re);",
    "  return sum;",
    "}",
    "function mark() {",
    "  let re = null;",
    "  try {",
    "    if (search.value) re = new RegExp(search.value, 'i');",
    "  } catch (e) {",
    "    re = null;",
    "  }",
    "  for (const d of graph.children)",
    "    d.classList.toggle('hit', re !== null && re.test(d.node.name));",
    "  const m = re ? matched(root, re) : 0;",
    "  found.textContent = re ? 'matched: ' + m + ' bytes (' + human(m) +",
    "                         '), ' + percent(m) : '';",
    "}",
    "",
    "graph.addEventListener('click', e => {",
    "  if (e.target.node) { zoom = e.target.node; draw(); }",
    "});",
    "graph.addEventListener('mouseover', e => {",
    "  if (e.target.node) info.textContent = describe(e.target.node);",
    "});",
    "reset.addEventListener('click', () => { zoom = root; draw(); });",
    "search.addEventListener('input', mark);",
    "draw();",
    NULL
};

/* s as a JSON string that is safe inside <script>: no '<' or '>' as
 * such. */
static void put_json(struct buf *b, const char *s)
{
    buf_str(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            buf_put(b, esc, 2);
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            buf_str(b, esc);
        } else {
            buf_put(b, s, 1);
        }
    }
    buf_str(b, "\"");
}

static void put_html(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            buf_str(b, "&lt;");
        else if (*s == '>')
            buf_str(b, "&gt;");
        else if (*s == '&')
            buf_str(b, "&amp;");
        else if (*s == '"')
            buf_str(b, "&quot;");
        else
            buf_put(b, s, 1);
    }
}

/* The stacks as the page's data: frame names once each, and per stack
 * its bytes and the indexes of its frames, the root first. */
static void put_stacks_json(struct buf *b, const struct stack *s, size_t n)
{
    struct intern names = { 0 };
    struct buf list = { 0 };
    char num[32];

    for (size_t i = 0; i < n; i++) {
        char *text = s[i].text, *end;

        snprintf(num, sizeof(num), "%s[%zu, [", i ? ",\n" : "", s[i].bytes);
        buf_str(&list, num);
        for (;; text = end + 1) {
            size_t len, id;

            end = strchr(text, ';');
            len = end ? (size_t)(end - text) : strlen(text);
            id = intern(&names, text, len);
            snprintf(num, sizeof(num), "%s%zu", text == s[i].text ? "" : ",",
                     id - 1);
            buf_str(&list, num);
            if (!end)
                break;
        }
        buf_str(&list, "]]");
    }
    buf_str(b, "\"frames\": [");
    for (size_t id = 1; id <= names.n; id++) {
        if (id > 1)
            buf_str(b, ",\n");
        put_json(b, buf_cstr(&names.keys[id - 1]));
    }
    buf_str(b, "],\n\"stacks\": [");
    buf_put(b, list.p, list.n);
    buf_str(b, "]");
    free(list.p);
    intern_free(&names);
}

/* The capture's timeline chart (timeline.c), at the top of the page. */
static void put_timeline(struct buf *b, const struct capture *c)
{
    char *svg = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&svg, &len);

    if (!f)
        return;
    objmem_timeline_svg(f, c->loaded);
    if (fclose(f) == 0)
        buf_put(b, svg, len);
    free(svg);
}

static void put_page(struct buf *b, const struct capture *c,
                     const struct stack *s, size_t n)
{
    size_t bytes = 0, blocks = 0;
    char num[160];

    for (size_t i = 0; i < n; i++) {
        bytes += s[i].bytes;
        blocks += s[i].count;
    }
    buf_str(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
            "<meta charset=\"utf-8\">\n<title>objmem flame graph: ");
    put_html(b, c->path);
    buf_str(b, "</title>\n<style>\n");
    buf_str(b, PAGE_CSS);
    buf_str(b, "</style>\n</head>\n<body>\n");
    put_timeline(b, c);
    buf_str(b, "<script id=\"data\" type=\"application/json\">\n"
            "{\"file\": ");
    put_json(b, c->path);
    snprintf(num, sizeof(num), ", \"traces\": %zu, \"bytes\": %zu, "
             "\"blocks\": %zu, \"what\": \"%s\", \"sample_mean\": %zu, "
             "\"lost\": %zu,\n", c->info.ntraces, bytes, blocks,
             c->allocs ? "allocations" : "blocks", c->info.sample_mean,
             c->info.lost);
    buf_str(b, num);
    put_stacks_json(b, s, n);
    buf_str(b, "}\n</script>\n<script>\n");
    for (size_t i = 0; PAGE_JS[i]; i++) {
        buf_str(b, PAGE_JS[i]);
        buf_str(b, "\n");
    }
    buf_str(b, "</script>\n</body>\n</html>\n");
}

int objmem_flamegraph(int argc, char **argv)
{
    const char *file = NULL, *html = NULL;
    struct objmem_filters fl = OBJMEM_NO_FILTERS;
    struct capture c;
    struct stack *s;
    struct buf page = { 0 };
    size_t n;
    FILE *out;
    bool allocs = false;
    int rc;

    if (!parse_args(argc, argv, "--html", NULL, &file, &html, &fl,
                    &allocs)) {
        fputs("usage: objmem flamegraph FILE [--html OUT] [--allocs]\n",
              stderr);
        return 2;
    }
    if (!capture_open(&c, file, &fl, allocs ? WANT_ALLOCS : WANT_LIVE))
        return 1;
    n = collect_stacks(&c, &s);
    if (!(out = out_open(html ? html : "-"))) {
        rc = 1;
    } else if (html) {
        put_page(&page, &c, s, n);
        fwrite(page.p, 1, page.n, out);
        rc = out_close(out, html);
    } else {
        for (size_t i = 0; i < n; i++)
            fprintf(out, "%s %zu\n", s[i].text, s[i].bytes);
        rc = out_close(out, "stdout");
    }
    free(page.p);
    free_stacks(s, n);
    capture_close(&c);
    return rc;
}

/* ---- Protocol buffers, by hand ---- */

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void pb_varint(struct buf *b, uint64_t v)
{
    unsigned char c[10];
    size_t n = 0;

    do {
        c[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            c[n] |= 0x80;
        n++;
    } while (v);
    buf_put(b, c, n);
}

static void pb_key(struct buf *b, unsigned field, unsigned wire)
{
    pb_varint(b, (uint64_t)field << 3 | wire);
}

/* A varint field; 0, the default, is left out. */
static void pb_uint(struct buf *b, unsigned field, uint64_t v)
{
    if (v) {
        pb_key(b, field, WIRE_VARINT);
        pb_varint(b, v);
    }
}

static void pb_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
    pb_key(b, field, WIRE_LEN);
    pb_varint(b, n);
    buf_put(b, p, n);
}

/* sub (a message, or a packed array) as field of b; sub is emptied, for
 * the next. */
static void pb_sub(struct buf *b, unsigned field, struct buf *sub)
{
    pb_bytes(b, field, sub->p, sub->n);
    sub->n = 0;
}

/* ---- pprof ---- */

struct pprof {
    struct intern strings;      /* string_table[id - 1] */
    struct intern functions;    /* key: name and filename indexes */
    struct intern locations;    /* key: pc, function, mapping id, line */
    struct intern mappings;     /* key: 1 and a module's index, or 0 and
                                   a filename index */
    const struct om_snapshot *snap;
    struct buf unnamed;         /* byte id - 1: a frame of that mapping
                                   has no function */
    struct intern stacks;       /* key: a sample's location ids */
    uint64_t (*values)[4];      /* per stack id - 1: its sample's values */
    size_t values_cap;
    struct intern forms;        /* key: a snapshot's string's address and
                                   a form of it (enum form) */
    uint64_t *form_index;       /* per id - 1: its string index */
    size_t nforms, forms_cap;   /* ids worked out; room */
    struct buf tmp, tmp2;       /* submessages being built */
};

/* What a frame's strings give the string table. */
enum form {
    FORM_SELF,                  /* the string */
    FORM_DEMANGLED,             /* a function's name, demangled */
    FORM_BRACKETED              /* "[" base name "]": a module's frame */
};

static uint64_t str_index(struct pprof *p, const char *s)
{
    return intern(&p->strings, s, strlen(s)) - 1;
}

static uint64_t make_form(struct pprof *p, const char *s, enum form form)
{
    struct buf name = { 0 };
    char plain[1024];
    uint64_t index;

    if (form == FORM_SELF)
        return str_index(p, s);
    if (form == FORM_DEMANGLED)
        return str_index(p, objmem_function_name(s, plain, sizeof(plain)));
    buf_str(&name, "[");
    buf_str(&name, base_name(s));
    buf_str(&name, "]");
    index = str_index(p, buf_cstr(&name));
    free(name.p);
    return index;
}

/* The string index of a form of s, a string of the snapshots the
 * profile reads (interned: its address stands for its bytes), worked
 * out once a string: hashed once a frame, a string of 800 KB named by
 * 14000 frames took 37 s. */
static uint64_t form_index(struct pprof *p, const char *s, enum form form)
{
    uintptr_t key[2] = { (uintptr_t)s, form };
    size_t id = intern(&p->forms, key, sizeof(key));

    if (id > p->nforms) {               /* new: ids come in order */
        if (id > p->forms_cap) {
            p->forms_cap = 2 * id;
            p->form_index = xrealloc(p->form_index, p->forms_cap *
                                     sizeof(*p->form_index));
        }
        p->form_index[id - 1] = make_form(p, s, form);
        p->nforms = id;
    }
    return p->form_index[id - 1];
}

/* The Function of a frame: its name ("[module]" for a C frame without a
 * symbol; a C++ name demangled), its file (a C frame's: the module's
 * path) and its system name (the symbol as the binary has it). */
static uint64_t function_id(struct pprof *p, const struct om_frame *f)
{
    const char *file = f->filename ? f->filename : "<unknown>";
    uint64_t key[3];

    if (f->function) {
        key[0] = form_index(p, f->function, FORM_DEMANGLED);
        key[2] = form_index(p, f->function, FORM_SELF);
    } else {
        key[0] = key[2] = form_index(p, file, FORM_BRACKETED);
    }
    key[1] = form_index(p, file, FORM_SELF);
    return intern(&p->functions, key, sizeof(key));
}

/* A C frame's Mapping: its module, already symbolised (so that pprof
 * neither looks for a main binary nor symbolises again). */
static uint64_t mapping_id(struct pprof *p, const struct om_frame *f)
{
    uint64_t key[2] = { 1, 0 };
    int k;

    if (!f->pc)
        return 0;
    if ((k = om_snapshot_find_module(p->snap, f->pc)) >= 0) {
        key[1] = (uint64_t)k;
    } else {
        key[0] = 0;
        key[1] = form_index(p, f->filename ? f->filename : "<unknown>",
                            FORM_SELF);
    }
    return intern(&p->mappings, key, sizeof(key));
}

static uint64_t location_id(struct pprof *p, const struct om_frame *f)
{
    uint64_t key[4];

    key[0] = (uint64_t)(uintptr_t)f->pc;
    key[1] = function_id(p, f);
    key[2] = mapping_id(p, f);
    key[3] = f->lineno;
    if (key[2] && !f->function) {
        while (p->unnamed.n < key[2])
            buf_put(&p->unnamed, "", 1);
        p->unnamed.p[key[2] - 1] = 1;
    }
    return intern(&p->locations, key, sizeof(key));
}

/* st's blocks and bytes to the values of its stack (the locations, the
 * allocating call first), from index base: the live and the allocated
 * statistics of one stack make one Sample. */
static void add_values(struct pprof *p, const struct om_statistic *st,
                       int base)
{
    const struct om_traceback *tb = st->traceback;
    struct buf ids = { 0 };
    size_t id;

    for (unsigned i = 0; i < tb->nframe; i++) {
        uint64_t loc = location_id(p, &tb->frames[i]);

        buf_put(&ids, &loc, sizeof(loc));
    }
    id = intern(&p->stacks, ids.p, ids.n);
    if (id > p->values_cap) {
        p->values_cap = 2 * id;
        p->values = xrealloc(p->values,
                             p->values_cap * sizeof(*p->values));
        memset(p->values + id - 1, 0,
               (p->values_cap - id + 1) * sizeof(*p->values));
    }
    p->values[id - 1][base] += st->count;
    p->values[id - 1][base + 1] += st->size;
    free(ids.p);
}

/* The Samples: each stack's location ids and its nvalues values. */
static void put_samples(struct buf *b, struct pprof *p, int nvalues)
{
    for (size_t id = 1; id <= p->stacks.n; id++) {
        const struct buf *k = &p->stacks.keys[id - 1];
        struct buf ids = { 0 };

        for (size_t i = 0; i < k->n; i += sizeof(uint64_t)) {
            uint64_t loc;

            memcpy(&loc, k->p + i, sizeof(loc));
            pb_varint(&ids, loc);
        }
        pb_sub(&p->tmp, 1, &ids);
        for (int v = 0; v < nvalues; v++)
            pb_varint(&ids, p->values[id - 1][v]);
        pb_sub(&p->tmp, 2, &ids);
        pb_sub(b, 2, &p->tmp);
        free(ids.p);
    }
}

static void put_value_type(struct buf *b, unsigned field, struct pprof *p,
                           const char *type, const char *unit)
{
    pb_uint(&p->tmp, 1, str_index(p, type));
    pb_uint(&p->tmp, 2, str_index(p, unit));
    pb_sub(b, field, &p->tmp);
}

static void put_locations(struct buf *b, struct pprof *p)
{
    for (size_t id = 1; id <= p->locations.n; id++) {
        uint64_t key[4];

        memcpy(key, p->locations.keys[id - 1].p, sizeof(key));
        pb_uint(&p->tmp, 1, id);
        pb_uint(&p->tmp, 2, key[2]);
        pb_uint(&p->tmp, 3, key[0]);
        pb_uint(&p->tmp2, 1, key[1]);
        pb_uint(&p->tmp2, 2, key[3]);
        pb_sub(&p->tmp, 4, &p->tmp2);
        pb_sub(b, 4, &p->tmp);
    }
}

/* The Mappings: a module's addresses, path and build ID; a name only
 * for a frame outside the modules; has_functions and has_filenames
 * unless a frame in it has no function, so that pprof names such frames
 * itself from the module (by its path or build ID) where it finds it. */
static void put_mappings(struct buf *b, struct pprof *p)
{
    for (size_t id = 1; id <= p->mappings.n; id++) {
        uint64_t key[2];
        struct om_module m;
        bool named;

        memcpy(key, p->mappings.keys[id - 1].p, sizeof(key));
        pb_uint(&p->tmp, 1, id);
        if (key[0] &&
            om_snapshot_module(p->snap, (size_t)key[1], &m) == 0) {
            char hex[2 * 32 + 1] = "";

            for (size_t i = 0; i < m.build_id_size && i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", m.build_id[i]);
            pb_uint(&p->tmp, 2, m.start);
            pb_uint(&p->tmp, 3, m.end);
            pb_uint(&p->tmp, 5, str_index(p, m.path));
            if (hex[0])
                pb_uint(&p->tmp, 6, str_index(p, hex));
        } else {
            pb_uint(&p->tmp, 5, key[1]);
        }
        named = id > p->unnamed.n || !p->unnamed.p[id - 1];
        pb_uint(&p->tmp, 7, named);
        pb_uint(&p->tmp, 8, named);
        pb_sub(b, 3, &p->tmp);
    }
}

static void put_functions(struct buf *b, struct pprof *p)
{
    for (size_t id = 1; id <= p->functions.n; id++) {
        uint64_t key[3];

        memcpy(key, p->functions.keys[id - 1].p, sizeof(key));
        pb_uint(&p->tmp, 1, id);
        pb_uint(&p->tmp, 2, key[0]);
        pb_uint(&p->tmp, 3, key[2]);
        pb_uint(&p->tmp, 4, key[1]);
        pb_sub(b, 5, &p->tmp);
    }
}

/* The Profile message, into b. */
static void put_profile(struct buf *b, struct pprof *p,
                        const struct capture *c)
{
    struct stat sb;
    struct buf comment = { 0 };

    int live = c->asnap ? 2 : 0;        /* the index of inuse_objects */

    str_index(p, "");           /* string_table[0] */
    if (c->asnap) {
        put_value_type(b, 1, p, "alloc_objects", "count");
        put_value_type(b, 1, p, "alloc_space", "bytes");
    }
    put_value_type(b, 1, p, "inuse_objects", "count");
    put_value_type(b, 1, p, "inuse_space", "bytes");
    for (size_t i = 0; i < c->an; i++)
        add_values(p, &c->ast[i], 0);
    for (size_t i = 0; i < c->n; i++)
        add_values(p, &c->st[i], live);
    put_samples(b, p, live + 2);
    put_mappings(b, p);
    put_locations(b, p);
    put_functions(b, p);
    if (stat(c->path, &sb) == 0)
        pb_uint(b, 9, (uint64_t)sb.st_mtime * 1000000000u);
    put_value_type(b, 11, p, "space", "bytes");
    pb_uint(b, 12, c->info.sample_mean ? c->info.sample_mean : 1);
    buf_str(&comment, "objmem capture ");
    buf_str(&comment, c->path);
    pb_uint(b, 13, str_index(p, buf_cstr(&comment)));
    pb_uint(b, 14, str_index(p, "inuse_space"));
    for (size_t id = 1; id <= p->strings.n; id++)
        pb_bytes(b, 6, p->strings.keys[id - 1].p, p->strings.keys[id - 1].n);
    free(comment.p);
}

int objmem_pprof(int argc, char **argv)
{
    const char *file = NULL, *path = NULL;
    struct objmem_filters fl = OBJMEM_NO_FILTERS;
    struct pprof p = { 0 };
    struct buf b = { 0 };
    struct capture c;
    FILE *out;
    int rc = 1;

    if (!parse_args(argc, argv, "-o", "--output", &file, &path, &fl,
                    NULL) || !path) {
        fputs("usage: objmem pprof FILE -o OUT\n", stderr);
        return 2;
    }
    if (!capture_open(&c, file, &fl, WANT_BOTH))
        return 1;
    p.snap = c.snap;
    put_profile(&b, &p, &c);
    if ((out = out_open(path))) {
        fwrite(b.p, 1, b.n, out);
        rc = out_close(out, path);
    }
    free(b.p);
    free(p.values);
    free(p.form_index);
    intern_free(&p.forms);
    free(p.unnamed.p);
    free(p.tmp.p);
    free(p.tmp2.p);
    intern_free(&p.strings);
    intern_free(&p.functions);
    intern_free(&p.locations);
    intern_free(&p.mappings);
    intern_free(&p.stacks);
    capture_close(&c);
    return rc;
}
