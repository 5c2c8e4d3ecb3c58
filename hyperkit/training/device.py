"""The ``--device`` of every command (``train``, ``segment``): one check, one message."""

from __future__ import annotations

import torch

from hyperkit.errors import HyperkitError

__all__ = ["check_device"]


def check_device(device: str | torch.device, what: str = "--device") -> torch.device:
    """``device`` as a :class:`torch.device` this machine has (``what`` names it in the message).

    Raises:
        HyperkitError: naming the value: not a torch device, or CUDA where CUDA is not available.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise HyperkitError(f"{what} {device!r} is not a torch device (use cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HyperkitError(f"{what} {device!r}: CUDA is not available on this machine")
    return dev
