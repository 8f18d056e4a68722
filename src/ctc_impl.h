/* Template for ctc.c: T is the element type, SFX its suffix (f32, f64).
 *
 * Blocks of samples, a sample at a time: the forward variables alpha (log space) for each time
 * step of its input (all of them when the gradient is wanted, else the last two), then the backward
 * variables beta a step at a time from the last one down, each step's gradient row from that
 * step's alpha and beta. In double for both types; the recursions are vectorised over the states. */
#define FN(name) LOSSK_CAT(name, SFX)

typedef struct {
    const lossk_ctc_args *a;
    int nb;
    double partial[LOSSK_BLOCKS];   /* per block: its samples' losses, summed in order */
    int nomem[LOSSK_BLOCKS];
} FN(ctc_job);

/* e[s] = row[lab[s]]: a time step's log probabilities of the states */
LOSSK_INLINE void FN(ctc_emissions)(double *restrict e, const T *restrict row, const int64_t *restrict lab, int64_t L)
{
    for (int64_t s = 0; s < L; s++)
        e[s] = (double)row[lab[s]];
}

/* Sample b: its loss -log p(target | input) (+inf when no alignment exists), and with grad its
 * gradient rows times g. alpha holds a row of `stride` doubles per time step (two when there is no
 * gradient), beta two rows, lin C zeros (left so). */
static double FN(ctc_sample)(const lossk_ctc_args *a, int64_t b, double g, const int64_t *lab, const double *fwd,
                             const double *bwd, double *e, double *alpha, double *beta, double *lin, int64_t stride)
{
    const int64_t N = a->n, C = a->c, il = a->input_lengths[b], L = 2 * a->target_lengths[b] + 1;
    const int64_t step = N * C;                 /* from a time step to the next in log_probs and grad */
    const T *lp = (const T *)a->log_probs + b * C;
    const int want_grad = a->grad != NULL;
    double ll;
    if (il == 0) {
        ll = L == 1 ? 0.0 : -INFINITY;          /* the empty alignment, of the empty target only */
    } else {
        double *cur = alpha + PAD;
        lossk_ctc_clear(cur, L);
        cur[0] = (double)lp[a->blank];
        if (L > 1)
            cur[1] = (double)lp[lab[1]];
        for (int64_t t = 1; t < il; t++) {
            const double *prev = cur;
            cur = alpha + PAD + (want_grad ? t : t % 2) * stride;
            cur[-2] = cur[-1] = cur[L] = cur[L + 1] = -INFINITY;
            FN(ctc_emissions)(e, lp + t * step, lab, L);
#pragma omp simd
            for (int64_t s = 0; s < L; s++)
                cur[s] = lossk_ctc_lse3(prev[s], prev[s - 1], fwd[s] != 0 ? prev[s - 2] : -INFINITY) + e[s];
        }
        ll = lossk_ctc_lse3(cur[L - 1], L > 1 ? cur[L - 2] : -INFINITY, -INFINITY);
    }
    const double nll = -ll;
    if (!want_grad)
        return nll;

    T *grad = (T *)a->grad + b * C;
    const int zero = a->zero_infinity && nll == INFINITY;
    for (int64_t t = zero ? 0 : il; t < a->t; t++)
        for (int64_t c = 0; c < C; c++)
            grad[t * step + c] = 0;
    if (zero || il == 0)
        return nll;
    double *next = NULL, *cur = beta + PAD;
    lossk_ctc_clear(cur, L);
    cur[L - 1] = (double)lp[(il - 1) * step + a->blank];
    if (L > 1)
        cur[L - 2] = (double)lp[(il - 1) * step + lab[L - 2]];
    for (int64_t t = il - 1; t >= 0; t--) {
        const T *row = lp + t * step;
        if (t < il - 1) {
            double *swap = next;
            next = cur;
            cur = swap;
            FN(ctc_emissions)(e, row, lab, L);
#pragma omp simd
            for (int64_t s = 0; s < L; s++)
                cur[s] = lossk_ctc_lse3(next[s], next[s + 1], bwd[s] != 0 ? next[s + 2] : -INFINITY) + e[s];
        } else {
            next = beta + PAD + stride;
            next[-2] = next[-1] = next[L] = next[L + 1] = -INFINITY;
        }
        /* log_ab(c) = log sum over the states s of class c of alpha beta, as M + log(lin[c]) */
        const double *at = alpha + PAD + t * stride;
        double M = -INFINITY;
        for (int64_t s = 0; s < L; s++) {
            const double v = at[s] + cur[s];
            M = v > M ? v : M;
        }
        if (M > -INFINITY)
            for (int64_t s = 0; s < L; s++)
                lin[lab[s]] += lossk_exp_nonpos_f64(at[s] + cur[s] - M);
        const double shift = M + nll;
        T *out = grad + t * step;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            const double x = (double)row[c];
            out[c] = (T)((lossk_exp_f64(x) - lossk_exp_f64(lossk_log_f64(lin[c]) + shift - x)) * g);
        }
        for (int64_t s = 0; s < L; s++)
            lin[lab[s]] = 0;
    }
    return nll;
}

LOSSK_BLOCK_FN void FN(ctc_block)(FN(ctc_job) *job, int blk)
{
    const lossk_ctc_args *a = job->a;
    const int64_t first = lossk_block_start(a->n, job->nb, blk), end = lossk_block_start(a->n, job->nb, blk + 1);
    const int want_grad = a->grad != NULL;
    int64_t il_max = 1, L_max = 1;
    for (int64_t b = first; b < end; b++) {
        il_max = lossk_max64(il_max, a->input_lengths[b]);
        L_max = lossk_max64(L_max, 2 * a->target_lengths[b] + 1);
    }
    /* lab, fwd, bwd, e: L_max each; alpha: rows of `stride`; beta: two rows; lin: C */
    const int64_t stride = L_max + 2 * PAD, rows = want_grad ? il_max : 2;
    int64_t count;
    double *work = NULL;
    if (!__builtin_mul_overflow(rows + 2, stride, &count) && !__builtin_add_overflow(count, 4 * L_max, &count)
        && !__builtin_add_overflow(count, want_grad ? a->c : 0, &count) && count <= (int64_t)(SIZE_MAX / sizeof(double)))
        work = malloc((size_t)count * sizeof(double));
    if (!work) {
        job->nomem[blk] = 1;
        return;
    }
    int64_t *lab = (int64_t *)work;
    double *fwd = work + L_max, *bwd = fwd + L_max, *e = bwd + L_max, *alpha = e + L_max;
    double *beta = alpha + rows * stride, *lin = beta + 2 * stride;
    if (want_grad)
        for (int64_t c = 0; c < a->c; c++)
            lin[c] = 0;
    const T *go = a->grad_output;
    T *loss = a->loss;
    double sum = 0;
    for (int64_t b = first; b < end; b++) {
        const double per_target = a->per_target_mean ? (double)lossk_max64(a->target_lengths[b], 1) : 1.0;
        const double g = (go ? (double)go[b] : a->grad_scale) / per_target;
        lossk_ctc_extend(a, b, lab, fwd, bwd);
        double nll = FN(ctc_sample)(a, b, g, lab, fwd, bwd, e, alpha, beta, lin, stride);
        nll = a->zero_infinity && nll == INFINITY ? 0.0 : nll;
        if (loss && a->reduction == LOSSK_REDUCTION_NONE)
            loss[b] = (T)nll;
        sum += nll / per_target;
    }
    job->partial[blk] = sum;
    free(work);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_ctc, SFX))(lossk_ctc_args *a)
{
    const int err = lossk_ctc_check(a);
    if (err != LOSSK_OK)
        return err;
    FN(ctc_job) job;
    job.a = a;
    double ops = 0; /* element-operations: the recursions' states and the gradient's elements */
    for (int64_t b = 0; b < a->n; b++)
        ops += (double)a->input_lengths[b] * (double)(2 * a->target_lengths[b] + 1) * (a->grad ? 16 : 8)
               + (a->grad ? (double)a->t * (double)a->c : 0);
    const int64_t work = ops < 0x1p62 ? (int64_t)ops : (int64_t)1 << 62;
    job.nb = lossk_blocks(a->n, work);
    for (int b = 0; b < job.nb; b++)
        job.nomem[b] = 0;
    LOSSK_FOR_BLOCKS(lossk_threads_for(work), job.nb, FN(ctc_block), &job);
    double total = 0;
    for (int b = 0; b < job.nb; b++) {
        if (job.nomem[b])
            return LOSSK_ERR_NOMEM;
        total += job.partial[b];
    }
    if (a->loss && a->reduction == LOSSK_REDUCTION_SUM) {
        a->sum = total;
        *(T *)a->loss = (T)(total / a->divisor);
    }
    return LOSSK_OK;
}
#undef FN
