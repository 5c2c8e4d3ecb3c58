"""The ``evaluate`` section of a profile, checked, and :func:`protocol_for`, the one way to get it."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hyperkit.config import PROFILES, load_profile, merge_config
from hyperkit.errors import ConfigError

__all__ = ["METHODS", "ONE_SHOT_METHODS", "SupervisedConfig", "EvalConfig", "protocol_for"]

#: every method the protocol knows, in table order (keys of ``paper_results/tables.yaml``)
METHODS: tuple[str, ...] = ("rand_unet", "all_unet", "hyper_unet", "conv_unet", "copy_support")
#: methods that work from the support draws (the rest train on a split of the target's cases)
ONE_SHOT_METHODS: tuple[str, ...] = ("hyper_unet", "rand_unet", "copy_support")


def _field_types(cls: type) -> dict[str, Any]:
    """Field name -> its type (``int``, ``float``, ``bool`` or a nested config class)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _optional(cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that have a default, with it (the rest are required)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _convert(value: Any, typ: type, path: str) -> Any:
    """``value`` as ``typ`` (``bool``, ``int`` or ``float``); YAML strings such as ``1e-3`` are parsed.

    Raises:
        ConfigError: naming ``path`` and the value, when it is not of that type.
    """
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif not isinstance(value, bool):
        if typ is int:
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
        elif typ is float and isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return typ(value)
            except ValueError:
                pass
    names = {bool: "true or false", int: "an integer", float: "a number"}
    raise ConfigError(f"{path} must be {names.get(typ, typ.__name__)}, got {value!r}")


def _fields_from(cls: type, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Constructor arguments of the config dataclass ``cls`` from a mapping, checked.

    Unknown keys and missing required keys are refused; values are converted to the field
    types; a nested config dataclass is built from its own mapping.

    Raises:
        ConfigError: an unknown or missing key, or a value of the wrong type, named with ``where``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys, got {data!r}")
    types = _field_types(cls)
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known: {sorted(types)}")
    missing = sorted(set(types) - set(data) - set(_optional(cls)))
    if missing:
        raise ConfigError(f"{where} lacks key(s) {missing} (a profile's {where} section has them all)")
    out: dict[str, Any] = {}
    for k, v in data.items():
        typ = types[k]
        out[k] = (typ.from_mapping(v, f"{where}.{k}") if dataclasses.is_dataclass(typ)
                  else _convert(v, typ, f"{where}.{k}"))
    return out


@dataclass(frozen=True)
class SupervisedConfig:
    """Budget of a supervised baseline (Conv U-Net, All U-Net): ``evaluate.conv`` / ``evaluate.all``.

    Every field is required: the profile (``hyperkit/profiles/*.yaml``) is the one source of
    these values.

    Attributes:
        steps: maximum optimiser steps (AdamW).
        batch: patches per step.
        lr: learning rate.
        val_every: steps between validations (mean Dice on the validation cases).
        patience: validations without improvement before stopping early.
        augment: the training augmentation of :func:`hyperkit.training.augment.build_augment`.
        warmup: steps before early stopping may act (from scratch, Dice + BCE first predicts
            all background for a while; validations in that phase do not use up patience).
    """

    steps: int
    batch: int
    lr: float
    val_every: int
    patience: int
    augment: bool
    warmup: int

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> "SupervisedConfig":
        """From a profile's ``evaluate.conv`` / ``evaluate.all`` mapping; ``where`` names it in errors.

        Raises:
            ConfigError: unknown, missing or mistyped keys; values out of range.
        """
        out = cls(**_fields_from(cls, data, where))
        for name in ("steps", "batch", "val_every", "patience"):
            if getattr(out, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(out, name)}")
        if out.warmup < 0:
            raise ConfigError(f"{where}.warmup must be >= 0, got {out.warmup}")
        if not out.lr > 0:
            raise ConfigError(f"{where}.lr must be > 0, got {out.lr}")
        return out


@dataclass(frozen=True)
class EvalConfig:
    """The one-shot protocol (paper §4): a profile's ``evaluate`` section, checked.

    One source per setting: every field but ``rand_adapt`` is required, because every
    profile's ``evaluate`` section has them all (the dataclass holds no competing default
    values). Build it with :func:`protocol_for` (from a checkpoint) or :meth:`from_config`
    (from a whole profile). ``rand_adapt`` has a default, ``False`` (the paper's Rand U-Net),
    so that sections recorded before the key existed still load. In a profile::

        evaluate:
          rand_adapt: false   # Rand U-Net takes the support gradient step too (paper: no; its
                              # "randomised decoder weights" are not adapted)

    Attributes:
        draws: support draws per held-out task; each draw generates one U-Net.
        shots: labelled support cases per draw (K).
        tau: NSD tolerance in mm (the paper's 2 mm); the protocol also scores NSD at one voxel.
        adapt: apply the gradient step on the support after generation (A.1).
        adapt_lr: its learning rate η (chosen on the validation tasks, never on held-out ones);
            the one source of this value (``hyperkit evaluate``, ``hyperkit generate``, notebooks).
        test_fraction: share of a target's cases in its test split: every method is scored on
            these cases; the supervised baselines train on the rest and one-shot supports are
            drawn from the rest.
        val_fraction: share used for the supervised baselines' early stopping (at least one case).
        conv: Conv U-Net budget.
        all: All U-Net budget.
        rand_adapt: the Rand U-Net takes the same gradient step as the Hyper U-Net (only when
            ``adapt``); default ``False``: random decoder weights, not adapted, as in the paper.
    """

    draws: int
    shots: int
    tau: float
    adapt: bool
    adapt_lr: float
    test_fraction: float
    val_fraction: float
    conv: SupervisedConfig
    all: SupervisedConfig
    rand_adapt: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], **overrides: Any) -> "EvalConfig":
        """From a mapping with an ``evaluate`` section (a profile, a checkpoint's config, a run record).

        Args:
            cfg: the mapping; only its ``evaluate`` section is read.
            overrides: top-level keys (``draws=2``); ``None`` values are ignored.

        Raises:
            ConfigError: no ``evaluate`` section; unknown, missing or mistyped keys; values out of range.
        """
        if "evaluate" not in cfg:
            raise ConfigError(f"no evaluate section in this config (sections: {sorted(cfg)})")
        data = dict(cfg["evaluate"])
        data.update({k: v for k, v in overrides.items() if v is not None})
        out = cls(**_fields_from(cls, data, "evaluate"))
        if out.draws < 1 or out.shots < 1:
            raise ConfigError(f"evaluate.draws and evaluate.shots must be >= 1, got {out.draws} and {out.shots}")
        if not out.adapt_lr > 0:
            raise ConfigError(f"evaluate.adapt_lr must be > 0, got {out.adapt_lr}")
        if not out.tau > 0:
            raise ConfigError(f"evaluate.tau must be > 0 mm, got {out.tau}")
        if not (0 < out.test_fraction < 1 and 0 < out.val_fraction < 1
                and out.test_fraction + out.val_fraction < 1):
            raise ConfigError(f"evaluate.test_fraction={out.test_fraction} and val_fraction={out.val_fraction} "
                              "must be in (0, 1) and sum to less than 1")
        return out

    def step_lr(self, method: str) -> float | None:
        """Learning rate of the gradient step on the support for a one-shot U-Net, or ``None`` for none.

        The Hyper U-Net takes it when ``adapt``; the Rand U-Net only when ``adapt`` and ``rand_adapt``.

        Raises:
            ValueError: ``method`` is not ``hyper_unet`` or ``rand_unet``.
        """
        if method not in ("hyper_unet", "rand_unet"):
            raise ValueError(f"step_lr: method must be hyper_unet or rand_unet, got {method!r}")
        if not self.adapt or (method == "rand_unet" and not self.rand_adapt):
            return None
        return self.adapt_lr

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain values (nested budgets as dicts), as recorded in ``results.json``."""
        return dataclasses.asdict(self)


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
    section = {**_optional(EvalConfig), **section}
    if overrides:
        section = merge_config(section, overrides, "evaluate")
    return EvalConfig.from_config({"evaluate": section}, **kw)
