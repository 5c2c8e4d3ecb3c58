"""Reader edge cases: repeated names, channel keys, file lists, case ids, symlinks, overlapping masks."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hyperkit.data.layouts import open_dataset
from hyperkit.data.preprocess import DataConfig, preprocess_case
from hyperkit.data.sample import write_nifti, write_sample_msd, write_sample_nnunet, write_sample_totalseg
from hyperkit.errors import DataError


def _edit(root: Path, **changes) -> dict:
    meta = json.loads((root / "dataset.json").read_text())
    meta.update(changes)
    meta.pop("numTraining", None)
    (root / "dataset.json").write_text(json.dumps(meta))
    return meta


# channel or class names that repeat give two tasks one id (their patches are mixed)
@pytest.mark.parametrize("kind", ["channels", "classes"])
def test_repeated_channel_or_class_names_are_refused(tmp_path, kind):
    if kind == "channels":
        root = write_sample_nnunet(tmp_path, channels=("T2", "ADC"), n_cases=1)
        _edit(root, channel_names={"0": "zscore", "1": "zscore"})
    else:
        root = write_sample_msd(tmp_path, n_cases=1, labels=("tumour", "tumour"))
    with pytest.raises(DataError, match="repeat"):
        open_dataset(root)


# nnU-Net channel_names keys must be 0..C-1 (else a channel reads another channel's file)
def test_nnunet_channel_keys_must_be_contiguous(tmp_path):
    root = write_sample_nnunet(tmp_path, channels=("T2", "DWI", "ADC"), n_cases=1)
    _edit(root, channel_names={"0": "T2", "2": "ADC"})
    with pytest.raises(DataError, match="channel_names keys must be 0..C-1"):
        open_dataset(root)


# nnU-Net "dataset" lists: malformed entries and a wrong number of image files
@pytest.mark.parametrize("listing, match", [
    (["case_000"], "'dataset' must be an object"),
    ({"case_000": "imagesTr/case_000_0000.nii.gz"}, "must have 'images'"),
    ({"case_000": {"images": ["imagesTr/case_000_0000.nii.gz"]}}, "must have 'images'"),
    ({"case_000": {"images": [], "label": "labelsTr/case_000.nii.gz"}}, "0 image file"),
    ({"case_000": {"images": ["imagesTr/case_000_0000.nii.gz"] * 3, "label": "labelsTr/case_000.nii.gz"}},
     "3 image file"),
    ({"case_000": {"images": ["imagesTr/case_000_0000.nii.gz", None], "label": "labelsTr/case_000.nii.gz"}},
     "non-empty string"),
])
def test_nnunet_dataset_listing_is_checked(tmp_path, listing, match):
    root = write_sample_nnunet(tmp_path, channels=("T2", "ADC"), n_cases=1)
    _edit(root, dataset=listing)
    with pytest.raises(DataError, match=match):
        open_dataset(root)


def test_msd_training_path_must_be_a_string(tmp_path):
    root = write_sample_msd(tmp_path, n_cases=1)
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"][0]["image"] = None
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="non-empty string"):
        open_dataset(root)


# a case id from nnU-Net "dataset" keys must not steer the cache file out of the cache folder
def test_case_ids_with_path_parts_are_refused(tmp_path):
    root = write_sample_nnunet(tmp_path / "data", channels=("CT",), n_cases=1)
    _edit(root, dataset={"x/../../../outside": {"images": ["imagesTr/case_000_0000.nii.gz"],
                                                "label": "labelsTr/case_000.nii.gz"}})
    try:
        ds = open_dataset(root)
    except DataError as exc:
        assert "not a plain name" in str(exc)
        return
    preprocess_case(ds, ds.cases[0].case_id, DataConfig(spacing=2.0, patch_size=16), tmp_path / "a" / "b" / "cache")
    assert not list(tmp_path.rglob("outside-*.npz")), "a cache file was written outside the cache folder"


# files symlinked inside the root keep their own names (case ids, NIfTI suffix)
def test_symlinked_volumes_inside_the_root_keep_their_names(tmp_path):
    root = write_sample_msd(tmp_path, n_cases=2)
    store = root / ".store"
    store.mkdir()
    for sub in ("imagesTr", "labelsTr"):
        for p in sorted((root / sub).iterdir()):
            blob = store / f"{sub}-{p.stem}"  # content-addressed blob: no NIfTI suffix
            p.rename(blob)
            os.symlink(os.path.relpath(blob, p.parent), p)
    ds = open_dataset(root)
    assert [c.case_id for c in ds.cases] == ["sample_000", "sample_001"]
    assert ds.load_case(ds.cases[0]).image.shape[0] == 1


# TotalSegmentator masks stored as .nii
def test_totalseg_uncompressed_masks(tmp_path):
    root = write_sample_totalseg(tmp_path, n_cases=2)
    for p in root.glob("s*/segmentations/*.nii.gz"):
        p.with_name(p.name[:-3]).write_bytes(gzip.decompress(p.read_bytes()))
        p.unlink()
    ds = open_dataset(root)
    assert ds.load_case(ds.cases[0]).label.max() == 2


# an empty meta.csv
def test_totalseg_empty_meta_csv(tmp_path):
    root = write_sample_totalseg(tmp_path, n_cases=1)
    (root / "meta.csv").write_text("")
    with pytest.raises(DataError, match="meta.csv"):
        open_dataset(root)


# overlapping structure masks must not lose a structure silently
def test_totalseg_equal_overlapping_masks_go_to_the_earlier_name(tmp_path):
    root = write_sample_totalseg(tmp_path, n_cases=2, structures=("aorta", "kidney_left"))
    seg = root / "s0000" / "segmentations"
    kidney = nib.load(seg / "kidney_left.nii.gz")
    write_nifti(seg / "aorta.nii.gz", np.asarray(kidney.dataobj).astype(np.uint8), kidney.affine)
    ds = open_dataset(root)
    with pytest.warns(UserWarning, match=r"1 pair\(s\) of structure masks overlap \(aorta/kidney_left"):
        label = ds.load_case(ds.cases[0]).label
    np.testing.assert_array_equal(label, (np.asarray(kidney.dataobj) > 0).astype(np.int32))  # a tie: aorta, 1
    assert ds.present_labels(ds.cases[0]) == {1}


# nnU-Net label values: two names on one value, or a non-integral value
@pytest.mark.parametrize("labels, match", [
    ({"background": 0, "zone_a": 1, "zone_b": 1}, "share the value 1"),
    ({"background": 0, "zone_a": 1, "zone_b": 1.9}, "non-integer value 1.9"),
])
def test_nnunet_label_values_are_distinct_integers(tmp_path, labels, match):
    root = write_sample_nnunet(tmp_path, n_cases=1)
    _edit(root, labels=labels)
    with pytest.raises(DataError, match=match):
        open_dataset(root)


# listed layouts refuse files that leave the root through a symlink, as MSD does
@pytest.mark.parametrize("layout", ["nnunet", "totalseg"])
def test_symlinks_out_of_the_root_are_refused_in_every_layout(tmp_path, layout):
    outside = tmp_path / "outside"
    outside.mkdir()
    if layout == "nnunet":
        root = write_sample_nnunet(tmp_path / "data", channels=("CT",), n_cases=2)
        link = root / "imagesTr" / "case_000_0000.nii.gz"
        link.rename(outside / "x.nii.gz")
        os.symlink(outside / "x.nii.gz", link)
    else:
        root = write_sample_totalseg(tmp_path / "data", n_cases=2)
        (root / "s0001").rename(outside / "s0001")
        os.symlink(outside / "s0001", root / "s0001")
    with pytest.raises(DataError, match="leaves the dataset root"):
        open_dataset(root)


# a label value past int32 would wrap round in the cast (2**32 + 1 would read as label 1)
@pytest.mark.parametrize("value, match", [(2 ** 32 + 1, "does not fit"), (2 ** 31, "does not fit"), (-3, "negative")])
def test_label_values_outside_int32_are_refused_not_wrapped(tmp_path, value, match):
    from hyperkit.data.nifti import read_label
    lab = np.zeros((4, 4, 4), dtype=np.int64)
    lab[1, 1, 1] = value
    path = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(lab, np.eye(4), dtype=np.int64), str(path))
    with pytest.raises(DataError, match=match):
        read_label(path)
    lab[1, 1, 1] = 2 ** 31 - 1  # the largest that fits is kept as it is
    nib.save(nib.Nifti1Image(lab, np.eye(4), dtype=np.int64), str(path))
    assert int(read_label(path)[0].max()) == 2 ** 31 - 1


def test_totalseg_subjects_missing_from_meta_csv_are_named(tmp_path):
    """A subject folder that meta.csv does not list has no split, so every split filter keeps it:
    reading the folder says so (and still reads it); a fully listed folder reads silently."""
    import warnings
    root = write_sample_totalseg(tmp_path, n_cases=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(open_dataset(root).cases) == 5
    lines = (root / "meta.csv").read_text().splitlines()
    (root / "meta.csv").write_text("\n".join(lines[:-2]) + "\n")  # s0003 and s0004 unlisted
    with pytest.warns(UserWarning, match=r"2 subject folder\(s\) not listed \(s0003, s0004\).*every split filter"):
        ds = open_dataset(root)
    assert [c.split for c in ds.cases][-2:] == [None, None]
