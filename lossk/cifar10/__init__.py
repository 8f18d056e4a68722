"""The CIFAR-10 application built on lossk: the PyTorch tutorial's network trained without a
deep-learning framework (``python -m lossk.cifar10 --data DIR``).

:mod:`lossk.cifar10.data` loads the dataset from its official layouts (with an optional download);
:mod:`lossk.cifar10.train` holds the network, the training loop, checkpoints and the training command
line, :mod:`lossk.cifar10.tensorboard` its TensorBoard log; :mod:`lossk.cifar10.predict` and
:mod:`lossk.cifar10.evaluation` ask a trained network about image files and the test set, and
:mod:`lossk.cifar10.cli` dispatches ``python -m lossk.cifar10 [train|predict|evaluate]``.
"""
from .data import CLASSES, CIFAR10Error, download_cifar10, find_data_dir, load_cifar10, normalize
from .cli import main
from .train import build_model, evaluate, train_step

__all__ = ["CLASSES", "CIFAR10Error", "build_model", "download_cifar10", "evaluate", "find_data_dir",
           "load_cifar10", "main", "normalize", "train_step"]
