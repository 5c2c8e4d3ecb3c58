"""The paper's preprocessing, with MONAI transforms (paper section 4; docs/design.md §5).

1. Reorient to RAS (``monai.transforms.Orientationd``).
2. Resample to isotropic spacing (``Spacingd``: trilinear for images, nearest for labels).
3. Normalise per channel: CT clip to [-900, 900] then z-score
   (``ScaleIntensityRange`` with clipping, ``NormalizeIntensity``); MRI map the 1st-99th
   percentiles to [0, 1] and clip (``ScaleIntensityRangePercentiles``).
4. One cubic patch of side S that covers the target, padded with the channel's minimum
   where the volume is smaller (``BorderPad``, ``SpatialCrop``). Where the target sits
   in the patch is the profile's ``data.placement``: ``"centred"`` on its bounding box,
   or ``"offset"``: shifted from the centre by a seeded random offset of at most
   ``max_offset`` of the patch side per axis, never so far that the target leaves the
   patch (as much as fits). The paper cuts "a single 128^3 voxel patch covering the
   target structure ... centred when necessary", so the target's place varies; exact
   centring gives every method a free centre prior (copying the support mask becomes
   an aligned atlas).

Steps 1-3 act on the whole case and are cached on disk (``.npz`` keyed by the files'
paths, sizes and modification times and by the data config), so a second run
resamples nothing. Step 4 is cheap and runs per task.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (BorderPad, Compose, NormalizeIntensity, Orientationd, ScaleIntensityRange,
                              ScaleIntensityRangePercentiles, SpatialCrop, Spacingd)
from tqdm.auto import tqdm

from hyperkit.config.sections import PLACEMENTS, DataConfig  # the data section, typed and checked there
from hyperkit.data.layouts import CaseData, Dataset
from hyperkit.data.tasks import Task, modality_of
from hyperkit.files import touch, write_atomic
from hyperkit.seeds import numpy_rng
from hyperkit.side_by_side import check_workers, side_by_side

__all__ = ["DataConfig", "TaskPatch", "PLACEMENTS", "default_cache_dir", "resample_case", "normalise_channel",
           "preprocess_case", "ct_air_fraction", "AIR_HU", "crop_centred", "patch_centre", "centre_bounds",
           "placement_rng", "extract_patch", "dataset_patches", "task_patches", "MAX_RESAMPLED_VOXELS",
           "case_files_key", "cube_start", "warn_if_vanished", "fill_cache", "denormals_kept", "cache_path"]


_CACHE_VERSION = 3  # 3: thread-independent z-score statistics (normalise_channel)
# nibabel affines map voxels to RAS+ world coordinates (L->R, P->A, I->S)
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


@dataclass
class TaskPatch:
    """One case of one binary task, preprocessed.

    Attributes:
        case_id: the case.
        image: float32 ``(1, S, S, S)``, the task's channel, normalised.
        mask: uint8 ``(1, S, S, S)`` in {0, 1}.
        spacing: voxel size in mm (isotropic).
        affine: ``(4, 4)`` RAS voxel-to-world matrix of the patch.
        coverage: fraction of the target's voxels inside the patch (1.0 unless the target
            is larger than the patch).
    """

    case_id: str
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    coverage: float = 1.0


def default_cache_dir() -> Path:
    """``$HYPERKIT_CACHE`` or ``~/.cache/hyperkit``."""
    return Path(os.environ.get("HYPERKIT_CACHE", Path.home() / ".cache" / "hyperkit"))


#: the most voxels a resampled case may have (4 GiB as float32 per channel; MONAI computes in float64): a field of
#: view of 1.5 m per side at 1.5 mm is 10^9 voxels; more means a header's voxel size is off, not a body
MAX_RESAMPLED_VOXELS = 2 ** 30


@contextlib.contextmanager
def denormals_kept(alone: bool = False) -> Iterator[None]:
    """Within the block this thread computes with denormal floats (as IEEE 754 has them), whatever it was set to
    (the training and evaluation flush them to zero, ``torch.set_flush_denormal(True)``, for the convolutions'
    speed); the setting is restored after. Preprocessing runs inside it: resampling leaves values near 0 that are
    denormal in float32 (an MRI background), and flushing them changed the phantom brain MRI's normalised
    intensities by up to 7e-44, so that a cached case depended on what its process had computed before.

    The setting is the calling thread's, and torch's own worker threads keep the one they were made with (with
    flushing on in the main thread, a multiply of 4 million denormals at two threads flushed half of them). With
    ``alone``, where the calling thread flushes, the block also computes at one torch thread (restored after), in
    the calling thread only: what :func:`preprocess_case` caches is then exact from any thread (its numbers are
    those of any thread count: BENCHMARKS.md, "Preprocessing that depended on the thread count")."""
    flushing = float(torch.tensor([1e-39], dtype=torch.float32) * 1.0) == 0.0  # a denormal read as 0: flushed
    threads = torch.get_num_threads()
    one = alone and flushing and threads > 1
    if flushing:
        torch.set_flush_denormal(False)
    if one:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if flushing:
            torch.set_flush_denormal(True)
        if one:
            torch.set_num_threads(threads)


def _check_resampled_size(case: CaseData, spacing: float) -> None:
    """Refuse a case whose grid at ``spacing`` would exceed :data:`MAX_RESAMPLED_VOXELS`, before MONAI allocates it."""
    shape = np.asarray(case.image.shape[-3:], dtype=np.float64)
    voxel = np.linalg.norm(np.asarray(case.affine, dtype=np.float64)[:3, :3], axis=0)  # mm per voxel, each axis
    grid = np.ceil(shape * voxel / spacing)
    if float(np.prod(grid)) > MAX_RESAMPLED_VOXELS:
        raise ValueError(
            f"{case.case_id}: its field of view, {' x '.join(f'{v:.0f}' for v in shape * voxel)} mm "
            f"({' x '.join(str(int(s)) for s in shape)} voxels of {' x '.join(f'{v:g}' for v in voxel)} mm), would "
            f"be {' x '.join(str(int(g)) for g in grid)} voxels at {spacing:g} mm, more than the "
            f"{MAX_RESAMPLED_VOXELS:,} a case may have; is the voxel size in the file's header right?")


def resample_case(case: CaseData, spacing: float, with_label: bool = True) -> CaseData:
    """Reorient to RAS and resample to isotropic ``spacing`` (MONAI ``Orientationd``, ``Spacingd``).

    Args:
        case: image ``(C, X, Y, Z)``, label ``(X, Y, Z)`` in the file's grid.
        spacing: output voxel size in mm.
        with_label: ``False``: the label is not resampled (a scan without a mask: the returned
            label is all zero). The image is the same either way (each key is resampled on its
            own); leaving the label out spares two float64 copies of a full-size volume.

    Returns:
        The same case on the RAS grid with isotropic spacing (label stays integer).

    Raises:
        ValueError: ``spacing`` is not a finite number > 0 (MONAI would keep the grid and record it); the
            resampled grid would exceed :data:`MAX_RESAMPLED_VOXELS` (a voxel size in the header far off,
            e.g. in cm or 100x: MONAI tried to allocate hundreds of GB and failed with a deep traceback).
    """
    if not 0 < spacing < float("inf"):  # NaN fails the comparison too
        raise ValueError(f"spacing must be a finite number of mm > 0, got {spacing}")
    _check_resampled_size(case, spacing)
    affine = torch.as_tensor(case.affine, dtype=torch.float64)
    data = {"image": MetaTensor(torch.from_numpy(np.ascontiguousarray(case.image)), affine=affine)}
    if with_label:
        # as stored (int32, uint8): MONAI's Spacingd samples in float64 whatever comes in, and nearest
        # sampling returns the same values; a float32 copy first only cost a full-size volume
        data["label"] = MetaTensor(torch.from_numpy(np.ascontiguousarray(case.label[None])), affine=affine)
    keys = list(data)
    tf = Compose([Orientationd(keys=keys, axcodes="RAS", labels=_RAS_LABELS),
                  Spacingd(keys=keys, pixdim=(spacing,) * 3, mode=("bilinear", "nearest")[:len(keys)])])
    with denormals_kept():
        out = tf(data)
        img = out["image"]
        label = (np.rint(out["label"].numpy()[0]).astype(np.int32) if with_label
                 else np.zeros(img.shape[1:], dtype=np.int32))
        image = img.numpy().astype(np.float32)
    new_affine = np.asarray(img.affine, dtype=np.float64)
    return CaseData(case.case_id, image, label, new_affine, (spacing,) * 3)


def normalise_channel(x: np.ndarray, channel: str, cfg: DataConfig) -> np.ndarray:
    """Normalise one channel ``(X, Y, Z)``: CT clip + z-score, MRI percentile map + clip.

    The z-score's mean and standard deviation are computed in float64 by NumPy, whose sums do
    not depend on the number of threads; torch's float32 reductions (what ``NormalizeIntensity``
    computes on a tensor) do, by one ulp, so that the cached data, and every training after it,
    depended on the thread count of the process that first preprocessed a case.
    """
    with denormals_kept():  # as the resampling: the same numbers in every thread
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        if modality_of(channel) == "CT":
            lo, hi = cfg.ct_clip
            t = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=lo, b_max=hi, clip=True)(t)
            clipped = np.asarray(t, dtype=np.float64)
            t = NormalizeIntensity(subtrahend=float(clipped.mean()), divisor=float(clipped.std()))(t)
        else:
            lo, hi = cfg.mri_percentiles
            t = ScaleIntensityRangePercentiles(lower=lo, upper=hi, b_min=0.0, b_max=1.0, clip=True)(t)
        return np.asarray(t[0], dtype=np.float32)


#: CT voxels below this many Hounsfield units count as air (:func:`ct_air_fraction`)
AIR_HU = -500.0


def ct_air_fraction(x: np.ndarray) -> float:
    """The fraction of a CT scan's voxels that are air (below :data:`AIR_HU`), raw HU ``(X, Y, Z)``.

    The CT z-score of :func:`normalise_channel` runs over the whole scan (as in the paper), so its
    mean and SD, and with them every normalised intensity, depend on how much air the field of
    view holds: the phantom CTs are 46-67 % air, a scan padded far beyond the body more
    (BENCHMARKS.md, "The support's field of view").
    """
    if x.size == 0:
        raise ValueError(f"ct_air_fraction needs a non-empty scan, got shape {x.shape}")
    return float(np.count_nonzero(x < AIR_HU)) / x.size


def _file_fingerprint(paths: Iterable[Path]) -> list[list[Any]]:
    out = []
    for p in paths:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


def case_files_key(dataset: Dataset, case_id: str) -> list[list[Any]]:
    """What a case's cached forms depend on in its files: each file's resolved path, size and modification time."""
    return _file_fingerprint(dataset.case(case_id).files)


def cache_path(dataset: Dataset, case_id: str, cfg: DataConfig, cache_dir: str | Path | None = None) -> Path:
    """The file of a case's preprocessed form in the cache (an uncompressed ``.npz``: ``image``, ``label``,
    ``affine``, ``spacing``, ``present``): named by its dataset, case and a key of what it depends on (the cache's
    version, the preprocessing, the channels and the case's files)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key_src = json.dumps({"v": _CACHE_VERSION, "cfg": cfg.key(), "channels": dataset.channels,
                          "files": case_files_key(dataset, case_id)}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
    return cache / f"{dataset.layout}-{dataset.name}-{case_id}-{key}.npz"


def fill_cache(dataset: Dataset, case_ids: Iterable[str], cfg: DataConfig, cache_dir: str | Path | None = None,
               workers: int = 1, progress: bool = False) -> int:
    """Preprocess the cases of ``case_ids`` that the cache lacks, ``workers`` at a time (one torch thread each).

    What a case's preprocessing computes does not depend on the thread count (the resampling's results are equal at
    one and two threads, the normalisation's sums are NumPy's), so the cache holds the same arrays whichever way it
    was filled; a training or an evaluation then reads every case from it. On two cores two workers preprocessed
    the phantoms 1.7x faster than one process at two threads (BENCHMARKS.md, "Preprocessing cases side by side").
    Each worker holds one case in memory.

    Args:
        dataset: the cases' dataset.
        case_ids: its cases to have in the cache.
        cfg: the preprocessing.
        cache_dir: the cache (default :func:`default_cache_dir`).
        workers: cases at once (>= 1); 1 preprocesses them one after the other in the calling thread.
        progress: a tqdm bar over the cases preprocessed.

    Returns:
        How many cases were preprocessed (those already in the cache are not).

    Raises:
        ValueError: ``workers`` < 1.
    """
    check_workers(workers)
    todo = [c for c in case_ids if not cache_path(dataset, c, cfg, cache_dir).is_file()]
    jobs = [functools.partial(preprocess_case, dataset, c, cfg, cache_dir) for c in todo]
    with tqdm(total=len(jobs), desc=f"preprocessing {dataset.name} ({workers} at once)",
              disable=not progress or not jobs, leave=False) as bar:
        for _ in side_by_side(jobs, workers, name="preprocess"):  # the pool flushes denormals: see denormals_kept
            bar.update()
    return len(jobs)


def preprocess_case(dataset: Dataset, case_id: str, cfg: DataConfig, cache_dir: str | Path | None = None) -> CaseData:
    """Steps 1-3 for one case (all channels, all labels), cached on disk.

    Returns:
        image float32 ``(C, X', Y', Z')`` normalised, label ``(X', Y', Z')`` on the RAS grid (int32 when
        computed; read back from the cache, uint8 when every value is below 256: compare it with ``==``),
        and the label values present before resampling.
    """
    path = cache_path(dataset, case_id, cfg, cache_dir)
    if path.is_file():
        touch(path)  # used now (hyperkit cache --prune)
        with np.load(path) as z:
            return CaseData(case_id, z["image"], z["label"], z["affine"], tuple(z["spacing"].tolist()),
                            frozenset(z["present"].tolist()))
    with denormals_kept(alone=True):  # reading the file (scaled to float) too: the same case from every thread
        raw = dataset.load_case(case_id)
        res = resample_case(raw, cfg.spacing)
        image = np.stack([normalise_channel(res.image[c], ch, cfg) for c, ch in enumerate(dataset.channels)])
    present = frozenset(int(v) for v in np.unique(raw.label) if v != 0)
    out = CaseData(case_id, image, res.label, res.affine, res.spacing, present)
    label_dtype = np.uint8 if out.label.max(initial=0) < 256 else np.int32
    write_atomic(path, lambda fh: np.savez(fh, image=out.image, label=out.label.astype(label_dtype),
                                           affine=out.affine, spacing=np.asarray(out.spacing),
                                           present=np.asarray(sorted(present), dtype=np.int32)))
    return out


def crop_centred(image: np.ndarray, center: Iterable[int], size: int, pad_value: float | np.ndarray = 0.0,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cut a cube of side ``size`` centred on ``center`` (voxel indices), padding outside.

    Args:
        image: ``(C, X, Y, Z)``.
        center: voxel index of the cube's centre.
        size: side in voxels.
        pad_value: value outside the volume (a scalar or one value per channel).

    Returns:
        the cube ``(C, S, S, S)`` and its start index ``(3,)`` in the input grid (may be negative).

    Raises:
        ValueError: ``size`` < 1 (an empty cube), or ``center`` is not three indices.
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of voxels, got {size}")
    c = np.asarray(list(center), dtype=np.int64)
    if c.shape != (3,):
        raise ValueError(f"center must be three voxel indices, got {c.tolist()}")
    start = c - size // 2
    end = start + size
    shape = np.asarray(image.shape[1:])
    before = np.maximum(0, -start)
    after = np.maximum(0, end - shape)
    t = torch.from_numpy(np.ascontiguousarray(image))
    if before.any() or after.any():
        border = [int(v) for pair in zip(before, after) for v in pair]
        values = np.broadcast_to(np.asarray(pad_value, dtype=np.float32), (image.shape[0],))
        t = torch.cat([BorderPad(spatial_border=border, mode="constant", value=float(v))(t[i:i + 1])
                       for i, v in enumerate(values)])
    s = start + before
    out = SpatialCrop(roi_start=s.tolist(), roi_end=(s + size).tolist())(t)
    return np.asarray(out), start


def patch_centre(lo: np.ndarray, hi: np.ndarray, size: int, max_shift: int = 0,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Centre ``(3,)`` of a cube of side ``size`` that covers the box ``lo..hi`` (inclusive voxel indices).

    Without ``rng`` (or with ``max_shift == 0``) the cube is centred on the box. With it,
    each axis is shifted by a uniform integer in ``[-max_shift, max_shift]`` restricted to
    the shifts that keep the whole box inside the cube; an axis where the box is larger
    than the cube stays centred (it covers as much as fits).
    """
    c_min, c_max, fits = centre_bounds(lo, hi, size, max_shift)  # also checks max_shift
    if rng is None or max_shift == 0:
        return (np.asarray(lo, dtype=np.int64) + np.asarray(hi, dtype=np.int64) + 1) // 2
    return np.array([rng.integers(a, b + 1) if ok else a for a, b, ok in zip(c_min, c_max, fits)], dtype=np.int64)


def centre_bounds(lo: np.ndarray, hi: np.ndarray, size: int, max_shift: int, *,
                  around: np.ndarray | None = None,
                  extent: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per axis, the smallest and largest centre ``(3,)`` of a cube of side ``size`` that covers
    the box ``lo..hi`` (inclusive) and lies within ``max_shift`` of ``around``, and whether
    such a centre exists; an axis where none does gets the box's centre as both bounds (the
    cube covers as much as fits).

    The one placement rule of the kit: every evaluation patch (:func:`patch_centre`) and every
    training crop of :meth:`hyperkit.data.bank.TaskBank.sample` (which keeps its own fallback
    where no centre exists). A cube of centre ``c`` starts at ``c - size // 2``.

    Args:
        lo, hi: the box's first and last voxel per axis ``(3,)``.
        size: the cube's side.
        max_shift: how far the centre may lie from ``around`` (>= 0).
        around: the centre the shift is counted from (default: the box's centre ``(lo + hi + 1) // 2``).
        extent: when given, the cube must also lie inside ``[0, extent)`` on every axis (a crop of a
            stored cube of side ``extent``); default: no such bound (the scan is padded).

    Raises:
        ValueError: ``max_shift`` < 0, ``size`` < 1, or a box with ``hi < lo`` on an axis.
    """
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if size < 1:
        raise ValueError(f"size must be a positive number of voxels, got {size}")
    if (hi < lo).any():
        raise ValueError(f"the box must have lo <= hi on every axis, got lo {lo.tolist()}, hi {hi.tolist()}")
    centre = (lo + hi + 1) // 2
    ref = centre if around is None else np.asarray(around, dtype=np.int64)
    half = size // 2
    # start = c - half must satisfy start <= lo and start + size >= hi + 1
    c_min = np.maximum(hi + 1 - size + half, ref - max_shift)
    c_max = np.minimum(lo + half, ref + max_shift)
    if extent is not None:  # and 0 <= start <= extent - size
        c_min, c_max = np.maximum(c_min, half), np.minimum(c_max, extent - size + half)
    fits = c_min <= c_max
    return np.where(fits, c_min, centre), np.where(fits, c_max, centre), fits


def placement_rng(seed: int, dataset: str, case_id: str, task_id: str) -> np.random.Generator:
    """The offset generator of one (task, case): independent of which other cases or tasks are loaded."""
    return numpy_rng(seed, dataset, case_id, task_id)


def _find_target(case: CaseData, task: Task) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The task's target in ``case``: its voxels ``(X, Y, Z)`` bool and their first and last index per axis, or
    ``None`` when absent; a task reading a channel the case lacks is refused (``ValueError``)."""
    if not 0 <= task.channel_index < case.image.shape[0]:
        raise ValueError(f"task {task.task_id} reads channel {task.channel_index}, but case {case.case_id} has "
                         f"{case.image.shape[0]} channel(s)")
    target = case.label == task.label_value
    if not target.any():
        return None
    idx = np.argwhere(target)
    return target, idx.min(0), idx.max(0)


def cube_start(case: CaseData, task: Task, size: int) -> np.ndarray | None:
    """Where the centred cube of side ``size`` that ``extract_patch(case, task, size)`` cuts starts in the case's
    grid: ``(3,)`` voxel indices (negative, or beyond the scan, where the cube is padded), ``None`` when the target
    is absent. A training bank kept on disk (:mod:`hyperkit.data.store`) stores this instead of the cube."""
    found = _find_target(case, task)
    return None if found is None else patch_centre(found[1], found[2], size) - size // 2


def extract_patch(case: CaseData, task: Task, size: int, max_shift: int = 0,
                  rng: np.random.Generator | None = None) -> TaskPatch | None:
    """Step 4: the cube of side ``size`` that covers the task's target (``None`` if absent).

    Args:
        case: a preprocessed case (:func:`preprocess_case`).
        task: one of the case's dataset's tasks.
        size: side of the cube in voxels.
        max_shift, rng: the placement (:func:`patch_centre`); default centred.

    Returns:
        A :class:`TaskPatch` with image and mask ``(1, S, S, S)``.

    Raises:
        ValueError: the task reads a channel the case does not have, or ``size`` < 1.
    """
    found = _find_target(case, task)
    if found is None:
        return None
    target, lo, hi = found
    center = patch_centre(lo, hi, size, max_shift, rng)
    channel = case.image[task.channel_index][None]
    image, start = crop_centred(channel, center, size, pad_value=float(channel.min()))
    mask, _ = crop_centred(target[None].astype(np.float32), center, size, pad_value=0.0)
    mask_u8 = (mask > 0.5).astype(np.uint8)
    affine = case.affine.copy()
    affine[:3, 3] = case.affine[:3, :3] @ start + case.affine[:3, 3]
    coverage = float(mask_u8.sum() / target.sum())
    return TaskPatch(case.case_id, image.astype(np.float32), mask_u8, case.spacing, affine, coverage)


def dataset_patches(dataset: Dataset, tasks: Iterable[Task], cfg: Mapping[str, Any] | DataConfig,
                    cache_dir: str | Path | None = None, case_ids: Iterable[str] | None = None,
                    progress: bool = False, margin: int = 0) -> dict[str, list[TaskPatch]]:
    """Preprocessed patches of several tasks of one dataset, reading each case once.

    Args:
        dataset: the tasks' dataset.
        tasks: tasks of ``dataset`` (from ``dataset.tasks()``).
        cfg: a profile (or its ``data`` section) or a :class:`DataConfig`.
        cache_dir: where resampled cases are cached (default :func:`default_cache_dir`).
        case_ids: restrict to these cases (default: all).
        progress: show a tqdm bar over cases.
        margin: when > 0, cubes of side ``S + 2 * margin`` centred on the target, from which
            training cuts a freshly offset patch of side S every episode
            (:meth:`hyperkit.data.bank.TaskBank.sample`); when 0, patches of side S
            placed as ``cfg.placement`` says (seeded per dataset, case and task).

    Returns:
        ``task_id -> [TaskPatch]``: one patch (image ``(1, S, S, S)``, mask ``(1, S, S, S)``)
        per case in which the target is present. A case whose target vanishes after
        resampling is reported with a warning.
    """
    dcfg = cfg if isinstance(cfg, DataConfig) else DataConfig.from_config(cfg)
    tasks = list(tasks)
    for task in tasks:
        if task.dataset != dataset.name or task.layout != dataset.layout:
            raise ValueError(f"task {task.task_id!r} does not belong to dataset {dataset.name!r}")
    ids = list(case_ids) if case_ids is not None else [c.case_id for c in dataset.cases]
    out: dict[str, list[TaskPatch]] = {t.task_id: [] for t in tasks}
    for cid in tqdm(ids, desc=f"preprocessing {dataset.name}", disable=not progress, leave=False):
        case = preprocess_case(dataset, cid, dcfg, cache_dir)
        for task in tasks:
            if margin:
                patch = extract_patch(case, task, dcfg.patch_size + 2 * margin)
            else:
                rng = placement_rng(dcfg.placement_seed, dataset.name, cid, task.task_id) if dcfg.max_shift else None
                patch = extract_patch(case, task, dcfg.patch_size, dcfg.max_shift, rng)
            if patch is not None:
                out[task.task_id].append(patch)
            else:
                warn_if_vanished(case, task, dcfg.spacing)
    return out


def warn_if_vanished(case: CaseData, task: Task, spacing: float) -> None:
    """Warn that the task's target, present in the case's file, has no voxel left at ``spacing`` mm."""
    if task.label_value in case.present_before_resampling:
        warnings.warn(f"{task.task_id}: target of case {case.case_id} vanished when resampled to {spacing} mm",
                      stacklevel=3)


def task_patches(dataset: Dataset, task: Task, cfg: Mapping[str, Any] | DataConfig,
                 cache_dir: str | Path | None = None, case_ids: Iterable[str] | None = None,
                 progress: bool = False) -> list[TaskPatch]:
    """Preprocessed patches of one task: one per case in which the target is present.

    Args:
        dataset: the task's dataset.
        task: one of ``dataset.tasks()``.
        cfg: a profile (or its ``data`` section) or a :class:`DataConfig`.
        cache_dir: where resampled cases are cached (default :func:`default_cache_dir`).
        case_ids: restrict to these cases (default: all).
        progress: show a tqdm bar.

    Returns:
        A list of :class:`TaskPatch` with image ``(1, S, S, S)`` and mask ``(1, S, S, S)``.
    """
    return dataset_patches(dataset, [task], cfg, cache_dir, case_ids, progress)[task.task_id]
