"""Tables 1-2: the kit's one-shot numbers beside the paper's (DESIGN.md §6).

The paper's values are data (``hyperkit/paper_results/tables.yaml``) and are always
labelled as the paper's; ``task_map.yaml`` says which kit task each paper column is.
"""

from __future__ import annotations

import fnmatch
import statistics
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Mapping, Sequence

import yaml

from hyperkit.evaluation.config import METHODS

__all__ = ["Stat", "paper_tables", "task_map", "table_tasks", "summarize", "comparison_table",
           "METHOD_LABELS", "TABLES"]

#: the paper's tables this module can rebuild
TABLES: tuple[str, ...] = ("table1_ct", "table2_mri")
METHOD_LABELS: dict[str, str] = {"rand_unet": "Rand U-Net", "all_unet": "All U-Net", "hyper_unet": "Hyper U-Net",
                                 "conv_unet": "Conv U-Net", "copy_support": "Copy support mask"}


@dataclass(frozen=True)
class Stat:
    """Mean ± std (population std over all scored cases × draws) of DSC and NSD, and the count."""

    dsc: float
    dsc_std: float
    nsd: float
    nsd_std: float
    n: int


@lru_cache(maxsize=None)
def _yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("hyperkit.paper_results").joinpath(name).read_text())


def paper_tables() -> dict[str, Any]:
    """The paper's Tables 1-6 as stored (``table -> task -> method -> {dsc, nsd: [mean, std]}``)."""
    return _yaml("tables.yaml")


def task_map() -> dict[str, str]:
    """Paper column -> glob pattern on kit task ids."""
    return dict(_yaml("task_map.yaml"))


def table_tasks(table: str, task_ids: Iterable[str]) -> dict[str, str | None]:
    """For each column of ``table``, the kit task that plays it (``None`` when absent)."""
    if table not in TABLES:
        raise ValueError(f"table must be one of {list(TABLES)}, got {table!r}")
    ids = sorted(task_ids)
    cols = [k for k in paper_tables()[table] if k != "caption"]
    out: dict[str, str | None] = {}
    for col in cols:
        hits = fnmatch.filter(ids, task_map()[col])
        out[col] = hits[0] if hits else None
    return out


def summarize(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Stat]:
    """``(task, method) -> Stat`` over every row (cases × draws) of that pair."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        d = [float(r["dsc"]) for r in rs]
        s = [float(r["nsd"]) for r in rs]
        out[key] = Stat(statistics.fmean(d), statistics.pstdev(d), statistics.fmean(s), statistics.pstdev(s), len(rs))
    return out


def _marks(values: Mapping[str, float]) -> dict[str, str]:
    """``method -> "best" | "second" | ""`` by value (ties share a mark)."""
    ranked = sorted(set(values.values()), reverse=True)
    return {m: ("best" if ranked and v == ranked[0] else "second" if len(ranked) > 1 and v == ranked[1] else "")
            for m, v in values.items()}


def _fmt(mean: float, std: float, mark: str) -> str:
    text = f"{mean:.3f}±{std:.3f}"
    return f"**{text}**" if mark == "best" else f"<u>{text}</u>" if mark == "second" else text


def comparison_table(summary: Mapping[tuple[str, str], Stat], table: str,
                     methods: Sequence[str] = METHODS) -> str:
    """A Markdown table: for each paper column and method, the kit's DSC and NSD beside the paper's.

    Best per column and metric in **bold**, second best underlined, ranked separately
    among the kit's numbers and among the paper's. Columns whose kit task was not
    evaluated are named in a note below the table.
    """
    paper = paper_tables()[table]
    cols = table_tasks(table, {t for t, _ in summary})
    lines = [f"**{paper['caption']}** — kit: this run; paper: the paper's published values.", "",
             "| target (kit task) | method | kit DSC | kit NSD | paper DSC | paper NSD |",
             "|---|---|---|---|---|---|"]
    missing = [col for col, task in cols.items() if task is None]
    for col, task in cols.items():
        if task is None:
            continue
        kit = {m: summary[(task, m)] for m in methods if task is not None and (task, m) in summary}
        pap = {m: paper[col][m] for m in methods if m in paper[col]}
        marks = {k: _marks({m: getattr(s, k) for m, s in kit.items()}) for k in ("dsc", "nsd")}
        pmarks = {k: _marks({m: v[k][0] for m, v in pap.items()}) for k in ("dsc", "nsd")}
        for m in methods:
            if m not in kit and m not in pap:
                continue
            s = kit.get(m)
            kd = _fmt(s.dsc, s.dsc_std, marks["dsc"][m]) if s else "—"
            kn = _fmt(s.nsd, s.nsd_std, marks["nsd"][m]) if s else "—"
            pd_ = _fmt(*pap[m]["dsc"], pmarks["dsc"][m]) if m in pap else "—"
            pn = _fmt(*pap[m]["nsd"], pmarks["nsd"][m]) if m in pap else "—"
            lines.append(f"| {col} ({task.split('/', 1)[1]}) | {METHOD_LABELS[m]} | {kd} | {kn} | {pd_} | {pn} |")
    if missing:
        lines += ["", f"Paper columns not evaluated in this run: {', '.join(missing)}."]
    return "\n".join(lines)
