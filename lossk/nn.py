"""Neural-network layers on NumPy arrays, trained without a deep-learning framework.

Modules mirror ``torch.nn``: ``out = module(x)`` runs the forward pass (NCHW float32 or float64
arrays; the dtype of a module's parameters, ``dtype=`` at construction), and
``module.backward(grad_out)`` returns d(loss)/d(x) and ADDS the parameter gradients to each
``Parameter.grad`` (``zero_grad()`` resets them), as ``.grad`` accumulates in PyTorch.
``backward(grad_out, input_grad=False)`` skips d(loss)/d(x) (returns None): pass it for the first
layer of a network, whose input needs no gradient (PyTorch knows this from ``requires_grad``).

A module keeps what its backward pass needs (a reference to its input: do not change an input
in place between forward and backward) unless the forward ran under :func:`no_grad`.

Parameters and ``state_dict()`` use PyTorch's names and layouts (``"0.weight"``, conv weight
(out, in, kh, kw), linear weight (out, in)), so weights move between lossk and PyTorch as NumPy
arrays. Initialisation follows PyTorch's defaults (weight and bias uniform in +-1/sqrt(fan_in))
drawn from ``rng=`` (a ``numpy.random.Generator`` or a seed) or, when not given, from lossk's
default generator, which :func:`manual_seed` resets.

:class:`Sequential` runs a Conv2d followed by a MaxPool2d(2), or by a ReLU and a MaxPool2d(2), as
one fused kernel (when the convolution's output has even height and width), the ReLU then on the
pooled output: same results, and the convolution's output is pooled while it is in cache instead
of going through memory.

Loss modules (``CrossEntropyLoss`` etc.) run lossk's fused loss-and-gradient kernels:
``loss = criterion(out, target)`` keeps the gradient and ``criterion.backward()`` returns it;
the gradient buffer is reused from call to call when the shape matches.
"""
import contextlib
import threading

import numpy as np

from . import _core
from . import functional as F
from . import linear_loss
from ._losses import LOSSES, MULTI_INPUT, define

__all__ = [
    "Module", "Parameter", "Conv2d", "MaxPool2d", "Flatten", "Linear", "ReLU", "Sequential",
    "no_grad", "is_grad_enabled", "manual_seed", "LinearCrossEntropyLoss",
] + [loss.module for loss in LOSSES]

_local = threading.local()


def is_grad_enabled():
    return getattr(_local, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Forward passes inside keep nothing for backward (inference, evaluation)."""
    before = is_grad_enabled()
    _local.grad_enabled = False
    try:
        yield
    finally:
        _local.grad_enabled = before


_default_rng = np.random.default_rng()


def manual_seed(seed):
    """Reset the generator that initialises modules built without ``rng=``."""
    global _default_rng
    _default_rng = np.random.default_rng(seed)


def _generator(rng):
    if rng is None:
        return _default_rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _pair(value, name):
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    return dtype


class Parameter:
    """A trainable array ``data`` and its gradient ``grad`` (same shape and dtype), updated in place."""
    __slots__ = ("data", "grad")

    def __init__(self, data):
        # the kernels take C-contiguous, aligned, native-order arrays, and the optimiser writes in
        # place: a copy now if need be, rather than one at every call
        data = np.asarray(data)
        if not data.dtype.isnative:
            data = data.astype(data.dtype.newbyteorder("="))
        self.data = np.require(data, requirements=("C", "A", "W"))
        self.grad = np.zeros_like(self.data)

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: parameters in ``self._params`` (name -> Parameter), sub-modules in ``self._children``."""

    def __init__(self):
        self._params = {}
        self._children = {}

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_output, input_grad=True):
        raise NotImplementedError

    def named_parameters(self, prefix=""):
        for name, p in self._params.items():
            yield prefix + name, p
        for name, child in self._children.items():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    def state_dict(self):
        """Copies of the parameters by PyTorch's names."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict):
        """Copy every parameter from ``state_dict`` (arrays, e.g. ``{k: v.numpy() for k, v in
        torch_model.state_dict().items()}``). Missing, unexpected or mis-shaped keys raise
        ValueError before anything is loaded."""
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in params]
        problems = []
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        arrays = {}
        for name, p in params.items():
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            if value.shape != p.data.shape:
                problems.append(f"{name}: expected shape {p.data.shape}, got {value.shape}")
            elif value.dtype.kind not in "fiu":
                problems.append(f"{name}: expected a real numeric array, got dtype {value.dtype}")
            arrays[name] = value
        if problems:
            raise ValueError(f"load_state_dict of {type(self).__name__}: {'; '.join(problems)} (nothing loaded)")
        for name, value in arrays.items():
            params[name].data[...] = value

    def save(self, path):
        """Write the state dict to a .npz file."""
        np.savez(path, **self.state_dict())

    def load(self, path):
        with np.load(path) as f:
            self.load_state_dict({k: f[k] for k in f.files})

    def _check_input(self, x, ndim_ok, shape_ok, expected):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy.ndarray, got {type(x).__name__}")
        if not ndim_ok(x.ndim) or not shape_ok(x.shape):
            raise ValueError(f"{self!r}: expected input of shape {expected}, got {x.shape}")
        dtype = getattr(self, "dtype", None)
        if dtype is not None and x.dtype != dtype:
            raise TypeError(f"{self!r}: expected input of dtype {dtype} like its parameters, got {x.dtype}")
        if dtype is None and x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{self!r}: expected input of dtype float32 or float64, got {x.dtype}")

    def _buffer(self, name, shape, dtype):
        """An array kept by the module from call to call, for results only the module itself holds
        (pooling argmax, gradients between the layers of a Sequential): a new array's fresh pages
        cost a fault each, a large share of a small network's step."""
        buf = self.__dict__.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype)
            self.__dict__[name] = buf
        return buf

    def _check_grad(self, grad_output, shape, dtype):
        if shape is None:
            raise RuntimeError(f"{self!r}.backward: no saved forward pass (the forward ran under no_grad, "
                               "or backward already consumed it)")
        if not isinstance(grad_output, np.ndarray):
            raise TypeError(f"{self!r}.backward: expected grad_output to be a numpy.ndarray, got "
                            f"{type(grad_output).__name__}")
        if grad_output.shape != shape:
            raise ValueError(f"{self!r}.backward: expected grad_output of shape {shape} like the forward output, "
                             f"got {grad_output.shape}")
        if grad_output.dtype != dtype:
            raise TypeError(f"{self!r}.backward: expected grad_output of dtype {dtype} like the forward output, "
                            f"got {grad_output.dtype}")


class Conv2d(Module):
    """2-D convolution over NCHW input, like ``torch.nn.Conv2d`` (no dilation or groups).

    ``algo``: "auto", "direct" or "winograd". "auto" takes Winograd F(4x4, 5x5) for 5x5 kernels
    with stride 1 and at least 8 input and output channels, and F(4x4, 3x3) or F(6x6, 3x3)
    (whichever tiles the output with fewer multiplies) for 3x3 kernels with stride 1, at least 16
    channels and an output its tiles cover at least 3/4 of; "winograd" takes it for any 3x3 or 5x5
    kernel with stride 1 and padding below the kernel size (float32 results within a few 1e-6 of
    the largest output, like a direct sum's; a non-finite input turns its tiles' outputs to nan).
    Otherwise a direct GEMM over the padded image (stride 1) or im2col + GEMM.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, *,
                 dtype=np.float32, rng=None, algo="auto"):
        super().__init__()
        self.in_channels = _positive(in_channels, "in_channels")
        self.out_channels = _positive(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError("Conv2d: kernel_size and stride must be positive, padding non-negative")
        if algo not in _core.ALGOS:
            raise ValueError(f"algo: expected one of {', '.join(_core.ALGOS)}, got {algo!r}")
        self.algo = algo
        self.dtype = _float_dtype(dtype)
        gen = _generator(rng)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / np.sqrt(fan_in)
        shape = (self.out_channels, self.in_channels) + self.kernel_size
        self.weight = Parameter(gen.uniform(-bound, bound, shape).astype(self.dtype))
        self._params["weight"] = self.weight
        self.bias = None
        if bias:
            self.bias = Parameter(gen.uniform(-bound, bound, self.out_channels).astype(self.dtype))
            self._params["bias"] = self.bias
        self._x = self._out_shape = None

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")

    def _check(self, x):
        (r, s), (ph, pw) = self.kernel_size, self.padding
        self._check_input(x, lambda n: n == 4,
                          lambda sh: sh[1] == self.in_channels and sh[2] + 2 * ph >= r and sh[3] + 2 * pw >= s,
                          f"(N, {self.in_channels}, H, W) with H >= {r - 2 * ph} and W >= {s - 2 * pw}")

    def _save(self, x, out_shape):
        if is_grad_enabled():
            self._x, self._out_shape = x, out_shape
        else:
            self._x = self._out_shape = None

    def _bias(self):
        return None if self.bias is None else self.bias.data

    def forward(self, x):
        self._check(x)
        y = _core.conv2d_forward(x, self.weight.data, self._bias(), self.stride, self.padding, self.algo)
        self._save(x, y.shape)
        return y

    def _fuses_with(self, pool, x):
        """Whether this convolution and `pool` run as one kernel on input x."""
        if not (isinstance(pool, MaxPool2d) and pool.kernel_size == (2, 2) and pool.stride == (2, 2)):
            return False
        self._check(x)
        p, q = _core.conv2d_output_size(x.shape[2], x.shape[3], *self.kernel_size, self.stride, self.padding)
        return p % 2 == 0 and q % 2 == 0

    def _forward_pooled(self, x, pool):
        out_shape = (x.shape[0], self.out_channels) + _core.conv2d_output_size(
            x.shape[2], x.shape[3], *self.kernel_size, self.stride, self.padding)
        grad = is_grad_enabled()  # the argmax only for a backward pass
        indices = pool._buffer("_index_buf", out_shape[:2] + (out_shape[2] // 2, out_shape[3] // 2),
                               np.int64) if grad else None
        y, indices = _core.conv2d_forward(x, self.weight.data, self._bias(), self.stride, self.padding,
                                            self.algo, True, indices, grad)
        self._save(x, out_shape)
        pool._save(out_shape, indices, y.shape, self.dtype)
        return y

    def backward(self, grad_output, input_grad=True):
        self._check_grad(grad_output, self._out_shape, self.dtype)
        return self._backward(grad_output, None, input_grad)

    def _backward_pooled(self, grad_output, pool, input_grad, out=None):
        """backward of this convolution and the pool after it, in the same kernels."""
        pool._check_grad(grad_output, pool._out_shape, self.dtype)
        indices = pool._indices
        pool._forget()
        return self._backward(grad_output, indices, input_grad, out)

    def _backward(self, grad_output, indices, input_grad, out=None):
        x = self._x
        _core.conv2d_backward_weight(x, grad_output, self.weight.grad,
                                       None if self.bias is None else self.bias.grad,
                                       self.stride, self.padding, self.algo, indices)
        dx = None
        if input_grad:
            dx = _core.conv2d_backward_input(grad_output, self.weight.data, x.shape, self.stride, self.padding,
                                               self.algo, indices, out)
        self._x = self._out_shape = None
        return dx


class MaxPool2d(Module):
    """2-D max pooling over NCHW input, like ``torch.nn.MaxPool2d`` (no padding or dilation);
    ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError("MaxPool2d: kernel_size and stride must be positive")
        self._forget()

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"

    def _save(self, in_shape, indices, out_shape, dtype):
        if is_grad_enabled():
            self._in_shape, self._indices, self._out_shape, self._dtype = in_shape, indices, out_shape, dtype
        else:
            self._forget()

    def _forget(self):
        self._in_shape = self._indices = self._out_shape = self._dtype = None

    def forward(self, x):
        kh, kw = self.kernel_size
        self._check_input(x, lambda n: n == 4, lambda sh: sh[2] >= kh and sh[3] >= kw,
                          f"(N, C, H, W) with H >= {kh} and W >= {kw}")
        kh, kw = self.kernel_size
        (sh, sw), n, c, h, w = self.stride, *x.shape
        grad = is_grad_enabled()  # the argmax only for a backward pass
        indices = self._buffer("_index_buf", (n, c, (h - kh) // sh + 1, (w - kw) // sw + 1),
                               np.int64) if grad else None
        y, indices = _core.max_pool2d_forward(x, self.kernel_size, self.stride, indices, grad)
        self._save(x.shape, indices, y.shape, x.dtype)
        return y

    def backward(self, grad_output, input_grad=True):
        self._check_grad(grad_output, self._out_shape, self._dtype)
        dx = _core.max_pool2d_backward(grad_output, self._indices, self._in_shape, self.kernel_size, self.stride,
                                       self._dtype)
        self._forget()
        return dx


class Flatten(Module):
    """Flattens dimensions start_dim..end_dim into one, like ``torch.nn.Flatten``."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim
        self._in_shape = None

    def __repr__(self):
        return f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim})"

    def forward(self, x):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy.ndarray, got {type(x).__name__}")
        nd = max(x.ndim, 1)
        start = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        end = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not 0 <= start <= end < nd:
            raise ValueError(f"{self!r}: expected input with more than {max(self.start_dim, self.end_dim)} "
                             f"dimensions, got shape {x.shape}")
        self._in_shape = x.shape if is_grad_enabled() else None
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def backward(self, grad_output, input_grad=True):
        if self._in_shape is None:
            raise RuntimeError(f"{self!r}.backward: no saved forward pass (the forward ran under no_grad, "
                               "or backward already consumed it)")
        dx = grad_output.reshape(self._in_shape) if input_grad else None
        self._in_shape = None
        return dx


class Linear(Module):
    """y = x W^T + b over the last dimension, like ``torch.nn.Linear``."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = _positive(in_features, "in_features")
        self.out_features = _positive(out_features, "out_features")
        self.dtype = _float_dtype(dtype)
        gen = _generator(rng)
        bound = 1.0 / np.sqrt(self.in_features)
        self.weight = Parameter(gen.uniform(-bound, bound, (self.out_features, self.in_features)).astype(self.dtype))
        self._params["weight"] = self.weight
        self.bias = None
        if bias:
            self.bias = Parameter(gen.uniform(-bound, bound, self.out_features).astype(self.dtype))
            self._params["bias"] = self.bias
        self._x = self._out_shape = None

    def __repr__(self):
        return f"Linear(in_features={self.in_features}, out_features={self.out_features})"

    def forward(self, x):
        self._check_input(x, lambda n: n >= 1, lambda sh: sh[-1] == self.in_features,
                          f"(*, {self.in_features})")
        x2 = x.reshape(-1, self.in_features)
        y = _core.linear_forward(x2, self.weight.data, None if self.bias is None else self.bias.data)
        y = y.reshape(x.shape[:-1] + (self.out_features,))
        if is_grad_enabled():
            self._x, self._out_shape = x, y.shape
        else:
            self._x = self._out_shape = None
        return y

    def backward(self, grad_output, input_grad=True):
        self._check_grad(grad_output, self._out_shape, self.dtype)
        x = self._x
        dx = _core.linear_backward(grad_output.reshape(-1, self.out_features), x.reshape(-1, self.in_features),
                                     self.weight.data, self.weight.grad,
                                     None if self.bias is None else self.bias.grad, input_grad)
        self._x = self._out_shape = None
        return None if dx is None else dx.reshape(x.shape)


class ReLU(Module):
    def __init__(self):
        super().__init__()
        self._y = None

    def __repr__(self):
        return "ReLU()"

    def forward(self, x):
        self._check_input(x, lambda n: True, lambda sh: True, "any")
        y = _core.relu_forward(x)
        self._y = y if is_grad_enabled() else None
        return y

    def backward(self, grad_output, input_grad=True):
        y = self._y
        self._check_grad(grad_output, None if y is None else y.shape, None if y is None else y.dtype)
        self._y = None
        return _core.relu_backward(grad_output, y) if input_grad else None


class Sequential(Module):
    """Modules applied in order; parameters named "<index>.<name>" as in PyTorch."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is not a Module: {layer!r}")
            self._children[str(i)] = layer
        self.layers = list(layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    def forward(self, x):
        i, layers = 0, self.layers
        while i < len(layers):
            layer = layers[i]
            # Conv2d, [ReLU,] MaxPool2d(2) as one kernel, the ReLU on the pooled output: max pooling
            # commutes with it (the same values, and the same gradient, which is 0 wherever the
            # window's maximum is not above 0)
            relu = i + 2 < len(layers) and isinstance(layers[i + 1], ReLU)
            if (isinstance(layer, Conv2d) and i + 1 + relu < len(layers) and isinstance(x, np.ndarray)
                    and layer._fuses_with(layers[i + 1 + relu], x)):
                x = layer._forward_pooled(x, layers[i + 1 + relu])
                if relu:
                    x = layers[i + 1](x)
                i += 2 + relu
            else:
                x = layer(x)
                i += 1
        return x

    def backward(self, grad_output, input_grad=True):
        i = len(self.layers) - 1
        reused = []
        while i >= 0:
            layer = self.layers[i]
            relu = self.layers[i - 1] if i > 1 and isinstance(self.layers[i - 1], ReLU) else None
            at = i - 1 - (relu is not None)  # the convolution's place
            prev = self.layers[at] if at >= 0 else None
            if (isinstance(layer, MaxPool2d) and isinstance(prev, Conv2d) and layer._indices is not None
                    and layer.kernel_size == layer.stride == (2, 2) and prev._out_shape == layer._in_shape
                    and prev._out_shape[2] % 2 == 0 and prev._out_shape[3] % 2 == 0
                    and (relu is None or (relu._y is not None and relu._y.shape == layer._out_shape))):
                # the pool's gradient (after the ReLU's, which ran on the pooled output) goes
                # straight into the convolution's kernels; the gradient between two layers is the
                # Sequential's own, so its buffer is reused
                if relu is not None:
                    grad_output = relu.backward(grad_output)
                out = self._buffer(f"_grad_buf{at}", prev._x.shape, prev.dtype) if at > 0 else None
                if out is not None:
                    reused.append(out)
                grad_output = prev._backward_pooled(grad_output, layer, input_grad or at > 0, out)
                i = at - 1
            else:
                grad_output = layer.backward(grad_output, input_grad=input_grad or i > 0)
                i -= 1
        # a layer that hands back a view of its grad_output (Flatten) can pass one of those buffers
        # through to the caller, whose array the next backward would then overwrite
        if grad_output is not None and any(np.may_share_memory(grad_output, b) for b in reused):
            grad_output = grad_output.copy()
        return grad_output


# ---- Losses ------------------------------------------------------------------------------------

class _Loss:
    """``loss = criterion(input, target)`` (CTCLoss: ``criterion(log_probs, targets, input_lengths,
    target_lengths)``) computes the loss and its gradient in one fused pass; ``criterion.backward()``
    returns d(loss)/d(input) (a buffer reused by the next call of the same shape: copy it to keep
    it)."""
    _fn = None

    def __init__(self, reduction="mean", **options):
        self.reduction = reduction
        self.options = options
        self._grad = None
        self._ready = False

    def __repr__(self):
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"{type(self).__name__}(reduction={self.reduction!r}{opts})"

    def __call__(self, input, target, *lengths):
        g = self._grad
        out = g if (isinstance(input, np.ndarray) and g is not None and g.shape == input.shape
                    and g.dtype == input.dtype) else None
        loss, self._grad = type(self)._fn(input, target, *lengths, reduction=self.reduction, out=out, **self.options)
        self._ready = True
        return loss

    def backward(self):
        if not self._ready:
            raise RuntimeError(f"{type(self).__name__}.backward: call the loss on (input, target) first")
        self._ready = False
        return self._grad


class LinearCrossEntropyLoss(Module):
    """A model's head: a :class:`Linear` layer (``self.linear``, no bias unless ``bias``) and the
    cross-entropy of its output, as ``torch.nn.LinearCrossEntropyLoss``, computed by
    :func:`lossk.linear_cross_entropy_with_grad` a chunk of rows at a time (no (N, num_classes)
    logits).

    ``loss = head(input, target)`` computes the loss and every gradient in one pass;
    ``head.backward()`` then adds the layer's gradients to its parameters' ``grad`` and returns
    d(loss)/d(input), for the rest of the model's backward. ``weight``, ``reduction``,
    ``ignore_index``, ``label_smoothing`` and ``chunk_size`` are linear_cross_entropy's."""

    def __init__(self, in_features, num_classes, *, bias=False, reduction="mean", weight=None, ignore_index=-100,
                 label_smoothing=0.0, chunk_size=None, dtype=np.float32, rng=None):
        super().__init__()
        self.linear = Linear(in_features, num_classes, bias, dtype=dtype, rng=rng)
        self._children["linear"] = self.linear
        self.options = {"weight": weight, "reduction": reduction, "ignore_index": ignore_index,
                        "label_smoothing": label_smoothing, "chunk_size": chunk_size}
        self._grads = None

    def __repr__(self):
        return (f"LinearCrossEntropyLoss(in_features={self.linear.in_features}, "
                f"num_classes={self.linear.out_features}, bias={self.linear.bias is not None})")

    def __call__(self, input, target):
        return self.forward(input, target)

    def forward(self, input, target):
        bias = self.linear.bias
        loss, *grads = linear_loss.linear_cross_entropy_with_grad(
            input, self.linear.weight.data, target, linear_bias=None if bias is None else bias.data, **self.options)
        self._grads = grads if is_grad_enabled() else None
        return loss

    def backward(self):
        if self._grads is None:
            raise RuntimeError("LinearCrossEntropyLoss.backward: call the loss on (input, target) first")
        dx, dw, db = self._grads
        self._grads = None
        np.add(self.linear.weight.grad, dw, out=self.linear.weight.grad)
        if db is not None:
            np.add(self.linear.bias.grad, db, out=self.linear.bias.grad)
        return dx


class _MultiInputLoss(_Loss):
    """``loss = criterion(*arrays)`` (the loss's arrays in PyTorch's order) computes the loss and
    its gradients in one fused pass; ``criterion.backward()`` returns the tuple of gradients, one
    per differentiable array (buffers reused by the next call of the same shapes: copy them to keep
    them)."""

    def __call__(self, *arrays):
        g, first = self._grad, arrays[0] if arrays else None
        # a float among the arrays (gaussian_nll_loss's var) has a 0-d gradient of the input's dtype
        out = g if (g is not None and isinstance(first, np.ndarray)
                    and [(x.shape, x.dtype) for x in g] == [(np.shape(arrays[k]), getattr(arrays[k], "dtype", first.dtype))
                                                            for k in type(self)._differentiable]) else None
        loss, self._grad = type(self)._fn(*arrays, reduction=self.reduction, out=out, **self.options)
        self._ready = True
        return loss

    def backward(self):
        if not self._ready:
            raise RuntimeError(f"{type(self).__name__}.backward: call the loss on its arrays first")
        self._ready = False
        return self._grad


def _loss_module(loss):
    """lossk.nn's module of a loss-table entry: its options, in PyTorch's order, as constructor
    arguments."""
    options = loss.module_options()
    init = define("__init__", f"self, {loss.parameters(options=options)}",
                  f"_Loss.__init__(self, reduction{loss.passing(options)})",
                  {"_Loss": _Loss}, __name__)
    init.__qualname__ = f"{loss.module}.__init__"
    base = _MultiInputLoss if loss.family == MULTI_INPUT else _Loss
    doc = f"The module form of :func:`lossk.{loss.name}`: " + base.__doc__
    return type(loss.module, (base,), {"__init__": init, "_fn": staticmethod(getattr(F, loss.name + "_with_grad")),
                                       "_differentiable": loss.differentiable, "__doc__": doc,
                                       "__module__": __name__})


for _entry in LOSSES:
    globals()[_entry.module] = _loss_module(_entry)
del _entry
