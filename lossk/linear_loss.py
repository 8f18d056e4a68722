"""The cross-entropy of a linear layer's output, computed with the layer a chunk of rows at a time.

A language model's head multiplies hidden states (N, D) by a (V, D) weight into (N, V) logits and
takes their cross-entropy: with a large vocabulary V the logits and their gradient are most of
the step's memory. :func:`linear_cross_entropy` never holds more than one chunk of them.
"""
from . import _core
from ._core import BOTH, GRAD, LOSS

__all__ = ["linear_cross_entropy", "linear_cross_entropy_grad", "linear_cross_entropy_with_grad"]

_ARGS = """
    Arguments:

    - ``input``: (N, D) or (D,) hidden states, float32 or float64.
    - ``linear_weight``: (V, D), the dtype of input.
    - ``target``: (N,) or () class indices in [0, V) or equal to ``ignore_index``, of an integer dtype.
    - ``linear_bias``: None, or (V,) of input's dtype.
    - ``weight``: None, or (V,) class weights.
    - ``reduction``: "mean" (weighted by ``weight``, over the targets not ignored), "sum" or "none".
    - ``ignore_index``: targets equal to it contribute nothing (loss 0, gradient 0).
    - ``label_smoothing``: in [0, 1], as cross_entropy's.
    - ``chunk_size``: rows per chunk; None: the most rows (in multiples of 16, at least 16) whose
      work memory is at most an eighth of the whole (N, V) logits' and 256 MiB.

    Memory: besides its arguments and results, a call allocates ``chunk * (2 V + D)`` values
    (``chunk * (V + D)`` without gradients): one chunk's logits, their gradient, and its input rows
    transposed; nothing of size N V.

    Exactness: the products sum each element in one fixed order and the weight's and bias's
    gradients add the chunks in row order, so the gradients are bit-identical whatever the thread
    count and the chunk size; the loss adds the chunks' sums (each in double) in order, so it
    depends on ``chunk_size`` in its last bits, never on the thread count.

    Differences from PyTorch: targets must be class indices (probability targets: compute the
    logits and call :func:`lossk.cross_entropy`); ``linear_weight`` must be (V, D) (no
    K-dimensional output); ``ignore_index`` is an int (-100), not None.
"""


def _call(input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing,
          chunk_size, mode, grad_output=1.0):
    return _core.linear_cross_entropy(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
                                      label_smoothing, chunk_size, grad_output, mode)


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=-100, label_smoothing=0.0, chunk_size=None):
    return _call(input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing,
                 chunk_size, LOSS)


def linear_cross_entropy_grad(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                              ignore_index=-100, label_smoothing=0.0, chunk_size=None, grad_output=1.0):
    return _call(input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing,
                 chunk_size, GRAD, grad_output)


def linear_cross_entropy_with_grad(input, linear_weight, target, *, linear_bias=None, weight=None,
                                   reduction="mean", ignore_index=-100, label_smoothing=0.0, chunk_size=None):
    loss, grads = _call(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
                        label_smoothing, chunk_size, BOTH)
    return (loss,) + grads


linear_cross_entropy.__doc__ = """cross_entropy(input @ linear_weight.T + linear_bias, target), a chunk of rows at a time.

    As ``torch.nn.functional.linear_cross_entropy``: the loss, a scalar (a float32 or float64 NumPy
    scalar like input) or (N,) for reduction "none".
""" + _ARGS

linear_cross_entropy_grad.__doc__ = """The gradients of :func:`linear_cross_entropy` times ``grad_output``.

    Returns (grad_input, grad_linear_weight, grad_linear_bias), new arrays shaped like input,
    linear_weight and linear_bias (None without a bias). grad_output: a scalar, or (N,) values for
    reduction "none".
""" + _ARGS

linear_cross_entropy_with_grad.__doc__ = """The loss and gradients of :func:`linear_cross_entropy` in one pass.

    Returns (loss, grad_input, grad_linear_weight, grad_linear_bias), as :func:`linear_cross_entropy`
    and :func:`linear_cross_entropy_grad` (grad_output 1).
""" + _ARGS
