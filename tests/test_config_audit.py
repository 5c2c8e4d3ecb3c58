"""Audit of hyperkit.config: the range checks at their boundaries, the defaults a section takes, the
learning-rate schedule computed by hand, the order of protocol_for's sources, merge_config's key refusal
and copies, and the settings that load but broke a run later (a negative placement seed, a head prior or
boundary share outside its range)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from hyperkit.config import (DataConfig, EvalConfig, ModelConfig, SupervisedConfig, TrainConfig, check_config,
                             combine_overrides, differences, load_profile, merge_config, parse_assignment,
                             parse_override, protocol_for, reread, reread_config)
from hyperkit.config.sections import MamlConfig
from hyperkit.errors import ConfigError

BUDGET = {"steps": 10, "batch": 2, "lr": 0.01, "val_every": 5, "patience": 2, "augment": False, "warmup": 0}
MAML = {"shots": 2, "queries": 1, "inner_steps": 1, "inner_lr": 0.1, "meta_iterations": 0, "meta_batch": 1,
        "meta_lr": 0.001, "first_order": True, "augment": False, "bce_weight": 0.0}
EVAL = {"draws": 2, "shots": 1, "tau": 2.0, "adapt": True, "adapt_lr": 0.05, "test_fraction": 0.3,
        "val_fraction": 0.2, "conv": BUDGET, "all": BUDGET}


def _eval(**kw) -> EvalConfig:
    return EvalConfig.from_mapping({**EVAL, **kw})


# ------------------------------------------------------------------------------------------ data
@pytest.mark.parametrize("changes", [{"max_offset": 0.0}, {"max_offset": 0.5}, {"patch_size": 16},
                                     {"mri_percentiles": [0, 100]}, {"ct_clip": [-1, 0]}, {"placement_seed": 0}])
def test_data_accepts_the_boundaries(changes):
    DataConfig.from_mapping(changes)


@pytest.mark.parametrize("changes, key", [({"max_offset": 0.51}, "max_offset"), ({"max_offset": -0.01}, "max_offset"),
                                          ({"spacing": 0}, "spacing"), ({"patch_size": 0}, "patch_size"),
                                          ({"patch_size": 24}, "patch_size"), ({"ct_clip": [5, 5]}, "ct_clip"),
                                          ({"mri_percentiles": [50, 50]}, "mri_percentiles"),
                                          ({"mri_percentiles": [-1, 99]}, "mri_percentiles"),
                                          ({"mri_percentiles": [1, 101]}, "mri_percentiles"),
                                          ({"placement": "corner"}, "placement")])
def test_data_refuses_out_of_range(changes, key):
    with pytest.raises(ConfigError, match=rf"data\.{key}"):
        DataConfig.from_mapping(changes)


def test_a_negative_placement_seed_is_refused_when_loaded():
    """``data.placement_seed: -1`` loaded, then preprocessing failed in the seed stream (ValueError) after the
    profile had been accepted; a seed is a non-negative integer (check_seed), as the top-level seed."""
    with pytest.raises(ConfigError, match=r"data\.placement_seed must be >= 0, got -1"):
        load_profile("quick", {"data": {"placement_seed": -1}})


def test_data_bare_section_max_shift_and_key():
    assert DataConfig.from_config({"spacing": 2.0}).spacing == 2.0  # a bare section (no data key)
    assert DataConfig.from_config({"data": {"spacing": 3.0}}).spacing == 3.0
    off = DataConfig.from_mapping({"placement": "offset", "max_offset": 0.49, "patch_size": 48})
    assert off.max_shift == 24  # round(23.52), not int()
    assert dataclasses.replace(off, placement="centred").max_shift == 0
    assert off.key() == {"spacing": 1.5, "ct_clip": [-900.0, 900.0], "mri_percentiles": [1.0, 99.0]}


# ----------------------------------------------------------------------------------------- model
@pytest.mark.parametrize("name", ["base_width", "c_base", "n_patches", "samplings", "hidden", "pos_dim",
                                  "zstar_hidden", "zstar_dim", "head_hidden"])
def test_every_model_size_must_be_at_least_one(name):
    with pytest.raises(ConfigError, match=rf"model\.{name} must be >= 1, got 0"):
        ModelConfig.from_mapping({name: 0})
    # the smallest value the model accepts (the width a multiple of c_base, the patches half fg, half bg)
    smallest = {"base_width": {"base_width": 1, "c_base": 1}, "n_patches": {"n_patches": 2}}.get(name, {name: 1})
    assert getattr(ModelConfig.from_mapping(smallest), name) == smallest[name]


@pytest.mark.parametrize("changes, message", [
    ({"base_width": 12}, r"base_width=12 must be a multiple of model\.c_base=8"),
    ({"base_width": 16, "c_base": 3}, "base_width=16 must be a multiple"),
    ({"n_patches": 3}, "n_patches=3 must be even")])
def test_sizes_the_hypernetwork_refuses_are_refused_when_loaded(changes, message):
    """The hypernetwork refused these only when it was built, after the training banks had been made."""
    with pytest.raises(ConfigError, match=rf"model\.{message}"):
        load_profile("quick", {"model": changes})
    assert ModelConfig.from_mapping({"base_width": 16, "c_base": 4, "n_patches": 6}).c_base == 4


@pytest.mark.parametrize("changes, key", [({"head_prior": 0.0}, "head_prior"), ({"head_prior": 1.0}, "head_prior"),
                                          ({"head_prior": 1.5}, "head_prior"),
                                          ({"boundary_share": 1.2}, "boundary_share"),
                                          ({"boundary_share": -0.1}, "boundary_share")])
def test_a_head_prior_or_boundary_share_out_of_range_is_refused_when_loaded(changes, key):
    """Both loaded and the hypernetwork refused them with a ValueError when it was built, after the training
    banks had been made; the section's one validator refuses them now."""
    with pytest.raises(ConfigError, match=rf"model\.{key}"):
        load_profile("quick", {"model": changes})
    for ok in ({"head_prior": None}, {"head_prior": 0.5}, {"boundary_share": 0.0}, {"boundary_share": 1.0}):
        ModelConfig.from_mapping(ok)


def test_model_from_profile_applies_the_overrides():
    m = ModelConfig.from_profile("quick", {"hidden": 64})
    assert m.hidden == 64 and m.base_width == 8
    assert ModelConfig.from_mapping(m) is m


# ----------------------------------------------------------------------------------------- train
@pytest.mark.parametrize("name", ["episodes", "tasks_per_episode", "val_every", "val_queries", "patience",
                                  "checkpoint_every", "val_supports"])
def test_train_counts_must_be_positive(name):
    with pytest.raises(ConfigError, match=rf"train\.{name} must be a positive integer"):
        TrainConfig.from_mapping({name: 0})
    assert getattr(TrainConfig.from_mapping({name: 1}), name) == 1


@pytest.mark.parametrize("changes", [{"beta": 0.0}, {"beta": 1.0}, {"lr_final_fraction": 1.0}, {"warmup_episodes": 0},
                                     {"bce_weight": 0.0}, {"ema": 0.0}, {"weight_decay": 0.0}, {"crop_size": 16},
                                     {"crop_size": None}])
def test_train_accepts_the_boundaries(changes):
    TrainConfig.from_mapping(changes)


@pytest.mark.parametrize("changes, key", [({"beta": 1.01}, "beta"), ({"beta": -0.01}, "beta"), ({"lr": 0.0}, "lr"),
                                          ({"lr_final_fraction": 0.0}, "lr_final_fraction"),
                                          ({"lr_final_fraction": 1.01}, "lr_final_fraction"),
                                          ({"warmup_episodes": -1}, "warmup_episodes"),
                                          ({"bce_weight": -0.1}, "bce_weight"), ({"ema": 1.0}, "ema"),
                                          ({"ema": -0.1}, "ema"), ({"weight_decay": -0.01}, "weight_decay"),
                                          ({"crop_size": 0}, "crop_size"), ({"crop_size": 24}, "crop_size"),
                                          ({"task_sampling": "x"}, "task_sampling"), ({"intensity": "x"}, "intensity")])
def test_train_refuses_out_of_range(changes, key):
    with pytest.raises(ConfigError, match=rf"train\.{key}"):
        TrainConfig.from_mapping(changes)


def test_train_from_config_ignores_none_overrides():
    t = TrainConfig.from_config({"train": {"episodes": 7}}, episodes=None, lr=0.5)
    assert (t.episodes, t.lr) == (7, 0.5)
    assert TrainConfig.from_config({"train": None}).episodes == 20000


def test_learning_rate_schedule_by_hand():
    # fraction 1/16 over 4 episodes: gamma = 0.5; warm-up 4: 1/4, 2/4, 3/4, 1
    t = TrainConfig(episodes=4, lr_final_fraction=0.0625, warmup_episodes=4)
    assert t.gamma == pytest.approx(0.5)
    expected = [0.25 * 1.0, 0.5 * 0.5, 0.75 * 0.25, 1.0 * 0.125, 1.0 * 0.0625, 1.0 * 0.03125]
    assert [t.lr_factor(s) for s in range(6)] == pytest.approx(expected)
    plain = TrainConfig(episodes=4, lr_final_fraction=0.0625)
    assert [plain.lr_factor(s) for s in range(3)] == pytest.approx([1.0, 0.5, 0.25])


# ------------------------------------------------------------------------------ supervised, maml
def test_supervised_budget_defaults_and_ranges():
    b = SupervisedConfig.from_mapping(BUDGET, "b")
    assert (b.bce_weight, b.amp) == (1.0, False)
    assert SupervisedConfig.from_mapping({**BUDGET, "warmup": 0, "bce_weight": 0}, "b").warmup == 0
    for bad, key in [({"patience": 0}, "patience"), ({"batch": 0}, "batch"), ({"steps": 0}, "steps"),
                     ({"val_every": 0}, "val_every"), ({"warmup": -1}, "warmup"), ({"bce_weight": -0.5}, "bce_weight"),
                     ({"lr": 0.0}, "lr")]:
        with pytest.raises(ConfigError, match=rf"^b\.{key} must be"):
            SupervisedConfig.from_mapping({**BUDGET, **bad}, "b")


def test_maml_ranges():
    assert MamlConfig.from_mapping(MAML).meta_iterations == 0  # zero outer steps: the random start, allowed
    for bad, key in [({"queries": 0}, "queries"), ({"shots": 0}, "shots"), ({"inner_steps": 0}, "inner_steps"),
                     ({"meta_batch": 0}, "meta_batch"), ({"meta_iterations": -1}, "meta_iterations"),
                     ({"meta_lr": 0.0}, "meta_lr"), ({"inner_lr": 0.0}, "inner_lr"),
                     ({"bce_weight": -1}, "bce_weight")]:
        with pytest.raises(ConfigError, match=rf"evaluate\.maml\.{key} must be"):
            MamlConfig.from_mapping({**MAML, **bad})


# -------------------------------------------------------------------------------------- evaluate
def test_eval_defaults_overrides_and_ranges():
    e = _eval()
    assert (e.rand_adapt, e.adapt_bce_weight, e.finetune, e.maml) == (False, 1.0, None, None)
    assert EvalConfig.from_config({"evaluate": EVAL}, draws=None, shots=3).draws == 2
    assert _eval(adapt_bce_weight=0.0).step_bce_weight == 0.0  # 0 is a weight, not "unset"
    assert _eval(adapt_bce_weight=None).step_bce_weight == 1.0
    for bad in ({"draws": 0}, {"shots": 0}, {"adapt_lr": 0.0}, {"tau": 0.0}, {"adapt_bce_weight": -0.1},
                {"test_fraction": 0.0}, {"val_fraction": 0.0}, {"test_fraction": 1.0},
                {"test_fraction": 0.5, "val_fraction": 0.5}):
        with pytest.raises(ConfigError, match="evaluate"):
            _eval(**bad)
    assert _eval(test_fraction=0.5, val_fraction=0.49).test_fraction == 0.5
    with pytest.raises(ConfigError, match="no evaluate section"):
        EvalConfig.from_config({"train": {}})


def test_eval_as_dict_leaves_out_finetune_and_maml():
    e = _eval(finetune=BUDGET, maml=MAML)
    assert e.maml.shots == 2 and e.finetune.steps == 10
    d = e.as_dict()
    assert "finetune" not in d and "maml" not in d and d["conv"] == {**BUDGET, "bce_weight": 1.0, "amp": False}


@pytest.mark.parametrize("adapt, rand_adapt, hyper, rand", [(True, False, 0.05, None), (True, True, 0.05, 0.05),
                                                            (False, True, None, None), (False, False, None, None)])
def test_step_lr_table(adapt, rand_adapt, hyper, rand):
    e = _eval(adapt=adapt, rand_adapt=rand_adapt)
    assert (e.step_lr("hyper_unet"), e.step_lr("rand_unet")) == (hyper, rand)
    for other in ("copy_support", "conv_unet", "all_unet"):
        with pytest.raises(ValueError, match="step_lr"):
            e.step_lr(other)


# -------------------------------------------------------------------------------- reread, check
def test_reread_and_reread_config():
    read = TrainConfig.from_mapping
    assert reread("a string", read) == "a string" and reread([1], read) == [1]
    rec = {"episodes": 5, "retired": 1}
    back = reread(rec, read)
    assert back == rec and back is not rec
    cfg = {"name": "x", "data": {"spacing": 2.0}, "train": {"episodes": 5}, "other": {"k": 1}}
    out = reread_config(cfg)
    assert out["data"] == DataConfig(spacing=2.0).as_dict() and out["train"]["lr"] == 1e-4
    assert out["other"] == {"k": 1} and out["name"] == "x"
    only = reread_config(cfg, {"other": lambda s: DataConfig()})
    assert only["data"] == {"spacing": 2.0} and only["other"] == DataConfig().as_dict()


def test_check_config_checks_each_section_and_the_crop():
    cfg = load_profile("quick")
    assert check_config(cfg) == cfg and type(check_config(cfg)) is dict
    for bad, match in [({"seed": -1}, "seed must be >= 0"), ({"name": " "}, "name must be"),
                       ({"model": {**cfg["model"], "c_base": 0}}, "model.c_base"),
                       ({"evaluate": {**cfg["evaluate"], "draws": 0}}, "evaluate.draws"),
                       ({"train": {**cfg["train"], "crop_size": 64}}, r"crop_size must be <= data.patch_size \(48\)"),
                       ({"train": {**cfg["train"], "intensity_remap": 1.5}},
                        r"train.intensity_remap must be a probability in \[0, 1\], got 1.5")]:
        with pytest.raises(ConfigError, match=match):
            check_config({**cfg, **bad})
    assert check_config({**cfg, "train": {**cfg["train"], "crop_size": 48}})["train"]["crop_size"] == 48
    assert check_config({"train": {"crop_size": 256}})["train"]["crop_size"] == 256  # no data: no bound


# ----------------------------------------------------------------------------------- merge, parse
def test_merge_config_copies_and_refuses_unknown_keys():
    base = {"a": {"b": 1, "c": [1]}, "d": None, "e": {}}
    over = {"a": {"c": [2]}, "d": {"x": [3]}, "e": {"anything": [4]}}
    out = merge_config(base, over)
    assert out == {"a": {"b": 1, "c": [2]}, "d": {"x": [3]}, "e": {"anything": [4]}}
    out["a"]["c"].append(9)
    out["d"]["x"].append(9)
    out["e"]["anything"].append(9)
    assert base == {"a": {"b": 1, "c": [1]}, "d": None, "e": {}}
    assert over == {"a": {"c": [2]}, "d": {"x": [3]}, "e": {"anything": [4]}}
    kept = merge_config(base, {})
    kept["a"]["c"].append(9)
    assert base["a"]["c"] == [1]
    assert merge_config({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert merge_config({}, {"z": 1}) == {"z": 1}  # an empty base is open
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['z'\] in the profile"):
        merge_config({"a": 1}, {"z": 1})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['q'\] in a.b"):
        merge_config({"a": {"b": {"c": 1}}}, {"a": {"b": {"q": 1}}})


def test_differences_parse_and_combine():
    assert differences([1], [1]) == [] and differences({}, {"x": 1}) == ["x"]
    assert parse_assignment("a=b=c", "override") == ("a", "b=c")
    assert parse_assignment("a=", "override") == ("a", None)
    with pytest.raises(ConfigError, match="empty key"):
        parse_assignment("=1", "override")
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}
    for bad in ("a..b=1", "a.=1", ".a=1"):
        with pytest.raises(ConfigError, match="empty key"):
            parse_override(bad)
    assert combine_overrides(["train.lr=1", "train.beta=0.5", "train.lr=2", "seed=3"]) == {
        "train": {"lr": 2, "beta": 0.5}, "seed": 3}
    assert combine_overrides(None) == {}


# ------------------------------------------------------------------------------------ load_profile
def test_load_profile_user_files(tmp_path):
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    cfg = load_profile(empty)
    quick = load_profile("quick")
    assert cfg == {**quick, "name": "empty"}  # no base: quick; the name is the file's stem
    named = tmp_path / "f.yaml"
    named.write_text("base: paper\nname: other\n")
    assert load_profile(named)["name"] == "other" and load_profile(named)["data"]["patch_size"] == 128
    over = load_profile("paper", {"data": {"spacing": 2.0}})
    assert over["data"]["patch_size"] == 128 and over["data"]["spacing"] == 2.0
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['spacingg'\] in data"):
        load_profile("paper", {"data": {"spacingg": 2.0}})
    with pytest.raises(ConfigError, match="data.spacing must be > 0"):
        load_profile("paper", {"data": {"spacing": 0}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: ''\n")
    with pytest.raises(ConfigError, match="base '' is not one of"):
        load_profile(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile("")


# ------------------------------------------------------------------------------------ protocol_for
def test_protocol_for_takes_its_sources_in_order(tmp_path):
    quick_lr = load_profile("quick")["evaluate"]["adapt_lr"]
    paper_lr = load_profile("paper")["evaluate"]["adapt_lr"]
    assert quick_lr != paper_lr
    recorded = {**load_profile("quick")["evaluate"], "adapt_lr": 0.123}
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"base": "quick", "evaluate": {"adapt_lr": 0.456}}))
    # 1. profile beats the built-in name and the recorded section
    assert protocol_for({"name": "quick", "evaluate": recorded}, "paper").adapt_lr == paper_lr
    # 2. a built-in name beats the recorded section
    assert protocol_for({"name": "paper", "evaluate": recorded}).adapt_lr == paper_lr
    # 3. the recorded section beats the named YAML file
    assert protocol_for({"name": str(mine), "evaluate": recorded}).adapt_lr == 0.123
    # 4. the named YAML file when nothing is recorded
    assert protocol_for({"name": str(mine)}).adapt_lr == 0.456
    with pytest.raises(ConfigError, match="neither an evaluate section nor a profile name"):
        protocol_for({})
    with pytest.raises(ConfigError, match="cannot be loaded"):
        protocol_for({"name": str(tmp_path / "gone.yaml")})


def test_protocol_for_keeps_recorded_optional_keys_and_applies_overrides():
    section = {**EVAL, "rand_adapt": True, "adapt_bce_weight": 0.5}
    p = protocol_for({"name": "mine", "evaluate": section})
    assert (p.rand_adapt, p.adapt_bce_weight) == (True, 0.5)
    p = protocol_for({"name": "mine", "evaluate": EVAL}, overrides={"conv": {"steps": 3}, "rand_adapt": True},
                     draws=4, shots=None)
    assert (p.conv.steps, p.conv.batch, p.rand_adapt, p.draws, p.shots) == (3, 2, True, 4, 1)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['stepz'\] in evaluate.conv"):
        protocol_for({"name": "mine", "evaluate": EVAL}, overrides={"conv": {"stepz": 3}})
    p = protocol_for({"name": "mine", "evaluate": {**EVAL, "adapt_bce_weight": None}, "train": {"bce_weight": 0.3}})
    assert p.adapt_bce_weight == 0.3


def test_train_check_refuses_non_integers_built_directly():
    """``check`` is public and runs on a config built without the loader (which converts first)."""
    for bad in ({"warmup_episodes": 2.5}, {"val_supports": 1.5}, {"episodes": 10.5}):
        with pytest.raises(ConfigError, match="integer"):
            TrainConfig(**bad).check()
    TrainConfig(warmup_episodes=0).check()
