"""The training bank in memory against on disk (``hyperkit train --bank``): peak memory, build time, episode time.

Each storage is measured in a fresh process (its peak resident memory, ``VmHWM``, is its own): build the
profile's training bank from the data folder (the preprocessing cache filled beforehand, so that both read
the same cached cases; the disk bank is measured twice, writing its cases and then reusing them), then
draw ``--episodes`` episodes (``TaskBank.sample``, group-balanced, the profile's tasks per episode) and
report the median seconds per episode. The episodes of the two storages are compared (their sum), which
the test suite checks bit for bit.

    HYPERKIT_CACHE=CACHE python benchmarks/bank_storage.py --data runs/quick/phantoms --store /tmp/banks
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_gib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


def measure(data: str, profile: str, storage: str, store: str, episodes: int) -> dict:
    """Build the training bank one way and draw episodes; what it cost."""
    import torch

    from hyperkit.config import DataConfig, TrainConfig, load_profile
    from hyperkit.data.bank import TaskBank
    from hyperkit.data.layouts import discover_datasets

    cfg = load_profile(profile)
    tcfg = TrainConfig.from_config(cfg)
    margin = DataConfig.from_config(cfg).max_shift
    datasets = discover_datasets(data)
    t0 = time.perf_counter()
    bank = TaskBank.from_datasets(datasets, "train", cfg, case_splits=tcfg.train_splits, margin=margin,
                                  store=store if storage != "memory" else None)
    build = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    times, total = [], 0.0
    for _ in range(episodes):
        t = time.perf_counter()
        ep = bank.sample(tcfg.tasks_per_episode, g, tcfg.task_sampling)
        times.append(time.perf_counter() - t)
        total += float(ep.support_images.sum() + ep.query_images.sum() + ep.support_masks.sum())
    bound = TaskBank.bytes_bound(datasets, "train", cfg, case_splits=tcfg.train_splits, margin=margin)
    return {"storage": storage, "tasks": len(bank), "cubes": sum(len(v) for v in bank.case_ids.values()),
            "build_s": round(build, 1), "episode_ms_median": round(1000 * statistics.median(times), 2),
            "peak_rss_gib": round(_peak_rss_gib(), 2), "bound_gib": round(bound / 2 ** 30, 2), "checksum": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="data folder (e.g. runs/quick/phantoms)")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--store", required=True, help="folder for the disk bank (emptied first)")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--storages", default="memory,disk-write,disk-reuse",
                    help="which to measure, comma-separated (leave out memory where the bank does not fit in it)")
    ap.add_argument("--one", choices=("memory", "disk-write", "disk-reuse"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.data, args.profile, args.one, args.store, args.episodes)))
        return
    storages = [x.strip() for x in args.storages.split(",") if x.strip()]
    bad = sorted(set(storages) - {"memory", "disk-write", "disk-reuse"})
    if bad or not storages:
        ap.error(f"--storages: unknown {bad or storages}; choose from memory, disk-write, disk-reuse")
    if "disk-write" in storages:  # written afresh; disk-reuse alone reads what an earlier call wrote
        shutil.rmtree(args.store, ignore_errors=True)
    rows = []
    for storage in storages:
        out = subprocess.run([sys.executable, __file__, "--data", args.data, "--profile", args.profile, "--store",
                              args.store, "--episodes", str(args.episodes), "--one", storage],
                             capture_output=True, text=True, cwd=ROOT, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    du = sum(p.stat().st_size for p in Path(args.store).rglob("*") if p.is_file()) / 2 ** 30 \
        if Path(args.store).exists() else 0.0
    print(f"training bank of `{args.profile}` from {args.data}: {rows[0]['tasks']} tasks, {rows[0]['cubes']} cubes; "
          f"upper bound {rows[0]['bound_gib']} GiB; on disk {du:.2f} GiB\n")
    print("| storage | build (s) | median ms per episode | peak RSS (GiB) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['storage']} | {r['build_s']} | {r['episode_ms_median']} | {r['peak_rss_gib']} |")
    same = len({r["checksum"] for r in rows}) == 1
    print(f"\nthe {args.episodes} episodes' sums {'equal' if same else 'DIFFER'} across the storages "
          f"({rows[0]['checksum']!r})")


if __name__ == "__main__":
    main()
