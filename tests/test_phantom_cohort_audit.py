"""Mutation audit of the phantom cohorts: MRI synthesis, the head, the organ tables, the difficulty helpers, the CLI.

tests/test_phantom_hashes.py pins one case per dataset; these tests cover what that cohort never reaches: the
other branches of the case makers (two lung tumours, a prostate lesion, a non-enhancing glioma, the right
hippocampus, female subjects and the other study types), the options of :func:`mri_image` and :class:`Head`
that the cohort does not use, and the edge cases of the difficulty helpers and the ``phantoms`` command.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from hyperkit.cli import main
from hyperkit.phantoms import organs
from hyperkit.phantoms.cohorts import MSD_BY_FOLDER, Case, case_rng, msd_case, split_of, totalseg_subject
from hyperkit.phantoms.difficulty import best_threshold_dice, difficulty_table, mask_copy_dice, task_difficulty
from hyperkit.phantoms.mri import Head, mri_image
from hyperkit.phantoms.shapes import Canvas, Grid
from test_phantom_hashes import add_arrays

SPACING = 12.0
#: (dataset, index) -> sha256 (first 16 hex digits) of a case at seed 0, 12 mm; each case takes a branch
#: that the pinned cohort of tests/test_phantom_hashes.py (index 0 only) does not.
EXTRA_DIGESTS: dict[tuple[str, int], str] = {
    ("TotalSegmentator", 4): "b12bbbaa8af5b037",    # female, ct thorax-abdomen
    ("TotalSegmentator", 5): "e230f3898b5c2895",    # male, ct abdomen-pelvis
    ("Task01_BrainTumour", 1): "05052d1a977fa592",  # glioma without an enhancing rim
    ("Task04_Hippocampus", 4): "8989508112cf909f",  # the right hippocampus
    ("Task05_Prostate", 1): "bc1d6e0aed9de84a",     # with a peripheral-zone lesion
    ("Task06_Lung", 1): "4941ca2f94879943",         # two lung tumours
}


def _digest(case: Case) -> str:
    h = hashlib.sha256()
    add_arrays(h, (case.image, case.labels, case.grid.affine))
    h.update(repr(sorted(case.meta.items())).encode())
    return h.hexdigest()[:16]


def _case(dataset: str, index: int) -> Case:
    if dataset == "TotalSegmentator":
        return totalseg_subject(0, index, SPACING)
    return msd_case(dataset, 0, index, SPACING)


def extra_digests() -> dict[tuple[str, int], str]:
    """The digests of :data:`EXTRA_DIGESTS`' cases as the generator makes them now."""
    return {key: _digest(_case(*key)) for key in EXTRA_DIGESTS}


@pytest.mark.parametrize("key", list(EXTRA_DIGESTS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_branch_cases_are_unchanged(key: tuple[str, int]) -> None:
    """Cases off the pinned cohort's path keep their bytes (a lung case with two tumours, a lesion, ...)."""
    assert _digest(_case(*key)) == EXTRA_DIGESTS[key]


# --- mri.py ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def head_canvas() -> Canvas:
    head = Head(np.random.default_rng(0), tumour=True)
    return head.render(Canvas(Grid.around(-head.radii, head.radii, SPACING)))


def test_mri_image_uses_the_given_field_and_the_default_bias(head_canvas: Canvas) -> None:
    """A shared unit bias field multiplies the signal by ``exp(bias * field)`` (default bias 0.2)."""
    shape = head_canvas.parts.shape
    flat = np.zeros(shape, np.float32)
    a = mri_image(head_canvas, np.random.default_rng(1), "T1w", noise=0.0, field=flat, texture=flat)
    b = mri_image(head_canvas, np.random.default_rng(1), "T1w", noise=0.0, field=flat + 1.0, texture=flat)
    assert a.dtype == np.float32 and a.shape == shape and a.max() > 0
    np.testing.assert_allclose(b, a * math.exp(0.2), rtol=1e-4, atol=1e-3)


def test_mri_image_uses_the_given_texture_and_adds_noise_by_default(head_canvas: Canvas) -> None:
    """Without texture, bias, blur and noise every voxel of one tissue has one value; the default noise is not 0."""
    flat = np.zeros(head_canvas.parts.shape, np.float32)
    kw = dict(field=flat, texture=flat, blur=0.0)
    clean = mri_image(head_canvas, np.random.default_rng(2), "T1w", noise=0.0, **kw)
    for pid in np.unique(head_canvas.parts):
        values = clean[head_canvas.parts == pid]
        assert np.ptp(values) <= 1e-3 * max(1.0, float(values.max())), pid
    noisy = mri_image(head_canvas, np.random.default_rng(2), "T1w", **kw)
    assert not np.allclose(noisy, clean, atol=1.0)


def test_a_head_has_no_glioma_unless_asked_and_about_one_lesion_by_default() -> None:
    """``tumour`` defaults to False; ``lesions`` is the mean number of lesions (default 1)."""
    heads = [Head(np.random.default_rng(s)) for s in range(200)]
    assert all(h.tumour is None and "tumour" not in h.centres for h in heads)
    assert 0.75 < np.mean([len(h.lesions) for h in heads]) < 1.25
    assert {"hippocampus_left", "hippocampus_right"} <= set(heads[0].centres)
    assert heads[0].centres["hippocampus_right"][0] > 0 > heads[0].centres["hippocampus_left"][0]  # RAS+


def test_gliomas_lie_in_either_hemisphere_inside_the_brain_and_may_lack_an_enhancing_rim() -> None:
    """The glioma centre is inside the brain, on either side; some gliomas have no enhancing rim."""
    heads = [Head(np.random.default_rng(s), tumour=True) for s in range(60)]
    centres = np.array([h.centres["tumour"] for h in heads])
    assert all(bool(h.brain.contains(c, 0.7)[0]) for h, c in zip(heads, centres))
    assert (centres[:, 0] > 0).any() and (centres[:, 0] < 0).any()
    enhancing = [h.tumour[2] for h in heads]
    assert any(enhancing) and not all(enhancing)


def test_a_glioma_without_rim_is_labelled_non_enhancing() -> None:
    """BraTS labels: a core without an enhancing rim is label 2 and there is no label 3."""
    plain = [i for i in range(10) if not Head(case_rng(0, "Task01_BrainTumour", i), tumour=True, lesions=1.5).tumour[2]]
    assert plain
    labels = msd_case("Task01_BrainTumour", 0, plain[0], 6.0).labels
    assert 2 in labels and 3 not in labels and 1 in labels


# --- cohorts.py ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index, split", [(0, "train"), (7, "train"), (8, "val"), (9, "test"), (10, "train"),
                                          (18, "val"), (29, "test")])
def test_split_of(index: int, split: str) -> None:
    """Every 10th subject (index 8, 18, ...) is val, the next one test, the rest train."""
    assert split_of(index) == split


def test_totalseg_meta_names_the_subject_and_its_split() -> None:
    """A subject's meta: ``sNNNN`` id, its split, sex, one of eight institutes and a known study type."""
    case = totalseg_subject(0, 9, SPACING)
    assert case.meta["image_id"] == "s0009" and case.meta["split"] == "test"
    assert case.meta["gender"] in {"m", "f"} and case.meta["institute"] in set("ABCDEFGH")
    assert case.meta["study_type"] in {"ct thorax-abdomen-pelvis", "ct abdomen-pelvis", "ct thorax-abdomen"}
    assert case.image.dtype == np.int16 and case.labels.shape == case.image.shape == case.grid.shape


def test_a_case_has_empty_meta_by_default() -> None:
    grid = Grid((1, 1, 1), 1.0, (0.0, 0.0, 0.0))
    assert Case(np.zeros((1, 1, 1)), np.zeros((1, 1, 1), np.uint8), grid).meta == {}


def test_msd_case_accepts_a_folder_name() -> None:
    """``msd_case`` takes the task or its folder name, with the same result."""
    a = msd_case("Task09_Spleen", 0, 1, SPACING)
    b = msd_case(MSD_BY_FOLDER["Task09_Spleen"], 0, 1, SPACING)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)


def test_hippocampus_crops_come_from_both_sides_and_hold_both_labels() -> None:
    """Each crop holds one hippocampus (anterior and posterior), of either hemisphere."""
    xs = []
    for i in range(8):
        case = msd_case("Task04_Hippocampus", 0, i, 4.0)
        assert {1, 2} <= set(np.unique(case.labels).tolist()), i
        xs.append((case.grid.affine @ np.r_[(np.array(case.grid.shape) - 1) / 2, 1.0])[0])
    assert min(xs) < 0 < max(xs)


def test_lung_cases_keep_their_tumour_in_the_field_of_view() -> None:
    """Every lung case shows its cancer (label 1)."""
    for i in range(6):
        assert (msd_case("Task06_Lung", 0, i, 8.0).labels == 1).any(), i


# --- organs.py -----------------------------------------------------------------------------------------------------


def test_every_organ_table_is_frozen() -> None:
    """The parameter tables are immutable: a subject cannot change the next one's anatomy."""
    tables = [v for v in vars(organs).values() if dataclasses.is_dataclass(v) and not isinstance(v, type)]
    assert len(tables) >= 25
    for table in tables:
        field = dataclasses.fields(table)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(table, field, 0)


# --- difficulty.py -------------------------------------------------------------------------------------------------


def test_best_threshold_uses_two_percent_quantiles_by_default() -> None:
    """A target of the brightest 2 % is found exactly with the default 2 % step."""
    img = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    mask = img >= 980
    dice, (lo, hi) = best_threshold_dice([img], [mask])
    assert dice == pytest.approx(1.0) and lo == pytest.approx(980.0, abs=1.0)


def test_best_threshold_with_empty_masks_is_a_finite_proper_interval() -> None:
    """Cases without target score 0 (not NaN) and the interval always has ``lo < hi``."""
    a = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    empty = np.zeros(a.shape, bool)
    dice, (lo, hi) = best_threshold_dice([a], [empty])
    assert dice == 0.0 and lo < hi
    b = a + 100.0
    dice2, (lo2, hi2) = best_threshold_dice([a, b], [empty, b >= 140])
    assert np.isfinite(dice2) and 0 < dice2 <= 0.5 + 1e-9 and lo2 < hi2


def test_difficulty_of_a_task_without_cases_is_nan() -> None:
    row = task_difficulty("msd/T/x@CT", [], [])
    assert row.cases == 0 and math.isnan(row.threshold_dice) and math.isnan(row.fraction)
    assert math.isnan(row.copy_dice) and math.isnan(mask_copy_dice([np.ones((2, 2, 2), bool)]))


def test_difficulty_table_accepts_a_profile_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``profile`` may be a path to a YAML profile (loaded with its ``base``), as well as a name or a mapping."""
    path = tmp_path / "mine.yaml"
    path.write_text("base: quick\n")
    monkeypatch.setattr("hyperkit.data.layouts.discover_datasets", lambda root: [])
    assert difficulty_table(tmp_path, path) == []


def test_difficulty_table_passes_cache_and_progress_to_the_preprocessing(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``cache_dir`` and ``progress`` reach :func:`hyperkit.data.preprocess.dataset_patches`."""
    seen: list[dict[str, object]] = []
    ds = type("DS", (), {"layout": "msd", "tasks": lambda self: []})()

    def patches(ds: object, tasks: list[object], cfg: dict[str, object], **kwargs: object) -> dict[str, list[object]]:
        seen.append(kwargs)
        return {}

    monkeypatch.setattr("hyperkit.data.layouts.discover_datasets", lambda root: [ds])
    monkeypatch.setattr("hyperkit.data.preprocess.dataset_patches", patches)
    assert difficulty_table(tmp_path, {"data": {}}, cache_dir=tmp_path / "c", progress=True) == []
    assert seen == [{"cache_dir": tmp_path / "c", "progress": True}]


# --- cli.py --------------------------------------------------------------------------------------------------------


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def test_phantoms_needs_out(capsys: pytest.CaptureFixture) -> None:
    assert _exit_code(["phantoms", "--subjects", "1"]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--subjects", "1.5"), ("--cases", "2.5"), ("--seed", "1.5"),
                                         ("--workers", "1.5")])
def test_phantoms_refuses_fractional_counts(tmp_path: Path, capsys: pytest.CaptureFixture, flag: str,
                                            value: str) -> None:
    """Counts, seed and workers are whole numbers: a fraction is an error (exit 2), nothing is written."""
    out = tmp_path / "ph"
    argv = ["phantoms", "--out", str(out), "--subjects", "1", "--cases", "1", "--spacing", "12", "--quiet"]
    assert _exit_code(argv + [flag, value]) == 2
    assert "error" in capsys.readouterr().err
    assert not out.exists()


def test_phantoms_runs_with_every_whole_number_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Whole-number options reach the generator as integers; ``--quiet`` writes no progress to stderr (only the
    one-line warning that 1 subject gives `hyperkit train` no validation case)."""
    out = tmp_path / "ph"
    assert main(["phantoms", "--out", str(out), "--subjects", "1", "--cases", "1", "--seed", "2", "--spacing", "12",
                 "--workers", "1", "--quiet"]) == 0
    io = capsys.readouterr()
    assert io.err.startswith("hyperkit: warning: --subjects 1 gives 0 val/test") and io.err.count("\n") == 1
    assert io.out.startswith("wrote ")
    assert "1 CT subjects + 1 cases x 10 MSD tasks, seed 2, 12 mm" in io.out
    assert (out / "Task09_Spleen" / "imagesTr" / "spleen_000.nii.gz").is_file()
