"""``hyperkit evaluate``: the one-shot protocol and baselines on held-out tasks (Tables 1-2)."""

from __future__ import annotations

import argparse

from hyperkit.commands import SUMMARIES, comma_list
from hyperkit.config import combine_overrides
from hyperkit.data.layouts import default_data_root
from hyperkit.config import METHODS, ONE_SHOT_METHODS

__all__ = ["register"]


def _methods(text: str) -> list[str]:
    names = list(METHODS) if text == "all" else comma_list(text)
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad or text!r}; "
                                         f"choose from {', '.join(METHODS)} or 'all'")
    return names


def _run(args: argparse.Namespace) -> int:
    from hyperkit.evaluation.run import run_evaluation

    combined = combine_overrides(args.set)
    if set(combined) - {"evaluate"}:
        raise ValueError(f"--set: only evaluate.* keys can be set here, got {sorted(set(combined) - {'evaluate'})}")
    overrides = combined.get("evaluate", {})
    from hyperkit.inference.localise import DEFAULT_MARGIN_MM, check_margin

    if args.margin is not None and not args.whole_scan:
        raise ValueError(f"--margin {args.margin:g} applies to --whole-scan only; without it, it would be ignored")
    margin = DEFAULT_MARGIN_MM if args.margin is None else args.margin
    if args.whole_scan:  # before the patch evaluation, not after it
        check_margin(margin)
    res = run_evaluation(args.checkpoint, args.data if args.data is not None else default_data_root(), args.out,
                         tasks=args.tasks, methods=args.methods, draws=args.draws, shots=args.shots,
                         seed=args.seed, profile=args.profile, split=args.split, overrides=overrides or None,
                         resume=args.resume, progress=not args.no_progress, baselines_from=args.baselines_from)
    print(res.tables)
    t = res.record.get("timings", {})
    print(f"\n{len(res.rows)} rows -> {res.csv_path}  ({res.record['wall_seconds']:.0f} s; "
          f"tables in {res.csv_path.with_suffix('.md')}, run record in {res.csv_path.with_suffix('.json')})")
    if "hyper_unet_fit_seconds_median" in t:
        line = f"Hyper U-Net: generate + gradient step {t['hyper_unet_fit_seconds_median']:.2f} s (median)"
        if "conv_over_hyper_ratio" in t:
            line += (f"; Conv U-Net to its best validation {t['conv_unet_seconds_to_best_median']:.0f} s "
                     f"(x{t['conv_over_hyper_ratio']:.0f})")
        print(line)
    if args.whole_scan:
        from hyperkit.evaluation.whole_scan import run_whole_scan

        ws = run_whole_scan(args.checkpoint, args.data if args.data is not None else default_data_root(), args.out,
                            tasks=args.tasks, draws=args.draws, shots=args.shots, seed=args.seed,
                            profile=args.profile, split=args.split, overrides=overrides or None,
                            margin_mm=margin, compare_none=False, progress=not args.no_progress)
        print(f"\n{ws.table}\n\n{len(ws.rows)} rows -> {ws.csv_path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help=SUMMARIES["evaluate"],
                       description="For each held-out task: one train/validation/test split of its cases; "
                                   "several support draws from the train and validation cases, each generating "
                                   "a U-Net from one support (plus the gradient step); every method is scored "
                                   "(DSC, NSD at tau mm and at one voxel) on the same test cases. Writes one CSV "
                                   "row per task x method x draw x case, plus a .json run record and .md tables "
                                   "beside it.")
    p.add_argument("--checkpoint", required=True, help="hypernetwork checkpoint (a run's best.pt)")
    p.add_argument("--data", default=None, help="data folder (default: $HYPERKIT_DATA or data/)")
    p.add_argument("--out", required=True, help="results CSV (.csv; its record .json and tables .md go beside it)")
    p.add_argument("--tasks", nargs="+", default=None, metavar="PATTERN",
                   help="held-out tasks: glob patterns on task ids, paper names (liver, heart_bssfp...) "
                        "or 'paper' for the ten of Tables 1-2 (default: every held-out task)")
    p.add_argument("--shots", type=int, default=None, help="supports per draw (default: the profile's, 1)")
    p.add_argument("--draws", type=int, default=None, help="support draws per task (default: the profile's, 5)")
    p.add_argument("--methods", type=_methods, default=list(ONE_SHOT_METHODS),
                   help=f"comma-separated, from {', '.join(METHODS)}, or 'all' "
                        f"(default: {','.join(ONE_SHOT_METHODS)}; conv_unet and all_unet train networks)")
    p.add_argument("--seed", type=int, default=0, help="seed of draws, splits and baselines (default 0)")
    p.add_argument("--profile", default=None,
                   help="require the checkpoint to come from this profile and take its evaluate section "
                        "(default: the built-in profile the checkpoint names, else the section it records)")
    p.add_argument("--split", default=None, help="task split YAML (default: the paper's)")
    p.add_argument("--set", action="append", metavar="evaluate.KEY=VALUE", help="override a protocol value")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--baselines-from", default=None, nargs="+", metavar="CSV",
                   help="take the Conv and All U-Net rows of these finished evaluations (same data, tasks, "
                        "seed, U-Net width and the baseline's budget) instead of training them again; "
                        "each baseline from the first that has it")
    p.add_argument("--whole-scan", action="store_true",
                   help="also score the Hyper U-Nets on whole query scans: the support registered to each query, "
                        "segmentation around the mapped target (no ground truth used to place it), beside the "
                        "patch protocol; writes <out stem>-whole-scan.csv/.json/.md")
    p.add_argument("--margin", type=float, default=None, metavar="MM",
                   help="--whole-scan: margin around the support's target box (default 20 mm)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
