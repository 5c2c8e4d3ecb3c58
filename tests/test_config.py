"""Profiles are data; unknown keys and profiles are refused."""

from __future__ import annotations

import re

import pytest
import yaml

from hyperkit.config import (PROFILES, DataConfig, SupervisedConfig, differences, load_profile, merge_config,
                             parse_override, reread)
from hyperkit.errors import ConfigError


@pytest.mark.parametrize("name, spacing, patch", [("quick", 4.0, 48), ("paper", 1.5, 128)])
def test_builtin_profiles(name, spacing, patch):
    cfg = load_profile(name)
    assert cfg["name"] == name
    assert (cfg["data"]["spacing"], cfg["data"]["patch_size"]) == (spacing, patch)


def test_user_profile_with_base(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("base: paper\ndata:\n  spacing: 2.0\n")
    cfg = load_profile(p)
    assert cfg["name"] == "mine" and cfg["data"]["spacing"] == 2.0 and cfg["data"]["patch_size"] == 128


@pytest.mark.parametrize("text, match", [
    ("data:\n  spacingg: 2.0\n", r"unknown key\(s\) \[.spacingg.\] in data"),
    ("base: huge\n", "base 'huge'"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_user_profile_errors(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_profile(p)


def test_unknown_profile_name():
    with pytest.raises(ConfigError, match="profile 'huge' does not exist"):
        load_profile("huge")
    assert PROFILES == ("quick", "paper")


def test_overrides():
    assert parse_override("train.lr=0.001") == {"train": {"lr": 0.001}}
    cfg = load_profile("quick", overrides={"data": {"spacing": 3.0}})
    assert cfg["data"]["spacing"] == 3.0
    with pytest.raises(ConfigError):
        parse_override("nokey")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \[.c.\] in a"):
        merge_config({"a": {"b": 1}}, {"a": {"c": 2}})


def test_sections_are_typed_and_checked_by_one_validator():
    from hyperkit.config import DataConfig, ModelConfig, TrainConfig, check_config

    cfg = load_profile("quick")
    data, model, train = (DataConfig.from_config(cfg), ModelConfig.from_mapping(cfg["model"]),
                          TrainConfig.from_config(cfg))
    assert data.ct_clip == (-900.0, 900.0) and model.head_prior == 0.02 and train.train_splits == ("train",)
    # a section as a dataclass and back gives the profile's values
    assert data.as_dict() == cfg["data"] and model.as_dict() == cfg["model"] and train.as_dict() == cfg["train"]
    for section, bad, match in [("model", {"hidden": "wide"}, "model.hidden must be an integer"),
                                ("model", {"head_prior": "x"}, "model.head_prior must be a number"),
                                ("data", {"ct_clip": [1.0]}, "data.ct_clip must be a list of 2"),
                                ("train", {"train_splits": "train"}, "train.train_splits must be a list")]:
        with pytest.raises(ConfigError, match=match):
            check_config({**cfg, section: {**cfg[section], **bad}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['extra'\] in the profile"):
        check_config({**cfg, "extra": 1})
    with pytest.raises(ConfigError, match="model.hidden must be an integer"):
        load_profile("quick", {"model": {"hidden": "wide"}})  # the loader checks every section


def test_model_config_builds_the_hypernetwork():
    from hyperkit.config import ModelConfig
    from hyperkit.model.hypernet import HyperUNet

    small = {"base_width": 8, "hidden": 32, "n_patches": 4, "samplings": 1, "pos_dim": 8, "zstar_hidden": 16,
             "zstar_dim": 8, "head_hidden": 16}
    a, b = HyperUNet.from_config(ModelConfig(**small)), HyperUNet.from_config(small)
    assert a.state_dict().keys() == b.state_dict().keys()
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['widht'\] in model"):
        HyperUNet.from_config({"widht": 8})


def test_one_key_value_parser():
    from hyperkit.config import parse_assignment
    from hyperkit.reproduce import parse_parameter

    assert parse_assignment("a = [1, 2]", "override") == ("a", [1, 2])
    assert parse_assignment("a=", "parameter", empty="") == ("a", "")
    with pytest.raises(ConfigError, match="not a YAML literal"):
        parse_override("train.lr=[1,")
    with pytest.raises(ValueError, match="not of the form key=value"):
        parse_parameter("noequals")


def test_model_config_defaults_are_the_constructors():
    import dataclasses
    import inspect

    from hyperkit.config import ModelConfig
    from hyperkit.model.hypernet import HyperUNet

    params = {k: p.default for k, p in inspect.signature(HyperUNet.__init__).parameters.items() if k != "self"}
    assert params == {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def test_differences_name_the_dotted_keys_that_differ() -> None:
    a = {"seed": 0, "budget": {"steps": 100, "lr": 0.1}, "only_a": 1}
    b = {"seed": 0, "budget": {"steps": 50, "lr": 0.1}}
    assert differences(a, b) == ["budget.steps", "only_a"]
    assert differences(a, a) == [] and differences(1, 2) == ["."]


def test_reread_fills_settings_added_since_and_keeps_a_section_that_no_longer_reads() -> None:
    read = lambda s: SupervisedConfig.from_mapping(s, "budget")  # noqa: E731
    old = {"steps": 100, "batch": 2, "lr": 0.1, "val_every": 10, "patience": 4, "augment": True, "warmup": 0}
    assert reread(old, read) == {**old, "bce_weight": 1.0, "amp": False}
    gone = {**old, "retired_setting": 3}
    assert reread(gone, read) == gone and reread(gone, read) is not gone
    assert reread(None, read) is None


@pytest.mark.parametrize("file, text", [("quick.yaml", "base: quick\nevaluate:\n  draws: 2\n"),
                                        ("mine.yaml", "base: quick\nname: paper\n")])
def test_a_profile_file_named_like_a_built_in_is_refused(tmp_path, file, text):
    """A user file named quick.yaml (or with name: paper) trained with its own settings but was evaluated with the
    built-in's protocol (protocol_for prefers a built-in name): draws 2 trained, 5 evaluated, without a word."""
    (tmp_path / file).write_text(text)
    with pytest.raises(ConfigError, match=r"cannot be named '(quick|paper)', a built-in profile's name"):
        load_profile(tmp_path / file)
    (tmp_path / "my_quick.yaml").write_text(text.replace("name: paper\n", ""))
    assert load_profile(tmp_path / "my_quick.yaml")["name"] == "my_quick"


@pytest.mark.parametrize("name", [7, None, ["a"], "  "])
def test_a_profile_name_must_be_a_non_empty_string(tmp_path, name):
    """Runs record the name and protocol_for looks it up as a built-in's or a file's: ``name: 7`` was kept as the
    integer 7, ``name:`` (nothing) as None, and both reached the records."""
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"base": "quick", "name": name}))
    with pytest.raises(ConfigError, match=r"name must be a non-empty string, got " + re.escape(repr(name))):
        load_profile(tmp_path / "mine.yaml")


@pytest.mark.parametrize("override, shown", [("data.spacing=.nan", "nan"), ("data.spacing=.inf", "inf"),
                                             ("train.weight_decay=.nan", "nan"), ("evaluate.adapt_lr=.inf", "inf"),
                                             ("model.boundary_share=nan", "'nan'"),
                                             ("data.ct_clip=[-.inf, 100]", "-inf")])
def test_a_float_setting_must_be_finite(override, shown):
    """``spacing: .nan`` passed every range check (``nan <= 0`` is false), as did a NaN weight decay, an infinite
    gradient-step lr, a NaN boundary share (as the string "nan") and an infinite CT window."""
    key = override.split("=")[0] + ("[0]" if "ct_clip" in override else "")
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} must be a finite number, got {re.escape(shown)}$"):
        load_profile("quick", parse_override(override))
    assert DataConfig.from_mapping({"spacing": "1e1"}).spacing == 10.0  # a YAML string still parses
