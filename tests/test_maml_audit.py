"""Audit tests of :mod:`hyperkit.evaluation.maml`: organs, folds, rows, resume, exposure and Table 3,
with the expensive training and scoring replaced by fakes that record their arguments."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from hyperkit.config import load_profile, protocol_for
from hyperkit.config.sections import MamlConfig
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
from hyperkit.errors import HyperkitError
from hyperkit.evaluation import maml as emaml
from hyperkit.evaluation.maml import (MAML_METHOD, PAPER_SAW, OrganTask, check_organs, exposure, maml_rows,
                                      resolve_organs, run_fold, run_maml, table3, table3_of_run)
from hyperkit.evaluation.protocol import one_shot_plan, read_results
from hyperkit.evaluation.tables import paper_tables
from hyperkit.model.unet import UNet3D
from hyperkit.training.maml import MetaResult
from tiny import TINY_MODEL, untrained_checkpoint

S = 16
TINY_MAML = {"shots": 2, "queries": 1, "inner_steps": 3, "inner_lr": 0.25, "meta_iterations": 2, "meta_batch": 2,
             "meta_lr": 0.001, "first_order": True, "augment": False, "bce_weight": 0.1}


def _mcfg(**changes: Any) -> MamlConfig:
    return dataclasses.replace(MamlConfig.from_mapping(TINY_MAML), **changes)


def _ecfg(draws: int = 2, shots: int = 2):
    return dataclasses.replace(protocol_for(load_profile("quick"), draws=draws, shots=shots), tau=3.0)


# ------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Liver in an MSD task and in TotalSegmentator, spleen MSD only, kidneys TotalSegmentator; an MR spleen."""
    root = tmp_path_factory.mktemp("audit") / "data"
    write_sample_msd(root, "Task03_Liver", n_cases=6, labels=("liver", "cancer"))
    write_sample_msd(root, "Task09_Spleen", n_cases=6, labels=("spleen",))
    write_sample_msd(root, "Task01_Spleenmr", n_cases=6, channels=("MR",), labels=("spleen",))
    write_sample_totalseg(root, n_cases=6, structures=("kidney_right", "kidney_left", "liver"))
    return root


def test_resolve_organs_prefers_totalseg_then_task_id_and_only_ct(data: Path) -> None:
    """Each organ's task: TotalSegmentator before MSD, CT only, first task id; roles default 'unused' split-less."""
    datasets = discover_datasets(data)
    got = {o.organ: o.task for o in resolve_organs(datasets, ["spleen", "liver", "kidney_left"])}
    assert got == {"spleen": "msd/Task09_Spleen/spleen@CT", "liver": "totalseg/TotalSegmentator/liver@CT",
                   "kidney_left": "totalseg/TotalSegmentator/kidney_left@CT"}
    only_msd = [d for d in datasets if d.layout == "msd"]
    assert resolve_organs(only_msd, ["liver", "spleen"])[0].task == "msd/Task03_Liver/liver@CT"


def test_resolve_organs_roles_and_seen_cases(data: Path) -> None:
    """A training task's seen cases are its training-split subjects; any other role sees none."""
    datasets = discover_datasets(data)
    split = {"train": ["totalseg/TotalSegmentator/liver@CT", "msd/Task09_Spleen/spleen@CT"],
             "val": ["totalseg/TotalSegmentator/kidney_left@CT"],
             "heldout": ["totalseg/TotalSegmentator/kidney_right@CT"]}
    organs = {o.organ: o for o in resolve_organs(datasets, ["spleen", "liver", "kidney_left", "kidney_right"], split)}
    assert organs["liver"].role == "train" and organs["kidney_left"].role == "val"
    assert organs["kidney_right"].role == "heldout"
    ts = next(d for d in datasets if d.layout == "totalseg")
    assert organs["liver"].seen_cases == frozenset(c.case_id for c in ts.cases if c.split == "train")
    assert 0 < len(organs["liver"].seen_cases) < len(ts.cases)
    spleen_ds = next(d for d in datasets if d.root.name == "Task09_Spleen")
    assert organs["spleen"].seen_cases == frozenset(c.case_id for c in spleen_ds.cases)  # no split: all trained on
    assert organs["kidney_left"].seen_cases == frozenset() == organs["kidney_right"].seen_cases


def test_resolve_organs_refusals_name_the_offender(data: Path) -> None:
    """Repeated organs and a single organ are refused, with the organs in the message."""
    datasets = discover_datasets(data)
    with pytest.raises(ValueError, match=r"organs repeat: \['liver', 'spleen', 'liver'\]"):
        resolve_organs(datasets, ["liver", "spleen", "liver"])
    with pytest.raises(ValueError, match=r"at least two organs, got \['liver'\]"):
        resolve_organs(datasets, ["liver"])


def test_check_organs_boundaries() -> None:
    """shots + 1 cases pass, shots are refused with the counts, none is 'no case has it labelled'."""
    organs = [OrganTask("spleen", "a@CT", "train", frozenset()), OrganTask("liver", "b@CT", "train", frozenset())]
    check_organs(SimpleNamespace(case_ids={"a@CT": ["c"] * 3, "b@CT": ["c"] * 4}), organs, 2)
    with pytest.raises(ValueError, match=r"'liver' \(b@CT\): 2 labelled case\(s\); 2 supports .* at least 3"):
        check_organs(SimpleNamespace(case_ids={"a@CT": ["c"] * 3, "b@CT": ["c"] * 2}), organs, 2)
    with pytest.raises(ValueError, match=r"'spleen' \(a@CT\): no case has it labelled"):
        check_organs(SimpleNamespace(case_ids={"b@CT": ["c"] * 9}), organs, 2)


# ------------------------------------------------------------------------------ maml_rows
class _Fakes:
    """Fakes for adapt / predict / score / meta_train / init_unet / evaluate that record their calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.adapt: list[tuple[Any, list[int], MamlConfig]] = []
        self.predict: list[tuple[Any, list[int]]] = []
        self.score: list[tuple[Any, float]] = []
        self.meta: list[dict[str, Any]] = []
        self.init: list[tuple[int, int, str]] = []
        self.evaluate: list[dict[str, Any]] = []
        monkeypatch.setattr(emaml, "adapt", self._adapt)
        monkeypatch.setattr(emaml, "predict", self._predict)
        monkeypatch.setattr(emaml, "score", self._score)
        monkeypatch.setattr(emaml, "meta_train", self._meta_train)
        monkeypatch.setattr(emaml, "init_unet", self._init_unet)
        monkeypatch.setattr(emaml, "evaluate", self._evaluate)

    def _adapt(self, net: Any, images: torch.Tensor, masks: torch.Tensor, cfg: MamlConfig) -> tuple[Any, list]:
        self.adapt.append((net, [int(v) for v in images[:, 0, 0, 0, 0]], cfg))
        return ("adapted", net), []

    def _predict(self, unet: Any, images: torch.Tensor) -> torch.Tensor:
        self.predict.append((unet, [int(v) for v in images[:, 0, 0, 0, 0]]))
        return images

    def _score(self, preds: torch.Tensor, masks: torch.Tensor, spacing: Any, tau: float) -> list:
        self.score.append((tuple(spacing), tau))
        return [(i / 100, i / 100 + 0.001, i / 100 + 0.002) for i in (int(v) for v in preds[:, 0, 0, 0, 0])]

    def _meta_train(self, net: Any, bank: TaskBank, cfg: MamlConfig, seed: int, fold: str, **kw: Any) -> MetaResult:
        self.meta.append({"tasks": list(bank.task_ids), "cfg": cfg, "seed": seed, "fold": fold})
        return MetaResult(cfg.meta_iterations, 1.5, [{"iteration": 0, "tasks": bank.task_ids[:1]}],
                          sorted(bank.task_ids))

    def _init_unet(self, base_width: int, seed: int, fold: str) -> UNet3D:
        self.init.append((base_width, seed, fold))
        return UNet3D(8)

    def _evaluate(self, hyper: Any, bank: TaskBank, cfg: Any, out_csv: Any, *, methods: Any, seed: int,
                  resume: bool, progress: bool) -> tuple[list, dict]:
        self.evaluate.append({"seed": seed, "resume": resume, "methods": list(methods), "draws": cfg.draws,
                              "shots": cfg.shots})
        rows = []
        for t in bank.task_ids:
            ids = bank.case_ids[t]
            plan = one_shot_plan(len(ids), cfg, seed, t)
            test = set(plan.split.test) if plan.split else set()
            for d, (sup, query) in enumerate(zip(plan.supports, plan.queries)):
                rows += [{"task": t, "method": "hyper_unet", "draw": d, "support": "+".join(ids[i] for i in sup),
                          "case": ids[i], "in_test_split": i in test, "dsc": 0.9, "nsd": 0.8, "nsd_voxel": 0.7,
                          "fit_seconds": 0.0} for i in query]
        return rows, {}


def _index_bank(tasks: dict[str, int], spacing: tuple[float, ...] = (2.0, 3.0, 4.0)) -> TaskBank:
    """Patches ``(n, 1, 2, 2, 2)`` whose value is the case index (so fakes can tell which cases they got)."""
    images = {t: torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 1, 2, 2, 2).clone()
              for t, n in tasks.items()}
    masks = {t: torch.zeros(n, 1, 2, 2, 2) for t, n in tasks.items()}
    return TaskBank(images, masks, {t: [f"{t[0]}{i}" for i in range(n)] for t, n in tasks.items()}, spacing)


def test_maml_rows_follow_the_protocol_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per draw: adapt on the plan's supports, predict with the adapted net on its queries, columns in order."""
    fakes = _Fakes(monkeypatch)
    bank = _index_bank({"x@CT": 9})
    ecfg, mcfg = _ecfg(draws=3), _mcfg()
    net = object()
    rows = maml_rows(net, bank, "x@CT", ecfg, mcfg, 7)
    plan = one_shot_plan(9, ecfg, 7, "x@CT")
    assert plan.split is not None and plan.on_test_split
    assert [a[1] for a in fakes.adapt] == [list(s) for s in plan.supports]
    assert all(a[0] is net and a[2] is mcfg for a in fakes.adapt)
    assert [p[1] for p in fakes.predict] == [list(q) for q in plan.queries]
    assert all(p[0] == ("adapted", net) for p in fakes.predict)
    assert {s for s in fakes.score} == {((2.0, 3.0, 4.0), 3.0)}
    expected = [(d, "+".join(f"x{i}" for i in sup), f"x{i}", i in set(plan.split.test), i / 100, i / 100 + 0.001,
                 i / 100 + 0.002) for d, (sup, query) in enumerate(zip(plan.supports, plan.queries)) for i in query]
    assert [(r["draw"], r["support"], r["case"], r["in_test_split"], r["dsc"], r["nsd"], r["nsd_voxel"])
            for r in rows] == expected
    assert {r["task"] for r in rows} == {"x@CT"} and {r["method"] for r in rows} == {MAML_METHOD}
    assert all(r["in_test_split"] for r in rows) and {r["draw"] for r in rows} == {0, 1, 2}
    other = maml_rows(net, bank, "x@CT", ecfg, mcfg, 8)  # the seed picks the draws
    assert [r["support"] for r in other] != [r["support"] for r in rows]


# ------------------------------------------------------------------------------ run_fold
def test_run_fold_trains_without_the_held_out_task_then_reuses_by_key(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """A fold meta-trains on the other tasks with (seed, organ), saves key + JSON, then is reused only for its key."""
    fakes = _Fakes(monkeypatch)
    bank = _index_bank({"a@CT": 3, "b@CT": 3, "c@CT": 3})
    organ = OrganTask("liver", "b@CT", "train", frozenset())
    key = {"organs": {"liver": "b@CT"}, "maml": _mcfg().as_dict(), "seed": 5}
    path = tmp_path / "folds" / "liver.pt"
    path.parent.mkdir()
    net, result, reused = run_fold(bank, organ, _mcfg(), 8, 5, path, key)
    assert not reused and fakes.init == [(8, 5, "liver")]
    assert fakes.meta == [{"tasks": ["a@CT", "c@CT"], "cfg": _mcfg(), "seed": 5, "fold": "liver"}]
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["key"] == key and record["tasks_seen"] == ["a@CT", "c@CT"] and record["iterations"] == 2
    assert torch.load(path, weights_only=True)["key"] == key
    net2, result2, reused2 = run_fold(bank, organ, _mcfg(), 8, 5, path, key)
    assert reused2 and len(fakes.meta) == 1 and result2.tasks_seen == ["a@CT", "c@CT"] and result2.iterations == 2
    with pytest.raises(HyperkitError, match="another seed"):
        run_fold(bank, organ, _mcfg(), 8, 5, path, {**key, "seed": 6})


def test_run_fold_with_only_the_json_trains_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fold interrupted after its JSON but before its weights is meta-trained again, not read."""
    fakes = _Fakes(monkeypatch)
    bank = _index_bank({"a@CT": 3, "b@CT": 3})
    path = tmp_path / "spleen.pt"
    path.with_suffix(".json").write_text("{}")
    _, _, reused = run_fold(bank, OrganTask("spleen", "a@CT", "train", frozenset()), _mcfg(), 8, 0, path, {"seed": 0})
    assert not reused and len(fakes.meta) == 1 and path.is_file()


# ------------------------------------------------------------------------------ exposure and the table
ORG = [OrganTask("spleen", "s@CT", "train", frozenset({"c1", "c2"})), OrganTask("liver", "l@CT", "val", frozenset()),
       OrganTask("kidney_left", "k@CT", "heldout", frozenset())]


def test_exposure_words() -> None:
    """The MAML and Hyper U-Net cells of 'what it saw', word for word, from hand-built folds."""
    folds = {"spleen": {"tasks_seen": ["l@CT", "k@CT"], "iterations": 7}, "liver": {"tasks_seen": [], "iterations": 0}}
    saw = exposure(ORG, _mcfg(first_order=False), folds, 12, {"spleen": ["c1", "c3", "c4"], "liver": ["c1"]})
    assert saw["maml"] == ("second-order MAML from a random initialisation, k = 3 inner SGD steps at α = 0.25 on 2 "
                           "supports; each column's model meta-trained on the other organs only — spleen: liver, "
                           "kidney_left (7 meta-iterations); liver: nothing (0 meta-iterations)")
    assert saw["hyper_unet"] == ("the hypernetwork's 12 training tasks; of these organs: spleen training tasks (1 of 3 "
                                 "spleen test cases among the subjects it trained on); liver validation tasks (never "
                                 "trained on); kidney_left never seen (held out)")
    assert {k: saw[k] for k in PAPER_SAW} == PAPER_SAW
    assert exposure(ORG, _mcfg(), {}, 0, {})["maml"].startswith("first-order MAML")


def _rows() -> list[dict[str, Any]]:
    """Both methods on 2 draws × 2 cases of s@CT and l@CT: MAML 0.5/0.6/0.7/0.8 (s) and 0.2 (l); Hyper +0.1 / +0.3."""
    rows = []
    for t, base, gap in (("s@CT", [0.5, 0.6, 0.7, 0.8], 0.1), ("l@CT", [0.2] * 4, 0.3)):
        for j, v in enumerate(base):
            for method, dv, nsd in ((MAML_METHOD, 0.0, 0.25), ("hyper_unet", gap, 0.75)):
                rows.append({"task": t, "method": method, "draw": j // 2, "support": "a+b", "case": f"c{j % 2}",
                             "in_test_split": True, "dsc": v + dv, "nsd": nsd, "nsd_voxel": 0.1, "fit_seconds": 0.0})
    return rows


def test_table3_cells() -> None:
    """Kit rows (DSC mean ± SD), quoted paper rows, paired Hyper − MAML cells and NSD notes in the right places."""
    saw = {"maml": "SAW-M", "hyper_unet": "SAW-H", **PAPER_SAW}
    text = table3(_rows(), ORG, saw, _mcfg(), 2.5)
    lines = text.splitlines()
    assert lines[0] == "| model | spleen | liver | kidney_left | what it saw in training |"
    assert lines[1] == "|---|---:|---:|---:|---|"
    assert lines[2] == ("| **MAML 2-shot, kit** (first-order, k = 3, α = 0.25) | 0.650 ± 0.112 | 0.200 ± 0.000 "
                        "| — | SAW-M |")
    assert lines[3] == "| **Hyper U-Net 2-shot, kit** | 0.750 ± 0.112 | 0.500 ± 0.000 | — | SAW-H |"
    paper = paper_tables()["table3_five_shot"]
    assert lines[4].startswith("| MAML 5-shot, Alsaleh") and lines[5].startswith("| Hyper U-Net 5-shot, paper")
    for line, key, what in ((lines[4], "maml_alsaleh2024", "paper_maml"), (lines[5], "hyper_unet", "paper_hyper")):
        cells = [c.strip() for c in line.split("|")[2:-1]]
        assert cells == [f"{paper[o.organ][key]:.3f}" if o.organ in paper else "—" for o in ORG] + [PAPER_SAW[what]]
    paired = [c.strip() for c in lines[6].split("|")[2:-1]]
    assert paired[0].startswith("+0.100 [") and paired[0].endswith("(4)")
    assert paired[1].startswith("+0.300 [") and paired[1].endswith("(4)") and paired[2] == "—"
    assert paired[3].startswith("all organs: +0.200 [") and paired[3].endswith("(8 pairs)")
    assert "NSD at 2.5 mm — MAML: spleen 0.250, liver 0.250; Hyper U-Net: spleen 0.750, liver 0.750." in text
    assert "Tasks: spleen = `s@CT`; liver = `l@CT`; kidney_left = `k@CT`." in text


def test_table3_of_run_reads_the_record_and_refuses_others() -> None:
    """The record's organs (organ -> task), budget, tau and exposure make the table; a record without tau is refused."""
    protocol = {"organs": {"spleen": "s@CT", "liver": "l@CT"}, "maml": _mcfg().as_dict(), "evaluate": {"tau": 2.5}}
    unfinished = table3_of_run(_rows(), {"protocol": protocol})
    assert "| spleen | liver |" in unfinished and "0.650 ± 0.112" in unfinished and "NSD at 2.5 mm" in unfinished
    assert "the run has not finished" in unfinished
    done = table3_of_run(_rows(), {"protocol": protocol, "exposure": {"maml": "SAW-M", "hyper_unet": "SAW-H"}})
    assert "| SAW-M |" in done and "| SAW-H |" in done and "not finished" not in done
    with pytest.raises(HyperkitError, match="not the record of a MAML run.*tau"):
        table3_of_run(_rows(), {"protocol": {**protocol, "evaluate": {}}})
    with pytest.raises(HyperkitError, match="not the record of a MAML run"):
        table3_of_run(_rows(), {})


# ------------------------------------------------------------------------------ run_maml, with fakes
def _checkpoint(path: Path) -> Path:
    cfg = load_profile("quick", {"data": {"patch_size": S}, "model": TINY_MODEL,
                                 "evaluate": {"draws": 2, "maml": TINY_MAML}})
    cfg["name"] = "tiny-maml-audit"
    return untrained_checkpoint(cfg, path)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ck") / "best.pt")


ORGANS3 = ("spleen", "liver", "kidney_left")


def test_run_maml_argument_checks(data: Path, ckpt: Path, tmp_path: Path) -> None:
    """Negative meta_iterations, draws < 1 and workers < 1 are refused with the value, before anything is written."""
    with pytest.raises(ValueError, match="meta_iterations must be >= 0, got -1"):
        run_maml(ckpt, data, tmp_path / "a", meta_iterations=-1, progress=False)
    with pytest.raises(ValueError, match="draws must be >= 1, got 0"):
        run_maml(ckpt, data, tmp_path / "b", draws=0, progress=False)
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        run_maml(ckpt, data, tmp_path / "c", workers=0, progress=False)
    assert not any((tmp_path / x).exists() for x in "abc")


def test_run_maml_wiring_record_and_resume(monkeypatch: pytest.MonkeyPatch, data: Path, ckpt: Path,
                                           tmp_path: Path) -> None:
    """Seeds, budget, folds, rows, record and resume of a whole run, training and scoring faked."""
    fakes = _Fakes(monkeypatch)
    out = tmp_path / "run"
    split = tmp_path / "split.yaml"
    split.write_text("train: ['*liver*', '*kidney_right*']\nval: ['*spleen@CT']\nheldout: ['*kidney_left*']\n")
    run = run_maml(ckpt, data, out, organs=ORGANS3, meta_iterations=3, draws=3, seed=4, split=split, progress=False)
    tasks = {o.organ: o.task for o in run.organs}
    assert list(tasks) == list(ORGANS3)
    assert fakes.evaluate == [{"seed": 4, "resume": True, "methods": ["hyper_unet"], "draws": 3, "shots": 2}]
    # the folds run side by side (any order); each once, and their rows and records come in the organs' order
    assert sorted(m["fold"] for m in fakes.meta) == sorted(ORGANS3) and {m["seed"] for m in fakes.meta} == {4}
    assert all(m["cfg"].meta_iterations == 3 and tasks[m["fold"]] not in m["tasks"] and len(m["tasks"]) == 2
               for m in fakes.meta)
    # the starts are made first, in the calling thread (init_unet seeds torch's global generator)
    assert [i[1:] for i in fakes.init] == [(4, o) for o in ORGANS3] and {i[0] for i in fakes.init} == {8}
    maml = [r for r in run.rows if r["method"] == MAML_METHOD]
    assert list(dict.fromkeys(r["task"] for r in maml)) == [tasks[o] for o in ORGANS3]
    assert list(run.folds) == list(ORGANS3)
    n = len(run.rows)
    pairs = {m: sorted((r["task"], r["draw"], r["support"], r["case"], r["in_test_split"]) for r in run.rows
                       if r["method"] == m) for m in (MAML_METHOD, "hyper_unet")}
    assert pairs[MAML_METHOD] == pairs["hyper_unet"]  # the same draws, supports and cases as the Hyper U-Net's
    assert [o.role for o in run.organs] == ["val", "train", "heldout"]
    for organ, task in tasks.items():
        plan = one_shot_plan(6, protocol_for(run_cfg(ckpt), draws=3, shots=2), 4, task)
        mine = [r for r in maml if r["task"] == task]
        assert len(mine) == sum(len(q) for q in plan.queries) and {r["draw"] for r in mine} == {0, 1, 2}
    assert list(map(_key, read_results(out / "maml.csv"))) == list(map(_key, run.rows))
    record = json.loads((out / "maml.json").read_text())
    assert list(record["folds"]) == list(ORGANS3)
    assert record["complete"] and record["protocol"]["seed"] == 4 and record["protocol"]["maml"]["meta_iterations"] == 3
    assert record["organs"]["liver"] == {"task": tasks["liver"], "role": run.organs[1].role, "cases": 6}
    assert all("curve" not in f and f["reused"] is False and f["iterations"] == 3 for f in record["folds"].values())
    assert run.folds["spleen"]["curve"] and run.folds["spleen"]["tasks_seen"] == sorted(set(tasks.values()) -
                                                                                       {tasks["spleen"]})
    assert record["exposure"]["hyper_unet"].startswith("the hypernetwork's 3 training tasks; of these organs: liver ") \
        and (out / "table3.md").read_text() == run.table + "\n"
    assert run.paired()["spleen"].diff == pytest.approx(
        sum(0.9 - r["dsc"] for r in maml if r["task"] == tasks["spleen"] and r["in_test_split"]) /
        sum(r["task"] == tasks["spleen"] and r["in_test_split"] for r in maml))

    with pytest.raises(HyperkitError, match="pass --resume"):
        run_maml(ckpt, data, out, organs=ORGANS3, meta_iterations=3, draws=3, seed=4, progress=False)
    # resume: liver's MAML rows cut to draw 0 (an interrupted fold's rows) -> liver's rows made again, the rest kept
    rows = read_results(out / "maml.csv")
    cut = [r for r in rows if not (r["method"] == MAML_METHOD and r["task"] == tasks["liver"] and r["draw"] > 0)]
    for r in cut:
        if r["method"] == MAML_METHOD and r["task"] == tasks["spleen"]:
            r["dsc"] = 0.123  # a kept row is kept as it is
    emaml._write_rows(out / "maml.csv", cut)
    fakes.meta.clear(), fakes.adapt.clear()
    first = record["created"]
    again = run_maml(ckpt, data, out, organs=ORGANS3, meta_iterations=3, draws=3, seed=4, split=split, resume=True,
                     progress=False)
    assert fakes.meta == [] and all(f["reused"] for f in again.folds.values())
    assert all(f["reused"] for f in json.loads((out / "maml.json").read_text())["folds"].values())
    assert [s["created"] for s in json.loads((out / "maml.json").read_text())["earlier_sessions"]] == [first]
    assert len(fakes.adapt) == 3  # liver's three draws only
    assert len(again.rows) == n
    assert sorted((r["task"], r["method"], r["draw"], r["case"]) for r in again.rows) == \
        sorted((r["task"], r["method"], r["draw"], r["case"]) for r in run.rows)
    assert {r["dsc"] for r in again.rows if r["method"] == MAML_METHOD and r["task"] == tasks["spleen"]} == {0.123}
    # another seed, or another protocol (draws: not part of the folds' key), in the same folder is refused
    with pytest.raises(HyperkitError, match="another seed"):
        run_maml(ckpt, data, out, organs=ORGANS3, meta_iterations=3, draws=3, seed=5, resume=True, progress=False)
    with pytest.raises(HyperkitError, match="holds a MAML run made with another evaluate.draws"):
        run_maml(ckpt, data, out, organs=ORGANS3, meta_iterations=3, draws=2, seed=4, resume=True, progress=False)
    # other organs are named once, as organs (it said "another organs.kidney_left, organs.liver")
    with pytest.raises(HyperkitError, match=r"made with another set of organs \(\w+ differ\); choose"):
        run_maml(ckpt, data, out, organs=ORGANS3[:2], meta_iterations=3, draws=3, seed=4, split=split, resume=True,
                 progress=False)


def test_run_maml_refuses_an_organ_with_only_shots_cases(monkeypatch: pytest.MonkeyPatch, ckpt: Path,
                                                         tmp_path: Path) -> None:
    """An organ with exactly `shots` (2) labelled cases is refused with its count, before any run file."""
    _Fakes(monkeypatch)
    root = tmp_path / "data"
    write_sample_msd(root, "Task03_Liver", n_cases=3, labels=("liver", "cancer"))
    write_sample_msd(root, "Task09_Spleen", n_cases=2, labels=("spleen",))
    with pytest.raises(ValueError,
                       match=r"'spleen' .*: 2 labelled case\(s\); 2 supports and a test case need at least 3"):
        run_maml(ckpt, root, tmp_path / "out", organs=("liver", "spleen"), progress=False)
    assert not (tmp_path / "out").exists()


def run_cfg(ckpt: Path) -> dict:
    return torch.load(ckpt, weights_only=True)["config"]


def _key(r: dict) -> tuple:
    return r["task"], r["method"], r["draw"], r["case"], round(r["dsc"], 6)


def test_run_maml_uses_the_checked_seed(monkeypatch: pytest.MonkeyPatch, data: Path, ckpt: Path,
                                        tmp_path: Path) -> None:
    """A seed check_seed accepts as 4 (4.0) runs and records as the integer 4, the draws of seed 4."""
    fakes = _Fakes(monkeypatch)
    run = run_maml(ckpt, data, tmp_path / "f", organs=("spleen", "liver"), draws=2, seed=4.0, progress=False)
    record = json.loads((tmp_path / "f" / "maml.json").read_text())
    assert record["protocol"]["seed"] == 4 and type(record["protocol"]["seed"]) is int
    assert {type(m["seed"]) for m in fakes.meta} == {int} and fakes.evaluate[0]["seed"] == 4
    same = run_maml(ckpt, data, tmp_path / "i", organs=("spleen", "liver"), draws=2, seed=4, progress=False)
    assert [(r["task"], r["method"], r["draw"], r["support"], r["case"]) for r in run.rows] == \
        [(r["task"], r["method"], r["draw"], r["support"], r["case"]) for r in same.rows]
