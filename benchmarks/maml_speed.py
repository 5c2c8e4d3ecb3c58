"""MAML folds one after the other against side by side, in one run (issue 16).

``hyperkit maml`` meta-trains one U-Net per held-out organ (four folds). Before: the folds one
after the other at the process's thread count (two on the development machine), as
:func:`~hyperkit.evaluation.maml.run_maml` ran them until 2026-12-07; after: side by side, one
torch thread each (:func:`~hyperkit.side_by_side.side_by_side`), as it runs them now.
Both meta-train the same folds (organs, seeds, budget of the checkpoint's profile) with
``--iterations`` outer steps each, in ``--rounds`` rounds of ABBA order so that both see the same
load; medians and their ratio. Then the weights: side by side against the same folds one after
the other at one thread (equal, bit for bit, is what the kit promises) and at the process's thread
count (the old results, which a thread count moves).

    OMP_NUM_THREADS=2 python benchmarks/maml_speed.py --data runs/quick/phantoms \\
        --checkpoint runs/quick/train-quick/best.pt --iterations 10 --rounds 2
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import time
from pathlib import Path

import torch

from hyperkit.config import TrainConfig, protocol_for
from hyperkit.config.sections import MamlConfig
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.evaluation.maml import ORGANS, OrganTask, organ_bank, resolve_organs
from hyperkit.side_by_side import side_by_side
from hyperkit.training.checkpoint import load_hypernet
from hyperkit.training.maml import init_unet, meta_train, without_task

ROOT = Path(__file__).resolve().parents[1]


def run_folds(bank: TaskBank, organs: list[OrganTask], mcfg: MamlConfig, width: int, workers: int
              ) -> tuple[float, list[dict]]:
    """Meta-train every fold (``workers`` at once); wall seconds and each fold's final weights."""
    starts = [init_unet(width, 0, o.organ) for o in organs]  # in this thread: init_unet seeds the global generator

    def fold(k: int) -> dict:
        meta_train(starts[k], without_task(bank, organs[k].task), mcfg, 0, organs[k].organ)
        return starts[k].state_dict()

    t0 = time.perf_counter()
    done = dict(side_by_side([functools.partial(fold, k) for k in range(len(organs))], workers))
    return time.perf_counter() - t0, [done[k] for k in range(len(organs))]


def max_diff(a: list[dict], b: list[dict]) -> float:
    return max(float((x[n] - y[n]).abs().max()) for x, y in zip(a, b) for n in x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "runs/quick/phantoms")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "runs/quick/train-quick/best.pt")
    ap.add_argument("--iterations", type=int, default=10, help="outer steps per fold (the quick profile: 100)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if args.iterations < 1 or args.rounds < 1:
        raise SystemExit(f"--iterations and --rounds must be >= 1, got {args.iterations}, {args.rounds}")
    threads = torch.get_num_threads()
    _, cfg = load_hypernet(args.checkpoint)
    mcfg = dataclasses.replace(protocol_for(cfg).maml, meta_iterations=args.iterations)
    datasets = discover_datasets(args.data)
    organs = resolve_organs(datasets, ORGANS, None, TrainConfig.from_config(cfg).train_splits)
    bank = organ_bank(datasets, organs, cfg, None, False)
    width = int(cfg["model"]["base_width"])
    print(f"{len(organs)} folds of {args.iterations} outer steps; torch threads {threads}; "
          f"{torch.__version__}; {args.rounds} rounds, ABBA")
    times: dict[str, list[float]] = {"one after the other": [], "side by side": []}
    weights: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        order = ["one after the other", "side by side"][:: 1 if r % 2 == 0 else -1]
        for name in order:
            seconds, weights[name] = run_folds(bank, organs, mcfg, width, 1 if name == "one after the other"
                                               else threads)
            times[name].append(seconds)
            print(f"round {r}: {name}: {seconds:.1f} s", flush=True)
    before, after = (statistics.median(times[k]) for k in ("one after the other", "side by side"))
    print(f"median: one after the other {before:.1f} s, side by side {after:.1f} s; speed-up {before / after:.2f}x")
    torch.set_num_threads(1)
    _, one_thread = run_folds(bank, organs, mcfg, width, 1)
    torch.set_num_threads(threads)
    print(f"weights, max |difference| of side by side to the folds one after the other at one thread: "
          f"{max_diff(weights['side by side'], one_thread):.3g}; at {threads} threads: "
          f"{max_diff(weights['side by side'], weights['one after the other']):.3g}")


if __name__ == "__main__":
    main()
