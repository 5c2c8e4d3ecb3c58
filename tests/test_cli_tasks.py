"""`hyperkit tasks`: one row per binary task; bad input -> one readable line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hyperkit.cli import main
from hyperkit.data.sample import write_nifti, write_sample_msd, write_sample_nnunet, write_sample_totalseg


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    write_sample_msd(tmp_path, "Task01_BrainTumour", channels=("FLAIR", "T1w", "t1gd", "T2w"),
                     labels=("edema", "non-enhancing tumor", "enhancing tumour"), absent={0: (2,)})
    write_sample_totalseg(tmp_path, structures=("aorta", "stomach"))
    write_sample_nnunet(tmp_path)
    return tmp_path


def test_tasks_json_lists_every_task(data_root, capsys):
    assert main(["tasks", str(data_root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 12 + 2 + 4
    assert set(rows[0]) >= {"id", "layout", "dataset", "class", "channel", "cases"}
    by_id = {r["id"]: r for r in rows}
    r = by_id["msd/Task01_BrainTumour/non-enhancing_tumor@FLAIR"]
    assert (r["layout"], r["dataset"], r["class"], r["channel"], r["cases"]) == \
        ("msd", "Task01_BrainTumour", "non-enhancing tumor", "FLAIR", 2)
    assert r["missing_in"] == ["sample_000"] and r["role"] == "heldout"
    assert by_id["totalseg/TotalSegmentator/stomach@CT"]["role"] == "val"
    assert by_id["totalseg/TotalSegmentator/aorta@CT"]["role"] == "train"
    assert by_id["nnunet/Dataset901_Sample/zone_b@ADC"]["cases"] == 3


def test_tasks_table_and_env_default(data_root, capsys, monkeypatch):
    monkeypatch.setenv("HYPERKIT_DATA", str(data_root))
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["id", "layout", "dataset", "class", "channel", "cases", "role"]
    assert "18 tasks: 1 train, 1 val, 16 heldout" in out
    assert "note: msd/Task01_BrainTumour/non-enhancing_tumor@FLAIR is absent in sample_000" in out


def test_tasks_bad_input_exits_2_with_one_line(data_root):
    p = data_root / "Task01_BrainTumour" / "labelsTr" / "sample_001.nii.gz"
    img = nib.load(p)
    lab = np.asarray(img.dataobj).copy()
    lab[0, 0, 0] = 9
    write_nifti(p, lab, img.affine)
    proc = subprocess.run([sys.executable, "-m", "hyperkit.cli", "tasks", str(data_root)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("hyperkit: error: ") and "sample_001.nii.gz" in lines[0]
    assert "label values [9] are not declared" in lines[0]


def test_tasks_missing_root_exits_2(tmp_path, capsys):
    assert main(["tasks", str(tmp_path / "nowhere")]) == 2
    assert "data folder not found" in capsys.readouterr().err


def test_tasks_takes_data_as_the_other_commands_spell_it(data_root, capsys):
    assert main(["tasks", "--data", str(data_root), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 12 + 2 + 4
    assert main(["tasks", str(data_root), "--data", str(data_root / "elsewhere")]) == 2
    assert "two data folders given" in capsys.readouterr().err
