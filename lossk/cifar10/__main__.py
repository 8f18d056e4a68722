"""``python -m lossk.cifar10``: the command line of :mod:`lossk.cifar10.cli`."""
import sys

from .cli import main

sys.exit(main())
