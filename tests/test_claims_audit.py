"""Audit of hyperkit.report.claims: the paper's side of each claim recomputed from the tables file, the
organ/tumour pairing by (draw, k-th test case), and which rows, sizes and starts each verdict reads.

The expected intervals come from :func:`hyperkit.evaluation.stats.paired_difference` /
:func:`~hyperkit.evaluation.stats.paired_starts` on vectors built here by hand: the audit is of how the
claims assemble their inputs, not of the bootstrap (``tests/test_stats_audit.py``).
"""

from __future__ import annotations

import random
import statistics
from importlib import resources

import pytest
import yaml

from hyperkit.evaluation.stats import paired_difference, paired_starts
from hyperkit.report.claims import (FAILS, HOLDS, NOT_MEASURED, ablation_effect, all_claims, ct_to_mri,
                                    hyper_above_rand, hyper_init_beats_random, organs_above_tumours)

PAPER = yaml.safe_load(resources.files("hyperkit").joinpath("paper_results", "tables.yaml").read_text())
CT = {"liver": "msd/Task03_Liver/liver@CT", "spleen": "msd/Task09_Spleen/spleen@CT",
      "hepatic_vessels": "msd/Task08_HepaticVessel/Vessel@CT", "lung_tumour": "msd/Task06_Lung/cancer@CT",
      "colon_tumour": "msd/Task10_Colon/colon_cancer_primaries@CT"}


def _row(task: str, method: str, draw: int, case: str, dsc: float, test: bool = True) -> dict:
    return {"task": task, "method": method, "draw": draw, "support": f"s{draw}", "case": case,
            "in_test_split": test, "dsc": dsc, "nsd": 0.0, "nsd_voxel": 0.0, "fit_seconds": 0.1}


def _gaps(table: str, a: str, b: str) -> list[float]:
    return [v[a]["dsc"][0] - v[b]["dsc"][0] for k, v in PAPER[table].items() if k != "caption"]


# ---------------------------------------------------------------------------------------- the paper's side
def test_the_paper_side_of_every_claim_is_the_tables_file_read_by_hand():
    ct, mri = _gaps("table1_ct", "hyper_unet", "rand_unet"), _gaps("table2_mri", "hyper_unet", "rand_unet")
    both = ct + mri
    assert hyper_above_rand(None).paper == (f"above on {sum(g > 0 for g in both)} of {len(both)} targets "
                                           f"(mean {statistics.fmean(both):+.3f})")
    assert ct_to_mri(None).paper == (f"{statistics.fmean(mri):+.3f} (mean over its {len(mri)} MRI targets; "
                                     f"above on {sum(g > 0 for g in mri)})")
    t1 = PAPER["table1_ct"]
    organs = [t1[c]["hyper_unet"]["dsc"][0] for c in ("liver", "spleen")]
    others = [t1[c]["hyper_unet"]["dsc"][0] for c in ("hepatic_vessels", "lung_tumour", "colon_tumour")]
    assert organs_above_tumours(None).paper == (
        f"{statistics.fmean(organs) - statistics.fmean(others):+.3f} (organs {organs[0]:.3f}, {organs[1]:.3f}; "
        f"tumours/vessels {others[0]:.3f}, {others[1]:.3f}, {others[2]:.3f})")
    for variant, table in (("step", "table4_gradient_step"), ("norm", "table5_task_norm"), ("pe", "table6_task_pe")):
        gaps = _gaps(table, "with", "without")
        assert ablation_effect(None, variant).paper == (f"{statistics.fmean(gaps):+.3f} (mean of with − without "
                                                        f"over its {len(gaps)} targets; positive on "
                                                        f"{sum(g > 0 for g in gaps)})")
    assert "+0.239" in hyper_above_rand(None).paper and "above on 4" in ct_to_mri(None).paper  # sanity of the reading


def test_all_claims_name_each_claim_s_own_file_and_take_figure_3_s_claim():
    claims = all_claims(None, None, None, results_file="R.csv", ablation_file="A.csv", finetune_file="F.csv")
    assert [c.files for c in claims] == [("R.csv",)] * 3 + [("A.csv",)] * 3 + [("F.csv",)]
    assert all("`" + c.files[0] + "` is not in this run" == c.detail for c in claims)
    last = claims[-1]
    assert last.claim.startswith("Hyper initialisation beats random initialisation") and "Figure 3" in last.claim
    assert "fine-tuned Rand U-Net" in last.measure and "scratch" not in last.measure


# ---------------------------------------------------------------------------------- organs above tumours
def _organ_rows(values: dict[str, dict[int, dict[str, float]]], shuffle: int = 0) -> list[dict]:
    rows = [_row(CT[c], "hyper_unet", d, case, v) for c, by in values.items() for d, cases in by.items()
            for case, v in cases.items()]
    rows += [_row(CT["liver"], "rand_unet", 0, "c0", 0.99), _row(CT["lung_tumour"], "rand_unet", 0, "c0", 0.0)]
    rows += [_row(CT["liver"], "hyper_unet", 0, "t9", 0.0, test=False)]  # a non-test case of a task with a split
    random.Random(shuffle).shuffle(rows)
    return rows


VALUES = {  # task -> draw -> case -> DSC; cases named so that their sorted order is not the insertion order
    "liver": {0: {"c2": 0.90, "c0": 0.70, "c1": 0.50}, 1: {"c1": 0.60, "c0": 0.80, "c2": 0.40}, 2: {"c0": 0.9}},
    "spleen": {0: {"c1": 0.30, "c0": 0.50}, 1: {"c0": 0.20, "c1": 0.60}},
    "hepatic_vessels": {0: {"c0": 0.10, "c1": 0.35}, 1: {"c1": 0.05, "c0": 0.25}},
    "lung_tumour": {0: {"c1": 0.00, "c0": 0.20}, 1: {"c0": 0.15, "c1": 0.30}},
}


def test_organs_are_paired_with_tumours_by_draw_and_sorted_test_case():
    """Draw 2 (liver only) and liver's third case drop out; within a draw the k-th case in sorted order
    is paired; groups average their targets; the non-test row and the Rand U-Net rows are not read."""
    s = lambda c, d: [VALUES[c][d][k] for k in sorted(VALUES[c][d])]  # noqa: E731
    organ, other, units = [], [], []
    for d in (0, 1):
        for k in range(2):
            organ.append((s("liver", d)[k] + s("spleen", d)[k]) / 2)
            other.append((s("hepatic_vessels", d)[k] + s("lung_tumour", d)[k]) / 2)
            units.append(("groups", d, k))
    expected = paired_difference(organ, other, units=units)
    for shuffle in range(3):  # the rows' order does not matter
        v = organs_above_tumours(_organ_rows(VALUES, shuffle))
        assert v.kit == expected.text()
        assert v.verdict == (HOLDS if round(expected.lo, 3) > 0 else FAILS)
    liver = statistics.fmean([0.9, 0.7, 0.5, 0.6, 0.8, 0.4, 0.9])
    spleen = statistics.fmean([0.3, 0.5, 0.2, 0.6])
    assert v.detail.startswith(f"Hyper U-Net DSC: liver {liver:.3f}; spleen {spleen:.3f}; hepatic_vessels ")
    assert v.detail.endswith("(4 positions paired). Not measured: colon_tumour")
    assert paired_difference(organ, other, units=units).text() != paired_difference(organ, other).text()


def test_organs_verdict_reads_the_interval_not_the_mean():
    """A positive mean difference whose interval reaches below 0 does not hold."""
    noisy = {"liver": {d: {"c0": 0.9 if d % 2 else 0.0, "c1": 0.1} for d in range(4)},
             "spleen": {d: {"c0": 0.9 if d % 2 else 0.0, "c1": 0.1} for d in range(4)},
             "lung_tumour": {d: {"c0": 0.3, "c1": 0.1} for d in range(4)}}
    v = organs_above_tumours(_organ_rows(noisy))
    mean = float(v.kit.split()[0])
    lo = float(v.kit.split("[")[1].split(",")[0])
    assert mean > 0 > lo and v.verdict == FAILS


# ------------------------------------------------------------------------------------------ ablations
def _ablation_row(variant: str, target: str, metric: str, diff: float, lo: float, hi: float) -> dict:
    return {"variant": variant, "target": target, "metric": metric, "diff": diff, "ci_lo": lo, "ci_hi": hi,
            "pairs": 12}


def test_ablation_reads_the_dsc_rows_of_its_variant_and_the_pooled_seed_row():
    rows = [_ablation_row(*r) for r in (
        ("norm", "all", "dsc", 0.2, 0.1, 0.3), ("norm", "liver", "dsc", 0.25, 0.2, 0.3),
        ("norm", "all", "nsd", -0.5, -0.6, -0.4), ("norm", "liver", "nsd", -0.5, -0.6, -0.4),
        ("seed", "liver", "dsc", 0.9, 0.8, 1.0), ("seed", "all", "dsc", 0.01, -0.02, 0.04),
        ("seed", "all", "nsd", 0.7, 0.6, 0.8), ("step", "all", "dsc", -0.3, -0.4, -0.2))]
    v = ablation_effect(rows, "norm")
    assert v.verdict == HOLDS and v.kit == "+0.200 [+0.100, +0.300] over 12 pairs"
    assert v.detail == ("liver +0.250 [+0.200, +0.300]. Seed-to-seed spread (two base models, training seeds "
                        "differ): +0.010 [-0.020, +0.040]; an effect inside it is not told from retraining noise")
    straddles = ablation_effect([_ablation_row("pe", "all", "dsc", 0.05, -0.01, 0.11)], "pe")
    assert straddles.verdict == FAILS and straddles.detail == ""  # no per-target rows, no seed row


# ---------------------------------------------------------------------------------------- fine-tuning
def _ft(n: int, method: str, repeat: int, case: str, dsc: float) -> dict:
    return {"task": CT["liver"], "n": n, "repeat": repeat, "method": method, "train_cases": "a", "stop_on": "train",
            "case": case, "dsc": dsc, "nsd": 0.0, "nsd_voxel": 0.0, "zero_shot_dsc": 0.3, "steps": 10,
            "best_step": 5, "seconds": 1.0}


FT = [_ft(n, m, r, c, base + 0.01 * r + 0.02 * (c == "c1") + 0.001 * n)
      for n in (2, 3, 4, 8) for r in range(2) for c in ("c0", "c1")
      for m, base in (("hyper_ft", 0.6), ("rand_ft", 0.5 if n != 3 else 0.62), ("scratch_ft", 0.3))]


def test_fine_tuning_sizes_are_deduplicated_sorted_and_each_baseline_shown_per_size():
    v = hyper_init_beats_random(FT, ns=(4, 2, 2), baselines=("rand_ft", "scratch_ft"))
    assert "N in {2, 4} pooled" in v.measure
    keep = lambda n: (lambda r: int(r["n"]) == n)  # noqa: E731
    expected = [f"− {b} N={n} {paired_starts(FT, 'hyper_ft', b, keep=keep(n)).text()} "
                f"({paired_starts(FT, 'hyper_ft', b, keep=keep(n)).n} pairs)"
                for b in ("rand_ft", "scratch_ft") for n in (2, 4)]
    assert v.detail == "; ".join(expected)
    assert v.verdict == HOLDS
    assert hyper_init_beats_random(FT, ns=(2, 3, 4)).verdict == FAILS  # N = 3: below the Rand start
    assert hyper_init_beats_random(FT, ns=(8,)).verdict == HOLDS  # N = 8 is measured when asked for


@pytest.mark.parametrize("kw, match", [({"ns": (0, 2)}, r"ns must be positive sizes, got \(0, 2\)"),
                                       ({"ns": ()}, r"ns must be positive sizes, got \(\)"),
                                       ({"baselines": ()}, r"baselines must be some of \['rand_ft', 'scratch_ft'\], "
                                                           r"got \[\]")])
def test_fine_tuning_claim_refuses_bad_sizes_and_starts(kw, match):
    with pytest.raises(ValueError, match=match):
        hyper_init_beats_random(FT, **kw)


def test_a_claim_without_rows_says_what_is_missing():
    v = hyper_init_beats_random([r for r in FT if r["method"] != "rand_ft"])
    assert v.verdict == NOT_MEASURED
    assert v.detail == "`finetune/finetune.csv` has no rows of hyper_ft and rand_ft at N in [2, 3, 4]"
