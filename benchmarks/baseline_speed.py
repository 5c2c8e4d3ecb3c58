"""Conv and All U-Net training before and after the speed-ups of issue 16, in one run.

"Before" is ``hyperkit/evaluation/baselines.py`` of a git revision (``--before``, default the
last commit before the change), loaded from git into a module of its own; "after" is the
working tree. Both train on the same held-out phantom patches with the same seeds, splits
and budgets, and the script says how fast each is and how far apart their results are.

Two parts:

- ``speed``: the notebook-05 baselines (the ten Conv U-Nets and the All U-Net with its 88
  outputs) with the protocol's step budgets divided by ``--scale`` (Conv: about 600 steps per
  U-Net with early stopping, All U-Net: at most 2500; here no early stopping, a validation at
  the start and the end of each). Before: each Conv U-Net, then the All U-Net, at the process's
  thread count (the protocol of ``--before``); after: ``fit_supervised`` as the protocol calls it
  now. The two alternate in ``--rounds`` rounds (ABBA order), so that both see the same load;
  medians and their ratio.
- ``equal``: ``--targets`` Conv U-Nets trained from scratch before and after with ``--eq-steps``
  steps (the profile's augmentation, learning rate, batch and seeds), validated every
  ``--eq-val-every`` steps, keeping the weights of the last step. Reported: the validation
  Dice, the test DSC and the distance of the weights to "before". The tolerance is what the kit
  already accepts: the same "before" code at one and at two threads (docs/design.md §9: results
  are bit-identical only at the same thread count) is the reference spread.
- ``full``: the same targets with the profile's whole Conv U-Net budget (early stopping, best
  weights), before (at ``--full-threads``) and after: steps, best step, validation and test DSC.
- ``compile-step``: one Conv U-Net training step eager (as the kit runs it) and with ``torch.compile``.
- ``amp-step``: one training step of the Conv and of the All U-Net in fp32 and in bf16 autocast
  (``evaluate.conv.amp``), interleaved, medians (the cost of the validations subtracted).

``--amp off`` (default) runs "after" as the quick profile does, in fp32 (``evaluate.conv.amp`` and
``evaluate.all.amp`` are false there): the measurement of the speed-ups at the same results. ``--amp on``:
bf16 autocast where the CPU has bf16, faster but with other results (BENCHMARKS.md, mixed precision).

    OMP_NUM_THREADS=2 python benchmarks/baseline_speed.py --data runs/quick/phantoms --parts speed equal full
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch

from hyperkit.config import SupervisedConfig, TrainConfig, load_profile, protocol_for
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.evaluation import baselines as after
from hyperkit.evaluation.methods import REGISTRY, Context, fit_supervised
from hyperkit.evaluation.protocol import score, task_split
from hyperkit.evaluation.run import heldout_bank
from hyperkit.model.conv import conv3d
from hyperkit.model.adapt import segmentation_loss
from hyperkit.model.precision import precision
from hyperkit.model.unet import UNet3D
from hyperkit.seeds import derive, torch_generator

ROOT = Path(__file__).resolve().parents[1]
#: the last commit before the speed-ups (issue 16)
BEFORE = "40c8a0e6d6501ff1260561a828e2ee8f16a03fc6"


def load_before(rev: str = BEFORE) -> ModuleType:
    """``hyperkit/evaluation/baselines.py`` of git revision ``rev`` as a module (``baselines_before``)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:hyperkit/evaluation/baselines.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baselines_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("baselines_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ the data of notebook 05
@dataclasses.dataclass
class Data:
    bank: TaskBank
    train_bank: TaskBank
    splits: dict[str, Any]
    seed: int


def load_data(root: Path, seed: int = 0) -> Data:
    """The held-out bank (the ten table targets), the training bank and the targets' splits."""
    cfg = load_profile("quick")
    ecfg = _protocol()
    bank = heldout_bank(root, cfg, tasks=["paper"])
    tcfg = TrainConfig.from_config(cfg)
    train_bank = TaskBank.from_datasets(discover_datasets(root), "train", cfg, None, case_splits=tcfg.train_splits)
    splits = {t: task_split(len(bank.case_ids[t]), ecfg, seed, t) for t in bank.task_ids}
    return Data(bank, train_bank, splits, seed)


def _samples(module: ModuleType, bank: TaskBank, task: str, idx: Any, channel: int) -> Any:
    idx = list(idx)
    return module.Samples(bank.images[task][idx], bank.masks[task][idx],
                          torch.full((len(idx),), channel, dtype=torch.long))


def _protocol(amp: bool = False) -> Any:
    """The quick protocol with the paper's Dice + BCE for both baselines: the loss the "before"
    code (which has no ``bce_weight``) trains with, so that before and after compute the same.
    ``amp``: bf16 autocast of both baselines (``--amp``; the "before" code has none and ignores it)."""
    ecfg = protocol_for(load_profile("quick"), "quick")
    return dataclasses.replace(ecfg, conv=dataclasses.replace(ecfg.conv, bce_weight=1.0, amp=amp),
                               all=dataclasses.replace(ecfg.all, bce_weight=1.0, amp=amp))


def conv_jobs(module: ModuleType, data: Data, cfg: SupervisedConfig, targets: list[str]) -> list[tuple]:
    """``(net, train, val, cfg, generator)`` of each target's Conv U-Net, seeded as ``ConvUNetMethod`` seeds them."""
    jobs = []
    for task in targets:
        torch.manual_seed(derive(data.seed, "conv_unet", task))
        sp = data.splits[task]
        jobs.append((UNet3D(8), _samples(module, data.bank, task, sp.train, 0),
                     _samples(module, data.bank, task, sp.val, 0), cfg, torch_generator(data.seed, "conv_unet", task)))
    return jobs


def train_conv(module: ModuleType, jobs: list[tuple]) -> list[Any]:
    """Before: one after the other (``train_supervised``); after: side by side (``train_supervised_many``)."""
    if module is after:
        done = dict(after.train_supervised_many([after.SupervisedJob(*j) for j in jobs]))
        return [done[i] for i in range(len(jobs))]
    return [module.train_supervised(*j) for j in jobs]


def train_all(module: ModuleType, data: Data, cfg: SupervisedConfig) -> Any:
    """The All U-Net as ``AllUNetMethod`` trains it (88 outputs on the phantoms)."""
    every = [t for t in data.bank.task_ids if data.splits[t] is not None]
    names = list(data.train_bank.task_ids) + [t for t in every if t not in data.train_bank.images]
    channel = {t: i for i, t in enumerate(names)}
    train = module.Samples.cat([_samples(module, data.train_bank, t, range(len(data.train_bank.case_ids[t])),
                                         channel[t])
                                for t in data.train_bank.task_ids]
                               + [_samples(module, data.bank, t, data.splits[t].train, channel[t]) for t in every])
    val = module.Samples.cat([_samples(module, data.bank, t, data.splits[t].val, channel[t]) for t in every])
    torch.manual_seed(derive(data.seed, "all_unet"))
    net = UNet3D(8, out_channels=len(names))
    return module.train_supervised(net, train, val, cfg, torch_generator(data.seed, "all_unet"), balance=True)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_before(before: ModuleType, data: Data, conv: SupervisedConfig, allc: SupervisedConfig) -> None:
    """The baselines as the protocol ran them before: each Conv U-Net, then the All U-Net, at the process's threads."""
    train_conv(before, conv_jobs(before, data, conv, list(data.bank.task_ids)))
    train_all(before, data, allc)


def run_after(data: Data, conv: SupervisedConfig, allc: SupervisedConfig) -> None:
    """The baselines as the protocol runs them now: ``fit_supervised`` over both methods (one pool)."""
    ecfg = dataclasses.replace(_protocol(), conv=conv, all=allc)
    ctx = Context(None, data.bank, ecfg, data.seed, data.train_bank, 8,
                  {t: sp for t, sp in data.splits.items() if sp is not None}, info={})
    targets = list(ctx.splits)
    for _ in fit_supervised(
            ctx, [(REGISTRY["conv_unet"], targets), (REGISTRY["all_unet"], targets)]):  # type: ignore[list-item]
        pass


def speed(before: ModuleType, data: Data, args: argparse.Namespace) -> None:
    ecfg = _protocol(args.amp)
    conv = dataclasses.replace(ecfg.conv, steps=args.steps, val_every=args.val_every, patience=10 ** 6)
    allc = dataclasses.replace(ecfg.all, steps=args.all_steps, val_every=args.all_val_every, patience=10 ** 6)
    times: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(args.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for name in order:
            times[name].append(_timed(lambda: run_before(before, data, conv, allc) if name == "before"
                                      else run_after(data, conv, allc)))
            print(f"round {r}: {name}: {times[name][-1]:.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    b, a = statistics.median(times["before"]), statistics.median(times["after"])
    n = len(data.bank.task_ids)
    print(f"\n{torch.get_num_threads()} torch threads, {args.rounds} rounds (ABBA); {n} Conv U-Nets x {args.steps} "
          f"steps (validation every {args.val_every}) + the All U-Net, {args.all_steps} steps (validation every "
          f"{args.all_val_every}): the protocol's step budgets / {args.scale:g}, no early stopping\n")
    print("| notebook 05's baselines | before: median s | after: median s | before / after | rounds before "
          "| rounds after |")
    print("|---|---:|---:|---:|---|---|")
    print(f"| {n} Conv U-Nets + All U-Net | {b:.1f} | {a:.1f} | {b / a:.2f} | "
          f"{', '.join(f'{x:.0f}' for x in times['before'])} | {', '.join(f'{x:.0f}' for x in times['after'])} |")


def amp_step(data: Data, args: argparse.Namespace) -> None:
    """One training step of the Conv U-Net and of the All U-Net (88 outputs) on liver patches, fp32
    against bf16 autocast (``SupervisedConfig.amp``), interleaved. A step's time is the difference
    of ``train_supervised`` with 1 + ``--step-reps`` steps and with 1 step, over ``--step-reps``
    (both make the same two validations and weight copies); medians of 3 such pairs."""
    task = next(t for t in data.bank.task_ids if t.endswith("liver@CT"))
    s = _samples(after, data.bank, task, data.splits[task].train, 0)
    n, conv = args.step_reps, _protocol().conv
    print(f"\n{torch.get_num_threads()} thread(s), bf16 where asked: {precision('cpu', True)}; one step = sample 2 "
          f"patches, augment, forward, Dice + BCE, backward, AdamW\n")
    print("| U-Net | fp32: median ms per step | bf16 autocast: median ms per step | fp32 / bf16 |")
    print("|---|---:|---:|---:|")
    for name, outputs in (("Conv U-Net (1 output)", 1), ("All U-Net (88 outputs)", 88)):
        train = after.Samples(s.images, s.masks, torch.full((len(s),), outputs - 1, dtype=torch.long))
        per: dict[bool, list[float]] = {False: [], True: []}
        for r in range(3):
            for amp in (False, True) if r % 2 == 0 else (True, False):
                t = {}
                for steps in (1, 1 + n):
                    torch.manual_seed(0)
                    cfg = dataclasses.replace(conv, steps=steps, val_every=10 ** 6, amp=amp)
                    net = UNet3D(8, out_channels=outputs)
                    t[steps] = _timed(lambda: after.train_supervised(net, train, train, cfg,
                                                                     torch.Generator().manual_seed(r)))
                per[amp].append((t[1 + n] - t[1]) / n)
        f, b = statistics.median(per[False]), statistics.median(per[True])
        print(f"| {name} | {f * 1000:.0f} | {b * 1000:.0f} | {f / b:.2f} |", flush=True)
    # why hyperkit.model.conv keeps 1^3 convolutions in fp32 under CPU autocast
    print("\n| 1³ convolution, batch 2 at 48³, forward | fp32 (ms) | bf16 autocast, PyTorch's choice (ms) | "
          "bf16 autocast, the kit's route (ms) |")
    print("|---|---:|---:|---:|")
    for name, c_in, c_out in (("head 8 -> 1", 8, 1), ("shortcut 1 -> 8", 1, 8)):
        x, w = torch.randn(2, c_in, 48, 48, 48), torch.randn(c_out, c_in, 1, 1, 1)
        cells = []
        for fn, amp in ((torch.nn.functional.conv3d, False), (torch.nn.functional.conv3d, True), (conv3d, True)):
            def run() -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    fn(x, w)
            run()
            cells.append(statistics.median(_timed(run) for _ in range(7)) * 1000)
        print(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


def compile_step(data: Data, args: argparse.Namespace) -> None:
    """One Conv U-Net training step (forward, Dice + BCE, backward, AdamW; two liver patches, no augmentation)
    as ``train_supervised`` runs it (eager, its full-resolution convolutions in channels-last) against the same
    step with the forward pass through ``torch.compile`` (inductor, default mode), the kit's channels-last
    convolutions traced into its graph. Two U-Nets of the same start, steps alternated ABBA; medians of
    ``--step-reps`` steps each after two warm-up steps. (One compiled function per process: dynamo does not guard
    on module hooks, so a second compiled U-Net with other hooks could reuse the first one's graph.)"""
    task = next(t for t in data.bank.task_ids if t.endswith("liver@CT"))
    s = _samples(after, data.bank, task, data.splits[task].train, 0)
    cfg = _protocol().conv
    x, m, ch = s.images[:2], s.masks[:2], s.channels[:2]
    rows = {"eager": "eager, channels-last convolutions (the kit)",
            "compiled": "`torch.compile` forward, channels-last convolutions"}
    nets = {}
    for name in rows:
        torch.manual_seed(0)
        net = UNet3D(8, out_channels=1).train()
        fwd = (lambda t, n=net: after.channel_logits(n, t, ch))
        nets[name] = (net, torch.optim.AdamW(net.parameters(), lr=cfg.lr),
                      fwd if name == "eager" else torch.compile(fwd))

    def step(name: str) -> float:
        net, opt, fwd = nets[name]
        t0 = time.perf_counter()
        loss = segmentation_loss(fwd(x).float(), m, cfg.bce_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name in rows}
    with after.channels_last_convs(nets["eager"][0]), after.channels_last_convs(nets["compiled"][0]):
        first = step("compiled")
        for name in ("eager", "eager", "compiled"):
            step(name)
        for r in range(args.step_reps):
            for name in ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager"):
                times[name].append(step(name))
    base = statistics.median(times["eager"])
    print(f"\n{torch.get_num_threads()} thread(s); torch.compile's first step (compilation) {first:.1f} s\n")
    print("| Conv U-Net step | median ms | eager / this |\n|---|---:|---:|")
    for name, label in rows.items():
        med = statistics.median(times[name])
        print(f"| {label} | {med * 1000:.0f} | {base / med:.2f} |", flush=True)


# ------------------------------------------------------------------------------ same results
def _flat(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def _test_dsc(data: Data, task: str, net: torch.nn.Module) -> float:
    test = list(data.splits[task].test)
    preds = after.predict(net, data.bank.images[task][test])
    return statistics.mean(d for d, _, _ in score(preds, data.bank.masks[task][test], data.bank.spacing, 2.0))


class _KeepLast:
    """Replaces a module's ``_val_dice`` so that every validation counts as an improvement.

    ``train_supervised`` then returns the weights of its last step (from scratch, the first
    hundred steps predict background and the best weights would be the initial ones, equal
    everywhere); the real validation Dice is the recorded value minus the validation's index.
    """

    def __init__(self, module: ModuleType) -> None:
        self.module, self.real = module, module._val_dice
        self.calls: dict[int, int] = {}

    def __enter__(self) -> "_KeepLast":
        def val_dice(net: torch.nn.Module, val: Any, *rest: Any) -> float:  # rest: amp (current code)
            k = self.calls[id(net)] = self.calls.get(id(net), -1) + 1
            return k + self.real(net, val, *rest)
        self.module._val_dice = val_dice
        return self

    def __exit__(self, *exc: Any) -> None:
        self.module._val_dice = self.real


def _run_conv(module: ModuleType, data: Data, cfg: SupervisedConfig, targets: list[str], threads: int,
              keep_last: bool) -> tuple[list[tuple[torch.nn.Module, Any]], float]:
    torch.set_num_threads(threads)
    jobs = conv_jobs(module, data, cfg, targets)
    t0 = time.perf_counter()
    if keep_last:
        with _KeepLast(module):
            results = train_conv(module, jobs)
        for r in results:
            r.curve = [(s, d - k) for k, (s, d) in enumerate(r.curve)]
    else:
        results = train_conv(module, jobs)
    return [(j[0], r) for j, r in zip(jobs, results)], time.perf_counter() - t0


def equal(before: ModuleType, data: Data, args: argparse.Namespace) -> None:
    """The same steps before and after: the weights of the last step, from scratch."""
    ecfg = _protocol(args.amp)
    cfg = dataclasses.replace(ecfg.conv, steps=args.eq_steps, val_every=args.eq_val_every, patience=10 ** 6, warmup=0)
    targets = [t for t in data.bank.task_ids if any(t.endswith(s) for s in args.targets)]
    threads = torch.get_num_threads()
    runs = {}
    for name, module, n in (("before", before, threads), ("before, 1 thread", before, 1), ("after", after, threads)):
        runs[name], sec = _run_conv(module, data, cfg, targets, n, keep_last=True)
        print(f"equal: {name}: {sec:.1f} s", flush=True)
    torch.set_num_threads(threads)
    print(f"\n{len(targets)} Conv U-Nets from scratch, {args.eq_steps} steps (the profile's lr, batch, augmentation, "
          f"seeds); the weights of the last step; 'before' at {threads} threads\n")
    print("| target | run | val Dice at " + ", ".join(str(s) for s, _ in runs["after"][0][1].curve)
          + " | test DSC | weights: relative L2 distance to 'before' | max abs weight difference |")
    print("|---|---|---|---:|---:|---:|")
    for i, task in enumerate(targets):
        ref = _flat(runs["before"][i][0])
        for name, rows in runs.items():
            net, res = rows[i]
            w = _flat(net)
            curve = " ".join(f"{d:.3f}" for _, d in res.curve)
            print(f"| {task.rsplit('/', 1)[-1]} | {name} | {curve} | {_test_dsc(data, task, net):.4f} | "
                  f"{float((w - ref).norm() / ref.norm()):.2e} | {float((w - ref).abs().max()):.2e} |")


def full(before: ModuleType, data: Data, args: argparse.Namespace) -> None:
    """The profile's whole Conv U-Net budget (early stopping, best weights) before and after: the test DSC."""
    cfg = _protocol(args.amp).conv
    targets = [t for t in data.bank.task_ids if any(t.endswith(s) for s in args.targets)]
    threads = torch.get_num_threads()
    runs = {}
    for name, module, n in [r for r in ((f"before, {args.full_threads} thread(s)", before, args.full_threads),
                                        ("after", after, threads)) if r[0].split(",")[0] in args.full_runs]:
        runs[name], sec = _run_conv(module, data, cfg, targets, n, keep_last=False)
        print(f"full: {name}: {sec:.1f} s", flush=True)
    torch.set_num_threads(threads)
    print(f"\n{len(targets)} Conv U-Nets with the quick profile's budget (at most {cfg.steps} steps, early stopping)\n")
    print("| target | run | steps | best step | best val Dice | test DSC | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for i, task in enumerate(targets):
        for name, rows in runs.items():
            net, res = rows[i]
            print(f"| {task.rsplit('/', 1)[-1]} | {name} | {res.steps} | {res.best_step} | {res.best_dice:.4f} | "
                  f"{_test_dsc(data, task, net):.4f} | {res.seconds:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "runs/quick/phantoms")
    ap.add_argument("--before", default=BEFORE, help="git revision of the 'before' baselines.py")
    ap.add_argument("--parts", nargs="+", default=["speed", "equal"],
                    choices=["speed", "equal", "full", "amp-step", "compile-step"])
    ap.add_argument("--scale", type=float, default=50.0,
                    help="speed part: the protocol's step budgets divided by this (Conv: about 600 steps per U-Net "
                         "with early stopping, All: at most 2500)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--targets", nargs="+", default=["liver@CT", "spleen@CT"])
    ap.add_argument("--eq-steps", type=int, default=60)
    ap.add_argument("--eq-val-every", type=int, default=20)
    ap.add_argument("--full-threads", type=int, default=1,
                    help="threads of 'before' in the full part (one is faster than two on a shared machine)")
    ap.add_argument("--full-runs", nargs="+", default=["before", "after"], choices=["before", "after"],
                    help="which of the two the full part trains")
    ap.add_argument("--step-reps", type=int, default=10,
                    help="amp-step and compile-step parts: steps timed per measurement")
    ap.add_argument("--amp", choices=["on", "off"], default="off",
                    help="after: bf16 autocast of the training steps where the CPU has bf16 (evaluate.conv.amp); "
                         "default off, as the quick profile")
    args = ap.parse_args()
    args.amp = args.amp == "on"
    args.steps, args.all_steps = max(1, round(600 / args.scale)), max(1, round(2500 / args.scale))
    args.val_every, args.all_val_every = args.steps, args.all_steps
    torch.set_flush_denormal(True)  # as evaluate() does
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, before = {args.before[:10]}, "
          f"after: {precision('cpu', args.amp)}, load average {os.getloadavg()[0]:.1f}", flush=True)
    before = load_before(args.before)
    data = load_data(args.data)
    if "speed" in args.parts:
        speed(before, data, args)
    if "equal" in args.parts:
        equal(before, data, args)
    if "full" in args.parts:
        full(before, data, args)
    if "amp-step" in args.parts:
        amp_step(data, args)
    if "compile-step" in args.parts:
        compile_step(data, args)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
