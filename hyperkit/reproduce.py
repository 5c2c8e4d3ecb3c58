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

All notebooks share ``out_dir``: one that needs an earlier result (phantoms, a
trained run) finds it there or makes it. A failing notebook does not stop the
run; the exit status is non-zero when any failed. Ctrl-C stops the run and
still writes the index of what ran.

Example:
    >>> report = run_notebooks("notebooks", "runs/reproduce-quick")  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence


from hyperkit.config import PROFILES, load_profile
from hyperkit.config.profiles import parse_assignment
from hyperkit.provenance import run_record, write_run_record

__all__ = [
    "NOTEBOOK_PATTERN",
    "NotebookResult",
    "Report",
    "default_notebooks_dir",
    "find_notebooks",
    "notebook_parameters",
    "parse_parameter",
    "run_notebooks",
    "write_index",
    "register",
]

#: Notebooks that ``reproduce`` runs: two digits, underscore, name.
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"

#: Parameters the runner sets itself; ``-p`` may not override them.
RESERVED_PARAMETERS = ("profile", "out_dir")

# the kernel's own start-up log (e.g. ipykernel 7's "running over TCP without
# encryption" warning, its shutdown race after an interrupt) is noise on a local,
# headless run; cell errors reach the notebook itself, not this log
_KERNEL_QUIET = ["--IPKernelApp.log_level=CRITICAL"]

PASSED, FAILED, INTERRUPTED, NOT_RUN = "passed", "failed", "interrupted", "not run"

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
        results: one entry per selected notebook, in run order.
        interrupted: the run was stopped with Ctrl-C.
    """

    out_dir: Path
    notebooks_dir: Path
    profile: str
    config: dict[str, Any]
    kernel: str
    parameters: dict[str, Any]
    results: list[NotebookResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """Every notebook ran and passed."""
        return not self.interrupted and all(r.status == PASSED for r in self.results)

    @property
    def failed(self) -> list[NotebookResult]:
        """The notebooks that failed."""
        return [r for r in self.results if r.status == FAILED]

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
        }

    def to_markdown(self) -> str:
        """The ``index.md`` text: a header and one table row per notebook."""
        passed = sum(r.status == PASSED for r in self.results)
        state = "interrupted" if self.interrupted else ("all passed" if self.ok else f"{len(self.failed)} failed")
        lines = [
            "# hyperkit reproduce",
            "",
            f"Profile `{self.profile}`, kernel `{self.kernel}`, "
            f"{passed}/{len(self.results)} notebooks passed ({state}), "
            f"{sum(r.seconds for r in self.results):.1f} s in all.",
            "",
            "| notebook | status | seconds | failing cell | error |",
            "|---|---|---:|---|---|",
        ]
        for r in self.results:
            name = f"[{r.notebook}]({r.output})" if r.output else r.notebook
            seconds = f"{r.seconds:.1f}" if r.status != NOT_RUN else ""
            lines.append(
                f"| {name} | {r.status} | {seconds} | {_md_cell(r.failing_cell, 100)} | {_md_cell(r.error or '', 200)} |"
            )
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """A few lines for the terminal."""
        width = max([len(r.notebook) for r in self.results] + [8])
        lines = []
        for r in self.results:
            text = f"  {r.notebook:<{width}}  {r.status:<11}"
            if r.status != NOT_RUN:
                text += f" {r.seconds:7.1f} s"
            if r.error:
                text += f"  {r.failing_cell}  ->  {_first_line(r.error, 160)}"
            lines.append(text.rstrip())
        passed = sum(r.status == PASSED for r in self.results)
        lines.append(f"{passed}/{len(self.results)} notebooks passed; index: {self.out_dir / 'index.md'}")
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
        ValueError: no notebooks, or an ``only`` entry that matches none.
    """
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebooks folder {str(folder)!r} does not exist")
    found = sorted(folder.glob(NOTEBOOK_PATTERN))
    if not found:
        raise ValueError(f"no notebooks named {NOTEBOOK_PATTERN} in {folder}")
    if only is None:
        return found
    wanted = [t.strip() for t in (only.split(",") if isinstance(only, str) else only) if t.strip()]
    chosen: list[Path] = []
    for token in wanted:
        stem = Path(token).name.removesuffix(".ipynb")
        hits = [p for p in found if p.stem == stem or p.stem.split("_", 1)[0] == stem or p.stem.split("_", 1)[1] == stem]
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
    md = report.out_dir / "index.md"
    md.write_text(report.to_markdown())
    data = report.to_dict()
    data["run"] = dict(record) if record is not None else run_record(report.config, seed=report.config.get("seed"))
    js = report.out_dir / "index.json"
    js.write_text(json.dumps(data, indent=2, default=str))
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
        ``{"profile": ..., "out_dir": ..., "interactive": False, **extra}``.

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
        **dict(extra or {}),
    }


def run_notebooks(
    notebooks_dir: str | Path | None,
    out_dir: str | Path,
    profile: str | Path = "quick",
    timeout: float = 3600,
    only: Iterable[str] | str | None = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    kernel_name: str | None = None,
    echo: Callable[[str], None] | None = print,
) -> Report:
    """Execute the notebooks headlessly, one kernel each, and index the results.

    Args:
        notebooks_dir: folder of ``NN_name.ipynb`` (``None``: :func:`default_notebooks_dir`).
            Each kernel starts in this folder, so relative paths behave as in Jupyter.
        out_dir: shared output folder; the executed copies go to ``out_dir/notebooks``.
        profile: ``"quick"``, ``"paper"`` or a YAML profile (checked here).
        timeout: seconds allowed per cell.
        only: restrict to some notebooks (see :func:`find_notebooks`).
        parameters: extra parameters injected into every notebook.
        kernel_name: kernelspec to use (default: :func:`hyperkit.kernels.ensure_kernel`).
        echo: called with one progress line per notebook (``None``: silent).

    Returns:
        The :class:`Report`; ``index.md``, ``index.json`` and ``run.json`` are
        already written. Ctrl-C ends the run early with ``report.interrupted``.

    Raises:
        ConfigError: unknown profile. FileNotFoundError / ValueError: no notebooks,
            bad ``only`` or a reserved name in ``parameters``.
    """
    config = load_profile(profile)  # an unknown profile fails before anything runs
    if timeout <= 0:
        raise ValueError(f"timeout must be positive seconds per cell, got {timeout}")
    folder = Path(notebooks_dir).resolve() if notebooks_dir is not None else default_notebooks_dir()
    notebooks = find_notebooks(folder, only)
    out = Path(out_dir).resolve()
    copies = out / "notebooks"
    copies.mkdir(parents=True, exist_ok=True)

    import nbformat
    import papermill as pm

    from hyperkit.kernels import ensure_kernel, kernel_environment

    kernel = kernel_name or ensure_kernel()
    injected = notebook_parameters(profile, out, parameters)
    report = Report(out_dir=out, notebooks_dir=folder, profile=str(profile), config=config,
                    kernel=kernel, parameters=injected,
                    results=[NotebookResult(notebook=p.stem) for p in notebooks])
    say = echo or (lambda _line: None)
    for number, (path, result) in enumerate(zip(notebooks, report.results), start=1):
        target = copies / path.name
        target.unlink(missing_ok=True)  # never describe a failure from an earlier run's copy
        result.output = str(target.relative_to(out))
        say(f"[{number}/{len(notebooks)}] {path.stem} ...")
        start = time.perf_counter()
        error: BaseException | None = None
        try:
            with kernel_environment():
                pm.execute_notebook(
                    str(path), str(target), parameters=injected, kernel_name=kernel, language="python",
                    cwd=str(folder), progress_bar=False, log_output=False, execution_timeout=timeout,
                    extra_arguments=_KERNEL_QUIET,
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
        if not target.exists():
            result.output = None
        say(f"[{number}/{len(notebooks)}] {path.stem}: {result.status} in {result.seconds:.1f} s"
            + (f" ({_first_line(result.error, 160)})" if result.error else ""))
        write_index(report)
        if report.interrupted:
            break
    record = run_record(config, seed=config.get("seed"), kernel=kernel, parameters=injected,
                        notebooks=[asdict(r) for r in report.results])
    write_index(report, record)
    write_run_record(out, config, seed=config.get("seed"), kernel=kernel, parameters=injected,
                     notebooks=[asdict(r) for r in report.results], ok=report.ok)
    return report


def _run(args: argparse.Namespace) -> int:
    extras = dict(parse_parameter(p) for p in args.parameter or [])
    load_profile(args.profile)  # fail fast, one line, before choosing the output folder
    out = args.out or Path("runs") / f"reproduce-{Path(str(args.profile)).stem}"
    report = run_notebooks(args.notebooks, out, profile=args.profile, timeout=args.timeout,
                           only=args.only, parameters=extras)
    print(report.summary())
    if report.interrupted:
        print("hyperkit: interrupted; the index lists what ran", file=sys.stderr)
        return 130
    return 0 if report.ok else 1


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``reproduce`` sub-command to the ``hyperkit`` parser."""
    parser = subparsers.add_parser(
        "reproduce",
        help="run every notebook headlessly and index the results",
        description="Run notebooks/NN_*.ipynb in order with papermill (current environment's kernel), "
                    "write executed copies to OUT/notebooks and an index (OUT/index.md, OUT/index.json). "
                    "Exit status 1 when any notebook failed.",
    )
    parser.add_argument("--profile", default="quick",
                        help="quick (default), paper, or a YAML profile file")
    parser.add_argument("--out", type=Path, default=None,
                        help="shared output folder (default: runs/reproduce-<profile>)")
    parser.add_argument("--timeout", type=float, default=3600, metavar="SECONDS",
                        help="time allowed per cell (default: 3600; notebook 05 trains the baselines in one cell)")
    parser.add_argument("--only", default=None, metavar="LIST",
                        help="comma-separated notebooks to run: numbers (00,01) or names")
    parser.add_argument("-p", "--parameter", action="append", metavar="KEY=VALUE",
                        help="extra notebook parameter, value read as YAML (repeatable)")
    parser.add_argument("--notebooks", type=Path, default=None, metavar="DIR",
                        help="folder of notebooks (default: the repository's notebooks/)")
    parser.set_defaults(func=_run)
    return parser
