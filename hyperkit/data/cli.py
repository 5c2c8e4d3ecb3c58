"""``hyperkit tasks ROOT [--json]``: list binary tasks and check every case's headers and label values."""

from __future__ import annotations

import argparse
import json
import sys
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


def _print_table(rows: list[dict[str, Any]]) -> None:
    cols = ["id", "layout", "dataset", "class", "channel", "cases", "role"]
    cells = [[str(r[c]) if c != "cases" else f"{r['cases']}/{r['cases_total']}" for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for x in cells:
        print("  ".join(v.ljust(w) for v, w in zip(x, widths)))
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


def register(sub: argparse._SubParsersAction) -> None:
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
