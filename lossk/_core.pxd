# Declarations of src/lossk.h (the one public C header) for the binding, written once.
from libc.stdint cimport int64_t

cdef extern from "lossk.h" nogil:
    enum:
        LOSSK_OK
        LOSSK_ERR_ARGUMENT
        LOSSK_ERR_TARGET
        LOSSK_ERR_DOMAIN
        LOSSK_ERR_NOMEM
        LOSSK_REDUCTION_NONE
        LOSSK_REDUCTION_SUM

    ctypedef struct lossk_elementwise_args:
        int64_t n
        const void *input
        const void *target
        const void *weight
        int64_t weight_period
        const void *pos_weight
        int64_t pos_weight_period
        double param
        double param2
        int reduction
        double divisor
        double sum
        void *loss
        void *grad
        const void *grad_output
        double grad_scale
        int64_t bad_index
        int bad_target

    ctypedef struct lossk_class_args:
        int64_t n, c, s
        int spatial
        const void *input
        const int64_t *target
        const void *target_prob
        const void *weight
        int64_t ignore_index
        double label_smoothing
        int reduction
        int mean_by_weight
        double divisor
        double sum
        void *loss
        void *grad
        const void *grad_output
        double grad_scale
        double total_weight
        int64_t bad_index

    ctypedef struct lossk_margin_args:
        int64_t n, c
        const void *input
        const int64_t *target
        const void *target_values
        const void *weight
        int64_t weight_period
        double margin
        int p
        int reduction
        double divisor
        double sum
        void *loss
        void *grad
        const void *grad_output
        double grad_scale
        int64_t bad_index

    ctypedef struct lossk_multi_args:
        int64_t n, d, m
        const void *x[3]
        const void *target
        double margin
        double eps
        double p
        int full, swap
        int check_first
        int reduction
        double divisor
        double sum
        void *loss
        void *grad[3]
        const void *grad_output
        double grad_scale

    ctypedef struct lossk_ctc_args:
        int64_t t, n, c
        const void *log_probs
        const int64_t *targets
        int64_t targets_size
        const int64_t *target_offsets
        const int64_t *input_lengths
        const int64_t *target_lengths
        int64_t blank
        int zero_infinity
        int per_target_mean
        int reduction
        double divisor
        double sum
        void *loss
        void *grad
        const void *grad_output
        double grad_scale
        int64_t bad_index

    ctypedef struct lossk_gbdt_args:
        int64_t n, k
        const void *raw_prediction
        const void *y_true
        const void *sample_weight
        double param, param2
        double hess_scale, hess_floor
        int floor_weighted
        void *gradient
        void *hessian
        int64_t bad_index

    enum:
        LOSSK_CONV_AUTO
        LOSSK_CONV_DIRECT
        LOSSK_CONV_WINOGRAD

    ctypedef struct lossk_conv2d_args:
        int64_t n, c, h, w
        int64_t k, r, s
        int64_t stride_h, stride_w, pad_h, pad_w
        int64_t p, q
        int algo
        int pool
        const void *input
        const void *weight
        const void *bias
        void *output
        int64_t *indices
        const void *grad_output
        void *grad_input
        void *grad_weight
        void *grad_bias
        void *work
        int64_t work_size

    ctypedef struct lossk_pool2d_args:
        int64_t n, c, h, w
        int64_t kh, kw, stride_h, stride_w
        int64_t p, q
        const void *input
        void *output
        int64_t *indices
        const void *grad_output
        void *grad_input

    ctypedef struct lossk_linear_args:
        int64_t n, in_ "in", out
        const void *input
        const void *weight
        const void *bias
        void *output
        const void *grad_output
        void *grad_input
        void *grad_weight
        void *grad_bias
        void *work
        int64_t work_size

    ctypedef struct lossk_linear_ce_args:
        int64_t n, d, v, chunk
        const void *input
        const void *linear_weight
        const void *linear_bias
        const int64_t *target
        const void *weight
        int64_t ignore_index
        double label_smoothing
        int reduction
        int mean_by_weight
        double divisor
        double sum
        void *loss
        void *grad_input
        void *grad_linear_weight
        void *grad_linear_bias
        const void *grad_output
        double grad_scale
        double total_weight
        void *work
        int64_t work_size
        int64_t bad_index

    ctypedef struct lossk_relu_args:
        int64_t n
        const void *input
        void *output
        const void *grad_output
        void *grad_input

    # the layers' kernels, called by name (the losses' go through lossk_kernel_table)
    int lossk_conv2d_forward_f32(lossk_conv2d_args *a)
    int lossk_conv2d_forward_f64(lossk_conv2d_args *a)
    int lossk_conv2d_backward_input_f32(lossk_conv2d_args *a)
    int lossk_conv2d_backward_input_f64(lossk_conv2d_args *a)
    int lossk_conv2d_backward_weight_f32(lossk_conv2d_args *a)
    int lossk_conv2d_backward_weight_f64(lossk_conv2d_args *a)
    int lossk_max_pool2d_forward_f32(lossk_pool2d_args *a)
    int lossk_max_pool2d_forward_f64(lossk_pool2d_args *a)
    int lossk_max_pool2d_backward_f32(lossk_pool2d_args *a)
    int lossk_max_pool2d_backward_f64(lossk_pool2d_args *a)
    int lossk_linear_forward_f32(lossk_linear_args *a)
    int lossk_linear_forward_f64(lossk_linear_args *a)
    int lossk_linear_backward_f32(lossk_linear_args *a)
    int lossk_linear_backward_f64(lossk_linear_args *a)
    int lossk_linear_cross_entropy_f32(lossk_linear_ce_args *a)
    int lossk_linear_cross_entropy_f64(lossk_linear_ce_args *a)
    int lossk_relu_forward_f32(lossk_relu_args *a)
    int lossk_relu_forward_f64(lossk_relu_args *a)
    int lossk_relu_backward_f32(lossk_relu_args *a)
    int lossk_relu_backward_f64(lossk_relu_args *a)

    void lossk_set_num_threads(int n)
    int lossk_get_num_threads()
    const char *lossk_isa()

# The kernels of lossk.h's LOSSK_KERNELS by name (lossk/_kernel_table.h).
cdef extern from "_kernel_table.h" nogil:
    ctypedef void (*lossk_any_kernel)()
    ctypedef struct lossk_kernel_entry:
        const char *name
        const char *args
        lossk_any_kernel f32
        lossk_any_kernel f64
    const lossk_kernel_entry lossk_kernel_table[]
    const int64_t lossk_kernel_count

ctypedef int (*elementwise_kernel)(lossk_elementwise_args *) noexcept nogil
ctypedef int (*class_kernel)(lossk_class_args *) noexcept nogil
ctypedef int (*margin_kernel)(lossk_margin_args *) noexcept nogil
ctypedef int (*multi_kernel)(lossk_multi_args *) noexcept nogil
ctypedef int (*ctc_kernel)(lossk_ctc_args *) noexcept nogil
ctypedef int (*gbdt_kernel)(lossk_gbdt_args *) noexcept nogil
ctypedef int (*conv_kernel)(lossk_conv2d_args *) noexcept nogil
ctypedef int (*linear_kernel)(lossk_linear_args *) noexcept nogil
ctypedef int (*linear_ce_kernel)(lossk_linear_ce_args *) noexcept nogil
