"""``hyperkit reproduce`` on tiny synthetic notebooks (progress, resume, the report), and the kernel helper."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import nbformat
import pytest

import hyperkit.cli as cli
from hyperkit.kernels import ensure_kernel, find_kernel
from hyperkit.reproduce import (
    SHIPPED_SECONDS,
    Estimate,
    Progress,
    Report,
    _describe_failure,
    code_version,
    count_code_cells,
    estimate_for,
    find_notebooks,
    notebook_fingerprint,
    notebook_parameters,
    parse_parameter,
    run_notebooks,
)

PARAMETERS_CELL = 'profile = "quick"\nout_dir = "../runs/quick"\ninteractive = False\ngreeting = "hello"'


def _notebook(*sources: str) -> nbformat.NotebookNode:
    """A notebook whose first code cell is the ``parameters`` cell."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMETERS_CELL)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def _write_notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True)
    nbformat.write(_notebook("import os\nprint(greeting, profile, interactive)\nprint(os.getcwd())"),
                   folder / "00_pass.ipynb")
    # the error is in the 3rd cell of the notebook (parameters, x = 1, raise)
    nb = _notebook("x = 1", '# a comment first\nraise ValueError("boom")', "print('never')")
    nb.cells = nb.cells[1:]
    nbformat.write(nb, folder / "01_fail.ipynb")
    (folder / "helper.ipynb").write_text("{}")  # not NN_*: never run
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One ``hyperkit reproduce`` over a passing and a failing notebook (one kernel each)."""
    root = tmp_path_factory.mktemp("reproduce")
    notebooks = _write_notebooks(root / "notebooks")
    out = root / "out"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_DATA_DIR", str(root / "jupyter-data"))
        mp.setattr(cli, "COMMANDS", {"reproduce": "hyperkit.reproduce"})
        with contextlib.redirect_stdout(stdout):
            code = cli.main(["reproduce", "--notebooks", str(notebooks), "--out", str(out),
                             "--timeout", "120", "-p", "greeting=hi"])
    index = json.loads((out / "index.json").read_text())
    return SimpleNamespace(code=code, out=out, notebooks=notebooks, stdout=stdout.getvalue(), index=index,
                           rows={r["notebook"]: r for r in index["notebooks"]},
                           md=(out / "index.md").read_text())


def test_exit_code_is_nonzero_when_a_notebook_fails(run: SimpleNamespace) -> None:
    assert run.code == 1
    assert run.index["ok"] is False


def test_index_marks_pass_and_fail(run: SimpleNamespace) -> None:
    assert {k: r["status"] for k, r in run.rows.items()} == {"00_pass": "passed", "01_fail": "failed"}
    assert "| [00_pass](notebooks/00_pass.ipynb) | passed |" in run.md
    assert "| [01_fail](notebooks/01_fail.ipynb) | failed |" in run.md
    assert all(r["seconds"] > 0 for r in run.rows.values())
    assert "1/2 notebooks passed" in run.stdout


def test_failure_names_the_cell_and_the_error_not_the_traceback(run: SimpleNamespace) -> None:
    row = run.rows["01_fail"]
    assert row["error"] == "ValueError: boom"
    assert row["line"] == 'raise ValueError("boom")'
    assert row["source"] == "# a comment first"
    # In [n] of the executed copy: parameters (1), injected parameters (2), x = 1 (3), raise (4)
    assert row["cell"] == 4
    assert row["failing_cell"] == 'In [4]: raise ValueError("boom")'
    copy = nbformat.read(run.out / row["output"], as_version=4)
    assert copy.cells[row["cell_index"]].source.endswith('raise ValueError("boom")')
    for text in (run.md, json.dumps(run.index["notebooks"]), run.stdout):
        assert "Traceback" not in text and "\x1b[" not in text
    assert 'In [4]: raise ValueError("boom")' in run.md and "ValueError: boom" in run.md


def test_executed_copies_carry_the_injected_parameters(run: SimpleNamespace) -> None:
    copy = nbformat.read(run.out / "notebooks" / "00_pass.ipynb", as_version=4)
    injected = [c for c in copy.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert f'out_dir = "{run.out.resolve()}"' in injected[0].source
    assert 'greeting = "hi"' in injected[0].source and "interactive = False" in injected[0].source
    # the runner's optional `progress` reaches only notebooks that declare it (no papermill warning)
    assert "progress" not in injected[0].source
    printed = copy.cells[-1].outputs[0]["text"].splitlines()
    assert printed[0] == "hi quick False"
    assert Path(printed[1]) == run.notebooks.resolve()  # the kernel runs in the notebooks folder
    assert not (run.out / "notebooks" / "helper.ipynb").exists()


def test_optional_runner_parameters_follow_the_parameters_cell(tmp_path: Path) -> None:
    from hyperkit.reproduce import parameters_for

    plain = tmp_path / "00_plain.ipynb"
    nbformat.write(_notebook("pass"), plain)
    declares = tmp_path / "01_bars.ipynb"
    nb = _notebook("pass")
    nb.cells[1].source += "\nprogress = False"
    nbformat.write(nb, declares)
    injected = notebook_parameters("quick", tmp_path, {"greeting": "hi"})
    assert injected["progress"] is True
    assert "progress" not in parameters_for(plain, injected, {"greeting": "hi"})
    assert parameters_for(declares, injected)["progress"] is True
    user = {"progress": False}  # a -p is always passed on
    assert parameters_for(plain, notebook_parameters("quick", tmp_path, user), user)["progress"] is False
    assert parameters_for(plain, injected)["greeting"] == "hi"


def test_run_record_and_resolved_profile_are_written(run: SimpleNamespace) -> None:
    record = json.loads((run.out / "run.json").read_text())
    assert record["config"]["name"] == "quick" and record["seed"] == run.index["run"]["seed"]
    assert run.index["run"]["config"]["data"]["patch_size"] == record["config"]["data"]["patch_size"]
    assert [n["notebook"] for n in record["notebooks"]] == ["00_pass", "01_fail"]


def test_run_records_name_the_threads_and_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training repeats bit for bit only at the same thread count: every run record says it."""
    import torch

    from hyperkit.provenance import run_record

    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(key, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run_record(seed=0)["compute"]
        torch.set_num_threads(2)
        two = run_record(seed=0)["compute"]
    finally:
        torch.set_num_threads(before)
    assert (one["torch_threads"], two["torch_threads"]) == (1, 2)
    assert one["cpu"] and one["cpu_count"] >= 1 and one["env"] == {}
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    record = run_record(seed=0)
    assert record["compute"]["env"] == {"OMP_NUM_THREADS": "1"}
    assert json.loads(json.dumps(record))["compute"] == record["compute"]


@pytest.mark.parametrize("argv, fragment", [
    (["--profile", "nope"], "profile 'nope' does not exist"),
    (["-p", "out_dir=/x"], "use --out"),
    (["-p", "novalue"], "key=value"),
    (["--only", "07"], "matches no notebook"),
    (["--only", ","], "names no notebook"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], fragment: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {"reproduce": "hyperkit.reproduce"})
    notebooks = _write_notebooks(tmp_path / "notebooks")
    code = cli.main(["reproduce", "--notebooks", str(notebooks), "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("hyperkit: error:") and fragment in err
    assert not (tmp_path / "out").exists()


def test_reproduce_is_registered() -> None:
    assert cli.COMMANDS["reproduce"] == "hyperkit.reproduce"


def test_ctrl_c_stops_and_still_writes_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    report = run_notebooks(_write_notebooks(tmp_path / "nb"), tmp_path / "out", kernel_name="python3", echo=None)
    assert report.interrupted and not report.ok
    assert [r.status for r in report.results] == ["interrupted", "not run"]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["interrupted"] is True and [n["status"] for n in index["notebooks"]] == ["interrupted", "not run"]


@pytest.mark.parametrize("text, expected", [
    ("episodes=3", ("episodes", 3)),
    ("lr = 0.5", ("lr", 0.5)),
    ("flag=true", ("flag", True)),
    ("sizes=[1, 2]", ("sizes", [1, 2])),
    ("name=liver", ("name", "liver")),
    ("empty=", ("empty", "")),
])
def test_parse_parameter(text: str, expected: tuple) -> None:
    assert parse_parameter(text) == expected


@pytest.mark.parametrize("text", ["noequals", "2x=1", "profile=paper", "out_dir=x", "bad=[1,"])
def test_parse_parameter_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_parameter(text)


@pytest.mark.parametrize("only, expected", [
    (None, ["00_pass", "01_fail"]),
    ("01", ["01_fail"]),
    ("fail,00", ["00_pass", "01_fail"]),
    (["01_fail.ipynb"], ["01_fail"]),
])
def test_find_notebooks_selection(only: object, expected: list[str], tmp_path: Path) -> None:
    found = find_notebooks(_write_notebooks(tmp_path / "nb"), only)
    assert [p.stem for p in found] == expected


@pytest.mark.parametrize("only", ["", " , ", [], [" "]])
def test_find_notebooks_refuses_an_empty_selection(only: object, tmp_path: Path) -> None:
    # it would run nothing, and the run would overwrite the folder's index.json as a success
    with pytest.raises(ValueError, match="names no notebook; have: 00_pass, 01_fail"):
        find_notebooks(_write_notebooks(tmp_path / "nb"), only)


def test_notebook_parameters_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("base: quick\n")
    params = notebook_parameters("mine.yaml", "runs/x", {"episodes": 2})
    assert params == {"profile": str(tmp_path / "mine.yaml"), "out_dir": str(tmp_path / "runs" / "x"),
                      "interactive": False, "progress": True, "episodes": 2}
    assert notebook_parameters("paper", tmp_path)["profile"] == "paper"


def test_failure_description_strips_colour_and_finds_the_raising_line() -> None:
    nb = _notebook("a = 1\nb = helper(a)")
    nb.cells[-1].execution_count = 7
    nb.cells[-1].outputs = [nbformat.v4.new_output(
        "error", ename="\x1b[0;31mKeyError\x1b[0m", evalue="\x1b[1m'liver'\x1b[0m",
        traceback=["\x1b[0;31m----------\x1b[0m", "Cell \x1b[0;32mIn[7], line 2\x1b[0m\n      1 a = 1\n"
                   "\x1b[0;32m----> 2\x1b[0m b \x1b[38;5;241m=\x1b[39m helper(a)\n", "KeyError: 'liver'"])]
    info = _describe_failure(nb, None)
    assert info == {"cell": 7, "cell_index": 2, "source": "a = 1", "line": "b = helper(a)",
                    "error": "KeyError: 'liver'"}


def test_ensure_kernel_is_idempotent(jupyter_data_dir: Path) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    name = ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(name)
    assert spec.argv[0] == os.path.abspath(sys.executable)
    spec_file = Path(spec.resource_dir) / "kernel.json"
    stamp = spec_file.stat().st_mtime_ns
    installed = sorted(p.name for p in (jupyter_data_dir / "kernels").glob("*")) if jupyter_data_dir.exists() else []
    assert ensure_kernel() == name and find_kernel() == name
    assert spec_file.stat().st_mtime_ns == stamp  # found, not reinstalled
    again = sorted(p.name for p in (jupyter_data_dir / "kernels").glob("*")) if jupyter_data_dir.exists() else []
    assert again == installed and len(installed) <= 1


# ------------------------------------------------------------------------------ the report, resume, progress
def test_the_run_writes_the_report_and_links_it(run: SimpleNamespace) -> None:
    assert (run.out / "report.html").is_file() and (run.out / "report.md").is_file()
    assert "[report.html](report.html)" in run.md
    assert "report: " in run.stdout and "not measured" in run.stdout
    assert all(len(r["fingerprint"]) == 16 and r["reused"] is False for r in run.rows.values())


def test_plain_progress_when_not_a_terminal(run: SimpleNamespace) -> None:
    lines = run.stdout.splitlines()
    assert "[1/2] 00_pass ..." in lines and any(line.startswith("[1/2] 00_pass: passed in ") for line in lines)
    assert any(line.startswith("[2/2] 01_fail: failed in ") and "ValueError: boom" in line for line in lines)
    assert "\r" not in run.stdout and "\x1b" not in run.stdout


def test_resume_skips_what_passed_and_reruns_the_rest(run: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real second run over the fixture's folder: 00 passed with the same fingerprint, 01 failed."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(run.out.parent / "jupyter-data"))
    copy = run.out / "notebooks" / "00_pass.ipynb"
    stamp = copy.stat().st_mtime_ns
    lines: list[str] = []
    report = run_notebooks(run.notebooks, run.out, parameters={"greeting": "hi"}, kernel_name=run.index["kernel"],
                           echo=lines.append, resume=True, write_report=False, timeout=120)
    assert [(r.status, r.reused) for r in report.results] == [("passed", True), ("failed", False)]
    assert copy.stat().st_mtime_ns == stamp  # not executed again
    assert report.results[0].seconds == run.rows["00_pass"]["seconds"]
    assert lines[0] == "[1/2] 00_pass: passed in the earlier run, skipped (--resume)"
    assert lines[1] == "--resume: 01_fail failed in the earlier run; running from here"
    assert "skipped by --resume" in report.summary()


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_live_progress_line() -> None:
    clock, screen = FakeClock(), io.StringIO()
    p = Progress(stream=screen, live=True, refresh=0, clock=clock, width=400)
    this = Estimate(600, "the last run", (100, 200, 300))
    p.plan([this, Estimate(60, "the kit's timing table")])
    p.start_notebook(1, 2, "04_train", 3, this)
    assert p.status() == "[1/2] 04_train · starting its kernel · 0 s · about 10 min 00 s left (11 min 00 s in all)"
    clock.t = 10
    p.cell()
    clock.t = 50
    p.output("\x1b[32mepisodes:  34%|###   | 340/1000 [00:40<01:10]\x1b[0m\r")
    # 40 s into cell 1 of (100, 200, 300) s: 60 + 200 + 300 left here, 60 more for the next notebook
    assert p.status() == ("[1/2] 04_train · cell 1/3 · 50 s · about 9 min 20 s left (10 min 20 s in all) · "
                          "episodes: 34%|### | 340/1000 [00:40<01:10]")
    clock.t = 2000
    p.cell(), p.cell(), p.cell()  # more cells than counted: shown as the last
    assert "cell 3/3 · 33 min 20 s · longer than the last run (10 min 00 s)" in p.status()
    p.end_notebook("[1/2] 04_train: passed in 33 min 20 s")
    text = screen.getvalue()
    assert text.startswith("2 notebooks; about 11 min 00 s in all") and "\r[1/2] 04_train · cell 1/3" in text
    assert text.endswith("\r[1/2] 04_train: passed in 33 min 20 s\n")  # the live line cleared first


def test_plain_progress_lines_and_heartbeat() -> None:
    lines: list[str] = []
    p = Progress(echo=lines.append, live=False, heartbeat=0.05)
    p.plan([None, Estimate(90, "the kit's timing table")])
    p.start_notebook(2, 2, "05_eval", 4, Estimate(90, "the kit's timing table"))
    p.cell()
    p.output("draw 3 of 5\n")
    time.sleep(0.3)
    p.end_notebook("[2/2] 05_eval: passed in 0.3 s")
    assert lines[0] == "2 notebooks; about 1 min 30 s in all (estimate from the kit's timing table; 1 without one)"
    assert lines[1] == "[2/2] 05_eval ... (about 1 min 30 s, from the kit's timing table)"
    beats = lines[2:-1]
    assert beats and all(b.startswith("    [2/2] 05_eval · cell 1/4 · ") and b.endswith("draw 3 of 5") for b in beats)
    assert lines[-1] == "[2/2] 05_eval: passed in 0.3 s"
    assert not any("\r" in line or "\x1b" in line for line in lines)
    with pytest.raises(ValueError, match="-1"):
        Progress(heartbeat=-1)


def test_progress_from_a_real_kernel(tmp_path: Path, jupyter_data_dir: Path) -> None:
    """Cells are counted, printed lines and tqdm bars (widgets in a kernel with ipywidgets) pass through."""
    folder = tmp_path / "nb"
    folder.mkdir()
    nbformat.write(_notebook("print('first line')\nprint('draw 2 of 5')",
                             "from tqdm.auto import tqdm\nfor i in tqdm(range(3), desc='episodes'):\n    pass"),
                   folder / "00_progress.ipynb")
    seen: list[tuple[int, str]] = []

    class Recorder(Progress):
        def cell(self) -> None:
            super().cell()
            seen.append((self.cell_no, self.last_output))

        def output(self, text: str) -> None:
            super().output(text)
            seen.append((self.cell_no, self.last_output))

    report = run_notebooks(folder, tmp_path / "out", kernel_name=ensure_kernel(), write_report=False,
                           progress=Recorder(echo=None, live=False, heartbeat=0), timeout=120)
    assert report.ok
    assert max(n for n, _ in seen) == 4  # parameters, injected parameters, two cells
    said = [text for _, text in seen]
    assert "draw 2 of 5" in said
    assert any("episodes" in t and "3/3" in t for t in said), said[-5:]


def _fake_papermill(calls: list[str], interrupt_at: str | None = None,
                    fail_at: str | None = None) -> Callable[..., None]:
    def execute(input_path: str, output_path: str, **kwargs: object) -> None:
        calls.append(Path(input_path).stem)
        if Path(input_path).stem == interrupt_at:
            raise KeyboardInterrupt
        Path(output_path).write_text(Path(input_path).read_text())
        if Path(input_path).stem == fail_at:
            raise ValueError("boom")
    return execute


def _runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[..., Report], Path]:
    """Three one-line notebooks in ``tmp_path / "nb"`` and
    ``run_with(calls, interrupt_at=, fail_at=, notebooks=, **run_notebooks options)``
    over them with a fake papermill; returns it and the output folder."""
    import papermill

    folder = tmp_path / "nb"
    folder.mkdir()
    for stem in ("00_a", "01_b", "02_c"):
        nbformat.write(_notebook(f"print('{stem}')"), folder / f"{stem}.ipynb")
    out = tmp_path / "out"

    def run_with(calls: list[str], interrupt_at: str | None = None, fail_at: str | None = None,
                 notebooks: Path = folder, **kw: object) -> Report:
        monkeypatch.setattr(papermill, "execute_notebook", _fake_papermill(calls, interrupt_at, fail_at))
        return run_notebooks(notebooks, out, kernel_name="python3", echo=None, **kw)
    return run_with, out


def test_ctrl_c_then_resume_continues_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_with, out = _runner(tmp_path, monkeypatch)
    folder = tmp_path / "nb"

    first: list[str] = []
    report = run_with(first, "01_b")
    assert first == ["00_a", "01_b"] and [r.status for r in report.results] == ["passed", "interrupted", "not run"]
    started = json.loads((out / "run.json").read_text())["created"]
    second: list[str] = []
    report = run_with(second, resume=True)
    assert second == ["01_b", "02_c"] and report.ok
    assert [r.reused for r in report.results] == [True, False, False]
    index = json.loads((out / "index.json").read_text())
    assert [n["reused"] for n in index["notebooks"]] == [True, False, False]
    # 00_a's output is the first session's: its code and machine stay in the record
    assert [s["created"] for s in json.loads((out / "run.json").read_text())["earlier_sessions"]] == [started]
    assert [s["created"] for s in index["run"]["earlier_sessions"]] == [started]
    third: list[str] = []
    assert run_with(third, resume=True).ok and third == []  # everything passed: nothing to run
    fourth: list[str] = []
    run_with(fourth, resume=True, parameters={"greeting": "other"})
    assert fourth == ["00_a", "01_b", "02_c"]  # other parameters: nothing is skipped
    nbformat.write(_notebook("print('changed')"), folder / "01_b.ipynb")
    fifth: list[str] = []
    run_with(fifth, resume=True, parameters={"greeting": "other"})
    assert fifth == ["01_b", "02_c"]  # from the changed notebook on
    sixth: list[str] = []
    run_with(sixth)
    assert sixth == ["00_a", "01_b", "02_c"]  # without --resume everything runs


def test_only_keeps_the_earlier_rows_of_the_other_notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--only 01`` after a whole run: the index still lists 00 and 02 (from the earlier run), a later
    ``--resume`` skips them, and the exit status is this run's."""
    run_with, out = _runner(tmp_path, monkeypatch)
    first: list[str] = []
    assert not run_with(first, fail_at="02_c").ok
    second: list[str] = []
    report = run_with(second, only="01")
    assert second == ["01_b"] and report.ok  # 02's earlier failure is not this run's
    assert [(r.notebook, r.status, r.selected, r.reused) for r in report.results] == [
        ("00_a", "passed", False, True), ("01_b", "passed", True, False), ("02_c", "failed", False, True)]
    index = json.loads((out / "index.json").read_text())
    assert [n["notebook"] for n in index["notebooks"]] == ["00_a", "01_b", "02_c"] and index["ok"] is True
    assert index["notebooks"][2]["error"] == "ValueError: boom" and index["notebooks"][0]["output"]
    assert "1/1 notebooks passed" in report.to_markdown() and "2 rows kept from the folder's earlier run" \
        in report.to_markdown()
    assert "(earlier run, not in --only)" in report.summary()
    from hyperkit.report import build_report

    assert "kept from an earlier run (not in `--only`)" in build_report(out).markdown.read_text()
    failing: list[str] = []
    report = run_with(failing, fail_at="01_b", only="01")  # a kept failure (02) is not counted as this run's
    assert not report.ok and [r.notebook for r in report.failed] == ["01_b"]
    assert "0/1 notebooks passed (1 failed)" in report.to_markdown()
    third: list[str] = []
    assert run_with(third, resume=True).ok and third == ["01_b", "02_c"]  # 00 passed: skipped
    (out / "notebooks" / "00_a.ipynb").unlink()  # a kept row does not link a copy that is gone
    (tmp_path / "nb" / "02_c.ipynb").unlink()  # nor is a notebook that is gone kept
    report = run_with([], only="01")
    assert [(r.notebook, r.output) for r in report.results] == [("00_a", None), ("01_b", "notebooks/01_b.ipynb")]
    fourth: list[str] = []
    report = run_with(fourth, only="01", profile="paper")  # another profile: the earlier rows are not its own
    assert fourth == ["01_b"] and [r.notebook for r in report.results] == ["01_b"]
    assert run_with([]).ok  # the quick profile's rows again, for both notebooks
    shutil.copytree(tmp_path / "nb", tmp_path / "nb2")  # another notebooks folder: the earlier rows are not its own
    assert [r.notebook for r in run_with([], only="01", notebooks=tmp_path / "nb2").results] == ["01_b"]


def test_resume_without_an_earlier_run_runs_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    calls: list[str] = []
    lines: list[str] = []
    monkeypatch.setattr(papermill, "execute_notebook", _fake_papermill(calls))
    report = run_notebooks(_write_notebooks(tmp_path / "nb"), tmp_path / "out", kernel_name="python3",
                           echo=lines.append, resume=True)
    assert calls == ["00_pass", "01_fail"] and report.ok
    assert lines[0].startswith("--resume: no earlier run in")
    assert report.report == (tmp_path / "out" / "report.html").resolve() and report.report.is_file()


def test_fingerprint_follows_notebook_parameters_profile_and_code(tmp_path: Path) -> None:
    path = tmp_path / "00_x.ipynb"
    nbformat.write(_notebook("x = 1"), path)
    code = code_version()
    base = notebook_fingerprint(path, {"a": 1}, {"name": "quick"}, code)
    assert notebook_fingerprint(path, {"a": 1}, {"name": "quick"}, dict(code)) == base
    assert notebook_fingerprint(path, {"a": 2}, {"name": "quick"}, code) != base
    moved = notebook_fingerprint(path, {"a": 1, "out_dir": "/elsewhere/run"}, {"name": "quick"}, code)
    assert moved == base == notebook_fingerprint(path, {"a": 1, "out_dir": "/here/run"}, {"name": "quick"}, code)
    assert notebook_fingerprint(path, {"a": 1}, {"name": "paper"}, code) != base
    assert notebook_fingerprint(path, {"a": 1}, {"name": "quick"}, dict(code, package="0" * 16)) != base
    nbformat.write(_notebook("x = 2"), path)
    assert notebook_fingerprint(path, {"a": 1}, {"name": "quick"}, code) != base
    assert set(code) == {"commit", "package"} and len(code["package"]) == 16


def test_estimates_in_order_of_preference(tmp_path: Path) -> None:
    shipped = estimate_for("04_episodic_training", "quick", 9)
    assert shipped == Estimate(SHIPPED_SECONDS["quick"]["04_episodic_training"], "the kit's timing table")
    assert estimate_for("04_episodic_training", "/my/profile.yaml", 9) is None
    row = {"notebook": "04_episodic_training", "status": "passed", "seconds": 42.0}
    assert estimate_for("04_episodic_training", "quick", 9, previous_row=row) == Estimate(42.0, "the last run")
    assert estimate_for("04_episodic_training", "quick", 9, previous_row=dict(row, status="failed")) == shipped
    nb = _notebook("a = 1", "b = 2")  # parameters + two cells; the runner adds an injected cell
    for cell, seconds in zip(nb.cells[1:], (0.5, 10.0, 20.0)):
        cell.metadata["papermill"] = {"duration": seconds}
    nb.metadata["papermill"] = {"duration": 33.0, "exception": False}
    copy = tmp_path / "04.ipynb"
    nbformat.write(nb, copy)
    per_cell = estimate_for("04_episodic_training", "quick", 3, previous_copy=copy, previous_row=row)
    assert per_cell == Estimate(33.0, "the last run", (0.5, 10.0, 20.0))
    assert per_cell.remaining(15.0, 2, 4.0) == 6.0 + 20.0
    assert estimate_for("04_episodic_training", "quick", 4, previous_copy=copy, previous_row=row).cells == ()
    failed = dict(row, status="interrupted")  # a copy of a run that stopped: not an estimate
    assert estimate_for("04_episodic_training", "quick", 3, previous_copy=copy, previous_row=failed) == shipped
    assert Estimate(100, "x").remaining(130) == 0.0
    assert count_code_cells(copy) == 4


def test_report_only_rebuilds_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    """``--report-only`` rebuilds the report of the run in ``--out`` (its ``index.json``) and runs nothing."""
    monkeypatch.setattr(cli, "COMMANDS", {"reproduce": "hyperkit.reproduce"})
    out = tmp_path / "run"
    out.mkdir()
    (out / "index.json").write_text(json.dumps({"profile": "quick", "notebooks": []}))  # a run that measured nothing
    assert cli.main(["reproduce", "--out", str(out), "--report-only"]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"report: {out / 'report.html'} (0 claims hold, 0 do not, 7 not measured)")
    assert (out / "report.md").is_file() and not (out / "notebooks").exists()
    assert cli.main(["reproduce", "--out", str(tmp_path / "absent"), "--report-only"]) == 2


def test_reproduce_parser_stays_light() -> None:
    """``hyperkit reproduce --help`` builds its parser without torch, papermill or the report."""
    code = ("import sys, hyperkit.cli as c; c.build_parser('reproduce'); "
            "heavy = [m for m in ('torch', 'papermill', 'nbformat', 'hyperkit.report') if m in sys.modules]; "
            "sys.exit(str(heavy) if heavy else 0)")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
