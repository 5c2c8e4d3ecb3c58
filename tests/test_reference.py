"""The shipped reference checkpoint of the quick profile: it loads safely, matches the
profile, stays under 8 MB, and reproduces its recorded check on a mini phantom cohort."""

from __future__ import annotations

import pytest
import torch

from hyperkit.config import load_profile
from hyperkit.errors import HyperkitError
from hyperkit.training.reference import (CHECK_COHORT, load_reference, reference_check, reference_checkpoint,
                                         reference_record)

#: the check runs in float32 from half-precision weights; BLAS may differ across machines
TOLERANCE = 0.02


def test_reference_is_small_safe_and_of_the_quick_profile():
    path = reference_checkpoint("quick")
    assert path.stat().st_size <= 8 * 2 ** 20
    obj = torch.load(path, weights_only=True)
    assert all(v.dtype in (torch.float16, torch.int64, torch.bool) for v in obj["model"].values())
    model, cfg = load_reference("quick")
    quick = load_profile("quick")
    assert cfg["model"] == quick["model"] and cfg["data"] == quick["data"]
    assert not model.training
    record = reference_record("quick")
    assert record["command"].startswith("hyperkit train --profile quick")
    assert record["episodes"] > record["default_run"]["episodes"]  # trained longer than the default run
    with pytest.raises(HyperkitError, match="no reference checkpoint"):
        reference_checkpoint("paper")


def test_reference_reproduces_its_recorded_check(check_cohort):
    record = reference_record("quick")
    assert record["check"]["cohort"] == CHECK_COHORT
    root = check_cohort
    model, cfg = load_reference("quick")
    with pytest.warns(UserWarning, match="urinary_bladder@CT .present in 1 case.s., needs 2"):  # the tiny cohort
        got = reference_check(model, cfg, root)
    assert got == pytest.approx(record["check"]["dice"], abs=TOLERANCE)
    assert got > 0.1  # a trained model: the untrained one scores ~0 here


def test_the_reference_is_found_by_profile_name_only():
    """A profile given as a path-like name (a user YAML, '../reference/quick') was joined onto the package's
    reference folder and could leave it; only the built-in names are looked up."""
    for name in ("../reference/quick", "quick.yaml", "/tmp/quick"):
        with pytest.raises(HyperkitError, match="no reference checkpoint for profile"):
            reference_checkpoint(name)
