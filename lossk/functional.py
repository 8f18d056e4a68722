"""Loss functions with PyTorch's ``torch.nn.functional`` semantics, on NumPy arrays.

Every loss ``NAME`` comes with two companions:

- ``NAME_grad(..., grad_output=1.0, out=None)``: d(loss)/d(input) times ``grad_output`` (a scalar
  for reduction "mean"/"sum", a scalar or an array shaped like the loss for "none"), an array
  shaped and typed like ``input``, written into ``out`` when given;
- ``NAME_with_grad(..., out=None)``: ``(loss, grad)`` from one fused pass over the data.

Inputs are float32 or float64 arrays (computed natively, results keep the dtype); options are
keyword-only. Reduced losses are NumPy scalars; reduction "none" gives an array shaped like the
loss. Sums accumulate in double precision over a fixed partition of the data, so results are
bit-identical for any thread count.

Deliberate differences from PyTorch: ``target`` must have the input's shape (PyTorch broadcasts
some losses with a warning); ``cross_entropy`` rejects ``label_smoothing`` < 0 (PyTorch treats it
as 0); class-index targets may be of any integer dtype.
"""
import math

from . import _core
from ._core import BOTH, GRAD

__all__ = [
    f"{name}{suffix}"
    for name in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "kl_div", "cross_entropy", "nll_loss")
    for suffix in ("", "_grad", "_with_grad")
]


def _companions(loss):
    """Document NAME_grad and NAME_with_grad from NAME's docstring."""
    name = loss.__name__

    def document(fn):
        if fn.__name__.endswith("_with_grad"):
            head = (f"``({name}(...), {name}_grad(...))`` computed in one fused pass; the gradient is for "
                    "grad_output=1 and goes into ``out`` when given.")
        else:
            head = (f"Gradient of :func:`{name}` with respect to ``input``, times ``grad_output`` (a scalar "
                    "for reduction 'mean'/'sum'; a scalar or an array shaped like the loss for 'none'). "
                    "Shaped and typed like ``input``; written into ``out`` (C-contiguous, aligned, same shape and "
                    "dtype) when given.")
        fn.__doc__ = f"{head}\n\nSee {name}:\n\n{loss.__doc__}"
        return fn

    return document


def _check_positive(name, value, allow_zero):
    value = float(value)
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {value}")
    return value


# --- L1 -------------------------------------------------------------------------------------

def l1_loss(input, target, *, reduction="mean"):
    """L1 loss: ``|input - target|``, reduced by ``reduction`` ("mean", "sum" or "none").

    The gradient is ``sign(input - target)``, 0 where input == target (as PyTorch).
    """
    return _core.elementwise(_core.L1, input, target, reduction)


@_companions(l1_loss)
def l1_loss_grad(input, target, *, reduction="mean", grad_output=1.0, out=None):
    return _core.elementwise(_core.L1, input, target, reduction, grad_output=grad_output, mode=GRAD, out=out)


@_companions(l1_loss)
def l1_loss_with_grad(input, target, *, reduction="mean", out=None):
    return _core.elementwise(_core.L1, input, target, reduction, mode=BOTH, out=out)


# --- MSE ------------------------------------------------------------------------------------

def mse_loss(input, target, *, reduction="mean"):
    """Squared error: ``(input - target)**2``, reduced by ``reduction`` ("mean", "sum", "none")."""
    return _core.elementwise(_core.MSE, input, target, reduction)


@_companions(mse_loss)
def mse_loss_grad(input, target, *, reduction="mean", grad_output=1.0, out=None):
    return _core.elementwise(_core.MSE, input, target, reduction, grad_output=grad_output, mode=GRAD, out=out)


@_companions(mse_loss)
def mse_loss_with_grad(input, target, *, reduction="mean", out=None):
    return _core.elementwise(_core.MSE, input, target, reduction, mode=BOTH, out=out)


# --- SmoothL1 -------------------------------------------------------------------------------

def _smooth_l1(beta):
    beta = _check_positive("beta", beta, allow_zero=True)
    return (_core.L1, 0.0) if beta == 0 else (_core.SMOOTH_L1, beta)


def smooth_l1_loss(input, target, *, reduction="mean", beta=1.0):
    """Smooth L1 loss: with ``z = |input - target|``, ``0.5 z**2 / beta`` where ``z < beta``,
    else ``z - 0.5 beta``. ``beta`` must be >= 0; ``beta=0`` is exactly :func:`l1_loss`."""
    kind, beta = _smooth_l1(beta)
    return _core.elementwise(kind, input, target, reduction, param=beta)


@_companions(smooth_l1_loss)
def smooth_l1_loss_grad(input, target, *, reduction="mean", beta=1.0, grad_output=1.0, out=None):
    kind, beta = _smooth_l1(beta)
    return _core.elementwise(kind, input, target, reduction, param=beta, grad_output=grad_output, mode=GRAD,
                             out=out)


@_companions(smooth_l1_loss)
def smooth_l1_loss_with_grad(input, target, *, reduction="mean", beta=1.0, out=None):
    kind, beta = _smooth_l1(beta)
    return _core.elementwise(kind, input, target, reduction, param=beta, mode=BOTH, out=out)


# --- Huber ----------------------------------------------------------------------------------

def huber_loss(input, target, *, reduction="mean", delta=1.0):
    """Huber loss: with ``z = |input - target|``, ``0.5 z**2`` where ``z < delta``, else
    ``delta (z - 0.5 delta)``. ``delta`` must be > 0."""
    return _core.elementwise(_core.HUBER, input, target, reduction, param=_check_positive("delta", delta, False))


@_companions(huber_loss)
def huber_loss_grad(input, target, *, reduction="mean", delta=1.0, grad_output=1.0, out=None):
    return _core.elementwise(_core.HUBER, input, target, reduction, param=_check_positive("delta", delta, False),
                             grad_output=grad_output, mode=GRAD, out=out)


@_companions(huber_loss)
def huber_loss_with_grad(input, target, *, reduction="mean", delta=1.0, out=None):
    return _core.elementwise(_core.HUBER, input, target, reduction, param=_check_positive("delta", delta, False),
                             mode=BOTH, out=out)


# --- Binary cross-entropy -------------------------------------------------------------------

def binary_cross_entropy(input, target, *, weight=None, reduction="mean"):
    """Binary cross-entropy of probabilities: ``-w (t log(x) + (1 - t) log(1 - x))``.

    ``input`` must lie in [0, 1] (else ValueError naming the first offending element; nan is
    outside too). As in PyTorch, each log term is clamped at -100, so the loss is finite at 0
    and 1, and the gradient ``w (x - t) / max(x (1 - x), 1e-12)`` is finite too. ``weight``
    broadcasts to the input's shape by NumPy rules.
    """
    return _core.elementwise(_core.BCE, input, target, reduction, weight=weight)


@_companions(binary_cross_entropy)
def binary_cross_entropy_grad(input, target, *, weight=None, reduction="mean", grad_output=1.0, out=None):
    return _core.elementwise(_core.BCE, input, target, reduction, weight=weight, grad_output=grad_output,
                             mode=GRAD, out=out)


@_companions(binary_cross_entropy)
def binary_cross_entropy_with_grad(input, target, *, weight=None, reduction="mean", out=None):
    return _core.elementwise(_core.BCE, input, target, reduction, weight=weight, mode=BOTH, out=out)


def binary_cross_entropy_with_logits(input, target, *, weight=None, pos_weight=None, reduction="mean"):
    """Binary cross-entropy of logits: ``w ((1 - t) x - (1 + (p - 1) t) log(sigmoid(x)))``.

    Computed in the stable form (``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``): no overflow
    for logits of +-1e4. ``pos_weight`` (p) weighs the positive term and broadcasts like PyTorch's
    (typically one value per class, over the last dimension); ``weight`` broadcasts to the input.
    """
    return _core.elementwise(_core.BCE_LOGITS, input, target, reduction, weight=weight, pos_weight=pos_weight)


@_companions(binary_cross_entropy_with_logits)
def binary_cross_entropy_with_logits_grad(input, target, *, weight=None, pos_weight=None, reduction="mean",
                                          grad_output=1.0, out=None):
    return _core.elementwise(_core.BCE_LOGITS, input, target, reduction, weight=weight, pos_weight=pos_weight,
                             grad_output=grad_output, mode=GRAD, out=out)


@_companions(binary_cross_entropy_with_logits)
def binary_cross_entropy_with_logits_with_grad(input, target, *, weight=None, pos_weight=None, reduction="mean",
                                               out=None):
    return _core.elementwise(_core.BCE_LOGITS, input, target, reduction, weight=weight, pos_weight=pos_weight,
                             mode=BOTH, out=out)


# --- KL divergence --------------------------------------------------------------------------

def kl_div(input, target, *, reduction="mean", log_target=False):
    """Kullback-Leibler divergence, with ``input`` log-probabilities: ``t (log t - x)`` (0 where
    t == 0), or ``exp(t) (t - x)`` when ``log_target``. ``reduction`` may also be "batchmean":
    the sum divided by ``input.shape[0]`` (the KL divergence proper, per sample)."""
    return _core.elementwise(_core.KL_DIV, input, target, reduction, param=float(bool(log_target)))


@_companions(kl_div)
def kl_div_grad(input, target, *, reduction="mean", log_target=False, grad_output=1.0, out=None):
    return _core.elementwise(_core.KL_DIV, input, target, reduction, param=float(bool(log_target)),
                             grad_output=grad_output, mode=GRAD, out=out)


@_companions(kl_div)
def kl_div_with_grad(input, target, *, reduction="mean", log_target=False, out=None):
    return _core.elementwise(_core.KL_DIV, input, target, reduction, param=float(bool(log_target)), mode=BOTH,
                             out=out)


# --- Cross-entropy and NLL ------------------------------------------------------------------

def cross_entropy(input, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
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
    """
    return _core.classification(_core.CROSS_ENTROPY, input, target, reduction, weight=weight,
                                ignore_index=ignore_index, label_smoothing=label_smoothing)


@_companions(cross_entropy)
def cross_entropy_grad(input, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                       grad_output=1.0, out=None):
    return _core.classification(_core.CROSS_ENTROPY, input, target, reduction, weight=weight,
                                ignore_index=ignore_index, label_smoothing=label_smoothing,
                                grad_output=grad_output, mode=GRAD, out=out)


@_companions(cross_entropy)
def cross_entropy_with_grad(input, target, *, weight=None, ignore_index=-100, reduction="mean",
                            label_smoothing=0.0, out=None):
    return _core.classification(_core.CROSS_ENTROPY, input, target, reduction, weight=weight,
                                ignore_index=ignore_index, label_smoothing=label_smoothing, mode=BOTH, out=out)


def nll_loss(input, target, *, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities: ``-weight[t] * input[n, t, ...]``.

    Shapes as :func:`cross_entropy` with class-index targets, including the spatial form
    (N, C, H, W) with target (N, H, W) (PyTorch's NLLLoss2d). "mean" divides by the summed weight
    of the non-ignored targets.
    """
    return _core.classification(_core.NLL, input, target, reduction, weight=weight, ignore_index=ignore_index)


@_companions(nll_loss)
def nll_loss_grad(input, target, *, weight=None, ignore_index=-100, reduction="mean", grad_output=1.0, out=None):
    return _core.classification(_core.NLL, input, target, reduction, weight=weight, ignore_index=ignore_index,
                                grad_output=grad_output, mode=GRAD, out=out)


@_companions(nll_loss)
def nll_loss_with_grad(input, target, *, weight=None, ignore_index=-100, reduction="mean", out=None):
    return _core.classification(_core.NLL, input, target, reduction, weight=weight, ignore_index=ignore_index,
                                mode=BOTH, out=out)
