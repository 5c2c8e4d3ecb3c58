"""Tables 1-2: the kit's one-shot numbers beside the paper's (docs/design.md §6).

The paper's values are data (``hyperkit/paper_results/tables.yaml``) and are always
labelled as the paper's; ``task_map.yaml`` says which kit task each paper column is.

Every method's kit numbers for a target are computed over the same cases: the target's
test split (:func:`hyperkit.evaluation.protocol.task_split`). Small targets without one
are marked in a note below the table.

What the tables say in words (:func:`reading`) and the kit's checks (:func:`what_held`) are
built from the numbers of a run, never typed in (notebook 05).
"""

from __future__ import annotations

import fnmatch
import math
import statistics
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Mapping, Sequence

import yaml

from hyperkit.config import METHODS, ONE_SHOT_METHODS
from hyperkit.evaluation.stats import compared, in_test_split

__all__ = ["Stat", "paper_tables", "task_map", "kit_task", "table_tasks", "summarize", "comparison_table", "reading",
           "what_held", "METHOD_LABELS", "TABLES", "AIMS", "SCOPE_TEST", "SCOPE_TEST_ANY_SUPPORT", "SCOPE_ALL"]

#: the paper's tables this module can rebuild
TABLES: tuple[str, ...] = ("table1_ct", "table2_mri")
METHOD_LABELS: dict[str, str] = {"rand_unet": "Rand U-Net", "all_unet": "All U-Net", "hyper_unet": "Hyper U-Net",
                                 "conv_unet": "Conv U-Net", "copy_support": "Copy support mask"}
#: the NSD tolerance of the paper's tables, in mm (its §4)
PAPER_TAU_MM = 2.0
#: the kit's checks of the Hyper U-Net (:func:`what_held`): paper column -> DSC it should reach
#: (liver: the issue's aim; heart and brain oedema on MRI, the domain-shift check: 0.30)
AIMS: dict[str, float] = {"liver": 0.70, "heart_bssfp": 0.30, "brain_edema_flair": 0.30}
#: share of the table targets on which the Hyper U-Net should beat each one-shot baseline
#: (issue 10: Rand U-Net on every target, copying the support mask on at least 8 of 10)
WIN_SHARE: dict[str, float] = {"rand_unet": 1.0, "copy_support": 0.8}

#: which cases a :class:`Stat` is over: the task's test split, supports drawn from the other cases
SCOPE_TEST = "test split"
#: ... the test split, but one-shot supports drawn from all cases (fewer train + validation cases
#: than shots); a draw whose support is a test case is not scored on that case
SCOPE_TEST_ANY_SUPPORT = "test split, supports from all cases"
#: ... no split (fewer than 3 cases): one-shot methods scored on every case but the support
SCOPE_ALL = "every case but the support"


@dataclass(frozen=True)
class Stat:
    """Mean ± std (population std over all scored cases × draws) of DSC, NSD@tau and NSD@one voxel.

    Attributes:
        dsc, dsc_std: Dice.
        nsd, nsd_std: NSD at ``evaluate.tau`` mm.
        nsd_voxel, nsd_voxel_std: NSD at one voxel.
        n: scored predictions (cases × draws).
        cases: distinct cases scored.
        scope: which cases: :data:`SCOPE_TEST`, :data:`SCOPE_TEST_ANY_SUPPORT` or :data:`SCOPE_ALL`
            (the same for every method of a task).
    """

    dsc: float
    dsc_std: float
    nsd: float
    nsd_std: float
    nsd_voxel: float
    nsd_voxel_std: float
    n: int
    cases: int
    scope: str


@lru_cache(maxsize=None)
def _yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("hyperkit.paper_results").joinpath(name).read_text())


def paper_tables() -> dict[str, Any]:
    """The paper's Tables 1-6 as stored, each with a ``caption``: Tables 1-2 ``task -> method -> {dsc, nsd:
    [mean, std]}``, Table 3 ``organ -> {maml_alsaleh2024, hyper_unet: DSC}``, Tables 4-6 ``task -> {with,
    without} -> {dsc, nsd: [mean, std]}``; and the paper's citation under ``source``."""
    return _yaml("tables.yaml")


def task_map() -> dict[str, str]:
    """Paper column -> glob pattern on kit task ids."""
    return dict(_yaml("task_map.yaml"))


def kit_task(column: str, task_ids: Iterable[str]) -> str | None:
    """The kit task that plays the paper's ``column`` (``liver``): the first of ``task_ids``, in sorted order,
    that matches the column's pattern in ``task_map.yaml``; ``None`` when none matches or the column has no
    kit task (Table 3's kidneys, training tasks of the kit's hypernetwork)."""
    pattern = task_map().get(column)
    hits = fnmatch.filter(sorted(task_ids), pattern) if pattern is not None else []
    return hits[0] if hits else None


def table_tasks(table: str, task_ids: Iterable[str]) -> dict[str, str | None]:
    """For each column of ``table``, the kit task that plays it (:func:`kit_task`; ``None`` when absent).

    Raises:
        ValueError: ``table`` is not one of :data:`TABLES`.
    """
    if table not in TABLES:
        raise ValueError(f"table must be one of {list(TABLES)}, got {table!r}")
    ids = sorted(task_ids)
    return {col: kit_task(col, ids) for col in paper_tables()[table] if col != "caption"}


def paper_columns(task_ids: Iterable[str], tables: Sequence[str] = TABLES) -> dict[str, str]:
    """Paper column -> kit task, for the columns of ``tables`` (Tables 1-2 by default) that one of ``task_ids``
    plays (:func:`table_tasks`); columns without a kit task are left out, in the tables' column order."""
    ids = sorted(task_ids)
    return {col: task for table in tables for col, task in table_tasks(table, ids).items() if task is not None}


def _scope(rows: Sequence[Mapping[str, Any]]) -> str:
    """Which cases the rows of one task are summarised over (see :data:`SCOPE_TEST` ...)."""
    if not any(in_test_split(r) for r in rows):
        return SCOPE_ALL
    if any(not in_test_split(r) for r in rows if r["method"] in ONE_SHOT_METHODS):
        return SCOPE_TEST_ANY_SUPPORT
    return SCOPE_TEST


def summarize(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Stat]:
    """``(task, method) -> Stat``, every method of a task over the same cases.

    A task with a test split is summarised over the rows of its test cases only (the cases
    the supervised baselines are scored on), for every method; a task without one (fewer
    than 3 cases) over all its rows.

    Args:
        rows: results rows (:func:`~hyperkit.evaluation.results_file.read_results`): ``task``,
            ``method``, ``case``, ``in_test_split``, ``dsc``, ``nsd``, ``nsd_voxel``.

    Raises:
        ValueError: a row without one of the columns above but ``in_test_split`` (named), or a
            summarised score is not finite (NaN or inf), named by task, method, column,
            draw and case. The kit never writes one: its metrics score empty masks by a fixed
            convention (:mod:`hyperkit.metrics`) and ``read_results`` refuses scores outside [0, 1].
    """
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for i, r in enumerate(rows):
        missing = [k for k in ("task", "method", "case", "dsc", "nsd", "nsd_voxel") if k not in r]
        if missing:
            raise ValueError(f"results row {i} has no column(s) {missing} (its columns: {sorted(map(str, r))})")
        by_task.setdefault(r["task"], []).append(r)
    out = {}
    for task, task_rows in by_task.items():
        scope, keep = _scope(task_rows), compared(task_rows)
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for r in task_rows:
            if keep(r):
                groups.setdefault(r["method"], []).append(r)
        for method, rs in groups.items():
            d, s, v = ([float(r[k]) for r in rs] for k in ("dsc", "nsd", "nsd_voxel"))
            for k, values in (("dsc", d), ("nsd", s), ("nsd_voxel", v)):
                bad = next((i for i, x in enumerate(values) if not math.isfinite(x)), None)
                if bad is not None:
                    raise ValueError(f"{k} of task {task!r}, method {method!r} is not finite ({values[bad]}) at draw "
                                     f"{rs[bad].get('draw', '?')}, case {rs[bad]['case']!r}")
            out[(task, method)] = Stat(statistics.fmean(d), statistics.pstdev(d), statistics.fmean(s),
                                       statistics.pstdev(s), statistics.fmean(v), statistics.pstdev(v), len(rs),
                                       len({r["case"] for r in rs}), scope)
    return out


#: decimals of a table cell; the marks rank the values as printed
_DIGITS = 3


def _marks(values: Mapping[str, float]) -> dict[str, str]:
    """``method -> "best" | "second" | ""`` by value as printed, :data:`_DIGITS` decimals (ties share a mark)."""
    values = {m: round(v, _DIGITS) for m, v in values.items()}
    ranked = sorted(set(values.values()), reverse=True)
    return {m: ("best" if ranked and v == ranked[0] else "second" if len(ranked) > 1 and v == ranked[1] else "")
            for m, v in values.items()}


def _check_summary(summary: Mapping[tuple[str, str], Stat]) -> None:
    """Refuse a :class:`Stat` with a number that is not finite (a summary not made by :func:`summarize`)."""
    for (task, method), st in summary.items():
        for k in ("dsc", "dsc_std", "nsd", "nsd_std", "nsd_voxel", "nsd_voxel_std"):
            if not math.isfinite(getattr(st, k)):
                raise ValueError(f"summary of task {task!r}, method {method!r}: {k} is not finite ({getattr(st, k)})")


def _fmt(mean: float, std: float, mark: str) -> str:
    text = f"{mean:.{_DIGITS}f}±{std:.{_DIGITS}f}"
    return f"**{text}**" if mark == "best" else f"<u>{text}</u>" if mark == "second" else text


def comparison_table(summary: Mapping[tuple[str, str], Stat], table: str, methods: Sequence[str] = METHODS,
                     *, tau: float | None = None, voxel_mm: float | None = None) -> str:
    """A Markdown table: for each paper column and method, the kit's DSC, NSD@tau and NSD@one voxel
    beside the paper's DSC and NSD.

    Every method of a target is summarised over the same cases, the target's test split
    (:func:`summarize`); the ``cases`` column counts them. Best per column and metric in
    **bold**, second best underlined, ranked separately among the kit's numbers and among
    the paper's. Targets summarised otherwise (too few cases for a split) and columns whose
    kit task was not evaluated are named in notes below the table.

    Args:
        summary: from :func:`summarize`.
        table: one of :data:`TABLES`.
        methods: rows per target, in this order.
        tau: the run's ``evaluate.tau`` in mm, and ``voxel_mm`` its one-voxel tolerance, for
            the headers (unnamed values are written τ and "1 voxel").

    Raises:
        ValueError: ``table`` is not one of :data:`TABLES` (named with them), or a number of
            ``summary`` is not finite (named by task, method and field).
    """
    if table not in TABLES:
        raise ValueError(f"table must be one of {list(TABLES)}, got {table!r}")
    _check_summary(summary)
    paper = paper_tables()[table]
    cols = table_tasks(table, {t for t, _ in summary})
    t_kit = f"{tau:g} mm" if tau is not None else "τ"
    t_vox = f"1 voxel ({voxel_mm:g} mm)" if voxel_mm is not None else "1 voxel"
    lines = [f"**{paper['caption']}** — kit: this run; paper: the paper's published values (its NSD at "
             f"{PAPER_TAU_MM:g} mm). For each target, every kit method is scored on the same cases: the "
             "target's test split (Conv/All U-Net train on the other cases; one-shot supports are drawn "
             "from them); mean ± std over cases × draws. NSD at one voxel as well: at a voxel coarser than "
             "the tolerance, NSD@τ counts only boundaries that coincide.", "",
             f"| target (kit task) | method | cases | kit DSC | paper DSC | kit NSD@{t_kit} | "
             f"paper NSD@{PAPER_TAU_MM:g} mm | kit NSD@{t_vox} |",
             "|---|---|---|---|---|---|---|---|"]
    missing = [col for col, task in cols.items() if task is None]
    other_scope: dict[str, list[str]] = {}
    for col, task in cols.items():
        if task is None:
            continue
        kit = {m: summary[(task, m)] for m in methods if (task, m) in summary}
        pap = {m: paper[col][m] for m in methods if m in paper[col]}
        marks = {k: _marks({m: getattr(s, k) for m, s in kit.items()}) for k in ("dsc", "nsd", "nsd_voxel")}
        pmarks = {k: _marks({m: v[k][0] for m, v in pap.items()}) for k in ("dsc", "nsd")}
        for s in kit.values():
            if s.scope != SCOPE_TEST and col not in other_scope.setdefault(s.scope, []):
                other_scope[s.scope].append(col)
        for m in methods:
            if m not in kit and m not in pap:
                continue
            s = kit.get(m)
            cells = [str(s.cases) if s else "—"]
            cells += [_fmt(s.dsc, s.dsc_std, marks["dsc"][m]) if s else "—",
                      _fmt(*pap[m]["dsc"], pmarks["dsc"][m]) if m in pap else "—",
                      _fmt(s.nsd, s.nsd_std, marks["nsd"][m]) if s else "—",
                      _fmt(*pap[m]["nsd"], pmarks["nsd"][m]) if m in pap else "—",
                      _fmt(s.nsd_voxel, s.nsd_voxel_std, marks["nsd_voxel"][m]) if s else "—"]
            lines.append(f"| {col} ({_named(task)}) | {METHOD_LABELS[m]} | {' | '.join(cells)} |")
    notes = {SCOPE_ALL: "too few cases for a test split: one-shot methods scored on every case but the "
                        "support, Conv/All U-Net not run",
             SCOPE_TEST_ANY_SUPPORT: "fewer train + validation cases than shots: one-shot supports drawn from "
                                     "all cases; every method still scored on the test split only (a draw "
                                     "whose support is a test case skips that case)"}
    for scope, where in other_scope.items():
        lines += ["", f"{', '.join(where)}: {notes[scope]}."]
    if missing:
        lines += ["", f"Paper columns not evaluated in this run: {', '.join(missing)}."]
    return "\n".join(lines)


def _evaluated(summary: Mapping[tuple[str, str], Stat], tables: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(table, paper column, kit task)`` of every column of ``tables`` that ``summary`` holds."""
    tasks = {t for t, _ in summary}
    return [(table, col, task) for table in tables for col, task in paper_columns(tasks, [table]).items()]


def _compare(a: float, b: float, level: float) -> str:
    """``a`` against ``b`` in words: within ``level`` (or exactly equal, whatever ``level``) "level with"."""
    return "level with" if a == b or abs(a - b) < level else "above" if a > b else "below"


def _named(task: str) -> str:
    """A task id without its layout: ``Task01_BrainTumour/edema@FLAIR`` (the task map's patterns match
    only ids with one)."""
    return task.split("/", 1)[-1]


def reading(summary: Mapping[tuple[str, str], Stat], paper: Mapping[str, Any] | None = None, *,
            tables: Sequence[str] = TABLES, level: float = 0.01) -> list[str]:
    """Tables 1-2 read target by target, as Markdown lines built from the numbers (DSC).

    One bullet per evaluated paper column: the kit's best method; the Hyper U-Net against
    copying the support mask and against the Rand U-Net; the kit's Hyper U-Net against the
    paper's. Then one bullet with the counts (Hyper U-Net above Rand U-Net, above copying the
    support mask, below Conv U-Net, above the paper's Hyper U-Net, each on k of n targets; where
    some of the k differences are smaller than ``level``, also on how many it is by ``level``
    or more, so that the count agrees with the per-target words).

    Args:
        summary: from :func:`summarize`.
        paper: the paper's tables (default :func:`paper_tables`).
        tables: which of :data:`TABLES`.
        level: differences below this DSC read "level with" (the counts use strict ``>`` and say
            how many of them are level).

    Raises:
        ValueError: a table not in :data:`TABLES`, or a number of ``summary`` that is not finite.
    """
    _check_summary(summary)
    paper = paper_tables() if paper is None else paper
    lines: list[str] = []
    # per comparison, the signed margins (positive: the way the tally counts)
    counts: dict[str, list[float]] = {"rand_unet": [], "copy_support": [], "conv_unet": [], "paper": []}
    for table, col, task in _evaluated(summary, tables):
        kit = {m: summary[(task, m)].dsc for m in METHODS if (task, m) in summary}
        if not kit:
            continue
        best = max(kit, key=kit.__getitem__)
        parts = [f"best: {METHOD_LABELS[best]} ({kit[best]:.3f})"]
        h = kit.get("hyper_unet")
        if h is not None:
            if best != "hyper_unet":
                tie = " (level with it)" if kit[best] - h < level else ""
                parts.append(f"Hyper U-Net {h:.3f}{tie}")
            for m in ("copy_support", "rand_unet"):
                if m in kit:
                    parts.append(f"{_compare(h, kit[m], level)} {METHOD_LABELS[m]} ({kit[m]:.3f}, {h - kit[m]:+.3f})")
                    counts[m].append(h - kit[m])
            if "conv_unet" in kit:
                counts["conv_unet"].append(kit["conv_unet"] - h)
            ph = paper.get(table, {}).get(col, {}).get("hyper_unet")
            if ph is not None:
                parts.append(f"paper's Hyper U-Net {ph['dsc'][0]:.3f} (kit {h - ph['dsc'][0]:+.3f})")
                counts["paper"].append(h - ph["dsc"][0])
        lines.append(f"- **{col}** ({_named(task)}): " + "; ".join(parts) + ".")
    said = {"rand_unet": "above Rand U-Net", "copy_support": "above copying the support mask",
            "conv_unet": "below Conv U-Net", "paper": "above the paper's Hyper U-Net"}
    tally = []
    for k, v in counts.items():
        if not v:
            continue
        won, clear = sum(d > 0 for d in v), sum(d >= level for d in v)
        tally.append(f"{said[k]} on {won} of {len(v)}" + (f" ({clear} by {level:g} or more)" if clear != won else ""))
    if tally:
        lines.append("- **Hyper U-Net, all targets**: " + "; ".join(tally) + " targets (DSC).")
    return lines


def what_held(summary: Mapping[tuple[str, str], Stat], aims: Mapping[str, float] | None = None,
              paper: Mapping[str, Any] | None = None, *, tables: Sequence[str] = TABLES) -> list[tuple[bool, str]]:
    """The kit's checks of the Hyper U-Net, from the numbers: ``[(held, sentence)]``.

    1. above Rand U-Net on every evaluated target (k of n);
    2. above copying the support mask on at least :data:`WIN_SHARE` of the evaluated targets (k of n; 80 %);
    3. per paper column of ``aims`` that was evaluated: its DSC against the aim (and the paper's).

    Args:
        summary: from :func:`summarize`.
        aims: paper column -> DSC (default :data:`AIMS`).
        paper: the paper's tables (default :func:`paper_tables`).
        tables: which of :data:`TABLES`.

    Raises:
        ValueError: a table not in :data:`TABLES`, or a number of ``summary`` that is not finite.
    """
    _check_summary(summary)
    aims = AIMS if aims is None else aims
    paper = paper_tables() if paper is None else paper
    out: list[tuple[bool, str]] = []
    evaluated = _evaluated(summary, tables)
    for m in ("rand_unet", "copy_support"):
        wins = [(col, summary[(t, "hyper_unet")].dsc > summary[(t, m)].dsc) for _, col, t in evaluated
                if (t, "hyper_unet") in summary and (t, m) in summary]
        if wins:
            lost = [c for c, w in wins if not w]
            k = len(wins) - len(lost)
            need = math.ceil(WIN_SHARE[m] * len(wins) - 1e-9)
            out.append((k >= need, f"Hyper U-Net DSC above {METHOD_LABELS[m]} on {k} of {len(wins)} targets "
                        f"(aim: {need})" + (f" (not on: {', '.join(lost)})" if lost else "")))
    for table, col, task in evaluated:
        if col not in aims or (task, "hyper_unet") not in summary:
            continue
        d = summary[(task, "hyper_unet")].dsc
        ph = paper.get(table, {}).get(col, {}).get("hyper_unet")
        ref = f"; paper's Hyper U-Net {ph['dsc'][0]:.3f}" if ph is not None else ""
        out.append((d >= aims[col], f"{col}: Hyper U-Net DSC {d:.3f} against the aim {aims[col]:.2f}{ref}"))
    return out
