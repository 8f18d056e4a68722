"""lossk against PyTorch (CPU, autograd) on many shapes and option combinations, plus the edge
cases where PyTorch's semantics are the definition: extreme and masked logits, ignored targets,
BCE at 0 and 1, non-finite inputs, empty inputs. Skipped when torch is not importable."""
import gc
import warnings

import numpy as np
import pytest

import lossk
import reference
from helpers import assert_close, bench_cases, relayout
from loss_specs import (CLASSIFICATION_CASES, ELEMENTWISE_CASES, MARGIN_CASES, evaluate, margin_params, prob_targets,
                        shape_id, shapes_and_layouts, with_reductions)

torch = pytest.importorskip("torch")
F = torch.nn.functional
torch.set_num_threads(1)          # small inputs; and leave the cores to lossk
gc.freeze()                       # keep the garbage collector from rescanning torch's many objects

CLASS_CASES = {c.id: c for c in CLASSIFICATION_CASES}
EW_CASES = {c.id: c for c in ELEMENTWISE_CASES}


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision's sigmoid_focal_loss, its gradient by autograd, written without its roundings:
    torchvision's 1 - p_t cancels where p is close to t, and PyTorch's BCE of logits adds
    (1 - t) x and max(-x, 0) (cancelling for soft targets) and takes log(1 + e) for log1p(e); in
    float32 that is a relative error of 1e-5 on losses of 1e-9, which would hide the semantics
    under rounding. The edge-value tests use torchvision's own form (bench/cases.py)."""
    linear = torch.where(inputs >= 0, (1 - targets) * inputs, -targets * inputs)
    ce = linear + torch.log1p(torch.exp(-inputs.abs()))
    q = torch.sigmoid(inputs) * (1 - targets) + torch.sigmoid(-inputs) * targets
    loss = ce * q ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def torch_function(name, exact=True):
    """The PyTorch function `name` is compared with; for sigmoid_focal_loss, torchvision's form
    unless `exact`."""
    return sigmoid_focal_loss if name == "sigmoid_focal_loss" and exact else bench_cases().torch_function(name)


def torch_loss_and_grad(name, x, t, opts, reduction, grad_output=1.0, exact=True):
    """PyTorch's loss and d(loss)/d(input) (autograd, times grad_output), as NumPy arrays."""
    xt = torch.from_numpy(np.array(x, order="C")).requires_grad_(True)   # some torch kernels need contiguous
    t = np.array(t, order="C")
    tt = torch.from_numpy(t if t.dtype.kind == "f" else t.astype(np.int64))
    kw = {k: torch.from_numpy(np.array(v, dtype=x.dtype, order="C")) if isinstance(v, np.ndarray) else v
          for k, v in opts.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # kl_div's reduction="mean" warning
        loss = torch_function(name, exact)(xt, tt, reduction=reduction, **kw)
    go = np.asarray(grad_output, dtype=x.dtype)
    loss.backward(torch.from_numpy(np.array(np.broadcast_to(go, tuple(loss.shape)), order="C")))
    return loss.detach().numpy(), xt.grad.numpy()


def assert_matches_torch(name, x, t, opts, reduction, grad_output=1.0, magnitude_from_reference=True):
    """Every lossk entry point against PyTorch: loss, gradient for grad_output and for 1. Edge
    values (no magnitude from the reference) are compared with torchvision's own sigmoid focal loss."""
    out = evaluate(name, x, t, opts, reduction, grad_output)
    exact = magnitude_from_reference
    loss, grad = torch_loss_and_grad(name, x, t, opts, reduction, grad_output, exact)
    _, grad1 = torch_loss_and_grad(name, x, t, opts, reduction, exact=exact)
    mags = [None, None, None]
    if magnitude_from_reference:
        ref = reference.compute(name, x, t, reduction, grad_output=grad_output, **opts)
        ref1 = reference.compute(name, x, t, reduction, **opts)
        mags = [ref.loss_mag, ref.grad_mag, ref1.grad_mag]
    dtype = x.dtype
    assert_close(out.loss, loss, dtype, mags[0], "loss vs torch")
    assert_close(out.fused_loss, loss, dtype, mags[0], "fused loss vs torch")
    assert_close(out.grad, grad, dtype, mags[1], "grad vs torch")
    assert_close(out.grad1, grad1, dtype, mags[2], "grad (grad_output=1) vs torch")
    assert_close(out.fused_grad, grad1, dtype, mags[2], "fused grad vs torch")
    return out



# --- the reference twin itself -----------------------------------------------------------------

@pytest.mark.parametrize("case, reduction", with_reductions(ELEMENTWISE_CASES + CLASSIFICATION_CASES))
def test_reference_twin_matches_torch(case, reduction, rng):
    """reference.py (used by the other test modules) computes what PyTorch computes."""
    shape = (5, 4, 3)
    x, t, opts = case.build(rng, shape, np.float64)
    go = rng.normal(size=reference.compute(case.name, x, t, "none", **opts).loss.shape) \
        if reduction == "none" else -1.5
    ref = reference.compute(case.name, x, t, reduction, grad_output=go, **opts)
    loss, grad = torch_loss_and_grad(case.name, x, t, opts, reduction, go)
    assert_close(ref.loss, loss, np.float64, ref.loss_mag, "reference loss vs torch")
    assert_close(ref.grad, grad, np.float64, ref.grad_mag, "reference grad vs torch")


@pytest.mark.parametrize("case, reduction, shape, layout",
                         margin_params(MARGIN_CASES, [((5, 7), "contiguous"), ((2, 3, 6), "contiguous")]))
def test_margin_reference_twin_matches_torch(case, reduction, shape, layout, rng):
    x, t, opts = case.build(rng, shape, np.float64)
    go = rng.normal(size=shape[:-1]) if reduction == "none" else -1.5
    ref = reference.compute(case.name, x, t, reduction, grad_output=go, **opts)
    loss, grad = torch_loss_and_grad(case.name, x, t, opts, reduction, go)
    assert_close(ref.loss, loss, np.float64, ref.loss_mag, "reference loss vs torch")
    assert_close(ref.grad, grad, np.float64, ref.grad_mag, "reference grad vs torch")


# --- many shapes and options ----------------------------------------------------------------

def ew_grad_output(rng, reduction, shape, dtype, layout):
    return relayout(rng.normal(0, 2, shape).astype(dtype), layout) if reduction == "none" else 0.625


# (the reference tests see every layout with every rank; these are about PyTorch's semantics)
EW_SHAPES = shapes_and_layouts([((7,), "strided"), ((3, 5), "transposed"), ((2, 3, 4), "contiguous"),
                                ((19, 35), "strided")])
CLASS_SHAPES = shapes_and_layouts([((5,), "strided"), ((6, 4), "contiguous"), ((3, 4, 5), "transposed"),
                                   ((2, 3, 4, 3), "strided"), ((2, 3, 2, 3, 2), "contiguous"),
                                   ((1, 7), "transposed"), ((3, 1, 5), "strided"), ((2, 1), "contiguous")])


@pytest.mark.parametrize("shape, layout", EW_SHAPES)
@pytest.mark.parametrize("case, reduction", with_reductions(ELEMENTWISE_CASES))
def test_elementwise_matches_torch(case, reduction, shape, layout, dtype, rng):
    x, t, opts = case.build(rng, shape, dtype)
    go = ew_grad_output(rng, reduction, shape, dtype, layout)
    x, t = relayout(x, layout), relayout(t, layout)
    opts = {k: relayout(v, layout) for k, v in opts.items()}
    assert_matches_torch(case.name, x, t, opts, reduction, go)


@pytest.mark.parametrize("shape, layout", CLASS_SHAPES)
@pytest.mark.parametrize("case, reduction", with_reductions(CLASSIFICATION_CASES))
def test_classification_matches_torch(case, reduction, shape, layout, dtype, rng):
    x, t, opts = case.build(rng, shape, dtype)
    if reduction == "none":
        go = rng.normal(0, 2, t.shape if t.dtype.kind in "iu" else np.sum(x, axis=min(1, x.ndim - 1)).shape)
        if t.dtype.kind in "iu":                 # PyTorch never reads grad_output at ignored positions
            go = np.where(t == case.options.get("ignore_index", -100), np.nan, go)
        go = relayout(go.astype(dtype), layout)
    else:
        go = 0.625
    x, t = relayout(x, layout), relayout(t, layout)
    opts = {k: relayout(v, layout) for k, v in opts.items()}
    assert_matches_torch(case.name, x, t, opts, reduction, go)


MARGIN_SHAPES = [((5,), "strided"), ((6, 4), "contiguous"), ((9, 33), "transposed"), ((1, 1), "contiguous"),
                 ((3, 2), "strided"), ((2, 3, 5), "strided"), ((2, 1, 3, 4), "transposed")]


@pytest.mark.parametrize("case, reduction, shape, layout", margin_params(MARGIN_CASES, MARGIN_SHAPES))
def test_margin_matches_torch(case, reduction, shape, layout, dtype, rng):
    x, t, opts = case.build(rng, shape, dtype)
    go = relayout(rng.normal(0, 2, shape[:-1]).astype(dtype), layout) if reduction == "none" else 0.625
    x, t = relayout(x, layout), relayout(t, layout)
    opts = {k: relayout(v, layout) for k, v in opts.items()}
    assert_matches_torch(case.name, x, t, opts, reduction, go)


NAN, INF = float("nan"), float("inf")
MARGIN_NONFINITE = np.array([[NAN, 0.3, 1.0, -1.0], [1.0, 0.0, 0.5, 2.0], [INF, 0.0, 0.5, 0.0], [0.0, INF, 0.5, 0.0],
                             [-INF, 1.0, 2.0, INF], [INF, INF, 0.5, -INF]])
MARGIN_NONFINITE_TARGETS = {
    "multi_margin_loss": np.array([1, 0, 1, 1, 2, 0]),
    "multilabel_margin_loss": np.array([[1, -1, 0, 0], [0, -1, 3, 3], [1, 2, -1, 0], [1, -1, 0, 0], [3, 2, -1, 2],
                                        [0, 3, -1, -1]]),
    "multilabel_soft_margin_loss": np.array([[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.5, 0.0],
                                             [0.0, 1.0, 0.0, 1.0], [1.0, 0.5, 0.0, 0.0], [0.5, 0.0, 1.0, 1.0]]),
}


@pytest.mark.parametrize("name, opts", [("multi_margin_loss", {}), ("multi_margin_loss", {"p": 2, "margin": 0.5}),
                                        ("multilabel_margin_loss", {}), ("multilabel_soft_margin_loss", {})],
                         ids=["multi_margin", "multi_margin-p2", "multilabel_margin", "multilabel_soft_margin"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_margin_non_finite_inputs(name, opts, reduction, dtype):
    """nan and infinite scores: a nan margin adds nothing, an infinite one inf (PyTorch's
    `if (z > 0)`); the soft margin's inf and nan where PyTorch's logsigmoid gives them."""
    x = MARGIN_NONFINITE.astype(dtype)
    t = MARGIN_NONFINITE_TARGETS[name]
    t = t.astype(dtype) if t.dtype.kind == "f" else t
    assert_matches_torch(name, x, t, opts, reduction, 1.0, magnitude_from_reference=False)


@pytest.mark.parametrize("name", ["multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss"])
def test_margin_zero_rows(name, dtype):
    """No rows: an empty loss as PyTorch's, a sum of 0 and a mean of nan. PyTorch's two hinge losses
    return an uninitialised value for both (lossk differs on purpose); its soft margin loss agrees."""
    x = np.zeros((0, 4), dtype)
    t = np.zeros((0,) if name == "multi_margin_loss" else (0, 4), dtype if name == "multilabel_soft_margin_loss"
                 else np.int64)
    assert_matches_torch(name, x, t, {}, "none", np.ones(0, dtype), magnitude_from_reference=False)
    if name == "multilabel_soft_margin_loss":
        assert_matches_torch(name, x, t, {}, "sum", 1.0, magnitude_from_reference=False)
        assert_matches_torch(name, x, t, {}, "mean", 1.0, magnitude_from_reference=False)
    assert getattr(lossk, name)(x, t, reduction="sum") == 0 and np.isnan(getattr(lossk, name)(x, t))


@pytest.mark.parametrize("name, t", [("multi_margin_loss", np.array([0, 3])),
                                     ("multilabel_margin_loss", np.array([[0, -1, 7], [0, -1, 0]]))])
def test_torch_also_rejects_out_of_range_margin_targets(name, t):
    x = np.zeros((2, 3))
    with pytest.raises(RuntimeError, match="out of range"):
        getattr(F, name)(torch.from_numpy(x), torch.from_numpy(t))
    with pytest.raises(ValueError, match="target"):
        getattr(lossk, name)(x, t)


# --- cross-entropy edge cases --------------------------------------------------------------

def masked_logits(dtype):
    """Rows with +-1e4 logits, -inf masked classes, and both."""
    return np.array([[1e4, -1e4, 0.0, 5.0],
                     [-np.inf, 2.0, -np.inf, 1.0],
                     [-1e4, -1e4, -1e4, -1e4],
                     [1e4, 1e4 - 1, -np.inf, -np.inf],
                     [-np.inf, -np.inf, 3.0, -np.inf],
                     [-1e4, 1e4, -np.inf, 0.0]], dtype)


CE_EDGE_OPTIONS = {
    "plain": {},
    "w": {"weight": np.array([1.0, 0.5, 2.0, 1.5])},
    "ls0.1": {"label_smoothing": 0.1},
    "w-ls0.3": {"weight": np.array([1.0, 0.5, 2.0, 1.5]), "label_smoothing": 0.3},
    "ign1": {"ignore_index": 1},
}


@pytest.mark.parametrize("opts", CE_EDGE_OPTIONS.values(), ids=CE_EDGE_OPTIONS.keys())
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_extreme_and_masked_logits(opts, reduction, dtype, layout):
    """Targets on unmasked classes: finite wherever PyTorch is finite, no spurious nan; with
    label smoothing the masked classes make the loss inf, as in PyTorch."""
    x = relayout(masked_logits(dtype), layout)
    t = np.array([1, 3, 2, 0, 2, 1])
    opts = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in opts.items()}
    out = assert_matches_torch("cross_entropy", x, t, opts, reduction, 1.0, magnitude_from_reference=False)
    if "label_smoothing" not in opts:
        assert np.isfinite(out.loss).all()
    assert not np.isnan(out.grad).any()


@pytest.mark.parametrize("opts", [{}, {"weight": np.array([1.0, 0.5, 2.0, 1.5])}, {"label_smoothing": 0.2}],
                         ids=["plain", "w", "ls0.2"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_probability_targets_with_masked_logits(opts, reduction, dtype):
    """Probability targets with -inf logits: 0 * -inf is nan in PyTorch (and must be here)."""
    x = masked_logits(dtype)
    p = np.array([[0.2, 0.3, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25], [0.6, 0.4, 0.0, 0.0],
                  [0.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.0, 0.0]], dtype)
    opts = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in opts.items()}
    assert_matches_torch("cross_entropy", x, p, opts, reduction, 1.0, magnitude_from_reference=False)


@pytest.mark.parametrize("name, opts", [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.2}),
                                        ("cross_entropy", {"weight": np.array([0.5, 2.0, 1.0])}),
                                        ("cross_entropy", {"label_smoothing": 1.0}), ("nll_loss", {}),
                                        ("nll_loss", {"weight": np.array([0.5, 2.0, 1.0])})],
                         ids=["ce", "ce-ls0.2", "ce-w", "ce-ls1", "nll", "nll-w"])
@pytest.mark.parametrize("shape, layout", shapes_and_layouts([((3,), "strided"), ((4, 3), "transposed"),
                                                              ((2, 3, 4), "contiguous")]))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_all_targets_ignored(name, opts, shape, layout, reduction, dtype):
    """mean: nan loss, zero gradient (as PyTorch)."""
    x = relayout(np.linspace(-2, 2, int(np.prod(shape))).reshape(shape).astype(dtype), layout)
    t = np.full(() if len(shape) == 1 else shape[:1] + shape[2:], -100, np.int64)
    opts = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in opts.items()}
    go = np.full(t.shape, 3.0, dtype) if reduction == "none" else 1.0
    assert_matches_torch(name, x, t, opts, reduction, go, magnitude_from_reference=False)


@pytest.mark.parametrize("name, opts", [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.2}),
                                        ("nll_loss", {})], ids=["ce", "ce-ls0.2", "nll"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_zero_weight_on_every_target(name, opts, reduction, dtype):
    """The targeted classes all have weight 0 (none ignored): PyTorch's mean is 0/0."""
    x = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -1.0], [0.0, 3.0, 1.0]], dtype)
    t = np.array([0, 0, 2])
    opts = dict(opts, weight=np.array([0.0, 1.0, 0.0], dtype))
    assert_matches_torch(name, x, t, opts, reduction, 1.0, magnitude_from_reference=False)


def test_unbatched_input_matches_torch(dtype, rng):
    x = rng.normal(size=5).astype(dtype)
    for t, opts in ((np.array(3), {}), (np.array(3, np.uint8), {"weight": rng.uniform(0.5, 2, 5).astype(dtype)}),
                    (np.array(3), {"label_smoothing": 0.3}), (np.array(-100), {})):
        for reduction in ("none", "mean", "sum"):
            assert_matches_torch("cross_entropy", x, t, opts, reduction, 2.0, magnitude_from_reference=False)
            assert_matches_torch("nll_loss", x, t, {k: v for k, v in opts.items() if k == "weight"}, reduction,
                                 2.0, magnitude_from_reference=False)


def test_negative_label_smoothing_is_rejected_where_torch_treats_it_as_zero(rng):
    """Documented deliberate difference: PyTorch treats label_smoothing < 0 as 0; lossk raises."""
    x, t = rng.normal(size=(4, 3)), np.array([0, 2, 1, 1])
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    assert F.cross_entropy(xt, tt, label_smoothing=-0.1).item() == F.cross_entropy(xt, tt).item()
    with pytest.raises(ValueError, match="label_smoothing"):
        lossk.cross_entropy(x, t, label_smoothing=-0.1)


def test_torch_also_rejects_out_of_range_class_index(rng):
    x, t = torch.from_numpy(rng.normal(size=(4, 3))), torch.tensor([0, 3, 1, 1])
    with pytest.raises((RuntimeError, IndexError)):
        F.cross_entropy(x, t)


@pytest.mark.parametrize("case", [CLASS_CASES["ce-w-ls0.1"], CLASS_CASES["ce_prob-w"], CLASS_CASES["nll-w"]],
                         ids=repr)
@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3), (2, 4, 0)], ids=shape_id)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_classification_zero_size(case, shape, reduction, dtype, rng):
    x, t, opts = case.build(rng, shape, dtype)
    assert_matches_torch(case.name, x, t, opts, reduction, 1.0, magnitude_from_reference=False)


# --- elementwise edge cases ------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_at_zero_and_one(reduction, dtype, layout):
    x = relayout(np.array([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0], [0.5, 1e-30, 1 - 2**-24, 0.25, 1e-13, 1e-6]], dtype),
                 layout)
    t = relayout(np.array([[0.0, 0.5, 1.0, 0.0, 0.5, 1.0], [1.0, 1.0, 0.0, 0.0, 1.0, 0.3]], dtype), layout)
    for opts in ({}, {"weight": np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.25], dtype)}):
        out = assert_matches_torch("binary_cross_entropy", x, t, opts, reduction, 1.0,
                                   magnitude_from_reference=False)
        assert np.isfinite(out.loss).all() and np.isfinite(out.grad).all()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_with_logits_at_1e4(reduction, dtype, layout):
    x = relayout(np.array([[1e4, -1e4, 1e4, -1e4, 0.0, 88.0], [-1e4, 1e4, 50.0, -50.0, 1e4, -1e4]], dtype),
                 layout)
    t = relayout(np.array([[1.0, 0.0, 0.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.3, 0.7, 0.5, 0.5]], dtype), layout)
    for opts in ({}, {"pos_weight": np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.25], dtype)},
                 {"weight": np.array([[2.0], [0.5]], dtype), "pos_weight": np.array([3.0], dtype)}):
        out = assert_matches_torch("binary_cross_entropy_with_logits", x, t, opts, reduction, 1.0)
        assert np.isfinite(out.loss).all() and np.isfinite(out.grad).all()


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
def test_kl_div_with_zero_targets(log_target, reduction, dtype, layout):
    x = relayout(np.array([[-1e3, -2.0, -0.5], [-30.0, -1e-3, 0.0]], dtype), layout)
    t = np.array([[0.0, 0.0, 0.5], [0.0, 1.0, 0.0]], dtype)
    if log_target:
        t = np.array([[-np.inf, -50.0, 0.0], [-1.0, -np.inf, 0.0]], dtype)     # exp(-inf) = 0
    t = relayout(t, layout)
    assert_matches_torch("kl_div", x, t, {"log_target": log_target}, reduction, 1.0,
                         magnitude_from_reference=False)


def test_smooth_l1_with_beta_0_is_torch_l1(dtype, rng):
    x, t = rng.normal(size=(6, 5)).astype(dtype), rng.normal(size=(6, 5)).astype(dtype)
    x[2] = t[2]
    for reduction in ("none", "mean", "sum"):
        out = evaluate("smooth_l1_loss", x, t, {"beta": 0.0}, reduction, 1.0)
        loss, grad = torch_loss_and_grad("l1_loss", x, t, {}, reduction)
        assert_close(out.loss, loss, dtype, what="smooth_l1(beta=0) vs torch l1")
        assert_close(out.grad, grad, dtype, what="smooth_l1(beta=0) grad vs torch l1")
        assert_matches_torch("smooth_l1_loss", x, t, {"beta": 0.0}, reduction)


@pytest.mark.parametrize("name", ["l1_loss", "smooth_l1_loss", "huber_loss", "mse_loss"])
def test_gradient_where_input_equals_target(name, dtype, rng):
    x = rng.normal(size=(4, 5)).astype(dtype)
    t = x.copy()
    t[::2] += 0.5
    out = assert_matches_torch(name, x, t, {}, "sum")
    assert (out.grad[1::2] == 0).all()


NONFINITE = {
    "l1": ("l1_loss", {}), "mse": ("mse_loss", {}), "smooth_l1": ("smooth_l1_loss", {}),
    "huber": ("huber_loss", {}), "bce_logits": ("binary_cross_entropy_with_logits", {}),
    "bce_logits-pw": ("binary_cross_entropy_with_logits", {"pos_weight": np.array([2.0, 0.5, 1.0])}),
    "kl_div": ("kl_div", {}), "kl_div-log_target": ("kl_div", {"log_target": True}),
    "hinge_embedding": ("hinge_embedding_loss", {}), "hinge_embedding-margin-1": ("hinge_embedding_loss", {"margin": -1.0}),
    "poisson_nll": ("poisson_nll_loss", {}), "poisson_nll-full": ("poisson_nll_loss", {"full": True}),
    "poisson_nll-rate": ("poisson_nll_loss", {"log_input": False}),
    "poisson_nll-rate-full": ("poisson_nll_loss", {"log_input": False, "full": True}),
    "sigmoid_focal": ("sigmoid_focal_loss", {}), "sigmoid_focal-gamma0.5": ("sigmoid_focal_loss", {"gamma": 0.5}),
    "sigmoid_focal-gamma0": ("sigmoid_focal_loss", {"gamma": 0.0}),
}


@pytest.mark.parametrize("name, opts", NONFINITE.values(), ids=NONFINITE.keys())
def test_non_finite_inputs(name, opts, dtype):
    """nan and +-inf inputs (with zero and non-zero targets) give what PyTorch gives."""
    x = np.array([[np.nan, np.inf, -np.inf], [np.nan, np.inf, -np.inf], [0.5, -0.5, 1.5]], dtype)
    t = np.array([[0.0, 0.0, 0.0], [0.5, 0.25, 1.0], [np.nan, np.inf, 0.0]], dtype)
    if name == "kl_div" and opts.get("log_target"):
        t = np.array([[-np.inf, -np.inf, -np.inf], [-0.5, -1.0, 0.0], [np.nan, -np.inf, 0.0]], dtype)
    opts = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in opts.items()}
    with np.errstate(all="ignore"):
        assert_matches_torch(name, x, t, opts, "none", 1.0, magnitude_from_reference=False)


def test_soft_margin_non_finite_and_where_torch_overflows(dtype):
    """nan and infinite inputs as PyTorch; where -target * input is large, PyTorch's log1p(exp(z))
    is inf and its gradient nan, and lossk's loss is z and its gradient -target (the docstring)."""
    x = np.array([np.nan, np.inf, np.inf, 0.5, 0.5, 1.0], dtype)
    t = np.array([1.0, 0.5, 0.0, np.nan, np.inf, -np.nan], dtype)
    with np.errstate(all="ignore"):
        assert_matches_torch("soft_margin_loss", x, t, {}, "none", 1.0, magnitude_from_reference=False)
    x = np.array([1e3, -1e4, 3e4, 800.0, -np.inf], dtype)
    t = np.array([-1.0, 1.0, -0.5, -2.0, 1.0], dtype)
    z = -t * x
    loss, grad = lossk.soft_margin_loss_with_grad(x, t, reduction="none")
    assert (loss == z).all() and (grad == -t).all()
    torch_loss, torch_grad = torch_loss_and_grad("soft_margin_loss", x, t, {}, "none")
    assert np.isinf(torch_loss).all() and np.isnan(torch_grad).all()


def test_hinge_embedding_at_the_margin(dtype):
    """Where margin - input == 0 the clamp's gradient passes (-1), as PyTorch's clamp_min."""
    x = np.array([1.0, 1.0, 0.5, 0.5, -2.0], dtype)
    t = np.array([-1.0, 0.0, -1.0, 1.0, -1.0], dtype)
    for margin in (1.0, 0.5, -2.0):
        out = assert_matches_torch("hinge_embedding_loss", x, t, {"margin": margin}, "sum")
        assert out.grad[x == margin][t[x == margin] == -1].tolist() == [-1.0] * int(((x == margin) & (t == -1)).sum())


@pytest.mark.parametrize("opts", [{}, {"gamma": 0.0}, {"gamma": 0.5, "alpha": 0.9}, {"gamma": 1.0, "alpha": -1.0}],
                         ids=["default", "gamma0", "gamma0.5", "gamma1-no_alpha"])
def test_sigmoid_focal_saturated_logits(opts, dtype, rng):
    """Logits of +-1e4 (p is exactly 0 or 1, and q = 1 - p_t is 0 where the label agrees) give
    torchvision's values, nan gradients for 0 < gamma < 1 included. At +-40, where torchvision's
    1 - p_t rounds to 0 even in float64, lossk keeps the tiny loss the float64 twin gives (float32:
    at +-12, within float32's range)."""
    x = np.array([1e4, -1e4, 1e4, -1e4], dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype)
    with np.errstate(all="ignore"):
        assert_matches_torch("sigmoid_focal_loss", x, t, opts, "none", 1.0, magnitude_from_reference=False)
    x = np.array([40.0, -40.0, 20.0] if dtype == np.float64 else [12.0, -12.0, 8.0], dtype)
    t = np.array([1.0, 0.0, 1.0], dtype)
    if dtype == np.float64 and opts.get("gamma", 2.0) > 0:
        torchvision = bench_cases().torchvision_sigmoid_focal_loss(torch.from_numpy(x), torch.from_numpy(t), **opts)
        assert (torchvision[:2] == 0).all()
    out = evaluate("sigmoid_focal_loss", x, t, opts, "none", 1.0)
    expected = reference.compute("sigmoid_focal_loss", x, t, "none", **opts)
    assert_close(out.loss, expected.loss, dtype, expected.loss_mag, "loss vs the twin")
    assert_close(out.grad, expected.grad, dtype, expected.grad_mag, "grad vs the twin")
    assert (out.loss > 0).all()


def test_poisson_nll_rate_at_minus_eps(dtype):
    """log_input=False with input + eps = 0 or below: the log's inf and nan, as PyTorch."""
    eps = 0.25
    x = np.array([-0.25, -1.0, 0.0, 2.0], dtype)
    t = np.array([1.0, 2.0, 0.0, 3.0], dtype)
    with np.errstate(all="ignore"):
        assert_matches_torch("poisson_nll_loss", x, t, {"log_input": False, "eps": eps}, "none", 1.0,
                             magnitude_from_reference=False)


@pytest.mark.parametrize("name, opts", [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.1}),
                                        ("nll_loss", {})], ids=["ce", "ce-ls0.1", "nll"])
def test_non_finite_logits(name, opts, dtype):
    """nan and +inf logits: PyTorch propagates nan through the row."""
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, 1.0, 2.0], [np.inf, np.inf, 0.0], [1.0, 2.0, 3.0]], dtype)
    t = np.array([1, 1, 2, 0])
    with np.errstate(all="ignore"):
        assert_matches_torch(name, x, t, opts, "none", 1.0, magnitude_from_reference=False)


@pytest.mark.parametrize("case", [EW_CASES[i] for i in ("l1", "mse", "huber", "bce-w_last", "bce_logits-w_full-pw_last",
                                                        "kl_div", "kl_div-log_target")], ids=repr)
@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3)], ids=shape_id)
def test_elementwise_zero_size(case, shape, dtype, rng):
    x, t, opts = case.build(rng, shape, dtype)
    for reduction in case.reductions():
        assert_matches_torch(case.name, x, t, opts, reduction, 1.0, magnitude_from_reference=False)


@pytest.mark.parametrize("case", [EW_CASES[i] for i in ("l1", "smooth_l1", "bce-w_scalar", "kl_div")], ids=repr)
def test_elementwise_zero_dim(case, dtype, rng):
    x, t, opts = case.build(rng, (), dtype)
    for reduction in case.reductions():
        assert_matches_torch(case.name, x, t, opts, reduction, 1.5, magnitude_from_reference=False)

