"""Liver-lesion voxels of the liver and hepatic-vessel tasks' phantom cases (MSD label 2).

Both tasks are drawn with ``at_least_one_liver_tumour``: every case should hold a lesion. Prints,
per task, the cases without a lesion voxel and the smallest count, then every count.

    python benchmarks/liver_lesions.py --cases 40          # the default cohort draws 10 per task
"""

from __future__ import annotations

import argparse

import numpy as np

from hyperkit.phantoms import DEFAULT_SPACING
from hyperkit.phantoms.cohorts import msd_case

TASKS = ("Task03_Liver", "Task08_HepaticVessel")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=40, help="cases 0..N-1 of each task")
    p.add_argument("--seed", type=int, default=0, help="the cohort's master seed")
    p.add_argument("--spacing", type=float, default=DEFAULT_SPACING)
    args = p.parse_args(argv)
    if args.cases < 1:
        raise SystemExit(f"--cases must be at least 1, got {args.cases}")
    for task in TASKS:
        counts = [int(np.count_nonzero(msd_case(task, args.seed, i, args.spacing).labels == 2))
                  for i in range(args.cases)]
        empty = [i for i, c in enumerate(counts) if c == 0]
        print(f"{task}: {len(empty)} of {args.cases} cases without a lesion voxel {empty}; "
              f"smallest {min(counts)}; counts {counts}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
