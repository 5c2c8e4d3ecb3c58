"""``hyperkit train``: episodic training from the command line (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import os

from hyperkit.commands import SUMMARIES
from hyperkit.config import combine_overrides, load_profile
from hyperkit.data.layouts import default_data_root

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from hyperkit.training.loop import train

    cfg = load_profile(args.profile, combine_overrides(args.set) or None)
    if args.episodes is not None and args.episodes <= 0:
        raise ValueError(f"--episodes must be a positive integer, got {args.episodes}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        import torch

        backend = "nccl" if torch.cuda.is_available() and args.device != "cpu" else "gloo"
        dist.init_process_group(backend)
    try:
        res = train(cfg, args.data if args.data is not None else default_data_root(), args.out,
                    episodes=args.episodes, seed=args.seed, resume=args.resume, device=args.device,
                    progress=not args.no_progress, bank=args.bank, workers=args.workers)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run: {res.run_dir}  episodes: {res.episodes_done}  one-shot val Dice: episode 0 "
              f"{res.first_dice:.3f} -> best {res.best_dice:.3f} (episode {res.best_episode})"
              + ("  [early stop]" if res.stopped_early else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=SUMMARIES["train"],
                       description="Train a hypernetwork with Algorithm 1. Run under "
                                   "`torchrun --nproc_per_node=K` for DistributedDataParallel.")
    p.add_argument("--profile", default="quick", help="quick, paper or a profile YAML (default: quick)")
    p.add_argument("--data", default=None, help="data folder (default: $HYPERKIT_DATA or data/)")
    p.add_argument("--out", required=True, help="run folder (config, metrics, checkpoints)")
    p.add_argument("--episodes", type=int, default=None, help="override train.episodes")
    p.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--bank", choices=("auto", "memory", "disk"), default="auto",
                   help="where the training tasks' cubes are kept: in memory, or on disk (cut per episode from "
                        "the preprocessing cache's cases; the same episodes); auto (default): on disk when they may "
                        "not fit in half the available memory (the paper profile on real data)")
    p.add_argument("--workers", type=int, default=None,
                   help="cases preprocessed at once before training (one torch thread each; the same data whatever "
                        "the number); default: one per core, as many as the available memory holds at 4 GiB each")
    p.set_defaults(func=_run)
