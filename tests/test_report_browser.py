"""The reproduction report in a real browser: headless Chromium renders ``report.html`` of a small
reproduce run, and every table and figure must be on the page and visible.

The small run: four tiny notebooks named as the kit's (``02``, ``05``, ``06``, ``07``) whose cells
stand in for the real ones (they match the report's cell rules, :data:`hyperkit.report.cells.CELLS`,
and draw Figures 1-3), executed by :func:`hyperkit.reproduce.run_notebooks` in real kernels, and
the result files of :func:`test_report.make_run` (the kit's formats, chosen numbers). The page is
opened as a file with no network; a copy with a measuring script appended marks every table and
picture with its rendered size and visibility, and ``--dump-dom`` returns the marked page. A
screenshot of the page is saved to ``$HYPERKIT_ARTIFACTS`` (default: the test's temporary folder).

Needs a Chromium binary (Debian: ``apt-get install chromium``; or ``$HYPERKIT_CHROMIUM``); skipped
with the reason when there is none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from test_report import make_run

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = os.environ.get("HYPERKIT_CHROMIUM") or next((p for c in CANDIDATES if (p := shutil.which(c))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set "
                                                         "HYPERKIT_CHROMIUM)")

PLOT = ("import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4, 2.5))\n"
        "ax.plot([0, 1, 2], [0.2, 0.5, 0.4], marker='o')\n")
#: notebook -> the code cells that stand in for the real ones (parameters cell added)
NOTEBOOKS: dict[str, list[str]] = {
    "02_context": [PLOT + "fig.suptitle('Figure 1 of the paper (stand-in)')\nplt.show()"],
    "05_one_shot": ["res = 'results'  # stands in for run_evaluation(checkpoint, data_root, results_csv)",
                    "print('table1_ct')", "print('table2_mri')",
                    PLOT + "fig.suptitle('figure2(hyper, bank, protocol, convs) stand-in')\nplt.show()"],
    "06_ablations": ["rows = []  # stands in for run_ablation(profile, data_root, ablation_dir)",
                     "print('ablation_tables(rows)')"],
    "07_limited_data": ["rows = []  # stands in for run_finetune(checkpoint, data_root, ft_dir)",
                        PLOT + "ax.set_title('figure3(curve(rows), refs) stand-in')\nplt.show()",
                        "five = 'run_evaluation(checkpoint, shots=5)'",
                        "maml = 'run_maml(checkpoint, data_root, maml_dir)'"],
}

#: what the page must show: tables by id, figures by id
TABLES = ("claims", "table-1", "table-2", "table-3", "table-4", "table-5", "table-6", "figure-3-data",
          "provenance-run", "provenance-notebooks")
FIGURES = ("figure-1", "figure-2", "figure-3")

MEASURE = """
<script>
window.addEventListener('load', () => {
  const seen = (el) => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    let visible = r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'
                  && parseFloat(s.opacity) > 0;
    for (let p = el.parentElement; p; p = p.parentElement) {
      const ps = getComputedStyle(p);
      if (ps.display === 'none' || ps.visibility === 'hidden' || parseFloat(ps.opacity) === 0) visible = false;
      if (p.tagName === 'DETAILS' && !p.open) visible = false;
    }
    return {w: r.width, h: r.height, left: r.left, visible: visible,
            natural: el.naturalWidth === undefined ? null : el.naturalWidth,
            complete: el.complete === undefined ? null : el.complete};
  };
  const found = {};
  document.querySelectorAll('table[id]').forEach(t => { found[t.id] = Object.assign(seen(t), {rows: t.rows.length}); });
  document.querySelectorAll('figure[id]').forEach(f => {
    const img = f.querySelector('img');
    found[f.id] = img ? Object.assign(seen(img), {src: img.getAttribute('src').slice(0, 22)}) : {missing: true};
  });
  found['verdicts'] = document.querySelectorAll('td.verdict').length;
  const pre = document.createElement('pre');
  pre.id = 'hyperkit-measure';
  pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
           "--disable-dev-shm-usage", "--disable-extensions", "--disable-background-networking",
           "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _write_notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for stem, sources in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('profile = "quick"\nout_dir = "."\ninteractive = False')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), params] + \
            [nbformat.v4.new_code_cell(s) for s in sources]
        nbformat.write(nb, folder / f"{stem}.ipynb")
    return folder


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A small reproduce run, its report, and the report as Chromium rendered it."""
    from hyperkit.kernels import ensure_kernel
    from hyperkit.reproduce import run_notebooks

    root = tmp_path_factory.mktemp("report-browser")
    out = make_run(root / "out", maml=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_DATA_DIR", str(root / "jupyter-data"))
        report = run_notebooks(_write_notebooks(root / "notebooks"), out, kernel_name=ensure_kernel(), echo=None,
                               timeout=120)
    assert report.ok and report.report == out / "report.html", report.summary()
    page = (out / "report.html").read_text()
    probe = out / "report-measured.html"  # beside the page, so relative links resolve the same
    probe.write_text(page.replace("</body>", MEASURE + "</body>"))
    dom = _chromium("--window-size=1280,1600", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'<pre id="hyperkit-measure">(.*?)</pre>', dom.stdout, re.S)
    assert match, "the measuring script did not run: " + dom.stdout[-500:]
    import html

    measured = json.loads(html.unescape(match.group(1)))
    artifacts = Path(os.environ.get("HYPERKIT_ARTIFACTS") or root)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report-browser.png"
    done = _chromium("--window-size=1280,4000", f"--screenshot={shot}", (out / "report.html").as_uri())
    print(f"screenshot of the report: {shot}")
    return SimpleNamespace(out=out, page=page, measured=measured, shot=shot, screenshot_rc=done.returncode)


@pytest.mark.parametrize("ident", TABLES)
def test_every_table_is_visible(rendered: SimpleNamespace, ident: str) -> None:
    box = rendered.measured.get(ident)
    assert box is not None, f"table #{ident} is not on the page"
    assert box["visible"] and box["w"] > 100 and box["h"] > 20 and box["left"] >= 0, box
    assert box["rows"] >= 2, box  # a header and at least one row


@pytest.mark.parametrize("ident", FIGURES)
def test_every_figure_is_visible(rendered: SimpleNamespace, ident: str) -> None:
    box = rendered.measured.get(ident)
    assert box is not None and not box.get("missing"), f"figure #{ident} has no picture"
    assert box["src"].startswith("data:image/png;base64"), box  # embedded: the page works offline
    assert box["complete"] and box["natural"] > 50, box  # the browser decoded it
    assert box["visible"] and box["w"] > 100 and box["h"] > 50, box


def test_the_verdicts_and_cell_links(rendered: SimpleNamespace) -> None:
    assert rendered.measured["verdicts"] == 7
    # every claim links a cell of the executed notebooks, and the cited cells are on the page
    for anchor in set(re.findall(r'href="#(cell-[^"]+)"', rendered.page)):
        assert f'id="{anchor}"' in rendered.page
    assert "no link" not in rendered.page.split('id="tables-1-2"')[0]
    assert 'href="notebooks/05_one_shot.ipynb"' in rendered.page
    table3 = rendered.page.split('id="table-3-section"')[1].split("</section>")[0]
    assert "MAML 5-shot, kit" in table3 and 'href="#cell-07_limited_data-' in table3  # the MAML run and its cell


def test_the_page_is_self_contained(rendered: SimpleNamespace) -> None:
    assert "<script" not in rendered.page and "<link" not in rendered.page
    assert not re.search(r'(src|href)="(https?:)?//', rendered.page)


def test_a_screenshot_is_saved(rendered: SimpleNamespace) -> None:
    assert rendered.screenshot_rc == 0 and rendered.shot.is_file() and rendered.shot.stat().st_size > 10_000
