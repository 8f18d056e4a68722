"""lossk.linear_cross_entropy (and _grad, _with_grad, nn.LinearCrossEntropyLoss): against a float64
NumPy twin (the reference cross-entropy of the float64 logits), finite differences and PyTorch's
own linear_cross_entropy; the work memory it promises; bit-identical gradients across thread
counts and chunk sizes; bad input."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossk
import lossk.nn as nn
import reference as ref
from helpers import DTYPES, assert_bitwise_equal, assert_close, assert_scalar_result, relayout, unmodified



def twin(x, w, t, bias=None, weight=None, reduction="mean", ignore_index=-100, label_smoothing=0.0,
         grad_output=1.0):
    """(loss, dx, dw, db) in float64, and their magnitudes (the scale of the terms each value sums:
    the logits' own rounding, D products each, is carried into every later value)."""
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    unbatched = x64.ndim == 1
    X = x64[None] if unbatched else x64
    logits = X @ w64.T + (0.0 if bias is None else np.asarray(bias, np.float64))
    r = ref.cross_entropy(logits[0] if unbatched else logits, t, weight, ignore_index, reduction, label_smoothing,
                          grad_output)
    V, D = w64.shape
    # a logit's error is about its terms' magnitude times sqrt(D) roundings: the loss and the
    # gradient of the logits move by as much times their own sensitivity (at most 2 per logit)
    logit_mag = (np.abs(X) @ np.abs(w64).T + (0.0 if bias is None else np.abs(np.asarray(bias, np.float64))))
    row_err = np.sqrt(max(D, 1)) * logit_mag.max(axis=1, initial=0.0)
    g = np.asarray(r.grad, np.float64).reshape(X.shape[0], V)
    gmag = np.asarray(r.grad_mag, np.float64).reshape(X.shape[0], V) + np.abs(g) * row_err[:, None]
    go = np.abs(np.asarray(grad_output, np.float64))
    wmax = 1.0 if weight is None else float(np.max(np.abs(weight), initial=1.0))
    if reduction == "none":
        loss_mag = np.asarray(r.loss_mag) + 2 * wmax * (row_err[0] if unbatched else row_err)
    else:
        n_terms = max(X.shape[0], 1) if reduction == "sum" else 1
        loss_mag = r.loss_mag + 2 * wmax * n_terms * float(row_err.max(initial=0.0))
    sv = np.sqrt(V)
    dx, dx_mag = g @ w64, sv * (gmag @ np.abs(w64))
    dw, dw_mag = g.T @ X, np.sqrt(max(X.shape[0], 1)) * (gmag.T @ np.abs(X))
    db, db_mag = g.sum(axis=0), np.sqrt(max(X.shape[0], 1)) * gmag.sum(axis=0)
    if unbatched:
        dx, dx_mag = dx[0], dx_mag[0]
    return (r.loss, dx, dw, None if bias is None else db), (loss_mag + 0 * go, dx_mag, dw_mag, db_mag)


def problem(rng, N, D, V, dtype, bias=False, weight=False, ignore=False, scale=1.0):
    x = rng.standard_normal((N, D)).astype(dtype)
    w = (scale * rng.standard_normal((V, D)) / np.sqrt(max(D, 1))).astype(dtype)
    t = rng.integers(0, V, N)
    if ignore and N:
        t[rng.random(N) < 0.3] = -100
    b = rng.standard_normal(V).astype(dtype) if bias else None
    cw = rng.random(V).astype(dtype) + 0.1 if weight else None
    return x, w, t, b, cw


def check(result, expected, dtype, reduction, bias):
    (loss, dx, dw, db), ((el, edx, edw, edb), (ml, mdx, mdw, mdb)) = result, expected
    if reduction != "none":
        assert_scalar_result(loss, dtype)
    assert_close(loss, el, dtype, ml, "loss")
    assert_close(dx, edx, dtype, mdx, "grad_input")
    assert_close(dw, edw, dtype, mdw, "grad_linear_weight")
    if bias:
        assert_close(db, edb, dtype, mdb, "grad_linear_bias")
    else:
        assert db is None


SHAPES = [(1, 1, 1), (5, 7, 3), (37, 19, 101), (64, 33, 257), (130, 16, 1000), (9, 65, 4099)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", ["plain", "bias", "weight", "ignore", "smoothing", "all"])
@pytest.mark.parametrize("chunk_size", [None, 1, 7, 64])
def test_against_twin(dtype, shape, reduction, options, chunk_size):
    rng = np.random.default_rng(hash((shape, reduction, options)) % 2**32)
    every = options == "all"
    x, w, t, b, cw = problem(rng, *shape, dtype, bias=every or options == "bias", weight=every or options == "weight",
                             ignore=every or options == "ignore")
    ls = 0.2 if every or options == "smoothing" else 0.0
    kw = dict(linear_bias=b, weight=cw, reduction=reduction, label_smoothing=ls)
    with unmodified(x, w, t, b, cw):
        got = lossk.linear_cross_entropy_with_grad(x, w, t, chunk_size=chunk_size, **kw)
    check(got, twin(x, w, t, b, cw, reduction, -100, ls), dtype, reduction, b is not None)
    # the loss alone and the gradients alone are the fused call's values, bit for bit
    assert_bitwise_equal(lossk.linear_cross_entropy(x, w, t, chunk_size=chunk_size, **kw), got[0], "loss alone")
    for a, e, what in zip(lossk.linear_cross_entropy_grad(x, w, t, chunk_size=chunk_size, **kw), got[1:],
                          ("dx", "dw", "db")):
        if e is None:
            assert a is None
        else:
            assert_bitwise_equal(a, e, what)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_layouts_and_unbatched(dtype, layout, rng):
    x, w, t, b, cw = problem(rng, 23, 17, 45, dtype, bias=True, weight=True, ignore=True)
    want = lossk.linear_cross_entropy_with_grad(x, w, t, linear_bias=b, weight=cw)
    xs, ws, ts, bs, cws = (relayout(a, layout) for a in (x, w, t, b, cw))
    with unmodified(xs, ws, ts, bs, cws):
        got = lossk.linear_cross_entropy_with_grad(xs, ws, ts, linear_bias=bs, weight=cws)
    for a, e, what in zip(got, want, ("loss", "dx", "dw", "db")):
        assert_bitwise_equal(a, e, what)
    # unbatched: (D,) input and a 0-d target are one row
    loss, dx, dw, db = lossk.linear_cross_entropy_with_grad(x[3], w, t[3] if t[3] >= 0 else 0, linear_bias=b)
    e = lossk.linear_cross_entropy_with_grad(x[3:4], w, np.array([t[3] if t[3] >= 0 else 0]), linear_bias=b)
    assert dx.shape == x[3].shape and np.shape(loss) == ()
    assert_bitwise_equal(dx, e[1][0], "unbatched dx")
    assert_bitwise_equal(dw, e[2], "unbatched dw")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_grad_output(reduction, rng):
    x, w, t, b, _ = problem(rng, 19, 8, 31, np.float64, bias=True, ignore=True)
    go = rng.standard_normal(19) if reduction == "none" else 2.5
    got = lossk.linear_cross_entropy_grad(x, w, t, linear_bias=b, reduction=reduction, grad_output=go)
    (_, *want), (_, *mags) = twin(x, w, t, b, None, reduction, grad_output=go)
    for a, e, m, what in zip(got, want, mags, ("dx", "dw", "db")):
        assert_close(a, e, np.float64, m, what)


def test_finite_differences(rng):
    x, w, t, b, cw = problem(rng, 6, 5, 9, np.float64, bias=True, weight=True, ignore=True)
    kw = dict(weight=cw, label_smoothing=0.1)
    _, dx, dw, db = lossk.linear_cross_entropy_with_grad(x, w, t, linear_bias=b, **kw)
    h = 1e-6
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            keep = arr[i]
            arr[i] = keep + h
            up = lossk.linear_cross_entropy(x, w, t, linear_bias=b, **kw)
            arr[i] = keep - h
            down = lossk.linear_cross_entropy(x, w, t, linear_bias=b, **kw)
            arr[i] = keep
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_threads_and_chunks_give_the_same_gradients(dtype, rng, restore_threads):
    x, w, t, b, cw = problem(rng, 300, 40, 700, dtype, bias=True, weight=True, ignore=True)
    kw = dict(linear_bias=b, weight=cw, label_smoothing=0.1)
    lossk.set_num_threads(1)
    one = lossk.linear_cross_entropy_with_grad(x, w, t, chunk_size=48, **kw)
    lossk.set_num_threads(2)
    for chunk in (48, 1, 17, 300, None):
        got = lossk.linear_cross_entropy_with_grad(x, w, t, chunk_size=chunk, **kw)
        for a, e, what in zip(got[1:], one[1:], ("dx", "dw", "db")):
            assert_bitwise_equal(a, e, f"{what}, chunk {chunk}")
        if chunk == 48:
            assert_bitwise_equal(got[0], one[0], "loss across thread counts")
        else:
            np.testing.assert_allclose(got[0], one[0], rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_edge_cases():
    w = np.ones((4, 3), np.float32)
    # no rows: a mean of nothing is nan (PyTorch's 0/0), a sum 0; the gradients are zeros
    x, t = np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    loss, dx, dw, db = lossk.linear_cross_entropy_with_grad(x, w, t, linear_bias=np.ones(4, np.float32))
    assert np.isnan(loss) and dx.shape == (0, 3) and not dw.any() and not db.any()
    assert lossk.linear_cross_entropy(x, w, t, reduction="sum") == 0
    assert lossk.linear_cross_entropy(x, w, t, reduction="none").shape == (0,)
    # every target ignored: nan mean, zero gradients
    x = np.ones((3, 3), np.float32)
    t = np.full(3, -100)
    loss, dx, dw, _ = lossk.linear_cross_entropy_with_grad(x, w, t)
    assert np.isnan(loss) and not dx.any() and not dw.any()
    # in_features 0: the logits are the bias
    b = np.arange(4, dtype=np.float64)
    x0, w0 = np.zeros((2, 0)), np.zeros((4, 0))
    np.testing.assert_allclose(lossk.linear_cross_entropy(x0, w0, np.array([3, 0]), linear_bias=b, reduction="none"),
                               ref.cross_entropy(np.tile(b, (2, 1)), np.array([3, 0]), reduction="none").loss)
    # nan and inf flow as in cross_entropy: a nan input row gives nan for that row only
    x = np.ones((2, 3))
    x[0, 1] = np.nan
    per_row = lossk.linear_cross_entropy(x, np.ones((4, 3)), np.array([0, 1]), reduction="none")
    assert np.isnan(per_row[0]) and np.isfinite(per_row[1])


def test_memory_is_a_chunk(rng):
    """Besides its results, a call allocates chunk (2 V + D) values and nothing of size N V."""
    N, D, V = 2048, 32, 4000
    x, w, t, b, _ = problem(rng, N, D, V, np.float32, bias=True)
    results = (N * D + V * D + V) * 4 + 64 * 3
    for chunk, bound in ((None, N * V * 4 // 8), (100, 100 * (2 * V + D) * 4)):
        lossk.linear_cross_entropy_with_grad(x, w, t, linear_bias=b, chunk_size=chunk)  # warm the result cache
        lossk.set_result_cache_limit(0)
        try:
            tracemalloc.start()
            out = lossk.linear_cross_entropy_with_grad(x, w, t, linear_bias=b, chunk_size=chunk)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        finally:
            lossk.set_result_cache_limit(512 << 20)
        assert out[1].shape == x.shape
        extra = peak - results
        assert extra <= bound + 4096, f"chunk {chunk}: {extra} bytes beyond the results, bound {bound}"
        assert extra >= bound // 4, "the work memory was not traced: the test measures nothing"


def test_bad_input(rng):
    x, w, t, b, cw = problem(rng, 4, 3, 5, np.float32, bias=True, weight=True)
    f = lossk.linear_cross_entropy_with_grad
    cases = [
        (TypeError, "input: expected dtype float32 or float64", (x.astype(np.int8), w, t), {}),
        (TypeError, "input: expected dtype", (x.astype(np.complex64), w, t), {}),
        (TypeError, "input: expected a numpy.ndarray", ([[object()]], w, t), {}),
        (TypeError, "linear_weight: expected dtype float32 like input", (x, w.astype(np.float64), t), {}),
        (ValueError, "linear_weight: expected shape", (x, w[:, :2], t), {}),
        (ValueError, "linear_weight: expected shape", (x, w[:0], t), {}),
        (ValueError, "input: expected shape", (x[None], w, t), {}),
        (TypeError, "target: linear_cross_entropy takes class indices", (x, w, t.astype(np.float32)), {}),
        (TypeError, "target: expected class indices of an integer dtype", (x, w, t.astype(bool)), {}),
        (ValueError, "target: expected class indices of shape", (x, w, t[:3]), {}),
        (ValueError, r"target: class indices must be in \[0, 5\).*target\[2\] is 5", (x, w, np.array([0, 1, 5, 7])),
         {}),
        (ValueError, "target: class indices.*target.1. is -1", (x, w, np.array([0, -1, 2, 3])), {}),
        (ValueError, "linear_bias: expected shape", (x, w, t), {"linear_bias": b[:4]}),
        (TypeError, "linear_bias: expected dtype float32", (x, w, t), {"linear_bias": b.astype(np.float64)}),
        (ValueError, "weight: expected shape", (x, w, t), {"weight": cw[:2]}),
        (ValueError, "reduction: expected one of", (x, w, t), {"reduction": "avg"}),
        (ValueError, "label_smoothing", (x, w, t), {"label_smoothing": 1.5}),
        (TypeError, "ignore_index: expected an int", (x, w, t), {"ignore_index": 1.0}),
        (TypeError, "chunk_size: expected an int or None", (x, w, t), {"chunk_size": 2.0}),
        (TypeError, "chunk_size: expected an int or None", (x, w, t), {"chunk_size": True}),
        (ValueError, "chunk_size: expected a positive number", (x, w, t), {"chunk_size": 0}),
    ]
    for err, match, args, kw in cases:
        with unmodified(*args, *kw.values()), pytest.raises(err, match=match):
            f(*args, **kw)
    with pytest.raises(ValueError, match="grad_output: expected a scalar"):
        lossk.linear_cross_entropy_grad(x, w, t, grad_output=np.ones(4, np.float32))
    with pytest.raises(ValueError, match="grad_output: expected a scalar or shape"):
        lossk.linear_cross_entropy_grad(x, w, t, reduction="none", grad_output=np.ones(3, np.float32))


CONFORMANCE = [(red, bias, weight, ignore, ls) for red in ("mean", "sum", "none") for bias in (False, True)
               for weight in (False, True) for ignore in (False, True) for ls in (0.0, 0.3)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CONFORMANCE, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("chunked", [False, True], ids=["reference", "chunked"])
def test_against_pytorch(dtype, case, chunked):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    reduction, bias, weight, ignore, ls = case
    rng = np.random.default_rng(7)
    x, w, t, b, cw = problem(rng, 45, 24, 1001, dtype, bias=bias, weight=weight, ignore=ignore, scale=3.0)
    X, W = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    B = None if b is None else torch.tensor(b, requires_grad=True)
    options = torch.nn.LinearCrossEntropyOptions() if chunked else None
    kw = dict(reduction=reduction, label_smoothing=ls, weight=None if cw is None else torch.tensor(cw))
    if chunked and ls:  # the chunked path's subset: it warns and falls back to the reference path
        options = None
    L = F.linear_cross_entropy(X, W, torch.tensor(t), linear_bias=B, ignore_index=-100, options=options, **kw)
    go = rng.standard_normal(45).astype(dtype) if reduction == "none" else np.asarray(1.5, dtype)
    L.backward(torch.tensor(go))
    want = (L.detach().numpy(), X.grad.numpy(), W.grad.numpy(), None if B is None else B.grad.numpy())
    loss = lossk.linear_cross_entropy(x, w, t, linear_bias=b, weight=cw, reduction=reduction, label_smoothing=ls)
    grads = lossk.linear_cross_entropy_grad(x, w, t, linear_bias=b, weight=cw, reduction=reduction,
                                            label_smoothing=ls, grad_output=go if reduction == "none" else 1.5)
    _, mags = twin(x, w, t, b, cw, reduction, -100, ls, go if reduction == "none" else 1.5)
    # PyTorch's values carry their own roundings: twice the tolerance of one computation
    for a, e, m, what in zip((loss,) + grads, want, mags, ("loss", "dx", "dw", "db")):
        if e is None:
            assert a is None
            continue
        assert_close(a, e, dtype, 2 * np.asarray(m) + 2 * np.abs(e), what)


SMALL = st.integers(0, 40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(N=SMALL, D=st.integers(0, 40), V=st.integers(1, 300), chunk=st.one_of(st.none(), st.integers(1, 50)),
       dtype=st.sampled_from(DTYPES), reduction=st.sampled_from(["mean", "sum", "none"]), bias=st.booleans(),
       weight=st.booleans(), ignore=st.booleans(), ls=st.sampled_from([0.0, 0.05, 1.0]),
       layout=st.sampled_from(["contiguous", "transposed", "strided"]), seed=st.integers(0, 2**32 - 1))
def test_properties(N, D, V, chunk, dtype, reduction, bias, weight, ignore, ls, layout, seed):
    rng = np.random.default_rng(seed)
    x, w, t, b, cw = problem(rng, N, D, V, dtype, bias=bias, weight=weight, ignore=ignore)
    args = [relayout(a, layout) for a in (x, w, t, b, cw)]
    with unmodified(*args):
        got = lossk.linear_cross_entropy_with_grad(*args[:3], linear_bias=args[3], weight=args[4],
                                                   reduction=reduction, label_smoothing=ls, chunk_size=chunk)
    check(got, twin(x, w, t, b, cw, reduction, -100, ls), dtype, reduction, bias)


def test_module_trains_a_model(rng):
    """nn.LinearCrossEntropyLoss as the head of a Sequential model: its gradients are the
    functional ones (added to the parameters' grad), and SGD lowers the loss."""
    import lossk.optim as optim
    N, D, H, V = 256, 20, 32, 50
    x = rng.standard_normal((N, D)).astype(np.float32)
    t = np.argmax(x @ rng.standard_normal((D, V)), axis=1)  # labels a model can learn
    body = nn.Sequential(nn.Linear(D, H, rng=1), nn.ReLU())
    head = nn.LinearCrossEntropyLoss(H, V, bias=True, label_smoothing=0.1, chunk_size=40, rng=2)
    assert [n for n, _ in head.named_parameters()] == ["linear.weight", "linear.bias"]
    h = body(x)
    loss = head(h, t)
    want = lossk.linear_cross_entropy_with_grad(h, head.linear.weight.data, t, linear_bias=head.linear.bias.data,
                                                label_smoothing=0.1)
    np.testing.assert_allclose(loss, want[0], rtol=1e-6)
    dh = head.backward()
    np.testing.assert_array_equal(dh, want[1])
    np.testing.assert_array_equal(head.linear.weight.grad, want[2])
    with pytest.raises(RuntimeError, match="call the loss"):
        head.backward()
    params = list(body.parameters()) + list(head.parameters())
    opt = optim.SGD(params, lr=0.5)
    first = None
    for step in range(60):
        opt.zero_grad()
        loss = head(body(x), t)
        body.backward(head.backward())
        opt.step()
        first = loss if first is None else first
    assert loss < 0.7 * first
    with nn.no_grad():
        head(body(x), t)
    with pytest.raises(RuntimeError):
        head.backward()
