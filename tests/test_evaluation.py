"""One-shot protocol, baselines, Tables 1-2 and ``hyperkit evaluate`` on tiny data."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
from hyperkit.errors import ConfigError, HyperkitError
from hyperkit.evaluation import (EvalConfig, Samples, SupervisedConfig, case_split, comparison_table, copy_support,
                                 evaluate, read_results, resolve_tasks, summarize, support_draws, train_supervised)
from hyperkit.evaluation.protocol import FIELDS
from hyperkit.model.hypernet import HyperUNet
from hyperkit.training.checkpoint import CHECKPOINT_KIND, save_atomic
from hyperkit.training.episodes import TaskBank

TINY_MODEL = {"base_width": 8, "hidden": 32, "n_patches": 4, "samplings": 1, "pos_dim": 8, "zstar_hidden": 16,
              "zstar_dim": 8, "head_hidden": 16}
TINY_BUDGET = {"steps": 2, "batch": 2, "lr": 1e-3, "val_every": 1, "patience": 1, "augment": False}
LIVER = "msd/Task03_Liver/liver@CT"


def _ball(n: int, centre: tuple[int, int, int], r: float) -> torch.Tensor:
    g = torch.stack(torch.meshgrid(*[torch.arange(n)] * 3, indexing="ij")).float()
    return ((g - torch.tensor(centre).view(3, 1, 1, 1)).norm(dim=0) <= r).float()


def _bank(tasks: list[str], n_cases: int = 4, size: int = 16) -> TaskBank:
    gen = torch.Generator().manual_seed(0)
    images, masks, ids = {}, {}, {}
    for k, t in enumerate(tasks):
        m = torch.stack([_ball(size, (8 + (i % 2), 8, 7 + k), 3.5 + 0.3 * i) for i in range(n_cases)])[:, None]
        images[t] = m * 2 - 1 + 0.1 * torch.randn(m.shape, generator=gen)
        masks[t], ids[t] = m, [f"{t.split('/')[1]}_{i}" for i in range(n_cases)]
    return TaskBank(images, masks, ids, (4.0, 4.0, 4.0))


def _cfg(**kw) -> EvalConfig:
    return EvalConfig.from_config({"evaluate": {"draws": 2, "conv": TINY_BUDGET, "all": TINY_BUDGET, **kw}})


# ---------------------------------------------------------------------------- draws and splits
def test_support_draws_are_distinct_then_cycle():
    g = torch.Generator().manual_seed(1)
    d = support_draws(10, 5, 1, g)
    assert len({s[0] for s in d}) == 5
    d = support_draws(3, 5, 1, torch.Generator().manual_seed(1))
    assert [s[0] for s in d][:3] == [s[0] for s in d][3:] + [d[2][0]]
    assert all(len(s) == 2 for s in support_draws(6, 3, 2, g))
    with pytest.raises(ValueError, match="1 case"):
        support_draws(1, 5, 1, g)


def test_case_split_partitions_the_cases():
    sp = case_split(10, 0.4, 0.2, torch.Generator().manual_seed(0))
    assert (len(sp.train), len(sp.val), len(sp.test)) == (4, 2, 4)
    assert sorted(sp.train + sp.val + sp.test) == list(range(10))
    sp = case_split(3, 0.4, 0.2, torch.Generator().manual_seed(0))
    assert min(len(sp.train), len(sp.val), len(sp.test)) == 1
    with pytest.raises(ValueError, match="got 2"):
        case_split(2, 0.4, 0.2, torch.Generator())


def test_copy_support_votes():
    m = torch.zeros(3, 1, 2, 2, 2)
    m[:2, 0, 0, 0, 0] = 1
    m[0, 0, 1, 1, 1] = 1
    out = copy_support(m)
    assert out.shape == (1, 2, 2, 2) and out[0, 0, 0, 0] and not out[0, 1, 1, 1]


def test_eval_config_checks_values():
    with pytest.raises(ConfigError, match="draws"):
        _cfg(draws=0)
    with pytest.raises(ConfigError, match="unknown"):
        EvalConfig.from_config({"evaluate": {"drawz": 3}})
    with pytest.raises(ConfigError, match="lr"):
        _cfg(conv={**TINY_BUDGET, "lr": 0})
    q = EvalConfig.from_config(load_profile("quick"))
    assert q.draws == 5 and q.tau == 2.0


# ---------------------------------------------------------------------------- baselines
def test_supervised_training_learns_a_bright_ball():
    torch.manual_seed(0)
    from hyperkit.model.unet import UNet3D

    bank = _bank(["a/b/ball@CT"], n_cases=6)
    s = Samples(bank.images["a/b/ball@CT"], bank.masks["a/b/ball@CT"], torch.zeros(6, dtype=torch.long))
    net = UNet3D(8)
    cfg = SupervisedConfig(steps=40, batch=2, lr=3e-3, val_every=10, patience=10, augment=False)
    res = train_supervised(net, Samples(s.images[:4], s.masks[:4], s.channels[:4]),
                           Samples(s.images[4:], s.masks[4:], s.channels[4:]), cfg, torch.Generator().manual_seed(0))
    assert res.curve[0][0] == 0 and res.best_dice > 0.5 > res.curve[0][1]
    assert res.best_step > 0 and res.seconds_to_best <= res.seconds


# ---------------------------------------------------------------------------- the protocol
def test_evaluate_rows_resume_and_refusal(tmp_path):
    torch.manual_seed(0)
    hyper = HyperUNet.from_config(TINY_MODEL).eval()
    bank = _bank([LIVER, "msd/Task02_Heart/left_atrium@MRI"])
    train_bank = _bank(["totalseg/TotalSegmentator/aorta@CT"])
    out = tmp_path / "r.csv"
    rows, info = evaluate(hyper, bank, _cfg(), out, methods=["hyper_unet", "rand_unet", "copy_support",
                                                             "conv_unet", "all_unet"],
                          train_bank=train_bank, progress=False)
    per = {}
    for r in rows:
        per[(r["task"], r["method"])] = per.get((r["task"], r["method"]), 0) + 1
    for t in bank.task_ids:
        for m in ("hyper_unet", "rand_unet", "copy_support"):
            assert per[(t, m)] == 2 * 3  # 2 draws x 3 other cases
        assert per[(t, "conv_unet")] == per[(t, "all_unet")] == 2  # 40 % of 4 cases
    assert set(info["conv_unet"]) == set(bank.task_ids) and info["all_unet"]["tasks"] == 3
    assert all(0 <= r["dsc"] <= 1 and 0 <= r["nsd"] <= 1 for r in rows)
    assert read_results(out) == [{**r, "dsc": pytest.approx(r["dsc"], abs=1e-6),
                                  "nsd": pytest.approx(r["nsd"], abs=1e-6),
                                  "fit_seconds": pytest.approx(r["fit_seconds"], abs=1e-6)} for r in rows]
    # same seed -> same numbers
    rows2, _ = evaluate(hyper, bank, _cfg(), tmp_path / "r2.csv", methods=["hyper_unet", "rand_unet"],
                        progress=False)
    key = lambda r: (r["task"], r["method"], r["draw"], r["case"])  # noqa: E731
    first = {key(r): r["dsc"] for r in rows if r["method"] in ("hyper_unet", "rand_unet")}
    assert {key(r): r["dsc"] for r in rows2} == first
    with pytest.raises(HyperkitError, match="exists"):
        evaluate(hyper, bank, _cfg(), out, progress=False)
    # an interruption: the file lost its last rows; resume redoes only the incomplete pair
    with open(out) as fh:
        lines = fh.readlines()
    cut = [ln for ln in lines if "hyper_unet" not in ln or LIVER not in ln or ",1," not in ln]
    with open(out, "w") as fh:
        fh.writelines(cut)
    rows3, _ = evaluate(hyper, bank, _cfg(), out, methods=["hyper_unet", "copy_support"], resume=True,
                        progress=False)
    assert sum(1 for r in rows3 if r["task"] == LIVER and r["method"] == "hyper_unet") == 6
    with open(out) as fh:
        assert tuple(next(csv.reader(fh))) == FIELDS


def test_tables_mark_best_and_show_the_papers_numbers():
    rows = [{"task": LIVER, "method": m, "dsc": v, "nsd": v / 2} for m, v in
            (("hyper_unet", 0.5), ("rand_unet", 0.1), ("conv_unet", 0.9), ("copy_support", 0.3))]
    table = comparison_table(summarize(rows), "table1_ct")
    assert "**0.900±0.000**" in table and "<u>0.500±0.000</u>" in table
    assert "0.772±0.063" in table  # the paper's Hyper U-Net on liver
    assert "Task03_Liver/liver@CT" in table and "paper" in table
    assert "spleen" in table  # columns without a kit task are listed as not evaluated


def test_resolve_tasks_by_paper_name_and_glob():
    ids = [LIVER, "msd/Task03_Liver/cancer@CT", "msd/Task09_Spleen/spleen@CT"]
    assert resolve_tasks(["liver"], ids) == [LIVER]
    assert resolve_tasks(["paper"], ids) == [LIVER, "msd/Task09_Spleen/spleen@CT"]
    assert resolve_tasks(["*Liver*"], ids) == sorted(ids[:2])
    with pytest.raises(ValueError, match="pancreas"):
        resolve_tasks(["pancreas"], ids)


# ---------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    data = root / "data"
    write_sample_msd(data, "Task03_Liver", n_cases=4, labels=("liver", "cancer"))
    write_sample_totalseg(data, n_cases=3)
    cfg = load_profile("quick", {"data": {"patch_size": 16}, "model": TINY_MODEL})
    torch.manual_seed(0)
    hyper = HyperUNet.from_config(cfg["model"])
    ckpt = save_atomic({"kind": CHECKPOINT_KIND, "model": hyper.state_dict(), "state": {},
                        "config": {k: v for k, v in cfg.items() if k != "evaluate"}}, root / "best.pt")
    return root, data, ckpt


def test_evaluate_command_writes_csv_json_and_tables(tiny_run, capsys):
    root, data, ckpt = tiny_run
    out = root / "res" / "results.csv"
    code = main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--draws", "2",
                 "--tasks", "liver", "--methods", "hyper_unet,copy_support,conv_unet",
                 "--set", "evaluate.conv.steps=2", "--set", "evaluate.conv.augment=false", "--no-progress"])
    assert code == 0
    rows = read_results(out)
    assert {r["task"] for r in rows} == {LIVER}
    assert len([r for r in rows if r["method"] == "hyper_unet"]) == 2 * 3
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["complete"] and record["seed"] == 0 and record["commit"] and "torch" in record["versions"]
    assert record["protocol"]["evaluate"]["conv"]["steps"] == 2 and record["protocol"]["evaluate"]["draws"] == 2
    assert "paper Table 1" in out.with_suffix(".md").read_text()
    assert "Hyper U-Net" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--methods", "hyper,magic"], "unknown method"),
    (["--tasks", "pancreas"], "matches no held-out task"),
    (["--profile", "paper"], "not 'paper'"),
    (["--set", "train.lr=1"], "only evaluate"),
    (["--set", "evaluate.draws=0"], "draws"),
])
def test_evaluate_command_refuses_bad_input(tiny_run, tmp_path, capsys, argv, words):
    _, data, ckpt = tiny_run
    base = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(tmp_path / "r.csv"),
            "--no-progress"]
    with pytest.raises(SystemExit) if argv[0] == "--methods" else _nothing():
        code = main(base + argv)
        assert code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_evaluate_command_refuses_a_missing_checkpoint(tiny_run, tmp_path, capsys):
    _, data, _ = tiny_run
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(data),
                 "--out", str(tmp_path / "r.csv")]) == 2
    assert "not found" in capsys.readouterr().err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
