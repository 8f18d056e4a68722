"""lossk's type stubs: a typed program passes mypy --strict, and the stubs match what lossk is at run
time (mypy's stubtest); skipped when mypy is not installed (it is in the test extra)."""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")
USAGE = Path(__file__).parent / "typing" / "usage.py"


def _run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=USAGE.parent)


def test_typed_usage_passes_mypy_strict():
    result = _run("mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null", str(USAGE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_match_the_runtime():
    result = _run("mypy.stubtest", "lossk.functional", "lossk.nn", "lossk.optim", "lossk.dask", "lossk.linear_loss")
    assert result.returncode == 0, result.stdout + result.stderr


def test_typed_usage_runs():
    assert subprocess.run([sys.executable, str(USAGE)], capture_output=True).returncode == 0
