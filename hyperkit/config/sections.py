"""Typed sections of a profile, each read by the one validator (:mod:`hyperkit.config.schema`).

``data``: :class:`DataConfig`; ``model``: :class:`ModelConfig`; ``train``: :class:`TrainConfig`;
``evaluate``: :class:`EvalConfig` (with the supervised baselines' budgets, :class:`SupervisedConfig`).
:func:`check_config` checks a whole resolved profile (a loaded one, or one recorded in a run or a
checkpoint). The allowed values of the string settings and the protocol's method names live here too,
so that every layer reads them from one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from hyperkit.config.schema import _convert, check_unknown, fields_from as _fields_from
from hyperkit.errors import ConfigError

__all__ = ["PLACEMENTS", "SAMPLINGS", "INTENSITIES", "SECTIONS", "METHODS", "ONE_SHOT_METHODS", "CENTRE_PRIOR_METHODS",
           "DataConfig", "ModelConfig", "TrainConfig", "SupervisedConfig", "MamlConfig", "EvalConfig", "check_config",
           "check_seed", "reread", "reread_config"]

#: every method the protocol knows, in table order (keys of ``paper_results/tables.yaml``)
METHODS: tuple[str, ...] = ("rand_unet", "all_unet", "hyper_unet", "conv_unet", "copy_support")
#: methods that work from the support draws (the rest train on a split of the target's cases)
ONE_SHOT_METHODS: tuple[str, ...] = ("hyper_unet", "rand_unet", "copy_support")
#: the two ways to exploit the centre prior of a patch, with their plot labels
CENTRE_PRIOR_METHODS: dict[str, str] = {"copy_support": "copy the support mask", "central_blob": "central blob"}
#: where the target sits in its patch (``data.placement``)
PLACEMENTS: tuple[str, ...] = ("centred", "offset")
#: how an episode picks its tasks (``train.task_sampling``)
SAMPLINGS: tuple[str, ...] = ("uniform", "group")
#: the intensity augmentations (``train.intensity``)
INTENSITIES: tuple[str, ...] = ("paper", "wide")
#: the sections of a resolved profile, besides ``name`` and ``seed``
SECTIONS: tuple[str, ...] = ("data", "model", "train", "evaluate")


def _check_ranges(out: Any, where: str, *, at_least_one: tuple[str, ...] = (),
                  non_negative: tuple[str, ...] = (), positive: tuple[str, ...] = ()) -> None:
    """Raise ConfigError naming ``where.field`` and its value for the first field out of range."""
    for names, ok, rule in ((at_least_one, lambda v: v >= 1, ">= 1"), (non_negative, lambda v: v >= 0, ">= 0"),
                            (positive, lambda v: v > 0, "> 0")):
        for name in names:
            value = getattr(out, name)
            if not ok(value):  # also catches NaN
                raise ConfigError(f"{where}.{name} must be {rule}, got {value}")


def check_seed(value: Any, where: str = "seed") -> int:
    """A seed: a non-negative integer (``2.0`` and ``"2"`` read as 2; ``1.5`` is refused, not truncated).

    Raises:
        ConfigError: naming ``where`` and the value.
    """
    seed = _convert(value, int, where)
    if seed < 0:
        raise ConfigError(f"{where} must be >= 0, got {seed}")
    return seed


def _plain(cfg: Any) -> dict[str, Any]:
    """A config dataclass as plain values: tuples as lists, nested sections as dicts (YAML- and JSON-safe)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def reread(section: Any, read: Callable[[Mapping[str, Any]], Any]) -> Any:
    """A section recorded by an earlier run, read again with today's defaults: ``read(section).as_dict()``
    (a setting added since the record compares at its default). A section that no longer reads
    (``read`` raises :class:`ConfigError`) stays as recorded, and so differs from any of today's;
    anything but a mapping is returned as it is.

    Args:
        section: the recorded section (``results.json``'s ``protocol.evaluate``, a run's ``train``).
        read: today's reader of that section (``TrainConfig.from_mapping``).
    """
    if not isinstance(section, Mapping):
        return section
    try:
        return read(section).as_dict()
    except ConfigError:
        return dict(section)


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section of a profile.

    Attributes:
        spacing: isotropic output spacing in mm (paper: 1.5).
        patch_size: side S of the cubic patch in voxels (paper: 128); a multiple of 16.
        ct_clip: CT window in HU before the z-score (paper: [-900, 900]).
        mri_percentiles: percentiles mapped to [0, 1] for MRI (paper: 1st and 99th).
        placement: ``"offset"`` (the target's place in the patch varies, seeded) or
            ``"centred"`` (the patch centred on the target's bounding box).
        max_offset: largest shift of the patch centre from the target's centre, as a
            fraction of the patch side (per axis); the shift never uncovers the target.
        placement_seed: seed of the offsets (with the dataset, case and task ids).
    """

    spacing: float = 1.5
    patch_size: int = 128
    ct_clip: tuple[float, float] = (-900.0, 900.0)
    mri_percentiles: tuple[float, float] = (1.0, 99.0)
    placement: str = "centred"
    max_offset: float = 0.25
    placement_seed: int = 0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "DataConfig":
        """From a whole profile (its ``data`` section).

        A bare ``data`` section is accepted too (it has no ``data`` key); moved: inference/ passes
        one until it calls :meth:`from_mapping`.
        """
        return cls.from_mapping(cfg["data"] if "data" in cfg else cfg)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "data") -> "DataConfig":
        """From a profile's ``data`` section, checked (missing keys take the defaults above).

        Raises:
            ConfigError: unknown or mistyped keys; values out of range.
        """
        out = cls(**_fields_from(cls, data, where))
        if out.placement not in PLACEMENTS:
            raise ConfigError(f"{where}.placement must be one of {list(PLACEMENTS)}, got {out.placement!r}")
        if not 0 <= out.max_offset <= 0.5:
            raise ConfigError(f"{where}.max_offset must be in [0, 0.5] (a fraction of the patch side), "
                              f"got {out.max_offset}")
        if out.spacing <= 0:
            raise ConfigError(f"{where}.spacing must be > 0, got {out.spacing}")
        if out.patch_size <= 0 or out.patch_size % 16:
            raise ConfigError(f"{where}.patch_size must be a positive multiple of 16, got {out.patch_size}")
        if not out.ct_clip[0] < out.ct_clip[1]:
            raise ConfigError(f"{where}.ct_clip must be [low, high] with low < high, got {list(out.ct_clip)}")
        lo, hi = out.mri_percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"{where}.mri_percentiles must satisfy 0 <= low < high <= 100, got {[lo, hi]}")
        check_seed(out.placement_seed, f"{where}.placement_seed")  # the offsets' seed stream refuses a negative one
        return out

    def key(self) -> dict[str, Any]:
        """What the cached steps 1-3 depend on (placement is step 4: not part of the key)."""
        return {"spacing": self.spacing, "ct_clip": list(self.ct_clip), "mri_percentiles": list(self.mri_percentiles)}

    @property
    def max_shift(self) -> int:
        """Largest offset in voxels (0 when centred)."""
        return int(round(self.max_offset * self.patch_size)) if self.placement == "offset" else 0

    def as_dict(self) -> dict[str, Any]:
        """Every field as a plain value (tuples as lists), as in a resolved profile."""
        return _plain(self)


@dataclass(frozen=True)
class ModelConfig:
    """The ``model`` section of a profile: the hypernetwork's architecture (paper §3).

    The fields are the arguments of :class:`~hyperkit.model.hypernet.HyperUNet` (documented
    there); build the model with ``HyperUNet.from_config(model_cfg)``. A field left out of a
    profile takes the default below (the paper's values where the paper gives one).
    """

    base_width: int = 32
    c_base: int = 8
    n_patches: int = 64
    boundary_share: float = 0.7
    samplings: int = 3
    hidden: int = 2048
    pos_dim: int = 256
    zstar_hidden: int = 512
    zstar_dim: int = 256
    head_hidden: int = 512
    task_norm: bool = True
    task_pe: bool = True
    bound_kernels: bool = True
    perm_seed: int = 0
    eval_seed: int = 0
    head_prior: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "model") -> "ModelConfig":
        """From a profile's ``model`` section (or a ``ModelConfig``), checked.

        Raises:
            ConfigError: unknown or mistyped keys; a size (width, count, dimension) below 1; a
                ``base_width`` that is not a multiple of ``c_base``, an odd ``n_patches``; a
                ``boundary_share`` outside [0, 1] or a ``head_prior`` outside (0, 1).
        """
        if isinstance(data, cls):
            return data
        out = cls(**_fields_from(cls, data, where))
        _check_ranges(out, where, at_least_one=("base_width", "c_base", "n_patches", "samplings", "hidden",
                                                "pos_dim", "zstar_hidden", "zstar_dim", "head_hidden"))
        # the ranges HyperUNet refuses when it is built (after the training banks are made): refused here too
        if out.base_width % out.c_base:
            raise ConfigError(f"{where}.base_width={out.base_width} must be a multiple of {where}.c_base={out.c_base}")
        if out.n_patches % 2:
            raise ConfigError(f"{where}.n_patches={out.n_patches} must be even (half foreground, half background)")
        if not 0.0 <= out.boundary_share <= 1.0:
            raise ConfigError(f"{where}.boundary_share must be in [0, 1], got {out.boundary_share}")
        if out.head_prior is not None and not 0.0 < out.head_prior < 1.0:
            raise ConfigError(f"{where}.head_prior must be null or a probability in (0, 1), got {out.head_prior}")
        return out

    @classmethod
    def from_profile(cls, profile: str | Path = "quick", overrides: Mapping[str, Any] | None = None) -> "ModelConfig":
        """The ``model`` section of a profile (a built-in name or a YAML path), ``overrides`` applied."""
        from hyperkit.config.profiles import load_profile  # the loader imports the sections, not the other way

        return cls.from_mapping(load_profile(profile, {"model": dict(overrides)} if overrides else None)["model"])

    def as_dict(self) -> dict[str, Any]:
        """Every field as a plain value (the ``model`` section of a resolved profile)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of Algorithm 1.

    Attributes:
        episodes: number of episodes (optimizer steps); paper: 20 000.
        tasks_per_episode: B, tasks in one episode's mini-batch (split across DDP ranks).
        beta: weight of the support loss, ``L = β L(support) + (1 − β) L(query)``; paper: 0.2.
        lr: AdamW learning rate at episode 0.
        lr_final_fraction: the learning rate decays exponentially towards this fraction of
            ``lr`` (``γ = fraction ** (1 / episodes)`` per episode: the last step, 0-based
            ``episodes - 1``, runs at ``fraction ** ((episodes - 1) / episodes)``).
        weight_decay: AdamW weight decay.
        val_every: validate every this many episodes (and at episode 0 and the end).
        val_queries: query cases scored per validation support (see ``val_supports``).
        patience: early stopping after this many validations without improvement.
        checkpoint_every: write ``last.pt`` every this many episodes (and at the end).
        augment: on-the-fly MONAI augmentation of support and query.
        amp: bf16 autocast on CUDA (ignored on CPU).
        warmup_episodes: the learning rate is multiplied by a linear ramp from ``1 / warmup`` to 1
            over this many episodes, on top of the exponential decay ``γ^step`` that runs from
            step 0 (0: no ramp, the paper).
        task_sampling: ``"uniform"`` over tasks (the paper) or ``"group"``: a structure group
            first (rib, vertebrae, kidney, ...), then one of its tasks.
        val_supports: support cases per validation task; each is scored on the
            ``val_queries`` cases that follow it (more supports: a steadier signal for ``best.pt``).
        bce_weight: weight of the BCE term of ``L_seg = Dice + w BCE`` in training (paper: 1).
        ema: decay of an exponential moving average of the weights, updated after every
            episode; validation, ``best.pt`` and everything after training use the average
            (0: none, the paper).
        intensity: the intensity augmentation, ``"paper"`` (noise, smoothing, gamma 0.7-1.5)
            or ``"wide"`` (also random intensity scale/shift, histogram shift, gamma 0.5-2):
            the lever that lets CT-trained U-Nets read MRI.
        intensity_remap: probability that a training task's support and query pass through one
            random non-monotone intensity curve (:func:`hyperkit.data.augment.remap_intensity`),
            after the augmentation (0: never, the paper).
        crop_size: side of the training patches in voxels, cut from the training bank's cubes
            with the same offset rule (``None``: ``data.patch_size``, the paper). Smaller crops
            make a task-episode cheaper; validation and evaluation keep ``data.patch_size``.
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
    ema: float = 0.0
    crop_size: int | None = None
    intensity_remap: float = 0.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], **overrides: Any) -> "TrainConfig":
        """From a whole profile (its ``train`` section; none: the defaults), plus overrides (``None``: ignored)."""
        return cls.from_mapping({**dict(cfg.get("train") or {}),
                                 **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "train") -> "TrainConfig":
        """From a profile's ``train`` section, checked (missing keys take the defaults above).

        Raises:
            ConfigError: unknown or mistyped keys; values out of range.
        """
        out = cls(**_fields_from(cls, data, where))
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
        if self.task_sampling not in SAMPLINGS:
            raise ConfigError(f"train.task_sampling must be one of {list(SAMPLINGS)}, got {self.task_sampling!r}")
        if self.intensity not in INTENSITIES:
            raise ConfigError(f"train.intensity must be one of {list(INTENSITIES)}, got {self.intensity!r}")
        if not self.bce_weight >= 0:
            raise ConfigError(f"train.bce_weight must be >= 0, got {self.bce_weight}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"train.ema must be in [0, 1) (0: no averaging), got {self.ema}")
        if not 0.0 <= self.intensity_remap <= 1.0:
            raise ConfigError(f"train.intensity_remap must be a probability in [0, 1], got {self.intensity_remap}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.crop_size is not None and (self.crop_size <= 0 or self.crop_size % 16):
            raise ConfigError(f"train.crop_size must be null or a positive multiple of 16, got {self.crop_size}")

    @property
    def gamma(self) -> float:
        """Per-episode factor of the exponential learning-rate decay."""
        return self.lr_final_fraction ** (1.0 / self.episodes)

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at optimiser step ``step`` (0-based): linear warm-up, then ``γ^step``."""
        warm = min(1.0, (step + 1) / self.warmup_episodes) if self.warmup_episodes else 1.0
        return warm * self.gamma ** step

    def as_dict(self) -> dict[str, Any]:
        """Every field as a plain value (tuples as lists), as in a resolved profile."""
        return _plain(self)


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
        augment: the training augmentation of :func:`hyperkit.data.augment.build_augment`.
        warmup: steps before early stopping may act (from scratch, Dice + BCE first predicts
            all background for a while; validations in that phase do not use up patience).
        bce_weight: ``w`` in the training loss ``L_seg = Dice + w BCE`` (paper: 1).
        amp: bf16 autocast of the training's forward passes (steps and validations) where the
            hardware computes bf16 natively (CUDA; a CPU with AVX512-BF16 or AMX), fp32 elsewhere
            (:mod:`hyperkit.model.precision`); the test predictions stay fp32.
    """

    steps: int
    batch: int
    lr: float
    val_every: int
    patience: int
    augment: bool
    warmup: int
    bce_weight: float = 1.0
    amp: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> "SupervisedConfig":
        """From a profile's ``evaluate.conv`` / ``evaluate.all`` mapping; ``where`` names it in errors.

        Raises:
            ConfigError: unknown, missing or mistyped keys; values out of range.
        """
        out = cls(**_fields_from(cls, data, where))
        _check_ranges(out, where, at_least_one=("steps", "batch", "val_every", "patience"),
                      non_negative=("warmup", "bce_weight"), positive=("lr",))
        return out

    def as_dict(self) -> dict[str, Any]:
        """Every field as a plain value, as in a resolved profile."""
        return _plain(self)


@dataclass(frozen=True)
class MamlConfig:
    """The MAML baseline of Table 3 (``hyperkit maml``): ``evaluate.maml``.

    Leave-one-organ-out meta-training of the target U-Net (all of its weights ordinary
    parameters) with MAML; meta-test adapts the meta-learnt weights with the same inner loop
    on the supports of the held-out organ. Every field is required: the profile is the one
    source of these values.

    Attributes:
        shots: support cases per task, in meta-training and at meta-test (Table 3: 5); the
            5-shot Hyper U-Net of the same table uses it as ``evaluate.shots``.
        queries: query cases per task in meta-training (the outer loss); fewer when a task
            has fewer than ``shots + queries`` cases (at least one).
        inner_steps: k, full-batch SGD steps on the ``shots`` supports (meta-training and meta-test).
        inner_lr: alpha, the inner SGD learning rate.
        meta_iterations: outer (Adam) steps per fold.
        meta_batch: tasks per outer step (without replacement while there are enough).
        meta_lr: beta, the outer Adam learning rate.
        first_order: first-order MAML (the inner gradients are constants of the outer
            gradient); ``False``: second-order (differentiates through the inner loop).
        augment: the training augmentation on meta-training patches (never at meta-test).
        bce_weight: ``w`` in ``L_seg = Dice + w BCE``, inner and outer loss alike.
    """

    shots: int
    queries: int
    inner_steps: int
    inner_lr: float
    meta_iterations: int
    meta_batch: int
    meta_lr: float
    first_order: bool
    augment: bool
    bce_weight: float

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "evaluate.maml") -> "MamlConfig":
        """From a profile's ``evaluate.maml`` mapping, checked.

        Raises:
            ConfigError: unknown, missing or mistyped keys; values out of range.
        """
        out = cls(**_fields_from(cls, data, where))
        _check_ranges(out, where, at_least_one=("shots", "queries", "inner_steps", "meta_batch"),
                      non_negative=("meta_iterations", "bce_weight"), positive=("inner_lr", "meta_lr"))
        return out

    def as_dict(self) -> dict[str, Any]:
        """Every field as a plain value (as in a resolved profile and a fold's record)."""
        return _plain(self)


@dataclass(frozen=True)
class EvalConfig:
    """The one-shot protocol (paper §4): a profile's ``evaluate`` section, checked.

    One source per setting: the protocol's core fields are required, because every
    profile's ``evaluate`` section has them all (the dataclass holds no competing default
    values). Build it with :func:`protocol_for` (from a checkpoint) or :meth:`from_config`
    (from a whole profile). The fields added later have defaults so that sections recorded
    before they existed still load: ``rand_adapt`` (``False``, the paper's Rand U-Net),
    ``adapt_bce_weight`` (1, the paper's loss), ``finetune`` and ``maml`` (``None``: those
    studies need their section in the profile). In a profile::

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
        adapt_bce_weight: ``w`` of the step's loss ``L_seg = Dice + w BCE``; default 1, the
            paper's ``Dice + BCE`` (what sections recorded before the key existed meant).
            ``None``: the loss the checkpoint was trained with (its ``train.bce_weight``), filled
            in by :func:`protocol_for`.
        finetune: the limited-data fine-tuning budget (``hyperkit finetune``, Figure 3); ``None``
            in sections recorded before it existed. Not part of the one-shot protocol
            (:meth:`as_dict` leaves it out, so one-shot results do not depend on it).
        maml: the MAML baseline of Table 3 (``hyperkit maml``); ``None`` in sections recorded
            before it existed. Not part of the one-shot protocol either (:meth:`as_dict` leaves it out).
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
    adapt_bce_weight: float | None = 1.0
    finetune: SupervisedConfig | None = None
    maml: MamlConfig | None = None

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
        if out.adapt_bce_weight is not None and not out.adapt_bce_weight >= 0:
            raise ConfigError(f"evaluate.adapt_bce_weight must be >= 0 (or null), got {out.adapt_bce_weight}")
        if not out.tau > 0:
            raise ConfigError(f"evaluate.tau must be > 0 mm, got {out.tau}")
        if not (0 < out.test_fraction < 1 and 0 < out.val_fraction < 1
                and out.test_fraction + out.val_fraction < 1):
            raise ConfigError(f"evaluate.test_fraction={out.test_fraction} and val_fraction={out.val_fraction} "
                              "must be in (0, 1) and sum to less than 1")
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "EvalConfig":
        """From a bare ``evaluate`` section (a run record's ``protocol.evaluate``), as :meth:`from_config`."""
        return cls.from_config({"evaluate": data})

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

    @property
    def step_bce_weight(self) -> float:
        """``w`` of the gradient step's loss: ``adapt_bce_weight``, or 1 (the paper's ``Dice + BCE``)
        when it is ``None`` and no checkpoint filled it in (:func:`protocol_for` always does)."""
        return 1.0 if self.adapt_bce_weight is None else self.adapt_bce_weight

    def as_dict(self) -> dict[str, Any]:
        """The one-shot protocol as plain values (nested budgets as dicts), as recorded in
        ``results.json``: every field but ``finetune`` and ``maml``."""
        out = dataclasses.asdict(self)
        out.pop("finetune")
        out.pop("maml")
        return out


#: today's reader of each section that a run or a checkpoint records and that is compared with today's
RECORDED_READERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "data": DataConfig.from_mapping, "model": ModelConfig.from_mapping, "train": TrainConfig.from_mapping}


def reread_config(cfg: Mapping[str, Any],
                  readers: Mapping[str, Callable[[Mapping[str, Any]], Any]] | None = None) -> dict[str, Any]:
    """A recorded config (a run's, a checkpoint's, a MAML fold's key) with its sections read again with
    today's defaults (:func:`reread`), so that a setting added since the record compares at its default,
    not as missing; the other keys stay as recorded.

    Args:
        cfg: the record.
        readers: ``section -> today's reader``; default :data:`RECORDED_READERS` (``data``, ``model``, ``train``).
    """
    readers = RECORDED_READERS if readers is None else readers
    return {k: reread(v, readers[k]) if k in readers else v for k, v in cfg.items()}


def check_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check a resolved profile (or a run's or checkpoint's recorded config) section by section.

    Each section present is read by its dataclass (the one validator, :mod:`hyperkit.config.schema`);
    the top level may hold only ``name``, ``seed`` and :data:`SECTIONS`.

    Returns:
        ``cfg`` as a plain dict, unchanged.

    Raises:
        ConfigError: an unknown top-level key, a name that is not a non-empty string, a seed that is not a
            non-negative integer, or a section with unknown, mistyped or out-of-range values.
    """
    check_unknown(cfg, ("name", "seed") + SECTIONS, "the profile")
    if "name" in cfg and not (isinstance(cfg["name"], str) and cfg["name"].strip()):
        raise ConfigError(f"name must be a non-empty string, got {cfg['name']!r}")
    if "seed" in cfg:
        check_seed(cfg["seed"])
    if "data" in cfg:
        DataConfig.from_mapping(cfg["data"])
    if "model" in cfg:
        ModelConfig.from_mapping(cfg["model"])
    if "train" in cfg:
        crop = TrainConfig.from_mapping(cfg["train"]).crop_size
        size = DataConfig.from_mapping(cfg["data"]).patch_size if "data" in cfg else None
        if crop is not None and size is not None and crop > size:
            raise ConfigError(f"train.crop_size must be <= data.patch_size ({size}), got {crop}")
    if "evaluate" in cfg:
        EvalConfig.from_config(cfg)
    return dict(cfg)
