"""Types of lossk.optim."""
from typing import Any, Dict, Iterable, List

from .nn import Parameter

__all__ = ["SGD"]

class SGD:
    lr: float
    momentum: float
    dampening: float
    weight_decay: float
    nesterov: bool
    params: List[Parameter]
    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = ..., dampening: float = ...,
                 weight_decay: float = ..., nesterov: bool = ...) -> None: ...
    def zero_grad(self) -> None: ...
    def step(self) -> None: ...
    def state_dict(self) -> Dict[str, Any]: ...
    def load_state_dict(self, state: Dict[str, Any]) -> None: ...
