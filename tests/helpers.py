"""Helpers shared by the lossk tests (plain functions; the fixtures are in conftest.py).

- ``TOL`` / ``assert_close``: per-dtype tolerances, relative to the value and to a magnitude
  (the scale of the terms a value was computed from, so cancellation is not mistaken for error);
- ``relayout``: the same values in another memory layout (transposed, strided);
- ``unmodified``: a context manager checking that arrays were not written to;
- ``bench_cases``: the benchmarks' table (bench/cases.py), loaded from the source tree.
"""
import contextlib
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DTYPES = [np.float32, np.float64]
LAYOUTS = ["contiguous", "transposed", "strided"]


# --- tolerances --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tol:
    rtol: float      # relative to the expected value
    atol: float      # relative to the magnitude of the terms the value comes from


TOL = {
    np.dtype(np.float64): Tol(rtol=1e-12, atol=1e-13),
    np.dtype(np.float32): Tol(rtol=1e-5, atol=1e-6),
}


def tol(dtype):
    return TOL[np.dtype(dtype)]


def assert_close(actual, expected, dtype, magnitude=None, what=""):
    """actual (computed in `dtype`) matches the float64 `expected` elementwise:
    |actual - expected| <= rtol |expected| + atol * magnitude (magnitude defaults to |expected|,
    and is at least the smallest normal number). nan must match nan, +-inf must match exactly."""
    t = tol(dtype)
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    mag = np.abs(expected) if magnitude is None else np.broadcast_to(np.asarray(magnitude, np.float64),
                                                                    expected.shape)
    same_nan = np.isnan(actual) == np.isnan(expected)
    assert same_nan.all(), (f"{what}: nan mismatch at {np.argwhere(~same_nan)[:5].tolist()}: "
                            f"actual {actual[~same_nan][:5]}, expected {expected[~same_nan][:5]}")
    inf = np.isinf(expected) | np.isinf(actual)
    assert (actual[inf] == expected[inf]).all(), f"{what}: inf mismatch: {actual[inf]} vs {expected[inf]}"
    ok = np.isnan(expected) | inf
    with np.errstate(invalid="ignore", over="ignore"):
        bound = t.rtol * np.abs(expected) + t.atol * np.maximum(np.nan_to_num(mag, posinf=0.0), 1e-300)
        err = np.abs(actual - expected)
    bad = ~ok & ~(err <= bound)
    if bad.any():
        idx = np.argwhere(bad)[:5] if bad.ndim else [()]
        rows = [f"  at {tuple(i)}: actual {actual[tuple(i)]!r} expected {expected[tuple(i)]!r} "
                f"(err {err[tuple(i)]:.3g} > bound {bound[tuple(i)]:.3g})" for i in idx]
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} values differ ({np.dtype(dtype).name})\n"
                             + "\n".join(rows))


def assert_bitwise_equal(a, b, what=""):
    """Same shape, dtype and bytes (nan payloads included)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, f"{what}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    if a.tobytes() != b.tobytes():
        diff = np.flatnonzero(a.reshape(-1).view(np.uint8 if a.itemsize == 1 else f"u{a.itemsize}")
                              != b.reshape(-1).view(f"u{b.itemsize}"))
        raise AssertionError(f"{what}: {diff.size} elements differ bitwise, first at flat index {diff[:5]}: "
                             f"{a.reshape(-1)[diff[:5]]} vs {b.reshape(-1)[diff[:5]]}")


def assert_scalar_result(value, dtype):
    """A reduced loss: a NumPy scalar of the input's dtype."""
    assert isinstance(value, np.generic), f"reduced loss is a {type(value).__name__}, expected a NumPy scalar"
    assert value.dtype == np.dtype(dtype), f"reduced loss has dtype {value.dtype}, expected {np.dtype(dtype)}"


# --- memory layouts ----------------------------------------------------------------------------

def relayout(a, layout):
    """A copy of `a` with the same values (and shape) in another memory layout:
    "contiguous": C order; "transposed": Fortran order (a transposed C array, transposed back);
    "strided": every other element of a larger buffer along every axis, read-only, with the first
    axis reversed in memory. 0-d arrays stay 0-d. Non-array arguments are returned as they are."""
    if not isinstance(a, np.ndarray):
        return a
    if layout == "contiguous" or a.ndim == 0:
        out = np.array(a, order="C", copy=True)
    elif layout == "transposed":
        out = np.ascontiguousarray(a.T).T
    elif layout == "strided":
        buf = np.full(tuple(2 * n + 1 for n in a.shape), np.nan if a.dtype.kind == "f" else 99, dtype=a.dtype)
        view = buf[(slice(1, None, 2),) * a.ndim]
        view[...] = a[::-1]
        out = view[::-1]
        out.flags.writeable = False
    else:
        raise ValueError(layout)
    np.testing.assert_array_equal(out, a)
    if layout == "strided" and a.size > 1 or layout == "transposed" and sum(n > 1 for n in a.shape) >= 2:
        assert not out.flags.c_contiguous, "relayout failed to make a non-contiguous array"
    return out


# --- inputs left alone --------------------------------------------------------------------------

@contextlib.contextmanager
def unmodified(*arrays):
    """Checks that every ndarray among `arrays` holds the same bytes after the block (also when it
    raised)."""
    kept = [(a, a.copy()) for a in arrays if isinstance(a, np.ndarray)]
    try:
        yield
    finally:
        for i, (a, before) in enumerate(kept):
            assert a.dtype == before.dtype and a.shape == before.shape
            assert a.tobytes() == before.tobytes(), f"argument {i} ({a.dtype}{a.shape}) was modified"


@functools.lru_cache(maxsize=None)
def bench_cases():
    """bench/cases.py, the benchmarks' table of cases (which also says what PyTorch function each
    loss matches)."""
    spec = importlib.util.spec_from_file_location("bench_cases", Path(__file__).resolve().parents[1] / "bench" / "cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
