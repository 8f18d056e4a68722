/* lossk: loss functions and their gradients, computed by OpenMP-parallel C kernels.
 *
 * Conventions shared by every kernel:
 *  - buffers are C-contiguous, aligned to their element size and of the dtype the function name
 *    says (_f32: float, _f64: double);
 *  - sizes and indices are int64_t;
 *  - no output may overlap an input or another output (the Python bindings refuse such arrays):
 *    kernels read inputs while other threads write, and some store whole vectors ahead of what
 *    they have read;
 *  - a kernel never aborts, prints or allocates more than a few small scratch blocks;
 *    it returns LOSSK_OK or an error code, and on error leaves every output untouched (the
 *    exceptions are said where they apply);
 *  - reductions use a fixed partition of the work that does not depend on the thread count,
 *    so results are bit-identical for any number of threads.
 */
#ifndef LOSSK_H
#define LOSSK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum lossk_status {
    LOSSK_OK = 0,
    LOSSK_ERR_ARGUMENT = 1,     /* a size or pointer in the arguments is invalid */
    LOSSK_ERR_TARGET = 2,       /* a class index outside [0, C) that is not ignore_index; see bad_index */
    LOSSK_ERR_DOMAIN = 3,       /* an input outside the loss's domain (BCE: not in [0, 1]); see bad_index */
    LOSSK_ERR_NOMEM = 4
};

enum lossk_reduction {
    LOSSK_REDUCTION_NONE = 0,   /* loss holds one value per element / position */
    LOSSK_REDUCTION_SUM = 1     /* loss holds one value: the sum divided by `divisor` (mean: divisor = count) */
};

/* Elementwise losses: loss_i = f(input_i, target_i) [* weight_i].
 *
 * weight (and pos_weight) may repeat with a period: element i uses weight[i % weight_period],
 * which covers any weight that broadcasts over the leading axes of the input.
 *
 * Gradient: grad_i = d loss_i / d input_i * g_i, with g_i = grad_output[i] when grad_output is
 * given, else grad_scale (mean: grad_output / count; the kernel does not divide again).
 */
typedef struct lossk_elementwise_args {
    int64_t n;
    const void *input, *target;
    const void *weight;             /* NULL, or weight_period values */
    int64_t weight_period;
    const void *pos_weight;         /* binary_cross_entropy_with_logits only: NULL or pos_weight_period values */
    int64_t pos_weight_period;
    double param;                   /* smooth_l1: beta; huber: delta; kl_div: 1 for log_target, else 0;
                                     * hinge_embedding: margin; poisson_nll: eps; sigmoid_focal: gamma */
    double param2;                  /* poisson_nll(_log): 1 for full (the Stirling term), else 0;
                                     * sigmoid_focal: alpha (< 0: no alpha weighting) */
    int reduction;                  /* enum lossk_reduction */
    double divisor;                 /* reduced loss = sum / divisor */
    double sum;                     /* out (SUM): that sum, in double, before the division */
    void *loss;                     /* NULL: not computed; n values (NONE) or 1 value (SUM) */
    void *grad;                     /* NULL: not computed; n values */
    const void *grad_output;        /* NULL, or n values */
    double grad_scale;
    int64_t bad_index;              /* out: first offending element for LOSSK_ERR_DOMAIN */
    int bad_target;                 /* out: 1 if that element's target, not its input, is outside the domain */
} lossk_elementwise_args;

/* binary_cross_entropy checks that input and target are in [0, 1] while it computes: on
 * LOSSK_ERR_DOMAIN, loss and grad may be partly written. check_unit_interval checks alone (reads
 * n, input, target; writes bad_index, bad_target): run it first when grad is a buffer that must
 * stay intact. */

/* Classification losses over input (N, C, S): element (n, c, s) at (n * C + c) * S + s;
 * S is the product of the spatial sizes d1..dK (1 for (N, C) input).
 * Targets are class indices (N, S) or, for cross_entropy_prob, probabilities shaped like input.
 * Positions whose target equals ignore_index contribute nothing (loss 0, gradient 0).
 * Reduced loss = sum / divisor, with divisor the summed weight of the non-ignored targets
 * when `mean_by_weight` is 1 (written back in `total_weight`), else `divisor` as given; 2 is a
 * weighted mean whose divisor is given: the summed weight of a larger whole that these positions
 * are part of (lossk.dask's chunks), so the gradient is scaled as the whole's would be.
 */
typedef struct lossk_class_args {
    int64_t n, c, s;
    int spatial;                    /* 1: positions as spatial tiles even when S is 1 (cross_entropy),
                                     * so that a one-position part of a larger whole rounds as the others */
    const void *input;
    const int64_t *target;          /* class indices; NULL for cross_entropy_prob */
    const void *target_prob;        /* cross_entropy_prob only: N*C*S probabilities */
    const void *weight;             /* NULL, or C class weights */
    int64_t ignore_index;
    double label_smoothing;         /* cross_entropy only */
    int reduction;                  /* enum lossk_reduction */
    int mean_by_weight;             /* 0, 1 or 2, as said above */
    double divisor;
    double sum;                     /* out (SUM): that sum, in double, before the division */
    void *loss;                     /* NULL, N*S values (NONE) or 1 value (SUM) */
    void *grad;                     /* NULL, or N*C*S values */
    const void *grad_output;        /* NULL, or N*S values */
    double grad_scale;
    double total_weight;            /* out: summed weight of the non-ignored targets */
    int64_t bad_index;              /* out: first position with an invalid class index (LOSSK_ERR_TARGET) */
} lossk_class_args;

/* Margin losses over rows (margin.c): input (N, C), row n at n * C, one loss per row: the sum of
 * the row's C terms (in double) divided by C. Reduced loss = sum over rows / divisor.
 *  - multi_margin: target N class indices in [0, C); terms max(0, margin - x_t + x_i)^p over
 *    i != t, times weight[t] (C class weights) when given; p is 1 or 2.
 *  - multilabel_margin: target N * C indices in [-1, C), each row a list of its target classes
 *    ended by the first -1 (a row of C indices has no -1); terms max(0, 1 - x_j + x_i) for each
 *    listed j (repeats count again) and each i not listed.
 *  - multilabel_soft_margin: target_values N * C values; terms the binary cross-entropy of logits
 *    t_i softplus(-x_i) + (1 - t_i) softplus(x_i), times weight[(n * C + i) % weight_period]
 *    when given (weight_period a multiple of C).
 * A margin term that is not > 0 (nan included) contributes nothing, to the loss or the gradient.
 * A class index outside its range gives LOSSK_ERR_TARGET, with bad_index its flat position.
 * multilabel_margin allocates C bytes of scratch per block of rows (LOSSK_ERR_NOMEM if it cannot). */
typedef struct lossk_margin_args {
    int64_t n, c;
    const void *input;
    const int64_t *target;          /* multi_margin, multilabel_margin */
    const void *target_values;      /* multilabel_soft_margin */
    const void *weight;             /* NULL, or as said above */
    int64_t weight_period;
    double margin;                  /* multi_margin */
    int p;                          /* multi_margin: 1 or 2 */
    int reduction;                  /* enum lossk_reduction */
    double divisor;
    double sum;                     /* out (SUM): that sum, in double, before the division */
    void *loss;                     /* NULL, N values (NONE) or 1 value (SUM) */
    void *grad;                     /* NULL, or N * C values */
    const void *grad_output;        /* NULL, or N values */
    double grad_scale;
    int64_t bad_index;              /* out: the first out-of-range class index (LOSSK_ERR_TARGET) */
} lossk_margin_args;

/* Losses of several differentiable inputs (multi_input.c): x[k] are the inputs, grad[k] their
 * gradients (each NULL when not wanted), shaped alike unless said otherwise.
 *  - margin_ranking: x[0], x[1] and target: n values; loss max(0, margin - target (x0 - x1)).
 *  - gaussian_nll: x[0] the input (mean) and target: n * d * m values, element (i, k, j) at
 *    (i d + k) m + j; x[1] the variance: n * m values, var[i m + j] for every element (i, *, j), so
 *    d = 1 is a variance per element and m = 1 one per row of d; grad[1] is shaped like var (the
 *    sum over k). Loss 0.5 (log v + (x - t)^2 / v) [+ 0.5 log(2 pi) when `full`], v = max(var, eps);
 *    the gradient with respect to var is taken at v (PyTorch clamps without recording the clamp).
 *  - cosine_embedding: x[0], x[1]: n rows of d; target n values; per row, with c the cosine
 *    (x0 . x1) / sqrt((|x0|^2 + 1e-12)(|x1|^2 + 1e-12)): 1 - c where target == 1,
 *    max(0, c - margin) where target == -1, else 0.
 *  - triplet_margin: x[0..2] anchor, positive, negative: n rows of d; per row
 *    max(0, margin + |a - p + eps|_p - min(|a - n + eps|_p, |p - n + eps|_p when swap)), p > 0.
 * Losses: one per element (margin_ranking: n, gaussian_nll: n d m) or per row (n); reduced loss =
 * sum / divisor. A hinge's gradient flows where its argument is >= 0 (PyTorch's clamp_min), a
 * tie of swap's minimum splits it in halves. gaussian_nll gives LOSSK_ERR_DOMAIN when a var is
 * negative (the outputs partly written, unless check_first). */
typedef struct lossk_multi_args {
    int64_t n, d, m;
    const void *x[3];
    const void *target;             /* margin_ranking, gaussian_nll, cosine_embedding */
    double margin;                  /* margin_ranking, cosine_embedding, triplet_margin */
    double eps;                     /* gaussian_nll, triplet_margin */
    double p;                       /* triplet_margin: the norm's degree, > 0 */
    int full, swap;                 /* gaussian_nll, triplet_margin */
    int check_first;                /* gaussian_nll: check every var before writing anything, so that
                                     * LOSSK_ERR_DOMAIN leaves the outputs untouched */
    int reduction;                  /* enum lossk_reduction */
    double divisor;
    double sum;                     /* out (SUM): that sum, in double, before the division */
    void *loss;                     /* NULL, a value per element or row (NONE), or 1 value (SUM) */
    void *grad[3];
    const void *grad_output;        /* NULL, or a value per element or row */
    double grad_scale;
} lossk_multi_args;

/* Connectionist temporal classification (ctc.c): log_probs (T, N, C); sample b's input is its first
 * input_lengths[b] time steps, its target the target_lengths[b] class indices at
 * targets[target_offsets[b]], and its loss -log of the total probability of the target's
 * alignments to the input (alpha, the forward recursion in log space over the target with a blank
 * before, between and after its labels), +inf when there is none (0 with zero_infinity).
 * Gradient, as PyTorch's: exp(log_probs) - exp(log_ab - loss - log_probs) for t < input_lengths[b]
 * (0 after), log_ab(t, c) the log of the sum over the states of class c of alpha beta; times
 * grad_output[b] when given, else grad_scale. That is the derivative with respect to logits whose
 * log_softmax log_probs are (the derivative with respect to log_probs lacks exp(log_probs)).
 * per_target_mean divides each sample's loss and gradient by max(target_lengths[b], 1).
 * Every length (LOSSK_ERR_ARGUMENT) and every target index used (LOSSK_ERR_TARGET, bad_index its
 * position in targets) is checked before anything is written. Each block of samples allocates its
 * forward variables (input_lengths[b] (2 target_lengths[b] + 5) doubles for its longest sample);
 * LOSSK_ERR_NOMEM if it cannot, with the outputs partly written. */
typedef struct lossk_ctc_args {
    int64_t t, n, c;
    const void *log_probs;
    const int64_t *targets;
    int64_t targets_size;
    const int64_t *target_offsets, *input_lengths, *target_lengths;   /* n values each */
    int64_t blank;                  /* in [0, C) */
    int zero_infinity;
    int per_target_mean;
    int reduction;                  /* enum lossk_reduction */
    double divisor;
    double sum;                     /* out (SUM): that sum, in double, before the division */
    void *loss;                     /* NULL, n values (NONE) or 1 value (SUM) */
    void *grad;                     /* NULL, or T * N * C values */
    const void *grad_output;        /* NULL, or n values */
    double grad_scale;
    int64_t bad_index;
} lossk_ctc_args;

/* Layers of a convolutional network (layers.c). Activations are NCHW, weights in PyTorch's
 * layouts; every parameter gradient is ADDED to what its buffer holds (zero it to start).
 *
 * Scratch: kernels that take `work` need work_size bytes of it. Called with work == NULL they only
 * store the size they need in work_size (for the current thread count) and return LOSSK_OK; so
 * `work` must not be NULL for the computation, even when the size asked for is 0.
 * An empty batch (N = 0) needs none and computes nothing.
 */
enum lossk_conv_algo {
    LOSSK_CONV_AUTO = 0,            /* Winograd where it applies and pays, else direct */
    LOSSK_CONV_DIRECT = 1,          /* im2col + register-blocked GEMM: any geometry */
    LOSSK_CONV_WINOGRAD = 2         /* F(4x4, 5x5): 5x5 kernel, stride 1, padding <= 4 only */
};

/* conv2d: input (N, C, H, W), weight (K, C, R, S), bias (K), output (N, K, P, Q) with
 * P = (H + 2 pad_h - R) / stride_h + 1, Q likewise (H + 2 pad_h must fit in int64_t).
 * forward: input, weight, bias (may be NULL) -> output; with pool set (P and Q even) the output
 * is max-pooled 2x2 on the fly: output (N, K, P/2, Q/2) and indices (argmax in the P x Q plane,
 * as max_pool2d's; NULL for none, as inference needs) replace the P x Q output.
 * backward_input: grad_output, weight -> grad_input.
 * backward_weight: input, grad_output -> grad_weight +=, grad_bias += (may be NULL).
 * Backward with pool set: grad_output is the gradient of the pooled output (N, K, P/2, Q/2),
 * routed through `indices` (each in the 2x2 window of its pooled output, else LOSSK_ERR_ARGUMENT) as
 * max_pool2d_backward's.
 * Each index is checked as it is used, so that a caller changing them during the call cannot make
 * the kernel write out of bounds; backward_input also checks them all before it writes anything,
 * and backward_weight adds nothing to grad_weight and grad_bias unless all were good. An index
 * changed to a bad one during backward_input leaves grad_input partly written (LOSSK_ERR_ARGUMENT). */
typedef struct lossk_conv2d_args {
    int64_t n, c, h, w;
    int64_t k, r, s;
    int64_t stride_h, stride_w, pad_h, pad_w;
    int64_t p, q;
    int algo;                       /* enum lossk_conv_algo */
    int pool;
    const void *input, *weight, *bias;
    void *output;
    int64_t *indices;
    const void *grad_output;
    void *grad_input, *grad_weight, *grad_bias;
    void *work;
    int64_t work_size;
} lossk_conv2d_args;

/* max_pool2d without padding: input (N, C, H, W) -> output (N, C, P, Q), indices (argmax h * W + w
 * in each input plane, the first maximum; nan counts as the maximum, as in PyTorch; NULL for none).
 * backward: grad_output, indices -> grad_input (overwritten). Each index is checked as it is
 * used: one outside the kh x kw window of its output (which lies in [0, H W)) gives
 * LOSSK_ERR_ARGUMENT with grad_input partly written. */
typedef struct lossk_pool2d_args {
    int64_t n, c, h, w;
    int64_t kh, kw, stride_h, stride_w;
    int64_t p, q;
    const void *input;
    void *output;
    int64_t *indices;
    const void *grad_output;
    void *grad_input;
} lossk_pool2d_args;

/* linear: input (N, I), weight (O, I), bias (O) -> output (N, O).
 * backward: grad_output, weight -> grad_input (when not NULL); input, grad_output ->
 * grad_weight +=, grad_bias += (each when not NULL). */
typedef struct lossk_linear_args {
    int64_t n, in, out;
    const void *input, *weight, *bias;
    void *output;
    const void *grad_output;
    void *grad_input, *grad_weight, *grad_bias;
    void *work;
    int64_t work_size;
} lossk_linear_args;

/* linear_cross_entropy: the cross-entropy (as lossk_class_args's cross_entropy, class-index targets)
 * of the logits input (N, D) linear_weight (V, D)^T [+ linear_bias (V)], computed `chunk` rows at a
 * time: a chunk's logits, transposed (V, chunk), its gradient (the same size, when a gradient is
 * wanted) and its input rows, transposed (D, chunk), are all the work memory it needs: work_size
 * bytes, set when work is NULL (the call then returns). mean_by_weight 1: divisor = the summed
 * weight of all N non-ignored targets (written to total_weight), 2: divisor as given, 0 (sum, none):
 * divisor unused. Gradients, each NULL when not wanted, overwritten: grad_input (N, D),
 * grad_linear_weight (V, D), grad_linear_bias (V). Every product sums each element in one fixed
 * order, and the weight's and bias's gradients add the chunks in row order, so gradients do not
 * depend on the thread count (nor on chunk); the chunks' loss sums are added in order (the loss
 * depends on chunk, not on the thread count). An out-of-range target gives LOSSK_ERR_TARGET, with
 * its row in bad_index, before anything is written. */
typedef struct lossk_linear_ce_args {
    int64_t n, d, v, chunk;
    const void *input, *linear_weight, *linear_bias;
    const int64_t *target;
    const void *weight;             /* NULL, or V class weights */
    int64_t ignore_index;
    double label_smoothing;
    int reduction;                  /* LOSSK_REDUCTION_NONE or _SUM */
    int mean_by_weight;
    double divisor;
    double sum;                     /* out (SUM): the loss's sum, in double, before the division */
    void *loss;                     /* NULL, N values (NONE) or 1 value (SUM) */
    void *grad_input, *grad_linear_weight, *grad_linear_bias;
    const void *grad_output;        /* NULL, or N values */
    double grad_scale;
    double total_weight;            /* out */
    void *work;
    int64_t work_size;
    int64_t bad_index;              /* out */
} lossk_linear_ce_args;

/* relu: forward input -> output; backward: output (or input), grad_output -> grad_input. */
typedef struct lossk_relu_args {
    int64_t n;
    const void *input;
    void *output;
    const void *grad_output;
    void *grad_input;
} lossk_relu_args;

/* Every kernel: int lossk_NAME_f32(ARGS *a) and int lossk_NAME_f64(ARGS *a). */
/* Gradient boosting objectives: the gradient and hessian of a loss with respect to the raw
 * prediction (the booster's margin), per sample, with scikit-learn's sklearn._loss link functions:
 *   squared_error   g = r - y                         h = 1
 *   absolute_error  g = 1 if r > y else -1            h = 1
 *   huber           g = z if |z| <= param else param sign(z)  (z = r - y)   h = 1 if |z| <= param or param2 != 0, else 0
 *   pseudo_huber    g = z / sqrt(1 + (z/param)^2)     h = (1 + (z/param)^2)^(-3/2)
 *   quantile        g = -param if y > r else 1 - param  (param = alpha)     h = 1
 *   logistic        g = sigmoid(r) - y                h = p (1 - p)
 *   poisson         g = exp(r) - y                    h = exp(r + param2)
 *   gamma           g = 1 - y exp(-r)                 h = y exp(-r)
 *   tweedie         g = exp((2-p) r) - y exp((1-p) r) h = (2-p) exp((2-p) r) - (1-p) y exp((1-p) r)  (p = param)
 *   softmax         raw_prediction (n, k) row-major, y a class index per sample held as a float:
 *                   g_j = p_j - [y == j]              h_j = p_j (1 - p_j)   (p = softmax of the row)
 * Both are multiplied by sample_weight; the hessian also by hess_scale, and raised to hess_floor
 * (-inf: none) after weighting (floor_weighted) or before: the conventions of XGBoost's and
 * LightGBM's own objectives. A nan input gives a nan gradient. Sums are per sample, so results do
 * not depend on the thread count. softmax checks every class before it writes: a y that is not
 * an integer in [0, k) gives LOSSK_ERR_TARGET with its sample in bad_index. */
typedef struct lossk_gbdt_args {
    int64_t n;                      /* samples */
    int64_t k;                      /* softmax: classes; the other objectives: 1 */
    const void *raw_prediction;     /* n * k values */
    const void *y_true;             /* n values */
    const void *sample_weight;      /* NULL, or n values */
    double param;                   /* huber, pseudo_huber: delta; quantile: alpha; tweedie: power */
    double param2;                  /* poisson: the hessian's log offset (XGBoost's max_delta_step);
                                     * huber: nonzero for a hessian of 1 everywhere (LightGBM's) */
    double hess_scale;
    double hess_floor;
    int floor_weighted;
    void *gradient, *hessian;       /* n * k values each */
    int64_t bad_index;              /* out: see LOSSK_ERR_TARGET above */
} lossk_gbdt_args;

#define LOSSK_KERNELS(X) \
    X(l1, lossk_elementwise_args) \
    X(mse, lossk_elementwise_args) \
    X(smooth_l1, lossk_elementwise_args) \
    X(huber, lossk_elementwise_args) \
    X(binary_cross_entropy, lossk_elementwise_args) \
    X(binary_cross_entropy_with_logits, lossk_elementwise_args) \
    X(kl_div, lossk_elementwise_args) \
    X(soft_margin, lossk_elementwise_args) \
    X(hinge_embedding, lossk_elementwise_args) \
    X(poisson_nll_log, lossk_elementwise_args) \
    X(poisson_nll, lossk_elementwise_args) \
    X(sigmoid_focal, lossk_elementwise_args) \
    X(check_unit_interval, lossk_elementwise_args) \
    X(cross_entropy, lossk_class_args) \
    X(cross_entropy_prob, lossk_class_args) \
    X(nll, lossk_class_args) \
    X(multi_margin, lossk_margin_args) \
    X(multilabel_margin, lossk_margin_args) \
    X(multilabel_soft_margin, lossk_margin_args) \
    X(margin_ranking, lossk_multi_args) \
    X(gaussian_nll, lossk_multi_args) \
    X(cosine_embedding, lossk_multi_args) \
    X(triplet_margin, lossk_multi_args) \
    X(ctc, lossk_ctc_args) \
    X(gbdt_squared_error, lossk_gbdt_args) \
    X(gbdt_absolute_error, lossk_gbdt_args) \
    X(gbdt_huber, lossk_gbdt_args) \
    X(gbdt_pseudo_huber, lossk_gbdt_args) \
    X(gbdt_quantile, lossk_gbdt_args) \
    X(gbdt_logistic, lossk_gbdt_args) \
    X(gbdt_poisson, lossk_gbdt_args) \
    X(gbdt_gamma, lossk_gbdt_args) \
    X(gbdt_tweedie, lossk_gbdt_args) \
    X(gbdt_softmax, lossk_gbdt_args) \
    X(conv2d_forward, lossk_conv2d_args) \
    X(conv2d_backward_input, lossk_conv2d_args) \
    X(conv2d_backward_weight, lossk_conv2d_args) \
    X(max_pool2d_forward, lossk_pool2d_args) \
    X(max_pool2d_backward, lossk_pool2d_args) \
    X(linear_forward, lossk_linear_args) \
    X(linear_backward, lossk_linear_args) \
    X(linear_cross_entropy, lossk_linear_ce_args) \
    X(relu_forward, lossk_relu_args) \
    X(relu_backward, lossk_relu_args)

#define LOSSK_DECLARE(name, args) \
    int lossk_##name##_f32(args *a); \
    int lossk_##name##_f64(args *a);
LOSSK_KERNELS(LOSSK_DECLARE)
#undef LOSSK_DECLARE

/* Threads used by every kernel (default: OpenMP's default; 1 without OpenMP). */
void lossk_set_num_threads(int n);
int lossk_get_num_threads(void);

/* Name of the instruction set the kernels dispatch to on this CPU: "avx512zen", "avx512", "avx2" or "baseline". */
const char *lossk_isa(void);

#ifdef __cplusplus
}
#endif
#endif
