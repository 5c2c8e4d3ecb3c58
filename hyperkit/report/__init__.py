"""The reproduction report: does the paper reproduce? (``OUT/report.html`` and ``OUT/report.md``).

``hyperkit reproduce`` builds it at the end of every run (and ``hyperkit reproduce --report-only``
rebuilds it from an existing run folder). The page answers the paper's claims one by one — a
verdict (holds / does not hold / not measured) computed from the run's results with a 95 %
confidence interval beside the paper's number and a link to the notebook cell that made it —
then shows Tables 1-6 and Figures 1-3 as the kit made them beside the paper's numbers, and the
run's provenance. The HTML page is self-contained (figures embedded, no network).

Parts: :mod:`~hyperkit.report.claims` (the verdicts), :mod:`~hyperkit.report.cells` (which
notebook cell made what), :mod:`~hyperkit.report.page` and :mod:`~hyperkit.report.markdown`
(rendering), :mod:`~hyperkit.report.build` (reading a run folder).

Example:
    >>> from hyperkit.report import build_report
    >>> files = build_report("runs/reproduce-quick")  # doctest: +SKIP
    >>> files.html.name, files.counts()  # doctest: +SKIP
    ('report.html', {'holds': 3, 'does not hold': 2, 'not measured': 2})
"""

from __future__ import annotations

from hyperkit.report.build import ReportFiles, RunFiles, build_report, run_files
from hyperkit.report.claims import FAILS, HOLDS, NOT_MEASURED, Verdict

__all__ = ["build_report", "run_files", "ReportFiles", "RunFiles", "Verdict", "HOLDS", "FAILS", "NOT_MEASURED"]
