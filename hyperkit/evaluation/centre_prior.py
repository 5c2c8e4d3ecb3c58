"""Where is the target? The centre prior of centred patches (notebook 05).

The paper cuts "a single 128^3 voxel patch covering the target structure ... centred when
necessary". If every patch is centred on its target, a method gets the target's place for
free: copying the support mask becomes an aligned atlas, and a ball at the patch centre
(:func:`~hyperkit.evaluation.baselines.central_blob`) already scores well. The kit therefore
offsets patches (``data.placement: offset``). This module measures what the centre prior is
worth: for held-out tasks, patches are cut twice (``centred`` and ``offset``, the config
otherwise unchanged), and the two image-blind references are scored on every ordered
(support, query) pair of cases.
"""

from __future__ import annotations

import fnmatch
import statistics
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from torch import Tensor

from hyperkit.config import CENTRE_PRIOR_METHODS, merge_config  # the image-blind references (method -> label)
from hyperkit.data.preprocess import PLACEMENTS
from hyperkit.evaluation.baselines import central_blob, copy_support
from hyperkit.evaluation.tables import task_map
from hyperkit.metrics import dice
from hyperkit.data.bank import TaskBank
from hyperkit.data.tasks import task_parts

__all__ = ["CENTRE_PRIOR_METHODS", "placement_config", "pairwise_dice", "centre_prior_rows", "centre_prior_table",
           "centre_prior_means", "target_name"]

_BASELINES: dict[str, Callable[[Tensor], Tensor]] = {"copy_support": copy_support, "central_blob": central_blob}


def target_name(task: str) -> str:
    """The paper column a task plays (``liver``), else its class name (``.../spleen@CT`` -> ``spleen@CT``)."""
    for col, pattern in task_map().items():
        if fnmatch.fnmatch(task, pattern):
            return col
    return task_parts(task).short


def placement_config(cfg: Mapping[str, Any], placement: str) -> dict[str, Any]:
    """``cfg`` with ``data.placement`` set to ``placement`` (everything else unchanged).

    Raises:
        ValueError: ``placement`` is not one of :data:`~hyperkit.data.preprocess.PLACEMENTS`.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {list(PLACEMENTS)}, got {placement!r}")
    return merge_config(cfg, {"data": {"placement": placement}})


def pairwise_dice(masks: Tensor, method: str) -> list[float]:
    """Dice of ``method`` built from each case and scored on each other case.

    Args:
        masks: ``(N, 1, S, S, S)`` binary masks of one task (N >= 2).
        method: a key of :data:`CENTRE_PRIOR_METHODS`.

    Returns:
        ``N * (N - 1)`` values, one per ordered (support, query) pair, support-major.
    """
    if method not in _BASELINES:
        raise ValueError(f"method must be one of {list(_BASELINES)}, got {method!r}")
    if masks.dim() != 5 or masks.shape[0] < 2:
        raise ValueError(f"masks must be (N >= 2, 1, S, S, S), got shape {tuple(masks.shape)}")
    out = []
    for s in range(masks.shape[0]):
        pred = _BASELINES[method](masks[s:s + 1])
        out += [dice(pred, masks[q]) for q in range(masks.shape[0]) if q != s]
    return out


def centre_prior_rows(banks: Mapping[str, TaskBank],
                      methods: Sequence[str] = tuple(CENTRE_PRIOR_METHODS)) -> list[dict[str, Any]]:
    """Mean Dice of the image-blind references per task and placement.

    Args:
        banks: ``placement -> TaskBank`` of the same tasks and cases, patches cut with that placement.
        methods: keys of :data:`CENTRE_PRIOR_METHODS`.

    Returns:
        One row per task × placement × method: ``task``, ``target`` (:func:`target_name`),
        ``placement``, ``method``, ``dsc`` (mean over ordered pairs), ``dsc_std`` (population),
        ``pairs``, ``cases``; tasks in id order, then placements as given, then methods.
    """
    rows = []
    tasks = sorted({t for b in banks.values() for t in b.task_ids})
    for task in tasks:
        for placement, bank in banks.items():
            if task not in bank.masks:
                continue
            for method in methods:
                values = pairwise_dice(bank.masks[task], method)
                rows.append({"task": task, "target": target_name(task), "placement": placement, "method": method,
                             "dsc": statistics.fmean(values), "dsc_std": statistics.pstdev(values),
                             "pairs": len(values), "cases": len(bank.case_ids[task])})
    return rows


def centre_prior_table(data_root: str | Path, cfg: Mapping[str, Any], tasks: Sequence[str] | None = None, *,
                       placements: Sequence[str] = PLACEMENTS, split: str | Path | None = None,
                       cache_dir: str | Path | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Copy-the-mask and central-blob Dice of held-out tasks with centred and with offset patches.

    For each placement the held-out patches are built with ``cfg`` (a profile or a
    checkpoint's config) whose ``data.placement`` is replaced (:func:`placement_config`);
    preprocessing is cached, so the second placement only cuts new patches.

    Args:
        data_root: folder of datasets (the phantoms or real data).
        cfg: the resolved config whose ``data`` section makes the patches.
        tasks: patterns or paper column names (:func:`~hyperkit.evaluation.run.resolve_tasks`);
            default every held-out task.
        placements: which placements, in this order.
        split, cache_dir, progress: as :func:`~hyperkit.evaluation.run.heldout_bank`.

    Returns:
        Rows of :func:`centre_prior_rows`.
    """
    from hyperkit.evaluation.run import heldout_bank

    banks = {p: heldout_bank(data_root, placement_config(cfg, p), tasks, split, cache_dir, progress)
             for p in placements}
    return centre_prior_rows(banks)


def centre_prior_means(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """``(placement, method) -> mean Dice over the tasks`` of :func:`centre_prior_rows` rows."""
    groups: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["placement"], r["method"]), []).append(float(r["dsc"]))
    return {k: statistics.fmean(v) for k, v in groups.items()}
