/*
 * weakref.c - weak references (Python's weakref.ref) and
 * WeakValueDictionary.
 *
 * Data layout: an object whose type has a weaklist_offset keeps there the
 * head of a doubly linked list of the weak references to it:
 *
 *   target: | refcnt | type | ... | *weaklist | ...
 *                                      |
 *   ref:  [basic ref] <-> [ref+cb newest] <-> ... <-> [ref+cb oldest]
 *
 * A ref without callback is shared: there is at most one, at the head,
 * and om_weakref_new hands it out again.  A ref with a callback goes
 * right after it, so the list runs newest first, and so do the callbacks
 * (CPython's order).  A ref is a GC object (as CPython's), so the
 * collector can tell a ref that is itself garbage, whose callback must
 * not run.
 *
 * When the target dies (om_dealloc, after its finalizer) or the collector
 * finds it unreachable, every ref to it is cleared first; then the
 * callbacks run, each with its ref alive.
 *
 * A WeakValueDictionary is a dict from keys to refs whose callback
 * deletes the entry: each ref keeps its key (CPython's KeyedRef) and the
 * dictionary's weak reference to itself (the selfref of CPython's
 * callback: its basic ref, shared by the entries), since its dict can
 * outlive it (gc introspection hands the dict out).
 *
 * Invariants (checked by omi_weakref_check; om_check runs it on every ref
 * through the collector's lists):
 *   1. A ref with a target is on the target's list once; a cleared ref
 *      (target NULL) is on no list.
 *   2. Only the head of a list may be a ref without callback.
 */
#include <errno.h>

#include "object.h"

struct weakref {
    om_object base;
    om_object *target;          /* borrowed; NULL once cleared */
    struct weakref *prev, *next; /* the target's list */
    om_weakref_callback cb;
    void *ctx;
    om_object *key;             /* WeakValueDictionary entries: the key */
    om_object *owner;           /* ... and a ref to their dictionary */
};

static void weakref_dealloc(om_object *o);
static int weakref_traverse(om_object *o, om_visitproc visit, void *arg);

const struct om_type omi_weakref_type = {
    .name = "weakref",
    .basic_size = sizeof(struct weakref),
    .flags = OM_TPFLAGS_GC,
    .dealloc = weakref_dealloc,
    .traverse = weakref_traverse,
};

static struct weakref *as_ref(om_object *o)
{
    return (struct weakref *)o;
}

static bool is_ref(const om_object *o)
{
    return o && o->type == &omi_weakref_type;
}

/* The list head field of target, or NULL when its type takes no weak
 * references. */
static struct weakref **list_of(om_object *target)
{
    size_t off = target->type->weaklist_offset;

    return off ? (struct weakref **)((char *)target + off) : NULL;
}

/* ---- The list ---- */

static void insert_after(struct weakref *r, struct weakref *prev,
                         struct weakref **head)
{
    r->prev = prev;
    r->next = prev ? prev->next : *head;
    if (r->next)
        r->next->prev = r;
    if (prev)
        prev->next = r;
    else
        *head = r;
}

/* Take r off its target's list and forget the target (invariant 1). */
void omi_weakref_clear(om_object *o)
{
    struct weakref *r = as_ref(o);
    struct weakref **head;

    if (!r->target)
        return;
    head = list_of(r->target);
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->target = NULL;
}

/* ---- The ref type ---- */

static int weakref_traverse(om_object *o, om_visitproc visit, void *arg)
{
    struct weakref *r = as_ref(o);
    int rc;

    if (r->key && (rc = visit(r->key, arg)) != 0)
        return rc;
    return r->owner ? visit(r->owner, arg) : 0;
}

/* Refs alive now: the collector skips its weakref pass when none. */
size_t omi_weakref_live;

static void weakref_dealloc(om_object *o)
{
    struct weakref *r = as_ref(o);
    om_object *key = r->key, *owner = r->owner;

    omi_weakref_live--;
    omi_weakref_clear(o);
    r->key = r->owner = NULL;
    om_xdecref(key);
    om_xdecref(owner);
    om_object_free(o);
}

static om_object *new_ref(om_object *target, om_weakref_callback cb,
                          void *ctx, om_object *key)
{
    struct weakref **head = list_of(target), *r;

    r = as_ref(om_new(&omi_weakref_type));
    if (!r)
        return NULL;
    omi_weakref_live++;
    r->target = target;
    r->cb = cb;
    r->ctx = ctx;
    r->key = key;
    om_xincref(key);
    if (!cb && !key)
        insert_after(r, NULL, head);    /* the shared basic ref */
    else
        insert_after(r, *head && !(*head)->cb && !(*head)->key ? *head
                                                               : NULL, head);
    om_gc_track(&r->base);
    return &r->base;
}

om_object *om_weakref_new(om_object *target, om_weakref_callback cb,
                          void *ctx)
{
    struct weakref **head;

    if (!target || !(head = list_of(target))) {
        errno = EINVAL;                 /* not weakly referenceable */
        return NULL;
    }
    if (!cb && *head && !(*head)->cb && !(*head)->key) {
        om_incref(&(*head)->base);      /* callback-less refs are shared */
        return &(*head)->base;
    }
    return new_ref(target, cb, ctx, NULL);
}

om_object *om_weakref_get(om_object *ref)
{
    om_object *target;

    if (!is_ref(ref)) {
        errno = EINVAL;
        return NULL;
    }
    target = as_ref(ref)->target;
    if (target)
        om_incref(target);
    return target;
}

size_t om_weakref_count(om_object *target)
{
    struct weakref **head = target ? list_of(target) : NULL;
    size_t n = 0;

    for (struct weakref *r = head ? *head : NULL; r; r = r->next)
        n++;
    return n;
}

/* ---- A target's death ---- */

/* Call r's callback with r alive, then drop the reference the caller took
 * for it. */
static void call_back(struct weakref *r)
{
    r->cb(&r->base, r->ctx);
    om_decref(&r->base);
}

/*
 * o is dying (refcnt 0, after its finalizer): clear every ref to it, then
 * call the callbacks, newest first.  The refs with callbacks are kept
 * alive meanwhile on a chain through their prev field (cleared refs are
 * on no list, so it is free).
 */
void omi_weakref_clear_all(om_object *o)
{
    struct weakref **head = list_of(o), *calls = NULL, *last = NULL;

    while (*head) {
        struct weakref *r = *head;
        omi_weakref_clear(&r->base);
        if (r->cb && r->base.refcnt > 0) {
            om_incref(&r->base);
            if (last)
                last->prev = r;
            else
                calls = r;
            last = r;
        }
    }
    while (calls) {
        struct weakref *r = calls;
        calls = r == last ? NULL : r->prev;
        r->prev = NULL;
        call_back(r);
    }
}

/* For the collector: the refs to o, for it to clear; NULL when none. */
om_object *omi_weakref_first(om_object *o)
{
    struct weakref **head = list_of(o);

    return head && *head ? &(*head)->base : NULL;
}

bool omi_weakref_has_callback(const om_object *ref)
{
    return ((const struct weakref *)ref)->cb != NULL;
}

void omi_weakref_call(om_object *ref)
{
    call_back(as_ref(ref));
}

/* ---- WeakValueDictionary ---- */

struct wvd {
    om_object base;
    om_object *dict;            /* key -> ref with the key */
    void *weaklist;             /* its entries' ref to it */
};

static void wvd_dealloc(om_object *o)
{
    om_object *dict = ((struct wvd *)o)->dict;

    ((struct wvd *)o)->dict = NULL;
    om_xdecref(dict);
    om_object_free(o);
}

static int wvd_traverse(om_object *o, om_visitproc visit, void *arg)
{
    om_object *dict = ((struct wvd *)o)->dict;

    return dict ? visit(dict, arg) : 0;
}

static int wvd_clear(om_object *o)
{
    om_object *dict = ((struct wvd *)o)->dict;

    ((struct wvd *)o)->dict = NULL;
    om_xdecref(dict);
    return 0;
}

static const struct om_type wvd_type = {
    .name = "WeakValueDictionary",
    .basic_size = sizeof(struct wvd),
    .flags = OM_TPFLAGS_GC,
    .dealloc = wvd_dealloc,
    .traverse = wvd_traverse,
    .clear = wvd_clear,
    .weaklist_offset = offsetof(struct wvd, weaklist),
};

static struct wvd *as_wvd(om_object *o)
{
    return o && o->type == &wvd_type && ((struct wvd *)o)->dict ?
           (struct wvd *)o : NULL;
}

om_object *om_weakvaluedict_new(void)
{
    struct wvd *w = (struct wvd *)om_new(&wvd_type);

    if (!w)
        return NULL;
    if (!(w->dict = om_dict_new())) {
        om_decref(&w->base);
        return NULL;
    }
    om_gc_track(&w->base);
    return &w->base;
}

/* A value died: its entry goes, if the dictionary lives (its dict may
 * outlive it) and the entry is still this ref (a replaced ref is gone
 * with its entry before its value can die). */
static void entry_died(om_object *ref, void *ctx)
{
    om_object *self = as_ref(as_ref(ref)->owner)->target;
    struct wvd *w = self ? as_wvd(self) : NULL;

    (void)ctx;
    if (!w)
        return;
    om_incref(self);                    /* the del may run code */
    if (om_dict_get(w->dict, as_ref(ref)->key) == ref)
        (void)om_dict_del(w->dict, as_ref(ref)->key);
    om_decref(self);
}

int om_weakvaluedict_set(om_object *o, om_object *key, om_object *value)
{
    struct wvd *w = as_wvd(o);
    om_object *ref, *self;
    int rc;

    if (!w || !key || !value)
        return -EINVAL;
    if (!list_of(value))
        return -EINVAL;                 /* not weakly referenceable */
    self = om_weakref_new(o, NULL, NULL);
    ref = self ? new_ref(value, entry_died, NULL, key) : NULL;
    if (!ref) {
        om_xdecref(self);
        return -ENOMEM;
    }
    as_ref(ref)->owner = self;
    rc = om_dict_set(w->dict, key, ref);
    om_decref(ref);
    return rc;
}

om_object *om_weakvaluedict_get(om_object *o, om_object *key)
{
    struct wvd *w = as_wvd(o);
    om_object *ref, *value;

    if (!w || !key) {
        errno = EINVAL;
        return NULL;
    }
    ref = om_dict_get(w->dict, key);
    if (!ref)
        return NULL;                    /* errno = ENOENT */
    if (!(value = om_weakref_get(ref)))
        errno = ENOENT;                 /* died, its callback not run yet */
    return value;
}

int om_weakvaluedict_del(om_object *o, om_object *key)
{
    struct wvd *w = as_wvd(o);

    if (!w || !key)
        return -EINVAL;
    return om_dict_del(w->dict, key);
}

size_t om_weakvaluedict_len(om_object *o)
{
    struct wvd *w = as_wvd(o);

    return w ? om_dict_len(w->dict) : 0;
}

/* Invariants 1-2 for one ref (the tests call it on theirs). */
int omi_weakref_check(om_object *o)
{
    struct weakref *r = as_ref(o), **head;
    bool found = false;

    if (!r->target)
        return r->prev || r->next ?
               omi_check_fail("weakref.1", r, "cleared ref on a list") : 0;
    head = list_of(r->target);
    for (struct weakref *x = *head; x; x = x->next) {
        if (x == r)
            found = true;
        if (x != *head && !x->cb && !x->key)
            return omi_check_fail("weakref.2", x, "basic ref not at head");
    }
    return found ? 0 : omi_check_fail("weakref.1", r, "ref not on its "
                                      "target's list");
}
