"""The one-shot checks of BENCHMARKS.md from ``hyperkit evaluate`` results (no model is run).

For every task in a results CSV: mean DSC of the Hyper U-Net, Rand U-Net and copying the
support mask, and the paired differences Hyper - Rand and Hyper - copy over the same
(draw, test case) pairs with a 95 % bootstrap confidence interval (2,000 resamples of the
pairs, seeded: :func:`hyperkit.evaluation.stats.paired_difference`, which notebooks and
tables use too). With ``--compare`` a second results file (another checkpoint or budget, same
protocol) is set beside the first: the paired difference of their Hyper U-Nets (``--method``:
of another method's rows, e.g. ``conv_unet`` trained with two budgets).

Examples::

    python benchmarks/one_shot_checks.py runs/quick/eval-heldout/results.csv
    python benchmarks/one_shot_checks.py runs/reference-eval/results.csv --compare runs/quick/eval-heldout/results.csv
    python benchmarks/one_shot_checks.py runs/study/conv3x/results.csv --compare runs/quick/eval-quick/results.csv \
        --method conv_unet
"""

from __future__ import annotations

import argparse
import fnmatch
import statistics
from pathlib import Path

from hyperkit.evaluation.protocol import read_results
from hyperkit.evaluation.stats import pair_rows, paired_difference, pooled
from hyperkit.evaluation.tables import task_map


def _paired(rows: list[dict], a: str, b: str) -> dict[str, list[tuple[float, float]]]:
    """task -> [(dsc of method a, dsc of method b)] over the same (draw, case) (:func:`pair_rows`)."""
    return {task: list(zip(xs, ys)) for task, (xs, ys) in pair_rows(rows, rows, "dsc", a, b, test_only=False).items()}


def bootstrap_ci(diffs: list[float]) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of ``diffs`` (the kit's :func:`paired_difference`)."""
    p = paired_difference(diffs, [0.0] * len(diffs))
    return p.lo, p.hi


def _name(task: str, patterns: dict[str, str]) -> str:
    """The paper's name of a table target (``liver``), else the task id without its layout."""
    return next((c for c, pat in patterns.items() if fnmatch.fnmatch(task, pat)), task.split("/", 1)[1])


def report(path: Path, compare: Path | None, method: str = "hyper_unet") -> None:
    rows = read_results(path)
    names = task_map()
    hr, hc = _paired(rows, "hyper_unet", "rand_unet"), _paired(rows, "hyper_unet", "copy_support")
    print(f"results: {path}\n")
    print("| task | Hyper DSC | Rand DSC | copy DSC | Hyper - Rand [95 % CI] | Hyper - copy [95 % CI] | pairs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    wins_r = wins_c = n_r = n_c = 0
    for task in sorted(set(hr) | set(hc)):
        cells = []
        for pairs, label in ((hr, "r"), (hc, "c")):
            if task in pairs:
                d = [a - b for a, b in pairs[task]]
                lo, hi = bootstrap_ci(d)
                cells.append(f"{statistics.fmean(d):+.3f} [{lo:+.3f}, {hi:+.3f}]")
                if label == "r":
                    n_r += 1
                    wins_r += statistics.fmean(d) > 0
                else:
                    n_c += 1
                    wins_c += statistics.fmean(d) > 0
            else:
                cells.append("—")
        mean = lambda pairs, i: f"{statistics.fmean(p[i] for p in pairs[task]):.3f}" if task in pairs else "—"
        n = len(hr.get(task, hc.get(task, [])))
        print(f"| {_name(task, names)} | {mean(hr, 0) if task in hr else mean(hc, 0)} | {mean(hr, 1)} | "
              f"{mean(hc, 1)} | {cells[0]} | {cells[1]} | {n} |")
    print(f"\nHyper > Rand on {wins_r} of {n_r} tasks; Hyper > copy on {wins_c} of {n_c} tasks (means)")
    if compare is not None:
        per = pair_rows(rows, read_results(compare), "dsc", method, method, test_only=False)
        if not per:
            raise SystemExit(f"no {method} rows on the same (task, draw, case) in {path} and {compare}")
        total = paired_difference(*pooled(per))
        for task, (xs, ys) in per.items():
            print(f"{_name(task, names)}: {statistics.fmean(xs) - statistics.fmean(ys):+.3f} ({len(xs)} pairs)")
        better = sum(statistics.fmean(xs) > statistics.fmean(ys) for xs, ys in per.values())
        print(f"\n{method} of {path.parent.name} minus that of {compare.parent.name}: mean DSC difference "
              f"{total.diff:+.3f} [95 % CI {total.lo:+.3f}, {total.hi:+.3f}] over {total.n} pairs; "
              f"higher on {better} of {len(per)} tasks")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--compare", type=Path, default=None, help="a second results CSV (same protocol)")
    ap.add_argument("--method", default="hyper_unet", help="whose rows --compare pairs (default hyper_unet)")
    args = ap.parse_args()
    report(args.results, args.compare, args.method)


if __name__ == "__main__":
    main()
