"""Model benchmarks: parameter counts, U-Net generation, one training step (prints markdown).

Measures, for each profile:

* parameters per component (target U-Net: total / generated / shared; encoder;
  hypernetwork: positional codes, z* MLP, H, head MLP);
* time and peak memory to generate one U-Net from one support of the profile's
  patch size (``HyperUNet.generate``, eval mode);
* time and peak memory of one training step for one task: generate from a support,
  segment support and query (``forward_episode``), ``0.2·L(support) + 0.8·L(query)``,
  backward.

Each measurement runs in a fresh process. Peak memory is the growth over the
state after building the model and its inputs, over all runs of that process: on
CUDA from ``torch.cuda.max_memory_allocated``; on the CPU from the resident-set
high-water mark (``VmHWM`` in ``/proc/self/status``). Times are medians of the
timed runs; on a shared CPU the printed load average says how busy it was.

Examples::

    python benchmarks/model_bench.py --profiles quick --repeats 5
    python benchmarks/model_bench.py --profiles paper --repeats 1 --warmup 0 --sections generate
    python benchmarks/model_bench.py --device cuda --repeats 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from hyperkit.config import load_profile
from hyperkit.model import HyperUNet, parameter_table, segmentation_loss

SECTIONS = ("params", "generate", "train")


def sphere_support(side: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One synthetic case ``(1, 1, side, side, side)``: a bright sphere of radius side/5 in noise."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*(torch.arange(side),) * 3, indexing="ij"), -1).float()
    centre = side / 2 + torch.randint(-side // 8, side // 8 + 1, (3,), generator=g)
    mask = ((grid - centre).norm(dim=-1) < side / 5).float()[None, None]
    image = torch.randn(mask.shape, generator=g) + 2 * mask
    return image, mask


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _measure_in_child(
    profile: str, section: str, device: str, side: int, repeats: int, warmup: int, threads: int | None
) -> tuple:
    """Runs in a fresh process: build the model, then time ``warmup + repeats`` runs of one section.

    Returns:
        ``(median seconds of the timed runs, peak memory growth in MiB over the state after
        building the model and inputs)``.
    """
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    hyper = HyperUNet.from_profile(profile).to(dev)
    image, mask = (t.to(dev) for t in sphere_support(side))
    query, q_mask = (t.to(dev) for t in sphere_support(side, seed=1))
    if section == "generate":
        hyper.eval()

        def fn() -> None:
            hyper.generate(image, mask)

    else:
        hyper.train()

        def fn() -> None:
            s, q = hyper.forward_episode(image[None], mask[None], query[None])
            loss = 0.2 * segmentation_loss(s[0], mask) + 0.8 * segmentation_loss(q[0], q_mask)
            loss.backward()
            hyper.zero_grad(set_to_none=True)

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _rss_mib("VmRSS")
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else _rss_mib("VmHWM")
    return statistics.median(times), peak - base


def measure(*args: object) -> tuple:
    """:func:`_measure_in_child` in a fresh process, so that no earlier run's memory counts."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure_in_child, *args).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--profiles", nargs="+", default=["quick", "paper"])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--size", type=int, default=None, help="volume side (default: the profile's patch_size)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, device {device} ({name}), CPU: {cpu}, {os.cpu_count()} cores, "
          f"torch threads {threads}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"command: python benchmarks/model_bench.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")

    if "params" in args.sections:
        tables = {p: parameter_table(HyperUNet.from_profile(p)) for p in args.profiles}
        print("| component | " + " | ".join(args.profiles) + " |")
        print("|---|" + "---:|" * len(args.profiles))
        for row in next(iter(tables.values())):
            print(f"| {row} | " + " | ".join(f"{tables[p][row]:,}" for p in args.profiles) + " |")
        print()

    rows = []
    for p in args.profiles:
        side = args.size or load_profile(p)["data"]["patch_size"]
        for section, what in (("generate", "generate one U-Net (K=1)"), ("train", "train step (1 task, fwd + bwd)")):
            if section in args.sections:
                t, mem = measure(p, section, args.device, side, args.repeats, args.warmup, args.threads)
                rows.append((p, what, side, t, mem))
    if rows:
        print("| profile | what | volume | device | median time (s) | peak memory (MiB) | repeats |")
        print("|---|---|---|---|---:|---:|---:|")
        for p, what, side, t, mem in rows:
            print(f"| {p} | {what} | {side}^3 | {device.type} | {t:.3f} | {mem:,.0f} | {args.repeats} |")
        print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
