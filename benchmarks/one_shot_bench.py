"""One-shot quality and speed (issue 6): the protocol on the phantoms at a profile.

Six parts, each a real evaluation run written under ``--out``:

1. ``adapt-lr``: the learning rate of the gradient step (A.1), chosen on the
   **validation** tasks (stomach, oesophagus, gallbladder, urinary bladder), never on
   the held-out ones: one-shot Dice of the Hyper U-Net without the step and with each lr
   (variants of the checkpoint's protocol, :func:`protocol_for`; scored on each validation
   task's test split, supports from its other cases), and each step against the profile's
   (paired over every task's draws and test cases).
2. ``threshold`` (issue 10, a what-if): on the same validation tasks, the Hyper U-Net at
   p = 0.5 against a threshold chosen on the support alone (best support Dice, or the
   support's target volume), paired over the same (draw, case) pairs.
3. ``mirror`` (issue 10, a what-if): the Hyper U-Net predicting with test-time mirroring (its
   sigmoid averaged over the 8 flips of the query's three axes, then p = 0.5; training flips
   every axis) against the protocol's single prediction, on the validation tasks and then on
   every held-out task (``--mirror-heldout``), paired over the same (draw, case) pairs.
4. ``grad-norm`` (a diagnostic): the norm of the gradient the step (A.1) takes, ``||∇θ L_seg||``
   of the generated U-Net on its support, and the support's foreground share, per task (median
   over the draws) on the validation tasks and the ten targets of Tables 1-2; and the target's
   voxel count in each validation case.
5. ``speed``: the Hyper U-Net alone, then with Rand U-Net and "copy the support", on
   every held-out task with the profile's draws; wall time of each.
6. ``tables``: the ten targets of the paper's Tables 1-2 with all five methods, and
   the checks of the issue: Hyper > Rand on every task; liver, spleen and heart DSC
   against 0.7 and against copying the support mask; the ratio of Conv U-Net training
   time (to its best validation) over Hyper U-Net generation + gradient step.

Examples::

    python benchmarks/one_shot_bench.py --checkpoint runs/quick/train-quick/best.pt \\
        --data runs/quick/phantoms --out runs/bench-one-shot
    python benchmarks/one_shot_bench.py ... --parts adapt-lr threshold
    python benchmarks/one_shot_bench.py ... --parts mirror --mirror-heldout
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import time
from pathlib import Path

import torch

from hyperkit.data.layouts import discover_datasets
from hyperkit.evaluation import METHODS, evaluate, summarize
from hyperkit.config import protocol_for
from hyperkit.evaluation.run import run_evaluation
from hyperkit.evaluation.tables import paper_columns
from hyperkit.training.checkpoint import load_hypernet
from hyperkit.config import TrainConfig
from hyperkit.data.bank import TaskBank
from hyperkit.data.tasks import task_parts
from hyperkit.evaluation.baselines import channel_logits
from hyperkit.evaluation.methods import REGISTRY, Context, OneShotMethod, one_shot_model, register
from hyperkit.evaluation.stats import ALL_TASKS, paired_tasks
from hyperkit.metrics import dice
from hyperkit.model.adapt import segmentation_loss
from hyperkit.model.hypernet import HyperUNet
from hyperkit.seeds import torch_generator

LRS = (None, 0.001, 0.003, 0.01, 0.03, 0.1)


def _validation(args: argparse.Namespace) -> tuple[HyperUNet, dict, TaskBank]:
    """The checkpoint's hypernetwork and config, and the validation tasks' patches."""
    hyper, cfg = load_hypernet(args.checkpoint)
    tcfg = TrainConfig.from_config(cfg)
    return hyper, cfg, TaskBank.from_datasets(discover_datasets(args.data), "val", cfg, case_splits=tcfg.val_splits)


def _per_task(rows: list, bank: TaskBank, method: str) -> dict[str, float]:
    s = summarize(rows)
    return {task_parts(t).class_name: round(s[(t, method)].dsc, 3) for t in bank.task_ids}


def _fresh(out: Path) -> Path:
    """``out`` with what a previous run of :func:`run_evaluation` left there removed (CSV, JSON, tables)."""
    for p in (out, out.with_suffix(".json"), out.with_suffix(".md")):
        p.unlink(missing_ok=True)
    return out


def _registered(method: OneShotMethod) -> OneShotMethod:
    """The registered method of ``method``'s name (registered now if it is not yet)."""
    return REGISTRY.get(method.name) or register(method)  # type: ignore[return-value]


def adapt_lr(args: argparse.Namespace) -> None:
    hyper, cfg, bank = _validation(args)
    weight = args.adapt_bce_weight
    if weight == "training":  # the loss the checkpoint was trained with
        weight = TrainConfig.from_config(cfg).bce_weight
    base = protocol_for(cfg, adapt_bce_weight=None if weight is None else float(weight))
    print(f"step loss: Dice + {base.step_bce_weight:g} BCE")
    print(f"validation tasks: {len(bank)}, cases per task: {[len(v) for v in bank.case_ids.values()]}")
    print(f"{'gradient step':>14s}  mean DSC  per task")
    runs = {}
    for lr in LRS:
        ecfg = dataclasses.replace(base, adapt=lr is not None, adapt_lr=lr or base.adapt_lr)
        out = args.out / f"adapt-lr-{lr or 'none'}.csv"
        out.unlink(missing_ok=True)
        runs[lr], _ = evaluate(hyper, bank, ecfg, out, methods=["hyper_unet"], progress=False)
        per = _per_task(runs[lr], bank, "hyper_unet")
        print(f"{str(lr or 'none'):>14s}  {statistics.fmean(per.values()):.3f}     {per}")
    if base.adapt_lr in runs:  # each step against the profile's, paired over every task's draws and cases
        for lr, rows in runs.items():
            if lr != base.adapt_lr:
                d = paired_tasks(rows, runs[base.adapt_lr], pool=ALL_TASKS)[ALL_TASKS]
                print(f"step {lr or 'none'} - step {base.adapt_lr:g} (the profile's): {d.text()} over {d.n} pairs")


#: logit thresholds the support-chosen threshold picks from (p = 0.0025 .. 0.98)
THRESHOLDS = torch.linspace(-6.0, 4.0, 41)


class SupportThreshold(OneShotMethod):
    """What-if (issue 10): the Hyper U-Net with its threshold chosen on the support instead of p = 0.5.

    ``dice``: the logit threshold of :data:`THRESHOLDS` with the best Dice on the support itself;
    ``volume``: the threshold that marks as many support voxels as the support's target has.
    Only the support's label is used, so this is still a one-shot method.
    """

    needs_hyper = True

    def __init__(self, rule: str) -> None:
        self.name, self.rule = f"hyper_threshold_{rule}", rule

    def fit(self, ctx: Context, task: str, draw: int, images: torch.Tensor, masks: torch.Tensor):
        unet = one_shot_model("hyper_unet", ctx.hyper, images, masks, ctx.cfg,
                              torch_generator(ctx.seed, "draw", task, draw))
        logits = lambda x: torch.cat([channel_logits(unet, x[i:i + 1], torch.zeros(1, dtype=torch.long))
                                      for i in range(len(x))])  # noqa: E731
        with torch.no_grad():
            support, target = logits(images), masks > 0.5
        if self.rule == "dice":
            fits = [statistics.fmean(dice(p, g) for p, g in zip(support > t, target)) for t in THRESHOLDS]
            t = float(THRESHOLDS[max(range(len(fits)), key=fits.__getitem__)])
        else:
            k = int(target.sum())
            t = float(support.flatten().sort(descending=True).values[k - 1]) if k else 0.0

        def predictor(query: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return logits(query) > t
        return predictor


def threshold(args: argparse.Namespace) -> None:
    hyper, cfg, bank = _validation(args)
    methods = ["hyper_unet"]
    for rule in ("dice", "volume"):
        methods.append(_registered(SupportThreshold(rule)).name)
    out = args.out / "threshold.csv"
    out.unlink(missing_ok=True)
    rows, _ = evaluate(hyper, bank, protocol_for(cfg), out, methods=methods, progress=False)
    print(f"validation tasks: {len(bank)}; one-shot DSC of the Hyper U-Net by threshold")
    by = {m: _per_task(rows, bank, m) for m in methods}
    for m, per in by.items():
        print(f"{m:24s} {statistics.fmean(per.values()):.3f}  {per}")
    for m in methods[1:]:
        d = paired_tasks(rows, rows, "dsc", m, "hyper_unet", pool=ALL_TASKS)[ALL_TASKS]
        print(f"{m} - hyper_unet: {d.text()} over {d.n} pairs")


#: the 8 subsets of the spatial axes of a (N, 1, D, H, W) batch that test-time mirroring flips
FLIPS = [dims for k in range(4) for dims in itertools.combinations((2, 3, 4), k)]


class MirroredHyper(OneShotMethod):
    """What-if (issue 10): the Hyper U-Net of the draw, its sigmoid averaged over the query's 8 flips.

    The same U-Net as ``hyper_unet`` (same support, generation and gradient step); only the
    prediction differs: ``mean over flips f of f(sigmoid(unet(f(x)))) > 0.5``.
    """

    name = "hyper_mirror"
    needs_hyper = True

    def fit(self, ctx: Context, task: str, draw: int, images: torch.Tensor, masks: torch.Tensor):
        unet = one_shot_model("hyper_unet", ctx.hyper, images, masks, ctx.cfg,
                              torch_generator(ctx.seed, "draw", task, draw))
        zero = torch.zeros(1, dtype=torch.long)

        def predictor(query: torch.Tensor) -> torch.Tensor:
            out = []
            with torch.no_grad():
                for x in query.split(1):
                    p = sum(torch.sigmoid(channel_logits(unet, x.flip(f), zero)).flip(f) for f in FLIPS)
                    out.append(p / len(FLIPS) > 0.5)
            return torch.cat(out)
        return predictor


def mirror(args: argparse.Namespace) -> None:
    _registered(MirroredHyper())
    methods = ["hyper_unet", MirroredHyper.name]
    hyper, cfg, bank = _validation(args)
    out = args.out / "mirror-val.csv"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    sets = {"validation": evaluate(hyper, bank, protocol_for(cfg), out, methods=methods, progress=False)[0]}
    print(f"validation tasks: {len(bank)} ({time.perf_counter() - t0:.0f} s)")
    if args.mirror_heldout:
        out = _fresh(args.out / "mirror-heldout.csv")
        t0 = time.perf_counter()
        sets["held-out"] = run_evaluation(args.checkpoint, args.data, out, methods=methods, progress=False).rows
        print(f"held-out tasks: {len({r['task'] for r in sets['held-out']})} ({time.perf_counter() - t0:.0f} s)")
    for name, rows in sets.items():
        s = summarize(rows)
        tasks = sorted({r["task"] for r in rows})
        per = paired_tasks(rows, rows, "dsc", MirroredHyper.name, "hyper_unet", pool=ALL_TASKS)
        print(f"\n{name}: mean DSC over tasks, single {statistics.fmean(s[(t, 'hyper_unet')].dsc for t in tasks):.3f}, "
              f"mirrored {statistics.fmean(s[(t, MirroredHyper.name)].dsc for t in tasks):.3f}")
        for t in tasks:
            print(f"  {t:48s} {s[(t, 'hyper_unet')].dsc:.3f} -> {s[(t, MirroredHyper.name)].dsc:.3f}  "
                  f"{per[t].text()}")
        print(f"  mirrored - single, all tasks pooled: {per[ALL_TASKS].text()} over {per[ALL_TASKS].n} pairs; "
              f"interval above 0 on {sum(per[t].above_zero for t in tasks)}, below on "
              f"{sum(round(per[t].hi, 3) < 0 for t in tasks)} of {len(tasks)}")


class GradNorm(OneShotMethod):
    """Diagnostic: records ``||∇θ L_seg||`` of the generated U-Net on its support (before the step)
    and the support's foreground share in :attr:`seen`; predicts nothing (all background)."""

    name = "grad_norm"
    needs_hyper = True

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[float, float]]] = {}

    def fit(self, ctx: Context, task: str, draw: int, images: torch.Tensor, masks: torch.Tensor):
        unet = ctx.hyper.generate(images, masks)
        params = [p for p in unet.parameters() if p.requires_grad]
        grads = torch.autograd.grad(segmentation_loss(unet(images), masks, ctx.cfg.step_bce_weight), params)
        norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
        self.seen.setdefault(task, []).append((norm, float(masks.float().mean())))
        return lambda query: torch.zeros_like(query, dtype=torch.bool)


def grad_norm(args: argparse.Namespace) -> None:
    method = _registered(GradNorm())
    hyper, cfg, bank = _validation(args)
    protocol = protocol_for(cfg)
    print("validation tasks, target voxels per case:",
          {task_parts(t).class_name: [int(n) for n in bank.masks[t].flatten(1).sum(1)] for t in bank.task_ids})
    out = args.out / "grad-norm-val.csv"
    out.unlink(missing_ok=True)
    evaluate(hyper, bank, protocol, out, methods=[GradNorm.name], progress=False)
    run_evaluation(args.checkpoint, args.data, _fresh(args.out / "grad-norm-tables.csv"), tasks=["paper"],
                   methods=[GradNorm.name], progress=False)
    print(f"step loss Dice + {protocol.step_bce_weight:g} BCE; per task, median over its draws:")
    for task, seen in method.seen.items():  # type: ignore[attr-defined]
        print(f"  {task:48s} |grad| {statistics.median(n for n, _ in seen):6.2f}   "
              f"support foreground {statistics.median(f for _, f in seen):.4f}   ({len(seen)} draws)")


def speed(args: argparse.Namespace) -> None:
    for name, methods in (("hyper", ["hyper_unet"]), ("one-shot-all", ["hyper_unet", "rand_unet", "copy_support"])):
        out = _fresh(args.out / f"speed-{name}.csv")
        t0 = time.perf_counter()
        res = run_evaluation(args.checkpoint, args.data, out, methods=methods, progress=False)
        wall = time.perf_counter() - t0
        tasks = {r["task"] for r in res.rows}
        print(f"{name:14s} {len(tasks)} held-out tasks x {res.protocol.draws} draws, methods {methods}: "
              f"{wall:.0f} s wall ({wall / 60:.1f} min); {res.record['timings']}")


def tables(args: argparse.Namespace) -> None:
    out = args.out / "tables.csv"
    t0 = time.perf_counter()
    res = run_evaluation(args.checkpoint, args.data, out, tasks=["paper"], methods=list(METHODS),
                         reuse=True, progress=True)
    print(f"tables: {len(res.rows)} rows, {time.perf_counter() - t0:.0f} s this call "
          f"({res.record['wall_seconds']:.0f} s when computed)")
    print(res.tables)
    s = res.summary
    ids = paper_columns({t for t, _ in s})
    print("\nHyper U-Net > Rand U-Net:")
    for c, t in ids.items():
        h, r = s[(t, "hyper_unet")].dsc, s[(t, "rand_unet")].dsc
        print(f"  {c:20s} {h:.3f} vs {r:.3f}  {'yes' if h > r else 'NO'}")
    print("large homogeneous targets (aim: DSC >= 0.7 and above copying the support mask):")
    for c in ("liver", "spleen", "heart_bssfp"):
        t = ids.get(c)
        if t:
            h, cp = s[(t, "hyper_unet")].dsc, s[(t, "copy_support")].dsc
            print(f"  {c:20s} Hyper {h:.3f}  copy {cp:.3f}  >=0.7: {'yes' if h >= 0.7 else 'NO'}  "
                  f"> copy: {'yes' if h > cp else 'NO'}")
    print("timings:", json.dumps(res.record["timings"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--adapt-bce-weight", default=None, metavar="W|training",
                    help="adapt-lr: the step's loss Dice + W BCE ('training': the checkpoint's train.bce_weight; "
                         "default: the profile's evaluate.adapt_bce_weight)")
    ap.add_argument("--parts", nargs="+", default=["adapt-lr", "speed", "tables"],
                    choices=["adapt-lr", "threshold", "mirror", "grad-norm", "speed", "tables"])
    ap.add_argument("--mirror-heldout", action="store_true",
                    help="mirror: also every held-out task (the what-if's second step, after the validation tasks)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_flush_denormal(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for part in args.parts:
        print(f"\n== {part}")
        {"adapt-lr": adapt_lr, "threshold": threshold, "mirror": mirror, "grad-norm": grad_norm, "speed": speed,
         "tables": tables}[part](args)


if __name__ == "__main__":
    main()
