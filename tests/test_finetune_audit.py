"""Audit of :mod:`hyperkit.evaluation.finetune`: exact subsets, what each fine-tuning is given
(training, early-stopping and test cases, seeds), its rows, resumption, refusals and the summaries.

The trainings are replaced by a recorder (their own behaviour is tested with the baselines), so
every test here is about what this module hands to them and makes of their results.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import hyperkit.evaluation.finetune as ft
from hyperkit.config import load_profile
from hyperkit.data.bank import TaskBank
from hyperkit.data.sample import write_sample_msd
from hyperkit.errors import ConfigError, HyperkitError
from hyperkit.evaluation.baselines import SupervisedResult
from hyperkit.evaluation.finetune import (FT_FIELDS, curve, finetune, finetune_subset, finetune_table, read_finetune,
                                          reference_lines, run_finetune)
from hyperkit.files import save_atomic
from hyperkit.model.hypernet import HyperUNet
from hyperkit.model.unet import UNet3D
from hyperkit.seeds import derive, torch_generator
from hyperkit.training.checkpoint import CHECKPOINT_KIND

TINY_MODEL = {"base_width": 8, "hidden": 16, "n_patches": 4, "samplings": 1, "pos_dim": 8, "zstar_hidden": 8,
              "zstar_dim": 8, "head_hidden": 8}
N_CASES = 10
TAU = 2.0


def _seed(g: torch.Generator) -> int:
    return g.initial_seed()


# ----------------------------------------------------------------------------- subsets


@pytest.mark.parametrize("n, expected", [
    (2, ([8], [], [2])), (3, ([3, 4], [], [8])), (4, ([0, 2], [8], [3])), (5, ([3, 4, 6], [1], [9])),
    (7, ([1, 3, 7, 8, 9], [4], [6])), (8, ([3, 4, 5, 6, 7], [0], [1, 8])), (10, ([0, 2, 4, 5, 6, 7, 8], [3], [1, 9]))])
def test_subset_draws_are_pinned(n: int, expected: tuple[list[int], list[int], list[int]]) -> None:
    """The exact (train, val, test) of seed 0, task "t", repeat 0: stored runs depend on these draws."""
    sub = finetune_subset(N_CASES, n, 0, "t", 0)
    assert (sub.train, sub.val, sub.test) == expected


def test_subset_sizes_follow_the_paper() -> None:
    """|test| = max(1, round(0.2 N)); a validation case exactly when 3 or more non-test cases remain."""
    sizes = {n: tuple(map(len, (s.train, s.val, s.test))) for n in range(2, 16)
             for s in [finetune_subset(20, n, 3, "x", 1)]}
    assert sizes == {2: (1, 0, 1), 3: (2, 0, 1), 4: (2, 1, 1), 5: (3, 1, 1), 6: (4, 1, 1), 7: (5, 1, 1),
                     8: (5, 1, 2), 9: (6, 1, 2), 10: (7, 1, 2), 11: (8, 1, 2), 12: (9, 1, 2), 13: (9, 1, 3),
                     14: (10, 1, 3), 15: (11, 1, 3)}


def test_subset_accepts_every_case_and_draws_from_all_of_them() -> None:
    """N may equal the target's cases; subsets use cases beyond the first N; seed and task both matter."""
    assert sorted(finetune_subset(2, 2, 0, "t", 0).generate_from + finetune_subset(2, 2, 0, "t", 0).test) == [0, 1]
    assert finetune_subset(5, 5, 0, "t", 0) == ft.FinetuneSubset([0, 1, 3], [2], [4])
    used = {i for r in range(20) for s in [finetune_subset(N_CASES, 2, 0, "t", r)] for i in s.train + s.test}
    assert max(used) >= 2
    base = finetune_subset(N_CASES, 4, 0, "t", 0)
    assert finetune_subset(N_CASES, 4, 1, "t", 0) == ft.FinetuneSubset([2, 5], [1], [8]) != base
    assert finetune_subset(N_CASES, 4, 0, "u", 0) == ft.FinetuneSubset([3, 8], [1], [2]) != base


def test_generate_from_is_train_and_val() -> None:
    """The K-shot context of hyper_ft is every non-test case, the validation case included."""
    assert ft.FinetuneSubset([5, 1], [3], [0]).generate_from == [1, 3, 5]


# ----------------------------------------------------------------------------- finetune() with a recorder


def _bank() -> TaskBank:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(N_CASES, 1, 8, 8, 8, generator=g)
    masks = torch.zeros(N_CASES, 1, 8, 8, 8)
    for i in range(N_CASES):  # case i has i + 1 foreground voxels: the fake score tells the cases apart
        masks[i].view(-1)[: i + 1] = 1
    return TaskBank(images={"T": images}, masks={"T": masks}, case_ids={"T": [f"c{i}" for i in range(N_CASES)]})


class Recorder:
    """Stands in for the starts, the scorer and the trainings of :mod:`finetune`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.starts: list[tuple[str, torch.Tensor, torch.Tensor, int]] = []
        self.jobs: list[Any] = []
        monkeypatch.setattr(ft, "one_shot_model", self.one_shot_model)
        monkeypatch.setattr(ft, "predict", lambda net, images: images)
        monkeypatch.setattr(ft, "score", self.score)
        monkeypatch.setattr(ft, "train_supervised_many", self.train)

    def one_shot_model(self, method, hyper, images, masks, cfg, generator):  # noqa: ANN001, ANN201
        self.starts.append((method, images.clone(), masks.clone(), _seed(generator)))
        return UNet3D(8)

    @staticmethod
    def score(preds, masks, spacing, tau):  # noqa: ANN001, ANN205
        return [(float(m.sum()) / 1000, float(tau), 0.5 + float(m.sum()) / 1000) for m in masks]

    def train(self, jobs, workers=None):  # noqa: ANN001, ANN201
        for k, job in enumerate(jobs):
            self.jobs.append(job)
            yield k, SupervisedResult(best_dice=0.5, best_step=3, steps=7, seconds_to_best=0.0, seconds=0.0,
                                      stopped_early=True, curve=[])


HYPER = SimpleNamespace(unet=SimpleNamespace(config={"base_width": 8}))
CFG = SimpleNamespace(tau=TAU)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[Recorder, list[dict[str, Any]]]:
    rec = Recorder(monkeypatch)
    kw = {"ns": (2, 4, 8), "repeats": 1, "progress": False, **kw}
    return rec, finetune(HYPER, _bank(), CFG, "budget", tmp_path / "ft.csv", **kw)


def test_each_training_gets_its_training_and_stopping_cases_never_a_test_case(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Fine-tuning sees train only; stopping sees the val case, else the training cases; seeds per start."""
    bank = _bank()
    rec, _ = _run(tmp_path, monkeypatch, repeats=2)
    keys = [(n, r, m) for n in (2, 4, 8) for r in range(2) for m in ft.FT_METHODS]
    assert len(rec.jobs) == len(keys)
    for job, (n, r, m) in zip(rec.jobs, keys):
        sub = finetune_subset(N_CASES, n, 0, "T", r)
        stop = sub.val if n > 3 else sub.train
        assert torch.equal(job.train.images, bank.images["T"][sub.train])
        assert torch.equal(job.train.masks, bank.masks["T"][sub.train])
        assert torch.equal(job.val.images, bank.images["T"][stop]) and torch.equal(job.val.masks, bank.masks["T"][stop])
        assert job.cfg == "budget" and job.train.channels.tolist() == [0] * len(sub.train)
        assert _seed(job.generator) == _seed(torch_generator(0, "finetune_steps", m, "T", n, r))


def test_starts_are_generated_from_all_non_test_cases_with_their_own_seeds(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """hyper_ft -> hyper_unet, rand_ft -> rand_unet, from generate_from, decoder seed per (task, N, repeat)."""
    bank = _bank()
    rec, _ = _run(tmp_path, monkeypatch, ns=(4, 8), repeats=2, methods=("hyper_ft", "rand_ft"))
    keys = [(n, r, m) for n in (4, 8) for r in range(2) for m in ("hyper_unet", "rand_unet")]
    assert [s[0] for s in rec.starts] == [k[2] for k in keys]
    for (method, images, masks, seed), (n, r, _) in zip(rec.starts, keys):
        sub = finetune_subset(N_CASES, n, 0, "T", r)
        assert torch.equal(images, bank.images["T"][sub.generate_from]) and \
            torch.equal(masks, bank.masks["T"][sub.generate_from])
        assert seed == _seed(torch_generator(0, "finetune_rand", "T", n, r))


def test_scratch_start_is_a_fresh_unet_of_the_hypernets_width_seeded_per_subset(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """scratch_ft starts from UNet3D(base_width) initialised from derive(seed, "finetune_scratch", task, N, repeat)."""
    rec, _ = _run(tmp_path, monkeypatch, ns=(2, 4), repeats=1, methods=("scratch_ft",), seed=5)
    assert rec.starts == []
    for job, n in zip(rec.jobs, (2, 4)):
        torch.manual_seed(derive(5, "finetune_scratch", "T", n, 0))
        want = UNet3D(8).state_dict()
        got = job.net.state_dict()
        assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_rows_score_each_test_case_under_its_own_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One row per test case: its id, its scores (DSC, NSD@tau, NSD@voxel), zero-shot DSC, steps, best step."""
    _, rows = _run(tmp_path, monkeypatch, ns=(2, 8), repeats=1, methods=("scratch_ft",))
    ids = [f"c{i}" for i in range(N_CASES)]
    for n in (2, 8):
        sub = finetune_subset(N_CASES, n, 0, "T", 0)
        mine = [r for r in rows if r["n"] == n]
        assert [r["case"] for r in mine] == [ids[i] for i in sub.test]
        for r, i in zip(mine, sub.test):
            assert r["dsc"] == pytest.approx((i + 1) / 1000) and r["zero_shot_dsc"] == pytest.approx((i + 1) / 1000)
            assert r["nsd"] == TAU and r["nsd_voxel"] == pytest.approx(0.5 + (i + 1) / 1000)
            assert (r["steps"], r["best_step"]) == (7, 3)
            assert r["train_cases"] == "+".join(ids[j] for j in sub.generate_from)
            assert r["stop_on"] == ("val" if sub.val else "train")
            assert (r["task"], r["repeat"], r["method"]) == ("T", 0, "scratch_ft")
    assert read_finetune(tmp_path / "ft.csv") == [{**r, "seconds": pytest.approx(r["seconds"])} for r in rows]


def test_resume_does_only_the_missing_repeats_and_writes_one_header(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing CSV is refused without resume; with it, only unfinished (task, N, repeat, method) run."""
    _, first = _run(tmp_path, monkeypatch, ns=(2,), repeats=1)
    with pytest.raises(HyperkitError, match="exists; pass --resume"):
        _run(tmp_path, monkeypatch, ns=(2,), repeats=2)
    rec, rows = _run(tmp_path, monkeypatch, ns=(2,), repeats=2, resume=True)
    assert [(j.desc, _seed(j.generator)) for j in rec.jobs] == \
        [(f"{m} N=2", _seed(torch_generator(0, "finetune_steps", m, "T", 2, 1))) for m in ft.FT_METHODS]
    text = (tmp_path / "ft.csv").read_text()
    assert text.count("task,n,repeat") == 1
    assert len(read_finetune(tmp_path / "ft.csv")) == len(rows) == 2 * len(first)


@pytest.mark.parametrize("kw, error, match", [
    ({"repeats": 0}, ValueError, "repeats must be >= 1, got 0"),
    ({"methods": ("hyper_ft", "maml")}, ValueError, r"\['maml'\]"),
    ({"seed": -1}, ConfigError, "seed must be >= 0, got -1")])
def test_bad_arguments_are_refused_before_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kw: dict,
                                                   error: type, match: str) -> None:
    """A bad repeats, start or seed raises naming it, and no CSV is made."""
    with pytest.raises(error, match=match):
        _run(tmp_path, monkeypatch, **kw)
    assert not (tmp_path / "ft.csv").exists()


def test_unknown_start_is_refused() -> None:
    """_start names a start it does not know."""
    with pytest.raises(ValueError, match="got 'maml'"):
        ft._start("maml", HYPER, torch.zeros(1), torch.zeros(1), CFG, 0, ("T", 2, 0))


# ----------------------------------------------------------------------------- files and summaries


def test_read_finetune_parses_numbers_and_refuses_other_columns(tmp_path: Path) -> None:
    """Every score column is a float, counts are ints; a file with other columns is refused."""
    row = dict(zip(FT_FIELDS, ["T", "2", "0", "hyper_ft", "c1", "train", "c0", "0.5", "0.25", "0.125", "0.1", "7",
                               "3", "1.5"]))
    p = tmp_path / "ft.csv"
    p.write_text(",".join(FT_FIELDS) + "\n" + ",".join(row.values()) + "\n")
    [r] = read_finetune(p)
    assert (r["nsd_voxel"], r["nsd"], r["dsc"], r["zero_shot_dsc"], r["seconds"]) == (0.125, 0.25, 0.5, 0.1, 1.5)
    assert (r["n"], r["repeat"], r["steps"], r["best_step"]) == (2, 0, 7, 3)
    p.write_text(",".join(FT_FIELDS) + ",extra\n" + ",".join(row.values()) + ",x\n")
    with pytest.raises(ValueError, match="not a fine-tuning results file"):
        read_finetune(p)


def test_curve_is_the_mean_of_repeat_means_with_a_t_interval() -> None:
    """Repeat means (over their test cases) averaged; half-width t(0.975, k-1) * sd / sqrt(k)."""
    rows = [{"task": "t", "method": "m", "n": 8, "repeat": r, "dsc": d}
            for r, ds in enumerate([(0.1, 0.3), (0.4, 0.4), (0.6, 0.6)]) for d in ds]
    [(n, mean, lo, hi, k)] = curve(rows)[("t", "m")]
    half = 4.302652729911275 * 0.2 / 3 ** 0.5
    assert (n, k) == (8, 3) and mean == pytest.approx(0.4)
    assert (lo, hi) == (pytest.approx(0.4 - half), pytest.approx(0.4 + half))
    [(_, mean1, lo1, hi1, k1)] = curve(rows[:2])[("t", "m")]
    assert (mean1, lo1, hi1, k1) == (pytest.approx(0.2), pytest.approx(0.2), pytest.approx(0.2), 1)


def test_reference_lines_take_conv_and_hyper_dsc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The black and green lines: each target's conv_unet and hyper_unet mean DSC, nothing else."""
    import hyperkit.evaluation.results_file as results_file
    import hyperkit.evaluation.tables as tables

    st = lambda d: SimpleNamespace(dsc=d, nsd=d / 10)  # noqa: E731
    monkeypatch.setattr(results_file, "read_results", lambda path: ["rows of " + str(path)])
    monkeypatch.setattr(tables, "summarize", lambda rows: {("a", "conv_unet"): st(0.9), ("a", "hyper_unet"): st(0.6),
                                                           ("a", "rand_unet"): st(0.2), ("b", "copy_support"): st(0.1)})
    assert reference_lines("r.csv") == {"a": {"conv_unet": 0.9, "hyper_unet": 0.6}}


def test_finetune_table_cells() -> None:
    """One row per (target, N) any start has; only the starts present; reference columns hyper then conv."""
    rows = [{"task": "msd/Task03_Liver/liver@CT", "method": m, "n": n, "repeat": 0, "dsc": d}
            for m, n, d in [("rand_ft", 2, 0.25), ("hyper_ft", 4, 0.5)]]
    table = finetune_table(rows, {"msd/Task03_Liver/liver@CT": {"hyper_unet": 0.75, "conv_unet": 0.875}})
    lines = table.splitlines()
    assert lines[0] == "| target | N | hyper_ft | rand_ft | one-shot Hyper (green) | Conv U-Net, full split (black) |"
    assert lines[1] == "|---|---:|---:|---:|---:|---:|"
    assert lines[2].endswith("| 2 | — | 0.250 [0.250, 0.250] | 0.750 | 0.875 |")
    assert lines[3].endswith("| 4 | 0.500 [0.500, 0.500] | — | 0.750 | 0.875 |")
    assert len(lines) == 4


# ----------------------------------------------------------------------------- run_finetune


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fta")
    data = root / "data"
    write_sample_msd(data, "Task03_Liver", n_cases=5, labels=("liver", "cancer"))
    out = {"data": data}
    for name, tau in (("a", 2.0), ("b", 3.0)):
        cfg = load_profile("quick", {"data": {"patch_size": 16}, "model": TINY_MODEL, "evaluate": {"tau": tau}})
        cfg["name"] = "audit"  # not a built-in profile: the protocol is the checkpoint's own evaluate section
        torch.manual_seed(0)
        out[name] = save_atomic({"kind": CHECKPOINT_KIND, "model": HyperUNet.from_config(cfg["model"]).state_dict(),
                                 "state": {}, "config": cfg}, root / f"{name}.pt")
    return out


def test_run_finetune_checks_before_writing(kit: dict[str, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad seed/repeats/starts are refused before the checkpoint is read; N > cases before any file."""
    Recorder(monkeypatch)
    out = tmp_path / "ft"
    with pytest.raises(ConfigError, match="seed must be >= 0, got -1"):
        run_finetune(tmp_path / "no.pt", kit["data"], out, tasks=["liver"], seed=-1, reference_from=tmp_path / "no.csv")
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        run_finetune(tmp_path / "no.pt", kit["data"], out, tasks=["liver"], repeats=0)
    with pytest.raises(ValueError, match=r"unknown fine-tuning start\(s\) \['hyper'\]"):
        run_finetune(tmp_path / "no.pt", kit["data"], out, tasks=["liver"], methods=["hyper", "rand_ft"])
    with pytest.raises(ValueError, match=r"unknown fine-tuning start\(s\) \[\]"):  # nothing to run
        run_finetune(tmp_path / "no.pt", kit["data"], out, tasks=["liver"], methods=[])
    with pytest.raises(ValueError, match="N=6 exceeds the 5 cases"):
        run_finetune(kit["a"], kit["data"], out, tasks=["liver"], ns=(2, 6), progress=False)
    assert not out.exists()


def test_run_finetune_uses_every_case_and_guards_its_record(kit: dict[str, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """N = all 5 cases runs; a second call without resume leaves the record; another tau or seed is refused."""
    Recorder(monkeypatch)
    out = tmp_path / "ft"
    kw: dict[str, Any] = dict(tasks=["liver"], ns=(5,), repeats=1, methods=("scratch_ft",), progress=False)
    rows = run_finetune(kit["a"], kit["data"], out, **kw)
    assert [(r["n"], r["stop_on"]) for r in rows] == [(5, "val")]
    record = (out / "finetune.json").read_text()
    assert json.loads(record)["protocol"]["step"]["tau"] == 2.0
    with pytest.raises(HyperkitError, match="--resume"):
        run_finetune(kit["a"], kit["data"], out, **kw)
    assert (out / "finetune.json").read_text() == record
    with pytest.raises(HyperkitError, match=r"step\.tau"):
        run_finetune(kit["b"], kit["data"], out, resume=True, **kw)
    old = {k: v for k, v in json.loads(record).items() if k != "protocol"}  # a record from before protocols
    (out / "finetune.json").write_text(json.dumps(old))
    with pytest.raises(HyperkitError, match="another seed"):
        run_finetune(kit["a"], kit["data"], out, seed=1, resume=True, **kw)


def test_resume_redoes_an_earlier_repeat_missing_behind_a_later_one(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Done-ness is per repeat: rows of repeat 1 alone leave repeat 0 to do, and only it."""
    _run(tmp_path, monkeypatch, ns=(2,), repeats=2, methods=("scratch_ft",))
    p = tmp_path / "ft.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join([lines[0]] + [x for x in lines[1:] if x.split(",")[2] == "1"]) + "\n")
    rec, rows = _run(tmp_path, monkeypatch, ns=(2,), repeats=2, methods=("scratch_ft",), resume=True)
    assert [_seed(j.generator) for j in rec.jobs] == \
        [_seed(torch_generator(0, "finetune_steps", "scratch_ft", "T", 2, 0))]
    assert sorted(r["repeat"] for r in rows) == [0, 1]


def test_header_reaches_the_file_before_the_first_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed during its first training leaves a CSV with its header, not an empty file."""
    seen: list[str] = []
    rec = Recorder(monkeypatch)

    def train(jobs, workers=None):  # noqa: ANN001, ANN202
        seen.append((tmp_path / "ft.csv").read_text())
        yield from rec.train(jobs, workers)

    monkeypatch.setattr(ft, "train_supervised_many", train)
    finetune(HYPER, _bank(), CFG, "budget", tmp_path / "ft.csv", ns=(2,), repeats=1, methods=("scratch_ft",),
             progress=False)
    assert seen == [",".join(FT_FIELDS) + "\n"]


def test_resume_accepts_the_empty_csv_of_a_run_killed_before_its_first_row(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty CSV (a run killed before anything reached the file) resumes from the start, with a header."""
    (tmp_path / "ft.csv").write_text("")
    with pytest.raises(HyperkitError, match="exists; pass --resume"):
        _run(tmp_path, monkeypatch, ns=(2,), repeats=1, methods=("scratch_ft",))
    rec, rows = _run(tmp_path, monkeypatch, ns=(2,), repeats=1, methods=("scratch_ft",), resume=True)
    assert len(rec.jobs) == 1 and read_finetune(tmp_path / "ft.csv") == [{**r, "seconds": pytest.approx(r["seconds"])}
                                                                          for r in rows]


def test_run_finetune_refuses_a_size_below_two_before_writing_anything(tmp_path: Path) -> None:
    """N = 1 (nothing left to test on) was refused only inside the first subset, after finetune.json and the CSV
    header were written; now before the checkpoint is read or the folder made."""
    from hyperkit.evaluation.finetune import run_finetune

    for ns in ((1,), (2, 1), ()):
        with pytest.raises(ValueError, match=r"subset sizes N must be >= 2 .*got " + re.escape(str(list(ns)))):
            run_finetune(tmp_path / "none.pt", tmp_path / "data", tmp_path / "ft", tasks=["liver"], ns=ns)
    assert not (tmp_path / "ft").exists()


def test_a_seed_given_as_4_0_or_text_is_seed_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check_seed reads 4.0 and "4" as 4, but finetune went on with the unchecked value: 4.0 failed deep in
    derive(), "4" drew another stream than 4 (other subsets, decoders and steps) without a word."""
    runs = {}
    for name, seed in (("int", 4), ("float", 4.0), ("text", "4")):
        (tmp_path / name).mkdir()
        rec, rows = _run(tmp_path / name, monkeypatch, ns=(4,), seed=seed)
        runs[name] = ([_seed(j.generator) for j in rec.jobs], [s[3] for s in rec.starts],
                      [(r["method"], r["case"]) for r in rows])
    assert runs["float"] == runs["int"] == runs["text"]


def _timeless(text: str) -> list[str]:
    """The lines of a fine-tuning CSV without their last column, ``seconds`` (wall time: a redone training's
    differs on a loaded machine)."""
    lines = text.splitlines()
    assert lines and lines[0].endswith(",seconds")
    return [line.rsplit(",", 1)[0] for line in lines]


def test_a_row_cut_by_an_interrupted_write_is_refused_or_redone_on_resume(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A hard stop inside a write left the last row cut short; --resume then appended after it, gluing the next
    row onto the cut one. Now reading names the cut, and a resume rewrites the complete trainings and redoes it."""
    _, first = _run(tmp_path, monkeypatch, ns=(2,), repeats=2, methods=("scratch_ft",))
    p = tmp_path / "ft.csv"
    whole = p.read_text()
    p.write_text(whole[:-3])  # inside the last number: the row would still parse
    with pytest.raises(HyperkitError, match=r"ft\.csv: its last row \(line \d+\) was cut short"):
        read_finetune(p)
    rec, rows = _run(tmp_path, monkeypatch, ns=(2,), repeats=2, methods=("scratch_ft",), resume=True)
    assert [_seed(j.generator) for j in rec.jobs] == \
        [_seed(torch_generator(0, "finetune_steps", "scratch_ft", "T", 2, 1))]
    assert _timeless(p.read_text()) == _timeless(whole)  # the same file as an uninterrupted run
    assert len(rows) == len(first)


def test_a_training_with_a_missing_test_case_row_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Done-ness counted any row of a (task, N, repeat, start): one that had lost a test-case row was never
    scored on that case. Now it needs every test case's row; the others stay done."""
    _, first = _run(tmp_path, monkeypatch, ns=(8,), repeats=2, methods=("scratch_ft",))
    p = tmp_path / "ft.csv"
    whole = p.read_text()
    lines = whole.splitlines(keepends=True)
    assert sum(x.split(",")[2] == "0" for x in lines[1:]) == 2  # N = 8 of 10 cases: two test cases
    first_of_repeat0 = next(i for i, x in enumerate(lines[1:], 1) if x.split(",")[2] == "0")
    p.write_text("".join(x for i, x in enumerate(lines) if i != first_of_repeat0))
    rec, rows = _run(tmp_path, monkeypatch, ns=(8,), repeats=2, methods=("scratch_ft",), resume=True)
    assert [_seed(j.generator) for j in rec.jobs] == \
        [_seed(torch_generator(0, "finetune_steps", "scratch_ft", "T", 8, 0))]
    assert sorted(_timeless(p.read_text())) == sorted(_timeless(whole))  # every row once, repeat 0 now last
    assert len(rows) == len(first)
