"""The quick profile's training recipe, one change at a time (BENCHMARKS.md, "Recipe study").

Each variant is the quick profile plus a few overrides, trained with the same seed,
episodes and data on the same machine; then its ``best.pt`` is scored one-shot on
training tasks (cases of the training subjects, one support and up to ``--queries``
queries per task, the same offset patches as validation) and on the validation tasks
(never trained on), so that a reader can tell under-fitting (both low) from a failure
to transfer (training high, validation low). Variants already trained are reused
(a run folder with ``best.pt`` and a finished ``last.pt``); an interrupted one resumes.

Examples::

    python benchmarks/recipe_study.py --data runs/quick/phantoms --out runs/study --variants paper kit
    python benchmarks/recipe_study.py --data runs/quick/phantoms --out runs/study --report
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from hyperkit.config import load_profile
from hyperkit.data.layouts import discover_datasets
from hyperkit.data.bank import TaskBank, structure_group
from hyperkit.training.checkpoint import load_hypernet
from hyperkit.training.loop import ensure_trained, one_shot_validation, read_jsonl, run_state

#: the paper's recipe (on offset patches), as overrides of the quick profile
PAPER: dict[str, Any] = {"model": {"head_prior": None},
                         "train": {"warmup_episodes": 0, "task_sampling": "uniform", "bce_weight": 1.0,
                                   "lr": 0.001, "intensity": "paper"}}


def _with(**train: Any) -> dict[str, Any]:
    return {"model": {"head_prior": PAPER["model"]["head_prior"]}, "train": {**PAPER["train"], **train}}


_PRIOR = {"head_prior": 0.02}
#: variant -> overrides of the quick profile; each states every recipe setting, so that a
#: variant means the same whatever the profile's defaults are
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": PAPER,
    "+warmup+groups": _with(warmup_episodes=50, task_sampling="group"),
    "+warmup+groups+prior": {**_with(warmup_episodes=50, task_sampling="group"), "model": _PRIOR},
    "+warmup+groups+prior+lr3e-3": {**_with(warmup_episodes=50, task_sampling="group", lr=0.003), "model": _PRIOR},
    "+warmup+groups+prior+bce0.1": {**_with(warmup_episodes=50, task_sampling="group", bce_weight=0.1),
                                    "model": _PRIOR},
    "+warmup+groups+prior+bce0.1+lr2e-3": {**_with(warmup_episodes=50, task_sampling="group", bce_weight=0.1,
                                                   lr=0.002), "model": _PRIOR},
    "+warmup+groups+prior+bce0.1+wide": {**_with(warmup_episodes=50, task_sampling="group", bce_weight=0.1,
                                                 intensity="wide"), "model": _PRIOR},
}


def _train_bank_subset(cfg: dict[str, Any], data: str, per_group: int = 1) -> TaskBank:
    """One training task per structure group (the first by name), offset patches as validation uses."""
    datasets = discover_datasets(data)
    bank = TaskBank.from_datasets(datasets, "train", cfg, case_splits=cfg["train"]["train_splits"])
    keep = {t for tasks in bank.groups().values() for t in tasks[:per_group]}
    return TaskBank({t: bank.images[t] for t in keep}, {t: bank.masks[t] for t in keep},
                    {t: bank.case_ids[t] for t in keep}, bank.spacing)


def run_variant(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_profile("quick", VARIANTS[name])
    if args.episodes:
        cfg["train"]["episodes"] = args.episodes
    run = Path(args.out) / name
    summary_path = run / "study.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    goal = args.stop_at or cfg["train"]["episodes"]
    state = run_state(run)
    if state is None or (state["episode"] < goal and not state["stopped_early"]):
        ensure_trained(cfg, args.data, run, progress=not args.quiet, stop_at=args.stop_at)
    curve = [r for r in read_jsonl(run / "validation.jsonl") if r["episode"] <= goal]
    best = max(curve, key=lambda r: r["dice"])
    model, _ = load_hypernet(run / "best.pt")  # best over the run (a longer run may have gone past goal)
    torch.set_flush_denormal(True)
    train_bank = _train_bank_subset(cfg, args.data)
    on_train = one_shot_validation(model, train_bank, args.queries, torch.device("cpu"))
    summary = {"variant": name, "overrides": VARIANTS[name], "episodes": curve[-1]["episode"],
               "best_episode": best["episode"], "best_val_dice": round(best["dice"], 4),
               "train_task_dice": round(on_train["dice"], 4),
               "train_per_group": {structure_group(t): round(v, 3) for t, v in on_train["per_task"].items()},
               "first_nonzero_episode": next((r["episode"] for r in curve if r["dice"] >= 0.05), None),
               "train_minutes": round(curve[-1]["wall_seconds"] / 60, 2),
               "curve": [[r["episode"], round(r["wall_seconds"], 1), r["dice"]] for r in curve]}
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def report(out: Path) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*/study.json"))]
    print("| variant | best val Dice (episode) | train-task Dice | first val Dice >= 0.05 | train min |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['best_val_dice']:.3f} ({r['best_episode']}) | {r['train_task_dice']:.3f} "
              f"| {r['first_nonzero_episode']} | {r['train_minutes']:.1f} |")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        c = list(zip(*r["curve"]))
        ax.plot(c[0], c[2], marker=".", label=r["variant"])
    ax.set_xlabel("episode (the runs shared the CPU: compared at equal episodes, not wall time)")
    ax.set_ylabel("one-shot validation Dice")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "recipe_study.png", dpi=110)
    print(f"\nplot: {out / 'recipe_study.png'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="phantom (or real) data root")
    ap.add_argument("--out", required=True, help="folder of the variants' runs")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--episodes", type=int, default=None, help="override train.episodes for every variant")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop every variant after this episode (same lr schedule as the full run; resumable)")
    ap.add_argument("--queries", type=int, default=5, help="queries per training task in the train-task score")
    ap.add_argument("--report", action="store_true", help="only print the table of finished variants")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if not args.report:
        for name in args.variants:
            s = run_variant(name, args)
            print(f"{name}: best val {s['best_val_dice']:.3f} at {s['best_episode']}, train tasks {s['train_task_dice']:.3f}")
    report(Path(args.out))


if __name__ == "__main__":
    main()
