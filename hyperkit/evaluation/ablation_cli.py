"""``hyperkit ablate``: the paper's Tables 4-6 (and K-shot, samplings) as one resumable run."""

from __future__ import annotations

import argparse

from hyperkit.commands import SUMMARIES, comma_list

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from hyperkit.data.layouts import default_data_root
    from hyperkit.evaluation.ablation import ABLATION_TARGETS, ablation_tables, run_ablation

    if args.episodes is not None and args.episodes <= 0:
        raise ValueError(f"--episodes must be a positive integer, got {args.episodes}")
    if args.draws is not None and args.draws <= 0:
        raise ValueError(f"--draws must be a positive integer, got {args.draws}")
    rows = run_ablation(args.profile, args.data if args.data is not None else default_data_root(), args.out,
                        only=comma_list(args.only) if args.only is not None else None, base_run=args.base,
                        episodes=args.episodes, seed=args.seed, tasks=args.tasks or ABLATION_TARGETS, draws=args.draws,
                        resume=args.resume, progress=not args.no_progress)
    print(ablation_tables(rows))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help=SUMMARIES["ablate"],
                       description="Train each variant with the base run's profile, seed and budget (reusing "
                                   "finished runs), score every model with the one-shot protocol on the same "
                                   "draws and cases, and write ablation.csv and tables.md (paired differences "
                                   "with 95 % bootstrap CIs beside the seed-to-seed spread and the paper).")
    p.add_argument("--profile", default="quick", help="quick, paper or a profile YAML (default: quick)")
    p.add_argument("--data", default=None, help="data folder (default: $HYPERKIT_DATA or data/)")
    p.add_argument("--out", required=True, help="ablation folder")
    p.add_argument("--only", default=None,
                   help="comma-separated variants: step, norm, pe (the paper's Tables 4-6), seed (seed-to-seed "
                        "spread), shots2, shots3, shots5, samplings1, patches8 (default: all but patches8)")
    p.add_argument("--base", default=None, help="an existing training run of the base recipe to reuse")
    p.add_argument("--episodes", type=int, default=None, help="training episodes of every model")
    p.add_argument("--seed", type=int, default=None, help="training seed of the base model")
    p.add_argument("--tasks", nargs="+", default=None, metavar="PATTERN",
                   help="held-out targets (default: the paper's six of Appendix A)")
    p.add_argument("--draws", type=int, default=None, help="support draws per target (default: the profile's)")
    p.add_argument("--resume", action="store_true", help="continue the ablation in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
