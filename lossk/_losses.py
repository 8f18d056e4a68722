"""The loss table: one entry per loss, and everything lossk builds from it.

:mod:`lossk.functional` generates each loss's ``NAME``, ``NAME_grad`` and ``NAME_with_grad`` from its
entry, :mod:`lossk.nn` its module, and the type stubs (``functional.pyi`` and the loss part of
``nn.pyi``) come from :func:`stubs`; the tests and benchmarks iterate over :data:`LOSSES`, so a loss
missing its reference twin, test cases or benchmark fails the suite. Adding a loss is its C kernel
(one line in ``LOSSK_KERNELS`` in ``src/lossk.h`` and its per-element function), one entry here, and
``python lossk/_losses.py`` to rewrite the stubs.

The module is plain Python without imports from lossk, so that the stub generator runs from a
source tree that is not built.
"""
import math
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

ELEMENTWISE, CLASSIFICATION, MARGIN, MULTI_INPUT, CTC = "elementwise", "classification", "margin", "multi_input", "ctc"


@dataclass(frozen=True)
class Loss:
    name: str               # torch.nn.functional's name: lossk.NAME, NAME_grad, NAME_with_grad
    module: str             # torch.nn's module name: lossk.nn.MODULE
    family: str             # ELEMENTWISE (target shaped like input), CLASSIFICATION (class axis 1),
                            # MARGIN (a loss per row of the last axis), MULTI_INPUT (several
                            # differentiable arrays) or CTC (sequences against shorter targets)
    kernel: str             # the kernel's name in src/lossk.h (lossk_KERNEL_f32, lossk_KERNEL_f64)
    options: Tuple[Tuple[str, object], ...]   # (name, default) in PyTorch's order, reduction among them
    doc: str
    # options (without reduction) -> the binding's keywords, checked (a "kernel" among them replaces
    # `kernel`); None: the options are the binding's keywords
    prepare: Optional[Callable[..., Dict[str, object]]] = None
    reductions: Tuple[str, ...] = ("none", "mean", "sum")
    prob_kernel: str = ""   # CLASSIFICATION: the kernel for probability targets ("": refused)
    domain_check: str = ""  # ELEMENTWISE: a kernel checking the inputs' domain, run before writing into out=
    domain: str = ""        # what that domain is, for the error message
    shaped_weight: str = ""  # ELEMENTWISE: weight has the input's shape and "mean" divides by
                             # "sum" (the weights' sum) or "count" (the element count)
    targets: str = ""       # MARGIN: "class" (an index per row), "class_lists" (indices shaped like
                            # the input, each row's list ended by -1) or "values" (shaped like the input)
    arguments: Tuple[str, ...] = ("input", "target")  # the array arguments, in PyTorch's order
    differentiable: Tuple[int, ...] = (0,)  # MULTI_INPUT: the arguments NAME_grad differentiates by
    layout: str = ""        # MULTI_INPUT: how the arrays' shapes go (the binding's `layout`)

    def parameters(self, extra=(), options=None):
        """The options (and `extra`) as Python parameters with their defaults: 'reduction="mean", ...'."""
        return ", ".join(f"{name}={default!r}" for name, default in (self.options if options is None else options) + extra)

    def module_options(self):
        """The options of torch.nn's module: the function's, but a shaped weight (which is the function's alone)."""
        return tuple(o for o in self.options if not (self.shaped_weight and o[0] == "weight"))

    def gradients(self):
        """The names of the arguments NAME_grad returns gradients for, in order."""
        return tuple(self.arguments[k] for k in self.differentiable)

    def passing(self, options=None):
        """The options but reduction as keyword arguments passing them on: 'beta=beta, ...'."""
        return "".join(f", {name}={name}" for name, _ in (self.options if options is None else options)
                       if name != "reduction")


def define(name, parameters, body, namespace, module):
    """A function `name(parameters)` returning `body`, with real parameters (so calls, errors and
    introspection behave as for a function written out) and the globals in `namespace`."""
    exec(f"def {name}({parameters}):\n    return {body}\n", namespace)
    fn = namespace[name]
    fn.__module__ = module
    return fn


def _non_negative(name, value, allow_zero):
    value = float(value)
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {value}")
    return value


def _smooth_l1(beta):
    beta = _non_negative("beta", beta, allow_zero=True)
    return {"kernel": "l1"} if beta == 0 else {"param": beta}


def _huber(delta, weight):
    return {"param": _non_negative("delta", delta, allow_zero=False), "weight": weight}


def _kl_div(log_target):
    return {"param": float(bool(log_target))}


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    return float(value)


def _hinge_embedding(margin):
    return {"param": _number("margin", margin)}


def _poisson_nll(log_input, full, eps):
    return {"kernel": "poisson_nll_log" if log_input else "poisson_nll", "param": _number("eps", eps),
            "param2": float(bool(full))}


def _sigmoid_focal(alpha, gamma):
    alpha = _number("alpha", alpha)
    gamma = _non_negative("gamma", _number("gamma", gamma), allow_zero=True)
    # torchvision weighs by alpha when alpha >= 0 (so not for nan); the kernel when alpha is not < 0
    return {"param": gamma, "param2": alpha if alpha >= 0 else -1.0}


def _multi_margin(p, margin, weight):
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p: expected 1 or 2, got {type(p).__name__}")
    if p not in (1, 2):
        raise ValueError(f"p: expected 1 or 2, got {p}")
    return {"p": int(p), "margin": _number("margin", margin), "weight": weight}


def _margin_ranking(margin):
    return {"margin": _number("margin", margin)}


def _gaussian_nll(full, eps):
    return {"full": bool(full), "eps": _non_negative("eps", _number("eps", eps), allow_zero=True)}


def _ctc(blank, zero_infinity):
    return {"blank": blank, "zero_infinity": bool(zero_infinity)}


def _triplet_margin(margin, p, eps, swap):
    margin, p = _number("margin", margin), _number("p", p)
    if margin <= 0:
        raise ValueError(f"margin: expected a number > 0, got {margin}")
    if not 0 < p < math.inf:
        raise ValueError(f"p: expected a positive, finite norm degree, got {p}")
    return {"margin": margin, "p": p, "eps": _number("eps", eps), "swap": bool(swap)}


REDUCTION = ("reduction", "mean")
WEIGHT = ("weight", None)

LOSSES = (
    Loss("l1_loss", "L1Loss", ELEMENTWISE, "l1", (REDUCTION, WEIGHT),
         """L1 loss: ``w |input - target|``, reduced by ``reduction`` ("mean", "sum" or "none").

    The gradient is ``w sign(input - target)``, 0 where input == target (as PyTorch). ``weight``
    (None: 1) has the input's shape; with it, "mean" is the weighted mean ``sum(w l) / sum(w)``.
    """, shaped_weight="sum"),
    Loss("mse_loss", "MSELoss", ELEMENTWISE, "mse", (REDUCTION, WEIGHT),
         """Squared error: ``w (input - target)**2``, reduced by ``reduction`` ("mean", "sum", "none").

    ``weight`` (None: 1) has the input's shape; with it, "mean" is the weighted mean
    ``sum(w l) / sum(w)``.""", shaped_weight="sum"),
    Loss("smooth_l1_loss", "SmoothL1Loss", ELEMENTWISE, "smooth_l1", (REDUCTION, ("beta", 1.0)),
         """Smooth L1 loss: with ``z = |input - target|``, ``0.5 z**2 / beta`` where ``z < beta``,
    else ``z - 0.5 beta``. ``beta`` must be >= 0; ``beta=0`` is exactly :func:`l1_loss`.""",
         prepare=_smooth_l1),
    Loss("huber_loss", "HuberLoss", ELEMENTWISE, "huber", (REDUCTION, ("delta", 1.0), WEIGHT),
         """Huber loss: with ``z = |input - target|``, ``0.5 z**2`` where ``z < delta``, else
    ``delta (z - 0.5 delta)``, times ``weight``. ``delta`` must be > 0. ``weight`` (None: 1) has
    the input's shape; "mean" divides the weighted sum by the number of elements, as PyTorch (not
    by the weights' sum as :func:`mse_loss` and :func:`l1_loss` do).""",
         prepare=_huber, shaped_weight="count"),
    Loss("binary_cross_entropy", "BCELoss", ELEMENTWISE, "binary_cross_entropy", (WEIGHT, REDUCTION),
         """Binary cross-entropy of probabilities: ``-w (t log(x) + (1 - t) log(1 - x))``.

    ``input`` must lie in [0, 1] (else ValueError naming the first offending element; nan is
    outside too). As in PyTorch, each log term is clamped at -100, so the loss is finite at 0
    and 1, and the gradient ``w (x - t) / max(x (1 - x), 1e-12)`` is finite too. ``weight``
    broadcasts to the input's shape by NumPy rules.
    """,
         domain_check="check_unit_interval", domain="[0, 1]"),
    Loss("binary_cross_entropy_with_logits", "BCEWithLogitsLoss", ELEMENTWISE,
         "binary_cross_entropy_with_logits", (WEIGHT, REDUCTION, ("pos_weight", None)),
         """Binary cross-entropy of logits: ``w ((1 - t) x - (1 + (p - 1) t) log(sigmoid(x)))``.

    Computed in the stable form (``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``): no overflow
    for logits of +-1e4. ``pos_weight`` (p) weighs the positive term and broadcasts like PyTorch's
    (typically one value per class, over the last dimension); ``weight`` broadcasts to the input.
    """),
    Loss("kl_div", "KLDivLoss", ELEMENTWISE, "kl_div", (REDUCTION, ("log_target", False)),
         """Kullback-Leibler divergence, with ``input`` log-probabilities: ``t (log t - x)`` (0 where
    t == 0), or ``exp(t) (t - x)`` when ``log_target``. ``reduction`` may also be "batchmean":
    the sum divided by ``input.shape[0]`` (the KL divergence proper, per sample).""",
         prepare=_kl_div, reductions=("none", "mean", "sum", "batchmean")),
    Loss("soft_margin_loss", "SoftMarginLoss", ELEMENTWISE, "soft_margin", (REDUCTION,),
         """Two-class logistic loss: ``log(1 + exp(-target * input))``, targets usually 1 or -1.

    Computed in the stable form ``max(z, 0) + log1p(exp(-|z|))``, ``z = -target * input``, and the
    gradient as ``-target * sigmoid(z)``. Deliberate difference: where ``z`` exceeds 88 (float32) or
    709 (float64), PyTorch's ``log1p(exp(z))`` overflows to inf and its gradient is nan; lossk gives
    the finite ``z`` and ``-target``.
    """),
    Loss("hinge_embedding_loss", "HingeEmbeddingLoss", ELEMENTWISE, "hinge_embedding",
         (("margin", 1.0), REDUCTION),
         """Hinge embedding loss: ``input`` where ``target == 1``, ``max(0, margin - input)`` where
    ``target == -1``. As in PyTorch, a target that is neither takes both terms, and the gradient
    of the hinge is -1 wherever ``margin - input >= 0`` (PyTorch's clamp_min).
    """,
         prepare=_hinge_embedding),
    Loss("poisson_nll_loss", "PoissonNLLLoss", ELEMENTWISE, "poisson_nll_log",
         (("log_input", True), ("full", False), ("eps", 1e-8), REDUCTION),
         """Negative log-likelihood of a Poisson target: ``exp(input) - target * input`` when
    ``log_input`` (input is the log of the rate), else ``input - target * log(input + eps)``.

    ``full`` adds Stirling's approximation of ``log(target!)``, ``target log(target) - target +
    0.5 log(2 pi target)``, where ``target > 1`` (it does not depend on the input, so the gradient
    is the same). As in PyTorch, inputs are not checked: ``log_input=False`` with
    ``input + eps <= 0`` gives nan or inf.
    """,
         prepare=_poisson_nll),
    Loss("sigmoid_focal_loss", "SigmoidFocalLoss", ELEMENTWISE, "sigmoid_focal",
         (("alpha", 0.25), ("gamma", 2.0), ("reduction", "none")),
         """Focal loss of logits (``torchvision.ops.sigmoid_focal_loss``, RetinaNet):
    ``a_t * ce * (1 - p_t)**gamma`` with ``p = sigmoid(input)``, ``ce`` the binary cross-entropy of
    the logits, ``p_t = p t + (1 - p)(1 - t)`` and ``a_t = alpha t + (1 - alpha)(1 - t)`` (1 when
    ``alpha < 0``). The default reduction is "none", as torchvision's.

    ``1 - p_t`` is computed as ``p (1 - t) + sigmoid(-input) t``, without torchvision's
    cancellation where ``p`` is close to ``t``. Deliberate differences: the arguments are named
    ``input, target`` (torchvision: ``inputs, targets``), and a negative or nan ``gamma`` raises
    ValueError.
    """,
         prepare=_sigmoid_focal),
    Loss("multi_margin_loss", "MultiMarginLoss", MARGIN, "multi_margin",
         (("p", 1), ("margin", 1.0), WEIGHT, REDUCTION),
         """Multi-class hinge loss: for each row of ``input`` (C,) or (N, C) with class index
    ``target``, ``sum over i != target of weight[target] * max(0, margin - input[target] +
    input[i])**p / C``, ``p`` 1 or 2. "mean" divides by the number of rows (not by the weights).

    As in PyTorch, a term whose margin is nan counts as not positive: it adds nothing to the loss
    or the gradient. A class index outside [0, C) raises ValueError naming the value and its
    position. Deliberate differences: over zero rows the mean is nan and the sum 0 (PyTorch returns
    an uninitialised value for both), 0-d input is refused, and class indices may be of any
    integer dtype.
    """,
         prepare=_multi_margin, targets="class"),
    Loss("multilabel_margin_loss", "MultiLabelMarginLoss", MARGIN, "multilabel_margin", (REDUCTION,),
         """Multi-label hinge loss: ``target`` holds class indices shaped like ``input`` (C,) or
    (N, C); each row's targets are its indices up to the first -1. A row's loss is ``sum over its
    targets j and the classes i not among them of max(0, 1 - input[j] + input[i]) / C`` (a target
    listed twice counts twice, as in PyTorch). "mean" divides by the number of rows.

    Every index must be in [-1, C), also after the first -1 (as PyTorch checks); one outside
    raises ValueError naming the value and its position. A nan margin adds nothing, as in PyTorch.
    Deliberate differences as :func:`multi_margin_loss`'s.
    """,
         targets="class_lists"),
    Loss("multilabel_soft_margin_loss", "MultiLabelSoftMarginLoss", MARGIN, "multilabel_soft_margin",
         (WEIGHT, REDUCTION),
         """Multi-label logistic loss: for each row of the last axis of ``input`` (..., C), with
    targets in [0, 1] shaped like it, ``-mean over i of weight[i] * (target[i] * log sigmoid(input[i])
    + (1 - target[i]) * log sigmoid(-input[i]))``; reduction "none" gives shape ``input.shape[:-1]``.

    ``weight`` broadcasts to the input. Computed as ``t softplus(-x) + (1 - t) softplus(x)`` with
    the shared ``log1p(exp(-|x|))`` taken once; infinite logits give PyTorch's inf and nan.
    Deliberate differences: ``target`` must have the input's dtype and shape, and ``weight`` must
    broadcast to the input's shape (PyTorch lets it broadcast the loss to a larger shape).
    """,
         targets="values"),
    Loss("margin_ranking_loss", "MarginRankingLoss", MULTI_INPUT, "margin_ranking", (("margin", 0.0), REDUCTION),
         """Ranking hinge: ``max(0, margin - target * (input1 - input2))`` per element, ``target`` 1
    where ``input1`` should rank higher and -1 where ``input2`` should.

    ``margin_ranking_loss_grad`` returns ``(d/d input1, d/d input2)``; the hinge's gradient flows
    where its argument is >= 0 (PyTorch's clamp_min). The three arrays must have one shape and
    dtype (PyTorch broadcasts arrays of the same number of dimensions).
    """,
         prepare=_margin_ranking, arguments=("input1", "input2", "target"), differentiable=(0, 1), layout="pair"),
    Loss("gaussian_nll_loss", "GaussianNLLLoss", MULTI_INPUT, "gaussian_nll", (("full", False), ("eps", 1e-6), REDUCTION),
         """Gaussian negative log-likelihood: ``0.5 (log(v) + (input - target)**2 / v)``, plus
    ``0.5 log(2 pi)`` when ``full``, with ``v = max(var, eps)``.

    ``var`` is shaped like ``input`` (a variance per element), like ``input`` without its last axis
    or with one axis of size 1 (a variance shared along that axis), or a Python float; a negative
    variance raises ValueError. ``gaussian_nll_loss_grad`` returns ``(d/d input, d/d var)``, the
    second shaped like ``var`` (0-d for a float). As in PyTorch, the clamp at ``eps`` is not
    differentiated: below it, d/d var is taken at ``eps`` (PyTorch clamps under ``no_grad``).
    ``target`` must have the input's shape and dtype.
    """,
         prepare=_gaussian_nll, arguments=("input", "target", "var"), differentiable=(0, 2), layout="gaussian"),
    Loss("cosine_embedding_loss", "CosineEmbeddingLoss", MULTI_INPUT, "cosine_embedding", (("margin", 0.0), REDUCTION),
         """Cosine embedding loss: per row of ``input1`` and ``input2`` (N, D) or (D,), with ``cos``
    their cosine similarity, ``1 - cos`` where ``target == 1``, ``max(0, cos - margin)`` where
    ``target == -1``, and 0 for any other target (as PyTorch).

    ``target`` holds one value per row, (N,) or (), of any integer or float dtype. The squared
    norms get PyTorch's 1e-12 before the square root; the sums are taken in double precision.
    ``cosine_embedding_loss_grad`` returns ``(d/d input1, d/d input2)``.
    """,
         prepare=_margin_ranking, arguments=("input1", "input2", "target"), differentiable=(0, 1),
         layout="rows_target"),
    Loss("triplet_margin_loss", "TripletMarginLoss", MULTI_INPUT, "triplet_margin",
         (("margin", 1.0), ("p", 2.0), ("eps", 1e-6), ("swap", False), REDUCTION),
         """Triplet loss: per row of the last axis,
    ``max(0, margin + d(anchor, positive) - d(anchor, negative))`` with ``d(u, v)`` the p-norm of
    ``u - v + eps`` (PyTorch's
    ``pairwise_distance``); with ``swap``, the second distance is the smaller of it and
    ``d(positive, negative)`` (a tie splits the gradient in halves, as PyTorch's minimum).

    The three arrays have one shape, at least 1-d; "none" gives ``anchor.shape[:-1]``.
    ``triplet_margin_loss_grad`` returns ``(d/d anchor, d/d positive, d/d negative)``; a zero
    distance has a zero gradient (PyTorch's norm backward). ``margin`` must be > 0 (as PyTorch).
    Deliberate difference: ``p`` must be positive and finite (PyTorch also takes 0 and inf).
    """,
         prepare=_triplet_margin, arguments=("anchor", "positive", "negative"), differentiable=(0, 1, 2),
         layout="rows"),
    Loss("ctc_loss", "CTCLoss", CTC, "ctc", (("blank", 0), REDUCTION, ("zero_infinity", False)),
         """Connectionist temporal classification loss: per sequence, ``-log`` of the total
    probability of every alignment of its target to its input (Graves et al., 2006), computed by
    the forward (alpha) and backward (beta) recursions in log space.

    ``log_probs``: (T, N, C) log-probabilities over C classes (class ``blank`` among them) at T
    time steps for N sequences, or (T, C) unbatched; sequence n uses its first
    ``input_lengths[n]`` steps. ``targets``: class indices of any integer dtype, padded (N, S) with
    row n's first ``target_lengths[n]`` used (the rest is not read), or concatenated (the sum of
    ``target_lengths``,); unbatched, (target_length,) or (1, S). ``input_lengths``, ``target_lengths``: (N,) integers
    (arrays or sequences; unbatched an integer). A target needs at least as many steps as its
    labels plus its repeats; a sequence with none gives +inf (its gradient nan, as PyTorch's), or
    0 and a zero gradient with ``zero_infinity``. "mean" divides each sequence's loss by its target
    length (at least 1), then averages over the batch, as PyTorch.

    The gradient is PyTorch's: ``exp(log_probs) - exp(log_ab - loss - log_probs)`` over the input's
    steps (0 after them), where ``log_ab`` sums alpha beta over the target's states of each class.
    That is the derivative with respect to the logits whose ``log_softmax`` ``log_probs`` are; the
    derivative with respect to ``log_probs`` itself lacks the ``exp(log_probs)`` term, which
    ``log_softmax``'s backward removes. Computed in double for float32 too.
    Deliberate differences: a used target outside [0, C) raises ValueError naming its position
    (PyTorch reads out of bounds); float targets are refused; empty ``log_probs`` are accepted.
    """,
         prepare=_ctc, arguments=("log_probs", "targets", "input_lengths", "target_lengths")),
    Loss("cross_entropy", "CrossEntropyLoss", CLASSIFICATION, "cross_entropy",
         (WEIGHT, ("ignore_index", -100), REDUCTION, ("label_smoothing", 0.0)),
         """Cross-entropy of logits: ``log_softmax`` over the class axis, then NLL.

    ``input``: (N, C), (N, C, d1, ..., dK) for any K (e.g. images (N, C, H, W)), or unbatched (C,).
    ``target``: class indices of any integer dtype, shaped (N, d1, ..., dK) (unbatched: a scalar),
    or class probabilities of a float dtype shaped like ``input``.

    The log-sum-exp subtracts each position's maximum, so logits of +-1e4 and classes masked
    with -inf give what PyTorch gives. ``weight`` (C,) weighs each class; "mean" divides by the
    summed weight of the non-ignored targets (probability targets: by N*d1*...*dK), so when every
    target is ``ignore_index`` the mean is nan and the gradient zero, as in PyTorch.
    ``label_smoothing`` in [0, 1] mixes the target with the uniform distribution (PyTorch treats
    a negative value as 0; lossk raises ValueError). A class index outside [0, C) that is not
    ``ignore_index`` raises ValueError naming the value and its position, before anything is
    written.
    """,
         prob_kernel="cross_entropy_prob"),
    Loss("nll_loss", "NLLLoss", CLASSIFICATION, "nll", (WEIGHT, ("ignore_index", -100), REDUCTION),
         """Negative log-likelihood of log-probabilities: ``-weight[t] * input[n, t, ...]``.

    Shapes as :func:`cross_entropy` with class-index targets, including the spatial form
    (N, C, H, W) with target (N, H, W) (PyTorch's NLLLoss2d). "mean" divides by the summed weight
    of the non-ignored targets.
    """),
)

BY_NAME = {loss.name: loss for loss in LOSSES}

GRAD_OPTIONS = (("grad_output", 1.0), ("out", None))
WITH_GRAD_OPTIONS = (("out", None),)
SUFFIXES = {"": (), "_grad": GRAD_OPTIONS, "_with_grad": WITH_GRAD_OPTIONS}


# --- type stubs -----------------------------------------------------------------------------------

_STUB_TYPES = {
    "reduction": "_Reduction", "weight": "Optional[ArrayLike]", "pos_weight": "Optional[ArrayLike]",
    "ignore_index": "int", "label_smoothing": "float", "beta": "float", "delta": "float",
    "log_target": "bool", "margin": "float", "log_input": "bool", "full": "bool", "eps": "float",
    "alpha": "float", "gamma": "float", "p": "int", "swap": "bool", "blank": "int", "zero_infinity": "bool", "grad_output": "Union[float, ArrayLike]", "out": "Optional[_Array]",
}
_STUB_RETURNS = {"": "_LossValue", "_grad": "_Array", "_with_grad": "Tuple[_LossValue, _Array]"}
_STUB_MULTI_RETURNS = {"": "_LossValue", "_grad": "Tuple[_Array, ...]", "_with_grad": "Tuple[_LossValue, Tuple[_Array, ...]]"}
_STUB_HEAD = '''"""Types of lossk.functional; generated by lossk/_losses.py from its loss table."""
from typing import Any, List, Literal, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

_Array = npt.NDArray[np.floating[Any]]
_LossValue = Union[np.floating[Any], _Array]
_Reduction = Literal["none", "mean", "sum"]
_KLReduction = Literal["none", "mean", "sum", "batchmean"]
'''
NN_BEGIN = "# --- loss modules: generated by lossk/_losses.py from its loss table ---\n"
NN_END = "# --- end of the generated loss modules ---\n"


def _stub_type(loss, option):
    if option == "reduction" and "batchmean" in loss.reductions:
        return "_KLReduction"
    if option == "p" and loss.family == MULTI_INPUT:
        return "float"
    if option == "out" and loss.family == MULTI_INPUT:
        return "Optional[Tuple[_Array, ...]]"
    return _STUB_TYPES[option]


def _stub_params(loss, options):
    return ", ".join(f"{name}: {_stub_type(loss, name)} = ..." for name, _ in options)


def stubs():
    """(functional.pyi, the loss-module block of nn.pyi) as text."""
    names = ", ".join(f'"{loss.name}{suffix}"' for loss in LOSSES for suffix in SUFFIXES)
    functional = [_STUB_HEAD, f"\n__all__ = [{names}]\n"]
    modules = [NN_BEGIN, "\n__all__ += [" + ", ".join(f'"{loss.module}"' for loss in LOSSES) + "]\n"]
    for loss in LOSSES:
        for suffix, extra in SUFFIXES.items():
            params = _stub_params(loss, loss.options + extra)
            arrays = ", ".join(f"{a}: {'Union[ArrayLike, float]' if a == 'var' else 'ArrayLike'}"
                               for a in loss.arguments)
            returns = (_STUB_MULTI_RETURNS if loss.family == MULTI_INPUT else _STUB_RETURNS)[suffix]
            functional.append(f"\ndef {loss.name}{suffix}({arrays}, *, {params}) -> {returns}: ...\n")
        base = "_MultiInputLoss" if loss.family == MULTI_INPUT else "_Loss"
        modules.append(f"\nclass {loss.module}({base}):\n"
                       f"    def __init__(self, {_stub_params(loss, loss.module_options())}) -> None: ...\n")
    modules.append(NN_END)
    return "".join(functional), "".join(modules)


def dask_stubs():
    """dask.pyi as text: lossk.functional's signatures without out, Dask arrays in and out."""
    names = ", ".join(f'"{loss.name}{suffix}"' for loss in LOSSES for suffix in SUFFIXES)
    text = ['"""Types of lossk.dask; generated by lossk/_losses.py from its loss table."""\n'
            "from typing import Any, Literal, Optional, Tuple, Union\n\n"
            "from numpy.typing import ArrayLike\n\n"
            "_DaskArray = Any   # dask.array.Array (Dask ships no types for it)\n"
            "_Input = Union[_DaskArray, ArrayLike]\n"
            '_Reduction = Literal["none", "mean", "sum"]\n'
            '_KLReduction = Literal["none", "mean", "sum", "batchmean"]\n'
            f"\n__all__ = [{names}]\n"]
    returns = {"": "_DaskArray", "_grad": "_DaskArray", "_with_grad": "Tuple[_DaskArray, _DaskArray]"}
    for loss in LOSSES:
        for suffix, extra in SUFFIXES.items():
            options = loss.options + tuple(o for o in extra if o[0] != "out")
            params = _stub_params(loss, options).replace("Optional[ArrayLike]", "Optional[_Input]").replace(
                "Union[float, ArrayLike]", "Union[float, _Input]")
            arrays = ", ".join(f"{a}: {'Union[_Input, float]' if a == 'var' else '_Input'}" for a in loss.arguments)
            text.append(f"\ndef {loss.name}{suffix}({arrays}, *, {params}) -> {returns[suffix]}: ...\n")
    return "".join(text)


def write_stubs(package):
    """Rewrite package/functional.pyi, package/dask.pyi and the generated block of package/nn.pyi."""
    functional, modules = stubs()
    (package / "functional.pyi").write_text(functional)
    (package / "dask.pyi").write_text(dask_stubs())
    nn = package / "nn.pyi"
    text = nn.read_text()
    head, rest = text.split(NN_BEGIN)
    nn.write_text(head + modules + rest.split(NN_END)[1])


if __name__ == "__main__":
    write_stubs(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
