"""Profiles are data; unknown keys and profiles are refused."""

from __future__ import annotations

import pytest

from hyperkit.config import PROFILES, load_profile, merge_config, parse_override
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
    ("data:\n  spacingg: 2.0\n", "unknown config key 'data.spacingg'"),
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
    with pytest.raises(ConfigError, match="unknown config key"):
        merge_config({"a": {"b": 1}}, {"a": {"c": 2}})
