"""Cases preprocessed one after the other against side by side (``fill_cache``, ``hyperkit train --workers``).

Each row preprocesses every case of every dataset in ``--data`` into an empty cache, in a fresh process (its peak
resident memory is its own), with ``--workers`` cases at once (1: one after the other at the process's thread
count); the rows alternate over ``--rounds``. The caches of all rows are then compared file by file: the same arrays,
bit for bit, whatever the number of workers.

    python benchmarks/preprocess_workers.py --data runs/quick/phantoms --workers 1 2 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bank_storage import _peak_rss_gib  # a sibling script: this process's peak resident memory

ROOT = Path(__file__).resolve().parents[1]


def measure(data: str, profile: str, workers: int, cache: str) -> dict:
    """Fill an empty cache with every case of ``data``; the seconds, cases and peak memory."""
    from hyperkit.config import load_profile
    from hyperkit.data.layouts import discover_datasets
    from hyperkit.data.preprocess import DataConfig, fill_cache

    cfg = DataConfig.from_config(load_profile(profile))
    t0 = time.perf_counter()
    cases = sum(fill_cache(ds, [c.case_id for c in ds.cases], cfg, cache, workers) for ds in discover_datasets(data))
    seconds = time.perf_counter() - t0
    return {"workers": workers, "cases": cases, "seconds": round(seconds, 1), "peak_rss_gib": round(_peak_rss_gib(), 2)}


def _same(a: Path, b: Path) -> bool:
    """The same files holding the same arrays, bit for bit (an ``.npz`` is a zip: its entries carry their time)."""
    import numpy as np

    names = sorted(p.name for p in a.glob("*.npz"))
    if names != sorted(p.name for p in b.glob("*.npz")):
        return False
    for n in names:
        with np.load(a / n) as x, np.load(b / n) as y:
            if x.files != y.files or not all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k])
                                             for k in x.files):
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="data folder (e.g. runs/quick/phantoms)")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("WORKERS", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.data, args.profile, int(args.one[0]), args.one[1])))
        return
    if min(args.workers) < 1 or args.rounds < 1:
        ap.error(f"--workers must be >= 1 and --rounds >= 1, got {args.workers} and {args.rounds}")
    rows, caches = [], []
    scratch = Path(tempfile.mkdtemp(prefix="hk-pp-"))
    try:
        for r in range(args.rounds):
            for w in (args.workers if r % 2 == 0 else args.workers[::-1]):
                cache = scratch / f"r{r}-w{w}"
                out = subprocess.run([sys.executable, __file__, "--data", args.data, "--profile", args.profile,
                                      "--one", str(w), str(cache)], capture_output=True, text=True, cwd=ROOT,
                                     check=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                caches.append(cache)
        same = all(_same(caches[0], c) for c in caches[1:])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"`{args.profile}` preprocessing of every case in {args.data} ({rows[0]['cases']} cases), "
          f"{args.rounds} round(s)\n")
    print("| workers | seconds (each round) | median | peak RSS (GiB) |")
    print("|---:|---|---:|---:|")
    for w in args.workers:
        mine = [r for r in rows if r["workers"] == w]
        print(f"| {w} | {' / '.join(str(r['seconds']) for r in mine)} | "
              f"{statistics.median(r['seconds'] for r in mine):.1f} | {max(r['peak_rss_gib'] for r in mine)} |")
    print(f"\nthe caches hold {'the same arrays' if same else 'DIFFERENT arrays'} in every row")


if __name__ == "__main__":
    main()
