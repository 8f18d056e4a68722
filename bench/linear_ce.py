"""Linear + cross-entropy, forward and backward: lossk.linear_cross_entropy_with_grad against
PyTorch's torch.nn.functional.linear_cross_entropy, its reference path (options=None: the whole
logits) and its chunked path (LinearCrossEntropyOptions()).

    python bench/linear_ce.py                                  # (2048, 512, 32000), (4096, 1024, 128256)
    python bench/linear_ce.py --shapes 2048x512x32000 --repeat 5

float32, class-index targets, reduction "mean", no bias. Each implementation runs in a process
of its own, so that its memory is its own: the first call's peak resident memory (VmHWM, reset
before the call) beyond the resident memory before it, less the returned gradients' bytes, is its
extra memory (compared with the (N, V) float32 logits'); the times are the medians of the next
--repeat calls. bench/report.py prints the same table as its "Linear + cross-entropy" section.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SHAPES = [(2048, 512, 32000), (4096, 1024, 128256)]
IMPLS = ["lossk", "torch reference", "torch chunked"]
TIME_TARGET = 0.67      # lossk's time over PyTorch's chunked path's
MEMORY_TARGET = 1 / 8   # lossk's extra memory over the logits'


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def worker(impl, n, d, v, repeat, threads):
    """One implementation's run in this process: {"loss", "extra", "times"}."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((v, d), dtype=np.float32) / np.float32(np.sqrt(d))
    t = rng.integers(0, v, n)
    if impl == "lossk":
        import lossk
        lossk.set_num_threads(threads)

        def step():
            loss, dx, dw, _ = lossk.linear_cross_entropy_with_grad(x, w, t)
            return float(loss), (dx, dw)
    else:
        import torch
        torch.set_num_threads(threads)
        X, W, T = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_(), torch.from_numpy(t)
        options = torch.nn.LinearCrossEntropyOptions() if impl == "torch chunked" else None

        def step():
            X.grad = W.grad = None
            loss = torch.nn.functional.linear_cross_entropy(X, W, T, options=options)
            loss.backward()
            return float(loss), (X.grad, W.grad)
    before = _status("VmRSS")
    _reset_peak()
    loss, grads = step()
    extra = _status("VmHWM") - before - sum(g.nbytes if hasattr(g, "nbytes") else g.numel() * 4 for g in grads)
    del grads
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"loss": loss, "extra": extra, "times": times}


def run(shapes=SHAPES, repeat=3, threads=2, progress=print, impls=IMPLS):
    """[(shape, impl, result)], each implementation in its own process."""
    out = []
    for shape in shapes:
        for impl in impls:
            progress(f"linear_ce {impl} {shape} ...")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--shapes",
                   "x".join(map(str, shape)), "--repeat", str(repeat), "--threads", str(threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out.append((shape, impl, json.loads(done.stdout.strip().splitlines()[-1])))
    return out


def markdown(results):
    """The table and the targets' lines."""
    rows, checks = [], []
    by = {(shape, impl): r for shape, impl, r in results}
    for shape, impl, r in results:
        n, _, v = shape
        med = statistics.median(r["times"])
        chunked = by.get((shape, "torch chunked"))
        ratio = med / statistics.median(chunked["times"]) if chunked else float("nan")
        logits = n * v * 4
        rows.append(f"| ({', '.join(map(str, shape))}) | {impl} | {med:.3f} | {ratio:.2f} | "
                    f"{r['extra'] / 2**20:.0f} | {r['extra'] / logits:.3f} | {r['loss']:.6f} |")
        if impl == "lossk":
            checks.append((ratio <= TIME_TARGET, f"linear_cross_entropy {shape}: {ratio:.2f}× PyTorch's chunked "
                                                 f"path's time (target ≤ {TIME_TARGET:g}×)"))
            checks.append((r["extra"] <= MEMORY_TARGET * logits,
                           f"linear_cross_entropy {shape}: extra memory {r['extra'] / logits:.3f} of the logits' "
                           f"(target ≤ {MEMORY_TARGET:g})"))
    head = ["| (N, D, V) | implementation | forward + backward, median (s) | ÷ PyTorch chunked | "
            "extra memory (MiB) | ÷ (N, V) logits | loss |", "|---|---|---:|---:|---:|---:|---:|"]
    return "\n".join(head + rows), checks


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES),
                   help="comma-separated NxDxV (default: the two above)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    shapes = [tuple(int(k) for k in s.split("x")) for s in args.shapes.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, *shapes[0], args.repeat, args.threads)))
        return
    text, checks = markdown(run(shapes, args.repeat, args.threads, progress=lambda *a: print(*a, file=sys.stderr)))
    print(text)
    print()
    for ok, line in checks:
        print(f"- {'met' if ok else 'missed'}: {line}")


if __name__ == "__main__":
    main()
