/* Template for margin.c: T is the element type, SFX its suffix (f32, f64).
 *
 * Rows are independent. A block of rows takes each row a chunk of MC classes at a time: the loss
 * terms go to a scratch chunk and are added in the sum lanes (so a row's sum is in double and in
 * an order fixed by the data), the derivatives straight into the row's gradient. */
#define FN(name) LOSSK_CAT(name, SFX)
#define STREAM LOSSK_CAT(lossk_stream, SFX)
#define MC 512 /* classes per chunk: a multiple of LOSSK_LANES */

enum { FN(MULTI_MARGIN), FN(MULTILABEL_MARGIN), FN(MULTILABEL_SOFT_MARGIN) };

typedef struct {
    const lossk_margin_args *a;
    int reduce;
    int stream;             /* stage each row's gradient and stream it out */
    int nb;
    double *partial;
    unsigned char *marks;   /* multilabel_margin: C bytes per block, which classes a row lists */
} FN(margin_job);

/* Row x (C,) with class t: sum over i != t of w_t max(0, margin - x_t + x_i)^p (p = 2: square).
 * d/dx_i = k w_t (1 or 2z) where the term is on, d/dx_t = -(their sum); g NULL: no gradient. */
LOSSK_INLINE double FN(multi_margin_row)(const T *restrict x, int64_t C, int64_t t, T wt, T margin,
                                         const int square, T k, T *restrict g, T *restrict h)
{
    const T base = margin - x[t], kw = k * wt;
    double acc[LOSSK_LANES] = {0}, dacc[LOSSK_LANES] = {0};
    for (int64_t c0 = 0; c0 < C; c0 += MC) {
        const int64_t L = lossk_min64(MC, C - c0);
        for (int64_t j = 0; j < L; j++) {
            const T z = base + x[c0 + j];
            const int on = z > 0 && c0 + j != t;
            h[j] = on ? (square ? z * z : z) : (T)0;
            if (g)
                g[c0 + j] = on ? kw * (square ? 2 * z : (T)1) : (T)0;
        }
        LOSSK_CAT(lossk_add_lanes, SFX)(acc, h, L);
        if (g)
            LOSSK_CAT(lossk_add_lanes, SFX)(dacc, g + c0, L);
    }
    if (g)
        g[t] = (T)-lossk_lanes_total(dacc);
    return (double)wt * lossk_lanes_total(acc);
}

/* Row x (C,) with the class list t (ended by the first -1): sum over listed j and unlisted i of
 * max(0, 1 - x_j + x_i). The gradient first counts (exactly) how often each class is on, with a
 * sign, then is scaled by k once. marks: C bytes of scratch. */
LOSSK_INLINE double FN(multilabel_margin_row)(const T *restrict x, int64_t C, const int64_t *restrict t, T k,
                                              T *restrict g, T *restrict h, unsigned char *restrict marks)
{
    int64_t K = 0;
    while (K < C && t[K] >= 0)
        K++;
    for (int64_t i = 0; i < C; i++)
        marks[i] = 0;
    for (int64_t j = 0; j < K; j++)
        marks[t[j]] = 1;
    if (g)
        for (int64_t i = 0; i < C; i++)
            g[i] = 0;
    double acc[LOSSK_LANES] = {0};
    for (int64_t j = 0; j < K; j++) {
        const T base = 1 - x[t[j]];
        int64_t count = 0;
        for (int64_t c0 = 0; c0 < C; c0 += MC) {
            const int64_t L = lossk_min64(MC, C - c0);
            for (int64_t m = 0; m < L; m++) {
                const T z = base + x[c0 + m];
                const int on = z > 0 && !marks[c0 + m];
                h[m] = on ? z : (T)0;
                if (g) {
                    g[c0 + m] += on ? (T)1 : (T)0;
                    count += on;
                }
            }
            LOSSK_CAT(lossk_add_lanes, SFX)(acc, h, L);
        }
        if (g)
            g[t[j]] -= (T)count;
    }
    if (g)
        for (int64_t i = 0; i < C; i++)
            g[i] *= k;
    return lossk_lanes_total(acc);
}

/* Row x (C,) with targets y: sum of w_i (y_i softplus(-x_i) + (1 - y_i) softplus(x_i)), PyTorch's
 * -(y log sigmoid(x) + (1 - y) log sigmoid(-x)) with its shared log1p(exp(-|x|)) taken once, so
 * that infinite logits give PyTorch's inf and nan. d/dx_i = k w_i ((1 - y_i) sigmoid(x_i) - y_i
 * sigmoid(-x_i)). w NULL: no weights. */
LOSSK_INLINE double FN(multilabel_soft_margin_row)(const T *restrict x, const T *restrict y, const T *restrict w,
                                                   int64_t C, T k, T *restrict g, T *restrict h)
{
    double acc[LOSSK_LANES] = {0};
    for (int64_t c0 = 0; c0 < C; c0 += MC) {
        const int64_t L = lossk_min64(MC, C - c0);
#pragma omp simd /* else GCC's cost model leaves the float64 loop scalar */
        for (int64_t j = 0; j < L; j++) {
            const T xi = x[c0 + j], yi = y[c0 + j];
            const T e = LOSSK_CAT(lossk_exp_nonpos, SFX)(LOSSK_CAT(lossk_negabs, SFX)(xi));
            const T r = 1 / (1 + e);
            const T s = LOSSK_CAT(lossk_one_if_nonneg, SFX)(xi, e) * r;   /* sigmoid(x) */
            const T sm = LOSSK_CAT(lossk_one_if_nonneg, SFX)(-xi, e) * r; /* sigmoid(-x) */
            /* a nan x: e carries it */
            T l = yi * (xi < 0 ? -xi : (T)0) + (1 - yi) * (xi > 0 ? xi : (T)0) + LOSSK_CAT(lossk_log1p_unit, SFX)(e);
            T d = (1 - yi) * s - yi * sm;
            if (w) {
                l *= w[c0 + j];
                d *= w[c0 + j];
            }
            h[j] = l;
            if (g)
                g[c0 + j] = k * d;
        }
        LOSSK_CAT(lossk_add_lanes, SFX)(acc, h, L);
    }
    return lossk_lanes_total(acc);
}

/* One row's loss (the sum of its terms over C), its gradient into g when not NULL. */
LOSSK_INLINE double FN(margin_row)(const FN(margin_job) *job, const int kind, int64_t n, T k, T *g, T *h,
                                   unsigned char *marks)
{
    const lossk_margin_args *a = job->a;
    const int64_t C = a->c;
    const T *x = (const T *)a->input + n * C;
    if (kind == FN(MULTI_MARGIN)) {
        const int64_t t = a->target[n];
        const T wt = a->weight ? ((const T *)a->weight)[t] : (T)1;
        return a->p == 2 ? FN(multi_margin_row)(x, C, t, wt, (T)a->margin, 1, k, g, h)
                         : FN(multi_margin_row)(x, C, t, wt, (T)a->margin, 0, k, g, h);
    }
    if (kind == FN(MULTILABEL_MARGIN))
        return FN(multilabel_margin_row)(x, C, a->target + n * C, k, g, h, marks);
    const T *y = (const T *)a->target_values + n * C;
    if (!a->weight) /* the loop without weights of its own */
        return FN(multilabel_soft_margin_row)(x, y, NULL, C, k, g, h);
    return FN(multilabel_soft_margin_row)(x, y, (const T *)a->weight + (n * C) % a->weight_period, C, k, g, h);
}

LOSSK_INLINE void FN(margin_body)(const FN(margin_job) *job, int b, const int kind)
{
    const lossk_margin_args *a = job->a;
    const int64_t C = a->c;
    const int64_t start = lossk_block_start(a->n, job->nb, b), end = lossk_block_start(a->n, job->nb, b + 1);
    const T *go = a->grad_output;
    T *loss = a->loss, *grad = a->grad;
    unsigned char *marks = job->marks ? job->marks + (int64_t)b * C : NULL;
    /* one division for the block, not two per row (short rows notice) */
    const double inv_c = 1.0 / (double)C;
    _Alignas(64) T h[MC];
    _Alignas(64) T stage[job->stream ? LOSSK_SCRATCH : 1];
    double acc = 0;
    for (int64_t n = start; n < end; n++) {
        double l;
        if (grad) {
            const T k = (T)((go ? (double)go[n] : a->grad_scale) * inv_c);
            l = FN(margin_row)(job, kind, n, k, job->stream ? stage : grad + n * C, h, marks);
            if (job->stream)
                STREAM(grad + n * C, stage, C);
        } else {
            l = FN(margin_row)(job, kind, n, 0, NULL, h, marks);
        }
        l = C > 0 ? l * inv_c : NAN; /* no classes (multilabel_soft_margin only): PyTorch's 0 / 0 */
        if (!loss)
            continue;
        if (job->reduce)
            acc += l;
        else
            loss[n] = (T)l;
    }
    job->partial[b] = acc;
    if (job->stream)
        lossk_stream_fence();
}

/* A block function per kind, as elementwise_impl.h has (one function with all three compiles worse). */
typedef void (*FN(margin_block_fn))(const FN(margin_job) *job, int b);
#define MARGIN_BLOCK(K) \
    LOSSK_BLOCK_FN void FN(block_##K)(const FN(margin_job) *job, int b) { FN(margin_body)(job, b, FN(K)); }
MARGIN_BLOCK(MULTI_MARGIN)
MARGIN_BLOCK(MULTILABEL_MARGIN)
MARGIN_BLOCK(MULTILABEL_SOFT_MARGIN)
#undef MARGIN_BLOCK
static const FN(margin_block_fn) FN(margin_blocks)[] = {FN(block_MULTI_MARGIN), FN(block_MULTILABEL_MARGIN),
                                                        FN(block_MULTILABEL_SOFT_MARGIN)};

static int FN(margin)(int kind, lossk_margin_args *a)
{
    const int64_t N = a->n, C = a->c;
    const int reduce = a->reduction == LOSSK_REDUCTION_SUM;
    const int soft = kind == FN(MULTILABEL_SOFT_MARGIN);
    if (N < 0 || C < 0 || (C == 0 && !soft) || (N > 0 && C > 0 && !a->input) || (!a->loss && !a->grad)
        || (a->reduction != LOSSK_REDUCTION_NONE && !reduce)
        || (!soft && N > 0 && !a->target) || (soft && N > 0 && C > 0 && !a->target_values)
        || (kind == FN(MULTI_MARGIN) && a->p != 1 && a->p != 2)
        || (soft && a->weight && (C == 0 || a->weight_period <= 0 || a->weight_period % C != 0)))
        return LOSSK_ERR_ARGUMENT;
    const int64_t bad = kind == FN(MULTI_MARGIN) ? first_outside(a->target, N, 0, C)
                        : kind == FN(MULTILABEL_MARGIN) ? first_outside(a->target, N * C, -1, C) : -1;
    if (bad >= 0) {
        a->bad_index = bad;
        return LOSSK_ERR_TARGET;
    }
    const int64_t work = N * (C + 1);
    /* large gradients: written once, by streaming stores, instead of read and written back */
    const int stream = a->grad && C <= LOSSK_SCRATCH && N * C * (int64_t)sizeof(T) >= LOSSK_STREAM_BYTES;
    FN(margin_job) job = {a, reduce, stream, lossk_blocks(N, work), NULL, NULL};
    if (kind == FN(MULTILABEL_MARGIN) && N > 0 && !(job.marks = malloc((size_t)(job.nb * C))))
        return LOSSK_ERR_NOMEM;
    double partial[LOSSK_BLOCKS];
    job.partial = partial;
    LOSSK_FOR_BLOCKS(lossk_threads_for(work), job.nb, FN(margin_blocks)[kind], &job);
    free(job.marks);
    if (reduce && a->loss) {
        double total = 0;
        for (int b = 0; b < job.nb; b++)
            total += partial[b];
        a->sum = total;
        *(T *)a->loss = (T)(total / a->divisor);
    }
    return LOSSK_OK;
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_multi_margin, SFX))(lossk_margin_args *a)
{
    return FN(margin)(FN(MULTI_MARGIN), a);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_multilabel_margin, SFX))(lossk_margin_args *a)
{
    return FN(margin)(FN(MULTILABEL_MARGIN), a);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_multilabel_soft_margin, SFX))(lossk_margin_args *a)
{
    return FN(margin)(FN(MULTILABEL_SOFT_MARGIN), a);
}
#undef MC
#undef STREAM
#undef FN
