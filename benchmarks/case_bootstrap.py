"""Paired 95 % intervals three ways, per task: over (draw, case) rows, over draws and cases, and the kit's.

Every draw of the one-shot protocol is scored on the same test cases, so the rows of one task are not
independent pairs. This script puts three bootstraps of ``stats.paired_difference`` side by side for
Hyper U-Net against a baseline: the plain percentile interval over the rows as independent pairs
(what the kit did until 2026-12-04), the plain percentile interval over the support draws and test
cases resampled independently (the kit on 2026-12-04), and the kit's interval (``stats.paired_tasks``,
here from ``stats.pair_units``: the same two-way bootstrap with the small-sample corrections of
``hyperkit.evaluation.stats``). BENCHMARKS, "Confidence intervals".

    python benchmarks/case_bootstrap.py runs/reproduce-quick/eval-quick/results.csv --against rand_unet copy_support
"""

from __future__ import annotations

import argparse

from hyperkit.evaluation.results_file import read_results
from hyperkit.evaluation.stats import pair_rows, pair_units, paired_difference


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a results.csv of `hyperkit evaluate`")
    ap.add_argument("--against", nargs="+", default=["rand_unet"], help="baseline methods")
    args = ap.parse_args(argv)
    rows = read_results(args.results)
    for base in args.against:
        pairs = pair_rows(rows, rows, "dsc", "hyper_unet", base)
        units = pair_units(rows, rows, "dsc", "hyper_unet", base)
        if not pairs:
            raise SystemExit(f"{args.results}: no paired rows of hyper_unet and {base}")
        held = {"rows": 0, "two-way": 0, "kit": 0}
        print(f"hyper_unet − {base}: task, pairs, cases, interval over rows, over draws and cases (plain), "
              "the kit's (with the small-sample corrections)")
        for task, (x, y) in pairs.items():
            row = paired_difference(x, y, small_sample=False)
            plain = paired_difference(x, y, units=units[task], small_sample=False)
            kit = paired_difference(x, y, units=units[task])  # = stats.paired_tasks(...)[task]
            held["rows"] += row.above_zero  # as printed, the report's rule
            held["two-way"] += plain.above_zero
            held["kit"] += kit.above_zero
            n_cases = len({c for _, _, c in units[task]})
            print(f"  {task:46s} {row.n:3d} {n_cases:2d}  {row.text():26s} {plain.text():26s} {kit.text()}")
        print(f"  lower end above 0: {held['rows']} of {len(pairs)} (rows), {held['two-way']} of {len(pairs)} "
              f"(draws and cases, plain), {held['kit']} of {len(pairs)} (the kit)")


if __name__ == "__main__":
    main()
