"""Pictures a student would rather look at than read: slices with label overlays."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

__all__ = ["to_volume", "mask_centre", "show_triplanar", "show_contours", "label_colormap", "label_colours",
           "mark_orientation", "label_key", "kernel_mosaic", "plot_training_curves", "best_validation",
           "plot_method_bars", "plot_centre_prior", "plot_fit_gap", "plot_ablation_effects", "plot_kshot",
           "FIGURE2_COLOURS", "VIEW_LETTERS"]

#: the paper's Figure 2 colours: ground truth red, Hyper U-Net blue, Conv U-Net green
FIGURE2_COLOURS = {"ground truth": "red", "Hyper U-Net": "blue", "Conv U-Net": "lime"}

_VIEWS = ("axial", "coronal", "sagittal")

#: patient directions at the left, right, bottom and top edge of each view as :func:`show_triplanar`
#: draws a RAS volume (origin lower): R/L right/left, A/P anterior/posterior, S/I superior/inferior
VIEW_LETTERS = {"axial": "LRPA", "coronal": "LRIS", "sagittal": "PAIS"}

#: the golden-ratio conjugate: successive multiples modulo 1 spread hues evenly for any count
_GOLDEN = (5 ** 0.5 - 1) / 2


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


def label_colours(n: int) -> np.ndarray:
    """``(n, 4)`` RGBA colours, all different, for labels ``1..n``.

    The first 17 are the strong qualitative colours of matplotlib's ``Set1`` and ``Dark2`` (label 1
    is red); from the 18th on, hues step by the golden ratio (``0.618...`` of the hue circle, so
    every new hue falls into one of the largest gaps left by the earlier ones), with saturation and value
    cycling through three levels each, converted from HSV. The sequence is deterministic: label
    ``k`` has the same colour whatever ``n`` is.

    Raises:
        ValueError: ``n < 0``.
    """
    from matplotlib.colors import hsv_to_rgb

    if n < 0:
        raise ValueError(f"need a number of labels >= 0, got {n}")
    base = np.vstack([plt.get_cmap("Set1")(np.arange(9)), plt.get_cmap("Dark2")(np.arange(8))])
    extra = np.arange(max(0, n - len(base)))
    hsv = np.stack([(0.07 + extra * _GOLDEN) % 1.0,                    # hue: golden-ratio steps
                    np.array([0.95, 0.55, 0.75])[extra // 3 % 3],      # saturation: three levels
                    np.array([0.95, 0.75, 0.55])[extra % 3]], axis=1)  # value: three levels
    rgba = np.hstack([hsv_to_rgb(hsv), np.ones((len(extra), 1))]) if len(extra) else np.zeros((0, 4))
    return np.vstack([base, rgba])[:n]


def label_colormap(n: int) -> ListedColormap:
    """Transparent background (value 0), then ``n`` different colours (:func:`label_colours`)
    for the values ``1..n``: none repeats, however many labels (TotalSegmentator has 82)."""
    return ListedColormap(np.vstack([[0, 0, 0, 0], label_colours(n)]))


def mark_orientation(axes: Sequence[Any], views: Sequence[str] = _VIEWS, colour: str = "yellow") -> None:
    """Write the patient's directions (:data:`VIEW_LETTERS`) at the edges of slices of a RAS volume.

    For axes drawn as :func:`show_triplanar` draws them (axial, coronal, sagittal; ``origin="lower"``).

    Args:
        axes: the axes to letter, one per view.
        views: the view of each axis (``"axial"``, ``"coronal"`` or ``"sagittal"``).
        colour: text colour.

    Raises:
        ValueError: an unknown view.
    """
    for ax, view in zip(axes, views):
        if view not in VIEW_LETTERS:
            raise ValueError(f"view must be one of {list(VIEW_LETTERS)}, got {view!r}")
        for (x, y), letter in zip([(0.04, 0.5), (0.96, 0.5), (0.5, 0.05), (0.5, 0.95)], VIEW_LETTERS[view]):
            ax.text(x, y, letter, transform=ax.transAxes, color=colour, fontsize=8, fontweight="bold",
                    ha="center", va="center")


def label_key(ax: Any, label: Any, names: dict[int, str] | None = None, centre: Sequence[int] | None = None,
              limit: int = 10) -> Any:
    """A colour key for :func:`show_triplanar`'s overlay, beside ``ax``: the labels seen in the three
    slices through ``centre``, largest first, in the overlay's colours.

    Args:
        ax: the axis to put the legend next to (usually the row's last one).
        label: integer label map ``(X, Y, Z)`` (leading singleton axes allowed), the one drawn.
        names: ``value -> name`` (missing values are shown as numbers).
        centre: the voxel the slices go through (default: the mask's centre, as ``show_triplanar``).
        limit: at most this many entries; the rest is counted in a last entry (``+ 3 more``).

    Returns:
        The matplotlib Legend.
    """
    from matplotlib.patches import Patch

    lab = to_volume(label).astype(int)
    c = mask_centre(lab, lab.shape) if centre is None else tuple(int(v) for v in centre)
    seen = np.concatenate([sl.ravel() for sl in _slices(lab, c)])  # type: ignore[arg-type]
    values, counts = np.unique(seen[seen > 0], return_counts=True)
    order = values[np.argsort(-counts, kind="stable")]
    cmap = label_colormap(max(int(lab.max()), 1))
    names = names or {}
    handles = [Patch(color=cmap(int(v)), label=names.get(int(v), str(v))) for v in order[:limit]]
    if len(order) > limit:
        handles.append(Patch(color="none", label=f"+ {len(order) - limit} more"))
    return ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7, frameon=False)


def kernel_mosaic(weight: Any) -> np.ndarray:
    """One image of a 3D convolution's kernels: the middle tap slice of every (output, input) pair.

    Args:
        weight: ``(c_out, c_in, k, k, k)`` (numpy or torch).

    Returns:
        ``(c_out * k, c_in * k)``: row block ``o``, column block ``i`` is ``weight[o, i, :, :, k // 2]``
        with the first kernel axis down and the second across.
    """
    w = weight.detach().cpu().numpy() if hasattr(weight, "detach") else np.asarray(weight)
    if w.ndim != 5 or not w.shape[2] == w.shape[3] == w.shape[4]:
        raise ValueError(f"expected a (c_out, c_in, k, k, k) kernel, got shape {w.shape}")
    c_out, c_in, k = w.shape[:3]
    return w[:, :, :, :, k // 2].transpose(0, 2, 1, 3).reshape(c_out * k, c_in * k)


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
                     err: dict[str, dict[str, float]] | None = None, metric: str = "DSC",
                     title: str | None = None, ax: Any = None) -> plt.Figure:
    """Grouped bars: one group per target, one bar per method; the paper's values as black ticks.

    Args:
        kit: ``target -> method -> value`` measured by the kit.
        paper: the same for the paper's published values (drawn as markers, labelled "paper").
        err: ``target -> method -> half-length`` of an error bar drawn on each kit bar (e.g. the
            std over cases x draws, or the half-width of a confidence interval: say which in the
            caption); missing entries get none.
        metric: axis label.
        title: above the plot.
        ax: draw into this axes (default: a new figure).
    """
    targets = list(kit)
    methods = list(dict.fromkeys(m for t in targets for m in kit[t]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.3 * len(targets) + 2, 3.2))
    fig = ax.figure
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(targets))]
        yerr = None if err is None else [(err.get(t) or {}).get(m, np.nan) for t in targets]
        ax.bar(xs, [kit[t].get(m, np.nan) for t in targets], width, label=m, yerr=yerr,
               error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.25"})
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


def plot_centre_prior(rows: Sequence[dict[str, Any]], *, title: str | None = None, ax: Any = None,
                      errors: bool = True) -> plt.Figure:
    """Grouped bars of the centre prior: per target, copying the support mask and a central blob,
    each with centred (solid) and offset (hatched) patches.

    Args:
        rows: from :func:`hyperkit.evaluation.centre_prior.centre_prior_table` (``target``,
            ``placement``, ``method``, ``dsc``; ``dsc_std`` for the error bars).
        title: above the plot.
        ax: draw into this axes (default: a new figure).
        errors: error bars of ± ``dsc_std`` (the std over the ordered support/query pairs) where
            the rows have it.
    """
    from hyperkit.config import CENTRE_PRIOR_METHODS

    targets = list(dict.fromkeys(r["target"] for r in rows))
    methods = [m for m in CENTRE_PRIOR_METHODS if any(r["method"] == m for r in rows)]
    placements = list(dict.fromkeys(r["placement"] for r in rows))
    value = {(r["target"], r["method"], r["placement"]): r["dsc"] for r in rows}
    spread = {(r["target"], r["method"], r["placement"]): r["dsc_std"] for r in rows if "dsc_std" in r}
    bars = [(m, p) for m in methods for p in placements]
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.6 * len(targets) + 3.5, 3.2))
    fig = ax.figure
    width = 0.8 / max(len(bars), 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (m, p) in enumerate(bars):
        xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(targets))]
        yerr = [spread.get((t, m, p), np.nan) for t in targets] if errors and spread else None
        ax.bar(xs, [value.get((t, m, p), np.nan) for t in targets], width,
               color=colours[methods.index(m) % len(colours)], alpha=1.0 if p == "centred" else 0.55,
               hatch=None if p == "centred" else "//", edgecolor="white",
               label=f"{CENTRE_PRIOR_METHODS[m]}, {p}", yerr=yerr,
               error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.25"})
    ax.set_xticks(range(len(targets)), [t.replace("_", " ") for t in targets], rotation=20, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("DSC, support → query", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_fit_gap(per_group: dict[str, float], val_per_task: dict[str, float], *, title: str | None = None,
                 ax: Any = None) -> plt.Figure:
    """One-shot Dice of one model on training tasks (a bar per structure group) and validation tasks
    (dashed: each task; solid: their mean): under-fitting or a failure to transfer at a glance.

    Args:
        per_group: ``structure group -> Dice`` (:attr:`hyperkit.training.fit_gap.FitGap.per_group`).
        val_per_task: ``task id -> Dice`` of the validation tasks.
        title: above the plot.
        ax: draw into this axes (default: a new figure).
    """
    if not per_group:
        raise ValueError("per_group is empty: no training task was scored")
    groups = sorted(per_group, key=lambda g: per_group[g])
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 0.22 * len(groups) + 1.4))
    fig = ax.figure
    ax.barh(range(len(groups)), [per_group[g] for g in groups], color="tab:blue", alpha=0.8,
            label=f"training tasks, one per group (mean {np.mean(list(per_group.values())):.2f})")
    for i, d in enumerate(sorted(val_per_task.values())):
        ax.axvline(d, color="tab:orange", lw=0.8, ls="--", label="validation tasks, each" if i == 0 else None)
    if val_per_task:
        mean = float(np.mean(list(val_per_task.values())))
        ax.axvline(mean, color="tab:orange", lw=2, label=f"validation tasks, mean {mean:.2f}")
    ax.set_yticks(range(len(groups)), [g.replace("_", " ") for g in groups], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("one-shot DSC (support → other cases of the same task)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_ablation_effects(rows: Sequence[Mapping[str, Any]], seed_band: Mapping[str, float],
                          paper: Mapping[str, Mapping[str, Any]],
                          variants: Mapping[str, tuple[str, str]]) -> plt.Figure:
    """The ablation effects as a picture: one panel per variant (all but ``seed``), one line per target.

    On each line: the paired difference base − variant of the DSC with its 95 % CI (blue), the seed
    spread of the target as a grey band around 0 (an effect inside it is not told from retraining
    noise), and the paper's "with − without" (black ×) where the variant has a paper table.

    Args:
        rows: rows of ``ablation.csv`` (:func:`hyperkit.evaluation.ablation.read_ablation`): ``variant``,
            ``target``, ``metric``, ``diff``, ``ci_lo``, ``ci_hi``; the ``dsc`` rows are drawn. Panels and
            lines follow the order in which variants and targets first appear.
        seed_band: ``target -> half-width`` of the grey band
            (:func:`hyperkit.evaluation.ablation.seed_spread`); targets without one get no band.
        paper: the paper's tables (:func:`hyperkit.evaluation.tables.paper_tables`):
            ``table -> target -> {"with"|"without": {"dsc": [mean, std]}}``.
        variants: ``variant -> (label, paper table name)`` for every variant in ``rows`` but ``seed``
            (table ``""``: beyond the paper); the label titles the panel.

    Raises:
        ValueError: no variant but ``seed`` in ``rows``, or a variant missing from ``variants``.
    """
    by = {(r["variant"], r["target"], r["metric"]): r for r in rows}
    effects = [v for v in dict.fromkeys(r["variant"] for r in rows) if v != "seed"]
    shown = list(dict.fromkeys(r["target"] for r in rows))
    if not effects:
        raise ValueError("no ablation variant but 'seed' in the rows: nothing to draw")
    missing = [v for v in effects if v not in variants]
    if missing:
        raise ValueError(f"variants without a (label, table) in 'variants': {missing}")
    ncols = min(4, len(effects))
    nrows = -(-len(effects) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols + 1.4, (0.4 * len(shown) + 1.1) * nrows + 0.4),
                             sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[len(effects):]:
        ax.set_visible(False)
    for ax, v in zip(axes.flat, effects):
        label, table = variants[v]
        for y, t in enumerate(shown):
            if t in seed_band:
                ax.plot([-seed_band[t], seed_band[t]], [y, y], color="0.85", lw=9, solid_capstyle="butt")
            r = by.get((v, t, "dsc"))
            if r:
                ax.errorbar(r["diff"], y, xerr=[[r["diff"] - r["ci_lo"]], [r["ci_hi"] - r["diff"]]], fmt="o",
                            color="tab:blue", ms=4, capsize=2)
            ref = paper.get(table, {}).get(t) if table else None
            if ref:
                ax.plot(ref["with"]["dsc"][0] - ref["without"]["dsc"][0], y, "kx")
        ax.axvline(0, color="k", lw=0.7)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("ΔDSC base − variant", fontsize=8)
    axes[0][0].set_yticks(range(len(shown)), shown)
    axes[0][0].invert_yaxis()
    for ax in axes.flat[len(effects) - ncols:len(effects)]:
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.legend(handles=[plt.Line2D([], [], color="0.85", lw=8, label="seed spread"),
                        plt.Line2D([], [], color="tab:blue", marker="o", label="kit: base − variant, 95 % CI"),
                        plt.Line2D([], [], color="k", marker="x", ls="", label="paper: with − without")],
               loc="lower center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_kshot(rows: Sequence[Mapping[str, Any]], *, log: Callable[[str], None] | None = print) -> plt.Figure:
    """K-shot generation: the DSC on the test cases against the number K of supports pooled into one
    context, one line per target (``"all"``, the targets pooled, in thick black).

    K = 1 is the base model (its ``base`` score); K > 1 are the ``shotsK`` variants (their
    ``variant_score``), at the x positions of the K that the rows hold, sorted.

    Args:
        rows: rows of ``ablation.csv`` (:func:`hyperkit.evaluation.ablation.read_ablation`): ``variant``,
            ``target``, ``metric``, ``base``, ``variant_score``; the ``dsc`` rows are drawn, targets in the
            order they first appear.
        log: where the line saying that the rows hold no ``shotsK`` variant (K = 1 alone) goes
            (``None``: nowhere).
    """
    by = {(r["variant"], r["target"], r["metric"]): r for r in rows}
    shown = list(dict.fromkeys(r["target"] for r in rows))
    kshot: dict[int, str | None] = {1: None, **{int(v[5:]): v for v in dict.fromkeys(r["variant"] for r in rows)
                                                if v.startswith("shots")}}
    if len(kshot) == 1 and log is not None:
        log("no shotsK variant in this run (only): K = 1 alone")
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for t in shown:
        pts = [(k, by[(v, t, "dsc")]["variant_score"] if v else
                next(r["base"] for r in rows if r["target"] == t and r["metric"] == "dsc"))
               for k, v in sorted(kshot.items()) if v is None or (v, t, "dsc") in by]
        ax.plot(*zip(*pts), marker="o", label=t, **({"color": "k", "lw": 2.5} if t == "all" else {}))
    ax.set_xticks(sorted(kshot))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("supports pooled K")
    ax.set_ylabel("DSC on the test cases")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def best_validation(val_rows: Sequence[dict[str, Any]]) -> tuple[int, float]:
    """The episode whose weights a run kept as ``best.pt``, and its validation Dice.

    The training loop replaces ``best.pt`` only when a validation is *strictly* better than
    every earlier one, so the kept episode is the first one with the highest Dice.

    Args:
        val_rows: the rows of a run's ``validation.jsonl`` (``episode``, ``dice``), in order.

    Raises:
        ValueError: no rows.
    """
    if not val_rows:
        raise ValueError("no validation rows: the run has not validated yet")
    best = max(val_rows, key=lambda r: r["dice"])  # max keeps the first of equal values
    return int(best["episode"]), float(best["dice"])


def plot_training_curves(run_dir: Any, smooth: int = 25, best_episode: int | None = None) -> plt.Figure:
    """Learning curves of a training run: loss per episode, one-shot validation Dice
    against episodes and against wall time (from ``metrics.jsonl`` / ``validation.jsonl``),
    with the episode kept as ``best.pt`` marked (a star on the validation curves, a dotted line
    on the loss).

    Args:
        run_dir: a folder written by :func:`hyperkit.training.loop.train`.
        smooth: moving-average window for the loss (episodes).
        best_episode: the episode to mark (e.g. ``TrainResult.best_episode`` or the checkpoint's
            state); default :func:`best_validation` of ``validation.jsonl``. It must be one of the
            validated episodes.

    Raises:
        ValueError: neither file has rows, or ``best_episode`` was not validated.
    """
    from pathlib import Path

    from hyperkit.files import read_jsonl

    run = Path(run_dir)
    train_rows, val_rows = read_jsonl(run / "metrics.jsonl"), read_jsonl(run / "validation.jsonl")
    if not train_rows and not val_rows:
        raise ValueError(f"{run}: no metrics.jsonl or validation.jsonl to plot")
    best = None
    if val_rows:
        episode = best_validation(val_rows)[0] if best_episode is None else int(best_episode)
        best = next((r for r in val_rows if r["episode"] == episode), None)
        if best is None:
            raise ValueError(f"{run}: episode {episode} is not in validation.jsonl; it cannot be best.pt's")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if train_rows:
        ep = np.array([r["episode"] for r in train_rows])
        for key, colour in (("loss", "k"), ("loss_support", "tab:blue"), ("loss_query", "tab:orange")):
            y = np.array([r[key] for r in train_rows])
            w = max(1, min(smooth, len(y)))
            ys = np.convolve(y, np.ones(w) / w, mode="valid")
            axes[0].plot(ep[w - 1:], ys, color=colour, lw=1.5 if key == "loss" else 1, label=key)
        if best is not None:
            axes[0].axvline(best["episode"], color="tab:red", ls=":", lw=1.2, label="best.pt")
        axes[0].set(xlabel="episode", ylabel=f"Dice + BCE (moving mean of {smooth})", title="training loss")
        axes[0].legend(fontsize=8)
    if val_rows:
        ve = [r["episode"] for r in val_rows]
        vd = [r["dice"] for r in val_rows]
        axes[1].plot(ve, vd, "o-", color="tab:green")
        axes[1].set(xlabel="episode", ylabel="mean one-shot Dice", title="validation (unseen tasks)")
        axes[2].plot([r["wall_seconds"] / 60 for r in val_rows], vd, "o-", color="tab:green")
        axes[2].set(xlabel="training wall time (min)", ylabel="mean one-shot Dice", title="validation vs time")
        label = f"best.pt: episode {best['episode']}, Dice {best['dice']:.3f}"
        for ax, x in ((axes[1], best["episode"]), (axes[2], best["wall_seconds"] / 60)):
            ax.plot([x], [best["dice"]], marker="*", ms=15, color="tab:red", mec="k", ls="none", zorder=3,
                    label=label)
            ax.set_ylim(0, max(0.05, max(vd) * 1.25))
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
