"""The phantom cohorts: what each dataset holds and how one case of it is made.

Mirrors the paper's split (docs/design.md §5):

- ``TotalSegmentator``: the CT training cohort, one torso per subject with every
  structure of :data:`~hyperkit.phantoms.anatomy.TOTALSEG_STRUCTURES` labelled
  and no held-out target labelled (the liver, spleen, pancreas and colon are in
  every image, unlabelled).
- ten MSD tasks (:data:`MSD_TASKS`) with MSD's folder, modality and label names:
  six CT tasks drawn from the same torso model with task-specific pathology
  and field of view, and four MRI tasks (brain tumour, left atrium,
  hippocampus, prostate).

Every case is generated from its own seed ``(seed, crc32(dataset), index)``:
one case id and seed give the same volume whatever the cohort size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from hyperkit.phantoms.anatomy import TOTALSEG_STRUCTURES, Torso
from hyperkit.phantoms.organs import THIGH
from hyperkit.phantoms.ct import ct_image
from hyperkit.phantoms.mri import Head, mri_image
from hyperkit.phantoms.shapes import Blob, Canvas, Grid, smooth_noise
from hyperkit.seeds import numpy_rng

__all__ = ["TOTALSEG", "MSDTask", "MSD_TASKS", "Case", "case_rng", "totalseg_subject", "msd_case", "split_of",
           "MSD_BY_FOLDER"]

TOTALSEG = "TotalSegmentator"


@dataclass(frozen=True)
class MSDTask:
    """One held-out MSD task as the phantoms write it.

    Attributes:
        folder: MSD folder name, e.g. ``"Task03_Liver"``.
        name: ``dataset.json`` name.
        prefix: case file prefix (``liver_003.nii.gz``).
        modality: MSD's channel names ``{"0": "CT"}``.
        labels: MSD's label names ``{"0": "background", "1": ...}``.
        tags: part tag -> label value (the first matching tag of a part wins).
        kind: generator: ``"ct"``, ``"brain"``, ``"heart"``, ``"hippocampus"``, ``"prostate"``.
        flip: store with the first two axes flipped (an LPS-like file, as many scanners write).
        description: one line for ``dataset.json``.
    """

    folder: str
    name: str
    prefix: str
    modality: dict[str, str]
    labels: dict[str, str]
    tags: dict[str, int]
    kind: str
    flip: bool
    description: str = ""

    @property
    def channels(self) -> list[str]:
        return [self.modality[k] for k in sorted(self.modality, key=int)]


MSD_TASKS: tuple[MSDTask, ...] = (
    MSDTask("Task01_BrainTumour", "BRATS", "BRATS", {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
            {"edema": 1, "non_enhancing_tumour": 2, "enhancing_tumour": 3}, "brain", False,
            "Procedural skull-stripped glioma MRI (oedema, non-enhancing core, enhancing rim)"),
    MSDTask("Task02_Heart", "LeftAtrium", "la", {"0": "MRI"}, {"0": "background", "1": "left atrium"},
            {"left_atrium": 1}, "heart", True, "Procedural bSSFP-like cardiac MRI, left atrium with vein ostia"),
    MSDTask("Task03_Liver", "LiverTumour", "liver", {"0": "CT"}, {"0": "background", "1": "liver", "2": "cancer"},
            {"liver_tumour": 2, "liver": 1}, "ct", True, "Procedural abdominal CT, liver and liver lesions"),
    MSDTask("Task04_Hippocampus", "Hippocampus", "hippocampus", {"0": "MRI"},
            {"0": "background", "1": "Anterior", "2": "Posterior"},
            {"hippocampus_anterior": 1, "hippocampus_posterior": 2}, "hippocampus", False,
            "Procedural T1-weighted crops around one hippocampus (head = anterior, body and tail = posterior)"),
    MSDTask("Task05_Prostate", "Prostate", "prostate", {"0": "T2", "1": "ADC"},
            {"0": "background", "1": "PZ", "2": "TZ"}, {"prostate_pz": 1, "prostate_tz": 2}, "prostate", True,
            "Procedural prostate MRI (T2 and ADC), peripheral and transition zones"),
    MSDTask("Task06_Lung", "Lung", "lung", {"0": "CT"}, {"0": "background", "1": "cancer"}, {"lung_tumour": 1},
            "ct", False, "Procedural chest CT with lung tumours"),
    MSDTask("Task07_Pancreas", "Pancreas", "pancreas", {"0": "CT"}, {"0": "background", "1": "pancreas", "2": "cancer"},
            {"pancreas_tumour": 2, "pancreas": 1}, "ct", True,
            "Procedural abdominal CT, pancreas and pancreatic tumour"),
    MSDTask("Task08_HepaticVessel", "HepaticVessel", "hepaticvessel", {"0": "CT"},
            {"0": "background", "1": "Vessel", "2": "Tumour"}, {"liver_tumour": 2, "hepatic_vessel": 1}, "ct", False,
            "Procedural abdominal CT, intrahepatic vessels and liver lesions"),
    MSDTask("Task09_Spleen", "Spleen", "spleen", {"0": "CT"}, {"0": "background", "1": "spleen"}, {"spleen": 1},
            "ct", False, "Procedural abdominal CT, spleen"),
    MSDTask("Task10_Colon", "Colon", "colon", {"0": "CT"}, {"0": "background", "1": "colon cancer primaries"},
            {"colon_tumour": 1}, "ct", True, "Procedural abdomino-pelvic CT with a colon tumour"),
)
MSD_BY_FOLDER: dict[str, MSDTask] = {t.folder: t for t in MSD_TASKS}


@dataclass
class Case:
    """One generated case, in RAS array order (axes increase toward +x, +y, +z).

    Attributes:
        image: (X, Y, Z) int16 CT, or float32 MRI (X, Y, Z) / (X, Y, Z, C).
        labels: uint8 (X, Y, Z) label map (MSD values, or 1..N over the TotalSegmentator structures).
        grid: voxel grid (affine before any storage flip).
        meta: extra facts (TotalSegmentator meta.csv columns).
    """

    image: np.ndarray
    labels: np.ndarray
    grid: Grid
    meta: dict[str, Any] = field(default_factory=dict)


def case_rng(seed: int, dataset: str, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of one case: a function of (seed, dataset, index, stream) only."""
    return numpy_rng(seed, dataset, index, stream)


def split_of(index: int) -> str:
    """TotalSegmentator split of subject ``index``: every 10th is val, the next test, the rest train."""
    r = index % 10
    return "val" if r == 8 else "test" if r == 9 else "train"


def _torso_grid(t: Torso, zlo: float, zhi: float, spacing: float, rng: np.random.Generator) -> Grid:
    """A field of view over [zlo, zhi] that holds the whole body cross-section, with a margin."""
    zs = np.linspace(zlo, zhi, 40)
    a, b, yc = t.body_section(zs)
    # the thighs' lateral reach (their radius, 62 mm x width x muscle, with a margin) when below the fold
    thigh = (THIGH.offset_x_mm * t.width_scale + 70 * t.width_scale * t.muscle_scale + t.fat_mm
             if zlo < t.z["fem"] - THIGH.fold_below_heads_mm else 0.0)
    half = max(float(a.max()), thigh) + rng.uniform(8, 30)
    lo = (-half + rng.normal(0, 4), float((yc - b).min()) - rng.uniform(8, 25), zlo)
    hi = (half + rng.normal(0, 4), float((yc + b).max()) + rng.uniform(8, 25), zhi)
    return Grid.around(lo, hi, spacing)


def _labels(canvas: Canvas, tags: dict[str, int]) -> np.ndarray:
    return canvas.lut(tags, dtype=np.uint8)[canvas.parts]


_TS_LUT = {name: i + 1 for i, name in enumerate(TOTALSEG_STRUCTURES)}


def totalseg_subject(seed: int, index: int, spacing: float) -> Case:
    """One CT training subject: image in HU and the label map over all structures.

    The label map's value ``k`` is ``TOTALSEG_STRUCTURES[k - 1]`` (masks are mutually exclusive).
    """
    rng = case_rng(seed, TOTALSEG, index)
    t = Torso(rng, liver_tumours=0.3)
    u = float(rng.random())
    top = t.z["top"] + rng.uniform(5, 40)
    if u < 0.6:
        study, zlo, zhi = "ct thorax-abdomen-pelvis", t.z["fem"] - rng.uniform(50, 110), top
    elif u < 0.85:
        study, zlo, zhi = "ct abdomen-pelvis", t.z["fem"] - rng.uniform(50, 100), t.z["dia_r"] + rng.uniform(20, 70)
    else:
        study, zlo, zhi = "ct thorax-abdomen", t.z["L4"] - rng.uniform(0, 40), top
    grid = _torso_grid(t, zlo, zhi, spacing, rng)
    canvas = t.render(Canvas(grid))
    image = ct_image(canvas, case_rng(seed, TOTALSEG, index, 1))
    meta = {"image_id": f"s{index:04d}", "age": t.age, "gender": t.sex,
            "institute": "ABCDEFGH"[int(rng.integers(8))], "study_type": study, "split": split_of(index)}
    return Case(image, _labels(canvas, _TS_LUT), grid, meta)


# CT tasks: torso options and field of view (zlo, zhi) per task
_CT: dict[str, tuple[dict[str, Any], Callable[[Torso, np.random.Generator], tuple[float, float]]]] = {
    "Task03_Liver": (dict(liver_tumours=2.0, at_least_one_liver_tumour=True),
                     lambda t, r: (t.z["liver_bottom"] - r.uniform(30, 90), t.z["dia_r"] + r.uniform(20, 60))),
    "Task06_Lung": (dict(lung_tumours=1),
                    lambda t, r: (t.z["dia_r"] - r.uniform(30, 70), t.z["top"] + r.uniform(0, 30))),
    "Task07_Pancreas": (dict(pancreas_tumour=True),
                        lambda t, r: (t.z["L4"] - r.uniform(0, 60), t.z["dia_r"] + r.uniform(0, 40))),
    "Task08_HepaticVessel": (dict(liver_tumours=1.5, at_least_one_liver_tumour=True),
                             lambda t, r: (t.z["liver_bottom"] - r.uniform(20, 60), t.z["dia_r"] + r.uniform(10, 40))),
    "Task09_Spleen": (dict(liver_tumours=0.2),
                      lambda t, r: (t.z["L3"] - r.uniform(0, 60), t.z["dia_l"] + r.uniform(25, 60))),
    "Task10_Colon": (dict(colon_tumour=True),
                     lambda t, r: (t.z["fem"] - r.uniform(40, 90), t.z["dia_r"] + r.uniform(10, 50))),
}


def _ct_case(task: MSDTask, seed: int, index: int, spacing: float) -> Case:
    rng = case_rng(seed, task.folder, index)
    options, fov = _CT[task.folder]
    if task.folder == "Task06_Lung" and rng.random() < 0.2:
        options = dict(lung_tumours=2)
    t = Torso(rng, **options)
    zlo, zhi = fov(t, rng)
    for key in ("colon_tumour", "lung_tumour"):  # keep the target in the field of view
        if key in t.centres:
            zlo, zhi = min(zlo, t.centres[key][2] - 50), max(zhi, t.centres[key][2] + 50)
    grid = _torso_grid(t, zlo, zhi, spacing, rng)
    canvas = t.render(Canvas(grid))
    image = ct_image(canvas, case_rng(seed, task.folder, index, 1))
    return Case(image, _labels(canvas, task.tags), grid)


def _box(centre: np.ndarray, size: np.ndarray, spacing: float) -> Grid:
    return Grid.around(centre - size / 2, centre + size / 2, spacing)


def _brain_case(task: MSDTask, seed: int, index: int, spacing: float) -> Case:
    rng = case_rng(seed, task.folder, index)
    head = Head(rng, tumour=True, lesions=1.5)
    half = head.radii + rng.uniform(2, 12, 3)
    grid = Grid.around(-half + rng.normal(0, 3, 3), half + rng.normal(0, 3, 3), spacing)
    canvas = head.render(Canvas(grid))
    acq = case_rng(seed, task.folder, index, 1)
    brain = ~np.isin(canvas.parts, canvas.ids("outside", "scalp", "skull"))  # skull-stripped, like BraTS
    texture = smooth_noise(acq, canvas.parts.shape, max(1.0, 5.0 / spacing))
    chans = [mri_image(canvas, acq, seq, bias=float(acq.uniform(0.08, 0.25)), noise=float(acq.uniform(0.015, 0.04)),
                       texture=texture) * brain for seq in task.channels]
    return Case(np.stack(chans, axis=-1).astype(np.float32), _labels(canvas, task.tags), grid)


def _hippocampus_case(task: MSDTask, seed: int, index: int, spacing: float) -> Case:
    rng = case_rng(seed, task.folder, index)
    head = Head(rng, tumour=False, lesions=0.5)
    side = "right" if rng.random() < 0.5 else "left"
    centre = head.centres[f"hippocampus_{side}"] + rng.normal(0, 3, 3)
    size = np.array([36.0, 50.0, 36.0]) * rng.uniform(0.9, 1.15, 3)
    grid = _box(centre, size, spacing)
    canvas = head.render(Canvas(grid))  # the crop holds one hippocampus, as in MSD
    labels = _labels(canvas, task.tags)
    acq = case_rng(seed, task.folder, index, 1)
    image = mri_image(canvas, acq, "T1", bias=float(acq.uniform(0.05, 0.2)), noise=float(acq.uniform(0.02, 0.05)))
    return Case(image, labels, grid)


def _heart_case(task: MSDTask, seed: int, index: int, spacing: float) -> Case:
    rng = case_rng(seed, task.folder, index)
    t = Torso(rng)
    centre = t.centres["left_atrium"] + rng.normal(0, 10, 3)
    grid = _box(centre, np.array([250.0, 230.0, 140.0]) * rng.uniform(0.9, 1.1, 3), spacing)
    canvas = t.render(Canvas(grid))
    acq = case_rng(seed, task.folder, index, 1)
    image = mri_image(canvas, acq, "bSSFP", bias=float(acq.uniform(0.2, 0.45)), noise=float(acq.uniform(0.02, 0.05)))
    return Case(image, _labels(canvas, task.tags), grid)


def _prostate_case(task: MSDTask, seed: int, index: int, spacing: float) -> Case:
    rng = case_rng(seed, task.folder, index)
    t = Torso(rng, sex="m")
    pro = t.shapes["prostate"]
    lesion = None
    if rng.random() < 0.5:  # a PZ lesion: dark on T2, low ADC, still labelled PZ
        assert isinstance(pro, Blob)
        offset = pro.rot @ (pro.radii * np.array([rng.uniform(-0.5, 0.5), -0.6, rng.uniform(-0.4, 0.4)]))
        r = rng.uniform(4, 9)
        lesion = Blob.random(rng, pro.centre + offset, (r, r, r), wobble_sd=0.1)
    centre = t.centres["prostate"] + rng.normal(0, 8, 3)
    grid = _box(centre, np.array([170.0, 150.0, 100.0]) * rng.uniform(0.9, 1.1, 3), spacing)
    canvas = t.render(Canvas(grid))
    if lesion is not None:
        canvas.paint(canvas.part("prostate_lesion", "prostate_lesion", ("prostate_pz",)), lesion.mask(grid),
                     only=canvas.ids("prostate_pz"))
    acq = case_rng(seed, task.folder, index, 1)
    texture = smooth_noise(acq, canvas.parts.shape, max(1.0, 4.0 / spacing))
    t2 = mri_image(canvas, acq, "T2", bias=float(acq.uniform(0.15, 0.35)), noise=float(acq.uniform(0.02, 0.04)),
                   texture=texture)
    adc = mri_image(canvas, acq, "ADC", bias=0.03, noise=float(acq.uniform(0.04, 0.07)), blur=1.0, texture=texture)
    return Case(np.stack([t2, adc], axis=-1), _labels(canvas, task.tags), grid)


_MAKERS: dict[str, Callable[[MSDTask, int, int, float], Case]] = {
    "ct": _ct_case, "brain": _brain_case, "hippocampus": _hippocampus_case, "heart": _heart_case,
    "prostate": _prostate_case,
}


def msd_case(task: MSDTask | str, seed: int, index: int, spacing: float) -> Case:
    """One case of an MSD task (image and MSD label map), in RAS array order."""
    t = MSD_BY_FOLDER[task] if isinstance(task, str) else task
    return _MAKERS[t.kind](t, seed, index, spacing)
