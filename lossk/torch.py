"""lossk's losses inside PyTorch's autograd: ``torch.nn.functional``'s signatures, lossk's kernels.

A PyTorch user swaps one import::

    import lossk.torch as LF            # for torch.nn.functional as F
    loss = LF.cross_entropy(logits, labels, label_smoothing=0.1)
    loss.backward()

    criterion = lossk.torch.CrossEntropyLoss(ignore_index=0)   # for torch.nn.CrossEntropyLoss

Every loss of :mod:`lossk.functional` is here, with the exact signature of its PyTorch function
(``sigmoid_focal_loss``: torchvision.ops's) and module (the deprecated ``size_average`` and
``reduce`` included, mapped to ``reduction`` as PyTorch does). Tensors must be on the CPU, of
float32 or float64 (class indices and lengths: any integer dtype); they are read in place through
DLPack, and the results are tensors sharing lossk's NumPy arrays.

How it differentiates: where autograd will need the gradient, forward runs the fused kernel once
(loss and gradient in one pass) and keeps the gradient; backward hands it over, scaled by
grad_output, with no second pass. For ``reduction="none"`` the gradient depends on the grad_output
tensor, so forward computes the loss alone and backward runs the gradient kernel with it. Under
``torch.no_grad()`` (or for inputs that do not require grad) only the loss is computed.

Limits, each raising a clear error: gradients only with respect to the arguments lossk
differentiates (the input; for the multi-input losses the arrays their ``NAME_grad`` returns), not
the target or the weights; no double backward (the gradient is not itself differentiable: a
backward with ``create_graph=True`` raises); CPU tensors only. Under
``torch.compile`` each loss is a graph break (it runs outside the compiled graph, in lossk).

torch is imported by this module only; lossk itself does not need it.
"""
import inspect
import warnings

import numpy as np
import torch

from . import functional as _functional
from ._losses import LOSSES, define

__all__ = [loss.name for loss in LOSSES] + [loss.module for loss in LOSSES]


def _legacy_reduction(size_average, reduce):
    """PyTorch's reduction for its deprecated size_average and reduce arguments."""
    warnings.warn("size_average and reduce args will be deprecated, please use reduction='mean', 'sum' or "
                  "'none' instead.", stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return ("mean" if size_average else "sum") if reduce else "none"


def _tensor_result(value):
    return torch.from_numpy(np.asarray(value))


class _LossFunction(torch.autograd.Function):
    """forward(ctx, loss, options, *arrays): the loss-table entry, its options as a tuple of
    (name, value) and its arrays in PyTorch's order."""

    @staticmethod
    def forward(ctx, loss, options, *arrays):
        kw = dict(options)
        fused = kw["reduction"] != "none"
        ctx.loss, ctx.options = loss, kw
        ctx.slots = [isinstance(a, torch.Tensor) for a in arrays]
        ctx.others = [None if is_tensor else a for a, is_tensor in zip(arrays, ctx.slots)]
        ctx.save_for_backward(*(a for a in arrays if isinstance(a, torch.Tensor)))
        ctx.grads = None
        if fused:
            value, grads = getattr(_functional, loss.name + "_with_grad")(*arrays, **kw)
            ctx.grads = [_tensor_result(g) for g in (grads if isinstance(grads, tuple) else (grads,))]
        else:
            value = getattr(_functional, loss.name)(*arrays, **kw)
        return _tensor_result(value)

    @staticmethod
    def backward(ctx, grad_output):
        loss = ctx.loss
        if torch.is_grad_enabled():
            raise RuntimeError(f"lossk.torch.{loss.name}: no double backward (create_graph=True): lossk's "
                               "gradient is not itself differentiable; use torch.nn.functional for that")
        if ctx.grads is not None:
            grads, ctx.grads = ctx.grads, None      # handed over once: autograd may keep it as .grad
            if not bool(grad_output == 1):
                grads = [g.mul_(grad_output) for g in grads]
        else:   # reduction "none", or a second backward (retain_graph=True): the gradient kernel
            saved = iter(ctx.saved_tensors)
            arrays = [next(saved) if is_tensor else a for a, is_tensor in zip(ctx.others, ctx.slots)]
            go = grad_output if ctx.options["reduction"] == "none" else float(grad_output)
            grads = getattr(_functional, loss.name + "_grad")(*arrays, grad_output=go, **ctx.options)
            grads = [_tensor_result(g) for g in (grads if isinstance(grads, tuple) else (grads,))]
        result = [None] * len(ctx.slots)
        for g, k in zip(grads, loss.differentiable):
            if ctx.needs_input_grad[2 + k]:
                result[k] = g
        return (None, None, *result)


def _call(loss, sig, arrays, options):
    """The loss of `arrays` (named as in `sig`, PyTorch's signature) with `options`."""
    if "size_average" in options:
        size_average, reduce = options.pop("size_average"), options.pop("reduce")
        if size_average is not None or reduce is not None:
            options["reduction"] = _legacy_reduction(size_average, reduce)
    names = list(sig.parameters)
    tracked = torch.is_grad_enabled()
    for k, a in enumerate(arrays):
        if isinstance(a, torch.Tensor) and a.requires_grad and tracked and k not in loss.differentiable:
            raise RuntimeError(f"lossk.torch.{loss.name}: no gradient with respect to {names[k]}; "
                               f"detach it (lossk differentiates only by {', '.join(names[j] for j in loss.differentiable)})")
    for name, value in options.items():
        if isinstance(value, torch.Tensor) and value.requires_grad and tracked:
            raise RuntimeError(f"lossk.torch.{loss.name}: no gradient with respect to {name}; detach it")
    if not tracked or not any(isinstance(arrays[k], torch.Tensor) and arrays[k].requires_grad
                              for k in loss.differentiable if k < len(arrays)):
        return _tensor_result(getattr(_functional, loss.name)(*arrays, **options))
    return _LossFunction.apply(loss, tuple(options.items()), *arrays)


def _torch_signature(loss):
    """PyTorch's signature of the loss's function (sigmoid_focal_loss: torchvision.ops's)."""
    if loss.name == "sigmoid_focal_loss":
        return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
                                  for n, d in [("inputs", inspect.Parameter.empty),
                                               ("targets", inspect.Parameter.empty),
                                               ("alpha", 0.25), ("gamma", 2.0), ("reduction", "none")]])
    return inspect.signature(getattr(torch.nn.functional, loss.name))


def _plain(sig):
    """sig's parameters as source text, without annotations."""
    return str(sig.replace(parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
                           return_annotation=inspect.Signature.empty))[1:-1]


def _function(loss):
    sig = _torch_signature(loss)
    names = list(sig.parameters)
    arrays, options = names[:len(loss.arguments)], names[len(loss.arguments):]
    passed = ", ".join(f"{name!r}: {name}" for name in options)
    fn = define(loss.name, _plain(sig), f"_call(_loss, _sig, ({', '.join(arrays)},), {{{passed}}})",
                {"_call": _call, "_loss": loss, "_sig": sig}, __name__)
    fn.__signature__ = sig
    fn.__doc__ = (f"``torch.nn.functional.{loss.name}`` computed by lossk (see :mod:`lossk.torch`): "
                  f"{_functional.__dict__[loss.name].__doc__}")
    return torch.compiler.disable(fn, recursive=True)


class _Loss(torch.nn.Module):
    """The options are attributes (``weight`` and ``pos_weight``: buffers), as in torch.nn."""
    _function = None
    _options = ()

    def forward(self, *arrays):
        return type(self)._function(*arrays, **{name: getattr(self, name) for name in self._options})

    def extra_repr(self):
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self._options
                         if name not in ("weight", "pos_weight"))


def _module_init(self, **options):
    torch.nn.Module.__init__(self)
    if "size_average" in options:
        size_average, reduce = options.pop("size_average"), options.pop("reduce")
        if size_average is not None or reduce is not None:
            options["reduction"] = _legacy_reduction(size_average, reduce)
    for name, value in options.items():
        if name in ("weight", "pos_weight"):
            self.register_buffer(name, value)
        else:
            setattr(self, name, value)


def _module(loss, function):
    if loss.name == "sigmoid_focal_loss":    # torchvision has no module: lossk.nn's options
        params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d) for n, d in loss.options]
        sig = inspect.Signature(params)
    else:
        sig = inspect.signature(getattr(torch.nn, loss.module))
    names = list(sig.parameters)
    init = define("__init__", "self, " + _plain(sig), f"_init(self, {', '.join(f'{n}={n}' for n in names)})",
                  {"_init": _module_init}, __name__)
    init.__qualname__ = f"{loss.module}.__init__"
    if loss.name != "sigmoid_focal_loss":
        init.__signature__ = inspect.signature(getattr(torch.nn, loss.module).__init__)
    options = tuple(n for n in names if n not in ("size_average", "reduce"))
    doc = f"``torch.nn.{loss.module}`` computed by lossk: calls :func:`lossk.torch.{loss.name}`."
    return type(loss.module, (_Loss,), {"__init__": init, "_function": staticmethod(function), "_options": options,
                                        "__doc__": doc, "__module__": __name__})


for _loss in LOSSES:
    globals()[_loss.name] = _function(_loss)
    globals()[_loss.module] = _module(_loss, globals()[_loss.name])
del _loss
