"""The phantoms are pinned: a tiny cohort must keep the exact arrays it has today.

Refactoring the generator (``hyperkit/phantoms``: the organ tables, the torso, the image
synthesis, the writer) must not change a single voxel, and every random draw must stay in
its order. One CT subject and one case per MSD task at 12 mm take a few seconds; the
digests cover the stored arrays (dtype, shape and bytes, as ``nibabel`` reads them back).

A change that is meant to alter the phantoms updates the digests below in the same commit, and
says which cohorts it changes (a changed file changes the manifest's content digest, so the
data fingerprint of every folder holding it); print the new ones with
``python -c "from tests.test_phantom_hashes import digests; print(digests())"``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable

import nibabel as nib
import numpy as np
import pytest

from hyperkit.phantoms import generate_phantoms

PINNED = dict(subjects=1, cases=1, seed=0, spacing=12.0)
#: sha256 (first 16 hex digits) of the arrays of the pinned cohort (the segmentations: all 82 in name order).
DIGESTS: dict[str, str] = {
    "TotalSegmentator/s0000/ct": "f9230b8c11c18078",
    "TotalSegmentator/s0000/segmentations": "74d9dd62ad68ac59",
    "Task01_BrainTumour/imagesTr/BRATS_000": "4bf6489943d2866b",
    "Task01_BrainTumour/labelsTr/BRATS_000": "113a02668fb0e944",
    "Task02_Heart/imagesTr/la_000": "aaea33dbc97554b3",
    "Task02_Heart/labelsTr/la_000": "83d41d1f5623f0ee",
    "Task03_Liver/imagesTr/liver_000": "25bca2bf758f9b82",
    "Task03_Liver/labelsTr/liver_000": "4e89c9adcc37fb3c",
    "Task04_Hippocampus/imagesTr/hippocampus_000": "8b8677919d6e9da6",
    "Task04_Hippocampus/labelsTr/hippocampus_000": "da7a90bb010688de",
    "Task05_Prostate/imagesTr/prostate_000": "684e7db882fad9c2",
    "Task05_Prostate/labelsTr/prostate_000": "a3afe26343f1b180",
    "Task06_Lung/imagesTr/lung_000": "d908a74a50046691",
    "Task06_Lung/labelsTr/lung_000": "2ff8cc385d4e0eb1",
    "Task07_Pancreas/imagesTr/pancreas_000": "783f6e0feb67afc1",
    "Task07_Pancreas/labelsTr/pancreas_000": "225cbd433fc1fcb7",
    "Task08_HepaticVessel/imagesTr/hepaticvessel_000": "272da403bae19966",
    "Task08_HepaticVessel/labelsTr/hepaticvessel_000": "8f2910403fa994bd",
    "Task09_Spleen/imagesTr/spleen_000": "b0f4f53061d58857",
    "Task09_Spleen/labelsTr/spleen_000": "731173a7738cd433",
    "Task10_Colon/imagesTr/colon_000": "6120300d7df8a51f",
    "Task10_Colon/labelsTr/colon_000": "8808e9a48b868b38",
}


def add_arrays(h: hashlib._Hash, arrays: Iterable[np.ndarray]) -> None:
    """Feed each array's dtype, shape and bytes to ``h``: what every pinned digest covers."""
    for a in arrays:
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    add_arrays(h, (np.asarray(nib.load(p).dataobj) for p in paths))
    return h.hexdigest()[:16]


def digests(root: Path | None = None) -> dict[str, str]:
    """The digests of the pinned cohort, generated under ``root`` (a temporary folder when None)."""
    root = Path(tempfile.mkdtemp()) / "pinned" if root is None else root
    generate_phantoms(root, **PINNED, workers=1, progress=False)
    seg = root / "TotalSegmentator" / "s0000"
    out = {"TotalSegmentator/s0000/ct": _digest([seg / "ct.nii.gz"]),
           "TotalSegmentator/s0000/segmentations": _digest(sorted((seg / "segmentations").glob("*.nii.gz")))}
    for task in sorted(root.glob("Task*")):
        for kind in ("imagesTr", "labelsTr"):
            for f in sorted((task / kind).glob("*.nii.gz")):
                out[f"{task.name}/{kind}/{f.name.removesuffix('.nii.gz')}"] = _digest([f])
    return out


def test_phantom_arrays_are_unchanged(tmp_path: Path) -> None:
    got = digests(tmp_path / "pinned")
    changed = sorted(k for k in DIGESTS if got.get(k) != DIGESTS[k])
    assert set(got) == set(DIGESTS), f"other files than pinned: {sorted(set(got) ^ set(DIGESTS))}"
    assert not changed, f"phantom arrays changed (random draw order or a parameter?): {changed}"


def test_the_session_cache_is_isolated() -> None:
    """conftest points ``$HYPERKIT_CACHE`` at a temporary folder: no test writes the user's cache."""
    from hyperkit.data.preprocess import default_cache_dir

    cache = default_cache_dir().resolve()
    assert cache == Path(os.environ["HYPERKIT_CACHE"]).resolve()
    assert cache != (Path.home() / ".cache" / "hyperkit").resolve()
    assert cache.is_relative_to(Path(tempfile.gettempdir()).resolve()) or "pytest" in str(cache), cache


@pytest.mark.parametrize("table", ["HEART", "LIVER", "BODY"])
def test_organ_tables_are_frozen(table: str) -> None:
    import dataclasses

    from hyperkit.phantoms import organs

    obj = getattr(organs, table)
    field = dataclasses.fields(obj)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, 0)
