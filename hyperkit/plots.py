"""Pictures a student would rather look at than read: slices with label overlays."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

__all__ = ["to_volume", "mask_centre", "show_triplanar", "label_colormap"]

_VIEWS = ("axial", "coronal", "sagittal")


def to_volume(x: Any) -> np.ndarray:
    """``(X, Y, Z)``, ``(1, X, Y, Z)`` or ``(1, 1, X, Y, Z)`` numpy/torch -> numpy ``(X, Y, Z)``."""
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"expected a 3D volume (optionally with leading singleton axes), got shape {arr.shape}")
    return arr


def mask_centre(mask: np.ndarray | None, shape: Sequence[int]) -> tuple[int, int, int]:
    """Voxel index at the centre of the mask's bounding box (the volume's centre if empty)."""
    if mask is None or not np.any(mask):
        return tuple(int(s) // 2 for s in shape)  # type: ignore[return-value]
    idx = np.argwhere(mask > 0)
    return tuple(int(v) for v in (idx.min(0) + idx.max(0)) // 2)  # type: ignore[return-value]


def label_colormap(n: int) -> ListedColormap:
    """Transparent background, then ``n`` distinct colours."""
    base = np.vstack([plt.get_cmap("Set1")(np.arange(9)), plt.get_cmap("Dark2")(np.arange(8))])
    colours = np.vstack([[0, 0, 0, 0], base[np.arange(n) % len(base)]])
    return ListedColormap(colours)


def _slices(vol: np.ndarray, c: tuple[int, int, int]) -> list[np.ndarray]:
    # RAS arrays: show axial with anterior up, coronal/sagittal with superior up
    return [vol[:, :, c[2]].T, vol[:, c[1], :].T, vol[c[0], :, :].T]


def show_triplanar(image: Any, mask: Any = None, *, title: str | None = None, ax_row: Sequence[Any] | None = None,
                   center: Sequence[int] | None = None, alpha: float = 0.45, contour: bool = False,
                   vmin: float | None = None, vmax: float | None = None) -> plt.Figure:
    """Axial, coronal and sagittal slices through the mask's centre, with the mask overlaid.

    Args:
        image: ``(X, Y, Z)`` or ``(1, X, Y, Z)`` volume (numpy or torch), RAS voxel order.
        mask: integer or binary map on the same grid (values > 0 are drawn), or ``None``.
        title: figure (or row) title.
        ax_row: three matplotlib axes to draw into (for galleries); a new figure otherwise.
        center: voxel to slice through (default: the mask's bounding-box centre).
        alpha: overlay opacity.
        contour: draw mask outlines instead of filled colour.
        vmin, vmax: grey-level window (default: 1st-99th percentile of the image).

    Returns:
        The matplotlib Figure.
    """
    img = to_volume(image)
    lab = None if mask is None else to_volume(mask).astype(np.int32)
    if lab is not None and lab.shape != img.shape:
        raise ValueError(f"mask shape {lab.shape} does not match image shape {img.shape}")
    c = tuple(int(v) for v in center) if center is not None else mask_centre(lab, img.shape)
    if vmin is None or vmax is None:
        lo, hi = np.percentile(img, [1, 99])
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    if ax_row is None:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    else:
        axes = list(ax_row)
        fig = axes[0].figure
    n = int(lab.max()) if lab is not None and lab.size else 0
    cmap = label_colormap(max(n, 1))
    for ax, view, im_sl, lab_sl in zip(axes, _VIEWS, _slices(img, c),
                                       _slices(lab, c) if lab is not None else [None] * 3):
        ax.imshow(im_sl, cmap="gray", origin="lower", vmin=vmin, vmax=vmax, interpolation="nearest")
        if lab_sl is not None and lab_sl.any():
            if contour:
                for v in np.unique(lab_sl[lab_sl > 0]):
                    ax.contour(lab_sl == v, levels=[0.5], colors=[cmap(int(v))], linewidths=1.0)
            else:
                ax.imshow(np.ma.masked_equal(lab_sl, 0), cmap=cmap, vmin=0, vmax=max(n, 1), alpha=alpha,
                          origin="lower", interpolation="nearest")
        ax.set_title(view, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        if ax_row is None:
            fig.suptitle(title)
        else:
            axes[0].set_ylabel(title, fontsize=9)
    if ax_row is None:
        fig.tight_layout()
    return fig
