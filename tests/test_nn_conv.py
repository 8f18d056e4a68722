"""lossk.nn.Conv2d: gradients against finite differences and a slow NumPy reference for every
algorithm, fused conv + pool, inf/nan placement, weight-gradient blocking, bad geometry."""
import numpy as np
import pytest

import lossk
import lossk.nn as nn
from reference_layers import check_layer_grads, f64, ref_conv2d, ref_conv2d_backward


CONV_CASES = [
    # (n, c, k, h, w, kernel, stride, padding, algo)
    (2, 2, 3, 6, 5, 3, 1, 1, "direct"),
    (2, 3, 2, 7, 7, (3, 2), (2, 1), (1, 0), "direct"),
    (2, 2, 3, 7, 8, 3, (1, 2), (1, 2), "direct"),  # a column stride, and padding wider than it
    (1, 2, 3, 6, 6, 5, 1, 2, "direct"),
    (1, 2, 3, 4, 3, 3, 1, (3, 4), "direct"),  # padding wider than the kernel: rows of 9 outputs from 3 pixels
    (1, 2, 3, 5, 8, 3, 1, 1, "direct"),  # rows of 8 outputs: whole vectors, the weight gradient without im2col
    # rows of 5 outputs, 8 channels in and out: vectors along the channels, in every pass and instruction set
    (2, 8, 8, 5, 5, 3, 1, 1, "direct"),
    (1, 3, 10, 3, 3, 3, 1, 1, "direct"),  # 10 output channels: the last vector partly padding
    (2, 3, 2, 6, 6, 5, 1, 2, "winograd"),
    (1, 2, 3, 7, 5, 5, 1, (0, 3), "winograd"),
    (1, 2, 2, 5, 5, 5, 1, 4, "winograd"),
    (2, 3, 2, 6, 6, 3, 1, 1, "winograd"),  # F(6x6, 3x3): one tile per image
    (1, 2, 3, 7, 8, 3, 1, (0, 2), "winograd"),  # tiles past the output, padding up to the kernel's size - 1
    (2, 3, 2, 8, 8, 3, 1, 1, "winograd"),  # F(4x4, 3x3): 2 x 2 tiles
    (1, 2, 2, 13, 5, 3, 1, 2, "winograd"),  # F(4x4, 3x3) forward and weight gradient, F(6x6, 3x3) input gradient
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradients(case):
    n, c, k, h, w, kernel, stride, padding, algo = case
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(c, k, kernel, stride=stride, padding=padding, dtype=f64, rng=rng, algo=algo)
    x = rng.standard_normal((n, c, h, w))
    y, G, dx = check_layer_grads(conv, x)
    # and the slow reference
    np.testing.assert_allclose(y, ref_conv2d(x, conv.weight.data, conv.bias.data, conv.stride, conv.padding),
                               rtol=1e-10, atol=1e-12)
    rdx, rdw, rdb = ref_conv2d_backward(x, conv.weight.data, G, conv.stride, conv.padding)
    conv.zero_grad()
    conv(x)
    np.testing.assert_allclose(conv.backward(G), rdx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, rdw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, rdb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("c,k,h", [(3, 32, 12), (3, 8, 16), (32, 32, 8), (32, 64, 4), (9, 17, 6)])
def test_conv2d_float32_paths_agree_with_reference(c, k, h, kernel):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, c, h, h)).astype(np.float32)
    G = rng.standard_normal((3, k, h, h)).astype(np.float32)
    ref = None
    pad = kernel // 2
    for algo in ("direct", "winograd"):
        conv = nn.Conv2d(c, k, kernel, padding=pad, rng=3, algo=algo)
        w, b = conv.weight.data.astype(f64), conv.bias.data.astype(f64)
        if ref is None:
            ref = (ref_conv2d(x.astype(f64), w, b, (1, 1), (pad, pad)),) + ref_conv2d_backward(
                x.astype(f64), w, G.astype(f64), (1, 1), (pad, pad))
        got = (conv(x), conv.backward(G), conv.weight.grad, conv.bias.grad)
        for g, r in zip(got, ref):
            assert g.dtype == np.float32
            # Winograd F(4x4, 5x5) and F(6x6, 3x3) keep float32 accuracy: within a few 1e-6 of the largest value
            assert np.abs(g - r).max() <= 2e-5 * max(1.0, np.abs(r).max()), algo


@pytest.mark.parametrize("c,k,size,stride,algo,dtype,kernel", [
    (16, 8, 8, 1, "auto", np.float32, 5),      # Winograd, pooled in the output transform
    (3, 32, 32, 1, "auto", np.float32, 5),     # direct, pooled per image (vectorised 2x2 pool)
    (3, 4, 20, 2, "direct", np.float64, 5),
    (2, 3, 10, 1, "direct", np.float32, 5),    # rows of 10 outputs: computed in whole vectors, then packed
    (2, 3, 10, 1, "direct", np.float64, 5),
    (8, 8, 6, 1, "direct", np.float32, 5),     # rows of 6 outputs: vectors along the 8 channels, then transposed
    (8, 8, 6, 1, "direct", np.float64, 5),
    (4, 5, 12, 1, "winograd", np.float64, 5),
    (16, 16, 12, 1, "auto", np.float32, 3),   # Winograd F(6x6, 3x3), pooled in the output transform (3x3 cells a tile)
    (4, 5, 10, 1, "winograd", np.float64, 3),  # F(6x6, 3x3), 6x6 tiles past the 10x10 output
    (16, 16, 8, 1, "auto", np.float32, 3),     # Winograd F(4x4, 3x3)
    (4, 5, 2, 1, "winograd", np.float64, 3),   # F(4x4, 3x3), a 4x4 tile past the 2x2 output
])
def test_fused_conv_pool_matches_separate_layers(c, k, size, stride, algo, dtype, kernel, monkeypatch):
    rng = np.random.default_rng(0)
    conv, pool = nn.Conv2d(c, k, kernel, stride=stride, padding=kernel // 2, rng=1, algo=algo, dtype=dtype), nn.MaxPool2d(2)
    x = rng.standard_normal((3, c, size, size)).astype(dtype)
    fused = nn.Sequential(conv, pool)
    with monkeypatch.context() as m:
        m.setattr(nn._core, "max_pool2d_forward", None)  # the fused kernel must not need it
        y = fused(x)
    p = (size - 1) // stride + 1
    assert y.shape == (3, k, p // 2, p // 2)
    G = rng.standard_normal(y.shape).astype(dtype)
    dx = fused.backward(G)
    dw = conv.weight.grad.copy()
    conv.zero_grad()
    y2 = pool(conv(x))
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(dx, conv.backward(pool.backward(G)))
    np.testing.assert_array_equal(dw, conv.weight.grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,c,size", [(5, 3, 16), (3, 16, 8)])
def test_conv_relu_pool_runs_fused_and_matches_separate_layers(dtype, kernel, c, size, monkeypatch):
    """Conv2d, ReLU, MaxPool2d(2) (PyTorch's tutorial order) as one kernel with the ReLU after the
    pooling: the same outputs and gradients, bit for bit, as the three layers one by one, also
    where a window holds no positive value; and the same nans from a nan input."""
    rng = np.random.default_rng(0)
    conv, relu, pool = (nn.Conv2d(c, 8, kernel, padding=kernel // 2, rng=1, dtype=dtype), nn.ReLU(),
                        nn.MaxPool2d(2))
    x = rng.standard_normal((3, c, size, size)).astype(dtype)
    x[0, :, :4, :4] = -1e3  # windows whose every value is below 0
    net = nn.Sequential(conv, relu, pool, nn.Flatten(), nn.Linear(8 * (size // 2) ** 2, 4, rng=2, dtype=dtype))

    def separately(x):
        for layer in net:
            x = layer(x)
        return x

    with monkeypatch.context() as m:
        m.setattr(nn._core, "max_pool2d_forward", None)  # the fused kernel must not need it
        y = net(x)
    G = rng.standard_normal(y.shape).astype(dtype)
    dx = net.backward(G)
    grads = [p.grad.copy() for p in net.parameters()]
    net.zero_grad()
    np.testing.assert_array_equal(y, separately(x))
    g = G
    for layer in reversed(net.layers):
        g = layer.backward(g)
    np.testing.assert_array_equal(dx, g)
    for a, b in zip(grads, net.parameters()):
        np.testing.assert_array_equal(a, b.grad)
    x[1, 0, 5, 5] = np.nan
    with nn.no_grad():
        y = net(x)
        np.testing.assert_array_equal(y, separately(x))
    assert np.isnan(y[1]).all() and not np.isnan(y[0]).any()


@pytest.mark.parametrize("algo", ["direct", "winograd"])
@pytest.mark.parametrize("where,value", [((1, 3, 2, 2), 64), ((0, 0, 0, 0), -1), ((8, 7, 3, 3), 0),
                                         ((5, 2, 1, 3), 2 * 8 * 2 + 2 * 3 + 2), ((4, 1, 1, 1), 2 * 8 + 2 + 2)])
def test_pooled_conv_backward_rejects_bad_indices(algo, where, value):
    # outside the plane, negative, in another window (the first one's, the next row's, the next
    # column's): in the first, a middle or the last image; the weight gradient finds them as it
    # unpools, the input gradient in a pass before it writes, and neither changes any buffer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 8, 8, 8)).astype(np.float32)
    w = rng.standard_normal((8, 8, 5, 5)).astype(np.float32)
    y, idx = lossk._core.conv2d_forward(x, w, None, (1, 1), (2, 2), algo, True)
    idx[where] = value
    dw, db, dx = np.ones_like(w), np.ones(8, np.float32), np.ones_like(x)
    with pytest.raises(ValueError, match="indices"):
        lossk._core.conv2d_backward_weight(x, y, dw, db, (1, 1), (2, 2), algo, idx)
    with pytest.raises(ValueError, match="indices"):
        lossk._core.conv2d_backward_input(y, w, x.shape, (1, 1), (2, 2), algo, idx, dx)
    assert (dw == 1).all() and (db == 1).all() and (dx == 1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,size", [(8, 32), (16, 32), (6, 4), (20, 6), (40, 6), (3, 2)])
def test_pooled_weight_gradient_is_the_unpooled_ones(dtype, k, size):
    """A pooled weight gradient (5x5, padding 2, 3 input channels) has the bits of the same
    gradient given unpooled, bias included, whichever layout the instruction set and shape choose:
    the channel layout unpools straight into its channels-last rows (rows of whole vectors with
    AVX-512, short rows with few channels on every instruction set; output channels past a vector
    boundary or fewer than one). Bad indices of six kinds, in the first, a middle and the last
    image, are refused with grad_weight and grad_bias unchanged."""
    C = lossk._core
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, size, size)).astype(dtype)
    w = rng.standard_normal((k, 3, 5, 5)).astype(dtype)
    y, idx = C.conv2d_forward(x, w, None, (1, 1), (2, 2), "direct", True)
    G = rng.standard_normal(y.shape).astype(dtype)
    G[0, 0, 0, :3] = -0.0
    full = np.zeros((5, k, size * size), dtype)
    np.put_along_axis(full, idx.reshape(5, k, -1), G.reshape(5, k, -1), axis=2)
    dw_pooled, db_pooled, dw_full, db_full = np.zeros_like(w), np.zeros(k, dtype), np.zeros_like(w), np.zeros(k, dtype)
    C.conv2d_backward_weight(x, G, dw_pooled, db_pooled, (1, 1), (2, 2), "direct", idx)
    C.conv2d_backward_weight(x, full.reshape(5, k, size, size), dw_full, db_full, (1, 1), (2, 2), "direct")
    np.testing.assert_array_equal(dw_pooled, dw_full)
    np.testing.assert_array_equal(db_pooled, db_full)
    pp = size // 2
    oh = ow = pp // 2
    at = idx[2, k - 1, oh, ow]
    outside = [size * size, -1, at + 2 * size, at - 2 * size]  # past the plane, negative, the rows below / above
    outside += [at + 2] if ow + 1 < pp else [at - 2]  # the next or previous column's window
    outside += [0] if (oh, ow) != (0, 0) else [size * size - 1]  # the first (last) window
    def in_window(at):
        return 0 <= at < size * size and at // size in (2 * oh, 2 * oh + 1) and at % size in (2 * ow, 2 * ow + 1)
    assert sum(not in_window(bad) for bad in outside) >= 3
    for n, bad in zip([0, 2, 4, 0, 2, 4], outside):
        if in_window(bad):
            continue  # (a 2x2 plane has one window)
        bad_idx = idx.copy()
        bad_idx[n, k - 1, oh, ow] = bad
        dw, db = np.ones_like(w), np.ones(k, dtype)
        with pytest.raises(ValueError, match="indices: .* each inside the pooling window"):
            C.conv2d_backward_weight(x, G, dw, db, (1, 1), (2, 2), "direct", bad_idx)
        assert (dw == 1).all() and (db == 1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c,k,h,wd", [(3, 4, 8, 16), (3, 4, 16, 16), (5, 10, 5, 5), (5, 10, 12, 23), (3, 4, 12, 23),
                                       (3, 6, 9, 28)])
def test_conv2d_weight_gradient_over_groups_of_images(dtype, c, k, h, wd):
    # 3x3 convolutions of small images: the weight gradient sums groups of images' pixels at once
    # (8 or 16 x 16: rows of whole vectors for every instruction set, vectors along the pixels except
    # with AVX-512; 5 x 5, 12 x 23: vectors along the 10 output channels, the last one partly
    # padding; 4 or 6 channels with rows of 23 or 28: vectors along the rows, the last one of each
    # masked); 21 images make blocks of 2 and 3 images, so groups of 8 and 4 images are cut short by
    # their block's end, and groups of 2 take a block of 3 in two
    rng = np.random.default_rng(5)
    x = rng.standard_normal((21, c, h, wd)).astype(dtype)
    G = rng.standard_normal((21, k, h, wd)).astype(dtype)
    w = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    got = []
    before = lossk.get_num_threads()
    try:
        for nt in (1, 2, 3):
            lossk.set_num_threads(nt)
            dw, db = np.zeros_like(w), np.zeros(k, dtype)
            lossk._core.conv2d_backward_weight(x, G, dw, db, (1, 1), (1, 1))
            got.append((dw, db))
    finally:
        lossk.set_num_threads(before)
    assert all(g[0].tobytes() == got[0][0].tobytes() and g[1].tobytes() == got[0][1].tobytes() for g in got)
    _, rdw, rdb = ref_conv2d_backward(x.astype(f64), w.astype(f64), G.astype(f64), (1, 1), (1, 1))
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert np.abs(got[0][0] - rdw).max() <= tol * np.abs(rdw).max()
    assert np.abs(got[0][1] - rdb).max() <= tol * np.abs(rdb).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [4, 16])
def test_direct_conv2d_meets_an_inf_only_in_the_windows_that_hold_it(dtype, k):
    # the documented difference: Winograd spreads a non-finite input over its output tiles as nan,
    # the direct sum (vectors along rows with 4 output channels, along channels with 16) does not
    x = np.ones((1, 16, 12, 12), dtype)
    x[0, 3, 5, 11] = np.inf
    w = np.ones((k, 16, 3, 3), dtype)
    y = lossk._core.conv2d_forward(x, w, None, (1, 1), (1, 1), "direct", False)
    hit = np.zeros((12, 12), bool)
    hit[4:7, 10:12] = True
    assert (np.isposinf(y) == hit).all() and (y[:, :, ~hit] > 0).all()
    yw = lossk._core.conv2d_forward(x, w, None, (1, 1), (1, 1), "winograd", False)
    assert np.isnan(yw).any() and np.isfinite(yw[:, :, :, :6]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h,wd", [(8, 8), (5, 5), (4, 16), (6, 28)])
@pytest.mark.parametrize("k", [16, 4])
def test_conv2d_weight_gradient_meets_an_inf_only_where_its_taps_do(dtype, h, wd, k):
    # an inf at the end of an input row: the taps that meet it (s = 1, 2) give +-inf, the others stay finite
    # (vectors along a row would meet it in the lanes past the row's end, as 0 inf = nan: with 4
    # channels and rows that are not whole vectors those lanes are masked)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, h, wd)).astype(dtype)
    x[1, 1, 2, wd - 1] = np.inf
    G = rng.standard_normal((3, k, h, wd)).astype(dtype)
    w = np.zeros((k, 2, 3, 3), dtype)
    dw = np.zeros_like(w)
    lossk._core.conv2d_backward_weight(x, G, dw, None, (1, 1), (1, 1))
    _, rdw, _ = ref_conv2d_backward(x.astype(f64), w.astype(f64), G.astype(f64), (1, 1), (1, 1))
    assert not np.isnan(rdw).any() and np.isinf(rdw[:, 1, :, 1:]).all() and np.isfinite(rdw[:, 1, :, 0]).all()
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(rdw))
    np.testing.assert_array_equal(np.sign(dw), np.sign(rdw))
    fin = np.isfinite(rdw)
    np.testing.assert_allclose(dw[fin], rdw[fin], rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


def test_empty_input_plane_with_padding_runs_forward_and_backward():
    """H = W = 0 with padding still has an output; no tile of it may divide by zero."""
    conv = nn.Conv2d(8, 8, 5, padding=3, rng=0)
    y = conv(np.ones((1, 8, 0, 4), np.float32))
    assert y.shape == (1, 8, 2, 6)
    assert conv.backward(np.ones_like(y)).shape == (1, 8, 0, 4)
    go = np.ones((1, 1, 1, 1), np.float32)
    dx = lossk._core.conv2d_backward_input(go, np.ones((1, 1, 3, 3), np.float32), (1, 1, 0, 0), (1, 1), (2, 2),
                                           "direct", np.zeros((1, 1, 1, 1), np.int64))
    assert dx.shape == (1, 1, 0, 0)


def test_winograd_refuses_kernels_it_has_no_transforms_for():
    C = lossk._core
    x, w3 = np.ones((1, 2, 8, 8), np.float32), np.ones((2, 2, 3, 3), np.float32)
    for w, stride, padding in [(np.ones((2, 2, 4, 4), np.float32), (1, 1), (1, 1)), (np.ones((2, 2, 3, 5), np.float32),
                               (1, 1), (1, 2)), (w3, (2, 2), (1, 1)), (w3, (1, 1), (3, 1)), (w3, (1, 1), (1, 3))]:
        with pytest.raises(ValueError, match=r"algo 'winograd' needs a 3x3 or 5x5 kernel, stride 1 and padding "
                                             r"below the kernel size"):
            C.conv2d_forward(x, w, None, stride, padding, "winograd", False)
    C.conv2d_forward(x, w3, None, (1, 1), (2, 2), "winograd", False)


@pytest.mark.parametrize("wshape", [(4, 3, 1), (4, 3, 1, 1, 2), (4, 3, 1, 1, 0), (0, 3, 1, 1), (4, 3, 0, 1)])
def test_conv_weight_of_wrong_rank_or_empty_is_refused(wshape):
    with pytest.raises(ValueError, match="weight"):
        lossk._core.conv2d_backward_input(np.ones((1, 4, 8, 8)), np.ones(wshape), (1, 3, 8, 8), (1, 1), (0, 0),
                                          "direct")


@pytest.mark.parametrize("stride, padding, name", [((), (0, 0), "stride"), ((1, 1), (1,), "padding"),
                                                   ((1, 1, 1), (0, 0), "stride")])
def test_conv_pairs_must_be_pairs(stride, padding, name):
    with pytest.raises(ValueError, match=name):
        lossk._core.conv2d_output_size(4, 4, 3, 3, stride, padding)
    with pytest.raises(ValueError, match=name):
        lossk._core.conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), None, stride, padding)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ["direct", "winograd"])
def test_pooled_conv_backward_refuses_index_outside_its_window(dtype, algo):
    """The fused pool's 2x2 windows likewise: an index in the P x Q plane but in another window is
    refused before anything is written; one moved within its window is routed there."""
    C = lossk._core
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 8)).astype(dtype)
    w = rng.standard_normal((8, 8, 5, 5)).astype(dtype)
    y, idx = C.conv2d_forward(x, w, None, (1, 1), (2, 2), algo, True)  # P = Q = 8, pooled to 4 x 4
    G = rng.standard_normal(y.shape).astype(dtype)
    at = idx[1, 3, 2, 2]  # in the window of rows 4-5, columns 4-5
    for bad in (at + 2, at - 2, at + 16, at - 16, 3 * 8 + 7, 6 * 8 + 4):
        idx_bad = idx.copy()
        idx_bad[1, 3, 2, 2] = bad
        out, dw, db = np.full_like(x, 7), np.zeros_like(w), np.zeros(8, dtype)
        with pytest.raises(ValueError, match=r"indices: expected argmax positions in the convolution's output "
                                             r"plane, in \[0, 64\), each inside the pooling window"):
            C.conv2d_backward_input(G, w, x.shape, (1, 1), (2, 2), algo, idx_bad, out)
        with pytest.raises(ValueError, match="indices: .* each inside the pooling window"):
            C.conv2d_backward_weight(x, G, dw, db, (1, 1), (2, 2), algo, idx_bad)
        assert (out == 7).all() and not dw.any() and not db.any()
    moved = idx.copy()
    moved[1, 3, 2, 2] = 5 * 8 + 5  # the window's last pixel
    full = np.zeros((2, 8, 64), dtype)
    np.put_along_axis(full, moved.reshape(2, 8, -1), G.reshape(2, 8, -1), axis=2)
    full = full.reshape(2, 8, 8, 8)
    np.testing.assert_allclose(C.conv2d_backward_input(G, w, x.shape, (1, 1), (2, 2), algo, moved),
                               C.conv2d_backward_input(full, w, x.shape, (1, 1), (2, 2), algo), rtol=1e-6, atol=1e-5)
    dw_pooled, dw_full = np.zeros_like(w), np.zeros_like(w)
    C.conv2d_backward_weight(x, G, dw_pooled, None, (1, 1), (2, 2), algo, moved)
    C.conv2d_backward_weight(x, full, dw_full, None, (1, 1), (2, 2), algo)
    np.testing.assert_allclose(dw_pooled, dw_full, rtol=1e-6, atol=1e-4)


def test_empty_batch_with_huge_padding_needs_no_scratch():
    """N = 0 computes nothing: no scratch sized for the 2e6 x 2e6 padded plane (terabytes). The
    shapes are PyTorch's (2.13: conv2d of (0, 3, 5, 5) with padding 10**6 gives (0, 4, 2000003, 2000003))."""
    conv = nn.Conv2d(3, 4, 3, padding=10**6, rng=0)
    x = np.zeros((0, 3, 5, 5), np.float32)
    y = conv(x)
    assert y.shape == (0, 4, 2000003, 2000003)
    assert conv.backward(np.zeros(y.shape, np.float32)).shape == x.shape
    assert not conv.weight.grad.any() and not conv.bias.grad.any()
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=10**6, rng=0), nn.MaxPool2d(2))  # fused: even output
    x = np.zeros((0, 3, 6, 6), np.float32)
    y = net(x)
    assert y.shape == (0, 4, 1000002, 1000002)
    assert net.backward(np.zeros(y.shape, np.float32)).shape == x.shape
