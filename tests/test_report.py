"""The reproduction report: verdicts on inputs whose answer is known, the page, the Markdown subset.

The result files of a small run are made here from chosen numbers, written in the kit's own
formats (the results CSV of :mod:`hyperkit.evaluation.protocol`, ``ablation.csv`` rows computed by
:func:`hyperkit.evaluation.ablation.ablation_rows`, the fine-tuning CSV, Figure 3 drawn by
:func:`hyperkit.evaluation.figure.figure3`, a ``hyperkit maml`` run's ``maml.csv`` and ``maml.json``),
and read back by the report through the kit's readers.
``tests/test_report_browser.py`` renders the page of such a run in a real browser.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import torch

from hyperkit.report import FAILS, HOLDS, NOT_MEASURED, build_report
from hyperkit.report.cells import CELLS, find_cell
from hyperkit.report.claims import (ablation_effect, all_claims, ct_to_mri, hyper_above_rand,
                                    hyper_init_beats_random, organs_above_tumours)
from hyperkit.report.markdown import to_html

#: paper column -> a kit task id its task_map pattern finds
TASKS: dict[str, str] = {
    "liver": "msd/Task03_Liver/liver@CT", "spleen": "msd/Task09_Spleen/spleen@CT",
    "hepatic_vessels": "msd/Task08_HepaticVessel/Vessel@CT", "pancreas": "msd/Task07_Pancreas/pancreas@CT",
    "lung_tumour": "msd/Task06_Lung/cancer@CT", "colon_tumour": "msd/Task10_Colon/colon_cancer_primaries@CT",
    "brain_edema_flair": "msd/Task01_BrainTumour/edema@FLAIR", "hippocampus_t1w": "msd/Task04_Hippocampus/Anterior@MRI",
    "heart_bssfp": "msd/Task02_Heart/left_atrium@MRI", "prostate_t2": "msd/Task05_Prostate/PZ@T2",
}
RESULT_FIELDS = ("task", "method", "draw", "support", "case", "in_test_split", "dsc", "nsd", "nsd_voxel",
                 "fit_seconds")
FT_FIELDS = ("task", "n", "repeat", "method", "train_cases", "stop_on", "case", "dsc", "nsd", "nsd_voxel",
             "zero_shot_dsc", "steps", "best_step", "seconds")


def results_rows(hyper: dict[str, float], rand: dict[str, float], draws: int = 3, cases: int = 4,
                 seed: int = 0) -> list[dict[str, Any]]:
    """One-shot rows: per target, Hyper and Rand U-Net DSC around the given means (noise ±0.02)."""
    rng = np.random.default_rng(seed)
    rows = []
    for col, task in TASKS.items():
        for method, means in (("hyper_unet", hyper), ("rand_unet", rand)):
            if col not in means:
                continue
            for d in range(draws):
                for c in range(cases):
                    v = float(np.clip(means[col] + rng.uniform(-0.02, 0.02), 0, 1))
                    rows.append({"task": task, "method": method, "draw": d, "support": f"s{d}", "case": f"c{c}",
                                 "in_test_split": True, "dsc": v, "nsd": v / 2, "nsd_voxel": v, "fit_seconds": 0.1})
    return rows


def ablation_csv_rows(effects: dict[str, float], seed: int = 0) -> list[dict[str, Any]]:
    """``ablation.csv`` rows by the kit's :func:`ablation_rows`: variant -> base − variant DSC."""
    from hyperkit.evaluation.ablation import VARIANTS, ablation_rows

    base = {c: 0.5 for c in ("liver", "spleen", "hepatic_vessels", "pancreas", "brain_edema_flair", "heart_bssfp")}
    base_rows = results_rows(base, {}, seed=seed)
    out: list[dict[str, Any]] = []
    for name, effect in effects.items():
        variant_rows = results_rows({c: v - effect for c, v in base.items()}, {}, seed=seed + 1)
        out += ablation_rows(VARIANTS[name], base_rows, variant_rows)
    return out


def finetune_rows(gap: dict[int, float], repeats: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """Fine-tuning rows: per N, hyper_ft − rand_ft DSC around ``gap[N]``; scratch_ft below both."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, g in gap.items():
        for r in range(repeats):
            for case in ("c0", "c1"):
                for method, v in (("hyper_ft", 0.6 + g / 2), ("rand_ft", 0.6 - g / 2), ("scratch_ft", 0.4)):
                    d = float(v + rng.uniform(-0.01, 0.01))
                    rows.append({"task": TASKS["liver"], "n": n, "repeat": r, "method": method, "train_cases": "a",
                                 "stop_on": "train", "case": case, "dsc": d, "nsd": d / 2, "nsd_voxel": d,
                                 "zero_shot_dsc": 0.3, "steps": 10, "best_step": 5, "seconds": 1.0})
    return rows


#: Table 3's organs -> (task, the kit's MAML mean DSC); the Hyper U-Net's is 0.25 above on every pair
MAML_RUN: dict[str, tuple[str, float]] = {
    "spleen": ("msd/Task09_Spleen/spleen@CT", 0.45), "liver": ("msd/Task03_Liver/liver@CT", 0.40),
    "kidney_right": ("totalseg/TotalSegmentator/kidney_right@CT", 0.35),
    "kidney_left": ("totalseg/TotalSegmentator/kidney_left@CT", 0.30)}


def make_maml_run(out: Path, *, profile: str = "quick", finished: bool = True) -> Path:
    """What ``hyperkit maml --out OUT/maml-{profile}`` writes for the report: ``maml.csv`` (both methods on the
    same draws and cases, DSC = mean −0.01 / 0 / +0.01 over three cases) and ``maml.json`` (its record: the
    protocol, and when ``finished`` what each model saw, by the kit's :func:`~hyperkit.evaluation.maml.exposure`)."""
    import json

    from hyperkit.config import load_profile, protocol_for
    from hyperkit.evaluation.maml import OrganTask, exposure

    ecfg = protocol_for(load_profile(profile))
    assert ecfg.maml is not None
    rows = [{"task": task, "method": method, "draw": d, "support": f"s{d}a+s{d}b", "case": f"c{c}",
             "in_test_split": True, "dsc": mean + gap + 0.01 * (c - 1), "nsd": 0.5, "nsd_voxel": 0.6,
             "fit_seconds": 0.1}
            for task, mean in MAML_RUN.values() for method, gap in (("maml", 0.0), ("hyper_unet", 0.25))
            for d in range(2) for c in range(3)]
    folder = out / f"maml-{profile}"
    _write_csv(folder / "maml.csv", RESULT_FIELDS, rows)
    organs = [OrganTask(o, t, "train" if o.startswith("kidney") else "heldout", frozenset())
              for o, (t, _) in MAML_RUN.items()]
    record: dict[str, Any] = {"created": "2026-01-02T03:04:05+00:00", "commit": "abc1234", "complete": finished,
                              "protocol": {"organs": {o.organ: o.task for o in organs}, "maml": ecfg.maml.as_dict(),
                                           "evaluate": ecfg.as_dict()}}
    if finished:
        folds = {o.organ: {"tasks_seen": [p.task for p in organs if p is not o], "iterations": 3} for o in organs}
        record["exposure"] = exposure(organs, ecfg.maml, folds, 40, {o: ["c0", "c1", "c2"] for o in MAML_RUN})
        record["wall_seconds"] = 60.0
    (folder / "maml.json").write_text(json.dumps(record))
    return folder


def _write_csv(path: Path, fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), lineterminator="\n")
        w.writeheader()
        w.writerows({k: r[k] for k in fields} for r in rows)


#: a run where the paper's claims hold (organs well above tumours, Hyper well above Rand, ...)
GOOD_HYPER = {"liver": 0.7, "spleen": 0.6, "hepatic_vessels": 0.2, "pancreas": 0.3, "lung_tumour": 0.1,
              "colon_tumour": 0.1, "brain_edema_flair": 0.4, "hippocampus_t1w": 0.3, "heart_bssfp": 0.5,
              "prostate_t2": 0.2}
RAND = {c: 0.02 for c in TASKS}


def make_run(out: Path, *, profile: str = "quick", maml: bool = False) -> Path:
    """Result files of a small run in ``out`` (what notebooks 05-07 write), claims 1-7 all measured; with
    ``maml``, notebook 07's MAML run too (:func:`make_maml_run`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyperkit.evaluation.figure import figure3
    from hyperkit.evaluation.finetune import curve

    _write_csv(out / f"eval-{profile}" / "results.csv", RESULT_FIELDS, results_rows(GOOD_HYPER, RAND))
    _write_csv(out / f"eval-5shot-{profile}" / "results.csv", RESULT_FIELDS,
               [r for r in results_rows(GOOD_HYPER, {}, seed=3) if r["task"] in (TASKS["liver"], TASKS["spleen"])])
    rows = ablation_csv_rows({"step": 0.05, "norm": 0.2, "pe": -0.05, "seed": 0.01})
    _write_csv(out / f"ablation-{profile}" / "ablation.csv", list(rows[0]), rows)
    ft = finetune_rows({2: 0.1, 4: 0.05, 8: -0.2})
    _write_csv(out / f"finetune-{profile}" / "finetune.csv", FT_FIELDS, ft)
    fig = figure3(curve(ft))
    fig.savefig(out / f"finetune-{profile}" / "figure3.png", dpi=40)
    plt.close(fig)
    if maml:
        make_maml_run(out, profile=profile)
    return out


# ------------------------------------------------------------------------------ verdicts
def test_hyper_above_rand_holds_only_when_every_target_is_above() -> None:
    assert hyper_above_rand(results_rows(GOOD_HYPER, RAND)).verdict == HOLDS
    reversed_one = dict(GOOD_HYPER, colon_tumour=0.01)
    v = hyper_above_rand(results_rows(reversed_one, dict(RAND, colon_tumour=0.2)))
    assert v.verdict == FAILS and "9 of 10" in v.kit and "colon_tumour" in v.kit
    tie = hyper_above_rand(results_rows(dict(GOOD_HYPER, pancreas=0.02), RAND))  # equal means: CI includes 0
    assert tie.verdict == FAILS


def test_hyper_above_rand_on_some_targets_says_which_are_missing() -> None:
    v = hyper_above_rand(results_rows({"liver": 0.7}, {"liver": 0.1}))
    assert v.verdict == HOLDS and "1 of 1" in v.kit and "Not measured: spleen" in v.detail


@pytest.mark.parametrize("rows, why", [
    (None, "is not in this run"),
    ([], "has no Hyper U-Net and Rand U-Net rows"),
    (results_rows(GOOD_HYPER, {}), "has no Hyper U-Net and Rand U-Net rows"),  # Rand U-Net not evaluated
])
def test_hyper_above_rand_not_measured(rows: list | None, why: str) -> None:
    v = hyper_above_rand(rows)
    assert v.verdict == NOT_MEASURED and v.kit == "—" and why in v.detail


def test_organs_above_tumours() -> None:
    assert organs_above_tumours(results_rows(GOOD_HYPER, {})).verdict == HOLDS
    flipped = dict(GOOD_HYPER, liver=0.05, spleen=0.05)
    v = organs_above_tumours(results_rows(flipped, {}))
    assert v.verdict == FAILS and v.kit.startswith("-")
    only_organs = {c: GOOD_HYPER[c] for c in ("liver", "spleen")}
    assert organs_above_tumours(results_rows(only_organs, {})).verdict == NOT_MEASURED


def test_ct_to_mri_pools_the_mri_targets() -> None:
    v = ct_to_mri(results_rows(GOOD_HYPER, RAND))
    assert v.verdict == HOLDS and "over 48 pairs" in v.kit  # 4 targets × 3 draws × 4 cases
    no_gain = {c: (RAND[c] if c in ("brain_edema_flair", "hippocampus_t1w", "heart_bssfp", "prostate_t2") else h)
               for c, h in GOOD_HYPER.items()}
    assert ct_to_mri(results_rows(no_gain, RAND)).verdict == FAILS
    ct_only = {c: GOOD_HYPER[c] for c in ("liver", "spleen")}
    assert ct_to_mri(results_rows(ct_only, RAND)).verdict == NOT_MEASURED


def test_ablation_verdicts_follow_the_interval() -> None:
    rows = ablation_csv_rows({"step": 0.05, "norm": 0.2, "pe": -0.05, "seed": 0.0})
    assert ablation_effect(rows, "step").verdict == HOLDS
    assert ablation_effect(rows, "norm").verdict == HOLDS
    pe = ablation_effect(rows, "pe")
    assert pe.verdict == FAILS and pe.kit.startswith("-0.05")
    assert "Seed-to-seed spread" in pe.detail
    without_norm = [r for r in rows if r["variant"] != "norm"]
    v = ablation_effect(without_norm, "norm")
    assert v.verdict == NOT_MEASURED and "variant `norm`" in v.detail
    assert ablation_effect(None, "pe").verdict == NOT_MEASURED
    with pytest.raises(ValueError, match="'nope'"):
        ablation_effect(rows, "nope")


def test_hyper_init_uses_only_small_n() -> None:
    rows = finetune_rows({2: 0.1, 4: 0.05, 8: -0.3})  # N = 8 reversed: outside the claim
    v = hyper_init_beats_random(rows)
    assert v.verdict == HOLDS and "N=2" in v.detail and "N=8" not in v.detail
    assert hyper_init_beats_random(finetune_rows({2: -0.1, 4: -0.1})).verdict == FAILS
    assert hyper_init_beats_random(finetune_rows({8: 0.2})).verdict == NOT_MEASURED
    with pytest.raises(ValueError):
        hyper_init_beats_random(rows, ns=())


def test_hyper_init_against_both_baselines_needs_both() -> None:
    rows = finetune_rows({2: 0.1, 4: 0.05})  # above the Rand U-Net start and far above scratch (0.4)
    both = hyper_init_beats_random(rows, baselines=("rand_ft", "scratch_ft"))
    assert both.verdict == HOLDS and "conclusion" in both.claim
    assert "− rand_ft: " in both.kit and "− scratch_ft: " in both.kit and "− scratch_ft N=4" in both.detail
    strong = [dict(r, dsc=0.9) if r["method"] == "scratch_ft" else r for r in rows]  # scratch now above Hyper
    assert hyper_init_beats_random(strong).verdict == HOLDS  # Figure 3's claim does not look at scratch
    assert hyper_init_beats_random(strong, baselines=("rand_ft", "scratch_ft")).verdict == FAILS
    no_scratch = [r for r in rows if r["method"] != "scratch_ft"]
    assert hyper_init_beats_random(no_scratch, baselines=("rand_ft", "scratch_ft")).verdict == NOT_MEASURED
    with pytest.raises(ValueError, match="'maml'"):
        hyper_init_beats_random(rows, baselines=("maml",))


def test_all_claims_are_seven_in_order() -> None:
    claims = all_claims(None, None, None)
    assert [c.key for c in claims] == ["hyper_above_rand", "organs_above_tumours", "ct_to_mri", "gradient_step",
                                       "task_norm", "task_pe", "hyper_init"]
    assert {c.verdict for c in claims} == {NOT_MEASURED}
    assert all(c.paper and c.paper != "—" for c in claims)  # the paper's number is shown even when not measured


def _one_shot(task: str, hyper: Sequence[float], rand: Sequence[float]) -> list[dict[str, Any]]:
    """Rows of one target: Hyper and Rand U-Net DSC on draw 0, test cases c0, c1, ..."""
    return [{"task": task, "method": m, "draw": 0, "case": f"c{i}", "in_test_split": True, "dsc": v}
            for m, vs in (("hyper_unet", hyper), ("rand_unet", rand)) for i, v in enumerate(vs)]


def _lower_end_at(b: float, lo: float) -> float:
    """The other difference ``a`` of two pairs (a, b), a < b, whose kit interval starts at ``lo``:
    the bootstrap of one of two pairs reaches ``a``, and the end is widened by k = t(1) / z around
    the mean, so ``lo = (a + b) / 2 - k (b - a) / 2``."""
    from scipy.stats import norm, t

    k = t.ppf(0.975, 1) / norm.ppf(0.975)
    return (2 * lo + b * (k - 1)) / (1 + k)


def test_an_interval_that_touches_zero_does_not_hold() -> None:
    """Guards RULE's boundary on the one-shot claims: differences whose interval starts at 0 do not
    hold; differences close together, well above 0, do."""
    a = _lower_end_at(0.2, 0.0)
    touching = _one_shot(TASKS["brain_edema_flair"], [0.5 + a, 0.7], [0.5, 0.5])
    v = ct_to_mri(touching)
    assert "0.000, +" in v.kit and "over 2 pairs" in v.kit and v.verdict == FAILS
    h = hyper_above_rand(touching)
    assert h.verdict == FAILS and "0 of 1" in h.kit
    above = _one_shot(TASKS["brain_edema_flair"], [0.69, 0.7], [0.5, 0.5])  # differences (0.19, 0.2): [0.16, 0.23]
    assert ct_to_mri(above).verdict == HOLDS and hyper_above_rand(above).verdict == HOLDS


def test_an_interval_printed_as_touching_zero_does_not_hold() -> None:
    """Guards RULE's "as printed": a lower end of 0.0004 is printed +0.000; the verdict follows the
    printed interval, not digits the report hides."""
    rows = _one_shot(TASKS["brain_edema_flair"], [0.5 + _lower_end_at(0.2, 0.0004), 0.7], [0.5, 0.5])
    v = ct_to_mri(rows)
    assert "[+0.000, +" in v.kit and v.verdict == FAILS
    assert hyper_above_rand(rows).verdict == FAILS


def test_ablation_verdict_needs_the_whole_interval_above_zero() -> None:
    """Guards ablation_effect's rule on hand-made rows: lo > 0 holds; lo <= 0 < hi does not."""
    def row(lo: float, hi: float) -> dict[str, Any]:
        return {"variant": "norm", "target": "all", "metric": "dsc", "diff": (lo + hi) / 2, "ci_lo": lo, "ci_hi": hi,
                "pairs": 10}
    assert ablation_effect([row(0.01, 0.05)], "norm").verdict == HOLDS
    assert ablation_effect([row(-0.01, 0.05)], "norm").verdict == FAILS
    assert ablation_effect([row(0.0, 0.05)], "norm").verdict == FAILS
    assert ablation_effect([row(-0.05, -0.01)], "norm").verdict == FAILS


def test_one_shot_claims_are_measured_in_dsc_not_nsd() -> None:
    """Guards the metric of claims 1-3: with NSD reversed (1 - DSC) the DSC verdicts stand."""
    rows = [dict(r, nsd=1 - r["dsc"], nsd_voxel=1 - r["dsc"]) for r in results_rows(GOOD_HYPER, RAND)]
    assert hyper_above_rand(rows).verdict == HOLDS
    assert organs_above_tumours(rows).verdict == HOLDS
    assert ct_to_mri(rows).verdict == HOLDS


def test_organs_group_is_the_mean_of_liver_and_spleen() -> None:
    """Guards the organ group (liver and spleen averaged) against the tumour/vessel group (0.3 each)."""
    tumours = {"hepatic_vessels": 0.3, "lung_tumour": 0.3, "colon_tumour": 0.3}
    low = organs_above_tumours(results_rows(dict(tumours, liver=0.35, spleen=0.05), {}))  # (0.35 + 0.05) / 2 = 0.2
    assert low.verdict == FAILS and float(low.kit.split()[0]) == pytest.approx(-0.1, abs=0.02)
    high = organs_above_tumours(results_rows(dict(tumours, liver=0.05, spleen=0.65), {}))  # 0.35
    assert high.verdict == HOLDS and float(high.kit.split()[0]) == pytest.approx(0.05, abs=0.02)


def test_organs_with_unequal_case_counts_pair_the_common_positions() -> None:
    """Guards the pairing by position when targets have different numbers of test cases (the shortest wins)."""
    rows = [r for r in results_rows(GOOD_HYPER, {}) if not (r["task"] == TASKS["spleen"] and r["case"] == "c3")]
    v = organs_above_tumours(rows)
    assert v.verdict == HOLDS and "(9 positions paired)" in v.detail  # spleen: 3 draws x 3 cases


def test_organs_pair_the_same_draw_when_case_counts_differ() -> None:
    """Guards pairing at (draw, k-th case), not by position in the file: every draw shifts all targets
    alike, so aligned pairs differ by exactly 0.1; one spleen case fewer must not shift the draws."""
    cols = ("liver", "spleen", "hepatic_vessels", "lung_tumour", "colon_tumour")
    rows = [{"task": TASKS[c], "method": "hyper_unet", "draw": d, "support": f"s{d}", "case": f"c{k}",
             "in_test_split": True, "dsc": (0.3 if c in ("liver", "spleen") else 0.2) + 0.2 * d + 0.01 * k}
            for c in cols for d in range(3) for k in range(4)
            if not (c == "spleen" and k == 3)]
    v = organs_above_tumours(rows)
    assert "(9 positions paired)" in v.detail
    assert float(v.kit.split()[0]) == pytest.approx(0.1, abs=1e-9)  # paired by file position: 0.132
    other_draws = [dict(r, draw=r["draw"] + 10) for r in rows if r["task"] == TASKS["lung_tumour"]]
    assert organs_above_tumours([r for r in rows if r["task"] == TASKS["liver"]] + other_draws).verdict == NOT_MEASURED


def test_claims_score_a_target_without_a_test_split_on_all_its_cases() -> None:
    """Guards the scope of a target with fewer than 3 cases (no test split: every row False): its rows
    count, as in Tables 1-2, instead of the target silently dropping out of the claims."""
    rows = results_rows(GOOD_HYPER, RAND)
    no_split = [dict(r, in_test_split=False) if r["task"] == TASKS["spleen"] else r for r in rows]
    assert organs_above_tumours(no_split).detail == organs_above_tumours(rows).detail
    assert hyper_above_rand(no_split).detail == hyper_above_rand(rows).detail
    # a task that has a test split still leaves its other rows out
    extra = [dict(r, case="x" + r["case"], in_test_split=False, dsc=0.0) for r in rows if r["task"] == TASKS["liver"]]
    assert organs_above_tumours(rows + extra).detail == organs_above_tumours(rows).detail


def test_hyper_init_leaves_out_n_below_the_claims_sizes() -> None:
    """Guards that only N in ``ns`` (2-4) are pooled: a reversed N = 1 does not enter the verdict."""
    v = hyper_init_beats_random(finetune_rows({1: -0.5, 2: 0.1, 4: 0.05}))
    assert v.verdict == HOLDS and "N=1" not in v.detail and "over 8 pairs" in v.kit  # N = 2, 4 x 2 repeats x 2 cases
    assert hyper_init_beats_random(finetune_rows({2: 0.1, 3: -0.5, 4: 0.1}), ns=(2, 4)).verdict == HOLDS


# ------------------------------------------------------------------------------ the page
def test_report_of_a_small_run(tmp_path: Path) -> None:
    out = make_run(tmp_path / "run")
    files = build_report(out)
    assert files.html == out / "report.html" and files.markdown == out / "report.md"
    assert [c.verdict for c in files.claims] == [HOLDS, HOLDS, HOLDS, HOLDS, HOLDS, FAILS, HOLDS]
    assert files.counts() == {HOLDS: 6, FAILS: 1, NOT_MEASURED: 0}
    page, md = files.html.read_text(), files.markdown.read_text()
    for text in (page, md):
        assert "Does the paper reproduce?" in text and "6 hold" in text
        assert "Organ- and task-shift, 1-shot, CT (paper Table 1)" in text  # comparison_table's caption
        assert "Ablation: z_task with and without LayerNorm (paper Table 5)" in text  # ablation_tables'
        assert "DSC with 5 reference pairs per organ" in text  # Table 3
    for ident in ("claims", "table-1", "table-2", "table-3", "table-4", "table-5", "table-6", "table-seed",
                  "figure-3-data", "figure-3"):
        assert f'id="{ident}"' in page, ident
    # offline: no script, no stylesheet or picture from elsewhere; Figure 3 embedded
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert re.search(r'<figure id="figure-3">.*?<img [^>]*src="data:image/png;base64,', page, re.S)
    # no executed notebooks in this folder: Figures 1-2 and the cell links say so
    assert page.count("Not measured: no executed notebook") == 2 and "no link (no executed notebook)" in page
    assert "![Figure 3: fine-tuning with N labelled volumes](finetune-quick/figure3.png)" in md
    assert '<td class="verdict holds">holds</td>' in page and '<td class="verdict fails">does not hold</td>' in page


def test_provenance_names_the_machine_and_thread_count(tmp_path: Path) -> None:
    from hyperkit.provenance import write_run_record

    out = make_run(tmp_path / "run")
    write_run_record(out, {"name": "quick"}, 0)
    md = build_report(out).markdown.read_text()
    row = next(line for line in md.splitlines() if line.startswith("| machine |"))
    assert "cores" in row and f"torch threads {torch.get_num_threads()}" in row


def _table_3_section(md: str) -> str:
    return md.split("## Table 3: five supports")[1].split("\n## ")[0]


def test_table_3_shows_the_kit_maml_run_when_there_is_one(tmp_path: Path) -> None:
    from hyperkit.evaluation.tables import paper_tables

    out = make_run(tmp_path / "run")
    today = _table_3_section(build_report(out).markdown.read_text())
    assert "kit 1-shot Hyper U-Net DSC" in today and "MAML 5-shot, kit" not in today  # no MAML run: as before
    make_maml_run(out)
    files = build_report(out)
    md, page = files.markdown.read_text(), files.html.read_text()
    t3 = _table_3_section(md)
    assert "**MAML 5-shot, kit** (first-order" in t3 and "**Hyper U-Net 5-shot, kit**" in t3
    for organ, (_, mean) in MAML_RUN.items():  # the kit's MAML and 5-shot Hyper U-Net, mean ± SD of each organ
        assert f"{mean:.3f} ± 0.008" in t3 and f"{mean + 0.25:.3f} ± 0.008" in t3, organ
    paper = paper_tables()["table3_five_shot"]
    maml_row = next(line for line in t3.splitlines() if line.startswith("| MAML 5-shot, Alsaleh"))
    assert all(f"{paper[o]['maml_alsaleh2024']:.3f}" in maml_row for o in MAML_RUN)  # the paper's quoted numbers
    assert "kit Hyper U-Net − kit MAML, paired DSC" in t3 and "+0.250" in t3 and "all organs" in t3
    assert "leave-one-organ-out" in t3 and "`maml-quick/maml.csv`" in t3 and "kit 1-shot" not in t3
    assert re.search(r'<table id="table-3">.*?MAML 5-shot, kit.*?</table>', page, re.S)
    assert "| MAML (Table 3) | `maml-quick/maml.json` |" in md  # its record in the provenance

    make_maml_run(out, finished=False)  # a run still going: the rows it has, and what it cannot say yet
    t3 = _table_3_section(build_report(out).markdown.read_text())
    assert "**MAML 5-shot, kit**" in t3 and "the run has not finished" in t3
    (out / "maml-quick" / "maml.json").unlink()  # rows without their protocol: named, and today's table
    md = build_report(out).markdown.read_text()
    assert "`maml.csv` could not be read: no readable maml.json" in md
    assert "kit 1-shot Hyper U-Net DSC" in _table_3_section(md)


def test_report_of_an_empty_folder_measures_nothing(tmp_path: Path) -> None:
    files = build_report(tmp_path, tmp_path / "report")
    assert files.counts() == {HOLDS: 0, FAILS: 0, NOT_MEASURED: 7}
    md = files.markdown.read_text()
    assert "Tables 1 and 2**: not measured" in md and "No run record" in md
    assert files.html.parent == tmp_path / "report"
    with pytest.raises(FileNotFoundError):
        build_report(tmp_path / "absent")


def test_unreadable_results_are_named_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "eval-quick").mkdir()
    (tmp_path / "eval-quick" / "results.csv").write_text("a,b\n1,2\n")
    files = build_report(tmp_path)
    assert files.claims[0].verdict == NOT_MEASURED
    assert "`results.csv` could not be read" in files.markdown.read_text()


def test_a_foreign_ablation_csv_is_named_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "ablation-quick").mkdir()
    (tmp_path / "ablation-quick" / "ablation.csv").write_text("a,b\n1,2\n")
    files = build_report(tmp_path)
    assert files.counts() == {HOLDS: 0, FAILS: 0, NOT_MEASURED: 7}
    assert "`ablation.csv` could not be read: " in files.markdown.read_text()


REAL_RUN = Path(__file__).resolve().parents[1] / "runs" / "quick"


@pytest.mark.skipif(not (REAL_RUN / "eval-quick" / "results.csv").is_file(), reason="no runs/quick on this machine")
def test_report_of_the_real_quick_run(tmp_path: Path) -> None:
    """The result files the notebooks wrote (read only; the report goes to tmp_path)."""
    def listing() -> dict[str, int]:  # the run folder's own files (a reproduce folder holds its own report)
        return {str(p): p.stat().st_mtime_ns for p in REAL_RUN.iterdir() if p.is_file()}

    before = listing()
    files = build_report(REAL_RUN, tmp_path, profile="quick")
    assert len(files.claims) == 7 and files.claims[0].verdict in (HOLDS, FAILS)
    assert files.html.parent == tmp_path and listing() == before  # nothing written into the run
    assert "table-1" in files.html.read_text()


# ------------------------------------------------------------------------------ parts
def test_markdown_subset() -> None:
    md = ("**Title** with `a|b` and <script>x</script>\n\n| name | value | verdict |\n|---|---:|---|\n"
          "| <u>0.5</u> | **0.7** | holds |\n| a \\| b | [cell](#c-1) | [web](https://example.org) |\n\n- one\n- two")
    out = to_html(md, iter(["t1"]).__next__)
    assert "<p><strong>Title</strong> with <code>a|b</code> and &lt;script&gt;x&lt;/script&gt;</p>" in out
    assert '<table id="t1">' in out and '<th class="num">value</th>' in out
    assert "<td><u>0.5</u></td>" in out and '<td class="num"><strong>0.7</strong></td>' in out
    assert '<td class="verdict holds">holds</td>' in out and "<td>a | b</td>" in out
    assert '<a href="#c-1">cell</a>' in out and "web (https://example.org)" in out and 'href="https' not in out
    assert "<ul><li>one</li><li>two</li></ul>" in out


def test_find_cell_by_pattern_and_picture(tmp_path: Path) -> None:
    import base64

    import nbformat

    nb = nbformat.v4.new_notebook()
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
                           "AABJRU5ErkJggg==")
    plain = nbformat.v4.new_code_cell("figure2(a)  # no picture in this cell")
    shown = nbformat.v4.new_code_cell("figure2(b)", execution_count=7)
    shown.outputs = [nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode()}),
                     nbformat.v4.new_output("stream", name="stdout", text="50%\r100%\ndone\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# x"), plain, shown]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "05_one_shot.ipynb")
    first = find_cell(tmp_path / "notebooks", "figure2")
    assert first is not None and first.index == 1 and first.images == ()
    pic = find_cell(tmp_path / "notebooks", "figure2", image=True)
    assert pic is not None and pic.images == (png,) and pic.number == 2 and pic.total == 2
    assert pic.text == "100%\ndone" and pic.anchor == "cell-05_one_shot-2" and pic.execution_count == 7
    assert find_cell(tmp_path / "notebooks", "figure3") is None
    assert find_cell(tmp_path / "nothing", "one_shot") is None
    with pytest.raises(ValueError, match="'figure9'"):
        find_cell(tmp_path, "figure9")
    assert set(CELLS) >= {"one_shot", "ablation", "finetune", "figure1", "figure2", "figure3"}
