"""TensorBoard logging for the trainer (``--tensorboard``), through ``tensorboardX`` (an optional extra:
``pip install "lossk[tensorboard]"``), so no deep-learning framework is needed to write the events.

Every scalar and histogram is recorded at the global step, the number of optimiser steps taken since
the run started (``epoch * steps_per_epoch + step``), so a resumed run continues the same x axis.
A session that resumes a run purges, in TensorBoard's view, whatever an earlier session logged past
the checkpoint it resumes from (a crash between two checkpoints leaves such events behind), so the
curves show each step once.

Tags:

* ``train/loss``: every ``log_every`` steps, the mean loss of the steps since the previous point;
* ``train/epoch_loss``, ``test/loss``, ``test/accuracy``, ``train/images_per_s`` and ``train/lr``:
  once an epoch, at the epoch's last step;
* ``weights/NAME`` and ``gradients/NAME`` histograms of every parameter once an epoch (the gradients
  of the epoch's last step).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TensorBoardLog"]


class TensorBoardLog:
    """Writes a run's scalars and histograms to the event files in ``log_dir``."""

    def __init__(self, log_dir: Path, log_every: int, start_step: int):
        """``start_step``: the optimiser steps the run had taken when this session started."""
        from tensorboardX import SummaryWriter
        # Hides the events an earlier session wrote after the checkpoint this one resumes from; the
        # trainer logs an epoch before checkpointing it, so what the checkpoint holds is logged.
        # The suffix keeps sessions started within the same second (the name's timestamp) from
        # writing to one file, and sorts them in the order TensorBoard must read them.
        self.writer = SummaryWriter(str(log_dir), purge_step=start_step + 1 if start_step else None,
                                    filename_suffix=f".step{start_step:012d}.{os.getpid()}")
        self.log_every = log_every
        self.loss_sum = 0.0
        self.loss_steps = 0

    def step(self, global_step: int, loss: float) -> None:
        """Record the loss of optimiser step number ``global_step`` (counted from 1)."""
        self.loss_sum += loss
        self.loss_steps += 1
        if global_step % self.log_every == 0:
            self.writer.add_scalar("train/loss", self.loss_sum / self.loss_steps, global_step)
            self.loss_sum, self.loss_steps = 0.0, 0

    def epoch(self, global_step: int, record: dict, model) -> None:
        """Record an epoch's metrics (a ``metrics.jsonl`` record) and the model's parameters."""
        scalars = {
            "train/epoch_loss": record["train_loss"],
            "test/loss": record["test_loss"],
            "test/accuracy": record["test_accuracy"],
            "train/images_per_s": record["train_images_per_s"],
            "train/lr": record["lr"],
        }
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, global_step)
        for name, parameter in model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", parameter.data, global_step)
            self.writer.add_histogram(f"gradients/{name}", parameter.grad, global_step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
