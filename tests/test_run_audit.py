"""Audit of hyperkit.evaluation.run: task patterns, timings, held-out tasks, the protocol record,
resume/reuse refusal, baselines copied with ``baselines_from``, and the model-file names.

The run-level tests replace the costly :func:`~hyperkit.evaluation.protocol.evaluate` by a fake that
writes a few rows the way it does (keeping the pairs of a resumed file, facts only for what it trains).
"""

from __future__ import annotations

import json

import pytest

import hyperkit.evaluation.run as run
from hyperkit.config import load_profile, protocol_for
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
from hyperkit.errors import HyperkitError
from hyperkit.evaluation.protocol import read_results, write_results
from hyperkit.evaluation.run import (_baseline_protocol, _copy_baselines, _same_protocol, heldout_bank,
                                     heldout_tasks, model_path, models_dir, resolve_tasks, run_evaluation, timings)
from tiny import TINY_MODEL, untrained_checkpoint

LIVER, CANCER = "msd/Task03_Liver/liver@CT", "msd/Task03_Liver/cancer@CT"
SPLEEN = "msd/Task09_Spleen/spleen@CT"


def _row(task, method, draw=0, case="c0", dsc=0.5, fit=1.0):
    return {"task": task, "method": method, "draw": draw, "support": "s", "case": case, "in_test_split": True,
            "dsc": dsc, "nsd": dsc, "nsd_voxel": dsc, "fit_seconds": fit}


# ---------------------------------------------------------------------------- resolve_tasks


def test_resolve_tasks_keeps_the_pattern_order_without_repeats():
    ids = [SPLEEN, CANCER, LIVER]
    assert resolve_tasks(["spleen", "liver"], ids) == [SPLEEN, LIVER]
    # a task named twice is listed once, where it first came
    assert resolve_tasks(["liver", "*Liver*", "spleen"], ids) == [LIVER, CANCER, SPLEEN]
    assert resolve_tasks([], ids) == [CANCER, LIVER, SPLEEN]  # no pattern: every task, sorted


# ---------------------------------------------------------------------------- timings


def test_timings_take_the_median_per_model_and_the_ratio_of_medians():
    rows = [_row("A", "hyper_unet", 0, c, fit=1.0) for c in ("c0", "c1", "c2")]  # one model, three cases
    rows += [_row("A", "hyper_unet", 1, "c0", fit=5.0), _row("B", "hyper_unet", 0, "c0", fit=6.0)]
    rows += [_row("A", "rand_unet", 0, "c0", fit=2.0), _row("A", "rand_unet", 1, "c0", fit=4.0)]
    rows += [_row("A", "conv_unet", 0, "c0", fit=99.0)]
    info = {"conv_unet": {t: {"seconds_to_best": s, "seconds": 100.0} for t, s in (("A", 10.0), ("B", 20.0),
                                                                                      ("C", 45.0))}}
    out = timings(rows, info)
    # models 1, 5, 6 s -> 5; rand 2, 4 -> 3; conv to best 10, 20, 45 -> 20; 20 / 5 = 4
    assert out == {"hyper_unet_fit_seconds_median": 5.0, "rand_unet_fit_seconds_median": 3.0,
                   "conv_unet_seconds_to_best_median": 20.0, "conv_over_hyper_ratio": 4.0}


def test_timings_without_a_hyper_time_give_no_ratio():
    info = {"conv_unet": {"A": {"seconds_to_best": 3.0}}}
    assert timings([_row("A", "hyper_unet", fit=0.0)], info) == {
        "hyper_unet_fit_seconds_median": 0.0, "conv_unet_seconds_to_best_median": 3.0}
    assert timings([_row("A", "copy_support")], {}) == {}


# ---------------------------------------------------------------------------- held-out tasks


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("runaudit")
    data = root / "data"
    write_sample_msd(data, "Task03_Liver", n_cases=4, labels=("liver", "cancer"))
    write_sample_msd(data, "Task09_Spleen", n_cases=4, labels=("spleen",))
    write_sample_totalseg(data, n_cases=3)
    cfg = load_profile("quick", {"data": {"patch_size": 16}, "model": TINY_MODEL})
    ckpt = untrained_checkpoint({k: v for k, v in cfg.items() if k != "evaluate"}, root / "best.pt")
    split = root / "split.yaml"  # spleen is validation here, not held out
    split.write_text('heldout: ["msd/Task03_*"]\nval: ["msd/Task09_*"]\ntrain: ["totalseg/*"]\n')
    return root, data, ckpt, split


def test_heldout_tasks_follow_the_split(setup):
    _, data, _, split = setup
    assert heldout_tasks(data) == sorted([LIVER, CANCER, SPLEEN])  # the paper's split: every MSD task
    assert heldout_tasks(data, split=split) == sorted([LIVER, CANCER])  # a validation task is not held out
    with pytest.raises(ValueError, match="spleen"):
        heldout_tasks(data, ["spleen"], split=split)


def test_heldout_bank_keeps_the_chosen_tasks_of_the_split(setup, monkeypatch):
    _, data, _, split = setup
    seen = {}
    monkeypatch.setattr(run.TaskBank, "from_datasets",
                        lambda datasets, role, cfg, split_map, **kw: seen.update(role=role, split=split_map, **kw))
    heldout_bank(data, {}, ["liver"], split=split)
    assert seen["role"] == "heldout" and seen["split"]["val"] == ["msd/Task09_*"]
    assert seen["keep"](LIVER) and not seen["keep"](CANCER) and not seen["keep"](SPLEEN)
    heldout_bank(data, {}, split=split)  # every held-out task of the split: not the validation one
    assert seen["keep"](LIVER) and seen["keep"](CANCER) and not seen["keep"](SPLEEN)


# ---------------------------------------------------------------------------- run_evaluation with a fake evaluate


INTERRUPT = {"on": False}


@pytest.fixture()
def fake(monkeypatch):
    monkeypatch.setitem(INTERRUPT, "on", False)
    monkeypatch.setitem(INTERRUPT, "after_model", False)
    calls = []

    def evaluate(hyper, bank, ecfg, out, *, methods, seed, train_bank, resume, progress, save_model, on_facts):
        calls.append({"methods": list(methods), "train_bank": train_bank, "resume": resume})
        if INTERRUPT["on"]:
            raise KeyboardInterrupt
        if out.exists() and not resume:
            raise HyperkitError(f"{out}: exists")
        kept = read_results(out) if out.exists() else []
        need = lambda m: 1 if m in ("conv_unet", "all_unet") else ecfg.draws
        count = {}
        for r in kept:
            count[r["task"], r["method"]] = count.get((r["task"], r["method"]), 0) + 1
        done = {k for k, n in count.items() if n == need(k[1])}  # pairs with every row
        kept = [r for r in kept if (r["task"], r["method"]) in done]
        rows, info = list(kept), {"conv_unet": {}, "all_unet": {}}
        for t in bank.task_ids:
            for m in methods:
                if (t, m) in done:
                    continue
                if m in ("conv_unet", "all_unet"):
                    rows.append(_row(t, m, 0, "c0", dsc=0.25, fit=7.0))
                    if m == "conv_unet":
                        info[m][t] = {"seconds_to_best": 8.0 * len(calls), "made_by": len(calls)}
                    else:
                        info[m] = {"seconds_to_best": 9.0, "made_by": len(calls)}
                    write_results(out, rows)  # as the protocol's writer: the model's rows on disk, then its facts
                    on_facts(info)
                    if INTERRUPT["after_model"]:
                        raise KeyboardInterrupt
                else:
                    rows += [_row(t, m, d, "c0", dsc=0.75, fit=float(len(calls))) for d in range(ecfg.draws)]
        return write_results(out, rows), info

    monkeypatch.setattr(run, "evaluate", evaluate)
    monkeypatch.setattr(run, "TaskBank", type("TB", (), {"from_datasets": staticmethod(_small_bank)}))
    return calls


def _small_bank(datasets, role, cfg, split_map, keep=lambda t: True, **kw):
    from types import SimpleNamespace

    if role == "train":
        return SimpleNamespace(task_ids=["train-task"], role="train")
    tasks = [t.task_id for ds in datasets for t in ds.tasks() if t.task_id.startswith("msd/") and keep(t.task_id)]
    return SimpleNamespace(task_ids=tasks, case_ids={t: ["a", "b", "c", "d"] for t in tasks}, spacing=(4.0, 4.0, 4.0),
                           dropped=[])


def _ev(setup, out, **kw):
    _, data, ckpt, _ = setup
    kw = {"tasks": ["liver"], "methods": ["copy_support"], "draws": 1, "progress": False, **kw}
    return run_evaluation(ckpt, data, out, **kw)


def test_the_record_holds_the_chosen_tasks_in_order_and_the_tables(setup, fake, tmp_path):
    out = tmp_path / "r.csv"
    res = _ev(setup, out, tasks=["spleen", "liver"], seed=3)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["protocol"]["tasks"] == [SPLEEN, LIVER] and record["protocol"]["seed"] == 3
    assert record["complete"] and sorted(record["summary"]) == [f"{LIVER}|copy_support", f"{SPLEEN}|copy_support"]
    assert out.with_suffix(".md").read_text() == res.tables + "\n"
    assert "NSD@1 voxel (4 mm)" in res.table("table1_ct")


def test_another_seed_is_another_protocol(setup, fake, tmp_path):
    out = tmp_path / "r.csv"
    _ev(setup, out, seed=0)
    before = out.with_suffix(".json").read_text()
    with pytest.raises(HyperkitError, match="another protocol"):
        _ev(setup, out, seed=1, resume=True)
    assert out.with_suffix(".json").read_text() == before


def test_reuse_refuses_another_protocol_and_resumes_an_unfinished_run(setup, fake, tmp_path):
    out = tmp_path / "r.csv"
    _ev(setup, out, draws=2)
    before = out.with_suffix(".json").read_text()
    with pytest.raises(HyperkitError, match=r"another protocol \(other evaluate\.draws\)"):  # named what differs
        _ev(setup, out, draws=1, reuse=True)
    assert out.with_suffix(".json").read_text() == before
    assert len(fake) == 1  # refused before any work
    # an unfinished run of the same protocol is resumed, not returned as it is
    record = json.loads(before)
    out.with_suffix(".json").write_text(json.dumps({**record, "complete": False}))
    write_results(out, read_results(out)[:1])
    res = _ev(setup, out, draws=2, reuse=True)
    assert fake[-1]["resume"] is True and len(res.rows) == 2  # the cut pair made again, both draws
    resumed = json.loads(out.with_suffix(".json").read_text())  # the first session's code and machine kept
    assert [s["created"] for s in resumed["earlier_sessions"]] == [record["created"]]
    # a finished one is returned without computing
    n = len(fake)
    assert len(_ev(setup, out, draws=2, reuse=True).rows) == len(res.rows) and len(fake) == n


def test_a_record_whose_results_file_is_gone_is_computed_again(setup, fake, tmp_path):
    out = tmp_path / "r.csv"
    _ev(setup, out, draws=1)
    out.unlink()  # results.json of another protocol stays
    res = _ev(setup, out, draws=2, reuse=True)
    assert len(res.rows) == 2 and json.loads(out.with_suffix(".json").read_text())["protocol"]["evaluate"]["draws"] == 2


def test_the_all_unet_alone_gets_the_training_tasks(setup, fake, tmp_path):
    _ev(setup, tmp_path / "a.csv", methods=["all_unet"])
    _ev(setup, tmp_path / "c.csv", methods=["conv_unet"])
    assert fake[0]["train_bank"] is not None and fake[1]["train_bank"] is None


def test_too_many_shots_are_refused_with_a_supervised_method_beside(setup, fake, tmp_path):
    out = tmp_path / "r.csv"
    with pytest.raises(HyperkitError, match="shots 4"):
        _ev(setup, out, methods=["copy_support", "conv_unet"], shots=4)
    assert not out.exists() and not fake


# ---------------------------------------------------------------------------- protocols compared


def _protocol(methods=("hyper_unet", "conv_unet", "all_unet"), **evaluate):
    ev = protocol_for({"name": "quick"}).as_dict()
    for k, v in evaluate.items():
        ev[k] = {**ev[k], **v} if isinstance(v, dict) else v
    return {"version": 2, "checkpoint_sha256": "ck", "data": "/d", "data_fingerprint": "sha256:x", "profile": "quick",
            "tasks": [LIVER], "methods": list(methods), "seed": 0, "evaluate": ev}


def test_same_protocol_ignores_only_the_budget_of_an_absent_baseline():
    a = _protocol(methods=("hyper_unet",))
    b = _protocol(methods=("hyper_unet",), conv={"steps": 7})
    assert _same_protocol(a, b)
    assert not _same_protocol(_protocol(), _protocol(conv={"steps": 7}))
    # a record made before a setting existed compares at today's default
    old = json.loads(json.dumps(_protocol()))
    del old["evaluate"]["conv"]["bce_weight"]
    assert _same_protocol(old, _protocol())
    # another path to the same data is the same protocol
    assert _same_protocol({**_protocol(), "data": "/elsewhere"}, _protocol())


def test_baseline_protocol_drops_the_one_shot_settings_and_the_other_budget():
    a = _protocol(methods=("conv_unet",), draws=1)
    b = _protocol(methods=("hyper_unet", "conv_unet"), draws=3, all={"steps": 7})
    b["checkpoint_sha256"] = "other"
    assert _baseline_protocol(a, "conv_unet") == _baseline_protocol(b, "conv_unet")
    assert _baseline_protocol(a, "all_unet") != _baseline_protocol(b, "all_unet")
    assert _baseline_protocol(a, "conv_unet") != _baseline_protocol(_protocol(conv={"steps": 7}), "conv_unet")


# ---------------------------------------------------------------------------- _copy_baselines


CFG = {"model": {"base_width": 8}}


def _source(folder, protocol, rows, baselines=None, complete=True, width=8, models=()):
    folder.mkdir(parents=True)
    csv = folder / "r.csv"
    write_results(csv, rows)
    csv.with_suffix(".json").write_text(json.dumps({"complete": complete, "config": {"model": {"base_width": width}},
                                                    "protocol": protocol, "baselines": baselines or {}}))
    for name in models:
        models_dir(csv).mkdir(exist_ok=True)
        (models_dir(csv) / name).write_text(name)
    return csv


def test_copy_takes_each_baseline_of_this_protocol_from_the_first_source_that_has_it(tmp_path):
    ours = _protocol(methods=("hyper_unet", "conv_unet", "all_unet"))
    conv_only = _source(tmp_path / "a", _protocol(methods=("conv_unet",)),
                        [_row(LIVER, "conv_unet", dsc=0.1), _row(LIVER, "hyper_unet", dsc=0.9)],
                        {"conv_unet": {LIVER: {"seconds_to_best": 1.0}}},
                        models=[f"conv_unet-x.pt", "hyper_unet-x.pt"])
    both = _source(tmp_path / "b", _protocol(methods=("conv_unet", "all_unet")),
                   [_row(LIVER, "conv_unet", dsc=0.2), _row(LIVER, "all_unet", dsc=0.3)],
                   {"conv_unet": {LIVER: {"seconds_to_best": 2.0}}, "all_unet": {"seconds_to_best": 3.0}},
                   models=["conv_unet-x.pt", "all_unet-x.pt"])
    out = tmp_path / "o" / "r.csv"
    facts = _copy_baselines([conv_only, both], out, ours, CFG)
    assert facts == {"conv_unet": {LIVER: {"seconds_to_best": 1.0}}, "all_unet": {"seconds_to_best": 3.0}}
    assert sorted((r["method"], r["dsc"]) for r in read_results(out)) == [("all_unet", 0.3), ("conv_unet", 0.1)]
    assert sorted(p.name for p in models_dir(out).iterdir()) == ["all_unet-x.pt", "conv_unet-x.pt"]
    assert (models_dir(out) / "conv_unet-x.pt").read_text() == "conv_unet-x.pt"


def test_copy_takes_only_the_baselines_among_our_methods_and_of_our_budget(tmp_path):
    src = _source(tmp_path / "a", _protocol(all={"steps": 7}),
                  [_row(LIVER, "conv_unet", dsc=0.1), _row(LIVER, "all_unet", dsc=0.3)])
    out = tmp_path / "o.csv"
    assert list(_copy_baselines([src], out, _protocol(), CFG)) == ["conv_unet"]  # All U-Net: another budget
    assert [r["method"] for r in read_results(out)] == ["conv_unet"]
    out2 = tmp_path / "o2.csv"
    src2 = _source(tmp_path / "b", _protocol(), [_row(LIVER, "conv_unet"), _row(LIVER, "all_unet")])
    assert list(_copy_baselines([src2], out2, _protocol(methods=("hyper_unet", "conv_unet")), CFG)) == ["conv_unet"]
    assert [r["method"] for r in read_results(out2)] == ["conv_unet"]


@pytest.mark.parametrize("kw, words", [({"complete": False}, "not a finished"), ({"width": 16}, "U-Net width"),
                                       ({"conv": {"steps": 7}}, "differs in")])
def test_copy_refuses_a_source_it_cannot_use(tmp_path, kw, words):
    conv = kw.pop("conv", None)
    proto = _protocol(methods=("conv_unet",), **({"conv": conv} if conv else {}))
    src = _source(tmp_path / "a", proto, [_row(LIVER, "conv_unet")], **kw)
    with pytest.raises(HyperkitError, match=words):
        _copy_baselines([src], tmp_path / "o.csv", _protocol(methods=("conv_unet",)), CFG)
    assert not (tmp_path / "o.csv").exists()


def test_copied_baselines_and_their_facts_reach_the_run(setup, fake, tmp_path):
    first = tmp_path / "a.csv"
    _ev(setup, first, methods=["conv_unet"])
    ours = tmp_path / "b.csv"
    res = _ev(setup, ours, methods=["copy_support", "conv_unet"], baselines_from=first)
    assert fake[-1]["resume"] is True  # the copied rows are kept
    assert [m for m in fake[-1]["methods"]] == ["copy_support", "conv_unet"]
    assert res.record["baselines"]["conv_unet"] == json.loads(first.with_suffix(".json").read_text())["baselines"][
        "conv_unet"]
    assert len([r for r in res.rows if r["method"] == "conv_unet"]) == 1


# ---------------------------------------------------------------------------- model files


def test_model_files_sit_beside_the_results_named_by_method_and_task(tmp_path):
    assert models_dir(tmp_path / "res" / "r.csv") == tmp_path / "res" / "r-models"
    assert model_path("r.csv", "conv_unet", LIVER).name == "conv_unet-msd__Task03_Liver__liver_at_CT.pt"


# ---------------------------------------------------------------------------- training facts kept on resume


def test_resuming_a_finished_run_keeps_its_baselines_facts_and_timings(setup, fake, tmp_path):
    out = tmp_path / "r.csv"
    first = _ev(setup, out, tasks=["liver", "spleen"], methods=["conv_unet"]).record
    assert first["baselines"]["conv_unet"] == {LIVER: {"seconds_to_best": 8.0, "made_by": 1},
                                               SPLEEN: {"seconds_to_best": 8.0, "made_by": 1}}
    again = _ev(setup, out, tasks=["liver", "spleen"], methods=["conv_unet"], resume=True).record
    assert again["baselines"]["conv_unet"] == first["baselines"]["conv_unet"]  # nothing trained again
    assert again["timings"] == {"conv_unet_seconds_to_best_median": 8.0}
    # a pair made again brings its own facts; the kept pair keeps its old ones
    write_results(out, [r for r in read_results(out) if r["task"] != SPLEEN])
    third = _ev(setup, out, tasks=["liver", "spleen"], methods=["conv_unet"], resume=True).record
    assert third["baselines"]["conv_unet"] == {LIVER: {"seconds_to_best": 8.0, "made_by": 1},
                                               SPLEEN: {"seconds_to_best": 24.0, "made_by": 3}}
    assert third["timings"]["conv_unet_seconds_to_best_median"] == 16.0


def test_an_interrupted_run_keeps_the_facts_of_the_models_whose_rows_it_wrote(setup, fake, tmp_path):
    """Ctrl-C after the liver's Conv U-Net: its rows were kept and not trained again on resume, but its facts
    (best step, curve, seconds) reached results.json only at the end of a run, so the resumed record lacked them."""
    out = tmp_path / "r.csv"
    INTERRUPT["after_model"] = True
    with pytest.raises(KeyboardInterrupt):
        _ev(setup, out, tasks=["liver", "spleen"], methods=["conv_unet"])
    INTERRUPT["after_model"] = False
    record = json.loads(out.with_suffix(".json").read_text())
    assert not record["complete"] and record["baselines"]["conv_unet"] == {LIVER: {"seconds_to_best": 8.0,
                                                                                  "made_by": 1}}
    res = _ev(setup, out, tasks=["liver", "spleen"], methods=["conv_unet"], resume=True)
    assert res.record["baselines"]["conv_unet"] == {LIVER: {"seconds_to_best": 8.0, "made_by": 1},
                                                    SPLEEN: {"seconds_to_best": 16.0, "made_by": 2}}
    assert res.record["timings"]["conv_unet_seconds_to_best_median"] == 12.0


def test_resuming_an_interrupted_run_keeps_the_facts_of_its_copied_baselines(setup, fake, tmp_path):
    src = tmp_path / "a.csv"
    source_facts = _ev(setup, src, methods=["conv_unet"]).record["baselines"]["conv_unet"]
    out = tmp_path / "b.csv"
    INTERRUPT["on"] = True
    with pytest.raises(KeyboardInterrupt):
        _ev(setup, out, methods=["copy_support", "conv_unet"], baselines_from=src)
    INTERRUPT["on"] = False
    res = _ev(setup, out, methods=["copy_support", "conv_unet"], baselines_from=src, resume=True)
    assert [r["method"] for r in res.rows].count("conv_unet") == 1  # the copied rows, not trained again
    assert res.record["baselines"]["conv_unet"] == source_facts


def test_a_resume_with_baselines_from_keeps_the_rows_it_made(setup, fake, tmp_path):
    src = tmp_path / "a.csv"
    _ev(setup, src, methods=["conv_unet"])
    out = tmp_path / "b.csv"
    made = _ev(setup, out, methods=["copy_support", "conv_unet"], baselines_from=src).rows
    again = _ev(setup, out, methods=["copy_support", "conv_unet"], baselines_from=src, resume=True).rows
    assert again == made and {r["fit_seconds"] for r in made if r["method"] == "copy_support"} == {2.0}
