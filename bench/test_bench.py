"""pytest-benchmark suite: every loss's lossk forms against NumPy and PyTorch, grouped per case.

    pytest bench/                          # time everything (minutes)
    pytest bench/ -k "cross_entropy and float32"
    pytest bench/ --smoke -q               # tiny sizes, two rounds: does it still run? (CI)
    pytest bench/ --benchmark-disable      # each benchmark called once, untimed

Each group (one case: loss, size, dtype) lists lossk's fused call (with ``out=`` and allocating),
its loss-only and grad-only calls, the NumPy reference, PyTorch forward+backward and forward only.
The lossk benchmarks record their floor (bytes and milliseconds at the session's measured copy
bandwidth) in ``extra_info``. ``python bench/report.py`` prints the same comparison as a table.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cases
import measure

_inputs = {}


def inputs(case):
    """The case's arrays, made once while its variants run (one case kept at a time)."""
    if case.id not in _inputs:
        _inputs.clear()
        _inputs[case.id] = case.inputs()
    return _inputs[case.id]


def run(benchmark, fn, smoke):
    if smoke:
        return benchmark.pedantic(fn, rounds=2, iterations=1, warmup_rounds=1)
    return benchmark(fn)


def test_loss(benchmark, case, variant, smoke, copy_bandwidth):
    arrays = inputs(case)
    fn = variant.build(case, arrays)
    if fn is None:
        pytest.skip("PyTorch is not installed")
    benchmark.group = case.id
    benchmark.name = variant.key
    benchmark.extra_info.update(case=case.id, variant=variant.label, shape=list(case.shape), dtype=case.dtype)
    if variant.floor is not None:
        floor = case.floor_bytes(arrays)[variant.floor]
        benchmark.extra_info.update(floor_bytes=floor, floor_ms=floor / copy_bandwidth * 1e3)
    run(benchmark, fn, smoke)


def test_copy_bandwidth(benchmark, smoke):
    """The floor's yardstick: NumPy copies by two threads (extra_info: GB/s of the last round)."""
    nbytes = (8 if smoke else 256) * measure.MiB
    benchmark.group = "copy bandwidth"
    benchmark.extra_info["GB/s"] = run(benchmark, lambda: measure.copy_bandwidth(2, nbytes, reps=3), smoke) / 1e9


@pytest.mark.parametrize("loss", list(cases.LOSSES.values()), ids=lambda loss: loss.name)
@pytest.mark.parametrize("dtype", cases.DTYPES)
def test_variants_agree(loss, dtype):
    """What is timed side by side computes the same thing (tiny shapes, whatever the mode)."""
    case = cases.Case(loss, "smoke", next(iter(loss.shapes.values()))[1], dtype)
    arrays = case.inputs(seed=1)
    want_loss, want_grad = cases.to_numpy(cases.VARIANT["numpy"].build(case, arrays)())
    rtol = 2e-4 if dtype == "float32" else 1e-9
    for variant in cases.VARIANTS:
        fn = variant.build(case, arrays)
        if fn is None or variant.key == "numpy":
            continue
        got = cases.to_numpy(fn())
        if variant.key in ("fused_out", "fused_alloc", "torch"):
            got_loss, got_grad = got
        elif variant.key == "grad":
            got_loss, got_grad = want_loss, got
        else:
            got_loss, got_grad = got, want_grad
        np.testing.assert_allclose(got_loss, want_loss, rtol=rtol, err_msg=variant.label)
        pairs = zip(got_grad, want_grad) if loss.differentiable else [(got_grad, want_grad)]
        for got_g, want_g in pairs:
            np.testing.assert_allclose(got_g, want_g, rtol=rtol, atol=rtol * np.abs(want_g).max(initial=0),
                                       err_msg=variant.label)


def test_ab_harness_runs(smoke):
    """bench/ab/run.sh (the kernels at two revisions timed in one process) still builds and runs: one
    pair of one case against HEAD. A tool rather than a benchmark, so only in smoke runs."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not smoke:
        pytest.skip("run bench/ab/run.sh itself to compare two revisions")
    if not os.path.isdir(os.path.join(root, ".git")) or not all(map(shutil.which, ("git", "cmake", "ninja", "cc"))):
        pytest.skip("needs a git checkout, cmake, ninja and a C compiler")
    import lossk
    proc = subprocess.run(["bash", os.path.join(root, "bench", "ab", "run.sh"), "-r", "HEAD", "-i", lossk.isa(), "nll", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nll float32 (8192, 1000)" in proc.stdout and "nll float64 (8192, 1000)" in proc.stdout, proc.stdout


def test_bench_train_runs(smoke):
    """bench/bench_train.py (the networks and their layers against PyTorch) still runs: batch 2, one
    step. A tool rather than a benchmark, so only in smoke runs."""
    if not smoke:
        pytest.skip("run bench/bench_train.py itself to time the networks")
    pytest.importorskip("torch")
    here = os.path.dirname(os.path.abspath(__file__))
    for net in ("cifar10", "pytorch-tutorial"):
        proc = subprocess.run([sys.executable, os.path.join(here, "bench_train.py"), "--net", net, "--batch", "2",
                               "--steps", "1", "--layers"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for line in ("training  ratio", "inference ratio", "conv + 2x2 max pool", "2x2 max pool", "linear layer"):
            assert line in proc.stdout, (line, proc.stdout)
