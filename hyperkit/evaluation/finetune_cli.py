"""``hyperkit finetune``: limited-data fine-tuning (paper Figure 3) as one resumable run."""

from __future__ import annotations

import argparse

from hyperkit.commands import SUMMARIES, comma_list

__all__ = ["register"]


def _ints(text: str) -> list[int]:
    try:
        out = [int(t) for t in comma_list(text)]
    except ValueError:
        raise ValueError(f"--n must be comma-separated integers, got {text!r}") from None
    if not out or min(out) < 2:
        raise ValueError(f"--n needs sizes >= 2, got {text!r}")
    return sorted(set(out))


def _run(args: argparse.Namespace) -> int:
    from hyperkit.data.layouts import default_data_root
    from hyperkit.evaluation.finetune import FT_METHODS, finetune_table, reference_lines, run_finetune

    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    methods = comma_list(args.methods) if args.methods is not None else list(FT_METHODS)
    rows = run_finetune(args.checkpoint, args.data if args.data is not None else default_data_root(), args.out,
                        tasks=args.tasks, ns=_ints(args.n), repeats=args.repeats, methods=methods, seed=args.seed,
                        reference_from=args.reference_from, resume=args.resume, progress=not args.no_progress)
    print(finetune_table(rows, reference_lines(args.reference_from) if args.reference_from else None))
    print(f"figure: {args.out}/figure3.png")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help=SUMMARIES["finetune"],
                       description="For each target, N and repeat: N cases drawn, 20 % (at least one) held out "
                                   "for testing; a Hyper U-Net generated from the rest (K-shot), a Rand U-Net "
                                   "(trained encoder, random decoder) and a U-Net from scratch are each fine-tuned "
                                   "on them with early stopping (on a held-out training case when 3 or more are "
                                   "left, else on the training cases' fit: never on a test case); scored on the "
                                   "test cases. Writes finetune.csv, finetune.md and figure3.png.")
    p.add_argument("--checkpoint", required=True, help="hypernetwork checkpoint (a run's best.pt)")
    p.add_argument("--data", default=None, help="data folder (default: $HYPERKIT_DATA or data/)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tasks", nargs="+", required=True, metavar="PATTERN",
                   help="held-out targets (paper names such as liver, or glob patterns on task ids)")
    p.add_argument("--n", default="2,4,8", help="labelled volumes per subset, comma-separated (default 2,4,8)")
    p.add_argument("--repeats", type=int, default=3, help="random subsets per N (default 3)")
    p.add_argument("--methods", default=None, help="starts: hyper_ft, rand_ft, scratch_ft (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of subsets and initialisations (default 0)")
    p.add_argument("--reference-from", default=None, metavar="CSV",
                   help="a finished `hyperkit evaluate` results CSV with conv_unet and hyper_unet rows: the "
                        "black and green reference lines")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=_run)
