/* Layers of a small convolutional network: conv2d (direct and Winograd), max_pool2d, linear, relu.
 * layers_impl.h holds the code; it is included once per dtype. */
#include <stddef.h>
#include <string.h>
#include "kernel.h"
#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#define NUM_THREADS() omp_get_num_threads()
#else
#define THREAD_ID() 0
#define NUM_THREADS() 1
#endif

/* GEMM register tile: MR rows by NV vectors of VBYTES, as many accumulators as the register file
 * holds with room for the NV operands and a broadcast (32 zmm; 16 ymm or xmm). */
/* The dot-product GEMM (gemm_nt) keeps an NT_MR x NT_NR tile of vector accumulators. */
#if defined(__AVX512F__)
#define VBYTES 64
#define MR 6
#define NV 4
#define NT_MR 4
#define NT_NR 6
#elif defined(__AVX2__)
#define VBYTES 32
#define MR 4
#define NV 3
#define NT_MR 2
#define NT_NR 5
#else
#define VBYTES 16
#define MR 4
#define NV 3
#define NT_MR 2
#define NT_NR 5
#endif

/* Rows of B per chunk of a GEMM's sum: a column tile's chunk of B (NV vectors wide) stays in L1. */
#define GEMM_KC 128

/* Stride-1 weight gradients with rows of whole vectors: CONV_CHANNELS (1) or CONV_PIXELS (0).
 * Channels win with AVX-512; AVX2's 4 x 3 tile fits 32 or 64 channels badly. */
#if defined(__AVX512F__)
#define WGRAD_CHANNELS 1
#else
#define WGRAD_CHANNELS 0
#endif

/* Weight gradients are summed over the batch in this many fixed blocks of images (each with its
 * own partial sum, added in block order): results do not depend on the thread count. Fewer than
 * LOSSK_BLOCKS because each partial is a whole weight gradient. */
#define WGRAD_BLOCKS 8
/* elements of the dot products of a stride-1 weight gradient: see shifted_group */
#define WGRAD_DOT 512

enum { OP_FORWARD, OP_BACKWARD_INPUT, OP_BACKWARD_WEIGHT };
/* how a convolution that is not Winograd's lays out its GEMM: see layers_impl.h */
enum { CONV_IM2COL, CONV_PIXELS, CONV_CHANNELS };

/* Scratch slices start on cache lines. */
#define ALIGN_UP(x) (((x) + 63) & ~(int64_t)63)

/* A value read exactly once, never re-read from memory by the compiler: for an index that is
 * range-checked and then used while the caller's other threads may be changing the array (the
 * Python bindings run kernels without the GIL), so that the value used is the value checked. */
#define READ_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* Thread t's part of an (m, n) product computed by nt threads: rows [r0, r1) and columns [c0, c1).
 * A range of rows; or of columns (in multiples of vl) when there are at least 4 times as many
 * columns as rows, so that each thread reads only its share of the larger operand. Every element of a
 * product is computed the same way whatever its part (see gemm), so any split gives the same bits. */
typedef struct {
    int64_t r0, r1, c0, c1;
} product_part;

static product_part split_product(int64_t m, int64_t n, int64_t vl, int t, int nt)
{
    if (n < 4 * m)
        return (product_part){m * t / nt, m * (t + 1) / nt, 0, n};
    const int64_t nv = (n + vl - 1) / vl;
    return (product_part){0, m, lossk_min64(n, vl * (nv * t / nt)), lossk_min64(n, vl * (nv * (t + 1) / nt))};
}

/* The place (0-3, row-major) of the argmax index `at` in the 2x2 window whose first pixel is
 * `first` in a plane w wide; *outside gets bits set when the index is not in the window. Unsigned,
 * so that no index, however large or negative, overflows. Branch-free, so that loops over a row
 * of indices vectorise. */
static inline uint64_t window_place(int64_t at, int64_t first, int64_t w, uint64_t *outside)
{
    const uint64_t off = (uint64_t)at - (uint64_t)first, second = off >= (uint64_t)w;
    const uint64_t col = off - (second ? (uint64_t)w : 0);
    *outside |= col >> 1;
    return 2 * second + col;
}

#define T float
#define TI int32_t /* an integer the size of T */
#define SFX f32
#include "layers_impl.h"
#undef T
#undef TI
#undef SFX

#define T double
#define TI int64_t
#define SFX f64
#include "layers_impl.h"
#undef T
#undef TI
#undef SFX
