"""``hyperkit.inference.segment``, checked where the round-trip and CLI tests cannot fail (found by the segment
mutation audit): channel and label selection, the support patch's refusals and warning, the air warning's bound,
what generate_model records, to_input_grid's refusals and border, the sidecar record, the ROI parsing and
resolution (margin, modality, no support), predict_roi's region, padding, outside logit and sliding-window
settings, postprocess, box_voxels' faces, segment_scan's checks and settings, and segment_file's output.

Hand-built volumes and a stand-in U-Net (logit = normalised MRI intensity - 0.5) keep it to seconds.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import torch

import hyperkit.inference.segment as seg_mod
from hyperkit.config import load_profile
from hyperkit.data.layouts import CaseData
from hyperkit.data.preprocess import DataConfig
from hyperkit.errors import HyperkitError
from hyperkit.inference.localise import ModalityMismatchError, Registration, SupportReference
from hyperkit.inference.model_file import load_unet
from hyperkit.inference.segment import (InputGrid, Segmentation, box_voxels, generate_model, postprocess, predict_roi,
                                        prepare_volume, resolve_roi, segment_file, segment_scan, support_patch,
                                        to_input_grid)
from tiny import TINY_MODEL, untrained_checkpoint

META = {"data": {"spacing": 2.0, "patch_size": 32, "ct_clip": [-900.0, 900.0], "mri_percentiles": [1.0, 99.0]},
        "channel": "MRI", "modality": "MRI"}
#: 24^3 voxels of 3 mm, centred near the origin: the scan's world box is [-37.5, 34.5] mm per axis
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
AFFINE[:3, 3] = -36.0
SHAPE = (24, 24, 24)


class _Identity(torch.nn.Module):
    """Stand-in U-Net: logit = input - 0.5 (the bright ball of an MRI scan)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 0.5


class _Spy(torch.nn.Module):
    """Returns its input and records each batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return x.clone()


def _ball(path, ct: bool = False):
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1).astype(np.float64)
    ball = np.linalg.norm(ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3], axis=-1) <= 15.0
    x = np.where(ball, 40.0, -1000.0) if ct else np.where(ball, 100.0, 10.0)
    nib.save(nib.Nifti1Image(x.astype(np.float32), AFFINE), str(path))
    return path


def _support_meta(modality: str = "MRI") -> dict:
    ref = SupportReference(np.zeros((4, 4, 4), np.float32), np.eye(4), np.array([[-10.0] * 3, [10.0] * 3]), modality)
    return {**META, "support": ref.to_dict()}


def _identity_registration(monkeypatch):
    monkeypatch.setattr(seg_mod, "register", lambda *a, **k: Registration(np.eye(4), -0.5, 1.0, 0.25))


# ----------------------------------------------------------------------------- reading the scans
def test_channel_index_picks_that_channel_and_refuses_out_of_range(tmp_path):
    x = np.full((8, 8, 8, 2), 5.0, np.float32)
    x[..., 1] = 7.0 + np.random.default_rng(0).random((8, 8, 8))
    x[0, 0, 0, 1] = 3.0
    nib.save(nib.Nifti1Image(x, np.eye(4)), str(tmp_path / "img.nii.gz"))
    data = DataConfig(spacing=1.0, patch_size=8)
    _, grid = prepare_volume(tmp_path / "img.nii.gz", "MRI", data, channel_index=1)
    assert grid.intensity[0] == 3.0  # the minimum of channel 1, not of channel 0
    assert grid.channel == "MRI" and grid.air_fraction is None  # an air fraction is a CT's only
    for bad in (2, -1):
        with pytest.raises(HyperkitError, match=rf"--channel-index {bad} out of range; the image has 2"):
            prepare_volume(tmp_path / "img.nii.gz", "MRI", data, channel_index=bad)


def test_label_selects_one_value_and_presence_is_recorded(tmp_path):
    img = np.random.default_rng(0).normal(0.0, 100.0, (12, 12, 12)).astype(np.float32)
    img[:3] = -1000.0  # a quarter air
    nib.save(nib.Nifti1Image(img, np.eye(4)), str(tmp_path / "img.nii.gz"))
    lab = np.zeros((12, 12, 12), np.int16)
    lab[1:4, 1:4, 1:4] = 1
    lab[6:9, 6:9, 6:9] = 2
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(tmp_path / "lab.nii.gz"))
    data = DataConfig(spacing=1.0, patch_size=8)
    one, _ = prepare_volume(tmp_path / "img.nii.gz", "CT", data, tmp_path / "lab.nii.gz", label=1)
    np.testing.assert_array_equal(one.label, (lab == 1).astype(np.int32))
    both, _ = prepare_volume(tmp_path / "img.nii.gz", "CT", data, tmp_path / "lab.nii.gz")
    np.testing.assert_array_equal(both.label, (lab > 0).astype(np.int32))
    assert both.present_before_resampling == frozenset({1})
    ct = prepare_volume(tmp_path / "img.nii.gz", "CT", data)[1]
    assert ct.air_fraction == pytest.approx(0.25)
    plain, _ = prepare_volume(tmp_path / "img.nii.gz", "CT", data)
    assert plain.present_before_resampling == frozenset() and not plain.label.any()


def test_support_patch_refuses_a_vanished_target_and_warns_on_partial_cover():
    data = DataConfig(spacing=2.0, patch_size=8)
    img = np.zeros((1, 20, 20, 20), np.float32)
    empty = CaseData("c", img, np.zeros((20, 20, 20), np.int32), np.eye(4))
    with pytest.raises(HyperkitError, match="support mask vanished when resampled to 2 mm"):
        support_patch(empty, data)
    lab = np.zeros((20, 20, 20), np.int32)
    lab[5:15, 6:14, 6:14] = 1  # 10 voxels along x, the patch 8: 80 % covered
    with pytest.warns(UserWarning, match=r"larger than the 8\^3 patch; the support covers 80 %"):
        image, mask = support_patch(CaseData("c", img, lab, np.eye(4)), data)
    assert image.shape == mask.shape == (1, 1, 8, 8, 8) and float(mask.sum()) == 8 * 8 * 8


def test_air_warning_is_for_more_than_seventy_percent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seg_mod._warn_air("s.nii.gz", 0.70)
        seg_mod._warn_air("s.nii.gz", None)  # MRI
    with pytest.warns(UserWarning, match="71 % air"):
        seg_mod._warn_air("s.nii.gz", 0.71)


# ----------------------------------------------------------------------------- generate_model
@pytest.fixture(scope="module")
def support(tmp_path_factory):
    root = tmp_path_factory.mktemp("support")
    cfg = load_profile("quick", {"data": {"patch_size": 32}, "model": TINY_MODEL})
    ckpt = untrained_checkpoint(dict(cfg), root / "best.pt")
    rng = np.random.default_rng(0)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1) - 12
    inner, outer = np.linalg.norm(ijk, axis=-1) <= 3, np.linalg.norm(ijk, axis=-1) <= 6
    ct = (-60.0 + 120.0 * outer + rng.normal(0, 10, SHAPE)).astype(np.float32)
    nib.save(nib.Nifti1Image(np.stack([ct, -ct], -1), AFFINE), str(root / "img.nii.gz"))
    nib.save(nib.Nifti1Image((outer.astype(np.int16) + inner), AFFINE), str(root / "lab.nii.gz"))
    return {"ckpt": ckpt, "image": root / "img.nii.gz", "mask": root / "lab.nii.gz"}


def test_generate_records_label_channel_task_and_the_modality_given(support, tmp_path):
    out = generate_model(support["ckpt"], support["image"], support["mask"], tmp_path / "m.pt", modality="ct",
                         channel_index=0, label=2, task="core", adapt=False)
    meta = load_unet(out)[1]
    assert meta["modality"] == meta["channel"] == "CT" and meta["source"]["modality"] == "given (--modality)"
    assert meta["source"]["label"] == "2" and meta["source"]["channel_index"] == "0" and meta["task"] == "core"
    with pytest.raises(HyperkitError, match="--modality must be one of"):
        generate_model(support["ckpt"], support["image"], support["mask"], tmp_path / "p.pt", modality="PET")


def test_generate_reads_auto_in_any_case_as_the_cli_does(support, tmp_path):
    """'Auto' and ' AUTO ' detect the modality (as `--modality Auto` and `--roi AUTO` do), not 'must be one of'."""
    for i, spelled in enumerate(("Auto", " AUTO ")):
        out = generate_model(support["ckpt"], support["image"], support["mask"], tmp_path / f"a{i}.pt",
                             modality=spelled, channel_index=0, adapt=False)
        assert load_unet(out)[1]["source"]["modality"].startswith("the default: minimum")  # not "given"


def test_a_label_without_a_mask_is_refused(tmp_path):
    """--label selects a value of the mask: given without one it was ignored without a word."""
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), str(tmp_path / "img.nii.gz"))
    with pytest.raises(HyperkitError, match="--label 2 selects a value of the mask, but no mask is given"):
        prepare_volume(tmp_path / "img.nii.gz", "CT", DataConfig(spacing=1.0, patch_size=8), label=2)


def test_generate_without_checkpoint_asks_for_the_given_profile(tmp_path, monkeypatch):
    from hyperkit.training import reference

    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path / "nothing")
    with pytest.raises(HyperkitError, match="reference checkpoint of profile 'paper'"):
        generate_model(None, tmp_path / "i.nii.gz", tmp_path / "m.nii.gz", tmp_path / "o.pt", profile="paper")


def test_generate_names_a_missing_mask_before_reading_the_checkpoint(support, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(HyperkitError, match="nope_mask.nii.gz"):
        generate_model(junk, support["image"], tmp_path / "nope_mask.nii.gz", tmp_path / "o.pt", channel_index=0)


# ----------------------------------------------------------------------------- to_input_grid, record
def test_to_input_grid_refuses_bad_shapes_and_clamps_at_the_border():
    with pytest.raises(ValueError, match=r"logits must be \(X, Y, Z\) or \(1, X, Y, Z\)"):
        to_input_grid(np.zeros((2, 4, 4, 4)), np.eye(4), np.eye(4), (4, 4, 4))
    with pytest.raises(ValueError, match="input_shape must have 3 positive sides"):
        to_input_grid(np.zeros((4, 4, 4)), np.eye(4), np.eye(4), (4, 4))
    with pytest.raises(ValueError, match=r"input_shape must have 3 positive sides, got \(4, 0, 4\)"):
        to_input_grid(np.zeros((4, 4, 4)), np.eye(4), np.eye(4), (4, 0, 4))
    # a (3, 3) affine was read as a 2-D transform and resampled wrongly without a word; a singular one too
    with pytest.raises(ValueError, match=r"resampled_affine must be an invertible \(4, 4\) .* got shape \(3, 3\)"):
        to_input_grid(np.zeros((4, 4, 4)), np.diag([4.0, 4.0, 1.0]), np.eye(4), (4, 4, 4))
    with pytest.raises(ValueError, match=r"input_affine must be an invertible \(4, 4\)"):
        to_input_grid(np.zeros((4, 4, 4)), np.eye(4), np.diag([1.0, 0.0, 1.0, 1.0]), (4, 4, 4))
    # voxel centres 0, 2, 4, 6 mm; the input grid's at -0.5 .. 6.5 mm reach past both ends
    dst = np.eye(4)
    dst[:3, 3] = -0.5
    out = to_input_grid(np.full((4, 4, 4), 3.0), np.diag([2.0, 2.0, 2.0, 1.0]), dst, (8, 8, 8))
    np.testing.assert_allclose(out, 3.0, atol=1e-5)


def test_record_rounds_and_keeps_every_field():
    matrix = np.array([[1.0, 0.1234567, 0.0, 5.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    reg = Registration(matrix, -0.123456789, 1.0123456, 0.98765, "affine")
    windows = (np.array([-2, 0, 1]), np.array([30, 32, 33]))
    s = Segmentation(np.zeros((2, 2, 2), np.uint8), np.eye(4), np.array([[1.234, 2.345, 3.456], [4.0, 5.0, 6.0]]),
                     "auto", reg, windows, {"keep": "all"}, {"voxels": 0})
    rec = s.record()
    assert rec["roi"] == {"source": "auto", "box_mm": [[1.23, 2.35, 3.46], [4.0, 5.0, 6.0]]}
    r = rec["registration"]
    assert (r["transform"], r["final_metric"], r["volume_ratio"], r["seconds"]) == ("affine", -0.12346, 1.0123, 0.988)
    assert r["support_to_query"][0] == [1.0, 0.12346, 0.0, 5.0] and r["support_to_query"][1][1] == 1.0
    assert rec["windows"] == [[-2, 0, 1], [30, 32, 33]] and rec["voxels"] == 0


# ----------------------------------------------------------------------------- resolve_roi
def test_roi_text_and_boxes_are_read_and_checked():
    vol, grid = np.zeros((20, 20, 20), np.float32), InputGrid(np.eye(4), (20, 20, 20))
    assert resolve_roi(" None ", {}, vol, np.eye(4), grid) == (None, "none", None)
    with pytest.raises(HyperkitError, match="carries no support reference"):
        resolve_roi("AUTO", {}, vol, np.eye(4), grid)
    box, source, reg = resolve_roi([1, 2, 3, 5, 6, 7], {}, vol, np.eye(4), grid)  # six numbers, flat
    assert source == "user" and reg is None
    np.testing.assert_array_equal(box, [[1, 2, 3], [5, 6, 7]])
    for bad in ([[1, 2, 3], [1, 6, 7]], [[1, 2, float("nan")], [5, 6, 7]]):  # empty along x; not finite
        with pytest.raises(ValueError, match="low < high"):
            resolve_roi(bad, {}, vol, np.eye(4), grid)
    with pytest.raises(ValueError, match="--margin must be a finite number of mm >= 0"):
        resolve_roi("none", {}, vol, np.eye(4), grid, margin_mm=-1.0)


def test_auto_roi_grows_the_support_box_by_the_margin(monkeypatch):
    _identity_registration(monkeypatch)
    vol, grid = np.zeros((40, 40, 40), np.float32), InputGrid(AFFINE, (40, 40, 40), intensity=(10.0, 10.0))
    box, source, reg = resolve_roi("auto", _support_meta(), vol, AFFINE, grid, margin_mm=5.0)
    assert source == "auto" and reg is not None
    np.testing.assert_allclose(box, [[-15.0] * 3, [15.0] * 3])


def test_auto_roi_checks_the_modality_before_registering(monkeypatch):
    def never(*a, **k):
        raise AssertionError("registered a scan of the wrong modality")

    monkeypatch.setattr(seg_mod, "register", never)
    grid = InputGrid(np.eye(4), (20, 20, 20), intensity=(10.0, 10.0))  # no negative value: not CT
    with pytest.raises(ModalityMismatchError):
        resolve_roi("auto", _support_meta("CT"), np.zeros((20, 20, 20), np.float32), np.eye(4), grid)


# ----------------------------------------------------------------------------- predict_roi
def test_predict_roi_region_at_the_far_corner():
    """Box at voxels 16..19 of a 20^3 scan, patch 8: the region is 14..22, reaching 2 voxels outside."""
    vol = (1.0 + np.random.default_rng(0).random((20, 20, 20))).astype(np.float32)
    spy = _Spy()
    logits, (start, end) = predict_roi(spy, vol, np.eye(4), np.array([[16.0] * 3, [19.0] * 3]), 8)
    assert start.tolist() == [14] * 3 and end.tolist() == [22] * 3
    np.testing.assert_allclose(logits[14:, 14:, 14:], vol[14:, 14:, 14:], rtol=1e-5)
    outside = np.ones(vol.shape, bool)
    outside[14:, 14:, 14:] = False
    assert np.all(logits[outside] <= -20.0)  # certainly background at any sensible threshold
    assert min(float(t.min()) for t in spy.seen) == pytest.approx(float(vol.min()))  # padded with the minimum
    with pytest.raises(ValueError, match="volume must be"):
        predict_roi(spy, vol[0], np.eye(4), None, 8)


def test_predict_roi_passes_overlap_and_batch_size():
    spy = _Spy()
    predict_roi(spy, np.ones((16, 16, 16), np.float32), np.eye(4), None, 8, overlap=0.0, sw_batch_size=4)
    assert [t.shape[0] for t in spy.seen] == [4, 4]  # 2 x 2 x 2 windows without overlap, 4 a batch


# ----------------------------------------------------------------------------- postprocess, box_voxels
def _blobs() -> np.ndarray:
    m = np.zeros((12, 12, 12), np.uint8)
    m[0:2, 0:2, 0:2] = 1      # 8 voxels
    m[4:7, 4:7, 4:7] = 1      # 27
    m[9:11, 9:11, 9:10] = 1   # 4
    return m


def test_postprocess_keeps_the_largest_face_connected_component():
    out, rec = postprocess(_blobs(), keep="largest")
    want = np.zeros((12, 12, 12), np.uint8)
    want[4:7, 4:7, 4:7] = 1
    np.testing.assert_array_equal(out, want)
    assert rec == {"keep": "largest", "fill_holes": False, "components": 3, "kept_components": 1,
                   "voxels_removed": 12}
    diag = np.zeros((4, 4, 4), np.uint8)
    diag[0, 0, 0] = diag[1, 1, 1] = 1  # touching at a corner only: two components
    assert postprocess(diag, keep="largest")[0].sum() == 1
    empty, rec = postprocess(np.zeros((4, 4, 4), np.uint8), keep="largest")
    assert not empty.any() and rec == {"keep": "largest", "fill_holes": False}


def test_postprocess_keeps_the_components_in_the_region():
    roi = np.zeros((12, 12, 12), bool)
    roi[1, 1, 1] = roi[10, 10, 9] = roi[11, 0, 0] = True  # the last on the background: it adds nothing
    out, rec = postprocess(_blobs(), keep="roi", roi_voxels=roi)
    want = _blobs()
    want[4:7, 4:7, 4:7] = 0
    np.testing.assert_array_equal(out, want)
    assert (rec["components"], rec["kept_components"], rec["voxels_removed"]) == (3, 2, 27)
    with pytest.raises(ValueError, match=r"keep='roi' needs roi_voxels of shape \(12, 12, 12\), got \(4, 4, 4\)"):
        postprocess(_blobs(), keep="roi", roi_voxels=np.ones((4, 4, 4), bool))
    with pytest.raises(ValueError, match="keep must be"):
        postprocess(_blobs(), keep="biggest")


def test_postprocess_fills_holes_only_when_asked():
    hollow = np.zeros((5, 5, 5), np.uint8)
    hollow[1:4, 1:4, 1:4] = 1
    hollow[2, 2, 2] = 0
    out, rec = postprocess(hollow)
    np.testing.assert_array_equal(out, hollow)
    assert rec == {"keep": "all", "fill_holes": False}
    out, rec = postprocess(hollow, fill_holes=True)
    assert out.sum() == 27 and rec["voxels_filled"] == 1


def test_box_voxels_includes_centres_on_the_faces():
    got = box_voxels(np.array([[1.0] * 3, [3.0] * 3]), np.eye(4), (5, 5, 5))
    want = np.zeros((5, 5, 5), bool)
    want[1:4, 1:4, 1:4] = True
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="shape 3 sides"):
        box_voxels(np.array([[1.0] * 3, [3.0] * 3]), np.eye(4), (5, 5))


# ----------------------------------------------------------------------------- segment_scan
def test_segment_scan_refuses_bad_settings_before_any_work(tmp_path):
    for kw, words in (({"overlap": 1.0}, "--overlap must be in"), ({"sw_batch_size": 0}, "--sw-batch-size must be")):
        with pytest.raises(HyperkitError, match=words):
            segment_scan(tmp_path / "none.pt", tmp_path / "none.nii.gz", **kw)
    with pytest.raises(ValueError, match="model must be a model file path"):
        segment_scan(42, _ball(tmp_path / "s.nii.gz"))


def test_segment_scan_checks_region_and_modality(tmp_path):
    mri, ct = _ball(tmp_path / "mri.nii.gz"), _ball(tmp_path / "ct.nii.gz", ct=True)
    with pytest.raises(ModalityMismatchError):
        segment_scan((_Identity(), META), ct, roi="none")  # an MRI model, a CT scan, no registration
    with pytest.raises(ValueError, match="got roi 'none'"):
        segment_scan((_Identity(), META), mri, roi="none", keep="roi")
    with pytest.raises(ValueError, match="carries no support"):
        segment_scan((_Identity(), META), mri, keep="roi")
    for roi, words in (("none", "got roi 'none'"), (None, "carries no support")):  # before the scan is read
        with pytest.raises(ValueError, match=words):
            segment_scan((_Identity(), META), tmp_path / "missing.nii.gz", roi=roi, keep="roi")


def test_a_model_pair_without_its_modality_is_refused_before_reading_the_scan(tmp_path):
    """The (unet, meta) pair must carry what load_unet guarantees: a meta without its modality skipped the
    modality check (an MRI scan was segmented by any model), one without its data failed with a KeyError."""
    for drop in ("modality", "data"):
        meta = {k: v for k, v in META.items() if k != drop}
        with pytest.raises(ValueError, match=rf"lacks key\(s\) \['{drop}'\]"):
            segment_scan((_Identity(), meta), tmp_path / "missing.nii.gz", roi="none")


def test_segment_scan_settings_reach_the_unet_and_the_mask(tmp_path, monkeypatch):
    scan = _ball(tmp_path / "s.nii.gz")
    spy = _Spy()
    spy.train()
    res = segment_scan((spy, META), scan, roi="none", overlap=0.0, sw_batch_size=3, threshold=-1.0)
    assert not spy.training  # run in eval mode
    # 36^3 resampled voxels, patch 32, no overlap: 2 x 2 x 2 windows, 3 a batch
    assert [t.shape[0] for t in spy.seen] == [3, 3, 2]
    assert res.mask.all()  # logits >= 0 > -1 everywhere
    assert res.info["resampled_shape"] == [36, 36, 36] and res.info["registration_seconds"] is None
    _identity_registration(monkeypatch)
    res = segment_scan((_Identity(), _support_meta()), scan, margin_mm=5.0)
    np.testing.assert_allclose(res.roi_mm, [[-15.0] * 3, [15.0] * 3])
    assert res.info["registration_seconds"] is not None


# ----------------------------------------------------------------------------- segment_file
def test_segment_file_output_and_largest_component(tmp_path, monkeypatch):
    monkeypatch.setattr(seg_mod, "_load_model", lambda model, device: (_Identity(), META))
    scan, model = _ball(tmp_path / "s.nii.gz"), tmp_path / "model.pt"
    model.write_bytes(b"unused")
    with pytest.raises(ValueError, match="exclude each other"):
        segment_file(model, scan, tmp_path / "x.nii.gz", roi="none", largest_component=True, keep="roi")
    rec = segment_file(model, scan, tmp_path / "m.nii", roi="none", largest_component=True)
    assert rec["postprocessing"]["keep"] == "largest" and rec["postprocessing"]["components"] == 1
    assert (tmp_path / "m.nii").read_bytes()[:2] != b"\x1f\x8b"  # .nii: not gzipped
    out = nib.load(str(tmp_path / "m.nii"))
    assert (float(out.header["cal_min"]), float(out.header["cal_max"])) == (0.0, 1.0)
    assert np.asarray(out.dataobj).sum() == rec["voxels"] > 0


def test_segment_file_failing_write_leaves_no_temporary_files(tmp_path, monkeypatch):
    monkeypatch.setattr(seg_mod, "_load_model", lambda model, device: (_Identity(), META))
    scan, model = _ball(tmp_path / "s.nii.gz"), tmp_path / "model.pt"
    model.write_bytes(b"unused")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(seg_mod.nib, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        segment_file(model, scan, tmp_path / "out" / "m.nii.gz", roi="none")
    assert list((tmp_path / "out").iterdir()) == []


def test_segment_file_refuses_a_sidecar_that_is_a_folder_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(seg_mod, "_load_model", lambda model, device: (_Identity(), META))
    scan, model = _ball(tmp_path / "s.nii.gz"), tmp_path / "model.pt"
    model.write_bytes(b"unused")
    (tmp_path / "seg.json").mkdir()  # before the fix: the mask was written, then the sidecar's rename failed
    with pytest.raises(HyperkitError, match="seg.json"):
        segment_file(model, scan, tmp_path / "seg.nii.gz", roi="none")
    assert not (tmp_path / "seg.nii.gz").exists()


def test_a_model_pair_modality_is_checked_as_load_unet_checks_a_file(tmp_path):
    """load_unet refuses a file whose modality is not CT or MRI; the pair path checks its meta the same way
    (before the scan is read) and reads the value in any case, as the file path does."""
    with pytest.raises(ValueError, match=r"the model's metadata modality must be one of \['CT', 'MRI'\], got 'PET'"):
        segment_scan((_Identity(), {**META, "modality": "PET"}), tmp_path / "missing.nii.gz", roi="none")
    ct = _ball(tmp_path / "ct.nii.gz", ct=True)
    with pytest.raises(ModalityMismatchError):  # " mri " is MRI: a CT scan is still refused
        segment_scan((_Identity(), {**META, "modality": " mri "}), ct, roi="none")
