"""Segmentation metrics of the paper (docs/design.md §6), computed with MONAI.

- Dice similarity coefficient (DSC): ``2|P ∩ G| / (|P| + |G|)``.
- Normalised surface Dice (NSD) at tolerance τ = 2 mm: the fraction of both
  boundaries that lies within τ of the other boundary, with the true voxel spacing.
  The evaluation also scores NSD at one voxel (:func:`voxel_tolerance`): with voxels
  coarser than τ (4 mm in the quick profile), NSD@τ counts only boundaries that coincide.

Both take binary volumes ``(D, H, W)`` (or with leading singleton axes), numpy or torch.
Empty cases follow a fixed convention: both empty -> 1.0, one empty -> 0.0.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_surface_dice

__all__ = ["dice", "nsd", "voxel_tolerance", "as_binary_batch", "copy_support"]

# MONAI 1.6's surface distance passes an argument that MONAI itself deprecated
# (monai/metrics/utils.py calls get_mask_edges(..., always_return_as_numpy=False)); the FutureWarning
# was printed by every `hyperkit evaluate` (with a site-packages path). The kit never passes that argument.
warnings.filterwarnings("ignore", message=r".*always_return_as_numpy", category=FutureWarning, module=r"monai\.")


def as_binary_batch(x: Any) -> torch.Tensor:
    """``(D, H, W)`` / ``(1, D, H, W)`` / ``(1, 1, D, H, W)`` binary -> float ``(1, 1, D, H, W)``.

    Integers are a 0/1 mask and booleans a mask; floats are a 0/1 mask or probabilities,
    thresholded at 0.5.

    Raises:
        ValueError: not one volume, or values outside [0, 1] (a multi-class label map, logits):
            those would be scored as one merged mask; or NaN values (a diverged model's output),
            which would be scored as background.
    """
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu()
    while t.dim() > 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"expected one binary volume (D, H, W), got shape {tuple(t.shape)}")
    if t.is_floating_point() and bool(t.isnan().any()):
        raise ValueError(f"expected a binary mask or probabilities in [0, 1], got {int(t.isnan().sum())} NaN "
                         f"value(s) of {t.numel()}")
    if t.dtype != torch.bool and t.numel():
        lo, hi = (float(v) for v in torch.aminmax(t))
        if lo < 0 or hi > 1:
            raise ValueError(f"expected a binary mask or probabilities in [0, 1], got values from {lo:g} to {hi:g}; "
                             "for a label map score one label at a time (labels == k)")
    return (t > 0.5 if t.is_floating_point() else t > 0).float()[None, None]


def _empty_convention(p: torch.Tensor, g: torch.Tensor) -> float | None:
    ps, gs = bool(p.any()), bool(g.any())
    if not ps and not gs:
        return 1.0
    if not ps or not gs:
        return 0.0
    return None


def dice(pred: Any, target: Any) -> float:
    """Dice of two binary volumes (MONAI ``compute_dice``).

    Args:
        pred, target: one volume each on the same grid, ``(D, H, W)``, ``(1, D, H, W)`` or ``(1, 1, D, H, W)``
            (:func:`as_binary_batch`).
    """
    p, g = as_binary_batch(pred), as_binary_batch(target)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {tuple(p.shape[2:])} differs from target shape {tuple(g.shape[2:])}")
    special = _empty_convention(p, g)
    if special is not None:
        return special
    return float(compute_dice(p, g, include_background=True)[0, 0])


def _check_spacing(spacing: Sequence[float]) -> None:
    if len(spacing) != 3 or not all(0 < float(s) < float("inf") for s in spacing):  # NaN fails the comparison too
        raise ValueError(f"spacing must be three positive values in mm, got {list(spacing)}")


def voxel_tolerance(spacing: Sequence[float]) -> float:
    """The NSD tolerance of "one voxel" in mm: the largest side of a voxel of ``spacing`` (3 values, mm).

    Raises:
        ValueError: ``spacing`` is not three positive values.
    """
    _check_spacing(spacing)
    return float(max(spacing))


def nsd(pred: Any, target: Any, spacing: Sequence[float], tau: float = 2.0) -> float:
    """Normalised surface Dice at tolerance ``tau`` mm (MONAI ``compute_surface_dice``).

    Args:
        pred, target: binary volumes on the same grid, ``(D, H, W)``, ``(1, D, H, W)`` or ``(1, 1, D, H, W)``.
        spacing: voxel size in mm, one value per axis.
        tau: tolerance in mm (paper: 2 mm).
    """
    if not 0 < tau < float("inf"):  # NaN fails the comparison too
        raise ValueError(f"tau must be a finite number > 0 mm, got {tau}")
    p, g = as_binary_batch(pred), as_binary_batch(target)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {tuple(p.shape[2:])} differs from target shape {tuple(g.shape[2:])}")
    _check_spacing(spacing)
    special = _empty_convention(p, g)
    if special is not None:
        return special
    # MONAI wants one-hot with a background channel; include_background=False scores the foreground only
    p2 = torch.cat([1 - p, p], dim=1)
    g2 = torch.cat([1 - g, g], dim=1)
    out = compute_surface_dice(p2, g2, class_thresholds=[tau], include_background=False,
                               spacing=[float(s) for s in spacing])
    return float(out[0, 0])


def copy_support(support_masks: torch.Tensor) -> torch.Tensor:
    """The "copy the support mask" reference: ``(K, 1, S, S, S)`` supports -> one ``(1, S, S, S)`` mask.

    With several supports, a voxel is foreground when most supports say so (vote > 0.5); with one
    support the prediction is that support's mask. It sits here, beside :func:`dice`, because
    every layer scores it: the evaluation's baseline and the phantoms' difficulty table.

    Raises:
        ValueError: ``support_masks`` is not 5-D, holds no support (K = 0), or is not binary (a 0/255
            mask would win every vote it takes part in).
    """
    if support_masks.dim() != 5 or not len(support_masks):
        raise ValueError(f"support masks must be (K, 1, S, S, S) with K >= 1, got shape {tuple(support_masks.shape)}")
    if support_masks.dtype != torch.bool and not bool(((support_masks == 0) | (support_masks == 1)).all()):
        values = support_masks.unique()
        shown = ", ".join(f"{float(v):g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
        raise ValueError(f"support masks must be binary (0 / 1), got values {shown}")
    return support_masks.float().mean(0) > 0.5
