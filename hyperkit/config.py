"""Profiles: the run configuration as data (YAML), never as code.

A profile is a nested mapping with the sections ``data``, ``model`` (and later
``train``/``eval``). The built-in profiles live in ``hyperkit/profiles/*.yaml``.
A user profile is a YAML file with ``base: quick`` (or ``paper``) and only the
keys it changes; a key the base does not have is an error, so a typo never
passes silently.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from hyperkit.errors import ConfigError

__all__ = ["PROFILES", "load_profile", "merge_config", "parse_override", "combine_overrides", "dump_config"]

PROFILES: tuple[str, ...] = ("quick", "paper")


def _builtin(name: str) -> dict[str, Any]:
    text = resources.files("hyperkit").joinpath("profiles", f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Return ``base`` updated by ``override``; keys unknown to ``base`` are refused.

    A section that is empty in the base (``model: {}``) accepts any keys.
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in out:
            if base:  # an empty base section is open
                raise ConfigError(f"unknown config key {path!r}; known keys here: {sorted(out)}")
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = merge_config(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"train.episodes=200"`` into ``{"train": {"episodes": 200}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r} has an empty key")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def combine_overrides(texts: list[str] | None) -> dict[str, Any]:
    """Several ``a.b=v`` overrides (``--set``) as one nested mapping (later ones win)."""
    def union(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        for k, v in b.items():
            a[k] = union(dict(a.get(k, {})), v) if isinstance(v, Mapping) and isinstance(a.get(k), dict) else v
        return a

    out: dict[str, Any] = {}
    for text in texts or []:
        out = union(out, parse_override(text))
    return out


def load_profile(profile: str | Path = "quick", overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load a built-in profile by name, or a YAML file that names its ``base``.

    Args:
        profile: ``"quick"``, ``"paper"`` or a path to a YAML file.
        overrides: nested mapping applied last (same key checks).

    Returns:
        The resolved configuration (a plain dict, safe to dump to YAML).

    Raises:
        ConfigError: unknown profile name, unreadable file, or unknown key.
    """
    name = str(profile)
    if name in PROFILES:
        cfg = _builtin(name)
    else:
        path = Path(name)
        if not path.suffix in (".yaml", ".yml") or not path.is_file():
            raise ConfigError(f"profile {name!r} does not exist; use one of {list(PROFILES)} or a YAML file")
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: a profile must be a mapping, got {type(user).__name__}")
        base = user.pop("base", "quick")
        if base not in PROFILES:
            raise ConfigError(f"{path}: base {base!r} is not one of {list(PROFILES)}")
        cfg = merge_config(_builtin(base), {"name": path.stem, **user})
    if overrides:
        cfg = merge_config(cfg, overrides)
    return cfg


def dump_config(cfg: Mapping[str, Any], path: str | Path) -> None:
    """Write a resolved configuration as YAML."""
    Path(path).write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
