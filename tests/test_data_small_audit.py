"""Audit of the small data modules (found by mutation testing): hyperkit.data.nifti (reading, refusals,
path containment, reproducible writing), hyperkit.data.sample (index files and sample folders),
hyperkit.data.splits, hyperkit.data.identity and hyperkit.data.tasks. Fixtures are tiny arrays and
NIfTI files written under tmp_path."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from hyperkit.data.nifti import (load_header, nifti_bytes, read_image, read_label, safe_join, same_geometry,
                                 spacing_of, strip_nifti, write_nifti)
from hyperkit.errors import DataError


def _save(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Save ``array`` with nibabel as it is (no checks), keeping its dtype."""
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine, dtype=array.dtype), str(path))
    return path


# -- hyperkit.data.nifti: names and paths ----------------------------------------------------------

@pytest.mark.parametrize("name, stem", [("liver_3.nii.gz", "liver_3"), ("a.nii", "a"),
                                        ("meta.csv", "meta.csv")])
def test_strip_nifti_removes_only_a_nifti_ending(name: str, stem: str) -> None:
    assert strip_nifti(name) == stem


def test_safe_join_refuses_an_empty_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="non-empty string"):
        safe_join(tmp_path, "")


def test_safe_join_refuses_climbing_out_and_absolute_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="leaves the dataset root"):
        safe_join(root, "sub/../../x.nii.gz")
    with pytest.raises(DataError, match="leaves the dataset root"):  # absolute, even inside the root
        safe_join(root, str((root / "sub" / "x.nii.gz").resolve()))


def test_safe_join_follows_symlinks_for_the_check_but_keeps_the_written_name(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = _save(tmp_path / "outside.nii.gz", np.zeros((2, 2, 2), np.int16))
    inside = _save(root / "target.nii.gz", np.zeros((2, 2, 2), np.int16))
    os.symlink(outside, root / "escape.nii.gz")
    os.symlink(inside, root / "alias.nii.gz")
    with pytest.raises(DataError, match="leaves the dataset root"):
        safe_join(root, "escape.nii.gz")
    joined = safe_join(root, "./sub/../alias.nii.gz")
    assert joined == Path(os.path.normpath(root / "alias.nii.gz"))
    assert joined.name == "alias.nii.gz"


# -- hyperkit.data.nifti: reading ------------------------------------------------------------------

def test_load_header_refuses_a_folder_and_a_file_that_is_not_nifti(tmp_path: Path) -> None:
    (tmp_path / "dir.nii.gz").mkdir()
    with pytest.raises(DataError, match="file not found"):
        load_header(tmp_path / "dir.nii.gz")
    other = tmp_path / "image.mha"
    other.write_bytes(nifti_bytes(np.zeros((2, 2, 2), np.int16), np.eye(4)))
    with pytest.raises(DataError, match="not a NIfTI file"):
        load_header(other)


def test_corrupt_compressed_data_is_a_data_error(tmp_path: Path) -> None:
    """A readable header followed by broken deflate data (zlib.error) names the file."""
    raw = nifti_bytes(np.zeros((8, 8, 8), np.int16), np.eye(4), gz=False)
    path = tmp_path / "broken.nii.gz"
    junk = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 100  # a second gzip member, bad deflate
    path.write_bytes(gzip.compress(raw[:-100], mtime=0) + junk)
    with pytest.raises(DataError, match="corrupt NIfTI data") as info:
        read_image(path)
    assert info.value.path == path


def test_read_image_accepts_3d_and_4d_and_refuses_2d(tmp_path: Path) -> None:
    four = read_image(_save(tmp_path / "c.nii.gz", np.ones((3, 4, 5, 2), np.int16)))[0]
    assert four.shape == (3, 4, 5, 2) and four.dtype == np.float32
    with pytest.raises(DataError, match="3D or 4D"):
        read_image(_save(tmp_path / "flat.nii.gz", np.ones((3, 4), np.float32)))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_read_image_refuses_non_finite_voxels(tmp_path: Path, bad: float) -> None:
    data = np.zeros((3, 3, 3), np.float32)
    data[1, 1, 1] = bad
    with pytest.raises(DataError, match="1 NaN/inf voxels"):
        read_image(_save(tmp_path / "x.nii.gz", data))


def test_read_label_squeezes_one_component_and_refuses_more(tmp_path: Path) -> None:
    lab = np.zeros((3, 4, 5, 1), np.uint8)
    lab[1, 1, 1, 0] = 2
    out, _ = read_label(_save(tmp_path / "one.nii.gz", lab))
    assert out.shape == (3, 4, 5) and out.dtype == np.int32 and int(out.max()) == 2
    with pytest.raises(DataError, match="3D integer map"):
        read_label(_save(tmp_path / "two.nii.gz", np.zeros((3, 4, 5, 2), np.uint8)))
    with pytest.raises(DataError, match="3D integer map"):
        read_label(_save(tmp_path / "five.nii.gz", np.zeros((3, 4, 5, 1, 2), np.uint8)))


@pytest.mark.parametrize("value, match", [(np.nan, "NaN/inf"), (np.inf, "NaN/inf"), (1.5, "non-integer"),
                                          (-1.0, "negative")])
def test_read_label_refuses_float_values_that_are_not_labels(tmp_path: Path, value: float,
                                                              match: str) -> None:
    lab = np.zeros((3, 3, 3), np.float32)
    lab[0, 0, 0] = value
    with pytest.raises(DataError, match=match):
        read_label(_save(tmp_path / "f.nii.gz", lab))


def test_read_label_keeps_whole_float_values_as_int32(tmp_path: Path) -> None:
    lab = np.zeros((3, 3, 3), np.float32)
    lab[2, 2, 2] = 3.0
    out, _ = read_label(_save(tmp_path / "f.nii.gz", lab))
    assert out.dtype == np.int32 and int(out[2, 2, 2]) == 3


def test_read_label_refuses_minus_one(tmp_path: Path) -> None:
    lab = np.zeros((3, 3, 3), np.int16)
    lab[0, 0, 0] = -1
    with pytest.raises(DataError, match=r"negative values \(min -1\)"):
        read_label(_save(tmp_path / "n.nii.gz", lab))


# -- hyperkit.data.nifti: geometry -----------------------------------------------------------------

def test_spacing_is_the_column_norms_of_the_affine() -> None:
    affine = np.eye(4)
    affine[:3, :3] = [[1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 3.0]]
    assert spacing_of(affine) == pytest.approx((2 ** 0.5, 2.0, 3.0))


def test_same_geometry_compares_spatial_shape_and_affine_to_a_millimetre_fraction() -> None:
    a = np.diag([2.0, 2.0, 2.0, 1.0])
    assert same_geometry((4, 5, 6, 2), a, (4, 5, 6), a)
    assert not same_geometry((4, 5, 6), a, (4, 5, 7), a)
    near, far = a.copy(), a.copy()
    near[0, 3] += 5e-4
    far[0, 3] += 0.05
    assert same_geometry((4, 5, 6), a, (4, 5, 6), near)
    assert not same_geometry((4, 5, 6), a, (4, 5, 6), far)
    assert same_geometry((4, 5, 6), a, (4, 5, 6), far, atol=0.1)


# -- hyperkit.data.nifti: writing ------------------------------------------------------------------

def test_nifti_bytes_header_and_reproducible_gzip(tmp_path: Path) -> None:
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    affine[:3, 3] = [-10.0, 5.0, 2.0]
    data = nifti_bytes(np.arange(24, dtype=np.int16).reshape(2, 3, 4), affine)
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\x00\x00\x00\x00"  # gzip, mtime 0
    assert data == nifti_bytes(np.arange(24, dtype=np.int16).reshape(2, 3, 4), affine)
    path = tmp_path / "x.nii.gz"
    path.write_bytes(data)
    img = nib.load(str(path))
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert img.get_data_dtype() == np.int16
    np.testing.assert_allclose(img.affine, affine)


def test_write_nifti_plain_for_nii_and_gzipped_for_nii_gz(tmp_path: Path) -> None:
    arr = np.ones((2, 2, 2), np.uint8)
    plain = write_nifti(tmp_path / "deep" / "a.nii", arr, np.eye(4))
    packed = write_nifti(tmp_path / "b.nii.gz", arr, np.eye(4))
    assert plain.read_bytes()[:2] != b"\x1f\x8b" and packed.read_bytes()[:2] == b"\x1f\x8b"
    assert plain.read_bytes() == nifti_bytes(arr, np.eye(4), gz=False)
    np.testing.assert_array_equal(read_label(plain)[0], arr)


# -- hyperkit.data.sample --------------------------------------------------------------------------

def test_sample_case_label_is_uint8_and_absent_classes_are_left_out() -> None:
    from hyperkit.data.sample import sample_case
    image, label, _ = sample_case(5, n_classes=3)
    assert label.dtype == np.uint8 and image.dtype == np.float32
    assert set(np.unique(label)) == {0, 1, 2, 3}
    image_absent, label_absent, _ = sample_case(5, n_classes=3, absent=(2,))
    assert set(np.unique(label_absent)) == {0, 1, 3}
    np.testing.assert_array_equal(label_absent, np.where(label == 2, 0, label))
    np.testing.assert_array_equal(image_absent, image)  # the blob is still drawn in the image


def test_sample_writers_refuse_no_cases_and_a_bad_spacing(tmp_path: Path) -> None:
    """n_cases=0 ended in a FileNotFoundError for dataset.json; spacing 0 wrote a singular affine."""
    from hyperkit.data.sample import sample_case, write_sample_msd, write_sample_nnunet, write_sample_totalseg

    for write in (write_sample_msd, write_sample_totalseg, write_sample_nnunet):
        with pytest.raises(ValueError, match="n_cases must be >= 1, got 0"):
            write(tmp_path, n_cases=0)
    for spacing in (0.0, -2.0):
        with pytest.raises(ValueError, match=f"spacing must be a finite number of mm > 0, got {spacing}"):
            sample_case(0, spacing=spacing)
    with pytest.raises(ValueError, match="n_classes must be in 1..255"):
        sample_case(0, n_classes=300)


def test_sample_msd_absent_classes_per_case(tmp_path: Path) -> None:
    from hyperkit.data.sample import write_sample_msd
    root = write_sample_msd(tmp_path, n_cases=2, absent={1: (2,)})
    labels = [np.asarray(nib.load(root / "labelsTr" / f"sample_{i:03d}.nii.gz").dataobj) for i in range(2)]
    assert set(np.unique(labels[0])) == {0, 1, 2} and set(np.unique(labels[1])) == {0, 1}
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["labels"] == {"0": "background", "1": "organ", "2": "tumour"}


def test_sample_nnunet_dataset_json_and_one_file_per_channel(tmp_path: Path) -> None:
    from hyperkit.data.sample import write_sample_nnunet
    root = write_sample_nnunet(tmp_path, n_cases=2, channels=("T2", "ADC"), labels=("zone_a", "zone_b"))
    meta = json.loads((root / "dataset.json").read_text())
    assert meta == {"channel_names": {"0": "T2", "1": "ADC"},
                    "labels": {"background": 0, "zone_a": 1, "zone_b": 2},
                    "numTraining": 2, "file_ending": ".nii.gz"}
    t2, adc = (np.asarray(nib.load(root / "imagesTr" / f"case_001_{c:04d}.nii.gz").dataobj) for c in (0, 1))
    np.testing.assert_allclose(adc, t2 * 1.1, rtol=1e-5)  # the channels differ (by a scale)


# -- hyperkit.data.splits --------------------------------------------------------------------------

@pytest.mark.parametrize("text, match", [("train: [a\n", "not valid YAML"),
                                         ("just a line\n", "must be a mapping"),
                                         ("train: ['msd/*', 3]\n", "must be a list of strings")])
def test_split_file_problems_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    from hyperkit.data.splits import load_split
    from hyperkit.errors import ConfigError
    path = tmp_path / "split.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_split(path)
    assert str(path) in str(info.value)


def test_split_patterns_are_case_sensitive_globs() -> None:
    """Task ids are exact strings: ``msd/*`` holds out ``msd/...`` but says nothing of ``MSD/...``."""
    from hyperkit.data.splits import assign_roles
    split = {"heldout": ["msd/*"], "val": [], "train": ["*@CT"]}
    assert assign_roles(["msd/T/a@CT", "MSD/T/a@ct", "MSD/T/a@CT"], split) == {
        "msd/T/a@CT": "heldout", "MSD/T/a@ct": "unused", "MSD/T/a@CT": "train"}


@pytest.mark.parametrize("split, match", [
    ({"train": ["*"]}, r"missing \['heldout', 'val'\]"),
    ({"heldout": [], "val": [], "train": ["*"], "test": ["x"]}, r"unknown \['test'\]"),
    ({"heldout": "msd/*", "val": [], "train": []}, r"role 'heldout' must be a list of pattern strings, got 'msd/\*'"),
    (["heldout", "val", "train"], r"split must be a mapping of role -> list of patterns, got list")])
def test_assign_roles_refuses_a_split_it_cannot_read_naming_what(split: object, match: str) -> None:
    from hyperkit.data.splits import assign_roles
    from hyperkit.errors import ConfigError
    with pytest.raises(ConfigError, match=match) as info:
        assign_roles(["msd/T/a@CT"], split)  # type: ignore[arg-type]
    if "missing" in match:
        assert "['heldout', 'val', 'train']" in str(info.value)


def test_assign_roles_refuses_one_task_id_as_a_string() -> None:
    from hyperkit.data.splits import assign_roles
    split = {"heldout": ["msd/*"], "val": [], "train": []}
    with pytest.raises(ValueError, match=r"task_ids must be a list of task ids, got the string 'msd/T/x@CT'"):
        assign_roles("msd/T/x@CT", split)
    assert assign_roles(["msd/T/x@CT"], split) == {"msd/T/x@CT": "heldout"}


# -- hyperkit.data.tasks ---------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [("CT", "CT"), (" ct ", "CT"), ("mri", "MRI"), ("Mri\n", "MRI")])
def test_check_modality_ignores_case_and_spaces(given: str, expected: str) -> None:
    from hyperkit.data.tasks import check_modality
    assert check_modality(given) == expected


@pytest.mark.parametrize("bad", ["PET", "", "C T", "T1w"])
def test_check_modality_refuses_others_naming_what(bad: str) -> None:
    from hyperkit.data.tasks import check_modality
    from hyperkit.errors import HyperkitError
    with pytest.raises(HyperkitError, match=rf"support modality must be one of \['CT', 'MRI'\], got {bad!r}"):
        check_modality(bad, "support modality")


@pytest.mark.parametrize("channel, modality", [("CT", "CT"), (" ct ", "CT"), ("FLAIR", "MRI"), ("T2w", "MRI"),
                                               ("CTA_T1", "MRI")])
def test_modality_of_is_ct_only_for_a_ct_channel(channel: str, modality: str) -> None:
    from hyperkit.data.tasks import modality_of
    assert modality_of(channel) == modality


def test_task_id_slugs_whitespace_in_class_and_channel() -> None:
    from hyperkit.data.tasks import task_id
    assert task_id("msd", "Task05", " left  kidney\t", "T1 w") == "msd/Task05/left_kidney@T1_w"


@pytest.mark.parametrize("tid, parts", [("totalseg/T/a/b@CT", ("totalseg", "T", "a/b", "CT")),
                                        ("nnunet/Data@set/zone@T2", ("nnunet", "Data@set", "zone", "T2"))])
def test_task_parts_splits_at_the_first_two_slashes_and_the_last_at(tid: str, parts: tuple[str, ...]) -> None:
    from hyperkit.data.tasks import task_parts
    assert tuple(task_parts(tid)) == parts


# -- hyperkit.data.identity ------------------------------------------------------------------------

@pytest.fixture
def sample_data(tmp_path: Path) -> Path:
    from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
    data = tmp_path / "data"
    write_sample_msd(data, n_cases=2)
    write_sample_totalseg(data, n_cases=2)
    return data


def test_fingerprint_reads_meta_csv_by_content(sample_data: Path) -> None:
    from hyperkit.data.identity import data_fingerprint
    first = data_fingerprint(sample_data)
    meta = sample_data / "TotalSegmentator" / "meta.csv"
    text = meta.read_text()
    meta.write_text(text.replace(";f;", ";m;"))  # same size, other content
    assert len(meta.read_text()) == len(text) and data_fingerprint(sample_data) != first


def test_fingerprint_uses_the_datasets_given(sample_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Datasets already discovered are not read again (and give the fingerprint of a fresh discovery)."""
    from hyperkit.data import identity
    from hyperkit.data.layouts import discover_datasets
    found = discover_datasets(sample_data)
    expected = identity.data_fingerprint(sample_data)

    def refuse(*args: object) -> None:
        raise AssertionError("discover_datasets called again")

    monkeypatch.setattr(identity, "discover_datasets", refuse)
    assert identity.data_fingerprint(sample_data, found) == expected
    assert identity.data_identity(sample_data, found)[identity.FINGERPRINT_KEY] == expected


def test_data_identity_records_the_resolved_path(sample_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hyperkit.data.identity import FINGERPRINT_KEY, data_fingerprint, data_identity
    monkeypatch.chdir(sample_data.parent)
    record = data_identity("data")
    assert record == {"data": str(sample_data.resolve()), FINGERPRINT_KEY: data_fingerprint(sample_data)}
    assert set(data_identity("data", path_key="data_root")) == {"data_root", FINGERPRINT_KEY}


# -- hyperkit.data.augment -------------------------------------------------------------------------

def _blob_pair(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A mask with one box and an image bright (10) inside it, faintly graded outside."""
    mask = torch.zeros(1, 12, 12, 12)
    mask[0, 2:6, 3:7, 4:9] = 1
    return (mask * 10 + 0.01 * torch.arange(12.0 ** 3).reshape(1, 12, 12, 12) / 12 ** 3).to(dtype), mask


def test_build_augment_refuses_an_unknown_intensity_naming_it() -> None:
    from hyperkit.data.augment import build_augment
    with pytest.raises(ValueError, match="'strong'"):
        build_augment("strong")


def test_build_augment_contrast_and_the_wide_extras() -> None:
    from monai.transforms import (RandAdjustContrastd, RandFlipd, RandHistogramShiftd, RandScaleIntensityd,
                                  RandShiftIntensityd)

    from hyperkit.data.augment import build_augment
    paper, wide = build_augment(), build_augment("wide")
    flips = [t for t in paper.transforms if isinstance(t, RandFlipd)]
    assert sorted(t.flipper.spatial_axis for t in flips) == [0, 1, 2]
    gamma = {name: next(t for t in c.transforms if isinstance(t, RandAdjustContrastd)).adjuster.gamma
             for name, c in (("paper", paper), ("wide", wide))}
    assert gamma == {"paper": (0.7, 1.5), "wide": (0.5, 2.0)}
    extras = [type(t) for t in wide.transforms[len(paper.transforms):]]
    assert extras == [RandScaleIntensityd, RandShiftIntensityd, RandHistogramShiftd]


def test_augment_pair_is_reproducible_moves_image_and_mask_together_and_keeps_types() -> None:
    from hyperkit.data.augment import augment_pair, build_augment
    transform = build_augment()
    image, mask = _blob_pair(torch.float64)
    outs = []
    for seed in range(6):
        new_image, new_mask = augment_pair(transform, image, mask, seed)
        assert type(new_image) is torch.Tensor and type(new_mask) is torch.Tensor
        assert new_image.dtype == torch.float64 and new_mask.dtype == mask.dtype
        assert new_image.shape == image.shape and set(new_mask.unique().tolist()) <= {0.0, 1.0}
        inside, outside = new_image[new_mask > 0].mean(), new_image[new_mask == 0].mean()
        assert inside > outside + 3  # the mask still covers the bright blob
        outs.append(new_image)
    again = augment_pair(transform, image, mask, 2 ** 32 + 5)  # seeds are taken modulo 2**32
    assert not torch.equal(augment_pair(transform, image, mask, 2 ** 31 + 5)[0], outs[5])  # not modulo 2**31
    assert torch.equal(again[0], outs[5]) and torch.equal(augment_pair(transform, image, mask, 5)[0], outs[5])
    assert not all(torch.equal(outs[0], o) for o in outs[1:])


def test_augment_pair_returns_the_input_when_the_target_vanishes() -> None:
    from monai.transforms import Compose, Lambdad

    from hyperkit.data.augment import augment_pair
    image, mask = _blob_pair(torch.float32)
    shrink = Compose([Lambdad(keys="mask", func=lambda m: m * 0.4)])  # every voxel below the 0.5 threshold
    image_out, mask_out = augment_pair(shrink, image, mask, 0)
    assert image_out is image and mask_out is mask


def test_rescale_percentiles_maps_each_patch_to_unit_range_whatever_its_scale() -> None:
    from hyperkit.data.augment import rescale_percentiles

    ramp = torch.linspace(-3.0, 5.0, 1000).view(1, 1, 10, 10, 10)
    x = torch.cat([ramp, 100.0 * ramp + 7.0])
    r = rescale_percentiles(x)
    assert torch.allclose(r[0], r[1], atol=1e-5) and float(r.min()) == 0.0 and float(r.max()) == 1.0
    assert float((r == 0.0).float().mean()) == pytest.approx(0.01, abs=0.002)   # below the 1st percentile
    with pytest.raises(ValueError, match=r"x must be \(N, 1, D, H, W\) with voxels, got shape \(10, 10, 10\)"):
        rescale_percentiles(ramp[0, 0])
    with pytest.raises(ValueError, match=r"with voxels, got shape \(1, 1, 0, 10, 10\)"):  # kthvalue's IndexError
        rescale_percentiles(ramp[:, :, :0])
    with pytest.raises(ValueError, match="x must be floating point .* got dtype torch.int64"):  # cast back to 0 / 1
        rescale_percentiles(x.long())
    with pytest.raises(ValueError, match="need 0 <= low < high <= 1, got low=0.5, high=0.5"):
        rescale_percentiles(x, 0.5, 0.5)


def test_remap_intensity_is_piecewise_linear_through_the_curve() -> None:
    """An identity curve leaves the rescaled patch, a falling one reverses it, a V folds it; bad curves refused."""
    from hyperkit.data.augment import random_curve, remap_intensity, rescale_percentiles

    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    r = rescale_percentiles(x)
    assert torch.allclose(remap_intensity(x, torch.linspace(0.0, 1.0, 5)), r, atol=1e-6)
    assert torch.allclose(remap_intensity(x, torch.tensor([1.0, 0.0])), 1.0 - r, atol=1e-6)
    assert torch.allclose(remap_intensity(x, torch.tensor([1.0, 0.0, 1.0])), (2 * r - 1).abs(), atol=1e-6)
    curve = random_curve(torch.Generator().manual_seed(1))
    assert curve.shape == (5,) and torch.equal(curve, random_curve(torch.Generator().manual_seed(1)))
    y = remap_intensity(x, curve)
    assert float(y.min()) >= float(curve.min()) - 1e-6 and float(y.max()) <= float(curve.max()) + 1e-6
    with pytest.raises(ValueError, match=r"curve must be 1-D with at least 2 values, got shape \(1,\)"):
        remap_intensity(x, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="a curve needs at least 2 points, got 1"):
        random_curve(torch.Generator(), 1)
