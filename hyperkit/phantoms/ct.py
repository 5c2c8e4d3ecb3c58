"""CT synthesis: Hounsfield units per tissue, contrast phase, texture, blur and noise.

The part map of a :class:`~hyperkit.phantoms.anatomy.Torso` becomes a CT image:

1. each tissue gets its native attenuation plus its enhancement times the
   subject's contrast phase (0 = native scan, ~1 = portal-venous phase);
   values are jittered per subject (scanner calibration, physiology);
2. a smooth texture field (organ heterogeneity), vascular markings in the
   lungs, cortical bone on the rim of every bone;
3. partial-volume blur (Gaussian, a fraction of a voxel) and Gaussian noise
   whose level scales with the voxel size.

Values are typical literature figures (HU): air -1000, lung -850, fat -100,
water/bile/urine 0-15, muscle 50, native liver 55-65 and spleen 45-50,
pancreas 40-50, portal-venous liver ~110, spleen ~120, enhanced kidney cortex
~150-180, enhanced vessels 150-200, cancellous bone 200-300, cortical bone ~1000.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hyperkit.phantoms.shapes import Canvas, smooth_noise

__all__ = ["CT_TISSUES", "ct_image"]

#: tissue -> (native HU, enhancement at portal-venous phase (HU), texture sd (HU))
CT_TISSUES: dict[str, tuple[float, float, float]] = {
    "air": (-1000.0, 0.0, 0.0),
    "air_lumen": (-990.0, 0.0, 15.0),
    "fat": (-100.0, 0.0, 10.0),
    "muscle": (50.0, 10.0, 8.0),
    "lung": (-860.0, 0.0, 25.0),
    "airway_wall": (30.0, 10.0, 10.0),
    "blood_arterial": (42.0, 140.0, 6.0),
    "blood_venous": (42.0, 115.0, 6.0),
    "blood_portal": (42.0, 135.0, 6.0),
    "myocardium": (45.0, 60.0, 8.0),
    "liver": (60.0, 50.0, 8.0),
    "spleen": (48.0, 72.0, 10.0),
    "pancreas": (42.0, 58.0, 12.0),
    "kidney_cortex": (35.0, 140.0, 10.0),
    "kidney_medulla": (32.0, 70.0, 10.0),
    "adrenal": (30.0, 35.0, 8.0),
    "urine": (8.0, 0.0, 4.0),
    "bile": (10.0, 0.0, 4.0),
    "bowel_wall": (38.0, 60.0, 10.0),
    "bowel_fluid": (15.0, 0.0, 12.0),
    "stool": (-150.0, 0.0, 160.0),
    "disc": (85.0, 0.0, 12.0),
    "cartilage": (110.0, 0.0, 40.0),
    "bone": (250.0, 0.0, 70.0),
    "csf": (8.0, 0.0, 4.0),
    "spinal_cord": (35.0, 0.0, 5.0),
    "liver_tumour": (40.0, 25.0, 15.0),
    "necrosis": (18.0, 0.0, 8.0),
    "pancreas_tumour": (36.0, 25.0, 12.0),
    "lung_tumour": (32.0, 35.0, 14.0),
    "colon_tumour": (40.0, 55.0, 12.0),
    "prostate_pz": (38.0, 35.0, 8.0),
    "prostate_tz": (40.0, 40.0, 10.0),
    "uterus": (45.0, 60.0, 10.0),
}

_CORTEX_HU = 1000.0


def ct_image(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Turn a painted part map into a CT volume in Hounsfield units.

    Args:
        canvas: the painted subject (part map and part table).
        rng: generator for this image's acquisition (phase, noise, textures).

    Returns:
        int16 array (X, Y, Z) in HU, clipped to [-1024, 3071].
    """
    spacing = canvas.grid.spacing
    phase = 0.0 if rng.random() < 0.15 else float(rng.uniform(0.6, 1.1))
    arterial = float(rng.uniform(0.8, 1.6))
    mean, tex = {}, {}
    for tissue, (native, enh, sd) in CT_TISSUES.items():
        e = enh * phase * float(rng.uniform(0.85, 1.15)) * (arterial if tissue == "blood_arterial" else 1.0)
        mean[tissue] = native + (float(rng.normal(0, 4)) if tissue != "air" else 0.0) + e
        tex[tissue] = sd
    hu = canvas.lut(mean, by="tissue", default=-1000.0)[canvas.parts]
    shape = canvas.parts.shape
    hu += canvas.lut(tex, by="tissue")[canvas.parts] * smooth_noise(rng, shape, max(1.0, 6.0 / spacing))
    # lungs: sparse vascular markings
    lung = canvas.lut({"lung": 1}, by="tissue", dtype=np.uint8)[canvas.parts].astype(bool)
    if lung.any():
        marks = smooth_noise(rng, shape, max(1.0, 2.5 / spacing)) > 1.7
        hu[lung & marks] += 600.0
    # cortical bone: the rim of every bone
    bone = canvas.lut({"bone": 1}, by="tissue", dtype=np.uint8)[canvas.parts].astype(bool)
    if bone.any():
        rim = bone & ~ndimage.binary_erosion(bone)
        hu[rim] = _CORTEX_HU + 200.0 * float(rng.normal())
    hu = ndimage.gaussian_filter(hu, float(rng.uniform(0.45, 0.75)))
    sigma = float(rng.uniform(10.0, 22.0)) * 1.5 / spacing
    hu += rng.standard_normal(shape, dtype=np.float32) * max(sigma, 2.0)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
