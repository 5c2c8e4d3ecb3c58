"""Write the phantom cohorts to disk in the real layouts, once, byte for byte reproducibly.

``generate_phantoms(out, ...)`` writes, directly under ``out``:

- ``TotalSegmentator/``: ``sXXXX/ct.nii.gz``, ``sXXXX/segmentations/<structure>.nii.gz``
  (uint8 0/1, every structure for every subject, all-zero when absent) and
  ``meta.csv`` (``image_id;age;gender;institute;study_type;split``);
- ``TaskXX_Name/``: ``dataset.json``, ``imagesTr/<prefix>_XXX.nii.gz``,
  ``labelsTr/<prefix>_XXX.nii.gz`` (MSD layout; 4D images for multi-channel tasks);
- ``phantoms.json``: the manifest (arguments, generator format, kit version and, once complete,
  ``content``: a SHA-256 of every file written, by relative path);
- ``phantoms.generator``: the fingerprint of the generator code that wrote the folder.

Determinism: NIfTI files are serialised by nibabel to bytes and gzipped with
``mtime=0`` (:func:`hyperkit.data.nifti.write_nifti`, the kit's one NIfTI writer; the
index files come from :mod:`hyperkit.data.sample`, as for the sample datasets), so the
same arguments give byte-identical files. A second call
with the same arguments finds the manifest and does nothing; different
arguments into a non-empty folder are refused unless ``force=True``. Phantoms
made with the same arguments by other generator code (an interrupted run, an
edited or upgraded kit: ``phantoms.generator`` differs) are regenerated rather
than silently reused.

What the data is and what made it are kept apart on purpose: the manifest is one of
the metadata files of the data fingerprint (:func:`hyperkit.data.identity.data_fingerprint`,
which stored evaluations are compared on) and records the files' content, while the code
fingerprint lies in a file that fingerprint does not read. A generator edit that leaves every
byte of a cohort equal (a refactor, a fix that only acts on other arguments) regenerates the
folder and keeps its data fingerprint, so the stored results made from it stay usable.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hyperkit import __version__
from hyperkit.data.nifti import write_nifti
from hyperkit.data.sample import msd_dataset_json, totalseg_meta_csv
from hyperkit.files import sha256_file
from hyperkit.phantoms.anatomy import TOTALSEG_STRUCTURES
from hyperkit.phantoms.cohorts import MSD_BY_FOLDER, MSD_TASKS, TOTALSEG, Case, msd_case, totalseg_subject

__all__ = ["DEFAULT_SPACING", "FORMAT", "GENERATOR", "MANIFEST", "PhantomRun", "generate_phantoms", "ensure_phantoms",
           "check_arguments", "content_digest", "generator_fingerprint"]

DEFAULT_SPACING = 3.0
#: the folder layout the generator writes; bump when its files or their names change. A change of content
#: is recorded by the manifest's ``content`` digest, a change of code by ``phantoms.generator``.
FORMAT = 1
MANIFEST = "phantoms.json"
#: the generator code's fingerprint (:func:`generator_fingerprint`): not a metadata file of the data fingerprint
GENERATOR = "phantoms.generator"


@dataclass
class PhantomRun:
    """What :func:`generate_phantoms` did.

    Attributes:
        root: the output folder.
        reused: True when matching phantoms were already there (nothing written).
        seconds: wall time of this call.
        files: number of NIfTI files written (0 when reused).
        arguments: the generation arguments.
    """

    root: Path
    reused: bool
    seconds: float
    files: int
    arguments: dict[str, Any]


def check_arguments(subjects: int, cases: int, seed: int, spacing: float) -> dict[str, Any]:
    """Validate the generation arguments; return them as the manifest records them.

    Raises:
        ValueError: naming the bad value.
    """
    if isinstance(subjects, bool) or not isinstance(subjects, (int, np.integer)) or subjects < 1:
        raise ValueError(f"subjects must be a positive integer (number of CT training subjects), got {subjects!r}")
    if isinstance(cases, bool) or not isinstance(cases, (int, np.integer)) or cases < 1:
        raise ValueError(f"cases must be a positive integer (cases per MSD task), got {cases!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        sp = float(spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing must be a number of millimetres, got {spacing!r}") from None
    if not np.isfinite(sp) or sp <= 0:
        raise ValueError(f"spacing must be > 0 mm, got {spacing!r}")
    if not 1.0 <= sp <= 12.0:
        raise ValueError(f"spacing must be between 1.0 and 12.0 mm (memory and anatomy limits), got {sp:g}")
    return {"subjects": int(subjects), "cases": int(cases), "seed": int(seed), "spacing": sp}


def _stored(case: Case, flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, labels and affine as stored: optionally with the first two axes flipped (LPS-like)."""
    affine = case.grid.affine
    image, labels = case.image, case.labels
    if flip:
        nx, ny = labels.shape[:2]
        f = np.array([[-1, 0, 0, nx - 1], [0, -1, 0, ny - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
        affine = affine @ f
        image = image[::-1, ::-1]
        labels = labels[::-1, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels), affine


def _make(job: tuple[str, int], root: str, seed: int, spacing: float) -> tuple[str, int, dict[str, Any], int]:
    """Generate and write one case; return (dataset, index, row for the dataset's index file, files written)."""
    dataset, index = job
    out = Path(root) / dataset
    if dataset == TOTALSEG:
        case = totalseg_subject(seed, index, spacing)
        image, labels, affine = _stored(case, flip=True)  # LPS-like, as scanners often write CT
        sid = case.meta["image_id"]
        write_nifti(out / sid / "ct.nii.gz", image.astype(np.int16), affine)
        for value, name in enumerate(TOTALSEG_STRUCTURES, start=1):
            mask = (labels == value).astype(np.uint8)
            write_nifti(out / sid / "segmentations" / f"{name}.nii.gz", mask, affine)
        return dataset, index, case.meta, 1 + len(TOTALSEG_STRUCTURES)
    task = MSD_BY_FOLDER[dataset]
    case = msd_case(task, seed, index, spacing)
    image, labels, affine = _stored(case, flip=task.flip)
    stem = f"{task.prefix}_{index:03d}"
    if image.dtype != np.int16:  # MRI: store as int16 signal (0..~3000), like most scanners
        image = np.clip(np.rint(image), 0, 32767).astype(np.int16)
    write_nifti(out / "imagesTr" / f"{stem}.nii.gz", image, affine)
    write_nifti(out / "labelsTr" / f"{stem}.nii.gz", labels.astype(np.uint8), affine)
    return dataset, index, {"image": f"./imagesTr/{stem}.nii.gz", "label": f"./labelsTr/{stem}.nii.gz"}, 2


def _dataset_json(task_folder: str, training: list[dict[str, str]]) -> str:
    task = MSD_BY_FOLDER[task_folder]
    return msd_dataset_json(task.name, task.description + " (hyperkit phantom, not patient data)", task.modality,
                            task.labels, training, reference="hyperkit procedural phantoms",
                            licence="MIT (generated data)", release=f"hyperkit {__version__}, phantom format {FORMAT}")


def _manifest(arguments: dict[str, Any], content: str | None) -> str:
    """The manifest's text; ``content``: :func:`content_digest` of the finished folder (None while writing)."""
    meta = {
        "generator": "hyperkit.phantoms",
        "format": FORMAT,
        "kit_version": __version__,
        "arguments": arguments,
        "complete": content is not None,
        "content": content,
        "datasets": {TOTALSEG: {"subjects": arguments["subjects"], "structures": list(TOTALSEG_STRUCTURES)},
                     **{t.folder: {"cases": arguments["cases"], "modality": t.modality, "labels": t.labels}
                        for t in MSD_TASKS}},
    }
    return json.dumps(meta, indent=2) + "\n"


def generator_fingerprint() -> str:
    """A hash of the generator's source files: phantoms made by other code are regenerated, not reused."""
    h = hashlib.sha256()
    for name in ("shapes", "organs", "anatomy", "ct", "mri", "cohorts", "writer"):
        h.update(Path(__file__).with_name(f"{name}.py").read_bytes())
    return h.hexdigest()[:16]


def content_digest(root: str | Path) -> str:
    """``"sha256:<hex>"`` of every file in the kit's dataset folders under ``root``, by relative path and
    content (the manifest's ``content``): equal exactly when two folders hold the same files, byte for byte."""
    r = Path(root)
    files = sorted((f.relative_to(r).as_posix(), f) for folder in _datasets(r) if folder.is_dir()
                   for f in folder.rglob("*") if f.is_file())
    entries = [[name, sha256_file(path)] for name, path in files]
    return "sha256:" + hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode("utf-8")).hexdigest()


def _generator_of(root: Path) -> str | None:
    """The code fingerprint recorded in ``root`` (None: none, or unreadable)."""
    try:
        return (root / GENERATOR).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _datasets(root: Path) -> list[Path]:
    """The dataset folders the generator writes under ``root``."""
    return [root / TOTALSEG, *(root / t.folder for t in MSD_TASKS)]


def _ours(root: Path) -> list[Path]:
    # the manifest first: a run stopped while removing never leaves a manifest over half-removed phantoms
    return [root / MANIFEST, root / GENERATOR, *_datasets(root)]


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def generate_phantoms(out: str | Path, subjects: int = 24, cases: int = 10, seed: int = 0,
                      spacing: float = DEFAULT_SPACING, *, force: bool = False, workers: int | None = None,
                      progress: bool = True) -> PhantomRun:
    """Write the CT training cohort and the ten MSD held-out tasks under ``out``.

    Args:
        out: output folder (created).
        subjects: CT training subjects (TotalSegmentator layout).
        cases: cases per MSD task.
        seed: master seed; case i of dataset d uses the seed ``(seed, crc32(d), i)``.
        spacing: isotropic voxel size in mm of every volume written.
        force: regenerate even if matching phantoms exist, replace phantoms made with other
            arguments (only the kit's own folders and manifest are removed) and write into a
            non-empty folder.
        workers: processes (default: up to 2); 1 generates in this process.
        progress: show a tqdm bar on stderr.

    Returns:
        A :class:`PhantomRun`; ``reused`` is True when the folder already held
        complete phantoms made with the same arguments (nothing is written).

    Raises:
        ValueError: bad arguments (``workers`` below 1 too), or a non-empty folder / other phantoms without
            ``force``.
    """
    args = check_arguments(subjects, cases, seed, spacing)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ValueError(f"workers must be a positive integer (processes), got {workers!r}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out {root} exists and is not a folder")
    start = time.perf_counter()
    found = _read_manifest(root) if root.is_dir() else None
    same = bool(found) and found.get("arguments") == args
    current = same and found.get("format") == FORMAT and _generator_of(root) == generator_fingerprint()
    if current and found.get("complete") and not force:
        return PhantomRun(root, True, time.perf_counter() - start, 0, args)
    redo = same  # same arguments but interrupted, or made by other generator code: simply redone
    if root.is_dir() and any(root.iterdir()) and not force and not redo:
        if found:
            raise ValueError(f"{root} holds phantoms made with other arguments {found.get('arguments')}; "
                             "use another folder or --force to replace them")
        raise ValueError(f"{root} is not empty and holds no phantoms; use an empty folder or --force")
    if force or redo:
        for p in _ours(root):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.is_symlink() or p.exists():
                p.unlink()  # a link is removed, never followed
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(_manifest(args, None))
    (root / GENERATOR).write_text(generator_fingerprint() + "\n")

    jobs = [(TOTALSEG, i) for i in range(args["subjects"])]
    jobs += [(t.folder, i) for i in range(args["cases"]) for t in MSD_TASKS]
    n_workers = _default_workers() if workers is None else int(workers)
    results: list[tuple[str, int, dict[str, Any], int]] = []
    bar = tqdm(total=len(jobs), desc="phantoms", unit="case", disable=not progress, file=sys.stderr)
    try:
        if n_workers == 1:
            for job in jobs:
                results.append(_make(job, str(root), args["seed"], args["spacing"]))
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                futures = [pool.submit(_make, job, str(root), args["seed"], args["spacing"]) for job in jobs]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    results.sort(key=lambda r: (r[0], r[1]))
    ts_rows = [r[2] for r in results if r[0] == TOTALSEG]
    (root / TOTALSEG).mkdir(parents=True, exist_ok=True)
    (root / TOTALSEG / "meta.csv").write_text(totalseg_meta_csv(ts_rows))
    for task in MSD_TASKS:
        training = [r[2] for r in results if r[0] == task.folder]
        (root / task.folder).mkdir(parents=True, exist_ok=True)
        (root / task.folder / "dataset.json").write_text(_dataset_json(task.folder, training))
    (root / MANIFEST).write_text(_manifest(args, content_digest(root)))
    return PhantomRun(root, False, time.perf_counter() - start, sum(r[3] for r in results), args)


def ensure_phantoms(out: str | Path, subjects: int = 24, cases: int = 10, seed: int = 0,
                    spacing: float = DEFAULT_SPACING, *, workers: int | None = None, progress: bool = False) -> Path:
    """The phantom root at ``out``: generated unless already there with the same arguments.

    Used by the notebooks (``ensure_phantoms(Path(out_dir) / "phantoms")``).

    Returns:
        ``Path(out)``, holding ``TotalSegmentator/`` and the ``TaskXX_Name/`` folders.

    Raises:
        ValueError: bad arguments, or ``out`` holds phantoms made with other arguments
            (delete the folder or call :func:`generate_phantoms` with ``force=True``).
    """
    return generate_phantoms(out, subjects, cases, seed, spacing, workers=workers, progress=progress).root
