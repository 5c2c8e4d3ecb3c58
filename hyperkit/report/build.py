"""Build ``report.html`` and ``report.md`` from the output folder of a reproduce run.

What is read (``P`` is the profile the notebooks ran with; any of it may be missing, and the
report then says "not measured" for what depended on it)::

    OUT/index.json, OUT/run.json       what ran, for how long, with which code and versions
    OUT/notebooks/NN_*.ipynb           the executed copies: cited cells, Figures 1-2
    OUT/eval-P/results.csv (+ .json)   one-shot results: Tables 1-2, claims 1-3   (notebook 05)
    OUT/eval-5shot-P/results.csv       5-shot Hyper U-Nets: Table 3              (notebook 07)
    OUT/maml-P/maml.csv (+ maml.json)  MAML beside the 5-shot Hyper U-Net: Table 3 in place of
                                       the one above when present   (notebook 07, hyperkit maml)
    OUT/ablation-P/ablation.csv        Tables 4-6, claims 4-6                     (notebook 06)
    OUT/finetune-P/finetune.csv, figure3.png   Figure 3, claim 7                 (notebook 07)

Tables and intervals are made by the evaluation package's own functions
(:func:`~hyperkit.evaluation.tables.comparison_table`,
:func:`~hyperkit.evaluation.ablation.ablation_tables`,
:func:`~hyperkit.evaluation.finetune.finetune_table`, :func:`~hyperkit.evaluation.maml.table3_of_run`,
:mod:`hyperkit.evaluation.stats`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from hyperkit.durations import clock
from hyperkit.files import write_atomic, write_text_atomic
from hyperkit.report.cells import CellRef, find_cell
from hyperkit.report.claims import (ABLATION_CLAIMS, FAILS, HOLDS, NOT_MEASURED, RULE, Verdict, all_claims)
from hyperkit.report.page import CellBlock, Figure, Page, Section, render_html, render_markdown

__all__ = ["ReportFiles", "RunFiles", "build_report", "run_files"]

T = TypeVar("T")

#: ablation variant -> the number of the paper's table (4-6)
_ABLATION_TABLES: dict[str, int] = {"step": 4, "norm": 5, "pe": 6}


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote, and the verdicts."""

    html: Path
    markdown: Path
    claims: tuple[Verdict, ...]

    def counts(self) -> dict[str, int]:
        """``{"holds": k, "does not hold": m, "not measured": u}``."""
        return {v: sum(c.verdict == v for c in self.claims) for v in (HOLDS, FAILS, NOT_MEASURED)}


@dataclass(frozen=True)
class RunFiles:
    """Where a reproduce run with profile ``profile`` keeps each result (see the module docstring)."""

    out: Path
    profile: str

    def _at(self, folder: str, name: str) -> Path:
        return self.out / f"{folder}-{self.profile}" / name

    @property
    def results(self) -> Path:
        return self._at("eval", "results.csv")

    @property
    def five_shot(self) -> Path:
        return self._at("eval-5shot", "results.csv")

    @property
    def maml(self) -> Path:
        return self._at("maml", "maml.csv")

    @property
    def ablation(self) -> Path:
        return self._at("ablation", "ablation.csv")

    @property
    def finetune(self) -> Path:
        return self._at("finetune", "finetune.csv")

    @property
    def figure3(self) -> Path:
        return self._at("finetune", "figure3.png")

    @property
    def notebooks(self) -> Path:
        return self.out / "notebooks"

    def rel(self, path: Path) -> str:
        """``path`` relative to the run folder, for the page."""
        try:
            return path.relative_to(self.out).as_posix()
        except ValueError:
            return str(path)


def run_files(out_dir: str | Path, profile: str | None = None) -> RunFiles:
    """The files of the run in ``out_dir``; the profile is read from its index when not given.

    Raises:
        FileNotFoundError: ``out_dir`` is not a folder.
    """
    out = Path(out_dir).resolve()
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such run folder")
    if profile is None:
        index = _json(out / "index.json") or {}
        profile = str((index.get("parameters") or {}).get("profile") or index.get("profile") or "quick")
    return RunFiles(out, profile)


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read(path: Path, reader: Callable[[Path], T], notes: list[str]) -> T | None:
    """What the kit's reader makes of ``path``, or ``None`` (a note says why when it exists but cannot be read)."""
    if not path.is_file():
        return None
    try:
        return reader(path)
    except (ValueError, OSError) as exc:  # HyperkitError is a ValueError: an older or foreign file
        said = str(exc).strip().splitlines()
        notes.append(f"`{path.name}` could not be read: {said[0] if said else type(exc).__name__}")
        return None


def _read_results(path: Path) -> list[dict[str, Any]]:
    from hyperkit.evaluation.results_file import read_results

    return read_results(path)


def _read_ablation(path: Path) -> list[dict[str, Any]]:
    from hyperkit.evaluation.ablation import read_ablation

    return read_ablation(path)


def _read_finetune(path: Path) -> list[dict[str, Any]]:
    from hyperkit.evaluation.finetune import read_finetune

    return read_finetune(path)


def _read_maml_table(path: Path) -> str:
    """Table 3 of the MAML run whose ``maml.csv`` is ``path`` (with its ``maml.json``)."""
    from hyperkit.evaluation.maml import read_maml, table3_of_run

    record = _json(path.with_name("maml.json"))
    if record is None:
        raise ValueError("no readable maml.json beside it (the run's protocol)")
    return table3_of_run(read_maml(path), record)


def _cell_link(cell: CellRef | None) -> str:
    return f"[{cell.label}](#{cell.anchor})" if cell else "no link (no executed notebook)"


def _made_by(*found: CellRef | None) -> str:
    """``Made by <links>.``, or why there is no link."""
    links = [_cell_link(c) for c in found if c is not None]
    return f"Made by {' and '.join(links)}." if links else "No notebook cell to link: no executed notebook made it."


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _claims_section(claims: Sequence[Verdict], cells: Mapping[str, CellRef | None], profile: str,
                    config_name: str | None) -> Section:
    counts = {v: sum(c.verdict == v for c in claims) for v in (HOLDS, FAILS, NOT_MEASURED)}
    scale = ("This run used the **quick** profile on the kit's procedural phantoms: a laptop-scale reproduction "
             "(smaller patches and networks, far fewer training episodes, synthetic CT and MRI). Its numbers are "
             "not expected to equal the paper's; a claim that does not hold here says what the kit measured at "
             "this scale." if (config_name or profile) == "quick" else
             f"This run used the profile `{profile}`.")
    head = (f"Of the paper's {len(claims)} claims checked here, **{counts[HOLDS]} hold**, "
            f"**{counts[FAILS]} do not hold** and **{counts[NOT_MEASURED]} were not measured** in this run. "
            + scale)
    lines = ["| # | the paper's claim | verdict | kit [95 % CI] | paper | made by |", "|---|---|---|---|---|---|"]
    for i, c in enumerate(claims, start=1):
        lines.append(f"| {i} | {_md_cell(c.claim)} | {c.verdict} | {_md_cell(c.kit)} | {_md_cell(c.paper)} | "
                     f"{_cell_link(cells.get(c.source))} |")
    details = [f"- **{i}. {c.claim}** — {c.verdict}. Measured as {c.measure}. {c.detail}."
               f" From `{'`, `'.join(c.files)}`." for i, c in enumerate(claims, start=1)]
    return Section("claims", "Does the paper reproduce?", [head, "\n".join(lines), "**How each verdict is decided.** "
                                                                  + RULE, "\n".join(details)], ["claims"])


def _tables_1_2(results: list[dict[str, Any]] | None, files: RunFiles, why: str) -> list[str]:
    if results is None:
        return [f"**Tables 1 and 2**: not measured — {why}."]
    from hyperkit.evaluation.tables import comparison_table, summarize

    record = _json(files.results.with_suffix(".json")) or {}
    tau = ((record.get("protocol") or {}).get("evaluate") or {}).get("tau")
    voxel = record.get("nsd_voxel_mm")
    summary = summarize(results)
    return [comparison_table(summary, t, tau=tau, voxel_mm=voxel) for t in ("table1_ct", "table2_mri")]


def _table_3(five: list[dict[str, Any]] | None, one: list[dict[str, Any]] | None, why: str,
             maml: str | None = None, maml_file: str = "maml/maml.csv") -> str:
    """Table 3: the kit's MAML run (``maml``, :func:`~hyperkit.evaluation.maml.table3_of_run`) when there is
    one, else the 5-shot (and 1-shot) Hyper U-Net rows beside the paper's numbers."""
    from hyperkit.evaluation.tables import kit_task, paper_tables, summarize

    paper = paper_tables()["table3_five_shot"]
    if maml is not None:
        return (f"**{paper['caption']}** — kit: MAML run in the kit's harness (`hyperkit maml`: leave-one-organ-out, "
                "each organ's U-Net meta-trained on the other organs only) beside the kit's 5-shot Hyper U-Net on the "
                "same organs, support draws and test cases, with the paired difference; below them the paper's "
                f"numbers (its MAML row is quoted from Alsaleh et al. 2024, not run). From `{maml_file}`.\n\n" + maml)
    head = (f"**{paper['caption']}** — kit: the 5-shot Hyper U-Net (five supports pooled into one context), mean ± "
            "std "
            "over test cases × draws; beside it the kit's 1-shot Hyper U-Net and the paper's numbers (its MAML column "
            "is quoted from Alsaleh et al. 2024).")
    if five is None:
        return head + f"\n\nNot measured — {why}."
    s5, s1 = summarize(five), summarize(one) if one else {}
    tasks = {t for t, _ in s5} | {t for t, _ in s1}
    lines = ["| organ | kit task | kit 5-shot Hyper U-Net DSC | kit 1-shot Hyper U-Net DSC | paper MAML DSC | "
             "paper 5-shot Hyper U-Net DSC |", "|---|---|---:|---:|---:|---:|"]
    absent = []
    for organ, ref in ((k, v) for k, v in paper.items() if k != "caption"):
        task = kit_task(organ, tasks)
        k5 = s5.get((task, "hyper_unet")) if task else None
        k1 = s1.get((task, "hyper_unet")) if task else None
        if k5 is None:
            absent.append(organ)
        lines.append(f"| {organ} | {task.split('/', 1)[-1] if task else '—'} | "
                     f"{f'{k5.dsc:.3f}±{k5.dsc_std:.3f}' if k5 else '—'} | "
                     f"{f'{k1.dsc:.3f}±{k1.dsc_std:.3f}' if k1 else '—'} | "
                     f"{ref['maml_alsaleh2024']:.3f} | {ref['hyper_unet']:.3f} |")
    note = (f"\n\nNo kit number for {', '.join(absent)}: not evaluated in this run (in the kit's split the kidneys "
            "are training tasks of the hypernetwork, so they cannot be held-out targets)." if absent else "")
    return head + "\n\n" + "\n".join(lines) + note


def _tables_4_6(rows: list[dict[str, Any]] | None, why: str) -> tuple[list[str], list[str]]:
    """Markdown blocks and the ids of their tables, in order."""
    if rows is None:
        return [f"**Tables 4-6**: not measured — {why}."], []
    from hyperkit.evaluation.ablation import VARIANTS, ablation_tables

    keep = set(_ABLATION_TABLES) | {"seed"}
    mine = [r for r in rows if r["variant"] in keep]
    present = {r["variant"] for r in mine}
    ids = [f"table-{_ABLATION_TABLES[v]}" if v in _ABLATION_TABLES else f"table-{v}"
           for v in VARIANTS if v in present]
    blocks = [ablation_tables(mine, metric="dsc")] if mine else []
    for v, number in _ABLATION_TABLES.items():
        if v not in present:
            blocks.append(f"**Table {number}** ({ABLATION_CLAIMS[v][1]}): not measured — the variant `{v}` is not "
                          "in this run's `ablation.csv` (notebook 06's `only` parameter chooses the variants; each "
                          "of `norm` and `pe` retrains the hypernetwork).")
    others = sorted({r["variant"] for r in rows} - keep)
    if others:
        blocks.append(f"The run's other variants ({', '.join(others)}) are in `tables.md` beside `ablation.csv`.")
    return blocks, ids


def _figure(cell: CellRef | None, number: int, title: str, caption: str, notebook: str) -> Figure:
    """Figure ``number`` from the picture its cell showed; without one, why not."""
    made = f" Made by {_cell_link(cell)}." if cell is not None else ""
    if cell is not None and cell.images:
        return Figure(f"figure-{number}", title, caption + made, png=cell.images[-1])
    if cell is None:
        why = f"no executed notebook {notebook} in this run"
    else:
        said = cell.text.strip().splitlines()[-1] if cell.text.strip() else ""
        why = f"notebook {notebook} showed no picture for it in this run" + (f" (it said: {said})" if said else "")
    return Figure(f"figure-{number}", title, caption + made, missing=why)


def _provenance(files: RunFiles, index: Mapping[str, Any] | None, record: Mapping[str, Any] | None) -> Section:
    blocks: list[str] = []
    ids: list[str] = []
    source = "`run.json`"
    if record is None:
        fallback = _json(files.results.with_suffix(".json"))
        record, source = fallback, f"`{files.rel(files.results.with_suffix('.json'))}` (no `run.json`: this folder " \
                                   "was not made by `hyperkit reproduce`)"
    if record:
        cfg = record.get("config") or {}
        machine = record.get("machine") or {}  # records before "compute"
        compute = record.get("compute") or {}
        rows = [("commit", f"`{record.get('commit', 'unknown')}`"), ("created", str(record.get("created", "—"))),
                ("profile", f"`{cfg.get('name', files.profile)}`"), ("seed", str(record.get("seed", "—"))),
                ("platform", str(record.get("platform", "—")))]
        if compute:
            env = ", ".join(f"{k}={v}" for k, v in (compute.get("env") or {}).items())
            rows.append(("machine", f"{compute.get('cpu')}, {compute.get('cpu_count')} cores, {compute.get('memory')}; "
                                    f"torch threads {compute.get('torch_threads')}" + (f" ({env})" if env else "")
                         + (f"; GPU {compute['cuda']}" if compute.get("cuda") else "")))
        elif machine:
            rows.append(("machine", ", ".join(f"{k} {v}" for k, v in machine.items())))
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items())))
        if record.get("command"):
            rows.append(("command", f"`{' '.join(map(str, record['command']))}`"))
        if record.get("kernel"):
            rows.append(("kernel", f"`{record['kernel']}`"))
        blocks.append(f"From {source}.\n\n| | |\n|---|---|\n"
                      + "\n".join(f"| {k} | {_md_cell(v)} |" for k, v in rows))
        ids.append("provenance-run")
    else:
        blocks.append("No run record in this folder (`run.json`).")
    if index and index.get("notebooks"):
        lines = ["| notebook | status | wall time | note |", "|---|---|---:|---|"]
        for n in index["notebooks"]:
            seconds = float(n.get("seconds") or 0.0)
            if n.get("selected", True) is False:
                note = "kept from an earlier run (not in `--only`)"
            elif n.get("reused"):
                note = "passed in an earlier run (skipped by --resume)"
            else:
                note = _md_cell(n.get("error") or "")
            lines.append(f"| {n['notebook']} | {n.get('status', '—')} | "
                         f"{clock(seconds) if n.get('status') != 'not run' else ''} | {note} |")
        total = sum(float(n.get("seconds") or 0.0) for n in index["notebooks"])
        blocks.append("\n".join(lines) + f"\n\nWall time in all: {clock(total)}.")
        ids.append("provenance-notebooks")
    made = []
    for label, path in (("one-shot evaluation", files.results.with_suffix(".json")),
                        ("5-shot evaluation", files.five_shot.with_suffix(".json")),
                        ("MAML (Table 3)", files.maml.with_name("maml.json")),
                        ("ablations", files.ablation.with_name("ablation.json")),
                        ("fine-tuning", files.finetune.with_name("finetune.json")),
                        ("training", files.out / f"train-{files.profile}" / "run.json")):
        rec = _json(path)
        if rec:
            wall = rec.get("wall_seconds")
            made.append(f"| {label} | `{files.rel(path)}` | {rec.get('created', '—')} | "
                        f"`{rec.get('commit', '—')}` | "
                        f"{clock(float(wall)) if wall else '—'} |")
    if made:
        blocks.append("Each result file's own record:\n\n| result | record | created | commit | wall time |\n"
                      "|---|---|---|---|---:|\n" + "\n".join(made))
        ids.append("provenance-files")
    return Section("provenance", "Provenance", blocks, ids)


def build_report(out_dir: str | Path, dest: str | Path | None = None, *, profile: str | None = None) -> ReportFiles:
    """Write ``report.html`` and ``report.md`` for the run in ``out_dir``.

    Args:
        out_dir: the shared output folder of a reproduce run (read only).
        dest: where to write the report (default: ``out_dir``); links to the run's files are
            made relative to it.
        profile: the profile the notebooks ran with (default: from ``out_dir/index.json``, else ``quick``).

    Returns:
        The paths written and the claims' verdicts.

    Raises:
        FileNotFoundError: ``out_dir`` is not a folder.
    """
    files = run_files(out_dir, profile)
    target = Path(dest).resolve() if dest is not None else files.out
    index = _json(files.out / "index.json")
    record = _json(files.out / "run.json") or (index or {}).get("run")
    notes: list[str] = []
    results = _read(files.results, _read_results, notes)
    five = _read(files.five_shot, _read_results, notes)
    ablation = _read(files.ablation, _read_ablation, notes)
    finetune = _read(files.finetune, _read_finetune, notes)
    maml = _read(files.maml, _read_maml_table, notes)
    claims = all_claims(results, ablation, finetune, results_file=files.rel(files.results),
                        ablation_file=files.rel(files.ablation), finetune_file=files.rel(files.finetune))
    cells = {key: find_cell(files.notebooks, key) for key in ("one_shot", "ablation", "finetune", "table1", "table2",
                                                                "five_shot", "maml", "ablation_tables")}
    # the cell that drew the figure, else the cell that should have (its output says why it did not)
    figures = {key: find_cell(files.notebooks, key, image=True) or find_cell(files.notebooks, key)
               for key in ("figure1", "figure2", "figure3")}
    config_name = ((record or {}).get("config") or {}).get("name")

    def why(path: Path, notebook: str) -> str:
        return f"`{files.rel(path)}` is not in this run (notebook {notebook} writes it)"

    sections = [_claims_section(claims, cells, files.profile, config_name)]
    t12 = _tables_1_2(results, files, why(files.results, "05"))
    sections.append(Section("tables-1-2", "Tables 1 and 2: one-shot segmentation",
                            t12 + [_made_by(cells["table1"], cells["table2"])],
                            ["table-1", "table-2"] if results is not None else []))
    sections.append(Section("table-3-section", "Table 3: five supports",
                            [_table_3(five, results, why(files.five_shot, "07"), maml, files.rel(files.maml)),
                             _made_by(cells["maml"] if maml is not None else cells["five_shot"])],
                            ["table-3"] if five is not None or maml is not None else []))
    t46, ids46 = _tables_4_6(ablation, why(files.ablation, "06"))
    sections.append(Section("tables-4-6", "Tables 4-6: ablations",
                            t46 + [_made_by(cells["ablation"], cells["ablation_tables"])], ids46))

    fig3 = _figure(figures["figure3"], 3, "Figure 3: fine-tuning with N labelled volumes",
                   "The paper's Figure 3 plots DSC against N for a fine-tuned Hyper U-Net (blue) and a fine-tuned "
                   "Random U-Net (red) and publishes no numbers; its claim is in the table above (claim 7).", "07")
    if files.figure3.is_file():  # the file the kit wrote is the figure; the cell only shows it
        fig3.png, fig3.missing = files.figure3.read_bytes(), ""
        fig3.caption += f" From `{files.rel(files.figure3)}`."
    ft_blocks: list[str] = []
    ft_ids: list[str] = []
    if finetune:
        from hyperkit.evaluation.finetune import finetune_table, reference_lines

        refs = reference_lines(files.results) if results is not None else {}
        ft_blocks = ["Figure 3's numbers: mean DSC [95 % t-interval over repeats] on each subset's test cases.",
                     finetune_table(finetune, refs)]
        ft_ids = ["figure-3-data"]
    fig1 = _figure(figures["figure1"], 1, "Figure 1: context construction from real tensors",
                   "The paper's Figure 1 is a diagram of how one decoder convolution's kernel is generated from "
                   "patches of the support's features (eqs. 1-7); the kit draws it from a trained model's tensors.",
                   "02")
    fig2 = _figure(figures["figure2"], 2, "Figure 2: contours of the Hyper U-Net and the Conv U-Net",
                   "The paper's Figure 2 shows ground truth, Hyper U-Net and Conv U-Net outlines on test slices; the "
                   "kit's needs the Conv U-Net baseline of notebook 05.", "05")
    sections.append(Section("figures", "Figures 1-3", [fig1, fig2, fig3, *ft_blocks], ft_ids))
    for fig in (fig1, fig2, fig3):
        if fig.png is None:
            continue
        if fig is fig3 and files.figure3.is_file():
            fig.file = os.path.relpath(files.figure3, target)
        else:
            path = target / "report_files" / f"{fig.id}.png"
            write_atomic(path, lambda fh, data=fig.png: fh.write(data))
            fig.file = os.path.relpath(path, target)
    sections.append(_provenance(files, index, record))
    cited = {c.anchor: c for c in [*cells.values(), *figures.values()] if c is not None}
    sections.append(Section("cells", "Cells cited",
                            ["The notebook cells that made the numbers and figures above, from the executed copies "
                             "of this run (open them in Jupyter to see every output)."
                             if cited else "No executed notebooks in this run (`notebooks/`): no cell to cite."]
                            + [CellBlock(c, os.path.relpath(c.path, target)) for c in cited.values()]))
    if notes:
        sections[0].blocks.append("**Files that could not be read**: " + "; ".join(notes) + ".")
    lead = (f"The reproduction report of the kit's run in `{files.out}`: each of the paper's claims with a verdict "
            "computed from this run's results, then the paper's tables and figures as the kit made them beside the "
            "paper's numbers, and the run's provenance. Paper: \"Task-Conditioned 3D U-Nets via Hypernetworks for "
            "Data-Scarce Medical Segmentation\" (Hagen, Müller, Gmeiner, Kainz; MIDL 2026, under review).")
    page = Page("hyperkit: does the paper reproduce?", lead, sections)
    html_path = write_text_atomic(target / "report.html", render_html(page))
    md_path = write_text_atomic(target / "report.md", render_markdown(page))
    return ReportFiles(html_path, md_path, tuple(claims))
