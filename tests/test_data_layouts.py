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
from hyperkit.data.preprocess import AIR_HU
from hyperkit.data.sample import (TOTALSEG_META_COLUMNS, msd_dataset_json, sample_case, totalseg_meta_csv, write_nifti,
                                   write_sample_msd, write_sample_nnunet, write_sample_totalseg)
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


def test_totalseg_subject_listed_twice(tmp_path: Path) -> None:
    """A subject listed again with the same split is read once; with another split it is refused (the last row
    used to win, silently moving a training subject into validation or the reverse)."""
    root = write_sample_totalseg(tmp_path)
    text = (root / "meta.csv").read_text()
    (root / "meta.csv").write_text(text + "s0000;50;f;A;ct abdomen;train\n")
    assert [(c.case_id, c.split) for c in open_dataset(root).cases] == [("s0000", "train"), ("s0001", "val"),
                                                                        ("s0002", "test")]
    (root / "meta.csv").write_text(text + "s0000;50;f;A;ct abdomen;val\n")
    with pytest.raises(DataError, match=r"meta.csv: row 5 lists s0000 again with split 'val', after split 'train'"):
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


# ---- the sample writers: the index files and the volumes that every reader test relies on ----------------

def test_msd_dataset_json_counts_tensor_size_and_format():
    """Guards dataset.json as MSD writes it: 3D/4D by modality count, numTraining, numTest 0, indent 4 + newline."""
    training = [{"image": f"./imagesTr/x{i}.nii.gz", "label": f"./labelsTr/x{i}.nii.gz"} for i in range(3)]
    for modality, size in (({"0": "CT"}, "3D"), ({"0": "FLAIR", "1": "T1w"}, "4D")):
        text = msd_dataset_json("Task09_X", "d", modality, {"0": "background", "1": "a"}, training, licence="CC")
        meta = json.loads(text)
        assert text == json.dumps(meta, indent=4) + "\n"
        assert list(meta)[:3] == ["name", "description", "licence"]
        assert meta["tensorImageSize"] == size and meta["modality"] == modality
        assert meta["training"] == training and meta["numTraining"] == len(training) == 3
        assert meta["numTest"] == 0 and meta["test"] == []


@pytest.mark.parametrize("channels", [("CT",), ("T2", "ADC")])
def test_sample_msd_image_dimensions_follow_the_channels(tmp_path, channels):
    """Guards a single-channel MSD image being 3D and a multi-channel one 4D (X, Y, Z, C), as dataset.json says."""
    root = write_sample_msd(tmp_path, n_cases=2, channels=channels)
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["numTraining"] == len(meta["training"]) == 2
    images = [np.asarray(nib.load(root / t["image"]).dataobj) for t in meta["training"]]
    expected = (24, 20, 16) if len(channels) == 1 else (24, 20, 16, len(channels))
    assert [im.shape for im in images] == [expected] * 2
    assert meta["tensorImageSize"] == f"{images[0].ndim}D"
    assert not np.array_equal(images[0], images[1])  # each case its own seed


def test_totalseg_meta_csv_is_semicolon_separated_lines():
    """Guards meta.csv as TotalSegmentator's: a header and one ';'-separated, '\\n'-terminated line per subject."""
    rows = [{"image_id": f"s{i:04d}", "age": 50 + i, "gender": "f", "institute": "A", "study_type": "ct abdomen",
             "split": "train", "ignored": "x"} for i in range(2)]
    text = totalseg_meta_csv(rows)
    assert "\r" not in text and text.endswith("\n")
    lines = text[:-1].split("\n")
    assert lines[0] == ";".join(TOTALSEG_META_COLUMNS)
    assert lines[1:] == ["s0000;50;f;A;ct abdomen;train", "s0001;51;f;A;ct abdomen;train"]


def test_totalseg_structure_masks_are_the_blobs(tmp_path):
    """Guards each structure's mask being its own blob inside the body (not the background), masks disjoint."""
    root = write_sample_totalseg(tmp_path, n_cases=1, structures=("aorta", "kidney_left"))
    image = np.asarray(nib.load(root / "s0000" / "ct.nii.gz").dataobj)
    masks = [np.asarray(nib.load(root / "s0000" / "segmentations" / f"{s}.nii.gz").dataobj) > 0
             for s in ("aorta", "kidney_left")]
    for m in masks:
        assert 0 < m.sum() < 0.05 * m.size and (image[m] > AIR_HU).all()
    assert not (masks[0] & masks[1]).any()


def test_sample_case_body_in_air_and_noise():
    """Guards the sample CT: a centred ~40 HU body filling most of the view, in -1000 HU air, noise SD ~10 HU."""
    image, label, _ = sample_case(3)
    body = image > AIR_HU
    assert not body[np.ix_(*[[0, n - 1] for n in image.shape])].any()  # air in the corners
    for axis in range(3):
        assert np.moveaxis(body, axis, 0).any(axis=(1, 2)).sum() > 0.75 * image.shape[axis]
    np.testing.assert_allclose(np.argwhere(body).mean(0), (np.array(image.shape) - 1) / 2, atol=1.0)
    assert abs(np.median(image[~body]) + 1000) < 5 and abs(np.median(image[body & (label == 0)]) - 40) < 5
    assert 8 < image[~body].std() < 12
    assert np.array_equal(sample_case(3)[0], image) and not np.array_equal(sample_case(4)[0], image)


def test_sample_case_affine_is_spacing_centred_at_origin():
    """Guards the affine: diag(spacing) and the volume's centre (the body's) at the world origin."""
    shape = (24, 20, 16)
    affine = sample_case(0, shape=shape, spacing=1.5)[2]
    np.testing.assert_array_equal(affine[:3, :3], 1.5 * np.eye(3))
    np.testing.assert_allclose(affine @ [*(np.array(shape) / 2), 1.0], [0, 0, 0, 1])


def test_sample_case_class_intensity_rises_with_class():
    """Guards each class k's blob being 60*k HU brighter than the body, so that classes differ in intensity."""
    for seed in range(10):
        image, label, _ = sample_case(seed)
        body = np.median(image[(image > AIR_HU) & (label == 0)])
        rise = [np.median(image[label == k]) - body for k in (1, 2)]
        assert abs(rise[0] - 60) < 15 and abs(rise[1] - 120) < 15


def test_sample_case_classes_lie_along_the_first_axis():
    """Guards the blob layout: class k+1 beyond class k along axis 0, around the centre, not shifted on axes 1, 2."""
    mids, offsets = [], []
    for seed in range(60):
        label = sample_case(seed)[1]
        c1, c2 = (np.argwhere(label == k).mean(0) for k in (1, 2))
        assert c2[0] > c1[0]
        mids.append((c1[0] + c2[0]) / 2)
        offsets.append(c2[1:] - c1[1:])
    assert abs(np.mean(mids) - 23 / 2) < 1.0
    np.testing.assert_allclose(np.mean(offsets, axis=0), 0, atol=0.5)


def test_sample_case_blob_radius_is_2_to_3_5_voxels():
    """Guards the blob size: a ball of radius 2-3.5 voxels (as equivalent-sphere radius of its voxel count)."""
    for seed in range(30):
        label = sample_case(seed, shape=(40, 40, 40), n_classes=1)[1]
        radius = (3 * np.count_nonzero(label == 1) / (4 * np.pi)) ** (1 / 3)
        assert 2.0 - 0.25 < radius < 3.5 + 0.25
