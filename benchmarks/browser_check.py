"""A real-browser check of the kit's widget: what nbval cannot see.

nbval compares text outputs; it never renders a widget. This script does what a student
does: JupyterLab serves a small notebook that shows ``hyperkit.widgets.slice_browser``, a
headless Chromium opens it, runs its cells, and the script asserts that

1. the widget rendered (its toggle buttons, slider and picture are on the page), and
2. it responds: clicking another view ("coronal") redraws the picture,

then saves a screenshot. It needs a Chromium binary (Debian: ``apt-get install chromium``)
and the ``playwright`` Python package (``pip install playwright``; its own browser download
is *not* needed: the system Chromium is used). Neither is a dependency of the kit.

Usage::

    python benchmarks/browser_check.py --out /tmp/browser-check     # screenshot.png there
    python benchmarks/browser_check.py --chromium /usr/bin/chromium --timeout 180

Exit status 0 when both checks pass, 1 when one fails, 2 when a requirement is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat

from hyperkit.kernels import KERNEL_ENV, ensure_kernel

NOTEBOOK_CELLS = [
    "import numpy as np\n"
    "from hyperkit.widgets import slice_browser\n"
    "x, y, z = np.meshgrid(*(np.linspace(-1, 1, 32),) * 3, indexing='ij')\n"
    "image = (np.sin(6 * x) + y + 0.5 * z).astype('float32')   # a volume with different slices in each view\n"
    "mask = ((x / 0.6) ** 2 + (y / 0.3) ** 2 + (z / 0.8) ** 2 < 1).astype('uint8')",
    "slice_browser(image, mask, title='browser check')",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(folder: Path, kernel: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    path = folder / "widget_check.ipynb"
    nbformat.write(nb, str(path))
    return path


def start_lab(folder: Path, port: int, token: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={folder}", "--ServerApp.open_browser=False",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--allow-root"]
    env = {**os.environ, **KERNEL_ENV}
    # a new session: the server and its kernels are stopped together at the end
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for_server(port: int, token: str, proc: subprocess.Popen, timeout: float) -> None:
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                json.load(r)
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer on port {port} within {timeout:.0f} s")


def check_in_browser(chromium: str, url: str, screenshot: Path, timeout_s: float) -> dict[str, bool]:
    from playwright.sync_api import sync_playwright

    ms = timeout_s * 1000
    result = {"rendered": False, "responds": False}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(ms)
        page.goto(url)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=ms)
        page.get_by_text("| Idle").first.wait_for(timeout=ms)       # the kernel is started and connected
        buttons = page.locator(".widget-toggle-buttons button")
        picture = page.locator(".jupyter-widgets .jp-OutputArea-output img").first
        try:
            for attempt in range(3):   # a request sent while the kernel connects can be lost: run again
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_text("Run All Cells", exact=True).click()
                try:
                    buttons.first.wait_for(state="visible", timeout=ms / 3)
                    break
                except Exception:
                    if attempt == 2:
                        raise
            picture.wait_for(state="visible", timeout=ms)
        except Exception:
            page.screenshot(path=str(screenshot), full_page=True)   # what the browser showed instead
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            print("widget not found; outputs on the page:", [o[:300] for o in outputs], file=sys.stderr)
            browser.close()
            return result
        result["rendered"] = bool(page.locator(".widget-slider").count()) and buttons.count() == 3
        before = picture.get_attribute("src")
        page.locator(".widget-toggle-buttons button", has_text="coronal").click()
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            now = page.locator(".jupyter-widgets .jp-OutputArea-output img").first
            if now.count() and now.get_attribute("src") not in (None, before):
                result["responds"] = True
                break
            time.sleep(0.25)
        page.wait_for_timeout(500)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/browser-check", help="folder for screenshot.png and jupyter.log")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "",
                    help="Chromium binary (default: chromium on PATH)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds for each wait (server, kernel, widget)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.chromium or not Path(args.chromium).exists():
        print("no Chromium found: install it (Debian: apt-get install chromium) or pass --chromium", file=sys.stderr)
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("the playwright package is missing: pip install playwright (no browser download needed)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="hyperkit-browser-"))
    write_notebook(folder, ensure_kernel())
    port, token = free_port(), secrets.token_hex(16)
    proc = start_lab(folder, port, token, out / "jupyter.log")
    start = time.perf_counter()
    try:
        wait_for_server(port, token, proc, args.timeout)
        url = f"http://127.0.0.1:{port}/lab/tree/widget_check.ipynb?token={token}"
        result = check_in_browser(args.chromium, url, out / "screenshot.png", args.timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)   # the server's own session: itself and its kernels
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - start
    print(f"widget rendered: {result['rendered']}; responds to a click: {result['responds']}; "
          f"screenshot: {out / 'screenshot.png'} ({seconds:.0f} s)")
    return 0 if all(result.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
