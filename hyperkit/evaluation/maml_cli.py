"""``hyperkit maml``: Table 3 with a MAML baseline run in the kit's harness (5-shot, leave-one-organ-out)."""

from __future__ import annotations

import argparse

from hyperkit.commands import SUMMARIES, comma_list

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from hyperkit.data.layouts import default_data_root
    from hyperkit.evaluation.maml import ORGANS, run_maml

    run = run_maml(args.checkpoint, args.data if args.data is not None else default_data_root(), args.out,
                   organs=comma_list(args.organs) if args.organs is not None else ORGANS,
                   meta_iterations=args.meta_iterations, draws=args.draws,
                   seed=args.seed, profile=args.profile, split=args.split, resume=args.resume,
                   progress=not args.no_progress)
    print(run.table)
    print(f"rows: {run.out_dir / 'maml.csv'}; table: {run.out_dir / 'table3.md'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("maml", help=SUMMARIES["maml"],
                       description="Leave-one-organ-out over spleen, liver, right and left kidney: for each organ, "
                                   "the target U-Net meta-trained with MAML (the profile's evaluate.maml: inner "
                                   "steps, learning rates, meta-iterations) on the other organs only, adapted to "
                                   "the held-out organ from 5 supports, and scored beside the 5-shot Hyper U-Net on "
                                   "the same support draws and test cases. Writes maml.csv, table3.md, "
                                   "folds/<organ>.pt and maml.json; a finished fold is reused with --resume.")
    p.add_argument("--checkpoint", required=True, help="hypernetwork checkpoint (a run's best.pt)")
    p.add_argument("--data", default=None, help="data folder (default: $HYPERKIT_DATA or data/)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--organs", default=None,
                   help="comma-separated, at least two of Table 3's organs (default: all four: spleen, liver, "
                        "kidney_right, kidney_left)")
    p.add_argument("--meta-iterations", type=int, default=None,
                   help="outer steps per fold (default: the profile's evaluate.maml.meta_iterations)")
    p.add_argument("--draws", type=int, default=None, help="support draws per organ (default: evaluate.draws)")
    p.add_argument("--seed", type=int, default=0, help="draws, splits, MAML initialisation and batches (default 0)")
    p.add_argument("--profile", default=None, help="take the evaluate section from this profile "
                                                  "(default: the checkpoint's)")
    p.add_argument("--split", default=None, help="the hypernetwork's split YAML (default: the paper's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (finished folds are reused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
