"""Which validation signal orders a training's snapshots as the held-out table targets do?

Issue 10 asks for a validation signal trustworthy enough to choose ``best.pt``. The training's signal is the one-shot
DSC on four never-trained CT organs (the paper's split: MRI stays unseen), and over the snapshots of the default
training it orders them nearly against the ten table targets (``benchmarks/target_curves.py --report``: Spearman
-0.75), because training on CT can wear the CT-to-MRI transfer away. This script scores, on the snapshots of one or
more ``target_curves.py`` folders, candidate signals that still use no MRI and no held-out task:

- ``plain``: the training's own validation (recomputed; it must equal the run's ``validation.jsonl``);
- ``rescaled``, ``inverted``, ``folded``: the same CT validation cases with their intensities remapped as a modality
  change would: each patch's 1st-99th percentiles mapped to [0, 1] and clipped, as the kit normalises MRI
  (``rescaled``, :func:`hyperkit.data.augment.rescale_percentiles`); that, reversed (``inverted``: dark and bright
  tissues swap); and folded, ``|2 x - 1|`` (``folded``: a non-monotone map, mid-grey dark and both ends bright).
  Support and queries of a task share the map, as the support and queries of an MRI target share a modality;
- ``shifted``: the mean of the three remapped signals;
- ``all cases``: the four validation structures on the cases of every subject, the training subjects' too (the
  training never sees these structures' masks; ``train.val_splits`` holds them to the 4 validation and test subjects,
  2-4 cases per structure);
- ``seen``: the training structures on the validation subjects' cases (seen structures, unseen cases: how well the
  model fits the training tasks, one support and ``--seen-queries`` queries per task).

For each signal and folder: the Spearman rank correlation with the mean of the ten targets, of the four MRI and of
the six CT targets (from ``curves.json``), and the targets' mean at the snapshot each signal would choose.
``--checkpoints label=path`` scores any trained checkpoints (e.g. the ``best.pt`` of trainings with and without an
augmentation) and prints one row of signals per checkpoint: a CT-only reading of how a model copes with contrast
changes, with MRI left unseen.

Examples::

    python benchmarks/validation_signals.py --data runs/quick/phantoms --runs runs/curves runs/curves-ref
    python benchmarks/validation_signals.py --data runs/quick/phantoms --runs runs/curves --report
    python benchmarks/validation_signals.py --data runs/quick/phantoms --checkpoints s0=runs/a/best.pt s1=runs/b/best.pt
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperkit.evaluation.tables import paper_tables
from hyperkit.files import read_jsonl
from target_curves import spearman

if TYPE_CHECKING:  # torch and MONAI are imported where snapshots are scored: --report and refusals start at once
    from torch import Tensor

    from hyperkit.data.bank import TaskBank
    from hyperkit.model.hypernet import HyperUNet


def _rescaled(x: Tensor) -> Tensor:
    from hyperkit.data.augment import rescale_percentiles

    return rescale_percentiles(x)


#: intensity maps of a (N, 1, S, S, S) stack of CT patches, applied patch by patch
REMAPS: dict[str, Callable[[Tensor], Tensor]] = {
    "rescaled": _rescaled,
    "inverted": lambda x: 1.0 - _rescaled(x),
    "folded": lambda x: (2.0 * _rescaled(x) - 1.0).abs(),
}
SIGNALS = ("plain", *REMAPS, "shifted", "all cases", "seen")


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="data folder (the phantoms the runs were trained on)")
    ap.add_argument("--runs", nargs="*", default=[], help="target_curves.py output folders")
    ap.add_argument("--checkpoints", nargs="*", default=[], metavar="LABEL=PATH", help="checkpoints to score")
    ap.add_argument("--seen-queries", type=int, default=3, help="queries per training structure (default 3)")
    ap.add_argument("--report", action="store_true", help="read the stored signals; score nothing")
    args = ap.parse_args(argv)
    if not args.runs and not args.checkpoints:
        ap.error("give --runs, --checkpoints or both")
    if args.report and args.checkpoints:
        ap.error("--report reads the stored signals of --runs; --checkpoints are always scored")
    for item in args.checkpoints:
        label, _, path = item.partition("=")
        if not label or not Path(path).is_file():
            ap.error(f"--checkpoints takes LABEL=PATH to a checkpoint file, got {item!r}")
    if args.seen_queries < 1:
        ap.error(f"--seen-queries must be positive, got {args.seen_queries}")
    return args


def remapped(bank: TaskBank, fn: Callable[[Tensor], Tensor]) -> TaskBank:
    """The bank with every image stack passed through ``fn`` (masks and case ids shared)."""
    from hyperkit.data.bank import TaskBank

    return TaskBank({t: fn(v) for t, v in bank.images.items()}, bank.masks, bank.case_ids, bank.spacing)


def banks(data: Path, cfg: dict[str, Any]) -> dict[str, TaskBank]:
    """The validation bank as training builds it, the validation structures on every subject's cases, and the
    training structures on the validation subjects."""
    from hyperkit.data.bank import TaskBank
    from hyperkit.data.layouts import discover_datasets

    datasets = discover_datasets(data)
    splits = cfg["train"]["val_splits"]
    val = TaskBank.from_datasets(datasets, "val", cfg, case_splits=splits, progress=True)
    every = TaskBank.from_datasets(datasets, "val", cfg, progress=True)
    seen = TaskBank.from_datasets(datasets, "train", cfg, case_splits=splits, progress=True)
    return {"val": val, "all cases": every, "seen": seen}


def score_snapshot(model: HyperUNet, bank: dict[str, TaskBank], cfg: dict[str, Any], seen_queries: int,
                   have: dict[str, float]) -> dict[str, float]:
    """The signals of one loaded snapshot that ``have`` lacks, added to a copy of it."""
    import torch

    from hyperkit.training.loop import one_shot_validation

    dev = torch.device("cpu")
    tcfg = cfg["train"]
    out = dict(have)
    for name in ("plain", *REMAPS, "all cases", "seen"):
        if name not in out:
            src = bank["val" if name == "plain" else name]
            queries, supports = (seen_queries, 1) if name == "seen" else (tcfg["val_queries"], tcfg["val_supports"])
            out[name] = one_shot_validation(model, src, queries, dev, False, supports)["dice"]
    out["shifted"] = sum(out[n] for n in REMAPS) / len(REMAPS)
    return {k: out[k] for k in SIGNALS}


def cached_banks(cache: dict[str, Any], data: Path, cfg: dict[str, Any]) -> dict[str, TaskBank]:
    """:func:`banks` and the remapped validation banks, loaded once per preprocessing (``data`` section) and
    validation subjects: runs and checkpoints of one profile share them, another profile's get their own."""
    key = json.dumps([cfg["data"], cfg["train"]["val_splits"]], sort_keys=True, default=str)
    if key not in cache:
        t0 = time.perf_counter()
        cache[key] = banks(data, cfg)
        cache[key].update({n: remapped(cache[key]["val"], f) for n, f in REMAPS.items()})
        print(f"[signals] banks loaded ({time.perf_counter() - t0:.0f} s)", flush=True)
    return cache[key]


def score_checkpoints(items: list[str], data: Path, seen_queries: int, cache: dict[str, Any]) -> str:
    """Markdown: one row of signals per ``label=path`` checkpoint."""
    from hyperkit.training.checkpoint import load_hypernet

    lines = ["| checkpoint | " + " | ".join(SIGNALS) + " |", "|---|" + "---:|" * len(SIGNALS)]
    for item in items:
        label, _, path = item.partition("=")
        model, cfg = load_hypernet(path)
        t0 = time.perf_counter()
        got = score_snapshot(model, cached_banks(cache, data, cfg), cfg, seen_queries, {})
        print(f"[signals] {label} ({time.perf_counter() - t0:.0f} s)", flush=True)
        lines.append(f"| {label} | " + " | ".join(f"{got[k]:.3f}" for k in SIGNALS) + " |")
    return "\n".join(lines)


def score_run(run: Path, data: Path, seen_queries: int, cache: dict[str, Any]) -> dict[str, Any]:
    """``{episode: {signal: DSC}}`` for every snapshot of ``run``, stored in ``run/signals.json`` and reused."""
    from hyperkit.training.checkpoint import load_hypernet

    store = run / "signals.json"
    done: dict[str, Any] = json.loads(store.read_text()) if store.exists() else {}
    snaps = sorted((run / "snapshots").glob("ep*.pt"))
    if not snaps:
        raise SystemExit(f"{run / 'snapshots'}: no snapshots; run benchmarks/target_curves.py first")
    for snap in snaps:
        ep = str(int(snap.stem[2:]))
        if ep in done and set(done[ep]) == set(SIGNALS):
            continue
        model, cfg = load_hypernet(snap)
        t0 = time.perf_counter()
        done[ep] = score_snapshot(model, cached_banks(cache, data, cfg), cfg, seen_queries, done.get(ep, {}))
        store.write_text(json.dumps(done, indent=1) + "\n")
        print(f"[signals] {run.name} episode {ep}: "
              + ", ".join(f"{k} {v:.3f}" for k, v in done[ep].items()) + f" ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    return done


def target_means(run: Path) -> dict[str, dict[int, float]]:
    """``{"all" | "MRI" | "CT": {episode: mean DSC of those table targets}}`` from ``curves.json``."""
    c = json.loads((run / "curves.json").read_text())
    mri = set(paper_tables()["table2_mri"])
    groups = {"all": list(c["targets"]), "MRI": [k for k in c["targets"] if k in mri],
              "CT": [k for k in c["targets"] if k not in mri]}
    return {g: {ep: sum(c["targets"][k][i] for k in cols) / len(cols) for i, ep in enumerate(c["episodes"])}
            for g, cols in groups.items()}


def check_plain(run: Path, signals: dict[str, Any]) -> float:
    """Largest gap between the recomputed plain signal and the run's logged validation DSC."""
    logged = {r["episode"]: r["dice"] for r in read_jsonl(run / "train" / "validation.jsonl")}
    gaps = [abs(v["plain"] - logged[int(ep)]) for ep, v in signals.items() if int(ep) in logged]
    return max(gaps) if gaps else math.nan


def report(run: Path, signals: dict[str, Any]) -> str:
    """Markdown: per signal, Spearman with the target groups' means and the snapshot it would choose."""
    means = target_means(run)
    eps = sorted(int(e) for e in signals if int(e) in means["all"])
    if len(eps) < 3:
        return f"{run}: {len(eps)} scored snapshots with target curves, at least 3 needed"
    lines = [f"**{run.name}** ({len(eps)} snapshots; plain signal within {check_plain(run, signals):.1e} of "
             "the run's validation.jsonl)", "",
             "| signal | Spearman, all ten | MRI four | CT six | chooses episode | targets' mean there (MRI, CT) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in SIGNALS:
        xs = [signals[str(e)][name] for e in eps]
        cells = [name]
        for g in ("all", "MRI", "CT"):
            r, p = spearman(xs, [means[g][e] for e in eps])
            cells.append("— (a constant series)" if math.isnan(r) else f"{r:+.2f} (p = {p:.2f})")
        pick = eps[max(range(len(eps)), key=lambda i: xs[i])]
        cells += [str(pick), f"{means['all'][pick]:.3f} ({means['MRI'][pick]:.3f}, {means['CT'][pick]:.3f})"]
        lines.append("| " + " | ".join(cells) + " |")
    best = max(eps, key=lambda e: means["all"][e])
    lines += ["", f"Highest targets' mean over the snapshots: {means['all'][best]:.3f} at episode {best}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if not args.report:
        import torch

        torch.set_grad_enabled(False)
    cache: dict[str, Any] = {}
    for run in map(Path, args.runs):
        if args.report:
            store = run / "signals.json"
            if not store.exists():
                raise SystemExit(f"{store}: not scored yet; run without --report first")
            signals = json.loads(store.read_text())
        else:
            signals = score_run(run, Path(args.data), args.seen_queries, cache)
        print(report(run, signals) + "\n", flush=True)
    if args.checkpoints:
        print(score_checkpoints(args.checkpoints, Path(args.data), args.seen_queries, cache), flush=True)


if __name__ == "__main__":
    main()
