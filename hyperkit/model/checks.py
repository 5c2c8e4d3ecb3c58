"""Input checks shared by the model layer: each raises ``ValueError`` naming the offending value."""

from __future__ import annotations

import torch
from torch import Tensor

from hyperkit.model.unet import DOWNSAMPLING

__all__ = ["check_volume_shape", "check_same_shape", "check_binary_mask", "check_dtype"]


def check_volume_shape(shape: tuple[int, ...] | torch.Size, what: str = "image") -> None:
    """Raise unless the last three sides of ``shape`` are multiples of 16 (four stride-2 stages)."""
    sides = tuple(shape[-3:])
    if any(s % DOWNSAMPLING for s in sides):
        raise ValueError(
            f"{what} spatial shape {sides} is not a multiple of {DOWNSAMPLING} on every side "
            f"(four stride-2 stages); pad or crop it first (UNet3D.forward pads by itself)"
        )


def check_same_shape(image: Tensor, mask: Tensor, what: str = "support") -> None:
    """Raise unless image and mask have the same shape."""
    if image.shape != mask.shape:
        raise ValueError(f"{what} image/mask shape mismatch: image {tuple(image.shape)} vs mask {tuple(mask.shape)}")


def check_binary_mask(mask: Tensor, what: str = "support") -> None:
    """Raise unless every value of ``mask`` is 0 or 1."""
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{what} mask must be binary (0/1), found values {torch.unique(mask)[:5].tolist()}")


def check_dtype(x: Tensor, dtype: torch.dtype, what: str = "image") -> None:
    """Raise unless ``x`` has the model's parameter ``dtype`` (under autocast the ops cast: no check then).

    A float64 array from NumPy (``torch.from_numpy``) or an integer image would otherwise fail deep in a
    convolution ("expected scalar type Double but found Float").
    """
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"{what} dtype {x.dtype} differs from the model's {dtype}; convert it first (x.to({dtype}))")
