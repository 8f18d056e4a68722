# The binding of the losses of several differentiable arrays (included by _core.pyx).

# The argument layouts of the multi-input losses: what the arrays are and how their shapes go.
cdef dict MULTI_LAYOUTS = {"pair": 0, "gaussian": 1, "rows_target": 2, "rows": 3}


cdef tuple _gaussian_var_layout(object var, tuple shape):
    """(n, d, m) of input `shape` with var broadcast along its middle d (PyTorch's rules: var shaped
    like the input, like it without its last axis, or like it but 1 in one axis)."""
    cdef int64_t size = 1
    for e in shape:
        size *= e
    vshape = var.shape
    if vshape == shape:
        return 1, 1, size
    axis = -1
    if vshape == shape[:-1] and len(shape) > 0:
        axis = len(shape) - 1
    elif len(vshape) == len(shape):
        differ = [k for k in range(len(shape)) if vshape[k] != shape[k]]
        if len(differ) == 1 and vshape[differ[0]] == 1:
            axis = differ[0]
    if axis < 0:
        raise ValueError(f"var: expected shape {shape} like input, {shape[:-1]} (one variance per row of the last "
                         f"axis) or {shape} with one axis of size 1, got {vshape}")
    cdef int64_t n = 1, m = 1
    for e in shape[:axis]:
        n *= e
    for e in shape[axis + 1:]:
        m *= e
    return n, shape[axis], m


cdef _negative_var(object var):
    bad = int(np.argmax(var.reshape(-1) < 0))
    pos = np.unravel_index(bad, var.shape) if var.ndim else ()
    raise ValueError(f"var: variances must not be negative; var[{', '.join(map(str, pos))}] is "
                     f"{var.reshape(-1)[bad].item()}")


def multi_input(tuple arrays, reduction="mean", *, int64_t kernel, str layout, tuple names, tuple differentiable,
                double margin=0.0, double eps=0.0, double p=2.0, bint full=False, bint swap=False,
                grad_output=1.0, int mode=LOSS, out=None, divisor=None, bint parts=False):
    """Loss and/or gradients of the multi-input loss `kernel` (a kernel_id) over `arrays` (named
    `names`, in the function's order), with gradients for the arrays at the indices `differentiable`
    (returned as a tuple in that order). layout: "pair" (arrays of one shape, a loss per element),
    "gaussian" (input, target, var: var broadcasts), "rows_target" (two (N, D) or (D,) arrays and a
    target per row) or "rows" (three arrays of one shape, a loss per row of the last axis); divisor: the divisor of reduction "mean"
    (None: these arrays' own count or weight; lossk.dask passes the whole array's for a chunk);
    parts: a reduced loss comes back as (sum, own divisor), floats, the sum in double before its
    division."""
    _checked_kernel(kernel, "multi_input")
    arrays = tuple(_array(a, name) for a, name in zip(arrays, names))
    grad_output = _array(grad_output, "grad_output")
    if isinstance(out, tuple):
        out = tuple(_array(o, f"out[{k}]", True) for k, o in enumerate(out))
    cdef int kind = MULTI_LAYOUTS[layout]
    cdef int red = _reduction(reduction, REDUCTIONS)
    x = _native_c(_float_input(arrays[0], names[0]))
    shape = x.shape
    cdef int64_t n, d = 1, m = 1
    cdef int64_t size = cnp.PyArray_SIZE(<cnp.ndarray>x)
    var_scalar = False
    contig = [x]
    for k in range(1, len(arrays)):
        name = names[k]
        arr = arrays[k]
        if kind == 1 and name == "var" and isinstance(arr, (float, int)) and not isinstance(arr, bool):
            var_scalar = True
            if arr < 0:
                raise ValueError(f"var: must not be negative, got {arr}")
            contig.append(np.full((), arr, x.dtype))
            continue
        if kind == 2 and name == "target":
            tarr = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
            if tarr.dtype.kind not in "iuf":
                raise TypeError(f"target: expected an integer or floating-point array, got dtype {tarr.dtype}")
            contig.append(_native_c(np.asarray(tarr, dtype=x.dtype)))
            continue
        arr = _same_dtype(arr, x, name)
        if not (kind == 1 and name == "var") and not _same_shape(<cnp.ndarray>arr, <cnp.ndarray>x):
            raise ValueError(f"{name}: expected shape {shape} like {names[0]}, got {arr.shape}")
        contig.append(arr)
    if kind == 0:
        n = size
        loss_shape = shape
    elif kind == 1:
        var = contig[2]
        n, d, m = (1, size, 1) if var_scalar else _gaussian_var_layout(var, shape)
        loss_shape = shape
    else:
        if x.ndim == 0 or (kind == 2 and x.ndim > 2):
            raise ValueError(f"{names[0]}: expected shape (D,) or (N, D), got {shape}" if kind == 2
                             else f"{names[0]}: expected at least one axis, got a 0-d array")
        loss_shape = shape[:-1]
        d = shape[len(shape) - 1]
        n = 1
        for e in loss_shape:
            n *= e
        if kind == 2 and contig[2].shape != loss_shape:
            raise ValueError(f"target: expected shape {loss_shape}, one value per row of {names[0]} {shape}, "
                             f"got {contig[2].shape}")
    if kind == 3 and not (p > 0 and p < np.inf):
        raise ValueError(f"p: expected a positive, finite norm degree, got {p}")
    if kind == 3 and margin <= 0:
        raise ValueError(f"margin: expected a number > 0, got {margin}")

    cdef int ngrad = len(differentiable)
    loss = go = None
    grads = []
    cdef double scale = 1.0
    if mode & LOSS:
        loss = (cnp.PyArray_EMPTY(0, NULL, cnp.PyArray_TYPE(<cnp.ndarray>x), 0) if red != 0
                else (_empty_like(x) if loss_shape == shape else np.empty(loss_shape, x.dtype)))
    if mode & GRAD:
        if mode != BOTH:
            go = _grad_output(grad_output, x, loss_shape, red == 0, &scale)
        if out is not None and (not isinstance(out, tuple) or len(out) != ngrad):
            raise TypeError(f"out: expected a tuple of {ngrad} arrays, for the gradients of "
                            f"{', '.join(names[k] for k in differentiable)}, got {type(out).__name__}"
                            + (f" of length {len(out)}" if isinstance(out, tuple) else ""))
        sources = list(arrays) + contig + [go]
        for j in range(ngrad):
            k = differentiable[j]
            g = _grad_buffer(None if out is None else out[j], contig[k], sources + grads,
                             "out" if out is None else f"out[{j}]", names[k])
            grads.append(g)
    elif out is not None:
        raise TypeError("out: only the gradient functions take out")

    cdef lossk_multi_args a
    a.sum = 0
    a.n, a.d, a.m = n, d, m
    for k in range(3):
        a.x[k] = NULL
        a.grad[k] = NULL
    a.target = NULL
    cdef int slot = 0
    for k in range(len(contig)):
        if names[k] == "target":
            a.target = _ptr(contig[k])
        else:
            a.x[slot] = _ptr(contig[k])
            slot += 1
    for j in range(len(grads)):
        a.grad[j] = _ptr(grads[j])
    a.margin, a.eps, a.p = margin, eps, p
    a.full, a.swap = full, swap
    a.check_first = out is not None         # a bad var must leave the caller's buffers as they were
    a.reduction = LOSSK_REDUCTION_NONE if red == 0 else LOSSK_REDUCTION_SUM
    cdef double own = <double>(n if kind >= 2 else size) if red == 1 else 1.0
    a.divisor = _whole(divisor, own) if red == 1 else 1.0
    a.loss, a.grad_output = _ptr(loss), _ptr(go)
    a.grad_scale = scale / a.divisor if red == 1 else scale

    cdef bint f32 = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    cdef multi_kernel fn = <multi_kernel>(lossk_kernel_table[kernel].f32 if f32 else lossk_kernel_table[kernel].f64)
    cdef int err
    with nogil:
        err = fn(&a)
    if err == LOSSK_ERR_DOMAIN:
        _negative_var(contig[2])
    if err != LOSSK_OK:
        _raise(err, names[0], x, -1, "")
    if mode == GRAD:
        return tuple(grads)
    return _result(mode, red == 0, loss, tuple(grads), (a.sum, own) if parts and mode & LOSS else None)
