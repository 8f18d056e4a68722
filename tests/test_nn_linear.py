"""lossk.nn.Linear, ReLU and Flatten: gradients, the two summation orders against a float64
reference for any thread count, signed zeros."""
import numpy as np
import pytest

import lossk
import lossk.nn as nn
from reference_layers import check_layer_grads, f64


def test_linear_relu_flatten_gradients():
    rng = np.random.default_rng(0)
    lin = nn.Linear(7, 5, dtype=f64, rng=rng)
    x = rng.standard_normal((4, 7))
    y, G, dx = check_layer_grads(lin, x)
    np.testing.assert_allclose(y, x @ lin.weight.data.T + lin.bias.data, rtol=1e-12)
    np.testing.assert_allclose(dx, G @ lin.weight.data, rtol=1e-12)
    check_layer_grads(nn.Linear(3, 2, bias=False, dtype=f64, rng=rng), rng.standard_normal((2, 4, 3)))
    check_layer_grads(nn.ReLU(), rng.standard_normal((3, 4)) + 0.01)
    flat = nn.Flatten()
    x = rng.standard_normal((2, 3, 4, 5))
    assert flat(x).shape == (2, 60)
    np.testing.assert_array_equal(flat.backward(np.arange(120.0).reshape(2, 60)), np.arange(120.0).reshape(x.shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,i,o", [(1, 300, 37), (5, 600, 33), (70, 280, 120), (100, 84, 10), (300, 20, 300),
                                   (64, 400, 120), (64, 120, 84)])
def test_linear_kernels_match_reference_for_any_thread_count(dtype, n, i, o):
    # the forward pass takes dot products along I where I >= 4 N, else the transposed weight;
    # threads split rows, or columns where there are 4 times as many; widths that are not whole
    # vectors go through a zero-padded panel, in chunks of 256 along the sum (300) and of 48 rows (100)
    rng = np.random.default_rng(n * i + o)
    x, w = rng.standard_normal((n, i)).astype(dtype), rng.standard_normal((o, i)).astype(dtype)
    b, g = rng.standard_normal(o).astype(dtype), rng.standard_normal((n, o)).astype(dtype)
    C = lossk._core
    got = []
    before = lossk.get_num_threads()
    try:
        for nt in (1, 2, 3):
            lossk.set_num_threads(nt)
            dw, db = np.full_like(w, 0.5), np.full_like(b, 0.25)
            dx = C.linear_backward(g, x, w, dw, db, True)
            got.append((C.linear_forward(x, w, b), dx, dw, db))
    finally:
        lossk.set_num_threads(before)
    assert all(a.tobytes() == z.tobytes() for r in got[1:] for a, z in zip(r, got[0]))
    x64, w64, g64 = x.astype(f64), w.astype(f64), g.astype(f64)
    want = (x64 @ w64.T + b, g64 @ w64, 0.5 + g64.T @ x64, 0.25 + g64.sum(0))
    tol = 1e-13 if dtype == np.float64 else 3e-6
    for name, a, r in zip(("output", "grad_input", "grad_weight", "grad_bias"), got[0], want):
        assert a.dtype == dtype and a.shape == r.shape, name
        scale = np.sqrt(i if name == "output" else max(n, o)) * np.abs(r).max()
        assert np.abs(a - r).max() <= tol * scale, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5])
def test_linear_keeps_negative_zero(dtype, n):
    # products that underflow to -0 plus a bias of -0 give -0 in both summation orders (dot
    # products for n = 1, a sequential sum for n = 5): a part-vector's padding must add -0, not +0
    tiny = np.finfo(dtype).tiny
    x, w = np.full((n, 17), -tiny, dtype), np.full((3, 17), tiny, dtype)
    y = lossk._core.linear_forward(x, w, np.full(3, -0.0, dtype))
    assert (y == 0).all() and np.signbit(y).all()
