"""Time and memory of ``hyperkit phantoms`` (wall time, peak resident memory, output size).

Generates one cohort into a fresh temporary folder (or ``--out``) and prints a
markdown table. Peak memory comes from ``resource.getrusage``: the main process
(``RUSAGE_SELF``) and the largest worker process (``RUSAGE_CHILDREN`` reports the
largest terminated child); with W workers the whole run's peak is at most
main + W x worker.

    python benchmarks/phantom_speed.py                      # the quick profile's default cohort
    python benchmarks/phantom_speed.py --spacing 1.5 --subjects 4 --cases 2   # paper-scale voxels
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from hyperkit.phantoms import DEFAULT_SPACING, generate_phantoms


def _mib(kib: int) -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subjects", type=int, default=24)
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spacing", type=float, default=DEFAULT_SPACING)
    p.add_argument("--workers", type=int, default=None, help="processes (default: the kit's default, up to 2)")
    p.add_argument("--out", default=None, help="output folder (default: a temporary folder, removed afterwards)")
    args = p.parse_args(argv)
    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="phantom-speed-")
        out = Path(tmp) / "phantoms"
    else:
        out = Path(args.out)
    try:
        run = generate_phantoms(out, args.subjects, args.cases, args.seed, args.spacing, force=True,
                                workers=args.workers, progress=False)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    main_rss = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    child_rss = _mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    workers = args.workers or min(2, os.cpu_count() or 1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"python {platform.python_version()}")
    print()
    print("| subjects | cases/task | spacing (mm) | workers | NIfTI files | output (MiB) | wall time (s) | "
          "peak RSS main (MiB) | peak RSS largest worker (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.subjects} | {args.cases} | {args.spacing:g} | {workers} | {run.files} | {size / 2**20:.0f} | "
          f"{run.seconds:.1f} | {main_rss:.0f} | {child_rss:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
