"""The held-out targets of Tables 1-2 along one training: the Hyper U-Net's DSC every N episodes.

Issue 10 asks, for a target the quick profile does not reach, for its measured curve and what limits it. A training
keeps only ``best.pt`` and ``last.pt``, and its validation curve is of four CT organs, not of the table targets. This
script trains with ``hyperkit train``'s own loop in chunks (``train(..., stop_at=E)``, then ``resume``; the kit's
resume ends with the same parameters and metrics as an uninterrupted run, ``tests/test_training.py``), keeps a copy of
``last.pt`` after every chunk, and scores each copy with ``hyperkit evaluate``'s protocol: Hyper U-Net only, the same
support draws and test cases for every copy. So the training folder equals a plain ``hyperkit train`` run of the same
seed on the same machine and thread count, and each point of the curves is what Tables 1-2 would show for a model
stopped there. Below the table, the Spearman rank correlation of the validation DSC with the targets' mean over the
snapshots says how well the signal that chooses ``best.pt`` orders them.

Writes ``OUT/train/`` (the run), ``OUT/snapshots/epNNNN.pt``, ``OUT/eval/epNNNN.csv`` (+ ``.json``, ``.md``),
``OUT/curves.json``, ``OUT/curves.md`` (the table printed at the end) and ``OUT/curves.png``. A second call continues
where the first stopped (finished chunks and evaluations are reused); ``--report`` only reads them.

Examples::

    python benchmarks/target_curves.py --data runs/quick/phantoms --out runs/curves
    python benchmarks/target_curves.py --data runs/quick/phantoms --out runs/curves-3000 --episodes 3000 --every 250
    python benchmarks/target_curves.py --data runs/quick/phantoms --out runs/curves --report
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperkit.config import combine_overrides, load_profile
from hyperkit.evaluation.results_file import read_results
from hyperkit.evaluation.tables import AIMS, TABLES, paper_columns, paper_tables, summarize
from hyperkit.files import read_jsonl
from hyperkit.provenance import run_record

# torch and MONAI (through hyperkit.training and hyperkit.evaluation.run) are imported where a model is trained or
# scored, so that --help, a refused argument and validation_signals.py's use of `spearman` start in a fraction of
# a second

METHOD = "hyper_unet"


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="data folder (the phantoms)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--episodes", type=int, default=None, help="the run's episodes (default: the profile's)")
    ap.add_argument("--every", type=int, default=100, help="episodes between snapshots (default 100)")
    ap.add_argument("--seed", type=int, default=None, help="training seed (default: the profile's)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="profile overrides")
    ap.add_argument("--tasks", nargs="*", default=["paper"], help="held-out targets (default: the ten of Tables 1-2)")
    ap.add_argument("--report", action="store_true", help="read what is there; train and evaluate nothing")
    args = ap.parse_args(argv)
    if args.every < 1:
        ap.error(f"--every must be a positive number of episodes, got {args.every}")
    if args.episodes is not None and args.episodes < 1:
        ap.error(f"--episodes must be positive, got {args.episodes}")
    return args


def _snapshot(out: Path, episode: int) -> Path:
    return out / "snapshots" / f"ep{episode:04d}.pt"


def train_in_chunks(cfg: dict[str, Any], data: Path, out: Path, episodes: int, every: int,
                    seed: int | None) -> list[int]:
    """Train ``out/train`` to ``episodes`` in chunks of ``every``, copying ``last.pt`` after each: the snapshot
    episodes (the last one where the run stopped, earlier than ``episodes`` when its patience ran out)."""
    from hyperkit.training.loop import run_state, train

    run_dir = out / "train"
    done: list[int] = []
    for stop in [*range(every, episodes, every), episodes]:
        state = run_state(run_dir)
        if state is None or (state["episode"] < stop and not state["stopped_early"]):
            t0 = time.perf_counter()
            train(cfg, data, run_dir, episodes=episodes, seed=seed, resume=state is not None, stop_at=stop,
                  progress=True)
            state = run_state(run_dir)
            assert state is not None
            print(f"[curves] trained to episode {state['episode']} ({time.perf_counter() - t0:.0f} s)", flush=True)
        ep = min(stop, state["episode"])
        snap = _snapshot(out, ep)
        if not snap.exists():
            if state["episode"] != ep:
                raise SystemExit(f"{run_dir}: at episode {state['episode']}, past the missing snapshot {snap}")
            snap.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / "last.pt", snap)
        done.append(ep)
        if state["stopped_early"] and state["episode"] <= stop:
            break
    return done


def evaluate_snapshots(out: Path, data: Path, episodes: list[int], tasks: list[str]) -> None:
    """``hyperkit evaluate`` of each snapshot, Hyper U-Net only (reused when finished)."""
    from hyperkit.evaluation.run import run_evaluation

    for ep in episodes:
        t0 = time.perf_counter()
        run_evaluation(_snapshot(out, ep), data, out / "eval" / f"ep{ep:04d}.csv", tasks=tasks, methods=[METHOD],
                       reuse=True, progress=False)
        print(f"[curves] scored episode {ep} ({time.perf_counter() - t0:.0f} s)", flush=True)


def curves(out: Path) -> dict[str, Any]:
    """``{"episodes", "validation", "targets": {column: [DSC per episode]}, "mean", "best_episode"}`` from the
    evaluations and the run's ``validation.jsonl``."""
    from hyperkit.training.loop import run_state

    files = sorted((out / "eval").glob("ep*.csv"))
    if not files:
        raise SystemExit(f"{out / 'eval'}: no evaluations yet; run without --report first")
    val = {r["episode"]: r["dice"] for r in read_jsonl(out / "train" / "validation.jsonl")}
    eps, targets = [], {}  # type: ignore[var-annotated]
    for f in files:
        ep = int(f.stem[2:])
        summary = summarize(read_results(f))
        cols = paper_columns({t for t, _ in summary})
        eps.append(ep)
        for col, task in cols.items():
            targets.setdefault(col, []).append(summary[(task, METHOD)].dsc)
    mean = [sum(v[i] for v in targets.values()) / len(targets) for i in range(len(eps))]
    state = run_state(out / "train") or {}
    return {"episodes": eps, "validation": [val.get(e) for e in eps], "targets": targets, "mean": mean,
            "best_episode": state.get("best_episode")}


def table(c: dict[str, Any]) -> str:
    """Markdown: one row per snapshot, the validation DSC, the mean over the targets and each target."""
    cols = list(c["targets"])
    short = {"hepatic_vessels": "vessels", "lung_tumour": "lung tum.", "colon_tumour": "colon tum.",
             "brain_edema_flair": "oedema", "hippocampus_t1w": "hippoc.", "heart_bssfp": "left atrium",
             "prostate_t2": "prostate"}
    head = ["episode", "validation DSC", "mean of the targets"] + [short.get(k, k) for k in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for i, ep in enumerate(c["episodes"]):
        v = c["validation"][i]
        mark = " (best.pt)" if ep == c["best_episode"] else ""
        cells = [f"{ep}{mark}", "—" if v is None else f"{v:.3f}", f"{c['mean'][i]:.3f}"]
        lines.append("| " + " | ".join(cells + [f"{c['targets'][k][i]:.3f}" for k in cols]) + " |")
    paper = {col: cell for t in TABLES for col, cell in paper_tables()[t].items()}  # the tables paper_columns reads
    lines.append("| paper | | " + f"{sum(paper[k]['hyper_unet']['dsc'][0] for k in cols) / len(cols):.3f} | "
                 + " | ".join(f"{paper[k]['hyper_unet']['dsc'][0]:.3f}" for k in cols) + " |")
    return "\n".join(lines)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation of two series and its p-value; nan for a constant series (no order to compare)."""
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan, math.nan
    from scipy import stats

    r = stats.spearmanr(xs, ys)
    return float(r.statistic), float(r.pvalue)


def agreement(c: dict[str, Any]) -> str:
    """How well the validation DSC, which chooses ``best.pt``, orders the snapshots as the targets' mean does: the
    Spearman rank correlation over the snapshots with a validation (at least three)."""
    pairs = [(v, m) for v, m in zip(c["validation"], c["mean"]) if v is not None]
    if len(pairs) < 3:
        return f"validation against the mean of the targets: {len(pairs)} snapshots, at least 3 needed"
    r, p = spearman(*zip(*pairs))
    head = f"validation against the mean of the targets over {len(pairs)} snapshots: "
    if math.isnan(r):
        return head + "no rank correlation (one of the two is constant)"
    return head + f"Spearman rank correlation {r:+.2f} (p = {p:.2f})"


def figure(c: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8))
    for k, ys in c["targets"].items():
        lw = 2.0 if k in AIMS else 0.8
        ax.plot(c["episodes"], ys, marker="o" if k in AIMS else None, lw=lw, label=k)
    ax.plot(c["episodes"], c["mean"], "k-", lw=2.5, label="mean of the targets")
    if any(v is not None for v in c["validation"]):
        ax.plot(c["episodes"], [v if v is not None else float("nan") for v in c["validation"]], "k--", lw=1.5,
                label="validation DSC (4 CT organs)")
    for k, aim in AIMS.items():
        ax.axhline(aim, color="grey", lw=0.6, ls=":")
    if c["best_episode"] in c["episodes"]:
        ax.axvline(c["best_episode"], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="training episode", ylabel="one-shot Hyper U-Net DSC (test cases, 5 draws)", ylim=(0, None),
           title="Tables 1-2 targets along one training\n(dotted: the aims, liver 0.70, MRI 0.30; "
                 "dashed vertical: best.pt's episode)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    from hyperkit.training.loop import resolve_run_config

    out, data = Path(args.out), Path(args.data)
    cfg = load_profile(args.profile, combine_overrides(args.set))
    tcfg, seed, _ = resolve_run_config(cfg, args.episodes, args.seed)
    if not args.report:
        out.mkdir(parents=True, exist_ok=True)
        record = run_record(cfg, seed, episodes=tcfg.episodes, every=args.every, overrides=args.set, tasks=args.tasks)
        (out / "record.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
        t0 = time.perf_counter()
        eps = train_in_chunks(cfg, data, out, tcfg.episodes, args.every, args.seed)
        evaluate_snapshots(out, data, eps, args.tasks)
        print(f"[curves] {len(eps)} snapshots trained and scored in {time.perf_counter() - t0:.0f} s", flush=True)
    c = curves(out)
    (out / "curves.json").write_text(json.dumps(c, indent=1) + "\n")
    md = table(c)
    (out / "curves.md").write_text(md + "\n")
    figure(c, out / "curves.png")
    print(md)
    print(f"\n{agreement(c)}")
    print(f"\n{out / 'curves.md'}, {out / 'curves.json'}, {out / 'curves.png'}")


if __name__ == "__main__":
    main()
