"""On-the-fly augmentation with MONAI (paper section 4): flips, 90-degree rotations, affine;
Gaussian noise, smoothing and contrast. Support and query are augmented independently.

Not in the paper: :func:`remap_intensity`, one random non-monotone intensity curve shared by a
task's support and query (``train.intensity_remap``), so that a CT-trained encoder meets tissue
orders other than CT's, as on MRI, where fat and blood can be the brightest tissues."""

from __future__ import annotations

import math

import torch
from monai.transforms import (Compose, RandAdjustContrastd, RandAffined, RandFlipd, RandGaussianNoised,
                              RandGaussianSmoothd, RandHistogramShiftd, RandRotate90d, RandScaleIntensityd,
                              RandShiftIntensityd)
from torch import Tensor

__all__ = ["build_augment", "augment_pair", "rescale_percentiles", "random_curve", "remap_intensity"]

_KEYS = ("image", "mask")


def build_augment(intensity: str = "paper") -> Compose:
    """The augmentation pipeline on a dict ``{"image": (1, D, H, W), "mask": (1, D, H, W)}``.

    Args:
        intensity: ``"paper"``: Gaussian noise, smoothing and a gamma in [0.7, 1.5]
            (the paper's "contrast adjustments"); ``"wide"``: a gamma in [0.5, 2.0] and,
            in addition, a random intensity scale (x 0.7-1.3) and shift (+- 0.5) and a
            random monotone histogram shift, so that the encoder does not rely on CT's
            absolute intensities (the hypernetwork never sees MRI in training).
    """
    if intensity not in ("paper", "wide"):
        raise ValueError(f"intensity must be 'paper' or 'wide', got {intensity!r}")
    contrast = (0.5, 2.0) if intensity == "wide" else (0.7, 1.5)
    wide = [RandScaleIntensityd(keys="image", factors=0.3, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.5, prob=0.5),
            RandHistogramShiftd(keys="image", num_control_points=(5, 10), prob=0.3)] if intensity == "wide" else []
    return Compose([
        RandFlipd(keys=_KEYS, prob=0.5, spatial_axis=0),
        RandFlipd(keys=_KEYS, prob=0.5, spatial_axis=1),
        RandFlipd(keys=_KEYS, prob=0.5, spatial_axis=2),
        RandRotate90d(keys=_KEYS, prob=0.5, max_k=3, spatial_axes=(0, 1)),
        RandAffined(keys=_KEYS, prob=0.3, rotate_range=(math.pi / 12,) * 3, scale_range=(0.1,) * 3,
                    mode=("bilinear", "nearest"), padding_mode="border"),
        RandGaussianNoised(keys="image", prob=0.3, std=0.05),
        RandGaussianSmoothd(keys="image", prob=0.2, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
        RandAdjustContrastd(keys="image", prob=0.5 if wide else 0.3, gamma=contrast),
        *wide,
    ])


def augment_pair(transform: Compose, image: Tensor, mask: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Augment one (image, mask) pair reproducibly.

    Args:
        transform: from :func:`build_augment`.
        image: ``(1, D, H, W)`` float.
        mask: ``(1, D, H, W)`` binary.
        seed: seeds every random transform (same seed -> same result).

    Returns:
        The augmented pair; if augmentation removed the whole target (possible for tiny
        structures under rotation/scaling), the input pair unchanged.
    """
    transform.set_random_state(seed=seed % (2 ** 32))
    out = transform({"image": image, "mask": mask})
    new_mask = (torch.as_tensor(out["mask"]) > 0.5).to(mask.dtype)
    if not bool(new_mask.any()):
        return image, mask
    return torch.as_tensor(out["image"]).as_subclass(Tensor).to(image.dtype), new_mask.as_subclass(Tensor)


#: control points of a random intensity curve (evenly spaced over the rescaled intensities [0, 1])
CURVE_POINTS = 5


def rescale_percentiles(x: Tensor, low: float = 0.01, high: float = 0.99) -> Tensor:
    """Each patch's ``low``-``high`` quantiles (nearest rank) mapped to [0, 1] and clipped (the kit's
    MRI normalisation, applied per patch).

    Args:
        x: ``(N, 1, D, H, W)`` float patches.

    Raises:
        ValueError: ``x`` is not 5-D float patches with voxels (an integer stack would be cast back to
            {0, 1}), or not ``0 <= low < high <= 1``.
    """
    if x.ndim != 5 or 0 in x.shape:
        raise ValueError(f"x must be (N, 1, D, H, W) with voxels, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point (the result lies in [0, 1]), got dtype {x.dtype}")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    flat = x.flatten(1).float()
    n = flat.shape[1]
    lo, hi = (flat.kthvalue(round(q * (n - 1)) + 1, dim=1).values.view(-1, 1, 1, 1, 1) for q in (low, high))
    return ((x - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.0, 1.0).to(x.dtype)


def random_curve(generator: torch.Generator, points: int = CURVE_POINTS) -> Tensor:
    """``(points,)`` values drawn uniformly in [0, 1]: a random, in general non-monotone, intensity curve."""
    if points < 2:
        raise ValueError(f"a curve needs at least 2 points, got {points}")
    return torch.rand(points, generator=generator)


def remap_intensity(x: Tensor, curve: Tensor) -> Tensor:
    """Rescale each patch (:func:`rescale_percentiles`), then map it through the piecewise-linear
    ``curve`` (its values at evenly spaced points of [0, 1]).

    Args:
        x: ``(N, 1, D, H, W)`` patches; a task's support and query pass together, so that they
            share one curve as the support and query of an MRI target share a sequence.
        curve: ``(K,)``, K >= 2, from :func:`random_curve`.

    Returns:
        ``(N, 1, D, H, W)`` in [min(curve), max(curve)].
    """
    if curve.ndim != 1 or curve.numel() < 2:
        raise ValueError(f"curve must be 1-D with at least 2 values, got shape {tuple(curve.shape)}")
    t = rescale_percentiles(x) * (curve.numel() - 1)
    i = t.floor().clamp(max=curve.numel() - 2).long()
    w = t - i
    c = curve.to(device=x.device, dtype=x.dtype)
    return c[i] * (1 - w) + c[i + 1] * w
