"""Audit of hyperkit.model.context against hand-built inputs (pins the current behaviour exactly)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hyperkit.model.context import (
    CandidateVoxels,
    build_context,
    channel_groups,
    channel_permutations,
    downsample_mask,
    gather_patches,
    slot_kinds,
    voxel_kinds,
)


def test_downsample_mask_dilates_at_a_factor_of_three():
    """A factor of 3 (> 2) dilates by one voxel before pooling: a voxel at a cell edge reaches the next cell."""
    m = torch.zeros(12, 12, 12)
    m[2, 2, 2] = 1  # cell 0 covers 0..2; dilated to 1..3, so cell 1 (3..5) is reached too
    expected = torch.zeros(4, 4, 4)
    expected[:2, :2, :2] = 1
    assert torch.equal(downsample_mask(m, (4, 4, 4)), expected)
    m = torch.zeros(12, 12, 12)
    m[1, 1, 1] = 1  # dilated to 0..2: stays inside cell 0
    expected = torch.zeros(4, 4, 4)
    expected[0, 0, 0] = 1
    assert torch.equal(downsample_mask(m, (4, 4, 4)), expected)


def test_downsample_mask_keeps_leading_dims_and_returns_float_zero_one():
    """Integer masks come back as float 0/1 with the leading (B, K) dims kept, at the same size too."""
    m = torch.zeros(2, 3, 4, 4, 4, dtype=torch.long)
    m[1, 2, 0, 1, 2] = 1
    same = downsample_mask(m, torch.Size([4, 4, 4]))
    assert same.dtype == torch.float32 and same.shape == (2, 3, 4, 4, 4)
    assert torch.equal(same, m.float())
    half = downsample_mask(m, (2, 2, 2))
    expected = torch.zeros(2, 3, 2, 2, 2)
    expected[1, 2, 0, 0, 1] = 1
    assert torch.equal(half, expected)


def test_voxel_kinds_of_a_single_voxel():
    """A lone fg voxel is fg-boundary; exactly its 26 neighbours are bg-boundary; the rest bg interior."""
    m = torch.zeros(6, 6, 6)
    m[2, 3, 2] = 1
    expected = torch.full((6, 6, 6), 2)
    expected[1:4, 2:5, 1:4] = 3
    expected[2, 3, 2] = 1
    assert torch.equal(voxel_kinds(m), expected)


def test_voxel_kinds_of_a_slab_keep_leading_dims():
    """A 3-thick fg slab along y in a (2, 5, 6, 7) batch: interior row, boundary rows, bg rows exactly."""
    m = torch.zeros(2, 5, 6, 7)
    m[1, :, 1:4, :] = 1  # y = 1, 2, 3 foreground
    kinds = voxel_kinds(m)
    assert kinds.shape == (2, 5, 6, 7) and kinds.dtype == torch.long
    assert torch.equal(kinds[0], torch.full((5, 6, 7), 2))
    per_y = torch.tensor([3, 1, 0, 1, 3, 2])
    assert torch.equal(kinds[1], per_y.view(1, 6, 1).expand(5, 6, 7))


@pytest.mark.parametrize(
    "n, share, expected",
    [
        (4, 0.25, [0, 0, 2, 2]),  # round(0.5) = 0 (round half to even)
        (12, 0.25, [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3]),  # round(1.5) = 2
        (6, 0.5, [0, 1, 1, 2, 3, 3]),  # half = 3: round(1.5) = 2
        (10, 0.3, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]),  # half = 5: round(0.3 * 5 = 1.5) = 2
        (2, 1.0, [1, 3]),
        (2, 0.0, [0, 2]),
    ],
)
def test_slot_kinds_exact(n, share, expected):
    """Exact slot vectors, including Python's round-half-to-even of b * N/2."""
    assert slot_kinds(n, share).tolist() == expected


def test_channel_permutations_are_drawn_from_the_given_generator_in_order():
    """pi_0 is the identity and pi_1.. are successive randperm draws of the passed generator."""
    perms = channel_permutations(12, 4, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    expected = torch.stack([torch.arange(12), torch.randperm(12, generator=g), torch.randperm(12, generator=g)])
    assert torch.equal(perms, expected)
    assert not torch.equal(perms[1], perms[2])
    assert channel_permutations(8, 8, torch.Generator()).tolist() == [list(range(8))]


def test_channel_permutations_refuse_fewer_channels_than_a_group():
    """c < C_base is not a multiple of C_base and is refused."""
    with pytest.raises(ValueError, match="channels=4"):
        channel_permutations(4, 8, torch.Generator())


def _line_and_empty() -> torch.Tensor:
    masks = torch.zeros(2, 1, 5, 5, 5)
    masks[0, 0, 2, 2, 1:4] = 1  # task 0: a 3-voxel line (no fg interior)
    return masks  # task 1: no foreground at all


def test_candidate_counts_and_running_sums_with_fallbacks():
    """Counts and the shifted running sums: missing kind -> own class, missing class -> every voxel."""
    masks = _line_and_empty()
    cand = CandidateVoxels.from_mask(masks)
    m = 125
    kinds = voxel_kinds(masks).flatten(1)
    fg0 = kinds[0] < 2
    chosen = torch.stack([
        torch.stack([fg0, kinds[0] == 1, kinds[0] == 2, kinds[0] == 3]),  # fg interior missing -> fg class
        torch.stack([torch.ones(m, dtype=torch.bool)] * 2 + [kinds[1] == 2, kinds[1] >= 2]),
    ])  # task 1: fg absent -> any voxel; bg-boundary missing -> bg class
    assert cand.counts.tolist() == [[3, 3, 125 - 45, 45 - 3], [125, 125, 125, 125]]  # 3x3x5 neighbourhood
    running = F.pad(chosen.long().cumsum(-1), (1, 0)) + (torch.arange(4) * (m + 1)).view(1, 4, 1)
    assert torch.equal(cand.cumsum, running.flatten(1))
    assert torch.equal(cand.kinds, voxel_kinds(masks))


def test_sample_exact_centres_on_hand_built_masks():
    """Hand-computed centres: fallbacks, rank = floor(u * count), u = 1.0 clamped to the last candidate."""
    cand = CandidateVoxels.from_mask(_line_and_empty())
    slots = torch.tensor([0, 0, 1, 1, 3])
    u = torch.tensor([[[0.0, 0.99, 0.34, 1.0, 0.0]], [[0.0, 0.5, 0.999, 1.0, 0.0]]])  # (B=2, 1, N=5)
    pos = cand.sample(slots, u)
    assert pos.shape == (2, 1, 5, 4)
    assert pos[0, 0].tolist() == [[0, 2, 2, 1], [0, 2, 2, 3], [0, 2, 2, 2], [0, 2, 2, 3], [0, 1, 1, 0]]
    # task 1 has no fg: fg slots draw among all 125 voxels; bg-boundary falls back to the bg class (all voxels)
    assert pos[1, 0].tolist() == [[0, 0, 0, 0], [0, 2, 2, 2], [0, 4, 4, 4], [0, 4, 4, 4], [0, 0, 0, 0]]


def test_sample_decodes_support_and_non_cubic_voxel():
    """The flat index decodes as (k, x, y, z) with K = 3 supports of shape (2, 3, 4)."""
    masks = torch.zeros(1, 3, 2, 3, 4)
    masks[0, 2, 1, 2, 3] = 1  # the only fg voxel: the very last one of support 2
    masks[0, 1, 0, 1, 2] = 1
    cand = CandidateVoxels.from_mask(masks)
    assert cand.counts[0, :2].tolist() == [2, 2]
    pos = cand.sample(torch.tensor([1, 1]), torch.tensor([[0.25, 0.75]]))
    assert pos[0].tolist() == [[1, 0, 1, 2], [2, 1, 2, 3]]


def test_gather_patches_zero_pads_every_face_and_keeps_offset_order():
    """Patch t of a centre is neighbour (t//9-1, t//3%3-1, t%3-1); outside voxels (any axis) read 0."""
    feats = (torch.arange(3 * 4 * 5, dtype=torch.float) + 1).view(1, 1, 1, 3, 4, 5)
    perms = torch.tensor([[0]])
    for centre in ([0, 0, 0, 0], [0, 2, 3, 4], [0, 1, 0, 2], [0, 1, 2, 4]):
        patch = gather_patches(feats, torch.tensor(centre).view(1, 1, 1, 1, 4), perms)[0, 0, 0, 0, 0]
        x, y, z = centre[1:]
        for t in range(27):
            i, j, k = x + t // 9 - 1, y + t // 3 % 3 - 1, z + t % 3 - 1
            inside = 0 <= i < 3 and 0 <= j < 4 and 0 <= k < 5
            assert patch[t].item() == (feats[0, 0, 0, i, j, k].item() if inside else 0.0)


def _built(masks: torch.Tensor, channels: int, n_patches: int, samplings: int, seeds: tuple[int, int, int]):
    """Candidates, permutations (C_base 4), slots (boundary share 0.5), random features ``(B, K, C, ...)`` of
    ``masks`` ``(B, K, D, H, W)`` and their context; ``seeds``: permutations, features, sampling."""
    cand = CandidateVoxels.from_mask(masks)
    perms = channel_permutations(channels, 4, torch.Generator().manual_seed(seeds[0]))
    slots = slot_kinds(n_patches, 0.5)
    feats = torch.randn(*masks.shape[:2], channels, *masks.shape[2:], generator=torch.Generator().manual_seed(seeds[1]))
    ctx = build_context(feats, cand, perms, slots, samplings, torch.Generator().manual_seed(seeds[2]))
    return cand, perms, slots, feats, ctx


def test_build_context_uses_the_generator_draws_in_b_s_g_n_order():
    """Positions equal cand.sample(slots, rand((B, S, G, N), generator)); None uses the global RNG."""
    masks = torch.zeros(2, 1, 6, 6, 6)
    masks[0, 0, 1:4, 1:5, 2:5] = 1
    masks[1, 0, 2:6, 0:3, 1:6] = 1
    cand, perms, slots, feats, ctx = _built(masks, channels=8, n_patches=6, samplings=3, seeds=(0, 1, 5))
    u = torch.rand((2, 3, 2, 6), generator=torch.Generator().manual_seed(5))
    assert torch.equal(ctx.positions, cand.sample(slots, u))
    torch.manual_seed(11)
    glob = build_context(feats, cand, perms, slots, 3, None)
    torch.manual_seed(11)
    assert torch.equal(glob.positions, cand.sample(slots, torch.rand((2, 3, 2, 6))))


def test_build_context_every_row_and_patch_layout():
    """All rows r*G+i and slots n: N blocks of (C_base, 27) patches of channels pi_r[i*Cb:(i+1)*Cb]."""
    masks = torch.zeros(1, 2, 5, 5, 5)
    masks[0, 0, 1:4, 1:4, 1:4] = 1
    masks[0, 1, 0:2, 2:5, 3:5] = 1
    cand, perms, slots, feats, ctx = _built(masks, channels=12, n_patches=4, samplings=2, seeds=(2, 3, 4))
    assert ctx.vectors.shape == (1, 2, 9, 4 * 4 * 27)
    assert torch.equal(ctx.groups, channel_groups(perms, 4)) and torch.equal(ctx.slots, slots)
    padded = F.pad(feats, (1,) * 6)
    for s in range(2):
        for r in range(3):
            for i in range(3):
                blocks = []
                for n in range(4):
                    k, x, y, z = ctx.positions[0, s, r, n].tolist()
                    chans = perms[r, 4 * i : 4 * (i + 1)]
                    blocks.append(padded[0, k][chans, x : x + 3, y : y + 3, z : z + 3].reshape(-1))
                assert torch.equal(ctx.vectors[0, s, r * 3 + i], torch.cat(blocks))


def test_centre_kinds_report_the_fallback_kind_actually_drawn():
    """Where fg interior is missing, centre_kinds shows the fg-boundary voxel drawn, not the slot's kind."""
    cand = CandidateVoxels.from_mask(_line_and_empty()[:1])
    slots = slot_kinds(4, 0.5)  # [0, 1, 2, 3]
    perms = torch.arange(4)[None]
    ctx = build_context(torch.randn(1, 1, 4, 5, 5, 5), cand, perms, slots, 2, torch.Generator().manual_seed(0))
    p = ctx.positions.reshape(-1, 4)
    assert torch.equal(ctx.centre_kinds.reshape(-1), cand.kinds[0][p[:, 0], p[:, 1], p[:, 2], p[:, 3]])
    assert torch.equal(ctx.centre_kinds, torch.tensor([1, 1, 2, 3]).expand(1, 2, 1, 4))


@pytest.mark.parametrize("channels, c_base", [(8, -4), (0, 8), (-8, 4)])
def test_channel_permutations_refuse_non_positive_sizes(channels, c_base):
    """c_base < 1 or c < 1 is refused instead of silently returning a single (1, c) identity."""
    with pytest.raises(ValueError, match="c_base"):
        channel_permutations(channels, c_base, torch.Generator())
