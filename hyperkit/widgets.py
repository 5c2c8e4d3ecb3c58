"""ipywidgets panels for the notebooks (shown only when a notebook's ``interactive`` is True)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from hyperkit.plots import label_colormap, to_volume

__all__ = ["slice_browser"]

_AXES = {"axial": 2, "coronal": 1, "sagittal": 0}


def slice_browser(image: Any, mask: Any = None, *, title: str = "") -> Any:
    """A slider over slices of a volume with its label overlaid, in any of the three views.

    Args:
        image: ``(X, Y, Z)`` or ``(1, X, Y, Z)`` volume (numpy or torch), RAS voxel order.
        mask: integer map on the same grid, or ``None``.
        title: shown above the picture.

    Returns:
        An ``ipywidgets.VBox`` (display it, or let the notebook show it as the cell's value).
    """
    import ipywidgets as w

    img = to_volume(image)
    lab = None if mask is None else to_volume(mask).astype(np.int32)
    if lab is not None and lab.shape != img.shape:
        raise ValueError(f"mask shape {lab.shape} does not match image shape {img.shape}")
    lo, hi = np.percentile(img, [1, 99])
    n = int(lab.max()) if lab is not None else 1
    cmap = label_colormap(max(n, 1))
    view = w.ToggleButtons(options=list(_AXES), value="axial", description="view")
    index = w.IntSlider(value=img.shape[2] // 2, min=0, max=img.shape[2] - 1, description="slice",
                        continuous_update=True)
    alpha = w.FloatSlider(value=0.45, min=0.0, max=1.0, step=0.05, description="overlay")
    out = w.Output()

    def _slice(vol: np.ndarray, axis: int, i: int) -> np.ndarray:
        return np.take(vol, i, axis=axis).T

    def draw(*_: Any) -> None:
        axis = _AXES[view.value]
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(5, 5))
            ax.imshow(_slice(img, axis, index.value), cmap="gray", origin="lower", vmin=lo, vmax=hi)
            if lab is not None:
                sl = _slice(lab, axis, index.value)
                ax.imshow(np.ma.masked_equal(sl, 0), cmap=cmap, vmin=0, vmax=max(n, 1), alpha=alpha.value,
                          origin="lower", interpolation="nearest")
            ax.set_title(f"{title} {view.value} slice {index.value}".strip())
            ax.axis("off")
            plt.show()

    def on_view(_: Any) -> None:
        size = img.shape[_AXES[view.value]]
        index.max = size - 1
        index.value = min(index.value, size - 1) if index.value < size else size // 2

    view.observe(on_view, names="value")
    for control in (view, index, alpha):
        control.observe(draw, names="value")
    draw()
    return w.VBox([view, w.HBox([index, alpha]), out])
