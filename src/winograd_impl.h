/* Template part of layers_impl.h: Winograd convolutions, forward and backward. The 1-D
 * transforms of the three tilings (generated from the interpolation points, not tabulated), the
 * tile grid and its scratch, and the passes that move images and gradients into and out of the
 * frequency domain. The products between those passes are gemm_impl.h's; choosing Winograd over
 * a direct sum is conv_impl.h's. */

/* ---- Winograd F(4x4, 5x5), F(6x6, 3x3) and F(4x4, 3x3) --------------------------------------
 * Y = AT [(G g GT) . (BT d B)] A on wt x wt input tiles with stride WO = wt + 1 - r: 8x8 tiles with
 * points 0, +-1, +-2, +-1/2, inf for F(4x4, 5x5) and F(6x6, 3x3), so the two share BT; 6x6 tiles
 * with points 0, +-1, +-2, inf for F(4x4, 3x3). With s_t the scale BT's inverse gives point p_t,
 * AT[i][t] = p_t^i and G[t][j] = s_t p_t^j (the inf point: AT[WO - 1][wt - 1] = G[wt - 1][r - 1] =
 * 1), so transforms of one tile size differ only in how many rows of AT and columns of G they
 * take. Float32 results stay within a few 1e-6 of the largest output, like a direct sum's. Each of
 * the wt^2 frequencies is one GEMM over channels: 25 / 4 = 6.25 (5x5), 9 x 36 / 64 = 5.06 or
 * 9 x 16 / 36 = 4 (3x3) times fewer multiplies than direct, less the tiles' part past the output.
 * Backward is the same computation transposed (dU = sum dM VT, dM = A dY AT, dg = GT dU G): exact
 * gradients of the forward, with the input transform shared; the input gradient is a forward
 * convolution of grad_output with the flipped, transposed kernel.
 * Inside, channels go last and are padded to whole vectors, so every transform works on vectors
 * of channels. Each 1-D transform reads its values at stride `is` and writes at stride `os`. */
#define WT 8  /* the largest input tile */
#define WF 64 /* its frequencies: WT * WT */

LOSSK_INLINE void FN(wt_bt)(const int wt, const int n, const VEC *d, int64_t is, VEC *o, int64_t os) /* BT */
{
    (void)n;
    if (wt == 6) {
        const VEC d0 = d[0], d1 = d[is], d2 = d[2 * is], d3 = d[3 * is], d4 = d[4 * is], d5 = d[5 * is];
        o[0] = 4 * d0 - 5 * d2 + d4;
        o[5 * os] = 4 * d1 - 5 * d3 + d5;
        VEC a = d4 - 4 * d2, b = d3 - 4 * d1;
        o[os] = a + b;
        o[2 * os] = a - b;
        a = d4 - d2;
        b = 2 * (d3 - d1);
        o[3 * os] = a + b;
        o[4 * os] = a - b;
        return;
    }
    const VEC d0 = d[0], d1 = d[is], d2 = d[2 * is], d3 = d[3 * is];
    const VEC d4 = d[4 * is], d5 = d[5 * is], d6 = d[6 * is], d7 = d[7 * is];
    o[0] = (d6 - d0) + (T)5.25 * (d2 - d4);
    o[7 * os] = (d7 - d1) + (T)5.25 * (d3 - d5);
    VEC a = d2 + d6 - (T)4.25 * d4, b = d1 + d5 - (T)4.25 * d3;
    o[os] = a + b;
    o[2 * os] = a - b;
    a = d6 + (T)0.25 * d2 - (T)1.25 * d4;
    b = (T)0.5 * d1 - (T)2.5 * d3 + 2 * d5;
    o[3 * os] = a + b;
    o[4 * os] = a - b;
    a = d6 + 4 * d2 - 5 * d4;
    b = 2 * d1 - (T)2.5 * d3 + (T)0.5 * d5;
    o[5 * os] = a + b;
    o[6 * os] = a - b;
}

/* The other transforms for tile wt and n = WO (AT, A) or n = r (G, GT), constants at every call.
 * With c_t = 1, 2, 1/2 for the pairs of points +-c_t (t = 1, 2, and 3 with 8x8 tiles): AT's row i
 * takes the pair's sum (i even) or difference (i odd) times c_t^i. G's scales s_t are folded, for
 * 8x8 tiles as -1 (point 0), -2/9, 1/90 = (1/2) / 45 and 32 / 45; for 6x6 as 1/4, -1/6, 1/24. */
#define WT_POW(t, i) ((t) == 1 ? (T)1 : (t) == 2 ? (T)(1 << (i)) : (T)1 / (T)(1 << (i))) /* c_t^i */

LOSSK_INLINE void FN(wt_at)(const int wt, const int n, const VEC *m, int64_t is, VEC *o, int64_t os) /* AT */
{
    const VEC m1 = m[is], m2 = m[2 * is], m3 = m[3 * is], m4 = m[4 * is];
    const VEC m5 = wt == 8 ? m[5 * is] : (VEC){0}, m6 = wt == 8 ? m[6 * is] : (VEC){0};
    const VEC s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4, s56 = m5 + m6, d56 = m5 - m6;
    o[0] = m[0] + s12 + s34;
    if (wt == 8)
        o[0] += s56;
#pragma GCC unroll 8
    for (int i = 1; i < n; i++) {
        o[i * os] = (i % 2 ? d12 : s12) + WT_POW(2, i) * (i % 2 ? d34 : s34);
        if (wt == 8)
            o[i * os] += WT_POW(3, i) * (i % 2 ? d56 : s56);
        if (i == n - 1)
            o[i * os] += m[(wt - 1) * is];
    }
}

LOSSK_INLINE void FN(wt_a)(const int wt, const int n, const VEC *y, int64_t is, VEC *o, int64_t os) /* A */
{
    o[0] = y[0];
#pragma GCC unroll 4
    for (int t = 1; t < wt / 2; t++) {
        VEC e = y[0], od = WT_POW(t, 1) * y[is];
#pragma GCC unroll 8
        for (int i = 2; i < n; i++) {
            if (i % 2)
                od += WT_POW(t, i) * y[i * is];
            else
                e += WT_POW(t, i) * y[i * is];
        }
        o[(2 * t - 1) * os] = e + od;
        o[2 * t * os] = e - od;
    }
    o[(wt - 1) * os] = y[(n - 1) * is];
}

LOSSK_INLINE void FN(wt_g)(const int wt, const int n, const VEC *g, int64_t is, VEC *o, int64_t os) /* G */
{
    if (wt == 8)
        o[0] = -g[0];
    else
        o[0] = (T)0.25 * g[0];
#pragma GCC unroll 4
    for (int t = 1; t < wt / 2; t++) {
        /* the pair's c_t^j, times 1/2 (t = 2) or 32 (t = 3) with 8x8 tiles */
        const T scale[4] = {0, 1, wt == 8 ? (T)0.5 : 1, 32};
        VEC e = scale[t] * g[0], od = scale[t] * WT_POW(t, 1) * g[is];
#pragma GCC unroll 8
        for (int j = 2; j < n; j++) {
            if (j % 2)
                od += scale[t] * WT_POW(t, j) * g[j * is];
            else
                e += scale[t] * WT_POW(t, j) * g[j * is];
        }
        const T c1 = wt == 8 ? (T)(-2.0 / 9) : (T)(-1.0 / 6), div = wt == 8 ? 45 : 24;
        o[(2 * t - 1) * os] = t == 1 ? c1 * (e + od) : (e + od) / div;
        o[2 * t * os] = t == 1 ? c1 * (e - od) : (e - od) / div;
    }
    o[(wt - 1) * os] = g[(n - 1) * is];
}

LOSSK_INLINE void FN(wt_gt)(const int wt, const int n, const VEC *u, int64_t is, VEC *o, int64_t os) /* GT */
{
    const VEC u0 = u[0], ulast = u[(wt - 1) * is];
    const VEC u5 = wt == 8 ? u[5 * is] : (VEC){0}, u6 = wt == 8 ? u[6 * is] : (VEC){0};
    const VEC s12 = u[is] + u[2 * is], d12 = u[is] - u[2 * is], s34 = u[3 * is] + u[4 * is];
    const VEC d34 = u[3 * is] - u[4 * is], s56 = u5 + u6, d56 = u5 - u6;
    const T c = wt == 8 ? (T)(-2.0 / 9) : (T)(-1.0 / 6), div = wt == 8 ? 45 : 24;
#pragma GCC unroll 8
    for (int j = 0; j < n; j++) {
        VEC v = c * (j % 2 ? d12 : s12);
        if (j == 0)
            v = wt == 8 ? v - u0 : v + (T)0.25 * u0;
        VEC pairs = (wt == 8 ? (T)0.5 : 1) * WT_POW(2, j) * (j % 2 ? d34 : s34);
        if (wt == 8)
            pairs += 32 * WT_POW(3, j) * (j % 2 ? d56 : s56);
        v += pairs / div;
        if (j == n - 1)
            v += ulast;
        o[j * os] = v;
    }
}
#undef WT_POW

/* out (nout x nout) = F in (nin x nin) FT for the 1-D transform F (of size n, see wt_at): columns,
 * then rows. in is read at row stride `irs` and column stride `ics` (vectors). */
#define SEPARABLE(f, wt, n, nin, nout, in, irs, ics, out) do { \
        VEC tmp_[WT * WT]; \
        for (int j_ = 0; j_ < (nin); j_++) f((wt), (n), (in) + j_ * (ics), (irs), tmp_ + j_, (nin)); \
        for (int i_ = 0; i_ < (nout); i_++) f((wt), (n), tmp_ + i_ * (nin), 1, (out) + i_ * (nout), 1); \
    } while (0)

static inline int64_t FN(round_vl)(int64_t n) { return (n + VL - 1) / VL * VL; }

/* Tile grid of a P x Q output with an r x r kernel: input tiles wt x wt (wf frequencies), ty x tx
 * output tiles of wo x wo; cp, kp: channel counts padded to vectors; images go through the GEMMs
 * `group` at a time, so that each has enough rows of tiles. */
typedef struct { int64_t cin, h, w, kout, p, q, ph, pw, r, wt, wf, wo, ty, tx, nt, cp, kp, group; } FN(wgeom);

/* The input tile of an r x r kernel on a P x Q output: 8 for 5x5; for 3x3 the one whose tiles
 * cost fewer multiplies, tiles past the output counted (F(4x4, 3x3) for 8x8, F(6x6, 3x3) for
 * 12x12; a tie, 16x16 say, goes to the larger tile, whose transforms cost less an output). */
static inline int64_t FN(wino_tile)(int64_t r, int64_t p, int64_t q)
{
    if (r != 3)
        return WT;
    const int64_t t6 = ((p + 3) / 4) * ((q + 3) / 4), t8 = ((p + 5) / 6) * ((q + 5) / 6);
    return 36 * t6 < 64 * t8 ? 6 : 8;
}

static FN(wgeom) FN(wino_geom)(int64_t n, int64_t cin, int64_t h, int64_t w, int64_t kout, int64_t p, int64_t q,
                               int64_t ph, int64_t pw, int64_t r, int64_t wt)
{
    /* other kernels than 3x3 and 5x5 use only the group, for conv_scratch */
    const int64_t wo = r == 3 || r == 5 ? wt + 1 - r : 4;
    FN(wgeom) g = {cin, h, w, kout, p, q, ph, pw, r, wt, wt * wt, wo, (p + wo - 1) / wo, (q + wo - 1) / wo, 0,
                   FN(round_vl)(cin), FN(round_vl)(kout), 0};
    g.nt = g.ty * g.tx;
    /* about 8 MR rows of tiles per GEMM, the batch cut into groups of nearly equal size */
    const int64_t want = g.nt > 0 ? (8 * MR + g.nt - 1) / g.nt : 1, groups = (n + want - 1) / want;
    g.group = groups > 0 ? (n + groups - 1) / groups : want;
    return g;
}

/* Per-thread scratch, in elements: padded channels-last input of one image, V (group nt, wf, cp),
 * M (group nt, wf, kp), channels-last output of one image (wo ty, wo tx, kp). */
static int64_t FN(wino_scratch)(const FN(wgeom) *g, int64_t *xp_n, int64_t *v_n, int64_t *m_n)
{
    *xp_n = ALIGN_UP((g->wo * g->ty + g->r - 1) * (g->wo * g->tx + g->r - 1) * g->cp);
    *v_n = ALIGN_UP(g->group * g->nt * g->wf * g->cp);
    *m_n = ALIGN_UP(g->group * g->nt * g->wf * g->kp);
    return *xp_n + *v_n + *m_n + ALIGN_UP(g->wo * g->wo * g->nt * g->kp);
}

/* U (wf, cp, kp) and the padded bias (kp) from weights w (kout, cin, r, r) read through strides;
 * flip turns each kernel by 180 degrees (the backward-input convolution). */
static void FN(wino_weights)(const FN(wgeom) *g, const T *w, int64_t w_kstride, int64_t w_cstride, int flip,
                             const T *bias, T *U, int nt)
{
    const int64_t kv = g->kp / VL;
    T *bp = U + g->wf * g->cp * g->kp;
    for (int64_t k = 0; k < g->kp; k++)
        bp[k] = bias && k < g->kout ? bias[k] : 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t ck = 0; ck < g->cp * kv; ck++) {
        const int64_t c = ck / kv, k0 = ck % kv * VL;
        const int rr = (int)(g->r * g->r);
        VEC in[25], u[WF];
        for (int i = 0; i < rr; i++)
            for (int64_t j = 0; j < VL; j++)
                in[i][j] = c < g->cin && k0 + j < g->kout ? w[(k0 + j) * w_kstride + c * w_cstride + (flip ? rr - 1 - i : i)]
                                                          : 0;
        if (g->r == 5)
            SEPARABLE(FN(wt_g), 8, 5, 5, 8, in, 5, 1, u);
        else if (g->wt == 8)
            SEPARABLE(FN(wt_g), 8, 3, 3, 8, in, 3, 1, u);
        else
            SEPARABLE(FN(wt_g), 6, 3, 3, 6, in, 3, 1, u);
        for (int e = 0; e < g->wf; e++)
            *(VEC *)(U + (e * g->cp + c) * g->kp + k0) = u[e];
    }
}

/* x (cin, h, w), zero-padded by (ph, pw) -> V (nt, wf, cp): each tile's frequencies together, so
 * the transform writes one run and the GEMMs stride over tiles. wt = g->wt, a constant at each
 * call (wino_input). */
LOSSK_INLINE void FN(wino_input_wt)(const int wt, const FN(wgeom) *g, const T *x, T *xp, T *V)
{
    const int wf = wt * wt;
    const int64_t C = g->cp, WO = g->wo, Wp = WO * g->tx + g->r - 1;
    memset(xp, 0, sizeof(T) * (WO * g->ty + g->r - 1) * Wp * C);
    FN(relayout)(0, g->cin, g->h * g->w, (T *)x, g->h * g->w, xp + (g->ph * Wp + g->pw) * C, g->w, Wp * C, C);
    for (int64_t t = 0; t < g->nt; t++) {
        const VEC *d = (const VEC *)(xp + (WO * (t / g->tx) * Wp + WO * (t % g->tx)) * C);
        for (int64_t c = 0; c < C / VL; c++) {
            VEC out[WF];
            SEPARABLE(FN(wt_bt), wt, wt, wt, wt, d + c, Wp * (C / VL), C / VL, out);
            for (int e = 0; e < wf; e++)
                *(VEC *)(V + (t * wf + e) * C + c * VL) = out[e];
        }
    }
}

static void FN(wino_input)(const FN(wgeom) *g, const T *x, T *xp, T *V)
{
    if (g->wt == 8)
        FN(wino_input_wt)(8, g, x, xp, V);
    else
        FN(wino_input_wt)(6, g, x, xp, V);
}

/* M (nt, wf, kp) of one image -> y (kout, p, q) + bias, or with pool the 2x2 max-pooled y
 * (kout, p/2, q/2) and its argmax into `indices` (unless NULL). U holds the padded bias after the weights. wt = g->wt and
 * WO = g->wo, constants at each call (wino_output), so that the tile's index arithmetic folds. */
LOSSK_INLINE void FN(wino_output_wo)(const int wt, const int WO, const FN(wgeom) *g, const T *M, const T *U,
                                     int has_bias, int pool, T *y, int64_t *indices, T *yt)
{
    const int half = WO / 2, wf = wt * wt;
    const int64_t K = g->kp, TX = g->tx, Wy = WO * TX; /* yt: (WO ty, WO tx, kp); pooled: half that */
    const VEC *bias = (const VEC *)(U + wf * g->cp * K);
    TI *pos = (TI *)(yt + WO * WO * g->nt * K / 4);     /* pooled: the argmax's place in its window */
    for (int64_t t = 0; t < g->nt; t++) {
        const int64_t oy = WO * (t / TX), ox = WO * (t % TX);
        for (int64_t k = 0; k < K / VL; k++) {
            const VEC *m = (const VEC *)(M + t * wf * K) + k;
            VEC out[WO * WO];
            SEPARABLE(FN(wt_at), wt, WO, wt, WO, m, wt * (K / VL), K / VL, out);
            const VEC b = has_bias ? bias[k] : (VEC){0};
            for (int e = 0; e < WO * WO; e++)
                out[e] += b;
            if (!pool) {
                for (int e = 0; e < WO * WO; e++)
                    *(VEC *)(yt + ((oy + e / WO) * Wy + ox + e % WO) * K + k * VL) = out[e];
                continue;
            }
            for (int cell = 0; cell < half * half; cell++) {
                /* PyTorch's rule: the first maximum in row-major order, and nan beats everything */
                const int r0 = 2 * (cell / half), c0 = 2 * (cell % half);
                VEC best = out[r0 * WO + c0];
                FN(ivec) arg = (FN(ivec)){0};
                for (int e = 1; e < 4; e++) {
                    const VEC v = out[(r0 + e / 2) * WO + c0 + e % 2];
                    const FN(ivec) take = (v > best) | (v != v);
                    best = (VEC)(((FN(ivec))v & take) | ((FN(ivec))best & ~take));
                    arg = (arg & ~take) | (take & e);
                }
                const int64_t at = ((oy / 2 + cell / half) * (Wy / 2) + ox / 2 + cell % half) * K + k * VL;
                *(VEC *)(yt + at) = best;
                if (indices)
                    *(FN(ivec) *)(pos + at) = arg;
            }
        }
    }
    if (!pool) {
        FN(relayout)(1, g->kout, g->p * g->q, y, g->p * g->q, yt, g->q, Wy * K, K);
        return;
    }
    const int64_t pp = g->p / 2, pq = g->q / 2;
    FN(relayout)(1, g->kout, pp * pq, y, pp * pq, yt, pq, Wy / 2 * K, K);
    for (int64_t k = 0; indices && k < g->kout; k++)
        for (int64_t i = 0; i < pp; i++)
            for (int64_t j = 0; j < pq; j++) {
                const TI e = pos[(i * (Wy / 2) + j) * K + k];
                indices[(k * pp + i) * pq + j] = (2 * i + e / 2) * g->q + 2 * j + e % 2;
            }
}

static void FN(wino_output)(const FN(wgeom) *g, const T *M, const T *U, int has_bias, int pool, T *y,
                            int64_t *indices, T *yt)
{
    if (g->wt == 6)
        FN(wino_output_wo)(6, 4, g, M, U, has_bias, pool, y, indices, yt);
    else if (g->wo == 4)
        FN(wino_output_wo)(8, 4, g, M, U, has_bias, pool, y, indices, yt);
    else
        FN(wino_output_wo)(8, 6, g, M, U, has_bias, pool, y, indices, yt);
}

/* y for images [0, nimg) of a group (nimg <= group): x (nimg, cin, h, w) -> y (nimg, ...), pooled
 * (with its argmax into indices, unless NULL) or not. */
static void FN(wino_group)(const FN(wgeom) *g, int64_t nimg, const T *x, const T *U, int has_bias, T *y,
                           int64_t ysize, int pool, int64_t *indices, T *scratch)
{
    int64_t xp_n, v_n, m_n;
    FN(wino_scratch)(g, &xp_n, &v_n, &m_n);
    T *xp = scratch, *V = xp + xp_n, *M = V + v_n, *yt = M + m_n;
    const int64_t C = g->cp, K = g->kp, rows = nimg * g->nt;
    for (int64_t i = 0; i < nimg; i++)
        FN(wino_input)(g, x + i * g->cin * g->h * g->w, xp, V + i * g->nt * g->wf * C);
    for (int64_t e = 0; e < g->wf; e++)
        FN(gemm)(rows, K, C, V + e * C, g->wf * C, 1, U + e * C * K, K, M + e * K, g->wf * K, 0);
    for (int64_t i = 0; i < nimg; i++)
        FN(wino_output)(g, M + i * g->nt * g->wf * K, U, has_bias, pool, y + i * ysize,
                        indices ? indices + i * ysize : NULL, yt);
}

/* dy (kout, p, q) -> dM (nt, wf, kp) = A dy AT per tile, through channels-last dyp (wo ty, wo tx, kp). */
static void FN(wino_grad_output)(const FN(wgeom) *g, const T *dy, T *dyp, T *dM)
{
    const int64_t K = g->kp, TX = g->tx, WO = g->wo, Wy = WO * TX, wf = g->wf;
    memset(dyp, 0, sizeof(T) * WO * WO * g->nt * K);
    FN(relayout)(0, g->kout, g->p * g->q, (T *)dy, g->p * g->q, dyp, g->q, Wy * K, K);
    for (int64_t t = 0; t < g->nt; t++) {
        const VEC *d = (const VEC *)(dyp + (WO * (t / TX) * Wy + WO * (t % TX)) * K);
        for (int64_t k = 0; k < K / VL; k++) {
            VEC out[WF];
            if (g->wt == 6)
                SEPARABLE(FN(wt_a), 6, 4, 4, 6, d + k, Wy * (K / VL), K / VL, out);
            else if (WO == 4)
                SEPARABLE(FN(wt_a), 8, 4, 4, 8, d + k, Wy * (K / VL), K / VL, out);
            else
                SEPARABLE(FN(wt_a), 8, 6, 6, 8, d + k, Wy * (K / VL), K / VL, out);
            for (int64_t e = 0; e < wf; e++)
                *(VEC *)(dM + (t * wf + e) * K + k * VL) = out[e];
        }
    }
}
