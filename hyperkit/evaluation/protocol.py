"""The one-shot evaluation protocol (paper §4, Tables 1-2; docs/design.md §6).

For each held-out task with ``N`` cases, one fixed split of the cases into train /
validation / test (:func:`task_split`), and every method is scored on the **test** cases:

- **one-shot methods** (Hyper U-Net, Rand U-Net, copy the support mask): ``draws`` support
  draws of ``shots`` cases each from the train and validation cases (distinct supports while
  cases last); each draw builds one model and is scored on the test cases
  (:func:`one_shot_plan`);
- **supervised baselines** (Conv U-Net, All U-Net): trained on the train cases with early
  stopping on the validation cases; scored on the test cases. Their U-Nets are independent and
  train side by side, one per torch thread (:func:`~hyperkit.evaluation.methods.fit_supervised`).

So all methods of a task are compared on the same cases. A task too small for that (fewer
than 3 cases, or fewer train + validation cases than ``shots``) falls back to drawing
supports from all cases and scoring every other case; the tables say so.

Every prediction is scored with DSC, NSD at ``tau`` mm (the paper's tolerance) and NSD at
one voxel (:func:`~hyperkit.metrics.voxel_tolerance`; at 4 mm voxels a 2 mm tolerance counts only boundaries
that coincide), with MONAI and the patch's true voxel spacing. Rows are written to a CSV
as they are made (one per task × method × draw × case), so an interrupted evaluation keeps
what it did and ``resume`` continues it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from hyperkit.errors import HyperkitError
from hyperkit.config import ONE_SHOT_METHODS, EvalConfig
from hyperkit.evaluation.results_file import FIELDS, ResultsWriter, csv_row, read_results, write_results
from hyperkit.evaluation.methods import (REGISTRY, Context, Fitted, Method, OneShotMethod, fit_supervised,
                                         methods_for, one_shot_model)
from hyperkit.metrics import dice, nsd, voxel_tolerance
from hyperkit.model.hypernet import HyperUNet
from hyperkit.model.unet import UNet3D
from hyperkit.seeds import torch_generator
from hyperkit.data.bank import TaskBank

__all__ = ["FIELDS", "PROTOCOL_VERSION", "support_draws", "case_split", "task_split", "one_shot_plan",
           "score", "one_shot_model", "evaluate", "read_results", "write_results", "csv_row", "CaseSplit",
           "OneShotPlan"]

#: version of the scoring rules, recorded with each run so that results made under older rules
#: (one-shot methods scored on every other case, no ``nsd_voxel``) are never reused or resumed
PROTOCOL_VERSION = 2


def support_draws(n_cases: int, draws: int, shots: int, generator: torch.Generator,
                  pool: Sequence[int] | None = None) -> list[list[int]]:
    """``draws`` supports of ``shots`` case indices each, from one random order of ``pool``.

    Supports are distinct while ``draws * shots <= len(pool)`` (they then cycle the order);
    at least one case is always left to query.

    Args:
        n_cases: cases of the task (indices ``0 .. n_cases - 1``).
        draws, shots: supports, and cases per support.
        generator: the random order.
        pool: the case indices supports may come from (default: all cases).

    Raises:
        ValueError: ``pool`` has fewer than ``shots`` cases, no case would be left to query,
            or ``pool`` names a case outside ``0 .. n_cases - 1``.
    """
    cases = list(range(n_cases)) if pool is None else sorted(set(pool))
    if any(not 0 <= i < n_cases for i in cases):
        raise ValueError(f"support pool {cases} names cases outside 0..{n_cases - 1}")
    if len(cases) < shots or n_cases < shots + 1:
        raise ValueError(f"{n_cases} case(s) ({len(cases)} to draw supports from) cannot give {shots} "
                         "support(s) and a query")
    order = [cases[i] for i in torch.randperm(len(cases), generator=generator).tolist()]
    return [[order[(d * shots + k) % len(cases)] for k in range(shots)] for d in range(draws)]


@dataclass(frozen=True)
class CaseSplit:
    """Case indices of one task for the supervised baselines."""

    train: list[int]
    val: list[int]
    test: list[int]


def case_split(n_cases: int, test_fraction: float, val_fraction: float, generator: torch.Generator) -> CaseSplit:
    """Split ``n_cases`` into train / validation / test (each at least one case)."""
    if n_cases < 3:
        raise ValueError(f"a train/validation/test split needs >= 3 cases, got {n_cases}")
    order = torch.randperm(n_cases, generator=generator).tolist()
    n_test = max(1, round(test_fraction * n_cases))
    n_val = max(1, round(val_fraction * n_cases))
    n_test = min(n_test, n_cases - 2)
    n_val = min(n_val, n_cases - n_test - 1)
    return CaseSplit(sorted(order[n_test + n_val:]), sorted(order[n_test:n_test + n_val]), sorted(order[:n_test]))


def task_split(n_cases: int, cfg: EvalConfig, seed: int, task: str) -> CaseSplit | None:
    """The fixed train / validation / test split of one task, or ``None`` below 3 cases.

    Seeded by ``seed`` and the task id only, so it does not depend on which other tasks or
    methods are evaluated.
    """
    if n_cases < 3:
        return None
    return case_split(n_cases, cfg.test_fraction, cfg.val_fraction,
                      torch_generator(seed, "split", task))


@dataclass(frozen=True)
class OneShotPlan:
    """The support draws of one task and the cases each draw is scored on.

    Attributes:
        supports: per draw, ``shots`` case indices.
        queries: per draw, the scored case indices (never a support of that draw).
        split: the task's split (``None`` below 3 cases).
        on_test_split: supports come from the train and validation cases and every draw is
            scored on the test cases (the cases Conv and All U-Net are scored on); ``False``
            is the fallback of a small task: supports from all cases, every other case scored.
    """

    supports: list[list[int]]
    queries: list[list[int]]
    split: CaseSplit | None
    on_test_split: bool


def one_shot_plan(n_cases: int, cfg: EvalConfig, seed: int, task: str) -> OneShotPlan:
    """Which supports the one-shot methods of ``task`` draw, and which cases they are scored on.

    With a split (:func:`task_split`) that leaves at least ``cfg.shots`` train + validation
    cases, the ``cfg.draws`` supports are drawn from those and scored on the test cases;
    otherwise from all cases, each draw scored on every case but its support.

    Raises:
        ValueError: fewer than ``cfg.shots + 1`` cases.
    """
    split = task_split(n_cases, cfg, seed, task)
    g = torch_generator(seed, "supports", task)
    pool = sorted(split.train + split.val) if split is not None else []
    if split is not None and len(pool) >= cfg.shots:
        supports = support_draws(n_cases, cfg.draws, cfg.shots, g, pool=pool)
        return OneShotPlan(supports, [list(split.test) for _ in supports], split, True)
    supports = support_draws(n_cases, cfg.draws, cfg.shots, g)
    return OneShotPlan(supports, [[i for i in range(n_cases) if i not in s] for s in supports], split, False)


def score(preds: Tensor, masks: Tensor, spacing: Sequence[float], tau: float) -> list[tuple[float, float, float]]:
    """``(DSC, NSD@tau, NSD@one voxel)`` of each prediction ``(N, 1, S, S, S)`` against its mask ``(N, 1, S, S, S)``.

    Args:
        preds, masks: binary volumes.
        spacing: voxel size in mm per axis; one voxel is :func:`~hyperkit.metrics.voxel_tolerance` of it.
        tau: the NSD tolerance in mm (``evaluate.tau``).
    """
    voxel = voxel_tolerance(spacing)
    return [(dice(p, m), nsd(p, m, spacing, tau), nsd(p, m, spacing, voxel)) for p, m in zip(preds, masks)]


def _rows(task: str, method: str, draw: int, support: str, case_ids: Sequence[str], idx: Sequence[int],
          scores: Sequence[tuple[float, float, float]], test: set[int], fit: float) -> list[dict[str, Any]]:
    return [{"task": task, "method": method, "draw": draw, "support": support, "case": case_ids[i],
             "in_test_split": i in test, "dsc": d, "nsd": s, "nsd_voxel": sv, "fit_seconds": fit}
            for i, (d, s, sv) in zip(idx, scores)]


# ------------------------------------------------------------------------------ the protocol
def evaluate(hyper: HyperUNet | None, bank: TaskBank, cfg: EvalConfig, out_csv: str | Path, *,
             methods: Sequence[str] = ONE_SHOT_METHODS, seed: int = 0, train_bank: TaskBank | None = None,
             base_width: int | None = None, resume: bool = False, progress: bool = True,
             save_model: Callable[[str, str, UNet3D], None] | None = None,
             on_facts: Callable[[dict[str, Any]], None] | None = None,
             ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the protocol on every task of ``bank`` and write one CSV row per task × method × draw × case.

    Every method of a task is scored on its test cases (:func:`task_split`); one-shot supports
    come from the other cases (:func:`one_shot_plan`, with its fallback for small tasks). The
    methods are objects of :data:`~hyperkit.evaluation.methods.REGISTRY`, run in its order (the
    trainings of the supervised ones side by side, rows written as each finishes).

    Args:
        hyper: the trained hypernetwork (its shared parts also serve the Rand U-Net); may be
            ``None`` when no method asked for needs it.
        bank: the held-out tasks' patches (``TaskBank.from_datasets(..., "heldout", ...)``).
        cfg: the protocol (draws, shots, tau, baseline budgets).
        out_csv: results file; written as the evaluation goes.
        methods: names of registered methods (:data:`~hyperkit.config.METHODS` and any registered since).
        seed: seeds the support draws, the case splits, random decoders and baseline training.
        train_bank: the training tasks (needed by ``all_unet``, which learns them beside the targets).
        base_width: U-Net width of the supervised baselines (default: the hypernetwork's).
        resume: keep the rows of (task, method) pairs already complete in ``out_csv`` (every
            draw's every query case; a last row cut by an interrupted write is dropped) and do
            only the rest; without it an existing file is refused.
        progress: tqdm bars.
        save_model: called as ``save_model(method, task, unet)`` with each trained Conv U-Net
            (for figures and ``hyperkit segment``).
        on_facts: called with the training facts so far (the second value returned) each time a
            supervised model's rows are written, so that a caller can keep them on disk: a resume
            does not train again what has rows, and an interrupted run would otherwise lose them.

    Returns:
        ``(rows, info)``: all rows, and per-task training facts of the supervised baselines
        (``info["conv_unet"][task]`` / ``info["all_unet"]``: best step, seconds to best, curve).
    """
    torch.set_flush_denormal(True)  # denormal floats slow CPU convolutions by orders of magnitude
    chosen = methods_for(methods)
    width = base_width or (hyper.unet.config["base_width"] if hyper is not None else None)
    _check_inputs(chosen, hyper, train_bank, width)
    splits = {t: sp for t in bank.task_ids if (sp := task_split(len(bank.case_ids[t]), cfg, seed, t)) is not None}
    ctx = Context(hyper, bank, cfg, seed, train_bank, width, splits, progress, save_model,
                  info={m.name: {} for m in REGISTRY.values() if not m.one_shot})
    writer, done = _open_results(Path(out_csv), resume, cfg, _expected_cases(ctx, chosen))
    try:
        one_shot = [m for m in chosen if m.one_shot]
        for task in tqdm(bank.task_ids, desc="one-shot", disable=not progress or not one_shot):
            todo = [m for m in one_shot if (task, m.name) not in done]
            if todo:
                for rows in _one_shot(ctx, task, todo):  # type: ignore[arg-type]
                    writer.add(rows)
        supervised = [(m, [t for t in bank.task_ids if t in splits and (t, m.name) not in done])
                      for m in chosen if not m.one_shot]
        for name, fit in fit_supervised(ctx, [(m, ts) for m, ts in supervised if ts]):  # type: ignore[misc]
            writer.add(_supervised_rows(ctx, name, fit))
            if on_facts is not None:
                on_facts(ctx.info)
    finally:
        writer.close()
    return writer.rows, ctx.info


def _check_inputs(chosen: Sequence[Method], hyper: HyperUNet | None, train_bank: TaskBank | None,
                  width: int | None) -> None:
    """Refuse an evaluation whose methods lack what they need (the hypernetwork, the training tasks, a width)."""
    needs_hyper = sorted(m.name for m in chosen if m.needs_hyper)
    if needs_hyper and hyper is None:
        raise ValueError(f"methods {needs_hyper} need a hypernetwork checkpoint")
    for m in chosen:
        if m.needs_train_bank and train_bank is None:
            raise ValueError(f"{m.name} needs train_bank (the training tasks it learns beside the targets)")
    if width is None and any(m.needs_width for m in chosen):
        raise ValueError(f"{'/'.join(m.name for m in chosen if m.needs_width)} need base_width when no "
                         "hypernetwork is given")


def _expected_cases(ctx: Context, chosen: Sequence[Method]) -> dict[tuple[str, str], int]:
    """``(task, method) -> the (draw, case) rows a complete pair has``: the draws' query cases (one-shot
    methods, :func:`one_shot_plan`) or the test cases (supervised ones, targets with a split)."""
    out: dict[tuple[str, str], int] = {}
    one_shot = [m for m in chosen if m.one_shot]
    for task in ctx.bank.task_ids:
        if one_shot:
            queries = sum(len(q) for q in one_shot_plan(len(ctx.bank.case_ids[task]), ctx.cfg, ctx.seed, task).queries)
            out.update({(task, m.name): queries for m in one_shot})
        if task in ctx.splits:
            out.update({(task, m.name): len(ctx.splits[task].test) for m in chosen if not m.one_shot})
    return out


def _open_results(out: Path, resume: bool, cfg: EvalConfig, expected: Mapping[tuple[str, str], int] | None = None
                  ) -> tuple[ResultsWriter, set[tuple[str, str]]]:
    """The results file to write, keeping the complete (task, method) pairs of a resumed one
    (:func:`_complete_pairs`), and those pairs."""
    kept: list[dict[str, Any]] = []
    if out.exists():
        if not resume:
            raise HyperkitError(f"{out}: exists; pass resume=True (--resume) to continue it, or choose another file")
        kept = read_results(out, drop_cut_row=True)
    done = _complete_pairs(kept, cfg, expected)
    return ResultsWriter(out, [r for r in kept if (r["task"], r["method"]) in done]), done


def _one_shot(ctx: Context, task: str, methods: Sequence[OneShotMethod]) -> Iterable[list[dict[str, Any]]]:
    """Rows of each draw x method of one task, one list per model (see :func:`one_shot_plan`)."""
    bank = ctx.bank
    images, masks, ids = bank.images[task], bank.masks[task], bank.case_ids[task]
    plan = one_shot_plan(len(ids), ctx.cfg, ctx.seed, task)
    test = set(plan.split.test) if plan.split else set()
    for d, (sup, query) in enumerate(zip(plan.supports, plan.queries)):
        label = "+".join(ids[i] for i in sup)
        for method in methods:
            t0 = time.perf_counter()
            predictor = method.fit(ctx, task, d, images[sup], masks[sup])
            fit = time.perf_counter() - t0
            scores = score(predictor(images[query]), masks[query], bank.spacing, ctx.cfg.tau)
            yield _rows(task, method.name, d, label, ids, query, scores, test, fit)


def _supervised_rows(ctx: Context, method: str, fit: Fitted) -> list[dict[str, Any]]:
    """Rows of a supervised method's model for one target, scored on the target's test cases."""
    test = ctx.splits[fit.task].test
    images, masks = ctx.bank.images[fit.task][list(test)], ctx.bank.masks[fit.task][list(test)]
    scores = score(fit.predict(images), masks, ctx.bank.spacing, ctx.cfg.tau)
    return _rows(fit.task, method, 0, "", ctx.bank.case_ids[fit.task], test, scores, set(test), fit.seconds)


def _complete_pairs(rows: list[dict[str, Any]], cfg: EvalConfig,
                    expected: Mapping[tuple[str, str], int] | None = None) -> set[tuple[str, str]]:
    """(task, method) pairs with all their draws (one-shot methods) or any row (supervised ones),
    and, for a pair in ``expected`` (:func:`_expected_cases`), exactly that many (draw, case) rows:
    a model whose rows an interrupted write cut short is made again."""
    draws: dict[tuple[str, str], set[int]] = {}
    cases: dict[tuple[str, str], set[tuple[int, str]]] = {}
    for r in rows:
        draws.setdefault((r["task"], r["method"]), set()).add(r["draw"])
        cases.setdefault((r["task"], r["method"]), set()).add((r["draw"], r["case"]))
    expected = expected or {}
    return {(t, m) for (t, m), d in draws.items()
            if len(d) >= (cfg.draws if m in REGISTRY and REGISTRY[m].one_shot else 1)
            and expected.get((t, m), len(cases[t, m])) == len(cases[t, m])}
