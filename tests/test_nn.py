"""lossk.nn and lossk.optim: gradients against finite differences and a slow NumPy reference,
parity with PyTorch, bad input, thread-count invariance, no_grad."""
import numpy as np
import pytest

import lossk
import lossk.nn as nn
import lossk.optim as optim
from loss_specs import unusual

f64 = np.float64


# ---- slow NumPy reference ------------------------------------------------------------------------

def ref_conv2d(x, w, b, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, wd = x.shape
    k, _, r, s = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), x.dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    p, q = (h + 2 * ph - r) // sh + 1, (wd + 2 * pw - s) // sw + 1
    y = np.zeros((n, k, p, q), f64)
    for i in range(r):
        for j in range(s):
            patch = xp[:, :, i:i + sh * (p - 1) + 1:sh, j:j + sw * (q - 1) + 1:sw]
            y += np.einsum("nchw,kc->nkhw", patch, w[:, :, i, j])
    if b is not None:
        y += b[None, :, None, None]
    return y


def ref_conv2d_backward(x, w, dy, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, wd = x.shape
    k, _, r, s = w.shape
    p, q = dy.shape[2:]
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), f64)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape, f64)
    for i in range(r):
        for j in range(s):
            sl = (slice(None), slice(None), slice(i, i + sh * (p - 1) + 1, sh), slice(j, j + sw * (q - 1) + 1, sw))
            dw[:, :, i, j] = np.einsum("nchw,nkhw->kc", xp[sl], dy)
            dxp[sl] += np.einsum("nkhw,kc->nchw", dy, w[:, :, i, j])
    return dxp[:, :, ph:ph + h, pw:pw + wd], dw, dy.sum(axis=(0, 2, 3))


def ref_max_pool2d(x, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    n, c, h, w = x.shape
    p, q = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.empty((n, c, p, q), x.dtype)
    dx_of = {}
    for a in range(p):
        for b in range(q):
            win = x[:, :, a * sh:a * sh + kh, b * sw:b * sw + kw].reshape(n, c, -1)
            arg = win.argmax(axis=2)
            y[:, :, a, b] = np.take_along_axis(win, arg[..., None], 2)[..., 0]
            dx_of[a, b] = (a * sh + arg // kw, b * sw + arg % kw)
    return y, dx_of


def ref_max_pool2d_backward(x, dy, kernel, stride):
    _, dx_of = ref_max_pool2d(x, kernel, stride)
    dx = np.zeros(x.shape, f64)
    n, c = x.shape[:2]
    ni, ci = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for (a, b), (hh, ww) in dx_of.items():
        np.add.at(dx, (ni, ci, hh, ww), dy[:, :, a, b])
    return dx


# ---- finite differences --------------------------------------------------------------------------

def numeric_grad(f, arr, eps=1e-6):
    """d f() / d arr by central differences (arr changed in place and restored)."""
    g = np.zeros(arr.shape, f64)
    flat, gflat = arr.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = f()
        flat[i] = old - eps
        lo = f()
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return g


def check_layer_grads(layer, x, rtol=1e-6, atol=1e-8):
    """Analytic gradients of sum(layer(x) * G) against finite differences, for x and every parameter."""
    rng = np.random.default_rng(1)
    y = layer(x)
    G = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(G)

    def loss():
        with nn.no_grad():
            return float(np.sum(layer(x) * G))

    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=rtol, atol=atol)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, numeric_grad(loss, p.data), rtol=rtol, atol=atol, err_msg=name)
    return y, G, dx


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


def small_net(dtype=np.float32, seed=0, c2=8):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(3, c2, 5, padding=2, dtype=dtype, rng=rng), nn.MaxPool2d(2),
        nn.Conv2d(c2, c2, 5, padding=2, dtype=dtype, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c2, 8, 5, padding=2, dtype=dtype, rng=rng), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8, 6, dtype=dtype, rng=rng), nn.Linear(6, 3, dtype=dtype, rng=rng))


def test_sequential_gradients_float64():
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Conv2d(2, 8, 5, padding=2, dtype=f64, rng=rng), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 5, padding=2, dtype=f64, rng=rng), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8, 3, dtype=f64, rng=rng))
    x = rng.standard_normal((2, 2, 4, 4))
    check_layer_grads(net, x, rtol=1e-5, atol=1e-7)


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


def test_gradients_accumulate_and_zero_grad():
    rng = np.random.default_rng(0)
    net = small_net()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    G = rng.standard_normal((2, 3)).astype(np.float32)
    net(x)
    net.backward(G)
    once = [p.grad.copy() for p in net.parameters()]
    net(x)
    assert net.backward(G, input_grad=False) is None
    for p, g in zip(net.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-5, atol=1e-7)
    net.zero_grad()
    assert all(not p.grad.any() for p in net.parameters())


def test_init_is_seedable_and_pytorch_scaled():
    a, b = nn.Conv2d(4, 6, 3, rng=7), nn.Conv2d(4, 6, 3, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert np.abs(a.weight.data).max() <= 1 / 6 and np.abs(a.bias.data).max() <= 1 / 6
    nn.manual_seed(3)
    c = nn.Linear(100, 50)
    nn.manual_seed(3)
    np.testing.assert_array_equal(c.weight.data, nn.Linear(100, 50).weight.data)
    assert 0.09 < np.abs(c.weight.data).max() <= 0.1


# ---- state dict ----------------------------------------------------------------------------------

def test_state_dict_save_load(tmp_path):
    net, other = small_net(seed=0), small_net(seed=1)
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias", "8.weight", "8.bias",
                        "9.weight", "9.bias"]
    assert sd["0.weight"].shape == (8, 3, 5, 5) and sd["8.weight"].shape == (6, 8)
    net.save(tmp_path / "net.npz")
    other.load(tmp_path / "net.npz")
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])


@pytest.mark.parametrize("edit", ["missing", "extra", "shape"])
def test_load_state_dict_rejects_and_loads_nothing(edit):
    net = small_net(seed=0)
    before = net.state_dict()
    sd = {k: v + 1 for k, v in small_net(seed=1).state_dict().items()}
    if edit == "missing":
        del sd["9.bias"]
    elif edit == "extra":
        sd["10.weight"] = np.zeros(3, np.float32)
    else:
        sd["9.weight"] = np.zeros((3, 7), np.float32)
    with pytest.raises(ValueError, match="nothing loaded"):
        net.load_state_dict(sd)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layer,x", [
    (nn.Conv2d(3, 4, 3), np.zeros((2, 4, 8, 8), np.float32)),
    (nn.Conv2d(3, 4, 3), np.zeros((3, 8, 8), np.float32)),
    (nn.Conv2d(3, 4, 5), np.zeros((1, 3, 4, 8), np.float32)),
    (nn.MaxPool2d(2), np.zeros((2, 3, 8), np.float32)),
    (nn.MaxPool2d(3), np.zeros((1, 1, 2, 8), np.float32)),
    (nn.Linear(5, 2), np.zeros((2, 4), np.float32)),
    (nn.Flatten(), np.zeros(3, np.float32)),
])
def test_wrong_shape_is_a_clear_value_error(layer, x):
    with pytest.raises(ValueError, match=type(layer).__name__ + r".*expected"):
        layer(x)


@pytest.mark.parametrize("layer,x", [
    (nn.Conv2d(3, 4, 3), np.zeros((2, 3, 8, 8), np.float64)),
    (nn.Linear(5, 2), np.zeros((2, 5), np.int64)),
    (nn.MaxPool2d(2), np.zeros((1, 1, 4, 4), np.int32)),
    (nn.ReLU(), [1.0, 2.0]),
])
def test_wrong_dtype_is_a_type_error(layer, x):
    with pytest.raises(TypeError, match=type(layer).__name__):
        layer(x)


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


def test_backward_checks_grad_shape():
    conv = nn.Conv2d(3, 4, 3)
    conv(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"grad_output of shape \(2, 4, 6, 6\)"):
        conv.backward(np.zeros((2, 4, 8, 8), np.float32))


@pytest.mark.parametrize("kwargs,exc", [
    (dict(lr=-0.1), ValueError), (dict(lr=0.1, momentum=-1), ValueError),
    (dict(lr=0.1, weight_decay=-1), ValueError), (dict(lr=0.1, nesterov=True), ValueError),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError), (dict(lr="x"), TypeError),
])
def test_sgd_rejects_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        optim.SGD(small_net().parameters(), **kwargs)


def test_sgd_rejects_empty_parameters():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


# ---- no_grad, threads ----------------------------------------------------------------------------

def test_no_grad_caches_nothing():
    net = small_net()
    x = np.ones((2, 3, 8, 8), np.float32)
    net(x)
    with lossk.no_grad():
        y = net(x)
    assert nn.is_grad_enabled()
    assert all(getattr(m, "_x", None) is None and getattr(m, "_indices", None) is None for m in net)
    with pytest.raises(RuntimeError, match="no_grad"):
        net.backward(np.ones_like(y))
    crit = nn.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match="first"):
        crit.backward()


def test_repeated_steps_with_reused_buffers_are_exact():
    """Modules reuse internal buffers (argmax, inner gradients): results must not depend on what
    the previous call left in them, nor change the arrays handed out before."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((4, 3, 32, 32)).astype(np.float32) for _ in range(2))
    G = rng.standard_normal((4, 10)).astype(np.float32)
    net = tutorial_net()
    out_a = net(a)
    ref = net.backward(G)
    ref_grads = [p.grad.copy() for p in net.parameters()]
    kept = out_a.copy(), ref.copy()
    with lossk.no_grad():
        net(b)
    with pytest.raises(RuntimeError, match="no_grad"):
        net.backward(G)
    net(b)
    net.backward(G)
    net.zero_grad()
    np.testing.assert_array_equal(net(a), kept[0])
    np.testing.assert_array_equal(net.backward(G), kept[1])
    np.testing.assert_array_equal(out_a, kept[0])
    np.testing.assert_array_equal(ref, kept[1])
    for p, g in zip(net.parameters(), ref_grads):
        np.testing.assert_array_equal(p.grad, g)


def tutorial_net(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2, rng=rng), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2, rng=rng), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2, rng=rng), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1024, 64, rng=rng), nn.Linear(64, 10, rng=rng))


def test_bit_identical_for_any_thread_count():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3, 32, 32)).astype(np.float32)
    t = rng.integers(0, 10, 12)
    results = []
    before = lossk.get_num_threads()
    try:
        for nt in (1, 2, 3):
            lossk.set_num_threads(nt)
            net, crit = tutorial_net(), nn.CrossEntropyLoss()
            out = net(x)
            loss = crit(out, t)
            dx = net.backward(crit.backward())
            results.append([out.tobytes(), np.float32(loss).tobytes(), dx.tobytes()]
                           + [p.grad.tobytes() for p in net.parameters()])
    finally:
        lossk.set_num_threads(before)
    assert results[0] == results[1] == results[2]


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


# ---- losses --------------------------------------------------------------------------------------

def test_loss_modules_reuse_gradient_buffer():
    rng = np.random.default_rng(0)
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    t = rng.integers(0, 5, 4)
    loss = crit(x, t)
    g = crit.backward()
    ref_loss, ref_g = lossk.cross_entropy_with_grad(x, t, label_smoothing=0.1)
    assert loss == ref_loss
    np.testing.assert_array_equal(g, ref_g)
    crit(x * 2, t)
    assert crit.backward() is g


# ---- PyTorch parity ------------------------------------------------------------------------------

def _torch_net(torch, net):
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 5, padding=2), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 32, 5, padding=2), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(1024, 64), torch.nn.Linear(64, 10))
    tnet.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})
    return tnet


@pytest.mark.parametrize("opts", [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True, weight_decay=1e-3),
                                  dict(momentum=0.5, dampening=0.3, weight_decay=1e-2)])
def test_training_matches_pytorch(opts):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    net = tutorial_net()
    tnet = _torch_net(torch, net)
    crit, tcrit = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    opt = optim.SGD(net.parameters(), lr=0.05, **opts)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.05, **opts)
    for step in range(4):
        x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
        t = rng.integers(0, 10, 8)
        opt.zero_grad()
        out = net(x)
        loss = crit(out, t)
        net.backward(crit.backward(), input_grad=False)
        topt.zero_grad()
        tout = tnet(torch.from_numpy(x))
        tloss = tcrit(tout, torch.from_numpy(t))
        tloss.backward()
        np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(loss, tloss.item(), rtol=1e-5)
        if step == 0:
            for (name, p), tp in zip(net.named_parameters(), tnet.parameters()):
                np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)
        opt.step()
        topt.step()
    for (name, p), tp in zip(net.named_parameters(), tnet.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-3, atol=1e-5, err_msg=name)


def test_input_gradient_and_state_dict_round_trip_with_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    net = tutorial_net(seed=3)
    tnet = _torch_net(torch, net)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    G = rng.standard_normal((2, 10)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    tnet(tx).backward(torch.from_numpy(G))
    net(x)
    np.testing.assert_allclose(net.backward(G), tx.grad.numpy(), rtol=1e-3, atol=1e-6)
    back = tutorial_net(seed=9)
    back.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    for k, v in back.state_dict().items():
        np.testing.assert_array_equal(v, net.state_dict()[k])


LOSS_CASES = [
    ("CrossEntropyLoss", dict(label_smoothing=0.2), "class"),
    ("NLLLoss", dict(), "class"),
    ("MSELoss", dict(), "real"),
    ("L1Loss", dict(reduction="sum"), "real"),
    ("SmoothL1Loss", dict(beta=0.5), "real"),
    ("HuberLoss", dict(delta=0.7), "real"),
    ("BCELoss", dict(), "prob"),
    ("BCEWithLogitsLoss", dict(pos_weight=np.array([1.0, 2.0, 0.5, 3.0], np.float32)), "unit"),
    ("KLDivLoss", dict(reduction="batchmean"), "prob"),
]


@pytest.mark.parametrize("name,kwargs,kind", LOSS_CASES)
def test_loss_modules_match_pytorch(name, kwargs, kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    if kind == "class":
        t = rng.integers(0, 4, 3)
    elif kind == "real":
        t = rng.standard_normal((3, 4)).astype(np.float32)
    else:
        t = rng.uniform(0.05, 0.95, (3, 4)).astype(np.float32)
    if name == "BCELoss":
        x = rng.uniform(0.05, 0.95, (3, 4)).astype(np.float32)
    crit = getattr(nn, name)(**kwargs)
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tcrit = getattr(torch.nn, name)(**tkw)
    tx = torch.from_numpy(x).requires_grad_()
    tloss = tcrit(tx, torch.from_numpy(t))
    tloss.backward()
    np.testing.assert_allclose(crit(x, t), tloss.item(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(crit.backward(), tx.grad.numpy(), rtol=1e-5, atol=1e-7)


# --- arguments the bindings must refuse (found in review) ------------------------------------

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


def test_gradient_buffers_must_not_alias_inputs():
    rng = np.random.default_rng(0)
    x, w, go = rng.normal(size=(8, 8)), rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    before = x.copy()
    with pytest.raises(ValueError, match="grad_weight"):
        lossk._core.linear_backward(go, x, w, x, None, False)
    np.testing.assert_array_equal(x, before)
    xc, gy = rng.normal(size=(1, 2, 6, 6)), rng.normal(size=(1, 2, 4, 4))
    with pytest.raises(ValueError, match="grad_weight"):  # a view of the input as the weight gradient
        lossk._core.conv2d_backward_weight(xc, gy, xc.reshape(-1)[:36].reshape(2, 2, 3, 3), None, (1, 1), (0, 0))


def _unaligned(a):
    """a's values in a C-contiguous array at an odd address (flags.aligned False)."""
    u = unusual(a, "misaligned")
    assert u.flags.c_contiguous and not u.flags.aligned
    return u


@pytest.mark.parametrize("kind", ["misaligned", "byteswapped", "readonly", "transposed"])
def test_parameter_holds_an_array_the_kernels_and_optimiser_take_as_is(kind):
    """Parameter data is stored C-contiguous, aligned, native-order and writeable (copied once if
    need be), with the values it was given; an array that already is so is kept, not copied."""
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    if kind == "readonly":
        given = values.copy()
        given.flags.writeable = False
    elif kind == "transposed":
        given = values.T.copy().T
    else:
        given = unusual(values, kind)
    p = nn.Parameter(given)
    flags = p.data.flags
    assert flags.c_contiguous and flags.aligned and flags.writeable and p.data.dtype.isnative
    np.testing.assert_array_equal(p.data, values)
    assert p.grad.shape == p.data.shape and p.grad.dtype == p.data.dtype
    kept = np.ones((2, 3), np.float64)
    assert nn.Parameter(kept).data is kept


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_inputs_give_the_results_of_aligned_copies(dtype):
    """The kernels' vector types assume element alignment: the bindings copy unaligned inputs.
    (x86-64 tolerates unaligned loads, so this guards results; other targets would fault.)"""
    C, U = lossk._core, _unaligned
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 12, 12)).astype(dtype)
    w = rng.standard_normal((8, 8, 5, 5)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    for algo in ("direct", "winograd"):
        y, idx = C.conv2d_forward(x, w, b, (1, 1), (2, 2), algo, True)
        yu, idxu = C.conv2d_forward(U(x), U(w), U(b), (1, 1), (2, 2), algo, True)
        np.testing.assert_array_equal(yu, y)
        np.testing.assert_array_equal(idxu, idx)
        np.testing.assert_array_equal(C.conv2d_backward_input(U(y), U(w), x.shape, (1, 1), (2, 2), algo, U(idx)),
                                      C.conv2d_backward_input(y, w, x.shape, (1, 1), (2, 2), algo, idx))
        dw, db, dwu, dbu = np.zeros_like(w), np.zeros_like(b), np.zeros_like(w), np.zeros_like(b)
        C.conv2d_backward_weight(x, y, dw, db, (1, 1), (2, 2), algo, idx)
        C.conv2d_backward_weight(U(x), U(y), dwu, dbu, (1, 1), (2, 2), algo, U(idx))
        np.testing.assert_array_equal(dwu, dw)
        np.testing.assert_array_equal(dbu, db)
    y, idx = C.max_pool2d_forward(x, (2, 2), (2, 2))
    yu, idxu = C.max_pool2d_forward(U(x), (2, 2), (2, 2))
    np.testing.assert_array_equal(yu, y)
    np.testing.assert_array_equal(idxu, idx)
    np.testing.assert_array_equal(C.max_pool2d_backward(U(y), U(idx), x.shape, (2, 2), (2, 2), dtype),
                                  C.max_pool2d_backward(y, idx, x.shape, (2, 2), (2, 2), dtype))
    x2, w2 = x.reshape(2, -1), rng.standard_normal((5, 8 * 12 * 12)).astype(dtype)
    np.testing.assert_array_equal(C.linear_forward(U(x2), U(w2), U(b[:5])), C.linear_forward(x2, w2, b[:5]))
    g = rng.standard_normal((2, 5)).astype(dtype)
    dw, dwu = np.zeros_like(w2), np.zeros_like(w2)
    np.testing.assert_array_equal(C.linear_backward(U(g), U(x2), U(w2), dwu, None),
                                  C.linear_backward(g, x2, w2, dw, None))
    np.testing.assert_array_equal(dwu, dw)
    np.testing.assert_array_equal(C.relu_forward(U(x)), C.relu_forward(x))
    np.testing.assert_array_equal(C.relu_backward(U(x), U(x)), C.relu_backward(x, x))


def test_unaligned_output_buffers_are_refused():
    """Buffers the caller asks us to write into are refused when unaligned, as when not contiguous
    (a copy would not be the caller's array), and left as they were."""
    C = lossk._core
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 8)).astype(np.float32)
    w = rng.standard_normal((8, 8, 5, 5)).astype(np.float32)
    b = np.zeros(8, np.float32)
    y, idx = C.conv2d_forward(x, w, None, (1, 1), (2, 2), "auto", True)
    _, pidx = C.max_pool2d_forward(x, (2, 2), (2, 2))
    x2, w2, g2 = x.reshape(2, -1), rng.standard_normal((3, 512)).astype(np.float32), np.ones((2, 3), np.float32)
    t = rng.integers(0, 8, 2)
    cases = [
        ("indices", idx, lambda o: C.conv2d_forward(x, w, None, (1, 1), (2, 2), "auto", True, o)),
        ("out", x, lambda o: C.conv2d_backward_input(y, w, x.shape, (1, 1), (2, 2), "auto", idx, o)),
        ("grad_weight", w, lambda o: C.conv2d_backward_weight(x, y, o, None, (1, 1), (2, 2), "auto", idx)),
        ("grad_bias", b, lambda o: C.conv2d_backward_weight(x, y, np.zeros_like(w), o, (1, 1), (2, 2), "auto", idx)),
        ("indices", pidx, lambda o: C.max_pool2d_forward(x, (2, 2), (2, 2), o)),
        ("grad_weight", w2, lambda o: C.linear_backward(g2, x2, w2, o, None)),
        ("grad_bias", np.zeros(3, np.float32), lambda o: C.linear_backward(g2, x2, w2, None, o)),
        ("out", x, lambda o: lossk.mse_loss_grad(x, x + 1, out=o)),
        ("out", x2[:, :8], lambda o: lossk.cross_entropy_with_grad(x2[:, :8].copy(), t, out=o)),
    ]
    for name, like, call in cases:
        buf = _unaligned(np.full_like(like, 7))
        with pytest.raises(ValueError, match=f"{name}: expected a writeable, aligned C-contiguous array"):
            call(buf)
        assert (buf == 7).all(), name


_INDEX_RACE = r"""
import sys, threading
import numpy as np
from lossk import _core as C

sys.setswitchinterval(1e-5)


def race(call, idx, at):
    # one index flips between a valid value and one far outside the plane, while the kernel runs
    # without the GIL: a kernel that checks first and reads again later writes out of bounds
    flat, good, stop = idx.reshape(-1), int(idx.reshape(-1)[at]), threading.Event()

    def flip():
        while not stop.is_set():
            flat[at] = 1 << 40
            flat[at] = good

    th = threading.Thread(target=flip)
    th.start()
    seen = set()
    try:
        for _ in range(150):
            try:
                call()
                seen.add("ran")
            except ValueError as e:
                assert str(e).startswith("indices: expected argmax positions in the"), e
                seen.add("refused")
    finally:
        stop.set()
        th.join()
    print(sorted(seen))


rng = np.random.default_rng(0)
x = rng.standard_normal((1, 16, 512, 512)).astype(np.float32)
y, idx = C.max_pool2d_forward(x, (2, 2), (2, 2))
race(lambda: C.max_pool2d_backward(y, idx, x.shape, (2, 2), (2, 2), np.float32), idx, idx.size // 2)
x = rng.standard_normal((2, 3, 128, 128)).astype(np.float32)
w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
y, idx = C.conv2d_forward(x, w, None, (1, 1), (1, 1), "direct", True)
race(lambda: C.conv2d_backward_input(y, w, x.shape, (1, 1), (1, 1), "direct", idx), idx, idx.size - 5)
dw = np.zeros_like(w)
race(lambda: C.conv2d_backward_weight(x, y, dw, None, (1, 1), (1, 1), "direct", idx), idx, idx.size - 5)
print("ok")
"""


def test_indices_changed_during_the_kernel_never_write_out_of_bounds(tmp_path):
    """max_pool2d_backward and the pooled conv backward read each argmax index once, checking it as
    they use it: another thread changing the indices mid-call gets a ValueError, not a crash."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", _INDEX_RACE], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.endswith("ok\n"), (proc.returncode, proc.stdout, proc.stderr)


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


def test_sequential_input_gradient_is_not_a_reused_buffer():
    """A Flatten first hands back a view of the gradient it gets, here the Sequential's own buffer
    between the fused conv+pool and the Flatten: the caller must get an array of its own."""
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Flatten(1, 2), nn.Conv2d(6, 4, 3, padding=1, rng=0), nn.MaxPool2d(2))
    x = rng.standard_normal((2, 2, 3, 8, 8)).astype(np.float32)
    G = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    net(x)
    dx = net.backward(G)
    assert dx.shape == x.shape
    kept = dx.copy()
    net(x)
    np.testing.assert_array_equal(net.backward(2 * G), 2 * kept)
    np.testing.assert_array_equal(dx, kept)


@pytest.mark.parametrize("layers, shape", [
    ((nn.MaxPool2d(2),), (1, 2, 4, 4)),
    ((nn.Conv2d(2, 2, 3, padding=1), nn.MaxPool2d(2)), (1, 2, 4, 4)),  # fused
    ((nn.Conv2d(2, 2, 3, padding=1),), (1, 2, 4, 4)),
    ((nn.Linear(4, 3),), (2, 4)),
    ((nn.ReLU(),), (2, 4)),
])
def test_backward_checks_grad_dtype(layers, shape):
    net = nn.Sequential(*layers)
    y = net(np.zeros(shape, np.float32))
    with pytest.raises(TypeError, match=r"grad_output of dtype float32 like the forward output, got float64"):
        net.backward(np.zeros(y.shape, np.float64))


def test_max_pool2d_backward_binding_checks_grad_dtype():
    y, idx = lossk._core.max_pool2d_forward(np.zeros((1, 2, 4, 4), np.float32), (2, 2), (2, 2))
    with pytest.raises(TypeError, match="grad_output: expected dtype float32, got float64"):
        lossk._core.max_pool2d_backward(y.astype(np.float64), idx, (1, 2, 4, 4), (2, 2), (2, 2), np.float32)


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


@pytest.mark.parametrize("call, exc, match", [
    (lambda C: C.conv2d_output_size(4, 4, 3, 3, (0, 1), (0, 0)), ValueError, "stride must be positive"),
    (lambda C: C.conv2d_output_size(4, 4, 3, 3, (1, 1), (2**62, 0)), ValueError, "padding.*too large"),
    (lambda C: C.conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), None, (1, 1), (2**62 - 1, 0)),
     ValueError, "padding.*too large"),
    (lambda C: C.conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), None, (1.5, 1), (0, 0)),
     ValueError, "stride: expected a pair of ints"),
    (lambda C: C.max_pool2d_forward(np.ones((1, 1, 4, 4)), (2, 2), (2.0, 2)), ValueError, "stride: expected a pair"),
    (lambda C: C.conv2d_backward_input(np.ones((1, 1, 5, 8)), np.ones((1, 1, 3, 3)), (1, 1, -3, 8), (1, 1), (5, 1)),
     ValueError, "input: expected a shape of non-negative sizes"),
    (lambda C: C.relu_backward(np.ones(3), [1.0, 2.0, 3.0]), TypeError, "output: expected a numpy.ndarray"),
])
def test_bindings_refuse_geometry_they_cannot_run(call, exc, match):
    with pytest.raises(exc, match=match):
        call(lossk._core)
