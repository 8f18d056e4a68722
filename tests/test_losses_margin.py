"""multi_margin_loss, multilabel_margin_loss and multilabel_soft_margin_loss against the float64
NumPy reference in reference.py, finite differences, and lossk's own contract (types, out=,
grad_output, class-index checks, thread-count invariance, argument checking)."""
import numpy as np
import pytest

import lossk
import reference
from helpers import DTYPES, assert_bitwise_equal, assert_close, relayout, unmodified
from loss_specs import (MARGIN_CASES, MARGIN_SHAPES, check_finite_differences, check_large_output_matches_chunks,
                        check_out_buffer, check_outputs, check_rejected, check_thread_invariance,
                        check_unusual_arrays, evaluate, functions, margin_params, shape_id, unusual, with_reductions)

CASES = {c.id: c for c in MARGIN_CASES}
NAN, INF = float("nan"), float("inf")


def prepared(case, shape, dtype, layout, rng):
    x, t, opts = case.build(rng, shape, dtype)
    return relayout(x, layout), relayout(t, layout), {k: relayout(v, layout) for k, v in opts.items()}


# --- values and gradients vs the reference ---------------------------------------------------

@pytest.mark.parametrize("case, reduction, shape, layout", margin_params(MARGIN_CASES, MARGIN_SHAPES))
def test_matches_reference(case, reduction, shape, layout, dtype, rng):
    x, t, opts = prepared(case, shape, dtype, layout, rng)
    go = relayout(rng.normal(0, 2, shape[:-1]).astype(dtype), layout) if reduction == "none" else -1.75

    out = evaluate(case.name, x, t, opts, reduction, go)      # also checks nothing is modified

    expected = reference.compute(case.name, x, t, reduction, grad_output=go, **opts)
    expected1 = reference.compute(case.name, x, t, reduction, **opts)
    check_outputs(out, expected, expected1, x, shape[:-1] if reduction == "none" else None)


@pytest.mark.parametrize("case, reduction", with_reductions(MARGIN_CASES))
def test_fused_equals_separate_bitwise(case, reduction, dtype, rng):
    """NAME_with_grad is documented as (NAME(...), NAME_grad(...)) in one pass: the same numbers."""
    x, t, opts = case.build(rng, (7, 37), dtype)
    f, f_grad, f_with_grad = functions(case.name)
    loss, grad = f_with_grad(x, t, reduction=reduction, **opts)
    assert_bitwise_equal(np.asarray(loss), np.asarray(f(x, t, reduction=reduction, **opts)), "loss")
    assert_bitwise_equal(grad, f_grad(x, t, reduction=reduction, **opts), "grad")


@pytest.mark.parametrize("case, reduction", with_reductions(MARGIN_CASES))
def test_out_is_filled_and_returned(case, reduction, dtype, rng):
    check_out_buffer(case, (5, 9), (5,), reduction, dtype, rng)


@pytest.mark.parametrize("case, reduction, shape, layout",
                         margin_params(MARGIN_CASES, [((4,), "contiguous"), ((3, 5), "contiguous"),
                                                      ((2, 2, 3), "contiguous")]))
def test_gradient_matches_finite_differences(case, reduction, shape, layout, rng):
    x, t, opts = case.build(rng, shape, np.float64)
    g = rng.normal(size=shape[:-1]) if reduction == "none" else 1.0
    check_finite_differences(case.name, x, t, opts, reduction, g)


@pytest.mark.parametrize("kind", ["byteswapped", "misaligned", "broadcast"])
@pytest.mark.parametrize("case", [CASES["multi_margin-p2-margin-0.5-w"], CASES["multilabel_margin"],
                                  CASES["multilabel_soft_margin-w_full"]], ids=repr)
def test_unusual_arrays(case, kind, dtype, rng):
    check_unusual_arrays(case, (9, 5), kind, dtype, rng)


# --- PyTorch's conventions ---------------------------------------------------------------------

def test_multilabel_lists_end_at_the_first_minus_one(dtype):
    """A row's targets are its indices up to the first -1; what follows is not a target; a class
    listed twice counts twice (all as PyTorch)."""
    x = np.array([[0.1, 0.2, 0.4, 0.8], [0.5, 0.3, 1.0, -1.0]], dtype)
    t = np.array([[3, 0, -1, 1], [1, 1, -1, 0]])
    loss, grad = lossk.multilabel_margin_loss_with_grad(x, t, reduction="none")
    # row 0: classes 3 and 0 against 1 and 2; row 1: class 1, twice, against 0, 2 and 3
    expected = [((1 - 0.8 + 0.2) + (1 - 0.8 + 0.4) + (1 - 0.1 + 0.2) + (1 - 0.1 + 0.4)) / 4,
                2 * ((1 - 0.3 + 0.5) + (1 - 0.3 + 1.0)) / 4]
    assert_close(loss, np.array(expected), dtype)
    assert_close(grad, np.array([[-0.5, 0.5, 0.5, -0.5], [0.5, -1.0, 0.5, 0.0]]), dtype)
    full = np.array([[3, 0, 1, 2]])         # every class a target: nothing to compare with
    assert lossk.multilabel_margin_loss(x[:1], full) == 0


@pytest.mark.parametrize("name", ["multi_margin_loss", "multilabel_margin_loss"])
def test_margins_not_positive_add_nothing(name, dtype):
    """A term is added where its margin is > 0 only: exactly 0, and nan (PyTorch's `if (z > 0)`),
    add nothing to the loss or the gradient; an infinite score gives inf where it is on."""
    x = np.array([[NAN, 0.3, 1.0, -1.0], [1.0, 0.0, 0.5, 2.0], [INF, 0.0, 0.5, 0.0], [0.0, INF, 0.5, 0.0]], dtype)
    if name == "multi_margin_loss":
        t = np.array([1, 0, 1, 1])
    else:
        t = np.array([[1, -1, 0, 0], [0, -1, 0, 0], [1, -1, 0, 0], [1, -1, 0, 0]])
    f, f_grad, _ = functions(name)
    loss = f(x, t, reduction="none")
    grad = f_grad(x, t, reduction="none")
    expected = reference.compute(name, x, t, "none")
    assert_close(loss, expected.loss, dtype, expected.loss_mag)
    assert_close(grad, expected.grad, dtype, expected.grad_mag)
    assert grad[0, 0] == 0 and grad[1, 1] == 0            # nan margin; margin exactly 0 (z = 1 - 1 + 0)
    assert loss[2] == np.inf and loss[3] == 0             # an infinite other class; an infinite target


def test_multilabel_soft_margin_infinite_logits(dtype):
    """-(t log sigmoid(x) + (1 - t) log sigmoid(-x)) as PyTorch evaluates it at +-inf: inf where
    the target asks the other way, nan where a 0 target weight meets an infinite log."""
    x = np.array([[INF, -INF, INF, -INF, -INF, 3.0]], dtype)
    t = np.array([[1.0, 1.0, 0.5, 0.0, 0.5, 1.0]], dtype)
    terms = [lossk.multilabel_soft_margin_loss(x[:, i:i + 1], t[:, i:i + 1], reduction="none")[0] for i in range(6)]
    assert np.isnan(terms[0]) and terms[1] == np.inf and terms[2] == np.inf and np.isnan(terms[3])
    assert terms[4] == np.inf and np.isfinite(terms[5])
    grad = lossk.multilabel_soft_margin_loss_grad(x, t, reduction="sum")
    expected = reference.compute("multilabel_soft_margin_loss", x, t, "sum")
    assert_close(grad, expected.grad, dtype, expected.grad_mag)


@pytest.mark.parametrize("name", ["multi_margin_loss", "multilabel_margin_loss"])
@pytest.mark.parametrize("int_dtype", [np.int8, np.int32, np.uint16, np.uint64])
def test_every_integer_target_dtype_gives_identical_results(name, int_dtype, dtype, rng):
    case = CASES["multi_margin-p2-margin-0.5-w"] if name == "multi_margin_loss" else CASES["multilabel_margin"]
    x, t, opts = case.build(rng, (6, 5), dtype)
    if np.dtype(int_dtype).kind == "u" and (t < 0).any():
        t = np.where(t < 0, 0, t)       # no -1 in an unsigned dtype: every row lists all its indices
    f, f_grad, _ = functions(name)
    for entry in (f, f_grad):
        assert_bitwise_equal(np.asarray(entry(x, t.astype(int_dtype), reduction="none", **opts)),
                             np.asarray(entry(x, t.astype(np.int64), reduction="none", **opts)), entry.__name__)


# --- zero-size inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("case, reduction, shape, layout",
                         margin_params([CASES["multi_margin-margin0.3-w"], CASES["multilabel_margin"],
                                        CASES["multilabel_soft_margin-w_last"]],
                                       [((0, 4), "contiguous"), ((0, 3, 4), "contiguous"),
                                        ((2, 0), "contiguous"), ((2, 3, 0), "contiguous")]))
def test_zero_size(case, reduction, shape, layout, dtype, rng):
    """The mean over no rows is nan, the sum 0 (PyTorch returns an uninitialised value for the mean
    of the two hinge losses); rows of no classes (multilabel_soft_margin_loss only, as PyTorch's
    other two refuse them) have the loss 0 / 0."""
    if case.name != "multilabel_soft_margin_loss" and shape[-1] == 0:
        target = np.zeros(shape[:-1] if case.name == "multi_margin_loss" else shape, np.int64)
        with pytest.raises(ValueError, match="input: the class dimension is empty"):
            functions(case.name)[0](np.zeros(shape, dtype), target)
        return
    x, t, opts = case.build(rng, shape, dtype)
    go = np.ones(shape[:-1], dtype) if reduction == "none" else 1.0
    out = evaluate(case.name, x, t, opts, reduction, go)
    expected = reference.compute(case.name, x, t, reduction, grad_output=go, **opts)
    check_outputs(out, expected, expected, x, shape[:-1] if reduction == "none" else None)
    if reduction == "mean":
        assert np.isnan(out.loss)


# --- thread-count invariance --------------------------------------------------------------------

# each shape several blocks of rows (about one per 4096 elements); rows longer than a chunk (512)
@pytest.mark.parametrize("shape", [(1500, 100), (9001, 10), (20, 3000)], ids=shape_id)
@pytest.mark.parametrize("case", [CASES["multi_margin-p2-margin-0.5-w"], CASES["multilabel_margin"],
                                  CASES["multilabel_soft_margin-w_last"]], ids=repr)
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bit_identical_for_any_thread_count(case, reduction, shape, dtype, restore_threads):
    check_thread_invariance(case, shape, reduction, dtype, seed=5)


@pytest.mark.parametrize("case, dtype", [(CASES["multi_margin-p2-margin-0.5-w"], np.float32),
                                         (CASES["multilabel_margin"], np.float64),
                                         (CASES["multilabel_soft_margin-w_full"], np.float32)],
                         ids=lambda p: np.dtype(p).name if isinstance(p, type) else repr(p))
def test_large_outputs(case, dtype):
    """Gradients past 16 MiB are staged a row at a time and streamed out: the same numbers as small
    slices of the rows."""
    check_large_output_matches_chunks(case, (17000 if dtype == np.float32 else 9000, 257), dtype, chunk=1000, seed=9)


# --- class indices out of range ----------------------------------------------------------------

BAD_INDEX = [
    ("multi_margin_loss", lambda: (np.zeros((4, 3)), np.array([0, 2, 3, 1])), "target\\[2\\] is 3"),
    ("multi_margin_loss", lambda: (np.zeros((4, 3)), np.array([0, -1, 1, 1])), "target\\[1\\] is -1"),
    ("multi_margin_loss", lambda: (np.zeros(3), np.array(-100)), "target\\[\\] is -100"),
    ("multi_margin_loss", lambda: (np.zeros((2, 3)), np.array([0, 2**63], dtype=np.uint64)), "out of range"),
    ("multilabel_margin_loss", lambda: (np.zeros((2, 3)), np.array([[0, 3, -1], [0, -1, 0]])), "target\\[0, 1\\] is 3"),
    ("multilabel_margin_loss", lambda: (np.zeros((2, 3)), np.array([[0, -1, 7], [0, -1, 0]])), "target\\[0, 2\\] is 7"),
    ("multilabel_margin_loss", lambda: (np.zeros(3), np.array([1, -2, 0])), "target\\[1\\] is -2"),
]


@pytest.mark.parametrize("name, make, match", BAD_INDEX)
@pytest.mark.parametrize("entry", ["loss", "grad", "with_grad"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_class_index_out_of_range(name, make, match, entry, dtype):
    """Every index is checked (after a list's -1 too, as PyTorch), before anything is written."""
    x, t = make()
    x = x.astype(dtype)
    f, f_grad, f_with_grad = functions(name)
    out = np.full(x.shape, 777.0, dtype)
    with unmodified(x, t), pytest.raises(ValueError, match=match):
        if entry == "loss":
            f(x, t)
        elif entry == "grad":
            f_grad(x, t, out=out)
        else:
            f_with_grad(x, t, out=out)
    assert (out == 777.0).all()


def test_bad_index_in_a_large_input_leaves_out_unchanged(restore_threads):
    rng = np.random.default_rng(0)
    x, t, _ = CASES["multilabel_margin"].build(rng, (600, 300), np.float32)
    t[599, 299] = 300
    out = np.full(x.shape, 5.0, np.float32)
    for n in (1, 2):
        lossk.set_num_threads(n)
        with pytest.raises(ValueError, match="target\\[599, 299\\] is 300"):
            lossk.multilabel_margin_loss_grad(x, t, out=out)
        assert (out == 5.0).all()


# --- bad arguments -----------------------------------------------------------------------------

X = np.random.default_rng(3).normal(size=(4, 3))


def _bad_cases():
    """(id, loss, make_args() -> (input, target, options), exception, match)."""
    t = np.array([0, 2, 1, 1])
    lists = np.array([[0, -1, 0], [2, 1, -1], [1, 0, 2], [-1, 0, 0]])
    soft = np.full(X.shape, 0.5)
    ro = np.zeros(X.shape)
    ro.flags.writeable = False
    return [
        ("input-list", "multi_margin_loss", lambda: (X.tolist(), t, {}), TypeError, "input"),
        ("input-int", "multilabel_margin_loss", lambda: (X.astype(np.int32), lists, {}), TypeError, "input"),
        ("input-complex", "multilabel_soft_margin_loss", lambda: (X.astype(complex), soft, {}), TypeError, "input"),
        ("input-0d", "multi_margin_loss", lambda: (np.array(1.0), np.array(0), {}), ValueError, "input"),
        ("input-0d-soft", "multilabel_soft_margin_loss", lambda: (np.array(1.0), np.array(1.0), {}), ValueError,
         "input"),
        ("input-3d", "multi_margin_loss", lambda: (np.zeros((2, 3, 4)), np.zeros(2, int), {}), ValueError, "input"),
        ("input-3d-lists", "multilabel_margin_loss", lambda: (np.zeros((2, 3, 4)), np.zeros((2, 3, 4), int), {}),
         ValueError, "input"),
        ("input-C0", "multi_margin_loss", lambda: (np.zeros((4, 0)), np.zeros(4, int), {}), ValueError, "input"),
        ("input-C0-lists", "multilabel_margin_loss", lambda: (np.zeros((4, 0)), np.zeros((4, 0), int), {}),
         ValueError, "input"),
        ("target-shape", "multi_margin_loss", lambda: (X, t[:3], {}), ValueError, "target"),
        ("target-unbatched-1d", "multi_margin_loss", lambda: (np.zeros(3), np.array([1]), {}), ValueError, "target"),
        ("target-float", "multi_margin_loss", lambda: (X, t.astype(float), {}), TypeError, "target"),
        ("target-bool", "multilabel_margin_loss", lambda: (X, lists > 0, {}), TypeError, "target"),
        ("target-lists-shape", "multilabel_margin_loss", lambda: (X, lists[:, :2], {}), ValueError, "target"),
        ("target-lists-per-row", "multilabel_margin_loss", lambda: (X, t, {}), ValueError, "target"),
        ("target-soft-shape", "multilabel_soft_margin_loss", lambda: (X, soft[:, :2], {}), ValueError, "target"),
        ("target-soft-dtype", "multilabel_soft_margin_loss", lambda: (X, soft.astype(np.float32), {}), TypeError,
         "target"),
        ("target-soft-int", "multilabel_soft_margin_loss", lambda: (X, np.ones(X.shape, int), {}), TypeError,
         "target"),
        ("p-3", "multi_margin_loss", lambda: (X, t, {"p": 3}), ValueError, "p"),
        ("p-0", "multi_margin_loss", lambda: (X, t, {"p": 0}), ValueError, "p"),
        ("p-str", "multi_margin_loss", lambda: (X, t, {"p": "1"}), TypeError, "p"),
        ("p-bool", "multi_margin_loss", lambda: (X, t, {"p": True}), TypeError, "p"),
        ("margin-str", "multi_margin_loss", lambda: (X, t, {"margin": "1"}), TypeError, "margin"),
        ("weight-short", "multi_margin_loss", lambda: (X, t, {"weight": np.ones(2)}), ValueError, "weight"),
        ("weight-2d", "multi_margin_loss", lambda: (X, t, {"weight": np.ones((1, 3))}), ValueError, "weight"),
        ("weight-soft-shape", "multilabel_soft_margin_loss", lambda: (X, soft, {"weight": np.ones(4)}), ValueError,
         "weight"),
        ("weight-soft-larger", "multilabel_soft_margin_loss", lambda: (X, soft, {"weight": np.ones((2, 4, 3))}),
         ValueError, "weight"),
        ("reduction-unknown", "multilabel_margin_loss", lambda: (X, lists, {"reduction": "avg"}), ValueError,
         "reduction"),
        ("out-shape", "multi_margin_loss", lambda: (X, t, {"out": np.zeros((4, 6))}), ValueError, "out"),
        ("out-dtype", "multilabel_soft_margin_loss", lambda: (X, soft, {"out": np.zeros(X.shape, np.float32)}),
         TypeError, "out"),
        ("out-readonly", "multilabel_margin_loss", lambda: (X, lists, {"out": ro}), ValueError, "out"),
        ("out-misaligned", "multi_margin_loss", lambda: (X, t, {"out": unusual(np.zeros(X.shape), "misaligned")}),
         ValueError, "out"),
        ("out-is-input", "multilabel_soft_margin_loss", lambda: (lambda x: (x, soft, {"out": x}))(X.copy()),
         ValueError, "out"),
        ("grad_output-array-for-mean", "multi_margin_loss", lambda: (X, t, {"grad_output": np.ones(4)}),
         ValueError, "grad_output"),
        ("grad_output-shape", "multilabel_margin_loss",
         lambda: (X, lists, {"grad_output": np.ones(X.shape), "reduction": "none"}), ValueError, "grad_output"),
    ]


BAD = _bad_cases()


@pytest.mark.parametrize("case_id, name, make, exc, match", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments_are_rejected(case_id, name, make, exc, match):
    check_rejected(name, make, exc, match)
