"""The runner's small rules, one by one: lines shown, failures described, resume decisions, estimates.

A mutation audit of ``hyperkit/reproduce.py`` found each of these unpinned by ``test_reproduce.py``.
"""

from __future__ import annotations

import io
from pathlib import Path

import nbformat
import pytest

from hyperkit.durations import clock
from hyperkit.reproduce import (
    FAILED,
    INTERRUPTED,
    NOT_RUN,
    PASSED,
    Estimate,
    NotebookResult,
    Progress,
    Report,
    _describe_failure,
    _first_line,
    _md_cell,
    _raising_line,
    _source_line,
    _why_not_skipped,
    count_code_cells,
    declared_parameters,
    estimate_for,
    find_notebooks,
    run_notebooks,
)
from test_reproduce import FakeClock, _notebook, _write_notebooks


# ------------------------------------------------------------------------------ lines shown
def test_first_line_skips_blank_lines_and_cuts_at_the_limit() -> None:
    assert _first_line("\n   \nsecond\nthird", 100) == "second"
    assert _first_line("x" * 10, 10) == "x" * 10
    assert _first_line("x" * 11, 10) == "x" * 7 + "..."
    assert _first_line("", 10) == ""


def test_md_cell_escapes_pipes_and_leaves_backticked_text_unquoted() -> None:
    assert _md_cell("a | b", 100) == "`a \\| b`"
    assert _md_cell("use `x` here", 100) == "use `x` here"
    assert _md_cell("", 100) == ""


def test_source_line_skips_nbval_markers() -> None:
    assert _source_line("# NBVAL_SKIP\n\n#NBVAL_IGNORE_OUTPUT\nx = 1\ny = 2") == "x = 1"
    assert _source_line("# a comment\nx = 1") == "# a comment"


@pytest.mark.parametrize("seconds, shown", [(-5, "0 s"), (59.4, "59 s"), (60, "1 min 00 s"), (3599, "59 min 59 s"),
                                            (3600, "1 h 00 min"), (7325, "2 h 02 min")])
def test_clock(seconds: float, shown: str) -> None:
    assert clock(seconds) == shown


# ------------------------------------------------------------------------------ failures
def test_raising_line_reads_only_the_cell_frame() -> None:
    # the cell's frame ends at the blank line; the arrow after it belongs to a called function's frame
    other_frame = ["Cell In[3], line 2\n      1 a = 1\n      2 b = f(a)\n\nFile lib.py:10, in f(a)\n---> 10 raise X"]
    assert _raising_line(other_frame) is None
    assert _raising_line(["Cell In[3], line 2\n      1 a = 1\n----> 2  b = f(a)\n"]) == "b = f(a)"


def _started(nb: nbformat.NotebookNode, *indices: int) -> None:
    for i in indices:
        nb.cells[i].metadata["papermill"] = {"start_time": "2026-12-06T00:00:00"}
        nb.cells[i].execution_count = i


def test_a_timeout_is_charged_to_the_last_started_cell_not_to_its_interrupt_output() -> None:
    nb = _notebook("a = 1", "while True: pass", "print('never')")
    nb.cells[3].outputs = [nbformat.v4.new_output("error", ename="KeyboardInterrupt", evalue="", traceback=[])]
    _started(nb, 1, 2, 3)
    info = _describe_failure(nb, TimeoutError("cell timed out"), 5)
    assert info == {"cell": 3, "cell_index": 3, "source": "while True: pass", "line": None,
                    "error": "TimeoutError: the cell ran longer than 5 s (--timeout, per cell)"}
    assert _describe_failure(nb, TimeoutError(), None)["error"].endswith("longer than the time allowed (--timeout, "
                                                                          "per cell)")


def test_an_error_without_a_message_is_named_by_its_type() -> None:
    nb = _notebook("a = 1")
    nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="KeyboardInterrupt", evalue="", traceback=[])]
    assert _describe_failure(nb, None)["error"] == "KeyboardInterrupt"


def test_a_failure_without_an_error_output() -> None:
    nb = _notebook("a = 1", "b = 2")
    _started(nb, 1, 2)
    assert _describe_failure(nb, None) == {"cell": 2, "cell_index": 2, "source": "a = 1", "line": None,
                                           "error": "notebook failed without an error output"}
    assert _describe_failure(nb, RuntimeError("Kernel died\nat once"))["error"] == "RuntimeError: Kernel died"
    assert _describe_failure(nb, RuntimeError())["error"] == "RuntimeError"


def test_an_interrupted_notebook_names_its_cell() -> None:
    r = NotebookResult("04_train", status=INTERRUPTED, cell=3, source="train(x)")
    assert r.failing_cell == "In [3]: train(x)"
    assert NotebookResult("04_train", status=PASSED, cell=3, source="x").failing_cell == ""


# ------------------------------------------------------------------------------ selection and parameters
def test_a_notebook_named_twice_runs_once(tmp_path: Path) -> None:
    assert [p.stem for p in find_notebooks(_write_notebooks(tmp_path / "nb"), "00,00_pass,pass")] == ["00_pass"]


def test_declared_parameters_are_plain_names(tmp_path: Path) -> None:
    nb = _notebook()
    nb.cells[1].source = "a = 1\nb: int = 2\nsettings = {}\nsettings['x'] = 3\nc, d = 4, 5"
    nbformat.write(nb, tmp_path / "00_x.ipynb")
    assert declared_parameters(tmp_path / "00_x.ipynb") == {"a", "b", "settings"}


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("status", [FAILED, INTERRUPTED, NOT_RUN])
def test_resume_reruns_a_notebook_that_did_not_pass(status: str, tmp_path: Path) -> None:
    (tmp_path / "00.ipynb").write_text("{}")
    row = {"status": status, "fingerprint": "f", "output": "00.ipynb"}
    assert _why_not_skipped(row, "f", tmp_path) == f"{status} in the earlier run"


def test_resume_reruns_a_notebook_whose_copy_is_gone(tmp_path: Path) -> None:
    row = {"status": PASSED, "fingerprint": "f", "output": "notebooks/00.ipynb"}
    assert _why_not_skipped(row, "f", tmp_path) == "has no executed copy from the earlier run"
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00.ipynb").write_text("{}")
    assert _why_not_skipped(row, "f", tmp_path) is None


def test_report_of_an_interrupted_run_is_not_ok_and_marks_reused_and_skipped_rows(tmp_path: Path) -> None:
    rows = [NotebookResult("00_a", status=PASSED, seconds=1.5, reused=True),
            NotebookResult("01_b", status=NOT_RUN, seconds=0.0)]
    report = Report(out_dir=tmp_path, notebooks_dir=tmp_path, profile="quick", config={}, kernel="k",
                    parameters={}, results=rows[:1], interrupted=True)
    assert not report.ok
    report = Report(out_dir=tmp_path, notebooks_dir=tmp_path, profile="quick", config={}, kernel="k",
                    parameters={}, results=rows)
    md = report.to_markdown()
    assert "| 00_a | passed (earlier run) | 1.5 |" in md
    assert "| 01_b | not run |  |" in md


# ------------------------------------------------------------------------------ estimates and progress
def test_remaining_time_in_the_last_cell() -> None:
    e = Estimate(60, "the last run", (10, 20, 30))
    assert e.remaining(45, 3, 5.0) == 25.0
    assert e.remaining(45, 4, 5.0) == 15.0  # more cells than counted: the notebook's total


def test_code_cells_leave_out_empty_cells_and_an_injected_cell_is_not_counted_twice(tmp_path: Path) -> None:
    nb = _notebook("a = 1", "   \n")
    injected = nbformat.v4.new_code_cell("out_dir = 'x'")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, injected)
    nbformat.write(nb, tmp_path / "00.ipynb")
    # parameters, a = 1, and the injected cell the runner replaces
    assert count_code_cells(tmp_path / "00.ipynb") == 3


def test_a_copy_that_recorded_an_exception_gives_no_per_cell_estimate(tmp_path: Path) -> None:
    nb = _notebook("a = 1")
    for cell in nb.cells[1:]:
        cell.metadata["papermill"] = {"duration": 1.0}
    nb.metadata["papermill"] = {"duration": 2.0, "exception": True}
    nbformat.write(nb, tmp_path / "00.ipynb")
    row = {"status": PASSED, "seconds": 7.0}
    assert estimate_for("00_x", "mine.yaml", 2, previous_copy=tmp_path / "00.ipynb", previous_row=row) == \
        Estimate(7.0, "the last run")


def test_the_last_notebook_has_no_time_in_all() -> None:
    clock = FakeClock()
    p = Progress(echo=None, live=False, heartbeat=0, clock=clock)
    only = Estimate(600, "the last run")
    p.plan([only])
    p.start_notebook(1, 1, "05_eval", 3, only)
    assert p.status() == "[1/1] 05_eval · starting its kernel · 0 s · about 10 min 00 s left"


def test_the_live_line_is_cut_to_the_terminal_width() -> None:
    screen = io.StringIO()
    p = Progress(stream=screen, live=True, refresh=0, clock=FakeClock(), width=30)
    p.start_notebook(1, 8, "04_episodic_training", 9, None)
    p.cell()
    line = screen.getvalue().split("\r")[-1]
    assert len(line) == 29 and line.endswith("…") and line.startswith("[1/8] 04_episodic_training")


# ------------------------------------------------------------------------------ the run
def test_a_failure_is_never_described_from_an_earlier_runs_copy(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    folder = _write_notebooks(tmp_path / "nb")
    stale = _notebook("x = 1")
    stale.cells[2].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="stale", traceback=[])]
    (tmp_path / "out" / "notebooks").mkdir(parents=True)
    nbformat.write(stale, tmp_path / "out" / "notebooks" / "01_fail.ipynb")

    def execute(input_path: str, output_path: str, **kwargs: object) -> None:
        if Path(input_path).stem == "01_fail":
            raise RuntimeError("the kernel died")  # before papermill wrote anything
        Path(output_path).write_text(Path(input_path).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    report = run_notebooks(folder, tmp_path / "out", kernel_name="python3", echo=None, write_report=False)
    failed = report.results[1]
    assert (failed.status, failed.error, failed.output) == (FAILED, "RuntimeError: the kernel died", None)
    assert report.results[0].output == "notebooks/00_pass.ipynb"


def test_a_timeout_that_is_not_whole_seconds_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive whole number of seconds per cell, got 1.5"):
        run_notebooks(_write_notebooks(tmp_path / "nb"), tmp_path / "out", timeout=1.5, kernel_name="python3",
                      echo=None)
    assert not (tmp_path / "out").exists()


def test_a_report_that_cannot_be_built_is_said_and_fails_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture,
                                                                       jupyter_data_dir: Path) -> None:
    import papermill

    import hyperkit.cli as cli
    import hyperkit.report

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full\nmore")

    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda i, o, **kw: Path(o).write_text(Path(i).read_text()))
    monkeypatch.setattr(hyperkit.report, "build_report", broken)
    monkeypatch.setattr(cli, "COMMANDS", {"reproduce": "hyperkit.reproduce"})
    folder = _write_notebooks(tmp_path / "nb")
    report = run_notebooks(folder, tmp_path / "out", kernel_name="python3", echo=None)
    assert report.ok and report.report is None and report.report_error == "RuntimeError: disk full"
    assert "report not written: RuntimeError: disk full" in report.summary()
    # every notebook passed, but without its report the command did not do its job
    assert cli.main(["reproduce", "--notebooks", str(folder), "--out", str(tmp_path / "out2")]) == 1
    assert "report not written" in capsys.readouterr().out


def test_a_parameter_no_notebook_to_run_declares_is_refused_before_anything_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, jupyter_data_dir: Path) -> None:
    """A misspelt ``-p`` (``epsiodes=50``) is refused, naming the closest declared name, before a notebook runs
    or the output folder is made: papermill only warns about it, and every notebook would run its whole budget.
    Declared by one notebook to run is enough (after ``--only``); the runner's own names stay accepted."""
    import papermill

    import hyperkit.cli as cli

    calls: list[str] = []
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda i, o, **kw: calls.append(Path(i).stem) or Path(o).write_text(Path(i).read_text()))
    monkeypatch.setattr(cli, "COMMANDS", {"reproduce": "hyperkit.reproduce"})
    folder = _write_notebooks(tmp_path / "nb")
    nb = _notebook("pass")
    nb.cells[1].source += "\nepisodes = 10"
    nbformat.write(nb, folder / "02_train.ipynb")  # the only notebook that declares `episodes`
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"-p 'epsiodes': not declared by any of the 3 notebooks to run; "
                                         r"declared: episodes, greeting, interactive; did you mean 'episodes'\?"):
        run_notebooks(folder, out, kernel_name="python3", echo=None, parameters={"epsiodes": 50})
    with pytest.raises(ValueError, match=r"-p 'episodes': not declared by the notebook to run; declared: greeting"):
        run_notebooks(folder, out, only="00", kernel_name="python3", echo=None, parameters={"episodes": 50})
    assert cli.main(["reproduce", "--notebooks", str(folder), "--out", str(out), "-p", "greting=hi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hyperkit: error: -p 'greting'") and "'greeting'?" in err
    assert calls == [] and not out.exists()
    report = run_notebooks(folder, out, kernel_name="python3", echo=None, write_report=False,
                           parameters={"episodes": 50, "progress": False, "interactive": False})
    assert calls == ["00_pass", "01_fail", "02_train"] and report.ok


def test_report_only_needs_a_run_folder_and_refuses_the_options_it_would_ignore(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``--report-only`` on a folder with no run's ``index.json`` is refused (it wrote a "nothing measured"
    report there, over a ``report.md`` already there); so are ``--only``, ``-p``, ``--timeout`` and ``--resume``
    beside it, which it ignored without a word. A folder with a run's index still gets its report."""
    import hyperkit.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", {"reproduce": "hyperkit.reproduce"})
    out = tmp_path / "notes"
    out.mkdir()
    (out / "report.md").write_text("my own notes")
    assert cli.main(["reproduce", "--out", str(out), "--report-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out} holds no `hyperkit reproduce` run (has no index.json)" in err
    assert f"run `hyperkit reproduce --profile quick --out {out}`" in err
    assert (out / "report.md").read_text() == "my own notes" and not (out / "report.html").exists()
    (out / "index.json").write_text("not json")
    assert cli.main(["reproduce", "--out", str(out), "--report-only"]) == 2
    assert "(has no readable index.json)" in capsys.readouterr().err
    (out / "index.json").write_text('{"profile": "quick", "notebooks": []}')
    for argv, option in ((["--only", "00"], "--only"), (["-p", "episodes=5"], "-p/--parameter"),
                         (["--timeout", "3600"], "--timeout"), (["--resume"], "--resume"),
                         (["--notebooks", str(tmp_path)], "--notebooks")):
        assert cli.main(["reproduce", "--out", str(out), "--report-only", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"so {option} would be ignored; drop {option}" in err, err
    assert (out / "report.md").read_text() == "my own notes"
    assert cli.main(["reproduce", "--out", str(out), "--report-only", "--progress", "plain"]) == 0
    assert capsys.readouterr().out.startswith(f"report: {out / 'report.html'} (0 claims hold")
    assert (out / "report.md").read_text() != "my own notes"
