"""Localisation for whole-scan segmentation: boxes, registration, the model file's support
reference, ``hyperkit segment --roi`` and its bad-input lines (issue 15).

Small synthetic bodies (an ellipsoid "trunk" with two "organs", 4 mm voxels) keep each test
to about a second; a tiny untrained hypernetwork stands in for a trained one.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.inference import load_unet
from hyperkit.inference.localise import (LocalisationError, ModalityMismatchError, NoOverlapError, Registration,
                                         RegistrationError, RoiOutsideImageError, SupportReference, check_modality,
                                         detect_modality, guess_modality, image_box, intensity_signature,
                                         make_reference, map_box, mask_box, parse_roi, register, roi_windows)
from tiny import TINY_MODEL, untrained_checkpoint

SPACING = 4.0
SHAPE = (48, 40, 44)


def _affine(origin=(-96.0, -80.0, -88.0)) -> np.ndarray:
    a = np.diag([SPACING, SPACING, SPACING, 1.0])
    a[:3, 3] = origin
    return a


def _body(shift_mm=(0.0, 0.0, 0.0), shape=SHAPE, affine=None, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like body ``(X, Y, Z)`` (HU) and its target mask, everything moved by ``shift_mm``."""
    affine = _affine() if affine is None else affine
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(np.float64)
    w = ijk @ affine[:3, :3].T + affine[:3, 3] - np.asarray(shift_mm)
    trunk = ((w[..., 0] / 80) ** 2 + (w[..., 1] / 60) ** 2 + (w[..., 2] / 70) ** 2) <= 1
    organ = np.linalg.norm(w - np.array([30.0, 10.0, 15.0]), axis=-1) <= 18
    other = np.linalg.norm(w - np.array([-35.0, -10.0, -25.0]), axis=-1) <= 22
    bone = (np.abs(w[..., 0]) <= 8) & (np.abs(w[..., 1] + 40) <= 8) & trunk
    img = np.where(trunk, 40.0, -1000.0) + 60.0 * organ - 120.0 * other + 700.0 * bone
    img += np.random.default_rng(seed).normal(0, 8, shape)
    return img.astype(np.float32), organ.astype(np.uint8)


def _write(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


# ----------------------------------------------------------------------------- boxes
def test_parse_roi_reads_six_numbers_and_names_bad_text():
    assert parse_roi("0,-10,5.5,20,10,30").tolist() == [[0, -10, 5.5], [20, 10, 30]]
    for bad in ("1,2,3", "a,b,c,d,e,f", "0,0,0,0,1,1", "10,0,0,5,1,1"):
        with pytest.raises(ValueError, match="--roi") as exc:
            parse_roi(bad)
        if "," in bad and bad[0].isdigit() and len(bad.split(",")) == 6:
            assert bad in str(exc.value)


def test_boxes_map_with_margin_and_windows_cover_a_patch():
    a = _affine()
    assert np.allclose(image_box(a, SHAPE), [[-98, -82, -90], [-98 + 4 * 48, -82 + 4 * 40, -90 + 4 * 44]])
    m = np.zeros(SHAPE, np.uint8)
    m[10:15, 5:8, 20:30] = 1
    box = mask_box(m, a)
    assert np.allclose(box, [[-98 + 40, -82 + 20, -90 + 80], [-98 + 60, -82 + 32, -90 + 120]])
    shift = np.eye(4)
    shift[:3, 3] = [5, -7, 11]
    assert np.allclose(map_box(box, shift, 10.0), box + np.array([[-10.0], [10.0]]) + [5, -7, 11])
    start, end = roi_windows(box, a, SHAPE, 16)
    assert np.all(end - start >= 16) and np.all(end - start == np.maximum([5, 3, 10], 16))
    centre = (start + end) / 2
    assert np.allclose(centre, [12.5, 6.5, 25], atol=0.5)  # the box's centre
    with pytest.raises(ValueError, match="--margin must be a finite number of mm >= 0, got -1"):
        map_box(box, shift, -1)
    with pytest.raises(ValueError, match="patch_size must be >= 1, got 0"):
        roi_windows(box, a, SHAPE, 0)
    with pytest.raises(ValueError, match="no foreground"):
        mask_box(np.zeros(SHAPE), a)


def test_modality_signature_tells_ct_from_mri():
    ct, _ = _body()
    mri = np.abs(np.random.default_rng(1).normal(300, 100, SHAPE)).astype(np.float32)
    crop = ct[20:30, 15:25, 15:25]  # CT inside the body: no air, but negative values -> undecided
    assert guess_modality(intensity_signature(ct)) == "CT"
    assert guess_modality(intensity_signature(mri)) == "MRI"
    assert guess_modality(intensity_signature(crop - 200)) == "unknown"
    check_modality(intensity_signature(ct), "CT")
    with pytest.raises(ModalityMismatchError, match="q.nii: the model was made from a CT support.*looks like MRI") as e:
        check_modality(intensity_signature(mri), "CT", "q.nii")
    assert (e.value.expected, e.value.found, e.value.reason) == ("CT", "MRI", "modality")
    with pytest.raises(ModalityMismatchError, match="MRI support.*looks like CT"):
        check_modality(intensity_signature(ct), "MRI")
    with pytest.raises(ValueError, match="'PET'"):
        check_modality(intensity_signature(ct), "PET")
    assert [detect_modality(intensity_signature(v))[0] for v in (ct, mri, crop - 200)] == ["CT", "MRI", "CT"]
    assert "pass --modality MRI" in detect_modality(intensity_signature(crop - 200))[1]


# ----------------------------------------------------------------------------- registration
def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, -900, 900)
    return ((x - x.mean()) / x.std()).astype(np.float32)


def test_registration_recovers_a_shift_and_maps_the_target_box():
    a = _affine()
    s_img, s_mask = _body()
    q_img, q_mask = _body(shift_mm=(14.0, -10.0, 8.0), seed=1)
    ref = make_reference(_normalised(s_img), a, s_mask, "CT")
    assert ref.image.shape == SHAPE  # 4 mm is already coarse: kept as it is
    reg = register(ref, _normalised(q_img), a)
    assert reg.seconds < 30 and 0.8 < reg.volume_ratio < 1.25
    assert np.allclose(reg.matrix[:3, 3], [14.0, -10.0, 8.0], atol=4.0), reg.matrix
    mapped = map_box(ref.box_mm, reg.matrix, 0.0)
    assert np.abs(mapped - mask_box(q_mask, a)).max() <= 6.0


def test_reference_downsamples_and_round_trips_through_weights_only(tmp_path):
    a = np.diag([2.0, 2.0, 2.0, 1.0])
    img, mask = _body(shape=(96, 80, 88), affine=a @ np.array([[1, 0, 0, -48], [0, 1, 0, -40], [0, 0, 1, -44],
                                                              [0, 0, 0, 1.0]]))
    a = a @ np.array([[1, 0, 0, -48], [0, 1, 0, -40], [0, 0, 1, -44], [0, 0, 0, 1.0]])
    ref = make_reference(_normalised(img), a, mask, "CT", spacing=5.0)
    assert np.allclose(np.linalg.norm(ref.affine[:3, :3], axis=0), 5.0)
    assert all(abs(n - np.ceil(s * 2 / 5)) <= 1 for n, s in zip(ref.image.shape, (96, 80, 88)))
    torch.save(ref.to_dict(), tmp_path / "ref.pt")
    back = SupportReference.from_dict(torch.load(tmp_path / "ref.pt", weights_only=True))
    assert back.image.dtype == np.float32 and np.abs(back.image - ref.image).max() <= 0.5 / 255 + 1e-6
    assert np.allclose(back.box_mm, ref.box_mm) and back.modality == "CT"
    with pytest.raises(ValueError, match="lacks key"):
        SupportReference.from_dict({"affine": []})
    with pytest.raises(ValueError, match="'XR'"):
        make_reference(ref.image, ref.affine, ref.image > 0.5, "XR")


def test_registration_to_noise_fails_with_a_clear_error():
    a = _affine()
    s_img, s_mask = _body()
    ref = make_reference(_normalised(s_img), a, s_mask, "CT")
    noise = np.random.default_rng(3).normal(0, 1, SHAPE).astype(np.float32)
    with pytest.raises(RegistrationError, match="registration of the support to the query failed") as e:
        register(ref, noise, a)
    assert isinstance(e.value, LocalisationError) and e.value.reason == "registration"
    with pytest.raises(ValueError, match="transform must be one of"):
        register(ref, noise, a, transform="bspline")


# ----------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("localise")
    a = _affine()
    s_img, s_mask = _body()
    q_img, q_mask = _body(shift_mm=(12.0, -8.0, 6.0), seed=1)
    cfg = load_profile("quick", {"data": {"patch_size": 32}, "model": TINY_MODEL})
    ckpt = untrained_checkpoint(dict(cfg), root / "best.pt")
    out = {"ckpt": ckpt, "support": _write(root / "s.nii.gz", s_img, a),
           "support_mask": _write(root / "s_mask.nii.gz", s_mask, a),
           "query": _write(root / "q.nii.gz", q_img, a), "query_mask": _write(root / "q_mask.nii.gz", q_mask, a),
           "mri": _write(root / "mri.nii.gz", np.abs(q_img + 1000.0), a), "model": root / "model.pt"}
    with pytest.warns(UserWarning, match="74 % air"):  # a synthetic body in a wide field of view
        assert main(["generate", "--checkpoint", str(ckpt), "--image", str(out["support"]),
                     "--mask", str(out["support_mask"]), "--out", str(out["model"])]) == 0
    return out


def test_model_file_carries_a_small_support_reference(scans):
    obj = torch.load(scans["model"], weights_only=True)
    sup = obj["support"]
    assert sup["image_u8"].dtype == torch.uint8 and sup["modality"] == "CT"
    assert np.allclose(sup["box_mm"], mask_box(nib.load(str(scans["support_mask"])).get_fdata(), _affine()))
    _, meta = load_unet(scans["model"])
    assert SupportReference.from_dict(meta["support"]).image.shape == tuple(sup["image_u8"].shape)


class _Everywhere(torch.nn.Module):
    """Stand-in U-Net that marks every voxel it is given (logit +1), so that where a mask lies shows where it ran."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x[:, :1])


def test_segment_roi_auto_writes_mask_and_sidecar(scans, tmp_path, capsys, monkeypatch):
    import hyperkit.inference.segment as seg_mod

    load = seg_mod._load_model  # the model file's metadata and support, a U-Net that marks all it sees
    monkeypatch.setattr(seg_mod, "_load_model", lambda model, device: (_Everywhere(), load(model, device)[1]))
    out = tmp_path / "pred.nii.gz"
    capsys.readouterr()
    assert main(["segment", "--model", str(scans["model"]), "--image", str(scans["query"]), "--out", str(out),
                 "--keep-roi-components", "--fill-holes"]) == 0
    assert "ROI (auto)" in capsys.readouterr().out
    rec = json.loads((tmp_path / "pred.json").read_text())
    assert rec["roi"]["source"] == "auto" and rec["registration"]["library"] == "SimpleITK"
    assert rec["postprocessing"]["keep"] == "roi" and rec["postprocessing"]["fill_holes"] is True
    # what the mask depends on besides the two files, and the run's provenance (the settings change the mask)
    assert rec["settings"] == {"roi": None, "margin_mm": 20.0, "channel_index": None, "overlap": 0.25,
                               "sw_batch_size": 1, "device": "cpu", "threshold": 0.0}
    assert len(rec["model_sha256"]) == 64 and {"command", "compute", "commit"} <= set(rec["provenance"])
    assert "SimpleITK" in rec["provenance"]["versions"]
    box = np.asarray(rec["roi"]["box_mm"])
    q_box = mask_box(nib.load(str(scans["query_mask"])).get_fdata(), _affine())
    assert np.all(box[0] <= q_box[0] + 4) and np.all(box[1] >= q_box[1] - 4)  # the target inside the ROI
    lo, hi = np.asarray(rec["windows"][0]), np.asarray(rec["windows"][1])
    assert np.all(hi - lo >= 32)
    pred = nib.load(str(out))
    assert pred.shape == SHAPE and np.allclose(pred.affine, _affine())
    # the U-Net marks all it sees, so the mask is the segmented windows: something, and nothing outside them
    arr = np.asarray(pred.dataobj)
    ijk = np.argwhere(arr > 0)
    assert len(ijk) > 0
    assert np.all(ijk.min(0) >= lo - 1) and np.all(ijk.max(0) <= hi)


def test_segment_roi_none_and_box(scans, tmp_path):
    for roi, source in (("none", "none"), ("-20,-30,-10,60,40,50", "user")):
        out = tmp_path / f"{source}.nii.gz"
        assert main(["segment", "--model", str(scans["model"]), "--image", str(scans["query"]), "--out", str(out),
                     f"--roi={roi}"]) == 0  # '=': argparse would take '-20,...' for an option
        rec = json.loads(out.with_name(f"{source}.json").read_text())
        assert rec["roi"]["source"] == source and rec["registration"] is None


def _refused(args: list[str], out: Path, capsys, pattern: str) -> None:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and pattern in err[0], err
    assert not out.exists() and not out.with_name(out.name.replace(".nii.gz", ".json")).exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]


def test_bad_input_one_line_nothing_written(scans, tmp_path, capsys, monkeypatch):
    out = tmp_path / "bad" / "pred.nii.gz"
    out.parent.mkdir()
    base = ["segment", "--model", str(scans["model"]), "--out", str(out)]
    _refused([*base, "--image", str(scans["mri"])], out, capsys, "looks like MRI")
    _refused([*base, "--image", str(scans["query"]), "--roi", "1000,1000,1000,1100,1100,1100"], out, capsys,
             "lies outside the image")
    _refused([*base, "--image", str(scans["query"]), "--roi", "1,2,3"], out, capsys, "six numbers")
    # a support generated as CT from an MRI scan
    _refused(["generate", "--checkpoint", str(scans["ckpt"]), "--image", str(scans["mri"]),
              "--mask", str(scans["query_mask"]), "--out", str(out), "--modality", "CT"], out, capsys, "looks like MRI")

    import hyperkit.inference.segment as seg

    far = np.eye(4)
    far[:3, 3] = [5000.0, 0.0, 0.0]
    monkeypatch.setattr(seg, "register", lambda *a, **k: Registration(far, -0.5, 1.0, 0.1))
    _refused([*base, "--image", str(scans["query"])], out, capsys, "outside the scan")

    def fail(*a, **k):
        raise RegistrationError("registration of the support to the query failed: volume ratio 9")

    monkeypatch.setattr(seg, "register", fail)
    _refused([*base, "--image", str(scans["query"])], out, capsys, "registration of the support")


def test_python_api_segment_is_callable_from_the_package(scans):
    import hyperkit.inference as hi

    res = hi.segment(str(scans["model"]), scans["query"], roi="auto")
    assert res is not None and res.roi_source == "auto" and res.mask.shape == SHAPE
    assert res.record()["registration"]["transform"] == "similarity"
    with pytest.raises(ValueError, match="keep must be"):
        hi.segment_scan(str(scans["model"]), scans["query"], keep="biggest")
    with pytest.raises(RoiOutsideImageError):
        hi.segment_scan(str(scans["model"]), scans["query"], roi=[[900, 900, 900], [950, 950, 950]])
    with pytest.raises(NoOverlapError.__mro__[1]):  # LocalisationError is the common base
        hi.segment_scan(str(scans["model"]), scans["mri"])


def test_registration_of_a_constant_query_fails_before_simpleitk():
    a = _affine()
    s_img, s_mask = _body()
    ref = make_reference(_normalised(s_img), a, s_mask, "CT")
    with pytest.raises(RegistrationError, match="constant"):
        register(ref, np.zeros(SHAPE, np.float32), a)
