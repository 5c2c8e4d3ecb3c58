"""``hyperkit ablate``: variants trained and scored on the same draws, paired CIs, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hyperkit.cli import main
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
from hyperkit.errors import DataError, HyperkitError
from hyperkit.evaluation.ablation import (ABLATION_FIELDS, VARIANTS, ablation_reading, ablation_rows, ablation_tables,
                                          read_ablation, run_ablation, seed_spread, told_from_noise)
from hyperkit.evaluation.stats import pair_rows, paired_difference, paired_starts
from tiny import TINY_MODEL

SPLITS = ["train", "val", "test"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ablate")
    data = root / "data"
    write_sample_totalseg(data, n_cases=4, structures=("aorta", "stomach", "kidney_left", "esophagus"))
    write_sample_msd(data, "Task03_Liver", n_cases=5, labels=("liver", "cancer"))
    profile = root / "tiny.yaml"
    profile.write_text(yaml.safe_dump({
        "base": "quick", "data": {"patch_size": 16}, "model": TINY_MODEL,
        "train": {"episodes": 2, "val_every": 2, "checkpoint_every": 2, "val_queries": 2, "val_supports": 1,
                  "train_splits": SPLITS, "val_splits": SPLITS, "augment": False},
        "evaluate": {"draws": 2}}))
    return data, profile


def test_paired_difference_and_its_interval() -> None:
    p = paired_difference([0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7])
    assert p.diff == pytest.approx(0.1) and p.lo == pytest.approx(0.1) and p.hi == pytest.approx(0.1)
    q = paired_difference([0.9, 0.1, 0.5, 0.4], [0.1, 0.9, 0.5, 0.4])
    assert q.lo < 0 < q.hi and q.n == 4
    with pytest.raises(ValueError, match="got 0"):
        paired_difference([], [])
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        paired_difference([1, 2, 3], [1, 2])


def test_rows_pair_the_same_draw_and_case() -> None:
    a = [{"task": "l/d/t@CT", "method": "hyper_unet", "draw": d, "case": c, "in_test_split": True, "dsc": 0.5,
          "nsd": 0.5, "nsd_voxel": 0.5} for d in range(2) for c in "xy"]
    b = [dict(r, dsc=0.25, nsd=0.25, nsd_voxel=0.25) for r in a[:3]]  # one pair missing
    assert pair_rows(a, b)["l/d/t@CT"] == ([0.5] * 3, [0.25] * 3)
    rows = ablation_rows(VARIANTS["step"], a, b)
    dsc = {r["target"]: r for r in rows if r["metric"] == "dsc"}
    assert dsc["all"]["diff"] == pytest.approx(0.25) and dsc["all"]["pairs"] == 3


def test_ablate_trains_scores_and_resumes(setup: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    data, profile = setup
    out = tmp_path / "abl"
    argv = ["ablate", "--profile", str(profile), "--data", str(data), "--out", str(out), "--tasks", "liver",
            "--only", "step,seed,shots2,samplings1", "--no-progress"]
    assert main(argv) == 0
    assert {"train-base", "train-seed", "eval", "ablation.csv", "tables.md", "ablation.json"} <= \
        {p.name for p in out.iterdir()}
    assert not (out / "train-step").exists()  # the step ablation reuses the base model
    rows = read_ablation(out / "ablation.csv")
    assert {r["variant"] for r in rows} == {"step", "seed", "shots2", "samplings1"}
    for r in rows:
        assert r["ci_lo"] <= r["diff"] + 1e-9 and r["diff"] <= r["ci_hi"] + 1e-9 and r["pairs"] > 0
    tables = (out / "tables.md").read_text()
    assert "paper Table 4" in tables and "seed spread" in tables and "2 supports pooled" in tables
    assert json.loads((out / "ablation.json").read_text())["complete"]
    # the same out without --resume is refused; with it, nothing is trained or scored again
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    stamp = (out / "train-base" / "best.pt").stat().st_mtime_ns
    first = json.loads((out / "ablation.json").read_text())
    assert main(argv + ["--resume"]) == 0
    resumed = json.loads((out / "ablation.json").read_text())  # the first session's code and machine kept
    assert [s["created"] for s in resumed["earlier_sessions"]] == [first["created"]]
    assert (out / "train-base" / "best.pt").stat().st_mtime_ns == stamp
    assert read_ablation(out / "ablation.csv") == rows


def test_read_ablation_refuses_a_foreign_file_and_names_a_bad_row(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("task,method\nx,y\n")
    with pytest.raises(HyperkitError, match=r"foreign\.csv: not an ablation\.csv \(columns \['task', 'method'\]"):
        read_ablation(foreign)
    header = ",".join(ABLATION_FIELDS)
    good = "step,one step,4,liver,dsc,0.5,0.4,0.1,0.05,0.15,20"
    bad = tmp_path / "ablation.csv"
    bad.write_text(f"{header}\n{good}\nstep,one step,4,spleen,dsc,0.5,n/a,0.1,0.05,0.15,20\n")
    with pytest.raises(HyperkitError, match="ablation.csv: line 3 is not an ablation row"):
        read_ablation(bad)
    bad.write_text(f"{header}\n{good}\nstep,one step,4,spleen,dsc,0.5\n")  # a short row
    with pytest.raises(HyperkitError, match="line 3 is not an ablation row"):
        read_ablation(bad)
    bad.write_text(f"{header}\n{good}\n")
    assert read_ablation(bad) == [{"variant": "step", "label": "one step", "table": "4", "target": "liver",
                                   "metric": "dsc", "base": 0.5, "variant_score": 0.4, "diff": 0.1, "ci_lo": 0.05,
                                   "ci_hi": 0.15, "pairs": 20}]


def test_a_resume_with_other_settings_is_refused_before_anything_is_written(setup: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    from hyperkit.config import load_profile
    from hyperkit.provenance import run_record

    data, profile = setup
    out = tmp_path / "abl"
    out.mkdir()
    old = run_record(load_profile(profile), 0, episodes=2, variants=["step"], tasks=["liver"], draws=2,
                     eval_seed=0, complete=True, base_run=None)  # the profile's budget and draws
    (out / "ablation.json").write_text(json.dumps(old, default=str))
    before = (out / "ablation.json").read_text()
    with pytest.raises(HyperkitError, match=r"abl: holds an ablation made with other settings \(draws 2, now 3\); "
                                            "resume it with the same settings, or choose another --out"):
        run_ablation(profile, data, out, only=["step"], tasks=["liver"], draws=3, resume=True)
    with pytest.raises(HyperkitError, match=r"\(tasks \['liver'\], now \['spleen'\]; eval_seed 0, now 1\)"):
        run_ablation(profile, data, out, only=["step"], tasks=["spleen"], eval_seed=1, resume=True)
    other = tmp_path / "other" / profile.name  # the same name, another learning rate
    other.parent.mkdir()
    other.write_text(profile.read_text().replace("episodes: 2", "episodes: 2\n  lr: 0.5"))
    with pytest.raises(HyperkitError, match=r"\(the profile's train\)"):
        run_ablation(other, data, out, only=["step"], tasks=["liver"], resume=True)
    with pytest.raises(HyperkitError, match=r"\(seed 0, now 3; episodes 2, now 1\)"):
        run_ablation(profile, data, out, only=["step"], tasks=["liver"], seed=3, episodes=1, resume=True)
    assert (out / "ablation.json").read_text() == before and sorted(p.name for p in out.iterdir()) == ["ablation.json"]
    # the same settings (another variant may be added; the profile's budget and draws left out or spelt
    # out; an older kit's record of "the profile's" as None) pass the check and go on to the data
    # (passing the check is seen as the next error: the missing data folder, not a refusal or a crash in the check)
    for given in ({}, {"episodes": 2, "draws": 2}):
        with pytest.raises(DataError, match="no-data: data folder not found"):
            run_ablation(profile, tmp_path / "no-data", out, only=["step", "seed"], tasks=["liver"], resume=True,
                         **given)
    (out / "ablation.json").write_text(json.dumps({**old, "episodes": None, "draws": None}, default=str))
    with pytest.raises(DataError, match="no-data: data folder not found"):
        run_ablation(profile, tmp_path / "no-data", out, only=["step"], tasks=["liver"], episodes=2, resume=True)
    with pytest.raises(HyperkitError, match=r"\(seed 0, now 3; episodes None, now 1\)"):  # None: the profile's 2
        run_ablation(profile, data, out, only=["step"], tasks=["liver"], seed=3, episodes=1, resume=True)


def test_unknown_variant_is_one_line(setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, profile = setup
    assert main(["ablate", "--profile", str(profile), "--data", str(data), "--out", str(tmp_path / "a"),
                 "--only", "step,warp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'warp'" in err
    assert main(["ablate", "--profile", str(profile), "--data", str(data), "--out", str(tmp_path / "a"),
                 "--only", " , "]) == 2  # names nothing: refused, not read as "the default variants"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown ablation variant(s) []" in err
    assert not (tmp_path / "a").exists()
    with pytest.raises(HyperkitError, match="holds an ablation"):
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "ablation.json").write_text("{}")
        run_ablation(profile, data, tmp_path / "b", only=["step"])


def test_tables_put_the_paper_beside_the_kit() -> None:
    rows = [{"variant": "norm", "label": VARIANTS["norm"].label, "table": "table5_task_norm", "target": "liver",
             "metric": "dsc", "base": 0.4, "variant_score": 0.3, "diff": 0.1, "ci_lo": 0.05, "ci_hi": 0.15,
             "pairs": 20}]
    md = ablation_tables(rows)
    assert "| liver | 0.400 | 0.300 | +0.100 [+0.050, +0.150] | 0.772 | 0.844 | -0.072 |" in md


def test_tables_of_chosen_variants_only() -> None:
    rows = [{"variant": v, "label": VARIANTS[v].label, "table": VARIANTS[v].table, "target": "liver", "metric": "dsc",
             "base": 0.4, "variant_score": 0.3, "diff": 0.1, "ci_lo": 0.05, "ci_hi": 0.15, "pairs": 20}
            for v in ("step", "norm", "seed", "shots2")]
    everything = ablation_tables(rows)
    assert ablation_tables(rows, variants=None) == everything
    assert everything.count("\n**") + everything.startswith("**") == 4  # one table per variant
    md = ablation_tables(rows, variants=["step"])
    assert md.startswith("**Ablation: with and without the gradient step (paper Table 4)**")
    assert md.count("**") == 2 and "Table 5" not in md and "Beyond the paper" not in md
    assert "seed spread (seed 0 − seed 1)" in md and md.endswith("not told from noise.")  # the column and the note
    three = ablation_tables(rows, variants=["pe", "norm", "step"])  # pe has no rows: no table; VARIANTS' order
    assert three.index("Table 4") < three.index("Table 5") and "Table 6" not in three and "Beyond" not in three
    with pytest.raises(ValueError, match=r"unknown ablation variant\(s\) \['warp'\]"):
        ablation_tables(rows, variants=["step", "warp"])


def test_the_reading_names_what_is_told_from_noise_and_the_sign_agreement() -> None:
    paper = {"table4_gradient_step": {"caption": "T4", "liver": {"with": {"dsc": [0.6, 0.1]},
                                                                 "without": {"dsc": [0.5, 0.1]}}},
             "table5_task_norm": {"caption": "T5",
                                  "liver": {"with": {"dsc": [0.8, 0.1]}, "without": {"dsc": [0.7, 0.1]}},
                                  "spleen": {"with": {"dsc": [0.5, 0.1]}, "without": {"dsc": [0.6, 0.1]}},
                                  "pancreas": {"with": {"dsc": [0.2, 0.1]}, "without": {"dsc": [0.1, 0.1]}}}}
    rows = [_arow("norm", "liver", 0.1, 0.05, 0.15), _arow("norm", "spleen", 0.04, 0.01, 0.07),
            _arow("norm", "pancreas", 0.0, -0.02, 0.02), _arow("norm", "all", 0.07, 0.04, 0.10),
            _arow("norm", "all", 0.5, 0.4, 0.6, metric="nsd"),  # not read: DSC only
            _arow("seed", "liver", 0.01, -0.02, 0.03), _arow("seed", "spleen", -0.02, -0.05, 0.01),
            _arow("seed", "pancreas", 0.0, -0.01, 0.01), _arow("seed", "all", -0.01, -0.02, 0.03),
            _arow("step", "liver", -0.02, -0.03, -0.01), _arow("step", "all", -0.02, -0.025, -0.015),
            _arow("shots2", "liver", -0.1, -0.2, -0.05), _arow("shots2", "all", 0.01, -0.01, 0.03)]
    assert ablation_reading(rows, paper).split("\n") == [
        "- **Seed spread**: two base models that differ only in their training seed differ by -0.010 "
        "[-0.020, +0.030] DSC over all targets (per target up to ±0.050).",
        "- **z_task without LayerNorm** (`norm`): base − variant +0.070 [+0.040, +0.100] over all targets, told from "
        "noise; CI excludes 0 on 2/3 targets (liver, spleen), beyond the seed spread on 1 (liver); same sign as the "
        "paper on 1/3 targets (opposite on spleen; zero on pancreas).",
        "- **without the gradient step** (`step`): base − variant -0.020 [-0.025, -0.015] over all targets, CI "
        "excludes 0 but inside the seed spread; CI excludes 0 on 1/1 targets (liver), beyond the seed spread on 0 "
        "(none); same sign as the paper on 0/1 targets (opposite on liver; zero on none).",
        "- **2 supports pooled** (`shots2`): base − variant +0.010 [-0.010, +0.030] over all targets, not told "
        "from 0; CI excludes 0 on 1/1 targets (liver), beyond the seed spread on 1 (liver)."]
    alone = ablation_reading([r for r in rows if r["variant"] != "seed"], paper).split("\n")
    assert alone[0].startswith("- **No seed spread** in this run (variant `seed` not run)")
    assert alone[1].startswith("- **z_task without LayerNorm** (`norm`): base − variant +0.070 [+0.040, +0.100] over "
                               "all targets, CI excludes 0; CI excludes 0 on 2/3 targets (liver, spleen); same sign")
    assert "beyond the seed spread" not in "\n".join(alone)
    assert "paper" not in alone[3]  # shots2: no paper table


def _arow(variant: str, target: str, diff: float, lo: float, hi: float, metric: str = "dsc") -> dict:
    return {"variant": variant, "target": target, "metric": metric, "diff": diff, "ci_lo": lo, "ci_hi": hi}


def test_an_effect_is_told_from_noise_only_beyond_the_seed_spread():
    rows = [_arow("seed", "liver", -0.01, -0.05, 0.03), _arow("seed", "liver", 0.2, 0.1, 0.3, metric="nsd"),
            _arow("norm", "liver", 0.04, 0.01, 0.07), _arow("norm", "liver", 0.08, 0.06, 0.10),
            _arow("norm", "liver", 0.02, -0.01, 0.05), _arow("norm", "spleen", 0.08, 0.06, 0.10)]
    spread = seed_spread(rows)
    assert spread == {"liver": 0.05}  # max(|lo|, |hi|) of the seed row, DSC only
    assert [told_from_noise(r, spread) for r in rows[2:]] == [(True, False), (True, True), (False, False),
                                                              (True, False)]  # spleen: no spread, not told
    assert seed_spread([r for r in rows if r["variant"] != "seed"]) == {}


@pytest.mark.parametrize("lo, hi, excludes", [(0.0004, 0.1, False), (0.0006, 0.1, True), (-0.1, -0.0004, False),
                                              (-0.1, -0.0006, True), (-0.0004, 0.0004, False)])
def test_told_from_noise_reads_an_interval_as_the_report_prints_it(lo, hi, excludes):
    """Notebook 06 said "CI excludes 0" for an ablation row whose interval the report prints as [+0.000, ...] and
    calls "does not hold" (the report's rule: an end that prints as 0 touches 0)."""
    assert told_from_noise(_arow("norm", "liver", 0.05, lo, hi), {"liver": 0.01}) == (excludes, excludes)


def test_fine_tuning_starts_are_paired_on_task_n_repeat_and_case():
    def ft(method: str, n: int, case: str, dsc: float, repeat: int = 0) -> dict:
        return {"task": "t", "n": str(n), "repeat": str(repeat), "case": case, "method": method, "dsc": str(dsc)}
    rows = [ft("hyper_ft", 2, "a", 0.6), ft("rand_ft", 2, "a", 0.4), ft("hyper_ft", 2, "b", 0.5),
            ft("rand_ft", 2, "b", 0.5), ft("hyper_ft", 8, "a", 0.9), ft("scratch_ft", 8, "a", 0.1),
            ft("hyper_ft", 2, "c", 0.7)]  # c has no partner: left out
    p = paired_starts(rows, "hyper_ft", "rand_ft")
    assert p is not None and p.n == 2 and p.diff == pytest.approx(0.1)
    assert paired_starts(rows, "hyper_ft", "rand_ft", keep=lambda r: int(r["n"]) == 8) is None
    q = paired_starts(rows, "hyper_ft", "scratch_ft")
    assert q is not None and q.n == 1 and q.diff == pytest.approx(0.8)


def test_a_retrained_variant_with_generation_settings_keeps_its_own_weights(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A variant that is retrained and also changes generation settings is scored with its own weights under those
    settings; the settings were written onto the base model's weights (no variant of the kit combines both yet)."""
    import types

    import hyperkit.evaluation.ablation as ab

    monkeypatch.setitem(ab.VARIANTS, "both", ab.Variant("both", "retrained, one sampling",
                                                        train={"model": {"task_norm": False}}, model={"samplings": 1}))
    copied: list = []
    scored: list = []
    monkeypatch.setattr(ab, "heldout_tasks", lambda *a, **k: None)
    monkeypatch.setattr(ab, "ensure_trained", lambda *a, **k: None)
    monkeypatch.setattr(ab, "_with_model_settings", lambda ck, s, out: copied.append((ck, dict(s))) or out)
    monkeypatch.setattr(ab, "run_evaluation", lambda ck, *a, **k: scored.append(ck) or types.SimpleNamespace(rows=[]))
    monkeypatch.setattr(ab, "ablation_rows", lambda *a: [])
    monkeypatch.setattr(ab, "ablation_tables", lambda rows: "")
    out = tmp_path / "abl"
    run_ablation("quick", tmp_path / "data", out, only=["both"], progress=False, log=lambda line: None)
    assert copied == [(out / "train-both" / "best.pt", {"samplings": 1})]
    assert scored == [out / "train-base" / "best.pt", out / "models" / "both.pt"]
