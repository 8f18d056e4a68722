"""lossk: fast, exact loss functions and their gradients, NumPy in and NumPy out.

The losses follow PyTorch's ``torch.nn.functional`` (see :mod:`lossk.functional`); each is computed
by OpenMP-parallel C kernels, with the GIL released.
"""
from . import _core
from ._core import get_num_threads, isa, set_num_threads
from .functional import *  # noqa: F401,F403
from .functional import __all__ as _functional_all
from .linear_loss import linear_cross_entropy, linear_cross_entropy_grad, linear_cross_entropy_with_grad
from .nn import no_grad

__version__ = "0.1.0"
__all__ = list(_functional_all) + ["linear_cross_entropy", "linear_cross_entropy_grad",
                                   "linear_cross_entropy_with_grad", "set_num_threads", "get_num_threads", "isa", "no_grad",
                                   "set_result_cache_limit", "result_cache_held"]


def set_result_cache_limit(nbytes):
    """Set how many bytes of freed result arrays lossk keeps for reuse; return the old limit.

    The gradients and per-element losses lossk allocates (from 1 MiB up) come from a small cache:
    when such an array is freed, its memory waits there (at most 8 blocks, ``nbytes`` in all,
    512 MiB by default), and the next result of exactly that size reuses it. A training loop that
    does not pass ``out=`` then stops paying the page faults (and the kernel's zeroing) of a fresh
    allocation at every step. ``set_result_cache_limit(0)`` turns the cache off and frees what it
    holds."""
    return _core.set_result_cache_limit(nbytes)


def result_cache_held():
    """Bytes of freed result arrays the cache holds now (see :func:`set_result_cache_limit`)."""
    return _core.result_cache_held()
