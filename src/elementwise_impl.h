/* Template for elementwise.c: T is the element type, SFX its suffix (f32, f64). */
#define FN(name) LOSSK_CAT(name, SFX)
#define EXP LOSSK_CAT(lossk_exp, SFX)
#define LOG LOSSK_CAT(lossk_log, SFX)
#define STREAM LOSSK_CAT(lossk_stream, SFX)

/* One element of each loss, as PyTorch defines it: returns the loss, stores d loss / d input in
 * *d. pw is the positive-class weight (1 where unused), p and p2 the loss's parameters. Loss-only loops
 * inline these and drop the unused derivative. */
typedef T (*FN(point_fn))(T x, T y, T pw, T p, T p2, T *d);
/* A test of one element's input and target, OR-ed over a run: a domain error, or a value that a
 * point function for the common domain cannot take. */
typedef int (*FN(check_fn))(T x, T y);

LOSSK_INLINE T FN(l1_point)(T x, T y, T pw, T p, T p2, T *d)
{
    (void)pw; (void)p; (void)p2;
    T z = x - y;
    *d = z > 0 ? (T)1 : (z < 0 ? (T)-1 : (T)0);
    return z < 0 ? -z : z;
}

LOSSK_INLINE T FN(mse_point)(T x, T y, T pw, T p, T p2, T *d)
{
    (void)pw; (void)p; (void)p2;
    T z = x - y;
    *d = 2 * z;
    return z * z;
}

/* One division, shared by loss and gradient (the divider is what bounds float64): the loss's
 * z^2 / 2 beta as z (z / beta) / 2, within an ulp of PyTorch's z z / beta / 2. The clamps are
 * those of PyTorch's comparisons: z / beta is at least 1 where z > beta and at most 1 where not. */
LOSSK_INLINE T FN(smooth_l1_point)(T x, T y, T pw, T beta, T p2, T *d) /* beta > 0 */
{
    (void)pw; (void)p2;
    T z = x - y;
    T az = z < 0 ? -z : z;
    T q = z / beta;
    *d = q < -1 ? (T)-1 : (q > 1 ? (T)1 : q);
    return az < beta ? (T)0.5 * z * q : az - (T)0.5 * beta;
}

LOSSK_INLINE T FN(huber_point)(T x, T y, T pw, T delta, T p2, T *d)
{
    (void)pw; (void)p2;
    T z = x - y;
    T az = z < 0 ? -z : z;
    *d = z < -delta ? -delta : (z > delta ? delta : z);
    return az < delta ? (T)0.5 * az * az : delta * (az - (T)0.5 * delta);
}

LOSSK_INLINE T FN(binary_cross_entropy_point)(T x, T y, T pw, T p, T p2, T *d) /* x in [0, 1] */
{
    (void)pw; (void)p; (void)p2;
    /* log1p(-x) as log(u) + delta / u: u = 1 - x rounded, delta = (1 - u) - x its rounding error
     * (exact; nonzero only for x < 1/2, where u >= 1/2 and 1/u = 1 + w + w^2.. with w = 1 - u, so
     * 1 + w is close enough for a term of at most 2^-25). log_unit takes x, u in [0, 1] and gives a
     * value below -100 for 0, which the clamps turn into -100. */
    x = x + 0; /* -0 (which passes the domain check) to +0: the bit tricks below need the sign clear */
    T u = 1 - x;
    T w = 1 - u;
    T log_x = LOSSK_CAT(lossk_log_unit, SFX)(x);
    T log_1mx = LOSSK_CAT(lossk_log_unit, SFX)(u) + (w - x) * (1 + w);
    log_x = LOSSK_CAT(lossk_max_nonpos, SFX)(log_x, (T)-100);
    log_1mx = LOSSK_CAT(lossk_max_nonpos, SFX)(log_1mx, (T)-100);
    *d = (x - y) / LOSSK_CAT(lossk_max_nonneg, SFX)(u * x, (T)1e-12f); /* PyTorch's EPSILON is a float, also for double */
    return (y - 1) * log_1mx - y * log_x;
}

/* loss = (1 - y) x - lw log(sigmoid(x)), lw = 1 + (pw - 1) y, with log(sigmoid(x)) =
 * min(x, 0) - log1p(e), e = exp(-|x|) in [0, 1]: exp never overflows, and sigmoid(x) = 1 / (1 + e)
 * for x >= 0, e / (1 + e) below (accurate for very negative x, subnormal e included). */
LOSSK_INLINE T FN(bce_logits_common)(T x, T y, T lw, T *sig)
{
    T e = LOSSK_CAT(lossk_exp_nonpos, SFX)(LOSSK_CAT(lossk_negabs, SFX)(x));
    *sig = LOSSK_CAT(lossk_one_if_nonneg, SFX)(x, e) / (1 + e);
    T log_sig = LOSSK_CAT(lossk_min0, SFX)(x) - LOSSK_CAT(lossk_log1p_unit, SFX)(e);
    return (1 - y) * x - lw * log_sig;
}

LOSSK_INLINE T FN(binary_cross_entropy_with_logits_point)(T x, T y, T pw, T p, T p2, T *d)
{
    (void)pw; (void)p; (void)p2;
    T sig;
    T l = FN(bce_logits_common)(x, y, (T)1, &sig);
    *d = sig - y;
    return l;
}

LOSSK_INLINE T FN(binary_cross_entropy_with_logits_pw_point)(T x, T y, T pw, T p, T p2, T *d)
{
    (void)p; (void)p2;
    T sig;
    T l = FN(bce_logits_common)(x, y, (pw - 1) * y + 1, &sig);
    T t = pw * y;
    *d = (t + 1 - y) * sig - t;
    return l;
}

LOSSK_INLINE T FN(kl_div_point)(T x, T y, T pw, T p, T p2, T *d) /* y: probabilities; 0 log 0 = 0 */
{
    (void)pw; (void)p; (void)p2;
    *d = -y;
    T ly = LOG(y);
    ly = y == 0 ? (T)0 : ly;
    return (y * ly + 0) - y * x; /* the expression of kl_div_nonneg_point, so that both contract alike */
}

/* kl_div_point for the targets of every day, +0 <= y <= 2^100 or 2^969 (a third fewer instructions,
 * as the log needs no selects): 0 times log_nonneg's finite log(0) is the definition's 0 log 0 = 0,
 * and + 0 makes its -0 PyTorch's +0. Runs that hold other targets (kl_div_special) are redone by
 * kl_div_point, which rounds the same in float32; in float64 GCC contracts the general log's
 * products and sums into FMAs a little differently, so there an element's last bit can depend on
 * whether its run held a special target. */
LOSSK_INLINE T FN(kl_div_nonneg_point)(T x, T y, T pw, T p, T p2, T *d)
{
    (void)pw; (void)p; (void)p2;
    *d = -y;
    return (y * LOSSK_CAT(lossk_log_nonneg, SFX)(y) + 0) - y * x;
}

LOSSK_INLINE int FN(kl_div_special)(T x, T y)
{
    (void)x;
    return LOSSK_CAT(lossk_outside_nonneg, SFX)(y);
}

LOSSK_INLINE T FN(kl_div_log_target_point)(T x, T y, T pw, T p, T p2, T *d) /* y: log-probabilities */
{
    (void)pw; (void)p; (void)p2;
    T ey = EXP(y);
    *d = -ey;
    return ey * (y - x);
}

/* kl_div_log_target_point for y <= 0 (log-probabilities), where exp_nonpos gives the general exp's
 * bits; runs with a y > 0 (kl_div_log_target_special) are redone by kl_div_log_target_point. */
LOSSK_INLINE T FN(kl_div_log_target_nonpos_point)(T x, T y, T pw, T p, T p2, T *d)
{
    (void)pw; (void)p; (void)p2;
    T ey = LOSSK_CAT(lossk_exp_nonpos, SFX)(y);
    *d = -ey;
    return ey * (y - x);
}

LOSSK_INLINE int FN(kl_div_log_target_special)(T x, T y) { (void)x; return y > 0; }

/* log(1 + exp(z)), z = -y x, as max(z, 0) + log1p(exp(-|z|)): PyTorch's log1p(exp(z)) overflows to
 * inf (and its gradient to nan) above z = 88 (float32) or 709 (float64), where this is z. */
LOSSK_INLINE T FN(soft_margin_point)(T x, T y, T pw, T p, T p2, T *d)
{
    (void)pw; (void)p; (void)p2;
    T z = -y * x;
    T e = LOSSK_CAT(lossk_exp_nonpos, SFX)(LOSSK_CAT(lossk_negabs, SFX)(z));
    *d = -y * (LOSSK_CAT(lossk_one_if_nonneg, SFX)(z, e) / (1 + e)); /* -y sigmoid(z) */
    /* max(z, 0) as -min(-z, 0), by the bits (a select of z here leaves the float64 fused loop
     * unvectorised); a nan z: e carries it */
    return LOSSK_CAT(lossk_log1p_unit, SFX)(e) - LOSSK_CAT(lossk_min0, SFX)(-z);
}

/* x where y != -1, plus max(margin - x, 0) where y != 1 (PyTorch's two where()s: a target that is
 * neither 1 nor -1 takes both). The clamp passes the gradient where margin - x >= 0, as PyTorch's
 * clamp_min does, and keeps a nan. */
LOSSK_INLINE T FN(hinge_embedding_point)(T x, T y, T pw, T margin, T p2, T *d)
{
    (void)pw; (void)p2;
    T m = margin - x;
    T hinge = m < 0 ? (T)0 : m;
    const int own = y != -1, hinged = y != 1;
    *d = (own ? (T)1 : (T)0) - (hinged && m >= 0 ? (T)1 : (T)0);
    return (own ? x : (T)0) + (hinged ? hinge : (T)0);
}

/* Stirling's log(y!) ~ y log y - y + log(2 pi y) / 2, the term poisson_nll_loss(full=True) adds
 * where y > 1 (a nan y gives nan, as PyTorch's masked_fill(y <= 1, 0)). */
LOSSK_INLINE T FN(stirling)(T y)
{
    T ly = LOG(y);
    return y <= 1 ? (T)0 : y * ly - y + (T)0.5 * ((T)1.8378770664093454836 + ly);
}

LOSSK_INLINE T FN(poisson_nll_log_point)(T x, T y, T pw, T p, T p2, T *d) /* x: log rate */
{
    (void)pw; (void)p; (void)p2;
    T ex = EXP(x);
    *d = ex - y;
    return ex - y * x;
}

LOSSK_INLINE T FN(poisson_nll_point)(T x, T y, T pw, T eps, T p2, T *d) /* x: rate */
{
    (void)pw; (void)p2;
    T xe = x + eps;
    *d = 1 - y / xe;
    return x - y * LOG(xe);
}

LOSSK_INLINE T FN(poisson_nll_log_full_point)(T x, T y, T pw, T p, T p2, T *d)
{
    return FN(poisson_nll_log_point)(x, y, pw, p, p2, d) + FN(stirling)(y);
}

LOSSK_INLINE T FN(poisson_nll_full_point)(T x, T y, T pw, T eps, T p2, T *d)
{
    return FN(poisson_nll_point)(x, y, pw, eps, p2, d) + FN(stirling)(y);
}

/* torchvision's sigmoid_focal_loss: a_t ce (1 - p_t)^gamma, p = sigmoid(x), ce the BCE of logits,
 * p_t = p y + (1 - p)(1 - y), a_t = alpha y + (1 - alpha)(1 - y) (1 for alpha < 0). 1 - p_t is
 * p (1 - y) + (1 - p) y, with 1 - p = sigmoid(-x): no cancellation where p is close to y.
 * d/dx = a_t ((p - y) q^gamma + gamma q^(gamma - 1) ce p (1 - p) (1 - 2y)), q = 1 - p_t. ce is
 * PyTorch's (1 - y) x + max(-x, 0) + log1p(exp(-|x|)) with the first two terms added exactly:
 * (1 - y) x for x >= 0, -y x below (plus x - x, so that x = -inf gives PyTorch's nan).
 * q^gamma is exp(gamma log q), exact powers 0 and 1 of q = 0 included; square: gamma is 2. */
LOSSK_INLINE T FN(sigmoid_focal_common)(T x, T y, T gamma, T alpha, const int square, T *d)
{
    T e = LOSSK_CAT(lossk_exp_nonpos, SFX)(LOSSK_CAT(lossk_negabs, SFX)(x));
    T r = 1 / (1 + e);
    T s = LOSSK_CAT(lossk_one_if_nonneg, SFX)(x, e) * r;   /* sigmoid(x) */
    T sm = LOSSK_CAT(lossk_one_if_nonneg, SFX)(-x, e) * r; /* sigmoid(-x) */
    T ce = (x >= 0 ? (1 - y) * x : (x - x) - y * x) + LOSSK_CAT(lossk_log1p_unit, SFX)(e);
    T q = s * (1 - y) + sm * y;
    T qg, qg1; /* q^gamma, q^(gamma - 1) */
    if (square) {
        qg1 = q;
        qg = q * q;
    } else {
        T lq = LOG(q);
        qg = gamma == 0 ? (T)1 : EXP(gamma * lq);
        qg1 = gamma == 1 ? (T)1 : EXP((gamma - 1) * lq);
    }
    T at = alpha < 0 ? (T)1 : alpha * y + (1 - alpha) * (1 - y);
    /* ce d q^gamma / dx, none for gamma = 0 (where q = 0 or ce = inf too), as PyTorch's pow */
    T dfocus = gamma == 0 ? (T)0 : gamma * qg1 * ce * (s * sm) * (1 - 2 * y);
    *d = at * ((s - y) * qg + dfocus);
    return at * (ce * qg);
}

LOSSK_INLINE T FN(sigmoid_focal_point)(T x, T y, T pw, T gamma, T alpha, T *d)
{
    (void)pw;
    return FN(sigmoid_focal_common)(x, y, gamma, alpha, 0, d);
}

LOSSK_INLINE T FN(sigmoid_focal_square_point)(T x, T y, T pw, T gamma, T alpha, T *d)
{
    (void)pw;
    return FN(sigmoid_focal_common)(x, y, gamma, alpha, 1, d);
}

LOSSK_INLINE int FN(outside_unit)(T x) { return !(x >= 0 && x <= 1); }

LOSSK_INLINE int FN(outside_unit2)(T x, T y) { return FN(outside_unit)(x) | FN(outside_unit)(y); }

/* The first element of [i, end) whose input or target is outside [0, 1], recorded in a. */
static void FN(find_outside)(const T *x, const T *y, int64_t i, int64_t end, int64_t *bad_index, int *bad_target)
{
    for (; i < end; i++)
        if (FN(outside_unit)(x[i]) || FN(outside_unit)(y[i])) {
            *bad_index = i;
            *bad_target = !FN(outside_unit)(x[i]);
            return;
        }
}

/* A run of len elements with contiguous weights. The flags (and f and check) are constants at every
 * call site, so each combination compiles to its own vectorised loop. Returns nonzero if check is
 * given and holds for an element of the run. */
LOSSK_INLINE int FN(run)(FN(point_fn) f, FN(check_fn) check, const int has_pw,
                         const int want_loss, const int want_grad, const int has_w, const int has_go,
                         int64_t len, const T *restrict x, const T *restrict y, const T *restrict w,
                         const T *restrict pw, const T *restrict go, T gs, T p, T p2,
                         T *restrict lv, T *restrict g)
{
    int bad = 0;
#pragma omp simd reduction(| : bad) /* else GCC's cost model leaves some long float64 bodies scalar */
    for (int64_t i = 0; i < len; i++) {
        T d;
        T l = f(x[i], y[i], has_pw ? pw[i] : (T)1, p, p2, &d);
        if (has_w) {
            l *= w[i];
            d *= w[i];
        }
        if (want_loss)
            lv[i] = l;
        if (want_grad)
            g[i] = d * (has_go ? go[i] : gs);
        if (check)
            bad |= check(x[i], y[i]);
    }
    return bad;
}

#define RUN(L, G, W, O) \
    FN(run)(f, check, has_pw, L, G, W, O, len, x, y, w, pw, go, gs, p, p2, lv, g)

LOSSK_INLINE int FN(run_flags)(FN(point_fn) f, FN(check_fn) check, const int has_pw,
                               int want_grad, int want_loss, int has_w, int has_go,
                               int64_t len, const T *x, const T *y, const T *w, const T *pw,
                               const T *go, T gs, T p, T p2, T *lv, T *g)
{
    if (!want_grad)
        return has_w ? RUN(1, 0, 1, 0) : RUN(1, 0, 0, 0);
    if (!want_loss)
        return has_w ? (has_go ? RUN(0, 1, 1, 1) : RUN(0, 1, 1, 0))
                     : (has_go ? RUN(0, 1, 0, 1) : RUN(0, 1, 0, 0));
    return has_w ? (has_go ? RUN(1, 1, 1, 1) : RUN(1, 1, 1, 0))
                 : (has_go ? RUN(1, 1, 0, 1) : RUN(1, 1, 0, 0));
}
#undef RUN

/* The point functions, by kind: a switch, not a function pointer, reaches them from inside the
 * OpenMP region, where a pointer would no longer be a constant that GCC can inline. */
#define EW_KINDS(X) \
    X(L1) X(MSE) X(SMOOTH_L1) X(HUBER) X(BCE) X(BCE_LOGITS) X(BCE_LOGITS_PW) X(KL_DIV) X(KL_DIV_LOG_TARGET) \
    X(SOFT_MARGIN) X(HINGE_EMBEDDING) X(POISSON_NLL_LOG) X(POISSON_NLL_LOG_FULL) X(POISSON_NLL) \
    X(POISSON_NLL_FULL) X(SIGMOID_FOCAL) X(SIGMOID_FOCAL_SQUARE)
#define EW_ENUM(K) FN(K),
enum { EW_KINDS(EW_ENUM) };
#undef EW_ENUM

LOSSK_INLINE int FN(run_any)(int kind, int want_grad, int want_loss, int has_w, int has_go, int64_t len,
                             const T *x, const T *y, const T *w, const T *pw, const T *go, T gs, T p, T p2,
                             T *lv, T *g)
{
#define RUN_FLAGS(point, check, has_pw) \
    FN(run_flags)(point, check, has_pw, want_grad, want_loss, has_w, has_go, len, x, y, w, pw, go, gs, p, p2, lv, g)
#define CASE(K, point, check, has_pw) \
    case K: \
        return RUN_FLAGS(FN(point), check, has_pw);
/* the common domain's point function first, the general one where the run has special values */
#define CASE_SPECIAL(K, common, special, point) \
    case K: \
        if (RUN_FLAGS(FN(common), FN(special), 0)) \
            RUN_FLAGS(FN(point), NULL, 0); \
        return 0;
    switch (kind) {
    CASE(FN(L1), l1_point, NULL, 0)
    CASE(FN(MSE), mse_point, NULL, 0)
    CASE(FN(SMOOTH_L1), smooth_l1_point, NULL, 0)
    CASE(FN(HUBER), huber_point, NULL, 0)
    CASE(FN(BCE), binary_cross_entropy_point, FN(outside_unit2), 0)
    CASE(FN(BCE_LOGITS), binary_cross_entropy_with_logits_point, NULL, 0)
    CASE(FN(BCE_LOGITS_PW), binary_cross_entropy_with_logits_pw_point, NULL, 1)
    CASE_SPECIAL(FN(KL_DIV), kl_div_nonneg_point, kl_div_special, kl_div_point)
    CASE_SPECIAL(FN(KL_DIV_LOG_TARGET), kl_div_log_target_nonpos_point, kl_div_log_target_special,
                 kl_div_log_target_point)
    CASE(FN(SOFT_MARGIN), soft_margin_point, NULL, 0)
    CASE(FN(HINGE_EMBEDDING), hinge_embedding_point, NULL, 0)
    CASE(FN(POISSON_NLL_LOG), poisson_nll_log_point, NULL, 0)
    CASE(FN(POISSON_NLL_LOG_FULL), poisson_nll_log_full_point, NULL, 0)
    CASE(FN(POISSON_NLL), poisson_nll_point, NULL, 0)
    CASE(FN(POISSON_NLL_FULL), poisson_nll_full_point, NULL, 0)
    CASE(FN(SIGMOID_FOCAL), sigmoid_focal_point, NULL, 0)
    CASE(FN(SIGMOID_FOCAL_SQUARE), sigmoid_focal_square_point, NULL, 0)
    }
#undef CASE_SPECIAL
#undef CASE
#undef RUN_FLAGS
    return 0;
}

#define TILE 512

/* A call's shared state. */
typedef struct {
    const lossk_elementwise_args *a;
    int reduce;       /* sum the loss into partial[] rather than store it per element */
    int stream;       /* compute into tiles on the stack and stream them out */
    int nb;           /* blocks */
    double *partial;  /* per-block loss sums */
    int64_t *first_bad; /* per block: where a domain check failed, or -1 */
} FN(ew_job);

/* One block of one kind: every flags combination of its loop. */
LOSSK_INLINE void FN(elementwise_body)(const FN(ew_job) *job, int b, const int kind)
{
    const lossk_elementwise_args *a = job->a;
    const int reduce = job->reduce, stream = job->stream;
    const int has_pw = kind == FN(BCE_LOGITS_PW);
    const int want_loss = a->loss != NULL, want_grad = a->grad != NULL;
    const int has_w = a->weight != NULL, has_go = a->grad_output != NULL;
    const T *x = a->input, *y = a->target, *weight = a->weight, *pos_weight = a->pos_weight;
    const T *grad_output = a->grad_output;
    T *loss = a->loss, *grad = a->grad;
    const T gs = (T)a->grad_scale, p = (T)a->param, p2 = (T)a->param2;
    const int64_t end = lossk_block_start(a->n, job->nb, b + 1);
    double acc[LOSSK_LANES] = {0};
    _Alignas(64) T tmp[TILE];
    _Alignas(64) T tmpg[TILE];
    job->first_bad[b] = -1;
    for (int64_t i = lossk_block_start(a->n, job->nb, b); i < end;) {
        int64_t len = lossk_min64(TILE, end - i);
        const T *w = NULL, *pw = NULL;
        if (has_w) {
            int64_t k = i % a->weight_period;
            w = weight + k;
            len = lossk_min64(len, a->weight_period - k);
        }
        if (has_pw) {
            int64_t k = i % a->pos_weight_period;
            pw = pos_weight + k;
            len = lossk_min64(len, a->pos_weight_period - k);
        }
        T *lv = reduce || stream ? tmp : loss + i;
        T *gv = stream ? tmpg : grad + i;
        if (FN(run_any)(kind, want_grad, want_loss, has_w, has_go, len,
                        x + i, y + i, w, pw, has_go ? grad_output + i : NULL, gs, p, p2, lv,
                        want_grad ? gv : NULL)) {
            job->first_bad[b] = i;
            break;
        }
        if (stream && want_grad)
            STREAM(grad + i, tmpg, len);
        if (stream && want_loss && !reduce)
            STREAM(loss + i, tmp, len);
        if (want_loss && reduce)
            LOSSK_CAT(lossk_add_lanes, SFX)(acc, tmp, len);
        i += len;
    }
    double s = 0;
    for (int l = 0; l < LOSSK_LANES; l++)
        s += acc[l];
    job->partial[b] = s;
    if (stream)
        lossk_stream_fence();
}

/* A block function per kind: compiled as one function with a switch over the kinds, GCC's
 * register allocation and loop versioning across all of them left some kinds' loops several times
 * slower, and which ones changed with any edit to another kind. */
typedef void (*FN(block_fn))(const FN(ew_job) *job, int b);
#define EW_BLOCK(K) \
    LOSSK_BLOCK_FN void FN(block_##K)(const FN(ew_job) *job, int b) { FN(elementwise_body)(job, b, FN(K)); }
EW_KINDS(EW_BLOCK)
#undef EW_BLOCK
#define EW_BLOCK_ENTRY(K) FN(block_##K),
static const FN(block_fn) FN(blocks)[] = {EW_KINDS(EW_BLOCK_ENTRY)};
#undef EW_BLOCK_ENTRY

/* The first block's domain error, if any, reported in a. */
static int FN(domain_error)(lossk_elementwise_args *a, const int64_t *first_bad, int nb)
{
    for (int b = 0; b < nb; b++)
        if (first_bad[b] >= 0) {
            FN(find_outside)(a->input, a->target, first_bad[b], a->n, &a->bad_index, &a->bad_target);
            return LOSSK_ERR_DOMAIN;
        }
    return LOSSK_OK;
}

static int FN(elementwise)(int kind, lossk_elementwise_args *a)
{
    const int64_t n = a->n;
    const int reduce = a->reduction == LOSSK_REDUCTION_SUM;
    if (n < 0 || (n > 0 && (!a->input || !a->target)) || (!a->loss && !a->grad)
        || (a->reduction != LOSSK_REDUCTION_NONE && !reduce)
        || (a->weight && a->weight_period <= 0)
        || (kind == FN(BCE_LOGITS_PW) && (!a->pos_weight || a->pos_weight_period <= 0)))
        return LOSSK_ERR_ARGUMENT;
    double partial[LOSSK_BLOCKS];
    int64_t first_bad[LOSSK_BLOCKS];
    /* Large outputs are computed into tiles on the stack and streamed out. */
    const FN(ew_job) job = {a, reduce, n * (int64_t)sizeof(T) >= LOSSK_STREAM_BYTES, lossk_blocks(n, n),
                            partial, first_bad};
    LOSSK_FOR_BLOCKS(lossk_threads_for(n), job.nb, FN(blocks)[kind], &job);
    int err = FN(domain_error)(a, first_bad, job.nb);
    if (err)
        return err;
    if (a->loss && reduce) {
        double total = 0;
        for (int b = 0; b < job.nb; b++)
            total += partial[b];
        a->sum = total;
        *(T *)a->loss = (T)(total / a->divisor);
    }
    return LOSSK_OK;
}

#define DEFINE_KERNEL(name, kind) \
    int LOSSK_ISA_NAME(LOSSK_CAT(lossk_##name, SFX))(lossk_elementwise_args *a) \
    { \
        return FN(elementwise)(FN(kind), a); \
    }
DEFINE_KERNEL(l1, L1)
DEFINE_KERNEL(mse, MSE)
DEFINE_KERNEL(smooth_l1, SMOOTH_L1)
DEFINE_KERNEL(huber, HUBER)
DEFINE_KERNEL(binary_cross_entropy, BCE)
DEFINE_KERNEL(soft_margin, SOFT_MARGIN)
DEFINE_KERNEL(hinge_embedding, HINGE_EMBEDDING)
#undef DEFINE_KERNEL

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_poisson_nll_log, SFX))(lossk_elementwise_args *a)
{
    return FN(elementwise)(a->param2 != 0 ? FN(POISSON_NLL_LOG_FULL) : FN(POISSON_NLL_LOG), a);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_poisson_nll, SFX))(lossk_elementwise_args *a)
{
    return FN(elementwise)(a->param2 != 0 ? FN(POISSON_NLL_FULL) : FN(POISSON_NLL), a);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_sigmoid_focal, SFX))(lossk_elementwise_args *a)
{
    return FN(elementwise)(a->param == 2 ? FN(SIGMOID_FOCAL_SQUARE) : FN(SIGMOID_FOCAL), a);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_binary_cross_entropy_with_logits, SFX))(lossk_elementwise_args *a)
{
    return FN(elementwise)(a->pos_weight ? FN(BCE_LOGITS_PW) : FN(BCE_LOGITS), a);
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_kl_div, SFX))(lossk_elementwise_args *a)
{
    return FN(elementwise)(a->param != 0 ? FN(KL_DIV_LOG_TARGET) : FN(KL_DIV), a);
}

LOSSK_BLOCK_FN void FN(check_unit_block)(const FN(ew_job) *job, int b)
{
    const lossk_elementwise_args *a = job->a;
    const T *x = a->input, *y = a->target;
    const int64_t end = lossk_block_start(a->n, job->nb, b + 1);
    job->first_bad[b] = -1;
    for (int64_t i = lossk_block_start(a->n, job->nb, b); i < end && job->first_bad[b] < 0; i += TILE) {
        int64_t len = lossk_min64(TILE, end - i);
        int bad = 0;
        for (int64_t j = 0; j < len; j++)
            bad |= FN(outside_unit)(x[i + j]) | FN(outside_unit)(y[i + j]);
        if (bad)
            job->first_bad[b] = i;
    }
}

int LOSSK_ISA_NAME(LOSSK_CAT(lossk_check_unit_interval, SFX))(lossk_elementwise_args *a)
{
    const int64_t n = a->n;
    if (n < 0 || (n > 0 && (!a->input || !a->target)))
        return LOSSK_ERR_ARGUMENT;
    int64_t first_bad[LOSSK_BLOCKS];
    const FN(ew_job) job = {a, 0, 0, lossk_blocks(n, n), NULL, first_bad};
    LOSSK_FOR_BLOCKS(lossk_threads_for(n), job.nb, FN(check_unit_block), &job);
    return FN(domain_error)(a, first_bad, job.nb);
}

#undef EW_KINDS
#undef TILE
#undef FN
#undef EXP
#undef LOG
#undef STREAM
