"""Which tasks train, validate, and stay held out (a YAML split file of glob patterns)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from hyperkit.errors import ConfigError

__all__ = ["ROLES", "load_split", "assign_roles"]

ROLES: tuple[str, ...] = ("heldout", "val", "train")  # precedence order


def load_split(path: str | Path | None = None) -> dict[str, list[str]]:
    """Read a split file; ``None`` gives the kit's default (the paper's split).

    Raises:
        ConfigError: unreadable file, unknown role, patterns that are not strings, or no
            pattern in any role (every task would be unused).
    """
    if path is None:
        text = resources.files("hyperkit").joinpath("splits", "paper.yaml").read_text()
        where = "default split"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"split file {p} not found")
        text, where = p.read_text(), str(p)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of role -> list of patterns")
    unknown = set(data) - set(ROLES)
    if unknown:
        raise ConfigError(f"{where}: unknown role(s) {sorted(unknown, key=str)}; roles are {list(ROLES)}")
    out: dict[str, list[str]] = {}
    for role in ROLES:
        patterns = data.get(role) or []
        if not isinstance(patterns, list) or not all(isinstance(x, str) for x in patterns):
            raise ConfigError(f"{where}: {role!r} must be a list of strings, got {patterns!r}")
        out[role] = patterns
    if not any(out.values()):
        raise ConfigError(f"{where}: no task pattern in any role ({', '.join(ROLES)}); every task would be unused")
    return out


def assign_roles(task_ids: Iterable[str], split: Mapping[str, list[str]] | None = None) -> dict[str, str]:
    """Map each task id to ``"heldout"``, ``"val"``, ``"train"`` or ``"unused"``.

    Args:
        task_ids: task ids (a list, not one id as a string).
        split: role -> glob patterns, every role of :data:`ROLES` (:func:`load_split`, which fills
            a role a file leaves out with ``[]``); the kit's default split when omitted.

    Raises:
        ValueError: ``task_ids`` is one string.
        ConfigError: ``split`` is not a mapping of every role of :data:`ROLES` (and no other) to a
            list of pattern strings (the missing or unknown roles named).
    """
    if isinstance(task_ids, str):
        raise ValueError(f"task_ids must be a list of task ids, got the string {task_ids!r} (pass [{task_ids!r}])")
    split = split if split is not None else load_split()
    _check_split(split)
    roles = {}
    for tid in task_ids:
        roles[tid] = next((r for r in ROLES if any(fnmatchcase(tid, p) for p in split[r])), "unused")
    return roles


def _check_split(split: object) -> None:
    """Refuse a split mapping :func:`assign_roles` cannot read (see its Raises)."""
    if not isinstance(split, Mapping):
        raise ConfigError(f"split must be a mapping of role -> list of patterns, got {type(split).__name__}")
    missing = [r for r in ROLES if r not in split]
    unknown = sorted((str(k) for k in split if k not in ROLES))
    if missing or unknown:
        raise ConfigError(f"split must have the roles {list(ROLES)} (an empty list for a role without tasks): "
                          + "; ".join(([f"missing {missing}"] if missing else [])
                                      + ([f"unknown {unknown}"] if unknown else [])))
    for role in ROLES:
        patterns = split[role]
        if not isinstance(patterns, (list, tuple)) or not all(isinstance(x, str) for x in patterns):
            raise ConfigError(f"split role {role!r} must be a list of pattern strings, got {patterns!r}")
