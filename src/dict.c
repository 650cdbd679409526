/*
 * dict.c - L3: the dict type, CPython 3.11's compact combined table.
 *
 *   dict (48 bytes + GC pre-header): | refcnt | type | used | version |
 *                                    | keys* | values* (unused, NULL) |
 *   keys (MEM domain):  | refcnt | log2 size | log2 index bytes | kind |
 *                       | version | usable | nentries |   (32 bytes)
 *                       | indices: size x 1, 2, 4 or 8 bytes |
 *                       | entries: usable x {key, value} (str keys) or
 *                       |          usable x {hash, key, value}     |
 *
 * An index is EMPTY (-1), DUMMY (-2, a deleted entry) or the position of
 * an entry, with a tag of the entry's hash in the index's spare high bits
 * (an index of 2^n slots needs n bits; the rest of its 7, 15 or 31 value
 * bits hold the tag): a probe that meets another key's index compares
 * the tags and reads that key's entry and hash only when they agree.  For
 * a 1M-key dict that is 10 bits, and an insert of a new key stops reading
 * the two cache lines (entry, key object) of each key it passes.  The
 * table's size is CPython's to the byte.  Entries stay in insertion
 * order.  A table of size s holds
 * 2s/3 entries (usable); when they are used up the table is rebuilt at
 * the smallest power of two >= 3 * used, as CPython's GROWTH_RATE.  An
 * empty dict has no keys table (64 bytes, as sys.getsizeof({})).
 *
 * Invariants (checked by omi_dict_check, which om_check runs on every
 * tracked dict through the collector's lists; the tests call it on
 * theirs, tracked or not):
 *   1. used == entries with a key; nentries <= 2s/3; usable + nentries
 *      == 2s/3.
 *   2. Every entry with a key is found from its hash by probing (its
 *      index's tag is its hash's).
 */
#include <errno.h>
#include <string.h>

#include "object.h"

#define MIN_LOG2 3
#define EMPTY (-1)
#define DUMMY (-2)

enum kind { GENERAL, UNICODE_KEYS };

struct entry {
    size_t hash;
    om_object *key;
    om_object *value;
};

struct ukeys_entry {
    om_object *key;
    om_object *value;
};

struct keys {
    ptrdiff_t refcnt;           /* 1: not shared */
    uint8_t log2_size;
    uint8_t log2_index_bytes;
    uint8_t kind;               /* enum kind */
    uint8_t unused;
    uint32_t version;
    ptrdiff_t usable;           /* entries that can still be added */
    ptrdiff_t nentries;         /* entries used, deleted ones included */
    char indices[];
};

_Static_assert(sizeof(struct keys) == 32, "CPython's PyDictKeysObject");

struct dict_object {
    om_object base;
    ptrdiff_t used;
    uint64_t version;
    struct keys *keys;          /* NULL: empty */
    void *values;               /* split tables: not used, NULL */
};

static void dict_dealloc(om_object *o);
static int dict_traverse(om_object *o, om_visitproc visit, void *arg);
static int dict_clear(om_object *o);
static size_t dict_sizeof(const om_object *o);

static struct om_freelist dict_freelist =
    OMI_FREELIST_INIT("dict", 16 + sizeof(struct dict_object), 80);

const struct om_type om_dict_type = {
    .name = "dict",
    .basic_size = sizeof(struct dict_object),
    .flags = OM_TPFLAGS_GC,
    .dealloc = dict_dealloc,
    .traverse = dict_traverse,
    .clear = dict_clear,
    .freelist = &dict_freelist,
    .size_of = dict_sizeof,
};

static struct dict_object *as_dict(const om_object *o)
{
    return (struct dict_object *)(uintptr_t)o;
}

/* ---- The keys table ---- */

static size_t table_size(const struct keys *k)
{
    return (size_t)1 << k->log2_size;
}

static size_t usable_for(size_t size)
{
    return (size << 1) / 3;
}

static size_t entry_bytes(const struct keys *k)
{
    return k->kind == UNICODE_KEYS ? sizeof(struct ukeys_entry)
                                   : sizeof(struct entry);
}

static size_t keys_bytes(const struct keys *k)
{
    return sizeof(struct keys) + ((size_t)1 << k->log2_index_bytes) +
           usable_for(table_size(k)) * entry_bytes(k);
}

static void *entries_of(const struct keys *k)
{
    return (char *)(uintptr_t)k->indices + ((size_t)1 << k->log2_index_bytes);
}

/* Index i as stored: EMPTY, DUMMY, or an entry's position and tag. */
static ptrdiff_t get_index(const struct keys *k, size_t i)
{
    switch (k->log2_size <= 7 ? 0 : k->log2_size <= 15 ? 1 : 2) {
    case 0:
        return ((const int8_t *)k->indices)[i];
    case 1:
        return ((const int16_t *)(const void *)k->indices)[i];
    default:
        return ((const int32_t *)(const void *)k->indices)[i];
    }
}

static void set_index(struct keys *k, size_t i, ptrdiff_t ix)
{
    switch (k->log2_size <= 7 ? 0 : k->log2_size <= 15 ? 1 : 2) {
    case 0:
        ((int8_t *)k->indices)[i] = (int8_t)ix;
        break;
    case 1:
        ((int16_t *)(void *)k->indices)[i] = (int16_t)ix;
        break;
    default:
        ((int32_t *)(void *)k->indices)[i] = (int32_t)ix;
        break;
    }
}

/* The tag of hash in k's indices: its spare bits, from a multiply that
 * mixes every bit of the hash in (an int's hash is its value). */
static size_t hash_tag(const struct keys *k, size_t hash)
{
    unsigned bits = (8u << (k->log2_index_bytes - k->log2_size)) - 1 -
                    k->log2_size;

    return bits ? (size_t)((uint64_t)hash * 0x9e3779b97f4a7c15u >>
                           (64 - bits))
                : 0;
}

/* An entry's position with its hash's tag, as an index stores it. */
static ptrdiff_t tagged(const struct keys *k, size_t ix, size_t hash)
{
    return (ptrdiff_t)(ix | hash_tag(k, hash) << k->log2_size);
}

static struct keys *new_keys(unsigned log2_size, enum kind kind)
{
    unsigned log2_ib = log2_size <= 7 ? log2_size : log2_size <= 15 ?
                       log2_size + 1 : log2_size + 2;
    struct keys proto = { 1, (uint8_t)log2_size, (uint8_t)log2_ib,
                          (uint8_t)kind, 0, 0, 0, 0 };
    struct keys *k;

    if (log2_size > 30) {
        errno = ENOMEM;
        return NULL;
    }
    k = om_malloc(keys_bytes(&proto));
    if (!k)
        return NULL;
    *k = proto;
    k->usable = (ptrdiff_t)usable_for((size_t)1 << log2_size);
    memset(k->indices, 0xff, (size_t)1 << log2_ib);     /* all EMPTY */
    memset(entries_of(k), 0, (size_t)k->usable * entry_bytes(k));
    return k;
}

/* Entry i's key, value and hash, whatever the kind. */
static om_object **entry_key(struct keys *k, size_t i)
{
    return k->kind == UNICODE_KEYS ?
           &((struct ukeys_entry *)entries_of(k))[i].key :
           &((struct entry *)entries_of(k))[i].key;
}

static om_object **entry_value(struct keys *k, size_t i)
{
    return k->kind == UNICODE_KEYS ?
           &((struct ukeys_entry *)entries_of(k))[i].value :
           &((struct entry *)entries_of(k))[i].value;
}

/* ---- Keys: hash and equality ---- */

static size_t key_hash(om_object *key)
{
    if (key->type == &om_str_type)
        return omi_str_hash(key);
    if (key->type == &om_int_type)
        return omi_int_hash(key);
    return (size_t)(uintptr_t)key >> 4;         /* identity */
}

static bool keys_equal(om_object *a, om_object *b)
{
    if (a == b)
        return true;
    if (a->type != b->type)
        return false;
    if (a->type == &om_str_type)
        return omi_str_equal(a, b);
    if (a->type == &om_int_type)
        return omi_int_equal(a, b);
    return false;
}

static size_t stored_hash(struct keys *k, size_t ix)
{
    return k->kind == UNICODE_KEYS ? omi_str_hash(*entry_key(k, ix))
                                   : ((struct entry *)entries_of(k))[ix].hash;
}

/*
 * CPython's probing: slot (5 * slot + perturb + 1), perturb shifting the
 * hash's high bits in.  Returns the entry index of key, or EMPTY with
 * *slot the first free slot met (an EMPTY or DUMMY index).
 */
static ptrdiff_t lookup(struct keys *k, om_object *key, size_t hash,
                        size_t *slot)
{
    size_t mask = table_size(k) - 1, i = hash & mask, perturb = hash;
    size_t tag = hash_tag(k, hash);
    bool have_free = false;

    for (;;) {
        ptrdiff_t ix = get_index(k, i);
        if (ix == EMPTY) {
            if (!have_free)
                *slot = i;
            return EMPTY;
        }
        if (ix == DUMMY) {
            if (!have_free)
                *slot = i;
            have_free = true;
        } else if ((size_t)ix >> k->log2_size == tag) {
            om_object *other;

            ix &= (ptrdiff_t)mask;
            other = *entry_key(k, (size_t)ix);
            if (other == key || (stored_hash(k, (size_t)ix) == hash &&
                                 keys_equal(other, key))) {
                *slot = i;
                return ix;
            }
        }
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
}

/* The first EMPTY slot on hash's probe path in k, a table with no DUMMY
 * slots and none of the keys going in: no key is looked at. */
static size_t find_empty(const struct keys *k, size_t hash)
{
    size_t mask = table_size(k) - 1, i = hash & mask, perturb = hash;

    while (get_index(k, i) != EMPTY) {
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
    return i;
}

/* Append an entry (key and value already referenced) at a free slot. */
static void append_entry(struct keys *k, size_t slot, size_t hash,
                         om_object *key, om_object *value)
{
    size_t ix = (size_t)k->nentries;

    if (k->kind == GENERAL)
        ((struct entry *)entries_of(k))[ix].hash = hash;
    *entry_key(k, ix) = key;
    *entry_value(k, ix) = value;
    set_index(k, slot, tagged(k, ix, hash));
    k->nentries++;
    k->usable--;
}

/* The smallest log2 size holding n * 3 slots, at least MIN_LOG2. */
static unsigned log2_for(size_t n)
{
    unsigned log2 = MIN_LOG2;

    while (((size_t)1 << log2) < n * 3)
        log2++;
    return log2;
}

/* Where index i of k lies (to prefetch it). */
static const void *index_at(const struct keys *k, size_t i)
{
    return k->indices + (i << (k->log2_index_bytes - k->log2_size));
}

/*
 * Rebuild the table at the growth size and the given kind; the live
 * entries move over in order.  A str key's hash is in the key object,
 * and the new index it goes to is anywhere in the table: both are cache
 * misses in a big dict, so the entries go over in runs of REBUILD_RUN,
 * the next run's keys and this run's new indices prefetched first.
 */
#define REBUILD_RUN 16

static int rebuild(struct dict_object *d, enum kind kind)
{
    struct keys *old = d->keys, *k = new_keys(log2_for((size_t)d->used),
                                              kind);
    size_t n = old ? (size_t)old->nentries : 0, mask, hash[REBUILD_RUN];

    if (!k)
        return -ENOMEM;
    mask = table_size(k) - 1;
    for (size_t run = 0; run < n; run += REBUILD_RUN) {
        size_t len = n - run < REBUILD_RUN ? n - run : REBUILD_RUN;

        for (size_t j = run + REBUILD_RUN; j < run + 2 * REBUILD_RUN &&
                                           j < n; j++)
            __builtin_prefetch(*entry_key(old, j));
        for (size_t j = 0; j < len; j++) {
            if (!*entry_key(old, run + j))
                continue;
            hash[j] = stored_hash(old, run + j);
            __builtin_prefetch(index_at(k, hash[j] & mask), 1);
        }
        for (size_t j = 0; j < len; j++) {
            om_object *key = *entry_key(old, run + j);
            if (key)
                append_entry(k, find_empty(k, hash[j]), hash[j], key,
                             *entry_value(old, run + j));
        }
    }
    om_free(old);
    d->keys = k;
    return 0;
}

/* ---- The dict object ---- */

static size_t dict_sizeof(const om_object *o)
{
    const struct keys *k = as_dict(o)->keys;

    return sizeof(struct dict_object) + (k ? keys_bytes(k) : 0);
}

static bool is_dict(const om_object *o)
{
    return o && o->type == &om_dict_type;
}

om_object *om_dict_new(void)
{
    return om_new(&om_dict_type);
}

size_t om_dict_len(const om_object *o)
{
    return is_dict(o) ? (size_t)as_dict(o)->used : 0;
}

/* Make room for one more entry with key: a first table, a rebuild when
 * it is full, or a general table for a key that is not a str. */
static int make_room(struct dict_object *d, om_object *key)
{
    bool str_key = key->type == &om_str_type;

    if (!d->keys) {
        d->keys = new_keys(MIN_LOG2, str_key ? UNICODE_KEYS : GENERAL);
        return d->keys ? 0 : -ENOMEM;
    }
    if (d->keys->kind == UNICODE_KEYS && !str_key)
        return rebuild(d, GENERAL);
    if (d->keys->usable <= 0)
        return rebuild(d, (enum kind)d->keys->kind);
    return 0;
}

/* CPython's rule: a dict is tracked from the first key or value that
 * may be part of a cycle. */
static void maintain_tracking(om_object *d, om_object *key, om_object *value)
{
    omi_gc_track_for(d, key);
    omi_gc_track_for(d, value);
}

int om_dict_set(om_object *o, om_object *key, om_object *value)
{
    struct dict_object *d = as_dict(o);
    struct keys *looked;
    size_t hash, slot;
    ptrdiff_t ix;

    if (!is_dict(o) || !key || !value)
        return -EINVAL;
    maintain_tracking(o, key, value);
    hash = key_hash(key);
    looked = d->keys;
    if (looked) {
        ix = lookup(looked, key, hash, &slot);
        if (ix >= 0) {                  /* replace the value */
            om_object *old = *entry_value(d->keys, (size_t)ix);
            om_incref(value);
            *entry_value(d->keys, (size_t)ix) = value;
            om_decref(old);
            return 0;
        }
    }
    if (make_room(d, key) != 0)
        return -ENOMEM;
    if (d->keys != looked)              /* new: slot is of the old one */
        (void)lookup(d->keys, key, hash, &slot);
    om_incref(key);
    om_incref(value);
    append_entry(d->keys, slot, hash, key, value);
    d->used++;
    d->version++;
    return 0;
}

om_object *om_dict_get(const om_object *o, om_object *key)
{
    struct dict_object *d = as_dict(o);
    size_t slot;
    ptrdiff_t ix;

    if (!is_dict(o) || !key) {
        errno = EINVAL;
        return NULL;
    }
    ix = d->keys ? lookup(d->keys, key, key_hash(key), &slot) : EMPTY;
    if (ix < 0) {
        errno = ENOENT;
        return NULL;
    }
    return *entry_value(d->keys, (size_t)ix);
}

int om_dict_del(om_object *o, om_object *key)
{
    struct dict_object *d = as_dict(o);
    om_object *old_key, *old_value;
    size_t slot;
    ptrdiff_t ix;

    if (!is_dict(o) || !key)
        return -EINVAL;
    ix = d->keys ? lookup(d->keys, key, key_hash(key), &slot) : EMPTY;
    if (ix < 0)
        return -ENOENT;
    set_index(d->keys, slot, DUMMY);
    old_key = *entry_key(d->keys, (size_t)ix);
    old_value = *entry_value(d->keys, (size_t)ix);
    *entry_key(d->keys, (size_t)ix) = NULL;
    *entry_value(d->keys, (size_t)ix) = NULL;
    d->used--;
    d->version++;
    om_decref(old_key);
    om_decref(old_value);
    return 0;
}

static int dict_traverse(om_object *o, om_visitproc visit, void *arg)
{
    struct keys *k = as_dict(o)->keys;
    int rc;

    for (size_t i = 0; k && i < (size_t)k->nentries; i++) {
        if (!*entry_key(k, i))
            continue;
        if ((rc = visit(*entry_key(k, i), arg)) != 0 ||
            (rc = visit(*entry_value(k, i), arg)) != 0)
            return rc;
    }
    return 0;
}

static int dict_clear(om_object *o)
{
    struct dict_object *d = as_dict(o);
    struct keys *k = d->keys;
    size_t n = k ? (size_t)k->nentries : 0, stride;

    d->keys = NULL;
    d->used = 0;
    stride = k ? entry_bytes(k) / sizeof(om_object *) : 0;
    for (size_t i = 0; i < n; i++) {
        omi_drop_prefetch(entry_key(k, 0), stride, i, n);
        omi_drop_prefetch(entry_value(k, 0), stride, i, n);
        om_xdecref(*entry_key(k, i));
        om_xdecref(*entry_value(k, i));
    }
    om_free(k);
    return 0;
}

static void dict_dealloc(om_object *o)
{
    dict_clear(o);
    om_object_free(o);
}

/* Invariants 1 and 2 for one dict (om_check: for every tracked one). */
int omi_dict_check(const om_object *o)
{
    struct keys *k = as_dict(o)->keys;
    size_t live = 0, slot;

    if (!k)
        return as_dict(o)->used == 0 ? 0 :
               omi_check_fail("dict.1", o, "used without a table");
    for (size_t i = 0; i < (size_t)k->nentries; i++) {
        om_object *key = *entry_key(k, i);
        if (!key)
            continue;
        live++;
        if (lookup(k, key, stored_hash(k, i), &slot) != (ptrdiff_t)i)
            return omi_check_fail("dict.2", o, "entry %zu not found", i);
    }
    if (live != (size_t)as_dict(o)->used ||
        (size_t)(k->usable + k->nentries) != usable_for(table_size(k)))
        return omi_check_fail("dict.1", o, "used %zd, live %zu",
                              as_dict(o)->used, live);
    return 0;
}

/* Step through d's entries in insertion order: *pos starts at 0; false
 * after the last.  Borrowed references. */
bool omi_dict_next(const om_object *o, size_t *pos, om_object **key,
                   om_object **value)
{
    struct keys *k = as_dict(o)->keys;

    while (k && *pos < (size_t)k->nentries) {
        size_t i = (*pos)++;
        if (*entry_key(k, i)) {
            *key = *entry_key(k, i);
            *value = *entry_value(k, i);
            return true;
        }
    }
    return false;
}
