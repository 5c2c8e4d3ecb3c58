"""The comparison scripts of ``benchmarks/`` on results whose answers are known by hand.

``benchmarks/model_runs.py`` (trained hypernetworks, arm against arm) and
``benchmarks/baseline_runs.py`` (Conv / All U-Net runs) and ``benchmarks/case_bootstrap.py`` (intervals
over rows and over test cases) print the numbers that BENCHMARKS.md
quotes; here they read results files written in the kit's own format (the columns of
:data:`hyperkit.evaluation.results_file.FIELDS`) with chosen scores, run as BENCHMARKS.md runs them
(``python benchmarks/...`` from the repository root).
"""

from __future__ import annotations

import csv
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hyperkit.evaluation.results_file import FIELDS, csv_row

ROOT = Path(__file__).resolve().parents[1]
CT_TASK = "totalsegmentator/ct/liver@CT"
MRI_TASK = "msd/Task01_BrainTumour/edema@FLAIR"
SMALL_MRI_TASK = "msd/Task02_Heart/left_atrium@MRI"  # fewer than 3 cases: no test split, every row False


def _base_rows(method: str = "hyper_unet") -> list[dict[str, Any]]:
    """Rows of one run: CT 3 draws x 2 cases, MRI 2 x 2, the small MRI task 2 rows outside a test split."""
    rows = []
    for task, draws, cases, in_test in ((CT_TASK, 3, 2, True), (MRI_TASK, 2, 2, True), (SMALL_MRI_TASK, 2, 1, False)):
        for d in range(draws):
            for c in range(cases):
                rows.append({"task": task, "method": method, "draw": d, "support": f"s{d}", "case": f"case{c}",
                             "in_test_split": in_test, "dsc": 0.30 + 0.05 * d + 0.02 * c, "nsd": 0.5,
                             "nsd_voxel": 0.6, "fit_seconds": 0.1})
    return rows


def _conv_rows() -> list[dict[str, Any]]:
    """Rows of a supervised baseline: draw 0, no support, the test cases only (3 CT, 2 MRI)."""
    return [{"task": task, "method": "conv_unet", "draw": 0, "support": "", "case": f"case{c}", "in_test_split": True,
             "dsc": 0.40 + 0.1 * c, "nsd": 0.5, "nsd_voxel": 0.6, "fit_seconds": 1.0}
            for task, cases in ((CT_TASK, 3), (MRI_TASK, 2)) for c in range(cases)]


def _write(path: Path, rows: list[dict[str, Any]], shift: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(csv_row({**r, "dsc": r["dsc"] + shift}))
    return path


def _benchmark(name: str) -> Any:
    """A script of ``benchmarks/`` imported as a module (its folder on ``sys.path`` only while it is imported)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def four_trainings(tmp_path_factory) -> dict[str, Path]:
    """Two arms of two trainings each: ``wide`` at +0.00 / +0.02, ``paper`` at -0.05 / -0.03 on every row."""
    tmp = tmp_path_factory.mktemp("model_runs")
    shifts = {"wide:s0": 0.0, "wide:s1": 0.02, "paper:s0": -0.05, "paper:s1": -0.03}
    return {label: _write(tmp / label.replace(":", "-") / "results.csv", _base_rows(), s)
            for label, s in shifts.items()}


@pytest.fixture(scope="module")
def model_runs_out(four_trainings) -> str:
    done = _run("model_runs.py", *(f"{k}={v}" for k, v in four_trainings.items()))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_model_runs_per_task_means(model_runs_out):
    # liver: mean over draws 0-2 of 0.30 + 0.05 d + 0.02 c = 0.36; the four runs shifted by 0, +0.02, -0.05, -0.03
    row = next(line for line in model_runs_out.splitlines() if line.startswith("| ct/liver@CT |"))
    assert row.split("|")[3:7] == [" 0.360 ", " 0.380 ", " 0.310 ", " 0.330 "]


def test_model_runs_pairs_use_the_rows_of_the_means(model_runs_out):
    # a constant shift between two runs: the paired difference is that shift with a zero-width interval;
    # MRI pairs count the small task's rows too (4 + 2), the rows its per-training means are taken over
    row = next(line for line in model_runs_out.splitlines() if line.startswith("| wide:s1 - wide:s0 (same arm) |"))
    ct, mri = row.split("|")[2:4]
    assert "+0.020 [+0.020, +0.020] (6)" in ct
    assert "+0.020 [+0.020, +0.020] (6)" in mri
    cross = next(line for line in model_runs_out.splitlines() if line.startswith("| paper:s0 - wide:s0 |"))
    assert "-0.050 [-0.050, -0.050]" in cross


def test_model_runs_welch_interval_over_trainings(model_runs_out):
    # arms' means differ by 0.05; each arm's two trainings are 0.02 apart (sd 0.01414), so the Welch
    # standard error is 0.01414 with 2 degrees of freedom, t(0.975, 2) = 4.3027: 0.05 -/+ 0.0609
    lines = [line for line in model_runs_out.splitlines() if "Welch 95 % CI" in line]
    assert len(lines) == 2
    for mod, line in zip(("CT", "MRI"), lines):
        assert line.startswith(f"{mod}: wide - paper")
        assert "+0.050, Welch 95 % CI [-0.011, +0.111]" in line
        assert "2 and 2 trainings" in line
    arm = next(line for line in model_runs_out.splitlines() if line.startswith("| wide | 2 |"))
    assert "0.360 / 0.380 -> 0.370" in arm


def test_model_runs_refuses_a_run_without_hyper_unet_rows(tmp_path, four_trainings):
    other = _write(tmp_path / "rand.csv", _base_rows("rand_unet"))
    done = _run("model_runs.py", f"wide:s0={four_trainings['wide:s0']}", f"rand={other}")
    assert done.returncode == 2
    assert "no hyper_unet rows in ['rand']" in done.stderr


@pytest.mark.parametrize("spec, message", [("no-equals-sign", "expected label=results.csv"),
                                           ("=results.csv", "expected label=results.csv"),
                                           ("a=/nonexistent/results.csv", "no such results file")])
def test_run_arguments_are_refused_with_the_offending_value(spec, message):
    done = _run("model_runs.py", spec)
    assert done.returncode == 2  # argparse's usage error
    assert message in done.stderr


def test_baseline_runs_difference_and_training_facts(tmp_path):
    ref = _write(tmp_path / "fp32" / "results.csv", _conv_rows())
    new = _write(tmp_path / "bf16" / "results.csv", _conv_rows(), shift=0.01)
    ref.with_suffix(".json").write_text(json.dumps({"baselines": {"conv_unet": {
        CT_TASK: {"steps": 100, "seconds": 60.0, "threads": 2},
        MRI_TASK: {"steps": 50, "seconds": 30.0, "threads": 2}}}}))
    new.with_suffix(".json").write_text(json.dumps({"baselines": {"conv_unet": {
        CT_TASK: {"steps": 80, "seconds": 24.0, "precision": "bf16", "threads": 1}}}}))
    done = _run("baseline_runs.py", f"fp32={ref}", f"bf16={new}")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "### conv_unet" in out and "### all_unet" not in out  # no All U-Net rows: no section
    # mean DSC: (0.4 + 0.5 + 0.6 + 0.4 + 0.5) / 5 = 0.48; every case 0.01 higher in the second run
    m = re.search(r"bf16 - fp32: mean DSC ([\d.]+) -> ([\d.]+), difference ([+-][\d.]+) \[95 % CI ([+-][\d.]+), "
                  r"([+-][\d.]+)\] over (\d+) \(target, case\) pairs", out)
    assert m is not None, out
    assert m.groups() == ("0.480", "0.490", "+0.010", "+0.010", "+0.010", "5")
    assert "- fp32: 2 training(s), 150 steps, 1.5 min of training time, precision fp32, threads [2]" in out
    assert "- bf16: 1 training(s), 80 steps, 0.4 min of training time, precision bf16, threads [1]" in out


def test_case_bootstrap_resamples_test_cases_not_rows(tmp_path: Path) -> None:
    """Two test cases, Hyper − Rand +0.3 on one and −0.1 on the other in each of 20 draws: over the 40
    rows the interval lies above 0; over draws and cases it spans both cases' differences (0 inside),
    and the kit's interval widens that by t(1) / z (two cases: one degree of freedom)."""
    from scipy import stats

    rows = []
    for d in range(20):
        for c, diff in (("case0", 0.3), ("case1", -0.1)):
            for method, dsc in (("hyper_unet", 0.4 + diff), ("rand_unet", 0.4)):
                rows.append({"task": CT_TASK, "method": method, "draw": d, "support": f"s{d}", "case": c,
                             "in_test_split": True, "dsc": dsc, "nsd": 0.5, "nsd_voxel": 0.6, "fit_seconds": 0.1})
    out = _run("case_bootstrap.py", str(_write(tmp_path / "results.csv", rows)))
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if CT_TASK in x)
    (rlo, rhi), (plo, phi), (klo, khi) = [tuple(map(float, m)) for m in
                                          re.findall(r"\[([+-][\d.]+), ([+-][\d.]+)\]", line)]
    assert " 40  2 " in line and rlo > 0
    assert plo == pytest.approx(-0.1, abs=1e-6) and phi == pytest.approx(0.3, abs=1e-6)
    widen = stats.t.ppf(0.975, 1) / stats.norm.ppf(0.975)
    assert klo == pytest.approx(0.1 - 0.2 * widen, abs=1e-3) and khi == pytest.approx(0.1 + 0.2 * widen, abs=1e-3)
    assert "1 of 1 (rows), 0 of 1 (draws and cases, plain), 0 of 1 (the kit)" in out.stdout


def test_one_shot_checks_counts_means_and_intervals_apart(tmp_path: Path) -> None:
    """CT: Hyper 0.1 above Rand and copy in every (draw, case). MRI: Hyper 0.1 above on average but
    −0.1 on one of its two cases, so its interval spans 0. Both tasks count by the means, only the
    CT task by the interval; --compare against the same file gives a difference of exactly 0."""
    rows = []
    for task, per_case in ((CT_TASK, (0.1, 0.1)), (MRI_TASK, (0.3, -0.1))):
        for d in range(3):
            for c, diff in enumerate(per_case):
                for method, dsc in (("hyper_unet", 0.4 + diff), ("rand_unet", 0.4), ("copy_support", 0.4)):
                    rows.append({"task": task, "method": method, "draw": d, "support": f"s{d}", "case": f"case{c}",
                                 "in_test_split": True, "dsc": dsc, "nsd": 0.5, "nsd_voxel": 0.6, "fit_seconds": 0.1})
    path = _write(tmp_path / "results.csv", rows)
    out = _run("one_shot_checks.py", str(path), "--compare", str(path))
    assert out.returncode == 0, out.stderr
    assert "Hyper > Rand on 2 of 2 tasks; Hyper > copy on 2 of 2 tasks (means)" in out.stdout
    assert "interval above 0 as printed: Hyper - Rand on 1 of 2 tasks; Hyper - copy on 1 of 2" in out.stdout
    assert "mean DSC difference +0.000 [95 % CI +0.000, +0.000] over 12 pairs" in out.stdout


def test_segment_memory_builds_clinical_grids(tmp_path: Path) -> None:
    """clinical_grid of benchmarks/segment_memory.py: a 3 mm scan resampled to 0.8 x 0.8 x 1.5 mm
    keeps its extent, a label stays binary uint8 (nearest), and padding reaches the asked size
    (air in the scan, 0 in the label); a pad smaller than the scan is refused."""
    import numpy as np
    import SimpleITK as sitk
    clinical_grid = _benchmark("segment_memory").clinical_grid
    scan = sitk.GetImageFromArray(np.full((10, 12, 8), 40, dtype=np.int16))  # (z, y, x): 8 x 12 x 10 voxels
    scan.SetSpacing((3.0, 3.0, 3.0))
    label = sitk.GetImageFromArray((np.arange(960).reshape(10, 12, 8) % 2).astype(np.uint8))
    label.SetSpacing((3.0, 3.0, 3.0))
    sitk.WriteImage(scan, str(tmp_path / "scan.nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "label.nii.gz"))
    assert clinical_grid(tmp_path / "scan.nii.gz", tmp_path / "fine.nii.gz") == (30, 45, 20)  # 24/0.8, 36/0.8, 30/1.5
    assert clinical_grid(tmp_path / "scan.nii.gz", tmp_path / "pad.nii.gz", (40, 50, 30)) == (40, 50, 30)
    padded = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pad.nii.gz")))
    assert padded.min() == -1000 and padded.max() == 40 and sitk.ReadImage(str(tmp_path / "pad.nii.gz")).GetSpacing() \
        == pytest.approx((0.8, 0.8, 1.5))
    clinical_grid(tmp_path / "label.nii.gz", tmp_path / "lab.nii.gz", (40, 50, 30), label=True)
    lab = sitk.ReadImage(str(tmp_path / "lab.nii.gz"))
    assert lab.GetPixelID() == sitk.sitkUInt8 and set(np.unique(sitk.GetArrayFromImage(lab))) == {0, 1}
    with pytest.raises(ValueError, match="smaller than the resampled scan"):
        clinical_grid(tmp_path / "scan.nii.gz", tmp_path / "x.nii.gz", (10, 10, 10))


def test_support_air_pads_to_the_asked_air_fraction(tmp_path: Path) -> None:
    """pad_to_air of benchmarks/support_air.py: padding in x and y with air reaches the asked
    fraction (to the rounding of whole voxels), leaves z and the label's foreground alone, and
    refuses a fraction the scan already exceeds; pad_xy (the MRI padding) grows each side by the
    factor with the fill value and refuses to shrink."""
    import numpy as np
    import SimpleITK as sitk
    support_air = _benchmark("support_air")
    pad_to_air, pad_xy = support_air.pad_to_air, support_air.pad_xy
    body = np.full((6, 20, 20), 40, dtype=np.int16)  # (z, y, x)
    body[:, :, :5] = -1000  # a quarter air
    label = np.zeros(body.shape, np.uint8)
    label[2:4, 8:12, 8:12] = 1
    for name, arr in (("scan", body), ("label", label)):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((3.0, 3.0, 3.0))
        sitk.WriteImage(img, str(tmp_path / f"{name}.nii.gz"))
    reached = pad_to_air(tmp_path / "scan.nii.gz", tmp_path / "label.nii.gz", 0.8, tmp_path / "p.nii.gz",
                         tmp_path / "pl.nii.gz")
    assert reached == pytest.approx(0.8, abs=0.01)
    padded = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "p.nii.gz")))
    plabel = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pl.nii.gz")))
    assert padded.shape[0] == 6 and padded.shape == plabel.shape and plabel.sum() == label.sum()
    assert np.count_nonzero(padded == 40) == np.count_nonzero(body == 40)
    with pytest.raises(ValueError, match="own air fraction 0.250"):
        pad_to_air(tmp_path / "scan.nii.gz", tmp_path / "label.nii.gz", 0.2, tmp_path / "q.nii.gz",
                   tmp_path / "ql.nii.gz")
    mri = pad_xy(tmp_path / "scan.nii.gz", tmp_path / "label.nii.gz", 2.0, 0.0, tmp_path / "m.nii.gz",
                 tmp_path / "ml.nii.gz")
    assert mri.GetSize() == (40, 40, 6) and sitk.GetArrayFromImage(mri).min() == -1000  # the scan's own air stays
    assert np.count_nonzero(sitk.GetArrayFromImage(mri) == 0) == 40 * 40 * 6 - 20 * 20 * 6
    with pytest.raises(ValueError, match="side must be >= 1"):
        pad_xy(tmp_path / "scan.nii.gz", tmp_path / "label.nii.gz", 0.5, 0.0, tmp_path / "n.nii.gz",
               tmp_path / "nl.nii.gz")


def test_interval_coverage_ranks_the_three_intervals() -> None:
    """coverage() of benchmarks/interval_coverage.py on a protocol whose test cases differ a lot:
    the interval over rows misses the effect often, the plain two-way one less, the kit's (with
    the small-sample corrections) least (seeded simulations: the same fractions every run)."""
    interval_coverage = _benchmark("interval_coverage")
    coverage, effects = interval_coverage.coverage, interval_coverage.effects
    rows, plain, kit = coverage(4, 5, (0.10, 0.0, 0.05), sims=60, resamples=300)
    assert rows < 0.75 < plain < kit and kit >= 0.9
    import numpy as np
    skewed = effects(np.random.default_rng(0), 0.1, 200_000, "skewed")  # centred, same spread, skewed
    assert abs(skewed.mean()) < 1e-3 and skewed.std() == pytest.approx(0.1, rel=0.01) and np.median(skewed) < -0.02
    with pytest.raises(ValueError, match="'uniform'"):
        effects(np.random.default_rng(0), 0.1, 3, "uniform")


def test_train_bench_times_the_quick_profile_step() -> None:
    """The quick profile samples tasks by structure group, which reads real task ids: the bench's
    synthetic bank must carry them (it once named its tasks ``t0``... and the quick rows failed)."""
    done = _run("train_bench.py", "--profiles", "quick", "--episodes", "1", "--warmup", "0")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| quick"))
    assert float(row.split("|")[7]) > 0  # seconds per step


def test_target_curves_reads_one_evaluation_per_snapshot(tmp_path: Path) -> None:
    """``--report`` on two snapshots' evaluations: one row per episode with the validation DSC of that episode,
    each target's Hyper U-Net mean over its rows, the mean over the targets, and the paper's row."""
    liver, heart = "msd/Task03_Liver/liver@CT", "msd/Task02_Heart/left_atrium@MRI"
    out = tmp_path / "curves"
    for ep, shift in ((100, 0.0), (200, 0.1)):
        rows = [{"task": task, "method": "hyper_unet", "draw": d, "support": f"s{d}", "case": f"c{c}",
                 "in_test_split": True, "dsc": base + shift + 0.01 * c, "nsd": 0.5, "nsd_voxel": 0.6,
                 "fit_seconds": 0.1}
                for task, base in ((liver, 0.30), (heart, 0.10)) for d in range(2) for c in range(3)]
        _write(out / "eval" / f"ep{ep:04d}.csv", rows)
    (out / "train").mkdir()
    (out / "train" / "validation.jsonl").write_text("".join(json.dumps({"episode": e, "dice": d}) + "\n"
                                                            for e, d in ((0, 0.0), (100, 0.12), (200, 0.15))))
    done = _run("target_curves.py", "--data", str(tmp_path), "--out", str(out), "--report")
    assert done.returncode == 0, done.stderr
    lines = (out / "curves.md").read_text().splitlines()
    assert lines[0] == "| episode | validation DSC | mean of the targets | liver | left atrium |"
    assert lines[2:4] == ["| 100 | 0.120 | 0.210 | 0.310 | 0.110 |", "| 200 | 0.150 | 0.310 | 0.410 | 0.210 |"]
    assert lines[4] == "| paper | | 0.636 | 0.772 | 0.500 |"
    assert json.loads((out / "curves.json").read_text())["episodes"] == [100, 200]
    assert (out / "curves.png").stat().st_size > 0
    assert "validation against the mean of the targets: 2 snapshots, at least 3 needed" in done.stdout


def test_target_curves_ranks_the_validation_against_the_targets() -> None:
    """Spearman over the snapshots with a validation: a validation that orders them against the targets gives -1."""
    agreement = _benchmark("target_curves").agreement
    c = {"validation": [0.10, 0.20, None, 0.30], "mean": [0.30, 0.20, 0.50, 0.10]}
    assert agreement(c).startswith("validation against the mean of the targets over 3 snapshots: Spearman rank "
                                   "correlation -1.00")
    flat = {"validation": [0.15, 0.15, 0.15], "mean": [0.30, 0.20, 0.10]}
    assert agreement(flat).endswith("over 3 snapshots: no rank correlation (one of the two is constant)")


def test_target_curves_refuses_a_bad_interval() -> None:
    done = _run("target_curves.py", "--data", "x", "--out", "y", "--every", "0")
    assert done.returncode == 2 and "--every must be a positive number of episodes, got 0" in done.stderr


def _train_run(folder: Path, tasks_per_episode: int, dice: list[float], every: int = 50) -> Path:
    """A ``hyperkit train`` folder as budget_curves reads it: the config's tasks per episode, validations."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"train:\n  tasks_per_episode: {tasks_per_episode}\n")
    rows = [{"episode": 0, "dice": 0.0, "wall_seconds": 0.0}]
    rows += [{"episode": every * (i + 1), "dice": d, "wall_seconds": 60.0 * (i + 1)} for i, d in enumerate(dice)]
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_budget_curves_budgets_means_and_the_doubling_fit(tmp_path: Path) -> None:
    """Task-episodes are episodes x tasks per episode; the best keeps the first of equal maxima; the last-k mean and
    the line over log2(task-episodes) follow from the validations (a gain of exactly 0.05 per doubling here)."""
    a = _train_run(tmp_path / "a", 2, [0.10, 0.20, 0.10, 0.10])          # 200 episodes x 2 = 400, last-2 mean 0.10
    b = _train_run(tmp_path / "b", 4, [0.10, 0.15, 0.15, 0.15])          # 200 x 4 = 800: 0.15
    c = _train_run(tmp_path / "c", 4, [0.10, 0.20] + [0.20] * 6)         # 400 x 4 = 1600: 0.20
    done = _run("budget_curves.py", f"short:s0={a}", f"mid:s0={b}", f"long:s0={c}", "--last", "2",
                "--aim", "0.30", "--out", str(tmp_path / "b.png"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2] == "| short:s0 | 200 | 2 | 400 | 4.0 | 0.200 (100) | 0.100 |"
    assert lines[3] == "| mid:s0 | 200 | 4 | 800 | 4.0 | 0.150 (100) | 0.150 |"
    assert lines[4] == "| long:s0 | 400 | 4 | 1,600 | 8.0 | 0.200 (100) | 0.200 |"
    fit = next(line for line in lines if line.startswith("fit over 3 runs"))
    assert fit.startswith("fit over 3 runs: +0.050 DSC per doubling of the task-episodes [95 % CI +0.050, +0.050]")
    assert "reaches 0.30 at about 6,400 task-episodes (4x the longest run: an extrapolation)" in fit
    assert (tmp_path / "b.png").stat().st_size > 0


def test_budget_curves_reads_no_budget_off_a_line_whose_interval_includes_zero(tmp_path: Path) -> None:
    runs = [_train_run(tmp_path / name, k, [d] * 5) for name, k, d in (("a", 2, 0.10), ("b", 4, 0.20), ("c", 8, 0.10))]
    done = _run("budget_curves.py", *(f"r:{i}={r}" for i, r in enumerate(runs)))
    assert done.returncode == 0, done.stderr
    fit = next(line for line in done.stdout.splitlines() if line.startswith("fit over 3 runs"))
    assert re.match(r"fit over 3 runs: [+-]0\.000 DSC per doubling", fit), fit  # a flat line, rounding's sign aside
    assert fit.endswith("the interval includes 0 (no gain resolved), so no budget is read off the line")


def test_budget_curves_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    done = _run("budget_curves.py", f"x:s0={tmp_path}")
    assert done.returncode == 2 and f"{tmp_path}: no config.yaml (not a hyperkit train run folder)" in done.stderr
    short = _train_run(tmp_path / "short", 2, [0.1])
    done = _run("budget_curves.py", f"x:s0={short}")
    assert done.returncode == 2 and "1 validations after episode 0, fewer than --last 5" in done.stderr


def test_validation_signals_remap_each_patch_as_a_modality_change() -> None:
    """Each patch's 1st-99th percentiles go to [0, 1] (clipped) whatever its scale; inverted swaps dark and bright;
    folded sends both ends to 1 and the middle to 0."""
    import torch

    vs = _benchmark("validation_signals")
    ramp = torch.linspace(-3.0, 5.0, 1000).view(1, 1, 10, 10, 10)
    x = torch.cat([ramp, 100.0 * ramp + 7.0])                            # two patches, scales 100x apart
    r = vs.REMAPS["rescaled"](x)
    assert r.shape == x.shape and torch.allclose(r[0], r[1], atol=1e-5)
    assert float(r.min()) == 0.0 and float(r.max()) == 1.0
    assert float((r == 0.0).float().mean()) == pytest.approx(0.01, abs=0.002)   # below the 1st percentile
    assert torch.allclose(vs.REMAPS["inverted"](x), 1.0 - r)
    folded = vs.REMAPS["folded"](x)
    assert float(folded[0, 0, 0, 0, 0]) == 1.0 and float(folded[0, 0, -1, -1, -1]) == 1.0
    assert float(folded[0].min()) < 0.01


def test_validation_signals_report_ranks_each_signal_against_the_target_groups(tmp_path: Path) -> None:
    """``--report``: per signal the Spearman rank correlation with the mean of all, the MRI and the CT targets over
    the snapshots, the episode the signal would choose and the targets' mean there; the plain signal is checked
    against the run's logged validation."""
    vs = _benchmark("validation_signals")
    run = tmp_path / "curves"
    (run / "train").mkdir(parents=True)
    eps = [100, 200, 300, 400]
    liver, heart = [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]          # CT rises, MRI falls
    (run / "curves.json").write_text(json.dumps({"episodes": eps, "targets": {"liver": liver, "heart_bssfp": heart}}))
    signals = {str(e): {s: 0.0 for s in vs.SIGNALS} for e in eps}
    for i, e in enumerate(eps):
        signals[str(e)].update(plain=0.1 * (i + 1), seen=[0.3, 0.1, 0.2, 0.0][i])
    (run / "signals.json").write_text(json.dumps(signals))
    (run / "train" / "validation.jsonl").write_text("".join(json.dumps({"episode": e, "dice": 0.1 * (i + 1) + 1e-3})
                                                            + "\n" for i, e in enumerate(eps)))
    done = _run("validation_signals.py", "--data", str(tmp_path), "--runs", str(run), "--report")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "**curves** (4 snapshots; plain signal within 1.0e-03 of the run's validation.jsonl)"
    plain = next(x for x in lines if x.startswith("| plain |")).split(" | ")
    assert plain[1] == "— (a constant series)"                               # the mean of the two is 0.25 throughout
    assert plain[2].startswith("-1.00") and plain[3].startswith("+1.00")   # against MRI, with CT
    assert plain[4:] == ["400", "0.250 (0.100, 0.400) |"]
    seen = next(x for x in lines if x.startswith("| seen |")).split(" | ")
    assert seen[4] == "100" and seen[3].startswith("-0.80")


def test_validation_signals_refuses_a_report_of_an_unscored_run_and_bad_checkpoints(tmp_path: Path) -> None:
    done = _run("validation_signals.py", "--data", str(tmp_path), "--runs", str(tmp_path), "--report")
    assert done.returncode != 0 and "not scored yet" in done.stderr
    done = _run("validation_signals.py", "--data", str(tmp_path))
    assert done.returncode == 2 and "give --runs, --checkpoints or both" in done.stderr
    done = _run("validation_signals.py", "--data", str(tmp_path), "--checkpoints", f"a={tmp_path / 'none.pt'}")
    assert done.returncode == 2 and "--checkpoints takes LABEL=PATH to a checkpoint file, got 'a=" in done.stderr
    done = _run("validation_signals.py", "--data", str(tmp_path), "--runs", str(tmp_path), "--report",
                "--checkpoints", f"a={tmp_path / 'none.pt'}")
    assert done.returncode == 2 and "--report reads the stored signals of --runs" in done.stderr


def test_maml_speed_times_both_ways_and_side_by_side_equals_one_thread(tmp_path: Path) -> None:
    """benchmarks/maml_speed.py on four tiny organs: both timings, a ratio, and the side-by-side weights equal
    to the folds one after the other at one thread (0), which a test of the kit also asserts."""
    from hyperkit.config import load_profile
    from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
    from tiny import TINY_MODEL, untrained_checkpoint

    data = tmp_path / "data"
    write_sample_msd(data, "Task03_Liver", n_cases=4, labels=("liver", "cancer"))
    write_sample_msd(data, "Task09_Spleen", n_cases=4, labels=("spleen",))
    write_sample_totalseg(data, n_cases=4, structures=("kidney_right", "kidney_left"))
    maml = {"shots": 2, "queries": 1, "inner_steps": 1, "inner_lr": 0.1, "meta_iterations": 2, "meta_batch": 2,
            "meta_lr": 0.001, "first_order": True, "augment": True, "bce_weight": 0.1}
    cfg = load_profile("quick", {"data": {"patch_size": 16}, "model": TINY_MODEL, "evaluate": {"maml": maml}})
    cfg["name"] = "tiny-maml"
    ckpt = untrained_checkpoint(cfg, tmp_path / "best.pt")
    done = _run("maml_speed.py", "--data", str(data), "--checkpoint", str(ckpt), "--iterations", "2", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("4 folds of 2 outer steps; torch threads ")
    assert re.fullmatch(r"median: one after the other [\d.]+ s, side by side [\d.]+ s; speed-up [\d.]+x", lines[-2])
    assert re.fullmatch(r"weights, max \|difference\| of side by side to the folds one after the other at one "
                        r"thread: 0; at \d+ threads: \S+", lines[-1])
    bad = _run("maml_speed.py", "--data", str(data), "--checkpoint", str(ckpt), "--iterations", "0")
    assert bad.returncode != 0 and "--iterations and --rounds must be >= 1, got 0, 2" in bad.stderr
