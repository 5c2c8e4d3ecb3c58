"""``hyperkit reproduce``: run every notebook headlessly and say what happened.

The notebooks in ``notebooks/`` (``NN_name.ipynb``, run in name order) are the
kit's experiments. This module executes them with papermill in the current
environment's kernel (see :mod:`hyperkit.kernels`), injects the parameters
``profile``, ``out_dir`` and ``interactive=False`` into each notebook's
``parameters`` cell, and writes into the output folder::

    OUT/notebooks/NN_name.ipynb   executed copies (outputs and errors kept)
    OUT/index.md                  table: notebook, status, seconds, failing cell, error
    OUT/index.json                the same, plus the run record (resolved config,
                                  versions, commit)
    OUT/run.json                  the run record (hyperkit.provenance)
    OUT/report.html, OUT/report.md  the reproduction report (:mod:`hyperkit.report`):
                                  the paper's claims with verdicts, Tables 1-6,
                                  Figures 1-3, provenance

All notebooks share ``out_dir``: one that needs an earlier result (phantoms, a
trained run) finds it there or makes it. A failing notebook does not stop the
run; the exit status is non-zero when any failed. Ctrl-C stops the run and
still writes the index of what ran.

While it runs (:class:`Progress`): on a terminal, one status line redrawn every
second — the notebook, its current code cell (number / total), the time spent,
an estimate of the time left (:func:`estimate_for`: the cell durations of the
last executed copy, else the last index, else :data:`SHIPPED_SECONDS`) and the
notebook's latest progress line (its printed lines, tqdm bars as text or
widgets); elsewhere (CI, logs) plain lines: one when a notebook starts and ends,
and a heartbeat line every few minutes during a long cell.

``--resume`` (:func:`notebook_fingerprint`) skips the notebooks that passed in
the folder's last run with the same notebook file, parameters, resolved profile
and code version (git commit and a hash of the package), and runs from the
first one that did not.

Example:
    >>> report = run_notebooks("notebooks", "runs/reproduce-quick")  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html as _html
import json
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

from hyperkit.commands import SUMMARIES, comma_list
from hyperkit.config import PROFILES, load_profile
from hyperkit.config.profiles import parse_assignment
from hyperkit.durations import clock
from hyperkit.files import sha256_file, write_text_atomic
from hyperkit.provenance import earlier_sessions, git_commit, run_record, write_run_record

__all__ = [
    "NOTEBOOK_PATTERN",
    "SHIPPED_SECONDS",
    "Estimate",
    "NotebookResult",
    "Progress",
    "Report",
    "check_parameters",
    "code_version",
    "declared_parameters",
    "default_notebooks_dir",
    "estimate_for",
    "find_notebooks",
    "notebook_fingerprint",
    "notebook_parameters",
    "parameters_for",
    "parse_parameter",
    "run_notebooks",
    "write_index",
    "register",
]

#: Notebooks that ``reproduce`` runs: two digits, underscore, name.
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"

#: Parameters the runner sets itself; ``-p`` may not override them.
RESERVED_PARAMETERS = ("profile", "out_dir")
#: Runner parameters a notebook may leave out of its parameters cell (papermill would warn
#: "Passed unknown parameter" for each): injected only where the notebook declares them.
OPTIONAL_PARAMETERS = ("progress",)
#: Seconds allowed per cell when ``--timeout`` is not given.
DEFAULT_TIMEOUT = 3600

# the kernel's own start-up log (e.g. ipykernel 7's "running over TCP without
# encryption" warning, its shutdown race after an interrupt) is noise on a local,
# headless run; cell errors reach the notebook itself, not this log
_KERNEL_QUIET = ["--IPKernelApp.log_level=CRITICAL"]

PASSED, FAILED, INTERRUPTED, NOT_RUN = "passed", "failed", "interrupted", "not run"

#: seconds each notebook takes from scratch (no phantoms, no trained run) on a two-core laptop,
#: per profile: the estimate before a folder has a run of its own. Measured in one run of the
#: whole job from a fresh clone with an empty preprocessing cache (BENCHMARKS.md, "The main job",
#: 2026-12-02 afternoon: 2 h 16 min 36 s in all); rounded.
SHIPPED_SECONDS: dict[str, dict[str, float]] = {
    "quick": {"00_phantoms": 115, "01_tasks": 25, "02_context": 15, "03_hypernetwork": 20,
              "04_episodic_training": 975, "05_one_shot": 1880, "06_ablations": 2605, "07_limited_data": 2555},
}

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CELL_FRAME = re.compile(r"^Cell In\s*\[\d*\],\s*line \d+")
_ARROW = re.compile(r"^-+>\s*\d+\s?(.*)$")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@dataclass
class NotebookResult:
    """What happened to one notebook.

    Attributes:
        notebook: file stem, e.g. ``"03_hypernetwork"``.
        status: ``"passed"``, ``"failed"``, ``"interrupted"`` or ``"not run"``.
        seconds: wall-clock time of the execution, kernel start included.
        output: the executed copy, relative to the output folder.
        cell: execution count of the failing cell (``In [cell]`` in the copy).
        cell_index: index of the failing cell in the executed copy's cell list.
        source: first line of the failing cell (marker comments skipped).
        line: the line of that cell that raised, from the traceback, if known.
        error: ``"ExceptionType: message"`` (colour codes stripped; no traceback).
        fingerprint: what this notebook ran with (:func:`notebook_fingerprint`); ``--resume``
            compares it.
        reused: the row is the folder's earlier run's (``seconds`` are that run's): a notebook that
            passed there and that ``--resume`` skipped, or one that ``--only`` left out.
        selected: run (or skipped by ``--resume``) in this run; ``False`` for a row kept from the
            folder's earlier run because ``--only`` left the notebook out.
    """

    notebook: str
    status: str = NOT_RUN
    seconds: float = 0.0
    output: str | None = None
    cell: int | None = None
    cell_index: int | None = None
    source: str | None = None
    line: str | None = None
    error: str | None = None
    fingerprint: str | None = None
    reused: bool = False
    selected: bool = True

    @property
    def failing_cell(self) -> str:
        """``In [4]: raise ValueError("boom")`` or ``""`` when nothing failed."""
        if self.status not in (FAILED, INTERRUPTED) or (self.cell is None and self.source is None):
            return ""
        where = f"In [{self.cell}]" if self.cell is not None else f"cell {self.cell_index}"
        shown = self.line or self.source or ""
        return f"{where}: {shown}" if shown else where


@dataclass
class Report:
    """The outcome of one ``reproduce`` run (what ``index.json`` holds).

    Attributes:
        out_dir: the shared output folder (absolute).
        notebooks_dir: where the notebooks were read from.
        profile: the profile name or YAML path given.
        config: the resolved profile configuration.
        kernel: the kernelspec the notebooks ran in.
        parameters: the parameters injected into every notebook.
        results: one entry per notebook, in name order: the selected ones and, after ``--only``, the
            rows of the folder's earlier run for the others (``selected=False``), so the index
            always describes the whole folder.
        interrupted: the run was stopped with Ctrl-C.
        report: the reproduction report (``report.html``) once written.
        report_error: why it was not written.
    """

    out_dir: Path
    notebooks_dir: Path
    profile: str
    config: dict[str, Any]
    kernel: str
    parameters: dict[str, Any]
    results: list[NotebookResult] = field(default_factory=list)
    interrupted: bool = False
    report: Path | None = None
    report_error: str | None = None

    @property
    def selected(self) -> list[NotebookResult]:
        """The rows of the notebooks this run was asked to run (rows kept by ``--only`` left out)."""
        return [r for r in self.results if r.selected]

    @property
    def ok(self) -> bool:
        """Every selected notebook ran and passed (rows kept from an earlier run do not count)."""
        return not self.interrupted and all(r.status == PASSED for r in self.selected)

    @property
    def failed(self) -> list[NotebookResult]:
        """The selected notebooks that failed."""
        return [r for r in self.selected if r.status == FAILED]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the run record)."""
        return {
            "ok": self.ok,
            "interrupted": self.interrupted,
            "profile": self.profile,
            "out_dir": str(self.out_dir),
            "notebooks_dir": str(self.notebooks_dir),
            "kernel": self.kernel,
            "parameters": self.parameters,
            "total_seconds": round(sum(r.seconds for r in self.results), 1),
            "notebooks": [asdict(r) | {"failing_cell": r.failing_cell} for r in self.results],
            "report": str(self.report) if self.report is not None else None,
            "report_error": self.report_error,
        }

    def to_markdown(self) -> str:
        """The ``index.md`` text: a header and one table row per notebook."""
        passed = sum(r.status == PASSED for r in self.selected)
        state = "interrupted" if self.interrupted else ("all passed" if self.ok else f"{len(self.failed)} failed")
        kept = len(self.results) - len(self.selected)
        lines = [
            "# hyperkit reproduce",
            "",
            f"Profile `{self.profile}`, kernel `{self.kernel}`, "
            f"{passed}/{len(self.selected)} notebooks passed ({state}), "
            f"{sum(r.seconds for r in self.results):.1f} s in all"
            + (f"; {kept} row{'s' if kept != 1 else ''} kept from the folder's earlier run (not in --only)."
               if kept else "."),
            "",
            "| notebook | status | seconds | failing cell | error |",
            "|---|---|---:|---|---|",
        ]
        for r in self.results:
            name = f"[{r.notebook}]({r.output})" if r.output else r.notebook
            seconds = f"{r.seconds:.1f}" if r.status != NOT_RUN else ""
            status = f"{r.status} (earlier run)" if r.reused else r.status
            lines.append(
                f"| {name} | {status} | {seconds} | {_md_cell(r.failing_cell, 100)} | {_md_cell(r.error or '', 200)} |"
            )
        if self.report is not None:
            lines += ["", f"The reproduction report: [report.html](report.html) ([report.md](report.md))."]
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """A few lines for the terminal."""
        width = max([len(r.notebook) for r in self.results] + [8])
        lines = []
        for r in self.results:
            text = f"  {r.notebook:<{width}}  {r.status:<11}"
            if r.status != NOT_RUN:
                text += f" {r.seconds:7.1f} s"
            if r.reused:
                text += "  (earlier run, skipped by --resume)" if r.selected else "  (earlier run, not in --only)"
            if r.error:
                text += f"  {r.failing_cell}  ->  {_first_line(r.error, 160)}"
            lines.append(text.rstrip())
        passed = sum(r.status == PASSED for r in self.selected)
        lines.append(f"{passed}/{len(self.selected)} notebooks passed; index: {self.out_dir / 'index.md'}")
        if self.report is not None:
            lines.append(f"report: {self.report} (open it in a browser; report.md beside it for a terminal)")
        elif self.report_error:
            lines.append(f"report not written: {self.report_error}")
        return "\n".join(lines)


def _first_line(text: str, limit: int) -> str:
    line = next((s for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _md_cell(text: str, limit: int) -> str:
    text = _first_line(text, limit).replace("|", "\\|")
    return f"`{text}`" if text and "`" not in text else text


def default_notebooks_dir() -> Path:
    """The repository's ``notebooks/`` beside the package, else ``./notebooks``."""
    import hyperkit

    beside = Path(hyperkit.__file__).resolve().parents[1] / "notebooks"
    return beside if beside.is_dir() else Path.cwd() / "notebooks"


def find_notebooks(notebooks_dir: str | Path, only: Iterable[str] | str | None = None) -> list[Path]:
    """The notebooks to run, sorted by name.

    Args:
        notebooks_dir: folder holding ``NN_name.ipynb`` files.
        only: a selection: numbers (``"00"``), full stems (``"00_setup"``) or
            names without the number (``"setup"``); a comma-separated string
            or a list. ``None`` selects all.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: no notebooks, an ``only`` that names none, or an ``only`` entry that matches none.
    """
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebooks folder {str(folder)!r} does not exist")
    found = sorted(folder.glob(NOTEBOOK_PATTERN))
    if not found:
        raise ValueError(f"no notebooks named {NOTEBOOK_PATTERN} in {folder}")
    if only is None:
        return found
    wanted = comma_list(only) if isinstance(only, str) else [t.strip() for t in only if t.strip()]
    if not wanted:  # an empty selection would run nothing and overwrite the folder's index as a success
        raise ValueError(f"--only {only!r} names no notebook; have: {', '.join(p.stem for p in found)}")
    chosen: list[Path] = []
    for token in wanted:
        stem = Path(token).name.removesuffix(".ipynb")
        hits = [p for p in found
                if p.stem == stem or p.stem.split("_", 1)[0] == stem or p.stem.split("_", 1)[1] == stem]
        if not hits:
            raise ValueError(f"--only {token!r} matches no notebook; have: {', '.join(p.stem for p in found)}")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def parse_parameter(text: str) -> tuple[str, Any]:
    """Parse ``-p key=value`` (value read as a YAML literal: ``3``, ``0.5``, ``true``, ``[1, 2]``).

    Raises:
        ValueError: not ``key=value``, the key is not an identifier, or it is
            one the runner sets (use ``--profile`` / ``--out`` for those).
    """
    key, value = parse_assignment(text, "parameter", empty="")
    if not key.isidentifier():
        raise ValueError(f"parameter name {key!r} is not a Python identifier")
    if key in RESERVED_PARAMETERS:
        raise ValueError(f"parameter {key!r} is set by the runner; use --{key.replace('_dir', '')} instead")
    return key, value


def _source_line(source: str) -> str:
    """First line of a cell worth showing (skips blanks and ``# NBVAL_*`` markers)."""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped and not stripped.lstrip("#").strip().startswith("NBVAL_"):
            return stripped
    return ""


def _raising_line(traceback: Sequence[str]) -> str | None:
    """The ``---->`` line of the notebook cell's own frame in an IPython traceback."""
    lines = _strip_ansi("\n".join(traceback)).splitlines()
    for i, line in enumerate(lines):
        if _CELL_FRAME.match(line.strip()):
            for follow in lines[i + 1:]:
                if not follow.strip():
                    break
                match = _ARROW.match(follow.strip())
                if match:
                    return match.group(1).strip() or None
            return None
    return None


def _describe_failure(nb: Any, exc: BaseException | None, timeout: float | None = None) -> dict[str, Any]:
    """Find the failing cell of an executed notebook and describe its error.

    The first cell with an ``error`` output wins (ename/evalue, colour codes
    stripped). A failure without one (timeout, dead kernel) is charged to the
    last cell papermill started, with the exception's type and first line.
    """
    cells = list(getattr(nb, "cells", []) or [])
    timed_out = isinstance(exc, TimeoutError)  # nbclient's CellTimeoutError; the cell then shows an interrupt
    for index, cell in enumerate(cells if not timed_out else []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") == "error":
                evalue = _strip_ansi(str(out.get("evalue", ""))).strip()
                ename = _strip_ansi(str(out.get("ename", "Error")))
                return {
                    "cell": cell.get("execution_count"),
                    "cell_index": index,
                    "source": _source_line(cell.get("source", "")),
                    "line": _raising_line(out.get("traceback", [])),
                    "error": f"{ename}: {evalue}" if evalue else ename,
                }
    info: dict[str, Any] = {"cell": None, "cell_index": None, "source": None, "line": None}
    started = [
        (i, c) for i, c in enumerate(cells)
        if c.get("cell_type") == "code" and (c.get("metadata", {}).get("papermill", {}) or {}).get("start_time")
    ]
    if started:
        index, cell = started[-1]
        info.update(cell=cell.get("execution_count"), cell_index=index, source=_source_line(cell.get("source", "")))
    if exc is None:
        info["error"] = "notebook failed without an error output"
    elif timed_out:
        limit = f"{timeout:g} s" if timeout else "the time allowed"
        info["error"] = f"{type(exc).__name__}: the cell ran longer than {limit} (--timeout, per cell)"
    else:
        message = _strip_ansi(_first_line(str(exc), 300))
        info["error"] = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return info


def write_index(report: Report, record: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``index.md`` and ``index.json`` into ``report.out_dir``; return their paths."""
    report.out_dir.mkdir(parents=True, exist_ok=True)
    md = write_text_atomic(report.out_dir / "index.md", report.to_markdown())
    data = report.to_dict()
    data["run"] = dict(record) if record is not None else run_record(report.config, seed=report.config.get("seed"))
    # atomic: ``--resume`` reads it back, and a Ctrl-C may land during the write
    js = write_text_atomic(report.out_dir / "index.json", json.dumps(data, indent=2, default=str))
    return md, js


def notebook_parameters(profile: str | Path = "quick", out_dir: str | Path = "runs/reproduce-quick",
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters every notebook receives (the runner's and the notebook tests' one source).

    Args:
        profile: a built-in name (passed as is) or a YAML file (passed as an
            absolute path, since the kernel runs in the notebooks folder).
        out_dir: the shared output folder (passed as an absolute path).
        extra: more parameters, applied last.

    Returns:
        ``{"profile": ..., "out_dir": ..., "interactive": False, "progress": True, **extra}``:
        ``progress`` turns on the progress bars of training and evaluation in notebooks 04-07,
        so that the runner's status line can pass their latest line through.

    Raises:
        ValueError: ``extra`` sets ``profile`` or ``out_dir``.
    """
    for key in extra or {}:
        if key in RESERVED_PARAMETERS:
            raise ValueError(f"parameter {key!r} is set by the runner; pass it as an argument instead")
    name = str(profile)
    return {
        "profile": name if name in PROFILES else str(Path(name).resolve()),
        "out_dir": str(Path(out_dir).resolve()),
        "interactive": False,
        "progress": True,
        **dict(extra or {}),
    }


def declared_parameters(path: str | Path) -> set[str]:
    """Names assigned at the top level of the notebook's ``parameters`` cell (empty without one)."""
    import ast

    import nbformat

    for cell in nbformat.read(str(path), as_version=4).cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                return set()
            return {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Name)}
    return set()


def check_parameters(notebooks: Sequence[str | Path], parameters: Mapping[str, Any] | None) -> None:
    """Refuse a ``-p`` name that none of ``notebooks`` (the ones that will run) declares in its
    ``parameters`` cell and the runner does not set (:func:`notebook_parameters`). Papermill only
    warns about such a name, and every notebook would then run its whole budget without it.
    A name declared by some of the notebooks is accepted (see :func:`parameters_for`).

    Raises:
        ValueError: names the parameter, the declared names and the closest of them.
    """
    import difflib

    runner = set(notebook_parameters())
    declared = set().union(*(declared_parameters(p) for p in notebooks))
    unknown = [key for key in (parameters or {}) if key not in declared and key not in runner]
    if not unknown:
        return
    names = sorted((declared | runner) - set(RESERVED_PARAMETERS))  # profile, out_dir: --profile, --out
    hints = [f"{close[0]!r}" + (f" for {key!r}" if len(unknown) > 1 else "") for key in unknown
             if (close := difflib.get_close_matches(key, names, n=1, cutoff=0.6))]
    which = "the notebook" if len(notebooks) == 1 else f"any of the {len(notebooks)} notebooks"
    raise ValueError(f"{', '.join(f'-p {key!r}' for key in unknown)}: not declared by {which} to run; "
                     f"declared: {', '.join(sorted(declared - set(RESERVED_PARAMETERS))) or 'none'}"
                     + (f"; did you mean {', '.join(hints)}?" if hints else ""))


def parameters_for(path: str | Path, injected: Mapping[str, Any], user: Mapping[str, Any] | None = None,
                   ) -> dict[str, Any]:
    """The parameters one notebook receives: ``injected`` less the runner's optional ones
    (:data:`OPTIONAL_PARAMETERS`) that its ``parameters`` cell does not declare. A parameter the
    user passed (``-p``) is injected into every notebook, also one that does not declare it (papermill
    warns there); :func:`check_parameters` has refused one that no notebook to run declares."""
    declared = declared_parameters(path)
    return {key: value for key, value in injected.items()
            if key not in OPTIONAL_PARAMETERS or key in declared or key in (user or {})}


# ------------------------------------------------------------------------------ resume
def code_version() -> dict[str, str]:
    """The code a notebook ran against: the git commit (``+dirty`` with changes) and a hash of
    the package's ``.py`` and ``.yaml`` files (which tells two dirty states apart)."""
    import hyperkit

    root = Path(hyperkit.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts and path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {"commit": git_commit(), "package": digest.hexdigest()[:16]}


def notebook_fingerprint(path: str | Path, parameters: Mapping[str, Any], config: Mapping[str, Any],
                         code: Mapping[str, str]) -> str:
    """A short hash of what one notebook runs with: its file, the injected parameters, the
    resolved profile and the code version (:func:`code_version`). Equal fingerprints: ``--resume``
    may skip a notebook that passed.

    The injected ``out_dir`` is left out: it is the folder whose ``index.json`` ``--resume`` reads,
    so a run folder that was moved or copied whole still resumes where it stopped.

    Raises:
        FileNotFoundError: no notebook at ``path``.
    """
    own = {k: v for k, v in parameters.items() if k != "out_dir"}
    payload = {"notebook": sha256_file(path), "parameters": own,
               "config": dict(config), "code": dict(code)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_index(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / "index.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _kept_rows(previous: Mapping[str, Any] | None, folder: Path, selected: Sequence[Path], profile: str,
               out: Path) -> list[NotebookResult]:
    """After ``--only``: the rows of the folder's earlier run (same profile, same notebooks folder)
    for the notebooks this run leaves out, marked ``reused`` and not ``selected``, so a partial
    run does not erase what the index says about the rest of the folder."""
    if not previous or previous.get("profile") != profile or previous.get("notebooks_dir") != str(folder):
        return []
    names = {p.stem for p in selected}
    present = {p.stem for p in folder.glob(NOTEBOOK_PATTERN)}
    known = {f.name for f in fields(NotebookResult)}
    kept: list[NotebookResult] = []
    for row in previous.get("notebooks", []):
        stem = row.get("notebook") if isinstance(row, dict) else None
        if stem in names or stem not in present or any(r.notebook == stem for r in kept):
            continue
        result = NotebookResult(**{k: v for k, v in row.items() if k in known})
        result.reused, result.selected = True, False
        if result.output and not (out / result.output).is_file():
            result.output = None
        kept.append(result)
    return kept


def _why_not_skipped(row: Mapping[str, Any] | None, fingerprint: str, out: Path) -> str | None:
    """``None`` when ``--resume`` may skip the notebook, else the reason it runs."""
    if row is None:
        return "did not run in the earlier run"
    if row.get("status") != PASSED:
        return f"{row.get('status', 'did not pass')} in the earlier run"
    if row.get("fingerprint") != fingerprint:
        return "changed since the earlier run (notebook, parameters, profile or code)"
    if not row.get("output") or not (out / str(row["output"])).is_file():
        return "has no executed copy from the earlier run"
    return None


# ------------------------------------------------------------------------------ estimates
@dataclass(frozen=True)
class Estimate:
    """How long a notebook is expected to take.

    Attributes:
        seconds: the whole notebook.
        source: where the number comes from, for the progress line.
        cells: seconds of each code cell, in execution order (empty: per notebook only).
    """

    seconds: float
    source: str
    cells: tuple[float, ...] = ()

    def remaining(self, elapsed: float, cell: int = 0, cell_elapsed: float = 0.0) -> float:
        """Seconds left after ``elapsed`` in the notebook, ``cell_elapsed`` of them in code cell ``cell`` (1-based)."""
        if self.cells and 1 <= cell <= len(self.cells):
            return max(self.cells[cell - 1] - cell_elapsed, 0.0) + sum(self.cells[cell:])
        return max(self.seconds - elapsed, 0.0)


def _code_cells(nb: Any) -> list[Any]:
    """The code cells papermill executes (non-empty source), in order."""
    return [c for c in nb.cells if c.get("cell_type") == "code" and str(c.get("source", "")).strip()]


def count_code_cells(path: str | Path) -> int:
    """Code cells of ``path`` as executed by the runner (an injected-parameters cell is replaced, or added)."""
    import nbformat

    cells = _code_cells(nbformat.read(str(path), as_version=4))
    injected = sum("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    return len(cells) - injected + 1


def estimate_for(stem: str, profile: str, total_cells: int, *, previous_copy: str | Path | None = None,
                 previous_row: Mapping[str, Any] | None = None) -> Estimate | None:
    """The time a notebook is expected to take, or ``None``.

    In order: the cell durations papermill recorded in the last executed copy (of a run that
    passed, ``previous_row``, with the same number of code cells), that run's total from the
    index, then :data:`SHIPPED_SECONDS` for a built-in profile.
    """
    passed = previous_row is not None and previous_row.get("status") == PASSED
    if passed and previous_copy is not None and Path(previous_copy).is_file():
        try:
            import nbformat

            nb = nbformat.read(str(previous_copy), as_version=4)
            meta = nb.metadata.get("papermill", {}) or {}
            cells = _code_cells(nb)
            seconds = [(c.get("metadata", {}).get("papermill", {}) or {}).get("duration") for c in cells]
            if not meta.get("exception") and len(cells) == total_cells and all(d is not None for d in seconds):
                durations = tuple(float(d) for d in seconds)
                return Estimate(float(meta.get("duration") or sum(durations)), "the last run", durations)
        except Exception:  # noqa: BLE001 -- an unreadable copy only means no per-cell estimate
            pass
    if passed and previous_row is not None and previous_row.get("seconds"):
        return Estimate(float(previous_row["seconds"]), "the last run")
    shipped = SHIPPED_SECONDS.get(profile, {}).get(stem)
    return Estimate(float(shipped), "the kit's timing table") if shipped else None


# ------------------------------------------------------------------------------ progress
class Progress:
    """What ``hyperkit reproduce`` shows while it runs.

    ``live``: one status line, redrawn every ``refresh`` seconds on ``stream`` (a terminal):
    ``[5/8] 04_episodic_training · cell 5/9 · 3 min 12 s · about 9 min left · episodes: 34% ...``.
    Plain (CI, logs): lines through ``echo`` only when a notebook starts and ends, and one
    heartbeat line every ``heartbeat`` seconds during it (``0``: none).

    Args:
        echo: where plain lines go (``None``: silent).
        stream: the terminal of the live line (default ``sys.stdout``).
        live: draw the live line (default: ``stream`` is a terminal and ``echo`` is ``print``).
        heartbeat: seconds between plain heartbeat lines.
        refresh: seconds between redraws of the live line.
        clock: monotonic seconds (tests pass a fake one).
        width: the live line's width (default: the terminal's).

    Raises:
        ValueError: ``heartbeat`` or ``refresh`` negative.
    """

    def __init__(self, echo: Callable[[str], None] | None = print, *, stream: TextIO | None = None,
                 live: bool | None = None, heartbeat: float = 300.0, refresh: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None) -> None:
        if heartbeat < 0 or refresh < 0:
            raise ValueError(f"heartbeat and refresh must be >= 0 seconds, got {heartbeat} and {refresh}")
        self.stream = stream if stream is not None else sys.stdout
        if live is None:
            live = echo is print and _is_terminal(self.stream)
        self.live, self.echo, self.heartbeat, self.refresh = live, echo, heartbeat, refresh
        self.clock, self.width = clock, width
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = 0  # characters of the live line on screen
        self._later: list[float] = []  # estimates of the notebooks after this one (0: none)
        self._reset()

    def _reset(self) -> None:
        self.number = self.total = self.cells = self.cell_no = 0
        self.stem = ""
        self.estimate: Estimate | None = None
        self.started = self.cell_started = self.clock()
        self.last_output = ""

    # the runner's events --------------------------------------------------------------
    def plan(self, estimates: Sequence[Estimate | None]) -> None:
        """The estimates of every notebook about to run, in order (for the time left in all)."""
        self._later = [e.seconds if e is not None else 0.0 for e in estimates]
        known = [e for e in estimates if e is not None]
        if known:
            missing = len(estimates) - len(known)
            plural = "s" if len(estimates) != 1 else ""
            self.say(f"{len(estimates)} notebook{plural}; about {clock(sum(e.seconds for e in known))} in all "
                     f"(estimate from {known[0].source}" + (f"; {missing} without one)" if missing else ")"))

    def start_notebook(self, number: int, total: int, stem: str, cells: int, estimate: Estimate | None) -> None:
        """Notebook ``number`` of ``total`` starts; it has ``cells`` code cells."""
        with self._lock:
            self._reset()
            self.number, self.total, self.stem, self.cells, self.estimate = number, total, stem, cells, estimate
            self._later = self._later[1:] if self._later else []
        if not self.live:
            expect = f" (about {clock(estimate.seconds)}, from {estimate.source})" if estimate else ""
            self.say(f"[{number}/{total}] {stem} ...{expect}")
        self._start_ticker()

    def cell(self) -> None:
        """The next code cell starts executing."""
        with self._lock:
            self.cell_no += 1
            self.cell_started = self.clock()
        self._draw()

    def output(self, text: str) -> None:
        """Text the notebook printed (a stream, or a progress bar's text): the last line is kept."""
        pieces = [" ".join(p.split()) for p in re.split(r"[\r\n]+", _strip_ansi(str(text))) if p.strip()]
        if pieces:
            with self._lock:
                self.last_output = pieces[-1]

    def end_notebook(self, line: str) -> None:
        """The notebook ended; ``line`` says how (printed as a permanent line)."""
        self._stop_ticker()
        self._clear()
        self.say(line)

    def say(self, line: str) -> None:
        """A permanent line (above the live line on a terminal)."""
        with self._lock:
            if self.live:
                self._clear()
                self.stream.write(line + "\n")
                self.stream.flush()
            elif self.echo is not None:
                self.echo(line)

    def close(self) -> None:
        """Stop drawing (idempotent)."""
        self._stop_ticker()
        self._clear()

    # what is shown --------------------------------------------------------------------
    def status(self) -> str:
        """The current status: notebook, cell, time spent, time left, latest output."""
        with self._lock:
            now = self.clock()
            elapsed = now - self.started
            parts = [f"[{self.number}/{self.total}] {self.stem}"]
            if self.cells:
                parts.append(f"cell {min(self.cell_no, self.cells)}/{self.cells}" if self.cell_no else
                             "starting its kernel")
            parts.append(clock(elapsed))
            if self.estimate is not None:
                left = self.estimate.remaining(elapsed, self.cell_no, now - self.cell_started)
                if left >= 1:
                    total = left + sum(self._later)
                    in_all = f" ({clock(total)} in all)" if any(self._later) else ""
                    parts.append(f"about {clock(left)} left{in_all}")
                else:
                    parts.append(f"longer than {self.estimate.source} ({clock(self.estimate.seconds)})")
            else:
                parts.append("no estimate yet")
            if self.last_output:
                parts.append(self.last_output)
            return " · ".join(parts)

    def _draw(self) -> None:
        if not self.live:
            return
        with self._lock:
            width = self.width or shutil.get_terminal_size((100, 20)).columns
            text = self.status()
            text = text if len(text) < width else text[: max(width - 2, 1)] + "…"
            self.stream.write("\r" + text + " " * max(self._shown - len(text), 0))
            self.stream.flush()
            self._shown = len(text)

    def _clear(self) -> None:
        with self._lock:
            if self.live and self._shown:
                self.stream.write("\r" + " " * self._shown + "\r")
                self.stream.flush()
                self._shown = 0

    def _start_ticker(self) -> None:
        interval = self.refresh if self.live else self.heartbeat
        if interval <= 0:
            return
        self._stop = threading.Event()

        def tick(stop: threading.Event) -> None:
            while not stop.wait(interval):
                if self.live:
                    self._draw()
                else:
                    self.say("    " + self.status())

        self._thread = threading.Thread(target=tick, args=(self._stop,), daemon=True, name="reproduce-progress")
        self._thread.start()

    def _stop_ticker(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


class _Sink:
    """A file-like object for papermill's ``stdout_file``/``stderr_file``: text to :meth:`Progress.output`."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def write(self, text: str) -> int:
        self.progress.output(text)
        return len(text)

    def flush(self) -> None:
        pass


_TAG = re.compile(r"<[^>]+>")
_ENGINE = "hyperkit"


@functools.lru_cache(maxsize=None)
def _register_engine() -> str:
    """Register (once) a papermill engine whose client passes the text of progress-bar widgets
    (tqdm in a kernel with ipywidgets draws widgets, not text) to a ``widget_text`` callback."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class Client(PapermillNotebookClient):
        def __init__(self, nb_man: Any, widget_text: Callable[[str], None] | None = None, **kw: Any) -> None:
            super().__init__(nb_man, **kw)
            self._widget_text = widget_text
            self._html: dict[str, str] = {}  # HTML widgets (a tqdm bar's text parts), in creation order
            self._touched: dict[str, int] = {}  # comm -> when it last changed
            self._ticks = 0

        def handle_comm_msg(self, outs: Any, msg: dict[str, Any], cell_index: int) -> None:
            super().handle_comm_msg(outs, msg, cell_index)
            if self._widget_text is None:
                return
            try:
                content = msg.get("content", {})
                state = (content.get("data") or {}).get("state") or {}
                comm = content.get("comm_id")
                if msg.get("msg_type") == "comm_open" and state.get("_model_name") == "HTMLModel":
                    self._html[comm] = str(state.get("value", ""))
                elif comm in self._html and isinstance(state.get("value"), str):
                    self._html[comm] = state["value"]
                    self._ticks += 1
                    self._touched[comm] = self._ticks
                    recent = sorted(self._touched, key=self._touched.__getitem__)[-2:]  # one bar: its two texts
                    order = [c for c in self._html if c in recent]
                    text = " ".join(_html.unescape(_TAG.sub("", self._html[c])).strip() for c in order)
                    if text.strip():
                        self._widget_text(text)
            except Exception:  # noqa: BLE001 -- progress text must never break a notebook
                pass

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                     stdout_file: Any = None, stderr_file: Any = None, start_timeout: int = 60,
                                     execution_timeout: float | None = None,
                                     widget_text: Callable[[str], None] | None = None, **kwargs: Any) -> Any:
            # papermill's NBClientEngine.execute_managed_notebook, with the client above
            kwargs = remove_args(["input_path"], **kwargs)
            safe = remove_args(["timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(safe, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                                 startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                 log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
            return Client(nb_man, widget_text=widget_text, **final).execute()

    papermill_engines.register(_ENGINE, Engine)
    return _ENGINE


def run_notebooks(
    notebooks_dir: str | Path | None,
    out_dir: str | Path,
    profile: str | Path = "quick",
    timeout: float = DEFAULT_TIMEOUT,
    only: Iterable[str] | str | None = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    kernel_name: str | None = None,
    echo: Callable[[str], None] | None = print,
    progress: Progress | None = None,
    resume: bool = False,
    write_report: bool = True,
) -> Report:
    """Execute the notebooks headlessly, one kernel each, index the results and write the report.

    Args:
        notebooks_dir: folder of ``NN_name.ipynb`` (``None``: :func:`default_notebooks_dir`).
            Each kernel starts in this folder, so relative paths behave as in Jupyter.
        out_dir: shared output folder; the executed copies go to ``out_dir/notebooks``.
        profile: ``"quick"``, ``"paper"`` or a YAML profile (checked here).
        timeout: seconds allowed per cell.
        only: restrict to some notebooks (see :func:`find_notebooks`); the index keeps the rows of
            ``out_dir``'s earlier run (same profile and notebooks folder) for the others.
        parameters: extra parameters injected into every notebook; each must be declared by one
            of the notebooks to run or be one the runner sets (:func:`check_parameters`).
        kernel_name: kernelspec to use (default: :func:`hyperkit.kernels.ensure_kernel`).
        echo: where the plain progress lines go (``None``: silent); with ``print`` on a
            terminal a live status line is drawn instead (:class:`Progress`).
        progress: the progress display (default: made from ``echo``).
        resume: skip the notebooks that passed in ``out_dir``'s last run with the same
            fingerprint (:func:`notebook_fingerprint`); run from the first that did not.
        write_report: write the reproduction report (``report.html``, ``report.md``) at the end.

    Returns:
        The :class:`Report`; ``index.md``, ``index.json``, ``run.json`` (and the report) are
        already written. Ctrl-C ends the run early with ``report.interrupted``.

    Raises:
        ConfigError: unknown profile. FileNotFoundError / ValueError: no notebooks,
            bad ``only``, a reserved name in ``parameters``, a name no notebook to run declares or a
            ``timeout`` that is not a positive whole number of seconds.
    """
    config = load_profile(profile)  # an unknown profile fails before anything runs
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0 \
            or not float(timeout).is_integer():  # nbclient takes whole seconds; also refuses NaN and inf
        raise ValueError(f"--timeout must be a positive whole number of seconds per cell, got {timeout}")
    timeout = int(timeout)
    folder = Path(notebooks_dir).resolve() if notebooks_dir is not None else default_notebooks_dir()
    notebooks = find_notebooks(folder, only)
    check_parameters(notebooks, parameters)  # a misspelt -p fails here, before hours of runs without it
    out = Path(out_dir).resolve()
    copies = out / "notebooks"
    copies.mkdir(parents=True, exist_ok=True)

    import nbformat
    import papermill as pm

    from hyperkit.kernels import ensure_kernel, kernel_environment

    kernel = kernel_name or ensure_kernel()
    injected = notebook_parameters(profile, out, parameters)
    previous = _read_index(out)
    results = [NotebookResult(notebook=p.stem) for p in notebooks]
    kept = _kept_rows(previous, folder, notebooks, str(profile), out) if only is not None else []
    report = Report(out_dir=out, notebooks_dir=folder, profile=str(profile), config=config,
                    kernel=kernel, parameters=injected,
                    results=sorted(results + kept, key=lambda r: r.notebook))
    show = progress or Progress(echo=echo)
    earlier = {str(r.get("notebook")): r for r in (previous or {}).get("notebooks", []) if isinstance(r, dict)}
    code = code_version()
    profile_key = str(injected["profile"])
    cells = {p.stem: count_code_cells(p) for p in notebooks}
    estimates = {p.stem: estimate_for(p.stem, profile_key, cells[p.stem], previous_copy=copies / p.name,
                                      previous_row=earlier.get(p.stem)) for p in notebooks}
    skipping = resume
    if resume and previous is None:
        show.say(f"--resume: no earlier run in {out} (index.json); running every notebook")
        skipping = False
    engine = _register_engine()
    try:
        for number, (path, result) in enumerate(zip(notebooks, results), start=1):
            own = parameters_for(path, injected, parameters)
            result.fingerprint = notebook_fingerprint(path, own, config, code)
            if skipping:
                why = _why_not_skipped(earlier.get(path.stem), result.fingerprint, out)
                if why is None:
                    row = earlier[path.stem]
                    result.status, result.output, result.reused = PASSED, str(row["output"]), True
                    result.seconds = float(row.get("seconds") or 0.0)
                    show.say(f"[{number}/{len(notebooks)}] {path.stem}: passed in the earlier run, skipped (--resume)")
                    continue
                skipping = False
                show.say(f"--resume: {path.stem} {why}; running from here")
                show.plan([estimates[p.stem] for p in notebooks[number - 1:]])
            elif number == 1:
                show.plan([estimates[p.stem] for p in notebooks])
            target = copies / path.name
            target.unlink(missing_ok=True)  # never describe a failure from an earlier run's copy
            result.output = str(target.relative_to(out))
            show.start_notebook(number, len(notebooks), path.stem, cells[path.stem], estimates[path.stem])
            start = time.perf_counter()
            error: BaseException | None = None
            sink = _Sink(show)
            try:
                with kernel_environment():
                    pm.execute_notebook(
                        str(path), str(target), parameters=own, kernel_name=kernel, language="python",
                        cwd=str(folder), progress_bar=False, log_output=False, execution_timeout=timeout,
                        extra_arguments=_KERNEL_QUIET, engine_name=engine, stdout_file=sink, stderr_file=sink,
                        on_cell_execute=lambda **_: show.cell(), widget_text=show.output,
                    )
                result.status = PASSED
            except KeyboardInterrupt:
                result.status, report.interrupted = INTERRUPTED, True
            except Exception as exc:  # noqa: BLE001 -- any failure of one notebook is recorded, the run goes on
                result.status, error = FAILED, exc
            result.seconds = round(time.perf_counter() - start, 2)
            if result.status != PASSED:
                try:
                    executed = nbformat.read(str(target), as_version=4) if target.exists() else None
                except Exception:  # noqa: BLE001 -- a half-written copy still gets an index entry
                    executed = None
                for key, value in _describe_failure(executed, error, timeout).items():
                    setattr(result, key, value)
            took = f"{result.seconds:.1f} s" if result.seconds < 60 else clock(result.seconds)
            show.end_notebook(f"[{number}/{len(notebooks)}] {path.stem}: {result.status} in {took}"
                              + (f" ({_first_line(result.error, 160)})" if result.error else ""))
            if not target.exists():
                result.output = None
            write_index(report)
            if report.interrupted:
                break
    finally:
        show.close()
    # the sessions whose notebooks this folder keeps: skipped by --resume, or left out by --only
    keeps = previous is not None and (resume or bool(kept))
    sessions = earlier_sessions(out / "run.json") if keeps else None  # read once, for the index and run.json
    record = run_record(config, seed=config.get("seed"), kernel=kernel, parameters=injected,
                        notebooks=[asdict(r) for r in report.results], code=code, earlier=sessions)
    write_index(report, record)
    write_run_record(out, config, seed=config.get("seed"), earlier=sessions, kernel=kernel,
                     parameters=injected, notebooks=[asdict(r) for r in report.results], ok=report.ok, code=code)
    if write_report:
        _write_report(report, profile_key, show.say, record)
    return report


def _write_report(report: Report, profile: str, say: Callable[[str], None], record: Mapping[str, Any]) -> None:
    """Build the reproduction report; a failure is recorded and said, never raised (the run's
    results are on disk either way)."""
    try:
        from hyperkit.report import build_report

        files = build_report(report.out_dir, profile=profile)
    except Exception as exc:  # noqa: BLE001 -- the index and executed copies stand without the report
        report.report_error = f"{type(exc).__name__}: {_first_line(str(exc), 200)}"
        return
    report.report = files.html
    write_index(report, record)  # index.md now links the report
    counts = files.counts()
    say(f"report: {counts['holds']} of the paper's claims hold, {counts['does not hold']} do not, "
        f"{counts['not measured']} not measured")


def _report_only_conflicts(args: argparse.Namespace) -> None:
    """Refuse the options that ``--report-only`` (which runs nothing) would ignore.

    Raises:
        ValueError: names the first such option given.
    """
    given = {"--only": args.only is not None, "-p/--parameter": bool(args.parameter),
             "--timeout": args.timeout is not None, "--resume": args.resume, "--notebooks": args.notebooks is not None}
    for option, used in given.items():
        if used:
            raise ValueError(f"--report-only runs no notebook, so {option} would be ignored; "
                             f"drop {option}, or drop --report-only to run the notebooks")


def _run(args: argparse.Namespace) -> int:
    if args.report_only:
        _report_only_conflicts(args)
    extras = dict(parse_parameter(p) for p in args.parameter or [])
    load_profile(args.profile)  # fail fast, one line, before choosing the output folder
    out = args.out or Path("runs") / f"reproduce-{Path(str(args.profile)).stem}"
    if args.report_only:
        from hyperkit.report import build_report

        # only a run's own folder: elsewhere it would write a report of "nothing measured" (over one there)
        if _read_index(Path(out).resolve()) is None:
            state = "has no readable index.json" if (Path(out) / "index.json").exists() else "has no index.json"
            raise ValueError(f"--report-only: {out} holds no `hyperkit reproduce` run ({state}); run "
                             f"`hyperkit reproduce --profile {args.profile} --out {out}` to make one and its report")
        files = build_report(out, profile=None)
        counts = files.counts()
        print(f"report: {files.html} ({counts['holds']} claims hold, {counts['does not hold']} do not, "
              f"{counts['not measured']} not measured); {files.markdown.name} beside it")
        return 0
    live = {"auto": None, "live": True, "plain": False}[args.progress]
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    report = run_notebooks(args.notebooks, out, profile=args.profile, timeout=timeout,
                           only=args.only, parameters=extras, resume=args.resume,
                           progress=Progress(live=live))
    print(report.summary())
    if report.interrupted:
        print("hyperkit: interrupted; the index lists what ran; `hyperkit reproduce --resume` (same options) "
              "continues from the notebook that stopped", file=sys.stderr)
        return 130
    return 0 if report.ok and report.report is not None else 1


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``reproduce`` sub-command to the ``hyperkit`` parser."""
    parser = subparsers.add_parser(
        "reproduce",
        help=SUMMARIES["reproduce"],
        description="Run notebooks/NN_*.ipynb in order with papermill (current environment's kernel), "
                    "write executed copies to OUT/notebooks, an index (OUT/index.md, OUT/index.json) and the "
                    "reproduction report (OUT/report.html, one self-contained page; OUT/report.md). "
                    "Exit status 1 when any notebook failed.",
    )
    parser.add_argument("--profile", default="quick",
                        help="quick (default), paper, or a YAML profile file")
    parser.add_argument("--out", type=Path, default=None,
                        help="shared output folder (default: runs/reproduce-<profile>)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help=f"time allowed per cell (default: {DEFAULT_TIMEOUT}; notebook 05 trains the baselines "
                             "in one cell)")
    parser.add_argument("--only", default=None, metavar="LIST",
                        help="comma-separated notebooks to run: numbers (00,01) or names; the index keeps "
                             "the other notebooks' rows of OUT's earlier run (same profile)")
    parser.add_argument("-p", "--parameter", action="append", metavar="KEY=VALUE",
                        help="extra notebook parameter, value read as YAML (repeatable); KEY must be declared "
                             "in the parameters cell of one of the notebooks to run, or be interactive or progress")
    parser.add_argument("--notebooks", type=Path, default=None, metavar="DIR",
                        help="folder of notebooks (default: the repository's notebooks/)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the notebooks that passed in OUT's last run with the same notebook, parameters, "
                             "profile and code; continue from the first that did not (e.g. after Ctrl-C)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild OUT/report.html and OUT/report.md from the results of the "
                             "run in OUT (OUT must hold its index.json); not with --only, -p, --timeout, --resume or "
                             "--notebooks")
    parser.add_argument("--progress", choices=("auto", "live", "plain"), default="auto",
                        help="live: one status line redrawn every second; plain: a line per notebook and a "
                             "heartbeat every 5 min; auto (default): live on a terminal, plain otherwise")
    parser.set_defaults(func=_run)
    return parser
