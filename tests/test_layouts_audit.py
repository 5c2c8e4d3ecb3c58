"""Audit of hyperkit.data.layouts: containment of every file in the dataset root, channel and label
mapping, file ordering and the refusal (as DataError naming the file) of malformed MSD, nnU-Net v2 and
TotalSegmentator folders. Fixtures are tiny folders written in the real layouts under tmp_path."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hyperkit.data.layouts import (TotalSegDataset, default_data_root, detect_layout, discover_datasets,
                                   open_dataset)
from hyperkit.data.sample import write_nifti, write_sample_msd, write_sample_nnunet, write_sample_totalseg
from hyperkit.errors import DataError


def _meta(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text())


def _write_meta(root: Path, meta: dict) -> None:
    (root / "dataset.json").write_text(json.dumps(meta))


def _edit(root: Path, drop_count: bool = True, **changes) -> None:
    meta = _meta(root)
    meta.update(changes)
    if drop_count:
        meta.pop("numTraining", None)
    _write_meta(root, meta)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


# ---- containment: no file of a case may lie outside the root -------------------------------------------

def test_totalseg_structure_mask_symlinked_out_of_the_root_is_refused(tmp_path):
    root = write_sample_totalseg(tmp_path / "data", n_cases=2)
    outside = tmp_path / "outside"
    outside.mkdir()
    mask = root / "s0001" / "segmentations" / "aorta.nii.gz"
    mask.rename(outside / "aorta.nii.gz")
    os.symlink(outside / "aorta.nii.gz", mask)
    with pytest.raises(DataError, match="leaves the dataset root") as info:
        open_dataset(root)
    assert info.value.path == mask


def test_nnunet_label_symlinked_out_of_the_root_is_refused(tmp_path):
    root = write_sample_nnunet(tmp_path / "data", channels=("CT",), n_cases=2)
    outside = tmp_path / "outside"
    outside.mkdir()
    label = root / "labelsTr" / "case_001.nii.gz"
    label.rename(outside / "case_001.nii.gz")
    os.symlink(outside / "case_001.nii.gz", label)
    with pytest.raises(DataError, match="leaves the dataset root"):
        open_dataset(root)


@pytest.mark.parametrize("layout", ["msd", "nnunet", "totalseg"])
def test_metadata_symlinked_out_of_the_root_is_refused_unread(tmp_path, layout):
    """dataset.json / meta.csv linked to a file outside: it was read (its content could reach an error message)."""
    write = {"msd": write_sample_msd, "nnunet": write_sample_nnunet, "totalseg": write_sample_totalseg}[layout]
    root = write(tmp_path / "data", n_cases=2)
    meta = root / ("meta.csv" if layout == "totalseg" else "dataset.json")
    outside = tmp_path / "outside"
    outside.mkdir()
    meta.rename(outside / meta.name)
    os.symlink(outside / meta.name, meta)
    with pytest.raises(DataError, match="leaves the dataset root") as info:
        open_dataset(root)
    assert info.value.path == meta


@pytest.mark.parametrize("layout", ["nnunet", "totalseg"])
def test_a_folder_symlinked_outside_is_refused_before_it_is_listed(tmp_path, layout):
    """A labelsTr / segmentations folder linked outside: its file names (e.g. a patient's) reached an error
    message before the containment check refused the dataset."""
    if layout == "nnunet":
        root = write_sample_nnunet(tmp_path / "data", channels=("CT",), n_cases=2)
        folder = root / "labelsTr"
    else:
        root = write_sample_totalseg(tmp_path / "data", n_cases=2)
        folder = root / "s0001" / "segmentations"
    outside = tmp_path / "outside"
    folder.rename(outside)
    write_nifti(outside / "patient_JaneRoe_1980.nii.gz", np.zeros((2, 2, 2), np.uint8), np.eye(4))
    os.symlink(outside, folder)
    with pytest.raises(DataError, match="leaves the dataset root") as info:
        open_dataset(root)
    assert "JaneRoe" not in str(info.value)


def test_the_fingerprint_hashes_regular_metadata_files_inside_the_folder_only(tmp_path):
    """A FIFO named notes.json hung the fingerprint (every evaluate); a link to a file outside was read."""
    from hyperkit.data.identity import data_fingerprint

    write_sample_msd(tmp_path / "data", n_cases=2)
    before = data_fingerprint(tmp_path / "data")
    outside = tmp_path / "secret.json"
    outside.write_text("{}")
    os.symlink(outside, tmp_path / "data" / "notes.json")
    os.mkfifo(tmp_path / "data" / "pipe.json")
    assert data_fingerprint(tmp_path / "data") == before
    outside.write_text('{"changed": 1}')
    assert data_fingerprint(tmp_path / "data") == before


@pytest.mark.parametrize("key", ["image", "label"])
def test_msd_paths_climbing_out_of_the_root_are_refused(tmp_path, key):
    root = write_sample_msd(tmp_path / "data", n_cases=2)
    (tmp_path / "secret.nii.gz").write_bytes((root / "labelsTr" / "sample_000.nii.gz").read_bytes())
    meta = _meta(root)
    meta["training"][1][key] = "../../secret.nii.gz"
    _write_meta(root, meta)
    with pytest.raises(DataError, match="leaves the dataset root"):
        open_dataset(root)


@pytest.mark.parametrize("kind", ["absolute", "none"])
def test_msd_label_path_must_be_a_relative_string(tmp_path, kind):
    """safe_join's rule for every listed path: a non-empty relative string (even an absolute path inside the root
    is refused)."""
    root = write_sample_msd(tmp_path, n_cases=2)
    meta = _meta(root)
    label = meta["training"][1]["label"]
    meta["training"][1]["label"] = str((root / label).resolve()) if kind == "absolute" else None
    _write_meta(root, meta)
    with pytest.raises(DataError, match="leaves the dataset root" if kind == "absolute" else "non-empty string"):
        open_dataset(root)


def test_nnunet_listed_image_climbing_out_of_the_root_is_refused(tmp_path):
    root = write_sample_nnunet(tmp_path / "data", channels=("CT",), n_cases=1)
    (tmp_path / "x_0000.nii.gz").write_bytes((root / "imagesTr" / "case_000_0000.nii.gz").read_bytes())
    _edit(root, dataset={"case_000": {"images": ["../../x_0000.nii.gz"], "label": "labelsTr/case_000.nii.gz"}})
    with pytest.raises(DataError, match="leaves the dataset root"):
        open_dataset(root)


def test_root_reached_through_a_symlink_or_a_relative_path_opens(tmp_path, monkeypatch):
    """A data folder linked from elsewhere (or named relative to the working folder) is no escape."""
    real = write_sample_totalseg(tmp_path / "disk", n_cases=2)
    link = tmp_path / "TotalSegmentator"
    os.symlink(real, link)
    assert [c.case_id for c in open_dataset(link).cases] == ["s0000", "s0001"]
    monkeypatch.chdir(tmp_path / "disk")
    assert len(open_dataset("TotalSegmentator").cases) == 2


@pytest.mark.parametrize("cid", ["..", ".", "a\\b"])
def test_nnunet_case_ids_that_are_no_plain_names_are_refused(tmp_path, cid):
    root = write_sample_nnunet(tmp_path, channels=("CT",), n_cases=1)
    _edit(root, dataset={cid: {"images": ["imagesTr/case_000_0000.nii.gz"], "label": "labelsTr/case_000.nii.gz"}})
    with pytest.raises(DataError, match="not a plain name"):
        open_dataset(root)


# ---- channels, labels and tasks -------------------------------------------------------------------------

def test_nnunet_channels_follow_their_keys_not_the_json_order(tmp_path):
    root = write_sample_nnunet(tmp_path, channels=("T2", "ADC"), n_cases=1)
    _edit(root, drop_count=False, channel_names={"1": "ADC", "0": "T2"})
    ds = open_dataset(root)
    assert ds.channels == ["T2", "ADC"]
    t = next(t for t in ds.tasks() if t.task_id.endswith("@ADC"))
    assert t.channel_index == 1


def test_tasks_are_ordered_by_label_value_within_each_channel(tmp_path):
    root = write_sample_nnunet(tmp_path, channels=("T2", "ADC"), n_cases=1)
    _edit(root, drop_count=False, labels={"zone_b": 2, "background": 0, "zone_a": 1})
    ds = open_dataset(root)
    assert [(t.channel_index, t.label_value, t.class_name) for t in ds.tasks()] == [
        (0, 1, "zone_a"), (0, 2, "zone_b"), (1, 1, "zone_a"), (1, 2, "zone_b")]


def test_msd_4d_channels_are_loaded_in_order(tmp_path):
    root = write_sample_msd(tmp_path, n_cases=2, channels=("T2", "ADC", "DWI"))
    ds = open_dataset(root)
    raw, affine = _load(root / "imagesTr" / "sample_001.nii.gz")
    data = ds.load_case("sample_001")  # by id
    assert data.case_id == "sample_001" and data.image.shape == (3, *raw.shape[:3])
    for c in range(3):
        np.testing.assert_allclose(data.image[c], raw[..., c].astype(np.float32))
    np.testing.assert_array_equal(data.label, _load(root / "labelsTr" / "sample_001.nii.gz")[0])
    np.testing.assert_allclose(data.affine, affine)


@pytest.mark.parametrize("key, value, match", [
    ("modality", {}, "non-empty object"),
    ("modality", {"0": "CT", "x": "MR"}, "keys must be integers"),
    ("labels", {"0": "background"}, "no foreground label"),
    ("labels", {"0": "background", "one": "organ"}, "keys must be integers"),
    ("training", [], "non-empty list"),
])
def test_msd_dataset_json_problems_are_refused(tmp_path, key, value, match):
    root = write_sample_msd(tmp_path, n_cases=1)
    _edit(root, **{key: value})
    with pytest.raises(DataError, match=match) as info:
        open_dataset(root)
    assert info.value.path == root / "dataset.json"


def test_msd_training_entries_without_label_or_repeated_are_refused(tmp_path):
    root = write_sample_msd(tmp_path, n_cases=2)
    meta = _meta(root)
    training = meta["training"]
    _edit(root, training=[training[0], {"image": training[1]["image"]}])
    with pytest.raises(DataError, match="must have 'image' and 'label'"):
        open_dataset(root)
    _edit(root, training=[training[0], training[1], training[0]])
    with pytest.raises(DataError, match="repeat a case"):
        open_dataset(root)


@pytest.mark.parametrize("labels, match", [
    ({"background": 0, "zone_a": True}, "non-integer value True"),
    ({"background": 0}, "no foreground label"),
])
def test_nnunet_bad_label_declarations_are_refused(tmp_path, labels, match):
    root = write_sample_nnunet(tmp_path, n_cases=1)
    _edit(root, labels=labels)
    with pytest.raises(DataError, match=match):
        open_dataset(root)


def test_nnunet_file_ending_default_and_unsupported(tmp_path):
    root = write_sample_nnunet(tmp_path, n_cases=2)
    meta = _meta(root)
    del meta["file_ending"]  # nnU-Net's files end in .nii.gz unless dataset.json says otherwise
    _write_meta(root, meta)
    assert [c.case_id for c in open_dataset(root).cases] == ["case_000", "case_001"]
    _edit(root, drop_count=False, file_ending=".mha")
    with pytest.raises(DataError, match="file_ending '.mha' is not supported"):
        open_dataset(root)


def test_nnunet_cases_are_sorted_and_hidden_label_files_skipped(tmp_path):
    root = write_sample_nnunet(tmp_path, channels=("CT",), n_cases=3)
    (root / "labelsTr" / "._case_001.nii.gz").write_bytes(b"AppleDouble resource fork")
    ds = open_dataset(root)
    assert [c.case_id for c in ds.cases] == ["case_000", "case_001", "case_002"]
    assert ds.cases[2].images == (root / "imagesTr" / "case_002_0000.nii.gz",)
    listing = {f"case_{i:03d}": {"images": [f"imagesTr/case_{i:03d}_0000.nii.gz"],
                                 "label": f"labelsTr/case_{i:03d}.nii.gz"} for i in (2, 0, 1)}
    _edit(root, dataset=listing)
    assert [c.case_id for c in open_dataset(root).cases] == ["case_000", "case_001", "case_002"]


def test_nnunet_missing_or_empty_labels_folder_and_wrong_count(tmp_path):
    root = write_sample_nnunet(tmp_path, channels=("CT",), n_cases=2)
    _edit(root, drop_count=False, numTraining=3)
    with pytest.raises(DataError, match="numTraining is 3 but 2"):
        open_dataset(root)
    _edit(root)
    for p in (root / "labelsTr").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="no training cases found"):
        open_dataset(root)
    (root / "labelsTr").rmdir()
    with pytest.raises(DataError, match="labelsTr: folder not found"):
        open_dataset(root)


# ---- geometry and values: present_labels and load_case each check on their own ------------------------

def _nnunet_with_channel1(tmp_path: Path, make) -> Path:
    root = write_sample_nnunet(tmp_path, channels=("T2", "ADC"), n_cases=1)
    p = root / "imagesTr" / "case_000_0001.nii.gz"
    data, aff = _load(p)
    write_nifti(p, *make(data, aff.copy()))
    return root


def _shifted(aff: np.ndarray, mm: float) -> np.ndarray:
    aff[0, 3] += mm
    return aff


@pytest.mark.parametrize("make, match", [
    (lambda d, a: (np.stack([d, d], -1), a), "per-channel image must be 3D"),
    (lambda d, a: (d, _shifted(a, 4.0)), "channel grid differs"),
])
def test_nnunet_channel_files_must_share_one_3d_grid(tmp_path, make, match):
    ds = open_dataset(_nnunet_with_channel1(tmp_path, make))
    with pytest.raises(DataError, match=match):
        ds.present_labels(ds.cases[0])
    with pytest.raises(DataError, match=match):
        ds.load_case(ds.cases[0])


@pytest.mark.parametrize("channels, shape", [(("T2", "ADC"), (24, 20, 16)), (("CT",), (24, 20, 16, 1, 1))])
def test_msd_image_must_carry_the_declared_channels(tmp_path, channels, shape):
    """A 3D image for two declared channels, or a 5D one, is refused from the header alone."""
    root = write_sample_msd(tmp_path, n_cases=1, channels=channels)
    p = root / "imagesTr" / "sample_000.nii.gz"
    write_nifti(p, np.zeros(shape, np.float32), _load(p)[1])
    ds = open_dataset(root)
    with pytest.raises(DataError, match=f"does not match the {len(channels)} declared"):
        ds.present_labels(ds.cases[0])


@pytest.mark.parametrize("breaker, match", [
    (lambda lab, aff: (lab, _shifted(aff, 0.5)), "label affine does not match"),  # a quarter voxel off
    (lambda lab, aff: (lab[:, :, :-1], aff), "does not match image shape"),
    (lambda lab, aff: (np.where(lab == 2, 5, lab).astype(lab.dtype), aff), r"label values \[5\]"),
])
@pytest.mark.parametrize("reader", ["present_labels", "load_case"])
def test_each_reader_checks_the_label_on_its_own(tmp_path, breaker, match, reader):
    root = write_sample_msd(tmp_path, n_cases=1)
    p = root / "labelsTr" / "sample_000.nii.gz"
    lab, aff = _load(p)
    assert (lab == 2).any()
    write_nifti(p, *breaker(lab, aff.copy()))
    ds = open_dataset(root)
    with pytest.raises(DataError, match=match) as info:
        getattr(ds, reader)(ds.cases[0])
    assert info.value.path == p


# ---- dataset.json as a file ------------------------------------------------------------------------------

def test_dataset_json_not_utf8_or_not_an_object_is_a_data_error(tmp_path):
    root = write_sample_msd(tmp_path, n_cases=1)
    (root / "dataset.json").write_bytes(b'{"name": "\xff\xfe"}')
    with pytest.raises(DataError, match="not valid JSON"):
        open_dataset(root)
    (root / "dataset.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="must hold a JSON object"):
        detect_layout(root)
    (root / "dataset.json").write_text('{"name": "x"}')
    with pytest.raises(DataError, match="neither MSD"):
        detect_layout(root)


# ---- TotalSegmentator -------------------------------------------------------------------------------------

def _rewrite_meta_csv(root: Path, text: str) -> None:
    (root / "meta.csv").write_text(text)


def test_totalseg_comma_separated_meta_and_no_split_column(tmp_path):
    root = write_sample_totalseg(tmp_path, n_cases=3)
    _rewrite_meta_csv(root, "image_id,age,split\ns0000,50,val\ns0001,51, train \ns0002,52,\n")
    assert [c.split for c in open_dataset(root).cases] == ["val", "train", None]
    _rewrite_meta_csv(root, "image_id;age\ns0000;50\ns0001;51\n")  # s0002 unlisted, but no one has a split
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = open_dataset(root)
    assert [(c.case_id, c.split) for c in ds.cases] == [("s0000", None), ("s0001", None), ("s0002", None)]


def test_totalseg_meta_without_image_id_is_refused(tmp_path):
    root = write_sample_totalseg(tmp_path, n_cases=1)
    _rewrite_meta_csv(root, "subject;split\ns0000;train\n")
    with pytest.raises(DataError, match="needs an 'image_id' column"):
        open_dataset(root)


def test_totalseg_folders_without_ct_are_not_subjects(tmp_path):
    root = write_sample_totalseg(tmp_path, n_cases=2)
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a subject")
    assert [c.case_id for c in open_dataset(root).cases] == ["s0000", "s0001"]


def test_totalseg_stray_files_in_segmentations_are_not_structures(tmp_path):
    root = write_sample_totalseg(tmp_path, n_cases=2, structures=("aorta", "kidney_left"))
    seg = root / "s0000" / "segmentations"
    (seg / "._aorta.nii.gz").write_bytes(b"AppleDouble")
    (seg / "notes.txt").write_text("x")
    ds = open_dataset(root)
    assert ds.labels == {1: "aorta", 2: "kidney_left"}
    assert [n for n, _ in ds.cases[0].structures] == ["aorta", "kidney_left"]
    assert ds.present_labels(ds.cases[0]) == {1, 2}


@pytest.mark.parametrize("edit, match", [
    (lambda seg: [p.unlink() for p in seg.iterdir()] and seg.rmdir(), "segmentations: folder not found"),
    (lambda seg: [p.unlink() for p in seg.iterdir()], "holds no structure masks"),
    (lambda seg: (seg / "aorta.nii.gz").unlink(), "differ from the first subject's"),
    (lambda seg: (seg / "aorta.nii").write_bytes(b""), "holds a structure twice"),
])
def test_totalseg_segmentation_folder_problems_are_refused(tmp_path, edit, match):
    root = write_sample_totalseg(tmp_path, n_cases=2)
    seg = root / "s0001" / "segmentations"
    edit(seg)
    with pytest.raises(DataError, match=match) as info:
        open_dataset(root)
    assert info.value.path == seg


@pytest.mark.parametrize("make, match", [
    (lambda m, a: ((m * 2).astype(np.uint8), a), "must be binary"),
    (lambda m, a: (m, _shifted(a, 3.0)), "label affine does not match"),
    (lambda m, a: (m[:-2], a), "does not match image shape"),
])
def test_totalseg_structure_masks_are_checked(tmp_path, make, match):
    root = write_sample_totalseg(tmp_path, n_cases=1, structures=("aorta", "kidney_left"))
    p = root / "s0000" / "segmentations" / "kidney_left.nii.gz"
    mask, aff = _load(p)
    assert mask.any()
    write_nifti(p, *make(mask, aff.copy()))
    ds = open_dataset(root)
    for read in (ds.present_labels, ds.load_case):
        with pytest.raises(DataError, match=match) as info:
            read(ds.cases[0])
        assert info.value.path == p


def test_totalseg_present_labels_and_overlaps_go_to_the_smaller_structure(tmp_path):
    """TotalSegmentator v2's masks overlap in places (they were refused, so no real subject could be read): a
    shared voxel goes to the smaller structure of the subject, whichever comes first; reported once per dataset."""
    root = write_sample_totalseg(tmp_path, n_cases=2, structures=("aorta", "kidney_left", "sternum"))
    ds = open_dataset(root)
    assert isinstance(ds, TotalSegDataset) and ds.present_labels(ds.cases[0]) == {1, 2, 3}
    for sid in ("s0000", "s0001"):
        seg = root / sid / "segmentations"
        aorta, aff = _load(seg / "aorta.nii.gz")
        sternum, _ = _load(seg / "sternum.nii.gz")
        write_nifti(seg / "sternum.nii.gz", ((sternum > 0) | (aorta > 0)).astype(np.uint8), aff)  # after, larger
        kidney, _ = _load(seg / "kidney_left.nii.gz")
        part = np.zeros_like(kidney, dtype=bool)
        part[np.argwhere(kidney > 0)[0][0]] = True  # one slab of the kidney, larger than the kidney
        write_nifti(seg / "aorta.nii.gz", ((aorta > 0) | (part & (kidney > 0))).astype(np.uint8), aff)
    seg = root / "s0000" / "segmentations"
    aorta, kidney, sternum = ((_load(seg / f"{n}.nii.gz")[0] > 0) for n in ("aorta", "kidney_left", "sternum"))
    assert kidney.sum() < aorta.sum() < sternum.sum() and (aorta & kidney).any() and (aorta & sternum).any()
    with pytest.warns(UserWarning, match=r"s0000/segmentations: 2 pair\(s\) of structure masks overlap "
                                         r"\(aorta/sternum \d+ voxel\(s\), aorta/kidney_left \d+ voxel\(s\)\); "
                                         "each shared voxel goes to the smaller structure"):
        label = ds.load_case("s0000").label
    expected = np.where(kidney, 2, np.where(aorta, 1, np.where(sternum, 3, 0)))
    np.testing.assert_array_equal(label, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once: the second subject's overlaps are resolved silently
        assert set(np.unique(ds.load_case("s0001").label)) == {0, 1, 2, 3}


# ---- detection, discovery, default root ---------------------------------------------------------------

def test_discover_a_dataset_folder_itself_and_sorted_siblings(tmp_path):
    root = write_sample_msd(tmp_path, "Task05_Prostate", n_cases=1)
    assert [d.name for d in discover_datasets(root)] == ["Task05_Prostate"]
    write_sample_msd(tmp_path, "Task02_Heart", n_cases=1)
    write_sample_nnunet(tmp_path, "Dataset007_X", n_cases=1)
    (tmp_path / "zz_notes").mkdir()
    assert [d.name for d in discover_datasets(tmp_path)] == ["Dataset007_X", "Task02_Heart", "Task05_Prostate"]


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("HYPERKIT_DATA", raising=False)
    assert default_data_root() == Path("data")
    monkeypatch.setenv("HYPERKIT_DATA", str(tmp_path))
    assert default_data_root() == tmp_path


# ---- bugs found by the audit -------------------------------------------------------------------------

def test_totalseg_meta_csv_not_utf8_is_a_data_error(tmp_path):
    """A meta.csv saved as Latin-1 (an institute named 'Zürich') raised UnicodeDecodeError."""
    root = write_sample_totalseg(tmp_path, n_cases=1)
    (root / "meta.csv").write_bytes("image_id;institute;split\ns0000;Z\xfcrich;train\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8") as info:
        open_dataset(root)
    assert info.value.path == root / "meta.csv"


def test_totalseg_meta_row_without_image_id_is_a_data_error(tmp_path):
    """A short row with image_id not in the first column left it None and raised AttributeError."""
    root = write_sample_totalseg(tmp_path, n_cases=2)
    _rewrite_meta_csv(root, "split;image_id\ntrain;s0000\nval\n")
    with pytest.raises(DataError, match="row 3 has no image_id") as info:
        open_dataset(root)
    assert info.value.path == root / "meta.csv"


def test_totalseg_meta_rows_end_at_line_breaks_only(tmp_path):
    """str.splitlines also splits at \\x0c, \\x1c, \\u2028 ...: a field holding one cut its row in two."""
    root = write_sample_totalseg(tmp_path, n_cases=3)
    _rewrite_meta_csv(root, "image_id;study;split\r\ns0000;ct\u2028abdomen;train\r\ns0001;a\x0cb;val\r\n"
                            's0002;"two\r\nlines";test\r\n')
    ds = open_dataset(root)
    assert [(c.case_id, c.split) for c in ds.cases] == [("s0000", "train"), ("s0001", "val"), ("s0002", "test")]


def test_totalseg_meta_csv_with_a_byte_order_mark_reads(tmp_path):
    """A spreadsheet's UTF-8 export starts with a BOM; its first column read as '\\ufeffimage_id' and the file was
    refused for lacking an 'image_id' column."""
    root = write_sample_totalseg(tmp_path, n_cases=2)
    _rewrite_meta_csv(root, "\ufeffimage_id;split\ns0000;train\ns0001;val\n")
    ds = open_dataset(root)
    assert [(c.case_id, c.split) for c in ds.cases] == [("s0000", "train"), ("s0001", "val")]
