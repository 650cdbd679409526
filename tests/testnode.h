/*
 * testnode.h - a GC type for the collector and weakref tests: a node
 * holding one strong reference, with room for a weak reference list.
 * Each test file makes the om_type it needs (finalizer, legacy_del,
 * weaklist_offset) from these slots.
 */
#ifndef OM_TESTNODE_H
#define OM_TESTNODE_H

#include <stddef.h>

#include "testutil.h"

struct node {
    om_object base;
    om_object *ref;                     /* one strong reference, or NULL */
    void *weaklist;                     /* for types that take weak refs */
};

static int node_traverse(om_object *o, om_visitproc visit, void *arg)
{
    struct node *n = (struct node *)o;
    return n->ref ? visit(n->ref, arg) : 0;
}

static int node_clear(om_object *o)
{
    struct node *n = (struct node *)o;
    om_object *old = n->ref;

    n->ref = NULL;
    om_xdecref(old);
    return 0;
}

static void node_dealloc(om_object *o)
{
    node_clear(o);
    om_object_free(o);
}

/* A node type: name, finalizer, legacy_del, weaklist offset (0: none). */
#define NODE_TYPE(tname, fin, del, weak)                                    \
    {                                                                       \
        .name = tname, .basic_size = sizeof(struct node),                   \
        .flags = OM_TPFLAGS_GC, .dealloc = node_dealloc,                    \
        .traverse = node_traverse, .clear = node_clear, .finalize = fin,    \
        .legacy_del = del, .weaklist_offset = weak,                         \
    }

/* A tracked node of type t pointing at ref (a new reference to it). */
static om_object *node_new(const struct om_type *t, om_object *ref)
{
    struct node *n = (struct node *)om_new(t);

    assert_non_null(n);
    n->ref = ref;
    om_xincref(ref);
    om_gc_track(&n->base);
    return &n->base;
}

/* Point node o at ref instead. */
static void node_set(om_object *o, om_object *ref)
{
    struct node *n = (struct node *)o;
    om_object *old = n->ref;

    om_incref(ref);
    n->ref = ref;
    om_xdecref(old);
}

#endif /* OM_TESTNODE_H */
