"""Train the PyTorch CIFAR-10 tutorial network with lossk: ``python -m lossk.cifar10 --data DIR``.

The network, loss, optimiser and data pipeline are the tutorial's: three 5x5 convolutions (padding 2)
each followed by 2x2 max pooling, then Linear(1024, 64) and Linear(64, 10) with no activations,
cross-entropy, plain SGD (lr 0.01), batches of 64, pixels scaled to [0, 1] without normalisation,
the training set reshuffled every epoch and the test set in order.

A run lives in its own folder (``--out``, default ``runs/cifar10``):

* ``checkpoint.npz``: weights, SGD momentum buffers, the shuffling generator's state, the position in
  the training and the metrics so far. It is replaced atomically, so it is always the last state
  that was completely written, and it holds only plain arrays plus JSON text (no pickles), so
  loading one never runs code. ``--resume`` continues from it exactly: a run resumed after any
  number of interruptions ends with the same weights, bit for bit, as an uninterrupted one.
* ``metrics.jsonl``: one JSON object per finished epoch: ``epoch``, ``train_loss`` (the mean over
  the epoch's images, each batch's loss taken before its step), ``test_loss``, ``test_accuracy``
  (a fraction), ``train_images_per_s``, ``train_seconds`` (the steps only), ``epoch_seconds``
  (steps and evaluation), ``elapsed_seconds`` (since the run started, counting only time spent
  training and evaluating, across resumed sessions), ``wall_time`` (Unix time at the epoch's end)
  and ``lr``.
* ``curves.png`` with ``--plot`` (needs matplotlib), redrawn after every epoch.
* TensorBoard event files with ``--tensorboard`` (in ``tb/``, or the folder given; needs
  tensorboardX): the training loss every ``--log-every`` steps, the epoch's metrics and histograms of
  the weights and gradients, on the axis of optimiser steps (see :mod:`lossk.cifar10.tensorboard`).

Checkpoints are written when a run starts (the initial weights), after every epoch, and on Ctrl-C:
the first Ctrl-C lets the current optimiser step finish, saves that mid-epoch position and exits
with status 130; ``--resume`` then carries on from the next step. A second Ctrl-C stops at once
without saving, keeping the previous checkpoint.

Exit status: 0 when the requested epochs are done, 1 when a file cannot be written, 2 for bad
arguments, missing or broken data and checkpoints that cannot be resumed, 130 after Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Callable, List, Optional, Tuple

import numpy as np

from .. import functional as F
from .. import nn, optim, set_num_threads
from .data import CLASSES, CIFAR10Error, find_data_dir, load_cifar10, normalize
from .tensorboard import TensorBoardLog

__all__ = ["build_model", "train_step", "evaluate", "confusion_matrix", "load_checkpoint", "model_from_checkpoint", "main"]

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.jsonl"
PLOT_NAME = "curves.png"
TENSORBOARD_NAME = "tb"
CHECKPOINT_FORMAT = "lossk-cifar10-checkpoint/1"
EVAL_BATCH = 500  # evaluation keeps nothing for backward: 500 images need ~70 MB of activations
EXIT_ERROR = 2  # bad arguments, missing data or an unusable checkpoint (argparse uses 2 as well)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C


# --------------------------------------------------------------------------- the network


def build_model(seed=None) -> nn.Sequential:
    """The tutorial's network with PyTorch's default initialisation.

    ``seed`` (anything ``numpy.random.default_rng`` takes) draws the initial weights; None draws
    them from lossk.nn's default generator, which ``lossk.nn.manual_seed`` resets.
    """
    rng = None if seed is None else np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2, rng=rng),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2, rng=rng),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2, rng=rng),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1024, 64, rng=rng),
        nn.Linear(64, 10, rng=rng),
    )


def train_step(model, criterion, optimizer, x: np.ndarray, y: np.ndarray) -> float:
    """One SGD step on the batch ``(x, y)``; returns the batch's mean loss before the step."""
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    model.backward(criterion.backward(), input_grad=False)  # the images need no gradient
    optimizer.step()
    return float(loss)


def confusion_matrix(model, x: np.ndarray, y: np.ndarray, batch_size: int = EVAL_BATCH) -> Tuple[np.ndarray, float]:
    """``(matrix, loss)``: the int64 (10, 10) counts of (true class, predicted class) of ``model`` on
    ``(x, y)``, and the mean cross-entropy."""
    matrix = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    loss_sum = 0.0
    with nn.no_grad():
        for start in range(0, len(x), batch_size):
            out = model(x[start:start + batch_size])
            target = y[start:start + batch_size]
            loss_sum += float(F.cross_entropy(out, target, reduction="sum"))
            np.add.at(matrix, (target, out.argmax(axis=1)), 1)
    return matrix, loss_sum / len(x)


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = EVAL_BATCH) -> Tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) of ``model`` on ``(x, y)``."""
    matrix, loss = confusion_matrix(model, x, y, batch_size)
    return loss, int(np.trace(matrix)) / len(x)


# --------------------------------------------------------------------------- run state


@dataclass
class Config:
    """What a run trains with; every field except ``epochs`` must match to resume a run."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: Optional[int] = None  # None: a fresh run draws one, so that it can be resumed
    limit_train: Optional[int] = None  # use only the first K training images
    limit_test: Optional[int] = None


@dataclass
class Position:
    """Where a run stands, everything but the weights and momentum buffers."""

    shuffle_state: dict  # the shuffling generator's state before it drew the current epoch's order
    epoch: int = 0  # finished epochs
    step: int = 0  # optimiser steps already taken in the current (unfinished) epoch
    loss_sum: float = 0.0  # loss times images over those steps
    train_seconds: float = 0.0  # spent on those steps
    elapsed: float = 0.0  # seconds of training and evaluation in this run, across all sessions
    metrics: List[dict] = field(default_factory=list)


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable or belongs to a different run."""


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Replace ``path`` by what ``write`` writes, so that ``path`` is never seen half written.

    The data goes to a temporary file in the same folder, is flushed to disk, then renamed over
    ``path``: a crash at any point leaves either the old file or the new one, never a mix.
    """
    # Not tempfile.mkstemp: its files are private (0600) and would stay so after the rename.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself only survives a power cut once the folder's entry is on disk too.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _architecture(model) -> List[list]:
    return [[name, list(value.shape)] for name, value in model.state_dict().items()]


def save_checkpoint(path: Path, model, optimizer, config: Config, data: dict, position: Position) -> None:
    """Write the run's complete state to ``path`` (see the module docstring)."""
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"optimizer/{name}": value for name, value in _optimizer_arrays(optimizer).items()})
    meta = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(config),
        "data": data,
        "architecture": _architecture(model),
        "position": asdict(position),
    }
    # A 0-d unicode array: stored as plain text in the .npz, readable with allow_pickle=False.
    arrays["meta"] = np.array(json.dumps(meta))
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def _optimizer_arrays(optimizer) -> dict:
    """The optimiser's state as named arrays: its per-parameter lists (SGD's momentum buffers,
    None until the first step) become ``"<name>/<parameter index>"`` entries, Nones left out."""
    return {
        f"{name}/{index}": value
        for name, values in optimizer.state_dict().items()
        for index, value in enumerate(values)
        if value is not None
    }


def _optimizer_state(optimizer, arrays: dict) -> dict:
    """Undo :func:`_optimizer_arrays`, for ``optimizer.load_state_dict``."""
    return {
        name: [arrays.get(f"{name}/{index}") for index in range(len(values))]
        for name, values in optimizer.state_dict().items()
    }


def load_checkpoint(path) -> Tuple[dict, dict, dict]:
    """Read a checkpoint written by this program: ``(meta, model state, optimizer state)``.

    ``meta`` holds the run's ``config``, ``data`` sizes, ``architecture`` and ``position``; the
    optimizer state is flat (see :func:`_optimizer_arrays`). Never unpickles anything.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
    except FileNotFoundError:
        raise CheckpointError(f"there is no checkpoint at {path}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of this program ({CHECKPOINT_FORMAT})")
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optimizer_state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    return meta, model_state, optimizer_state


def model_from_checkpoint(path) -> Tuple[nn.Sequential, dict]:
    """The trained network in a checkpoint, and the checkpoint's ``meta``."""
    meta, model_state, _ = load_checkpoint(path)
    model = build_model(0)
    if meta["architecture"] != _architecture(model):
        raise CheckpointError(f"{path} holds another network: parameters {meta['architecture']}")
    try:
        model.load_state_dict(model_state)
    except ValueError as e:
        raise CheckpointError(f"cannot load the network from {path}: {e}") from None
    return model, meta


def _write_metrics(path: Path, metrics: List[dict]) -> None:
    text = "".join(json.dumps(m) + "\n" for m in metrics)
    _atomic_write(path, lambda f: f.write(text.encode()))


def _append_metrics(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _plot(path: Path, metrics: List[dict]) -> None:
    # Figure without pyplot: no GUI backend is involved and no global state is touched.
    from matplotlib.figure import Figure

    epochs = [m["epoch"] for m in metrics]
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [m["train_loss"] for m in metrics], "o-", label="train")
    loss_ax.plot(epochs, [m["test_loss"] for m in metrics], "o-", label="test")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    loss_ax.legend()
    acc_ax.plot(epochs, [100 * m["test_accuracy"] for m in metrics], "o-", color="C2")
    acc_ax.set(xlabel="epoch", ylabel="%", title="test accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


# --------------------------------------------------------------------------- progress and Ctrl-C


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class _ProgressBar:
    """One epoch's progress on a stream: redrawn in place on a terminal, else a line per tenth.

    Logs (CI) get at most eleven lines an epoch instead of a wall of carriage returns.
    """

    WIDTH = 24
    REDRAW_SECONDS = 0.2

    def __init__(self, label: str, total: int, stream: IO[str]):
        self.label = label
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.last_draw = float("-inf")
        self.last_length = 0
        self.next_tenth = 1

    def update(self, done: int, images_per_s: float, loss: float) -> None:
        if self.tty:
            now = time.perf_counter()
            if now - self.last_draw < self.REDRAW_SECONDS and done < self.total:
                return
            self.last_draw = now
            line = self._line(done, images_per_s, loss)
            # Padding blanks out what is left of a longer previous line.
            self.stream.write("\r" + line.ljust(self.last_length))
            self.last_length = len(line)
        elif done * 10 >= self.next_tenth * self.total:
            self.next_tenth = done * 10 // self.total + 1
            self.stream.write(self._line(done, images_per_s, loss) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, done: int, images_per_s: float, loss: float) -> str:
        filled = self.WIDTH * done // self.total
        eta = (self.total - done) / images_per_s if images_per_s > 0 else 0.0
        width = len(str(self.total))
        return (
            f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done:>{width}}/{self.total} "
            f"{images_per_s:6.0f} img/s  loss {loss:.4f}  eta {_duration(eta)}"
        )


class _StopRequest:
    """Turns the first Ctrl-C into a request that the training loop honours between steps.

    Stopping between steps is what makes the state worth saving: a KeyboardInterrupt can land in
    the middle of an optimiser step, with some layers updated and others not. The first Ctrl-C
    re-arms Python's default handler, so a second one interrupts at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> "_StopRequest":
        # Signal handlers can only be installed from the main thread; elsewhere Ctrl-C is not ours.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# --------------------------------------------------------------------------- training


class _Run:
    """A training run: the model, its optimiser, the data and where the training stands."""

    def __init__(self, config: Config, data: Tuple[np.ndarray, ...], run_dir: Path, plot: bool):
        self.config = config
        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.data_sizes = {"train_images": len(self.x_train), "test_images": len(self.x_test)}
        self.checkpoint_path = run_dir / CHECKPOINT_NAME
        self.metrics_path = run_dir / METRICS_NAME
        self.plot_path = run_dir / PLOT_NAME if plot else None
        # Independent streams for the initial weights and the shuffling, both from the one seed.
        init_seed, shuffle_seed = np.random.SeedSequence(config.seed).spawn(2)
        self.model = build_model(init_seed)
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                   weight_decay=config.weight_decay)
        self.shuffle = np.random.default_rng(shuffle_seed)
        self.position = Position(shuffle_state=self.shuffle.bit_generator.state)
        self.saved = None  # (epoch, step) of the checkpoint on disk
        self.tensorboard: Optional[TensorBoardLog] = None

    @property
    def global_step(self) -> int:
        """Optimiser steps taken since the run started."""
        return self.position.epoch * self.steps_per_epoch + self.position.step

    def save(self) -> None:
        save_checkpoint(self.checkpoint_path, self.model, self.optimizer, self.config, self.data_sizes,
                        self.position)
        self.saved = (self.position.epoch, self.position.step)

    def saved_description(self) -> str:
        epoch, step = self.saved
        if step:
            return f"epoch {epoch + 1}, after step {step} of {self.steps_per_epoch}"
        return f"the end of epoch {epoch}" if epoch else "the initial weights"

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.x_train) // self.config.batch_size)

    def train(self, stop: _StopRequest, out: IO[str], err: IO[str]) -> bool:
        """Train up to ``config.epochs``; False if stopped early by ``stop`` (after saving)."""
        pos, config = self.position, self.config
        while pos.epoch < config.epochs:
            if not self._train_epoch(stop, err):
                self.save()
                return False
            epoch_start = time.perf_counter()
            test_loss, test_accuracy = evaluate(self.model, self.x_test, self.y_test)
            eval_seconds = time.perf_counter() - epoch_start
            record = {
                "epoch": pos.epoch + 1,
                "train_loss": pos.loss_sum / len(self.x_train),
                "test_loss": test_loss,
                "test_accuracy": test_accuracy,
                "train_images_per_s": len(self.x_train) / pos.train_seconds,
                "train_seconds": pos.train_seconds,
                "epoch_seconds": pos.train_seconds + eval_seconds,
                "elapsed_seconds": pos.elapsed + eval_seconds,
                "wall_time": time.time(),
                "lr": config.lr,
            }
            pos.metrics.append(record)
            if self.tensorboard is not None:  # before the checkpoint: see TensorBoardLog
                self.tensorboard.epoch(self.global_step, record, self.model)
            pos.epoch += 1
            pos.step = 0
            pos.loss_sum = pos.train_seconds = 0.0
            pos.elapsed = record["elapsed_seconds"]
            pos.shuffle_state = self.shuffle.bit_generator.state
            # The checkpoint goes first: should the metrics line then be lost, --resume rewrites
            # the metrics file from the checkpoint's copy.
            self.save()
            _append_metrics(self.metrics_path, record)
            if self.plot_path is not None:
                _plot(self.plot_path, pos.metrics)
            print(
                f"epoch {record['epoch']:>{len(str(config.epochs))}}/{config.epochs}  "
                f"train loss {record['train_loss']:.4f}  test loss {test_loss:.4f}  "
                f"test accuracy {100 * test_accuracy:6.2f}%  "
                f"{record['train_images_per_s']:.0f} img/s  {record['epoch_seconds']:.1f} s",
                file=out, flush=True,
            )
            if stop.requested:  # Ctrl-C during evaluation or saving: the epoch is saved, stop here
                return False
        return True

    def _train_epoch(self, stop: _StopRequest, err: IO[str]) -> bool:
        """Run the current epoch's remaining steps; False if ``stop`` ended it early."""
        pos, batch_size = self.position, self.config.batch_size
        n = len(self.x_train)
        # Drawing the order from the state saved before it makes a resumed epoch see the same order.
        self.shuffle.bit_generator.state = pos.shuffle_state
        order = self.shuffle.permutation(n)
        bar = _ProgressBar(f"epoch {pos.epoch + 1}/{self.config.epochs}", n, err)
        session_images, session_seconds = 0, 0.0
        try:
            while pos.step < self.steps_per_epoch:
                batch = order[pos.step * batch_size:(pos.step + 1) * batch_size]
                start = time.perf_counter()
                loss = train_step(self.model, self.criterion, self.optimizer,
                                  self.x_train[batch], self.y_train[batch])
                seconds = time.perf_counter() - start
                pos.step += 1
                pos.loss_sum += loss * len(batch)
                pos.train_seconds += seconds
                pos.elapsed += seconds
                session_images += len(batch)
                session_seconds += seconds
                if self.tensorboard is not None:
                    self.tensorboard.step(self.global_step, loss)
                done = min(pos.step * batch_size, n)
                bar.update(done, session_images / session_seconds, pos.loss_sum / done)
                if stop.requested:
                    return False
        finally:
            bar.close()
        return True


# --------------------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _float_at_least(low: float, inclusive: bool):
    def parse(text: str) -> float:
        value = float(text)
        if not (value >= low if inclusive else value > low):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low}, got {text}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    defaults = Config()
    p = argparse.ArgumentParser(
        prog="python -m lossk.cifar10",
        description="Train the PyTorch CIFAR-10 tutorial CNN with lossk's kernels.",
        epilog="Ctrl-C saves the position after the current step; --resume continues from it exactly. "
               "Other commands: python -m lossk.cifar10 predict|evaluate --help.",
    )
    # Training options default to None so that --resume can tell which ones were given explicitly.
    p.add_argument("--data", metavar="DIR", help="CIFAR-10 folder or archive (default: $LOSSK_CIFAR10, "
                   "else ~/.cache/lossk/cifar10)")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 (163 MB) there if absent")
    p.add_argument("--epochs", type=_positive_int, metavar="N", help=f"total epochs (default {defaults.epochs})")
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help=f"default {defaults.batch_size}")
    p.add_argument("--lr", type=_float_at_least(0.0, False), metavar="X", help=f"default {defaults.lr}")
    p.add_argument("--momentum", type=_float_at_least(0.0, True), metavar="X", help=f"default {defaults.momentum}")
    p.add_argument("--weight-decay", type=_float_at_least(0.0, True), metavar="X", help=f"default {defaults.weight_decay}")
    p.add_argument("--seed", type=int, metavar="N", help="seed for the initial weights and the shuffling (default: random, "
                   "recorded in the checkpoint)")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="kernel threads (default: lossk's default)")
    p.add_argument("--out", metavar="RUN_DIR", default=os.path.join("runs", "cifar10"),
                   help="run folder for checkpoint, metrics and plot (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR; its settings apply unless given again")
    p.add_argument("--plot", action="store_true", help=f"write {PLOT_NAME} after each epoch (needs matplotlib)")
    p.add_argument("--tensorboard", nargs="?", const="", metavar="DIR",
                   help=f"write TensorBoard event files to DIR (default RUN_DIR/{TENSORBOARD_NAME}; needs tensorboardX)")
    p.add_argument("--log-every", type=_positive_int, metavar="N", default=50,
                   help="with --tensorboard: log the training loss every N steps (default %(default)s)")
    p.add_argument("--limit-train", type=_positive_int, metavar="K", help="train on the first K images only")
    p.add_argument("--limit-test", type=_positive_int, metavar="K", help="test on the first K images only")
    return p


def _config_for_new_run(args: argparse.Namespace) -> Config:
    given = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name) is not None}
    config = Config(**given)
    if config.seed is None:
        config.seed = secrets.randbits(32)
    return config


def _config_for_resume(args: argparse.Namespace, meta: dict, path: Path) -> Config:
    saved = Config(**meta["config"])
    differing = [
        f"--{f.name.replace('_', '-')} {getattr(args, f.name)} (checkpoint: {getattr(saved, f.name)})"
        for f in fields(Config)
        if f.name != "epochs" and getattr(args, f.name) is not None
        and getattr(args, f.name) != getattr(saved, f.name)
    ]
    if differing:
        raise CheckpointError(
            f"cannot resume {path}: it was trained with other settings: {'; '.join(differing)}. "
            "Leave these options out to continue with the checkpoint's settings, or pass another "
            "--out to start a new run."
        )
    if args.epochs is not None:
        saved.epochs = args.epochs  # training longer (or stopping earlier) is the point of resuming
    done = meta["position"]["epoch"]
    if saved.epochs < done:
        raise CheckpointError(f"cannot resume {path} to --epochs {saved.epochs}: it already has {done} epochs")
    return saved


def _check_compatible(meta: dict, run: _Run, path: Path) -> None:
    if meta["architecture"] != _architecture(run.model):
        raise CheckpointError(
            f"cannot resume {path}: its model has parameters {meta['architecture']}, but this program's "
            f"network has {_architecture(run.model)}"
        )
    if meta["data"] != run.data_sizes:
        raise CheckpointError(
            f"cannot resume {path}: it was trained on {meta['data']['train_images']} training and "
            f"{meta['data']['test_images']} test images, this data has {run.data_sizes['train_images']} "
            f"and {run.data_sizes['test_images']}"
        )


def _load_data(args: argparse.Namespace, config: Config, err: IO[str]) -> Tuple[np.ndarray, ...]:
    try:
        x_train, y_train, x_test, y_test = load_cifar10(args.data, download=args.download)
    except CIFAR10Error as e:
        message = str(e)
        if not args.download and message.startswith("CIFAR-10 not found"):
            message += "\nOn this command line, that is: add --download."
        raise CIFAR10Error(message) from None
    # Slicing before converting keeps the float copies as small as the limits allow.
    x_train, y_train = x_train[:config.limit_train], y_train[:config.limit_train]
    x_test, y_test = x_test[:config.limit_test], y_test[:config.limit_test]
    print(f"CIFAR-10 from {find_data_dir(args.data)}: {len(x_train)} training and {len(x_test)} test images",
          file=err)
    # One conversion up front (50000 images: 614 MB of float32), so a step only gathers its batch.
    return normalize(x_train), y_train, normalize(x_test), y_test


def _run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if args.threads is not None:
        set_num_threads(args.threads)
    run_dir = Path(args.out)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    plot = args.plot
    if plot and not _importable("matplotlib"):
        print("--plot: matplotlib is not installed (pip install matplotlib); no plot will be drawn", file=err)
        plot = False

    if args.tensorboard is not None and not _importable("tensorboardX"):
        raise CIFAR10Error("--tensorboard: tensorboardX is not installed (pip install tensorboardX, "
                           "or lossk[tensorboard])")

    if args.resume:
        meta, model_state, optimizer_state = load_checkpoint(checkpoint_path)
        config = _config_for_resume(args, meta, checkpoint_path)
    elif checkpoint_path.exists():
        raise CheckpointError(
            f"{run_dir} already holds a run ({checkpoint_path}); pass --resume to continue it, or "
            "choose another --out"
        )
    else:
        config = _config_for_new_run(args)

    run = _Run(config, _load_data(args, config, err), run_dir, plot=plot)
    if args.resume:
        _check_compatible(meta, run, checkpoint_path)
        run.model.load_state_dict(model_state)
        run.optimizer.load_state_dict(_optimizer_state(run.optimizer, optimizer_state))
        run.position = Position(**meta["position"])
        run.saved = (run.position.epoch, run.position.step)
        _write_metrics(run.metrics_path, run.position.metrics)  # drop lines newer than the checkpoint
        print(f"resuming {checkpoint_path} from {run.saved_description()}", file=err)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_metrics(run.metrics_path, [])
        run.save()
    print(f"run {run_dir}: epochs {config.epochs}, batch size {config.batch_size}, lr {config.lr}, "
          f"momentum {config.momentum}, weight decay {config.weight_decay}, seed {config.seed}", file=err)

    if args.tensorboard is not None:
        log_dir = Path(args.tensorboard) if args.tensorboard else run_dir / TENSORBOARD_NAME
        run.tensorboard = TensorBoardLog(log_dir, args.log_every, run.global_step)
        print(f"TensorBoard events in {log_dir} (tensorboard --logdir {log_dir})", file=err)
    try:
        with _StopRequest() as stop:
            finished = run.train(stop, out, err)
    except KeyboardInterrupt:
        print(f"\nInterrupted; {checkpoint_path} keeps {run.saved_description()}. "
              "Continue with --resume.", file=err)
        return EXIT_INTERRUPTED
    finally:
        if run.tensorboard is not None:
            run.tensorboard.close()
    if not finished:
        print(f"Stopped by Ctrl-C; saved {run.saved_description()} to {checkpoint_path}. "
              "Continue with --resume.", file=err)
        return EXIT_INTERRUPTED

    metrics, elapsed = run.position.metrics, run.position.elapsed
    images_per_s = len(metrics) * len(run.x_train) / sum(m["train_seconds"] for m in metrics)
    print(
        f"done: {len(metrics)} epoch{'' if len(metrics) == 1 else 's'}, "
        f"final test accuracy {100 * metrics[-1]['test_accuracy']:.2f}%, "
        f"total {_duration(elapsed)} ({elapsed:.1f} s), mean {images_per_s:.0f} training img/s",
        file=out, flush=True,
    )
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line with ``argv`` (default: sys.argv[1:]); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args, sys.stdout, sys.stderr)
    except (CIFAR10Error, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:  # disk full, no permission: the previous checkpoint is still intact
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before training started: nothing to save
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED

