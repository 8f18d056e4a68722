/* Connectionist temporal classification: the loss of a sequence of class log-probabilities against
 * a shorter target, summed over every alignment of the target to the input, and its gradient.
 * ctc_impl.h holds the code that reads and writes T; it is included once per dtype. */
#include <math.h>
#include <stdlib.h>
#include "kernel.h"

/* Each state of the extended target (blank, label 1, blank, label 2, ..., blank) holds a log
 * probability; PAD states of -inf either side of a row let the recursions read s - 2 to s + 2. */
#define PAD 2

/* log(e^x + e^y + e^z), shifted by the largest, by 0 when all are -inf (the result is then -inf);
 * nan and +inf come out nan, as PyTorch's */
LOSSK_INLINE double lossk_ctc_lse3(double x, double y, double z)
{
    double m = x > y ? x : y;
    m = m > z ? m : z;
    m = m == -INFINITY ? 0.0 : m;
    return lossk_log_f64(lossk_exp_nonpos_f64(x - m) + lossk_exp_nonpos_f64(y - m) + lossk_exp_nonpos_f64(z - m)) + m;
}

/* Every length and every target index the samples use, before anything is written. */
static int lossk_ctc_check(lossk_ctc_args *a)
{
    if (a->t < 0 || a->n < 0 || a->c < 0 || a->targets_size < 0)
        return LOSSK_ERR_ARGUMENT;
    if (a->n > 0 && (a->blank < 0 || a->blank >= a->c || !a->input_lengths || !a->target_lengths
                     || !a->target_offsets || (a->t > 0 && !a->log_probs)))
        return LOSSK_ERR_ARGUMENT;
    for (int64_t b = 0; b < a->n; b++) {
        const int64_t il = a->input_lengths[b], tl = a->target_lengths[b], off = a->target_offsets[b];
        if (il < 0 || il > a->t || tl < 0 || off < 0 || off > a->targets_size || tl > a->targets_size - off
            || (tl > 0 && !a->targets))
            return LOSSK_ERR_ARGUMENT;
    }
    for (int64_t b = 0; b < a->n; b++)
        for (int64_t j = a->target_offsets[b], end = j + a->target_lengths[b]; j < end; j++)
            if (a->targets[j] < 0 || a->targets[j] >= a->c) {
                a->bad_index = j;
                return LOSSK_ERR_TARGET;
            }
    return LOSSK_OK;
}

/* Sample b's extended target: its labels, and for each state whether alpha may come from two
 * states back (fwd) and beta from two states on (bwd): not across a repeated label. */
static void lossk_ctc_extend(const lossk_ctc_args *a, int64_t b, int64_t *lab, double *fwd, double *bwd)
{
    const int64_t L = 2 * a->target_lengths[b] + 1;
    const int64_t *target = a->targets + a->target_offsets[b];
    for (int64_t s = 0; s < L; s++)
        lab[s] = s % 2 ? target[s / 2] : a->blank;
    for (int64_t s = 0; s < L; s++) {
        fwd[s] = s >= 2 && lab[s - 2] != lab[s];
        bwd[s] = s + 2 < L && lab[s + 2] != lab[s];
    }
}

/* row[-PAD, L + PAD) = -inf: a row of alpha or beta before its first time step sets its two
 * starting states */
static void lossk_ctc_clear(double *row, int64_t L)
{
    for (int64_t s = -PAD; s < L + PAD; s++)
        row[s] = -INFINITY;
}

#define T float
#define SFX f32
#include "ctc_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "ctc_impl.h"
#undef T
#undef SFX
