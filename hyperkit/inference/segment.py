"""One-shot segmentation of NIfTI files: generate a U-Net from one labelled scan, apply it to others.

- :func:`generate_model`: hypernetwork checkpoint + one support scan and mask -> a standalone
  U-Net file (paper §3: the hypernetwork generates the decoder; §4 / A.1: one gradient step
  on the support).
- :func:`segment_file`: U-Net file + a new scan -> a binary mask on the scan's own grid.

Both preprocess exactly as training did (:mod:`hyperkit.data.preprocess`: RAS, isotropic
spacing, per-channel normalisation). The prediction is made on the resampled volume with
MONAI's sliding-window inference and mapped back to the input grid (:func:`to_input_grid`),
so the written mask has the input's shape and affine.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import SpatialResample
from scipy import ndimage

from hyperkit.data.layouts import CaseData
from hyperkit.data.nifti import load_header, read_image, read_label, same_geometry, spacing_of, strip_nifti
from hyperkit.data.preprocess import DataConfig, extract_patch, normalise_channel, resample_case
from hyperkit.data.tasks import Task, modality_of
from hyperkit.errors import HyperkitError
from hyperkit.inference.model_file import MODEL_KIND, load_unet, save_unet

__all__ = ["InputGrid", "prepare_volume", "support_patch", "default_checkpoint", "generate_model", "to_input_grid",
           "segment_file"]


@dataclass(frozen=True)
class InputGrid:
    """The voxel grid of the file a volume was read from.

    Attributes:
        affine: ``(4, 4)`` voxel-to-world (mm) matrix of the file.
        shape: its spatial shape ``(X, Y, Z)``.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]


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


def prepare_volume(image_path: str | Path, channel: str, data: DataConfig, mask_path: str | Path | None = None,
                   *, channel_index: int | None = None, label: int | None = None) -> tuple[CaseData, InputGrid]:
    """Read a scan (and optionally its mask) and preprocess it as in training.

    Reorients to RAS, resamples to ``data.spacing`` (MONAI ``Orientationd`` + ``Spacingd`` via
    :func:`~hyperkit.data.preprocess.resample_case`) and normalises the channel
    (:func:`~hyperkit.data.preprocess.normalise_channel`: CT window + z-score, MRI percentiles).

    Args:
        image_path: a 3D ``(X, Y, Z)`` or 4D ``(X, Y, Z, C)`` NIfTI image.
        channel: the channel name deciding the normalisation (``"CT"``: CT, anything else: MRI).
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
        HyperkitError: a 4D image without ``channel_index``, a mask on another grid, or an
            empty support mask.
    """
    raw, affine = read_image(image_path)
    x = _select_channel(raw, image_path, channel_index)
    target = np.zeros(x.shape, dtype=np.int32)
    if mask_path is not None:
        lab, lab_affine = read_label(mask_path)
        if not same_geometry(x.shape, affine, lab.shape, lab_affine):
            raise HyperkitError(
                f"image and mask are on different grids: {image_path} has shape {x.shape[:3]}, spacing "
                f"{_fmt_spacing(affine)}; {mask_path} has shape {lab.shape}, spacing {_fmt_spacing(lab_affine)}"
                + ("" if lab.shape != x.shape[:3] else " (same shape, different affine)"))
        fg = lab > 0 if label is None else lab == label
        if not fg.any():
            values = [int(v) for v in np.unique(lab) if v != 0][:10]
            which = "no voxel > 0" if label is None else f"no voxel == {label}; values present: {values}"
            raise HyperkitError(f"{mask_path}: empty support mask ({which})")
        target = fg.astype(np.int32)
    case = CaseData(strip_nifti(Path(image_path).name), x[None], target, np.asarray(affine, dtype=np.float64),
                    spacing_of(affine), frozenset({1}) if target.any() else frozenset())
    res = resample_case(case, data.spacing)
    image = normalise_channel(res.image[0], channel, data)[None]
    out = CaseData(case.case_id, image, res.label, res.affine, res.spacing, case.present_before_resampling)
    return out, InputGrid(np.asarray(affine, dtype=np.float64), tuple(int(s) for s in x.shape[:3]))  # type: ignore[arg-type]


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


def _modality(modality: str) -> str:
    m = str(modality).strip().upper()
    if m not in ("CT", "MRI"):
        raise HyperkitError(f"--modality must be CT or MRI, got {modality!r}")
    return m


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


def generate_model(checkpoint: str | Path | None, image: str | Path, mask: str | Path, out: str | Path, *,
                   profile: str | None = None, modality: str = "CT", channel_index: int | None = None,
                   label: int | None = None, adapt: bool | None = None, adapt_lr: float | None = None,
                   task: str | None = None) -> Path:
    """Generate a standalone U-Net from one labelled scan and save it (``hyperkit generate``).

    The hypernetwork (eval mode, deterministic sampling) generates the U-Net from the support
    patch; the U-Net then takes the paper's gradient step on the support (A.1) as the
    protocol says: ``evaluate.adapt`` and ``evaluate.adapt_lr`` from
    :func:`~hyperkit.evaluation.config.protocol_for`, the same values ``hyperkit evaluate``
    uses, unless ``adapt`` / ``adapt_lr`` are given. The same inputs give the same file weights.

    Args:
        checkpoint: a training run's ``best.pt`` (or ``last.pt``); ``None``: the kit's reference
            checkpoint (:func:`default_checkpoint`).
        image: the support scan (3D, or 4D with ``channel_index``).
        mask: its label map on the same grid.
        out: the model file to write.
        profile: when given, the checkpoint must have been trained with this profile, and its
            ``evaluate`` section is the protocol (default:
            :func:`~hyperkit.evaluation.config.protocol_for`'s order).
        modality: ``"CT"`` or ``"MRI"`` (decides the intensity normalisation).
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
            no ``checkpoint`` and no reference checkpoint.
        ConfigError: the checkpoint was trained with another profile than ``profile``, or its
            protocol cannot be found (no recorded ``evaluate`` section and its profile is gone).
    """
    from hyperkit.evaluation.config import protocol_for
    from hyperkit.model.adapt import gradient_step, segmentation_loss
    from hyperkit.training.checkpoint import load_hypernet

    modality = _modality(modality)
    if checkpoint is None:
        checkpoint = default_checkpoint(profile)
    try:
        hyper, cfg = load_hypernet(checkpoint, profile)
    except HyperkitError as exc:
        if MODEL_KIND in str(exc):
            raise HyperkitError(f"{checkpoint}: this is a U-Net model file made by `hyperkit generate`; "
                                "--checkpoint needs a hypernetwork checkpoint (a training run's best.pt)") from exc
        raise
    protocol = protocol_for(cfg, profile, adapt=adapt, adapt_lr=adapt_lr)
    lr = protocol.step_lr("hyper_unet")
    data = DataConfig.from_config(cfg["data"])
    case, _ = prepare_volume(image, modality, data, mask, channel_index=channel_index, label=label)
    img, msk = support_patch(case, data, modality)
    unet = hyper.generate(img, msk)
    adaptation: dict[str, Any] = {"adapted": lr is not None, "lr": protocol.adapt_lr}
    if lr is not None:
        before, after = gradient_step(unet, img[0], msk[0], lr=lr)
    else:
        with torch.no_grad():
            before = after = float(segmentation_loss(unet(img), msk))
    adaptation.update(support_loss_before=float(before), support_loss_after=float(after))
    source = {"checkpoint": Path(checkpoint), "image": Path(image), "mask": Path(mask),
              "label": label, "channel_index": channel_index}
    return save_unet(unet.eval(), out, data=data, channel=modality, modality=modality,
                     profile=str(cfg.get("name", profile or "unknown")), task=task, source=source,
                     adaptation=adaptation)


def to_input_grid(logits: np.ndarray | torch.Tensor, resampled_affine: np.ndarray, input_affine: np.ndarray,
                  input_shape: tuple[int, int, int]) -> np.ndarray:
    """Map a volume from the resampled RAS grid back to the input file's grid (trilinear).

    MONAI ``SpatialResample`` with ``dst_affine=input_affine`` handles the reorientation
    (flips, permutations) and the spacing change; points just outside the resampled volume
    take the nearest border value.

    Args:
        logits: ``(X', Y', Z')`` or ``(1, X', Y', Z')`` float values on the resampled grid.
        resampled_affine: ``(4, 4)`` voxel-to-world matrix of that grid.
        input_affine: ``(4, 4)`` voxel-to-world matrix of the input file.
        input_shape: the input's spatial shape ``(X, Y, Z)``.

    Returns:
        float32 ``(X, Y, Z)`` on the input grid.
    """
    t = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).float()
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4 or t.shape[0] != 1:
        raise ValueError(f"logits must be (X, Y, Z) or (1, X, Y, Z), got shape {tuple(t.shape)}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must have 3 sides, got {input_shape}")
    src = MetaTensor(t.detach().cpu(), affine=torch.as_tensor(np.asarray(resampled_affine), dtype=torch.float64))
    out = SpatialResample(mode="bilinear", padding_mode="border", dtype=np.float64)(
        src, dst_affine=torch.as_tensor(np.asarray(input_affine), dtype=torch.float64),
        spatial_size=tuple(int(s) for s in input_shape))
    arr = np.asarray(out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out, dtype=np.float32)[0]
    if arr.shape != tuple(input_shape):
        raise RuntimeError(f"resampling back gave shape {arr.shape}, expected {tuple(input_shape)}")
    return arr


def segment_file(model_path: str | Path, image_path: str | Path, out_path: str | Path, *,
                 channel_index: int | None = None, overlap: float = 0.25, sw_batch_size: int = 1,
                 device: str | torch.device = "cpu", threshold: float = 0.0,
                 largest_component: bool = False) -> dict[str, Any]:
    """Segment a scan with a model file and write the binary mask (``hyperkit segment``).

    The scan is preprocessed as the model's profile prescribes, segmented with MONAI
    ``sliding_window_inference`` (roi ``(S, S, S)``, Gaussian blending; volumes smaller than
    the roi are padded), and the logits ``(1, 1, X', Y', Z')`` are mapped back to the input grid
    (:func:`to_input_grid`) and thresholded.

    Args:
        model_path: a file from :func:`generate_model`.
        image_path: the scan (3D, or 4D with ``channel_index``).
        out_path: the NIfTI mask to write (uint8, the input's shape ``(X, Y, Z)`` and affine,
            a copy of its header); parent folders are created, an existing file is replaced.
        channel_index: channel of a 4D scan.
        overlap: sliding-window overlap in [0, 1).
        sw_batch_size: windows per forward pass.
        device: where the U-Net runs (``"cpu"``, ``"cuda"``); the volume stays on the CPU.
        threshold: logit above which a voxel is foreground (0: probability 0.5).
        largest_component: keep only the largest connected region; one-shot U-Nets
            trained on target-centred patches tend to fire on look-alike tissue elsewhere
            in a whole scan.

    Returns:
        A summary: ``output``, ``voxels``, ``volume_ml``, ``input_shape``, ``resampled_shape``,
        ``seconds``.

    Raises:
        FileNotFoundError, HyperkitError: as :func:`~hyperkit.inference.model_file.load_unet`;
        DataError: unreadable image; HyperkitError: a 4D image without ``channel_index``.
    """
    t0 = time.perf_counter()
    if not 0 <= overlap < 1:
        raise HyperkitError(f"--overlap must be in [0, 1), got {overlap}")
    if sw_batch_size < 1:
        raise HyperkitError(f"sw_batch_size must be >= 1, got {sw_batch_size}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise HyperkitError(f"--device {device!r} is not a torch device (use cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HyperkitError(f"--device {device!r}: CUDA is not available on this machine")
    unet, meta = load_unet(model_path, map_location=dev)
    data = DataConfig.from_config(meta["data"])
    case, grid = prepare_volume(image_path, meta["channel"], data, channel_index=channel_index)
    x = torch.from_numpy(np.ascontiguousarray(case.image))[None]  # (1, 1, X', Y', Z')
    with torch.no_grad():
        logits = sliding_window_inference(x, roi_size=(data.patch_size,) * 3, sw_batch_size=sw_batch_size,
                                          predictor=unet, overlap=overlap, mode="gaussian",
                                          sw_device=dev, device="cpu")
    assert isinstance(logits, torch.Tensor)
    mapped = to_input_grid(logits[0], case.affine, grid.affine, grid.shape)
    pred = (mapped > threshold).astype(np.uint8)
    if largest_component and pred.any():
        regions, _ = ndimage.label(pred)  # face-connected regions (MONAI's version needs scikit-image)
        pred = (regions == np.bincount(regions.ravel())[1:].argmax() + 1).astype(np.uint8)

    src = load_header(image_path)
    header = src.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    out_img = nib.Nifti1Image(pred, grid.affine, header=header) if isinstance(src, nib.Nifti1Image) \
        else nib.Nifti2Image(pred, grid.affine, header=header)
    out_img.header["cal_min"], out_img.header["cal_max"] = 0, 1
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(out_img, str(out))
    voxels = int(pred.sum())
    return {"output": str(out), "voxels": voxels,
            "volume_ml": voxels * float(np.prod(spacing_of(grid.affine))) / 1000.0,
            "input_shape": list(grid.shape), "resampled_shape": list(case.image.shape[1:]),
            "seconds": time.perf_counter() - t0}
