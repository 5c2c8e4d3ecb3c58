"""What the paired-difference statistics promise, checked where test_evaluation.py's stats tests cannot fail
(found by the stats mutation audit): the seeded interval against a from-scratch reference of the two-way
bootstrap with its small-sample corrections (defaults, stream, order of draws and cases, widening of each
end about the mean), the mean and the pair count, the Welch-Satterthwaite df by hand, ``draw`` read as an
integer when pairing rows, and paired_starts' metric and strata."""

from __future__ import annotations

from typing import Hashable

import numpy as np
import pytest
from scipy import stats as sps

from hyperkit.evaluation.stats import (Unit, _two_way_means, effective_df, pair_rows, pair_units, paired_difference,
                                       paired_starts, paired_tasks)
from hyperkit.seeds import numpy_rng


def _first_seen(values: list[Hashable]) -> list[Hashable]:
    out: list[Hashable] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _reference_means(d: list[float], units: list[Unit], resamples: int, seed: int) -> np.ndarray:
    """The documented two-way bootstrap, written out with loops: per stratum (first seen first), the
    draws' then the cases' counts of n - 1 multinomial draws scaled by n / (n - 1), pairs weighted by
    (draw count) x (case count), resamples with no weight dropped."""
    rng = numpy_rng(seed, "bootstrap", "two-way", len(d))
    sums, counts = np.zeros(resamples), np.zeros(resamples)
    for s in _first_seen([u[0] for u in units]):
        idx = [i for i, u in enumerate(units) if u[0] == s]
        draws = _first_seen([units[i][1] for i in idx])
        cases = _first_seen([units[i][2] for i in idx])
        per_factor = []
        for n in (len(draws), len(cases)):
            m = n - 1 if n > 1 else n
            per_factor.append(rng.multinomial(m, [1 / n] * n, size=resamples) * (n / m))
        v, w = per_factor
        for i in idx:
            weight = v[:, draws.index(units[i][1])] * w[:, cases.index(units[i][2])]
            sums += weight * d[i]
            counts += weight
    keep = counts > 0
    return sums[keep] / counts[keep]


def _reference_df(d: list[float], units: list[Unit]) -> float:
    """Welch-Satterthwaite df of the module docstring, written out with loops."""
    total = denom = 0.0
    for s in _first_seen([u[0] for u in units]):
        idx = [i for i, u in enumerate(units) if u[0] == s]
        share = len(idx) / len(d)
        for k in (1, 2):
            levels = _first_seen([units[i][k] for i in idx])
            if len(levels) < 2:
                continue
            means = [np.mean([d[i] for i in idx if units[i][k] == lv]) for lv in levels]
            c = share ** 2 * np.var(means, ddof=1) / len(levels)
            total += c
            denom += c ** 2 / (len(levels) - 1)
    return total ** 2 / denom if denom > 0 else float("inf")


def _grid() -> tuple[list[float], list[Unit]]:
    """Two strata of unequal grids; draw and case labels first seen out of sorted order; skewed effects."""
    rng = np.random.default_rng(11)
    units: list[Unit] = [("t2", dr, c) for dr in ("d2", "d0", "d1") for c in ("z", "b", "m", "a")]
    units += [("t1", dr, c) for dr in (7, 3) for c in ("y", "x", "w")]
    d = (rng.exponential(0.1, len(units)) ** 2 - 0.01).tolist()
    return d, units


def test_default_interval_matches_a_reference_two_way_bootstrap() -> None:
    """Pins the defaults (2,000 resamples, seed 0, 95 %, small-sample on) and the whole seeded interval."""
    d, units = _grid()
    p = paired_difference(np.array(d) + 0.5, np.full(len(d), 0.5), units=units)
    means = _reference_means(d, units, 2000, 0)
    lo, hi = np.percentile(means, [2.5, 97.5])
    mean = float(np.mean(d))
    df = _reference_df(d, units)
    assert 2 < df < 60
    k = sps.t.ppf(0.975, df) / sps.norm.ppf(0.975)
    assert p.diff == pytest.approx(mean, rel=1e-12)
    assert p.lo == pytest.approx(mean - k * (mean - lo), rel=1e-9)
    assert p.hi == pytest.approx(mean + k * (hi - mean), rel=1e-9)
    assert abs((p.hi - p.diff) - (p.diff - p.lo)) > 0.05 * (p.hi - p.lo)  # skewed: each end widened apart
    assert p.n == len(d)


def test_plain_interval_at_another_level_and_seed_matches_the_reference() -> None:
    """Pins ``seed``, ``resamples`` and ``level`` as passed, and no widening with ``small_sample=False``."""
    d, units = _grid()
    p = paired_difference(d, [0.0] * len(d), units=units, seed=4, resamples=300, level=0.8, small_sample=False)
    plain = _two_way_means(np.array(d), units, 300, numpy_rng(4, "bootstrap", "two-way", len(d)), small_sample=False)
    lo, hi = np.percentile(plain, [10, 90])
    assert (p.lo, p.hi) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))


def test_effective_df_matches_the_reference_on_the_grid() -> None:
    """Pins effective_df against the loop-written Welch-Satterthwaite formula on two unequal strata."""
    d, units = _grid()
    assert effective_df(d, units) == pytest.approx(_reference_df(d, units), rel=1e-12)


def test_effective_df_uses_factor_means_by_hand() -> None:
    """Pins the factor *means* (not medians): 3 draws x 2 cases with case means equal, df = 2 by hand.

    d by draw: (0, 1), (0, 1), (3, 1). Draw means (.5, .5, 2), var 0.75, c = 0.75 / 3 = 0.25; case means
    (1, 1), c = 0 (case medians (0, 1) would add a component). df = 0.25^2 / (0.25^2 / 2) = 2."""
    units: list[Unit] = [("t", dr, c) for dr in range(3) for c in range(2)]
    assert effective_df([0.0, 1.0, 0.0, 1.0, 3.0, 1.0], units) == pytest.approx(2.0, rel=1e-12)


def test_diff_is_the_mean_of_the_differences_and_n_counts_every_pair() -> None:
    """Pins diff as the mean (a skewed 0, 0, 0.9 gives 0.3, not the median 0) and n over repeated units."""
    p = paired_difference([0.0, 0.0, 0.9], [0.0, 0.0, 0.0], units=[("t", 0, "a"), ("t", 0, "a"), ("t", 0, "b")])
    assert (p.a, p.b, p.diff, p.n) == (pytest.approx(0.3), 0.0, pytest.approx(0.3), 3)


def test_pairing_reads_draw_as_an_integer() -> None:
    """Pins ``int(draw)``: a CSV's "2" pairs with an int 2, and draws sort as numbers (2 before 10)."""
    def row(method: str, draw: object, v: float) -> dict:
        return {"task": "t", "method": method, "draw": draw, "case": "c", "in_test_split": True, "dsc": v}
    a = [row("hyper_unet", 10, 0.9), row("hyper_unet", 2, 0.8)]
    b = [row("rand_unet", "10", 0.5), row("rand_unet", "2", 0.4)]
    assert pair_rows(a, b, method_a="hyper_unet", method_b="rand_unet") == {"t": ([0.8, 0.9], [0.4, 0.5])}
    assert pair_units(a, b, method_a="hyper_unet", method_b="rand_unet") == {"t": [("t", 2, "c"), ("t", 10, "c")]}


def _ft(task: str, method: str, case: str, dsc: float, nsd: float) -> dict:
    return {"task": task, "n": "2", "repeat": "0", "case": case, "method": method, "dsc": str(dsc), "nsd": str(nsd)}


def test_paired_starts_scores_the_named_metric() -> None:
    """Pins ``metric``: the NSD column is compared when asked, not DSC."""
    rows = [_ft("t", "hyper_ft", "a", 0.9, 0.3), _ft("t", "rand_ft", "a", 0.1, 0.2)]
    p = paired_starts(rows, "hyper_ft", "rand_ft", metric="nsd")
    assert p is not None and p.diff == pytest.approx(0.1) and (p.a, p.b) == (pytest.approx(0.3), pytest.approx(0.2))


def test_paired_starts_keeps_each_task_a_stratum() -> None:
    """Pins the task as the stratum: task A at +0.2 on 2 cases and B at 0 on 4 pool to 0.2 * 2 / 6 in
    every resample (no spread within a task, df inf), so lo = diff = hi; one stratum would mix the cases."""
    rows = [r for c in ("a1", "a2") for r in (_ft("A", "hyper_ft", c, 0.7, 0), _ft("A", "rand_ft", c, 0.5, 0))]
    rows += [r for c in ("b1", "b2", "b3", "b4") for r in (_ft("B", "hyper_ft", c, 0.5, 0),
                                                           _ft("B", "rand_ft", c, 0.5, 0))]
    p = paired_starts(rows, "hyper_ft", "rand_ft")
    assert p is not None and p.n == 6
    assert (p.lo, p.diff, p.hi) == (pytest.approx(0.2 / 3), pytest.approx(0.2 / 3), pytest.approx(0.2 / 3))


# -- bad arguments are refused, naming the value -----------------------------------------------------------------

@pytest.mark.parametrize("a, b, match", [([1.0, float("nan")], [0.0, 0.0], r"a\[1\] = nan"),
                                         ([1.0, 2.0], [0.0, -float("inf")], r"b\[1\] = -inf"),
                                         ([float("inf"), 2.0], [0.0, 0.0], r"a\[0\] = inf")])
def test_paired_difference_refuses_non_finite_scores_naming_side_and_index(a: list, b: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paired_difference(a, b)


def _rows() -> list[dict]:
    return [{"task": "t", "method": m, "draw": d, "case": c, "in_test_split": True, "dsc": v + 0.01 * d}
            for m, v in (("hyper_unet", 0.8), ("rand_unet", 0.5)) for d in (0, 1) for c in ("x", "y", "z")]


@pytest.mark.parametrize("metric", ["DSC", "bogus"])
def test_pairing_refuses_a_metric_that_is_not_a_column_naming_it_and_the_columns(metric: str) -> None:
    rows = _rows()
    for f in (pair_rows, pair_units, paired_tasks):
        with pytest.raises(ValueError, match=rf"metric '{metric}' is not a column.*'dsc'"):
            f(rows, rows, metric, "hyper_unet", "rand_unet")
    ft = [_ft("t", "hyper_ft", "a", 0.9, 0.3), _ft("t", "rand_ft", "a", 0.1, 0.2)]
    with pytest.raises(ValueError, match=rf"metric '{metric}' is not a column.*'dsc', 'method', 'n'"):
        paired_starts(ft, "hyper_ft", "rand_ft", metric=metric)


def test_paired_tasks_refuses_one_task_id_as_a_string() -> None:
    rows = _rows()
    with pytest.raises(ValueError, match=r"tasks must be a list of task ids, got the string 't' \(pass \['t'\]\)"):
        paired_tasks(rows, rows, "dsc", "hyper_unet", "rand_unet", tasks="t")
    assert set(paired_tasks(rows, rows, "dsc", "hyper_unet", "rand_unet", tasks=["t"])) == {"t"}


def test_pairing_refuses_a_non_finite_score_naming_task_draw_and_case() -> None:
    rows = _rows()
    rows[4]["dsc"] = float("nan")  # hyper_unet, draw 1, case y
    with pytest.raises(ValueError, match=r"dsc of hyper_unet is not finite \(nan\) at task 't', draw 1, case 'y'"):
        paired_tasks(rows, rows, "dsc", "hyper_unet", "rand_unet")
    ft = [_ft("t", "hyper_ft", "a", 0.9, 0.3), _ft("t", "rand_ft", "a", float("inf"), 0.2)]
    with pytest.raises(ValueError, match=r"dsc of rand_ft is not finite \(inf\) at task 't', n 2, repeat 0, case 'a'"):
        paired_starts(ft, "hyper_ft", "rand_ft")


def test_a_method_without_rows_gives_no_pairs_not_an_error() -> None:
    """Kept on purpose: the report reads ``{}`` / None as "not evaluated" (``hyperkit evaluate --methods``)."""
    rows = [r for r in _rows() if r["method"] == "hyper_unet"]
    assert paired_tasks(rows, rows, "dsc", "hyper_unet", "rand_unet", pool="all") == {}
    assert paired_starts([_ft("t", "hyper_ft", "a", 0.9, 0.3)], "hyper_ft", "scratch_ft") is None
