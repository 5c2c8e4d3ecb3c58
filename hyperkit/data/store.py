"""A training bank's cases on disk, for data that do not fit in memory.

:class:`~hyperkit.data.bank.TaskBank` holds one cube of side ``S + 2 · max_shift`` per training
case and task. On the phantoms of the quick profile that is 2-3 GB; at the paper profile's
128³ patches (cubes of 192³ voxels, 35 MB each as float32 image + uint8 mask) it is 20 GB for ten
phantom subjects and, for the real TotalSegmentator (about 1,000 training subjects, 100 training
structures), terabytes: a subject's cubes overlap, each voxel is held once per structure near it.
A stored bank holds no voxel itself: :func:`stored_patches` writes an index of where each task's cube
starts in its case and where the case's arrays lie in the preprocessing cache (an uncompressed ``.npz``
per case, its members at fixed offsets), and :class:`DiskCubes` cuts a cube when an episode asks for it,
reading from the memory-mapped cached case only the voxels its crop covers. Memory then holds file names
and cube starts, the disk nothing beyond the preprocessing cache (BENCHMARKS.md: 19 GiB of cubes for ten
phantom subjects at the paper profile before), and the episodes are the same, bit for bit, as from a bank
in memory.

The index of one dataset is written into a folder named by what it depends on (the dataset,
the preprocessing and its code, the tasks, the cube side and every case file's size and time), first under a
temporary name that is renamed when it is complete: an interrupted build leaves no folder that a later one
would take for complete, and a finished one is reused while the cached cases it points to are there (else it
is built again, preprocessing them anew).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from hyperkit.data import preprocess
from hyperkit.data.layouts import Dataset
from hyperkit.data.preprocess import (DataConfig, cache_path, case_files_key, cube_start, preprocess_case,
                                      warn_if_vanished)
from hyperkit.data.tasks import Task
from hyperkit.files import process_alive, touch

__all__ = ["DiskCubes", "CubeWindow", "Member", "npz_members", "StoredTask", "stored_patches", "target_box",
           "cube_bytes", "available_memory", "cases_there"]

#: bump when the layout of a stored bank changes
_STORE_VERSION = 5  # 2: target boxes; 3: key: side, channels, tasks; 4: cases, not cubes; 5: the cached cases


def _window(volume: np.ndarray, start: Sequence[int], ranges: Sequence[tuple[int, int]], pad: float,
            value: int | None) -> np.ndarray:
    """Voxels ``ranges`` (per axis, ``[a, b)`` in a cube that starts at ``start`` of ``volume``'s grid) of one
    channel ``volume`` ``(X, Y, Z)``: the image's values (``pad`` outside the scan) or, with ``value``, the mask
    ``volume == value`` as uint8 (0 outside); what :func:`~hyperkit.data.preprocess.crop_centred` cuts there."""
    lo = [int(s) + a for s, (a, _) in zip(start, ranges)]
    hi = [int(s) + b for s, (_, b) in zip(start, ranges)]
    inside = tuple(slice(max(l, 0), min(h, n)) for l, h, n in zip(lo, hi, volume.shape))
    part = volume[inside]
    if value is not None:
        part = (part == value).view(np.uint8)
    if all(l >= 0 for l in lo) and all(h <= n for h, n in zip(hi, volume.shape)):
        return part  # the window lies in the scan: a view, read when copied
    out = np.full([h - l for l, h in zip(lo, hi)], 0 if value is not None else pad,
                  dtype=np.uint8 if value is not None else volume.dtype)
    if all(sl.start < sl.stop for sl in inside):
        out[tuple(slice(sl.start - l, sl.stop - l) for sl, l in zip(inside, lo))] = part
    return out


@dataclass(frozen=True)
class Member:
    """Where one array of an uncompressed ``.npz`` lies in its file: enough to memory-map it without the zip."""

    path: str
    offset: int
    shape: tuple[int, ...]
    dtype: str
    fortran: bool = False

    def map(self) -> np.ndarray:
        """The array, memory-mapped read-only."""
        return np.memmap(self.path, dtype=np.dtype(self.dtype), mode="r", offset=self.offset, shape=self.shape,
                         order="F" if self.fortran else "C")


def npz_members(path: Path, names: Sequence[str]) -> dict[str, Member]:
    """The places of ``names`` in an ``.npz`` that ``np.savez`` wrote (members stored, not compressed).

    Raises:
        ValueError: a member is compressed (``np.savez_compressed``), or the file is not such an archive.
    """
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for name in names:
            info = zf.getinfo(f"{name}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{path}: member {name} is compressed; a stored bank maps uncompressed members only")
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"{path}: no local zip header for member {name}")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
            out[name] = Member(str(path), fh.tell(), tuple(int(v) for v in shape), dtype.str, bool(fortran))
    return out


class CubeWindow:
    """One cube of a stored case, read when indexed: ``(1, S', S', S')`` like a cube of a bank in memory.

    ``window[key]`` takes what a cube tensor takes from :meth:`~hyperkit.data.bank.TaskBank.sample`: ``...``, the
    channel index ``0``, or a slice of the channel followed by up to three slices of unit step; only the voxels of
    the asked region are read from the memory-mapped case (``source``: the image ``(C, X, Y, Z)`` with ``channel``,
    or the label map ``(X, Y, Z)`` with ``value``).
    """

    def __init__(self, source: Member, start: Sequence[int], side: int, channel: int | None = None,
                 value: int | None = None, pad: float = 0.0) -> None:
        if (channel is None) == (value is None):
            raise ValueError(f"a cube reads an image channel or a label value, got channel {channel}, value {value}")
        self.source, self.side, self.channel, self.value, self.pad = source, int(side), channel, value, float(pad)
        self.start = tuple(int(v) for v in start)

    @property
    def shape(self) -> torch.Size:
        """``(1, S', S', S')``."""
        return torch.Size((1, self.side, self.side, self.side))

    def __getitem__(self, key: Any) -> Tensor:
        keys = list(key) if isinstance(key, tuple) else [key]
        if keys == [Ellipsis]:
            keys = []
        channel_dim = not (keys and isinstance(keys[0], int))
        if keys and isinstance(keys[0], int):
            if keys[0] not in (0, -1):
                raise IndexError(f"a cube has one channel, got index {keys[0]}")
            keys = keys[1:]
        elif keys:
            if keys[0] != slice(None):
                raise IndexError(f"a cube's channel takes ':' or 0, got {keys[0]!r}")
            keys = keys[1:]
        if len(keys) > 3 or not all(isinstance(k, slice) for k in keys):
            raise IndexError(f"a cube takes up to three slices after its channel, got {key!r}")
        ranges = []
        for k in list(keys) + [slice(None)] * (3 - len(keys)):
            a, b, step = k.indices(self.side)
            if step != 1:
                raise IndexError(f"a cube's slices take unit steps, got {k!r}")
            ranges.append((a, max(a, b)))
        volume = self.source.map()
        if self.channel is not None:
            volume = volume[self.channel]
        part = _window(volume, self.start, ranges, self.pad, self.value)
        out = torch.from_numpy(np.array(part))  # a copy: read from the file now, not at a later use
        return out[None] if channel_dim else out


class DiskCubes:
    """One task's cubes on disk (:class:`CubeWindow` each), indexed like the ``(N, 1, S', S', S')`` tensor of a bank
    in memory: ``cubes[i]`` is cube ``i``, whose voxels are read when it is indexed in turn."""

    def __init__(self, windows: Sequence[CubeWindow]) -> None:
        if not windows:
            raise ValueError("DiskCubes needs at least one cube")
        self.windows = list(windows)

    @property
    def shape(self) -> torch.Size:
        """``(N, 1, S', S', S')``."""
        return torch.Size((len(self.windows), *self.windows[0].shape))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> CubeWindow:
        if not isinstance(index, int):
            raise TypeError(f"DiskCubes takes one integer index, got {type(index).__name__}")
        return self.windows[index]


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
    """One task of a stored bank: its cases, its cubes (cut from the stored cases), the voxel size and each cube's
    target box."""

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
    """The cubes of ``tasks`` on disk: their cases written once (case by case, so memory holds one case), then
    reused.

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
        is left out, as :func:`~hyperkit.data.preprocess.dataset_patches` leaves it without patches).

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
    index = json.loads(index_path.read_text()) if index_path.is_file() else None
    if index is not None and not cases_there(index):
        shutil.rmtree(folder, ignore_errors=True)  # cached cases removed or replaced since: index them again
        index = None
    if index is None:
        _write(dataset, tasks, cfg, folder, cache_dir, case_ids, margin, progress)
        index = json.loads(index_path.read_text())
    for path in [index_path] + [c["arrays"]["image"]["path"] for c in index["cases"]]:
        touch(path)  # used now (hyperkit cache --prune)
    side = int(index["side"])
    cases = [{k: Member(**v) for k, v in c["arrays"].items()} for c in index["cases"]]
    out = {}
    for tid, entry in index["tasks"].items():
        ids, images, masks = [], [], []
        for k, *start in entry["cubes"]:
            ids.append(index["cases"][k]["id"])
            images.append(CubeWindow(cases[k]["image"], start, side, channel=entry["channel"],
                                     pad=index["cases"][k]["pad"][entry["channel"]]))
            masks.append(CubeWindow(cases[k]["label"], start, side, value=entry["value"]))
        boxes = [None if b is None else (np.array(b[:3], dtype=np.int64), np.array(b[3:], dtype=np.int64))
                 for b in entry["boxes"]]
        out[tid] = StoredTask(ids, DiskCubes(images), DiskCubes(masks), tuple(index["spacing"]), boxes)
    return out


def cases_there(index: dict[str, Any]) -> bool:
    """Every cached case a stored bank's index (``index.json``) points to is there, with the size it had when
    indexed."""
    for case in index["cases"]:
        path = Path(case["arrays"]["image"]["path"])
        if not path.is_file() or path.stat().st_size != case["size"]:
            return False
    return True


def _write(dataset: Dataset, tasks: list[Task], cfg: DataConfig, folder: Path, cache_dir: str | Path | None,
           case_ids: Sequence[str], margin: int, progress: bool) -> None:
    """Write the index into a temporary folder, then rename it to ``folder`` (another process may have won)."""
    host = _safe(socket.gethostname())
    tmp = folder.with_name(f"{folder.name}.partial-{host}-{os.getpid()}")
    for stale in folder.parent.glob(f"{folder.name}.partial-*"):  # left by a killed process of this machine
        owner, _, pid = stale.name[len(folder.name) + len(".partial-"):].rpartition("-")
        if owner == host and (stale == tmp or not (pid.isdigit() and process_alive(int(pid)))):
            shutil.rmtree(stale, ignore_errors=True)  # another machine's (a shared cache): its own to clear
    side = cfg.patch_size + 2 * margin
    cubes: dict[str, list[list[int]]] = {t.task_id: [] for t in tasks}
    boxes: dict[str, list[list[int] | None]] = {t.task_id: [] for t in tasks}
    cases: list[dict[str, Any]] = []
    spacing = (1.0, 1.0, 1.0)
    try:
        tmp.mkdir(parents=True)
        for cid in tqdm(case_ids, desc=f"storing {dataset.name}", disable=not progress, leave=False):
            case = preprocess_case(dataset, cid, cfg, cache_dir)
            starts = {}
            for task in tasks:
                start = cube_start(case, task, side)
                if start is None:
                    warn_if_vanished(case, task, cfg.spacing)
                else:
                    starts[task.task_id] = (task, start)
            if not starts:
                continue
            cached = cache_path(dataset, cid, cfg, cache_dir).resolve()  # preprocess_case wrote it
            arrays = npz_members(cached, ["image", "label"])
            label = arrays["label"].map()  # as an episode reads it
            k = len(cases)
            cases.append({"id": cid, "size": cached.stat().st_size, "pad": [float(c.min()) for c in case.image],
                          "arrays": {name: dataclasses.asdict(m) for name, m in arrays.items()}})
            for tid, (task, start) in starts.items():
                cubes[tid].append([k, *start.tolist()])
                mask = _window(label, start, [(0, side)] * 3, 0.0, task.label_value)
                boxes[tid].append(None if not mask.any() else  # else none: sampling it fails as it does in memory
                                  [int(v) for part in target_box(torch.from_numpy(np.array(mask))[None])
                                   for v in part])
            spacing = case.spacing
        index = {"version": _STORE_VERSION, "dataset": dataset.name, "side": side, "spacing": list(spacing),
                 "cases": cases,
                 "tasks": {t.task_id: {"channel": t.channel_index, "value": t.label_value, "cubes": cubes[t.task_id],
                                       "boxes": boxes[t.task_id]} for t in tasks if cubes[t.task_id]}}
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
