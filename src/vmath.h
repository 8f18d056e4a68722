/* Vectorisable exp and log for float and double.
 *
 * libm's expf/logf are scalar calls that stop GCC from vectorising a loop (without -ffast-math),
 * and -ffast-math would break the nan/inf semantics lossk must share with PyTorch. These are
 * branch-free (selects only, no calls, no tables), so GCC vectorises them, accurate to about
 * 1 ulp, and the general ones are exact on the special values: exp(-inf) = 0, exp(+inf) = inf,
 * log(0) = -inf, log(x < 0) = nan, log(inf) = inf, nan in gives nan out. Subnormals in and out
 * are handled.
 *
 * Cost is what matters here (the transcendental losses are compute-bound), so besides the general
 * functions there are cheaper ones for restricted domains, which the losses use:
 *   lossk_exp_nonpos_*  x <= 0 (or nan): one multiply scales by 2^k, subnormal results included;
 *   lossk_log_unit_*    x in [0, 1]: no special-value selects; log(0) is a finite value below -100,
 *                       which the BCE clamp turns into -100;
 *   lossk_log_nonneg_*  +0 <= x <= 2^100 (float), 2^969 (double), which lossk_outside_nonneg_*
 *                       tests: the same, exact for subnormal x too, and the general log's very
 *                       operations wherever x > 0 (the same bits, but where the compiler contracts
 *                       them into FMAs otherwise in another loop);
 *   lossk_log1p_unit_*  y in [0, 1]: no range reduction (softplus).
 *
 * Polynomials are minimax fits for relative error (Remez exchange), each with its bound noted; the
 * measured errors (exhaustive over float32, 10^7 random double arguments) are about 1 ulp. With
 * FMA (the avx2/avx512 builds) GCC contracts a * b + c into one instruction; the formulas are
 * written so that the baseline build, without FMA, stays accurate too (within 2 ulp).
 */
#ifndef LOSSK_VMATH_H
#define LOSSK_VMATH_H

#include <stdint.h>
#include <math.h>

typedef union { float f; int32_t i; uint32_t u; } lossk_f32_bits;
typedef union { double f; int64_t i; uint64_t u; } lossk_f64_bits;

/* Where the operand's sign is known, max/min of floats is an unsigned integer min/max of the bits
 * (order-preserving for floats of one sign). AVX2 has 32-bit unsigned min/max (and cheap
 * compares); 64-bit unsigned min/max needs AVX-512.
 *
 * The exps clamp their argument and carry a nan through in one of two ways, and which is faster
 * depends on the core, so the build compiles the AVX-512 kernels both ways and dispatch.c picks by
 * vendor:
 * - AMD Zen 4 (the avx512zen variant, built with LOSSK_VM_AVOID_CMP): an AVX-512 compare into a
 *   mask register occupies an FMA pipe like a multiply (measured), and these loops are FMA-bound,
 *   while integer min/max, logic and shifts run on the other pipes; so the clamps and the nan
 *   are done with integer operations on the bits.
 * - Intel cores (avx512): 512-bit integer and floating-point operations share ports 0 and 5, so
 *   the fewest instructions win: float min/max clamps, which carry a nan through by themselves. */
#if defined(__AVX2__)
#define LOSSK_VM_UMINMAX32 1
#endif
#if defined(__AVX512F__)
#define LOSSK_VM_UMINMAX64 1
#endif

/* max(a, c) for a in [-inf, +0] and a constant c < 0 (no nan) */
static inline float lossk_max_nonpos_f32(float a, float c)
{
#ifdef LOSSK_VM_UMINMAX32
    lossk_f32_bits A, C; A.f = a; C.f = c; A.u = A.u < C.u ? A.u : C.u; return A.f;
#else
    return a < c ? c : a;
#endif
}
static inline double lossk_max_nonpos_f64(double a, double c)
{
#ifdef LOSSK_VM_UMINMAX64
    lossk_f64_bits A, C; A.f = a; C.f = c; A.u = A.u < C.u ? A.u : C.u; return A.f;
#else
    return a < c ? c : a;
#endif
}
/* max(a, c) for a >= +0 and a constant c > 0 (no nan) */
static inline float lossk_max_nonneg_f32(float a, float c)
{
#ifdef LOSSK_VM_UMINMAX32
    lossk_f32_bits A, C; A.f = a; C.f = c; A.u = A.u > C.u ? A.u : C.u; return A.f;
#else
    return a < c ? c : a;
#endif
}
static inline double lossk_max_nonneg_f64(double a, double c)
{
#ifdef LOSSK_VM_UMINMAX64
    lossk_f64_bits A, C; A.f = a; C.f = c; A.u = A.u > C.u ? A.u : C.u; return A.f;
#else
    return a < c ? c : a;
#endif
}
/* -|x| (sign bit set; nan stays nan) */
static inline float lossk_negabs_f32(float x) { lossk_f32_bits b; b.f = x; b.u |= 0x80000000u; return b.f; }
static inline double lossk_negabs_f64(double x) { lossk_f64_bits b; b.f = x; b.u |= 0x8000000000000000ull; return b.f; }
/* min(x, 0) by the sign bit: x if negative (-0 included), else +0; nan gives +0 or nan */
static inline float lossk_min0_f32(float x)
{
    lossk_f32_bits b; b.f = x; b.u &= (uint32_t)(b.i >> 31); return b.f;
}
static inline double lossk_min0_f64(double x)
{
#ifdef LOSSK_VM_UMINMAX64
    lossk_f64_bits b; b.f = x; b.u &= (uint64_t)(b.i >> 63); return b.f; /* vpsraq: AVX-512 */
#else
    return x < 0 ? x : 0.0;
#endif
}
/* x >= 0 (sign bit clear) ? 1 : e, selected on the sign bit with logic ops (a nan x gives 1 or
 * e: callers divide by 1 + e, which carries the nan) */
static inline float lossk_one_if_nonneg_f32(float x, float e)
{
    lossk_f32_bits b, r; b.f = x; r.f = e;
    uint32_t m = (uint32_t)(b.i >> 31);
    r.u = (r.u & m) | (0x3f800000u & ~m);
    return r.f;
}
static inline double lossk_one_if_nonneg_f64(double x, double e)
{
#ifdef LOSSK_VM_UMINMAX64
    lossk_f64_bits b, r; b.f = x; r.f = e;
    uint64_t m = (uint64_t)(b.i >> 63);
    r.u = (r.u & m) | (0x3ff0000000000000ull & ~m);
    return r.f;
#else
    return x >= 0 ? 1.0 : e;
#endif
}

/* ---- float ---------------------------------------------------------------------------------- */

/* S exp(r) on |r| <= ln2/2, for a power of two S (folded into the coefficients, exactly), as
 * S + (S r + r^2 S Q(r)), Q a minimax of degree 4 (relative error 2^-28.3), in a short-latency
 * (Estrin-like) order: these loops are latency-bound as much as throughput-bound. */
static inline float lossk_exp_poly_f32(float r, float S)
{
    float r2 = r * r;
    float b = 1.6666521132e-1f * S * r + 4.9999994040e-1f * S;
    float c = 8.3687100559e-3f * S * r + 4.1668388993e-2f * S;
    float d = 1.3814613922e-3f * S * r2 + c;
    float q = d * r2 + b;
    return S + (q * r2 + r * S);
}

/* exp(x) = 2^k exp(r), k = round(x / ln2), r = x - k ln2 (Cody-Waite: k * 0.693359375 is exact).
 * Adding magic = 1.5 * 2^23 + b rounds x / ln2 to the integer k and leaves k + b in the low bits of
 * t, so 2^k costs integer shifts only: with b = 254, 2^k = 2^floor(k/2) 2^ceil(k/2) for
 * k in [-150, 128], two normal factors whose product rounds once, into the subnormals too. */
static inline float lossk_exp_f32(float x)
{
    const float magic = 12583166.0f; /* 1.5 * 2^23 + 254 */
#ifdef LOSSK_VM_AVOID_CMP
    /* |x| clamped to 104 on the bits (exp(104) still overflows through the two factors below),
     * nan put back at the end */
    lossk_f32_bits b, c;
    b.f = x;
    uint32_t mag = b.u & 0x7fffffffu;
    c.u = (mag < 0x42d00000u ? mag : 0x42d00000u) | (b.u & 0x80000000u);
    float xc = c.f;
#else
    float xc = x > 89.0f ? 89.0f : x; /* exp(89) overflows, exp(-104) rounds to 0; nan passes */
    xc = xc < -104.0f ? -104.0f : xc;
#endif
    lossk_f32_bits t, s1, s2;
    t.f = xc * 1.44269504088896341f + magic;
    float kf = t.f - magic;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = lossk_exp_poly_f32(r, 1.0f);
    uint32_t h = t.u >> 1;
    s1.u = h << 23;        /* 2^floor(k/2) */
    s2.u = (t.u - h) << 23; /* 2^ceil(k/2) */
#ifdef LOSSK_VM_AVOID_CMP
    s1.f = p * s1.f * s2.f;
    s1.u |= (uint32_t)((int32_t)(0x7f800000u - mag) >> 31) & 0x7fc00000u; /* nan in, nan out */
    return s1.f;
#else
    return p * s1.f * s2.f;
#endif
}

/* exp(x) for x <= 0 or nan only (x > 0 gives garbage). b = 191 puts 2^(k+64) in t's low bits for
 * k in [-150, 0], and the polynomial carries the 2^-64: one multiply, which rounds once. */
static inline float lossk_exp_nonpos_f32(float x)
{
    const float magic = 12583103.0f; /* 1.5 * 2^23 + 191 */
#ifdef LOSSK_VM_AVOID_CMP
    lossk_f32_bits b, c;
    b.f = x;
    c.u = b.u < 0xc2d00000u ? b.u : 0xc2d00000u; /* max(x, -104) for x <= -0 */
    float xc = c.f;
#else
    float xc = x < -104.0f ? -104.0f : x;
#endif
    lossk_f32_bits t, s;
    t.f = xc * 1.44269504088896341f + magic;
    float kf = t.f - magic;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = lossk_exp_poly_f32(r, 0x1p-64f);
    s.u = t.u << 23; /* 2^(k+64) */
#ifdef LOSSK_VM_AVOID_CMP
    s.f = p * s.f;
    s.u |= (uint32_t)((int32_t)(0x7f800000u - (b.u & 0x7fffffffu)) >> 31) & 0x7fc00000u; /* nan */
    return s.f;
#else
    return p * s.f;
#endif
}

/* log(m) = log1p(f), f = m - 1 in [sqrt(1/2) - 1, sqrt(2) - 1]: f + f^2 Q(f), Q a minimax of
 * degree 7 (relative error 2^-25.0), then + e ln2. Q = q0 + f (H1 + f^4 H2), two short Horner
 * chains: nearly Horner's rounding, half its latency. */
static inline float lossk_log_core_f32(float f, float ef)
{
    float f2 = f * f, f4 = f2 * f2;
    float h1 = ((-1.6570509970e-1f * f + 1.9962072372e-1f) * f - 2.5001755357e-1f) * f + 3.3333951235e-1f;
    float h2 = (8.7348230183e-2f * f - 1.4307509363e-1f) * f + 1.4917974174e-1f;
    float q = (h2 * f4 + h1) * f - 4.9999991059e-1f;
    float lm = f2 * q + f;
#if defined(__FMA__)
    return ef * 0.693147180559945309f + lm; /* one rounding; float(ln2) is 2^-28.5 off, harmless */
#else
    return ef * 0.693359375f + (lm + ef * -2.12194440e-4f); /* ef * 0.693359375 exact */
#endif
}

/* x = m 2^e with m in [sqrt(1/2), sqrt(2)): bits(x) - bits(sqrt(1/2)) splits into e (the high bits)
 * and m (the low 23 bits, rebased at sqrt(1/2)). off folds a power-of-two prescaling into e. */
#define LOSSK_LOG_REDUCE_F32(bits, off, f_, ef_) \
    do { \
        int32_t i_ = (int32_t)((bits) - (0x3f3504f3u + (off))); \
        lossk_f32_bits m_; \
        m_.i = (i_ & 0x007fffff) + 0x3f3504f3; \
        (f_) = m_.f - 1.0f; \
        (ef_) = (float)(i_ >> 23); \
    } while (0)

static inline float lossk_log_f32(float x)
{
    int small = x < 1.17549435e-38f; /* subnormal (or <= 0): scale by 2^23 first */
    lossk_f32_bits b;
    b.f = small ? x * 8388608.0f : x;
    float f, ef;
    LOSSK_LOG_REDUCE_F32(b.u, small ? 23u << 23 : 0u, f, ef);
    float r = lossk_log_core_f32(f, ef);
    r = x > 0.0f ? r : (x == 0.0f ? -INFINITY : NAN);
    return x < INFINITY ? r : x; /* +inf, nan */
}

/* log(x) for 0 <= x <= 2^100 (no nan, inf or negatives). Every such x times 2^23 is normal or 0,
 * so there is no select; log(0) comes out as -150 ln2 = -103.97. */
static inline float lossk_log_unit_f32(float x)
{
    lossk_f32_bits b;
    b.f = x * 8388608.0f;
    float f, ef;
    LOSSK_LOG_REDUCE_F32(b.u, 23u << 23, f, ef);
    return lossk_log_core_f32(f, ef);
}
static inline float lossk_log_nonneg_f32(float x) { return lossk_log_unit_f32(x); } /* already exact */
/* x outside [+0, 2^100]: negative (-0 included), nan, inf or large */
static inline int lossk_outside_nonneg_f32(float x) { lossk_f32_bits b; b.f = x; return b.u > 0x71800000u; }

/* log1p(y) for y in [0, 1]: y + y^2 Q(y), Q a minimax of degree 8 (relative error 2^-26.7), as
 * q0 + y (H1 + y^4 H2) like the log above. */
static inline float lossk_log1p_unit_f32(float y)
{
    float y2 = y * y, y4 = y2 * y2;
    float h1 = ((-1.5384384990e-1f * y + 1.9712667167e-1f) * y - 2.4963529408e-1f) * y + 3.3331152797e-1f;
    float h2 = ((-3.2563784625e-3f * y + 2.0034516230e-2f) * y - 5.7578641921e-2f) * y + 1.0698822886e-1f;
    float q = (h2 * y4 + h1) * y - 4.9999961257e-1f;
    return y2 * q + y;
}

/* ---- double --------------------------------------------------------------------------------- */

/* S exp(r) on |r| <= ln2/2 for a power of two S, as S + (S r + r^2 S Q(r)), Q a minimax of
 * degree 9 (relative error 2^-56.9), evaluated in pairs (Estrin) for a short dependency chain. */
static inline double lossk_exp_poly_f64(double r, double S)
{
    double r2 = r * r, r4 = r2 * r2;
    double p01 = 0.16666666666666674 * S * r + 0.500000000000001 * S;
    double p23 = 0.008333333333322215 * S * r + 0.041666666666522106 * S;
    double p45 = 0.00019841269886563802 * S * r + 0.0013888888947785523 * S;
    double p67 = 2.755724236744966e-06 * S * r + 2.4801487366025675e-05 * S;
    double p89 = 2.5110038296727348e-08 * S * r + 2.763264067543037e-07 * S;
    double q = (p89 * r4 + (p67 * r2 + p45)) * r4 + (p23 * r2 + p01);
    return S + (q * r2 + r * S);
}

/* As lossk_exp_f32: b = 2046 gives 2^k = 2^floor(k/2) 2^ceil(k/2) for k in [-1077, 1077]. */
static inline double lossk_exp_f64(double x)
{
    const double magic = 6755399441057790.0; /* 1.5 * 2^52 + 2046 */
#ifdef LOSSK_VM_AVOID_CMP
    lossk_f64_bits b, c;
    b.f = x;
    uint64_t mag = b.u & 0x7fffffffffffffffull;
    c.u = (mag < 0x4087500000000000ull ? mag : 0x4087500000000000ull) | (b.u & 0x8000000000000000ull); /* |x| <= 746 */
    double xc = c.f;
#else
    double xc = x > 710.0 ? 710.0 : x;
    xc = xc < -746.0 ? -746.0 : xc;
#endif
    lossk_f64_bits t, s1, s2;
    t.f = xc * 1.4426950408889634074 + magic;
    double kf = t.f - magic;
    double r = xc - kf * 6.93147180369123816490e-01; /* 32-bit constant: exact product */
    r = r - kf * 1.90821492927058770002e-10;
    double p = lossk_exp_poly_f64(r, 1.0);
    uint64_t h = t.u >> 1;
    s1.u = h << 52;
    s2.u = (t.u - h) << 52;
#ifdef LOSSK_VM_AVOID_CMP
    s1.f = p * s1.f * s2.f;
    s1.u |= (uint64_t)((int64_t)(0x7ff0000000000000ull - mag) >> 63) & 0x7ff8000000000000ull;
    return s1.f;
#else
    return p * s1.f * s2.f;
#endif
}

static inline double lossk_exp_nonpos_f64(double x) /* x <= 0 or nan only */
{
    const double magic = 6755399441056831.0; /* 1.5 * 2^52 + 1087 */
#ifdef LOSSK_VM_AVOID_CMP
    lossk_f64_bits b, c;
    b.f = x;
    c.u = b.u < 0xc087500000000000ull ? b.u : 0xc087500000000000ull; /* max(x, -746) for x <= -0 */
    double xc = c.f;
#else
    double xc = x < -746.0 ? -746.0 : x;
#endif
    lossk_f64_bits t, s;
    t.f = xc * 1.4426950408889634074 + magic;
    double kf = t.f - magic;
    double r = xc - kf * 6.93147180369123816490e-01;
    r = r - kf * 1.90821492927058770002e-10;
    double p = lossk_exp_poly_f64(r, 0x1p-64);
    s.u = t.u << 52; /* 2^(k+64) */
#ifdef LOSSK_VM_AVOID_CMP
    s.f = p * s.f;
    s.u |= (uint64_t)((int64_t)(0x7ff0000000000000ull - (b.u & 0x7fffffffffffffffull)) >> 63) & 0x7ff8000000000000ull;
    return s.f;
#else
    return p * s.f;
#endif
}

/* log1p(f) + e ln2 for f in [sqrt(1/2) - 1, sqrt(2) - 1]: f - (hfsq - s (hfsq + R)), s = f / (2 + f),
 * R a polynomial in s^2 (fdlibm); below 1 ulp. */
static inline double lossk_log_core_f64(double f, double ef)
{
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
    return ef * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + R) + ef * 1.90821492927058770002e-10)) - f);
}
/* x = m 2^e, m in [sqrt(1/2), sqrt(2)): bits - bits(sqrt(1/2)) + 1087 << 52 is nonnegative for
 * every x >= 0 and below 2^64, its top 12 bits are e + 1087 (a logical shift, which AVX2 has for
 * 64-bit lanes, unlike the arithmetic one) and its low 52 bits rebase m at sqrt(1/2). off folds a
 * power-of-two prescaling (of at most 2^54) into e. */
#define LOSSK_LOG_REDUCE_F64(bits, off, f_, ef_) \
    do { \
        uint64_t i_ = (bits) - (0x3fe6a09e667f3bcdull - (1087ull << 52) + (off)); \
        lossk_f64_bits m_, e_; \
        m_.u = (i_ & 0x000fffffffffffffull) + 0x3fe6a09e667f3bcdull; \
        (f_) = m_.f - 1.0; \
        e_.u = (i_ >> 52) | 0x4330000000000000ull; /* 2^52 + e + 1087 */ \
        (ef_) = e_.f - 4503599627371583.0; /* - (2^52 + 1087) */ \
    } while (0)

static inline double lossk_log_f64(double x)
{
    int small = x < 2.2250738585072014e-308;
    lossk_f64_bits b;
    b.f = small ? x * 18014398509481984.0 : x; /* 2^54 */
    double f, ef;
    LOSSK_LOG_REDUCE_F64(b.u, 0, f, ef);
    ef = small ? ef - 54.0 : ef; /* (a select of 64-bit integers would not vectorise with SSE2) */
    double r = lossk_log_core_f64(f, ef);
    r = x > 0.0 ? r : (x == 0.0 ? -INFINITY : NAN);
    return x < INFINITY ? r : x;
}

/* log(x) for 0 <= x <= 2^1000: subnormal x give about -709 (not their log) and log(0) the same,
 * all below -100, which is all BCE needs. */
static inline double lossk_log_unit_f64(double x)
{
    lossk_f64_bits b;
    b.f = x;
    double f, ef;
    LOSSK_LOG_REDUCE_F64(b.u, 0, f, ef);
    return lossk_log_core_f64(f, ef);
}

/* log(x) for 0 <= x <= 2^969: x times 2^54 is normal or 0 (the general log's scaling of subnormals,
 * done always, and folded into e), so there is no select; log(0) comes out finite (about -746). */
static inline double lossk_log_nonneg_f64(double x)
{
    lossk_f64_bits b;
    b.f = x * 18014398509481984.0; /* 2^54 */
    double f, ef;
    LOSSK_LOG_REDUCE_F64(b.u, 54ull << 52, f, ef);
    return lossk_log_core_f64(f, ef);
}
/* x outside [+0, 2^969] */
static inline int lossk_outside_nonneg_f64(double x)
{
    lossk_f64_bits b;
    b.f = x;
    return b.u > 0x7c80000000000000ull;
}

static inline double lossk_log1p_unit_f64(double y) /* y in [0, 1] */
{
    /* log1p(y) = 2 atanh(s) = y - hfsq + s (hfsq + R), s = y / (2 + y) in [0, 1/3], hfsq = y^2 / 2,
     * R(z) = z P(z), z = s^2 in [0, 1/9]: a minimax of 10 terms, absolute error 2^-57.5. */
    double s = y / (2.0 + y);
    double z = s * s;
    double R = 0.17056574502947028;
    R = R * z + 0.08330352778604465;
    R = R * z + 0.12105435673075067;
    R = R * z + 0.13301484184805817;
    R = R * z + 0.15386482512344388;
    R = R * z + 0.18181749701718977;
    R = R * z + 0.22222223733443347;
    R = R * z + 0.2857142855304335;
    R = R * z + 0.40000000000103036;
    R = R * z + 0.666666666666665;
    R = R * z;
    double hfsq = 0.5 * y * y;
    return y - (hfsq - s * (hfsq + R));
}

/* ---- log1p, general ---------------------------------------------------------------------------- */

/* log(1 + y) for any y: log(u) + (y - (u - 1)) / u, u = 1 + y rounded; where the rounding matters
 * u - 1 is exact and y - (u - 1) is the rounding error of u, which the correction puts back. */
#define LOSSK_DEFINE_LOG1P(T, sfx) \
    static inline T lossk_log1p_##sfx(T y) \
    { \
        T u = (T)1 + y; \
        T r = lossk_log_##sfx(u) + (y - (u - (T)1)) / (u == (T)0 ? (T)1 : u); \
        return y < (T)INFINITY ? r : y; /* +inf (the correction would be nan), nan */ \
    }
LOSSK_DEFINE_LOG1P(float, f32)
LOSSK_DEFINE_LOG1P(double, f64)
#undef LOSSK_DEFINE_LOG1P

#endif
