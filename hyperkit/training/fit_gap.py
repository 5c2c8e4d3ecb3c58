"""Under-fitting or a failure to transfer? One-shot Dice on training tasks beside validation tasks.

A trained hypernetwork is scored one-shot, the way validation scores it, on two sets of tasks:

* **training tasks**: one task per structure group (the first id in text order: ``kidney_left``
  for the kidneys, ``rib_left_10`` for the ribs; :func:`~hyperkit.data.bank.structure_group`), cases of
  the *training* subjects, the same offset patches as validation;
* **validation tasks**: the profile's validation tasks (never trained on), cases of the
  val/test subjects.

Both low: the model under-fits (it cannot yet write a good U-Net even for tasks it trains on);
training high and validation low: it fails to transfer. BENCHMARKS.md, "Recipe study", and
notebook 04 read the default quick model this way.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hyperkit.config import TrainConfig
from hyperkit.data.bank import TaskBank, structure_group
from hyperkit.data.layouts import Dataset, discover_datasets
from hyperkit.data.splits import assign_roles
from hyperkit.model.hypernet import HyperUNet
from hyperkit.training.loop import one_shot_validation

__all__ = ["FitGap", "one_task_per_group", "group_bank", "fit_gap"]


@dataclass(frozen=True)
class FitGap:
    """One-shot Dice of one model on training and on validation tasks.

    Attributes:
        train_dice: mean over the training tasks (one per structure group).
        val_dice: mean over the validation tasks.
        train_per_task: ``task_id -> Dice`` of the training tasks.
        val_per_task: ``task_id -> Dice`` of the validation tasks.
    """

    train_dice: float
    val_dice: float
    train_per_task: dict[str, float]
    val_per_task: dict[str, float]

    @property
    def gap(self) -> float:
        """``train_dice - val_dice``: near 0 with both low is under-fitting."""
        return self.train_dice - self.val_dice

    @property
    def per_group(self) -> dict[str, float]:
        """``structure group -> Dice`` of the training tasks (the mean of the group's tasks, for
        ``per_group > 1``), highest first."""
        groups: dict[str, list[float]] = {}
        for t, d in self.train_per_task.items():
            groups.setdefault(structure_group(t), []).append(d)
        rows = {g: statistics.fmean(ds) for g, ds in groups.items()}
        return dict(sorted(rows.items(), key=lambda kv: -kv[1]))


def _first_per_group(datasets: Sequence[Dataset], per_group: int) -> list[str]:
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")
    groups: dict[str, list[str]] = {}
    for ds in datasets:
        for tid, role in assign_roles([t.task_id for t in ds.tasks()]).items():
            if role == "train":
                groups.setdefault(structure_group(tid), []).append(tid)
    return sorted(t for ids in groups.values() for t in sorted(ids)[:per_group])


def one_task_per_group(data_root: str | Path, per_group: int = 1) -> list[str]:
    """The first ``per_group`` training task ids (sorted) of every structure group in ``data_root``.

    Raises:
        ValueError: ``per_group < 1``.
    """
    return _first_per_group(discover_datasets(data_root), per_group)


def _group_bank(datasets: Sequence[Dataset], cfg: Mapping[str, Any], per_group: int,
                cache_dir: str | Path | None, root: str | Path) -> TaskBank:
    chosen = set(_first_per_group(datasets, per_group))
    return TaskBank.from_datasets(datasets, "train", cfg, case_splits=TrainConfig.from_config(cfg).train_splits,
                                  cache_dir=cache_dir, keep=chosen.__contains__, root=root)


def group_bank(data_root: str | Path, cfg: Mapping[str, Any], per_group: int = 1,
               cache_dir: str | Path | None = None) -> TaskBank:
    """The training tasks :func:`fit_gap` scores (:func:`one_task_per_group`), as validation places
    their patches, cases of ``train.train_splits`` only.

    Raises:
        ValueError: ``per_group < 1``.
    """
    return _group_bank(discover_datasets(data_root), cfg, per_group, cache_dir, data_root)


def fit_gap(model: HyperUNet, cfg: Mapping[str, Any], data_root: str | Path, n_supports: int = 3,
            n_queries: int = 5, per_group: int = 1, cache_dir: str | Path | None = None) -> FitGap:
    """Score ``model`` one-shot on training tasks (one per group) and on the validation tasks.

    Each task's first ``n_supports`` cases serve in turn as the support, each scored on the
    ``n_queries`` cases that follow it (:func:`~hyperkit.training.loop.one_shot_validation`, eval
    mode, CPU); training tasks use the cases of ``train.train_splits`` (:func:`group_bank`),
    validation tasks those of ``train.val_splits``.

    Args:
        model: a trained hypernetwork (e.g. from :func:`~hyperkit.training.checkpoint.load_hypernet`).
        cfg: the resolved profile it was trained with (its ``data`` and ``train`` sections).
        data_root: the data folder it was trained on.
        n_supports, n_queries: supports per task and queries per support, >= 1.
        per_group: training tasks per structure group.
        cache_dir: preprocessing cache.

    Raises:
        ValueError: ``n_supports`` or ``n_queries`` below 1.
    """
    if n_supports < 1 or n_queries < 1:
        raise ValueError(f"n_supports and n_queries must be >= 1, got {n_supports} and {n_queries}")
    datasets = discover_datasets(data_root)
    train_bank = _group_bank(datasets, cfg, per_group, cache_dir, data_root)
    val_bank = TaskBank.from_datasets(datasets, "val", cfg, case_splits=TrainConfig.from_config(cfg).val_splits,
                                      cache_dir=cache_dir, root=data_root)
    cpu = torch.device("cpu")
    on_train = one_shot_validation(model, train_bank, n_queries, cpu, n_supports=n_supports)
    on_val = one_shot_validation(model, val_bank, n_queries, cpu, n_supports=n_supports)
    return FitGap(on_train["dice"], on_val["dice"], on_train["per_task"], on_val["per_task"])
