/* Classification losses: cross-entropy (class-index and probability targets), NLL.
 * classification_impl.h holds the code; it is included once per dtype. */
#include <stddef.h>
#include <string.h>
#include "kernel.h"

#define T float
#define SFX f32
#include "classification_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "classification_impl.h"
#undef T
#undef SFX
