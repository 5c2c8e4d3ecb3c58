"""MRI phantoms: a head with brain tumours and hippocampi, and MRI contrasts for any part map.

- :class:`Head`: scalp, skull, CSF, cortex with a gyral pattern, white matter,
  deep grey nuclei, ventricles, cerebellum, brainstem, hippocampi (head =
  anterior, body + tail = posterior) with the amygdala in front and the temporal
  horn beside them, optional glioma (oedema, non-enhancing / necrotic core,
  enhancing rim) and unlabelled white-matter lesions (FLAIR-bright confounders).
- :func:`mri_image`: tissue -> signal for one sequence, then partial-volume
  blur, a smooth multiplicative bias field (coil sensitivity) and Rician noise.
- Sequence tables: T1w, T1 post-gadolinium, T2w, FLAIR (brain), bSSFP (heart),
  T2 and ADC (prostate). Values are relative signal levels chosen from the
  usual appearance of each tissue (e.g. FLAIR suppresses CSF, bSSFP makes blood
  and fat bright, the peripheral zone is bright on T2 and has a high ADC).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from hyperkit.phantoms.shapes import Blob, Canvas, Tube, rotation, smooth_noise

__all__ = ["Head", "SEQUENCES", "mri_image"]

# relative signal per tissue and sequence (1.0 ~ the brightest tissue of the sequence)
_BRAIN: dict[str, dict[str, float]] = {
    #                T1w    t1gd   T2w   FLAIR
    "scalp":        dict(T1w=0.90, t1gd=0.92, T2w=0.70, FLAIR=0.62),
    "skull":        dict(T1w=0.08, t1gd=0.08, T2w=0.05, FLAIR=0.05),
    "csf":          dict(T1w=0.15, t1gd=0.16, T2w=1.00, FLAIR=0.07),
    "gm":           dict(T1w=0.52, t1gd=0.54, T2w=0.62, FLAIR=0.60),
    "wm":           dict(T1w=0.78, t1gd=0.79, T2w=0.45, FLAIR=0.50),
    "edema":        dict(T1w=0.48, t1gd=0.50, T2w=0.82, FLAIR=0.84),
    "tumour_core":  dict(T1w=0.40, t1gd=0.44, T2w=0.78, FLAIR=0.80),
    "necrosis":     dict(T1w=0.28, t1gd=0.30, T2w=0.92, FLAIR=0.58),
    "enhancing":    dict(T1w=0.48, t1gd=0.98, T2w=0.70, FLAIR=0.76),
    "wm_lesion":    dict(T1w=0.66, t1gd=0.67, T2w=0.72, FLAIR=0.80),
    "vessel":       dict(T1w=0.30, t1gd=0.85, T2w=0.10, FLAIR=0.15),
}

_BODY: dict[str, dict[str, float]] = {
    #                      bSSFP        T2           ADC (1.0 ~ 3e-3 mm^2/s)
    "air":              dict(bSSFP=0.00, T2=0.00, ADC=0.00),
    "air_lumen":        dict(bSSFP=0.02, T2=0.02, ADC=0.00),
    "fat":              dict(bSSFP=0.85, T2=0.80, ADC=0.05),
    "muscle":           dict(bSSFP=0.25, T2=0.22, ADC=0.47),
    "lung":             dict(bSSFP=0.04, T2=0.03, ADC=0.05),
    "airway_wall":      dict(bSSFP=0.20, T2=0.25, ADC=0.40),
    "blood_arterial":   dict(bSSFP=1.00, T2=0.12, ADC=0.60),
    "blood_venous":     dict(bSSFP=0.97, T2=0.55, ADC=0.60),
    "blood_portal":     dict(bSSFP=0.95, T2=0.50, ADC=0.60),
    "myocardium":       dict(bSSFP=0.28, T2=0.30, ADC=0.50),
    "liver":            dict(bSSFP=0.32, T2=0.28, ADC=0.38),
    "spleen":           dict(bSSFP=0.45, T2=0.50, ADC=0.30),
    "pancreas":         dict(bSSFP=0.38, T2=0.35, ADC=0.45),
    "kidney_cortex":    dict(bSSFP=0.55, T2=0.55, ADC=0.70),
    "kidney_medulla":   dict(bSSFP=0.60, T2=0.65, ADC=0.65),
    "adrenal":          dict(bSSFP=0.35, T2=0.35, ADC=0.45),
    "urine":            dict(bSSFP=0.95, T2=1.00, ADC=0.95),
    "bile":             dict(bSSFP=0.90, T2=0.95, ADC=0.90),
    "bowel_wall":       dict(bSSFP=0.35, T2=0.32, ADC=0.40),
    "bowel_fluid":      dict(bSSFP=0.90, T2=0.90, ADC=0.85),
    "stool":            dict(bSSFP=0.30, T2=0.30, ADC=0.30),
    "disc":             dict(bSSFP=0.60, T2=0.65, ADC=0.55),
    "cartilage":        dict(bSSFP=0.40, T2=0.35, ADC=0.45),
    "bone":             dict(bSSFP=0.60, T2=0.55, ADC=0.15),
    "csf":              dict(bSSFP=0.95, T2=1.00, ADC=1.00),
    "spinal_cord":      dict(bSSFP=0.45, T2=0.40, ADC=0.35),
    "liver_tumour":     dict(bSSFP=0.40, T2=0.50, ADC=0.30),
    "necrosis":         dict(bSSFP=0.70, T2=0.80, ADC=0.80),
    "pancreas_tumour":  dict(bSSFP=0.35, T2=0.40, ADC=0.30),
    "lung_tumour":      dict(bSSFP=0.40, T2=0.45, ADC=0.35),
    "colon_tumour":     dict(bSSFP=0.40, T2=0.42, ADC=0.30),
    "prostate_pz":      dict(bSSFP=0.70, T2=0.72, ADC=0.55),
    "prostate_tz":      dict(bSSFP=0.45, T2=0.42, ADC=0.42),
    "prostate_lesion":  dict(bSSFP=0.35, T2=0.30, ADC=0.27),
    "uterus":           dict(bSSFP=0.50, T2=0.55, ADC=0.50),
}

#: sequence -> {tissue: relative signal}
SEQUENCES: dict[str, dict[str, float]] = {
    seq: {t: v[seq] for t, v in table.items()}
    for table, seqs in ((_BRAIN, ("T1w", "t1gd", "T2w", "FLAIR")), (_BODY, ("bSSFP", "T2", "ADC")))
    for seq in seqs
}
# brain tissues in the sequences of the hippocampus task (a T1-weighted MPRAGE-like image)
SEQUENCES["T1"] = dict(SEQUENCES["T1w"])

_TEXTURE = {"gm": 0.04, "wm": 0.03, "edema": 0.06, "tumour_core": 0.08, "enhancing": 0.1, "necrosis": 0.05,
            "prostate_tz": 0.10, "prostate_pz": 0.06, "liver": 0.04, "muscle": 0.04, "fat": 0.04, "bone": 0.08,
            "myocardium": 0.05, "stool": 0.2}


def mri_image(canvas: Canvas, rng: np.random.Generator, sequence: str, *, bias: float = 0.2,
              noise: float = 0.03, blur: float = 0.5, field: np.ndarray | None = None,
              texture: np.ndarray | None = None) -> np.ndarray:
    """Signal of one MRI sequence for a painted part map.

    Args:
        canvas: the painted subject.
        rng: generator of this acquisition (gain, noise).
        sequence: a key of :data:`SEQUENCES`.
        bias: strength of the multiplicative bias field (log-amplitude sd).
        noise: Rician noise sd relative to the brightest tissue.
        blur: partial-volume blur (Gaussian sd in voxels).
        field: a precomputed unit bias field (share it between the channels of one case).
        texture: a precomputed unit texture field (shared between channels: same anatomy).

    Returns:
        float32 (X, Y, Z) signal, about 0..1000.
    """
    table = SEQUENCES[sequence]
    shape = canvas.parts.shape
    sig = canvas.lut(table, by="tissue", default=0.0)[canvas.parts]
    if texture is None:
        texture = smooth_noise(rng, shape, max(1.0, 5.0 / canvas.grid.spacing))
    sig = sig * (1.0 + canvas.lut(_TEXTURE, by="tissue")[canvas.parts] * texture)
    sig = ndimage.gaussian_filter(sig, blur)
    if field is None:
        field = smooth_noise(rng, shape, max(2.0, 90.0 / canvas.grid.spacing))
    sig = sig * np.exp(bias * field)
    n1 = rng.standard_normal(shape, dtype=np.float32) * noise
    n2 = rng.standard_normal(shape, dtype=np.float32) * noise
    sig = np.sqrt((sig + n1) ** 2 + n2 ** 2)  # Rician magnitude
    return (sig * 1000.0 * float(rng.uniform(0.8, 1.25))).astype(np.float32)


class Head:
    """One procedural head.

    Args:
        rng: the subject's generator (all anatomy is drawn at creation).
        tumour: draw a glioma (oedema, core, enhancing rim).
        lesions: mean number of small unlabelled white-matter lesions.

    Attributes:
        centres: ``"tumour"``, ``"hippocampus_left"``, ``"hippocampus_right"`` (world mm).
        radii: half-size of the head (mm), for framing.
    """

    def __init__(self, rng: np.random.Generator, *, tumour: bool = False, lesions: float = 1.0) -> None:
        self.rng = rng
        n = lambda sd=1.0, m=0.0: float(rng.normal(m, sd))  # noqa: E731
        size = math.exp(n(0.06))
        self.brain = Blob(np.zeros(3), np.array([66, 83, 58]) * size * np.exp(rng.normal(0, 0.04, 3)),
                          rotation(n(4), n(3), n(3)), wobble=rng.normal(0, 0.03, 15))
        r = self.brain.radii
        self.radii = r + 14
        self.csf_gap = 2.0 + abs(n(1.0)) + 0.03 * max(0, rng.integers(20, 90) - 40)  # atrophy with age
        self.scalp = Blob(self.brain.centre, r + self.csf_gap + 12, self.brain.rot, wobble=self.brain.wobble)
        self.skull = Blob(self.brain.centre, r + self.csf_gap + 7, self.brain.rot, wobble=self.brain.wobble)
        self.csf = Blob(self.brain.centre, r + self.csf_gap, self.brain.rot, wobble=self.brain.wobble)
        self.texture_seed = int(rng.integers(2**31))
        vent = 1.0 + abs(n(0.25))
        self.ventricles = [Blob(np.array([s * 11, -2 + n(2), 14]), np.array([6, 32, 9]) * vent,
                                rotation(0, s * 8, 0), bend=(s * 0.25, -0.35)) for s in (1, -1)]
        self.deep = [Blob(np.array([s * 18, 2, 2]), (11, 16, 11), rotation(0, 0, s * 15)) for s in (1, -1)]
        self.cerebellum = Blob(np.array([0, -52, -42]) * size, np.array([50, 28, 22]) * size,
                               wobble=rng.normal(0, 0.03, 15))
        self.stem = Tube.smooth([[0, -18, -10], [0, -24, -45], [0, -28, -80]], [13, 11, 10], 4.0)
        # hippocampi: curved tubes along the temporal horns, head (anterior) to tail (posterior)
        self.hippo: dict[str, tuple[Tube, int, Blob, Tube]] = {}
        self.centres: dict[str, np.ndarray] = {}
        for s, side in ((1, "right"), (-1, "left")):
            x0 = s * (27 + n(1.5))
            z0 = -18 + n(2)
            length = 42 * math.exp(n(0.1))
            pts = [[x0 + s * 2, 8, z0], [x0, 8 - 0.33 * length, z0 + 2], [x0 - s * 3, 8 - 0.7 * length, z0 + 7],
                   [x0 - s * 10, 8 - length, z0 + 18]]
            pts = np.asarray(pts) + rng.normal(0, 1.2, (4, 3))
            rad = np.array([7.0, 5.0, 3.5, 2.5]) * math.exp(n(0.12)) * np.exp(rng.normal(0, 0.1, 4))
            tube = Tube.smooth(pts, rad, 1.0)
            split = int(len(tube.points) * float(np.clip(rng.normal(0.4, 0.08), 0.25, 0.6)))
            amyg = Blob(np.asarray(pts[0]) + [s * 1, 10 + n(1), 2], np.array([8, 8, 8]) * math.exp(n(0.1)),
                        wobble=rng.normal(0, 0.04, 15))
            horn = Tube.smooth(pts[:3] + np.array([s * 5.5, 0, 5]), [2.5, 2.0, 1.8], 1.0)
            self.hippo[side] = (tube, split, amyg, horn)
            self.centres[f"hippocampus_{side}"] = tube.points[len(tube.points) // 2]
        # glioma in one hemisphere's white matter
        self.tumour = None
        if tumour:
            side = 1 if rng.random() < 0.5 else -1
            for _ in range(100):
                c = np.array([side * rng.uniform(10, 50), rng.uniform(-55, 55), rng.uniform(-15, 40)])
                if self.brain.contains(c, 0.7)[0]:
                    break
            whole = Blob.random(rng, c, (25, 25, 25), size_sd=0.25, axis_sd=0.15, angle_sd=40, wobble_sd=0.15)
            core_r = whole.radii.mean() * rng.uniform(0.3, 0.6)
            core = Blob.random(rng, c + rng.normal(0, 4, 3), (core_r,) * 3, axis_sd=0.15, angle_sd=40,
                               wobble_sd=0.18)
            enhancing = rng.random() < 0.8
            rim = rng.uniform(0.55, 0.8)
            self.tumour = (whole, core, enhancing, rim)
            self.centres["tumour"] = c
        self.lesions = [Blob.random(rng, np.array([rng.uniform(-35, 35), rng.uniform(-40, 40), rng.uniform(0, 30)]),
                                    (3, 3, 3), size_sd=0.4, wobble_sd=0.1)
                        for _ in range(int(rng.poisson(lesions)))]

    def render(self, canvas: Canvas) -> Canvas:
        """Paint the head into ``canvas``."""
        g = canvas.grid
        canvas.paint(canvas.part("scalp"), self.scalp.mask(g))
        canvas.paint(canvas.part("skull"), self.skull.mask(g))
        canvas.paint(canvas.part("subarachnoid_csf", "csf"), self.csf.mask(g))
        # cortex with a gyral pattern: the grey/white boundary and the pial surface are modulated by noise
        shaped = self.brain.mask(g, 1.05)
        if shaped is not None:
            box, _ = shaped
            lev = self.brain.level(g, box)
            noise = smooth_noise(np.random.default_rng(self.texture_seed), lev.shape, max(1.0, 6.0 / g.spacing))
            canvas.paint(canvas.part("grey_matter", "gm"), (box, lev < 1.0 - 0.025 * np.maximum(noise, 0)))
            canvas.paint(canvas.part("white_matter", "wm"), (box, lev < 0.86 + 0.05 * noise),
                         only=canvas.ids("gm"))
        for b in self.deep:
            canvas.paint(canvas.part("deep_grey", "gm"), b.mask(g), only=canvas.ids("wm"))
        canvas.paint(canvas.part("cerebellum", "gm"), self.cerebellum.mask(g), only=canvas.ids("gm", "wm", "csf"))
        canvas.paint(canvas.part("cerebellar_wm", "wm"), self.cerebellum.mask(g, 0.55), only=canvas.ids("cerebellum"))
        canvas.paint(canvas.part("brainstem", "wm"), self.stem.mask(g), only=canvas.ids("gm", "wm", "csf"))
        for b in self.ventricles:
            canvas.paint(canvas.part("ventricle", "csf"), b.mask(g), only=canvas.ids("gm", "wm"))
        for side, (tube, split, amyg, horn) in self.hippo.items():
            canvas.paint(canvas.part("amygdala", "gm"), amyg.mask(g), only=canvas.ids("gm", "wm"))
            canvas.paint(canvas.part("temporal_horn", "csf"), horn.mask(g), only=canvas.ids("gm", "wm"))
            head = Tube(tube.points[: split + 1], tube.radii[: split + 1])
            tail = Tube(tube.points[split:], tube.radii[split:])
            canvas.paint(canvas.part("hippocampus_posterior", "gm", ("hippocampus_posterior", "hippocampus")),
                         tail.mask(g), never=canvas.ids("skull", "scalp"))
            canvas.paint(canvas.part("hippocampus_anterior", "gm", ("hippocampus_anterior", "hippocampus")),
                         head.mask(g), never=canvas.ids("skull", "scalp", "hippocampus_posterior"))
        brain = canvas.ids("gm", "wm", "ventricle")
        for b in self.lesions:
            canvas.paint(canvas.part("wm_lesion"), b.mask(g), only=canvas.ids("wm"))
        if self.tumour is not None:
            whole, core, enhancing, rim = self.tumour
            canvas.paint(canvas.part("edema", "edema", ("edema",)), whole.mask(g),
                         only=canvas.ids("wm", "wm_lesion", "deep_grey"))
            brain = canvas.ids("gm", "wm", "csf", "edema", "wm_lesion")
            if enhancing:
                canvas.paint(canvas.part("enhancing", "enhancing", ("enhancing_tumour",)), core.mask(g), only=brain)
                canvas.paint(canvas.part("necrosis", "necrosis", ("non_enhancing_tumour",)), core.mask(g, rim),
                             only=canvas.ids("enhancing"))
            else:
                canvas.paint(canvas.part("tumour_core", "tumour_core", ("non_enhancing_tumour",)), core.mask(g),
                             only=brain)
        return canvas
