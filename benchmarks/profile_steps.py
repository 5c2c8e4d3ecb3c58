"""Where the time goes (issue 16): torch.profiler tables of the kit's hot paths, and FLOP/s.

Parts (``--parts``, all by default), each a short measurement at the process's thread count:

- ``train``: one training step of the quick profile's hypernetwork (``training_step``:
  sampling, MONAI augmentation, the batched generate + segment pass, Dice + BCE, AdamW) on a
  synthetic bank of sphere cases at 48³ (``benchmarks/train_bench.py``);
- ``conv`` / ``all``: a few Conv U-Net / All U-Net (88 outputs) steps exactly as
  ``train_supervised`` takes them (augmentation, forward, loss, backward, AdamW, and the
  validations at the first and last step), before (``--before``, the git revision of
  ``baselines.py`` before issue 16) and after;
- ``eval``: the one-shot evaluation of one draw with the reference checkpoint: generate a
  U-Net from one support, the gradient step, predict four queries, score them (DSC, NSD twice);
- ``flops``: the achieved FLOP/s of the quick training step (FLOPs counted with
  ``torch.utils.flop_counter.FlopCounterMode``, median wall time of ``--steps`` steps) against
  this machine's dense fp32 matmul rate (``torch.mm`` of ``--mm``² squares, same thread count);
  the same for the Conv U-Net step before and after;
- ``startup``: ``import hyperkit`` and ``hyperkit --help`` / ``hyperkit evaluate --help`` in fresh
  interpreters (median wall time), and the slowest imports of ``python -X importtime``;
- ``kernels``: what the choices of ``baselines.py`` rest on: forward + backward of the U-Net's
  3³ convolutions in the default and the channels-last 3D layout (and channels-last with the
  layout copies around it), the accuracy of GroupNorm in both layouts against float64, a 3³
  convolution at batch 1 against batch 2 (PyTorch sends small batch-1 3D convolutions to its
  slow reference kernel), and ten U-Nets' convolutions as one grouped convolution;
- ``one-image``: the one-shot draw of ``eval`` with and without ``hyperkit.model.conv``'s oneDNN
  route for one-image convolutions (interleaved, median of ``--steps`` each), and the largest
  difference of the draw's logits between the two.

    OMP_NUM_THREADS=2 python benchmarks/profile_steps.py --rows 8
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_speed import BEFORE, load_before  # noqa: E402
from train_bench import sphere_bank  # noqa: E402

from hyperkit.config import SupervisedConfig, TrainConfig, load_profile, protocol_for  # noqa: E402
from hyperkit.data.augment import build_augment  # noqa: E402
from hyperkit.evaluation import baselines as after  # noqa: E402
from hyperkit.evaluation.methods import one_shot_model  # noqa: E402
from hyperkit.evaluation.protocol import score  # noqa: E402
from hyperkit.model import UNet3D, segmentation_loss  # noqa: E402
from hyperkit.seeds import episode_generator  # noqa: E402
from hyperkit.training.loop import fresh_start, training_step  # noqa: E402
from hyperkit.training.reference import load_reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def top_ops(fn: Callable[[], Any], rows: int, title: str, shapes: bool = False) -> float:
    """Profile ``fn`` once (after one warm-up call) and print its top ``rows`` ops by self CPU time; wall seconds.

    With ``shapes``, a second table splits the ops by the shapes of their inputs.
    """
    fn()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as prof:
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n**{title}** ({wall:.2f} s wall under the profiler, {total / 1e6:.2f} s self CPU in ops)\n")
    print("| op | self CPU ms | share | calls |")
    print("|---|---:|---:|---:|")
    for e in events[:rows]:
        print(f"| `{e.key}` | {e.self_cpu_time_total / 1e3:.1f} | {e.self_cpu_time_total / total:.1%} | {e.count} |")
    if shapes:
        by_shape = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: e.self_cpu_time_total,
                          reverse=True)
        print("\n| op | first input shapes | self CPU ms | share | calls |")
        print("|---|---|---:|---:|---:|")
        for e in by_shape[:rows]:
            shown = [sh for sh in e.input_shapes if sh][:3]
            print(f"| `{e.key}` | {shown} | {e.self_cpu_time_total / 1e3:.1f} | {e.self_cpu_time_total / total:.1%} | "
                  f"{e.count} |")
    return wall


def median_seconds(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def flops_of(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ------------------------------------------------------------------------------ the steps
def hyper_step() -> Callable[[], Any]:
    """One quick-profile training step (``training_step``) per call, episode after episode."""
    cfg = load_profile("quick")
    tcfg = TrainConfig.from_config(cfg)
    model, opt, sched = fresh_start(cfg["model"], tcfg, 0)  # where `train` starts, seed 0
    bank = sphere_bank(cfg["data"]["patch_size"], n_tasks=4)
    augment = build_augment(tcfg.intensity) if tcfg.augment else None
    episode = [0]

    def step() -> None:
        training_step(model, opt, sched, bank, tcfg, episode_generator(0, episode[0]), augment, torch.device("cpu"))
        episode[0] += 1
    return step


def _sphere_samples(module: ModuleType, n: int, channels: int) -> Any:
    bank = sphere_bank(48, n_tasks=1, n_cases=n)
    tid = bank.task_ids[0]
    return module.Samples(bank.images[tid], bank.masks[tid], torch.arange(n) % channels)


def supervised_run(module: ModuleType, outputs: int, steps: int) -> Callable[[], Any]:
    """``train_supervised`` of ``module`` for ``steps`` steps (batch 2, augmentation, validation at both ends)."""
    cfg = SupervisedConfig(steps=steps, batch=2, lr=1e-3, val_every=steps, patience=10, augment=True, warmup=0)
    train, val = _sphere_samples(module, 4, outputs), _sphere_samples(module, 2, outputs)

    def run() -> None:
        torch.manual_seed(0)
        module.train_supervised(UNet3D(8, out_channels=outputs), train, val, cfg, torch.Generator().manual_seed(0),
                                balance=outputs > 1)
    return run


def conv_step(module: ModuleType) -> Callable[[], Any]:
    """Forward, loss, backward and AdamW of one Conv U-Net batch, as ``module`` computes them."""
    torch.manual_seed(0)
    net = UNet3D(8)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    s = _sphere_samples(module, 2, 1)
    fast = getattr(module, "channels_last_convs", None)

    def step() -> None:
        if fast is None:
            loss = segmentation_loss(net(s.images), s.masks)
        else:
            with fast(net):
                loss = segmentation_loss(module.channel_logits(net, s.images, s.channels), s.masks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def one_draw(data: Path | None) -> Callable[[], Any]:
    """One draw of the one-shot protocol with the reference checkpoint: generate, step, predict, score."""
    hyper, cfg = load_reference()
    ecfg = protocol_for(cfg, "quick")
    if data is not None and data.is_dir():
        from hyperkit.evaluation.run import heldout_bank
        bank = heldout_bank(data, cfg, tasks=["liver"])
        task = bank.task_ids[0]
    else:
        bank = sphere_bank(cfg["data"]["patch_size"], n_tasks=1, n_cases=5)
        task = bank.task_ids[0]
    images, masks = bank.images[task], bank.masks[task]
    spacing = getattr(bank, "spacing", (4.0, 4.0, 4.0))

    def run() -> None:
        unet = one_shot_model("hyper_unet", hyper, images[:1], masks[:1], ecfg, None)
        score(after.predict(unet, images[1:5]), masks[1:5], spacing, ecfg.tau)
    return run


# ------------------------------------------------------------------------------ parts
def part_one_image(args: argparse.Namespace) -> None:
    import torch.nn.functional as F
    import hyperkit.model.conv as conv
    routed = conv._one_image_on_cpu
    print("\n**3³ convolutions of one image** (median ms of 5): PyTorch's choice against "
          "`hyperkit.model.conv.conv3d`\n")
    print("| convolution | PyTorch's choice | routed | ratio |")
    print("|---|---:|---:|---:|")
    for cin, cout, side, stride, grad in ((8, 8, 48, 1, False), (1, 8, 48, 1, False), (8, 8, 48, 2, False),
                                          (16, 16, 24, 1, False), (8, 8, 48, 1, True), (16, 16, 24, 1, True)):
        x = torch.randn(1, cin, side, side, side, requires_grad=grad)
        w = torch.randn(cout, cin, 3, 3, 3, requires_grad=grad)

        def run(f: Callable[..., torch.Tensor]) -> Callable[[], None]:
            def go() -> None:
                with torch.set_grad_enabled(grad):
                    y = f(x, w, None, stride, 1)
                    if grad:
                        y.sum().backward()
            return go
        ms = [1e3 * median_seconds(run(f), 5) for f in (F.conv3d, conv.conv3d)]
        print(f"| {cin} → {cout} at {side}³, stride {stride}, {'forward + backward' if grad else 'forward'} | "
              f"{ms[0]:.1f} | {ms[1]:.1f} | {ms[0] / ms[1]:.1f} |")
    draw = one_draw(args.data)

    @contextlib.contextmanager
    def pytorchs_choice() -> Iterator[None]:  # the one-image route switched off inside the block
        conv._one_image_on_cpu = lambda x, w: False  # type: ignore[assignment]
        try:
            yield
        finally:
            conv._one_image_on_cpu = routed  # type: ignore[assignment]

    def timed(route: bool) -> float:
        with contextlib.nullcontext() if route else pytorchs_choice():
            t = time.perf_counter()
            draw()
            return time.perf_counter() - t
    draw()  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.steps):
        for route in ((False, True) if i % 2 == 0 else (True, False)):
            times[route].append(timed(route))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    x = torch.randn(1, 1, 48, 48, 48, generator=torch.Generator().manual_seed(0))
    net = UNet3D(8).eval()
    with torch.no_grad():
        a = net(x)
        with pytorchs_choice():
            b = net(x)
    print(f"\n**One-shot draw** (reference checkpoint, liver: generate, gradient step, predict 4 queries, score), "
          f"median of {args.steps}, interleaved: PyTorch's own choice {off:.2f} s, one-image convolutions through "
          f"oneDNN {on:.2f} s, ratio {off / on:.2f}; a U-Net's logits on one 48³ image differ by at most "
          f"{float((a - b).abs().max()):.1e}")


def part_kernels(args: argparse.Namespace) -> None:
    import torch.nn.functional as F
    cl = torch.channels_last_3d

    def fwd_bwd(x: torch.Tensor, w: torch.Tensor, stride: int = 1, copies: bool = False, groups: int = 1) -> None:
        xx = x.detach().requires_grad_(x.shape[1] > 1)
        y = F.conv3d(xx.contiguous(memory_format=cl) if copies else xx, w, padding=1, stride=stride, groups=groups)
        (y.contiguous() if copies else y).backward(torch.ones_like(y))

    print("\n**3³ convolutions, batch 2, forward + backward** (median ms of 5)\n")
    print("| in → out channels, side, stride | default layout | channels-last | channels-last + layout copies |")
    print("|---|---:|---:|---:|")
    for cin, cout, side, stride in ((1, 8, 48, 1), (8, 8, 48, 1), (8, 8, 48, 2), (16, 16, 24, 1), (16, 16, 48, 1),
                                    (32, 32, 32, 1)):
        x = torch.randn(2, cin, side, side, side)
        w = torch.randn(cout, cin, 3, 3, 3, requires_grad=True)
        xc = x.contiguous(memory_format=cl)
        ms = [1e3 * median_seconds(f, 5) for f in (lambda: fwd_bwd(x, w, stride), lambda: fwd_bwd(xc, w, stride),
                                                   lambda: fwd_bwd(x, w, stride, copies=True))]
        print(f"| {cin} → {cout}, {side}³, {stride} | {ms[0]:.1f} | {ms[1]:.1f} | {ms[2]:.1f} |")
    x = torch.randn(2, 8, 48, 48, 48) * 0.05 + 0.3
    g, b = torch.randn(8), torch.randn(8)
    ref = F.group_norm(x.double(), 1, g.double(), b.double())
    errs = [float((F.group_norm(v, 1, g, b) - ref).abs().max()) for v in (x, x.contiguous(memory_format=cl))]
    print(f"\nGroupNorm (1 group) of (2, 8, 48³) values ~ N(0.3, 0.05²), max abs error against float64: "
          f"default layout {errs[0]:.1e}, channels-last {errs[1]:.1e}")
    w8 = torch.randn(8, 8, 3, 3, 3)
    per = {n: 1e3 * median_seconds(lambda: F.conv3d(torch.randn(n, 8, 48, 48, 48), w8, padding=1), 3) / n
           for n in (1, 2)}
    print(f"\n8 → 8 3³ convolution at 48³, forward, ms per image: batch 1 {per[1]:.1f}, batch 2 {per[2]:.1f} "
          "(batch 1 runs `aten::slow_conv3d_forward`)")
    models = 10
    xs = torch.randn(2, 8, 48, 48, 48)
    w1 = torch.randn(8, 8, 3, 3, 3, requires_grad=True)
    xg = torch.randn(2, 8 * models, 48, 48, 48)
    wg = torch.randn(8 * models, 8, 3, 3, 3, requires_grad=True)
    sep = [models * 1e3 * median_seconds(lambda: fwd_bwd(v, w1), 3) for v in (xs, xs.contiguous(memory_format=cl))]
    grp = [1e3 * median_seconds(lambda: fwd_bwd(v, wg, groups=models), 3)
           for v in (xg, xg.contiguous(memory_format=cl))]
    print(f"\nten U-Nets' 8 → 8 convolutions at 48³ (batch 2), forward + backward, ms: ten separate "
          f"{sep[0]:.0f} (default layout) / {sep[1]:.0f} (channels-last); one grouped convolution (groups = 10) "
          f"{grp[0]:.0f} / {grp[1]:.0f}")


def part_flops(args: argparse.Namespace, before: ModuleType) -> None:
    a = torch.randn(args.mm, args.mm)
    mm = median_seconds(lambda: torch.mm(a, a), 5)
    peak = 2 * args.mm ** 3 / mm
    print(f"\n**Efficiency** ({torch.get_num_threads()} threads): dense fp32 `torch.mm` {args.mm}² x {args.mm}²: "
          f"{peak / 1e9:.1f} GFLOP/s (median of 5)\n")
    print("| step | GFLOP per step | median s per step | achieved GFLOP/s | share of the matmul rate |")
    print("|---|---:|---:|---:|---:|")
    for name, make in (("quick training step of the hypernetwork (B = 2 tasks)", hyper_step),
                       ("Conv U-Net step, before (batch 2)", lambda: conv_step(before)),
                       ("Conv U-Net step, after (batch 2)", lambda: conv_step(after))):
        step = make()
        step()  # warm-up
        flops = flops_of(step)
        sec = median_seconds(step, args.steps)
        print(f"| {name} | {flops / 1e9:.2f} | {sec:.3f} | {flops / sec / 1e9:.1f} | {flops / sec / peak:.1%} |",
              flush=True)
    mm2 = median_seconds(lambda: torch.mm(a, a), 5)
    print(f"\nmatmul rate again after the steps: {2 * args.mm ** 3 / mm2 / 1e9:.1f} GFLOP/s")


def part_startup(args: argparse.Namespace) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lines = {"import hyperkit": "import hyperkit",
             "hyperkit --help": "import sys; from hyperkit.cli import main; sys.argv=['hyperkit','--help']; main()",
             "hyperkit evaluate --help": "import sys; from hyperkit.cli import main; "
                                         "sys.argv=['hyperkit','evaluate','--help']; main()",
             "import hyperkit.evaluation.run (what `hyperkit evaluate` imports to work)":
                 "import hyperkit.evaluation.run"}
    print("\n**Start-up** (fresh interpreters, median of 3)\n")
    print("| command | median s |")
    print("|---|---:|")
    for label, code in lines.items():
        sec = median_seconds(lambda: subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                                                    capture_output=True, check=False), 3)
        print(f"| `{label}` | {sec:.2f} |")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", lines[list(lines)[-1]]], env=env, cwd=ROOT,
                         capture_output=True, text=True).stderr
    rows = []
    for line in out.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [p.strip() for p in line[len("import time:"):].split("|")]
            if parts[0].isdigit():
                rows.append((int(parts[1]), int(parts[0]), parts[2]))
    top = [r for r in sorted(rows, reverse=True) if not r[2].startswith(" " * 6)][:args.rows]
    print("\nslowest top-level imports of `import hyperkit.evaluation.run` (`python -X importtime`, cumulative):\n")
    print("| module | cumulative ms | self ms |")
    print("|---|---:|---:|")
    for cum, own, name in top:
        print(f"| `{name.strip()}` | {cum / 1e3:.0f} | {own / 1e3:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["train", "conv", "all", "eval", "flops", "startup"],
                    choices=["train", "conv", "all", "eval", "flops", "startup", "kernels", "one-image"])
    ap.add_argument("--rows", type=int, default=8, help="ops per table")
    ap.add_argument("--shapes", action="store_true", help="(a) and (c) also by input shapes")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per FLOP/s row")
    ap.add_argument("--sup-steps", type=int, default=3, help="steps of each profiled Conv/All U-Net training")
    ap.add_argument("--mm", type=int, default=2048, help="side of the matmul squares")
    ap.add_argument("--data", type=Path, default=ROOT / "runs/quick/phantoms",
                    help="phantoms for the one-shot draw (liver); synthetic spheres when absent")
    ap.add_argument("--before", default=BEFORE)
    args = ap.parse_args()
    torch.set_flush_denormal(True)  # as evaluate() does
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    before = load_before(args.before)
    t0 = time.perf_counter()
    if "train" in args.parts:
        top_ops(hyper_step(), args.rows, "(a) one quick-profile training step of the hypernetwork", args.shapes)
    for part, outputs, label in (("conv", 1, "Conv U-Net"), ("all", 88, "All U-Net (88 outputs)")):
        if part in args.parts:
            for name, module in (("before", before), ("after", after)):
                top_ops(supervised_run(module, outputs, args.sup_steps), args.rows,
                        f"(b) {label}: train_supervised, {args.sup_steps} steps + 2 validations, {name}")
    if "eval" in args.parts:
        top_ops(one_draw(args.data), args.rows, "(c) one-shot evaluation of one draw (reference checkpoint)",
                args.shapes)
    if "flops" in args.parts:
        part_flops(args, before)
    if "startup" in args.parts:
        part_startup(args)
    if "kernels" in args.parts:
        part_kernels(args)
    if "one-image" in args.parts:
        part_one_image(args)
    print(f"\n{time.perf_counter() - t0:.0f} s in all; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
