"""Elementwise losses (l1, mse, smooth_l1, huber, binary_cross_entropy[_with_logits], kl_div)
against the float64 NumPy reference in reference.py, finite differences, and lossk's own
contract (types, out=, grad_output, thread-count invariance, argument checking)."""
import numpy as np
import pytest

import lossk
import reference
from helpers import DTYPES, assert_bitwise_equal, assert_close, relayout, unmodified
from loss_specs import (ELEMENTWISE_CASES, ELEMENTWISE_LOSSES, ELEMENTWISE_SHAPES, check_finite_differences,
                        check_large_output_matches_chunks, check_out_buffer, check_outputs, check_thread_invariance,
                        check_unusual_arrays, evaluate, functions, shape_id, shapes_and_layouts, unusual,
                        with_reductions)

CASES = {c.id: c for c in ELEMENTWISE_CASES}
# one case per loss (with its array options, when it has some), for the tests that need not see all
ONE_PER_LOSS = [CASES[i] for i in ("l1", "mse", "smooth_l1", "huber", "bce-w_last", "bce_logits-w_full-pw_last",
                                   "kl_div", "kl_div-log_target")]


def reduced_shape(reduction, shape):
    return shape if reduction == "none" else None


def per_element_grad_output(rng, reduction, shape, dtype, layout):
    """An array shaped like the loss for "none" (in `layout`), else a scalar."""
    if reduction != "none":
        return -1.75
    return relayout(rng.normal(0, 2, shape).astype(dtype), layout)


# --- values and gradients vs the reference ---------------------------------------------------

@pytest.mark.parametrize("shape, layout", shapes_and_layouts(ELEMENTWISE_SHAPES))
@pytest.mark.parametrize("case, reduction", with_reductions(ELEMENTWISE_CASES))
def test_matches_reference(case, reduction, shape, layout, dtype, rng):
    x, t, opts = case.build(rng, shape, dtype)
    go = per_element_grad_output(rng, reduction, shape, dtype, layout)
    x, t = relayout(x, layout), relayout(t, layout)
    opts = {k: relayout(v, layout) for k, v in opts.items()}

    out = evaluate(case.name, x, t, opts, reduction, go)

    expected = reference.elementwise(case.name, x, t, reduction, grad_output=go, **opts)
    expected1 = reference.elementwise(case.name, x, t, reduction, **opts)
    check_outputs(out, expected, expected1, x, reduced_shape(reduction, shape))


@pytest.mark.parametrize("case, reduction", with_reductions(ONE_PER_LOSS))
def test_zero_dim_input(case, reduction, dtype, rng):
    """0-d input and target (PyTorch accepts 0-d tensors): one element."""
    x, t, opts = case.build(rng, (), dtype)
    go = np.asarray(rng.normal(), dtype) if reduction == "none" else -1.75
    out = evaluate(case.name, x, t, opts, reduction, go)
    expected = reference.elementwise(case.name, x, t, reduction, grad_output=go, **opts)
    expected1 = reference.elementwise(case.name, x, t, reduction, **opts)
    check_outputs(out, expected, expected1, x, reduced_shape(reduction, ()))


@pytest.mark.parametrize("shape", [(2, 1, 5), (19, 35)], ids=shape_id)
@pytest.mark.parametrize("case, reduction", with_reductions(ELEMENTWISE_CASES))
def test_fused_agrees_with_separate(case, reduction, shape, dtype, rng):
    """NAME_with_grad gives NAME's and NAME_grad's numbers up to rounding: the compiler may contract
    multiply-adds differently in the fused loop, so a few ulp (of the terms) may differ."""
    x, t, opts = case.build(rng, shape, dtype)
    f, f_grad, f_with_grad = functions(case.name)
    loss, grad = f_with_grad(x, t, reduction=reduction, **opts)
    eps = 8 * np.finfo(dtype).eps
    for what, fused, separate in [("loss", loss, f(x, t, reduction=reduction, **opts)),
                                  ("grad", grad, f_grad(x, t, reduction=reduction, **opts))]:
        fused, separate = np.asarray(fused, np.float64), np.asarray(separate, np.float64)
        scale = max(1.0, float(np.max(np.abs(separate), initial=0.0)))
        np.testing.assert_allclose(fused, separate, rtol=eps, atol=eps * scale, err_msg=what)


# --- out= and grad_output -------------------------------------------------------------------

@pytest.mark.parametrize("case, reduction", with_reductions(ELEMENTWISE_CASES))
def test_out_is_filled_and_returned(case, reduction, dtype, rng):
    check_out_buffer(case, (4, 9), (4, 9), reduction, dtype, rng)


GRAD_OUTPUT_SCALARS = {
    "int": 2, "float": 2.0, "np.float64": np.float64(2), "np.float32": np.float32(2), "np.int32": np.int32(2),
    "0d-array": np.array(2.0), "0d-f32-array": np.array(2.0, np.float32),
}


@pytest.mark.parametrize("go", GRAD_OUTPUT_SCALARS.values(), ids=GRAD_OUTPUT_SCALARS.keys())
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_grad_output_scalars_of_any_kind(go, reduction, dtype, rng):
    """A scalar grad_output, whatever its Python or NumPy type, scales the gradient (by 2: exact).
    (NumPy scalars are what the reduced losses return, so they are natural grad_outputs.)"""
    x, t = rng.normal(size=(3, 5)).astype(dtype), rng.normal(size=(3, 5)).astype(dtype)
    base = lossk.mse_loss_grad(x, t, reduction=reduction)
    assert_bitwise_equal(lossk.mse_loss_grad(x, t, reduction=reduction, grad_output=go), 2 * base,
                         f"grad_output={go!r}")


@pytest.mark.parametrize("case", ONE_PER_LOSS, ids=repr)
def test_grad_output_array_is_per_element(case, dtype, rng):
    """grad_output for "none" multiplies each element's gradient; zeros, negatives and a
    non-contiguous array are honoured; grad_output=1 everywhere equals the default."""
    shape = (5, 6)
    x, t, opts = case.build(rng, shape, dtype)
    _, f_grad, _ = functions(case.name)
    base = f_grad(x, t, reduction="none", **opts)
    assert_bitwise_equal(f_grad(x, t, reduction="none", grad_output=np.ones(shape, dtype), **opts), base)
    go = rng.normal(size=shape).astype(dtype)
    go[0] = 0.0
    go_t = relayout(go, "transposed")
    with unmodified(go_t):
        g = f_grad(x, t, reduction="none", grad_output=go_t, **opts)
    assert_close(g, base.astype(np.float64) * go, dtype, what="grad * grad_output")
    assert (g[0] == 0).all()


# --- finite differences (float64) ------------------------------------------------------------

def away_from_kinks(case, rng, x, t, margin=1e-2):
    """Move targets (inputs) so that no |input - target| (input) is within `margin` of a kink of
    the loss."""
    x, t = x.copy(), t.copy()
    for _ in range(100):
        near_t, near_x = np.zeros(x.shape, bool), np.zeros(x.shape, bool)
        for k in case.kinks:
            near_t |= np.abs(np.abs(x - t) - k) < margin
        for k in case.input_kinks:
            near_x |= np.abs(x - k) < margin
        if not (near_t.any() or near_x.any()):
            return x, t
        t[near_t] += rng.uniform(-0.2, 0.2, int(near_t.sum()))
        x[near_x] += rng.uniform(-0.2, 0.2, int(near_x.sum()))
    raise AssertionError("could not move the arguments away from the kinks")


@pytest.mark.parametrize("case, reduction", with_reductions(ELEMENTWISE_CASES))
def test_gradient_matches_finite_differences(case, reduction, rng):
    """Central differences of NAME (float64) match NAME_grad; for "none", of sum(g * loss)."""
    shape = (3, 4)
    x, t, opts = case.build(rng, shape, np.float64)
    x, t = away_from_kinks(case, rng, x, t)
    g = rng.normal(size=shape) if reduction == "none" else 1.0
    check_finite_differences(case.name, x, t, opts, reduction, g, atol=1e-6)


@pytest.mark.parametrize("kind", ["byteswapped", "misaligned", "broadcast"])
@pytest.mark.parametrize("case", ONE_PER_LOSS, ids=repr)
def test_unusual_arrays(case, kind, dtype, rng):
    check_unusual_arrays(case, (9, 13), kind, dtype, rng)


# --- special values --------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_bce_at_zero_and_one(reduction, dtype, layout):
    """log clamped at -100: finite loss at 0 and 1; gradient w (x - t) / max(x (1 - x), 1e-12)."""
    x = np.array([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0], [0.5, 1e-30, 1 - 2**-24, 0.25, 1e-13, 1e-6]], dtype)
    t = np.array([[0.0, 0.5, 1.0, 0.0, 0.5, 1.0], [1.0, 1.0, 0.0, 0.0, 1.0, 0.3]], dtype)
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.25], dtype)
    x, t = relayout(x, layout), relayout(t, layout)
    out = evaluate("binary_cross_entropy", x, t, {"weight": w}, reduction, 1.0)
    expected = reference.elementwise("binary_cross_entropy", x, t, reduction, weight=w)
    check_outputs(out, expected, expected, x, reduced_shape(reduction, x.shape))
    assert np.isfinite(out.loss).all() and np.isfinite(out.grad).all()
    # first row, by hand: -w (t max(log x, -100) + (1 - t) max(log(1 - x), -100))
    expected_row = np.array([0, 0.5 * 100 * 2, 100 * 0.5, 100 * 3, 0.5 * 100 * 1, 0])
    expected_grad_row = np.array([0, -0.5e12 * 2, -1e12 * 0.5, 1e12 * 3, 0.5e12 * 1, 0])
    if reduction == "none":
        np.testing.assert_allclose(out.loss[0], expected_row, rtol=1e-6)
    np.testing.assert_allclose(out.grad[0], expected_grad_row, rtol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_bce_with_logits_extreme_logits(reduction, dtype, layout):
    """Stable at +-1e4 (and beyond): no overflow, no nan; loss ~ |x| on the wrong side."""
    x = np.array([[1e4, -1e4, 1e4, -1e4, 0.0, 88.0], [-1e30, 1e30, 50.0, -50.0, 1e4, -1e4]], dtype)
    t = np.array([[1.0, 0.0, 0.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.3, 0.7, 0.5, 0.5]], dtype)
    pw = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.25], dtype)
    x, t = relayout(x, layout), relayout(t, layout)
    for opts in ({}, {"pos_weight": pw}):
        out = evaluate("binary_cross_entropy_with_logits", x, t, opts, reduction, 1.0)
        expected = reference.elementwise("binary_cross_entropy_with_logits", x, t, reduction, **opts)
        assert np.isfinite(out.loss).all() and np.isfinite(out.grad).all()
        check_outputs(out, expected, expected, x, reduced_shape(reduction, x.shape))


def test_kl_div_zero_targets(dtype, layout):
    """t == 0 contributes 0 (xlogy), even where the input is very negative; gradient -t (= 0)."""
    x = np.array([[-1e3, -2.0, -0.5], [-30.0, -1e-3, 0.0]], dtype)
    t = np.array([[0.0, 0.0, 0.5], [0.0, 1.0, 0.0]], dtype)
    x, t = relayout(x, layout), relayout(t, layout)
    out = evaluate("kl_div", x, t, {}, "none", 1.0)
    expected = reference.elementwise("kl_div", x, t, "none")
    check_outputs(out, expected, expected, x, x.shape)
    assert (out.loss[t == 0] == 0).all() and (out.grad[t == 0] == 0).all()


@pytest.mark.parametrize("size", [37 * 1000, 4100 * 1024], ids=["tiles", "streamed"])
@pytest.mark.parametrize("log_target", [False, True], ids=["probs", "log_target"])
def test_kl_div_special_targets_among_ordinary(log_target, size, dtype, rng):
    """kl_div computes ordinary targets (probabilities, or log-probabilities) without the general
    log's (exp's) special-value selects and redoes a run of them that holds another target: such a
    target gets the reference's value, and its ordinary neighbours the same values as without it
    (the same bits in float32; in float64 the general log may round the last bit otherwise)."""
    x = rng.uniform(-5, 1, size).astype(dtype)
    t = (np.log(rng.uniform(0.01, 1, size)) if log_target else rng.uniform(0, 1, size)).astype(dtype)
    if not log_target:
        t[rng.random(size) < 0.25] = 0
    huge = 2.0 ** (101 if dtype == np.float32 else 970)
    special = ([0.5, 3.0, huge, np.inf, np.nan] if log_target else
               [-0.0, -0.5, huge, np.inf, np.nan, float(np.finfo(dtype).smallest_subnormal), 1e-310])
    at = rng.choice(size, len(special), replace=False)
    ts = t.copy()
    ts[at] = np.asarray(special).astype(dtype)
    opts = {"log_target": log_target}
    loss, grad = lossk.kl_div_with_grad(x, ts, reduction="none", **opts)
    expected = reference.elementwise("kl_div", x, ts, "none", **opts)
    # subnormal targets give subnormal losses, right to the subnormals' spacing
    tiny = np.abs(expected.loss) < np.finfo(dtype).smallest_normal
    assert (np.abs(loss[tiny] - expected.loss[tiny]) <= 2 * np.finfo(dtype).smallest_subnormal).all()
    assert_close(loss[~tiny], expected.loss[~tiny], dtype, expected.loss_mag[~tiny], what="loss")
    assert_close(grad, expected.grad, dtype, expected.grad_mag, what="grad")
    ordinary = np.ones(size, bool)
    ordinary[at] = False
    loss0, grad0 = lossk.kl_div_with_grad(x, t, reduction="none", **opts)
    assert_bitwise_equal(grad[ordinary], grad0[ordinary], "grad of the ordinary targets")
    if dtype == np.float32:
        assert_bitwise_equal(loss[ordinary], loss0[ordinary], "loss of the ordinary targets")
    else:
        mag = reference.elementwise("kl_div", x, t, "none", **opts).loss_mag[ordinary]
        assert (np.abs(loss[ordinary] - loss0[ordinary]) <= 2 * np.spacing(mag)).all()  # each within an ulp
    assert not np.signbit(loss[(ts == 0) & ~np.signbit(ts)]).any(), "0 log 0 - 0 x is +0"
    expected = reference.elementwise("kl_div", x, ts, "sum", **opts)
    assert_close(lossk.kl_div(x, ts, reduction="sum", **opts), expected.loss, dtype, expected.loss_mag, what="sum")


def test_smooth_l1_beta0_is_l1(dtype, layout, rng):
    x, t = rng.normal(size=(7, 9)).astype(dtype), rng.normal(size=(7, 9)).astype(dtype)
    x[0, :3] = t[0, :3]
    x, t = relayout(x, layout), relayout(t, layout)
    for reduction in ("none", "mean", "sum"):
        assert_bitwise_equal(np.asarray(lossk.smooth_l1_loss(x, t, reduction=reduction, beta=0.0)),
                             np.asarray(lossk.l1_loss(x, t, reduction=reduction)), reduction)
        assert_bitwise_equal(lossk.smooth_l1_loss_grad(x, t, reduction=reduction, beta=0),
                             lossk.l1_loss_grad(x, t, reduction=reduction), reduction)


@pytest.mark.parametrize("name, opts", [("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.0}),
                                        ("smooth_l1_loss", {}), ("huber_loss", {}), ("mse_loss", {})],
                         ids=["l1", "smooth_l1-beta0", "smooth_l1", "huber", "mse"])
def test_gradient_zero_where_input_equals_target(name, opts, dtype, layout, rng):
    x = rng.normal(size=(4, 5)).astype(dtype)
    t = x.copy()
    t[1] += 1.0
    x, t = relayout(x, layout), relayout(t, layout)
    _, f_grad, f_with_grad = functions(name)
    for grad in (f_grad(x, t, reduction="sum", **opts), f_with_grad(x, t, reduction="sum", **opts)[1]):
        assert (grad[[0, 2, 3]] == 0).all()
        assert (grad[1] < 0).all()


# --- zero-size inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3)], ids=shape_id)
@pytest.mark.parametrize("case, reduction", with_reductions(ONE_PER_LOSS))
def test_zero_size(case, reduction, shape, dtype, rng):
    """mean of nothing is nan, sum 0, none empty; kl_div batchmean divides 0 by shape[0]."""
    x, t, opts = case.build(rng, shape, dtype)
    go = np.empty(shape, dtype) if reduction == "none" else 1.0
    out = evaluate(case.name, x, t, opts, reduction, go)
    if reduction == "none":
        assert out.loss.shape == shape
    elif reduction == "sum" or reduction == "batchmean" and shape[0] != 0:
        assert out.loss == 0
    else:
        assert np.isnan(out.loss)
    expected = reference.elementwise(case.name, x, t, reduction, grad_output=go, **opts)
    check_outputs(out, expected, expected, x, reduced_shape(reduction, shape))


# --- thread-count invariance and accuracy on large inputs -------------------------------------

@pytest.mark.parametrize("case", ONE_PER_LOSS, ids=repr)
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bit_identical_for_any_thread_count(case, reduction, dtype, restore_threads):
    check_thread_invariance(case, (401, 503), reduction, dtype, seed=1)   # 201,703 elements: parallel, ragged


@pytest.mark.parametrize("case", [CASES[i] for i in ("huber-delta0.3", "bce-w_last", "bce_logits-w_full-pw_last")],
                         ids=repr)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_large_outputs(case, dtype):
    """More than 16 MiB of output (2^22 + 3 float32 / 2^21 + 3 float64 elements, in rows of 7)."""
    n = 2**24 // np.dtype(dtype).itemsize + 3
    check_large_output_matches_chunks(case, (n // 7, 7), dtype, chunk=2**14, seed=7)


@pytest.mark.parametrize("n", [0, -3])
def test_set_num_threads_rejects_non_positive(n, restore_threads):
    before = lossk.get_num_threads()
    with pytest.raises(ValueError, match=r"\bn\b"):
        lossk.set_num_threads(n)
    assert lossk.get_num_threads() == before


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss"])
def test_float32_mean_of_2_24_elements_is_accurate(name):
    """Summing 2^24 float32 terms near 1 naively in float32 stalls at 2^24; lossk must not."""
    n = 2**24
    x = (1.0 + (np.arange(n) % 1024) * 2.0**-12).astype(np.float32)      # 1 .. 1.25, exact in float32
    t = np.zeros(n, np.float32)
    x64 = x.astype(np.float64)
    exact = float(np.mean(np.abs(x64) if name == "l1_loss" else x64 * x64))
    f = getattr(lossk, name)
    for value in (f(x, t), getattr(lossk, name + "_with_grad")(x, t)[0]):
        assert value.dtype == np.float32
        assert abs(float(value) - exact) <= 1e-6 * exact, (float(value), exact)
    assert abs(float(f(x, t, reduction="sum")) - exact * n) <= 1e-6 * exact * n


def _require_free_memory(nbytes):
    try:
        with open("/proc/meminfo") as f:
            info = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f)}
    except OSError:
        return
    if info.get("MemAvailable", 0) < nbytes + 2**31:
        pytest.skip(f"needs {(nbytes + 2**31) / 2**30:.0f} GiB of available memory")


@pytest.mark.slow
def test_more_than_2_31_elements():
    """64-bit sizes and indices: losses over 2^31 + 5 float32 elements (two 8.6 GB arrays), and a
    gradient written past index 2^31 (nll_loss of one (1, 2^31 + 5) row)."""
    n = 2**31 + 5
    _require_free_memory(2 * 4 * n)
    x = np.ones(n, np.float32)
    x[-1] = 3.0
    t = np.zeros(n, np.float32)
    assert float(lossk.l1_loss(x, t, reduction="sum")) == np.float32(n + 2)
    assert abs(float(lossk.mse_loss(x, t)) - (n + 8) / n) <= 1e-6
    del t
    target = np.array([n - 1])
    grad = lossk.nll_loss_grad(x[None], target, reduction="sum")
    assert grad.shape == (1, n) and grad[0, n - 1] == -1 and grad[0, 0] == 0 and grad[0, 2**31] == 0
    assert float(lossk.nll_loss(x[None], target, reduction="sum")) == -3.0


# --- argument checking -----------------------------------------------------------------------

X = np.linspace(0.1, 0.9, 12).reshape(3, 4)
T = np.linspace(0.9, 0.2, 12).reshape(3, 4)
GRAD = "grad"           # NAME_grad only (grad_output, out)
ALL = "all"             # NAME, NAME_grad and NAME_with_grad


def _bad_cases():
    """(id, loss, entry points, make_args() -> (input, target, options), exception, match)."""
    x32 = X.astype(np.float32)
    ro = np.zeros((3, 4))
    ro.flags.writeable = False
    bce_bad = X.copy()
    bce_bad[1, 2] = 1.5
    bce_neg = X.copy()
    bce_neg[2, 3] = -1e-9
    bce_nan = X.copy()
    bce_nan[0, 1] = np.nan
    t_bad = T.copy()
    t_bad[2, 0] = 1.25
    t_nan = T.copy()
    t_nan[1, 3] = np.nan
    cases = [
        ("input-list", "mse_loss", ALL, lambda: (X.tolist(), T, {}), TypeError, "input"),
        ("input-int", "mse_loss", ALL, lambda: (X.astype(np.int64), T, {}), TypeError, "input"),
        ("input-complex", "mse_loss", ALL, lambda: (X.astype(complex), T, {}), TypeError, "input"),
        ("input-object", "mse_loss", ALL, lambda: (X.astype(object), T, {}), TypeError, "input"),
        ("input-bool", "l1_loss", ALL, lambda: (X > 0.5, T, {}), TypeError, "input"),
        ("input-float16", "l1_loss", ALL, lambda: (X.astype(np.float16), T, {}), TypeError, "input"),
        ("input-scalar", "l1_loss", ALL, lambda: (0.5, T, {}), TypeError, "input"),
        ("target-list", "mse_loss", ALL, lambda: (X, T.tolist(), {}), TypeError, "target"),
        ("target-f32-input-f64", "mse_loss", ALL, lambda: (X, T.astype(np.float32), {}), TypeError, "target"),
        ("target-f64-input-f32", "huber_loss", ALL, lambda: (x32, T, {}), TypeError, "target"),
        ("target-int", "l1_loss", ALL, lambda: (X, T.astype(np.int64), {}), TypeError, "target"),
        ("target-shape", "mse_loss", ALL, lambda: (X, T.T.copy(), {}), ValueError, "target"),
        ("target-broadcastable", "mse_loss", ALL, lambda: (X, T[:1], {}), ValueError, "target"),
        ("target-flat", "kl_div", ALL, lambda: (X, T.reshape(-1), {}), ValueError, "target"),
        ("reduction-unknown", "mse_loss", ALL, lambda: (X, T, {"reduction": "avg"}), ValueError, "reduction"),
        ("reduction-None", "l1_loss", ALL, lambda: (X, T, {"reduction": None}), ValueError, "reduction"),
        ("reduction-upper", "l1_loss", ALL, lambda: (X, T, {"reduction": "MEAN"}), ValueError, "reduction"),
        ("reduction-batchmean-mse", "mse_loss", ALL, lambda: (X, T, {"reduction": "batchmean"}), ValueError,
         "reduction"),
        ("beta-negative", "smooth_l1_loss", ALL, lambda: (X, T, {"beta": -0.5}), ValueError, "beta"),
        ("beta-nan", "smooth_l1_loss", ALL, lambda: (X, T, {"beta": float("nan")}), ValueError, "beta"),
        ("delta-zero", "huber_loss", ALL, lambda: (X, T, {"delta": 0.0}), ValueError, "delta"),
        ("delta-negative", "huber_loss", ALL, lambda: (X, T, {"delta": -1.0}), ValueError, "delta"),
        ("delta-nan", "huber_loss", ALL, lambda: (X, T, {"delta": float("nan")}), ValueError, "delta"),
        ("margin-str", "hinge_embedding_loss", ALL, lambda: (X, T, {"margin": "1"}), TypeError, "margin"),
        ("margin-None", "hinge_embedding_loss", ALL, lambda: (X, T, {"margin": None}), TypeError, "margin"),
        ("eps-str", "poisson_nll_loss", ALL, lambda: (X, T, {"eps": "1e-8"}), TypeError, "eps"),
        ("gamma-negative", "sigmoid_focal_loss", ALL, lambda: (X, T, {"gamma": -1.0}), ValueError, "gamma"),
        ("gamma-nan", "sigmoid_focal_loss", ALL, lambda: (X, T, {"gamma": float("nan")}), ValueError, "gamma"),
        ("gamma-array", "sigmoid_focal_loss", ALL, lambda: (X, T, {"gamma": np.ones(2)}), TypeError, "gamma"),
        ("alpha-str", "sigmoid_focal_loss", ALL, lambda: (X, T, {"alpha": "0.25"}), TypeError, "alpha"),
        ("focal-target-int", "sigmoid_focal_loss", ALL, lambda: (X, (T > 0.5).astype(np.int64), {}), TypeError,
         "target"),
        ("bce-above-1", "binary_cross_entropy", ALL, lambda: (bce_bad, T, {}), ValueError,
         r"input\[1, 2\].*1\.5"),
        ("bce-negative", "binary_cross_entropy", ALL, lambda: (bce_neg, T, {}), ValueError, r"input\[2, 3\]"),
        ("bce-nan", "binary_cross_entropy", ALL, lambda: (bce_nan, T, {}), ValueError, r"input\[0, 1\].*nan"),
        ("bce-target-above-1", "binary_cross_entropy", ALL, lambda: (X, t_bad, {}), ValueError,
         r"target\[2, 0\].*1\.25"),
        ("bce-target-negative", "binary_cross_entropy", ALL, lambda: (X, -T, {}), ValueError, r"target\[0, 0\]"),
        ("bce-target-nan", "binary_cross_entropy", ALL, lambda: (X, t_nan, {}), ValueError, r"target\[1, 3\].*nan"),
        ("bce-f32-above-1", "binary_cross_entropy", ALL,
         lambda: (bce_bad.astype(np.float32), T.astype(np.float32), {}), ValueError, r"input\[1, 2\]"),
        ("bce-weight-shape", "binary_cross_entropy", ALL, lambda: (X, T, {"weight": np.ones(5)}), ValueError,
         "weight"),
        ("bce-weight-too-many-dims", "binary_cross_entropy", ALL, lambda: (X, T, {"weight": np.ones((2, 3, 4))}),
         ValueError, "weight"),
        ("bce-weight-int", "binary_cross_entropy", ALL, lambda: (X, T, {"weight": np.ones(4, int)}),
         (TypeError, ValueError), "weight"),
        ("mse-weight-broadcast", "mse_loss", ALL, lambda: (X, T, {"weight": np.ones(4)}), ValueError,
         r"weight: expected shape \(3, 4\)"),
        ("l1-weight-shape", "l1_loss", ALL, lambda: (X, T, {"weight": np.ones((4, 3))}), ValueError, "weight"),
        ("huber-weight-scalar", "huber_loss", ALL, lambda: (X, T, {"weight": 2.0}), ValueError, "weight"),
        ("logits-weight-shape", "binary_cross_entropy_with_logits", ALL,
         lambda: (X, T, {"weight": np.ones((3, 1, 4))}), ValueError, "weight"),
        ("logits-pos_weight-shape", "binary_cross_entropy_with_logits", ALL,
         lambda: (X, T, {"pos_weight": np.ones(3)}), ValueError, "pos_weight"),
        ("logits-pos_weight-str", "binary_cross_entropy_with_logits", ALL,
         lambda: (X, T, {"pos_weight": "a"}), (TypeError, ValueError), "pos_weight"),
        ("out-shape", "mse_loss", GRAD, lambda: (X, T, {"out": np.zeros((4, 3))}), ValueError, "out"),
        ("out-dtype", "mse_loss", GRAD, lambda: (X, T, {"out": np.zeros((3, 4), np.float32)}), TypeError, "out"),
        ("out-fortran", "mse_loss", GRAD, lambda: (X, T, {"out": np.zeros((3, 4), order="F")}), ValueError,
         "out"),
        ("out-strided", "mse_loss", GRAD, lambda: (X, T, {"out": np.zeros((3, 8))[:, ::2]}), ValueError, "out"),
        ("out-readonly", "mse_loss", GRAD, lambda: (X, T, {"out": ro}), ValueError, "out"),
        ("out-misaligned", "mse_loss", GRAD, lambda: (X, T, {"out": unusual(np.zeros((3, 4)), "misaligned")}),
         ValueError, "out"),
        ("out-byteswapped", "mse_loss", GRAD, lambda: (X, T, {"out": np.zeros((3, 4), ">f8")}), TypeError, "out"),
        ("out-list", "mse_loss", GRAD, lambda: (X, T, {"out": [0.0] * 12}), TypeError, "out"),
        ("grad_output-array-for-mean", "mse_loss", GRAD, lambda: (X, T, {"grad_output": np.ones((3, 4))}),
         ValueError, "grad_output"),
        ("grad_output-array-for-sum", "l1_loss", GRAD,
         lambda: (X, T, {"grad_output": np.ones(1), "reduction": "sum"}), ValueError, "grad_output"),
        ("grad_output-broadcastable", "mse_loss", GRAD,
         lambda: (X, T, {"grad_output": np.ones(4), "reduction": "none"}), ValueError, "grad_output"),
        ("grad_output-shape", "mse_loss", GRAD,
         lambda: (X, T, {"grad_output": np.ones((4, 3)), "reduction": "none"}), ValueError, "grad_output"),
        ("grad_output-str", "mse_loss", GRAD, lambda: (X, T, {"grad_output": "1"}), (TypeError, ValueError),
         "grad_output"),
        ("grad_output-None", "mse_loss", GRAD, lambda: (X, T, {"grad_output": None}), (TypeError, ValueError),
         "grad_output"),
    ]
    return cases


BAD = _bad_cases()


@pytest.mark.parametrize("case_id, name, where, make, exc, match", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments_are_rejected(case_id, name, where, make, exc, match):
    """The error names the argument; nothing (input, target, options, out) is modified."""
    f, f_grad, f_with_grad = functions(name)
    x, t, opts = make()
    calls = [f_grad]
    if where == ALL:
        calls = [f, f_grad, f_with_grad]
    for fn in calls:
        kw = dict(opts)
        if isinstance(kw.get("out"), np.ndarray) and kw["out"].flags.writeable:
            kw["out"][...] = 777.0          # a sentinel that must survive
        with unmodified(x, t, *kw.values()), pytest.raises(exc, match=match):
            fn(x, t, **kw)


@pytest.mark.parametrize("overlap", ["input", "target", "input-view", "input-partly", "weight", "grad_output"])
def test_out_must_not_overlap_arguments(overlap):
    buf = np.linspace(0.1, 0.9, 18)
    x, t = (buf[6:18].reshape(3, 4), T.copy()) if overlap == "input-partly" else (X.copy(), T.copy())
    w = np.ones((3, 4))
    go = np.ones((3, 4))
    out = {"input": x, "target": t, "input-view": x.reshape(-1)[0:12].reshape(3, 4), "weight": w,
           "grad_output": go, "input-partly": buf[0:12].reshape(3, 4)}[overlap]
    for fn, kw in ((lossk.binary_cross_entropy_grad, {"weight": w, "reduction": "none", "grad_output": go}),
                   (lossk.binary_cross_entropy_with_grad, {"weight": w, "reduction": "none"})):
        if overlap == "grad_output" and fn is lossk.binary_cross_entropy_with_grad:
            continue
        with unmodified(buf, x, t, w, go), pytest.raises(ValueError, match="out"):
            fn(x, t, out=out, **kw)


@pytest.mark.parametrize("entry", ["grad", "with_grad"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bce_bad_input_leaves_out_unchanged(entry, dtype):
    """A BCE input (or target: PyTorch checks both) outside [0, 1] found late in the array: the
    caller's out keeps its contents."""
    x = np.random.default_rng(3).uniform(0, 1, (300, 257)).astype(dtype)
    t = np.random.default_rng(4).uniform(0, 1, (300, 257)).astype(dtype)
    x[299, 250] = 1.25
    out = np.full(x.shape, -3.0, dtype)
    fn = getattr(lossk, "binary_cross_entropy_" + entry)
    with unmodified(x, t, out), pytest.raises(ValueError, match=r"input\[299, 250\]"):
        fn(x, t, reduction="none", out=out)
    x[299, 250] = 0.5
    t[299, 251] = -0.5
    with unmodified(x, t, out), pytest.raises(ValueError, match=r"target\[299, 251\]"):
        fn(x, t, reduction="none", out=out)


def test_loss_only_functions_take_no_out():
    with pytest.raises(TypeError):
        lossk.mse_loss(X, T, out=np.empty((3, 4)))


@pytest.mark.parametrize("name", ELEMENTWISE_LOSSES)
def test_options_are_keyword_only(name):
    f, f_grad, f_with_grad = functions(name)
    for fn in (f, f_grad, f_with_grad):
        with pytest.raises(TypeError):
            fn(X, T, "sum")


def test_kl_div_batchmean_divides_by_batch_size(dtype, rng):
    x, t = np.log(rng.uniform(0.1, 1, (6, 5))).astype(dtype), rng.uniform(0, 1, (6, 5)).astype(dtype)
    total = lossk.kl_div(x, t, reduction="sum")
    assert_close(lossk.kl_div(x, t, reduction="batchmean"), float(total) / 6, dtype, what="batchmean")
    assert_close(lossk.kl_div_grad(x, t, reduction="batchmean"),
                 lossk.kl_div_grad(x, t, reduction="sum").astype(np.float64) / 6, dtype, what="batchmean grad")
