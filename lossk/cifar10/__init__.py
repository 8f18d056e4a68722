"""The CIFAR-10 application built on lossk: the PyTorch tutorial's network trained without a
deep-learning framework (``python -m lossk.cifar10 --data DIR``).

:mod:`lossk.cifar10.data` loads the dataset from its official layouts (with an optional download);
:mod:`lossk.cifar10.train` holds the network, the training loop, checkpoints and the command line.
"""
from .data import CLASSES, CIFAR10Error, download_cifar10, find_data_dir, load_cifar10, normalize
from .train import build_model, evaluate, main, train_step

__all__ = ["CLASSES", "CIFAR10Error", "build_model", "download_cifar10", "evaluate", "find_data_dir",
           "load_cifar10", "main", "normalize", "train_step"]
