/*
 * float.c - L3: the float type: a double in a 24-byte object, with
 * CPython's free list of up to 100 floats.
 *
 * Invariants:
 *   1. A float's value never changes after it is made.
 */
#include <errno.h>

#include "object.h"

struct float_object {
    om_object base;
    double value;
};

static struct om_freelist float_freelist =
    OMI_FREELIST_INIT("float", sizeof(struct float_object), 100);

static void float_dealloc(om_object *o)
{
    if (!omi_object_release(o, &om_float_type, &float_freelist))
        om_object_free(o);
}

const struct om_type om_float_type = {
    .name = "float",
    .basic_size = sizeof(struct float_object),
    .flags = OM_TPFLAGS_PLAIN,
    .dealloc = float_dealloc,
    .freelist = &float_freelist,
};

om_object *om_float_from_double(double value)
{
    om_object *o = omi_object_reuse(&om_float_type, &float_freelist);

    if (!o)
        o = om_new(&om_float_type);

    if (o)
        ((struct float_object *)o)->value = value;
    return o;
}

/* The value of a float; -1.0 with errno = EINVAL for another type. */
double om_float_as_double(const om_object *o)
{
    if (!o || o->type != &om_float_type) {
        errno = EINVAL;
        return -1.0;
    }
    return ((const struct float_object *)o)->value;
}
