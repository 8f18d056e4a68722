"""lossk: fast, exact loss functions and their gradients, NumPy in and NumPy out.

The losses follow PyTorch's ``torch.nn.functional`` (see :mod:`lossk.functional`); each is computed
by OpenMP-parallel C kernels, with the GIL released.
"""
from ._core import get_num_threads, isa, set_num_threads
from .functional import *  # noqa: F401,F403
from .functional import __all__ as _functional_all
from .nn import no_grad

__version__ = "0.1.0"
__all__ = list(_functional_all) + ["set_num_threads", "get_num_threads", "isa", "no_grad"]
