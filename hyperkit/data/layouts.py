"""Readers for the three on-disk layouts the kit serves (docs/design.md §5).

- MSD: ``TaskXX_Name/dataset.json`` (``modality``, ``labels``, ``training``),
  ``imagesTr/``, ``labelsTr/``; 4D images ``(X, Y, Z, C)`` for multi-channel tasks.
- TotalSegmentator: ``sXXXX/ct.nii.gz``, ``sXXXX/segmentations/<structure>.nii.gz``,
  ``meta.csv`` (``image_id``, ``split``; ``;`` or ``,`` separated).
- nnU-Net v2 raw: ``DatasetXXX_Name/dataset.json`` (``channel_names``, ``labels``,
  ``file_ending``), ``imagesTr/<case>_<XXXX><ending>``, ``labelsTr/<case><ending>``.

The layout is detected from the folder. Every problem raises :class:`DataError`
naming the file; nothing is skipped silently.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hyperkit.data.nifti import (NIFTI_ENDINGS, load_header, read_image, read_label, safe_join, same_geometry,
                                 spacing_of, strip_nifti)
from hyperkit.data.tasks import Task, modality_of, task_id
from hyperkit.errors import DataError

__all__ = ["Case", "CaseData", "Dataset", "MSDDataset", "TotalSegDataset", "NnUNetDataset", "detect_layout",
           "open_dataset", "discover_datasets", "default_data_root"]


@dataclass(frozen=True)
class Case:
    """Where one subject's files are.

    Attributes:
        case_id: file stem or subject id.
        images: one path (3D, or 4D with channels last) or one path per channel.
        label: integer label map (MSD, nnU-Net), or ``None`` for per-structure masks.
        structures: ``(name, path)`` pairs of binary masks (TotalSegmentator).
        split: the dataset's own split column (TotalSegmentator), if any.
    """

    case_id: str
    images: tuple[Path, ...]
    label: Path | None = None
    structures: tuple[tuple[str, Path], ...] = ()
    split: str | None = None

    @property
    def files(self) -> list[Path]:
        """Every file of the case: images, then the label map, then the structure masks."""
        return [*self.images, *([self.label] if self.label else []), *(p for _, p in self.structures)]


@dataclass
class CaseData:
    """A loaded case in the file's own grid.

    Attributes:
        case_id: the case's id.
        image: float32 ``(C, X, Y, Z)``.
        label: int32 ``(X, Y, Z)``, values are the dataset's label values.
        affine: ``(4, 4)`` voxel-to-world (mm) matrix shared by image and label.
        spacing: voxel size in mm.
        present_before_resampling: label values present in the file's own grid (set by
            preprocessing, so that a structure lost to resampling is reported).
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))
    present_before_resampling: frozenset[int] = field(default=frozenset())


class Dataset:
    """Base class: a folder of cases with declared channels and labels."""

    layout: str = ""

    def __init__(self, root: Path, name: str, channels: list[str], labels: dict[int, str], cases: list[Case]):
        self.root = root
        self.name = name
        self.channels = channels
        self.labels = labels  # foreground only: value -> name
        self.cases = cases
        ids = [t.task_id for t in self.tasks()]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise DataError(root, f"channel or class names repeat, so tasks would share an id: {repeated[:3]}; "
                                  f"channels {channels}, classes {list(labels.values())}")
        _refuse_outside(root, (f for case in cases for f in case.files))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, {len(self.cases)} cases, channels={self.channels}, "
                f"labels={list(self.labels.values())})")

    # -- tasks ---------------------------------------------------------------------------------
    def tasks(self) -> list[Task]:
        """One binary task per channel x foreground class (paper, section 3)."""
        out = []
        for ci, channel in enumerate(self.channels):
            for value, name in sorted(self.labels.items()):
                out.append(Task(task_id(self.layout, self.name, name, channel), self.layout, self.name, name,
                                value, channel, ci, modality_of(channel)))
        return out

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.case_id == case_id:
                return c
        raise DataError(self.root, f"no case {case_id!r} in dataset {self.name}")

    # -- checks --------------------------------------------------------------------------------
    def _check_values(self, values: Iterable[int], path: Path) -> None:
        undeclared = sorted(set(int(v) for v in values) - set(self.labels) - {0})
        if undeclared:
            raise DataError(path, f"label values {undeclared} are not declared in dataset.json "
                                  f"(declared: {sorted(self.labels)})")

    def _image_headers(self, case: Case) -> tuple[tuple[int, ...], np.ndarray]:
        """Check the image files' headers; return the spatial shape and affine."""
        shapes, affines = [], []
        for p in case.images:
            hdr = load_header(p)
            shape = tuple(int(s) for s in hdr.shape)
            if len(case.images) == 1:
                n_ch = shape[3] if len(shape) == 4 else 1
                if len(shape) not in (3, 4) or n_ch != len(self.channels):
                    raise DataError(p, f"image shape {shape} does not match the {len(self.channels)} declared "
                                       f"channel(s) {self.channels}")
            elif len(shape) != 3:
                raise DataError(p, f"per-channel image must be 3D, got shape {shape}")
            shapes.append(shape[:3])
            affines.append(hdr.affine)
        for p, s, a in zip(case.images[1:], shapes[1:], affines[1:]):
            if not same_geometry(s, a, shapes[0], affines[0]):
                raise DataError(p, f"channel grid differs from {case.images[0].name} (shape {s} vs {shapes[0]})")
        return shapes[0], affines[0]

    @staticmethod
    def _check_label_geometry(lpath: Path, lshape: tuple[int, ...], laff: np.ndarray,
                              ishape: tuple[int, ...], iaff: np.ndarray) -> None:
        if len(lshape) == 4 and lshape[3] != 1:
            raise DataError(lpath, f"label must be 3D, got a 4D shape {lshape}")
        if tuple(lshape[:3]) != tuple(ishape):
            raise DataError(lpath, f"label shape {tuple(lshape)} does not match image shape {tuple(ishape)}")
        if not np.allclose(laff, iaff, atol=1e-3):
            raise DataError(lpath, "label affine does not match the image affine "
                                   f"(max difference {float(np.abs(laff - iaff).max()):.4g} mm)")

    def present_labels(self, case: Case) -> set[int]:
        """Validate one case from its headers and label values; return the label values present.

        Reads the label data (to count presence) but only the image headers.
        """
        ishape, iaff = self._image_headers(case)
        assert case.label is not None
        lhdr = load_header(case.label)
        self._check_label_geometry(case.label, tuple(lhdr.shape), lhdr.affine, ishape, iaff)
        lab, _ = read_label(case.label)
        values = set(int(v) for v in np.unique(lab))
        self._check_values(values, case.label)
        return values - {0}

    # -- loading -------------------------------------------------------------------------------
    def _load_image(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        ishape, iaff = self._image_headers(case)
        arrays = []
        for p in case.images:
            data, _ = read_image(p)
            arrays.extend([data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])])
        return np.stack(arrays).astype(np.float32, copy=False), iaff

    def load_case(self, case: Case | str) -> CaseData:
        """Read and validate one case: image ``(C, X, Y, Z)`` and label ``(X, Y, Z)``."""
        case = self.case(case) if isinstance(case, str) else case
        image, affine = self._load_image(case)
        assert case.label is not None
        lab, laff = read_label(case.label)
        self._check_label_geometry(case.label, lab.shape, laff, image.shape[1:], affine)
        self._check_values(np.unique(lab), case.label)
        return CaseData(case.case_id, image, lab, affine, spacing_of(affine))


def _read_json(path: Path) -> dict[str, Any]:
    """A dataset's ``dataset.json`` (in the dataset's root; a symlink pointing outside it is refused unread).

    Read as UTF-8 (JSON's encoding), with or without a BOM, whatever the locale: a class name such as
    ``"Gewebe_ä"`` must not become another task id under another locale's encoding (cp1252, ASCII).
    """
    if path.is_symlink():
        _refuse_outside(path.parent, [path])
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(path, "must hold a JSON object")
    return data


def _refuse_outside(root: Path, files: Iterable[Path]) -> None:
    """Refuse a file whose real path leaves ``root`` (a symlink pointing outside it).

    Each folder is resolved once and a file only when it is itself a link: a TotalSegmentator
    folder lists about 140,000 masks, and resolving each path whole would add seconds to every
    command that opens it.
    """
    root_r = Path(root).resolve()
    inside: dict[Path, bool] = {}  # folder -> its real path lies in the root
    for f in files:
        if f.is_symlink():
            ok = f.resolve().is_relative_to(root_r)
        else:
            if f.parent not in inside:
                inside[f.parent] = f.parent.resolve().is_relative_to(root_r)
            ok = inside[f.parent]
        if not ok:
            raise DataError(f, "leaves the dataset root (a symlink pointing outside it); refused")


def _channels(meta: dict[str, Any], path: Path, key: str) -> list[str]:
    """The channel names of ``meta[key]`` (``{"0": name, ...}``) in order; the keys must be 0..C-1."""
    chans = _int_keys(meta.get(key), path, key)
    if sorted(chans) != list(range(len(chans))):
        raise DataError(path, f"{key} keys must be 0..C-1, got {sorted(chans)}")
    return [chans[i] for i in sorted(chans)]


def _int_keys(mapping: Any, path: Path, key: str) -> dict[int, str]:
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(path, f"{key!r} must be a non-empty object")
    try:
        return {int(k): str(v) for k, v in mapping.items()}
    except (TypeError, ValueError):
        raise DataError(path, f"{key!r} keys must be integers, got {list(mapping)}") from None


class MSDDataset(Dataset):
    """Medical Segmentation Decathlon task folder (``dataset.json`` with ``modality``)."""

    layout = "msd"

    @classmethod
    def read(cls, root: Path) -> "MSDDataset":
        meta_path = root / "dataset.json"
        meta = _read_json(meta_path)
        channels = _channels(meta, meta_path, "modality")
        labels = _int_keys(meta.get("labels"), meta_path, "labels")
        labels.pop(0, None)
        if not labels:
            raise DataError(meta_path, "declares no foreground label")
        training = meta.get("training")
        if not isinstance(training, list) or not training:
            raise DataError(meta_path, "'training' must be a non-empty list of {image, label} entries")
        cases = []
        for i, entry in enumerate(training):
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise DataError(meta_path, f"training entry {i} must have 'image' and 'label', got {entry!r}")
            image = safe_join(root, entry["image"])
            label = safe_join(root, entry["label"])
            cases.append(Case(strip_nifti(image.name), (image,), label))
        ids = [c.case_id for c in cases]
        if len(set(ids)) != len(ids):
            raise DataError(meta_path, "training entries repeat a case")
        return cls(root, root.name, channels, labels, cases)


#: the label name nnU-Net v2 reserves for unannotated voxels (sparse annotations; ``documentation/ignore_label.md``)
NNUNET_IGNORE = "ignore"


class NnUNetDataset(Dataset):
    """nnU-Net v2 raw dataset folder (``dataset.json`` with ``channel_names``)."""

    layout = "nnunet"

    @classmethod
    def read(cls, root: Path) -> "NnUNetDataset":
        meta_path = root / "dataset.json"
        meta = _read_json(meta_path)
        channels = _channels(meta, meta_path, "channel_names")
        raw_labels = meta.get("labels")
        if not isinstance(raw_labels, dict) or not raw_labels:
            raise DataError(meta_path, "'labels' must be a non-empty object {name: value}")
        labels: dict[int, str] = {}
        for name, value in raw_labels.items():
            if name == NNUNET_IGNORE:  # nnU-Net's sparse-annotation marker: unlabelled voxels, not a class
                raise DataError(meta_path, f"label 'ignore' ({value!r}) is nnU-Net's ignore label: its voxels are "
                                           "unannotated, not a class, and this kit needs dense labels")
            if isinstance(value, (list, tuple)):
                raise DataError(meta_path, f"region-based label {name!r}: {value} is not supported; "
                                           "use one integer per class")
            try:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                v = int(value)
            except (TypeError, ValueError):
                raise DataError(meta_path, f"label {name!r} has a non-integer value {value!r}") from None
            if v in labels:
                raise DataError(meta_path, f"labels {labels[v]!r} and {name!r} share the value {v}")
            labels[v] = str(name)
        labels.pop(0, None)
        if not labels:
            raise DataError(meta_path, "declares no foreground label")
        ending = meta.get("file_ending", ".nii.gz")
        if ending not in NIFTI_ENDINGS:
            raise DataError(meta_path, f"file_ending {ending!r} is not supported (only {list(NIFTI_ENDINGS)})")
        cases = []
        if "dataset" in meta:  # explicit file lists (nnU-Net v2 allows them)
            listing = meta["dataset"]
            if not isinstance(listing, dict):
                raise DataError(meta_path, "'dataset' must be an object {case id: {images, label}}")
            for cid, entry in sorted(listing.items()):
                if cid in ("", ".", "..") or any(ch in cid for ch in "/\\\0"):
                    raise DataError(meta_path, f"case id {cid!r} is not a plain name")
                if not isinstance(entry, dict) or not isinstance(entry.get("images"), list) or "label" not in entry:
                    raise DataError(meta_path, f"dataset entry {cid!r} must have 'images' (a list) and 'label', "
                                               f"got {entry!r}")
                if len(entry["images"]) != len(channels):
                    raise DataError(meta_path, f"dataset entry {cid!r} lists {len(entry['images'])} image file(s) "
                                               f"for the {len(channels)} channel(s) {channels}")
                images = tuple(safe_join(root, p) for p in entry["images"])
                cases.append(Case(cid, images, safe_join(root, entry["label"])))
        else:
            labels_dir = root / "labelsTr"
            if not labels_dir.is_dir():
                raise DataError(labels_dir, "folder not found")
            _refuse_outside(root, [labels_dir])  # before it is listed: an outside folder's names reach no message
            for lpath in sorted(labels_dir.iterdir()):
                if not lpath.name.endswith(ending) or lpath.name.startswith("."):
                    continue
                cid = lpath.name[: -len(ending)]
                images = tuple(root / "imagesTr" / f"{cid}_{i:04d}{ending}" for i in range(len(channels)))
                for p in images:
                    if not p.is_file():
                        raise DataError(p, f"file not found (case {cid!r} needs {len(channels)} channel files)")
                cases.append(Case(cid, images, lpath))
            if cases:  # none: refused below, with nothing to add
                _warn_unused_images(root, ending, {p.name for c in cases for p in c.images}, len(channels))
        if not cases:
            raise DataError(root, "no training cases found")
        n_declared = meta.get("numTraining")
        if isinstance(n_declared, int) and n_declared != len(cases):
            raise DataError(meta_path, f"numTraining is {n_declared} but {len(cases)} labelled cases were found")
        return cls(root, root.name, channels, labels, cases)


def _warn_unused_images(root: Path, ending: str, used: set[str], n_channels: int) -> None:
    """Warn about images in ``imagesTr`` that no labelled case reads (nnU-Net's own check refuses them): a
    channel file beyond those ``channel_names`` declares, or an image whose label is missing."""
    images_dir = root / "imagesTr"
    if not images_dir.is_dir():
        return
    _refuse_outside(root, [images_dir])
    unused = sorted(p.name for p in images_dir.iterdir()
                    if p.name.endswith(ending) and not p.name.startswith(".") and p.name not in used)
    if unused:
        warnings.warn(f"{images_dir}: {len(unused)} image file(s) no labelled case reads ({', '.join(unused[:3])}"
                      f"{', ...' if len(unused) > 3 else ''}): a channel beyond the {n_channels} that dataset.json's "
                      "channel_names declares, or an image without its label in labelsTr; they are left out",
                      stacklevel=3)


class TotalSegDataset(Dataset):
    """TotalSegmentator folder: ``meta.csv`` + ``sXXXX/ct.nii.gz`` + ``sXXXX/segmentations/*.nii.gz``.

    The per-structure binary masks of a subject are merged into one integer label map
    whose values follow the sorted structure names (value = index + 1); a voxel in two masks
    goes to the smaller structure (:meth:`_merged`).
    """

    layout = "totalseg"
    _overlap_reported: bool = False  # set on the instance when the first subject with overlaps is reported

    @classmethod
    def read(cls, root: Path) -> "TotalSegDataset":
        meta_path = root / "meta.csv"
        try:
            _refuse_outside(root, [meta_path])  # a symlink pointing outside the dataset: refused unread
            text = meta_path.read_text(encoding="utf-8-sig")  # UTF-8, with or without a spreadsheet's BOM
        except FileNotFoundError:
            raise DataError(meta_path, "file not found") from None
        except UnicodeDecodeError as exc:
            raise DataError(meta_path, f"not valid UTF-8 text ({exc})") from None
        if not text.strip():
            raise DataError(meta_path, "is empty (needs an 'image_id' column and at least one row)")
        header = text.split("\n", 1)[0]
        delimiter = ";" if header.count(";") >= header.count(",") else ","
        # rows end at line breaks only (str.splitlines also splits at \x0c, \u2028, ...; a quoted field may hold one)
        rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
        if not rows or "image_id" not in rows[0]:
            raise DataError(meta_path, "needs an 'image_id' column and at least one row")
        listed: dict[str, str | None] = {}
        for i, r in enumerate(rows, start=2):
            if not isinstance(r["image_id"], str):  # a short row leaves image_id None
                raise DataError(meta_path, f"row {i} has no image_id")
            sid, split = r["image_id"].strip(), (r.get("split") or "").strip() or None
            if sid in listed and listed[sid] != split:  # a subject listed twice must name one split
                raise DataError(meta_path, f"row {i} lists {sid} again with split {split!r}, "
                                           f"after split {listed[sid]!r}")
            listed[sid] = split
        folders = {p.name for p in root.iterdir() if p.is_dir() and (p / "ct.nii.gz").exists()}
        missing = sorted(set(listed) - folders)
        if missing:
            raise DataError(root / missing[0], f"subject listed in meta.csv has no ct.nii.gz "
                                               f"({len(missing)} such subjects)")
        unlisted = sorted(folders - set(listed))
        if unlisted and any(listed.values()):  # the others have splits: these would join every one
            warnings.warn(f"{meta_path}: {len(unlisted)} subject folder(s) not listed "
                          f"({', '.join(unlisted[:3])}{', ...' if len(unlisted) > 3 else ''}): they have no "
                          "split and are kept by every split filter (training and validation); list them "
                          "with their split, or move them out of the folder", stacklevel=2)
        structures: list[str] | None = None
        first = ""  # the subject whose structures the others must have
        cases = []
        for sid in sorted(set(listed) | folders):
            seg_dir = root / sid / "segmentations"
            if not seg_dir.is_dir():
                raise DataError(seg_dir, "folder not found")
            _refuse_outside(root, [seg_dir])  # before it is listed: an outside folder's names reach no message
            masks = [p for p in seg_dir.iterdir() if p.name.endswith(NIFTI_ENDINGS) and not p.name.startswith(".")]
            files = {strip_nifti(p.name): p for p in masks}
            if len(files) != len(masks):
                raise DataError(seg_dir, "holds a structure twice (as .nii and .nii.gz)")
            names = sorted(files)
            if not names:
                raise DataError(seg_dir, "holds no structure masks")
            if structures is None:
                structures, first = names, sid
            elif names != structures:
                raise DataError(seg_dir, _structures_differ(first, structures, names))
            cases.append(Case(sid, (root / sid / "ct.nii.gz",), None,
                              tuple((n, files[n]) for n in names), listed.get(sid)))
        assert structures is not None
        labels = {i + 1: n for i, n in enumerate(structures)}
        return cls(root, root.name, ["CT"], labels, cases)

    def _read_structure(self, path: Path, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
        """One structure's mask ``(X, Y, Z)``, checked: on the image's grid and binary."""
        mask, maff = read_label(path)
        self._check_label_geometry(path, mask.shape, maff, shape, affine)
        if mask.max(initial=0) > 1:
            raise DataError(path, f"structure mask must be binary, found values {sorted(np.unique(mask))[:6]}")
        return mask

    def _merged(self, case: Case, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
        """The structure masks as one label map ``(X, Y, Z)``.

        TotalSegmentator v2's masks overlap in places (its issues #8, #440: e.g. ``hip_left`` and
        ``urinary_bladder`` in ``s0000``). A voxel in two masks goes to the structure with fewer voxels in
        this subject, whose share of the voxel is the larger (equal sizes: the earlier name), so that a
        small structure is not eaten by a large neighbour; each binary task loses only its shared voxels.
        The first subject with overlaps is reported once per dataset (:class:`UserWarning`), with the pairs.
        """
        label = np.zeros(shape, dtype=np.int32)
        sizes = np.zeros(len(case.structures) + 1, dtype=np.int64)
        clashes: dict[tuple[str, str], int] = {}
        for value, (name, path) in enumerate(case.structures, start=1):
            mask = self._read_structure(path, shape, affine) > 0
            sizes[value] = int(mask.sum())
            owners = label[mask]
            taken = owners > 0
            if taken.any():
                for other, n in zip(*np.unique(owners[taken], return_counts=True)):
                    clashes[(case.structures[int(other) - 1][0], name)] = int(n)
                owners[taken & (sizes[value] < sizes[owners])] = value  # the smaller structure keeps the voxel
                label[mask] = np.where(taken, owners, value)
            else:
                label[mask] = value
        if clashes and not self._overlap_reported:
            self._overlap_reported = True
            pairs = sorted(clashes.items(), key=lambda kv: -kv[1])
            warnings.warn(f"{self.root / case.case_id / 'segmentations'}: {len(pairs)} pair(s) of structure masks "
                          f"overlap ({', '.join(f'{a}/{b} {n} voxel(s)' for (a, b), n in pairs[:3])}"
                          f"{', ...' if len(pairs) > 3 else ''}); each shared voxel goes to the smaller structure "
                          "of the subject; overlaps in other subjects are resolved the same way, unreported",
                          stacklevel=3)
        return label

    def present_labels(self, case: Case) -> set[int]:
        ishape, iaff = self._image_headers(case)
        return set(int(v) for v in np.unique(self._merged(case, ishape, iaff))) - {0}

    def load_case(self, case: Case | str) -> CaseData:
        case = self.case(case) if isinstance(case, str) else case
        image, affine = self._load_image(case)
        label = self._merged(case, image.shape[1:], affine)
        return CaseData(case.case_id, image, label, affine, spacing_of(affine))


def _structures_differ(first: str, expected: list[str], found: list[str]) -> str:
    """Why a subject's structure masks differ from those of ``first`` (the first subject): what its folder lacks
    and what it has beyond them, so that the incomplete subject is found whichever of the two it is."""
    lacks, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    parts = [f"lacks {len(lacks)} mask(s) that {first} has: {lacks[:5]}"] if lacks else []
    parts += [f"has {len(extra)} mask(s) that {first} lacks: {extra[:5]}"] if extra else []
    hint = "" if lacks else f" ({first} may be the incomplete one)"
    return f"structure masks differ from the first subject's ({first}): this folder {'; '.join(parts)}{hint}"


def detect_layout(root: str | Path) -> str | None:
    """``"msd"``, ``"nnunet"``, ``"totalseg"`` or ``None`` for a folder that is no dataset."""
    r = Path(root)
    if (r / "dataset.json").is_file():
        meta = _read_json(r / "dataset.json")
        if "channel_names" in meta:
            return "nnunet"
        if "modality" in meta:
            return "msd"
        raise DataError(r / "dataset.json", "neither MSD ('modality') nor nnU-Net v2 ('channel_names')")
    if (r / "meta.csv").is_file():
        return "totalseg"
    return None


_READERS = {"msd": MSDDataset, "nnunet": NnUNetDataset, "totalseg": TotalSegDataset}


def open_dataset(root: str | Path) -> Dataset:
    """Open one dataset folder, detecting its layout."""
    r = Path(root)
    if not r.is_dir():
        raise DataError(r, "dataset folder not found")
    layout = detect_layout(r)
    if layout is None:
        raise DataError(r, "not a dataset folder (no dataset.json or meta.csv)")
    return _READERS[layout].read(r)


def discover_datasets(root: str | Path) -> list[Dataset]:
    """All datasets at ``root``: the folder itself, or its direct sub-folders (sorted by name)."""
    r = Path(root)
    if not r.is_dir():
        raise DataError(r, "data folder not found")
    if detect_layout(r) is not None:
        return [open_dataset(r)]
    found = [open_dataset(p) for p in sorted(r.iterdir()) if p.is_dir() and detect_layout(p) is not None]
    if not found:
        if _unfinished_phantoms(r):
            raise DataError(r, "holds phantoms whose generation did not finish (interrupted?); run "
                               f"`hyperkit phantoms --out {r}` with the same arguments again to complete them")
        raise DataError(r, "no dataset found (expected MSD, TotalSegmentator or nnU-Net v2 folders)")
    return found


#: the manifest ``hyperkit phantoms`` writes first and marks complete last (``hyperkit.phantoms.writer.MANIFEST``;
#: named here because the data layer does not import the phantoms)
PHANTOMS_MANIFEST = "phantoms.json"


def _unfinished_phantoms(root: Path) -> bool:
    """Whether ``root`` holds a phantoms manifest that is not marked complete (a stopped ``hyperkit phantoms``)."""
    path = root / PHANTOMS_MANIFEST
    if not path.is_file() or path.is_symlink():
        return False
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("complete") is False


def default_data_root() -> Path:
    """``$HYPERKIT_DATA`` or ``data/``."""
    import os

    return Path(os.environ.get("HYPERKIT_DATA", "data"))
