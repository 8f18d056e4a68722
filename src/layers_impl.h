/* Template for layers.c, included once per dtype (T the element type, TI an integer of its size,
 * SFX its suffix: f32, f64): the vector types every layer part shares, then the parts in the
 * order they build on each other (products, the two convolution algorithms, pooling, the conv2d
 * entry points that choose between them, linear and ReLU). */
#define FN(name) LOSSK_CAT(name, SFX)
#define VL ((int64_t)(VBYTES / sizeof(T)))
typedef T FN(vec) __attribute__((vector_size(VBYTES), aligned(sizeof(T)), may_alias));
typedef TI FN(ivec) __attribute__((vector_size(VBYTES), aligned(sizeof(T)), may_alias));
#define VEC FN(vec)

#include "gemm_impl.h"
#include "winograd_impl.h"
#include "conv_direct_impl.h"
#include "pool_impl.h"
#include "conv_impl.h"
#include "linear_impl.h"
#include "linear_ce_impl.h"

#undef SEPARABLE
#undef WT
#undef WF
#undef VEC
#undef VL
#undef FN
