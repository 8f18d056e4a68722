# The boosting objectives' binding (included by _core.pyx): gradient and hessian, no reduction.

cdef object _per_sample(object a, str name, object x, tuple shape):
    """y_true or sample_weight as a contiguous array of x's dtype and the given shape."""
    arr = _array(a, name)
    arr = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, one value per sample, got {arr.shape}")
    return _native_c(np.asarray(arr, dtype=x.dtype))


def gbdt(raw_prediction, y_true, *, int64_t kernel, sample_weight=None, double param=0.0, double param2=0.0,
         double hess_scale=1.0, double hess_floor=-np.inf, bint floor_weighted=True, bint classes=False):
    """(gradient, hessian) of the boosting objective `kernel` (a kernel_id), shaped like
    raw_prediction: of any shape with y_true and sample_weight of that shape, or (classes)
    (n_samples, n_classes) with y_true and sample_weight of shape (n_samples,)."""
    _checked_kernel(kernel, "gbdt")
    x = _native_c(_float_input(_array(raw_prediction, "raw_prediction"), "raw_prediction"))
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>x), k = 1
    if classes:
        if x.ndim != 2 or x.shape[1] == 0:
            raise ValueError(f"raw_prediction: expected shape (n_samples, n_classes), got {x.shape}")
        n, k = x.shape[0], x.shape[1]
    shape = (n,) if classes else x.shape
    y = _per_sample(y_true, "y_true", x, shape)
    w = None if sample_weight is None else _per_sample(sample_weight, "sample_weight", x, shape)
    gradient, hessian = _empty_like(x), _empty_like(x)
    cdef lossk_gbdt_args a
    a.n, a.k = n, k
    a.raw_prediction, a.y_true, a.sample_weight = _ptr(x), _ptr(y), _ptr(w)
    a.param, a.param2, a.hess_scale, a.hess_floor = param, param2, hess_scale, hess_floor
    a.floor_weighted = floor_weighted
    a.gradient, a.hessian = _ptr(gradient), _ptr(hessian)
    a.bad_index = -1
    cdef bint f32 = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    cdef gbdt_kernel fn = <gbdt_kernel>(lossk_kernel_table[kernel].f32 if f32 else lossk_kernel_table[kernel].f64)
    cdef int err
    with nogil:
        err = fn(&a)
    if err == LOSSK_ERR_TARGET:
        raise ValueError(f"y_true: expected class indices 0..{k - 1}; y_true[{a.bad_index}] is "
                         f"{y.reshape(-1)[a.bad_index]}")
    if err != LOSSK_OK:
        _raise(err, "raw_prediction", x, a.bad_index, "")
    return gradient, hessian
