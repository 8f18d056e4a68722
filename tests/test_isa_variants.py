"""Every instruction-set variant of the kernels this CPU can run (forced with
LOSSK_ISA=baseline|avx2|avx512|avx512zen in the environment, read once when lossk loads) gives the
same results as the default one, within tolerance of the float64 reference. Each variant runs in a
subprocess."""
import os
import subprocess
import sys

import numpy as np
import pytest

import lossk
import reference
from helpers import DTYPES, assert_close
from loss_specs import (CLASSIFICATION_CASES, ELEMENTWISE_CASES, MARGIN_CASES, MULTI_INPUT_CASES, ctc_problem, functions,
                        multi_takes, takes_rank)

ISAS = ["baseline", "avx2", "avx512", "avx512zen"]
LEVEL = {"baseline": 0, "avx2": 1, "avx512": 2, "avx512zen": 2}  # avx512zen: AVX-512 tuned for AMD Zen
HERE = os.path.dirname(os.path.abspath(__file__))

# (case, shape): small and SIMD-ragged shapes, plus some large enough to run in parallel
EW_SHAPES = [(67, 131), (300, 257)]
CLASS_SHAPES = [(37, 13), (3, 7, 5, 11), (512, 100)]
MARGIN_SHAPES = [(37, 13), (300, 100), (3, 7, 21)]
MULTI_SHAPES = [(37, 13), (300, 257)]
CTC_SHAPES = [(13, 5, 7, 4), (60, 40, 21, 12)]   # (T, N, C, S)


class CTCCase:
    name = "ctc_loss"


def workload():
    """Every case on a few shapes: {key: (case, arrays, opts)} built from fixed seeds."""
    items = {}
    for i, case in enumerate(ELEMENTWISE_CASES):
        for shape in EW_SHAPES:
            for dtype in DTYPES:
                x, t, opts = case.build(np.random.default_rng(i), shape, dtype)
                items[f"{case.id}-{shape}-{np.dtype(dtype).name}"] = (case, (x, t), opts)
    for i, case in enumerate(CLASSIFICATION_CASES):
        for shape in CLASS_SHAPES:
            for dtype in DTYPES:
                x, t, opts = case.build(np.random.default_rng(100 + i), shape, dtype)
                items[f"{case.id}-{shape}-{np.dtype(dtype).name}"] = (case, (x, t), opts)
    for i, case in enumerate(MARGIN_CASES):
        for shape in filter(lambda shape: takes_rank(case, len(shape)), MARGIN_SHAPES):
            for dtype in DTYPES:
                x, t, opts = case.build(np.random.default_rng(200 + i), shape, dtype)
                items[f"{case.id}-{shape}-{np.dtype(dtype).name}"] = (case, (x, t), opts)
    for i, case in enumerate(MULTI_INPUT_CASES):
        for shape in filter(lambda shape: multi_takes(case, shape), MULTI_SHAPES):
            for dtype in DTYPES:
                arrays, opts = case.build(np.random.default_rng(300 + i), shape, dtype)
                items[f"{case.id}-{shape}-{np.dtype(dtype).name}"] = (case, arrays, opts)
    for shape in CTC_SHAPES:
        for dtype in DTYPES:
            arrays = ctc_problem(np.random.default_rng(400), *shape, dtype, blank=2, impossible=True, repeats=True)
            items[f"ctc_loss-{shape}-{np.dtype(dtype).name}"] = (CTCCase, arrays, {"blank": 2, "zero_infinity": True})
    return items


def _grads(key, grad):
    """{key/k: gradient k}: one gradient, or each of a multi-input loss's."""
    return {f"{key}{k}": g for k, g in enumerate(grad)} if isinstance(grad, tuple) else {key: grad}


def _reference(case, arrays, reduction, **kw):
    if case.name in reference.MULTI_INPUT:
        return reference.multi_input(case.name, arrays, reduction, **kw)
    if case.name == "ctc_loss":
        return reference.ctc_loss(*arrays, reduction=reduction, **kw)
    return reference.compute(case.name, *arrays, reduction, **kw)


def compute(items):
    """{key/what: array}: none loss, mean loss, fused sum loss and gradient."""
    results = {}
    for key, (case, arrays, opts) in items.items():
        f, f_grad, f_with_grad = functions(case.name)
        results[f"{key}/none"] = f(*arrays, reduction="none", **opts)
        results[f"{key}/mean"] = np.asarray(f(*arrays, reduction="mean", **opts))
        results.update(_grads(f"{key}/grad", f_grad(*arrays, reduction="none", grad_output=0.5, **opts)))
        loss, grad = f_with_grad(*arrays, reduction="sum", **opts)
        results[f"{key}/fused_loss"] = np.asarray(loss)
        results.update(_grads(f"{key}/fused_grad", grad))
    return results


def expected(items):
    out = {}
    for key, (case, arrays, opts) in items.items():
        none = _reference(case, arrays, "none", **opts)
        mean = _reference(case, arrays, "mean", **opts)
        grad = _reference(case, arrays, "none", grad_output=0.5, **opts)
        fused = _reference(case, arrays, "sum", **opts)
        out[f"{key}/none"] = (none.loss, none.loss_mag)
        out[f"{key}/mean"] = (mean.loss, mean.loss_mag)
        out[f"{key}/fused_loss"] = (fused.loss, fused.loss_mag)
        for what, r in (("grad", grad), ("fused_grad", fused)):
            if isinstance(r.grad, tuple):
                out.update({f"{key}/{what}{k}": (g, m) for k, (g, m) in enumerate(zip(r.grad, r.grad_mag))})
            else:
                out[f"{key}/{what}"] = (r.grad, r.grad_mag)
    return out


def run_variant(isa, path):
    """Results computed in a subprocess with LOSSK_ISA=isa (None: the default), and its isa()."""
    env = dict(os.environ)
    env.pop("LOSSK_ISA", None)
    if isa is not None:
        env["LOSSK_ISA"] = isa
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import numpy as np, lossk, test_isa_variants as m\n"
            "r = m.compute(m.workload())\n"
            "np.savez(sys.argv[2], isa=np.array(lossk.isa()), **r)\n")
    # run outside the source tree, so that `import lossk` finds the installed package
    proc = subprocess.run([sys.executable, "-c", code, HERE, str(path)], cwd=path.parent,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"LOSSK_ISA={isa}: exit code {proc.returncode}\n{proc.stderr[-3000:]}"
    with np.load(path) as data:
        return str(data["isa"]), {k: data[k] for k in data.files if k != "isa"}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    return run_variant(None, tmp_path_factory.mktemp("isa") / "default.npz")


@pytest.fixture(scope="module")
def reference_results():
    return expected(workload())


@pytest.mark.parametrize("isa", ISAS)
def test_forced_isa_matches_default_and_reference(isa, default_run, reference_results, tmp_path):
    default_isa, default_results = default_run
    assert default_isa == lossk.isa() and default_isa in ISAS
    if LEVEL[isa] > LEVEL[default_isa]:
        pytest.skip(f"this CPU has no {isa}")
    got_isa, results = run_variant(isa, tmp_path / f"{isa}.npz")
    assert got_isa == isa, f"LOSSK_ISA={isa} gave isa() == {got_isa!r}"
    assert results.keys() == default_results.keys() == reference_results.keys()
    for key, (value, mag) in reference_results.items():
        dtype = results[key].dtype
        assert_close(results[key], value, dtype, mag, f"LOSSK_ISA={isa}: {key}")
        assert_close(results[key], default_results[key].astype(np.float64), dtype, mag,
                     f"LOSSK_ISA={isa} vs default: {key}")


# the conformance tests of nan, inf, masked and extreme inputs: they take the special-value paths
# of the exps and logs, which differ between variants (avx512 and avx512zen included)
SPECIAL_VALUE_TESTS = "non_finite or extreme or masked or at_zero or 1e4 or zero_targets or ignored or zero_weight"


@pytest.mark.parametrize("isa", ISAS)
def test_forced_isa_passes_the_special_value_conformance_tests(isa, default_run, tmp_path):
    pytest.importorskip("torch")
    default_isa, _ = default_run
    if LEVEL[isa] > LEVEL[default_isa]:
        pytest.skip(f"this CPU has no {isa}")
    env = dict(os.environ, LOSSK_ISA=isa)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           os.path.join(HERE, "test_torch_conformance.py"), "-k", SPECIAL_VALUE_TESTS],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and " passed" in proc.stdout, f"LOSSK_ISA={isa}\n{proc.stdout[-3000:]}"


def cpu_vendor():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    return None


def test_avx512_tuning_follows_the_vendor(default_run):
    """On an AVX-512 CPU the default is avx512zen on AMD and avx512 on every other vendor."""
    default_isa, _ = default_run
    if LEVEL[default_isa] < 2:
        pytest.skip("this CPU has no AVX-512")
    vendor = cpu_vendor()
    if vendor is None:
        pytest.skip("no /proc/cpuinfo")
    assert default_isa == ("avx512zen" if vendor == "AuthenticAMD" else "avx512"), vendor


def test_unknown_or_higher_isa_request_falls_back_to_the_default(default_run, tmp_path):
    """LOSSK_ISA chooses only among what the CPU can run: an unknown name or a higher ISA changes
    nothing."""
    default_isa, _ = default_run
    higher = [name for name in ISAS if LEVEL[name] > LEVEL[default_isa]]
    for value in ("bogus", "AVX2", "", *higher):
        env = dict(os.environ, LOSSK_ISA=value)
        proc = subprocess.run([sys.executable, "-c", "import lossk; print(lossk.isa())"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == default_isa, f"LOSSK_ISA={value!r}"
