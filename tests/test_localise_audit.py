"""Localisation checked where the registration and command-line tests cannot fail (found by the localise
mutation audit): the error classes' reasons, the model file's support reference (quantisation, missing keys,
shapes), the modality rule's thresholds and messages, the boxes on rotated grids and their edge cases, the exact
voxel windows of a box, the support reference's downsampling, and what :func:`register` does around SimpleITK
(the fitted transform as a matrix, the affine stage, the plausibility limits), with SimpleITK's optimiser
replaced by a stub that sets a known transform.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import hyperkit.inference.localise as loc
from hyperkit.errors import HyperkitError
from hyperkit.inference.localise import (LocalisationError, ModalityMismatchError, NoOverlapError,
                                         RegistrationError, RoiOutsideImageError, SupportReference, check_margin,
                                         check_modality, guess_modality, image_box, intensity_signature, intersect,
                                         make_reference, map_box, mask_box, modality_mismatch, parse_roi, register,
                                         roi_windows)

#: 90 degrees about z: voxel i runs along world y, voxel j along world -x
ROT_Z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def test_each_error_names_its_reason_and_is_a_localisation_error():
    for cls, reason in ((LocalisationError, "localisation"), (ModalityMismatchError, "modality"),
                        (RegistrationError, "registration"), (NoOverlapError, "no-overlap"),
                        (RoiOutsideImageError, "roi-outside")):
        assert cls.reason == reason and issubclass(cls, LocalisationError) and issubclass(cls, HyperkitError)


# ----------------------------------------------------------------------------- support reference
def test_support_reference_rounds_to_uint8_and_checks_every_key_and_shape():
    img = np.array([0.0, 0.2, 0.5, 0.98, 1.0, 1.2, -0.1, 0.0], np.float32).reshape(2, 2, 2)
    ref = SupportReference(img, np.eye(4), np.array([[0.0, 0, 0], [1, 2, 3]]), "MRI")
    d = ref.to_dict()
    # 0.98 * 255 = 249.9 -> 250 (rounded, not truncated); out of range values are clipped
    assert d["image_u8"].dtype == torch.uint8 and d["image_u8"].flatten().tolist() == [0, 51, 128, 250, 255, 255, 0, 0]
    back = SupportReference.from_dict(d)
    assert np.allclose(back.image.ravel(), np.array([0, 51, 128, 250, 255, 255, 0, 0]) / 255.0)
    assert back.modality == "MRI" and back.box_mm.tolist() == [[0, 0, 0], [1, 2, 3]]
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['modality'\]"):
        SupportReference.from_dict({k: v for k, v in d.items() if k != "modality"})
    with pytest.raises(ValueError, match="box_mm"):
        SupportReference.from_dict({**d, "box_mm": [[0, 0, 0, 1], [1, 2, 3, 4]]})
    with pytest.raises(ValueError, match="wrong shape"):
        SupportReference.from_dict({**d, "image_u8": torch.zeros(4, 4, dtype=torch.uint8)})


def test_make_reference_scales_to_unit_range_and_refuses_bad_input():
    img = np.full((6, 6, 6), -7.0, np.float32)
    img[1:4, 2:5, 2:4] = 5.0
    mask = (img > 0).astype(np.uint8)
    ref = make_reference(img, np.diag([6.0, 6.0, 6.0, 1.0]), mask, "CT")  # coarse: grid kept
    assert ref.image.shape == img.shape and ref.image.min() == 0.0 and ref.image.max() == 1.0
    with pytest.raises(ValueError, match="one shape"):
        make_reference(img, np.eye(4), mask[:5], "CT")
    with pytest.raises(ValueError, match="spacing must be > 0, got 0"):
        make_reference(img, np.eye(4), mask, "CT", spacing=0.0)


def test_make_reference_smooths_before_it_downsamples():
    """A 1 mm checkerboard seen at 5 mm is a flat grey, not the checkerboard sampled at every fifth voxel."""
    cb = (np.indices((30, 30, 30)).sum(0) % 2).astype(np.float32)
    mask = np.zeros(cb.shape, np.uint8)
    mask[10:15, 10:15, 10:15] = 1
    ref = make_reference(cb, np.eye(4), mask, "CT", spacing=5.0)
    assert ref.image.shape == (6, 6, 6) and np.allclose(ref.affine, np.diag([5.0, 5.0, 5.0, 1.0]))
    assert ref.image.max() - ref.image.min() < 0.2


# ----------------------------------------------------------------------------- modality
def test_intensity_signature_is_the_minimum_and_the_low_percentile():
    vol = np.zeros((10, 10, 10), np.float32)
    vol[0, 0, 0] = vol[2, 2, 2] = -1000.0  # 2 of the 125 sampled voxels: the 0.5th percentile, not the 5th
    vol[1, 1, 1] = -2000.0  # not sampled, but the minimum of all
    assert intensity_signature(vol) == (-2000.0, -1000.0)
    assert guess_modality(intensity_signature(vol)) == "CT"
    with pytest.raises(ValueError, match="empty"):
        intensity_signature(np.zeros((0, 3, 3)))


def test_guess_modality_thresholds():
    assert guess_modality((-1000.0, -301.0)) == "CT"
    assert guess_modality((-1000.0, -300.0)) == "unknown"
    assert guess_modality((-200.0, -100.0)) == "unknown"
    assert guess_modality((0.0, 0.0)) == "MRI"  # no negative value: a zero background is MRI


def test_modality_rule_passes_unknown_scans_and_says_why_it_refuses():
    unknown = (-200.0, -100.0)
    for expected in ("CT", "MRI"):
        assert modality_mismatch(unknown, expected) is None
        check_modality(unknown, expected)
    assert modality_mismatch((3.0, 10.0), "CT") == ("MRI", "no negative value, minimum 3: no Hounsfield units")
    assert modality_mismatch((-1024.0, -1000.0), "MRI") == ("CT", "air-like values near -1000, 0.5th percentile "
                                                                  "-1000, as in CT")
    with pytest.raises(ModalityMismatchError, match="no Hounsfield units"):
        check_modality((3.0, 10.0), "CT")


# ----------------------------------------------------------------------------- boxes
def test_boxes_on_a_rotated_grid():
    a = np.eye(4)
    a[:3, :3] = ROT_Z * [3.0, 2.0, 1.0]  # i: world y at 3 mm, j: world -x at 2 mm
    a[:3, 3] = [10.0, -5.0, 0.0]
    # x = 10 - 2 j, j in -0.5..4.5; y = -5 + 3 i, i in -0.5..3.5; z in -0.5..5.5
    assert np.allclose(image_box(a, (4, 5, 6)), [[1.0, -6.5, -0.5], [11.0, 5.5, 5.5]])
    m = np.zeros((4, 5, 6), np.int8)
    m[1, 2, 3] = 1
    m[3, 4, 5] = -1  # not foreground
    assert np.allclose(mask_box(m, a), [[5.0, -3.5, 2.5], [7.0, -0.5, 3.5]])
    for bad in ((4, 5), (0, 5, 6)):
        with pytest.raises(ValueError, match="3 positive sides"):
            image_box(a, bad)


def test_map_box_default_margin_rotation_and_degenerate_boxes():
    box = np.array([[0.0, 0.0, 0.0], [10.0, 20.0, 30.0]])
    assert np.allclose(map_box(box, np.eye(4)), box + [[-20.0], [20.0]])  # DEFAULT_MARGIN_MM
    rot = np.eye(4)
    rot[:3, :3] = ROT_Z
    assert np.allclose(map_box(box, rot, 0.0), [[-20.0, 0.0, 0.0], [0.0, 10.0, 30.0]])
    c = math.sqrt(0.5)
    rot[:3, :3] = [[1.0, 0.0, 0.0], [0.0, c, -c], [0.0, c, c]]  # 45 degrees about x: every corner counts
    assert np.allclose(map_box(box, rot, 0.0), [[0.0, -30 * c, 0.0], [10.0, 20 * c, 50 * c]])
    point = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])  # low == high is a box
    assert np.allclose(map_box(point, np.eye(4), 1.0), [[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
    with pytest.raises(ValueError, match="low <= high"):
        map_box(box[::-1], np.eye(4), 0.0)


def test_parse_roi_allows_spaces_around_numbers_only():
    assert parse_roi(" 0, -10 ,5.5,20,10, 30 ").tolist() == [[0, -10, 5.5], [20, 10, 30]]
    for bad in ("1 0,0,0,20,20,20", "1,,2,3,4,5,6", "1,2,3,4,5,6,"):  # "1 0" was read as 10; empty fields skipped
        with pytest.raises(ValueError, match="six numbers"):
            parse_roi(bad)


def test_check_margin_refuses_nan_and_infinity():
    assert check_margin(0) == 0.0 and isinstance(check_margin(3), float)
    for bad in (float("nan"), float("inf"), -0.5):
        with pytest.raises(ValueError, match="--margin must be a finite number of mm >= 0"):
            check_margin(bad)


def test_intersect_is_empty_for_boxes_that_only_touch():
    a = np.array([[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]])
    assert intersect(a, a + [5.0, -5.0, 2.0]).tolist() == [[5.0, 0.0, 2.0], [10.0, 5.0, 10.0]]
    assert intersect(a, a + [10.0, 0.0, 0.0]) is None  # a shared face
    assert intersect(a, a + [0.0, 0.0, 20.0]) is None  # apart along one axis only


def test_roi_windows_are_exact_and_centred():
    a = np.diag([2.0, 2.0, 2.0, 1.0])
    a[:3, 3] = [-10.0, 0.0, 5.0]
    # voxels x 10..14, y 3..5, z 0..9 (their outer faces in mm)
    box = np.array([[2 * 9.5 - 10, 2 * 2.5, 2 * -0.5 + 5], [2 * 14.5 - 10, 2 * 5.5, 2 * 9.5 + 5]])
    start, end = roi_windows(box, a, (30, 30, 30), 4)
    assert start.dtype == np.int64 and start.tolist() == [10, 2, 0] and end.tolist() == [15, 6, 10]
    start, end = roi_windows(box, a, (30, 30, 30), 8)
    assert start.tolist() == [8, 0, 0] and end.tolist() == [16, 8, 10]
    with pytest.raises(ValueError, match="3 positive sides"):
        roi_windows(box, a, (30, 0, 30), 4)


# ----------------------------------------------------------------------------- registration
def _body(affine: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """A body with two organs (already on a [0, 1]-like scale) and the first organ's mask."""
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(np.float64)
    w = ijk @ affine[:3, :3].T + affine[:3, 3]
    trunk = ((w[..., 0] / 80) ** 2 + (w[..., 1] / 60) ** 2 + (w[..., 2] / 70) ** 2) <= 1
    organ = np.linalg.norm(w - np.array([30.0, 10.0, 15.0]), axis=-1) <= 18
    other = np.linalg.norm(w - np.array([-35.0, -10.0, -25.0]), axis=-1) <= 22
    return (1.0 * trunk + 0.5 * organ - 0.6 * other).astype(np.float32), organ.astype(np.uint8)


def test_registration_across_a_rotated_voxel_grid_is_the_identity():
    """The same body stored on a grid turned by 90 degrees: world points map to themselves."""
    a = np.diag([4.0, 4.0, 4.0, 1.0])
    a[:3, 3] = [-96.0, -80.0, -88.0]
    q_aff = np.eye(4)
    q_aff[:3, :3] = 4.0 * ROT_Z
    q_aff[:3, 3] = [92.0, -80.0, -88.0]  # covers the same world box
    s_img, s_mask = _body(a, (48, 40, 44))
    q_img, q_mask = _body(q_aff, (40, 48, 44))
    ref = make_reference(s_img, a, s_mask, "CT")
    reg = register(ref, q_img, q_aff)
    assert np.allclose(reg.matrix[:3, :3], np.eye(3), atol=0.05) and np.abs(reg.matrix[:3, 3]).max() < 4.0, reg.matrix
    assert np.abs(map_box(ref.box_mm, reg.matrix, 0.0) - mask_box(q_mask, q_aff)).max() < 4.0


@pytest.fixture
def blob():
    img = np.full((20, 20, 20), -2.0, np.float32)
    img[5:12, 6:14, 4:9] = 3.0
    a = np.diag([4.0, 4.0, 4.0, 1.0])
    return make_reference(img, a, img > 0, "CT"), img, a


def _stub(monkeypatch, scale=1.0, metric=-0.5, angle=0.3):
    """Replace the optimiser: the similarity stage sets a known rotation, scale and translation."""
    calls = []

    def fake(fixed, moving, tx, iterations, shrink, sigmas):
        calls.append({"tx": tx, "matrix": np.array(tx.GetMatrix()), "moving": sitk.GetArrayFromImage(moving),
                      "iterations": iterations})
        if isinstance(tx, sitk.Similarity3DTransform):
            tx.SetRotation((0.0, 0.0, 1.0), angle)
            tx.SetScale(scale)
            tx.SetTranslation((2.0, 4.0, -6.0))
        return tx, metric

    monkeypatch.setattr(loc, "_optimise", fake)
    return calls


def test_register_returns_the_fitted_transform_as_a_matrix(monkeypatch, blob):
    ref, img, a = blob
    calls = _stub(monkeypatch, scale=1.5)
    reg = register(ref, img, a, iterations=7)
    assert len(calls) == 1 and calls[0]["iterations"] == 7
    m = calls[0]["moving"]
    assert m.min() == 0.0 and m.max() == 1.0  # the query on [0, 1]: its air weighs nothing
    tx = calls[0]["tx"]
    assert np.any(np.abs(tx.GetCenter()) > 1)  # a centre away from the origin: the matrix must carry it
    for p in ([7.0, 1.0, -20.0], [0.0, 0.0, 0.0], [40.0, 30.0, 10.0]):
        assert np.allclose(reg.matrix[:3, :3] @ p + reg.matrix[:3, 3], tx.TransformPoint(p))
    assert reg.volume_ratio == pytest.approx(1.5 ** 3) and reg.metric == -0.5
    assert reg.transform == "similarity" and 0.0 <= reg.seconds < 5.0


def test_register_affine_starts_from_the_similarity(monkeypatch, blob):
    ref, img, a = blob
    calls = _stub(monkeypatch, scale=1.2)
    reg = register(ref, img, a, transform="affine")
    assert [type(c["tx"]).__name__ for c in calls] == ["Similarity3DTransform", "AffineTransform"]
    s = 1.2 * np.array([[math.cos(0.3), -math.sin(0.3), 0.0], [math.sin(0.3), math.cos(0.3), 0.0], [0, 0, 1]])
    assert np.allclose(calls[1]["matrix"].reshape(3, 3), s) and np.allclose(reg.matrix[:3, :3], s)
    assert reg.transform == "affine"


@pytest.mark.parametrize("scale, metric, words", [(0.6, -0.5, "volume ratio 0.216"), (1.7, -0.5, "volume ratio 4.91"),
                                                  (1.0, -0.1, "mutual information 0.100")])
def test_register_refuses_an_implausible_result(monkeypatch, blob, scale, metric, words):
    ref, img, a = blob
    _stub(monkeypatch, scale=scale, metric=metric)
    with pytest.raises(RegistrationError, match=words):
        register(ref, img, a)


def test_register_wraps_simpleitk_failures_and_checks_its_input(monkeypatch, blob):
    ref, img, a = blob

    def fail(*args, **kwargs):
        raise RuntimeError("Exception thrown in SimpleITK ImageRegistrationMethod_Execute: too few samples")

    monkeypatch.setattr(loc, "_optimise", fail)
    with pytest.raises(RegistrationError, match=r"failed in SimpleITK \(.*too few samples\)"):
        register(ref, img, a)
    with pytest.raises(ValueError, match="iterations must be >= 1, got 0"):
        register(ref, img, a, iterations=0)
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(RegistrationError, match="not finite"):
        register(ref, bad, a)


def test_register_threads_hold_for_the_call_only(monkeypatch, blob):
    """threads= sets SimpleITK's process-wide thread count for the optimisation and restores it after, also when
    SimpleITK fails (before, a notebook's later SimpleITK work ran with the registration's count); < 1 refused."""
    ref, img, a = blob
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    seen = []

    def fake(fixed, moving, tx, iterations, shrink, sigmas):
        seen.append(sitk.ProcessObject.GetGlobalDefaultNumberOfThreads())
        return tx, -0.5

    monkeypatch.setattr(loc, "_optimise", fake)
    register(ref, img, a, threads=before + 1)
    assert seen == [before + 1] and sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == before
    monkeypatch.setattr(loc, "_optimise", lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RegistrationError):
        register(ref, img, a, threads=before + 1)
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == before
    with pytest.raises(ValueError, match="threads must be >= 1 or None, got 0"):
        register(ref, img, a, threads=0)
