"""Tasks in memory and the sampling of episodes (Algorithm 1, lines 3-7)."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from hyperkit.config.sections import SAMPLINGS
from hyperkit.data.layouts import Dataset
from hyperkit.data.preprocess import DataConfig, centre_bounds, dataset_patches, fill_cache
from hyperkit.data.store import DiskCubes, available_memory, cube_bytes, stored_patches, target_box
from hyperkit.data.splits import assign_roles
from hyperkit.data.tasks import Task, task_parts
from hyperkit.errors import DataError
from hyperkit.side_by_side import check_workers

__all__ = ["TaskBank", "Episode", "structure_group", "SAMPLINGS", "preprocess_workers", "WORKER_MEMORY"]

# words of a class name that say which copy of a structure it is, not which structure
_COPY_WORDS = {"left", "right", "upper", "middle", "lower", "lobe"}
_INDEX = re.compile(r"^[a-z]?\d+$")


def structure_group(task_id: str) -> str:
    """The structure a task's class belongs to, without side, lobe or index.

    ``.../rib_left_3@CT`` -> ``rib``; ``.../vertebrae_T4@CT`` -> ``vertebrae``;
    ``.../lung_upper_lobe_left@CT`` -> ``lung``; ``.../kidney_right@CT`` -> ``kidney``.
    Group-balanced sampling draws a group first, so that 24 ribs and 17 vertebrae do not
    make up half of all episodes.
    """
    name = task_parts(task_id).class_name.lower()
    words = [w for w in re.split(r"[_\s-]+", name) if w and w not in _COPY_WORDS and not _INDEX.match(w)]
    return "_".join(words) or name


#: memory one preprocessing worker may take: a whole-body CT read and resampled in float64, with its copies
WORKER_MEMORY = 4 * 2 ** 30


def preprocess_workers(workers: int | None) -> int:
    """Cases preprocessed at once: ``workers``, or (``None``) one per core this process may use, as many as the
    available memory holds at :data:`WORKER_MEMORY` each, at least 1.

    Raises:
        ValueError: ``workers`` < 1.
    """
    if workers is not None:
        check_workers(workers)
        return workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    free = available_memory()
    return max(1, min(cores, cores if free is None else free // WORKER_MEMORY))


def _split_note(case_splits: Sequence[str] | None, splits: Mapping[str, int], unsplit: int) -> str:
    """Why a case-split filter may have left no task: the splits asked for and how many cases carry each."""
    if case_splits is None or not splits:
        return ""
    asked = list(case_splits)
    matched = sum(n for s, n in splits.items() if s in asked)
    have = ", ".join(f"{s} {n}" for s, n in splits.items())
    note = (f": the case splits {asked} match {matched} of the {sum(splits.values())} cases with a split "
            f"(their splits: {have})")
    if unsplit:
        note += f"; {unsplit} case(s) without a split are kept by every filter"
    return note


def _selection(ds: Dataset, role: str, split: dict[str, list[str]] | None, case_splits: Sequence[str] | None,
               keep: Callable[[str], bool] | None) -> tuple[list[Task], list[str]]:
    """The tasks of ``ds`` in ``role`` (and accepted by ``keep``) and the cases of the asked case splits."""
    tasks = ds.tasks()
    roles = assign_roles([t.task_id for t in tasks], split)
    chosen = [t for t in tasks if roles[t.task_id] == role and (keep is None or keep(t.task_id))]
    cases = [c.case_id for c in ds.cases if case_splits is None or c.split is None or c.split in case_splits]
    return chosen, cases


@dataclass
class Episode:
    """One episode's mini-batch: B tasks with one support and one query case each.

    Attributes:
        task_ids: B task ids.
        support_images, support_masks, query_images, query_masks: ``(B, 1, 1, S, S, S)``.
    """

    task_ids: list[str]
    support_images: Tensor
    support_masks: Tensor
    query_images: Tensor
    query_masks: Tensor

    def to(self, device: torch.device | str) -> "Episode":
        """The same episode with its tensors on ``device``."""
        return Episode(self.task_ids, self.support_images.to(device), self.support_masks.to(device),
                       self.query_images.to(device), self.query_masks.to(device))

    def shard(self, rank: int, world: int) -> "Episode":
        """This rank's share of the tasks (tasks ``rank, rank + world, ...``)."""
        sl = slice(rank, None, world)
        return Episode(self.task_ids[sl], self.support_images[sl], self.support_masks[sl],
                       self.query_images[sl], self.query_masks[sl])


@dataclass
class TaskBank:
    """Preprocessed patches of a set of tasks, held in memory (or, for a training bank too large for it, on disk).

    Attributes:
        images: ``task_id -> (N, 1, S', S', S')`` float32 (a :class:`~hyperkit.data.store.DiskCubes` of
            as many cubes in a bank kept on disk: indexed alike, a cube's voxels read when it is sliced).
        masks: ``task_id -> (N, 1, S', S', S')`` in {0, 1}: float32, or uint8 in a bank with
            ``margin > 0`` (a quarter of the memory; :meth:`sample` hands out float32 patches).
        case_ids: ``task_id -> N case ids``.
        spacing: voxel size in mm.
        dropped: tasks left out and why (e.g. fewer than two cases).
        margin: 0: the patches are the model's inputs (``S' = S``); > 0: cubes of side
            ``S' = S + 2 * margin`` centred on the target, from which :meth:`sample` cuts a
            patch of side S at a fresh random offset every time (the target stays covered).
        crop: 0: :meth:`sample` hands out patches of side S; > 0: of side ``crop`` (<= S), cut
            by the same rule (``train.crop_size``: cheaper training episodes).
    """

    images: dict[str, Tensor | DiskCubes]
    masks: dict[str, Tensor | DiskCubes]
    case_ids: dict[str, list[str]]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    dropped: dict[str, str] = field(default_factory=dict)
    margin: int = 0
    crop: int = 0
    boxes: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False,
                                                                        compare=False)

    @property
    def task_ids(self) -> list[str]:
        return sorted(self.images)

    @property
    def storage(self) -> str:
        """``"disk"`` when the cubes are cut from the cached cases on disk (:class:`~hyperkit.data.store.DiskCubes`),
        else ``"memory"``."""
        return "disk" if any(isinstance(v, DiskCubes) for v in self.images.values()) else "memory"

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_datasets(cls, datasets: Sequence[Dataset], role: str, cfg: Mapping[str, Any],
                      split: dict[str, list[str]] | None = None, case_splits: Sequence[str] | None = None,
                      cache_dir: str | Path | None = None, progress: bool = False,
                      min_cases: int = 2, keep: Callable[[str], bool] | None = None,
                      margin: int = 0, crop: int = 0, root: str | Path | None = None,
                      store: str | Path | None = None, workers: int | None = None) -> "TaskBank":
        """Load every task of ``role`` (``"train"``, ``"val"`` or ``"heldout"``).

        Args:
            datasets: from :func:`hyperkit.data.layouts.discover_datasets`.
            role: which tasks, by the split file.
            cfg: the profile (its ``data`` section is used).
            split: a split mapping (default: the paper's).
            case_splits: keep only cases whose dataset split (TotalSegmentator ``meta.csv``)
                is one of these; cases without a split value are always kept.
            cache_dir: preprocessing cache.
            progress: tqdm bars.
            min_cases: tasks with fewer present cases are dropped (recorded in ``dropped``).
            keep: load only the tasks of ``role`` whose id it accepts (default: all).
            margin: see the class attribute (training banks: ``DataConfig.max_shift``).
            crop: see the class attribute (training banks: ``TrainConfig.crop_size``).
            root: the folder the datasets were found in (``--data``), named when no task is left
                (default: the folder above the datasets).
            store: with ``margin > 0``, cut the cubes per episode from the cached cases, through an index in this
                folder
                (:mod:`hyperkit.data.store`: written once, then reused; the same episodes); ``None``: in memory.
            workers: cases preprocessed at once (:func:`~hyperkit.data.preprocess.fill_cache`; the same data
                whatever the number); 1: one after the other while the bank is built; default
                :func:`preprocess_workers`.

        Raises:
            ValueError: ``crop`` is negative or larger than the profile's patch size, or ``margin``
                is negative (it failed only when the bank was sampled).
            ConfigError: ``split`` lacks a role of :data:`~hyperkit.data.splits.ROLES`, has another, or
                a role's patterns are not a list of strings (:func:`~hyperkit.data.splits.assign_roles`).
        """
        size = int(cfg["data"]["patch_size"])
        if not 0 <= crop <= size:
            raise ValueError(f"crop must be in [0, {size}] (0: the patch size), got {crop}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0 voxels, got {margin}")
        if split is not None:
            assign_roles([], split)  # checks the split before any dataset is read
        workers = preprocess_workers(workers)
        images: dict[str, Tensor] = {}
        masks: dict[str, Tensor] = {}
        mask_dtype = np.uint8 if margin else np.float32  # cubes are only read through _cut, which casts
        ids: dict[str, list[str]] = {}
        dropped: dict[str, str] = {}
        spacing = (1.0, 1.0, 1.0)
        boxes: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}  # targets' boxes a stored bank holds

        def too_few(tid: str, n: int) -> bool:  # a task in fewer cases than an episode or a validation needs
            if n < min_cases:
                dropped[tid] = f"present in {n} case(s), needs {min_cases}"
            return n < min_cases

        splits: dict[str, int] = {}  # case split value -> cases, in the datasets that hold tasks of the role
        unsplit = 0
        for ds in datasets:
            chosen, cases = _selection(ds, role, split, case_splits, keep)
            if not chosen:
                continue
            if workers > 1:  # the cases into the cache side by side; the bank then reads them from it
                fill_cache(ds, cases, DataConfig.from_config(cfg), cache_dir, workers, progress)
            for c in ds.cases:
                if c.split is None:
                    unsplit += 1
                else:
                    splits[c.split] = splits.get(c.split, 0) + 1
            if store is not None and margin:
                stored = stored_patches(ds, chosen, DataConfig.from_config(cfg), store, cache_dir, cases, margin,
                                        progress)
                for t in chosen:
                    got = stored.get(t.task_id)
                    if too_few(t.task_id, len(got.case_ids) if got else 0):
                        continue
                    images[t.task_id], masks[t.task_id], ids[t.task_id] = got.images, got.masks, got.case_ids
                    spacing = got.spacing
                    boxes.update({(t.task_id, i): box for i, box in enumerate(got.boxes) if box is not None})
                continue
            patches = dataset_patches(ds, chosen, cfg, cache_dir, cases, progress, margin=margin)
            for tid in list(patches):
                plist = patches.pop(tid)  # each task's patches are freed once stacked: no second copy of the bank
                if too_few(tid, len(plist)):
                    continue
                images[tid] = torch.from_numpy(np.stack([p.image for p in plist]))
                masks[tid] = torch.from_numpy(np.stack([p.mask for p in plist]).astype(mask_dtype))
                ids[tid] = [p.case_id for p in plist]
                spacing = plist[0].spacing
        if dropped:
            warnings.warn(f"{len(dropped)} {role} task(s) left out: " +
                          "; ".join(f"{k} ({v})" for k, v in sorted(dropped.items())), stacklevel=2)
        if not images:  # named by the folder that holds the datasets, not one dataset (it may not hold the role)
            where = root if root is not None else (
                os.path.commonpath([str(Path(d.root).parent) for d in datasets]) if datasets else ".")
            raise DataError(where, f"no {role} task with at least {min_cases} cases"
                            + (f" ({len(dropped)} had fewer)" if dropped else "")
                            + _split_note(case_splits, splits, unsplit))
        return cls(images, masks, ids, spacing, dropped, margin, crop, boxes)

    @staticmethod
    def bytes_bound(datasets: Sequence[Dataset], role: str, cfg: Mapping[str, Any],
                    split: dict[str, list[str]] | None = None, case_splits: Sequence[str] | None = None,
                    keep: Callable[[str], bool] | None = None, margin: int = 0) -> int:
        """An upper bound of the memory a bank of cubes takes (:meth:`from_datasets`, same arguments), read from
        the datasets' listings alone: one cube of side ``S + 2 · margin`` per (task, case), as if every case
        held every target (:func:`~hyperkit.data.store.cube_bytes`)."""
        side = DataConfig.from_config(cfg).patch_size + 2 * margin
        pairs = 0
        for ds in datasets:
            chosen, cases = _selection(ds, role, split, case_splits, keep)
            pairs += len(chosen) * len(cases)
        return pairs * cube_bytes(side)

    def groups(self) -> dict[str, list[str]]:
        """``structure group -> task ids`` (:func:`structure_group`)."""
        out: dict[str, list[str]] = {}
        for tid in self.task_ids:
            out.setdefault(structure_group(tid), []).append(tid)
        return out

    def _pick_tasks(self, n_tasks: int, generator: torch.Generator, sampling: str) -> list[str]:
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        if n_tasks < 1:  # a negative count sliced randperm to len - |n| tasks; 0 failed in torch.stack
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
        pools = list(self.groups().values()) if sampling == "group" else [[t] for t in self.task_ids]
        if n_tasks <= len(pools):
            order = torch.randperm(len(pools), generator=generator)[:n_tasks].tolist()
        else:
            order = torch.randint(len(pools), (n_tasks,), generator=generator).tolist()
        return [pools[i][int(torch.randint(len(pools[i]), (1,), generator=generator))] if len(pools[i]) > 1
                else pools[i][0] for i in order]

    def _cut(self, tid: str, index: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Case ``index`` of task ``tid`` as a model input ``(1, S, S, S)`` (``S``: ``crop`` when set).

        A random offset crop of the stored cube when ``margin > 0`` or ``crop > 0``. Every axis: a
        uniform start among those that :func:`~hyperkit.data.preprocess.centre_bounds` allows (the
        crop inside the cube, its centre within ``margin · S / S_patch`` voxels of the cube's centre
        (the profile's ``max_offset`` at the crop's scale) and the target's bounding box inside the
        crop); where none does (the target larger than the crop, or a cube off-centre at the scan's
        edge), the crop is centred in the cube (full size) or on one voxel of the target, drawn at
        random (``crop``), so that a curved target (a rib) is never missed.
        """
        image, mask = self.images[tid][index], self.masks[tid][index]
        if not self.margin and not self.crop:
            return image, mask
        cube = image.shape[-1]
        full = cube - 2 * self.margin
        size = self.crop or full
        middle = (cube - size) // 2  # the start that centres the crop in the cube
        half = size // 2
        lo, hi = self._target_box(tid, index, mask)
        c_min, c_max, fits = centre_bounds(lo, hi, size, self.margin * size // full,
                                           around=np.full(3, middle + half), extent=cube)
        start, voxel = [], None
        for a in range(3):
            first, last = int(c_min[a]) - half, int(c_max[a]) - half
            if not fits[a]:
                fallback = middle
                if self.crop:  # centred on one of the target's voxels, so that the crop holds some target
                    if voxel is None:
                        fg = mask[0].nonzero()
                        voxel = fg[int(torch.randint(len(fg), (1,), generator=generator))]
                    fallback = int(voxel[a]) - half
                first = last = min(max(fallback, 0), cube - size)
            start.append(first + int(torch.randint(last - first + 1, (1,), generator=generator)))
        sl = (slice(None),) + tuple(slice(s, s + size) for s in start)
        return image[sl], mask[sl].float()  # cubes' masks are stored as uint8 (see ``masks``)

    def _target_box(self, tid: str, index: int, mask: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The first and last voxel of case ``index``'s target in its cube, per axis ``(d, h, w)``; found once per
        cube (a 192³ mask of the paper profile takes milliseconds, 16 times an episode) and kept."""
        key = (tid, index)
        if key not in self.boxes:
            self.boxes[key] = target_box(mask)
        return self.boxes[key]

    def sample(self, n_tasks: int, generator: torch.Generator, sampling: str = "uniform") -> Episode:
        """Draw B tasks and, per task, a support and an independent query case (two different cases).

        Args:
            n_tasks: B.
            generator: every random choice comes from it.
            sampling: ``"uniform"``: B tasks without replacement while possible;
                ``"group"``: B structure groups (:func:`structure_group`) without replacement
                while possible, then one task of each, uniformly.
        """
        chosen = self._pick_tasks(n_tasks, generator, sampling)
        s_img, s_msk, q_img, q_msk = [], [], [], []
        for tid in chosen:
            n = self.images[tid].shape[0]
            if n < 2:  # a support and a different query; it failed with an IndexError
                raise ValueError(f"{tid}: {n} case, an episode needs 2 (a support and a query)")
            pair = torch.randperm(n, generator=generator)[:2].tolist()
            for index, imgs, msks in ((pair[0], s_img, s_msk), (pair[1], q_img, q_msk)):
                image, mask = self._cut(tid, index, generator)
                imgs.append(image)
                msks.append(mask)

        def stack(xs: list[Tensor]) -> Tensor:
            return torch.stack(xs)[:, None]  # (B, 1, 1, S, S, S)

        return Episode(chosen, stack(s_img), stack(s_msk), stack(q_img), stack(q_msk))
