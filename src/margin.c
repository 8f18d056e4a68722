/* Margin losses over rows: multi-class (multi_margin), multi-label (multilabel_margin) and the
 * multi-label logistic loss (multilabel_soft_margin). margin_impl.h holds the code; it is included
 * once per dtype. */
#include <stdlib.h>
#include "kernel.h"

/* The position of the first of t[0, n) outside [lo, hi), or -1: a pass without a branch per
 * element, by runs, and a search in the run that holds one. */
static int64_t first_outside(const int64_t *t, int64_t n, int64_t lo, int64_t hi)
{
    for (int64_t i = 0; i < n; i += 1024) {
        const int64_t L = lossk_min64(1024, n - i);
        int bad = 0;
        for (int64_t j = 0; j < L; j++)
            bad |= (t[i + j] < lo) | (t[i + j] >= hi);
        if (bad)
            for (int64_t j = 0; j < L; j++)
                if (t[i + j] < lo || t[i + j] >= hi)
                    return i + j;
    }
    return -1;
}

#define T float
#define SFX f32
#include "margin_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "margin_impl.h"
#undef T
#undef SFX
