"""The tiny hypernetwork the tests build, and an untrained checkpoint of it (one place for both).

Test modules import it as ``from tiny import ...``: pytest puts ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from hyperkit.files import save_atomic
from hyperkit.model.hypernet import HyperUNet
from hyperkit.training.checkpoint import CHECKPOINT_KIND

#: ``model`` settings of a hypernetwork small enough to build and run in a test in well under a second
TINY_MODEL: dict[str, Any] = {"base_width": 8, "hidden": 32, "n_patches": 4, "samplings": 1, "pos_dim": 8,
                              "zstar_hidden": 16, "zstar_dim": 8, "head_hidden": 16}


def untrained_checkpoint(config: Mapping[str, Any], path: Path, *, seed: int = 0) -> Path:
    """Write a checkpoint of ``HyperUNet.from_config(config["model"])``, initialised under ``seed``.

    It is what training writes (``kind``, ``model``, ``state``, ``config``) with untrained weights;
    ``config`` is recorded as given. Returns ``path``.
    """
    torch.manual_seed(seed)
    hyper = HyperUNet.from_config(config["model"])
    return save_atomic({"kind": CHECKPOINT_KIND, "model": hyper.state_dict(), "state": {}, "config": config}, path)
