/* Template part of layers_impl.h: the fully connected layer (forward and backward) and ReLU, each
 * a few lines over gemm_impl.h's products or one vectorised loop. */

/* ---- linear ---------------------------------------------------------------------------------- */

/* The weight is read as it is, in dot products along I (gemm_nt), when I >= 4 N; else transposed
 * once for the outer-product GEMM, which needs no horizontal sums but pays O I for the transpose: with few rows, the transpose
 * costs more than the sums it saves. */
int LOSSK_ISA_NAME(FN(lossk_linear_forward))(lossk_linear_args *a)
{
    if (a->n < 0 || a->in < 1 || a->out < 1 || !a->input || !a->weight || !a->output)
        return LOSSK_ERR_ARGUMENT;
    const int64_t N = a->n, I = a->in, O = a->out;
    const int dots = I >= 4 * N;
    const int64_t work_size = dots ? 0 : (int64_t)sizeof(T) * I * O;
    if (!a->work) {
        a->work_size = work_size;
        return LOSSK_OK;
    }
    if (a->work_size < work_size)
        return LOSSK_ERR_ARGUMENT;
    const T *x = a->input, *w = a->weight, *bias = a->bias;
    T *y = a->output, *wt = a->work;
    const int nt = lossk_threads_for(N * I * O / 16);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = THREAD_ID(), nth = NUM_THREADS();
        if (!dots) {
            const product_part s = split_product(I, 0, 1, t, nth);
            FN(transpose)(O, s.r1 - s.r0, w + s.r0, I, wt + s.r0 * O, O);
        }
        const product_part p = split_product(N, O, dots ? NT_NR : VL, t, nth);
        for (int64_t i = p.r0; i < p.r1; i++)
            for (int64_t o = p.c0; o < p.c1; o++)
                y[i * O + o] = bias ? bias[o] : 0;
        if (dots)
            FN(gemm_nt)(p.r1 - p.r0, p.c1 - p.c0, I, x + p.r0 * I, I, w + p.c0 * I, I, NULL, NULL, 0, 0,
                        y + p.r0 * O + p.c0, O, 1);
        else {
#pragma omp barrier
            FN(gemm)(p.r1 - p.r0, p.c1 - p.c0, I, x + p.r0 * I, I, 1, wt + p.c0, O, y + p.r0 * O + p.c0, O, 1);
        }
    }
    return LOSSK_OK;
}

int LOSSK_ISA_NAME(FN(lossk_linear_backward))(lossk_linear_args *a)
{
    if (a->n < 0 || a->in < 1 || a->out < 1 || !a->grad_output || (a->grad_input && !a->weight)
        || (a->grad_weight && !a->input))
        return LOSSK_ERR_ARGUMENT;
    if (!a->work) {
        a->work_size = 0;
        return LOSSK_OK;
    }
    const int64_t I = a->in, O = a->out, N = a->n;
    const T *x = a->input, *w = a->weight, *dy = a->grad_output;
    T *dx = a->grad_input, *dw = a->grad_weight, *db = a->grad_bias;
    const int nt = lossk_threads_for(N * I * O / 16);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = THREAD_ID(), nth = NUM_THREADS();
        if (dx) {
            const product_part p = split_product(N, I, VL, t, nth);
            FN(gemm)(p.r1 - p.r0, p.c1 - p.c0, O, dy + p.r0 * O, O, 1, w + p.c0, I, dx + p.r0 * I + p.c0, I, 0);
        }
        if (dw) {
            const product_part p = split_product(O, I, VL, t, nth);
            FN(gemm)(p.r1 - p.r0, p.c1 - p.c0, N, dy + p.r0, 1, O, x + p.c0, I, dw + p.r0 * I + p.c0, I, 1);
        }
        if (db) {
            const product_part p = split_product(O, 0, 1, t, nth);
            for (int64_t o = p.r0; o < p.r1; o++) {
                T sum = 0;
                for (int64_t i = 0; i < N; i++)
                    sum += dy[i * O + o];
                db[o] += sum;
            }
        }
    }
    return LOSSK_OK;
}

/* ---- relu ------------------------------------------------------------------------------------ */

int LOSSK_ISA_NAME(FN(lossk_relu_forward))(lossk_relu_args *a)
{
    if (a->n < 0 || !a->input || !a->output)
        return LOSSK_ERR_ARGUMENT;
    const T *restrict x = a->input;
    T *restrict y = a->output;
    const int nt = lossk_threads_for(a->n / 4);
    /* `if (parallel : ...)`: a plain `if` applies to the simd construct too, and below the
     * threads' threshold it ran one element at a time (3.5 ns each, 20 times NumPy's maximum);
     * nan passes, as in PyTorch */
#pragma omp parallel for simd schedule(static) num_threads(nt) if (parallel : nt > 1)
    for (int64_t i = 0; i < a->n; i++) {
        const T v = x[i];
        y[i] = (v > 0) | (v != v) ? v : 0;
    }
    return LOSSK_OK;
}

int LOSSK_ISA_NAME(FN(lossk_relu_backward))(lossk_relu_args *a)
{
    if (a->n < 0 || !a->output || !a->grad_output || !a->grad_input)
        return LOSSK_ERR_ARGUMENT;
    const T *restrict y = a->output, *restrict dy = a->grad_output;
    T *restrict dx = a->grad_input;
    const int nt = lossk_threads_for(a->n / 4);
#pragma omp parallel for simd schedule(static) num_threads(nt) if (parallel : nt > 1)
    for (int64_t i = 0; i < a->n; i++)
        dx[i] = y[i] <= 0 ? 0 : dy[i];
    return LOSSK_OK;
}
