/* Private to the kernel sources: instruction-set naming, threading and the fixed partition of work. */
#ifndef LOSSK_KERNEL_H
#define LOSSK_KERNEL_H

#include <stdint.h>
#include "lossk.h"
#include "vmath.h"

/* Each kernel source is compiled once per instruction set (CMake sets LOSSK_ISA); dispatch.c
 * picks the variant for the CPU it runs on. */
#ifndef LOSSK_ISA
#define LOSSK_ISA baseline
#endif
#define LOSSK_CAT_(a, b) a##_##b
#define LOSSK_CAT(a, b) LOSSK_CAT_(a, b)
#define LOSSK_ISA_NAME(name) LOSSK_CAT(name, LOSSK_ISA)

#define LOSSK_INLINE static inline __attribute__((always_inline))

/* Threads for a kernel doing `work` element-operations: 1 below the point where starting
 * threads costs more than it saves. */
int lossk_threads_for(int64_t work);

/* Reductions split their range into LOSSK_BLOCKS blocks, whatever the thread count, and add the
 * block sums in block order: that is what makes results bit-identical for any thread count. */
#define LOSSK_BLOCKS 64

static inline int64_t lossk_block_start(int64_t n, int64_t b)
{
    return (n / LOSSK_BLOCKS) * b + (b < n % LOSSK_BLOCKS ? b : n % LOSSK_BLOCKS);
}

/* Sum lanes: every block accumulates in LOSSK_LANES double accumulators, element j of a run into
 * lane j % LOSSK_LANES, so the order of additions is fixed by the data alone (not by vector
 * width or alignment) and float32 sums of 2^24 terms keep double precision. */
#define LOSSK_LANES 16

static inline int64_t lossk_min64(int64_t a, int64_t b) { return a < b ? a : b; }

#endif
