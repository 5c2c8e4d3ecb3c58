"""How fast does the quick hypernetwork fit a handful of training tasks? (BENCHMARKS.md, "Recipe study")

A diagnostic, not the training command: Algorithm 1 (the kit's own ``training_step``) on a few
named training tasks only, with the quick profile plus ``--set`` overrides, the profile's
learning-rate warm-up and then a constant rate, and every 50 steps
the one-shot Dice *on those same tasks* (two supports per task, each scored on the next four
cases; patches placed as validation places them). One task alone measures how fast the
generated decoder can be fitted at all; several tasks measure the cost of telling them apart
from the support, which is what the full training set asks of the hypernetwork.

Examples::

    OMP_NUM_THREADS=1 python benchmarks/fit_tasks.py --data runs/quick/phantoms --tasks kidney_left --steps 200
    OMP_NUM_THREADS=1 python benchmarks/fit_tasks.py --data runs/quick/phantoms \\
        --tasks kidney_left heart aorta iliopsoas_left duodenum --steps 200 --set model.c_base=4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from hyperkit.config import DataConfig, TrainConfig, combine_overrides, load_profile
from hyperkit.data.augment import build_augment
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.data.tasks import task_parts
from hyperkit.model.hypernet import HyperUNet
from hyperkit.training.loop import one_shot_validation, training_step


def fit(data: str, tasks: list[str], steps: int, overrides: dict[str, Any], every: int = 50) -> list[dict[str, Any]]:
    """Train on ``tasks`` for ``steps`` episodes; the fit curve (one-shot Dice on the same tasks)."""
    cfg = load_profile("quick", overrides)
    tcfg = TrainConfig.from_config(cfg, episodes=steps)
    datasets = discover_datasets(data)

    def keep(tid: str) -> bool:
        return task_parts(tid).class_name in tasks

    bank = TaskBank.from_datasets(datasets, "train", cfg, case_splits=tcfg.train_splits, keep=keep,
                                  margin=DataConfig.from_config(cfg).max_shift)
    scored = TaskBank.from_datasets(datasets, "train", cfg, case_splits=tcfg.train_splits, keep=keep)
    torch.manual_seed(int(cfg["seed"]))
    model = HyperUNet.from_config(cfg["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    warmup = max(1, tcfg.warmup_episodes)  # the profile's warm-up, then a constant rate (no decay: a fit test)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(1.0, (e + 1) / warmup))
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    augment = build_augment(tcfg.intensity) if tcfg.augment else None
    curve, losses, start = [], [], time.perf_counter()
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            res = one_shot_validation(model, scored, 4, torch.device("cpu"), n_supports=2)
            row = {"step": step, "fit_dice": round(res["dice"], 4),
                   "loss": round(sum(losses[-every:]) / len(losses[-every:]), 4) if losses else None,
                   "seconds": round(time.perf_counter() - start, 1),
                   "per_task": {task_parts(t).short: round(v, 3) for t, v in res["per_task"].items()}}
            curve.append(row)
            print(json.dumps(row), flush=True)
        if step == steps:
            break
        parts, _, _ = training_step(model, opt, sched, bank, tcfg, generator, augment, torch.device("cpu"))
        losses.append(parts["loss"])
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the phantoms (or any data folder with training tasks)")
    ap.add_argument("--tasks", nargs="+", required=True, help="training structures, e.g. kidney_left heart")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="profile overrides")
    ap.add_argument("--out", default=None, help="write the curve here as JSON")
    args = ap.parse_args()
    if args.steps < 1:
        raise SystemExit(f"--steps must be >= 1, got {args.steps}")
    curve = fit(args.data, args.tasks, args.steps, combine_overrides(args.set))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"tasks": args.tasks, "set": args.set, "curve": curve}, indent=1))


if __name__ == "__main__":
    main()
