/*
 * fmath.c - cross-cutting (tracing's sampling): the three functions of
 * the C math library that tracing needs (exp(x) - 1, log(1 + x),
 * rounding to an integer), computed here so that objmem links no libm.
 * A program that does not use libm itself (git, a shell) would otherwise
 * map it for objmem's sake under the shim: 320 KiB more RSS in every
 * process, a tenth of a small program's.
 *
 * Accuracy: a relative error below 1e-15 against glibc's libm over the
 * ranges tracing uses (test_trace checks it on a sweep of values), which
 * is far below what sampling estimates can see.
 *
 * Method.  exp: x = k ln 2 + r with |r| <= ln 2 / 2 (ln 2 in two parts,
 * so that r is exact to the last bits), e^r by its Taylor series, 2^k
 * built in the exponent field.  expm1: the Taylor series itself for
 * |x| < 1/2 (no cancellation), e^x - 1 above.  log1p: log(1 + y) =
 * 2 atanh(t), t = y / (2 + y), for small y (|t| <= 1/6); otherwise
 * 1 + y = m 2^e with m in [sqrt(1/2), sqrt(2)), t = (m - 1) / (m + 1)
 * (|t| <= 0.172).  The series stop where a term falls below 2^-60 of
 * the sum.
 *
 * Invariants: none (pure functions).
 */
#include <stdint.h>
#include <string.h>

#include "fmath.h"

#define LN2_HI 6.93147180369123816490e-01   /* high 32 bits of ln 2 */
#define LN2_LO 1.90821492927058770002e-10   /* ln 2 - LN2_HI */
#define SQRT1_2 0.70710678118654752440

/* 2^k for -1022 <= k <= 1023. */
static double pow2(int k)
{
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* sum over n >= 1 of x^n / n!, for |x| <= 1/2. */
static double exp_series(double x)
{
    double term = x, sum = x;

    for (int n = 2; n < 30; n++) {
        term *= x / n;
        sum += term;
        if (__builtin_fabs(term) <= __builtin_fabs(sum) * 0x1p-60)
            break;
    }
    return sum;
}

/* e^x: 0 below -708 (where e^x < 2^-1021, so k >= -1021), +inf past
 * 709.78 (k <= 1024: 2^k as 2^(k-1) times 2). */
static double fexp(double x)
{
    double k, r;

    if (x != x)
        return x;
    if (x < -708.0)
        return 0.0;
    if (x > 709.78)
        return __builtin_inf();
    k = (double)(long)(x / (LN2_HI + LN2_LO) + (x < 0 ? -0.5 : 0.5));
    r = (x - k * LN2_HI) - k * LN2_LO;
    return (1.0 + exp_series(r)) * pow2((int)k - 1) * 2.0;
}

/* e^x - 1, exact to the last bits also for tiny x (C's expm1). */
double omi_fmath_expm1(double x)
{
    if (x > -0.5 && x < 0.5)
        return exp_series(x);
    return fexp(x) - 1.0;
}

/* 2 atanh(t) = log((1 + t) / (1 - t)), for |t| <= 0.172. */
static double atanh2(double t)
{
    double t2 = t * t, power = t, sum = t;

    for (int n = 3; n < 80; n += 2) {
        double term;
        power *= t2;
        term = power / n;
        sum += term;
        if (__builtin_fabs(term) <= __builtin_fabs(sum) * 0x1p-60)
            break;
    }
    return 2.0 * sum;
}

/* log(1 + y) for y > -1 (C's log1p): -inf at -1, NaN below. */
double omi_fmath_log1p(double y)
{
    double z = 1.0 + y, m;
    uint64_t bits;
    int e;

    if (y != y || y < -1.0)
        return __builtin_nan("");
    if (y == -1.0)
        return -__builtin_inf();
    if (y == __builtin_inf())
        return y;
    if (y > -0.25 && y < 0.4)
        return atanh2(y / (2.0 + y));
    memcpy(&bits, &z, sizeof(bits));    /* z >= 0.75: normal */
    e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & ~((uint64_t)0x7ff << 52)) | ((uint64_t)1023 << 52);
    memcpy(&m, &bits, sizeof(m));       /* z = m 2^e, m in [1, 2) */
    if (m > 2.0 * SQRT1_2) {
        m *= 0.5;
        e++;
    }
    return e * LN2_HI + (atanh2((m - 1.0) / (m + 1.0)) + e * LN2_LO);
}

/* x rounded to the nearest integer, halves away from zero (C's llround),
 * for |x| < 2^63. */
long long omi_fmath_llround(double x)
{
    long long whole = (long long)x;     /* toward zero */
    double rest = x - (double)whole;

    if (rest >= 0.5)
        whole++;
    else if (rest <= -0.5)
        whole--;
    return whole;
}
