/* Elementwise losses: L1, MSE, SmoothL1, Huber, BCE, BCE-with-logits, KL divergence, soft margin,
 * hinge embedding, Poisson NLL, sigmoid focal.
 * elementwise_impl.h holds the code; it is included once per dtype. */
#include <stddef.h>
#include "kernel.h"

#define T float
#define SFX f32
#include "elementwise_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "elementwise_impl.h"
#undef T
#undef SFX
