"""The one-shot checks of BENCHMARKS.md from ``hyperkit evaluate`` results (no model is run).

For every task in a results CSV: mean DSC of the Hyper U-Net, Rand U-Net and copying the
support mask, and the paired differences Hyper - Rand and Hyper - copy over the same
(draw, test case) pairs with a 95 % bootstrap confidence interval (2,000 resamples of each
task's draws and test cases, seeded: :func:`hyperkit.evaluation.stats.paired_tasks`, which
notebooks and tables use too); it counts the tasks above by the means and, apart, by the
interval's lower end as printed (``Paired.above_zero``, the report's rule). With ``--compare``
a second results file (another checkpoint or budget, same protocol) is set beside the first:
the paired difference of their Hyper U-Nets (``--method``: of another method's rows, e.g.
``conv_unet`` trained with two budgets).

Examples::

    python benchmarks/one_shot_checks.py runs/quick/eval-heldout/results.csv
    python benchmarks/one_shot_checks.py runs/reference-eval/results.csv --compare runs/quick/eval-heldout/results.csv
    python benchmarks/one_shot_checks.py runs/study/conv3x/results.csv --compare runs/quick/eval-quick/results.csv \
        --method conv_unet
"""

from __future__ import annotations

import argparse
import fnmatch
from pathlib import Path

from hyperkit.data.tasks import task_parts
from hyperkit.evaluation.results_file import read_results
from hyperkit.evaluation.stats import ALL_TASKS, Paired, paired_tasks
from hyperkit.evaluation.tables import task_map


def _name(task: str, patterns: dict[str, str]) -> str:
    """The paper's name of a table target (``liver``), else the task id without its layout."""
    return next((c for c, pat in patterns.items() if fnmatch.fnmatch(task, pat)),
                f"{task_parts(task).dataset}/{task_parts(task).short}")


def report(path: Path, compare: Path | None, method: str = "hyper_unet") -> None:
    rows = read_results(path)
    names = task_map()
    hr, hc = (paired_tasks(rows, rows, "dsc", "hyper_unet", b, test_only=False) for b in ("rand_unet", "copy_support"))
    print(f"results: {path}\n")
    print("| task | Hyper DSC | Rand DSC | copy DSC | Hyper - Rand [95 % CI] | Hyper - copy [95 % CI] | pairs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    wins_r, wins_c = sum(p.diff > 0 for p in hr.values()), sum(p.diff > 0 for p in hc.values())
    n_r, n_c = len(hr), len(hc)
    for task in sorted(set(hr) | set(hc)):
        cells = [pairs[task].text() if task in pairs else "—" for pairs in (hr, hc)]
        side = lambda pairs, b=False: (f"{pairs[task].b if b else pairs[task].a:.3f}" if task in pairs else "—")
        n = (hr.get(task) or hc[task]).n
        print(f"| {_name(task, names)} | {side(hr) if task in hr else side(hc)} | {side(hr, True)} | "
              f"{side(hc, True)} | {cells[0]} | {cells[1]} | {n} |")
    print(f"\nHyper > Rand on {wins_r} of {n_r} tasks; Hyper > copy on {wins_c} of {n_c} tasks (means)")
    sure_r, sure_c = sum(p.above_zero for p in hr.values()), sum(p.above_zero for p in hc.values())
    print(f"interval above 0 as printed: Hyper - Rand on {sure_r} of {n_r} tasks; Hyper - copy on {sure_c} of {n_c}")
    if compare is not None:
        per = paired_tasks(rows, read_results(compare), "dsc", method, method, test_only=False, pool=ALL_TASKS)
        if not per:
            raise SystemExit(f"no {method} rows on the same (task, draw, case) in {path} and {compare}")
        total: Paired = per.pop(ALL_TASKS)
        for task, p in per.items():
            print(f"{_name(task, names)}: {p.diff:+.3f} ({p.n} pairs)")
        better = sum(p.diff > 0 for p in per.values())
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
