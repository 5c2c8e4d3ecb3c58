"""A procedural human torso: where every structure is, independent of modality.

:class:`Torso` draws one subject (sex, habitus, spine, organ sizes, shapes
and positions, vessel trees, tumours) from a random generator and paints it
into a :class:`~hyperkit.phantoms.shapes.Canvas` part map on any grid. The
same subject rendered on two grids is the same anatomy: every random number
is drawn when the subject is created, never while painting (the painting of
textures such as bowel loops draws from a generator seeded by the subject).

The part map is turned into a CT image by :mod:`hyperkit.phantoms.ct` and
into MRI contrasts by :mod:`hyperkit.phantoms.mri`; labels come from the parts'
tags (TotalSegmentator v2 structure names, or held-out targets such as
``liver``, ``spleen``, ``pancreas``, ``left_atrium``, ``prostate_pz``).

Coordinates: RAS+ millimetres (x to the patient's right, y anterior, z
superior); z = 0 is the lower end plate of L5, x = 0 the midline. Every size,
offset and spread is a named, unit-carrying field of the per-organ tables in
:mod:`hyperkit.phantoms.organs`; this module holds the construction.

The order of the random draws is part of the phantoms' definition: the same
seed gives the same subject only while every draw happens in the same order
(``tests/test_phantom_hashes.py`` pins a few phantoms).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from hyperkit.phantoms.organs import (AIRWAYS, BODY, BODY_KNOTS, BOWEL, DIAPHRAGM, DUODENUM, GALLBLADDER, HABITUS,
                                      HEART, HIP, KIDNEY, LIVER, LIVER_TUMOUR, LUNG_TUMOUR, LUNGS, MUSCLES, PANCREAS,
                                      PELVIS, RIBCAGE, SPINE, SPLEEN, STOMACH, THIGH, TUBE_STEP_MM, VERTEBRA,
                                      VERTEBRAL_LEVELS, VESSEL_TREE, VESSELS)
from hyperkit.phantoms.shapes import N_WOBBLE, Blob, Canvas, Tube, rotation, smooth_noise

__all__ = ["Torso", "VERTEBRAE", "RIBS", "TOTALSEG_STRUCTURES", "frame"]

VERTEBRAE: tuple[str, ...] = tuple(f"vertebrae_{name}" for name, _ in VERTEBRAL_LEVELS)
RIBS: tuple[str, ...] = tuple(f"rib_{side}_{k}" for side in ("left", "right") for k in range(1, 13))

#: every labelled structure of the CT training cohort (TotalSegmentator v2 names).
TOTALSEG_STRUCTURES: tuple[str, ...] = (
    "subcutaneous_fat",
    "lung_upper_lobe_left", "lung_lower_lobe_left",
    "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right",
    "trachea", "esophagus", "heart",
    "aorta", "inferior_vena_cava", "superior_vena_cava", "portal_vein_and_splenic_vein",
    "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
    "kidney_left", "kidney_right", "adrenal_gland_left", "adrenal_gland_right",
    "stomach", "gallbladder", "duodenum", "small_bowel", "urinary_bladder",
    "iliopsoas_left", "iliopsoas_right", "autochthon_left", "autochthon_right",
    "gluteus_maximus_left", "gluteus_maximus_right", "spinal_cord",
    *VERTEBRAE, "sacrum", *RIBS, "sternum", "clavicula_left", "clavicula_right",
    "hip_left", "hip_right", "femur_left", "femur_right",
)

_STEP = TUBE_STEP_MM
_SIDES = (1, -1)  # +1: the patient's right (+x), -1: the left


def frame(direction: np.ndarray, roll_deg: float = 0.0) -> np.ndarray:
    """A rotation whose local z axis points along ``direction`` (then rolled about it)."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    ref = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    x = np.cross(ref, d)
    x /= np.linalg.norm(x)
    y = np.cross(d, x)
    r = np.stack([x, y, d], axis=1)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    return r @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _side(name: str, sign: float) -> str:
    """``"kidney"``, +1 -> ``"kidney_right"`` (RAS: +x is the patient's right)."""
    return f"{name}_{'right' if sign > 0 else 'left'}"


def _liver_lesion_part(cv: Canvas) -> int:
    """The liver lesion's part id on ``cv`` (registered at first use): one definition for the liver's
    paint step and :meth:`Torso._keep_a_liver_lesion`."""
    return cv.part("liver_tumour", "liver_tumour", ("liver_tumour",))


class Torso:
    """One procedural subject: thorax, abdomen and pelvis.

    Args:
        rng: the subject's generator (all anatomy is drawn here, at creation).
        sex: ``"m"`` or ``"f"``; drawn when None.
        liver_tumours: expected number of liver lesions (Poisson mean); 0 for none.
        pancreas_tumour: whether the pancreas carries a hypodense tumour.
        lung_tumours: number of lung tumours (0, 1, 2...).
        colon_tumour: whether a segment of the colon carries an annular tumour.
        at_least_one_liver_tumour: draw until one liver lesion exists.

    Attributes:
        sex, age: demographic draw.
        height_scale, width_scale: factors on every craniocaudal / transverse length.
        fat_mm: subcutaneous fat thickness (mm); muscle_scale: factor on muscle sizes.
        z: dict of landmark heights (mm): vertebral bodies ``"L1"...`` (centres),
            ``"top"`` (above T1), ``"fem"`` (femoral heads), ``"dia_r"``/``"dia_l"``
            (diaphragm domes), ``"heart"``, ``"liver_bottom"``, ``"pancreas"``, ``"kidney_left"``...
        centres: dict of world centres (mm) of organs used to frame held-out tasks
            (``"left_atrium"``, ``"prostate"``, ``"lung_tumour"``, ``"colon_tumour"``...).
        shapes: the main organs' shapes (for framing and inspection).
    """

    def __init__(self, rng: np.random.Generator, sex: str | None = None, *, liver_tumours: float = 0.0,
                 pancreas_tumour: bool = False, lung_tumours: int = 0, colon_tumour: bool = False,
                 at_least_one_liver_tumour: bool = False) -> None:
        self.rng = rng
        self.sex = sex if sex in ("m", "f") else ("m" if rng.random() < 0.5 else "f")
        self.age = int(rng.integers(20, 90))
        self.steps: list[Callable[[Canvas], None]] = []
        self.z: dict[str, float] = {}
        self.centres: dict[str, np.ndarray] = {}
        self.shapes: dict[str, Blob | Tube] = {}
        self.texture_seed = int(rng.integers(2**31))
        self._habitus()
        self._spine_frame()
        self._body()
        self._lungs_and_mediastinum()
        self._muscles()
        self._heart()
        self._liver(liver_tumours, at_least_one_liver_tumour)
        self._upper_abdomen(pancreas_tumour)
        self._pelvic_organs()
        self._vessels()
        self._airways_and_esophagus()
        self._bowel(colon_tumour)
        self._bones()
        self._lung_tumours(lung_tumours)
        if at_least_one_liver_tumour:  # after every organ: a structure painted after the lesions may cover them
            self._paint_later(self._keep_a_liver_lesion)

    # ------------------------------------------------------------------ draws
    def _normal(self, sd: float = 1.0, mean: float = 0.0) -> float:
        """One normal draw."""
        return float(self.rng.normal(mean, sd))

    def _normal_of(self, mean_sd: tuple[float, float]) -> float:
        """One normal draw from a table's ``(mean, sd)``."""
        return self._normal(mean_sd[1], mean_sd[0])

    def _uniform(self, lo: float, hi: float) -> float:
        """One uniform draw."""
        return float(self.rng.uniform(lo, hi))

    def _wobble(self, sd: float) -> np.ndarray:
        """The radial wobble coefficients of a hand-built :class:`Blob`."""
        return self.rng.normal(0, sd, N_WOBBLE)

    # ------------------------------------------------------------------ body frame
    def spine_y(self, z: np.ndarray | float) -> np.ndarray:
        """y (mm) of the vertebral-body centreline at height z."""
        return np.interp(z, self._spine_curve_z, self._spine_curve_y)

    def spine_x(self, z: np.ndarray | float) -> np.ndarray:
        """x (mm) of the spine (mild scoliosis) at height z."""
        return self._scoliosis_mm * np.sin((np.asarray(z) - self._scoliosis_phase_mm) / SPINE.scoliosis_wavelength_mm)

    def body_section(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Body cross-section at heights z: half-width a, half-depth b, centre y (mm)."""
        a = np.interp(z, self._section_z, self._section_half_width)
        b = np.interp(z, self._section_z, self._section_half_depth)
        yc = self.spine_y(z) - self._spine_to_back + b
        return a, b, yc

    def cavity_section(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inner (body-cavity) cross-section at z: half-width, half-depth, centre y."""
        a, b, yc = self.body_section(z)
        wall = self.fat_mm + np.interp(z, self._section_z, self._wall_mm)
        return a - wall, b - wall, yc

    def diaphragm_z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the diaphragm surface above (x, y): two domes, lower posteriorly."""
        d = DIAPHRAGM
        yref = self.spine_y(self.z["dia_r"]) + d.centre_in_front_of_spine_mm
        right = (self.z["dia_r"] - (x - self._dome_offset_x) ** 2 / d.lateral_fall_mm2
                 - (y - yref) ** 2 / d.sagittal_fall_mm2)
        left = (self.z["dia_l"] - (x + self._dome_offset_x) ** 2 / d.lateral_fall_mm2
                - (y - yref) ** 2 / d.sagittal_fall_mm2)
        post = np.minimum(y - yref, 0) * d.posterior_slope
        return np.maximum(right, left) + post

    def spine_point(self, zc: float, dx: float, dy: float, dz: float = 0.0) -> np.ndarray:
        """A point offset (mm) from the spine centreline at height zc."""
        return np.array([float(self.spine_x(zc)) + dx, float(self.spine_y(zc)) + dy, zc + dz])

    def cavity_point(self, zc: float, fx: float, fy: float) -> np.ndarray:
        """A point placed relative to the body cavity at height zc: x = fx * cavity half-width,
        y = spine + fy * (distance from the spine to the anterior cavity wall)."""
        ca, cb, cyc = (float(v[0]) for v in self.cavity_section(np.array([zc])))
        ys = float(self.spine_y(zc))
        return np.array([float(self.spine_x(zc)) + fx * ca, ys + fy * (cyc + cb - ys), zc])

    def _landmark_cavity_point(self, point: tuple[str, float, float, float]) -> np.ndarray:
        """A table's ``(landmark, dz, fx, fy)`` as a :meth:`cavity_point`."""
        name, dz, fx, fy = point
        return self.cavity_point(self.z[name] + dz, fx, fy)

    def _landmark_spine_point(self, point: tuple[str, float, float, float]) -> np.ndarray:
        """A table's ``(landmark, dz, dx, dy)`` as a :meth:`spine_point`."""
        name, dz, dx, dy = point
        return self.spine_point(self.z[name] + dz, dx, dy)

    def _random_blob(self, centre: np.ndarray, radii: tuple[float, float, float], **kw) -> Blob:
        return Blob.random(self.rng, centre, radii, **kw)

    def _paint_later(self, fn: Callable[[Canvas], None]) -> None:
        self.steps.append(fn)

    def render(self, canvas: Canvas) -> Canvas:
        """Paint the subject into ``canvas`` (its grid sets the field of view and spacing)."""
        for step in self.steps:
            step(canvas)
        if canvas.inside is not None:  # nothing outside the skin
            canvas.parts[~canvas.inside] = 0
        return canvas

    # ------------------------------------------------------------------ subject frame
    def _habitus(self) -> None:
        hb, female = HABITUS, self.sex == "f"
        self.height_scale = math.exp(self._normal(hb.height_log_sd)) * (hb.female_height if female else 1.0)
        self.width_scale = math.exp(self._normal(hb.width_log_sd)) * (hb.female_width if female else 1.0)
        fat_median = hb.fat_median_female_mm if female else hb.fat_median_male_mm
        self.fat_mm = float(np.clip(math.exp(self._normal(hb.fat_log_sd, math.log(fat_median))), *hb.fat_range_mm))
        self.belly = (max(0.0, self._normal(hb.belly_sd, hb.belly_mean))
                      + hb.belly_per_fat_mm * max(0.0, self.fat_mm - hb.reference_fat_mm))
        self.muscle_scale = math.exp(self._normal(hb.muscle_log_sd)) * (hb.female_muscle if female else 1.0)

    def _spine_frame(self) -> None:
        sp = SPINE
        z = 0.0
        self.levels: dict[str, tuple[float, float]] = {}
        for name, height in VERTEBRAL_LEVELS:
            hgt = height * self.height_scale * math.exp(self._normal(sp.level_height_log_sd))
            disc = sp.disc_fraction * hgt
            self.levels[name] = (z, z + hgt - disc)  # body bottom, top
            self.z[name] = z + 0.5 * (hgt - disc)
            z += hgt
        self.z["top"] = z + sp.top_above_t1_mm * self.height_scale
        self.z["fem"] = sp.femoral_heads_z_mm * self.height_scale + self._normal(sp.femoral_heads_sd_mm)
        lordosis, kyphosis = self._normal_of(sp.lordosis_mm), self._normal_of(sp.kyphosis_mm)
        self._spine_curve_z = np.array([self.z["fem"] - sp.curve_below_heads_mm, sp.curve_pelvis_z_mm, 0,
                                        self.z["L3"], self.z["T12"], self.z["T7"], self.z["T1"],
                                        self.z["top"] + sp.curve_above_top_mm])
        self._spine_curve_y = np.array([*sp.curve_pelvis_y_mm, 0.0, lordosis, sp.t12_lordosis_share * lordosis,
                                        -kyphosis, sp.t1_kyphosis_share * kyphosis + sp.t1_offset_y_mm, sp.top_y_mm])
        self._scoliosis_mm, self._scoliosis_phase_mm = self._normal(sp.scoliosis_sd_mm), self._uniform(
            *sp.scoliosis_phase_mm)
        right_dome = self.z["T10"] + self._normal_of(sp.right_dome_above_t10_mm)
        self.z["dia_r"] = right_dome
        self.z["dia_l"] = right_dome - self._uniform(*sp.left_dome_below_right_mm)
        self._dome_offset_x = self._uniform(*sp.dome_offset_x_mm)

    def _body(self) -> None:
        bd, th = BODY, THIGH
        zf, w, f = self.z["fem"], self.width_scale, self.fat_mm
        hip = bd.female_hip_width if self.sex == "f" else 1.0
        self._section_z = np.array([self.z[name] + dz for name, dz in BODY_KNOTS])
        a = np.array(bd.half_width_mm, float)
        a[slice(*bd.hip_knots)] *= hip
        a = a * w
        b = np.array(bd.half_depth_mm) * w
        b[slice(*bd.belly_knots)] += self.belly * np.array(bd.belly_depth_mm)
        a += f - HABITUS.reference_fat_mm + self.rng.normal(0, bd.half_width_sd_mm, a.size)
        b += bd.depth_per_fat_mm * (f - HABITUS.reference_fat_mm) + self.rng.normal(0, bd.half_depth_sd_mm, b.size)
        self._section_half_width = np.maximum(a, bd.min_half_axis_mm)
        self._section_half_depth = np.maximum(b, bd.min_half_axis_mm)
        self._wall_mm = np.array(bd.wall_mm) * self.muscle_scale
        self._spine_to_back = bd.spine_to_back_muscle_mm * self.muscle_scale + bd.back_per_fat_mm * f

        def paint(cv: Canvas) -> None:
            box = cv.everywhere()
            x, y, z = cv.grid.axes(box)
            zz = z[0, 0, :]
            out = None
            for shrink, name, tissue in ((0.0, "subcutaneous_fat", "fat"), (f, "body_wall", "muscle"),
                                         (None, "visceral_fat", "fat")):
                if shrink is None:
                    ca, cb, cyc = self.cavity_section(zz)
                else:
                    ca, cb, cyc = self.body_section(zz)
                    ca, cb = ca - shrink, cb - shrink
                ca = np.maximum(ca, 1.0).astype(np.float32).reshape(1, 1, -1)
                cb = np.maximum(cb, 1.0).astype(np.float32).reshape(1, 1, -1)
                cyc = cyc.astype(np.float32).reshape(1, 1, -1)
                u = (x / ca) ** 2
                v = ((y - cyc) / cb) ** 2
                back = y < cyc
                inside = np.where(back, u + v * v, u + v) < 1
                if shrink is None:  # no cavity behind the spine: back muscles live there
                    behind = (self.spine_y(zz) - bd.cavity_behind_spine_mm).astype(np.float32).reshape(1, 1, -1)
                    inside &= y > behind + bd.cavity_back_slope * np.abs(x)
                tags = ("subcutaneous_fat",) if name == "subcutaneous_fat" else ()
                cv.paint(cv.part(name, tissue, tags), (box, inside))
                if out is None:
                    out = inside
            cv.inside = out
        self._paint_later(paint)

        # thighs below the pelvis (painted below the gluteal fold only)
        thighs = []
        for s in _SIDES:
            top = np.array([s * th.offset_x_mm * w, self.spine_y(zf) + th.top_in_front_of_spine_mm,
                            zf - th.top_below_heads_mm])
            r = th.radius_mm * w * self.muscle_scale + f
            thighs.append(Tube.smooth([top, *(top + [s * dx, dy, dz] for dx, dy, dz in th.path_mm)],
                                      [r * k for k in th.radius_factors], _STEP))

        def paint_thighs(cv: Canvas) -> None:
            box = cv.grid.box((-1e4, -1e4, -1e4), (1e4, 1e4, zf - th.fold_below_heads_mm))
            if box is None:
                return
            below = np.zeros(cv.grid.shape, bool)
            below[box] = True
            for t in thighs:
                for grow, name, tissue in ((0.0, "thigh_fat", "fat"), (-f, "thigh_muscle", "muscle")):
                    shaped = t.mask(cv.grid, grow)
                    if shaped is not None:
                        m = shaped[1] & below[shaped[0]]
                        cv.paint(cv.part(name, tissue), (shaped[0], m))
                        if cv.inside is not None:
                            cv.inside[shaped[0]] |= m
        self._paint_later(paint_thighs)

    # ------------------------------------------------------------------ thorax
    def _lungs_and_mediastinum(self) -> None:
        lu = LUNGS
        fissure = [self._normal(lu.fissure_sd_mm) for _ in range(6)]  # six drawn, three used (draw order)
        tilt = [self._normal(lu.fissure_tilt_sd) for _ in range(3)]
        z5, z4 = self.z["T5"], self.z["T4"]

        def lungs(cv: Canvas) -> None:
            lo = min(self.z["dia_l"], self.z["dia_r"]) - lu.bottom_below_domes_mm
            box = cv.grid.box((-1e4, -1e4, lo), (1e4, 1e4, self.z["top"] + lu.top_margin_mm))
            if box is None:
                return
            x, y, z = cv.grid.axes(box)
            zz = z[0, 0, :]
            ca, cb, cyc = self.cavity_section(zz)
            taper = np.clip((self.z["top"] + lu.apex_margin_mm - zz)
                            / (self.z["top"] - self.z["T3"] + lu.apex_margin_mm),
                            lu.apex_min_taper, 1.0) ** 0.5
            ca = (ca * taper).astype(np.float32).reshape(1, 1, -1)
            cb = (cb * np.clip(taper, lu.apex_min_depth_taper, 1)).astype(np.float32).reshape(1, 1, -1)
            cyc = cyc.astype(np.float32).reshape(1, 1, -1)
            u, v = (x / ca) ** 2, ((y - cyc) / cb) ** 2
            inside = np.where(y < cyc, u + v * v, u + v) < 1
            inside &= z > self.diaphragm_z(x, y)
            inside &= y > (self.spine_y(zz) - lu.behind_spine_mm).reshape(1, 1, -1)
            inside &= z < self.z["top"] + lu.above_top_mm
            ys = self.spine_y(zz).astype(np.float32).reshape(1, 1, -1)
            yfront = (cyc + cb)
            depth = np.clip((y - ys) / np.maximum(yfront - ys, 1), 0, 1)  # 0 at the spine, 1 at the front wall
            # oblique fissures: from T4 posteriorly down to the anterior diaphragm
            zfl = (z4 + fissure[0] - (z4 - self.z["dia_l"] + lu.left_oblique_below_dome_mm) * depth ** lu.oblique_power
                   + tilt[0] * x)
            zfr = (z4 - lu.right_oblique_below_t4_mm + fissure[1]
                   - (z4 - self.z["dia_r"]) * depth ** lu.oblique_power + tilt[1] * x)
            zh = self.z["T6"] + fissure[2] + tilt[2] * x  # right horizontal fissure
            left, right = inside & (x < 0), inside & (x >= 0)
            upper_l = z > zfl
            upper_r = z > zfr
            for name, m in (("lung_upper_lobe_left", left & upper_l), ("lung_lower_lobe_left", left & ~upper_l),
                            ("lung_lower_lobe_right", right & ~upper_r),
                            ("lung_middle_lobe_right", right & upper_r & (z < zh)),
                            ("lung_upper_lobe_right", right & upper_r & (z >= zh))):
                cv.paint(cv.part(name, "lung", (name, "lung")), (box, m))
        self._paint_later(lungs)

        rx, ry, rz = lu.mediastinum_radii_mm
        med = Blob(self.spine_point(z5, *lu.mediastinum_spine_point),
                   (rx + self._normal(lu.mediastinum_width_sd_mm), ry, rz * self.height_scale),
                   rotation(self._normal(lu.mediastinum_tilt_sd_deg), 0, 0), wobble=self._wobble(lu.shape_wobble_sd))
        self._paint_later(lambda cv: cv.paint(cv.part("mediastinal_fat", "fat"), med.mask(cv.grid),
                                              only=cv.ids("lung")))

    def _heart(self) -> None:
        he = HEART
        size = math.exp(self._normal(he.size_log_sd)) * self.height_scale
        base = self.z["dia_l"] + he.base_above_left_dome_mm * size + self._normal(he.base_sd_mm)
        c = self.spine_point(base, he.centre_from_spine_mm[0] + self._normal(he.centre_sd_mm),
                             he.centre_from_spine_mm[1] + self._normal(he.centre_sd_mm))
        apex_dir = np.array([k + self._normal(he.apex_direction_sd) for k in he.apex_direction])
        rot = frame(apex_dir, self._normal(he.roll_sd_deg))
        heart = Blob(c, np.array(he.radii_mm) * size * np.exp(self.rng.normal(0, he.radii_log_sd, 3)), rot,
                     wobble=self._wobble(he.wobble_sd))
        self.z["heart"] = base
        ax = rot[:, 2]
        la_c = (c - ax * he.la_behind_centre_mm * size + np.array(he.la_offset_mm) * size
                + self.rng.normal(0, he.la_offset_sd_mm, 3))
        la = Blob.random(self.rng, la_c, he.la_radii_mm, size_sd=he.la_size_sd, axis_sd=he.la_axis_sd,
                         angle_sd=he.la_angle_sd_deg,
                         rot=frame([1, he.la_axis_spread * self._normal(), he.la_axis_spread * self._normal()]),
                         wobble_sd=he.la_wobble_sd, bend_sd=he.la_bend_sd)
        self.centres["left_atrium"] = la_c
        self.shapes["left_atrium"] = la
        ra = Blob.random(self.rng, c - ax * he.ra_behind_centre_mm * size + np.array(he.ra_offset_mm) * size,
                         he.ra_radii_mm, size_sd=he.ra_size_sd)
        lv = Blob.random(self.rng, c + ax * he.lv_along_axis_mm * size + np.array(he.lv_offset_mm), he.lv_radii_mm,
                         rot=rot, size_sd=he.ventricle_size_sd)
        rv = Blob.random(self.rng, c + ax * he.rv_along_axis_mm * size + np.array(he.rv_offset_mm), he.rv_radii_mm,
                         rot=rot, size_sd=he.ventricle_size_sd)
        peri = Blob(heart.centre, heart.radii + he.pericardium_mm + abs(self._normal(he.pericardium_sd_mm)), heart.rot,
                    wobble=heart.wobble)
        # pulmonary veins: two per side leaving the left atrium laterally into the lungs
        veins = []
        for s in _SIDES:
            for dz in he.pv_ostia_dz_mm:
                start = la_c + np.array([s * he.pv_ostium_offset_mm[0], he.pv_ostium_offset_mm[1], dz]) * size
                d = np.array([s * 1.0, he.pv_direction_y + he.pv_direction_sd * self._normal(),
                              he.pv_direction_z * np.sign(dz) + he.pv_direction_sd * self._normal()])
                length = self._uniform(*he.pv_length_mm)
                r0 = self._uniform(*he.pv_radius_mm)
                veins.append((Tube.smooth([start, start + d * he.pv_first_point_mm, start + d * length],
                                          [r0 * k for k in he.pv_radius_factors], _STEP),
                              self._uniform(*he.pv_ostium_length_mm)))
        # left atrial appendage: a finger from the atrium's left anterior-superior side (part of the atrium)
        laa_dir = np.array(he.laa_direction) + self.rng.normal(0, he.laa_direction_sd, 3)
        laa_start = la_c + la.rot @ (la.radii * np.array(he.laa_base))
        laa_len = self._uniform(*he.laa_length_mm)
        laa = Tube.smooth([laa_start, laa_start + laa_dir / np.linalg.norm(laa_dir) * laa_len * 0.5
                           + self.rng.normal(0, he.laa_bend_sd_mm, 3),
                           laa_start + laa_dir / np.linalg.norm(laa_dir) * laa_len],
                          [self._uniform(*r) for r in he.laa_radii_mm], _STEP)
        z5 = self.z["T5"]
        pa_start = c + np.array(he.pa_start_mm) * size
        pa = Tube.smooth([pa_start, pa_start + he.pa_bend_mm, self.spine_point(z5, *he.pa_bifurcation)],
                         he.pa_radii_mm, _STEP)
        pa_l = Tube.smooth([self.spine_point(z5, *he.pa_bifurcation), self.spine_point(z5, *he.pa_left_end)],
                           he.pa_left_radii_mm, _STEP)
        pa_r = Tube.smooth([self.spine_point(z5, *he.pa_bifurcation), self.spine_point(z5, *he.pa_right_mid),
                            self.spine_point(z5, *he.pa_right_end)], he.pa_right_radii_mm, _STEP)

        def paint(cv: Canvas) -> None:
            soft = cv.ids("lung", "mediastinal_fat", "visceral_fat", "body_wall")
            cv.paint(cv.part("pericardial_fat", "fat"), peri.mask(cv.grid), only=soft)
            myo = cv.part("myocardium", "myocardium", ("heart",))
            cv.paint(myo, heart.mask(cv.grid), only=soft + cv.ids("pericardial_fat"))
            for b in (la, ra):
                wall = Blob(b.centre, b.radii + he.atrial_wall_mm, b.rot, b.bend, b.wobble, b.taper)
                cv.paint(myo, wall.mask(cv.grid), never=cv.ids("subcutaneous_fat", "body_wall"))
            cv.paint(cv.part("left_atrium_blood", "blood_arterial", ("heart", "left_atrium")), la.mask(cv.grid))
            cv.paint(cv.ids("left_atrium_blood")[0], laa.mask(cv.grid), only=soft + [myo])
            cv.paint(cv.part("right_atrium_blood", "blood_venous", ("heart",)), ra.mask(cv.grid), only=[myo])
            cv.paint(cv.part("left_ventricle_blood", "blood_arterial", ("heart",)), lv.mask(cv.grid), only=[myo])
            cv.paint(cv.part("right_ventricle_blood", "blood_venous", ("heart",)), rv.mask(cv.grid), only=[myo])
            for tube, ostium in veins:
                near = Tube(tube.points[: max(2, int(ostium / _STEP))], tube.radii[: max(2, int(ostium / _STEP))])
                cv.paint(cv.part("pulmonary_vein", "blood_arterial"), tube.mask(cv.grid), only=soft)
                cv.paint(cv.part("pulmonary_vein_ostium", "blood_arterial", ("left_atrium",)), near.mask(cv.grid),
                         only=soft + cv.ids("pulmonary_vein", "myocardium"))
            for t in (pa, pa_l, pa_r):
                cv.paint(cv.part("pulmonary_artery", "blood_venous"), t.mask(cv.grid), only=soft + [myo])
        self._paint_later(paint)

    # ------------------------------------------------------------------ abdomen
    def _liver(self, n_tumours: float, at_least_one: bool) -> None:
        lv, tu, gb = LIVER, LIVER_TUMOUR, GALLBLADDER
        size = math.exp(self._normal(lv.size_log_sd))
        zr = self.z["dia_r"]
        zc = zr - lv.right_below_dome_mm * size
        ca, cb, cyc = (float(v[0]) for v in self.cavity_section(np.array([zc])))
        depth = cyc + cb - float(self.spine_y(zc))  # spine to anterior abdominal wall
        right = self._random_blob(self.cavity_point(zc, *lv.right_cavity)
                                  + [self._normal(lv.right_shift_sd_mm), self._normal(lv.right_shift_sd_mm), 0],
                                  (lv.right_radii[0] * ca, lv.right_radii[1] * depth, lv.right_radii[2]), size_sd=0.0,
                                  axis_sd=lv.right_axis_sd, angle_sd=lv.right_angle_sd_deg,
                                  wobble_sd=lv.right_wobble_sd, bend_sd=lv.right_bend_sd,
                                  taper=self._normal(lv.taper_sd))
        right.radii *= size
        left_size = math.exp(self._normal(lv.left_size_log_sd))
        lx, ly, lz = lv.left_radii
        left = self._random_blob(self.cavity_point(zr - lv.left_below_dome_mm * size, *lv.left_cavity)
                                 + [self._normal(lv.left_shift_sd_mm[0]), self._normal(lv.left_shift_sd_mm[1]), 0],
                                 np.array([lx * ca, ly * depth, lz]) * size
                                 * left_size ** np.array(lv.left_size_exponents),
                                 size_sd=0.0, axis_sd=lv.left_axis_sd, angle_sd=lv.left_angle_sd_deg,
                                 wobble_sd=lv.left_wobble_sd,
                                 rot=rotation(0, self._normal_of(lv.left_tilt_deg), self._normal_of(lv.left_turn_deg)),
                                 taper=self._normal(lv.taper_sd))
        riedel = None
        if self.rng.random() < lv.riedel_probability:  # Riedel's lobe: a tongue down the right side
            dx, dy, dz = lv.riedel_offset_mm
            riedel = self._random_blob(right.centre + [dx, dy, dz * size], lv.riedel_radii_mm,
                                       size_sd=lv.riedel_size_sd, wobble_sd=lv.riedel_wobble_sd)
        caudate = self._random_blob(self.spine_point(zr - lv.caudate_below_dome_mm, *lv.caudate_spine_offset),
                                    lv.caudate_radii_mm, size_sd=lv.caudate_size_sd, wobble_sd=lv.caudate_wobble_sd)
        lobes = [b for b in (right, left, caudate, riedel) if b is not None]
        self.shapes["liver"] = right
        self.centres["liver"] = right.centre.copy()
        self._liver_lobes = lobes
        self._liver_bottom = float(right.centre[2] - right.radii[2])
        self.z["liver_bottom"] = self._liver_bottom

        # vessel trees: portal from the hilum, hepatic veins from the IVC at the top
        hilum = self.spine_point(zr - lv.hilum_below_dome_mm * size, *lv.hilum_spine_offset)
        self.centres["liver_hilum"] = hilum
        tree: list[Tube] = []
        for direction, radius in lv.portal_branches:
            self._grow(tree, hilum, np.array(direction), radius, lv.tree_levels, lobes)
        ivc_top = self.spine_point(zr - lv.hepatic_vein_root_below_dome_mm, *lv.hepatic_vein_root_offset)
        for d in lv.hepatic_vein_directions:
            self._grow(tree, ivc_top, np.asarray(d) + self.rng.normal(0, lv.hepatic_vein_direction_sd, 3),
                       lv.hepatic_vein_radius_mm, lv.tree_levels, lobes)
        self._liver_tree = tree

        # tumours: random lesions inside the liver, sometimes with a necrotic core
        count = int(self.rng.poisson(n_tumours)) if n_tumours > 0 else 0
        if at_least_one:
            count = max(count, 1)
        lesions: list[tuple[Blob, Blob | None]] = []
        self._liver_lesions = lesions
        for _ in range(count):
            centre = self._inside(lobes, right.centre, tu.spread_mm)
            r = float(np.clip(math.exp(self._normal(tu.radius_log_sd, math.log(tu.median_radius_mm))),
                              *tu.radius_range_mm))
            b = Blob.random(self.rng, centre, (r, r, r), axis_sd=tu.axis_sd, wobble_sd=tu.wobble_sd,
                            angle_sd=tu.angle_sd_deg)
            core = (Blob(b.centre, b.radii * tu.necrosis_fraction, b.rot, wobble=b.wobble)
                    if r > tu.necrosis_min_radius_mm and self.rng.random() < tu.necrosis_probability else None)
            lesions.append((b, core))

        def paint(cv: Canvas) -> None:
            soft = cv.ids("visceral_fat", "lung", "mediastinal_fat", "pericardial_fat")
            liver = cv.part("liver", "liver", ("liver",))
            for lobe in lobes:
                shaped = lobe.mask(cv.grid)
                if shaped is None:
                    continue
                box, m = shaped
                x, y, z = cv.grid.axes(box)
                m &= z < self.diaphragm_z(x, y) - lv.below_diaphragm_mm
                cv.paint(liver, (box, m), only=soft)
            inside = cv.ids("liver")
            vessel = cv.part("hepatic_vessel", "blood_portal", ("hepatic_vessel", "liver"))
            for t in tree:
                cv.paint(vessel, t.mask(cv.grid), only=inside)
            tumour = _liver_lesion_part(cv)
            necrosis = cv.part("liver_tumour_necrosis", "necrosis", ("liver_tumour",))
            for b, core in lesions:
                cv.paint(tumour, b.mask(cv.grid), only=inside + [vessel])
                if core is not None:
                    cv.paint(necrosis, core.mask(cv.grid), only=[tumour])
        self._paint_later(paint)

        # gallbladder: under the right lobe; absent after cholecystectomy
        if self.rng.random() < gb.present_probability:
            gb_c = (self.cavity_point(self._liver_bottom + gb.above_liver_bottom_mm + self._normal(gb.height_sd_mm),
                                      *gb.cavity)
                    + [self._normal(gb.shift_sd_mm), self._normal(gb.shift_sd_mm), 0])
            gall = Blob.random(self.rng, gb_c, gb.radii_mm, size_sd=gb.size_sd, axis_sd=gb.axis_sd,
                               angle_sd=gb.angle_sd_deg, rot=frame(list(gb.direction)), wobble_sd=gb.wobble_sd,
                               bend_sd=gb.bend_sd, taper=gb.taper)
            self.shapes["gallbladder"] = gall
            self._paint_later(lambda cv: cv.paint(cv.part("gallbladder", "bile", ("gallbladder",)),
                                                  gall.mask(cv.grid), only=cv.ids("visceral_fat", "liver")))

    def _keep_a_liver_lesion(self, cv: Canvas) -> None:
        """Keep ``at_least_one_liver_tumour``'s promise on the canvas, after every organ is painted.

        A lesion is drawn inside the liver lobes' blobs, but the liver is painted only where the lobes
        lie in the body cavity and no organ painted before it is, and vessels painted after it can cover
        a small lesion, so a drawn lesion can leave no voxel. Then the first lesion's shape is painted
        again over the liver, centred on the liver voxel nearest to its centre (so at least that voxel).
        No random draw: every other voxel of the subject stays as drawn.
        """
        if not self._liver_lesions or np.isin(cv.parts, cv.ids("liver_tumour")).any():
            return
        liver = np.argwhere(np.isin(cv.parts, cv.ids("liver")))  # the liver and its vessels
        if not len(liver):
            return  # no liver in this field of view
        b = self._liver_lesions[0][0]
        world = np.asarray(cv.grid.origin) + cv.grid.spacing * liver  # voxel centres (mm)
        nearest = int(np.argmin(((world - b.centre) ** 2).sum(1)))
        moved = Blob(world[nearest], b.radii, b.rot, wobble=b.wobble)
        cv.paint(_liver_lesion_part(cv), moved.mask(cv.grid), only=cv.ids("liver"))

    def _inside(self, blobs: list[Blob], centre: np.ndarray, spread: float) -> np.ndarray:
        """A random point inside the union of ``blobs`` (rejection sampling around ``centre``)."""
        tu = LIVER_TUMOUR
        for _ in range(tu.placement_tries):
            p = centre + self.rng.uniform(-spread, spread, 3)
            if (any(b.contains(p, tu.inside_fraction)[0] for b in blobs)
                    and p[2] < float(self.diaphragm_z(p[0], p[1])) - tu.below_diaphragm_mm):
                return p
        return centre.copy()

    def _grow(self, out: list[Tube], start: np.ndarray, direction: np.ndarray, radius: float, depth: int,
              region: list[Blob]) -> None:
        """A random branching vessel tree (each branch 22-42 mm, radius x0.72 per level)."""
        vt = VESSEL_TREE
        d = direction / np.linalg.norm(direction)
        length = self._uniform(*vt.branch_length_mm)
        pts = [start]
        for _ in range(vt.segments):
            d = d + self.rng.normal(0, vt.wiggle_sd, 3)
            d /= np.linalg.norm(d)
            pts.append(pts[-1] + d * length / vt.segments)
        end = pts[-1]
        out.append(Tube.smooth(pts, [radius, radius * vt.end_radius_factor], _STEP))
        if depth <= 1 or not any(b.contains(end, vt.inside_tolerance)[0] for b in region):
            return
        for sign in (1, -1):
            turn = np.cross(d, self.rng.normal(0, 1, 3))
            turn /= np.linalg.norm(turn) + 1e-9
            nd = d + sign * turn * self._uniform(*vt.turn)
            self._grow(out, end, nd, radius * vt.child_radius_factor, depth - 1, region)

    def _upper_abdomen(self, pancreas_tumour: bool) -> None:
        kd, spl, pc, st, du = KIDNEY, SPLEEN, PANCREAS, STOMACH, DUODENUM
        zl = self.z["dia_l"]
        # kidneys: left higher than right, upper pole medial and posterior
        kidneys = []
        for sgn in _SIDES:
            zc = self.z["L1"] + (-kd.right_lower_mm if sgn > 0 else 0) + self._normal(kd.height_sd_mm)
            c = self.spine_point(zc, sgn * (kd.offset_x_mm + self._normal(kd.offset_x_sd_mm)),
                                 kd.offset_y_mm + self._normal(kd.offset_y_sd_mm))
            rx_deg, ry_deg, rz_deg = kd.rotation_deg
            k = Blob.random(self.rng, c, kd.radii_mm, size_sd=kd.size_sd, axis_sd=kd.axis_sd,
                            angle_sd=kd.angle_sd_deg, rot=rotation(rx_deg, sgn * ry_deg, sgn * rz_deg),
                            wobble_sd=kd.wobble_sd, bend_sd=kd.bend_sd)
            hil = c + np.array([-sgn * kd.hilum_offset_mm[0], kd.hilum_offset_mm[1], 0])
            sinus = Blob(hil, np.array(kd.sinus_radii_mm) * k.radii / np.array(kd.radii_mm), k.rot)
            px, py, pz = kd.pelvis_offset_mm
            pelvis = Blob(hil + [-sgn * px, py, pz], kd.pelvis_radii_mm, k.rot)
            kidneys.append((sgn, k, sinus, pelvis))
            self.shapes[_side("kidney", sgn)] = k
            self.z[_side("kidney", sgn)] = zc
        # spleen: along the left posterior-lateral ribs
        s = math.exp(self._normal(spl.size_log_sd))
        # lateral to the left kidney's upper pole, well below the left dome
        zs = zl - spl.below_left_dome_mm + self._normal(spl.height_sd_mm)
        ca = float(self.cavity_section(np.array([zs]))[0][0])
        spleen = Blob.random(self.rng,
                             self.spine_point(zs, -spl.lateral_fraction * ca + self._normal(spl.offset_x_sd_mm),
                                              spl.offset_y_mm + self._normal(spl.offset_y_sd_mm)),
                             np.array(spl.radii_mm) * s ** np.array(spl.size_exponents), size_sd=0.0,
                             axis_sd=spl.axis_sd, angle_sd=spl.angle_sd_deg,
                             rot=rotation(self._normal(spl.tilt_sd_deg), 0,
                                          spl.turn_deg + self._normal(spl.turn_sd_deg)),
                             wobble_sd=spl.wobble_sd, bend_sd=spl.bend_sd, taper=self._normal(spl.taper_sd))
        self.centres["spleen"] = spleen.centre
        self.shapes["spleen"] = spleen
        # adrenals: inverted-V plates above and medial to the kidneys
        adrenals = []
        for sgn, k, _, _ in kidneys:
            top = self.spine_point(self.z[_side("kidney", sgn)] + kd.adrenal_above_mm
                                   + self._normal(kd.adrenal_height_sd_mm),
                                   sgn * (kd.adrenal_offset_x_mm + self._normal(kd.adrenal_offset_x_sd_mm)),
                                   kd.adrenal_offset_y_mm + self._normal(kd.adrenal_offset_y_sd_mm))
            step = kd.adrenal_limb_step_mm
            limbs = [Blob.random(self.rng, top + [sgn * step * i, step * i, -kd.adrenal_limb_drop_mm],
                                 kd.adrenal_radii_mm, size_sd=kd.adrenal_size_sd, angle_sd=kd.adrenal_angle_sd_deg,
                                 rot=rotation(kd.adrenal_limb_tilt_deg * i, 0, sgn * kd.adrenal_turn_deg),
                                 wobble_sd=kd.adrenal_wobble_sd) for i in (-1, 1)]
            adrenals.append((sgn, limbs))
            self.shapes[_side("adrenal_gland", sgn)] = limbs[0]
        # pancreas: head in the duodenal C-loop, body over the spine, tail to the splenic hilum
        zp = self.z["L1"] + self._normal(pc.height_sd_mm)
        self.z["pancreas"] = zp
        (hz, hx, hy), (nz, nx, ny), (bz, bx, by), (cz, cx, cy), (tz, tx, ty) = pc.path
        ex, ey, ez = pc.tail_from_spleen_mm
        ctrl = [self.cavity_point(zp + hz, hx, hy) + [self._normal(pc.head_shift_sd_mm), 0, 0],
                self.cavity_point(zp + nz, nx, ny), self.cavity_point(zp + bz, bx, by),
                self.cavity_point(zp + cz, cx, cy) + [0, self._normal(pc.body_shift_sd_mm), 0],
                self.cavity_point(zp + tz, tx, ty),
                spleen.centre + [ex + self._normal(pc.tail_sd_mm[0]), ey, ez + self._normal(pc.tail_sd_mm[1])]]
        radii = (np.array(pc.radii_mm) * math.exp(self._normal(pc.size_log_sd))
                 * np.exp(self.rng.normal(0, pc.radius_log_sd, len(pc.radii_mm))))
        pancreas = Tube.smooth(ctrl, radii, _STEP)
        self.shapes["pancreas"] = pancreas
        lumps = [Blob.random(self.rng, pancreas.points[int(i)], pc.lump_radii_mm, size_sd=pc.lump_size_sd,
                             wobble_sd=pc.lump_wobble_sd)
                 for i in self.rng.integers(0, len(pancreas.points), pc.lumps)]
        self.centres["pancreas"] = ctrl[2]
        self._pancreas_ctrl = ctrl
        ptum = None
        if pancreas_tumour:
            idx = (int(self.rng.integers(0, len(pancreas.points) * 2 // 3))
                   if self.rng.random() < pc.tumour_head_probability
                   else int(self.rng.integers(0, len(pancreas.points))))
            r = float(np.clip(math.exp(self._normal(pc.tumour_radius_log_sd, math.log(pc.tumour_median_radius_mm))),
                              *pc.tumour_radius_range_mm))
            ptum = Blob.random(self.rng, pancreas.points[idx] + self.rng.normal(0, pc.tumour_shift_sd_mm, 3),
                               (r, r, r), axis_sd=pc.tumour_axis_sd, wobble_sd=pc.tumour_wobble_sd,
                               angle_sd=pc.tumour_angle_sd_deg)
        # stomach: J-shaped, fundus under the left dome, antrum across to the pylorus
        dist = math.exp(self._normal(st.size_log_sd))
        fundus = self.cavity_point(zl + st.fundus[0], *st.fundus[1:])
        ctrl = [fundus, self.cavity_point(zl + st.body[0], *st.body[1:]),
                *(self._landmark_cavity_point(p) for p in st.antrum)]
        ctrl = [p + self.rng.normal(0, st.shift_sd_mm, 3) for p in ctrl]
        stomach = Tube.smooth(ctrl, np.array(st.radii_mm) * dist, _STEP)
        self.shapes["stomach"] = stomach
        self._pylorus = ctrl[-1]
        self._fundus = fundus
        air_level = fundus[1] + self._uniform(*st.air_level_mm)
        # duodenum: C-loop around the pancreatic head
        p0 = ctrl[-1]
        dctrl = [p0, p0 + du.first_mm, *(self._landmark_cavity_point(p) for p in du.path)]
        dctrl = [dctrl[0]] + [p + self.rng.normal(0, du.shift_sd_mm, 3) for p in dctrl[1:]]
        duod = Tube.smooth(dctrl, np.array(du.radii_mm) * math.exp(self._normal(du.size_log_sd)), _STEP)
        self._duod_end = dctrl[-1]

        def paint(cv: Canvas) -> None:
            hard = cv.ids("bone", "muscle_labelled", "lung", "subcutaneous_fat")
            for sgn, k, sinus, pelvis in kidneys:
                name = _side("kidney", sgn)
                cv.paint(cv.part(name + "_cortex", "kidney_cortex", (name,)), k.mask(cv.grid), never=hard)
                cv.paint(cv.part(name + "_medulla", "kidney_medulla", (name,)), k.mask(cv.grid, kd.medulla_fraction),
                         only=cv.ids(name))
                cv.paint(cv.part(name + "_sinus", "fat", (name,)), sinus.mask(cv.grid), only=cv.ids(name))
                cv.paint(cv.part(name + "_pelvis", "urine", (name,)), pelvis.mask(cv.grid), only=cv.ids(name))
            shaped = spleen.mask(cv.grid)
            if shaped is not None:
                box, m = shaped
                x, y, z = cv.grid.axes(box)
                m &= z < self.diaphragm_z(x, y) - spl.below_diaphragm_mm
                cv.paint(cv.part("spleen", "spleen", ("spleen",)), (box, m),
                         only=cv.ids("visceral_fat", "lung", "liver"))
            for sgn, limbs in adrenals:
                name = _side("adrenal_gland", sgn)
                for b in limbs:
                    cv.paint(cv.part(name, "adrenal", (name,)), b.mask(cv.grid), only=cv.ids("visceral_fat", "liver"))
            pan = cv.part("pancreas", "pancreas", ("pancreas",))
            cv.paint(pan, pancreas.mask(cv.grid), only=cv.ids("visceral_fat", "spleen", "liver"))
            for b in lumps:
                cv.paint(pan, b.mask(cv.grid), only=cv.ids("visceral_fat"))
            stom = cv.part("stomach_wall", "bowel_wall", ("stomach",))
            cv.paint(stom, stomach.mask(cv.grid), only=cv.ids("visceral_fat", "lung", "liver"))
            lumen = stomach.mask(cv.grid, -st.wall_mm)
            if lumen is not None:
                box, m = lumen
                _, y, _ = cv.grid.axes(box)
                cv.paint(cv.part("stomach_air", "air_lumen", ("stomach",)), (box, m & (y > air_level)), only=[stom])
                cv.paint(cv.part("stomach_fluid", "bowel_fluid", ("stomach",)), (box, m & (y <= air_level)),
                         only=[stom])
            duo = cv.part("duodenum_wall", "bowel_wall", ("duodenum",))
            cv.paint(duo, duod.mask(cv.grid), only=cv.ids("visceral_fat"))
            cv.paint(cv.part("duodenum_fluid", "bowel_fluid", ("duodenum",)), duod.mask(cv.grid, -du.wall_mm),
                     only=[duo])
            if ptum is not None:
                cv.paint(cv.part("pancreas_tumour", "pancreas_tumour", ("pancreas_tumour",)), ptum.mask(cv.grid),
                         only=[pan] + cv.ids("visceral_fat"))
        self._paint_later(paint)

    def _pelvic_organs(self) -> None:
        pv = PELVIS
        zf = self.z["fem"]
        yb = float(self.spine_y(zf))
        vol = math.exp(float(np.clip(self._normal(pv.bladder_filling_log_sd), *pv.bladder_filling_log_range)))
        self._pubis_y = yb + pv.pubis_in_front_of_spine_mm * self.width_scale
        bl_c = np.array([self._normal(pv.bladder_x_sd_mm),
                         self._pubis_y - pv.bladder_behind_pubis_mm - pv.bladder_behind_per_filling_mm * vol,
                         zf + pv.bladder_above_heads_mm + pv.bladder_rise_per_filling_mm * vol])
        bladder = Blob.random(self.rng, bl_c, np.array(pv.bladder_radii_mm) * vol, size_sd=0.0,
                              axis_sd=pv.bladder_axis_sd, angle_sd=pv.bladder_angle_sd_deg,
                              wobble_sd=pv.bladder_wobble_sd, taper=self._normal_of(pv.bladder_taper))
        self.centres["bladder"] = bl_c
        # prostate (male, unlabelled in the training cohort): peripheral zone behind, transition zone in front
        pro = tz = None
        if self.sex == "m":
            g = (math.exp(self._normal(pv.prostate_size_log_sd))
                 * (1 + pv.prostate_growth_per_year * max(0, self.age - pv.prostate_growth_from_age)))
            pc = np.array([self._normal(pv.prostate_x_sd_mm),
                           self._pubis_y - pv.prostate_behind_pubis_mm + self._normal(pv.prostate_y_sd_mm),
                           zf - pv.prostate_below_heads_mm + self._normal(pv.prostate_z_sd_mm)])
            pro = Blob.random(self.rng, pc, np.array(pv.prostate_radii_mm) * g ** pv.prostate_radius_exponent,
                              size_sd=pv.prostate_size_sd, axis_sd=pv.prostate_axis_sd,
                              angle_sd=pv.prostate_angle_sd_deg, rot=rotation(pv.prostate_tilt_deg, 0, 0),
                              wobble_sd=pv.prostate_wobble_sd)
            tzs = float(np.clip(pv.tz_share + pv.tz_share_per_growth * (g - 1) + self._normal(pv.tz_share_sd),
                                *pv.tz_share_range))
            tz = Blob.random(self.rng, pc + [0, pv.tz_forward_mm + pv.tz_forward_per_share_mm * tzs, pv.tz_up_mm]
                             + self.rng.normal(0, pv.tz_shift_sd_mm, 3),
                             pro.radii * [tzs * pv.tz_widening, tzs, tzs * pv.tz_widening],
                             size_sd=pv.tz_size_sd, axis_sd=pv.tz_axis_sd, angle_sd=pv.tz_angle_sd_deg, rot=pro.rot,
                             wobble_sd=pv.tz_wobble_sd)
            self.centres["prostate"] = pc
            self.shapes["prostate"] = pro
            self.shapes["prostate_tz"] = tz
        uterus = None
        if self.sex == "f":
            dy, dz = pv.uterus_from_bladder_mm
            uterus = Blob.random(self.rng, bl_c + [self._normal(pv.uterus_x_sd_mm), dy, dz], pv.uterus_radii_mm,
                                 size_sd=pv.uterus_size_sd, angle_sd=pv.uterus_angle_sd_deg,
                                 rot=rotation(pv.uterus_tilt_deg, 0, 0), wobble_sd=pv.uterus_wobble_sd)

        def paint(cv: Canvas) -> None:
            hard = cv.ids("bone", "muscle_labelled")
            if uterus is not None:
                cv.paint(cv.part("uterus", "uterus"), uterus.mask(cv.grid), only=cv.ids("visceral_fat"))
            wall = cv.part("urinary_bladder_wall", "bowel_wall", ("urinary_bladder",))
            cv.paint(wall, bladder.mask(cv.grid), only=cv.ids("visceral_fat", "uterus"))
            cv.paint(cv.part("urine", "urine", ("urinary_bladder",)), bladder.mask(cv.grid, pv.bladder_wall_fraction),
                     only=[wall])
            if pro is not None:
                cv.paint(cv.part("prostate_pz", "prostate_pz", ("prostate", "prostate_pz")), pro.mask(cv.grid),
                         never=hard + [wall])
                cv.paint(cv.part("prostate_tz", "prostate_tz", ("prostate", "prostate_tz")), tz.mask(cv.grid),
                         only=cv.ids("prostate"))
                # anterior fibromuscular stroma: a thin dark band in front (neither zone)
                afs = Blob(pro.centre + pro.rot @ np.array([0, pro.radii[1] * pv.stroma_forward, 0]),
                           pro.radii * list(pv.stroma_radii), pro.rot)
                cv.paint(cv.part("prostate_stroma", "muscle", ("prostate",)), afs.mask(cv.grid),
                         only=cv.ids("prostate"))
        self._paint_later(paint)

    def _vessels(self) -> None:
        vs = VESSELS
        sp = self.spine_point
        age = (self.age - 20) / 70
        heart_top = sp(self.z["heart"] + vs.aortic_root_above_heart_mm, *vs.aortic_root_offset)
        # aorta: ascending from the heart, arch over the left bronchus, descending left of the spine
        ra = vs.aorta_radius_mm + vs.aorta_radius_per_age_mm * age + self._normal(vs.aorta_radius_sd_mm)
        actrl = [heart_top, heart_top + list(vs.ascending_mm), *(self._landmark_spine_point(p) for p in vs.aorta_path)]
        actrl = [actrl[0]] + [p + self.rng.normal(0, vs.aorta_shift_sd_mm, 3) for p in actrl[1:]]
        aorta = Tube.smooth(actrl, [ra * k for k in vs.aorta_radius_factors], _STEP)
        zf = self.z["fem"]
        fem_x = vs.femoral_x_mm * self.width_scale * (vs.female_femoral_x if self.sex == "f" else 1.0)
        self._fem_x = fem_x
        yf = float(self.spine_y(zf)) + vs.femoral_in_front_of_spine_mm
        self._fem_y = yf
        arteries, veins = [], []
        for s in _SIDES:
            (mx, my, mz), (ex, ey, ez) = vs.iliac_artery_mid, vs.iliac_artery_end
            a = Tube.smooth([actrl[-1], sp(self.z["L5"], s * vs.iliac_artery_l5[0], vs.iliac_artery_l5[1]),
                             np.array([s * (fem_x + mx), yf + my, zf + mz]),
                             np.array([s * (fem_x + ex), yf + ey, zf + ez])],
                            [ra * vs.iliac_artery_radius_factor, *vs.iliac_artery_radii_mm], _STEP)
            (z0, x0, y0), (z1, x1, y1) = vs.iliac_vein_start, vs.iliac_vein_l5
            (mx, my, mz), (ex, ey, ez) = vs.iliac_vein_mid, vs.iliac_vein_end
            v = Tube.smooth([sp(self.z["L5"] + z0, x0, y0), sp(self.z["L5"] + z1, s * x1, y1),
                             np.array([s * (fem_x + mx), yf + my, zf + mz]),
                             np.array([s * (fem_x + ex), yf + ey, zf + ez])], vs.iliac_vein_radii_mm, _STEP)
            arteries.append((s, a))
            veins.append((s, v))
        rv = vs.ivc_radius_mm + self._normal(vs.ivc_radius_sd_mm)
        ivc = Tube.smooth([self._landmark_spine_point(p) for p in vs.ivc_path],
                          [rv * k if k != 1 else rv for k in vs.ivc_radius_factors], _STEP)
        svc = Tube.smooth([self._landmark_spine_point(p) for p in vs.svc_path], vs.svc_radii_mm, _STEP)
        # portal vein: confluence behind the pancreatic neck up to the hilum; splenic vein to the spleen
        conf = self._pancreas_ctrl[2] + np.array(vs.portal_confluence_mm)
        portal = Tube.smooth([conf, conf + list(vs.portal_bend_mm), self.centres["liver_hilum"]], vs.portal_radii_mm,
                             _STEP)
        sctrl = [conf] + [p + np.array(vs.splenic_behind_pancreas_mm) for p in self._pancreas_ctrl[3:]]
        splenic = Tube.smooth(sctrl, vs.splenic_radii_mm, _STEP)
        smv = Tube.smooth([conf, *(conf + list(p) for p in vs.smv_path_mm)], vs.smv_radii_mm, _STEP)
        sma = Tube.smooth([sp(self.z[name], dx, dy) for name, dx, dy in vs.sma_path], vs.sma_radii_mm, _STEP)
        renal = []
        for s in _SIDES:
            kz = self.z[_side("kidney", s)]
            dz, dx, dy = vs.renal_artery_origin
            renal.append(Tube.smooth([sp(kz + dz, dx, dy),
                                      sp(kz, s * vs.renal_artery_end_x_mm, vs.renal_artery_end_y_mm)],
                                     vs.renal_artery_radius_mm, _STEP))
            ez, ex, ey = vs.renal_vein_end
            renal.append(Tube.smooth([sp(kz, vs.renal_vein_origin_x_mm[0] if s > 0 else vs.renal_vein_origin_x_mm[1],
                                         vs.renal_vein_origin_y_mm), sp(kz + ez, s * ex, ey)],
                                     vs.renal_vein_radius_mm, _STEP))

        def paint(cv: Canvas) -> None:
            hard = cv.ids("bone", "kidney_left", "kidney_right", "prostate")
            cv.paint(cv.part("aorta", "blood_arterial", ("aorta",)), aorta.mask(cv.grid), never=hard)
            for s, a in arteries:
                cv.paint(cv.part(_side("iliac_artery", s), "blood_arterial", (_side("iliac_artery", s),)),
                         a.mask(cv.grid), never=hard + cv.ids("aorta"))
            for s, v in veins:
                cv.paint(cv.part(_side("iliac_vena", s), "blood_venous", (_side("iliac_vena", s),)),
                         v.mask(cv.grid), never=hard + cv.ids("aorta", "iliac_artery_left", "iliac_artery_right"))
            cv.paint(cv.part("inferior_vena_cava", "blood_venous", ("inferior_vena_cava",)), ivc.mask(cv.grid),
                     never=hard + cv.ids("aorta", "left_atrium"))
            cv.paint(cv.part("superior_vena_cava", "blood_venous", ("superior_vena_cava",)), svc.mask(cv.grid),
                     never=hard + cv.ids("aorta", "lung"))
            pv = cv.part("portal_vein_and_splenic_vein", "blood_portal", ("portal_vein_and_splenic_vein",))
            for t in (portal, splenic):
                cv.paint(pv, t.mask(cv.grid), never=hard + cv.ids("aorta", "inferior_vena_cava", "spleen"))
            cv.paint(cv.part("mesenteric_vein", "blood_portal"), smv.mask(cv.grid),
                     only=cv.ids("visceral_fat", "pancreas"))
            cv.paint(cv.part("mesenteric_artery", "blood_arterial"), sma.mask(cv.grid), only=cv.ids("visceral_fat"))
            for t in renal:
                cv.paint(cv.part("renal_vessel", "blood_venous"), t.mask(cv.grid), only=cv.ids("visceral_fat"))
        self._paint_later(paint)

    def _airways_and_esophagus(self) -> None:
        aw = AIRWAYS
        sp = self.spine_point
        zc = self.z["T5"] + self._normal(aw.carina_above_t5_sd_mm)
        rt = aw.trachea_radius_mm + self._normal(aw.trachea_radius_sd_mm)
        y_top, y_t2, y_carina = aw.trachea_y_mm
        trachea = Tube.smooth([sp(self.z["top"] + aw.trachea_top_above_top_mm, 0, y_top), sp(self.z["T2"], 0, y_t2),
                               sp(zc, 0, y_carina)], rt, _STEP)
        (z1, x1, y1), (z2, x2, y2) = aw.bronchus_path
        bronchi = [Tube.smooth([sp(zc, 0, y_carina), sp(zc + z1, s * x1, y1), sp(zc + z2, s * x2, y2)],
                               aw.bronchus_radii_mm, _STEP) for s in _SIDES]
        re = aw.esophagus_radius_mm + self._normal(aw.esophagus_radius_sd_mm)
        eso = Tube.smooth([*(self._landmark_spine_point(p) for p in aw.esophagus_path),
                           self._fundus + list(aw.esophagus_to_fundus_mm)],
                          [re * k if k != 1 else re for k in aw.esophagus_radius_factors], _STEP)
        air = self.rng.random() < aw.esophagus_air_probability

        def paint(cv: Canvas) -> None:
            soft = cv.ids("lung", "mediastinal_fat", "visceral_fat", "body_wall", "pericardial_fat",
                          "subcutaneous_fat")
            cv.paint(cv.part("esophagus", "bowel_wall", ("esophagus",)), eso.mask(cv.grid),
                     only=soft + cv.ids("stomach", "liver"))
            if air:
                cv.paint(cv.part("esophagus_air", "air_lumen", ("esophagus",)),
                         eso.mask(cv.grid, -aw.esophagus_lumen_mm), only=cv.ids("esophagus"))
            tr = cv.part("trachea", "airway_wall", ("trachea",))
            cv.paint(tr, trachea.mask(cv.grid), never=cv.ids("aorta", "bone"))
            cv.paint(cv.part("trachea_air", "air_lumen", ("trachea",)), trachea.mask(cv.grid, -aw.trachea_wall_mm),
                     only=[tr])
            for b in bronchi:
                cv.paint(cv.part("bronchus", "airway_wall"), b.mask(cv.grid), only=soft)
                cv.paint(cv.part("bronchus_air", "air_lumen"), b.mask(cv.grid, -aw.bronchus_wall_mm),
                         only=cv.ids("bronchus"))
        self._paint_later(paint)

    def _bowel(self, colon_tumour: bool) -> None:
        bw = BOWEL
        zf = self.z["fem"]
        (sx, sy, sz), (qx, qy, qz) = bw.sigmoid_mm
        (r1z, r1x, r1y), (r2z, r2x, r2y) = bw.rectum
        ctrl = [*(self._landmark_cavity_point(p) for p in bw.colon_path),
                self.cavity_point(self.z["L3"] + self._normal(bw.transverse_dz_sd_mm), *bw.transverse),
                *(self._landmark_cavity_point(p) for p in bw.descending),
                np.array([sx, self._pubis_y + sy, zf + sz]), np.array([qx, self._pubis_y + qy, zf + qz]),
                self.spine_point(zf + r1z, r1x, r1y), self.spine_point(zf + r2z, r2x, r2y)]
        ctrl = [p + self.rng.normal(0, bw.shift_sd_mm, 3) for p in ctrl]
        radii = np.array(bw.radii_mm) * math.exp(self._normal(bw.size_log_sd))
        colon = Tube.smooth(ctrl, radii, _STEP)
        ctum = None
        if colon_tumour:
            i = int(self.rng.integers(bw.tumour_first_point, len(colon.points) - bw.tumour_last_margin))
            n_pts = max(2, int(self._uniform(*bw.tumour_length_mm) / _STEP) + 1)
            seg = colon.points[i:i + n_pts]
            ctum = Tube(seg, colon.radii[i:i + n_pts] * self._uniform(*bw.tumour_radius_factor))
            self.centres["colon_tumour"] = seg[len(seg) // 2]
        sb_c = (self.cavity_point(self.z["L4"], *bw.small_bowel_cavity)
                + [self._normal(bw.small_bowel_shift_sd_mm[0]), self._normal(bw.small_bowel_shift_sd_mm[1]), 0])
        ca, cb, _ = self.cavity_section(np.array([self.z["L4"]]))
        fx, fy, rz = bw.small_bowel_radii
        sbowel = Blob.random(self.rng, sb_c, (fx * float(ca[0]), fy * float(cb[0]), rz), size_sd=bw.small_bowel_size_sd,
                             axis_sd=bw.small_bowel_axis_sd, wobble_sd=bw.small_bowel_wobble_sd)
        seed = self.texture_seed

        def paint(cv: Canvas) -> None:
            fat = cv.ids("visceral_fat")
            wall = cv.part("colon_wall", "bowel_wall", ("colon",))
            cv.paint(wall, colon.mask(cv.grid), only=fat)
            lumen = colon.mask(cv.grid, -bw.wall_mm)
            if lumen is not None:
                box, m = lumen
                g = np.random.default_rng(seed + 1)
                mott = smooth_noise(g, m.shape, max(1.0, bw.mottle_scale_mm / cv.grid.spacing))
                cv.paint(cv.part("colon_air", "air_lumen", ("colon",)), (box, m & (mott > bw.air_threshold)),
                         only=[wall])
                cv.paint(cv.part("colon_stool", "stool", ("colon",)), (box, m & (mott <= bw.air_threshold)),
                         only=[wall])
            if ctum is not None:
                cv.paint(cv.part("colon_tumour", "colon_tumour", ("colon_tumour",)), ctum.mask(cv.grid),
                         only=cv.ids("colon"))
            shaped = sbowel.mask(cv.grid)
            if shaped is not None:
                box, m = shaped
                g = np.random.default_rng(seed + 2)
                loops = smooth_noise(g, m.shape, max(1.0, bw.loop_scale_mm / cv.grid.spacing))
                bowel = m & (loops > bw.loop_threshold)
                sb = cv.part("small_bowel_wall", "bowel_wall", ("small_bowel",))
                cv.paint(sb, (box, bowel), only=fat)
                cv.paint(cv.part("small_bowel_fluid", "bowel_fluid", ("small_bowel",)),
                         (box, bowel & (loops > bw.fluid_threshold)), only=[sb])
                cv.paint(cv.part("small_bowel_air", "air_lumen", ("small_bowel",)),
                         (box, bowel & (loops > bw.air_in_loops_threshold)), only=cv.ids("small_bowel"))
        self._paint_later(paint)

    # ------------------------------------------------------------------ muscles and bones
    def _muscles(self) -> None:
        mu = MUSCLES
        m = self.muscle_scale
        zf = self.z["fem"]
        yf = self.spine_y(zf)
        specs = []
        for s in _SIDES:
            ps = Tube.smooth([*(self.spine_point(self.z[name], s * dx, dy) for name, dx, dy in mu.psoas_spine),
                              *(np.array([s * x, yf + y, zf + z]) for x, y, z in mu.psoas_pelvis)],
                             np.array(mu.psoas_radii_mm) * m, _STEP)
            ix, iy, iz = mu.iliacus_centre
            rx, ry, rz = mu.iliacus_radii_mm
            iliacus = Blob.random(self.rng, np.array([s * ix, self.spine_y(self.z["L5"]) + iy, self.z["L5"] + iz]),
                                  (rx * m, ry, rz), angle_sd=mu.iliacus_angle_sd_deg,
                                  rot=rotation(0, 0, s * mu.iliacus_turn_deg), wobble_sd=mu.iliacus_wobble_sd)
            back = []
            for dx in mu.back_columns_mm:
                pts = [self.spine_point(z, s * dx, mu.back_depth_mm * m + mu.back_depth_extra_mm
                                        + mu.back_depth_per_offset * dx)
                       for z in (*(self.z[name] for name in mu.back_levels), mu.back_bottom_z_mm)]
                back.append(Tube.smooth(pts, np.array(mu.back_radii_mm) * m, _STEP))
            gx, gy, gz = mu.gluteus_centre
            grx, gry, grz = mu.gluteus_radii_mm
            glut = Blob.random(self.rng, np.array([s * gx, yf + gy, zf + gz]), (grx * m, gry * m, grz),
                               size_sd=mu.gluteus_size_sd, angle_sd=mu.gluteus_angle_sd_deg,
                               rot=rotation(0, s * mu.gluteus_tilt_deg, 0), wobble_sd=mu.gluteus_wobble_sd)
            specs.append((s, ps, iliacus, back, glut))

        def paint(cv: Canvas) -> None:
            soft = cv.ids("visceral_fat", "body_wall", "subcutaneous_fat", "lung", "thigh_fat", "thigh_muscle")
            for s, ps, iliacus, back, glut in specs:
                ip = cv.part(_side("iliopsoas", s), "muscle", (_side("iliopsoas", s), "muscle_labelled"))
                cv.paint(ip, ps.mask(cv.grid), only=soft)
                cv.paint(ip, iliacus.mask(cv.grid), only=cv.ids("visceral_fat"))
                au = cv.part(_side("autochthon", s), "muscle", (_side("autochthon", s), "muscle_labelled"))
                for t in back:
                    cv.paint(au, t.mask(cv.grid), only=soft)
                gl = cv.part(_side("gluteus_maximus", s), "muscle", (_side("gluteus_maximus", s), "muscle_labelled"))
                cv.paint(gl, glut.mask(cv.grid), only=soft)
        self._paint_later(paint)

    def _bones(self) -> None:
        vt, hp, rc = VERTEBRA, HIP, RIBCAGE
        sp = self.spine_point
        w = self.width_scale
        vert = []
        for name, _ in VERTEBRAL_LEVELS:
            lo, hi = self.levels[name]
            zc = 0.5 * (lo + hi)
            lumbar = name.startswith("L")
            rx = (vt.lumbar_radii_mm[0] if lumbar
                  else vt.thoracic_rx_mm + vt.thoracic_rx_per_level_mm * (12 - int(name[1:]))) * w
            ry = (vt.lumbar_radii_mm[1] if lumbar else vt.thoracic_ry_mm) * w
            span = vt.tilt_span_mm
            dy_dz = float(self.spine_y(zc + span) - self.spine_y(zc - span)) / (2 * span)
            tilt = math.degrees(math.atan(dy_dz))
            body = Blob(sp(zc, 0, 0), (rx, ry, 0.5 * (hi - lo) + 0.5), rotation(-tilt, 0, 0),
                        wobble=self._wobble(vt.wobble_sd))
            canal = sp(zc, 0, -ry - vt.canal_behind_body_mm)
            drop = vt.lumbar_spinous_drop_mm if lumbar else vt.thoracic_spinous_drop_mm
            (l1x, l1y), (l2x, l2y), (l3x, l3y) = vt.lamina_mm
            parts = [Tube.smooth([sp(zc, s * vt.pedicle_lateral * rx, -ry + vt.pedicle_back_mm),
                                  canal + [s * l1x, l1y, 0], canal + [s * l2x, l2y, 0], canal + [l3x, l3y, 0]],
                                 vt.lamina_radius_mm, _STEP) for s in _SIDES]
            parts.append(Tube.smooth([canal + [0, y, drop * k] if k else canal + [0, y, 0]
                                      for y, k in zip(vt.spinous_path_mm, vt.spinous_drop_shares)],
                                     vt.spinous_radii_mm, _STEP))
            span_x = vt.lumbar_transverse_span_mm if lumbar else vt.thoracic_transverse_span_mm
            back_y = vt.lumbar_transverse_back_mm if lumbar else vt.thoracic_transverse_back_mm
            tx, ty = vt.transverse_start_mm
            for s in _SIDES:
                parts.append(Tube.smooth([canal + [s * tx, ty, 0], canal + [s * span_x, back_y, vt.transverse_rise_mm]],
                                         vt.transverse_radii_mm, _STEP))
            vert.append((name, body, parts))
        discs = Tube(np.array([sp(z, 0, 0) for z in np.arange(vt.disc_bottom_mm, self.z["top"] + vt.disc_top_above_mm,
                                                              _STEP)]), 0.0)
        discs.radii = np.array([vt.lumbar_disc_radius_mm if p[2] < self.z["T12"] else vt.thoracic_disc_radius_mm
                                for p in discs.points]) * w
        canal_t = Tube(np.array([sp(z, 0, 0) for z in np.arange(vt.canal_bottom_mm,
                                                                self.z["top"] + vt.canal_top_above_mm, _STEP)]), 0.0)
        canal_t.points[:, 1] -= (np.where(canal_t.points[:, 2] < self.z["T12"], vt.lumbar_body_depth_mm,
                                          vt.thoracic_body_depth_mm) * w + vt.canal_behind_mm)
        canal_t.radii = np.full(len(canal_t.points), vt.canal_radius_mm)
        cord_pts = canal_t.points[canal_t.points[:, 2] > self.z["L1"] + self._normal(vt.cord_end_sd_mm)]
        cord = Tube(cord_pts, vt.cord_radius_mm + self._normal(vt.cord_radius_sd_mm))
        # sacrum: a curved, tapering wedge below L5
        sdx, sdy, sz = vt.sacrum_centre
        srx, sry, srz = vt.sacrum_radii_mm
        sac = Blob(sp(sz, sdx, sdy), (srx * w, sry, srz),
                   rotation(vt.sacrum_tilt_deg + self._normal(vt.sacrum_tilt_sd_deg), 0, 0), bend=vt.sacrum_bend,
                   wobble=self._wobble(vt.sacrum_wobble_sd), taper=vt.sacrum_taper)
        # hip bones: iliac wing, acetabulum, pubic and ischial rami
        zf = self.z["fem"]
        fx, fy = self._fem_x, self._fem_y
        y_l5 = self.spine_y(self.z["L5"])
        hips = []
        for s in _SIDES:
            wx, wy, wz = hp.wing_centre
            ry_deg, rz_deg = hp.wing_rotation_deg
            wing = Blob.random(self.rng, np.array([s * wx * w, y_l5 + wy, self.z["L5"] + wz]), hp.wing_radii_mm,
                               size_sd=hp.wing_size_sd, axis_sd=hp.wing_axis_sd, angle_sd=hp.wing_angle_sd_deg,
                               rot=rotation(0, s * ry_deg, s * rz_deg), bend=(s * hp.wing_bend, 0),
                               wobble_sd=hp.wing_wobble_sd)
            acet = Blob(np.array([s * (fx - hp.acetabulum_medial_mm), fy, zf]), (hp.acetabulum_radius_mm,) * 3)
            (tx, ty, tz), (bx, by, bz) = hp.body_top, hp.body_bottom
            body = Tube.smooth([np.array([s * tx * w, y_l5 + ty, self.z["L5"] + tz]),
                                np.array([s * (fx + bx), fy + by, zf + bz])], hp.body_radii_mm, _STEP)
            (p1x, p1y, p1z), (p2x, p2y, p2z) = hp.pubic_path
            qx, qy, qz = hp.pubic_symphysis
            pubic = Tube.smooth([np.array([s * (fx + p1x), fy + p1y, zf + p1z]),
                                 np.array([s * p2x, fy + p2y, zf + p2z]),
                                 np.array([s * qx, self._pubis_y + qy, zf + qz])], hp.pubic_radii_mm, _STEP)
            (i1x, i1y, i1z), *rest = hp.ischial_path
            isch = Tube.smooth([np.array([s * (fx + i1x), fy + i1y, zf + i1z]),
                                *(np.array([s * x, fy + y, zf + z]) for x, y, z in rest)], hp.ischial_radii_mm, _STEP)
            head = Blob(np.array([s * fx, fy, zf]),
                        np.full(3, hp.head_radius_mm * self.height_scale + self._normal(hp.head_radius_sd_mm)))
            nx, ny, nz = hp.neck_end_mm
            neck_end = np.array([s * (fx + nx), fy + ny, zf + nz])
            tx, ty, tz = hp.trochanter_mm
            fem = [Tube.smooth([head.centre, neck_end], hp.neck_radii_mm, _STEP),
                   Blob(neck_end + [s * tx, ty, tz], hp.trochanter_radii_mm),
                   Tube.smooth([neck_end + [s * x, y, z] for x, y, z in hp.shaft_path_mm],
                               hp.shaft_radii_mm, _STEP)]
            hips.append((s, wing, acet, body, pubic, isch, head, fem))
        # ribs: from the transverse processes around the chest wall, dropping anteriorly
        ribs = []
        ends = {}
        for k in range(1, 13):
            zk = self.z[f"T{k}"] + rc.above_vertebra_mm
            sweep = rc.sweep[k - 1] * math.pi
            drop = (rc.drop_mm + rc.drop_per_rib_mm * min(k, 8)) * self.height_scale
            r = (rc.radius_mm[1] if k > 1 else rc.radius_mm[0]) * w ** 0.5
            for s in _SIDES:
                th = np.linspace(rc.start_angle * math.pi, sweep, rc.points)
                zs = zk - drop * (th / sweep) ** rc.drop_power + self._normal(rc.drop_sd_mm)
                ca, cb, cyc = self.cavity_section(zs)
                shrink = 1.0 if k > 2 else rc.upper_shrink[0] + rc.upper_shrink[1] * (k - 1)
                out = rc.outside_cavity_mm
                pts = np.stack([s * (ca * shrink + out) * np.sin(th),
                                cyc - (cb + out) * np.cos(th) * (rc.upper_depth if k < 3 else 1.0), zs], axis=1)
                start = sp(zk, s * rc.head_from_spine[0], rc.head_from_spine[1])
                pts = np.vstack([start, pts])
                ribs.append((f"rib_{'right' if s > 0 else 'left'}_{k}", Tube.smooth(pts, r, _STEP)))
                ends[(s, k)] = pts[-1]
        cart = []
        z_st = (self.z["T2"] + rc.sternum_top_above_t2_mm, self.z["T9"])
        for s in _SIDES:
            for k in range(1, rc.cartilage_ribs + 1):
                e = ends[(s, k)]
                target = (np.array([s * rc.cartilage_to_sternum_x_mm, e[1],
                                    np.clip(e[2] + rc.cartilage_rise_mm, z_st[1], z_st[0])]) if k <= rc.true_ribs
                          else ends[(s, k - 1)] + [0, *rc.cartilage_to_rib_above_mm])
                if k <= rc.true_ribs:
                    _, cb, cyc = self.cavity_section(np.array([target[2]]))
                    target[1] = float(cyc[0] + cb[0]) + rc.cartilage_front_mm
                cart.append(Tube.smooth([e, 0.5 * (e + target) + [0, rc.cartilage_bow_mm, 0], target],
                                        rc.cartilage_radius_mm, _STEP))
        _, cb, cyc = self.cavity_section(np.array([z_st[0], z_st[1]]))
        top_front, body_front = rc.sternum_front_mm
        ster = Tube.smooth([np.array([0, cyc[0] + cb[0] + top_front, z_st[0] + rc.sternum_top_rise_mm]),
                            np.array([0, cyc[1] + cb[1] + body_front, z_st[1]])], rc.sternum_radii_mm, _STEP)
        manubrium = Blob(ster.points[0] + [0, 0, -rc.manubrium_below_mm], rc.manubrium_radii_mm,
                         wobble=self._wobble(rc.manubrium_wobble_sd))
        clav = []
        for s in _SIDES:
            a0 = ster.points[0] + [s * rc.clavicle_start_mm[0], 0, rc.clavicle_start_mm[1]]
            clav.append((s, Tube.smooth([a0, *(a0 + [s * x, y, z] for x, y, z in rc.clavicle_path_mm)],
                                        rc.clavicle_radius_mm, _STEP)))

        def paint(cv: Canvas) -> None:
            cv.paint(cv.part("disc", "disc"), discs.mask(cv.grid), never=cv.ids("aorta"))
            for name, body, parts in vert:
                vid = cv.part(f"vertebrae_{name}", "bone", (f"vertebrae_{name}", "bone"))
                cv.paint(vid, body.mask(cv.grid))
                for t in parts:
                    cv.paint(vid, t.mask(cv.grid), never=cv.ids("aorta", "bone", "disc"))
            cv.paint(cv.part("sacrum", "bone", ("sacrum", "bone")), sac.mask(cv.grid), never=cv.ids("bone"))
            for s, wing, acet, body, pubic, isch, head, fem in hips:
                hid = cv.part(_side("hip", s), "bone", (_side("hip", s), "bone"))
                for shape in (wing, acet, body, pubic, isch):
                    cv.paint(hid, shape.mask(cv.grid), never=cv.ids("sacrum", "urinary_bladder", "prostate"))
                fid = cv.part(_side("femur", s), "bone", (_side("femur", s), "bone"))
                cv.paint(cv.part("joint_space", "cartilage"), head.mask(cv.grid, hp.joint_space), only=[hid])
                cv.paint(fid, head.mask(cv.grid))
                for shape in fem:
                    cv.paint(fid, shape.mask(cv.grid), never=[hid])
            for name, t in ribs:
                cv.paint(cv.part(name, "bone", (name, "bone")), t.mask(cv.grid), never=cv.ids("aorta"))
            for t in cart:
                cv.paint(cv.part("costal_cartilage", "cartilage"), t.mask(cv.grid), never=cv.ids("bone"))
            st = cv.part("sternum", "bone", ("sternum", "bone"))
            cv.paint(st, ster.mask(cv.grid))
            cv.paint(st, manubrium.mask(cv.grid), never=cv.ids("trachea", "aorta"))
            for s, t in clav:
                name = _side("clavicula", s)
                cv.paint(cv.part(name, "bone", (name, "bone")), t.mask(cv.grid), never=cv.ids("sternum"))
            cv.paint(cv.part("spinal_canal", "csf"), canal_t.mask(cv.grid), never=cv.ids("aorta"))
            cv.paint(cv.part("spinal_cord", "spinal_cord", ("spinal_cord",)), cord.mask(cv.grid),
                     only=cv.ids("spinal_canal"))
        self._paint_later(paint)

    def _lung_tumours(self, count: int) -> None:
        lt = LUNG_TUMOUR
        tumours = []
        for i in range(count):
            side = 1 if self.rng.random() < lt.right_probability else -1
            zc = self._uniform(self.z["dia_r"] + lt.above_right_dome_mm, self.z["T2"])
            _, cb, cyc = self.cavity_section(np.array([zc]))
            c = np.array([side * self._uniform(*lt.offset_x_mm) * self.width_scale,
                          float(cyc[0]) + self._uniform(*lt.depth_fraction) * float(cb[0]), zc])
            r = float(np.clip(math.exp(self._normal(lt.radius_log_sd, math.log(lt.median_radius_mm))),
                              *lt.radius_range_mm))
            b = Blob.random(self.rng, c, (r, r, r), axis_sd=lt.axis_sd, angle_sd=lt.angle_sd_deg,
                            wobble_sd=lt.wobble_sd)
            tumours.append(b)
            if i == 0:
                self.centres["lung_tumour"] = c

        def paint(cv: Canvas) -> None:
            for b in tumours:
                cv.paint(cv.part("lung_tumour", "lung_tumour", ("lung_tumour",)), b.mask(cv.grid),
                         only=cv.ids("lung", "mediastinal_fat", "pulmonary_artery", "bronchus"))
        self._paint_later(paint)
