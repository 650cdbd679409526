/*
 * class.c - L3: classes whose instances keep their attributes in slots,
 * as Python classes with __slots__, or by key-sharing, as Python 3.11's
 * classes without them.
 *
 *   slots instance: | gc next | gc prev | refcnt | type | slot 0 | ... |
 *   dict instance:  | managed | gc next | gc prev | refcnt | type |
 *                   | weakref list |                            (48 bytes)
 *   managed: 0, a dict (low bit 0) or values | 1: CPython 3.12's
 *   dict_or_values; 3.11 kept the dict and the values pointers in two
 *   words (56 bytes, a 64-byte block) though one of them is always NULL
 *   values (MEM domain, at most one per instance, made at the first
 *   attribute):     | cap | used | order[used] ... | value 0 | value 1 | ...
 *                   |<- prefix: 2 + cap bytes, to 8 ->|<- cap pointers ->|
 *                   (cap fills the block: 2 values get 3 in 32 bytes)
 *
 * Key-sharing (PEP 412): a class keeps the names of its instances'
 * attributes once, in the order they were first set (keys[], at most
 * SHARED_KEYS_MAX); an instance keeps only the values, value i belonging
 * to key i, and order[] lists the indexes it has set in the order it set
 * them, so that its dict, when one is asked for, iterates as Python's.
 * Two attributes cost 24 bytes of values instead of a 184-byte dict, and
 * an instance with its values is one object to the collector.
 *
 * An instance moves its attributes into a dict of its own (and keeps them
 * there) when om_instance_dict asks for one (vars(o), o.__dict__), or
 * when it sets a name that the class cannot share because it has
 * SHARED_KEYS_MAX names already (CPython 3.11 does the same).
 *
 * A class is an object holding the om_type of its instances, its name,
 * its slot names and its shared keys (interned).  Each instance holds a
 * reference to its class, so a class lives as long as its instances.
 *
 * Invariants (om_check verifies 3-5 for every live instance, through the
 * collector's walk of tracked objects):
 *   1. An instance's type is the om_type inside a live class object.
 *   2. A slots instance has no dict and no values.
 *   3. A dict instance's managed word is 0, a dict (low bit clear: the
 *      object is a dict) or values (low bit set); never both, since one
 *      word holds one.
 *   4. values: used <= cap <= SHARED_KEYS_MAX, used <= the class's key
 *      count; order[0..used) are distinct indexes below cap, and they
 *      are exactly the indexes whose value is not NULL.
 *   5. The class's keys are str objects, distinct, at most
 *      SHARED_KEYS_MAX of them.
 */
#include <errno.h>
#include <string.h>

#include "object.h"

/* Names a class shares before an instance's new name gets it a dict of
 * its own: CPython's SHARED_KEYS_MAX_SIZE.  Indexes fit in a byte. */
#define SHARED_KEYS_MAX 30
_Static_assert(SHARED_KEYS_MAX <= 255, "order[] holds byte indexes");

struct class_object {
    om_object base;
    struct om_type type;        /* the instances' type */
    char *name;                 /* owned copy, RAW domain */
    size_t nslots;
    om_object **slot_names;     /* interned str, RAW domain */
    size_t nkeys;               /* shared keys, dict instances only */
    om_object *keys[SHARED_KEYS_MAX];   /* owned str references */
};

struct values {
    uint8_t cap;                /* value pointers after the prefix */
    uint8_t used;               /* values set: order[0..used) */
    uint8_t order[];            /* indexes, in the order they were set */
};

static void class_dealloc(om_object *o);

static const struct om_type class_type = {
    .name = "type",
    .basic_size = sizeof(struct class_object),
    .dealloc = class_dealloc,
};

static struct class_object *class_of(const om_object *instance)
{
    return (struct class_object *)((char *)(uintptr_t)instance->type -
                                   offsetof(struct class_object, type));
}

static void instance_dealloc(om_object *o);

/* Instance types are the ones whose dealloc is ours. */
static bool is_instance(const om_object *o)
{
    return o && o->type->dealloc == instance_dealloc;
}

static bool has_slots(const om_object *instance)
{
    return class_of(instance)->nslots != 0;
}

static om_object **slots_of(om_object *o)
{
    return (om_object **)(o + 1);
}

/* ---- Values: the attributes of a key-sharing instance ---- */

/* The managed word's tag: the word holds values, not a dict. */
#define VALUES_TAG ((uintptr_t)1)

/* Dict instance o's attribute dict, or NULL (values, or nothing yet). */
static om_object *inst_dict(const om_object *o)
{
    uintptr_t w = *omi_object_managed(o);

    return (w & VALUES_TAG) ? NULL : (om_object *)w;
}

/* Dict instance o's values, or NULL (a dict, or nothing yet). */
static struct values *inst_values(const om_object *o)
{
    uintptr_t w = *omi_object_managed(o);

    return (w & VALUES_TAG) ? (struct values *)(w - VALUES_TAG) : NULL;
}

/* o keeps d (or v, or nothing when NULL) from now on. */
static void set_dict(om_object *o, om_object *d)
{
    *omi_object_managed(o) = (uintptr_t)d;
}

static void set_values(om_object *o, struct values *v)
{
    *omi_object_managed(o) = v ? (uintptr_t)v | VALUES_TAG : 0;
}

static size_t prefix_bytes(size_t cap)
{
    return (2 + cap + 7) & ~(size_t)7;
}

static size_t values_bytes(size_t cap)
{
    return prefix_bytes(cap) + cap * sizeof(om_object *);
}

static om_object **values_of(const struct values *v)
{
    return (om_object **)((char *)(uintptr_t)v + prefix_bytes(v->cap));
}

/* The capacity for need values: as many as the block that need values
 * take holds (blocks come in 16-byte steps), so two attributes get room
 * for a third in 32 bytes. */
static size_t fit_cap(size_t need)
{
    size_t block = (values_bytes(need) + 15) & ~(size_t)15, cap = need;

    while (cap < SHARED_KEYS_MAX && values_bytes(cap + 1) <= block)
        cap++;
    return cap;
}

/* Values v (or none, NULL) grown to hold index ix, with room for every
 * key the class has: the second instance of a class gets its array at
 * once. */
static struct values *grow_values(struct values *v, size_t ix, size_t nkeys)
{
    size_t cap = fit_cap(nkeys > ix ? nkeys : ix + 1);
    size_t old_cap = v ? v->cap : 0;
    struct values *n = om_malloc(values_bytes(cap));

    if (!n)
        return NULL;
    memset(n, 0, values_bytes(cap));
    n->cap = (uint8_t)cap;
    if (v) {
        n->used = v->used;
        memcpy(n->order, v->order, v->used);
        memcpy(values_of(n), values_of(v), old_cap * sizeof(om_object *));
        om_free(v);
    }
    return n;
}

/* Drop index ix from v's insertion order. */
static void order_remove(struct values *v, uint8_t ix)
{
    size_t i = 0;

    while (v->order[i] != ix)
        i++;
    memmove(&v->order[i], &v->order[i + 1], (size_t)v->used - i - 1);
    v->used--;
}

/* Release values v, already detached from their instance: the values
 * can run finalizers that touch the instance. */
static void values_release(struct values *v)
{
    om_object **vals;

    if (!v)
        return;
    vals = values_of(v);
    for (size_t i = 0; i < v->used; i++)
        om_decref(vals[v->order[i]]);
    om_free(v);
}

/* The index of the class's shared key called name, or -1.  The first
 * byte is compared inline: most names differ there. */
static ptrdiff_t key_index(const struct class_object *cls, const char *name)
{
    for (size_t i = 0; i < cls->nkeys; i++) {
        const char *key = om_str_utf8(cls->keys[i]);

        if (key[0] == name[0] && strcmp(key, name) == 0)
            return (ptrdiff_t)i;
    }
    return -1;
}

/* The index of name among cls's shared keys, added when new; -1 when
 * the class shares SHARED_KEYS_MAX names already, -ENOMEM when the name
 * cannot be made. */
static ptrdiff_t add_key(struct class_object *cls, const char *name)
{
    ptrdiff_t ix = key_index(cls, name);

    if (ix >= 0 || cls->nkeys == SHARED_KEYS_MAX)
        return ix;
    cls->keys[cls->nkeys] = om_str_literal(name);
    if (!cls->keys[cls->nkeys])
        return -ENOMEM;
    return (ptrdiff_t)cls->nkeys++;
}

/* Move o's values into a new dict of its own, in o's insertion order.
 * On failure o is as it was. */
static int make_dict(om_object *o)
{
    struct class_object *cls = class_of(o);
    struct values *v = inst_values(o);
    om_object *d = om_dict_new();
    int rc = d ? 0 : -ENOMEM;

    for (size_t i = 0; v && rc == 0 && i < v->used; i++)
        rc = om_dict_set(d, cls->keys[v->order[i]],
                         values_of(v)[v->order[i]]);
    if (rc != 0) {
        om_xdecref(d);
        return rc;
    }
    set_dict(o, d);
    values_release(v);
    return 0;
}

/* ---- Instances ---- */

static int instance_traverse(om_object *o, om_visitproc visit, void *arg)
{
    struct class_object *cls = class_of(o);
    struct values *v;
    int rc;

    if (cls->nslots) {
        for (size_t i = 0; i < cls->nslots; i++)
            if (slots_of(o)[i] && (rc = visit(slots_of(o)[i], arg)) != 0)
                return rc;
        return 0;
    }
    if (inst_dict(o))
        return visit(inst_dict(o), arg);
    if ((v = inst_values(o)) != NULL)
        for (size_t i = 0; i < v->used; i++)
            if ((rc = visit(values_of(v)[v->order[i]], arg)) != 0)
                return rc;
    return 0;
}

static int instance_clear(om_object *o)
{
    struct class_object *cls = class_of(o);
    struct values *v;
    om_object *old;

    if (!cls->nslots) {
        old = inst_dict(o);
        v = inst_values(o);
        set_dict(o, NULL);
        om_xdecref(old);
        values_release(v);
        return 0;
    }
    for (size_t i = 0; i < cls->nslots; i++) {
        old = slots_of(o)[i];
        slots_of(o)[i] = NULL;
        om_xdecref(old);
    }
    return 0;
}

static void instance_dealloc(om_object *o)
{
    struct class_object *cls = class_of(o);

    instance_clear(o);
    om_object_free(o);
    om_decref(&cls->base);              /* after: o's type lives in cls */
}

om_object *om_instance_new(om_object *c)
{
    om_object *o;

    if (!c || c->type != &class_type) {
        errno = EINVAL;
        return NULL;
    }
    o = om_new(&((struct class_object *)c)->type);
    if (o) {
        om_incref(c);
        omi_gc_link(o);
    }
    return o;
}

om_object *om_instance_dict(om_object *o)
{
    if (!is_instance(o) || has_slots(o)) {
        errno = EINVAL;
        return NULL;
    }
    if (!inst_dict(o) && make_dict(o) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    om_incref(inst_dict(o));
    return inst_dict(o);
}

/* ---- Classes ---- */

static void class_dealloc(om_object *o)
{
    struct class_object *cls = (struct class_object *)o;

    for (size_t i = 0; i < cls->nkeys; i++)
        om_decref(cls->keys[i]);
    om_raw_free(cls->name);
    om_raw_free(cls->slot_names);
    om_object_free(o);
}

static char *copy_name(const char *name)
{
    size_t n = strlen(name) + 1;
    char *copy = om_raw_malloc(n);

    if (copy)
        memcpy(copy, name, n);
    return copy;
}

/* Intern the slot names (immortal, as CPython's identifiers). */
static int set_slots(struct class_object *cls, const char *const *names,
                     size_t n)
{
    cls->slot_names = om_raw_calloc(n ? n : 1, sizeof(om_object *));
    if (!cls->slot_names)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cls->slot_names[i] = om_str_literal(names[i]);
        if (!cls->slot_names[i])
            return -ENOMEM;
        cls->nslots = i + 1;
    }
    return 0;
}

om_object *om_class_new(const char *name, const char *const *slot_names,
                        size_t nslots, unsigned long flags)
{
    struct class_object *cls;

    /* Instances are GC objects: they cannot be OM_TPFLAGS_PLAIN. */
    if (!name || (nslots && !slot_names) || nslots > 4096 ||
        (flags & OM_TPFLAGS_PLAIN)) {
        errno = EINVAL;
        return NULL;
    }
    cls = (struct class_object *)om_new(&class_type);
    if (!cls)
        return NULL;
    cls->name = copy_name(name);
    if (!cls->name || set_slots(cls, slot_names, nslots) != 0) {
        om_decref(&cls->base);
        errno = ENOMEM;
        return NULL;
    }
    cls->type.name = cls->name;
    cls->type.flags = flags | OM_TPFLAGS_GC |
                      (nslots ? 0 : OM_TPFLAGS_MANAGED_DICT);
    cls->type.basic_size = sizeof(om_object) +
                           (nslots ? nslots * sizeof(void *)
                                   : sizeof(void *));  /* weakref list */
    cls->type.weaklist_offset = nslots ? 0 : sizeof(om_object);
    cls->type.dealloc = instance_dealloc;
    cls->type.traverse = instance_traverse;
    cls->type.clear = instance_clear;
    return &cls->base;
}

/* ---- Attributes ---- */

static ptrdiff_t slot_index(const struct class_object *cls, const char *n)
{
    for (size_t i = 0; i < cls->nslots; i++)
        if (strcmp(om_str_utf8(cls->slot_names[i]), n) == 0)
            return (ptrdiff_t)i;
    return -1;
}

/* The address holding attribute name of o, or NULL when o has no such
 * place (a dict instance's dict attributes have none: see dict_get). */
static om_object **place_of(om_object *o, const char *name)
{
    struct class_object *cls = class_of(o);
    struct values *v;
    ptrdiff_t i;

    if (cls->nslots) {
        i = slot_index(cls, name);
        return i < 0 ? NULL : &slots_of(o)[i];
    }
    v = inst_values(o);
    i = key_index(cls, name);
    return i < 0 || !v || (size_t)i >= v->cap ? NULL : &values_of(v)[i];
}

/* Borrowed: attribute name in the dict d, or NULL. */
static om_object *dict_get(om_object *d, const char *name)
{
    om_object *key = om_str_literal(name), *value;

    if (!key)
        return NULL;
    value = om_dict_get(d, key);
    om_decref(key);
    return value;
}

om_object *om_getattr(om_object *o, const char *name)
{
    om_object **place, *value = NULL;

    if (!is_instance(o) || !name) {
        errno = EINVAL;
        return NULL;
    }
    if (!has_slots(o) && inst_dict(o))
        value = dict_get(inst_dict(o), name);
    else if ((place = place_of(o, name)) != NULL)
        value = *place;
    if (!value) {
        errno = ENOENT;
        return NULL;
    }
    om_incref(value);
    return value;
}

static int dict_set(om_object *d, const char *name, om_object *value)
{
    om_object *key = om_str_literal(name);
    int rc;

    if (!key)
        return -ENOMEM;
    rc = value ? om_dict_set(d, key, value) : om_dict_del(d, key);
    om_decref(key);
    return rc;
}

/* Store value (a new reference taken) at o's index ix, growing o's
 * values as needed. */
static int values_set(om_object *o, size_t ix, om_object *value)
{
    struct values *v = inst_values(o);
    om_object *old;

    if (!v || ix >= v->cap) {
        v = grow_values(v, ix, class_of(o)->nkeys);
        if (!v)
            return -ENOMEM;
        set_values(o, v);
    }
    old = values_of(v)[ix];
    om_incref(value);
    values_of(v)[ix] = value;
    if (!old)
        v->order[v->used++] = (uint8_t)ix;
    om_xdecref(old);                    /* last: it may run code */
    return 0;
}

/* Delete attribute name of o, which keeps values. */
static int values_del(om_object *o, const char *name)
{
    om_object **place = place_of(o, name), *old;
    struct values *v = inst_values(o);

    if (!place || !(old = *place))
        return -ENOENT;
    *place = NULL;
    order_remove(v, (uint8_t)(place - values_of(v)));
    om_decref(old);                     /* last: it may run code */
    return 0;
}

/* Set (value) or delete (NULL) attribute name of dict instance o. */
static int set_shared(om_object *o, const char *name, om_object *value)
{
    ptrdiff_t ix;
    int rc;

    if (inst_dict(o))
        return dict_set(inst_dict(o), name, value);
    if (!value)
        return values_del(o, name);
    ix = add_key(class_of(o), name);
    if (ix >= 0)
        return values_set(o, (size_t)ix, value);
    if (ix != -1)
        return (int)ix;                 /* -ENOMEM */
    if ((rc = make_dict(o)) != 0)       /* the class is full */
        return rc;
    return dict_set(inst_dict(o), name, value);
}

static int set_slot(om_object *o, const char *name, om_object *value)
{
    om_object **place = place_of(o, name), *old;

    if (!place || (!value && !*place))
        return -ENOENT;
    old = *place;
    om_xincref(value);
    *place = value;
    om_xdecref(old);
    return 0;
}

int om_setattr(om_object *o, const char *name, om_object *value)
{
    if (!is_instance(o) || !name || !value)
        return -EINVAL;
    return has_slots(o) ? set_slot(o, name, value)
                        : set_shared(o, name, value);
}

int om_delattr(om_object *o, const char *name)
{
    if (!is_instance(o) || !name)
        return -EINVAL;
    return has_slots(o) ? set_slot(o, name, NULL)
                        : set_shared(o, name, NULL);
}

/* The name of class object o, or NULL when o is not a class. */
const char *omi_class_name(const om_object *o)
{
    return o && o->type == &class_type ?
           ((const struct class_object *)o)->name : NULL;
}

size_t omi_class_values_size(const om_object *o)
{
    struct values *v;

    if (!is_instance(o) || has_slots(o) || !(v = inst_values(o)))
        return 0;
    return values_bytes(v->cap);
}

/* ---- Checks ---- */

/* Invariant 5, for o's class. */
static int check_keys(const struct class_object *cls)
{
    if (cls->nkeys > SHARED_KEYS_MAX)
        return omi_check_fail("class.5", cls, "%zu shared keys",
                              cls->nkeys);
    for (size_t i = 0; i < cls->nkeys; i++) {
        if (!cls->keys[i] || cls->keys[i]->type != &om_str_type)
            return omi_check_fail("class.5", cls, "key %zu is no str", i);
        for (size_t j = 0; j < i; j++)
            if (omi_str_equal(cls->keys[i], cls->keys[j]))
                return omi_check_fail("class.5", cls, "keys %zu and %zu "
                                      "are equal", j, i);
    }
    return 0;
}

/* Invariant 4, for values v of an instance of cls. */
static int check_values(const om_object *o, const struct values *v,
                        const struct class_object *cls)
{
    bool listed[SHARED_KEYS_MAX] = { false };

    if (v->used > v->cap || v->cap > SHARED_KEYS_MAX ||
        v->used > cls->nkeys)
        return omi_check_fail("class.4", o, "values: %u used, cap %u, "
                              "%zu keys", v->used, v->cap, cls->nkeys);
    for (size_t i = 0; i < v->used; i++) {
        if (v->order[i] >= v->cap || listed[v->order[i]])
            return omi_check_fail("class.4", o, "order[%zu] = %u", i,
                                  v->order[i]);
        listed[v->order[i]] = true;
    }
    for (size_t i = 0; i < v->cap; i++)
        if (listed[i] != (values_of(v)[i] != NULL))
            return omi_check_fail("class.4", o, "value %zu and order[] "
                                  "disagree", i);
    return 0;
}

int omi_class_check_instance(const om_object *o)
{
    const struct class_object *cls;
    om_object *dict;
    struct values *v;
    int rc;

    if (!is_instance(o))
        return 0;
    cls = class_of(o);
    if (cls->base.type != &class_type || cls->base.refcnt <= 0)
        return omi_check_fail("class.1", o, "type outside a live class");
    if (cls->nslots)
        return 0;                       /* 2: no pre-header to check */
    if ((rc = check_keys(cls)) != 0)
        return rc;
    dict = inst_dict(o);
    if (dict && dict->type != &om_dict_type)
        return omi_check_fail("class.3", o, "managed word %p is no dict",
                              (void *)dict);
    v = inst_values(o);
    return v ? check_values(o, v, cls) : 0;
}
