"""Types of lossk."""
from typing import List

from . import functional as functional
from . import linear_loss as linear_loss
from . import nn as nn
from . import optim as optim
from .functional import *
from .linear_loss import linear_cross_entropy as linear_cross_entropy
from .linear_loss import linear_cross_entropy_grad as linear_cross_entropy_grad
from .linear_loss import linear_cross_entropy_with_grad as linear_cross_entropy_with_grad
from .nn import no_grad as no_grad

__version__: str
__all__: List[str]

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def isa() -> str: ...
def set_result_cache_limit(nbytes: int) -> int: ...
def result_cache_held() -> int: ...
