"""3D convolution of one image on a CPU at oneDNN speed.

PyTorch's CPU dispatcher sends a 3D convolution with one image, ``groups == 1``, a kernel of
at most 3 and ``N · C · D · H <= 20480`` (its heuristic multiplies only the first four sizes) to
its reference kernel, ``slow_conv3d``, and picks the same path for the backward. For the
kit's U-Nets (8-16 channels at 48³/24³) that is every 3³ convolution of a one-shot support,
a single query or a one-task validation: 3.8-15x slower forward per image than oneDNN (2.7x
forward + backward), measured on the development machine (BENCHMARKS.md, "One-image convolutions
through oneDNN").

:func:`conv3d` is ``F.conv3d`` with those cases routed to oneDNN: without gradients, straight
through ``torch.mkldnn_convolution``; with gradients, with a zero image appended so that the
batch of two takes oneDNN forward and backward (the zero image's output is dropped; it adds
nothing to the weight's gradient). Other inputs (CUDA, batches, 1³ kernels, where the
reference kernel is the faster one) go to ``F.conv3d`` unchanged. Results equal ``F.conv3d``'s
up to floating-point rounding (tests/test_unet.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["conv3d", "Conv3d"]


def _triple(v: int | Sequence[int]) -> list[int]:
    return [v] * 3 if isinstance(v, int) else list(v)


def _one_image_on_cpu(x: Tensor, weight: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 5 and x.shape[0] == 1
            and weight.shape[-1] > 1 and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def _pointwise_under_cpu_autocast(x: Tensor, weight: Tensor) -> bool:
    return x.device.type == "cpu" and weight.shape[-3:] == (1, 1, 1) and torch.is_autocast_enabled("cpu")


def conv3d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | Sequence[int] = 1,
           padding: int | Sequence[int] = 0, groups: int = 1) -> Tensor:
    """``F.conv3d(x, weight, bias, stride, padding, groups=groups)`` (dilation 1, zero padding).

    Under CPU autocast a 1³ convolution computes in fp32 (oneDNN's bf16 1³ convolution with 1-8
    channels at 48³ took 5-8x the fp32 kernel's time on the development machine, BENCHMARKS.md; the output is
    then fp32, which the next autocast operation casts as it needs).

    Args:
        x: ``(N, C_in, D, H, W)``.
        weight: ``(C_out, C_in / groups, k, k, k)``.
        bias: optional ``(C_out,)``.

    Returns:
        ``(N, C_out, D', H', W')``; a one-image CPU input takes oneDNN (see the module).
    """
    if _pointwise_under_cpu_autocast(x, weight):
        with torch.autocast("cpu", enabled=False):
            return F.conv3d(x.float(), weight.float(), None if bias is None else bias.float(), stride, padding, 1,
                            groups)
    if not _one_image_on_cpu(x, weight):
        return F.conv3d(x, weight, bias, stride, padding, 1, groups)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                              or (bias is not None and bias.requires_grad))
    if not needs_grad:
        return torch.mkldnn_convolution(x.contiguous(), weight.contiguous(), bias, _triple(padding),
                                        _triple(stride), [1, 1, 1], groups)
    pair = torch.cat([x, x.new_zeros(x.shape)])
    return F.conv3d(pair, weight, bias, stride, padding, 1, groups)[:1]


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` whose one-image CPU forward takes oneDNN (:func:`conv3d`); same parameters and shapes,
    ``(N, C_in, D, H, W) -> (N, C_out, D', H', W')``.

    Only zero padding and dilation 1 are rerouted; anything else runs as ``nn.Conv3d``.
    """

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self.padding_mode != "zeros" or self.dilation != (1, 1, 1) or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        return conv3d(input, weight, bias, self.stride, self.padding, self.groups)
