"""Readers, task decomposition and the refusal of bad input, on tiny fixtures in each layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hyperkit.data.layouts import (MSDDataset, NnUNetDataset, TotalSegDataset, detect_layout, discover_datasets,
                                   open_dataset)
from hyperkit.data.sample import write_nifti, write_sample_msd, write_sample_nnunet, write_sample_totalseg
from hyperkit.data.splits import assign_roles, load_split
from hyperkit.errors import ConfigError, DataError


@pytest.fixture()
def msd4d(tmp_path: Path) -> Path:
    return write_sample_msd(tmp_path, "Task01_BrainTumour", channels=("FLAIR", "T1w", "t1gd", "T2w"),
                            labels=("edema", "non-enhancing tumor", "enhancing tumour"), absent={1: (3,)})


@pytest.mark.parametrize(
    "writer, kwargs, layout, cls, n_tasks",
    [
        (write_sample_msd, {}, "msd", MSDDataset, 2),
        (write_sample_msd, {"channels": ("T2", "ADC"), "labels": ("PZ", "TZ")}, "msd", MSDDataset, 4),
        (write_sample_totalseg, {"structures": ("aorta", "kidney_left", "sternum")}, "totalseg", TotalSegDataset, 3),
        (write_sample_nnunet, {}, "nnunet", NnUNetDataset, 4),
    ],
)
def test_layouts_detected_and_decomposed(tmp_path, writer, kwargs, layout, cls, n_tasks):
    root = writer(tmp_path, **kwargs)
    assert detect_layout(root) == layout
    ds = open_dataset(root)
    assert isinstance(ds, cls)
    tasks = ds.tasks()
    assert len(tasks) == n_tasks == len(ds.channels) * len(ds.labels)
    assert len({t.task_id for t in tasks}) == n_tasks
    case = ds.load_case(ds.cases[0])
    assert case.image.shape == (len(ds.channels), 24, 20, 16)
    assert case.label.shape == (24, 20, 16)
    assert set(np.unique(case.label)) <= {0, *ds.labels}


def test_msd_multichannel_channel_times_class(msd4d):
    ds = open_dataset(msd4d)
    ids = [t.task_id for t in ds.tasks()]
    assert len(ids) == 12
    assert "msd/Task01_BrainTumour/edema@FLAIR" in ids
    assert "msd/Task01_BrainTumour/enhancing_tumour@T2w" in ids
    t = next(t for t in ds.tasks() if t.task_id.endswith("edema@T1w"))
    assert (t.channel_index, t.label_value, t.modality) == (1, 1, "MRI")


def test_task_ids_are_stable(tmp_path):
    a = [t.task_id for t in open_dataset(write_sample_msd(tmp_path / "a", seed=1)).tasks()]
    b = [t.task_id for t in open_dataset(write_sample_msd(tmp_path / "b", n_cases=5, seed=7)).tasks()]
    assert a == b == ["msd/Task90_Sample/organ@CT", "msd/Task90_Sample/tumour@CT"]


def test_discover_many_and_absent_structure_is_counted(tmp_path, msd4d):
    write_sample_totalseg(tmp_path)
    write_sample_nnunet(tmp_path)
    names = [d.name for d in discover_datasets(tmp_path)]
    assert names == ["Dataset901_Sample", "Task01_BrainTumour", "TotalSegmentator"]
    ds = open_dataset(msd4d)
    assert ds.present_labels(ds.cases[1]) == {1, 2}  # class 3 absent in case 1: counted, no error


def test_totalseg_meta_and_merged_labels(tmp_path):
    root = write_sample_totalseg(tmp_path, structures=("aorta", "kidney_left"))
    ds = open_dataset(root)
    assert [c.split for c in ds.cases] == ["train", "val", "test"]
    assert ds.labels == {1: "aorta", 2: "kidney_left"}
    case = ds.load_case("s0001")
    mask = np.asarray(nib.load(root / "s0001" / "segmentations" / "kidney_left.nii.gz").dataobj)
    np.testing.assert_array_equal(case.label == 2, mask > 0)


def test_default_split_mirrors_paper():
    roles = assign_roles(["msd/Task03_Liver/liver@CT", "totalseg/TotalSegmentator/aorta@CT",
                          "totalseg/TotalSegmentator/stomach@CT", "nnunet/Dataset001_X/a@CT", "other/x/y@CT"])
    assert list(roles.values()) == ["heldout", "train", "val", "heldout", "unused"]


def test_split_file_errors(tmp_path):
    bad = tmp_path / "split.yaml"
    bad.write_text("trian: ['x']\n")
    with pytest.raises(ConfigError, match="unknown role"):
        load_split(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_split(tmp_path / "missing.yaml")
    for empty in ("", "train: []\nval: []\n"):  # would leave every task unused, silently
        bad.write_text(empty)
        with pytest.raises(ConfigError, match="no task pattern in any role"):
            load_split(bad)


def test_default_split_validation_structures():
    """Guards the paper's four validation structures (never trained on) in the default split."""
    ids = [f"totalseg/TotalSegmentator/{s}@CT" for s in ("stomach", "esophagus", "gallbladder", "urinary_bladder",
                                                         "liver", "kidney_left")]
    assert list(assign_roles(ids).values()) == ["val", "val", "val", "val", "train", "train"]


def test_split_precedence_is_heldout_then_val_then_train(tmp_path):
    """Guards the precedence heldout > val > train for a task matched by several roles."""
    path = tmp_path / "split.yaml"
    path.write_text("train: ['*']\nval: ['a/*', 'b/*']\nheldout: ['a/*']\n")
    roles = assign_roles(["a/x", "b/x", "c/x"], load_split(path))
    assert roles == {"a/x": "heldout", "b/x": "val", "c/x": "train"}


def test_split_file_roles_may_be_left_out_but_patterns_must_be_a_list(tmp_path):
    """Guards that a missing role is an empty list, and that a bare string (not a list) is refused."""
    path = tmp_path / "split.yaml"
    path.write_text("heldout: ['msd/*']\n")
    split = load_split(path)
    assert split == {"heldout": ["msd/*"], "val": [], "train": []}
    assert assign_roles(["msd/T/a@CT", "totalseg/T/b@CT"], split) == {"msd/T/a@CT": "heldout",
                                                                      "totalseg/T/b@CT": "unused"}
    path.write_text("heldout: 'msd/*'\n")
    with pytest.raises(ConfigError, match="must be a list of strings"):
        load_split(path)


# ---- bad input: each names the file and the problem ------------------------------------------------

def _first(root: Path, sub: str) -> Path:
    return sorted((root / sub).iterdir())[0]


def _corrupt(root: Path) -> str:
    p = _first(root, "imagesTr")
    p.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    return "corrupt or unreadable NIfTI"


def _truncate(root: Path) -> str:
    p = _first(root, "labelsTr")
    p.write_bytes(p.read_bytes()[:200])
    return "corrupt"


def _missing(root: Path) -> str:
    _first(root, "labelsTr").unlink()
    return "file not found"


def _shape_mismatch(root: Path) -> str:
    p = _first(root, "labelsTr")
    img = nib.load(p)
    write_nifti(p, np.zeros((10, 10, 10), np.uint8), img.affine)
    return "does not match image shape"


def _affine_mismatch(root: Path) -> str:
    p = _first(root, "labelsTr")
    img = nib.load(p)
    aff = img.affine.copy()
    aff[0, 3] += 5.0
    write_nifti(p, np.asarray(img.dataobj), aff)
    return "label affine does not match"


def _undeclared(root: Path) -> str:
    p = _first(root, "labelsTr")
    img = nib.load(p)
    lab = np.asarray(img.dataobj).copy()
    lab[0, 0, 0] = 7
    write_nifti(p, lab, img.affine)
    return r"label values \[7\] are not declared"


def _nan(root: Path) -> str:
    p = _first(root, "imagesTr")
    img = nib.load(p)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[1, 2, 3] = np.nan
    write_nifti(p, data, img.affine)
    return "NaN/inf voxels"


def _label_4d(root: Path) -> str:
    p = _first(root, "labelsTr")
    img = nib.load(p)
    lab = np.asarray(img.dataobj)
    write_nifti(p, np.stack([lab, lab], -1), img.affine)
    return "label must be 3D"


def _escape(root: Path) -> str:
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"][0]["image"] = "../../etc/passwd.nii.gz"
    (root / "dataset.json").write_text(json.dumps(meta))
    return "leaves the dataset root"


def _bad_json(root: Path) -> str:
    (root / "dataset.json").write_text("{not json")
    return "not valid JSON"


@pytest.mark.parametrize("breaker", [_corrupt, _truncate, _missing, _shape_mismatch, _affine_mismatch, _undeclared,
                                     _nan, _label_4d, _escape, _bad_json])
def test_bad_input_is_refused_with_file_and_problem(tmp_path, breaker):
    root = write_sample_msd(tmp_path, n_cases=2)
    expected = breaker(root)
    with pytest.raises(DataError, match=expected) as info:
        ds = open_dataset(root)
        for case in ds.cases:
            ds.present_labels(case)
            ds.load_case(case)
    assert str(tmp_path) in str(info.value)  # the message names the file or folder


def test_nnunet_region_labels_and_missing_channel(tmp_path):
    root = write_sample_nnunet(tmp_path)
    (root / "imagesTr" / "case_001_0001.nii.gz").unlink()
    with pytest.raises(DataError, match="case_001_0001.nii.gz: file not found"):
        open_dataset(root)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"]["whole"] = [1, 2]
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="region-based label"):
        open_dataset(root)


def test_totalseg_non_binary_mask_and_missing_subject(tmp_path):
    root = write_sample_totalseg(tmp_path)
    p = root / "s0000" / "segmentations" / "aorta.nii.gz"
    img = nib.load(p)
    write_nifti(p, np.asarray(img.dataobj) * 3, img.affine)
    ds = open_dataset(root)
    with pytest.raises(DataError, match="must be binary"):
        ds.present_labels(ds.cases[0])
    (root / "meta.csv").write_text((root / "meta.csv").read_text() + "s0099;1;m;B;ct;train\n")
    with pytest.raises(DataError, match="s0099: subject listed in meta.csv"):
        open_dataset(root)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DataError, match="no dataset found"):
        discover_datasets(tmp_path)
    with pytest.raises(DataError, match="data folder not found"):
        discover_datasets(tmp_path / "nope")


def test_data_fingerprint_follows_content_not_place(tmp_path: Path) -> None:
    import shutil

    from hyperkit.data.identity import data_fingerprint

    data = tmp_path / "data"
    write_sample_msd(data, "Task03_Liver", n_cases=3, labels=("liver", "cancer"))
    write_sample_totalseg(data, n_cases=2)
    write_sample_nnunet(data, n_cases=2)
    (data / "phantoms.json").write_text('{"seed": 0}')
    first = data_fingerprint(data)
    assert first.startswith("sha256:") and data_fingerprint(data) == first
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(data, moved)  # new place, new modification times: the same data
    assert data_fingerprint(moved) == first
    assert data_fingerprint(moved, discover_datasets(moved)) == first
    # a single dataset folder is data of its own
    assert data_fingerprint(moved / "Task03_Liver") != first

    def changed(edit) -> str:
        other = tmp_path / f"changed{len(list(tmp_path.iterdir()))}"
        shutil.copytree(data, other)
        edit(other)
        return data_fingerprint(other)

    # another cohort record, other dataset metadata, a label file of another size, a case fewer
    assert changed(lambda d: (d / "phantoms.json").write_text('{"seed": 1}')) != first
    meta = json.loads((data / "Task03_Liver" / "dataset.json").read_text())
    assert changed(lambda d: (d / "Task03_Liver" / "dataset.json").write_text(
        json.dumps({**meta, "labels": {**meta["labels"], "3": "extra"}}))) != first
    label = meta["training"][0]["label"]
    assert changed(lambda d: (d / "Task03_Liver" / label).write_bytes(
        (d / "Task03_Liver" / label).read_bytes() + b"\0")) != first
    assert changed(lambda d: (d / "Task03_Liver" / "dataset.json").write_text(
        json.dumps({**meta, "training": meta["training"][1:]}))) != first


def test_comparable_on_data_compares_by_fingerprint_and_old_records_by_path() -> None:
    from hyperkit.data.identity import FINGERPRINT_KEY, comparable_on_data

    new = {"data": "/b/data", FINGERPRINT_KEY: "sha256:1", "seed": 0}
    assert comparable_on_data({"data": "/a/data", FINGERPRINT_KEY: "sha256:1", "seed": 0}, new) == (
        {FINGERPRINT_KEY: "sha256:1", "seed": 0}, {FINGERPRINT_KEY: "sha256:1", "seed": 0})
    theirs, ours = comparable_on_data({"data": "/a/data", FINGERPRINT_KEY: "sha256:2", "seed": 0}, new)
    assert theirs != ours
    # a record without a fingerprint (an earlier version) compares by path, as it did
    theirs, ours = comparable_on_data({"data": "/a/data", "seed": 0}, new)
    assert theirs != ours and FINGERPRINT_KEY not in ours
    assert comparable_on_data({"data": "/b/data", "seed": 0}, new) == ({"data": "/b/data", "seed": 0},) * 2
    assert comparable_on_data({"root": "/a", FINGERPRINT_KEY: "x"}, {"root": "/b", FINGERPRINT_KEY: "x"}, "root") == (
        {FINGERPRINT_KEY: "x"}, {FINGERPRINT_KEY: "x"})


@pytest.mark.parametrize("tid", ["msd/Task01_BrainTumour/edema@FLAIR", "totalseg/TotalSegmentator/rib_left_3@CT",
                                 "nnunet/Dataset901_Sample/zone_a@T2"])
def test_task_parts_inverts_task_id(tid):
    """Guards the one reader of the task id's format: task_id(*task_parts(t)) == t."""
    from hyperkit.data.tasks import task_id, task_parts
    parts = task_parts(tid)
    assert task_id(*parts) == tid and parts.short == tid.rsplit("/", 1)[-1]


@pytest.mark.parametrize("bad", ["edema@FLAIR", "msd/Task01/edema", "msd//edema@FLAIR", "msd/Task01/edema@"])
def test_task_parts_refuses_what_is_not_a_task_id(bad):
    from hyperkit.data.tasks import task_parts
    with pytest.raises(ValueError, match="not a task id"):
        task_parts(bad)
