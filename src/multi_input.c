/* Losses of several differentiable inputs: margin ranking, Gaussian NLL (input and variance), cosine
 * embedding and triplet margin. multi_input_impl.h holds the code; it is included once per dtype. */
#include <math.h>
#include <stdlib.h>
#include "kernel.h"

#define T float
#define SFX f32
#include "multi_input_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "multi_input_impl.h"
#undef T
#undef SFX
