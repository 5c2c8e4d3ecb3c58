"""The readers against the datasets as they are distributed: nnU-Net v2's ignore label, a ``dataset.json``
read as UTF-8 whatever the locale (with or without a BOM), and which TotalSegmentator subject lacks a mask.
Fixtures are the tiny sample folders, edited into the real forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyperkit.data.layouts import open_dataset
from hyperkit.data.sample import write_sample_msd, write_sample_nnunet, write_sample_totalseg
from hyperkit.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _edit_labels(root: Path, labels: dict) -> None:
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = labels
    (root / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("labels", [
    {"background": 0, "zone_a": 1, "zone_b": 2, "ignore": 3},  # the form of nnU-Net's documentation/ignore_label.md
    {"ignore": 3, "background": 0, "zone_a": 1, "zone_b": 2},
])
def test_nnunet_ignore_label_is_refused_not_made_a_task(tmp_path: Path, labels: dict) -> None:
    """nnU-Net v2 reserves the label named 'ignore' for unannotated voxels (sparse annotations); it was read
    as a class, giving a task 'ignore@T2' whose target is the unannotated region."""
    root = write_sample_nnunet(tmp_path, n_cases=2)
    _edit_labels(root, labels)
    with pytest.raises(DataError, match="label 'ignore' \\(3\\) is nnU-Net's ignore label") as info:
        open_dataset(root)
    assert info.value.path == root / "dataset.json"


def test_nnunet_class_named_like_ignore_but_not_ignore_is_a_class(tmp_path: Path) -> None:
    root = write_sample_nnunet(tmp_path, n_cases=2)
    _edit_labels(root, {"background": 0, "Ignore": 1, "ignored_zone": 2})
    assert [t.class_name for t in open_dataset(root).tasks()][:2] == ["Ignore", "ignored_zone"]


def test_dataset_json_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """An editor's or a spreadsheet's UTF-8 export starts with a BOM; meta.csv was read with it, dataset.json
    was refused."""
    root = write_sample_msd(tmp_path, n_cases=2, channels=("FLAIR", "T1w"))
    path = root / "dataset.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    ds = open_dataset(root)
    assert ds.channels == ["FLAIR", "T1w"] and list(ds.labels.values()) == ["organ", "tumour"]


def test_dataset_json_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """A UTF-8 class name was decoded with the locale's encoding: refused under an ASCII locale, and turned
    into another name (another task id) under cp1252."""
    root = write_sample_nnunet(tmp_path, n_cases=2, channels=("CT",))
    meta = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    meta["labels"] = {"background": 0, "Gewebe_\u00e4": 1, "Niere_\u00f6": 2}
    (root / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys, locale; from hyperkit.data.layouts import open_dataset; "
            "print(locale.getpreferredencoding(False)); print(ascii(open_dataset(sys.argv[1]).labels))")
    out = subprocess.run([sys.executable, "-c", code, str(root)], env=env, capture_output=True, text=True,
                         encoding="utf-8")
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1:]
    encoding, labels = out.stdout.splitlines()
    if encoding.lower().replace("-", "") == "utf8":
        pytest.skip("this platform's C locale is UTF-8: the locale's encoding cannot be tried")
    assert labels == ascii({1: "Gewebe_\u00e4", 2: "Niere_\u00f6"})


def test_totalseg_subject_lacking_a_mask_is_named_even_when_it_is_the_first(tmp_path: Path) -> None:
    """With s0000 lacking a mask, the message named s0001 (the complete subject) and said only 'differ'."""
    root = write_sample_totalseg(tmp_path, n_cases=2, structures=("aorta", "kidney_left"))
    (root / "s0000" / "segmentations" / "kidney_left.nii.gz").unlink()
    with pytest.raises(DataError, match=r"differ from the first subject's \(s0000\): this folder has 1 mask\(s\) "
                                        r"that s0000 lacks: \['kidney_left'\] \(s0000 may be the incomplete one\)"):
        open_dataset(root)


def test_totalseg_later_subject_lacking_a_mask_is_named(tmp_path: Path) -> None:
    root = write_sample_totalseg(tmp_path, n_cases=3, structures=("aorta", "kidney_left"))
    seg = root / "s0002" / "segmentations"
    (seg / "aorta.nii.gz").rename(seg / "aorta_old.nii.gz")
    with pytest.raises(DataError, match=r"\(s0000\): this folder lacks 1 mask\(s\) that s0000 has: \['aorta'\]; "
                                        r"has 1 mask\(s\) that s0000 lacks: \['aorta_old'\]$") as info:
        open_dataset(root)
    assert info.value.path == seg


def test_hidden_metadata_files_leave_the_data_fingerprint_alone(tmp_path: Path) -> None:
    """The MSD tarballs, packed on macOS, carry AppleDouble files (``._dataset.json``) beside ``dataset.json``: the
    same data unpacked with and without them must keep one fingerprint, so that finished runs are reused."""
    from hyperkit.data.identity import data_fingerprint

    root = write_sample_msd(tmp_path, "Task03_Liver", n_cases=2)
    before = data_fingerprint(tmp_path)
    (root / "._dataset.json").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    (tmp_path / "._Task03_Liver").write_bytes(b"\x00\x05\x16\x07")
    (root / "._notes.csv").write_bytes(b"\x00\x05\x16\x07")
    assert data_fingerprint(tmp_path) == before
    (root / "notes.csv").write_text("a,b\n")  # a visible metadata file still counts
    assert data_fingerprint(tmp_path) != before


def test_nnunet_images_no_labelled_case_reads_are_named(tmp_path: Path) -> None:
    """An extra channel file or an image without its label was left out without a word (nnU-Net refuses both)."""
    import shutil
    import warnings

    root = write_sample_nnunet(tmp_path, n_cases=2)
    first = sorted((root / "imagesTr").glob("*_0000.nii.gz"))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete folder: nothing to say
        open_dataset(root)
    shutil.copy(first, first.with_name(first.name.replace("_0000", "_0009")))
    shutil.copy(first, root / "imagesTr" / "extra_0000.nii.gz")
    (root / "imagesTr" / "._extra_0000.nii.gz").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble: not an image
    with pytest.warns(UserWarning, match=r"imagesTr: 2 image file\(s\) no labelled case reads \(case_000_0009.nii.gz, "
                                         r"extra_0000.nii.gz\): a channel beyond the 2"):
        ds = open_dataset(root)
    assert len(ds.cases) == 2
