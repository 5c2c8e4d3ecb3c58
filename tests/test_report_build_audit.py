"""``report/build.py`` piece by piece: where a run's files are, which cells are cited, what the
tables and figures say when parts are missing, and the provenance section.

A mutation audit of the module found each of these unpinned by ``test_report.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import nbformat
import pytest

from hyperkit.report import build_report
from hyperkit.report.build import RunFiles, run_files
from test_report import (GOOD_HYPER, RAND, RESULT_FIELDS, _write_csv, ablation_csv_rows, make_run,
                         results_rows)

PNG = b"\x89PNG\r\n\x1a\n"


def _executed(out: Path, stem: str, cells: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> Path:
    """An executed copy ``out/notebooks/{stem}.ipynb`` of code cells ``(source, outputs)``."""
    nb = nbformat.v4.new_notebook()
    for i, (source, outputs) in enumerate(cells, start=1):
        cell = nbformat.v4.new_code_cell(source, execution_count=i)
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        nb.cells.append(cell)
    path = out / "notebooks" / f"{stem}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _picture(tag: bytes) -> dict[str, Any]:
    import base64

    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(PNG + tag).decode(), "text/plain": "<Figure>"}}


def _said(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _md(out: Path, **kw: Any) -> str:
    return build_report(out, **kw).markdown.read_text()


# ------------------------------------------------------------------------------ the run's files
def test_run_files_name_each_result_by_profile(tmp_path: Path) -> None:
    f = RunFiles(tmp_path, "paper")
    assert f.results == tmp_path / "eval-paper" / "results.csv"
    assert f.five_shot == tmp_path / "eval-5shot-paper" / "results.csv"
    assert f.maml == tmp_path / "maml-paper" / "maml.csv"
    assert f.ablation == tmp_path / "ablation-paper" / "ablation.csv"
    assert f.finetune == tmp_path / "finetune-paper" / "finetune.csv"
    assert f.figure3 == tmp_path / "finetune-paper" / "figure3.png"
    assert f.rel(tmp_path / "a" / "b.csv") == "a/b.csv" and f.rel(Path("/elsewhere/x")) == "/elsewhere/x"


@pytest.mark.parametrize("index, profile", [({"parameters": {"profile": "paper"}}, "paper"),
                                            ({"profile": "mine"}, "mine"), ([1, 2], "quick"), ({}, "quick")])
def test_the_profile_comes_from_the_index(index: Any, profile: str, tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert run_files(tmp_path).profile == profile
    assert run_files(tmp_path, "given").profile == "given"


def test_absent_files_are_not_measured_without_a_note(tmp_path: Path) -> None:
    _write_csv(tmp_path / "eval-quick" / "results.csv", RESULT_FIELDS, results_rows(GOOD_HYPER, RAND))
    md = _md(tmp_path)
    assert "could not be read" not in md and "Tables 4-6**: not measured" in md


# ------------------------------------------------------------------------------ cells cited
def test_claims_and_tables_link_the_cells_that_made_them(tmp_path: Path) -> None:
    out = make_run(tmp_path / "run")
    _executed(out, "05_one_shot", [("results = run_evaluation(cfg)", []), ("print(table1_ct)", []),
                                   ("print(table2_mri)", [])])
    md = _md(out)
    one, t1, t2 = (f"[05_one_shot, code cell {n} of 3](#cell-05_one_shot-{n - 1})" for n in (1, 2, 3))
    claim_1 = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    assert claim_1.endswith(f"| {one} |")
    assert f"Made by {t1} and {t2}." in md


def test_figures_use_the_last_picture_of_the_first_cell_that_shows_one(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _executed(out, "02_context", [("figure1(model)", [_picture(b"first"), _picture(b"last")])])
    _executed(out, "05_one_shot", [("fig = figure2(panel)", [_said("no Conv U-Net here\nrun notebook 05 first\n")])])
    _executed(out, "07_limited_data", [("figure3(curve_a)", [_said("nothing to draw yet\n")]),
                                       ("fig = figure3(curve_b)", [_picture(b"three")])])
    files = build_report(out)
    shown = out / "report_files"
    assert (shown / "figure-1.png").read_bytes() == PNG + b"last"
    assert (shown / "figure-3.png").read_bytes() == PNG + b"three"
    assert not (shown / "figure-2.png").exists()
    assert "(it said: run notebook 05 first)" in files.markdown.read_text()


# ------------------------------------------------------------------------------ tables
def test_tables_1_2_headers_name_the_runs_tolerances(tmp_path: Path) -> None:
    out = make_run(tmp_path / "run")
    (out / "eval-quick" / "results.json").write_text(json.dumps({"protocol": {"evaluate": {"tau": 3.0}},
                                                                 "nsd_voxel_mm": 4.0}))
    md = _md(out)
    assert "NSD@3 mm" in md and "NSD@1 voxel (4 mm)" in md


def _table_3_rows(md: str) -> dict[str, str]:
    section = md.split("## Table 3: five supports")[1].split("\n## ")[0]
    return {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}


def test_table_3_finds_each_organs_task_and_says_which_have_no_number(tmp_path: Path) -> None:
    out = make_run(tmp_path / "run")
    md = _md(out)
    rows = _table_3_rows(md)
    number = r"0\.\d{3}±0\.\d{3}"
    assert re.search(rf"\| liver \| Task03_Liver/liver@CT \| {number} \| {number} \|", rows["liver"])
    assert re.search(rf"\| spleen \| Task09_Spleen/spleen@CT \| {number} \| {number} \|", rows["spleen"])
    assert "No kit number for kidney" in md.split("## Table 3: five supports")[1].split("\n## ")[0]


def test_ablation_tables_name_missing_and_other_variants(tmp_path: Path) -> None:
    rows = ablation_csv_rows({"step": 0.05, "shots2": 0.01})
    _write_csv(tmp_path / "ablation-quick" / "ablation.csv", list(rows[0]), rows)
    md = _md(tmp_path)
    assert "**Table 5**" in md and "not measured — the variant `norm` is not in this run's `ablation.csv`" in md
    assert "**Table 6**" in md and "the variant `pe` is not" in md and "the variant `step` is not" not in md
    assert "The run's other variants (shots2) are in `tables.md`" in md


# ------------------------------------------------------------------------------ the scale note
@pytest.mark.parametrize("name, profile, quick", [("paper", "quick", False), ("quick", "mine", True),
                                                  (None, "quick", True)])
def test_the_scale_note_follows_the_recorded_profile(name: str | None, profile: str, quick: bool,
                                                     tmp_path: Path) -> None:
    if name is not None:
        (tmp_path / "run.json").write_text(json.dumps({"config": {"name": name}}))
    md = _md(tmp_path, profile=profile)
    assert ("laptop-scale reproduction" in md) is quick
    assert (f"This run used the profile `{profile}`." in md) is not quick


# ------------------------------------------------------------------------------ provenance
def _provenance(md: str) -> str:
    return md.split("## Provenance")[1].split("\n## ")[0]


def test_provenance_from_the_run_record(tmp_path: Path) -> None:
    record = {"commit": "abc1234", "created": "2026-12-06T01:02:03+00:00", "seed": 7, "platform": "Linux | x86_64",
              "config": {"name": "quick"}, "versions": {"torch": "2.13.0"}, "command": ["hyperkit", "train"],
              "compute": {"cpu": "Xeon", "cpu_count": 2, "memory": "24 GB", "torch_threads": 2, "env": {},
                          "cuda": "NVIDIA H100"}}
    (tmp_path / "run.json").write_text(json.dumps(record))
    text = _provenance(_md(tmp_path))
    assert "| platform | Linux \\| x86_64 |" in text and "| seed | 7 |" in text
    assert "| machine | Xeon, 2 cores, 24 GB; torch threads 2; GPU NVIDIA H100 |" in text
    assert "| command | `hyperkit train` |" in text and "| versions | torch 2.13.0 |" in text


def test_provenance_of_older_records_and_of_a_folder_without_run_json(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text(json.dumps({"run": {"commit": "fromindex", "machine": {"cpu": "Xeon",
                                                                                                "cores": 2}}}))
    text = _provenance(_md(tmp_path))
    assert "| commit | `fromindex` |" in text and "| machine | cpu Xeon, cores 2 |" in text
    (tmp_path / "index.json").unlink()
    (tmp_path / "eval-quick").mkdir()
    (tmp_path / "eval-quick" / "results.json").write_text(json.dumps({"commit": "fromresults"}))
    text = _provenance(_md(tmp_path))
    assert "From `eval-quick/results.json` (no `run.json`" in text and "| commit | `fromresults` |" in text


def test_provenance_lists_the_notebooks_and_each_result_files_record(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text(json.dumps({"notebooks": [
        {"notebook": "00_phantoms", "status": "passed", "seconds": 65, "reused": True},
        {"notebook": "01_tasks", "status": "failed", "seconds": 3, "error": "ValueError: a | b"},
        {"notebook": "02_context", "status": "not run", "seconds": 0}]}))
    (tmp_path / "train-quick").mkdir()
    (tmp_path / "train-quick" / "run.json").write_text(json.dumps({"created": "2026-12-06", "commit": "abc",
                                                                   "wall_seconds": 3725}))
    text = _provenance(_md(tmp_path))
    assert "| 00_phantoms | passed | 1 min 05 s | passed in an earlier run (skipped by --resume) |" in text
    assert "| 01_tasks | failed | 3 s | ValueError: a \\| b |" in text
    assert "| 02_context | not run |  |  |" in text
    assert "Wall time in all: 1 min 08 s." in text
    assert "| training | `train-quick/run.json` | 2026-12-06 | `abc` | 1 h 02 min |" in text


def test_table_3_cites_the_maml_cell_when_there_is_a_maml_run(tmp_path: Path) -> None:
    from test_report import make_maml_run

    out = make_run(tmp_path / "run")
    _executed(out, "07_limited_data", [("five = run_evaluation(cfg, shots=5)", []), ("maml = run_maml(cfg)", [])])
    section = _md(out).split("## Table 3: five supports")[1].split("\n## ")[0]
    assert "Made by [07_limited_data, code cell 1 of 2]" in section
    make_maml_run(out)
    section = _md(out).split("## Table 3: five supports")[1].split("\n## ")[0]
    assert "Made by [07_limited_data, code cell 2 of 2]" in section


def test_figure_3_data_carry_the_one_shot_reference(tmp_path: Path) -> None:
    out = make_run(tmp_path / "run")
    rows = [line for line in _md(out).splitlines() if line.startswith("| liver@CT |")]
    assert len(rows) == 3 and all(re.search(r"\| 0\.\d{3} \| — \|$", r) for r in rows)  # one-shot Hyper, no Conv


def test_an_unreadable_file_is_noted_by_the_first_line_of_its_error(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import hyperkit.report.build as build

    def unreadable(path: Path) -> list[dict[str, Any]]:
        raise ValueError("first line\nsecond line")

    monkeypatch.setattr(build, "_read_results", unreadable)
    _write_csv(tmp_path / "eval-quick" / "results.csv", RESULT_FIELDS, [])
    md = _md(tmp_path)
    assert "`results.csv` could not be read: first line" in md and "second line" not in md


def test_every_link_of_report_md_has_its_anchor(tmp_path: Path) -> None:
    """Markdown headings carry no ids: the contents line and the claims' cell links pointed nowhere in a
    Markdown viewer until each section and cited cell got an ``<a id>``."""
    out = make_run(tmp_path / "run")
    _executed(out, "05_one_shot", [("results = run_evaluation(cfg)", []), ("print(table1_ct)", [])])
    md = _md(out)
    targets = set(re.findall(r"\]\(#([^)]+)\)", md))
    assert {"claims", "provenance", "cells", "cell-05_one_shot-0", "cell-05_one_shot-1"} <= targets
    assert all(f'<a id="{t}"></a>' in md for t in targets), targets - set(re.findall(r'<a id="([^"]+)"></a>', md))
