"""Which notebook cell made a number or a figure: found in the executed copies of a reproduce run.

``hyperkit reproduce`` keeps every executed notebook in ``OUT/notebooks/NN_name.ipynb``. The
report cites a cell by what its code does (a regular expression on its source, e.g. the call
``run_evaluation(`` in notebook ``05``), not by its position, so that a notebook can gain or
lose cells without breaking the report. :data:`CELLS` is the one table of these rules.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CELLS", "CellRef", "find_cell", "cell_text"]

#: what the report cites -> (notebook number, pattern on the cell's source); the first code
#: cell that matches is cited (for a figure: the first that matches and shows a picture)
CELLS: dict[str, tuple[str, str]] = {
    "one_shot": ("05", r"\brun_evaluation\("),
    "table1": ("05", r"table1_ct"),
    "table2": ("05", r"table2_mri"),
    "figure2": ("05", r"\bfigure2\("),
    "ablation": ("06", r"\brun_ablation\("),
    "ablation_tables": ("06", r"\bablation_tables\("),
    "finetune": ("07", r"\brun_finetune\("),
    "figure3": ("07", r"\bfigure3\("),
    "five_shot": ("07", r"\bshots\s*=\s*5\b"),
    "maml": ("07", r"\brun_maml\("),
    "figure1": ("02", r"Figure 1 of the paper|\bfigure1\("),
}


@dataclass(frozen=True)
class CellRef:
    """One code cell of an executed notebook.

    Attributes:
        notebook: the notebook's stem (``05_one_shot``).
        path: the executed copy.
        index: position in the notebook's cell list (markdown cells included).
        number: position among its code cells (1-based), and ``total`` code cells.
        execution_count: its ``In [n]``.
        cell_id: the cell's nbformat id, if any.
        source: its code.
        text: its stream and plain-text outputs (trimmed).
        images: its PNG outputs, decoded.
        error: ``"Type: message"`` when the cell raised.
    """

    notebook: str
    path: Path
    index: int
    number: int
    total: int
    execution_count: int | None
    cell_id: str | None
    source: str
    text: str = ""
    images: tuple[bytes, ...] = field(default=(), repr=False)
    error: str | None = None

    @property
    def anchor(self) -> str:
        """The id of this cell's entry in the report (``cell-05_one_shot-13``)."""
        return f"cell-{self.notebook}-{self.index}"

    @property
    def label(self) -> str:
        """``05_one_shot, code cell 8 of 18``."""
        return f"{self.notebook}, code cell {self.number} of {self.total}"


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def cell_text(cell: dict[str, Any], limit: int = 1500) -> str:
    """The text a reader sees under a code cell: streams and ``text/plain`` results, trimmed."""
    parts: list[str] = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(_joined(out.get("text")))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "text/markdown" in data:
                parts.append(_joined(data["text/markdown"]) + "\n")
            elif "text/plain" in data and "image/png" not in data and not _joined(data["text/plain"]).startswith("<"):
                parts.append(_joined(data["text/plain"]) + "\n")
        elif kind == "error":
            parts.append(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}\n")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", "".join(parts))
    text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n")).strip("\n")  # bars: last state
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _images(cell: dict[str, Any]) -> tuple[bytes, ...]:
    out = []
    for o in cell.get("outputs", []):
        png = (o.get("data") or {}).get("image/png")
        if png:
            out.append(base64.b64decode(_joined(png)))
    return tuple(out)


def find_cell(notebooks_dir: str | Path, what: str, *, image: bool = False) -> CellRef | None:
    """The cell of :data:`CELLS` ``what`` in the executed copies, or ``None``.

    Args:
        notebooks_dir: ``OUT/notebooks``.
        what: a key of :data:`CELLS`.
        image: only a cell that shows a picture counts.

    Raises:
        ValueError: ``what`` is not a key of :data:`CELLS`.
    """
    if what not in CELLS:
        raise ValueError(f"unknown cell {what!r}; known: {sorted(CELLS)}")
    number, pattern = CELLS[what]
    folder = Path(notebooks_dir)
    for path in sorted(folder.glob(f"{number}_*.ipynb")) if folder.is_dir() else []:
        try:
            nb = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        cells = nb.get("cells", [])
        code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
        for n, i in enumerate(code, start=1):
            cell = cells[i]
            source = _joined(cell.get("source"))
            if not re.search(pattern, source):
                continue
            images = _images(cell)
            if image and not images:
                continue
            error = next((f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", [])
                          if o.get("output_type") == "error"), None)
            return CellRef(notebook=path.stem, path=path, index=i, number=n, total=len(code),
                           execution_count=cell.get("execution_count"), cell_id=cell.get("id"), source=source,
                           text=cell_text(cell), images=images, error=error)
    return None
