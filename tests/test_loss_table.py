"""The loss table (lossk/_losses.py) against everything built from it and everything that must
follow it: the public functions and modules, PyTorch's signatures, the kernels, the type stubs, the
NumPy twins, the test cases and the benchmarks. A loss added to the table without its tests or
benchmark fails here."""
import inspect
from pathlib import Path

import pytest

import lossk
import reference
from helpers import bench_cases
from loss_specs import CLASSIFICATION_CASES, ELEMENTWISE_CASES, MARGIN_CASES, MULTI_INPUT_CASES
from lossk import _core, _losses
from lossk._losses import CLASSIFICATION, CTC, ELEMENTWISE, LOSSES, MARGIN, MULTI_INPUT, SUFFIXES

NAMES = [loss.name for loss in LOSSES]


@pytest.mark.parametrize("loss", LOSSES, ids=NAMES)
def test_public_functions_and_module(loss):
    for suffix in SUFFIXES:
        fn = getattr(lossk, loss.name + suffix)
        assert loss.name + suffix in lossk.__all__ and fn is getattr(lossk.functional, loss.name + suffix)
        assert fn.__module__ == "lossk.functional" and loss.doc in fn.__doc__
        options = list(inspect.signature(fn).parameters.values())
        k = len(loss.arguments)
        assert [p.name for p in options[:k]] == list(loss.arguments)
        assert loss.arguments == (("input", "target") if loss.family not in (MULTI_INPUT, CTC) else loss.arguments)
        assert [(p.name, p.default) for p in options[k:]] == list(loss.options + SUFFIXES[suffix])
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in options[k:])
    module = getattr(lossk.nn, loss.module)
    assert loss.module in lossk.nn.__all__ and module.__module__ == "lossk.nn"
    assert [(p.name, p.default) for p in inspect.signature(module).parameters.values()] == list(loss.module_options())


@pytest.mark.parametrize("loss", LOSSES, ids=NAMES)
def test_signatures_are_pytorchs(loss):
    """The options, their order and defaults are torch.nn.functional's and torch.nn's (without the
    deprecated size_average and reduce); for sigmoid_focal_loss, torchvision.ops's (which has no module)."""
    torch = pytest.importorskip("torch")
    skip = {"size_average", "reduce"}
    function = bench_cases().torch_function(loss.name)
    params = list(inspect.signature(function).parameters.values())
    if loss.name != "sigmoid_focal_loss":    # torchvision's (inputs, targets): a documented difference
        assert [p.name for p in params[:len(loss.arguments)]] == list(loss.arguments), "the arrays, in PyTorch's order"
    functional = [(p.name, p.default) for p in params][len(loss.arguments):]
    assert [o for o in functional if o[0] not in skip] == list(loss.options)
    if loss.name == "sigmoid_focal_loss":
        return
    module = [(p.name, p.default) for p in inspect.signature(getattr(torch.nn, loss.module)).parameters.values()]
    assert [o for o in module if o[0] not in skip] == list(loss.module_options())


@pytest.mark.parametrize("loss", LOSSES, ids=NAMES)
def test_kernels_exist_and_take_the_family_arguments(loss):
    for kernel in filter(None, (loss.kernel, loss.prob_kernel, loss.domain_check)):
        assert _core.kernel_id(kernel, loss.family) >= 0
    for other in {ELEMENTWISE, CLASSIFICATION, MARGIN, MULTI_INPUT, CTC} - {loss.family}:
        with pytest.raises(TypeError, match="arguments"):
            _core.kernel_id(loss.kernel, other)


def test_unknown_kernels_and_indices_are_refused():
    with pytest.raises(KeyError):
        _core.kernel_id("no_such_loss", ELEMENTWISE)
    import numpy as np
    x = np.zeros(3, np.float32)
    for bad in (-1, 10 ** 6, _core.kernel_id("cross_entropy", "classification")):
        with pytest.raises(ValueError, match="kernel"):
            _core.elementwise(x, x, kernel=bad)


@pytest.mark.parametrize("loss", LOSSES, ids=NAMES)
def test_every_loss_has_its_twin_cases_and_benchmark(loss):
    if loss.family == ELEMENTWISE:
        assert loss.name in reference.ELEMENTWISE
        assert any(case.name == loss.name for case in ELEMENTWISE_CASES)
    elif loss.family == MULTI_INPUT:
        assert loss.name in reference.MULTI_INPUT and loss.layout in ("pair", "gaussian", "rows_target", "rows")
        assert any(case.name == loss.name for case in MULTI_INPUT_CASES)
    elif loss.family == MARGIN:
        assert loss.name in reference.MARGIN and loss.targets in ("class", "class_lists", "values")
        assert any(case.name == loss.name for case in MARGIN_CASES)
    elif loss.family == CTC:
        assert loss.name == "ctc_loss" and callable(reference.ctc_loss)   # its cases: tests/test_losses_ctc.py
    else:
        assert loss.family == CLASSIFICATION and callable(getattr(reference, loss.name))
        assert any(case.name == loss.name for case in CLASSIFICATION_CASES)
    assert loss.name in bench_cases().LOSSES


def test_stubs_are_generated_from_the_table():
    """The installed stubs are what `python lossk/_losses.py` writes from this table."""
    package = Path(lossk.__file__).parent
    functional, modules = _losses.stubs()
    assert (package / "functional.pyi").read_text() == functional
    assert modules in (package / "nn.pyi").read_text()
    assert (package / "dask.pyi").read_text() == _losses.dask_stubs()
