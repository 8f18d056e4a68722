"""Property-based tests (hypothesis): every loss case of tests/loss_specs.py against its float64 NumPy
twin (tests/reference.py) over random shapes, memory layouts (random steps and reversed axes, in
input, target, weights and grad_output alike), dtypes, reductions and seeds; inputs must come back
unmodified, and the fused and separate paths must agree. The parametrised tests cover the listed
shapes and layouts exhaustively; these search the space around them."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
from helpers import DTYPES
from loss_specs import (CLASSIFICATION_CASES, ELEMENTWISE_CASES, MARGIN_CASES, MULTI_INPUT_CASES, check_outputs, evaluate,
                        functions, multi_takes, takes_rank)
from helpers import assert_close, unmodified
from lossk._losses import BY_NAME, CLASSIFICATION

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def layouts(draw, ndim):
    """(steps, flips): a view's step along each axis of its buffer, and the axes it runs backwards."""
    steps = draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    flips = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    return tuple(steps), tuple(flips)


def in_layout(a, layout):
    """A view with `a`'s values laid out as `layout` says, the buffer around it filled with nan (or
    99), so that a kernel reading past the view's elements would show."""
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    steps, flips = layout
    steps, flips = steps[-a.ndim:], flips[-a.ndim:]     # a weight broadcast over leading axes
    buf = np.full(tuple(n * s for n, s in zip(a.shape, steps)), np.nan if a.dtype.kind == "f" else 99, a.dtype)
    view = buf[tuple(slice(None, None, s) for s in steps)]
    view = view[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    view[...] = a
    np.testing.assert_array_equal(view, a)
    return view


def run_case(case, shape, dtype, layout, reduction, seed, loss_shape, grad_output_shape):
    rng = np.random.default_rng(seed)
    x, t, opts = case.build(rng, shape, dtype)
    if reduction == "none":
        go = rng.normal(0, 2, grad_output_shape).astype(dtype)
        if BY_NAME[case.name].family == CLASSIFICATION and t.dtype.kind in "iu":  # not read where ignored, as PyTorch
            go = np.where(t == case.options.get("ignore_index", -100), np.nan, go).astype(dtype)
        go = in_layout(go, layout)
    else:
        go = float(rng.normal(0, 2))
    x, t = in_layout(x, layout), in_layout(t, layout)
    opts = {k: in_layout(v, layout) for k, v in opts.items()}

    out = evaluate(case.name, x, t, opts, reduction, go)           # also checks nothing is modified

    expected = reference.compute(case.name, x, t, reduction, grad_output=go, **opts)
    expected1 = reference.compute(case.name, x, t, reduction, **opts)
    check_outputs(out, expected, expected1, x, loss_shape if reduction == "none" else None)


@SETTINGS
@given(data=st.data(), case=st.sampled_from(ELEMENTWISE_CASES),
       shape=st.lists(st.integers(0, 7), min_size=1, max_size=4).map(tuple),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_elementwise_matches_twin(data, case, shape, dtype, seed):
    layout = data.draw(layouts(len(shape)), "layout")
    reduction = data.draw(st.sampled_from(case.reductions()), "reduction")
    run_case(case, shape, dtype, layout, reduction, seed, shape, shape)


@st.composite
def class_shapes(draw):
    """(C,), (N, C) or (N, C, d1, ..., dK) with K <= 2; C >= 1."""
    c = draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["unbatched", "rows", "spatial"]))
    if kind == "unbatched":
        return (c,)
    n = draw(st.integers(0, 9))
    if kind == "rows":
        return (n, c)
    return (n, c) + tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=2)))


@SETTINGS
@given(data=st.data(), case=st.sampled_from(CLASSIFICATION_CASES), shape=class_shapes(),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_classification_matches_twin(data, case, shape, dtype, seed):
    layout = data.draw(layouts(len(shape)), "layout")
    reduction = data.draw(st.sampled_from(case.reductions()), "reduction")
    loss_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    run_case(case, shape, dtype, layout, reduction, seed, loss_shape, loss_shape)


@st.composite
def margin_cases_and_shapes(draw):
    """A margin case and a shape it takes: (C,) or (N, C), and for multilabel_soft_margin_loss up to
    two more leading axes; C >= 1."""
    case = draw(st.sampled_from(MARGIN_CASES))
    c = draw(st.integers(1, 12))
    lead = tuple(draw(st.lists(st.integers(0, 7), min_size=0, max_size=3)))
    while not takes_rank(case, len(lead) + 1):
        lead = lead[1:]
    return case, lead + (c,)


@SETTINGS
@given(data=st.data(), case_shape=margin_cases_and_shapes(), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1))
def test_margin_matches_twin(data, case_shape, dtype, seed):
    case, shape = case_shape
    layout = data.draw(layouts(len(shape)), "layout")
    reduction = data.draw(st.sampled_from(case.reductions()), "reduction")
    run_case(case, shape, dtype, layout, reduction, seed, shape[:-1], shape[:-1])


@st.composite
def multi_input_cases_and_shapes(draw):
    """A multi-input case and a shape it takes (0 to 4 axes of 0 to 9; the last >= 1 for rows)."""
    case = draw(st.sampled_from(MULTI_INPUT_CASES))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=4)))
    while not multi_takes(case, shape):
        shape = shape[1:] if len(shape) > 2 else shape + (draw(st.integers(1, 9)),)
    return case, shape


@SETTINGS
@given(data=st.data(), case_shape=multi_input_cases_and_shapes(), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1))
def test_multi_input_matches_twin(data, case_shape, dtype, seed):
    """Every array in its own random layout; loss and each gradient against the twin, the fused
    call against the separate ones, nothing modified."""
    case, shape = case_shape
    reduction = data.draw(st.sampled_from(case.reductions()), "reduction")
    rng = np.random.default_rng(seed)
    arrays, opts = case.build(rng, shape, dtype)
    arrays = tuple(in_layout(a, data.draw(layouts(np.ndim(a)), f"layout {k}")) for k, a in enumerate(arrays))
    loss_shape = shape if case.layout in ("pair", "gaussian") else shape[:-1]
    go = rng.normal(0, 2, loss_shape).astype(dtype) if reduction == "none" else 1.5
    f, f_grad, f_with_grad = functions(case.name)
    with unmodified(*arrays, go):
        loss = f(*arrays, reduction=reduction, **opts)
        grads = f_grad(*arrays, reduction=reduction, grad_output=go, **opts)
        fused_loss, fused = f_with_grad(*arrays, reduction=reduction, **opts)
    want = reference.multi_input(case.name, arrays, reduction, grad_output=go, **opts)
    want1 = reference.multi_input(case.name, arrays, reduction, **opts)
    assert_close(loss, want.loss, dtype, want.loss_mag, "loss")
    assert_close(fused_loss, loss, dtype, want.loss_mag, "fused loss")
    grads1 = f_grad(*arrays, reduction=reduction, **opts)
    for g, g1, gf, w, m, m1 in zip(grads, grads1, fused, want.grad, want.grad_mag, want1.grad_mag):
        assert_close(g, w, dtype, m, "grad")
        assert_close(gf, g1.astype(np.float64), dtype, m1, "fused grad vs NAME_grad")
