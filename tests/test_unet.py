"""The target U-Net (docs/design.md §2): shapes, layout, generated names, padding, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hyperkit import UNet3D
from hyperkit.model.conv import conv3d
from hyperkit.model.unet import ResDoubleConv

# (kwargs, input shape, expected output shape)
SHAPE_CASES = [
    ({"base_width": 8}, (1, 1, 16, 16, 16), (1, 1, 16, 16, 16)),
    ({"base_width": 8}, (2, 1, 32, 16, 48), (2, 1, 32, 16, 48)),
    ({"base_width": 16}, (1, 1, 32, 32, 32), (1, 1, 32, 32, 32)),
    ({"base_width": 8, "in_channels": 2, "out_channels": 3}, (1, 2, 16, 32, 16), (1, 3, 16, 32, 16)),
    ({"base_width": 8}, (1, 1, 20, 17, 33), (1, 1, 20, 17, 33)),  # padded to 32, 32, 48 and cropped back
]


@pytest.mark.parametrize("kwargs, in_shape, out_shape", SHAPE_CASES)
def test_output_shape(kwargs, in_shape, out_shape):
    net = UNet3D(**kwargs).eval()
    with torch.no_grad():
        assert net(torch.randn(in_shape)).shape == out_shape


@pytest.mark.parametrize("b", [8, 16, 32])
def test_widths_and_generated_parameters(b):
    net = UNet3D(base_width=b)
    assert net.widths == (b, 2 * b, 4 * b, 6 * b, 8 * b)
    params = dict(net.named_parameters())
    names = UNet3D.generated_names()
    assert len(names) == 10
    for level in range(4):
        c = net.widths[level]
        for j in (1, 2):
            assert params[f"decoder.{level}.conv{j}.weight"].shape == (c, c, 3, 3, 3)
        assert isinstance(net.decoder[level].shortcut, torch.nn.Identity)  # c -> c: identity shortcut
    assert params["head.weight"].shape == (1, b, 1, 1, 1) and params["head.bias"].shape == (1,)
    assert set(names) <= set(params)


def test_paper_width_parameter_count():
    """b = 32 gives 11.1 M parameters (docs/design.md §2: ~11 M; the paper quotes ~5.7 M)."""
    net = UNet3D(base_width=32)
    assert sum(p.numel() for p in net.parameters()) == 11_101_761


def test_skips_are_added_and_groupnorm_groups():
    net = UNet3D(base_width=16)
    feats = net.encode(torch.randn(1, 1, 32, 32, 32))
    assert [f.shape[1] for f in feats] == [16, 32, 64, 96, 128]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    assert net.decoder[3].norm1.num_groups == 96 // 8
    # additive skip: the decoder block sees c_i channels, not 2 c_i
    assert net.decoder[0].conv1.in_channels == 16


@pytest.mark.parametrize("args, match", [((1, 0), "out_channels=0 must be a positive multiple of 8"),
                                         ((1, -8), "out_channels=-8"), ((0, 8), "in_channels=0 must be >= 1")])
def test_resdoubleconv_refuses_sizes_naming_them(args, match):
    """(1, 0) raised a ZeroDivisionError, (1, -8) a torch error, (0, 8) was accepted."""
    with pytest.raises(ValueError, match=match):
        ResDoubleConv(*args)


def test_resdoubleconv_shortcut_and_replacement_convs():
    block = ResDoubleConv(8, 16)
    assert isinstance(block.shortcut, torch.nn.Conv3d) and block.shortcut.kernel_size == (1, 1, 1)
    x = torch.randn(2, 8, 8, 8, 8)
    # passing the block's own convolutions as replacements changes nothing; another block's are used
    assert torch.equal(block(x), block(x, block.conv1, block.conv2))
    other = ResDoubleConv(8, 16)
    assert not torch.equal(block(x), block(x, other.conv1, block.conv2))
    assert not torch.equal(block(x), block(x, block.conv1, other.conv2))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"base_width": 12}, "base_width=12"), ({"base_width": 0}, "base_width=0"), ({"in_channels": 0}, "in_channels=0")],
)
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet3D(**kwargs)


@pytest.mark.parametrize("shape", [(1, 16, 16, 16), (1, 2, 16, 16, 16)])
def test_bad_input(shape):
    with pytest.raises(ValueError, match="expects input"):
        UNet3D(base_width=8)(torch.zeros(shape))


@pytest.mark.parametrize("dtype", [torch.float64, torch.int16, torch.uint8])
def test_input_of_another_dtype_is_refused_naming_both(dtype):
    """A NumPy float64 volume (``torch.from_numpy``) or an integer scan failed deep in a convolution."""
    net = UNet3D(base_width=8)
    with pytest.raises(ValueError, match=rf"input dtype {dtype} differs from the model's torch.float32"):
        net(torch.zeros(1, 1, 16, 16, 16, dtype=dtype))


@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 1), (1, 2)])
def test_one_image_conv3d_equals_pytorch_forward_and_backward(stride: int, groups: int) -> None:
    """The oneDNN route of a one-image CPU convolution gives F.conv3d's numbers and gradients."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 20, 20, 20, generator=g, requires_grad=True)
    w = torch.randn(8, 8 // groups, 3, 3, 3, generator=g, requires_grad=True)
    b = torch.randn(8, generator=g, requires_grad=True)
    ref = F.conv3d(x, w, b, stride, 1, 1, groups)
    with torch.no_grad():
        fast = conv3d(x, w, b, stride, 1, groups)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-4)
    out = conv3d(x, w, b, stride, 1, groups)
    assert out.shape == ref.shape
    grads = torch.autograd.grad((out * ref.detach().sin()).sum(), (x, w, b))
    ref_grads = torch.autograd.grad((ref * ref.detach().sin()).sum(), (x, w, b))
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


def test_unet_segments_one_image_as_it_does_in_a_batch() -> None:
    """UNet3D on one image (oneDNN route) equals the same image inside a batch of two."""
    torch.manual_seed(0)
    net = UNet3D(base_width=8).eval()
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x[:1]), net(x)[:1], rtol=1e-4, atol=1e-4)


def test_one_image_conv3d_avoids_pytorchs_reference_kernel() -> None:
    """The point of the route: no slow_conv3d for one image, forward or backward."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    x = torch.randn(1, 8, 16, 16, 16, requires_grad=True)
    w = torch.randn(8, 8, 3, 3, 3, requires_grad=True)
    with torch.profiler.profile() as prof:
        with torch.no_grad():
            conv3d(x, w, padding=1)
        conv3d(x, w, padding=1).sum().backward()
    ops = {e.name for e in prof.events()}
    assert not any("slow_conv3d" in op for op in ops), sorted(op for op in ops if "conv" in op)
    with torch.profiler.profile() as prof:  # the reference kernel PyTorch picks by itself
        F.conv3d(x, w, padding=1).sum().backward()
    assert any("slow_conv3d" in e.name for e in prof.events())


def test_pointwise_conv_computes_in_fp32_under_cpu_autocast() -> None:
    """oneDNN's bf16 1³ convolution is slow on a CPU: under autocast the route keeps 1³ in fp32
    (same numbers as without autocast) while 3³ convolutions still cast to bf16."""
    torch.manual_seed(0)
    x, w1, b1, w3 = torch.randn(2, 8, 8, 8, 8), torch.randn(1, 8, 1, 1, 1), torch.randn(1), torch.randn(8, 8, 3, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y1 = conv3d(x, w1, b1)
        y3 = conv3d(x, w3, padding=1)
    assert y1.dtype == torch.float32 and y3.dtype == torch.bfloat16
    torch.testing.assert_close(y1, F.conv3d(x, w1, b1))
    y1_plain = conv3d(x, w1, b1)  # and outside autocast nothing changes
    assert torch.equal(y1_plain, F.conv3d(x, w1, b1))
