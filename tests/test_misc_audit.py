"""Audit of hyperkit.provenance and hyperkit.report (markdown, cells, page) by mutation testing.

Each test guards one documented behaviour that the other tests left open: what a run record holds
(config, seed, versions, commit, command, time, machine), how ``git_commit`` reads a checkout, and
how the report's Markdown subset, cited cells and page rendering escape and place their content.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import pytest

from hyperkit import provenance


def _git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a throwaway identity and return its stdout."""
    identity = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


# --- provenance --------------------------------------------------------------------------------------


def test_package_versions_name_python_and_every_package_a_result_depends_on() -> None:
    """Guards the versions a run records: python's and each of the kit's packages, by name."""
    got = provenance.package_versions()
    assert got["python"] == platform.python_version()
    assert set(got) == {"python", "hyperkit", "torch", "monai", "numpy", "nibabel", "scipy", "SimpleITK",
                        "papermill", "nbval"}  # SimpleITK: segment --roi auto registers with it
    import numpy
    import torch
    assert got["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert got["numpy"] == numpy.__version__


def test_a_package_that_is_not_installed_is_recorded_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards that a missing package is named in the record (``"not installed"``), not dropped or fatal."""
    monkeypatch.setattr(provenance, "_PACKAGES", ("numpy", "no-such-package-for-hyperkit"))
    got = provenance.package_versions()
    assert got["no-such-package-for-hyperkit"] == "not installed" and got["numpy"] != "not installed"


def test_git_commit_reads_the_given_checkout_and_marks_tracked_changes(tmp_path: Path) -> None:
    """Guards ``git_commit(path)``: the HEAD sha of that checkout (no newline), ``+dirty`` for changes
    to tracked files (not for untracked notes), ``"unknown"`` outside a repository."""
    outside = tmp_path / "plain"
    outside.mkdir()
    assert provenance.git_commit(outside) == "unknown"
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first")
    sha = _git(repo, "rev-parse", "HEAD").strip()
    assert provenance.git_commit(repo) == sha
    assert provenance.git_commit(str(repo)) == sha
    (repo / "untracked.txt").write_text("x\n")
    assert provenance.git_commit(repo) == sha  # untracked files do not make a checkout dirty
    (repo / "a.txt").write_text("two\n")
    assert provenance.git_commit(repo) == sha + "+dirty"


def test_git_commit_marks_an_untracked_module_as_dirty_but_not_an_ignored_one(tmp_path: Path) -> None:
    """An unversioned ``*.py`` under the package folder is code a run may have imported, so the commit alone
    does not name the code (it was recorded clean before); an ignored one (a build copy) and one outside the
    folder asked about do not count."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "pkg" / "a.py").write_text("A = 1\n")
    (repo / ".gitignore").write_text("build/\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    sha = _git(repo, "rev-parse", "HEAD").strip()
    (repo / "pkg" / "build").mkdir()
    (repo / "pkg" / "build" / "copy.py").write_text("A = 2\n")
    (repo / "script.py").write_text("print(1)\n")  # outside the package folder
    assert provenance.git_commit(repo / "pkg") == sha
    (repo / "pkg" / "sub").mkdir()
    (repo / "pkg" / "sub" / "new.py").write_text("B = 2\n")
    assert provenance.git_commit(repo / "pkg") == sha + "+dirty"


def test_a_resumed_record_keeps_the_earlier_sessions_commit_and_machine(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume rewrites ``run.json`` with this session's commit, versions and machine; the earlier sessions'
    stay under ``earlier_sessions``, oldest first (before, a run made partly on other code said nothing of it).
    A run that is not resumed starts without them."""
    monkeypatch.setattr(provenance, "git_commit", lambda path=None: "aaa")
    provenance.write_run_record(tmp_path, {"x": 1}, 0)
    assert "earlier_sessions" not in json.loads((tmp_path / "run.json").read_text())
    monkeypatch.setattr(provenance, "git_commit", lambda path=None: "bbb")
    provenance.write_run_record(tmp_path, {"x": 1}, 0, resumed=True)
    monkeypatch.setattr(provenance, "git_commit", lambda path=None: "ccc")
    provenance.write_run_record(tmp_path, {"x": 1}, 0, resumed=True)
    got = json.loads((tmp_path / "run.json").read_text())
    assert got["commit"] == "ccc"
    assert [s["commit"] for s in got["earlier_sessions"]] == ["aaa", "bbb"]
    assert set(got["earlier_sessions"][0]) == set(provenance.SESSION_KEYS)
    assert got["earlier_sessions"][0]["compute"] == got["compute"]  # the same machine, recorded each time
    provenance.write_run_record(tmp_path, {"x": 1}, 0)  # a new run in the folder: no history
    assert "earlier_sessions" not in json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text("{cut")  # an unreadable record: the resumed run records itself alone
    provenance.write_run_record(tmp_path, {"x": 1}, 0, resumed=True)
    assert "earlier_sessions" not in json.loads((tmp_path / "run.json").read_text())


def test_git_commit_is_unknown_when_git_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Guards the documented ``"unknown"`` when git cannot answer (a timeout is a SubprocessError)."""
    def hang(*args: object, **kwargs: object) -> None:
        raise subprocess.TimeoutExpired("git", 10)

    monkeypatch.setattr(provenance.subprocess, "run", hang)
    assert provenance.git_commit(tmp_path) == "unknown"


def test_cpu_model_is_stripped_and_falls_back_to_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the processor name: the value after ``model name:`` without padding; ``"unknown"`` when
    neither ``/proc/cpuinfo`` nor ``platform.processor()`` names it."""
    cpu = provenance.compute_environment()["cpu"]
    assert cpu and cpu == cpu.strip()
    real_read = Path.read_text

    def no_cpuinfo(self: Path, *args: object, **kwargs: object) -> str:
        if str(self) == "/proc/cpuinfo":
            raise OSError("no such file")
        return real_read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", no_cpuinfo)
    monkeypatch.setattr(provenance.platform, "processor", lambda: "")
    assert provenance._cpu_model() == "unknown"


def test_compute_environment_records_every_thread_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the thread variables of the environment that decide a run's floating-point results."""
    for key, value in (("OMP_NUM_THREADS", "3"), ("MKL_NUM_THREADS", "2"), ("OMP_WAIT_POLICY", "PASSIVE")):
        monkeypatch.setenv(key, value)
    env = provenance.compute_environment()["env"]
    assert env == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}


def test_compute_environment_does_not_start_a_cuda_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards that naming the GPU happens only for a CUDA context the run already made."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: pytest.fail("a CUDA context was started"))
    assert provenance.compute_environment()["cuda"] is None


def test_run_record_holds_config_seed_versions_commit_command_and_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards every field the project's rules ask a run to record, and that the record is JSON."""
    monkeypatch.setattr(sys, "argv", ["hyperkit", "evaluate", "--profile", "quick"])
    config = MappingProxyType({"name": "quick", "data": {"patch_size": 32}})
    record = provenance.run_record(config, 7, note="x")
    assert record["seed"] == 7 and record["note"] == "x"
    assert record["config"] == {"name": "quick", "data": {"patch_size": 32}}
    assert type(record["config"]) is dict
    assert record["versions"] == provenance.package_versions()
    assert record["commit"] == provenance.git_commit()
    assert record["command"] == ["hyperkit", "evaluate", "--profile", "quick"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["created"])
    created = dt.datetime.fromisoformat(record["created"])
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 60
    assert json.loads(json.dumps(record)) == record
    assert provenance.run_record({}, 0)["config"] == {}  # an empty config is still recorded
    assert provenance.run_record()["config"] is None


def test_write_run_record_makes_missing_parent_folders(tmp_path: Path) -> None:
    """Guards ``write_run_record`` into a folder whose parents do not exist yet."""
    path = provenance.write_run_record(tmp_path / "a" / "b", {"name": "quick"}, 3, profile="quick")
    assert path == tmp_path / "a" / "b" / "run.json"
    record = json.loads(path.read_text())
    assert record["seed"] == 3 and record["config"] == {"name": "quick"} and record["profile"] == "quick"


# --- report.markdown ---------------------------------------------------------------------------------


def _md(text: str) -> str:
    from hyperkit.report.markdown import to_html

    return to_html(text)


def test_inline_formatting_is_not_greedy_and_code_spans_are_verbatim() -> None:
    """Guards bold per pair of ``**``, and code spans escaped verbatim (never formatted)."""
    from hyperkit.report.markdown import inline

    assert inline("**a** and **b**") == "<strong>a</strong> and <strong>b</strong>"
    assert inline("`**x** <b>`") == "<code>**x** &lt;b&gt;</code>"
    assert inline("`<u>`") == "<code>&lt;u&gt;</code>"


@pytest.mark.parametrize("href", ["//example.org/x", "javascript:alert(1)", "mailto:a@b.c", "file:///etc"])
def test_links_with_a_scheme_or_a_host_are_shown_not_linked(href: str) -> None:
    """Guards the offline page: only in-page or relative links become ``<a href>``."""
    from hyperkit.report.markdown import inline

    out = inline(f"[site]({href})")
    assert "<a " not in out and out == f"site ({href})"


def test_link_targets_are_escaped_once_in_the_attribute() -> None:
    """Guards the ``href`` attribute: ``&`` escaped once (not twice) and a quote cannot close it."""
    from hyperkit.report.markdown import inline

    assert inline("[x](page.html?a=1&b=2)") == '<a href="page.html?a=1&amp;b=2">x</a>'
    assert inline('[x](a"onclick=b)') == '<a href="a&quot;onclick=b">x</a>'


def test_split_row_drops_the_outer_bars_but_keeps_an_escaped_last_bar() -> None:
    """Guards ``split_row``: outer bars are not cells; a final ``\\|`` is a literal bar of the last cell."""
    from hyperkit.report.markdown import split_row

    assert split_row("| a | b |") == ["a", "b"]
    assert split_row("  | a | b \\|") == ["a", "b |"]


def test_tables_need_every_line_piped_and_a_full_delimiter_row() -> None:
    """Guards what counts as a table: every line starts with ``|`` and every cell of row 2 is ``---``."""
    assert "<table" not in _md("| a | b |\n|---| x |")
    assert "<table" not in _md("| a |\n|---|\nplain text")
    assert _md("| a |\n|---|\n| 1 |").startswith("<table>")


def test_table_ids_are_escaped_and_every_verdict_gets_its_class() -> None:
    """Guards the table ``id`` attribute's escaping and the CSS class of each of the three verdicts."""
    from hyperkit.report.markdown import to_html

    out = to_html("| v |\n|---|\n| holds |\n| does not hold |\n| not measured |", lambda: 'a"b')
    assert out.startswith('<table id="a&quot;b">')
    assert '<td class="verdict holds">' in out and '<td class="verdict fails">' in out
    assert '<td class="verdict unmeasured">not measured</td>' in out


def test_headings_need_a_space_a_block_of_their_own_and_are_escaped() -> None:
    """Guards headings: ``#`` then a space, alone in their block, text escaped like any inline text."""
    assert _md("## a <b> **c**") == "<h2>a &lt;b&gt; <strong>c</strong></h2>"
    assert _md("#hashtag") == "<p>#hashtag</p>"
    assert _md("# Title\nmore") == "<p># Title more</p>"


def test_list_items_take_continuation_lines_and_paragraphs_are_joined() -> None:
    """Guards bullet continuation lines (two spaces) and paragraphs joined from stripped lines."""
    assert _md("- one\n  more\n* two") == "<ul><li>one more</li><li>two</li></ul>"
    assert _md("  indented first line\n  second") == "<p>indented first line second</p>"
    assert _md("a  \n   b\n\n\n\nc") == "<p>a b</p>\n<p>c</p>"


# --- report.cells --------------------------------------------------------------------------------------


def _code(source: object, *outputs: dict, cell_id: str = "c", count: int | None = 1) -> dict:
    """A code cell as stored in an executed .ipynb file (``source`` as a string or a list of lines)."""
    return {"cell_type": "code", "id": cell_id, "source": source, "execution_count": count, "metadata": {},
            "outputs": list(outputs)}


def _write_nb(path: Path, *cells: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_cell_text_keeps_what_a_reader_sees() -> None:
    """Guards ``cell_text``: streams, Markdown and plain results, errors; no reprs of pictures or objects,
    no terminal colours, the last state of a progress bar."""
    from hyperkit.report.cells import cell_text

    stream = {"output_type": "stream", "name": "stdout", "text": ["\x1b[31mred\x1b[0m\n", "a\rb\rc\n"]}
    cell = _code("x", stream,
                 {"output_type": "display_data", "data": {"text/markdown": "| t |", "text/plain": "T"}},
                 {"output_type": "display_data", "data": {"image/png": "", "text/plain": "Figure(640x480)"}},
                 {"output_type": "execute_result", "data": {"text/plain": "<object at 0x1>"}},
                 {"output_type": "execute_result", "data": {"text/plain": ["4", "2"]}},
                 {"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []})
    assert cell_text(cell) == "red\nc\n| t |\n42\nValueError: boom"


def test_cell_text_is_trimmed_to_its_limit() -> None:
    """Guards the trim: at most ``limit`` characters (1500 by default), the last one an ellipsis."""
    from hyperkit.report.cells import cell_text

    def out(n: int) -> dict:
        return _code("x", {"output_type": "stream", "name": "stdout", "text": "y" * n})

    assert cell_text(out(1500)) == "y" * 1500
    long = cell_text(out(1600))
    assert len(long) == 1500 and long.endswith("y…")
    assert cell_text(out(11), limit=10) == "y" * 9 + "…"


def test_find_cell_cites_the_first_matching_code_cell_of_the_right_notebook(tmp_path: Path) -> None:
    """Guards ``find_cell``: only ``NN_*.ipynb`` of the rule's notebook, unreadable copies skipped, the
    pattern searched anywhere in a list-of-lines source, and the cell's position, id, error recorded."""
    from hyperkit.report.cells import find_cell

    nbs = tmp_path / "notebooks"
    _write_nb(nbs / "050_other.ipynb", _code("run_evaluation(a)", cell_id="wrong"))
    (nbs / "05_a_broken.ipynb").write_text("{not json")
    md = {"cell_type": "markdown", "id": "m", "source": "run_evaluation(", "metadata": {}}
    _write_nb(nbs / "05_b_one_shot.ipynb", md, _code("import x"), md,
              _code(["x = 1\n", "run_evaluation(cfg)\n"],
                    {"output_type": "stream", "name": "stdout", "text": "ok"},
                    {"output_type": "error", "ename": "KeyError", "evalue": "'k'", "traceback": []},
                    cell_id="abc", count=4),
              _code("run_evaluation(again)", cell_id="later"))
    ref = find_cell(nbs, "one_shot")
    assert ref is not None and ref.notebook == "05_b_one_shot" and ref.cell_id == "abc"
    assert (ref.index, ref.number, ref.total, ref.execution_count) == (3, 2, 3, 4)
    assert ref.source == "x = 1\nrun_evaluation(cfg)\n" and ref.error == "KeyError: 'k'"
    assert ref.anchor == "cell-05_b_one_shot-3" and ref.label == "05_b_one_shot, code cell 2 of 3"
    assert find_cell(nbs, "five_shot") is None
    _write_nb(nbs / "07_finetune.ipynb", _code("run(shots = 50)", cell_id="fifty"),
              _code("run(shots=5)", cell_id="five"))
    five = find_cell(nbs, "five_shot")
    assert five is not None and five.cell_id == "five" and five.error is None
