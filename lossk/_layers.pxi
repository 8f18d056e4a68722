# Bindings to the layer kernels (src/layers.c), included into _core.pyx so that one extension
# module holds one copy of the kernel library (and of its thread setting). Every argument is
# checked here, then the kernel runs without the GIL. Arrays are NCHW, weights in PyTorch's
# layouts; the modules are in lossk/nn.py.
import threading

ALGOS = {"auto": LOSSK_CONV_AUTO, "direct": LOSSK_CONV_DIRECT, "winograd": LOSSK_CONV_WINOGRAD}
_INT64_MAX = 2**63 - 1

# Kernel scratch, one growing buffer per Python thread (kernels of one thread run one at a time).
_local = threading.local()


cdef void *_scratch(int64_t size) except NULL:
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 64), np.uint8)
        _local.buf = buf
    return cnp.PyArray_DATA(<cnp.ndarray>buf)


cdef object _arr(object a, str name, object dtype, tuple shape):
    """a as a C-contiguous aligned array of dtype and shape: a itself, or a copy (_native_c)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    return _native_c(a)


cdef object _out(object a, str name, object dtype, tuple shape, tuple inputs=()):
    """An output buffer: a new array, or a checked writeable one that needs no copy (C-contiguous,
    aligned) and overlaps none of the call's other arrays (the kernels read their inputs while
    other threads write)."""
    if a is None:
        return np.empty(shape, dtype)
    o = _arr(a, name, dtype, shape)
    if o is not a or not o.flags.writeable:
        raise ValueError(f"{name}: expected a writeable, aligned C-contiguous array")
    for other in inputs:
        if isinstance(other, np.ndarray) and _overlaps(o, other):
            raise ValueError(f"{name}: must not overlap the call's other arrays")
    return o


cdef tuple _pair_arg(object value, str name):
    """A pair of ints (stride, padding, kernel size). Not floats: the kernel's struct would get them
    truncated while sizes computed from them here would not be."""
    if (not isinstance(value, tuple) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{name}: expected a pair of ints, got {value!r}")
    return value


cdef object _float_dtype(object x, str name):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.float32 and x.dtype != np.float64:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    return x.dtype


cdef _bad_indices(int64_t size, str plane):
    raise ValueError(f"indices: expected argmax positions in the {plane}, in [0, {size}), each inside the "
                     f"pooling window of its own output")


cdef _check(int err):
    if err == LOSSK_ERR_NOMEM:
        raise MemoryError("lossk: out of memory")
    if err != LOSSK_OK:
        raise RuntimeError(f"lossk: kernel rejected its arguments (code {err}); this is a bug in lossk")


def conv2d_output_size(int64_t h, int64_t w, int64_t r, int64_t s, stride, padding):
    """(P, Q) of an (h, w) input convolved with an (r, s) kernel; refuses a geometry the kernels
    cannot run. In Python ints: a padded size past int64 is refused, not wrapped around."""
    (sh, sw), (ph, pw) = _pair_arg(stride, "stride"), _pair_arg(padding, "padding")
    if r < 1 or s < 1 or sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"kernel size and stride must be positive and padding non-negative, got ({r}, {s}), "
                         f"{stride}, {padding}")
    hp, wp = h + 2 * ph, w + 2 * pw
    if hp > _INT64_MAX or wp > _INT64_MAX:
        raise ValueError(f"padding: {padding} is too large (the padded input does not fit in 64 bits)")
    if hp < r or wp < s:
        raise ValueError(f"input of spatial size ({h}, {w}) padded by {padding} is smaller than the "
                         f"kernel ({r}, {s})")
    return (hp - r) // sh + 1, (wp - s) // sw + 1


cdef int _conv_setup(lossk_conv2d_args *a, tuple xshape, tuple wshape, tuple stride, tuple padding,
                     str algo) except -1:
    if len(xshape) != 4:
        raise ValueError(f"input: expected shape (N, C, H, W), got {xshape}")
    if len(wshape) != 4 or 0 in wshape:
        raise ValueError(f"weight: expected a non-empty shape (K, C, R, S), got {wshape}")
    a.n, a.c, a.h, a.w = xshape
    if a.n < 0 or a.h < 0 or a.w < 0:
        raise ValueError(f"input: expected a shape of non-negative sizes, got {xshape}")
    a.k, a.r, a.s = wshape[0], wshape[2], wshape[3]
    if wshape[1] != a.c:
        raise ValueError(f"weight: expected {a.c} input channels, got shape {wshape}")
    a.p, a.q = conv2d_output_size(a.h, a.w, a.r, a.s, stride, padding)
    a.stride_h, a.stride_w = stride
    a.pad_h, a.pad_w = padding
    if algo not in ALGOS:
        raise ValueError(f"algo: expected one of {', '.join(ALGOS)}, got {algo!r}")
    a.algo = ALGOS[algo]
    if a.algo == LOSSK_CONV_WINOGRAD and not (a.r == a.s and a.r in (3, 5) and a.stride_h == 1 and a.stride_w == 1
                                              and a.pad_h < a.r and a.pad_w < a.s):
        raise ValueError("algo 'winograd' needs a 3x3 or 5x5 kernel, stride 1 and padding below the kernel size")
    a.pool = 0
    a.input = a.weight = a.bias = a.grad_output = NULL
    a.output = a.grad_input = a.grad_weight = a.grad_bias = a.work = NULL
    a.indices = NULL
    a.work_size = 0
    return 0


cdef _run_conv(lossk_conv2d_args *a, conv_kernel fn):
    cdef int err
    a.work = NULL
    with nogil:
        err = fn(a)
    if err == LOSSK_OK:
        a.work = _scratch(a.work_size)
        with nogil:
            err = fn(a)
    if err == LOSSK_ERR_ARGUMENT and a.pool and a.output == NULL:
        _bad_indices(a.p * a.q, "convolution's output plane")
    _check(err)


cdef _argmax_arg(argmax, bint pool):
    if not isinstance(argmax, (bool, np.bool_)):
        raise TypeError(f"argmax: expected a bool, got {type(argmax).__name__}")
    if not argmax and not pool:
        raise ValueError("argmax: False is for a pooled output (pool=True)")


def conv2d_forward(x, weight, bias, tuple stride, tuple padding, str algo="auto", bint pool=False, indices=None,
                   argmax=True):
    """conv2d(x, weight) + bias: (N, C, H, W) -> (N, K, P, Q); with pool, also max-pooled 2x2 on the
    fly: returns (pooled output, argmax indices), the indices written into `indices` when given;
    with argmax False none are found (inference needs none): (pooled output, None)."""
    dt = _float_dtype(x, "input")
    _argmax_arg(argmax, pool)
    w = _arr(weight, "weight", dt, getattr(weight, "shape", None))
    cdef lossk_conv2d_args a
    _conv_setup(&a, x.shape, w.shape, stride, padding, algo)
    xa = _native_c(x)
    b = None if bias is None else _arr(bias, "bias", dt, (a.k,))
    cdef bint f32 = dt == np.float32
    idx = None
    if pool:
        if a.p % 2 or a.q % 2:
            raise ValueError(f"pool: needs an even output size, got ({a.p}, {a.q})")
        a.pool = 1
        y = np.empty((a.n, a.k, a.p // 2, a.q // 2), dt)
        if argmax:
            idx = _out(indices, "indices", np.int64, y.shape, (x, weight, bias))
            a.indices = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>idx)
        elif indices is not None:
            raise ValueError("indices: expected None with argmax=False, got an array")
    else:
        y = np.empty((a.n, a.k, a.p, a.q), dt)
    a.input = _ptr(xa)
    a.weight = _ptr(w)
    a.bias = _ptr(b)
    a.output = _ptr(y)
    _run_conv(&a, lossk_conv2d_forward_f32 if f32 else lossk_conv2d_forward_f64)
    return (y, idx) if pool else y


cdef object _conv_grad_output(lossk_conv2d_args *a, object grad_output, object dt, object indices):
    """grad_output (N, K, P, Q), or with indices the pooled (N, K, P/2, Q/2) and its argmax."""
    if indices is None:
        return _arr(grad_output, "grad_output", dt, (a.n, a.k, a.p, a.q))
    if a.p % 2 or a.q % 2:
        raise ValueError(f"indices: a pooled gradient needs an even output size, got ({a.p}, {a.q})")
    shape = (a.n, a.k, a.p // 2, a.q // 2)
    idx = _arr(indices, "indices", np.int64, shape)
    a.pool = 1
    a.indices = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>idx)
    return _arr(grad_output, "grad_output", dt, shape), idx


def conv2d_backward_input(grad_output, weight, tuple input_shape, tuple stride, tuple padding, str algo="auto",
                          indices=None, out=None):
    """d(loss)/d(input) of conv2d, shaped input_shape, from grad_output (N, K, P, Q); with indices
    (max-pool argmax), from the gradient of the 2x2 max-pooled output. Written into `out` when given."""
    dt = _float_dtype(grad_output, "grad_output")
    w = _arr(weight, "weight", dt, getattr(weight, "shape", None))
    cdef lossk_conv2d_args a
    _conv_setup(&a, input_shape, w.shape, stride, padding, algo)
    keep = _conv_grad_output(&a, grad_output, dt, indices)
    dy = keep if indices is None else keep[0]
    dx = _out(out, "out", dt, input_shape, (grad_output, weight, indices))
    a.grad_output = _ptr(dy)
    a.weight = _ptr(w)
    a.grad_input = _ptr(dx)
    _run_conv(&a, lossk_conv2d_backward_input_f32 if dt == np.float32 else lossk_conv2d_backward_input_f64)
    return dx


def conv2d_backward_weight(x, grad_output, grad_weight, grad_bias, tuple stride, tuple padding, str algo="auto",
                           indices=None):
    """Adds d(loss)/d(weight) to grad_weight (K, C, R, S) and d(loss)/d(bias) to grad_bias (K) or None;
    grad_output as conv2d_backward_input's."""
    dt = _float_dtype(x, "input")
    if not isinstance(grad_weight, np.ndarray):
        raise TypeError(f"grad_weight: expected a numpy.ndarray, got {type(grad_weight).__name__}")
    cdef lossk_conv2d_args a
    _conv_setup(&a, x.shape, grad_weight.shape, stride, padding, algo)
    xa = _native_c(x)
    keep = _conv_grad_output(&a, grad_output, dt, indices)
    dy = keep if indices is None else keep[0]
    dw = _out(grad_weight, "grad_weight", dt, grad_weight.shape, (x, grad_output, indices, grad_bias))
    db = None if grad_bias is None else _out(grad_bias, "grad_bias", dt, (a.k,), (x, grad_output, indices))
    a.input = _ptr(xa)
    a.grad_output = _ptr(dy)
    a.grad_weight = _ptr(dw)
    a.grad_bias = _ptr(db)
    _run_conv(&a, lossk_conv2d_backward_weight_f32 if dt == np.float32 else lossk_conv2d_backward_weight_f64)


cdef _pool_setup(lossk_pool2d_args *a, tuple xshape, tuple kernel, tuple stride):
    if len(xshape) != 4:
        raise ValueError(f"input: expected shape (N, C, H, W), got {xshape}")
    a.n, a.c, a.h, a.w = xshape
    if a.n < 0 or a.c < 0:
        raise ValueError(f"input: expected a shape of non-negative sizes, got {xshape}")
    a.kh, a.kw = _pair_arg(kernel, "kernel_size")
    a.stride_h, a.stride_w = _pair_arg(stride, "stride")
    if a.kh < 1 or a.kw < 1 or a.stride_h < 1 or a.stride_w < 1:
        raise ValueError(f"kernel_size and stride must be positive, got {kernel}, {stride}")
    if a.h < a.kh or a.w < a.kw:
        raise ValueError(f"input of spatial size ({a.h}, {a.w}) is smaller than the kernel {kernel}")
    a.p = (a.h - a.kh) // a.stride_h + 1
    a.q = (a.w - a.kw) // a.stride_w + 1
    a.input = a.output = a.grad_output = a.grad_input = NULL
    a.indices = NULL


def max_pool2d_forward(x, tuple kernel, tuple stride, indices=None, argmax=True):
    """(output, argmax indices) of a max pooling without padding; indices written into `indices`
    when given; with argmax False none are found: (output, None)."""
    dt = _float_dtype(x, "input")
    _argmax_arg(argmax, True)
    cdef lossk_pool2d_args a
    _pool_setup(&a, x.shape, kernel, stride)
    xa = _native_c(x)
    y = np.empty((a.n, a.c, a.p, a.q), dt)
    idx = None
    if argmax:
        idx = _out(indices, "indices", np.int64, y.shape, (x,))
    elif indices is not None:
        raise ValueError("indices: expected None with argmax=False, got an array")
    a.input = _ptr(xa)
    a.output = _ptr(y)
    a.indices = <int64_t *>_ptr(idx)
    cdef int err
    cdef bint f32 = dt == np.float32
    with nogil:
        err = lossk_max_pool2d_forward_f32(&a) if f32 else lossk_max_pool2d_forward_f64(&a)
    _check(err)
    return y, idx


def max_pool2d_backward(grad_output, indices, tuple input_shape, tuple kernel, tuple stride, dtype):
    """d(loss)/d(input) of max_pool2d_forward, shaped input_shape, of the forward input's dtype
    (which grad_output must have), from the forward's argmax indices."""
    dt = np.dtype(dtype)
    if dt != np.float32 and dt != np.float64:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    cdef lossk_pool2d_args a
    _pool_setup(&a, input_shape, kernel, stride)
    dy = _arr(grad_output, "grad_output", dt, (a.n, a.c, a.p, a.q))
    idx = _arr(indices, "indices", np.int64, (a.n, a.c, a.p, a.q))
    dx = np.empty(input_shape, dt)
    a.grad_output = _ptr(dy)
    a.indices = <int64_t *>_ptr(idx)
    a.grad_input = _ptr(dx)
    cdef int err
    cdef bint f32 = dt == np.float32
    with nogil:
        err = lossk_max_pool2d_backward_f32(&a) if f32 else lossk_max_pool2d_backward_f64(&a)
    if err == LOSSK_ERR_ARGUMENT:
        _bad_indices(a.h * a.w, "input plane")
    _check(err)
    return dx


cdef _run_linear(lossk_linear_args *a, linear_kernel fn):
    cdef int err
    a.work = NULL
    with nogil:
        err = fn(a)
    _check(err)
    a.work = _scratch(a.work_size)
    with nogil:
        err = fn(a)
    _check(err)


cdef _linear_setup(lossk_linear_args *a, tuple xshape, tuple wshape):
    if len(xshape) != 2 or len(wshape) != 2 or xshape[1] != wshape[1]:
        raise ValueError(f"linear: input {xshape} and weight {wshape} do not match")
    if 0 in wshape:
        raise ValueError(f"weight: expected a non-empty shape (out_features, in_features), got {wshape}")
    a.n, a.in_ = xshape
    a.out = wshape[0]
    a.input = a.weight = a.bias = a.grad_output = NULL
    a.output = a.grad_input = a.grad_weight = a.grad_bias = a.work = NULL
    a.work_size = 0


def linear_forward(x, weight, bias):
    """x (N, I) @ weight.T (O, I) + bias (O)."""
    dt = _float_dtype(x, "input")
    w = _arr(weight, "weight", dt, getattr(weight, "shape", None))
    cdef lossk_linear_args a
    _linear_setup(&a, x.shape, w.shape)
    xa = _native_c(x)
    b = None if bias is None else _arr(bias, "bias", dt, (a.out,))
    y = np.empty((a.n, a.out), dt)
    a.input = _ptr(xa)
    a.weight = _ptr(w)
    a.bias = _ptr(b)
    a.output = _ptr(y)
    _run_linear(&a, lossk_linear_forward_f32 if dt == np.float32 else lossk_linear_forward_f64)
    return y


def linear_backward(grad_output, x, weight, grad_weight, grad_bias, bint need_input=True):
    """Returns d(loss)/d(x) (None unless need_input); adds to grad_weight and grad_bias (each may be None)."""
    dt = _float_dtype(grad_output, "grad_output")
    xa = _arr(x, "input", dt, getattr(x, "shape", None))
    w = _arr(weight, "weight", dt, getattr(weight, "shape", None))
    cdef lossk_linear_args a
    _linear_setup(&a, xa.shape, w.shape)
    dy = _arr(grad_output, "grad_output", dt, (a.n, a.out))
    dx = np.empty(x.shape, dt) if need_input else None
    dw = None if grad_weight is None else _out(grad_weight, "grad_weight", dt, weight.shape,
                                               (grad_output, x, weight, grad_bias))
    db = None if grad_bias is None else _out(grad_bias, "grad_bias", dt, (a.out,), (grad_output, x, weight))
    a.grad_output = _ptr(dy)
    a.input = _ptr(xa)
    a.weight = _ptr(w)
    a.grad_input = _ptr(dx)
    a.grad_weight = _ptr(dw)
    a.grad_bias = _ptr(db)
    _run_linear(&a, lossk_linear_backward_f32 if dt == np.float32 else lossk_linear_backward_f64)
    return dx


def relu_forward(x):
    dt = _float_dtype(x, "input")
    xa = _native_c(x)
    y = np.empty(x.shape, dt)
    cdef lossk_relu_args a
    a.n = xa.size
    a.input = _ptr(xa)
    a.output = _ptr(y)
    a.grad_output = a.grad_input = NULL
    cdef int err
    cdef bint f32 = dt == np.float32
    with nogil:
        err = lossk_relu_forward_f32(&a) if f32 else lossk_relu_forward_f64(&a)
    _check(err)
    return y


def relu_backward(grad_output, output):
    """d(loss)/d(input) of relu from its output."""
    dt = _float_dtype(grad_output, "grad_output")
    y = _arr(output, "output", dt, getattr(output, "shape", None))
    dy = _arr(grad_output, "grad_output", dt, y.shape)
    dx = np.empty(y.shape, dt)
    cdef lossk_relu_args a
    a.n = y.size
    a.input = NULL
    a.output = _ptr(y)
    a.grad_output = _ptr(dy)
    a.grad_input = _ptr(dx)
    cdef int err
    cdef bint f32 = dt == np.float32
    with nogil:
        err = lossk_relu_backward_f32(&a) if f32 else lossk_relu_backward_f64(&a)
    _check(err)
    return dx
