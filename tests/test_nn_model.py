"""lossk.nn modules together and lossk.optim: Sequential, parameters and state dicts, SGD,
no_grad, thread-count bit-identity, and training parity with PyTorch."""
import numpy as np
import pytest

import lossk
import lossk.nn as nn
import lossk.optim as optim
from reference_layers import check_layer_grads, f64, small_net, tutorial_net


def test_sequential_gradients_float64():
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Conv2d(2, 8, 5, padding=2, dtype=f64, rng=rng), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 5, padding=2, dtype=f64, rng=rng), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8, 3, dtype=f64, rng=rng))
    x = rng.standard_normal((2, 2, 4, 4))
    check_layer_grads(net, x, rtol=1e-5, atol=1e-7)


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
