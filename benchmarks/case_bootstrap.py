"""Paired 95 % intervals two ways: over (draw, case) rows, as the kit computes them, and over test cases.

Every draw of the one-shot protocol is scored on the same test cases, so the rows of one task are not
independent pairs. This script puts the kit's interval (``stats.paired_difference``: a percentile
bootstrap over the rows) beside a bootstrap that resamples whole test cases (all draws of a case
together), per task, for Hyper U-Net against a baseline (BENCHMARKS, "The intervals are too narrow").

    python benchmarks/case_bootstrap.py runs/reproduce-quick/eval-quick/results.csv --against rand_unet copy_support
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from hyperkit.evaluation.protocol import read_results
from hyperkit.evaluation.stats import compared, pair_rows, paired_difference


def case_interval(rows: list[dict], task: str, a: str, b: str, resamples: int = 2000,
                  seed: int = 0) -> tuple[float, float, int]:
    """95 % percentile interval of mean(a − b) over the compared rows of ``task``, resampling test cases."""
    keep = compared(rows)
    by = {m: {(r["draw"], r["case"]): float(r["dsc"]) for r in rows
              if keep(r) and r["task"] == task and r["method"] == m} for m in (a, b)}
    per_case: dict[str, list[float]] = defaultdict(list)
    for key in sorted(set(by[a]) & set(by[b])):
        per_case[key[1]].append(by[a][key] - by[b][key])
    cases = sorted(per_case)
    if not cases:
        raise ValueError(f"no paired rows of {a!r} and {b!r} for task {task!r}")
    rng = np.random.default_rng(seed)
    means = [np.concatenate([per_case[cases[i]] for i in rng.integers(0, len(cases), len(cases))]).mean()
             for _ in range(resamples)]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi), len(cases)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a results.csv of `hyperkit evaluate`")
    ap.add_argument("--against", nargs="+", default=["rand_unet"], help="baseline methods")
    args = ap.parse_args(argv)
    rows = read_results(args.results)
    for base in args.against:
        held = {"rows": 0, "cases": 0}
        pairs = pair_rows(rows, rows, "dsc", "hyper_unet", base)
        if not pairs:
            raise SystemExit(f"{args.results}: no paired rows of hyper_unet and {base}")
        print(f"hyper_unet − {base}: task, pairs, cases, interval over rows, interval over cases")
        for task, (x, y) in pairs.items():
            p = paired_difference(x, y)
            lo, hi, n_cases = case_interval(rows, task, "hyper_unet", base)
            held["rows"] += p.lo > 0
            held["cases"] += lo > 0
            print(f"  {task:46s} {p.n:3d} {n_cases:2d}  {p.text():28s} [{lo:+.3f}, {hi:+.3f}]")
        print(f"  lower end above 0: {held['rows']} of {len(pairs)} (rows), {held['cases']} of {len(pairs)} (cases)")


if __name__ == "__main__":
    main()
