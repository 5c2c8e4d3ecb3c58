"""Documented behaviour of the phantom generators that the pinned default cohort does not reach.

Edge cases of the geometry (``shapes``), the options of :class:`Torso` (``anatomy``) and the
contract of :func:`ct_image` (``ct``), on tiny grids: the whole file takes a few seconds.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hyperkit.phantoms import ct
from hyperkit.phantoms.anatomy import Torso, frame
from hyperkit.phantoms.shapes import Blob, Canvas, Grid, Tube, rotation, smooth_noise, spline


def _centres(grid: Grid) -> np.ndarray:
    """World coordinates (X, Y, Z, 3) of every voxel centre of ``grid``."""
    idx = np.stack(np.meshgrid(*(np.arange(s) for s in grid.shape), indexing="ij"), axis=-1)
    return np.asarray(grid.origin) + grid.spacing * idx


def _full(grid: Grid, shaped: tuple[tuple[slice, slice, slice], np.ndarray] | None) -> np.ndarray:
    """A ``(box, mask)`` pair pasted into a whole-grid boolean array."""
    out = np.zeros(grid.shape, bool)
    if shaped is not None:
        box, m = shaped
        out[box] = m
    return out


def _polyline_distance(p: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance of points ``p`` (..., 3) to the polyline through ``pts`` (n, 3)."""
    best = np.full(p.shape[:-1], np.inf)
    segs = list(zip(pts[:-1], pts[1:])) if len(pts) > 1 else [(pts[0], pts[0])]
    for a, b in segs:
        ab = b - a
        ll = float(ab @ ab)
        t = np.clip(((p - a) @ ab) / ll, 0, 1) if ll > 0 else np.zeros(p.shape[:-1])
        best = np.minimum(best, np.linalg.norm(p - (a + t[..., None] * ab), axis=-1))
    return best


# ---------------------------------------------------------------------------------------------- shapes
def test_grid_around_puts_voxel_centres_from_lo_to_at_most_hi() -> None:
    """``Grid.around`` starts at ``lo`` and its last voxel centre is the last one not beyond ``hi``."""
    g = Grid.around((0, -10, 3), (10, 20, 8), 2.5)
    assert g.shape == (5, 13, 3) and g.spacing == 2.5 and g.origin == (0.0, -10.0, 3.0)
    last = g.affine @ np.r_[np.array(g.shape) - 1, 1.0]
    assert np.all(last[:3] <= [10, 20, 8]) and np.all(last[:3] + g.spacing > [10, 20, 8])


def test_grid_box_selects_exactly_the_voxels_whose_centres_lie_in_the_box() -> None:
    """``Grid.box`` matches a brute-force test of every centre, and is None when no centre is inside."""
    g = Grid((6, 7, 5), 2.0, (-3.0, 1.0, 10.0))
    c = _centres(g)
    rng = np.random.default_rng(3)
    for _ in range(200):
        lo = rng.uniform([-12, -8, 0], [12, 18, 22])
        hi = lo + rng.uniform(0, 12, 3)
        want = np.all((c >= lo) & (c <= hi), axis=-1)
        box = g.box(lo, hi)
        if not want.any():
            assert box is None, (lo, hi)
            continue
        assert box is not None and all(0 <= s.start < s.stop <= n for s, n in zip(box, g.shape))
        got = np.zeros(g.shape, bool)
        got[box] = True
        assert np.array_equal(got, want), (lo, hi)
    assert g.box((-2.5, 0, 0), (-1.5, 100, 100)) is None  # between two centres
    assert g.box((100, 100, 100), (200, 200, 200)) is None  # outside the grid


def test_rotation_applies_x_then_y_then_z() -> None:
    """``rotation`` is ``Rz @ Ry @ Rx``: the x rotation acts first."""
    assert np.allclose(rotation(90, 0, 0) @ [0, 1, 0], [0, 0, 1])
    assert np.allclose(rotation(0, 0, 90) @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(rotation(90, 0, 90) @ [0, 1, 0], [0, 0, 1])
    assert np.allclose(rotation(90, 0, 90) @ [1, 0, 0], [0, 1, 0])


@pytest.mark.parametrize("bend, point", [((0.5, 0.0), (-5.0, 0.0, 9.0)), ((0.0, 0.5), (0.0, -5.0, 9.0))])
def test_blob_bend_shifts_each_local_axis_by_its_own_coefficient(bend: tuple[float, float],
                                                                 point: tuple[float, float, float]) -> None:
    """``q_x += bend[0] q_z^2`` and ``q_y += bend[1] q_z^2``: a bent tip is inside, the straight one not."""
    bent = Blob(np.zeros(3), np.full(3, 10.0), bend=bend)
    straight = Blob(np.zeros(3), np.full(3, 10.0))
    assert bent.contains(np.array(point))[0] and not straight.contains(np.array(point))[0]


def test_blob_contains_honours_scale() -> None:
    """``contains(points, scale)`` tests the blob grown by ``scale``."""
    b = Blob(np.array([1.0, 2.0, 3.0]), np.array([10.0, 10.0, 10.0]))
    p = np.array([[13.0, 2.0, 3.0], [1.0, 2.0, 3.0 - 8.0]])
    assert b.contains(p).tolist() == [False, True]
    assert b.contains(p, 1.5).tolist() == [True, True]
    assert b.contains(p, 0.5).tolist() == [False, False]


@pytest.mark.parametrize("scale", [0.6, 1.0, 1.7])
@pytest.mark.parametrize("kw", [dict(taper=0.9), dict(taper=-0.9), dict(bend=(0.6, -0.4)),
                                dict(wobble=np.full(15, 0.05), taper=0.5)],
                         ids=["taper", "neg_taper", "bend", "wobble"])
def test_blob_mask_is_the_whole_level_set_not_cropped(kw: dict, scale: float) -> None:
    """``Blob.mask(grid, scale)`` is every voxel with ``level < scale``: its box never crops the shape."""
    g = Grid.around((-60, -60, -60), (60, 60, 60), 2.0)
    b = Blob(np.array([1.0, -2.0, 0.5]), np.array([8.0, 10.0, 14.0]), rotation(20, -30, 40), **kw)
    want = b.level(g, Canvas(g).everywhere()) < scale
    assert want.any() and np.array_equal(_full(g, b.mask(g, scale)), want)


def test_spline_goes_through_its_points_and_keeps_a_single_point() -> None:
    """``spline`` starts at the first point, passes every control point, samples every ~step mm."""
    pts = np.array([[0.0, 0, 0], [10, 5, 0], [20, 0, 4], [25, -5, 10]])
    s = spline(pts, 1.0)
    assert np.allclose(s[0], pts[0]) and np.allclose(s[-1], pts[-1])
    for p in pts:
        assert np.min(np.linalg.norm(s - p, axis=1)) < 1e-9
    assert np.max(np.linalg.norm(np.diff(s, axis=0), axis=1)) < 2.0
    assert np.allclose(spline([[1.0, 2.0, 3.0]], 1.0), [[1.0, 2.0, 3.0]])


def test_tube_smooth_keeps_the_ends_and_places_radii_along_the_arc() -> None:
    """Radii per control point follow the control polygon's arc length; other counts are spread evenly."""
    ctrl = [[0.0, 0, 0], [10, 0, 0], [100, 0, 0]]
    t = Tube.smooth(ctrl, [1.0, 2.0, 3.0], 1.0)
    assert np.allclose(t.points[0], ctrl[0]) and np.allclose(t.points[-1], ctrl[-1])
    assert np.interp(10.0, t.points[:, 0], t.radii) == pytest.approx(2.0, abs=0.05)
    even = Tube.smooth(ctrl, [1.0, 3.0, 5.0, 7.0], 1.0)
    assert np.interp(50.0, even.points[:, 0], even.radii) == pytest.approx(4.0, abs=0.05)
    two = Tube.smooth([[0.0, 0, 0], [0, 0, 0.5]], 4.0, 1.0)
    assert np.allclose(two.points[-1], [0, 0, 0.5])


@pytest.mark.parametrize("points", [
    [[0.3, 0.2, -0.1]],  # one point: a sphere
    [[0.3, 0.2, -0.1], [0.3, 0.2, -0.1], [8.1, 3.3, 2.2]],  # a repeated point
    [[-7.2, 0.4, 0.1], [6.9, -0.3, 0.2], [6.9, 9.1, -5.3]],  # a bend: the caps must not overshoot
])
@pytest.mark.parametrize("grow", [0.0, 1.4, -1.1])
def test_tube_mask_is_every_voxel_within_radius_plus_grow_of_the_centreline(points: list, grow: float) -> None:
    """``Tube.mask(grid, grow)`` holds the voxels within ``radius + grow`` of the centreline."""
    g = Grid.around((-20, -20, -20), (20, 20, 20), 1.0)
    pts = np.asarray(points)
    tube = Tube(pts, 3.3)
    want = _polyline_distance(_centres(g), pts) < 3.3 + grow
    assert want.any() and np.array_equal(_full(g, tube.mask(g, grow)), want)


def test_smooth_noise_has_zero_mean_and_unit_sd() -> None:
    """``smooth_noise`` is a float32 field of the given shape, mean 0 and standard deviation 1."""
    for scale in (1.0, 3.0, 7.5):
        f = smooth_noise(np.random.default_rng(1), (17, 9, 12), scale)
        assert f.dtype == np.float32 and f.shape == (17, 9, 12)
        assert abs(float(f.mean())) < 1e-4 and float(f.std()) == pytest.approx(1.0, abs=1e-4)


def test_canvas_parts_ids_and_the_255_part_limit() -> None:
    """Parts get ids in order, tissue defaults to the name, ids match name/tissue/tag; at most 255 parts."""
    cv = Canvas(Grid((2, 2, 2), 1.0, (0.0, 0.0, 0.0)))
    a = cv.part("liver")
    b = cv.part("vessel", "blood", ("hepatic", "liver_x"))
    assert (a, b, cv.part("liver")) == (1, 2, 1)
    assert cv.table[a].tissue == "liver"
    assert cv.ids("blood") == [b] and cv.ids("hepatic") == [b] and cv.ids("liver") == [a]
    assert cv.ids("air") == [0] and cv.ids("nothing") == []
    for k in range(3, 255):
        assert cv.part(f"p{k}") == k
    with pytest.raises(ValueError, match="255"):
        cv.part("one_too_many")


def test_canvas_paint_only_never_and_the_count() -> None:
    """``paint`` writes where the mask is true, restricted by ``only`` / ``never``; returns the count."""
    cv = Canvas(Grid((4, 1, 1), 1.0, (0.0, 0.0, 0.0)))
    a, b, c = cv.part("a"), cv.part("b"), cv.part("c")
    box = cv.everywhere()
    assert cv.paint(a, (box, np.array([True, True, False, False]).reshape(4, 1, 1))) == 2
    assert cv.paint(b, (box, np.array([False, True, True, True]).reshape(4, 1, 1)), never=[a]) == 2
    assert cv.parts.ravel().tolist() == [a, a, b, b]
    assert cv.paint(c, (box, np.ones((4, 1, 1), bool)), only=[a]) == 2
    assert cv.parts.ravel().tolist() == [c, c, b, b]
    assert cv.paint(c, None) == 0


def test_canvas_lut_first_key_wins_and_default() -> None:
    """``lut(by="tag")``: the first key found among name and tags wins; unmatched parts get ``default``."""
    cv = Canvas(Grid((1, 1, 1), 1.0, (0.0, 0.0, 0.0)))
    p = cv.part("kidney_left_cortex", "kidney_cortex", ("kidney_left", "kidney"))
    q = cv.part("fat")
    lut = cv.lut({"kidney": 1.0, "kidney_left": 2.0}, default=-5.0)
    assert lut[p] == 1.0 and lut[q] == -5.0 and lut[0] == -5.0 and lut.shape == (256,)
    assert cv.lut({"kidney_left": 2.0, "kidney": 1.0})[p] == 2.0
    tissue = cv.lut({"kidney_cortex": 7.0, "kidney": 1.0}, by="tissue", default=3.0)
    assert tissue[p] == 7.0 and tissue[q] == 3.0


# ---------------------------------------------------------------------------------------------- anatomy
def test_frame_points_local_z_along_any_direction() -> None:
    """``frame(d, roll)`` is a proper rotation whose third column is ``d / |d|``; roll turns about it."""
    dirs = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [-3, 0.1, 0], [0, -2, 0], [1, 1, 1], [0.95, 0.2, 0]]
    for d, roll in itertools.product(dirs, (0.0, 30.0)):
        r = frame(np.array(d, float), roll)
        assert np.allclose(r.T @ r, np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)
        assert np.allclose(r[:, 2], np.array(d) / np.linalg.norm(d))
        turn = float(np.degrees(np.arccos(np.clip(r[:, 0] @ frame(np.array(d, float))[:, 0], -1, 1))))
        assert turn == pytest.approx(roll, abs=1e-6)


def test_torso_sex_argument_is_kept_and_drawn_when_none() -> None:
    """``sex="m"`` / ``"f"`` is used as given; None draws one (both occur)."""
    for seed in range(4):
        assert Torso(np.random.default_rng(seed), "f").sex == "f"
        assert Torso(np.random.default_rng(seed), "m").sex == "m"
    assert {Torso(np.random.default_rng(s)).sex for s in range(8)} == {"m", "f"}


def _render(t: Torso, spacing: float = 8.0) -> Canvas:
    """Render ``t`` on a grid holding the whole torso."""
    g = Grid.around((-260, -260, t.z["fem"] - 120), (260, 260, t.z["top"] + 20), spacing)
    return t.render(Canvas(g))


def _voxels(cv: Canvas, key: str) -> int:
    """Number of voxels of the parts matching ``key`` (0 when none is registered)."""
    return int(np.isin(cv.parts, cv.ids(key)).sum()) if cv.ids(key) else 0


TUMOURS = ("liver_tumour", "pancreas_tumour", "lung_tumour", "colon_tumour")


def test_torso_has_no_tumour_unless_asked_and_each_option_adds_its_own() -> None:
    """Defaults give no lesion; each tumour option paints its lesion (and frames it in ``centres``)."""
    for seed in range(2):
        plain = _render(Torso(np.random.default_rng(seed)))
        assert all(_voxels(plain, k) == 0 for k in TUMOURS)
    opts = {"liver_tumour": dict(liver_tumours=0.0, at_least_one_liver_tumour=True),
            "pancreas_tumour": dict(pancreas_tumour=True), "lung_tumour": dict(lung_tumours=2),
            "colon_tumour": dict(colon_tumour=True)}
    for key, kw in opts.items():
        t = Torso(np.random.default_rng(1), **kw)
        cv = _render(t)
        assert _voxels(cv, key) > 0, key
        assert all(_voxels(cv, k) == 0 for k in TUMOURS if k != key), key
        if key in ("lung_tumour", "colon_tumour"):
            assert key in t.centres


@pytest.mark.parametrize("seed", range(6))
def test_at_least_one_liver_tumour_always_paints_a_lesion(seed: int) -> None:
    """``at_least_one_liver_tumour``: "draw until one liver lesion exists". The lobe blobs reach beyond the
    painted liver (out of the body cavity): seed 0's only lesion was drawn there and painted nothing until
    a lesion inside the cavity was added whenever none of the drawn ones lies there."""
    t = Torso(np.random.default_rng(seed), liver_tumours=0.0, at_least_one_liver_tumour=True)
    assert _voxels(_render(t, 4.0), "liver_tumour") > 0


def test_the_kept_liver_lesion_is_the_drawn_shape_painted_over_the_liver_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 0's only lesion lies outside the body cavity: painted again, whole, inside the liver; nothing else moves."""
    t = Torso(np.random.default_rng(0), liver_tumours=0.0, at_least_one_liver_tumour=True)
    fixed = _render(t, 4.0)
    monkeypatch.setattr(Torso, "_keep_a_liver_lesion", lambda self, cv: None)
    drawn = _render(Torso(np.random.default_rng(0), liver_tumours=0.0, at_least_one_liver_tumour=True), 4.0)
    changed = fixed.parts != drawn.parts
    assert _voxels(drawn, "liver_tumour") == 0 and changed.sum() > 1  # more than the voxel it is centred on
    assert np.isin(fixed.parts[changed], fixed.ids("liver_tumour")).all()
    assert np.isin(drawn.parts[changed], drawn.ids("liver")).all()  # the liver or its vessels, nothing else


def test_a_field_of_view_without_liver_gets_no_lesion() -> None:
    """A canvas below the liver (the thighs) has nowhere to keep the lesion: nothing is painted, nothing fails."""
    t = Torso(np.random.default_rng(0), liver_tumours=0.0, at_least_one_liver_tumour=True)
    g = Grid.around((-200, -200, t.z["fem"] - 100), (200, 200, t.z["fem"]), 8.0)
    cv = t.render(Canvas(g))
    assert cv.parts.any() and _voxels(cv, "liver") == 0 and _voxels(cv, "liver_tumour") == 0


def test_torso_render_paints_nothing_outside_the_body_and_puts_organs_on_their_side() -> None:
    """After ``render`` no part lies outside the body outline; ``_right`` structures have x > 0 (RAS)."""
    cv = _render(Torso(np.random.default_rng(2)))
    assert cv.inside is not None and not cv.parts[~cv.inside].any()
    x = _centres(cv.grid)[..., 0]
    for organ in ("kidney", "adrenal_gland", "iliopsoas"):
        for side, sign in (("right", 1), ("left", -1)):
            m = np.isin(cv.parts, cv.ids(f"{organ}_{side}"))
            assert m.any() and np.sign(x[m].mean()) == sign, (organ, side)


# ---------------------------------------------------------------------------------------------- ct
def _uniform_canvas(tissue: str, shape: tuple[int, int, int] = (16, 16, 16), spacing: float = 1.0) -> Canvas:
    """A canvas filled with one part of ``tissue``."""
    cv = Canvas(Grid(shape, spacing, (0.0, 0.0, 0.0)))
    cv.parts[...] = cv.part("stuff", tissue)
    return cv


def test_ct_image_is_int16_hu_clipped_to_the_documented_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ct_image`` returns int16 of the canvas shape, clipped to [-1024, 3071]."""
    air = ct.ct_image(_uniform_canvas("air"), np.random.default_rng(0))
    assert air.dtype == np.int16 and air.shape == (16, 16, 16)
    assert air.min() == -1024 and air.max() < -900  # 1 mm voxels: noise reaches below the clip
    monkeypatch.setitem(ct.CT_TISSUES, "metal", (9000.0, 0.0, 0.0))
    metal = ct.ct_image(_uniform_canvas("metal"), np.random.default_rng(0))
    assert metal.dtype == np.int16 and metal.max() == 3071


def test_ct_tissues_get_their_native_value_plus_phase_enhancement() -> None:
    """Mean HU is near native + enhancement x phase: blood is native in some scans, enhanced in most."""
    means = []
    for seed in range(40):
        img = ct.ct_image(_uniform_canvas("blood_arterial", (8, 8, 8), 4.0), np.random.default_rng(seed))
        means.append(float(img.mean()))
    native = [m for m in means if m < 80]
    assert native and len(native) < len(means) / 2
    assert all(20 < m < 70 for m in native)  # 42 HU plus calibration jitter and texture
    assert all(100 < m < 450 for m in means if m >= 80)
    muscle = ct.ct_image(_uniform_canvas("fat", (8, 8, 8), 4.0), np.random.default_rng(0))
    assert -140 < float(muscle.mean()) < -60


def test_ct_cortical_rim_on_bone_only_and_lung_stays_lung() -> None:
    """Bone gets a bright (~1000 HU) cortical rim around cancellous bone; lung stays far below soft tissue."""
    cv = Canvas(Grid((20, 20, 20), 2.0, (0.0, 0.0, 0.0)))
    cv.parts[...] = cv.part("muscle")
    cv.parts[4:16, 4:16, 4:16] = cv.part("bone")
    img = ct.ct_image(cv, np.random.default_rng(1)).astype(float)
    assert img[9:11, 9:11, 9:11].mean() < 600 and img[4, 6:14, 6:14].mean() > 500
    lung = ct.ct_image(_uniform_canvas("lung", (12, 12, 12), 2.0), np.random.default_rng(0))
    assert float(np.median(lung)) < -700


@pytest.mark.parametrize("sex", ["m", "f"])
def test_every_tissue_a_torso_paints_has_a_ct_value(sex: str) -> None:
    """Each part of a rendered torso (every option on) has its tissue in ``CT_TISSUES``."""
    t = Torso(np.random.default_rng(7), sex, liver_tumours=3.0, pancreas_tumour=True, lung_tumours=2,
              colon_tumour=True)
    cv = _render(t, 12.0)
    assert {p.tissue for p in cv.table} <= set(ct.CT_TISSUES)
