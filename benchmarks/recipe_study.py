"""The quick profile's training recipe, one change at a time (BENCHMARKS.md, "Recipe study").

Each variant is the quick profile plus a few overrides, trained with the same seed,
episodes and data on the same machine; then its ``best.pt`` is scored one-shot on
training tasks (cases of the training subjects, one support and up to ``--queries``
queries per task, the same offset patches as validation) and on the validation tasks
(never trained on), so that a reader can tell under-fitting (both low) from a failure
to transfer (training high, validation low). Variants already trained are reused
(a run folder with ``best.pt`` and a finished ``last.pt``); an interrupted one resumes.

Examples::

    python benchmarks/recipe_study.py --data runs/quick/phantoms --out runs/study --variants paper +warmup+groups
    python benchmarks/recipe_study.py --data runs/quick/phantoms --out runs/study --report
    python benchmarks/recipe_study.py --data runs/quick/phantoms --out runs/study \
        --score runs/quick/train-quick/best.pt runs/reference/best.pt

``--score`` scores trained checkpoints (of any length of training) the same two ways,
with ``--supports`` supports per task on both sides, without training anything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from hyperkit.config import load_profile
from hyperkit.training.checkpoint import load_checkpoint, load_hypernet
from hyperkit.training.fit_gap import fit_gap
from hyperkit.training.loop import ensure_trained, read_jsonl, run_state

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
    on_train = fit_gap(model, cfg, args.data, n_supports=1, n_queries=args.queries)
    summary = {"variant": name, "overrides": VARIANTS[name], "episodes": curve[-1]["episode"],
               "best_episode": best["episode"], "best_val_dice": round(best["dice"], 4),
               "train_task_dice": round(on_train.train_dice, 4),
               "train_per_group": {g: round(v, 3) for g, v in on_train.per_group.items()},
               "first_nonzero_episode": next((r["episode"] for r in curve if r["dice"] >= 0.05), None),
               "train_minutes": round(curve[-1]["wall_seconds"] / 60, 2),
               "curve": [[r["episode"], round(r["wall_seconds"], 1), r["dice"]] for r in curve]}
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def score_checkpoints(paths: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Training-task and validation-task one-shot Dice of trained checkpoints, the same supports and queries."""
    torch.set_flush_denormal(True)
    rows = []
    for path in paths:
        model, cfg = load_hypernet(path)
        res = fit_gap(model, cfg, args.data, n_supports=args.supports, n_queries=args.queries)
        rows.append({"checkpoint": path, "episode": load_checkpoint(path)["state"]["episode"],
                     "train_task_dice": round(res.train_dice, 4), "val_dice": round(res.val_dice, 4),
                     "train_per_group": {g: round(v, 3) for g, v in res.per_group.items()},
                     "val_per_task": {t: round(v, 3) for t, v in res.val_per_task.items()}})
        print(f"{path} (episode {rows[-1]['episode']}): train tasks {res.train_dice:.3f} "
              f"({len(res.train_per_task)} tasks), validation tasks {res.val_dice:.3f} ({len(res.val_per_task)} tasks)")
    out = Path(args.out) / "scores.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"written: {out}")
    return rows


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
    ap.add_argument("--supports", type=int, default=1, help="supports per task in --score (each scored on --queries)")
    ap.add_argument("--score", nargs="+", metavar="CHECKPOINT", default=None,
                    help="only score these trained checkpoints on training and validation tasks")
    ap.add_argument("--report", action="store_true", help="only print the table of finished variants")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if args.score:
        score_checkpoints(args.score, args)
        return
    if not args.report:
        for name in args.variants:
            s = run_variant(name, args)
            print(f"{name}: best val {s['best_val_dice']:.3f} at {s['best_episode']}, "
                  f"train tasks {s['train_task_dice']:.3f}")
    report(Path(args.out))


if __name__ == "__main__":
    main()
