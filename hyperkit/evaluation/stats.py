"""Paired differences with bootstrap confidence intervals.

Two methods (or two models) scored on the same (task, draw, case) triples are compared by
the mean of their paired differences; its 95 % confidence interval is the percentile
bootstrap over the pairs (2,000 resamples, seeded through :mod:`hyperkit.seeds`), so that
a reader can tell an effect from the noise of a few cases and draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from hyperkit.seeds import numpy_rng

__all__ = ["Paired", "paired_difference", "pair_rows", "in_test_split", "compared", "pooled", "paired_starts"]


@dataclass(frozen=True)
class Paired:
    """The mean of ``a - b`` over ``n`` pairs and its bootstrap CI.

    Attributes:
        a, b: means of the two sides.
        diff: mean of the paired differences ``a - b``.
        lo, hi: 95 % percentile-bootstrap interval of ``diff``.
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


def paired_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> Paired:
    """Mean of ``a - b`` with a percentile-bootstrap CI over the pairs.

    Args:
        a, b: scores of the same items, ``(n,)`` each.
        resamples: bootstrap resamples.
        seed: seed of the resampling stream.
        level: coverage of the interval.

    Raises:
        ValueError: lengths differ, no pairs, ``resamples < 1`` or ``level`` outside (0, 1).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need two 1-D arrays of one length, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("paired_difference needs at least one pair, got 0")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d = x - y
    idx = numpy_rng(seed, "bootstrap", d.size).integers(0, d.size, size=(resamples, d.size))
    means = d[idx].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return Paired(float(x.mean()), float(y.mean()), float(d.mean()), float(lo), float(hi), int(d.size))


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


def pair_rows(a_rows: Iterable[Mapping[str, Any]], b_rows: Iterable[Mapping[str, Any]], metric: str = "dsc",
              method_a: str = "hyper_unet", method_b: str = "hyper_unet",
              test_only: bool = True) -> dict[str, tuple[list[float], list[float]]]:
    """``task -> (scores of a, scores of b)`` over the (draw, case) pairs both have.

    Args:
        a_rows, b_rows: results rows (:func:`~hyperkit.evaluation.protocol.read_results`).
        metric: ``dsc``, ``nsd`` or ``nsd_voxel``.
        method_a, method_b: the method of each side (the same results file may hold both).
        test_only: only the rows :func:`compared` keeps (over both sides' rows): a task's
            test-split cases where it has a test split, all its cases where it has none.
    """
    a_list, b_list = list(a_rows), list(b_rows)
    keep = compared([*a_list, *b_list]) if test_only else (lambda r: True)

    def index(rows: list[Mapping[str, Any]], method: str) -> dict[tuple[str, int, str], float]:
        return {(r["task"], int(r["draw"]), r["case"]): float(r[metric]) for r in rows
                if r["method"] == method and keep(r)}

    ia, ib = index(a_list, method_a), index(b_list, method_b)
    out: dict[str, tuple[list[float], list[float]]] = {}
    for key in sorted(set(ia) & set(ib)):
        xs, ys = out.setdefault(key[0], ([], []))
        xs.append(ia[key])
        ys.append(ib[key])
    return out


def pooled(pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> tuple[list[float], list[float]]:
    """The pairs of every task of :func:`pair_rows` as one ``(scores of a, scores of b)``, task by task."""
    return [x for a, _ in pairs.values() for x in a], [y for _, b in pairs.values() for y in b]


def paired_starts(rows: Iterable[Mapping[str, Any]], method_a: str, method_b: str, metric: str = "dsc",
                  keep: Callable[[Mapping[str, Any]], bool] | None = None) -> Paired | None:
    """Two starting points of limited-data fine-tuning compared paired (paper Figure 3).

    The starts of one (task, N, repeat) are fine-tuned on the same cases and scored on the same
    test cases; this is the mean of ``metric(method_a) - metric(method_b)`` over every (task, N,
    repeat, test case) both have, with its bootstrap CI (:func:`paired_difference`).

    Args:
        rows: rows of ``finetune.csv`` (:func:`~hyperkit.evaluation.finetune.read_finetune`).
        method_a, method_b: ``hyper_ft``, ``rand_ft`` or ``scratch_ft``.
        metric: a score column (``dsc``, ``nsd``).
        keep: which rows take part (e.g. ``lambda r: int(r["n"]) <= 4``); all when omitted.

    Returns:
        The comparison, or None when no pair exists.
    """
    score: dict[tuple[Any, ...], float] = {}
    for r in rows:
        if keep is None or keep(r):
            key = (r["task"], int(r["n"]), int(r["repeat"]), r["case"])
            score[key + (r["method"],)] = float(r[metric])
    keys = sorted({k[:4] for k in score if k[:4] + (method_a,) in score and k[:4] + (method_b,) in score})
    if not keys:
        return None
    return paired_difference([score[k + (method_a,)] for k in keys], [score[k + (method_b,)] for k in keys])
