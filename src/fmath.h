/*
 * fmath.h - cross-cutting: exp(x) - 1, log(1 + x) and rounding for
 * tracing, without libm (fmath.c says why and how).
 */
#ifndef OM_FMATH_H
#define OM_FMATH_H

#include "base.h"

/* C's expm1, log1p and llround (|x| < 2^63), to within 1e-15. */
double omi_fmath_expm1(double x);
double omi_fmath_log1p(double y);
long long omi_fmath_llround(double x);

#endif /* OM_FMATH_H */
