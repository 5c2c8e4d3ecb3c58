"""Context construction for one generated convolution (paper §3, eqs. 2–5 and Figure 1).

To generate the kernel of a decoder convolution whose input feature map ``F_in``
has ``c`` channels, the hypernetwork reads a *context*: small 3³ patches of
``F_in`` around voxels of the support, labelled by the support mask.

1. ``y_down = Downsample(y)`` (eq. 2): the support mask at the resolution of
   ``F_in`` (:func:`downsample_mask`).
2. Each voxel of ``y_down`` gets a kind (:data:`SLOT_KINDS`): foreground interior,
   foreground boundary, background interior, background boundary. A voxel is on
   the boundary when its 3³ neighbourhood — the patch centred on it — holds both
   classes (:func:`voxel_kinds`).
3. The channels are split into ``G = c / C_base`` groups (eq. 3), and this is
   repeated with ``G`` fixed channel permutations ``π_r`` (``π_0`` is the identity):
   pair ``(r, i)`` reads channels ``π_r[i·C_base:(i+1)·C_base]`` (:func:`channel_groups`).
4. For every repetition ``r``, ``N`` patch centres are drawn (eq. 4), half
   foreground and half background, a share ``b`` of each from boundary voxels, in
   the fixed slot order of :func:`slot_kinds`; the ``G`` groups of a repetition
   share its centres (our reading of Figure 1: sample on the permuted map, then
   split it into groups).
5. ``z_ctx(r, i)`` is the flattened ``(N, C_base, 3, 3, 3)`` stack of patches
   (eq. 5): length ``C_base · 27 · N``.

Everything is vectorised over tasks, samplings, repetitions and patches (no
Python loop over them). Randomness comes only from the ``torch.Generator`` passed
in; the uniform numbers are drawn on the generator's device (the CPU by default)
and then moved, so one seed gives the same patches on every device.

Shapes use B tasks, K supports per task, S independent samplings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SLOT_KINDS",
    "ContextSample",
    "CandidateVoxels",
    "downsample_mask",
    "voxel_kinds",
    "slot_kinds",
    "channel_permutations",
    "channel_groups",
    "gather_patches",
    "build_context",
]

#: Patch kinds in their fixed order inside a context vector (paper: positive →
#: positive-boundary → negative → negative-boundary).
SLOT_KINDS: tuple[str, ...] = ("fg", "fg-boundary", "bg", "bg-boundary")

# offsets of the 27 voxels of a 3^3 patch, in the order of a flattened (3, 3, 3) kernel
_OFFSETS = torch.stack(
    torch.meshgrid(*(torch.arange(-1, 2),) * 3, indexing="ij"), dim=-1
).reshape(27, 3)


def downsample_mask(mask: Tensor, size: tuple[int, int, int] | torch.Size) -> Tensor:
    """Eq. 2: the binary support mask at the resolution of a feature map.

    Adaptive max-pooling keeps every cell that holds foreground; when the factor
    is larger than 2 the mask is first dilated by one voxel (3³ max-pool) so that
    thin structures survive (as in the authors' reference).

    Args:
        mask: ``(..., D, H, W)`` binary (any float or integer type).
        size: target ``(d, h, w)``.

    Returns:
        ``(..., d, h, w)`` float tensor of 0/1.
    """
    size = tuple(int(s) for s in size)
    lead = mask.shape[:-3]
    m = mask.reshape(-1, 1, *mask.shape[-3:]).float()
    if tuple(m.shape[-3:]) != size:
        factor = max(a / b for a, b in zip(m.shape[-3:], size))
        if factor > 2:
            m = F.max_pool3d(m, 3, stride=1, padding=1)
        m = F.adaptive_max_pool3d(m, size)
    return m.reshape(*lead, *size)


def voxel_kinds(mask_down: Tensor) -> Tensor:
    """Label every voxel with its kind: 0 fg, 1 fg-boundary, 2 bg, 3 bg-boundary.

    A voxel is a boundary voxel when the 3³ patch centred on it contains both
    classes; voxels outside the volume do not count as either class.

    Args:
        mask_down: ``(..., d, h, w)`` binary.

    Returns:
        ``(..., d, h, w)`` int64 kinds (indices into :data:`SLOT_KINDS`).
    """
    m = mask_down.reshape(-1, 1, *mask_down.shape[-3:]).float()
    has_fg = F.max_pool3d(m, 3, stride=1, padding=1) > 0  # patch contains foreground
    has_bg = F.max_pool3d(1 - m, 3, stride=1, padding=1) > 0  # patch contains background
    fg = m > 0
    kinds = torch.where(fg, has_bg.long(), 2 + has_fg.long())
    return kinds.reshape(mask_down.shape)


def slot_kinds(n_patches: int, boundary_share: float) -> Tensor:
    """Kinds of the ``N`` patch slots of a context vector, in their fixed order.

    Half the slots are foreground and half background; ``round(boundary_share · N/2)``
    of each half are boundary patches.

    Args:
        n_patches: N, even and >= 2.
        boundary_share: the fraction b in [0, 1].

    Returns:
        ``(N,)`` int64, non-decreasing: fg, fg-boundary, bg, bg-boundary.
    """
    if n_patches < 2 or n_patches % 2:
        raise ValueError(f"n_patches={n_patches} must be an even number >= 2 (half fg, half bg)")
    if not 0.0 <= boundary_share <= 1.0:
        raise ValueError(f"boundary_share={boundary_share} must lie in [0, 1]")
    half = n_patches // 2
    n_boundary = int(round(boundary_share * half))
    counts = torch.tensor([half - n_boundary, n_boundary, half - n_boundary, n_boundary])
    return torch.repeat_interleave(torch.arange(4), counts)


def channel_permutations(channels: int, c_base: int, generator: torch.Generator) -> Tensor:
    """The G fixed channel permutations of one convolution (``π_0`` = identity).

    Args:
        channels: c, a multiple of ``c_base``.
        c_base: channels per group.
        generator: source of the permutations (fixed when the model is built).

    Returns:
        ``(G, c)`` int64, ``G = c // c_base``.
    """
    if c_base < 1 or channels < 1:
        raise ValueError(f"channels={channels} and c_base={c_base} must both be >= 1")
    if channels % c_base:
        raise ValueError(f"channels={channels} is not a multiple of c_base={c_base}")
    groups = channels // c_base
    perms = [torch.arange(channels)] + [torch.randperm(channels, generator=generator) for _ in range(groups - 1)]
    return torch.stack(perms)


def channel_groups(perms: Tensor, c_base: int) -> Tensor:
    """Input channels of every base filter ``(r, i)`` (eq. 3 repeated G times).

    Args:
        perms: ``(G, c)`` permutations from :func:`channel_permutations`.
        c_base: channels per group.

    Returns:
        ``(G, G, c_base)``: entry ``[r, i]`` is ``π_r[i·c_base:(i+1)·c_base]``.
    """
    g, c = perms.shape
    return perms.reshape(g, c // c_base, c_base)


@dataclass
class CandidateVoxels:
    """The voxels each slot kind may draw from, for B tasks with K supports each.

    Built once per decoder level from the down-sampled masks; sampling is then one
    ``searchsorted`` in running counts (no loop, no sort). When a task has no voxel
    of a kind, its slots fall back to the other kind of the same class, and if the
    class is absent at this resolution, to any voxel.

    Attributes:
        kinds: ``(B, K, d, h, w)`` voxel kinds.
        cumsum: ``(B, 4·(M+1))`` with ``M = K·h·w·d``: for slot kind q, the running
            count of its candidates over the flattened voxels, shifted by ``q·(M+1)``
            so that the four runs form one sorted sequence per task.
        counts: ``(B, 4)`` candidates per slot kind (>= 1).
    """

    kinds: Tensor
    cumsum: Tensor
    counts: Tensor

    @classmethod
    def from_mask(cls, mask_down: Tensor) -> "CandidateVoxels":
        """Args: mask_down ``(B, K, d, h, w)`` binary at the feature resolution."""
        kinds = voxel_kinds(mask_down)
        flat = kinds.flatten(1)  # (B, M)
        per_kind = torch.stack([flat == q for q in range(4)], dim=1)  # (B, 4, M)
        fg = per_kind[:, 0] | per_kind[:, 1]
        per_class = torch.stack([fg, fg, ~fg, ~fg], dim=1)
        options = torch.stack([per_kind, per_class, torch.ones_like(per_kind)], dim=2)  # (B, 4, 3, M)
        first = options.any(dim=-1).float().argmax(dim=-1)  # (B, 4): first non-empty option
        index = first[..., None, None].expand(-1, -1, 1, options.shape[-1])
        chosen = torch.gather(options, 2, index).squeeze(2)  # (B, 4, M)
        running = F.pad(chosen.long().cumsum(-1), (1, 0))  # (B, 4, M+1), starts at 0
        m1 = running.shape[-1]
        shift = torch.arange(4, device=running.device).view(1, 4, 1) * m1
        return cls(kinds=kinds, cumsum=(running + shift).flatten(1), counts=running[..., -1])

    def sample(self, slots: Tensor, uniform: Tensor) -> Tensor:
        """Draw patch centres.

        Args:
            slots: ``(N,)`` slot kinds (:func:`slot_kinds`).
            uniform: ``(B, ..., N)`` numbers in [0, 1), one per slot.

        Returns:
            ``(B, ..., N, 4)`` int64 positions ``(k, x, y, z)``: support index and voxel.
        """
        bsz = uniform.shape[0]
        slots = slots.to(self.cumsum.device)
        count = self.counts[:, slots].reshape(bsz, *(1,) * (uniform.dim() - 2), -1)  # (B, 1.., N)
        rank = (uniform * count).long().clamp_max(count - 1)  # take the rank-th candidate (0-based)
        m1 = self.cumsum.shape[-1] // 4  # M + 1
        # the first index where kind q's running count reaches rank + 1 is that candidate's voxel (+1)
        target = slots * m1 + rank + 1
        where = torch.searchsorted(self.cumsum, target.reshape(bsz, -1)).reshape(target.shape)
        flat = where - slots * m1 - 1
        d, h, w = self.kinds.shape[-3:]
        return torch.stack([flat // (d * h * w), flat // (h * w) % d, flat // w % h, flat % w], dim=-1)


def gather_patches(features: Tensor, positions: Tensor, perms: Tensor) -> Tensor:
    """Cut 3³ patches of every channel, in permuted channel order (eq. 4).

    Neighbours outside the volume read as zero (the convolution's zero padding).

    Args:
        features: ``(B, K, c, d, h, w)`` support feature maps (any strides; not copied).
        positions: ``(B, S, G, N, 4)`` centres per repetition r (from :meth:`CandidateVoxels.sample`).
        perms: ``(G, c)`` channel permutations.

    Returns:
        ``(B, S, G, N, c, 27)``: entry ``[..., r, n, j, t]`` is channel ``π_r[j]`` at
        neighbour t of centre n of repetition r.
    """
    bsz = features.shape[0]
    size = torch.tensor(features.shape[-3:], device=features.device)
    offsets = _OFFSETS.to(features.device)
    k = positions[..., 0, None, None]  # (B, S, G, N, 1, 1)
    xyz = positions[..., None, None, 1:] + offsets  # (B, S, G, N, 1, 27, 3)
    inside = ((xyz >= 0) & (xyz < size)).all(-1)
    xyz = torch.minimum(xyz.clamp_min(0), size - 1)
    b = torch.arange(bsz, device=features.device).view(bsz, 1, 1, 1, 1, 1)
    ch = perms.to(features.device)[None, None, :, None, :, None]  # (1, 1, G, 1, c, 1)
    patches = features[b, k, ch, xyz[..., 0], xyz[..., 1], xyz[..., 2]]
    return patches * inside


@dataclass
class ContextSample:
    """The context of one generated convolution, with what it was made of.

    Attributes:
        vectors: ``(B, S, G·G, N·C_base·27)`` the context vectors ``z_ctx(r, i)``
            (eq. 5), row ``r·G + i``.
        positions: ``(B, S, G, N, 4)`` patch centres ``(k, x, y, z)`` per repetition.
        slots: ``(N,)`` the kind of every patch slot (indices into :data:`SLOT_KINDS`).
        centre_kinds: ``(B, S, G, N)`` the kind of the voxel actually drawn (differs
            from ``slots`` only where a kind was missing and a fallback was used).
        groups: ``(G, G, C_base)`` input channels of each ``(r, i)``.
    """

    vectors: Tensor
    positions: Tensor
    slots: Tensor
    centre_kinds: Tensor
    groups: Tensor


def build_context(
    features: Tensor,
    candidates: CandidateVoxels,
    perms: Tensor,
    slots: Tensor,
    samplings: int,
    generator: torch.Generator | None,
) -> ContextSample:
    """Eqs. 3–5 for one convolution: sample patches and flatten them into context vectors.

    Args:
        features: ``(B, K, c, d, h, w)`` the convolution's input ``F_in`` on the supports.
        candidates: :class:`CandidateVoxels` of the supports at resolution ``(d, h, w)``.
        perms: ``(G, c)`` the convolution's fixed channel permutations.
        slots: ``(N,)`` slot kinds (:func:`slot_kinds`).
        samplings: S, independent draws (their generated filters are averaged later).
        generator: source of randomness; ``None`` uses PyTorch's global generator.

    Returns:
        A :class:`ContextSample`.
    """
    bsz, _, c = features.shape[:3]
    g = perms.shape[0]
    c_base = c // g
    n = len(slots)
    dev = generator.device if generator is not None else torch.device("cpu")
    uniform = torch.rand((bsz, samplings, g, n), generator=generator, device=dev).to(features.device)
    positions = candidates.sample(slots, uniform)  # (B, S, G, N, 4)
    patches = gather_patches(features, positions, perms)  # (B, S, G, N, c, 27)
    patches = patches.reshape(bsz, samplings, g, n, g, c_base, 27).transpose(3, 4)  # (B, S, r, i, N, Cb, 27)
    vectors = patches.reshape(bsz, samplings, g * g, n * c_base * 27)
    p = positions
    b = torch.arange(bsz, device=p.device).view(bsz, 1, 1, 1)
    centre_kinds = candidates.kinds[b, p[..., 0], p[..., 1], p[..., 2], p[..., 3]]
    return ContextSample(
        vectors=vectors,
        positions=positions,
        slots=slots,
        centre_kinds=centre_kinds,
        groups=channel_groups(perms, c_base),
    )
