/*
 * singleton.c - L3: None, True and False: statically allocated, immortal
 * objects (PEP 683), so that handing them out costs no refcount traffic.
 *
 * bool keeps CPython's layout, an int of 0 or 1 digit, and its size rule:
 * sys.getsizeof gives 28 for both, as CPython 3.11 on 64-bit.
 *
 * Invariants:
 *   1. The singletons are immortal and never deallocated.
 */
#include "object.h"

/* An immortal singleton's dealloc: it is never called (invariant 1). */
static void never_dealloc(om_object *o)
{
    omi_fatal("dealloc of an immortal singleton", o, "type %s",
              o->type->name);
}

static const struct om_type none_type = {
    .name = "NoneType",
    .basic_size = sizeof(om_object),
    .dealloc = never_dealloc,
};

static const struct om_type bool_type = {
    .name = "bool",
    .basic_size = sizeof(om_varobject),
    .item_size = 4,                     /* one 30-bit digit, as int */
    .dealloc = never_dealloc,
    .size_of = omi_int_sizeof,
};

struct bool_object {
    om_varobject head;
    uint32_t digit;                     /* the value, 0 or 1 */
};

static om_object none_object = { OM_IMMORTAL_REFCNT, &none_type };

static struct bool_object false_object = {
    { { OM_IMMORTAL_REFCNT, &bool_type }, 0 }, 0
};

static struct bool_object true_object = {
    { { OM_IMMORTAL_REFCNT, &bool_type }, 1 }, 1
};

om_object *om_none(void)
{
    return &none_object;
}

om_object *om_bool(bool value)
{
    return value ? &true_object.head.base : &false_object.head.base;
}
