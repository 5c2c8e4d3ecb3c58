"""The paper's baselines, same U-Net architecture (paper §4; docs/design.md §6).

- Rand U-Net: the trained shared parts with a random decoder
  (:meth:`hyperkit.model.hypernet.HyperUNet.random_unet`).
- Conv U-Net: a :class:`UNet3D` trained from scratch on one target (upper bound).
- All U-Net: one :class:`UNet3D` with one output channel per task, trained on all
  tasks including the targets.
- Copy the support mask: the support's mask is the prediction. With centred patches
  (``data.placement: centred``) this is a "centre-aligned atlas" without any registration;
  with offset patches (the quick profile) the target's place varies from case to case.
- Central blob (not a paper baseline): a ball at the patch centre as large as the support's
  target. It uses nothing but the centre prior, so it measures what centring gives for free
  (:mod:`hyperkit.evaluation.centre_prior`, notebook 05).

Conv and All U-Net share :func:`train_supervised`: AdamW on Dice + w·BCE (``bce_weight``) of the
sample's own output channel, validation Dice every ``val_every`` steps, early stopping,
best weights kept. :func:`train_supervised_many` trains independent U-Nets (the ten Conv
U-Nets and the All U-Net) side by side, one per CPU thread.

Speed (BENCHMARKS.md, "Where the time goes"; ``benchmarks/baseline_speed.py``): on a CPU the
step is almost all 3D convolution, and three things make it cheaper without changing what is
computed (same data, draws, losses and selection rule; floating-point rounding differs):

- the 3³ convolutions at full resolution run in the channels-last 3D layout
  (:func:`channels_last_convs`; oneDNN's forward + backward of an 8-channel 3³ convolution at
  48³ takes about half the default layout's time); everything else, GroupNorm above all, stays
  in the default layout (PyTorch's channels-last GroupNorm on CPU is accurate to only about 1e-3);
- a U-Net with many outputs (the All U-Net, one per task) computes only each patch's own
  output channel (:func:`channel_logits`), not all of them;
- independent trainings run in threads with one torch thread each instead of one after the
  other with all threads inside each operation (no OpenMP barrier per operation, which
  costs most when the cores are shared with other jobs).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from hyperkit.config import SupervisedConfig
from hyperkit.metrics import copy_support, dice
from hyperkit.model.adapt import segmentation_loss
from hyperkit.model.modes import eval_mode
from hyperkit.model.precision import autocast, precision
from hyperkit.model.unet import DOWNSAMPLING, UNet3D
from hyperkit.data.augment import augment_pair, build_augment
from hyperkit.side_by_side import side_by_side
from hyperkit.stopping import stop_point

__all__ = ["Samples", "SupervisedResult", "SupervisedJob", "train_supervised", "train_supervised_many", "predict",
           "channel_logits", "channels_last_convs", "copy_support", "central_blob"]

#: widest U-Net (base width) whose full-resolution convolutions :func:`channels_last_convs` switches
#: (measured on 2 CPU cores: faster at 8 and 16 channels, slower at 32; BENCHMARKS.md)
CHANNELS_LAST_MAX_WIDTH = 16


@dataclass
class Samples:
    """Patches with the output channel that scores each.

    Attributes:
        images: ``(N, 1, S, S, S)`` float.
        masks: ``(N, 1, S, S, S)`` in {0, 1}.
        channels: ``(N,)`` long, the output channel of each patch's task (0 for a Conv U-Net).
    """

    images: Tensor
    masks: Tensor
    channels: Tensor

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.shape != self.masks.shape or self.channels.shape != (n,) or self.images.dim() != 5:
            raise ValueError(f"inconsistent samples: images {tuple(self.images.shape)}, masks "
                             f"{tuple(self.masks.shape)}, channels {tuple(self.channels.shape)}")
        if n == 0:
            raise ValueError("no samples")

    def __len__(self) -> int:
        return self.images.shape[0]

    @classmethod
    def cat(cls, parts: Sequence["Samples"]) -> "Samples":
        return cls(torch.cat([p.images for p in parts]), torch.cat([p.masks for p in parts]),
                   torch.cat([p.channels for p in parts]))


@dataclass
class SupervisedResult:
    """What :func:`train_supervised` did.

    Attributes:
        best_dice: best mean validation Dice.
        best_step: step of the best validation (0 = before training).
        steps: steps run.
        seconds_to_best: wall time until the best validation (the cost compared with generation).
        seconds: total wall time.
        stopped_early: patience ran out before ``steps``.
        curve: ``[(step, val Dice)]``.
        threads: torch threads this training ran with (results are reproducible at the same count).
        precision: ``"bf16"`` (autocast training steps) or ``"fp32"`` (:mod:`hyperkit.model.precision`).
    """

    best_dice: float
    best_step: int
    steps: int
    seconds_to_best: float
    seconds: float
    stopped_early: bool
    curve: list[tuple[int, float]]
    threads: int = 1
    precision: str = "fp32"


@dataclass
class SupervisedJob:
    """One training of :func:`train_supervised_many`: the arguments of :func:`train_supervised`.

    Attributes:
        net: the U-Net, trained in place.
        train, val: patches ``(N, 1, S, S, S)`` with their channels.
        cfg: the budget.
        generator: every random choice of this training.
        desc: its progress bar's label.
        balance: draw every output channel equally often.
    """

    net: nn.Module
    train: Samples
    val: Samples
    cfg: SupervisedConfig
    generator: torch.Generator
    desc: str = "supervised"
    balance: bool = False


@contextlib.contextmanager
def channels_last_convs(net: nn.Module) -> Iterator[None]:
    """Within the block, the full-resolution 3³ convolutions of ``net`` compute in channels-last 3D.

    The convolutions are ``encoder[0].conv2``, ``decoder[0].conv1`` and ``decoder[0].conv2`` of a
    :class:`UNet3D` of base width at most :data:`CHANNELS_LAST_MAX_WIDTH` (any other module: no
    change). Each takes its input ``(N, b, D, H, W)`` in the channels-last 3D layout and hands its
    output back in the default one, so that nothing else changes layout (the copies cost little
    next to what the layout saves; BENCHMARKS.md). The parameters keep their layout; the results are those of the
    default layout up to floating-point rounding.
    """
    if not isinstance(net, UNet3D) or net.widths[0] > CHANNELS_LAST_MAX_WIDTH:
        yield
        return
    handles = []
    for conv in (net.encoder[0].conv2, net.decoder[0].conv1, net.decoder[0].conv2):
        handles.append(conv.register_forward_pre_hook(
            lambda _m, args: (args[0].contiguous(memory_format=torch.channels_last_3d),)))
        handles.append(conv.register_forward_hook(lambda _m, _args, out: out.contiguous()))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def channel_logits(net: nn.Module, images: Tensor, channels: Tensor) -> Tensor:
    """Logits ``(N, 1, D, H, W)`` of each image's own output channel.

    The same numbers as ``net(images)[arange(N), channels][:, None]``. For a :class:`UNet3D`
    with several outputs (the All U-Net: one per task) and sides that are multiples of 16,
    only the needed channel of the 1³ head is computed: each image's features are weighted
    with its channel's row of the head (the full head of 88 outputs at 48³ costs a third of a
    training step).

    Args:
        net: a segmenter ``(N, 1, D, H, W) -> (N, C_out, D, H, W)`` logits.
        images: ``(N, 1, D, H, W)``.
        channels: ``(N,)`` long, each image's output channel, in ``0 .. C_out - 1``.

    Raises:
        ValueError: ``channels`` is not ``(N,)`` or names a channel the net does not have.
    """
    n = images.shape[0]
    if channels.shape != (n,):
        raise ValueError(f"channels must have shape ({n},), got {tuple(channels.shape)}")
    out = net.config["out_channels"] if isinstance(net, UNet3D) else None
    if out is not None and n and not 0 <= int(channels.min()) <= int(channels.max()) < out:
        raise ValueError(f"channels {channels.tolist()} outside the net's outputs 0..{out - 1}")
    if (out is None or out == 1 or images.dim() != 5 or images.shape[1] != net.config["in_channels"]
            or any(s % DOWNSAMPLING for s in images.shape[2:])):  # the plain forward (and its checks)
        logits = net(images)
        return logits[torch.arange(n), channels][:, None]
    weight = net.head.weight[channels].flatten(1)  # (N, c0): each image's row of the 1^3 head
    bias = net.head.bias[channels].view(n, 1, 1, 1, 1)

    def own_head(h: Tensor) -> Tensor:  # (N, c0, D, H, W) -> (N, 1, D, H, W)
        return torch.einsum("ncdhw,nc->ndhw", h, weight)[:, None] + bias

    return net.decode(net.encode(images), head=own_head)


@torch.no_grad()
def predict(net: nn.Module, images: Tensor, channels: Tensor | None = None, chunk: int = 4) -> Tensor:
    """Binary predictions ``(N, 1, S, S, S)`` (logit > 0) of ``images`` ``(N, 1, S, S, S)``.

    ``channels`` ``(N,)`` picks each image's output channel (default: channel 0); only that
    channel is computed (:func:`channel_logits`).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if channels is None:
        channels = torch.zeros(images.shape[0], dtype=torch.long)
    with eval_mode(net):  # a refused input leaves the caller's mode as it was
        out = [channel_logits(net, images[i:i + chunk], channels[i:i + chunk]) > 0
               for i in range(0, images.shape[0], chunk)]
    return torch.cat(out)


def _val_dice(net: nn.Module, val: Samples, amp: bool = False) -> float:
    with autocast(val.images.device, amp):
        preds = predict(net, val.images, val.channels)
    return float(sum(dice(p, m) for p, m in zip(preds, val.masks)) / len(val))


def train_supervised(net: nn.Module, train: Samples, val: Samples, cfg: SupervisedConfig,
                     generator: torch.Generator, progress: bool = False, desc: str = "supervised",
                     balance: bool = False) -> SupervisedResult:
    """Train ``net`` in place on ``train`` with early stopping on ``val``; the best weights are kept.

    Each step draws ``cfg.batch`` patches uniformly (``balance``: each patch weighted by 1 / its output
    channel's patch count, so every channel is drawn equally often; the sample's augmentation seeded
    from ``generator``) and minimises Dice + ``cfg.bce_weight`` BCE of each patch's own output channel
    (:func:`channel_logits`), its forward passes (steps and validations) in bf16 autocast where
    ``cfg.amp`` asks for it and the hardware has bf16 (:mod:`hyperkit.model.precision`; the loss
    and the weights in fp32). While it trains, its full-resolution convolutions run in the
    channels-last layout (:func:`channels_last_convs`).

    Args:
        net: a :class:`UNet3D` (``out_channels`` > every channel in the samples).
        train, val: patches ``(N, 1, S, S, S)`` with their channels.
        cfg: the budget.
        generator: every random choice (same seed and thread count -> same weights on the same machine).
        progress: a tqdm bar.
        desc: the bar's label.
        balance: draw every output channel (task) equally often, whatever its number of patches.

    Returns:
        A :class:`SupervisedResult`; ``net`` holds the best validation weights, in eval mode.
    """
    augment = build_augment() if cfg.augment else None
    prec = precision(train.images.device, cfg.amp)  # decided once: what the steps run in and what is recorded
    bf16 = prec == "bf16"
    start = time.perf_counter()
    with channels_last_convs(net):
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
        best = _val_dice(net, val, bf16)
        best_state, best_step, best_time = copy.deepcopy(net.state_dict()), 0, 0.0
        curve, bad, step = [(0, best)], 0, 0
        counts = torch.bincount(train.channels)
        weights = (1.0 / counts[train.channels].double()) if balance else torch.ones(len(train), dtype=torch.double)
        net.train()
        bar = tqdm(total=cfg.steps, desc=desc, disable=not progress, leave=False)
        for step in range(1, cfg.steps + 1):
            stop_point()  # in a pool the caller has left (an interrupt): end here
            idx = torch.multinomial(weights, cfg.batch, replacement=True, generator=generator)
            imgs, msks = train.images[idx].clone(), train.masks[idx].clone()
            if augment is not None:
                for i, s in enumerate(torch.randint(2 ** 31, (cfg.batch,), generator=generator).tolist()):
                    imgs[i], msks[i] = augment_pair(augment, imgs[i], msks[i], s)
            with autocast(imgs.device, bf16):
                logits = channel_logits(net, imgs, train.channels[idx])
            loss = segmentation_loss(logits.float(), msks, cfg.bce_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            if step % cfg.val_every == 0 or step == cfg.steps:
                d = _val_dice(net, val, bf16)
                curve.append((step, d))
                bar.set_postfix(val_dice=f"{d:.3f}", best=f"{max(best, d):.3f}")
                if d > best:
                    best, best_step, bad = d, step, 0
                    best_state, best_time = copy.deepcopy(net.state_dict()), time.perf_counter() - start
                elif step > cfg.warmup:
                    bad += 1
                    if bad >= cfg.patience:
                        break
        bar.close()
        net.load_state_dict(best_state)
    net.eval()
    return SupervisedResult(best, best_step, step, best_time, time.perf_counter() - start,
                            step < cfg.steps, curve, torch.get_num_threads(), prec)


def train_supervised_many(jobs: Sequence[SupervisedJob], workers: int | None = None,
                          progress: bool = False) -> Iterator[tuple[int, SupervisedResult]]:
    """Run independent :func:`train_supervised` jobs, ``workers`` at a time, one torch thread each.

    Through :func:`~hyperkit.side_by_side.side_by_side`: unless ``workers == 1``, each
    job (also a lone one) computes exactly what :func:`train_supervised` computes alone at one
    thread, so the results do not depend on ``workers``, on which other jobs came with it or on the
    order in which the jobs finish, and equal a one-thread run of the jobs one after the other; with
    ``workers == 1`` the jobs run one after the other at the current thread count. Jobs start in the
    order given (put the longest first).

    Args:
        jobs: the trainings; each ``job.net`` is trained in place.
        workers: trainings at once (default: ``torch.get_num_threads()``, one per core torch uses).
        progress: a tqdm bar per job.

    Yields:
        ``(index into jobs, result)`` of each job as it finishes.

    Raises:
        ValueError: ``workers`` < 1.
    """
    return side_by_side([functools.partial(train_supervised, job.net, job.train, job.val, job.cfg, job.generator,
                                           progress, job.desc, job.balance) for job in jobs],
                        workers, name="train_supervised")


def central_blob(support_masks: Tensor) -> Tensor:
    """The "central blob" reference: ``(K, 1, D, H, W)`` supports -> one ``(1, D, H, W)`` bool mask.

    A ball at the patch centre with as many voxels as the support's target: the ``n`` voxels
    nearest to voxel ``(D // 2, H // 2, W // 2)`` (where a centred patch puts the centre of the
    target's bounding box, :func:`hyperkit.data.preprocess.extract_patch`), with ``n`` the
    supports' mean foreground voxel count, rounded. Ties in distance are broken by voxel order,
    so the count is exact and the result deterministic. It ignores the image and the support's
    shape and place: it scores what the centre prior alone gives.

    Raises:
        ValueError: ``support_masks`` is not 5-D.
    """
    if support_masks.dim() != 5:
        raise ValueError(f"support masks must be (K, 1, S, S, S), got shape {tuple(support_masks.shape)}")
    spatial = tuple(support_masks.shape[2:])
    n = int(round(float((support_masks.float() > 0.5).flatten(1).sum(1).double().mean())))
    axes = [torch.arange(s, dtype=torch.float64) - s // 2 for s in spatial]
    dist2 = sum(g ** 2 for g in torch.meshgrid(*axes, indexing="ij")).flatten()
    out = torch.zeros(dist2.numel(), dtype=torch.bool)
    out[torch.argsort(dist2, stable=True)[:n]] = True
    return out.view(1, *spatial)
