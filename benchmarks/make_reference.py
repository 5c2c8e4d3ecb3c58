"""Export a finished quick-profile run as the kit's reference checkpoint (``hyperkit/reference/quick.pt``).

The reference is the quick profile trained on four times the task-episodes of its 15-minute
default (2000 episodes of 4 tasks instead of 1000 of 2; 1 h 35 min at one thread beside other
work). Recreate it with::

    hyperkit phantoms --out runs/quick/phantoms
    hyperkit train --profile quick --data runs/quick/phantoms --out runs/quick/train-quick
    hyperkit train --profile quick --data runs/quick/phantoms --out runs/reference --episodes 2000 \
        --set train.patience=100 --set train.tasks_per_episode=4
    python benchmarks/make_reference.py --run runs/reference --default-run runs/quick/train-quick

It writes the run's ``best.pt`` in half precision (under 8 MB) and a JSON record beside it:
the command, the run's facts, the default run's best validation Dice (the reference must beat
it), package versions and commit, and the check that ``tests/test_reference.py`` recomputes
(one-shot Dice on the validation tasks of a mini phantom cohort).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hyperkit.config import load_profile
from hyperkit.phantoms import ensure_phantoms
from hyperkit.provenance import run_record
from hyperkit.training.checkpoint import load_hypernet
from hyperkit.training.loop import read_jsonl, run_state
from hyperkit.training.reference import CHECK_COHORT, REFERENCE_DIR, export_reference, reference_check


def _facts(run: Path) -> dict:
    state = run_state(run)
    if state is None:
        raise SystemExit(f"{run}: no finished training run (no last.pt)")
    val = read_jsonl(run / "validation.jsonl")
    return {"episodes": state["episode"], "best_val_dice": round(state["best_dice"], 4),
            "best_episode": state["best_episode"], "train_minutes": round(state["wall_seconds"] / 60, 1),
            "curve": [[r["episode"], r["dice"]] for r in val]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="the longer quick-profile run")
    ap.add_argument("--default-run", required=True, help="the default (15-minute) quick-profile run")
    ap.add_argument("--out", default=str(REFERENCE_DIR / "quick.pt"))
    args = ap.parse_args()
    run, default = Path(args.run), Path(args.default_run)
    facts, base = _facts(run), _facts(default)
    state = run_state(run)
    quick = load_profile("quick")["train"]
    train = state["config"]["train"]
    sets = "".join(f" --set train.{k}={v}" for k, v in sorted(train.items())
                   if k != "episodes" and quick.get(k) != v)
    cmd = (f"hyperkit train --profile quick --data runs/quick/phantoms --out runs/reference "
           f"--episodes {train['episodes']}{sets}")
    out = export_reference(run, args.out, {})
    model, cfg = load_hypernet(out)
    with tempfile.TemporaryDirectory() as tmp:
        root = ensure_phantoms(Path(tmp) / "phantoms", **CHECK_COHORT)
        check = reference_check(model, cfg, root)
    record = run_record(None, cfg["seed"], command=cmd,
                        export=f"python benchmarks/make_reference.py --run {args.run} --default-run {args.default_run}",
                        **facts, default_run={k: v for k, v in base.items() if k != "curve"},
                        check={"cohort": CHECK_COHORT, "dice": round(check, 4)})
    record.pop("config")
    export_reference(run, out, record)
    print(f"{out} ({out.stat().st_size / 2 ** 20:.1f} MiB): best val Dice {facts['best_val_dice']} "
          f"(default run {base['best_val_dice']}), check Dice {check:.4f}")


if __name__ == "__main__":
    main()
