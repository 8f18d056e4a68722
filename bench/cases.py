"""The one table of benchmark cases, shared by the pytest-benchmark suite and ``report.py``.

Each :class:`Loss` says how to make inputs, what a straightforward NumPy forward + gradient looks
like (what a user would write), which options lossk and PyTorch get, and how many bytes the
lossk calls must move at the least (the "floor" traffic). A :class:`Case` is one loss at one
shape and dtype; :data:`VARIANTS` are the ways of computing it that are timed side by side:
lossk's fused call (reusing the gradient buffer through ``out=``, or allocating it), its
loss-only and gradient-only calls, the NumPy reference, and PyTorch forward + backward and
forward only (when PyTorch is installed).
"""
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Optional

import numpy as np

import lossk

try:
    import torch
    import torch.nn.functional as torch_F
except ImportError:  # PyTorch is optional: its variants are skipped
    torch = torch_F = None

DTYPES = ("float32", "float64")


# --- inputs ------------------------------------------------------------------------------------

def _uniform(rng, shape, dtype, low, high):
    a = rng.random(shape, dtype=dtype)
    a *= high - low
    a += low
    return a


def regression(rng, shape, dtype):
    return rng.standard_normal(shape, dtype=dtype), rng.standard_normal(shape, dtype=dtype)


def probabilities(rng, shape, dtype):
    """BCE: probabilities strictly inside (0, 1), soft targets in [0, 1)."""
    return _uniform(rng, shape, dtype, 0.02, 0.98), rng.random(shape, dtype=dtype)


def logits_and_probabilities(rng, shape, dtype):
    x = rng.standard_normal(shape, dtype=dtype)
    x *= 3
    return x, rng.random(shape, dtype=dtype)


def log_probs_and_probs(rng, shape, dtype):
    """kl_div: log-probabilities in [log 0.01, 0), target probabilities with a quarter exact zeros."""
    x = np.log(_uniform(rng, shape, dtype, 0.01, 1.0))
    t = rng.random(shape, dtype=dtype)
    t[rng.random(shape, dtype=np.float32) < 0.25] = 0
    return x, t


def signs(rng, shape, dtype):
    """Margin losses: scores and targets of 1 or -1."""
    t = rng.random(shape, dtype=dtype)
    return rng.standard_normal(shape, dtype=dtype), np.where(t < 0.5, -1, 1).astype(dtype)


def log_rates_and_counts(rng, shape, dtype):
    """poisson_nll_loss: log rates and Poisson counts drawn from them."""
    x = rng.standard_normal(shape, dtype=dtype)
    return x, rng.poisson(np.exp(x)).astype(dtype)


def logits_and_labels(rng, shape, dtype):
    """sigmoid_focal_loss: detection logits and 0/1 labels (a tenth positive)."""
    x = rng.standard_normal(shape, dtype=dtype)
    x *= 3
    return x, (rng.random(shape, dtype=dtype) < 0.1).astype(dtype)


def logits_and_classes(rng, shape, dtype):
    """(N, C, d1, ...) logits and int64 class indices shaped (N, d1, ...)."""
    x = rng.standard_normal(shape, dtype=dtype)
    x *= 2
    return x, rng.integers(0, shape[1], (shape[0],) + tuple(shape[2:]), dtype=np.int64)


def scores_and_classes(rng, shape, dtype):
    """multi_margin_loss: (N, C) scores and an int64 class index per row."""
    return rng.standard_normal(shape, dtype=dtype), rng.integers(0, shape[1], shape[0], dtype=np.int64)


def scores_and_label_lists(rng, shape, dtype, labels=5):
    """multilabel_margin_loss: (N, C) scores and per row `labels` distinct classes, then -1."""
    n, c = shape
    t = np.full(shape, -1, dtype=np.int64)
    base = rng.integers(0, c, n, dtype=np.int64)
    k = min(labels, c)
    t[:, :k] = (base[:, None] + np.arange(k) * max(1, c // k)) % c
    return rng.standard_normal(shape, dtype=dtype), t


def log_probs_and_classes(rng, shape, dtype):
    x, t = logits_and_classes(rng, shape, dtype)
    return np.log(_uniform(rng, shape, dtype, 0.01, 1.0)), t


# --- straightforward NumPy forward + gradient (reduction "mean"; kl_div "batchmean") -------------

def np_l1(x, t):
    d = x - t
    return np.mean(np.abs(d)), np.sign(d) / d.size


def np_mse(x, t):
    d = x - t
    return np.mean(d * d), d * (2 / d.size)


def np_smooth_l1(x, t, beta=1.0):
    d = x - t
    ad = np.abs(d)
    small = ad < beta
    loss = np.mean(np.where(small, 0.5 * d * d / beta, ad - 0.5 * beta))
    return loss, np.where(small, d / beta, np.sign(d)) / d.size


def np_huber(x, t, delta=1.0):
    d = x - t
    ad = np.abs(d)
    loss = np.mean(np.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)))
    return loss, np.clip(d, -delta, delta) / d.size


def np_bce(x, t):
    log_x = np.maximum(np.log(x), -100)
    log_1mx = np.maximum(np.log1p(-x), -100)
    loss = -np.mean(t * log_x + (1 - t) * log_1mx)
    return loss, (x - t) / np.maximum(x * (1 - x), 1e-12) / x.size


def np_bce_with_logits(x, t):
    loss = np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))
    return loss, (1 / (1 + np.exp(-x)) - t) / x.size


def np_kl_div(x, t):
    n = x.shape[0]  # "batchmean"
    return np.sum(t * (np.log(np.where(t > 0, t, 1)) - x)) / n, -t / n


def np_soft_margin(x, t):
    z = -t * x
    return np.mean(np.logaddexp(0, z)), -t / (1 + np.exp(-z)) / x.size


def np_hinge_embedding(x, t, margin=1.0):
    m = margin - x
    loss = np.mean(np.where(t == 1, x, np.maximum(m, 0)))
    return loss, np.where(t == 1, 1.0, np.where(m >= 0, -1.0, 0.0)).astype(x.dtype) / x.size


def np_poisson_nll(x, t):
    e = np.exp(x)
    return np.mean(e - t * x), (e - t) / x.size


def np_sigmoid_focal(x, t, alpha=0.25, gamma=2.0):
    """reduction "sum", as detection heads use it (divided by the number of boxes elsewhere)."""
    p = 1 / (1 + np.exp(-x))
    ce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    q = p + t - 2 * p * t
    a = alpha * t + (1 - alpha) * (1 - t)
    loss = np.sum(a * ce * q ** gamma)
    return loss, a * ((p - t) * q ** gamma + gamma * q ** (gamma - 1) * ce * p * (1 - p) * (1 - 2 * t))


def torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss as its documentation defines it, in torch operations
    (torchvision from PyPI does not load beside the CPU build of torch installed here)."""
    p = torch.sigmoid(inputs)
    ce = torch_F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def torch_function(name):
    """The PyTorch function lossk's `name` matches."""
    return torchvision_sigmoid_focal_loss if name == "sigmoid_focal_loss" else getattr(torch_F, name)


def np_cross_entropy(x, t):
    """(N, C, d1, ...) logits, mean over the N d1 ... positions."""
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    picked = np.take_along_axis(x, t[:, None], axis=1)[:, 0]
    loss = np.sum(np.log(s[:, 0]) + m[:, 0] - picked) / t.size
    grad = e / s
    np.put_along_axis(grad, t[:, None], np.take_along_axis(grad, t[:, None], axis=1) - 1, axis=1)
    grad /= t.size
    return loss, grad


def np_nll(x, t):
    count = t.size
    loss = -np.take_along_axis(x, t[:, None], axis=1).sum() / count
    grad = np.zeros_like(x)
    np.put_along_axis(grad, t[:, None], -1 / count, axis=1)
    return loss, grad


def np_multi_margin(x, t):
    n, c = x.shape
    rows = np.arange(n)
    z = 1 - x[rows, t][:, None] + x
    z[rows, t] = 0
    on = z > 0
    grad = on / (n * c)
    grad[rows, t] = -on.sum(axis=1) / (n * c)
    return np.sum(z, where=on) / (n * c), grad.astype(x.dtype)


def np_multilabel_margin(x, t):
    n, c = x.shape
    listed = np.cumprod(t >= 0, axis=1).astype(bool)
    is_target = np.zeros(x.shape, bool)
    r, k = np.nonzero(listed)
    is_target[r, t[r, k]] = True
    loss, grad = 0.0, np.zeros_like(x)
    for k in range(int(listed.sum(axis=1).max(initial=0))):
        rows = np.flatnonzero(listed[:, k])
        tk = t[rows, k]
        z = 1 - x[rows, tk][:, None] + x[rows]
        on = (z > 0) & ~is_target[rows]
        loss += np.sum(z, where=on)
        grad[rows] += on
        grad[rows, tk] -= on.sum(axis=1)
    return loss / (n * c), grad / (n * c)


def ranked_pairs(rng, shape, dtype):
    """margin_ranking_loss: two score arrays and targets of 1 or -1."""
    t = rng.random(shape, dtype=dtype)
    return (rng.standard_normal(shape, dtype=dtype), rng.standard_normal(shape, dtype=dtype),
            np.where(t < 0.5, -1, 1).astype(dtype))


def means_and_variances(rng, shape, dtype):
    """gaussian_nll_loss: means, samples and a variance per element in [0.1, 2)."""
    return (rng.standard_normal(shape, dtype=dtype), rng.standard_normal(shape, dtype=dtype),
            _uniform(rng, shape, dtype, 0.1, 2.0))


def embedding_pairs(rng, shape, dtype):
    """cosine_embedding_loss: two (N, D) embeddings and a target of 1 or -1 per row."""
    t = rng.random(shape[0], dtype=dtype)
    return (rng.standard_normal(shape, dtype=dtype), rng.standard_normal(shape, dtype=dtype),
            np.where(t < 0.5, -1, 1).astype(dtype))


def triplets(rng, shape, dtype):
    """triplet_margin_loss: anchors, positives near them and negatives (about half the margins active)."""
    a = rng.standard_normal(shape, dtype=dtype)
    p = a + 0.7 * rng.standard_normal(shape, dtype=dtype)
    return a, p.astype(dtype), rng.standard_normal(shape, dtype=dtype)


def np_margin_ranking(x1, x2, y, margin=0.0):
    z = -y * (x1 - x2) + margin
    d = np.where(z >= 0, y, 0) / z.size
    return np.mean(np.maximum(z, 0)), (-d, d)


def np_gaussian_nll(x, t, var, eps=1e-6):
    v = np.maximum(var, eps)
    r = x - t
    q = r / v
    return np.mean(0.5 * (np.log(v) + r * q)), (q / x.size, 0.5 * (1 / v - q * q) / x.size)


def np_cosine_embedding(x1, x2, y, margin=0.0):
    m1 = np.sum(x1 * x1, axis=1) + 1e-12
    m2 = np.sum(x2 * x2, axis=1) + 1e-12
    r = 1 / np.sqrt(m1 * m2)
    cos = np.sum(x1 * x2, axis=1) * r
    loss = np.where(y == 1, 1 - cos, np.where(y == -1, np.maximum(cos - margin, 0), 0))
    k = np.where(y == 1, -1.0, np.where((y == -1) & (cos >= margin), 1.0, 0.0)) / y.size
    g1 = (k * r)[:, None] * x2 - (k * cos / m1)[:, None] * x1
    g2 = (k * r)[:, None] * x1 - (k * cos / m2)[:, None] * x2
    return np.mean(loss), (g1, g2)


def np_triplet_margin(a, p, n, margin=1.0, eps=1e-6):
    vp, vn = a - p + eps, a - n + eps
    dp, dn = np.sqrt(np.sum(vp * vp, axis=1)), np.sqrt(np.sum(vn * vn, axis=1))
    z = margin + dp - dn
    k = (z >= 0) / z.size
    up, un = vp * (k / dp)[:, None], vn * (k / dn)[:, None]
    return np.mean(np.maximum(z, 0)), (up - un, -up, un)


def ctc_problem(rng, shape, dtype):
    """ctc_loss: log_probs (T, N, C), padded targets (N, S) of labels 1..C-1 without repeats, every
    input T steps long, targets of S/2 to S labels."""
    T, N, C, S = shape
    z = rng.standard_normal((T, N, C))
    log_probs = (z - np.log(np.exp(z).sum(axis=-1, keepdims=True))).astype(dtype)
    targets = rng.integers(1, C, (N, S))
    return log_probs, targets, np.full(N, T), rng.integers(S // 2, S + 1, N)


def np_ctc(log_probs, targets, input_lengths, target_lengths):
    """The batch's alpha and beta recursions in log space (vectorised over the sequences and the
    states), PyTorch's gradient and the mean over target lengths."""
    lp = log_probs.astype(np.float64)
    T, N, C = lp.shape
    L = 2 * targets.shape[1] + 1
    ext = np.zeros((N, L), np.int64)
    ext[:, 1::2] = targets
    skip = np.zeros((N, L), bool)
    skip[:, 2:] = ext[:, 2:] != ext[:, :-2]
    valid = np.arange(L)[None, :] < 2 * target_lengths[:, None] + 1
    emit = np.take_along_axis(lp, np.broadcast_to(ext, (T, N, L)), axis=2)
    alpha = np.full((T, N, L + 2), -np.inf)
    alpha[0, :, 2:4] = emit[0, :, :2]
    for t in range(1, T):
        a = alpha[t - 1]
        three = np.stack([a[:, 2:], a[:, 1:-1], np.where(skip, a[:, :-2], -np.inf)])
        alpha[t, :, 2:] = np.where(valid, np.logaddexp.reduce(three, axis=0) + emit[t], -np.inf)
    last = 2 * target_lengths + 2
    rows = np.arange(N)
    nll = -np.logaddexp(alpha[T - 1, rows, last], alpha[T - 1, rows, last - 1])
    beta = np.full((T, N, L + 2), -np.inf)
    beta[T - 1, rows, last - 2] = emit[T - 1, rows, last - 2]
    beta[T - 1, rows, last - 3] = emit[T - 1, rows, last - 3]
    back = np.zeros((N, L), bool)
    back[:, :-2] = skip[:, 2:]
    for t in range(T - 2, -1, -1):
        b = beta[t + 1]
        three = np.stack([b[:, :-2], b[:, 1:-1], np.where(back, b[:, 2:], -np.inf)])
        beta[t, :, :-2] = np.where(valid, np.logaddexp.reduce(three, axis=0) + emit[t], -np.inf)
    ab = alpha[:, :, 2:] + beta[:, :, :-2]
    occupancy = np.zeros((T, N, C))
    with np.errstate(invalid="ignore"):
        np.add.at(occupancy, (slice(None), rows[:, None], ext), np.exp(ab + nll[None, :, None]))
    per = np.maximum(target_lengths, 1)
    grad = (np.exp(lp) - occupancy / np.exp(lp)) / (per * N)[None, :, None]
    return np.mean(nll / per), grad.astype(log_probs.dtype)


# --- floor traffic: bytes the lossk calls must read + write at the least -------------------------

def elementwise_traffic(x, t):
    """Read input and target, write the gradient (the loss alone only reads)."""
    return {"loss": x.nbytes + t.nbytes, "grad": 2 * x.nbytes + t.nbytes, "both": 2 * x.nbytes + t.nbytes}


def cross_entropy_traffic(x, t):
    """Read the logits once and the targets, write the gradient."""
    return {"loss": x.nbytes + t.nbytes, "grad": 2 * x.nbytes + t.nbytes, "both": 2 * x.nbytes + t.nbytes}


def arrays_traffic(*arrays, gradients):
    """Read every array, write the gradients of the first `gradients` input-shaped ones."""
    read = sum(a.nbytes for a in arrays)
    wrote = gradients * arrays[0].nbytes
    return {"loss": read, "grad": read + wrote, "both": read + wrote}


def nll_traffic(x, t):
    """Read the targets and the input values they pick, write the (mostly zero) gradient.

    Memory moves whole 64-byte lines, so the picked values count as the lines that hold them (for
    (8, 21, 256, 256) about half of the input's lines hold a picked value; for (8192, 1000), one
    line per row)."""
    n = x.shape[0]
    c, s = x.shape[1], x.size // max(1, n * x.shape[1])
    pos = np.arange(t.size)
    offsets = ((pos // s * c + t.reshape(-1)) * s + pos % s) * x.itemsize
    gathered = 64 * np.unique(offsets // 64).size
    return {"loss": t.nbytes + gathered, "grad": x.nbytes + t.nbytes, "both": x.nbytes + t.nbytes + gathered}


# --- the table -----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Loss:
    name: str                       # the lossk and torch.nn.functional name
    make: Callable                  # (rng, shape, dtype) -> (input, target)
    reference: Callable             # NumPy (input, target) -> (loss, grad)
    traffic: Callable               # (input, target) -> {"loss"|"grad"|"both": floor bytes}
    shapes: dict                    # size tag -> (shape, smoke shape)
    torch_target: float             # the target speed-up over PyTorch forward + backward
    options: dict = field(default_factory=dict)     # keyword options for lossk and PyTorch alike
    differentiable: tuple = ()      # several differentiable arrays: their indices (the gradient is a tuple)
    memory_bound: bool = True       # held to the floor targets (not CTC: its recursions are compute-bound)


ELEMENTWISE_SHAPES = {"large": ((2 ** 14, 2 ** 10), (64, 64)), "medium": ((2 ** 8, 2 ** 8), (16, 16))}
CROSS_ENTROPY_SHAPES = {"large": ((8192, 1000), (64, 100)), "spatial": ((16, 21, 128, 128), (2, 21, 8, 8)),
                        "few classes": ((262144, 10), (256, 10)), "small": ((64, 10), (64, 10))}
MARGIN_SHAPES = {"large": ((8192, 1000), (64, 100)), "few classes": ((262144, 10), (256, 10))}
NLL_SHAPES = {"large": ((8, 21, 256, 256), (2, 21, 8, 8)), "large 2d": ((8192, 1000), (64, 100))}
EMBEDDING_SHAPES = {"large": ((65536, 256), (64, 32))}
CTC_SHAPES = {"large": ((200, 32, 40, 50), (20, 4, 10, 5))}   # (T, N, C, S)


def _elementwise(name, make, reference, torch_target=2.0, **options):
    return Loss(name, make, reference, elementwise_traffic, ELEMENTWISE_SHAPES, torch_target, options)


LOSSES = {loss.name: loss for loss in [
    _elementwise("l1_loss", regression, np_l1),
    _elementwise("mse_loss", regression, np_mse),
    _elementwise("smooth_l1_loss", regression, np_smooth_l1, beta=1.0),
    _elementwise("huber_loss", regression, np_huber, delta=1.0),
    _elementwise("binary_cross_entropy", probabilities, np_bce),
    _elementwise("binary_cross_entropy_with_logits", logits_and_probabilities, np_bce_with_logits),
    _elementwise("kl_div", log_probs_and_probs, np_kl_div, reduction="batchmean"),
    _elementwise("soft_margin_loss", signs, np_soft_margin, 3.0),
    _elementwise("hinge_embedding_loss", signs, np_hinge_embedding, 3.0, margin=1.0),
    _elementwise("poisson_nll_loss", log_rates_and_counts, np_poisson_nll, 3.0),
    _elementwise("sigmoid_focal_loss", logits_and_labels, np_sigmoid_focal, 3.0, reduction="sum"),
    Loss("multi_margin_loss", scores_and_classes, np_multi_margin, cross_entropy_traffic, MARGIN_SHAPES, 3.0),
    Loss("multilabel_margin_loss", scores_and_label_lists, np_multilabel_margin, elementwise_traffic,
         {"large": MARGIN_SHAPES["large"]}, 3.0),
    Loss("multilabel_soft_margin_loss", logits_and_labels, np_bce_with_logits, elementwise_traffic,
         ELEMENTWISE_SHAPES, 3.0),
    Loss("margin_ranking_loss", ranked_pairs, np_margin_ranking, partial(arrays_traffic, gradients=2),
         ELEMENTWISE_SHAPES, 3.0, differentiable=(0, 1)),
    Loss("gaussian_nll_loss", means_and_variances, np_gaussian_nll, partial(arrays_traffic, gradients=2),
         ELEMENTWISE_SHAPES, 3.0, differentiable=(0, 2)),
    Loss("cosine_embedding_loss", embedding_pairs, np_cosine_embedding, partial(arrays_traffic, gradients=2),
         EMBEDDING_SHAPES, 2.0, differentiable=(0, 1)),
    Loss("triplet_margin_loss", triplets, np_triplet_margin, partial(arrays_traffic, gradients=3),
         EMBEDDING_SHAPES, 2.0, differentiable=(0, 1, 2)),
    Loss("ctc_loss", ctc_problem, np_ctc, partial(arrays_traffic, gradients=1), CTC_SHAPES, 2.0,
         memory_bound=False),
    Loss("cross_entropy", logits_and_classes, np_cross_entropy, cross_entropy_traffic, CROSS_ENTROPY_SHAPES, 4.0),
    Loss("nll_loss", log_probs_and_classes, np_nll, nll_traffic, NLL_SHAPES, 3.0),
]}


@dataclass(frozen=True, eq=False)
class Case:
    loss: Loss
    size: str                       # size tag ("large", "medium", ...)
    shape: tuple
    dtype: str

    @property
    def name(self):
        return self.loss.name

    @property
    def id(self):
        return f"{self.name}-{self.size.replace(' ', '')}-{self.dtype}"

    def __repr__(self):
        return self.id

    def inputs(self, seed=0):
        """The loss's arrays: (input, target), or its several arrays in PyTorch's order."""
        return self.loss.make(np.random.default_rng(seed), self.shape, np.dtype(self.dtype))

    def floor_bytes(self, arrays):
        return self.loss.traffic(*arrays)


def cases(smoke=False, sizes=None, dtypes=DTYPES, names=None):
    """Every (loss, size, dtype) case, in table order; smoke: the tiny shapes."""
    return [Case(loss, size, shapes[1] if smoke else shapes[0], dtype)
            for loss in LOSSES.values() if names is None or loss.name in names
            for size, shapes in loss.shapes.items() if sizes is None or size in sizes
            for dtype in dtypes]


def case_of(name, shape, dtype="float32", size="custom"):
    """An ad-hoc case (e.g. for the scaling sweep)."""
    return Case(LOSSES[name], size, tuple(shape), dtype)


# --- the variants timed for each case --------------------------------------------------------------

def _lossk(suffix, reuse_out):
    def build(case, arrays):
        fn = getattr(lossk, case.name + suffix)
        opts = dict(case.loss.options)
        if reuse_out:
            opts["out"] = (tuple(np.empty_like(arrays[k]) for k in case.loss.differentiable)
                           if case.loss.differentiable else np.empty_like(arrays[0]))
        return lambda: fn(*arrays, **opts)
    return build


def _numpy(case, arrays):
    return lambda: case.loss.reference(*arrays)


def _torch(backward):
    def build(case, arrays):
        if torch is None:
            return None
        fn, opts = torch_function(case.name), case.loss.options
        wanted = case.loss.differentiable or (0,)
        if not backward:
            return lambda: fn(*map(torch.from_numpy, arrays), **opts)

        def forward_backward():
            ts = [torch.from_numpy(a).requires_grad_(k in wanted) for k, a in enumerate(arrays)]
            loss = fn(*ts, **opts)
            loss.backward()
            grads = tuple(ts[k].grad for k in wanted)
            return loss, grads if case.loss.differentiable else grads[0]
        return forward_backward
    return build


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    build: Callable                 # (case, arrays) -> zero-argument callable, or None if unavailable
    floor: Optional[str] = None     # which floor traffic applies ("both", "loss", "grad"); None: not lossk


VARIANTS = [
    Variant("fused_out", "lossk fused, out=", _lossk("_with_grad", True), "both"),
    Variant("fused_alloc", "lossk fused, alloc", _lossk("_with_grad", False), "both"),
    Variant("loss", "lossk loss only", _lossk("", False), "loss"),
    Variant("grad", "lossk grad only, out=", _lossk("_grad", True), "grad"),
    Variant("numpy", "NumPy fwd+grad", _numpy),
    Variant("torch", "PyTorch fwd+bwd", _torch(backward=True)),
    Variant("torch_fwd", "PyTorch fwd", _torch(backward=False)),
]
VARIANT = {v.key: v for v in VARIANTS}


def set_threads(n):
    """The same thread count for lossk and PyTorch (NumPy's elementwise code is single-threaded)."""
    lossk.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def to_numpy(result):
    """(loss, grad) of any variant's result as (float, ndarray) (a lone loss or grad is returned as is)."""
    if isinstance(result, tuple):
        return tuple(to_numpy(r) for r in result)
    if torch is not None and isinstance(result, torch.Tensor):
        result = result.detach().numpy()
    return float(result) if np.ndim(result) == 0 else np.asarray(result)
