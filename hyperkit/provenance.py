"""What every run records beside its outputs: config, seed, versions, commit."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from hyperkit.files import write_text_atomic

__all__ = ["SESSION_KEYS", "package_versions", "git_commit", "compute_environment", "earlier_sessions", "run_record",
           "write_run_record"]

_PACKAGES = ("hyperkit", "torch", "monai", "numpy", "nibabel", "scipy", "SimpleITK", "papermill", "nbval")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(path: str | Path | None = None) -> str:
    """The commit of the kit's checkout, or ``"unknown"``.

    ``+dirty`` is appended when a tracked file has changes or an untracked, not ignored ``*.py`` file lies
    under ``path`` (default: the installed package's folder), i.e. code the run may have imported; other
    untracked files (notes, outputs) do not count."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                 capture_output=True, text=True, timeout=10)
        # a new, unversioned module under the kit's folder is code the run may have imported
        added = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--", "*.py"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if changed.stdout.strip() or added.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model() -> str:
    """The processor's model name (Linux ``/proc/cpuinfo``), else ``platform.processor()`` or ``"unknown"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compute_environment() -> dict[str, Any]:
    """What, beside seed, code and versions, decides a run's floating-point results and its speed:
    the processor, its cores and memory, torch's thread count, the thread variables of the
    environment and the GPU in use. A training repeats bit for bit only with the same thread count
    (BENCHMARKS.md, "Same seed, same machine")."""
    import os

    import torch

    try:
        memory: str | None = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.1f} GiB"
    except (AttributeError, ValueError, OSError):
        memory = None
    return {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "memory": memory,
            "torch_threads": torch.get_num_threads(),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
                    if k in os.environ},
            # only a CUDA context the run already made: naming a device must not start one on GPU 0
            "cuda": (torch.cuda.get_device_name(torch.cuda.current_device())
                     if torch.cuda.is_available() and torch.cuda.is_initialized() else None)}


#: what one session of a run records about itself; a resumed run keeps its earlier sessions' (:func:`earlier_sessions`)
SESSION_KEYS = ("created", "command", "commit", "versions", "platform", "compute")


def earlier_sessions(record: str | Path | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The sessions before this one of a run that is resumed, from the record it left (its path, or the record
    already read).

    A resumed run writes its record again, with this session's commit, versions and machine; what the
    earlier sessions ran with stays under ``earlier_sessions`` (oldest first), so a run made partly on
    other code or another machine says so. ``[]`` when there is no readable record (a new run).
    """
    old: Any = record
    if not isinstance(record, Mapping):
        try:
            old = json.loads(Path(record).read_text())
        except (OSError, ValueError):
            return []
    if not isinstance(old, Mapping):
        return []
    before = old.get("earlier_sessions")
    return [*(before if isinstance(before, list) else []), {k: old.get(k) for k in SESSION_KEYS}]


def run_record(config: Mapping[str, Any] | None = None, seed: int | None = None, *,
               earlier: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON-serialisable record of one run; ``earlier``: :func:`earlier_sessions` of a resumed run
    (stored under ``earlier_sessions`` when not empty)."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "seed": seed,
        "config": dict(config) if config is not None else None,
        "versions": package_versions(),
        "commit": git_commit(),
        "platform": platform.platform(),
        "compute": compute_environment(),
        **({"earlier_sessions": list(earlier)} if earlier else {}),
        **extra,
    }


def write_run_record(out_dir: str | Path, config: Mapping[str, Any] | None = None, seed: int | None = None,
                     *, resumed: bool = False, earlier: list[dict[str, Any]] | None = None, **extra: Any) -> Path:
    """Write ``run.json`` into ``out_dir`` and return its path; ``resumed``: keep the sessions of the record
    already there (:func:`earlier_sessions`), or ``earlier``, those sessions already read."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if resumed and earlier is None:
        earlier = earlier_sessions(out / "run.json")
    return write_text_atomic(out / "run.json", json.dumps(run_record(config, seed, earlier=earlier, **extra),
                                                          indent=2, default=str))
