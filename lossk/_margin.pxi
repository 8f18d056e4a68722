# The margin losses' binding (included by _core.pyx): a loss per row of the last axis.

cdef dict MARGIN_TARGETS = {"class": 0, "class_lists": 1, "values": 2}


def margin(input, target, reduction="mean", *, int64_t kernel, str targets, int p=1, double margin=1.0,
           weight=None, grad_output=1.0, int mode=LOSS, out=None, divisor=None, bint parts=False):
    """Loss and/or gradient of the margin loss `kernel` (a kernel_id), one loss per row of the
    input's last axis (the classes), with targets of the kind `targets`: "class" (a class index per
    row; input (C,) or (N, C)), "class_lists" (class indices shaped like the input, each row's list
    ended by -1) or "values" (shaped like the input, any number of leading axes); divisor: the divisor of reduction "mean"
    (None: these arrays' own count or weight; lossk.dask passes the whole array's for a chunk);
    parts: a reduced loss comes back as (sum, own divisor), floats, the sum in double before its
    division."""
    _checked_kernel(kernel, "margin")
    input, target, weight = _array(input, "input"), _array(target, "target"), _array(weight, "weight")
    grad_output, out = _array(grad_output, "grad_output"), _array(out, "out", True)
    cdef int kind = MARGIN_TARGETS[targets]
    x = _float_input(input)
    cdef int ndim = cnp.PyArray_NDIM(<cnp.ndarray>x)
    if kind == 2 and ndim == 0:
        raise ValueError("input: expected at least one axis (the classes, last), got a 0-d array")
    if kind != 2 and ndim != 1 and ndim != 2:
        raise ValueError(f"input: expected shape (C,) or (N, C), got {x.shape}")
    cdef int red = _reduction(reduction, REDUCTIONS)
    cdef int64_t C = x.shape[ndim - 1]
    if C == 0 and kind != 2:
        raise ValueError(f"input: the class dimension is empty (shape {x.shape})")
    loss_shape = x.shape[:-1]
    cdef int64_t N = 1
    for d in loss_shape:
        N *= d
    x = _native_c(x)

    t = tv = None
    if kind == 2:
        tv = _same_dtype(target, x, "target")
        if not _same_shape(<cnp.ndarray>tv, <cnp.ndarray>x):
            raise ValueError(f"target: expected shape {x.shape} like input, got {tv.shape}")
    else:
        tarr = target if isinstance(target, np.ndarray) else np.asarray(target)
        if not cnp.PyArray_ISINTEGER(<cnp.ndarray>tarr):
            raise TypeError(f"target: expected class indices of an integer dtype, got dtype {tarr.dtype}")
        want = loss_shape if kind == 0 else x.shape
        if tarr.shape != want:
            raise ValueError(f"target: expected class indices of shape {want} for input of shape {x.shape}, "
                             f"got {tarr.shape}")
        t = _class_indices(tarr)

    w = None
    cdef int64_t wp = 0
    if weight is not None and kind == 2:
        w = _periodic(weight, x, "weight", &wp)
        if N * C == 0:          # nothing to weigh
            w = None
        elif wp % C != 0:       # one value for every element: as one row of them
            w = np.full(C, w[0], x.dtype)
            wp = C
    elif weight is not None:
        w = _like(weight, x, "weight")
        if w.shape != (C,):
            raise ValueError(f"weight: expected shape ({C},), one weight per class, got {w.shape}")

    cdef lossk_margin_args a
    a.sum = 0
    a.n = N
    a.c = C
    a.input = cnp.PyArray_DATA(<cnp.ndarray>x)
    a.target = <const int64_t *>_ptr(t)
    a.target_values = _ptr(tv)
    a.weight = _ptr(w)
    a.weight_period = wp
    a.margin = margin
    a.p = p
    a.reduction = LOSSK_REDUCTION_NONE if red == 0 else LOSSK_REDUCTION_SUM
    a.divisor = _whole(divisor, <double>N) if red == 1 else 1.0
    a.bad_index = -1

    cdef double scale
    loss, grad, go = _outputs(mode, out, red == 0, x, loss_shape, grad_output, [input, target, x, t, tv, w], &scale)
    a.loss, a.grad, a.grad_output = _ptr(loss), _ptr(grad), _ptr(go)
    a.grad_scale = scale / a.divisor if red == 1 else scale

    cdef bint f32 = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    cdef margin_kernel fn = <margin_kernel>(lossk_kernel_table[kernel].f32 if f32 else lossk_kernel_table[kernel].f64)
    cdef int err
    with nogil:
        err = fn(&a)
    if err != LOSSK_OK:
        _raise(err, "target", t, a.bad_index,
               f"class indices must be in [0, {C})" if kind == 0
               else f"class indices must be in [0, {C}), or -1 to end a row's list")
    return _result(mode, red == 0, loss, grad, (a.sum, <double>N if red == 1 else 1.0) if parts and mode & LOSS else None)
