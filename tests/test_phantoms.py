"""The procedural phantoms: layouts, determinism, readers, geometry, CLI behaviour, difficulty helpers.

Tiny cohorts (2 CT subjects, 2 cases per MSD task, 6 mm voxels) keep the file fast.
"""

from __future__ import annotations

import csv
import filecmp
import json
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from hyperkit.cli import main
from hyperkit.data.identity import data_fingerprint
from hyperkit.data.layouts import discover_datasets
from hyperkit.phantoms import MSD_TASKS, TOTALSEG, TOTALSEG_STRUCTURES, ensure_phantoms, generate_phantoms
from hyperkit.phantoms.difficulty import best_threshold_dice, difficulty_table, mask_copy_dice
from hyperkit.phantoms import writer
from hyperkit.phantoms.writer import GENERATOR, MANIFEST

TINY = dict(subjects=2, cases=2, seed=0, spacing=6.0)
# held-out targets (MSD) and their usual TotalSegmentator names: none may be a training label
FORBIDDEN = ("liver", "spleen", "pancreas", "colon", "hepatic", "tumour", "tumor", "cancer", "lung_nodule",
             "prostate", "atrium", "atrial", "hippocampus", "brain", "edema")
VALIDATION = ("stomach", "esophagus", "gallbladder", "urinary_bladder")


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phantoms") / "a"
    run = generate_phantoms(root, **TINY, workers=1, progress=False)
    assert not run.reused and run.files == 2 * (1 + len(TOTALSEG_STRUCTURES)) + 2 * 2 * len(MSD_TASKS)
    return root


def test_same_seed_gives_byte_identical_files(cohort: Path, tmp_path: Path) -> None:
    again = generate_phantoms(tmp_path / "b", **TINY, workers=2, progress=False).root
    names = _files(cohort)
    assert names == _files(again)
    assert any(str(n).endswith(".nii.gz") for n in names)
    _, mismatch, errors = filecmp.cmpfiles(cohort, again, [str(n) for n in names], shallow=False)
    assert mismatch == [] and errors == []


def test_a_case_depends_on_its_id_and_seed_only(cohort: Path, tmp_path: Path) -> None:
    small = generate_phantoms(tmp_path / "one", subjects=1, cases=1, seed=0, spacing=6.0, workers=1,
                              progress=False).root
    for rel in ("TotalSegmentator/s0000/ct.nii.gz", "Task09_Spleen/imagesTr/spleen_000.nii.gz",
                "Task01_BrainTumour/labelsTr/BRATS_000.nii.gz"):
        assert (small / rel).read_bytes() == (cohort / rel).read_bytes(), rel
    other = generate_phantoms(tmp_path / "seed1", subjects=1, cases=1, seed=1, spacing=6.0, workers=1,
                              progress=False).root
    assert (other / "TotalSegmentator/s0000/ct.nii.gz").read_bytes() != (cohort / "TotalSegmentator/s0000/ct.nii.gz"
                                                                       ).read_bytes()


@pytest.mark.parametrize("a, b", [
    ("TotalSegmentator/s0000/ct.nii.gz", "TotalSegmentator/s0001/ct.nii.gz"),
    ("Task03_Liver/labelsTr/liver_000.nii.gz", "Task03_Liver/labelsTr/liver_001.nii.gz"),
    ("Task05_Prostate/imagesTr/prostate_000.nii.gz", "Task05_Prostate/imagesTr/prostate_001.nii.gz"),
])
def test_subjects_differ(cohort: Path, a: str, b: str) -> None:
    x = np.asarray(nib.load(cohort / a).dataobj)
    y = np.asarray(nib.load(cohort / b).dataobj)
    assert x.shape != y.shape or not np.array_equal(x, y)


def test_readers_accept_every_dataset_and_every_structure_is_a_task(cohort: Path) -> None:
    datasets = {d.name: d for d in discover_datasets(cohort)}
    assert set(datasets) == {TOTALSEG, *(t.folder for t in MSD_TASKS)}
    ts = datasets[TOTALSEG]
    assert ts.layout == "totalseg" and ts.channels == ["CT"]
    assert {t.class_name for t in ts.tasks()} == set(TOTALSEG_STRUCTURES)
    for task in MSD_TASKS:
        ds = datasets[task.folder]
        assert ds.layout == "msd" and ds.channels == task.channels
        names = {v for k, v in task.labels.items() if k != "0"}
        assert {t.class_name for t in ds.tasks()} == names
        assert len(ds.tasks()) == len(names) * len(task.channels)
        assert len(ds.cases) == TINY["cases"]
    for ds in datasets.values():
        for case in ds.cases:
            data = ds.load_case(case)
            assert data.image.shape[0] == len(ds.channels)
            assert data.label.shape == data.image.shape[1:]
            assert np.allclose(data.spacing, TINY["spacing"])


def test_training_cohort_labels_no_held_out_target(cohort: Path) -> None:
    assert len(TOTALSEG_STRUCTURES) >= 30 and len(set(TOTALSEG_STRUCTURES)) == len(TOTALSEG_STRUCTURES)
    assert set(VALIDATION) <= set(TOTALSEG_STRUCTURES)
    for name in TOTALSEG_STRUCTURES:
        assert not any(word in name for word in FORBIDDEN), name
    for subject in sorted((cohort / TOTALSEG).glob("s*")):
        files = sorted(p.name[: -len(".nii.gz")] for p in (subject / "segmentations").iterdir())
        assert files == sorted(TOTALSEG_STRUCTURES), subject  # every structure, every subject


def test_totalseg_files_and_meta(cohort: Path) -> None:
    text = (cohort / TOTALSEG / "meta.csv").read_text()
    assert text.splitlines()[0] == "image_id;age;gender;institute;study_type;split"
    rows = list(csv.DictReader(text.splitlines(), delimiter=";"))
    assert [r["image_id"] for r in rows] == ["s0000", "s0001"]
    assert all(r["split"] in {"train", "val", "test"} and r["gender"] in {"m", "f"} for r in rows)
    ct = nib.load(cohort / TOTALSEG / "s0000" / "ct.nii.gz")
    assert ct.get_data_dtype() == np.int16
    for name in ("stomach", "vertebrae_L3", "rib_left_7"):
        seg = nib.load(cohort / TOTALSEG / "s0000" / "segmentations" / f"{name}.nii.gz")
        assert seg.get_data_dtype() == np.uint8
        assert seg.shape == ct.shape and np.array_equal(seg.affine, ct.affine)
        assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1}


@pytest.mark.parametrize("task", MSD_TASKS, ids=lambda t: t.folder)
def test_msd_layout_and_geometry(cohort: Path, task) -> None:
    meta = json.loads((cohort / task.folder / "dataset.json").read_text())
    for key in ("name", "description", "tensorImageSize", "modality", "labels", "numTraining", "numTest",
                "training", "test"):
        assert key in meta, key
    assert meta["modality"] == task.modality and meta["labels"] == task.labels
    assert meta["tensorImageSize"] == ("4D" if len(task.modality) > 1 else "3D")
    assert meta["numTraining"] == len(meta["training"]) == TINY["cases"] and meta["test"] == []
    for entry in meta["training"]:
        img = nib.load(cohort / task.folder / entry["image"])
        lab = nib.load(cohort / task.folder / entry["label"])
        assert img.shape[:3] == lab.shape and len(lab.shape) == 3
        assert img.ndim == (4 if len(task.modality) > 1 else 3)
        if img.ndim == 4:
            assert img.shape[3] == len(task.modality)
        assert np.array_equal(img.affine, lab.affine)
        assert np.allclose(np.abs(np.diag(img.affine)[:3]), TINY["spacing"])
        assert lab.get_data_dtype() == np.uint8
        values = set(np.unique(np.asarray(lab.dataobj)).tolist())
        assert values <= {int(k) for k in task.labels}


@pytest.mark.parametrize("rel, structure_value, side", [
    ("Task09_Spleen/labelsTr/spleen_000.nii.gz", 1, -1),  # spleen on the patient's left (RAS x < 0)
    ("Task03_Liver/labelsTr/liver_000.nii.gz", 1, +1),  # liver on the right; this task is stored flipped
])
def test_world_orientation_is_anatomical(cohort: Path, rel: str, structure_value: int, side: int) -> None:
    img = nib.load(cohort / rel)
    idx = np.argwhere(np.asarray(img.dataobj) == structure_value)
    centre = img.affine @ np.r_[idx.mean(0), 1.0]
    assert np.sign(centre[0]) == side


def test_cli_writes_once_reuses_and_refuses_other_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ph"
    base = ["phantoms", "--out", str(out), "--subjects", "1", "--cases", "1", "--spacing", "8", "--quiet"]
    assert main(base) == 0
    assert "wrote" in capsys.readouterr().out
    stamp = (out / "Task09_Spleen/imagesTr/spleen_000.nii.gz").stat().st_mtime_ns
    assert main(base) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "Task09_Spleen/imagesTr/spleen_000.nii.gz").stat().st_mtime_ns == stamp
    assert main(base[:-1] + ["--seed", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hyperkit: error:") and "--force" in err and len(err.strip().splitlines()) == 1
    assert main(base[:-1] + ["--seed", "3", "--force", "--quiet"]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["arguments"]["seed"] == 3
    assert ensure_phantoms(out, subjects=1, cases=1, seed=3, spacing=8.0) == out
    # same arguments, but made by other generator code (edited or upgraded kit): regenerated, not reused
    (out / GENERATOR).write_text("0" * 16 + "\n")
    assert main(base[:-1] + ["--seed", "3", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out


def test_regenerated_equal_bytes_keep_the_data_fingerprint_other_bytes_change_it(
        cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored evaluations are compared on the data fingerprint. Other generator code regenerates the folder;
    when it writes the same bytes the fingerprint stays, when it changes one byte (same file sizes, which is
    all the fingerprint reads of a volume) the fingerprint changes, through the manifest's content digest."""
    root = tmp_path / "ph"
    shutil.copytree(cohort, root)
    base = data_fingerprint(root)
    (root / GENERATOR).write_text("0" * 16 + "\n")
    assert not generate_phantoms(root, **TINY, workers=1, progress=False).reused
    assert data_fingerprint(root) == base and _files(root) == _files(cohort)
    real = writer._make

    def one_byte_off(job: tuple[str, int], *rest: Any) -> Any:
        made = real(job, *rest)
        if job == (TOTALSEG, 0):
            ct = next((root / TOTALSEG).glob("*/ct.nii.gz"))
            data = bytearray(ct.read_bytes())
            data[-1] ^= 1
            ct.write_bytes(bytes(data))
        return made

    monkeypatch.setattr(writer, "_make", one_byte_off)
    (root / GENERATOR).write_text("0" * 16 + "\n")
    assert not generate_phantoms(root, **TINY, workers=1, progress=False).reused
    assert [(root / f).stat().st_size for f in _files(cohort) if f.name != MANIFEST] == \
        [(cohort / f).stat().st_size for f in _files(cohort) if f.name != MANIFEST]
    assert data_fingerprint(root) != base


def test_cli_refuses_a_foreign_non_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["phantoms", "--out", str(tmp_path), "--subjects", "1", "--cases", "1", "--spacing", "8",
                 "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("flag, value, words", [
    ("--subjects", "-1", "subjects must be a positive integer"),
    ("--cases", "0", "cases must be a positive integer"),
    ("--spacing", "0", "spacing must be > 0"),
    ("--spacing", "-2.5", "spacing must be > 0"),
    ("--seed", "-4", "seed must be a non-negative integer"),
])
def test_cli_bad_arguments_exit_2_with_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture, flag: str,
                                                      value: str, words: str) -> None:
    assert main(["phantoms", "--out", str(tmp_path / "x"), flag, value, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hyperkit: error:") and words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_difficulty_helpers() -> None:
    a = np.zeros((8, 8, 8), bool)
    a[2:6, 2:6, 2:6] = True
    b = np.roll(a, 2, axis=0)
    assert mask_copy_dice([a, a, a]) == pytest.approx(1.0)
    assert mask_copy_dice([a, b]) == pytest.approx(0.5)
    img = np.where(a, 5.0, 0.0) + np.linspace(0, 0.1, a.size).reshape(a.shape)
    dice, (lo, hi) = best_threshold_dice([img], [a])
    assert dice > 0.95 and 0.1 < lo < hi  # bounds are 2 % quantiles: nearly exact
    noise = np.random.default_rng(0).normal(size=a.shape)
    assert best_threshold_dice([noise], [a])[0] < 0.6


def test_difficulty_table_runs_on_the_kit_preprocessing(cohort: Path, tmp_path: Path) -> None:
    rows = difficulty_table(cohort, "quick", cache_dir=tmp_path / "cache")
    ids = {r.task_id for r in rows}
    assert "msd/Task09_Spleen/spleen@CT" in ids and "msd/Task01_BrainTumour/edema@FLAIR" in ids
    for r in rows:
        assert 0 <= r.threshold_dice <= 1 and r.cases <= TINY["cases"]
        if r.cases >= 2:
            assert 0 <= r.copy_dice <= 1


def test_cli_warns_when_too_few_subjects_for_validation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Subjects s0008 (val) and s0009 (test) are the first validation cases: fewer than 10 subjects left
    `hyperkit train` to fail later with "no val task"; the CLI says so (one line on stderr) and --help the minimum."""
    from hyperkit.phantoms.cli import min_subjects
    from hyperkit.phantoms.cohorts import split_of

    assert min_subjects() == 10 and [split_of(i) for i in (7, 8, 9)] == ["train", "val", "test"]
    assert main(["phantoms", "--out", str(tmp_path / "p"), "--subjects", "9", "--cases", "1", "--spacing", "8",
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err == ("hyperkit: warning: --subjects 9 gives 1 val/test subject(s) (s0008, s0018, ... are val; s0009, "
                   "s0019, ... test) and `hyperkit train` validates on 2: use --subjects 10 or more\n")
    with pytest.raises(SystemExit):
        main(["phantoms", "--help"])
    assert "needs at least 10" in " ".join(capsys.readouterr().out.split())
