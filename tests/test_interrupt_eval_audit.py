"""``hyperkit evaluate --resume`` on a results CSV whose record (``.json``) is gone.

The protocol a resume must share with the rows it keeps is read from the record beside the CSV; with no record
the check was skipped and every complete (task, method) pair of the CSV was kept as this run's: rows made with
another seed, checkpoint or protocol, silently mixed into one table under a new record. A CSV lies without its
record when a run with ``--baselines-from`` is killed between writing the copied rows and its record, or when the
record was moved or deleted. Such a CSV is refused now, named, before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hyperkit.errors import HyperkitError
from test_run_audit import _ev, fake, setup  # noqa: F401 -- fixtures: small data and a stand-in evaluate


def test_results_beside_no_record_are_refused_not_resumed_as_this_runs(setup: Any, fake: Any,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    _ev(setup, out, seed=1)
    out.with_suffix(".json").unlink()
    out.with_suffix(".md").unlink()
    before = out.read_bytes()
    for how in ({"resume": True}, {"reuse": True}):
        with pytest.raises(HyperkitError, match=r"r\.csv: holds results beside no evaluation record \(r\.json\)"):
            _ev(setup, out, seed=0, **how)
    assert out.read_bytes() == before and not out.with_suffix(".json").exists()  # nothing written
    with pytest.raises(HyperkitError, match="exists; pass --resume"):  # without --resume: as before
        _ev(setup, out, seed=0)
