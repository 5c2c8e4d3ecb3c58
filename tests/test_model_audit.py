"""Audit of the model layer by mutation testing: the support gradient step (hyperkit/model/adapt.py), the
one-image convolution route (hyperkit/model/conv.py), the target U-Net (hyperkit/model/unet.py) and the
Jupyter kernel helpers (hyperkit/kernels.py). Each test pins a behaviour no other test checked."""

from __future__ import annotations

import copy
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperkit import kernels
from hyperkit.model.adapt import gradient_step, segmentation_loss
from hyperkit.model.conv import Conv3d, conv3d
from hyperkit.model.unet import DOWNSAMPLING, ResDoubleConv, UNet3D


# ------------------------------------------------------------------------------------------------ adapt.py
def _support(side: int = 16) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(1, 1, side, side, side, generator=g)
    return images, (images > 0.5).float()


def test_gradient_step_leaves_grad_fields_alone_and_ignores_an_outer_no_grad() -> None:
    """The docstring: ``.grad`` fields untouched; the step works (same result) inside ``torch.no_grad()``."""
    images, masks = _support()
    torch.manual_seed(0)
    a = UNet3D(base_width=8).eval()
    b = copy.deepcopy(a)
    for p in a.parameters():
        p.grad = torch.full_like(p, 7.0)
    ref = gradient_step(a, images, masks, lr=0.1)
    with torch.no_grad():
        got = gradient_step(b, images, masks, lr=0.1)
    assert got == pytest.approx(ref, rel=1e-5)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in a.parameters())
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)


def test_gradient_step_refuses_six_dimensional_input() -> None:
    images, masks = _support()
    with pytest.raises(ValueError, match=r"\(K, 1, D, H, W\)"):
        gradient_step(UNet3D(base_width=8), images[None], masks[None], lr=0.1)


def test_gradient_step_refuses_what_would_leave_nan_weights() -> None:
    """An infinite or NaN step, a NaN in the support image, or no support at all: each gave NaN weights or a
    NaN loss without a word."""
    images, masks = _support()
    net = UNet3D(base_width=8)
    for lr in (float("inf"), float("nan"), 0.0, -0.1):
        with pytest.raises(ValueError, match=rf"lr={lr} must be a finite number > 0"):
            gradient_step(net, images, masks, lr=lr)
    with pytest.raises(ValueError, match=r"at least one support, got shape \(0, 1, 16, 16, 16\)"):
        gradient_step(net, images[:0], masks[:0], lr=0.1)
    bad = images.clone()
    bad[0, 0, 0, 0, :3] = float("nan")
    with pytest.raises(ValueError, match=r"holds 3 non-finite value\(s\)"):
        gradient_step(net, bad, masks, lr=0.1)
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters())


def test_segmentation_loss_refuses_a_volume_without_batch_and_channel_axes_and_a_nan_weight() -> None:
    """A ``(D, H, W)`` pair was averaged as D one-channel images (another loss than the ``(1, 1, D, H, W)`` one)."""
    logits, masks = torch.zeros(4, 4, 4), torch.zeros(4, 4, 4)
    with pytest.raises(ValueError, match=r"must be \(N, 1, D, H, W\), got shape \(4, 4, 4\)"):
        segmentation_loss(logits, masks)
    with pytest.raises(ValueError, match="bce_weight=nan must be >= 0"):
        segmentation_loss(logits[None, None], masks[None, None], float("nan"))


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float64])
def test_segmentation_loss_takes_masks_of_any_dtype(dtype: torch.dtype) -> None:
    """Masks are cast to the logits' dtype: a bool/uint8/float64 mask gives the float mask's loss, for w = 1 too."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 4, 4, 4, generator=g)
    masks = (torch.rand(2, 1, 4, 4, 4, generator=g) < 0.4).float()
    for w in (1.0, 0.5):
        want = segmentation_loss(logits, masks, w)
        got = segmentation_loss(logits, masks.to(dtype), w)
        assert got.dtype == logits.dtype
        torch.testing.assert_close(got, want)


# ------------------------------------------------------------------------------------------------- conv.py
def _close(a: Tensor, b: Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_one_image_conv3d_with_anisotropic_stride_and_padding() -> None:
    """Per-axis stride and padding (sequences) reach oneDNN in (D, H, W) order, with and without gradients."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 9, 10, 11, generator=g, requires_grad=True)
    w = torch.randn(4, 4, 3, 3, 3, generator=g, requires_grad=True)
    stride, padding = (1, 2, 3), (0, 1, 2)
    ref = F.conv3d(x, w, None, stride, padding)
    with torch.no_grad():
        _close(conv3d(x, w, None, stride, padding), ref)
    out = conv3d(x, w, None, stride, padding)
    _close(out, ref)
    got = torch.autograd.grad(out.sum(), (x, w))
    want = torch.autograd.grad(ref.sum(), (x, w))
    for a, b in zip(got, want):
        _close(a, b)


def test_only_weight_or_bias_requiring_grad_still_gets_the_gradient() -> None:
    """A first layer: the image needs no gradient, the weight (or only the bias) does."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, 8, generator=g)
    w = torch.randn(4, 4, 3, 3, 3, generator=g)
    b = torch.randn(4, generator=g)
    for which in ("weight", "bias"):
        w_, b_ = w.clone().requires_grad_(which == "weight"), b.clone().requires_grad_(which == "bias")
        leaf = w_ if which == "weight" else b_
        got = torch.autograd.grad(conv3d(x, w_, b_, 1, 1).sin().sum(), leaf)[0]
        want = torch.autograd.grad(F.conv3d(x, w_, b_, 1, 1).sin().sum(), leaf)[0]
        _close(got, want)


def test_float64_and_unbatched_inputs_give_f_conv3ds_result_and_dtype() -> None:
    """Only fp32 5-D input is rerouted; float64 (3³ and 1³ outside autocast) and unbatched inputs are F.conv3d's."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 6, 6, generator=g, dtype=torch.float64)
    for k in (3, 1):
        w = torch.randn(2, 4, k, k, k, generator=g, dtype=torch.float64)
        out = conv3d(x, w)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, F.conv3d(x, w))
    x1 = torch.randn(1, 6, 6, 6, generator=g)  # unbatched (C = 1, D, H, W)
    w1 = torch.randn(2, 1, 3, 3, 3, generator=g)
    with torch.no_grad():
        _close(conv3d(x1, w1), F.conv3d(x1, w1))


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # torch restoring its flags on a CPU build
def test_disabled_onednn_is_respected() -> None:
    """With ``torch.backends.mkldnn`` disabled the route does not call oneDNN."""
    x, w = torch.randn(1, 4, 8, 8, 8), torch.randn(4, 4, 3, 3, 3)
    with torch.backends.mkldnn.flags(enabled=False), torch.profiler.profile() as prof, torch.no_grad():
        out = conv3d(x, w, padding=1)
    assert not any("mkldnn" in e.name for e in prof.events()), sorted({e.name for e in prof.events()})
    _close(out, F.conv3d(x, w, padding=1))


@pytest.mark.parametrize("kw", [{"padding": 1, "padding_mode": "replicate"}, {"padding": 2, "dilation": 2},
                                {"padding": "same"}, {"padding": 1, "groups": 2}])
def test_conv3d_module_matches_nn_conv3d_for_every_setting(kw: dict[str, Any]) -> None:
    """Replicate padding, dilation, string padding and groups: the one-image forward equals ``nn.Conv3d``'s."""
    torch.manual_seed(0)
    ref = nn.Conv3d(4, 4, 3, **kw)
    mod = Conv3d(4, 4, 3, **kw)
    mod.load_state_dict(ref.state_dict())
    x = torch.randn(1, 4, 8, 8, 8)
    with torch.no_grad():
        _close(mod(x), ref(x))
    _close(mod(x), ref(x))


# ------------------------------------------------------------------------------------------------- unet.py
def test_resdoubleconv_refuses_widths_that_are_not_multiples_of_8_and_unet_refuses_zero_outputs() -> None:
    with pytest.raises(ValueError, match="out_channels=12"):
        ResDoubleConv(8, 12)
    with pytest.raises(ValueError, match="out_channels=0"):
        UNet3D(base_width=8, out_channels=0)


def test_resdoubleconv_forward_is_the_documented_formula() -> None:
    """conv3³ → GN → LeakyReLU → conv3³ → GN, + shortcut, LeakyReLU; replacement convolutions are used."""
    torch.manual_seed(0)
    block = ResDoubleConv(8, 16, negative_slope=0.2).eval()
    for m in (block.norm1, block.norm2):  # non-trivial affine GroupNorm
        nn.init.normal_(m.weight)
        nn.init.normal_(m.bias)
    x = torch.randn(2, 8, 6, 6, 6)

    def act(t: Tensor) -> Tensor:
        return F.leaky_relu(t, 0.2)

    def c1(t: Tensor) -> Tensor:
        return block.conv1(t) * 2

    def c2(t: Tensor) -> Tensor:
        return block.conv2(t) - 1

    with torch.no_grad():
        for conv1, conv2 in ((block.conv1, block.conv2), (c1, c2)):
            y = act(block.norm1(conv1(x)))
            want = act(block.norm2(conv2(y)) + block.shortcut(x))
            got = block(x) if conv1 is block.conv1 else block(x, c1, c2)
            _close(got, want)


def test_negative_slope_reaches_every_block_and_the_config() -> None:
    net = UNet3D(base_width=8, negative_slope=0.3)
    slopes = {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.3} and net.config["negative_slope"] == 0.3


def test_generated_names_deepest_level_first() -> None:
    assert UNet3D.generated_names() == [
        "decoder.3.conv1.weight", "decoder.3.conv2.weight", "decoder.2.conv1.weight", "decoder.2.conv2.weight",
        "decoder.1.conv1.weight", "decoder.1.conv2.weight", "decoder.0.conv1.weight", "decoder.0.conv2.weight",
        "head.weight", "head.bias"]


def test_forward_pads_at_the_far_end_by_replication_and_crops_back() -> None:
    """Sides 20, 17, 33 are padded to 32, 32, 48 (multiples of 16) by edge replication at their far end."""
    assert DOWNSAMPLING == 16
    torch.manual_seed(0)
    net = UNet3D(base_width=8).eval()
    x = torch.randn(1, 1, 20, 17, 33)
    with torch.no_grad():
        padded = net(F.pad(x, (0, 15, 0, 15, 0, 12), mode="replicate"))
        _close(net(x), padded[..., :20, :17, :33])
        y = torch.randn(1, 1, 16, 16, 16)  # already a multiple of 16: no padding at all
        _close(net(y), net.decode(net.encode(y)))


def test_decoder_adds_every_skip_and_uses_the_replacement_head() -> None:
    torch.manual_seed(0)
    net = UNet3D(base_width=8).eval()
    with torch.no_grad():
        feats = net.encode(torch.randn(1, 1, 16, 16, 16))
        base = net.decode(feats)
        for level in range(4):
            moved = list(feats)
            moved[level] = feats[level] + 1
            assert not torch.allclose(net.decode(moved), base), level
        _close(net.decode(feats, head=lambda h: net.head(h) + 3), base + 3)


# ---------------------------------------------------------------------------------------------- kernels.py
def test_kernel_environment_sets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    key = next(iter(kernels.KERNEL_ENV))
    monkeypatch.delenv(key, raising=False)
    with kernels.kernel_environment():
        assert os.environ[key] == kernels.KERNEL_ENV[key]
    assert key not in os.environ
    monkeypatch.setenv(key, "Agg")
    with kernels.kernel_environment():
        assert os.environ[key] == kernels.KERNEL_ENV[key]
    assert os.environ[key] == "Agg"


def test_kernel_name_for_names_the_python_version() -> None:
    assert kernels.kernel_name_for() == f"hyperkit-py{sys.version_info.major}{sys.version_info.minor}"


def _fake_specs(monkeypatch: pytest.MonkeyPatch, argvs: dict[str, list[str]]) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = {name: {"resource_dir": "", "spec": {"argv": argv}} for name, argv in argvs.items()}
    monkeypatch.setattr(KernelSpecManager, "get_all_specs", lambda self: specs)


def test_find_kernel_prefers_the_kits_own_name_then_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    me, own = kernels._interpreter(), kernels.kernel_name_for()
    _fake_specs(monkeypatch, {"aaa": [me], "zzz": [me], f"{own}-0123abcd": [me], "other": ["/nowhere/python"]})
    assert kernels.find_kernel() == f"{own}-0123abcd"
    _fake_specs(monkeypatch, {"aaa": [me], f"{own}-0123abcd": [me], own: [me]})
    assert kernels.find_kernel() == own
    _fake_specs(monkeypatch, {"zzz": [me], "bbb": [me]})
    assert kernels.find_kernel() == "bbb"


def test_find_kernel_does_not_count_a_bare_interpreter_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative ``argv[0]`` is no match even when it would resolve to this interpreter from the cwd."""
    me = kernels._interpreter()
    monkeypatch.chdir(os.path.dirname(me))
    _fake_specs(monkeypatch, {"bare": [os.path.basename(me)]})
    assert kernels.find_kernel() is None


@pytest.mark.parametrize("taken", [False, True])
def test_ensure_kernel_installs_under_a_suffixed_name_when_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                  taken: bool) -> None:
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(kernels, "find_kernel", lambda: None)
    monkeypatch.setattr(ipykernel.kernelspec, "install", lambda **kw: calls.append(kw) or str(tmp_path))

    def get_kernel_spec(self: Any, name: str) -> Any:
        if taken:
            return object()
        raise NoSuchKernel(name)

    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", get_kernel_spec)
    name = kernels.kernel_name_for()
    if taken:
        name += "-" + hashlib.sha1(kernels._interpreter().encode()).hexdigest()[:8]
    assert kernels.ensure_kernel() == name
    assert len(calls) == 1 and calls[0]["user"] is True and calls[0]["kernel_name"] == name
