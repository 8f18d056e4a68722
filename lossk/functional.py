"""Loss functions with PyTorch's ``torch.nn.functional`` semantics, on NumPy arrays.

Every loss ``NAME`` comes with two companions:

- ``NAME_grad(..., grad_output=1.0, out=None)``: d(loss)/d(input) times ``grad_output`` (a scalar
  for reduction "mean"/"sum", a scalar or an array shaped like the loss for "none"), an array
  shaped and typed like ``input``, written into ``out`` when given;
- ``NAME_with_grad(..., out=None)``: ``(loss, grad)`` from one fused pass over the data.

Losses of several differentiable arrays (``margin_ranking_loss``, ``gaussian_nll_loss``,
``cosine_embedding_loss``, ``triplet_margin_loss``) take them positionally in PyTorch's order;
their ``NAME_grad`` returns a tuple of gradients, one per differentiable array in that order
(``out``, when given, is a tuple of as many arrays), and ``NAME_with_grad`` ``(loss, that tuple)``.

Inputs are float32 or float64 arrays (computed natively, results keep the dtype); options are
keyword-only. Reduced losses are NumPy scalars; reduction "none" gives an array shaped like the
loss. Sums accumulate in double precision over a fixed partition of the data, so results are
bit-identical for any thread count.

Deliberate differences from PyTorch: ``target`` must have the input's shape (PyTorch broadcasts
some losses with a warning); ``cross_entropy`` rejects ``label_smoothing`` < 0 (PyTorch treats it
as 0); class-index targets may be of any integer dtype.

The functions are generated from the loss table in ``lossk/_losses.py``.
"""
from . import _core
from ._core import BOTH, GRAD, LOSS
from ._losses import CLASSIFICATION, CTC, ELEMENTWISE, LOSSES, MARGIN, MULTI_INPUT, SUFFIXES, define

__all__ = [loss.name + suffix for loss in LOSSES for suffix in SUFFIXES]

_MODES = {"": LOSS, "_grad": GRAD, "_with_grad": BOTH}
_BINDINGS = {ELEMENTWISE: _core.elementwise, CLASSIFICATION: _core.classification, MARGIN: _core.margin,
             MULTI_INPUT: _core.multi_input, CTC: _core.ctc}


def _fixed(loss):
    """The binding's keywords that depend on the loss alone."""
    if loss.family == ELEMENTWISE:
        fixed = {"batchmean": True} if "batchmean" in loss.reductions else {}
        if loss.shaped_weight:
            fixed["shaped_weight"] = loss.shaped_weight
        if loss.domain_check:
            fixed.update(domain_check=_core.kernel_id(loss.domain_check, ELEMENTWISE), domain=loss.domain)
        return fixed
    if loss.family == MARGIN:
        return {"targets": loss.targets}
    if loss.family == MULTI_INPUT:
        return {"layout": loss.layout, "names": loss.arguments, "differentiable": loss.differentiable}
    if loss.family == CTC:
        return {}
    return {"name": loss.name, "prob_kernel": _core.kernel_id(loss.prob_kernel, CLASSIFICATION) if loss.prob_kernel else -1}


def keywords(loss, options):
    """The binding and its keywords for `options` (without reduction), checked: what NAME passes on
    (lossk.dask calls the binding itself, on each chunk)."""
    if loss.prepare is None:
        kw = dict(options, kernel=_core.kernel_id(loss.kernel, loss.family))
    else:
        kw = _prepared(loss)(**options)
    return _BINDINGS[loss.family], dict(kw, **_fixed(loss))


def _prepared(loss):
    """loss.prepare, with the kernel it picks (default: loss.kernel) as a kernel_id."""
    default = _core.kernel_id(loss.kernel, loss.family)

    def keywords(**options):
        keywords = loss.prepare(**options)
        keywords["kernel"] = _core.kernel_id(keywords["kernel"], loss.family) if "kernel" in keywords else default
        return keywords

    return keywords


def _companion_doc(loss, suffix):
    name, doc = loss.name, loss.doc
    if loss.family == MULTI_INPUT:
        grads = ", ".join(f"d/d {a}" for a in loss.gradients())
        if suffix == "_with_grad":
            head = (f"``({name}(...), {name}_grad(...))`` computed in one fused pass; the gradients are for "
                    "grad_output=1 and go into ``out`` (a tuple) when given.")
        else:
            head = (f"Gradients of :func:`{name}`, ``({grads})``, times ``grad_output`` (a scalar for reduction "
                    "'mean'/'sum'; a scalar or an array shaped like the loss for 'none'). Each is shaped and typed "
                    "like its argument; written into ``out`` (a tuple of C-contiguous, aligned arrays of those "
                    "shapes and dtype) when given.")
        return f"{head}\n\nSee {name}:\n\n{doc}"
    if suffix == "_with_grad":
        head = (f"``({name}(...), {name}_grad(...))`` computed in one fused pass; the gradient is for "
                "grad_output=1 and goes into ``out`` when given.")
    else:
        x = loss.arguments[0]
        head = (f"Gradient of :func:`{name}` with respect to ``{x}``, times ``grad_output`` (a scalar "
                "for reduction 'mean'/'sum'; a scalar or an array shaped like the loss for 'none'). "
                f"Shaped and typed like ``{x}``; written into ``out`` (C-contiguous, aligned, same shape and "
                "dtype) when given.")
    return f"{head}\n\nSee {name}:\n\n{doc}"


def _define(loss):
    namespace = {"_binding": _BINDINGS[loss.family]}
    if loss.prepare is None:
        namespace["_kernel"] = _core.kernel_id(loss.kernel, loss.family)
        options = "kernel=_kernel" + loss.passing()
    else:
        namespace["_keywords"] = _prepared(loss)
        options = f"**_keywords({loss.passing()[2:]})"
    fixed = "".join(f", {name}={value!r}" for name, value in _fixed(loss).items())
    for suffix, extra in SUFFIXES.items():
        call = {"": "", "_grad": ", grad_output=grad_output, out=out", "_with_grad": ", out=out"}[suffix]
        arrays = ", ".join(loss.arguments)
        passed = f"({arrays},)" if loss.family == MULTI_INPUT else arrays
        fn = define(loss.name + suffix, f"{arrays}, *, {loss.parameters(extra)}",
                    f"_binding({passed}, reduction, mode={_MODES[suffix]}{call}{fixed}, {options})",
                    namespace, __name__)
        fn.__doc__ = loss.doc if suffix == "" else _companion_doc(loss, suffix)
        globals()[fn.__name__] = fn


for _loss in LOSSES:
    _define(_loss)
del _loss
