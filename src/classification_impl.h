/* Template for classification.c: T is the element type, SFX its suffix (f32, f64).
 *
 * Cross-entropy, for one position with logits x_c, max m, e_c = exp(x_c - m), Z = sum e_c:
 *   loss = sum_c q_c (log Z - (x_c - m)),  d loss / d x_c = p_c Q - q_c,  p_c = e_c / Z, Q = sum q_c,
 * where q is what the target asks for each class:
 *   class index t:  q_c = (1 - eps) w_t [c == t] + (eps / C) w_c   (label smoothing eps)
 *   probabilities:  q_c = w_c ((1 - eps) t_c + eps / C)
 * Both terms stay sums of non-negative parts, so logits of +-1e4 lose nothing to cancellation,
 * and a class masked with -inf contributes exactly 0 where PyTorch's does.
 */
#define FN(name) LOSSK_CAT(name, SFX)
#define EXP LOSSK_CAT(lossk_exp, SFX)
#define LOG LOSSK_CAT(lossk_log, SFX)
#define STREAM LOSSK_CAT(lossk_stream, SFX)

#define LANES LOSSK_LANES
#define TS 64 /* positions per tile of the spatial (S > 1) loops */

/* Shared by a whole call. */
typedef struct {
    const T *w;         /* class weights or NULL */
    T eps, eps_c;       /* label smoothing, eps / C */
    T wsum;             /* sum of the class weights (C without weights) */
    int soft;           /* probability targets */
} FN(ce_ctx);

LOSSK_INLINE T FN(class_weight)(const T *w, int64_t c) { return w ? w[c] : (T)1; }
LOSSK_INLINE T FN(wc)(const FN(ce_ctx) *k, int64_t c) { return FN(class_weight)(k->w, c); }

/* q_c for the terms that are not the target class's one-hot part. */
LOSSK_INLINE T FN(q_spread)(const FN(ce_ctx) *k, int64_t c, T tc)
{
    return k->soft ? FN(wc)(k, c) * ((1 - k->eps) * tc + k->eps_c) : k->eps_c * FN(wc)(k, c);
}

/* Check the targets and sum the weight of the non-ignored ones, in one pass over (N*S) positions. */
static int FN(check_targets)(lossk_class_args *a, double *total_weight)
{
    const int64_t np = a->n * a->s, C = a->c;
    const int64_t *t = a->target;
    const T *w = a->weight;
    double partial[LOSSK_BLOCKS];
    int64_t first_bad[LOSSK_BLOCKS];
    const int nt = lossk_threads_for(np);

#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int b = 0; b < LOSSK_BLOCKS; b++) {
        double acc = 0;
        first_bad[b] = -1;
        for (int64_t i = lossk_block_start(np, b); i < lossk_block_start(np, b + 1); i++) {
            int64_t ti = t[i];
            if (ti == a->ignore_index)
                continue;
            if (ti < 0 || ti >= C) {
                first_bad[b] = i;
                break;
            }
            acc += w ? (double)w[ti] : 1.0;
        }
        partial[b] = acc;
    }
    double total = 0;
    for (int b = 0; b < LOSSK_BLOCKS; b++) {
        if (first_bad[b] >= 0) {
            a->bad_index = first_bad[b];
            return LOSSK_ERR_TARGET;
        }
        total += partial[b];
    }
    *total_weight = total;
    return LOSSK_OK;
}

/* sum_c exp(x_c - m), storing each term in e when e is not NULL. Whole chunks of LANES, the last
 * one padded with -inf (exp gives 0), so even short rows run vector code and not a scalar tail. */
LOSSK_INLINE T FN(sum_exp)(const T *restrict x, int64_t C, T m, T *restrict e)
{
    T zl[LANES] = {0}, tail[LANES];
    int64_t c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int l = 0; l < LANES; l++) {
            T v = EXP(x[c + l] - m);
            if (e)
                e[c + l] = v;
            zl[l] += v;
        }
    for (int l = 0; l < LANES; l++)
        tail[l] = -INFINITY;
    for (int l = 0; c + l < C; l++)
        tail[l] = x[c + l];
    for (int l = 0; l < LANES; l++)
        tail[l] = EXP(tail[l] - m);
    for (int l = 0; c + l < C; l++)
        if (e)
            e[c + l] = tail[l];
    T z = 0;
    for (int l = 0; l < LANES; l++)
        z += zl[l] + tail[l];
    return z;
}

/* One position of an (N, C) input: the row x[0..C). Returns its loss; writes its gradient,
 * scaled by g, into gr when gr is not NULL. t is the class index (index targets), tp the
 * target row (probability targets). */
LOSSK_INLINE double FN(ce_row)(const FN(ce_ctx) *k, int64_t C, const T *restrict x, int64_t t,
                               const T *restrict tp, T g, T *restrict gr)
{
    T mv[LANES];
    for (int l = 0; l < LANES; l++)
        mv[l] = -INFINITY;
    int64_t c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int l = 0; l < LANES; l++)
            mv[l] = x[c + l] > mv[l] ? x[c + l] : mv[l];
    for (int l = 0; c + l < C; l++)
        mv[l] = x[c + l] > mv[l] ? x[c + l] : mv[l];
    T m = mv[0];
    for (int l = 1; l < LANES; l++)
        m = mv[l] > m ? mv[l] : m;

    /* Separate simple loops, so each vectorises: exp (storing e_c for the gradient), then the
     * target's linear term only when the target is not one-hot. */
    const int need_lin = k->soft || k->eps != 0;
    T z = FN(sum_exp)(x, C, m, gr), lin = 0, Q = 0;
    if (need_lin) {
#pragma omp simd reduction(+ : lin, Q)
        for (int64_t j = 0; j < C; j++) {
            T q = FN(q_spread)(k, j, k->soft ? tp[j] : (T)0);
            lin += q * (x[j] - m);
            Q += q;
        }
    }
    T log_z = LOG(z);
    double loss;
    T wt = 0;
    if (k->soft) {
        loss = (double)(Q * log_z - lin);
    } else {
        wt = (1 - k->eps) * FN(wc)(k, t);
        Q = wt + k->eps_c * k->wsum;
        loss = (double)(wt * (log_z - (x[t] - m)));
        if (need_lin)
            loss += (double)(k->eps_c * k->wsum * log_z - lin);
    }
    if (gr) {
        T a = g * Q / z;
        if (need_lin) {
            for (int64_t j = 0; j < C; j++)
                gr[j] = a * gr[j] - g * FN(q_spread)(k, j, k->soft ? tp[j] : (T)0);
        } else {
            for (int64_t j = 0; j < C; j++)
                gr[j] *= a;
        }
        if (!k->soft)
            gr[t] -= g * wt;
    }
    return loss;
}

/* A tile of L <= TS positions s0..s0+L of one sample of an (N, C, S) input; x and tp point at
 * (n, 0, s0), element (c, j) at [c * S + j]; gr at [c * GS + j]. Vectorised across positions. */
LOSSK_INLINE void FN(ce_tile)(const FN(ce_ctx) *k, int64_t C, int64_t S, int64_t L,
                              const T *restrict x, const int64_t *restrict t, int64_t ignore,
                              const T *restrict tp, const T *restrict g, T *restrict gr, int64_t GS,
                              double *restrict loss)
{
    T m[TS], z[TS], lin[TS], Q[TS];
    const int need_lin = k->soft || k->eps != 0;
    for (int64_t j = 0; j < L; j++) {
        m[j] = -INFINITY;
        z[j] = lin[j] = Q[j] = 0;
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < L; j++)
            m[j] = x[c * S + j] > m[j] ? x[c * S + j] : m[j];
    for (int64_t c = 0; c < C; c++) {
        if (gr) {
            for (int64_t j = 0; j < L; j++) {
                T e = EXP(x[c * S + j] - m[j]);
                gr[c * GS + j] = e;
                z[j] += e;
            }
        } else {
            for (int64_t j = 0; j < L; j++)
                z[j] += EXP(x[c * S + j] - m[j]);
        }
        if (need_lin) {
            for (int64_t j = 0; j < L; j++) {
                T q = FN(q_spread)(k, c, k->soft ? tp[c * S + j] : (T)0);
                lin[j] += q * (x[c * S + j] - m[j]);
                Q[j] += q;
            }
        }
    }
    T a[TS], wt[TS];
    for (int64_t j = 0; j < L; j++) {
        T log_z = LOG(z[j]);
        if (k->soft) {
            loss[j] = (double)(Q[j] * log_z - lin[j]);
            wt[j] = 0;
        } else if (t[j] == ignore) {
            loss[j] = 0;
            wt[j] = 0;
            Q[j] = 0;
        } else {
            wt[j] = (1 - k->eps) * FN(wc)(k, t[j]);
            Q[j] = wt[j] + k->eps_c * k->wsum;
            loss[j] = (double)(wt[j] * (log_z - (x[t[j] * S + j] - m[j])));
            if (need_lin)
                loss[j] += (double)(k->eps_c * k->wsum * log_z - lin[j]);
        }
        a[j] = g[j] * Q[j] / z[j];
    }
    if (!gr)
        return;
    for (int64_t c = 0; c < C; c++) {
        if (need_lin) {
            for (int64_t j = 0; j < L; j++)
                gr[c * GS + j] = a[j] * gr[c * GS + j] - g[j] * FN(q_spread)(k, c, k->soft ? tp[c * S + j] : (T)0);
        } else {
            for (int64_t j = 0; j < L; j++)
                gr[c * GS + j] *= a[j];
        }
    }
    if (!k->soft)
        for (int64_t j = 0; j < L; j++)
            if (t[j] != ignore)
                gr[t[j] * GS + j] -= g[j] * wt[j];
}

/* The reduced loss: the block sums added in order, over divisor. A weighted mean whose total weight
 * is 0 is nan even when label smoothing makes the sum nonzero: PyTorch's NLL term is then 0/0. */
static T FN(reduced_loss)(const double *partial, double divisor, int mean_by_weight)
{
    double total = 0;
    for (int b = 0; b < LOSSK_BLOCKS; b++)
        total += partial[b];
    return mean_by_weight && divisor == 0 ? (T)NAN : (T)(total / divisor);
}

/* The gradient factor of position i: grad_output (or grad_scale), divided by the total weight
 * for a weighted mean; 0 at ignored positions. */
LOSSK_INLINE T FN(gfactor)(const lossk_class_args *a, int64_t i, int ignored, T scale)
{
    if (ignored)
        return 0;
    return (a->grad_output ? ((const T *)a->grad_output)[i] : (T)a->grad_scale) * scale;
}

static int FN(cross_entropy_any)(lossk_class_args *a, int soft)
{
    const int64_t N = a->n, C = a->c, S = a->s, np = N * S;
    const int reduce = a->reduction == LOSSK_REDUCTION_SUM;
    if (N < 0 || C <= 0 || S < 0 || (np > 0 && !a->input) || (!a->loss && !a->grad)
        || (soft ? !a->target_prob : !a->target) || a->label_smoothing < 0 || a->label_smoothing > 1
        || (a->reduction != LOSSK_REDUCTION_NONE && !reduce))
        return LOSSK_ERR_ARGUMENT;
    const T *x = a->input, *tp = a->target_prob;
    const int64_t *t = a->target;
    T *loss = a->loss, *grad = a->grad;
    FN(ce_ctx) k = {a->weight, (T)a->label_smoothing, (T)(a->label_smoothing / (double)C), 0, soft};
    double wsum = 0;
    for (int64_t c = 0; c < C; c++)
        wsum += (double)FN(wc)(&k, c);
    k.wsum = (T)wsum;

    double divisor = a->divisor;
    if (!soft) {
        double total_weight;
        int err = FN(check_targets)(a, &total_weight);
        if (err)
            return err;
        a->total_weight = total_weight;
        if (a->mean_by_weight)
            divisor = total_weight;
    }
    const T scale = a->mean_by_weight ? (T)(1.0 / divisor) : (T)1;

    double partial[LOSSK_BLOCKS];
    const int nt = lossk_threads_for(np * C * 2);
    /* A large gradient is built in a scratch tile (a row, or C rows of a spatial tile) and streamed out. */
    const int stream = grad && np * C * (int64_t)sizeof(T) >= LOSSK_STREAM_BYTES
        && C * (S == 1 ? 1 : TS) <= LOSSK_SCRATCH;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int b = 0; b < LOSSK_BLOCKS; b++) {
        double acc = 0;
        _Alignas(64) T scratch[stream ? LOSSK_SCRATCH : 1];
        const int64_t end = lossk_block_start(np, b + 1);
        for (int64_t i = lossk_block_start(np, b); i < end;) {
            const int64_t n = i / S, s = i % S;
            if (S == 1) {
                const int ignored = !soft && t[i] == a->ignore_index;
                const T g = FN(gfactor)(a, i, ignored, scale);
                double l = FN(ce_row)(&k, C, x + i * C, soft || ignored ? 0 : t[i], soft ? tp + i * C : NULL, g,
                                      stream ? scratch : grad ? grad + i * C : NULL);
                if (stream)
                    STREAM(grad + i * C, scratch, C);
                l = ignored ? 0 : l;
                if (reduce)
                    acc += l;
                else if (loss)
                    loss[i] = (T)l;
                i++;
                continue;
            }
            const int64_t L = lossk_min64(lossk_min64(TS, S - s), end - i);
            const int64_t base = n * C * S + s;
            T g[TS];
            double l[TS];
            for (int64_t j = 0; j < L; j++)
                g[j] = FN(gfactor)(a, i + j, !soft && t[i + j] == a->ignore_index, scale);
            FN(ce_tile)(&k, C, S, L, x + base, soft ? NULL : t + i, a->ignore_index, soft ? tp + base : NULL, g,
                        stream ? scratch : grad ? grad + base : NULL, stream ? L : S, l);
            if (stream)
                for (int64_t c = 0; c < C; c++)
                    STREAM(grad + base + c * S, scratch + c * L, L);
            for (int64_t j = 0; j < L; j++) {
                if (reduce)
                    acc += l[j];
                else if (loss)
                    loss[i + j] = (T)l[j];
            }
            i += L;
        }
        partial[b] = acc;
        if (stream)
            lossk_stream_fence();
    }
    if (reduce && loss)
        *loss = FN(reduced_loss)(partial, divisor, a->mean_by_weight);
    return LOSSK_OK;
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_cross_entropy, SFX))(lossk_class_args *a)
{
    return FN(cross_entropy_any)(a, 0);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_cross_entropy_prob, SFX))(lossk_class_args *a)
{
    return FN(cross_entropy_any)(a, 1);
}

/* NLL: loss = -w_t x_t at each non-ignored position; the gradient is zero but at the targets. */
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
    const double divisor = a->mean_by_weight ? total_weight : a->divisor;
    const T scale = a->mean_by_weight ? (T)(1.0 / divisor) : (T)1;
    const T *x = a->input, *w = a->weight;
    const int64_t *t = a->target;
    T *loss = a->loss, *grad = a->grad;

    double partial[LOSSK_BLOCKS];
    const int nt = lossk_threads_for(grad ? np * C : np);
    /* The gradient is built in scratch tiles of positions x classes and copied out (streamed when
     * large), so every line of it is written once; only more than LOSSK_SCRATCH classes are
     * zeroed and scattered in place. */
    const int tiled = C <= LOSSK_SCRATCH;
    const int stream = tiled && np * C * (int64_t)sizeof(T) >= LOSSK_STREAM_BYTES;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int b = 0; b < LOSSK_BLOCKS; b++) {
        const int64_t start = lossk_block_start(np, b), end = lossk_block_start(np, b + 1);
        _Alignas(64) T scratch[tiled && grad ? LOSSK_SCRATCH : 1];
        for (int64_t i = start; grad && tiled && i < end;) {
            /* L rows (S == 1), staged as [L][C], or L positions of one sample, staged as [C][L] */
            const int64_t n = i / S, s = i % S;
            const int64_t L = lossk_min64(lossk_min64(end - i, S == 1 ? end - i : S - s), LOSSK_SCRATCH / C);
            memset(scratch, 0, (size_t)(L * C) * sizeof(T));
            for (int64_t j = 0; j < L; j++) {
                const int64_t tj = t[i + j];
                if (tj != a->ignore_index)
                    scratch[S == 1 ? j * C + tj : tj * L + j] = -FN(class_weight)(w, tj) * FN(gfactor)(a, i + j, 0, scale);
            }
            for (int64_t c = 0; c < (S == 1 ? 1 : C); c++) {
                T *dst = S == 1 ? grad + i * C : grad + (n * C + c) * S + s;
                const int64_t len = S == 1 ? L * C : L;
                if (stream)
                    STREAM(dst, scratch + c * L, len);
                else
                    memcpy(dst, scratch + c * L, (size_t)len * sizeof(T));
            }
            i += L;
        }
        if (grad && !tiled) {
            for (int64_t i = start; i < end; i++) {
                const int64_t n = i / S, s = i % S, ti = t[i];
                for (int64_t c = 0; c < C; c++)
                    grad[(n * C + c) * S + s] = 0;
                if (ti != a->ignore_index)
                    grad[(n * C + ti) * S + s] = -FN(class_weight)(w, ti) * FN(gfactor)(a, i, 0, scale);
            }
        }
        if (stream)
            lossk_stream_fence();
        double acc = 0;
        for (int64_t i = start; i < end; i++) {
            const int64_t n = i / S, s = i % S, ti = t[i];
            const T l = ti == a->ignore_index ? (T)0 : -FN(class_weight)(w, ti) * x[(n * C + ti) * S + s];
            if (reduce)
                acc += (double)l;
            else if (loss)
                loss[i] = l;
        }
        partial[b] = acc;
    }
    if (reduce && loss)
        *loss = FN(reduced_loss)(partial, divisor, a->mean_by_weight);
    return LOSSK_OK;
}

#undef FN
#undef EXP
#undef LOG
#undef STREAM
#undef LANES
#undef TS
