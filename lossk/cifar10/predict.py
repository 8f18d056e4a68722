"""``python -m lossk.cifar10 predict --checkpoint RUN/checkpoint.npz IMAGE...``: the trained network's
top classes for image files.

Each file is read with Pillow (an optional extra: ``pip install "lossk[images]"``), converted to
8-bit RGB (greyscale is repeated into the three channels; transparent pixels are laid on white),
resized as a whole to 32x32 (no cropping; Pillow's antialiased Lanczos filter when the size
differs) and scaled to [0, 1] as the training images were (:func:`lossk.cifar10.normalize`). A
32x32 RGB PNG therefore reaches the network exactly as the same pixels would from the dataset.

Probabilities are the softmax of the network's logits, computed by lossk: the gradient of
cross-entropy with respect to the logits is ``softmax - one_hot(target)``.

Files that cannot be read (missing, not an image, truncated, or in a mode that is not an 8-bit
colour or greyscale image, such as 16-bit or floating-point greyscale) are reported by name; the
other files still get their answers, and the exit status is then 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import IO, List, Optional, Sequence

import numpy as np

from .. import functional as F
from .. import nn
from .data import CLASSES, CIFAR10Error, normalize
from .train import CheckpointError, model_from_checkpoint

__all__ = ["read_image", "softmax", "predict_files", "main"]

SIZE = 32
# Pillow modes holding 8-bit colour or greyscale; "A" marks an alpha channel.
ACCEPTED_MODES = {"RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr", "La", "RGBa"}
EXIT_ERROR = 2  # no usable checkpoint, Pillow missing, bad arguments
EXIT_SOME_FILES_FAILED = 1


class ImageError(ValueError):
    """An image file that cannot be read or is not an 8-bit colour or greyscale image."""


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise CIFAR10Error("predict: Pillow is not installed (pip install Pillow, or lossk[images])") from None
    return Image


def read_image(path) -> np.ndarray:
    """The image file ``path`` as the network sees it: uint8 (3, 32, 32), RGB (see the module)."""
    Image = _pillow()
    try:
        with Image.open(path) as image:
            image.load()  # decodes now: a truncated file fails here, not later
            if image.mode not in ACCEPTED_MODES:
                raise ImageError(f"{path}: unsupported image mode {image.mode!r} (expected an 8-bit "
                                 "colour or greyscale image)")
            if "A" in image.mode or "a" in image.mode or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            image = image.convert("RGB")
            if image.size != (SIZE, SIZE):
                image = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            pixels = np.asarray(image, dtype=np.uint8)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's errors for undecodable data
        raise ImageError(f"{path}: cannot read the image: {e}") from None
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    target = logits.argmax(axis=1)
    probabilities = F.cross_entropy_grad(logits, target, reduction="none")  # softmax - one_hot(target)
    probabilities[np.arange(len(target)), target] += 1
    return probabilities


def predict_files(model, paths: Sequence[str], top: int = 3) -> List[dict]:
    """For each file: ``{"file", "top": [{"class", "index", "probability"}, ...]}``, best first, or
    ``{"file", "error"}`` when it cannot be read."""
    results: List[dict] = []
    images: List[np.ndarray] = []
    for path in paths:
        try:
            images.append(read_image(path))
            results.append({"file": str(path)})
        except ImageError as e:
            results.append({"file": str(path), "error": str(e)})
    if images:
        with nn.no_grad():
            probabilities = softmax(model(normalize(np.stack(images))))
        readable = (r for r in results if "error" not in r)
        for result, p in zip(readable, probabilities):
            best = np.argsort(-p, kind="stable")[:top]
            result["top"] = [{"class": CLASSES[i], "index": int(i), "probability": float(p[i])} for i in best]
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lossk.cifar10 predict",
                                description="Print the trained network's top classes for image files.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="a checkpoint.npz written by training")
    p.add_argument("--top", type=int, default=3, choices=range(1, len(CLASSES) + 1), metavar="K",
                   help="classes to show per image (1-10, default %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON list of results instead of text")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or other image files Pillow reads")
    return p


def _print_text(results: List[dict], out: IO[str], err: IO[str]) -> None:
    for result in results:
        if "error" in result:
            print(f"error: {result['error']}", file=err)
        else:
            classes = ", ".join(f"{c['class']} {c['probability']:.3f}" for c in result["top"])
            print(f"{result['file']}: {classes}", file=out)


def main(argv: Optional[List[str]] = None, out: Optional[IO[str]] = None, err: Optional[IO[str]] = None) -> int:
    """The ``predict`` command line; returns the exit status."""
    args = _parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    try:
        _pillow()
        model, _ = model_from_checkpoint(args.checkpoint)
    except (CIFAR10Error, CheckpointError) as e:
        print(f"error: {e}", file=err)
        return EXIT_ERROR
    results = predict_files(model, args.images, args.top)
    if args.json:
        json.dump(results, out, indent=1)
        out.write("\n")
    else:
        _print_text(results, out, err)
    return EXIT_SOME_FILES_FAILED if any("error" in r for r in results) else 0
