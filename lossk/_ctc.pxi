# The CTC loss's binding (included by _core.pyx).

cdef object _lengths(object lengths, str name, int64_t n, bint unbatched):
    """input_lengths or target_lengths as a contiguous int64 array of n values: integers, a sequence
    or an integer array of shape (n,) (unbatched: an integer, or shape () or (1,))."""
    arr = lengths if isinstance(lengths, np.ndarray) else np.asarray(lengths)
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):   # [] is float64
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if arr.shape != (n,) and not (unbatched and arr.shape == ()):
        raise ValueError(f"{name}: expected {'an integer or shape (1,)' if unbatched else f'shape ({n},)'}, one "
                         f"length per sequence, got shape {arr.shape}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: {arr.max()} is out of range")
    return np.array(arr, dtype=np.int64, order="C").reshape(n)


cdef _bad_length(str name, object lengths, object bad, str what):
    k = int(np.argmax(bad))
    raise ValueError(f"{name}: {what}; {name}[{k}] is {lengths[k]}")


def ctc(log_probs, targets, input_lengths, target_lengths, reduction="mean", *, int64_t kernel, blank=0,
        bint zero_infinity=False, grad_output=1.0, int mode=LOSS, out=None, divisor=None, bint parts=False):
    """Loss and/or gradient of the CTC loss `kernel` (a kernel_id): log_probs (T, N, C) or (T, C),
    targets padded (N, S) or concatenated (sum of target_lengths,), or (S,) unbatched; divisor: the divisor of reduction "mean"
    (None: these arrays' own count or weight; lossk.dask passes the whole array's for a chunk);
    parts: a reduced loss comes back as (sum, own divisor), floats, the sum in double before its
    division."""
    _checked_kernel(kernel, "ctc")
    log_probs, targets = _array(log_probs, "log_probs"), _array(targets, "targets")
    input_lengths, target_lengths = _array(input_lengths, "input_lengths"), _array(target_lengths, "target_lengths")
    grad_output, out = _array(grad_output, "grad_output"), _array(out, "out", True)
    x = _float_input(log_probs, "log_probs")
    cdef int ndim = cnp.PyArray_NDIM(<cnp.ndarray>x)
    if ndim != 2 and ndim != 3:
        raise ValueError(f"log_probs: expected shape (T, N, C) or (T, C), got {x.shape}")
    cdef bint unbatched = ndim == 2
    cdef int64_t T = x.shape[0], N = 1 if unbatched else x.shape[1], C = x.shape[ndim - 1]
    cdef int red = _reduction(reduction, REDUCTIONS)
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)):
        raise TypeError(f"blank: expected an int, got {type(blank).__name__}")
    if not 0 <= blank < C:
        raise ValueError(f"blank: expected a class index in [0, {C}), got {blank}")
    x = _native_c(x)

    il = _lengths(input_lengths, "input_lengths", N, unbatched)
    tl = _lengths(target_lengths, "target_lengths", N, unbatched)
    if N and (il.min() < 0 or il.max() > T):
        _bad_length("input_lengths", il, (il < 0) | (il > T), f"expected lengths in [0, {T}] (the time steps)")
    if N and tl.min() < 0:
        _bad_length("target_lengths", tl, tl < 0, "expected lengths >= 0")
    tarr = targets if isinstance(targets, np.ndarray) else np.asarray(targets)
    if not cnp.PyArray_ISINTEGER(<cnp.ndarray>tarr) and not (tarr.size == 0 and tarr.dtype.kind == "f"):
        raise TypeError(f"targets: expected class indices of an integer dtype, got dtype {tarr.dtype}")
    cdef bint padded = tarr.ndim == 2
    if unbatched and tarr.ndim == 2 and tarr.shape[0] != 1:
        raise ValueError(f"targets: expected shape (target_length,) or (1, S) for log_probs of shape {x.shape}, "
                         f"got {tarr.shape}")
    if tarr.ndim != 1 and tarr.ndim != 2:
        raise ValueError(f"targets: expected shape (N, S) (padded) or (sum of target_lengths,) (concatenated), "
                         f"got {tarr.shape}")
    cdef int64_t S = tarr.shape[tarr.ndim - 1] if tarr.ndim else 0
    if padded:
        if tarr.shape[0] != N:
            raise ValueError(f"targets: expected {N} rows, one per sequence of log_probs {x.shape}, got {tarr.shape}")
        if N and tl.max() > S:
            _bad_length("target_lengths", tl, tl > S, f"expected lengths <= {S}, the targets' padded length")
        offsets = np.arange(N, dtype=np.int64) * S
    else:
        if N and tl.max() > S:
            _bad_length("target_lengths", tl, tl > S, f"expected lengths <= {S}, the concatenated targets' size")
        offsets = np.zeros(N, np.int64)
        np.cumsum(tl[:N - 1], out=offsets[1:])
        if N and offsets[N - 1] + tl[N - 1] != S or (N == 0 and S != 0):
            raise ValueError(f"targets: expected {int(tl.sum())} class indices (the sum of target_lengths) "
                             f"concatenated, got {S}")
    t = _class_indices(np.asarray(tarr, dtype=np.int64) if tarr.dtype.kind == "f" else tarr, "targets")

    cdef lossk_ctc_args a
    a.sum = 0
    a.t, a.n, a.c = T, N, C
    a.log_probs = cnp.PyArray_DATA(<cnp.ndarray>x)
    a.targets = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>t)
    a.targets_size = cnp.PyArray_SIZE(<cnp.ndarray>t)
    a.target_offsets = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>offsets)
    a.input_lengths = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>il)
    a.target_lengths = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>tl)
    a.blank = blank
    a.zero_infinity = zero_infinity
    a.per_target_mean = red == 1
    a.reduction = LOSSK_REDUCTION_NONE if red == 0 else LOSSK_REDUCTION_SUM
    a.divisor = _whole(divisor, <double>N) if red == 1 else 1.0
    a.bad_index = -1
    loss_shape = () if unbatched else (N,)
    cdef double scale
    loss, grad, go = _outputs(mode, out, red == 0, x, loss_shape, grad_output,
                              [log_probs, targets, input_lengths, target_lengths, x, t], &scale)
    a.loss, a.grad, a.grad_output = _ptr(loss), _ptr(grad), _ptr(go)
    a.grad_scale = scale / a.divisor if red == 1 else scale

    cdef bint f32 = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    cdef ctc_kernel fn = <ctc_kernel>(lossk_kernel_table[kernel].f32 if f32 else lossk_kernel_table[kernel].f64)
    cdef int err
    with nogil:
        err = fn(&a)
    if err != LOSSK_OK:
        _raise(err, "targets", t, a.bad_index, f"class indices must be in [0, {C})")
    return _result(mode, red == 0, loss, grad, (a.sum, <double>N if red == 1 else 1.0) if parts and mode & LOSS else None)
