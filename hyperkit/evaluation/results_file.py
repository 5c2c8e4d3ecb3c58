"""The results file of an evaluation: one CSV row per task x method x draw x case (:data:`FIELDS`).

Kept apart from :mod:`hyperkit.evaluation.protocol`, which computes the rows, so that reading
results (the tables, the report, the analysis scripts in ``benchmarks/``) does not import torch
or MONAI. :mod:`hyperkit.evaluation.protocol` re-exports these names.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Mapping

from hyperkit.errors import HyperkitError
from hyperkit.files import appended_lines, write_csv_atomic

__all__ = ["FIELDS", "ResultsWriter", "csv_row", "read_results", "write_results"]

#: columns of the results CSV (``nsd``: at ``evaluate.tau`` mm; ``nsd_voxel``: at one voxel)
FIELDS: tuple[str, ...] = ("task", "method", "draw", "support", "case", "in_test_split", "dsc", "nsd", "nsd_voxel",
                           "fit_seconds")


def read_results(path: str | Path, *, drop_cut_row: bool = False) -> list[dict[str, Any]]:
    """Rows of a results CSV with numbers parsed; the columns must be exactly :data:`FIELDS`, the scores in [0, 1].

    A last row cut short by an interrupted write (:func:`~hyperkit.files.appended_lines`) is
    refused, or left out with ``drop_cut_row``.

    Args:
        path: the results file.
        drop_cut_row: leave such a cut last row out (a resumed evaluation, which redoes its model:
            :func:`~hyperkit.evaluation.protocol.evaluate`); without it the file is refused.

    Raises:
        FileNotFoundError: no file.
        HyperkitError: a results file of an older kit (missing columns such as ``nsd_voxel``:
            re-run, or write to a fresh ``--out``), not a results file at all, a cut last row
            (without ``drop_cut_row``), or a row whose values do not parse or lie out of range (named by its line).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no results file")
    lines = appended_lines(p, drop_cut_row=drop_cut_row, redo="resume the evaluation (--resume) to redo that model")
    reader = csv.DictReader(lines)
    columns = tuple(reader.fieldnames or ())
    if columns != FIELDS:
        missing = [c for c in FIELDS if c not in columns]
        if {"task", "method", "dsc"} <= set(columns) and missing:
            raise HyperkitError(f"{p}: results of an older hyperkit (no column(s) {missing}); re-run the "
                                "evaluation, or pass a fresh --out")
        raise HyperkitError(f"{p}: not a hyperkit results file (columns {list(columns)}, expected {list(FIELDS)})")
    rows = []
    for row in reader:
        try:
            rows.append(_parsed(row))
        except (TypeError, ValueError) as exc:
            raise HyperkitError(f"{p}: line {reader.line_num} is not a results row ({exc})") from None
    return rows


def csv_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One results row as the CSV holds it: the :data:`FIELDS` columns, floats to 6 decimals."""
    return {k: (f"{row[k]:.6f}" if isinstance(row[k], float) else row[k]) for k in FIELDS}


def _parsed(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the CSV holds it (read back as strings, or :func:`csv_row`'s values before
    writing), with its numbers parsed (in place)."""
    row["draw"] = int(row["draw"])
    if row["in_test_split"] not in (True, False, "True", "False"):
        raise ValueError(f"in_test_split must be True or False, got {row['in_test_split']!r}")
    row["in_test_split"] = row["in_test_split"] in (True, "True")
    for k in ("dsc", "nsd", "nsd_voxel"):
        row[k] = float(row[k])
        if not 0.0 <= row[k] <= 1.0:  # NaN fails too
            raise ValueError(f"{k} must lie in [0, 1], got {row[k]}")
    row["fit_seconds"] = float(row["fit_seconds"])
    if not 0.0 <= row["fit_seconds"] < float("inf"):
        raise ValueError(f"fit_seconds must lie in [0, inf), got {row['fit_seconds']}")
    return row


def write_results(path: str | Path, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write a results CSV whole and atomically: the header and ``rows`` (:func:`csv_row`).

    Returns:
        The rows as stored (floats to the CSV's digits), parsed as :func:`read_results` reads them.
    """
    stored = [csv_row(r) for r in rows]
    write_csv_atomic(path, FIELDS, stored)
    return [_parsed(dict(r)) for r in stored]


class ResultsWriter:
    """Appends rows to the CSV and flushes after each model, so an interruption loses little.

    The header and the rows kept from an earlier run are written first, atomically: a run
    interrupted as it resumes keeps the earlier file whole (it was rewritten in place).
    """

    def __init__(self, path: Path, keep: Iterable[dict[str, Any]]) -> None:
        self.rows = write_results(path, keep)
        self.fh = open(path, "a", newline="")
        self.csv = csv.DictWriter(self.fh, fieldnames=FIELDS)

    def add(self, rows: list[dict[str, Any]]) -> None:
        stored = [csv_row(r) for r in rows]
        self.csv.writerows(stored)
        self.fh.flush()
        # the rows as stored (floats to the CSV's digits): a fresh run and a resumed or reused one
        # then give every later number alike, to the last digit of an interval
        self.rows.extend(_parsed(dict(r)) for r in stored)

    def close(self) -> None:
        self.fh.close()
