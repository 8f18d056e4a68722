"""Optimisers over :class:`lossk.nn.Parameter` objects, updating ``.data`` in place."""
import math

import numpy as np

__all__ = ["SGD"]


def _non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or value < 0:
        raise ValueError(f"Invalid {name} value: {value}")
    return value


class SGD:
    """Stochastic gradient descent with PyTorch's exact update rule (``torch.optim.SGD``):

    g = grad + weight_decay * param; with momentum, buf = g on the first step, else
    buf = momentum * buf + (1 - dampening) * g, and g = g + momentum * buf (nesterov) or buf;
    then param -= lr * g.
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        self.lr = _non_negative("learning rate", lr)
        self.momentum = _non_negative("momentum", momentum)
        self.dampening = float(dampening)
        if math.isnan(self.dampening):
            raise ValueError("Invalid dampening value: nan")
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for p in self.params:
            if not (hasattr(p, "data") and hasattr(p, "grad")):
                raise TypeError(f"SGD: expected Parameter objects (with .data and .grad), got {type(p).__name__}")
        self._buffers = [None] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    def step(self):
        lr, mom, wd = self.lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            g = p.grad
            if wd != 0:
                g = g + p.data * p.data.dtype.type(wd)
            if mom != 0:
                buf = self._buffers[i]
                if buf is None:
                    buf = self._buffers[i] = g.copy()
                else:
                    buf *= p.data.dtype.type(mom)
                    buf += g * p.data.dtype.type(1 - self.dampening)
                g = g + buf * p.data.dtype.type(mom) if self.nesterov else buf
            p.data -= g * p.data.dtype.type(lr)

    def state_dict(self):
        """The momentum buffers (None before the first step), copied."""
        return {"momentum_buffer": [None if b is None else b.copy() for b in self._buffers]}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned. Everything is checked before anything is
        changed: one buffer (or None) per parameter, each shaped like it."""
        try:
            buffers = list(state["momentum_buffer"])
        except (KeyError, TypeError):
            raise ValueError("state: expected a dict with a 'momentum_buffer' list, as state_dict() returns") from None
        if len(buffers) != len(self.params):
            raise ValueError(f"state: {len(buffers)} momentum buffers for {len(self.params)} parameters")
        for i, (b, p) in enumerate(zip(buffers, self.params)):
            if b is not None and np.shape(b) != p.data.shape:
                raise ValueError(f"state: momentum buffer {i} has shape {np.shape(b)}, its parameter {p.data.shape}")
        self._buffers = [None if b is None else np.array(b, dtype=p.data.dtype) for b, p in zip(buffers, self.params)]
