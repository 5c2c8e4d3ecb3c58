"""Audit of hyperkit/data/preprocess.py: hand-built inputs pinning the exact behaviour (mutation testing)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import hyperkit.data.preprocess as pp
from hyperkit.config import load_profile
from hyperkit.data.layouts import CaseData, open_dataset
from hyperkit.data.sample import write_sample_msd
from hyperkit.data.tasks import Task
from hyperkit.seeds import numpy_rng


# -- a duck-typed dataset for preprocess_case: files on disk (for the fingerprint), arrays in memory -------------

class _Case:
    def __init__(self, case_id, files):
        self.case_id, self.files = case_id, tuple(files)


class _StubDataset:
    """What preprocess_case reads of a Dataset: layout, name, channels, case(id).files, load_case(id)."""

    layout = "msd"

    def __init__(self, folder: Path, data: CaseData, channels=("CT",), name="stub", file_bytes=b"abc"):
        folder.mkdir(parents=True, exist_ok=True)
        self.file = folder / f"{data.case_id}.bin"
        if not self.file.exists():
            self.file.write_bytes(file_bytes)
        self.name, self.channels, self.data, self.loads = name, list(channels), data, 0
        self.cases = [_Case(data.case_id, [self.file])]

    def case(self, case_id):
        assert case_id == self.data.case_id
        return self.cases[0]

    def load_case(self, case_id):
        self.loads += 1
        return self.data


def _case(label_value=3, channels=1, shape=(8, 8, 8), spacing=2.0, seed=0) -> CaseData:
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1200.0, 1200.0, (channels, *shape)).astype(np.float32)
    for c in range(channels):
        image[c] *= (c + 1)  # channels differ
    label = np.zeros(shape, np.int32)
    label[2:5, 3:6, 1:4] = label_value
    return CaseData("case0", image, label, np.diag([spacing, spacing, spacing, 1.0]), (spacing,) * 3)


def _npz(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.npz"))


# -- default_cache_dir ---------------------------------------------------------------------------------------

def test_default_cache_dir_is_the_hyperkit_cache_variable_else_home(monkeypatch, tmp_path):
    """``$HYPERKIT_CACHE`` wins; without it ``~/.cache/hyperkit``."""
    monkeypatch.setenv("HYPERKIT_CACHE", str(tmp_path / "here"))
    assert pp.default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("HYPERKIT_CACHE")
    assert pp.default_cache_dir() == Path.home() / ".cache" / "hyperkit"


# -- resample_case --------------------------------------------------------------------------------------------

def test_resample_interpolates_the_image_linearly_but_keeps_label_values():
    """Images are resampled (bi/tri)linearly: a 2 mm ramp at 1 mm gets the midpoints; labels stay {0, 5}."""
    shape = (6, 4, 4)
    image = np.broadcast_to(np.arange(6, dtype=np.float32)[:, None, None] * 10.0, shape).copy()
    label = np.zeros(shape, np.int32)
    label[2:4] = 5
    out = pp.resample_case(CaseData("r", image[None], label, np.diag([2.0, 2.0, 2.0, 1.0]), (2.0,) * 3), 1.0)
    assert out.spacing == (1.0, 1.0, 1.0)
    line = out.image[0, :, 3, 3]
    np.testing.assert_allclose(line[:11], np.arange(11) * 5.0, atol=1e-4)  # 0, 5 (a midpoint), 10, ...
    assert set(np.unique(out.label)) == {0, 5}


# -- normalise_channel -----------------------------------------------------------------------------------------

def test_ct_zscore_uses_float64_statistics_bit_for_bit():
    """The z-score divides by the float64 mean/SD of the clipped scan (not float32 ones), exactly as torch applies
    them."""
    rng = np.random.default_rng(1)
    x = (np.round(rng.uniform(-1000, 1000, (12, 12, 12)) * 64) / 64).astype(np.float32)  # exact in the window
    y = pp.normalise_channel(x, "CT", pp.DataConfig(ct_clip=(-1024.0, 1024.0)))
    c64 = x.astype(np.float64)
    want = ((torch.from_numpy(x) - float(c64.mean())) / float(c64.std())).numpy()
    f32 = ((torch.from_numpy(x) - float(x.mean())) / float(x.std())).numpy()
    assert not np.array_equal(want, f32)  # the input tells float64 from float32 statistics apart
    np.testing.assert_array_equal(y, want)


def test_mri_normalisation_maps_to_zero_one_not_minus_one_one():
    """MRI: lower percentile -> 0, upper -> 1, values outside clipped (no negative outputs)."""
    x = np.arange(101, dtype=np.float32).reshape(1, 1, 101)
    y = pp.normalise_channel(x, "T2", pp.DataConfig(mri_percentiles=(20.0, 60.0)))
    np.testing.assert_allclose(y[0, 0, [0, 20, 40, 60, 100]], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    assert y.min() == 0.0


# -- preprocess_case and its cache -----------------------------------------------------------------------------

def test_preprocess_case_resamples_to_the_configured_spacing_and_normalises_each_channel(tmp_path):
    """Spacing 1.0 from 2 mm: 8 voxels become 15 (centres 0..14 mm); each channel is normalised on its own (CT
    z-score, MRI [0, 1])."""
    data = _case(channels=2)
    ds = _StubDataset(tmp_path / "ds", data, channels=("CT", "T2"))
    cfg = pp.DataConfig(spacing=1.0)
    out = pp.preprocess_case(ds, "case0", cfg, tmp_path / "cache")
    res = pp.resample_case(data, 1.0)
    assert out.image.shape == (2, 15, 15, 15) and out.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(out.image[0], pp.normalise_channel(res.image[0], "CT", cfg))
    np.testing.assert_array_equal(out.image[1], pp.normalise_channel(res.image[1], "T2", cfg))
    assert out.present_before_resampling == frozenset({3})


def test_cached_case_equals_the_computed_one_including_present_labels(tmp_path):
    """A second call reads the cache (no load) and returns the same image, label, affine, spacing and present set."""
    ds = _StubDataset(tmp_path / "ds", _case())
    cfg = pp.DataConfig(spacing=2.0)
    first = pp.preprocess_case(ds, "case0", cfg, tmp_path / "cache")
    second = pp.preprocess_case(ds, "case0", cfg, tmp_path / "cache")
    assert ds.loads == 1
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.label, second.label)
    np.testing.assert_array_equal(first.affine, second.affine)
    assert second.spacing == first.spacing == (2.0, 2.0, 2.0)
    assert second.present_before_resampling == first.present_before_resampling == frozenset({3})


@pytest.mark.parametrize("value", [255, 256, 300])
def test_cache_keeps_label_values_above_255(tmp_path, value):
    """Labels are stored as uint8 only when every value fits (< 256); 256 and above survive the round trip."""
    ds = _StubDataset(tmp_path / "ds", _case(label_value=value))
    cfg = pp.DataConfig(spacing=2.0)
    pp.preprocess_case(ds, "case0", cfg, tmp_path / "cache")
    cached = pp.preprocess_case(ds, "case0", cfg, tmp_path / "cache")
    assert ds.loads == 1
    assert set(np.unique(cached.label)) == {0, value}


@pytest.mark.parametrize("change", [{"spacing": 1.0}, {"ct_clip": (-100.0, 100.0)}, {"mri_percentiles": (5.0, 95.0)}])
def test_cache_key_changes_with_each_setting_of_steps_1_to_3(tmp_path, change):
    """A changed spacing, CT window or MRI percentiles misses the cache and gives the freshly computed result."""
    ds = _StubDataset(tmp_path / "ds", _case(channels=2), channels=("CT", "T2"))
    base = pp.DataConfig(spacing=2.0)
    pp.preprocess_case(ds, "case0", base, tmp_path / "cache")
    new = pp.DataConfig(**{"spacing": 2.0, **change})
    got = pp.preprocess_case(ds, "case0", new, tmp_path / "cache")
    assert ds.loads == 2 and len(_npz(tmp_path / "cache")) == 2
    want = pp.preprocess_case(ds, "case0", new, tmp_path / "fresh")
    np.testing.assert_array_equal(got.image, want.image)


def test_cache_key_ignores_placement_settings(tmp_path):
    """Placement, offset, seed and patch size are step 4: they reuse the cached case."""
    ds = _StubDataset(tmp_path / "ds", _case())
    pp.preprocess_case(ds, "case0", pp.DataConfig(spacing=2.0), tmp_path / "cache")
    pp.preprocess_case(ds, "case0", pp.DataConfig(spacing=2.0, placement="offset", max_offset=0.1, placement_seed=4,
                                                  patch_size=32), tmp_path / "cache")
    assert ds.loads == 1 and len(_npz(tmp_path / "cache")) == 1


def test_cache_key_follows_the_files_mtime_size_and_path(tmp_path):
    """A touched file (same size), a same-mtime file of another size, and a same-named file elsewhere each miss."""
    ds = _StubDataset(tmp_path / "ds", _case())
    cfg = pp.DataConfig(spacing=2.0)
    cache = tmp_path / "cache"
    pp.preprocess_case(ds, "case0", cfg, cache)
    st = ds.file.stat()
    os.utime(ds.file, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # same bytes, later mtime
    pp.preprocess_case(ds, "case0", cfg, cache)
    assert ds.loads == 2 and len(_npz(cache)) == 2
    st = ds.file.stat()
    ds.file.write_bytes(b"abcd")  # another size, mtime put back
    os.utime(ds.file, ns=(st.st_atime_ns, st.st_mtime_ns))
    pp.preprocess_case(ds, "case0", cfg, cache)
    assert ds.loads == 3 and len(_npz(cache)) == 3
    # the same file name, size and mtime in another folder: another dataset's case, not this entry
    other = _StubDataset(tmp_path / "elsewhere", _case(seed=9))
    other.file.write_bytes(b"abcd")
    os.utime(other.file, ns=(st.st_atime_ns, st.st_mtime_ns))
    got = pp.preprocess_case(other, "case0", cfg, cache)
    assert other.loads == 1
    np.testing.assert_array_equal(got.image, pp.preprocess_case(other, "case0", cfg, tmp_path / "fresh").image)


# -- crop_centred, patch_centre and centre_bounds -------------------------------------------------------------------

def test_crop_centred_pads_beyond_the_far_face_only():
    """A cube sticking out past the far faces only: padded there with the pad value, start returned unchanged."""
    vol = np.arange(6 * 6 * 6, dtype=np.float32).reshape(1, 6, 6, 6)
    cube, start = pp.crop_centred(vol, (5, 5, 5), 4, pad_value=-1.0)
    np.testing.assert_array_equal(start, [3, 3, 3])
    want = np.full((1, 4, 4, 4), -1.0, np.float32)
    want[:, :3, :3, :3] = vol[:, 3:, 3:, 3:]
    np.testing.assert_array_equal(cube, want)


def test_offset_draws_in_axis_order_and_skip_axes_that_do_not_fit():
    """Pinned draws: one ``rng.integers(c_min, c_max + 1)`` per fitting axis, x then y then z; a box wider than
    the cube stays centred and consumes no draw."""
    lo, hi = np.array([0, 20, 10]), np.array([40, 23, 10])
    for seed in range(5):
        got = pp.patch_centre(lo, hi, 32, 8, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        want = [20, rng.integers(14, 30 + 1), rng.integers(2, 18 + 1)]
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(pp.patch_centre(lo, hi, 32, 8, np.random.default_rng(0)), [20, 28, 12])


def test_centre_bounds_with_an_odd_cube_side():
    """Side 7: half is 3, so centres 7..13 keep a one-voxel box at 10 inside (start = centre - 3)."""
    c_min, c_max, fits = pp.centre_bounds([10, 10, 10], [10, 10, 10], 7, 10)
    np.testing.assert_array_equal(c_min, [7, 7, 7])
    np.testing.assert_array_equal(c_max, [13, 13, 13])
    assert fits.all()


def test_centre_bounds_inside_a_cube_binds_at_the_near_face():
    """With ``extent`` the crop may not start before 0: centre >= S // 2 even where the box allows less."""
    c_min, c_max, fits = pp.centre_bounds([1, 1, 1], [1, 1, 1], 8, 3, around=[4, 4, 4], extent=20)
    np.testing.assert_array_equal(c_min, [4, 4, 4])
    np.testing.assert_array_equal(c_max, [5, 5, 5])
    assert fits.all()


def test_extract_patch_of_an_odd_width_box():
    """Box x 2..4, y 3..5, z 1..3 (width 3) in an 8^3 cube: centre (3, 4, 2), start (-1, 0, -2), box at 3..5."""
    case = _case(label_value=3, shape=(8, 8, 8), spacing=1.0)
    task = Task("msd/stub/t@CT", "msd", "stub", "t", 3, "CT", 0, "CT")
    p = pp.extract_patch(case, task, 8)
    want = np.zeros((8, 8, 8), np.uint8)
    want[3:6, 3:6, 3:6] = 1
    np.testing.assert_array_equal(p.mask[0], want)
    np.testing.assert_array_equal(p.affine[:3, 3], [-1.0, 0.0, -2.0])
    big = np.pad(case.image[0], 8, constant_values=case.image[0].min())
    np.testing.assert_array_equal(p.image[0], big[7:15, 8:16, 6:14])


# -- dataset_patches -----------------------------------------------------------------------------------------------

def _expected_offset_patch(ds, task, cid, cfg, cache):
    case = pp.preprocess_case(ds, cid, cfg, cache)
    return pp.extract_patch(case, task, cfg.patch_size, cfg.max_shift,
                            numpy_rng(cfg.placement_seed, ds.name, cid, task.task_id))


@pytest.fixture(scope="module")
def msd(tmp_path_factory):
    root = tmp_path_factory.mktemp("msd")
    return open_dataset(write_sample_msd(root, n_cases=3, absent={0: (2,)})), root / "cache"


def test_offset_patches_use_the_seed_dataset_case_task_stream(msd):
    """Each offset patch is cut at ``patch_centre(..., max_shift, numpy_rng(placement_seed, dataset, case, task))``."""
    ds, cache = msd
    cfg = pp.DataConfig.from_config(load_profile("quick", {"data": {"patch_size": 16, "placement": "offset",
                                                                     "max_offset": 0.5, "placement_seed": 7}}))
    assert cfg.max_shift == 8
    tasks = ds.tasks()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # case 0 has no class 2 at all: nothing vanished, no warning
        got = pp.dataset_patches(ds, tasks, cfg, cache_dir=cache)
    n = 0
    for task in tasks:
        want = [p for p in (_expected_offset_patch(ds, task, c.case_id, cfg, cache) for c in ds.cases) if p is not None]
        assert [p.case_id for p in got[task.task_id]] == [p.case_id for p in want]
        for a, b in zip(got[task.task_id], want):
            np.testing.assert_array_equal(a.affine, b.affine)
            np.testing.assert_array_equal(a.mask, b.mask)
            n += 1
    assert n == 5  # 3 cases of class 1, 2 of class 2
    other = pp.dataset_patches(ds, tasks, pp.DataConfig(**{**cfg.as_dict(), "placement_seed": 8,
                                                            "ct_clip": tuple(cfg.ct_clip),
                                                            "mri_percentiles": tuple(cfg.mri_percentiles)}),
                               cache_dir=cache)
    assert any(not np.array_equal(a.affine, b.affine) for t in tasks for a, b in zip(got[t.task_id], other[t.task_id]))


def test_margin_of_one_cuts_centred_cubes_of_side_s_plus_2(msd):
    """margin=1: cubes of side S + 2, centred (placement ignored)."""
    ds, cache = msd
    cfg = pp.DataConfig(spacing=4.0, patch_size=16, placement="offset")
    task = ds.tasks()[0]
    (p, *_) = pp.dataset_patches(ds, [task], cfg, cache_dir=cache, margin=1)[task.task_id]
    case = pp.preprocess_case(ds, p.case_id, cfg, cache)
    want = pp.extract_patch(case, task, 18)
    assert p.image.shape == (1, 18, 18, 18)
    np.testing.assert_array_equal(p.affine, want.affine)


def test_case_ids_restrict_the_cases_and_an_empty_list_gives_none(msd):
    """``case_ids`` is honoured by dataset_patches and task_patches; ``[]`` means no case, not all of them."""
    ds, cache = msd
    cfg = pp.DataConfig(spacing=4.0, patch_size=16)
    task = ds.tasks()[0]
    assert pp.dataset_patches(ds, [task], cfg, cache_dir=cache, case_ids=[]) == {task.task_id: []}
    assert [p.case_id for p in pp.task_patches(ds, task, cfg, cache_dir=cache, case_ids=["sample_001"])] == \
        ["sample_001"]
