"""Shared fixtures (keep this file small)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``$HYPERKIT_CACHE`` in a temporary folder for the whole session, for every test.

    Preprocessing caches (and anything a notebook kernel started by a test writes there:
    the subprocesses inherit the environment) never land in the user's ``~/.cache/hyperkit``.
    """
    path = tmp_path_factory.mktemp("hyperkit-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYPERKIT_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def notebook_out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``out_dir`` every notebook test shares, as in one ``hyperkit reproduce`` run.

    Phantoms or a trained run made by one notebook are found by the next, so
    they are generated once per test session.
    """
    return tmp_path_factory.mktemp("reproduce-out")


@pytest.fixture(scope="session")
def check_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference checkpoint's check cohort (``CHECK_COHORT``), generated once per session for the tests that
    score a model on it (read only)."""
    from hyperkit.phantoms import ensure_phantoms
    from hyperkit.training.reference import CHECK_COHORT

    return ensure_phantoms(tmp_path_factory.mktemp("check-cohort") / "phantoms", **CHECK_COHORT)


@pytest.fixture()
def jupyter_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``$JUPYTER_DATA_DIR``: kernelspecs installed by a test stay in ``tmp_path``."""
    path = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(path))
    return path
