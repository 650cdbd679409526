/*
 * str.c - L3: the str type and interning.
 *
 *   | refcnt | type | length | hash | state | nbytes | bytes... | NUL |
 *   +------------- 48 bytes (CPython 3.11's PyASCIIObject) -+
 *
 * length counts code points, nbytes the UTF-8 bytes (equal for ASCII);
 * hash is -1 until computed (FNV-1a, 64-bit).  state holds the interning
 * state, as CPython's: 0 not interned, 1 interned and mortal, 2 interned
 * and immortal.
 *
 * The interned strings sit in one open-addressing table (linear probing,
 * deletion by backward shift) in the RAW domain (bookkeeping, outside the
 * pools that leak checks count); the table's references
 * are not counted, as CPython's, so a mortal interned string dies when
 * its last user drops it and leaves the table in its dealloc.
 *
 * Invariants (checked by omi_str_check):
 *   1. Every table entry is a live str with state 1 or 2 whose hash is
 *      its bytes' (a lookup hashes the text), reachable from its home
 *      slot; no two entries are equal.
 *   2. count == entries in the table <= 2/3 of its size.
 */
#include <errno.h>
#include <string.h>

#include "object.h"

enum { NOT_INTERNED, INTERNED_MORTAL, INTERNED_IMMORTAL };

struct str_object {
    om_object base;
    ptrdiff_t length;           /* code points */
    ptrdiff_t hash;             /* -1: not computed yet */
    uint32_t state;             /* NOT_INTERNED, INTERNED_* */
    uint32_t ascii;             /* 1 when every byte is < 128 */
    size_t nbytes;              /* UTF-8 bytes, NUL excluded */
    char data[];
};

_Static_assert(sizeof(struct str_object) == 48, "CPython's ASCII header");

static void str_dealloc(om_object *o);
static size_t str_sizeof(const om_object *o);

const struct om_type om_str_type = {
    .name = "str",
    .basic_size = sizeof(struct str_object),
    .flags = OM_TPFLAGS_PLAIN,
    .dealloc = str_dealloc,
    .size_of = str_sizeof,
};

static struct {
    struct str_object **slots;  /* NULL: empty */
    size_t size;                /* slots, a power of two */
    size_t count;               /* entries */
} table;

static struct str_object *as_str(const om_object *o)
{
    return (struct str_object *)(uintptr_t)o;
}

static size_t str_sizeof(const om_object *o)
{
    return sizeof(struct str_object) + as_str(o)->nbytes + 1;
}

/* ---- Building ---- */

/* Bytes after a UTF-8 lead byte c, or -1 when c cannot lead. */
static int continuation_bytes(unsigned char c)
{
    if (c < 0x80)
        return 0;
    if ((c & 0xE0) == 0xC0)
        return 1;
    if ((c & 0xF0) == 0xE0)
        return 2;
    if ((c & 0xF8) == 0xF0)
        return 3;
    return -1;
}

/* Code points in UTF-8 text, or -1 when it is not well-formed UTF-8
 * (RFC 3629, as Python's decoder: no overlong form, no surrogate,
 * nothing above U+10FFFF). */
static ptrdiff_t utf8_length(const unsigned char *s, size_t n, bool *ascii)
{
    static const uint32_t lowest[4] = { 0, 0x80, 0x800, 0x10000 };
    ptrdiff_t count = 0;
    size_t i = 0;

    *ascii = true;
    while (i < n) {
        int more = continuation_bytes(s[i]);
        uint32_t c;

        if (more < 0 || (size_t)more >= n - i)
            return -1;
        c = s[i] & (0x7Fu >> (more + 1));
        for (int k = 1; k <= more; k++) {
            if ((s[i + (size_t)k] & 0xC0) != 0x80)
                return -1;
            c = c << 6 | (s[i + (size_t)k] & 0x3F);
        }
        if (more && (c < lowest[more] || c > 0x10FFFF ||
                     (c >= 0xD800 && c <= 0xDFFF)))
            return -1;
        if (more)
            *ascii = false;
        i += (size_t)more + 1;
        count++;
    }
    return count;
}

static struct str_object *new_str(const char *s, size_t n)
{
    struct str_object *str;
    ptrdiff_t length;
    bool ascii;

    length = utf8_length((const unsigned char *)s, n, &ascii);
    if (length < 0) {
        errno = EINVAL;
        return NULL;
    }
    str = (struct str_object *)omi_object_new_extra(&om_str_type, n + 1);
    if (!str)
        return NULL;
    memcpy(str->data, s, n);
    str->data[n] = '\0';
    str->length = length;
    str->nbytes = n;
    str->hash = -1;
    str->ascii = ascii;
    return str;
}

static om_object *intern(const char *s, size_t n, unsigned state);

om_object *om_str_from_utf8(const char *s, size_t len)
{
    struct str_object *str;

    if (!s) {
        errno = EINVAL;
        return NULL;
    }
    if (len == 0)                       /* the empty string: one, immortal */
        return intern("", 0, INTERNED_IMMORTAL);
    str = new_str(s, len);
    return str ? &str->base : NULL;
}

const char *om_str_utf8(const om_object *o)
{
    return o && o->type == &om_str_type ? as_str(o)->data : NULL;
}

size_t om_str_len(const om_object *o)
{
    return o && o->type == &om_str_type ? (size_t)as_str(o)->length : 0;
}

bool om_str_is_interned(const om_object *o)
{
    return o && o->type == &om_str_type && as_str(o)->state != NOT_INTERNED;
}

/* FNV-1a over the bytes; never -1 (which marks "not computed"). */
static size_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (ptrdiff_t)h == -1 ? (size_t)-2 : (size_t)h;
}

static size_t str_hash(struct str_object *str)
{
    if (str->hash == -1)
        str->hash = (ptrdiff_t)hash_bytes(str->data, str->nbytes);
    return (size_t)str->hash;
}

static bool str_equal(const struct str_object *a, const char *s, size_t n)
{
    return a->nbytes == n && memcmp(a->data, s, n) == 0;
}

size_t omi_str_hash(om_object *o)
{
    return str_hash(as_str(o));
}

bool omi_str_equal(const om_object *a, const om_object *b)
{
    return str_equal(as_str(a), as_str(b)->data, as_str(b)->nbytes);
}

size_t omi_str_nbytes(const om_object *o)
{
    return as_str(o)->nbytes;
}

/* ---- The intern table ---- */

/* The slot holding the string equal to s, or the empty slot where it
 * would go. */
static size_t find_slot(const char *s, size_t n, size_t hash)
{
    size_t mask = table.size - 1, i = hash & mask;

    while (table.slots[i] && !str_equal(table.slots[i], s, n))
        i = (i + 1) & mask;
    return i;
}

static int grow_table(void)
{
    size_t old = table.size, size = old ? old * 2 : 64;
    struct str_object **old_slots = table.slots;
    struct str_object **slots = om_raw_calloc(size, sizeof(*slots));

    if (!slots)
        return -ENOMEM;
    table.slots = slots;
    table.size = size;
    for (size_t i = 0; i < old; i++) {
        struct str_object *str = old_slots[i];
        if (str)
            table.slots[find_slot(str->data, str->nbytes,
                                  str_hash(str))] = str;
    }
    om_raw_free(old_slots);
    return 0;
}

/* Put str (not interned, not equal to any entry) in the table. */
static int table_add(struct str_object *str, unsigned state)
{
    if ((table.count + 1) * 3 > table.size * 2 && grow_table() != 0)
        return -ENOMEM;
    table.slots[find_slot(str->data, str->nbytes, str_hash(str))] = str;
    table.count++;
    str->state = state;
    return 0;
}

/* Take str out of the table; later entries move back (linear probing's
 * deletion, which needs no tombstone). */
static void table_remove(struct str_object *str)
{
    size_t mask = table.size - 1;
    size_t i = find_slot(str->data, str->nbytes, str_hash(str));
    size_t j = i;

    OM_ASSERT(table.slots[i] == str);
    table.slots[i] = NULL;
    table.count--;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (!table.slots[j])
            break;
        home = str_hash(table.slots[j]) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            table.slots[i] = table.slots[j];
            table.slots[j] = NULL;
            i = j;
        }
    }
}

/* The interned string equal to s[0..n), or NULL. */
static struct str_object *table_lookup(const char *s, size_t n)
{
    if (table.size == 0)
        return NULL;
    return table.slots[find_slot(s, n, hash_bytes(s, n))];
}

static void str_dealloc(om_object *o)
{
    if (as_str(o)->state == INTERNED_MORTAL)
        table_remove(as_str(o));
    om_object_free(o);
}

/* ---- Interning ---- */

/* The interned string equal to s[0..n) with at least the given state, a
 * new reference; made if needed. */
static om_object *intern(const char *s, size_t n, unsigned state)
{
    struct str_object *str = table_lookup(s, n);

    if (str) {
        if (state == INTERNED_IMMORTAL && str->state != INTERNED_IMMORTAL) {
            str->state = INTERNED_IMMORTAL;
            om_set_immortal(&str->base);
        }
        om_incref(&str->base);
        return &str->base;
    }
    str = new_str(s, n);
    if (!str)
        return NULL;
    if (table_add(str, state) != 0) {
        om_decref(&str->base);
        errno = ENOMEM;
        return NULL;
    }
    if (state == INTERNED_IMMORTAL)
        om_set_immortal(&str->base);
    return &str->base;
}

om_object *om_intern(const char *s)
{
    if (!s) {
        errno = EINVAL;
        return NULL;
    }
    return intern(s, strlen(s), INTERNED_MORTAL);
}

void om_str_intern(om_object **p)
{
    struct str_object *str, *found;

    if (!p || !*p || (*p)->type != &om_str_type ||
        as_str(*p)->state != NOT_INTERNED)
        return;
    str = as_str(*p);
    found = table_lookup(str->data, str->nbytes);
    if (found) {
        om_incref(&found->base);
        om_decref(*p);
        *p = &found->base;
        return;
    }
    (void)table_add(str, INTERNED_MORTAL);  /* no memory: *p stays as is */
}

/* Text a compiler would intern: letters, digits and underscores. */
static bool identifier_like(const char *s)
{
    for (; *s; s++)
        if (!(*s == '_' || (*s >= '0' && *s <= '9') ||
              ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z')))
            return false;
    return true;
}

om_object *om_str_literal(const char *s)
{
    if (!s) {
        errno = EINVAL;
        return NULL;
    }
    if (identifier_like(s))
        return intern(s, strlen(s), INTERNED_IMMORTAL);
    return om_str_from_utf8(s, strlen(s));
}

int omi_str_check(void)
{
    size_t n = 0;

    for (size_t i = 0; i < table.size; i++) {
        struct str_object *str = table.slots[i];
        if (!str)
            continue;
        n++;
        if (str->base.type != &om_str_type ||
            (str->state != INTERNED_MORTAL &&
             str->state != INTERNED_IMMORTAL) ||
            str_hash(str) != hash_bytes(str->data, str->nbytes) ||
            find_slot(str->data, str->nbytes, str_hash(str)) != i)
            return omi_check_fail("str.1", str, "bad intern table entry");
    }
    if (n != table.count || table.count * 3 > table.size * 2)
        return omi_check_fail("str.2", &table, "%zu entries, count %zu, "
                              "size %zu", n, table.count, table.size);
    return 0;
}
