"""A module's train/eval mode for the length of a block."""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode inside the block; the caller's mode is restored after, also when the block raises."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)
