"""Types of lossk."""
from typing import List

from . import functional as functional
from . import nn as nn
from . import optim as optim
from .functional import *
from .nn import no_grad as no_grad

__version__: str
__all__: List[str]

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def isa() -> str: ...
def set_result_cache_limit(nbytes: int) -> int: ...
def result_cache_held() -> int: ...
