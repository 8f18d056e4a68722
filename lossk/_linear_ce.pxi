# Included by _core.pyx: the binding of the chunked linear + cross-entropy kernel.

cdef int64_t _chunk_rows(object chunk_size, int64_t n, int64_t d, int64_t v, int64_t itemsize) except -1:
    """chunk_size checked, or the default: the most rows, in multiples of 16 (at least 16), whose
    work memory (2 v + d values a row) is at most an eighth of the whole logits' and 256 MiB."""
    if chunk_size is None:
        budget = min(n * v * itemsize // 8, 256 << 20)
        rows = max(16, budget // ((2 * v + d) * itemsize) // 16 * 16)
        return max(1, min(rows, n))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size: expected an int or None, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive number of rows, got {chunk_size}")
    return min(chunk_size, max(n, 1))


def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=-100, double label_smoothing=0.0, chunk_size=None, grad_output=1.0,
                         int mode=LOSS):
    """cross_entropy(input @ linear_weight.T + linear_bias, target), `chunk_size` rows at a time:
    the loss (mode LOSS), the gradients (grad_input, grad_linear_weight, grad_linear_bias or None)
    (GRAD, scaled by grad_output), or both (BOTH)."""
    input, linear_weight, target = _array(input, "input"), _array(linear_weight, "linear_weight"), _array(target, "target")
    linear_bias, weight = _array(linear_bias, "linear_bias"), _array(weight, "weight")
    grad_output = _array(grad_output, "grad_output")
    x = _float_input(input)
    if x.ndim not in (1, 2):
        raise ValueError(f"input: expected shape (in_features,) or (N, in_features), got {x.shape}")
    w = _float_input(linear_weight, "linear_weight")
    if w.dtype != x.dtype:
        raise TypeError(f"linear_weight: expected dtype {x.dtype} like input, got {w.dtype}")
    if w.ndim != 2 or w.shape[1] != x.shape[x.ndim - 1] or w.shape[0] == 0:
        raise ValueError(f"linear_weight: expected shape (num_classes, {x.shape[x.ndim - 1]}) with num_classes >= 1 for "
                         f"input of shape {x.shape}, got {w.shape}")
    cdef int red = _reduction(reduction, REDUCTIONS)
    if not (0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index: expected an int, got {type(ignore_index).__name__}")
    cdef int64_t ignore
    try:
        ignore = ignore_index
    except OverflowError:
        raise ValueError(f"ignore_index: {ignore_index} does not fit in 64 bits") from None
    cdef bint unbatched = x.ndim == 1
    cdef int64_t N = 1 if unbatched else x.shape[0], D = x.shape[x.ndim - 1], V = w.shape[0]
    loss_shape = () if unbatched else (N,)
    tarr = target if isinstance(target, np.ndarray) else np.asarray(target)
    if cnp.PyArray_ISFLOAT(<cnp.ndarray>tarr):
        raise TypeError("target: linear_cross_entropy takes class indices of an integer dtype; for class "
                        "probabilities, compute the logits and use cross_entropy")
    if not cnp.PyArray_ISINTEGER(<cnp.ndarray>tarr):
        raise TypeError(f"target: expected class indices of an integer dtype, got dtype {tarr.dtype}")
    if tarr.shape != loss_shape:
        raise ValueError(f"target: expected class indices of shape {loss_shape} for input of shape {x.shape}, "
                         f"got {tarr.shape}")
    t = _class_indices(tarr)
    b = cw = None
    if linear_bias is not None:
        b = _same_dtype(linear_bias, x, "linear_bias")
        if b.shape != (V,):
            raise ValueError(f"linear_bias: expected shape ({V},), one bias per class, got {b.shape}")
    if weight is not None:
        cw = _like(weight, x, "weight")
        if cw.shape != (V,):
            raise ValueError(f"weight: expected shape ({V},), one weight per class, got {cw.shape}")
    cdef int64_t rows = _chunk_rows(chunk_size, N, D, V, x.itemsize)
    cdef double scale = 1.0
    go = None
    if mode == GRAD:
        go = _grad_output(grad_output, x, loss_shape, red == 0, &scale)
    x, w = _native_c(x), _native_c(w)

    cdef lossk_linear_ce_args a
    memset(&a, 0, sizeof(a))
    a.n, a.d, a.v, a.chunk = N, D, V, rows
    a.input, a.linear_weight, a.linear_bias = _ptr(x), _ptr(w), _ptr(b)
    a.target = <const int64_t *>_ptr(t)
    a.weight = _ptr(cw)
    a.ignore_index = ignore
    a.label_smoothing = label_smoothing
    a.reduction = LOSSK_REDUCTION_NONE if red == 0 else LOSSK_REDUCTION_SUM
    a.mean_by_weight = 1 if red == 1 else 0
    a.divisor = 1.0
    a.grad_scale = scale
    a.bad_index = -1
    loss = dx = dw = db = None
    if mode & LOSS:
        loss = np.empty(loss_shape if red == 0 else (), x.dtype)
        a.loss = _ptr(loss)
    if mode & GRAD:
        dx, dw = _empty_like(x), _empty_like(w)
        db = None if b is None else np.empty(V, x.dtype)
        a.grad_input, a.grad_linear_weight, a.grad_linear_bias = _ptr(dx), _ptr(dw), _ptr(db)
    a.grad_output = _ptr(go)
    cdef linear_ce_kernel fn = lossk_linear_cross_entropy_f32 if x.dtype == np.float32 else lossk_linear_cross_entropy_f64
    cdef int err = fn(&a)
    _check(err)
    work = np.empty(a.work_size, np.uint8)
    a.work = _ptr(work)
    with nogil:
        err = fn(&a)
    if err == LOSSK_ERR_TARGET:
        _raise(err, "target", t.reshape(loss_shape), a.bad_index,
               f"class indices must be in [0, {V}) or equal ignore_index ({ignore_index})")
    _check(err)
    del work
    value = loss if red == 0 else (None if loss is None else loss[()])
    grads = (dx, dw, db)
    return value if mode == LOSS else grads if mode == GRAD else (value, grads)
