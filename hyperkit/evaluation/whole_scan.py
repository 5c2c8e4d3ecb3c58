"""The whole-scan protocol: one-shot generation + localisation + segmentation of whole query scans.

The patch protocol (:mod:`hyperkit.evaluation.protocol`) scores a generated U-Net on a patch
cut around the query's own ground truth, which a user does not have. Here the same U-Nets
(same tasks, same support draws from :func:`~hyperkit.evaluation.protocol.one_shot_plan`,
same test cases) segment the **whole** preprocessed query scan the way ``hyperkit segment
--roi auto`` does: the support's whole scan is registered to the query
(:func:`~hyperkit.inference.localise.register`), the support mask's box (grown by a margin)
is mapped into the query, and the U-Net runs on patches there
(:func:`~hyperkit.inference.segment.predict_roi`). No ground truth of the query is used to
place anything; it is read only to score.

Each (task, draw, test case) gives one row: the patch protocol's DSC of that U-Net on that
case (recomputed, so the pair is exact), the whole-scan DSC (plain, and with the
post-processing "keep the components that overlap the region, fill holes"), the whole-scan
DSC without localisation (optional, the state before), and diagnostics (how much of the
target the region holds, the mapped box's centre error, times). Scoring is on the
preprocessed grid (RAS, the profile's spacing), as the patch protocol scores.
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hyperkit.data.layouts import discover_datasets
from hyperkit.data.preprocess import DataConfig, preprocess_case
from hyperkit.data.splits import assign_roles, load_split
from hyperkit.data.tasks import modality_of
from hyperkit.inference.localise import (DEFAULT_MARGIN_MM, LocalisationError, NoOverlapError, check_margin, image_box,
                                         intersect, make_reference, map_box, mask_box, register)
from hyperkit.inference.segment import box_voxels, postprocess, predict_roi
from hyperkit.metrics import dice
from hyperkit.files import write_text_atomic
from hyperkit.provenance import run_record
from hyperkit.seeds import torch_generator

__all__ = ["WHOLE_FIELDS", "WholeScanResult", "whole_scan_paths", "run_whole_scan", "localise_and_segment",
           "summarize_whole_scan", "whole_scan_table"]

#: columns of the whole-scan CSV
WHOLE_FIELDS: tuple[str, ...] = ("task", "draw", "support", "case", "dsc_patch", "dsc_whole", "dsc_whole_post",
                                 "dsc_whole_noroi", "target_in_roi", "centre_error_mm", "registration_seconds",
                                 "segmentation_seconds", "error")


@dataclass
class WholeScanResult:
    """Rows of the whole-scan CSV, the per-task summary and the Markdown table."""

    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    table: str
    csv_path: Path


def whole_scan_paths(out_csv: str | Path) -> tuple[Path, Path, Path]:
    """``<stem>-whole-scan.csv``, ``.json`` and ``.md`` beside the patch protocol's results CSV."""
    p = Path(out_csv)
    base = p.with_name(f"{p.stem}-whole-scan")
    return base.with_suffix(".csv"), base.with_suffix(".json"), base.with_suffix(".md")


def run_whole_scan(checkpoint: str | Path, data_root: str | Path, out_csv: str | Path, *,
                   tasks: Sequence[str] | None = None, draws: int | None = None, shots: int | None = None,
                   seed: int = 0, profile: str | None = None, split: str | Path | None = None,
                   overrides: dict[str, Any] | None = None, cache_dir: str | Path | None = None,
                   margin_mm: float = DEFAULT_MARGIN_MM, compare_none: bool = False,
                   progress: bool = True) -> WholeScanResult:
    """Score one-shot generation + localisation + segmentation on whole query scans.

    Args:
        checkpoint: a run's ``best.pt``.
        data_root: the data folder (phantoms or real data).
        out_csv: the patch protocol's results CSV; this writes :func:`whole_scan_paths` beside it
            (an existing whole-scan CSV is replaced; its record and table are removed first and written
            once every row is, so that a run stopped midway leaves no record beside its partial CSV).
        tasks: held-out task patterns (:func:`~hyperkit.evaluation.run.resolve_tasks`).
        draws, shots, seed, profile, split, overrides: as :func:`~hyperkit.evaluation.run.run_evaluation`
            (so the draws and test cases are those of the patch protocol).
        cache_dir: preprocessing cache.
        margin_mm: margin around the support's mask box (mm), >= 0.
        compare_none: also segment each whole query without localisation (sliding windows over
            the whole scan: the state before; slower).
        progress: a tqdm bar over tasks.

    Returns:
        A :class:`WholeScanResult`.

    Raises:
        ValueError: ``margin_mm < 0``, or a task pattern that matches no held-out task.
        HyperkitError: a bad checkpoint.
    """
    from hyperkit.config import check_seed, protocol_for
    from hyperkit.data.bank import TaskBank
    from hyperkit.evaluation.protocol import one_shot_model, one_shot_plan, score
    from hyperkit.evaluation.run import resolve_tasks
    from hyperkit.training.checkpoint import load_hypernet

    check_margin(margin_mm)
    seed = check_seed(seed)  # before the checkpoint and the data are read
    start = time.perf_counter()
    torch.set_flush_denormal(True)
    hyper, cfg = load_hypernet(checkpoint, profile)
    ecfg = protocol_for(cfg, profile, overrides, draws=draws, shots=shots)
    data = DataConfig.from_config(cfg["data"])
    datasets = discover_datasets(data_root)
    split_map = load_split(split) if split else None
    all_tasks = {t.task_id: (ds, t) for ds in datasets for t in ds.tasks()}
    roles = assign_roles(list(all_tasks), split_map)
    chosen = resolve_tasks(tasks, [t for t in all_tasks if roles[t] == "heldout"])
    bank = TaskBank.from_datasets(datasets, "heldout", cfg, split_map, cache_dir=cache_dir, progress=progress,
                                  keep=set(chosen).__contains__, root=data_root)
    csv_path, json_path, md_path = whole_scan_paths(out_csv)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    # the CSV is rewritten row by row: an earlier run's record and table, left beside it, would describe an
    # interrupted run's partial rows (made with other settings, perhaps) as a finished run. A record means
    # its CSV is complete
    for stale in (json_path, md_path):
        stale.unlink(missing_ok=True)
    rows: list[dict[str, Any]] = []
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=WHOLE_FIELDS)
        writer.writeheader()
        for task in tqdm(bank.task_ids, desc="whole-scan", disable=not progress):
            ds, tk = all_tasks[task]
            ids = bank.case_ids[task]
            images, masks = bank.images[task], bank.masks[task]
            plan = one_shot_plan(len(ids), ecfg, seed, task)
            cases: dict[str, Any] = {}

            def whole(cid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                if cid not in cases:
                    c = preprocess_case(ds, cid, data, cache_dir)
                    cases[cid] = (c.image[tk.channel_index], (c.label == tk.label_value).astype(np.uint8),
                                  c.affine)
                return cases[cid]

            for d, (sup, query) in enumerate(zip(plan.supports, plan.queries)):
                unet = one_shot_model("hyper_unet", hyper, images[sup], masks[sup], ecfg,
                                      torch_generator(seed, "draw", task, d))
                patch_scores = score(_predict(unet, images[query]), masks[query], bank.spacing, ecfg.tau)
                s_img, s_lab, s_aff = whole(ids[sup[0]])  # localisation from the first support
                ref = make_reference(s_img, s_aff, s_lab, modality_of(tk.channel))
                for qi, (dsc_patch, _, _) in zip(query, patch_scores):
                    q_img, q_lab, q_aff = whole(ids[qi])
                    row = {"task": task, "draw": d, "support": "+".join(ids[i] for i in sup), "case": ids[qi],
                           "dsc_patch": dsc_patch, "error": ""}
                    row.update(_whole_row(unet, ref, q_img, q_lab, q_aff, data.patch_size, margin_mm,
                                          compare_none))
                    writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
                    fh.flush()
                    rows.append(row)
    summary = summarize_whole_scan(rows)
    table = whole_scan_table(summary, margin_mm)
    record = run_record(cfg, seed, checkpoint=str(checkpoint), data=str(Path(data_root).resolve()),
                        tasks=chosen, evaluate=ecfg.as_dict(), margin_mm=margin_mm,
                        wall_seconds=round(time.perf_counter() - start, 1), summary=summary)
    write_text_atomic(json_path, json.dumps(record, indent=2, default=str))
    write_text_atomic(md_path, table + "\n")
    return WholeScanResult(rows, summary, table, csv_path)


def _predict(unet: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([(unet(images[i:i + 4]) > 0).float() for i in range(0, images.shape[0], 4)])


def localise_and_segment(unet: torch.nn.Module, ref: Any, image: np.ndarray, affine: np.ndarray, patch_size: int,
                         margin_mm: float = DEFAULT_MARGIN_MM) -> tuple[np.ndarray, np.ndarray, Any]:
    """What ``hyperkit segment --roi auto`` does, on a preprocessed whole scan.

    Args:
        unet: the generated U-Net (eval mode).
        ref: the support's :class:`~hyperkit.inference.localise.SupportReference`.
        image: float32 ``(X, Y, Z)`` the preprocessed query.
        affine: ``(4, 4)`` its voxel-to-world matrix.
        patch_size: the U-Net's patch side.
        margin_mm: margin around the support's target box.

    Returns:
        ``(pred, box_mm, registration)``: uint8 ``(X, Y, Z)`` prediction, the ``(2, 3)`` region and the
        :class:`~hyperkit.inference.localise.Registration`.

    Raises:
        LocalisationError: a failed registration, or no overlap after it.
    """
    reg = register(ref, image, affine)
    mapped = map_box(ref.box_mm, reg.matrix, margin_mm)
    box = intersect(mapped, image_box(affine, image.shape))
    if box is None:
        raise NoOverlapError(f"no overlap after registration (mapped box {np.round(mapped, 1).tolist()})")
    logits, _ = predict_roi(unet, image, affine, box, patch_size)
    return (logits > 0).astype(np.uint8), box, reg


def _whole_row(unet: torch.nn.Module, ref: Any, q_img: np.ndarray, q_lab: np.ndarray, q_aff: np.ndarray,
               patch_size: int, margin_mm: float, compare_none: bool) -> dict[str, Any]:
    """The whole-scan columns of one (U-Net, query) pair; a localisation failure is recorded, DSC 0."""
    out: dict[str, Any] = {"dsc_whole_noroi": float("nan")}
    if compare_none:
        logits, _ = predict_roi(unet, q_img, q_aff, None, patch_size)
        out["dsc_whole_noroi"] = dice(logits > 0, q_lab)
    t0 = time.perf_counter()
    try:
        pred, box, reg = localise_and_segment(unet, ref, q_img, q_aff, patch_size, margin_mm)
    except LocalisationError as exc:
        return {**out, "dsc_whole": 0.0, "dsc_whole_post": 0.0, "target_in_roi": float("nan"),
                "centre_error_mm": float("nan"), "registration_seconds": time.perf_counter() - t0,
                "segmentation_seconds": 0.0, "error": type(exc).__name__}
    t_seg = time.perf_counter() - t0 - reg.seconds
    roi_vox = box_voxels(box, q_aff, q_img.shape)
    post, _ = postprocess(pred, keep="roi", roi_voxels=roi_vox, fill_holes=True)
    # diagnostics only (never used to place anything)
    gt_box = mask_box(q_lab, q_aff) if q_lab.any() else None
    mapped0 = map_box(ref.box_mm, reg.matrix, 0.0)
    centre_err = float(np.linalg.norm(mapped0.mean(0) - gt_box.mean(0))) if gt_box is not None else float("nan")
    in_roi = float((q_lab.astype(bool) & roi_vox).sum() / max(1, int(q_lab.sum())))
    return {**out, "dsc_whole": dice(pred, q_lab), "dsc_whole_post": dice(post, q_lab), "target_in_roi": in_roi,
            "centre_error_mm": centre_err, "registration_seconds": reg.seconds, "segmentation_seconds": t_seg}


def summarize_whole_scan(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: pairs, mean patch DSC, mean whole-scan DSC (plain, post-processed, without ROI),
    the ratios whole / patch, median target share in the region, median centre error and times."""
    out: dict[str, dict[str, Any]] = {}
    for task in sorted({r["task"] for r in rows}):
        rs = [r for r in rows if r["task"] == task]

        def mean(key: str) -> float:
            vals = [float(r[key]) for r in rs if r[key] == r[key]]  # NaN != NaN
            return round(statistics.fmean(vals), 4) if vals else float("nan")

        def median(key: str) -> float:
            vals = [float(r[key]) for r in rs if r[key] == r[key]]
            return round(statistics.median(vals), 3) if vals else float("nan")

        s = {"pairs": len(rs), "dsc_patch": mean("dsc_patch"), "dsc_whole": mean("dsc_whole"),
             "dsc_whole_post": mean("dsc_whole_post"), "dsc_whole_noroi": mean("dsc_whole_noroi"),
             "target_in_roi_median": median("target_in_roi"), "centre_error_mm_median": median("centre_error_mm"),
             "registration_seconds_median": median("registration_seconds"),
             "segmentation_seconds_median": median("segmentation_seconds"),
             "failures": sum(1 for r in rs if r.get("error"))}
        for k in ("dsc_whole", "dsc_whole_post"):
            s[f"{k}_over_patch"] = round(s[k] / s["dsc_patch"], 3) if s["dsc_patch"] > 0 else float("nan")
        out[task] = s
    return out


def whole_scan_table(summary: dict[str, dict[str, Any]], margin_mm: float = DEFAULT_MARGIN_MM) -> str:
    """The whole-scan protocol beside the patch protocol, one Markdown row per task."""
    lines = [f"**Whole-scan protocol** (support registered to each whole query, margin {margin_mm:g} mm; "
             "same U-Nets, draws and test cases as the patch protocol)", "",
             "| task | pairs | patch DSC | whole-scan DSC | ratio | + keep ROI components, fill holes | ratio "
             "| no ROI | target in ROI | centre error (mm) | registration (s) | segmentation (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def f(v: Any, fmt: str = ".3f") -> str:
        return "—" if v != v else format(v, fmt)

    for task, s in summary.items():
        lines.append(f"| {task} | {s['pairs']} | {f(s['dsc_patch'])} | {f(s['dsc_whole'])} | "
                     f"{f(s['dsc_whole_over_patch'], '.2f')} | {f(s['dsc_whole_post'])} | "
                     f"{f(s['dsc_whole_post_over_patch'], '.2f')} | {f(s['dsc_whole_noroi'])} | "
                     f"{f(s['target_in_roi_median'], '.2f')} | {f(s['centre_error_mm_median'], '.0f')} | "
                     f"{f(s['registration_seconds_median'], '.1f')} | {f(s['segmentation_seconds_median'], '.1f')} |")
    return "\n".join(lines)
