/*
 * fuzz_objects.c - libFuzzer target: an op stream over the object layer
 * and the cycle collector, checked after every operation against a model
 * of what the harness can know exactly.
 *
 * The input is read byte by byte (0 past its end) as up to MAX_OPS
 * operations over NSLOTS root slots, each a strong reference or NULL:
 * make an object into a slot (int, float, str, tuple, list, dict, an
 * instance of a class with or without slots, a box of the harness's own
 * GC types: with no finalizer, a PEP 442 finalizer, one that resurrects
 * its object into the holder list, a legacy_del; a weak reference with
 * or without callback, a WeakValueDictionary); link and unlink (lists,
 * dicts, attributes, box fields); drop or copy a root; fetch an object
 * from a list or from the holder; drive the collector (collect, enable,
 * thresholds, freeze, incremental, SAVEALL) and its introspection
 * (get_objects, get_referrers, get_referents); om_deep_sizeof, om_repr.
 *
 * The model, per input:
 *
 *   m.slot[NSLOTS]  { o, rec }: a root and the index of its record
 *   m.rec[MAX_RECS] what is known of one object while a slot holds it:
 *                   kind; escaped (a reference may be held outside the
 *                   slots); known (contents modelled); items[] (list and
 *                   tuple items, a dict's value per key id, an
 *                   instance's value per attribute name); a weak
 *                   reference's target record and callback; a
 *                   WeakValueDictionary's entries (value record per key
 *                   id); an int's value, a float's, a str's text
 *   m.cb[MAX_CBS]   per weakref callback: its ref, its target's record,
 *                   its calls, what else it does (drop a root, collect:
 *                   Python code can; so can a box's finalizer)
 *
 * A record is made when an object enters a slot while no slot holds it,
 * and is dead once no slot holds it: an object that comes back (from a
 * list, the holder) gets a new record, learned from the object itself.
 *
 * Exact checks: lengths and items of lists, tuples and dicts; attribute
 * values; the refcnt of an object only the slots hold; a weak
 * reference's target is alive while a slot holds it, a cleared one
 * stays cleared, its callback ran exactly once then; WeakValueDictionary
 * entries and length; each finalizer runs at most once (PEP 442), sees
 * its object's references intact, and om_gc_is_finalized agrees; the
 * tracking rule (a container holding what may be tracked is tracked);
 * referents, referrers, get_objects and freeze counts; collection stats
 * and counts; int, str and float read back and their repr; errors for
 * bad arguments.  om_check() every CHECK_EVERY operations; at the end,
 * everything dropped and collected, the live objects, the blocks in use
 * and om_check() are back where they were.
 *
 * Invariants (kept by the harness):
 *   1. All slots that hold one object share its record.
 *   2. A slot's object is alive, so the pointers its known record keeps
 *      (items, values) are alive too: the object holds them.
 *   3. While an operation runs the harness holds a reference to each
 *      operand (Python's evaluation stack), so a callback that drops a
 *      root never frees an object under the library's feet.
 *   4. Global settings (thresholds, enabled, incremental, debug flags,
 *      freeze) are restored before an input returns; the holder list
 *      and the interned names live across inputs and are made before the
 *      first baseline; the classes are made after each baseline and
 *      dropped before the end checks.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objmem.h"

#define NSLOTS 32
#define MAX_OPS 300
#define MAX_RECS 400
#define MAX_ITEMS 48            /* list items a known record follows */
#define MAX_LIST 1024           /* longest list an op may make */
#define MAX_CBS 64
#define MAX_TEXT 16
#define NNAMES 36               /* attribute names: 6 past a class's 30 */
#define NKEYS (8 + NNAMES + 3)  /* key ids: 8 ints, the names, 3 strs */
#define CHECK_EVERY 32
#define REPR_DEPTH 500          /* repr.c's: nested containers, then ELOOP */
#define REPR_BUDGET 20000       /* objects om_repr may visit */
#define DEEP_EVERY 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum kind {
    K_SINGLETON, K_INT, K_FLOAT, K_STR, K_TUPLE, K_LIST, K_DICT, K_INST,
    K_SINST, K_BOX, K_REF, K_WVD, K_OTHER
};

/* ---- Boxes: the harness's GC types ---- */

enum { BOX_PLAIN, BOX_FIN, BOX_RES, BOX_LEGACY, NBOX };

/* What user code (a callback, a finalizer) does besides its checks,
 * as Python code can: drop a root, run a collection. */
enum action { ACT_NONE, ACT_DROP, ACT_COLLECT, NACT };

struct box {
    om_object base;
    om_object *ref[2];
    void *weaklist;
    unsigned mask;              /* bit i: the harness set ref[i] */
    unsigned fin_calls;         /* finalizer calls (at most 1) */
    bool resurrect;             /* BOX_RES: save itself in the holder */
    enum action act;            /* BOX_FIN: what its finalizer does */
    int drop;                   /* the slot ACT_DROP empties */
};

struct rec {
    om_object *o;
    enum kind kind;
    bool known;                 /* contents below are exact */
    bool escaped;               /* may be referenced beyond the slots */
    bool ref_dead;              /* K_REF: seen cleared */
    bool ival_known, fval_known, text_known;
    size_t len;                 /* items, entries, attributes */
    om_object *items[MAX_ITEMS];
    int link;                   /* instance <-> its vars() dict, or -1 */
    int target, cb;             /* K_REF: target record, callback, or -1 */
    om_object *target_o;
    int wvd_rec[NKEYS];         /* K_WVD: value record per key, -1: none */
    om_object *wvd_val[NKEYS];
    int64_t ival;
    double fval;
    char text[MAX_TEXT];
    size_t nbytes;
};

struct cbinfo {
    om_object *ref;             /* NULL until om_weakref_new returned */
    int target;                 /* the target's record */
    enum action act;            /* what the call does */
    int drop;                   /* the slot ACT_DROP empties */
    int calls;
};

static struct {
    struct {
        om_object *o;
        int rec;
    } slot[NSLOTS];
    struct rec rec[MAX_RECS];
    int nrecs;
    struct cbinfo cb[MAX_CBS];
    int ncbs;
    om_object *held[8];         /* invariant 3 */
    int nheld;
    const uint8_t *in;
    size_t in_size, in_at;
    int op;                     /* operation number, for fail() */
    bool in_gc;                 /* between the gc callbacks */
    unsigned long gc_runs;      /* collections in this input */
    bool garbage_any;           /* gc.garbage may hold any object: SAVEALL
                                   was on, or a slot held the list */
} m;

static struct {
    bool ready;
    om_object *cls, *scls, *holder;
    const struct om_type *inst_type, *sinst_type, *ref_type, *wvd_type;
    int threshold[3];
    bool enabled;
    unsigned debug;
    size_t live0, blocks0;
} g;

static const char *const names[NNAMES] = {
    "x", "y", "z", "w", "other", "n5", "n6", "n7", "n8", "n9", "n10", "n11",
    "n12", "n13", "n14", "n15", "n16", "n17", "n18", "n19", "n20", "n21",
    "n22", "n23", "n24", "n25", "n26", "n27", "n28", "n29", "n30", "n31",
    "n32", "n33", "n34", "n35",
};
static const char *const slot_names[2] = { "x", "y" };

static const int64_t int_keys[8] = {
    0, 5, -5, 257, -1000, (int64_t)1 << 40,
    5 + (((int64_t)1 << 61) - 1),       /* hashes as 5 */
    -((int64_t)1 << 62),
};

static const char *const other_keys[3] = { "", "k e y", "\xc3\xa9" };

_Static_assert(NKEYS <= MAX_ITEMS, "a dict's values fit in items[]");

/* The text of str key k (8 <= k < NKEYS). */
static const char *key_text(int k)
{
    return k < 8 + NNAMES ? names[k - 8] : other_keys[k - 8 - NNAMES];
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_objects: op %d: %s\n", m.op, what);
    abort();
}

static void expect(bool ok, const char *what)
{
    if (!ok)
        fail(what);
}

/* ---- Reading the input ---- */

static unsigned byte(void)
{
    return m.in_at < m.in_size ? m.in[m.in_at++] : 0;
}

static uint64_t u64(void)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | byte();
    return v;
}

static int slot_arg(void)
{
    return (int)(byte() % NSLOTS);
}

/* ---- Kinds ---- */

static bool is_box_type(const struct om_type *t);

static enum kind kind_of(const om_object *o)
{
    const struct om_type *t = o->type;

    if (t == &om_int_type)
        return K_INT;
    if (t == &om_float_type)
        return K_FLOAT;
    if (t == &om_str_type)
        return K_STR;
    if (t == &om_tuple_type)
        return K_TUPLE;
    if (t == &om_list_type)
        return K_LIST;
    if (t == &om_dict_type)
        return K_DICT;
    if (t == g.inst_type)
        return K_INST;
    if (t == g.sinst_type)
        return K_SINST;
    if (t == g.ref_type)
        return K_REF;
    if (t == g.wvd_type)
        return K_WVD;
    if (is_box_type(t))
        return K_BOX;
    if (o == om_none() || o == om_bool(true) || o == om_bool(false))
        return K_SINGLETON;
    return K_OTHER;
}

static bool weakrefable(const om_object *o)
{
    return o && (kind_of(o) == K_INST || kind_of(o) == K_BOX ||
                 kind_of(o) == K_WVD);
}

/* CPython's _PyObject_GC_MAY_BE_TRACKED: what makes a container that
 * holds it tracked. */
static bool may_be_tracked(const om_object *o)
{
    switch (kind_of(o)) {
    case K_TUPLE:
        return om_gc_is_tracked(o);
    case K_LIST: case K_DICT: case K_INST: case K_SINST: case K_BOX:
    case K_REF: case K_WVD:
        return true;
    default:
        return false;
    }
}

/* Kinds whose objects are tracked for their whole life. */
static bool always_tracked(enum kind k)
{
    return k == K_INST || k == K_SINST || k == K_BOX || k == K_REF ||
           k == K_WVD;
}

/* ---- Slots and records ---- */

static bool rooted(int rec)
{
    for (int s = 0; s < NSLOTS; s++)
        if (m.slot[s].o && m.slot[s].rec == rec)
            return true;
    return false;
}

static int slots_holding(const om_object *o)
{
    int n = 0;

    for (int s = 0; s < NSLOTS; s++)
        n += m.slot[s].o == o;
    return n;
}

/* o may now be referenced from outside the slots. */
static void escape(const om_object *o)
{
    for (int s = 0; s < NSLOTS; s++)
        if (o && m.slot[s].o == o)
            m.rec[m.slot[s].rec].escaped = true;
}

static struct rec *rec_of(int s)
{
    return m.slot[s].o ? &m.rec[m.slot[s].rec] : NULL;
}

/* Hold a reference to an operand for the operation (invariant 3). */
static om_object *hold(om_object *o)
{
    if (o) {
        om_incref(o);
        m.held[m.nheld++] = o;
    }
    return o;
}

static void release(void)
{
    while (m.nheld > 0)
        om_decref(m.held[--m.nheld]);
}

/* Empty slot s (a decref: code may run). */
static void drop(int s)
{
    om_object *o = m.slot[s].o;

    m.slot[s].o = NULL;
    m.slot[s].rec = -1;
    om_xdecref(o);
}

/*
 * Put o (a new reference, or NULL) into slot s, which the caller emptied.
 * Returns o's record when it is new to the slots (the caller fills in
 * what it knows); NULL when a slot held o already (invariant 1: that
 * record is shared), or o is NULL, or the table is full (o dropped).
 */
static struct rec *place(int s, om_object *o)
{
    struct rec *r;
    int i;

    if (!o)
        return NULL;
    for (i = 0; i < NSLOTS; i++)
        if (m.slot[i].o == o) {
            m.slot[s].o = o;
            m.slot[s].rec = m.slot[i].rec;
            return NULL;
        }
    if (m.nrecs == MAX_RECS) {
        om_decref(o);
        return NULL;
    }
    r = &m.rec[m.nrecs];
    memset(r, 0, sizeof(*r));
    r->o = o;
    r->kind = kind_of(o);
    r->escaped = om_refcnt(o) != 1;
    r->link = r->target = r->cb = -1;
    for (i = 0; i < NKEYS; i++)
        r->wvd_rec[i] = -1;
    m.slot[s].o = o;
    m.slot[s].rec = m.nrecs++;
    return r;
}

/* A record for an object that came back from elsewhere: what can be
 * read from it.  Dicts stay unknown, and so do the holder and gc.garbage
 * (finalizers and collections append to them).  A dict may be a
 * WeakValueDictionary's own or an instance's: changed through it, they
 * change, so the model stops following those. */
static void learn(struct rec *r)
{
    om_object *o = r->o;
    size_t n;

    switch (r->kind) {
    case K_LIST:
    case K_TUPLE:
        n = r->kind == K_LIST ? om_list_len(o) : om_tuple_len(o);
        m.garbage_any = m.garbage_any || o == om_gc_garbage();
        if (n > MAX_ITEMS || o == g.holder || o == om_gc_garbage())
            return;
        for (size_t i = 0; i < n; i++)
            r->items[i] = r->kind == K_LIST ? om_list_get(o, i)
                                            : om_tuple_get(o, i);
        r->len = n;
        r->known = true;
        return;
    case K_INT:
        r->ival_known = om_int_as_i64(o, &r->ival) == 0;
        return;
    case K_DICT:
        for (int i = 0; i < m.nrecs; i++)
            if (m.rec[i].kind == K_WVD || m.rec[i].kind == K_INST)
                m.rec[i].known = false;
        return;
    default:
        return;
    }
}

/* ---- User code ---- */

/* What user code does besides its checks: drop root s, or ask for a
 * collection, which finds none inside a collection (0) and else runs a
 * full one. */
static void act(enum action a, int s)
{
    bool nested = m.in_gc;
    ptrdiff_t n;

    if (a == ACT_DROP) {
        drop(s);
    } else if (a == ACT_COLLECT) {
        n = om_gc_collect(2);
        expect(nested ? n == 0 : n >= 0,
               "om_gc_collect from user code: wrong result");
        expect(m.in_gc == nested, "a nested collection left the callbacks");
    }
}

/* ---- Boxes ---- */

static int box_traverse(om_object *o, om_visitproc visit, void *arg)
{
    struct box *b = (struct box *)o;
    int rc;

    for (int i = 0; i < 2; i++)
        if (b->ref[i] && (rc = visit(b->ref[i], arg)) != 0)
            return rc;
    return 0;
}

static int box_clear(om_object *o)
{
    struct box *b = (struct box *)o;

    for (int i = 0; i < 2; i++) {
        om_object *old = b->ref[i];
        b->ref[i] = NULL;
        om_xdecref(old);
    }
    return 0;
}

static void box_dealloc(om_object *o)
{
    box_clear(o);
    om_object_free(o);
}

static void box_set(om_object *o, int i, om_object *v)
{
    struct box *b = (struct box *)o;
    om_object *old = b->ref[i];

    om_xincref(v);
    b->ref[i] = v;
    b->mask = v ? b->mask | 1u << i : b->mask & ~(1u << i);
    om_xdecref(old);
}

/* PEP 442: no reference of o that the harness set is cleared yet, nor
 * one of a box it points at (all finalizers run before any clear). */
static bool refs_intact(const struct box *b, int depth)
{
    for (int i = 0; i < 2; i++) {
        if (!(b->mask & 1u << i))
            continue;
        if (!b->ref[i])
            return false;
        if (depth > 0 && is_box_type(b->ref[i]->type) &&
            !refs_intact((const struct box *)b->ref[i], depth - 1))
            return false;
    }
    return true;
}

static void box_finalize(om_object *o)
{
    struct box *b = (struct box *)o;

    expect(b->fin_calls++ == 0, "a finalizer ran twice");
    expect(om_gc_is_finalized(o), "a finalizer runs, not marked finalized");
    expect(refs_intact(b, 1), "a finalizer met a cleared reference");
    if (b->resurrect)
        expect(om_list_append(g.holder, o) == 0, "resurrection failed");
    act(b->act, b->drop);
}

static void box_legacy_del(om_object *o)
{
    expect(om_refcnt(o) == 1, "legacy_del called on an object not alive");
}

#define BOX_TYPE(tname, fin, del)                                           \
    {                                                                       \
        .name = tname, .basic_size = sizeof(struct box),                    \
        .flags = OM_TPFLAGS_GC, .dealloc = box_dealloc,                     \
        .traverse = box_traverse, .clear = box_clear, .finalize = fin,      \
        .legacy_del = del, .weaklist_offset = offsetof(struct box, weaklist) \
    }

static const struct om_type box_types[NBOX] = {
    BOX_TYPE("box", NULL, NULL),
    BOX_TYPE("fin_box", box_finalize, NULL),
    BOX_TYPE("res_box", box_finalize, NULL),
    BOX_TYPE("legacy_box", NULL, box_legacy_del),
};

static bool is_box_type(const struct om_type *t)
{
    return t >= &box_types[0] && t < &box_types[NBOX];
}

static bool has_finalizer(const om_object *o)
{
    return o->type == &box_types[BOX_FIN] || o->type == &box_types[BOX_RES];
}

/* ---- Callbacks ---- */

/* A weak reference's callback: once, after its ref was cleared, never
 * while a slot holds the target; then its action. */
static void on_dead(om_object *ref, void *ctx)
{
    struct cbinfo *c = ctx;
    om_object *t;

    expect(c->ref == ref, "a callback got another ref");
    expect(++c->calls == 1, "a weakref callback ran twice");
    t = om_weakref_get(ref);
    expect(t == NULL, "a callback ran before its ref was cleared");
    expect(!rooted(c->target), "a callback ran while its target is rooted");
    act(c->act, c->drop);
}

static void on_gc(const char *phase, const struct om_gc_info *info,
                  void *ctx)
{
    (void)ctx;
    if (strcmp(phase, "start") == 0) {
        expect(!m.in_gc, "gc start inside a collection");
        expect(info->generation >= 0 && info->generation <= 2,
               "gc callback: bad generation");
        m.in_gc = true;
    } else {
        expect(strcmp(phase, "stop") == 0, "gc callback: bad phase");
        expect(m.in_gc, "gc stop without start");
        m.in_gc = false;
        m.gc_runs++;
    }
}

/* ---- Set-up, once and per input ---- */

static size_t blocks_in_use(void)
{
    struct om_stats st;

    expect(om_stats_get(&st) == 0, "om_stats_get failed");
    return st.blocks_in_use;
}

static const struct om_type *type_of_new(om_object *o)
{
    const struct om_type *t;

    expect(o != NULL, "set-up: no object");
    t = o->type;
    om_decref(o);
    return t;
}

/* What lives across inputs, made before the first baseline (invariant
 * 4): the holder, gc.garbage, the interned names (immortal), the empty
 * string, and the types of refs and WeakValueDictionaries. */
static void init_once(void)
{
    om_object *cls = om_class_new("T", NULL, 0, 0), *inst;

    g.holder = om_list_new(0);
    expect(cls && g.holder && om_gc_garbage(), "set-up");
    for (int k = 8; k < NKEYS; k++)
        om_decref(om_str_literal(key_text(k)));
    om_decref(om_str_from_utf8("", 0));
    om_decref(om_int_from_i64(0));
    inst = om_instance_new(cls);
    g.ref_type = type_of_new(om_weakref_new(inst, NULL, NULL));
    om_decref(inst);
    om_decref(cls);
    g.wvd_type = type_of_new(om_weakvaluedict_new());
    om_gc_get_threshold(g.threshold);
    g.enabled = om_gc_is_enabled();
    g.debug = om_gc_get_debug();
    expect(om_gc_callback_add(on_gc, NULL) == 0, "gc callback");
    g.ready = true;
}

/* The input's classes (a class owns RAW memory that only its object
 * points at, so one kept for the process would look leaked to LSan):
 * A keeps attributes by key-sharing, S in slots x and y. */
static void make_classes(void)
{
    om_object *a = om_class_new("A", NULL, 0, 0);
    om_object *s = om_class_new("S", slot_names, 2, 0);

    expect(a && s, "om_class_new failed");
    g.cls = a;
    g.scls = s;
    g.inst_type = type_of_new(om_instance_new(a));
    g.sinst_type = type_of_new(om_instance_new(s));
}

static void start(const uint8_t *data, size_t size)
{
    if (!g.ready)
        init_once();
    m.nrecs = m.ncbs = m.nheld = 0;
    m.gc_runs = 0;
    m.in = data;
    m.in_size = size;
    m.in_at = 0;
    m.op = 0;
    m.in_gc = m.garbage_any = false;
    for (int s = 0; s < NSLOTS; s++)
        m.slot[s].rec = -1;
    om_clear_freelists();
    g.live0 = om_live_objects();
    g.blocks0 = blocks_in_use();
    make_classes();
}

/* ---- Checks ---- */

static om_object *key_new(int k, unsigned how);

static bool same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

static void check_atom(const struct rec *r)
{
    int64_t v;

    if (r->kind == K_INT && r->ival_known)
        expect(om_int_as_i64(r->o, &v) == 0 && v == r->ival,
               "an int reads back another value");
    if (r->kind == K_FLOAT && r->fval_known)
        expect(same_double(om_float_as_double(r->o), r->fval),
               "a float reads back another value");
    if (r->kind == K_STR && r->text_known)
        expect(memcmp(om_str_utf8(r->o), r->text, r->nbytes) == 0 &&
               om_str_utf8(r->o)[r->nbytes] == '\0',
               "a str reads back another text");
}

/* A container holding what may be tracked is tracked itself. */
static void check_tracking_rule(const struct rec *r, om_object *item)
{
    if (may_be_tracked(item))
        expect(om_gc_is_tracked(r->o),
               "a container holding a container is untracked");
}

static void check_sequence(const struct rec *r, bool deep)
{
    size_t n = r->kind == K_LIST ? om_list_len(r->o) : om_tuple_len(r->o);

    expect(n == r->len, "a list or tuple has another length");
    for (size_t i = 0; deep && i < n; i++) {
        om_object *x = r->kind == K_LIST ? om_list_get(r->o, i)
                                         : om_tuple_get(r->o, i);
        expect(x == r->items[i], "a list or tuple has another item");
        check_tracking_rule(r, x);
    }
}

/* dict[key k] is r's value for k (NULL: absent). */
static void check_dict_key(const struct rec *r, int k)
{
    om_object *key = key_new(k, 0), *v;

    errno = 0;
    v = om_dict_get(r->o, key);
    om_decref(key);
    expect(v == r->items[k], "a dict holds another value");
    if (!v)
        expect(errno == ENOENT, "om_dict_get: errno is not ENOENT");
    else
        check_tracking_rule(r, v);
}

static void check_dict(const struct rec *r, bool deep)
{
    expect(om_dict_len(r->o) == r->len, "a dict has another size");
    for (int k = 0; deep && k < NKEYS; k++)
        check_dict_key(r, k);
}

static void check_attrs(const struct rec *r)
{
    for (int i = 0; i < NNAMES; i++) {
        om_object *v;

        errno = 0;
        v = om_getattr(r->o, names[i]);
        expect(v == r->items[i], "an attribute has another value");
        if (v)
            om_decref(v);
        else
            expect(errno == ENOENT, "om_getattr: errno is not ENOENT");
    }
}

static void check_box(const struct rec *r)
{
    const struct box *b = (const struct box *)r->o;

    expect(b->fin_calls <= 1, "a finalizer ran twice");
    expect(om_gc_is_finalized(r->o) == (b->fin_calls == 1),
           "om_gc_is_finalized disagrees with the finalizer's calls");
    expect(!b->fin_calls || has_finalizer(r->o), "finalized without one");
}

/* A weak reference: alive target while rooted, cleared for good, its
 * callback run once when cleared (while the ref was rooted). */
static void check_ref(struct rec *r)
{
    om_object *t = om_weakref_get(r->o);

    if (t) {
        om_decref(t);
        expect(!r->ref_dead, "a cleared weakref came back");
        expect(r->target < 0 || t == r->target_o,
               "a weakref reads another target");
        expect(r->cb < 0 || m.cb[r->cb].calls == 0,
               "a callback ran while its ref has a target");
        return;
    }
    r->ref_dead = true;
    expect(r->target < 0 || !rooted(r->target),
           "a weakref is cleared while its target is rooted");
    expect(r->cb < 0 || m.cb[r->cb].calls == 1,
           "a weakref was cleared and its callback did not run");
}

/* The entries of a WeakValueDictionary: the ones with a rooted value
 * are there, holding it; the others hold their value or are gone (the
 * model forgets those). */
static void sync_wvd(struct rec *r)
{
    size_t n = 0;

    for (int k = 0; k < NKEYS; k++) {
        om_object *key, *v;

        if (r->wvd_rec[k] < 0)
            continue;
        key = key_new(k, 0);
        errno = 0;
        v = om_weakvaluedict_get(r->o, key);
        om_decref(key);
        if (v)
            om_decref(v);
        if (rooted(r->wvd_rec[k]))
            expect(v == r->wvd_val[k], "a rooted value left its wvd");
        if (!v) {
            expect(errno == ENOENT, "wvd get: errno is not ENOENT");
            r->wvd_rec[k] = -1;
            continue;
        }
        expect(v == r->wvd_val[k], "a wvd entry holds another value");
        n++;
    }
    expect(om_weakvaluedict_len(r->o) == n, "a wvd has another length");
}

static void check_wvd(struct rec *r, bool deep)
{
    size_t lo = 0, hi = 0, n = om_weakvaluedict_len(r->o);

    if (deep) {
        sync_wvd(r);
        return;
    }
    for (int k = 0; k < NKEYS; k++) {
        hi += r->wvd_rec[k] >= 0;
        lo += r->wvd_rec[k] >= 0 && rooted(r->wvd_rec[k]);
    }
    expect(n >= lo && n <= hi, "a wvd length outside what the model allows");
}

static void check_contents(struct rec *r, bool deep)
{
    switch (r->kind) {
    case K_LIST: case K_TUPLE:
        if (r->known)
            check_sequence(r, deep);
        break;
    case K_DICT:
        if (r->known)
            check_dict(r, deep);
        break;
    case K_INST: case K_SINST:
        if (r->known && deep)
            check_attrs(r);
        break;
    case K_BOX:
        check_box(r);
        break;
    case K_REF:
        check_ref(r);
        break;
    case K_WVD:
        if (r->known)
            check_wvd(r, deep);
        break;
    default:
        check_atom(r);
    }
}

static void check_slot(int s, bool deep)
{
    struct rec *r = rec_of(s);

    if (!r)
        return;
    expect(om_is_immortal(r->o) || om_refcnt(r->o) > 0, "a root is dead");
    expect(kind_of(r->o) == r->kind, "a root changed type");
    if (always_tracked(r->kind))
        expect(om_gc_is_tracked(r->o), "a GC object is untracked");
    if (!r->escaped && !om_is_immortal(r->o))
        expect(om_refcnt(r->o) == slots_holding(r->o),
               "refcnt differs from the roots that alone hold it");
    check_contents(r, deep);
}

/* gc.garbage holds legacy_del objects only (unless m.garbage_any). */
static void check_garbage(void)
{
    om_object *gl = om_gc_garbage();

    for (size_t i = 0; !m.garbage_any && i < om_list_len(gl); i++)
        expect(om_list_get(gl, i)->type == &box_types[BOX_LEGACY],
               "gc.garbage holds an object without legacy_del");
}

static void check_all(bool deep)
{
    for (int s = 0; s < NSLOTS; s++)
        check_slot(s, deep);
    if (deep)
        check_garbage();
}

/* ---- Making objects ---- */

/* Key k (ids 0..7: ints; then strs: the attribute names, three more), a
 * new reference; how picks the constructor for strs (they compare by
 * value, whatever the object). */
static om_object *key_new(int k, unsigned how)
{
    om_object *key;

    if (k < 8)
        key = om_int_from_i64(int_keys[k]);
    else if (how % 3 == 1)
        key = om_intern(key_text(k));
    else if (how % 3 == 2)
        key = om_str_literal(key_text(k));
    else
        key = om_str_from_utf8(key_text(k), strlen(key_text(k)));
    expect(key != NULL, "a key could not be made");
    return key;
}

static void op_int(bool big)
{
    int s = slot_arg();
    int64_t v = big ? (int64_t)u64() : (int8_t)byte();
    bool small = v >= -5 && v <= 256;
    om_object *o, *again;
    struct rec *r;

    drop(s);
    o = om_int_from_i64(v);
    again = om_int_from_i64(v);
    expect(o && again, "om_int_from_i64 failed");
    expect(om_is_immortal(o) == small, "small ints are the immortal ones");
    expect((o == again) == small, "small ints are cached, others new");
    om_decref(again);
    if ((r = place(s, o)) != NULL) {
        r->ival = v;
        r->ival_known = true;
    }
}

static void op_float(void)
{
    int s = slot_arg();
    uint64_t bits = u64();
    double v;
    om_object *o;
    struct rec *r;

    memcpy(&v, &bits, sizeof(v));
    drop(s);
    o = om_float_from_double(v);
    expect(o != NULL, "om_float_from_double failed");
    if ((r = place(s, o)) != NULL) {
        r->fval = v;
        r->fval_known = true;
    }
}

/* Code points in s[0..n) when it is well-formed UTF-8 (RFC 3629: no
 * overlong form, no surrogate, nothing above U+10FFFF), else -1. */
static long utf8_count(const unsigned char *s, size_t n)
{
    long count = 0;

    for (size_t i = 0; i < n; count++) {
        uint32_t c = s[i], min;
        size_t more;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            more = 1, min = 0x80, c &= 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            more = 2, min = 0x800, c &= 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            more = 3, min = 0x10000, c &= 0x07;
        else
            return -1;
        if (n - i <= more)
            return -1;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return -1;
            c = c << 6 | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return -1;
        i += more + 1;
    }
    return count;
}

static void keep_text(int s, om_object *o, const char *text, size_t n)
{
    struct rec *r = place(s, o);

    if (r) {
        memcpy(r->text, text, n);
        r->nbytes = n;
        r->text_known = true;
    }
}

static void op_str(void)
{
    int s = slot_arg();
    size_t n = byte() % (MAX_TEXT + 1);
    unsigned char buf[MAX_TEXT];
    long cps;
    om_object *o;

    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)byte();
    cps = utf8_count(buf, n);
    drop(s);
    errno = 0;
    o = om_str_from_utf8((const char *)buf, n);
    if (cps < 0) {
        expect(!o && errno == EINVAL, "invalid UTF-8 accepted");
        return;
    }
    expect(o != NULL, "valid UTF-8 refused");
    expect(om_str_len(o) == (size_t)cps, "a str has another length");
    expect(om_is_immortal(o) == (n == 0), "only the empty str is immortal");
    keep_text(s, o, (const char *)buf, n);
}

static bool identifier_like(const char *s)
{
    for (; *s; s++)
        if (!(*s == '_' || (*s >= '0' && *s <= '9') ||
              (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

static void op_literal(void)
{
    int s = slot_arg();
    const char *text = key_text(8 + (int)(byte() % (NKEYS - 8)));
    om_object *o;

    drop(s);
    o = om_str_literal(text);
    expect(o != NULL, "om_str_literal failed");
    expect(om_is_immortal(o) == identifier_like(text) &&
           om_str_is_interned(o) == identifier_like(text),
           "literals: identifiers interned and immortal, others not");
    keep_text(s, o, text, strlen(text));
}

static void op_intern(void)
{
    static const char alphabet[8] = "xyz_ab0 ";
    int s = slot_arg();
    size_t n = byte() % 7;
    char buf[8];
    om_object *o, *again;

    for (size_t i = 0; i < n; i++)
        buf[i] = alphabet[byte() % 8];
    buf[n] = '\0';
    drop(s);
    o = om_intern(buf);
    again = om_intern(buf);
    expect(o && again == o, "om_intern: not the one interned string");
    expect(om_str_is_interned(o), "om_intern: not interned");
    om_decref(again);
    keep_text(s, o, buf, n);
}

/* om_tuple_pack of 0..4 roots; an empty root is a NULL item (EINVAL,
 * nothing kept). */
static void op_tuple_pack(void)
{
    int s = slot_arg(), n = (int)(byte() % 5);
    om_object *it[4] = { NULL };
    bool missing = false;
    om_object *t;
    struct rec *r;

    for (int i = 0; i < n; i++) {
        it[i] = hold(m.slot[slot_arg()].o);
        missing = missing || !it[i];
    }
    drop(s);
    errno = 0;
    switch (n) {
    case 0: t = om_tuple_pack(0); break;
    case 1: t = om_tuple_pack(1, it[0]); break;
    case 2: t = om_tuple_pack(2, it[0], it[1]); break;
    case 3: t = om_tuple_pack(3, it[0], it[1], it[2]); break;
    default: t = om_tuple_pack(4, it[0], it[1], it[2], it[3]); break;
    }
    if (missing) {
        expect(!t && errno == EINVAL, "om_tuple_pack took a NULL item");
    } else {
        expect(t && om_tuple_len(t) == (size_t)n, "om_tuple_pack failed");
        expect(om_is_immortal(t) == (n == 0), "only () is immortal");
        for (int i = 0; i < n; i++)
            escape(it[i]);
        if ((r = place(s, t)) != NULL) {
            memcpy(r->items, it, sizeof(it));
            r->len = (size_t)n;
            r->known = true;
        }
    }
    release();
}

/* om_tuple_new, then om_tuple_set of each item (None for an empty
 * root), and one set out of range, which must still take its item. */
static void op_tuple_new(void)
{
    int s = slot_arg(), n = 1 + (int)(byte() % 4), bad = slot_arg();
    om_object *it[4], *t, *x;
    struct rec *r;

    for (int i = 0; i < n; i++) {
        it[i] = hold(m.slot[slot_arg()].o);
        if (!it[i])
            it[i] = om_none();
    }
    x = hold(m.slot[bad].o);
    drop(s);
    t = om_tuple_new((size_t)n);
    expect(t && om_tuple_len(t) == (size_t)n, "om_tuple_new failed");
    expect(om_gc_is_tracked(t), "om_tuple_new's tuple is untracked");
    for (int i = 0; i < n; i++) {
        om_incref(it[i]);
        escape(it[i]);
        expect(om_tuple_set(t, (size_t)i, it[i]) == 0, "om_tuple_set");
    }
    if (x) {
        om_incref(x);
        expect(om_tuple_set(t, (size_t)n + byte() % 3, x) == -EINVAL,
               "om_tuple_set out of range");
    }
    if ((r = place(s, t)) != NULL) {
        memcpy(r->items, it, (size_t)n * sizeof(it[0]));
        r->len = (size_t)n;
        r->known = true;
    }
    release();
}

static void op_list_new(void)
{
    int s = slot_arg();
    size_t n = byte() % 4;
    om_object *l;
    struct rec *r;

    drop(s);
    l = om_list_new(n);
    expect(l && om_list_len(l) == n, "om_list_new failed");
    expect(!om_gc_is_tracked(l), "a new list of None is tracked");
    if ((r = place(s, l)) != NULL) {
        for (size_t i = 0; i < n; i++)
            r->items[i] = om_none();
        r->len = n;
        r->known = true;
    }
}

static void op_dict_new(void)
{
    int s = slot_arg();
    om_object *d;
    struct rec *r;

    drop(s);
    d = om_dict_new();
    expect(d && om_dict_len(d) == 0, "om_dict_new failed");
    expect(!om_gc_is_tracked(d), "a new dict is tracked");
    if ((r = place(s, d)) != NULL)
        r->known = true;
}

static void op_instance(void)
{
    int s = slot_arg();
    bool slots = byte() & 1;
    om_object *o;
    struct rec *r;

    drop(s);
    o = om_instance_new(slots ? g.scls : g.cls);
    expect(o != NULL, "om_instance_new failed");
    if ((r = place(s, o)) != NULL)
        r->known = true;
}

static void op_box(void)
{
    int s = slot_arg(), kind = (int)(byte() % NBOX);
    bool resurrect = kind == BOX_RES && (byte() & 1);
    unsigned a = kind == BOX_FIN ? byte() : 0;
    struct box *b;

    drop(s);
    b = (struct box *)om_new(&box_types[kind]);
    expect(b != NULL, "om_new failed");
    b->resurrect = resurrect;
    b->act = (enum action)(a % NACT);
    b->drop = (int)(a / NACT % NSLOTS);
    om_gc_track(&b->base);
    place(s, &b->base);
}

static int new_cb(int target, enum action a, int drop_slot)
{
    struct cbinfo *c;

    if (m.ncbs == MAX_CBS)
        return -1;
    c = &m.cb[m.ncbs];
    c->ref = NULL;
    c->target = target;
    c->act = a;
    c->drop = drop_slot;
    c->calls = 0;
    return m.ncbs++;
}

/* A weak reference to root t: without callback (shared), or with one
 * that does an action too (drop a root, collect). */
static void op_weakref(void)
{
    int s = slot_arg(), t = slot_arg(), mode = (int)(byte() % (NACT + 1));
    int dropped = slot_arg(), target_rec = m.slot[t].rec, cb = -1;
    om_object *x = hold(m.slot[t].o), *ref;
    unsigned long runs;
    size_t before;
    struct rec *r;

    if (mode > 0 && weakrefable(x))
        cb = new_cb(target_rec, (enum action)(mode - 1), dropped);
    drop(s);
    before = x ? om_weakref_count(x) : 0;
    runs = m.gc_runs;
    errno = 0;
    ref = om_weakref_new(x, cb >= 0 ? on_dead : NULL,
                         cb >= 0 ? &m.cb[cb] : NULL);
    if (!weakrefable(x)) {
        expect(!ref && errno == EINVAL, "a weakref to what takes none");
        release();
        return;
    }
    expect(ref != NULL, "om_weakref_new failed");
    if (cb >= 0)
        m.cb[cb].ref = ref;
    if (runs == m.gc_runs)          /* else a collection took some */
        expect(om_weakref_count(x) ==
               before + (cb >= 0 || om_refcnt(ref) == 1),
               "om_weakref_count: not one more (or a shared ref)");
    if ((r = place(s, ref)) != NULL) {
        r->target = target_rec;
        r->target_o = x;
        r->cb = cb;
    }
    release();
}

static void op_wvd_new(void)
{
    int s = slot_arg();
    om_object *w;
    struct rec *r;

    drop(s);
    w = om_weakvaluedict_new();
    expect(w && om_weakvaluedict_len(w) == 0, "om_weakvaluedict_new");
    if ((r = place(s, w)) != NULL)
        r->known = true;
}

/* ---- Lists ---- */

static bool is_kind(const om_object *o, enum kind k)
{
    return o && kind_of(o) == k;
}

/* r's contents changed by an op the model cannot follow. */
static void forget(struct rec *r)
{
    if (r)
        r->known = false;
}

static void op_append(void)
{
    int a = slot_arg(), b = slot_arg();
    struct rec *r = rec_of(a);
    om_object *l = hold(m.slot[a].o), *x = hold(m.slot[b].o);
    bool ok = is_kind(l, K_LIST) && x;
    int rc;

    if ((r && r->known && r->len == MAX_ITEMS) || om_list_len(l) >= MAX_LIST)
        goto out;
    rc = om_list_append(l, x);
    expect(rc == (ok ? 0 : -EINVAL), "om_list_append");
    if (ok) {
        escape(x);
        if (r->known)
            r->items[r->len++] = x;
    }
out:
    release();
}

static void op_list_set(void)
{
    int a = slot_arg(), b = slot_arg();
    unsigned at = byte();
    struct rec *r = rec_of(a);
    om_object *l = hold(m.slot[a].o), *x = hold(m.slot[b].o);
    size_t i = at % (om_list_len(l) + 2);
    bool ok = is_kind(l, K_LIST) && x && i < om_list_len(l);

    if (x)
        om_incref(x);                   /* om_list_set steals it */
    expect(om_list_set(l, i, x) == (ok ? 0 : -EINVAL), "om_list_set");
    if (ok) {
        escape(x);
        if (r->known)
            r->items[i] = x;
    }
    release();
}

static void op_list_clear(void)
{
    int a = slot_arg();
    struct rec *r = rec_of(a);
    om_object *l = hold(m.slot[a].o);
    bool ok = is_kind(l, K_LIST);

    expect(om_list_clear(l) == (ok ? 0 : -EINVAL), "om_list_clear");
    if (ok && l != g.holder && l != om_gc_garbage()) {
        r->len = 0;
        r->known = true;
    }
    release();
}

static void op_extend(void)
{
    int a = slot_arg(), b = slot_arg();
    struct rec *r = rec_of(a);
    om_object *l = hold(m.slot[a].o), *src = hold(m.slot[b].o);
    bool ok = is_kind(l, K_LIST) &&
              (is_kind(src, K_LIST) || is_kind(src, K_TUPLE));
    size_t n = is_kind(src, K_LIST) ? om_list_len(src) : om_tuple_len(src);
    om_object *snap[MAX_ITEMS];

    if (om_list_len(l) + n > MAX_LIST ||
        (ok && r->known && r->len + n > MAX_ITEMS))
        goto out;
    for (size_t i = 0; ok && r->known && i < n; i++)
        snap[i] = is_kind(src, K_LIST) ? om_list_get(src, i)
                                       : om_tuple_get(src, i);
    expect(om_list_extend(l, src) == (ok ? 0 : -EINVAL), "om_list_extend");
    for (size_t i = 0; ok && r->known && i < n; i++)
        r->items[r->len++] = snap[i];
    for (size_t i = 0; ok && i < om_list_len(l); i++)
        escape(om_list_get(l, i));
out:
    release();
}

/* Fetch list a's item i into slot s (borrowed, then a reference of the
 * slot's own). */
static void op_list_get(void)
{
    int a = slot_arg(), s = slot_arg();
    unsigned at = byte();
    struct rec *r = rec_of(a), *nr;
    om_object *l = hold(m.slot[a].o), *x;
    size_t i = at % (om_list_len(l) + 1);
    bool ok = is_kind(l, K_LIST) && i < om_list_len(l);

    errno = 0;
    x = om_list_get(l, i);
    if (!ok) {
        expect(!x && errno == EINVAL, "om_list_get out of range");
        goto out;
    }
    expect(x && (!r->known || x == r->items[i]), "om_list_get");
    om_incref(x);
    drop(s);
    if ((nr = place(s, x)) != NULL)
        learn(nr);
out:
    release();
}

static void op_holder_take(void)
{
    size_t n = om_list_len(g.holder), at = byte();
    int s = slot_arg();
    om_object *x;
    struct rec *r;

    if (n == 0)
        return;
    x = om_list_get(g.holder, at % n);
    expect(x != NULL, "the holder lost an item");
    om_incref(x);
    drop(s);
    if ((r = place(s, x)) != NULL)
        learn(r);
}

/* ---- Dicts ---- */

static void op_dict_set(void)
{
    int a = slot_arg(), k = (int)(byte() % NKEYS), b = slot_arg();
    unsigned how = byte();
    struct rec *r = rec_of(a);
    om_object *d = hold(m.slot[a].o), *v = hold(m.slot[b].o);
    om_object *key = key_new(k, how);
    bool ok = is_kind(d, K_DICT) && v;

    expect(om_dict_set(d, key, v) == (ok ? 0 : -EINVAL), "om_dict_set");
    om_decref(key);
    if (ok) {
        escape(v);
        if (r->known && !r->items[k])
            r->len++;
        r->items[k] = v;
        if (r->link >= 0)
            forget(&m.rec[r->link]);
    }
    release();
}

static void op_dict_del(void)
{
    int a = slot_arg(), k = (int)(byte() % NKEYS);
    unsigned how = byte();
    struct rec *r = rec_of(a);
    om_object *d = hold(m.slot[a].o), *key = key_new(k, how);
    int rc = om_dict_del(d, key);

    om_decref(key);
    if (!is_kind(d, K_DICT)) {
        expect(rc == -EINVAL, "om_dict_del of a non-dict");
    } else if (r->known) {
        expect(rc == (r->items[k] ? 0 : -ENOENT), "om_dict_del");
        r->len -= r->items[k] != NULL;
        r->items[k] = NULL;
    } else {
        expect(rc == 0 || rc == -ENOENT, "om_dict_del");
    }
    if (r && r->link >= 0 && rc == 0)
        forget(&m.rec[r->link]);
    release();
}

/* ---- Attributes ---- */

static bool is_instance(const om_object *o)
{
    return is_kind(o, K_INST) || is_kind(o, K_SINST);
}

/* The result om_setattr owes: 0, -ENOENT (not a slot), -EINVAL. */
static int setattr_result(const om_object *o, int name, const om_object *v)
{
    if (!is_instance(o) || !v)
        return -EINVAL;
    return kind_of(o) == K_SINST && name >= 2 ? -ENOENT : 0;
}

static void op_setattr(void)
{
    int a = slot_arg(), n = (int)(byte() % NNAMES), b = slot_arg();
    struct rec *r = rec_of(a);
    om_object *o = hold(m.slot[a].o), *v = hold(m.slot[b].o);
    int want = setattr_result(o, n, v);

    expect(om_setattr(o, names[n], v) == want, "om_setattr");
    if (want == 0) {
        escape(v);
        if (r->known && !r->items[n])
            r->len++;
        r->items[n] = v;
        if (r->link >= 0)
            forget(&m.rec[r->link]);
    }
    release();
}

static void op_delattr(void)
{
    int a = slot_arg(), n = (int)(byte() % NNAMES);
    struct rec *r = rec_of(a);
    om_object *o = hold(m.slot[a].o);
    int rc = om_delattr(o, names[n]);

    if (!is_instance(o)) {
        expect(rc == -EINVAL, "om_delattr of a non-instance");
    } else if (r->known) {
        expect(rc == (r->items[n] ? 0 : -ENOENT), "om_delattr");
        r->len -= r->items[n] != NULL;
        r->items[n] = NULL;
    } else {
        expect(rc == 0 || rc == -ENOENT, "om_delattr");
    }
    if (r && r->link >= 0 && rc == 0)
        forget(&m.rec[r->link]);
    release();
}

/* vars(o) into slot s: a dict that is o's attributes from then on.  The
 * two records are linked: a change through one makes the other unknown;
 * the instance's record stops following its attributes at once. */
static void op_vars(void)
{
    int a = slot_arg(), s = slot_arg();
    struct rec *r = rec_of(a), *dr;
    om_object *o = hold(m.slot[a].o), *d;

    errno = 0;
    d = om_instance_dict(o);
    if (!is_kind(o, K_INST)) {
        expect(!d && errno == EINVAL, "vars() of what has no dict");
        goto out;
    }
    expect(is_kind(d, K_DICT), "vars() is not a dict");
    drop(s);
    if ((dr = place(s, d)) != NULL && r->known) {
        for (int i = 0; i < NNAMES; i++)
            dr->items[8 + i] = r->items[i];
        dr->len = r->len;
        dr->known = true;
    }
    if (m.slot[s].o == d) {
        dr = rec_of(s);
        dr->known = dr->known && dr->link < 0;
        dr->link = m.slot[a].o == o ? m.slot[a].rec : -1;
        r->link = m.slot[s].rec;
    }
    r->known = false;
out:
    release();
}

static void op_box_set(void)
{
    int a = slot_arg(), i = (int)(byte() & 1), b = slot_arg();
    om_object *o = hold(m.slot[a].o), *v = hold(m.slot[b].o);

    if (is_kind(o, K_BOX)) {
        escape(v);
        box_set(o, i, v);
    }
    release();
}

/* ---- WeakValueDictionary ---- */

/* The wvd's entries own references to its shared weakref (their way
 * back to it), which a slot may hold too. */
static void escape_refs_to(om_object *w)
{
    for (int s = 0; s < NSLOTS; s++) {
        om_object *t = is_kind(m.slot[s].o, K_REF) ?
                       om_weakref_get(m.slot[s].o) : NULL;
        if (t == w)
            escape(m.slot[s].o);
        om_xdecref(t);
    }
}

static void op_wvd_set(void)
{
    int a = slot_arg(), k = (int)(byte() % NKEYS), b = slot_arg();
    unsigned how = byte();
    struct rec *r = rec_of(a);
    om_object *w = hold(m.slot[a].o), *v = hold(m.slot[b].o);
    om_object *key = key_new(k, how);
    bool ok = is_kind(w, K_WVD) && weakrefable(v);
    int rc = om_weakvaluedict_set(w, key, v);

    om_decref(key);
    expect(rc == (ok ? 0 : -EINVAL), "om_weakvaluedict_set");
    if (ok)
        escape_refs_to(w);
    if (ok && r->known) {
        r->wvd_rec[k] = m.slot[b].o == v ? m.slot[b].rec : -1;
        r->wvd_val[k] = v;
        if (r->wvd_rec[k] < 0)
            r->known = false;           /* a callback dropped its root */
    }
    release();
}

static void op_wvd_del(void)
{
    int a = slot_arg(), k = (int)(byte() % NKEYS);
    unsigned how = byte();
    struct rec *r = rec_of(a);
    om_object *w = hold(m.slot[a].o), *key = key_new(k, how);
    int rc;

    if (r && r->kind == K_WVD && r->known)
        sync_wvd(r);
    rc = om_weakvaluedict_del(w, key);
    om_decref(key);
    if (!is_kind(w, K_WVD))
        expect(rc == -EINVAL, "om_weakvaluedict_del of a non-wvd");
    else if (r->known)
        expect(rc == (r->wvd_rec[k] >= 0 ? 0 : -ENOENT),
               "om_weakvaluedict_del");
    else
        expect(rc == 0 || rc == -ENOENT, "om_weakvaluedict_del");
    if (r && r->kind == K_WVD)
        r->wvd_rec[k] = -1;
    release();
}

/* ---- Roots ---- */

static void op_drop(void)
{
    drop(slot_arg());
}

static void op_copy(void)
{
    int from = slot_arg(), to = slot_arg();
    om_object *o = hold(m.slot[from].o);

    if (from != to && o) {
        drop(to);
        om_incref(o);
        place(to, o);
    }
    release();
}

static void op_ref_get(void)
{
    om_object *o = hold(m.slot[slot_arg()].o), *t;

    errno = 0;
    t = om_weakref_get(o);
    if (!is_kind(o, K_REF))
        expect(!t && errno == EINVAL, "om_weakref_get of a non-ref");
    om_xdecref(t);
    release();
}

/* ---- The collector ---- */

static void op_collect(void)
{
    int gen = (int)(byte() % 5) - 1, c0[3], c1[3];
    struct om_gc_stats s0[3], s1[3];
    ptrdiff_t n;

    om_gc_get_stats(s0);
    om_gc_get_count(c0);
    errno = 0;
    n = om_gc_collect(gen);
    if (gen < 0 || gen > 2) {
        expect(n == -1 && errno == EINVAL, "om_gc_collect: bad generation");
        return;
    }
    om_gc_get_stats(s1);
    om_gc_get_count(c1);
    expect(n >= 0, "om_gc_collect failed");
    expect(s1[gen].collections == s0[gen].collections + 1,
           "om_gc_collect: not one collection in the stats");
    expect(s1[gen].collected + s1[gen].uncollectable ==
           s0[gen].collected + s0[gen].uncollectable + (size_t)n,
           "om_gc_collect: the stats disagree with its result");
    for (int i = 0; i <= gen; i++)
        expect(c1[i] == 0, "a collected generation's count is not 0");
    if (gen < 2)
        expect(c1[gen + 1] == c0[gen + 1] + 1 || c0[gen + 1] == INT_MAX,
               "the next generation's count did not grow by one");
    expect(!m.in_gc, "a collection did not call stop");
}

static void set_threshold_check(const int want[3])
{
    int t[3];

    om_gc_get_threshold(t);
    for (int i = 0; i < 3; i++)
        expect(t[i] == (want[i] < 0 ? 0 : want[i]), "om_gc_get_threshold");
}

static void op_gc_settings(void)
{
    unsigned what = byte(), arg = byte();
    int t[3];

    switch (what % 5) {
    case 0:
        if (arg & 1)
            om_gc_enable();
        else
            om_gc_disable();
        expect(om_gc_is_enabled() == (arg & 1), "om_gc_is_enabled");
        break;
    case 1:
        t[0] = (int)(arg % 24) - 2;     /* negative: reads 0 */
        t[1] = (int)(byte() % 6);
        t[2] = (int)(byte() % 6);
        om_gc_set_threshold(t[0], t[1], t[2]);
        set_threshold_check(t);
        break;
    case 2:
        om_gc_set_incremental(arg & 1);
        expect(om_gc_is_incremental() == (arg & 1), "om_gc_is_incremental");
        break;
    case 3:
        m.garbage_any = m.garbage_any || (arg & 1);
        om_gc_set_debug(arg & 1 ? OM_GC_DEBUG_SAVEALL : 0);
        break;
    default:
        expect(om_check() == 0, "om_check");
    }
}

/* Every item of an introspection list is a live tracked object. */
static void check_tracked_items(om_object *l)
{
    for (size_t i = 0; i < om_list_len(l); i++) {
        om_object *x = om_list_get(l, i);
        expect(x != l, "an introspection list holds itself");
        expect(om_gc_is_tracked(x) && om_refcnt(x) > 0,
               "an introspection list holds an untracked object");
    }
}

static bool list_holds(om_object *l, const om_object *x)
{
    for (size_t i = 0; i < om_list_len(l); i++)
        if (om_list_get(l, i) == x)
            return true;
    return false;
}

/* Freeze (every tracked object to the permanent generation, counted)
 * or unfreeze. */
static void op_freeze(void)
{
    om_object *all;
    size_t n, f0 = om_gc_get_freeze_count();

    if (!(byte() & 1)) {
        om_gc_unfreeze();
        expect(om_gc_get_freeze_count() == 0, "unfreeze left some frozen");
        return;
    }
    all = om_gc_get_objects(-1);
    expect(all != NULL, "om_gc_get_objects failed");
    n = om_list_len(all);
    om_decref(all);
    om_gc_freeze();
    expect(om_gc_get_freeze_count() == f0 + n, "freeze count");
    all = om_gc_get_objects(-1);
    expect(all && om_list_len(all) == 0, "objects left after freeze");
    om_decref(all);
}

/* gc.get_objects(gen) (bad generations: EINVAL), checked, maybe kept in
 * slot s. */
static void op_objects(void)
{
    int gen = (int)(byte() % 6) - 2, s = slot_arg();
    bool keep = byte() & 1;
    om_object *all;
    struct rec *r;

    errno = 0;
    all = om_gc_get_objects(gen);
    if (gen < -1 || gen > 2) {
        expect(!all && errno == EINVAL, "om_gc_get_objects: bad generation");
        return;
    }
    expect(all != NULL, "om_gc_get_objects failed");
    check_tracked_items(all);
    for (int t = 0; gen == -1 && t < NSLOTS; t++)
        if (m.slot[t].o && always_tracked(rec_of(t)->kind) &&
            om_gc_get_freeze_count() == 0)
            expect(list_holds(all, m.slot[t].o),
                   "gc.get_objects() misses a tracked root");
    if (!keep) {
        om_decref(all);
        return;
    }
    for (size_t i = 0; i < om_list_len(all); i++)
        escape(om_list_get(all, i));
    drop(s);
    if ((r = place(s, all)) != NULL)
        learn(r);
}

static int visit_is(om_object *child, void *arg)
{
    return child == arg;
}

static bool refers_to(om_object *r, om_object *x)
{
    return r->type->traverse && r->type->traverse(r, visit_is, x) != 0;
}

/* Does the model say r holds x (a list's or tuple's item, a dict's
 * value, a box's reference)?  Its traverse must say so too.  (An
 * instance is left out: its values may sit in a dict of its own.) */
static bool model_refers(const struct rec *r, const om_object *x)
{
    size_t n = r->kind == K_DICT ? NKEYS : r->len;

    if (r->kind == K_BOX)
        return ((const struct box *)r->o)->ref[0] == x ||
               ((const struct box *)r->o)->ref[1] == x;
    if (!r->known ||
        (r->kind != K_LIST && r->kind != K_TUPLE && r->kind != K_DICT))
        return false;
    for (size_t i = 0; i < n; i++)
        if (r->items[i] == x)
            return true;
    return false;
}

static void op_referrers(void)
{
    om_object *x = hold(m.slot[slot_arg()].o), *res;

    errno = 0;
    res = om_gc_get_referrers(x);
    if (!x) {
        expect(!res && errno == EINVAL, "om_gc_get_referrers(NULL)");
        return;
    }
    expect(res != NULL, "om_gc_get_referrers failed");
    check_tracked_items(res);
    for (size_t i = 0; i < om_list_len(res); i++)
        expect(refers_to(om_list_get(res, i), x),
               "a referrer does not refer to the object");
    for (int t = 0; t < NSLOTS; t++) {
        struct rec *r = rec_of(t);
        bool holds = r && refers_to(r->o, x);

        if (r && model_refers(r, x))
            expect(holds, "traverse misses what the model says is held");
        if (holds && om_gc_is_tracked(r->o))
            expect(list_holds(res, r->o), "a tracked referrer is missing");
    }
    om_decref(res);
    release();
}

/* The referents the model knows: list and tuple items, box references
 * (in order), a dict's keys and values, an instance's attributes. */
static void check_referents(const struct rec *r, om_object *res)
{
    size_t n = om_list_len(res);
    const struct box *b = (const struct box *)r->o;

    switch (r->kind) {
    case K_LIST: case K_TUPLE:
        if (r->known) {
            expect(n == r->len, "referents: another count");
            for (size_t i = 0; i < n; i++)
                expect(om_list_get(res, i) == r->items[i],
                       "referents: another item");
        }
        break;
    case K_DICT:
        expect(!r->known || n == 2 * r->len, "referents of a dict");
        break;
    case K_INST: case K_SINST:
        expect(!r->known || n == r->len || (r->kind == K_INST && n == 1 &&
               is_kind(om_list_get(res, 0), K_DICT) &&
               om_dict_len(om_list_get(res, 0)) == r->len),
               "referents of an instance: not its values or its dict");
        break;
    case K_BOX:
        expect(n == (size_t)(b->ref[0] != NULL) + (b->ref[1] != NULL),
               "referents of a box");
        break;
    case K_REF:
        expect(r->target < 0 || n == 0, "referents of a weakref");
        break;
    case K_WVD:
        expect(n == 1, "referents of a wvd");
        break;
    case K_OTHER:
        break;
    default:
        expect(n == 0, "referents of an atom");
    }
}

static void op_referents(void)
{
    int s = slot_arg();
    struct rec *r = rec_of(s);
    om_object *x = hold(m.slot[s].o), *res;

    errno = 0;
    res = om_gc_get_referents(x);
    if (!x) {
        expect(!res && errno == EINVAL, "om_gc_get_referents(NULL)");
        return;
    }
    expect(res != NULL, "om_gc_get_referents failed");
    for (size_t i = 0; i < om_list_len(res); i++)
        expect(refers_to(x, om_list_get(res, i)), "a referent is not one");
    if (m.slot[s].o == x)
        check_referents(r, res);
    om_decref(res);
    release();
}

static void op_deep_sizeof(void)
{
    om_object *x = hold(m.slot[slot_arg()].o);
    size_t n;
    enum kind k;

    if (!x)
        return;
    n = om_deep_sizeof(x);
    k = kind_of(x);
    expect(n != (size_t)-1 && n >= om_sizeof(x), "om_deep_sizeof");
    if (k == K_INT || k == K_FLOAT || k == K_STR)
        expect(n == om_sizeof(x), "om_deep_sizeof of an atom");
    release();
}

/* ---- repr ---- */

/* Python's repr of an ASCII str of n bytes; false for other text. */
static bool str_repr(const char *s, size_t n, char *out, size_t cap)
{
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char quote = sq && !dq ? '"' : '\'';
    size_t at = 0;

    out[at++] = quote;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x80 || at + 5 > cap)
            return false;
        if (c == '\\' || c == (unsigned char)quote)
            at += (size_t)snprintf(out + at, cap - at, "\\%c", c);
        else if (c == '\n' || c == '\r' || c == '\t')
            at += (size_t)snprintf(out + at, cap - at, "\\%c",
                                   c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
        else if (c < 0x20 || c == 0x7f)
            at += (size_t)snprintf(out + at, cap - at, "\\x%02x", c);
        else
            out[at++] = (char)c;
    }
    out[at++] = quote;
    out[at] = '\0';
    return true;
}

static void check_float_repr(double v, const char *text)
{
    double back;

    if (isnan(v)) {
        expect(strcmp(text, "nan") == 0, "repr of nan");
        return;
    }
    back = strtod(text, NULL);
    expect(same_double(back, v), "repr of a float does not read back");
}

/* The repr the model can write for r, or NULL. */
static const char *expected_repr(const struct rec *r, char *buf, size_t cap)
{
    if (r->kind == K_INT && r->ival_known)
        snprintf(buf, cap, "%lld", (long long)r->ival);
    else if (r->kind == K_STR && r->text_known)
        return str_repr(r->text, r->nbytes, buf, cap) ? buf : NULL;
    else if ((r->kind == K_LIST || r->kind == K_TUPLE) && r->known &&
             r->len == 0)
        snprintf(buf, cap, "%s", r->kind == K_LIST ? "[]" : "()");
    else if (r->kind == K_DICT && r->known && r->len == 0)
        snprintf(buf, cap, "{}");
    else if (r->kind == K_BOX || r->kind == K_INST || r->kind == K_SINST)
        snprintf(buf, cap, "<%s object at %p>", r->o->type->name,
                 (void *)r->o);
    else
        return NULL;
    return buf;
}

/* om_repr's walk, counted: a container on the path is printed as [...],
 * shared items once per path to them (a tree of tuples sharing their
 * items is exponential in its objects, for Python's repr too). */
struct repr_walk {
    const om_object *path[REPR_DEPTH];
    int depth;
    long left;                  /* objects still allowed */
    bool too_deep;              /* past REPR_DEPTH nested: ELOOP */
};

static int visit_repr(om_object *child, void *arg);

static void walk_repr(struct repr_walk *w, om_object *x)
{
    enum kind k = kind_of(x);

    if (--w->left <= 0 || (k != K_LIST && k != K_TUPLE && k != K_DICT))
        return;
    for (int i = 0; i < w->depth; i++)
        if (w->path[i] == x)
            return;
    if (w->depth == REPR_DEPTH) {
        w->too_deep = true;
        return;
    }
    w->path[w->depth++] = x;
    x->type->traverse(x, visit_repr, w);
    w->depth--;
}

static int visit_repr(om_object *child, void *arg)
{
    struct repr_walk *w = arg;

    walk_repr(w, child);
    return w->left <= 0 || w->too_deep;
}

static void op_repr(void)
{
    static struct repr_walk w;
    int s = slot_arg();
    struct rec *r = rec_of(s);
    om_object *x = hold(m.slot[s].o), *text;
    char buf[128];
    const char *want;

    w.depth = 0;
    w.left = REPR_BUDGET;
    w.too_deep = false;
    if (x)
        walk_repr(&w, x);
    if (!x || w.left <= 0)
        goto out;                       /* too long a text to make */
    errno = 0;
    text = om_repr(x);
    if (w.too_deep) {
        expect(!text && errno == ELOOP, "om_repr: not ELOOP when too deep");
        goto out;
    }
    expect(text && kind_of(text) == K_STR, "om_repr failed");
    if (m.slot[s].o == x && r->kind == K_FLOAT && r->fval_known)
        check_float_repr(r->fval, om_str_utf8(text));
    else if (m.slot[s].o == x &&
             (want = expected_repr(r, buf, sizeof(buf))) != NULL)
        expect(strcmp(om_str_utf8(text), want) == 0, "om_repr: wrong text");
    om_decref(text);
out:
    release();
}

/* ---- The stream ---- */

enum op {
    OP_INT, OP_BIG_INT, OP_FLOAT, OP_STR, OP_LITERAL, OP_INTERN,
    OP_TUPLE_PACK, OP_TUPLE_NEW, OP_LIST_NEW, OP_DICT_NEW, OP_INSTANCE,
    OP_BOX, OP_WEAKREF, OP_WVD_NEW, OP_APPEND, OP_LIST_SET, OP_LIST_CLEAR,
    OP_EXTEND, OP_LIST_GET, OP_HOLDER_TAKE, OP_DICT_SET, OP_DICT_DEL,
    OP_SETATTR, OP_DELATTR, OP_VARS, OP_BOX_SET, OP_WVD_SET, OP_WVD_DEL,
    OP_DROP, OP_COPY, OP_REF_GET, OP_COLLECT, OP_GC_SETTINGS, OP_FREEZE,
    OP_OBJECTS, OP_REFERRERS, OP_REFERENTS, OP_DEEP_SIZEOF, OP_REPR, NOPS
};

/* One operation: a flat dispatch. */
static void run_op(enum op op)
{
    switch (op) {
    case OP_INT: op_int(false); break;
    case OP_BIG_INT: op_int(true); break;
    case OP_FLOAT: op_float(); break;
    case OP_STR: op_str(); break;
    case OP_LITERAL: op_literal(); break;
    case OP_INTERN: op_intern(); break;
    case OP_TUPLE_PACK: op_tuple_pack(); break;
    case OP_TUPLE_NEW: op_tuple_new(); break;
    case OP_LIST_NEW: op_list_new(); break;
    case OP_DICT_NEW: op_dict_new(); break;
    case OP_INSTANCE: op_instance(); break;
    case OP_BOX: op_box(); break;
    case OP_WEAKREF: op_weakref(); break;
    case OP_WVD_NEW: op_wvd_new(); break;
    case OP_APPEND: op_append(); break;
    case OP_LIST_SET: op_list_set(); break;
    case OP_LIST_CLEAR: op_list_clear(); break;
    case OP_EXTEND: op_extend(); break;
    case OP_LIST_GET: op_list_get(); break;
    case OP_HOLDER_TAKE: op_holder_take(); break;
    case OP_DICT_SET: op_dict_set(); break;
    case OP_DICT_DEL: op_dict_del(); break;
    case OP_SETATTR: op_setattr(); break;
    case OP_DELATTR: op_delattr(); break;
    case OP_VARS: op_vars(); break;
    case OP_BOX_SET: op_box_set(); break;
    case OP_WVD_SET: op_wvd_set(); break;
    case OP_WVD_DEL: op_wvd_del(); break;
    case OP_DROP: op_drop(); break;
    case OP_COPY: op_copy(); break;
    case OP_REF_GET: op_ref_get(); break;
    case OP_COLLECT: op_collect(); break;
    case OP_GC_SETTINGS: op_gc_settings(); break;
    case OP_FREEZE: op_freeze(); break;
    case OP_OBJECTS: op_objects(); break;
    case OP_REFERRERS: op_referrers(); break;
    case OP_REFERENTS: op_referents(); break;
    case OP_DEEP_SIZEOF: op_deep_sizeof(); break;
    case OP_REPR: op_repr(); break;
    default: break;
    }
}

/* gc.garbage emptied the way a program does it: the references of its
 * legacy_del objects dropped (which breaks their cycles), then the list
 * cleared. */
static void empty_garbage(void)
{
    om_object *gl = om_gc_garbage();

    for (size_t i = 0; i < om_list_len(gl); i++) {
        om_object *o = om_list_get(gl, i);
        if (is_box_type(o->type)) {
            box_set(o, 0, NULL);
            box_set(o, 1, NULL);
        }
    }
    expect(om_list_clear(gl) == 0, "clearing gc.garbage");
}

/* The end of an input: settings back (invariant 4), every root and
 * whatever the harness holds dropped, collected until a full collection
 * finds nothing (what a legacy_del object reached is uncollectable for
 * a collection even when that object dies by refcount in it, as in
 * CPython); then no object, no block leaked and a sound heap. */
static void finish(void)
{
    int round;

    om_gc_unfreeze();
    om_gc_set_debug(g.debug);
    om_gc_set_incremental(false);
    om_gc_set_threshold(g.threshold[0], g.threshold[1], g.threshold[2]);
    if (g.enabled)
        om_gc_enable();
    else
        om_gc_disable();
    for (int s = 0; s < NSLOTS; s++)
        drop(s);
    om_decref(g.cls);
    om_decref(g.scls);
    g.cls = g.scls = NULL;
    for (round = 0; round < 16; round++) {
        ptrdiff_t found;

        empty_garbage();
        expect(om_list_clear(g.holder) == 0, "clearing the holder");
        found = om_gc_collect(2);
        expect(found >= 0, "the last collection");
        if (found == 0 && !om_list_len(g.holder) &&
            !om_list_len(om_gc_garbage()))
            break;                      /* nothing unreachable is left */
    }
    expect(round < 16, "the heap did not empty");
    expect(om_gc_get_freeze_count() == 0, "objects left frozen");
    expect(om_live_objects() == g.live0, "objects leaked");
    om_clear_freelists();
    expect(blocks_in_use() == g.blocks0, "blocks leaked");
    expect(om_check() == 0, "om_check failed at the end");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    start(data, size);
    for (m.op = 1; m.op <= MAX_OPS && m.in_at < m.in_size; m.op++) {
        run_op((enum op)(byte() % NOPS));
        expect(m.nheld == 0, "harness: an operand left held");
        check_all(m.op % DEEP_EVERY == 0);
        if (m.op % CHECK_EVERY == 0)
            expect(om_check() == 0, "om_check failed");
    }
    check_all(true);
    finish();
    return 0;
}
