"""``hyperkit tasks ROOT [--json]``: list binary tasks and check every case's headers and label values;
``hyperkit cache [--prune DAYS]``: what the preprocessing cache holds, and pruning it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from hyperkit.commands import SUMMARIES
from hyperkit.data.layouts import Dataset, default_data_root, discover_datasets
from hyperkit.data.splits import assign_roles, load_split

__all__ = ["register", "summarize_tasks"]


def summarize_tasks(datasets: list[Dataset], split: dict[str, list[str]] | None = None,
                    progress: bool = False) -> list[dict[str, Any]]:
    """One row per binary task, checking every case (headers and label values).

    Returns:
        dicts with keys ``id, layout, dataset, class, channel, cases, cases_total,
        missing_in, role`` — ``cases`` counts the cases in which the structure is present,
        ``missing_in`` lists the case ids where it is absent (reported, not an error).
    """
    rows: list[dict[str, Any]] = []
    for ds in datasets:
        present: dict[int, list[str]] = {v: [] for v in ds.labels}
        for case in tqdm(ds.cases, desc=f"checking {ds.name}", disable=not progress, leave=False):
            for v in ds.present_labels(case):
                present[v].append(case.case_id)
        all_ids = [c.case_id for c in ds.cases]
        for task in ds.tasks():
            have = set(present[task.label_value])
            rows.append({"id": task.task_id, "layout": task.layout, "dataset": task.dataset,
                         "class": task.class_name, "channel": task.channel, "cases": len(have),
                         "cases_total": len(all_ids), "missing_in": [c for c in all_ids if c not in have]})
    roles = assign_roles([r["id"] for r in rows], split)
    for r in rows:
        r["role"] = roles[r["id"]]
    return rows


def _print_rows(rows: list[dict[str, str]], cols: tuple[str, ...]) -> None:
    """A text table: a header of ``cols``, then one line per row, each column as wide as its widest cell."""
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(r[c].ljust(w) for c, w in zip(cols, widths)))


def _print_table(rows: list[dict[str, Any]]) -> None:
    cols = ("id", "layout", "dataset", "class", "channel", "cases", "role")
    _print_rows([{c: str(r[c]) if c != "cases" else f"{r['cases']}/{r['cases_total']}" for c in cols} for r in rows],
                cols)
    absent = [(r["id"], r["missing_in"]) for r in rows if r["missing_in"]]
    n_roles = {role: sum(r["role"] == role for r in rows) for role in ("train", "val", "heldout", "unused")}
    print(f"\n{len(rows)} tasks: " + ", ".join(f"{n} {k}" for k, n in n_roles.items() if n))
    for tid, cases in absent:
        shown = ", ".join(cases[:5]) + (f", ... ({len(cases)} cases)" if len(cases) > 5 else "")
        print(f"note: {tid} is absent in {shown}")


def _run(args: argparse.Namespace) -> int:
    if args.root is not None and args.data is not None and args.root != args.data:
        raise ValueError(f"two data folders given: {args.root} and --data {args.data}; give one")
    root = next((r for r in (args.data, args.root) if r is not None), None) or default_data_root()
    datasets = discover_datasets(root)
    rows = summarize_tasks(datasets, load_split(args.split), progress=not args.json and sys.stderr.isatty())
    if args.json:
        keys = ("id", "layout", "dataset", "class", "channel", "cases", "cases_total", "missing_in", "role")
        print(json.dumps([{k: r[k] for k in keys} for r in rows], indent=2))
    else:
        _print_table(rows)
    return 0


def _run_cache(args: argparse.Namespace) -> int:
    from hyperkit.data.cache import cache_entries, format_size, prune, summary_rows
    from hyperkit.data.preprocess import default_cache_dir

    folder = Path(args.dir) if args.dir is not None else default_cache_dir()
    if args.prune is not None and not 0 <= args.prune < float("inf"):  # NaN fails the comparison too
        raise ValueError(f"--prune must be a finite number of days >= 0, got {args.prune}")
    if args.dry_run and args.prune is None:
        raise ValueError("--dry-run goes with --prune DAYS")
    cols = ("kind", "dataset", "entries", "size", "used", "note")
    if args.prune is None:
        entries = cache_entries(folder)
        if not entries:
            print(f"{folder}: nothing the kit wrote")
            return 0
        _print_rows(summary_rows(entries), cols)
        print(f"\n{len(entries)} entries, {format_size(sum(e.size for e in entries))} in {folder}")
        return 0
    gone = prune(folder, args.prune, dry_run=args.dry_run)
    if gone:
        _print_rows(summary_rows(gone), cols)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(gone)} entries, {format_size(sum(e.size for e in gone))}, from {folder} "
          f"(unused for {args.prune:g} days or more, and bank indexes without their cases)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cache", help=SUMMARIES["cache"],
                       description="List what the preprocessing cache holds (preprocessed cases and the indexes of "
                                   "training banks kept on disk), by dataset, with when each was last used; "
                                   "--prune removes what has not been used for that many days. Do not prune "
                                   "what a running command reads (a training with its bank on disk reads the "
                                   "cached cases every episode).")
    c.add_argument("--dir", default=None, help="the cache (default: $HYPERKIT_CACHE or ~/.cache/hyperkit)")
    c.add_argument("--prune", type=float, default=None, metavar="DAYS",
                   help="remove what has not been used for DAYS days (0: everything the kit wrote there)")
    c.add_argument("--dry-run", action="store_true", help="with --prune: only say what would be removed")
    c.set_defaults(func=_run_cache)
    p = sub.add_parser("tasks", help=SUMMARIES["tasks"],
                       description="List one row per binary task (dataset x class x channel) and check every "
                                   "case: image/label headers and label values (the image voxels are read by "
                                   "the commands that use them).")
    p.add_argument("root", nargs="?", default=None,
                   help="dataset folder or a folder of datasets (default: $HYPERKIT_DATA or data/)")
    p.add_argument("--data", default=None, metavar="ROOT",
                   help="the same folder as ROOT, spelled as the other commands spell it")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--split", default=None, help="split YAML (default: the paper's split)")
    p.set_defaults(func=_run)
