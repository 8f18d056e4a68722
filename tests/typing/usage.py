"""A typed program using lossk's public API; tests/test_typing.py checks it with mypy --strict."""
import numpy as np
import numpy.typing as npt

import lossk
from lossk import nn, optim


def train(steps: int) -> float:
    rng = np.random.default_rng(0)
    x: npt.NDArray[np.float32] = rng.normal(size=(8, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, size=8)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64, 4, rng=0))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = 0.0
    for _ in range(steps):
        sgd.zero_grad()
        loss = float(criterion(model(x), y))
        model.backward(criterion.backward(), input_grad=False)
        sgd.step()
    return loss


def losses() -> None:
    x = np.linspace(-2, 2, 12, dtype=np.float64).reshape(3, 4)
    t = np.zeros_like(x)
    value, grad = lossk.huber_loss_with_grad(x, t, delta=0.5)
    buffer: npt.NDArray[np.floating] = np.empty_like(x)
    lossk.smooth_l1_loss_grad(x, t, reduction="sum", beta=0.5, out=buffer)
    per_element = lossk.functional.mse_loss(x, t, reduction="none")
    ce = lossk.cross_entropy(x, np.array([0, 1, 3]), weight=np.ones(4), ignore_index=1)
    kl = lossk.kl_div(np.log(np.full((2, 2), 0.25)), np.full((2, 2), 0.25), reduction="batchmean")
    lossk.set_num_threads(lossk.get_num_threads())
    with lossk.no_grad():
        scores = nn.Linear(4, 2, dtype=np.float64, rng=1)(x)
    print(value, grad.shape, per_element, ce, kl, scores.shape, lossk.isa(), train(2))


if __name__ == "__main__":
    losses()
