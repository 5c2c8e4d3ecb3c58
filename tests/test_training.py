"""Algorithm 1 on tiny tensors: smoke, learning, exact resume, crash-safe checkpoints, DDP, bad config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import matplotlib.pyplot as plt
import torch
import torch.multiprocessing as mp

from hyperkit.config import load_profile
from hyperkit.data.sample import write_sample_totalseg
from hyperkit.errors import ConfigError, HyperkitError
from hyperkit.training import checkpoint as ckpt_mod
from hyperkit.files import save_atomic
from hyperkit.training.checkpoint import load_checkpoint
from hyperkit.config.sections import TrainConfig
from hyperkit.plots import plot_training_curves
from hyperkit.model import HyperUNet
from hyperkit.training import loop
from hyperkit.training.loop import fresh_start, read_jsonl, replay_early_stopping, resolve_run_config, train
from tiny import TINY_MODEL

ALL_SPLITS = ["train", "val", "test"]


def tiny_cfg(**train_kw):
    cfg = load_profile("quick", {"data": {"patch_size": 16}, "model": TINY_MODEL})
    cfg["train"] = {"episodes": 4, "tasks_per_episode": 2, "val_every": 2, "checkpoint_every": 2,
                    "val_queries": 2, "train_splits": ALL_SPLITS, "val_splits": ALL_SPLITS, **train_kw}
    return cfg


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_sample_totalseg(root, n_cases=4, structures=("aorta", "stomach", "kidney_left", "esophagus"))
    return root


@pytest.fixture()
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "cache"


def test_one_episode_smoke(data_root, cache, tmp_path):
    res = train(tiny_cfg(episodes=1), data_root, tmp_path / "run", cache_dir=cache, progress=False)
    assert res.episodes_done == 1
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "run.json", "metrics.jsonl", "validation.jsonl", "last.pt", "best.pt"} <= files
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["seed"] == 0 and "torch" in run["versions"] and run["commit"]
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 1 and rows[0]["loss"] > 0
    assert [r["episode"] for r in read_jsonl(tmp_path / "run" / "validation.jsonl")] == [0, 1]
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["state"]["episode"] == 1


def test_fresh_start_is_where_train_starts(data_root, cache, tmp_path, monkeypatch):
    """The seeded model, AdamW and the schedule (what notebook 04 takes apart); ``train`` starts there."""
    cfg = tiny_cfg(episodes=1)
    tcfg, seed, _ = resolve_run_config(cfg, None)
    model, opt, sched = fresh_start(cfg["model"], tcfg, seed)
    torch.manual_seed(seed)
    by_hand = HyperUNet.from_config(cfg["model"])
    assert model.training and all(torch.equal(a, b) for a, b in zip(model.parameters(), by_hand.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh_start(cfg["model"], tcfg, seed + 1)[0]
                                                     .parameters()))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == tcfg.weight_decay
    assert opt.param_groups[0]["lr"] == pytest.approx(tcfg.lr * tcfg.lr_factor(0)) and sched.last_epoch == 0
    calls = []
    monkeypatch.setattr(loop, "fresh_start", lambda *a: calls.append(a[2]) or fresh_start(*a))
    train(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False)
    assert calls == [seed]


def test_replay_early_stopping_rule():
    rows = [{"episode": e, "dice": d} for e, d in [(0, 0.1), (5, 0.2), (10, 0.2), (15, 0.15), (20, 0.3), (25, 0.1)]]
    assert replay_early_stopping(rows, 2) == (15, 5, 0.2)        # a tie is no improvement: 10 and 15 count
    assert replay_early_stopping(rows, 3) == (None, 20, 0.3)     # runs to the end
    assert replay_early_stopping(rows[:1], 1) == (None, 0, 0.1)  # episode 0 never stops a run
    with pytest.raises(ValueError, match="patience must be >= 1, got 0"):
        replay_early_stopping(rows, 0)


def test_early_stopping_is_the_replayed_rule(data_root, cache, tmp_path):
    """The loop stops where its own logged validations, replayed with its patience, say it does."""
    res = train(tiny_cfg(episodes=12, val_every=1, checkpoint_every=12, patience=2, lr=1e-9), data_root,
                tmp_path / "run", cache_dir=cache, progress=False)
    val = read_jsonl(res.run_dir / "validation.jsonl")
    replay = replay_early_stopping(val, 2)
    assert res.stopped_early and replay.stopped_at is not None  # an lr of 1e-9 changes no prediction: ties
    assert res.episodes_done == (replay.stopped_at or 12) == val[-1]["episode"]
    assert (res.best_episode, round(res.best_dice, 6)) == (replay.best_episode, replay.best_dice)
    kept = load_checkpoint(res.run_dir / "best.pt")["state"]
    assert kept["best_episode"] == replay.best_episode
    assert kept["episode"] == kept["best_episode"]  # best.pt is written at an improvement only, not at every validation


def test_loss_falls_on_tiny_task_set(data_root, cache, tmp_path):
    res = train(tiny_cfg(episodes=40, lr=3e-3, augment=False, val_every=40), data_root, tmp_path / "run",
                cache_dir=cache, progress=False)
    rows = read_jsonl(res.run_dir / "metrics.jsonl")
    losses = [r["loss"] for r in rows]
    assert len({tuple(r["tasks"]) for r in rows}) > 1  # every episode draws its own tasks (its own generator)
    assert sum(losses[-8:]) / 8 < 0.9 * sum(losses[:8]) / 8


def test_resume_equals_uninterrupted(data_root, cache, tmp_path):
    cfg = tiny_cfg(episodes=6)
    full = train(cfg, data_root, tmp_path / "full", cache_dir=cache, progress=False)
    part = train(cfg, data_root, tmp_path / "part", stop_at=3, cache_dir=cache, progress=False)
    assert part.episodes_done == 3  # interrupted between two checkpoints and validations
    assert load_checkpoint(tmp_path / "part" / "last.pt")["state"]["episode"] == 3  # the stop writes its checkpoint
    for name in ("metrics.jsonl", "validation.jsonl"):  # as a crash after episode 4 was logged, before its checkpoint
        with open(tmp_path / "part" / name, "a") as fh:
            fh.write(json.dumps({"episode": 4, "dice": -1.0, "loss": -1.0}) + "\n")
    resumed = train(cfg, data_root, tmp_path / "part", resume=True, cache_dir=cache, progress=False)
    assert resumed.episodes_done == 6
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]
    for name in ("metrics.jsonl", "validation.jsonl"):
        assert strip(read_jsonl(tmp_path / "full" / name)) == strip(read_jsonl(tmp_path / "part" / name))
    # the record names both sessions' code and machine (the resume's own, and the first under earlier_sessions)
    assert "earlier_sessions" not in json.loads((tmp_path / "full" / "run.json").read_text())
    record = json.loads((tmp_path / "part" / "run.json").read_text())
    assert [s["commit"] for s in record["earlier_sessions"]] == [record["commit"]]


def test_resume_after_a_crash_inside_a_log_write_equals_uninterrupted(data_root, cache, tmp_path):
    """A hard stop while a row was appended left a cut last line: the resume failed in json.loads (and so did
    plotting a run in progress). The cut row is left out; the resumed run equals an uninterrupted one."""
    cfg = tiny_cfg(episodes=6)
    full = train(cfg, data_root, tmp_path / "full", cache_dir=cache, progress=False)
    train(cfg, data_root, tmp_path / "part", stop_at=3, cache_dir=cache, progress=False)
    for name in ("metrics.jsonl", "validation.jsonl"):
        with open(tmp_path / "part" / name, "a") as fh:
            fh.write(json.dumps({"episode": 4, "dice": -1.0, "loss": -1.0})[:15])
    assert [r["episode"] for r in read_jsonl(tmp_path / "part" / "metrics.jsonl")] == [1, 2, 3]
    plt.close(plot_training_curves(tmp_path / "part"))
    resumed = train(cfg, data_root, tmp_path / "part", resume=True, cache_dir=cache, progress=False)
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    for name in ("metrics.jsonl", "validation.jsonl"):
        assert strip(read_jsonl(tmp_path / "full" / name)) == strip(read_jsonl(tmp_path / "part" / name))


def test_weight_average_resumes_exactly_and_is_what_best_holds(data_root, cache, tmp_path, monkeypatch):
    # a validation that rises with every call, so that the last one (episode 6) is the best: an untrained tiny
    # model scores 0 at episodes 0 and 6, and best.pt would keep episode 0 (the weights do not depend on it)
    calls = iter(range(1, 100))
    monkeypatch.setattr(loop, "one_shot_validation", lambda *a: {"dice": next(calls) / 100, "per_task": {}})
    cfg = tiny_cfg(episodes=6, ema=0.5, val_every=6)
    full = train(cfg, data_root, tmp_path / "full", cache_dir=cache, progress=False)
    train(cfg, data_root, tmp_path / "part", stop_at=3, cache_dir=cache, progress=False)
    resumed = train(cfg, data_root, tmp_path / "part", resume=True, cache_dir=cache, progress=False)
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    last = load_checkpoint(tmp_path / "full" / "last.pt")
    averaged = {k[len("module."):]: v for k, v in last["ema"].items() if k.startswith("module.")}
    assert int(last["ema"]["n_averaged"]) == 6
    trained, kept = last["model"], load_checkpoint(tmp_path / "full" / "best.pt")["model"]
    name = "hyper.0.weight"
    assert not torch.equal(trained[name], averaged[name])  # the average lags the trained weights
    assert load_checkpoint(tmp_path / "full" / "best.pt")["state"]["best_episode"] == 6
    assert torch.equal(kept[name], averaged[name])  # best.pt holds the average, not the trained weights
    assert torch.equal(full.model.state_dict()[name], averaged[name])  # what training returns


def test_runs_recorded_before_a_new_train_setting_still_match(data_root, cache, tmp_path):
    cfg = tiny_cfg(episodes=1)
    train(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False)
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    del ck["config"]["train"]["ema"]  # as a run made before train.ema existed recorded it
    save_atomic(ck, tmp_path / "run" / "last.pt")
    res = train(tiny_cfg(episodes=2), data_root, tmp_path / "run", resume=True, cache_dir=cache, progress=False)
    assert res.episodes_done == 2


def test_existing_run_needs_resume_and_same_config(data_root, cache, tmp_path):
    cfg = tiny_cfg(episodes=1)
    train(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False)
    with pytest.raises(HyperkitError, match="already holds a training run"):
        train(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False)
    with pytest.raises(HyperkitError, match="config differs"):
        train(cfg, data_root, tmp_path / "run", seed=5, resume=True, cache_dir=cache, progress=False)
    with pytest.raises(HyperkitError, match="nothing to resume"):
        train(cfg, data_root, tmp_path / "other", resume=True, cache_dir=cache, progress=False)


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"kind": ckpt_mod.CHECKPOINT_KIND, "value": torch.tensor([1.0])}, path)

    def broken_save(obj, fh):
        fh.write(b"half a checkpoint")
        raise OSError("disk full (simulated kill during save)")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="simulated"):
        save_atomic({"kind": ckpt_mod.CHECKPOINT_KIND, "value": torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["value"].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_load_refuses_non_checkpoints(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(HyperkitError, match=r"junk\.pt: not a hyperkit checkpoint \(not a torch file\)"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(HyperkitError, match="not a hyperkit hypernetwork checkpoint"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def _ddp_worker(rank: int, world: int, init_file: str, data_root: str, cache: str, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        res = train(tiny_cfg(episodes=3), data_root, Path(out) / "run", cache_dir=cache, device="cpu",
                    progress=False)
        torch.save(res.model.state_dict(), Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_two_gloo_ranks_end_identical(data_root, cache, tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(data_root), str(cache), str(tmp_path)),
             nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    assert all(torch.equal(saved[k], a[k]) for k in a)  # rank 0 saved what both ranks hold
    assert json.loads((tmp_path / "run" / "run.json").read_text())["world_size"] == 2


@pytest.mark.parametrize("train_kw, match", [
    ({"episodes": -3}, "train.episodes must be a positive integer"),
    ({"epsiodes": 3}, r"unknown key\(s\) \[.epsiodes.\] in train"),
    ({"beta": 1.5}, "train.beta must be in"),
    ({"lr": 0}, "train.lr must be > 0"),
])
def test_bad_train_config(train_kw, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_config({"train": train_kw})


def test_bad_cli_inputs(tmp_path, capsys):
    from hyperkit.cli import main

    assert main(["train", "--profile", "nope", "--out", str(tmp_path / "r")]) == 2
    assert "profile 'nope' does not exist" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "data folder not found" in capsys.readouterr().err
    assert main(["train", "--episodes", "-1", "--out", str(tmp_path / "r")]) == 2
    assert "--episodes must be a positive integer" in capsys.readouterr().err


def test_ensure_trained_returns_the_best_eval_mode_model_both_ways(data_root, cache, tmp_path):
    from hyperkit.training.checkpoint import load_hypernet
    from hyperkit.training.loop import ensure_trained

    cfg = tiny_cfg(episodes=4)
    fresh = ensure_trained(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False)
    again = ensure_trained(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False)
    best, _ = load_hypernet(tmp_path / "run" / "best.pt")
    for res in (fresh, again):
        assert not res.model.training
        for (k, a), (_, b) in zip(res.model.state_dict().items(), best.state_dict().items()):
            assert torch.equal(a, b), k
    # the evaluate section is recorded (evaluate/generate read it) but does not make it another run
    assert load_checkpoint(tmp_path / "run" / "last.pt")["config"]["evaluate"]["adapt_lr"] > 0
    other = {**cfg, "evaluate": {**cfg["evaluate"], "draws": 2}}
    assert ensure_trained(other, data_root, tmp_path / "run", cache_dir=cache, progress=False).episodes_done == 4


def test_ensure_trained_finishes_an_interrupted_run_and_refuses_another_config(data_root, cache, tmp_path):
    from hyperkit.training.loop import ensure_trained

    cfg = tiny_cfg(episodes=3)
    train(cfg, data_root, tmp_path / "run", stop_at=1, cache_dir=cache, progress=False)
    assert ensure_trained(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False).episodes_done == 3
    with pytest.raises(HyperkitError, match="holds a run with another config"):
        ensure_trained(cfg, data_root, tmp_path / "run", seed=7, cache_dir=cache, progress=False)


def test_augmentation_reaches_every_training_case(data_root, cache, tmp_path, monkeypatch):
    """``train.augment``: each episode augments every task's support and query (2 B calls); off: none."""
    from hyperkit.training import loop

    calls = []
    real = loop.augment_pair
    monkeypatch.setattr(loop, "augment_pair", lambda *a: calls.append(a[-1]) or real(*a))
    train(tiny_cfg(episodes=1, augment=True), data_root, tmp_path / "on", cache_dir=cache, progress=False)
    assert len(calls) == 2 * 2
    train(tiny_cfg(episodes=1, augment=False), data_root, tmp_path / "off", cache_dir=cache, progress=False)
    assert len(calls) == 2 * 2


def test_a_run_recorded_before_a_setting_existed_is_resumed_and_reused(data_root, cache, tmp_path):
    """Data and model settings added since a run compare at their defaults, as train's do (``reread_config``);
    a setting the run lacks whose default differs from this config still makes it another run."""
    from hyperkit.training.loop import ensure_trained

    cfg = tiny_cfg(episodes=2)
    train(cfg, data_root, tmp_path / "run", stop_at=1, cache_dir=cache, progress=False)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    old = {**last["config"], "data": dict(last["config"]["data"]), "model": dict(last["config"]["model"])}
    del old["data"]["placement_seed"], old["model"]["eval_seed"]  # defaults 0, as this config's
    save_atomic({**last, "config": old}, tmp_path / "run" / "last.pt")
    assert ensure_trained(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False).episodes_done == 2
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    del last["config"]["data"]["placement"]  # default centred; this config is offset
    save_atomic(last, tmp_path / "run" / "last.pt")
    with pytest.raises(HyperkitError, match="holds a run with another config"):
        ensure_trained(cfg, data_root, tmp_path / "run", cache_dir=cache, progress=False)


def test_a_paper_sized_step_on_a_cpu_is_warned_about_and_the_quick_one_is_not() -> None:
    """The paper profile's step (8 tasks of 128³) on a 24 GB CPU machine was killed for memory in its first step,
    after minutes of preprocessing, without a word (BENCHMARKS.md, "Throughput and memory")."""
    import torch as _torch

    from hyperkit.config import DataConfig, TrainConfig
    from hyperkit.training.loop import cpu_scale_note

    cpu, cuda = _torch.device("cpu"), _torch.device("cuda")
    for name, warned in (("paper", True), ("quick", False)):
        cfg = load_profile(name)
        patch, tasks = DataConfig.from_config(cfg).patch_size, TrainConfig.from_config(cfg).tasks_per_episode
        note = cpu_scale_note(cpu, patch, tasks)
        assert (note is not None) == warned, name
        assert cpu_scale_note(cuda, patch, tasks) is None
    assert "8 task(s) of 128^3 per episode on a CPU, 76 times" in cpu_scale_note(cpu, 128, 8)


def test_train_prints_the_cpu_scale_note(tmp_path, monkeypatch, capsys) -> None:
    from hyperkit.training import loop

    seen = []
    monkeypatch.setattr(loop, "cpu_scale_note", lambda dev, patch, tasks: seen.append((dev.type, patch, tasks))
                        or "[train] warning: NOTE")
    root = tmp_path / "data"
    write_sample_totalseg(root, n_cases=4, structures=("aorta", "stomach", "kidney_left", "esophagus"))
    loop.train(tiny_cfg(episodes=1), root, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert "[train] warning: NOTE" in capsys.readouterr().out and seen and seen[0][0] == "cpu"
