"""Interruptions that lost work or left files that read as a finished run.

A SIGTERM (``kill``, ``timeout``, a batch system's end of job) stops a command as Ctrl-C does.

SIGTERM had Python's default action: the process ended on the spot, without a word (exit 143). ``hyperkit train``
lost every episode since its last checkpoint (Ctrl-C writes ``last.pt`` at the episode it stops after), an
atomic write in progress left its temporary file (``.last.pt.<pid>.<tid>.tmp``, tens of MB) beside the run for
good, and the worker processes of ``hyperkit phantoms --workers 2`` were left behind, idle, holding their memory.

``hyperkit evaluate --whole-scan`` rewrites its ``<stem>-whole-scan.csv`` row by row but wrote its record and table
only at the end: stopped midway, it left an earlier run's ``.json``/``.md`` (its summary, its margin) beside the
new run's partial rows.

In the SIGTERM tests, SIGTERM's action before the kit's handler is :func:`_raise_killed` (not the default, which would
end pytest): without the fix the signal raises :class:`_Killed` where the kit should have handled it.
"""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from hyperkit import cli
from hyperkit.config import load_profile
from hyperkit.data.sample import write_sample_totalseg
from hyperkit.evaluation import whole_scan
from hyperkit.evaluation.whole_scan import run_whole_scan, whole_scan_paths
from hyperkit.files import write_atomic
from hyperkit.training import loop
from hyperkit.training.checkpoint import load_checkpoint
from hyperkit.training.loop import _graceful_interrupt, train
from test_whole_scan import setup  # noqa: F401 -- the fixture: a five-case task and a tiny checkpoint
from tiny import TINY_MODEL

ALL_SPLITS = ["train", "val", "test"]


class _Killed(Exception):
    """What SIGTERM's action before the kit's handler raises: the process would have ended here."""


def _raise_killed(signum: int, frame: Any) -> None:
    raise _Killed


@pytest.fixture()
def sigterm_kills() -> Iterator[None]:
    """SIGTERM raises :class:`_Killed` (standing for its default action) during the test; restored after."""
    before = signal.signal(signal.SIGTERM, _raise_killed)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def test_sigterm_asks_the_training_loop_to_stop_as_the_first_ctrl_c_does(sigterm_kills: None) -> None:
    with _graceful_interrupt() as flag:
        signal.raise_signal(signal.SIGTERM)
        assert flag["stop"]  # stop after this episode, checkpoint written
        with pytest.raises(KeyboardInterrupt):  # a second one aborts
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is _raise_killed  # the handler before is restored
    with _graceful_interrupt(terminate=False) as flag:  # under torchrun: the launcher's SIGTERM is left alone
        with pytest.raises(_Killed):
            signal.raise_signal(signal.SIGTERM)
        assert not flag["stop"]


def _tiny_cfg() -> dict[str, Any]:
    cfg = load_profile("quick", {"data": {"patch_size": 16}, "model": TINY_MODEL})
    cfg["train"] = {"episodes": 4, "tasks_per_episode": 2, "val_every": 2, "checkpoint_every": 4,
                    "val_queries": 2, "train_splits": ALL_SPLITS, "val_splits": ALL_SPLITS}
    return cfg


def test_a_training_sent_sigterm_keeps_its_last_episode_and_resumes_as_if_uninterrupted(
        sigterm_kills: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    write_sample_totalseg(data, n_cases=4, structures=("aorta", "stomach", "kidney_left", "esophagus"))
    cfg, cache = _tiny_cfg(), tmp_path / "cache"
    full = train(cfg, data, tmp_path / "full", cache_dir=cache, progress=False)
    step = loop._Run.step

    def step_then_sigterm(self: Any, episode: int) -> dict[str, float]:
        parts = step(self, episode)
        if episode == 3:  # between two checkpoints (checkpoint_every 4): the kill lost episodes 1-3
            signal.raise_signal(signal.SIGTERM)
        return parts

    monkeypatch.setattr(loop._Run, "step", step_then_sigterm)
    with pytest.raises(KeyboardInterrupt, match="stopped after episode 3; continue with --resume"):
        train(cfg, data, tmp_path / "part", cache_dir=cache, progress=False)
    assert load_checkpoint(tmp_path / "part" / "last.pt")["state"]["episode"] == 3
    monkeypatch.undo()
    resumed = train(cfg, data, tmp_path / "part", resume=True, cache_dir=cache, progress=False)
    assert resumed.episodes_done == 4
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_a_command_sent_sigterm_ends_as_interrupted_and_leaves_no_temporary_file(
        sigterm_kills: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"

    def killed_while_writing(cfg: Any, data: Any, out: Any, **kwargs: Any) -> None:
        def write(fh: Any) -> None:
            fh.write(b"half a checkpoint")
            signal.raise_signal(signal.SIGTERM)
        write_atomic(Path(out) / "last.pt", write)

    monkeypatch.setattr(loop, "train", killed_while_writing)
    assert cli.main(["train", "--data", str(tmp_path), "--out", str(run), "--no-progress"]) == 130
    assert capsys.readouterr().err.strip() == "hyperkit: interrupted"
    assert list(run.iterdir()) == []  # no last.pt, and no .last.pt.<pid>.<tid>.tmp left beside it
    assert signal.getsignal(signal.SIGTERM) is _raise_killed  # restored once the command ended


def test_sigterm_is_left_to_torchrun_under_it(sigterm_kills: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with cli._sigterm_as_interrupt():
        with pytest.raises(_Killed):
            signal.raise_signal(signal.SIGTERM)
    monkeypatch.setenv("WORLD_SIZE", "1")
    with cli._sigterm_as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)


def test_a_whole_scan_run_stopped_midway_leaves_no_earlier_record_beside_its_partial_rows(
        setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERKIT_CACHE", str(setup["cache"]))
    out = setup["root"] / "stopped" / "results.csv"
    run_whole_scan(setup["ckpt"], setup["data"], out, draws=2, progress=False)
    csv_path, json_path, md_path = whole_scan_paths(out)
    assert json_path.is_file() and md_path.is_file()
    real, calls = whole_scan._whole_row, []

    def stopped_after_one_row(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(whole_scan, "_whole_row", stopped_after_one_row)
    with pytest.raises(KeyboardInterrupt):  # the same run with another margin, stopped after its first row
        run_whole_scan(setup["ckpt"], setup["data"], out, draws=2, margin_mm=40.0, progress=False)
    with open(csv_path, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 1
    assert not json_path.exists() and not md_path.exists()  # no record of margin 20 mm and all rows beside it


def test_a_segmentation_stopped_between_its_two_files_leaves_no_mask_beside_another_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hyperkit segment`` renamed the mask into place, then its record: stopped between the two, a new mask lay
    beside the record of the run before (another threshold, ROI ...), or, on a first run, a mask without a record,
    which the next run refused to replace ("exists and is not a mask of `hyperkit segment`")."""
    import json
    import os

    import hyperkit.inference.segment as seg_mod
    from test_segment_audit import META, _ball, _Identity

    monkeypatch.setattr(seg_mod, "_load_model", lambda model, device: (_Identity(), META))
    scan, model = _ball(tmp_path / "s.nii.gz"), tmp_path / "model.pt"
    model.write_bytes(b"unused")
    real = os.replace

    def stopped_before_the_second_rename(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(src, dst)

    out, sidecar = tmp_path / "m.nii.gz", tmp_path / "m.json"
    seg_mod.segment_file(model, scan, out, roi="none")
    calls: list[Any] = []
    monkeypatch.setattr(seg_mod.os, "replace", stopped_before_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        seg_mod.segment_file(model, scan, out, roi="none", threshold=0.3)
    assert not out.exists() or json.loads(sidecar.read_text())["settings"]["threshold"] == 0.3
    assert not out.exists()  # the old mask went first; the new one had not landed
    first = tmp_path / "first.nii.gz"
    calls = []
    with pytest.raises(KeyboardInterrupt):
        seg_mod.segment_file(model, scan, first, roi="none")
    monkeypatch.setattr(seg_mod.os, "replace", real)
    for again in (out, first):  # the same command again: not refused, mask and record of this run
        rec = seg_mod.segment_file(model, scan, again, roi="none", threshold=0.3)
        assert again.is_file() and json.loads(Path(rec["sidecar"]).read_text())["settings"]["threshold"] == 0.3
    probe = tmp_path / "probe"
    probe.write_text("")
    mode = probe.stat().st_mode & 0o777  # what the umask gives every other file the kit writes
    assert out.stat().st_mode & 0o777 == mode and sidecar.stat().st_mode & 0o777 == mode  # mkstemp's: 0600
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_an_atomic_write_clears_the_temporary_files_of_killed_writers(tmp_path: Path) -> None:
    """SIGKILL during an atomic write leaves ``.last.pt.<pid>.<tid>.tmp`` (tens of MB) for good: the next write of the
    same file removes those of processes that no longer run, and leaves a running writer's and other files' alone."""
    from hyperkit import files

    target = tmp_path / "last.pt"
    dead = tmp_path / ".last.pt.999999999.1234.tmp"
    fresh = tmp_path / ".last.pt.999999998.1234.tmp"  # a writer on another machine (its pid unknown here), just now
    running = tmp_path / f".last.pt.{os.getppid()}.1234.tmp"
    other = tmp_path / ".best.pt.999999999.1234.tmp"
    longer = tmp_path / ".last.pt.7.999999999.1.tmp"  # the temporary file of another target, last.pt.7
    for f in (dead, fresh, running, other, longer):
        f.write_bytes(b"half a checkpoint")
    old = time.time() - files.STALE_SECONDS - 60
    for f in (dead, running, other, longer):
        os.utime(f, (old, old))
    write_atomic(target, lambda fh: fh.write(b"whole"))
    assert target.read_bytes() == b"whole"
    assert not dead.exists() and all(f.exists() for f in (fresh, running, other, longer))
