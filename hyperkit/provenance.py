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

__all__ = ["package_versions", "git_commit", "compute_environment", "run_record", "write_run_record"]

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
    """The commit of the kit's checkout (``+dirty`` when it has changes), or ``"unknown"``."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
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


def run_record(config: Mapping[str, Any] | None = None, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON-serialisable record of one run."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "seed": seed,
        "config": dict(config) if config is not None else None,
        "versions": package_versions(),
        "commit": git_commit(),
        "platform": platform.platform(),
        "compute": compute_environment(),
        **extra,
    }


def write_run_record(out_dir: str | Path, config: Mapping[str, Any] | None = None, seed: int | None = None,
                     **extra: Any) -> Path:
    """Write ``run.json`` into ``out_dir`` and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out / "run.json", json.dumps(run_record(config, seed, **extra), indent=2, default=str))
