/* lossk: loss functions and their gradients, computed by OpenMP-parallel C kernels.
 *
 * Conventions shared by every kernel:
 *  - buffers are C-contiguous and of the dtype the function name says (_f32: float, _f64: double);
 *  - sizes and indices are int64_t;
 *  - a kernel never aborts, prints or allocates more than a few small scratch blocks;
 *    it returns LOSSK_OK or an error code, and on error leaves every output untouched;
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
    double param;                   /* smooth_l1: beta; huber: delta; kl_div: 1 for log_target, else 0 */
    int reduction;                  /* enum lossk_reduction */
    double divisor;                 /* reduced loss = sum / divisor */
    void *loss;                     /* NULL: not computed; n values (NONE) or 1 value (SUM) */
    void *grad;                     /* NULL: not computed; n values */
    const void *grad_output;        /* NULL, or n values */
    double grad_scale;
    int64_t bad_index;              /* out: first offending element for LOSSK_ERR_DOMAIN */
} lossk_elementwise_args;

/* binary_cross_entropy checks its input is in [0, 1] while it computes: on LOSSK_ERR_DOMAIN its
 * loss is untouched but grad may be partly written. check_unit_interval checks alone (reads
 * input, n, writes bad_index): run it first when grad is a buffer that must stay intact. */

/* Classification losses over input (N, C, S): element (n, c, s) at (n * C + c) * S + s;
 * S is the product of the spatial sizes d1..dK (1 for (N, C) input).
 * Targets are class indices (N, S) or, for cross_entropy_prob, probabilities shaped like input.
 * Positions whose target equals ignore_index contribute nothing (loss 0, gradient 0).
 * Reduced loss = sum / divisor, with divisor the summed weight of the non-ignored targets
 * when `mean_by_weight` is set (written back in `total_weight`), else `divisor` as given.
 */
typedef struct lossk_class_args {
    int64_t n, c, s;
    const void *input;
    const int64_t *target;          /* class indices; NULL for cross_entropy_prob */
    const void *target_prob;        /* cross_entropy_prob only: N*C*S probabilities */
    const void *weight;             /* NULL, or C class weights */
    int64_t ignore_index;
    double label_smoothing;         /* cross_entropy only */
    int reduction;                  /* enum lossk_reduction */
    int mean_by_weight;
    double divisor;
    void *loss;                     /* NULL, N*S values (NONE) or 1 value (SUM) */
    void *grad;                     /* NULL, or N*C*S values */
    const void *grad_output;        /* NULL, or N*S values */
    double grad_scale;
    double total_weight;            /* out: summed weight of the non-ignored targets */
    int64_t bad_index;              /* out: first position with an invalid class index (LOSSK_ERR_TARGET) */
} lossk_class_args;

/* Every kernel: int lossk_NAME_f32(ARGS *a) and int lossk_NAME_f64(ARGS *a). */
#define LOSSK_KERNELS(X) \
    X(l1, lossk_elementwise_args) \
    X(mse, lossk_elementwise_args) \
    X(smooth_l1, lossk_elementwise_args) \
    X(huber, lossk_elementwise_args) \
    X(binary_cross_entropy, lossk_elementwise_args) \
    X(binary_cross_entropy_with_logits, lossk_elementwise_args) \
    X(kl_div, lossk_elementwise_args) \
    X(check_unit_interval, lossk_elementwise_args) \
    X(cross_entropy, lossk_class_args) \
    X(cross_entropy_prob, lossk_class_args) \
    X(nll, lossk_class_args)

#define LOSSK_DECLARE(name, args) \
    int lossk_##name##_f32(args *a); \
    int lossk_##name##_f64(args *a);
LOSSK_KERNELS(LOSSK_DECLARE)
#undef LOSSK_DECLARE

/* Threads used by every kernel (default: OpenMP's default; 1 without OpenMP). */
void lossk_set_num_threads(int n);
int lossk_get_num_threads(void);

/* Name of the instruction set the kernels dispatch to on this CPU: "avx512", "avx2" or "baseline". */
const char *lossk_isa(void);

#ifdef __cplusplus
}
#endif
#endif
