"""lossk.torch: torch.nn.functional's signatures and autograd semantics on lossk's kernels.

Each wrapper's loss and gradients (by autograd, for reductions "none" with a random grad_output,
"mean", "sum") must equal lossk's own functions bit for bit and PyTorch's within the tolerances of
the conformance tests; a small training loop gives the same weights with either import."""
import inspect
import warnings

import numpy as np
import pytest

import lossk
import reference
from helpers import assert_bitwise_equal, assert_close, bench_cases, relayout, tol
from loss_specs import CLASSIFICATION_CASES, ELEMENTWISE_CASES, MARGIN_CASES, MULTI_INPUT_CASES, with_reductions
from lossk._losses import LOSSES

torch = pytest.importorskip("torch")
LF = pytest.importorskip("lossk.torch")
F = torch.nn.functional
BENCH = bench_cases()
NAMES = [loss.name for loss in LOSSES]
BY_NAME = {loss.name: loss for loss in LOSSES}


def torch_reference(name):
    return BENCH.torch_function(name)


def tensors(arrays, requires_grad):
    """numpy arrays -> torch tensors (class indices as int64, as PyTorch wants them), the
    differentiable ones requiring grad; floats (gaussian_nll_loss's var) stay floats."""
    out = []
    for k, a in enumerate(arrays):
        if isinstance(a, float):
            out.append(a)
            continue
        a = np.array(a, order="C")
        t = torch.from_numpy(a if a.dtype.kind == "f" else a.astype(np.int64))
        out.append(t.requires_grad_(True) if k in requires_grad else t)
    return out


def autograd(fn, arrays, differentiable, options, reduction, grad_output):
    """(loss, gradients of the differentiable arrays) of fn by autograd, for grad_output."""
    ts = tensors(arrays, differentiable)
    opts = {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # kl_div's reduction="mean" warning
        loss = fn(*ts, reduction=reduction, **opts)
    go = torch.from_numpy(np.array(np.broadcast_to(np.asarray(grad_output, loss.detach().numpy().dtype),
                                                   tuple(loss.shape))))
    loss.backward(go)
    return loss.detach().numpy(), [ts[k].grad.numpy() if isinstance(ts[k], torch.Tensor) else None
                                   for k in differentiable]


def lossk_core(name, arrays, options, reduction, grad_output):
    """What lossk.torch must give: for "none" the gradient kernel run with grad_output; reduced,
    the fused pass's gradient times grad_output (one rounding in the gradient's dtype)."""
    loss = getattr(lossk, name)(*arrays, reduction=reduction, **options)
    if reduction == "none":
        grads = getattr(lossk, name + "_grad")(*arrays, reduction=reduction, grad_output=grad_output, **options)
    else:
        _, grads = getattr(lossk, name + "_with_grad")(*arrays, reduction=reduction, **options)
        grads = tuple(g * np.asarray(grad_output, g.dtype) for g in (grads if isinstance(grads, tuple) else (grads,)))
    return np.asarray(loss), list(grads) if isinstance(grads, tuple) else [grads]


def grad_output_for(rng, reduction, loss_shape, dtype):
    return rng.uniform(-2, 2, loss_shape).astype(dtype) if reduction == "none" else 0.75


def as_float64(arrays):
    return [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays]


def check_against_core_and_torch(name, arrays, options, reduction, rng, mags=lambda go: None):
    """lossk.torch's loss and gradients (grad_output random for "none", 0.75 reduced) equal
    lossk's bit for bit, and PyTorch's computed in float64 within the dtype's tolerance (relative to
    the magnitudes mags(grad_output): [loss, gradient per differentiable array], None: the values')."""
    loss = BY_NAME[name]
    x = arrays[0]
    loss_shape = np.shape(getattr(lossk, name)(*arrays, reduction="none", **options))
    go = grad_output_for(rng, reduction, loss_shape, x.dtype)
    got = autograd(getattr(LF, name), arrays, loss.differentiable, options, reduction, go)
    core = lossk_core(name, arrays, options, reduction, go)
    assert_bitwise_equal(got[0], core[0], f"{name} loss vs lossk")
    for g, c in zip(got[1], core[1]):
        if g is not None:       # None: a float argument (gaussian_nll_loss's var), no tensor to hold a gradient
            assert_bitwise_equal(g, np.asarray(c, g.dtype), f"{name} gradient vs lossk")
    wide = {k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in options.items()}
    want = autograd(torch_reference(name), as_float64(arrays), loss.differentiable, wide, reduction,
                    np.asarray(go, np.float64))
    # no magnitudes: the gradients relative to their largest value
    m = mags(go) or [None] + [None if w is None else np.full(w.shape, np.max(np.abs(w), initial=0)) for w in want[1]]
    assert_close(got[0], want[0], x.dtype, m[0], f"{name} loss vs torch")
    for g, w, mg in zip(got[1], want[1], m[1:]):
        if g is not None:
            assert_close(g, w, x.dtype, mg, f"{name} gradient vs torch")


# --- signatures -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_signatures_are_pytorchs(name):
    fn = getattr(LF, name)
    if name == "sigmoid_focal_loss":
        want = inspect.signature(BENCH.torchvision_sigmoid_focal_loss)
        assert [(p.name, p.default) for p in inspect.signature(fn).parameters.values()] == \
            [(p.name, p.default) for p in want.parameters.values()]
        return
    assert inspect.signature(fn) == inspect.signature(getattr(F, name))
    module = BY_NAME[name].module
    assert inspect.signature(getattr(LF, module)) == inspect.signature(getattr(torch.nn, module))
    assert issubclass(getattr(LF, module), torch.nn.Module)
    assert name in LF.__all__ and module in LF.__all__


# --- the conformance grid ---------------------------------------------------------------------

def magnitudes(name, x, t, opts, reduction):
    def mags(go):
        ref = reference.compute(name, x, t, reduction, grad_output=go, **opts)
        return [ref.loss_mag, ref.grad_mag]
    return mags


@pytest.mark.parametrize("case, reduction", with_reductions(ELEMENTWISE_CASES + CLASSIFICATION_CASES))
def test_elementwise_and_classification_grid(case, reduction, dtype, rng):
    shape = (5, 4) if case.name not in ("cross_entropy", "nll_loss") else (6, 4, 3)
    x, t, opts = case.build(rng, shape, dtype)
    check_against_core_and_torch(case.name, (x, t), opts, reduction, rng, magnitudes(case.name, x, t, opts, reduction))


@pytest.mark.parametrize("case, reduction", with_reductions(MARGIN_CASES))
def test_margin_grid(case, reduction, dtype, rng):
    x, t, opts = case.build(rng, (6, 5), dtype)
    check_against_core_and_torch(case.name, (x, t), opts, reduction, rng, magnitudes(case.name, x, t, opts, reduction))


@pytest.mark.parametrize("case, reduction", with_reductions(MULTI_INPUT_CASES))
def test_multi_input_grid(case, reduction, dtype, rng):
    arrays, opts = case.build(rng, (6, 5), dtype)
    loss = BY_NAME[case.name]
    scale = max(np.max(np.abs(a)) for a in arrays if not isinstance(a, float))
    check_against_core_and_torch(case.name, arrays, opts, reduction, rng, lambda go: [None] + [
        np.full(np.shape(arrays[k]), 8 * scale * np.max(np.abs(go))) for k in loss.differentiable])


@pytest.mark.parametrize("layout", ["padded", "concatenated"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss(layout, reduction, dtype, rng):
    from loss_specs import ctc_problem

    arrays = ctc_problem(rng, 12, 3, 5, 4, dtype, layout=layout)
    check_against_core_and_torch("ctc_loss", arrays, {"blank": 0, "zero_infinity": False}, reduction, rng,
                                 lambda go: [None, np.full(arrays[0].shape, 4.0 * np.max(np.abs(go)))])


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_at_benchmark_shapes(name, rng):
    """Each loss on its benchmark's (smoke) data, float64, reduction "mean": as lossk, as torch."""
    case = BENCH.LOSSES[name]
    arrays = case.make(rng, case.shapes[next(iter(case.shapes))][1], np.dtype(np.float64))
    opts = {k: v for k, v in case.options.items() if k != "reduction"}
    reduction = case.options.get("reduction", "mean")
    check_against_core_and_torch(name, arrays, opts, reduction, rng)


def test_non_contiguous_tensors(dtype, rng):
    x = relayout(rng.normal(size=(7, 5)).astype(dtype), "transposed")
    t = rng.integers(0, 7, 5)
    xt = torch.from_numpy(x).requires_grad_(True)
    assert not xt.is_contiguous()
    LF.cross_entropy(xt.t(), torch.from_numpy(t)).backward()
    want = lossk.cross_entropy_grad(np.ascontiguousarray(x.T), t)
    assert_bitwise_equal(xt.grad.t().numpy(), want, "transposed tensor")


# --- autograd's modes -------------------------------------------------------------------------

def problem(rng, dtype=np.float32):
    x = torch.from_numpy(rng.normal(size=(16, 10)).astype(dtype)).requires_grad_(True)
    return x, torch.from_numpy(rng.integers(0, 10, 16))


def test_no_grad_computes_the_loss_alone(rng):
    x, t = problem(rng)
    with torch.no_grad():
        loss = LF.cross_entropy(x, t)
    assert not loss.requires_grad and loss.grad_fn is None
    assert loss.item() == pytest.approx(F.cross_entropy(x, t).item(), rel=1e-6)
    loss = LF.cross_entropy(x.detach(), t)
    assert loss.grad_fn is None


def test_retain_graph_gives_the_gradient_twice(rng):
    x, t = problem(rng)
    loss = LF.cross_entropy(x, t, label_smoothing=0.1) * 3
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()                          # the gradient again (from the kernel: the first was handed over)
    np.testing.assert_allclose(x.grad.numpy(), 2 * first.numpy(), rtol=1e-6)


def test_double_backward_is_refused(rng):
    x, t = problem(rng)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad(LF.cross_entropy(x, t), x, create_graph=True)


@pytest.mark.parametrize("name, args", [
    ("mse_loss", lambda x, t: (x, torch.zeros_like(x).requires_grad_(True))),
    ("cross_entropy", lambda x, t: (x, t, torch.ones(10, requires_grad=True))),
    ("binary_cross_entropy", lambda x, t: (torch.sigmoid(x.detach()), torch.sigmoid(x))),
])
def test_gradient_of_a_non_differentiable_argument_is_refused(name, args, rng):
    x, t = problem(rng)
    with pytest.raises(RuntimeError, match=f"lossk.torch.{name}: no gradient with respect to (target|weight)"):
        getattr(LF, name)(*args(x, t))


def test_non_cpu_tensors_are_refused(rng):
    x, t = problem(rng)
    with pytest.raises((TypeError, RuntimeError)):
        LF.cross_entropy(x.to("meta"), t.to("meta"))


def test_legacy_size_average_and_reduce(rng):
    x, t = problem(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for size_average, reduce in [(False, None), (None, False), (True, True)]:
            got = LF.cross_entropy(x, t, None, size_average, -100, reduce)
            want = F.cross_entropy(x, t, None, size_average, -100, reduce)
            np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)
            module = LF.CrossEntropyLoss(size_average=size_average, reduce=reduce)
            assert module.reduction == torch.nn.CrossEntropyLoss(size_average=size_average, reduce=reduce).reduction


def test_torch_compile_runs_the_loss_as_a_graph_break(rng):
    x, t = problem(rng)

    def step(x, t):
        return LF.cross_entropy(x * 2, t) + x.square().mean()

    compiled = torch.compile(step, backend="eager")
    loss = compiled(x, t)
    loss.backward()
    got = x.grad.clone()
    x.grad = None
    (F.cross_entropy(x * 2, t) + x.square().mean()).backward()
    np.testing.assert_allclose(got.numpy(), x.grad.numpy(), rtol=1e-5, atol=1e-7)


# --- modules ----------------------------------------------------------------------------------

def test_module_keeps_weight_as_a_buffer_and_options_as_attributes(rng):
    w = torch.rand(10)
    criterion = LF.CrossEntropyLoss(weight=w, ignore_index=3, label_smoothing=0.2)
    assert torch.equal(criterion.state_dict()["weight"], w)
    assert criterion.ignore_index == 3 and "label_smoothing=0.2" in repr(criterion)
    x, t = problem(rng)
    want = torch.nn.CrossEntropyLoss(weight=w, ignore_index=3, label_smoothing=0.2)(x, t)
    assert criterion(x, t).item() == pytest.approx(want.item(), rel=1e-6)
    criterion.ignore_index = -100                  # the attributes are what forward uses, as in torch.nn
    assert criterion(x, t).item() == pytest.approx(F.cross_entropy(x, t, w, label_smoothing=0.2).item(), rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_module(name, rng):
    loss = BY_NAME[name]
    case = BENCH.LOSSES[name]
    arrays = case.make(rng, case.shapes[next(iter(case.shapes))][1], np.dtype(np.float64))
    ts = tensors(arrays, loss.differentiable)
    opts = dict(case.options)
    got = getattr(LF, loss.module)(**opts)(*ts)
    assert_bitwise_equal(got.detach().numpy(), getattr(LF, name)(*ts, **opts).detach().numpy(), name)
    # the fused pass (which the module runs: its input requires grad) and the loss alone agree closely
    np.testing.assert_allclose(got.detach().numpy(), getattr(lossk, name)(*arrays, **opts), rtol=1e-13)


# --- a training loop --------------------------------------------------------------------------

def train(loss_fn, steps=5, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        x = torch.randn(64, 20, generator=g, dtype=torch.float64)
        y = torch.randint(0, 5, (64,), generator=g)
        opt.zero_grad()
        loss_fn(model(x), y, label_smoothing=0.05).backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


def test_sgd_steps_give_pytorchs_weights():
    for got, want in zip(train(LF.cross_entropy), train(F.cross_entropy)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
