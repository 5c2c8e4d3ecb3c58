"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from hyperkit.errors import HyperkitError

__all__ = ["save_atomic", "load_checkpoint", "CHECKPOINT_KIND"]

#: marker stored in every hypernetwork checkpoint of the kit
CHECKPOINT_KIND = "hyperkit/hyperunet-checkpoint/v1"


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or kill during the write leaves the previous file at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a kit checkpoint safely (``weights_only=True``) and check what it is.

    Raises:
        FileNotFoundError: no such file.
        HyperkitError: not a torch file, or not a hyperkit hypernetwork checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean "not a checkpoint we can read"
        raise HyperkitError(f"{p}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(obj, dict) or obj.get("kind") != CHECKPOINT_KIND:
        raise HyperkitError(f"{p}: not a hyperkit hypernetwork checkpoint (kind {obj.get('kind') if isinstance(obj, dict) else type(obj).__name__!r})")
    return obj
