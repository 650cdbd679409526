/*
 * class.c - L3: classes whose instances keep their attributes in a dict
 * or in slots, as Python classes without and with __slots__.
 *
 *   dict instance:  | dict* | values | gc next | gc prev | refcnt | type |
 *                   | weakref list |            (56 bytes, as CPython 3.11)
 *   slots instance: | gc next | gc prev | refcnt | type | slot 0 | ... |
 *
 * A class is an object holding the om_type of its instances, its name
 * and its slot names (interned).  Each instance holds a reference to its
 * class, so a class lives as long as its instances.
 *
 * Invariants:
 *   1. An instance's type is the om_type inside a live class object.
 *   2. A slots instance has no dict; a dict instance's dict, once made,
 *      is a dict.
 */
#include <errno.h>
#include <string.h>

#include "object.h"

struct class_object {
    om_object base;
    struct om_type type;        /* the instances' type */
    char *name;                 /* owned copy, RAW domain */
    size_t nslots;
    om_object **slot_names;     /* interned str, RAW domain */
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

static om_object **slots_of(om_object *o)
{
    return (om_object **)(o + 1);
}

/* ---- Instances ---- */

static int instance_traverse(om_object *o, om_visitproc visit, void *arg)
{
    struct class_object *cls = class_of(o);
    int rc;

    if (cls->type.flags & OM_TPFLAGS_MANAGED_DICT)
        return *omi_object_dict_ptr(o) ?
               visit(*omi_object_dict_ptr(o), arg) : 0;
    for (size_t i = 0; i < cls->nslots; i++)
        if (slots_of(o)[i] && (rc = visit(slots_of(o)[i], arg)) != 0)
            return rc;
    return 0;
}

static int instance_clear(om_object *o)
{
    struct class_object *cls = class_of(o);
    om_object *old;

    if (cls->type.flags & OM_TPFLAGS_MANAGED_DICT) {
        old = *omi_object_dict_ptr(o);
        *omi_object_dict_ptr(o) = NULL;
        om_xdecref(old);
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

/* ---- Classes ---- */

static void class_dealloc(om_object *o)
{
    struct class_object *cls = (struct class_object *)o;

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

    if (!name || (nslots && !slot_names) || nslots > 4096) {
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

om_object *om_getattr(om_object *o, const char *name)
{
    om_object *key, *value = NULL;
    ptrdiff_t i;

    if (!is_instance(o) || !name) {
        errno = EINVAL;
        return NULL;
    }
    if (class_of(o)->nslots) {
        i = slot_index(class_of(o), name);
        value = i < 0 ? NULL : slots_of(o)[i];
    } else if (*omi_object_dict_ptr(o) && (key = om_str_literal(name))) {
        value = om_dict_get(*omi_object_dict_ptr(o), key);
        om_decref(key);
    }
    if (!value) {
        errno = ENOENT;
        return NULL;
    }
    om_incref(value);
    return value;
}

static int set_in_dict(om_object *o, const char *name, om_object *value)
{
    om_object **dict = omi_object_dict_ptr(o), *key;
    int rc;

    if (!*dict && !(*dict = om_dict_new()))
        return -ENOMEM;
    key = om_str_literal(name);
    if (!key)
        return -ENOMEM;
    rc = om_dict_set(*dict, key, value);
    om_decref(key);
    return rc;
}

int om_setattr(om_object *o, const char *name, om_object *value)
{
    ptrdiff_t i;
    om_object *old;

    if (!is_instance(o) || !name || !value)
        return -EINVAL;
    if (!class_of(o)->nslots)
        return set_in_dict(o, name, value);
    i = slot_index(class_of(o), name);
    if (i < 0)
        return -ENOENT;
    old = slots_of(o)[i];
    om_incref(value);
    slots_of(o)[i] = value;
    om_xdecref(old);
    return 0;
}

/* The name of class object o, or NULL when o is not a class. */
const char *omi_class_name(const om_object *o)
{
    return o && o->type == &class_type ?
           ((const struct class_object *)o)->name : NULL;
}
