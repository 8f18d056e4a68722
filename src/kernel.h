/* Private to the kernel sources: instruction-set naming, threading and the fixed partition of work. */
#ifndef LOSSK_KERNEL_H
#define LOSSK_KERNEL_H

#include <stdint.h>
#include "lossk.h"
#include "vmath.h"

/* Each kernel source is compiled once per instruction set (CMake sets LOSSK_ISA); dispatch.c
 * picks the variant for the CPU it runs on. */
#ifndef LOSSK_ISA
#define LOSSK_ISA baseline
#endif
#define LOSSK_CAT_(a, b) a##_##b
#define LOSSK_CAT(a, b) LOSSK_CAT_(a, b)
#define LOSSK_ISA_NAME(name) LOSSK_CAT(name, LOSSK_ISA)

#define LOSSK_INLINE static inline __attribute__((always_inline))

/* Threads for a kernel doing `work` element-operations: 1 below the point where starting
 * threads costs more than it saves. */
int lossk_threads_for(int64_t work);

/* Reductions split their range of n items into blocks and add the block sums in block order. The
 * number of blocks depends on the size alone, never on the thread count: that is what makes
 * results bit-identical for any thread count. At most LOSSK_BLOCKS, about one per
 * LOSSK_BLOCK_WORK element-operations, so that a small call is a single block. */
#define LOSSK_BLOCKS 64
#define LOSSK_BLOCK_WORK 4096

static inline int lossk_blocks(int64_t n, int64_t work)
{
    int64_t nb = work / LOSSK_BLOCK_WORK;
    nb = nb < LOSSK_BLOCKS ? nb : LOSSK_BLOCKS;
    nb = nb < n ? nb : n;
    return nb < 1 ? 1 : (int)nb;
}

static inline int64_t lossk_block_start(int64_t n, int nb, int64_t b)
{
    return (n / nb) * b + (b < n % nb ? b : n % nb);
}

/* body(job, b) for every block b < nb, on nt threads; a plain loop when nt is 1, because even a
 * region that starts no thread costs a team set-up (about 0.35 us in libgomp), which small calls
 * notice. Bodies are declared LOSSK_BLOCK_FN: never inlined, so that both paths run the very same
 * machine code (two inlined copies may be vectorised or contracted differently, and the results
 * would then depend on the thread count). */
#define LOSSK_BLOCK_FN static __attribute__((noinline))
#define LOSSK_FOR_BLOCKS(nt, nb, body, job) \
    do { \
        const int lossk_nt = (nt), lossk_nb = (nb); \
        if (lossk_nt > 1) { \
            _Pragma("omp parallel for schedule(static) num_threads(lossk_nt)") \
            for (int lossk_b = 0; lossk_b < lossk_nb; lossk_b++) \
                body(job, lossk_b); \
        } else { \
            for (int lossk_b = 0; lossk_b < lossk_nb; lossk_b++) \
                body(job, lossk_b); \
        } \
    } while (0)

/* Sum lanes: every block accumulates in LOSSK_LANES double accumulators, element j of a run into
 * lane j % LOSSK_LANES, so the order of additions is fixed by the data alone (not by vector
 * width or alignment) and float32 sums of 2^24 terms keep double precision. */
#define LOSSK_LANES 16

static inline int64_t lossk_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t lossk_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The sum lanes' total: a tree of them, in a fixed order (vectorised) */
LOSSK_INLINE double lossk_lanes_total(double *acc)
{
    for (int w = LOSSK_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

/* v[0, n) added into the sum lanes acc, element j into lane j % LOSSK_LANES, in double */
#define LOSSK_DEFINE_ADD_LANES(T, sfx) \
    LOSSK_INLINE void lossk_add_lanes_##sfx(double *acc, const T *v, int64_t n) \
    { \
        int64_t j = 0; \
        for (; j + LOSSK_LANES <= n; j += LOSSK_LANES) \
            for (int l = 0; l < LOSSK_LANES; l++) \
                acc[l] += (double)v[j + l]; \
        for (int l = 0; j + l < n; l++) \
            acc[l] += (double)v[j + l]; \
    }
LOSSK_DEFINE_ADD_LANES(float, f32)
LOSSK_DEFINE_ADD_LANES(double, f64)
#undef LOSSK_DEFINE_ADD_LANES

/* v[0] + ... + v[n - 1] in the sum lanes, then a tree of them (vectorised, in a fixed order) */
static inline double lossk_sum_f64(const double *v, int64_t n)
{
    if (n <= 4) { /* what the tree gives, without its stalls on vector loads of scalars just stored */
        const double a0 = n > 0 ? v[0] + 0.0 : 0.0, a1 = n > 1 ? v[1] + 0.0 : 0.0;
        const double a2 = n > 2 ? v[2] + 0.0 : 0.0, a3 = n > 3 ? v[3] + 0.0 : 0.0;
        return (a0 + a2) + (a1 + a3);
    }
    double acc[LOSSK_LANES] = {0};
    lossk_add_lanes_f64(acc, v, n);
    return lossk_lanes_total(acc);
}

/* Outputs larger than this are written with non-temporal (streaming) stores: they would not stay
 * in the 32 MiB L3 anyway, and ordinary stores first read every line they write, which costs a
 * third more memory traffic in a read-two-write-one loss. */
#define LOSSK_STREAM_BYTES ((int64_t)16 << 20)

/* Room for tiles staged on the stack before they are streamed out. */
#define LOSSK_SCRATCH 16384

/* dst[0, n) = src[0, n) with streaming stores for the whole cache lines in it. Callers end their
 * share of the work with lossk_stream_fence(), since streaming stores are weakly ordered. A line is
 * streamed whole or not at all: the write-combining buffer of a line streamed in parts may be
 * flushed before the line is complete, and a partial line costs more than a whole one (with AVX2,
 * whose vectors are half a line, every run that begins mid-line would pay it). */
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#if defined(__AVX512F__)
#define LOSSK_VEC_BYTES 64
#define LOSSK_STREAM_F32(p, s) _mm512_stream_ps(p, _mm512_loadu_ps(s))
#define LOSSK_STREAM_F64(p, s) _mm512_stream_pd(p, _mm512_loadu_pd(s))
#elif defined(__AVX__)
#define LOSSK_VEC_BYTES 32
#define LOSSK_STREAM_F32(p, s) _mm256_stream_ps(p, _mm256_loadu_ps(s))
#define LOSSK_STREAM_F64(p, s) _mm256_stream_pd(p, _mm256_loadu_pd(s))
#else
#define LOSSK_VEC_BYTES 16
#define LOSSK_STREAM_F32(p, s) _mm_stream_ps(p, _mm_loadu_ps(s))
#define LOSSK_STREAM_F64(p, s) _mm_stream_pd(p, _mm_loadu_pd(s))
#endif
static inline void lossk_stream_fence(void) { _mm_sfence(); }
/* dst[0, bytes) = src[0, bytes) for part of a line (bytes and dst multiples of 4), with streaming
 * stores too, each of the largest size that dst's alignment allows: the rest of the line is
 * usually streamed right before or after (the previous or next row or run), and the two parts
 * then meet in the write-combining buffer, where plain stores would first read the line from
 * memory. */
static inline void lossk_stream_part(void *restrict dst, const void *restrict src, int64_t bytes)
{
    char *d = dst;
    const char *s = src;
    for (int64_t size; bytes > 0; d += size, s += size, bytes -= size) {
        const uintptr_t a = (uintptr_t)d;
#if defined(__AVX__)
        if (bytes >= 32 && a % 32 == 0) {
            _mm256_stream_si256((__m256i *)d, _mm256_loadu_si256((const __m256i *)s));
            size = 32;
            continue;
        }
#endif
        if (bytes >= 16 && a % 16 == 0) {
            _mm_stream_si128((__m128i *)d, _mm_loadu_si128((const __m128i *)s));
            size = 16;
        } else if (bytes >= 8 && a % 8 == 0) {
            _mm_stream_si64((long long *)d, _mm_cvtsi128_si64(_mm_loadl_epi64((const __m128i *)s)));
            size = 8;
        } else {
            _mm_stream_si32((int *)d, _mm_cvtsi128_si32(_mm_loadu_si32(s)));
            size = 4;
        }
    }
}
#define LOSSK_DEFINE_STREAM(T, sfx, STORE) \
    static inline void lossk_stream_##sfx(T *restrict dst, const T *restrict src, int64_t n) \
    { \
        const int64_t step = LOSSK_VEC_BYTES / (int64_t)sizeof(T), line = 64 / (int64_t)sizeof(T); \
        const int64_t head = lossk_min64(n, (int64_t)((64 - (uintptr_t)dst % 64) % 64) / (int64_t)sizeof(T)); \
        lossk_stream_part(dst, src, head * (int64_t)sizeof(T)); \
        int64_t i = head; \
        for (; i + line <= n; i += line) \
            for (int64_t v = 0; v < line; v += step) \
                STORE(dst + i + v, src + i + v); \
        lossk_stream_part(dst + i, src + i, (n - i) * (int64_t)sizeof(T)); \
    }
LOSSK_DEFINE_STREAM(float, f32, LOSSK_STREAM_F32)
LOSSK_DEFINE_STREAM(double, f64, LOSSK_STREAM_F64)
#undef LOSSK_DEFINE_STREAM
#endif

/* The short last chunk of a row as a whole vector of LOSSK_LANES: lossk_load_tail fills v with
 * src[0, n) then `fill`, lossk_store_tail writes v[0, n) to dst (n <= LOSSK_LANES). AVX-512 does
 * each with masked moves; scalar moves read back as a vector stall on store forwarding, which on
 * a 10-class row costs more than its arithmetic. */
#if defined(__AVX512F__)
static inline __mmask16 lossk_mask16(int64_t n) { return (__mmask16)((1u << n) - 1); }
static inline __mmask8 lossk_mask8(int64_t n) { return (__mmask8)(n >= 8 ? 0xff : n <= 0 ? 0 : (1u << n) - 1); }
static inline void lossk_load_tail_f32(float *v, const float *src, int64_t n, float fill)
{
    _mm512_storeu_ps(v, _mm512_mask_loadu_ps(_mm512_set1_ps(fill), lossk_mask16(n), src));
}
static inline void lossk_store_tail_f32(float *dst, const float *v, int64_t n)
{
    _mm512_mask_storeu_ps(dst, lossk_mask16(n), _mm512_loadu_ps(v));
}
static inline void lossk_load_tail_f64(double *v, const double *src, int64_t n, double fill)
{
    _mm512_storeu_pd(v, _mm512_mask_loadu_pd(_mm512_set1_pd(fill), lossk_mask8(n), src));
    _mm512_storeu_pd(v + 8, _mm512_mask_loadu_pd(_mm512_set1_pd(fill), lossk_mask8(n - 8), src + 8));
}
static inline void lossk_store_tail_f64(double *dst, const double *v, int64_t n)
{
    _mm512_mask_storeu_pd(dst, lossk_mask8(n), _mm512_loadu_pd(v));
    _mm512_mask_storeu_pd(dst + 8, lossk_mask8(n - 8), _mm512_loadu_pd(v + 8));
}
#else
#define LOSSK_DEFINE_TAIL(T, sfx) \
    static inline void lossk_load_tail_##sfx(T *v, const T *src, int64_t n, T fill) \
    { \
        for (int64_t l = 0; l < LOSSK_LANES; l++) \
            v[l] = l < n ? src[l] : fill; \
    } \
    static inline void lossk_store_tail_##sfx(T *dst, const T *v, int64_t n) \
    { \
        for (int64_t l = 0; l < n; l++) \
            dst[l] = v[l]; \
    }
LOSSK_DEFINE_TAIL(float, f32)
LOSSK_DEFINE_TAIL(double, f64)
#undef LOSSK_DEFINE_TAIL
#endif

/* dst[q] = src[idx[q]] for q in [0, n). With AVX-512, vector gathers, which GCC's generic tuning
 * makes of no loop (on the Intel cores the variant is tuned for, its scalar loads and inserts cost a
 * tile of short rows more than the tile's arithmetic). Not with AVX2: on an AMD Zen 3, scalar loads beat AVX2's
 * gathers for tiles of short rows and NLL's rows, and the AVX2 variant is what runs on AMD cores before Zen 4 (whose gathers are slow) and on
 * Intel cores without AVX-512 (whose gathers Downfall's microcode slows, up to the 11th generation). */
#if defined(__AVX512F__)
#define LOSSK_GATHER_F32(d, s, i) _mm512_storeu_ps(d, _mm512_i32gather_ps(_mm512_loadu_si512(i), s, 4))
#define LOSSK_GATHER_F64(d, s, i) _mm512_storeu_pd(d, _mm512_i32gather_pd(_mm256_loadu_si256((const __m256i *)(i)), s, 8))
#define LOSSK_GATHER_BYTES 64
#else
#define LOSSK_GATHER_F32(d, s, i) ((void)0)
#define LOSSK_GATHER_F64(d, s, i) ((void)0)
#define LOSSK_GATHER_BYTES 0
#endif
#define LOSSK_DEFINE_GATHER(T, sfx, GATHER) \
    static inline void lossk_gather_##sfx(T *restrict dst, const T *restrict src, const int32_t *restrict idx, int64_t n) \
    { \
        const int64_t step = LOSSK_GATHER_BYTES / (int64_t)sizeof(T); \
        int64_t q = 0; \
        if (step > 0) \
            for (; q + step <= n; q += step) \
                GATHER(dst + q, src, idx + q); \
        for (; q < n; q++) \
            dst[q] = src[idx[q]]; \
    }
LOSSK_DEFINE_GATHER(float, f32, LOSSK_GATHER_F32)
LOSSK_DEFINE_GATHER(double, f64, LOSSK_GATHER_F64)
#undef LOSSK_DEFINE_GATHER
#undef LOSSK_GATHER_F32
#undef LOSSK_GATHER_F64
#undef LOSSK_GATHER_BYTES

/* dst[c ldd + j] = src[j lds + c] for j < n, c < m (dst and src apart): a block of rows into class
 * planes, or back. With AVX2 (and not AVX-512, whose gathers serve instead), by in-register
 * transposes of B x B blocks, B = LOSSK_TRANSPOSE_F32 (F64), where n and m are at least B: a load,
 * 3 shuffles and a store per row of a block, where the scalar form of lossk_gather pays an index
 * load, a load and a shuffle per value. B = 0: no transposes in this variant. */
#if defined(__AVX2__) && !defined(__AVX512F__)
#define LOSSK_TRANSPOSE_F32 8
#define LOSSK_TRANSPOSE_F64 4
static inline void lossk_transpose_block_f32(float *dst, int64_t ldd, const float *src, int64_t lds)
{
    __m256 r[8], t[8], u[8];
    for (int k = 0; k < 8; k++)
        r[k] = _mm256_loadu_ps(src + k * lds);
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xee);
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xee);
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(dst + k * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
        _mm256_storeu_ps(dst + (k + 4) * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
    }
}
static inline void lossk_transpose_block_f64(double *dst, int64_t ldd, const double *src, int64_t lds)
{
    __m256d r[4], t[4];
    for (int k = 0; k < 4; k++)
        r[k] = _mm256_loadu_pd(src + k * lds);
    for (int k = 0; k < 4; k += 2) {
        t[k] = _mm256_unpacklo_pd(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_pd(r[k], r[k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        _mm256_storeu_pd(dst + k * ldd, _mm256_permute2f128_pd(t[k], t[k + 2], 0x20));
        _mm256_storeu_pd(dst + (k + 2) * ldd, _mm256_permute2f128_pd(t[k], t[k + 2], 0x31));
    }
}
#define LOSSK_TRANSPOSE_BLOCK(sfx, d, ldd, s, lds) lossk_transpose_block_##sfx(d, ldd, s, lds)
#else
#define LOSSK_TRANSPOSE_F32 0
#define LOSSK_TRANSPOSE_F64 0
#define LOSSK_TRANSPOSE_BLOCK(sfx, d, ldd, s, lds) ((void)(d), (void)(s)) /* unreached: B is 0 */
#endif
#define LOSSK_DEFINE_TRANSPOSE(T, sfx, B) \
    static inline void lossk_transpose_##sfx(T *restrict dst, int64_t ldd, const T *restrict src, int64_t lds, \
                                             int64_t n, int64_t m) \
    { \
        if (B == 0 || n < B || m < B) { \
            for (int64_t j = 0; j < n; j++) \
                for (int64_t c = 0; c < m; c++) \
                    dst[c * ldd + j] = src[j * lds + c]; \
            return; \
        } \
        /* the last block of a row or column overlaps the one before it, whose values it rewrites */ \
        for (int64_t j = 0; j < n; j += B) \
            for (int64_t c = 0; c < m; c += B) { \
                const int64_t jb = j + B <= n ? j : n - B, cb = c + B <= m ? c : m - B; \
                LOSSK_TRANSPOSE_BLOCK(sfx, dst + cb * ldd + jb, ldd, src + jb * lds + cb, lds); \
            } \
    }
LOSSK_DEFINE_TRANSPOSE(float, f32, LOSSK_TRANSPOSE_F32)
LOSSK_DEFINE_TRANSPOSE(double, f64, LOSSK_TRANSPOSE_F64)
#undef LOSSK_DEFINE_TRANSPOSE
#undef LOSSK_TRANSPOSE_BLOCK

#if !(defined(__x86_64__) || defined(_M_X64))
#include <string.h>
static inline void lossk_stream_fence(void) {}
static inline void lossk_stream_f32(float *dst, const float *src, int64_t n) { memcpy(dst, src, (size_t)n * sizeof *dst); }
static inline void lossk_stream_f64(double *dst, const double *src, int64_t n) { memcpy(dst, src, (size_t)n * sizeof *dst); }
#endif

/* dst[i] = a src[i] - (i == t ? gt : 0) for i in [0, n) (n < 2^31), streamed out: a row's gradient
 * from its exps, without a pass that stores it back into src first (a tenth of a large
 * cross-entropy's time). In vectors only, the first and last ones loaded masked and streamed in
 * parts (lossk_stream_part), with the operations GCC 12 makes of that expression in cross-entropy's
 * loops, so that a row gets the same bits streamed or not: a multiply, then a subtraction in the
 * target's lane (written so that GCC, which treats AVX2 intrinsics as plain vector arithmetic, does
 * not fuse the two into one rounding).
 *   MASK(m): the first m lanes; LOADM: a masked load; GRAD(x, j): a x - gt in lane j. */
#if defined(__AVX512F__)
#define LOSSK_SV_MASK_F32(m) ((__mmask16)((1u << (m)) - 1))
#define LOSSK_SV_MASK_F64(m) ((__mmask8)((1u << (m)) - 1))
#define LOSSK_SV_LOADM_F32(k, s) _mm512_maskz_loadu_ps(k, s)
#define LOSSK_SV_LOADM_F64(k, s) _mm512_maskz_loadu_pd(k, s)
#define LOSSK_SV_GRAD_F32(x, j) \
    _mm512_mask_sub_ps(_mm512_mul_ps(va, x), (uint64_t)(j) < 16 ? (__mmask16)(1u << (j)) : 0, _mm512_mul_ps(va, x), vg)
#define LOSSK_SV_GRAD_F64(x, j) \
    _mm512_mask_sub_pd(_mm512_mul_pd(va, x), (uint64_t)(j) < 8 ? (__mmask8)(1u << (j)) : 0, _mm512_mul_pd(va, x), vg)
#define LOSSK_SV_MASKT_F32 __mmask16
#define LOSSK_SV_MASKT_F64 __mmask8
#define LOSSK_SV_VEC_F32 __m512
#define LOSSK_SV_VEC_F64 __m512d
#define LOSSK_SV_OP_F32(op) _mm512_##op##_ps
#define LOSSK_SV_OP_F64(op) _mm512_##op##_pd
#elif defined(__AVX2__)
/* lanes below m all ones */
#define LOSSK_SV_MASK_F32(m) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(m)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define LOSSK_SV_MASK_F64(m) _mm256_cmpgt_epi64(_mm256_set1_epi64x(m), _mm256_setr_epi64x(0, 1, 2, 3))
#define LOSSK_SV_LOADM_F32(k, s) _mm256_maskload_ps(s, k)
#define LOSSK_SV_LOADM_F64(k, s) _mm256_maskload_pd(s, k)
#define LOSSK_SV_GRAD_F32(x, j) \
    _mm256_blendv_ps(_mm256_mul_ps(va, x), _mm256_sub_ps(_mm256_mul_ps(va, x), vg), _mm256_castsi256_ps( \
        _mm256_cmpeq_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)(j)))))
#define LOSSK_SV_GRAD_F64(x, j) \
    _mm256_blendv_pd(_mm256_mul_pd(va, x), _mm256_sub_pd(_mm256_mul_pd(va, x), vg), _mm256_castsi256_pd( \
        _mm256_cmpeq_epi64(_mm256_setr_epi64x(0, 1, 2, 3), _mm256_set1_epi64x(j))))
#define LOSSK_SV_MASKT_F32 __m256i
#define LOSSK_SV_MASKT_F64 __m256i
#define LOSSK_SV_VEC_F32 __m256
#define LOSSK_SV_VEC_F64 __m256d
#define LOSSK_SV_OP_F32(op) _mm256_##op##_ps
#define LOSSK_SV_OP_F64(op) _mm256_##op##_pd
#endif
#ifdef LOSSK_SV_VEC_F32
#define LOSSK_DEFINE_STREAM_SCALED(T, sfx, SFX) \
    static inline void lossk_stream_scaled_##sfx(T *restrict dst, T *restrict src, int64_t n, T a, int64_t t, T gt) \
    { \
        const int64_t step = LOSSK_VEC_BYTES / (int64_t)sizeof(T); \
        const LOSSK_SV_VEC_##SFX va = LOSSK_SV_OP_##SFX(set1)(a), vg = LOSSK_SV_OP_##SFX(set1)(gt); \
        const int64_t head = (int64_t)((LOSSK_VEC_BYTES - (uintptr_t)dst % LOSSK_VEC_BYTES) % LOSSK_VEC_BYTES) \
                             / (int64_t)sizeof(T); \
        int64_t i = 0; \
        for (int64_t m; i < n; i += m) { /* the head (to dst's alignment), the whole vectors, the tail */ \
            m = i == 0 && head ? lossk_min64(head, n) : lossk_min64(step, n - i); \
            const LOSSK_SV_MASKT_##SFX k = LOSSK_SV_MASK_##SFX(m); \
            const LOSSK_SV_VEC_##SFX x = m == step ? LOSSK_SV_OP_##SFX(loadu)(src + i) : LOSSK_SV_LOADM_##SFX(k, src + i); \
            const LOSSK_SV_VEC_##SFX v = LOSSK_SV_GRAD_##SFX(x, t - i); \
            if (m == step) { \
                LOSSK_SV_OP_##SFX(stream)(dst + i, v); \
            } else { \
                T part[LOSSK_VEC_BYTES / sizeof(T)]; \
                LOSSK_SV_OP_##SFX(storeu)(part, v); \
                lossk_stream_part(dst + i, part, m * (int64_t)sizeof(T)); \
            } \
        } \
    }
LOSSK_DEFINE_STREAM_SCALED(float, f32, F32)
LOSSK_DEFINE_STREAM_SCALED(double, f64, F64)
#undef LOSSK_DEFINE_STREAM_SCALED
#undef LOSSK_SV_MASK_F32
#undef LOSSK_SV_MASK_F64
#undef LOSSK_SV_LOADM_F32
#undef LOSSK_SV_LOADM_F64
#undef LOSSK_SV_GRAD_F32
#undef LOSSK_SV_GRAD_F64
#undef LOSSK_SV_MASKT_F32
#undef LOSSK_SV_MASKT_F64
#undef LOSSK_SV_VEC_F32
#undef LOSSK_SV_VEC_F64
#undef LOSSK_SV_OP_F32
#undef LOSSK_SV_OP_F64
#else
#define LOSSK_DEFINE_STREAM_SCALED(T, sfx) \
    static inline void lossk_stream_scaled_##sfx(T *restrict dst, T *restrict src, int64_t n, T a, int64_t t, T gt) \
    { \
        for (int64_t i = 0; i < n; i++) \
            src[i] = a * src[i] - (i == t ? gt : 0); \
        lossk_stream_##sfx(dst, src, n); \
    }
LOSSK_DEFINE_STREAM_SCALED(float, f32)
LOSSK_DEFINE_STREAM_SCALED(double, f64)
#undef LOSSK_DEFINE_STREAM_SCALED
#endif

#endif
