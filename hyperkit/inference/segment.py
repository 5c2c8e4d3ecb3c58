"""One-shot segmentation of NIfTI files: generate a U-Net from one labelled scan, apply it to others.

- :func:`generate_model`: hypernetwork checkpoint + one support scan and mask -> a standalone
  U-Net file (paper §3: the hypernetwork generates the decoder; §3 "Reference-based weight update" /
  Appendix A.1: one gradient step on the support).
- :func:`segment_scan` (also ``hyperkit.inference.segment(...)``) and :func:`segment_file`:
  U-Net file + a new whole scan -> a binary mask on the scan's own grid. By default the model
  file's support is registered to the scan and the U-Net runs only around the support's target
  mapped there (:func:`resolve_roi`, :func:`predict_roi`, :mod:`hyperkit.inference.localise`);
  optional post-processing (:func:`postprocess`) keeps the components in that region and fills holes.

Both preprocess exactly as training did (:mod:`hyperkit.data.preprocess`: RAS, isotropic
spacing, per-channel normalisation). The prediction is made on the resampled volume with
MONAI's sliding-window inference and mapped back to the input grid (:func:`to_input_grid`),
so the written mask has the input's shape and affine.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import SpatialResample
from scipy import ndimage

from hyperkit.data.layouts import CaseData
from hyperkit.data.nifti import (NIFTI_ENDINGS, is_nifti, load_header, read_image, read_label, same_geometry,
                                 spacing_of, strip_nifti)
from hyperkit.data.preprocess import DataConfig, ct_air_fraction, extract_patch, normalise_channel, resample_case
from hyperkit.data.tasks import Task, modality_of
from hyperkit.data.tasks import check_modality as check_modality_name
from hyperkit.errors import HyperkitError
from hyperkit.files import sha256_file
from hyperkit.inference.localise import (DEFAULT_MARGIN_MM, LocalisationError, ModalityMismatchError, NoOverlapError,
                                        Registration, RoiOutsideImageError, SupportReference, check_margin,
                                        check_modality, detect_modality, image_box, intensity_signature, intersect,
                                        make_reference, map_box, modality_mismatch, parse_roi, register, roi_windows)
from hyperkit.inference.model_file import META_KEYS, MODEL_KIND, file_kind, load_unet, save_unet
from hyperkit.training.device import check_device

__all__ = ["InputGrid", "box_voxels", "prepare_volume", "support_patch", "default_checkpoint", "generate_model",
           "to_input_grid", "Segmentation", "resolve_roi", "predict_roi", "postprocess", "segment_scan", "segment_file",
           "ROI_MODES"]

#: ``roi`` values besides an explicit box: ``auto`` (from the model's support) and ``none`` (whole scan)
ROI_MODES: tuple[str, ...] = ("auto", "none")
#: logit written where the U-Net did not run (certainly background)
_OUTSIDE_LOGIT = -50.0


@dataclass(frozen=True)
class InputGrid:
    """The voxel grid of the file a volume was read from.

    Attributes:
        affine: ``(4, 4)`` voxel-to-world (mm) matrix of the file.
        shape: its spatial shape ``(X, Y, Z)``.
        intensity: the raw intensities' :func:`~hyperkit.inference.localise.intensity_signature`
            (minimum, 0.5th percentile), for :func:`~hyperkit.inference.localise.check_modality`.
        channel: the channel name the volume was normalised as (``"auto"`` resolved to
            ``"CT"`` or ``"MRI"``).
        air_fraction: a CT's share of air voxels
            (:func:`~hyperkit.data.preprocess.ct_air_fraction`, what its z-score depends on);
            ``None`` for MRI.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    intensity: tuple[float, float] | None = None
    channel: str | None = None
    air_fraction: float | None = None


def _fmt_spacing(affine: np.ndarray) -> str:
    return "x".join(f"{v:g}" for v in np.round(spacing_of(affine), 4)) + " mm"


def _select_channel(image: np.ndarray, path: str | Path, channel_index: int | None) -> np.ndarray:
    """``(X, Y, Z)`` or ``(X, Y, Z, C)`` -> ``(X, Y, Z)``: the chosen channel."""
    n = 1 if image.ndim == 3 else image.shape[3]
    if channel_index is None:
        if n > 1:
            raise HyperkitError(f"{path}: 4D image with {n} channels (shape {image.shape}); "
                                f"choose one with --channel-index 0..{n - 1}")
        channel_index = 0
    if not 0 <= channel_index < n:
        raise HyperkitError(f"{path}: --channel-index {channel_index} out of range; the image has {n} "
                            f"channel(s) (shape {image.shape})")
    return image if image.ndim == 3 else image[..., channel_index]


def _target_mask(mask_path: str | Path, label: int | None, shape: tuple[int, ...], affine: np.ndarray,
                 image_path: str | Path) -> np.ndarray:
    """uint8 ``(X, Y, Z)`` in {0, 1}: the voxels of ``mask_path`` that are the target (``> 0``, or
    ``== label``), checked to lie on the image's grid and not to be empty. In a function of its
    own so that the full-size label map is freed before the scan is resampled."""
    lab, lab_affine = read_label(mask_path)
    if not same_geometry(shape, affine, lab.shape, lab_affine):
        raise HyperkitError(
            f"image and mask are on different grids: {image_path} has shape {shape[:3]}, spacing "
            f"{_fmt_spacing(affine)}; {mask_path} has shape {lab.shape}, spacing {_fmt_spacing(lab_affine)}"
            + ("" if lab.shape != shape[:3] else " (same shape, different affine)"))
    fg = lab > 0 if label is None else lab == label
    if not fg.any():
        values = [int(v) for v in np.unique(lab) if v != 0][:10]
        which = "no voxel > 0" if label is None else f"no voxel == {label}; values present: {values}"
        raise HyperkitError(f"{mask_path}: empty support mask ({which})")
    return fg.view(np.uint8)


def prepare_volume(image_path: str | Path, channel: str, data: DataConfig, mask_path: str | Path | None = None,
                   *, channel_index: int | None = None, label: int | None = None) -> tuple[CaseData, InputGrid]:
    """Read a scan (and optionally its mask) and preprocess it as in training.

    Reorients to RAS, resamples to ``data.spacing`` (MONAI ``Orientationd`` + ``Spacingd`` via
    :func:`~hyperkit.data.preprocess.resample_case`) and normalises the channel
    (:func:`~hyperkit.data.preprocess.normalise_channel`: CT window + z-score, MRI percentiles).

    Args:
        image_path: a 3D ``(X, Y, Z)`` or 4D ``(X, Y, Z, C)`` NIfTI image.
        channel: the channel name deciding the normalisation (``"CT"``: CT, anything else: MRI);
            ``"auto"``: CT or MRI as the raw intensities say
            (:func:`~hyperkit.inference.localise.detect_modality`).
        data: the profile's data section.
        mask_path: a label map on the image's grid; voxels ``> 0`` (or ``== label``) are the target.
        channel_index: the channel of a 4D image (required there; must be 0 or ``None`` for 3D).
        label: the label value that is the target (default: every value > 0).

    Returns:
        ``(case, grid)``: the case on the RAS grid at ``data.spacing`` with image float32
        ``(1, X', Y', Z')`` normalised and label int32 ``(X', Y', Z')`` in {0, 1} (all zero without
        a mask); and the input file's grid.

    Raises:
        DataError: a missing or unreadable file.
        HyperkitError: a 4D image without ``channel_index``, a mask on another grid, an
            empty support mask, or ``label`` without a mask.
    """
    if label is not None and label < 1:
        raise HyperkitError(f"--label {label}: the target label value must be >= 1 (0 is the background)")
    if label is not None and mask_path is None:
        raise HyperkitError(f"--label {label} selects a value of the mask, but no mask is given")
    raw, affine = read_image(image_path)
    x = _select_channel(raw, image_path, channel_index)
    signature = intensity_signature(x)
    if channel == "auto":
        channel = detect_modality(signature)[0]
    # without a mask the zeros are never written, so no memory is touched
    target = (np.zeros(x.shape, dtype=np.uint8) if mask_path is None
              else _target_mask(mask_path, label, x.shape, affine, image_path))
    present = frozenset() if mask_path is None else frozenset({1})  # _target_mask refuses an empty mask
    case = CaseData(strip_nifti(Path(image_path).name), x[None], target, np.asarray(affine, dtype=np.float64),
                    spacing_of(affine), present)
    air = ct_air_fraction(x) if modality_of(channel) == "CT" else None
    res = resample_case(case, data.spacing, with_label=mask_path is not None)
    image = normalise_channel(res.image[0], channel, data)[None]
    out = CaseData(case.case_id, image, res.label, res.affine, res.spacing, case.present_before_resampling)
    shape = tuple(int(s) for s in x.shape[:3])
    grid = InputGrid(np.asarray(affine, dtype=np.float64), shape, signature, channel, air)  # type: ignore[arg-type]
    return out, grid


def support_patch(case: CaseData, data: DataConfig, channel: str = "CT") -> tuple[torch.Tensor, torch.Tensor]:
    """The support pair: a cube of side ``S = data.patch_size`` centred on the target.

    Args:
        case: from :func:`prepare_volume` with a mask (image ``(1, X, Y, Z)``, label in {0, 1}).
        data: the profile's data section.
        channel: the channel name (recorded in the task only).

    Returns:
        ``(image, mask)``, float32 tensors ``(1, 1, S, S, S)``; the mask is in {0, 1}.

    Raises:
        HyperkitError: the target vanished when resampled to ``data.spacing``.
    """
    task = Task("file/support/target@" + channel, "file", "support", "target", 1, channel, 0, modality_of(channel))
    patch = extract_patch(case, task, data.patch_size)
    if patch is None:
        raise HyperkitError(f"{case.case_id}: the support mask vanished when resampled to {data.spacing:g} mm "
                            "(the structure is smaller than one voxel of the profile's grid)")
    if patch.coverage < 1.0:
        warnings.warn(f"{case.case_id}: the target is larger than the {data.patch_size}^3 patch; "
                      f"the support covers {100 * patch.coverage:.0f} % of it", stacklevel=2)
    image = torch.from_numpy(patch.image)[None]
    mask = torch.from_numpy(patch.mask.astype(np.float32))[None]
    return image, mask


def _check_output(out: str | Path, inputs: dict[str, str | Path | None], *, nifti: bool = False,
                  beside: tuple[Path, ...] = (), ours: tuple[Callable[[Path], bool], str] | None = None) -> Path:
    """``out`` as a path, refused before any work when it cannot be the file to write.

    Args:
        out: the ``--out`` given.
        inputs: what the command reads, by name (``{"image": ..., "model": ...}``; ``None`` ignored).
        nifti: ``out`` must end in ``.nii`` or ``.nii.gz``.
        beside: files written along with it (a sidecar), checked against ``inputs`` too.
        ours: ``(test, what)``: an existing ``out`` is replaced only when ``test(out)`` says the command
            wrote it (``what`` names such a file); a checkpoint, a results table or a label map is kept.

    Raises:
        HyperkitError: ``out`` (or a file beside it) is a folder, ``out`` lacks the NIfTI ending, it (or a file
            beside it) is one of ``inputs``: writing would destroy an input, or an existing ``out`` that ``ours``
            does not recognise.
    """
    p = Path(out)
    if p.is_dir():
        raise HyperkitError(f"--out {p} is a folder; give the path of the file to write")
    if nifti and not is_nifti(p):
        raise HyperkitError(f"--out {p}: must end in {' or '.join(NIFTI_ENDINGS)} (the mask is written as NIfTI)")
    for b in beside:
        if b.is_dir():
            raise HyperkitError(f"--out {p} would write {b}, which is a folder; choose another --out")
    for target in (p, *beside):
        for name, src in inputs.items():
            if src is not None and target.exists() and Path(src).exists() and os.path.samefile(target, src):
                what = "is" if target == p else f"would write {target}, which is"
                raise HyperkitError(f"--out {p} {what} the {name} it reads ({src}); choose another --out")
    if ours is not None and p.is_file() and not ours[0](p):
        raise HyperkitError(f"--out {p} exists and is not {ours[1]}; it is kept: choose another --out, or delete "
                            "it first")
    return p


def _is_segment_sidecar(path: Path) -> bool:
    """Whether ``path`` is the record ``hyperkit segment`` writes beside a mask (so the mask may be replaced)."""
    import json

    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and {"output", "model"} <= set(rec)


def default_checkpoint(profile: str | Path | None = None) -> Path:
    """The hypernetwork ``hyperkit generate`` uses without ``--checkpoint``: the kit's shipped
    reference checkpoint (:func:`~hyperkit.training.reference.reference_checkpoint`) of
    ``profile`` when that is a built-in profile name, else of ``quick``.

    Raises:
        HyperkitError: the kit has no such file (not shipped for that profile, or missing).
    """
    from hyperkit.config import PROFILES
    from hyperkit.training import reference

    name = str(profile) if profile is not None and str(profile) in PROFILES else "quick"
    try:
        return reference.reference_checkpoint(name)
    except HyperkitError as exc:
        raise HyperkitError(f"no --checkpoint given, and the kit's reference checkpoint of profile {name!r} is "
                            f"missing ({reference.REFERENCE_DIR / f'{name}.pt'}); pass --checkpoint with a "
                            f"training run's best.pt (hyperkit train --profile {name})") from exc


#: a CT support with more air than this (:func:`~hyperkit.data.preprocess.ct_air_fraction`) makes
#: :func:`generate_model` warn. The phantom CTs the hypernetworks train on are 46-67 % air; padding
#: five phantom liver supports with air to 70 / 80 / 90 / 95 % lowered the liver Dice of the generated
#: U-Nets by 0.04 / 0.06 / 0.11 / 0.23 (the default quick model) and 0.05 / 0.06 / 0.40 / 0.49 (the
#: reference checkpoint) on average (``benchmarks/support_air.py``; BENCHMARKS.md, "The support's
#: field of view"), because the CT z-score runs over the whole scan.
SUPPORT_AIR_WARN = 0.70


def _warn_air(image: str | Path, air: float | None) -> None:
    """Warn about a CT support whose field of view is mostly air (:data:`SUPPORT_AIR_WARN`)."""
    if air is not None and air > SUPPORT_AIR_WARN:
        warnings.warn(f"{image}: the support scan is {100 * air:.0f} % air (the phantom CTs the hypernetwork "
                      "trained on: 46-67 %); CT is z-scored over the whole scan, so a field of view far larger "
                      "than the body makes a worse model (on phantom livers the Dice fell by 0.04-0.06 at 70-80 % "
                      "air, by 0.11-0.49 at 90-95 %): crop the support to the body first", stacklevel=3)


def generate_model(checkpoint: str | Path | None, image: str | Path, mask: str | Path, out: str | Path, *,
                   profile: str | None = None, modality: str = "auto", channel_index: int | None = None,
                   label: int | None = None, adapt: bool | None = None, adapt_lr: float | None = None,
                   task: str | None = None) -> Path:
    """Generate a standalone U-Net from one labelled scan and save it (``hyperkit generate``).

    The hypernetwork (eval mode, deterministic sampling) generates the U-Net from the support
    patch; the U-Net then takes the paper's gradient step on the support (A.1) as the
    protocol says: ``evaluate.adapt`` and ``evaluate.adapt_lr`` from
    :func:`~hyperkit.config.protocol_for`, the same values ``hyperkit evaluate``
    uses, unless ``adapt`` / ``adapt_lr`` are given. The same inputs give the same file weights.

    Args:
        checkpoint: a training run's ``best.pt`` (or ``last.pt``); ``None``: the kit's reference
            checkpoint (:func:`default_checkpoint`).
        image: the support scan (3D, or 4D with ``channel_index``).
        mask: its label map on the same grid.
        out: the model file to write (not a folder, and none of the files it reads).
        profile: when given, the checkpoint must have been trained with this profile, and its
            ``evaluate`` section is the protocol (default:
            :func:`~hyperkit.config.protocol_for`'s order).
        modality: ``"CT"`` or ``"MRI"`` (decides the intensity normalisation), or ``"auto"``
            (case and spaces ignored, as for the modalities):
            the one the support's raw intensities show
            (:func:`~hyperkit.inference.localise.detect_modality`; CT when they show neither).
        channel_index: channel of a 4D scan.
        label: the label value that is the target (default: every value > 0).
        adapt: take the support gradient step (default: the protocol's ``evaluate.adapt``).
        adapt_lr: its learning rate (default: the protocol's ``evaluate.adapt_lr``).
        task: an optional name of the target, stored in the file.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: no checkpoint at ``checkpoint``.
        HyperkitError: unreadable files, a model file given as checkpoint, grid mismatch, empty mask,
            no ``checkpoint`` and no reference checkpoint, an ``out`` that is a folder or an input file,
            ``adapt_lr`` where no gradient step is taken.
        ConfigError: the checkpoint was trained with another profile than ``profile``, or its
            protocol cannot be found (no recorded ``evaluate`` section and its profile is gone).
    """
    from hyperkit.config import protocol_for
    from hyperkit.model.adapt import gradient_step, segmentation_loss
    from hyperkit.training.checkpoint import load_hypernet

    modality = "auto" if str(modality).strip().lower() == "auto" else check_modality_name(modality, "--modality")
    torch.set_flush_denormal(True)  # as `hyperkit evaluate`: denormal floats slow CPU convolutions 10-100x
    if checkpoint is None:
        checkpoint = default_checkpoint(profile)
    out = _check_output(out, {"checkpoint": checkpoint, "image": image, "mask": mask},
                        ours=(lambda p: file_kind(p) == MODEL_KIND, "a model file of `hyperkit generate`"))
    for scan in (image, mask):  # a missing or non-NIfTI input is named before the checkpoint loads
        load_header(scan)
    try:
        hyper, cfg = load_hypernet(checkpoint, profile)
    except HyperkitError as exc:
        if file_kind(checkpoint) == MODEL_KIND:  # the file's recorded kind, not the error's wording
            raise HyperkitError(f"{checkpoint}: this is a U-Net model file made by `hyperkit generate`; "
                                "--checkpoint needs a hypernetwork checkpoint (a training run's best.pt)") from exc
        raise
    protocol = protocol_for(cfg, profile, adapt=adapt, adapt_lr=adapt_lr)
    lr = protocol.step_lr("hyper_unet")
    if adapt_lr is not None and lr is None:
        raise HyperkitError(f"--adapt-lr {adapt_lr} would be ignored: no gradient step is taken (--no-adapt, or "
                            "the protocol's evaluate.adapt is false); drop one of them")
    data = DataConfig.from_config(cfg["data"])
    case, grid = prepare_volume(image, modality, data, mask, channel_index=channel_index, label=label)
    how = "given (--modality)" if modality != "auto" else detect_modality(grid.intensity)[1]  # type: ignore[arg-type]
    modality = str(grid.channel)  # "auto" resolved
    if grid.intensity is not None:  # an MRI support given as --modality CT (or the reverse)
        mismatch = modality_mismatch(grid.intensity, modality)
        if mismatch is not None:  # here the fix is the flag, not another scan
            found, why = mismatch
            raise ModalityMismatchError(f"{image}: read as --modality {modality}, but the support looks like "
                                        f"{found} ({why}); pass --modality {found}", modality, found)
    _warn_air(image, grid.air_fraction)
    img, msk = support_patch(case, data, modality)
    unet = hyper.generate(img, msk)
    adaptation: dict[str, Any] = {"adapted": lr is not None, "lr": protocol.adapt_lr}
    if lr is not None:
        before, after = gradient_step(unet, img[0], msk[0], lr=lr, bce_weight=protocol.step_bce_weight)
    else:
        with torch.no_grad():
            before = after = float(segmentation_loss(unet(img), msk, protocol.step_bce_weight))
    adaptation.update(support_loss_before=float(before), support_loss_after=float(after))
    # the inputs by content as well as by path: a path names a file that may be replaced later
    source = {"checkpoint": Path(checkpoint), "image": Path(image), "mask": Path(mask),
              "checkpoint_sha256": sha256_file(checkpoint), "image_sha256": sha256_file(image),
              "mask_sha256": sha256_file(mask),
              "label": label, "channel_index": channel_index, "modality": how,
              "air_fraction": None if grid.air_fraction is None else round(grid.air_fraction, 4)}
    reference = make_reference(case.image[0], case.affine, case.label, modality)
    return save_unet(unet.eval(), out, data=data, channel=modality, modality=modality,
                     profile=str(cfg.get("name", profile or "unknown")), task=task, source=source,
                     adaptation=adaptation, support=reference.to_dict())


#: output voxels resampled per call of :func:`to_input_grid` (its float64 sampling grid costs
#: about 50 bytes a voxel: a slab of 2**22 voxels keeps that near 0.2 GB on a full CT)
SLAB_VOXELS = 1 << 22


def to_input_grid(logits: np.ndarray | torch.Tensor, resampled_affine: np.ndarray, input_affine: np.ndarray,
                  input_shape: tuple[int, int, int], slab_voxels: int = SLAB_VOXELS) -> np.ndarray:
    """Map a volume from the resampled RAS grid back to the input file's grid (trilinear).

    MONAI ``SpatialResample`` with ``dst_affine=input_affine`` handles the reorientation
    (flips, permutations) and the spacing change; points just outside the resampled volume
    take the nearest border value. The input grid is filled in slabs of whole ``Z`` slices
    (each with its own shifted ``dst_affine``), so the sampling grid never spans the whole
    input: a 512 x 512 x 400 CT needs about 0.6 GB here instead of 5.5 GB (BENCHMARKS,
    "Whole-scan segmentation").

    Args:
        logits: ``(X', Y', Z')`` or ``(1, X', Y', Z')`` float values on the resampled grid.
        resampled_affine: ``(4, 4)`` voxel-to-world matrix of that grid.
        input_affine: ``(4, 4)`` voxel-to-world matrix of the input file.
        input_shape: the input's spatial shape ``(X, Y, Z)``.
        slab_voxels: at most this many output voxels per resampling call (at least one slice).

    Returns:
        float32 ``(X, Y, Z)`` on the input grid.

    Raises:
        ValueError: bad ``slab_voxels``, logits shape, ``input_shape`` (not 3 positive sides) or an
            affine that is not an invertible ``(4, 4)`` matrix (MONAI would read a ``(3, 3)`` one as a
            2-D transform and resample wrongly without a word).
    """
    if slab_voxels < 1:
        raise ValueError(f"slab_voxels must be >= 1, got {slab_voxels}")
    for name, a in (("resampled_affine", resampled_affine), ("input_affine", input_affine)):
        m = np.asarray(a, dtype=np.float64)
        if m.shape != (4, 4) or not np.isfinite(m).all() or abs(np.linalg.det(m[:3, :3])) < 1e-12:
            raise ValueError(f"{name} must be an invertible (4, 4) voxel-to-world matrix, got shape {m.shape}"
                             + (f": {m.tolist()}" if m.size <= 16 else ""))
    t = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).float()
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4 or t.shape[0] != 1:
        raise ValueError(f"logits must be (X, Y, Z) or (1, X, Y, Z), got shape {tuple(t.shape)}")
    if len(input_shape) != 3 or min(int(v) for v in input_shape) < 1:
        raise ValueError(f"input_shape must have 3 positive sides, got {input_shape}")
    src = MetaTensor(t.detach().cpu(), affine=torch.as_tensor(np.asarray(resampled_affine), dtype=torch.float64))
    shape = tuple(int(s) for s in input_shape)
    dst = np.asarray(input_affine, dtype=np.float64)
    arr = np.empty(shape, dtype=np.float32)
    step = max(1, slab_voxels // max(1, shape[0] * shape[1]))
    resample = SpatialResample(mode="bilinear", padding_mode="border", dtype=np.float64)
    for z0 in range(0, shape[2], step):
        z1 = min(shape[2], z0 + step)
        shift = np.eye(4)
        shift[2, 3] = z0  # voxel (i, j, k) of the slab is voxel (i, j, z0 + k) of the input
        out = resample(src, dst_affine=torch.as_tensor(dst @ shift), spatial_size=(shape[0], shape[1], z1 - z0))
        slab = np.asarray(out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out, dtype=np.float32)[0]
        if slab.shape != (shape[0], shape[1], z1 - z0):
            raise RuntimeError(f"resampling back gave shape {slab.shape}, expected {(shape[0], shape[1], z1 - z0)}")
        arr[..., z0:z1] = slab
    return arr


@dataclass
class Segmentation:
    """A segmented scan (what :func:`segment_scan` returns; :func:`segment_file` writes it).

    Attributes:
        mask: uint8 ``(X, Y, Z)`` in {0, 1} on the input scan's grid.
        affine: ``(4, 4)`` the input's voxel-to-world matrix.
        roi_mm: ``(2, 3)`` world box (mm) the U-Net was aimed at, or ``None`` (whole scan).
        roi_source: ``"auto"`` (registered support), ``"user"`` (given) or ``"none"``.
        registration: the support-to-query registration (``roi_source == "auto"``), else ``None``.
        windows: ``(start, end)`` voxel region of the preprocessed scan the U-Net ran on (``None``: all of it).
        postprocessing: what was applied (``keep``, ``fill_holes``) and the voxels it removed or added.
        info: ``voxels``, ``volume_ml``, ``input_shape``, ``resampled_shape``, ``seconds`` (and
            ``registration_seconds``).
    """

    mask: np.ndarray
    affine: np.ndarray
    roi_mm: np.ndarray | None
    roi_source: str
    registration: Registration | None
    windows: tuple[np.ndarray, np.ndarray] | None
    postprocessing: dict[str, Any]
    info: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary (the sidecar file of ``hyperkit segment``)."""
        reg = self.registration
        return {**self.info,
                "roi": {"source": self.roi_source,
                        "box_mm": None if self.roi_mm is None else np.round(self.roi_mm, 2).tolist()},
                "registration": None if reg is None else {
                    "library": "SimpleITK", "transform": reg.transform, "metric": "Mattes mutual information",
                    "final_metric": round(reg.metric, 5), "volume_ratio": round(reg.volume_ratio, 4),
                    "seconds": round(reg.seconds, 3), "support_to_query": np.round(reg.matrix, 5).tolist()},
                "windows": None if self.windows is None else [np.asarray(w).tolist() for w in self.windows],
                "postprocessing": self.postprocessing}


def _parse_roi_arg(roi: Any) -> str | np.ndarray | None:
    """``None``/``"auto"``/``"none"``/text/box -> ``None``, a mode or a ``(2, 3)`` box."""
    if roi is None:
        return None
    if isinstance(roi, str):
        text = roi.strip().lower()
        return text if text in ROI_MODES else parse_roi(roi)
    box = np.asarray(roi, dtype=np.float64)
    if box.shape == (6,):
        box = box.reshape(2, 3)
    if box.shape != (2, 3) or not np.all(np.isfinite(box)) or np.any(box[0] >= box[1]):
        raise ValueError(f"roi must be 'auto', 'none', 'x0,y0,z0,x1,y1,z1' or a (2, 3) box with low < high, "
                         f"got {np.asarray(roi).tolist()}")
    return box


def resolve_roi(roi: Any, meta: dict[str, Any], volume: np.ndarray, affine: np.ndarray, grid: InputGrid, *,
                margin_mm: float = DEFAULT_MARGIN_MM, what: str = "query",
                ) -> tuple[np.ndarray | None, str, Registration | None]:
    """Where to run the U-Net in a preprocessed scan.

    Args:
        roi: ``"auto"`` (register the model's support and map its target's box, grown by
            ``margin_mm``), ``"none"`` (the whole scan), a box ``"x0,y0,z0,x1,y1,z1"`` / ``(2, 3)``
            in world mm of the input image, or ``None``: ``"auto"`` when the model file carries
            its support (``meta["support"]``), else ``"none"``.
        meta: the model file's metadata (:func:`~hyperkit.inference.model_file.load_unet`).
        volume: float32 ``(X', Y', Z')`` the preprocessed scan.
        affine: ``(4, 4)`` its voxel-to-world matrix.
        grid: the input file's grid (its world box bounds a given ROI).
        margin_mm: margin around the support's mask box (``auto``), >= 0.
        what: how messages name the scan.

    Returns:
        ``(box_mm or None, source, registration or None)``; the box is clipped to the image.

    Raises:
        ValueError: a malformed ``roi`` or negative margin.
        HyperkitError: ``roi="auto"`` with a model file that has no support reference.
        ModalityMismatchError, RegistrationError, NoOverlapError, RoiOutsideImageError: see
            :mod:`hyperkit.inference.localise`.
    """
    check_margin(margin_mm)
    mode = _parse_roi_arg(roi)
    has_support = isinstance(meta.get("support"), dict)
    if mode is None:
        mode = "auto" if has_support else "none"
    if isinstance(mode, str) and mode == "none":
        return None, "none", None
    extent = image_box(grid.affine, grid.shape)
    if isinstance(mode, str):  # auto
        if not has_support:
            raise HyperkitError(f"--roi auto: the model file carries no support reference (made before "
                                "localisation existed, or not by `hyperkit generate`); regenerate it, or pass "
                                "--roi none or --roi x0,y0,z0,x1,y1,z1 (mm)")
        ref = SupportReference.from_dict(meta["support"])
        if grid.intensity is not None:
            check_modality(grid.intensity, ref.modality, what)
        reg = register(ref, volume, affine)
        mapped = map_box(ref.box_mm, reg.matrix, margin_mm)
        box = intersect(mapped, extent)
        if box is None:
            raise NoOverlapError(f"{what}: after registration the support's target region "
                                 f"{_fmt_box(mapped)} lies outside the scan {_fmt_box(extent)}; the scan does not "
                                 "show the body region of the support")
        return box, "auto", reg
    box = intersect(mode, extent)
    if box is None:
        raise RoiOutsideImageError(f"{what}: --roi {_fmt_box(mode)} lies outside the image, which covers "
                                   f"{_fmt_box(extent)} (world mm, RAS)")
    return box, "user", None


def _fmt_box(box: np.ndarray) -> str:
    b = np.asarray(box)
    return ",".join(f"{v:.1f}" for v in np.concatenate([b[0], b[1]]))


def predict_roi(unet: torch.nn.Module, volume: np.ndarray, affine: np.ndarray, box_mm: np.ndarray | None,
                patch_size: int, *, overlap: float = 0.25, sw_batch_size: int = 1,
                device: str | torch.device = "cpu") -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """U-Net logits on a preprocessed scan, computed only on the region around ``box_mm``.

    The region is :func:`~hyperkit.inference.localise.roi_windows` (the box grown to at least
    one patch per axis, centred on the box); it is cut from the scan (padded with the scan's
    minimum where it reaches outside, as training patches were) and segmented with MONAI's
    sliding-window inference (one window when the box fits a patch). Voxels outside the
    region get a certain-background logit.

    Args:
        unet: the U-Net (eval mode).
        volume: float32 ``(1, X', Y', Z')`` or ``(X', Y', Z')`` preprocessed scan.
        affine: ``(4, 4)`` its voxel-to-world matrix.
        box_mm: ``(2, 3)`` world box, or ``None`` for the whole scan.
        patch_size: the U-Net's patch side ``S``.
        overlap, sw_batch_size, device: as MONAI ``sliding_window_inference``.

    Returns:
        ``(logits, windows)``: float32 ``(X', Y', Z')`` and the region ``(start, end)`` (``None``
        for the whole scan).
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim == 4:
        vol = vol[0]
    if vol.ndim != 3:
        raise ValueError(f"volume must be (X, Y, Z) or (1, X, Y, Z), got shape {np.asarray(volume).shape}")
    dev = torch.device(device)
    torch.set_flush_denormal(True)  # as `hyperkit evaluate`: denormal floats slow CPU convolutions 10-100x

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x))[None, None]
        with torch.no_grad():
            out = sliding_window_inference(t, roi_size=(patch_size,) * 3, sw_batch_size=sw_batch_size,
                                           predictor=unet, overlap=overlap, mode="gaussian",
                                           cval=float(x.min()),  # pad as training patches: the minimum
                                           sw_device=dev, device="cpu")
        assert isinstance(out, torch.Tensor)
        return out[0, 0].numpy().astype(np.float32)

    if box_mm is None:
        return run(vol), None
    start, end = roi_windows(box_mm, affine, vol.shape, patch_size)
    shape = np.asarray(vol.shape)
    lo, hi = np.maximum(start, 0), np.minimum(end, shape)
    region = np.full(tuple(end - start), float(vol.min()), dtype=np.float32)
    src = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    dst = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start))
    region[dst] = vol[src]
    logits = np.full(vol.shape, _OUTSIDE_LOGIT, dtype=np.float32)
    logits[src] = run(region)[dst]
    return logits, (start, end)


def postprocess(mask: np.ndarray, *, keep: str = "all", roi_voxels: np.ndarray | None = None,
                fill_holes: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Clean a binary mask as nnU-Net / TotalSegmentator users expect (scipy.ndimage).

    Args:
        mask: ``(X, Y, Z)`` binary.
        keep: ``"all"``; ``"roi"``: the face-connected components that overlap ``roi_voxels``;
            ``"largest"``: the largest component.
        roi_voxels: ``(X, Y, Z)`` bool, the mapped region (required by ``keep="roi"``).
        fill_holes: fill enclosed holes (``ndimage.binary_fill_holes``), after ``keep``.

    Returns:
        ``(mask uint8, record)``; the record names the steps and the voxels each changed.

    Raises:
        ValueError: an unknown ``keep``, or ``keep="roi"`` without a region of the mask's shape.
    """
    m = np.asarray(mask) > 0
    if keep not in ("all", "roi", "largest"):
        raise ValueError(f"keep must be 'all', 'roi' or 'largest', got {keep!r}")
    rec: dict[str, Any] = {"keep": keep, "fill_holes": bool(fill_holes)}
    if keep != "all" and m.any():
        regions, n = ndimage.label(m)
        if keep == "largest":
            kept = [int(np.bincount(regions.ravel())[1:].argmax()) + 1]
        else:
            if roi_voxels is None or np.asarray(roi_voxels).shape != m.shape:
                raise ValueError(f"keep='roi' needs roi_voxels of shape {m.shape}, got "
                                 f"{None if roi_voxels is None else np.asarray(roi_voxels).shape}")
            kept = [int(v) for v in np.unique(regions[np.asarray(roi_voxels, dtype=bool)]) if v != 0]
        new = np.isin(regions, kept)
        rec.update(components=int(n), kept_components=len(kept), voxels_removed=int(m.sum() - new.sum()))
        m = new
    if fill_holes and m.any():
        filled = ndimage.binary_fill_holes(m)
        rec["voxels_filled"] = int(filled.sum() - m.sum())
        m = filled
    return m.astype(np.uint8), rec


def box_voxels(box_mm: np.ndarray, affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """bool ``shape`` ``(X, Y, Z)``: the voxels whose centre lies in the world box (any grid orientation).

    Args:
        box_mm: ``(2, 3)`` lower and upper world corners (mm).
        affine: ``(4, 4)`` voxel-to-world matrix of the grid.
        shape: the grid's spatial shape.

    One world axis at a time, by broadcasting the three index vectors: one float32 volume at a
    time instead of a ``(X, Y, Z, 3)`` coordinate grid and its product (24 bytes a voxel each).
    """
    box, a = np.asarray(box_mm, dtype=np.float32), np.asarray(affine, dtype=np.float32)
    if box.shape != (2, 3) or a.shape != (4, 4) or len(shape) != 3:
        raise ValueError(f"box_mm must be (2, 3), affine (4, 4) and shape 3 sides, got {box.shape}, {a.shape}, "
                         f"{tuple(shape)}")
    idx = [np.arange(n, dtype=np.float32).reshape([-1 if d == i else 1 for d in range(3)]) for i, n in enumerate(shape)]
    inside = np.ones(tuple(int(n) for n in shape), dtype=bool)
    for w in range(3):
        world = idx[0] * a[w, 0] + idx[1] * a[w, 1] + idx[2] * a[w, 2] + a[w, 3]
        inside &= (world >= box[0, w]) & (world <= box[1, w])
    return inside


def _load_model(model: Any, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    if isinstance(model, (str, Path)):
        return load_unet(model, map_location=device)
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], dict):
        missing = [k for k in META_KEYS if k not in model[1]]
        if missing:
            raise ValueError(f"the model's metadata lacks key(s) {missing} (pass the pair load_unet returns)")
        modality = check_modality_name(model[1]["modality"], "the model's metadata modality")
        return model[0].to(device).eval(), {**model[1], "modality": modality}
    raise ValueError(f"model must be a model file path or the (unet, meta) pair of load_unet, got "
                     f"{type(model).__name__}")


def segment_scan(model: Any, image: str | Path, *, roi: Any = None, margin_mm: float = DEFAULT_MARGIN_MM,
                 channel_index: int | None = None, overlap: float = 0.25, sw_batch_size: int = 1,
                 device: str | torch.device = "cpu", threshold: float = 0.0, keep: str = "all",
                 fill_holes: bool = False) -> Segmentation:
    """Segment a whole scan with a generated U-Net, looking where the support says (Python API).

    Also reachable as ``hyperkit.inference.segment(model, image, roi=...)``. Steps: the
    training preprocessing (:func:`prepare_volume`); the region (:func:`resolve_roi`: by
    default the model's support registered to the scan with SimpleITK and its target box
    mapped, grown by ``margin_mm``); the U-Net on patches there (:func:`predict_roi`); the
    logits mapped back to the input grid (:func:`to_input_grid`), thresholded, and
    optionally cleaned (:func:`postprocess`).

    Args:
        model: a model file from :func:`generate_model`, or the ``(unet, meta)`` of
            :func:`~hyperkit.inference.model_file.load_unet`.
        image: the scan (NIfTI, 3D, or 4D with ``channel_index``).
        roi: ``None`` (``"auto"`` when the model carries its support, else ``"none"``),
            ``"auto"``, ``"none"``, ``"x0,y0,z0,x1,y1,z1"`` or a ``(2, 3)`` box (world mm of the input).
        margin_mm: grown around the support's target box before mapping (``auto``).
        channel_index: channel of a 4D scan.
        overlap, sw_batch_size: sliding-window settings.
        device: where the U-Net runs.
        threshold: logit above which a voxel is foreground (0: probability 0.5).
        keep: ``"all"``, ``"roi"`` (components overlapping the region) or ``"largest"``.
        fill_holes: fill enclosed holes.

    Returns:
        A :class:`Segmentation` (mask ``(X, Y, Z)`` uint8 on the input grid).

    Raises:
        ValueError: bad arguments (the value is named: overlap, threshold, margin, device ...).
        FileNotFoundError, HyperkitError: unreadable model or scan.
        LocalisationError: modality mismatch, failed registration, no overlap, ROI outside the image.
    """
    t0 = time.perf_counter()
    if not 0 <= overlap < 1:
        raise HyperkitError(f"--overlap must be in [0, 1), got {overlap}")
    if sw_batch_size < 1:
        raise HyperkitError(f"--sw-batch-size must be >= 1, got {sw_batch_size}")
    if not np.isfinite(threshold):
        raise HyperkitError(f"--threshold must be a finite logit, got {threshold}")
    check_margin(margin_mm)
    if keep not in ("all", "roi", "largest"):
        raise ValueError(f"keep must be 'all', 'roi' or 'largest', got {keep!r}")
    dev = check_device(device)
    roi_arg = _parse_roi_arg(roi)  # malformed text fails before any work, and so does keep='roi' without a region
    if keep == "roi" and isinstance(roi_arg, str) and roi_arg == "none":
        raise ValueError("keep='roi' needs a region (roi 'auto' or a box), got roi 'none'")
    unet, meta = _load_model(model, dev)
    if keep == "roi" and roi_arg is None and not isinstance(meta.get("support"), dict):
        raise ValueError("keep='roi' needs a region: this model file carries no support, pass roi as a box")
    data = DataConfig.from_config(meta["data"])
    case, grid = prepare_volume(image, meta["channel"], data, channel_index=channel_index)
    if grid.intensity is not None:  # load_unet checked the file's modality
        check_modality(grid.intensity, meta["modality"], str(image))
    t_reg = time.perf_counter()
    box, source, reg = resolve_roi(roi_arg, meta, case.image[0], case.affine, grid, margin_mm=margin_mm,
                                   what=str(image))
    t_reg = time.perf_counter() - t_reg
    logits, windows = predict_roi(unet, case.image, case.affine, box, data.patch_size, overlap=overlap,
                                  sw_batch_size=sw_batch_size, device=dev)
    mapped = to_input_grid(logits, case.affine, grid.affine, grid.shape)
    pred = (mapped > threshold).astype(np.uint8)
    roi_vox = box_voxels(box, grid.affine, grid.shape) if keep == "roi" and box is not None else None
    pred, post = postprocess(pred, keep=keep, roi_voxels=roi_vox, fill_holes=fill_holes)
    voxels = int(pred.sum())
    info = {"voxels": voxels, "volume_ml": voxels * abs(float(np.linalg.det(grid.affine[:3, :3]))) / 1000.0,
            "input_shape": list(grid.shape), "resampled_shape": list(case.image.shape[1:]),
            "registration_seconds": round(t_reg, 3) if reg is not None else None,
            "seconds": time.perf_counter() - t0}
    return Segmentation(pred, grid.affine, box, source, reg, windows, post, info)


def segment_file(model_path: str | Path, image_path: str | Path, out_path: str | Path, *,
                 roi: Any = None, margin_mm: float = DEFAULT_MARGIN_MM, channel_index: int | None = None,
                 overlap: float = 0.25, sw_batch_size: int = 1, device: str | torch.device = "cpu",
                 threshold: float = 0.0, largest_component: bool = False, keep: str = "all",
                 fill_holes: bool = False) -> dict[str, Any]:
    """Segment a scan and write the mask and its sidecar JSON (``hyperkit segment``).

    :func:`segment_scan`, then the mask as NIfTI (uint8, the input's shape ``(X, Y, Z)`` and
    affine, a copy of its header) and ``<out stem>.json`` beside it (the ROI and where it came
    from, the registration, the windows, the post-processing, timings). Both are written to
    temporary files first and renamed, so a failure never leaves half an output; a mask already
    there is removed before the new record and mask land, so an interruption never leaves a mask
    beside another run's record.

    Args:
        model_path, image_path: as :func:`segment_scan`'s ``model`` and ``image``.
        out_path: the NIfTI mask to write, ending in ``.nii`` or ``.nii.gz`` (parent folders are created, an
            existing file is replaced, but never the model or the image).
        largest_component: the older spelling of ``keep="largest"``.
        roi, margin_mm, channel_index, overlap, sw_batch_size, device, threshold, keep, fill_holes:
            as :func:`segment_scan`.

    Returns:
        The sidecar record plus ``output`` and ``sidecar`` (paths), ``voxels``, ``volume_ml``,
        ``input_shape``, ``resampled_shape``, ``seconds``.

    Raises:
        As :func:`segment_scan`; HyperkitError: an ``out_path`` that is a folder, not NIfTI, or (it or its
        sidecar) an input file.
    """
    import json
    import threading

    from hyperkit.provenance import run_record

    out = Path(out_path)
    sidecar = out.with_name(strip_nifti(out.name) + ".json")
    _check_output(out, {"model": model_path, "image": image_path}, nifti=True, beside=(sidecar,),
                  ours=(lambda _: _is_segment_sidecar(sidecar),
                        f"a mask of `hyperkit segment` (with its record {sidecar.name})"))
    load_header(image_path)  # a missing or non-NIfTI scan is named before the model loads
    if largest_component:
        if keep not in ("all", "largest"):
            raise ValueError(f"--largest-component and keep={keep!r} exclude each other")
        keep = "largest"
    seg = segment_scan(model_path, image_path, roi=roi, margin_mm=margin_mm, channel_index=channel_index,
                       overlap=overlap, sw_batch_size=sw_batch_size, device=device, threshold=threshold,
                       keep=keep, fill_holes=fill_holes)
    src = load_header(image_path)
    header = src.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    out_img = nib.Nifti2Image(seg.mask, seg.affine, header=header) if isinstance(src, nib.Nifti2Image) \
        else nib.Nifti1Image(seg.mask, seg.affine, header=header)  # Nifti2Image subclasses Nifti1Image
    out_img.header["cal_min"], out_img.header["cal_max"] = 0, 1
    # what the mask depends on besides the two files: a rerun with these settings gives the same mask
    settings = {"roi": roi if roi is None or isinstance(roi, str) else np.asarray(roi).tolist(),
                "margin_mm": margin_mm, "channel_index": channel_index, "overlap": overlap,
                "sw_batch_size": sw_batch_size, "device": str(device), "threshold": threshold}
    rec = {"output": str(out), "sidecar": str(sidecar), "model": str(model_path),
           "model_sha256": sha256_file(model_path), "image": str(image_path), "settings": settings,
           **seg.record(),
           "provenance": {k: v for k, v in run_record().items()
                          if k in ("created", "versions", "commit", "command", "compute")}}
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if out.name.endswith(".gz") else ".nii"
    # per process and thread, as hyperkit.files.write_atomic's, and made with the umask's mode (mkstemp's were
    # 0600, and so were the mask and record renamed from them)
    tag = f"{os.getpid()}.{threading.get_ident()}"
    tmp_img, tmp_json = (str(out.parent / f".tmp-{tag}-{strip_nifti(out.name)}{end}") for end in (suffix, ".json"))
    try:
        nib.save(out_img, tmp_img)
        Path(tmp_json).write_text(json.dumps(rec, indent=2, default=str))
        # the old mask away first, the record next, the mask last: stopped between two of these steps, no mask
        # lies beside a record that does not describe it, nor a mask without its record (which the next run would
        # refuse to replace, as not a mask of segment)
        out.unlink(missing_ok=True)
        os.replace(tmp_json, sidecar)
        os.replace(tmp_img, out)
    finally:
        for t in (tmp_img, tmp_json):
            if os.path.exists(t):
                os.remove(t)
    return rec


class _CallableModule(type(sys.modules[__name__])):  # type: ignore[misc]
    """Lets ``hyperkit.inference.segment(model, image, roi=...)`` work although importing this
    module makes ``hyperkit.inference.segment`` the module itself: calling it calls :func:`segment_scan`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Segmentation:
        return segment_scan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
