"""One-shot validation DSC against the training budget: trainings of several lengths on one axis of task-episodes.

Issue 10 puts the quick model's shortfall (validation DSC 0.09-0.19 against the aim of 0.45) down to its budget:
about 2,000 task-episodes in 15 minutes on two cores, where the paper trains 20,000 episodes. Each ``RUN`` is
``label=run_folder`` of ``hyperkit train`` (its ``config.yaml`` and ``validation.jsonl``); the label's part before
the first ``:`` names the arm (a recipe or a budget), the rest the training (``default:s0``, ``ref:s1``).

The script prints, per run, its budget (episodes x ``train.tasks_per_episode`` = task-episodes; minutes of training
steps, validations not counted, as ``validation.jsonl`` records them), the best validation DSC (the episode
``best.pt`` holds) and the mean of the last ``--last`` validations. The best is the maximum of noisy validations and
a longer run validates more often, so it favours long runs; the mean of the last validations does not. Then a
least-squares line of that mean against log2(task-episodes) over all runs (the training is the replicate): the
gain per doubling of the budget with its 95 % CI and, where that interval is above 0, where the line would reach
``--aim``. That point is an extrapolation beyond the measured budgets and is printed as one, not as a prediction.
The figure (``--out``) shows every run's validation curve against task-episodes and against minutes, coloured by
arm.

    python benchmarks/budget_curves.py default:s0=runs/quick/train-quick ref:s1=runs/seeds/ref-s1 \\
        ref4k:s0=runs/budget/ref4k-s0 --out runs/budget/budget.png
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from scipy import stats  # noqa: E402

from model_runs import arm_of  # noqa: E402  (the arm of a label, a sibling script)
from hyperkit.files import read_jsonl  # noqa: E402
from hyperkit.plots import best_validation  # noqa: E402


def run_arg(spec: str) -> tuple[str, Path]:
    """``label=run_folder`` as ``(label, path)``; an argparse error for a malformed one or a folder without runs."""
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected label=run_folder, got {spec!r}")
    run = Path(path)
    for name in ("config.yaml", "validation.jsonl"):
        if not (run / name).is_file():
            raise argparse.ArgumentTypeError(f"{path}: no {name} (not a hyperkit train run folder)")
    return label, run


def budget(label: str, run: Path, last: int) -> dict[str, Any]:
    """One run's budget and validation summary (see the module docstring)."""
    per_episode = int(yaml.safe_load((run / "config.yaml").read_text())["train"]["tasks_per_episode"])
    rows = [r for r in read_jsonl(run / "validation.jsonl") if r["episode"] > 0]
    if len(rows) < last:
        raise ValueError(f"{run}: {len(rows)} validations after episode 0, fewer than --last {last}")
    episode, best = best_validation(rows)
    tail = [r["dice"] for r in rows[-last:]]
    return {"label": label, "arm": arm_of(label), "tasks_per_episode": per_episode,
            "episodes": rows[-1]["episode"], "task_episodes": rows[-1]["episode"] * per_episode,
            "minutes": rows[-1].get("wall_seconds", math.nan) / 60, "best": best, "best_episode": episode,
            "last_mean": sum(tail) / len(tail), "rows": rows}


def table(runs: list[dict[str, Any]], last: int) -> str:
    head = ("| run | episodes | tasks per episode | task-episodes | minutes of training steps "
            f"| best validation DSC (episode) | mean of the last {last} validations |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['label']} | {r['episodes']} | {r['tasks_per_episode']} | {r['task_episodes']:,} "
              f"| {r['minutes']:.1f} | {r['best']:.3f} ({r['best_episode']}) | {r['last_mean']:.3f} |" for r in runs]
    return "\n".join(lines)


def doubling_fit(runs: list[dict[str, Any]], aim: float) -> str:
    """The line of the last-validations mean against log2(task-episodes): gain per doubling, 95 % CI and, where the
    interval is above 0, where it reaches ``aim``; a sentence saying why not for fewer than three runs or one
    budget."""
    x = [math.log2(r["task_episodes"]) for r in runs]
    y = [r["last_mean"] for r in runs]
    if len(runs) < 3 or len(set(x)) < 2:
        return "fit: needs at least three runs of at least two budgets"
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.975, len(runs) - 2) * fit.stderr
    text = (f"fit over {len(runs)} runs: {fit.slope:+.3f} DSC per doubling of the task-episodes "
            f"[95 % CI {fit.slope - half:+.3f}, {fit.slope + half:+.3f}]")
    if fit.slope - half <= 0:
        text += "; the interval includes 0 (no gain resolved), so no budget is read off the line"
    else:
        need = 2 ** ((aim - fit.intercept) / fit.slope)
        text += (f"; the line reaches {aim:.2f} at about {need:,.0f} task-episodes "
                 f"({need / max(r['task_episodes'] for r in runs):.0f}x the longest run: an extrapolation)")
    return text


def figure(runs: list[dict[str, Any]], path: Path) -> None:
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    colours = {a: plt.get_cmap("tab10")(i % 10) for i, a in enumerate(arms)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for r in runs:
        y = [v["dice"] for v in r["rows"]]
        axes[0].plot([v["episode"] * r["tasks_per_episode"] for v in r["rows"]], y, lw=1, color=colours[r["arm"]],
                     label=r["label"])
        axes[1].plot([v.get("wall_seconds", math.nan) / 60 for v in r["rows"]], y, lw=1, color=colours[r["arm"]])
    axes[0].set(xscale="log", xlabel="task-episodes (log scale)", ylabel="one-shot validation DSC",
                title="validation against the training budget")
    axes[1].set(xlabel="minutes of training steps", title="against wall time (two cores)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=run_arg, help="arm:training=run_folder")
    ap.add_argument("--last", type=int, default=5, help="validations averaged at each run's end (default 5)")
    ap.add_argument("--aim", type=float, default=0.45, help="the DSC the fitted line is read at (default 0.45)")
    ap.add_argument("--out", type=Path, default=None, help="the figure (PNG); none without it")
    args = ap.parse_args(argv)
    if args.last < 1:
        ap.error(f"--last must be at least 1, got {args.last}")
    try:
        runs = [budget(label, run, args.last) for label, run in args.runs]
    except ValueError as e:
        print(f"budget_curves: {e}", file=sys.stderr)
        return 2
    print(table(runs, args.last))
    print()
    print(doubling_fit(runs, args.aim))
    if args.out is not None:
        figure(runs, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
