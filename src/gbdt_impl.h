/* Template for gbdt.c: T is the element type, SFX its suffix (f32, f64). */
#define FN(name) LOSSK_CAT(name, SFX)

typedef struct {
    const lossk_gbdt_args *a;
    int nb;
} FN(gbdt_job);

/* The hessian as the caller's library wants it: scaled, weighted, at least hess_floor before or
 * after weighting (nan stays nan) */
LOSSK_INLINE T FN(final_hessian)(double h, double w, const lossk_gbdt_args *a)
{
    h *= a->hess_scale;
    if (a->floor_weighted) {
        h *= w;
        return (T)(h < a->hess_floor ? a->hess_floor : h);
    }
    return (T)((h < a->hess_floor ? a->hess_floor : h) * w);
}

/* Block b of a pointwise objective; two loops so that the common unweighted one has no load to spare */
#define GBDT_POINTWISE_BLOCK(name) \
    LOSSK_BLOCK_FN void FN(name##_block)(const FN(gbdt_job) *job, int b) \
    { \
        const lossk_gbdt_args *a = job->a; \
        const T *r = a->raw_prediction, *y = a->y_true, *w = a->sample_weight; \
        T *grad = a->gradient, *hess = a->hessian; \
        const double p = a->param, p2 = a->param2; \
        const int64_t start = lossk_block_start(a->n, job->nb, b), end = lossk_block_start(a->n, job->nb, b + 1); \
        if (w) { \
            for (int64_t i = start; i < end; i++) { \
                double g, h; \
                gh_##name((double)r[i], (double)y[i], p, p2, &g, &h); \
                grad[i] = (T)(g * (double)w[i]); \
                hess[i] = FN(final_hessian)(h, (double)w[i], a); \
            } \
        } else { \
            for (int64_t i = start; i < end; i++) { \
                double g, h; \
                gh_##name((double)r[i], (double)y[i], p, p2, &g, &h); \
                grad[i] = (T)g; \
                hess[i] = FN(final_hessian)(h, 1.0, a); \
            } \
        } \
    }

static int FN(gbdt_checked)(const lossk_gbdt_args *a)
{
    if (a->n < 0 || a->k < 1 || (a->n > 0 && (!a->raw_prediction || !a->y_true || !a->gradient || !a->hessian)))
        return LOSSK_ERR_ARGUMENT;
    return LOSSK_OK;
}

/* Cost of one sample in element-operations, for the thread count (an exp is about 16 of them) */
#define GBDT_COST 16

#define GBDT_POINTWISE(name) \
    GBDT_POINTWISE_BLOCK(name) \
    int LOSSK_ISA_NAME(LOSSK_CAT(lossk_gbdt_##name, SFX))(lossk_gbdt_args *a) \
    { \
        if (FN(gbdt_checked)(a) != LOSSK_OK || a->k != 1) \
            return LOSSK_ERR_ARGUMENT; \
        const FN(gbdt_job) job = {a, lossk_blocks(a->n, a->n * GBDT_COST)}; \
        LOSSK_FOR_BLOCKS(lossk_threads_for(a->n * GBDT_COST), job.nb, FN(name##_block), &job); \
        return LOSSK_OK; \
    }
GBDT_POINTWISE(squared_error)
GBDT_POINTWISE(absolute_error)
GBDT_POINTWISE(huber)
GBDT_POINTWISE(pseudo_huber)
GBDT_POINTWISE(quantile)
GBDT_POINTWISE(logistic)
GBDT_POINTWISE(poisson)
GBDT_POINTWISE(gamma)
GBDT_POINTWISE(tweedie)
#undef GBDT_POINTWISE
#undef GBDT_POINTWISE_BLOCK

/* Classes at a time in a softmax row: their exps are kept on the stack (a longer row computes
 * them twice, once for the sum and once for the outputs) */
#define GBDT_ROW 512

/* Row i of softmax: p = exp(r - max) / sum. The exps go into e first, a loop that vectorises;
 * their sum is a loop of its own (a sum in a fixed order does not) */
LOSSK_INLINE void FN(softmax_row)(const lossk_gbdt_args *a, int64_t i, double *e)
{
    const int64_t k = a->k;
    const T *r = (const T *)a->raw_prediction + i * k;
    T *grad = (T *)a->gradient + i * k, *hess = (T *)a->hessian + i * k;
    double m = (double)r[0];
    for (int64_t j = 1; j < k; j++)
        m = (double)r[j] > m ? (double)r[j] : m;
    /* a row with nan, +inf or only -inf comes out nan: the shift of +inf is nan, of -inf 0 (then 0 / 0) */
    m = m == INFINITY ? NAN : (isfinite(m) ? m : 0.0);
    double s = 0;
    for (int64_t j0 = 0; j0 < k; j0 += GBDT_ROW) {
        const int64_t len = lossk_min64(GBDT_ROW, k - j0);
        for (int64_t j = 0; j < len; j++)
            e[j] = lossk_exp_f64((double)r[j0 + j] - m);
        for (int64_t j = 0; j < len; j++)
            s += e[j];
    }
    const double inv = 1.0 / s, w = a->sample_weight ? (double)((const T *)a->sample_weight)[i] : 1.0;
    const int64_t c = (int64_t)((const T *)a->y_true)[i];
    for (int64_t j0 = 0; j0 < k; j0 += GBDT_ROW) {
        const int64_t len = lossk_min64(GBDT_ROW, k - j0);
        if (k > GBDT_ROW)
            for (int64_t j = 0; j < len; j++)
                e[j] = lossk_exp_f64((double)r[j0 + j] - m);
        for (int64_t j = 0; j < len; j++) {
            const double p = e[j] * inv;
            grad[j0 + j] = (T)((p - (j0 + j == c)) * w);
            hess[j0 + j] = FN(final_hessian)(p * (1.0 - p), w, a);
        }
    }
}

LOSSK_BLOCK_FN void FN(softmax_block)(const FN(gbdt_job) *job, int b)
{
    double e[GBDT_ROW];
    const int64_t end = lossk_block_start(job->a->n, job->nb, b + 1);
    for (int64_t i = lossk_block_start(job->a->n, job->nb, b); i < end; i++)
        FN(softmax_row)(job->a, i, e);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_gbdt_softmax, SFX))(lossk_gbdt_args *a)
{
    int err = FN(gbdt_checked)(a);
    if (err)
        return err;
    const T *y = a->y_true;
    for (int64_t i = 0; i < a->n; i++) {
        const double c = (double)y[i];
        if (!(c >= 0 && c < (double)a->k && c == floor(c))) {   /* nan too */
            a->bad_index = i;
            return LOSSK_ERR_TARGET;
        }
    }
    const FN(gbdt_job) job = {a, lossk_blocks(a->n, a->n * a->k * GBDT_COST)};
    LOSSK_FOR_BLOCKS(lossk_threads_for(a->n * a->k * GBDT_COST), job.nb, FN(softmax_block), &job);
    return LOSSK_OK;
}

#undef GBDT_COST
#undef GBDT_ROW
#undef FN
