"""``python -m lossk.cifar10``: the training command line of :mod:`lossk.cifar10.train`."""
import sys

from .train import main

sys.exit(main())
