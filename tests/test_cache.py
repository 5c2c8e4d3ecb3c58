"""``hyperkit cache``: what the preprocessing cache holds, reads that mark a case or a bank as used, and pruning
what has not been used (never what has, and nothing with ``--dry-run``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.data import cache as hc
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg

CFG = load_profile("quick", {"data": {"patch_size": 16}})
DAY = 86400


def _filled(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    write_sample_msd(data, "Task03_Liver", n_cases=3, labels=("liver", "cancer"))
    write_sample_totalseg(data, n_cases=4, structures=("aorta", "sternum"))
    cache = tmp_path / "cache"
    datasets = discover_datasets(data)
    TaskBank.from_datasets(datasets, "heldout", CFG, cache_dir=cache)
    TaskBank.from_datasets(datasets, "train", CFG, cache_dir=cache, margin=2, store=cache / "banks", min_cases=1)
    return data, cache


def _age(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    os.utime(path, (t, t))


def test_the_listing_names_each_dataset_its_cases_and_banks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, cache = _filled(tmp_path)
    entries = hc.cache_entries(cache)
    kinds = {(e.kind, e.group): e for e in entries}
    assert {k for k, _ in kinds} == {"case", "bank"}
    assert sum(e.kind == "case" and e.group == "msd-Task03_Liver" for e in entries) == 3
    assert sum(e.kind == "case" and e.group == "totalseg-TotalSegmentator" for e in entries) == 4
    (cache / "notes.txt").write_text("not the kit's")  # left out, and never pruned
    assert main(["cache", "--dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "msd-Task03_Liver" in out and "totalseg-TotalSegmentator" in out and "today" in out
    assert f"{len(entries)} entries" in out and "notes.txt" not in out
    assert main(["cache", "--dir", str(tmp_path / "none")]) == 0
    assert "nothing the kit wrote" in capsys.readouterr().out


def test_prune_removes_what_was_not_used_and_keeps_what_a_read_marked(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    data, cache = _filled(tmp_path)
    for p in cache.glob("*.npz"):
        _age(p, 40)
    for p in (cache / "banks").glob("*/index.json"):
        _age(p, 40)
    # a read marks the held-out cases and, through the training bank's index, the training cases as used
    datasets = discover_datasets(data)
    TaskBank.from_datasets(datasets, "heldout", CFG, cache_dir=cache, workers=1)
    TaskBank.from_datasets(datasets, "train", CFG, cache_dir=cache, margin=2, store=cache / "banks", min_cases=1,
                           workers=1)
    assert hc.prune(cache, 30) == []
    for p in cache.glob("totalseg-*.npz"):
        _age(p, 40)
    before = {p.name for p in cache.glob("*.npz")}
    assert main(["cache", "--dir", str(cache), "--prune", "30", "--dry-run"]) == 0
    assert "would remove 5 entries" in capsys.readouterr().out  # 4 cases and the bank index that reads them
    assert {p.name for p in cache.glob("*.npz")} == before
    (cache / "notes.txt").write_text("not the kit's")
    assert main(["cache", "--dir", str(cache), "--prune", "30"]) == 0
    assert "removed 5 entries" in capsys.readouterr().out
    assert not list(cache.glob("totalseg-*.npz")) and len(list(cache.glob("msd-*.npz"))) == 3
    assert not list((cache / "banks").iterdir()) and (cache / "notes.txt").is_file()
    assert len(hc.prune(cache, 0)) == 3 and not list(cache.glob("*.npz")) and (cache / "notes.txt").is_file()


def test_a_bank_whose_cases_are_gone_and_a_half_written_one_are_listed_and_pruned(tmp_path: Path) -> None:
    _, cache = _filled(tmp_path)
    next(cache.glob("totalseg-*.npz")).unlink()
    (cache / "banks" / "totalseg-TotalSegmentator-abc.partial-host-1").mkdir()
    entries = {e.kind: e for e in hc.cache_entries(cache)}
    assert entries["bank"].orphan and entries["partial"].group == "totalseg-TotalSegmentator"
    rows = {r["kind"]: r for r in hc.summary_rows(list(entries.values()))}
    assert rows["bank"]["note"] == "1 unusable (cases gone, or an older kit's)"
    gone = {e.kind for e in hc.prune(cache, 30)}
    assert gone == {"bank"}  # the orphan; the half-written folder is younger than 30 days
    assert {e.kind for e in hc.prune(cache, 0)} == {"case", "partial"}


def test_a_bank_folder_of_an_older_kit_is_unusable_and_pruned(tmp_path: Path) -> None:
    """Before the index, a stored bank held its cubes (19 GiB at the paper profile for ten phantom subjects): such
    a folder is never read again, and prune removes it whatever its age."""
    old = tmp_path / "banks" / "totalseg-TotalSegmentator-6bdbcc26ad77a902b4764a84"
    (old / "t0000-aorta").mkdir(parents=True)
    (old / "t0000-aorta" / "000000.image.npy").write_bytes(b"0" * 1000)
    (old / "index.json").write_text('{"version": 3, "side": 72, "tasks": {}}')
    [entry] = hc.cache_entries(tmp_path)
    assert entry.kind == "bank" and entry.orphan and entry.size > 1000
    assert hc.prune(tmp_path, 30) == [entry] and not old.exists()


@pytest.mark.parametrize("days", [-1.0, float("nan"), float("inf")])
def test_prune_refuses_a_bad_number_of_days(tmp_path: Path, days: float) -> None:
    with pytest.raises(ValueError, match="days must be a finite number >= 0"):
        hc.prune(tmp_path, days)


@pytest.mark.parametrize("argv, message", [(["--prune", "-1"], "--prune must be a finite number of days >= 0, got -1"),
                                           (["--prune", "nan"], "got nan"),
                                           (["--dry-run"], "--dry-run goes with --prune DAYS")])
def test_the_command_names_a_bad_flag(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str],
                                      message: str) -> None:
    assert main(["cache", "--dir", str(tmp_path), *argv]) != 0
    assert message in capsys.readouterr().err


def test_a_cache_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        hc.cache_entries(tmp_path / "f")
