"""``python -m lossk.cifar10 evaluate --checkpoint RUN/checkpoint.npz``: a trained network on the test
set: accuracy, mean cross-entropy, per-class precision and recall, and the 10x10 confusion matrix
(rows: the true class, columns: the predicted one), as text, as JSON (``--json``) and as a PNG heat
map (``--plot``, needs matplotlib).

A class the network never predicts has no precision (shown as "-", null in JSON); one with no test
images has no recall.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, List, Optional

import numpy as np

from .data import CLASSES, CIFAR10Error, find_data_dir, load_cifar10, normalize
from .train import CheckpointError, _atomic_write, _importable, confusion_matrix, model_from_checkpoint

__all__ = ["class_metrics", "report_text", "plot_confusion", "main"]

PLOT_NAME = "confusion.png"
EXIT_ERROR = 2


def class_metrics(matrix: np.ndarray) -> dict:
    """Accuracy, and per class precision, recall and support (None where undefined)."""
    correct = np.diag(matrix)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)

    def ratio(a, b):
        return [float(p) / float(q) if q else None for p, q in zip(a, b)]

    total = int(matrix.sum())
    return {
        "images": total,
        "accuracy": float(correct.sum()) / total if total else None,
        "precision": ratio(correct, predicted),
        "recall": ratio(correct, support),
        "support": [int(s) for s in support],
    }


def _cell(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def report_text(matrix: np.ndarray, loss: float) -> str:
    m = class_metrics(matrix)
    width = max(map(len, CLASSES))
    lines = [f"test accuracy {100 * m['accuracy']:.2f}% ({int(np.trace(matrix))}/{m['images']}), "
             f"mean cross-entropy {loss:.4f}", "",
             f"{'class':<{width}}  precision  recall  images"]
    for i, name in enumerate(CLASSES):
        lines.append(f"{name:<{width}}  {_cell(m['precision'][i]):>9}  {_cell(m['recall'][i]):>6}  "
                     f"{m['support'][i]:>6}")
    cells = max(len(str(int(matrix.max()))), 5)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
              " " * width + "".join(f" {name[:cells]:>{cells}}" for name in CLASSES)]
    for i, name in enumerate(CLASSES):
        lines.append(f"{name:<{width}}" + "".join(f" {int(v):>{cells}}" for v in matrix[i]))
    return "\n".join(lines) + "\n"


def plot_confusion(path: Path, matrix: np.ndarray) -> None:
    """The confusion matrix as a heat map, each cell labelled with its count, in a PNG at ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, label="images")
    ticks = range(len(CLASSES))
    ax.set_xticks(ticks, CLASSES, rotation=45, ha="right")
    ax.set_yticks(ticks, CLASSES)
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"accuracy {100 * np.trace(matrix) / max(matrix.sum(), 1):.2f}%")
    threshold = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black")
    _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lossk.cifar10 evaluate",
                                description="Evaluate a trained network on the CIFAR-10 test set.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="a checkpoint.npz written by training")
    p.add_argument("--data", metavar="DIR", help="CIFAR-10 folder or archive (as for training)")
    p.add_argument("--limit-test", type=int, metavar="K", help="use the first K test images only")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of text")
    p.add_argument("--plot", nargs="?", const="", metavar="PNG",
                   help=f"draw the confusion matrix (default: {PLOT_NAME} beside the checkpoint; needs matplotlib)")
    return p


def main(argv: Optional[List[str]] = None, out: Optional[IO[str]] = None, err: Optional[IO[str]] = None) -> int:
    """The ``evaluate`` command line; returns the exit status."""
    args = _parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    if args.limit_test is not None and args.limit_test < 1:
        print(f"error: --limit-test must be at least 1, got {args.limit_test}", file=err)
        return EXIT_ERROR
    if args.plot is not None and not _importable("matplotlib"):
        print("error: --plot: matplotlib is not installed (pip install matplotlib)", file=err)
        return EXIT_ERROR
    try:
        model, _ = model_from_checkpoint(args.checkpoint)
        _, _, x_test, y_test = load_cifar10(args.data)
    except (CIFAR10Error, CheckpointError) as e:
        print(f"error: {e}", file=err)
        return EXIT_ERROR
    x_test, y_test = x_test[:args.limit_test], y_test[:args.limit_test]
    print(f"CIFAR-10 from {find_data_dir(args.data)}: {len(x_test)} test images", file=err)
    matrix, loss = confusion_matrix(model, normalize(x_test), y_test)
    if args.json:
        json.dump({**class_metrics(matrix), "loss": loss, "classes": list(CLASSES),
                   "confusion_matrix": matrix.tolist()}, out, indent=1)
        out.write("\n")
    else:
        out.write(report_text(matrix, loss))
    if args.plot is not None:
        path = Path(args.plot) if args.plot else Path(args.checkpoint).parent / PLOT_NAME
        try:
            plot_confusion(path, matrix)
        except OSError as e:
            print(f"error: {e}", file=err)
            return 1
        print(f"confusion matrix drawn in {path}", file=err)
    return 0
