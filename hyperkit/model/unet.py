"""The target network: a compact residual 3D U-Net (paper §3 "Target Architecture", docs/design.md §2).

Four encoder stages and a bottleneck with widths ``b * (1, 2, 4, 6, 8)``, strided
3³ convolutions for down-sampling, transposed 2³ convolutions for up-sampling,
*additive* skips, and a residual double convolution (:class:`ResDoubleConv`) as
the building block. A final 1³ convolution gives one logit per voxel.

The hypernetwork generates the two 3³ kernels of every decoder block and the
1³ head (weight and bias); :meth:`UNet3D.generated_names` lists them. All other
parameters (encoder, every GroupNorm, the transposed convolutions) are shared
across tasks. A :class:`UNet3D` made by :meth:`hyperkit.HyperUNet.generate` is an
ordinary module: it can be saved with ``torch.save(unet.state_dict(), path)``,
loaded into ``UNet3D(base_width=b)`` and fine-tuned on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperkit.model.conv import Conv3d

__all__ = ["ResDoubleConv", "UNet3D", "WIDTH_FACTORS", "DOWNSAMPLING"]

#: Stage widths as multiples of the base width b: (b, 2b, 4b, 6b) and the bottleneck 8b.
WIDTH_FACTORS: tuple[int, ...] = (1, 2, 4, 6, 8)
#: Total down-sampling factor (four stride-2 stages): volume sides must be multiples of it.
DOWNSAMPLING: int = 2 ** (len(WIDTH_FACTORS) - 1)
#: Channels per GroupNorm group (reference: groups = channels // 8).
NORM_GROUP_SIZE: int = 8

Conv = Callable[[Tensor], Tensor]


class ResDoubleConv(nn.Module):
    """Residual double convolution: conv3³ → GN → LeakyReLU → conv3³ → GN, + shortcut, LeakyReLU.

    The shortcut is a bias-free 1³ convolution when ``in_channels != out_channels``
    and the identity otherwise. GroupNorm uses ``out_channels // 8`` groups.

    Args:
        in_channels: input channels.
        out_channels: output channels (a multiple of 8).
        negative_slope: LeakyReLU slope.

    Shapes:
        ``(N, in_channels, D, H, W) -> (N, out_channels, D, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.01) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels={in_channels} must be >= 1")
        if out_channels < 1 or out_channels % NORM_GROUP_SIZE:
            raise ValueError(f"out_channels={out_channels} must be a positive multiple of {NORM_GROUP_SIZE} "
                             "(GroupNorm groups)")
        groups = out_channels // NORM_GROUP_SIZE
        self.conv1 = Conv3d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.shortcut: nn.Module = (
            nn.Identity() if in_channels == out_channels else Conv3d(in_channels, out_channels, 1, bias=False)
        )
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor, conv1: Conv | None = None, conv2: Conv | None = None) -> Tensor:
        """Apply the block.

        Args:
            x: ``(N, C_in, D, H, W)``.
            conv1, conv2: optional replacements for the two 3³ convolutions. The
                hypernetwork passes functions that generate the kernel from their
                input and apply one kernel per task (see :mod:`hyperkit.model.functional`);
                a plain U-Net leaves them ``None``.
        """
        y = self.act(self.norm1((conv1 or self.conv1)(x)))
        y = self.norm2((conv2 or self.conv2)(y))
        return self.act(y + self.shortcut(x))


class UNet3D(nn.Module):
    """Compact residual 3D U-Net with additive skips (docs/design.md §2).

    Layout for base width b (``c = (b, 2b, 4b, 6b)``, bottleneck ``8b``)::

        encoder[0]  ResDoubleConv(in, c0)                 at  S
        down[i]     Conv3d(c_i, c_i, 3, stride 2)         S/2^i -> S/2^(i+1)
        encoder[i+1] ResDoubleConv(c_i, c_{i+1})           (i = 0..3; encoder[4] is the bottleneck)
        up[i]       ConvTranspose3d(c_{i+1}, c_i, 2, 2)   then + encoder[i] output (additive skip)
        decoder[i]  ResDoubleConv(c_i, c_i)               conv1/conv2 weights generated
        head        Conv3d(c0, out, 1)                    weight and bias generated

    Args:
        base_width: b, a multiple of 8 (paper profile: 32).
        in_channels: image channels (1: the kit builds one task per channel).
        out_channels: logits per voxel (1 for a binary task).
        negative_slope: LeakyReLU slope.

    Shapes:
        ``forward``: ``(N, in_channels, D, H, W) -> (N, out_channels, D, H, W)``. Any
        ``D, H, W``: sides that are not multiples of 16 are padded at their far end
        by edge replication and the logits are cropped back.

    Examples:
        >>> net = UNet3D(base_width=8)
        >>> net(torch.zeros(2, 1, 32, 32, 32)).shape
        torch.Size([2, 1, 32, 32, 32])
    """

    def __init__(
        self, base_width: int = 32, in_channels: int = 1, out_channels: int = 1, negative_slope: float = 0.01
    ) -> None:
        super().__init__()
        if base_width <= 0 or base_width % NORM_GROUP_SIZE:
            raise ValueError(f"base_width={base_width} must be a positive multiple of {NORM_GROUP_SIZE}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels={in_channels} and out_channels={out_channels} must be >= 1")
        self.config = {
            "base_width": base_width,
            "in_channels": in_channels,
            "out_channels": out_channels,
            "negative_slope": negative_slope,
        }
        c = [base_width * f for f in WIDTH_FACTORS]
        self.widths: tuple[int, ...] = tuple(c)
        self.encoder = nn.ModuleList(
            [ResDoubleConv(in_channels, c[0], negative_slope)]
            + [ResDoubleConv(c[i], c[i + 1], negative_slope) for i in range(4)]
        )
        self.down = nn.ModuleList([Conv3d(c[i], c[i], 3, stride=2, padding=1, bias=False) for i in range(4)])
        self.up = nn.ModuleList([nn.ConvTranspose3d(c[i + 1], c[i], 2, stride=2) for i in range(4)])
        self.decoder = nn.ModuleList([ResDoubleConv(c[i], c[i], negative_slope) for i in range(4)])
        self.head = Conv3d(c[0], out_channels, 1)

    @staticmethod
    def generated_names() -> list[str]:
        """State-dict names of the parameters the hypernetwork generates, deepest level first."""
        names = [f"decoder.{level}.conv{j}.weight" for level in (3, 2, 1, 0) for j in (1, 2)]
        return names + ["head.weight", "head.bias"]

    def encode(self, x: Tensor) -> list[Tensor]:
        """Run the shared encoder.

        Args:
            x: ``(N, in_channels, D, H, W)``, sides multiples of 16.

        Returns:
            Five feature maps: ``encoder[i]`` outputs ``(N, c_i, D/2^i, H/2^i, W/2^i)``
            for i = 0..3, and the bottleneck ``F_enc`` ``(N, 8b, D/16, H/16, W/16)``.
        """
        feats = [self.encoder[0](x)]
        for i in range(4):
            feats.append(self.encoder[i + 1](self.down[i](feats[-1])))
        return feats

    def decode(
        self, feats: list[Tensor], convs: Mapping[str, Conv] | None = None, head: Conv | None = None
    ) -> Tensor:
        """Run the decoder on encoder features.

        Args:
            feats: the output of :meth:`encode`.
            convs: optional replacements for decoder convolutions, keyed
                ``"decoder.{level}.conv{1|2}"`` (the hypernetwork's batched path).
            head: optional replacement for the 1³ head.

        Returns:
            Logits ``(N, out_channels, D, H, W)``.
        """
        convs = convs or {}
        h = feats[4]
        for level in (3, 2, 1, 0):
            h = self.up[level](h) + feats[level]
            h = self.decoder[level](
                h, convs.get(f"decoder.{level}.conv1"), convs.get(f"decoder.{level}.conv2")
            )
        return (head or self.head)(h)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the shared weights: what :meth:`forward` takes (the generated ones follow it)."""
        return self.encoder[0].conv1.weight.dtype

    def forward(self, x: Tensor) -> Tensor:
        """Segment a batch: ``(N, in_channels, D, H, W) -> (N, out_channels, D, H, W)`` logits."""
        if x.dim() != 5 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(
                f"UNet3D expects input (N, {self.config['in_channels']}, D, H, W), got shape {tuple(x.shape)}"
            )
        from hyperkit.model.checks import check_dtype  # here: that module imports this one

        check_dtype(x, self.dtype, "UNet3D input")
        sides = x.shape[-3:]
        pad = [(-s) % DOWNSAMPLING for s in sides]
        if any(pad):
            # F.pad lists the last axis first: (W_before, W_after, H_before, H_after, D_before, D_after)
            x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
        logits = self.decode(self.encode(x))
        return logits[..., : sides[0], : sides[1], : sides[2]]
