"""The C kernels on their own: configure the project with CMake without Python
(-DLOSSK_BUILD_PYTHON=OFF), build the lossk_capi_test program (tests/c/test_capi.c) and run it.
Only the baseline variant is built (-DLOSSK_DISPATCH=OFF): the C API is the same, the build a third."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name):
    """A tool on PATH, or installed next to this Python (pip's cmake / ninja in the venv)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def _run(args, **kw):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, (f"{' '.join(map(str, args))} exited with {proc.returncode}\n"
                                  f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def test_c_api_builds_and_passes_without_python(tmp_path):
    cmake = _tool("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    build = tmp_path / "build"
    configure = [cmake, "-S", ROOT, "-B", build, "-DLOSSK_BUILD_PYTHON=OFF", "-DLOSSK_DISPATCH=OFF",
                 "-DCMAKE_BUILD_TYPE=Release"]
    ninja = _tool("ninja")
    if ninja:
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    env = {k: v for k, v in os.environ.items() if k != "LOSSK_ISA"}
    _run(configure, timeout=300, env=env)
    _run([cmake, "--build", build, "--target", "lossk_capi_test", "--parallel", "2"], timeout=600, env=env)
    exe = build / "lossk_capi_test"
    assert exe.exists(), f"{exe} was not built"
    proc = _run([exe], timeout=120, env=env)
    assert "ok" in proc.stdout, proc.stdout
