"""Audit of hyperkit.data.bank: exact draws of TaskBank against hand-built banks and a replayed generator."""

from __future__ import annotations

import pytest
import torch

from hyperkit.config import load_profile
from hyperkit.data.bank import Episode, TaskBank, structure_group
from hyperkit.errors import DataError


def _arange_bank(tasks: dict[str, int], side: int, margin: int = 0, crop: int = 0, box=None) -> TaskBank:
    """Images hold each voxel's flat index (plus 1000 * case): a crop tells its start; masks: ``box`` per case."""
    images, masks = {}, {}
    for t, n in tasks.items():
        base = torch.arange(side ** 3, dtype=torch.float32).reshape(1, 1, side, side, side)
        images[t] = base + 1000.0 * torch.arange(n, dtype=torch.float32).reshape(-1, 1, 1, 1, 1)
        m = torch.zeros(n, 1, side, side, side, dtype=torch.uint8)
        for k in range(n):
            (z0, z1), (y0, y1), (x0, x1) = box(k) if box else ((side // 2, side // 2 + 1),) * 3
            m[k, 0, z0:z1, y0:y1, x0:x1] = 1
        masks[t] = m
    return TaskBank(images, masks, {t: [f"c{k}" for k in range(n)] for t, n in tasks.items()}, margin=margin, crop=crop)


def _start(img: torch.Tensor, side: int) -> tuple[int, int, int]:
    """The start of a crop of an ``_arange_bank`` image (case offset removed)."""
    flat = int(img.flatten()[0].item()) % 1000
    return flat // side ** 2, (flat // side) % side, flat % side


def _expected_cut(mask: torch.Tensor, cube: int, margin: int, crop: int, g: torch.Generator) -> list[int]:
    """Starts by the documented rule, written independently: allowed starts keep the crop inside the cube, cover
    the box and lie within ``margin * size // full`` of the centring start; else the fallback."""
    full = cube - 2 * margin
    size = crop or full
    middle, half = (cube - size) // 2, size // 2
    shift = margin * size // full
    fg = mask[0].nonzero()
    lo, hi = fg.min(0).values.tolist(), fg.max(0).values.tolist()
    starts, voxel = [], None
    for a in range(3):
        ok = [s for s in range(cube - size + 1) if s <= lo[a] and s + size >= hi[a] + 1 and abs(s - middle) <= shift]
        if ok:
            first, last = ok[0], ok[-1]
        else:
            fb = middle
            if crop:
                if voxel is None:
                    voxel = fg[int(torch.randint(len(fg), (1,), generator=g))]
                fb = int(voxel[a]) - half
            first = last = min(max(fb, 0), cube - size)
        starts.append(first + int(torch.randint(last - first + 1, (1,), generator=g)))
    return starts


def test_structure_group_drops_copy_words_indices_and_case():
    """Copy words (middle, lobe, ...), indices and case are dropped; separators split; a name of copy words stays."""
    assert structure_group("t/x/lung_middle_lobe_right@CT") == "lung"
    assert structure_group("t/x/Kidney Left@CT") == "kidney"
    assert structure_group("t/x/vertebrae-L5@CT") == "vertebrae"
    assert structure_group("t/x/rib__12@CT") == "rib"
    assert structure_group("t/x/foo_t4x@CT") == "foo_t4x"  # not an index: the pattern is anchored
    assert structure_group("t/x/Left_3@CT") == "left_3"  # nothing left: the whole (lower-cased) name
    assert structure_group("t/x/hip_lobe@CT") == "hip"
    assert structure_group("t/x/_rib_left@CT") == "rib"  # a leading separator leaves no empty word


def test_groups_keep_sorted_task_order_within_a_group():
    """groups() lists each group's tasks in sorted id order."""
    bank = _arange_bank({"t/x/rib_left_2@CT": 2, "t/x/rib_left_1@CT": 2, "t/x/aorta@CT": 2}, side=2)
    assert bank.task_ids == ["t/x/aorta@CT", "t/x/rib_left_1@CT", "t/x/rib_left_2@CT"]
    assert bank.groups() == {"aorta": ["t/x/aorta@CT"], "rib": ["t/x/rib_left_1@CT", "t/x/rib_left_2@CT"]}


def test_episode_shard_takes_every_world_th_task():
    """shard(rank, world) keeps tasks rank, rank + world, ..."""
    x = torch.arange(5.0).reshape(5, 1, 1, 1, 1, 1)
    ep = Episode(list("abcde"), x, x + 10, x + 20, x + 30).shard(1, 2)
    assert ep.task_ids == ["b", "d"]
    assert ep.query_masks.flatten().tolist() == [31.0, 33.0]


def test_pick_tasks_uniform_replays_randperm_then_randint():
    """Uniform: randperm while n <= tasks (n == tasks included), then randint with replacement."""
    bank = _arange_bank({f"t/x/o{k}@CT": 2 for k in range(3)}, side=2)
    ids = bank.task_ids
    for n in (2, 3):
        g, r = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        assert bank._pick_tasks(n, g, "uniform") == [ids[i] for i in torch.randperm(3, generator=r)[:n].tolist()]
        assert torch.equal(g.get_state(), r.get_state())
    g, r = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert bank._pick_tasks(7, g, "uniform") == [ids[i] for i in torch.randint(3, (7,), generator=r).tolist()]


def test_pick_tasks_group_draws_a_group_then_a_member_from_the_generator():
    """Group: groups by randperm/randint, then one member by randint (groups of one draw nothing)."""
    tasks = {"t/x/aorta@CT": 2, "t/x/rib_left_1@CT": 2, "t/x/rib_left_2@CT": 2,
             "t/x/vertebrae_T1@CT": 2, "t/x/vertebrae_T2@CT": 2, "t/x/vertebrae_T3@CT": 2}
    bank = _arange_bank(tasks, side=2)
    pools = list(bank.groups().values())
    for seed in range(6):
        for n in (2, 3, 5):
            g, r = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
            order = (torch.randperm(3, generator=r)[:n] if n <= 3 else torch.randint(3, (n,), generator=r)).tolist()
            want = [pools[i][int(torch.randint(len(pools[i]), (1,), generator=r))] if len(pools[i]) > 1 else pools[i][0]
                    for i in order]
            torch.manual_seed(seed + 100)  # the global generator must not matter
            assert bank._pick_tasks(n, g, "group") == want
            assert torch.equal(g.get_state(), r.get_state())
    with pytest.raises(ValueError, match="sampling"):
        bank._pick_tasks(1, torch.Generator(), "Group")


def test_cut_without_margin_or_crop_is_the_stored_case_itself():
    """margin = crop = 0: the stored tensors, untouched, and no draw."""
    bank = _arange_bank({"t/x/liver@CT": 2}, side=4)
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    img, m = bank._cut("t/x/liver@CT", 1, g)
    assert img is bank.images["t/x/liver@CT"][1] or torch.equal(img, bank.images["t/x/liver@CT"][1])
    assert img.shape == (1, 4, 4, 4) and m.dtype == torch.uint8
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("margin,crop,box", [
    (2, 0, lambda k: ((4, 5), (3, 6), (2, 7))),          # fits on z, y; x larger than the crop -> centred
    (2, 3, lambda k: ((4, 5), (4, 6), (1, 7))),          # odd crop: scaled shift, half, middle; x falls back
    (2, 3, lambda k: ((0, 1), (7, 8), (3, 4 + k))),      # target at the cube's corners: no allowed start
    (3, 0, lambda k: ((5, 6), (4, 6), (6 - k, 7))),      # wider margin
])
def test_cut_draws_exact_starts(margin, crop, box):
    """_cut's starts equal the rule's, draw for draw, and masks come back float32."""
    side = 8 if margin == 2 else 10
    bank = _arange_bank({"t/x/liver@CT": 2}, side=side, margin=margin, crop=crop, box=box)
    size = crop or side - 2 * margin
    g, r = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    seen = set()
    for _ in range(40):
        for k in range(2):
            img, m = bank._cut("t/x/liver@CT", k, g)
            want = _expected_cut(bank.masks["t/x/liver@CT"][k], side, margin, crop, r)
            assert img.shape == m.shape == (1, size, size, size)
            assert list(_start(img, side)) == want
            assert m.dtype == torch.float32
            z, y, x = want
            assert torch.equal(m, bank.masks["t/x/liver@CT"][k][:, z:z + size, y:y + size, x:x + size].float())
            seen.add(tuple(want))
    assert torch.equal(g.get_state(), r.get_state())
    assert len(seen) > 1


def test_cut_crop_without_margin_cuts_a_smaller_patch():
    """crop > 0 with margin 0 still cuts: centred crops (no shift allowed) of the crop's side."""
    bank = _arange_bank({"t/x/liver@CT": 2}, side=6, crop=4, box=lambda k: ((2, 4), (2, 4), (2, 4)))
    img, m = bank._cut("t/x/liver@CT", 0, torch.Generator().manual_seed(0))
    assert _start(img, 6) == (1, 1, 1) and m.shape == (1, 4, 4, 4) and m.sum() == 8


def test_sample_replays_tasks_pairs_and_cuts():
    """sample: tasks, then per task randperm pair (support first, query second), each cut in that order."""
    tasks = {"t/x/rib_left_1@CT": 3, "t/x/rib_left_2@CT": 2, "t/x/aorta@CT": 4}
    bank = _arange_bank(tasks, side=8, margin=2, crop=3, box=lambda k: ((3, 5), (4, 5), (2, 6)))
    for sampling in ("uniform", "group"):
        g, r = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        for _ in range(10):
            ep = bank.sample(2, g, sampling)
            chosen = bank._pick_tasks(2, r, sampling)
            assert ep.task_ids == chosen
            assert ep.support_images.shape == ep.query_masks.shape == (2, 1, 1, 3, 3, 3)
            assert ep.support_masks.dtype == ep.query_masks.dtype == torch.float32
            for b, tid in enumerate(chosen):
                pair = torch.randperm(tasks[tid], generator=r)[:2].tolist()
                assert pair[0] != pair[1]
                for k, imgs in ((pair[0], ep.support_images), (pair[1], ep.query_images)):
                    want = _expected_cut(bank.masks[tid][k], 8, 2, 3, r)
                    assert int(imgs[b, 0].flatten()[0].item()) // 1000 == k
                    assert list(_start(imgs[b, 0], 8)) == want


def test_from_datasets_bounds_on_crop():
    """crop == patch size is allowed (then no data: DataError); negative or larger crops are refused."""
    cfg = load_profile("quick", {"data": {"patch_size": 16}})
    with pytest.raises(DataError):
        TaskBank.from_datasets([], "train", cfg, crop=16)
    for bad in (-1, 17):
        with pytest.raises(ValueError, match="crop must be in"):
            TaskBank.from_datasets([], "train", cfg, crop=bad)
    with pytest.raises(ValueError, match="margin must be >= 0 voxels, got -4"):  # failed only when sampled
        TaskBank.from_datasets([], "train", cfg, margin=-4)


def test_no_task_of_a_role_names_the_data_folder_not_one_dataset(tmp_path):
    """The validation tasks are TotalSegmentator's; a folder with an MSD dataset only named that dataset."""
    from hyperkit.data.layouts import discover_datasets
    from hyperkit.data.sample import write_sample_msd

    write_sample_msd(tmp_path / "data", n_cases=2)
    cfg = load_profile("quick", {"data": {"patch_size": 16}})
    with pytest.raises(DataError, match="no val task with at least 2 cases") as caught:
        TaskBank.from_datasets(discover_datasets(tmp_path / "data"), "val", cfg, cache_dir=tmp_path / "cache",
                               progress=False)
    assert str(caught.value).startswith(f"{tmp_path / 'data'}:") and "Task90_Sample" not in str(caught.value)


def test_from_datasets_refuses_a_split_missing_roles_before_reading_data():
    """A split without every role is a ConfigError naming the missing roles, even with no dataset to read."""
    from hyperkit.errors import ConfigError
    cfg = load_profile("quick", {"data": {"patch_size": 16}})
    with pytest.raises(ConfigError, match=r"roles \['heldout', 'val', 'train'\].*missing \['heldout', 'val'\]"):
        TaskBank.from_datasets([], "train", cfg, {"train": ["*"]})


def test_from_datasets_keeps_a_task_with_exactly_min_cases(tmp_path):
    """A task present in exactly min_cases cases is kept; one more required drops it (recorded in dropped)."""
    from hyperkit.data.layouts import discover_datasets
    from hyperkit.data.sample import write_sample_msd
    root = write_sample_msd(tmp_path, "Task03_Liver", n_cases=2, labels=("liver",))
    cfg = load_profile("quick", {"data": {"patch_size": 16}})
    ds = discover_datasets(root.parent)
    bank = TaskBank.from_datasets(ds, "heldout", cfg, cache_dir=tmp_path / "c", min_cases=2)
    assert len(bank) == 1 and all(len(v) == 2 for v in bank.case_ids.values())
    assert {m.dtype for m in bank.masks.values()} == {torch.float32}
    with pytest.warns(UserWarning, match="left out"), pytest.raises(DataError):
        TaskBank.from_datasets(ds, "heldout", cfg, cache_dir=tmp_path / "c", min_cases=3)


def test_sample_refuses_fewer_than_one_task_and_a_task_of_one_case():
    """sample(0) failed in torch.stack and sample(-1) silently gave len - 1 tasks; a task of one case (a bank built
    with min_cases=1) failed with an IndexError: all refused with the offending value."""
    imgs = {f"t/x/o{k}@CT": torch.zeros(2, 1, 2, 2, 2) for k in range(3)}
    bank = TaskBank(imgs, {k: v.clone() for k, v in imgs.items()}, {k: ["a", "b"] for k in imgs})
    for n in (0, -1):
        with pytest.raises(ValueError, match=f"n_tasks must be >= 1, got {n}"):
            bank.sample(n, torch.Generator().manual_seed(0))
    one = TaskBank({"t/x/o@CT": torch.zeros(1, 1, 2, 2, 2)}, {"t/x/o@CT": torch.zeros(1, 1, 2, 2, 2)},
                   {"t/x/o@CT": ["a"]})
    with pytest.raises(ValueError, match="t/x/o@CT: 1 case, an episode needs 2"):
        one.sample(1, torch.Generator().manual_seed(0))
