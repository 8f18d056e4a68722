/* Gradient boosting objectives: per sample, the gradient and hessian of a loss with respect to the
 * raw prediction. gbdt_impl.h holds the loops that read and write T; it is included once per dtype. */
#include <math.h>
#include "kernel.h"

/* Each objective at raw prediction r and target y (p, p2: its parameters), in double: the
 * gradient in *g, the hessian in *h, as src/lossk.h writes them. */
LOSSK_INLINE void gh_squared_error(double r, double y, double p, double p2, double *g, double *h)
{
    (void)p; (void)p2;
    *g = r - y;
    *h = 1.0;
}

/* The piecewise-constant gradients keep a nan input's nan (scikit-learn's turn it into -1). */
LOSSK_INLINE void gh_absolute_error(double r, double y, double p, double p2, double *g, double *h)
{
    (void)p; (void)p2;
    const double z = r - y;
    *g = z > 0 ? 1.0 : (z <= 0 ? -1.0 : z);
    *h = 1.0;
}

/* hessian_one (LightGBM's huber): the hessian is 1 outside the threshold too */
LOSSK_INLINE void gh_huber(double r, double y, double delta, double hessian_one, double *g, double *h)
{
    const double z = r - y;
    const int outside = fabs(z) > delta;    /* nan is inside: its gradient stays nan */
    *g = outside ? copysign(delta, z) : z;
    *h = outside && hessian_one == 0 ? 0.0 : 1.0;
}

LOSSK_INLINE void gh_pseudo_huber(double r, double y, double delta, double p2, double *g, double *h)
{
    (void)p2;
    const double z = r - y, t = z / delta, s = 1.0 + t * t, q = sqrt(s);
    *g = z / q;
    *h = 1.0 / (s * q);
}

LOSSK_INLINE void gh_quantile(double r, double y, double alpha, double p2, double *g, double *h)
{
    (void)p2;
    *g = y > r ? -alpha : (y <= r ? 1.0 - alpha : r - y);
    *h = 1.0;
}

/* p = sigmoid(r) and q = 1 - p, each from e = exp(-|r|) without cancellation; g = (1 - y) p - y q
 * keeps its precision near p = 1 as well as near 0 */
LOSSK_INLINE void gh_logistic(double r, double y, double p_, double p2, double *g, double *h)
{
    (void)p_; (void)p2;
    const double e = lossk_exp_nonpos_f64(-fabs(r)), d = 1.0 / (1.0 + e);
    const double p = r >= 0 ? d : e * d, q = r >= 0 ? e * d : d;
    *g = (1.0 - y) * p - y * q;
    *h = e * d * d;
}

LOSSK_INLINE void gh_poisson(double r, double y, double p, double log_offset, double *g, double *h)
{
    (void)p;
    const double e = lossk_exp_f64(r);
    *g = e - y;
    *h = log_offset == 0 ? e : lossk_exp_f64(r + log_offset);
}

LOSSK_INLINE void gh_gamma(double r, double y, double p, double p2, double *g, double *h)
{
    (void)p; (void)p2;
    const double ye = y * lossk_exp_f64(-r);
    *g = 1.0 - ye;
    *h = ye;
}

LOSSK_INLINE void gh_tweedie(double r, double y, double power, double p2, double *g, double *h)
{
    (void)p2;
    const double a1 = y * lossk_exp_f64((1.0 - power) * r), a2 = lossk_exp_f64((2.0 - power) * r);
    *g = a2 - a1;
    *h = (2.0 - power) * a2 - (1.0 - power) * a1;
}

#define T float
#define SFX f32
#include "gbdt_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "gbdt_impl.h"
#undef T
#undef SFX
