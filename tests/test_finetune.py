"""Limited-data fine-tuning: subsets that never leak test cases, resumable runs, Figure 3."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
from hyperkit.errors import HyperkitError
from hyperkit.evaluation.finetune import (curve, finetune_reading, finetune_subset, paired_reading, read_finetune,
                                         run_finetune)
from hyperkit.report.claims import hyper_init_beats_random
from tiny import TINY_MODEL, untrained_checkpoint


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 10])
def test_subsets_hold_out_a_fifth_and_stop_without_the_test_cases(n: int) -> None:
    sub = finetune_subset(10, n, 0, "t", 0)
    test, train, val = set(sub.test), set(sub.train), set(sub.val)
    assert len(test) == max(1, round(0.2 * n)) and len(test | train | val) == n
    assert not (test & train) and not (test & val) and not (train & val)
    assert (len(val) == 1) == (n - len(test) >= 3)
    assert sub.generate_from == sorted(train | val)
    assert finetune_subset(10, n, 0, "t", 0) == sub
    assert finetune_subset(10, n, 0, "t", 1) != sub or n == 10


def test_bad_subset_sizes() -> None:
    with pytest.raises(ValueError, match="got 11"):
        finetune_subset(10, 11, 0, "t", 0)
    with pytest.raises(ValueError, match="got 1"):
        finetune_subset(10, 1, 0, "t", 0)


def test_curve_intervals_span_the_repeats() -> None:
    rows = [{"task": "t", "method": "hyper_ft", "n": 2, "repeat": r, "dsc": d} for r, d in enumerate([0.2, 0.4, 0.6])]
    [(n, mean, lo, hi, reps)] = curve(rows)[("t", "hyper_ft")]
    assert (n, reps) == (2, 3) and mean == pytest.approx(0.4) and lo < 0.2 and hi > 0.6


LIVER = "msd/Task03_Liver/liver@CT"


def _reading_rows(scratch_shift: float) -> list[dict]:
    """Hand-made rows of one target: N = 2, 4, 8, two repeats; hyper_ft 0.2 DSC above rand_ft on every test
    case, scratch_ft ``scratch_shift`` above rand_ft; hyper_ft kept its start (best step 0) in two of its
    six fine-tunings, one of them with two test-case rows."""
    rows = []
    for n in (2, 4, 8):
        for rep in range(2):
            for method, shift in (("hyper_ft", 0.2), ("rand_ft", 0.0), ("scratch_ft", scratch_shift)):
                best = 0 if method == "hyper_ft" and (n, rep) in ((8, 0), (2, 1)) else 10
                for case in range(max(1, round(0.2 * n))):
                    rows.append({"task": LIVER, "n": n, "repeat": rep, "method": method, "case": f"case{rep}{case}",
                                 "dsc": 0.25 + 0.1 * rep + shift, "best_step": best,
                                 "stop_on": "train" if n == 2 else f"case{rep}9"})
    return rows


def test_finetune_reading_counts_pairs_verdicts_and_kept_starts() -> None:
    rows = _reading_rows(0.3)  # scratch_ft ahead of hyper_ft: the claim against both baselines fails
    claim = hyper_init_beats_random(rows, baselines=("rand_ft", "scratch_ft"))
    text = finetune_reading(rows, claim, {LIVER: {"conv_unet": 0.9, "hyper_unet": 0.1}})
    lines = text.split("\n")
    assert lines[:4] == [
        f"- **{name}**: the fine-tuned Hyper U-Net is +0.200 [+0.200, +0.200] DSC above the Rand U-Net (trained "
        f"encoder) ({k} pairs); -0.100 [-0.100, -0.100] DSC above a U-Net from scratch ({k} pairs)."
        for name, k in (("N ≤ 4", 4), ("N = 2", 2), ("N = 4", 2), ("N = 8", 4))]
    assert lines[4].startswith(f"- The claim *{claim.claim}* **does not hold** on the phantoms (")
    assert "(best step 0) in 2 of 6 Hyper fine-tunings" in lines[5] and "(`stop_on` = train)" in lines[5]
    # the mean over the two repeats of hyper_ft at the largest N: (0.45 + 0.55) / 2
    assert lines[6] == ("- liver@CT: at N = 8 the fine-tuned Hyper U-Net reaches 0.500 DSC; the Conv U-Net trained "
                        "on the full split (black) 0.900.")
    assert len(lines) == 7

    rows = _reading_rows(0.0)  # hyper_ft ahead of both: the claim holds; no reference, no last line
    text = finetune_reading(rows, hyper_init_beats_random(rows, baselines=("rand_ft", "scratch_ft")))
    assert "**holds** on the phantoms" in text and "+0.200 [+0.200, +0.200] DSC above a U-Net from scratch (4 pairs)" \
        in text and "Conv U-Net" not in text and len(text.split("\n")) == 6
    no_n2 = [r for r in rows if r["n"] != 2]
    assert "(`stop_on` = —)" in finetune_reading(no_n2, hyper_init_beats_random(no_n2))


def test_paired_reading_is_one_group_line_of_the_reading() -> None:
    rows = _reading_rows(0.3)
    assert paired_reading(rows, "N = 16") == (  # keep=None: every row, 8 pairs per baseline
        "- **N = 16**: the fine-tuned Hyper U-Net is +0.200 [+0.200, +0.200] DSC above the Rand U-Net (trained "
        "encoder) (8 pairs); -0.100 [-0.100, -0.100] DSC above a U-Net from scratch (8 pairs).")
    reading = finetune_reading(rows, hyper_init_beats_random(rows, baselines=("rand_ft", "scratch_ft")))
    assert paired_reading(rows, "N = 8", lambda r: r["n"] == 8) == reading.split("\n")[3]


def test_finetune_reading_refuses_no_rows_and_another_claim() -> None:
    rows = _reading_rows(0.0)
    claim = hyper_init_beats_random(rows)
    with pytest.raises(ValueError, match=r"got \[\]"):
        finetune_reading([], claim)
    with pytest.raises(ValueError, match="'hyper_above_rand'"):
        finetune_reading(rows, dataclasses.replace(claim, key="hyper_above_rand"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ft")
    data = root / "data"
    write_sample_msd(data, "Task03_Liver", n_cases=5, labels=("liver", "cancer"))
    write_sample_totalseg(data, n_cases=3)
    cfg = load_profile("quick", {"data": {"patch_size": 16}, "model": TINY_MODEL,
                                 "evaluate": {"finetune": {"steps": 4, "val_every": 2, "patience": 1, "warmup": 0,
                                                           "augment": False}}})
    cfg["name"] = "tiny-ft"  # not a built-in profile: the checkpoint's own evaluate section (the budget above) is
    ckpt = untrained_checkpoint(cfg, root / "best.pt")  # the protocol, not the quick profile's 100 steps
    return data, ckpt


def test_finetune_command_writes_rows_figure_and_resumes(tiny: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    data, ckpt = tiny
    out = tmp_path / "ft"
    argv = ["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--tasks", "liver",
            "--n", "2,4", "--repeats", "2", "--no-progress"]
    assert main(argv) == 0
    rows = read_finetune(out / "finetune.csv")
    assert {(r["n"], r["repeat"], r["method"]) for r in rows} == \
        {(n, r, m) for n in (2, 4) for r in range(2) for m in ("hyper_ft", "rand_ft", "scratch_ft")}
    assert {r["stop_on"] for r in rows if r["n"] == 2} == {"train"}
    for r in rows:  # a test case is never a training case
        assert r["case"] not in r["train_cases"].split("+")
    assert (out / "figure3.png").stat().st_size > 0 and "| liver@CT |" in (out / "finetune.md").read_text()
    assert json.loads((out / "finetune.json").read_text())["complete"]
    assert main(argv) == 2 and "--resume" in capsys.readouterr().err
    first = json.loads((out / "finetune.json").read_text())
    assert main(argv + ["--resume"]) == 0
    assert read_finetune(out / "finetune.csv") == rows  # nothing redone
    resumed = json.loads((out / "finetune.json").read_text())  # the first session's code and machine kept
    assert [s["created"] for s in resumed["earlier_sessions"]] == [first["created"]]
    # a call for fewer sizes reports those only; the CSV keeps everything
    part = run_finetune(ckpt, data, out, tasks=["liver"], ns=(2,), repeats=1, resume=True, progress=False)
    assert part and {(r["n"], r["repeat"]) for r in part} == {(2, 0)}
    assert read_finetune(out / "finetune.csv") == rows


def test_resume_refuses_rows_of_another_budget_seed_or_checkpoint(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """Rows made another way never mix with a resumed run's; a record from before protocols
    were recorded is compared on its seed and budget (read again with today's defaults)."""
    data, ckpt = tiny
    out = tmp_path / "ft"
    kw = dict(tasks=["liver"], ns=(2,), repeats=1, methods=("scratch_ft",), progress=False)
    rows = run_finetune(ckpt, data, out, **kw)
    with pytest.raises(HyperkitError, match=r"another budget\.steps; choose another --out"):
        run_finetune(ckpt, data, out, budget={"steps": 6}, resume=True, **kw)
    with pytest.raises(HyperkitError, match=r"another seed"):
        run_finetune(ckpt, data, out, seed=1, resume=True, **kw)
    other = tmp_path / "other.pt"
    other.write_bytes(ckpt.read_bytes() + b"\0")  # another file (torch.load ignores the trailing byte)
    with pytest.raises(HyperkitError, match=r"another checkpoint_sha256"):
        run_finetune(other, data, out, resume=True, **kw)
    assert run_finetune(ckpt, data, out, resume=True, **kw) == rows  # the same protocol: reused
    moved = tmp_path / "moved"  # the data copied elsewhere: the same data by content
    shutil.copytree(data, moved)
    assert run_finetune(ckpt, moved, out, resume=True, **kw) == rows
    (moved / "phantoms.json").write_text("{}")
    with pytest.raises(HyperkitError, match=r"another data_fingerprint"):
        run_finetune(ckpt, moved, out, resume=True, **kw)
    record = json.loads((out / "finetune.json").read_text())
    old = {k: v for k, v in record.items() if k != "protocol"}  # an older record: seed and budget only
    old["budget"] = {k: v for k, v in old["budget"].items() if k not in ("bce_weight", "amp")}  # at their defaults
    (out / "finetune.json").write_text(json.dumps(old))
    assert run_finetune(other, data, out, resume=True, **kw) == rows
    (out / "finetune.json").write_text(json.dumps(old))
    with pytest.raises(HyperkitError, match=r"another budget\.lr"):
        run_finetune(ckpt, data, out, budget={"lr": 0.5}, resume=True, **kw)


def test_finetune_bad_input_is_one_line(tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, ckpt = tiny
    base = ["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--tasks", "liver"]
    assert main(base + ["--out", str(tmp_path / "a"), "--n", "2,9"]) == 2
    assert "N=9 exceeds the 5 cases" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "b"), "--n", "two"]) == 2
    assert "'two'" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "c"), "--methods", "maml"]) == 2
    assert "'maml'" in capsys.readouterr().err


def test_side_by_side_fine_tunings_equal_one_after_the_other(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """Two trainings at once (one thread each) give the rows of one thread, one after the other."""
    data, ckpt = tiny
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [run_finetune(ckpt, data, tmp_path / f"w{w}", tasks=["liver"], ns=(2, 4), repeats=1, progress=False,
                             workers=w) for w in (1, 2)]
    finally:
        torch.set_num_threads(threads)
    key = lambda r: (r["n"], r["repeat"], r["method"], r["case"])  # noqa: E731
    strip = lambda rows: sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=key)  # noqa: E731
    assert len(runs[0]) == 6 and strip(runs[0]) == strip(runs[1])
