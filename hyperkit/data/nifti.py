"""NIfTI files: careful reading (every failure names the file and the problem) and reproducible writing.

Writing is one piece for everything the kit writes in the real layouts (the phantom
cohorts and the tiny sample datasets): :func:`nifti_bytes` serialises a volume to
identical bytes for identical inputs and :func:`write_nifti` puts them in place atomically.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from hyperkit.errors import DataError
from hyperkit.files import write_atomic

__all__ = ["NIFTI_ENDINGS", "is_nifti", "strip_nifti", "load_header", "read_image", "read_label", "safe_join",
           "same_geometry", "spacing_of", "nifti_bytes", "write_nifti"]

NIFTI_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii")
_GZIP_LEVEL = 1  # noisy int16 volumes barely compress further; level 1 is ~8x faster than 6


def is_nifti(path: str | Path) -> bool:
    return str(path).endswith(NIFTI_ENDINGS)


def strip_nifti(name: str) -> str:
    """``"liver_3.nii.gz" -> "liver_3"``."""
    for end in NIFTI_ENDINGS:
        if name.endswith(end):
            return name[: -len(end)]
    return name


def safe_join(root: str | Path, relative: str) -> Path:
    """Join a path read from a dataset file to its root, refusing paths that leave the root.

    Raises:
        DataError: ``relative`` is absolute or climbs out of ``root`` (``..``, symlinks).
    """
    if not isinstance(relative, str) or not relative:
        raise DataError(root, f"a file path must be a non-empty string, got {relative!r}")
    root_r = Path(root).resolve()
    candidate = (root_r / relative).resolve()
    if Path(relative).is_absolute() or not candidate.is_relative_to(root_r):
        raise DataError(root, f"path {relative!r} leaves the dataset root; refused")
    # the path as written (normalised), not the symlink's target: its name is the case's name
    return Path(os.path.normpath(Path(root) / relative))


def load_header(path: str | Path) -> nib.Nifti1Image:
    """Open a NIfTI file lazily (header only); missing or unreadable -> DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file not found")
    if not is_nifti(p):
        raise DataError(p, f"not a NIfTI file (expected one of {NIFTI_ENDINGS})")
    try:
        img = nib.load(str(p))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise DataError(p, f"corrupt or unreadable NIfTI ({type(exc).__name__}: {exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(p, f"not a NIfTI image ({type(img).__name__})")
    return img


def _read(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    try:
        return np.asanyarray(img.dataobj)
    except (EOFError, OSError, ValueError, zlib.error) as exc:
        raise DataError(path, f"corrupt NIfTI data ({type(exc).__name__}: {exc})") from exc


def read_image(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an image as float32 ``(X, Y, Z)`` or ``(X, Y, Z, C)`` and its affine.

    Raises:
        DataError: missing, corrupt, not 3D/4D, or NaN/inf voxels.
    """
    p = Path(path)
    img = load_header(p)
    data = _read(img, p).astype(np.float32, copy=False)
    if data.ndim not in (3, 4):
        raise DataError(p, f"image must be 3D or 4D, got shape {data.shape}")
    bad = ~np.isfinite(data)
    if bad.any():
        raise DataError(p, f"{int(bad.sum())} NaN/inf voxels")
    return data, img.affine


def read_label(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an integer label map ``(X, Y, Z)`` and its affine.

    Raises:
        DataError: missing, corrupt, 4D (or any non-3D shape), non-integer or negative values.
    """
    p = Path(path)
    img = load_header(p)
    raw = _read(img, p)
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise DataError(p, f"label must be a 3D integer map, got shape {raw.shape}")
    if not np.issubdtype(raw.dtype, np.integer):
        if not np.all(np.isfinite(raw)):
            raise DataError(p, "label has NaN/inf voxels")
        rounded = np.rint(raw)
        if not np.array_equal(rounded, raw):
            raise DataError(p, "label has non-integer values")
        raw = rounded
    if raw.min(initial=0) < 0:
        raise DataError(p, f"label has negative values (min {int(raw.min())})")
    top = np.iinfo(np.int32).max
    if raw.max(initial=0) > top:  # checked before the cast, which would wrap such a value round
        raise DataError(p, f"label value {int(raw.max())} does not fit a label map (at most {top})")
    return raw.astype(np.int32, copy=False), img.affine


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing in mm (column norms of the affine's 3x3 part)."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))  # type: ignore[return-value]


def same_geometry(a_shape: tuple[int, ...], a_affine: np.ndarray, b_shape: tuple[int, ...],
                  b_affine: np.ndarray, atol: float = 1e-3) -> bool:
    """True when two images share their spatial shape and affine (to ``atol`` mm)."""
    return tuple(a_shape[:3]) == tuple(b_shape[:3]) and np.allclose(a_affine, b_affine, atol=atol)


def nifti_bytes(array: np.ndarray, affine: np.ndarray, *, gz: bool = True) -> bytes:
    """A gzipped (``gz=False``: plain) NIfTI-1 file as bytes, identical for identical inputs (gzip mtime 0).

    The array keeps its dtype; the affine is stored as both qform and sform (code 1, scanner),
    units mm and s.
    """
    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=_GZIP_LEVEL, mtime=0) if gz else raw


def write_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` as a NIfTI file at ``path`` (:func:`nifti_bytes`; gzipped unless the name ends
    in ``.nii``); parent folders are created.

    The bytes go to a temporary name first, then replace ``path``: a killed run never leaves a
    half-written file under the final name.
    """
    p = Path(path)
    data = nifti_bytes(array, affine, gz=not p.name.endswith(".nii"))
    return write_atomic(p, lambda fh: fh.write(data))
