"""margin_ranking_loss, gaussian_nll_loss, cosine_embedding_loss and triplet_margin_loss (the losses
of several differentiable arrays) against the float64 NumPy twin in reference.py, finite
differences, PyTorch (when installed) and lossk's own contract: gradient tuples in argument order,
out= tuples, grad_output, thread-count invariance, argument checking with nothing written."""
import numpy as np
import pytest

import lossk
import reference
from helpers import DTYPES, assert_bitwise_equal, assert_close, assert_scalar_result, bench_cases, relayout, unmodified
from loss_specs import MULTI_INPUT_CASES, MULTI_INPUT_SHAPES, functions, multi_params, with_reductions
from lossk._losses import BY_NAME

CASES = {c.id: c for c in MULTI_INPUT_CASES}
NAN, INF = float("nan"), float("inf")


def loss_shape(case, shape):
    return shape if case.layout in ("pair", "gaussian") else shape[:-1]


def prepared(case, shape, dtype, layout, rng):
    arrays, opts = case.build(rng, shape, dtype)
    return tuple(relayout(a, layout) for a in arrays), opts


def grad_output_for(case, reduction, shape, dtype, layout, rng):
    if reduction != "none":
        return -1.75
    return relayout(rng.normal(0, 2, loss_shape(case, shape)).astype(dtype), layout)


def evaluate(case, arrays, opts, reduction, go):
    """Every entry point on the same arguments, checking none of them modifies an argument."""
    f, f_grad, f_with_grad = functions(case.name)
    with unmodified(*arrays, go):
        loss = f(*arrays, reduction=reduction, **opts)
        grads = f_grad(*arrays, reduction=reduction, grad_output=go, **opts)
        grads1 = f_grad(*arrays, reduction=reduction, **opts)
        fused_loss, fused_grads = f_with_grad(*arrays, reduction=reduction, **opts)
    return loss, grads, grads1, fused_loss, fused_grads


# --- values and gradients vs the twin ----------------------------------------------------------

@pytest.mark.parametrize("case, reduction, shape, layout", multi_params(MULTI_INPUT_CASES, MULTI_INPUT_SHAPES))
def test_matches_reference(case, reduction, shape, layout, dtype, rng):
    arrays, opts = prepared(case, shape, dtype, layout, rng)
    go = grad_output_for(case, reduction, shape, dtype, layout, rng)
    loss, grads, grads1, fused_loss, fused_grads = evaluate(case, arrays, opts, reduction, go)

    expected = reference.multi_input(case.name, arrays, reduction, grad_output=go, **opts)
    expected1 = reference.multi_input(case.name, arrays, reduction, **opts)
    if reduction == "none":
        for value in (loss, fused_loss):
            assert isinstance(value, np.ndarray) and value.dtype == dtype and value.shape == loss_shape(case, shape)
    else:
        assert_scalar_result(loss, dtype)
        assert_scalar_result(fused_loss, dtype)
    assert_close(loss, expected.loss, dtype, expected.loss_mag, "loss")
    assert_close(fused_loss, loss, dtype, expected.loss_mag, "fused loss vs loss")
    names = BY_NAME[case.name].gradients()
    for result in (grads, grads1, fused_grads):
        assert isinstance(result, tuple) and len(result) == len(names)
        for g, k in zip(result, BY_NAME[case.name].differentiable):
            assert isinstance(g, np.ndarray) and g.dtype == dtype and g.shape == np.shape(arrays[k])
    for g, g1, gf, want, want1, name in zip(grads, grads1, fused_grads, expected.grad, expected1.grad, names):
        mag, mag1 = expected.grad_mag[names.index(name)], expected1.grad_mag[names.index(name)]
        assert_close(g, want, dtype, mag, f"d/d {name}")
        assert_close(g1, want1, dtype, mag1, f"d/d {name} (grad_output=1)")
        assert_close(gf, g1, dtype, mag1, f"fused d/d {name} vs NAME_grad")


@pytest.mark.parametrize("case, reduction", with_reductions(MULTI_INPUT_CASES))
def test_fused_equals_separate_bitwise(case, reduction, dtype, rng):
    arrays, opts = case.build(rng, (7, 37), dtype)
    f, f_grad, f_with_grad = functions(case.name)
    loss, grads = f_with_grad(*arrays, reduction=reduction, **opts)
    assert_bitwise_equal(np.asarray(loss), np.asarray(f(*arrays, reduction=reduction, **opts)), "loss")
    for g, want in zip(grads, f_grad(*arrays, reduction=reduction, **opts)):
        assert_bitwise_equal(g, want, "grad")


@pytest.mark.parametrize("case, reduction, shape, layout",
                         multi_params(MULTI_INPUT_CASES, [((3, 4), "contiguous"), ((2, 3, 5), "contiguous")]))
def test_gradient_matches_finite_differences(case, reduction, shape, layout, rng):
    """Every differentiable array's gradient, float64, against central differences of
    sum(grad_output * loss)."""
    arrays, opts = case.build(rng, shape, np.float64)
    if case.layout == "gaussian" and isinstance(arrays[2], np.ndarray):   # away from the clamp (tested apart)
        arrays = arrays[:2] + (np.maximum(arrays[2], opts.get("eps", 1e-6) + 0.05),)
    f, f_grad, _ = functions(case.name)
    go = rng.normal(size=loss_shape(case, shape)) if reduction == "none" else 0.8
    grads = f_grad(*arrays, reduction=reduction, grad_output=go, **opts)
    h = 1e-6
    for g, k in zip(grads, BY_NAME[case.name].differentiable):
        if not isinstance(arrays[k], np.ndarray):
            continue
        fd = np.empty(np.shape(arrays[k]))
        for i in np.ndindex(fd.shape):
            vals = []
            for step in (h, -h):
                moved = list(arrays)
                moved[k] = arrays[k].copy()
                moved[k][i] += step
                vals.append(float(np.sum(go * f(*moved, reduction=reduction, **opts))))
            fd[i] = (vals[0] - vals[1]) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7 * max(1.0, np.abs(fd).max()),
                                   err_msg=f"d/d {BY_NAME[case.name].arguments[k]}")


@pytest.mark.parametrize("case, reduction", with_reductions(MULTI_INPUT_CASES))
def test_thread_count_does_not_change_bits(case, reduction, dtype, restore_threads):
    # enough work for several blocks and threads: 300 x 400
    arrays, opts = case.build(np.random.default_rng(7), (300, 400), dtype)
    f, f_grad, f_with_grad = functions(case.name)
    results = []
    for n in (1, 2, 3):
        lossk.set_num_threads(n)
        loss, grads = f_with_grad(*arrays, reduction=reduction, **opts)
        results.append([np.asarray(f(*arrays, reduction=reduction, **opts)), np.asarray(loss), *grads,
                        *f_grad(*arrays, reduction=reduction, grad_output=0.75, **opts)])
    for n, other in ((2, results[1]), (3, results[2])):
        for a, b in zip(results[0], other):
            assert_bitwise_equal(a, b, f"1 thread vs {n}")


@pytest.mark.parametrize("case", [c for c in MULTI_INPUT_CASES if c.id in
                                  ("margin_ranking", "gaussian_nll", "gaussian_nll-var_row",
                                   "gaussian_nll-var_first1-full", "cosine_embedding", "triplet-swap")], ids=repr)
def test_large_outputs_match_slices(case):
    """Past 16 MiB the outputs are streamed: the same values as computed on small slices, also into
    a caller's out= at an odd address. Long rows with a variance each take several segments."""
    shape = (1024, 4100) if case.layout != "gaussian" else (2, 3, 700000)
    arrays, opts = case.build(np.random.default_rng(3), shape, np.float32)
    f, f_grad, f_with_grad = functions(case.name)
    loss = f(*arrays, reduction="none", **opts)
    grads = f_grad(*arrays, reduction="sum", grad_output=0.5, **opts)
    for start in (0, 1):
        part = slice(start, start + 1)
        sliced = tuple(a[part] if np.ndim(a) and a.shape[0] == shape[0] else a for a in arrays)
        assert_close(loss[part], f(*sliced, reduction="none", **opts), np.float32, what="loss")
        want = f_grad(*sliced, reduction="sum", grad_output=0.5, **opts)
        for g, w, k in zip(grads, want, BY_NAME[case.name].differentiable):
            got = g[part] if np.ndim(arrays[k]) and arrays[k].shape[0] == shape[0] else None
            if got is not None:
                assert_close(got, w, np.float32, what="grad")
    bufs = [np.full(np.size(arrays[k]) + 1, np.nan, np.float32) for k in BY_NAME[case.name].differentiable]
    outs = tuple(b[1:].reshape(np.shape(arrays[k])) for b, k in zip(bufs, BY_NAME[case.name].differentiable))
    total, written = f_with_grad(*arrays, reduction="sum", out=outs, **opts)
    assert all(w is o for w, o in zip(written, outs)) and all(np.isnan(b[0]) for b in bufs)
    for w, g in zip(written, grads):
        assert_close(w, 2 * g.astype(np.float64), np.float32, what="fused grad into out")
    assert_close(total, np.sum(loss.astype(np.float64)), np.float32, np.sum(np.abs(loss.astype(np.float64))), "sum")


# --- out= and grad_output ----------------------------------------------------------------------

@pytest.mark.parametrize("case, reduction", with_reductions(MULTI_INPUT_CASES))
def test_out_tuple_is_filled_and_returned(case, reduction, dtype, rng):
    arrays, opts = case.build(rng, (5, 9), dtype)
    arrays = tuple(relayout(a, "transposed") for a in arrays)
    _, f_grad, f_with_grad = functions(case.name)
    diff = BY_NAME[case.name].differentiable
    go = 0.5 if reduction != "none" else rng.normal(size=loss_shape(case, (5, 9))).astype(dtype)
    with unmodified(*arrays, go):
        want = f_grad(*arrays, reduction=reduction, grad_output=go, **opts)
        outs = tuple(np.full(np.shape(arrays[k]), 12345.0, dtype) for k in diff)
        got = f_grad(*arrays, reduction=reduction, grad_output=go, out=outs, **opts)
        assert all(g is o for g, o in zip(got, outs))
        for g, w in zip(got, want):
            assert_bitwise_equal(g, w, "NAME_grad(out=)")
        outs2 = tuple(np.full(np.shape(arrays[k]), 12345.0, dtype) for k in diff)
        _, got2 = f_with_grad(*arrays, reduction=reduction, out=outs2, **opts)
        assert all(g is o for g, o in zip(got2, outs2))
        for g, w in zip(got2, f_with_grad(*arrays, reduction=reduction, **opts)[1]):
            assert_bitwise_equal(g, w, "NAME_with_grad(out=)")


def test_modules_give_the_fused_results_and_reuse_their_buffers(rng):
    for case in MULTI_INPUT_CASES:
        arrays, opts = case.build(rng, (4, 6), np.float64)
        module = getattr(lossk.nn, BY_NAME[case.name].module)(**opts)
        loss = module(*arrays)
        grads = module.backward()
        want_loss, want_grads = functions(case.name)[2](*arrays, **opts)
        assert loss == want_loss and all(np.array_equal(g, w) for g, w in zip(grads, want_grads))
        module(*arrays)
        again = module.backward()
        assert all(a is b for a, b in zip(again, grads)), "the next call of the same shapes reuses the buffers"
        with pytest.raises(RuntimeError, match="backward"):
            module.backward()


# --- edge values -------------------------------------------------------------------------------

def test_gaussian_variance_at_and_below_the_clamp(dtype):
    """var below eps is used as eps, and d/d var is taken there (PyTorch clamps under no_grad)."""
    x = np.array([0.5, 0.5, 0.5, 0.5], dtype)
    t = np.array([0.0, 0.0, 0.0, 0.0], dtype)
    var = np.array([0.0, 1e-7, 1e-6, 1.0], dtype)
    eps = 1e-6
    loss, (gx, gv) = lossk.gaussian_nll_loss_with_grad(x, t, var, reduction="none", eps=eps)
    v = np.maximum(var.astype(np.float64), np.float64(np.asarray(eps, dtype)))
    assert_close(loss, 0.5 * (np.log(v) + 0.25 / v), dtype, what="loss")
    assert_close(gx, 0.5 / v, dtype, what="d/d input")
    assert_close(gv, 0.5 * (1 / v - 0.25 / v ** 2), dtype, what="d/d var")
    assert gv[0] == gv[1] == gv[2], "every variance at or below eps is the same eps"


def test_gaussian_nonfinite_values_follow_pytorch(dtype):
    x = np.array([NAN, 0.0, 1.0, INF, 0.0], dtype)
    t = np.zeros(5, dtype)
    var = np.array([1.0, NAN, INF, 1.0, 0.5], dtype)
    loss = lossk.gaussian_nll_loss(x, t, var, reduction="none")
    assert np.isnan(loss[0]) and np.isnan(loss[1]) and loss[2] == INF and loss[3] == INF
    assert np.isfinite(loss[4])


def test_triplet_zero_distance_has_zero_gradient(dtype):
    """With eps = 0 and positive == anchor the distance is 0: PyTorch's norm backward gives 0."""
    a = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]], dtype)
    n = np.array([[1.0, 2.0, 3.5], [9.0, 9.0, 9.0]], dtype)
    for p in (1.0, 2.0, 3.0):
        loss, (ga, gp, gn) = lossk.triplet_margin_loss_with_grad(a, a.copy(), n, eps=0.0, p=p, reduction="none")
        assert loss[0] == pytest.approx(0.5, rel=1e-6) and loss[1] == 0
        assert np.all(gp[0] == 0), "d/d positive of a zero distance"
        assert np.all(ga[1] == 0) and np.all(gn[1] == 0), "an inactive margin has no gradient"


def test_triplet_swap_tie_splits_the_gradient(dtype):
    """|a - n| == |p - n|: PyTorch's minimum gives each distance half its gradient."""
    a = np.array([[0.0, 0.0]], dtype)
    p = np.array([[2.0, 0.0]], dtype)
    n = np.array([[1.0, 0.0]], dtype)
    _, (ga, gp, gn) = lossk.triplet_margin_loss_with_grad(a, p, n, swap=True, eps=0.0, margin=1.0, reduction="sum")
    # d/d a: from |a-p| (-1, 0) and half of |a-n| (-(-1)/2); d/d n: half of each of |a-n|, |p-n|
    assert_close(ga, np.array([[-1.0 + 0.5, 0.0]]), dtype, what="d/d anchor")
    assert_close(gn, np.array([[-0.5 + 0.5, 0.0]]), dtype, what="d/d negative")
    assert_close(gp, np.array([[1.0 - 0.5, 0.0]]), dtype, what="d/d positive")


def test_cosine_of_zero_vectors_and_other_targets(dtype):
    """A zero row has cosine 0 (PyTorch's 1e-12 in the norms); a target neither 1 nor -1 gives 0."""
    x1 = np.array([[0.0, 0.0], [1.0, 2.0], [1.0, 2.0]], dtype)
    x2 = np.array([[1.0, 1.0], [2.0, 4.0], [2.0, 4.0]], dtype)
    loss, (g1, g2) = lossk.cosine_embedding_loss_with_grad(x1, x2, np.array([1, 1, 0]), reduction="none")
    assert loss[0] == 1 and abs(loss[1]) < 1e-6 and loss[2] == 0
    assert np.all(np.isfinite(g1)) and np.all(g1[2] == 0) and np.all(g2[2] == 0)


@pytest.mark.parametrize("name", ["margin_ranking_loss", "gaussian_nll_loss", "cosine_embedding_loss",
                                  "triplet_margin_loss"])
def test_empty_inputs(name, dtype):
    """Zero rows: mean nan, sum 0, empty gradients (PyTorch's mean over nothing)."""
    shape = (0, 3)
    arrays = {"margin_ranking_loss": (np.zeros(shape, dtype),) * 2 + (np.ones(shape, dtype),),
              "gaussian_nll_loss": (np.zeros(shape, dtype),) * 2 + (np.ones(shape, dtype),),
              "cosine_embedding_loss": (np.zeros(shape, dtype),) * 2 + (np.ones(0),),
              "triplet_margin_loss": (np.zeros(shape, dtype),) * 3}[name]
    f, f_grad, _ = functions(name)
    assert np.isnan(f(*arrays)) and f(*arrays, reduction="sum") == 0
    assert all(g.size == 0 for g in f_grad(*arrays))


# --- PyTorch ------------------------------------------------------------------------------------

TORCH_SHAPES = [((), "contiguous"), ((5,), "strided"), ((6, 4), "contiguous"), ((9, 33), "transposed"),
                ((2, 3, 5), "strided")]


@pytest.mark.parametrize("case, reduction, shape, layout", multi_params(MULTI_INPUT_CASES, TORCH_SHAPES))
def test_matches_pytorch(case, reduction, shape, layout, dtype, rng):
    torch = pytest.importorskip("torch")
    arrays, opts = prepared(case, shape, dtype, layout, rng)
    go = grad_output_for(case, reduction, shape, dtype, layout, rng)
    loss, grads = lossk.__dict__[case.name + "_with_grad"](*arrays, reduction=reduction, **opts)
    grads_go = lossk.__dict__[case.name + "_grad"](*arrays, reduction=reduction, grad_output=go, **opts)
    diff = BY_NAME[case.name].differentiable
    ts = [torch.tensor(np.array(a), requires_grad=k in diff) if isinstance(a, np.ndarray) else a
          for k, a in enumerate(arrays)]
    fn = bench_cases().torch_function(case.name)
    want = fn(*ts, reduction=reduction, **opts)
    want.backward(torch.as_tensor(np.array(go)) if reduction == "none" else torch.tensor(go, dtype=want.dtype))
    expected = reference.multi_input(case.name, arrays, reduction, **opts)
    expected_go = reference.multi_input(case.name, arrays, reduction, grad_output=go, **opts)
    assert_close(loss, want.detach().numpy(), dtype, expected.loss_mag, "loss vs PyTorch")
    for g, k, mag in zip(grads_go, diff, expected_go.grad_mag):
        if isinstance(ts[k], torch.Tensor):
            assert_close(g, ts[k].grad.numpy(), dtype, mag, f"d/d {BY_NAME[case.name].arguments[k]} vs PyTorch")


def test_pytorch_edge_values(dtype):
    """Non-finite and boundary values, element by element against PyTorch."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x1 = np.array([NAN, 1.0, -1.0, INF, 0.0, 2.0], dtype)
    x2 = np.array([0.0, 1.0, 1.0, 0.0, 0.0, -INF], dtype)
    y = np.array([1.0, 1.0, -1.0, -1.0, 1.0, 1.0], dtype)
    for margin in (0.0, 0.5):
        ts = [torch.tensor(a, requires_grad=k < 2) for k, a in enumerate((x1, x2, y))]
        want = F.margin_ranking_loss(*ts, margin=margin, reduction="none")
        want.sum().backward()
        loss, (g1, g2) = lossk.margin_ranking_loss_with_grad(x1, x2, y, margin=margin, reduction="none")
        np.testing.assert_array_equal(loss, want.detach().numpy())
        np.testing.assert_array_equal(g1, ts[0].grad.numpy())
        np.testing.assert_array_equal(g2, ts[1].grad.numpy())


# --- bad arguments -------------------------------------------------------------------------------

def _bad(name, dtype=np.float64):
    """(arrays, options) a loss accepts, to be broken by a test."""
    r = np.random.default_rng(0)
    x = lambda shape=(4, 3): r.normal(size=shape).astype(dtype)   # noqa: E731
    return {"margin_ranking_loss": (x(), x(), np.sign(x())), "gaussian_nll_loss": (x(), x(), np.abs(x()) + 0.1),
            "cosine_embedding_loss": (x(), x(), np.array([1, -1, 1, -1])), "triplet_margin_loss": (x(), x(), x())}[name]


BAD_ARGUMENTS = [
    ("margin_ranking_loss", lambda a: (a[0], a[1][:, :2], a[2]), {}, ValueError, "input2: expected shape"),
    ("margin_ranking_loss", lambda a: (a[0], a[1], a[2][:3]), {}, ValueError, "target: expected shape"),
    ("margin_ranking_loss", lambda a: (a[0], a[1].astype(np.float32), a[2]), {}, TypeError, "input2: expected dtype"),
    ("margin_ranking_loss", lambda a: (a[0].astype(np.int64), a[1], a[2]), {}, TypeError, "input1: expected dtype"),
    ("margin_ranking_loss", lambda a: (list(a[0]), a[1], a[2]), {}, TypeError, "input1: expected a numpy.ndarray"),
    ("margin_ranking_loss", lambda a: a, {"reduction": "avg"}, ValueError, "reduction"),
    ("margin_ranking_loss", lambda a: a, {"margin": "1"}, TypeError, "margin"),
    ("gaussian_nll_loss", lambda a: (a[0], a[1], a[2][:2]), {}, ValueError, "var: expected shape"),
    ("gaussian_nll_loss", lambda a: (a[0], a[1], a[2][:, :1].T), {}, ValueError, "var: expected shape"),
    ("gaussian_nll_loss", lambda a: (a[0], a[1], np.where(np.arange(12).reshape(4, 3) == 7, -0.5, a[2])), {},
     ValueError, r"var: variances must not be negative; var\[2, 1\] is -0.5"),
    ("gaussian_nll_loss", lambda a: (a[0], a[1], -1.0), {}, ValueError, "var: must not be negative"),
    ("gaussian_nll_loss", lambda a: (a[0], a[1][:3], a[2]), {}, ValueError, "target: expected shape"),
    ("gaussian_nll_loss", lambda a: a, {"eps": -1.0}, ValueError, "eps"),
    ("cosine_embedding_loss", lambda a: (a[0], a[1], a[2][:3]), {}, ValueError, "target: expected shape"),
    ("cosine_embedding_loss", lambda a: (a[0][None], a[1][None], a[2]), {}, ValueError, r"input1: expected shape \(D,\)"),
    ("cosine_embedding_loss", lambda a: (a[0], a[1], a[2].astype(complex)), {}, TypeError, "target"),
    ("cosine_embedding_loss", lambda a: (a[0], a[1][:3], a[2]), {}, ValueError, "input2: expected shape"),
    ("triplet_margin_loss", lambda a: (a[0], a[1], a[2][:, :2]), {}, ValueError, "negative: expected shape"),
    ("triplet_margin_loss", lambda a: (a[0][0, 0, ...], a[1][0, 0, ...], a[2][0, 0, ...]), {}, ValueError, "anchor: expected at least"),
    ("triplet_margin_loss", lambda a: a, {"p": 0.0}, ValueError, "p: expected a positive"),
    ("triplet_margin_loss", lambda a: a, {"p": INF}, ValueError, "p: expected a positive"),
    ("triplet_margin_loss", lambda a: a, {"margin": 0.0}, ValueError, "margin: expected a number > 0"),
]


@pytest.mark.parametrize("name, change, options, exc, match", BAD_ARGUMENTS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_ARGUMENTS)])
def test_bad_arguments_are_refused_and_change_nothing(name, change, options, exc, match):
    arrays = change(_bad(name))
    f, f_grad, f_with_grad = functions(name)
    for fn in (f, f_grad, f_with_grad):
        with unmodified(*arrays), pytest.raises(exc, match=match):
            fn(*arrays, **options)


@pytest.mark.parametrize("name", ["margin_ranking_loss", "gaussian_nll_loss", "cosine_embedding_loss",
                                  "triplet_margin_loss"])
def test_bad_out_and_grad_output_change_nothing(name):
    arrays = _bad(name)
    _, f_grad, f_with_grad = functions(name)
    diff = BY_NAME[name].differentiable
    good = [np.full(np.shape(arrays[k]), 777.0) for k in diff]
    bad_outs = [
        (good[0], TypeError, "out: expected a tuple"),
        (tuple(good[:-1]), TypeError, "out: expected a tuple of"),
        (tuple(good[:-1]) + (np.zeros((9,)),), ValueError, r"out\[\d\]: expected shape"),
        (tuple(good[:-1]) + (np.zeros(np.shape(arrays[diff[-1]]), np.float32),), TypeError, r"out\[\d\]: expected dtype"),
        (tuple(good[:-1]) + (good[0],), ValueError, r"out\[\d\]: must not overlap"),
        ((arrays[0],) + tuple(good[1:]), ValueError, r"out\[0\]: must not overlap"),
    ]
    for out, exc, match in bad_outs:
        with unmodified(*arrays, *good), pytest.raises(exc, match=match):
            f_grad(*arrays, out=out)
    with pytest.raises(ValueError, match="grad_output: expected a scalar"):
        f_grad(*arrays, grad_output=np.ones(3))
    with pytest.raises(ValueError, match="grad_output: expected a scalar or shape"):
        f_grad(*arrays, reduction="none", grad_output=np.ones(7))


def test_negative_variance_leaves_out_untouched():
    x, t, var = _bad("gaussian_nll_loss")
    var = var.copy()
    var[3, 2] = -1.0
    outs = (np.full(x.shape, 777.0), np.full(var.shape, 777.0))
    with pytest.raises(ValueError, match=r"var\[3, 2\] is -1.0"):
        lossk.gaussian_nll_loss_grad(x, t, var, out=outs)
    assert all(np.all(o == 777.0) for o in outs)
