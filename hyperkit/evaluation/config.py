"""The ``evaluate`` section of a profile, checked."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from hyperkit.config import load_profile, merge_config
from hyperkit.errors import ConfigError

__all__ = ["METHODS", "ONE_SHOT_METHODS", "SupervisedConfig", "EvalConfig", "protocol_for"]

#: every method the protocol knows, in table order (keys of ``paper_results/tables.yaml``)
METHODS: tuple[str, ...] = ("rand_unet", "all_unet", "hyper_unet", "conv_unet", "copy_support")
#: methods that work from the support draws (the rest train on a split of the target's cases)
ONE_SHOT_METHODS: tuple[str, ...] = ("hyper_unet", "rand_unet", "copy_support")


@dataclass(frozen=True)
class SupervisedConfig:
    """Budget of a supervised baseline (Conv U-Net, All U-Net).

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

    steps: int = 300
    batch: int = 2
    lr: float = 1e-3
    val_every: int = 20
    patience: int = 5
    augment: bool = True
    warmup: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> "SupervisedConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in {where}; known: {sorted(known)}")
        out = cls(**{k: type(getattr(cls, k))(v) for k, v in data.items()})
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
    """The one-shot protocol (paper §4; DESIGN.md §6).

    Attributes:
        draws: support draws per held-out task; each draw generates one U-Net.
        shots: labelled support cases per draw (K).
        tau: NSD tolerance in mm.
        adapt: apply the gradient step on the support after generation (A.1).
        adapt_lr: its learning rate η (chosen on the validation tasks, never on held-out ones).
        test_fraction: share of a target's cases kept to test the supervised baselines.
        val_fraction: share used for their early stopping (at least one case each).
        conv: Conv U-Net budget.
        all: All U-Net budget.
    """

    draws: int = 5
    shots: int = 1
    tau: float = 2.0
    adapt: bool = True
    adapt_lr: float = 0.1
    test_fraction: float = 0.4
    val_fraction: float = 0.2
    conv: SupervisedConfig = field(default_factory=SupervisedConfig)
    all: SupervisedConfig = field(default_factory=lambda: SupervisedConfig(steps=1500, batch=4, val_every=100,
                                                                           patience=4))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], **overrides: Any) -> "EvalConfig":
        """From a whole profile (its ``evaluate`` section, if any) plus keyword overrides (``None`` = keep)."""
        data = dict(cfg.get("evaluate", {}))
        data.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown evaluate config key(s) {unknown}; known: {sorted(known)}")
        default = cls()
        kw: dict[str, Any] = {}
        for name in ("conv", "all"):
            if name in data:
                kw[name] = SupervisedConfig.from_mapping(data.pop(name), f"evaluate.{name}")
        for k, v in data.items():
            kw[k] = type(getattr(default, k))(v)
        out = cls(**kw)
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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def protocol_for(cfg: Mapping[str, Any], profile: str | None = None, overrides: Mapping[str, Any] | None = None,
                 **kw: Any) -> EvalConfig:
    """The protocol for a checkpoint trained with ``cfg``: the ``evaluate`` section of its profile.

    A checkpoint records the sections training reads; the ``evaluate`` section comes from
    the profile it names (or ``profile``), so the protocol can change without retraining.
    A profile that cannot be found (a YAML file since moved) gives the defaults.

    Args:
        cfg: the checkpoint's resolved config.
        profile: take the section from this profile instead.
        overrides: nested ``evaluate`` keys (e.g. ``{"conv": {"steps": 20}}``).
        kw: top-level keys (``draws=2``); ``None`` values are ignored.
    """
    try:
        section = load_profile(profile or cfg.get("name", "quick")).get("evaluate", {})
    except ConfigError:
        section = {}
    if overrides:
        section = merge_config(section, overrides, "evaluate") if section else dict(overrides)
    return EvalConfig.from_config({"evaluate": section}, **kw)
