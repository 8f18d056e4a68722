"""The layer bindings' safety: bad shapes and dtypes, aliased and unaligned buffers, unusual
parameter arrays, indices changed while a kernel runs."""
import numpy as np
import pytest

import lossk
import lossk.nn as nn
from loss_specs import unusual


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


def test_backward_checks_grad_shape():
    conv = nn.Conv2d(3, 4, 3)
    conv(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"grad_output of shape \(2, 4, 6, 6\)"):
        conv.backward(np.zeros((2, 4, 8, 8), np.float32))


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
