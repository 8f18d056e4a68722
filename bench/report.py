"""Benchmark report: lossk against NumPy and PyTorch and against the memory-bandwidth floor.

    python bench/report.py                 # full run (a quarter of an hour or so)
    python bench/report.py --quick         # fewer repetitions and sizes (a few minutes)
    python bench/report.py --cases cross_entropy --threads 1 --markdown out.md --png out.png

Prints markdown: a header naming the machine and the copy bandwidths measured in this run, a
table of median times of every case (the cases of bench/cases.py, shared with the pytest suite),
each lossk form's ratio to its floor, the small-input (64, 10) cross-entropy call in µs, a
scaling sweep (1e4 to 1e8 elements, 1 and 2 threads) and the issue's targets that this run met or
missed, and lossk inside other pipelines (bench/embedding.py: PyTorch autograd and a training step,
gradient and hessian for XGBoost), on Dask (bench/dask_memory.py: a cross-entropy mean over an
array four times a worker's memory) and the chunked linear + cross-entropy against PyTorch's
(bench/linear_ce.py). Every number of one report comes from the same run: quote
ratios, not lone times.
"""
import argparse
import datetime
import gc
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field

import cases
import embedding
import linear_ce
import measure

MAIN_SIZES = {"full": ("large", "large 2d", "spatial", "few classes", "medium"),
              "quick": ("large", "large 2d", "spatial", "few classes")}
PAIRED_SIZES = ("large", "large 2d", "spatial", "few classes")  # their fused calls also timed in pairs with a copy
PAIRED_VARIANTS = ("fused_out", "fused_alloc")
SMALL_CASE = ("cross_entropy", (64, 10))
SCALING_LOSSES = {"mse_loss": lambda n: (n,), "cross_entropy": lambda n: (n // 1000, 1000)}
SCALING_SIZES = (10 ** 4, 10 ** 5, 10 ** 6, 10 ** 7, 10 ** 8)
TARGETS = {"fused_out": 1.25, "fused_alloc": 1.75, "small_us": 5.0}   # the targets
# bench/embedding.py: (benchmark, the call measured, the call it is held against, the target speed-up)
EMBEDDING_TARGETS = [("autograd", "lossk.torch.cross_entropy", "torch.nn.functional.cross_entropy", 3.0),
                     ("grad_hess", "lossk.gbdt (XGBoost adapter)", "NumPy objective", 5.0)]


@dataclass
class Settings:
    budget: float       # seconds of samples per timing (after the warm-up)
    min_reps: int
    max_reps: int

    def time(self, fn, **kw):
        return measure.time_call(fn, budget=self.budget, min_reps=self.min_reps, max_reps=self.max_reps, **kw)


FULL = Settings(budget=3.0, min_reps=5, max_reps=25)
QUICK = Settings(budget=1.0, min_reps=3, max_reps=9)


@dataclass
class Row:
    case: cases.Case
    floor: dict                                   # "loss" | "grad" | "both" -> bytes
    times: dict = field(default_factory=dict)     # variant key -> Timing (absent: not available)
    paired: dict = field(default_factory=dict)    # variant key -> (median, lowest) of time / floor in pairs

    def ms(self, key):
        return self.times[key].median * 1e3 if key in self.times else None

    def speedup(self, key):
        """How many times faster lossk's fused call (out=) is than variant `key`."""
        return self.times[key].median / self.times["fused_out"].median if key in self.times else None

    def floor_ratio(self, key, bandwidth, best=False):
        """`key`'s median (or best) time over its floor at `bandwidth`."""
        timing = self.times[key]
        return (timing.best if best else timing.median) / (self.floor[cases.VARIANT[key].floor] / bandwidth)

    def paired_ratio(self, key, lowest=False):
        """`key`'s time over its floor, median (or lowest) of the pairs with a copy; None if not paired."""
        return self.paired[key][lowest] if key in self.paired else None


def progress(*args):
    print(*args, file=sys.stderr, flush=True)


def measure_case(case, settings, variants=cases.VARIANTS, copier=None, **kw):
    """Every variant's Timing; with a `copier`, also lossk's fused calls paired with copies."""
    arrays = case.inputs()
    row = Row(case, case.floor_bytes(arrays))
    for variant in variants:
        fn = variant.build(case, arrays)
        if fn is not None:
            row.times[variant.key] = settings.time(fn, **kw)
            if copier is not None and variant.key in PAIRED_VARIANTS:
                row.paired[variant.key] = measure.paired_floor_ratio(fn, row.floor["both"], copier,
                                                                     settings.max_reps)
            del fn
            gc.collect()
    return row


# --- formatting ------------------------------------------------------------------------------------

def num(v, digits=3):
    """`digits` significant digits, no exponent; "–" for a missing value."""
    if v is None:
        return "–"
    if v == 0 or not math.isfinite(v):
        return str(v)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def times(v):
    return "–" if v is None else f"{v:.1f}×" if v < 100 else f"{v:.0f}×"


def shape_str(shape):
    n = math.prod(shape)
    count = f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)
    return f"{'×'.join(map(str, shape))} ({count})"


def table(header, rows, text_columns=3):
    """A markdown table, the columns after the first `text_columns` right-aligned."""
    align = ["---" if i < text_columns else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


# --- sections --------------------------------------------------------------------------------------

def header_section(args, bandwidths, loads, settings):
    start2, end2, one = bandwidths["2 start"], bandwidths["2 end"], bandwidths["1"]
    lines = ["# lossk benchmark report", "",
             f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} with `python bench/report.py "
             f"{' '.join(sys.argv[1:])}`.", ""]
    lines += [f"- **{label}**: {value}" for label, value in measure.machine()]
    lines += [
        f"- **Threads**: lossk {args.threads} (OpenMP, `lossk.set_num_threads`)"
        + (f", PyTorch {args.threads} (`torch.set_num_threads`)" if cases.torch is not None else "")
        + "; NumPy single-threaded (its ufuncs and reductions are).",
        "- **Copy bandwidth** (bytes read + written per second; `np.copyto` of a 256 MiB float64 array into "
        "another, median of 11 copies after a warm-up): two threads, each copying one half concurrently "
        f"(NumPy releases the GIL; glibc's memcpy uses streaming stores): **{start2 / 1e9:.1f} GB/s** at the "
        f"start of the run, **{end2 / 1e9:.1f} GB/s** after the tables (before the scaling sweep); one thread: {one / 1e9:.1f} GB/s.",
        f"- **Floor**: the bytes a call must move at the least, divided by the higher two-thread copy bandwidth "
        f"({max(start2, end2) / 1e9:.1f} GB/s), except in the **paired** columns: there each timed fused "
        "call follows a timed two-thread copy of the same 256 MiB, and the ratio prices the call's "
        "traffic at that copy's bandwidth (median and lowest of the pairs; a pair sees the same load of the "
        "shared machine, and the copy evicts the call's arrays from the caches). Fused and grad-only calls: elementwise losses read input and "
        "target and write the gradient (3 arrays); cross_entropy reads the logits and int64 targets and writes "
        "the gradient; nll_loss reads the targets and the 64-byte lines holding the input values they pick "
        "(memory moves whole lines) and writes the gradient (grad-only: no input reads); the losses of several "
        "arrays read every array and write each input-shaped gradient. Loss-only calls: the reads alone.",
        "- **Inputs** (bench/cases.py): reduction \"mean\" (kl_div: \"batchmean\"), default options, float "
        "targets shaped like the input, int64 class indices for cross_entropy and nll_loss; NumPy is a "
        "straightforward vectorised forward + gradient, as a user would write it.",
        f"- **Timing**: median seconds per call after a warm-up call; {settings.min_reps}–{settings.max_reps} "
        f"samples within ~{settings.budget:g} s per timing (fewer for slow PyTorch and NumPy cases); calls "
        "under 2 ms are repeated within a sample. lossk's fused call reuses its gradient buffer (`out=`) "
        "unless marked alloc; grad-only uses `out=`; PyTorch forward+backward wraps the NumPy arrays with "
        "`torch.from_numpy`, sets `requires_grad` and calls `F.NAME(...).backward()`; speed-ups are "
        "those times over lossk fused (`out=`).",
    ]
    if None not in loads:
        cores = os.cpu_count() or 1
        busy = max(loads) > 0.5 * cores
        lines.append(f"- **Load average** (1 min) at the start / end of the run: {loads[0]:.1f} / {loads[1]:.1f} on "
                     f"{cores} cores" + (": **other work competed for the cores during this run**; an OpenMP team "
                                         "waits for its descheduled threads, so multi-threaded times (lossk's, "
                                         "PyTorch's) suffer most and come in scheduler-tick steps." if busy else "."))
    lines.append("- The machine may be shared with other work: expect noise of tens of percent between runs.")
    return "\n".join(lines)


SUMMARY_HEADER = ["loss", "dtype", "size", "lossk fused (ms)", "NumPy (ms)", "PyTorch fwd+bwd (ms)",
                  "vs NumPy", "vs PyTorch", "lossk / floor"]


def summary_section(rows):
    """The README's table: the fused call (`out=` reused) against NumPy and PyTorch, and its paired floor ratio."""
    t_rows = [[r.case.name, r.case.dtype, shape_str(r.case.shape),
               *(num(r.ms(k)) for k in ("fused_out", "numpy", "torch")),
               times(r.speedup("numpy")), times(r.speedup("torch")), num(r.paired_ratio("fused_out"))]
              for r in rows]
    return "\n\n".join(["## Summary: loss and gradient in one call", table(SUMMARY_HEADER, t_rows)])


def main_section(rows, bandwidth):
    t_header = ["case", "dtype", "size", "lossk fused out= (ms)", "lossk fused alloc (ms)", "lossk loss-only (ms)",
                "lossk grad-only (ms)", "NumPy fwd+grad (ms)", "PyTorch fwd+bwd (ms)", "PyTorch fwd (ms)",
                "vs NumPy", "vs PyTorch", "floor (ms)", "fused out= / floor", "paired"]
    t_rows = [[r.case.name, r.case.dtype, shape_str(r.case.shape),
               *(num(r.ms(k)) for k in ("fused_out", "fused_alloc", "loss", "grad", "numpy", "torch", "torch_fwd")),
               times(r.speedup("numpy")), times(r.speedup("torch")),
               num(r.floor["both"] / bandwidth * 1e3), num(r.floor_ratio("fused_out", bandwidth), 3),
               num(r.paired_ratio("fused_out"))]
              for r in rows]
    f_header = ["case", "dtype", "size", "floor traffic (MB)", "fused out=", "fused alloc", "loss-only",
                "grad-only", "fused out=, best sample", "fused out=, paired", "fused out=, paired, lowest",
                "fused alloc, paired"]
    f_rows = [[r.case.name, r.case.dtype, shape_str(r.case.shape), num(r.floor["both"] / 1e6),
               *(num(r.floor_ratio(k, bandwidth)) for k in ("fused_out", "fused_alloc", "loss", "grad")),
               num(r.floor_ratio("fused_out", bandwidth, best=True)),
               num(r.paired_ratio("fused_out")), num(r.paired_ratio("fused_out", lowest=True)),
               num(r.paired_ratio("fused_alloc"))]
              for r in rows]
    return "\n\n".join([
        "## Large inputs: median times", table(t_header, t_rows),
        "## Ratio to the floor (each lossk form's median against its own floor; 1.00 = copy speed)",
        "A ratio below 1 means other work slowed the copy measurement more than it slowed that call.",
        table(f_header, f_rows)])


def small_section(settings):
    name, shape = SMALL_CASE
    case = cases.case_of(name, shape, "float32", "small")
    row = measure_case(case, settings, min_sample=0.02)
    base = row.times["fused_out"].median
    lines = [f"## Small input: {name} on {shape_str(shape)} float32 logits",
             "",
             f"timeit-style: each sample repeats the call for ≥ 20 ms, median of {settings.min_reps}–"
             f"{settings.max_reps} samples; the issue's target for lossk's fused call is ≤ {TARGETS['small_us']:g} µs.",
             "",
             table(["call", "µs per call", "× lossk fused out="],
                   [[v.label, num(row.times[v.key].median * 1e6), num(row.times[v.key].median / base)]
                    for v in cases.VARIANTS if v.key in row.times], text_columns=1)]
    return "\n".join(lines), row


def embedding_section(settings, selector):
    """bench/embedding.py's benchmarks whose id (pipeline-NAME) contains selector: a table of
    median times, each against the first call of its benchmark; and the targets' checks."""
    rows, checks, medians = [], [], {}
    for name, build in embedding.available().items():
        if selector not in f"pipeline-{name}":
            continue
        progress(f"embedding {name} ...")
        calls = build("full")
        times = {label: settings.time(fn).median for label, fn in calls.items()}
        del calls
        gc.collect()
        first = next(iter(times.values()))
        rows += [[name, "×".join(map(str, embedding.SIZES[name]["full"])), label, num(t * 1e3), num(t / first)]
                 for label, t in times.items()]
        medians.update({(name, label): t for label, t in times.items()})
    for name, fast, slow, want in EMBEDDING_TARGETS:
        if (name, fast) in medians:
            s = medians[(name, slow)] / medians[(name, fast)]
            checks.append((s >= want, f"{name}: {fast} {s:.2f}× faster than {slow} (target ≥ {want:g}×)"))
    if not rows:
        return None, []
    text = "\n".join([
        "## Inside other pipelines (bench/embedding.py)", "",
        "autograd: cross-entropy forward + backward through PyTorch's autograd (float32 logits, "
        "shape (N, C)); mlp_step: one SGD step of a PyTorch MLP (N, D) → H → H → C with only the loss "
        "swapped; grad_hess: the softmax objective's gradient and hessian for XGBoost on (n, k) float32; "
        "boosting_round: one XGBoost round (k trees, depth 6, (n, features) float32) with each objective.", "",
        table(["benchmark", "size", "call", "median (ms)", "÷ the first call's"], rows)])
    return text, checks


def dask_section(settings, selector):
    """bench/dask_memory.py's run (needs dask[distributed]), when selected. In a process of its own:
    the workers it starts import their parent's main module, and this one's imports (PyTorch among
    them) would take a good part of their memory limit."""
    if selector not in "dask-memory":
        return None
    try:
        import distributed  # noqa: F401
    except ImportError:
        return None
    progress("dask ...")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dask_memory.py")
    run = subprocess.run([sys.executable, script, "--repeat", str(settings.min_reps)], capture_output=True,
                         text=True, check=True)
    return "## On Dask (bench/dask_memory.py)\n\n" + run.stdout.strip()


def linear_ce_section(settings, selector):
    """bench/linear_ce.py's run (needs PyTorch), when selected: (markdown, target checks)."""
    if selector not in "linear-ce":
        return None, []
    try:
        import torch  # noqa: F401
    except ImportError:
        return None, []
    results = linear_ce.run(repeat=settings.min_reps, progress=progress)
    text, checks = linear_ce.markdown(results)
    return "\n\n".join(["## Linear + cross-entropy (bench/linear_ce.py)",
                         "lossk.linear_cross_entropy_with_grad against PyTorch's linear_cross_entropy (reference "
                         "path: options=None; chunked: LinearCrossEntropyOptions()), float32, reduction mean, "
                         "forward + backward. Extra memory: the first call's peak resident memory beyond "
                         "the inputs and the returned gradients, each implementation in a process of its own.",
                         text]), checks


def scaling_cases(selector):
    return [cases.case_of(name, shape_of(n), "float32", "scaling")
            for name, shape_of in SCALING_LOSSES.items() for n in SCALING_SIZES
            if selector in f"{name}-scaling-float32"]


def scaling_section(settings, threads, bandwidth, selected):
    """lossk's fused call (out=) at growing sizes, with 1 and `threads` threads."""
    fused = cases.VARIANT["fused_out"]
    rows = []
    for case in selected:
        progress(f"scaling {case.name} {case.shape} ...")
        arrays = case.inputs()
        fn = fused.build(case, arrays)
        timings = {}
        for nthreads in sorted({1, threads}):
            cases.set_threads(nthreads)
            timings[nthreads] = settings.time(fn).median
        cases.set_threads(threads)
        floor = case.floor_bytes(arrays)["both"] / bandwidth
        del arrays, fn
        gc.collect()
        one, many, n = timings[1], timings[threads], math.prod(case.shape)
        rows.append([case.name, shape_str(case.shape), num(one * 1e3), num(many * 1e3), num(one / many),
                     num(many / n * 1e9), num(many / floor)])
    return "\n\n".join([
        f"## Scaling: lossk fused (out=), float32, 1 and {threads} threads",
        table(["loss", "size", "1 thread (ms)", f"{threads} threads (ms)", "speed-up",
               f"ns per element ({threads} threads)", f"{threads} threads / floor"], rows, text_columns=2)])


def targets_section(rows, small_row, bandwidth, extra=()):
    """The issue's targets, checked against this run (noisy: a miss by a few percent may be noise)."""
    checks = list(extra)
    for r in rows:
        if r.case.size not in ("large", "large 2d"):
            continue
        what = f"{r.case.name} {r.case.dtype} {shape_str(r.case.shape)}"
        keys = ("fused_out", "fused_alloc") if r.case.dtype == "float32" else ("fused_out",)
        for key in keys if r.case.loss.memory_bound else ():
            paired = key in r.paired
            ratio = r.paired_ratio(key) if paired else r.floor_ratio(key, bandwidth)
            checks.append((ratio <= TARGETS[key], f"{what}: {cases.VARIANT[key].label} at {ratio:.2f}× the floor"
                                                  f"{' (paired)' if paired else ''} "
                                                  f"(target ≤ {TARGETS[key]:g}×)"))
        if r.case.dtype == "float32":
            for key, want, who in (("torch", r.case.loss.torch_target, "PyTorch fwd+bwd"), ("numpy", 1.0, "NumPy")):
                s = r.speedup(key)
                if s is not None:
                    checks.append((s >= want, f"{what}: speed-up over {who} {s:.2f}× (target ≥ {want:g}×)"))
    if small_row is not None:
        us = small_row.times["fused_out"].median * 1e6
        checks.append((us <= TARGETS["small_us"], f"cross_entropy (64, 10) fused call {us:.2f} µs "
                                                  f"(target ≤ {TARGETS['small_us']:g} µs)"))
    if not checks:
        return ""
    missed = [text for ok, text in checks if not ok]
    lines = [f"## The issue's targets: {len(checks) - len(missed)} of {len(checks)} met in this run", ""]
    lines += [f"- missed: {text}" for text in missed] or ["- all met"]
    return "\n".join(lines)


def write_png(rows, bandwidth, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress(f"--png {path}: matplotlib is not installed, no chart written (pip install matplotlib)")
        return
    series = [("fused_out", "lossk fused (out=)"), ("numpy", "NumPy fwd+grad"), ("torch", "PyTorch fwd+bwd")]
    labels = [f"{r.case.name}\n{r.case.dtype} {shape_str(r.case.shape)}" for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(rows) * len(series) / 2 + 1.5))
    height = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        values = [r.times[key].median / (r.floor["both"] / bandwidth) if key in r.times else 0 for r in rows]
        ax.barh([j + i * height for j in range(len(rows))], values, height, label=label)
    ax.axvline(1, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks([j + height * (len(series) - 1) / 2 for j in range(len(rows))], labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"time / bandwidth floor (floor: fused traffic at {bandwidth / 1e9:.1f} GB/s; lower is better)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    progress(f"chart written to {path}")


# --- main ------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions, large sizes only")
    p.add_argument("--threads", type=int, default=2, help="lossk and PyTorch threads (default 2)")
    p.add_argument("--cases", metavar="SUBSTR", default="",
                   help="only cases whose id contains SUBSTR: ids are NAME-SIZE-DTYPE, e.g. mse_loss-large-float32,\n"
                        "cross_entropy-small-float32 (the small-input section), mse_loss-scaling-float32,\n"
                        "pipeline-autograd (the pipelines section: pipeline-autograd, -mlp_step, -grad_hess,\n"
                        "-boosting_round), dask-memory (the Dask section), linear-ce (linear + cross-entropy)")
    p.add_argument("--no-scaling", action="store_true", help="skip the 1e4..1e8 scaling sweep")
    p.add_argument("--markdown", metavar="FILE", help="also write the report to FILE")
    p.add_argument("--png", metavar="FILE", help="also draw the times against the floor (needs matplotlib)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    cases.set_threads(args.threads)

    progress("copy bandwidth ...")
    loads = [measure.load_average()]
    bandwidths = {"1": measure.copy_bandwidth(1), "2 start": measure.copy_bandwidth(2)}

    selected = [c for c in cases.cases(sizes=MAIN_SIZES["quick" if args.quick else "full"])
                if args.cases in c.id]
    copier = measure.Copier(2)
    rows = []
    for case in selected:
        progress(f"{case.id} {case.shape} ...")
        rows.append(measure_case(case, settings, copier=copier if case.size in PAIRED_SIZES else None))
        gc.collect()
    copier.close()

    small_row = small_md = None
    if args.cases in f"{SMALL_CASE[0]}-small-float32":
        progress("small input ...")
        small_md, small_row = small_section(settings)

    bandwidths["2 end"] = measure.copy_bandwidth(2)
    bandwidth = max(bandwidths["2 start"], bandwidths["2 end"])
    scaling_md = None
    scaling = [] if args.no_scaling else scaling_cases(args.cases)
    if scaling:
        scaling_md = scaling_section(settings, args.threads, bandwidth, scaling)

    embedding_md, embedding_checks = embedding_section(settings, args.cases)
    dask_md = dask_section(settings, args.cases)
    linear_ce_md, linear_ce_checks = linear_ce_section(settings, args.cases)

    loads.append(measure.load_average())
    parts = [header_section(args, bandwidths, loads, settings)]
    if rows:
        parts += [summary_section(rows), main_section(rows, bandwidth)]
    parts += [p for p in (small_md, scaling_md, embedding_md, dask_md, linear_ce_md,
                          targets_section(rows, small_row, bandwidth, embedding_checks + linear_ce_checks)) if p]
    text = "\n\n".join(parts) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    if args.png and rows:
        write_png(rows, bandwidth, args.png)


if __name__ == "__main__":
    main()
