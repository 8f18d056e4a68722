/* The kernels called from plain C, with no Python: MSE and cross-entropy on tiny inputs, and layer
 * arguments the Python bindings cannot pass. */
#include <math.h>
#include <stdio.h>
#include "lossk.h"

static int close_to(double a, double b) { return fabs(a - b) <= 1e-6 * (1 + fabs(b)); }

int main(void)
{
    int failures = 0;

    float x[4] = {1, 2, 3, 4}, y[4] = {1, 0, 5, 4}, loss, grad[4];
    lossk_elementwise_args e = {0};
    e.n = 4; e.input = x; e.target = y; e.reduction = LOSSK_REDUCTION_SUM; e.divisor = 4;
    e.loss = &loss; e.grad = grad; e.grad_scale = 0.25;
    if (lossk_mse_f32(&e) != LOSSK_OK || !close_to(loss, 2.0) || !close_to(grad[1], 1.0) || !close_to(grad[2], -1.0)) {
        printf("FAIL mse: loss %g grad %g %g\n", loss, grad[1], grad[2]);
        failures++;
    }

    /* The tutorial's example: logits [0.1, 0.2, 0.3], class 1 -> 1.1019 */
    double logits[3] = {0.1, 0.2, 0.3}, ce, dce[3];
    int64_t target = 1;
    lossk_class_args c = {0};
    c.n = 1; c.c = 3; c.s = 1; c.input = logits; c.target = &target; c.ignore_index = -100;
    c.reduction = LOSSK_REDUCTION_SUM; c.mean_by_weight = 1; c.loss = &ce; c.grad = dce; c.grad_scale = 1;
    if (lossk_cross_entropy_f64(&c) != LOSSK_OK || fabs(ce - 1.1019) > 5e-5 || fabs(dce[0] + dce[1] + dce[2]) > 1e-12) {
        printf("FAIL cross_entropy: loss %.6f\n", ce);
        failures++;
    }

    target = 3; /* out of range: reported, nothing written */
    ce = -1;
    if (lossk_cross_entropy_f64(&c) != LOSSK_ERR_TARGET || c.bad_index != 0 || ce != -1) {
        printf("FAIL cross_entropy bad target\n");
        failures++;
    }

    /* An empty batch with a plane too large for int64_t: nothing to compute, and no size product
     * (P Q, H W, C R S) formed on the way (NumPy refuses such shapes, so only C can pass them). */
    const int64_t big = (int64_t)1 << 61;
    float buf[4] = {0};
    int64_t idx[4] = {0};
    lossk_conv2d_args cv = {0};
    cv.c = big; cv.k = 1; cv.r = cv.s = 2; cv.stride_h = cv.stride_w = 1; cv.pad_h = cv.pad_w = big;
    cv.p = cv.q = 2 * big - 1; /* odd, so that with pool set the geometry is refused */
    cv.input = cv.weight = cv.grad_output = buf; cv.output = cv.grad_input = cv.grad_weight = buf; cv.indices = idx;
    for (int pool = 0; pool < 2; pool++) {
        cv.pool = pool;
        const int want = pool ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
        cv.work_size = -1;
        if (lossk_conv2d_forward_f32(&cv) != want || lossk_conv2d_backward_input_f32(&cv) != want
            || lossk_conv2d_backward_weight_f64(&cv) != want || (!pool && cv.work_size != 0)) {
            printf("FAIL conv2d of an empty batch, pool %d\n", pool);
            failures++;
        }
    }
    cv.c = 1; cv.r = cv.s = 1; cv.p = cv.q = 2 * big; /* even: the pooled backward too */
    cv.pool = 1;
    if (lossk_conv2d_forward_f32(&cv) != LOSSK_OK || lossk_conv2d_backward_input_f32(&cv) != LOSSK_OK
        || lossk_conv2d_backward_weight_f64(&cv) != LOSSK_OK) {
        printf("FAIL pooled conv2d of an empty batch\n");
        failures++;
    }
    lossk_pool2d_args mp = {0};
    mp.c = 1; mp.h = mp.w = big; mp.kh = mp.kw = mp.stride_h = mp.stride_w = 1; mp.p = mp.q = big;
    mp.input = mp.grad_output = buf; mp.output = mp.grad_input = buf; mp.indices = idx;
    if (lossk_max_pool2d_forward_f32(&mp) != LOSSK_OK || lossk_max_pool2d_backward_f64(&mp) != LOSSK_OK) {
        printf("FAIL max_pool2d of an empty batch\n");
        failures++;
    }

    /* max_pool2d backward: an index inside the 2 x 4 plane but in the other 2x2 window is refused */
    float g[2] = {1, 2}, dx[8];
    int64_t arg[2] = {5, 2};
    lossk_pool2d_args bp = {0};
    bp.n = bp.c = 1; bp.h = 2; bp.w = 4; bp.kh = bp.kw = bp.stride_h = bp.stride_w = 2; bp.p = 1; bp.q = 2;
    bp.grad_output = g; bp.grad_input = dx; bp.indices = arg;
    if (lossk_max_pool2d_backward_f32(&bp) != LOSSK_OK || dx[5] != 1 || dx[2] != 2) {
        printf("FAIL max_pool2d backward\n");
        failures++;
    }
    arg[0] = 2; /* the first window is columns 0-1 */
    if (lossk_max_pool2d_backward_f32(&bp) != LOSSK_ERR_ARGUMENT) {
        printf("FAIL max_pool2d backward: an index outside its window was accepted\n");
        failures++;
    }

    /* indices NULL: the forward passes find no argmax, the backward passes need one */
    float plane[8] = {0, 1, 5, 2, 3, 4, 6, 7}, maxima[2];
    lossk_pool2d_args fp = bp;
    fp.input = plane;
    fp.output = maxima;
    fp.indices = NULL;
    if (lossk_max_pool2d_forward_f32(&fp) != LOSSK_OK || maxima[0] != 4 || maxima[1] != 7) {
        printf("FAIL max_pool2d forward without indices\n");
        failures++;
    }
    bp.indices = NULL;
    if (lossk_max_pool2d_backward_f32(&bp) != LOSSK_ERR_ARGUMENT) {
        printf("FAIL max_pool2d backward without indices was accepted\n");
        failures++;
    }
    lossk_conv2d_args pc = {0}; /* 1x1 kernel of weight 1 over the same plane, pooled */
    float one = 1, pooled[2], dw = 0;
    pc.n = pc.c = pc.k = 1; pc.h = pc.p = 2; pc.w = pc.q = 4; pc.r = pc.s = pc.stride_h = pc.stride_w = 1;
    pc.pool = 1; pc.input = plane; pc.weight = &one; pc.output = pooled; pc.grad_output = g; pc.grad_input = dx;
    pc.grad_weight = &dw;
    float work[256];
    pc.work = work;
    pc.work_size = sizeof work;
    if (lossk_conv2d_forward_f32(&pc) != LOSSK_OK || pooled[0] != 4 || pooled[1] != 7
        || lossk_conv2d_backward_input_f32(&pc) != LOSSK_ERR_ARGUMENT
        || lossk_conv2d_backward_weight_f32(&pc) != LOSSK_ERR_ARGUMENT) {
        printf("FAIL pooled conv2d without indices\n");
        failures++;
    }

    printf("isa %s, threads %d: %s\n", lossk_isa(), lossk_get_num_threads(), failures ? "FAILED" : "ok");
    return failures != 0;
}
