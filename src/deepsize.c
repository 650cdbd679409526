/*
 * deepsize.c - L3: om_deep_sizeof, the articles' deep_getsizeof: the size
 * of an object and of everything it reaches, each object once.
 *
 * An instance's attribute values (class.c) count with the instance: they
 * are its memory, though sys.getsizeof, and so om_sizeof, leaves them out.
 *
 * The walk uses its own stack and a set of the objects seen (open
 * addressing on the address), both in the RAW domain, so that a chain of
 * a million nested containers takes no deep C stack and the walk does
 * not disturb the pools it measures.
 *
 * Invariants:
 *   1. Every object is counted at most once.
 */
#include <errno.h>
#include <string.h>

#include "object.h"

struct walk {
    om_object **stack;
    size_t depth, stack_cap;
    om_object **seen;           /* NULL: free slot */
    size_t nseen, seen_cap;     /* seen_cap a power of two */
    bool failed;                /* out of memory */
};

static size_t slot_of(const struct walk *w, const om_object *o)
{
    size_t mask = w->seen_cap - 1, i = ((uintptr_t)o >> 4) * 0x9E3779B9u;

    for (i &= mask; w->seen[i] && w->seen[i] != o; i = (i + 1) & mask)
        ;
    return i;
}

static bool grow_seen(struct walk *w)
{
    struct walk bigger = *w;

    bigger.seen_cap = w->seen_cap ? w->seen_cap * 2 : 1024;
    bigger.seen = om_raw_calloc(bigger.seen_cap, sizeof(om_object *));
    if (!bigger.seen)
        return false;
    for (size_t i = 0; i < w->seen_cap; i++)
        if (w->seen[i])
            bigger.seen[slot_of(&bigger, w->seen[i])] = w->seen[i];
    om_raw_free(w->seen);
    w->seen = bigger.seen;
    w->seen_cap = bigger.seen_cap;
    return true;
}

/* Mark o seen; false when it was already (or memory ran out). */
static bool first_visit(struct walk *w, om_object *o)
{
    size_t i;

    if ((w->nseen + 1) * 2 > w->seen_cap && !grow_seen(w)) {
        w->failed = true;
        return false;
    }
    i = slot_of(w, o);
    if (w->seen[i])
        return false;
    w->seen[i] = o;
    w->nseen++;
    return true;
}

/* The visitproc: push a child to visit later. */
static int push(om_object *child, void *arg)
{
    struct walk *w = arg;

    if (w->depth == w->stack_cap) {
        size_t cap = w->stack_cap ? w->stack_cap * 2 : 256;
        om_object **stack = om_raw_realloc(w->stack, cap * sizeof(*stack));
        if (!stack) {
            w->failed = true;
            return -ENOMEM;
        }
        w->stack = stack;
        w->stack_cap = cap;
    }
    w->stack[w->depth++] = child;
    return 0;
}

size_t om_deep_sizeof(om_object *o)
{
    struct walk w;
    size_t total = 0;

    memset(&w, 0, sizeof(w));
    if (!o)
        return 0;
    push(o, &w);
    while (w.depth > 0 && !w.failed) {
        om_object *x = w.stack[--w.depth];
        if (!first_visit(&w, x))
            continue;
        total += om_sizeof(x) + omi_class_values_size(x);
        if (x->type->traverse)
            x->type->traverse(x, push, &w);
    }
    om_raw_free(w.stack);
    om_raw_free(w.seen);
    if (w.failed) {
        errno = ENOMEM;
        return (size_t)-1;
    }
    return total;
}
