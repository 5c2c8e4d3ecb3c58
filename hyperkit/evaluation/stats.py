"""Paired differences with bootstrap confidence intervals.

Two methods (or two models) scored on the same (task, draw, case) triples are compared by
the mean of their paired differences. Its 95 % confidence interval is a percentile
bootstrap (2,000 resamples, seeded through :mod:`hyperkit.seeds`) that resamples what is
random in the protocol: within each task, the support draws and the test cases, each
independently (a two-way bootstrap). Every draw scores the same few test cases, so the rows
of one task are not independent pairs: resampling them as if they were gives intervals far
too narrow.

A target has only 4-10 test cases and 5 draws, and a percentile bootstrap over so few units
is too narrow as well: it under-states their spread by the factor ``(n - 1) / n`` on the
variance and has normal rather than t tails. Two small-sample corrections therefore apply
(``small_sample=True``, the default): each resample draws ``n - 1`` of the ``n`` draws and
cases (weighted back to ``n``), which makes the bootstrap variance of a mean unbiased; and the
interval's ends are moved away from the mean by ``t(df) / z``, with ``df`` the
Welch-Satterthwaite degrees of freedom of the case and draw components
(:func:`effective_df`). On simulated protocols (``benchmarks/interval_coverage.py``; 5 draws of
4 or 10 test cases, one target or ten pooled) a nominal 95 % interval covered 45-69 % over rows,
82-95 % with the plain two-way bootstrap, and 94-97 % with the corrections (99-100 % when the
cases and draws do not differ at all); with strongly skewed effects 92-96 % for one target, 94-96 %
pooled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

from hyperkit.seeds import numpy_rng

__all__ = ["Paired", "Unit", "paired_difference", "effective_df", "pair_rows", "pair_units", "paired_tasks",
           "in_test_split", "compared", "paired_starts", "printed_above_zero", "ALL_TASKS"]

ALL_TASKS = "*all tasks*"
"""The key of :func:`paired_tasks` under which every task's pairs are pooled (no task id looks like it)."""

Unit = tuple[Hashable, Hashable, Hashable]
"""What a pair belongs to: ``(stratum, draw, case)``, e.g. ``(task, support draw, test case)``."""


@dataclass(frozen=True)
class Paired:
    """The mean of ``a - b`` over ``n`` pairs and its bootstrap CI.

    Attributes:
        a, b: means of the two sides.
        diff: mean of the paired differences ``a - b``.
        lo, hi: 95 % bootstrap interval of ``diff`` (:func:`paired_difference`).
        n: pairs.
    """

    a: float
    b: float
    diff: float
    lo: float
    hi: float
    n: int

    def text(self, digits: int = 3) -> str:
        """``+0.012 [-0.004, +0.030]``."""
        f = f"{{:+.{digits}f}}"
        return f"{f.format(self.diff)} [{f.format(self.lo)}, {f.format(self.hi)}]"

    @property
    def above_zero(self) -> bool:
        """The interval lies above 0 as :meth:`text` prints it (:func:`printed_above_zero`)."""
        return printed_above_zero(self.lo)

    @property
    def below_zero(self) -> bool:
        """The interval lies below 0 as :meth:`text` prints it (an upper end shown as ``-0.000`` touches 0)."""
        return printed_above_zero(-self.hi)


def printed_above_zero(lo: float, digits: int = 3) -> bool:
    """The verdict rule of the kit: a lower end ``lo`` lies above 0 as printed with ``digits``
    decimals, so an interval shown as ``[+0.000, ...]`` touches 0 and does not count."""
    return round(lo, digits) > 0


def _strata(units: Sequence[Unit]) -> dict[Hashable, list[tuple[int, Hashable, Hashable]]]:
    """``stratum -> [(pair index, draw, case)]`` in the order of ``units``."""
    strata: dict[Hashable, list[tuple[int, Hashable, Hashable]]] = {}
    for i, (stratum, draw, case) in enumerate(units):
        strata.setdefault(stratum, []).append((i, draw, case))
    return strata


def _two_way_means(d: np.ndarray, units: Sequence[Unit], resamples: int, rng: np.random.Generator,
                   small_sample: bool = True) -> np.ndarray:
    """Bootstrap means of ``d`` resampling, within each stratum, its draws and its cases independently.

    A resample weights cell (draw i, case j) of a stratum by (times draw i was drawn) x (times
    case j was drawn); the mean is over every stratum's weighted pairs. With ``small_sample`` a
    resample makes ``n - 1`` draws (with replacement) from a stratum's ``n`` support draws, and
    likewise from its cases, and scales the counts by ``n / (n - 1)``: the resampled mean's
    variance is then unbiased, ``s^2 / n`` per component, instead of ``(n - 1) / n`` of it, and
    every stratum keeps its weight. Resamples whose cells
    hold no pair (an incomplete draw x case grid) are dropped.
    """
    sums, counts = np.zeros(resamples), np.zeros(resamples)

    def weights(n: int) -> np.ndarray:
        m = n - 1 if small_sample and n > 1 else n
        return rng.multinomial(m, np.full(n, 1 / n), size=resamples).astype(float) * (n / m)

    for members in _strata(units).values():
        draws = {g: k for k, g in enumerate(dict.fromkeys(m[1] for m in members))}
        cases = {g: k for k, g in enumerate(dict.fromkeys(m[2] for m in members))}
        total, count = np.zeros((len(draws), len(cases))), np.zeros((len(draws), len(cases)))
        for i, draw, case in members:
            total[draws[draw], cases[case]] += d[i]
            count[draws[draw], cases[case]] += 1
        v, w = weights(len(draws)), weights(len(cases))
        sums += np.einsum("rd,dc,rc->r", v, total, w)
        counts += np.einsum("rd,dc,rc->r", v, count, w)
    return sums[counts > 0] / counts[counts > 0]


def effective_df(d: Sequence[float], units: Sequence[Unit]) -> float:
    """Welch-Satterthwaite degrees of freedom of the mean of ``d`` over its draws and cases.

    The variance of the pooled mean is estimated as a sum of components, one per stratum and
    factor (draws, cases): ``c = w^2 var(factor means) / n``, with ``w`` the stratum's share of
    the pairs and ``n`` the factor's levels in it; ``df = (sum c)^2 / sum(c^2 / (n - 1))``. One
    target whose test cases dominate gets about ``cases - 1``; many pooled targets get many.
    ``inf`` when no component has two levels or every component is 0 (nothing to widen).

    Args:
        d: the paired differences ``(n,)``.
        units: per pair its ``(stratum, draw, case)``.

    Raises:
        ValueError: not one unit per difference.
    """
    x = np.asarray(d, dtype=float)
    if x.ndim != 1 or len(units) != x.size:
        raise ValueError(f"effective_df needs one (stratum, draw, case) per difference: {x.shape} differences, "
                         f"got {len(units)} units")
    total, denom = 0.0, 0.0
    for members in _strata(units).values():
        share = len(members) / x.size
        for factor in (1, 2):  # draws, cases
            groups: dict[Hashable, list[float]] = {}
            for i, *levels in members:
                groups.setdefault(levels[factor - 1], []).append(float(x[i]))
            n = len(groups)
            if n < 2:
                continue
            c = share ** 2 * float(np.var([np.mean(g) for g in groups.values()], ddof=1)) / n
            total += c
            denom += c * c / (n - 1)
    return total * total / denom if denom > 0 else float("inf")


def paired_difference(a: Sequence[float], b: Sequence[float], *, units: Sequence[Unit] | None = None,
                      resamples: int = 2000, seed: int = 0, level: float = 0.95,
                      small_sample: bool = True) -> Paired:
    """Mean of ``a - b`` with a percentile-bootstrap CI (module docstring: the two-way bootstrap
    and its small-sample corrections).

    Args:
        a, b: scores of the same items, ``(n,)`` each.
        units: per pair, its ``(stratum, draw, case)`` (:func:`paired_tasks` passes ``(task,
            draw, case)``): the bootstrap then resamples, within each stratum, the draws and the
            cases independently, so that the pairs of one case scored in five draws count as one
            case (and those of one draw as one draw), not as independent pairs. ``None``: the
            pairs are independent items (one stratum, one draw, every pair its own case; only
            right when each pair is its own case and draw).
        resamples: bootstrap resamples.
        seed: seed of the resampling stream.
        level: coverage of the interval.
        small_sample: resample ``n - 1`` of ``n`` units and widen the ends by ``t(df) / z``
            (:func:`effective_df`); ``False``: the plain percentile interval (the kit until
            2026-12-04 evening; kept for ``benchmarks/interval_coverage.py``).

    Raises:
        ValueError: lengths differ, no pairs, a score that is not finite (NaN or inf: named by its
            side and index), ``resamples < 1``, ``level`` outside (0, 1), or ``units`` not one
            ``(stratum, draw, case)`` per pair.
    """
    from scipy import stats as sps

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need two 1-D arrays of one length, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("paired_difference needs at least one pair, got 0")
    for side, v in (("a", x), ("b", y)):
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise ValueError(f"paired scores must be finite: {side}[{bad[0]}] = {v[bad[0]]} "
                             f"({bad.size} non-finite of {v.size})")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d = x - y
    if units is None:
        units = [(0, 0, i) for i in range(d.size)]
    else:
        units = list(units)
        bad = next((u for u in units if not isinstance(u, tuple) or len(u) != 3), None)
        if len(units) != d.size or bad is not None:
            raise ValueError(f"units must be one (stratum, draw, case) per pair: {d.size} pairs, "
                             f"got {len(units)} units" + (f", one of them {bad!r}" if bad is not None else ""))
    means = _two_way_means(d, units, resamples, numpy_rng(seed, "bootstrap", "two-way", d.size), small_sample)
    tail = (1.0 - level) / 2
    lo, hi = np.percentile(means, [tail * 100, 100 - tail * 100])
    mean = float(d.mean())
    if small_sample:
        df = effective_df(d, units)
        if np.isfinite(df):
            widen = float(sps.t.ppf(1 - tail, df) / sps.norm.ppf(1 - tail))
            lo, hi = mean - widen * (mean - lo), mean + widen * (hi - mean)
    return Paired(float(x.mean()), float(y.mean()), mean, float(lo), float(hi), int(d.size))


def in_test_split(row: Mapping[str, Any]) -> bool:
    """Whether a results row scores a case of its task's test split (rows without the field do)."""
    return row.get("in_test_split", True) in (True, "True", 1)


def compared(rows: Iterable[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], bool]:
    """Which of ``rows`` a summary or comparison scores: a task's test-split cases where the task
    has a test split, every case of a task without one (fewer than 3 cases). The one rule of
    Tables 1-2 (:func:`~hyperkit.evaluation.tables.summarize`), :func:`pair_rows` and the
    report's claims; ``rows`` is read once, when called."""
    split_tasks = {r["task"] for r in rows if in_test_split(r)}
    return lambda r: in_test_split(r) or r["task"] not in split_tasks


def _check_metric(rows: Iterable[tuple[int, Mapping[str, Any]]], metric: str, side: str = "rows") -> None:
    """Each of the ``(index, row)`` has the column ``metric``, else a ValueError naming it and the row's columns."""
    for i, r in rows:
        if metric not in r:
            raise ValueError(f"metric {metric!r} is not a column of the {side} (row {i} has columns "
                             f"{sorted(map(str, r))})")


def _matched(a_rows: Iterable[Mapping[str, Any]], b_rows: Iterable[Mapping[str, Any]], metric: str,
             method_a: str, method_b: str, test_only: bool) -> list[tuple[tuple[str, int, str], float, float]]:
    """``[((task, draw, case), score of a, score of b)]`` over the triples both sides have, sorted.

    Raises:
        ValueError: a row without the column ``metric``, or a score that is not finite (named by
            task, draw and case).
    """
    a_list, b_list = list(a_rows), list(b_rows)
    _check_metric(enumerate(a_list), metric, "a rows")
    _check_metric(enumerate(b_list), metric, "b rows")
    keep = compared([*a_list, *b_list]) if test_only else (lambda r: True)

    def index(rows: list[Mapping[str, Any]], method: str) -> dict[tuple[str, int, str], float]:
        out = {(r["task"], int(r["draw"]), r["case"]): float(r[metric]) for r in rows
               if r["method"] == method and keep(r)}
        bad = next((k for k, v in out.items() if not np.isfinite(v)), None)
        if bad is not None:
            raise ValueError(f"{metric} of {method} is not finite ({out[bad]}) at task {bad[0]!r}, draw {bad[1]}, "
                             f"case {bad[2]!r}")
        return out

    ia, ib = index(a_list, method_a), index(b_list, method_b)
    return [(key, ia[key], ib[key]) for key in sorted(set(ia) & set(ib))]


def pair_rows(a_rows: Iterable[Mapping[str, Any]], b_rows: Iterable[Mapping[str, Any]], metric: str = "dsc",
              method_a: str = "hyper_unet", method_b: str = "hyper_unet",
              test_only: bool = True) -> dict[str, tuple[list[float], list[float]]]:
    """``task -> (scores of a, scores of b)`` over the (draw, case) pairs both have, sorted by (draw, case).

    Args:
        a_rows, b_rows: results rows (:func:`~hyperkit.evaluation.results_file.read_results`).
        metric: ``dsc``, ``nsd`` or ``nsd_voxel``.
        method_a, method_b: the method of each side (the same results file may hold both).
        test_only: only the rows :func:`compared` keeps (over both sides' rows): a task's
            test-split cases where it has a test split, all its cases where it has none.

    A method without rows on its side gives no pairs (``{}``), not an error: the report reads
    that as "not evaluated" (``hyperkit evaluate --methods`` may leave a method out).

    Raises:
        ValueError: a row without the column ``metric`` (named with the columns the row has), or a
            score that is not finite (named by task, draw and case).
    """
    out: dict[str, tuple[list[float], list[float]]] = {}
    for key, x, y in _matched(a_rows, b_rows, metric, method_a, method_b, test_only):
        xs, ys = out.setdefault(key[0], ([], []))
        xs.append(x)
        ys.append(y)
    return out


def pair_units(a_rows: Iterable[Mapping[str, Any]], b_rows: Iterable[Mapping[str, Any]], metric: str = "dsc",
               method_a: str = "hyper_unet", method_b: str = "hyper_unet",
               test_only: bool = True) -> dict[str, list[Unit]]:
    """``task -> [(task, draw, case)]`` of the pairs of :func:`pair_rows` (same arguments), in its
    order: the ``units`` of :func:`paired_difference` (:func:`paired_tasks` does both steps).

    Raises:
        ValueError: a row without the column ``metric``, or a score that is not finite.
    """
    out: dict[str, list[Unit]] = {}
    for key, _, _ in _matched(a_rows, b_rows, metric, method_a, method_b, test_only):
        out.setdefault(key[0], []).append(key)
    return out


def paired_tasks(a_rows: Iterable[Mapping[str, Any]], b_rows: Iterable[Mapping[str, Any]], metric: str = "dsc",
                 method_a: str = "hyper_unet", method_b: str = "hyper_unet", *, test_only: bool = True,
                 tasks: Iterable[str] | None = None, pool: str | None = None) -> dict[str, Paired]:
    """``task -> a - b`` (:func:`paired_difference` over the task's draws and cases), and the tasks pooled.

    Args:
        a_rows, b_rows, metric, method_a, method_b, test_only: as :func:`pair_rows`.
        tasks: only these tasks, an iterable of task ids (those without pairs are left out); all
            when omitted.
        pool: when given, the key under which every task's pairs pooled are added (each task
            a stratum of the bootstrap); not added when no task has pairs.

    Raises:
        ValueError: ``pool`` is the name of a task that has pairs, ``tasks`` is one string (not a
            list of task ids), a row without the column ``metric``, or a score that is not finite.
    """
    if isinstance(tasks, str):
        raise ValueError(f"tasks must be a list of task ids, got the string {tasks!r} (pass [{tasks!r}])")
    wanted = None if tasks is None else set(tasks)
    matched = [m for m in _matched(a_rows, b_rows, metric, method_a, method_b, test_only)
               if wanted is None or m[0][0] in wanted]
    by_task: dict[str, list[tuple[Unit, float, float]]] = {}
    for key, x, y in matched:
        by_task.setdefault(key[0], []).append((key, x, y))
    if pool is not None and pool in by_task:
        raise ValueError(f"pool must not be a task's name, got {pool!r}")
    out = {t: _paired(ms) for t, ms in by_task.items()}
    if pool is not None and matched:
        out[pool] = _paired(matched)
    return out


def _paired(matched: Sequence[tuple[Unit, float, float]]) -> Paired:
    return paired_difference([m[1] for m in matched], [m[2] for m in matched], units=[m[0] for m in matched])


def paired_starts(rows: Iterable[Mapping[str, Any]], method_a: str, method_b: str, metric: str = "dsc",
                  keep: Callable[[Mapping[str, Any]], bool] | None = None) -> Paired | None:
    """Two starting points of limited-data fine-tuning compared paired (paper Figure 3).

    The starts of one (task, N, repeat) are fine-tuned on the same cases and scored on the same
    test cases; this is the mean of ``metric(method_a) - metric(method_b)`` over every (task, N,
    repeat, test case) both have, with its bootstrap CI (:func:`paired_difference`: per task,
    the (N, repeat) draws and the test cases resampled).

    Args:
        rows: rows of ``finetune.csv`` (:func:`~hyperkit.evaluation.finetune.read_finetune`).
        method_a, method_b: ``hyper_ft``, ``rand_ft`` or ``scratch_ft``.
        metric: a score column (``dsc``, ``nsd``).
        keep: which rows take part (e.g. ``lambda r: int(r["n"]) <= 4``); all when omitted.

    Returns:
        The comparison, or None when no pair exists (also when a method has no rows: the report
        reads that as "not run").

    Raises:
        ValueError: a row ``keep`` accepts has no column ``metric``, or a compared score is not
            finite (named by task, n, repeat and case).
    """
    score: dict[tuple[Any, ...], float] = {}
    for i, r in enumerate(rows):
        if keep is None or keep(r):
            _check_metric([(i, r)], metric)
            key = (r["task"], int(r["n"]), int(r["repeat"]), r["case"])
            score[key + (r["method"],)] = float(r[metric])
    keys = sorted({k[:4] for k in score if k[:4] + (method_a,) in score and k[:4] + (method_b,) in score})
    if not keys:
        return None
    bad = next((k + (m,) for k in keys for m in (method_a, method_b) if not np.isfinite(score[k + (m,)])), None)
    if bad is not None:
        raise ValueError(f"{metric} of {bad[4]} is not finite ({score[bad]}) at task {bad[0]!r}, n {bad[1]}, "
                         f"repeat {bad[2]}, case {bad[3]!r}")
    return paired_difference([score[k + (method_a,)] for k in keys], [score[k + (method_b,)] for k in keys],
                             units=[(k[0], k[1:3], k[3]) for k in keys])
