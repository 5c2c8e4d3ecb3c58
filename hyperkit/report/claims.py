"""The paper's claims, each with a verdict computed from a run's results and a confidence interval.

Every verdict follows one rule (:data:`RULE`): a claim **holds** when the 95 % bootstrap
interval of the paired difference that measures it lies entirely on the paper's side of 0,
**does not hold** when the interval includes 0 or lies on the other side, and is **not
measured** when the run has no results for it. The differences and intervals come from
:mod:`hyperkit.evaluation.stats` (one-shot and fine-tuning results) or from the rows that
:func:`hyperkit.evaluation.ablation.ablation_rows` already computed (ablations); nothing here
re-implements a statistic.

The functions take parsed rows (``read_results``, ``read_ablation``, ``read_finetune``) or
``None`` for a missing file, so that they can be checked on inputs whose answer is known.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from hyperkit.evaluation.stats import (ALL_TASKS, Paired, compared, paired_difference, paired_starts, paired_tasks,
                                       printed_above_zero)
from hyperkit.evaluation.tables import TABLES, paper_columns, paper_tables

__all__ = ["HOLDS", "FAILS", "NOT_MEASURED", "VERDICTS", "RULE", "Verdict", "ORGANS", "TUMOURS_VESSELS",
           "ABLATION_CLAIMS", "FINETUNE_NS", "FINETUNE_BASELINES", "hyper_above_rand", "organs_above_tumours",
           "ct_to_mri", "ablation_effect", "hyper_init_beats_random", "all_claims"]

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"
VERDICTS: tuple[str, ...] = (HOLDS, FAILS, NOT_MEASURED)

#: the rule every verdict follows, as the report states it
RULE = ("A claim **holds** when the 95 % confidence interval of the paired difference that measures it "
        "(bootstrap, 2,000 resamples; each target's support draws and test cases resampled "
        "independently, with small-sample corrections: n - 1 of n units per resample, the ends widened "
        "by t(df) / z) lies entirely on the paper's side of 0 as printed (3 decimals); it "
        "**does not hold** when the interval includes 0 or lies on the other side; it is **not measured** "
        "when this run has no results for it. A claim about every target holds when it holds on each "
        "target measured. The paper's numbers are its published means (it gives no intervals).")

#: Table 1 columns the paper calls homogeneous organs, and its tumour and vessel columns
ORGANS: tuple[str, ...] = ("liver", "spleen")
TUMOURS_VESSELS: tuple[str, ...] = ("hepatic_vessels", "lung_tumour", "colon_tumour")
#: ablation variant -> (claim key, the paper's claim, its table)
ABLATION_CLAIMS: dict[str, tuple[str, str, str]] = {
    "step": ("gradient_step", "The gradient step after generation helps (Appendix A.1)", "table4_gradient_step"),
    "norm": ("task_norm", "The LayerNorm of z_task matters (Appendix A.2)", "table5_task_norm"),
    "pe": ("task_pe", "Task-specific positional codes matter (Appendix A.3)", "table6_task_pe"),
}
#: the sizes of the limited-data claim
FINETUNE_NS: tuple[int, ...] = (2, 3, 4)
#: the fine-tuning starts a generated U-Net's start is compared with, as the claims name them
FINETUNE_BASELINES: dict[str, str] = {"rand_ft": "pretrained initialisation (trained encoder, random decoder)",
                                      "scratch_ft": "random initialisation (a U-Net from scratch)"}


@dataclass(frozen=True)
class Verdict:
    """One claim of the paper and what this run says about it.

    Attributes:
        key: short name (``hyper_above_rand``).
        claim: the paper's claim, in words.
        measure: what is compared (the difference and its sign convention).
        verdict: :data:`HOLDS`, :data:`FAILS` or :data:`NOT_MEASURED`.
        kit: the kit's number with its 95 % interval (``—`` when not measured).
        paper: the paper's number.
        detail: per target or per N, or why it was not measured.
        source: the key of :data:`hyperkit.report.cells.CELLS` that made the numbers.
        files: the result files it was computed from (relative to the run folder).
    """

    key: str
    claim: str
    measure: str
    verdict: str
    kit: str
    paper: str
    detail: str
    source: str
    files: tuple[str, ...] = ()


def _decide(lo: float) -> str:
    """The one verdict rule (:data:`RULE`): holds when the interval's lower end ``lo``, as the report
    prints it (:meth:`~hyperkit.evaluation.stats.Paired.text`, 3 decimals), is above 0: an interval
    shown as ``[+0.000, ...]`` touches 0 and does not hold."""
    return HOLDS if printed_above_zero(lo) else FAILS


def _columns(rows: Sequence[Mapping[str, Any]], tables: Sequence[str]) -> dict[str, str]:
    """Paper column -> kit task, for the columns of ``tables`` that ``rows`` hold."""
    return paper_columns({r["task"] for r in rows}, tables)


def _paper_columns(tables: Sequence[str]) -> list[str]:
    return [c for t in tables for c in paper_tables()[t] if c != "caption"]


def _paper_dsc(column: str, method: str) -> float | None:
    for table in TABLES:
        entry = paper_tables()[table].get(column, {}).get(method)
        if entry:
            return float(entry["dsc"][0])
    return None


def _missing(rows: Sequence[Any] | None, what: str, files: Sequence[str]) -> str:
    """Why a claim was not measured: its file is absent, or holds none of ``what``."""
    names = ", ".join(f"`{f}`" for f in files)
    return f"{names} is not in this run" if rows is None else f"{names} has no {what}"


def _per_target(rows: Sequence[Mapping[str, Any]], tables: Sequence[str]) -> dict[str, Paired]:
    """Paper column -> paired Hyper U-Net − Rand U-Net DSC over the same (draw, test case)."""
    cols = _columns(rows, tables)
    per = paired_tasks(rows, rows, "dsc", method_a="hyper_unet", method_b="rand_unet", tasks=cols.values())
    return {col: per[task] for col, task in cols.items() if task in per}


def _not_measured(key: str, claim: str, measure: str, paper: str, why: str, source: str,
                  files: Sequence[str]) -> Verdict:
    return Verdict(key, claim, measure, NOT_MEASURED, "—", paper, why, source, tuple(files))


def hyper_above_rand(rows: Sequence[Mapping[str, Any]] | None, files: Sequence[str] = ("eval/results.csv",)) -> Verdict:
    """The Hyper U-Net is above the Rand U-Net on every held-out target of Tables 1-2 (DSC)."""
    claim = "The Hyper U-Net is above the Rand U-Net on every held-out target (Tables 1-2)"
    measure = "Hyper U-Net − Rand U-Net DSC, paired over the same support draws and test cases, per target"
    cols = _paper_columns(TABLES)
    gaps = [(_paper_dsc(c, "hyper_unet") or 0.0) - (_paper_dsc(c, "rand_unet") or 0.0) for c in cols]
    paper = f"above on {sum(g > 0 for g in gaps)} of {len(gaps)} targets (mean {statistics.fmean(gaps):+.3f})"
    per = _per_target(rows or [], TABLES)
    if not per:
        return _not_measured("hyper_above_rand", claim, measure, paper,
                             _missing(rows, "Hyper U-Net and Rand U-Net rows of a Table 1-2 target", files),
                             "one_shot", files)
    above = [c for c, p in per.items() if _decide(p.lo) == HOLDS]
    verdict = HOLDS if len(above) == len(per) else FAILS
    worst = min(per, key=lambda c: per[c].lo)
    kit = (f"interval above 0 on {len(above)} of {len(per)} targets measured; lowest: {worst} "
           f"{per[worst].text()}")
    detail = "; ".join(f"{c} {p.text()}" for c, p in per.items())
    absent = [c for c in cols if c not in per]
    if absent:
        detail += f". Not measured: {', '.join(absent)}"
    return Verdict("hyper_above_rand", claim, measure, verdict, kit, paper, detail, "one_shot", tuple(files))


def _hyper_by_draw(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, list[float]]]:
    """``task -> draw -> Hyper U-Net DSC of the draw's test cases, ordered by case`` (every case of a
    task without a test split: :func:`~hyperkit.evaluation.stats.compared`)."""
    cases: dict[str, dict[int, dict[str, float]]] = {}
    keep = compared(rows)
    for r in rows:
        if r["method"] == "hyper_unet" and keep(r):
            cases.setdefault(r["task"], {}).setdefault(int(r["draw"]), {})[r["case"]] = float(r["dsc"])
    return {t: {d: [v[c] for c in sorted(v)] for d, v in sorted(by.items())} for t, by in cases.items()}


def _group_vectors(scores: Mapping[str, Mapping[int, list[float]]],
                   groups: Sequence[Sequence[str]]) -> tuple[list[list[float]], list[tuple[int, int]]]:
    """Each group's mean DSC at every (draw, k-th test case) that all tasks of all groups have, and
    those positions ``(draw, k)`` in the same order.

    ``scores`` is :func:`_hyper_by_draw`'s. A draw enters when every task has it; within it,
    positions ``k`` up to the fewest test cases of any task, so that position k always means the
    same draw in every group.
    """
    tasks = [t for g in groups for t in g]
    draws = sorted(set.intersection(*(set(scores[t]) for t in tasks)))
    out: list[list[float]] = [[] for _ in groups]
    positions: list[tuple[int, int]] = []
    for d in draws:
        for k in range(min(len(scores[t][d]) for t in tasks)):
            positions.append((d, k))
            for vec, group in zip(out, groups):
                vec.append(statistics.fmean(scores[t][d][k] for t in group))
    return out, positions


def organs_above_tumours(rows: Sequence[Mapping[str, Any]] | None,
                         files: Sequence[str] = ("eval/results.csv",)) -> Verdict:
    """The Hyper U-Net segments homogeneous organs better than tumours and vessels (Table 1, DSC).

    The two groups are different targets, so their rows cannot be paired by case: within each
    support draw, each target's Hyper U-Net rows (test split) are ordered by case, each group is
    averaged over its targets at the k-th case of the draw, and the groups are paired at the same
    (draw, k) (:func:`_group_vectors`; targets with more test cases than another give up their
    last ones). For independent groups of equal size this approximates the two-sample interval
    of the difference of means.
    """
    claim = "Homogeneous organs (liver, spleen) are segmented better than tumours and vessels (Table 1)"
    measure = ("mean Hyper U-Net DSC on liver and spleen − mean on hepatic vessels, lung and colon tumours; "
               "groups matched by position (draw, k-th test case)")
    pap = {c: _paper_dsc(c, "hyper_unet") for c in ORGANS + TUMOURS_VESSELS}
    gap = statistics.fmean(pap[c] or 0.0 for c in ORGANS) - statistics.fmean(pap[c] or 0.0 for c in TUMOURS_VESSELS)
    paper = (f"{gap:+.3f} "
             f"(organs {', '.join(f'{pap[c]:.3f}' for c in ORGANS)}; tumours/vessels "
             f"{', '.join(f'{pap[c]:.3f}' for c in TUMOURS_VESSELS)})")
    cols = _columns(rows or [], ("table1_ct",))
    scores = _hyper_by_draw(rows or [])
    organs = [cols[c] for c in ORGANS if cols.get(c) in scores]
    others = [cols[c] for c in TUMOURS_VESSELS if cols.get(c) in scores]
    if not organs or not others:
        return _not_measured("organs_above_tumours", claim, measure, paper,
                             _missing(rows, "Hyper U-Net rows of an organ and of a tumour or vessel target", files),
                             "one_shot", files)
    (organ_vec, other_vec), positions = _group_vectors(scores, (organs, others))
    n = len(organ_vec)
    if not n:
        return _not_measured("organs_above_tumours", claim, measure, paper,
                             "the organ and tumour/vessel targets share no support draw", "one_shot", files)
    p = paired_difference(organ_vec, other_vec, units=[("groups", d, k) for d, k in positions])
    means = {c: statistics.fmean(x for draw in scores[cols[c]].values() for x in draw)
             for c in ORGANS + TUMOURS_VESSELS if cols.get(c) in organs + others}
    detail = "Hyper U-Net DSC: " + "; ".join(f"{c} {v:.3f}" for c, v in means.items()) + f" ({n} positions paired)"
    absent = [c for c in ORGANS + TUMOURS_VESSELS if c not in means]
    if absent:
        detail += f". Not measured: {', '.join(absent)}"
    return Verdict("organs_above_tumours", claim, measure, _decide(p.lo), p.text(), paper, detail, "one_shot",
                   tuple(files))


def ct_to_mri(rows: Sequence[Mapping[str, Any]] | None, files: Sequence[str] = ("eval/results.csv",)) -> Verdict:
    """A hypernetwork trained on CT only makes MRI U-Nets above the Rand U-Net (Table 2, pooled)."""
    claim = "CT-to-MRI transfer: trained on CT only, the hypernetwork makes useful MRI U-Nets (Table 2)"
    measure = "Hyper U-Net − Rand U-Net DSC on the MRI targets, paired over draws and test cases, pooled"
    cols = _paper_columns(("table2_mri",))
    gaps = [(_paper_dsc(c, "hyper_unet") or 0.0) - (_paper_dsc(c, "rand_unet") or 0.0) for c in cols]
    paper = (f"{statistics.fmean(gaps):+.3f} (mean over its {len(cols)} MRI targets; "
             f"above on {sum(g > 0 for g in gaps)})")
    mri = _columns(rows or [], ("table2_mri",))
    by_task = paired_tasks(rows or [], rows or [], "dsc", method_a="hyper_unet", method_b="rand_unet",
                           tasks=mri.values(), pool=ALL_TASKS)
    if ALL_TASKS not in by_task:
        return _not_measured("ct_to_mri", claim, measure, paper,
                             _missing(rows, "Hyper U-Net and Rand U-Net rows of a Table 2 (MRI) target", files),
                             "one_shot", files)
    p = by_task[ALL_TASKS]
    per = {col: by_task[task] for col, task in mri.items() if task in by_task}
    detail = "; ".join(f"{c} {q.text()}" for c, q in per.items())
    absent = [c for c in cols if c not in per]
    if absent:
        detail += f". Not measured: {', '.join(absent)}"
    return Verdict("ct_to_mri", claim, measure, _decide(p.lo), f"{p.text()} over {p.n} pairs", paper, detail,
                   "one_shot", tuple(files))


def ablation_effect(rows: Sequence[Mapping[str, Any]] | None, variant: str,
                    files: Sequence[str] = ("ablation/ablation.csv",)) -> Verdict:
    """Tables 4-6: the base model against the variant without the part (``step``, ``norm``, ``pe``).

    Raises:
        ValueError: ``variant`` is not a key of :data:`ABLATION_CLAIMS`.
    """
    if variant not in ABLATION_CLAIMS:
        raise ValueError(f"variant must be one of {sorted(ABLATION_CLAIMS)}, got {variant!r}")
    key, claim, table = ABLATION_CLAIMS[variant]
    measure = "base − variant without it, DSC, paired over the same draws and test cases, all targets pooled"
    ref = {k: v for k, v in paper_tables()[table].items() if k != "caption"}
    gaps = [v["with"]["dsc"][0] - v["without"]["dsc"][0] for v in ref.values()]
    paper = (f"{statistics.fmean(gaps):+.3f} (mean of with − without over its {len(gaps)} targets; "
             f"positive on {sum(g > 0 for g in gaps)})")
    mine = {r["target"]: r for r in rows or [] if r["variant"] == variant and r["metric"] == "dsc"}
    if "all" not in mine:
        why = _missing(rows, f"rows of the variant `{variant}` (notebook 06's `only` parameter chooses the variants)",
                       files)
        return _not_measured(key, claim, measure, paper, why, "ablation", files)
    r = mine["all"]
    lo, hi = float(r["ci_lo"]), float(r["ci_hi"])
    verdict = _decide(lo)
    kit = f"{r['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}] over {r['pairs']} pairs"
    detail = "; ".join(f"{t} {v['diff']:+.3f} [{v['ci_lo']:+.3f}, {v['ci_hi']:+.3f}]"
                       for t, v in mine.items() if t != "all")
    seed = next((s for s in rows or [] if s["variant"] == "seed" and s["target"] == "all" and s["metric"] == "dsc"),
                None)
    if seed is not None:
        detail += (f". Seed-to-seed spread (two base models, training seeds differ): {seed['diff']:+.3f} "
                   f"[{seed['ci_lo']:+.3f}, {seed['ci_hi']:+.3f}]; an effect inside it is not told from "
                   "retraining noise")
    return Verdict(key, claim, measure, verdict, kit, paper, detail, "ablation", tuple(files))


def hyper_init_beats_random(rows: Sequence[Mapping[str, Any]] | None, ns: Iterable[int] = FINETUNE_NS,
                            files: Sequence[str] = ("finetune/finetune.csv",),
                            baselines: Sequence[str] = ("rand_ft",)) -> Verdict:
    """Fine-tuned from a generated U-Net beats fine-tuned from the ``baselines`` starts at small N.

    With the default (the Rand U-Net: trained encoder, random decoder) this is Figure 3's claim;
    with ``("rand_ft", "scratch_ft")`` the conclusion's "outperforms pretrained and randomly
    initialised baselines" (notebook 07). The claim holds when the pooled interval against every
    baseline lies above 0 (:data:`RULE`).

    Args:
        rows: ``read_finetune`` rows, or ``None`` for a missing file.
        ns: the sizes N that are pooled.
        files: the result files named in the verdict.
        baselines: fine-tuning starts of :data:`FINETUNE_BASELINES`.

    Raises:
        ValueError: ``ns`` empty or not positive; ``baselines`` empty or an unknown start.
    """
    ns = tuple(sorted(set(int(n) for n in ns)))
    if not ns or min(ns) < 1:
        raise ValueError(f"ns must be positive sizes, got {ns}")
    baselines = tuple(baselines)
    if not baselines or any(b not in FINETUNE_BASELINES for b in baselines):
        raise ValueError(f"baselines must be some of {list(FINETUNE_BASELINES)}, got {list(baselines)}")
    one = baselines == ("rand_ft",)
    claim = ("Hyper initialisation beats random initialisation when fine-tuning with N = 2-4 volumes (Figure 3)"
             if one else "Hyper initialisation beats " + " and ".join(FINETUNE_BASELINES[b] for b in baselines)
             + " when fine-tuning with N = 2-4 volumes (the paper's conclusion)")
    versus = " and ".join(f"fine-tuned {b}" for b in baselines)
    measure = (f"fine-tuned Hyper U-Net − {'fine-tuned Rand U-Net' if one else versus} DSC, paired over target, N, "
               f"repeat and test case, N in {{{', '.join(map(str, ns))}}} pooled")
    paper = ("above at N = 2-4 (Figure 3; plotted only, no numbers published)" if one else
             "\"consistently outperforms\" at N = 2-4 (conclusion; no numbers published)")
    pooled = {b: paired_starts(rows or [], "hyper_ft", b, keep=lambda r: int(r["n"]) in ns) for b in baselines}
    if any(p is None for p in pooled.values()):
        return _not_measured("hyper_init", claim, measure, paper,
                             _missing(rows, f"rows of hyper_ft and {' and '.join(baselines)} at N in {list(ns)}",
                                      files), "finetune", files)
    per = []
    for b in baselines:
        for n in ns:
            q = paired_starts(rows or [], "hyper_ft", b, keep=lambda r, n=n: int(r["n"]) == n)
            if q is not None:
                per.append(f"N={n} {q.text()} ({q.n} pairs)" if one else f"− {b} N={n} {q.text()} ({q.n} pairs)")
    verdict = HOLDS if all(_decide(p.lo) == HOLDS for p in pooled.values() if p is not None) else FAILS
    kit = "; ".join(f"{'' if one else f'− {b}: '}{p.text()} over {p.n} pairs" for b, p in pooled.items()
                    if p is not None)
    return Verdict("hyper_init", claim, measure, verdict, kit, paper, "; ".join(per), "finetune", tuple(files))


def all_claims(results: Sequence[Mapping[str, Any]] | None, ablation: Sequence[Mapping[str, Any]] | None,
               finetune: Sequence[Mapping[str, Any]] | None, *, results_file: str = "eval/results.csv",
               ablation_file: str = "ablation/ablation.csv", finetune_file: str = "finetune/finetune.csv"
               ) -> list[Verdict]:
    """The report's seven claims, in the order the page shows them."""
    r, a, f = (results_file,), (ablation_file,), (finetune_file,)
    return [hyper_above_rand(results, r), organs_above_tumours(results, r), ct_to_mri(results, r),
            *(ablation_effect(ablation, v, a) for v in ABLATION_CLAIMS), hyper_init_beats_random(finetune, files=f)]
