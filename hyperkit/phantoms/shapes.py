"""Smooth random shapes on a voxel grid: the geometry every phantom is built from.

A phantom is painted, structure after structure, into an integer *part map*
(``Canvas.parts``, one id per tissue part, later paints overwrite earlier ones).
The shapes are analytic and evaluated only inside their own bounding box, so a
3 mm torso of ~3 M voxels with ~150 parts costs about a second:

- :class:`Blob`: an ellipsoid in its own rotated frame, bent along its long
  axis and with a smooth random radial "wobble" (low-degree polynomials of the
  direction, like low-order spherical harmonics), for organs.
- :class:`Tube`: a chain of cone-capsules around a centreline, with a radius
  per point, for vessels, bowel, ribs, muscles.
- :func:`smooth_noise`: a Gaussian random field of a given correlation length,
  for textures, bias fields and loop-like bowel.

World coordinates are millimetres in RAS+ (x to the patient's right, y
anterior, z superior). A :class:`Grid` maps voxel indices to world
coordinates with array axes that increase along +x, +y, +z; the writer may
store a volume flipped (see :mod:`hyperkit.phantoms.writer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "Grid",
    "Canvas",
    "Part",
    "Blob",
    "Tube",
    "rotation",
    "smooth_noise",
    "spline",
]

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Grid:
    """An isotropic voxel grid in RAS+ world millimetres.

    Args:
        shape: number of voxels ``(X, Y, Z)``.
        spacing: voxel size in mm (isotropic).
        origin: world position (mm) of the centre of voxel ``(0, 0, 0)``.
    """

    shape: tuple[int, int, int]
    spacing: float
    origin: tuple[float, float, float]

    @classmethod
    def around(cls, lo: Sequence[float], hi: Sequence[float], spacing: float) -> "Grid":
        """The grid whose voxel centres cover the world box ``[lo, hi]`` (mm)."""
        lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
        shape = tuple(int(max(1, math.floor((h - l) / spacing) + 1)) for l, h in zip(lo_a, hi_a))
        return cls(shape, float(spacing), tuple(float(v) for v in lo_a))

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-to-world (RAS+) matrix of this grid."""
        aff = np.diag([self.spacing] * 3 + [1.0])
        aff[:3, 3] = self.origin
        return aff

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> Box | None:
        """Index slices of the voxels whose centres lie in the world box, or None if empty."""
        out = []
        for ax in range(3):
            a = math.ceil((lo[ax] - self.origin[ax]) / self.spacing)
            b = math.floor((hi[ax] - self.origin[ax]) / self.spacing) + 1
            a, b = max(a, 0), min(b, self.shape[ax])
            if a >= b:
                return None
            out.append(slice(a, b))
        return tuple(out)  # type: ignore[return-value]

    def axes(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates of a box as open-grid arrays of shapes (n,1,1), (1,n,1), (1,1,n)."""
        out = []
        for ax, sl in enumerate(box):
            v = self.origin[ax] + self.spacing * np.arange(sl.start, sl.stop, dtype=np.float32)
            shape = [1, 1, 1]
            shape[ax] = v.size
            out.append(v.reshape(shape))
        return out[0], out[1], out[2]


def rotation(ax_deg: float = 0.0, ay_deg: float = 0.0, az_deg: float = 0.0) -> np.ndarray:
    """Rotation matrix ``Rz @ Ry @ Rx`` from angles in degrees about the world axes."""
    a, b, c = np.radians([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _wobble_terms(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    """Real polynomial basis of degree 1..3 on the unit sphere (like spherical harmonics)."""
    return [
        u, v, w,
        u * v, v * w, u * w, u * u - v * v, 3 * w * w - 1,
        u * v * w, u * (5 * w * w - 1), v * (5 * w * w - 1), w * (5 * w * w - 3),
        u * (u * u - 3 * v * v), v * (3 * u * u - v * v), w * (u * u - v * v),
    ]


N_WOBBLE = 15


@dataclass
class Blob:
    """A bent, wobbly ellipsoid: the organ primitive.

    A world point ``p`` maps to local normalised coordinates
    ``q = R^T (p - centre) / radii``; the long axis is local z. Bending shifts
    ``q_x += bend[0] * q_z^2`` and ``q_y += bend[1] * q_z^2``; the surface is
    ``|q| = 1 + sum_k wobble[k] * phi_k(q / |q|)``.

    Args:
        centre: world position (mm), shape (3,).
        radii: semi-axes (mm) along local x, y, z, shape (3,).
        rot: 3x3 rotation (local to world), identity when None.
        bend: quadratic bend of local x and y along local z (normalised units).
        wobble: coefficients of the 15 smooth direction polynomials.
        taper: the cross-section grows by ``1 + taper * q_z`` along local z (a cone-like taper).
    """

    centre: np.ndarray
    radii: np.ndarray
    rot: np.ndarray | None = None
    bend: tuple[float, float] = (0.0, 0.0)
    wobble: np.ndarray | None = None
    taper: float = 0.0

    def __post_init__(self) -> None:
        self.centre = np.asarray(self.centre, float)
        self.radii = np.asarray(self.radii, float)
        if self.rot is None:
            self.rot = np.eye(3)

    @classmethod
    def random(cls, rng: np.random.Generator, centre: Sequence[float], radii: Sequence[float], *,
               size_sd: float = 0.1, axis_sd: float = 0.1, angle_sd: float = 10.0,
               rot: np.ndarray | None = None, bend_sd: float = 0.0, wobble_sd: float = 0.08,
               shift_sd: float = 0.0, taper: float = 0.0, bend: tuple[float, float] = (0.0, 0.0)) -> "Blob":
        """A blob whose size, proportions, orientation, bend and wobble vary around a mean shape."""
        # log-normal sizes, truncated at 2 sd so no draw is absurd
        radii = (np.asarray(radii, float) * math.exp(float(np.clip(rng.normal(0, 1), -2, 2)) * size_sd)
                 * np.exp(np.clip(rng.normal(0, 1, 3), -2, 2) * axis_sd))
        r = rotation(*rng.normal(0, angle_sd, 3))
        r = r if rot is None else rot @ r
        decay = np.array([1.0] * 3 + [0.7] * 5 + [0.45] * 7)  # smoother shapes: less high degree
        return cls(np.asarray(centre, float) + rng.normal(0, shift_sd, 3), radii, r,
                   tuple(np.asarray(bend, float) + rng.normal(0, bend_sd, 2)),
                   rng.normal(0, wobble_sd, N_WOBBLE) * decay, taper)

    def extent(self) -> np.ndarray:
        """Half-size (mm) of an axis-aligned box that surely contains the blob."""
        grow = 1.0 + (np.abs(self.wobble).sum() if self.wobble is not None else 0.0)
        grow += abs(self.bend[0]) + abs(self.bend[1]) + abs(self.taper)
        return np.sqrt(((self.rot * (self.radii * grow)[None, :]) ** 2).sum(axis=1))

    def local(self, grid: Grid, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised local coordinates ``q`` (three arrays of the box's shape)."""
        x, y, z = grid.axes(box)
        cx, cy, cz = (float(v) for v in self.centre)  # python floats keep float32 arrays float32
        return self._local(x - cx, y - cy, z - cz)

    def _local(self, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.rot.tolist()
        rx, ry, rz = (float(v) for v in self.radii)
        qx = (r[0][0] * dx + r[1][0] * dy + r[2][0] * dz) / rx
        qy = (r[0][1] * dx + r[1][1] * dy + r[2][1] * dz) / ry
        qz = (r[0][2] * dx + r[1][2] * dy + r[2][2] * dz) / rz
        if self.bend[0] or self.bend[1]:
            q2 = qz * qz
            qx = qx + float(self.bend[0]) * q2
            qy = qy + float(self.bend[1]) * q2
        if self.taper:
            t = np.maximum(1.0 + float(self.taper) * qz, 0.2)
            qx, qy = qx / t, qy / t
        return qx, qy, qz

    def level(self, grid: Grid, box: Box) -> np.ndarray:
        """``|q| / (1 + wobble)``: below 1 inside, 1 on the surface (float32, box shape)."""
        return self._level(*self.local(grid, box))

    def contains(self, points: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Whether world points (n, 3) lie inside the blob (scaled by ``scale``)."""
        p = np.atleast_2d(np.asarray(points, float)) - self.centre
        return self._level(*self._local(p[:, 0], p[:, 1], p[:, 2])) < scale

    def _level(self, qx: np.ndarray, qy: np.ndarray, qz: np.ndarray) -> np.ndarray:
        rad = np.sqrt(qx * qx + qy * qy + qz * qz) + 1e-6
        if self.wobble is None:
            return rad
        u, v, w = qx / rad, qy / rad, qz / rad
        surf = np.ones_like(rad)
        for c, term in zip(self.wobble.tolist(), _wobble_terms(u, v, w)):
            if c:
                surf += c * term
        return rad / np.maximum(surf, 0.2)

    def mask(self, grid: Grid, scale: float = 1.0) -> tuple[Box, np.ndarray] | None:
        """Voxels inside the blob scaled by ``scale`` (1 = the surface), with their box."""
        ext = self.extent() * scale + grid.spacing
        box = grid.box(self.centre - ext, self.centre + ext)
        if box is None:
            return None
        return box, self.level(grid, box) < scale


def spline(points: Sequence[Sequence[float]], step: float) -> np.ndarray:
    """A Catmull-Rom curve through ``points`` (n, 3), resampled every ~``step`` mm."""
    p = np.asarray(points, float)
    if len(p) < 2:
        return p
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = [p[0]]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        n = max(1, int(math.ceil(np.linalg.norm(p2 - p1) / step)))
        t = np.linspace(0, 1, n + 1)[1:, None]
        seg = 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                     + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3)
        out.extend(seg)
    return np.asarray(out)


@dataclass
class Tube:
    """A tube: the union of cone-capsules between consecutive centreline points.

    Args:
        points: centreline (n, 3) in world mm.
        radii: radius (mm) at each point, shape (n,) or a scalar.
    """

    points: np.ndarray
    radii: np.ndarray = field(default_factory=lambda: np.array(5.0))

    def __post_init__(self) -> None:
        self.points = np.atleast_2d(np.asarray(self.points, float))
        self.radii = np.broadcast_to(np.asarray(self.radii, float), (len(self.points),)).copy()

    @classmethod
    def smooth(cls, control: Sequence[Sequence[float]], radii: Sequence[float] | float, step: float) -> "Tube":
        """A tube through control points (Catmull-Rom), radii interpolated along the arc length.

        ``radii`` is a scalar, one value per control point, or any number of
        values spread evenly along the curve.
        """
        ctrl = np.asarray(control, float)
        pts = spline(ctrl, step)
        r = np.atleast_1d(np.asarray(radii, float))

        def arclen(a: np.ndarray) -> np.ndarray:
            d = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(a, axis=0), axis=1))]
            return d / max(d[-1], 1e-9)

        # radii given per control point follow the control polygon; any other count is spread evenly
        at = arclen(ctrl) if len(r) == len(ctrl) else np.linspace(0.0, 1.0, len(r))
        rad = np.interp(arclen(pts), at, r) if len(r) > 1 else np.full(len(pts), r[0])
        # thick tubes need fewer points: keep segments at least ~0.7 radius long (cost ~ box overlap)
        keep = [0]
        for i in range(1, len(pts) - 1):
            if np.linalg.norm(pts[i] - pts[keep[-1]]) >= max(step, 0.7 * min(rad[i], rad[keep[-1]])):
                keep.append(i)
        if len(pts) > 1:
            keep.append(len(pts) - 1)
        return cls(pts[keep], rad[keep])

    def mask(self, grid: Grid, grow: float = 0.0) -> tuple[Box, np.ndarray] | None:
        """Voxels within ``radius + grow`` of the centreline, with their box."""
        r = self.radii + grow
        pad = r.max() + grid.spacing
        box = grid.box(self.points.min(0) - pad, self.points.max(0) + pad)
        if box is None:
            return None
        full = np.zeros(tuple(s.stop - s.start for s in box), bool)
        if len(self.points) == 1:
            segs = [(0, 0)]
        else:
            segs = [(i, i + 1) for i in range(len(self.points) - 1)]
        for i, j in segs:
            a, b = self.points[i], self.points[j]
            ra, rb = float(r[i]), float(r[j])
            if max(ra, rb) <= 0:
                continue
            m = max(ra, rb) + grid.spacing
            sub = grid.box(np.minimum(a, b) - m, np.maximum(a, b) + m)
            if sub is None:
                continue
            x, y, z = grid.axes(sub)
            ab = (b - a).tolist()
            ll = float(ab[0] ** 2 + ab[1] ** 2 + ab[2] ** 2)
            dx, dy, dz = x - float(a[0]), y - float(a[1]), z - float(a[2])
            if ll > 0:
                t = np.clip((dx * ab[0] + dy * ab[1] + dz * ab[2]) / ll, 0.0, 1.0)
            else:
                t = np.zeros(np.broadcast_shapes(dx.shape, dy.shape, dz.shape), np.float32)
            ex, ey, ez = dx - t * ab[0], dy - t * ab[1], dz - t * ab[2]
            rad = ra + t * (rb - ra)
            inside = ex * ex + ey * ey + ez * ez < rad * rad
            local = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(sub, box))
            full[local] |= inside
        return box, full


def smooth_noise(rng: np.random.Generator, shape: Sequence[int], scale: float) -> np.ndarray:
    """A smooth Gaussian random field of unit standard deviation (float32).

    Drawn on a coarse grid (one value per ``scale`` voxels), smoothed and
    linearly up-sampled, so the cost is that of one interpolation pass.

    Args:
        rng: random generator (the only source of randomness).
        shape: output shape.
        scale: correlation length in voxels (>= 1).
    """
    scale = max(float(scale), 1.0)
    coarse_shape = [int(math.ceil(s / scale)) + 3 for s in shape]
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape).astype(np.float32), 0.8, mode="wrap")
    coords = [np.arange(s, dtype=np.float32) / scale + 1.0 for s in shape]
    out = _interp_separable(coarse, coords)
    sd = float(out.std()) or 1.0
    return ((out - out.mean()) / sd).astype(np.float32)


def _interp_separable(coarse: np.ndarray, coords: Sequence[np.ndarray]) -> np.ndarray:
    """Separable linear interpolation of a 3D array at per-axis fractional coordinates."""
    out = coarse
    for ax, c in enumerate(coords):
        i0 = np.floor(c).astype(np.intp)
        f = (c - i0).astype(np.float32)
        a = np.take(out, i0, axis=ax)
        b = np.take(out, i0 + 1, axis=ax)
        shape = [1] * out.ndim
        shape[ax] = f.size
        f = f.reshape(shape)
        out = a + (b - a) * f
    return out


@dataclass(frozen=True)
class Part:
    """One painted part: its name, the tissue that sets its intensity, and label tags.

    A dataset turns parts into labels through their tags (``"kidney_left"``,
    ``"liver"``, ``"liver_tumour"``...): see :meth:`Canvas.lut`.
    """

    name: str
    tissue: str
    tags: tuple[str, ...] = ()


class Canvas:
    """A part map being painted: ``parts`` (X, Y, Z) uint8, 0 = outside the body (air).

    Parts are registered on first use (:meth:`part`), so ids follow the order
    of the painting code, which is fixed.

    Args:
        grid: the voxel grid.
    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.parts = np.zeros(grid.shape, np.uint8)
        self.inside: np.ndarray | None = None  # the body outline, when the painter defines one
        self.table: list[Part] = [Part("outside", "air")]
        self._ids: dict[str, int] = {"outside": 0}

    def part(self, name: str, tissue: str | None = None, tags: Sequence[str] = ()) -> int:
        """Id of the part ``name``, registering it (tissue defaults to the name) on first use."""
        if name in self._ids:
            return self._ids[name]
        if len(self.table) >= 255:
            raise ValueError("a phantom cannot have more than 255 parts")
        self._ids[name] = len(self.table)
        self.table.append(Part(name, tissue or name, tuple(tags)))
        return self._ids[name]

    def ids(self, *keys: str) -> list[int]:
        """Ids of the registered parts whose name, tissue or one of whose tags is in ``keys``."""
        want = set(keys)
        return [i for i, p in enumerate(self.table)
                if p.name in want or p.tissue in want or want.intersection(p.tags)]

    def paint(self, part: int, shaped: tuple[Box, np.ndarray] | None,
              only: Iterable[int] | None = None, never: Iterable[int] | None = None) -> int:
        """Set ``part`` where a shape's mask is true; return the number of voxels painted.

        Args:
            part: id to write (from :meth:`part`).
            shaped: ``(box, mask)`` as returned by ``Blob.mask`` / ``Tube.mask`` (None: nothing).
            only: paint only over voxels whose current id is in this set.
            never: never paint over voxels whose current id is in this set.
        """
        if shaped is None:
            return 0
        box, m = shaped
        sub = self.parts[box]
        if only is not None:
            m = m & np.isin(sub, np.asarray(list(only), np.uint8))
        if never is not None:
            m = m & ~np.isin(sub, np.asarray(list(never), np.uint8))
        sub[m] = part
        return int(np.count_nonzero(m))

    def everywhere(self) -> Box:
        """The box of the whole grid."""
        return tuple(slice(0, s) for s in self.grid.shape)  # type: ignore[return-value]

    def lut(self, values: Mapping[str, float], by: str = "tag", default: float = 0.0,
            dtype: type = np.float32) -> np.ndarray:
        """A lookup table over part ids: ``lut[parts]`` maps the part map to values.

        Args:
            values: key -> value; for ``by="tag"`` the first key (in mapping order)
                found among a part's name and tags wins; for ``by="tissue"`` the part's tissue.
            by: ``"tag"`` or ``"tissue"``.
            default: value of parts that match no key.
        """
        out = np.full(256, default, dtype)
        for i, p in enumerate(self.table):
            if by == "tissue":
                if p.tissue in values:
                    out[i] = values[p.tissue]
                continue
            names = (p.name,) + p.tags
            for key, v in values.items():
                if key in names:
                    out[i] = v
                    break
        return out
