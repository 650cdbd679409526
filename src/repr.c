/*
 * repr.c - L3: om_repr, Python's repr() for the core types, for the tour
 * and for error messages.
 *
 * The text is built in a buffer from om_malloc, container by container,
 * recursing into items; a stack of the containers being printed catches
 * self-reference (shown as [...], as Python's Py_ReprEnter), and a depth
 * bound stands in for Python's recursion limit.
 *
 * Invariants:
 *   1. The buffer's text is NUL-terminated between appends.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "object.h"

#define MAX_DEPTH 500

struct out {
    char *text;
    size_t len, cap;
    bool failed;                /* out of memory or too deep */
    int err;
    const om_object *open[MAX_DEPTH];   /* containers being printed */
    size_t depth;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *text = om_realloc(o->text, cap);
        if (!text) {
            o->failed = true;
            o->err = ENOMEM;
            return;
        }
        o->text = text;
        o->cap = cap;
    }
    memcpy(o->text + o->len, s, n);
    o->len += n;
    o->text[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void repr_into(struct out *o, om_object *x);

/* The shortest digits of v (no dot) that read back as v, and the decimal
 * exponent of the first one; v finite and not negative. */
static void shortest_digits(double v, char *digits, int *exp10)
{
    char buf[40];
    size_t n = 0;

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    for (const char *c = buf; *c && *c != 'e'; c++)
        if (*c != '.')
            digits[n++] = *c;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    *exp10 = atoi(strchr(buf, 'e') + 1);
}

/* Python's float repr: the shortest digits, in fixed notation when the
 * exponent is in -4..15, else as d.ddde+XX. */
static void repr_float(struct out *o, double v)
{
    char digits[24], buf[64];
    size_t n;
    int e;

    if (isnan(v) || isinf(v)) {
        puts_(o, isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
        return;
    }
    if (signbit(v))
        puts_(o, "-");
    shortest_digits(fabs(v), digits, &e);
    n = strlen(digits);
    if (e < -4 || e >= 16) {
        snprintf(buf, sizeof(buf), "%c%s%s%se%c%02d", digits[0],
                 n > 1 ? "." : "", digits + 1, "", e < 0 ? '-' : '+',
                 e < 0 ? -e : e);
        puts_(o, buf);
    } else if (e < 0) {
        puts_(o, "0.");
        for (int i = -1; i > e; i--)
            puts_(o, "0");
        puts_(o, digits);
    } else {
        for (int i = 0; i <= e; i++)
            put(o, (size_t)i < n ? &digits[i] : "0", 1);
        puts_(o, ".");
        puts_(o, (size_t)e + 1 < n ? digits + e + 1 : "0");
    }
}

/* Python's str repr of the n bytes at s (a NUL may be among them):
 * single quotes unless the text has ' and no ". */
static void repr_str(struct out *o, const char *s, size_t n)
{
    char quote = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    char esc[8];

    put(o, &quote, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)quote) {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(o, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            puts_(o, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            puts_(o, esc);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
    put(o, &quote, 1);
}

static void repr_items(struct out *o, om_object *x, const char *open,
                       const char *close)
{
    bool list = x->type == &om_list_type;
    size_t n = list ? om_list_len(x) : om_tuple_len(x);

    puts_(o, open);
    for (size_t i = 0; i < n; i++) {
        if (i)
            puts_(o, ", ");
        repr_into(o, list ? om_list_get(x, i) : om_tuple_get(x, i));
    }
    if (!list && n == 1)
        puts_(o, ",");
    puts_(o, close);
}

static void repr_dict(struct out *o, om_object *x)
{
    om_object *key, *value;
    size_t pos = 0;
    bool first = true;

    puts_(o, "{");
    while (omi_dict_next(x, &pos, &key, &value)) {
        if (!first)
            puts_(o, ", ");
        first = false;
        repr_into(o, key);
        puts_(o, ": ");
        repr_into(o, value);
    }
    puts_(o, "}");
}

/* Containers: guard against self-reference and depth, then print. */
static void repr_container(struct out *o, om_object *x)
{
    const char *self = x->type == &om_list_type ? "[...]" :
                       x->type == &om_dict_type ? "{...}" : "(...)";

    for (size_t i = 0; i < o->depth; i++)
        if (o->open[i] == x) {
            puts_(o, self);
            return;
        }
    if (o->depth == MAX_DEPTH) {
        o->failed = true;
        o->err = ELOOP;
        return;
    }
    o->open[o->depth++] = x;
    if (x->type == &om_dict_type)
        repr_dict(o, x);
    else if (x->type == &om_list_type)
        repr_items(o, x, "[", "]");
    else
        repr_items(o, x, "(", ")");
    o->depth--;
}

static void repr_other(struct out *o, om_object *x)
{
    char buf[256];
    const char *cls = omi_class_name(x);

    if (cls)
        snprintf(buf, sizeof(buf), "<class '%s'>", cls);
    else
        snprintf(buf, sizeof(buf), "<%s object at %p>", x->type->name,
                 (void *)x);
    puts_(o, buf);
}

static void repr_into(struct out *o, om_object *x)
{
    if (o->failed)
        return;
    if (x == om_none()) {
        puts_(o, "None");
    } else if (x == om_bool(true) || x == om_bool(false)) {
        puts_(o, x == om_bool(true) ? "True" : "False");
    } else if (x->type == &om_int_type) {
        char *s = om_int_to_string(x);
        if (s)
            puts_(o, s);
        else
            o->failed = true, o->err = ENOMEM;
        om_free(s);
    } else if (x->type == &om_float_type) {
        repr_float(o, om_float_as_double(x));
    } else if (x->type == &om_str_type) {
        repr_str(o, om_str_utf8(x), omi_str_nbytes(x));
    } else if (x->type == &om_tuple_type || x->type == &om_list_type ||
               x->type == &om_dict_type) {
        repr_container(o, x);
    } else {
        repr_other(o, x);
    }
}

om_object *om_repr(om_object *x)
{
    struct out *o = om_raw_calloc(1, sizeof(*o));
    om_object *s = NULL;

    if (!o || !x) {
        om_raw_free(o);
        errno = !x ? EINVAL : ENOMEM;
        return NULL;
    }
    repr_into(o, x);
    if (!o->failed)
        s = om_str_from_utf8(o->text ? o->text : "", o->len);
    else
        errno = o->err;
    om_free(o->text);
    om_raw_free(o);
    return s;
}
