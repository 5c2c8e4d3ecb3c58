"""Mutation audit of :mod:`hyperkit.evaluation.whole_scan` and :mod:`hyperkit.training.reference`.

What the older tests left open: the whole-scan file names, what :func:`localise_and_segment` hands
on (the margin, the region, the sign of the logits), every column of one whole-scan row (its values,
its failure row, its times), the per-task summary and table cell by cell, the run record's margin and
the support the localisation starts from; for the reference checkpoint: the profile a record / model
is looked up by, what :func:`reference_check` asks of the bank and the validation, what
:func:`export_reference` writes, and which model :func:`trained_or_reference` picks.

Heavy pieces (registration, sliding windows, the bank, the validation) are replaced by recorders, so
all but one test take milliseconds; the one end-to-end run reuses the five-case blob task of
``test_whole_scan``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import hyperkit.evaluation.whole_scan as ws
from hyperkit.config import load_profile
from hyperkit.errors import HyperkitError
from hyperkit.files import save_atomic
from hyperkit.inference.localise import NoOverlapError, Registration, RegistrationError
from hyperkit.metrics import dice
from hyperkit.training import reference
from hyperkit.training.checkpoint import CHECKPOINT_KIND
from test_whole_scan import setup  # noqa: F401  (the five-case blob task: a module fixture)
from tiny import TINY_MODEL, untrained_checkpoint

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
SHAPE = (10, 10, 10)


def _reg(matrix: np.ndarray | None = None, seconds: float = 0.0) -> Registration:
    return Registration(matrix=np.eye(4) if matrix is None else matrix, metric=-0.5, volume_ratio=1.0,
                        seconds=seconds)


# ----------------------------------------------------------------------------- whole_scan: files and segmentation


def test_whole_scan_paths_sit_beside_the_results_csv(tmp_path: Path) -> None:
    got = ws.whole_scan_paths(tmp_path / "e" / "results.csv")
    assert got == tuple(tmp_path / "e" / f"results-whole-scan{s}" for s in (".csv", ".json", ".md"))


def test_localise_and_segment_grows_the_mapped_box_and_keeps_positive_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    logits = np.full(SHAPE, -1.0, dtype=np.float32)
    logits[2:4, 2:4, 2:4] = 3.0
    reg = _reg()

    def fake_predict(unet: Any, image: np.ndarray, affine: np.ndarray, box: Any, patch: int) -> tuple[Any, None]:
        calls.append((box, patch))
        return logits, None

    monkeypatch.setattr(ws, "register", lambda ref, image, affine: reg)
    monkeypatch.setattr(ws, "predict_roi", fake_predict)
    ref = SimpleNamespace(box_mm=np.array([[4.0, 4.0, 4.0], [8.0, 8.0, 8.0]]))
    image = np.zeros(SHAPE, dtype=np.float32)
    pred, box, got_reg = ws.localise_and_segment(None, ref, image, AFFINE, 16, margin_mm=2.0)
    assert got_reg is reg and pred.dtype == np.uint8
    assert np.array_equal(pred, (logits > 0).astype(np.uint8))
    assert np.allclose(box, [[2.0, 2.0, 2.0], [10.0, 10.0, 10.0]])  # grown by the margin on every side
    assert np.allclose(calls[0][0], box) and calls[0][1] == 16
    # a box far outside the scan: no overlap, nothing segmented
    far = SimpleNamespace(box_mm=np.array([[500.0, 500.0, 500.0], [510.0, 510.0, 510.0]]))
    with pytest.raises(NoOverlapError, match="no overlap after registration"):
        ws.localise_and_segment(None, far, image, AFFINE, 16, margin_mm=2.0)
    assert len(calls) == 1


# ----------------------------------------------------------------------------- whole_scan: one row


class _Clock:
    """``time.perf_counter`` stand-in: the given readings in turn."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def perf_counter(self) -> float:
        return self.readings.pop(0)


def _row_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label: a 4^3 cube at voxels 2..5; prediction: half of it plus a far blob (outside the box)."""
    lab = np.zeros(SHAPE, dtype=np.uint8)
    lab[2:6, 2:6, 2:6] = 1
    pred = np.zeros(SHAPE, dtype=np.uint8)
    pred[2:4, 2:6, 2:6] = 1
    pred[8:10, 8:10, 8:10] = 1  # a false positive outside the region: post-processing drops it
    box = np.array([[0.0, 0.0, 0.0], [8.0, 8.0, 6.0]])  # voxels 0..4 x 0..4 x 0..3: part of the target
    return lab, pred, box, np.zeros(SHAPE, dtype=np.float32)


def test_whole_row_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    lab, pred, box, img = _row_inputs()
    shift = np.eye(4)
    shift[:3, 3] = [3.0, 4.0, 0.0]
    reg = _reg(shift, seconds=4.0)
    monkeypatch.setattr(ws, "localise_and_segment", lambda *a: (pred, box, reg))
    monkeypatch.setattr(ws, "time", _Clock(10.0, 17.0))
    # the support's box = the target's box (voxel centres 2..5 -> 4..10 mm), mapped by a 5 mm shift
    ref = SimpleNamespace(box_mm=np.array([[4.0, 4.0, 4.0], [10.0, 10.0, 10.0]]))
    row = ws._whole_row(None, ref, img, lab, AFFINE, 16, 5.0, False)
    assert row["dsc_whole"] == pytest.approx(dice(pred, lab))
    post = pred.copy()
    post[8:10, 8:10, 8:10] = 0
    assert row["dsc_whole_post"] == pytest.approx(dice(post, lab)) and row["dsc_whole_post"] > row["dsc_whole"]
    roi = ws.box_voxels(box, AFFINE, SHAPE)
    assert row["target_in_roi"] == pytest.approx((lab.astype(bool) & roi).sum() / lab.sum())
    assert 0 < row["target_in_roi"] < 1
    assert row["centre_error_mm"] == pytest.approx(5.0)
    assert row["registration_seconds"] == 4.0 and row["segmentation_seconds"] == pytest.approx(3.0)
    assert row["dsc_whole_noroi"] != row["dsc_whole_noroi"] and "error" not in row  # NaN: not compared


def test_whole_row_compares_with_no_roi(monkeypatch: pytest.MonkeyPatch) -> None:
    lab, pred, box, img = _row_inputs()
    logits = np.where(lab > 0, 2.0, -2.0).astype(np.float32)
    logits[2, 2, 2] = -2.0
    seen: list[Any] = []

    def fake_predict(unet: Any, image: np.ndarray, affine: np.ndarray, b: Any, patch: int) -> tuple[Any, None]:
        seen.append(b)
        return logits, None

    monkeypatch.setattr(ws, "predict_roi", fake_predict)
    monkeypatch.setattr(ws, "localise_and_segment", lambda *a: (pred, box, _reg()))
    ref = SimpleNamespace(box_mm=np.array([[4.0, 4.0, 4.0], [10.0, 10.0, 10.0]]))
    row = ws._whole_row(None, ref, img, lab, AFFINE, 16, 5.0, True)
    assert seen == [None] and row["dsc_whole_noroi"] == pytest.approx(dice(logits > 0, lab))
    assert row["dsc_whole_noroi"] > 0.9


def test_whole_row_records_a_localisation_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    lab, _, _, img = _row_inputs()

    def fail(*a: Any) -> None:
        raise RegistrationError("did not converge")

    monkeypatch.setattr(ws, "localise_and_segment", fail)
    row = ws._whole_row(None, SimpleNamespace(), img, lab, AFFINE, 16, 5.0, False)
    assert row["error"] == "RegistrationError"
    assert row["dsc_whole"] == 0.0 and row["dsc_whole_post"] == 0.0 and row["segmentation_seconds"] == 0.0
    assert all(row[k] != row[k] for k in ("target_in_roi", "centre_error_mm", "dsc_whole_noroi"))
    assert row["registration_seconds"] >= 0.0


# ----------------------------------------------------------------------------- whole_scan: summary and table


def _summary_rows() -> list[dict[str, Any]]:
    nan = float("nan")
    base = {"task": "t", "dsc_whole_noroi": nan, "registration_seconds": 1.0, "segmentation_seconds": 2.0}
    return [{**base, "dsc_patch": 0.6, "dsc_whole": 0.3, "dsc_whole_post": 0.6, "target_in_roi": 1.0,
             "centre_error_mm": 2.0, "error": ""},
            {**base, "dsc_patch": 0.2, "dsc_whole": 0.2, "dsc_whole_post": 0.3, "target_in_roi": 0.2,
             "centre_error_mm": 3.0, "registration_seconds": 10.0, "error": ""},
            {**base, "dsc_patch": 0.2, "dsc_whole": 0.0, "dsc_whole_post": 0.0, "target_in_roi": nan,
             "centre_error_mm": 100.0, "error": "NoOverlapError"},
            {**base, "dsc_patch": 0.0, "dsc_whole": 0.1, "dsc_whole_post": 0.0, "target_in_roi": 0.3,
             "centre_error_mm": nan, "error": ""},
            {**base, "task": "z", "dsc_patch": 0.0, "dsc_whole": 0.0, "dsc_whole_post": 0.0, "target_in_roi": nan,
             "centre_error_mm": nan, "error": ""}]


def test_summary_means_medians_failures_and_ratios() -> None:
    out = ws.summarize_whole_scan(_summary_rows())
    assert list(out) == ["t", "z"]
    s = out["t"]
    assert s["pairs"] == 4 and s["failures"] == 1
    assert (s["dsc_patch"], s["dsc_whole"], s["dsc_whole_post"]) == (0.25, 0.15, 0.225)
    assert s["target_in_roi_median"] == 0.3  # NaN left out; the median, not the mean (0.5)
    assert s["centre_error_mm_median"] == 3.0  # NaN left out; the median, not the mean (35)
    assert s["registration_seconds_median"] == 1.0 and s["segmentation_seconds_median"] == 2.0
    assert s["dsc_whole_over_patch"] == 0.6 and s["dsc_whole_post_over_patch"] == 0.9
    z = out["z"]  # a patch DSC of 0: no ratio, and no division by zero
    assert z["dsc_whole_over_patch"] != z["dsc_whole_over_patch"]
    assert z["target_in_roi_median"] != z["target_in_roi_median"] and z["failures"] == 0


def test_table_cells_in_column_order() -> None:
    table = ws.whole_scan_table(ws.summarize_whole_scan(_summary_rows()), 7.5)
    lines = table.splitlines()
    assert "margin 7.5 mm" in lines[0]
    assert lines[4] == ("| t | 4 | 0.250 | 0.150 | 0.60 | 0.225 | 0.90 | — | 0.30 | 3 | 1.0 | 2.0 |")
    assert lines[5].startswith("| z | 1 | 0.000 | 0.000 | — | 0.000 | — | — | — | — |")


# ----------------------------------------------------------------------------- whole_scan: one real run


def test_run_records_the_margin_and_localises_from_the_support(setup: dict[str, Path],  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERKIT_CACHE", str(setup["cache"]))
    images: dict[str, np.ndarray] = {}
    real_pre, real_ref = ws.preprocess_case, ws.make_reference
    refs: list[np.ndarray] = []

    def pre(ds: Any, cid: str, *a: Any) -> Any:
        c = real_pre(ds, cid, *a)
        images[cid] = np.array(c.image[0])
        return c

    def make_ref(img: np.ndarray, *a: Any) -> Any:
        refs.append(np.array(img))
        return real_ref(img, *a)

    real_gen = ws.torch_generator
    keys: list[tuple[Any, ...]] = []

    def gen(*key: Any) -> torch.Generator:
        keys.append(key)
        return real_gen(*key)

    monkeypatch.setattr(ws, "preprocess_case", pre)
    monkeypatch.setattr(ws, "make_reference", make_ref)
    monkeypatch.setattr(ws, "torch_generator", gen)
    out = setup["root"] / "audit" / "results.csv"
    res = ws.run_whole_scan(setup["ckpt"], setup["data"], out, draws=1, seed=3, margin_mm=7.5, progress=False)
    support, task = res.rows[0]["support"], res.rows[0]["task"]
    assert keys == [(3, "draw", task, 0)]  # the key the patch protocol generates draw 0 with
    assert len(refs) == 1 and np.array_equal(refs[0], images[support])
    assert all(r["case"] != support for r in res.rows)
    with open(res.csv_path, newline="") as fh:  # floats written to 6 decimals
        written = list(csv.DictReader(fh))
    assert len(written) == len(res.rows)
    for w, r in zip(written, res.rows):
        assert float(w["centre_error_mm"]) == pytest.approx(r["centre_error_mm"], abs=1e-6)
        assert float(w["target_in_roi"]) == pytest.approx(r["target_in_roi"], abs=1e-6)
    record = json.loads(ws.whole_scan_paths(out)[1].read_text())
    assert record["margin_mm"] == 7.5 and "margin 7.5 mm" in res.table


def test_bad_margin_fails_before_anything_is_loaded_or_replaced(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import hyperkit.training.checkpoint as checkpoint

    def load(*a: Any, **k: Any) -> None:
        raise AssertionError("the checkpoint was loaded before the margin was checked")

    monkeypatch.setattr(checkpoint, "load_hypernet", load)
    csv_path = ws.whole_scan_paths(tmp_path / "results.csv")[0]
    csv_path.write_text("earlier results\n")
    with pytest.raises(ValueError, match="--margin must be a finite number of mm >= 0, got -1"):
        ws.run_whole_scan(tmp_path / "best.pt", tmp_path, tmp_path / "results.csv", margin_mm=-1.0)
    assert csv_path.read_text() == "earlier results\n"


# ----------------------------------------------------------------------------- reference


class _Recorder:
    def __init__(self, result: Any) -> None:
        self.result, self.calls = result, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.result


@pytest.fixture
def fake_reference_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A reference folder with a (dummy) checkpoint and record for each built-in profile."""
    ref = tmp_path / "reference"
    ref.mkdir()
    for name in ("quick", "paper"):
        (ref / f"{name}.pt").write_bytes(b"")
        (ref / f"{name}.json").write_text(json.dumps({"profile": name}))
    monkeypatch.setattr(reference, "REFERENCE_DIR", ref)
    return ref


def test_record_and_model_are_those_of_the_profile_asked(fake_reference_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert reference.reference_checkpoint("paper") == fake_reference_dir / "paper.pt"
    assert reference.reference_record("paper") == {"profile": "paper"}
    load = _Recorder(("model", {"cfg": 1}))
    monkeypatch.setattr(reference, "load_hypernet", load)
    assert reference.load_reference("paper", map_location="meta") == ("model", {"cfg": 1})
    assert load.calls == [((fake_reference_dir / "paper.pt",), {"map_location": "meta"})]
    (fake_reference_dir / "paper.pt").unlink()
    with pytest.raises(HyperkitError, match="no reference checkpoint for profile 'paper'"):
        reference.reference_record("paper")


def test_reference_check_asks_the_validation_tasks_with_every_case_a_support(monkeypatch: pytest.MonkeyPatch) -> None:
    import hyperkit.data.bank as bank_mod
    import hyperkit.data.layouts as layouts
    import hyperkit.training.loop as loop

    bank = SimpleNamespace(case_ids={"a": ["1", "2", "3"], "b": ["1", "2"]})
    from_datasets = _Recorder(bank)
    validation = _Recorder({"dice": 0.42, "loss": 9.0})
    monkeypatch.setattr(layouts, "discover_datasets", _Recorder(["ds"]))
    monkeypatch.setattr(bank_mod.TaskBank, "from_datasets", from_datasets)
    monkeypatch.setattr(loop, "one_shot_validation", validation)
    cfg = {"train": {"val_splits": ["v"]}}
    assert reference.reference_check("model", cfg, "root") == 0.42
    assert from_datasets.calls == [((["ds"], "val", cfg), {"case_splits": ["v"], "root": "root"})]
    assert validation.calls == [(("model", bank, 2, torch.device("cpu")), {"n_supports": 3})]


def test_export_reference_writes_half_weights_state_and_record(tmp_path: Path) -> None:
    cfg = {"model": TINY_MODEL}
    model = {"w": torch.ones(3), "n": torch.tensor([7], dtype=torch.int64)}
    run = tmp_path / "run"
    save_atomic({"kind": CHECKPOINT_KIND, "model": model, "state": {"epoch": 3}, "config": cfg}, run / "best.pt")
    out = reference.export_reference(run, tmp_path / "ref" / "quick.pt", {"check": {"dice": 0.5}})
    assert out == tmp_path / "ref" / "quick.pt"
    obj = torch.load(out, weights_only=True)
    assert obj["kind"] == CHECKPOINT_KIND and obj["state"] == {"epoch": 3} and obj["config"] == cfg
    assert obj["model"]["w"].dtype == torch.float16 and obj["model"]["n"].dtype == torch.int64
    assert json.loads((tmp_path / "ref" / "quick.json").read_text()) == {"check": {"dice": 0.5}}


def test_trained_or_reference_prefers_the_runs_best(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _Recorder(("reference model", {"ref": True}))
    monkeypatch.setattr(reference, "load_reference", ref)
    run = tmp_path / "myrun"
    run.mkdir()
    cfg = dict(load_profile("quick", {"model": TINY_MODEL}))
    untrained_checkpoint(cfg, run / "last.pt")  # only a last.pt: not a finished run's best
    assert reference.trained_or_reference(run, "paper") == ("reference model", {"ref": True},
                                                             "the kit's reference checkpoint of the paper profile")
    assert ref.calls == [(("paper",), {})]
    untrained_checkpoint(cfg, run / "best.pt")
    model, got_cfg, text = reference.trained_or_reference(run, "paper")
    assert text == "your run's best.pt (myrun)" and got_cfg["model"] == cfg["model"] and not model.training
    assert len(ref.calls) == 1
