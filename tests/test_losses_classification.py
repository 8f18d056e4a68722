"""cross_entropy and nll_loss against the float64 NumPy reference in reference.py, finite
differences, and lossk's own contract (types, out=, grad_output, ignore_index, integer target
dtypes, thread-count invariance, argument checking)."""
import math

import numpy as np
import pytest

import lossk
import reference
from helpers import DTYPES, assert_bitwise_equal, assert_close, relayout, unmodified
from loss_specs import (CLASSIFICATION_CASES, CLASSIFICATION_SHAPES, check_finite_differences,
                        check_large_output_matches_chunks, check_out_buffer, check_outputs, check_rejected,
                        check_thread_invariance, check_unusual_arrays, evaluate, functions, prob_targets, shape_id,
                        shapes_and_layouts, unusual, with_reductions)

CASES = {c.id: c for c in CLASSIFICATION_CASES}
SOME_CASES = [CASES[i] for i in ("ce", "ce-w-ign_neg-ls0.1", "ce-ign_class", "ce_prob-w-ls0.25", "nll-w-ign_neg",
                                 "nll")]
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def loss_shape_of(shape):
    return () if len(shape) == 1 else shape[:1] + shape[2:]


def grad_output_for(rng, reduction, case, shape, target, dtype, layout):
    """Scalar for reduced losses; for "none" an array shaped like the loss, nan at ignored
    positions (PyTorch never reads grad_output there: their gradient is 0)."""
    if reduction != "none":
        return -1.75
    go = rng.normal(0, 2, loss_shape_of(shape)).astype(dtype)
    if target.dtype.kind in "iu":
        go = np.where(target == case.options.get("ignore_index", -100), np.nan, go).astype(dtype)
    return relayout(go, layout)



def prepared(case, shape, dtype, layout, rng):
    x, t, opts = case.build(rng, shape, dtype)
    return relayout(x, layout), relayout(t, layout), {k: relayout(v, layout) for k, v in opts.items()}


# --- values and gradients vs the reference ---------------------------------------------------

@pytest.mark.parametrize("shape, layout", shapes_and_layouts(CLASSIFICATION_SHAPES))
@pytest.mark.parametrize("case, reduction", with_reductions(CLASSIFICATION_CASES))
def test_matches_reference(case, reduction, shape, layout, dtype, rng):
    x, t, opts = prepared(case, shape, dtype, layout, rng)
    go = grad_output_for(rng, reduction, case, shape, t, dtype, layout)

    out = evaluate(case.name, x, t, opts, reduction, go)

    expected = reference.compute(case.name, x, t, reduction, grad_output=go, **opts)
    expected1 = reference.compute(case.name, x, t, reduction, **opts)
    check_outputs(out, expected, expected1, x, loss_shape_of(shape) if reduction == "none" else None)
    if reduction == "none" and t.dtype.kind in "iu":
        ignored = t == case.options.get("ignore_index", -100)
        assert (out.loss[ignored] == 0).all()


@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 4, 3)], ids=shape_id)
@pytest.mark.parametrize("case, reduction", with_reductions(CLASSIFICATION_CASES))
def test_fused_equals_separate_bitwise(case, reduction, shape, dtype, rng):
    """NAME_with_grad is documented as (NAME(...), NAME_grad(...)) in one pass: the same numbers."""
    x, t, opts = case.build(rng, shape, dtype)
    f, f_grad, f_with_grad = functions(case.name)
    loss, grad = f_with_grad(x, t, reduction=reduction, **opts)
    assert_bitwise_equal(np.asarray(loss), np.asarray(f(x, t, reduction=reduction, **opts)), "loss")
    assert_bitwise_equal(grad, f_grad(x, t, reduction=reduction, **opts), "grad")


@pytest.mark.parametrize("case, reduction", with_reductions(CLASSIFICATION_CASES))
def test_out_is_filled_and_returned(case, reduction, dtype, rng):
    check_out_buffer(case, (3, 5, 4), (3, 4), reduction, dtype, rng)


# --- finite differences (float64) ------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 2, 2)], ids=shape_id)
@pytest.mark.parametrize("case, reduction", with_reductions(SOME_CASES + [CASES["ce_prob-ls1.0"],
                                                                        CASES["ce-w-ls1.0"]]))
def test_gradient_matches_finite_differences(case, reduction, shape, rng):
    x, t, opts = case.build(rng, shape, np.float64)
    g = rng.normal(size=loss_shape_of(shape)) if reduction == "none" else 1.0
    if reduction == "mean" and t.dtype.kind in "iu" and (t == opts.get("ignore_index", -100)).all():
        t = np.zeros_like(t)            # a nan loss has no finite differences
    check_finite_differences(case.name, x, t, opts, reduction, g)


@pytest.mark.parametrize("kind", ["byteswapped", "misaligned", "broadcast"])
@pytest.mark.parametrize("case", [CASES["ce-w-ign_neg-ls0.1"], CASES["ce_prob-w"], CASES["nll-w-ign_class"]],
                         ids=repr)
def test_unusual_arrays(case, kind, dtype, rng):
    check_unusual_arrays(case, (9, 5, 3), kind, dtype, rng)


# --- ignore_index, special values -------------------------------------------------------------

@pytest.mark.parametrize("shape, layout", shapes_and_layouts([((3,), "strided"), ((4, 3), "transposed"),
                                                              ((2, 3, 4), "contiguous")]))
@pytest.mark.parametrize("name, opts", [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.2}),
                                        ("cross_entropy", {"weight": np.array([0.5, 2.0, 1.0])}),
                                        ("nll_loss", {}), ("nll_loss", {"weight": np.array([0.5, 2.0, 1.0])})],
                         ids=["ce", "ce-ls0.2", "ce-w", "nll", "nll-w"])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_all_targets_ignored(name, opts, ignore_index, shape, layout, dtype):
    """mean: nan loss and zero gradient; sum: 0; none: zeros (as PyTorch)."""
    x = relayout(np.linspace(-2, 2, int(np.prod(shape))).reshape(shape).astype(dtype), layout)
    t = np.full(loss_shape_of(shape), ignore_index, np.int64)
    opts = {k: v.astype(dtype) if k == "weight" else v for k, v in opts.items()} | {"ignore_index": ignore_index}
    for reduction in ("mean", "sum", "none"):
        go = np.full(t.shape, np.nan, dtype) if reduction == "none" else 1.0
        out = evaluate(name, x, t, opts, reduction, go)
        if reduction == "mean":
            assert np.isnan(out.loss) and np.isnan(out.fused_loss)
        else:
            assert (np.asarray(out.loss) == 0).all() and (np.asarray(out.fused_loss) == 0).all()
        for grad in (out.grad, out.grad1, out.fused_grad):
            assert (grad == 0).all(), f"{reduction}: gradient {grad}"


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_grad_output_at_ignored_positions_is_not_used(name, dtype):
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [3.0, 0.0, -3.0]], dtype)
    t = np.array([2, -100, 0])
    go = np.array([2.0, np.inf, -1.0], dtype)
    _, f_grad, _ = functions(name)
    g = f_grad(x, t, reduction="none", grad_output=go)
    assert (g[1] == 0).all()
    base = f_grad(x, t, reduction="none").astype(np.float64)
    assert_close(g[[0, 2]], base[[0, 2]] * go[[0, 2], None], dtype)


@pytest.mark.parametrize("ignore_index", [-100, 0, 3, -7, 2**40, -2**63, 2**63 - 1])
def test_ignore_index_values(ignore_index, dtype, rng):
    """Any int64 ignore_index works; only targets equal to it are ignored."""
    x = rng.normal(size=(6, 4)).astype(dtype)
    t = np.array([0, 1, 2, 3, 1, 0])
    if not 0 <= ignore_index < 4:
        t[[1, 4]] = ignore_index
    keep = t != ignore_index
    for name in ("cross_entropy", "nll_loss"):
        f = getattr(lossk, name)
        loss = f(x, t, ignore_index=ignore_index, reduction="none")
        assert (loss[~keep] == 0).all()
        expected = reference.compute(name, x, t, "none", ignore_index=ignore_index)
        assert_close(loss, expected.loss, dtype, expected.loss_mag)
        assert_close(f(x, t, ignore_index=ignore_index), np.mean(expected.loss[keep]), dtype,
                     np.mean(expected.loss_mag[keep]))


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_extreme_and_masked_logits(reduction, dtype, layout):
    """Logits of +-1e4 and classes masked with -inf: finite loss/gradient wherever the target
    class itself is not masked (log-sum-exp subtracts each row's maximum)."""
    x = np.array([[1e4, -1e4, 0.0, 5.0],
                  [-np.inf, 2.0, -np.inf, 1.0],
                  [-1e4, -1e4, -1e4, -1e4],
                  [1e4, 1e4 - 1, -np.inf, -np.inf],
                  [-np.inf, -np.inf, 3.0, -np.inf]], dtype)
    t = np.array([1, 3, 2, 0, 2])
    x = relayout(x, layout)
    for weight in (None, np.array([1.0, 0.5, 2.0, 1.5], dtype)):
        opts = {} if weight is None else {"weight": weight}
        out = evaluate("cross_entropy", x, t, opts, reduction, 1.0)
        expected = reference.cross_entropy(x, t, reduction=reduction, **opts)
        check_outputs(out, expected, expected, x, t.shape if reduction == "none" else None)
        assert np.isfinite(out.loss).all() and np.isfinite(out.grad).all()
        if reduction == "none":
            assert 2e4 * 0.99 * (1 if weight is None else 0.5) < out.loss[0]


def test_tutorial_example():
    loss = lossk.cross_entropy(np.array([[0.1, 0.2, 0.3]]), np.array([1]))
    assert abs(loss - 1.1019) < 5e-5
    exact = math.log(math.exp(0.1) + math.exp(0.2) + math.exp(0.3)) - 0.2
    assert abs(loss - exact) <= 4e-16 * exact


@pytest.mark.parametrize("case", [CASES["ce-w-ign_neg-ls0.1"], CASES["nll-w-ign_neg"]], ids=repr)
def test_every_integer_target_dtype_gives_identical_results(case, dtype, rng):
    shape = (5, 4, 3)
    x, t, opts = case.build(rng, shape, dtype)
    ref_results = None
    f, f_grad, f_with_grad = functions(case.name)
    for itype in INT_DTYPES:
        ti = t.copy()
        opts_i = dict(opts)
        if np.dtype(itype).kind == "u":                     # unsigned: ignore a large value instead of -1
            opts_i["ignore_index"] = int(min(np.iinfo(itype).max, 2**63 - 1))
            ti[ti == -1] = opts_i["ignore_index"]
        ti = ti.astype(itype)
        results = [np.asarray(f(x, ti, reduction=r, **opts_i)) for r in ("none", "mean", "sum")]
        results.append(f_grad(x, ti, **opts_i))
        results.extend(np.asarray(v) for v in f_with_grad(x, ti, reduction="sum", **opts_i))
        if ref_results is None:
            ref_results = results
        for a, b in zip(results, ref_results):
            assert_bitwise_equal(a, b, np.dtype(itype).name)


@pytest.mark.parametrize("case", [CASES["ce-w-ign_class-ls0.1"], CASES["ce_prob-w"], CASES["nll-ign_neg"]],
                         ids=repr)
def test_float64_weight_and_probabilities_with_float32_input(case, rng):
    """float32 input with float64 weight / probabilities: converted to the input's dtype."""
    x, t, opts = case.build(rng, (4, 3, 2), np.float64)
    x32 = x.astype(np.float32)
    loss = getattr(lossk, case.name)(x32, t, **opts)
    assert loss.dtype == np.float32
    t32 = t.astype(np.float32) if t.dtype.kind == "f" else t
    opts32 = {k: v.astype(np.float32) if k == "weight" else v for k, v in opts.items()}
    expected = getattr(lossk, case.name)(x32, t32, **opts32)
    assert_bitwise_equal(np.asarray(loss), np.asarray(expected))


# --- zero-size inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3), (2, 4, 0), (2, 4, 3, 0)], ids=shape_id)
@pytest.mark.parametrize("case, reduction", with_reductions([CASES["ce-w-ls0.1"], CASES["ce_prob"],
                                                             CASES["nll-w"], CASES["ce"]]))
def test_zero_size(case, reduction, shape, dtype, rng):
    """mean of nothing is nan, sum 0, none empty (as PyTorch)."""
    x, t, opts = case.build(rng, shape, dtype)
    go = np.empty(loss_shape_of(shape), dtype) if reduction == "none" else 1.0
    out = evaluate(case.name, x, t, opts, reduction, go)
    if reduction == "none":
        assert out.loss.shape == loss_shape_of(shape)
    elif reduction == "sum":
        assert out.loss == 0
    else:
        assert np.isnan(out.loss)
    expected = reference.compute(case.name, x, t, reduction, grad_output=go, **opts)
    check_outputs(out, expected, expected, x, loss_shape_of(shape) if reduction == "none" else None)


# --- thread-count invariance -----------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4096, 100), (30001, 10), (20001, 37), (8, 21, 64, 64), (5, 21, 63, 65)],
                         ids=shape_id)
@pytest.mark.parametrize("case", [CASES["ce"], CASES["ce-w-ign_neg-ls0.1"], CASES["ce_prob-w-ls0.25"],
                                  CASES["nll-w-ign_neg"]], ids=repr)
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bit_identical_for_any_thread_count(case, reduction, shape, dtype, restore_threads):
    check_thread_invariance(case, shape, reduction, dtype, seed=5)


@pytest.mark.parametrize("shape, case, dtype",
                         [(shape, case, np.float32) for shape in [(17000, 256), (7, 21, 160, 160)]
                          for case in [CASES["ce-w-ign_neg-ls0.1"], CASES["ce_prob-w"], CASES["nll-w-ign_class"]]]
                         + [((17000, 256), CASES["ce-w-ign_class"], np.float32),
                            ((9000, 250), CASES["ce"], np.float64),
                            ((420000, 10), CASES["ce-w-ign_class"], np.float32),
                            ((2100001, 2), CASES["ce-w-ign_class"], np.float32),
                            ((420001, 10), CASES["ce_prob-w"], np.float32),
                            ((2100001, 2), CASES["nll-w-ign_class"], np.float32),
                            ((210001, 10), CASES["ce-w-ign_neg-ls0.1"], np.float64),
                            ((200001, 21), CASES["ce-w-ign_class"], np.float32),
                            ((70001, 64), CASES["ce"], np.float32),
                            ((45001, 100), CASES["ce-w-ign_class"], np.float32),
                            ((100001, 33), CASES["ce-w-ign_neg"], np.float64),
                            ((2, 100, 210, 110), CASES["ce-w-ign_neg-ls0.1"], np.float32),
                            ((420, 10000), CASES["nll-w-ign_class"], np.float32),
                            ((2, 100, 210, 110), CASES["nll-w-ign_class"], np.float32),
                            ((4, 21, 160, 160), CASES["ce-w-ign_neg-ls0.1"], np.float64),
                            ((4, 21, 160, 160), CASES["nll-w-ign_class"], np.float64),
                            ((3, 3, 999, 1001), CASES["nll-w-ign_class"], np.float64),
                            ((16, 21, 99, 127), CASES["ce-w-ign_class"], np.float32),
                            ((8, 21, 99, 127), CASES["ce"], np.float64),
                            ((2, 1, 2047, 2049), CASES["nll"], np.float32)],
                         ids=lambda p: shape_id(p) if isinstance(p, tuple) else np.dtype(p).name if isinstance(p, type) else repr(p))
def test_large_outputs(case, shape, dtype):
    """Gradients past 16 MiB take the streaming path, staged in runs of positions that fit 32 KiB
    (rows of few classes: tiles of up to 256 rows, moved in and out by gathers or transposes; other rows of up to
    128 one-hot float32 classes: groups of 4 rows, batched by about 4 KiB, the odd rows at a block's
    end one at a time): same numbers as small slices (with 100 float32 classes, spatial runs are 80 positions; with
    10000, NLL stages one row at a time; float64 spatial runs of 21 classes are 192 positions, which
    do not divide the 25600 of a sample; NLL's planes of an odd number of positions have their runs
    moved to each plane's cache lines, by up to 7 or 15 positions, never past a sample's end; a
    spatial cross-entropy tile holds those positions back for the next tile of the sample)."""
    check_large_output_matches_chunks(case, shape, dtype, chunk=1000 if len(shape) == 2 else 1, seed=9)


@pytest.mark.parametrize("shape, dtype", [((5000, 1000), np.float32), ((9000, 250), np.float64)],
                         ids=lambda p: shape_id(p) if isinstance(p, tuple) else np.dtype(p).name)
def test_streamed_rows_get_the_same_bits(shape, dtype):
    """A large one-hot row's gradient is scaled as it is streamed out (lossk_stream_scaled, with
    masked first and last vectors where a row does not start on a vector boundary): the very
    numbers the row gets in a small call, which scales it in the kernels' own loop."""
    x, t, opts = CASES["ce-w-ign_class"].build(np.random.default_rng(4), shape, dtype)
    x = x * 3
    chunks = [lossk.cross_entropy_grad(x[i:i + 100], t[i:i + 100], reduction="sum", **opts)
              for i in range(0, shape[0], 100)]
    assert_bitwise_equal(lossk.cross_entropy_grad(x, t, reduction="sum", **opts), np.concatenate(chunks), "grad")
    buf = np.empty(x.size + 1, dtype)
    out = buf[1:].reshape(shape)  # rows start off the vector boundaries
    lossk.cross_entropy_with_grad(x, t, reduction="sum", out=out, **opts)
    assert_bitwise_equal(out, np.concatenate(chunks), "grad into out")


@pytest.mark.parametrize("C", [1, 2, 4, 5, 8, 9, 10, 15, 16, 17, 21, 32, 33, 48, 63, 64, 65, 100, 128, 129])
@pytest.mark.parametrize("case", [CASES["ce"], CASES["ce-w-ign_class"], CASES["ce-ls0.1"], CASES["ce_prob-w"]],
                         ids=repr)
def test_short_rows_get_what_they_get_alone(case, C, dtype, rng):
    """Rows of few classes go by tiles of up to 256 rows, other rows of up to 128 (float32) or 64
    (float64) one-hot classes four at a time through a path of their own (the last rows of a call
    one at a time, as a lone row does); each row's loss and gradient must be the very numbers that
    row gets in a call of its own."""
    x, t, opts = case.build(rng, (11, C), dtype)
    f, f_grad, _ = functions(case.name)
    loss = f(x, t, reduction="none", **opts)
    grad = f_grad(x, t, reduction="sum", **opts)
    for i in range(len(x)):
        assert_bitwise_equal(loss[i], f(x[i], t[i], reduction="none", **opts))
        assert_bitwise_equal(grad[i], f_grad(x[i], t[i], reduction="sum", **opts))


@pytest.mark.parametrize("shape", [(3, 20000), (2, 17000, 3), (4, 300, 70)], ids=shape_id)
@pytest.mark.parametrize("case", [CASES["ce-w-ign_neg-ls0.1"], CASES["ce_prob-w-ls0.25"], CASES["nll-w-ign_neg"],
                                  CASES["ce"]], ids=repr)
def test_many_classes(case, shape, dtype, rng):
    """More classes than lossk's scratch tiles hold (16384; and 300 x 64 for spatial tiles)."""
    check_transposed_against_reference(case, shape, dtype, rng)


@pytest.mark.parametrize("shape", [(2, 5, 700), (3, 4, 33, 21), (1, 3, 257)], ids=shape_id)
@pytest.mark.parametrize("case", [CASES["ce-w-ign_class-ls0.1"], CASES["ce-w-ign_neg"], CASES["ce_prob-w-ls0.25"],
                                  CASES["ce"]], ids=repr)
def test_spatial_tiles(case, shape, dtype, rng):
    """Spatial inputs go by tiles of up to 256 positions, with the target gathers and the
    per-position arithmetic in loops of their own: several tiles, a short last one."""
    check_transposed_against_reference(case, shape, dtype, rng)


def check_transposed_against_reference(case, shape, dtype, rng):
    x, t, opts = case.build(rng, shape, dtype)
    x = relayout(x, "transposed")
    for reduction in ("none", "mean"):
        go = np.asarray(rng.normal(size=shape[:1] + shape[2:]), dtype) if reduction == "none" else 2.0
        out = evaluate(case.name, x, t, opts, reduction, go)
        check_outputs(out, reference.compute(case.name, x, t, reduction, grad_output=go, **opts),
                      reference.compute(case.name, x, t, reduction, **opts), x,
                      shape[:1] + shape[2:] if reduction == "none" else None)


# --- argument checking -----------------------------------------------------------------------

X = np.linspace(-1, 1, 24).reshape(4, 3, 2)            # (N, C, d1)
TGT = np.array([[0, 1], [2, 2], [1, 0], [0, -100]])
BAD_INDEX = [
    # (id, target maker, ignore_index, value, position)
    ("negative", lambda: TGT, -1, -100, "3, 1"),
    ("minus-one", lambda: np.where(np.arange(8).reshape(4, 2) == 5, -1, TGT), -100, -1, "2, 1"),
    ("equal-C", lambda: np.where(np.arange(8).reshape(4, 2) == 2, 3, TGT), -100, 3, "1, 0"),
    ("large", lambda: np.where(np.arange(8).reshape(4, 2) == 7, 2**40, TGT), -100, 2**40, "3, 1"),
    ("int8-C", lambda: np.where(np.arange(8).reshape(4, 2) == 4, 3, np.maximum(TGT, 0)).astype(np.int8), -100, 3,
     "2, 0"),
    ("uint64-huge", lambda: np.where(np.arange(8).reshape(4, 2) == 3, np.uint64(2**64 - 1),
                                     np.maximum(TGT, 0).astype(np.uint64)), -100, 2**64 - 1, "1, 1"),
    ("uint64-2^63", lambda: np.where(np.arange(8).reshape(4, 2) == 6, np.uint64(2**63),
                                     np.maximum(TGT, 0).astype(np.uint64)), -100, 2**63, "3, 0"),
    ("int64-min", lambda: np.where(np.arange(8).reshape(4, 2) == 1, np.iinfo(np.int64).min, TGT), -100,
     np.iinfo(np.int64).min, "0, 1"),
]


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad_id, make, ignore_index, value, pos", BAD_INDEX, ids=[b[0] for b in BAD_INDEX])
@pytest.mark.parametrize("entry", ["loss", "grad", "with_grad"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_class_index_out_of_range(name, bad_id, make, ignore_index, value, pos, entry, dtype):
    """ValueError naming the bad value and its position; the caller's out buffer is unchanged."""
    x, t = X.astype(dtype), make()
    fn = getattr(lossk, name if entry == "loss" else f"{name}_{entry}")
    kw = {"ignore_index": ignore_index, "reduction": "none"}
    if entry != "loss":
        kw["out"] = np.full(x.shape, -7.0, dtype)
    with unmodified(x, t, kw.get("out")), pytest.raises(ValueError, match="target") as info:
        fn(x, t, **kw)
    message = str(info.value)
    assert str(value) in message, message
    assert f"[{pos}]" in message, message


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_bad_class_index_in_large_input_leaves_out_unchanged(name, restore_threads):
    """The bad index is near the end of a parallel-sized input: nothing may be written before."""
    x = np.random.default_rng(2).normal(size=(4096, 100))
    t = np.random.default_rng(3).integers(0, 100, 4096)
    t[4000] = 100
    for threads in (1, 2):
        lossk.set_num_threads(threads)
        out = np.full(x.shape, 3.5)
        with unmodified(x, t, out), pytest.raises(ValueError, match=r"target\[4000\] is 100"):
            getattr(lossk, name + "_with_grad")(x, t, out=out)


def test_unbatched_bad_index_names_the_value():
    with pytest.raises(ValueError, match="5"):
        lossk.cross_entropy(np.zeros(3), np.array(5))


def _bad_cases():
    """(id, loss, entry points, make_args() -> (input, target, options), exception, match)."""
    t = np.array([[0, 1], [2, 2], [1, 0], [0, 1]])
    ro = np.zeros(X.shape)
    ro.flags.writeable = False
    return [
        ("input-list", "cross_entropy", lambda: (X.tolist(), t, {}), TypeError, "input"),
        ("input-int", "cross_entropy", lambda: (X.astype(np.int32), t, {}), TypeError, "input"),
        ("input-complex", "nll_loss", lambda: (X.astype(complex), t, {}), TypeError, "input"),
        ("input-object", "nll_loss", lambda: (X.astype(object), t, {}), TypeError, "input"),
        ("input-bool", "cross_entropy", lambda: (X > 0, t, {}), TypeError, "input"),
        ("input-0d", "cross_entropy", lambda: (np.array(1.0), np.array(0), {}), ValueError, "input"),
        ("input-0d-nll", "nll_loss", lambda: (np.array(1.0), np.array(0), {}), ValueError, "input"),
        ("input-C0", "cross_entropy", lambda: (np.zeros((4, 0)), np.zeros(4, int), {}), ValueError, "input"),
        ("target-shape", "cross_entropy", lambda: (X, t.T, {}), ValueError, "target"),
        ("target-missing-spatial", "cross_entropy", lambda: (X, t[:, 0], {}), ValueError, "target"),
        ("target-extra-dim", "nll_loss", lambda: (X, t[..., None], {}), ValueError, "target"),
        ("target-unbatched-1d", "cross_entropy", lambda: (np.zeros(3), np.array([1]), {}), ValueError, "target"),
        ("target-bool", "cross_entropy", lambda: (X, t > 0, {}), TypeError, "target"),
        ("target-complex", "cross_entropy", lambda: (X, t.astype(complex), {}), TypeError, "target"),
        ("target-str", "cross_entropy", lambda: (X, t.astype(str), {}), TypeError, "target"),
        ("target-object", "cross_entropy", lambda: (X, t.astype(object), {}), TypeError, "target"),
        ("prob-target-shape", "cross_entropy", lambda: (X, np.full((4, 3), 1 / 3), {}), ValueError, "target"),
        ("prob-target-transposed-shape", "cross_entropy", lambda: (X, np.full((4, 2, 3), 1 / 3), {}), ValueError,
         "target"),
        ("nll-float-target", "nll_loss", lambda: (X, np.full(X.shape, 1 / 3), {}), TypeError, "target"),
        ("nll-float-index-target", "nll_loss", lambda: (X, t.astype(float), {}), TypeError, "target"),
        ("weight-short", "cross_entropy", lambda: (X, t, {"weight": np.ones(2)}), ValueError, "weight"),
        ("weight-long", "nll_loss", lambda: (X, t, {"weight": np.ones(4)}), ValueError, "weight"),
        ("weight-2d", "cross_entropy", lambda: (X, t, {"weight": np.ones((1, 3))}), ValueError, "weight"),
        ("weight-scalar", "nll_loss", lambda: (X, t, {"weight": np.float64(2.0)}), ValueError, "weight"),
        ("weight-int", "cross_entropy", lambda: (X, t, {"weight": np.ones(3, int)}), (TypeError, ValueError),
         "weight"),
        ("label_smoothing-negative", "cross_entropy", lambda: (X, t, {"label_smoothing": -0.1}), ValueError,
         "label_smoothing"),
        ("label_smoothing-above-1", "cross_entropy", lambda: (X, t, {"label_smoothing": 1.5}), ValueError,
         "label_smoothing"),
        ("label_smoothing-nan", "cross_entropy", lambda: (X, t, {"label_smoothing": float("nan")}), ValueError,
         "label_smoothing"),
        ("label_smoothing-prob-negative", "cross_entropy",
         lambda: (X, np.full(X.shape, 1 / 3), {"label_smoothing": -0.5}), ValueError, "label_smoothing"),
        ("ignore_index-float", "cross_entropy", lambda: (X, t, {"ignore_index": 1.0}), TypeError, "ignore_index"),
        ("ignore_index-huge", "nll_loss", lambda: (X, t, {"ignore_index": 2**64}), (ValueError, OverflowError),
         "ignore_index"),
        ("reduction-unknown", "cross_entropy", lambda: (X, t, {"reduction": "avg"}), ValueError, "reduction"),
        ("reduction-batchmean", "nll_loss", lambda: (X, t, {"reduction": "batchmean"}), ValueError, "reduction"),
        ("out-shape", "cross_entropy", lambda: (X, t, {"out": np.zeros((4, 6))}), ValueError, "out"),
        ("out-dtype", "cross_entropy", lambda: (X, t, {"out": np.zeros(X.shape, np.float32)}), TypeError, "out"),
        ("out-fortran", "nll_loss", lambda: (X, t, {"out": np.zeros(X.shape, order="F")}), ValueError, "out"),
        ("out-readonly", "cross_entropy", lambda: (X, t, {"out": ro}), ValueError, "out"),
        ("out-misaligned", "nll_loss", lambda: (X, t, {"out": unusual(np.zeros(X.shape), "misaligned")}), ValueError,
         "out"),
        ("out-is-input", "cross_entropy", lambda: (lambda x: (x, t, {"out": x}))(X.copy()), ValueError, "out"),
        ("grad_output-array-for-mean", "cross_entropy", lambda: (X, t, {"grad_output": np.ones((4, 2))}),
         ValueError, "grad_output"),
        ("grad_output-shape", "nll_loss", lambda: (X, t, {"grad_output": np.ones((4,)), "reduction": "none"}),
         ValueError, "grad_output"),
        ("grad_output-input-shape", "cross_entropy",
         lambda: (X, t, {"grad_output": np.ones(X.shape), "reduction": "none"}), ValueError, "grad_output"),
    ]


BAD = _bad_cases()


@pytest.mark.parametrize("case_id, name, make, exc, match", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments_are_rejected(case_id, name, make, exc, match):
    check_rejected(name, make, exc, match)


def test_label_smoothing_bounds_are_accepted(rng):
    x, t = rng.normal(size=(4, 3)), np.array([0, 1, 2, 1])
    for eps in (0.0, 1.0):
        assert np.isfinite(lossk.cross_entropy(x, t, label_smoothing=eps))
