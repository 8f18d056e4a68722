/* Template part of layers_impl.h: max pooling and its backward pass. 2x2 windows of stride 2 go a
 * vector of outputs at a time (also on rows shorter than a vector); other windows take the
 * general loop. The first maximum wins and a nan beats every number, as in PyTorch; the backward
 * pass scatters the gradient to the recorded argmax and refuses indices outside their window. */

/* ---- max_pool2d ------------------------------------------------------------------------------ */

static int FN(pool_check)(const lossk_pool2d_args *a)
{
    if (a->n < 0 || a->c < 0 || a->h < 0 || a->w < 0 || a->kh < 1 || a->kw < 1 || a->stride_h < 1
        || a->stride_w < 1 || a->h < a->kh || a->w < a->kw || a->p != (a->h - a->kh) / a->stride_h + 1
        || a->q != (a->w - a->kw) / a->stride_w + 1)
        return LOSSK_ERR_ARGUMENT;
    return LOSSK_OK;
}

/* The 2x2 maxima of VL windows whose rows start at r0 and r1 (2 VL values each), and which of
 * the four won (0-3): PyTorch's rule, the first maximum in row-major order, nan beats all. */
LOSSK_INLINE void FN(pool_max4)(const T *r0, const T *r1, FN(ivec) even, FN(ivec) odd, VEC *best, FN(ivec) *arg)
{
    const VEC a0 = *(const VEC *)r0, b0 = *(const VEC *)(r0 + VL);
    const VEC a1 = *(const VEC *)r1, b1 = *(const VEC *)(r1 + VL);
    const VEC cand[4] = {__builtin_shuffle(a0, b0, even), __builtin_shuffle(a0, b0, odd),
                         __builtin_shuffle(a1, b1, even), __builtin_shuffle(a1, b1, odd)};
    *best = cand[0];
    *arg = (FN(ivec)){0};
    for (int e = 1; e < 4; e++) {
        const FN(ivec) take = (cand[e] > *best) | (cand[e] != cand[e]);
        *best = (VEC)(((FN(ivec))cand[e] & take) | ((FN(ivec))*best & ~take));
        *arg = (*arg & ~take) | (take & e);
    }
}

/* One plane: y (p, q) and indices (unless NULL) from x (h, w); PyTorch's rule: the first maximum
 * in row-major order, and nan beats everything. 2x2 windows with stride 2 go VL outputs at a time,
 * a row's last vector (or a row shorter than one) with its lanes past the row unused: their loads
 * run into the next input rows, or, at the plane's end, into a zero-padded copy, and their
 * results into the next output rows, which are written after, except at the plane's end. Other
 * windows one output at a time. */
static void FN(pool_plane)(const T *x, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           int64_t p, int64_t q, T *y, int64_t *indices)
{
    const int fast = kh == 2 && kw == 2 && sh == 2 && sw == 2;
    FN(ivec) even, odd;
    for (int64_t j = 0; j < VL; j++) {
        even[j] = (TI)(2 * j);
        odd[j] = (TI)(2 * j + 1);
    }
    T tail[4 * VL];
    for (int64_t oh = 0; oh < p; oh++) {
        /* the argmax's place in the plane */
#define POOL_INDEX(j) (indices[oh * q + ow + (j)] = (2 * oh + arg[j] / 2) * w + 2 * (ow + (j)) + arg[j] % 2)
        int64_t ow = 0;
        for (; fast && ow + VL <= q; ow += VL) {
            const T *r0 = x + 2 * oh * w + 2 * ow;
            VEC best;
            FN(ivec) arg;
            FN(pool_max4)(r0, r0 + w, even, odd, &best, &arg);
            *(VEC *)(y + oh * q + ow) = best;
            for (int64_t j = 0; indices && j < VL; j++)
                POOL_INDEX(j);
        }
        if (fast && ow < q) {
            const T *r0 = x + 2 * oh * w + 2 * ow, *r1 = r0 + w;
            const int64_t lanes = q - ow;
            VEC best;
            FN(ivec) arg;
            if ((2 * oh + 1) * w + 2 * ow + 2 * VL > h * w) {
                for (int v = 0; v < 4; v++)
                    *(VEC *)(tail + v * VL) = (VEC){0};
                FN(copy_row)(tail, r0, 2 * lanes);
                FN(copy_row)(tail + 2 * VL, r1, 2 * lanes);
                r0 = tail, r1 = tail + 2 * VL;
            }
            FN(pool_max4)(r0, r1, even, odd, &best, &arg);
            if (oh * q + ow + VL <= p * q) /* the lanes past the row go to the next rows, rewritten later */
                *(VEC *)(y + oh * q + ow) = best;
            else
                FN(copy_row)(y + oh * q + ow, (const T *)&best, lanes);
            for (int64_t j = 0; indices && j < lanes; j++)
                POOL_INDEX(j);
        }
#undef POOL_INDEX
        for (ow = 0; !fast && ow < q; ow++) {
            const int64_t h0 = oh * sh, w0 = ow * sw;
            int64_t arg = h0 * w + w0;
            T best = x[arg];
            for (int64_t i = 0; i < kh; i++)
                for (int64_t j = 0; j < kw; j++) {
                    const int64_t at = (h0 + i) * w + w0 + j;
                    if (x[at] > best || x[at] != x[at]) {
                        best = x[at];
                        arg = at;
                    }
                }
            y[oh * q + ow] = best;
            if (indices)
                indices[oh * q + ow] = arg;
        }
    }
}

int LOSSK_ISA_NAME(FN(lossk_max_pool2d_forward))(lossk_pool2d_args *a)
{
    if (FN(pool_check)(a) != LOSSK_OK || !a->input || !a->output)
        return LOSSK_ERR_ARGUMENT;
    if (a->n == 0 || a->c == 0) /* nothing to compute, and H W need not even fit in int64_t */
        return LOSSK_OK;
    const T *x = a->input;
    T *y = a->output;
    const int64_t planes = a->n * a->c, HW = a->h * a->w, PQ = a->p * a->q;
    const int nt = lossk_threads_for(planes * HW);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t pl = 0; pl < planes; pl++)
        FN(pool_plane)(x + pl * HW, a->h, a->w, a->kh, a->kw, a->stride_h, a->stride_w, a->p, a->q, y + pl * PQ,
                       a->indices ? a->indices + pl * PQ : NULL);
    return LOSSK_OK;
}

/* Backward of one plane of a max pooling whose (p, q) outputs have kh x kw windows at strides
 * (sh, sw) in an input plane w wide: plane[idx[i]] += g[i] (with plane NULL, only the check).
 * 1 at the first index outside its own output's window (the rest not added), else 0: an index
 * inside the plane but in another window would send the gradient to a pixel that output never
 * read. The check is the write's own read of the index: a separate pass first could not stop
 * another thread from changing the index between the check and the write. Inlined, so that
 * callers passing a constant geometry get the window test unrolled. */
LOSSK_INLINE int FN(scatter_add)(T *plane, const T *g, const int64_t *idx, int64_t w, int64_t kh, int64_t kw,
                                 int64_t sh, int64_t sw, int64_t p, int64_t q)
{
    for (int64_t oh = 0; oh < p; oh++)
        for (int64_t ow = 0; ow < q; ow++) {
            /* In the window when, for one of its rows, the offset from that row's start is below kw.
             * Unsigned, so that no index, however large or negative, overflows, and one before a
             * row's start wraps around to a huge offset. The smallest offset over the rows, not a
             * branch on which row holds the argmax (random, so mispredicted) nor a division by w
             * (both slow). Every window lies inside
             * the plane, so an index inside its window is too. */
            const int64_t at = READ_ONCE(idx[oh * q + ow]);
            uint64_t off = (uint64_t)at - (uint64_t)(oh * sh * w + ow * sw), row_off = off;
            for (int64_t row = 1; row < kh; row++) {
                row_off -= (uint64_t)w;
                off = row_off < off ? row_off : off;
            }
            if (off >= (uint64_t)kw)
                return 1;
            if (plane)
                plane[at] += g[oh * q + ow];
        }
    return 0;
}

int LOSSK_ISA_NAME(FN(lossk_max_pool2d_backward))(lossk_pool2d_args *a)
{
    if (FN(pool_check)(a) != LOSSK_OK || !a->grad_output || !a->grad_input || !a->indices)
        return LOSSK_ERR_ARGUMENT;
    if (a->n == 0 || a->c == 0) /* nothing to compute, and H W need not even fit in int64_t */
        return LOSSK_OK;
    const T *dy = a->grad_output;
    T *dx = a->grad_input;
    const int64_t planes = a->n * a->c, HW = a->h * a->w, PQ = a->p * a->q;
    const int nt = lossk_threads_for(planes * HW);
    /* the usual 2x2 windows at stride 2 as constants: their index check then costs next to nothing */
    const int fast = a->kh == 2 && a->kw == 2 && a->stride_h == 2 && a->stride_w == 2;
    int bad = 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : bad)
    for (int64_t pl = 0; pl < planes; pl++) {
        T *plane = dx + pl * HW;
        const T *g = dy + pl * PQ;
        const int64_t *idx = a->indices + pl * PQ;
        memset(plane, 0, sizeof(T) * HW); /* a plane at a time: the scatter then hits cache */
        bad |= fast ? FN(scatter_add)(plane, g, idx, a->w, 2, 2, 2, 2, a->p, a->q)
                    : FN(scatter_add)(plane, g, idx, a->w, a->kh, a->kw, a->stride_h, a->stride_w, a->p, a->q);
    }
    return bad ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
}
