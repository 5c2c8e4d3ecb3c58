"""Tables 1-2 checked where the evaluation and report tests cannot fail (found by the tables mutation audit):
which kit task plays a paper column, the scope a supervised row does not change, the mean and population std
of every metric with n and cases kept apart, whole table rows (the cases column, each metric's own marks,
the paper's marks by mean, paper-only rows, the methods argument), ties in the marks and in the reading, the
``level`` boundary of the reading and its counts, and what_held on a tie and on a check that holds."""

from __future__ import annotations

import math

import pytest

from hyperkit.evaluation.tables import (SCOPE_TEST, Stat, _marks, comparison_table, kit_task, paper_columns, reading,
                                        summarize, table_tasks, what_held)

LIVER = "msd/Task03_Liver/liver@CT"
PREFIX = "| liver (Task03_Liver/liver@CT) | "


def _row(method: str, case: str, dsc: float, nsd: float = 0.0, nsd_voxel: float = 0.0, draw: int = 0,
         in_test: bool = True) -> dict:
    return {"task": LIVER, "method": method, "case": case, "draw": draw, "in_test_split": in_test, "dsc": dsc,
            "nsd": nsd, "nsd_voxel": nsd_voxel}


def test_table_tasks_refuses_an_unknown_table_and_takes_the_first_sorted_match():
    with pytest.raises(ValueError, match="table must be one of"):
        table_tasks("table3_five_shot", [LIVER])
    cols = table_tasks("table1_ct", ["b/Task03_Liver/liver@CT", "a/Task03_Liver/liver@CT"])
    assert cols["liver"] == "a/Task03_Liver/liver@CT" and cols["spleen"] is None
    assert "caption" not in cols and list(cols)[0] == "liver"


def test_kit_task_takes_the_first_sorted_match_and_none_for_a_column_without_a_kit_task():
    ids = ["b/Task03_Liver/liver@CT", "a/Task03_Liver/liver@CT", "totalseg/TotalSegmentator/kidney_left@CT"]
    assert kit_task("liver", ids) == "a/Task03_Liver/liver@CT"
    assert kit_task("spleen", ids) is None  # a column of the task map that no task plays
    assert kit_task("kidney_left", ids) is None  # Table 3's kidneys have no pattern: a task of that name is not one


def test_paper_columns_keeps_the_played_columns_of_the_asked_tables_in_their_order():
    heart, liver = "msd/Task02_Heart/left_atrium@MRI", "b/Task03_Liver/liver@CT"
    ids = [heart, liver, "a/Task03_Liver/liver@CT", "totalseg/TotalSegmentator/rib_left_1@CT"]
    assert paper_columns(ids) == {"liver": "a/Task03_Liver/liver@CT", "heart_bssfp": heart}
    assert paper_columns(ids, ["table2_mri"]) == {"heart_bssfp": heart}
    assert paper_columns(["totalseg/TotalSegmentator/rib_left_1@CT"]) == {}
    with pytest.raises(ValueError, match="table must be one of"):
        paper_columns(ids, ["table3_five_shot"])


def test_a_supervised_row_outside_the_test_split_does_not_change_the_scope():
    rows = [_row("hyper_unet", "c1", 0.5), _row("conv_unet", "c1", 0.9), _row("conv_unet", "c2", 0.1, in_test=False)]
    s = summarize(rows)
    assert s[(LIVER, "hyper_unet")].scope == s[(LIVER, "conv_unet")].scope == SCOPE_TEST
    assert (s[(LIVER, "conv_unet")].dsc, s[(LIVER, "conv_unet")].n) == (pytest.approx(0.9), 1)


def test_summarize_gives_mean_and_population_std_of_each_metric_and_counts_rows_and_cases():
    dsc, nsd, vox = (0.1, 0.2, 0.3, 0.6), (0.0, 0.0, 0.0, 0.4), (0.2, 0.4, 0.6, 0.8)
    rows = [_row("hyper_unet", c, d, s, v, draw=k) for (c, k), d, s, v in
            zip([("c1", 0), ("c1", 1), ("c2", 0), ("c2", 1)], dsc, nsd, vox)]
    st = summarize(rows)[(LIVER, "hyper_unet")]
    assert (st.dsc, st.dsc_std) == (pytest.approx(0.3), pytest.approx(math.sqrt(0.035)))
    assert (st.nsd, st.nsd_std) == (pytest.approx(0.1), pytest.approx(math.sqrt(0.03)))  # the mean, not the median
    assert (st.nsd_voxel, st.nsd_voxel_std) == (pytest.approx(0.5), pytest.approx(math.sqrt(0.05)))
    assert (st.n, st.cases) == (4, 2)  # predictions (cases x draws), distinct cases


def _liver_summary() -> dict:
    hyper = [_row("hyper_unet", c, d, d - 0.3, d + 0.1, draw=k)
             for c, k, d in (("c1", 0, 0.5), ("c1", 1, 0.5), ("c2", 0, 0.7), ("c2", 1, 0.7))]
    rand = [_row("rand_unet", "c1", 0.1, 0.5, 0.1), _row("rand_unet", "c2", 0.3, 0.5, 0.1)]
    return summarize(hyper + rand)


def test_table_rows_in_full():
    lines = comparison_table(_liver_summary(), "table1_ct").splitlines()
    rows = [ln for ln in lines if ln.startswith(PREFIX)]
    assert rows == [  # methods in METHODS order; Copy support mask in neither: no row
        PREFIX + "Rand U-Net | 2 | <u>0.200±0.100</u> | 0.176±0.050 | **0.500±0.000** | 0.110±0.025 | "
                 "<u>0.100±0.000</u> |",
        PREFIX + "All U-Net | — | — | <u>0.826±0.073</u> | — | <u>0.668±0.106</u> | — |",  # only the paper's
        PREFIX + "Hyper U-Net | 2 | **0.600±0.100** | 0.772±0.063 | <u>0.300±0.100</u> | 0.490±0.080 | "
                 "**0.700±0.100** |",
        PREFIX + "Conv U-Net | — | — | **0.951±0.018** | — | **0.792±0.069** | — |",
    ]


def test_table_ranks_only_the_methods_asked_for():
    summary = summarize([_row("hyper_unet", "c1", 0.5), _row("rand_unet", "c1", 0.1), _row("conv_unet", "c1", 0.9)])
    rows = [ln for ln in comparison_table(summary, "table1_ct", methods=("rand_unet", "hyper_unet")).splitlines()
            if ln.startswith(PREFIX)]
    assert [r.split(" | ")[1] for r in rows] == ["Rand U-Net", "Hyper U-Net"]
    assert rows[1].startswith(PREFIX + "Hyper U-Net | 1 | **0.500±0.000** | **0.772±0.063** |")


def test_marks_ties_share_a_mark_and_two_values_give_best_and_second():
    assert _marks({"a": 0.5, "b": 0.5, "c": 0.3}) == {"a": "best", "b": "best", "c": "second"}
    assert _marks({"a": 0.2, "b": 0.4}) == {"a": "second", "b": "best"}
    assert _marks({}) == {}


# Before the fix, _marks ranked the raw means: 0.5004 bold, 0.5001 underlined, both printed 0.500.
def test_means_that_print_the_same_share_a_mark():
    summary = summarize([_row("hyper_unet", "c1", 0.5004), _row("rand_unet", "c1", 0.5001),
                         _row("copy_support", "c1", 0.3)])
    table = comparison_table(summary, "table1_ct")
    hyper, rand = (next(ln for ln in table.splitlines() if ln.startswith(PREFIX + m)) for m in ("Hyper", "Rand"))
    assert "| **0.500±0.000** |" in hyper and "| **0.500±0.000** |" in rand


def test_reading_at_exactly_level_is_above_and_counts_as_clear():
    summary = summarize([_row("hyper_unet", "c1", 0.75), _row("rand_unet", "c1", 0.5)])
    line, tally = reading(summary, level=0.25)
    assert line == ("- **liver** (Task03_Liver/liver@CT): best: Hyper U-Net (0.750); above Rand U-Net (0.500, +0.250); "
                    "paper's Hyper U-Net 0.772 (kit -0.022).")
    assert tally == "- **Hyper U-Net, all targets**: above Rand U-Net on 1 of 1; above the paper's Hyper U-Net on 0 " \
                    "of 1 targets (DSC)."


def test_reading_of_an_exact_tie():
    summary = summarize([_row("hyper_unet", "c1", 0.5), _row("rand_unet", "c1", 0.5)])
    line, tally = reading(summary)
    # a tie for best goes to the first of METHODS; equal is not above in the counts
    assert "best: Rand U-Net (0.500); Hyper U-Net 0.500 (level with it); level with Rand U-Net (0.500, +0.000)" in line
    assert "above Rand U-Net on 0 of 1;" in tally and "by 0.01" not in tally


def test_what_held_counts_a_tie_as_not_above_and_holds_when_every_target_is_above():
    tie = what_held(summarize([_row("hyper_unet", "c1", 0.5), _row("rand_unet", "c1", 0.5)]))
    assert tie[0] == (False, "Hyper U-Net DSC above Rand U-Net on 0 of 1 targets (aim: 1) (not on: liver)")
    above = what_held(summarize([_row("hyper_unet", "c1", 0.75), _row("rand_unet", "c1", 0.5)]))
    assert above[0] == (True, "Hyper U-Net DSC above Rand U-Net on 1 of 1 targets (aim: 1)")
    assert above[1] == (True, "liver: Hyper U-Net DSC 0.750 against the aim 0.70; paper's Hyper U-Net 0.772")


def test_an_exact_tie_reads_level_even_with_level_zero():
    """With level=0 an exact tie read "below" (0 < 0 is false, 0.5 > 0.5 too); equal is "level with" at any level."""
    summary = summarize([_row("hyper_unet", "c1", 0.5), _row("rand_unet", "c1", 0.5), _row("copy_support", "c1", 0.4)])
    line = reading(summary, level=0.0)[0]
    assert "level with Rand U-Net (0.500, +0.000)" in line and "above Copy support mask (0.400, +0.100)" in line


# -- bad arguments are refused, naming the value -----------------------------------------------------------------

@pytest.mark.parametrize("column", ["dsc", "nsd", "nsd_voxel"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_summarize_refuses_a_non_finite_score_naming_task_method_column_draw_and_case(column: str,
                                                                                        bad: float) -> None:
    rows = [_row("hyper_unet", "a", 0.5), _row("hyper_unet", "b", 0.6, draw=3), _row("rand_unet", "a", 0.2)]
    rows[1][column] = bad
    with pytest.raises(ValueError, match=rf"{column} of task '{LIVER}', method 'hyper_unet' is not finite "
                                         rf"\({bad}\) at draw 3, case 'b'"):
        summarize(rows)


def test_summarize_refuses_a_row_without_a_score_column_naming_it() -> None:
    rows = [_row("hyper_unet", "a", 0.5), {"task": LIVER, "method": "rand_unet", "case": "a", "dsc": 0.2}]
    with pytest.raises(ValueError, match=r"results row 1 has no column\(s\) \['nsd', 'nsd_voxel'\]"):
        summarize(rows)


def test_tables_refuse_a_summary_with_a_non_finite_number_naming_it() -> None:
    good = Stat(0.3, 0.1, 0.5, 0.1, 0.5, 0.1, 3, 3, SCOPE_TEST)
    summary = {(LIVER, "hyper_unet"): Stat(math.nan, math.nan, 0.5, 0.1, 0.5, 0.1, 3, 3, SCOPE_TEST),
               (LIVER, "rand_unet"): good}
    for f in (lambda: comparison_table(summary, "table1_ct"), lambda: what_held(summary), lambda: reading(summary)):
        with pytest.raises(ValueError, match=rf"task '{LIVER}', method 'hyper_unet': dsc is not finite \(nan\)"):
            f()


def test_comparison_table_refuses_an_unknown_table_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"table must be one of \['table1_ct', 'table2_mri'\], got 'bogus'"):
        comparison_table({}, "bogus")
