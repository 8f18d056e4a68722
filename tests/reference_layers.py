"""Slow NumPy references for the layer tests (direct convolution and max pooling, in float64),
finite-difference gradients, and the small networks the tests train."""
import numpy as np

import lossk.nn as nn

f64 = np.float64


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


def small_net(dtype=np.float32, seed=0, c2=8):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(3, c2, 5, padding=2, dtype=dtype, rng=rng), nn.MaxPool2d(2),
        nn.Conv2d(c2, c2, 5, padding=2, dtype=dtype, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c2, 8, 5, padding=2, dtype=dtype, rng=rng), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8, 6, dtype=dtype, rng=rng), nn.Linear(6, 3, dtype=dtype, rng=rng))


def tutorial_net(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2, rng=rng), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2, rng=rng), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2, rng=rng), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1024, 64, rng=rng), nn.Linear(64, 10, rng=rng))
