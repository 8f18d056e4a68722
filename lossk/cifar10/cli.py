"""``python -m lossk.cifar10 [train|predict|evaluate] ...``: training is the default command, so
``python -m lossk.cifar10 --data DIR`` trains."""
import sys
from typing import List, Optional

from . import evaluation, predict, train

COMMANDS = {"train": train.main, "predict": predict.main, "evaluate": evaluation.main}


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command named by ``argv[0]`` (default: sys.argv[1:]; training when none is named)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return train.main(argv)
