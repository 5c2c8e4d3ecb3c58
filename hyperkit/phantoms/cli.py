"""``hyperkit phantoms --out DIR``: write the procedural CT and MRI cohorts."""

from __future__ import annotations

import argparse
import sys

from hyperkit.commands import SUMMARIES
from hyperkit.phantoms.cohorts import split_of
from hyperkit.phantoms.writer import DEFAULT_SPACING, generate_phantoms

__all__ = ["register", "min_subjects"]

#: validation cases a task needs (a support and a query) and the splits training validates on (train.val_splits)
_VAL_CASES, _VAL_SPLITS = 2, ("val", "test")


def min_subjects() -> int:
    """The fewest CT subjects whose splits (:func:`~hyperkit.phantoms.cohorts.split_of`) give the default
    validation splits (``val``, ``test``) the 2 cases a validation task needs (10: ``s0008`` val, ``s0009`` test)."""
    n, held = 0, 0
    while held < _VAL_CASES:
        held += split_of(n) in _VAL_SPLITS
        n += 1
    return n


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
    low = min_subjects()
    if a["subjects"] < low:  # after the cohort is written: a refused call stays one error line
        held = sum(split_of(i) in _VAL_SPLITS for i in range(a["subjects"]))
        print(f"hyperkit: warning: --subjects {a['subjects']} gives {held} val/test subject(s) (s0008, s0018, ... "
              f"are val; s0009, s0019, ... test) and `hyperkit train` validates on {_VAL_CASES}: "
              f"use --subjects {low} or more", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``phantoms`` sub-command."""
    p = sub.add_parser(
        "phantoms", help=SUMMARIES["phantoms"],
        description="Write a CT training cohort in the TotalSegmentator layout and the ten MSD held-out tasks "
                    "in the MSD layout, procedurally (no download). A second call with the same arguments "
                    "reuses what is there.")
    p.add_argument("--out", required=True, help="output folder (the data root the readers will scan)")
    p.add_argument("--subjects", type=int, default=24,
                   help=f"CT training subjects (default 24; `hyperkit train` needs at least {min_subjects()}: "
                        "s0008, s0018, ... are val subjects, s0009, s0019, ... test, the rest train)")
    p.add_argument("--cases", type=int, default=10, help="cases per held-out MSD task (default 10)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--spacing", type=float, default=DEFAULT_SPACING,
                   help=f"isotropic voxel size in mm (default {DEFAULT_SPACING:g}; 1.5 for the paper profile)")
    p.add_argument("--force", action="store_true",
                   help="replace phantoms made with other arguments / write into a non-empty folder")
    p.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
