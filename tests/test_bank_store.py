"""A training bank kept on disk (:mod:`hyperkit.data.store`): the episodes of a bank in memory, its cases written
once and reused, an interrupted write never taken for a finished one, and the choice of ``train(bank=...)``."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperkit.config import load_profile
from hyperkit.data import preprocess as pp
from hyperkit.data import store as st
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg


def _data(tmp_path: Path) -> Path:
    write_sample_msd(tmp_path / "data", "Task03_Liver", n_cases=4, labels=("liver", "cancer"))
    write_sample_totalseg(tmp_path / "data", n_cases=6, structures=("aorta", "kidney_left", "sternum"))
    return tmp_path / "data"


CFG = load_profile("quick", {"data": {"patch_size": 16}})


def _banks(root: Path, tmp_path: Path, role: str = "heldout", **kw) -> tuple[TaskBank, TaskBank]:
    ds = discover_datasets(root)
    memory = TaskBank.from_datasets(ds, role, CFG, cache_dir=tmp_path / "cache", margin=4, **kw)
    disk = TaskBank.from_datasets(ds, role, CFG, cache_dir=tmp_path / "cache", margin=4,
                                  store=tmp_path / "cache" / "banks", **kw)
    return memory, disk


@pytest.mark.parametrize("role, crop", [("heldout", 0), ("train", 0), ("train", 8)])
def test_a_bank_on_disk_samples_the_episodes_of_a_bank_in_memory(tmp_path: Path, role: str, crop: int) -> None:
    memory, disk = _banks(_data(tmp_path), tmp_path, role, crop=crop)
    assert memory.task_ids == disk.task_ids and memory.case_ids == disk.case_ids and memory.spacing == disk.spacing
    assert memory.dropped == disk.dropped
    for t in memory.task_ids:
        assert isinstance(disk.images[t], st.DiskCubes) and disk.images[t].shape == memory.images[t].shape
        for i in range(len(disk.masks[t])):  # the stored target boxes are those the bank in memory finds
            stored, found = disk.boxes[(t, i)], memory._target_box(t, i, memory.masks[t][i])
            assert all(np.array_equal(a, b) for a, b in zip(stored, found))
            for kind in ("images", "masks"):  # every cube, read whole, is the cube in memory (padding included)
                got, want = getattr(disk, kind)[t][i][...], getattr(memory, kind)[t][i]
                assert got.dtype == want.dtype and torch.equal(got, want), (t, i, kind)
    stored = [w for t in disk.task_ids for w in disk.images[t].windows]
    side = stored[0].side
    assert any(min(w.start) < 0 for w in stored)  # cubes across the scan's edge were compared above
    assert all(w.side == side for w in stored)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(12):
        a, b = memory.sample(2, g1, "group"), disk.sample(2, g2, "group")
        assert a.task_ids == b.task_ids
        for x, y in ((a.support_images, b.support_images), (a.support_masks, b.support_masks),
                     (a.query_images, b.query_images), (a.query_masks, b.query_masks)):
            assert x.dtype == y.dtype and torch.equal(x, y)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_stored_cubes_are_reused_and_an_interrupted_write_is_not(tmp_path: Path, monkeypatch) -> None:
    root = _data(tmp_path)
    _, first = _banks(root, tmp_path)
    folders = sorted((tmp_path / "cache" / "banks").iterdir())
    assert folders and all((f / "index.json").is_file() for f in folders)
    # a second bank reads the stored cases: no case is preprocessed
    monkeypatch.setattr(st, "preprocess_case", lambda *a, **k: pytest.fail("preprocessed again"))
    again = TaskBank.from_datasets(discover_datasets(root), "heldout", CFG, cache_dir=tmp_path / "cache", margin=4,
                                   store=tmp_path / "cache" / "banks")
    assert again.case_ids == first.case_ids
    monkeypatch.undo()
    assert all(sorted(p.name for p in f.iterdir()) == ["index.json"] for f in folders)  # no voxel of its own
    # a cached case removed since: the store is indexed again (preprocessing it anew), not read from a missing file
    gone = next((tmp_path / "cache").glob("msd-*.npz"))
    gone.unlink()
    rebuilt = TaskBank.from_datasets(discover_datasets(root), "heldout", CFG, cache_dir=tmp_path / "cache", margin=4,
                                     store=tmp_path / "cache" / "banks", workers=1)  # (workers > 1 refill the cache)
    assert gone.is_file() and rebuilt.case_ids == first.case_ids
    for t in first.task_ids:  # every cube readable, and the same
        for i in range(len(first.images[t])):
            assert torch.equal(first.images[t][i][...], rebuilt.images[t][i][...])
    # a write stopped half-way leaves no folder that looks finished
    for f in folders:
        for p in sorted(f.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        f.rmdir()
    calls = []

    def stop_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return pp.preprocess_case(*args, **kwargs)

    monkeypatch.setattr(st, "preprocess_case", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        TaskBank.from_datasets(discover_datasets(root), "heldout", CFG, cache_dir=tmp_path / "cache", margin=4,
                               store=tmp_path / "cache" / "banks")
    assert list((tmp_path / "cache" / "banks").iterdir()) == []  # the temporary folder removed
    monkeypatch.undo()
    rebuilt = TaskBank.from_datasets(discover_datasets(root), "heldout", CFG, cache_dir=tmp_path / "cache", margin=4,
                                     store=tmp_path / "cache" / "banks")
    assert rebuilt.case_ids == first.case_ids


def test_a_changed_case_file_makes_a_new_store(tmp_path: Path) -> None:
    root = _data(tmp_path)
    _banks(root, tmp_path)
    before = {p.name for p in (tmp_path / "cache" / "banks").iterdir()}
    label = root / "Task03_Liver" / "labelsTr" / "sample_000.nii.gz"
    os.utime(label, ns=(1, 1))  # rewritten in place: another modification time
    _banks(root, tmp_path)
    assert len({p.name for p in (tmp_path / "cache" / "banks").iterdir()} - before) == 1


def test_a_cube_window_cuts_what_crop_centred_cuts_and_refuses_other_keys(tmp_path: Path) -> None:
    """A stored cube read through its window, whole or sliced, inside the scan or across its edge, equals the cube
    :func:`~hyperkit.data.preprocess.crop_centred` cuts from the volume (image: padded with the channel's minimum,
    mask: 0)."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 9, 7, 8)).astype(np.float32)
    label = rng.integers(0, 3, size=(9, 7, 8)).astype(np.uint8)
    with open(tmp_path / "c.npz", "wb") as fh:  # as the preprocessing cache writes a case
        np.savez(fh, image=image, label=label, affine=np.eye(4))
    arrays = st.npz_members(tmp_path / "c.npz", ["image", "label"])
    assert np.array_equal(arrays["image"].map(), image) and np.array_equal(arrays["label"].map(), label)
    side = 6
    for start in ([0, 0, 0], [2, 1, 1], [-3, 4, -2], [5, -4, 6], [20, 0, 0]):
        centre = np.asarray(start) + side // 2
        want_img, got_start = pp.crop_centred(image[1:2], centre, side, pad_value=float(image[1].min()))
        assert got_start.tolist() == start
        want_msk, _ = pp.crop_centred((label == 2)[None].astype(np.float32), centre, side)
        img = st.CubeWindow(arrays["image"], start, side, channel=1, pad=float(image[1].min()))
        msk = st.CubeWindow(arrays["label"], start, side, value=2)
        assert img.shape == msk.shape == torch.Size((1, side, side, side))
        assert torch.equal(img[...], torch.from_numpy(want_img)) and img[...].dtype == torch.float32
        assert torch.equal(msk[...], torch.from_numpy((want_msk > 0.5).astype(np.uint8)))
        sl = (slice(None), slice(1, 5), slice(0, 6), slice(2, 3))
        assert torch.equal(img[sl], torch.from_numpy(want_img)[sl]) and torch.equal(msk[0], msk[...][0])
    cubes = st.DiskCubes([img, img])
    assert cubes.shape == torch.Size((2, 1, side, side, side)) and len(cubes) == 2 and cubes[1] is img
    with pytest.raises(TypeError, match="one integer index"):
        cubes[0:1]
    for bad, match in ((1, "one channel"), ((slice(0, 1), slice(None)), "':' or 0"),
                       ((0, slice(None, None, 2)), "unit steps"), ((0, 1), "three slices")):
        with pytest.raises(IndexError, match=match):
            img[bad]
    with pytest.raises(ValueError, match="at least one cube"):
        st.DiskCubes([])
    with pytest.raises(ValueError, match="an image channel or a label value"):
        st.CubeWindow(arrays["image"], [0, 0, 0], side)
    with open(tmp_path / "z.npz", "wb") as fh:
        np.savez_compressed(fh, image=image)
    with pytest.raises(ValueError, match="compressed"):
        st.npz_members(tmp_path / "z.npz", ["image"])
    with pytest.raises(ValueError, match="margin >= 1 voxel"):
        st.stored_patches(None, [], pp.DataConfig.from_config(CFG), tmp_path, None, [], 0)


def test_the_bound_of_a_banks_memory() -> None:
    assert st.cube_bytes(72) == 5 * 72 ** 3  # float32 image + uint8 mask
    assert st.cube_bytes(192) / 2 ** 20 == pytest.approx(33.75)  # the paper profile: 128 + 2 * 32


def test_training_with_its_bank_on_disk_equals_training_with_it_in_memory(tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    """``train(bank="disk")`` trains the same weights and logs as ``bank="memory"`` (bit for bit), records where the
    bank was kept, and ``auto`` keeps it on disk when its bound does not fit in half the available memory."""
    from hyperkit.training import loop
    from hyperkit.training.loop import read_jsonl, train
    from test_training import tiny_cfg

    root = tmp_path / "data"
    write_sample_totalseg(root, n_cases=4, structures=("aorta", "stomach", "kidney_left", "esophagus"))
    cfg = tiny_cfg(episodes=3)
    runs = {}
    for bank in ("memory", "disk"):
        runs[bank] = train(cfg, root, tmp_path / bank, cache_dir=tmp_path / "cache", progress=False, bank=bank)
        assert json.loads((tmp_path / bank / "run.json").read_text())["training_bank"] == bank
    for (k, a), (_, b) in zip(runs["memory"].model.state_dict().items(), runs["disk"].model.state_dict().items()):
        assert torch.equal(a, b), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]
    for name in ("metrics.jsonl", "validation.jsonl"):
        assert strip(read_jsonl(tmp_path / "memory" / name)) == strip(read_jsonl(tmp_path / "disk" / name))
    assert any((tmp_path / "cache" / "banks").iterdir())
    capsys.readouterr()
    monkeypatch.setattr(loop, "available_memory", lambda: 2 ** 20)  # 1 MiB free
    train(cfg, root, tmp_path / "auto", cache_dir=tmp_path / "cache", progress=False)
    assert json.loads((tmp_path / "auto" / "run.json").read_text())["training_bank"] == "disk"
    assert "against 0.0 GiB available: its cubes are cut from the cached cases per episode" in capsys.readouterr().out
    monkeypatch.setattr(loop, "available_memory", lambda: 2 ** 40)
    train(cfg, root, tmp_path / "auto2", cache_dir=tmp_path / "cache", progress=False)
    assert json.loads((tmp_path / "auto2" / "run.json").read_text())["training_bank"] == "memory"
    with pytest.raises(ValueError, match="bank must be one of \\['auto', 'memory', 'disk'\\], got 'ram'"):
        train(cfg, root, tmp_path / "bad", cache_dir=tmp_path / "cache", progress=False, bank="ram")
    assert not (tmp_path / "bad").exists()


def test_a_write_left_by_a_killed_process_is_cleared(tmp_path: Path) -> None:
    """SIGKILL leaves a temporary folder no ``finally`` removed: the next write of the same bank clears it (a folder of
    a process still running is left to it)."""
    root = _data(tmp_path)
    _banks(root, tmp_path)
    banks = tmp_path / "cache" / "banks"
    finished = sorted(p for p in banks.iterdir())
    host = st._safe(socket.gethostname())
    dead = banks / f"{finished[0].name}.partial-{host}-999999999"
    running = banks / f"{finished[0].name}.partial-{host}-{os.getppid()}"
    elsewhere = banks / f"{finished[0].name}.partial-another-machine-999999999"  # a shared cache: not ours to judge
    for leftover in (dead, running, elsewhere):
        (leftover / "t0000-x").mkdir(parents=True)
    for f in finished:
        import shutil
        shutil.rmtree(f)
    _banks(root, tmp_path)
    assert not dead.exists() and running.exists() and elsewhere.exists()
    assert all((f / "index.json").is_file() for f in finished)


def test_a_new_preprocessing_version_makes_a_new_store(tmp_path: Path, monkeypatch) -> None:
    """Stored cubes persist across runs: a bump of the preprocessing cache's version (its cases changed) must not
    serve the cubes cut from the cases before it."""
    root = _data(tmp_path)
    _banks(root, tmp_path)
    before = {p.name for p in (tmp_path / "cache" / "banks").iterdir()}
    monkeypatch.setattr(pp, "_CACHE_VERSION", pp._CACHE_VERSION + 100)
    _banks(root, tmp_path)
    assert len({p.name for p in (tmp_path / "cache" / "banks").iterdir()} - before) == 1


def test_target_box_is_the_first_and_last_foreground_voxel_per_axis() -> None:
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.uint8, torch.float32):
        for _ in range(50):
            mask = (torch.rand(1, 7, 9, 11, generator=g) > 0.97).to(dtype)
            if not mask.any():
                continue
            fg = mask[0].nonzero()
            lo, hi = st.target_box(mask)
            assert lo.tolist() == fg.min(0).values.tolist() and hi.tolist() == fg.max(0).values.tolist()


def test_the_store_folder_names_the_cube_side_and_the_task_definitions(tmp_path: Path) -> None:
    """Two profiles with one margin but other patch sizes (128 at 0.25, 64 at 0.5: margin 32 both) must not share
    cubes, nor a dataset whose task definitions changed with its case files unchanged."""
    root = _data(tmp_path)
    ds = [d for d in discover_datasets(root) if d.layout == "msd"][0]
    tasks = ds.tasks()
    a = st._folder_key(ds, tasks, pp.DataConfig.from_config(load_profile("quick", {"data": {"patch_size": 16}})),
                       [c.case_id for c in ds.cases], 4)
    b = st._folder_key(ds, tasks, pp.DataConfig.from_config(load_profile("quick", {"data": {"patch_size": 32}})),
                       [c.case_id for c in ds.cases], 4)
    import dataclasses
    other = [dataclasses.replace(tasks[0], label_value=tasks[0].label_value + 1)] + tasks[1:]
    c = st._folder_key(ds, other, pp.DataConfig.from_config(CFG), [c.case_id for c in ds.cases], 4)
    assert len({a, b, c}) == 3
