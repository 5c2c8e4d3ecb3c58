"""Where to look in a new scan: register the support scan to the query and map its target's region.

A generated U-Net is accurate on a patch around its target, not on a whole scan (it marks
look-alike tissue elsewhere). The support scan and its mask say where the target lies in a
body; a registration (similarity; affine on request) of the support to the query (SimpleITK, Mattes mutual
information) carries that region into the query, and the U-Net is run on patches there.

- :class:`SupportReference`: what a model file keeps of its support (a downsampled copy of
  the preprocessed support image, its RAS grid, the mask's bounding box in mm, the modality);
  stored as plain tensors and lists (:meth:`SupportReference.to_dict`), so the model file
  still loads with ``torch.load(weights_only=True)``.
- :func:`register`: support reference -> query volume, a map of world points (mm) as a 4x4 matrix.
- :func:`map_box`: a box in the support's world -> the enclosing box in the query's world.
- :func:`roi_windows`: a box in mm -> the voxel region of the preprocessed query to run the
  U-Net on (at least one patch side per axis, the box centred).
- :func:`check_modality`: the query must be the modality the model was made for.

World coordinates are those of the NIfTI affines the kit reads (RAS+, mm). Every array
here is ``(X, Y, Z)`` in that grid's voxel order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from hyperkit.data.tasks import check_modality as check_modality_name
from hyperkit.errors import HyperkitError

__all__ = ["LocalisationError", "ModalityMismatchError", "RegistrationError", "NoOverlapError", "RoiOutsideImageError",
           "SupportReference", "Registration", "REFERENCE_SPACING", "DEFAULT_MARGIN_MM", "TRANSFORMS",
           "intensity_signature", "guess_modality", "detect_modality", "check_modality", "modality_mismatch",
           "make_reference", "register", "map_box", "mask_box", "image_box", "intersect", "parse_roi", "roi_windows",
           "check_margin"]

#: voxel size (mm) of the support image kept in a model file and of the registration
REFERENCE_SPACING = 5.0
#: margin (mm) added on every side of the support mask's box before it is mapped into the query
DEFAULT_MARGIN_MM = 20.0
#: a registration whose linear part scales a volume by more than this factor (or less than its
#: inverse), or whose final Mattes metric is above this value (mutual information below 0.15), has
#: failed; measured: 0.06-0.10 between a body and noise, 0.5-1.2 between two phantom bodies
_MAX_VOLUME_RATIO = 4.0
_MAX_METRIC = -0.15


class LocalisationError(HyperkitError):
    """The target could not be localised in the query (base class; ``reason`` names the case)."""

    reason = "localisation"


class ModalityMismatchError(LocalisationError):
    """The query is not of the modality the model was made for.

    Attributes:
        expected: the model's modality (``"CT"`` or ``"MRI"``).
        found: what the query looks like.
    """

    reason = "modality"

    def __init__(self, message: str, expected: str, found: str) -> None:
        super().__init__(message)
        self.expected, self.found = expected, found


class RegistrationError(LocalisationError):
    """The registration did not converge to a plausible affine map."""

    reason = "registration"


class NoOverlapError(LocalisationError):
    """The support's mapped region does not overlap the query image."""

    reason = "no-overlap"


class RoiOutsideImageError(LocalisationError):
    """A region given by the user lies outside the image."""

    reason = "roi-outside"


@dataclass(frozen=True)
class SupportReference:
    """What a model file keeps of its support scan for localisation.

    Attributes:
        image: float32 ``(X, Y, Z)``: the preprocessed (normalised) support image on a RAS grid
            at about :data:`REFERENCE_SPACING` mm, shifted so that its minimum is 0 and scaled
            to [0, 1].
        affine: ``(4, 4)`` voxel-to-world matrix of that grid.
        box_mm: ``(2, 3)``: the lowest and highest world coordinates (mm) of the support mask.
        modality: ``"CT"`` or ``"MRI"``.
    """

    image: np.ndarray
    affine: np.ndarray
    box_mm: np.ndarray
    modality: str

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors, lists and strings (the image as uint8): loads with ``weights_only=True``."""
        q = np.clip(np.rint(self.image * 255.0), 0, 255).astype(np.uint8)
        return {"image_u8": torch.from_numpy(q), "affine": np.asarray(self.affine, dtype=float).tolist(),
                "box_mm": np.asarray(self.box_mm, dtype=float).tolist(), "modality": self.modality}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SupportReference":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: keys missing or of the wrong shape (the offending key is named).
        """
        missing = [k for k in ("image_u8", "affine", "box_mm", "modality") if k not in d]
        if missing:
            raise ValueError(f"support reference lacks key(s) {missing}")
        img = np.asarray(d["image_u8"].numpy() if isinstance(d["image_u8"], torch.Tensor) else d["image_u8"])
        affine, box = np.asarray(d["affine"], dtype=np.float64), np.asarray(d["box_mm"], dtype=np.float64)
        if img.ndim != 3 or affine.shape != (4, 4) or box.shape != (2, 3):
            raise ValueError(f"support reference of wrong shape: image {img.shape}, affine {affine.shape}, "
                             f"box_mm {box.shape}")
        return cls(img.astype(np.float32) / 255.0, affine, box, str(d["modality"]))


@dataclass(frozen=True)
class Registration:
    """An affine registration of the support to a query.

    Attributes:
        matrix: ``(4, 4)``: support world point (mm, homogeneous) -> query world point.
        metric: final Mattes mutual information (negative; closer to 0 is worse).
        volume_ratio: determinant of the linear part (query volume per support volume).
        seconds: wall time.
        transform: which of :data:`TRANSFORMS` was fitted.
    """

    matrix: np.ndarray
    metric: float
    volume_ratio: float
    seconds: float
    transform: str = "similarity"


# ----------------------------------------------------------------------------- modality
def intensity_signature(raw: np.ndarray) -> tuple[float, float]:
    """``(minimum, 0.5th percentile)`` of a scan's raw intensities (every second voxel per axis).

    Args:
        raw: the scan as read from its file, ``(X, Y, Z)`` (or any shape).

    Raises:
        ValueError: an empty array.
    """
    a = np.asarray(raw)
    if a.size == 0:
        raise ValueError("intensity_signature: empty array")
    sub = a[tuple(slice(None, None, 2) for _ in range(a.ndim))] if a.ndim >= 3 else a
    return float(a.min()), float(np.percentile(sub, 0.5))


def guess_modality(signature: tuple[float, float]) -> str:
    """``"CT"`` (Hounsfield units: air near -1000 in the lowest 0.5 %), ``"MRI"`` (no negative
    value at all) or ``"unknown"`` (a CT crop without air, processed MRI ...).

    Args:
        signature: :func:`intensity_signature` of the raw scan.
    """
    minimum, low = signature
    if low < -300.0:
        return "CT"
    if minimum >= 0.0:
        return "MRI"
    return "unknown"


def detect_modality(signature: tuple[float, float]) -> tuple[str, str]:
    """``(modality, why)`` for ``--modality auto``: ``"MRI"`` when the scan has no negative value,
    ``"CT"`` otherwise (by air near -1000 HU, or as the kit's default when neither
    :func:`guess_modality` rule holds: a CT crop without air reads right, a processed MRI with
    negative values does not, and ``why`` says to pass ``--modality MRI`` then).

    Args:
        signature: :func:`intensity_signature` of the raw scan.
    """
    minimum, low = signature
    found = guess_modality(signature)
    if found == "MRI":
        return "MRI", f"detected: no negative value, minimum {minimum:g}"
    if found == "CT":
        return "CT", f"detected: air near -1000 HU, 0.5th percentile {low:g}"
    return "CT", (f"the default: minimum {minimum:g}, 0.5th percentile {low:g} show neither air nor only values >= 0; "
                  "pass --modality MRI if it is an MRI")


def check_modality(signature: tuple[float, float], expected: str, what: str = "query") -> None:
    """Raise :class:`ModalityMismatchError` when a scan clearly is not of the ``expected`` modality.

    A CT model refuses a scan with no negative value (magnitude MRI, or CT not in Hounsfield
    units); an MRI model refuses a scan with air near -1000 HU. Scans that fit neither rule
    pass (:func:`guess_modality` ``"unknown"``).

    Args:
        signature: :func:`intensity_signature` of the raw scan.
        expected: ``"CT"`` or ``"MRI"`` (the model's support).
        what: how the message names the scan (a path).

    Raises:
        ValueError: ``expected`` is not CT or MRI.
        ModalityMismatchError: the scan looks like the other modality.
    """
    mismatch = modality_mismatch(signature, expected)
    if mismatch is not None:
        found, why = mismatch
        a = {"CT": "a CT", "MRI": "an MRI"}
        raise ModalityMismatchError(f"{what}: the model was made from {a[expected]} support, but this scan looks like "
                                    f"{found} ({why}); segment {expected} scans with it, or generate a model from "
                                    f"{a[found]} support", expected, found)


def modality_mismatch(signature: tuple[float, float], expected: str) -> tuple[str, str] | None:
    """``(the modality the scan looks like, why)`` when it clearly is not ``expected``, else None
    (the rule of :func:`check_modality`).

    Raises:
        ValueError: ``expected`` is not CT or MRI.
    """
    if expected not in ("CT", "MRI"):
        raise ValueError(f"expected modality must be 'CT' or 'MRI', got {expected!r}")
    found = guess_modality(signature)
    if found in (expected, "unknown"):
        return None
    minimum, low = signature
    return found, (f"no negative value, minimum {minimum:g}: no Hounsfield units" if expected == "CT" else
                   f"air-like values near -1000, 0.5th percentile {low:g}, as in CT")


# ----------------------------------------------------------------------------- boxes
def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(8, 3)`` corners of the box ``lo..hi``."""
    return np.array([[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]]
                     for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.float64)


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ affine[:3, :3].T + affine[:3, 3]


def image_box(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``(2, 3)`` world box (mm) covered by a grid: its voxels' outer faces.

    Raises:
        ValueError: ``affine`` not ``(4, 4)`` or ``shape`` not 3 positive sides.
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be (4, 4), got {affine.shape}")
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive sides, got {tuple(shape)}")
    pts = _apply(affine, _corners(np.full(3, -0.5), np.asarray(shape, dtype=np.float64) - 0.5))
    return np.stack([pts.min(0), pts.max(0)])


def mask_box(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``(2, 3)`` world box (mm) of the foreground of ``mask`` ``(X, Y, Z)`` (voxel faces included).

    Raises:
        ValueError: ``mask`` is not 3D or has no foreground voxel.
    """
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"mask must be (X, Y, Z), got shape {m.shape}")
    idx = np.argwhere(m > 0)
    if not len(idx):
        raise ValueError("mask has no foreground voxel")
    pts = _apply(np.asarray(affine, dtype=np.float64), _corners(idx.min(0) - 0.5, idx.max(0) + 0.5))
    return np.stack([pts.min(0), pts.max(0)])


def check_margin(margin_mm: float) -> float:
    """The margin (mm) around the support's target box (``--margin``): a finite number >= 0.

    Raises:
        ValueError: naming the value.
    """
    if not margin_mm >= 0 or not np.isfinite(margin_mm):  # also NaN
        raise ValueError(f"--margin must be a finite number of mm >= 0, got {margin_mm}")
    return float(margin_mm)


def map_box(box_mm: np.ndarray, matrix: np.ndarray, margin_mm: float = DEFAULT_MARGIN_MM) -> np.ndarray:
    """The world box enclosing ``box_mm`` grown by ``margin_mm`` and mapped by ``matrix``.

    Args:
        box_mm: ``(2, 3)`` lowest and highest corner (mm).
        matrix: ``(4, 4)`` affine map of world points (:attr:`Registration.matrix`).
        margin_mm: added on every side before mapping; >= 0.

    Returns:
        ``(2, 3)``.

    Raises:
        ValueError: a negative margin or malformed box / matrix.
    """
    box = np.asarray(box_mm, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    check_margin(margin_mm)
    if box.shape != (2, 3) or np.any(box[0] > box[1]):
        raise ValueError(f"box_mm must be (2, 3) with low <= high, got {box.tolist()}")
    if m.shape != (4, 4):
        raise ValueError(f"matrix must be (4, 4), got {m.shape}")
    pts = _apply(m, _corners(box[0] - margin_mm, box[1] + margin_mm))
    return np.stack([pts.min(0), pts.max(0)])


def intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """The intersection of two ``(2, 3)`` boxes, or ``None`` when it is empty."""
    lo, hi = np.maximum(a[0], b[0]), np.minimum(a[1], b[1])
    return None if np.any(lo >= hi) else np.stack([lo, hi])


def parse_roi(text: str) -> np.ndarray:
    """``"x0,y0,z0,x1,y1,z1"`` (mm) -> ``(2, 3)`` box; spaces around a number are allowed.

    Raises:
        ValueError: not six numbers (an empty field, or ``"1 0"`` within one, is not a number), or a low
            corner not below the high one (the text is quoted).
    """
    try:
        vals = [float(p) for p in str(text).split(",")]
    except ValueError:
        vals = []
    if len(vals) != 6 or not np.all(np.isfinite(vals)):
        raise ValueError(f"--roi must be auto, none or six numbers x0,y0,z0,x1,y1,z1 (mm), got {text!r}")
    box = np.array([vals[:3], vals[3:]], dtype=np.float64)
    if np.any(box[0] >= box[1]):
        raise ValueError(f"--roi {text!r}: each low corner value must be below the high one "
                         "(x0 < x1, y0 < y1, z0 < z1)")
    return box


def roi_windows(box_mm: np.ndarray, affine: np.ndarray, shape: Sequence[int], patch_size: int,
                ) -> tuple[np.ndarray, np.ndarray]:
    """The voxel region of a grid on which to run the U-Net for a world box.

    The box is converted to voxel indices of the grid ``(affine, shape)`` (the preprocessed
    query: RAS, isotropic); the region is the box grown to at least ``patch_size`` voxels per
    axis, centred on the box (so a target that fits a patch sits at its centre, as the
    patches it was trained on placed it within 25 % of the side). The region may reach
    outside the grid (the caller pads).

    Args:
        box_mm: ``(2, 3)`` world box.
        affine: ``(4, 4)`` voxel-to-world matrix of the grid.
        shape: the grid's ``(X, Y, Z)``.
        patch_size: the U-Net's patch side ``S`` in voxels.

    Returns:
        ``(start, end)``: int64 ``(3,)`` voxel indices, ``end - start >= patch_size`` per axis.

    Raises:
        ValueError: ``patch_size < 1`` or malformed inputs.
    """
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    affine = np.asarray(affine, dtype=np.float64)
    image_box(affine, shape)  # validates
    inv = np.linalg.inv(affine)
    pts = _apply(inv, _corners(*np.asarray(box_mm, dtype=np.float64)))
    lo, hi = np.floor(pts.min(0) + 0.5).astype(np.int64), np.ceil(pts.max(0) - 0.5).astype(np.int64)
    size = np.maximum(hi - lo + 1, patch_size)
    centre2 = lo + hi + 1  # twice the centre, in voxel edges
    start = (centre2 - size) // 2
    return start, start + size


# ----------------------------------------------------------------------------- registration
def _sitk_image(array: np.ndarray, affine: np.ndarray) -> Any:
    """numpy ``(X, Y, Z)`` + affine -> SimpleITK image in the same world frame."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(np.asarray(array, dtype=np.float32), (2, 1, 0))))
    a = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(v) for v in a[:3, 3]])
    img.SetDirection([float(v) for v in (a[:3, :3] / spacing).ravel()])
    return img


def _unit_range(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    return np.zeros_like(x) if hi <= lo else (x - lo) / (hi - lo)


def make_reference(image: np.ndarray, affine: np.ndarray, mask: np.ndarray, modality: str,
                   spacing: float = REFERENCE_SPACING) -> SupportReference:
    """The support reference of a preprocessed support scan.

    Args:
        image: float32 ``(X, Y, Z)`` preprocessed (normalised) support image.
        affine: ``(4, 4)`` its voxel-to-world matrix.
        mask: ``(X, Y, Z)`` its target mask (> 0: target).
        modality: ``"CT"`` or ``"MRI"``.
        spacing: voxel size (mm) of the stored image; images at this spacing or coarser are
            kept as they are.

    Returns:
        A :class:`SupportReference` (image on a grid of about ``spacing`` mm).

    Raises:
        ValueError: bad shapes, an empty mask, a modality other than CT/MRI or ``spacing <= 0``.
    """
    import SimpleITK as sitk

    img = np.asarray(image)
    if img.ndim != 3 or np.asarray(mask).shape != img.shape:
        raise ValueError(f"image and mask must both be (X, Y, Z) of one shape, got {img.shape} and "
                         f"{np.asarray(mask).shape}")
    modality = check_modality_name(modality)
    if spacing <= 0:
        raise ValueError(f"spacing must be > 0, got {spacing}")
    box = mask_box(mask, affine)
    affine = np.asarray(affine, dtype=np.float64)
    src_spacing = np.linalg.norm(affine[:3, :3], axis=0)
    unit = _unit_range(img)
    if np.all(src_spacing >= spacing * 0.8):
        return SupportReference(unit, affine, box, modality)
    s = _sitk_image(unit, affine)
    factor = spacing / src_spacing
    size = [max(1, int(np.ceil(n / f))) for n, f in zip(img.shape, factor)]
    smoothed = sitk.SmoothingRecursiveGaussian(s, [float(spacing / 2.0)] * 3)
    out = sitk.Resample(smoothed, size, sitk.Transform(), sitk.sitkLinear, s.GetOrigin(),
                        [float(spacing)] * 3, s.GetDirection(), 0.0, sitk.sitkFloat32)
    arr = np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0)).astype(np.float32)
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] / src_spacing * spacing
    # the first voxel's centre stays where it was (sitk keeps the origin)
    return SupportReference(np.clip(arr, 0.0, 1.0), new_affine, box, modality)


def _matrix(tx: Any) -> np.ndarray:
    """A SimpleITK affine-like transform (x -> A (x - c) + t + c) as a ``(4, 4)`` matrix."""
    a = np.asarray(tx.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.asarray(tx.GetCenter(), dtype=np.float64)
    t = np.asarray(tx.GetTranslation(), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = a, t + c - a @ c
    return m


#: transforms :func:`register` fits (similarity: rotation, translation, one scale; affine: 12 parameters)
TRANSFORMS: tuple[str, ...] = ("similarity", "affine")


def register(reference: SupportReference, image: np.ndarray, affine: np.ndarray, *, transform: str = "similarity",
             iterations: int = 60, threads: int | None = None) -> Registration:
    """Register the support reference to a query (SimpleITK, Mattes mutual information).

    The support reference is the fixed image and the query the moving one, so the resulting
    transform maps support world points to query world points. Initialisation aligns the
    intensity centres of mass (both images scaled to [0, 1] from their minimum, so air weighs
    nothing); then a similarity transform (and, with ``transform="affine"``, an affine one
    after it) is optimised on a pyramid (regular-step gradient descent, regular metric
    sampling: deterministic). The similarity default was chosen by a measurement on
    training-cohort subjects (BENCHMARKS.md, "Whole-scan segmentation"): the affine stage
    took 2.5x the time for a 0.4 mm smaller median error.

    Args:
        reference: from :func:`make_reference` / a model file.
        image: float32 ``(X, Y, Z)`` preprocessed query image (normalised as the support was).
        affine: ``(4, 4)`` its voxel-to-world matrix.
        transform: one of :data:`TRANSFORMS`.
        iterations: per pyramid level and stage, >= 1.
        threads: SimpleITK threads for this call (default: its own choice); the process-wide
            default is restored afterwards.

    Returns:
        A :class:`Registration`.

    Raises:
        ValueError: ``image`` not 3D, an unknown ``transform``, ``iterations < 1``, ``threads < 1``.
        RegistrationError: SimpleITK failed, or the result is implausible (volume ratio beyond
            1/4..4, or no mutual information left).
    """
    import SimpleITK as sitk

    img = np.asarray(image)
    if img.ndim != 3:
        raise ValueError(f"image must be (X, Y, Z), got shape {img.shape}")
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    if not np.isfinite(img).all() or float(img.max()) <= float(img.min()):
        raise RegistrationError("registration of the support to the query failed: the query image is constant or "
                                "not finite (nothing to align)")
    t0 = time.perf_counter()
    fixed = _sitk_image(reference.image, reference.affine)
    moving = _sitk_image(_unit_range(img), affine)
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    if threads is not None:  # SimpleITK's setting is process-wide: set for this call, restored after it
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    try:
        tx = sitk.CenteredTransformInitializer(fixed, moving, sitk.Similarity3DTransform(),
                                               sitk.CenteredTransformInitializerFilter.MOMENTS)
        tx, metric = _optimise(fixed, moving, tx, iterations, [4, 2], [2.0, 1.0])
        if transform == "affine":
            aff = sitk.AffineTransform(3)
            aff.SetCenter(tx.GetCenter())
            aff.SetMatrix(tx.GetMatrix())
            aff.SetTranslation(tx.GetTranslation())
            tx, metric = _optimise(fixed, moving, aff, iterations, [2, 1], [1.0, 0.0])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[-200:]
        raise RegistrationError(f"registration of the support to the query failed in SimpleITK ({detail})") from exc
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
    m = _matrix(tx)
    det = float(np.linalg.det(m[:3, :3]))
    if not np.isfinite(det) or not 1.0 / _MAX_VOLUME_RATIO <= det <= _MAX_VOLUME_RATIO or not metric <= _MAX_METRIC:
        raise RegistrationError(f"registration of the support to the query failed: volume ratio {det:.3g} "
                                f"(plausible 1/{_MAX_VOLUME_RATIO:g}..{_MAX_VOLUME_RATIO:g}), mutual information "
                                f"{-metric:.3f} (needs > {-_MAX_METRIC:g}); are they scans of the same body region?")
    return Registration(m, float(metric), det, time.perf_counter() - t0, transform)


def _optimise(fixed: Any, moving: Any, tx: Any, iterations: int, shrink: list[int],
              sigmas: list[float]) -> tuple[Any, float]:
    """Optimise ``tx`` in place; returns it and the final metric value."""
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    r.SetMetricSamplingStrategy(r.REGULAR)
    r.SetMetricSamplingPercentage(0.2, 1)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsRegularStepGradientDescent(learningRate=4.0, minStep=0.01, numberOfIterations=iterations,
                                               relaxationFactor=0.5)
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetShrinkFactorsPerLevel(shrink)
    r.SetSmoothingSigmasPerLevel(sigmas)
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    r.SetInitialTransform(tx, inPlace=True)
    r.Execute(fixed, moving)
    return tx, float(r.GetMetricValue())
