"""lossk.dask against lossk on the whole array in memory (itself checked against the NumPy twins),
on Dask's threaded scheduler and on a real dask.distributed cluster started here (two worker
processes on loopback): the conformance grid with uneven, empty and all-ignored chunks, bad
arguments, a worker killed mid-computation."""
import os
import signal
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import lossk
from lossk._losses import BY_NAME
from helpers import unmodified
from loss_specs import (CLASSIFICATION_CASES, ELEMENTWISE_CASES, MARGIN_CASES, MULTI_INPUT_CASES,
                        ctc_problem, multi_takes, takes_rank)

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
lossk_dask = pytest.importorskip("lossk.dask")


# --- problems: a loss's arguments, how to chunk them, and whether its mean is weighted -----------

def uneven(n, rng, empty=False):
    """Chunk sizes for an axis of n: uneven, now and then an empty chunk."""
    if n <= 1:
        return (n,) + ((0,) if empty else ())
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(1, 4))), replace=False))
    sizes = list(np.diff(np.concatenate(([0], cuts, [n]))))
    if empty:
        sizes.insert(int(rng.integers(0, len(sizes) + 1)), 0)
    return tuple(int(s) for s in sizes)


def chunked(a, rng, empty=False):
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    return da.from_array(a, chunks=tuple(uneven(n, rng, empty) for n in a.shape))


def problems():
    out = []
    for case in ELEMENTWISE_CASES:
        for shape in ((19, 35), (2, 3, 4), (7,)):
            out.append((case, shape))
    for case in CLASSIFICATION_CASES:
        for shape in ((5,), (13, 4), (3, 4, 5), (2, 3, 4, 3)):
            out.append((case, shape))
    for case in MARGIN_CASES:
        for shape in ((5,), (13, 4), (3, 2, 5)):
            if takes_rank(case, len(shape)):
                out.append((case, shape))
    for case in MULTI_INPUT_CASES:
        for shape in ((7,), (13, 4), (2, 3, 5)):
            if multi_takes(case, shape):
                out.append((case, shape))
    return [pytest.param(c, s, r, id=f"{c.id}-{'x'.join(map(str, s))}-{r}") for c, s in out for r in c.reductions()]


def build(case, shape, dtype, rng):
    """(arrays in the loss's argument order, options)."""
    if hasattr(case, "arrays"):
        x, t, opts = case.build(rng, shape, dtype)
        return [x, t], opts
    arrays, opts = case.build(rng, shape, dtype)
    return list(arrays), opts


def weighted_mean(name, opts, reduction):
    """Whether a mean divides by a sum of weights (lossk.dask adds the chunks' exactly, the kernel
    its blocks' in order, so the divisors may differ in their last place); a count is exact."""
    loss = BY_NAME[name]
    return reduction == "mean" and opts.get("weight") is not None and (
        loss.shaped_weight == "sum" or loss.family == "classification")


def same(actual, expected, dtype, exact):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if exact or np.dtype(dtype) == np.float32:
        np.testing.assert_array_equal(actual, expected)
    else:   # float64: the sums' roundings differ in the last places
        np.testing.assert_allclose(actual, expected, rtol=1e-13, atol=1e-15)


def dasked(arrays, opts, rng, empty=False):
    return [chunked(a, rng, empty) for a in arrays], {k: chunked(v, rng) if k != "weight" or
                                                     np.ndim(v) > 1 else v for k, v in opts.items()}


def check_all(name, arrays, opts, reduction, dtype, rng, empty=False, scheduler=None):
    """NAME, NAME_grad (random grad_output for "none") and NAME_with_grad over Dask, against lossk."""
    f, g, fg = (getattr(lossk, name + s) for s in ("", "_grad", "_with_grad"))
    df, dg, dfg = (getattr(lossk_dask, name + s) for s in ("", "_grad", "_with_grad"))
    darrays, dopts = dasked(arrays, opts, rng, empty)
    loss = BY_NAME[name]
    weighted = weighted_mean(name, opts, reduction)
    expected = f(*arrays, reduction=reduction, **opts)
    if reduction == "none":
        go = rng.normal(0, 1, np.shape(expected)).astype(np.asarray(expected).dtype)
        dgo = chunked(go, rng) if go.ndim else go
    else:
        go = dgo = 0.75
    with unmodified(*[a for a in arrays if isinstance(a, np.ndarray)]):
        got = df(*darrays, reduction=reduction, **dopts)
        assert isinstance(got, da.Array)
        got_grad = dg(*darrays, reduction=reduction, grad_output=dgo, **dopts)
        got_fused = dfg(*darrays, reduction=reduction, **dopts)
        got, got_grad, got_fused = dask.compute(got, got_grad, got_fused, scheduler=scheduler)
    same(got, expected, dtype, exact=reduction == "none")
    grads = g(*arrays, reduction=reduction, grad_output=go, **opts)
    fused = fg(*arrays, reduction=reduction, **opts)
    exact_grad = not weighted
    if loss.family == "multi_input":
        # a variance shared along an axis (or a float) has its gradient summed over that axis: the
        # kernel's partition of the sum differs from the chunks'
        shared = name == "gaussian_nll_loss" and np.shape(arrays[2]) != np.shape(arrays[0])
        for k in range(len(grads)):
            for a, b in ((got_grad[k], grads[k]), (got_fused[1][k], fused[1][k])):
                if shared and k == 1:
                    np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12)
                else:
                    same(a, b, dtype, exact_grad)
    else:
        same(got_grad, grads, dtype, exact_grad)
        if name == "sigmoid_focal_loss":
            # the fused kernel's scalar tail (the last elements of a run) computes its gradient
            # with other roundings than its vector loop, so where a chunk ends matters slightly
            np.testing.assert_allclose(got_fused[1], fused[1], rtol=1e-5 if dtype == np.float32 else 1e-13)
        else:
            same(got_fused[1], fused[1], dtype, exact_grad)
    same(got_fused[0], fused[0], dtype, exact=reduction == "none")


@pytest.mark.parametrize("case, shape, reduction", problems())
def test_conformance_grid(case, shape, reduction, dtype, rng):
    arrays, opts = build(case, shape, dtype, rng)
    check_all(case.name, arrays, opts, reduction, dtype, rng)


@pytest.mark.parametrize("layout", ["padded", "concatenated", "unbatched"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc(layout, reduction, zero_infinity, dtype, rng):
    lp, targets, il, tl = ctc_problem(rng, 12, 9, 5, 4, dtype, layout=layout, impossible=True)
    check_all("ctc_loss", [lp, targets, il, tl], {"zero_infinity": zero_infinity}, reduction, dtype, rng)


@pytest.mark.parametrize("name", ["cross_entropy", "mse_loss", "multi_margin_loss", "triplet_margin_loss"])
def test_empty_chunks(name, dtype, rng):
    case = next(c for c in ELEMENTWISE_CASES + CLASSIFICATION_CASES + MARGIN_CASES + MULTI_INPUT_CASES
                if c.name == name)
    arrays, opts = build(case, (13, 4), dtype, rng)
    for reduction in ("none", "mean", "sum"):
        check_all(name, arrays, opts, reduction, dtype, rng, empty=True)


def test_all_ignored_chunks(dtype, rng):
    x = rng.normal(0, 2, (40, 6)).astype(dtype)
    t = rng.integers(0, 6, 40)
    t[10:25] = -100                                  # whole chunks of ignored targets
    w = rng.uniform(0.5, 2, 6).astype(dtype)
    X, T = da.from_array(x, chunks=((10, 15, 15), (6,))), da.from_array(t, chunks=((10, 15, 15),))
    for opts in ({}, {"weight": w}, {"label_smoothing": 0.2, "weight": w}):
        same(lossk_dask.cross_entropy(X, T, **opts).compute(), lossk.cross_entropy(x, t, **opts), dtype, False)
        same(lossk_dask.cross_entropy_grad(X, T, **opts).compute(), lossk.cross_entropy_grad(x, t, **opts),
             dtype, False)   # a weighted mean: the divisors' roundings
    t[:] = -100                                       # everything ignored: nan and a zero gradient, as in memory
    T = da.from_array(t, chunks=7)
    assert np.isnan(lossk_dask.cross_entropy(X.rechunk((7, 6)), T).compute())
    assert not lossk_dask.cross_entropy_grad(X.rechunk((7, 6)), T).compute().any()
    assert np.isnan(lossk_dask.nll_loss(X.rechunk((7, 6)), T, weight=w).compute())


def test_many_chunks_gathered_by_a_tree(rng):
    x = rng.normal(0, 1, (5000,)).astype(np.float32)
    t = rng.normal(0, 1, (5000,)).astype(np.float32)
    X, T = da.from_array(x, chunks=3), da.from_array(t, chunks=3)   # 1667 blocks: three levels of gathering
    loss = lossk_dask.huber_loss(X, T)
    assert len([k for k in dict(loss.__dask_graph__()) if "tree" in str(k)]) > 50
    assert loss.compute() == lossk.huber_loss(x, t)


def test_one_chunk_is_the_in_memory_result(rng):
    """One chunk: the kernel's own sum, divided as in memory: bit-identical in float64 too."""
    x = rng.normal(0, 1e3, (300, 7))
    t = rng.integers(0, 7, 300)
    w = rng.uniform(0.5, 2, 7)
    X = da.from_array(x, chunks=-1)
    assert lossk_dask.cross_entropy(X, t, label_smoothing=0.1).compute() == lossk.cross_entropy(
        x, t, label_smoothing=0.1)
    assert lossk_dask.soft_margin_loss(X, x[::-1].copy(), reduction="sum").compute() == lossk.soft_margin_loss(
        x, x[::-1].copy(), reduction="sum")
    assert lossk_dask.nll_loss(X, t, weight=w).compute() == pytest.approx(lossk.nll_loss(x, t, weight=w), rel=1e-15)


def test_sum_is_exact_over_the_chunks(rng):
    """The chunks' partials are added exactly: terms that cancel lose nothing in the gathering."""
    x = np.array([1e17, 1.0, -1e17, 1.0] * 8)
    got = lossk_dask.l1_loss(da.from_array(x, chunks=1), np.zeros_like(x) + 0.0, reduction="sum").compute()
    assert got == np.abs(x).sum()
    y = da.from_array(np.array([3e17, 1.0, 1.0, 1.0]), chunks=1)
    assert lossk_dask.mse_loss(y, np.array([3e17, 0.0, 0.0, 0.0]), reduction="sum").compute() == 3.0


def test_reduction_none_is_chunked_like_the_input(rng):
    x = da.from_array(rng.normal(0, 1, (10, 4, 6)), chunks=((3, 7), (4,), (2, 4)))
    t = da.from_array(rng.integers(0, 4, (10, 6)), chunks=((3, 7), (2, 4)))
    assert lossk_dask.cross_entropy(x, t, reduction="none").chunks == ((3, 7), (2, 4))
    assert lossk_dask.cross_entropy_grad(x, t).chunks == x.chunks
    y = da.from_array(rng.normal(0, 1, (10, 6)), chunks=((5, 5), (1, 5)))
    assert lossk_dask.mse_loss(y, y.compute(), reduction="none").chunks == y.chunks


def test_class_axis_rechunked(rng):
    x = rng.normal(0, 1, (20, 9)).astype(np.float32)
    t = rng.integers(0, 9, 20)
    X = da.from_array(x, chunks=(6, 4))           # class rows split: rechunked whole
    assert lossk_dask.cross_entropy(X, t).compute() == lossk.cross_entropy(x, t)
    np.testing.assert_array_equal(lossk_dask.cross_entropy_grad(X, t).compute(), lossk.cross_entropy_grad(x, t))


def test_thread_count_invariant(rng):
    x = rng.normal(0, 2, (3000, 50)).astype(np.float32)
    t = rng.integers(0, 50, 3000)
    X = da.from_array(x, chunks=(700, 50))
    old = lossk.get_num_threads()
    try:
        values = []
        for n in (1, 2):
            lossk.set_num_threads(n)
            values.append(dask.compute(*lossk_dask.cross_entropy_with_grad(X, t, label_smoothing=0.1)))
    finally:
        lossk.set_num_threads(old)
    assert values[0][0] == values[1][0]
    np.testing.assert_array_equal(values[0][1], values[1][1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 60), c=st.integers(1, 7), spatial=st.integers(0, 2), seed=st.integers(0, 2**31),
       weighted=st.booleans(), ignore=st.booleans(), smoothing=st.sampled_from([0.0, 0.3]),
       reduction=st.sampled_from(["none", "mean", "sum"]), f32=st.booleans(), transposed=st.booleans())
def test_cross_entropy_property(n, c, spatial, seed, weighted, ignore, smoothing, reduction, f32, transposed):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    shape = (n, c) + (3,) * spatial
    x = rng.normal(0, 3, shape).astype(dtype)
    if transposed:    # non-contiguous blocks
        x = np.ascontiguousarray(x.T).T
    t = rng.integers(0, c, (n,) + (3,) * spatial)
    if ignore:
        t[rng.random(t.shape) < 0.3] = -100
    opts = {"label_smoothing": smoothing}
    if weighted:
        opts["weight"] = rng.uniform(0.1, 2, c).astype(dtype)
    check_all("cross_entropy", [x, t], opts, reduction, dtype, rng)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=3), seed=st.integers(0, 2**31),
       name=st.sampled_from(["l1_loss", "mse_loss", "huber_loss", "binary_cross_entropy_with_logits", "kl_div"]),
       weighted=st.booleans(), reduction=st.sampled_from(["none", "mean", "sum"]), f32=st.booleans())
def test_elementwise_property(shape, seed, name, weighted, reduction, f32):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    x, t = rng.normal(0, 2, shape).astype(dtype), rng.normal(0, 2, shape).astype(dtype)
    opts = {"weight": rng.uniform(0.1, 2, shape).astype(dtype)} if weighted and name != "kl_div" else {}
    check_all(name, [x, t], opts, reduction, dtype, rng)


# --- bad input ------------------------------------------------------------------------------------

def test_bad_arguments_raise_when_the_graph_is_built(rng):
    x = da.from_array(rng.normal(0, 1, (10, 4)).astype(np.float32), chunks=5)
    t = da.from_array(rng.integers(0, 4, 10), chunks=5)
    with pytest.raises(ValueError, match="reduction"):
        lossk_dask.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        lossk_dask.cross_entropy(x, t, label_smoothing=2.0)
    with pytest.raises(ValueError, match="target: expected shape"):
        lossk_dask.cross_entropy(x, t[:7])
    with pytest.raises(ValueError, match="weight: expected shape"):
        lossk_dask.cross_entropy(x, t, weight=np.ones(3, np.float32))
    with pytest.raises(TypeError, match="input"):
        lossk_dask.cross_entropy(x.astype(np.int8), t)
    with pytest.raises(TypeError, match="input"):
        lossk_dask.mse_loss(x.astype(np.complex64), x.astype(np.complex64))
    with pytest.raises(TypeError, match="target"):
        lossk_dask.mse_loss(x, x.astype(np.float64))
    with pytest.raises(ValueError, match="target: expected shape"):
        lossk_dask.mse_loss(x, x[:, :3])
    with pytest.raises(ValueError, match="weight: shape"):
        lossk_dask.binary_cross_entropy_with_logits(x, x, weight=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="grad_output"):
        lossk_dask.mse_loss_grad(x, x, grad_output=np.ones((10, 4), np.float32))
    with pytest.raises(ValueError, match="delta"):
        lossk_dask.huber_loss(x, x, delta=-1.0)
    with pytest.raises(TypeError):
        lossk_dask.mse_loss(x, x, bogus=1)


def test_bad_data_names_its_place_in_the_whole_array(rng):
    x = rng.normal(0, 1, (100, 4)).astype(np.float32)
    t = rng.integers(0, 4, 100)
    t[73] = 9
    X, T = da.from_array(x, chunks=(30, 4)), da.from_array(t, chunks=30)
    for fn in (lossk_dask.cross_entropy, lossk_dask.cross_entropy_grad, lambda *a: lossk_dask.cross_entropy(
            *a, weight=np.ones(4, np.float32)), lambda *a: lossk_dask.nll_loss_grad(*a)):
        with pytest.raises(ValueError, match=r"target\[73\] is 9"):
            fn(X, T).compute()
    lp, targets, il, tl = ctc_problem(rng, 10, 12, 6, 4, np.float64, layout="concatenated")
    bad = int(tl[:7].sum())            # the first target of sequence 7, in the second block's chunk
    assert tl[7] > 0
    targets[bad] = 6
    with pytest.raises(ValueError, match=rf"targets\[{bad}\] is 6"):
        lossk_dask.ctc_loss(da.from_array(lp, chunks=(10, 5, 6)), targets, il, tl).compute()
    p = rng.uniform(0, 1, (50, 6)).astype(np.float32)
    p[41, 5] = 1.5
    with pytest.raises(ValueError, match=r"input\[41, 5\] is 1.5"):
        lossk_dask.binary_cross_entropy(da.from_array(p, chunks=(20, 4)), np.zeros_like(p)).compute()


# --- a real cluster ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, worker_dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


DISTRIBUTED = [p for p in problems() if p.id.endswith(("-mean", "-none")) and ("x4-" in p.id or "x5-" in p.id)]


@pytest.mark.parametrize("case, shape, reduction", DISTRIBUTED[::3])
def test_distributed_cluster(client, case, shape, reduction, rng):
    arrays, opts = build(case, shape, np.float32, rng)
    check_all(case.name, arrays, opts, reduction, np.float32, rng, scheduler=client.get)


def test_distributed_ctc_and_schedulers_agree(client, rng):
    lp, targets, il, tl = ctc_problem(rng, 10, 12, 6, 4, np.float64, layout="concatenated")
    LP = da.from_array(lp, chunks=(10, 5, 6))
    values = [dask.compute(*lossk_dask.ctc_loss_with_grad(LP, targets, il, tl), scheduler=s)
              for s in ("sync", "threads", client.get)]
    for v in values[1:]:
        assert v[0] == values[0][0]
        np.testing.assert_array_equal(v[1], values[0][1])
    assert values[0][0] == pytest.approx(lossk.ctc_loss(lp, targets, il, tl), rel=1e-14)


def _slow(block):
    time.sleep(0.15)
    return block


def test_worker_killed_mid_computation(client, rng):
    """A worker dies (SIGKILL) while the loss is being computed: Dask reruns its tasks elsewhere and
    the result is the same."""
    x = rng.normal(0, 2, (4000, 20)).astype(np.float32)
    t = rng.integers(0, 20, 4000)
    X = da.from_array(x, chunks=(100, 20)).map_blocks(_slow, dtype=x.dtype)   # 40 blocks of 0.15 s
    loss, grad = lossk_dask.cross_entropy_with_grad(X, da.from_array(t, chunks=100), weight=np.linspace(
        0.5, 2, 20, dtype=np.float32))
    pids = client.run(os.getpid)
    futures = client.compute([loss, grad])
    deadline = time.time() + 30
    while not any(client.processing().values()) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)     # some blocks done, others running
    assert not any(f.done() for f in futures)
    os.kill(pids[sorted(pids)[0]], signal.SIGKILL)
    got_loss, got_grad = client.gather(futures)
    assert got_loss == lossk.cross_entropy(x, t, weight=np.linspace(0.5, 2, 20, dtype=np.float32))
    np.testing.assert_array_equal(got_grad, lossk.cross_entropy_grad(x, t, weight=np.linspace(
        0.5, 2, 20, dtype=np.float32)))
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(os.getpid).values()) != set(pids.values())   # the killed worker was replaced
