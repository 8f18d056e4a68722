"""pytest configuration for the benchmark suite (``pytest bench/``).

- ``--smoke`` (or ``LOSSK_BENCH_SMOKE=1``): tiny shapes and two rounds per benchmark, so the suite
  only checks that it still runs (CI); ``--benchmark-disable`` runs every benchmark once, untimed.
- ``--bench-threads N`` (default 2): lossk's and PyTorch's thread count.

The repository's pyproject sets ``testpaths = ["tests"]`` for a bare ``pytest``; naming ``bench/``
on the command line collects ``bench/test_*.py`` here.
"""
import os

import pytest

import cases
import measure

BANDWIDTH = pytest.StashKey[float]()


def pytest_addoption(parser):
    group = parser.getgroup("lossk benchmarks")
    group.addoption("--smoke", action="store_true", default=False,
                    help="lossk benchmarks: tiny sizes and few rounds (also LOSSK_BENCH_SMOKE=1)")
    group.addoption("--bench-threads", type=int, default=2, help="lossk benchmarks: lossk and PyTorch threads")


def is_smoke(config):
    return config.getoption("--smoke") or os.environ.get("LOSSK_BENCH_SMOKE", "") not in ("", "0")


def pytest_generate_tests(metafunc):
    """Parametrize (case, variant) in table order, the variants innermost (inputs are made once per case)."""
    if {"case", "variant"} <= set(metafunc.fixturenames):
        pairs = [(c, v) for c in cases.cases(smoke=is_smoke(metafunc.config)) for v in cases.VARIANTS]
        metafunc.parametrize(("case", "variant"), pairs, ids=[f"{c.id}-{v.key}" for c, v in pairs])


@pytest.fixture(scope="session")
def smoke(request):
    return is_smoke(request.config)


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request):
    n = request.config.getoption("--bench-threads")
    cases.set_threads(n)
    return n


@pytest.fixture(scope="session")
def copy_bandwidth(request, smoke):
    """Two-thread NumPy copy bandwidth (bytes/s), measured once per session for the floors."""
    bandwidth = measure.copy_bandwidth(2, nbytes=(8 if smoke else 256) * measure.MiB, reps=3 if smoke else 11)
    request.config.stash[BANDWIDTH] = bandwidth
    return bandwidth


def pytest_terminal_summary(terminalreporter, config):
    bandwidth = config.stash.get(BANDWIDTH, None)
    if bandwidth is not None:
        terminalreporter.write_line(
            f"lossk benchmarks: two-thread NumPy copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); each "
            "lossk benchmark's extra_info has floor_bytes and floor_ms = floor_bytes / that bandwidth. "
            "For a side-by-side table with ratios run: python bench/report.py")
