/* Template part of layers_impl.h: the conv2d entry points (forward, input gradient, weight
 * gradient, each optionally fused with the 2x2 max pooling after it). They check the arguments,
 * pick the algorithm (Winograd, the stride-1 shifted GEMM or im2col), size the scratch, and split
 * the batch among the threads; weight gradients sum over fixed blocks of images in block order, so
 * the result does not depend on the thread count. */

/* ---- conv2d kernels -------------------------------------------------------------------------- */

/* Winograd's transforms exist for 3x3 and 5x5 kernels, stride 1, padding below the kernel size. */
static int FN(wino_fits)(const lossk_conv2d_args *a)
{
    return a->r == a->s && (a->r == 3 || a->r == 5) && a->stride_h == 1 && a->stride_w == 1 && a->pad_h < a->r
           && a->pad_w < a->s;
}

static int FN(conv_check)(const lossk_conv2d_args *a, int op)
{
    if (a->n < 0 || a->c < 1 || a->h < 0 || a->w < 0 || a->k < 1 || a->r < 1 || a->s < 1
        || a->stride_h < 1 || a->stride_w < 1 || a->pad_h < 0 || a->pad_w < 0
        || a->pad_h > (INT64_MAX - a->h) / 2 || a->pad_w > (INT64_MAX - a->w) / 2
        || a->h + 2 * a->pad_h < a->r || a->w + 2 * a->pad_w < a->s
        || a->p != (a->h + 2 * a->pad_h - a->r) / a->stride_h + 1
        || a->q != (a->w + 2 * a->pad_w - a->s) / a->stride_w + 1
        || a->algo < LOSSK_CONV_AUTO || a->algo > LOSSK_CONV_WINOGRAD)
        return LOSSK_ERR_ARGUMENT;
    if (a->algo == LOSSK_CONV_WINOGRAD && !FN(wino_fits)(a))
        return LOSSK_ERR_ARGUMENT;
    if (op == OP_FORWARD && (!a->input || !a->weight || !a->output))
        return LOSSK_ERR_ARGUMENT;
    if (op == OP_BACKWARD_INPUT && (!a->grad_output || !a->weight || !a->grad_input))
        return LOSSK_ERR_ARGUMENT;
    if (op == OP_BACKWARD_WEIGHT && (!a->input || !a->grad_output || !a->grad_weight))
        return LOSSK_ERR_ARGUMENT;
    if (a->pool && ((op != OP_FORWARD && !a->indices) || a->p % 2 || a->q % 2))
        return LOSSK_ERR_ARGUMENT;
    if (op == OP_BACKWARD_INPUT && a->pool && a->n > 0) {
        /* before anything is written, so that bad indices leave the caller's buffers untouched (an
         * empty batch has none, and its P Q might not even fit in int64_t). The weight gradient
         * needs no such pass: it finds them as it unpools (grad_images) and then adds nothing.
         * Each index tested against its 2x2 window (window_place), the verdict ORed over a
         * row so that the loop vectorises. */
        const int64_t rows = a->n * a->k * (a->p / 2), pq = a->q / 2, w = a->q;
        const int nt = lossk_threads_for(rows * pq);
        int bad = 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : bad)
        for (int64_t row = 0; row < rows; row++) {
            const int64_t *idx = a->indices + row * pq, oh = row % (a->p / 2);
            uint64_t outside = 0;
            for (int64_t ow = 0; ow < pq; ow++)
                window_place(idx[ow], 2 * oh * w + 2 * ow, w, &outside);
            bad |= outside != 0;
        }
        if (bad)
            return LOSSK_ERR_ARGUMENT;
    }
    return LOSSK_OK;
}

/* Winograd when asked, or when it applies and both channel counts are large enough for its
 * transforms to pay (the 3-channel first layer of an image network stays direct). A 3x3 kernel
 * saves less (4 or 5.06 times fewer multiplies, not 6.25), and its tiles may overshoot the output
 * by much (6x6 tiles take 12x12 for 7x7): it needs 16 channels and tiles at least 3/4 covered
 * (the measurements: docs/performance.md). */
static int FN(conv_wino)(const lossk_conv2d_args *a)
{
    if (a->algo == LOSSK_CONV_WINOGRAD)
        return 1;
    if (a->algo != LOSSK_CONV_AUTO || !FN(wino_fits)(a))
        return 0;
    if (a->r == 5)
        return a->c >= 8 && a->k >= 8;
    const int64_t wo = FN(wino_tile)(3, a->p, a->q) - 2, ty = (a->p + wo - 1) / wo, tx = (a->q + wo - 1) / wo;
    return a->c >= 16 && a->k >= 16 && 4 * a->p * a->q >= 3 * wo * wo * ty * tx;
}

/* The geometry of the Winograd convolution an op runs: backward_input is a forward convolution
 * of grad_output with the flipped, transposed kernel and the complementary padding. */
static FN(wgeom) FN(conv_wgeom)(const lossk_conv2d_args *a, int op)
{
    if (op == OP_BACKWARD_INPUT)
        return FN(wino_geom)(a->n, a->k, a->p, a->q, a->c, a->h, a->w, a->r - 1 - a->pad_h, a->s - 1 - a->pad_w,
                             a->r, FN(wino_tile)(a->r, a->h, a->w));
    return FN(wino_geom)(a->n, a->c, a->h, a->w, a->k, a->p, a->q, a->pad_h, a->pad_w, a->r,
                         FN(wino_tile)(a->r, a->p, a->q));
}

/* grad_output of images [n, n + cnt): as given, or (pool) unpooled into buf: each pooled
 * gradient goes to its window's argmax, zeros elsewhere. NULL if an index is outside its window
 * (conv_check found none, but the caller may have changed them since). */
static const T *FN(grad_images)(const lossk_conv2d_args *a, int64_t n, int64_t cnt, T *buf)
{
    const int64_t PQ = a->p * a->q;
    if (!a->pool)
        return (const T *)a->grad_output + n * a->k * PQ;
    const T *g = (const T *)a->grad_output + n * a->k * PQ / 4;
    const int64_t *idx = a->indices + n * a->k * PQ / 4;
    memset(buf, 0, sizeof(T) * cnt * a->k * PQ);
    for (int64_t plane = 0; plane < cnt * a->k; plane++)
        if (FN(scatter_add)(buf + plane * PQ, g + plane * PQ / 4, idx + plane * PQ / 4, a->q, 2, 2, 2, 2, a->p / 2,
                            a->q / 2))
            return NULL;
    return buf;
}

/* The gradient of image n's 2x2 max-pooled output unpooled straight into a channels-last layout:
 * output pixel (y, x) at L + y l_rs + x l_cs holds KV channels (zero past K), what grad_images
 * and a relayout give with half the traffic. The argmax places (0-3 in the window) are found
 * into L itself, planar (as values of T), then go channels-last with the pooled gradient, a
 * quarter of the size each; each pooled pixel's channels then fill its window's four pixels: the
 * gradient at the argmax, 0 elsewhere. (A -0 stays -0, where grad_images' 0 + -0 gives +0; the
 * weight and bias gradients' sums start at +0, so neither can tell.) Each index is read once, by
 * the place pass. work: 2 (P/2 Q/2) KV elements. 1 if an index is outside its window (L then
 * holds garbage), else 0. */
static int FN(unpool_channels_last)(const lossk_conv2d_args *a, int64_t n, int64_t KV, T *L, int64_t l_rs,
                                    int64_t l_cs, T *work)
{
    const int64_t K = a->k, pp = a->p / 2, pq = a->q / 2, n4 = pp * pq, w = a->q;
    const T *g = (const T *)a->grad_output + n * K * n4;
    const int64_t *idx = a->indices + n * K * n4;
    T *planar = L, *gl = work, *places = work + n4 * KV;
    uint64_t outside = 0;
    for (int64_t row = 0; row < K * pp; row++) {
        const int64_t oh = row % pp;
        for (int64_t ow = 0; ow < pq; ow++)
            planar[row * pq + ow] = (T)window_place(idx[row * pq + ow], 2 * oh * w + 2 * ow, w, &outside);
    }
    if (outside)
        return 1;
    FN(relayout)(0, K, n4, planar, n4, places, n4, 0, KV);
    FN(relayout)(0, K, n4, (T *)g, n4, gl, n4, 0, KV);
    for (int64_t j = 0; KV > K && j < n4; j++)
        for (int64_t k = K; k < KV; k++)
            places[j * KV + k] = -1; /* no place: zeros in the channels past K (unused, but garbage there
                                      * might be denormals, which slow the multiplies) */
    for (int64_t oh = 0; oh < pp; oh++)
        for (int64_t ow = 0; ow < pq; ow++)
            for (int64_t v = 0; v < KV; v += VL) {
                const int64_t j = (oh * pq + ow) * KV + v;
                const FN(ivec) gv = *(const FN(ivec) *)(gl + j);
                const VEC at = *(const VEC *)(places + j);
                for (int e = 0; e < 4; e++)
                    *(VEC *)(L + (2 * oh + e / 2) * l_rs + (2 * ow + e % 2) * l_cs + v) = (VEC)(gv & (at == (T)e));
            }
    return 0;
}

/* dbias[k] += the sum of channel k of a channels-last P x Q gradient (as unpool_channels_last
 * lays it out), in sum's order over the planar plane: pixel i into lane i % VL, the lanes then
 * added in order, so that it has the bits of the bias gradient of the same gradient given planar. */
static void FN(bias_channels_last)(const lossk_conv2d_args *a, int64_t KV, const T *L, int64_t l_rs, int64_t l_cs,
                                   T *dbias)
{
    for (int64_t v = 0; v < KV; v += VL) {
        VEC lanes[VL];
        for (int64_t l = 0; l < VL; l++)
            lanes[l] = (VEC){0};
        for (int64_t y = 0, l = 0; y < a->p; y++)
            for (int64_t x = 0; x < a->q; x++, l = l + 1 == VL ? 0 : l + 1)
                lanes[l] += *(const VEC *)(L + y * l_rs + x * l_cs + v);
        for (int64_t k = v; k < lossk_min64(v + VL, a->k); k++) {
            T sum = 0;
            for (int64_t l = 0; l < VL; l++)
                sum += lanes[l][k - v];
            dbias[k] += sum;
        }
    }
}

/* Per-thread elements of a pooled backward pass's unpooled gradient: grad_images' planar images
 * of a group, or (the channel layout's weight gradient) unpool_channels_last's work. */
static int64_t FN(unpool_n)(const lossk_conv2d_args *a, int op)
{
    if (op == OP_FORWARD || !a->pool)
        return 0;
    const int64_t PQ = a->p * a->q;
    if (op == OP_BACKWARD_WEIGHT && !FN(conv_wino)(a) && FN(conv_layout)(a, op) == CONV_CHANNELS)
        return ALIGN_UP(PQ / 2 * FN(round_vl)(a->k));
    return ALIGN_UP(FN(conv_wgeom)(a, op).group * a->k * PQ);
}

/* Scratch of an op in elements: shared by all threads, and per thread. */
static void FN(conv_scratch)(const lossk_conv2d_args *a, int op, int64_t *shared, int64_t *per_thread)
{
    const int64_t PQ = a->p * a->q, nb = lossk_min64(a->n, WGRAD_BLOCKS);
    const int64_t unpool = FN(unpool_n)(a, op);
    if (FN(conv_wino)(a)) {
        FN(wgeom) g = FN(conv_wgeom)(a, op);
        int64_t xp_n, v_n, m_n;
        *per_thread = unpool + FN(wino_scratch)(&g, &xp_n, &v_n, &m_n);
        *shared = op == OP_BACKWARD_WEIGHT ? nb * ALIGN_UP(g.wf * g.cp * g.kp + a->k) : ALIGN_UP(g.wf * g.cp * g.kp + g.kp);
    } else {
        const int layout = FN(conv_layout)(a, op);
        const lossk_conv2d_args t = op == OP_BACKWARD_INPUT ? FN(conv_transposed)(a) : *a;
        const int64_t tables = t.c * t.r * t.s + FN(shifted_group)(a, op) * FN(shifted_outputs)(&t, layout); /* int64_t */
        *per_thread = unpool + FN(conv_image_n)(a, op) + (op == OP_FORWARD && a->pool ? ALIGN_UP(PQ * a->k) : 0);
        *shared = (op == OP_BACKWARD_WEIGHT ? nb * FN(wgrad_part_n)(a, layout) : FN(packed_n)(a, op, layout))
                  + (layout != CONV_IM2COL ? ALIGN_UP(tables * (int64_t)(sizeof(int64_t) / sizeof(T))) : 0);
    }
}

/* Checks the arguments and the scratch; returns the thread count to use (0: stop with *err).
 * Callers compute their sizes after it: before the checks, or in an empty batch (huge padding),
 * products such as P Q may not fit in int64_t. */
static int FN(conv_begin)(lossk_conv2d_args *a, int op, int *err, T **shared, T **threads, int64_t *per_thread)
{
    *err = FN(conv_check)(a, op);
    if (*err != LOSSK_OK)
        return 0;
    if (a->n == 0) { /* nothing to compute, and a large padding's scratch might not even fit in memory */
        if (!a->work)
            a->work_size = 0;
        return 0;
    }
    int64_t sh, pt;
    FN(conv_scratch)(a, op, &sh, &pt);
    const int max_nt = lossk_get_num_threads();
    if (!a->work) {
        a->work_size = (int64_t)sizeof(T) * (sh + max_nt * pt) + 64;
        return 0;
    }
    /* the thread count may have changed since the size query: use no more threads than fit */
    T *base = (T *)(((uintptr_t)a->work + 63) & ~(uintptr_t)63);
    const int64_t avail = (a->work_size - ((char *)base - (char *)a->work)) / (int64_t)sizeof(T) - sh;
    int nt = lossk_threads_for(a->n * a->k * (a->c * a->r * a->s) * (a->p * a->q));
    if (nt > a->n && op != OP_BACKWARD_WEIGHT)
        nt = a->n > 0 ? (int)a->n : 1;
    if (avail < pt || a->work_size < 0) {
        *err = LOSSK_ERR_ARGUMENT;
        return 0;
    }
    if (nt > avail / pt)
        nt = (int)(avail / pt);
    *shared = base;
    *threads = base + sh;
    *per_thread = pt;
    return nt;
}

int LOSSK_ISA_NAME(FN(lossk_conv2d_forward))(lossk_conv2d_args *a)
{
    int err;
    T *shared, *scratch;
    int64_t pt;
    const int nt = FN(conv_begin)(a, OP_FORWARD, &err, &shared, &scratch, &pt);
    if (!nt)
        return err;
    const int64_t PQ = a->p * a->q, L = a->c * a->r * a->s;
    const T *x = a->input, *w = a->weight, *bias = a->bias;
    T *y = a->output;
    const int64_t ysize = a->pool ? a->k * PQ / 4 : a->k * PQ;
    if (FN(conv_wino)(a)) {
        const FN(wgeom) g = FN(conv_wgeom)(a, OP_FORWARD);
        FN(wino_weights)(&g, w, a->c * a->r * a->s, a->r * a->s, 0, bias, shared, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int64_t n = 0; n < a->n; n += g.group)
            FN(wino_group)(&g, lossk_min64(g.group, a->n - n), x + n * a->c * a->h * a->w, shared, bias != NULL,
                           y + n * ysize, ysize, a->pool, a->indices ? a->indices + n * ysize : NULL,
                           scratch + THREAD_ID() * pt);
        return LOSSK_OK;
    }
    const int layout = FN(conv_layout)(a, OP_FORWARD);
    const int64_t buf_n = FN(conv_image_n)(a, OP_FORWARD);
    T *packed = shared; /* CONV_CHANNELS: the kernel transposed, and the bias */
    int64_t *boff = (int64_t *)(shared + FN(packed_n)(a, OP_FORWARD, layout)), *voff = boff + L;
    if (layout != CONV_IM2COL)
        FN(shifted_offsets)(a, layout, 1, boff, voff);
    if (layout == CONV_CHANNELS)
        FN(pack_kernel)(a, 0, layout, w, bias, packed);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t n = 0; n < a->n; n++) {
        T *buf = scratch + THREAD_ID() * pt, *yn = a->pool ? buf + buf_n : y + n * ysize;
        const T *xn = x + n * a->c * a->h * a->w;
        if (layout != CONV_IM2COL) {
            FN(conv_image_shifted)(a, layout, xn, layout == CONV_CHANNELS ? packed : w, bias, boff, voff, buf, yn);
        } else {
            FN(im2col)(a, xn, buf);
            for (int64_t k = 0; k < a->k; k++)
                for (int64_t i = 0; i < PQ; i++)
                    yn[k * PQ + i] = bias ? bias[k] : 0;
            FN(gemm)(a->k, PQ, L, w, L, 1, buf, FN(col_ld)(a), yn, PQ, 1);
        }
        for (int64_t k = 0; a->pool && k < a->k; k++) /* pooled while the image is in cache */
            FN(pool_plane)(yn + k * PQ, a->p, a->q, 2, 2, 2, 2, a->p / 2, a->q / 2, y + n * ysize + k * PQ / 4,
                           a->indices ? a->indices + n * ysize + k * PQ / 4 : NULL);
    }
    return LOSSK_OK;
}

int LOSSK_ISA_NAME(FN(lossk_conv2d_backward_input))(lossk_conv2d_args *a)
{
    int err;
    T *shared, *scratch;
    int64_t pt;
    const int nt = FN(conv_begin)(a, OP_BACKWARD_INPUT, &err, &shared, &scratch, &pt);
    if (!nt)
        return err;
    const int64_t PQ = a->p * a->q, L = a->c * a->r * a->s, HW = a->h * a->w;
    const T *w = a->weight;
    T *dx = a->grad_input;
    const int64_t unpool = FN(unpool_n)(a, OP_BACKWARD_INPUT);
    int bad = 0;
    if (FN(conv_wino)(a)) {
        const FN(wgeom) g = FN(conv_wgeom)(a, OP_BACKWARD_INPUT);
        FN(wino_weights)(&g, w, a->r * a->s, a->c * a->r * a->s, 1, NULL, shared, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : bad)
        for (int64_t n = 0; n < a->n; n += g.group) {
            T *tw = scratch + THREAD_ID() * pt;
            const int64_t cnt = lossk_min64(g.group, a->n - n);
            const T *dy = FN(grad_images)(a, n, cnt, tw);
            if (dy)
                FN(wino_group)(&g, cnt, dy, shared, 0, dx + n * a->c * HW, a->c * HW, 0, NULL, tw + unpool);
            bad |= !dy;
        }
        return bad ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
    }
    const int layout = FN(conv_layout)(a, OP_BACKWARD_INPUT);
    const lossk_conv2d_args t = FN(conv_transposed)(a);
    const int64_t K = a->k, C = a->c;
    T *wt = shared; /* the transposed convolution's kernel: w's flipped */
    int64_t *boff = (int64_t *)(shared + FN(packed_n)(a, OP_BACKWARD_INPUT, layout)), *voff = boff + K * a->r * a->s;
    if (layout != CONV_IM2COL) {
        FN(pack_kernel)(a, 1, layout, w, NULL, wt);
        FN(shifted_offsets)(&t, layout, 1, boff, voff);
    }
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : bad)
    for (int64_t n = 0; n < a->n; n++) {
        T *tw = scratch + THREAD_ID() * pt, *dcol = tw + unpool;
        const T *dy = FN(grad_images)(a, n, 1, tw);
        if (dy && layout != CONV_IM2COL) {
            FN(conv_image_shifted)(&t, layout, dy, wt, NULL, boff, voff, dcol, dx + n * C * HW);
        } else if (dy) {
            FN(gemm)(L, PQ, K, w, 1, L, dy, PQ, dcol, FN(col_ld)(a), 0);
            FN(col2im)(a, dcol, dx + n * C * HW);
        }
        bad |= !dy;
    }
    return bad ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
}

int LOSSK_ISA_NAME(FN(lossk_conv2d_backward_weight))(lossk_conv2d_args *a)
{
    int err;
    T *shared, *scratch;
    int64_t pt;
    const int nt = FN(conv_begin)(a, OP_BACKWARD_WEIGHT, &err, &shared, &scratch, &pt);
    if (!nt)
        return err;
    const int64_t PQ = a->p * a->q, L = a->c * a->r * a->s, C = a->c, K = a->k, RS = a->r * a->s;
    const T *x = a->input;
    T *dw = a->grad_weight, *db = a->grad_bias;
    const int wino = FN(conv_wino)(a);
    const FN(wgeom) g = FN(conv_wgeom)(a, OP_BACKWARD_WEIGHT);
    const int64_t unpool = FN(unpool_n)(a, OP_BACKWARD_WEIGHT);
    const int layout = wino ? CONV_IM2COL : FN(conv_layout)(a, OP_BACKWARD_WEIGHT);
    /* a pooled gradient for the channel layout goes there straight from its pooled form, saving a
     * pass (Winograd's relayout into its tiles gains nothing from it) */
    const int cl = a->pool && layout == CONV_CHANNELS;
    const int64_t nb = lossk_min64(a->n, WGRAD_BLOCKS);
    const int64_t part_n = wino ? ALIGN_UP(g.wf * g.cp * g.kp + K) : FN(wgrad_part_n)(a, layout);
    int64_t xp_n, v_n, m_n;
    FN(wino_scratch)(&g, &xp_n, &v_n, &m_n);
    const int64_t sg = FN(shifted_group)(a, OP_BACKWARD_WEIGHT), xpn = FN(shifted_xp_n)(a), KV = FN(round_vl)(K);
    /* element (k, (c, r, s)) of a partial */
    const int64_t pk = layout == CONV_CHANNELS ? 1 : L, pl = layout == CONV_CHANNELS ? KV : 1;
    int64_t *boff = (int64_t *)(shared + nb * part_n), *voff = boff + L;
    if (layout != CONV_IM2COL)
        FN(shifted_offsets)(a, layout, sg, boff, voff);
    int bad = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        T *dybuf = scratch + THREAD_ID() * pt, *tw = dybuf + unpool;
#pragma omp for schedule(static) reduction(| : bad)
        for (int64_t b = 0; b < nb; b++) {
            T *part = shared + b * part_n, *dbias = part + part_n - K;
            const int64_t n0 = a->n * b / nb, n1 = a->n * (b + 1) / nb;
            for (int64_t k = 0; k < K; k++)
                dbias[k] = 0;
            for (int64_t n = n0; n < n1; n++) {
                const T *xn = x + n * C * a->h * a->w, *dyn = cl ? NULL : FN(grad_images)(a, n, 1, dybuf);
                if (!cl && !dyn) {
                    bad = 1;
                    break;
                }
                if (wino) {
                    /* a group of images at a time: GEMMs with group * nt rows of tiles */
                    T *V = tw + xp_n, *dM = V + v_n;
                    const int64_t gi = (n - n0) % g.group, last = gi + 1 == g.group || n + 1 == n1;
                    FN(wino_input)(&g, xn, tw, V + gi * g.nt * g.wf * g.cp);
                    FN(wino_grad_output)(&g, dyn, dM + m_n, dM + gi * g.nt * g.wf * g.kp);
                    if (last)
                        for (int64_t e = 0; e < g.wf; e++)
                            FN(gemm)(g.cp, g.kp, (gi + 1) * g.nt, V + e * g.cp, 1, g.wf * g.cp, dM + e * g.kp,
                                     g.wf * g.kp, part + e * g.cp * g.kp, g.kp, n - gi > n0);
                } else if (layout != CONV_IM2COL) {
                    T *dyg = tw + sg * xpn; /* (K, sg PQ), a group of one reading dyn itself; or (sg PQ, KV) */
                    const int64_t gi = (n - n0) % sg, last = gi + 1 == sg || n + 1 == n1;
                    FN(pad_image)(a, xn, tw + gi * xpn);
                    if (layout == CONV_CHANNELS) {
                        T *rows = dyg + gi * PQ * KV;
                        if (cl && FN(unpool_channels_last)(a, n, KV, rows, a->q * KV, KV, dybuf)) {
                            bad = 1;
                            break;
                        }
                        if (cl)
                            FN(bias_channels_last)(a, KV, rows, a->q * KV, KV, dbias);
                        else
                            FN(relayout)(0, K, PQ, (T *)dyn, PQ, rows, PQ, 0, KV);
                        for (int64_t j = 0; !cl && KV > K && j < PQ; j++)
                            memset(rows + j * KV + K, 0, sizeof(T) * (KV - K));
                        if (last)
                            FN(gemm_ashifted)(L, KV, (gi + 1) * PQ, tw, boff, voff, dyg, KV, part, KV, n - gi > n0);
                    } else {
                        const int64_t QV = FN(shifted_qv)(a), PQV = a->p * QV, staged = sg > 1 || QV != a->q;
                        for (int64_t k = 0; staged && k < K; k++)
                            for (int64_t oh = 0; oh < a->p; oh++) {
                                T *row = dyg + ((k * sg + gi) * a->p + oh) * QV;
                                FN(copy_row)(row, dyn + (k * a->p + oh) * a->q, a->q);
                                for (int64_t j = a->q; j < QV; j++)
                                    row[j] = -(T)0; /* times the masked 0: -0, which changes no sum */
                            }
                        if (last)
                            FN(gemm_nt)(K, L, (gi + 1) * PQV, staged ? dyg : dyn, sg * PQV, tw, 0, boff, voff,
                                        QV != a->q ? QV / VL : 0, a->q % VL, part, L, n - gi > n0);
                    }
                } else {
                    FN(im2col)(a, xn, tw);
                    FN(gemm_nt)(K, L, PQ, dyn, PQ, tw, FN(col_ld)(a), NULL, NULL, 0, 0, part, L, n > n0);
                }
                for (int64_t k = 0; !cl && k < K; k++)
                    dbias[k] += FN(sum)(dyn + k * PQ, PQ);
            }
        }
        /* partials added in block order; Winograd's are in the transformed domain. After a bad
         * index they are incomplete: grad_weight and grad_bias stay as they were. */
        if (!wino) {
            /* in the partials' own order (CONV_CHANNELS: (C R S, KV)), as they outgrow the caches: read
             * across their rows, this sum dominated large layers' weight gradients */
            const int chan = layout == CONV_CHANNELS;
#pragma omp for schedule(static)
            for (int64_t o = 0; o < (bad ? 0 : chan ? L : K); o++)
                for (int64_t i = 0; i < (chan ? K : L); i++) {
                    const int64_t k = chan ? i : o, l = chan ? o : i;
                    T sum = 0;
                    for (int64_t b = 0; b < nb; b++)
                        sum += shared[b * part_n + k * pk + l * pl];
                    dw[k * L + l] += sum;
                }
        } else {
            /* the blocks' sums into the first block's partial, in memory order (not across the
             * frequencies, which strides through memory) */
#pragma omp for schedule(static)
            for (int64_t v = 0; v < (bad ? 0 : g.wf * g.cp * g.kp / VL); v++) {
                VEC sum = (VEC){0};
                for (int64_t b = 0; b < nb; b++)
                    sum += *(const VEC *)(shared + b * part_n + v * VL);
                *(VEC *)(shared + v * VL) = sum;
            }
#pragma omp for schedule(static)
            for (int64_t kc = 0; kc < (bad ? 0 : K * C); kc++) {
                const int64_t k = kc / C, c = kc % C;
                if (k % VL)
                    continue; /* one vector of output channels at a time */
                VEC sum[WF], out[25];
                for (int64_t e = 0; e < g.wf; e++)
                    sum[e] = *(const VEC *)(shared + (e * g.cp + c) * g.kp + k);
                if (a->r == 5)
                    SEPARABLE(FN(wt_gt), 8, 5, 8, 5, sum, 8, 1, out);
                else if (g.wt == 8)
                    SEPARABLE(FN(wt_gt), 8, 3, 8, 3, sum, 8, 1, out);
                else
                    SEPARABLE(FN(wt_gt), 6, 3, 6, 3, sum, 6, 1, out);
                for (int64_t j = 0; j < VL && k + j < K; j++)
                    for (int64_t e = 0; e < RS; e++)
                        dw[((k + j) * C + c) * RS + e] += out[e][j];
            }
        }
#pragma omp single
        if (db && !bad)
            for (int64_t k = 0; k < K; k++) {
                T sum = 0;
                for (int64_t b = 0; b < nb; b++)
                    sum += shared[b * part_n + part_n - K + k];
                db[k] += sum;
            }
    }
    return bad ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
}
