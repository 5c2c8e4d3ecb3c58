"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hyperkit.errors import ConfigError, HyperkitError
from hyperkit.files import read_torch_file
from hyperkit.training.device import check_device

if TYPE_CHECKING:
    from hyperkit.model.hypernet import HyperUNet

__all__ = ["load_checkpoint", "load_hypernet", "CHECKPOINT_KIND"]

#: marker stored in every hypernetwork checkpoint of the kit
CHECKPOINT_KIND = "hyperkit/hyperunet-checkpoint/v1"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a kit checkpoint safely (``weights_only=True``) and check what it is.

    Raises:
        FileNotFoundError: no such file.
        HyperkitError: not a torch file, or not a hyperkit hypernetwork checkpoint.
    """
    p = Path(path)
    obj = read_torch_file(p, "hyperkit checkpoint", map_location)
    if not isinstance(obj, dict) or obj.get("kind") != CHECKPOINT_KIND:
        kind = obj.get("kind") if isinstance(obj, dict) else type(obj).__name__
        hint = ("; it is a U-Net model file of `hyperkit generate`, which `hyperkit segment` reads"
                if isinstance(kind, str) and kind.startswith("hyperkit/unet-model") else "")
        raise HyperkitError(f"{p}: not a hyperkit hypernetwork checkpoint (kind {kind!r}){hint}; give the "
                            "best.pt or last.pt of a `hyperkit train` run")
    return obj


def load_hypernet(path: str | Path, profile: str | None = None,
                  map_location: str | Any = "cpu") -> tuple["HyperUNet", dict[str, Any]]:
    """A trained hypernetwork (eval mode) and the resolved config it was trained with.

    Args:
        path: a run's ``best.pt`` or ``last.pt``.
        profile: when given (``"quick"``, ``"paper"`` or a YAML path), the checkpoint's
            ``data`` and ``model`` sections must equal that profile's (a setting the checkpoint
            lacks counts at its default: :func:`~hyperkit.config.reread_config`).
        map_location: device of the returned model (the file is read on the CPU, then moved).

    Raises:
        FileNotFoundError, HyperkitError: as :func:`load_checkpoint`; ``map_location`` is not a
            device of this machine.
        ConfigError: the checkpoint was trained with another profile than ``profile``.
    """
    from hyperkit.config import check_config, load_profile, reread_config
    from hyperkit.model.hypernet import HyperUNet

    device = check_device(map_location, "map_location")
    ck = load_checkpoint(path)
    cfg = check_config(ck["config"])  # read back through the one validator
    if profile is not None:  # a setting added since the checkpoint compares at its default
        got, want = reread_config(cfg), reread_config(load_profile(profile))
        diff = [f"{sec}.{k}: checkpoint {got[sec].get(k)!r}, profile {want[sec].get(k)!r}"
                for sec in ("data", "model") for k in sorted(set(got[sec]) | set(want[sec]))
                if got[sec].get(k) != want[sec].get(k)]
        if diff:
            raise ConfigError(f"{path}: trained with profile {cfg.get('name')!r}, not {profile!r} "
                              f"({'; '.join(diff[:3])}{' ...' if len(diff) > 3 else ''})")
    model = HyperUNet.from_config(cfg["model"])
    model.load_state_dict(ck["model"])
    return model.to(device).eval(), cfg
