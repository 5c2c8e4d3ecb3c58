"""Shared fixtures (notebook-related ones first; keep this file small)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def notebook_out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``out_dir`` every notebook test shares, as in one ``hyperkit reproduce`` run.

    Phantoms or a trained run made by one notebook are found by the next, so
    they are generated once per test session.
    """
    return tmp_path_factory.mktemp("reproduce-out")


@pytest.fixture()
def jupyter_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``$JUPYTER_DATA_DIR``: kernelspecs installed by a test stay in ``tmp_path``."""
    path = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(path))
    return path
