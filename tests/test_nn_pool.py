"""lossk.nn.MaxPool2d: against a slow NumPy reference, ties and nan as PyTorch, argmax-free
inference, and argmax indices checked against their windows."""
import numpy as np
import pytest

import lossk
import lossk.nn as nn
from reference_layers import check_layer_grads, ref_max_pool2d, ref_max_pool2d_backward


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_max_pool2d(kernel, stride):
    rng = np.random.default_rng(0)
    pool = nn.MaxPool2d(kernel, stride)
    x = rng.standard_normal((2, 3, 7, 8))
    y, G, dx = check_layer_grads(pool, x)
    np.testing.assert_array_equal(y, ref_max_pool2d(x, pool.kernel_size, pool.stride)[0])
    np.testing.assert_allclose(dx, ref_max_pool2d_backward(x, G, pool.kernel_size, pool.stride), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h,w", [(6, 44), (6, 46), (7, 9), (4, 8), (16, 16)])
def test_max_pool2d_2x2_ties_and_nan(dtype, h, w):
    """The vectorised 2x2 path, with ties and nans in the windows: rows of whole vectors and a tail
    (44, 46 wide), rows shorter than a vector (8, 9, 16 wide, 9 with an unused last row and
    column), and rows near a plane's end, whose loads go through a zero-padded copy."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, 3, h, w)).astype(dtype)
    p, q = h // 2, w // 2
    x[0, 0, 1, 1] = x[1, 2, 2 * p - 1, 2 * q - 1] = np.nan
    x[1, 1, -1, -1] = np.inf  # outside every window when h or w is odd
    before = x.copy()
    y, idx = lossk._core.max_pool2d_forward(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(x, before)
    ref, _ = ref_max_pool2d(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(y, ref)
    win = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(2, 3))[:, :, ::2, ::2].reshape(2, 3, p, q, 4)
    first = np.argmax((win == y[..., None]) | np.isnan(win), axis=-1)
    hh = 2 * np.arange(p)[:, None] + first // 2
    ww = 2 * np.arange(q)[None, :] + first % 2
    np.testing.assert_array_equal(idx, hh * w + ww)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_without_argmax_gives_the_same_output(dtype):
    """argmax=False (what no_grad inference uses) skips the indices, not the maxima: max_pool2d on
    2x2 and other windows, planes with row tails and odd sizes, and the pooled convolution by each
    algorithm, with nans and ties, give the bits of the argmax=True path."""
    C = lossk._core
    rng = np.random.default_rng(0)
    for shape, kernel, stride in [((2, 3, 6, 44), (2, 2), (2, 2)), ((2, 3, 7, 9), (2, 2), (2, 2)),
                                  ((2, 3, 7, 8), (3, 3), (2, 2)), ((1, 2, 5, 6), (2, 3), (1, 2))]:
        x = rng.integers(0, 3, shape).astype(dtype)
        x[0, 0, 1, 1] = np.nan
        before = x.copy()
        y, idx = C.max_pool2d_forward(x, kernel, stride)
        y_only, none = C.max_pool2d_forward(x, kernel, stride, None, False)
        assert none is None
        np.testing.assert_array_equal(y_only, y)
        np.testing.assert_array_equal(x, before)
    for c, k, size, r, pad, algo in [(3, 8, 32, 5, 2, "direct"), (6, 16, 14, 5, 0, "direct"),
                                     (8, 8, 8, 5, 2, "winograd"), (16, 16, 12, 3, 1, "winograd")]:
        x = rng.standard_normal((3, c, size, size)).astype(dtype)
        x[1, 0, 4, 4] = np.nan
        w = rng.standard_normal((k, c, r, r)).astype(dtype)
        b = rng.standard_normal(k).astype(dtype)
        y, idx = C.conv2d_forward(x, w, b, (1, 1), (pad, pad), algo, True)
        y_only, none = C.conv2d_forward(x, w, b, (1, 1), (pad, pad), algo, True, None, False)
        assert none is None
        np.testing.assert_array_equal(y_only, y)
    with pytest.raises(ValueError, match="indices: expected None with argmax=False"):
        C.max_pool2d_forward(x, (2, 2), (2, 2), np.empty((3, c, size // 2, size // 2), np.int64), False)
    with pytest.raises(ValueError, match="indices: expected None with argmax=False"):
        C.conv2d_forward(x, w, b, (1, 1), (pad, pad), algo, True, idx, False)


def test_max_pool2d_ties_and_nan_follow_pytorch():
    x = np.array([[[[1.0, 1.0], [0.0, 1.0]]]], np.float32)
    pool = nn.MaxPool2d(2)
    assert pool(x)[0, 0, 0, 0] == 1.0
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1), np.float32))[0, 0], [[1, 0], [0, 0]])
    x[0, 0, 1, 0] = np.nan
    assert np.isnan(pool(x)[0, 0, 0, 0])


def test_argmax_argument_is_checked():
    C = lossk._core
    x = np.zeros((1, 2, 4, 4), np.float32)
    w = np.zeros((2, 2, 3, 3), np.float32)
    for call in (lambda v: C.conv2d_forward(x, w, None, (1, 1), (1, 1), "auto", True, None, v),
                 lambda v: C.max_pool2d_forward(x, (2, 2), (2, 2), None, v)):
        for bad in (None, 0, "no"):
            with pytest.raises(TypeError, match="argmax: expected a bool"):
                call(bad)
    with pytest.raises(ValueError, match="argmax: False is for a pooled output"):
        C.conv2d_forward(x, w, None, (1, 1), (1, 1), "auto", False, None, False)


def test_max_pool2d_bad_indices_name_the_argument_and_range():
    y, idx = lossk._core.max_pool2d_forward(np.zeros((1, 2, 4, 4)), (2, 2), (2, 2))
    for bad in (16, -1):
        idx[0, 1, 1, 0] = bad
        with pytest.raises(ValueError, match=r"indices: expected argmax positions in the input plane, in \[0, 16\)"):
            lossk._core.max_pool2d_backward(y, idx, (1, 2, 4, 4), (2, 2), (2, 2), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,stride", [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 3), (1, 2))])
def test_max_pool2d_index_outside_its_window_is_refused(dtype, kernel, stride):
    """An index inside the input plane but outside its own output's window would send that output's
    gradient to a pixel it never read: refused as one outside the plane is. Any position inside the
    window is accepted."""
    (kh, kw), (sh, sw) = kernel, stride
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 8)).astype(dtype)
    h, w = x.shape[2:]
    y, idx = lossk._core.max_pool2d_forward(x, kernel, stride)
    G = rng.standard_normal(y.shape).astype(dtype)
    dx = lossk._core.max_pool2d_backward(G, idx, x.shape, kernel, stride, dtype)
    np.testing.assert_allclose(dx, ref_max_pool2d_backward(x, G, kernel, stride), rtol=1e-6)
    p, q = y.shape[2:]
    for oh, ow in [(0, 0), (p - 1, q - 1), (1, q - 1), (p - 1, 0)]:
        h0, w0 = oh * sh, ow * sw
        # next to each side of the window, and one before / past a row of it (wrapping at the plane's edges)
        near = [(h0 - 1) * w + w0, (h0 + kh) * w + w0, h0 * w + w0 - 1, h0 * w + w0 + kw,
                (h0 + kh - 1) * w + w0 + kw, (h0 + kh - 1) * w + w0 - 1]
        outside = [at for at in near if 0 <= at < h * w
                   and not (h0 <= at // w < h0 + kh and w0 <= at % w < w0 + kw)]
        assert outside
        for at in outside:
            bad = idx.copy()
            bad[1, 2, oh, ow] = at
            with pytest.raises(ValueError, match=r"indices: expected argmax positions in the input plane, in "
                                                 rf"\[0, {h * w}\), each inside the pooling window of its own output"):
                lossk._core.max_pool2d_backward(G, bad, x.shape, kernel, stride, dtype)
        corner = (h0 + kh - 1) * w + w0 + kw - 1  # not the argmax, but inside the window
        moved = idx.copy()
        moved[1, 2, oh, ow] = corner
        expect = dx.copy()
        expect.reshape(2, 3, -1)[1, 2, idx[1, 2, oh, ow]] -= G[1, 2, oh, ow]
        expect.reshape(2, 3, -1)[1, 2, corner] += G[1, 2, oh, ow]
        np.testing.assert_allclose(lossk._core.max_pool2d_backward(G, moved, x.shape, kernel, stride, dtype), expect,
                                   rtol=1e-6, atol=1e-6)


def test_max_pool2d_backward_binding_checks_grad_dtype():
    y, idx = lossk._core.max_pool2d_forward(np.zeros((1, 2, 4, 4), np.float32), (2, 2), (2, 2))
    with pytest.raises(TypeError, match="grad_output: expected dtype float32, got float64"):
        lossk._core.max_pool2d_backward(y.astype(np.float64), idx, (1, 2, 4, 4), (2, 2), (2, 2), np.float32)
