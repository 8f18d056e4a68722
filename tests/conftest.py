"""Fixtures for the lossk test suite: seeded random generators, dtypes, memory layouts, the
thread count, and the ``slow`` marker (skipped unless pytest runs with ``--runslow``).
Plain helpers live in helpers.py."""
import numpy as np
import pytest

from helpers import DTYPES, LAYOUTS


# --- the slow marker ---------------------------------------------------------------------------

def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that needs minutes or many GB of memory (run with --runslow)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# --- random data -------------------------------------------------------------------------------

@pytest.fixture
def rng(request):
    """A generator seeded from the test's name, so every test is reproducible on its own."""
    seed = sum(map(ord, request.node.nodeid)) * 7919 % 2**32
    return np.random.default_rng(seed)



@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return request.param


# --- memory layouts ----------------------------------------------------------------------------

@pytest.fixture(params=LAYOUTS)
def layout(request):
    return request.param


# --- thread count -------------------------------------------------------------------------------

@pytest.fixture
def restore_threads():
    import lossk

    before = lossk.get_num_threads()
    yield
    lossk.set_num_threads(before)
    assert lossk.get_num_threads() == before
