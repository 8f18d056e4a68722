/* Template part of layers_impl.h: cross-entropy of a linear layer's logits, a chunk of rows at a
 * time, so that no more than a chunk's logits and their gradient ever exist (lossk.h states the
 * contract). A chunk is held transposed, (V, rows): then every product is gemm_impl.h's outer-
 * product GEMM on the arrays as they are (the weight read by rows for the logits and the input's
 * gradient, the chunk's gradient read by rows for the weight's), and the chunk is a (1, V, rows)
 * input of the cross-entropy kernel, which computes the loss and its gradient over the classes
 * with everything cross_entropy has (weights, ignore_index, label smoothing, grad_output). */

/* classification.c's kernel of this same instruction set: the dispatcher chose it once, at the
 * public entry point (lossk_linear_cross_entropy_f32 or _f64) */
int LOSSK_ISA_NAME(FN(lossk_cross_entropy))(lossk_class_args *a);

/* Bytes of one work slice of `values` elements, on cache lines */
LOSSK_INLINE int64_t FN(lce_slice)(int64_t values) { return ALIGN_UP(values * (int64_t)sizeof(T)); }

/* The targets' check and the summed weight of the non-ignored ones, in row order, before any
 * output is written: a bad target then leaves every output as it was. */
static int FN(lce_targets)(lossk_linear_ce_args *a)
{
    const T *w = a->weight;
    double total = 0;
    for (int64_t i = 0; i < a->n; i++) {
        const int64_t t = READ_ONCE(((int64_t *)a->target)[i]);
        if (t == a->ignore_index)
            continue;
        if (t < 0 || t >= a->v) {
            a->bad_index = i;
            return LOSSK_ERR_TARGET;
        }
        total += w ? (double)w[t] : 1.0;
    }
    a->total_weight = total;
    return LOSSK_OK;
}

/* logits^T (V, m) = linear_weight (V, D) xt (D, m) [+ bias], xt the chunk's rows transposed */
static void FN(lce_logits)(const lossk_linear_ce_args *a, int64_t r0, int64_t m, T *xt, T *lt, int nt)
{
    const int64_t D = a->d, V = a->v;
    const T *x = (const T *)a->input + r0 * D, *w = a->linear_weight, *bias = a->linear_bias;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = THREAD_ID(), nth = NUM_THREADS();
        const product_part s = split_product(D, 0, 1, t, nth);
        FN(transpose)(m, s.r1 - s.r0, x + s.r0, D, xt + s.r0 * m, m);
        const product_part p = split_product(V, 0, 1, t, nth);
        for (int64_t v = p.r0; bias && v < p.r1; v++)
            for (int64_t j = 0; j < m; j++)
                lt[v * m + j] = bias[v];
#pragma omp barrier
        FN(gemm_tall)(p.r1 - p.r0, m, D, w + p.r0 * D, D, 1, xt, m, lt + p.r0 * m, m, bias != NULL);
    }
}

/* From the chunk's logit gradient gt (V, m): its rows' input gradient, and its part of the
 * weight's and bias's (the first chunk's overwrite, the others' add) */
static void FN(lce_backward)(const lossk_linear_ce_args *a, int64_t r0, int64_t m, const T *gt, int nt)
{
    const int64_t D = a->d, V = a->v;
    const T *x = (const T *)a->input + r0 * D, *w = a->linear_weight;
    T *dx = a->grad_input, *dw = a->grad_linear_weight, *db = a->grad_linear_bias;
    const int acc = r0 > 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = THREAD_ID(), nth = NUM_THREADS();
        if (dx) { /* dx (m, D) = gt^T (m, V) w (V, D) */
            const product_part p = split_product(m, D, VL, t, nth);
            FN(gemm)(p.r1 - p.r0, p.c1 - p.c0, V, gt + p.r0, 1, m, w + p.c0, D, dx + (r0 + p.r0) * D + p.c0, D, 0);
        }
        const product_part p = split_product(V, 0, 1, t, nth);
        if (dw) /* dw (V, D) [+]= gt (V, m) x (m, D) */
            FN(gemm_tall)(p.r1 - p.r0, D, m, gt + p.r0 * m, m, 1, x, D, dw + p.r0 * D, D, acc);
        for (int64_t v = p.r0; db && v < p.r1; v++) {
            T sum = acc ? db[v] : 0;
            for (int64_t j = 0; j < m; j++)
                sum += gt[v * m + j];
            db[v] = sum;
        }
    }
}

int LOSSK_ISA_NAME(FN(lossk_linear_cross_entropy))(lossk_linear_ce_args *a)
{
    const int64_t N = a->n, D = a->d, V = a->v;
    T *dw = a->grad_linear_weight, *db = a->grad_linear_bias;
    const int grad = a->grad_input || dw || db, reduce = a->reduction == LOSSK_REDUCTION_SUM;
    if (N < 0 || D < 0 || V < 1 || a->chunk < 1 || !a->linear_weight || !a->target || (N > 0 && !a->input)
        || (!a->loss && !grad) || (!reduce && a->reduction != LOSSK_REDUCTION_NONE) || a->mean_by_weight < 0
        || a->mean_by_weight > 2)
        return LOSSK_ERR_ARGUMENT;
    const int64_t m = lossk_max64(lossk_min64(a->chunk, N), 1);
    const int64_t work_size = FN(lce_slice)(D * m) + FN(lce_slice)(V * m) * (grad ? 2 : 1);
    if (!a->work) {
        a->work_size = work_size;
        return LOSSK_OK;
    }
    if (a->work_size < work_size)
        return LOSSK_ERR_ARGUMENT;
    int err = FN(lce_targets)(a);
    if (err)
        return err;
    const double divisor = a->mean_by_weight == 1 ? a->total_weight : a->divisor;
    T *xt = a->work, *lt = (T *)((char *)a->work + FN(lce_slice)(D * m));
    T *gt = grad ? (T *)((char *)lt + FN(lce_slice)(V * m)) : NULL;
    if (N == 0) { /* no chunk: the weight's and bias's gradients are zero */
        for (int64_t i = 0; dw && i < V * D; i++)
            dw[i] = 0;
        for (int64_t v = 0; db && v < V; v++)
            db[v] = 0;
    }
    const int nt = lossk_threads_for(m * V * D / 16);
    double sum = 0;
    for (int64_t r0 = 0; r0 < N; r0 += m) {
        const int64_t rows = lossk_min64(m, N - r0);
        FN(lce_logits)(a, r0, rows, xt, lt, nt);
        T chunk_loss;
        lossk_class_args ca = {
            .n = 1, .c = V, .s = rows, .spatial = 1, .input = lt, .target = a->target + r0, .weight = a->weight,
            .ignore_index = a->ignore_index, .label_smoothing = a->label_smoothing, .reduction = a->reduction,
            .mean_by_weight = a->mean_by_weight ? 2 : 0, .divisor = a->mean_by_weight ? divisor : 1,
            .loss = !a->loss ? NULL : reduce ? (void *)&chunk_loss : (void *)((T *)a->loss + r0), .grad = gt,
            .grad_output = a->grad_output ? (const T *)a->grad_output + r0 : NULL, .grad_scale = a->grad_scale,
            .bad_index = -1};
        if ((err = LOSSK_ISA_NAME(FN(lossk_cross_entropy))(&ca))) { /* a target changed since lce_targets read it */
            a->bad_index = r0 + ca.bad_index;
            return err;
        }
        sum += ca.sum;
        if (grad)
            FN(lce_backward)(a, r0, rows, gt, nt);
    }
    a->sum = sum;
    if (reduce && a->loss)
        *(T *)a->loss = a->mean_by_weight && divisor == 0 ? (T)NAN : (T)(sum / divisor);
    return LOSSK_OK;
}
