"""Types of lossk.linear_loss."""
from typing import Any, Literal, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

_Array = npt.NDArray[np.floating[Any]]
_LossValue = Union[np.floating[Any], _Array]
_Reduction = Literal["none", "mean", "sum"]

__all__ = ["linear_cross_entropy", "linear_cross_entropy_grad", "linear_cross_entropy_with_grad"]

def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: Optional[ArrayLike] = ..., weight: Optional[ArrayLike] = ...,
                         reduction: _Reduction = ..., ignore_index: int = ..., label_smoothing: float = ...,
                         chunk_size: Optional[int] = ...) -> _LossValue: ...
def linear_cross_entropy_grad(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                              linear_bias: Optional[ArrayLike] = ..., weight: Optional[ArrayLike] = ...,
                              reduction: _Reduction = ..., ignore_index: int = ..., label_smoothing: float = ...,
                              chunk_size: Optional[int] = ..., grad_output: Union[float, ArrayLike] = ...
                              ) -> Tuple[_Array, _Array, Optional[_Array]]: ...
def linear_cross_entropy_with_grad(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                                   linear_bias: Optional[ArrayLike] = ..., weight: Optional[ArrayLike] = ...,
                                   reduction: _Reduction = ..., ignore_index: int = ..., label_smoothing: float = ...,
                                   chunk_size: Optional[int] = ...
                                   ) -> Tuple[_LossValue, _Array, _Array, Optional[_Array]]: ...
