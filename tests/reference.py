"""An independent, slow, pure-NumPy float64 twin of every lossk loss and its gradient.

Written from the definitions in PyTorch's documentation of ``torch.nn.functional`` (and the
formulas of its reference implementation), not from lossk's code. Everything is computed in
float64 from the (possibly float32) arguments, which makes it the "exact" answer a float32 or
float64 computation is compared with.

Every function returns a :class:`Result`: ``loss`` (a float for reduced losses, an array shaped
like the loss for "none"), ``grad`` (d loss / d input times grad_output, shaped like the input),
and ``loss_mag`` / ``grad_mag``: the same quantities computed from the absolute values of the
terms they are made of, the scale against which rounding errors are measured (a loss that is
the small difference of large terms is only as accurate as those terms).
"""
from dataclasses import dataclass

import numpy as np

REDUCTIONS = ("none", "mean", "sum")


@dataclass
class Result:
    loss: object
    grad: np.ndarray
    loss_mag: object
    grad_mag: np.ndarray


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _reduce(terms, mags, dterms, dmags, reduction, grad_output, divisor, loss_shape):
    """Reduce elementwise loss terms and scale their derivatives.

    terms, mags: the loss terms and their magnitudes; dterms, dmags: d terms / d input (unscaled);
    grad_output: scalar, or for "none" an array shaped like the loss; divisor: what "mean"
    divides by."""
    go = np.asarray(grad_output, dtype=np.float64)
    if reduction == "none":
        loss, loss_mag = terms.reshape(loss_shape), mags.reshape(loss_shape)
        scale = go
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            div = np.float64(divisor if reduction == "mean" else 1)
            loss, loss_mag = float(np.sum(terms) / div), float(np.sum(mags) / div)
            scale = go / div
    with np.errstate(invalid="ignore", over="ignore"):
        grad = dterms * scale
        grad_mag = dmags * np.abs(scale)
    return Result(loss, grad, loss_mag, grad_mag)


# --- elementwise losses: per element (loss, magnitude, d loss / d input, magnitude) -------------

def _l1(x, t):
    d = x - t
    return np.abs(d), np.abs(d), np.sign(d), np.abs(np.sign(d))


def _mse(x, t):
    d = x - t
    return d * d, d * d, 2 * d, np.abs(2 * d)


def _smooth_l1(x, t, beta=1.0):
    if beta == 0:                       # PyTorch: smooth_l1_loss with beta=0 is l1_loss
        return _l1(x, t)
    d = x - t
    z = np.abs(d)
    small = z < beta
    loss = np.where(small, 0.5 * d * d / beta, z - 0.5 * beta)
    grad = np.where(small, d / beta, np.sign(d))
    return loss, np.where(small, loss, z + 0.5 * beta), grad, np.abs(grad)


def _huber(x, t, delta=1.0):
    d = x - t
    z = np.abs(d)
    small = z < delta
    loss = np.where(small, 0.5 * d * d, delta * (z - 0.5 * delta))
    grad = np.where(small, d, delta * np.sign(d))
    return loss, np.where(small, loss, delta * (z + 0.5 * delta)), grad, np.abs(grad)


# PyTorch clamps BCE's gradient denominator at EPSILON = 1e-12 declared as a float, even for
# double: float32(1e-12) = 9.999999960041972e-13 (grad at x = 0, t = 1: -1000000003995.8029).
BCE_GRAD_EPS = float(np.float32(1e-12))


def _bce(x, t, weight=None):
    # PyTorch: loss = -w (t max(log x, -100) + (1 - t) max(log(1 - x), -100));
    #          grad = w (x - t) / max(x (1 - x), 1e-12)
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(x), -100.0)
        log_1mx = np.maximum(np.log1p(-x), -100.0)
    a, b = t * log_x, (1 - t) * log_1mx
    loss = -(a + b)
    mag = np.abs(a) + np.abs(b)
    grad = (x - t) / np.maximum(x * (1 - x), BCE_GRAD_EPS)
    gmag = (np.abs(x) + np.abs(t)) / np.maximum(x * (1 - x), BCE_GRAD_EPS)
    w = 1.0 if weight is None else np.broadcast_to(weight, x.shape)
    return loss * w, mag * np.abs(w), grad * w, gmag * np.abs(w)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _bce_with_logits(x, t, weight=None, pos_weight=None):
    # loss = w ((1 - t) x - lw log(sigmoid(x))), lw = 1 + (p - 1) t;
    # d/dx = w (lw sigmoid(x) - p t)
    log_sig = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    p = 1.0 if pos_weight is None else np.broadcast_to(pos_weight, x.shape)
    lw = 1 + (p - 1) * t
    a, b = (1 - t) * x, -lw * log_sig
    loss, mag = a + b, np.abs(a) + np.abs(b)
    s = _sigmoid(x)
    grad = lw * s - p * t
    gmag = np.abs(lw * s) + np.abs(p * t)
    w = 1.0 if weight is None else np.broadcast_to(weight, x.shape)
    return loss * w, mag * np.abs(w), grad * w, gmag * np.abs(w)


def _kl_div(x, t, log_target=False):
    if log_target:                      # exp(t) (t - x); d/dx = -exp(t)
        with np.errstate(over="ignore"):
            e = np.exp(t)
        return e * (t - x), e * (np.abs(t) + np.abs(x)), -e, e
    # xlogy(t, t) - t x (0 where t == 0); d/dx = -t
    with np.errstate(divide="ignore", invalid="ignore"):
        tlogt = np.where(t == 0, 0.0, t * np.log(np.where(t == 0, 1.0, t)))
    return tlogt - t * x, np.abs(tlogt) + np.abs(t * x), -t, np.abs(t)


def _soft_margin(x, t):
    # log(1 + exp(-t x)); d/dx = -t sigmoid(-t x)
    z = -t * x
    loss = np.logaddexp(0.0, z)
    grad = -t * _sigmoid(z)
    return loss, loss, grad, np.abs(grad)


def _hinge_embedding(x, t, margin=1.0):
    # PyTorch: where(t != 1, clamp_min(margin - x, 0), 0) + where(t != -1, x, 0); clamp_min passes
    # the gradient where margin - x >= 0
    own, hinged = t != -1, t != 1
    m = margin - x
    loss = np.where(own, x, 0.0) + np.where(hinged, np.maximum(m, 0.0), 0.0)
    mag = np.where(own, np.abs(x), 0.0) + np.where(hinged & (m > 0), abs(margin) + np.abs(x), 0.0)
    grad = own * 1.0 - (hinged & (m >= 0)) * 1.0
    return loss, mag, grad, own * 1.0 + hinged * 1.0


def _poisson_nll(x, t, log_input=True, full=False, eps=1e-8):
    with np.errstate(all="ignore"):
        if log_input:                   # exp(x) - t x; d/dx = exp(x) - t
            e = np.exp(x)
            loss, mag, grad, gmag = e - t * x, e + np.abs(t * x), e - t, e + np.abs(t)
        else:                           # x - t log(x + eps); d/dx = 1 - t / (x + eps)
            xe = x + eps
            loss, mag = x - t * np.log(xe), np.abs(x) + np.abs(t * np.log(xe))
            grad, gmag = 1 - t / xe, 1 + np.abs(t / xe)
        if full:                        # Stirling's log(t!) where t > 1 (nan stays nan)
            stirling = t * np.log(t) - t + 0.5 * np.log(2 * np.pi * t)
            loss = loss + np.where(t <= 1, 0.0, stirling)
            mag = mag + np.where(t <= 1, 0.0, np.abs(t * np.log(t)) + np.abs(t) + np.abs(0.5 * np.log(2 * np.pi * t)))
    return loss, mag, grad, gmag


def _sigmoid_focal(x, t, alpha=0.25, gamma=2.0):
    # torchvision: a_t ce (1 - p_t)^gamma, p = sigmoid(x), p_t = p t + (1 - p)(1 - t),
    # a_t = alpha t + (1 - alpha)(1 - t) (1 for alpha < 0); 1 - p_t written as p (1 - t) + (1 - p) t
    p, p_neg = _sigmoid(x), _sigmoid(-x)
    # ce = (1 - t) x + max(-x, 0) + log1p(exp(-|x|)), the first two terms added: -t x for x < 0
    softplus = np.log1p(np.exp(-np.abs(x)))
    linear = np.where(x >= 0, (1 - t) * x, -t * x)
    ce, ce_mag = linear + softplus, np.abs(linear) + softplus
    q = p * (1 - t) + p_neg * t
    w = q ** gamma
    with np.errstate(divide="ignore", invalid="ignore"):
        dw = 0.0 if gamma == 0 else gamma * q ** (gamma - 1) * (p * p_neg * (1 - 2 * t))
    a = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else np.ones_like(x)
    loss, mag = a * ce * w, np.abs(a) * ce_mag * w
    grad = a * ((p - t) * w + ce * dw)
    gmag = np.abs(a) * ((p + np.abs(t)) * w + ce_mag * np.abs(dw))
    return loss, mag, grad, gmag


# the losses whose weight has the input's shape, and what their "mean" divides by (PyTorch 2.13)
SHAPED_WEIGHT = {"l1_loss": "sum", "mse_loss": "sum", "huber_loss": "count"}

ELEMENTWISE = {
    "l1_loss": _l1,
    "mse_loss": _mse,
    "smooth_l1_loss": _smooth_l1,
    "huber_loss": _huber,
    "binary_cross_entropy": _bce,
    "binary_cross_entropy_with_logits": _bce_with_logits,
    "kl_div": _kl_div,
    "soft_margin_loss": _soft_margin,
    "hinge_embedding_loss": _hinge_embedding,
    "poisson_nll_loss": _poisson_nll,
    "sigmoid_focal_loss": _sigmoid_focal,
}


def elementwise(name, input, target, reduction="mean", grad_output=1.0, **options):
    """The loss `name` (a lossk / torch.nn.functional name) and its gradient."""
    x, t = _f64(input), _f64(target)
    assert x.shape == t.shape
    options = {k: (_f64(v) if isinstance(v, np.ndarray) else v) for k, v in options.items()}
    w = options.pop("weight", None) if name in SHAPED_WEIGHT else None
    terms, mags, dterms, dmags = ELEMENTWISE[name](x, t, **options)
    terms, mags = np.broadcast_to(terms, x.shape), np.broadcast_to(mags, x.shape)
    divisor = x.size
    if w is not None:
        assert w.shape == x.shape
        terms, mags, dterms, dmags = terms * w, mags * np.abs(w), dterms * w, dmags * np.abs(w)
        divisor = float(np.sum(w)) if SHAPED_WEIGHT[name] == "sum" else x.size
    if reduction == "batchmean":        # kl_div: the sum over the batch size (a 0-d input: the sum)
        assert name == "kl_div"
        reduction, divisor = "mean", (x.shape[0] if x.ndim else 1)
    else:
        assert reduction in REDUCTIONS
    return _reduce(terms, mags, dterms, dmags, reduction, grad_output, divisor, x.shape)


# --- cross-entropy and NLL ------------------------------------------------------------------

def _rows(x):
    """(N, C, d1..dK) -> (N*d1*..*dK, C) with the class axis last, and back."""
    moved = np.moveaxis(x, 1, -1)
    rows = moved.reshape(-1, x.shape[1])
    return rows, lambda r: np.moveaxis(r.reshape(moved.shape), -1, 1)


def _log_softmax(rows):
    """log p = (x - m) - log(sum exp(x - m)), m the row's maximum (so that the rounding of a large
    m does not enter log p); also returns log-sum-exp."""
    m = np.max(rows, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        log_z = np.log(np.sum(np.exp(rows - m), axis=1, keepdims=True))
    return (rows - m) - log_z, m + log_z


def _class_indices(target, C, ignore_index, shape):
    t = np.asarray(target)
    assert t.dtype.kind in "iu" and t.shape == shape, (t.dtype, t.shape, shape)
    flat = [int(v) for v in t.reshape(-1)]      # Python ints: no overflow for uint64 / int64 extremes
    ignored = np.array([v == ignore_index for v in flat], dtype=bool)
    for i, v in enumerate(flat):
        if not ignored[i] and not 0 <= v < C:
            raise ValueError(f"target: class index {v} at flat position {i} is out of range [0, {C})")
    return np.array([0 if ign else v for v, ign in zip(flat, ignored)], dtype=np.int64), ignored


def _classification(input, target, weight, ignore_index, reduction, label_smoothing, grad_output, nll):
    x = _f64(input)
    assert x.ndim >= 1 and reduction in REDUCTIONS
    unbatched = x.ndim == 1
    if unbatched:
        x = x[None]
    C = x.shape[1]
    loss_shape = () if unbatched else (x.shape[0],) + x.shape[2:]
    rows, unrows = _rows(x)
    M = rows.shape[0]
    w = np.ones(C) if weight is None else _f64(weight)
    assert w.shape == (C,)
    eps = float(label_smoothing)

    soft = np.asarray(target).dtype.kind == "f"
    if nll:
        assert not soft and eps == 0
        logp = rows
    else:
        logp, lse = _log_softmax(rows)
        p = np.exp(logp)
    # the magnitude of a row's terms: |x_c| and |lse| are what log-probabilities are computed from
    row_scale = (np.max(np.where(np.isfinite(rows), np.abs(rows), 0.0), axis=1, initial=0.0)
                 + (0.0 if nll else np.abs(np.where(np.isfinite(lse[:, 0]), lse[:, 0], 0.0))))

    with np.errstate(invalid="ignore", over="ignore"):
        if soft:
            # PyTorch: -(sum_c w_c t'_c log p_c), t' = (1 - eps) t + eps / C; mean: over N*d1*..*dK
            T, _ = _rows(_f64(target)[None] if unbatched else _f64(target))
            assert T.shape == rows.shape
            if eps > 0:
                T = T * (1 - eps) + eps / C
            wt = w * T
            terms = -np.sum(logp * wt, axis=1)
            mags = np.sum(np.abs(wt), axis=1) * (1 + row_scale)
            dterms = p * np.sum(wt, axis=1, keepdims=True) - wt
            dmags = p * np.sum(np.abs(wt), axis=1, keepdims=True) + np.abs(wt)
            ignored = np.zeros(M, dtype=bool)
            divisor = M
        else:
            t, ignored = _class_indices(target, C, ignore_index, loss_shape)
            t_w = np.where(ignored, 0.0, w[t])
            onehot = np.zeros_like(rows)
            onehot[np.arange(M), t] = 1.0
            picked = logp[np.arange(M), t]
            # -(1 - eps) w_t log p_t - (eps / C) sum_c w_c log p_c at non-ignored positions
            terms = np.where(ignored, 0.0, -t_w * picked)
            mags = np.abs(t_w) * (1 + row_scale)
            if nll:
                dterms = -t_w[:, None] * onehot
                dmags = np.abs(dterms)
            else:
                dterms = t_w[:, None] * (p - onehot)
                dmags = np.abs(t_w)[:, None] * (p + onehot)
            if eps > 0:                     # PyTorch computes the smoothing term only when eps > 0
                smooth = np.where(ignored, 0.0, -np.sum(logp * w, axis=1))
                terms = (1 - eps) * terms + eps / C * smooth
                mags = (1 - eps) * mags + eps / C * np.where(ignored, 0.0, np.sum(np.abs(w))) * (1 + row_scale)
                dterms = (1 - eps) * dterms + eps / C * (p * np.sum(w) - w)
                dmags = (1 - eps) * dmags + eps / C * (p * np.sum(np.abs(w)) + np.abs(w))
            divisor = float(np.sum(t_w))    # mean: by the summed weight of the non-ignored targets

    go = np.asarray(grad_output, dtype=np.float64)
    # every position sums C terms (exponentials, log-probabilities): their rounding error grows
    # like sqrt(C) (it takes thousands of classes to matter)
    mags, dmags = mags * np.sqrt(C), dmags * np.sqrt(C)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if reduction == "none":
            loss, loss_mag = terms.reshape(loss_shape), mags.reshape(loss_shape)
            scale = np.broadcast_to(go, loss_shape).reshape(-1)[:, None]     # per position
        else:
            div = np.float64(divisor) if reduction == "mean" else np.float64(1.0)
            loss, loss_mag = float(np.sum(terms) / div), float(np.sum(mags) / div)
            scale = go / div
        # ignored positions: PyTorch never writes their gradient, whatever grad_output is
        zero = np.broadcast_to(ignored[:, None], rows.shape)
        grad = np.where(zero, 0.0, dterms * scale)
        grad_mag = np.where(zero, 0.0, dmags * np.abs(scale))
    grad, grad_mag = unrows(grad), unrows(grad_mag)
    if unbatched:
        grad, grad_mag = grad[0], grad_mag[0]
    return Result(loss, grad, loss_mag, grad_mag)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  grad_output=1.0):
    """Cross-entropy of logits; class-index (integer) or probability (float) targets."""
    return _classification(input, target, weight, ignore_index, reduction, label_smoothing, grad_output,
                           nll=False)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", grad_output=1.0):
    """Negative log-likelihood of (any) scores with class-index targets."""
    return _classification(input, target, weight, ignore_index, reduction, 0.0, grad_output, nll=True)


# --- margin losses: one loss per row of the last axis (the classes) --------------------------------

def _multi_margin(x, t, p=1, margin=1.0, weight=None):
    # sum over i != t of w_t max(0, margin - x_t + x_i)^p; PyTorch adds a term only where z > 0
    # (so a nan z adds nothing)
    N, C = x.shape
    t = np.asarray(t, dtype=np.int64).reshape(N)
    assert ((0 <= t) & (t < C)).all()
    rows = np.arange(N)
    xt = x[rows, t][:, None]
    with np.errstate(invalid="ignore"):
        z = (margin - xt) + x
        on = (z > 0) & (np.arange(C)[None, :] != t[:, None])
    z_mag = abs(margin) + np.abs(xt) + np.abs(x)
    wt = (np.ones(C) if weight is None else _f64(weight))[t][:, None]
    h = np.where(on, z ** p, 0.0)
    h_mag = np.where(on, z_mag ** p, 0.0)
    d = np.where(on, wt * (1.0 if p == 1 else 2 * z), 0.0)
    d_mag = np.where(on, np.abs(wt) * (1.0 if p == 1 else 2 * z_mag), 0.0)
    d[rows, t] = -np.sum(d, axis=1)
    d_mag[rows, t] = np.sum(d_mag, axis=1)
    return (wt[:, 0] * np.sum(h, axis=1), np.abs(wt[:, 0]) * np.sum(h_mag, axis=1), d, d_mag)


def _multilabel_margin(x, t):
    # each row's targets: its indices up to the first -1; sum over listed j (repeats again) and
    # unlisted i of max(0, 1 - x_j + x_i), a term only where it is > 0
    N, C = x.shape
    t = np.asarray(t, dtype=np.int64).reshape(N, C)
    assert ((-1 <= t) & (t < C)).all()
    loss, loss_mag = np.zeros(N), np.zeros(N)
    d, d_mag = np.zeros((N, C)), np.zeros((N, C))
    for n in range(N):
        listed = []
        for v in t[n]:
            if v < 0:
                break
            listed.append(int(v))
        unlisted = np.ones(C, dtype=bool)
        unlisted[listed] = False
        for j in listed:
            with np.errstate(invalid="ignore"):
                z = (1 - x[n, j]) + x[n]
                on = (z > 0) & unlisted
            loss[n] += np.sum(z[on])
            loss_mag[n] += np.sum(1 + abs(x[n, j]) + np.abs(x[n][on]))
            d[n, on] += 1
            d[n, j] -= np.count_nonzero(on)
            d_mag[n, on] += 1
            d_mag[n, j] += np.count_nonzero(on)
    return loss, loss_mag, d, d_mag


def _multilabel_soft_margin(x, t, weight=None):
    # -(t log sigmoid(x) + (1 - t) log sigmoid(-x)) per element, times the weight, summed per row
    with np.errstate(invalid="ignore", over="ignore"):
        log_sig = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))          # log sigmoid(x)
        log_sig_neg = np.minimum(-x, 0) - np.log1p(np.exp(-np.abs(x)))     # log sigmoid(-x)
        a, b = -t * log_sig, -(1 - t) * log_sig_neg
        terms, mags = a + b, np.abs(a) + np.abs(b)
        grad = (1 - t) * _sigmoid(x) - t * _sigmoid(-x)
        gmag = np.abs((1 - t) * _sigmoid(x)) + np.abs(t * _sigmoid(-x))
    w = 1.0 if weight is None else np.broadcast_to(_f64(weight), x.shape)
    with np.errstate(invalid="ignore"):
        terms, mags, grad, gmag = terms * w, mags * np.abs(w), grad * w, gmag * np.abs(w)
    return np.sum(terms, axis=-1), np.sum(mags, axis=-1), grad, gmag


MARGIN = {
    "multi_margin_loss": _multi_margin,
    "multilabel_margin_loss": _multilabel_margin,
    "multilabel_soft_margin_loss": _multilabel_soft_margin,
}


def margin(name, input, target, reduction="mean", grad_output=1.0, **options):
    """The margin loss `name`: each row of the last axis's terms summed and divided by C."""
    x = _f64(input)
    assert x.ndim >= 1 and reduction in REDUCTIONS
    C = x.shape[-1]
    loss_shape = x.shape[:-1]
    rows = x.reshape(int(np.prod(loss_shape, dtype=np.int64)), C)
    t = np.asarray(target)
    t = _f64(t).reshape(rows.shape) if name == "multilabel_soft_margin_loss" else t
    if name == "multilabel_soft_margin_loss" and isinstance(options.get("weight"), np.ndarray):
        options = dict(options, weight=np.broadcast_to(_f64(options["weight"]), x.shape).reshape(rows.shape))
    terms, mags, dterms, dmags = MARGIN[name](rows, t, **options)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms, mags, dterms, dmags = terms / C, mags / C, dterms / C, dmags / C
    go = np.asarray(grad_output, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if reduction == "none":
            loss, loss_mag = terms.reshape(loss_shape), mags.reshape(loss_shape)
            scale = np.broadcast_to(go, loss_shape).reshape(-1, 1)
        else:
            div = np.float64(rows.shape[0] if reduction == "mean" else 1)
            loss, loss_mag = float(np.sum(terms) / div), float(np.sum(mags) / div)
            scale = go / div
        grad, grad_mag = (dterms * scale).reshape(x.shape), (dmags * np.abs(scale)).reshape(x.shape)
    return Result(loss, grad, loss_mag, grad_mag)


def compute(name, input, target, reduction="mean", grad_output=1.0, **options):
    """Any loss by its lossk name."""
    if name in MARGIN:
        return margin(name, input, target, reduction=reduction, grad_output=grad_output, **options)
    if name == "cross_entropy":
        return cross_entropy(input, target, reduction=reduction, grad_output=grad_output, **options)
    if name == "nll_loss":
        return nll_loss(input, target, reduction=reduction, grad_output=grad_output, **options)
    return elementwise(name, input, target, reduction=reduction, grad_output=grad_output, **options)


# --- losses of several differentiable arrays --------------------------------------------------

def _margin_ranking(x1, x2, y, margin=0.0):
    with np.errstate(invalid="ignore"):
        z = -y * (x1 - x2) + margin
        d = np.where(z >= 0, y, 0.0)             # clamp_min's gradient flows at 0 too
    mags = np.abs(y) * (np.abs(x1) + np.abs(x2)) + abs(margin)
    return np.maximum(z, 0), mags, (-d, d), (np.abs(d), np.abs(d)), False


def _gaussian_var(var, shape):
    """var as an array broadcasting to `shape` (PyTorch unsqueezes one shaped like input[:-1])."""
    var = np.asarray(var, dtype=np.float64)
    return var[..., None] if var.shape != tuple(shape) and var.shape == tuple(shape[:-1]) else var


def _gaussian_nll(x, t, var, full=False, eps=1e-6):
    v = np.maximum(_gaussian_var(var, x.shape), eps)   # nan stays nan
    const = 0.5 * np.log(2 * np.pi) if full else 0.0
    r, big = x - t, np.abs(x) + np.abs(t)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        terms = 0.5 * (np.log(v) + r * r / v) + const
        mags = 0.5 * (np.abs(np.log(v)) + big * big / v) + const
        dx, dv = r / v, 0.5 * (1 / v - r * r / (v * v))
        dxm, dvm = big / v, 0.5 * (1 / v + big * big / (v * v))
    dv, dvm = np.broadcast_to(dv, x.shape), np.broadcast_to(dvm, x.shape)
    return terms, mags, (dx, dv), (dxm, dvm), False


def _cosine_embedding(x1, x2, y, margin=0.0):
    y = np.asarray(y, dtype=np.float64)
    s, a = np.sum(x1 * x2, axis=-1), np.sum(np.abs(x1 * x2), axis=-1)
    m1, m2 = np.sum(x1 * x1, axis=-1) + 1e-12, np.sum(x2 * x2, axis=-1) + 1e-12
    r = 1 / np.sqrt(m1 * m2)
    cos = s * r
    terms = np.where(y == 1, 1 - cos, np.where(y == -1, np.maximum(cos - margin, 0), 0.0))
    mags = 1 + abs(margin) + a * r
    dc = np.where(y == 1, -1.0, np.where((y == -1) & (cos - margin >= 0), 1.0, 0.0))[..., None]
    r_, c1, c2 = r[..., None], (cos / m1)[..., None], (cos / m2)[..., None]
    g1, g2 = dc * (r_ * x2 - c1 * x1), dc * (r_ * x1 - c2 * x2)
    a1, a2 = (a * r / m1)[..., None], (a * r / m2)[..., None]
    m1g, m2g = np.abs(dc) * (r_ * np.abs(x2) + a1 * np.abs(x1)), np.abs(dc) * (r_ * np.abs(x1) + a2 * np.abs(x2))
    return terms, mags, (g1, g2), (m1g, m2g), True


def _distance(u, v, p, eps):
    """PyTorch's pairwise_distance: the p-norm of u - v + eps over the last axis, and d norm / d w."""
    w = u - v + eps
    d = np.sum(np.abs(w) ** p, axis=-1) ** (1 / p)
    with np.errstate(divide="ignore", invalid="ignore"):
        dw = np.sign(w) * np.abs(w) ** (p - 1) / d[..., None] ** (p - 1)
    return d, np.where(d[..., None] == 0, 0.0, dw), np.abs(u) + np.abs(v) + abs(eps)


def _triplet_margin(a, pos, neg, margin=1.0, p=2.0, eps=1e-6, swap=False):
    dp, up, bp = _distance(a, pos, p, eps)
    dn, un, bn = _distance(a, neg, p, eps)
    ds, us, bs = _distance(pos, neg, p, eps) if swap else (np.full_like(dn, np.inf), 0 * un, 0 * bn)
    dneg = np.minimum(dn, ds)
    z = margin + dp - dneg
    on = (z >= 0)[..., None].astype(np.float64)
    share = np.where(dn < ds, 1.0, np.where(dn == ds, 0.5, 0.0))[..., None] if swap else 1.0
    other = 1 - share if swap else 0.0
    grads = (on * (up - share * un), on * (-up - other * us), on * (share * un + other * us))
    # the distances' rounding: that of the norms of |w| (p = 2: within a relative eps of the norm)
    mag_u = (np.abs(up) + np.abs(un) + np.abs(us)) * (1 + (np.sum(bp + bn + bs, axis=-1) / np.maximum(
        dp + dn + np.where(np.isinf(ds), 0, ds), 1e-300))[..., None])
    mags = abs(margin) + np.sum(bp + bn, axis=-1) + (np.sum(bs, axis=-1) if swap else 0)
    return np.maximum(z, 0), mags, grads, (on * mag_u,) * 3, True


MULTI_INPUT = {
    "margin_ranking_loss": _margin_ranking,
    "gaussian_nll_loss": _gaussian_nll,
    "cosine_embedding_loss": _cosine_embedding,
    "triplet_margin_loss": _triplet_margin,
}


def _sum_to(g, shape):
    """g (shaped like the input) summed over the axes an argument of `shape` was broadcast along."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    if shape == g.shape[:-1]:
        return g.sum(axis=-1)
    if len(shape) == g.ndim:
        return g.sum(axis=tuple(k for k in range(g.ndim) if shape[k] == 1 and g.shape[k] != 1), keepdims=True)
    return np.asarray(g.sum())


def multi_input(name, arrays, reduction="mean", grad_output=1.0, **options):
    """A loss of several arrays: Result with `grad` and `grad_mag` tuples, one per differentiable
    array (in order), each shaped like its array (var: summed to var's shape)."""
    from lossk._losses import BY_NAME

    assert reduction in REDUCTIONS
    loss_def = BY_NAME[name]
    values = [_f64(a) for a in arrays]
    terms, mags, dterms, dmags, per_row = MULTI_INPUT[name](*values, **options)
    go = np.asarray(grad_output, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if reduction == "none":
            loss, loss_mag = terms, mags
            scale = np.broadcast_to(go, terms.shape)
        else:
            div = np.float64(terms.size if reduction == "mean" else 1)
            loss, loss_mag = float(np.sum(terms) / div), float(np.sum(mags) / div)
            scale = go / div
        scale = np.asarray(scale)[..., None] if per_row else scale
        grads, grad_mags = [], []
        for k, d, dm in zip(loss_def.differentiable, dterms, dmags):
            shape = np.shape(arrays[k])
            grads.append(_sum_to(d * scale, shape))
            grad_mags.append(_sum_to(dm * np.abs(scale), shape))
    return Result(loss, tuple(grads), loss_mag, tuple(grad_mags))


def _ctc_sequence(lp, labels, blank):
    """One sequence: (-log p(labels | lp), d/d logits of lp = log_softmax(logits), the magnitude of
    that gradient's two terms) in float64, from
    Graves et al. (2006): alpha and beta over the labels with blanks around them, in log space."""
    ext = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    ext[1::2] = labels
    T, L = lp.shape[0], len(ext)
    if T == 0:
        return (0.0 if L == 1 else np.inf), np.zeros_like(lp), np.zeros_like(lp)
    skip = np.array([s >= 2 and ext[s] != ext[s - 2] for s in range(L)])
    emit = lp[:, ext]                                   # (T, L)
    alpha = np.full((T, L), -np.inf)
    beta = np.full((T, L), -np.inf)
    alpha[0, :2] = emit[0, :2]
    def later(a, k):     # a[s - k] at s (-inf before the start)
        return np.concatenate([np.full(k, -np.inf), a])[:L]

    def earlier(a, k):   # a[s + k] at s (-inf after the end)
        return np.concatenate([a, np.full(k, -np.inf)])[k:]

    with np.errstate(invalid="ignore"):
        for t in range(1, T):
            a = alpha[t - 1]
            prev = np.logaddexp(a, later(a, 1))
            prev = np.where(skip, np.logaddexp(prev, later(a, 2)), prev)
            alpha[t] = prev + emit[t]
        beta[T - 1, L - 2 if L > 1 else 0:] = emit[T - 1, L - 2 if L > 1 else 0:]
        skip_back = np.concatenate([skip, [False, False]])[2:]
        for t in range(T - 2, -1, -1):
            b = beta[t + 1]
            nxt = np.logaddexp(b, earlier(b, 1))
            nxt = np.where(skip_back, np.logaddexp(nxt, earlier(b, 2)), nxt)
            beta[t] = nxt + emit[t]
        nll = -np.logaddexp(alpha[T - 1, L - 1], alpha[T - 1, L - 2] if L > 1 else -np.inf)
        log_ab = np.full(lp.shape, -np.inf)
        for s in range(L):
            log_ab[:, ext[s]] = np.logaddexp(log_ab[:, ext[s]], alpha[:, s] + beta[:, s])
        occupancy = np.exp(log_ab + nll - lp)
    return nll, np.exp(lp) - occupancy, np.exp(lp) + occupancy


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False,
             grad_output=1.0):
    """CTC: Result with the loss and PyTorch's gradient (see lossk.ctc_loss) for log_probs (T, N, C)
    or (T, C), targets padded (N, S) or concatenated."""
    assert reduction in REDUCTIONS
    lp = _f64(log_probs)
    unbatched = lp.ndim == 2
    lp3 = lp[:, None] if unbatched else lp
    T, N, C = lp3.shape
    il = np.asarray(input_lengths, dtype=np.int64).reshape(N)
    tl = np.asarray(target_lengths, dtype=np.int64).reshape(N)
    tg = np.asarray(targets, dtype=np.int64)
    padded = tg.ndim == 2
    starts = np.concatenate([[0], np.cumsum(tl)[:-1]]).astype(np.int64)
    losses, grad, grad_mag = np.zeros(N), np.zeros_like(lp3), np.zeros_like(lp3)
    for n in range(N):
        labels = tg[n, :tl[n]] if padded else tg[starts[n]:starts[n] + tl[n]]
        nll, g, m = _ctc_sequence(lp3[:il[n], n], labels, blank)
        if zero_infinity and nll == np.inf:
            nll, g, m = 0.0, np.zeros_like(g), np.zeros_like(m)
        losses[n] = nll
        grad[:il[n], n] = g
        grad_mag[:il[n], n] = m
    go = np.asarray(grad_output, dtype=np.float64)
    per = np.maximum(tl, 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if reduction == "none":
            loss = losses[0] if unbatched else losses
            scale = np.broadcast_to(go, (N,)) if go.ndim == 0 else go.reshape(N)
        elif reduction == "sum":
            loss, scale = float(losses.sum()), np.broadcast_to(go, (N,))
        else:
            loss, scale = float(np.mean(losses / per)) if N else np.nan, go / N / per
        grad = grad * scale[None, :, None]
        grad_mag = grad_mag * np.abs(scale)[None, :, None]
    if unbatched:
        grad, grad_mag = grad[:, 0], grad_mag[:, 0]
    return Result(loss, grad, np.abs(np.asarray(loss)), grad_mag)


def ctc_by_enumeration(log_probs, labels, blank=0):
    """-log p(labels | log_probs (T, C)) by summing over every path of T classes that collapses to
    `labels` (repeats merged, then blanks dropped): exponential in T, for tiny T only."""
    import itertools

    T, C = log_probs.shape
    total = -np.inf
    for path in itertools.product(range(C), repeat=T):
        collapsed = [c for k, c in enumerate(path) if c != blank and (k == 0 or c != path[k - 1])]
        if collapsed == list(labels):
            total = np.logaddexp(total, sum(log_probs[t, c] for t, c in enumerate(path)))
    return -total
