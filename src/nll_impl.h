/* Template part of classification_impl.h: negative log-likelihood, (N, C) and the spatial
 * (N, C, d1, ..., dK) form. Its gradient is zero but at the targets, so the kernel's cost is the
 * gradient's writes and one input line per target: a block streams its gradient out first, then
 * gathers the input values its targets pick, a few positions ahead (NLL_AHEAD). */
/* NLL: loss = -w_t x_t at each non-ignored position; the gradient is zero but at the targets. */
#define NLL_AHEAD 128 /* positions */
typedef struct {
    const lossk_class_args *a;
    T scale;         /* as in FN(ce_job) */
    int reduce;
    int stream;
    int nb;
    double *partial;
} FN(nll_job);

/* The gradient values of positions i..i+L (0 where ignored), in loops that vectorise */
LOSSK_INLINE void FN(nll_dv)(const FN(nll_job) *job, int64_t i, int64_t L, T *dv)
{
    const lossk_class_args *a = job->a;
    const int64_t *t = a->target, ignore = a->ignore_index;
    FN(gfactors)(a, i, L, NULL, job->scale, dv);
    if (a->weight)
        for (int64_t j = 0; j < L; j++)
            dv[j] = t[i + j] == ignore ? 0 : -((const T *)a->weight)[t[i + j]] * dv[j];
    else
        for (int64_t j = 0; j < L; j++)
            dv[j] = t[i + j] == ignore ? 0 : -dv[j];
}

/* A block's gradient, then its loss: streaming the gradient out and gathering the input values the
 * targets pick each run faster on their own than interleaved. Positions go by runs of L: L rows
 * (S == 1), or L positions of one sample; position j of a run, class c, is at [c * S + j * ps]
 * from the run's first element. Unless C is larger than LOSSK_SCRATCH, a run's gradient is staged
 * in scratch and copied out (streamed when large), so every line of it is written once: rows as
 * [L][C], zeroed and then given their targets' values; a spatial run plane by plane, each built by
 * a compare of the targets with its class right before it goes out (zeroing and scattering into a
 * [C][L] stage first would send the streaming stores out in bursts). */
LOSSK_BLOCK_FN void FN(nll_block)(const FN(nll_job) *job, int b)
{
    const lossk_class_args *a = job->a;
    const int64_t C = a->c, S = a->s, np = a->n * S, ps = S == 1 ? C : 1, ignore = a->ignore_index;
    const T *x = a->input, *w = a->weight;
    const int64_t *t = a->target;
    T *loss = a->loss, *grad = a->grad;
    const int tiled = grad && C <= LOSSK_SCRATCH;
    const int64_t cap = FN(stage_positions)(C, S, 1), line = 64 / (int64_t)sizeof(T);
    const int64_t start = lossk_block_start(np, job->nb, b), end = lossk_block_start(np, job->nb, b + 1);
    _Alignas(64) T scratch[tiled ? LOSSK_SCRATCH : 1];
    for (int64_t i = start; grad && i < end;) {
        const int64_t n = S == 1 ? i : i / S, s = i - n * S;
        const int64_t L = lossk_min64(lossk_min64(end - i, S == 1 ? cap : S - s),
                                      S == 1 ? cap : lossk_min64(cap, LOSSK_SCRATCH / 2 - line));
        T *gt = grad + n * C * S + s;
        if (tiled && S > 1) {
            /* Each plane's part of the run is moved to end where a cache line of that plane does
             * (and so to start where the previous run's part ended): up to line - 1 positions
             * more, never past the block's or the sample's end. Else the line holding the run's
             * boundary is written in two parts, each a plain store that first reads the line, and
             * where S is not a multiple of the line every plane has such a line at every run
             * boundary. */
            const int64_t limit = lossk_min64(end - i, S - s);
            const int shifted = S % line != 0 || FN(to_line)(gt, L, limit) != L; /* else no part moves */
            const int64_t Lx = shifted ? lossk_min64(L + line - 1, limit) : L;
            /* run on a line of its own, like the destinations (the cap on L above keeps it in scratch) */
            T *dv = scratch, *run = scratch + (Lx + line - 1) / line * line;
            FN(nll_dv)(job, i, Lx, dv);
            for (int64_t c = 0; c < C; c++) {
                T *plane = gt + c * S;
                const int64_t lo = i == start || s == 0 ? 0 : FN(to_line)(plane, 0, limit);
                const int64_t hi = FN(to_line)(plane, L, limit);
                T *dst = job->stream ? run : plane + lo;
                for (int64_t j = lo; j < hi; j++) /* an ignored position's dv is 0, even where ignore == c */
                    dst[j - lo] = t[i + j] == c ? dv[j] : 0;
                if (job->stream)
                    STREAM(plane + lo, run, hi - lo);
            }
            i += L;
            continue;
        }
        if (tiled) {
            /* rows: the values first, in loops that vectorise, then put in place without a branch
             * (an ignored row puts its 0 at class 0) */
            T dv[TS];
            memset(scratch, 0, (size_t)(L * C) * sizeof(T));
            for (int64_t j0 = 0; j0 < L; j0 += TS) {
                const int64_t m = lossk_min64(TS, L - j0);
                FN(nll_dv)(job, i + j0, m, dv);
                for (int64_t j = 0; j < m; j++) {
                    const int64_t tj = t[i + j0 + j];
                    scratch[(j0 + j) * C + (tj == ignore ? 0 : tj)] = dv[j];
                }
            }
        } else {
            for (int64_t j = 0; j < L; j++)
                for (int64_t c = 0; c < C; c++)
                    gt[c * S + j * ps] = 0;
            for (int64_t j = 0; j < L; j++) {
                const int64_t tj = t[i + j];
                if (tj != ignore)
                    gt[tj * S + j * ps] = -FN(class_weight)(w, tj) * FN(gfactor)(a, i + j, 0, job->scale);
            }
        }
        if (tiled && job->stream)
            STREAM(gt, scratch, L * C);
        else if (tiled)
            memcpy(gt, scratch, (size_t)(L * C) * sizeof(T));
        i += L;
    }
    if (job->stream)
        lossk_stream_fence();
    double acc = 0;
    const int short_rows = S == 1 && C * (int64_t)sizeof(T) <= 64;
    for (int64_t i = start; loss && i < end;) {
        const int64_t n = S == 1 ? i : i / S, s = i - n * S;
        const int64_t R = S == 1 ? end - i : lossk_min64(end - i, S - s); /* rows, or positions of a sample */
        const int64_t L = lossk_min64(R, TS);
        const T *xt = x + n * C * S + s;
        /* by pieces of TS positions, summed in lanes (lossk_sum_f64): a running sum is a chain of
         * dependent adds, one per position */
        double l[TS];
        if (short_rows) {
            /* rows within a line: the picked values by vector gathers (the targets were checked:
             * an ignored row picks its class 0), faster than scalar loads with a prefetch each */
            int32_t idx[TS];
            T xv[TS];
            for (int64_t j = 0; j < L; j++)
                idx[j] = (int32_t)(j * C + (t[i + j] == ignore ? 0 : t[i + j]));
            LOSSK_CAT(lossk_gather, SFX)(xv, xt, idx, L);
            if (w)
                for (int64_t j = 0; j < L; j++)
                    l[j] = t[i + j] == ignore ? 0 : (double)(-w[t[i + j]] * xv[j]);
            else
                for (int64_t j = 0; j < L; j++)
                    l[j] = t[i + j] == ignore ? 0 : (double)-xv[j];
        } else {
            for (int64_t j = 0; j < L; j++) {
                /* the values picked lie scattered over C planes, or rows longer than a line:
                 * fetch ahead of need, as the hardware prefetcher does not follow such a pattern */
                const int64_t ta = j + NLL_AHEAD < R ? t[i + j + NLL_AHEAD] : -1;
                if (ta >= 0 && ta < C)
                    __builtin_prefetch(xt + ta * S + (j + NLL_AHEAD) * ps);
                const int64_t tj = t[i + j];
                l[j] = tj == ignore ? 0 : (double)(-FN(class_weight)(w, tj) * xt[tj * S + j * ps]);
            }
        }
        if (job->reduce)
            acc += lossk_sum_f64(l, L);
        else
            for (int64_t j = 0; j < L; j++)
                loss[i + j] = (T)l[j];
        i += L;
    }
    job->partial[b] = acc;
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_nll, SFX))(lossk_class_args *a)
{
    const int64_t N = a->n, C = a->c, S = a->s, np = N * S;
    const int reduce = a->reduction == LOSSK_REDUCTION_SUM;
    if (N < 0 || C <= 0 || S < 0 || (np > 0 && (!a->input || !a->target)) || (!a->loss && !a->grad)
        || (a->reduction != LOSSK_REDUCTION_NONE && !reduce))
        return LOSSK_ERR_ARGUMENT;
    double total_weight;
    int err = FN(check_targets)(a, &total_weight);
    if (err)
        return err;
    a->total_weight = total_weight;
    const double divisor = a->mean_by_weight == 1 ? total_weight : a->divisor;
    double partial[LOSSK_BLOCKS];
    const int stream = a->grad && C <= LOSSK_SCRATCH && np * C * (int64_t)sizeof(T) >= LOSSK_STREAM_BYTES;
    const int64_t work = a->grad ? np * C : np;
    const FN(nll_job) job = {a, a->mean_by_weight ? (T)(1.0 / divisor) : (T)1, reduce, stream,
                             lossk_blocks(np, work), partial};
    LOSSK_FOR_BLOCKS(lossk_threads_for(work), job.nb, FN(nll_block), &job);
    if (reduce && a->loss)
        *(T *)a->loss = FN(reduced_loss)(a, partial, job.nb, divisor);
    return LOSSK_OK;
}
#undef NLL_AHEAD
