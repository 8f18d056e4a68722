/* Template part of layers_impl.h: direct convolution as a GEMM. Strided convolutions build im2col
 * columns; stride-1 ones read the zero-padded image itself through tables of offsets (each tap a
 * shifted view of one small image), with the vectors along output rows (CONV_PIXELS) or output
 * channels (CONV_CHANNELS), whichever leaves fewer lanes idle. The choice of algorithm per call is
 * conv_impl.h's. */

/* ---- Direct convolution: im2col + GEMM ------------------------------------------------------ */

/* Row stride of col: P Q padded by a vector, so rows a power of two long do not all fall into the
 * same cache sets when a GEMM streams several of them. */
static inline int64_t FN(col_ld)(const lossk_conv2d_args *a) { return a->p * a->q + VL; }

/* col (C R S, P Q): row (c, r, s) holds the input pixels that kernel tap meets, 0 in padding. */
static void FN(im2col)(const lossk_conv2d_args *a, const T *x, T *col)
{
    const int64_t P = a->p, Q = a->q, sw = a->stride_w;
    for (int64_t c = 0; c < a->c; c++)
        for (int64_t r = 0; r < a->r; r++)
            for (int64_t s = 0; s < a->s; s++) {
                T *row = col + ((c * a->r + r) * a->s + s) * FN(col_ld)(a);
                /* output columns [lo, hi) read inside the input row */
                const int64_t first = s - a->pad_w;
                const int64_t lo = first >= 0 ? 0 : lossk_min64(Q, (-first + sw - 1) / sw);
                const int64_t hi = a->w - first <= 0 ? lo : lossk_min64(Q, (a->w - first + sw - 1) / sw);
                for (int64_t oh = 0; oh < P; oh++) {
                    const int64_t ih = oh * a->stride_h - a->pad_h + r;
                    T *o = row + oh * Q;
                    if (ih < 0 || ih >= a->h) {
                        memset(o, 0, sizeof(T) * Q);
                        continue;
                    }
                    const T *xr = x + (c * a->h + ih) * a->w + first;
                    /* one loop (with masked loads) rather than memset, memcpy, memset: the rows are
                     * short, and the library calls held a tenth of the profile of a 3-channel layer's
                     * forward pass */
                    if (sw == 1)
                        for (int64_t ow = 0; ow < Q; ow++)
                            o[ow] = ow >= lo && ow < hi ? xr[ow] : 0;
                    else
                        for (int64_t ow = 0; ow < Q; ow++)
                            o[ow] = ow >= lo && ow < hi ? xr[ow * sw] : 0;
                }
            }
}

/* ---- Stride-1 convolution: a GEMM over the padded image --------------------------------------
 * With stride 1, tap (c, r, s) of output pixel (oh, ow) reads pixel (oh + r, ow + s) of the
 * zero-padded image xp (C, HP, WP), at xp + (c HP + r) WP + s + (oh WP + ow): the tap's offset
 * boff[(c, r, s)] = (c HP + r) WP + s plus the pixel's oh WP + ow. So the convolution is a GEMM
 * that reads the padded image itself through two tables of offsets: no im2col, and the image is a
 * few kilobytes that stay in L1. Vectors run along one of two dimensions (conv_layout):
 * - CONV_PIXELS: along each output row, rounded up to whole vectors (P, QV). gemm_shifted, with
 *   voff[t] = oh WP + ow for vector t of the plane, and the kernel (K, C R S) as A.
 * - CONV_CHANNELS: along the output channels, rounded up to KV. gemm_ashifted, one row per output
 *   pixel with voff[j] = oh WP + ow for pixel j, and the kernel transposed (C R S, KV) as B; the
 *   output comes out channels-last and is transposed. No lane holds a pixel that is not there, so
 *   rows shorter than a vector (8 x 8 images with 16 lanes) cost nothing extra, and the weight
 *   gradient, a sum over pixels, needs no rows of whole vectors. */

static inline int64_t FN(shifted_qv)(const lossk_conv2d_args *a) { return (a->q + VL - 1) / VL * VL; }

/* With stride 1, the input gradient of `a` is the forward convolution of grad_output (K, P, Q)
 * with the kernel flipped and its channels swapped (C, K, R, S), padded by R - 1 - pad. */
static lossk_conv2d_args FN(conv_transposed)(const lossk_conv2d_args *a)
{
    lossk_conv2d_args t = *a;
    t.c = a->k, t.h = a->p, t.w = a->q, t.k = a->c, t.p = a->h, t.q = a->w;
    t.pad_h = a->r - 1 - a->pad_h, t.pad_w = a->s - 1 - a->pad_w;
    t.pool = 0;
    return t;
}

/* The forward pass takes the layout that computes fewer padding lanes (CONV_PIXELS on a tie: it
 * has no transpose). So does the weight gradient, a sum over output pixels, where a row's lanes
 * past Q are masked (gemm_nt) when rows are not whole vectors. With rows of whole vectors,
 * CONV_CHANNELS where WGRAD_CHANNELS says so and the output channels fill whole vectors (a few
 * channels in 16 lanes leave most of them idle). The input gradient is a forward
 * convolution (conv_transposed) when the padding is below the kernel's size. */
static int FN(conv_layout)(const lossk_conv2d_args *a, int op)
{
    if (a->stride_h != 1 || a->stride_w != 1)
        return CONV_IM2COL;
    if (op == OP_BACKWARD_INPUT) {
        if (a->pad_h >= a->r || a->pad_w >= a->s)
            return CONV_IM2COL;
        const lossk_conv2d_args t = FN(conv_transposed)(a);
        return FN(conv_layout)(&t, OP_FORWARD);
    }
    const int64_t QV = FN(shifted_qv)(a);
    if (op == OP_BACKWARD_WEIGHT) {
        const int64_t KV = FN(round_vl)(a->k);
        if (QV == a->q)
            return WGRAD_CHANNELS && KV == a->k ? CONV_CHANNELS : CONV_PIXELS;
        return a->q * KV >= a->k * QV ? CONV_PIXELS : CONV_CHANNELS;
    }
    if (FN(round_vl)(a->k) * a->q < a->k * QV)
        return CONV_CHANNELS;
    return CONV_PIXELS;
}

/* the padded image; with CONV_PIXELS the last row's columns past Q read up to VL elements past it */
static inline int64_t FN(shifted_xp_n)(const lossk_conv2d_args *a)
{
    return ALIGN_UP(a->c * (a->h + 2 * a->pad_h) * (a->w + 2 * a->pad_w) + VL);
}

/* entries of voff per image: vectors of the plane, or pixels */
static inline int64_t FN(shifted_outputs)(const lossk_conv2d_args *a, int layout)
{
    return layout == CONV_CHANNELS ? a->p * a->q : a->p * FN(shifted_qv)(a) / VL;
}

/* The weight gradient's sums run over the output pixels of this many images at a time (their
 * padded copies one after the other): with CONV_PIXELS so that a small image's few pixels do not
 * each leave a horizontal sum and an update of the partial gradient, with CONV_CHANNELS so that
 * each tile of the partial gradient is loaded and stored once per group. At least WGRAD_DOT
 * pixels, up to 8 images. Groups start at their block's first image: the same bits for any
 * thread count. */
static inline int64_t FN(shifted_group)(const lossk_conv2d_args *a, int op)
{
    const int64_t PQ = a->p * a->q;
    return op == OP_BACKWARD_WEIGHT ? lossk_min64(8, (WGRAD_DOT + PQ - 1) / PQ) : 1;
}

/* boff (C R S) and voff (group, shifted_outputs): output t of image g at g xp_n + voff[t] */
static void FN(shifted_offsets)(const lossk_conv2d_args *a, int layout, int64_t group, int64_t *boff, int64_t *voff)
{
    const int64_t HP = a->h + 2 * a->pad_h, WP = a->w + 2 * a->pad_w;
    const int64_t step = layout == CONV_CHANNELS ? 1 : VL, QS = layout == CONV_CHANNELS ? a->q : FN(shifted_qv)(a);
    for (int64_t c = 0; c < a->c; c++)
        for (int64_t r = 0; r < a->r; r++)
            for (int64_t s = 0; s < a->s; s++)
                boff[(c * a->r + r) * a->s + s] = (c * HP + r) * WP + s;
    for (int64_t g = 0, t = 0; g < group; g++)
        for (int64_t oh = 0; oh < a->p; oh++)
            for (int64_t ow = 0; ow < QS; ow += step)
                voff[t++] = g * FN(shifted_xp_n)(a) + oh * WP + ow;
}

/* Shared scratch of the kernel as the GEMM reads it (pack_kernel); 0 when that is w itself. */
static int64_t FN(packed_n)(const lossk_conv2d_args *a, int op, int layout)
{
    const lossk_conv2d_args t = op == OP_BACKWARD_INPUT ? FN(conv_transposed)(a) : *a;
    const int64_t L = t.c * t.r * t.s;
    if (layout == CONV_CHANNELS)
        return ALIGN_UP((L + 1) * FN(round_vl)(t.k));
    return layout == CONV_PIXELS && op == OP_BACKWARD_INPUT ? ALIGN_UP(L * t.k) : 0;
}

/* A block's partial weight gradient, (K, C R S) or with CONV_CHANNELS (C R S, KV), then its bias
 * gradient (K). */
static int64_t FN(wgrad_part_n)(const lossk_conv2d_args *a, int layout)
{
    const int64_t k = layout == CONV_CHANNELS ? FN(round_vl)(a->k) : a->k;
    return ALIGN_UP(a->c * a->r * a->s * k + a->k);
}

/* The kernel of the convolution a GEMM runs: w (K, C, R, S), or for the input gradient (flip) the
 * transposed convolution's (C, K, R, S), w's taps turned by 180 degrees. With CONV_PIXELS as
 * (output channels, taps); with CONV_CHANNELS as (taps, output channels padded to KV with zeros),
 * followed by the bias (zeros without one) padded likewise. */
static void FN(pack_kernel)(const lossk_conv2d_args *a, int flip, int layout, const T *w, const T *bias, T *dst)
{
    const int64_t R = a->r, S = a->s, CI = flip ? a->k : a->c, CO = flip ? a->c : a->k, L = CI * R * S;
    const int64_t KV = layout == CONV_CHANNELS ? FN(round_vl)(CO) : CO;
    const int64_t ocs = layout == CONV_CHANNELS ? 1 : L, ts = layout == CONV_CHANNELS ? KV : 1;
    for (int64_t o = 0; o < KV; o++)
        for (int64_t i = 0; i < CI; i++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t s = 0; s < S; s++)
                    dst[o * ocs + ((i * R + r) * S + s) * ts] =
                        o >= CO ? 0
                        : flip  ? w[((i * CO + o) * R + R - 1 - r) * S + S - 1 - s]
                                : w[((o * CI + i) * R + r) * S + s];
    for (int64_t o = 0; layout == CONV_CHANNELS && o < KV; o++)
        dst[L * KV + o] = bias && o < CO ? bias[o] : 0;
}

/* Per-thread scratch of one image of an op that is not Winograd's: im2col's col, or the padded
 * image and the output before it is packed (CONV_PIXELS with rows not whole vectors) or
 * transposed (CONV_CHANNELS), or (weight gradient) a group's padded images and output gradients. */
static int64_t FN(conv_image_n)(const lossk_conv2d_args *a, int op)
{
    const int layout = FN(conv_layout)(a, op);
    if (layout == CONV_IM2COL)
        return ALIGN_UP(a->c * a->r * a->s * FN(col_ld)(a));
    if (op == OP_BACKWARD_INPUT) {
        const lossk_conv2d_args t = FN(conv_transposed)(a);
        return FN(conv_image_n)(&t, OP_FORWARD);
    }
    const int64_t QV = FN(shifted_qv)(a), group = FN(shifted_group)(a, op), PQ = a->p * a->q;
    const int64_t KV = FN(round_vl)(a->k), xp_n = group * FN(shifted_xp_n)(a);
    if (layout == CONV_CHANNELS)
        return xp_n + ALIGN_UP(group * PQ * KV);
    if (op == OP_BACKWARD_WEIGHT)
        return xp_n + (group > 1 || QV != a->q ? ALIGN_UP(group * a->k * a->p * QV) : 0);
    return xp_n + (QV != a->q ? ALIGN_UP(a->k * a->p * QV) : 0);
}

/* dst[0, n) = src[0, n), for the rows of a small image: whole vectors, the last one ending at n
 * (overlapping the one before), or below a vector two overlapping blocks of the largest power of
 * two in bytes that fits, as a memcpy does inside, but inlined. A library call per row of tens of
 * elements costs more than the copy. */
LOSSK_INLINE void FN(copy_row)(T *dst, const T *src, int64_t n)
{
    if (n >= VL) {
        for (int64_t j = 0; j + VL <= n; j += VL) {
            VEC v = *(const VEC *)(src + j);
#if defined(__x86_64__) || defined(__i386__)
            __asm__("" : "+v"(v)); /* through a register: else GCC turns the loop back into memcpy */
#endif
            *(VEC *)(dst + j) = v;
        }
        *(VEC *)(dst + n - VL) = *(const VEC *)(src + n - VL);
        return;
    }
    char *d = (char *)dst;
    const char *s = (const char *)src;
    const size_t bytes = (size_t)n * sizeof(T);
#define COPY_BLOCKS(size) \
    if (bytes >= (size)) { \
        memcpy(d, s, (size)); \
        memcpy(d + bytes - (size), s + bytes - (size), (size)); \
        return; \
    }
    if (VBYTES > 32) /* below a vector of 32 bytes there are no 32 */
        COPY_BLOCKS(32)
    COPY_BLOCKS(16)
    COPY_BLOCKS(8)
    COPY_BLOCKS(4)
#undef COPY_BLOCKS
}

/* x (C, H, W) -> xp (C, HP, WP), zeros around and past it */
static void FN(pad_image)(const lossk_conv2d_args *a, const T *x, T *xp)
{
    const int64_t HP = a->h + 2 * a->pad_h, WP = a->w + 2 * a->pad_w;
    memset(xp, 0, sizeof(T) * FN(shifted_xp_n)(a));
    for (int64_t c = 0; c < a->c; c++)
        for (int64_t ih = 0; ih < a->h; ih++)
            FN(copy_row)(xp + (c * HP + ih + a->pad_h) * WP + a->pad_w, x + (c * a->h + ih) * a->w, a->w);
}

/* y (K, P, Q) = bias + the stride-1 convolution of x (C, H, W) with the kernel w as pack_kernel
 * lays it out (CONV_PIXELS: or w itself; CONV_CHANNELS: the bias comes with it), through the
 * offset tables; buf holds conv_image_n(a, OP_FORWARD) elements. */
static void FN(conv_image_shifted)(const lossk_conv2d_args *a, int layout, const T *x, const T *w, const T *bias,
                                   const int64_t *boff, const int64_t *voff, T *buf, T *y)
{
    const int64_t QV = FN(shifted_qv)(a), PQV = a->p * QV, L = a->c * a->r * a->s;
    if (layout == CONV_CHANNELS) {
        const int64_t PQ = a->p * a->q, KV = FN(round_vl)(a->k);
        T *yt = buf + FN(shifted_xp_n)(a); /* (P Q, KV), each row starting as the bias */
        for (int64_t j = 0; j < PQ; j++)
            FN(copy_row)(yt + j * KV, w + L * KV, KV);
        FN(pad_image)(a, x, buf);
        FN(gemm_ashifted)(PQ, KV, L, buf, voff, boff, w, KV, yt, KV, 1);
        FN(relayout)(1, a->k, PQ, y, PQ, yt, PQ, 0, KV);
        return;
    }
    T *wide = QV != a->q ? buf + FN(shifted_xp_n)(a) : y; /* rows QV long, then packed into y */
    for (int64_t k = 0; k < a->k; k++)
        for (int64_t i = 0; i < PQV; i++)
            wide[k * PQV + i] = bias ? bias[k] : 0;
    FN(pad_image)(a, x, buf);
    FN(gemm_shifted)(a->k, PQV / VL, L, w, L, 1, buf, boff, voff, wide, PQV, 1);
    for (int64_t kp = 0; wide != y && kp < a->k * a->p; kp++)
        FN(copy_row)(y + kp * a->q, wide + kp * QV, a->q);
}

/* dx (C, H, W) = sum of col's entries over the taps that read each pixel. */
static void FN(col2im)(const lossk_conv2d_args *a, const T *col, T *dx)
{
    const int64_t P = a->p, Q = a->q;
    memset(dx, 0, sizeof(T) * a->c * a->h * a->w);
    for (int64_t c = 0; c < a->c; c++)
        for (int64_t r = 0; r < a->r; r++)
            for (int64_t s = 0; s < a->s; s++) {
                const T *row = col + ((c * a->r + r) * a->s + s) * FN(col_ld)(a);
                for (int64_t oh = 0; oh < P; oh++) {
                    const int64_t ih = oh * a->stride_h - a->pad_h + r;
                    if (ih < 0 || ih >= a->h)
                        continue;
                    T *xr = dx + (c * a->h + ih) * a->w;
                    for (int64_t ow = 0; ow < Q; ow++) {
                        const int64_t iw = ow * a->stride_w - a->pad_w + s;
                        if (iw >= 0 && iw < a->w)
                            xr[iw] += row[oh * Q + ow];
                    }
                }
            }
}
