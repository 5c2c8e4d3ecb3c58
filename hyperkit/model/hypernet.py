"""The hypernetwork: from a support set to the weights of a task-specific U-Net (paper §3, eqs. 1–7).

For every generated decoder convolution (docs/design.md §3):

* ``z_task`` (eq. 1): mask-average pooled bottleneck features of the supports,
  optionally LayerNorm-ed (switch ``task_norm``, ablation A.2);
* ``z_ctx(r, i)`` (eqs. 2–5): sampled 3³ patches of the convolution's input,
  built by :mod:`hyperkit.model.context`;
* ``z*(r, i) = MLP([z_task, z_pos(r, i)])`` (eq. 6) with a learned positional code
  per base filter, or ``z_pos`` alone (switch ``task_pe``, ablation A.3);
* ``H([z_ctx, z*])`` (eq. 7) gives one ``(C_base, C_base, 3, 3, 3)`` base filter per
  ``(r, i)``, bounded as ``scale_level · tanh(raw)``, averaged over the S samplings
  and *tiled* into the ``c × c`` kernel (:func:`tile_filters`).

The 1³ head (weight and bias) comes from a separate MLP on ``z_task``.

Generation runs the decoder on the supports while it generates: the input of
``decoder[l].conv1`` is known only once the deeper levels have been generated,
and ``conv2``'s input only once ``conv1`` has been applied. The generated kernels
are applied to a whole episode at once with grouped convolutions
(:mod:`hyperkit.model.functional`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperkit.config.sections import ModelConfig
from hyperkit.model.context import (
    CandidateVoxels,
    ContextSample,
    build_context,
    channel_permutations,
    downsample_mask,
    slot_kinds,
)
from hyperkit.model.functional import task_conv3d
from hyperkit.model.checks import check_binary_mask, check_dtype, check_same_shape, check_volume_shape
from hyperkit.model.unet import UNet3D

__all__ = ["HyperUNet", "ConvTrace", "tile_filters", "parameter_table"]


def tile_filters(filters: Tensor, perms: Tensor) -> Tensor:
    """Write the G² base filters of a convolution into its ``c × c`` kernel (docs/design.md §3.5).

    Base filter ``(r, i)`` fills ``W[r·C_base:(r+1)·C_base, π_r[i·C_base:(i+1)·C_base]]``:
    output block r, and exactly the input channels its patches were cut from.
    Because each ``π_r`` is a permutation, every kernel entry is written once.

    Args:
        filters: ``(B, G, G, C_base, C_base, 27)`` indexed ``[b, r, i, out, in, tap]``.
        perms: ``(G, c)`` the convolution's channel permutations.

    Returns:
        ``(B, c, c, 27)`` kernels (reshape to ``(B, c, c, 3, 3, 3)``).
    """
    bsz, g, _, c_base = filters.shape[:4]
    c = g * c_base
    # in permuted column order: row r·Cb+o, column i·Cb+j  <-  filters[r, i, o, j]
    permuted = filters.permute(0, 1, 3, 2, 4, 5).reshape(bsz, c, c, -1)
    # undo π_r in the rows of block r: W[row, m] = permuted[row, π_r^{-1}(m)]
    inverse = torch.argsort(perms, dim=1).repeat_interleave(c_base, dim=0)  # (c, c)
    index = inverse[None, :, :, None].expand(bsz, c, c, permuted.shape[-1])
    return torch.gather(permuted, 2, index)


class _ConvCode(nn.Module):
    """What one generated convolution owns: its fixed permutations and its positional codes."""

    def __init__(self, channels: int, c_base: int, pos_dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.register_buffer("perms", channel_permutations(channels, c_base, generator))
        groups = channels // c_base
        self.pos = nn.Parameter(torch.randn(groups * groups, pos_dim))  # z_pos(r, i), row r·G + i


@dataclass
class ConvTrace:
    """What went into one generated convolution (for the notebooks).

    Attributes:
        features: ``(B, K, c, d, h, w)`` the convolution's input ``F_in`` on the supports.
        mask_down: ``(B, K, d, h, w)`` ``y_down`` (eq. 2).
        context: the :class:`~hyperkit.model.context.ContextSample` (patches, classes, positions).
        z_star: ``(B, G·G, zstar_dim)`` the task-aware positional codes ``z*`` (eq. 6); ``(B, G·G, pos_dim)``
            (``z_pos``) when ``task_pe`` is off.
        weight: ``(B, c, c, 3, 3, 3)`` the generated kernel.
    """

    features: Tensor
    mask_down: Tensor
    context: ContextSample
    z_star: Tensor
    weight: Tensor


@dataclass
class _GenerationState:
    """What one generate-and-decode pass over an episode accumulates (sample-major layout, see functional.py).

    Filled level by level while the decoder runs: the support masks downsampled to each
    level's candidate voxels, the generated weights, and (optionally) a trace per convolution.
    """

    n_support: int
    n_tasks: int
    masks: Tensor  # (B, K, D, H, W) support masks
    z_task: Tensor  # (B, 8b)
    generator: torch.Generator | None
    weights: dict[str, Tensor] = field(default_factory=dict)
    candidates: dict[int, CandidateVoxels] = field(default_factory=dict)
    trace: dict[str, ConvTrace] | None = None


class HyperUNet(nn.Module):
    """Hypernetwork that generates task-specific :class:`UNet3D` decoders from a support set.

    Args:
        base_width: b of the target U-Net (multiple of ``c_base``).
        c_base: channels per group and side of a base filter (reference: 8; the paper names ``C_base`` without a
            value).
        n_patches: N patches per context vector, half fg, half bg (reference: 64, 32 + 32).
        boundary_share: fraction of boundary patches in each half (reference: 0.7).
        samplings: independent context draws whose filters are averaged (reference: 3).
        hidden: width of the two hidden layers of H (paper: 2048; its "three-layer MLP with one hidden layer"
            has LayerNorm after the first two linear layers, which needs two hidden layers, as built here).
        pos_dim: length of a positional code ``z_pos`` (reference: 256).
        zstar_hidden: hidden width of the ``z*`` MLP of eq. 6 (reference: 512).
        zstar_dim: length of ``z*`` (reference: 256).
        head_hidden: hidden width of the head MLP (the kit's choice).
        task_norm: LayerNorm on ``z_task`` (ablation A.2 switches it off).
        task_pe: ``z* = MLP([z_task, z_pos])``; False uses ``z* = z_pos`` (ablation A.3).
        bound_kernels: generated 3³ kernels are ``scale_level · tanh(raw)`` with a
            learned scale per decoder level (reference); False leaves them raw.
        perm_seed: seed of the fixed channel permutations (saved in the state dict).
        eval_seed: seed of the generator used in eval mode when none is given, so that
            eval-mode generation is deterministic.
        head_prior: when given, the generated head's bias starts at ``logit(head_prior)``
            (the foreground share of a typical patch) instead of about 0 (p = 0.5); the
            kit's fix for the all-background start-up phase (not in the paper).

    Examples:
        >>> hyper = HyperUNet.from_profile("quick").eval()
        >>> unet = hyper.generate(images, masks)          # images, masks: (K, 1, D, H, W)
        >>> logits = unet(query)                          # a plain UNet3D
    """

    #: The generated 3³ convolutions, deepest first: ``"decoder.{level}.conv{1|2}"``.
    conv_names: tuple[str, ...] = tuple(n.rsplit(".", 1)[0] for n in UNet3D.generated_names()[:-2])

    def __init__(
        self,
        base_width: int = 32,
        c_base: int = 8,
        n_patches: int = 64,
        boundary_share: float = 0.7,
        samplings: int = 3,
        hidden: int = 2048,
        pos_dim: int = 256,
        zstar_hidden: int = 512,
        zstar_dim: int = 256,
        head_hidden: int = 512,
        task_norm: bool = True,
        task_pe: bool = True,
        bound_kernels: bool = True,
        perm_seed: int = 0,
        eval_seed: int = 0,
        head_prior: float | None = None,
    ) -> None:
        super().__init__()
        sizes = {"base_width": base_width, "c_base": c_base, "n_patches": n_patches, "samplings": samplings,
                 "hidden": hidden, "pos_dim": pos_dim, "zstar_hidden": zstar_hidden, "zstar_dim": zstar_dim,
                 "head_hidden": head_hidden}  # ModelConfig checks the same for a profile; this is the direct call
        for name, v in sizes.items():
            if v < 1:
                raise ValueError(f"{name}={v} must be >= 1")
        if base_width % c_base:
            raise ValueError(f"base_width={base_width} must be a multiple of c_base={c_base}")
        self.c_base, self.samplings = c_base, samplings
        self.eval_seed = eval_seed
        self.register_buffer("slots", slot_kinds(n_patches, boundary_share), persistent=False)

        # the target U-Net's shared parts; the generated weights are removed (set to None)
        self.unet = UNet3D(base_width)
        for name in UNet3D.generated_names():
            module_name, attr = name.rsplit(".", 1)
            setattr(self.unet.get_submodule(module_name), attr, None)
        widths = self.unet.widths
        task_dim = widths[-1]

        self.task_norm = nn.LayerNorm(task_dim) if task_norm else nn.Identity()
        gen = torch.Generator().manual_seed(perm_seed)
        self.codes = nn.ModuleDict(
            {_key(n): _ConvCode(widths[_level(n)], c_base, pos_dim, gen) for n in self.conv_names}
        )
        self.zstar: nn.Module | None = None
        if task_pe:
            self.zstar = nn.Sequential(
                nn.Linear(task_dim + pos_dim, zstar_hidden), nn.GELU(), nn.Linear(zstar_hidden, zstar_dim)
            )
        in_dim = c_base * 27 * n_patches + (zstar_dim if task_pe else pos_dim)
        # H, the base-filter MLP (eq. 7): one context vector + z* -> one c_base x c_base x 3^3 base filter.
        # Named ``hyper`` because checkpoints store it under ``hyper.*`` (renaming would break saved runs).
        self.hyper = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(),
            nn.Linear(hidden, c_base * c_base * 27),
        )  # fmt: skip
        # scale_l: tanh's range ±1 starts at the He-uniform bound sqrt(6 / fan_in) of level l
        init = torch.tensor([math.sqrt(6.0 / (c * 27)) for c in widths[:4]])
        self.kernel_scale = nn.Parameter(init) if bound_kernels else None
        self.head_mlp = nn.Sequential(
            nn.Linear(task_dim, head_hidden), nn.GELU(), nn.Linear(head_hidden, widths[0] + 1)
        )
        if head_prior is not None:
            if not 0.0 < head_prior < 1.0:
                raise ValueError(f"head_prior={head_prior} must be a probability in (0, 1)")
            with torch.no_grad():  # the last output of the head MLP is the head's bias
                self.head_mlp[-1].bias[-1] = math.log(head_prior / (1.0 - head_prior))

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, cfg: ModelConfig | Mapping[str, Any]) -> "HyperUNet":
        """Build from a :class:`~hyperkit.config.ModelConfig` or a profile's ``model:`` section (checked)."""
        return cls(**ModelConfig.from_mapping(cfg).as_dict())

    @classmethod
    def from_profile(cls, profile: str = "quick", overrides: Mapping[str, Any] | None = None) -> "HyperUNet":
        """Build from a profile name (``"quick"``, ``"paper"``) or YAML path; overrides patch ``model:``."""
        return cls.from_config(ModelConfig.from_profile(profile, overrides))

    # ----------------------------------------------------------------- public API
    @torch.no_grad()
    def generate(
        self,
        images: Tensor,
        masks: Tensor,
        generator: torch.Generator | None = None,
        *,
        trace: dict[str, ConvTrace] | None = None,
    ) -> UNet3D:
        """Generate a standalone U-Net from K support cases of one task.

        Args:
            images: ``(K, 1, D, H, W)`` support images, sides multiples of 16.
            masks: ``(K, 1, D, H, W)`` binary support masks, each with foreground.
            generator: randomness of patch sampling. ``None``: in eval mode a generator
                seeded with ``eval_seed`` (deterministic), in train mode PyTorch's global one.
            trace: pass an empty dict to receive a :class:`ConvTrace` per generated
                convolution (keys ``"decoder.{level}.conv{1|2}"``).

        Returns:
            A :class:`UNet3D` that owns all its weights (no link to the hypernetwork).
        """
        _check_volumes(images, masks, ndim=5, what="support", dtype=self.unet.dtype)
        _, weights = self._generate_and_decode(images[None], masks[None], None, generator, trace)
        return self.instantiate({k: v[0] for k, v in weights.items()})

    def forward_episode(
        self,
        support_images: Tensor,
        support_masks: Tensor,
        query_images: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Training path: generate B decoders and segment each task's support and query.

        Nothing is instantiated: each task's kernels are applied to its own images by
        grouped convolutions. Gradients reach the encoder, the shared decoder parts,
        H, the positional codes, the ``z*`` and head MLPs and the kernel scales. The
        loss (Dice + BCE, ``β``-weighted) is computed by the caller.

        Args:
            support_images: ``(B, K, 1, D, H, W)``.
            support_masks: ``(B, K, 1, D, H, W)`` binary, each with foreground.
            query_images: ``(B, Q, 1, D, H, W)`` or ``None``.
            generator: as in :meth:`generate`.

        Returns:
            ``(support_logits (B, K, 1, D, H, W), query_logits (B, Q, 1, D, H, W) or None)``.
        """
        _check_volumes(support_images, support_masks, ndim=6, what="support", dtype=self.unet.dtype)
        if query_images is not None:
            _check_query(query_images, support_images)
        logits, _ = self._generate_and_decode(support_images, support_masks, query_images, generator)
        k = support_images.shape[1]
        return logits[:, :k], (logits[:, k:] if query_images is not None else None)

    forward = forward_episode

    def instantiate(self, weights: Mapping[str, Tensor]) -> UNet3D:
        """A new :class:`UNet3D`: copies of the shared parts plus the given generated tensors.

        Args:
            weights: one tensor per name of :meth:`UNet3D.generated_names` (no task axis).
        """
        missing = sorted(set(UNet3D.generated_names()) - set(weights))
        if missing:
            raise ValueError(f"generated weights missing: {missing}")
        unet = UNet3D(**self.unet.config).to(self._device())
        state = {**self.unet.state_dict(), **{k: v.detach() for k, v in weights.items()}}
        unet.load_state_dict(state)  # copies every tensor into the new module's own parameters
        return unet

    def random_unet(self, generator: torch.Generator | None = None) -> UNet3D:
        """The Rand U-Net baseline: shared parts, PyTorch's default init for the generated ones."""
        rand = UNet3D(**self.unet.config)
        weights = {}
        for name in UNet3D.generated_names():
            t = rand.get_parameter(name).detach().clone()
            if t.dim() > 1:
                nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=generator)
            else:  # head bias: PyTorch's default bound 1/sqrt(fan_in)
                bound = 1 / math.sqrt(self.unet.widths[0])
                t.uniform_(-bound, bound, generator=generator)
            weights[name] = t
        return self.instantiate(weights)

    # ----------------------------------------------------------------- the equations
    def task_descriptor(self, bottleneck: Tensor, masks: Tensor) -> Tensor:
        """Eq. 1: ``z_task = LayerNorm(MAP(Upsample(F_enc) ⊙ y))``, pooled over K supports.

        The paper's Eq. 1 is the masked average pool alone; the LayerNorm is its Appendix A.2, whose normalised
        variant is the paper's model (``task_norm``; the identity when that is off; notebook 06 prints this
        docstring's first line).

        With nearest up-sampling by the integer factor f, the mean of the up-sampled
        features over the foreground equals a weighted mean of the low-resolution
        features with weights = the mask's fraction in each cell (``avg_pool(y, f)``),
        so the full-resolution product is never formed.

        Args:
            bottleneck: ``(B, K, C, D/f, H/f, W/f)`` ``F_enc`` of the supports.
            masks: ``(B, K, D, H, W)`` binary.

        Returns:
            ``(B, C)``.
        """
        factor = tuple(m // f for m, f in zip(masks.shape[-3:], bottleneck.shape[-3:]))
        area = F.avg_pool3d(masks.flatten(0, 1)[:, None].to(bottleneck.dtype), factor)
        area = area.reshape(*masks.shape[:2], 1, *bottleneck.shape[-3:])  # (B, K, 1, d, h, w)
        pooled = (bottleneck * area).sum(dim=(1, 3, 4, 5)) / area.sum(dim=(1, 3, 4, 5))
        return self.task_norm(pooled)

    def task_position(self, z_task: Tensor, z_pos: Tensor) -> Tensor:
        """Eq. 6: ``z* = MLP([z_task, z_pos])`` for every base filter (``z_pos`` if ``task_pe`` is off).

        Args:
            z_task: ``(B, C)``; z_pos: ``(P, pos_dim)``.

        Returns:
            ``(B, P, zstar_dim)``; ``(B, P, pos_dim)`` (``z_pos`` itself) when ``task_pe`` is off.
        """
        z_pos = z_pos[None].expand(z_task.shape[0], -1, -1)
        if self.zstar is None:
            return z_pos
        z_task = z_task[:, None].expand(-1, z_pos.shape[1], -1)
        return self.zstar(torch.cat([z_task, z_pos], dim=-1))

    def _generated_conv(self, state: _GenerationState, name: str, x: Tensor) -> Tensor:
        """Generate the kernel of convolution ``name`` from its input, then apply it (eqs. 2–7)."""
        level = _level(name)
        code = self.codes[_key(name)]
        k, bsz = state.n_support, state.n_tasks
        feats = x[: k * bsz].unflatten(0, (k, bsz)).transpose(0, 1)  # (B, K, c, d, h, w), a view
        if level not in state.candidates:  # eq. 2, once per level
            mask_down = downsample_mask(state.masks, feats.shape[-3:])
            state.candidates[level] = CandidateVoxels.from_mask(mask_down)
        ctx = build_context(feats, state.candidates[level], code.perms, self.slots, self.samplings, state.generator)
        z_star = self.task_position(state.z_task, code.pos)  # (B, G², ·)
        z_final = torch.cat([ctx.vectors, z_star[:, None].expand(-1, self.samplings, -1, -1)], dim=-1)  # eq. 7
        raw = self.hyper(z_final)  # (B, S, G², Cb·Cb·27)
        if self.kernel_scale is not None:
            raw = self.kernel_scale[level] * torch.tanh(raw)
        g = code.perms.shape[0]
        filters = raw.mean(dim=1).reshape(bsz, g, g, self.c_base, self.c_base, 27)
        c = g * self.c_base
        weight = tile_filters(filters, code.perms).reshape(bsz, c, c, 3, 3, 3)
        state.weights[f"{name}.weight"] = weight
        if state.trace is not None:
            down = state.candidates[level].kinds  # kinds 0/1 are foreground
            state.trace[name] = ConvTrace(feats.detach(), (down < 2).to(x.dtype), ctx, z_star.detach(), weight.detach())
        return task_conv3d(x, weight)

    def _generated_head(self, state: _GenerationState, x: Tensor) -> Tensor:
        """The 1³ head from ``z_task`` (separate two-layer MLP)."""
        out = self.head_mlp(state.z_task)  # (B, c0 + 1)
        weight = out[:, :-1].reshape(state.n_tasks, 1, -1, 1, 1, 1)
        bias = out[:, -1:]
        state.weights["head.weight"], state.weights["head.bias"] = weight, bias
        return task_conv3d(x, weight, bias)

    def _generate_and_decode(
        self,
        support_images: Tensor,
        support_masks: Tensor,
        query_images: Tensor | None,
        generator: torch.Generator | None,
        trace: dict[str, ConvTrace] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Encode, generate level by level, decode. Inputs task-major ``(B, n, 1, D, H, W)``.

        Returns:
            Logits ``(B, K + Q, 1, D, H, W)`` and the generated tensors (task axis first).
        """
        bsz, k = support_images.shape[:2]
        images = support_images if query_images is None else torch.cat([support_images, query_images], dim=1)
        n = images.shape[1]
        flat = images.transpose(0, 1).reshape(n * bsz, *images.shape[2:])  # sample-major
        masks = support_masks[:, :, 0].to(flat.dtype)  # (B, K, D, H, W)
        feats = self.unet.encode(flat)
        bottleneck = feats[-1][: k * bsz].unflatten(0, (k, bsz)).transpose(0, 1)
        state = _GenerationState(k, bsz, masks, self.task_descriptor(bottleneck, masks), self._generator(generator),
                                 trace=trace)
        convs = {name: functools.partial(self._generated_conv, state, name) for name in self.conv_names}
        logits = self.unet.decode(feats, convs, functools.partial(self._generated_head, state))
        return logits.unflatten(0, (n, bsz)).transpose(0, 1), state.weights

    def _generator(self, generator: torch.Generator | None) -> torch.Generator | None:
        if generator is not None or self.training:
            return generator
        return torch.Generator().manual_seed(self.eval_seed)

    def _device(self) -> torch.device:
        return next(self.parameters()).device


def parameter_table(hyper: HyperUNet) -> dict[str, int]:
    """Parameter counts per component (for the benchmarks and notebook 03).

    Returns:
        An ordered mapping: the target U-Net (total, generated, shared; its encoder;
        its shared decoder parts) and the hypernetwork's own modules.
    """
    unet = UNet3D(**hyper.unet.config)
    total = sum(p.numel() for p in unet.parameters())
    generated = sum(unet.get_parameter(n).numel() for n in UNet3D.generated_names())
    encoder = sum(p.numel() for m in (unet.encoder, unet.down) for p in m.parameters())

    def count(module: nn.Module | None) -> int:
        return 0 if module is None else sum(p.numel() for p in module.parameters())

    pos = sum(code.pos.numel() for code in hyper.codes.values())
    table = {
        "U-Net total": total,
        "U-Net generated (decoder 3^3 convs + head)": generated,
        "U-Net shared (trained)": total - generated,
        "  encoder": encoder,
        "  decoder GroupNorms + up-convs": total - generated - encoder,
        "task LayerNorm (eq. 1)": count(hyper.task_norm),
        "positional codes z_pos": pos,
        "z* MLP (eq. 6)": count(hyper.zstar),
        "H (base-filter MLP)": count(hyper.hyper),
        "head MLP": count(hyper.head_mlp),
        "kernel scales": 0 if hyper.kernel_scale is None else hyper.kernel_scale.numel(),
    }
    table["hypernetwork trainable total"] = sum(p.numel() for p in hyper.parameters() if p.requires_grad)
    return table


def _level(name: str) -> int:
    return int(name.split(".")[1])


def _key(name: str) -> str:
    return name.replace(".", "_")


def _check_volumes(images: Tensor, masks: Tensor, ndim: int, what: str, dtype: torch.dtype) -> None:
    """Validate support images and masks (see :meth:`HyperUNet.generate`); ``dtype``: the model's."""
    layout = "(K, 1, D, H, W)" if ndim == 5 else "(B, K, 1, D, H, W)"
    for name, t in (("images", images), ("masks", masks)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{what} {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != ndim:
            raise ValueError(f"{what} {name} must have {ndim} dims {layout}, got shape {tuple(t.shape)}")
    if images.shape[-4] != 1:
        raise ValueError(f"{what} images must have 1 channel (one task per channel), got shape {tuple(images.shape)}")
    if 0 in images.shape[:-4]:
        raise ValueError(f"{what} images hold no support (K = 0) or no task, got shape {tuple(images.shape)}")
    check_same_shape(images, masks, what)
    check_volume_shape(images.shape, f"{what} images")
    if not torch.is_floating_point(images):
        raise ValueError(f"{what} images must be floating point, got dtype {images.dtype}")
    check_dtype(images, dtype, f"{what} images")
    if not bool(torch.isfinite(images).all()):  # NaN in, NaN weights out, without a word
        raise ValueError(f"{what} images hold {int((~torch.isfinite(images)).sum())} non-finite value(s) (NaN or inf)")
    check_binary_mask(masks, what)
    fg = masks.flatten(start_dim=-4).sum(-1).reshape(-1)
    if bool((fg == 0).any()):
        empty = (fg == 0).nonzero().flatten().tolist()
        raise ValueError(f"{what} mask is empty (no foreground voxel) for support index(es) {empty} (flattened B·K)")


def _check_query(query: Tensor, support: Tensor) -> None:
    if not isinstance(query, Tensor) or query.dim() != 6:
        shape = tuple(query.shape) if isinstance(query, Tensor) else type(query).__name__
        raise ValueError(f"query images must have 6 dims (B, Q, 1, D, H, W), got {shape}")
    if query.shape[0] != support.shape[0] or query.shape[2:] != support.shape[2:]:
        raise ValueError(
            f"query images {tuple(query.shape)} do not match support images {tuple(support.shape)} "
            f"(same B, channel and D, H, W required)"
        )
    check_dtype(query, support.dtype, "query images")
