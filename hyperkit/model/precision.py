"""Mixed precision: bf16 autocast where the hardware computes bf16 natively.

On a GPU the kit trains with bf16 autocast (``train.amp``). On a CPU, bf16 pays only where the
cores have bf16 instructions (AVX512-BF16 or AMX): there oneDNN's bf16 3³ convolution is about
twice as fast as fp32, and a Conv U-Net training step (sampling, augmentation, forward and
backward at batch 2, 48³) 1.3-1.4x (BENCHMARKS.md, "Mixed precision for the baselines").
Elsewhere bf16 would be emulated and slower than fp32, so :func:`autocast` computes in fp32
there: the same profile gives fp32 results on such a machine, and :func:`precision` says which
one ran (run records store it).

Autocast covers the forward pass; losses are computed on ``logits.float()`` and the weights
and optimiser state stay fp32 (PyTorch's autocast semantics).
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["bf16_native", "precision", "autocast"]


def bf16_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA, or a CPU with AVX512-BF16 or AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def precision(device: torch.device | str, amp: bool) -> str:
    """``"bf16"`` where :func:`autocast` would cast (``amp`` and :func:`bf16_native`), else ``"fp32"``."""
    return "bf16" if amp and bf16_native(device) else "fp32"


def autocast(device: torch.device | str, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when :func:`precision` is ``"bf16"``; otherwise a no-op context.

    Examples:
        >>> with autocast("cpu", False):
        ...     torch.ones(2, 2).mm(torch.ones(2, 2)).dtype
        torch.float32
    """
    device = torch.device(device)
    if precision(device, amp) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
