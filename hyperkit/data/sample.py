"""Writing datasets in the real layouts, and tiny sample datasets (for tests, docs and a first look).

The index files of the layouts (an MSD task's ``dataset.json``, TotalSegmentator's
``meta.csv``) are written here for everything the kit writes: the phantom cohorts
(:mod:`hyperkit.phantoms.writer`) and the samples below; the volumes go through
:func:`hyperkit.data.nifti.write_nifti`.

The sample volumes are a few thousand voxels: a body ellipsoid with two blobs as classes.
They are not anatomy (the phantoms are); they exist so that every reader can be
exercised in a second without any download.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hyperkit.data.nifti import write_nifti
from hyperkit.seeds import derive

__all__ = ["TOTALSEG_META_COLUMNS", "msd_dataset_json", "totalseg_meta_csv", "sample_case", "write_nifti",
           "write_sample_msd", "write_sample_totalseg", "write_sample_nnunet"]

#: the columns of TotalSegmentator's ``meta.csv`` that the kit reads and writes (``;``-separated).
TOTALSEG_META_COLUMNS: tuple[str, ...] = ("image_id", "age", "gender", "institute", "study_type", "split")


def msd_dataset_json(name: str, description: str, modality: Mapping[str, str], labels: Mapping[str, str],
                     training: Sequence[Mapping[str, str]], **provenance: str) -> str:
    """The text of an MSD task's ``dataset.json`` (4-space indent, final newline).

    Args:
        name, description: the task's name and one-line description.
        modality: channel index (as text) -> modality, e.g. ``{"0": "FLAIR", "1": "T1w"}``.
        labels: label value (as text) -> name, with ``"0": "background"``.
        training: ``{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}`` per case.
        provenance: further text fields written after the description (``reference``, ``licence``...).
    """
    meta = {
        "name": name,
        "description": description,
        **provenance,
        "tensorImageSize": "4D" if len(modality) > 1 else "3D",
        "modality": dict(modality),
        "labels": dict(labels),
        "numTraining": len(training),
        "numTest": 0,
        "training": [dict(t) for t in training],
        "test": [],
    }
    return json.dumps(meta, indent=4) + "\n"


def totalseg_meta_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The text of TotalSegmentator's ``meta.csv``: a header and one ``;``-separated line per subject."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(TOTALSEG_META_COLUMNS), delimiter=";", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r[c] for c in TOTALSEG_META_COLUMNS})
    return buf.getvalue()


def _check_cases(n_cases: int) -> None:
    """A sample dataset holds at least one case (with none, its dataset.json was never written)."""
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")


def sample_case(seed: int, shape: tuple[int, int, int] = (24, 20, 16), spacing: float = 2.0,
                n_classes: int = 2, absent: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small image, an integer label map and an affine.

    Returns:
        image float32 ``(X, Y, Z)``, label uint8 ``(X, Y, Z)`` with values ``0..n_classes``
        (classes in ``absent`` left out), affine ``(4, 4)`` with the given spacing.

    Raises:
        ValueError: ``spacing`` not a finite number > 0 (a singular or mirrored affine), or
            ``n_classes`` outside 1..255 (the label is uint8).
    """
    if not 0 < spacing < float("inf"):
        raise ValueError(f"spacing must be a finite number of mm > 0, got {spacing}")
    if not 1 <= n_classes <= 255:
        raise ValueError(f"n_classes must be in 1..255 (a uint8 label), got {n_classes}")
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1).astype(np.float32)
    centre = np.array(shape, dtype=np.float32) / 2
    body = (((grid - centre) / (centre * 0.9)) ** 2).sum(-1) <= 1
    image = np.where(body, 40.0, -1000.0).astype(np.float32) + rng.normal(0, 10, shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    for k in range(1, n_classes + 1):
        c = (centre + rng.uniform(-0.2, 0.2, 3) * centre
             + (k - (n_classes + 1) / 2) * np.array([shape[0] / (n_classes + 2), 0, 0]))
        r = rng.uniform(2.0, 3.5)
        blob = ((grid - c) ** 2).sum(-1) <= r * r
        if k not in absent:
            label[blob & body] = k
        image[blob & body] += 60.0 * k
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -np.array(shape) * spacing / 2
    return image, label, affine


def write_sample_msd(root: str | Path, name: str = "Task90_Sample", n_cases: int = 3,
                     channels: tuple[str, ...] = ("CT",), labels: tuple[str, ...] = ("organ", "tumour"),
                     absent: dict[int, tuple[int, ...]] | None = None, seed: int = 0) -> Path:
    """Write an MSD task folder; multi-channel images are 4D ``(X, Y, Z, C)``."""
    _check_cases(n_cases)
    root = Path(root) / name
    training = []
    for i in range(n_cases):
        image, label, affine = sample_case(derive(seed, "sample_case", i), n_classes=len(labels),
                                           absent=(absent or {}).get(i, ()))
        if len(channels) > 1:
            image = np.stack([image * (1 + 0.1 * c) for c in range(len(channels))], axis=-1)
        stem = f"sample_{i:03d}"
        write_nifti(root / "imagesTr" / f"{stem}.nii.gz", image, affine)
        write_nifti(root / "labelsTr" / f"{stem}.nii.gz", label, affine)
        training.append({"image": f"./imagesTr/{stem}.nii.gz", "label": f"./labelsTr/{stem}.nii.gz"})
    (root / "dataset.json").write_text(msd_dataset_json(
        name, "hyperkit sample", {str(i): c for i, c in enumerate(channels)},
        {"0": "background", **{str(i + 1): n for i, n in enumerate(labels)}}, training))
    return root


def write_sample_totalseg(root: str | Path, name: str = "TotalSegmentator", n_cases: int = 3,
                          structures: tuple[str, ...] = ("aorta", "kidney_left"), seed: int = 0) -> Path:
    """Write a TotalSegmentator folder with ``meta.csv`` (``;``-separated, as the real one)."""
    _check_cases(n_cases)
    root = Path(root) / name
    rows = []
    splits = ["train", "val", "test"]
    for i in range(n_cases):
        sid = f"s{i:04d}"
        image, label, affine = sample_case(derive(seed, "sample_case", i), n_classes=len(structures))
        write_nifti(root / sid / "ct.nii.gz", image, affine)
        for k, s in enumerate(structures, start=1):
            write_nifti(root / sid / "segmentations" / f"{s}.nii.gz", (label == k).astype(np.uint8), affine)
        rows.append({"image_id": sid, "age": 50, "gender": "f", "institute": "A", "study_type": "ct abdomen",
                     "split": splits[i % 3]})
    (root / "meta.csv").write_text(totalseg_meta_csv(rows))
    return root


def write_sample_nnunet(root: str | Path, name: str = "Dataset901_Sample", n_cases: int = 3,
                        channels: tuple[str, ...] = ("T2", "ADC"), labels: tuple[str, ...] = ("zone_a", "zone_b"),
                        seed: int = 0) -> Path:
    """Write an nnU-Net v2 raw folder: one file per channel, ``case_XXXX.nii.gz``."""
    _check_cases(n_cases)
    root = Path(root) / name
    for i in range(n_cases):
        cid = f"case_{i:03d}"
        image, label, affine = sample_case(derive(seed, "sample_case", i), n_classes=len(labels))
        for c in range(len(channels)):
            write_nifti(root / "imagesTr" / f"{cid}_{c:04d}.nii.gz", image * (1 + 0.1 * c), affine)
        write_nifti(root / "labelsTr" / f"{cid}.nii.gz", label, affine)
    meta = {"channel_names": {str(i): c for i, c in enumerate(channels)},
            "labels": {"background": 0, **{n: i + 1 for i, n in enumerate(labels)}},
            "numTraining": n_cases, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root
