"""The reference checkpoint of the quick profile, shipped with the kit.

A hypernetwork trained longer than the 15-minute default (its run record says how long
and with which command), stored as a half-precision kit checkpoint (``hyperkit/reference/
quick.pt``, under 8 MB) beside a JSON record. It is an ordinary checkpoint: every command
that takes ``--checkpoint`` reads it (``torch.load(weights_only=True)``), and
``hyperkit generate``, notebooks 02-03 and the widget fall back to it when the user has
no run of their own, so that students see trained features and kernels at once.

The record holds a small, fast check: the one-shot validation Dice of the model on the
validation tasks of a mini phantom cohort (:data:`CHECK_COHORT`), which a test
recomputes (:func:`reference_check`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from hyperkit.errors import HyperkitError
from hyperkit.files import save_atomic, write_text_atomic
from hyperkit.training.checkpoint import CHECKPOINT_KIND, load_checkpoint, load_hypernet

__all__ = ["REFERENCE_DIR", "CHECK_COHORT", "reference_checkpoint", "reference_record", "load_reference",
           "trained_or_reference",
           "export_reference", "reference_check"]

#: where the reference checkpoints live inside the package
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
#: the mini phantom cohort of the recorded check: subjects 8 (val) and 9 (test) serve the
#: validation tasks with 2 cases each; every case is once the support of the other
CHECK_COHORT: dict[str, Any] = {"subjects": 10, "cases": 2, "seed": 0}


def reference_checkpoint(profile: str = "quick") -> Path:
    """Path of the shipped reference checkpoint of ``profile``.

    Raises:
        HyperkitError: the kit ships none for this profile.
    """
    from hyperkit.config import PROFILES

    path = REFERENCE_DIR / f"{profile}.pt"
    if profile not in PROFILES or not path.is_file():  # a name, never a path out of the package
        raise HyperkitError(f"no reference checkpoint for profile {profile!r} (only 'quick' ships one); "
                            "train one with `hyperkit train` and pass --checkpoint")
    return path


def reference_record(profile: str = "quick") -> dict[str, Any]:
    """The JSON record beside the reference checkpoint (run, command, recorded check)."""
    return json.loads(reference_checkpoint(profile).with_suffix(".json").read_text())


def load_reference(profile: str = "quick", map_location: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The reference hypernetwork (float32, eval mode) and its resolved config."""
    return load_hypernet(reference_checkpoint(profile), map_location=map_location)


@torch.no_grad()
def reference_check(model: Any, cfg: dict[str, Any], data_root: str | Path) -> float:
    """Mean one-shot Dice on the validation tasks of the mini cohort at ``data_root``
    (every case once the support, scored on the others; eval-mode generation)."""
    from hyperkit.data.layouts import discover_datasets
    from hyperkit.data.bank import TaskBank
    from hyperkit.training.loop import one_shot_validation

    bank = TaskBank.from_datasets(discover_datasets(data_root), "val", cfg, case_splits=cfg["train"]["val_splits"],
                                  root=data_root)
    n = max(len(v) for v in bank.case_ids.values())
    return one_shot_validation(model, bank, n - 1, torch.device("cpu"), n_supports=n)["dice"]


def export_reference(run_dir: str | Path, out: str | Path, record: dict[str, Any]) -> Path:
    """Write a run's ``best.pt`` as a half-precision checkpoint ``out`` plus ``out.json``.

    Args:
        run_dir: a finished training run.
        out: the ``.pt`` to write (e.g. ``hyperkit/reference/quick.pt``).
        record: what to store beside it (command, training facts, the check's Dice).
    """
    ck = load_checkpoint(Path(run_dir) / "best.pt")  # refuses a file that is not a hypernetwork checkpoint
    half = {k: v.half() if torch.is_floating_point(v) else v for k, v in ck["model"].items()}
    out = Path(out)
    save_atomic({"kind": CHECKPOINT_KIND, "model": half, "state": ck["state"], "config": ck["config"]}, out)
    write_text_atomic(out.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    return out


def trained_or_reference(run_dir: str | Path, profile: str = "quick") -> tuple[Any, dict[str, Any], str]:
    """The user's own trained hypernetwork (``run_dir/best.pt``) if there is one, else the reference.

    Returns:
        ``(model in eval mode, its resolved config, a short text saying which it is)``.
    """
    own = Path(run_dir) / "best.pt"
    if own.is_file():
        model, cfg = load_hypernet(own)
        return model, cfg, f"your run's best.pt ({Path(run_dir).name})"
    model, cfg = load_reference(profile)
    return model, cfg, f"the kit's reference checkpoint of the {profile} profile"
