"""Audit of hyperkit.report.page and hyperkit.plots by mutation testing.

Each test guards one documented behaviour the other tests left open. For the page: that both
renderings carry the same sections, figures and cited cells, that the HTML escapes everything the
kit did not generate and keeps every anchor, and that code fences survive backticks. For the
plots: the geometry of the slices (RAS, origin lower) and the marks each figure carries, read from
the figure's artists, never from its pixels.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hyperkit.plots import (VIEW_LETTERS, kernel_mosaic, label_colormap, label_key,  # noqa: E402
                            mark_orientation, mask_centre, plot_centre_prior, plot_fit_gap, plot_method_bars,
                            plot_training_curves, show_contours, show_triplanar, to_volume)
from hyperkit.report.cells import CellRef  # noqa: E402
from hyperkit.report.page import CellBlock, Figure, Page, Section, render_html, render_markdown  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- report.page ----------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\nnot-a-real-picture"
TABLE = "| name | value |\n|---|---:|\n| a | 1 |"


def _cell(tmp_path: Path, *, text: str = "out <b>1</b>", source: str = "x = 1 < 2\nprint(x)") -> CellRef:
    return CellRef(notebook="05_one&shot", path=tmp_path / "05_one&shot.ipynb", index=13, number=8, total=18,
                   execution_count=42, cell_id="id<7>", source=source, text=text)


def _page(tmp_path: Path, *, text: str = "out <b>1</b>", source: str = "x = 1 < 2\nprint(x)") -> Page:
    """A page with every kind of block: Markdown with tables, a figure, a missing figure, a cited cell."""
    first = Section("first", "First <one>", [f"Intro.\n\n{TABLE}\n\n{TABLE}\n\n{TABLE}"],
                    ["table-a", "table-b"])
    shown = Figure("figure-1", "Figure 1: <drawn>", "Caption **bold** <i>", png=PNG,
                   file="report_files/f1.png")
    missing = Figure("figure-2", "Figure 2", "Second caption", missing="no <notebook> 05")
    figures = Section("figs", "Figures & more", [shown, missing])
    cells = Section("cells", "Cells cited", [CellBlock(_cell(tmp_path, text=text, source=source),
                                                       "notebooks/05 <one>.ipynb")])
    return Page("Report <of> & run", "Lead with `code`.", [first, figures, cells])


def test_html_escapes_everything_the_kit_did_not_generate(tmp_path: Path) -> None:
    """Titles, section and figure headings, alt text, captions, missing reasons and the cited cell's label,
    link, id, source and output are escaped; only the kit's own tags remain."""
    page = render_html(_page(tmp_path))
    assert "<title>Report &lt;of&gt; &amp; run</title>" in page
    assert "<h1>Report &lt;of&gt; &amp; run</h1>" in page
    assert '<a href="#first">First &lt;one&gt;</a>' in page and "<h2>First &lt;one&gt;</h2>" in page
    assert "<h2>Figures &amp; more</h2>" in page
    assert "<h3>Figure 1: &lt;drawn&gt;</h3>" in page and 'alt="Figure 1: &lt;drawn&gt;"' in page
    assert "<figcaption><p>Caption <strong>bold</strong> &lt;i&gt;</p></figcaption>" in page
    assert '<p class="missing">Not measured: no &lt;notebook&gt; 05</p>' in page
    assert '<a href="notebooks/05 &lt;one&gt;.ipynb">notebooks/05 &lt;one&gt;.ipynb</a>, In [42]' in page
    assert "cell id <code>id&lt;7&gt;</code>" in page
    assert "<pre><code>x = 1 &lt; 2\nprint(x)</code></pre>" in page
    assert "<details><summary>output</summary><pre>out &lt;b&gt;1&lt;/b&gt;</pre></details>" in page
    assert "one&shot" not in page
    assert "<b>" not in page and "<i>" not in page and "<one>" not in page and "<drawn>" not in page


def test_html_keeps_every_anchor_and_the_tables_their_ids_in_order(tmp_path: Path) -> None:
    """Sections, figures and cells carry their ids, the nav links them, and the tables of a section take
    ``table_ids`` in order (fewer ids than tables: the rest get none)."""
    page = render_html(_page(tmp_path))
    assert '<nav><a href="#first">' in page and '<a href="#figs">' in page and '<a href="#cells">' in page
    for ident in ("first", "figs", "cells"):
        assert f'<section id="{ident}">' in page
    assert '<figure id="figure-1">' in page and '<figure id="figure-2">' in page
    assert ('<div class="cell" id="cell-05_one&amp;shot-13"><h3>05_one&amp;shot, code cell 8 of 18</h3>'
            in page)
    assert re.findall(r"<table[^>]*>", page) == ['<table id="table-a">', '<table id="table-b">', "<table>"]
    assert page.count("<section") == page.count("</section>") == 3
    # the figure with a picture embeds it, the one without says why, and no picture is linked from disk
    data = re.search(r'<figure id="figure-1">.*?<img [^>]*src="data:image/png;base64,([^"]+)"', page, re.S)
    assert data is not None and "report_files/f1.png" not in page
    assert base64.b64decode(data.group(1)) == PNG
    assert not re.search(r'<figure id="figure-2">.*?<img', page.split("</figure>")[1], re.S)
    # the picture is embedded whether or not a file was written for the Markdown version
    alone = render_html(Page("t", "", [Section("s", "S", [Figure("f", "T", "c", png=PNG)])]))
    assert 'src="data:image/png;base64,' in alone and "Not measured" not in alone


def test_a_cell_without_output_has_no_output_block(tmp_path: Path) -> None:
    page = render_html(_page(tmp_path, text=""))
    md = render_markdown(_page(tmp_path, text=""))
    assert "<details>" not in page and "Output:" not in md


def test_markdown_carries_the_same_sections_figures_and_cells(tmp_path: Path) -> None:
    """Contents links to the sections' ids; a figure is its title, a link to its file (or why it is
    missing) and its caption; a cell is its label, link, ``In [n]``, id, fenced code and fenced output."""
    md = render_markdown(_page(tmp_path))
    assert md.startswith("# Report <of> & run\n\nLead with `code`.\n\n")
    assert "Contents: [First <one>](#first) · [Figures & more](#figs) · [Cells cited](#cells)\n" in md
    assert [line for line in md.splitlines() if line.startswith("## ")] == \
        ["## First <one>", "## Figures & more", "## Cells cited"]
    assert ("**Figure 1: <drawn>**\n\n![Figure 1: <drawn>](report_files/f1.png)\n\n"
            "Caption **bold** <i>\n") in md
    assert "**Figure 2**\n\n*Not measured*: no <notebook> 05\n\nSecond caption\n" in md
    assert "### 05_one&shot, code cell 8 of 18 (`notebooks/05 <one>.ipynb`, In [42], cell id `id<7>`)" in md
    assert "```\nx = 1 < 2\nprint(x)\n```\n\nOutput:\n\n```\nout <b>1</b>\n```\n" in md
    assert md.endswith("```\n") and not md.endswith("\n\n")
    # the file ends with one newline, whatever the last block ends with
    tail = render_markdown(Page("T", "lead", [Section("s", "S", ["last line  \n\n"])]))
    assert tail.endswith("\n## S\n\nlast line\n")


def test_code_fences_are_longer_than_any_backtick_run_in_the_code(tmp_path: Path) -> None:
    """A cell whose code holds three or four backticks is fenced with more, so the fence is not closed
    early; the code's own indentation is kept."""
    source = "    s = '''```'''\n    t = '````'\n"
    md = render_markdown(_page(tmp_path, source=source, text="a ``` b"))
    assert "`````\n    s = '''```'''\n    t = '````'\n`````" in md
    assert "Output:\n\n````\na ``` b\n````" in md


# --- plots: slices and their orientation -----------------------------------------------------------


SHAPE = (5, 6, 7)


def _coded() -> np.ndarray:
    """A volume whose voxel ``(x, y, z)`` holds ``100 x + 10 y + z``: every slice is recognisable."""
    x, y, z = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    return (100 * x + 10 * y + z).astype(float)


def test_to_volume_drops_leading_singleton_axes_only() -> None:
    vol = _coded()
    assert np.array_equal(to_volume(vol[None, None]), vol) and np.array_equal(to_volume(vol[None]), vol)
    with pytest.raises(ValueError, match=r"\(2, 5, 6, 7\)"):
        to_volume(np.stack([vol, vol]))


def test_mask_centre_is_the_bounding_box_centre_or_the_volume_centre() -> None:
    mask = np.zeros(SHAPE, dtype=np.uint8)
    assert mask_centre(mask, SHAPE) == (2, 3, 3) and mask_centre(None, SHAPE) == (2, 3, 3)
    mask[1, 2, 3] = mask[2, 5, 6] = 1
    assert mask_centre(mask, SHAPE) == (1, 3, 4)


def test_show_triplanar_slices_through_the_centre_in_ras_order_origin_lower() -> None:
    """Axial ``vol[:, :, z].T``, coronal ``vol[:, y, :].T``, sagittal ``vol[x, :, :].T``, drawn with the
    origin lower; the labels overlaid on the same slices, in :func:`label_colormap`'s colours."""
    vol = _coded()
    lab = np.zeros(SHAPE, dtype=np.int64)
    lab[1:3, 2:5, 3:6] = 1
    lab[1, 3, 4] = 3
    fig = show_triplanar(vol, lab, center=(1, 4, 5))
    expected = [vol[:, :, 5].T, vol[:, 4, :].T, vol[1, :, :].T]
    cmap = label_colormap(3)
    for ax, want, lab_sl, view in zip(fig.axes, expected, [lab[:, :, 5].T, lab[:, 4, :].T, lab[1].T],
                                      ("axial", "coronal", "sagittal")):
        grey, overlay = ax.images
        assert np.array_equal(np.asarray(grey.get_array()), want) and grey.origin == "lower"
        assert ax.get_title() == view
        assert np.array_equal(overlay.get_array().filled(0), lab_sl) and overlay.origin == "lower"
        for v in (1, 3):
            assert np.allclose(overlay.cmap(overlay.norm(v)), cmap(v))
    # without a centre: the mask's bounding-box centre (1..2, 2..4, 3..5) -> (1, 3, 4)
    fig = show_triplanar(vol, lab)
    assert np.array_equal(np.asarray(fig.axes[0].images[0].get_array()), vol[:, :, 4].T)
    assert np.array_equal(np.asarray(fig.axes[2].images[0].get_array()), vol[1].T)


def test_show_triplanar_grey_window_defaults_to_the_percentiles() -> None:
    vol = _coded()
    lo, hi = np.percentile(vol, [1, 99])
    assert np.allclose(show_triplanar(vol).axes[0].images[0].get_clim(), (lo, hi))
    assert np.allclose(show_triplanar(vol, vmin=-5.0).axes[0].images[0].get_clim(), (-5.0, hi))
    assert np.allclose(show_triplanar(vol, vmax=9.0).axes[0].images[0].get_clim(), (lo, 9.0))


def test_show_triplanar_contours_are_drawn_in_each_labels_colour() -> None:
    lab = np.zeros(SHAPE, dtype=np.int64)
    lab[1:3, 1:3, 1:4] = 1
    lab[3:5, 3:5, 1:4] = 2
    fig = show_triplanar(_coded(), lab, contour=True, center=(2, 2, 2))
    cmap = label_colormap(2)
    colours = [tuple(c.get_edgecolor()[0]) for c in fig.axes[0].collections]
    assert len(fig.axes[0].images) == 1 and np.allclose(colours, [cmap(1), cmap(2)])


def test_show_triplanar_checks_the_mask_and_labels_a_gallery_row() -> None:
    with pytest.raises(ValueError, match=r"\(5, 6, 6\).*\(5, 6, 7\)"):
        show_triplanar(_coded(), np.zeros((5, 6, 6)))
    fig, axes = plt.subplots(2, 3)
    assert show_triplanar(_coded(), ax_row=axes[1], title="case 3") is fig
    assert axes[1][0].get_ylabel() == "case 3" and fig._suptitle is None


def test_the_orientation_letters_name_the_direction_the_slice_runs_at_each_edge() -> None:
    """For each view of a RAS volume, the letter at the right (top) edge is the direction in which the
    slice's horizontal (vertical) index grows (R, A or S), and the letter at the left (bottom) edge its
    opposite."""
    vol = _coded()
    fig = show_triplanar(vol, center=(2, 3, 3))
    mark_orientation(fig.axes)
    positive, negative = {0: "R", 1: "A", 2: "S"}, {0: "L", 1: "P", 2: "I"}
    digit = {0: 100, 1: 10, 2: 1}  # which voxel axis a step changes, read from the coded values
    for ax in fig.axes:
        arr = np.asarray(ax.images[0].get_array())
        across = next(a for a, d in digit.items() if arr[0, 1] - arr[0, 0] == d)
        up = next(a for a, d in digit.items() if arr[1, 0] - arr[0, 0] == d)
        at = {tuple(np.round(t.get_position(), 2)): t.get_text() for t in ax.texts}
        assert at[(0.04, 0.5)] == negative[across] and at[(0.96, 0.5)] == positive[across]
        assert at[(0.5, 0.05)] == negative[up] and at[(0.5, 0.95)] == positive[up]
    assert VIEW_LETTERS == {"axial": "LRPA", "coronal": "LRIS", "sagittal": "PAIS"}


def test_label_key_limit_and_default_centre() -> None:
    """``limit`` entries at most, a ``+ k more`` entry only when some are left out; the slices go through
    the mask's centre by default."""
    lab = np.zeros((9, 9, 9), dtype=np.int64)
    lab[5:9, 5:9, 5:9] = 1     # the box (5..8) has its centre at (6, 6, 6)
    lab[6, 6, 5] = 2
    fig, ax = plt.subplots()
    assert [t.get_text() for t in label_key(ax, lab, limit=2).get_texts()] == ["1", "2"]
    assert [t.get_text() for t in label_key(ax, lab, centre=(4, 4, 4)).get_texts()] == []


def test_kernel_mosaic_refuses_a_kernel_that_is_not_cubic() -> None:
    with pytest.raises(ValueError, match=r"\(2, 2, 3, 3, 1\)"):
        kernel_mosaic(np.zeros((2, 2, 3, 3, 1)))


def test_show_contours_slices_through_the_first_mask_in_the_figure_2_colours() -> None:
    vol = _coded()
    truth = np.zeros(SHAPE, dtype=np.uint8)
    truth[0:3, 0:3, 0:3] = 1                   # centre (1, 1, 1)
    pred = np.zeros(SHAPE, dtype=np.uint8)
    pred[2:5, 3:6, 4:7] = 1                    # centre (3, 4, 5)
    fig = show_contours(vol, {"ground truth": truth, "Hyper U-Net": pred, "mine": pred},
                        colours={"Hyper U-Net": "navy"})
    ax = fig.axes[0]
    assert np.array_equal(np.asarray(ax.images[0].get_array()), vol[:, :, 1].T)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ground truth", "Hyper U-Net", "mine"]
    legend_colours = [matplotlib.colors.to_hex(h.get_color()) for h in ax.get_legend().legend_handles]
    assert legend_colours[:2] == [matplotlib.colors.to_hex("red"), matplotlib.colors.to_hex("navy")]
    with pytest.raises(ValueError, match="'mine'"):
        show_contours(vol, {"ground truth": truth, "mine": truth[:, :, :6]})


# --- plots: bar charts and curves ----------------------------------------------------------------


def test_method_bars_are_centred_on_their_target_and_the_paper_is_one_legend_entry() -> None:
    kit = {"left_kidney": {"A": 0.1, "B": 0.2, "C": 0.3}, "liver": {"A": 0.4, "B": 0.5, "C": 0.6}}
    fig = plot_method_bars(kit, {"liver": {"A": 0.7, "B": 0.8}})
    ax = fig.axes[0]
    centres = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    # bars A, A, B, B, C, C: the three bars of each target are centred on its tick
    assert np.allclose([np.mean(centres[0::2]), np.mean(centres[1::2])], [0.0, 1.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["left kidney", "liver"]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["A", "B", "C", "paper"]


def _prior_rows(placements: tuple[str, ...]) -> list[dict]:
    return [{"target": "liver", "placement": p, "method": m, "dsc": 0.5, "dsc_std": 0.1}
            for p in placements for m in ("copy_support", "central_blob")]


def test_centre_prior_colours_by_method_and_hatches_the_offset_patches() -> None:
    """Each method keeps its colour across placements; centred patches are solid, offset ones hatched."""
    for placements in (("centred", "offset"), ("offset", "centred")):
        ax = plot_centre_prior(_prior_rows(placements)).axes[0]
        bars = {t.get_text(): p for t, p in zip(ax.get_legend().get_texts(), ax.patches)}
        for method in ("copy", "blob"):
            centred, offset = (next(p for k, p in bars.items() if method in k and k.endswith(", " + pl))
                               for pl in ("centred", "offset"))
            assert np.allclose(centred.get_facecolor()[:3], offset.get_facecolor()[:3])
            assert not centred.get_hatch() and offset.get_hatch() == "//", placements
    ax = plot_centre_prior(_prior_rows(("offset",))).axes[0]
    assert all(p.get_hatch() == "//" for p in ax.patches)


def test_fit_gap_legend_names_each_kind_of_line_once() -> None:
    fig = plot_fit_gap({"kidney": 0.2}, {"a": 0.3, "b": 0.1, "c": 0.2})
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["validation tasks, each", "validation tasks, mean 0.20",
                     "training tasks, one per group (mean 0.20)"]


def _jsonl(path: Path, rows: list[dict]) -> None:
    import json
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_training_curves_of_a_short_run_and_of_a_run_with_only_validations(tmp_path: Path) -> None:
    """A run with fewer episodes than ``smooth``: the window shrinks to the run and the mean is drawn at the
    window's last episode; a run with only validations is plotted too."""
    _jsonl(tmp_path / "metrics.jsonl",
           [{"episode": e, "loss": float(e), "loss_support": 0.0, "loss_query": 0.0} for e in range(1, 5)])
    fig = plot_training_curves(tmp_path, smooth=3)
    loss = next(line for line in fig.axes[0].lines if line.get_label() == "loss")
    assert list(loss.get_xdata()) == [3, 4] and np.allclose(loss.get_ydata(), [2.0, 3.0])
    fig = plot_training_curves(tmp_path, smooth=25)
    loss = next(line for line in fig.axes[0].lines if line.get_label() == "loss")
    assert list(loss.get_xdata()) == [4] and np.allclose(loss.get_ydata(), [2.5])
    (tmp_path / "metrics.jsonl").unlink()
    _jsonl(tmp_path / "validation.jsonl", [{"episode": 10, "dice": 0.4, "wall_seconds": 60.0},
                                           {"episode": 20, "dice": 0.2, "wall_seconds": 120.0}])
    fig = plot_training_curves(tmp_path)
    assert not fig.axes[0].lines
    assert np.allclose(fig.axes[1].get_ylim(), (0, 0.5)) and np.allclose(fig.axes[2].get_ylim(), (0, 0.5))
