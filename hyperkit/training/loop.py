"""Algorithm 1 (episodic training) with validation on unseen tasks, early stopping,
atomic checkpoints, exact resume, and DistributedDataParallel.

Per episode e (paper Algorithm 1):

    sample a mini-batch of B training tasks
    for each task T: support (x_s, y_s) and an independent query (x_q, y_q)
        F_T = Hypernetwork(x_s, y_s);  ŷ_s = F_T(x_s);  ŷ_q = F_T(x_q)
        L_T = β L_seg(ŷ_s, y_s) + (1 − β) L_seg(ŷ_q, y_q)
        L_seg = Dice + w·BCE   (w = train.bce_weight; paper: the plain sum, w = 1)
    update E, H and the shared decoder parts with AdamW on mean_T L_T;  lr ← γ lr

The B tasks are generated in one batched pass (:meth:`HyperUNet.forward_episode`).
Under ``torchrun`` each rank takes its share of the B tasks (DDP averages gradients).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from hyperkit.config import (DataConfig, TrainConfig, check_config, check_seed, differences, dump_config,
                             reread_config)
from hyperkit.data.layouts import discover_datasets
from hyperkit.data.preprocess import default_cache_dir
from hyperkit.data.store import available_memory
from hyperkit.metrics import dice
from hyperkit.model.adapt import segmentation_loss
from hyperkit.model.hypernet import HyperUNet
from hyperkit.model.modes import eval_mode
from hyperkit.model.precision import autocast
from hyperkit.provenance import write_run_record
from hyperkit.data.augment import augment_pair, build_augment, random_curve, remap_intensity
from hyperkit.files import read_jsonl, save_atomic, write_text_atomic
from hyperkit.training.checkpoint import CHECKPOINT_KIND, load_checkpoint, load_hypernet
from hyperkit.training.device import check_device
from hyperkit.seeds import episode_generator
from hyperkit.data.bank import Episode, TaskBank, preprocess_workers
from hyperkit.errors import ConfigError, HyperkitError

__all__ = ["TrainResult", "train", "ensure_trained", "run_state", "resolve_run_config", "training_differences",
           "one_shot_validation", "episode_loss", "training_step", "fresh_start", "read_jsonl", "EarlyStop",
           "replay_early_stopping"]


@dataclass
class TrainResult:
    """What a training run left: its folder, last episode, best validation Dice and where."""

    run_dir: Path
    episodes_done: int
    best_dice: float
    best_episode: int
    first_dice: float
    stopped_early: bool
    model: HyperUNet | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------- helpers
def _truncate_jsonl(path: Path, last_episode: int) -> None:
    rows = [r for r in read_jsonl(path) if r["episode"] <= last_episode]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))  # a resume cut short keeps the history


def _append(path: Path, row: Mapping[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


@contextlib.contextmanager
def _graceful_interrupt(terminate: bool = True) -> Iterator[dict[str, bool]]:
    """First Ctrl-C asks the loop to stop after the current episode; a second one aborts.

    Args:
        terminate: a SIGTERM (``kill``, ``timeout``, a batch system's end of job) does the same as
            Ctrl-C: the run stops after its episode with ``last.pt`` written, where the signal's
            default ended it at once and lost every episode since the last checkpoint. Off under
            ``torchrun``, whose launcher stops its workers with SIGTERM and must not wait on them.
    """
    flag = {"stop": False}
    signals = [signal.SIGINT] + ([signal.SIGTERM] if terminate else [])
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    try:
        for s in signals:
            signal.signal(s, handler)
    except ValueError:  # not the main thread (e.g. inside some notebook runners)
        yield flag
        return
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    # train.amp acts on CUDA only: the quick profile's trained runs are fp32 on a CPU
    return autocast(device, amp and device.type == "cuda")


# ---------------------------------------------------------------------------------- the maths
def episode_loss(model: nn.Module, ep: Episode, beta: float, generator: torch.Generator,
                 device: torch.device, amp: bool, bce_weight: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    """Algorithm 1, lines 4-11 for one (shard of an) episode (``L_seg = Dice + bce_weight · BCE``).

    Args:
        model: the :class:`~hyperkit.model.hypernet.HyperUNet` (or its DDP wrapper).
        ep: B tasks' support and query, each ``(B, 1, 1, S, S, S)`` (:class:`~hyperkit.data.bank.Episode`).
        beta: β, the support's share of each task's loss.
        generator: draws the context patches of the generation.

    Returns:
        The scalar loss ``mean_T [β L(support) + (1 − β) L(query)]`` and its parts.
    """
    s_img, s_msk = ep.support_images.to(device), ep.support_masks.to(device)
    q_img, q_msk = ep.query_images.to(device), ep.query_masks.to(device)
    with _autocast(device, amp):
        s_logits, q_logits = model(s_img, s_msk, q_img, generator=generator)
    s_logits, q_logits = s_logits.float(), q_logits.float()
    loss_s = segmentation_loss(s_logits.flatten(0, 1), s_msk.flatten(0, 1), bce_weight)
    loss_q = segmentation_loss(q_logits.flatten(0, 1), q_msk.flatten(0, 1), bce_weight)
    loss = beta * loss_s + (1 - beta) * loss_q
    return loss, {"loss": float(loss.detach()), "loss_support": float(loss_s.detach()),
                  "loss_query": float(loss_q.detach())}


@torch.no_grad()
def one_shot_validation(model: HyperUNet, bank: TaskBank, n_queries: int, device: torch.device,
                        amp: bool = False, n_supports: int = 1) -> dict[str, Any]:
    """One-shot Dice on validation tasks (never trained on); eval-mode generation (deterministic).

    Support ``s`` (the task's case ``s``, for ``s < n_supports``) is scored on the
    ``n_queries`` cases that follow it (cyclically, never itself).

    Returns:
        ``{"dice": mean over tasks, "per_task": {task_id: mean Dice over its supports and queries}}``.
    """
    per_task = {}
    with eval_mode(model):
        for tid in bank.task_ids:
            imgs, msks = bank.images[tid], bank.masks[tid]
            n = imgs.shape[0]
            scores = []
            for s in range(min(n_supports, n)):
                idx = [(s + 1 + j) % n for j in range(min(n_queries, n - 1))]
                with _autocast(device, amp):
                    _, q_logits = model(imgs[s:s + 1][None].to(device), msks[s:s + 1][None].to(device),
                                        imgs[idx][None].to(device))
                preds = (q_logits[0].float() > 0).cpu()
                scores += [dice(p, m) for p, m in zip(preds, msks[idx])]
            per_task[tid] = float(sum(scores) / len(scores))
    return {"dice": sum(per_task.values()) / len(per_task), "per_task": per_task}


def fresh_start(model_cfg: Mapping[str, Any], tcfg: TrainConfig, seed: int,
                dev: torch.device | None = None) -> tuple[HyperUNet, torch.optim.Optimizer, Any]:
    """Where a fresh run of :func:`train` starts: ``torch.manual_seed(seed)``, then the model of
    ``model_cfg`` (its initial weights follow from the seed), AdamW at ``tcfg.lr`` with
    ``tcfg.weight_decay``, and the learning-rate schedule (warm-up, then the decay of Algorithm 1).

    Returns:
        ``(model, optimiser, scheduler)``; the model in train mode on ``dev`` (default: CPU).
    """
    torch.manual_seed(seed)
    model = HyperUNet.from_config(model_cfg).to(dev or torch.device("cpu")).train()
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, tcfg.lr_factor)


def training_step(net: nn.Module, opt: torch.optim.Optimizer, sched: Any, bank: TaskBank, tcfg: TrainConfig,
                  generator: torch.Generator, augment: Any, device: torch.device, rank: int = 0,
                  world: int = 1) -> tuple[dict[str, float], float, list[str]]:
    """One episode of Algorithm 1: sample B tasks, augment, generate + segment, AdamW step, lr decay.

    Every random choice comes from ``generator``. Under DDP each rank computes its share of
    the tasks; DDP averages the gradients.

    Returns:
        This rank's loss parts, the learning rate used, and the episode's task ids.
    """
    ep = bank.sample(tcfg.tasks_per_episode, generator, tcfg.task_sampling).to(device)  # augment where the model runs
    if augment is not None:
        seeds = torch.randint(2 ** 31, (len(ep.task_ids), 2), generator=generator).tolist()
        for i, (s1, s2) in enumerate(seeds):
            ep.support_images[i, 0], ep.support_masks[i, 0] = augment_pair(
                augment, ep.support_images[i, 0], ep.support_masks[i, 0], s1)
            ep.query_images[i, 0], ep.query_masks[i, 0] = augment_pair(
                augment, ep.query_images[i, 0], ep.query_masks[i, 0], s2)
    if tcfg.intensity_remap > 0:  # draws nothing when off: the paper's stream of random numbers is kept
        for i in range(len(ep.task_ids)):
            if float(torch.rand((), generator=generator)) < tcfg.intensity_remap:
                pair = remap_intensity(torch.cat([ep.support_images[i], ep.query_images[i]]), random_curve(generator))
                ep.support_images[i], ep.query_images[i] = pair[:1], pair[1:]
    loss, parts = episode_loss(net, ep.shard(rank, world), tcfg.beta, generator, device, tcfg.amp, tcfg.bce_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    lr = sched.get_last_lr()[0]
    sched.step()
    return parts, lr, ep.task_ids


def resolve_run_config(cfg: Mapping[str, Any], episodes: int | None = None,
                       seed: int | None = None) -> tuple[TrainConfig, int, dict[str, Any]]:
    """The checked train section, the seed, and the resolved config a run records.

    The record holds the whole profile, its ``evaluate`` section included, so that
    ``hyperkit evaluate`` / ``generate`` read the protocol of the profile the run was
    trained with; runs are compared without that section (:func:`_training_part`).
    """
    tcfg = TrainConfig.from_config(cfg, episodes=episodes)
    seed = check_seed(cfg.get("seed", 0) if seed is None else seed)
    return tcfg, seed, check_config({**cfg, "seed": seed, "train": tcfg.as_dict()})


def _training_part(resolved: Mapping[str, Any], episodes: bool = True) -> dict[str, Any]:
    """What makes two runs the same training: the resolved config without ``evaluate``
    (the protocol may change without retraining) and, with ``episodes=False``, without
    ``train.episodes`` (a resume may extend a run)."""
    out = reread_config({k: v for k, v in resolved.items() if k != "evaluate"})  # added since: at its default
    if not episodes and "train" in out:
        out["train"] = {k: v for k, v in out["train"].items() if k != "episodes"}
    return out


def training_differences(saved: Mapping[str, Any], resolved: Mapping[str, Any],
                         episodes: bool = True) -> list[tuple[str, Any, Any]]:
    """The settings at which a saved run's training differs from a resolved config's (:func:`_training_part`):
    ``(dotted key, saved value, resolved value)``, ``None`` where a side lacks the key."""
    old, new = _training_part(saved, episodes), _training_part(resolved, episodes)

    def at(tree: Any, where: str) -> Any:
        for key in where.split("."):
            tree = tree.get(key) if isinstance(tree, Mapping) else None
        return tree

    return [(where, at(old, where), at(new, where)) for where in differences(old, new)]


# ---------------------------------------------------------------------------------- the loop
@dataclass
class RunState:
    """What a run carries from episode to episode; saved in every checkpoint (``"state"``).

    Attributes:
        episode: episodes done.
        best_dice: best validation Dice so far (-1 before the first validation).
        best_episode: the episode of ``best_dice`` (the weights in ``best.pt``).
        bad_validations: validations since the last improvement (early stopping).
        first_dice: validation Dice at episode 0 (before training).
        wall_seconds: seconds spent in training steps.
        stopped_early: ``patience`` validations without improvement ended the run.
    """

    episode: int = 0
    best_dice: float = -1.0
    best_episode: int = 0
    bad_validations: int = 0
    first_dice: float = float("nan")
    wall_seconds: float = 0.0
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def record_validation(self, episode: int, dice: float, patience: int) -> bool:
        """The early-stopping rule, applied to one validation; returns whether it improved.

        A Dice strictly above every earlier one is an improvement: it becomes ``best_dice`` (the
        weights ``best.pt`` keeps) and resets the count; any other adds one validation without
        improvement. ``patience`` of those, after episode 0, end the run (``stopped_early``).
        """
        improved = dice > self.best_dice
        if improved:
            self.best_dice, self.best_episode, self.bad_validations = dice, episode, 0
        else:
            self.bad_validations += 1
        if episode > 0 and self.bad_validations >= patience:
            self.stopped_early = True
        return improved


class EarlyStop(NamedTuple):
    """Where a run would have stopped (:func:`replay_early_stopping`)."""

    stopped_at: int | None  #: the episode of the validation that ends the run; None: it runs to the end
    best_episode: int       #: the episode whose weights ``best.pt`` would hold
    best_dice: float        #: their validation Dice


def replay_early_stopping(validations: Iterable[Mapping[str, Any]], patience: int) -> EarlyStop:
    """The training loop's early stopping replayed on a run's logged validations with another ``patience``.

    Args:
        validations: the rows of ``validation.jsonl`` (``episode``, ``dice``), in order.
        patience: validations without improvement that end a run (``train.patience``).

    Raises:
        ValueError: ``patience`` below 1.
    """
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    state = RunState()
    for row in validations:
        state.record_validation(int(row["episode"]), float(row["dice"]), patience)
        if state.stopped_early:
            return EarlyStop(int(row["episode"]), state.best_episode, state.best_dice)
    return EarlyStop(None, state.best_episode, state.best_dice)


def _pick_device(device: str | torch.device | None) -> torch.device:
    """The device of this process: given, or CUDA (the local rank's GPU under torchrun) when available, else CPU."""
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    dev = check_device(device)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    else:
        torch.set_flush_denormal(True)  # denormal floats slow CPU kernels by orders of magnitude
    return dev


#: voxels a quick-profile training step computes (2 tasks of 48³ patches), the scale a CPU trains at
_QUICK_STEP_VOXELS = 2 * 48 ** 3


def cpu_scale_note(dev: torch.device, patch: int, tasks: int) -> str | None:
    """A warning for a training step far beyond what a CPU trains at (the paper profile's 8 tasks of 128³ are 76
    times the quick profile's voxels), or ``None``.

    Args:
        dev: the training's device.
        patch: the side of the training patches in voxels (``train.crop_size`` or ``data.patch_size``).
        tasks: tasks per episode.
    """
    scale = tasks * patch ** 3 / _QUICK_STEP_VOXELS
    if dev.type != "cpu" or scale < 10:
        return None
    return (f"[train] warning: {tasks} task(s) of {patch}^3 per episode on a CPU, {scale:.0f} times the quick "
            "profile's step: the paper profile is meant for GPUs (on a 2-core CPU one task-episode at 128^3 took "
            "74.5 s and 12.4 GB, and a step of 8 did not fit in 23 GiB: BENCHMARKS.md, \"Throughput and memory\")")


def _check_run_dir(run: Path, resume: bool) -> None:
    """Refuse to overwrite a run without ``resume``, or to resume nothing."""
    if (run / "last.pt").exists() and not resume:
        raise HyperkitError(f"{run}: already holds a training run; pass --resume to continue it "
                            "or choose another --out")
    if resume and not (run / "last.pt").exists():
        raise HyperkitError(f"{run}: nothing to resume (no last.pt: no training started there, or it was stopped "
                            "before its first checkpoint); run the same command without --resume")


#: where the training bank's cubes are kept: ``auto`` (in memory when its upper bound fits in half the available
#: memory, else on disk), ``memory`` or ``disk`` (:mod:`hyperkit.data.store`); the episodes are the same
BANK_STORAGE = ("auto", "memory", "disk")


def _check_bank(bank: str) -> None:
    if bank not in BANK_STORAGE:
        raise ValueError(f"bank must be one of {list(BANK_STORAGE)}, got {bank!r}")


def bank_store(bank: str, datasets: Any, cfg: Mapping[str, Any], tcfg: TrainConfig, margin: int,
               cache_dir: str | Path | None) -> Path | None:
    """The folder of a training bank kept on disk, or ``None`` to keep it in memory (``bank``: :data:`BANK_STORAGE`).

    Raises:
        ValueError: an unknown ``bank``.
    """
    _check_bank(bank)
    if bank == "memory" or not margin:
        return None
    if bank == "auto":
        # every process of a torchrun node holds its own bank
        copies = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
        bound = copies * TaskBank.bytes_bound(datasets, "train", cfg, case_splits=tcfg.train_splits, margin=margin)
        free = available_memory()
        if free is None or bound <= free // 2:
            return None
        print(f"[train] the training bank may take up to {bound / 2 ** 30:.1f} GiB (one cube of "
              f"{DataConfig.from_config(cfg).patch_size + 2 * margin}^3 voxels per task and case"
              f"{f', {copies} processes' if copies > 1 else ''}) against "
              f"{free / 2 ** 30:.1f} GiB available: its cubes are cut from the cached cases per episode", flush=True)
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "banks"


#: how long the other processes of a DDP training wait for rank 0 to preprocess the data (NCCL's default of 10
#: minutes is shorter than preprocessing a real TotalSegmentator at 1.5 mm)
DATA_TIMEOUT = timedelta(hours=24)


def _load_banks(cfg: Mapping[str, Any], tcfg: TrainConfig, data_root: str | Path, cache_dir: str | Path | None,
                progress: bool, rank: int, world: int, bank: str = "auto",
                workers: int = 1) -> tuple[TaskBank, TaskBank]:
    """The training and validation tasks; under DDP rank 0 fills the preprocessing cache first (``workers`` cases at
    once), while the others wait up to :data:`DATA_TIMEOUT`."""
    datasets = discover_datasets(data_root)
    margin = DataConfig.from_config(cfg).max_shift  # training cuts a freshly offset patch every episode
    store = bank_store(bank, datasets, cfg, tcfg, margin, cache_dir)
    banks: dict[str, TaskBank] = {}
    group = dist.new_group(backend="gloo", timeout=DATA_TIMEOUT) if world > 1 else None
    for turn in range(2 if world > 1 else 1):
        if (rank == 0) == (turn == 0):
            banks["train"] = TaskBank.from_datasets(datasets, "train", cfg, case_splits=tcfg.train_splits,
                                                    cache_dir=cache_dir, progress=progress and rank == 0,
                                                    margin=margin, crop=tcfg.crop_size or 0, root=data_root,
                                                    store=store, workers=workers)
            banks["val"] = TaskBank.from_datasets(datasets, "val", cfg, case_splits=tcfg.val_splits,
                                                  cache_dir=cache_dir, progress=progress and rank == 0,
                                                  root=data_root, workers=workers)
        if group is not None:
            dist.barrier(group=group)
    if group is not None:
        dist.destroy_process_group(group)
    return banks["train"], banks["val"]


class _Run:
    """One training run in progress: model, optimiser, schedule, banks, state, and its files.

    Its steps are :meth:`start` (fresh or resumed), :meth:`validate`, :meth:`step` (one episode)
    and :meth:`save_last`; :func:`train` calls them in order.
    """

    def __init__(self, run: Path, cfg: Mapping[str, Any], tcfg: TrainConfig, seed: int, resolved: dict[str, Any],
                 banks: tuple[TaskBank, TaskBank], dev: torch.device, rank: int, world: int) -> None:
        self.dir, self.tcfg, self.seed, self.resolved = run, tcfg, seed, resolved
        self.train_bank, self.val_bank = banks
        self.dev, self.rank, self.world = dev, rank, world
        self.metrics_path, self.val_path = run / "metrics.jsonl", run / "validation.jsonl"
        self.model, self.opt, self.sched = fresh_start(cfg["model"], tcfg, seed, dev)
        self.state = RunState()
        self.net: nn.Module = self.model
        self.augment: Any = None
        # the weights that are validated and kept: an exponential moving average of the trained ones
        # (train.ema > 0), else the trained ones themselves
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(tcfg.ema))
                    if tcfg.ema > 0 else None)

    @property
    def kept(self) -> HyperUNet:
        """The model that validation scores and ``best.pt`` holds."""
        return self.model if self.ema is None else self.ema.module

    def start(self, resume: bool, data_root: str | Path) -> None:
        """Load ``last.pt`` (same training config required) or start the run's files; record the run."""
        if resume:
            ck = load_checkpoint(self.dir / "last.pt", map_location=self.dev)
            if _training_part(ck["config"], episodes=False) != _training_part(self.resolved, episodes=False):
                raise HyperkitError(f"{self.dir / 'last.pt'}: saved config differs from this run's config; resume "
                                    "with the same profile, seed and overrides")
            self.model.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["optimizer"])
            self.sched.load_state_dict(ck["scheduler"])
            if self.ema is not None:
                self.ema.load_state_dict(ck["ema"])
            self.state = RunState(**{**self.state.as_dict(), **ck["state"]})
            if self.rank == 0:
                _truncate_jsonl(self.metrics_path, self.state.episode)
                _truncate_jsonl(self.val_path, self.state.episode)
        elif self.rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True)
            for p in (self.metrics_path, self.val_path):
                p.write_text("")
        if self.rank == 0:
            dump_config(self.resolved, self.dir / "config.yaml")
            write_run_record(self.dir, self.resolved, self.seed, resumed=resume, data_root=str(data_root),
                             world_size=self.world, device=str(self.dev), train_tasks=len(self.train_bank),
                             val_tasks=len(self.val_bank), training_bank=self.train_bank.storage,
                             dropped_tasks=self.train_bank.dropped | self.val_bank.dropped)
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.dev.index] if self.dev.type == "cuda" else None)
        self.augment = build_augment(self.tcfg.intensity) if self.tcfg.augment else None

    def validate(self, episode: int) -> float:
        """One-shot validation; updates best / patience, logs it and writes ``best.pt`` on improvement."""
        tcfg, st = self.tcfg, self.state
        res = one_shot_validation(self.kept, self.val_bank, tcfg.val_queries, self.dev, tcfg.amp, tcfg.val_supports)
        if episode == 0 and math.isnan(st.first_dice):
            st.first_dice = res["dice"]
        improved = st.record_validation(episode, res["dice"], tcfg.patience)
        if self.rank == 0:
            _append(self.val_path, {"episode": episode, "dice": round(res["dice"], 6), "wall_seconds":
                                    round(st.wall_seconds, 3),
                                    "per_task": {k: round(v, 6) for k, v in res["per_task"].items()}})
            if improved:
                save_atomic(_best_weights(self.kept, st.as_dict(), self.resolved), self.dir / "best.pt")
        return res["dice"]

    def step(self, episode: int) -> dict[str, float]:
        """Episode ``episode`` of Algorithm 1 (its own seeded generator); logs and returns its loss parts."""
        t0 = time.perf_counter()
        g = episode_generator(self.seed, episode)
        parts, lr, task_ids = training_step(self.net, self.opt, self.sched, self.train_bank, self.tcfg, g,
                                            self.augment, self.dev, self.rank, self.world)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        if self.world > 1:
            t = torch.tensor([parts["loss"], parts["loss_support"], parts["loss_query"]], device=self.dev)
            dist.all_reduce(t)
            parts = dict(zip(parts, (t / self.world).tolist()))
        self.state.wall_seconds += time.perf_counter() - t0
        self.state.episode = episode
        if self.rank == 0:
            _append(self.metrics_path, {"episode": episode, **{k: round(v, 6) for k, v in parts.items()},
                                        "lr": lr, "wall_seconds": round(self.state.wall_seconds, 3),
                                        "tasks": task_ids})
        return parts

    def save_last(self) -> None:
        """``last.pt``: weights, optimiser, schedule and state (rank 0)."""
        if self.rank == 0:
            ck = _checkpoint(self.model, self.opt, self.sched, self.state.as_dict(), self.resolved)
            if self.ema is not None:
                ck["ema"] = self.ema.state_dict()
            save_atomic(ck, self.dir / "last.pt")

    def result(self) -> TrainResult:
        st = self.state
        return TrainResult(self.dir, st.episode, st.best_dice, st.best_episode, st.first_dice, st.stopped_early,
                           self.kept)


def _checkpoint(model: HyperUNet, opt: torch.optim.Optimizer, sched: Any, state: dict[str, Any],
                cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": CHECKPOINT_KIND, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "state": dict(state), "config": dict(cfg)}


def _best_weights(model: HyperUNet, state: dict[str, Any], cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": CHECKPOINT_KIND, "model": model.state_dict(), "state": dict(state), "config": dict(cfg)}


def train(cfg: Mapping[str, Any], data_root: str | Path, run_dir: str | Path, *, episodes: int | None = None,
          seed: int | None = None, resume: bool = False, device: str | torch.device | None = None,
          cache_dir: str | Path | None = None, progress: bool = True, stop_at: int | None = None,
          bank: str = "auto", workers: int | None = None) -> TrainResult:
    """Train a hypernetwork with Algorithm 1.

    Args:
        cfg: a resolved profile (sections ``data``, ``model``, ``train``).
        data_root: folder of datasets (the phantoms or real data).
        run_dir: output folder: ``config.yaml``, ``run.json``, ``metrics.jsonl`` (one line per
            episode), ``validation.jsonl``, ``last.pt``, ``best.pt``.
        episodes: overrides ``train.episodes``.
        seed: overrides the profile's ``seed``.
        resume: continue from ``run_dir/last.pt``; the result equals an uninterrupted run.
        device: ``"cpu"``, ``"cuda"``... (default: CUDA if available; under torchrun the local rank's GPU).
        cache_dir: preprocessing cache.
        progress: tqdm bar (rank 0 only).
        stop_at: stop after this episode as an interruption would (checkpoint written, resumable);
            for time-boxed sessions and for testing resume. On resume with a different
            ``episodes``, the learning-rate decay keeps the original run's rate.
        bank: where the training bank's cubes are kept (:data:`BANK_STORAGE`; the same episodes either way).
        workers: cases preprocessed at once before the banks are built
            (:func:`~hyperkit.data.bank.preprocess_workers`; default: one per core, as memory allows); the same
            data, and so the same training, whatever the number.

    Raises:
        ConfigError: bad config values; HyperkitError: a run folder that would be overwritten
        without ``resume``, or a resume whose config differs.
    """
    tcfg, seed, resolved = resolve_run_config(cfg, episodes, seed)
    rank, world = _dist_info()
    dev = _pick_device(device)
    note = cpu_scale_note(dev, tcfg.crop_size or DataConfig.from_config(cfg).patch_size, tcfg.tasks_per_episode)
    if note and rank == 0:
        print(note, flush=True)
    if tcfg.tasks_per_episode < world:
        raise ConfigError(f"train.tasks_per_episode={tcfg.tasks_per_episode} is smaller than the "
                          f"{world} processes; each rank needs at least one task")
    _check_run_dir(Path(run_dir), resume)
    _check_bank(bank)  # before any data is read
    workers = preprocess_workers(workers)  # checked before any data is read
    banks = _load_banks(cfg, tcfg, data_root, cache_dir, progress, rank, world, bank, workers)
    run = _Run(Path(run_dir), cfg, tcfg, seed, resolved, banks, dev, rank, world)
    run.start(resume, data_root)
    state, total, start = run.state, tcfg.episodes, run.state.episode
    bar = tqdm(total=total, initial=start, desc="episodes", disable=not progress or rank != 0, dynamic_ncols=True)
    last_val = state.best_dice if start else float("nan")
    with _graceful_interrupt(terminate=world == 1) as interrupt:
        if start == 0:
            last_val = run.validate(0)
        run.model.train()
        episode = start
        while episode < total and not state.stopped_early:
            episode += 1
            parts = run.step(episode)
            if episode % tcfg.val_every == 0 or episode == total:
                last_val = run.validate(episode)  # sets state.stopped_early after `patience` without improvement
            if stop_at is not None and episode >= stop_at:
                interrupt["stop"] = True
            if (episode % tcfg.checkpoint_every == 0 or episode == total or state.stopped_early
                    or interrupt["stop"]):
                run.save_last()
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}", val_dice=f"{last_val:.3f}")
            if interrupt["stop"]:
                break
    bar.close()
    if world > 1:
        dist.barrier()
    if interrupt["stop"] and episode < total and not state.stopped_early and stop_at is None:
        raise KeyboardInterrupt(f"stopped after episode {episode}; continue with --resume")
    return run.result()


def run_state(run_dir: str | Path) -> dict[str, Any] | None:
    """The saved state of a run (``last.pt``), or ``None`` when there is none."""
    path = Path(run_dir) / "last.pt"
    if not path.is_file():
        return None
    ck = load_checkpoint(path)
    return {"config": ck["config"], **ck["state"]}


def ensure_trained(cfg: Mapping[str, Any], data_root: str | Path, run_dir: str | Path, *,
                   episodes: int | None = None, seed: int | None = None, **kwargs: Any) -> TrainResult:
    """Reuse a finished run with the same resolved config, resume an unfinished one, or train.

    This is what the notebooks call: ``hyperkit train --profile quick --out RUN`` leaves a
    run that a notebook with the same config picks up instead of training again. A run
    folder whose config differs is refused (choose another folder), never overwritten.
    Either way the returned model is the run's ``best.pt`` (best one-shot validation Dice),
    in eval mode.
    """
    tcfg, _, resolved = resolve_run_config(cfg, episodes, seed)
    state = run_state(run_dir)
    if state is not None:
        if _training_part(state["config"]) != _training_part(resolved):
            raise HyperkitError(f"{run_dir}: holds a run with another config; remove it or use another folder")
        done = state["episode"] >= tcfg.episodes or state["stopped_early"]
        if not done:
            train(cfg, data_root, run_dir, episodes=episodes, seed=seed, resume=True, **kwargs)
            state = run_state(run_dir)
    else:
        train(cfg, data_root, run_dir, episodes=episodes, seed=seed, **kwargs)
        state = run_state(run_dir)
    assert state is not None
    model, _ = load_hypernet(Path(run_dir) / "best.pt")
    return TrainResult(Path(run_dir), state["episode"], state["best_dice"], state["best_episode"],
                       state["first_dice"], state["stopped_early"], model)
