"""ipywidgets panels for the notebooks (shown only when a notebook's ``interactive`` is True)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np

from hyperkit.data.tasks import task_parts
from hyperkit.errors import HyperkitError
from hyperkit.plots import label_colormap, to_volume

__all__ = ["slice_browser", "one_shot_panel", "region_overlay"]

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

    def on_view(_: Any) -> None:  # the slice kept where the new view has it, else the middle one
        size = img.shape[_AXES[view.value]]
        index.value = index.value if index.value < size else size // 2  # before the maximum, which would clamp it
        index.max = size - 1

    view.observe(on_view, names="value")
    for control in (view, index, alpha):
        control.observe(draw, names="value")
    draw()
    return w.VBox([view, w.HBox([index, alpha]), out])


def one_shot_panel(hyper: Any, bank: Any, cfg: Mapping[str, Any] | None = None, *,
                   profile: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                   data_root: str | Path | None = None) -> Any:
    """Pick a held-out task, a support case and a query case; generate a U-Net and browse its prediction.

    With ``data_root`` (the bank's data folder) a "whole scan" box appears: the U-Net then
    segments the query's whole scan as ``hyperkit segment --roi auto`` does (the support's
    scan registered to it, the U-Net run around the mapped target;
    :func:`~hyperkit.evaluation.whole_scan.localise_and_segment`), and the browser shows the
    whole scan with the chosen region's outline (label 4).

    The U-Net is made as ``hyperkit evaluate`` makes the Hyper U-Net: the protocol (gradient
    step on the support and its learning rate, NSD tolerance) comes from
    :func:`~hyperkit.config.protocol_for`. The label overlay of the browser:
    1 = ground truth only (missed), 2 = prediction only (false positive), 3 = both (hit).

    Args:
        hyper: a trained :class:`~hyperkit.model.hypernet.HyperUNet` (eval mode), or ``None``
            for the kit's reference checkpoint of the quick profile (for users without a run).
        bank: a :class:`~hyperkit.data.bank.TaskBank` of held-out tasks (patches ``(N, 1, S, S, S)``).
        cfg: the checkpoint's config (the second value of :func:`~hyperkit.training.checkpoint.load_hypernet`);
            ``None`` together with ``hyper=None``.
        profile, overrides: as :func:`~hyperkit.config.protocol_for`.
        data_root: the data folder the bank was read from; enables the whole-scan view.

    Returns:
        An ``ipywidgets.VBox``.

    Raises:
        ConfigError: the protocol cannot be found (see :func:`~hyperkit.config.protocol_for`).
    """
    import ipywidgets as w
    import torch

    from hyperkit.config import protocol_for
    from hyperkit.evaluation.protocol import one_shot_model, score

    if hyper is None:
        from hyperkit.training.reference import load_reference

        hyper, cfg = load_reference("quick")
    if cfg is None:
        raise ValueError("one_shot_panel: cfg (the checkpoint's config) is required with a model of your own")
    protocol = protocol_for(cfg, profile, overrides)

    task = w.Dropdown(options=bank.task_ids, description="task", layout=w.Layout(width="520px"))
    support = w.Dropdown(description="support")
    query = w.Dropdown(description="query")
    button = w.Button(description="generate U-Net", button_style="primary")
    whole = w.Checkbox(value=False, description="whole scan", disabled=data_root is None)
    out = w.Output()

    def on_task(*_: Any) -> None:
        ids = bank.case_ids[task.value]
        support.options = [(c, i) for i, c in enumerate(ids)]
        query.options = [(c, i) for i, c in enumerate(ids)]
        support.value, query.value = 0, 1 if len(ids) > 1 else 0

    def on_generate(*_: Any) -> None:
        t, s, q = task.value, support.value, query.value
        imgs, msks = bank.images[t], bank.masks[t]
        with out:
            out.clear_output(wait=True)
            button.disabled, button.description = True, "generating …"  # seconds; the whole scan up to a minute
            try:
                if s == q:
                    print(f"the query is the support ({bank.case_ids[t][s]}): this scores how well the U-Net fits "
                          "the case it was made from, not a one-shot prediction; pick another query")
                unet = one_shot_model("hyper_unet", hyper, imgs[s:s + 1], msks[s:s + 1], protocol, None)
                if whole.value:
                    print("registering the support's scan to the query's whole scan, then segmenting around the "
                          "mapped target …")
                    _show_whole_scan(unet, data_root, t, bank.case_ids[t][s], bank.case_ids[t][q], cfg)
                    return
                with torch.no_grad():  # the query's patch: what the whole-scan view does not use
                    pred = (unet(imgs[q:q + 1])[0] > 0).float()
                gt = msks[q]
                (d, n_tau, n_voxel), = score(pred[None], gt[None], bank.spacing, protocol.tau)
                print(f"support {bank.case_ids[t][s]} -> query {bank.case_ids[t][q]}: DSC {d:.3f}, "
                      f"NSD@{protocol.tau:g}mm {n_tau:.3f}, NSD@1 voxel {n_voxel:.3f}")
                from IPython.display import display

                display(slice_browser(imgs[q], (gt + 2 * pred).long(), title=task_parts(t).short))
            finally:
                button.disabled, button.description = False, "generate U-Net"

    task.observe(on_task, names="value")
    button.on_click(on_generate)
    on_task()
    return w.VBox([task, w.HBox([support, query, button, whole]), out])


def _show_whole_scan(unet: Any, data_root: Any, task_id: str, support_id: str, query_id: str,
                     cfg: Mapping[str, Any]) -> None:
    """Segment the query's whole scan around the registered support's target; print and browse it."""
    from IPython.display import display

    from hyperkit.data.layouts import discover_datasets
    from hyperkit.data.preprocess import DataConfig, preprocess_case
    from hyperkit.data.tasks import modality_of
    from hyperkit.evaluation.whole_scan import localise_and_segment
    from hyperkit.inference.localise import make_reference

    found = next(((d, t) for d in discover_datasets(data_root) for t in d.tasks() if t.task_id == task_id), None)
    if found is None:  # the bank was read from another folder than data_root
        raise HyperkitError(f"{task_id}: no such task in the data at {data_root} (pass the bank's own data folder)")
    ds, tk = found
    data = DataConfig.from_config(cfg["data"])
    sc, qc = (preprocess_case(ds, c, data) for c in (support_id, query_id))
    ref = make_reference(sc.image[tk.channel_index], sc.affine, sc.label == tk.label_value, modality_of(tk.channel))
    img, gt = qc.image[tk.channel_index], (qc.label == tk.label_value).astype(np.int64)
    pred, box, reg = localise_and_segment(unet, ref, img, qc.affine, data.patch_size)
    labels, d = region_overlay(pred, gt, box, qc.affine)
    print(f"whole scan {query_id}: ROI {np.round(box, 0).astype(int).tolist()} mm (registered in {reg.seconds:.1f} s), "
          f"DSC {d:.3f}")
    display(slice_browser(img, labels, title=f"{query_id} whole scan"))


#: the thickness (mm) of the region's faces that the whole-scan browser outlines
_FACE_MM = 4.0


def region_overlay(pred: np.ndarray, gt: np.ndarray, box_mm: np.ndarray, affine: np.ndarray
                   ) -> tuple[np.ndarray, float]:
    """The whole-scan browser's labels and the prediction's DSC.

    Args:
        pred, gt: binary ``(X, Y, Z)`` prediction and ground truth.
        box_mm: ``(2, 3)`` the region the U-Net ran in (world mm).
        affine: ``(4, 4)`` the grid's voxel-to-world matrix.

    Returns:
        int64 ``(X, Y, Z)`` labels (1 ground truth only, 2 prediction only, 3 both, 4 the region's
        faces, a 4 mm shell inside its box, where none of the others is) and
        :func:`~hyperkit.metrics.dice` of ``pred`` against ``gt``.
    """
    from hyperkit.inference.segment import box_voxels
    from hyperkit.metrics import dice

    p, g = (np.asarray(v) > 0 for v in (pred, gt))
    labels = g.astype(np.int64) + 2 * p
    box = np.asarray(box_mm, dtype=np.float64)
    inside = box_voxels(box, affine, g.shape)
    core = box_voxels(np.stack([box[0] + _FACE_MM, box[1] - _FACE_MM]), affine, g.shape)
    return np.where(inside & ~core & (labels == 0), 4, labels), dice(p, g)
