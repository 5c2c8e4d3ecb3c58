"""The small Markdown the kit writes, as HTML: paragraphs, bullet lists, pipe tables, headings.

The report's text comes from the kit's own table builders
(:func:`hyperkit.evaluation.tables.comparison_table`,
:func:`hyperkit.evaluation.ablation.ablation_tables`, ...), which write GitHub-style Markdown
with ``**bold**``, ``<u>underlined</u>`` (a second best), ```code``` and ``[text](href)``. This
module turns exactly that subset into HTML, escaping everything else, so that the report page
needs no Markdown package and no network. It is not a general Markdown implementation.
"""

from __future__ import annotations

import html
import re
from typing import Callable

__all__ = ["inline", "to_html", "split_row", "VERDICT_CLASSES"]

#: table cells whose whole text is one of these get a CSS class (the report's verdicts)
VERDICT_CLASSES: dict[str, str] = {"holds": "holds", "does not hold": "fails", "not measured": "unmeasured"}

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_ALIGN = re.compile(r"^:?-{3,}:?$")


def _safe_href(href: str) -> str | None:
    """A link the offline page may carry: in-page or relative (no scheme, no network)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", href) or href.startswith("//"):
        return None
    return href


def inline(text: str) -> str:
    """One line of Markdown as HTML: code spans, bold, ``<u>``, relative links; the rest escaped."""
    out: list[str] = []
    pos = 0
    for m in _CODE.finditer(text):  # code spans are escaped verbatim, never formatted
        out.append(_format(text[pos:m.start()]))
        out.append(f"<code>{html.escape(m.group(1), quote=False)}</code>")
        pos = m.end()
    out.append(_format(text[pos:]))
    return "".join(out)


def _format(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = escaped.replace("&lt;u&gt;", "<u>").replace("&lt;/u&gt;", "</u>")
    escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)

    def link(m: re.Match[str]) -> str:
        href = _safe_href(html.unescape(m.group(2)))
        if href is None:  # an absolute URL: shown, not linked (the page works offline)
            return f"{m.group(1)} ({m.group(2)})"
        return f'<a href="{html.escape(href, quote=True)}">{m.group(1)}</a>'

    return _LINK.sub(link, escaped)


def split_row(line: str) -> list[str]:
    """The cells of a pipe-table row (``\\|`` is a literal bar inside a cell)."""
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [c.strip().replace("\\|", "|") for c in cells]


def _table(lines: list[str], table_id: str | None) -> str:
    head = split_row(lines[0])
    aligns = ["right" if c.endswith(":") else "" for c in split_row(lines[1])]
    ident = f' id="{html.escape(table_id, quote=True)}"' if table_id else ""
    parts = [f"<table{ident}>", "<thead><tr>"]
    for i, cell in enumerate(head):
        style = ' class="num"' if i < len(aligns) and aligns[i] == "right" else ""
        parts.append(f"<th{style}>{inline(cell)}</th>")
    parts.append("</tr></thead><tbody>")
    for line in lines[2:]:
        parts.append("<tr>")
        for i, cell in enumerate(split_row(line)):
            classes = []
            if i < len(aligns) and aligns[i] == "right":
                classes.append("num")
            if cell in VERDICT_CLASSES:
                classes += ["verdict", VERDICT_CLASSES[cell]]
            attr = f' class="{" ".join(classes)}"' if classes else ""
            parts.append(f"<td{attr}>{inline(cell)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _is_table(block: list[str]) -> bool:
    return len(block) >= 2 and all(line.lstrip().startswith("|") for line in block) and \
        all(_ALIGN.match(c) for c in split_row(block[1]) if c)


def to_html(text: str, table_ids: Callable[[], str | None] | None = None) -> str:
    """Markdown (the subset in the module docstring) as an HTML fragment.

    Args:
        text: the Markdown.
        table_ids: called once per table, in order; its answer becomes the table's ``id``
            (``None``: no id).
    """
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    out: list[str] = []
    for block in (b for b in blocks if b):
        if _is_table(block):
            out.append(_table(block, table_ids() if table_ids else None))
            continue
        if len(block) == 1 and (m := _HEADING.match(block[0])):
            level = len(m.group(1))
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
            continue
        if all(line.lstrip().startswith(("- ", "* ")) or (line.startswith("  ") and i) for i, line in
               enumerate(block)):
            items: list[str] = []
            for line in block:
                if line.lstrip().startswith(("- ", "* ")):
                    items.append(line.lstrip()[2:])
                else:  # a continuation line of the item above
                    items[-1] += " " + line.strip()
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            continue
        out.append(f"<p>{inline(' '.join(line.strip() for line in block))}</p>")
    return "\n".join(out)
