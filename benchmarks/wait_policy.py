"""OpenMP's wait policy and the quick training step (issue 16: thread settings).

PyTorch's CPU build runs its operations on OpenMP threads (GNU libgomp). Between two parallel
regions those threads spin by default (``OMP_WAIT_POLICY`` unset: active for a while), which
costs nothing on idle cores and a great deal when another process holds one of them: a
spinning thread takes the core its partner needs and every operation's barrier waits for the
scheduler. ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep. The policy is read once,
when libgomp loads (``import torch``), so every configuration runs in a fresh process:
``benchmarks/train_bench.py``'s ``measure`` (the kit's ``training_step`` on synthetic sphere tasks), rows
alternated round by round, median of each process's timed episodes. The policy changes no
number the step computes (the same operations in the same order), only how idle threads wait.

    python benchmarks/wait_policy.py --rounds 2 --episodes 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (label, OMP_NUM_THREADS, OMP_WAIT_POLICY or None for unset)
CONFIGS = (("1 thread", 1, None), ("2 threads, policy unset (libgomp's default)", 2, None),
           ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, "PASSIVE"))


def step_seconds(threads: int, policy: str | None, episodes: int, warmup: int) -> float:
    """Median seconds per quick training step (``train_bench.measure``) in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["OMP_NUM_THREADS"] = str(threads)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    probe = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from train_bench import measure; "
             f"print(measure('quick', 'cpu', {episodes}, {warmup}, None)['median_s'])")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=8, help="timed episodes per process")
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    if args.rounds < 1 or args.episodes < 1:
        raise SystemExit(f"--rounds and --episodes must be >= 1, got {args.rounds} and {args.episodes}")
    times: dict[str, list[float]] = {c[0]: [] for c in CONFIGS}
    loads = []
    for r in range(args.rounds):
        order = CONFIGS if r % 2 == 0 else CONFIGS[::-1]
        for label, threads, policy in order:
            loads.append(os.getloadavg()[0])
            times[label].append(step_seconds(threads, policy, args.episodes, args.warmup))
            print(f"round {r + 1}: {label}: {times[label][-1]:.3f} s", file=sys.stderr, flush=True)
    print(f"\nload average before each process: {min(loads):.1f}-{max(loads):.1f}\n")
    print("| configuration | median s per step (rounds) | median of rounds |")
    print("|---|---|---:|")
    for label, _, _ in CONFIGS:
        print(f"| {label} | {' / '.join(f'{t:.3f}' for t in times[label])} | {statistics.median(times[label]):.3f} |")


if __name__ == "__main__":
    main()
