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
superior); z = 0 is the lower end plate of L5, x = 0 the midline.
Typical sizes follow adult anatomy textbooks (organ lengths, vertebral
heights); the variation between subjects is deliberately wide.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from hyperkit.phantoms.shapes import Blob, Canvas, Tube, rotation, smooth_noise

__all__ = ["Torso", "VERTEBRAE", "RIBS", "TOTALSEG_STRUCTURES", "frame"]

# vertebral levels from the bottom up, with body + disc height (mm) of an average adult
_LEVELS: list[tuple[str, float]] = [
    ("L5", 35), ("L4", 35), ("L3", 34), ("L2", 33), ("L1", 32),
    ("T12", 30), ("T11", 28), ("T10", 27), ("T9", 26), ("T8", 25), ("T7", 24),
    ("T6", 23), ("T5", 22), ("T4", 21), ("T3", 21), ("T2", 21), ("T1", 20),
]
VERTEBRAE: tuple[str, ...] = tuple(f"vertebrae_{name}" for name, _ in _LEVELS)
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

_STEP = 6.0  # centreline sampling of tubes (mm); independent of the grid


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

    # ------------------------------------------------------------------ helpers
    def n(self, sd: float = 1.0, mean: float = 0.0) -> float:
        """One normal draw."""
        return float(self.rng.normal(mean, sd))

    def u(self, lo: float, hi: float) -> float:
        """One uniform draw."""
        return float(self.rng.uniform(lo, hi))

    def ysp(self, z: np.ndarray | float) -> np.ndarray:
        """y (mm) of the vertebral-body centreline at height z."""
        return np.interp(z, self._sp_z, self._sp_y)

    def xsp(self, z: np.ndarray | float) -> np.ndarray:
        """x (mm) of the spine (mild scoliosis) at height z."""
        return self._scol_a * np.sin((np.asarray(z) - self._scol_p) / 180.0)

    def profile(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Body cross-section at heights z: half-width a, half-depth b, centre y (mm)."""
        a = np.interp(z, self._prof_z, self._prof_a)
        b = np.interp(z, self._prof_z, self._prof_b)
        yc = self.ysp(z) - self._back + b
        return a, b, yc

    def cavity(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inner (body-cavity) cross-section at z: half-width, half-depth, centre y."""
        a, b, yc = self.profile(z)
        wall = self.fat + np.interp(z, self._prof_z, self._wall)
        return a - wall, b - wall, yc

    def z_dia(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the diaphragm surface above (x, y): two domes, lower posteriorly."""
        yref = self.ysp(self.z["dia_r"]) + 60
        right = self.z["dia_r"] - (x - self._dome_x) ** 2 / 150.0 - (y - yref) ** 2 / 260.0
        left = self.z["dia_l"] - (x + self._dome_x) ** 2 / 150.0 - (y - yref) ** 2 / 260.0
        post = np.minimum(y - yref, 0) * 0.25
        return np.maximum(right, left) + post

    def _sp(self, zc: float, dx: float, dy: float, dz: float = 0.0) -> np.ndarray:
        """A point offset from the spine centreline at height zc."""
        return np.array([float(self.xsp(zc)) + dx, float(self.ysp(zc)) + dy, zc + dz])

    def _cav(self, zc: float, fx: float, fy: float) -> np.ndarray:
        """A point placed relative to the body cavity at height zc: x = fx * cavity half-width,
        y = spine + fy * (distance from the spine to the anterior cavity wall)."""
        ca, cb, cyc = (float(v[0]) for v in self.cavity(np.array([zc])))
        ys = float(self.ysp(zc))
        return np.array([float(self.xsp(zc)) + fx * ca, ys + fy * (cyc + cb - ys), zc])

    def _blob(self, centre: np.ndarray, radii: tuple[float, float, float], **kw) -> Blob:
        return Blob.random(self.rng, centre, radii, **kw)

    def _add(self, fn: Callable[[Canvas], None]) -> None:
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
        female = self.sex == "f"
        self.h = math.exp(self.n(0.05)) * (0.94 if female else 1.0)
        self.w = math.exp(self.n(0.07)) * (0.95 if female else 1.0)
        self.fat = float(np.clip(math.exp(self.n(0.45, math.log(16 if female else 13))), 4, 55))
        self.belly = max(0.0, self.n(0.12, 0.05)) + 0.01 * max(0.0, self.fat - 15)
        self.muscle = math.exp(self.n(0.15)) * (0.85 if female else 1.0)

    def _spine_frame(self) -> None:
        z = 0.0
        self.levels: dict[str, tuple[float, float]] = {}
        for name, height in _LEVELS:
            hgt = height * self.h * math.exp(self.n(0.03))
            disc = 0.22 * hgt
            self.levels[name] = (z, z + hgt - disc)  # body bottom, top
            self.z[name] = z + 0.5 * (hgt - disc)
            z += hgt
        self.z["top"] = z + 15 * self.h
        self.z["fem"] = -95.0 * self.h + self.n(5)
        lord, kyph = self.n(6, 16), self.n(8, 26)
        self._sp_z = np.array([self.z["fem"] - 120, -60, 0, self.z["L3"], self.z["T12"], self.z["T7"],
                               self.z["T1"], self.z["top"] + 200])
        self._sp_y = np.array([-60, -35, 0.0, lord, 0.3 * lord, -kyph, -0.3 * kyph + 5, 20])
        self._scol_a, self._scol_p = self.n(3), self.u(0, 600)
        zr = self.z["T10"] + self.n(12, 5)
        self.z["dia_r"] = zr
        self.z["dia_l"] = zr - self.u(8, 25)
        self._dome_x = self.u(45, 65)

    def _body(self) -> None:
        zf, w, f = self.z["fem"], self.w, self.fat
        hip = 1.08 if self.sex == "f" else 1.0
        self._prof_z = np.array([zf - 140, zf - 60, zf, self.z["L5"], self.z["L3"], self.z["T12"], self.z["T9"],
                                 self.z["T6"], self.z["T3"], self.z["top"], self.z["top"] + 300])
        a = np.array([60, 150 * hip, 172 * hip, 160 * hip, 148, 155, 165, 170, 165, 150, 150]) * w
        b = np.array([50, 95, 105, 105, 100, 105, 115, 118, 110, 95, 95]) * w
        b[3:6] += self.belly * np.array([40, 90, 30])
        a += f - 15 + self.rng.normal(0, 5, a.size)
        b += 0.8 * (f - 15) + self.rng.normal(0, 4, b.size)
        self._prof_a, self._prof_b = np.maximum(a, 30), np.maximum(b, 30)
        self._wall = np.array([8, 14, 16, 14, 11, 14, 18, 18, 18, 16, 16]) * self.muscle
        self._back = 75 * self.muscle + 0.8 * f  # spine centre -> back skin

        def paint(cv: Canvas) -> None:
            box = cv.everywhere()
            x, y, z = cv.grid.axes(box)
            zz = z[0, 0, :]
            out = None
            for shrink, name, tissue in ((0.0, "subcutaneous_fat", "fat"), (f, "body_wall", "muscle"),
                                         (None, "visceral_fat", "fat")):
                if shrink is None:
                    ca, cb, cyc = self.cavity(zz)
                else:
                    ca, cb, cyc = self.profile(zz)
                    ca, cb = ca - shrink, cb - shrink
                ca = np.maximum(ca, 1.0).astype(np.float32).reshape(1, 1, -1)
                cb = np.maximum(cb, 1.0).astype(np.float32).reshape(1, 1, -1)
                cyc = cyc.astype(np.float32).reshape(1, 1, -1)
                u = (x / ca) ** 2
                v = ((y - cyc) / cb) ** 2
                back = y < cyc
                inside = np.where(back, u + v * v, u + v) < 1
                if shrink is None:  # no cavity behind the spine: back muscles live there
                    inside &= y > (self.ysp(zz) - 35).astype(np.float32).reshape(1, 1, -1) + 0.3 * np.abs(x)
                tags = ("subcutaneous_fat",) if name == "subcutaneous_fat" else ()
                cv.paint(cv.part(name, tissue, tags), (box, inside))
                if out is None:
                    out = inside
            cv.inside = out
        self._add(paint)

        # thighs below the pelvis (painted below the gluteal fold only)
        thighs = []
        for s in (1, -1):
            top = np.array([s * 95 * w, self.ysp(zf) + 70, zf - 40])
            r = 62 * w * self.muscle + f
            thighs.append(Tube.smooth([top, top + [s * 5, 10, -200], top + [0, 20, -400]], [r * 1.05, r, r * 0.9],
                                      _STEP))

        def paint_thighs(cv: Canvas) -> None:
            box = cv.grid.box((-1e4, -1e4, -1e4), (1e4, 1e4, zf - 50))
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
        self._add(paint_thighs)

    # ------------------------------------------------------------------ thorax
    def _lungs_and_mediastinum(self) -> None:
        fiss = [self.n(8) for _ in range(6)]
        tilt = [self.n(0.08) for _ in range(3)]
        z5, z4 = self.z["T5"], self.z["T4"]

        def lungs(cv: Canvas) -> None:
            lo = min(self.z["dia_l"], self.z["dia_r"]) - 90
            box = cv.grid.box((-1e4, -1e4, lo), (1e4, 1e4, self.z["top"] + 50))
            if box is None:
                return
            x, y, z = cv.grid.axes(box)
            zz = z[0, 0, :]
            ca, cb, cyc = self.cavity(zz)
            taper = np.clip((self.z["top"] + 10 - zz) / (self.z["top"] - self.z["T3"] + 10), 0.15, 1.0) ** 0.5
            ca = (ca * taper).astype(np.float32).reshape(1, 1, -1)
            cb = (cb * np.clip(taper, 0.6, 1)).astype(np.float32).reshape(1, 1, -1)
            cyc = cyc.astype(np.float32).reshape(1, 1, -1)
            u, v = (x / ca) ** 2, ((y - cyc) / cb) ** 2
            inside = np.where(y < cyc, u + v * v, u + v) < 1
            inside &= z > self.z_dia(x, y)
            inside &= y > (self.ysp(zz) - 38).reshape(1, 1, -1)
            inside &= z < self.z["top"] + 5
            ys = self.ysp(zz).astype(np.float32).reshape(1, 1, -1)
            yfront = (cyc + cb)
            depth = np.clip((y - ys) / np.maximum(yfront - ys, 1), 0, 1)  # 0 at the spine, 1 at the front wall
            # oblique fissures: from T4 posteriorly down to the anterior diaphragm
            zfl = z4 + fiss[0] - (z4 - self.z["dia_l"] + 10) * depth ** 0.8 + tilt[0] * x
            zfr = z4 - 10 + fiss[1] - (z4 - self.z["dia_r"]) * depth ** 0.8 + tilt[1] * x
            zh = self.z["T6"] + fiss[2] + tilt[2] * x  # right horizontal fissure
            left, right = inside & (x < 0), inside & (x >= 0)
            upper_l = z > zfl
            upper_r = z > zfr
            for name, m in (("lung_upper_lobe_left", left & upper_l), ("lung_lower_lobe_left", left & ~upper_l),
                            ("lung_lower_lobe_right", right & ~upper_r),
                            ("lung_middle_lobe_right", right & upper_r & (z < zh)),
                            ("lung_upper_lobe_right", right & upper_r & (z >= zh))):
                cv.paint(cv.part(name, "lung", (name, "lung")), (box, m))
        self._add(lungs)

        med = Blob(self._sp(z5, -8, 48, 10), (26 + self.n(3), 58, 150 * self.h), rotation(self.n(4), 0, 0),
                   wobble=self.rng.normal(0, 0.03, 15))
        self._add(lambda cv: cv.paint(cv.part("mediastinal_fat", "fat"), med.mask(cv.grid), only=cv.ids("lung")))

    def _heart(self) -> None:
        size = math.exp(self.n(0.1)) * self.h
        base = self.z["dia_l"] + 58 * size + self.n(8)
        c = self._sp(base, -22 + self.n(6), 78 + self.n(6))
        apex_dir = np.array([-0.65 + self.n(0.1), 0.45 + self.n(0.1), -0.55 + self.n(0.1)])
        rot = frame(apex_dir, self.n(15))
        heart = Blob(c, np.array([46, 42, 60]) * size * np.exp(self.rng.normal(0, 0.06, 3)), rot,
                     wobble=self.rng.normal(0, 0.04, 15))
        self.z["heart"] = base
        ax = rot[:, 2]
        la_c = c - ax * 38 * size + np.array([-10, -18, 5]) * size + self.rng.normal(0, 4, 3)
        la = Blob.random(self.rng, la_c, (31, 22, 25), size_sd=0.22, axis_sd=0.25, angle_sd=30,
                         rot=frame([1, 0.4 * self.n(), 0.4 * self.n()]), wobble_sd=0.14, bend_sd=0.25)
        self.centres["left_atrium"] = la_c
        self.shapes["left_atrium"] = la
        ra = Blob.random(self.rng, c - ax * 30 * size + np.array([32, -5, 8]) * size, (22, 20, 26), size_sd=0.12)
        lv = Blob.random(self.rng, c + ax * 12 * size + np.array([-6, -4, 0]), (20, 20, 36), rot=rot, size_sd=0.1)
        rv = Blob.random(self.rng, c + ax * 5 * size + np.array([14, 20, 0]), (16, 25, 34), rot=rot, size_sd=0.1)
        peri = Blob(heart.centre, heart.radii + 4 + abs(self.n(3)), heart.rot, wobble=heart.wobble)
        # pulmonary veins: two per side leaving the left atrium laterally into the lungs
        veins = []
        for s in (1, -1):
            for dz in (10, -8):
                start = la_c + np.array([s * 18, -4, dz]) * size
                d = np.array([s * 1.0, -0.2 + 0.2 * self.n(), 0.15 * np.sign(dz) + 0.2 * self.n()])
                length = self.u(30, 45)
                r0 = self.u(5.5, 8.5)
                veins.append((Tube.smooth([start, start + d * 12, start + d * length], [r0, r0 * 0.85, r0 * 0.6], _STEP),
                              self.u(4, 20)))
        # left atrial appendage: a finger from the atrium's left anterior-superior side (part of the atrium)
        laa_dir = np.array([-0.7, 0.6, 0.3]) + self.rng.normal(0, 0.3, 3)
        laa_start = la_c + la.rot @ (la.radii * np.array([-0.3, 0.5, 0.3]))
        laa_len = self.u(18, 35)
        laa = Tube.smooth([laa_start, laa_start + laa_dir / np.linalg.norm(laa_dir) * laa_len * 0.5
                           + self.rng.normal(0, 3, 3), laa_start + laa_dir / np.linalg.norm(laa_dir) * laa_len],
                          [self.u(6, 9), self.u(5, 8), self.u(3, 5)], _STEP)
        pa_start = c + np.array([5, 40, 25]) * size
        pa = Tube.smooth([pa_start, pa_start + [-15, -10, 35], self._sp(self.z["T5"], -20, 45)], [14, 13, 11], _STEP)
        pa_l = Tube.smooth([self._sp(self.z["T5"], -20, 45), self._sp(self.z["T5"], -70, 30, -5)], [10, 7], _STEP)
        pa_r = Tube.smooth([self._sp(self.z["T5"], -20, 45), self._sp(self.z["T5"], 20, 38, 3),
                            self._sp(self.z["T5"], 70, 30, -8)], [10, 10, 7], _STEP)

        def paint(cv: Canvas) -> None:
            soft = cv.ids("lung", "mediastinal_fat", "visceral_fat", "body_wall")
            cv.paint(cv.part("pericardial_fat", "fat"), peri.mask(cv.grid), only=soft)
            myo = cv.part("myocardium", "myocardium", ("heart",))
            cv.paint(myo, heart.mask(cv.grid), only=soft + cv.ids("pericardial_fat"))
            for b in (la, ra):
                wall = Blob(b.centre, b.radii + 3, b.rot, b.bend, b.wobble, b.taper)
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
        self._add(paint)

    # ------------------------------------------------------------------ abdomen
    def _liver(self, n_tumours: float, at_least_one: bool) -> None:
        size = math.exp(self.n(0.13))
        zr = self.z["dia_r"]
        zc = zr - 68 * size
        ca, cb, cyc = (float(v[0]) for v in self.cavity(np.array([zc])))
        depth = cyc + cb - float(self.ysp(zc))  # spine to anterior abdominal wall
        right = self._blob(self._cav(zc, 0.45, 0.52) + [self.n(6), self.n(6), 0],
                           (0.62 * ca, 0.62 * depth, 88), size_sd=0.0, axis_sd=0.14, angle_sd=15, wobble_sd=0.15,
                           bend_sd=0.2, taper=self.n(0.2))
        right.radii *= size
        left_size = math.exp(self.n(0.4))
        left = self._blob(self._cav(zr - 45 * size, -0.12, 0.72) + [self.n(10), self.n(5), 0],
                          np.array([0.5 * ca, 0.3 * depth, 44]) * size * left_size ** np.array([1, 0.5, 0.6]),
                          size_sd=0.0, axis_sd=0.12, angle_sd=15, wobble_sd=0.12,
                          rot=rotation(0, self.n(10, 15), self.n(10, -10)), taper=self.n(0.2))
        riedel = None
        if self.rng.random() < 0.3:  # Riedel's lobe: a tongue down the right side
            riedel = self._blob(right.centre + [15, -10, -75 * size], (28, 30, 50), size_sd=0.2, wobble_sd=0.1)
        caudate = self._blob(self._sp(zr - 70, 18, 42), (18, 16, 26), size_sd=0.15, wobble_sd=0.08)
        lobes = [b for b in (right, left, caudate, riedel) if b is not None]
        self.shapes["liver"] = right
        self.centres["liver"] = right.centre.copy()
        self._liver_lobes = lobes
        self._liver_bottom = float(right.centre[2] - right.radii[2])
        self.z["liver_bottom"] = self._liver_bottom

        # vessel trees: portal from the hilum, hepatic veins from the IVC at the top
        hilum = self._sp(zr - 95 * size, 45, 62)
        self.centres["liver_hilum"] = hilum
        tree: list[Tube] = []
        self._grow(tree, hilum, np.array([0.6, 0.2, 0.5]), 7.5, 4, lobes)
        self._grow(tree, hilum, np.array([-0.8, 0.4, 0.3]), 6.5, 4, lobes)
        ivc_top = self._sp(zr - 25, 22, 35)
        for d in ([0.9, 0.3, -0.3], [0.1, 0.8, -0.4], [-0.7, 0.7, -0.2]):
            self._grow(tree, ivc_top, np.asarray(d) + self.rng.normal(0, 0.15, 3), 6.0, 4, lobes)
        self._liver_tree = tree

        # tumours: random lesions inside the liver, sometimes with a necrotic core
        count = int(self.rng.poisson(n_tumours)) if n_tumours > 0 else 0
        if at_least_one:
            count = max(count, 1)
        lesions = []
        for _ in range(count):
            centre = self._inside(lobes, right.centre, 80)
            r = float(np.clip(math.exp(self.n(0.6, math.log(12))), 4, 60))
            b = Blob.random(self.rng, centre, (r, r, r), axis_sd=0.15, wobble_sd=0.15, angle_sd=40)
            core = Blob(b.centre, b.radii * 0.55, b.rot, wobble=b.wobble) if r > 18 and self.rng.random() < 0.6 else None
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
                m &= z < self.z_dia(x, y) - 4
                cv.paint(liver, (box, m), only=soft)
            inside = cv.ids("liver")
            vessel = cv.part("hepatic_vessel", "blood_portal", ("hepatic_vessel", "liver"))
            for t in tree:
                cv.paint(vessel, t.mask(cv.grid), only=inside)
            tumour = cv.part("liver_tumour", "liver_tumour", ("liver_tumour",))
            necrosis = cv.part("liver_tumour_necrosis", "necrosis", ("liver_tumour",))
            for b, core in lesions:
                cv.paint(tumour, b.mask(cv.grid), only=inside + [vessel])
                if core is not None:
                    cv.paint(necrosis, core.mask(cv.grid), only=[tumour])
        self._add(paint)

        # gallbladder: under the right lobe; absent after cholecystectomy
        if self.rng.random() < 0.9:
            gb_c = self._cav(self._liver_bottom + 25 + self.n(8), 0.35, 0.78) + [self.n(8), self.n(8), 0]
            gb = Blob.random(self.rng, gb_c, (15, 16, 34), size_sd=0.15, axis_sd=0.12, angle_sd=15,
                             rot=frame([-0.2, 0.6, -0.8]), wobble_sd=0.08, bend_sd=0.2, taper=0.3)
            self.shapes["gallbladder"] = gb
            self._add(lambda cv: cv.paint(cv.part("gallbladder", "bile", ("gallbladder",)), gb.mask(cv.grid),
                                          only=cv.ids("visceral_fat", "liver")))

    def _inside(self, blobs: list[Blob], centre: np.ndarray, spread: float) -> np.ndarray:
        """A random point inside the union of ``blobs`` (rejection sampling around ``centre``)."""
        for _ in range(200):
            p = centre + self.rng.uniform(-spread, spread, 3)
            if any(b.contains(p, 0.85)[0] for b in blobs) and p[2] < float(self.z_dia(p[0], p[1])) - 15:
                return p
        return centre.copy()

    def _grow(self, out: list[Tube], start: np.ndarray, direction: np.ndarray, radius: float, depth: int,
              region: list[Blob]) -> None:
        """A random branching vessel tree (each branch 20-40 mm, radius x0.72 per level)."""
        d = direction / np.linalg.norm(direction)
        length = self.u(22, 42)
        pts = [start]
        for _ in range(3):
            d = d + self.rng.normal(0, 0.15, 3)
            d /= np.linalg.norm(d)
            pts.append(pts[-1] + d * length / 3)
        end = pts[-1]
        out.append(Tube.smooth(pts, [radius, radius * 0.8], _STEP))
        if depth <= 1 or not any(b.contains(end, 1.05)[0] for b in region):
            return
        for sign in (1, -1):
            turn = np.cross(d, self.rng.normal(0, 1, 3))
            turn /= np.linalg.norm(turn) + 1e-9
            nd = d + sign * turn * self.u(0.4, 0.9)
            self._grow(out, end, nd, radius * 0.72, depth - 1, region)

    def _upper_abdomen(self, pancreas_tumour: bool) -> None:
        zl = self.z["dia_l"]
        # kidneys: left higher than right, upper pole medial and posterior
        kidneys = []
        for sgn in (1, -1):
            zc = self.z["L1"] + (-12 if sgn > 0 else 0) + self.n(10)
            c = self._sp(zc, sgn * (57 + self.n(5)), 14 + self.n(5))
            k = Blob.random(self.rng, c, (27, 21, 52), size_sd=0.1, axis_sd=0.07, angle_sd=6,
                            rot=rotation(-15, sgn * 12, sgn * 30), wobble_sd=0.05, bend_sd=0.08)
            hil = c + np.array([-sgn * 20, 10, 0])
            sinus = Blob(hil, np.array([12, 11, 24]) * k.radii / np.array([27, 21, 52]), k.rot)
            pelvis = Blob(hil + [-sgn * 4, 2, -5], (7, 6, 10), k.rot)
            kidneys.append((sgn, k, sinus, pelvis))
            self.shapes[_side("kidney", sgn)] = k
            self.z[_side("kidney", sgn)] = zc
        # spleen: along the left posterior-lateral ribs
        s = math.exp(self.n(0.25))
        # lateral to the left kidney's upper pole, well below the left dome
        zs = zl - 62 + self.n(8)
        ca = float(self.cavity(np.array([zs]))[0][0])
        spleen = Blob.random(self.rng, self._sp(zs, -0.8 * ca + self.n(5), 14 + self.n(6)),
                             np.array([22, 50, 48]) * s ** np.array([0.7, 1, 1]), size_sd=0.0, axis_sd=0.2,
                             angle_sd=18, rot=rotation(self.n(8), 0, -35 + self.n(10)), wobble_sd=0.15, bend_sd=0.45,
                             taper=self.n(0.2))
        self.centres["spleen"] = spleen.centre
        self.shapes["spleen"] = spleen
        # adrenals: inverted-V plates above and medial to the kidneys
        adrenals = []
        for sgn, k, _, _ in kidneys:
            top = self._sp(self.z[_side("kidney", sgn)] + 48 + self.n(5), sgn * (30 + self.n(3)), 20 + self.n(4))
            limbs = [Blob.random(self.rng, top + [sgn * 4 * i, 4 * i, -8], (3.5, 11, 17), size_sd=0.15, angle_sd=8,
                                 rot=rotation(25 * i, 0, sgn * 35), wobble_sd=0.05) for i in (-1, 1)]
            adrenals.append((sgn, limbs))
            self.shapes[_side("adrenal_gland", sgn)] = limbs[0]
        # pancreas: head in the duodenal C-loop, body over the spine, tail to the splenic hilum
        zp = self.z["L1"] + self.n(8)
        self.z["pancreas"] = zp
        ctrl = [self._cav(zp - 35, 0.27, 0.55) + [self.n(5), 0, 0], self._cav(zp - 12, 0.18, 0.62),
                self._cav(zp, 0, 0.68), self._cav(zp + 8, -0.3, 0.58) + [0, self.n(6), 0], self._cav(zp + 18, -0.5, 0.4),
                spleen.centre + [22 + self.n(5), 18, -10 + self.n(8)]]
        radii = np.array([20, 16, 12, 13, 12, 10]) * math.exp(self.n(0.15)) * np.exp(self.rng.normal(0, 0.12, 6))
        pancreas = Tube.smooth(ctrl, radii, _STEP)
        self.shapes["pancreas"] = pancreas
        lumps = [Blob.random(self.rng, pancreas.points[int(i)], (7, 7, 7), size_sd=0.3, wobble_sd=0.1)
                 for i in self.rng.integers(0, len(pancreas.points), 8)]
        self.centres["pancreas"] = ctrl[2]
        self._pancreas_ctrl = ctrl
        ptum = None
        if pancreas_tumour:
            idx = int(self.rng.integers(0, len(pancreas.points) * 2 // 3)) if self.rng.random() < 0.6 \
                else int(self.rng.integers(0, len(pancreas.points)))
            r = float(np.clip(math.exp(self.n(0.35, math.log(13))), 6, 30))
            ptum = Blob.random(self.rng, pancreas.points[idx] + self.rng.normal(0, 4, 3), (r, r, r), axis_sd=0.15,
                               wobble_sd=0.15, angle_sd=40)
        # stomach: J-shaped, fundus under the left dome, antrum across to the pylorus
        dist = math.exp(self.n(0.25))
        fundus = self._cav(zl - 30, -0.5, 0.4)
        ctrl = [fundus, self._cav(zl - 65, -0.62, 0.65), self._cav(self.z["L1"] - 5, -0.5, 0.78),
                self._cav(self.z["L2"] - 5, -0.15, 0.8), self._cav(self.z["L1"], 0.15, 0.65)]
        ctrl = [p + self.rng.normal(0, 6, 3) for p in ctrl]
        stomach = Tube.smooth(ctrl, np.array([36, 34, 28, 20, 12]) * dist, _STEP)
        self.shapes["stomach"] = stomach
        self._pylorus = ctrl[-1]
        self._fundus = fundus
        air_level = fundus[1] + self.u(-10, 20)
        # duodenum: C-loop around the pancreatic head
        p0 = ctrl[-1]
        dctrl = [p0, p0 + [22, -15, 0], self._cav(zp - 20, 0.42, 0.48), self._cav(self.z["L3"], 0.4, 0.45),
                 self._cav(self.z["L3"] - 10, 0.08, 0.5), self._cav(self.z["L3"], -0.2, 0.52),
                 self._cav(self.z["L2"], -0.26, 0.58)]
        dctrl = [dctrl[0]] + [p + self.rng.normal(0, 4, 3) for p in dctrl[1:]]
        duod = Tube.smooth(dctrl, np.array([12, 14, 14, 13, 12, 12, 11]) * math.exp(self.n(0.15)), _STEP)
        self._duod_end = dctrl[-1]

        def paint(cv: Canvas) -> None:
            hard = cv.ids("bone", "muscle_labelled", "lung", "subcutaneous_fat")
            for sgn, k, sinus, pelvis in kidneys:
                name = _side("kidney", sgn)
                cv.paint(cv.part(name + "_cortex", "kidney_cortex", (name,)), k.mask(cv.grid), never=hard)
                cv.paint(cv.part(name + "_medulla", "kidney_medulla", (name,)), k.mask(cv.grid, 0.72),
                         only=cv.ids(name))
                cv.paint(cv.part(name + "_sinus", "fat", (name,)), sinus.mask(cv.grid), only=cv.ids(name))
                cv.paint(cv.part(name + "_pelvis", "urine", (name,)), pelvis.mask(cv.grid), only=cv.ids(name))
            shaped = spleen.mask(cv.grid)
            if shaped is not None:
                box, m = shaped
                x, y, z = cv.grid.axes(box)
                m &= z < self.z_dia(x, y) - 4
                cv.paint(cv.part("spleen", "spleen", ("spleen",)), (box, m), only=cv.ids("visceral_fat", "lung", "liver"))
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
            lumen = stomach.mask(cv.grid, -5)
            if lumen is not None:
                box, m = lumen
                _, y, _ = cv.grid.axes(box)
                cv.paint(cv.part("stomach_air", "air_lumen", ("stomach",)), (box, m & (y > air_level)), only=[stom])
                cv.paint(cv.part("stomach_fluid", "bowel_fluid", ("stomach",)), (box, m & (y <= air_level)),
                         only=[stom])
            duo = cv.part("duodenum_wall", "bowel_wall", ("duodenum",))
            cv.paint(duo, duod.mask(cv.grid), only=cv.ids("visceral_fat"))
            cv.paint(cv.part("duodenum_fluid", "bowel_fluid", ("duodenum",)), duod.mask(cv.grid, -3.5), only=[duo])
            if ptum is not None:
                cv.paint(cv.part("pancreas_tumour", "pancreas_tumour", ("pancreas_tumour",)), ptum.mask(cv.grid),
                         only=[pan] + cv.ids("visceral_fat"))
        self._add(paint)

    def _pelvic_organs(self) -> None:
        zf = self.z["fem"]
        yb = float(self.ysp(zf))
        vol = math.exp(float(np.clip(self.n(0.3), -0.6, 0.6)))  # bladder filling (linear factor)
        self._pubis_y = yb + 118 * self.w
        bl_c = np.array([self.n(5), self._pubis_y - 42 - 12 * vol, zf + 15 + 22 * vol])
        bladder = Blob.random(self.rng, bl_c, np.array([38, 30, 30]) * vol, size_sd=0.0, axis_sd=0.12, angle_sd=10,
                              wobble_sd=0.07, taper=self.n(0.1, -0.15))
        self.centres["bladder"] = bl_c
        # prostate (male, unlabelled in the training cohort): peripheral zone behind, transition zone in front
        pro = tz = None
        if self.sex == "m":
            g = math.exp(self.n(0.2)) * (1 + 0.006 * max(0, self.age - 45))
            pc = np.array([self.n(2), self._pubis_y - 40 + self.n(4), zf - 22 + self.n(5)])
            pro = Blob.random(self.rng, pc, np.array([24, 17, 20]) * g ** 0.6, size_sd=0.05, axis_sd=0.12,
                              angle_sd=8, rot=rotation(-20, 0, 0), wobble_sd=0.06)
            tzs = float(np.clip(0.68 + 0.3 * (g - 1) + self.n(0.12), 0.45, 0.9))
            tz = Blob.random(self.rng, pc + [0, 2 + 3 * tzs, 2] + self.rng.normal(0, 1.5, 3), pro.radii * [tzs * 1.1, tzs, tzs * 1.1],
                             size_sd=0.05, axis_sd=0.15, angle_sd=15, rot=pro.rot, wobble_sd=0.12)
            self.centres["prostate"] = pc
            self.shapes["prostate"] = pro
            self.shapes["prostate_tz"] = tz
        uterus = None
        if self.sex == "f":
            uterus = Blob.random(self.rng, bl_c + [self.n(10), -30, 45], (35, 25, 45), size_sd=0.2, angle_sd=20,
                                 rot=rotation(50, 0, 0), wobble_sd=0.06)

        def paint(cv: Canvas) -> None:
            hard = cv.ids("bone", "muscle_labelled")
            if uterus is not None:
                cv.paint(cv.part("uterus", "uterus"), uterus.mask(cv.grid), only=cv.ids("visceral_fat"))
            wall = cv.part("urinary_bladder_wall", "bowel_wall", ("urinary_bladder",))
            cv.paint(wall, bladder.mask(cv.grid), only=cv.ids("visceral_fat", "uterus"))
            cv.paint(cv.part("urine", "urine", ("urinary_bladder",)), bladder.mask(cv.grid, 0.9), only=[wall])
            if pro is not None:
                cv.paint(cv.part("prostate_pz", "prostate_pz", ("prostate", "prostate_pz")), pro.mask(cv.grid),
                         never=hard + [wall])
                cv.paint(cv.part("prostate_tz", "prostate_tz", ("prostate", "prostate_tz")), tz.mask(cv.grid),
                         only=cv.ids("prostate"))
                # anterior fibromuscular stroma: a thin dark band in front (neither zone)
                afs = Blob(pro.centre + pro.rot @ np.array([0, pro.radii[1] * 0.92, 0]),
                           pro.radii * [0.5, 0.15, 0.7], pro.rot)
                cv.paint(cv.part("prostate_stroma", "muscle", ("prostate",)), afs.mask(cv.grid),
                         only=cv.ids("prostate"))
        self._add(paint)

    def _vessels(self) -> None:
        age = (self.age - 20) / 70
        zb = self.z["L4"] - 5
        zt = self.z["T4"]
        heart_top = self._sp(self.z["heart"] + 30, 8, 75)
        # aorta: ascending from the heart, arch over the left bronchus, descending left of the spine
        ra = 14 + 4 * age + self.n(1.5)
        actrl = [heart_top, heart_top + [2, -5, 35], self._sp(zt + 8, 5, 55), self._sp(zt + 15, -12, 30),
                 self._sp(zt - 5, -25, 12), self._sp(self.z["T8"], -22, 20), self._sp(self.z["T12"], -12, 28),
                 self._sp(self.z["L2"], -8, 32), self._sp(zb, -4, 30)]
        actrl = [actrl[0]] + [p + self.rng.normal(0, 3, 3) for p in actrl[1:]]
        aorta = Tube.smooth(actrl, [ra * 1.15, ra * 1.15, ra, ra * 0.85, ra * 0.8, ra * 0.75, ra * 0.7, ra * 0.65,
                                    ra * 0.6], _STEP)
        zf = self.z["fem"]
        fem_x = 88 * self.w * (1.06 if self.sex == "f" else 1.0)
        self._fem_x = fem_x
        yf = float(self.ysp(zf)) + 62
        self._fem_y = yf
        arteries, veins = [], []
        for s in (1, -1):
            a = Tube.smooth([actrl[-1], self._sp(self.z["L5"], s * 28, 28), np.array([s * (fem_x - 30), yf + 35, zf + 25]),
                             np.array([s * (fem_x - 22), yf + 35, zf - 40])], [ra * 0.45, 6.5, 5.5, 5], _STEP)
            v = Tube.smooth([self._sp(self.z["L5"] - 10, 12, 22), self._sp(self.z["L5"] - 30, s * 30, 18),
                             np.array([s * (fem_x - 38), yf + 28, zf + 25]), np.array([s * (fem_x - 32), yf + 30, zf - 40])],
                            [9, 8, 7.5, 7], _STEP)
            arteries.append((s, a))
            veins.append((s, v))
        rv = 11 + self.n(1.5)
        ivc = Tube.smooth([self._sp(self.z["L5"] - 10, 14, 22), self._sp(self.z["L2"], 22, 30),
                           self._sp(self.z["T12"], 25, 40), self._sp(self.z["dia_r"] - 20, 22, 40),
                           self._sp(self.z["heart"] - 15, 20, 60)], [rv, rv, rv * 1.1, rv * 1.2, rv * 1.3], _STEP)
        svc = Tube.smooth([self._sp(self.z["top"] + 10, 28, 55), self._sp(self.z["T4"], 30, 58),
                           self._sp(self.z["heart"] + 25, 28, 62)], [9, 9.5, 10], _STEP)
        # portal vein: confluence behind the pancreatic neck up to the hilum; splenic vein to the spleen
        conf = self._pancreas_ctrl[2] + np.array([0, -14, 0])
        portal = Tube.smooth([conf, conf + [18, -5, 20], self.centres["liver_hilum"]], [7.5, 7.5, 7], _STEP)
        sctrl = [conf] + [p + np.array([0, -14, 2]) for p in self._pancreas_ctrl[3:]]
        splenic = Tube.smooth(sctrl, [6, 5, 4.5, 4.5], _STEP)
        smv = Tube.smooth([conf, conf + [3, 5, -45], conf + [5, 10, -90]], [6, 5, 4], _STEP)
        sma = Tube.smooth([self._sp(self.z["L1"], -6, 36), self._sp(self.z["L2"], -2, 60), self._sp(self.z["L4"], 0, 70)],
                          [4, 3.5, 3], _STEP)
        renal = []
        for s in (1, -1):
            kz = self.z[_side("kidney", s)]
            renal.append(Tube.smooth([self._sp(kz + 5, -6, 32), self._sp(kz, s * 40, 20)], 3.5, _STEP))
            renal.append(Tube.smooth([self._sp(kz, 18 if s > 0 else 0, 38), self._sp(kz - 3, s * 40, 22)], 4.5, _STEP))

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
            cv.paint(cv.part("mesenteric_vein", "blood_portal"), smv.mask(cv.grid), only=cv.ids("visceral_fat", "pancreas"))
            cv.paint(cv.part("mesenteric_artery", "blood_arterial"), sma.mask(cv.grid), only=cv.ids("visceral_fat"))
            for t in renal:
                cv.paint(cv.part("renal_vessel", "blood_venous"), t.mask(cv.grid), only=cv.ids("visceral_fat"))
        self._add(paint)

    def _airways_and_esophagus(self) -> None:
        zc = self.z["T5"] + self.n(8)
        rt = 9.5 + self.n(1)
        trachea = Tube.smooth([self._sp(self.z["top"] + 20, 0, 52), self._sp(self.z["T2"], 0, 48), self._sp(zc, 0, 40)],
                              rt, _STEP)
        bronchi = [Tube.smooth([self._sp(zc, 0, 40), self._sp(zc - 20, s * 35, 35), self._sp(zc - 45, s * 55, 30)],
                               [7.5, 6, 4], _STEP) for s in (1, -1)]
        re = 9 + self.n(1)
        eso = Tube.smooth([self._sp(self.z["top"] + 20, -4, 28), self._sp(self.z["T4"], -6, 24),
                           self._sp(self.z["T8"], -8, 26), self._sp(self.z["dia_l"] - 5, -22, 36), self._fundus + [18, 0, -5]],
                          [re, re, re, re * 0.9, re], _STEP)
        air = self.rng.random() < 0.4

        def paint(cv: Canvas) -> None:
            soft = cv.ids("lung", "mediastinal_fat", "visceral_fat", "body_wall", "pericardial_fat",
                          "subcutaneous_fat")
            cv.paint(cv.part("esophagus", "bowel_wall", ("esophagus",)), eso.mask(cv.grid),
                     only=soft + cv.ids("stomach", "liver"))
            if air:
                cv.paint(cv.part("esophagus_air", "air_lumen", ("esophagus",)), eso.mask(cv.grid, -6.5),
                         only=cv.ids("esophagus"))
            tr = cv.part("trachea", "airway_wall", ("trachea",))
            cv.paint(tr, trachea.mask(cv.grid), never=cv.ids("aorta", "bone"))
            cv.paint(cv.part("trachea_air", "air_lumen", ("trachea",)), trachea.mask(cv.grid, -2.0), only=[tr])
            for b in bronchi:
                cv.paint(cv.part("bronchus", "airway_wall"), b.mask(cv.grid), only=soft)
                cv.paint(cv.part("bronchus_air", "air_lumen"), b.mask(cv.grid, -1.8), only=cv.ids("bronchus"))
        self._add(paint)

    def _bowel(self, colon_tumour: bool) -> None:
        zf = self.z["fem"]
        sp = self._sp
        cav = self._cav
        ctrl = [cav(self.z["L5"] - 25, 0.65, 0.45), cav(self.z["L3"], 0.72, 0.3), cav(self.z["L1"] - 5, 0.6, 0.6),
                cav(self.z["L3"] + self.n(15), 0, 0.85), cav(self.z["T12"], -0.65, 0.5), cav(self.z["L2"], -0.75, 0.25),
                cav(self.z["L5"], -0.7, 0.35), np.array([-45, self._pubis_y - 55, zf + 35]),
                np.array([0, self._pubis_y - 80, zf + 45]), sp(zf + 10, 0, 30), sp(zf - 40, 0, 55)]
        ctrl = [p + self.rng.normal(0, 7, 3) for p in ctrl]
        radii = np.array([28, 24, 22, 21, 20, 17, 16, 15, 15, 18, 17]) * math.exp(self.n(0.15))
        colon = Tube.smooth(ctrl, radii, _STEP)
        ctum = None
        if colon_tumour:
            i = int(self.rng.integers(3, len(colon.points) - 4))
            n_pts = max(2, int(self.u(15, 45) / _STEP) + 1)
            seg = colon.points[i:i + n_pts]
            ctum = Tube(seg, colon.radii[i:i + n_pts] * self.u(0.6, 0.95))
            self.centres["colon_tumour"] = seg[len(seg) // 2]
        sb_c = cav(self.z["L4"], 0.05, 0.6) + [self.n(10), self.n(8), 0]
        ca, cb, _ = self.cavity(np.array([self.z["L4"]]))
        sbowel = Blob.random(self.rng, sb_c, (0.7 * float(ca[0]), 0.6 * float(cb[0]), 85), size_sd=0.1, axis_sd=0.08,
                             wobble_sd=0.1)
        seed = self.texture_seed

        def paint(cv: Canvas) -> None:
            fat = cv.ids("visceral_fat")
            wall = cv.part("colon_wall", "bowel_wall", ("colon",))
            cv.paint(wall, colon.mask(cv.grid), only=fat)
            lumen = colon.mask(cv.grid, -3.0)
            if lumen is not None:
                box, m = lumen
                g = np.random.default_rng(seed + 1)
                mott = smooth_noise(g, m.shape, max(1.0, 4.0 / cv.grid.spacing))
                cv.paint(cv.part("colon_air", "air_lumen", ("colon",)), (box, m & (mott > 0.3)), only=[wall])
                cv.paint(cv.part("colon_stool", "stool", ("colon",)), (box, m & (mott <= 0.3)), only=[wall])
            if ctum is not None:
                cv.paint(cv.part("colon_tumour", "colon_tumour", ("colon_tumour",)), ctum.mask(cv.grid),
                         only=cv.ids("colon"))
            shaped = sbowel.mask(cv.grid)
            if shaped is not None:
                box, m = shaped
                g = np.random.default_rng(seed + 2)
                loops = smooth_noise(g, m.shape, max(1.0, 9.0 / cv.grid.spacing))
                bowel = m & (loops > -0.35)
                sb = cv.part("small_bowel_wall", "bowel_wall", ("small_bowel",))
                cv.paint(sb, (box, bowel), only=fat)
                cv.paint(cv.part("small_bowel_fluid", "bowel_fluid", ("small_bowel",)), (box, bowel & (loops > 0.25)),
                         only=[sb])
                cv.paint(cv.part("small_bowel_air", "air_lumen", ("small_bowel",)), (box, bowel & (loops > 1.6)),
                         only=cv.ids("small_bowel"))
        self._add(paint)

    # ------------------------------------------------------------------ muscles and bones
    def _muscles(self) -> None:
        m = self.muscle
        zf = self.z["fem"]
        specs = []
        for s in (1, -1):
            ps = Tube.smooth([self._sp(self.z["T12"], s * 25, 2), self._sp(self.z["L3"], s * 42, 5),
                              self._sp(self.z["L5"], s * 52, 18), np.array([s * 68, self.ysp(zf) + 95, zf + 25]),
                              np.array([s * 72, self.ysp(zf) + 85, zf - 30]), np.array([s * 78, self.ysp(zf) + 70, zf - 70])],
                             np.array([8, 17, 22, 20, 17, 12]) * m, _STEP)
            iliacus = Blob.random(self.rng, np.array([s * 72, self.ysp(self.z["L5"]) + 30, self.z["L5"] - 25]),
                                  (18 * m, 30, 45), angle_sd=5, rot=rotation(0, 0, s * 30), wobble_sd=0.05)
            back = []
            for dx in (18, 32, 46):
                pts = [self._sp(z, s * dx, -44 * m - 4 + 0.2 * dx) for z in (self.z["top"], self.z["T6"], self.z["T10"],
                                                                   self.z["L2"], self.z["L5"], -45)]
                back.append(Tube.smooth(pts, np.array([11, 13, 15, 20, 18, 10]) * m, _STEP))
            glut = Blob.random(self.rng, np.array([s * 78, self.ysp(zf) - 38, zf - 10]), (42 * m, 30 * m, 85),
                               size_sd=0.06, angle_sd=6, rot=rotation(0, s * 28, 0), wobble_sd=0.06)
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
        self._add(paint)

    def _bones(self) -> None:
        sp = self._sp
        vert = []
        for name, _ in _LEVELS:
            lo, hi = self.levels[name]
            zc = 0.5 * (lo + hi)
            lumbar = name.startswith("L")
            rx = (23 if lumbar else 15 + 0.4 * (12 - int(name[1:]))) * self.w
            ry = (17 if lumbar else 13) * self.w
            dy_dz = float(self.ysp(zc + 5) - self.ysp(zc - 5)) / 10
            tilt = math.degrees(math.atan(dy_dz))
            body = Blob(sp(zc, 0, 0), (rx, ry, 0.5 * (hi - lo) + 0.5), rotation(-tilt, 0, 0),
                        wobble=self.rng.normal(0, 0.02, 15))
            canal = sp(zc, 0, -ry - 10)
            drop = -5 if lumbar else -18
            parts = [Tube.smooth([sp(zc, s * 0.55 * rx, -ry + 3), canal + [s * 11, -2, 0], canal + [s * 8, -14, 0],
                                  canal + [0, -18, 0]], 4.5, _STEP) for s in (1, -1)]
            parts.append(Tube.smooth([canal + [0, -16, 0], canal + [0, -32, drop * 0.6], canal + [0, -44, drop]],
                                     [5, 4.5, 4], _STEP))
            span = 40 if lumbar else 28
            for s in (1, -1):
                parts.append(Tube.smooth([canal + [s * 10, -5, 0], canal + [s * span, -8 if lumbar else -14, 2]],
                                         [4.5, 3.5], _STEP))
            vert.append((name, body, parts))
        discs = Tube(np.array([sp(z, 0, 0) for z in np.arange(-5, self.z["top"] + 20, _STEP)]), 0.0)
        discs.radii = np.array([16.0 if p[2] < self.z["T12"] else 13.0 for p in discs.points]) * self.w
        canal_t = Tube(np.array([sp(z, 0, 0) for z in np.arange(-40, self.z["top"] + 30, _STEP)]), 0.0)
        canal_t.points[:, 1] -= np.where(canal_t.points[:, 2] < self.z["T12"], 17, 13) * self.w + 10
        canal_t.radii = np.full(len(canal_t.points), 9.0)
        cord_pts = canal_t.points[canal_t.points[:, 2] > self.z["L1"] + self.n(8)]
        cord = Tube(cord_pts, 4.5 + self.n(0.4))
        # sacrum: a curved, tapering wedge below L5
        sac = Blob(sp(-55, 0, -28), (48 * self.w, 16, 55), rotation(-25 + self.n(5), 0, 0), bend=(0, -0.25),
                   wobble=self.rng.normal(0, 0.03, 15), taper=0.5)
        # hip bones: iliac wing, acetabulum, pubic and ischial rami
        zf = self.z["fem"]
        fx, fy = self._fem_x, self._fem_y
        hips = []
        for s in (1, -1):
            wing = Blob.random(self.rng, np.array([s * 78 * self.w, self.ysp(self.z["L5"]) + 5, self.z["L5"] - 30]),
                               (7, 58, 48), size_sd=0.05, axis_sd=0.05, angle_sd=4, rot=rotation(0, -s * 10, -s * 40),
                               bend=(s * 0.3, 0), wobble_sd=0.03)
            acet = Blob(np.array([s * (fx - 4), fy, zf]), (30, 30, 30))
            body = Tube.smooth([np.array([s * 70 * self.w, self.ysp(self.z["L5"]) + 10, self.z["L5"] - 60]),
                                np.array([s * (fx - 10), fy - 10, zf + 25])], [14, 18], _STEP)
            pubic = Tube.smooth([np.array([s * (fx - 15), fy + 15, zf]), np.array([s * 45, fy + 45, zf - 5]),
                                 np.array([s * 6, self._pubis_y - 12, zf - 15])], [11, 9, 10], _STEP)
            isch = Tube.smooth([np.array([s * (fx - 15), fy - 15, zf - 15]), np.array([s * 55, fy - 35, zf - 55]),
                                np.array([s * 40, fy + 5, zf - 65]), np.array([s * 20, fy + 40, zf - 35])],
                               [14, 13, 8, 7], _STEP)
            head = Blob(np.array([s * fx, fy, zf]), np.full(3, 23 * self.h + self.n(1)))
            neck_end = np.array([s * (fx + 38), fy - 12, zf - 28])
            fem = [Tube.smooth([head.centre, neck_end], [15, 16], _STEP),
                   Blob(neck_end + [s * 6, -4, 8], (18, 18, 24)),
                   Tube.smooth([neck_end + [0, 0, -10], neck_end + [-s * 8, 10, -250], neck_end + [-s * 12, 12, -450]],
                               [16, 14, 13], _STEP)]
            hips.append((s, wing, acet, body, pubic, isch, head, fem))
        # ribs: from the transverse processes around the chest wall, dropping anteriorly
        ribs = []
        ends = {}
        for k in range(1, 13):
            zk = self.z[f"T{k}"] + 8
            sweep = [0.82, 0.9, 0.9, 0.9, 0.88, 0.86, 0.84, 0.78, 0.74, 0.7, 0.55, 0.4][k - 1] * math.pi
            drop = (35 + 9 * min(k, 8)) * self.h
            r = (5.5 if k > 1 else 7) * self.w ** 0.5
            for s in (1, -1):
                th = np.linspace(0.12 * math.pi, sweep, 16)
                zs = zk - drop * (th / sweep) ** 1.4 + self.n(2)
                ca, cb, cyc = self.cavity(zs)
                shrink = 1.0 if k > 2 else 0.6 + 0.2 * (k - 1)
                pts = np.stack([s * (ca * shrink + 6) * np.sin(th), cyc - (cb + 6) * np.cos(th) * (0.85 if k < 3 else 1.0),
                                zs], axis=1)
                start = sp(zk, s * 20, -14)
                pts = np.vstack([start, pts])
                ribs.append((f"rib_{'right' if s > 0 else 'left'}_{k}", Tube.smooth(pts, r, _STEP)))
                ends[(s, k)] = pts[-1]
        cart = []
        z_st = (self.z["T2"] + 10, self.z["T9"])
        for s in (1, -1):
            for k in range(1, 11):
                e = ends[(s, k)]
                target = np.array([s * 12, e[1], np.clip(e[2] + 15, z_st[1], z_st[0])]) if k <= 7 else \
                    ends[(s, k - 1)] + [0, -6, 10]
                if k <= 7:
                    _, cb, cyc = self.cavity(np.array([target[2]]))
                    target[1] = float(cyc[0] + cb[0]) + 2
                cart.append(Tube.smooth([e, 0.5 * (e + target) + [0, 6, 0], target], 5, _STEP))
        _, cb, cyc = self.cavity(np.array([z_st[0], z_st[1]]))
        ster = Tube.smooth([np.array([0, cyc[0] + cb[0] + 3, z_st[0] + 15]), np.array([0, cyc[1] + cb[1] + 4, z_st[1]])],
                           [9, 7], _STEP)
        manubrium = Blob(ster.points[0] + [0, 0, -12], (26, 8, 22), wobble=self.rng.normal(0, 0.03, 15))
        clav = []
        for s in (1, -1):
            a0 = ster.points[0] + [s * 18, 0, 8]
            clav.append((s, Tube.smooth([a0, a0 + [s * 55, 8, 12], a0 + [s * 110, -35, 20], a0 + [s * 140, -80, 30]],
                                        7, _STEP)))

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
                cv.paint(cv.part("joint_space", "cartilage"), head.mask(cv.grid, 1.12), only=[hid])
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
        self._add(paint)

    def _lung_tumours(self, count: int) -> None:
        tumours = []
        for i in range(count):
            side = 1 if self.rng.random() < 0.55 else -1
            zc = self.u(self.z["dia_r"] + 25, self.z["T2"])
            _, cb, cyc = self.cavity(np.array([zc]))
            c = np.array([side * self.u(35, 95) * self.w, float(cyc[0]) + self.u(-0.6, 0.6) * float(cb[0]), zc])
            r = float(np.clip(math.exp(self.n(0.5, math.log(14))), 5, 45))
            b = Blob.random(self.rng, c, (r, r, r), axis_sd=0.15, angle_sd=40, wobble_sd=0.18)
            tumours.append(b)
            if i == 0:
                self.centres["lung_tumour"] = c

        def paint(cv: Canvas) -> None:
            for b in tumours:
                cv.paint(cv.part("lung_tumour", "lung_tumour", ("lung_tumour",)), b.mask(cv.grid),
                         only=cv.ids("lung", "mediastinal_fat", "pulmonary_artery", "bronchus"))
        self._add(paint)
