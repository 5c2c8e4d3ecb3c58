"""Every notebook in ``notebooks/``: structure (fast) and execution under nbval (marked ``notebook``).

New notebooks join automatically (``notebooks/NN_name.ipynb``). For each one,
``test_notebook_runs`` writes a copy with parameters injected by papermill
(``profile="quick"``, ``interactive=False``, ``out_dir`` = one temporary folder
shared by all notebooks of the session, plus the notebook's entry in
``NOTEBOOK_TEST_PARAMETERS``) and runs nbval on it in a subprocess::

    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -p nbval.plugin --nbval-lax \\
        --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider -x COPY

``--nbval-lax`` runs every cell and compares only the outputs of cells marked
``# NBVAL_CHECK_OUTPUT`` (after the sanitize patterns). nbval starts the kernel
in the copy's folder; the injected cell changes to ``notebooks/`` first, so
relative paths behave as in Jupyter and under ``hyperkit reproduce``.

Run only the fast checks: ``python -m pytest tests/test_notebooks.py -m "not notebook"``.

Time limits: each notebook gets twice its test runtime measured on a busy machine (three
times or more its idle runtime; :data:`NOTEBOOK_TEST_SECONDS`, :data:`DEFAULT_TIMEOUT` for a
new one), and all notebooks of a session together at most :data:`TOTAL_TIMEOUT`: a hung
notebook fails in minutes, and hung notebooks cannot add up to CI's whole limit.
Environment: ``HYPERKIT_NOTEBOOK_TIMEOUT`` (seconds per notebook, replaces the measured limits),
``HYPERKIT_NOTEBOOKS_TOTAL_TIMEOUT`` (seconds for all notebooks of a session),
``HYPERKIT_NOTEBOOKS_DIR`` (validate another folder of notebooks).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from hyperkit.kernels import KERNEL_ENV
from hyperkit.reproduce import NOTEBOOK_PATTERN, SHIPPED_SECONDS, notebook_parameters

#: Tiny settings per notebook (file stem -> parameters), applied on top of
#: profile="quick". A long-running notebook exposes its knobs as parameters
#: (e.g. ``episodes``) and lists tiny values here so that the whole notebook
#: suite stays within the CI budget (20 min on 2 cores, everything included; about 8 today).
#: Example: {"04_episodic_training": {"episodes": 4, "eval_draws": 1}}
NOTEBOOK_TEST_PARAMETERS: dict[str, dict[str, Any]] = {
    "04_episodic_training": {"episodes": 3, "fit_supports": 1},
    # reuses 04's 3-episode run; one support draw; baselines trained for 2 steps
    "05_one_shot": {"episodes": 3, "draws": 1, "baseline_steps": 2},
    # reuses 04's 3-episode run as the base; trains the `seed` variant for 3 episodes; one target, one draw
    "06_ablations": {"episodes": 3, "draws": 1, "only": "step,seed,shots2", "tasks": "liver"},
    # reuses 04's 3-episode run; one target, N = 2 and 4, one repeat each; Table 3 with one support draw;
    # its MAML folds with one meta-iteration each
    "07_limited_data": {"episodes": 3, "tasks": "liver", "n": "2,4", "repeats": 1, "draws": 1, "finetune_steps": 10,
                        "maml_steps": 1},
}

REPO = Path(__file__).resolve().parents[1]
KIT_NOTEBOOKS_DIR = REPO / "notebooks"   # the kit's own, whatever HYPERKIT_NOTEBOOKS_DIR says
NOTEBOOKS_DIR = Path(os.environ.get("HYPERKIT_NOTEBOOKS_DIR", KIT_NOTEBOOKS_DIR)).resolve()
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob(NOTEBOOK_PATTERN))
SANITIZE = Path(__file__).resolve().with_name("nbval_sanitize.cfg")
#: Seconds each notebook took under nbval with the test parameters, in one full test session
#: (fresh phantoms and an empty preprocessing cache: 00 generates the phantoms, 04 preprocesses
#: the training bank and trains its episodes), measured 2026-12-01 on the 2-core development
#: machine while other jobs kept its load average near 14: on an idle machine they run several
#: times faster, so the limits derived from them are generous. Re-measure with ``--durations``.
NOTEBOOK_TEST_SECONDS: dict[str, float] = {
    "00_phantoms": 452, "01_tasks": 64, "02_context": 40, "03_hypernetwork": 293, "04_episodic_training": 642,
    "05_one_shot": 534,  # papermill, the same parameters and load (nbval did not reach it)
}
TIMEOUT_FACTOR = 2.0  # x the measured (loaded) seconds above, at least MIN_TIMEOUT
MIN_TIMEOUT = 120
DEFAULT_TIMEOUT = 600  # a notebook not measured yet
#: all notebooks of one session together: 30 minutes at most, so that hung notebooks fail the run
#: long before a CI runner's own limit (a notebook that finds the budget spent fails without
#: running). On an idle machine they take a few minutes of CI's 20; the cap is loose so that a
#: loaded machine does not fail a correct run.
TOTAL_TIMEOUT = int(os.environ.get("HYPERKIT_NOTEBOOKS_TOTAL_TIMEOUT", "1800"))
_SPENT = {"seconds": 0.0}  # nbval time used by the notebooks of this session so far


def notebook_timeout(stem: str) -> int:
    """Seconds one notebook may run: ``HYPERKIT_NOTEBOOK_TIMEOUT``, else its measured time x TIMEOUT_FACTOR."""
    if os.environ.get("HYPERKIT_NOTEBOOK_TIMEOUT"):
        return int(os.environ["HYPERKIT_NOTEBOOK_TIMEOUT"])
    measured = NOTEBOOK_TEST_SECONDS.get(stem)
    return DEFAULT_TIMEOUT if measured is None else max(MIN_TIMEOUT, int(TIMEOUT_FACTOR * measured))


REQUIRED_PARAMETERS = ("profile", "out_dir", "interactive")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# absolute paths of a machine that must not leak into committed outputs
MACHINE_PATHS = re.compile(r"(?<![\w.])(?:/work/|/root/|/tmp/|/home/|/Users/|/private/var/|[A-Za-z]:\\Users)")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in _code_cells(nb) if "parameters" in c.metadata.get("tags", [])]


def _raises_on_purpose(cell: nbformat.NotebookNode) -> bool:
    """A cell that shows an error on purpose (nbval's ``# NBVAL_RAISES_EXCEPTION`` / ``raises-exception`` tag)."""
    tags = cell.metadata.get("tags", [])
    return "raises-exception" in tags or any(
        line.strip().lstrip("#").strip() == "NBVAL_RAISES_EXCEPTION" for line in cell.source.splitlines())


def _output_texts(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, text) of every textual output (images excluded)."""
    texts = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append((index, out.get("text", "")))
            elif out.get("output_type") == "error":
                texts.append((index, "\n".join(out.get("traceback", [])) + out.get("evalue", "")))
            for mime, data in (out.get("data") or {}).items():
                if not mime.startswith("image/") or mime == "image/svg+xml":
                    texts.append((index, data if isinstance(data, str) else json.dumps(data)))
    return texts


def prepare_copy(notebook: Path, dest: Path, out_dir: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``dest/<name>.ipynb``: the notebook with its test parameters injected (not executed).

    The injected cell first changes the kernel's directory to the notebook's
    own folder (nbval starts the kernel where the copy is).
    """
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(notebook))  # as papermill reads it (every cell gets a tags list)
    params = notebook_parameters("quick", out_dir, {**NOTEBOOK_TEST_PARAMETERS.get(notebook.stem, {}), **(extra or {})})
    nb = parameterize_notebook(nb, params, kernel_name="python3", language="python")
    cell = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    cell.source = f'__import__("os").chdir({str(notebook.parent.resolve())!r})\n' + cell.source
    dest.mkdir(parents=True, exist_ok=True)
    copy = dest / notebook.name
    nbformat.write(nb, str(copy))
    return copy


def run_nbval(copy: Path, cwd: Path, timeout: int = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run nbval (lax, current environment, sanitized) on one notebook in a subprocess."""
    cmd = [sys.executable, "-m", "pytest", "-p", "nbval.plugin", "--nbval-lax", "--nbval-current-env",
           "--nbval-sanitize-with", str(SANITIZE), "--nbval-cell-timeout", str(timeout),
           "-p", "no:cacheprovider", "-q", "-x", "--color=no", "--rootdir", str(copy.parent), str(copy)]
    # only nbval: other installed pytest plugins (hypothesis, benchmark, ...) cost ~1 s of start-up each run
    env = {**os.environ, **KERNEL_ENV, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- structure (fast)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_one_parameters_cell_of_literals(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    cells = _parameters_cells(nb)
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters', need exactly one"
    tree = ast.parse(cells[0].source)
    names = set()
    for stmt in tree.body:
        assert isinstance(stmt, (ast.Assign, ast.AnnAssign)), \
            f"{path.name}: parameters cell line {stmt.lineno} is not an assignment (derive values in the next cell)"
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        assert all(isinstance(t, ast.Name) for t in targets), f"{path.name}: line {stmt.lineno}: assign to names only"
        try:
            ast.literal_eval(stmt.value)
        except ValueError:
            pytest.fail(f"{path.name}: parameters cell line {stmt.lineno} is not a literal: {ast.unparse(stmt.value)}")
        names.update(t.id for t in targets)
    missing = [n for n in REQUIRED_PARAMETERS if n not in names]
    assert not missing, f"{path.name}: parameters cell does not define {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_with_outputs_of_a_real_run(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    not_run = [i for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None]
    assert not not_run, f"{path.name}: code cells {not_run} have no execution count; commit the notebook executed " \
                        f"(cd notebooks && papermill {path.name} {path.name} -k python3 --execution-timeout 1200)"
    errors = [i for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
              if o.get("output_type") == "error" and not _raises_on_purpose(c)]
    assert not errors, f"{path.name}: committed with errors in cells {errors}"


KIT_NOTEBOOKS = sorted(KIT_NOTEBOOKS_DIR.glob(NOTEBOOK_PATTERN))


def test_the_notebook_folder_holds_notebooks() -> None:
    """Every test above is parametrized over the folder's notebooks; a folder without any (a mistyped
    HYPERKIT_NOTEBOOKS_DIR) would leave them empty and pytest would skip them all without a failure."""
    assert NOTEBOOKS, f"{NOTEBOOKS_DIR}: no notebook matching {NOTEBOOK_PATTERN} (HYPERKIT_NOTEBOOKS_DIR?)"


@pytest.mark.parametrize("path", KIT_NOTEBOOKS, ids=_ids(KIT_NOTEBOOKS))
def test_committed_without_injected_parameters(path: Path) -> None:
    """papermill adds an ``injected-parameters`` cell to a run given ``-p`` (``hyperkit reproduce`` gives them): a
    committed copy of such a run shows a student a second parameters cell that overrides the first. The kit's
    notebooks are committed from a run without ``-p``, the parameters cell's own values."""
    nb = nbformat.read(str(path), as_version=4)
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert not injected, f"{path.name}: cells {injected} are papermill's injected parameters; delete them and " \
                         f"re-execute (cd notebooks && papermill {path.name} {path.name} -k python3)"


#: the longest line of the kit's code: its modules, tests and scripts keep to it, and so do the notebooks' code cells
MAX_LINE = 120


@pytest.mark.parametrize("path", KIT_NOTEBOOKS, ids=_ids(KIT_NOTEBOOKS))
def test_code_cells_keep_the_packages_line_length(path: Path) -> None:
    """A student reads the code cells in a browser beside the package's modules: no line longer than theirs."""
    nb = nbformat.read(str(path), as_version=4)
    long = [(i, len(line)) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > MAX_LINE]
    assert not long, f"{path.name}: (cell, length) of lines over {MAX_LINE} characters: {long}"


def test_python_files_keep_the_packages_line_length() -> None:
    """The same for the Python files of the package, the tests and the benchmarks."""
    files = sorted(f for d in ("hyperkit", "tests", "benchmarks") for f in (REPO / d).rglob("*.py"))
    assert len(files) > 50, f"expected the kit's Python files under {REPO}, found {len(files)}"
    long = [(str(f.relative_to(REPO)), n) for f in files for n, line in enumerate(f.read_text().splitlines(), 1)
            if len(line) > MAX_LINE]
    assert not long, f"(file, line) over {MAX_LINE} characters: {long[:20]}"


def _about(seconds: float) -> str:
    """How a notebook's header rounds a time: ``about 25 s`` (to 5 s) under 90 s, else ``about 16 min``."""
    return f"about {5 * round(seconds / 5)} s" if seconds < 90 else f"about {round(seconds / 60)} min"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_runtime_paragraph_follows_the_kits_timing_table(path: Path) -> None:
    """The header's **Runtime** paragraph quotes the from-scratch time of ``SHIPPED_SECONDS`` (the one measured
    source ``hyperkit reproduce`` estimates from), rounded, and no dated measurement that goes stale."""
    nb = nbformat.read(str(path), as_version=4)
    heads = [c.source for c in nb.cells[:3] if c.cell_type == "markdown" and "**Runtime" in c.source]
    assert heads, f"{path.name}: no **Runtime** paragraph in the first cells"
    runtime = heads[0][heads[0].index("**Runtime"):].split("\n\n")[0]
    shipped = SHIPPED_SECONDS["quick"].get(path.stem)
    if shipped is not None:
        assert _about(shipped) in runtime.lower().replace("\n", " "), \
            f"{path.name}: the runtime paragraph does not say {_about(shipped)!r} (SHIPPED_SECONDS: {shipped} s)"
    assert not re.search(r"20\d\d-\d\d-\d\d", runtime), f"{path.name}: a dated measurement in the runtime paragraph"


@pytest.mark.parametrize("path", [KIT_NOTEBOOKS_DIR / f"{stem}.ipynb" for stem in SHIPPED_SECONDS["quick"]],
                         ids=list(SHIPPED_SECONDS["quick"]))
def test_timing_table_names_existing_notebooks(path: Path) -> None:
    """The kit's own notebooks (not a folder given by HYPERKIT_NOTEBOOKS_DIR) are the ones the table times."""
    assert path.is_file(), f"SHIPPED_SECONDS names {path.name}, which is not in the kit's notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_figures_are_drawn(path: Path) -> None:
    """A cell that ends in ``plt.show()`` carries its picture (a run with ``MPLBACKEND=Agg`` draws none)."""
    nb = nbformat.read(str(path), as_version=4)
    shows = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and c.source.strip().splitlines()[-1:] == ["plt.show()"]]
    blank = [i for i in shows
             if not any("image/png" in o.get("data", {}) for o in nb.cells[i].get("outputs", []))]
    assert not blank, f"{path.name}: cells {blank} end in plt.show() but hold no image; re-execute without " \
                      "MPLBACKEND=Agg (the inline backend draws into the notebook)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_no_machine_paths_in_outputs(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    leaks = [(i, MACHINE_PATHS.search(t).group(0)) for i, t in _output_texts(nb) if MACHINE_PATHS.search(t)]
    meta = json.dumps(nb.metadata.get("papermill", {}))
    if MACHINE_PATHS.search(meta):
        leaks.append(("metadata.papermill", MACHINE_PATHS.search(meta).group(0)))
    assert not leaks, f"{path.name}: absolute paths of this machine in outputs (cell, path): {leaks}"


SANITIZE_EXAMPLES = [
    ("<Figure size 640x480 with 1 Axes> at 0x7f3a2c1d9e50", "<Figure size 640x480 with 1 Axes> at 0xADDRESS"),
    ("phantoms in /tmp/pytest-of-me/pytest-3/reproduce-out0/phantoms", "phantoms in PATH"),
    ("phantoms in ../runs/quick/phantoms", "phantoms in PATH"),
    ("PosixPath('/home/me/x.nii.gz')", "PosixPath('PATH')"),
    ("trained in 12.3 s (4 ms per step), 3 min", "trained in DURATION (DURATION per step), DURATION"),
    ("100%|##########| 20/20 [00:03<00:00,  6.21it/s]\nnext", "PROGRESS\nnext"),
    ("written 2026-11-27T22:34:28+00:00 at 22:34:28", "written DATE at CLOCK"),
    ("torch 2.13.0+cpu, monai 1.6.1, hyperkit version 0.1.0", "torch VERSION, monai VERSION, hyperkit version VERSION"),
    ("device: cpu", "device: DEVICE"),
    ("device = cuda:0 (NVIDIA H100 80GB HBM3)", "device = DEVICE (GPU)"),
    # what the checked cells compare must survive
    ("Dice 0.83 / NSD 0.71, shape (1, 48, 48, 48), 1/2", "Dice 0.83 / NSD 0.71, shape (1, 48, 48, 48), 1/2"),
    ("msd/Task03_Liver/liver@CT: 4.0 mm, 7 cases", "msd/Task03_Liver/liver@CT: 4.0 mm, 7 cases"),
]


@pytest.mark.parametrize("raw, clean", SANITIZE_EXAMPLES)
def test_sanitize_patterns(raw: str, clean: str) -> None:
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns(SANITIZE.read_text())
    assert len(patterns) >= 10
    for regex, replace in patterns:  # the same loop nbval runs
        raw = re.sub(regex, replace, raw)
    assert raw == clean


# ---------------------------------------------------------------- execution (slow)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path: Path, tmp_path: Path, notebook_out_dir: Path) -> None:
    left = TOTAL_TIMEOUT - _SPENT["seconds"]
    if left < 30:
        pytest.fail(f"{path.name}: not run, the notebooks of this session used their {TOTAL_TIMEOUT} s "
                    "(HYPERKIT_NOTEBOOKS_TOTAL_TIMEOUT)", pytrace=False)
    timeout = min(notebook_timeout(path.stem), int(left))
    copy = prepare_copy(path, tmp_path, notebook_out_dir)
    start = time.perf_counter()
    try:
        proc = run_nbval(copy, cwd=path.parent, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        tail = ((exc.stdout or b"") + (exc.stderr or b""))
        tail = ANSI.sub("", tail.decode(errors="replace") if isinstance(tail, bytes) else tail)
        pytest.fail(f"{path.name}: nbval ran longer than {timeout} s (HYPERKIT_NOTEBOOK_TIMEOUT, "
                    f"NOTEBOOK_TEST_SECONDS; or add tiny settings to NOTEBOOK_TEST_PARAMETERS)\n{tail[-4000:]}")
    finally:
        _SPENT["seconds"] += time.perf_counter() - start
    if proc.returncode != 0:
        tail = ANSI.sub("", proc.stdout + proc.stderr)[-6000:]
        pytest.fail(f"{path.name}: nbval exit {proc.returncode} (first failing cell; later cells not run)\n{tail}",
                    pytrace=False)
