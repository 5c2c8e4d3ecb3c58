"""Tiny sample datasets in each real layout (for tests, docs and a first look).

The volumes are a few thousand voxels: a body ellipsoid with two blobs as classes.
They are not anatomy (the phantoms are); they exist so that every reader can be
exercised in a second without any download.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from hyperkit.seeds import derive

__all__ = ["sample_case", "write_nifti", "write_sample_msd", "write_sample_totalseg", "write_sample_nnunet"]


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def sample_case(seed: int, shape: tuple[int, int, int] = (24, 20, 16), spacing: float = 2.0,
                n_classes: int = 2, absent: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small image, an integer label map and an affine.

    Returns:
        image float32 ``(X, Y, Z)``, label uint8 ``(X, Y, Z)`` with values ``0..n_classes``
        (classes in ``absent`` left out), affine ``(4, 4)`` with the given spacing.
    """
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1).astype(np.float32)
    centre = np.array(shape, dtype=np.float32) / 2
    body = (((grid - centre) / (centre * 0.9)) ** 2).sum(-1) <= 1
    image = np.where(body, 40.0, -1000.0).astype(np.float32) + rng.normal(0, 10, shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    for k in range(1, n_classes + 1):
        c = centre + rng.uniform(-0.2, 0.2, 3) * centre + (k - (n_classes + 1) / 2) * np.array([shape[0] / (n_classes + 2), 0, 0])
        r = rng.uniform(2.0, 3.5)
        blob = ((grid - c) ** 2).sum(-1) <= r * r
        if k not in absent:
            label[blob & body] = k
        image[blob & body] += 60.0 * k
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -np.array(shape) * spacing / 2
    return image, label, affine


def write_sample_msd(root: str | Path, name: str = "Task90_Sample", n_cases: int = 3, channels: tuple[str, ...] = ("CT",),
                     labels: tuple[str, ...] = ("organ", "tumour"), absent: dict[int, tuple[int, ...]] | None = None,
                     seed: int = 0) -> Path:
    """Write an MSD task folder; multi-channel images are 4D ``(X, Y, Z, C)``."""
    root = Path(root) / name
    training = []
    for i in range(n_cases):
        image, label, affine = sample_case(derive(seed, "sample_case", i), n_classes=len(labels), absent=(absent or {}).get(i, ()))
        if len(channels) > 1:
            image = np.stack([image * (1 + 0.1 * c) for c in range(len(channels))], axis=-1)
        stem = f"sample_{i:03d}"
        write_nifti(root / "imagesTr" / f"{stem}.nii.gz", image, affine)
        write_nifti(root / "labelsTr" / f"{stem}.nii.gz", label, affine)
        training.append({"image": f"./imagesTr/{stem}.nii.gz", "label": f"./labelsTr/{stem}.nii.gz"})
    meta = {
        "name": name, "description": "hyperkit sample", "tensorImageSize": "4D" if len(channels) > 1 else "3D",
        "modality": {str(i): c for i, c in enumerate(channels)},
        "labels": {"0": "background", **{str(i + 1): n for i, n in enumerate(labels)}},
        "numTraining": n_cases, "numTest": 0, "training": training, "test": [],
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root


def write_sample_totalseg(root: str | Path, name: str = "TotalSegmentator", n_cases: int = 3,
                          structures: tuple[str, ...] = ("aorta", "kidney_left"), seed: int = 0) -> Path:
    """Write a TotalSegmentator folder with ``meta.csv`` (``;``-separated, as the real one)."""
    root = Path(root) / name
    rows = ["image_id;age;gender;institute;study_type;split"]
    splits = ["train", "val", "test"]
    for i in range(n_cases):
        sid = f"s{i:04d}"
        image, label, affine = sample_case(derive(seed, "sample_case", i), n_classes=len(structures))
        write_nifti(root / sid / "ct.nii.gz", image, affine)
        for k, s in enumerate(structures, start=1):
            write_nifti(root / sid / "segmentations" / f"{s}.nii.gz", (label == k).astype(np.uint8), affine)
        rows.append(f"{sid};50;f;A;ct abdomen;{splits[i % 3]}")
    (root / "meta.csv").write_text("\n".join(rows) + "\n")
    return root


def write_sample_nnunet(root: str | Path, name: str = "Dataset901_Sample", n_cases: int = 3,
                        channels: tuple[str, ...] = ("T2", "ADC"), labels: tuple[str, ...] = ("zone_a", "zone_b"),
                        seed: int = 0) -> Path:
    """Write an nnU-Net v2 raw folder: one file per channel, ``case_XXXX.nii.gz``."""
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
