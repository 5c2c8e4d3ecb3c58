"""Which kernel :func:`hyperkit.model.conv.conv3d` sends a convolution to, read from torch's profiler.

The routing changes no number (``tests/test_unet.py`` compares the results with ``F.conv3d``), only
the speed (BENCHMARKS.md, "One-image convolutions through oneDNN"), so a wrong route passes every
numerical test. Here the profiled operators pin it: one image with a 3³ kernel takes oneDNN
(``mkldnn_convolution``), directly without gradients and as a batch of two with any gradient (of the
image, the weight or the bias alone), never ``slow_conv3d``; a 1³ kernel and a batch keep
``F.conv3d``'s own choice.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from hyperkit.model.conv import conv3d

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs oneDNN (mkldnn)")


def _kernels(run: Callable[[], None]) -> list[tuple[str, int]]:
    """The convolution kernels and concatenations ``run`` called: (operator, batch size of its first input)."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run()
    out: list[tuple[str, int]] = []
    for e in prof.events():
        name = e.name.removeprefix("aten::")
        if name == "cat":  # its input is a list of tensors, recorded without shapes
            out.append((name, 0))
        elif name.startswith(("mkldnn_convolution", "slow_conv3d")) and not name.endswith("slow_conv3d"):
            out.append((name, e.input_shapes[0][0]))
    return out


def _tensors(k: int, batch: int = 1, grad: str = "") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 8, 12, 12, 12, generator=g)
    w = torch.randn(8, 8, k, k, k, generator=g)
    b = torch.randn(8, generator=g)
    for name, t in zip("xwb", (x, w, b)):
        t.requires_grad_(name in grad)
    return x, w, b


def test_one_image_without_gradients_goes_straight_to_onednn() -> None:
    x, w, b = _tensors(3, grad="xwb")
    with torch.no_grad():  # tensors that require gradients, but none is recorded
        assert _kernels(lambda: conv3d(x, w, b, 1, 1)) == [("mkldnn_convolution", 1)]


@pytest.mark.parametrize("grad", ["x", "w", "b", "xwb"])
def test_one_image_with_a_gradient_takes_onednn_as_a_pair(grad: str) -> None:
    """The image's, the weight's or the bias's gradient alone is enough to pair it with a zero image."""
    x, w, b = _tensors(3, grad=grad)
    kernels = _kernels(lambda: conv3d(x, w, b, 1, 1).sum().backward())
    assert kernels == [("cat", 0), ("mkldnn_convolution", 2)]  # the backward is oneDNN's (no slow_conv3d_*)


@pytest.mark.parametrize("k, batch", [(1, 1), (3, 2)], ids=["pointwise kernel", "batch of two"])
@pytest.mark.parametrize("grad", ["", "xw"])
def test_pointwise_kernels_and_batches_are_left_to_torch(k: int, batch: int, grad: str) -> None:
    """A 1³ kernel (``slow_conv3d`` is the faster one there) and a batch take ``F.conv3d``'s own kernels."""
    x, w, b = _tensors(k, batch=batch, grad=grad)
    pad = k // 2

    def run(conv: Callable[..., torch.Tensor]) -> Callable[[], None]:
        return lambda: conv(x, w, b, 1, pad).sum().backward() if grad else conv(x, w, b, 1, pad)

    with torch.set_grad_enabled(bool(grad)):
        kit, torch_own = _kernels(run(conv3d)), _kernels(run(F.conv3d))
    assert kit == torch_own and ("cat", 0) not in kit
    assert kit[0] == (("slow_conv3d_forward", 1) if k == 1 else ("mkldnn_convolution", 2))  # as measured on 2.13
