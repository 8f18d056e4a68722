/* Public entry points: each forwards to the variant compiled for the best instruction set this
 * CPU has (chosen once, at load). LOSSK_ISA=baseline|avx2|avx512|avx512zen in the environment can
 * choose another one the CPU can run, at the same level or below. */
#include <stdlib.h>
#include <string.h>
#include "kernel.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* avx512 and avx512zen need the same instructions and differ in tuning (src/vmath.h). */
enum { ISA_BASELINE, ISA_AVX2, ISA_AVX512, ISA_AVX512ZEN, ISA_COUNT };
static const char *const isa_names[ISA_COUNT] = {"baseline", "avx2", "avx512", "avx512zen"};
static const int isa_level[ISA_COUNT] = {0, 1, 2, 2};
static const int isa_built[ISA_COUNT] = {1, LOSSK_X86_VARIANTS, LOSSK_HAS_AVX512, LOSSK_HAS_ZEN};
static int isa = ISA_BASELINE;

#if LOSSK_X86_VARIANTS
/* A build without a variant (CMake LOSSK_AVX512=OFF, LOSSK_ZEN_VARIANT=OFF) never chooses it;
 * its case forwards to the variant below it all the same. */
#if LOSSK_HAS_AVX512
#define DECLARE_AVX512(name, args) int lossk_##name##_f32_avx512(args *a); int lossk_##name##_f64_avx512(args *a);
#define AVX512(name, sfx) lossk_##name##_##sfx##_avx512
#else
#define DECLARE_AVX512(name, args)
#define AVX512(name, sfx) lossk_##name##_##sfx##_avx2
#endif
#if LOSSK_HAS_ZEN
#define DECLARE_ZEN(name, args) int lossk_##name##_f32_avx512zen(args *a); int lossk_##name##_f64_avx512zen(args *a);
#define ZEN(name, sfx) lossk_##name##_##sfx##_avx512zen
#else
#define DECLARE_ZEN(name, args)
#define ZEN(name, sfx) AVX512(name, sfx)
#endif
#define DECLARE_VARIANTS(name, args) \
    int lossk_##name##_f32_baseline(args *a); int lossk_##name##_f64_baseline(args *a); \
    int lossk_##name##_f32_avx2(args *a); int lossk_##name##_f64_avx2(args *a); \
    DECLARE_AVX512(name, args) DECLARE_ZEN(name, args)
#define FORWARD(name, sfx, args) \
    int lossk_##name##_##sfx(args *a) \
    { \
        switch (isa) { \
        case ISA_AVX512ZEN: return ZEN(name, sfx)(a); \
        case ISA_AVX512: return AVX512(name, sfx)(a); \
        case ISA_AVX2: return lossk_##name##_##sfx##_avx2(a); \
        default: return lossk_##name##_##sfx##_baseline(a); \
        } \
    }

static int detect_isa(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return ISA_BASELINE;
    if (!LOSSK_HAS_AVX512 || !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vl")
        || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512dq"))
        return ISA_AVX2;
    return LOSSK_HAS_ZEN && __builtin_cpu_is("amd") ? ISA_AVX512ZEN : ISA_AVX512;
}
#else
#define DECLARE_VARIANTS(name, args) \
    int lossk_##name##_f32_baseline(args *a); int lossk_##name##_f64_baseline(args *a);
#define FORWARD(name, sfx, args) \
    int lossk_##name##_##sfx(args *a) { return lossk_##name##_##sfx##_baseline(a); }
static int detect_isa(void) { return ISA_BASELINE; }
#endif

#define DEFINE_ENTRY(name, args) FORWARD(name, f32, args) FORWARD(name, f64, args)
LOSSK_KERNELS(DECLARE_VARIANTS)
LOSSK_KERNELS(DEFINE_ENTRY)

__attribute__((constructor)) static void choose_isa(void)
{
    const int best = detect_isa();
    const char *want = getenv("LOSSK_ISA");
    isa = best;
    for (int i = 0; want && i < ISA_COUNT; i++)
        if (isa_built[i] && isa_level[i] <= isa_level[best] && strcmp(want, isa_names[i]) == 0)
            isa = i;
}

const char *lossk_isa(void) { return isa_names[isa]; }

static int num_threads; /* 0: OpenMP's default */

void lossk_set_num_threads(int n) { num_threads = n > 0 ? n : 0; }

int lossk_get_num_threads(void)
{
#ifdef _OPENMP
    return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

int lossk_threads_for(int64_t work)
{
    return work < (1 << 16) ? 1 : lossk_get_num_threads();
}
