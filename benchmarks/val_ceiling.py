"""What supervised training reaches on the validation tasks: a ceiling for the one-shot validation Dice.

The quick profile's one-shot validation Dice (issue 10's aim: >= 0.45) is the mean over the
validation tasks (stomach, oesophagus, gallbladder, urinary bladder of the phantom
TotalSegmentator subjects) of the Dice on the cases of the val/test subjects. This script trains
one Conv U-Net per validation task, *supervised*, on that task's cases of the **training**
subjects (every one of them: far more labelled volumes than one support), with the Conv U-Net
baseline's budget (``evaluate.conv``), and scores it on exactly the patches the validation
scores (the val/test subjects, the same offsets). A one-shot method is not expected to reach it.

Trainings run side by side, one torch thread each (:func:`train_supervised_many`).

Example::

    python benchmarks/val_ceiling.py --data runs/quick/phantoms --out runs/study/val_ceiling.json
    python benchmarks/val_ceiling.py --data runs/quick/phantoms --out runs/study/val_ceiling_long.json \
        --set evaluate.conv.steps=3000 evaluate.conv.patience=20

``--set`` overrides the profile (e.g. a longer supervised budget, to check that the ceiling is
not the Conv U-Net baseline's budget); the overrides are recorded with the result.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hyperkit.config import EvalConfig, TrainConfig, combine_overrides, load_profile
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.data.tasks import task_parts
from hyperkit.evaluation.baselines import Samples, SupervisedJob, predict, train_supervised_many
from hyperkit.metrics import dice
from hyperkit.model.unet import UNet3D
from hyperkit.provenance import run_record


def samples(bank: TaskBank, task: str, index: list[int]) -> Samples:
    return Samples(bank.images[task][index], bank.masks[task][index], torch.zeros(len(index), dtype=torch.long))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--val-share", type=float, default=0.2, help="training-subject cases kept for early stopping")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="JSON with per-task Dice, curves and the run record")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="profile overrides")
    args = ap.parse_args()
    if not 0 < args.val_share < 1:
        raise SystemExit(f"--val-share must be in (0, 1), got {args.val_share}")
    cfg = load_profile(args.profile, combine_overrides(args.set))
    tcfg, ecfg = TrainConfig.from_config(cfg), EvalConfig.from_config(cfg)
    datasets = discover_datasets(args.data)
    fit_bank = TaskBank.from_datasets(datasets, "val", cfg, case_splits=tcfg.train_splits)
    test_bank = TaskBank.from_datasets(datasets, "val", cfg, case_splits=tcfg.val_splits)  # what validation scores
    jobs, tasks = [], []
    for i, task in enumerate(fit_bank.task_ids):
        n = fit_bank.images[task].shape[0]
        g = torch.Generator().manual_seed(args.seed * 1000 + i)
        order = torch.randperm(n, generator=g).tolist()
        n_val = max(1, round(args.val_share * n))
        torch.manual_seed(args.seed * 1000 + i)
        jobs.append(SupervisedJob(UNet3D(cfg["model"]["base_width"]), samples(fit_bank, task, order[n_val:]),
                                  samples(fit_bank, task, order[:n_val]), ecfg.conv, g, desc=task_parts(task).short))
        tasks.append(task)
    start = time.perf_counter()
    out: dict[str, dict] = {}
    for i, res in train_supervised_many(jobs, progress=True):
        task, job = tasks[i], jobs[i]
        preds = predict(job.net, test_bank.images[task])
        scores = [dice(p, m) for p, m in zip(preds, test_bank.masks[task])]
        out[task] = {"test_dice": sum(scores) / len(scores), "test_cases": len(scores),
                     "train_cases": len(job.train), "val_cases": len(job.val), "best_step": res.best_step,
                     "steps": res.steps, "best_val_dice": res.best_dice, "curve": res.curve}
        print(f"{task}: supervised Dice {out[task]['test_dice']:.3f} on {len(scores)} cases "
              f"({len(job.train)} training cases, best step {res.best_step})", flush=True)
    mean = sum(v["test_dice"] for v in out.values()) / len(out)
    print(f"mean over {len(out)} validation tasks: {mean:.3f}  ({time.perf_counter() - start:.0f} s)")
    record = run_record(cfg, args.seed, data=str(Path(args.data).resolve()), val_share=args.val_share,
                        overrides=args.set)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"mean_test_dice": mean, "tasks": out, "record": record}, indent=1,
                                         default=str))


if __name__ == "__main__":
    main()
