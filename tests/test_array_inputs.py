"""Any CPU array in: torch tensors, JAX arrays, DLPack exporters, the buffer protocol and
__array__ objects give the results of the same values as NumPy arrays, bit for bit; out= may be
another library's memory; arrays on another device, or of a dtype NumPy cannot hold, are refused
with a TypeError naming the argument, and nothing is written."""
import array

import numpy as np
import pytest

import lossk
from helpers import assert_bitwise_equal, bench_cases, unmodified
from lossk._losses import LOSSES

BENCH = bench_cases()
NAMES = [loss.name for loss in LOSSES]


class Exporter:
    """An array known only through DLPack, on `device` (DLPack's (type, id); 1 is the CPU)."""

    def __init__(self, a, device=(1, 0)):
        self.a, self.device = a, device

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.device


class ArrayLike:
    """An array known only through __array__."""

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a


def problem(name, dtype=np.float64, seed=0):
    case = BENCH.LOSSES[name]
    arrays = case.make(np.random.default_rng(seed), case.shapes[next(iter(case.shapes))][1], np.dtype(dtype))
    return [np.asarray(a) if not isinstance(a, float) else a for a in arrays], dict(case.options)


def results(name, arrays, options):
    loss = getattr(lossk, name)(*arrays, **options)
    grad = getattr(lossk, name + "_grad")(*arrays, **options)
    fused = getattr(lossk, name + "_with_grad")(*arrays, **options)
    return [np.asarray(loss)] + list(grad if isinstance(grad, tuple) else (grad,)) + [np.asarray(fused[0])]


def check_same(name, converted, arrays, options):
    with unmodified(*[a for a in arrays if isinstance(a, np.ndarray)]):
        got = results(name, converted, options)
    for g, w in zip(got, results(name, arrays, options)):
        assert isinstance(g, np.ndarray) and g.dtype == w.dtype
        assert_bitwise_equal(g, w, name)


def convert(arrays, to):
    return [to(a) if isinstance(a, np.ndarray) else a for a in arrays]


@pytest.mark.parametrize("name", NAMES)
def test_dlpack_exporter_and_array_protocols(name, dtype):
    arrays, options = problem(name, dtype)
    check_same(name, convert(arrays, Exporter), arrays, options)
    check_same(name, convert(arrays, ArrayLike), arrays, options)
    check_same(name, convert(arrays, lambda a: memoryview(np.ascontiguousarray(a))), arrays, options)


@pytest.mark.parametrize("name", NAMES)
def test_torch_tensors(name, dtype):
    torch = pytest.importorskip("torch")
    arrays, options = problem(name, dtype)
    check_same(name, convert(arrays, torch.from_numpy), arrays, options)
    # a tensor autograd tracks is read too (without a copy: lossk detaches it)
    tracked = convert(arrays, lambda a: torch.from_numpy(a).requires_grad_(True) if a.dtype.kind == "f"
                      else torch.from_numpy(a))
    check_same(name, tracked, arrays, options)


@pytest.mark.parametrize("name", NAMES)
def test_jax_arrays(name):
    jnp = pytest.importorskip("jax.numpy")
    arrays, options = problem(name, np.float32)
    check_same(name, convert(arrays, jnp.asarray), arrays, options)


def test_non_contiguous_tensor_and_array_array(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(6, 5))
    t = rng.normal(size=(5, 6))
    xt = torch.from_numpy(x).t()
    assert not xt.is_contiguous()
    assert_bitwise_equal(lossk.huber_loss_grad(xt, t), lossk.huber_loss_grad(np.ascontiguousarray(x.T), t))
    flat = array.array("d", x.ravel())
    assert lossk.mse_loss(flat, x.ravel() + 1) == 1.0


def test_read_only_inputs(rng):
    x = rng.normal(size=(4, 3))
    x.flags.writeable = False
    assert_bitwise_equal(lossk.l1_loss_grad(Exporter(x), Exporter(x + 1)), lossk.l1_loss_grad(x, x + 1))


def test_out_into_a_torch_tensor(dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(8, 10)).astype(dtype)
    t = rng.integers(0, 10, 8)
    out = torch.empty(8, 10, dtype=torch.float32 if dtype == np.float32 else torch.float64)
    loss, grad = lossk.cross_entropy_with_grad(torch.from_numpy(x), torch.from_numpy(t), out=out)
    assert np.shares_memory(grad, out.numpy())
    assert_bitwise_equal(out.numpy(), lossk.cross_entropy_grad(x, t))
    assert_bitwise_equal(np.asarray(loss), np.asarray(lossk.cross_entropy(x, t)))


def test_torch_lazy_negation_is_resolved_and_refused_as_out(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(5, 3))
    neg = torch.from_numpy(x.copy())._neg_view()
    assert neg.is_neg()
    assert_bitwise_equal(lossk.l1_loss_grad(neg, np.zeros((5, 3))), lossk.l1_loss_grad(-x, np.zeros((5, 3))))
    with pytest.raises(ValueError, match="out: a tensor with torch's negative"):
        lossk.l1_loss_grad(x, x, out=torch.zeros(5, 3, dtype=torch.float64)._neg_view())
    tracked = torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="out: a tensor that requires grad"):
        lossk.l1_loss_grad(x, x, out=tracked)
    assert not tracked.detach().any()


def test_out_into_a_read_only_export_is_refused(rng):
    x = rng.normal(size=(4, 3))
    ro = np.zeros((4, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out: expected a writeable"):
        lossk.mse_loss_grad(x, x, out=Exporter(ro))


@pytest.mark.parametrize("argument", ["input", "target", "weight", "out"])
def test_arrays_on_another_device_are_refused(argument, rng):
    x, t = rng.uniform(0.1, 0.9, (4, 3)), rng.uniform(0, 1, (4, 3))
    kw = {"input": x, "target": t, "weight": np.ones(3), "out": np.zeros((4, 3))}
    kw[argument] = Exporter(kw[argument], device=(2, 0))     # kDLCUDA
    with unmodified(x, t), pytest.raises(TypeError, match=f"{argument}: expected an array in CPU memory"):
        lossk.binary_cross_entropy_grad(kw.pop("input"), kw.pop("target"), **kw)


def test_torch_meta_and_bfloat16_tensors_are_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="input: cannot read this Tensor through DLPack"):
        lossk.mse_loss(torch.ones(3, device="meta"), np.zeros(3))
    with pytest.raises(TypeError, match="input: cannot read this Tensor through DLPack"):
        lossk.mse_loss(torch.ones(3, dtype=torch.bfloat16), np.zeros(3))
    with pytest.raises(TypeError, match="input: expected dtype float32 or float64, got float16"):
        lossk.mse_loss(torch.ones(3, dtype=torch.float16), np.zeros(3, np.float16))
    with pytest.raises(TypeError, match="target: expected dtype float32"):
        lossk.mse_loss(torch.ones(3), torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="input"):
        lossk.mse_loss(torch.ones(3, dtype=torch.complex64), np.zeros(3))


def test_other_objects_are_still_refused():
    with pytest.raises(TypeError, match="input: expected a numpy.ndarray"):
        lossk.mse_loss(object(), np.zeros(3))
    with pytest.raises(TypeError, match="input: expected a numpy.ndarray"):
        lossk.mse_loss([1.0, 2.0], np.zeros(2))
