"""``hyperkit evaluate --whole-scan``: the same U-Nets, draws and test cases as the patch
protocol, scored on whole query scans after localisation (issue 15); and the widget's whole-scan view.

A five-case MSD-layout task of small synthetic bodies (4 mm voxels, the target moved from case
to case) and a tiny untrained hypernetwork keep this to seconds.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.data.nifti import write_nifti
from hyperkit.data.sample import msd_dataset_json
from hyperkit.evaluation.protocol import read_results
from hyperkit.evaluation.whole_scan import WHOLE_FIELDS, run_whole_scan, summarize_whole_scan, whole_scan_paths
from tiny import TINY_MODEL, untrained_checkpoint

matplotlib.use("Agg")

SHAPE = (44, 38, 40)


def _case(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(i)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-88.0 + 3 * i, -76.0 - 2 * i, -80.0 + i]
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1).astype(np.float64)
    w = ijk @ affine[:3, :3].T + affine[:3, 3]
    trunk = ((w[..., 0] / 75) ** 2 + (w[..., 1] / 55) ** 2 + (w[..., 2] / 65) ** 2) <= 1
    organ = np.linalg.norm(w - np.array([25.0 + 2 * i, 8.0, 12.0 - i]), axis=-1) <= 16 + i
    other = np.linalg.norm(w - np.array([-30.0, -8.0, -20.0]), axis=-1) <= 18
    img = np.where(trunk, 40.0, -1000.0) + 60.0 * organ - 120.0 * other + rng.normal(0, 8, SHAPE)
    return img.astype(np.float32), organ.astype(np.uint8), affine


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("whole")
    data = root / "data"
    ds = data / "Task91_Blob"
    training = []
    for i in range(5):
        img, lab, aff = _case(i)
        write_nifti(ds / "imagesTr" / f"blob_{i:03d}.nii.gz", img, aff)
        write_nifti(ds / "labelsTr" / f"blob_{i:03d}.nii.gz", lab, aff)
        training.append({"image": f"./imagesTr/blob_{i:03d}.nii.gz", "label": f"./labelsTr/blob_{i:03d}.nii.gz"})
    (ds / "dataset.json").write_text(msd_dataset_json("Blob", "test", {"0": "CT"}, {"0": "background", "1": "blob"},
                                                      training))
    cfg = load_profile("quick", {"data": {"patch_size": 16}, "model": TINY_MODEL,
                                 "evaluate": {"draws": 2}})
    ckpt = untrained_checkpoint(dict(cfg), root / "best.pt")
    return {"root": root, "data": data, "ckpt": ckpt, "cache": root / "cache"}


def test_whole_scan_uses_the_patch_protocols_unets_draws_and_cases(setup, monkeypatch):
    monkeypatch.setenv("HYPERKIT_CACHE", str(setup["cache"]))
    out = setup["root"] / "eval" / "results.csv"
    assert main(["evaluate", "--checkpoint", str(setup["ckpt"]), "--data", str(setup["data"]), "--methods",
                 "hyper_unet", "--draws", "2", "--whole-scan", "--out", str(out), "--no-progress"]) == 0
    csv_path, json_path, md_path = whole_scan_paths(out)
    assert csv_path.is_file() and json_path.is_file() and "Whole-scan protocol" in md_path.read_text()
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == WHOLE_FIELDS
    patch = {(r["draw"], r["case"]): r["dsc"] for r in read_results(out) if r["method"] == "hyper_unet"}
    assert len(rows) == len(patch) > 0
    for r in rows:  # the same (draw, test case) pairs, and the same U-Net gives the same patch DSC
        assert float(r["dsc_patch"]) == pytest.approx(patch[(int(r["draw"]), r["case"])], abs=1e-5)
        for k in ("dsc_whole", "dsc_whole_post"):
            assert 0.0 <= float(r[k]) <= 1.0
        assert r["dsc_whole_noroi"] == "nan"  # the command line skips the slow no-ROI comparison
        assert r["error"] == "" and float(r["target_in_roi"]) > 0.9  # the blob was found in every query


def test_whole_scan_api_compares_with_no_roi(setup, monkeypatch):
    monkeypatch.setenv("HYPERKIT_CACHE", str(setup["cache"]))
    res = run_whole_scan(setup["ckpt"], setup["data"], setup["root"] / "api" / "results.csv", draws=1,
                         compare_none=True, progress=False)
    assert res.rows and all(0.0 <= r["dsc_whole_noroi"] <= 1.0 for r in res.rows)
    assert "| msd/Task91_Blob/blob@CT |" in res.table


def test_whole_scan_summary_and_bad_margin(setup):
    rows = [{"task": "t", "dsc_patch": 0.5, "dsc_whole": 0.4, "dsc_whole_post": 0.45, "dsc_whole_noroi": float("nan"),
             "target_in_roi": 1.0, "centre_error_mm": 10.0, "registration_seconds": 1.0,
             "segmentation_seconds": 2.0, "error": ""},
            {"task": "t", "dsc_patch": 0.3, "dsc_whole": 0.0, "dsc_whole_post": 0.0, "dsc_whole_noroi": float("nan"),
             "target_in_roi": float("nan"), "centre_error_mm": float("nan"), "registration_seconds": 1.0,
             "segmentation_seconds": 0.0, "error": "RegistrationError"}]
    s = summarize_whole_scan(rows)["t"]
    assert s["dsc_patch"] == 0.4 and s["dsc_whole"] == 0.2 and s["dsc_whole_over_patch"] == 0.5
    assert s["failures"] == 1 and s["dsc_whole_noroi"] != s["dsc_whole_noroi"]  # NaN: not measured
    with pytest.raises(ValueError, match="--margin must be a finite number of mm >= 0, got -5"):
        run_whole_scan(setup["ckpt"], setup["data"], setup["root"] / "x.csv", margin_mm=-5)


def test_widget_segments_a_whole_scan_and_shows_the_roi(setup, monkeypatch, capsys):
    from hyperkit.data.bank import TaskBank
    from hyperkit.data.layouts import discover_datasets
    from hyperkit.training.checkpoint import load_hypernet
    from hyperkit.widgets import one_shot_panel

    monkeypatch.setenv("HYPERKIT_CACHE", str(setup["cache"]))
    hyper, cfg = load_hypernet(setup["ckpt"])
    bank = TaskBank.from_datasets(discover_datasets(setup["data"]), "heldout", cfg)
    panel = one_shot_panel(hyper, bank, cfg, data_root=setup["data"])
    controls = panel.children[1].children
    controls[3].value = True  # "whole scan"
    controls[2].click()
    out = capsys.readouterr().out
    assert "whole scan blob_001: ROI" in out and "DSC" in out
