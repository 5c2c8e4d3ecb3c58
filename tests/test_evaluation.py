"""One-shot protocol, baselines, Tables 1-2 and ``hyperkit evaluate`` on tiny data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
from hyperkit.errors import ConfigError, HyperkitError
from hyperkit.evaluation import (EvalConfig, Samples, SupervisedConfig, case_split, comparison_table, copy_support,
                                 evaluate, one_shot_plan, protocol_for, read_results, reading, resolve_tasks,
                                 run_evaluation, summarize, support_draws, task_split, train_supervised, what_held)
from hyperkit.evaluation.protocol import FIELDS, _complete_pairs, one_shot_model, score
from hyperkit.evaluation.stats import (Paired, _strata, _two_way_means, effective_df, in_test_split, pair_rows,
                                       paired_difference, paired_starts, paired_tasks, printed_above_zero)
from hyperkit.evaluation.tables import SCOPE_ALL, SCOPE_TEST, SCOPE_TEST_ANY_SUPPORT
from hyperkit.model.adapt import gradient_step, segmentation_loss
from hyperkit.model.hypernet import HyperUNet
from hyperkit.files import save_atomic
from hyperkit.data.bank import TaskBank
from tiny import TINY_MODEL, untrained_checkpoint

TINY_BUDGET = {"steps": 2, "batch": 2, "lr": 1e-3, "val_every": 1, "patience": 1, "augment": False, "warmup": 0}
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
    """The quick profile's protocol with 2 draws and tiny baseline budgets (plus ``kw``)."""
    return protocol_for({"name": "quick"}, overrides={"draws": 2, "conv": TINY_BUDGET, "all": TINY_BUDGET, **kw})


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
    # from a pool: only its cases, distinct while they last
    d = support_draws(10, 3, 2, torch.Generator().manual_seed(1), pool=[1, 4, 5, 8, 9, 0])
    assert sorted(i for s in d for i in s) == [0, 1, 4, 5, 8, 9]
    with pytest.raises(ValueError, match="2 to draw supports from"):
        support_draws(10, 1, 3, g, pool=[1, 2])
    with pytest.raises(ValueError, match="outside"):
        support_draws(4, 1, 1, g, pool=[4])


def test_case_split_partitions_the_cases():
    sp = case_split(10, 0.4, 0.2, torch.Generator().manual_seed(0))
    assert (len(sp.train), len(sp.val), len(sp.test)) == (4, 2, 4)
    assert sorted(sp.train + sp.val + sp.test) == list(range(10))
    sp = case_split(3, 0.4, 0.2, torch.Generator().manual_seed(0))
    assert min(len(sp.train), len(sp.val), len(sp.test)) == 1
    with pytest.raises(ValueError, match="got 2"):
        case_split(2, 0.4, 0.2, torch.Generator())


def test_support_draws_check_the_pool_and_use_its_distinct_cases():
    """A pool is a set of case indices: negative ones are refused, repeats count once."""
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="outside"):
        support_draws(4, 1, 1, g, pool=[-1, 2])
    with pytest.raises(ValueError, match="1 to draw supports from"):
        support_draws(5, 1, 2, g, pool=[1, 1])  # one case cannot make a support of two
    d = support_draws(5, 2, 1, torch.Generator().manual_seed(0), pool=[2, 2, 3])
    assert sorted(s[0] for s in d) == [2, 3]  # distinct while the two cases last
    # a pool of exactly `shots` cases: every draw is that pool
    d = support_draws(10, 2, 2, torch.Generator().manual_seed(0), pool=[7, 3])
    assert [sorted(s) for s in d] == [[3, 7], [3, 7]]


def test_support_draws_follow_a_random_order():
    """The order comes from the generator: the first support is not always the pool's smallest case."""
    firsts = {support_draws(10, 1, 1, torch.Generator().manual_seed(s))[0][0] for s in range(20)}
    assert len(firsts) > 3


def test_case_split_sizes_round_and_keep_every_part():
    """n_test = round(f_test * n), n_val = round(f_val * n), each at least 1, train keeping at least 1."""
    def sizes(n, f_test, f_val):
        sp = case_split(n, f_test, f_val, torch.Generator().manual_seed(0))
        assert sorted(sp.train + sp.val + sp.test) == list(range(n))
        return len(sp.train), len(sp.val), len(sp.test)

    assert sizes(10, 0.36, 0.27) == (3, 3, 4)  # 3.6 -> 4 and 2.7 -> 3, not truncated
    assert sizes(10, 0.01, 0.01) == (8, 1, 1)  # tiny fractions still give one case each
    assert sizes(3, 0.8, 0.1) == (1, 1, 1)  # the test split leaves one case for validation and one for training
    assert sizes(5, 0.2, 0.7) == (1, 3, 1)  # validation leaves one case to train on


def test_copy_support_votes():
    m = torch.zeros(3, 1, 2, 2, 2)
    m[:2, 0, 0, 0, 0] = 1
    m[0, 0, 1, 1, 1] = 1
    out = copy_support(m)
    assert out.shape == (1, 2, 2, 2) and out[0, 0, 0, 0] and not out[0, 1, 1, 1]


def test_one_shot_plan_draws_supports_outside_the_test_split():
    cfg = _cfg(draws=5)
    for n in (4, 10, 23):
        plan = one_shot_plan(n, cfg, 0, LIVER)
        assert plan.on_test_split and plan.split == task_split(n, cfg, 0, LIVER)
        test = set(plan.split.test)
        assert len(plan.supports) == 5 and all(len(s) == 1 for s in plan.supports)
        assert not test & {i for s in plan.supports for i in s}
        assert all(q == plan.split.test for q in plan.queries)
    # distinct supports while the 6 non-test cases of 10 last
    assert len({s[0] for s in one_shot_plan(10, cfg, 0, LIVER).supports}) == 5
    # too few cases for a split: supports from all cases, every other case scored
    plan = one_shot_plan(2, cfg, 0, LIVER)
    assert plan.split is None and not plan.on_test_split
    assert all(q == [i for i in range(2) if i not in s] for s, q in zip(plan.supports, plan.queries))
    # a split, but fewer train + validation cases (2 of 4) than shots (3): the same fallback
    plan = one_shot_plan(4, _cfg(shots=3), 0, LIVER)
    assert plan.split is not None and not plan.on_test_split
    assert all(len(q) == 1 and not set(q) & set(s) for s, q in zip(plan.supports, plan.queries))


def test_task_split_from_three_cases_varies_with_seed_and_task():
    """Three cases already get a split (one case each); the split is random, keyed by the seed and the task."""
    cfg = _cfg()
    sp = task_split(3, cfg, 0, LIVER)
    assert sp is not None and (len(sp.train), len(sp.val), len(sp.test)) == (1, 1, 1)
    assert one_shot_plan(3, cfg, 0, LIVER).on_test_split
    tasks = [f"msd/Task0{i}/organ@CT" for i in range(6)]
    assert len({tuple(task_split(10, cfg, s, LIVER).test) for s in range(6)}) > 1
    assert len({tuple(task_split(10, cfg, 0, t).test) for t in tasks}) > 1


def test_one_shot_plan_keeps_the_test_split_when_the_pool_just_holds_the_shots():
    plan = one_shot_plan(4, _cfg(shots=2), 0, LIVER)  # 2 test cases, 1 validation, 1 train: a pool of 2
    assert plan.on_test_split
    pool = sorted(plan.split.train + plan.split.val)
    assert len(pool) == 2 and all(sorted(s) == pool for s in plan.supports)
    assert all(q == plan.split.test for q in plan.queries)


def test_each_task_draws_its_own_supports():
    """The support order is keyed by seed and task, on the test split and in the small-task fallback."""
    cfg = _cfg(draws=6)
    tasks = [f"msd/Task{i:02d}/organ@CT" for i in range(10)]
    ranks = set()
    for t in tasks:  # each support's place in the task's pool: the same for every task if the task were ignored
        plan = one_shot_plan(10, cfg, 0, t)
        pool = sorted(plan.split.train + plan.split.val)
        ranks.add(tuple(pool.index(s[0]) for s in plan.supports))
    assert len(ranks) > 1
    assert len({one_shot_plan(2, cfg, 0, t).supports[0][0] for t in tasks}) == 2
    assert len({one_shot_plan(2, cfg, s, LIVER).supports[0][0] for s in range(10)}) == 2


def test_eval_config_checks_values():
    with pytest.raises(ConfigError, match="draws"):
        _cfg(draws=0)
    with pytest.raises(ConfigError, match="unknown"):
        EvalConfig.from_config({"evaluate": {"drawz": 3}})
    with pytest.raises(ConfigError, match="lr"):
        _cfg(conv={**TINY_BUDGET, "lr": 0})
    with pytest.raises(ConfigError, match=r"evaluate.adapt must be true or false, got 'yes'"):
        _cfg(adapt="yes")
    with pytest.raises(ConfigError, match=r"evaluate.conv.steps must be an integer, got 2.5"):
        _cfg(conv={**TINY_BUDGET, "steps": 2.5})
    # no competing defaults: a section without the profile's keys is refused, naming them
    with pytest.raises(ConfigError, match=r"evaluate lacks key\(s\) \['adapt', 'adapt_lr'"):
        EvalConfig.from_config({"evaluate": {"draws": 2, "shots": 1}})
    with pytest.raises(ConfigError, match=r"evaluate.conv lacks key\(s\) \['warmup'\]"):
        EvalConfig.from_config({"evaluate": {**load_profile("quick")["evaluate"],
                                             "conv": {k: v for k, v in TINY_BUDGET.items() if k != "warmup"}}})
    q = EvalConfig.from_config(load_profile("quick"))
    assert q.draws == 5 and q.tau == 2.0 and q.adapt_lr == load_profile("quick")["evaluate"]["adapt_lr"]
    assert q.rand_adapt is False  # default: the paper's Rand U-Net takes no gradient step
    assert _cfg(adapt_lr="1e-3").adapt_lr == 1e-3  # YAML reads 1e-3 as a string


def test_step_lr_follows_adapt_and_rand_adapt():
    assert _cfg().step_lr("hyper_unet") == _cfg().adapt_lr and _cfg().step_lr("rand_unet") is None
    assert _cfg(rand_adapt=True).step_lr("rand_unet") == _cfg().adapt_lr
    assert _cfg(adapt=False, rand_adapt=True).step_lr("rand_unet") is None
    assert _cfg(adapt=False).step_lr("hyper_unet") is None
    with pytest.raises(ValueError, match="copy_support"):
        _cfg().step_lr("copy_support")


# ---------------------------------------------------------------------------- protocol_for
def test_protocol_for_reads_the_checkpoints_recorded_section():
    section = {**load_profile("quick")["evaluate"], "adapt_lr": 0.05, "draws": 3}
    cfg = {"name": "mine", "evaluate": section}  # trained from a user YAML file since moved
    p = protocol_for(cfg)
    assert (p.adapt_lr, p.draws, p.rand_adapt) == (0.05, 3, False)
    # an explicit profile wins over the recorded section; keyword and nested overrides apply last
    assert protocol_for(cfg, "quick").adapt_lr == load_profile("quick")["evaluate"]["adapt_lr"]
    p = protocol_for(cfg, overrides={"conv": {"steps": 7}, "rand_adapt": True}, draws=None, shots=2)
    assert (p.conv.steps, p.rand_adapt, p.draws, p.shots) == (7, True, 3, 2)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['drawz'\] in evaluate"):
        protocol_for(cfg, overrides={"drawz": 1})
    # a checkpoint of a built-in profile takes the kit's current protocol for it, not its record
    assert protocol_for({"name": "quick", "evaluate": section}).adapt_lr == \
        load_profile("quick")["evaluate"]["adapt_lr"]


def test_the_steps_loss_is_the_profiles_or_the_training_loss():
    quick = load_profile("quick")
    assert protocol_for(quick).step_bce_weight == quick["evaluate"]["adapt_bce_weight"]
    # null: the loss the checkpoint was trained with
    assert protocol_for(quick, adapt_bce_weight=None).step_bce_weight == quick["evaluate"]["adapt_bce_weight"]
    training = protocol_for(quick, overrides={"adapt_bce_weight": None})
    assert training.adapt_bce_weight == training.step_bce_weight == quick["train"]["bce_weight"] == 0.1
    # a section recorded before the key existed meant the paper's Dice + BCE
    old = {k: v for k, v in quick["evaluate"].items() if k != "adapt_bce_weight"}
    assert protocol_for({"name": "mine", "evaluate": old, "train": quick["train"]}).step_bce_weight == 1.0
    with pytest.raises(ConfigError, match="adapt_bce_weight must be >= 0"):
        protocol_for(quick, adapt_bce_weight=-1.0)


def test_the_steps_loss_weight_changes_the_step():
    torch.manual_seed(0)
    hyper = HyperUNet.from_config(TINY_MODEL).eval()
    images = torch.randn(1, 1, 16, 16, 16)
    masks = torch.zeros_like(images)
    masks[..., 4:9, 4:9, 4:9] = 1
    after = {}
    for w in (1.0, 0.1):
        unet = hyper.generate(images, masks)
        before, after[w] = gradient_step(unet, images, masks, lr=0.1, bce_weight=w)
        with torch.no_grad():
            expected = float(segmentation_loss(hyper.generate(images, masks)(images), masks, w))
        assert before == pytest.approx(expected)
    assert after[1.0] != after[0.1]


def test_protocol_for_without_a_section_reads_the_named_profile(tmp_path):
    assert protocol_for({"name": "paper"}).test_fraction == load_profile("paper")["evaluate"]["test_fraction"]
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: quick\nevaluate:\n  adapt_lr: 0.02\n")
    assert protocol_for({"name": str(mine)}).adapt_lr == 0.02
    assert protocol_for({"name": "gone"}, mine).adapt_lr == 0.02


@pytest.mark.parametrize("cfg, words", [
    ({"name": "mine"}, ["'mine'", "--profile"]),  # a user YAML profile records its stem as name
    ({"name": "runs/moved.yaml"}, ["'runs/moved.yaml'", "--profile"]),
    ({}, ["neither an evaluate section nor a profile name", "--profile"]),
])
def test_protocol_for_refuses_a_missing_profile(cfg, words):
    with pytest.raises(ConfigError) as err:
        protocol_for(cfg)
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------- baselines
def test_supervised_training_learns_a_bright_ball():
    torch.manual_seed(0)
    from hyperkit.model.unet import UNet3D

    bank = _bank(["a/b/ball@CT"], n_cases=6)
    s = Samples(bank.images["a/b/ball@CT"], bank.masks["a/b/ball@CT"], torch.zeros(6, dtype=torch.long))
    net = UNet3D(8)
    cfg = SupervisedConfig(steps=40, batch=2, lr=3e-3, val_every=10, patience=10, augment=False, warmup=0)
    res = train_supervised(net, Samples(s.images[:4], s.masks[:4], s.channels[:4]),
                           Samples(s.images[4:], s.masks[4:], s.channels[4:]), cfg, torch.Generator().manual_seed(0))
    assert res.curve[0][0] == 0 and res.best_dice > 0.5 > res.curve[0][1]
    assert res.best_step > 0 and res.seconds_to_best <= res.seconds


# ---------------------------------------------------------------------------- the protocol
def test_rand_unet_takes_the_gradient_step_only_with_rand_adapt():
    torch.manual_seed(0)
    hyper = HyperUNet.from_config(TINY_MODEL).eval()
    bank = _bank([LIVER])
    img, msk = bank.images[LIVER][:1], bank.masks[LIVER][:1]
    ref = {k: v.clone() for k, v in hyper.random_unet(torch.Generator().manual_seed(5)).state_dict().items()}
    plain = one_shot_model("rand_unet", hyper, img, msk, _cfg(), torch.Generator().manual_seed(5)).state_dict()
    assert plain.keys() == ref.keys() and all(torch.equal(plain[k], ref[k]) for k in ref)
    stepped = one_shot_model("rand_unet", hyper, img, msk, _cfg(rand_adapt=True, adapt_lr=0.1),
                             torch.Generator().manual_seed(5)).state_dict()
    assert any(not torch.equal(stepped[k], ref[k]) for k in ref)
    # the Hyper U-Net takes the step by default
    gen = {k: v.clone() for k, v in hyper.generate(img, msk).state_dict().items()}
    hyp = one_shot_model("hyper_unet", hyper, img, msk, _cfg(adapt_lr=0.1), None).state_dict()
    assert any(not torch.equal(hyp[k], gen[k]) for k in gen)
    with pytest.raises(ValueError, match="generator"):
        one_shot_model("rand_unet", hyper, img, msk, _cfg(), None)


def test_score_gives_nsd_at_tau_and_at_one_voxel():
    bank = _bank([LIVER], n_cases=3)
    preds = bank.masks[LIVER].roll(1, dims=2)  # every prediction one 4 mm voxel off
    out = score(preds, bank.masks[LIVER], bank.spacing, 2.0)
    assert len(out) == 3 and all(len(t) == 3 for t in out)
    assert all(v >= s and v > s for _, s, v in out)  # a one-voxel shift is inside one voxel, not 2 mm
    assert out[0][2] == pytest.approx(1.0)


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
            assert per[(t, m)] == 2 * 2  # 2 draws x the 2 test cases
        assert per[(t, "conv_unet")] == per[(t, "all_unet")] == 2  # 40 % of 4 cases
        # every method on the same cases, the test split; no support is a test case
        test = {bank.case_ids[t][i] for i in task_split(4, _cfg(), 0, t).test}
        for m in ("hyper_unet", "rand_unet", "copy_support", "conv_unet", "all_unet"):
            assert {r["case"] for r in rows if (r["task"], r["method"]) == (t, m)} == test
        supports = {r["support"] for r in rows if r["task"] == t and r["method"] in ("hyper_unet", "rand_unet")}
        assert len(supports) == 2 and not supports & test
    assert all(r["in_test_split"] for r in rows)
    assert set(info["conv_unet"]) == set(bank.task_ids) and info["all_unet"]["tasks"] == 3
    assert all(0 <= r["dsc"] <= 1 and 0 <= r["nsd"] <= r["nsd_voxel"] <= 1 for r in rows)  # 4 mm voxels, tau 2 mm
    assert read_results(out) == [{**r, **{k: pytest.approx(r[k], abs=1e-6)
                                          for k in ("dsc", "nsd", "nsd_voxel", "fit_seconds")}} for r in rows]
    # the tables: every method of a task over the same cases
    summary = summarize(rows)
    for t in bank.task_ids:
        assert {(s.cases, s.scope) for (tt, _), s in summary.items() if tt == t} == {(2, SCOPE_TEST)}
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
    assert sum(1 for r in rows3 if r["task"] == LIVER and r["method"] == "hyper_unet") == 4
    again = {key(r): r["dsc"] for r in rows3 if r["task"] == LIVER and r["method"] == "hyper_unet"}
    assert again == {k: pytest.approx(v, abs=1e-6) for k, v in first.items() if k[:2] == (LIVER, "hyper_unet")}
    with open(out) as fh:
        assert tuple(next(csv.reader(fh))) == FIELDS


def test_complete_pairs_need_every_draw_of_a_one_shot_method_and_one_row_of_a_supervised_one():
    """Resume keeps a one-shot (task, method) with all cfg.draws draws, a supervised one with any row."""
    rows = [{"task": t, "method": m, "draw": d, "case": c} for t, m, draws in
            ((LIVER, "hyper_unet", (0, 1)), (LIVER, "copy_support", (0,)), ("heart", "hyper_unet", (1,)),
             (LIVER, "conv_unet", (0,)), (LIVER, "all_unet", (0,))) for d in draws for c in ("a", "b")]
    assert _complete_pairs(rows, _cfg()) == {(LIVER, "hyper_unet"), (LIVER, "conv_unet"), (LIVER, "all_unet")}
    assert _complete_pairs(rows, _cfg(draws=1)) == {(LIVER, "hyper_unet"), (LIVER, "copy_support"),
                                                    ("heart", "hyper_unet"), (LIVER, "conv_unet"), (LIVER, "all_unet")}
    assert _complete_pairs([], _cfg()) == set()


def test_a_task_too_small_for_a_split_falls_back(tmp_path):
    bank = _bank([LIVER], n_cases=2)
    rows, _ = evaluate(None, bank, _cfg(), tmp_path / "r.csv", methods=["copy_support", "conv_unet"],
                       base_width=8, progress=False)
    assert {r["method"] for r in rows} == {"copy_support"}  # Conv U-Net needs a split
    assert len(rows) == 2 and not any(r["in_test_split"] for r in rows)  # 2 draws x the other case
    assert all(r["case"] != r["support"] for r in rows)
    s = summarize(rows)[(LIVER, "copy_support")]
    assert (s.scope, s.cases, s.n) == (SCOPE_ALL, 2, 2)
    assert "too few cases for a test split" in comparison_table(summarize(rows), "table1_ct")


def test_read_results_refuses_an_old_or_foreign_file(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text(",".join(c for c in FIELDS if c != "nsd_voxel") + "\n")
    with pytest.raises(HyperkitError, match=r"older hyperkit \(no column\(s\) \['nsd_voxel'\]\).*--out"):
        read_results(old)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(HyperkitError, match="not a hyperkit results file"):
        read_results(other)


def _row(method: str, case: str, dsc: float, in_test: bool = True) -> dict:
    return {"task": LIVER, "method": method, "case": case, "in_test_split": in_test, "dsc": dsc, "nsd": dsc / 2,
            "nsd_voxel": dsc / 2 + 0.25}


def test_tables_mark_best_and_show_the_papers_numbers():
    rows = [_row(m, "c1", v) for m, v in
            (("hyper_unet", 0.5), ("rand_unet", 0.1), ("conv_unet", 0.9), ("copy_support", 0.3))]
    table = comparison_table(summarize(rows), "table1_ct", tau=2.0, voxel_mm=4.0)
    assert "**0.900±0.000**" in table and "<u>0.500±0.000</u>" in table
    assert "**0.700±0.000**" in table  # Conv U-Net's NSD at one voxel, best
    assert "0.772±0.063" in table  # the paper's Hyper U-Net on liver
    assert "Task03_Liver/liver@CT" in table and "paper" in table
    assert "| kit DSC | paper DSC | kit NSD@2 mm | paper NSD@2 mm | kit NSD@1 voxel (4 mm) |" in table
    assert "same cases" in table and "test split" in table
    assert "spleen" in table  # columns without a kit task are listed as not evaluated
    assert "NSD@τ" in comparison_table(summarize(rows), "table1_ct")  # tolerances not given


def test_tables_use_the_same_cases_for_every_method():
    # a one-shot fallback (supports from all cases): its rows on non-test cases are left out
    rows = [_row("hyper_unet", "c1", 0.5), _row("hyper_unet", "c2", 0.1, in_test=False),
            _row("hyper_unet", "c3", 0.3), _row("conv_unet", "c1", 0.9), _row("conv_unet", "c3", 0.7)]
    s = summarize(rows)
    hyp, conv = s[(LIVER, "hyper_unet")], s[(LIVER, "conv_unet")]
    assert hyp.dsc == pytest.approx(0.4) and (hyp.n, hyp.cases) == (2, 2) == (conv.n, conv.cases)
    assert hyp.nsd_voxel == pytest.approx(0.45) and hyp.scope == conv.scope == SCOPE_TEST_ANY_SUPPORT
    table = comparison_table(s, "table1_ct")
    assert "liver: fewer train + validation cases than shots" in table
    assert "fewer train" not in comparison_table(summarize([r for r in rows if r["in_test_split"]]), "table1_ct")


def _two_targets() -> dict:
    spleen, heart = "msd/Task09_Spleen/spleen@CT", "msd/Task02_Heart/left_atrium@MRI"
    rows = [_row(m, "c1", v) for m, v in
            (("hyper_unet", 0.5), ("rand_unet", 0.1), ("conv_unet", 0.9), ("copy_support", 0.3))]
    rows += [{**_row(m, "c1", v), "task": spleen} for m, v in
             (("hyper_unet", 0.4), ("rand_unet", 0.05), ("copy_support", 0.405))]
    rows += [{**_row(m, "c1", v), "task": heart} for m, v in (("hyper_unet", 0.2), ("rand_unet", 0.3))]
    return summarize(rows)


def test_reading_builds_the_sentences_from_the_numbers():
    lines = reading(_two_targets())
    liver, spleen, heart, tally = lines
    assert liver.startswith("- **liver** (Task03_Liver/liver@CT): best: Conv U-Net (0.900); Hyper U-Net 0.500")
    assert "above Copy support mask (0.300, +0.200)" in liver and "above Rand U-Net (0.100, +0.400)" in liver
    assert "paper's Hyper U-Net 0.772 (kit -0.272)" in liver
    assert "level with Copy support mask (0.405, -0.005)" in spleen  # within 0.01: level
    assert "best: Rand U-Net (0.300)" in heart and "below Rand U-Net" in heart and "heart_bssfp" in heart
    assert "above Rand U-Net on 2 of 3" in tally and "above copying the support mask on 1 of 2" in tally
    assert "below Conv U-Net on 1 of 1;" in tally and "above the paper's Hyper U-Net on 0 of 3" in tally
    # a count with level differences says how many are clear: the spleen is above Copy by 0.005 here
    spleen_above = {**_two_targets(), ("msd/Task09_Spleen/spleen@CT", "copy_support"):
                    summarize([{**_row("copy_support", "c1", 0.395), "task": "msd/Task09_Spleen/spleen@CT"}])[
                        ("msd/Task09_Spleen/spleen@CT", "copy_support")]}
    *_, tally2 = reading(spleen_above)
    assert "above copying the support mask on 2 of 2 (1 by 0.01 or more)" in tally2
    tie = reading(summarize([_row("hyper_unet", "c1", 0.305), _row("conv_unet", "c1", 0.31)]))[0]
    assert "best: Conv U-Net (0.310); Hyper U-Net 0.305 (level with it)" in tie
    best_hyper, _ = reading(summarize([_row("hyper_unet", "c1", 0.8), _row("rand_unet", "c1", 0.1)]))
    assert "best: Hyper U-Net (0.800); above Rand U-Net (0.100, +0.700)" in best_hyper  # not said twice


def test_what_held_prints_the_checks():
    checks = what_held(_two_targets())
    assert checks[0] == (False, "Hyper U-Net DSC above Rand U-Net on 2 of 3 targets (aim: 3) (not on: heart_bssfp)")
    assert checks[1] == (False, "Hyper U-Net DSC above Copy support mask on 1 of 2 targets (aim: 2) (not on: spleen)")
    assert checks[2] == (False, "liver: Hyper U-Net DSC 0.500 against the aim 0.70; paper's Hyper U-Net 0.772")
    assert checks[3] == (False, "heart_bssfp: Hyper U-Net DSC 0.200 against the aim 0.30; paper's Hyper U-Net 0.500")
    assert len(checks) == 4  # brain oedema not evaluated: no line
    assert what_held(_two_targets(), aims={"liver": 0.5})[2][0]


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
    ckpt = untrained_checkpoint({k: v for k, v in cfg.items() if k != "evaluate"}, root / "best.pt")
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
    assert len([r for r in rows if r["method"] == "hyper_unet"]) == 2 * 2  # 2 draws x 2 test cases
    assert {r["case"] for r in rows if r["method"] == "hyper_unet"} == {r["case"] for r in rows
                                                                        if r["method"] == "conv_unet"}
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["complete"] and record["seed"] == 0 and record["commit"] and "torch" in record["versions"]
    assert record["protocol"]["evaluate"]["conv"]["steps"] == 2 and record["protocol"]["evaluate"]["draws"] == 2
    assert record["protocol"]["evaluate"]["adapt_lr"] == load_profile("quick")["evaluate"]["adapt_lr"]
    assert record["nsd_voxel_mm"] == 4.0
    md = out.with_suffix(".md").read_text()
    assert "paper Table 1" in md and "kit NSD@2 mm" in md and "kit NSD@1 voxel (4 mm)" in md
    assert "Hyper U-Net" in capsys.readouterr().out


def test_evaluate_command_takes_the_recorded_protocol(tiny_run, tmp_path):
    _, data, ckpt = tiny_run
    ck = torch.load(ckpt, weights_only=True)
    section = {**load_profile("quick")["evaluate"], "draws": 1, "adapt_lr": 0.05}
    # trained from a user profile "mine.yaml" that is gone: the recorded section is the protocol
    moved = save_atomic({**ck, "config": {**ck["config"], "name": "mine", "evaluate": section}}, tmp_path / "m.pt")
    out = tmp_path / "r.csv"
    assert main(["evaluate", "--checkpoint", str(moved), "--data", str(data), "--out", str(out), "--tasks", "liver",
                 "--methods", "hyper_unet", "--no-progress"]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["protocol"]["evaluate"]["adapt_lr"] == 0.05 and record["protocol"]["evaluate"]["draws"] == 1
    assert len(read_results(out)) == 2  # 1 draw x 2 test cases


def test_evaluate_command_names_a_missing_profile(tiny_run, tmp_path, capsys):
    _, data, ckpt = tiny_run
    ck = torch.load(ckpt, weights_only=True)
    gone = save_atomic({**ck, "config": {**ck["config"], "name": "mine"}}, tmp_path / "gone.pt")
    assert main(["evaluate", "--checkpoint", str(gone), "--data", str(data), "--out", str(tmp_path / "r.csv"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'mine'" in err and "--profile" in err and err.count("\n") == 1


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


def test_baselines_are_reused_across_checkpoints_and_refused_across_protocols(tiny_run, tmp_path):
    _, data, ckpt = tiny_run
    common = ["--data", str(data), "--tasks", "liver", "--draws", "1", "--set", "evaluate.conv.steps=2",
              "--set", "evaluate.conv.augment=false", "--no-progress"]
    first = tmp_path / "a" / "results.csv"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(first), "--methods", "conv_unet", *common]) == 0
    ck = torch.load(ckpt, weights_only=True)
    other = save_atomic({**ck, "model": {k: v + 0.01 if v.is_floating_point() else v for k, v in ck["model"].items()}},
                        tmp_path / "other.pt")
    second = tmp_path / "b" / "results.csv"
    assert main(["evaluate", "--checkpoint", str(other), "--out", str(second), "--methods", "hyper_unet,conv_unet",
                 "--baselines-from", str(first), *common]) == 0
    conv = lambda p: [(r["case"], r["dsc"]) for r in read_results(p) if r["method"] == "conv_unet"]
    assert conv(second) == conv(first) and conv(first)
    assert any(r["method"] == "hyper_unet" for r in read_results(second))
    record = json.loads(second.with_suffix(".json").read_text())
    assert record["baselines"]["conv_unet"] == \
        json.loads(first.with_suffix(".json").read_text())["baselines"]["conv_unet"]
    third = tmp_path / "c" / "results.csv"
    code = main(["evaluate", "--checkpoint", str(other), "--out", str(third), "--methods", "conv_unet",
                 "--baselines-from", str(first), *common, "--set", "evaluate.conv.steps=3"])
    assert code == 2 and not third.parent.exists()  # another protocol: refused before anything is written


def test_each_baseline_comes_from_a_source_made_with_its_own_budget(tiny_run, tmp_path):
    _, _, ckpt = tiny_run
    data = tmp_path / "data"  # enough training subjects for the All U-Net's training tasks
    write_sample_msd(data, "Task03_Liver", n_cases=4, labels=("liver", "cancer"))
    write_sample_totalseg(data, n_cases=6)
    common = ["--data", str(data), "--tasks", "liver", "--draws", "1", "--no-progress",
              *[f"--set=evaluate.{b}.{k}" for b in ("conv", "all") for k in ("steps=2", "augment=false")]]
    conv_src, all_src, joined = (tmp_path / d / "results.csv" for d in "abc")
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(conv_src), "--methods", "conv_unet", *common]) == 0
    record = json.loads(conv_src.with_suffix(".json").read_text())
    del record["protocol"]["evaluate"]["conv"]["bce_weight"]  # as recorded before the setting existed
    conv_src.with_suffix(".json").write_text(json.dumps(record))
    dice_weight = ["--set", "evaluate.all.bce_weight=0.1"]
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(all_src), "--methods", "all_unet",
                 *common, *dice_weight]) == 0
    # the one-shot settings (here the gradient step's loss) do not matter to the baselines
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(joined), "--methods", "conv_unet,all_unet",
                 "--baselines-from", str(conv_src), str(all_src), *common, *dice_weight,
                 "--set", "evaluate.adapt_bce_weight=0.1"]) == 0
    rows = lambda p, m: [(r["case"], r["dsc"]) for r in read_results(p) if r["method"] == m]
    assert rows(joined, "conv_unet") == rows(conv_src, "conv_unet") and rows(conv_src, "conv_unet")
    assert rows(joined, "all_unet") == rows(all_src, "all_unet") and rows(all_src, "all_unet")
    # the conv-only source's All U-Net budget (BCE weight 1) is not the joined run's, and it has no
    # All U-Net rows: from it alone only the Conv U-Net comes; the All U-Net source is refused alone
    # for a Conv U-Net
    code = main(["evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "d" / "r.csv"), "--methods",
                 "conv_unet", "--baselines-from", str(all_src), *common])
    assert code == 2 and not (tmp_path / "d").exists()


def test_a_copied_run_folder_reuses_its_evaluation_and_old_records_compare_by_path(tiny_run, tmp_path, capsys):
    import shutil

    _, data, ckpt = tiny_run
    first = tmp_path / "first"
    shutil.copytree(data, first / "data")
    shutil.copy2(ckpt, first / "best.pt")

    def argv(folder):
        return ["evaluate", "--checkpoint", str(folder / "best.pt"), "--data", str(folder / "data"), "--out",
                str(folder / "eval" / "r.csv"), "--tasks", "liver", "--methods", "copy_support", "--draws", "1",
                "--no-progress"]

    assert main(argv(first)) == 0
    stored = json.loads((first / "eval" / "r.json").read_text())
    assert stored["protocol"]["data_fingerprint"].startswith("sha256:")
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)  # data, checkpoint and results together, at another path
    res = run_evaluation(moved / "best.pt", moved / "data", moved / "eval" / "r.csv", tasks=["liver"],
                         methods=["copy_support"], draws=1, reuse=True, progress=False)
    assert res.record["protocol"]["data"] == str((first / "data").resolve())  # the stored run, not a new one
    assert main([*argv(moved), "--resume"]) == 0
    # other data at the same place is another protocol
    (moved / "data" / "phantoms.json").write_text("{}")
    assert main([*argv(moved), "--resume"]) == 2 and "another protocol" in capsys.readouterr().err
    # a record of an earlier version (no fingerprint) is compared by its path, as before
    legacy = tmp_path / "legacy"
    shutil.copytree(first, legacy)
    record = json.loads((legacy / "eval" / "r.json").read_text())
    del record["protocol"]["data_fingerprint"]
    (legacy / "eval" / "r.json").write_text(json.dumps(record))
    assert main([*argv(legacy), "--resume"]) == 2
    record["protocol"]["data"] = str((legacy / "data").resolve())
    (legacy / "eval" / "r.json").write_text(json.dumps(record))
    assert main([*argv(legacy), "--resume"]) == 0


def test_a_recorded_protocol_that_no_longer_reads_is_another_protocol(tiny_run, tmp_path, capsys):
    _, data, ckpt = tiny_run
    out = tmp_path / "r.csv"
    argv = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--tasks", "liver",
            "--methods", "copy_support", "--draws", "1", "--no-progress"]
    assert main(argv) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert main([*argv, "--resume"]) == 0  # the same protocol: reused
    record["protocol"]["evaluate"] = {"draws": 1}  # a section of some older format
    out.with_suffix(".json").write_text(json.dumps(record))
    assert main([*argv, "--resume"]) == 2
    assert "another protocol" in capsys.readouterr().err


def test_a_second_run_without_resume_leaves_the_first_record_intact(tiny_run, tmp_path):
    _, data, ckpt = tiny_run
    out = tmp_path / "r.csv"
    argv = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--tasks", "liver",
            "--methods", "copy_support", "--draws", "1", "--no-progress"]
    assert main(argv) == 0
    before = out.with_suffix(".json").read_text()
    assert main(argv) == 2
    assert out.with_suffix(".json").read_text() == before and json.loads(before)["complete"]


# ---------------------------------------------------------------------------- paired differences (stats)
def test_bootstrap_interval_matches_the_normal_interval_at_its_level():
    """Guards the percentile tails of ``level``: 95 % is mean +- 1.96 SE, 80 % is mean +- 1.28 SE (large n)."""
    from scipy.stats import norm

    n = 400
    d = 0.05 + 0.1 * norm.ppf((np.arange(n) + 0.5) / n)  # differences with a known spread
    se = d.std() / np.sqrt(n)  # the bootstrap SE of a mean: population sd / sqrt(n)
    for level in (0.95, 0.80):
        p = paired_difference(d + 0.5, np.full(n, 0.5), level=level)
        half = norm.ppf(0.5 + level / 2) * se
        assert p.diff == pytest.approx(0.05)
        assert (p.hi - p.lo) / 2 == pytest.approx(half, rel=0.06)
        assert (p.hi + p.lo) / 2 == pytest.approx(0.05, abs=0.1 * se)


def test_bootstrap_of_two_pairs_reaches_both_ends():
    """Guards resampling over every pair: with d = (1, 0) the plain bootstrap's means 0 and 1 each have
    probability 1/4; the kit's draws one of the two (n - 1) and widens the ends by t(1) / z around 0.5."""
    from scipy.stats import norm, t

    p = paired_difference([1.0, 0.0], [0.0, 0.0], small_sample=False)
    assert (p.a, p.b, p.diff, p.lo, p.hi, p.n) == (0.5, 0.0, 0.5, 0.0, 1.0, 2)
    k = t.ppf(0.975, 1) / norm.ppf(0.975)
    q = paired_difference([1.0, 0.0], [0.0, 0.0])
    assert (q.diff, q.lo, q.hi) == (0.5, pytest.approx(0.5 - 0.5 * k), pytest.approx(0.5 + 0.5 * k))


def test_small_sample_interval_of_independent_pairs_is_a_t_interval():
    """Guards the corrections on independent pairs: resampling n - 1 of n makes the bootstrap SE
    s / sqrt(n), and t(n - 1) / z widens the normal quantile to Student's: the interval is then
    close to the textbook t-interval, where the plain percentile one is too narrow."""
    from scipy import stats

    d = np.random.default_rng(3).normal(0.1, 0.2, 8)
    half = stats.t.ppf(0.975, 7) * d.std(ddof=1) / np.sqrt(8)
    kit = paired_difference(d, np.zeros(8), resamples=20000)
    plain = paired_difference(d, np.zeros(8), resamples=20000, small_sample=False)
    assert (kit.hi - kit.lo) / 2 == pytest.approx(half, rel=0.08)
    assert (plain.hi - plain.lo) / 2 < 0.8 * half
    assert effective_df(d, [(0, 0, i) for i in range(8)]) == pytest.approx(7)


def test_effective_df_follows_the_component_that_dominates():
    """Guards the Welch-Satterthwaite degrees of freedom: a case effect alone gives cases - 1, a draw
    effect alone draws - 1, both alike about their sum; many strata add up; no spread gives inf."""
    units = [("t", dr, c) for dr in range(5) for c in range(4)]
    case_only = [float(c) for _, _, c in units]
    draw_only = [float(dr) for _, dr, _ in units]
    assert effective_df(case_only, units) == pytest.approx(3)
    assert effective_df(draw_only, units) == pytest.approx(4)
    both = [c / np.sqrt(4) * np.sqrt(3) + dr / np.sqrt(5) * np.sqrt(4) for _, dr, c in units]
    assert 5 < effective_df(both, units) <= 7
    ten = [(t, dr, c) for t in range(10) for dr in range(5) for c in range(4)]
    assert effective_df([float(c) for _, _, c in ten], ten) == pytest.approx(30)
    assert effective_df([0.2] * 20, units) == float("inf")
    with pytest.raises(ValueError, match="19 units"):
        effective_df([0.2] * 20, units[:19])


def test_paired_means_of_each_side_and_the_text():
    """Guards ``Paired.a`` / ``Paired.b`` (the two sides' means, in order) and the ``diff [lo, hi]`` text."""
    p = paired_difference([0.5, 0.7, 0.9], [0.1, 0.2, 0.3])
    assert p.a == pytest.approx(0.7) and p.b == pytest.approx(0.2) and p.diff == pytest.approx(0.5)
    assert Paired(0.5, 0.4, 0.012, -0.004, 0.03, 5).text() == "+0.012 [-0.004, +0.030]"
    assert Paired(0.5, 0.4, -0.25, -0.5, 0.0, 5).text(digits=1) == "-0.2 [-0.5, +0.0]"


def test_bootstrap_seed_and_argument_checks():
    """Guards that ``seed`` chooses the resampling stream (same seed, same interval) and the refusals."""
    d = np.random.default_rng(0).normal(0.1, 0.2, 30)
    p0, p0b, p1 = (paired_difference(d, np.zeros(30), seed=s) for s in (0, 0, 1))
    assert (p0.lo, p0.hi) == (p0b.lo, p0b.hi) and (p0.lo, p0.hi) != (p1.lo, p1.hi)
    assert p0.diff == p1.diff
    for kwargs, words in (({"level": 1.0}, "level"), ({"level": 0.0}, "level"), ({"resamples": 0}, "resamples")):
        with pytest.raises(ValueError, match=words):
            paired_difference([1.0, 2.0], [0.0, 1.0], **kwargs)


def test_two_way_bootstrap_resamples_whole_cases_and_whole_draws():
    """Guards ``units``: 20 draws of two cases at +0.3 and -0.1 are two cases, not 40 independent pairs
    (the interval over cases spans both); the same holds with draws and cases swapped."""
    d, zeros = [0.3, -0.1] * 20, [0.0] * 40
    rows_only = paired_difference(d, zeros)
    assert rows_only.lo > 0  # rows as independent pairs: an effect "found" in two patients
    for small_sample in (False, True):
        by_case = paired_difference(d, zeros, units=[("t", k // 2, ("c0", "c1")[k % 2]) for k in range(40)],
                                    small_sample=small_sample)
        assert (by_case.diff, by_case.n) == (pytest.approx(0.1), 40)
        by_draw = paired_difference(d, zeros, units=[("t", k % 2, k // 2) for k in range(40)],
                                    small_sample=small_sample)
        for p in (by_case, by_draw):
            if small_sample:  # widened, never narrowed
                assert p.lo < -0.1 and p.hi > 0.3
            else:
                assert (p.lo, p.hi) == (pytest.approx(-0.1), pytest.approx(0.3))


def test_two_way_bootstrap_keeps_each_stratum_and_checks_its_units():
    """Guards the strata (a task's draws and cases are resampled within the task, so a pooled
    difference of one task always at +0.2 and one at 0.0 stays at +0.1) and the refusals."""
    units = [(t, dr, c) for t in ("a", "b") for dr in range(3) for c in range(4)]
    d = [0.2 if u[0] == "a" else 0.0 for u in units]
    p = paired_difference(d, [0.0] * len(d), units=units)
    assert (p.lo, p.diff, p.hi) == (pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.1))
    with pytest.raises(ValueError, match="2 pairs, got 1 units"):
        paired_difference([1.0, 2.0], [0.0, 0.0], units=[("t", 0, "a")])
    with pytest.raises(ValueError, match="one of them"):
        paired_difference([1.0, 2.0], [0.0, 0.0], units=[("t", 0, "a"), ("t", 0)])


def test_paired_tasks_per_task_and_pooled():
    """Guards paired_tasks: per task the pairs of pair_rows, ``tasks`` selects, ``pool`` adds all tasks
    pooled, and a pool named like a task is refused."""
    rows = [{"task": t, "method": m, "draw": str(dr), "case": f"c{c}", "in_test_split": True,
             "dsc": (0.8 if t == "t1" else 0.5) if m == "hyper_unet" else 0.5 + 0.01 * c}
            for t in ("t1", "t2") for m in ("hyper_unet", "rand_unet") for dr in range(2) for c in range(3)]
    got = paired_tasks(rows, rows, "dsc", "hyper_unet", "rand_unet", pool="all")
    assert set(got) == {"t1", "t2", "all"} and got["all"].n == 12
    assert got["t1"].diff == pytest.approx(0.29) and got["t2"].diff == pytest.approx(-0.01)
    assert got["all"].diff == pytest.approx(0.14)
    assert got["t1"] == paired_difference(*pair_rows(rows, rows, "dsc", "hyper_unet", "rand_unet")["t1"],
                                          units=[("t1", dr, f"c{c}") for dr in range(2) for c in range(3)])
    assert set(paired_tasks(rows, rows, "dsc", "hyper_unet", "rand_unet", tasks=["t2", "t9"])) == {"t2"}
    with pytest.raises(ValueError, match="'t1'"):
        paired_tasks(rows, rows, "dsc", "hyper_unet", "rand_unet", pool="t1")


def test_pair_rows_keeps_the_test_split_only_when_asked():
    """Guards ``test_only``: rows outside a task's test split (bool or CSV text) are left out of the pairs."""
    def row(case: str, split, v: float, method: str = "hyper_unet") -> dict:
        return {"task": "t", "method": method, "draw": "0", "case": case, "in_test_split": split, "dsc": v}
    a = [row("x", True, 0.9), row("y", "True", 0.8), row("z", False, 0.1), row("w", "False", 0.2)]
    b = [dict(r, method="rand_unet", dsc=0.5) for r in a]
    got = pair_rows(a, b, method_a="hyper_unet", method_b="rand_unet")
    assert got == {"t": ([0.9, 0.8], [0.5, 0.5])}  # sorted by (draw, case): x, y; w and z left out
    assert pair_rows(a, b, method_a="hyper_unet", method_b="rand_unet", test_only=False) == \
        {"t": ([0.2, 0.9, 0.8, 0.1], [0.5] * 4)}
    # a task without a test split (fewer than 3 cases: every row False) keeps all its rows, as the tables do
    small = [dict(r, task="s", in_test_split=False) for r in a[:2]]
    got = pair_rows(a + small, b + [dict(r, method="rand_unet", dsc=0.5) for r in small],
                    method_a="hyper_unet", method_b="rand_unet")
    assert got == {"t": ([0.9, 0.8], [0.5, 0.5]), "s": ([0.9, 0.8], [0.5, 0.5])}


def test_fine_tuning_repeats_are_separate_pairs():
    """Guards paired_starts' key: two repeats of one (task, N, case) are two pairs, not one."""
    def ft(method: str, repeat: int, dsc: float) -> dict:
        return {"task": "t", "n": "2", "repeat": str(repeat), "case": "a", "method": method, "dsc": str(dsc)}
    rows = [ft("hyper_ft", 0, 0.6), ft("rand_ft", 0, 0.4), ft("hyper_ft", 1, 0.5), ft("rand_ft", 1, 0.5)]
    p = paired_starts(rows, "hyper_ft", "rand_ft")
    assert p is not None and p.n == 2 and p.diff == pytest.approx(0.1)
    assert (p.a, p.b) == (pytest.approx(0.55), pytest.approx(0.45))


def test_above_zero_follows_the_printed_interval():
    """Guards the one verdict rule: a lower end that prints as +0.000 (or below) does not count."""
    assert Paired(0.5, 0.4, 0.1, 0.0006, 0.2, 4).above_zero  # prints +0.001
    assert not Paired(0.5, 0.4, 0.1, 0.0004, 0.2, 4).above_zero  # prints +0.000
    assert not Paired(0.5, 0.4, 0.1, -0.01, 0.2, 4).above_zero
    assert Paired(0.4, 0.5, -0.1, -0.2, -0.0006, 4).below_zero  # prints -0.001
    assert not Paired(0.4, 0.5, -0.1, -0.2, -0.0004, 4).below_zero  # prints -0.000
    assert not Paired(0.4, 0.5, -0.1, -0.2, 0.01, 4).below_zero
    assert printed_above_zero(0.04, digits=1) is False and printed_above_zero(0.06, digits=1) is True


def test_strata_list_index_draw_case_in_the_order_of_the_units():
    """Guards ``_strata``'s documented layout ``stratum -> [(pair index, draw, case)]``, units in order."""
    units = [("t", "d0", "c1"), ("u", "d0", "c0"), ("t", "d1", "c0")]
    assert _strata(units) == {"t": [(0, "d0", "c1"), (2, "d1", "c0")], "u": [(1, "d0", "c0")]}


def test_small_sample_bootstrap_draws_n_minus_1_of_n_units():
    """Guards the (n - 1)-of-n resample: of two independent pairs d = (0, 1) a resample holds one of them
    (twice), so its mean is 0 or 1, never the plain bootstrap's 0.5. Over d = 0..4 a resampled mean is the
    mean of 4 draws, variance sigma^2 / 4 = 2 / 4 = 0.5 = s^2 / n (s^2 = 2.5): unbiased, where the
    plain bootstrap (5 draws) gives 2 / 5 = 0.4 and 3 of 5 draws 2 / 3."""
    two = [(0, 0, i) for i in range(2)]
    kit = _two_way_means(np.array([0.0, 1.0]), two, 4000, np.random.default_rng(0))
    plain = _two_way_means(np.array([0.0, 1.0]), two, 4000, np.random.default_rng(0), small_sample=False)
    assert set(np.unique(kit)) == {0.0, 1.0} and abs(kit.mean() - 0.5) < 0.05  # each with probability 1/2
    assert set(np.unique(plain)) == {0.0, 0.5, 1.0}
    five = [(0, 0, i) for i in range(5)]
    means = _two_way_means(np.arange(5.0), five, 20000, np.random.default_rng(1))
    assert means.var() == pytest.approx(0.5, rel=0.04)  # sampling error about 1 %


def test_two_way_bootstrap_keeps_each_strata_weight_when_strata_differ_in_size():
    """Guards the n / (n - 1) scaling of the resampled counts: a stratum of 2 pairs at 1.0 pooled with
    one of 4 pairs at 0.0 weighs 2 / 6 in every resample (unscaled, (2 - 1) / ((2 - 1) + (4 - 1)) = 1 / 4)."""
    units = [("a", 0, c) for c in range(2)] + [("b", 0, c) for c in range(4)]
    d = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    for small_sample in (True, False):
        means = _two_way_means(d, units, 500, np.random.default_rng(0), small_sample)
        np.testing.assert_allclose(means, 2 / 6, rtol=1e-12)


def test_two_way_bootstrap_counts_every_pair_of_a_shared_cell():
    """Guards cells holding several pairs (one draw and case scored twice): each pair counts, so a
    resample of case "a" alone has the mean (1 + 3) / 2 = 2 of its two pairs, one of "b" alone 0."""
    units = [("t", 0, "a"), ("t", 0, "a"), ("t", 0, "b")]
    means = _two_way_means(np.array([1.0, 3.0, 0.0]), units, 1000, np.random.default_rng(0))
    assert set(np.unique(means)) == {0.0, 2.0}


def test_two_way_bootstrap_drops_resamples_of_empty_cells():
    """Guards the documented drop of resamples whose cells hold no pair: of a 2 x 2 grid with pairs only
    at (draw 0, case a) and (draw 1, case b), a small-sample resample picks one draw and one case, so
    half the resamples hit an empty cell and are left out (no NaN), the rest are 0.2 or 0.6."""
    means = _two_way_means(np.array([0.2, 0.6]), [("t", 0, "a"), ("t", 1, "b")], 2000, np.random.default_rng(0))
    assert np.isfinite(means).all() and set(np.unique(means)) == {0.2, 0.6}
    assert 850 < means.size < 1150  # binomial(2000, 1/2): sd 22


def test_effective_df_weighs_strata_of_unequal_size():
    """Guards the Welch-Satterthwaite formula of the docstring on strata of unequal size, by hand:
    d = (0, 1 | 0, 1, 2, 5), stratum A has 2 cases (one draw), B 4 cases (one draw); a draw factor of one
    level adds nothing. A: w = 2/6, case means (0, 1), var 1/2, c = (1/9)(1/2)/2 = 1/36; B: w = 4/6,
    case means (0, 1, 2, 5), var 14/3, c = (4/9)(14/3)/4 = 14/27. df = (1/36 + 14/27)^2 /
    ((1/36)^2 / 1 + (14/27)^2 / 3) = (59/108)^2 / (3163/34992) = 10443/3163."""
    from fractions import Fraction as F

    c_a, c_b = F(1, 3) ** 2 * F(1, 2) / 2, F(2, 3) ** 2 * F(14, 3) / 4
    expected = (c_a + c_b) ** 2 / (c_a ** 2 / 1 + c_b ** 2 / 3)
    assert expected == F(10443, 3163)
    units = [("A", 0, c) for c in range(2)] + [("B", 0, c) for c in range(4)]
    assert effective_df([0, 1, 0, 1, 2, 5], units) == pytest.approx(float(expected), abs=1e-9)


def test_interval_is_the_central_percentiles_of_the_resampled_means():
    """Guards the plain interval: the (1 - level) / 2 and 1 - (1 - level) / 2 percentiles of the two-way
    bootstrap means, drawn from the stream ``(seed, "bootstrap", "two-way", pairs)``, at any level."""
    from hyperkit.seeds import numpy_rng

    d = np.random.default_rng(5).normal(0.1, 0.2, 12)
    units = [(0, 0, i) for i in range(12)]
    for level in (0.95, 0.5):
        p = paired_difference(d, np.zeros(12), level=level, seed=3, small_sample=False)
        means = _two_way_means(d, units, 2000, numpy_rng(3, "bootstrap", "two-way", 12), small_sample=False)
        tail = (1 - level) / 2 * 100
        lo, hi = np.percentile(means, [tail, 100 - tail])
        assert (p.lo, p.hi) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))


def test_paired_difference_refuses_2d_scores_and_defaults_to_independent_pairs():
    """Guards the 1-D check (a (1, n) table is not n pairs) and ``units=None``: one stratum, one draw,
    every pair its own case."""
    with pytest.raises(ValueError, match="1-D"):
        paired_difference([[0.5, 0.6]], [[0.4, 0.5]])
    a, b = [0.9, 0.1, 0.5, 0.7, 0.3], [0.2, 0.2, 0.4, 0.4, 0.6]
    assert paired_difference(a, b) == paired_difference(a, b, units=[(0, 0, i) for i in range(5)])


def test_a_row_without_the_split_field_counts_as_in_the_test_split():
    """Guards ``in_test_split``'s default (rows of results files without the field) and the CSV text."""
    assert in_test_split({}) is True
    assert in_test_split({"in_test_split": "True"}) and in_test_split({"in_test_split": 1})
    assert not in_test_split({"in_test_split": "False"}) and not in_test_split({"in_test_split": False})


def test_a_test_split_is_found_over_both_sides_rows():
    """Guards ``test_only`` reading which tasks have a test split over both sides' rows: where only b's
    rows show the task's split, a's rows outside it are not paired, whichever side a is."""
    def row(case: str, split: bool, method: str, v: float) -> dict:
        return {"task": "t", "method": method, "draw": "0", "case": case, "in_test_split": split, "dsc": v}
    a = [row("x", False, "hyper_unet", 0.9), row("y", False, "hyper_unet", 0.8)]
    b = [row("x", False, "rand_unet", 0.5), row("y", False, "rand_unet", 0.4), row("w", True, "rand_unet", 0.3)]
    assert pair_rows(a, b, method_a="hyper_unet", method_b="rand_unet") == {}
    assert pair_rows(b, a, method_a="rand_unet", method_b="hyper_unet") == {}
    assert pair_rows(a, b, method_a="hyper_unet", method_b="rand_unet", test_only=False) == \
        {"t": ([0.9, 0.8], [0.5, 0.4])}


def test_paired_tasks_adds_no_pool_without_pairs():
    """Guards ``pool``'s documented case: not added (and nothing raised) when no task has pairs."""
    rows = [{"task": "t", "method": "hyper_unet", "draw": "0", "case": "x", "in_test_split": True, "dsc": 0.5}]
    assert paired_tasks([], [], pool="all") == {}
    assert paired_tasks(rows, rows, "dsc", "hyper_unet", "rand_unet", pool="all") == {}  # no b side
    assert paired_tasks(rows, rows, tasks=["other"], pool="all") == {}


def test_fine_tuning_repeats_are_separate_draws_of_the_bootstrap():
    """Guards paired_starts' units: the draws of a task are its (N, repeat) pairs, so two repeats of one
    (N, case) at +0.2 and 0.0 are two draws resampled apart (the interval spans both, widened by
    t(1) / z), not one cell of two pairs (which would give lo = hi = 0.1)."""
    def ft(method: str, repeat: int, dsc: float) -> dict:
        return {"task": "t", "n": "2", "repeat": str(repeat), "case": "a", "method": method, "dsc": str(dsc)}
    rows = [ft("hyper_ft", 0, 0.6), ft("rand_ft", 0, 0.4), ft("hyper_ft", 1, 0.5), ft("rand_ft", 1, 0.5)]
    p = paired_starts(rows, "hyper_ft", "rand_ft")
    assert p == paired_difference([0.6, 0.5], [0.4, 0.5], units=[("t", (2, 0), "a"), ("t", (2, 1), "a")])
    assert p is not None and p.lo < 0.0 and p.hi > 0.2


def test_a_resume_interrupted_while_rewriting_the_results_keeps_them(tmp_path, monkeypatch):
    """Resuming rewrote results.csv in place (truncate, header, kept rows): interrupted in between, the earlier
    results were lost. The header and kept rows are written atomically now, then rows are appended."""
    from hyperkit.evaluation import results_file

    row = {"task": "l/d/t@CT", "method": "hyper_unet", "draw": 0, "support": "a", "case": "b", "in_test_split": True,
           "dsc": 0.5, "nsd": 0.25, "nsd_voxel": 0.75, "fit_seconds": 1.0}
    path = tmp_path / "results.csv"
    results_file.ResultsWriter(path, [row, dict(row, case="c")]).close()
    before = path.read_bytes()
    assert before.startswith(b"task,method,draw,") and before.count(b"\r\n") == 3
    real, calls = results_file.csv_row, []

    def interrupted(r):
        calls.append(r)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(r)

    monkeypatch.setattr(results_file, "csv_row", interrupted)
    with pytest.raises(KeyboardInterrupt):
        results_file.ResultsWriter(path, [row, dict(row, case="c")])
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    monkeypatch.undo()
    w = results_file.ResultsWriter(path, [row])
    w.add([dict(row, case="d")])
    w.close()
    assert [r["case"] for r in results_file.read_results(path)] == ["b", "d"] and len(w.rows) == 2
