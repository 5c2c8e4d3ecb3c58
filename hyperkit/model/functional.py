"""One kernel per task, many tasks in one call: the batched path of the hypernetwork.

During training the hypernetwork generates a different decoder for each of B
tasks of an episode. Instead of instantiating B modules, the decoder runs once
on all images of the episode, laid out *sample-major*::

    x: (n · B, C, D, H, W)   image j of task t is row j · B + t

Shared layers (GroupNorm, transposed convolutions, the encoder) see an ordinary
batch of ``n · B`` images. A generated convolution views the same memory as
``(n, B · C, D, H, W)`` and applies a grouped convolution with ``groups = B``:
group t holds task t's channels and task t's kernel. No copy, no loop over tasks.
"""

from __future__ import annotations

from torch import Tensor

from hyperkit.model.conv import conv3d

__all__ = ["task_conv3d"]


def task_conv3d(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Convolve every task's images with that task's own kernel.

    Args:
        x: ``(n · B, C_in, D, H, W)``, sample-major (row ``j · B + t`` belongs to task t).
        weight: ``(B, C_out, C_in, k, k, k)``, one kernel per task; odd k, "same" padding.
        bias: optional ``(B, C_out)``.

    Returns:
        ``(n · B, C_out, D, H, W)`` in the same layout.

    Examples:
        >>> x = torch.randn(2 * 3, 4, 8, 8, 8)        # n = 2 images of B = 3 tasks
        >>> w = torch.randn(3, 5, 4, 3, 3, 3)
        >>> task_conv3d(x, w).shape
        torch.Size([6, 5, 8, 8, 8])
    """
    bsz, c_out, c_in, k = weight.shape[:4]
    if x.shape[0] % bsz or x.shape[1] != c_in:
        raise ValueError(f"x of shape {tuple(x.shape)} does not fit kernels of shape {tuple(weight.shape)}")
    n = x.shape[0] // bsz
    y = conv3d(
        x.reshape(n, bsz * c_in, *x.shape[2:]),
        weight.reshape(bsz * c_out, c_in, *weight.shape[3:]),
        None if bias is None else bias.reshape(bsz * c_out),
        padding=k // 2,
        groups=bsz,
    )
    return y.reshape(n * bsz, c_out, *y.shape[2:])
