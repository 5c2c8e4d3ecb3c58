"""Training throughput: task-episodes per second and peak memory of Algorithm 1's step.

One "task-episode" is one task's support and query: generate, segment both, loss,
backward. The timed step is the kit's own ``training_step`` (sampling, MONAI
augmentation, the batched generate/segment pass, Dice+BCE, AdamW, lr decay) on a
synthetic task bank of sphere cases at the profile's patch size, so numbers compare
across batch sizes and machines. Peak memory: CUDA ``max_memory_allocated``; CPU the
resident-set high-water mark (``VmHWM``) of the process.

Also prints the learning curve of a run folder (``--run DIR``): validation Dice against
episodes and wall time.

Examples::

    python benchmarks/train_bench.py --profiles quick --episodes 10
    python benchmarks/train_bench.py --profiles paper --episodes 2 --warmup 1 --tasks 1
    python benchmarks/train_bench.py --device cuda --profiles quick paper --episodes 10
    python benchmarks/train_bench.py --run runs/train-quick
    python benchmarks/train_bench.py --cpu-bf16 --episodes 6 --rounds 2
    python benchmarks/train_bench.py --cpu-channels-last --episodes 8 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from hyperkit.config import load_profile
from hyperkit.data.augment import build_augment
from hyperkit.config import TrainConfig
from hyperkit.seeds import episode_generator
from hyperkit.data.bank import TaskBank
from hyperkit.training.loop import fresh_start, training_step


def sphere_bank(side: int, n_tasks: int = 4, n_cases: int = 3) -> TaskBank:
    """Synthetic tasks: each case a bright sphere (task-specific radius) in noise."""
    g = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(*(torch.arange(side),) * 3, indexing="ij"), -1).float()
    images, masks, ids = {}, {}, {}
    for t in range(n_tasks):
        imgs, msks = [], []
        for _ in range(n_cases):
            centre = side / 2 + torch.randint(-side // 8, side // 8 + 1, (3,), generator=g)
            m = ((grid - centre).norm(dim=-1) < side * (0.1 + 0.05 * t)).float()[None]
            imgs.append(torch.randn(m.shape, generator=g) + 2 * m)
            msks.append(m)
        tid = f"totalseg/spheres/sphere{t}@CT"  # a real task id: each its own structure group
        images[tid], masks[tid] = torch.stack(imgs), torch.stack(msks)
        ids[tid] = [f"c{i}" for i in range(n_cases)]
    return TaskBank(images, masks, ids)


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(profile: str, device: str, episodes: int, warmup: int, tasks: int | None, amp: bool | None = None,
            compile_model: bool = False) -> dict:
    """Median seconds per training step (``episodes`` timed after ``warmup``) and peak memory.

    ``amp``: bf16 autocast on CUDA (``None``: the profile's ``train.amp``); ``compile_model``:
    the hypernetwork through ``torch.compile`` (the warm-up then includes compilation).
    """
    dev = torch.device(device)
    cfg = load_profile(profile)
    tcfg = TrainConfig.from_config(cfg, tasks_per_episode=tasks, amp=amp)
    side = cfg["data"]["patch_size"]
    model, opt, sched = fresh_start(cfg["model"], tcfg, 0, dev)  # where `train` starts, seed 0
    if compile_model:
        model = torch.compile(model)  # type: ignore[assignment]
    bank = sphere_bank(side, n_tasks=max(4, tcfg.tasks_per_episode))
    augment = build_augment() if tcfg.augment else None
    times = []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for e in range(warmup + episodes):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        training_step(model, opt, sched, bank, tcfg, episode_generator(0, e), augment, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if e >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"profile": profile, "device": device, "side": side, "B": tcfg.tasks_per_episode,
            "median_s": med, "task_episodes_per_s": tcfg.tasks_per_episode / med, "peak_mib": _peak_mib(dev),
            "n": len(times), "amp": bool(tcfg.amp and dev.type == "cuda"), "compiled": compile_model}


def curve(run: Path) -> None:
    rows = [json.loads(x) for x in (run / "validation.jsonl").read_text().splitlines() if x.strip()]
    print(f"\nLearning curve of {run} (one-shot Dice on validation tasks never trained on):\n")
    print("| episode | wall time (min) | mean val Dice |")
    print("|---:|---:|---:|")
    for r in rows:
        print(f"| {r['episode']} | {r['wall_seconds'] / 60:.1f} | {r['dice']:.3f} |")


def _abba(args: argparse.Namespace, what: str, patches: dict) -> None:
    """Median step time of the quick training step with each of two patches applied in turn, ABBA.

    ``patches``: ``name -> (apply, undo)`` for the two variants (the first is the kit as it is).
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(patches)
    times: dict[str, list[float]] = {n: [] for n in names}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {what}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            apply, undo = patches[name]
            apply()
            try:
                times[name].append(measure(args.profiles[0], "cpu", args.episodes, args.warmup, args.tasks)["median_s"])
            finally:
                undo()
            print(f"round {r}: {name}: {times[name][-1]:.3f} s per step", flush=True)
    a, b = (statistics.median(times[n]) for n in names)
    print(f"\n| {args.profiles[0]} training step | {names[0]}: median s | {names[1]}: median s | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| {args.episodes} timed episodes x {args.rounds} rounds | {a:.3f} | {b:.3f} | {a / b:.2f} |")


def cpu_bf16(args: argparse.Namespace) -> None:
    """The quick training step in fp32 and under CPU bf16 autocast (patched in; not a kit setting)."""
    import hyperkit.training.loop as loop
    from hyperkit.model.precision import autocast, precision

    plain = loop._autocast

    def bf16() -> None:
        loop._autocast = lambda device, amp: autocast(device, True)

    def undo() -> None:
        loop._autocast = plain
    _abba(args, f"CPU bf16: {precision('cpu', True)}", {"fp32": (undo, undo), "bf16 autocast": (bf16, undo)})


def cpu_channels_last(args: argparse.Namespace) -> None:
    """The quick training step with its batched full-resolution 3³ convolutions (the encoder's and
    the generated decoder's, 48³) in the channels-last 3D layout (patched in; not a kit setting)."""
    import torch.nn.functional as F

    import hyperkit.model.conv as conv
    import hyperkit.model.functional as functional

    plain = conv.conv3d

    def layout(x, weight, bias=None, stride=1, padding=0, groups=1):  # type: ignore[no-untyped-def]
        if x.device.type == "cpu" and x.dim() == 5 and x.shape[0] > 1 and x.shape[-1] >= 48 and weight.shape[-1] == 3:
            return F.conv3d(x.contiguous(memory_format=torch.channels_last_3d), weight, bias, stride, padding, 1,
                            groups).contiguous()
        return plain(x, weight, bias, stride, padding, groups)

    def use(f):  # type: ignore[no-untyped-def]
        return lambda: (setattr(conv, "conv3d", f), setattr(functional, "conv3d", f))
    _abba(args, "full-resolution 3³ convolutions in channels-last 3D",
          {"default layout": (use(plain), use(plain)), "channels-last": (use(layout), use(plain))})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", nargs="+", default=["quick"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--episodes", type=int, default=10, help="timed episodes")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=None, help="tasks per episode (default: the profile's)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (default: the profile's train.amp)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the hypernetwork")
    ap.add_argument("--run", type=Path, default=None, help="print the learning curve of this run folder")
    ap.add_argument("--cpu-bf16", action="store_true",
                    help="a what-if: the training step under bf16 autocast on the CPU as well, where it has bf16 "
                         "(the kit's train.amp acts on CUDA only); alternates fp32 and bf16 rows --rounds times")
    ap.add_argument("--cpu-channels-last", action="store_true",
                    help="a what-if: the training step with its full-resolution 3^3 convolutions in channels-last 3D "
                         "(as the supervised baselines run them); alternates with the default layout --rounds times")
    ap.add_argument("--rounds", type=int, default=2, help="with --cpu-bf16 / --cpu-channels-last: rounds (ABBA)")
    args = ap.parse_args()
    if args.run is not None:
        curve(args.run)
        return
    if args.cpu_bf16 or args.cpu_channels_last:
        (cpu_bf16 if args.cpu_bf16 else cpu_channels_last)(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    dev_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"torch {torch.__version__}, {dev_name}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| profile | device | patch | B | amp | compiled | median s / episode | task-episodes / s | peak MiB "
          "| episodes |")
    print("|---|---|---:|---:|---|---|---:|---:|---:|---:|")
    for p in args.profiles:
        r = measure(p, args.device, args.episodes, args.warmup, args.tasks, False if args.no_amp else None,
                    args.compile)
        print(f"| {r['profile']} | {r['device']} | {r['side']}^3 | {r['B']} | {r['amp']} | {r['compiled']} | "
              f"{r['median_s']:.3f} | "
              f"{r['task_episodes_per_s']:.2f} | {r['peak_mib']:,.0f} | {r['n']} |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
