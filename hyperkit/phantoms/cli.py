"""``hyperkit phantoms --out DIR``: write the procedural CT and MRI cohorts."""

from __future__ import annotations

import argparse

from hyperkit.commands import SUMMARIES
from hyperkit.phantoms.writer import DEFAULT_SPACING, generate_phantoms

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    run = generate_phantoms(args.out, args.subjects, args.cases, args.seed, args.spacing, force=args.force,
                            workers=args.workers, progress=not args.quiet)
    a = run.arguments
    what = (f"{a['subjects']} CT subjects + {a['cases']} cases x 10 MSD tasks, seed {a['seed']}, "
            f"{a['spacing']:g} mm")
    if run.reused:
        print(f"phantoms in {run.root} already match ({what}); nothing to do")
    else:
        print(f"wrote {run.files} NIfTI files ({what}) to {run.root} in {run.seconds:.1f} s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``phantoms`` sub-command."""
    p = sub.add_parser(
        "phantoms", help=SUMMARIES["phantoms"],
        description="Write a CT training cohort in the TotalSegmentator layout and the ten MSD held-out tasks "
                    "in the MSD layout, procedurally (no download). A second call with the same arguments "
                    "reuses what is there.")
    p.add_argument("--out", required=True, help="output folder (the data root the readers will scan)")
    p.add_argument("--subjects", type=int, default=24, help="CT training subjects (default 24)")
    p.add_argument("--cases", type=int, default=10, help="cases per held-out MSD task (default 10)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--spacing", type=float, default=DEFAULT_SPACING,
                   help=f"isotropic voxel size in mm (default {DEFAULT_SPACING:g}; 1.5 for the paper profile)")
    p.add_argument("--force", action="store_true",
                   help="replace phantoms made with other arguments / write into a non-empty folder")
    p.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
