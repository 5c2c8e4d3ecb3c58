"""Mutation audit of the phantom writer, the difficulty helpers and the ``phantoms`` command.

The writer's rules (reuse, refusal, ``force``, interrupted runs, the manifest) are checked with the
per-case generator replaced by a trivial one (:func:`_fake_make`): they are about the files around the
phantoms, not the phantoms, which tests/test_phantoms.py and tests/test_phantom_hashes.py pin.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable

import numpy as np
import pytest

from hyperkit.cli import main
from hyperkit.phantoms import MSD_TASKS, TOTALSEG, ensure_phantoms, generate_phantoms
from hyperkit.phantoms import writer
from hyperkit.phantoms.difficulty import (TaskDifficulty, best_threshold_dice, difficulty_table, format_markdown,
                                          mask_copy_dice, task_difficulty)
from hyperkit.phantoms.writer import (FORMAT, GENERATOR, MANIFEST, PhantomRun, check_arguments, content_digest,
                                      generator_fingerprint)

ARGS = dict(subjects=2, cases=1, seed=0, spacing=6.0)


def _fake_make(job: tuple[str, int], root: str, seed: int, spacing: float) -> tuple[str, int, dict[str, Any], int]:
    """A stand-in for the per-case generator: one small file per case, the same index rows as the real one."""
    dataset, index = job
    if dataset == TOTALSEG:
        sid = f"s{index:04d}"
        (Path(root) / dataset / sid).mkdir(parents=True, exist_ok=True)
        (Path(root) / dataset / sid / "ct.nii.gz").write_text(f"{seed} {spacing}")
        row = {"image_id": sid, "age": 50, "gender": "m", "institute": "A", "study_type": "ct", "split": "train"}
        return dataset, index, row, 1
    stem = f"case_{index:03d}"
    (Path(root) / dataset / "imagesTr").mkdir(parents=True, exist_ok=True)
    (Path(root) / dataset / "imagesTr" / f"{stem}.nii.gz").write_text(f"{seed} {spacing}")
    return dataset, index, {"image": f"./imagesTr/{stem}.nii.gz", "label": f"./labelsTr/{stem}.nii.gz"}, 1


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., PhantomRun]:
    """``generate_phantoms`` with the trivial per-case generator, in this process, without a bar."""
    monkeypatch.setattr(writer, "_make", _fake_make)

    def run(out: Path, **kwargs: Any) -> PhantomRun:
        return generate_phantoms(out, **{**ARGS, "workers": 1, "progress": False, **kwargs})

    return run


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / MANIFEST).read_text())


# --- arguments -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, words", [
    (dict(subjects=0), "subjects must be a positive integer (number of CT training subjects), got 0"),
    (dict(subjects=True), "subjects must be a positive integer"),
    (dict(subjects=1.0), "got 1.0"),
    (dict(cases=False), "cases must be a positive integer"),
    (dict(seed=True), "seed must be a non-negative integer"),
    (dict(spacing="thin"), "spacing must be a number of millimetres, got 'thin'"),
    (dict(spacing=float("nan")), "spacing must be > 0 mm, got nan"),
    (dict(spacing=float("inf")), "spacing must be > 0 mm, got inf"),
    (dict(spacing=0.5), "between 1.0 and 12.0 mm"),
    (dict(spacing=12.5), "got 12.5"),
])
def test_bad_arguments_are_refused_naming_the_value(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as err:
        check_arguments(**{**ARGS, **kwargs})
    assert words in str(err.value)


def test_arguments_at_the_limits_are_accepted_as_plain_numbers() -> None:
    got = check_arguments(np.int64(1), 1, 0, 12)
    assert got == {"subjects": 1, "cases": 1, "seed": 0, "spacing": 12.0}
    assert type(got["subjects"]) is int and type(got["spacing"]) is float
    assert check_arguments(1, 1, 0, 1.0)["spacing"] == 1.0


def test_out_that_is_a_file_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        generate_phantoms(out, **ARGS, workers=1, progress=False)
    assert out.read_text() == "mine"


# --- reuse, refusal, force, interrupted runs -------------------------------------------------------------------


def test_the_manifest_records_the_run_and_a_second_call_reuses(tmp_path: Path, fake: Callable[..., PhantomRun]
                                                               ) -> None:
    out = tmp_path / "ph"
    first = fake(out, subjects=2, cases=3)
    assert not first.reused and first.files == 2 + 3 * len(MSD_TASKS)
    meta = _manifest(out)
    assert meta["complete"] is True and meta["format"] == FORMAT and meta["content"] == content_digest(out)
    assert (out / GENERATOR).read_text() == generator_fingerprint() + "\n" and "fingerprint" not in meta
    assert meta["arguments"] == {"subjects": 2, "cases": 3, "seed": 0, "spacing": 6.0}
    assert meta["datasets"][TOTALSEG]["subjects"] == 2
    assert all(meta["datasets"][t.folder]["cases"] == 3 for t in MSD_TASKS)
    stamp = (out / MANIFEST).stat().st_mtime_ns
    again = fake(out, subjects=2, cases=3)
    assert again.reused and again.files == 0 and again.root == out
    assert (out / MANIFEST).stat().st_mtime_ns == stamp


def test_other_arguments_are_refused_and_nothing_is_touched(tmp_path: Path, fake: Callable[..., PhantomRun]) -> None:
    out = tmp_path / "ph"
    fake(out)
    before = (out / MANIFEST).read_text()
    with pytest.raises(ValueError, match=r"other arguments .*--force"):
        fake(out, seed=1)
    assert (out / MANIFEST).read_text() == before and (out / TOTALSEG / "s0001").is_dir()


def _spoil(out: Path, how: str) -> None:
    """Make a finished folder look unfinished, of another format, or made by other generator code."""
    meta = _manifest(out)
    if how in ("complete", "format"):
        (out / MANIFEST).write_text(json.dumps({**meta, how: False if how == "complete" else FORMAT + 1}))
    elif how == "other code":
        (out / GENERATOR).write_text("0" * 16 + "\n")
    elif how == "unreadable code":
        (out / GENERATOR).write_bytes(b"\xff\xfe")
    else:  # a folder of a kit that kept the code fingerprint in the manifest
        (out / GENERATOR).unlink()
        (out / MANIFEST).write_text(json.dumps({**meta, "fingerprint": generator_fingerprint()}))


@pytest.mark.parametrize("how", ["complete", "format", "other code", "unreadable code", "older kit"])
def test_same_arguments_but_incomplete_or_other_code_are_redone_from_scratch(
        tmp_path: Path, fake: Callable[..., PhantomRun], how: str) -> None:
    out = tmp_path / "ph"
    fake(out)
    meta = _manifest(out)
    _spoil(out, how)
    stale = out / TOTALSEG / "s0099"
    stale.mkdir()
    (stale / "ct.nii.gz").write_text("left over")
    run = fake(out)
    assert not run.reused and run.files > 0
    assert not stale.exists()  # the kit's own folders are emptied first: no case of another run survives
    assert _manifest(out) == meta  # the same files again: the same content digest
    assert (out / GENERATOR).read_text() == generator_fingerprint() + "\n"


def test_the_content_digest_follows_every_byte_and_name_of_the_dataset_folders(
        tmp_path: Path, fake: Callable[..., PhantomRun]) -> None:
    """Same size, one byte changed: another digest (the data fingerprint reads case files by size only)."""
    out = tmp_path / "ph"
    fake(out)
    base = content_digest(out)
    (out / "notes.txt").write_text("mine")  # beside the datasets: not the phantoms' content
    (out / GENERATOR).write_text("0" * 16 + "\n")
    assert content_digest(out) == base
    ct = out / TOTALSEG / "s0000" / "ct.nii.gz"
    text = ct.read_text()
    ct.write_text(("1" if text[0] != "1" else "2") + text[1:])
    assert content_digest(out) != base
    ct.write_text(text)
    assert content_digest(out) == base
    ct.rename(ct.with_name("ct2.nii.gz"))
    assert content_digest(out) != base
    (out / TOTALSEG / "s0099").mkdir()
    ct.with_name("ct2.nii.gz").rename(out / TOTALSEG / "s0099" / "ct.nii.gz")  # same name and bytes, another folder
    assert content_digest(out) != base


def test_every_file_of_the_folder_enters_the_content_digest(tmp_path: Path, fake: Callable[..., PhantomRun]) -> None:
    out = tmp_path / "ph"
    fake(out)
    base = content_digest(out)
    files = [f for f in out.rglob("*") if f.is_file() and f.parent != out]
    assert len(files) == ARGS["subjects"] + 1 + len(MSD_TASKS) * (ARGS["cases"] + 1)  # cases and index files
    for f in files:
        data = f.read_bytes()
        f.write_bytes(data + b" ")
        assert content_digest(out) != base, f
        f.write_bytes(data)
    assert content_digest(out) == base


def test_force_redoes_matching_phantoms_and_removes_only_the_kits_own_files(
        tmp_path: Path, fake: Callable[..., PhantomRun]) -> None:
    out = tmp_path / "ph"
    fake(out)
    stale = out / MSD_TASKS[0].folder / "imagesTr" / "old_999.nii.gz"
    stale.write_text("left over")
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    (out / "mine" / "a.txt").write_text("mine")
    run = fake(out, force=True)
    assert not run.reused and not stale.exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "mine" / "a.txt").read_text() == "mine"
    other = fake(out, seed=5, force=True)
    assert not other.reused and _manifest(out)["arguments"]["seed"] == 5
    assert (out / TOTALSEG / "s0000" / "ct.nii.gz").read_text() == "5 6.0"
    assert (out / "notes.txt").read_text() == "mine"


def test_force_removes_a_linked_kit_folder_but_not_what_it_points_to(tmp_path: Path,
                                                                     fake: Callable[..., PhantomRun]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the kit's")
    out = tmp_path / "ph"
    out.mkdir()
    (out / TOTALSEG).symlink_to(outside, target_is_directory=True)
    run = fake(out, force=True)
    assert not run.reused and (outside / "keep.txt").read_text() == "not the kit's"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert not (out / TOTALSEG).is_symlink() and (out / TOTALSEG / "s0000" / "ct.nii.gz").is_file()


def test_a_linked_code_file_is_removed_not_written_through(tmp_path: Path, fake: Callable[..., PhantomRun]) -> None:
    out = tmp_path / "ph"
    fake(out)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the kit's")
    (out / GENERATOR).unlink()
    (out / GENERATOR).symlink_to(outside)
    assert not fake(out).reused  # the link is no code fingerprint: regenerated
    assert outside.read_text() == "not the kit's"
    assert not (out / GENERATOR).is_symlink() and (out / GENERATOR).read_text() == generator_fingerprint() + "\n"


def test_an_interrupted_run_leaves_an_incomplete_manifest_and_is_redone(
        tmp_path: Path, fake: Callable[..., PhantomRun], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def dies(job: tuple[str, int], *rest: Any) -> tuple[str, int, dict[str, Any], int]:
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _fake_make(job, *rest)

    out = tmp_path / "ph"
    monkeypatch.setattr(writer, "_make", dies)
    with pytest.raises(KeyboardInterrupt):
        fake(out)
    assert _manifest(out)["complete"] is False
    # a command given the stopped folder says what happened and how to finish it (it said "no dataset found")
    from hyperkit.data.layouts import PHANTOMS_MANIFEST, DataError, discover_datasets
    assert PHANTOMS_MANIFEST == MANIFEST
    with pytest.raises(DataError, match=r"generation did not finish .*`hyperkit phantoms --out .*ph`"):
        discover_datasets(out)
    monkeypatch.setattr(writer, "_make", _fake_make)
    run = fake(out)  # same arguments: redone without --force, not reused
    assert not run.reused and _manifest(out)["complete"] is True


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"phantoms"'])
def test_an_unreadable_manifest_counts_as_a_foreign_folder(tmp_path: Path, fake: Callable[..., PhantomRun],
                                                           text: str) -> None:
    out = tmp_path / "ph"
    out.mkdir()
    (out / MANIFEST).write_text(text)
    with pytest.raises(ValueError, match="is not empty and holds no phantoms"):
        fake(out)
    assert (out / MANIFEST).read_text() == text


def test_index_files_are_in_case_order_whatever_order_the_workers_finish(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class InProcess:
        """A process pool stand-in that runs each job at submission."""

        def __init__(self, max_workers: int, mp_context: Any) -> None:
            assert max_workers == 3

        def __enter__(self) -> InProcess:
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

        def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
            fut: concurrent.futures.Future = concurrent.futures.Future()
            fut.set_result(fn(*args))
            return fut

    def backwards(futures: Iterable[concurrent.futures.Future]) -> list[concurrent.futures.Future]:
        return list(futures)[::-1]

    monkeypatch.setattr(writer, "_make", _fake_make)
    monkeypatch.setattr(writer, "ProcessPoolExecutor", InProcess)
    monkeypatch.setattr(writer, "as_completed", backwards)
    out = tmp_path / "ph"
    generate_phantoms(out, subjects=3, cases=2, seed=0, spacing=6.0, workers=3, progress=False)
    ids = [line.split(";")[0] for line in (out / TOTALSEG / "meta.csv").read_text().splitlines()[1:]]
    assert ids == ["s0000", "s0001", "s0002"]
    training = json.loads((out / MSD_TASKS[0].folder / "dataset.json").read_text())["training"]
    assert [t["image"] for t in training] == ["./imagesTr/case_000.nii.gz", "./imagesTr/case_001.nii.gz"]


def test_ensure_phantoms_passes_each_argument_to_its_place(tmp_path: Path, fake: Callable[..., PhantomRun]) -> None:
    out = tmp_path / "ph"
    assert ensure_phantoms(out, subjects=1, cases=2, seed=3, spacing=7.0, workers=1) == out
    assert _manifest(out)["arguments"] == {"subjects": 1, "cases": 2, "seed": 3, "spacing": 7.0}
    assert (out / TOTALSEG / "meta.csv").read_text().count("\n") == 2


def test_the_fingerprint_covers_every_generator_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = Path(writer.__file__).parent
    copy = tmp_path / "phantoms"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(writer, "__file__", str(copy / "writer.py"))
    base = generator_fingerprint()
    for name in ("shapes", "organs", "anatomy", "ct", "mri", "cohorts", "writer"):
        src = copy / f"{name}.py"
        text = src.read_text()
        src.write_text(text + "\n# edited\n")
        assert generator_fingerprint() != base, name
        src.write_text(text)
    assert generator_fingerprint() == base


# --- difficulty helpers ------------------------------------------------------------------------------------------


def test_mask_copy_needs_two_cases_and_averages_every_ordered_pair() -> None:
    a = np.zeros((8, 8, 8), bool)
    a[2:6, 2:6, 2:6] = True
    b = np.roll(a, 2, axis=0)
    assert np.isnan(mask_copy_dice([a]))
    assert mask_copy_dice([a, a, b]) == pytest.approx((1 + 1 + 4 * 0.5) / 6)


def test_best_threshold_is_a_mean_over_cases_and_handles_a_constant_image() -> None:
    a = np.zeros((8, 8, 8), bool)
    a[2:6, 2:6, 2:6] = True
    img = np.where(a, 5.0, 0.0) + np.linspace(0, 0.1, a.size).reshape(a.shape)
    one = best_threshold_dice([img], [a])[0]
    two = best_threshold_dice([img, img], [a, a])[0]
    assert two == pytest.approx(one) and 0.95 < one <= 1.0
    assert best_threshold_dice([img], [a])[1][1] == pytest.approx(img.max())  # the 100 % quantile is a bound
    assert best_threshold_dice([np.full((4, 4, 4), 2.0)], [np.ones((4, 4, 4), bool)]) == (0.0, (2.0, 2.0))
    score, (lo, hi) = best_threshold_dice([img], [np.zeros_like(a)])
    assert score == 0.0 and lo < hi  # an interval between two different bounds, even with nothing to find


def test_best_threshold_bins_hold_their_lower_edge() -> None:
    img = np.repeat([0.0, 1.0, 2.0], 20).reshape(3, 4, 5)  # the bounds are exactly the three values
    dice, interval = best_threshold_dice([img], [img >= 1])
    assert dice == pytest.approx(1.0) and interval == (1.0, 2.0)


def test_task_difficulty_counts_cases_and_the_target_share() -> None:
    m1 = np.zeros((4, 4, 4), bool)
    m1[:2] = True
    m2 = np.zeros((4, 4, 4), bool)
    m2[:1] = True
    img = np.arange(64, dtype=float).reshape(4, 4, 4)
    row = task_difficulty("msd/T/x@CT", [img, img], [m1, m2])
    assert row.task_id == "msd/T/x@CT" and row.cases == 2
    assert row.fraction == pytest.approx((0.5 + 0.25) / 2)
    assert row.copy_dice == pytest.approx(mask_copy_dice([m1, m2]))
    empty = task_difficulty("msd/T/y@CT", [], [])
    assert empty.cases == 0 and np.isnan(empty.threshold_dice) and np.isnan(empty.fraction)


def test_difficulty_table_scores_only_the_chosen_layouts_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    a = np.zeros((1, 4, 4, 4), bool)
    a[0, :2] = True
    patch = SimpleNamespace(image=np.arange(64, dtype=float).reshape(1, 4, 4, 4), mask=a)

    def dataset(name: str, layout: str, tasks: list[str]) -> SimpleNamespace:
        return SimpleNamespace(name=name, layout=layout, tasks=lambda: [SimpleNamespace(task_id=t) for t in tasks])

    found = [dataset("ts", "totalseg", ["totalseg/ts/stomach@CT"]),
             dataset("T9", "msd", ["msd/T9/spleen@CT"]),
             dataset("T1", "msd", ["msd/T1/edema@FLAIR", "msd/T1/tumour@FLAIR"])]
    seen: list[dict[str, Any]] = []

    def patches(ds: Any, tasks: list[Any], cfg: dict[str, Any], **kwargs: Any) -> dict[str, list[Any]]:
        seen.append(cfg)
        return {t.task_id: [patch, patch] for t in tasks}

    monkeypatch.setattr("hyperkit.data.layouts.discover_datasets", lambda root: found)
    monkeypatch.setattr("hyperkit.data.preprocess.dataset_patches", patches)
    cfg = {"data": {"patch": 4}}
    rows = difficulty_table("root", cfg)
    assert [r.task_id for r in rows] == ["msd/T9/spleen@CT", "msd/T1/edema@FLAIR", "msd/T1/tumour@FLAIR"]
    assert seen == [cfg, cfg] and all(r.cases == 2 and r.copy_dice == pytest.approx(1.0) for r in rows)
    both = difficulty_table("root", cfg, layouts=("totalseg", "msd"))
    assert [r.task_id for r in both][0] == "totalseg/ts/stomach@CT" and len(both) == 4


def test_format_markdown_rounds_and_gives_the_share_in_percent() -> None:
    row = TaskDifficulty("msd/T9/spleen@CT", 3, 0.5049, 0.756, (0.1, 0.9), 0.125)
    lines = format_markdown([row]).splitlines()
    assert len(lines) == 3 and lines[0].startswith("| task | cases | mask-copy Dice")
    assert lines[2] == "| msd/T9/spleen@CT | 3 | 0.50 | 0.76 | 12.50 % |"


# --- the phantoms command --------------------------------------------------------------------------------------


def test_the_command_passes_its_options_and_defaults_and_says_what_it_did(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    reused = [False]

    def record(*args: Any, **kwargs: Any) -> PhantomRun:
        calls.append((args, kwargs))
        arguments = check_arguments(*args[1:5])
        return PhantomRun(Path(args[0]), reused[0], 1.25, 0 if reused[0] else 7, arguments)

    monkeypatch.setattr("hyperkit.phantoms.cli.generate_phantoms", record)
    out = tmp_path / "ph"
    assert main(["phantoms", "--out", str(out)]) == 0
    defaults = {k: p.default for k, p in inspect.signature(generate_phantoms).parameters.items()}
    assert calls[-1][0] == (str(out), defaults["subjects"], defaults["cases"], defaults["seed"], defaults["spacing"])
    assert calls[-1][1] == {"force": False, "workers": None, "progress": True}
    assert capsys.readouterr().out == (f"wrote 7 NIfTI files (24 CT subjects + 10 cases x 10 MSD tasks, seed 0, "
                                       f"3 mm) to {out} in 1.2 s\n")
    reused[0] = True
    assert main(["phantoms", "--out", str(out), "--subjects", "2", "--cases", "3", "--seed", "4", "--spacing",
                 "7.5", "--force", "--workers", "2", "--quiet"]) == 0
    assert calls[-1][0] == (str(out), 2, 3, 4, 7.5)
    assert calls[-1][1] == {"force": True, "workers": 2, "progress": False}
    assert capsys.readouterr().out == (f"phantoms in {out} already match (2 CT subjects + 3 cases x 10 MSD tasks, "
                                       "seed 4, 7.5 mm); nothing to do\n")


def test_a_force_run_interrupted_while_removing_never_leaves_phantoms_to_reuse(
        tmp_path: Path, fake: Callable[..., PhantomRun], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ph"
    fake(out)
    real_rmtree = shutil.rmtree

    def stopped(path: Any, *args: Any, **kwargs: Any) -> None:
        real_rmtree(path, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C right after the first folder is gone

    monkeypatch.setattr(writer.shutil, "rmtree", stopped)
    with pytest.raises(KeyboardInterrupt):
        fake(out, force=True)
    monkeypatch.setattr(writer.shutil, "rmtree", real_rmtree)
    try:
        run = fake(out)
    except ValueError as err:  # refused (no manifest any more): also safe
        assert "--force" in str(err)
    else:
        assert not run.reused  # what is left is incomplete: it must not pass for finished phantoms
