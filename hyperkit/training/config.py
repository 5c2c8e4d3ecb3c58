"""The ``train`` section of a profile, checked."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from hyperkit.errors import ConfigError

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of Algorithm 1.

    Attributes:
        episodes: number of episodes (optimizer steps); paper: 20 000.
        tasks_per_episode: B, tasks in one episode's mini-batch (split across DDP ranks).
        beta: weight of the support loss, ``L = β L(support) + (1 − β) L(query)``; paper: 0.2.
        lr: AdamW learning rate at episode 0.
        lr_final_fraction: the learning rate decays exponentially to this fraction of
            ``lr`` at the last episode (``γ = fraction ** (1 / episodes)`` per episode).
        weight_decay: AdamW weight decay.
        val_every: validate every this many episodes (and at episode 0 and the end).
        val_queries: query cases per validation task (support: the task's first case).
        patience: early stopping after this many validations without improvement.
        checkpoint_every: write ``last.pt`` every this many episodes (and at the end).
        augment: on-the-fly MONAI augmentation of support and query.
        amp: bf16 autocast on CUDA (ignored on CPU).
        warmup_episodes: the learning rate rises linearly from ``lr / warmup`` to ``lr`` over
            this many episodes before the exponential decay takes over (0: none, the paper).
        task_sampling: ``"uniform"`` over tasks (the paper) or ``"group"``: a structure group
            first (rib, vertebrae, kidney, ...), then one of its tasks.
        val_supports: support cases per validation task; each is scored on the
            ``val_queries`` cases that follow it (more supports: a steadier signal for ``best.pt``).
        bce_weight: weight of the BCE term of ``L_seg = Dice + w BCE`` in training (paper: 1).
        intensity: the intensity augmentation, ``"paper"`` (noise, smoothing, gamma 0.7-1.5)
            or ``"wide"`` (also random intensity scale/shift, histogram shift, gamma 0.5-2):
            the lever that lets CT-trained U-Nets read MRI.
        train_splits: ``meta.csv`` split values whose subjects serve the training tasks.
        val_splits: split values whose subjects serve the validation tasks.
    """

    episodes: int = 20000
    tasks_per_episode: int = 4
    beta: float = 0.2
    lr: float = 1e-4
    lr_final_fraction: float = 0.1
    weight_decay: float = 0.01
    val_every: int = 250
    val_queries: int = 4
    patience: int = 20
    checkpoint_every: int = 100
    augment: bool = True
    amp: bool = True
    train_splits: tuple[str, ...] = ("train",)
    val_splits: tuple[str, ...] = ("val", "test")
    warmup_episodes: int = 0
    task_sampling: str = "uniform"
    val_supports: int = 1
    intensity: str = "paper"
    bce_weight: float = 1.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], **overrides: Any) -> "TrainConfig":
        """From a whole profile (``cfg["train"]``) or its ``train`` section, plus overrides."""
        is_profile = any(k in cfg for k in ("train", "data", "model", "name"))
        section = dict(cfg.get("train") or {}) if is_profile else dict(cfg)
        section.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"unknown train config key(s) {unknown}; known: {sorted(known)}")
        for key in ("train_splits", "val_splits"):
            if key in section:
                section[key] = tuple(section[key])
        out = cls(**section)
        out.check()
        return out

    def check(self) -> None:
        positive = ("episodes", "tasks_per_episode", "val_every", "val_queries", "patience", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"train.beta must be in [0, 1], got {self.beta}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0 < self.lr_final_fraction <= 1:
            raise ConfigError(f"train.lr_final_fraction must be in (0, 1], got {self.lr_final_fraction}")
        if not isinstance(self.warmup_episodes, int) or self.warmup_episodes < 0:
            raise ConfigError(f"train.warmup_episodes must be an integer >= 0, got {self.warmup_episodes!r}")
        if not isinstance(self.val_supports, int) or self.val_supports <= 0:
            raise ConfigError(f"train.val_supports must be a positive integer, got {self.val_supports!r}")
        if self.task_sampling not in ("uniform", "group"):
            raise ConfigError(f"train.task_sampling must be 'uniform' or 'group', got {self.task_sampling!r}")
        if self.intensity not in ("paper", "wide"):
            raise ConfigError(f"train.intensity must be 'paper' or 'wide', got {self.intensity!r}")
        if not self.bce_weight >= 0:
            raise ConfigError(f"train.bce_weight must be >= 0, got {self.bce_weight}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")

    @property
    def gamma(self) -> float:
        """Per-episode factor of the exponential learning-rate decay."""
        return self.lr_final_fraction ** (1.0 / self.episodes)

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at optimiser step ``step`` (0-based): linear warm-up, then ``γ^step``."""
        warm = min(1.0, (step + 1) / self.warmup_episodes) if self.warmup_episodes else 1.0
        return warm * self.gamma ** step

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


