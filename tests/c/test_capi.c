/* The kernels called from plain C, with no Python: MSE and cross-entropy on tiny inputs. */
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

    printf("isa %s, threads %d: %s\n", lossk_isa(), lossk_get_num_threads(), failures ? "FAILED" : "ok");
    return failures != 0;
}
