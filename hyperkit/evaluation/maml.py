"""Table 3 in the kit's harness: 5-shot MAML beside the 5-shot Hyper U-Net (``hyperkit maml``).

The paper's Table 3 quotes a 5-shot MAML 3D U-Net from Alsaleh et al. (2024), meta-trained
leave-one-organ-out over spleen, liver, right and left kidney of TotalSegmentator CT, and did not
run it. Here both run on the same organs, cases and support draws:

- **organs** (:func:`resolve_organs`): each organ's CT task, from a TotalSegmentator folder where
  the data has one, else from an MSD task of that name (the phantoms label liver and spleen only
  in their MSD cohorts, the kidneys only in the TotalSegmentator cohort); patches preprocessed as
  the checkpoint's profile says (the one-shot protocol's patches and seeded offsets);
- **MAML** (:mod:`hyperkit.training.maml`): per held-out organ (fold), the target U-Net
  meta-trained from a random initialisation on the other organs' cases only, then adapted with
  the same inner loop on each draw's supports;
- **Hyper U-Net**: the one-shot protocol's ``hyper_unet`` with ``shots`` supports pooled
  (:func:`hyperkit.evaluation.protocol.evaluate`, what ``hyperkit evaluate --shots 5`` runs);
- **draws and cases** (:func:`~hyperkit.evaluation.protocol.one_shot_plan`): the protocol's split of
  each organ's cases, its ``draws`` support draws of ``shots`` cases and its test cases, the same
  for both methods, so that their scores pair by (organ, draw, case);
- **scores**: DSC, NSD at ``tau`` and at one voxel (:func:`~hyperkit.evaluation.protocol.score`).

Outputs in the run folder: ``maml.csv`` (the protocol's columns, one row per organ × method × draw ×
case), ``hyper_unet.csv`` (the protocol's own file), ``folds/<organ>.pt`` and ``.json`` (the
meta-learnt U-Net of each fold and its training curve), ``table3.md``, ``maml.json`` (run record).
A finished fold is reused; an interrupted run resumes with ``resume``. :func:`table3_of_run` makes
the table again from ``maml.csv`` and ``maml.json`` alone (the reproduction report does).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from hyperkit.config import EvalConfig, TrainConfig, check_seed, differences, protocol_for, reread_config
from hyperkit.config.sections import MamlConfig
from hyperkit.data.bank import TaskBank
from hyperkit.data.identity import comparable_on_data, data_identity
from hyperkit.data.layouts import Dataset, discover_datasets
from hyperkit.data.splits import assign_roles, load_split
from hyperkit.errors import ConfigError, DataError, HyperkitError
from hyperkit.evaluation.baselines import predict
from hyperkit.evaluation.protocol import evaluate, one_shot_plan, score
from hyperkit.evaluation.results_file import read_results, write_results
from hyperkit.side_by_side import check_workers, side_by_side
from hyperkit.evaluation.stats import Paired, paired_tasks
from hyperkit.evaluation.tables import Stat, kit_task, paper_tables, summarize
from hyperkit.files import sha256_file, write_text_atomic
from hyperkit.model.unet import UNet3D
from hyperkit.training.maml import (FOLD_READERS, MetaResult, adapt, init_unet, load_fold, meta_train, save_fold,
                                    without_task)

__all__ = ["ORGANS", "MAML_METHOD", "OrganTask", "MamlRun", "resolve_organs", "organ_bank", "check_organs",
           "maml_rows", "run_fold", "exposure", "PAPER_SAW", "table3", "table3_of_run", "read_maml", "run_maml",
           "FIVE_SHOT_SAW", "five_shot_table", "five_shot_reading", "maml_reading"]

#: Table 3's organs, in the paper's column order (names as TotalSegmentator's structures)
ORGANS: tuple[str, ...] = ("spleen", "liver", "kidney_right", "kidney_left")
#: the method name of MAML's rows
MAML_METHOD = "maml"
_PAPER = "table3_five_shot"
#: what the paper's two rows of Table 3 saw in training (the last column of :func:`table3`)
PAPER_SAW: dict[str, str] = {
    "paper_maml": "meta-trained on three of the four organs, tested on the fourth (real TotalSegmentator CT)",
    "paper_hyper": "more than 100 TotalSegmentator CT tasks (the paper does not say whether these four were among "
                   "them)"}


@dataclass(frozen=True)
class OrganTask:
    """One organ of the table and the task that stands for it.

    Attributes:
        organ: one of :data:`ORGANS`.
        task: its task id (``totalseg/TotalSegmentator/kidney_left@CT``, ``msd/Task03_Liver/liver@CT``).
        role: the task's role in the hypernetwork's split (``train``, ``val``, ``heldout``, ``unused``).
        seen_cases: cases whose mask of this task trained the hypernetwork (its training subjects of a
            training task; empty otherwise).
    """

    organ: str
    task: str
    role: str
    seen_cases: frozenset[str]


def _organ_of(class_name: str) -> str:
    return class_name.strip().lower().replace(" ", "_")


def resolve_organs(datasets: Sequence[Dataset], organs: Sequence[str], split: Mapping[str, list[str]] | None = None,
                   train_splits: Sequence[str] = ("train",)) -> list[OrganTask]:
    """The CT task of each organ: a TotalSegmentator structure where the data has one, else an MSD label.

    Args:
        datasets: from :func:`~hyperkit.data.layouts.discover_datasets`.
        organs: names from :data:`ORGANS`, at least two (leave-one-organ-out).
        split: the hypernetwork's task split (default: the paper's), for :attr:`OrganTask.role`.
        train_splits: ``meta.csv`` split values of the hypernetwork's training subjects.

    Raises:
        ValueError: an unknown or repeated organ, fewer than two, or an organ without a CT task.
    """
    organs = list(organs)
    unknown = [o for o in organs if o not in ORGANS]
    if unknown:
        raise ValueError(f"unknown organ {unknown[0]!r}: Table 3's organs are {', '.join(ORGANS)}")
    if len(set(organs)) != len(organs):
        raise ValueError(f"organs repeat: {organs}")
    if len(organs) < 2:
        raise ValueError(f"leave-one-organ-out needs at least two organs, got {organs}")
    tasks = [(ds, t) for ds in datasets for t in ds.tasks() if t.modality == "CT"]
    roles = assign_roles([t.task_id for _, t in tasks], dict(split) if split is not None else None)
    out = []
    for organ in organs:
        hits = sorted(((ds, t) for ds, t in tasks if _organ_of(t.class_name) == organ),
                      key=lambda p: (p[1].layout != "totalseg", p[1].task_id))
        if not hits:
            root = datasets[0].root.parent if datasets else "the data folder"
            raise ValueError(f"organ {organ!r}: no CT task of that name in {root} (a TotalSegmentator structure "
                             "or an MSD label)")
        ds, task = hits[0]
        role = roles[task.task_id]
        seen = frozenset(c.case_id for c in ds.cases if c.split is None or c.split in train_splits) \
            if role == "train" else frozenset()
        out.append(OrganTask(organ, task.task_id, role, seen))
    return out


def organ_bank(datasets: Sequence[Dataset], organs: Sequence[OrganTask], cfg: Mapping[str, Any],
               cache_dir: str | Path | None = None, progress: bool = False) -> TaskBank:
    """The organs' patches, every case in which each is labelled, preprocessed as the profile ``cfg`` says.

    Raises:
        ValueError: no organ has a labelled case.
    """
    ids = [o.task for o in organs]
    split = {"heldout": [], "val": [], "train": ids}  # a split of exactly these tasks
    try:
        with warnings.catch_warnings():  # an organ without labels is an error (check_organs), not a warning
            warnings.filterwarnings("ignore", message=r".*task\(s\) left out")
            return TaskBank.from_datasets(datasets, "train", cfg, split, cache_dir=cache_dir, progress=progress,
                                          min_cases=1, keep=set(ids).__contains__)
    except DataError as exc:
        raise ValueError(f"none of the organs {[o.organ for o in organs]} has a labelled case ({exc})") from None


def check_organs(bank: TaskBank, organs: Sequence[OrganTask], shots: int) -> None:
    """Every organ needs ``shots`` supports and a case to score.

    Raises:
        ValueError: an organ without a labelled case, or with too few.
    """
    for o in organs:
        n = len(bank.case_ids.get(o.task, []))
        if n == 0:
            raise ValueError(f"organ {o.organ!r} ({o.task}): no case has it labelled")
        if n < shots + 1:
            raise ValueError(f"organ {o.organ!r} ({o.task}): {n} labelled case(s); {shots} supports and a test "
                             f"case need at least {shots + 1}")


def maml_rows(net: torch.nn.Module, bank: TaskBank, task: str, ecfg: EvalConfig, mcfg: MamlConfig,
              seed: int) -> list[dict[str, Any]]:
    """MAML's rows of one held-out task: per draw of the protocol, :func:`~hyperkit.training.maml.adapt`
    on the draw's supports, scored on the draw's query cases (the protocol's columns,
    :data:`~hyperkit.evaluation.results_file.FIELDS`)."""
    images, masks, ids = bank.images[task], bank.masks[task], bank.case_ids[task]
    plan = one_shot_plan(len(ids), ecfg, seed, task)
    test = set(plan.split.test) if plan.split else set()
    rows = []
    for d, (sup, query) in enumerate(zip(plan.supports, plan.queries)):
        t0 = time.perf_counter()
        unet, _ = adapt(net, images[sup], masks[sup], mcfg)  # type: ignore[arg-type]
        fit = time.perf_counter() - t0
        scores = score(predict(unet, images[query]), masks[query], bank.spacing, ecfg.tau)
        rows += [{"task": task, "method": MAML_METHOD, "draw": d, "support": "+".join(ids[i] for i in sup),
                  "case": ids[i], "in_test_split": i in test, "dsc": a, "nsd": b, "nsd_voxel": c, "fit_seconds": fit}
                 for i, (a, b, c) in zip(query, scores)]
    return rows


def run_fold(bank: TaskBank, organ: OrganTask, mcfg: MamlConfig, base_width: int, seed: int, path: Path,
             key: Mapping[str, Any], progress: bool = False, start: UNet3D | None = None
             ) -> tuple[torch.nn.Module, MetaResult, bool]:
    """The meta-learnt U-Net of one fold: read from ``path`` when a finished fold with ``key`` is there,
    else meta-trained on every task of ``bank`` but ``organ``'s and saved to ``path`` (with a JSON record).

    ``start`` is the U-Net it starts from, :func:`~hyperkit.training.maml.init_unet`'s (made here when
    not given; it seeds torch's global generator, so folds that run side by side get theirs made
    beforehand, in one thread).

    Returns:
        ``(unet, result, reused)``.

    Raises:
        HyperkitError: ``path`` holds a fold made with another key.
    """
    if path.is_file():
        net, result = load_fold(path, key)
        return net, result, True
    net = init_unet(base_width, seed, organ.organ) if start is None else start
    result = meta_train(net, without_task(bank, organ.task), mcfg, seed, organ.organ, progress=progress,
                        desc=f"MAML, {organ.organ} held out")
    write_text_atomic(path.with_suffix(".json"), json.dumps({"key": dict(key), **dataclasses.asdict(result)},
                                                            indent=1) + "\n")
    save_fold(path, net, key, result)
    return net, result, False


# ------------------------------------------------------------------------------ the table
def exposure(organs: Sequence[OrganTask], mcfg: MamlConfig, folds: Mapping[str, Mapping[str, Any]],
             n_train_tasks: int, test_cases: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """What each model of the table saw in training, in words made from the run (``model -> text``).

    Args:
        organs: the organs and their tasks' roles in the hypernetwork's split.
        mcfg: the MAML budget.
        folds: ``organ -> {"tasks_seen": [...], "iterations": n}`` of each fold.
        n_train_tasks: training tasks of the hypernetwork's split in this data.
        test_cases: ``organ -> the scored case ids``.
    """
    names = {o.task: o.organ for o in organs}
    per_fold = []
    for o in organs:
        f = folds.get(o.organ)
        if f is not None:
            seen = [names.get(t, t) for t in f["tasks_seen"]]
            per_fold.append(f"{o.organ}: {', '.join(seen) or 'nothing'} ({f['iterations']} meta-iterations)")
    order = "first" if mcfg.first_order else "second"
    maml = (f"{order}-order MAML from a random initialisation, k = {mcfg.inner_steps} inner SGD steps at "
            f"α = {mcfg.inner_lr:g} on {mcfg.shots} supports; each column's model meta-trained on the other organs "
            f"only — " + "; ".join(per_fold))
    parts = []
    for role, words in (("train", "training tasks"), ("val", "validation tasks (never trained on)"),
                        ("heldout", "never seen (held out)"), ("unused", "not in its split")):
        mine = [o for o in organs if o.role == role]
        if not mine:
            continue
        text = f"{', '.join(o.organ for o in mine)} {words}"
        if role == "train":
            seen = [f"{sum(c in o.seen_cases for c in test_cases.get(o.organ, ()))} of "
                    f"{len(test_cases.get(o.organ, ()))} {o.organ} test cases" for o in mine]
            text += f" ({'; '.join(seen)} among the subjects it trained on)"
        parts.append(text)
    hyper = f"the hypernetwork's {n_train_tasks} training tasks; of these organs: " + "; ".join(parts)
    return {"maml": maml, "hyper_unet": hyper, **PAPER_SAW}


def _paired(rows: Sequence[Mapping[str, Any]], metric: str = "dsc") -> dict[str, Paired]:
    """``task -> Hyper U-Net − MAML`` over the (draw, case) pairs both have, and ``"all"`` pooled."""
    return paired_tasks(rows, rows, metric, "hyper_unet", MAML_METHOD, pool="all")


def table3(rows: Sequence[Mapping[str, Any]], organs: Sequence[OrganTask], saw: Mapping[str, str],
           mcfg: MamlConfig, tau: float) -> str:
    """Markdown: the kit's MAML and Hyper U-Net (mean DSC ± SD over test cases × draws), the paper's
    quoted numbers, what each model saw in training, and the paired difference with its 95 % CI."""
    summary = summarize(rows)
    paper = paper_tables()[_PAPER]
    paired = _paired(rows)
    head = ["model"] + [o.organ for o in organs] + ["what it saw in training"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(organs) + "---|"]

    def kit(method: str, label: str) -> str:
        cells = []
        for o in organs:
            st = summary.get((o.task, method))
            cells.append(f"{st.dsc:.3f} ± {st.dsc_std:.3f}" if st else "—")
        return f"| {label} | " + " | ".join(cells) + f" | {saw[method]} |"

    def quoted(key: str, label: str, what: str) -> str:
        return f"| {label} | " + " | ".join(f"{paper[o.organ][key]:.3f}" if o.organ in paper else "—"
                                            for o in organs) + f" | {saw[what]} |"

    order = "first" if mcfg.first_order else "second"
    k = mcfg.shots
    lines += [kit(MAML_METHOD,
                  f"**MAML {k}-shot, kit** ({order}-order, k = {mcfg.inner_steps}, α = {mcfg.inner_lr:g})"),
              kit("hyper_unet", f"**Hyper U-Net {k}-shot, kit**"),
              quoted("maml_alsaleh2024", "MAML 5-shot, Alsaleh et al. 2024 (quoted by the paper, not run)",
                     "paper_maml"),
              quoted("hyper_unet", "Hyper U-Net 5-shot, paper", "paper_hyper")]
    cells = [f"{paired[o.task].text()} ({paired[o.task].n})" if o.task in paired else "—" for o in organs]
    pooled = f"all organs: {paired['all'].text()} ({paired['all'].n} pairs)" if "all" in paired else ""
    lines.append("| kit Hyper U-Net − kit MAML, paired DSC [95 % CI] (pairs) | " + " | ".join(cells)
                 + f" | {pooled} |")
    nsd = []
    for method, label in ((MAML_METHOD, "MAML"), ("hyper_unet", "Hyper U-Net")):
        vals = [f"{o.organ} {summary[(o.task, method)].nsd:.3f}" for o in organs if (o.task, method) in summary]
        if vals:
            nsd.append(f"{label}: " + ", ".join(vals))
    notes = ["", f"Kit rows: mean ± SD of DSC over the scored cases × support draws of each organ (the same draws "
             f"and cases for both; the paired difference's CI is a bootstrap resampling each "
             f"organ's draws and cases, with small-sample corrections). "
             f"NSD at {tau:g} mm — " + "; ".join(nsd) + ".",
             "Tasks: " + "; ".join(f"{o.organ} = `{o.task}`" for o in organs) + "."]
    return "\n".join(lines + notes)


def table3_of_run(rows: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> str:
    """:func:`table3` made again from a run folder's files: ``maml.csv``'s rows and ``maml.json``'s record.

    The record gives the organs and their tasks, the MAML budget and ``tau`` (written when the run
    starts) and what each model saw (written when it ends: a run that has not ended says so in that
    column).

    Raises:
        HyperkitError: a record without a MAML run's protocol.
    """
    try:
        protocol = record["protocol"]
        organs = [OrganTask(o, t, "", frozenset()) for o, t in protocol["organs"].items()]
        mcfg = MamlConfig.from_mapping(protocol["maml"], "maml.json: protocol.maml")
        tau = float(protocol["evaluate"]["tau"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise HyperkitError(f"maml.json: not the record of a MAML run (no protocol {exc})") from None
    unfinished = "— (the run has not finished: its record does not say yet)"
    saw = {"maml": unfinished, "hyper_unet": unfinished, **PAPER_SAW, **(record.get("exposure") or {})}
    return table3(rows, organs, saw, mcfg, tau)


#: what each model of :func:`five_shot_table` saw in training (MAML and the paper quoted, the kit on the phantoms)
FIVE_SHOT_SAW: dict[str, str] = {
    "maml": "meta-trained on three of the four organs, tested on the fourth (real CT)",
    "paper": "> 100 heterogeneous TotalSegmentator CT tasks (the paper does not say whether these four were held out)",
    "kit": "phantom TotalSegmentator CT structures, kidneys included; MSD liver and spleen never"}


def _kit_dsc(summary: Mapping[tuple[str, str], Stat], organ: str) -> str:
    """The Hyper U-Net's mean DSC on the kit task that plays ``organ``
    (:func:`~hyperkit.evaluation.tables.kit_task`), ``—`` without one."""
    task = kit_task(organ, {t for t, m in summary if m == "hyper_unet"})
    return f"{summary[(task, 'hyper_unet')].dsc:.3f}" if task is not None else "—"


def five_shot_table(five: Mapping[tuple[str, str], Stat], one: Mapping[tuple[str, str], Stat] | None = None) -> str:
    """Markdown: Table 3's organs with MAML 5-shot as the paper quotes it (Alsaleh et al. 2024), the paper's
    5-shot Hyper U-Net, the kit's 5-shot Hyper U-Net and, given ``one``, the kit's 1-shot one (mean DSC),
    each with what it saw in training (:data:`FIVE_SHOT_SAW`), and a note. An organ without a kit
    task (:func:`~hyperkit.evaluation.tables.kit_task`: the kidneys) reads ``—``.

    Args:
        five: :func:`~hyperkit.evaluation.tables.summarize` of a 5-shot evaluation (``(task, method) -> Stat``;
            its ``hyper_unet`` rows are read).
        one: the same of a one-shot evaluation (notebook 05); ``None`` or empty: no 1-shot row.
    """
    t3 = paper_tables()[_PAPER]
    cols = list(ORGANS)
    saw = FIVE_SHOT_SAW
    table = ["| model | " + " | ".join(cols) + " | what it saw in training |", "|---|" + "---:|" * len(cols) + "---|",
             "| MAML 5-shot (Alsaleh et al. 2024; quoted by the paper) | "
             + " | ".join(f"{t3[c]['maml_alsaleh2024']:.3f}" for c in cols) + f" | {saw['maml']} |",
             "| Hyper U-Net 5-shot, paper | " + " | ".join(f"{t3[c]['hyper_unet']:.3f}" for c in cols)
             + f" | {saw['paper']} |",
             "| **Hyper U-Net 5-shot, kit** (phantoms) | " + " | ".join(_kit_dsc(five, c) for c in cols)
             + f" | {saw['kit']} |"]
    if one:
        table.append("| Hyper U-Net 1-shot, kit (notebook 05) | " + " | ".join(_kit_dsc(one, c) for c in cols)
                     + f" | {saw['kit']} |")
    return "\n".join(table) + "\n\nKit: mean DSC over test cases × draws; — : not a held-out target of the kit."


def five_shot_reading(five: Mapping[tuple[str, str], Stat], one: Mapping[tuple[str, str], Stat] | None,
                      spacing: float) -> str:
    """Markdown: :func:`five_shot_table` read for liver and spleen (the kit's 5-shot Hyper U-Net, its 1-shot
    one where given, the paper's 5-shot Hyper U-Net and quoted MAML, DSC), and why the comparison is
    indicative only.

    Args:
        five, one: as :func:`five_shot_table`.
        spacing: the kit's voxel spacing in mm (the profile's ``data.spacing``).

    Raises:
        ValueError: ``spacing`` not a positive number.
    """
    if not isinstance(spacing, (int, float)) or isinstance(spacing, bool) or not spacing > 0:
        raise ValueError(f"spacing must be a positive number of mm, got {spacing!r}")
    t3 = paper_tables()[_PAPER]
    lines = []
    for organ in ("liver", "spleen"):
        k5, k1 = _kit_dsc(five, organ), _kit_dsc(one, organ) if one else "—"
        lines.append(f"- **{organ}**: the kit's 5-shot Hyper U-Net scores {k5} DSC"
                     + (f" (its 1-shot one {k1})" if k1 != "—" else "")
                     + f"; the paper's 5-shot Hyper U-Net {t3[organ]['hyper_unet']:.3f}, "
                       f"MAML {t3[organ]['maml_alsaleh2024']:.3f}.")
    return ("\n".join(lines) + "\n\nIndicative only: other data (phantoms at "
            f"{spacing:g} mm against real CT), other targets (MSD, not TotalSegmentator), and MAML "
            "quoted from other data. The kit's row says how much pooling five supports helps this hypernetwork; "
            "section 6 runs MAML in the kit's own harness.")


# ------------------------------------------------------------------------------ files
def read_maml(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``maml.csv`` (the protocol's columns, :func:`~hyperkit.evaluation.results_file.read_results`)."""
    return read_results(path)


def _write_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``maml.csv``: the evaluation's results file, written whole
    (:func:`~hyperkit.evaluation.results_file.write_results`)."""
    write_results(path, [dict(r) for r in rows])


@dataclass
class MamlRun:
    """What :func:`run_maml` made.

    Attributes:
        rows: ``maml.csv``'s rows (both methods).
        table: ``table3.md``.
        record: ``maml.json`` (run record).
        organs: the organs and their tasks.
        folds: ``organ -> {"iterations", "seconds", "tasks_seen", "curve", "threads", "reused"}``, in the
            organs' order.
        out_dir: the run folder.
    """

    rows: list[dict[str, Any]]
    table: str
    record: dict[str, Any]
    organs: list[OrganTask]
    folds: dict[str, dict[str, Any]]
    out_dir: Path

    def paired(self, metric: str = "dsc") -> dict[str, Paired]:
        """``organ -> Hyper U-Net − MAML`` (paired over draws and cases), and ``"all"`` pooled."""
        by_task = {o.task: o.organ for o in self.organs}
        return {by_task.get(k, k): v for k, v in _paired(self.rows, metric).items()}


def run_maml(checkpoint: str | Path, data_root: str | Path, out_dir: str | Path, *,
             organs: Sequence[str] = ORGANS, meta_iterations: int | None = None, draws: int | None = None,
             seed: int = 0, profile: str | None = None, split: str | Path | None = None,
             cache_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
             workers: int | None = None) -> MamlRun:
    """``hyperkit maml``: Table 3 with the kit's MAML and 5-shot Hyper U-Net (module docstring).

    Args:
        checkpoint: the hypernetwork (a run's ``best.pt``); its profile gives the preprocessing, the
            U-Net width, the protocol and the MAML budget (``evaluate.maml``).
        data_root: the data folder (phantoms or real data).
        out_dir: the run folder.
        organs: from :data:`ORGANS`; each is held out once, the others meta-train.
        meta_iterations: replaces ``evaluate.maml.meta_iterations``.
        draws: replaces ``evaluate.draws``.
        seed: draws, splits, MAML initialisation and meta-batches.
        profile: take the ``evaluate`` section from this profile (default: the checkpoint's).
        split: the hypernetwork's split file (default: the paper's), for what it saw.
        cache_dir: preprocessing cache.
        resume: continue a run in ``out_dir`` (finished folds are reused).
        progress: tqdm bars and a line per fold.
        workers: folds at once, each at one torch thread
            (:func:`~hyperkit.side_by_side.side_by_side`; default: one per torch thread); a
            fold's weights and rows do not depend on it (1: one after the other at the current thread count).

    Raises:
        ValueError: an unknown organ, an organ without labels or with fewer than ``shots + 1`` cases,
            a negative ``meta_iterations`` or ``seed``, ``workers`` < 1, a profile without ``evaluate.maml``.
        HyperkitError: ``out_dir`` holds a run and ``resume`` is false, or a run made otherwise.
    """
    from hyperkit.provenance import earlier_sessions, run_record
    from hyperkit.training.checkpoint import load_hypernet

    seed = check_seed(seed)
    if meta_iterations is not None and meta_iterations < 0:
        raise ValueError(f"meta_iterations must be >= 0, got {meta_iterations}")
    if draws is not None and draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    check_workers(workers)
    out = Path(out_dir)
    record_path = out / "maml.json"
    if record_path.exists() and not resume:
        raise HyperkitError(f"{out}: holds a MAML run; pass --resume to continue it, or choose another --out")
    start = time.perf_counter()
    hyper, cfg = load_hypernet(checkpoint, profile)
    base = protocol_for(cfg, profile)
    if base.maml is None:
        raise ConfigError(f"{checkpoint}: its profile has no evaluate.maml section (the MAML budget); "
                          "pass --profile quick or paper")
    mcfg = base.maml if meta_iterations is None else dataclasses.replace(base.maml, meta_iterations=meta_iterations)
    ecfg = protocol_for(cfg, profile, draws=draws, shots=mcfg.shots)
    datasets = discover_datasets(data_root)
    split_map = load_split(split) if split else None
    tcfg = TrainConfig.from_config(cfg)
    chosen = resolve_organs(datasets, organs, split_map, tcfg.train_splits)
    bank = organ_bank(datasets, chosen, cfg, cache_dir, progress)
    check_organs(bank, chosen, mcfg.shots)

    width = int(cfg["model"]["base_width"])
    fold_key = {"organs": {o.organ: o.task for o in chosen}, "maml": mcfg.as_dict(), "seed": seed,
                "data": dict(cfg["data"]), "base_width": width, **data_identity(data_root, datasets, "data_root")}
    protocol = {**fold_key, "checkpoint_sha256": sha256_file(checkpoint), "evaluate": ecfg.as_dict()}
    if record_path.exists():
        readers = {**FOLD_READERS, "evaluate": EvalConfig.from_mapping}
        theirs, ours = comparable_on_data(reread_config(json.loads(record_path.read_text()).get("protocol", {}),
                                                        readers), reread_config(protocol, readers), "data_root")
        if theirs != ours:
            diff = differences(theirs, ours)
            organs = [d.split(".", 1)[1] for d in diff if d.startswith("organs.")]  # one key per organ: say it once
            named = [d for d in diff if not d.startswith("organs.")] + \
                ([f"set of organs ({', '.join(organs)} differ)"] if organs else [])
            raise HyperkitError(f"{out}: holds a MAML run made with another {', '.join(named)}; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    record = run_record(cfg, seed, protocol=protocol, checkpoint=str(checkpoint), complete=False,
                        earlier=earlier_sessions(record_path))  # same protocol (checked above): its folds go on
    write_text_atomic(record_path, json.dumps(record, indent=2, default=str))

    # the 5-shot Hyper U-Net: the protocol itself, on the same bank (its own file, resumable)
    hyper_rows, _ = evaluate(hyper, bank, ecfg, out / "hyper_unet.csv", methods=["hyper_unet"], seed=seed,
                             resume=True, progress=progress)
    csv_path = out / "maml.csv"
    kept = [r for r in read_results(csv_path) if r["method"] == MAML_METHOD] if csv_path.is_file() else []
    maml_done = {t for t in {r["task"] for r in kept} if len({r["draw"] for r in kept if r["task"] == t}) >= ecfg.draws}
    made = {t: [r for r in kept if r["task"] == t] for t in maml_done}

    paths = {o.organ: out / "folds" / f"{o.organ}.pt" for o in chosen}
    # the starts of the folds to train, made here: init_unet seeds torch's global generator
    starts = {o.organ: init_unet(width, seed, o.organ) for o in chosen if not paths[o.organ].is_file()}

    def fold(o: OrganTask) -> tuple[MetaResult, bool, list[dict[str, Any]]]:
        net, result, reused = run_fold(bank, o, mcfg, width, seed, paths[o.organ], fold_key, progress,
                                       starts.get(o.organ))
        return result, reused, made[o.task] if o.task in maml_done else maml_rows(net, bank, o.task, ecfg, mcfg, seed)

    def in_order() -> list[dict[str, Any]]:  # the folds' rows in the organs' order, whatever order they finish in
        return [r for o in chosen for r in made.get(o.task, [])]

    # the folds side by side, one torch thread each: each computes what it computes alone at one thread
    folds: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(chosen), desc="MAML folds", disable=not progress)
    for k, (result, reused, fold_rows) in side_by_side([functools.partial(fold, o) for o in chosen], workers,
                                                       name="maml_fold"):
        o = chosen[k]
        folds[o.organ] = {**dataclasses.asdict(result), "reused": reused}
        if o.task not in made:
            made[o.task] = fold_rows
            _write_rows(csv_path, hyper_rows + in_order())
        bar.update()
        if progress:
            mean = [r["dsc"] for r in fold_rows]
            # print, not tqdm.write: tqdm.write redraws every bar, also one a worker thread is still building
            # (a notebook bar without its widget yet: AttributeError), as finetune's lines do
            print(f"[maml] {o.organ} held out: {'reused' if reused else 'meta-trained'} ({result.iterations} "
                  f"iterations, {result.seconds:.0f} s, {result.threads or '?'} thread(s)); "
                  f"DSC {sum(mean) / len(mean):.3f}", flush=True)
    bar.close()
    folds = {o.organ: folds[o.organ] for o in chosen}
    maml = in_order()
    rows = hyper_rows + maml
    _write_rows(csv_path, rows)
    roles = assign_roles([t.task_id for ds in datasets for t in ds.tasks()], split_map)
    tests = {o.organ: sorted({r["case"] for r in rows if r["task"] == o.task and r["method"] == MAML_METHOD})
             for o in chosen}
    saw = exposure(chosen, mcfg, folds, sum(r == "train" for r in roles.values()), tests)
    table = table3(rows, chosen, saw, mcfg, ecfg.tau)
    write_text_atomic(out / "table3.md", table + "\n")
    record.update(complete=True, wall_seconds=round(time.perf_counter() - start, 1), exposure=saw,
                  organs={o.organ: {"task": o.task, "role": o.role, "cases": len(bank.case_ids[o.task])}
                          for o in chosen},
                  folds={k: {kk: vv for kk, vv in v.items() if kk != "curve"} for k, v in folds.items()})
    write_text_atomic(record_path, json.dumps(record, indent=2, default=str))
    return MamlRun(rows, table, record, chosen, folds, out)


def maml_reading(run: MamlRun, paper: Mapping[str, Any] | None = None) -> str:
    """Markdown bullets: a MAML run read organ by organ (notebook 07, section 6).

    Per organ: whether the hypernetwork trained on its task, the kit's Hyper U-Net and MAML mean DSC,
    their paired difference with its 95 % CI over the (draw, case) pairs and what it says (the Hyper
    U-Net ahead, MAML ahead, or no difference resolved), and the paper's numbers; then all organs
    pooled; how many organs the paper quotes MAML ahead on; a caution for the organs the hypernetwork
    trained on; and the meta-iterations of the folds.

    Args:
        run: from :func:`run_maml` (its rows, organs and folds' ``iterations`` are read).
        paper: Table 3 as stored (``organ -> {"maml_alsaleh2024", "hyper_unet"}``, and a caption);
            default: the paper's (:func:`~hyperkit.evaluation.tables.paper_tables`).

    Raises:
        ValueError: an organ of ``run`` that ``paper`` has no numbers for.
    """
    paper3 = paper_tables()[_PAPER] if paper is None else paper
    missing = [o.organ for o in run.organs if not isinstance(paper3.get(o.organ), dict)]
    if missing:
        raise ValueError(f"paper has no Table 3 numbers for organ {missing[0]!r}")
    pairs = run.paired()
    lines = []
    for o in run.organs:
        p = pairs.get(o.organ)
        seen = "a training task of the hypernetwork" if o.role == "train" else "never seen by the hypernetwork"
        if p is None:
            lines.append(f"- **{o.organ}** ({seen}): no paired test cases.")
            continue
        verdict = ("the Hyper U-Net is ahead" if p.above_zero else "MAML is ahead" if p.below_zero
                   else "the interval includes 0: no difference resolved")
        lines.append(f"- **{o.organ}** ({seen}): Hyper U-Net {p.a:.3f}, MAML {p.b:.3f} DSC; Hyper − MAML {p.text()} "
                     f"over {p.n} (draw, case) pairs: {verdict}. Paper: Hyper {paper3[o.organ]['hyper_unet']:.3f}, "
                     f"MAML (quoted) {paper3[o.organ]['maml_alsaleh2024']:.3f}.")
    if "all" in pairs:
        lines.append(f"- **All organs pooled**: Hyper − MAML {pairs['all'].text()} over {pairs['all'].n} pairs.")
    ahead = [c for c in paper3 if isinstance(paper3[c], dict)
             and paper3[c]["maml_alsaleh2024"] > paper3[c]["hyper_unet"]]
    lines.append(f"- The paper quotes MAML ahead on {len(ahead)} of "
                 f"{sum(isinstance(v, dict) for v in paper3.values())} organs.")
    trained = [o.organ for o in run.organs if o.role == "train"]
    if trained:
        lines.append(f"- Read {', '.join(trained)} with care: the hypernetwork trained on "
                     f"{'it' if len(trained) == 1 else 'them'} (see the table's last column), while each MAML fold "
                     "never saw its organ: there the comparison is tilted towards the Hyper U-Net.")
    iters = sorted({f["iterations"] for f in run.folds.values()})
    lines.append(f"- Each MAML fold had {' or '.join(map(str, iters))} outer step(s) from a random start — a CPU "
                 "budget: the query-loss curves above say whether it was still learning when it stopped.")
    return "\n".join(lines)
