/* Template for multi_input.c: T is the element type, SFX its suffix (f32, f64).
 *
 * Every kind works in runs of at most RUN elements: a run's losses go to a scratch run and are
 * added in the sum lanes (or stored), its gradients into the outputs or, when those are large, into
 * scratch runs that are streamed out. The row-wise kinds (cosine_embedding, triplet_margin) read a
 * row twice: once for its sums, once for its gradients (the row is then in cache). */
#define FN(name) LOSSK_CAT(name, SFX)
#define STREAM LOSSK_CAT(lossk_stream, SFX)
#define ADD_LANES LOSSK_CAT(lossk_add_lanes, SFX)
#define LOG LOSSK_CAT(lossk_log, SFX)
#define RUN 512        /* elements per run: a multiple of LOSSK_LANES */
#define HALF_LOG_2PI 0.918938533204672741780 /* 0.5 log(2 pi) */
#define SEGMENT 4096   /* gaussian_nll with a variance per row: elements per unit of work, a multiple of RUN */

enum { FN(MARGIN_RANKING), FN(GAUSSIAN_ROWS), FN(GAUSSIAN_COLUMNS), FN(COSINE_EMBEDDING), FN(TRIPLET_MARGIN) };

typedef struct {
    const lossk_multi_args *a;
    int reduce;             /* sum the losses into partial[] */
    int stream;             /* stage the per-element outputs and stream them out */
    int nb;
    int64_t units;          /* what the blocks split: elements, rows, row segments or column chunks */
    int64_t per_row;        /* units per row (gaussian_nll) */
    double *partial;        /* per block: the loss sum */
    double *dvar;           /* gaussian_nll with rows in several segments: each unit's sum for d var */
    int *negative;          /* per block: whether it saw a negative variance */
} FN(multi_job);

/* Staging: where a run of outputs at offset i goes (the output itself, or scratch to stream). */
LOSSK_INLINE T *FN(into)(const FN(multi_job) *job, T *out, int64_t i, T *scratch)
{
    return job->stream ? scratch : out + i;
}

/* After a run of L outputs at i: the staged gradients streamed out, the losses summed or stored. */
LOSSK_INLINE void FN(emit)(const FN(multi_job) *job, double *acc, int64_t i, int64_t L, const T *h,
                           T *const *grad, T *const *staged, int ngrad)
{
    T *loss = job->a->loss;
    if (job->stream)
        for (int k = 0; k < ngrad; k++)
            if (grad[k])
                STREAM(grad[k] + i, staged[k], L);
    if (!loss)
        return;
    if (job->reduce)
        ADD_LANES(acc, h, L);
    else if (job->stream)
        STREAM(loss + i, h, L);
}

/* The loss run: scratch when summed or staged, else the loss itself. */
LOSSK_INLINE T *FN(loss_run)(const FN(multi_job) *job, int64_t i, T *scratch)
{
    return job->reduce || job->stream || !job->a->loss ? scratch : (T *)job->a->loss + i;
}

/* A row-wise kind's loss of row n: summed into *acc, or stored. */
LOSSK_INLINE void FN(row_loss)(const FN(multi_job) *job, double *acc, int64_t n, T l)
{
    T *loss = job->a->loss;
    if (!loss)
        return;
    if (job->reduce)
        *acc += (double)l;
    else
        loss[n] = l;
}

/* --- margin_ranking: max(0, margin - y (x0 - x1)), per element ------------------------------- */

LOSSK_INLINE void FN(margin_ranking_run)(const T *restrict x0, const T *restrict x1, const T *restrict y, T margin,
                                         const int want_grad, const int has_go, const T *restrict go, T gs,
                                         int64_t L, T *restrict h, T *restrict g0, T *restrict g1)
{
#pragma omp simd
    for (int64_t j = 0; j < L; j++) {
        const T z = -y[j] * (x0[j] - x1[j]) + margin;
        h[j] = z < 0 ? (T)0 : z; /* nan stays nan, as clamp_min keeps it */
        if (want_grad) {
            const T d = z >= 0 ? y[j] * (has_go ? go[j] : gs) : (T)0;
            g0[j] = -d;
            g1[j] = d;
        }
    }
}

LOSSK_INLINE void FN(margin_ranking_body)(const FN(multi_job) *job, int b, const int want_grad, const int has_go)
{
    const lossk_multi_args *a = job->a;
    const T *x0 = a->x[0], *x1 = a->x[1], *y = a->target, *go = a->grad_output;
    T *const grad[2] = {a->grad[0], a->grad[1]};
    const int64_t end = lossk_block_start(job->units, job->nb, b + 1);
    double acc[LOSSK_LANES] = {0};
    _Alignas(64) T h[RUN], s0[RUN], s1[RUN];
    T *const staged[2] = {s0, s1};
    for (int64_t i = lossk_block_start(job->units, job->nb, b); i < end; i += RUN) {
        const int64_t L = lossk_min64(RUN, end - i);
        T *hv = FN(loss_run)(job, i, h);
        FN(margin_ranking_run)(x0 + i, x1 + i, y + i, (T)a->margin, want_grad, has_go, has_go ? go + i : NULL,
                               (T)a->grad_scale, L, hv, want_grad ? FN(into)(job, grad[0], i, s0) : NULL,
                               want_grad ? FN(into)(job, grad[1], i, s1) : NULL);
        FN(emit)(job, acc, i, L, hv, grad, staged, want_grad ? 2 : 0);
    }
    job->partial[b] = lossk_lanes_total(acc);
}

/* --- gaussian_nll: 0.5 (log v + (x - t)^2 / v) [+ 0.5 log(2 pi)], v = max(var, eps) ------------ */

LOSSK_INLINE T FN(clamped_var)(T var, T eps) { return var < eps ? eps : var; } /* nan stays nan */

/* A run of L elements sharing the variance v (1 / v: inv, 0.5 log v + c: half_log): losses into h,
 * d/dx into gx, and the run's d/dvar terms into dv (scratch). */
LOSSK_INLINE void FN(gaussian_shared_run)(const T *restrict x, const T *restrict t, T inv, T half_log,
                                          const int want_grad, const int has_go, const T *restrict go, T gs,
                                          int64_t L, T *restrict h, T *restrict gx, T *restrict dv)
{
#pragma omp simd
    for (int64_t j = 0; j < L; j++) {
        const T r = x[j] - t[j], q = r * inv;
        h[j] = half_log + (T)0.5 * (r * q);
        if (want_grad) {
            const T k = has_go ? go[j] : gs;
            gx[j] = k * q;
            dv[j] = k * (T)0.5 * (inv - q * q);
        }
    }
}

/* A run of L elements with a variance each (already clamped: v, 1 / v and 0.5 log v + c): losses
 * into h, d/dx into gx, d/dvar added to dv (the sum over the broadcast axis, in double). */
LOSSK_INLINE void FN(gaussian_own_run)(const T *restrict x, const T *restrict t, const T *restrict inv,
                                       const T *restrict half_log, const int want_grad, const int has_go,
                                       const T *restrict go, T gs, int64_t L, T *restrict h, T *restrict gx,
                                       double *restrict dv)
{
#pragma omp simd
    for (int64_t j = 0; j < L; j++) {
        const T r = x[j] - t[j], q = r * inv[j];
        h[j] = half_log[j] + (T)0.5 * (r * q);
        if (want_grad) {
            const T k = has_go ? go[j] : gs;
            gx[j] = k * q;
            dv[j] += (double)(k * (T)0.5 * (inv[j] - q * q));
        }
    }
}

/* Rows of d elements with a variance each, split in segments of SEGMENT: unit u is segment u %
 * per_row of row u / per_row. */
LOSSK_INLINE void FN(gaussian_rows_body)(const FN(multi_job) *job, int b, const int want_grad, const int has_go)
{
    const lossk_multi_args *a = job->a;
    const int64_t d = a->d;
    const T *x = a->x[0], *var = a->x[1], *t = a->target, *go = a->grad_output;
    T *const grad[1] = {a->grad[0]};
    T *gvar = a->grad[1];
    const T eps = (T)a->eps, c = a->full ? (T)HALF_LOG_2PI : (T)0, gs = (T)a->grad_scale;
    const int64_t end = lossk_block_start(job->units, job->nb, b + 1);
    double acc[LOSSK_LANES] = {0};
    int negative = 0;
    _Alignas(64) T h[RUN], sx[RUN], dv[RUN];
    T *const staged[1] = {sx};
    for (int64_t u = lossk_block_start(job->units, job->nb, b); u < end; u++) {
        const int64_t row = u / job->per_row, seg = u % job->per_row;
        const int64_t start = row * d + seg * SEGMENT, stop = row * d + lossk_min64(d, (seg + 1) * SEGMENT);
        const T v = FN(clamped_var)(var[row], eps), inv = 1 / v, half_log = (T)0.5 * LOG(v) + c;
        negative |= var[row] < 0;
        double dacc[LOSSK_LANES] = {0};
        for (int64_t i = start; i < stop; i += RUN) {
            const int64_t L = lossk_min64(RUN, stop - i);
            T *hv = FN(loss_run)(job, i, h);
            FN(gaussian_shared_run)(x + i, t + i, inv, half_log, want_grad, has_go, has_go ? go + i : NULL, gs, L,
                                    hv, want_grad ? FN(into)(job, grad[0], i, sx) : NULL, dv);
            if (want_grad && gvar)
                ADD_LANES(dacc, dv, L);
            FN(emit)(job, acc, i, L, hv, grad, staged, want_grad ? 1 : 0);
        }
        if (want_grad && gvar) {
            const double s = lossk_lanes_total(dacc);
            if (job->dvar)
                job->dvar[u] = s;
            else
                gvar[row] = (T)s;
        }
    }
    job->partial[b] = lossk_lanes_total(acc);
    job->negative[b] = negative;
}

/* Elements (i, k, j) with variances (i, j): unit u is the chunk of RUN columns j at (u % per_row) RUN
 * of outer index i = u / per_row, taken for every k. */
LOSSK_INLINE void FN(gaussian_columns_body)(const FN(multi_job) *job, int b, const int want_grad, const int has_go)
{
    const lossk_multi_args *a = job->a;
    const int64_t d = a->d, m = a->m;
    const T *x = a->x[0], *var = a->x[1], *t = a->target, *go = a->grad_output;
    T *const grad[1] = {a->grad[0]};
    T *gvar = a->grad[1];
    const T eps = (T)a->eps, c = a->full ? (T)HALF_LOG_2PI : (T)0, gs = (T)a->grad_scale;
    const int64_t end = lossk_block_start(job->units, job->nb, b + 1);
    double acc[LOSSK_LANES] = {0};
    int negative = 0;
    _Alignas(64) T h[RUN], sx[RUN], inv[RUN], half_log[RUN];
    _Alignas(64) double dv[RUN];
    T *const staged[1] = {sx};
    for (int64_t u = lossk_block_start(job->units, job->nb, b); u < end; u++) {
        const int64_t outer = u / job->per_row, j0 = (u % job->per_row) * RUN, L = lossk_min64(RUN, m - j0);
        const T *vr = var + outer * m + j0;
#pragma omp simd reduction(| : negative)
        for (int64_t j = 0; j < L; j++) {
            const T v = FN(clamped_var)(vr[j], eps);
            negative |= vr[j] < 0;
            inv[j] = 1 / v;
            half_log[j] = (T)0.5 * LOG(v) + c;
            dv[j] = 0;
        }
        for (int64_t k = 0; k < d; k++) {
            const int64_t i = (outer * d + k) * m + j0;
            T *hv = FN(loss_run)(job, i, h);
            FN(gaussian_own_run)(x + i, t + i, inv, half_log, want_grad, has_go, has_go ? go + i : NULL, gs, L, hv,
                                 want_grad ? FN(into)(job, grad[0], i, sx) : NULL, dv);
            FN(emit)(job, acc, i, L, hv, grad, staged, want_grad ? 1 : 0);
        }
        if (want_grad && gvar) {
            T *gv = FN(into)(job, gvar, outer * m + j0, sx);
            for (int64_t j = 0; j < L; j++)
                gv[j] = (T)dv[j];
            if (job->stream)
                STREAM(gvar + outer * m + j0, sx, L);
        }
    }
    job->partial[b] = lossk_lanes_total(acc);
    job->negative[b] = negative;
}

/* --- cosine_embedding: per row, 1 - cos (y = 1), max(0, cos - margin) (y = -1), else 0 ------- */

#define COSINE_EPSILON 1e-12 /* PyTorch's EPSILON, added to each squared norm */

LOSSK_INLINE void FN(cosine_embedding_body)(const FN(multi_job) *job, int b, const int want_grad, const int has_go)
{
    const lossk_multi_args *a = job->a;
    const int64_t D = a->d;
    const T *y = a->target, *go = a->grad_output;
    T *g0 = a->grad[0], *g1 = a->grad[1];
    T *const grad[2] = {g0, g1};
    const T margin = (T)a->margin;
    const int64_t end = lossk_block_start(job->units, job->nb, b + 1);
    double acc = 0;
    _Alignas(64) T s0[RUN], s1[RUN];
    T *const staged[2] = {s0, s1};
    for (int64_t n = lossk_block_start(job->units, job->nb, b); n < end; n++) {
        const T *x0 = (const T *)a->x[0] + n * D, *x1 = (const T *)a->x[1] + n * D;
        double s[LOSSK_LANES] = {0}, q0[LOSSK_LANES] = {0}, q1[LOSSK_LANES] = {0};
        int64_t j = 0;
        for (; j + LOSSK_LANES <= D; j += LOSSK_LANES)
            for (int l = 0; l < LOSSK_LANES; l++) {
                const double u = x0[j + l], v = x1[j + l];
                s[l] += u * v;
                q0[l] += u * u;
                q1[l] += v * v;
            }
        for (int l = 0; j + l < D; l++) {
            const double u = x0[j + l], v = x1[j + l];
            s[l] += u * v;
            q0[l] += u * u;
            q1[l] += v * v;
        }
        const double m0 = lossk_lanes_total(q0) + COSINE_EPSILON, m1 = lossk_lanes_total(q1) + COSINE_EPSILON;
        const double r = 1 / sqrt(m0 * m1), cosine = lossk_lanes_total(s) * r;
        const T c = (T)cosine, yn = y[n];
        const T excess = c - margin;
        const T l = yn == 1 ? 1 - c : (yn == -1 ? (excess < 0 ? (T)0 : excess) : (T)0);
        FN(row_loss)(job, &acc, n, l);
        if (!want_grad)
            continue;
        /* d loss / d cos, times the row's grad_output; then d cos / dx0 = r x1 - cos / m0 x0 */
        const double k = (yn == 1 ? -1.0 : (yn == -1 && excess >= 0 ? 1.0 : 0.0)) * (has_go ? (double)go[n] : a->grad_scale);
        const T ar = (T)(k * r), b0 = (T)(k * cosine / m0), b1 = (T)(k * cosine / m1);
        for (int64_t i = 0; i < D; i += RUN) {
            const int64_t L = lossk_min64(RUN, D - i);
            T *d0 = FN(into)(job, g0, n * D + i, s0), *d1 = FN(into)(job, g1, n * D + i, s1);
#pragma omp simd
            for (int64_t q = 0; q < L; q++) {
                d0[q] = ar * x1[i + q] - b0 * x0[i + q];
                d1[q] = ar * x0[i + q] - b1 * x1[i + q];
            }
            if (job->stream)
                for (int g = 0; g < 2; g++)
                    STREAM(grad[g] + n * D + i, staged[g], L);
        }
    }
    job->partial[b] = acc;
}
#undef COSINE_EPSILON

/* --- triplet_margin: per row, max(0, margin + |a - p + eps|_p - |a - n + eps|_p [swap: min]) ---- */

enum { FN(NORM_1), FN(NORM_2), FN(NORM_P) };

/* |v|^p summed (in double) over the elements of the difference x - y + eps, as PyTorch forms it */
LOSSK_INLINE double FN(norm_sum)(const T *restrict x, const T *restrict y, int64_t D, T eps, const int norm, double p)
{
    double acc[LOSSK_LANES] = {0};
    for (int64_t j = 0; j < D; j += LOSSK_LANES) {
        const int64_t L = lossk_min64(LOSSK_LANES, D - j);
        for (int l = 0; l < L; l++) {
            const double v = (double)(x[j + l] - y[j + l] + eps), av = fabs(v);
            acc[l] += norm == FN(NORM_2) ? v * v : (norm == FN(NORM_1) ? av : pow(av, p));
        }
    }
    return lossk_lanes_total(acc);
}

LOSSK_INLINE double FN(norm_of)(double s, const int norm, double p)
{
    return norm == FN(NORM_2) ? sqrt(s) : (norm == FN(NORM_1) ? s : pow(s, 1 / p));
}

/* The factor c of d|v|_p / dv = c f(v): 1 / |v| (p = 2, f(v) = v), 1 (p = 1, f(v) = sgn v),
 * |v|^(1 - p) (f(v) = sgn v |v|^(p - 1)); 0 for a zero norm, as PyTorch's norm backward masks it. */
LOSSK_INLINE double FN(norm_factor)(double dist, const int norm, double p)
{
    if (dist == 0)
        return 0;
    return norm == FN(NORM_2) ? 1 / dist : (norm == FN(NORM_1) ? 1.0 : pow(dist, 1 - p));
}

LOSSK_INLINE T FN(norm_dir)(T v, const int norm, double p)
{
    const T sgn = v > 0 ? (T)1 : (v < 0 ? (T)-1 : (T)0);
    return norm == FN(NORM_2) ? v : (norm == FN(NORM_1) ? sgn : sgn * (T)pow(fabs((double)v), p - 1));
}

LOSSK_INLINE void FN(triplet_margin_body)(const FN(multi_job) *job, int b, const int want_grad, const int has_go,
                                          const int norm)
{
    const lossk_multi_args *a = job->a;
    const int64_t D = a->d;
    const double p = a->p;
    const int swap = a->swap;
    const T eps = (T)a->eps, margin = (T)a->margin, *go = a->grad_output;
    T *ga = a->grad[0], *gp = a->grad[1], *gn = a->grad[2];
    T *const grad[3] = {ga, gp, gn};
    const int64_t end = lossk_block_start(job->units, job->nb, b + 1);
    double acc = 0;
    _Alignas(64) T sa[RUN], sp[RUN], sn[RUN];
    T *const staged[3] = {sa, sp, sn};
    for (int64_t row = lossk_block_start(job->units, job->nb, b); row < end; row++) {
        const T *xa = (const T *)a->x[0] + row * D, *xp = (const T *)a->x[1] + row * D;
        const T *xn = (const T *)a->x[2] + row * D;
        const double pos = FN(norm_of)(FN(norm_sum)(xa, xp, D, eps, norm, p), norm, p);
        const double neg = FN(norm_of)(FN(norm_sum)(xa, xn, D, eps, norm, p), norm, p);
        const double sw = swap ? FN(norm_of)(FN(norm_sum)(xp, xn, D, eps, norm, p), norm, p) : 0;
        const T dpos = (T)pos, dneg = (T)neg, dsw = (T)sw;
        const T dmin = swap && dsw < dneg ? dsw : dneg;
        const T z = margin + dpos - dmin;
        const T l = z < 0 ? (T)0 : z;
        FN(row_loss)(job, &acc, row, l);
        if (!want_grad)
            continue;
        const double k = z >= 0 ? (has_go ? (double)go[row] : a->grad_scale) : 0.0;
        /* swap's minimum: a tie gives each distance half, as PyTorch's minimum backward */
        const double wn = !swap || dneg < dsw ? 1.0 : (dneg == dsw ? 0.5 : 0.0), ws = swap ? 1.0 - wn : 0.0;
        const T ca = (T)(k * FN(norm_factor)(pos, norm, p)), cn = (T)(k * wn * FN(norm_factor)(neg, norm, p));
        const T cs = (T)(k * ws * FN(norm_factor)(sw, norm, p));
        for (int64_t i = 0; i < D; i += RUN) {
            const int64_t L = lossk_min64(RUN, D - i), o = row * D + i;
            T *da = FN(into)(job, ga, o, sa), *dp = FN(into)(job, gp, o, sp), *dn = FN(into)(job, gn, o, sn);
#pragma omp simd
            for (int64_t q = 0; q < L; q++) {
                const T ua = FN(norm_dir)(xa[i + q] - xp[i + q] + eps, norm, p);
                const T un = FN(norm_dir)(xa[i + q] - xn[i + q] + eps, norm, p);
                const T us = swap ? FN(norm_dir)(xp[i + q] - xn[i + q] + eps, norm, p) : (T)0;
                da[q] = ca * ua - cn * un;
                dp[q] = -ca * ua - cs * us;
                dn[q] = cn * un + cs * us;
            }
            if (job->stream)
                for (int g = 0; g < 3; g++)
                    STREAM(grad[g] + o, staged[g], L);
        }
    }
    job->partial[b] = acc;
}

/* --- blocks and entry points ------------------------------------------------------------------- */

/* One block of one kind, with the flags constant in each call of its body. */
LOSSK_INLINE void FN(multi_body)(const FN(multi_job) *job, int b, const int kind)
{
    const lossk_multi_args *a = job->a;
    const int want_grad = a->grad[0] || a->grad[1] || a->grad[2], has_go = a->grad_output != NULL;
#define FLAGS(call) \
    do { \
        if (!want_grad) \
            call(0, 0); \
        else if (has_go) \
            call(1, 1); \
        else \
            call(1, 0); \
    } while (0)
#define MARGIN_RANKING(g, o) FN(margin_ranking_body)(job, b, g, o)
#define GAUSSIAN_ROWS(g, o) FN(gaussian_rows_body)(job, b, g, o)
#define GAUSSIAN_COLUMNS(g, o) FN(gaussian_columns_body)(job, b, g, o)
#define COSINE_EMBEDDING(g, o) FN(cosine_embedding_body)(job, b, g, o)
#define TRIPLET_1(g, o) FN(triplet_margin_body)(job, b, g, o, FN(NORM_1))
#define TRIPLET_2(g, o) FN(triplet_margin_body)(job, b, g, o, FN(NORM_2))
#define TRIPLET_P(g, o) FN(triplet_margin_body)(job, b, g, o, FN(NORM_P))
    if (kind == FN(MARGIN_RANKING))
        FLAGS(MARGIN_RANKING);
    else if (kind == FN(GAUSSIAN_ROWS))
        FLAGS(GAUSSIAN_ROWS);
    else if (kind == FN(GAUSSIAN_COLUMNS))
        FLAGS(GAUSSIAN_COLUMNS);
    else if (kind == FN(COSINE_EMBEDDING))
        FLAGS(COSINE_EMBEDDING);
    else if (a->p == 2)
        FLAGS(TRIPLET_2);
    else if (a->p == 1)
        FLAGS(TRIPLET_1);
    else
        FLAGS(TRIPLET_P);
#undef FLAGS
#undef MARGIN_RANKING
#undef GAUSSIAN_ROWS
#undef GAUSSIAN_COLUMNS
#undef COSINE_EMBEDDING
#undef TRIPLET_1
#undef TRIPLET_2
#undef TRIPLET_P
}

/* Whether a variance in the block is negative (gaussian_nll's check before anything is written). */
LOSSK_BLOCK_FN void FN(negative_var_block)(const FN(multi_job) *job, int b)
{
    const T *var = job->a->x[1];
    const int64_t end = lossk_block_start(job->units, job->nb, b + 1);
    int negative = 0;
#pragma omp simd reduction(| : negative)
    for (int64_t i = lossk_block_start(job->units, job->nb, b); i < end; i++)
        negative |= var[i] < 0;
    job->negative[b] = negative;
}

/* A block function per kind, as in elementwise_impl.h. */
typedef void (*FN(multi_block_fn))(const FN(multi_job) *job, int b);
#define MULTI_BLOCK(K) \
    LOSSK_BLOCK_FN void FN(block_##K)(const FN(multi_job) *job, int b) { FN(multi_body)(job, b, FN(K)); }
MULTI_BLOCK(MARGIN_RANKING)
MULTI_BLOCK(GAUSSIAN_ROWS)
MULTI_BLOCK(GAUSSIAN_COLUMNS)
MULTI_BLOCK(COSINE_EMBEDDING)
MULTI_BLOCK(TRIPLET_MARGIN)
#undef MULTI_BLOCK
static const FN(multi_block_fn) FN(multi_blocks)[] = {FN(block_MARGIN_RANKING), FN(block_GAUSSIAN_ROWS),
                                                      FN(block_GAUSSIAN_COLUMNS), FN(block_COSINE_EMBEDDING),
                                                      FN(block_TRIPLET_MARGIN)};

static int FN(multi_input)(int kind, lossk_multi_args *a)
{
    const int64_t n = a->n, d = a->d, m = a->m;
    const int reduce = a->reduction == LOSSK_REDUCTION_SUM;
    const int gaussian = kind == FN(GAUSSIAN_ROWS);
    const int inputs = kind == FN(TRIPLET_MARGIN) ? 3 : 2;
    const int rows = kind == FN(COSINE_EMBEDDING) || kind == FN(TRIPLET_MARGIN);
    if (n < 0 || d < 0 || m < 0 || (!a->loss && !a->grad[0] && !a->grad[1] && !a->grad[2])
        || (a->reduction != LOSSK_REDUCTION_NONE && !reduce)
        || (kind == FN(TRIPLET_MARGIN) && !(a->p > 0 && a->p < INFINITY)))
        return LOSSK_ERR_ARGUMENT;
    const int64_t elements = kind == FN(MARGIN_RANKING) ? n : (gaussian ? n * d * m : n * d);
    for (int k = 0; k < inputs; k++)
        if (elements > 0 && !a->x[k])
            return LOSSK_ERR_ARGUMENT;
    if ((elements > 0 && kind != FN(TRIPLET_MARGIN) && !a->target) || (gaussian && n * m > 0 && !a->x[1]))
        return LOSSK_ERR_ARGUMENT;
    if (gaussian && m != 1) /* m = 0: no elements, and no variance to read */
        kind = FN(GAUSSIAN_COLUMNS);
    double partial[LOSSK_BLOCKS];
    int negative[LOSSK_BLOCKS] = {0};
    FN(multi_job) job = {a, reduce, 0, 1, 0, 1, partial, NULL, negative};
    if (gaussian && a->check_first) {
        job.units = n * m;
        job.nb = lossk_blocks(job.units, job.units);
        LOSSK_FOR_BLOCKS(lossk_threads_for(job.units), job.nb, FN(negative_var_block), &job);
        for (int b = 0; b < job.nb; b++)
            if (negative[b])
                return LOSSK_ERR_DOMAIN;
    }
    int64_t work = elements;
    if (kind == FN(MARGIN_RANKING)) {
        job.units = n;
    } else if (kind == FN(GAUSSIAN_ROWS)) {
        job.per_row = lossk_max64(1, (d + SEGMENT - 1) / SEGMENT);
        job.units = n * job.per_row;
    } else if (kind == FN(GAUSSIAN_COLUMNS)) {
        job.per_row = (m + RUN - 1) / RUN;
        job.units = n * job.per_row;
    } else {
        job.units = n;
        work = n * (d + 1) * (kind == FN(TRIPLET_MARGIN) ? 3 : 2);
    }
    /* the per-element outputs (losses, the inputs' gradients) written once, by streaming stores */
    job.stream = elements * (int64_t)sizeof(T) >= LOSSK_STREAM_BYTES
                 && (a->grad[0] || (!rows && a->loss && !reduce));
    job.nb = lossk_blocks(job.units, work);
    if (kind == FN(GAUSSIAN_ROWS) && job.per_row > 1 && a->grad[1] && job.units > 0
        && !(job.dvar = malloc((size_t)job.units * sizeof(double))))
        return LOSSK_ERR_NOMEM;
    LOSSK_FOR_BLOCKS(lossk_threads_for(work), job.nb, FN(multi_blocks)[kind], &job);
    if (job.stream)
        lossk_stream_fence();
    int bad = 0;
    for (int b = 0; b < job.nb; b++)
        bad |= negative[b];
    if (job.dvar && !bad)
        for (int64_t row = 0; row < n; row++) { /* the segments' sums, in order */
            double s = 0;
            for (int64_t seg = 0; seg < job.per_row; seg++)
                s += job.dvar[row * job.per_row + seg];
            ((T *)a->grad[1])[row] = (T)s;
        }
    free(job.dvar);
    if (bad)
        return LOSSK_ERR_DOMAIN;
    if (reduce && a->loss) {
        double total = 0;
        for (int b = 0; b < job.nb; b++)
            total += partial[b];
        a->sum = total;
        *(T *)a->loss = (T)(total / a->divisor);
    }
    return LOSSK_OK;
}

#define DEFINE_KERNEL(name, kind) \
    int LOSSK_ISA_NAME(LOSSK_CAT(lossk_##name, SFX))(lossk_multi_args *a) \
    { \
        return FN(multi_input)(FN(kind), a); \
    }
DEFINE_KERNEL(margin_ranking, MARGIN_RANKING)
DEFINE_KERNEL(gaussian_nll, GAUSSIAN_ROWS)
DEFINE_KERNEL(cosine_embedding, COSINE_EMBEDDING)
DEFINE_KERNEL(triplet_margin, TRIPLET_MARGIN)
#undef DEFINE_KERNEL
#undef SEGMENT
#undef HALF_LOG_2PI
#undef RUN
#undef LOG
#undef ADD_LANES
#undef STREAM
#undef FN
