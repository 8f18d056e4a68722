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
#define EXP LOSSK_CAT(lossk_exp_nonpos, SFX) /* every argument is x - max: <= 0, or nan */
#define LOG LOSSK_CAT(lossk_log, SFX)
#define STREAM LOSSK_CAT(lossk_stream, SFX)

#define LANES LOSSK_LANES
#define TS 256 /* positions per tile of the spatial (S > 1) loops, at most */
#ifndef CE_SELECT
#define CE_SELECT 8 /* classes, at most, for the vector selects of ce_tile */
#endif
/* an integer as wide as T */
#define CLS(T) __typeof__(_Generic((T)0, float: (int32_t)0, double: (int64_t)0))

/* Shared by a whole call. */
typedef struct {
    const T *w;         /* class weights or NULL */
    T eps, eps_c;       /* label smoothing, eps / C */
    T wsum;             /* sum of the class weights (C without weights) */
    int soft;           /* probability targets */
} FN(ce_ctx);

LOSSK_INLINE T FN(class_weight)(const T *w, int64_t c) { return w ? w[c] : (T)1; }

/* Positions per run of a gradient staged in scratch (C values each) before it is streamed out, at
 * least `least`: the stage stays within STAGE_BYTES, in L1 (a stage in L2 made NLL and float64 spatial
 * cross-entropy slower), and a spatial (S > 1) run covers whole
 * cache lines of each plane, since a line split between two runs is streamed out in two partial
 * writes. */
#define STAGE_BYTES 32768
LOSSK_INLINE int64_t FN(stage_positions)(int64_t C, int64_t S, int64_t least)
{
    const int64_t line = 64 / (int64_t)sizeof(T), fit = STAGE_BYTES / (int64_t)sizeof(T) / C;
    const int64_t whole = S > 1 && fit >= line ? fit - fit % line : fit;
    return whole < least ? least : whole;
}
LOSSK_INLINE T FN(wc)(const FN(ce_ctx) *k, int64_t c) { return FN(class_weight)(k->w, c); }

/* q_c for the terms that are not the target class's one-hot part. */
LOSSK_INLINE T FN(q_spread)(const FN(ce_ctx) *k, int64_t c, T tc)
{
    return k->soft ? FN(wc)(k, c) * ((1 - k->eps) * tc + k->eps_c) : k->eps_c * FN(wc)(k, c);
}

/* Positions from the last cache-line boundary at or before p to p */
LOSSK_INLINE int64_t FN(past_line)(const T *p)
{
    return (int64_t)((uintptr_t)p / sizeof(T) % (64 / sizeof(T)));
}

/* q plus the positions from p + q to the next cache-line boundary of p's array, at most limit */
LOSSK_INLINE int64_t FN(to_line)(const T *p, int64_t q, int64_t limit)
{
    const int64_t line = 64 / (int64_t)sizeof(T);
    return lossk_min64(q + (line - FN(past_line)(p + q)) % line, limit);
}

/* Check the targets and sum the weight of the non-ignored ones, in one pass over (N*S) positions. */
typedef struct {
    const lossk_class_args *a;
    int nb;          /* blocks */
    double *partial;
    int64_t *first_bad;
} FN(targets_job);

LOSSK_BLOCK_FN void FN(check_targets_block)(const FN(targets_job) *job, int b)
{
    const lossk_class_args *a = job->a;
    const int64_t np = a->n * a->s, C = a->c, ignore = a->ignore_index;
    const int64_t *t = a->target;
    const T *w = a->weight;
    double acc = 0;
    job->first_bad[b] = -1;
    const int64_t end = lossk_block_start(np, job->nb, b + 1);
    for (int64_t i = lossk_block_start(np, job->nb, b); i < end; i++) {
        int64_t ti = t[i];
        if (ti == ignore)
            continue;
        if (ti < 0 || ti >= C) {
            job->first_bad[b] = i;
            break;
        }
        acc += w ? (double)w[ti] : 1.0;
    }
    job->partial[b] = acc;
}

static int FN(check_targets)(lossk_class_args *a, double *total_weight)
{
    double partial[LOSSK_BLOCKS];
    int64_t first_bad[LOSSK_BLOCKS];
    const int64_t np = a->n * a->s;
    const FN(targets_job) job = {a, lossk_blocks(np, np), partial, first_bad};
    LOSSK_FOR_BLOCKS(lossk_threads_for(np), job.nb, FN(check_targets_block), &job);
    double total = 0;
    for (int b = 0; b < job.nb; b++) {
        if (first_bad[b] >= 0) {
            a->bad_index = first_bad[b];
            return LOSSK_ERR_TARGET;
        }
        total += partial[b];
    }
    *total_weight = total;
    return LOSSK_OK;
}

/* Lane reductions as trees, in a fixed order: a short row's latency is mostly these chains. Both
 * overwrite v. A nan may or may not win the max; either way exp then makes the row nan, as
 * PyTorch's is. */
LOSSK_INLINE T FN(lanes_max)(T *v)
{
#pragma GCC unroll 8
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            v[l] = v[l + w] > v[l] ? v[l + w] : v[l];
    return v[0];
}

LOSSK_INLINE T FN(lanes_sum)(T *v)
{
#pragma GCC unroll 8
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            v[l] += v[l + w];
    return v[0];
}

/* The parts of a row that only label smoothing and probability targets need, generated for each
 * combination of the flags soft and weighted, so that no test on them is left in the loops (GCC
 * does not take such tests out of these loops itself, and then keeps the lanes in memory):
 *   lin = sum_c q_c (x_c - m), Q = sum_c q_c            (ce_lin)
 *   gr_c = a gr_c - g q_c                                (ce_lin_grad) */
LOSSK_INLINE T FN(q_at)(const FN(ce_ctx) *k, const int soft, const int weighted, int64_t c, const T *tp)
{
    const T wc = weighted ? k->w[c] : (T)1;
    return soft ? wc * ((1 - k->eps) * tp[c] + k->eps_c) : k->eps_c * wc;
}

LOSSK_INLINE void FN(ce_lin_flags)(const FN(ce_ctx) *k, const int soft, const int weighted, int64_t C,
                                   const T *restrict x, const T *restrict tp, T m, T *lin, T *Q)
{
    const int64_t cf = C - C % LANES;
    T ll[LANES] = {0}, ql[LANES] = {0}, lt = 0, qt = 0;
    for (int64_t c = 0; c < cf; c += LANES)
#pragma omp simd
        for (int l = 0; l < LANES; l++) {
            T q = FN(q_at)(k, soft, weighted, c + l, tp);
            ll[l] += q * (x[c + l] - m);
            ql[l] += q;
        }
    for (int64_t j = cf; j < C; j++) { /* (not into the lanes, which would then leave registers) */
        T q = FN(q_at)(k, soft, weighted, j, tp);
        lt += q * (x[j] - m);
        qt += q;
    }
    *lin = FN(lanes_sum)(ll) + lt;
    *Q = FN(lanes_sum)(ql) + qt;
}

LOSSK_INLINE void FN(ce_lin_grad_flags)(const FN(ce_ctx) *k, const int soft, const int weighted, int64_t C,
                                        const T *restrict tp, T a, T g, T *restrict gr)
{
#pragma omp simd
    for (int64_t j = 0; j < C; j++)
        gr[j] = a * gr[j] - g * FN(q_at)(k, soft, weighted, j, tp);
}

#define CE_BY_FLAGS(call, ...) \
    (k->soft ? (k->w ? call(k, 1, 1, __VA_ARGS__) : call(k, 1, 0, __VA_ARGS__)) \
             : (k->w ? call(k, 0, 1, __VA_ARGS__) : call(k, 0, 0, __VA_ARGS__)))

LOSSK_INLINE void FN(ce_lin)(const FN(ce_ctx) *k, int64_t C, const T *x, const T *tp, T m, T *lin, T *Q)
{
    CE_BY_FLAGS(FN(ce_lin_flags), C, x, tp, m, lin, Q);
}

LOSSK_INLINE void FN(ce_lin_grad)(const FN(ce_ctx) *k, int64_t C, const T *tp, T a, T g, T *gr)
{
    CE_BY_FLAGS(FN(ce_lin_grad_flags), C, tp, a, g, gr);
}
#undef CE_BY_FLAGS

/* One position of an (N, C) input: the row x[0..C). Returns its loss; writes its gradient,
 * scaled by g, into gr when gr is not NULL, or, when out is not NULL too, builds it in gr (then
 * scratch) and streams it to out. t is the class index (index targets), tp the
 * target row (probability targets). The row goes by whole chunks of LANES, the last one padded
 * (with -inf, whose exp is 0), so that even a short row is vector code with no scalar tail.
 * The C values at pf are fetched into cache meanwhile, a line or two per chunk of the exp loop:
 * issued all at once, the prefetches of a row fill the core's miss buffers and stall it until
 * the row has arrived (a fifth of a float64 call's time went there). */
LOSSK_INLINE double FN(ce_row)(const FN(ce_ctx) *k, int64_t C, const T *restrict x, int64_t t,
                               const T *restrict tp, T g, T *restrict gr, T *restrict out, const T *pf)
{
    const int64_t cf = C - C % LANES; /* the end of the whole chunks */
    T mv[LANES], tail[LANES], zl[LANES];
    /* the max and the sum take the chunks in order, the padded one last (as ce_rows_short does) */
    for (int l = 0; l < LANES; l++) {
        mv[l] = -INFINITY;
        zl[l] = 0;
    }
    for (int64_t c = 0; c < cf; c += LANES)
#pragma omp simd /* else GCC may run the lanes as scalars */
        for (int l = 0; l < LANES; l++)
            mv[l] = x[c + l] > mv[l] ? x[c + l] : mv[l];
    LOSSK_CAT(lossk_load_tail, SFX)(tail, x + cf, C - cf, -INFINITY);
#pragma omp simd
    for (int l = 0; l < LANES; l++)
        mv[l] = tail[l] > mv[l] ? tail[l] : mv[l];
    const T m = FN(lanes_max)(mv);

    /* e_c = exp(x_c - m) goes into gr for the whole chunks and stays in tail for the last one,
     * computed after them. The tail is padded again, with m, and its padding's exp(0) set to 0: exp(-inf) would
     * underflow, which on Intel cores takes a microcode assist of a hundred cycles or more. */
    __builtin_prefetch(pf + C - 1); /* the line the chunks below may not reach */
    for (int64_t c = 0; c < cf; c += LANES) {
        for (int64_t p = 0; p < LANES; p += 64 / (int64_t)sizeof(T))
            __builtin_prefetch(pf + c + p);
        for (int l = 0; l < LANES; l++) {
            T e = EXP(x[c + l] - m);
            if (gr)
                gr[c + l] = e;
            zl[l] += e;
        }
    }
    LOSSK_CAT(lossk_load_tail, SFX)(tail, x + cf, C - cf, m);
    for (int l = 0; l < LANES; l++) {
        tail[l] = l < C - cf ? EXP(tail[l] - m) : 0;
        zl[l] += tail[l];
    }
    const T z = FN(lanes_sum)(zl);

    /* The target's linear term, only when the target is not one-hot. */
    const int need_lin = k->soft || k->eps != 0;
    T lin = 0, Q = 0;
    if (need_lin)
        FN(ce_lin)(k, C, x, tp, m, &lin, &Q);
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
    if (!gr)
        return loss;
    const T a = g * Q / z;
    if (need_lin) {
        LOSSK_CAT(lossk_store_tail, SFX)(gr + cf, tail, C - cf);
        FN(ce_lin_grad)(k, C, tp, a, g, gr);
        if (!k->soft)
            gr[t] -= g * wt;
        if (out)
            STREAM(out, gr, C);
        return loss;
    }
    /* one-hot: the target's term is folded into the vector loops, not read back from gr */
    const T gt = g * wt;
    if (out) { /* the exps (the tail's put after the others) scaled as they are streamed out */
        LOSSK_CAT(lossk_store_tail, SFX)(gr + cf, tail, C - cf);
        LOSSK_CAT(lossk_stream_scaled, SFX)(out, gr, C, a, t, gt);
        return loss;
    }
    for (int64_t c = 0; c < cf; c += LANES)
#pragma omp simd
        for (int l = 0; l < LANES; l++)
            gr[c + l] = a * gr[c + l] - (c + l == t ? gt : 0);
#pragma omp simd /* else GCC unrolls it into branches first */
    for (int l = 0; l < LANES; l++)
        tail[l] = a * tail[l] - (cf + l == t ? gt : 0);
    LOSSK_CAT(lossk_store_tail, SFX)(gr + cf, tail, C - cf);
    return loss;
}

/* RB rows of at most nv * LANES classes (nv = 1..NV) with one-hot
 * targets and no label smoothing, each row nv chunks of LANES, the last one padded (with -inf for
 * the max, then with the max for the exp, as in ce_row): ce_row's arithmetic in ce_row's order
 * (after a whole last chunk ce_row adds an empty padded one, whose zeros change nothing), so that
 * a row gives the same bits by either path, with the rows' chains of dependent steps (max, exp, sum, log) side by side,
 * since a lone short row is all latency. t[r] is the class index of row r. */
#define RB 4 /* rows side by side (the unroll pragmas below say it again) */
/* chunks per row, at most: 8 in float32, 4 in float64 (beyond them ce_row is as fast) */
#define NV (32 / (int)sizeof(T))
LOSSK_INLINE void FN(ce_rows_short)(const FN(ce_ctx) *k, const int nv, int64_t C, const T *restrict x,
                                    const int64_t *restrict t, const T *restrict g, T *restrict gr,
                                    double *restrict loss)
{
    const int64_t last = (nv - 1) * LANES, last_len = C - last; /* the last chunk: 1..LANES values */
    T v[RB][NV * LANES], u[RB][LANES], m[RB], z[RB], log_z[RB];
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) {
        const T *xr = x + r * C;
        T *vl = v[r] + last;
        if (nv == 1) { /* the padded chunk alone, no fold: a fold costs short rows time */
            LOSSK_CAT(lossk_load_tail, SFX)(u[r], xr, C, -INFINITY);
        } else {
            for (int l = 0; l < LANES; l++)
                u[r][l] = -INFINITY;
            for (int q = 0; q < nv - 1; q++)
#pragma omp simd
                for (int l = 0; l < LANES; l++)
                    u[r][l] = xr[q * LANES + l] > u[r][l] ? xr[q * LANES + l] : u[r][l];
            LOSSK_CAT(lossk_load_tail, SFX)(vl, xr + last, last_len, -INFINITY);
#pragma omp simd
            for (int l = 0; l < LANES; l++)
                u[r][l] = vl[l] > u[r][l] ? vl[l] : u[r][l];
        }
        m[r] = FN(lanes_max)(u[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) {
        const T *xr = x + r * C;
        T *vl = v[r] + last;
        for (int l = 0; l < LANES; l++)
            u[r][l] = 0;
        for (int q = 0; q < nv - 1; q++)
            for (int l = 0; l < LANES; l++) {
                v[r][q * LANES + l] = EXP(xr[q * LANES + l] - m[r]);
                u[r][l] += v[r][q * LANES + l];
            }
        LOSSK_CAT(lossk_load_tail, SFX)(vl, xr + last, last_len, m[r]);
        for (int l = 0; l < LANES; l++) {
            vl[l] = l < last_len ? EXP(vl[l] - m[r]) : 0;
            u[r][l] = nv == 1 ? vl[l] : u[r][l] + vl[l]; /* 0 + e is e: the same sum */
        }
        z[r] = FN(lanes_sum)(u[r]);
    }
#pragma omp simd /* one vector log, not RB scalar ones */
    for (int r = 0; r < RB; r++)
        log_z[r] = LOG(z[r]);
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) {
        const int64_t tr = t[r]; /* < C */
        const T wt = FN(wc)(k, tr);
        loss[r] = (double)(wt * (log_z[r] - (x[r * C + tr] - m[r])));
        if (!gr)
            continue;
        const T a = g[r] * wt / z[r], gt = g[r] * wt;
        for (int q = 0; q < nv; q++) {
#pragma omp simd /* else GCC unrolls it into branches first */
            for (int l = 0; l < LANES; l++)
                v[r][q * LANES + l] = a * v[r][q * LANES + l] - (q * LANES + l == tr ? gt : 0);
            LOSSK_CAT(lossk_store_tail, SFX)(gr + r * C + q * LANES, v[r] + q * LANES, q < nv - 1 ? LANES : last_len);
        }
    }
}

/* A tile of L <= TS positions s0..s0+L of one sample of an (N, C, S) input; x and tp point at
 * (n, 0, s0), element (c, j) at [c * S + j]; gr at [c * GS + j]. Vectorised across positions.
 * The L values of each class at pf (same strides) are fetched into cache meanwhile, spread over
 * the exp loop as in ce_row. */
LOSSK_INLINE void FN(ce_tile)(const FN(ce_ctx) *k, int64_t C, int64_t S, int64_t L,
                              const T *restrict x, const int64_t *restrict t, int64_t ignore,
                              const T *restrict tp, const T *restrict g, T *restrict gr, int64_t GS,
                              double *restrict loss, const T *pf)
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
        for (int64_t j = 0; j < L; j += 64 / (int64_t)sizeof(T))
            __builtin_prefetch(pf + c * S + j);
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
    /* Per position: an ignored position takes class 0 with weight 0 (its g is 0 too) and loss 0;
     * the loops are branch-free, so that they vectorise, but for the gather of the target's logit
     * and the scatter of its term by class index (GCC 12 vectorises no gather of floats by 64-bit
     * indices). With few classes a vector select in each plane does both instead (up to CE_SELECT
     * classes; beyond, the selects cost more than the scalar loops). They compare cls, tc as wide
     * as T (64-bit compares for float32 lanes cost more with AVX2). */
    T a[TS], wt[TS], xt[TS], log_zs[TS], gt[TS];
    int64_t tc[TS];
    const int select = C <= CE_SELECT;
    CLS(T) cls[TS];
    int ignored[TS];
    for (int64_t j = 0; j < L; j++)
        log_zs[j] = LOG(z[j]);
    if (k->soft) {
        for (int64_t j = 0; j < L; j++) {
            loss[j] = (double)(Q[j] * log_zs[j] - lin[j]);
            a[j] = g[j] * Q[j] / z[j];
        }
    } else {
        for (int64_t j = 0; j < L; j++) {
            ignored[j] = t[j] == ignore;
            tc[j] = ignored[j] ? 0 : t[j];
            cls[j] = (CLS(T))tc[j];
        }
        if (k->w) /* apart, so that the loop above vectorises */
            for (int64_t j = 0; j < L; j++)
                wt[j] = ignored[j] ? 0 : (1 - k->eps) * k->w[tc[j]];
        else
            for (int64_t j = 0; j < L; j++)
                wt[j] = ignored[j] ? 0 : 1 - k->eps;
        if (select)
            for (int64_t c = 0; c < C; c++)
                for (int64_t j = 0; j < L; j++)
                    xt[j] = c == 0 || cls[j] == (CLS(T))c ? x[c * S + j] : xt[j];
        else
            for (int64_t j = 0; j < L; j++)
                xt[j] = x[tc[j] * S + j];
        const T spread = k->eps_c * k->wsum;
        for (int64_t j = 0; j < L; j++) {
            double lj = (double)(wt[j] * (log_zs[j] - (xt[j] - m[j])));
            if (need_lin)
                lj += (double)(spread * log_zs[j] - lin[j]);
            loss[j] = ignored[j] ? 0 : lj;
            a[j] = g[j] * (ignored[j] ? 0 : wt[j] + spread) / z[j];
            gt[j] = g[j] * wt[j];
        }
    }
    if (!gr)
        return;
    for (int64_t c = 0; c < C; c++) {
        if (k->soft) {
            for (int64_t j = 0; j < L; j++)
                gr[c * GS + j] = a[j] * gr[c * GS + j] - g[j] * FN(q_spread)(k, c, tp[c * S + j]);
        } else if (select && need_lin) { /* the target's term in the same step, as rows do */
            for (int64_t j = 0; j < L; j++)
                gr[c * GS + j] = a[j] * gr[c * GS + j] - g[j] * FN(q_spread)(k, c, 0)
                                 - (cls[j] == (CLS(T))c ? gt[j] : 0);
        } else if (select) {
            for (int64_t j = 0; j < L; j++)
                gr[c * GS + j] = a[j] * gr[c * GS + j] - (cls[j] == (CLS(T))c ? gt[j] : 0);
        } else if (need_lin) {
            for (int64_t j = 0; j < L; j++)
                gr[c * GS + j] = a[j] * gr[c * GS + j] - g[j] * FN(q_spread)(k, c, 0);
        } else {
            for (int64_t j = 0; j < L; j++)
                gr[c * GS + j] *= a[j];
        }
    }
    if (!k->soft && !select)
        for (int64_t j = 0; j < L; j++)
            gr[tc[j] * GS + j] -= gt[j];
}

/* Rows of few classes as spatial tiles: rt rows of an (N, C) input gathered into the planes of a
 * tile (class c of row j at [c * rt + j]), ce_tile across the rows, the gradient gathered back. A
 * row of few classes fills a fraction of a vector and pays a max, a sum and a log across lanes of
 * its own; in a tile those are plain vector steps over 16 rows at once. Every row of C classes
 * goes this way, whatever N, so that a row gets the same bits in any call.
 * ROWS_TILED(soft), the classes at most, is where tiles stop beating the rows' own paths
 * (ce_rows_short for one-hot rows, ce_row for the others), per variant, as measured in A/B pairs
 * (docs/performance.md). */
#if defined(__AVX512F__)
#define ROWS_TILED(soft) (sizeof(T) == 4 ? 14 : 10)
#elif defined(__AVX2__)
#define ROWS_TILED(soft) ((sizeof(T) == 4 ? 128 : 64) >> (soft))
#else
#define ROWS_TILED(soft) ((sizeof(T) == 4 ? 64 : 32) >> (soft))
#endif
#define RT_VALUES 4096 /* values per tile, at most: rt rows of C classes */
LOSSK_INLINE int64_t FN(rows_per_tile)(int64_t C, int64_t N) /* N rows in all: no more than that */
{
    const int64_t r = lossk_min64(TS, RT_VALUES / C), n = N + LANES - 1 - (N + LANES - 1) % LANES;
    return lossk_min64(r - r % LANES, n);
}

/* Whether a tile's moves between rows of C classes and class planes are transposes (lossk_transpose,
 * where the variant has them and C fills a block), rather than gathers. */
LOSSK_INLINE int FN(tile_transposed)(int64_t C)
{
    const int64_t block = sizeof(T) == 4 ? LOSSK_TRANSPOSE_F32 : LOSSK_TRANSPOSE_F64;
    return block > 0 && C >= block;
}

/* The gathers' indices for tiles of rt rows: rows[j] = j C, where row j starts; tile[j C + c] =
 * c rt + j, where the tile holds row j's class c. */
static void FN(tile_index)(int64_t C, int64_t rt, int32_t *rows, int32_t *tile)
{
    for (int64_t j = 0; j < rt; j++) {
        rows[j] = (int32_t)(j * C);
        for (int64_t c = 0; c < C; c++)
            tile[j * C + c] = (int32_t)(c * rt + j);
    }
}

/* The reduced loss: the block sums added in order, over divisor. A weighted mean whose total weight
 * is 0 is nan even when label smoothing makes the sum nonzero: PyTorch's NLL term is then 0/0. */
static T FN(reduced_loss)(lossk_class_args *a, const double *partial, int nb, double divisor)
{
    double total = 0;
    for (int b = 0; b < nb; b++)
        total += partial[b];
    a->sum = total;
    return a->mean_by_weight && divisor == 0 ? (T)NAN : (T)(total / divisor);
}

/* The gradient factor of position i: grad_output (or grad_scale), divided by the total weight
 * for a weighted mean; 0 at ignored positions. */
LOSSK_INLINE T FN(gfactor)(const lossk_class_args *a, int64_t i, int ignored, T scale)
{
    if (ignored)
        return 0;
    return (a->grad_output ? ((const T *)a->grad_output)[i] : (T)a->grad_scale) * scale;
}

/* gfactor of positions i..i+L at once (t NULL: none ignored), with the tests out of the loop */
LOSSK_INLINE void FN(gfactors)(const lossk_class_args *a, int64_t i, int64_t L, const int64_t *t, T scale,
                               T *restrict g)
{
    const T *go = a->grad_output;
    const T gs = (T)a->grad_scale * scale;
    const int64_t ignore = a->ignore_index;
    if (go)
        for (int64_t j = 0; j < L; j++)
            g[j] = t && t[i + j] == ignore ? 0 : go[i + j] * scale;
    else
        for (int64_t j = 0; j < L; j++)
            g[j] = t && t[i + j] == ignore ? 0 : gs;
}

/* What a block of cross-entropy positions needs besides the kernel arguments. */
typedef struct {
    const lossk_class_args *a;
    const FN(ce_ctx) *k;
    T scale;         /* gradient factor: 1 / total weight for a weighted mean, else 1 */
    int reduce;      /* sum the loss into partial[] rather than store it per position */
    int stream;      /* build the gradient in scratch tiles and stream them out */
    int nb;          /* blocks */
    double *partial; /* per-block loss sums */
    int tiled;       /* rows as tiles */
    const int32_t *tile_rows, *tile_idx; /* tile_index's, where the tiles' moves are gathers */
} FN(ce_job);

/* Rows i..i+L as a tile, moved by transposes or by gathers. stage: NULL, or scratch to stream the
 * gradient from. */
LOSSK_INLINE void FN(ce_rows_tile)(const FN(ce_job) *job, int64_t i, int64_t L, T *stage, double *loss,
                                   const int transpose)
{
    const lossk_class_args *a = job->a;
    const int64_t C = a->c, rt = FN(rows_per_tile)(C, a->n);
    const int soft = job->k->soft;
    const T *x = a->input, *tp = a->target_prob;
    T *grad = a->grad;
    _Alignas(64) T xs[RT_VALUES], gs[RT_VALUES], tps[soft ? RT_VALUES : 1];
    if (transpose) {
        LOSSK_CAT(lossk_transpose, SFX)(xs, rt, x + i * C, C, L, C);
        if (soft)
            LOSSK_CAT(lossk_transpose, SFX)(tps, rt, tp + i * C, C, L, C);
    } else
        for (int64_t c = 0; c < C; c++) {
            LOSSK_CAT(lossk_gather, SFX)(xs + c * rt, x + i * C + c, job->tile_rows, L);
            if (soft)
                LOSSK_CAT(lossk_gather, SFX)(tps + c * rt, tp + i * C + c, job->tile_rows, L);
        }
    T g[TS];
    FN(gfactors)(a, i, L, soft ? NULL : a->target, job->scale, g);
    const T *pf = x + (i + 2 * L <= a->n ? i + L : i) * C;
    FN(ce_tile)(job->k, C, rt, L, xs, soft ? NULL : a->target + i, a->ignore_index, soft ? tps : NULL, g,
                grad ? gs : NULL, rt, loss, pf);
    if (grad) {
        if (transpose)
            LOSSK_CAT(lossk_transpose, SFX)(stage ? stage : grad + i * C, C, gs, rt, C, L);
        else
            LOSSK_CAT(lossk_gather, SFX)(stage ? stage : grad + i * C, gs, job->tile_idx, L * C);
        if (stage)
            STREAM(grad + i * C, stage, L * C);
    }
}

/* Each a function of its own: inlined into ce_block, or side by side, each made the other's rows
 * slower. */
__attribute__((noinline)) static void FN(ce_rows_transposed)(const FN(ce_job) *job, int64_t i, int64_t L, T *stage,
                                                              double *loss)
{
    FN(ce_rows_tile)(job, i, L, stage, loss, 1);
}
__attribute__((noinline)) static void FN(ce_rows_gathered)(const FN(ce_job) *job, int64_t i, int64_t L, T *stage,
                                                            double *loss)
{
    FN(ce_rows_tile)(job, i, L, stage, loss, 0);
}

LOSSK_BLOCK_FN void FN(ce_block)(const FN(ce_job) *job, int b)
{
    const lossk_class_args *a = job->a;
    const FN(ce_ctx) *k = job->k;
    const int64_t C = a->c, S = a->s, np = a->n * S;
    const int soft = k->soft, reduce = job->reduce, stream = job->stream;
    const T *x = a->input, *tp = a->target_prob;
    const int64_t *t = a->target;
    T *loss = a->loss, *grad = a->grad;
    double acc = 0;
    _Alignas(64) T scratch[stream ? LOSSK_SCRATCH : 1];
    const int64_t start = lossk_block_start(np, job->nb, b), end = lossk_block_start(np, job->nb, b + 1);
    /* a spatial tile staged for streaming: C rows of up to `tile` positions, each after a line for
     * the values held back (below) */
    const int64_t line = 64 / (int64_t)sizeof(T), tile = lossk_min64(TS, FN(stage_positions)(C, S, LANES));
    const int by_rows = S == 1 && !a->spatial;
    const int short_rows = by_rows && !soft && k->eps == 0 && C <= NV * LANES;
    const int nv = (int)((C + LANES - 1) / LANES);
    /* Groups of short rows are staged together, about 4 KiB of them, and streamed out by the batch:
     * a group's RB * C values seldom end on a cache line, and streaming each group by itself left
     * two split lines per group; larger batches leave L1. */
    const int64_t batch = RB * lossk_min64(lossk_max64(4096 / (int64_t)sizeof(T) / (RB * C), 1), LOSSK_SCRATCH / (RB * C));
    int64_t staged = 0; /* rows in scratch, waiting to be streamed out */
    for (int64_t i = start; i < end;) {
        double l[TS]; /* the losses of positions i, i + 1, ... i + count - 1 */
        int64_t count;
        if (job->tiled) {
            count = lossk_min64(FN(rows_per_tile)(C, np), end - i);
            if (job->tile_idx)
                FN(ce_rows_gathered)(job, i, count, stream ? scratch : NULL, l);
            else
                FN(ce_rows_transposed)(job, i, count, stream ? scratch : NULL, l);
        } else if (short_rows && end - i >= RB) {
            int64_t tr[RB];
            T g[RB];
            for (int r = 0; r < RB; r++) {
                const int ignored = t[i + r] == a->ignore_index;
                tr[r] = ignored ? 0 : t[i + r];
                g[r] = FN(gfactor)(a, i + r, ignored, job->scale);
            }
            T *gr = stream ? scratch + staged * C : grad ? grad + i * C : NULL;
            /* one and two chunks as constants, for the unrolled loops: the shorter the row, the
             * more of its time they save, and each constant is another copy for the compiler to
             * build */
            if (nv == 1)
                FN(ce_rows_short)(k, 1, C, x + i * C, tr, g, gr, l);
            else if (nv == 2)
                FN(ce_rows_short)(k, 2, C, x + i * C, tr, g, gr, l);
            else
                FN(ce_rows_short)(k, nv, C, x + i * C, tr, g, gr, l);
            if (stream) {
                staged += RB;
                if (staged == batch || end - (i + RB) < RB) { /* full, or the block's last group */
                    STREAM(grad + (i + RB - staged) * C, scratch, staged * C);
                    staged = 0;
                }
            }
            for (int r = 0; r < RB; r++)
                l[r] = t[i + r] == a->ignore_index ? 0 : l[r];
            count = RB;
        } else if (by_rows) {
            const int ignored = !soft && t[i] == a->ignore_index;
            const T g = FN(gfactor)(a, i, ignored, job->scale);
            /* the row after next into cache: the hardware prefetcher stops at 4 KiB page
             * boundaries, which long rows cross all the time */
            const T *pf = x + (i + 2 < end ? i + 2 : i) * C;
            l[0] = FN(ce_row)(k, C, x + i * C, soft || ignored ? 0 : t[i], soft ? tp + i * C : NULL, g,
                              stream ? scratch : grad ? grad + i * C : NULL, stream ? grad + i * C : NULL, pf);
            l[0] = ignored ? 0 : l[0];
            count = 1;
        } else {
            const int64_t n = i / S, s = i - n * S;
            /* long tiles: each becomes C runs of L streamed values, whose partial first and last
             * cache lines cost as much as a whole one */
            const int64_t L = lossk_min64(lossk_min64(stream ? tile : TS, S - s), end - i);
            const int64_t base = n * C * S + s;
            /* the next tile of this sample into cache: C interleaved streams are more than the
             * hardware prefetcher follows */
            const T *pf = x + base + (s + 2 * L <= S ? L : 0);
            T g[TS];
            FN(gfactors)(a, i, L, soft ? NULL : t, job->scale, g);
            FN(ce_tile)(k, C, S, L, x + base, soft ? NULL : t + i, a->ignore_index, soft ? tp + base : NULL, g,
                        stream ? scratch + line : grad ? grad + base : NULL, stream ? tile + line : S, l, pf);
            /* A plane's values past its last cache-line boundary are held back in front of its row
             * and go out with the next tile's, so that no line is written in two parts (each a
             * plain store that first reads the line): where S is not a multiple of the line, that
             * would be two lines per plane per tile. */
            const int first = s == 0 || i == start, last = s + L == S || i + L == end;
            for (int64_t c = 0; stream && c < C; c++) {
                T *dst = grad + base + c * S, *row = scratch + c * (tile + line) + line;
                const int64_t held = first ? 0 : FN(past_line)(dst), keep = last ? 0 : FN(past_line)(dst + L);
                STREAM(dst - held, row - held, held + L - keep);
                for (int64_t q = 0; q < keep; q++)
                    row[q - keep] = row[L - keep + q];
            }
            count = L;
        }
        if (reduce)
            acc += lossk_sum_f64(l, count);
        else if (loss)
            for (int64_t j = 0; j < count; j++)
                loss[i + j] = (T)l[j];
        i += count;
    }
    job->partial[b] = acc;
    if (stream)
        lossk_stream_fence();
}

static int FN(cross_entropy_any)(lossk_class_args *a, int soft)
{
    const int64_t N = a->n, C = a->c, S = a->s, np = N * S;
    const int reduce = a->reduction == LOSSK_REDUCTION_SUM;
    if (N < 0 || C <= 0 || S < 0 || (np > 0 && !a->input) || (!a->loss && !a->grad)
        || (soft ? !a->target_prob : !a->target) || a->label_smoothing < 0 || a->label_smoothing > 1
        || (a->reduction != LOSSK_REDUCTION_NONE && !reduce))
        return LOSSK_ERR_ARGUMENT;
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
        if (a->mean_by_weight == 1)
            divisor = total_weight;
    }

    double partial[LOSSK_BLOCKS];
    /* A large gradient is built in a scratch tile (a row, or C rows of a spatial tile) and streamed out. */
    const int by_rows = S == 1 && !a->spatial;
    const int stream = a->grad && np * C * (int64_t)sizeof(T) >= LOSSK_STREAM_BYTES
        && C * (by_rows ? 1 : 2 * LANES) <= LOSSK_SCRATCH;
    /* rows of few classes as tiles */
    const int tiled = by_rows && C <= ROWS_TILED(soft), gathered = tiled && !FN(tile_transposed)(C);
    int32_t tile_rows[gathered ? TS : 1], tile_idx[gathered ? RT_VALUES : 1];
    if (gathered)
        FN(tile_index)(C, FN(rows_per_tile)(C, np), tile_rows, tile_idx);
    /* spatial blocks of at least a vector of positions: a block of one position walks its C classes
     * one strided element at a time (a (1, V, rows) chunk of linear_cross_entropy has few) */
    const int64_t min_block = by_rows ? 1 : LANES;
    const FN(ce_job) job = {a, &k, a->mean_by_weight ? (T)(1.0 / divisor) : (T)1, reduce, stream,
                            lossk_blocks((np + min_block - 1) / min_block, np * C * 2), partial, tiled, gathered ? tile_rows : NULL,
                            gathered ? tile_idx : NULL};
    LOSSK_FOR_BLOCKS(lossk_threads_for(np * C * 2), job.nb, FN(ce_block), &job);
    if (reduce && a->loss)
        *(T *)a->loss = FN(reduced_loss)(a, partial, job.nb, divisor);
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

#include "nll_impl.h"

#undef FN
#undef EXP
#undef LOG
#undef STREAM
#undef LANES
#undef TS
#undef ROWS_TILED
#undef RT_VALUES
#undef CLS
#undef CE_SELECT
#undef RB
#undef NV
#undef STAGE_BYTES
