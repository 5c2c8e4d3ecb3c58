"""Patch placement (offset vs centred), training crops, group-balanced task sampling,
the learning-rate warm-up, the head prior and what ensure_trained returns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyperkit.config import load_profile
from hyperkit.data import preprocess as pp
from hyperkit.data.layouts import open_dataset
from hyperkit.data.sample import write_sample_msd
from hyperkit.errors import ConfigError
from hyperkit.model.hypernet import HyperUNet
from hyperkit.config.sections import TrainConfig
from hyperkit.data.bank import TaskBank, structure_group
from hyperkit.seeds import numpy_rng


@pytest.mark.parametrize("seed", range(20))
def test_offset_centre_keeps_box_inside_and_within_max_shift(seed):
    rng = np.random.default_rng(seed)
    lo = rng.integers(0, 40, 3)
    hi = lo + rng.integers(0, 30, 3)
    size, max_shift = 32, 8
    c = pp.patch_centre(lo, hi, size, max_shift, np.random.default_rng(seed + 100))
    c0 = pp.patch_centre(lo, hi, size)
    start = c - size // 2
    fits = (hi - lo + 1) <= size
    assert np.all(np.abs(c - c0) <= max_shift)
    # where the box fits, it is inside the cube; where it does not, the cube stays centred
    assert np.all(~fits | ((start <= lo) & (start + size >= hi + 1)))
    assert np.all(fits | (c == c0))


def test_offsets_vary_and_are_seeded():
    lo, hi = np.array([20, 20, 20]), np.array([23, 23, 23])
    draws = {tuple(pp.patch_centre(lo, hi, 32, 8, pp.placement_rng(0, "ds", f"case{i}", "t"))) for i in range(30)}
    assert len(draws) > 20  # the target's place varies from case to case
    a = pp.patch_centre(lo, hi, 32, 8, pp.placement_rng(3, "ds", "c", "t"))
    b = pp.patch_centre(lo, hi, 32, 8, pp.placement_rng(3, "ds", "c", "t"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pp.patch_centre(lo, hi, 32, 0, pp.placement_rng(3, "ds", "c", "t")),
                                  pp.patch_centre(lo, hi, 32))


def test_centred_patch_puts_an_even_box_exactly_in_the_middle():
    """A box of even width w in a cube of side S starts (S - w) / 2 before the box (no rng, or max_shift 0)."""
    lo, hi = np.array([4, 4, 10]), np.array([7, 13, 11])  # widths 4, 10, 2
    for c in (pp.patch_centre(lo, hi, 16), pp.patch_centre(lo, hi, 16, 0, np.random.default_rng(0)),
              pp.patch_centre(lo, hi, 16, 8)):  # a max_shift without a generator is centred too
        np.testing.assert_array_equal(c - 16 // 2, lo - (16 - (hi - lo + 1)) // 2)


def test_centre_bounds_closed_form():
    """Per axis: centres in [hi + 1 - S + S // 2, lo + S // 2] keep the box inside the cube, intersected
    with centre ± max_shift; a box of exactly S voxels fits (one centre), a larger one does not and keeps
    the box's centre (the cube cut symmetrically)."""
    c_min, c_max, fits = pp.centre_bounds([10, 10, 10], [39, 12, 10], 32, 8)
    np.testing.assert_array_equal(c_min, [24, 3, 2])  # width 30: the box binds; widths 3, 1: the shift binds
    np.testing.assert_array_equal(c_max, [26, 19, 18])
    assert fits.tolist() == [True, True, True]
    c_min, c_max, fits = pp.centre_bounds([0, 0, 0], [31, 33, 32], 32, 8)  # widths 32, 34, 33
    assert fits.tolist() == [True, False, False]
    np.testing.assert_array_equal(c_min, [16, 17, 16])
    np.testing.assert_array_equal(c_max, [16, 17, 16])
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        pp.centre_bounds([0, 0, 0], [3, 3, 3], 32, -1)


def test_centre_bounds_around_a_given_centre_inside_a_cube():
    """TaskBank's crops: the shift counted from the stored cube's centre (``around``), and the crop kept inside
    the cube (``extent``: starts 0..extent - S, centres S//2..extent - S + S//2). S = 8, shift 3, around
    (10, 10, 17), extent 20: axis 0's box (2..4) lies outside 7..13 (no centre: the box's own centre 3);
    axis 1 keeps 9..13 (the box binds below); axis 2 keeps 14..16 (the cube's far face binds, 20 without it)."""
    lo, hi, around = [2, 10, 16], [4, 12, 16], [10, 10, 17]
    c_min, c_max, fits = pp.centre_bounds(lo, hi, 8, 3, around=around, extent=20)
    assert fits.tolist() == [False, True, True]
    np.testing.assert_array_equal(c_min, [3, 9, 14])
    np.testing.assert_array_equal(c_max, [3, 13, 16])
    np.testing.assert_array_equal(pp.centre_bounds(lo, hi, 8, 3, around=around)[1], [3, 13, 20])


def test_offset_centres_take_every_allowed_value_and_no_other():
    """The shift is uniform over the whole allowed range, both ends included: one voxel with max_shift 2 ->
    centres 18..22; a 30-voxel box in a 32 cube -> only 24..26 keep it inside."""
    lo, hi = np.array([20, 10, 20]), np.array([20, 39, 20])
    seen = np.array([pp.patch_centre(lo, hi, 32, 2, np.random.default_rng(s)) for s in range(300)])
    assert set(seen[:, 0]) == set(seen[:, 2]) == {18, 19, 20, 21, 22}
    assert set(seen[:, 1]) == {24, 25, 26}


def test_placement_rng_is_the_stream_of_seed_dataset_case_task():
    """Each patch's offset stream is ``(placement_seed, dataset, case, task)``: every part, in that order, counts."""
    draw = lambda g: g.integers(0, 2 ** 62, 4).tolist()
    got = draw(pp.placement_rng(5, "ds", "case", "task"))
    assert got == draw(numpy_rng(5, "ds", "case", "task"))
    others = [pp.placement_rng(6, "ds", "case", "task"), pp.placement_rng(5, "case", "ds", "task"),
              pp.placement_rng(5, "ds", "case", "task2")]
    assert all(draw(g) != got for g in others)


def test_offset_patches_cover_the_target_off_centre(tmp_path):
    root = write_sample_msd(tmp_path)
    ds = open_dataset(root)
    task = ds.tasks()[0]
    cfg = load_profile("quick", {"data": {"placement": "offset", "max_offset": 0.25}})
    patches = pp.task_patches(ds, task, cfg, cache_dir=tmp_path / "cache")
    s = cfg["data"]["patch_size"]
    centres = []
    for p in patches:
        assert p.coverage == 1.0
        idx = np.argwhere(p.mask[0])
        centres.append((idx.min(0) + idx.max(0)) / 2)
    offsets = np.abs(np.asarray(centres) - s / 2)
    assert offsets.max() > 1.0 and offsets.max() <= 0.25 * s + 1.0
    again = pp.task_patches(ds, task, cfg, cache_dir=tmp_path / "cache")
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(patches, again))


@pytest.mark.parametrize("data, match", [({"placement": "random"}, "placement"), ({"max_offset": 0.7}, "max_offset")])
def test_bad_placement_config(data, match):
    with pytest.raises(ConfigError, match=match):
        pp.DataConfig.from_config({"data": data})


def _bank(margin: int, size: int = 16) -> TaskBank:
    images, masks, ids = {}, {}, {}
    for t, names in {"t/x/rib_left_1@CT": 3, "t/x/rib_left_2@CT": 3, "t/x/rib_right_7@CT": 3, "t/x/kidney_left@CT": 3,
                     "t/x/aorta@CT": 3}.items():
        side = size + 2 * margin
        m = torch.zeros(names, 1, side, side, side)
        c = side // 2
        m[:, :, c - 2:c + 2, c - 3:c + 3, c - 1:c + 1] = 1
        images[t], masks[t], ids[t] = torch.randn(names, 1, side, side, side), m, [f"c{i}" for i in range(names)]
    return TaskBank(images, masks, ids, margin=margin)


def test_training_crops_keep_the_target_and_move_it():
    bank = _bank(margin=4)
    g = torch.Generator().manual_seed(0)
    centres = set()
    for _ in range(30):
        ep = bank.sample(2, g)
        assert ep.support_images.shape[-3:] == (16, 16, 16)
        for m in (ep.support_masks, ep.query_masks):
            assert torch.all(m.flatten(1).sum(1) == 4 * 6 * 2)  # the whole target inside the crop
            idx = m[0, 0, 0].nonzero().float()
            centres.add(tuple(((idx.min(0).values + idx.max(0).values) / 2).tolist()))
    assert len(centres) > 10


def test_training_crops_stay_inside_cubes_of_off_centre_and_large_targets():
    # a target at the scan's edge sits off-centre in its cube, one larger than the patch cannot be
    # covered: every crop must still be a whole patch (a crash at episode 202 of the quick profile)
    size, margin = 16, 4
    side = size + 2 * margin
    masks = torch.zeros(4, 1, side, side, side)
    masks[0, :, 0:5, 2:8, 19:24] = 1          # at the cube's corner
    masks[1, :, 1:23, 3:21, 2:22] = 1         # larger than the patch on every axis
    masks[2, :, 5:7, 17:24, 0:3] = 1
    masks[3, :, 10:12, 10:12, 10:12] = 1
    bank = TaskBank({"t/x/liver@CT": torch.randn(4, 1, side, side, side)}, {"t/x/liver@CT": masks},
                    {"t/x/liver@CT": [f"c{i}" for i in range(4)]}, margin=margin)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        for i in range(4):
            img, m = bank._cut("t/x/liver@CT", i, g)
            assert img.shape == m.shape == (1, size, size, size)
            if i != 1:
                assert m.sum() == masks[i].sum()  # the whole target inside the crop


def test_smaller_training_crops_keep_the_target_within_the_scaled_offset():
    # train.crop_size: a 16^3 crop out of cubes made for 32^3 patches with a margin of 8; the
    # crop's centre moves at most margin * 16 / 32 = 4 voxels from the cube's centre
    size, margin, crop = 32, 8, 16
    side = size + 2 * margin
    masks = torch.zeros(3, 1, side, side, side)
    c = side // 2
    masks[0, :, c - 2:c + 2, c - 3:c + 3, c - 1:c + 1] = 1   # small, centred in its cube
    masks[1, :, c - 12:c + 12, c - 3:c + 3, c - 1:c + 1] = 1  # longer than the crop on one axis
    masks[2, :, 0:4, 2:6, 40:44] = 1                          # at the cube's corner (scan edge)
    bank = TaskBank({"t/x/kidney_left@CT": torch.randn(3, 1, side, side, side)}, {"t/x/kidney_left@CT": masks},
                    {"t/x/kidney_left@CT": ["c0", "c1", "c2"]}, margin=margin, crop=crop)
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        for i in range(3):
            img, m = bank._cut("t/x/kidney_left@CT", i, g)
            assert img.shape == m.shape == (1, crop, crop, crop)
            if i == 0:
                assert m.sum() == masks[0].sum()  # the whole target inside
                idx = m[0].nonzero().float()
                centre = (idx.min(0).values + idx.max(0).values + 1) / 2
                assert torch.all((centre - crop / 2).abs() <= margin * crop // size)
                starts.add(tuple(centre.tolist()))
            elif i == 1:
                # centred on one of its voxels: the long target fills at least half the crop's axis
                assert m[0].any(dim=(1, 2)).sum() >= crop // 2
            else:
                assert m.sum() == masks[2].sum()  # off-centre cube: the crop goes to the target
    assert len(starts) > 20
    ring = torch.zeros(1, 1, side, side, side)
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    r = ((yy - c) ** 2 + (xx - c) ** 2).float().sqrt()
    ring[0, 0, c - 1:c + 1] = ((r > 18) & (r < 20)).float()  # a rib-like ring wider than the crop, hollow centre
    curved = TaskBank({"t/x/rib_left_1@CT": torch.randn(1, 1, side, side, side)}, {"t/x/rib_left_1@CT": ring},
                      {"t/x/rib_left_1@CT": ["c0"]}, margin=margin, crop=crop)
    assert all(curved._cut("t/x/rib_left_1@CT", 0, g)[1].sum() > 0 for _ in range(100))
    ep = bank.sample(1, g)
    assert ep.support_images.shape[-3:] == ep.query_masks.shape[-3:] == (crop, crop, crop)


def test_crop_size_is_checked():
    with pytest.raises(ConfigError, match="multiple of 16"):
        TrainConfig.from_config({"train": {"crop_size": 40}})
    with pytest.raises(ConfigError, match="crop_size must be <= data.patch_size"):
        load_profile("quick", {"train": {"crop_size": 64}})
    assert load_profile("quick", {"train": {"crop_size": 32}})["train"]["crop_size"] == 32
    with pytest.raises(ValueError, match="crop must be in"):
        TaskBank.from_datasets([], "train", load_profile("quick"), crop=64)


def test_training_banks_store_masks_as_uint8_and_sample_the_same_float_patches(tmp_path):
    """A bank of cubes keeps its masks in a quarter of the memory; episodes are what float masks give."""
    root = write_sample_msd(tmp_path, "Task03_Liver", n_cases=4, labels=("liver", "cancer"))
    from hyperkit.data.layouts import discover_datasets
    cfg = load_profile("quick", {"data": {"patch_size": 16}})
    bank = TaskBank.from_datasets(discover_datasets(root.parent), "heldout", cfg, cache_dir=tmp_path / "cache",
                                  margin=4)
    flat = TaskBank.from_datasets(discover_datasets(root.parent), "heldout", cfg, cache_dir=tmp_path / "cache")
    assert {m.dtype for m in bank.masks.values()} == {torch.uint8}
    assert {m.dtype for m in flat.masks.values()} == {torch.float32}  # patches the model reads as they are
    as_float = TaskBank(bank.images, {t: m.float() for t, m in bank.masks.items()}, bank.case_ids, bank.spacing,
                        margin=bank.margin)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(10):
        a, b = bank.sample(2, g1), as_float.sample(2, g2)
        assert a.support_masks.dtype == a.query_masks.dtype == torch.float32
        for x, y in ((a.support_images, b.support_images), (a.support_masks, b.support_masks),
                     (a.query_images, b.query_images), (a.query_masks, b.query_masks)):
            assert torch.equal(x, y)


def test_group_sampling_balances_structure_groups():
    assert structure_group("t/TotalSegmentator/rib_left_10@CT") == "rib"
    assert structure_group("t/TotalSegmentator/vertebrae_T4@CT") == "vertebrae"
    assert structure_group("t/TotalSegmentator/lung_upper_lobe_left@CT") == "lung"
    assert structure_group("t/TotalSegmentator/iliac_artery_left@CT") == "iliac_artery"
    bank = _bank(margin=0)
    g = torch.Generator().manual_seed(0)
    count = {"uniform": 0, "group": 0}
    for sampling in count:
        for _ in range(300):
            count[sampling] += sum(structure_group(t) == "rib" for t in bank.sample(1, g, sampling).task_ids)
    assert abs(count["uniform"] / 300 - 3 / 5) < 0.1  # 3 of 5 tasks are ribs
    assert abs(count["group"] / 300 - 1 / 3) < 0.1  # 1 of 3 groups
    with pytest.raises(ValueError, match="sampling"):
        bank.sample(1, g, "weighted")


def test_uniform_sampling_without_margin_is_unchanged():
    """The paper's sampling draws exactly what it drew before groups and crops existed."""
    bank = _bank(margin=0)
    ep = bank.sample(2, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    order = torch.randperm(5, generator=g)[:2].tolist()
    assert ep.task_ids == [bank.task_ids[i] for i in order]


def test_warmup_then_exponential_decay():
    t = TrainConfig(episodes=100, warmup_episodes=10, lr_final_fraction=0.1)
    assert t.lr_factor(0) == pytest.approx(0.1 * t.gamma ** 0)
    assert t.lr_factor(4) == pytest.approx(0.5 * t.gamma ** 4)
    assert t.lr_factor(50) == pytest.approx(t.gamma ** 50)
    assert t.lr_factor(99) == pytest.approx(0.1, rel=0.03)
    assert TrainConfig(episodes=100).lr_factor(3) == pytest.approx(TrainConfig(episodes=100).gamma ** 3)
    for bad in ({"warmup_episodes": -1}, {"task_sampling": "all"}, {"val_supports": 0}, {"intensity": "huge"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainConfig.from_config({"train": bad})


def test_head_prior_sets_the_starting_foreground_probability():
    kw = {"base_width": 8, "hidden": 32, "n_patches": 4, "samplings": 1, "pos_dim": 8, "zstar_hidden": 16,
          "zstar_dim": 8, "head_hidden": 16}
    torch.manual_seed(0)
    model = HyperUNet(**kw, head_prior=0.02).eval()
    assert model.head_mlp[-1].bias[-1].item() == pytest.approx(math.log(0.02 / 0.98))
    img = torch.randn(1, 1, 16, 16, 16)
    msk = torch.zeros(1, 1, 16, 16, 16)
    msk[..., 5:10, 5:10, 5:10] = 1
    unet = model.generate(img, msk)
    assert float(torch.sigmoid(unet.head.bias.detach())) < 0.1
    with pytest.raises(ValueError, match="head_prior"):
        HyperUNet(**kw, head_prior=1.5)
