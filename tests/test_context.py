"""Context construction (eqs. 2–5): mask down-sampling, voxel kinds, slot order, sampling, patches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hyperkit.model.context import (
    SLOT_KINDS,
    CandidateVoxels,
    build_context,
    channel_groups,
    channel_permutations,
    downsample_mask,
    gather_patches,
    slot_kinds,
    voxel_kinds,
)


def cube(size: int, lo: int, hi: int) -> torch.Tensor:
    m = torch.zeros(size, size, size)
    m[lo:hi, lo:hi, lo:hi] = 1
    return m


def test_downsample_mask_identity_and_thin_structures():
    m = cube(16, 4, 9)
    assert torch.equal(downsample_mask(m, (16, 16, 16)), m)
    line = torch.zeros(1, 2, 32, 32, 32)
    line[0, 1, 13, 13, :] = 1  # one voxel thick, off the pooling grid
    down = downsample_mask(line, (4, 4, 4))
    assert down.shape == (1, 2, 4, 4, 4)
    assert down[0, 1].sum() > 0 and down[0, 0].sum() == 0
    assert set(down.unique().tolist()) <= {0.0, 1.0}


def test_voxel_kinds_of_a_cube():
    kinds = voxel_kinds(cube(8, 2, 6))  # 4^3 cube in an 8^3 volume
    counts = torch.bincount(kinds.flatten(), minlength=4).tolist()
    # fg interior = inner 2^3; bg boundary = the 6^3 shell around the cube minus the cube
    assert counts == [8, 64 - 8, 512 - 216, 216 - 64]


@pytest.mark.parametrize(
    "n, share, expected",
    [(64, 0.7, [10, 22, 10, 22]), (16, 0.7, [2, 6, 2, 6]), (8, 0.0, [4, 0, 4, 0]), (4, 1.0, [0, 2, 0, 2])],
)
def test_slot_order_and_boundary_fraction(n, share, expected):
    slots = slot_kinds(n, share)
    assert len(slots) == n
    assert torch.bincount(slots, minlength=4).tolist() == expected
    assert bool((slots[1:] >= slots[:-1]).all())  # fg, fg-boundary, bg, bg-boundary


@pytest.mark.parametrize("n, share", [(7, 0.5), (0, 0.5), (8, 1.5), (8, -0.5)])
def test_slot_kinds_bad_arguments(n, share):
    with pytest.raises(ValueError):
        slot_kinds(n, share)


def test_permutations_and_groups():
    perms = channel_permutations(24, 8, torch.Generator().manual_seed(0))
    assert perms.shape == (3, 24)
    assert torch.equal(perms[0], torch.arange(24))  # pi_0: the natural grouping of eq. 3
    for p in perms:
        assert torch.equal(p.sort().values, torch.arange(24))
    groups = channel_groups(perms, 8)
    assert groups.shape == (3, 3, 8)
    for r in range(3):  # the groups of one repetition partition the channels
        assert torch.equal(groups[r].flatten().sort().values, torch.arange(24))
    with pytest.raises(ValueError, match="channels=20"):
        channel_permutations(20, 8, torch.Generator())


def _two_tasks() -> torch.Tensor:
    masks = torch.zeros(2, 1, 12, 12, 12)  # B = 2 tasks, K = 1
    masks[0, 0, 2:7, 2:7, 2:7] = 1
    masks[1, 0, 6:11, 5:10, 4:9] = 1
    return masks


def test_sampled_patches_follow_slot_order_on_each_task():
    masks = _two_tasks()
    cand = CandidateVoxels.from_mask(masks)
    slots = slot_kinds(16, 0.7)
    u = torch.rand(2, 3, 4, 16, generator=torch.Generator().manual_seed(1))
    pos = cand.sample(slots, u)
    assert pos.shape == (2, 3, 4, 16, 4)
    for b in range(2):
        p = pos[b].reshape(-1, 4)
        kinds = cand.kinds[b][p[:, 0], p[:, 1], p[:, 2], p[:, 3]]
        assert torch.equal(kinds, slots.repeat(3 * 4))
        fg = masks[b, 0][p[:, 1], p[:, 2], p[:, 3]]
        assert torch.equal(fg, (slots < 2).float().repeat(12))


def test_missing_kind_falls_back_within_its_class():
    masks = torch.zeros(1, 1, 8, 8, 8)
    masks[0, 0, 4, 4, 1:7] = 1  # a thin line: no fg interior voxel
    cand = CandidateVoxels.from_mask(masks)
    assert cand.counts[0].tolist()[0] == 6  # fg slots draw from the 6 line voxels
    slots = slot_kinds(8, 0.5)
    pos = cand.sample(slots, torch.rand(1, 2, 1, 8))
    p = pos.reshape(-1, 4)
    centre = masks[0, 0][p[:, 1], p[:, 2], p[:, 3]]
    assert torch.equal(centre, (slots < 2).float().repeat(2))


def test_gather_patches_matches_explicit_slicing():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 2, 16, 6, 7, 5, generator=g)  # B=2, K=2, c=16
    perms = channel_permutations(16, 8, g)
    pos = torch.tensor([[0, 0, 0, 0], [1, 5, 6, 4], [1, 2, 3, 2]])  # corners read zero padding
    positions = pos.view(1, 1, 1, 3, 4).expand(2, 1, 2, 3, 4)
    patches = gather_patches(feats, positions, perms)
    assert patches.shape == (2, 1, 2, 3, 16, 27)
    padded = F.pad(feats, (1, 1, 1, 1, 1, 1))
    for b in range(2):
        for r in range(2):
            for n, (k, x, y, z) in enumerate(pos.tolist()):
                ref = padded[b, k][perms[r], x : x + 3, y : y + 3, z : z + 3].reshape(16, 27)
                assert torch.equal(patches[b, 0, r, n], ref)


def test_build_context_layout_and_determinism():
    feats = torch.randn(2, 1, 16, 12, 12, 12)
    masks = _two_tasks()
    cand = CandidateVoxels.from_mask(masks)
    perms = channel_permutations(16, 8, torch.Generator().manual_seed(3))
    slots = slot_kinds(8, 0.5)

    def run(seed):
        return build_context(feats, cand, perms, slots, 3, torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    assert a.vectors.shape == (2, 3, 4, 8 * 8 * 27)
    assert torch.equal(a.vectors, b.vectors) and torch.equal(a.positions, b.positions)
    assert not torch.equal(a.positions, c.positions)
    assert torch.equal(a.centre_kinds, slots.expand_as(a.centre_kinds))
    # row r*G + i holds patch n's channels pi_r[i*8:(i+1)*8], patches in slot order
    r, i, n = 1, 0, 5
    k, x, y, z = a.positions[1, 2, r, n].tolist()
    ref = F.pad(feats, (1,) * 6)[1, k][a.groups[r, i], x : x + 3, y : y + 3, z : z + 3].reshape(-1)
    vec = a.vectors[1, 2, r * 2 + i].reshape(8, 8 * 27)[n]
    assert torch.equal(vec, ref)
    assert SLOT_KINDS[0] == "fg" and len(SLOT_KINDS) == 4


def test_downsample_mask_dilates_only_beyond_a_factor_of_two():
    """Eq. 2: a factor of 2 pools cells as they are; a larger factor (the largest over the axes) dilates first."""
    m = torch.zeros(8, 8, 8)
    m[1, 1, 1] = 1  # in cell (0, 0, 0) of a 2x pooling; its 3^3 neighbourhood reaches cell 1 on every axis
    expected = torch.zeros(4, 4, 4)
    expected[0, 0, 0] = 1
    assert torch.equal(downsample_mask(m, (4, 4, 4)), expected)
    m = torch.zeros(16, 16, 16)
    m[3, 3, 3] = 1  # factor 4: dilated to 2..4 per axis, i.e. cells 0 and 1
    expected = torch.zeros(4, 4, 4)
    expected[:2, :2, :2] = 1
    assert torch.equal(downsample_mask(m, (4, 4, 4)), expected)
    m = torch.zeros(16, 16, 4)
    m[3, 3, 1] = 1  # factors (4, 4, 1): dilated on every axis, kept at full resolution on the last
    expected = torch.zeros(4, 4, 4)
    expected[:2, :2, :3] = 1
    assert torch.equal(downsample_mask(m, (4, 4, 4)), expected)


def test_voxel_kinds_do_not_count_the_outside_as_a_class():
    """The volume's border is no boundary: voxels outside the volume are neither fg nor bg."""
    assert torch.equal(voxel_kinds(torch.ones(4, 4, 4)), torch.zeros(4, 4, 4, dtype=torch.long))
    assert torch.equal(voxel_kinds(torch.zeros(4, 4, 4)), torch.full((4, 4, 4), 2))
    m = torch.zeros(4, 5, 6)
    m[:2] = 1  # x = 0, 1 foreground: x = 0 fg interior, 1 fg boundary, 2 bg boundary, 3 bg interior
    expected = torch.tensor([0, 1, 3, 2]).view(4, 1, 1).expand(4, 5, 6)
    assert torch.equal(voxel_kinds(m), expected)


def test_channel_permutations_refuse_any_remainder():
    with pytest.raises(ValueError, match="channels=17"):
        channel_permutations(17, 8, torch.Generator())


def test_channel_groups_are_consecutive_slices_of_each_permutation():
    """Eq. 3: group (r, i) reads channels pi_r[i*C_base:(i+1)*C_base], not a strided subset."""
    perms = torch.stack([torch.arange(12), torch.arange(12).flip(0), torch.arange(12).roll(5)])
    groups = channel_groups(perms, 4)
    for r in range(3):
        for i in range(3):
            assert groups[r, i].tolist() == perms[r, 4 * i : 4 * (i + 1)].tolist()
    assert groups[1, 0].tolist() == [11, 10, 9, 8]


def test_sample_enumerates_each_kinds_voxels_in_raster_order_across_supports():
    """Rank j of a kind is its j-th voxel in (k, x, y, z) order, on a non-cubic volume with K = 2 supports."""
    masks = torch.zeros(1, 2, 4, 5, 6)
    masks[0, 0, 1:3, 1:4, 2:6] = 1
    masks[0, 1, :2, :2, :3] = 1
    cand = CandidateVoxels.from_mask(masks)
    slots, uniform, expected = [], [], []
    for q in range(4):
        voxels = torch.nonzero(voxel_kinds(masks[0]) == q)  # (count, 4) in raster order (k, x, y, z)
        assert len(voxels) > 0
        slots += [q] * len(voxels)
        uniform.append((torch.arange(len(voxels)) + 0.5) / len(voxels))
        expected.append(voxels)
    assert cand.counts[0].tolist() == [len(v) for v in expected]
    pos = cand.sample(torch.tensor(slots), torch.cat(uniform)[None])
    assert torch.equal(pos[0], torch.cat(expected))
    assert {0, 1} <= set(pos[0, :, 0].tolist())


def test_boundary_slots_fall_back_to_their_own_class_across_supports():
    """No boundary voxel in any support (one all fg, one all bg): boundary slots keep their class."""
    masks = torch.zeros(1, 2, 4, 4, 4)
    masks[0, 0] = 1
    cand = CandidateVoxels.from_mask(masks)
    assert cand.counts[0].tolist() == [64, 64, 64, 64]
    slots = slot_kinds(8, 0.5)
    pos = cand.sample(slots, torch.rand(1, 3, 8, generator=torch.Generator().manual_seed(0)))
    k = pos[0, ..., 0]  # support 0 is all foreground, support 1 all background
    assert torch.equal(k, (slots >= 2).long().expand(3, 8))


def test_samplings_and_repetitions_draw_their_own_centres():
    """Eq. 4: every sampling s and every repetition r draws its N centres independently."""
    masks = torch.zeros(1, 1, 12, 12, 12)
    masks[0, 0, 2:10, 2:10, 2:10] = 1
    cand = CandidateVoxels.from_mask(masks)
    perms = channel_permutations(16, 8, torch.Generator().manual_seed(0))
    ctx = build_context(torch.randn(1, 1, 16, 12, 12, 12), cand, perms, slot_kinds(8, 0.5), 2,
                        torch.Generator().manual_seed(0))
    pos = ctx.positions  # (B, S, G, N, 4)
    assert not torch.equal(pos[:, 0], pos[:, 1])
    assert not torch.equal(pos[:, :, 0], pos[:, :, 1])
