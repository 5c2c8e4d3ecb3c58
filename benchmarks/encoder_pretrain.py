"""Does a supervised warm start of the shared encoder help the quick hypernetwork? (BENCHMARKS.md, "Recipe study")

A what-if, not in the kit's training: before Algorithm 1, one :class:`~hyperkit.model.unet.UNet3D`
of the quick width with one output channel per training task is trained *supervised* on the
training tasks' patches (each patch scores its own task's channel, Dice + 0.1 BCE, every task drawn
equally often, the kit's augmentation: :func:`hyperkit.evaluation.baselines.train_supervised`), and
its shared parts (encoder, down- and up-sampling, the decoder's normalisations and 1x1 residual
branches) start the hypernetwork's U-Net; the generated convolutions and the head are the
hypernetwork's as always. Then ``hyperkit train``'s own loop runs unchanged
(:func:`hyperkit.training.loop.train`, the quick profile, seed 0), writing its run folder. Compare
its ``validation.jsonl`` with a default run at the same torch thread count; the wall time of the
pretraining is in ``pretrain.json``.

Examples (2 threads, about 20 min each on two idle cores)::

    python benchmarks/encoder_pretrain.py --data runs/quick/phantoms --out runs/study/encoder-pretrain
    python benchmarks/encoder_pretrain.py --data runs/quick/phantoms --out runs/study/encoder-only --shared encoder
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from unittest import mock

import torch

import hyperkit.training.loop as loop
from hyperkit.config import DataConfig, TrainConfig, combine_overrides, load_profile
from hyperkit.config.sections import SupervisedConfig
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.evaluation.baselines import Samples, train_supervised
from hyperkit.model.hypernet import HyperUNet
from hyperkit.model.unet import UNet3D


def training_patches(data: str, cfg: dict, generator: torch.Generator) -> tuple[Samples, list[str]]:
    """One offset patch ``(1, S, S, S)`` per case of every training task (the training bank's rule)."""
    tcfg = TrainConfig.from_config(cfg)
    bank = TaskBank.from_datasets(discover_datasets(data), "train", cfg, case_splits=tcfg.train_splits,
                                  margin=DataConfig.from_config(cfg).max_shift)
    images, masks, channels = [], [], []
    for channel, tid in enumerate(bank.task_ids):
        for index in range(bank.images[tid].shape[0]):
            image, mask = bank._cut(tid, index, generator)
            images.append(image)
            masks.append(mask)
            channels.append(channel)
    return Samples(torch.stack(images), torch.stack(masks), torch.tensor(channels)), bank.task_ids


def pretrain(samples: Samples, n_tasks: int, cfg: dict, steps: int, generator: torch.Generator) -> tuple[dict, dict]:
    """The supervised warm start; returns the shared state dict (no head) and a record."""
    val = torch.randperm(len(samples), generator=generator)[:16]  # 16 training patches: a progress check only
    check = Samples(samples.images[val], samples.masks[val], samples.channels[val])
    torch.manual_seed(int(cfg["seed"]))
    net = UNet3D(int(cfg["model"]["base_width"]), out_channels=n_tasks)
    budget = SupervisedConfig(steps=steps, batch=2, lr=float(cfg["train"]["lr"]), val_every=steps, patience=1,
                              augment=True, warmup=steps, bce_weight=float(cfg["train"]["bce_weight"]))
    start = time.perf_counter()
    res = train_supervised(net, samples, check, budget, generator, progress=True, desc="pretrain", balance=True)
    record = {"steps": steps, "seconds": round(time.perf_counter() - start, 1), "check_dice": res.curve,
              "threads": torch.get_num_threads()}
    if res.best_step == 0:  # train_supervised kept the initial weights: the default initialisation, no warm start
        raise SystemExit(f"the pretraining did not improve on its 16 check patches ({res.curve}); its kept weights "
                         "are the initial ones, which equal the hypernetwork's own initialisation: nothing to test")
    return {k: v for k, v in net.state_dict().items() if not k.startswith("head.")}, record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the phantoms (or any data folder with training tasks)")
    ap.add_argument("--out", required=True, help="run folder (the training's files, pretrain.json)")
    ap.add_argument("--pre-steps", type=int, default=1000, help="supervised steps of 2 patches (default 1000)")
    ap.add_argument("--episodes", type=int, default=None, help="Algorithm 1 episodes (default: the profile's)")
    ap.add_argument("--shared", choices=("all", "encoder"), default="all",
                    help="which pretrained parts start the hypernetwork's U-Net: every shared part (default), or "
                         "only the encoder and its down-sampling (the decoder's shared parts from scratch)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="profile overrides")
    args = ap.parse_args()
    if args.pre_steps < 1:
        raise SystemExit(f"--pre-steps must be >= 1, got {args.pre_steps}")
    cfg = load_profile("quick", combine_overrides(args.set))
    generator = torch.Generator().manual_seed(1234)
    samples, tasks = training_patches(args.data, cfg, generator)
    shared, record = pretrain(samples, len(tasks), cfg, args.pre_steps, generator)
    del samples
    if args.shared == "encoder":
        shared = {k: v for k, v in shared.items() if k.startswith(("encoder.", "down."))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    build = HyperUNet.from_config  # the unpatched constructor

    def warm_started(model_cfg: dict) -> HyperUNet:
        model = build(model_cfg)
        model.unet.load_state_dict(shared, strict=False)  # the generated convolutions' pretrained weights are unused
        return model

    with mock.patch.object(loop.HyperUNet, "from_config", staticmethod(warm_started)):
        result = loop.train(cfg, args.data, out / "run", episodes=args.episodes)
    record |= {"shared": args.shared, "best_dice": result.best_dice, "best_episode": result.best_episode,
               "tasks": len(tasks)}
    (out / "pretrain.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
