/* A/B timing of two builds of the kernels in one process: variant A and variant B of every kernel
 * (the same sources at two revisions, compiled with LOSSK_ISA=A and LOSSK_ISA=B, see run.sh) are
 * called alternately on the same arrays, each call right after a 256 MiB write that evicts the
 * caches (AB_KEEP_CACHE=1 in the environment: no eviction, for calls on cache-resident data). On a shared machine whose speed drifts within seconds, the median of the per-pair ratios
 * B/A is what to read; the times themselves move with the machine's load.
 *
 * usage: ab_kernels [CASES [PAIRS]]   CASES: comma-separated names (default: all), PAIRS: 15
 * The layer cases (conv*, pool*) run the convolutions with algo auto, as lossk.nn does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "lossk.h"

/* what dispatch.c provides to the kernels, which this program links without it */
int lossk_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
int lossk_threads_for(int64_t work) { return work < (1 << 16) ? 1 : lossk_get_num_threads(); }

#define DECLARE_AB(name, args) \
    int lossk_##name##_f32_A(args *); int lossk_##name##_f64_A(args *); \
    int lossk_##name##_f32_B(args *); int lossk_##name##_f64_B(args *);
LOSSK_KERNELS(DECLARE_AB)

typedef int (*ew_fn)(lossk_elementwise_args *);
typedef int (*class_fn)(lossk_class_args *);

/* kernel name -> {A f32, A f64, B f32, B f64} */
#define VARIANTS(name) {lossk_##name##_f32_A, lossk_##name##_f64_A, lossk_##name##_f32_B, lossk_##name##_f64_B}

static const struct {
    const char *name;
    ew_fn fn[4];
    double param;
    int unit_input; /* input in [0, 1] (BCE), else standard normal */
    int check_only; /* the domain check alone, no outputs */
    int log_target; /* target in (-4, 0] (log-probabilities), else in [0, 1) */
} ew_cases[] = {
    {"l1", VARIANTS(l1), 0, 0, 0, 0},
    {"mse", VARIANTS(mse), 0, 0, 0, 0},
    {"smooth_l1", VARIANTS(smooth_l1), 1, 0, 0, 0},
    {"huber", VARIANTS(huber), 1, 0, 0, 0},
    {"bce", VARIANTS(binary_cross_entropy), 0, 1, 0, 0},
    {"bce_check", VARIANTS(check_unit_interval), 0, 1, 1, 0},
    {"bce_logits", VARIANTS(binary_cross_entropy_with_logits), 0, 0, 0, 0},
    {"kl_div", VARIANTS(kl_div), 0, 0, 0, 0},
    {"kl_div_log_target", VARIANTS(kl_div), 1, 0, 0, 1},
};

static const struct {
    const char *name;
    class_fn fn[4];
    int64_t n, c, s;
    int grad_only;
    double label_smoothing;
    int prob; /* probability targets (fn is cross_entropy_prob) */
} class_cases[] = {
    {"cross_entropy", VARIANTS(cross_entropy), 8192, 1000, 1, 0},
    {"cross_entropy_spatial", VARIANTS(cross_entropy), 16, 21, 128 * 128, 0},
    {"cross_entropy_spatial_l2", VARIANTS(cross_entropy), 4, 21, 3072, 0}, /* 1 MiB: the L2's size */
    /* planes off the vector and cache-line boundaries */
    {"cross_entropy_spatial_odd", VARIANTS(cross_entropy), 16, 21, 128 * 128 - 1, 0},
    {"cross_entropy_spatial_c2", VARIANTS(cross_entropy), 64, 2, 256 * 256, 0}, /* binary segmentation */
    {"cross_entropy_c21", VARIANTS(cross_entropy), 262144, 21, 1, 0},
    {"cross_entropy_c10", VARIANTS(cross_entropy), 262144, 10, 1, 0},
    {"cross_entropy_c2", VARIANTS(cross_entropy), 1048576, 2, 1, 0},
    {"cross_entropy_c5", VARIANTS(cross_entropy), 524288, 5, 1, 0},
    {"cross_entropy_c16", VARIANTS(cross_entropy), 262144, 16, 1, 0},
    {"cross_entropy_c32", VARIANTS(cross_entropy), 131072, 32, 1, 0},
    {"cross_entropy_c128", VARIANTS(cross_entropy), 32768, 128, 1, 0},
    {"cross_entropy_c10_ls", VARIANTS(cross_entropy), 262144, 10, 1, 0, 0.1},
    {"cross_entropy_prob_c10", VARIANTS(cross_entropy_prob), 262144, 10, 1, 0, 0, 1},
    {"cross_entropy_prob_c64", VARIANTS(cross_entropy_prob), 65536, 64, 1, 0, 0, 1},
    {"cross_entropy_c100", VARIANTS(cross_entropy), 65536, 100, 1, 0},
    {"cross_entropy_small", VARIANTS(cross_entropy), 64, 10, 1, 0}, /* one thread: below the work threshold */
    {"nll", VARIANTS(nll), 8192, 1000, 1, 0},
    {"nll_c2", VARIANTS(nll), 1048576, 2, 1, 0},
    {"nll_c10", VARIANTS(nll), 262144, 10, 1, 0},
    {"nll2d", VARIANTS(nll), 8, 21, 256 * 256, 0},
    {"nll2d_grad", VARIANTS(nll), 8, 21, 256 * 256, 1},
    {"nll2d_odd", VARIANTS(nll), 8, 21, 256 * 256 - 1, 0},
    {"nll2d_c2", VARIANTS(nll), 64, 2, 256 * 256, 0},
    {"nll2d_odd_grad", VARIANTS(nll), 8, 21, 256 * 256 - 1, 1},
};

/* Layers, batch 64, algo auto: each convolution shape as forward, input and weight gradients, some
 * also max-pooled 2x2 as lossk.nn's fused conv + pool runs them: the forward with and without
 * (LAYER_INFER, as under no_grad) the argmax, and the gradients through it. */
enum { LAYER_FWD, LAYER_INFER, LAYER_DX, LAYER_DW, LAYER_POOL, LAYER_UNPOOL };
typedef int (*conv_fn)(lossk_conv2d_args *);
typedef int (*pool_fn)(lossk_pool2d_args *);
#define CONV_CASE(name, c, k, h, r, pad) \
    {name "_fwd", LAYER_FWD, VARIANTS(conv2d_forward), c, k, h, r, pad}, \
    {name "_dx", LAYER_DX, VARIANTS(conv2d_backward_input), c, k, h, r, pad}, \
    {name "_dw", LAYER_DW, VARIANTS(conv2d_backward_weight), c, k, h, r, pad}
#define POOLED_CASE(name, c, k, h, r, pad) \
    {name "_pooled_fwd", LAYER_FWD, VARIANTS(conv2d_forward), c, k, h, r, pad, 1}, \
    {name "_pooled_infer", LAYER_INFER, VARIANTS(conv2d_forward), c, k, h, r, pad, 1}, \
    {name "_pooled_dx", LAYER_DX, VARIANTS(conv2d_backward_input), c, k, h, r, pad, 1}, \
    {name "_pooled_dw", LAYER_DW, VARIANTS(conv2d_backward_weight), c, k, h, r, pad, 1}
static const struct {
    const char *name;
    int op;
    void *fn[4];
    int64_t c, k, h, r, pad; /* max_pool2d: k 0, c planes of h x h, 2x2 windows */
    int pooled;
} layer_cases[] = {
    CONV_CASE("conv5x5_first", 3, 32, 32, 5, 2), /* the tutorial network's layers */
    CONV_CASE("conv5x5_c32_16", 32, 32, 16, 5, 2),
    CONV_CASE("conv5x5_c32_8", 32, 64, 8, 5, 2),
    CONV_CASE("conv3x3_c32_16", 32, 32, 16, 3, 1),
    CONV_CASE("conv3x3_c32_12", 32, 32, 12, 3, 1),
    CONV_CASE("conv3x3_c64_8", 64, 64, 8, 3, 1),
    CONV_CASE("conv3x3_c16_7", 16, 24, 7, 3, 1),
    CONV_CASE("conv3x3_c128_4", 128, 128, 4, 3, 1), /* one tile per image; large partial sums */
    CONV_CASE("conv5x5_c3_6_32", 3, 6, 32, 5, 0), /* PyTorch's tutorial network: rows of 28 and 10 */
    CONV_CASE("conv5x5_c6_16_14", 6, 16, 14, 5, 0),
    {"pool_32", LAYER_POOL, VARIANTS(max_pool2d_forward), 32, 0, 32, 2, 0},
    {"pool_16", LAYER_POOL, VARIANTS(max_pool2d_forward), 32, 0, 16, 2, 0},
    {"pool_8", LAYER_POOL, VARIANTS(max_pool2d_forward), 64, 0, 8, 2, 0},
    {"pool_28", LAYER_POOL, VARIANTS(max_pool2d_forward), 64, 0, 28, 2, 0},
    /* max_pool2d's forward without the argmax, and its backward, of the argmax the forward found */
    {"pool_32_infer", LAYER_INFER, VARIANTS(max_pool2d_forward), 32, 0, 32, 2, 0},
    {"pool_28_infer", LAYER_INFER, VARIANTS(max_pool2d_forward), 64, 0, 28, 2, 0},
    {"unpool_32", LAYER_UNPOOL, VARIANTS(max_pool2d_backward), 32, 0, 32, 2, 0},
    {"unpool_16", LAYER_UNPOOL, VARIANTS(max_pool2d_backward), 32, 0, 16, 2, 0},
    {"unpool_8", LAYER_UNPOOL, VARIANTS(max_pool2d_backward), 64, 0, 8, 2, 0},
    {"unpool_28", LAYER_UNPOOL, VARIANTS(max_pool2d_backward), 64, 0, 28, 2, 0},
    POOLED_CASE("conv5x5_first", 3, 32, 32, 5, 2), /* lossk's CIFAR-10 network, as it trains */
    POOLED_CASE("conv5x5_c32_16", 32, 32, 16, 5, 2),
    POOLED_CASE("conv5x5_c32_8", 32, 64, 8, 5, 2),
    POOLED_CASE("conv5x5_c3_6_32", 3, 6, 32, 5, 0), /* PyTorch's tutorial network, as it trains */
    POOLED_CASE("conv5x5_c6_16_14", 6, 16, 14, 5, 0),
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void) /* [0, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1p-53;
}
static double normal(void) /* mean 0, variance 1, bell-shaped enough for timing (Irwin-Hall, 4 terms) */
{
    return (uniform() + uniform() + uniform() + uniform() - 2) * 1.7320508075688772;
}

static double log_probability(void) { return -4 * uniform(); }

static void *fill(size_t n, int f64, double (*draw)(void))
{
    void *p = aligned_alloc(64, (n * (f64 ? 8 : 4) + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++)
        if (f64)
            ((double *)p)[i] = draw();
        else
            ((float *)p)[i] = (float)draw();
    return p;
}

static int keep_cache; /* AB_KEEP_CACHE=1 in the environment: no eviction between calls */
static unsigned char *evict_buf;
static const size_t evict_bytes = (size_t)256 << 20;

static void evict(void)
{
#pragma omp parallel for
    for (size_t i = 0; i < evict_bytes; i += 64)
        evict_buf[i]++;
}

static int wanted(const char *list, const char *name)
{
    if (!list)
        return 1;
    size_t len = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += len)
        if ((p == list || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
            return 1;
    return 0;
}

/* PAIRS pairs of calls, A first in even pairs and B first in odd ones. */
typedef int (*call_fn)(void *fn, void *args);
static void time_pairs(const char *label, call_fn call, void *fa, void *fb, void *args, int pairs)
{
    double ta[pairs], tb[pairs], ratio[pairs];
    for (int k = 0; k < pairs; k++)
        for (int v = 0; v < 2; v++) {
            const int is_a = (v ^ (k & 1)) == 0;
            if (!keep_cache)
                evict();
            double t = now();
            if (call(is_a ? fa : fb, args) != LOSSK_OK) {
                if (!is_a) { /* the working tree's kernels must run every case */
                    fprintf(stderr, "%s: B's kernel failed\n", label);
                    exit(1);
                }
                printf("%-46s A's kernel refused it (a case it predates?): skipped\n", label);
                return;
            }
            t = now() - t;
            (is_a ? ta : tb)[k] = t;
        }
    for (int k = 0; k < pairs; k++)
        ratio[k] = tb[k] / ta[k];
    qsort(ta, pairs, sizeof *ta, by_value);
    qsort(tb, pairs, sizeof *tb, by_value);
    qsort(ratio, pairs, sizeof *ratio, by_value);
    printf("%-46s A %9.4f ms (min %9.4f)   B %9.4f ms (min %9.4f)   B/A %.3f\n", label, 1e3 * ta[pairs / 2],
           1e3 * ta[0], 1e3 * tb[pairs / 2], 1e3 * tb[0], ratio[pairs / 2]);
    fflush(stdout);
}

static int call_ew(void *fn, void *args) { return ((ew_fn)fn)(args); }
static int call_class(void *fn, void *args) { return ((class_fn)fn)(args); }
static int call_pool(void *fn, void *args) { return ((pool_fn)fn)(args); }

/* a convolution call with the scratch its own revision asks for */
struct conv_call {
    lossk_conv2d_args a;
    void *work[2];
    int64_t size[2];
    void *fn[2];
};
static int call_conv(void *fn, void *args)
{
    struct conv_call *cc = args;
    const int side = fn == cc->fn[1];
    cc->a.work = cc->work[side];
    cc->a.work_size = cc->size[side];
    return ((conv_fn)fn)(&cc->a);
}

int main(int argc, char **argv)
{
    const char *list = argc > 1 && strcmp(argv[1], "all") != 0 ? argv[1] : NULL;
    const int pairs = argc > 2 ? atoi(argv[2]) : 15;
    if (pairs < 1) {
        fprintf(stderr, "usage: %s [CASES|all [PAIRS]]\n", argv[0]);
        return 2;
    }
    keep_cache = getenv("AB_KEEP_CACHE") && strcmp(getenv("AB_KEEP_CACHE"), "1") == 0;
    evict_buf = calloc(evict_bytes, 1);
    printf("median of %d pairs; B/A: the median of the pairs' ratios\n", pairs);
    for (int f64 = 0; f64 < 2; f64++) {
        const char *dtype = f64 ? "float64" : "float32";
        char label[80];
        for (size_t i = 0; i < sizeof ew_cases / sizeof *ew_cases; i++) {
            if (!wanted(list, ew_cases[i].name))
                continue;
            const int64_t n = (int64_t)16384 * 1024;
            void *x = fill((size_t)n, f64, ew_cases[i].unit_input ? uniform : normal);
            void *y = fill((size_t)n, f64, ew_cases[i].log_target ? log_probability : uniform);
            void *grad = fill((size_t)n, f64, uniform);
            double loss;
            lossk_elementwise_args a = {.n = n, .input = x, .target = y, .param = ew_cases[i].param,
                                        .reduction = LOSSK_REDUCTION_SUM, .divisor = (double)n,
                                        .loss = ew_cases[i].check_only ? NULL : &loss,
                                        .grad = ew_cases[i].check_only ? NULL : grad, .grad_scale = 1.0 / (double)n};
            snprintf(label, sizeof label, "%s %s (16384, 1024)", ew_cases[i].name, dtype);
            time_pairs(label, call_ew, (void *)ew_cases[i].fn[f64], (void *)ew_cases[i].fn[2 + f64], &a, pairs);
            free(x);
            free(y);
            free(grad);
        }
        for (size_t i = 0; i < sizeof class_cases / sizeof *class_cases; i++) {
            if (!wanted(list, class_cases[i].name))
                continue;
            const int64_t N = class_cases[i].n, C = class_cases[i].c, S = class_cases[i].s;
            void *x = fill((size_t)(N * C * S), f64, normal);
            void *grad = fill((size_t)(N * C * S), f64, uniform);
            int64_t *t = malloc((size_t)(N * S) * sizeof *t);
            for (int64_t j = 0; j < N * S; j++)
                t[j] = (int64_t)(uniform() * (double)C);
            void *tp = class_cases[i].prob ? fill((size_t)(N * C * S), f64, uniform) : NULL;
            double loss;
            lossk_class_args a = {.n = N, .c = C, .s = S, .input = x, .target = tp ? NULL : t, .target_prob = tp,
                                  .label_smoothing = class_cases[i].label_smoothing, .ignore_index = -100,
                                  .reduction = LOSSK_REDUCTION_SUM, .divisor = (double)(N * S),
                                  .loss = class_cases[i].grad_only ? NULL : &loss, .grad = grad,
                                  .grad_scale = 1.0 / (double)(N * S)};
            if (S == 1)
                snprintf(label, sizeof label, "%s %s (%lld, %lld)", class_cases[i].name, dtype, (long long)N,
                         (long long)C);
            else
                snprintf(label, sizeof label, "%s %s (%lld, %lld, %lld)", class_cases[i].name, dtype, (long long)N,
                         (long long)C, (long long)S);
            time_pairs(label, call_class, (void *)class_cases[i].fn[f64], (void *)class_cases[i].fn[2 + f64], &a,
                       pairs);
            free(x);
            free(grad);
            free(t);
            free(tp);
        }
        for (size_t i = 0; i < sizeof layer_cases / sizeof *layer_cases; i++) {
            if (!wanted(list, layer_cases[i].name))
                continue;
            const int64_t N = 64, C = layer_cases[i].c, K = layer_cases[i].k, H = layer_cases[i].h;
            const int64_t R = layer_cases[i].r, P = H + 2 * layer_cases[i].pad - R + 1;
            void *fa = layer_cases[i].fn[f64], *fb = layer_cases[i].fn[2 + f64];
            if (layer_cases[i].k == 0) { /* max_pool2d */
                void *x = fill((size_t)(N * C * H * H), f64, normal), *y = fill((size_t)(N * C * H * H / 4), f64, normal);
                int64_t *idx = malloc((size_t)(N * C * H * H / 4) * sizeof *idx);
                lossk_pool2d_args a = {.n = N, .c = C, .h = H, .w = H, .kh = 2, .kw = 2, .stride_h = 2, .stride_w = 2,
                                       .p = H / 2, .q = H / 2, .input = x, .output = y, .indices = idx};
                if (layer_cases[i].op == LAYER_INFER)
                    a.indices = NULL;
                if (layer_cases[i].op == LAYER_UNPOOL) { /* the forward's argmax; y is then the gradient */
                    ((pool_fn)(f64 ? lossk_max_pool2d_forward_f64_A : lossk_max_pool2d_forward_f32_A))(&a);
                    a.input = a.output = NULL;
                    a.grad_output = y;
                    a.grad_input = x;
                }
                snprintf(label, sizeof label, "%s %s (64, %lld, %lld, %lld)", layer_cases[i].name, dtype, (long long)C,
                         (long long)H, (long long)H);
                time_pairs(label, call_pool, fa, fb, &a, pairs);
                free(x);
                free(y);
                free(idx);
                continue;
            }
            void *x = fill((size_t)(N * C * H * H), f64, normal), *dx = fill((size_t)(N * C * H * H), f64, normal);
            void *w = fill((size_t)(K * C * R * R), f64, normal), *dw = fill((size_t)(K * C * R * R), f64, normal);
            void *y = fill((size_t)(N * K * P * P), f64, normal), *dy = fill((size_t)(N * K * P * P), f64, normal);
            int64_t *idx = malloc((size_t)(N * K * P * P) * sizeof *idx);
            struct conv_call cc = {.a = {.n = N, .c = C, .h = H, .w = H, .k = K, .r = R, .s = R, .stride_h = 1,
                                         .stride_w = 1, .pad_h = layer_cases[i].pad, .pad_w = layer_cases[i].pad,
                                         .p = P, .q = P, .algo = LOSSK_CONV_AUTO, .input = x, .weight = w,
                                         .output = y, .grad_output = dy, .grad_input = dx, .grad_weight = dw},
                                   .fn = {fa, fb}};
            if (layer_cases[i].pooled) { /* the pooled forward's argmax, as the backward passes get it */
                conv_fn forward = f64 ? lossk_conv2d_forward_f64_A : lossk_conv2d_forward_f32_A;
                lossk_conv2d_args fw = cc.a;
                fw.pool = 1;
                fw.indices = idx;
                fw.work = NULL;
                forward(&fw);
                fw.work = malloc((size_t)fw.work_size);
                if (forward(&fw) != LOSSK_OK) {
                    fprintf(stderr, "%s: the pooled forward failed\n", layer_cases[i].name);
                    return 1;
                }
                free(fw.work);
                cc.a.pool = 1;
                cc.a.indices = layer_cases[i].op == LAYER_INFER ? NULL : idx;
            }
            snprintf(label, sizeof label, "%s %s (64, %lld->%lld, %lldx%lld)", layer_cases[i].name, dtype,
                     (long long)C, (long long)K, (long long)H, (long long)H);
            int refused = 0;
            for (int side = 0; side < 2 && !refused; side++) { /* the scratch size query: work NULL */
                cc.a.work = NULL;
                if (((conv_fn)cc.fn[side])(&cc.a) != LOSSK_OK) {
                    if (side) {
                        fprintf(stderr, "%s: B's size query failed\n", label);
                        return 1;
                    }
                    refused = 1;
                }
                cc.size[side] = cc.a.work_size;
                cc.work[side] = malloc((size_t)cc.size[side]);
            }
            if (refused)
                printf("%-46s A's kernel refused it (a case it predates?): skipped\n", label);
            else
                time_pairs(label, call_conv, fa, fb, &cc, pairs);
            free(cc.work[0]);
            free(cc.work[1]);
            free(x);
            free(dx);
            free(w);
            free(dw);
            free(y);
            free(dy);
            free(idx);
        }
    }
    free(evict_buf);
    return 0;
}
