"""Each preprocessing step against the geometry it must produce."""

from __future__ import annotations


import nibabel as nib
import numpy as np
import pytest

import hyperkit.data.preprocess as pp
from hyperkit.config import load_profile
from hyperkit.data.layouts import CaseData, open_dataset
from hyperkit.data.sample import write_nifti, write_sample_msd, write_sample_totalseg
from hyperkit.data.tasks import Task
from hyperkit.errors import ConfigError


def _lps_case(spacing=(2.0, 2.0, 3.0)) -> tuple[CaseData, np.ndarray]:
    """A case stored with flipped x and y (LPS-like, as DICOM-derived CT often is)."""
    shape = (20, 16, 12)
    image = np.zeros(shape, np.float32)
    label = np.zeros(shape, np.int32)
    label[2:5, 3:6, 4:7] = 1  # near the low-x, low-y corner of the file grid
    image[label > 0] = 100.0
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [10.0, 20.0, -5.0]
    return CaseData("c", image[None], label, affine, spacing), affine


def test_resample_reorients_to_ras_and_isotropic():
    case, affine = _lps_case()
    out = pp.resample_case(case, 1.5)
    rot = out.affine[:3, :3]
    np.testing.assert_allclose(rot, np.diag([1.5, 1.5, 1.5]), atol=1e-6)  # RAS, isotropic
    # the label's world-space centre is preserved by orientation + resampling
    def world_centre(lab, aff):
        idx = np.argwhere(lab > 0).mean(0)
        return aff[:3, :3] @ idx + aff[:3, 3]
    np.testing.assert_allclose(world_centre(out.label, out.affine), world_centre(case.label, affine), atol=1.6)
    # world extent is kept: 20 x 2 mm -> about 40 / 1.5 voxels
    assert abs(out.label.shape[0] - 20 * 2 / 1.5) <= 1.5
    assert abs(out.label.shape[2] - 12 * 3 / 1.5) <= 1.5
    assert out.label.dtype == np.int32 and set(np.unique(out.label)) == {0, 1}



def test_resample_without_the_label_gives_the_same_image():
    """Guards ``with_label=False`` (a scan without a mask): the image, affine and shape are those of
    the resampling with the label, bit for bit; the label is all zero on the same grid."""
    case, _ = _lps_case()
    both, image_only = pp.resample_case(case, 1.5), pp.resample_case(case, 1.5, with_label=False)
    np.testing.assert_array_equal(image_only.image, both.image)
    np.testing.assert_array_equal(image_only.affine, both.affine)
    assert image_only.label.shape == both.label.shape and image_only.label.dtype == np.int32
    assert not image_only.label.any() and both.label.any()

def test_a_voxel_size_far_off_is_refused_before_resampling():
    """A header with voxels of 300 mm (a scan whose spacing was stored in the wrong unit): resampling a 40³
    scan to 1.5 mm asked MONAI for 800 GB and failed with a deep RuntimeError; it is refused first, with the
    field of view, the grid it would make and the question to ask. A whole body at 1.5 mm still passes."""
    image = np.zeros((1, 40, 40, 40), np.float32)
    case = CaseData("huge", image, np.zeros((40, 40, 40), np.int32), np.diag([300.0, 300.0, 300.0, 1.0]),
                    (300.0,) * 3)
    with pytest.raises(ValueError, match=r"huge: its field of view, 12000 x 12000 x 12000 mm \(40 x 40 x 40 voxels "
                                         r"of 300 x 300 x 300 mm\), would be 8000 x 8000 x 8000 voxels at 1.5 mm, "
                                         r"more than the 1,073,741,824 .*voxel size in the file's header right\?"):
        pp.resample_case(case, 1.5)
    body = CaseData("body", np.zeros((1, 2, 2, 2), np.float32), np.zeros((2, 2, 2), np.int32),
                    np.diag([500.0, 500.0, 1000.0, 1.0]), (500.0, 500.0, 1000.0))  # 1 x 1 x 2 m
    pp._check_resampled_size(body, 1.5)  # 667 x 667 x 1334 voxels: allowed


def test_ct_normalisation_clips_then_zscores():
    cfg = pp.DataConfig()
    x = np.array([-3000, -900, 0, 900, 3000] * 20, np.float32).reshape(10, 10, 1)
    y = pp.normalise_channel(x, "CT", cfg)
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.std()) - 1) < 1e-3
    assert y[x == -3000].max() == pytest.approx(y[x == -900].min())  # clipped to the same value


def test_ct_air_fraction_counts_voxels_below_minus_500_hu():
    x = np.array([-1000, -501, -500, 0, 40, 900, -3000, 200], np.float32).reshape(2, 2, 2)
    assert pp.ct_air_fraction(x) == pytest.approx(3 / 8)  # -1000, -501, -3000; -500 is not air
    with pytest.raises(ValueError, match=r"shape \(0, 4, 4\)"):
        pp.ct_air_fraction(np.zeros((0, 4, 4), np.float32))


@pytest.mark.parametrize("channel", ["CT", "T2"])
def test_normalisation_does_not_depend_on_the_thread_count(channel):
    """The cache keeps whatever the first process computed: a result that moved with the thread
    count made every later training depend on which job preprocessed a case first."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.normal(40.0, 300.0, (80, 80, 80)).astype(np.float32)  # large enough for parallel reductions
    before = torch.get_num_threads()
    try:
        out = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            out.append(pp.normalise_channel(x, channel, pp.DataConfig()))
    finally:
        torch.set_num_threads(before)
    assert all(np.array_equal(out[0], o) for o in out[1:])


def test_mri_normalisation_maps_percentiles():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 100.0, (20, 20, 20)).astype(np.float32)
    y = pp.normalise_channel(x, "FLAIR", pp.DataConfig())
    assert y.min() == 0.0 and y.max() == 1.0
    assert np.mean(y == 1.0) == pytest.approx(0.01, abs=0.005)


def test_paper_defaults_ct_window_and_mri_percentiles():
    """The paper's constants: CT clipped to [-900, 900] HU, MRI 1st and 99th percentiles mapped to [0, 1]."""
    cfg = pp.DataConfig()
    assert tuple(cfg.ct_clip) == (-900.0, 900.0) and tuple(cfg.mri_percentiles) == (1.0, 99.0)


def test_ct_normalisation_is_the_population_zscore_of_the_clipped_scan():
    """Guards the configured window (both ends, not symmetrised), the mean subtracted and the SD with ddof 0:
    clipping to [-100, 300] gives -100, -100, 100, 300, 300, 100 (mean 100, SD 200 sqrt(2/3))."""
    x = np.array([-1000, -100, 100, 300, 2000, 100], np.float32).reshape(1, 2, 3)
    y = pp.normalise_channel(x, "CT", pp.DataConfig(ct_clip=(-100.0, 300.0)))
    r = np.sqrt(1.5)
    np.testing.assert_allclose(y.ravel(), [-r, -r, 0, r, r, 0], atol=1e-5)
    assert y.dtype == np.float32 and y.shape == x.shape


@pytest.mark.parametrize("name", ["ct", " CT "])
def test_ct_normalisation_follows_the_channel_modality_not_its_spelling(name):
    """A channel that :func:`modality_of` calls CT gets the CT window and z-score, however it is spelled."""
    x = np.array([-3000, -900, 0, 900, 3000, 450], np.float32).reshape(1, 2, 3)
    np.testing.assert_array_equal(pp.normalise_channel(x, name, pp.DataConfig()),
                                  pp.normalise_channel(x, "CT", pp.DataConfig()))


@pytest.mark.parametrize("percentiles", [(1.0, 99.0), (10.0, 80.0)])
def test_mri_normalisation_is_the_increasing_map_of_the_configured_percentiles(percentiles):
    """On the values 0..100 the p-th percentile is p: voxels map to (x - lo) / (hi - lo), clipped to [0, 1]."""
    lo, hi = percentiles
    x = np.arange(101, dtype=np.float32).reshape(101, 1, 1)
    y = pp.normalise_channel(x, "T1", pp.DataConfig(mri_percentiles=percentiles))
    np.testing.assert_allclose(y.ravel(), np.clip((np.arange(101) - lo) / (hi - lo), 0.0, 1.0), atol=1e-6)


def test_crop_centred_pads_with_given_value_and_keeps_centre():
    vol = np.arange(10 * 10 * 10, dtype=np.float32).reshape(1, 10, 10, 10)
    cube, start = pp.crop_centred(vol, (1, 5, 8), 8, pad_value=-7.0)
    assert cube.shape == (1, 8, 8, 8)
    np.testing.assert_array_equal(start, [-3, 1, 4])
    assert cube[0, 4, 4, 4] == vol[0, 1, 5, 8]  # the centre voxel lands at S // 2
    assert (cube[0, :3] == -7.0).all()  # outside the volume -> pad value


def test_empty_cubes_and_grids_are_refused_with_the_value():
    """A side of 0 voxels would give an empty (1, 0, 0, 0) patch, a spacing of 0 or NaN a case MONAI leaves on its
    grid while recording the bad spacing: both are refused, naming the value."""
    vol = np.zeros((1, 10, 10, 10), np.float32)
    for size in (0, -4):
        with pytest.raises(ValueError, match=f"size must be a positive number of voxels, got {size}"):
            pp.crop_centred(vol, (5, 5, 5), size)
        with pytest.raises(ValueError, match=f"size must be a positive number of voxels, got {size}"):
            pp.patch_centre(np.array([2, 2, 2]), np.array([4, 4, 4]), size)
    with pytest.raises(ValueError, match=r"center must be three voxel indices, got \[5, 5\]"):
        pp.crop_centred(vol, (5, 5), 4)
    with pytest.raises(ValueError, match=r"lo <= hi on every axis, got lo \[2, 5, 2\], hi \[4, 4, 4\]"):
        pp.patch_centre(np.array([2, 5, 2]), np.array([4, 4, 4]), 8)
    case, _ = _lps_case()
    with pytest.raises(ValueError, match=r"task msd/d/b@T2 reads channel 1, but case c has 1 channel\(s\)"):
        pp.extract_patch(case, Task("msd/d/b@T2", "msd", "d", "b", 1, "T2", 1, "MRI"), 8)  # an IndexError before
    for spacing in (0.0, -2.0, float("nan")):
        with pytest.raises(ValueError, match=f"spacing must be a finite number of mm > 0, got {spacing}"):
            pp.resample_case(case, spacing)


@pytest.mark.parametrize("center", [(0, 0, 0), (9, 9, 9), (5, 2, 8), (8, 5, 1), (4, 4, 4)])
def test_crop_centred_equals_slicing_a_padded_volume(center):
    """Against NumPy: pad every side with each channel's own value, then slice ``S`` voxels from
    ``center - S // 2``; the start is returned as is (negative before the volume)."""
    size, pad = 6, np.array([-1.0, 5.0], np.float32)
    vol = np.stack([np.arange(1000, dtype=np.float32).reshape(10, 10, 10), np.full((10, 10, 10), 2.0, np.float32)])
    cube, start = pp.crop_centred(vol, center, size, pad_value=pad)
    big = np.stack([np.pad(vol[i], size, constant_values=pad[i]) for i in range(2)])
    s = np.asarray(center) - size // 2
    np.testing.assert_array_equal(start, s)
    want = big[:, s[0] + size:s[0] + 2 * size, s[1] + size:s[1] + 2 * size, s[2] + size:s[2] + 2 * size]
    np.testing.assert_array_equal(cube, want)


def test_task_patch_covers_target_and_affine_is_consistent(tmp_path):
    root = write_sample_msd(tmp_path)
    ds = open_dataset(root)
    task = ds.tasks()[0]
    cfg = load_profile("quick", {"data": {"placement": "centred"}})
    patches = pp.task_patches(ds, task, cfg, cache_dir=tmp_path / "cache")
    assert len(patches) == 3
    for p in patches:
        s = load_profile("quick")["data"]["patch_size"]
        assert p.image.shape == p.mask.shape == (1, s, s, s)
        assert p.image.dtype == np.float32 and p.mask.dtype == np.uint8
        assert p.coverage == 1.0 and p.spacing == (4.0, 4.0, 4.0)
        idx = np.argwhere(p.mask[0])
        centre = (idx.min(0) + idx.max(0)) / 2
        assert np.all(np.abs(centre - s / 2) <= 1.0)  # centred
        # the patch affine maps the mask's voxels to the same world points as the original label
        orig = nib.load(root / "labelsTr" / f"{p.case_id}.nii.gz")
        world = lambda aff, ijk: (aff[:3, :3] @ ijk.T).T + aff[:3, 3]
        w_patch = world(p.affine, idx.astype(float)).mean(0)
        oidx = np.argwhere(np.asarray(orig.dataobj) == task.label_value).astype(float)
        w_orig = world(orig.affine, oidx).mean(0)
        assert np.linalg.norm(w_patch - w_orig) < 4.0  # within one output voxel


def test_cache_second_run_resamples_nothing(tmp_path, monkeypatch):
    root = write_sample_totalseg(tmp_path)
    ds = open_dataset(root)
    task = ds.tasks()[0]
    cfg = load_profile("quick")
    first = pp.task_patches(ds, task, cfg, cache_dir=tmp_path / "cache")
    calls = []
    monkeypatch.setattr(pp, "resample_case", lambda *a, **k: calls.append(a) or None)
    second = pp.task_patches(ds, task, cfg, cache_dir=tmp_path / "cache")
    assert calls == []
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
    # a changed file invalidates its entry
    p = root / "s0000" / "ct.nii.gz"
    img = nib.load(p)
    write_nifti(p, np.asarray(img.dataobj) + 1.0, img.affine)
    monkeypatch.undo()
    pp.task_patches(ds, task, cfg, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4


@pytest.mark.parametrize("data, match", [
    ({"spacing": 0}, "spacing must be > 0"),
    ({"patch_size": 50}, "multiple of 16"),
    ({"ct_clip": [900, -900]}, "low < high"),
    ({"spacing": 1.0, "patchsize": 64}, r"unknown key\(s\) \[.patchsize.\] in data"),
])
def test_data_config_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        pp.DataConfig.from_config({"data": data})


def test_patch_of_target_larger_than_patch_reports_coverage():
    label = np.zeros((60, 60, 60), np.int32)
    label[5:55, 5:55, 5:55] = 1
    case = CaseData("big", np.zeros((1, 60, 60, 60), np.float32), label, np.eye(4), (1.0, 1.0, 1.0))
    from hyperkit.data.tasks import Task
    task = Task("x/y/z@CT", "msd", "y", "z", 1, "CT", 0, "CT")
    p = pp.extract_patch(case, task, 32)
    assert p is not None and p.coverage == pytest.approx(32 ** 3 / 50 ** 3)


def _two_channel_case() -> CaseData:
    label = np.zeros((8, 10, 6), np.int32)
    label[1:3, 3:5, 0:2] = 2  # x 1..2, y 3..4, z 0..1
    ct = np.full((8, 10, 6), -50.0, np.float32)  # channel 0: lower values than channel 1
    mr = 100.0 + np.arange(8 * 10 * 6, dtype=np.float32).reshape(8, 10, 6)
    affine = np.array([[0.0, 2.0, 0.0, 10.0], [3.0, 0.0, 0.0, -20.0], [0.0, 0.0, 4.0, 5.0], [0.0, 0.0, 0.0, 1.0]])
    return CaseData("c", np.stack([ct, mr]), label, affine, (1.0, 1.0, 1.0))


def test_extract_patch_on_a_small_closed_form_case():
    """The target's box x 1..2, y 3..4, z 0..1 in an 8^3 patch: centre (2, 4, 1), start (-2, 0, -3), the box at
    3..4 on every axis (centred); the task's channel, padded with that channel's minimum; the affine's origin
    moved to the start's world point (a non-diagonal affine); coverage 1."""
    case = _two_channel_case()
    task = Task("msd/d/b@T2", "msd", "d", "b", 2, "T2", 1, "MRI")
    p = pp.extract_patch(case, task, 8)
    start = np.array([-2, 0, -3])
    assert p.image.shape == p.mask.shape == (1, 8, 8, 8)
    want_mask = np.zeros((8, 8, 8), np.uint8)
    want_mask[3:5, 3:5, 3:5] = 1
    np.testing.assert_array_equal(p.mask[0], want_mask)
    big = np.pad(case.image[1], 8, constant_values=100.0)  # channel 1's minimum
    np.testing.assert_array_equal(p.image[0], big[start[0] + 8:start[0] + 16, 8:16, start[2] + 8:start[2] + 16])
    np.testing.assert_allclose(p.affine[:3, 3], case.affine[:3, :3] @ start + case.affine[:3, 3])
    np.testing.assert_array_equal(p.affine[:3, :3], case.affine[:3, :3])
    np.testing.assert_allclose(p.affine[:3, 3], [10.0 + 0.0, -20.0 - 6.0, 5.0 - 12.0])
    assert p.coverage == 1.0 and p.case_id == "c"
    assert pp.extract_patch(case, Task("msd/d/a@T2", "msd", "d", "a", 1, "T2", 1, "MRI"), 8) is None


def test_dataset_patches_with_a_margin_cut_cubes_of_side_s_plus_twice_the_margin(tmp_path):
    """Training banks' cubes: side ``S + 2 * margin``, centred on the target, placement ignored."""
    ds = open_dataset(write_sample_msd(tmp_path, n_cases=1))
    task = ds.tasks()[0]
    cfg = load_profile("quick", {"data": {"patch_size": 16, "placement": "offset"}})
    (p,) = pp.dataset_patches(ds, [task], cfg, cache_dir=tmp_path / "cache", margin=4)[task.task_id]
    assert p.image.shape == p.mask.shape == (1, 24, 24, 24)
    idx = np.argwhere(p.mask[0])
    assert np.all(np.abs((idx.min(0) + idx.max(0) + 1) / 2 - 12) <= 0.5)  # centred


def test_dataset_patches_refuses_a_task_of_another_layout(tmp_path):
    """A task with the dataset's name but another layout is not the dataset's: refused before any work."""
    ds = open_dataset(write_sample_msd(tmp_path, n_cases=1))
    t = ds.tasks()[0]
    other = Task(t.task_id.replace("msd/", "nnunet/"), "nnunet", t.dataset, t.class_name, t.label_value, t.channel,
                 t.channel_index, t.modality)
    with pytest.raises(ValueError, match="does not belong to dataset"):
        pp.dataset_patches(ds, [other], load_profile("quick"), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_target_lost_to_resampling_is_reported(tmp_path):
    root = write_sample_msd(tmp_path, n_cases=2)
    p = root / "labelsTr" / "sample_001.nii.gz"
    img = nib.load(p)
    lab = np.asarray(img.dataobj).copy()
    lab[lab == 2] = 0
    lab[3, 3, 3] = 2  # one 2 mm voxel of class 2: nearest resampling to 4 mm can miss it
    write_nifti(p, lab, img.affine)
    ds = open_dataset(root)
    task = ds.tasks()[1]
    cfg = {"data": {"spacing": 4.0, "patch_size": 16}}
    with pytest.warns(UserWarning, match="sample_001 vanished when resampled"):
        patches = pp.task_patches(ds, task, cfg, cache_dir=tmp_path / "cache")
    assert [q.case_id for q in patches] == ["sample_000"]


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_resampled_label_does_not_depend_on_its_stored_dtype(dtype):
    """Guards passing the label to MONAI as stored (no float32 copy first): the same values as a
    float32 label, on the flipped, anisotropic case."""
    case, _ = _lps_case()
    case.label[10:14, 8:12, 2:5] = 7  # a second label value
    want = pp.resample_case(case, 1.5).label
    got = pp.resample_case(CaseData(case.case_id, case.image, case.label.astype(dtype), case.affine, case.spacing),
                           1.5).label
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int32 and set(np.unique(got)) == {0, 1, 7}
