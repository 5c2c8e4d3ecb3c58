"""A training bank's cubes on disk, for data that do not fit in memory.

:class:`~hyperkit.data.bank.TaskBank` holds one cube of side ``S + 2 · max_shift`` per training
case and task. On the phantoms of the quick profile that is 2-3 GB; at the paper profile's
128³ patches (cubes of 192³ voxels, 35 MB each as float32 image + uint8 mask) it is 49 GB for the
phantoms and, for the real TotalSegmentator (about 1,000 training subjects, 100 training
structures), terabytes. :func:`stored_patches` writes every cube once, as ``.npy`` files under the
preprocessing cache, and the bank reads the two cubes of each sampled task when an episode needs
them (:class:`DiskCubes`): memory then holds file names, and the episodes are the same, bit for
bit, as from a bank in memory.

The cubes of one dataset are written into a folder named by what they depend on (the dataset,
the preprocessing and its code, the tasks, the cube side and every case file's size and time), first under a
temporary name that is renamed when the last cube is written: an interrupted build leaves no
folder that a later one would take for complete, and a finished one is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from hyperkit.data import preprocess
from hyperkit.data.layouts import Dataset
from hyperkit.data.preprocess import DataConfig, TaskPatch, case_files_key, dataset_patches
from hyperkit.data.tasks import Task
from hyperkit.files import process_alive

__all__ = ["DiskCubes", "StoredTask", "stored_patches", "target_box", "cube_bytes", "available_memory"]

#: bump when the layout of a stored bank changes
_STORE_VERSION = 3  # 2: each cube's target box in index.json; 3: the side, channels and task definitions in the key


class DiskCubes:
    """One task's cubes as ``.npy`` files, indexed like the ``(N, 1, S', S', S')`` tensor of a bank in memory.

    ``cubes[i]`` is cube ``i``: ``(1, S', S', S')``, the dtype it was stored in. With ``mapped`` it is a view of the
    file (memory-mapped, copy-on-write): an episode's crop reads only the pages it covers, 30 % of a cube when the
    paper profile cuts 128³ out of 192³ (the target's box, which places the crop, is stored beside the cubes);
    else the whole file is read.
    """

    def __init__(self, paths: Sequence[Path], shape: tuple[int, ...], mapped: bool = False) -> None:
        if not paths:
            raise ValueError("DiskCubes needs at least one file")
        self.paths = [Path(p) for p in paths]
        self._shape = tuple(int(s) for s in shape)
        self.mapped = mapped

    @property
    def shape(self) -> torch.Size:
        """``(N, 1, S', S', S')``."""
        return torch.Size((len(self.paths), *self._shape))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        if not isinstance(index, int):
            raise TypeError(f"DiskCubes takes one integer index, got {type(index).__name__}")
        return torch.from_numpy(np.load(self.paths[index], mmap_mode="c" if self.mapped else None, allow_pickle=False))


def target_box(mask: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of the foreground of a ``(1, D, H, W)`` mask per axis ``(d, h, w)`` (int64 arrays of 3)."""
    fg = mask[0] != 0
    lo, hi = [], []
    for axis in range(3):
        first, second = (a for a in range(3) if a != axis)
        idx = fg.any(dim=second).any(dim=first).nonzero()[:, 0]  # the later axis first: the earlier keeps its index
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]))
    return np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)


@dataclass
class StoredTask:
    """One task of a stored bank: its cases, their cubes on disk, the voxel size and each cube's target box."""

    case_ids: list[str]
    images: "DiskCubes"
    masks: "DiskCubes"
    spacing: tuple[float, ...]
    boxes: list[tuple[np.ndarray, np.ndarray] | None]


def cube_bytes(side: int) -> int:
    """Bytes of one cube in a training bank: a float32 image and a uint8 mask of ``side``³ voxels."""
    return 5 * side ** 3


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux ``MemAvailable``); ``None`` where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _folder_key(dataset: Dataset, tasks: Sequence[Task], cfg: DataConfig, case_ids: Sequence[str],
                margin: int) -> str:
    # the cubes persist across runs: the code that cuts them (preprocess.py, and the cache version of the cases they
    # are cut from) is part of what they depend on, so that an edited placement rule is never served stale cubes
    code = hashlib.sha256(Path(preprocess.__file__).read_bytes()).hexdigest()[:16]
    src = json.dumps({"v": _STORE_VERSION, "cache": preprocess._CACHE_VERSION, "code": code,
                      "layout": dataset.layout, "name": dataset.name, "cfg": cfg.key(), "channels": dataset.channels,
                      "side": cfg.patch_size + 2 * margin, "margin": margin,
                      "tasks": sorted([t.task_id, t.label_value, t.channel_index, t.modality] for t in tasks),
                      "cases": {c: case_files_key(dataset, c) for c in case_ids}}, sort_keys=True)
    return hashlib.sha256(src.encode()).hexdigest()[:24]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def stored_patches(dataset: Dataset, tasks: Sequence[Task], cfg: DataConfig, store: str | Path,
                   cache_dir: str | Path | None, case_ids: Sequence[str], margin: int,
                   progress: bool = False) -> dict[str, StoredTask]:
    """The cubes of ``tasks`` on disk: written once (case by case, so memory holds one case), then reused.

    Args:
        dataset: the tasks' dataset.
        tasks: tasks of ``dataset``.
        cfg: the preprocessing.
        store: the folder of stored banks (e.g. ``<cache>/banks``).
        cache_dir: the preprocessing cache.
        case_ids: the cases to read.
        margin: the cubes' margin around the patch (``DataConfig.max_shift``), > 0.
        progress: a tqdm bar over the cases while writing.

    Returns:
        ``task_id ->`` :class:`StoredTask` for every task present in some case (a task absent from every case
        is left out, as :func:`dataset_patches` leaves it without patches).

    Raises:
        ValueError: ``margin`` < 1 (patches without a margin are the evaluation's, kept in memory).
    """
    if margin < 1:
        raise ValueError(f"stored banks hold training cubes (margin >= 1 voxel), got margin {margin}")
    tasks = list(tasks)
    root = Path(store)
    key = _folder_key(dataset, tasks, cfg, case_ids, margin)
    folder = root / f"{_safe(dataset.layout)}-{_safe(dataset.name)}-{key}"
    index_path = folder / "index.json"
    if not index_path.is_file():
        _write(dataset, tasks, cfg, folder, cache_dir, case_ids, margin, progress)
    index = json.loads(index_path.read_text())
    side = int(index["side"])
    out = {}
    for tid, entry in index["tasks"].items():
        cases, sub, cube = list(entry["cases"]), folder / entry["folder"], (1, side, side, side)
        files = {kind: [sub / f"{i:06d}.{kind}.npy" for i in range(len(cases))] for kind in ("image", "mask")}
        boxes = [None if b is None else (np.array(b[:3], dtype=np.int64), np.array(b[3:], dtype=np.int64))
                 for b in entry["boxes"]]
        out[tid] = StoredTask(cases, DiskCubes(files["image"], cube, mapped=True),
                              DiskCubes(files["mask"], cube, mapped=True), tuple(index["spacing"]), boxes)
    return out


def _write(dataset: Dataset, tasks: list[Task], cfg: DataConfig, folder: Path, cache_dir: str | Path | None,
           case_ids: Sequence[str], margin: int, progress: bool) -> None:
    """Write the cubes into a temporary folder, then rename it to ``folder`` (another process may have won)."""
    host = _safe(socket.gethostname())
    tmp = folder.with_name(f"{folder.name}.partial-{host}-{os.getpid()}")
    for stale in folder.parent.glob(f"{folder.name}.partial-*"):  # left by a killed process of this machine
        owner, _, pid = stale.name[len(folder.name) + len(".partial-"):].rpartition("-")
        if owner == host and (stale == tmp or not (pid.isdigit() and process_alive(int(pid)))):
            shutil.rmtree(stale, ignore_errors=True)  # another machine's (a shared cache): its own to clear
    subs = {t.task_id: f"t{k:04d}-{_safe(t.task_id.split('/')[-1])}" for k, t in enumerate(tasks)}
    found: dict[str, list[str]] = {t.task_id: [] for t in tasks}
    boxes: dict[str, list[list[int]]] = {t.task_id: [] for t in tasks}
    side, spacing = 0, (1.0, 1.0, 1.0)
    try:
        tmp.mkdir(parents=True)
        for cid in tqdm(case_ids, desc=f"storing {dataset.name}", disable=not progress, leave=False):
            patches = dataset_patches(dataset, tasks, cfg, cache_dir, [cid], margin=margin)  # one case in memory
            for tid, plist in patches.items():
                for p in plist:
                    _save(tmp / subs[tid], len(found[tid]), p)
                    found[tid].append(p.case_id)
                    if p.mask.any():  # else none: sampling it fails as it does in memory
                        lo, hi = target_box(torch.from_numpy(np.ascontiguousarray(p.mask)))
                        boxes[tid].append(lo.tolist() + hi.tolist())
                    else:
                        boxes[tid].append(None)
                    side, spacing = p.image.shape[-1], p.spacing
        index = {"version": _STORE_VERSION, "dataset": dataset.name, "side": side, "spacing": list(spacing),
                 "tasks": {tid: {"folder": subs[tid], "cases": cases, "boxes": boxes[tid]}
                           for tid, cases in found.items() if cases}}
        (tmp / "index.json").write_text(json.dumps(index))
        try:
            tmp.rename(folder)
        except OSError:  # a finished folder of the same name: another process stored the same bank first
            if not (folder / "index.json").is_file():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _save(sub: Path, i: int, patch: TaskPatch) -> None:
    sub.mkdir(exist_ok=True)  # not its parents: a temporary folder removed under a writer ends the write
    np.save(sub / f"{i:06d}.image.npy", np.ascontiguousarray(patch.image, dtype=np.float32))
    np.save(sub / f"{i:06d}.mask.npy", np.ascontiguousarray(patch.mask, dtype=np.uint8))
