"""``hyperkit reproduce`` on tiny synthetic notebooks, and the kernel helper."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

import hyperkit.cli as cli
from hyperkit.kernels import ensure_kernel, find_kernel
from hyperkit.reproduce import (
    _describe_failure,
    find_notebooks,
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
    printed = copy.cells[-1].outputs[0]["text"].splitlines()
    assert printed[0] == "hi quick False"
    assert Path(printed[1]) == run.notebooks.resolve()  # the kernel runs in the notebooks folder
    assert not (run.out / "notebooks" / "helper.ipynb").exists()


def test_run_record_and_resolved_profile_are_written(run: SimpleNamespace) -> None:
    record = json.loads((run.out / "run.json").read_text())
    assert record["config"]["name"] == "quick" and record["seed"] == run.index["run"]["seed"]
    assert run.index["run"]["config"]["data"]["patch_size"] == record["config"]["data"]["patch_size"]
    assert [n["notebook"] for n in record["notebooks"]] == ["00_pass", "01_fail"]


@pytest.mark.parametrize("argv, fragment", [
    (["--profile", "nope"], "profile 'nope' does not exist"),
    (["-p", "out_dir=/x"], "use --out"),
    (["-p", "novalue"], "key=value"),
    (["--only", "07"], "matches no notebook"),
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


def test_notebook_parameters_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("base: quick\n")
    params = notebook_parameters("mine.yaml", "runs/x", {"episodes": 2})
    assert params == {"profile": str(tmp_path / "mine.yaml"), "out_dir": str(tmp_path / "runs" / "x"),
                      "interactive": False, "episodes": 2}
    assert notebook_parameters("paper", tmp_path)["profile"] == "paper"


def test_failure_description_strips_colour_and_finds_the_raising_line() -> None:
    nb = _notebook("a = 1\nb = helper(a)")
    nb.cells[-1].execution_count = 7
    nb.cells[-1].outputs = [nbformat.v4.new_output(
        "error", ename="\x1b[0;31mKeyError\x1b[0m", evalue="\x1b[1m'liver'\x1b[0m",
        traceback=["\x1b[0;31m----------\x1b[0m", "Cell \x1b[0;32mIn[7], line 2\x1b[0m\n      1 a = 1\n"
                   "\x1b[0;32m----> 2\x1b[0m b \x1b[38;5;241m=\x1b[39m helper(a)\n", "KeyError: 'liver'"])]
    info = _describe_failure(nb, None)
    assert info == {"cell": 7, "cell_index": 2, "source": "a = 1", "line": "b = helper(a)", "error": "KeyError: 'liver'"}


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
