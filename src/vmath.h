/* Vectorisable exp and log for float and double.
 *
 * libm's expf/logf are scalar calls that stop GCC from vectorising a loop (without -ffast-math),
 * and -ffast-math would break the nan/inf semantics lossk must share with PyTorch. These are
 * branch-free (selects only, no calls, no float-to-int conversions), so GCC vectorises them,
 * accurate to about 1 ulp, and exact on the special values: exp(-inf) = 0, exp(+inf) = inf,
 * log(0) = -inf, log(x < 0) = nan, log(inf) = inf, nan in gives nan out. Subnormals in and out
 * are handled.
 */
#ifndef LOSSK_VMATH_H
#define LOSSK_VMATH_H

#include <stdint.h>
#include <math.h>

typedef union { float f; int32_t i; uint32_t u; } lossk_f32_bits;
typedef union { double f; int64_t i; uint64_t u; } lossk_f64_bits;

static inline float lossk_pow2i_f32(int32_t k) /* 2^k for k in [-126, 127] */
{
    lossk_f32_bits b; b.u = (uint32_t)(k + 127) << 23; return b.f;
}

static inline double lossk_pow2i_f64(int64_t k) /* 2^k for k in [-1022, 1023] */
{
    lossk_f64_bits b; b.u = (uint64_t)(k + 1023) << 52; return b.f;
}

static inline float lossk_exp_f32(float x)
{
    /* exp(x) = 2^k * exp(r), r = x - k ln2 in [-ln2/2, ln2/2]; the clamp keeps 2^k representable
     * as the product of two normal powers, and exp(-104) already rounds to 0. */
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    lossk_f32_bits t, m;
    t.f = xc * 1.44269504088896341f + magic;
    m.f = magic;
    int32_t k = t.i - m.i;
    float kf = t.f - magic;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t k1 = k >> 1;
    return p * lossk_pow2i_f32(k1) * lossk_pow2i_f32(k - k1);
}

static inline double lossk_exp_f64(double x)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double xc = x > 710.0 ? 710.0 : x;
    xc = xc < -746.0 ? -746.0 : xc;
    lossk_f64_bits t, m;
    t.f = xc * 1.4426950408889634074 + magic;
    m.f = magic;
    int64_t k = t.i - m.i;
    double kf = t.f - magic;
    double r = xc - kf * 6.93147180369123816490e-01;
    r = r - kf * 1.90821492927058770002e-10;
    /* Taylor to degree 13: the remainder on |r| <= 0.347 is below 2^-57. */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * (r * r) + r + 1.0;
    int64_t k1 = k >> 1;
    return p * lossk_pow2i_f64(k1) * lossk_pow2i_f64(k - k1);
}

static inline float lossk_log_f32(float x)
{
    /* log(x) = e ln2 + log(m), m in [sqrt(1/2), sqrt(2)). */
    int small = x < 1.17549435e-38f;
    float xs = small ? x * 8388608.0f : x; /* scale subnormals by 2^23 */
    lossk_f32_bits b; b.f = xs;
    int32_t e = ((b.i >> 23) & 0xff) - 127 - (small ? 23 : 0);
    lossk_f32_bits mb; mb.u = (b.u & 0x007fffffu) | 0x3f800000u;
    float m = mb.f;
    int big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    e = big ? e + 1 : e;
    float f = m - 1.0f;
    float ef = (float)e;
    float z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y += -2.12194440e-4f * ef;
    y += -0.5f * z;
    float r = f + y + 0.693359375f * ef;
    r = x < 0.0f ? NAN : r;
    r = x == 0.0f ? -INFINITY : r;
    r = x == INFINITY ? INFINITY : r;
    return x != x ? x : r;
}

static inline double lossk_log_f64(double x)
{
    int small = x < 2.2250738585072014e-308;
    double xs = small ? x * 18014398509481984.0 : x; /* 2^54 */
    lossk_f64_bits b; b.f = xs;
    int64_t e = ((b.i >> 52) & 0x7ff) - 1023 - (small ? 54 : 0);
    lossk_f64_bits mb; mb.u = (b.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m = mb.f;
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    e = big ? e + 1 : e;
    double f = m - 1.0;
    double ef = (double)e;
    /* log(1 + f) = 2 atanh(s), s = f / (2 + f); hfsq - s (hfsq + R) keeps the error below 1 ulp. */
    double s = f / (2.0 + f);
    double z = s * s;
    double R = 1.479819860511658591e-01;
    R = R * z + 1.531383769920937332e-01;
    R = R * z + 1.818357216161805012e-01;
    R = R * z + 2.222219843214978396e-01;
    R = R * z + 2.857142874366239149e-01;
    R = R * z + 3.999999999940941908e-01;
    R = R * z + 6.666666666666735130e-01;
    R = R * z;
    double hfsq = 0.5 * f * f;
    double r = ef * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + R) + ef * 1.90821492927058770002e-10)) - f);
    r = x < 0.0 ? NAN : r;
    r = x == 0.0 ? -INFINITY : r;
    r = x == INFINITY ? INFINITY : r;
    return x != x ? x : r;
}

/* log(1 + y) for y >= -1, accurate for tiny y: the rounding of u = 1 + y is undone by y / (u - 1). */
#define LOSSK_DEFINE_LOG1P(T, sfx) \
    static inline T lossk_log1p_##sfx(T y) \
    { \
        T u = (T)1 + y; \
        T d = u - (T)1; \
        T r = lossk_log_##sfx(u) * (y / (d == (T)0 ? (T)1 : d)); \
        return d == (T)0 ? y : r; \
    }
LOSSK_DEFINE_LOG1P(float, f32)
LOSSK_DEFINE_LOG1P(double, f64)
#undef LOSSK_DEFINE_LOG1P

#endif
