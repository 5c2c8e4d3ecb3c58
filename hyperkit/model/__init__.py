"""The model layer (paper §3): target U-Net, context construction (eqs. 2–5), hypernetwork (eqs. 1, 6, 7),
the gradient step on the support (§3 "Reference-based weight update", Appendix A.1).

Modules, one idea each:

- :mod:`~hyperkit.model.unet`: :class:`UNet3D` and its block :class:`ResDoubleConv`.
- :mod:`~hyperkit.model.context`: eqs. 2–5, sampling 3³ patches of a feature map.
- :mod:`~hyperkit.model.hypernet`: :class:`HyperUNet` (eqs. 1, 6, 7, H, tiling, head).
- :mod:`~hyperkit.model.functional`: per-task kernels for a batch of tasks (grouped conv).
- :mod:`~hyperkit.model.adapt`: :func:`gradient_step` and :func:`segmentation_loss`.
- :mod:`~hyperkit.model.checks`: input checks (ValueError naming the value).
- :mod:`~hyperkit.model.conv`: 3D convolution routed to the fast CPU kernels.
- :mod:`~hyperkit.model.precision`: bf16 autocast where the hardware has bf16 (``amp`` settings).
- :mod:`~hyperkit.model.modes`: :func:`eval_mode`, a module in eval mode for one block.
"""

from __future__ import annotations

from hyperkit.model.adapt import gradient_step, segmentation_loss
from hyperkit.model.hypernet import ConvTrace, HyperUNet, parameter_table, tile_filters
from hyperkit.model.unet import ResDoubleConv, UNet3D

__all__ = [
    "UNet3D",
    "ResDoubleConv",
    "HyperUNet",
    "ConvTrace",
    "tile_filters",
    "parameter_table",
    "gradient_step",
    "segmentation_loss",
]
