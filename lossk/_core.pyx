# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Bindings to the C kernels: every argument is checked here, then the kernel runs without the GIL.

The public functions, with their documentation, are in lossk/functional.py.
"""
import numpy as np
cimport numpy as cnp
from cpython.buffer cimport PyObject_CheckBuffer
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t
from libc.string cimport memset

cnp.import_array()

cdef extern from "_result_cache.h":
    enum:
        LOSSK_CACHE_MIN_BYTES
    object lossk_cache_capsule()
    size_t lossk_cache_set_limit(size_t limit) nogil
    size_t lossk_cache_held() nogil
    void lossk_cache_set_hugepages(int on)
    int lossk_cache_init()

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)
    object PyDataMem_GetHandler()
    PyObject *PyDataMem_DefaultHandler

# What a call computes.
LOSS, GRAD, BOTH = 1, 2, 3

# The argument struct each family's kernels take.
cdef dict FAMILY_ARGS = {"elementwise": b"lossk_elementwise_args", "classification": b"lossk_class_args",
                         "margin": b"lossk_margin_args", "multi_input": b"lossk_multi_args",
                         "ctc": b"lossk_ctc_args", "gbdt": b"lossk_gbdt_args"}
cdef dict KERNEL_IDS = {}


def kernel_id(str name, str family):
    """The index in lossk_kernel_table of the kernel `name`, checked to take `family`'s arguments."""
    key = (name, family)
    try:
        return KERNEL_IDS[key]
    except KeyError:
        pass
    cdef int64_t k
    for k in range(lossk_kernel_count):
        if lossk_kernel_table[k].name == name.encode():
            if lossk_kernel_table[k].args != FAMILY_ARGS[family]:
                raise TypeError(f"kernel {name}: takes {lossk_kernel_table[k].args.decode()}, not {family} arguments")
            KERNEL_IDS[key] = k
            return k
    raise KeyError(f"kernel {name}: not in src/lossk.h's LOSSK_KERNELS")


cdef int64_t _checked_kernel(int64_t k, str family) except -1:
    """k itself, when kernel_id gave it for `family` (an int from elsewhere must not index the table)."""
    if k < 0 or k >= lossk_kernel_count or lossk_kernel_table[k].args != FAMILY_ARGS[family]:
        raise ValueError(f"kernel: {k} is not the index of a {family} kernel")
    return k


cdef dict REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
cdef dict KL_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2, "batchmean": 3}


def set_num_threads(int n):
    if n < 1:
        raise ValueError(f"n: expected a number of threads >= 1, got {n}")
    lossk_set_num_threads(n)


def get_num_threads():
    return lossk_get_num_threads()


def isa():
    return lossk_isa().decode()


cdef object _CACHE_HANDLER = lossk_cache_capsule()
try:  # NumPy's own huge-page switch (NUMPY_MADVISE_HUGEPAGE, off on old kernels), which the cache follows
    from numpy._core.multiarray import _get_madvise_hugepage as _numpy_madvise_hugepage
except ImportError:
    try:
        from numpy.core.multiarray import _get_madvise_hugepage as _numpy_madvise_hugepage
    except ImportError:
        _numpy_madvise_hugepage = None
if lossk_cache_init() != 0:
    raise MemoryError("lossk: cannot register the result cache's fork handler")


def set_result_cache_limit(nbytes):
    if isinstance(nbytes, bool) or not hasattr(type(nbytes), "__index__"):
        raise TypeError(f"nbytes: expected an int, got {type(nbytes).__name__}")
    nbytes = nbytes.__index__()
    if nbytes < 0:
        raise ValueError(f"nbytes: expected a number of bytes >= 0, got {nbytes}")
    return lossk_cache_set_limit(min(nbytes, <size_t>-1))


def result_cache_held():
    return lossk_cache_held()


cdef object _empty_like(cnp.ndarray x):
    """An uninitialised C-contiguous array shaped like x; a large one through the result cache
    (lossk/_result_cache.h), so that a loop's repeated calls reuse memory already faulted in,
    unless the caller has put a memory handler of their own in charge."""
    if cnp.PyArray_NBYTES(x) < LOSSK_CACHE_MIN_BYTES or PyDataMem_GetHandler() is not <object>PyDataMem_DefaultHandler:
        return cnp.PyArray_EMPTY(x.ndim, cnp.PyArray_DIMS(x), cnp.PyArray_TYPE(x), 0)
    if _numpy_madvise_hugepage is not None:
        lossk_cache_set_hugepages(_numpy_madvise_hugepage())
    previous = PyDataMem_SetHandler(_CACHE_HANDLER)
    try:
        return cnp.PyArray_EMPTY(x.ndim, cnp.PyArray_DIMS(x), cnp.PyArray_TYPE(x), 0)
    finally:
        PyDataMem_SetHandler(previous)


cdef enum:   # DLPack's device types whose memory the CPU reads
    DLPACK_CPU = 1          # kDLCPU
    DLPACK_CUDA_HOST = 3    # kDLCUDAHost: pinned host memory

cdef bint _flag(object a, str method):
    """Whether a has `method` (torch's is_neg, is_conj, ...) and it says so."""
    f = getattr(a, method, None)
    return f is not None and callable(f) and bool(f())


cdef object _array(object a, str name, bint written=False):
    """a as an ndarray, without a copy where its memory allows: an ndarray itself, or an object
    exporting DLPack (a torch tensor, a JAX array), the buffer protocol or __array__. Anything else
    (None, numbers, lists) comes back unchanged for the argument's own checks. written: a is an
    output (out=), to be written through the array returned."""
    if a is None or isinstance(a, (np.ndarray, np.generic, int, float, list, tuple)):
        return a
    cls = type(a)
    if hasattr(cls, "__dlpack__"):
        if written and getattr(a, "requires_grad", False):
            raise ValueError(f"{name}: a tensor that requires grad cannot be written in place (autograd "
                             "would not see it); pass a detached tensor")
        if _flag(a, "is_neg") or _flag(a, "is_conj"):
            if written:
                raise ValueError(f"{name}: a tensor with torch's negative or conjugate bit set cannot be "
                                 "written in place; pass a resolved tensor")
            a = a.resolve_neg().resolve_conj()   # DLPack carries the memory, not the lazy sign
        if getattr(a, "requires_grad", False) and hasattr(a, "detach"):
            a = a.detach()   # torch exports no tensor autograd tracks; lossk only reads it
        try:
            device = a.__dlpack_device__()
        except (BufferError, RuntimeError, TypeError, ValueError) as e:   # torch's "meta" device, say
            raise TypeError(f"{name}: cannot read this {cls.__name__} through DLPack ({e})") from None
        if int(device[0]) not in (DLPACK_CPU, DLPACK_CUDA_HOST):
            raise TypeError(f"{name}: expected an array in CPU memory, got one on DLPack device {tuple(device)} "
                            "(copy it to the CPU first)")
        try:
            arr = np.from_dlpack(a)
        except (BufferError, RuntimeError, TypeError, ValueError) as e:
            raise TypeError(f"{name}: cannot read this {cls.__name__} through DLPack ({e})") from None
        if written and not arr.flags.writeable and hasattr(a, "numpy"):
            arr = a.numpy()      # NumPy before 2.2.5 marks every DLPack import read-only; torch's own view is not
        return arr
    if (hasattr(cls, "__array__") or hasattr(cls, "__array_interface__") or hasattr(cls, "__array_struct__")
            or PyObject_CheckBuffer(a)):
        return np.asarray(a)
    return a


def as_array(a, str name):
    """a as the bindings read it: an ndarray, DLPack's or the buffer protocol's, zero-copy."""
    return _array(a, name)


cdef object _float_input(object input, str name="input"):
    """input as an ndarray of float32 or float64 (contiguity is dealt with later)."""
    if not isinstance(input, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray (or a CPU array exporting DLPack or the buffer "
                        f"protocol) of float32 or float64, got {type(input).__name__}")
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>input)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {input.dtype}")
    return <cnp.ndarray>input


cdef object _native_c(object a):
    """a itself when C-contiguous, aligned and in native byte order, else such a copy (0-d stays
    0-d). The kernels' vector types assume element alignment, which a view at an odd byte offset
    (np.frombuffer, a slice of a uint8 buffer) does not have."""
    if (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and cnp.PyArray_ISALIGNED(<cnp.ndarray>a)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)):
        return a
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C")


cdef object _like(object a, object input, str name):
    """a as a C-contiguous aligned array of input's dtype; a must be a real floating array (or scalar)."""
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array, got dtype {arr.dtype}")
    return _native_c(np.asarray(arr, dtype=input.dtype))


cdef object _same_dtype(object a, object input, str name):
    """a as a C-contiguous array; it must be an ndarray of input's dtype (any byte order)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if cnp.PyArray_TYPE(<cnp.ndarray>a) != cnp.PyArray_TYPE(<cnp.ndarray>input):
        raise TypeError(f"{name}: expected dtype {input.dtype} like input, got {a.dtype}")
    return _native_c(a)


cdef int _reduction(object reduction, dict allowed) except -1:
    try:
        return allowed[reduction]
    except (KeyError, TypeError):
        pass
    raise ValueError(f"reduction: expected one of {', '.join(map(repr, allowed))}, got {reduction!r}")


cdef bint _overlaps(cnp.ndarray a, cnp.ndarray b):
    """Whether the memory spans of a and b intersect (np.may_share_memory, minus its call cost)."""
    cdef char *lo[2]
    cdef char *hi[2]
    cdef cnp.ndarray arr
    cdef int k, d
    cdef cnp.npy_intp extent
    if cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_SIZE(b) == 0:
        return False
    for k in range(2):
        arr = a if k == 0 else b
        lo[k] = hi[k] = <char *>cnp.PyArray_DATA(arr)
        for d in range(cnp.PyArray_NDIM(arr)):
            extent = cnp.PyArray_STRIDE(arr, d) * (cnp.PyArray_DIM(arr, d) - 1)
            if extent < 0:
                lo[k] += extent
            else:
                hi[k] += extent
        hi[k] += cnp.PyArray_ITEMSIZE(arr)
    return lo[0] < hi[1] and lo[1] < hi[0]


cdef inline bint _same_shape(cnp.ndarray a, cnp.ndarray b):
    return a.ndim == b.ndim and cnp.PyArray_CompareLists(cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(b), a.ndim)


cdef object _grad_buffer(object out, object input, list sources, str name="out", str like="input"):
    """The array the gradient goes into: out (checked; its name in messages `name`) or a new one
    shaped like input (the argument `like`)."""
    cdef cnp.ndarray x = <cnp.ndarray>input
    if out is None:
        return _empty_like(x)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    cdef cnp.ndarray o = <cnp.ndarray>out
    if cnp.PyArray_TYPE(o) != cnp.PyArray_TYPE(x) or not cnp.PyArray_ISNOTSWAPPED(o):
        raise TypeError(f"{name}: expected dtype {input.dtype} like {like} (native byte order), got {out.dtype}")
    if not _same_shape(o, x):
        raise ValueError(f"{name}: expected shape {input.shape} like {like}, got {out.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(o) or not cnp.PyArray_ISWRITEABLE(o) or not cnp.PyArray_ISALIGNED(o):
        raise ValueError(f"{name}: expected a writeable, aligned C-contiguous array")
    for s in sources:
        if isinstance(s, np.ndarray) and _overlaps(o, s):
            raise ValueError(f"{name}: must not overlap the inputs, the target or the other arguments")
    return o


cdef object _grad_output(object grad_output, object input, tuple loss_shape, bint per_element,
                         double *scale):
    """grad_output as a contiguous array shaped like the loss (reduction "none"), or None with
    the scalar in *scale."""
    if isinstance(grad_output, (float, int, np.floating, np.integer)) \
            and not isinstance(grad_output, (bool, np.bool_)):
        scale[0] = grad_output
        return None
    if isinstance(grad_output, np.ndarray) and grad_output.ndim == 0 and grad_output.dtype.kind in "fiu":
        scale[0] = float(grad_output)
        return None
    if not per_element:
        raise ValueError(f"grad_output: expected a scalar for a reduced loss, got {type(grad_output).__name__}"
                         + (f" of shape {grad_output.shape}" if isinstance(grad_output, np.ndarray) else ""))
    g = _like(grad_output, input, "grad_output")
    if g.shape != loss_shape:
        raise ValueError(f"grad_output: expected a scalar or shape {loss_shape} like the loss, got {g.shape}")
    scale[0] = 1.0
    return g


cdef tuple _outputs(int mode, object out, bint per_element, object x, tuple loss_shape, object grad_output,
                    list sources, double *scale):
    """(loss, grad, grad_output) of a call computing `mode`: the loss (an array shaped like the loss,
    or a 0-d one), the gradient's buffer (out, checked against every array in `sources`, or a new
    one shaped like x) and grad_output as an array (None: a scalar, in *scale; 1 for a fused call)."""
    loss = grad = go = None
    scale[0] = 1.0
    if mode & LOSS:
        if not per_element:
            loss = cnp.PyArray_EMPTY(0, NULL, cnp.PyArray_TYPE(<cnp.ndarray>x), 0)
        elif loss_shape == x.shape:
            loss = _empty_like(x)
        else:
            loss = np.empty(loss_shape, x.dtype)
    if mode & GRAD:
        if mode != BOTH:
            go = _grad_output(grad_output, x, loss_shape, per_element, scale)
        grad = _grad_buffer(out, x, sources + [go])
    elif out is not None:
        raise TypeError("out: only the gradient functions take out")
    return loss, grad, go


cdef object _periodic(object w, object input, str name, int64_t *period):
    """A weight that broadcasts to input, as a contiguous array whose values repeat with *period
    along the flattened input; materialised at full size only when it does not repeat that way."""
    if w is None:
        return None
    arr = _like(w, input, name)
    shape = input.shape
    try:
        if np.broadcast_shapes(arr.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"{name}: shape {arr.shape} does not broadcast to input shape {shape}") from None
    wshape = (1,) * (len(shape) - arr.ndim) + arr.shape
    k = 0
    while k < len(shape) and wshape[k] == 1:
        k += 1
    if wshape[k:] != shape[k:]:
        arr = np.ascontiguousarray(np.broadcast_to(arr, shape))
        k = 0
    period[0] = max(1, int(np.prod(shape[k:], dtype=np.int64)))
    return arr.reshape(-1)


cdef inline void *_ptr(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


def elementwise(input, target, reduction="mean", *, int64_t kernel, double param=0.0, double param2=0.0,
                weight=None, pos_weight=None, grad_output=1.0, int mode=LOSS, out=None, bint batchmean=False,
                int64_t domain_check=-1, str domain="", str shaped_weight="", divisor=None, bint parts=False):
    """Loss and/or gradient of the elementwise loss `kernel` (a kernel_id); checks every argument
    first. batchmean: the loss takes reduction "batchmean"; domain_check: a kernel_id checking the
    inputs are in `domain`, run first when the gradient goes into out; shaped_weight: weight has
    the input's shape and "mean" divides by "sum" (the weights' sum) or "count" (the element count); divisor: the divisor of reduction "mean"
    (None: these arrays' own count or weight; lossk.dask passes the whole array's for a chunk);
    parts: a reduced loss comes back as (sum, own divisor), floats, the sum in double before its
    division."""
    _checked_kernel(kernel, "elementwise")
    input, target, weight, pos_weight = (_array(input, "input"), _array(target, "target"),
                                         _array(weight, "weight"), _array(pos_weight, "pos_weight"))
    grad_output, out = _array(grad_output, "grad_output"), _array(out, "out", True)
    if domain_check != -1:
        _checked_kernel(domain_check, "elementwise")
    x = _native_c(_float_input(input))
    y = _same_dtype(target, x, "target")
    if not _same_shape(<cnp.ndarray>y, <cnp.ndarray>x):
        raise ValueError(f"target: expected shape {x.shape} like input, got {y.shape}")
    cdef int red = _reduction(reduction, KL_REDUCTIONS if batchmean else REDUCTIONS)
    cdef int64_t wp = 0, pwp = 0
    w = _periodic(weight, x, "weight", &wp)
    if shaped_weight and w is not None and np.shape(weight) != x.shape:
        raise ValueError(f"weight: expected shape {x.shape} like input, got {np.shape(weight)}")
    pw = None
    if pos_weight is not None:
        pw = _periodic(pos_weight, x, "pos_weight", &pwp)
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef lossk_elementwise_args a
    a.sum = 0
    a.n = n
    a.input = cnp.PyArray_DATA(<cnp.ndarray>x)
    a.target = cnp.PyArray_DATA(<cnp.ndarray>y)
    a.weight = _ptr(w)
    a.weight_period = wp
    a.pos_weight = _ptr(pw)
    a.pos_weight_period = pwp
    a.param = param
    a.param2 = param2
    a.reduction = LOSSK_REDUCTION_NONE if red == 0 else LOSSK_REDUCTION_SUM
    # mean: numel; batchmean: the batch size (PyTorch: input.size(0), 1 for 0-d input)
    a.divisor = <double>n if red == 1 else (<double>x.shape[0] if red == 3 and x.ndim > 0 else 1.0)
    if shaped_weight == "sum" and w is not None and red == 1:
        a.divisor = float(np.sum(w, dtype=np.float64))   # NumPy's pairwise sum: the same for any thread count
    cdef double own = a.divisor
    if red == 1 or red == 3:
        a.divisor = _whole(divisor, own)
    a.bad_index = -1
    cdef double scale
    loss, grad, go = _outputs(mode, out, red == 0, x, x.shape, grad_output, [input, target, x, y, w, pw], &scale)
    a.loss, a.grad, a.grad_output = _ptr(loss), _ptr(grad), _ptr(go)
    a.grad_scale = scale / a.divisor if red != 0 else scale

    cdef bint f32 = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    cdef elementwise_kernel fn = <elementwise_kernel>(lossk_kernel_table[kernel].f32 if f32
                                                      else lossk_kernel_table[kernel].f64)
    # a kernel that finds bad inputs while it computes: into the caller's buffer, check first so it
    # stays intact
    cdef elementwise_kernel check = NULL
    if domain_check != -1 and out is not None:
        check = <elementwise_kernel>(lossk_kernel_table[domain_check].f32 if f32
                                     else lossk_kernel_table[domain_check].f64)
    cdef int err = LOSSK_OK
    with nogil:
        if check != NULL:
            err = check(&a)
        if err == LOSSK_OK:
            err = fn(&a)
    if err != LOSSK_OK:
        arg = "target" if a.bad_target else "input"
        _raise(err, arg, y if a.bad_target else x, a.bad_index, f"all elements of {arg} must be in {domain}")
    return _result(mode, red == 0, loss, grad, (a.sum, own) if parts and mode & LOSS else None)


cdef object _result(int mode, bint per_element, object loss, object grad, object parts=None):
    """What a binding returns; `parts` (sum, divisor) replaces a reduced loss's value."""
    if mode == GRAD:
        return grad
    if parts is not None and not per_element:
        value = parts
    else:
        value = loss if per_element else cnp.PyArray_ToScalar(cnp.PyArray_DATA(<cnp.ndarray>loss), <cnp.ndarray>loss)
    return value if mode == LOSS else (value, grad)


cdef double _whole(object divisor, double own) except? -1:
    """The divisor of a mean: `divisor`, the whole's count or weight when these arrays are a part of
    it (lossk.dask's chunks), else `own`, theirs."""
    if divisor is None:
        return own
    if isinstance(divisor, bool) or not isinstance(divisor, (float, int, np.floating, np.integer)):
        raise TypeError(f"divisor: expected a number, got {type(divisor).__name__}")
    return float(divisor)


cdef _raise(int err, str name, object where, int64_t bad, str what):
    if err == LOSSK_ERR_DOMAIN or err == LOSSK_ERR_TARGET:
        pos = np.unravel_index(bad, where.shape) if where.ndim else ()
        value = where.reshape(-1)[bad].item()
        raise ValueError(f"{name}: {what}; {name}[{', '.join(map(str, pos))}] is {value}")
    if err == LOSSK_ERR_NOMEM:
        raise MemoryError("lossk: out of memory")
    raise RuntimeError(f"lossk: kernel rejected its arguments (code {err}); this is a bug in lossk")


cdef tuple _loss_shape(object x):
    """The loss's shape for a class-index target: input's without the class dimension, () unbatched."""
    return () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]


cdef bint _is_loss_shape(cnp.ndarray t, cnp.ndarray x):
    cdef int d, nd = cnp.PyArray_NDIM(x)
    if nd == 1:
        return cnp.PyArray_NDIM(t) == 0
    if cnp.PyArray_NDIM(t) != nd - 1 or cnp.PyArray_DIM(t, 0) != cnp.PyArray_DIM(x, 0):
        return False
    for d in range(2, nd):
        if cnp.PyArray_DIM(t, d - 1) != cnp.PyArray_DIM(x, d):
            return False
    return True


cdef object _class_indices(object t, str name="target"):
    """Integer class indices as a contiguous int64 array (uint64 values past 2^63 are rejected)."""
    cdef cnp.ndarray a = <cnp.ndarray>t
    if cnp.PyArray_TYPE(a) == cnp.NPY_INT64 and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISNOTSWAPPED(a) \
            and cnp.PyArray_ISALIGNED(a):
        return t
    if cnp.PyArray_TYPE(a) == cnp.NPY_UINT64 and t.size and t.max() > np.iinfo(np.int64).max:
        big = int(np.argmax(t > np.iinfo(np.int64).max))
        pos = np.unravel_index(big, t.shape) if t.ndim else ()
        raise ValueError(f"{name}: class index {t.reshape(-1)[big]} at {name}[{', '.join(map(str, pos))}] "
                         "is out of range")
    return np.array(t, dtype=np.int64, order="C")


def classification(input, target, reduction="mean", *, int64_t kernel, weight=None, ignore_index=-100,
                   double label_smoothing=0.0, grad_output=1.0, int mode=LOSS, out=None, str name="",
                   int64_t prob_kernel=-1, divisor=None, bint parts=False):
    """Loss and/or gradient of the classification loss `name`, kernel `kernel` (a kernel_id) for
    class-index targets and `prob_kernel` for probability targets (-1: refused); divisor: the divisor of reduction "mean"
    (None: these arrays' own count or summed weight; lossk.dask passes the whole array's for a chunk);
    parts: a reduced loss comes back as (sum, own divisor), floats, the sum in double before its
    division."""
    _checked_kernel(kernel, "classification")
    input, target, weight = _array(input, "input"), _array(target, "target"), _array(weight, "weight")
    grad_output, out = _array(grad_output, "grad_output"), _array(out, "out", True)
    if prob_kernel != -1:
        _checked_kernel(prob_kernel, "classification")
    x = _float_input(input)
    cdef int ndim = cnp.PyArray_NDIM(<cnp.ndarray>x)
    if ndim == 0:
        raise ValueError("input: expected shape (C,), (N, C) or (N, C, d1, ..., dK), got a 0-d array")
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
    cdef bint unbatched = ndim == 1
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(<cnp.ndarray>x)
    cdef int64_t N = 1 if unbatched else dims[0]
    cdef int64_t C = dims[0] if unbatched else dims[1]
    cdef int64_t S = 1
    cdef int d
    for d in range(2, ndim):
        S *= dims[d]
    if C == 0:
        raise ValueError(f"input: the class dimension is empty (shape {x.shape})")
    x = _native_c(x)

    tarr = target if isinstance(target, np.ndarray) else np.asarray(target)
    cdef bint soft = cnp.PyArray_ISFLOAT(<cnp.ndarray>tarr)
    if soft and prob_kernel == -1:
        raise TypeError(f"target: {name} expects class indices of an integer dtype, got dtype {tarr.dtype}")
    t = tp = None
    if soft:
        tp = _like(tarr, x, "target")
        if tp.shape != x.shape:
            raise ValueError(f"target: probabilities must have the input's shape {x.shape}, got {tp.shape}")
    else:
        if not cnp.PyArray_ISINTEGER(<cnp.ndarray>tarr):
            raise TypeError(f"target: expected class indices of an integer dtype or probabilities of a float "
                            f"dtype, got dtype {tarr.dtype}")
        if not _is_loss_shape(<cnp.ndarray>tarr, <cnp.ndarray>x):
            raise ValueError(f"target: expected class indices of shape {_loss_shape(x)} for input of shape "
                             f"{x.shape}, got {tarr.shape}")
        t = _class_indices(tarr)

    w = None
    if weight is not None:
        w = _like(weight, x, "weight")
        if w.shape != (C,):
            raise ValueError(f"weight: expected shape ({C},), one weight per class, got {w.shape}")

    cdef lossk_class_args a
    a.sum = 0
    a.n = N
    a.c = C
    a.s = S
    a.spatial = 0
    a.input = cnp.PyArray_DATA(<cnp.ndarray>x)
    a.target = <const int64_t *>_ptr(t)
    a.target_prob = _ptr(tp)
    a.weight = _ptr(w)
    a.ignore_index = ignore
    a.label_smoothing = label_smoothing
    a.reduction = LOSSK_REDUCTION_NONE if red == 0 else LOSSK_REDUCTION_SUM
    a.mean_by_weight = 0 if red != 1 or soft else (1 if divisor is None else 2)
    a.divisor = <double>(N * S) if red == 1 else 1.0
    if red == 1:
        a.divisor = _whole(divisor, a.divisor)
    a.total_weight = 0
    a.bad_index = -1

    cdef double scale
    loss, grad, go = _outputs(mode, out, red == 0, x, _loss_shape(x), grad_output, [input, target, x, t, tp, w],
                              &scale)
    a.loss, a.grad, a.grad_output = _ptr(loss), _ptr(grad), _ptr(go)
    # a weighted mean is divided by the total weight inside the kernel
    a.grad_scale = scale / a.divisor if red == 1 and soft else scale

    cdef bint f32 = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    cdef int64_t k = prob_kernel if soft else kernel
    cdef class_kernel fn = <class_kernel>(lossk_kernel_table[k].f32 if f32 else lossk_kernel_table[k].f64)
    cdef int err
    with nogil:
        err = fn(&a)
    if err != LOSSK_OK:
        _raise(err, "target", None if t is None else t.reshape(_loss_shape(x)), a.bad_index,
               f"class indices must be in [0, {C}) or equal ignore_index ({ignore_index})")
    own = a.total_weight if red == 1 and not soft else <double>(N * S) if red == 1 else 1.0
    return _result(mode, red == 0, loss, grad, (a.sum, own) if parts and mode & LOSS else None)


include "_margin.pxi"
include "_multi_input.pxi"
include "_ctc.pxi"
include "_layers.pxi"
include "_linear_ce.pxi"
include "_gbdt.pxi"
