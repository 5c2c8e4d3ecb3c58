"""``hyperkit generate`` / ``hyperkit segment``: round trip, geometry, and readable errors.

A tiny untrained hypernetwork checkpoint and tiny NIfTI volumes with an oblique-free but
flipped, translated, anisotropic affine keep every test to a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.data.preprocess import DataConfig
from hyperkit.errors import HyperkitError
from hyperkit.inference import MODEL_KIND, load_unet, prepare_volume, to_input_grid
from hyperkit.metrics import dice
from hyperkit.model.hypernet import HyperUNet
from hyperkit.files import save_atomic, sha256_file
from hyperkit.training.checkpoint import CHECKPOINT_KIND
from tiny import TINY_MODEL

SHAPE = (40, 36, 30)
# x flipped, anisotropic 3.0 x 3.5 x 4.0 mm, translated
AFFINE = np.array([[-3.0, 0.0, 0.0, 60.0],
                   [0.0, 3.5, 0.0, -70.0],
                   [0.0, 0.0, 4.0, 20.0],
                   [0.0, 0.0, 0.0, 1.0]])


def _sphere(shape=SHAPE, affine=AFFINE, centre_mm=(10.0, -5.0, 75.0), radius_mm=30.0) -> np.ndarray:
    """int32 ``(X, Y, Z)`` ball of radius ``radius_mm`` around a world point."""
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(np.float64)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    return (np.linalg.norm(world - np.asarray(centre_mm), axis=-1) <= radius_mm).astype(np.int32)


def _write(path: Path, data: np.ndarray, affine=AFFINE, dtype=None) -> Path:
    img = nib.Nifti1Image(data, affine)
    if dtype is not None:
        img.set_data_dtype(dtype)
    nib.save(img, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inference")
    rng = np.random.default_rng(0)
    mask = _sphere()
    ct = (-60.0 + 120.0 * mask + rng.normal(0, 10, SHAPE)).astype(np.float32)
    cfg = load_profile("quick", {"data": {"patch_size": 32}, "model": TINY_MODEL})
    torch.manual_seed(0)
    hyper = HyperUNet.from_config(cfg["model"])
    ckpt = {"kind": CHECKPOINT_KIND, "model": hyper.state_dict(), "state": {}, "config": dict(cfg)}
    # trained from a user profile "mine.yaml" that has moved: one checkpoint records its evaluate
    # section (as training does), an older one does not
    mine = {**cfg, "name": "mine"}
    recorded = {**mine, "evaluate": {**cfg["evaluate"], "adapt_lr": 0.05}}
    older = {k: v for k, v in mine.items() if k != "evaluate"}
    out = {
        "ckpt": save_atomic(ckpt, root / "best.pt"),
        "ckpt_recorded": save_atomic({**ckpt, "config": recorded}, root / "recorded.pt"),
        "ckpt_older": save_atomic({**ckpt, "config": older}, root / "older.pt"),
        # int16 on disk: nibabel stores a scale factor the output header must not inherit
        "image": _write(root / "case_a.nii.gz", ct, dtype=np.int16),
        "mask": _write(root / "case_a_mask.nii.gz", mask * 2),  # label value 2: any value > 0 is the target
        "image4d": _write(root / "case_4d.nii.gz", np.stack([ct, -ct], -1)),
        "empty": _write(root / "empty.nii.gz", np.zeros(SHAPE, np.int32)),
        "other_grid": _write(root / "other.nii.gz", _sphere((40, 36, 29))),
        "junk": root / "junk.pt",
        "json": root / "config.json",
    }
    shifted = AFFINE.copy()
    shifted[:3, 3] += 5.0
    out["shifted"] = _write(root / "shifted.nii.gz", mask, affine=shifted)
    out["junk"].write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out["json"].write_text(json.dumps({"kind": MODEL_KIND}))
    out["model"] = root / "model.pt"
    assert main(["generate", "--checkpoint", str(out["ckpt"]), "--image", str(out["image"]),
                 "--mask", str(out["mask"]), "--out", str(out["model"])]) == 0
    return out


def test_generate_segment_round_trip(files, tmp_path, capsys):
    capsys.readouterr()
    pred_path = tmp_path / "sub" / "pred.nii.gz"
    assert main(["segment", "--model", str(files["model"]), "--image", str(files["image"]),
                 "--out", str(pred_path)]) == 0
    out = capsys.readouterr().out
    assert "voxels segmented" in out and " ml" in out
    pred, src = nib.load(str(pred_path)), nib.load(str(files["image"]))
    assert pred.shape == SHAPE == src.shape
    assert np.allclose(pred.affine, src.affine, atol=1e-6, rtol=0)
    assert pred.get_data_dtype() == np.uint8
    values = np.asarray(pred.dataobj)
    assert values.dtype == np.uint8 and set(np.unique(values).tolist()) <= {0, 1}

    obj = torch.load(files["model"], weights_only=True)
    assert obj["kind"] == MODEL_KIND and obj["data"]["patch_size"] == 32
    unet, meta = load_unet(files["model"])
    assert not unet.training and meta["modality"] == "CT" and meta["profile"] == "quick"
    assert set(meta["adaptation"]) >= {"support_loss_before", "support_loss_after"}
    # the quick profile's protocol: the gradient step at evaluate.adapt_lr
    assert meta["adaptation"]["adapted"] and meta["adaptation"]["lr"] == load_profile("quick")["evaluate"]["adapt_lr"]
    assert "versions" in meta["provenance"] and "commit" in meta["provenance"]
    # the inputs by content and the machine (a path may later name another file; threads change the numbers)
    assert [meta["source"][f"{k}_sha256"] for k in ("checkpoint", "image", "mask")] == \
        [sha256_file(files[k]) for k in ("ckpt", "image", "mask")]
    assert meta["provenance"]["compute"]["torch_threads"] >= 1


def test_generate_warns_about_a_support_that_is_mostly_air(files, tmp_path):
    """The CT z-score runs over the whole scan: a support padded with air far beyond the body
    makes a worse model (BENCHMARKS, "The support's field of view"), so generate warns and
    records the support's air fraction; the fixture's own support (no air) passes silently."""
    import warnings

    from hyperkit.inference.segment import SUPPORT_AIR_WARN

    meta = load_unet(files["model"])[1]
    assert float(meta["source"]["air_fraction"]) == 0.0
    ct = np.asarray(nib.load(str(files["image"])).dataobj).astype(np.float32)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1) @ AFFINE[:3, :3].T + AFFINE[:3, 3]
    ct[np.linalg.norm(ijk - np.array([10.0, -5.0, 75.0]), axis=-1) > 40.0] = -1000.0  # air beyond 40 mm
    air = float(np.mean(ct < -500))
    assert air > SUPPORT_AIR_WARN
    padded = _write(tmp_path / "air.nii.gz", ct, dtype=np.int16)
    argv = ["generate", "--checkpoint", str(files["ckpt"]), "--image", str(padded), "--mask", str(files["mask"]),
            "--out", str(tmp_path / "air.pt")]
    with pytest.warns(UserWarning, match=rf"{100 * air:.0f} % air .* crop the support to the body"):
        assert main(argv) == 0
    # on the command line: one line, in the kit's words, not Python's file:line format
    import subprocess
    import sys
    code = f"import sys; from hyperkit.cli import main; sys.exit(main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [x for x in done.stderr.splitlines() if "air" in x]
    assert len(lines) == 1 and lines[0].startswith("hyperkit: warning: ") and "UserWarning" not in done.stderr
    assert float(load_unet(tmp_path / "air.pt")[1]["source"]["air_fraction"]) == pytest.approx(air, abs=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all for the fixture's support
        assert main(["generate", "--checkpoint", str(files["ckpt"]), "--image", str(files["image"]), "--mask",
                     str(files["mask"]), "--out", str(tmp_path / "plain.pt")]) == 0


class _Bright(torch.nn.Module):
    """Stand-in U-Net: marks the voxels more than one standard deviation above the scan's mean (CT z-score > 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 1.0


def test_largest_component_keeps_one_region_of_the_prediction(files, tmp_path, monkeypatch):
    """Two bright balls, 30 and 15 mm across: the plain prediction has both, ``--largest-component`` the larger."""
    import hyperkit.inference.segment as seg_mod
    from scipy import ndimage

    load = seg_mod._load_model  # the model file's metadata, a stand-in that marks bright voxels
    monkeypatch.setattr(seg_mod, "_load_model", lambda model, device: (_Bright(), load(model, device)[1]))
    balls = _sphere(centre_mm=(10.0, -5.0, 75.0), radius_mm=15.0) + _sphere(centre_mm=(-30.0, 20.0, 100.0),
                                                                            radius_mm=7.5)
    scan = _write(tmp_path / "two_balls.nii.gz", (-60.0 + 860.0 * balls).astype(np.float32), dtype=np.int16)
    plain, largest = tmp_path / "plain.nii.gz", tmp_path / "largest.nii.gz"
    for path, extra in ((plain, []), (largest, ["--largest-component"])):
        assert main(["segment", "--model", str(files["model"]), "--image", str(scan), "--roi", "none",
                     "--out", str(path), *extra]) == 0
    a, b = (np.asarray(nib.load(str(p)).dataobj) for p in (plain, largest))
    labels, n = ndimage.label(a)
    assert n == 2  # the stand-in found both balls
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes.min() < sizes.max()
    assert not (b & ~a).any()  # a subset of the plain prediction
    assert ndimage.label(b)[1] == 1 and b.sum() == sizes.max()  # the larger ball, whole


def test_generate_is_deterministic(files, tmp_path):
    again = tmp_path / "again.pt"
    assert main(["generate", "--checkpoint", str(files["ckpt"]), "--image", str(files["image"]),
                 "--mask", str(files["mask"]), "--out", str(again)]) == 0
    a = torch.load(files["model"], weights_only=True)["state_dict"]
    b = torch.load(again, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("extra, adapted, lr", [
    ([], True, 0.05),                      # the checkpoint's recorded evaluate section
    (["--adapt-lr", "0.2"], True, 0.2),
    (["--no-adapt"], False, 0.05),
])
def test_generate_takes_the_recorded_protocol(files, tmp_path, extra, adapted, lr):
    out = tmp_path / "m.pt"
    assert main(["generate", "--checkpoint", str(files["ckpt_recorded"]), "--image", str(files["image"]),
                 "--mask", str(files["mask"]), "--out", str(out), *extra]) == 0
    ad = load_unet(out)[1]["adaptation"]
    assert (ad["adapted"], ad["lr"]) == (adapted, lr)
    assert (ad["support_loss_after"] != ad["support_loss_before"]) == adapted


def _reference_dir(files, tmp_path) -> Path:
    """A folder holding the tiny checkpoint as ``quick.pt``, to stand in for ``hyperkit/reference``."""
    ref = tmp_path / "reference"
    ref.mkdir()
    shutil.copy(files["ckpt"], ref / "quick.pt")
    return ref


def test_generate_without_checkpoint_uses_the_reference(files, tmp_path, monkeypatch, capsys):
    from hyperkit.training import reference

    ref = _reference_dir(files, tmp_path)
    monkeypatch.setattr(reference, "REFERENCE_DIR", ref)
    out = tmp_path / "m.pt"
    capsys.readouterr()
    assert main(["generate", "--image", str(files["image"]), "--mask", str(files["mask"]), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    said = f"no --checkpoint: using the kit's reference checkpoint of the quick profile ({ref / 'quick.pt'})"
    assert lines[0] == said
    assert len(lines) == 3 and lines[1].startswith("modality: CT (") and lines[2].startswith("model: ")
    meta = load_unet(out)[1]
    assert meta["source"]["checkpoint"] == str(ref / "quick.pt")
    # the same hypernetwork as --checkpoint with that file: the same weights
    a = torch.load(files["model"], weights_only=True)["state_dict"]
    b = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_generate_model_without_checkpoint_asks_reference_checkpoint(files, tmp_path, monkeypatch):
    from hyperkit.inference import generate_model
    from hyperkit.training import reference

    asked = []

    def fake(profile="quick"):
        asked.append(profile)
        return files["ckpt"]

    monkeypatch.setattr(reference, "reference_checkpoint", fake)
    out = generate_model(None, files["image"], files["mask"], tmp_path / "m.pt")
    assert asked == ["quick"] and load_unet(out)[1]["source"]["checkpoint"] == str(files["ckpt"])


@pytest.mark.parametrize("extra, words", [
    ([], ["no --checkpoint given", "reference checkpoint of profile 'quick' is missing", "quick.pt",
          "pass --checkpoint"]),
    (["--profile", "paper"], ["no --checkpoint given", "profile 'paper'", "paper.pt",
                              "hyperkit train --profile paper"]),
])
def test_generate_without_checkpoint_and_without_reference_is_one_line(files, tmp_path, monkeypatch, capsys,
                                                                       extra, words):
    from hyperkit.training import reference

    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path / "nothing")
    capsys.readouterr()
    assert main(["generate", "--image", str(files["image"]), "--mask", str(files["mask"]),
                 "--out", str(tmp_path / "m.pt"), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("hyperkit: error: ") and captured.err.count("\n") == 1, captured.err
    for w in words:
        assert w in captured.err, (w, captured.err)
    assert not (tmp_path / "m.pt").exists()


def test_4d_image_with_channel_index(files, tmp_path):
    pred = tmp_path / "pred4d.nii.gz"
    assert main(["segment", "--model", str(files["model"]), "--image", str(files["image4d"]),
                 "--channel-index", "1", "--overlap", "0", "--out", str(pred)]) == 0
    img = nib.load(str(pred))
    assert img.shape == SHAPE and np.allclose(img.affine, AFFINE, atol=1e-6, rtol=0)


# (argv with {names} of the fixture's files, words the one-line error must contain)
BAD_INPUT = [
    (["generate", "--checkpoint", "{ckpt}", "--image", "{image}", "--mask", "{other_grid}", "--out", "{tmp}/m.pt"],
     ["different grids", "case_a.nii.gz", "other.nii.gz", "(40, 36, 30)", "(40, 36, 29)"]),
    (["generate", "--checkpoint", "{ckpt}", "--image", "{image}", "--mask", "{shifted}", "--out", "{tmp}/m.pt"],
     ["different grids", "different affine"]),
    (["generate", "--checkpoint", "{ckpt}", "--image", "{image}", "--mask", "{empty}", "--out", "{tmp}/m.pt"],
     ["empty support mask", "empty.nii.gz"]),
    (["generate", "--checkpoint", "{ckpt}", "--image", "{image}", "--mask", "{mask}", "--label", "7",
      "--out", "{tmp}/m.pt"], ["empty support mask", "== 7", "[2]"]),
    (["generate", "--checkpoint", "{tmp}/nope.pt", "--image", "{image}", "--mask", "{mask}", "--out", "{tmp}/m.pt"],
     ["nope.pt", "not found"]),
    (["generate", "--checkpoint", "{junk}", "--image", "{image}", "--mask", "{mask}", "--out", "{tmp}/m.pt"],
     ["junk.pt", "not a hyperkit checkpoint (not a torch file)"]),
    (["generate", "--checkpoint", "{json}", "--image", "{image}", "--mask", "{mask}", "--out", "{tmp}/m.pt"],
     ["config.json", "not a hyperkit checkpoint (not a torch file)"]),
    (["generate", "--checkpoint", "{model}", "--image", "{image}", "--mask", "{mask}", "--out", "{tmp}/m.pt"],
     ["model.pt", "U-Net model file", "hypernetwork checkpoint"]),
    (["generate", "--checkpoint", "{ckpt}", "--profile", "paper", "--image", "{image}", "--mask", "{mask}",
      "--out", "{tmp}/m.pt"], ["trained with profile 'quick'", "not 'paper'"]),
    (["generate", "--checkpoint", "{ckpt}", "--image", "{image4d}", "--mask", "{mask}", "--out", "{tmp}/m.pt"],
     ["4D image with 2 channels", "--channel-index"]),
    (["generate", "--checkpoint", "{ckpt_older}", "--image", "{image}", "--mask", "{mask}", "--out", "{tmp}/m.pt"],
     ["no evaluate section", "'mine'", "--profile"]),
    (["generate", "--checkpoint", "{ckpt}", "--adapt-lr", "-1", "--image", "{image}", "--mask", "{mask}",
      "--out", "{tmp}/m.pt"], ["evaluate.adapt_lr must be > 0, got -1.0"]),
    (["segment", "--model", "{ckpt}", "--image", "{image}", "--out", "{tmp}/p.nii.gz"],
     ["best.pt", "hypernetwork checkpoint", "hyperkit generate"]),
    (["segment", "--model", "{junk}", "--image", "{image}", "--out", "{tmp}/p.nii.gz"],
     ["junk.pt", "not a hyperkit U-Net model file (not a torch file)"]),
    (["segment", "--model", "{tmp}/none.pt", "--image", "{image}", "--out", "{tmp}/p.nii.gz"],
     ["none.pt", "not found"]),
    (["segment", "--model", "{model}", "--image", "{image4d}", "--out", "{tmp}/p.nii.gz"],
     ["--channel-index"]),
    (["segment", "--model", "{model}", "--image", "{image4d}", "--channel-index", "5", "--out", "{tmp}/p.nii.gz"],
     ["--channel-index 5 out of range"]),
    (["segment", "--model", "{model}", "--image", "{tmp}/missing.nii.gz", "--out", "{tmp}/p.nii.gz"],
     ["missing.nii.gz", "file not found"]),
]


@pytest.mark.parametrize("argv,words", BAD_INPUT, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD_INPUT)])
def test_bad_input_is_one_readable_line(files, tmp_path, capsys, argv, words):
    names = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path)}
    capsys.readouterr()
    assert main([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hyperkit: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "p.nii.gz").exists()


def test_load_unet_weights_that_do_not_fit(files, tmp_path):
    obj = torch.load(files["model"], weights_only=True)
    obj["unet_config"] = {**obj["unet_config"], "base_width": 16}
    bad = save_atomic(obj, tmp_path / "bad.pt")
    with pytest.raises(HyperkitError, match=r"bad\.pt: the stored weights do not fit .* wrong shape"):
        load_unet(bad)
    other = save_atomic({"kind": "something/else", "weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(HyperkitError, match=r"other\.pt: not a hyperkit U-Net model file \(kind 'something/else'"):
        load_unet(other)


def test_to_input_grid_maps_the_mask_back(files):
    data = DataConfig(spacing=4.0, patch_size=16)
    case, grid = prepare_volume(files["image"], "CT", data, files["mask"])
    assert case.image.shape[0] == 1 and case.label.shape == case.image.shape[1:]
    assert grid.shape == SHAPE and np.allclose(grid.affine, AFFINE)
    back = to_input_grid(10.0 * case.label - 5.0, case.affine, grid.affine, grid.shape)
    assert back.shape == SHAPE
    assert dice(back > 0, _sphere()) > 0.9
    sliced = to_input_grid(10.0 * case.label - 5.0, case.affine, grid.affine, grid.shape,
                           slab_voxels=SHAPE[0] * SHAPE[1] * 3)
    np.testing.assert_allclose(sliced, back, atol=1e-5)  # slabs of 3 slices: the same values
    with pytest.raises(ValueError, match="slab_voxels must be >= 1, got 0"):
        to_input_grid(case.label, case.affine, grid.affine, grid.shape, slab_voxels=0)


@pytest.mark.parametrize("slab_voxels", [1 << 22, 1])  # one call, or one slice per call
def test_to_input_grid_is_exact_for_a_linear_field(files, slab_voxels):
    """World coordinates sampled on the resampled grid come back as the input grid's world coordinates,
    whether the input grid is filled in one call or slice by slice (each slab its own shifted affine)."""
    data = DataConfig(spacing=4.0, patch_size=16)
    case, grid = prepare_volume(files["image"], "CT", data)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in case.label.shape], indexing="ij"), -1).astype(np.float64)
    ijk_in = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1).astype(np.float64)
    for axis in range(3):
        field = (ijk @ case.affine[:3, :3].T + case.affine[:3, 3])[..., axis]
        want = (ijk_in @ AFFINE[:3, :3].T + AFFINE[:3, 3])[..., axis]
        got = to_input_grid(field, case.affine, grid.affine, grid.shape, slab_voxels=slab_voxels)
        inner = (slice(2, -2),) * 3  # the border is clamped, the interior is interpolated
        np.testing.assert_allclose(got[inner], want[inner], atol=1e-3)


def test_box_voxels_matches_the_coordinate_grid_on_an_oblique_affine():
    """Guards box_voxels (one world axis at a time) against the direct (X, Y, Z, 3) coordinate grid,
    on a rotated, flipped, anisotropic grid; and its refusals."""
    from hyperkit.inference.segment import box_voxels
    c, s = np.cos(0.4), np.sin(0.4)
    affine = np.array([[-2.0 * c, 3.0 * s, 0.0, 40.0], [2.0 * s, 3.0 * c, 0.5, -30.0], [0.0, 0.0, 4.0, 5.0],
                       [0.0, 0.0, 0.0, 1.0]])
    shape, box = (23, 17, 11), np.array([[-10.0, -20.0, 12.0], [25.0, 18.0, 30.0]])
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(np.float64)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    want = np.all((world >= box[0]) & (world <= box[1]), axis=-1)
    got = box_voxels(box, affine, shape)
    assert got.shape == shape and 0 < got.sum() < got.size
    np.testing.assert_array_equal(got, want)  # no voxel centre lies on a face here
    with pytest.raises(ValueError, match=r"box_mm must be \(2, 3\)"):
        box_voxels(box[0], affine, shape)
