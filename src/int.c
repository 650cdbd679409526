/*
 * int.c - L3: the int type, arbitrary precision, with CPython 3.11's
 * layout, and the small-int cache.
 *
 *   | refcnt | type | size | digit 0 | digit 1 | ...   (24 + 4n bytes)
 *
 * |size| is the number of 30-bit digits, least significant first; its
 * sign is the value's; 0 has no digit.  Values -5..256 are preallocated
 * immortal objects (CPython's _PY_NSMALLNEGINTS / _PY_NSMALLPOSINTS), so
 * om_int_from_i64(256) twice is one object and 257 twice is two.
 *
 * Invariants:
 *   1. The most significant digit is not 0 (no leading zero digit).
 *   2. A value in -5..256 made by this file is the cached object.
 */
#include <errno.h>
#include <string.h>

#include "object.h"

#define SHIFT 30
#define MASK ((uint32_t)(1u << SHIFT) - 1)
#define SMALL_NEG 5
#define SMALL_POS 257
#define MAX_DIGITS ((size_t)1 << 24)    /* 500 million bits: enough */

struct int_object {
    om_varobject head;
    uint32_t digits[];
};

struct small_int {
    om_varobject head;
    uint32_t digit;
};

static void int_dealloc(om_object *o)
{
    omi_object_free_bare(o, &om_int_type);
}

/* CPython 3.11's int.__sizeof__: 0 counts as one digit. */
size_t omi_int_sizeof(const om_object *o)
{
    ptrdiff_t n = ((const om_varobject *)o)->size;

    n = n < 0 ? -n : n;
    return sizeof(om_varobject) + (size_t)(n > 0 ? n : 1) * sizeof(uint32_t);
}

const struct om_type om_int_type = {
    .name = "int",
    .basic_size = sizeof(om_varobject),
    .item_size = sizeof(uint32_t),
    .flags = OM_TPFLAGS_PLAIN,
    .dealloc = int_dealloc,
    .size_of = omi_int_sizeof,
};

static struct small_int small[SMALL_NEG + SMALL_POS];
static bool small_ready;

/* Make the cached objects (once; the object layer is single-threaded). */
static void small_init(void)
{
    for (int v = -SMALL_NEG; v < SMALL_POS; v++) {
        struct small_int *s = &small[v + SMALL_NEG];
        s->head.base.refcnt = OM_IMMORTAL_REFCNT;
        s->head.base.type = &om_int_type;
        s->head.size = v < 0 ? -1 : v > 0;
        s->digit = (uint32_t)(v < 0 ? -v : v);
    }
    small_ready = true;
}

static om_object *small_int(int64_t v)
{
    if (!small_ready)
        small_init();
    return &small[v + SMALL_NEG].head.base;
}

static bool is_small(int64_t v)
{
    return v >= -SMALL_NEG && v < SMALL_POS;
}

static struct int_object *new_int(size_t ndigits)
{
    if (ndigits > MAX_DIGITS) {
        errno = ENOMEM;
        return NULL;
    }
    return (struct int_object *)om_new_var(&om_int_type, ndigits);
}

static size_t ndigits_of(const struct int_object *x)
{
    return (size_t)(x->head.size < 0 ? -x->head.size : x->head.size);
}

/*
 * Drop leading zero digits (invariant 1), set the sign, and return the
 * cached object instead when the value is small (invariant 2).
 */
static om_object *normalize(struct int_object *x, size_t n, bool negative)
{
    int64_t v;

    while (n > 0 && x->digits[n - 1] == 0)
        n--;
    x->head.size = negative ? -(ptrdiff_t)n : (ptrdiff_t)n;
    if (n <= 1) {
        v = n ? (int64_t)x->digits[0] : 0;
        if (negative)
            v = -v;
        if (is_small(v)) {
            om_decref(&x->head.base);
            return small_int(v);
        }
    }
    return &x->head.base;
}

om_object *om_int_from_i64(int64_t value)
{
    uint64_t mag = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    struct int_object *x;
    size_t n = 0, digits = 1;

    if (is_small(value))
        return small_int(value);
    if (mag <= MASK) {                  /* one digit, not cached */
        struct small_int *one = (struct small_int *)omi_object_alloc_bare(
            &om_int_type, sizeof(om_varobject) + sizeof(uint32_t));
        if (!one)
            return NULL;
        one->head.size = value < 0 ? -1 : 1;
        one->digit = (uint32_t)mag;
        return &one->head.base;
    }
    for (uint64_t m = mag >> SHIFT; m; m >>= SHIFT)
        digits++;                       /* exactly: 28 bytes for 30 bits */
    x = new_int(digits);
    if (!x)
        return NULL;
    for (; mag; mag >>= SHIFT)
        x->digits[n++] = (uint32_t)(mag & MASK);
    return normalize(x, n, value < 0);
}

/* ---- Parsing ---- */

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return 99;
}

/* Read the sign and a base prefix; *base becomes 2..36. */
static const char *parse_head(const char *s, int *base, bool *negative)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    *negative = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (s[0] == '0' && s[1]) {
        char p = (char)(s[1] | 0x20);
        int prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
        if (prefixed && (*base == 0 || *base == prefixed)) {
            *base = prefixed;
            return s + 2;
        }
    }
    if (*base == 0)
        *base = 10;
    return s;
}

/* x (n digits) = x * mul + add; returns the new digit count. */
static size_t mul_add(uint32_t *x, size_t n, uint32_t mul, uint32_t add)
{
    uint64_t carry = add;

    for (size_t i = 0; i < n; i++) {
        carry += (uint64_t)x[i] * mul;
        x[i] = (uint32_t)(carry & MASK);
        carry >>= SHIFT;
    }
    while (carry) {
        x[n++] = (uint32_t)(carry & MASK);
        carry >>= SHIFT;
    }
    return n;
}

/* Count the digits of s in base (underscores between digits allowed);
 * 0 when s is malformed. */
static size_t count_digits(const char *s, int base)
{
    size_t n = 0;

    for (; *s; s++) {
        if (*s == '_' && n > 0 && s[1] && s[1] != '_')
            continue;
        if (digit_value(*s) >= base) {
            while (*s == ' ' || *s == '\t' || *s == '\n')
                s++;
            return *s ? 0 : n;
        }
        n++;
    }
    return n;
}

om_object *om_int_from_string(const char *s, int base)
{
    struct int_object *x;
    size_t chars, n = 0;
    bool negative;

    if (!s || base < 0 || base == 1 || base > 36) {
        errno = EINVAL;
        return NULL;
    }
    s = parse_head(s, &base, &negative);
    chars = count_digits(s, base);
    if (chars == 0) {
        errno = EINVAL;
        return NULL;
    }
    x = new_int(chars * 6 / SHIFT + 2);   /* 6 bits cover base <= 36+ */
    if (!x)
        return NULL;
    for (; chars > 0; s++) {
        if (*s == '_')
            continue;
        n = mul_add(x->digits, n, (uint32_t)base, (uint32_t)digit_value(*s));
        chars--;
    }
    return normalize(x, n, negative);
}

/* ---- Conversions ---- */

int om_int_as_i64(const om_object *o, int64_t *out)
{
    const struct int_object *x = (const struct int_object *)o;
    uint64_t mag = 0;
    size_t n;

    if (!o || o->type != &om_int_type || !out)
        return -EINVAL;
    n = ndigits_of(x);
    if (n > 3)
        return -ERANGE;
    while (n-- > 0) {
        if (mag >> (64 - SHIFT))
            return -ERANGE;
        mag = (mag << SHIFT) | x->digits[n];
    }
    if (x->head.size < 0 ? mag > (uint64_t)INT64_MAX + 1 : mag > INT64_MAX)
        return -ERANGE;
    *out = x->head.size < 0 ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

/* Divide d (n digits, in place) by div; returns the remainder. */
static uint32_t div_small(uint32_t *d, size_t n, uint32_t div)
{
    uint64_t rem = 0;

    while (n-- > 0) {
        rem = (rem << SHIFT) | d[n];
        d[n] = (uint32_t)(rem / div);
        rem %= div;
    }
    return (uint32_t)rem;
}

/* Decimal text of x's magnitude into buf (room for 10 chars per digit),
 * written backwards from end; returns the first character. */
static char *decimal_digits(const struct int_object *x, uint32_t *tmp,
                            char *end)
{
    size_t n = ndigits_of(x);
    char *p = end;

    memcpy(tmp, x->digits, n * sizeof(uint32_t));
    do {
        uint32_t chunk = div_small(tmp, n, 1000000000u);
        while (n > 0 && tmp[n - 1] == 0)
            n--;
        for (int i = 0; i < 9 && (n > 0 || chunk > 0 || i == 0); i++) {
            *--p = (char)('0' + chunk % 10);
            chunk /= 10;
        }
    } while (n > 0);
    return p;
}

char *om_int_to_string(const om_object *o)
{
    const struct int_object *x = (const struct int_object *)o;
    size_t n, room;
    uint32_t *tmp;
    char *buf, *p;

    if (!o || o->type != &om_int_type) {
        errno = EINVAL;
        return NULL;
    }
    n = ndigits_of(x);
    room = n * 10 + 3;
    tmp = om_malloc((n ? n : 1) * sizeof(uint32_t));
    buf = om_malloc(room);
    if (!tmp || !buf) {
        om_free(tmp);
        om_free(buf);
        return NULL;
    }
    buf[room - 1] = '\0';
    p = decimal_digits(x, tmp, buf + room - 1);
    if (x->head.size < 0)
        *--p = '-';
    memmove(buf, p, (size_t)(buf + room - p));
    om_free(tmp);
    return buf;
}

/* ---- Hash and equality, for dict keys ---- */

/* CPython's int hash: the value modulo 2**61 - 1, sign kept, never -1. */
size_t omi_int_hash(const om_object *o)
{
    const struct int_object *x = (const struct int_object *)o;
    const uint64_t modulus = ((uint64_t)1 << 61) - 1;
    uint64_t h = 0;
    int64_t signed_h;

    for (size_t n = ndigits_of(x); n-- > 0;) {
        h = ((h << SHIFT) & modulus) | (h >> (61 - SHIFT));
        h += x->digits[n];
        if (h >= modulus)
            h -= modulus;
    }
    signed_h = x->head.size < 0 ? -(int64_t)h : (int64_t)h;
    return (size_t)(signed_h == -1 ? -2 : signed_h);
}

bool omi_int_equal(const om_object *a, const om_object *b)
{
    const struct int_object *x = (const struct int_object *)a;
    const struct int_object *y = (const struct int_object *)b;

    return x->head.size == y->head.size &&
           memcmp(x->digits, y->digits,
                  ndigits_of(x) * sizeof(uint32_t)) == 0;
}
