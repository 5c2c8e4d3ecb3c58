"""How hard are the held-out phantom tasks? Mask-copy and best-threshold Dice per task.

Both numbers are computed on the kit's own preprocessing (readers +
``task_patches`` of the chosen profile): see :mod:`hyperkit.phantoms.difficulty`.
Prints a markdown table.

    python benchmarks/phantom_difficulty.py --root runs/quick/phantoms   # generated if absent
"""

from __future__ import annotations

import argparse
import sys
import warnings

from hyperkit.phantoms import DEFAULT_SPACING, ensure_phantoms
from hyperkit.phantoms.difficulty import difficulty_table, format_markdown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="runs/quick/phantoms",
                   help="phantom folder (generated with the arguments below unless already there)")
    p.add_argument("--profile", default="quick", help="profile whose data section preprocesses the patches")
    p.add_argument("--subjects", type=int, default=24)
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spacing", type=float, default=DEFAULT_SPACING)
    p.add_argument("--cache", default=None, help="preprocessing cache folder (default: the kit's cache)")
    args = p.parse_args(argv)
    root = ensure_phantoms(args.root, args.subjects, args.cases, args.seed, args.spacing, progress=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = difficulty_table(root, args.profile, cache_dir=args.cache, progress=False)
    print(f"phantoms: {root} (subjects={args.subjects}, cases={args.cases}, seed={args.seed}, "
          f"spacing={args.spacing:g} mm); profile: {args.profile}")
    print()
    print(format_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
