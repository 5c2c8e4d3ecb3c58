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

Conv and All U-Net share :func:`train_supervised`: AdamW on Dice + BCE of the
sample's own output channel, validation Dice every ``val_every`` steps, early stopping,
best weights kept.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from hyperkit.config import SupervisedConfig
from hyperkit.metrics import copy_support, dice
from hyperkit.model.adapt import segmentation_loss
from hyperkit.data.augment import augment_pair, build_augment

__all__ = ["Samples", "SupervisedResult", "train_supervised", "predict", "copy_support", "central_blob"]


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
    """

    best_dice: float
    best_step: int
    steps: int
    seconds_to_best: float
    seconds: float
    stopped_early: bool
    curve: list[tuple[int, float]]


@torch.no_grad()
def predict(net: nn.Module, images: Tensor, channels: Tensor | None = None, chunk: int = 4) -> Tensor:
    """Binary predictions ``(N, 1, S, S, S)`` (logit > 0) of ``images`` ``(N, 1, S, S, S)``.

    ``channels`` picks each image's output channel (default: channel 0).
    """
    was = net.training
    net.eval()
    out = []
    for i in range(0, images.shape[0], chunk):
        logits = net(images[i:i + chunk])
        ch = channels[i:i + chunk] if channels is not None else torch.zeros(logits.shape[0], dtype=torch.long)
        out.append(logits[torch.arange(logits.shape[0]), ch][:, None] > 0)
    net.train(was)
    return torch.cat(out)


def _val_dice(net: nn.Module, val: Samples) -> float:
    preds = predict(net, val.images, val.channels)
    return float(sum(dice(p, m) for p, m in zip(preds, val.masks)) / len(val))


def train_supervised(net: nn.Module, train: Samples, val: Samples, cfg: SupervisedConfig,
                     generator: torch.Generator, progress: bool = False, desc: str = "supervised",
                     balance: bool = False) -> SupervisedResult:
    """Train ``net`` in place on ``train`` with early stopping on ``val``; the best weights are kept.

    Each step draws ``cfg.batch`` patches uniformly (with the sample's augmentation seeded
    from ``generator``) and minimises Dice + BCE of each patch's own output channel.

    Args:
        net: a :class:`UNet3D` (``out_channels`` > every channel in the samples).
        train, val: patches ``(N, 1, S, S, S)`` with their channels.
        cfg: the budget.
        generator: every random choice (same seed -> same weights on the same machine).
        progress: a tqdm bar.
        desc: the bar's label.
        balance: draw every output channel (task) equally often, whatever its number of patches.

    Returns:
        A :class:`SupervisedResult`; ``net`` holds the best validation weights, in eval mode.
    """
    augment = build_augment() if cfg.augment else None
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    start = time.perf_counter()
    best = _val_dice(net, val)
    best_state, best_step, best_time = copy.deepcopy(net.state_dict()), 0, 0.0
    curve, bad, step = [(0, best)], 0, 0
    counts = torch.bincount(train.channels)
    weights = (1.0 / counts[train.channels].double()) if balance else torch.ones(len(train), dtype=torch.double)
    net.train()
    bar = tqdm(total=cfg.steps, desc=desc, disable=not progress, leave=False)
    for step in range(1, cfg.steps + 1):
        idx = torch.multinomial(weights, cfg.batch, replacement=True, generator=generator)
        imgs, msks = train.images[idx].clone(), train.masks[idx].clone()
        if augment is not None:
            for i, s in enumerate(torch.randint(2 ** 31, (cfg.batch,), generator=generator).tolist()):
                imgs[i], msks[i] = augment_pair(augment, imgs[i], msks[i], s)
        logits = net(imgs)
        loss = segmentation_loss(logits[torch.arange(cfg.batch), train.channels[idx]][:, None], msks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)
        if step % cfg.val_every == 0 or step == cfg.steps:
            d = _val_dice(net, val)
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
                            step < cfg.steps, curve)


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
