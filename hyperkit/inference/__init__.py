"""Inference: a standalone U-Net file from one labelled scan, and segmentation of new scans.

``hyperkit generate`` (:func:`generate_model`) and ``hyperkit segment`` (:func:`segment_file`);
in Python, ``hyperkit.inference.segment(model, image, roi="auto")`` (:func:`segment_scan`)
segments a whole scan where the model's support says the target lies
(:mod:`hyperkit.inference.localise`).
The names below are imported on first use, so that building the command-line parser
(which imports :mod:`hyperkit.inference.cli`) does not import MONAI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["MODEL_KIND", "save_unet", "load_unet", "InputGrid", "prepare_volume", "support_patch",
           "default_checkpoint", "generate_model", "to_input_grid", "segment_file", "segment_scan", "Segmentation",
           "segment"]

_WHERE = {"MODEL_KIND": "model_file", "save_unet": "model_file", "load_unet": "model_file",
          **{name: "segment" for name in __all__[3:-1]}}

if TYPE_CHECKING:  # pragma: no cover
    from hyperkit.inference.model_file import MODEL_KIND, load_unet, save_unet
    from hyperkit.inference.segment import (InputGrid, Segmentation, default_checkpoint, generate_model,
                                            prepare_volume, segment_file, segment_scan, support_patch, to_input_grid)
    from hyperkit.inference.segment import segment_scan as segment


def __getattr__(name: str) -> Any:
    if name == "segment":  # the module, callable as segment_scan (importing it binds this name anyway)
        return importlib.import_module("hyperkit.inference.segment")
    if name in _WHERE:
        return getattr(importlib.import_module(f"hyperkit.inference.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hyperkit.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
