"""The standalone U-Net file that ``hyperkit generate`` writes and ``hyperkit segment`` reads.

A model file is a plain dict of tensors, strings, numbers, lists and dicts, saved with
:func:`~hyperkit.files.save_atomic`, so it loads with
``torch.load(path, weights_only=True)`` and needs neither the hypernetwork nor its
checkpoint. Keys:

- ``kind``: :data:`MODEL_KIND`.
- ``unet_config``: the :class:`~hyperkit.model.unet.UNet3D` constructor arguments.
- ``state_dict``: the U-Net's weights (generated decoder + shared encoder).
- ``data``: the preprocessing the U-Net expects (``spacing``, ``patch_size``,
  ``ct_clip``, ``mri_percentiles``), i.e. the training profile's ``data`` section.
- ``channel``, ``modality``: the image channel name and ``"CT"`` or ``"MRI"``.
- ``profile``, ``task``: the training profile's name and an optional task name.
- ``source``: the checkpoint, support image and mask it was made from (strings).
- ``adaptation``: the gradient step on the support (paper A.1) and its loss before/after.
- ``provenance``: package versions, git commit, creation time, command line.
- ``support`` (optional; files of ``hyperkit generate``): where the support's target lies, for
  localisation in a new scan: a downsampled uint8 copy of the preprocessed support image
  (``image_u8``, about 5 mm voxels), its ``affine``, the mask's world box ``box_mm`` and the
  ``modality`` (:class:`~hyperkit.inference.localise.SupportReference`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from hyperkit.data.preprocess import DataConfig
from hyperkit.data.tasks import check_modality
from hyperkit.errors import HyperkitError
from hyperkit.model.unet import UNet3D
from hyperkit.provenance import run_record
from hyperkit.files import read_torch_file, save_atomic
from hyperkit.training.checkpoint import CHECKPOINT_KIND
from hyperkit.training.device import check_device

__all__ = ["MODEL_KIND", "META_KEYS", "save_unet", "load_unet", "file_kind"]

#: marker stored in every standalone U-Net model file of the kit
MODEL_KIND = "hyperkit/unet-model/v1"
#: the metadata segmenting needs besides the weights: what every model file holds and what
#: :func:`load_unet` returns (also required of a ``(unet, meta)`` pair given to ``segment_scan``)
META_KEYS: tuple[str, ...] = ("data", "channel", "modality")

def _plain(value: Any) -> Any:
    """Paths and tuples -> str and lists, recursively, so that ``weights_only`` loading works."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None or isinstance(value, torch.Tensor):
        return value
    return str(value)


def save_unet(unet: UNet3D, path: str | Path, *, data: DataConfig, channel: str, modality: str, profile: str,
              task: str | None, source: Mapping[str, Any], adaptation: Mapping[str, Any] | None = None,
              support: Mapping[str, Any] | None = None) -> Path:
    """Write a generated U-Net and what it needs to segment a new scan.

    Args:
        unet: the U-Net (any device; its weights are stored on the CPU).
        path: output file (parent folders are created; an existing file is replaced atomically).
        data: the preprocessing of the profile the hypernetwork was trained with.
        channel: image channel name given to :func:`~hyperkit.data.preprocess.normalise_channel`.
        modality: ``"CT"`` or ``"MRI"``.
        profile: the training profile's name.
        task: an optional name of the target structure.
        source: where the model came from (checkpoint, image, mask ...); values are stored as strings.
        adaptation: the support gradient step's settings and losses, if any.
        support: :meth:`~hyperkit.inference.localise.SupportReference.to_dict` of the support scan
            (what ``hyperkit segment --roi auto`` registers to a new scan), if any.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``modality`` is not ``"CT"`` or ``"MRI"``.
    """
    modality = check_modality(modality)
    record = run_record()
    obj = {
        "kind": MODEL_KIND,
        "unet_config": dict(unet.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in unet.state_dict().items()},
        "data": {"spacing": float(data.spacing), "patch_size": int(data.patch_size),
                 "ct_clip": [float(v) for v in data.ct_clip],
                 "mri_percentiles": [float(v) for v in data.mri_percentiles]},
        "channel": str(channel),
        "modality": modality,
        "profile": str(profile),
        "task": None if task is None else str(task),
        "source": {str(k): (None if v is None else str(v)) for k, v in source.items()},
        "adaptation": _plain(dict(adaptation)) if adaptation is not None else None,
        "provenance": _plain({k: record[k] for k in ("created", "command", "versions", "commit", "platform",
                                                      "compute")}),
    }
    if support is not None:
        obj["support"] = _plain(dict(support))
    return save_atomic(obj, path)


def load_unet(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[UNet3D, dict[str, Any]]:
    """Load a model file written by :func:`save_unet` (``weights_only=True``).

    Args:
        path: the model file.
        map_location: device of the returned U-Net (the file is read on the CPU, then moved).

    Returns:
        The U-Net in eval mode and the file's metadata (every key but ``state_dict``).

    Raises:
        FileNotFoundError: no such file.
        HyperkitError: ``map_location`` is not a device of this machine; not a torch file, not a
            hyperkit U-Net model (a hypernetwork checkpoint says so), a required key missing, a
            modality other than CT or MRI, or weights that do not fit the stored U-Net config.
    """
    device = check_device(map_location, "map_location")
    p = Path(path)
    obj = read_torch_file(p, "hyperkit U-Net model file")
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == CHECKPOINT_KIND:
        raise HyperkitError(f"{p}: this is a hypernetwork checkpoint; make a model with `hyperkit generate` first")
    if kind != MODEL_KIND:
        what = f"kind {kind!r}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise HyperkitError(f"{p}: not a hyperkit U-Net model file ({what}, expected kind {MODEL_KIND!r})")
    missing = [k for k in ("unet_config", "state_dict", *META_KEYS) if k not in obj]
    if missing:
        raise HyperkitError(f"{p}: model file lacks key(s) {missing}")
    check_modality(obj["modality"], f"{p}: the model file's modality")
    config = obj["unet_config"]
    try:
        unet = UNet3D(**config)
    except (TypeError, ValueError) as exc:
        raise HyperkitError(f"{p}: invalid U-Net config {config!r} ({exc})") from exc
    state = obj["state_dict"]
    try:
        unet.load_state_dict(state)
    except (RuntimeError, AttributeError, TypeError) as exc:
        raise HyperkitError(f"{p}: the stored weights do not fit the stored U-Net config {config!r} "
                            f"({_state_mismatch(unet, state)})") from exc
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return unet.to(device).eval(), meta


def file_kind(path: str | Path) -> str | None:
    """The ``kind`` a kit file records (:data:`MODEL_KIND`, the checkpoint kind ...), or ``None``
    for a file that is not a readable torch dict with a string ``kind``."""
    try:
        obj = read_torch_file(Path(path), "file")
    except (FileNotFoundError, HyperkitError):
        return None
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) else None


def _state_mismatch(unet: UNet3D, state: Any) -> str:
    """One line: which tensors are missing, unexpected or of the wrong shape."""
    if not isinstance(state, Mapping):
        return f"state_dict is a {type(state).__name__}, not a dict"
    want = unet.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shapes = [f"{k} {tuple(getattr(state[k], 'shape', ()))} vs {tuple(want[k].shape)}"
              for k in sorted(set(want) & set(state)) if getattr(state[k], "shape", None) != want[k].shape]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            parts.append(f"{len(items)} {label}: {', '.join(items[:2])}{' ...' if len(items) > 2 else ''}")
    return "; ".join(parts) or "load_state_dict failed"
