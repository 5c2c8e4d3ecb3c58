"""How hard are the held-out tasks? Two trivial baselines on the kit's own preprocessing.

For every binary task of the held-out datasets, on the patches that the profile's
preprocessing makes (:func:`hyperkit.data.preprocess.dataset_patches`: RAS, isotropic
spacing, normalised, one cube covering the target, placed as ``data.placement`` says: at a
seeded offset from the target's centre in the quick and paper profiles, or centred on it):

- **mask copy**: the Dice of pasting one case's mask onto another case
  (mean over all ordered support/query pairs). It measures how much the target's place,
  shape and size vary between patches; with centred patches only shape and size remain, and
  copying becomes an aligned atlas (notebook 05, the centre prior).
  A one-shot method must beat it to have learnt anything from the image.
- **best global threshold**: the best mean Dice that any intensity interval
  ``[lo, hi]`` reaches when applied to every case of the task (an oracle: the
  interval is chosen on the very cases it is scored on). The candidate bounds
  are quantiles of the pooled patch intensities (2 % steps). High values mean
  the target is separable by intensity alone.

Both are upper-bound-style sanity numbers for the phantoms, not methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from hyperkit.metrics import copy_support, dice

__all__ = ["TaskDifficulty", "mask_copy_dice", "best_threshold_dice", "task_difficulty", "difficulty_table",
           "format_markdown"]


@dataclass
class TaskDifficulty:
    """Difficulty numbers of one task.

    Attributes:
        task_id: e.g. ``"msd/Task09_Spleen/spleen@CT"``.
        cases: number of cases in which the target is present.
        copy_dice: mean Dice of mask copy over ordered pairs (NaN with < 2 cases).
        threshold_dice: best mean Dice of one global intensity interval.
        interval: the best interval ``(lo, hi)`` in normalised intensity units.
        fraction: mean share of the patch that the target fills.
    """

    task_id: str
    cases: int
    copy_dice: float
    threshold_dice: float
    interval: tuple[float, float]
    fraction: float


def mask_copy_dice(masks: list[np.ndarray]) -> float:
    """Mean Dice of mask ``i`` used as the prediction for case ``j`` over all ``i != j``.

    The prediction is :func:`hyperkit.metrics.copy_support` of the one support ``i`` and the
    score :func:`hyperkit.metrics.dice`: the same reference and metric the evaluation uses.

    Args:
        masks: binary masks of one shape (e.g. ``(S, S, S)`` or ``(1, S, S, S)`` patches).
    """
    if len(masks) < 2:
        return float("nan")
    m = [torch.as_tensor(np.asarray(x, bool)) for x in masks]
    copies = [copy_support(x.reshape(1, 1, *x.shape[-3:])) for x in m]
    vals = [dice(copies[i], m[j]) for i in range(len(m)) for j in range(len(m)) if i != j]
    return float(np.mean(vals))


def best_threshold_dice(images: list[np.ndarray], masks: list[np.ndarray], step: float = 2.0,
                        ) -> tuple[float, tuple[float, float]]:
    """Best mean Dice of one intensity interval applied to every case.

    The bounds are the quantiles ``0, step, 2 step, ..., 100`` % of the pooled
    intensities; every interval between two of them is scored on every case
    at once from cumulative histograms (exact for voxels binned by those bounds).

    Args:
        images: intensity arrays, one per case.
        masks: binary masks of the same shapes.
        step: quantile step in percent.

    Returns:
        ``(best mean Dice, (lo, hi))``.
    """
    pooled = np.concatenate([np.asarray(x, np.float32).ravel() for x in images])
    edges = np.unique(np.percentile(pooled, np.arange(0.0, 100.0 + step / 2, step)))
    if edges.size < 2:
        return 0.0, (float(pooled.min()), float(pooled.max()))
    k = edges.size
    scores = np.zeros((k, k))
    for img, msk in zip(images, masks):
        x = np.asarray(img, np.float32).ravel()
        m = np.asarray(msk, bool).ravel()
        # bin b holds edges[b] <= x < edges[b+1]; the last bin includes the top edge
        b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, k - 2)
        all_c = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=k - 1))])
        fg_c = np.concatenate([[0], np.cumsum(np.bincount(b[m], minlength=k - 1))])
        pred = all_c[None, :] - all_c[:, None]  # interval [edges[i], edges[j]) for i < j
        tp = fg_c[None, :] - fg_c[:, None]
        n_fg = int(m.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(pred + n_fg > 0, 2.0 * tp / (pred + n_fg), 0.0)
        scores += d
    scores /= len(images)
    scores[np.tril_indices(k)] = -1.0
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return float(scores[i, j]), (float(edges[i]), float(edges[j]))


def task_difficulty(task_id: str, images: list[np.ndarray], masks: list[np.ndarray]) -> TaskDifficulty:
    """Both baselines for one task's patches."""
    thr, interval = best_threshold_dice(images, masks) if images else (float("nan"), (np.nan, np.nan))
    frac = float(np.mean([np.asarray(m, bool).mean() for m in masks])) if masks else float("nan")
    return TaskDifficulty(task_id, len(masks), mask_copy_dice(masks), thr, interval, frac)


def difficulty_table(root: str | Path, profile: str | Mapping[str, Any] = "quick", *, layouts: Iterable[str] = ("msd",),
                     cache_dir: str | Path | None = None, progress: bool = False) -> list[TaskDifficulty]:
    """Difficulty of every binary task of the held-out datasets under ``root``.

    Uses the kit's readers (:func:`hyperkit.data.layouts.discover_datasets`) and
    preprocessing (:func:`hyperkit.data.preprocess.dataset_patches`) with the
    profile's ``data`` section, so the numbers describe exactly what a model sees.

    Args:
        root: a data root (e.g. the phantoms folder).
        profile: a profile name / path or a resolved config mapping.
        layouts: which dataset layouts to score (default: the MSD held-out tasks).
        cache_dir: preprocessing cache (default: the kit's cache).
        progress: tqdm bars while preprocessing.

    Returns:
        One :class:`TaskDifficulty` per task, in dataset and task order.
    """
    from hyperkit.config import load_profile
    from hyperkit.data.layouts import discover_datasets
    from hyperkit.data.preprocess import dataset_patches

    cfg = load_profile(profile) if isinstance(profile, (str, Path)) else dict(profile)
    keep = set(layouts)
    rows = []
    for ds in discover_datasets(root):
        if ds.layout not in keep:
            continue
        tasks = ds.tasks()
        patches = dataset_patches(ds, tasks, cfg, cache_dir=cache_dir, progress=progress)
        for task in tasks:
            ps = patches[task.task_id]
            rows.append(task_difficulty(task.task_id, [p.image[0] for p in ps], [p.mask[0] for p in ps]))
    return rows


def format_markdown(rows: list[TaskDifficulty]) -> str:
    """The table as markdown: task, cases, mask-copy Dice, best-threshold Dice, target share."""
    lines = ["| task | cases | mask-copy Dice | best global threshold Dice | target share of patch |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.task_id} | {r.cases} | {r.copy_dice:.2f} | {r.threshold_dice:.2f} | "
                     f"{100 * r.fraction:.2f} % |")
    return "\n".join(lines)
