"""ctc_loss against the float64 NumPy twin in reference.py (itself checked against the sum over
every alignment), finite differences through log_softmax, PyTorch (when installed), and lossk's
contract: padded, concatenated and unbatched targets, zero-length targets and impossible
alignments, zero_infinity, thread-count invariance, and argument checking with nothing written."""
import numpy as np
import pytest

import lossk
import reference
from helpers import DTYPES, assert_bitwise_equal, assert_scalar_result, relayout, unmodified
from loss_specs import ctc_problem as problem, log_softmax

REDUCTIONS = ("none", "mean", "sum")


def check(actual, expected, dtype, T, what):
    """Loss or gradient against the twin: float32 to its rounding, float64 to the error of T steps
    of log-space recursion."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    assert (np.isnan(actual) == np.isnan(expected)).all(), f"{what}: nan at other places"
    inf = np.isinf(expected)
    assert (actual[inf] == expected[inf]).all(), f"{what}: inf mismatch"
    rtol = 2e-6 if dtype == np.float32 else 1e-13 * (T + 10)
    ok = np.isnan(expected) | inf
    scale = np.max(np.abs(np.where(ok, 0, expected)), initial=1.0)
    np.testing.assert_allclose(actual[~ok], expected[~ok], rtol=rtol, atol=rtol * scale, err_msg=what)


CASES = [(T, N, C, S, layout) for T, N, C, S in [(1, 1, 2, 1), (6, 3, 5, 3), (12, 4, 3, 5), (30, 5, 7, 8)]
         for layout in ("padded", "concatenated", "unbatched")]


@pytest.mark.parametrize("T, N, C, S, layout", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("blank", ["first", "last"])
def test_matches_reference(T, N, C, S, layout, reduction, zero_infinity, blank, dtype, rng):
    blank = 0 if blank == "first" else C - 1
    args = problem(rng, T, N, C, S, dtype, blank, layout, impossible=True, repeats=True)
    opts = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    go = -1.5 if reduction != "none" else (np.float64(0.75) if layout == "unbatched"
                                            else rng.normal(0, 2, N).astype(dtype))
    with unmodified(*args, go):
        loss = lossk.ctc_loss(*args, **opts)
        grad = lossk.ctc_loss_grad(*args, grad_output=go, **opts)
        fused_loss, fused_grad = lossk.ctc_loss_with_grad(*args, **opts)
    expected = reference.ctc_loss(*args, grad_output=go, **opts)
    expected1 = reference.ctc_loss(*args, **opts)
    if reduction == "none":
        assert loss.dtype == dtype and loss.shape == (() if layout == "unbatched" else (N,))
    else:
        assert_scalar_result(loss, dtype)
    assert grad.dtype == dtype and grad.shape == args[0].shape
    check(loss, expected.loss, dtype, T, "loss")
    check(grad, expected.grad, dtype, T, "grad")
    assert_bitwise_equal(fused_loss, loss, "fused loss")
    check(fused_grad, expected1.grad, dtype, T, "fused grad")


@pytest.mark.parametrize("labels", [[], [1], [1, 1], [1, 2], [2, 1, 2], [1, 1, 1]])
@pytest.mark.parametrize("T", [1, 2, 3, 5])
def test_twin_equals_the_sum_over_alignments(labels, T, rng):
    lp = log_softmax(rng.normal(0, 1, (T, 3)))
    expected = reference.ctc_by_enumeration(lp, labels)
    twin = reference.ctc_loss(lp, np.array(labels, np.int64), T, len(labels), reduction="none").loss
    assert twin == pytest.approx(expected, rel=1e-12) if np.isfinite(expected) else twin == np.inf
    got = lossk.ctc_loss(lp, np.array(labels, np.int64), T, len(labels), reduction="none")
    assert got == pytest.approx(expected, rel=1e-12) if np.isfinite(expected) else got == np.inf


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_is_the_logits_derivative(reduction, rng):
    """The gradient is d loss(log_softmax(z)) / d z, by central differences in z."""
    T, N, C, S = 7, 3, 4, 3
    z = rng.normal(0, 1, (T, N, C))
    _, targets, il, tl = problem(rng, T, N, C, S, np.float64)
    loss_of = (lambda zz: float(np.sum(lossk.ctc_loss(log_softmax(zz), targets, il, tl, reduction=reduction))))
    grad = lossk.ctc_loss_grad(log_softmax(z), targets, il, tl, reduction=reduction)
    h, fd = 1e-6, np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += h
        zm[i] -= h
        fd[i] = (loss_of(zp) - loss_of(zm)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_gradient_minus_exp_is_the_log_probs_derivative(rng):
    """Without the exp(log_probs) term (which log_softmax's backward removes), the gradient is the
    derivative with respect to log_probs themselves, also for log_probs that are not normalised."""
    T, N, C, S = 6, 2, 3, 2
    lp = rng.normal(-1, 0.5, (T, N, C))
    _, targets, il, tl = problem(rng, T, N, C, S, np.float64)
    grad = lossk.ctc_loss_grad(lp, targets, il, tl, reduction="sum")
    steps = (np.arange(T)[:, None] < il[None, :])[..., None]
    direct = grad - np.exp(lp) * steps
    h, fd = 1e-6, np.zeros_like(lp)
    for i in np.ndindex(lp.shape):
        p, m = lp.copy(), lp.copy()
        p[i] += h
        m[i] -= h
        fd[i] = (lossk.ctc_loss(p, targets, il, tl, reduction="sum") - lossk.ctc_loss(m, targets, il, tl, reduction="sum")) / (2 * h)
    np.testing.assert_allclose(direct, fd, rtol=1e-6, atol=1e-8)


def test_edge_values(dtype):
    """Zero-length targets and inputs, impossible alignments, repeated labels needing a blank."""
    lp = np.log(np.full((3, 1, 3), 1 / 3, dtype))
    value = lambda t, il, tl, **kw: float(lossk.ctc_loss(lp, np.array([t], np.int64), [il], [tl], reduction="sum", **kw))
    assert value([1, 1, 0], 0, 0) == 0.0                       # the empty alignment
    assert value([1, 1, 0], 0, 1) == np.inf
    assert value([1, 1, 0], 1, 2) == np.inf                   # 2 labels in 1 step
    assert value([1, 1, 0], 2, 2) == np.inf                   # a repeat needs a blank between
    assert value([1, 1, 0], 3, 2) == pytest.approx(3 * np.log(3), rel=1e-6)   # exactly one path
    assert value([1, 1, 0], 2, 2, zero_infinity=True) == 0.0
    g = lossk.ctc_loss_grad(lp, np.array([[1, 1, 0]]), [2], [2], reduction="sum")
    assert np.isnan(g[:2]).all() and (g[2] == 0).all()      # PyTorch's: nan over the input's steps
    g = lossk.ctc_loss_grad(lp, np.array([[1, 1, 0]]), [2], [2], reduction="sum", zero_infinity=True)
    assert (g == 0).all()
    with np.errstate(divide="ignore"):
        masked = lp.copy()
        masked[:, :, 2] = -np.inf                             # a class that never occurs
    assert np.isfinite(lossk.ctc_loss(masked, np.array([[1]]), [3], [1]))
    g = lossk.ctc_loss_grad(masked, np.array([[1]]), [3], [1])
    assert np.isfinite(g[..., :2]).all() and np.isnan(g[..., 2]).all()   # exp(-inf + inf), as PyTorch's
    nan_lp = lp.copy()
    nan_lp[0, 0, 0] = np.nan
    assert np.isnan(lossk.ctc_loss(nan_lp, np.array([[1]]), [3], [1]))


def test_empty(dtype):
    lp = np.zeros((0, 2, 4), dtype)
    assert (lossk.ctc_loss(lp, np.zeros((2, 0), np.int64), [0, 0], [0, 0], reduction="none") == 0).all()
    assert lossk.ctc_loss(lp, np.zeros((2, 1), np.int64), [0, 0], [1, 0], reduction="sum") == np.inf
    lp = np.zeros((5, 0, 4), dtype)
    assert lossk.ctc_loss(lp, np.zeros((0, 3), np.int64), [], [], reduction="none").shape == (0,)
    assert lossk.ctc_loss(lp, np.zeros((0, 3), np.int64), [], [], reduction="sum") == 0
    assert np.isnan(lossk.ctc_loss(lp, np.zeros((0, 3), np.int64), [], [], reduction="mean"))
    assert lossk.ctc_loss_grad(lp, np.zeros((0,), np.int64), [], []).shape == (5, 0, 4)


@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_non_contiguous_arguments(layout, dtype, rng):
    lp, targets, il, tl = problem(rng, 9, 4, 5, 4, dtype)
    expected = lossk.ctc_loss_with_grad(lp, targets, il, tl, reduction="none")
    args = tuple(relayout(np.asarray(a), layout) for a in (lp, targets, il, tl))
    with unmodified(*args):
        loss, grad = lossk.ctc_loss_with_grad(*args, reduction="none")
    assert_bitwise_equal(loss, expected[0])
    assert_bitwise_equal(grad, expected[1])
    for dt in (np.int32, np.uint8, np.int16):               # any integer dtype
        loss = lossk.ctc_loss(lp, targets.astype(dt), il.astype(dt), tl.astype(dt), reduction="none")
        assert_bitwise_equal(loss, expected[0])
    loss = lossk.ctc_loss(lp, targets.tolist(), il.tolist(), tuple(tl.tolist()), reduction="none")
    assert_bitwise_equal(loss, expected[0])


def test_out_and_module(dtype, rng):
    lp, targets, il, tl = problem(rng, 10, 3, 4, 3, dtype)
    out = np.full_like(lp, 7)
    loss, grad = lossk.ctc_loss_with_grad(lp, targets, il, tl, out=out)
    assert grad is out and np.isfinite(out).all()
    assert_bitwise_equal(lossk.ctc_loss_grad(lp, targets, il, tl), out)
    criterion = lossk.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    assert criterion(lp, targets, il, tl) == lossk.ctc_loss(lp, targets, il, tl, reduction="sum", zero_infinity=True)
    assert_bitwise_equal(criterion.backward(), lossk.ctc_loss_grad(lp, targets, il, tl, reduction="sum"))
    assert "CTCLoss(reduction='sum', blank=0, zero_infinity=True)" == repr(criterion)


@pytest.mark.parametrize("threads", [1, 3])
def test_bit_identical_for_any_thread_count(threads, dtype, rng, restore_threads):
    lp, targets, il, tl = problem(rng, 40, 70, 6, 9, dtype)
    lossk.set_num_threads(2)
    ref = [lossk.ctc_loss_with_grad(lp, targets, il, tl, reduction=r) for r in REDUCTIONS]
    lossk.set_num_threads(threads)
    for r, (loss, grad) in zip(REDUCTIONS, ref):
        got = lossk.ctc_loss_with_grad(lp, targets, il, tl, reduction=r)
        assert_bitwise_equal(got[0], loss, r)
        assert_bitwise_equal(got[1], grad, r)


BAD = [
    (lambda a: dict(a, log_probs=a["log_probs"][0, 0]), ValueError, "log_probs: expected shape"),
    (lambda a: dict(a, log_probs=a["log_probs"][None]), ValueError, "log_probs: expected shape"),
    (lambda a: dict(a, log_probs=a["log_probs"].astype(np.int32)), TypeError, "log_probs: expected dtype"),
    (lambda a: dict(a, log_probs=a["log_probs"].tolist()), TypeError, "log_probs: expected a numpy.ndarray"),
    (lambda a: dict(a, targets=a["targets"].astype(np.float64)), TypeError, "targets: expected class indices"),
    (lambda a: dict(a, targets=a["targets"][:2]), ValueError, "targets: expected 3 rows"),
    (lambda a: dict(a, targets=a["targets"][:, :1]), ValueError, r"target_lengths: expected lengths <= 1"),
    (lambda a: dict(a, targets=a["targets"][None]), ValueError, "targets: expected shape"),
    (lambda a: dict(a, targets=np.where(a["targets"] == 2, 5, a["targets"])), ValueError,
     r"targets: class indices must be in \[0, 5\); targets\[0, 1\] is 5"),
    (lambda a: dict(a, targets=np.where(a["targets"] == 2, -1, a["targets"])), ValueError, r"targets\[0, 1\] is -1"),
    (lambda a: dict(a, targets=a["targets"].reshape(-1)), ValueError, "targets: expected 5 class indices"),
    (lambda a: dict(a, input_lengths=[8, 6, 6]), ValueError, r"input_lengths: expected lengths in \[0, 7\] \(the time steps\); input_lengths\[0\] is 8"),
    (lambda a: dict(a, input_lengths=[6, -1, 6]), ValueError, r"input_lengths\[1\] is -1"),
    (lambda a: dict(a, input_lengths=[6, 6]), ValueError, r"input_lengths: expected shape \(3,\)"),
    (lambda a: dict(a, input_lengths=[6.0, 6, 6]), TypeError, "input_lengths: expected integers"),
    (lambda a: dict(a, target_lengths=[2, 2, -1]), ValueError, r"target_lengths: expected lengths >= 0; target_lengths\[2\] is -1"),
    (lambda a: dict(a, target_lengths=[[2, 2, 1]]), ValueError, "target_lengths: expected shape"),
    (lambda a: dict(a, blank=5), ValueError, r"blank: expected a class index in \[0, 5\)"),
    (lambda a: dict(a, blank=-1), ValueError, "blank"),
    (lambda a: dict(a, blank=True), TypeError, "blank: expected an int"),
    (lambda a: dict(a, blank=0.0), TypeError, "blank: expected an int"),
    (lambda a: dict(a, reduction="batchmean"), ValueError, "reduction"),
]


@pytest.mark.parametrize("k", range(len(BAD)))
def test_bad_arguments_are_refused_and_nothing_is_written(k, dtype, rng):
    make, exc, match = BAD[k]
    lp = log_softmax(rng.normal(0, 1, (7, 3, 5))).astype(dtype)
    good = dict(log_probs=lp, targets=np.array([[1, 2, 3], [4, 4, 0], [1, 0, 0]]), input_lengths=[6, 6, 6],
                target_lengths=[2, 2, 1])
    args = make(good)
    out = np.full_like(lp, 3)
    for fn, extra in ((lossk.ctc_loss, {}), (lossk.ctc_loss_grad, {"out": out}), (lossk.ctc_loss_with_grad, {"out": out})):
        with unmodified(*args.values()), pytest.raises(exc, match=match):
            fn(**{key: args[key] for key in ("log_probs", "targets", "input_lengths", "target_lengths")},
               **{key: v for key, v in args.items() if key in ("blank", "reduction")}, **extra)
        assert (out == 3).all()


def test_bad_out_and_grad_output(rng):
    lp, targets, il, tl = problem(rng, 5, 2, 3, 2, np.float64)
    for out, exc in [(np.zeros((5, 2, 4)), ValueError), (np.zeros_like(lp, np.float32), TypeError),
                     (lp, ValueError), (np.zeros_like(lp).T, ValueError)]:
        with pytest.raises(exc, match="out"):
            lossk.ctc_loss_grad(lp, targets, il, tl, out=out)
    with pytest.raises(ValueError, match="grad_output"):
        lossk.ctc_loss_grad(lp, targets, il, tl, reduction="none", grad_output=np.ones(3))
    with pytest.raises(ValueError, match="grad_output"):
        lossk.ctc_loss_grad(lp, targets, il, tl, grad_output=np.ones(2))


# --- PyTorch ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("T, N, C, S, layout", CASES + [(50, 6, 20, 12, "padded")])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_matches_pytorch(T, N, C, S, layout, reduction, zero_infinity, dtype, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    lp, targets, il, tl = problem(rng, T, N, C, S, dtype, 1, layout, impossible=True, repeats=True)
    opts = dict(blank=1, reduction=reduction, zero_infinity=zero_infinity)
    go = rng.normal(0, 2, () if layout == "unbatched" else (N,)) if reduction == "none" else np.float64(1.25)
    x = torch.tensor(lp, requires_grad=True)
    lengths = (torch.tensor(il), torch.tensor(tl))
    expected = F.ctc_loss(x, torch.tensor(targets), *lengths, **opts)
    expected.backward(torch.tensor(go, dtype=x.dtype))
    loss, grad = lossk.ctc_loss(lp, targets, il, tl, **opts), lossk.ctc_loss_grad(lp, targets, il, tl, grad_output=go.astype(dtype), **opts)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    e = expected.detach().numpy()
    assert (np.isinf(loss) == np.isinf(e)).all() and (np.isnan(loss) == np.isnan(e)).all()
    fin = np.isfinite(e)
    np.testing.assert_allclose(np.asarray(loss)[fin], e[fin], rtol=rtol)
    g = x.grad.numpy()
    assert (np.isnan(grad) == np.isnan(g)).all()
    np.testing.assert_allclose(np.nan_to_num(grad), np.nan_to_num(g), rtol=rtol, atol=rtol * max(1, np.abs(np.nan_to_num(g)).max()))


# --- property: random shapes, strides and options against the twin ------------------------------

def test_random_problems_match_twin():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(T=st.integers(0, 12), N=st.integers(0, 5), C=st.integers(1, 6), S=st.integers(0, 6),
           layout=st.sampled_from(["padded", "concatenated", "unbatched"]), memory=st.sampled_from(["contiguous", "strided"]),
           reduction=st.sampled_from(REDUCTIONS), zero_infinity=st.booleans(), dtype=st.sampled_from(DTYPES),
           seed=st.integers(0, 2 ** 32 - 1), blank=st.integers(0, 5))
    def run(T, N, C, S, layout, memory, reduction, zero_infinity, dtype, seed, blank):
        blank = blank % C
        if layout == "unbatched":
            N = 1
        rng = np.random.default_rng(seed)
        args = problem(rng, T, N, C, S, dtype, blank, layout, impossible=True)
        args = tuple(relayout(a, memory) if isinstance(a, np.ndarray) else a for a in args)
        opts = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
        with unmodified(*args):
            loss, grad = lossk.ctc_loss_with_grad(*args, **opts)
        expected = reference.ctc_loss(*args, **opts)
        check(loss, expected.loss, dtype, T, "loss")
        check(grad, expected.grad, dtype, T, "grad")

    run()
