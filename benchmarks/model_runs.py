"""Compare trained hypernetworks on the same held-out draws: Hyper U-Net DSC, CT and MRI apart.

Each ``RUN`` is ``label=path/to/results.csv`` of ``hyperkit evaluate --methods hyper_unet`` (other
methods' rows are ignored) with the same data, evaluation seed and profile, so that every model
is scored on the same supports and test cases. The label's part before the first ``:`` names the
arm (a recipe), the rest the training (e.g. ``wide:s0``, ``wide:s1``, ``paper:s0``).

The script prints, per held-out task, each run's mean DSC; then for every pair of runs the paired
difference (second - first) over the (task, draw, case) rows both runs have (the rows the means
are taken over), pooled over the CT tasks and over the MRI tasks (a task is CT when its channel
is ``CT``), with a 95 % bootstrap CI. Pairs of
runs of the same arm show the training-to-training spread that a difference between arms is read
against. Last, per arm: each training's mean (over the rows) and the arms' means over their
trainings, CT and MRI apart. The row CIs hold one model fixed; the unit that replicates a recipe
is a training, so an arm difference smaller than the spread between two trainings of one arm is
not resolved, however narrow the row CIs; with two arms the script also gives the difference of
the arms' means with a Welch t interval over the trainings.

    python benchmarks/model_runs.py wide:s0=runs/study-intensity/eval-wide-s0/results.csv \\
        wide:s1=runs/study-intensity/eval-wide-s1/results.csv \\
        paper:s0=runs/study-intensity/eval-paper-s0/results.csv \\
        paper:s1=runs/study-intensity/eval-paper-s1/results.csv
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from scipy import stats

from baseline_runs import results_arg  # the same label=results.csv argument (a sibling script)
from hyperkit.data.tasks import modality_of, task_parts
from hyperkit.evaluation.results_file import read_results
from hyperkit.evaluation.stats import ALL_TASKS, paired_tasks


def modality(task: str) -> str:
    """The modality of a task id's channel (``.../liver@CT`` -> ``"CT"``), by the kit's own rule."""
    return modality_of(task_parts(task).channel)


def arm_of(label: str) -> str:
    """The arm of a run label: its part before the first ``:`` (``wide:s0`` -> ``wide``)."""
    return label.split(":")[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=results_arg, help="arm:training=results.csv")
    ap.add_argument("--metric", default="dsc", choices=("dsc", "nsd", "nsd_voxel"))
    args = ap.parse_args()
    rows = {label: [r for r in read_results(path) if r["method"] == "hyper_unet"] for label, path in args.runs}
    if any(not r for r in rows.values()):
        print(f"no hyper_unet rows in {[k for k, r in rows.items() if not r]}", file=sys.stderr)
        return 2
    labels = list(rows)
    first = labels[0]
    print(f"| task | modality | " + " | ".join(labels) + " |")
    print("|---|---|" + "---:|" * len(labels))
    tasks = sorted({r["task"] for r in rows[first]}, key=lambda t: (modality(t), t))
    for task in tasks:
        means = []
        for label in labels:
            vals = [float(r[args.metric]) for r in rows[label] if r["task"] == task]
            means.append(f"{sum(vals) / len(vals):.3f}" if vals else "—")
        print(f"| {task.split('/', 1)[-1]} | {modality(task)} | " + " | ".join(means) + " |")
    print(f"\n| pair (second - first) | CT: mean {args.metric} first -> second, difference [95 % CI] (pairs) "
          "| MRI: the same |")
    print("|---|---|---|")
    for a, b in itertools.combinations(labels, 2):
        tasks = {r["task"] for r in rows[b]}
        cells = []
        for mod in ("CT", "MRI"):
            part = paired_tasks(rows[b], rows[a], args.metric, test_only=False,  # the rows the means use
                                tasks={t for t in tasks if modality(t) == mod}, pool=ALL_TASKS)
            if not part:
                cells.append("—")
                continue
            p = part[ALL_TASKS]
            cells.append(f"{p.b:.3f} -> {p.a:.3f}, {p.diff:+.3f} [{p.lo:+.3f}, {p.hi:+.3f}] ({p.n})")
        same = arm_of(a) == arm_of(b)
        print(f"| {b} - {a}{' (same arm)' if same else ''} | " + " | ".join(cells) + " |")
    print_arms(rows, args.metric)
    return 0


def arm_means(rows: dict[str, list[dict]], metric: str) -> dict[str, dict[str, list[float]]]:
    """``{arm: {modality: [mean metric of each training of the arm, in label order]}}``."""
    out: dict[str, dict[str, list[float]]] = {}
    for label, rs in rows.items():
        arm = arm_of(label)
        for mod in ("CT", "MRI"):
            vals = [float(r[metric]) for r in rs if modality(r["task"]) == mod]
            if vals:
                out.setdefault(arm, {}).setdefault(mod, []).append(sum(vals) / len(vals))
    return out


def print_arms(rows: dict[str, list[dict]], metric: str) -> None:
    """Per arm: the trainings' means and their mean, CT and MRI apart (a training is the replicate)."""
    arms = arm_means(rows, metric)
    print(f"\n| arm | trainings | CT: mean {metric} per training -> arm mean | MRI: the same |")
    print("|---|---:|---|---|")
    for arm, mods in arms.items():
        cells = []
        for mod in ("CT", "MRI"):
            v = mods.get(mod, [])
            cells.append(" / ".join(f"{x:.3f}" for x in v) + f" -> {sum(v) / len(v):.3f}" if v else "—")
        print(f"| {arm} | {max(len(v) for v in mods.values())} | " + " | ".join(cells) + " |")
    names = list(arms)
    if len(names) == 2:
        first, second = names
        for mod in ("CT", "MRI"):
            a, b = arms[first].get(mod, []), arms[second].get(mod, [])
            if len(a) >= 2 and len(b) >= 2:
                t = stats.ttest_ind(a, b, equal_var=False)
                ci = t.confidence_interval(0.95)
                print(f"\n{mod}: {first} - {second}, difference of the arms' means over trainings "
                      f"{sum(a) / len(a) - sum(b) / len(b):+.3f}, Welch 95 % CI [{ci.low:+.3f}, {ci.high:+.3f}] "
                      f"(p = {t.pvalue:.2f}; {len(a)} and {len(b)} trainings)")


if __name__ == "__main__":
    sys.exit(main())
