"""Pictures a student would rather look at than read: slices with label overlays."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

__all__ = ["to_volume", "mask_centre", "show_triplanar", "show_contours", "label_colormap", "plot_training_curves",
           "plot_method_bars", "plot_centre_prior", "FIGURE2_COLOURS"]

#: the paper's Figure 2 colours: ground truth red, Hyper U-Net blue, Conv U-Net green
FIGURE2_COLOURS = {"ground truth": "red", "Hyper U-Net": "blue", "Conv U-Net": "lime"}

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


def show_contours(image: Any, masks: dict[str, Any], *, title: str | None = None,
                  ax_row: Sequence[Any] | None = None, colours: dict[str, str] | None = None,
                  center: Sequence[int] | None = None) -> plt.Figure:
    """Tri-planar slices with several binary masks drawn as coloured outlines (paper Figure 2).

    Args:
        image: ``(X, Y, Z)`` volume, RAS voxel order.
        masks: ``name -> (X, Y, Z)`` binary masks on the image's grid; the first one (the
            ground truth) chooses the slices unless ``center`` is given.
        title: row label (or figure title).
        ax_row: three axes to draw into; a new figure otherwise.
        colours: ``name -> colour`` (default :data:`FIGURE2_COLOURS`, then a cycle).

    Returns:
        The matplotlib Figure.
    """
    img = to_volume(image)
    vols = {k: to_volume(v) > 0.5 for k, v in masks.items()}
    for k, v in vols.items():
        if v.shape != img.shape:
            raise ValueError(f"mask {k!r} shape {v.shape} does not match image shape {img.shape}")
    first = next(iter(vols.values()), None)
    c = tuple(int(v) for v in center) if center is not None else mask_centre(first, img.shape)
    fig = show_triplanar(img, None, title=title, ax_row=ax_row, center=c)
    axes = list(ax_row) if ax_row is not None else fig.axes[:3]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {**FIGURE2_COLOURS, **(colours or {})}
    for i, (name, vol) in enumerate(vols.items()):
        colour = colours.get(name, cycle[i % len(cycle)])
        for ax, sl in zip(axes, _slices(vol.astype(np.uint8), c)):
            if sl.any():
                ax.contour(sl, levels=[0.5], colors=[colour], linewidths=1.2)
        axes[0].plot([], [], color=colour, label=name)
    if ax_row is None:
        axes[0].legend(loc="lower left", fontsize=7, frameon=True)
    return fig


def plot_method_bars(kit: dict[str, dict[str, float]], paper: dict[str, dict[str, float]] | None = None, *,
                     metric: str = "DSC", title: str | None = None, ax: Any = None) -> plt.Figure:
    """Grouped bars: one group per target, one bar per method; the paper's values as black ticks.

    Args:
        kit: ``target -> method -> value`` measured by the kit.
        paper: the same for the paper's published values (drawn as markers, labelled "paper").
        metric: axis label.
    """
    targets = list(kit)
    methods = list(dict.fromkeys(m for t in targets for m in kit[t]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.3 * len(targets) + 2, 3.2))
    fig = ax.figure
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(targets))]
        ax.bar(xs, [kit[t].get(m, np.nan) for t in targets], width, label=m)
        if paper:
            ax.scatter(xs, [paper.get(t, {}).get(m, np.nan) for t in targets], marker="_", s=120, color="k",
                       label="paper" if j == 0 else None, zorder=3)
    ax.set_xticks(range(len(targets)), [t.replace("_", " ") for t in targets], rotation=20, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_centre_prior(rows: Sequence[dict[str, Any]], *, title: str | None = None, ax: Any = None) -> plt.Figure:
    """Grouped bars of the centre prior: per target, copying the support mask and a central blob,
    each with centred (solid) and offset (hatched) patches.

    Args:
        rows: from :func:`hyperkit.evaluation.centre_prior.centre_prior_table` (``target``,
            ``placement``, ``method``, ``dsc``).
        title: above the plot.
        ax: draw into this axes (default: a new figure).
    """
    from hyperkit.config import CENTRE_PRIOR_METHODS

    targets = list(dict.fromkeys(r["target"] for r in rows))
    methods = [m for m in CENTRE_PRIOR_METHODS if any(r["method"] == m for r in rows)]
    placements = list(dict.fromkeys(r["placement"] for r in rows))
    value = {(r["target"], r["method"], r["placement"]): r["dsc"] for r in rows}
    bars = [(m, p) for m in methods for p in placements]
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.6 * len(targets) + 3.5, 3.2))
    fig = ax.figure
    width = 0.8 / max(len(bars), 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (m, p) in enumerate(bars):
        xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(targets))]
        ax.bar(xs, [value.get((t, m, p), np.nan) for t in targets], width,
               color=colours[methods.index(m) % len(colours)], alpha=1.0 if p == placements[0] else 0.55,
               hatch=None if p == placements[0] else "//", edgecolor="white",
               label=f"{CENTRE_PRIOR_METHODS[m]}, {p}")
    ax.set_xticks(range(len(targets)), [t.replace("_", " ") for t in targets], rotation=20, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("DSC, support → query", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_training_curves(run_dir: Any, smooth: int = 25) -> plt.Figure:
    """Learning curves of a training run: loss per episode, one-shot validation Dice
    against episodes and against wall time (from ``metrics.jsonl`` / ``validation.jsonl``).

    Args:
        run_dir: a folder written by :func:`hyperkit.training.loop.train`.
        smooth: moving-average window for the loss (episodes).
    """
    import json
    from pathlib import Path

    run = Path(run_dir)

    def rows(name: str) -> list[dict]:
        p = run / name
        return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.is_file() else []

    train_rows, val_rows = rows("metrics.jsonl"), rows("validation.jsonl")
    if not train_rows and not val_rows:
        raise ValueError(f"{run}: no metrics.jsonl or validation.jsonl to plot")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if train_rows:
        ep = np.array([r["episode"] for r in train_rows])
        for key, colour in (("loss", "k"), ("loss_support", "tab:blue"), ("loss_query", "tab:orange")):
            y = np.array([r[key] for r in train_rows])
            w = max(1, min(smooth, len(y)))
            ys = np.convolve(y, np.ones(w) / w, mode="valid")
            axes[0].plot(ep[w - 1:], ys, color=colour, lw=1.5 if key == "loss" else 1, label=key)
        axes[0].set(xlabel="episode", ylabel=f"Dice + BCE (moving mean of {smooth})", title="training loss")
        axes[0].legend(fontsize=8)
    if val_rows:
        ve = [r["episode"] for r in val_rows]
        vd = [r["dice"] for r in val_rows]
        axes[1].plot(ve, vd, "o-", color="tab:green")
        axes[1].set(xlabel="episode", ylabel="mean one-shot Dice", title="validation (unseen tasks)")
        axes[2].plot([r["wall_seconds"] / 60 for r in val_rows], vd, "o-", color="tab:green")
        axes[2].set(xlabel="training wall time (min)", ylabel="mean one-shot Dice", title="validation vs time")
        for ax in axes[1:]:
            ax.set_ylim(0, max(0.05, max(vd) * 1.15))
    fig.tight_layout()
    return fig
