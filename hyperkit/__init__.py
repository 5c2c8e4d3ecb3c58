"""hyperkit: a teaching and reproducibility kit for HyperUNet.

Hagen et al., "Task-Conditioned 3D U-Nets via Hypernetworks for Data-Scarce
Medical Segmentation" (MIDL 2026, under review).

The public names are imported lazily so that ``import hyperkit`` stays fast and
the command line starts without loading torch when it does not need it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "UNet3D": "hyperkit.model.unet",
    "HyperUNet": "hyperkit.model.hypernet",
    "gradient_step": "hyperkit.model.adapt",
    "load_profile": "hyperkit.config",
    "discover_datasets": "hyperkit.data.layouts",
    "open_dataset": "hyperkit.data.layouts",
    "Task": "hyperkit.data.tasks",
    "HyperkitError": "hyperkit.errors",
    "DataError": "hyperkit.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hyperkit' has no attribute {name!r}")
