"""Profiles: the run configuration as data (YAML), never as code.

A profile is a nested mapping with ``name``, ``seed`` and the sections ``data``, ``model``,
``train`` and ``evaluate``. The built-in profiles live in ``hyperkit/profiles/*.yaml``.
A user profile is a YAML file with ``base: quick`` (or ``paper``) and only the
keys it changes; a key the base does not have is an error, so a typo never
passes silently. :func:`load_profile` is the one loader: what it returns has been checked
section by section (:func:`~hyperkit.config.sections.check_config`), and runs and checkpoints
record it as it is and are read back through the same check.
"""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from hyperkit.config.schema import check_unknown, optional_fields
from hyperkit.config.sections import EvalConfig, TrainConfig, check_config
from hyperkit.errors import ConfigError
from hyperkit.files import write_text_atomic

__all__ = ["PROFILES", "load_profile", "merge_config", "parse_override", "combine_overrides", "dump_config",
           "protocol_for", "parse_assignment", "differences"]

PROFILES: tuple[str, ...] = ("quick", "paper")


def _builtin(name: str) -> dict[str, Any]:
    text = resources.files("hyperkit").joinpath("profiles", f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Return ``base`` updated by ``override``; keys unknown to ``base`` are refused.

    A section that is empty in the base (``model: {}``) accepts any keys.
    """
    out = copy.deepcopy(dict(base))
    if base:  # an empty base section is open
        check_unknown(override, out, where or "the profile")
    for key, value in override.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = merge_config(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Dotted keys at which two nested mappings differ (``evaluate.all.steps``; ``.`` for two
    plain values that differ), for saying why a stored run cannot be resumed or reused."""
    if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return [] if a == b else [where or "."]
    return [d for k in sorted(set(a) | set(b), key=str)
            for d in differences(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML parse error on one line, with its place: ``line 3, column 1: expected ...``."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark and problem else str(exc)
    return " ".join(text.split())


def parse_assignment(text: str, what: str, form: str = "key=value", empty: Any = None) -> tuple[str, Any]:
    """Split ``key=value`` and read the value as a YAML literal (``3``, ``0.5``, ``true``, ``[1, 2]``).

    The one ``key=value`` parser: ``--set`` overrides (:func:`parse_override`) and notebook
    parameters (``hyperkit reproduce -p``) use it.

    Args:
        text: the assignment.
        what: its name in errors (``"override"``, ``"parameter"``).
        form: its form in errors.
        empty: the value of ``key=`` (nothing after ``=``).

    Raises:
        ConfigError: no ``=``, an empty key, or a value that is not YAML.
    """
    if "=" not in text:
        raise ConfigError(f"{what} {text!r} is not of the form {form}")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key:
        raise ConfigError(f"{what} {text!r} has an empty key")
    try:
        return key, (yaml.safe_load(raw) if raw else empty)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {key!r}: value {raw!r} is not a YAML literal ({_yaml_problem(exc)})") from exc


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"train.episodes=200"`` into ``{"train": {"episodes": 200}}`` (value parsed as YAML)."""
    key, value = parse_assignment(text, "override", "section.key=value")
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
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
        ConfigError: unknown profile name, unreadable file, unknown key, or a file whose name (its
            stem, or its ``name:``) is a built-in profile's.
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
            raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from exc
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: a profile must be a mapping, got {type(user).__name__}")
        base = user.pop("base", "quick")
        if base not in PROFILES:
            raise ConfigError(f"{path}: base {base!r} is not one of {list(PROFILES)}")
        cfg = merge_config(_builtin(base), {"name": path.stem, **user})
        if cfg["name"] in PROFILES:  # its runs would be read as the built-in's: protocol_for takes that one's evaluate
            raise ConfigError(f"{path}: a profile file cannot be named {cfg['name']!r}, a built-in profile's name "
                              "(its runs would be evaluated with the built-in's protocol, not this file's); rename "
                              "the file or set name: to another value")
    if overrides:
        cfg = merge_config(cfg, overrides)
    return check_config(cfg)


def dump_config(cfg: Mapping[str, Any], path: str | Path) -> None:
    """Write a resolved configuration as YAML."""
    write_text_atomic(path, yaml.safe_dump(dict(cfg), sort_keys=False))


def protocol_for(cfg: Mapping[str, Any], profile: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None, **kw: Any) -> EvalConfig:
    """The protocol for a checkpoint trained with ``cfg``: the one way to get an :class:`EvalConfig`.

    The ``evaluate`` section is taken, in this order, from:

    1. ``profile``, when given (``--profile``);
    2. the built-in profile the checkpoint names (``quick``, ``paper``): the kit's protocol for
       that profile, which may change without retraining (e.g. a gradient-step learning rate
       chosen on the validation tasks after training);
    3. the checkpoint's own config (``cfg["evaluate"]``), which training records: what a run
       trained from a user YAML (``base: quick``) is evaluated with, even once the file has moved;
    4. the profile the checkpoint names, loaded as a YAML path, for checkpoints that record none.

    There is no fallback to built-in values: when 4 is needed and that profile cannot be
    loaded (a user YAML file that has moved), a :class:`ConfigError` says so.

    Args:
        cfg: the checkpoint's resolved config (from :func:`~hyperkit.training.checkpoint.load_hypernet`).
        profile: take the section from this profile (a built-in name or a YAML file) instead.
        overrides: nested ``evaluate`` keys (e.g. ``{"conv": {"steps": 20}}``); unknown keys are refused.
        kw: top-level keys (``draws=2``, ``adapt_lr=0.01``); ``None`` values are ignored.

    Raises:
        ConfigError: the section cannot be found, or has unknown, missing or invalid values.
    """
    if profile is not None:
        section = load_profile(profile).get("evaluate", {})
    elif cfg.get("name") in PROFILES:
        section = load_profile(cfg["name"]).get("evaluate", {})
    elif "evaluate" in cfg:
        section = cfg["evaluate"]
    else:
        name = cfg.get("name")
        try:
            section = load_profile(name).get("evaluate", {}) if name is not None else None
        except ConfigError as exc:
            raise ConfigError(f"the checkpoint records no evaluate section, and its profile {name!r} cannot be "
                              f"loaded ({exc}); pass --profile naming that profile (a built-in name or its "
                              "YAML file)") from exc
        if section is None:
            raise ConfigError("the checkpoint records neither an evaluate section nor a profile name; "
                              "name the profile with --profile")
    # keys with a default (added after a section was recorded) can be overridden too
    section = {**optional_fields(EvalConfig), **section}
    if overrides:
        section = merge_config(section, overrides, "evaluate")
    out = EvalConfig.from_config({"evaluate": section}, **kw)
    if out.adapt_bce_weight is None:  # the step minimises the loss the checkpoint was trained with
        out = dataclasses.replace(out, adapt_bce_weight=TrainConfig.from_config(cfg).bce_weight)
    return out
