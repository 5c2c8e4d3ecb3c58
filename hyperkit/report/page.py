"""The report's content as sections of Markdown, figures and cited cells; rendered twice.

:func:`render_markdown` gives ``report.md`` (for terminals: figures are links to PNG files)
and :func:`render_html` gives ``report.html``: one self-contained page (CSS inline, figures
embedded as ``data:`` URIs, no script, no request to any server) that opens offline in a
browser. Both carry the same sections in the same order.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Union

from hyperkit.report.cells import CellRef
from hyperkit.report.markdown import inline, to_html

__all__ = ["Figure", "CellBlock", "Section", "Page", "render_markdown", "render_html"]


@dataclass
class Figure:
    """A figure of the report.

    Attributes:
        id: the HTML id (``figure-1``).
        title: one line above it.
        caption: Markdown below it (what the paper's figure shows, where this one came from).
        png: the picture (``None``: not made in this run; ``missing`` says why).
        file: the PNG on disk, relative to the report (the Markdown version links it).
        missing: why there is no picture.
    """

    id: str
    title: str
    caption: str
    png: bytes | None = None
    file: str | None = None
    missing: str = ""


@dataclass
class CellBlock:
    """A cited notebook cell: its code and its text output, and a link to the executed copy."""

    cell: CellRef
    href: str


Block = Union[str, Figure, CellBlock]


@dataclass
class Section:
    """A titled part of the page.

    Attributes:
        id: the HTML id of the section.
        title: its heading.
        blocks: Markdown strings, figures and cited cells, in order.
        table_ids: the ids given to the Markdown tables of the section, in order (fewer
            ids than tables: the rest get none).
    """

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    table_ids: list[str] = field(default_factory=list)


@dataclass
class Page:
    """The whole report: a title, a lead paragraph (Markdown) and the sections."""

    title: str
    lead: str
    sections: list[Section]


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}\n{text.rstrip()}\n{ticks}"


def _anchor(ident: str) -> str:
    return f'<a id="{html.escape(ident)}"></a>'


def render_markdown(page: Page) -> str:
    """``report.md``: the same content for a terminal (figures as links to their files).

    Each section and cited cell starts with an ``<a id>`` anchor (Markdown headings get none of their own):
    the contents line and the claims' cell links jump to them in a Markdown viewer too.
    """
    out = [f"# {page.title}", "", page.lead, ""]
    out.append("Contents: " + " · ".join(f"[{s.title}](#{s.id})" for s in page.sections))
    out.append("")
    for s in page.sections:
        out += [_anchor(s.id), "", f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, str):
                out += [b, ""]
            elif isinstance(b, Figure):
                out += [f"**{b.title}**", ""]
                if b.file:
                    out += [f"![{b.title}]({b.file})", ""]
                elif b.missing:
                    out += [f"*Not measured*: {b.missing}", ""]
                out += [b.caption, ""]
            else:
                c = b.cell
                out += [_anchor(c.anchor), "",
                        f"### {c.label} (`{b.href}`, In [{c.execution_count}], cell id `{c.cell_id}`)", "",
                        _fence(c.source), ""]
                if c.text.strip():
                    out += ["Output:", "", _fence(c.text), ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
:root { --fg: #1d2330; --muted: #5b6473; --line: #d8dde6; --holds: #1e7b34; --fails: #b3261e; --unm: #6b6f76; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1180px; padding: 1.5rem 1.5rem 4rem; }
h1 { font-size: 1.7rem; margin: .2rem 0 .6rem; } h2 { margin-top: 2.4rem; border-bottom: 2px solid var(--line);
     padding-bottom: .2rem; } h3 { font-size: 1rem; margin: 1.4rem 0 .4rem; }
nav { font-size: .9rem; color: var(--muted); margin: .6rem 0 1rem; } nav a { margin-right: .8rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .86rem; display: block; overflow-x: auto;
        max-width: 100%; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f9; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.verdict { font-weight: 700; white-space: nowrap; }
td.holds { color: var(--holds); background: #e8f5ec; } td.fails { color: var(--fails); background: #fbeaea; }
td.unmeasured { color: var(--unm); background: #f1f2f4; }
figure { margin: 1rem 0 1.6rem; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .9rem; } .missing { color: var(--unm); font-style: italic; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: .6rem; overflow-x: auto; font-size: .8rem; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .88em; }
.lead { font-size: 1.02rem; } details { margin: .4rem 0 1rem; }
"""


def render_html(page: Page) -> str:
    """``report.html``: one self-contained page (see the module docstring)."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(page.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(page.title)}</h1>", f'<div class="lead">{to_html(page.lead)}</div>',
             "<nav>" + "".join(f'<a href="#{html.escape(s.id)}">{html.escape(s.title)}</a>' for s in page.sections)
             + "</nav>"]
    for s in page.sections:
        ids = iter(list(s.table_ids))
        parts.append(f'<section id="{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, str):
                parts.append(to_html(b, lambda: next(ids, None)))
            elif isinstance(b, Figure):
                parts.append(f'<figure id="{html.escape(b.id)}"><h3>{inline(b.title)}</h3>')
                if b.png is not None:
                    data = base64.b64encode(b.png).decode("ascii")
                    parts.append(f'<img alt="{html.escape(b.title)}" src="data:image/png;base64,{data}">')
                else:
                    parts.append(f'<p class="missing">Not measured: {inline(b.missing)}</p>')
                parts.append(f"<figcaption>{to_html(b.caption)}</figcaption></figure>")
            else:
                c = b.cell
                parts.append(
                    f'<div class="cell" id="{html.escape(c.anchor)}"><h3>{html.escape(c.label)}</h3>'
                    f'<p><a href="{html.escape(b.href)}">{html.escape(b.href)}</a>, In [{c.execution_count}], '
                    f"cell id <code>{html.escape(str(c.cell_id))}</code></p>"
                    f"<pre><code>{html.escape(c.source)}</code></pre>"
                    + (f"<details><summary>output</summary><pre>{html.escape(c.text)}</pre></details>"
                       if c.text.strip() else "") + "</div>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
