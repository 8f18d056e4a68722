"""Timing, the copy-bandwidth floor and a description of the machine, for the benchmarks."""
import math
import os
import platform
import statistics
import subprocess
import time
import timeit
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

import lossk
from cases import torch

MiB = 2 ** 20


@dataclass
class Timing:
    median: float       # seconds per call
    best: float         # seconds per call, fastest sample
    reps: int           # samples
    number: int         # calls per sample

    def __str__(self):
        return f"{self.median * 1e3:.3f} ms (best {self.best * 1e3:.3f}, {self.reps}x{self.number})"


def time_call(fn, *, budget=2.0, min_reps=5, max_reps=25, min_sample=2e-3):
    """Median seconds per call of ``fn()`` after a warm-up call.

    Calls shorter than ``min_sample`` are repeated within a sample (timeit-style, garbage
    collection off) so each sample lasts about ``min_sample``; the number of samples is what fits
    in ``budget`` seconds, clamped to [min_reps, max_reps] (so slow cases get fewer)."""
    timer = timeit.Timer(fn)
    timer.timeit(1)                     # warm-up: first-touch allocations, caches, thread pools
    once = min(timer.repeat(repeat=3, number=1))
    number = max(1, math.ceil(min_sample / max(once, 1e-9))) if once < min_sample else 1
    reps = int(min(max_reps, max(min_reps, budget / (once * number))))
    samples = [s / number for s in timer.repeat(repeat=reps, number=number)]
    return Timing(statistics.median(samples), min(samples), reps, number)


class Copier:
    """The bandwidth reference: ``np.copyto`` of a ``nbytes`` float64 array into another, split into
    ``threads`` contiguous parts copied concurrently by as many Python threads (NumPy releases the
    GIL for the copy; glibc's memcpy uses streaming stores at these sizes)."""

    def __init__(self, threads=2, nbytes=256 * MiB):
        self.src = np.ones(nbytes // 8)
        self.dst = np.empty_like(self.src)
        self.traffic = 2 * self.src.nbytes          # bytes read + bytes written by one copy
        bounds = np.linspace(0, self.src.size, threads + 1).astype(int)
        self.parts = [(self.dst[a:b], self.src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        self.pool = ThreadPoolExecutor(threads)

    def __call__(self):
        for f in [self.pool.submit(np.copyto, d, s) for d, s in self.parts]:
            f.result()

    def close(self):
        self.pool.shutdown()
        del self.src, self.dst, self.parts


def copy_bandwidth(threads=2, nbytes=256 * MiB, reps=11):
    """Copy bandwidth in bytes/s (bytes read + bytes written per second) of a :class:`Copier`: the
    median of ``reps`` timed copies after a warm-up copy (which also faults in the destination)."""
    copier = Copier(threads, nbytes)
    try:
        timing = time_call(copier, min_reps=reps, max_reps=reps, budget=0)
    finally:
        copier.close()
    return copier.traffic / timing.median


def paired_floor_ratio(fn, floor_bytes, copier, reps=15):
    """``fn``'s time over its floor, measured in pairs: each timed call of ``fn`` right after a timed
    copy, whose bandwidth prices that call's ``floor_bytes``. On a shared machine the load drifts
    within seconds; a pair sees the same load, so the median ratio is steadier than a median time
    over one bandwidth measured minutes apart. The copy also evicts the call's arrays from the
    caches, as a training step's other work would. Returns (median ratio, lowest ratio)."""
    fn()
    copier()
    ratios = []
    for _ in range(reps):
        start = time.perf_counter()
        copier()
        middle = time.perf_counter()
        fn()
        end = time.perf_counter()
        ratios.append((end - middle) / (floor_bytes * (middle - start) / copier.traffic))
    return statistics.median(ratios), min(ratios)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory():
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 2 ** 20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "?"


def _git_revision():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=here, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return rev or "?"


THREADING_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OMP_PROC_BIND", "OMP_PLACES", "GOMP_SPINCOUNT",
                 "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def load_average():
    """The 1-minute load average (other work competing for the cores), or None where unknown."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine():
    """(label, value) pairs describing the machine and software."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return [
        ("CPU", f"{_cpu_model()}, {cores} logical cores ({usable} usable), {_memory()} memory"),
        ("lossk", f"{lossk.__version__} ({_git_revision()}), ISA {lossk.isa()}"),
        ("Python / NumPy", f"{platform.python_version()} / {np.__version__}"),
        ("PyTorch", torch.__version__ if torch is not None else "not installed (its columns are empty)"),
        ("Threading environment", ", ".join(f"{k}={os.environ[k]}" for k in THREADING_ENV if k in os.environ)
         or "no OMP_*/GOMP_* variables set (OpenMP defaults)"),
    ]
