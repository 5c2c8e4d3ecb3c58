"""Compare the Conv / All U-Net rows of finished evaluations: same results, and the training time.

Each ``RUN`` is ``label=path/to/results.csv`` of a ``hyperkit evaluate`` run with ``conv_unet``
and / or ``all_unet`` rows on the same targets and test cases (the same data, seed and
splits). For each baseline the script prints, per target, the test DSC of every run; then the
paired difference of every run against the first over the (target, case) pairs, with a 95 %
bootstrap CI; and from each run's ``results.json``: the steps, the training seconds (summed
over the U-Nets) and the precision and threads recorded per training.

Used for the mixed-precision baselines (BENCHMARKS.md, "Mixed precision for the baselines"):
two fp32 runs of the same code give the run-to-run spread that a bf16 run is read against.

    python benchmarks/baseline_runs.py fp32=runs/quick/eval-quick-bce1/results.csv \\
        fp32-again=/tmp/repro/eval-quick/results.csv bf16=runs/quick/eval-amp/results.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from hyperkit.evaluation.results_file import read_results
from hyperkit.evaluation.stats import paired_difference

METHODS = ("conv_unet", "all_unet")


def results_arg(spec: str) -> tuple[str, Path]:
    """``label=path/to/results.csv`` as ``(label, path)``; an argparse error for a malformed or missing one."""
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected label=results.csv, got {spec!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such results file")
    return label, Path(path)


def scores(path: Path, method: str) -> dict[tuple[str, str], float]:
    """``{(task, case): DSC}`` of ``method``'s rows in ``path``."""
    return {(r["task"], r["case"]): float(r["dsc"]) for r in read_results(path) if r["method"] == method}


def facts(path: Path, method: str) -> dict[str, Any]:
    """Steps, seconds, precision and threads of ``method``'s trainings from the run's ``results.json``."""
    record = json.loads(path.with_suffix(".json").read_text())
    b = record.get("baselines", {}).get(method, {})
    if method == "all_unet":
        b = {"all": b} if b else {}
    rows = [f for f in b.values() if isinstance(f, dict) and "steps" in f]
    return {"steps": sum(f["steps"] for f in rows), "seconds": sum(f.get("seconds", 0.0) for f in rows),
            "precision": sorted({f.get("precision", "fp32") for f in rows}),
            "threads": sorted({f.get("threads", 0) for f in rows}), "trainings": len(rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=results_arg, help="label=results.csv; the first is the reference")
    args = ap.parse_args()
    runs: list[tuple[str, Path]] = args.runs
    for method in METHODS:
        per = {label: scores(path, method) for label, path in runs}
        per = {k: v for k, v in per.items() if v}
        if len(per) < 1:
            continue
        labels = list(per)
        print(f"\n### {method}\n")
        print("| target | " + " | ".join(labels) + " |")
        print("|---|" + "---:|" * len(labels))
        by_task: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for label, sc in per.items():
            for (task, _case), d in sc.items():
                by_task[task][label].append(d)
        for task in sorted(by_task):
            cells = [f"{sum(v) / len(v):.3f}" if (v := by_task[task].get(label)) else "—" for label in labels]
            print(f"| {task.split('/', 1)[-1]} | " + " | ".join(cells) + " |")
        ref = labels[0]
        for label in labels[1:]:
            keys = sorted(set(per[ref]) & set(per[label]))
            if not keys:
                continue
            p = paired_difference([per[label][k] for k in keys], [per[ref][k] for k in keys],
                                  units=[(task, 0, case) for task, case in keys])  # each target's cases resampled
            print(f"\n{label} - {ref}: mean DSC {p.b:.3f} -> {p.a:.3f}, difference {p.diff:+.3f} "
                  f"[95 % CI {p.lo:+.3f}, {p.hi:+.3f}] over {p.n} (target, case) pairs")
        print()
        for label, path in runs:
            if label in per:
                f = facts(path, method)
                print(f"- {label}: {f['trainings']} training(s), {f['steps']} steps, {f['seconds'] / 60:.1f} min of "
                      f"training time, precision {', '.join(f['precision'])}, threads {f['threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
