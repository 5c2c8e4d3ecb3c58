"""One evaluation run: checkpoint + data -> ``results.csv``, ``results.json``, ``results.md``.

This is what ``hyperkit evaluate`` and notebook 05 call. ``results.json`` records the
resolved protocol, seed, package versions and commit, the supervised baselines' training
facts and the timings; ``results.md`` holds Tables 1-2 beside the paper's numbers.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from hyperkit.data.layouts import discover_datasets
from hyperkit.data.identity import comparable_on_data, data_identity
from hyperkit.data.splits import assign_roles, load_split
from hyperkit.errors import HyperkitError
from hyperkit.files import sha256_file, write_text_atomic
from hyperkit.config import (ONE_SHOT_METHODS, EvalConfig, TrainConfig, check_seed, differences, protocol_for,
                             reread)
from hyperkit.evaluation.methods import methods_for
from hyperkit.evaluation.protocol import PROTOCOL_VERSION, evaluate, one_shot_plan
from hyperkit.evaluation.results_file import read_results, write_results
from hyperkit.evaluation.tables import TABLES, Stat, comparison_table, summarize, task_map
from hyperkit.metrics import voxel_tolerance
from hyperkit.provenance import earlier_sessions, run_record
from hyperkit.training.checkpoint import load_hypernet
from hyperkit.data.bank import TaskBank

__all__ = ["EvaluationResult", "resolve_tasks", "heldout_tasks", "heldout_bank", "run_evaluation", "timings",
           "models_dir", "model_path"]


@dataclass
class EvaluationResult:
    """Rows of the results CSV, their summary, the run record, and Tables 1-2 as Markdown."""

    rows: list[dict[str, Any]]
    summary: dict[tuple[str, str], Stat]
    record: dict[str, Any]
    tables: str
    csv_path: Path

    @property
    def protocol(self) -> EvalConfig:
        """The protocol these results were made with."""
        return EvalConfig.from_config(self.record["protocol"])

    def table(self, name: str) -> str:
        """One of :data:`~hyperkit.evaluation.tables.TABLES` as Markdown, with this run's NSD tolerances."""
        return comparison_table(self.summary, name, tau=self.protocol.tau, voxel_mm=self.record["nsd_voxel_mm"])


def resolve_tasks(patterns: Sequence[str] | None, task_ids: Iterable[str]) -> list[str]:
    """Task ids chosen by glob patterns, paper column names (``liver``), or ``paper`` (all ten).

    Raises:
        ValueError: a pattern that matches no task (with the available ids).
    """
    ids = sorted(task_ids)
    if not patterns:
        return ids
    tmap = task_map()
    chosen: list[str] = []
    for pat in patterns:
        globs = list(tmap.values()) if pat == "paper" else [tmap.get(pat, pat)]
        hits = [t for g in globs for t in fnmatch.filter(ids, g)]
        if not hits:
            raise ValueError(f"--tasks {pat!r} matches no held-out task; some are: {ids[:6]}")
        chosen += [t for t in hits if t not in chosen]
    return chosen


def timings(rows: Sequence[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    """Median model-making time per method and the ratio Conv U-Net (to its best validation) / Hyper U-Net."""
    out: dict[str, Any] = {}
    for m in ("hyper_unet", "rand_unet"):
        per_model = {(r["task"], r["draw"]): r["fit_seconds"] for r in rows if r["method"] == m}
        if per_model:
            out[f"{m}_fit_seconds_median"] = round(statistics.median(per_model.values()), 3)
    conv = [v["seconds_to_best"] for v in info.get("conv_unet", {}).values()]
    if conv:
        out["conv_unet_seconds_to_best_median"] = round(statistics.median(conv), 2)
        if out.get("hyper_unet_fit_seconds_median"):
            out["conv_over_hyper_ratio"] = round(out["conv_unet_seconds_to_best_median"]
                                                 / out["hyper_unet_fit_seconds_median"], 1)
    return out


def _heldout_ids(datasets: Sequence[Any], split_map: dict[str, list[str]] | None,
                 tasks: Sequence[str] | None) -> list[str]:
    all_ids = [t.task_id for ds in datasets for t in ds.tasks()]
    roles = assign_roles(all_ids, split_map)
    return resolve_tasks(tasks, [t for t in all_ids if roles[t] == "heldout"])


def heldout_tasks(data_root: str | Path, tasks: Sequence[str] | None = None,
                  split: str | Path | None = None) -> list[str]:
    """The held-out task ids of ``data_root`` that ``tasks`` choose (:func:`resolve_tasks`; all without),
    read from the file names only: for checking targets before any work.

    Raises:
        ValueError: a pattern that matches no held-out task.
    """
    return _heldout_ids(discover_datasets(data_root), load_split(split) if split else None, tasks)


def heldout_bank(data_root: str | Path, cfg: dict[str, Any], tasks: Sequence[str] | None = None,
                 split: str | Path | None = None, cache_dir: str | Path | None = None,
                 progress: bool = False) -> TaskBank:
    """The held-out tasks' patches (all, or those chosen by :func:`resolve_tasks` patterns)."""
    datasets = discover_datasets(data_root)
    split_map = load_split(split) if split else None
    chosen = _heldout_ids(datasets, split_map, tasks)
    return TaskBank.from_datasets(datasets, "heldout", cfg, split_map, cache_dir=cache_dir, progress=progress,
                                  keep=set(chosen).__contains__, root=data_root)


def run_evaluation(checkpoint: str | Path, data_root: str | Path, out_csv: str | Path, *,
                   tasks: Sequence[str] | None = None, methods: Sequence[str] = ONE_SHOT_METHODS,
                   draws: int | None = None, shots: int | None = None, seed: int = 0,
                   profile: str | None = None, split: str | Path | None = None,
                   overrides: dict[str, Any] | None = None, resume: bool = False, reuse: bool = False,
                   progress: bool = True, cache_dir: str | Path | None = None,
                   baselines_from: str | Path | Sequence[str | Path] | None = None) -> EvaluationResult:
    """Evaluate a trained hypernetwork and its baselines on held-out tasks.

    Args:
        checkpoint: a run's ``best.pt``.
        data_root: folder of datasets (the phantoms or real data).
        out_csv: results file; ``.json`` and ``.md`` files of the same stem are written beside it.
        tasks: patterns (see :func:`resolve_tasks`); default every held-out task.
        methods: which of ``hyper_unet``, ``rand_unet``, ``copy_support``, ``conv_unet``, ``all_unet``.
        draws, shots: override the profile's ``evaluate`` section.
        seed: support draws, splits, random decoders and baselines.
        profile: the profile the checkpoint must come from (default: the one it records).
        split: a split YAML (default: the paper's).
        overrides: more ``evaluate`` keys (e.g. ``{"conv": {"steps": 20}}``).
        resume: continue an interrupted run with the same protocol.
        reuse: return a finished run with the same protocol without computing; resume an
            unfinished one (what the notebook does).
        progress: tqdm bars.
        cache_dir: preprocessing cache.
        baselines_from: finished evaluations (results CSVs) whose Conv and All U-Net rows are
            taken instead of training them again: they do not depend on the hypernetwork, only on
            the data, tasks, seed, U-Net width and the baseline's own budget, which must be equal;
            each baseline comes from the first source that has it.

    Raises:
        HyperkitError: results of another protocol in the way, a bad checkpoint, or
        ``baselines_from`` made with another protocol.
    """
    seed = check_seed(seed)  # a negative seed failed only after the data was read, named by a task and "keys"
    out = _check_results_path(out_csv)  # before the checkpoint and the data are read
    start = time.perf_counter()
    hyper, cfg = load_hypernet(checkpoint, profile)
    ecfg = protocol_for(cfg, profile, overrides, draws=draws, shots=shots)
    datasets = discover_datasets(data_root)
    split_map = load_split(split) if split else None
    chosen = _heldout_ids(datasets, split_map, tasks)
    # the checkpoint and the data by content (the path only for people): a notebook and the command
    # line that name them by different paths, or a run folder copied elsewhere, share results
    protocol = {"version": PROTOCOL_VERSION, "checkpoint_sha256": sha256_file(checkpoint),
                **data_identity(data_root, datasets), "profile": cfg.get("name"),
                "tasks": chosen, "methods": list(methods), "seed": seed, "evaluate": ecfg.as_dict()}
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    old = _read_record(json_path)
    if old is not None and "protocol" not in old:
        raise HyperkitError(f"{json_path} exists and is not the record of an evaluation; it is kept: choose another "
                            "--out, or delete it first")
    if old is None and md_path.exists():
        raise HyperkitError(f"{md_path} exists beside no evaluation record ({json_path.name}); it is kept: choose "
                            "another --out, or delete it first")
    if old is None and out.exists() and (resume or reuse):  # its rows' protocol is unknown: they would be kept as ours
        read_results(out, drop_cut_row=True)  # a file of something else is named as such first
        raise HyperkitError(f"{out}: holds results beside no evaluation record ({json_path.name}) to tell what they "
                            "were made with; remove it or choose another --out")
    same = old is not None and "protocol" in old and _same_protocol(old["protocol"], protocol)
    if out.exists() and old is not None and not same and (resume or reuse):
        other = ", ".join(_protocol_differences(old, protocol))
        raise HyperkitError(f"{out}: holds results of another protocol (other {other}); remove it or choose "
                            "another --out")
    if reuse and same and old.get("complete"):
        rows = read_results(out)
        summary = summarize(rows)
        return EvaluationResult(rows, summary, old, _tables(summary, ecfg.tau, old["nsd_voxel_mm"]), out)
    if out.exists() and not (resume or reuse):  # before the record below replaces its .json
        raise HyperkitError(f"{out}: exists; pass --resume to continue it, or choose another file")
    if out.exists():
        read_results(out, drop_cut_row=True)  # a file of something else is refused before the record is written
    bank = TaskBank.from_datasets(datasets, "heldout", cfg, split_map, cache_dir=cache_dir, progress=progress,
                                  keep=set(chosen).__contains__, root=data_root)
    _check_plans(bank, ecfg, seed, methods)  # before anything is written: a failed check leaves no results file
    train_bank = None
    if "all_unet" in methods:
        tcfg = TrainConfig.from_config(cfg)
        train_bank = TaskBank.from_datasets(datasets, "train", cfg, split_map, case_splits=tcfg.train_splits,
                                            cache_dir=cache_dir, progress=progress, root=data_root)
    copied: dict[str, Any] = {}
    if baselines_from and not out.exists():
        sources = [baselines_from] if isinstance(baselines_from, (str, Path)) else list(baselines_from)
        copied = _copy_baselines([Path(p) for p in sources], out, protocol, cfg)
        resume = resume or bool(copied)
    # the training facts of the baselines whose rows a resume keeps (they are not trained again)
    kept = {**((old.get("baselines") or {}) if same and out.exists() else {}), **copied}
    record = run_record(cfg, seed, protocol=protocol, checkpoint=str(checkpoint), complete=False, baselines=kept,
                        earlier=earlier_sessions(old) if same and out.exists() else None)  # the record read above
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json_path, json.dumps(record, indent=2, default=str))

    def keep_facts(made: dict[str, Any]) -> None:  # on disk as each baseline's rows are: nothing lost to Ctrl-C
        record["baselines"] = _with_kept(kept, made)
        write_text_atomic(json_path, json.dumps(record, indent=2, default=str))

    rows, info = evaluate(hyper, bank, ecfg, out, methods=methods, seed=seed, train_bank=train_bank,
                          resume=resume or (reuse and same), progress=progress,
                          save_model=_model_saver(out, cfg, checkpoint), on_facts=keep_facts)
    info = _with_kept(kept, info)
    summary = summarize(rows)
    voxel_mm = voxel_tolerance(bank.spacing)
    record.update(complete=True, wall_seconds=round(time.perf_counter() - start, 1), baselines=info,
                  timings=timings(rows, info), tasks_dropped=bank.dropped, nsd_voxel_mm=voxel_mm,
                  summary={f"{t}|{m}": vars(s) for (t, m), s in sorted(summary.items())})
    write_text_atomic(json_path, json.dumps(record, indent=2, default=str))
    tables = _tables(summary, ecfg.tau, voxel_mm)
    write_text_atomic(md_path, tables + "\n")
    return EvaluationResult(rows, summary, record, tables, out)


def _with_kept(kept: dict[str, Any], made: dict[str, Any]) -> dict[str, Any]:
    """The training facts of this run (``made``) over those of the baselines a resume kept (per Conv U-Net
    target; the All U-Net's as a whole)."""
    info = dict(made)
    for method, facts in kept.items():
        new = info.get(method)
        info[method] = ({**facts, **new} if method == "conv_unet" else new) if new else facts
    return info


def _check_plans(bank: TaskBank, ecfg: EvalConfig, seed: int, methods: Sequence[str]) -> None:
    """Refuse a protocol whose one-shot draws some target cannot give (more ``shots`` than cases).

    Raises:
        HyperkitError: naming the target and its number of cases.
    """
    if not any(m.one_shot for m in methods_for(methods)):
        return
    for task in bank.task_ids:
        try:
            one_shot_plan(len(bank.case_ids[task]), ecfg, seed, task)
        except ValueError as exc:
            raise HyperkitError(f"{task}: {exc} (shots {ecfg.shots})") from exc


_SUPERVISED = ("conv_unet", "all_unet")
#: the budget section of ``evaluate`` that each supervised baseline depends on
_BUDGETS = {"conv_unet": "conv", "all_unet": "all"}
#: protocol entries the supervised baselines do not depend on
_ONE_SHOT_ONLY = ("checkpoint_sha256", "methods")
_ONE_SHOT_KEYS = ("draws", "shots", "adapt", "adapt_lr", "rand_adapt", "adapt_bce_weight")


def _read_evaluate(evaluate: Any) -> Any:
    """A recorded ``evaluate`` section read again with today's defaults (:func:`~hyperkit.config.reread`)."""
    return reread(evaluate, EvalConfig.from_mapping)


def _comparable(protocol: dict[str, Any]) -> dict[str, Any]:
    """What an evaluation's rows depend on, for comparing a stored protocol with a new one:
    the protocol, its ``evaluate`` section read again (:func:`_read_evaluate`), without the
    budget of a baseline that is not among its methods (``evaluate.conv`` without ``conv_unet``)."""
    out = dict(protocol)
    evaluate = _read_evaluate(protocol.get("evaluate"))
    if isinstance(evaluate, dict):
        for method, key in _BUDGETS.items():
            if method not in protocol.get("methods", ()):
                evaluate.pop(key, None)
    out["evaluate"] = evaluate
    return out


def _check_results_path(out_csv: str | Path) -> Path:
    """``--out`` as the results CSV to write: a ``.csv`` file name (its ``.json`` and ``.md`` go beside it).

    Raises:
        HyperkitError: a folder (or a name ending in a slash, which named a file ``newdir`` and its record
            ``newdir.json`` in the parent folder), or another ending.
    """
    out = Path(out_csv)
    if str(out_csv).endswith(("/", "\\")) or out.is_dir():
        raise HyperkitError(f"--out {out_csv} is a folder; give the results file to write, e.g. {out / 'results.csv'}")
    if out.suffix.lower() != ".csv":
        raise HyperkitError(f"--out {out_csv}: must end in .csv (the results table; its record and tables are "
                            "written beside it as .json and .md)")
    return out


def _read_record(path: Path) -> dict[str, Any] | None:
    """The JSON record at ``path`` (``None`` when there is none).

    Raises:
        HyperkitError: a file that is not a JSON object, named with the parser's complaint (it was a bare
            ``Expecting property name ...`` without the file).
    """
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HyperkitError(f"{path}: not readable as an evaluation record ({exc}); move it away or choose "
                            "another --out") from None
    if not isinstance(rec, dict):
        raise HyperkitError(f"{path}: not an evaluation record (a JSON {type(rec).__name__})")
    return rec


def _same_protocol(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a stored protocol is the new one (:func:`_comparable`, the data by content:
    :func:`~hyperkit.data.identity.comparable_on_data`)."""
    theirs, ours = comparable_on_data(old, new)
    return _comparable(theirs) == _comparable(ours)


def _protocol_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dotted keys at which a stored protocol differs from the new one (``evaluate.draws``, ``seed``)."""
    theirs, ours = comparable_on_data(old.get("protocol") or {}, new)
    return differences(_comparable(theirs), _comparable(ours)) or ["settings"]


def _baseline_protocol(protocol: dict[str, Any], method: str) -> dict[str, Any]:
    """What the rows of one supervised baseline depend on: the protocol without the checkpoint,
    the method list, the one-shot settings and the other baseline's budget."""
    out = {k: v for k, v in protocol.items() if k not in _ONE_SHOT_ONLY}
    drop = set(_ONE_SHOT_KEYS) | {key for m, key in _BUDGETS.items() if m != method}
    out["evaluate"] = {k: v for k, v in (_read_evaluate(protocol.get("evaluate")) or {}).items() if k not in drop}
    return out


def _copy_baselines(sources: Sequence[Path], out: Path, protocol: dict[str, Any],
                    cfg: dict[str, Any]) -> dict[str, Any]:
    """Start ``out`` with the Conv/All U-Net rows (and model files) of finished evaluations.

    Each baseline among ``protocol``'s methods is taken from the first source made with the
    same protocol for it (its own budget; the other baseline's budget and the one-shot
    settings may differ). A source from which nothing can be taken is refused.

    Returns:
        ``method -> training facts`` of the copied baselines.

    Raises:
        HyperkitError: a source that is not a finished evaluation, made at another U-Net width,
            or with no baseline of this protocol.
    """
    rows: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    for src in sources:
        src_json = src.with_suffix(".json")
        old = _read_record(src_json)
        if not old or not old.get("complete"):
            raise HyperkitError(f"{src}: not a finished evaluation (no complete {src_json.name})")
        if old.get("config", {}).get("model", {}).get("base_width") != cfg["model"]["base_width"]:
            raise HyperkitError(f"{src}: baselines of another U-Net width; they cannot be reused")
        theirs_rows = read_results(src)
        wanted = [m for m in _SUPERVISED if m in protocol["methods"] and m not in facts
                  and any(r["method"] == m for r in theirs_rows)]
        theirs_protocol, ours_protocol = comparable_on_data(old["protocol"], protocol)
        pairs = {m: (_baseline_protocol(theirs_protocol, m), _baseline_protocol(ours_protocol, m)) for m in wanted}
        same = [m for m, (theirs, ours) in pairs.items() if theirs == ours]
        if not same:
            diff = sorted({k for theirs, ours in pairs.values() for k in differences(theirs, ours)})
            raise HyperkitError(f"{src}: no baseline made with this protocol (differs in {diff or ['methods']}); "
                                "they cannot be reused")
        rows += [r for r in theirs_rows if r["method"] in same]
        for m in same:
            facts[m] = old.get("baselines", {}).get(m, {})
            if models_dir(src).is_dir():
                models_dir(out).mkdir(parents=True, exist_ok=True)
                for f in models_dir(src).glob(f"{m}-*"):
                    shutil.copy2(f, models_dir(out) / f.name)
    write_results(out, rows)  # whole or not at all: a resume reads it
    return facts


def models_dir(out_csv: str | Path) -> Path:
    """Where an evaluation keeps its trained baselines: ``<stem>-models/`` beside the CSV."""
    p = Path(out_csv)
    return p.with_name(f"{p.stem}-models")


def model_path(out_csv: str | Path, method: str, task: str) -> Path:
    """The model file of one trained baseline (a ``hyperkit segment`` model file)."""
    return models_dir(out_csv) / f"{method}-{task.replace('/', '__').replace('@', '_at_')}.pt"


def _model_saver(out_csv: Path, cfg: dict[str, Any], checkpoint: str | Path) -> Any:
    from hyperkit.config import DataConfig
    from hyperkit.data.tasks import modality_of, task_parts
    from hyperkit.inference.model_file import save_unet

    def save(method: str, task: str, unet: Any) -> None:
        channel = task_parts(task).channel
        save_unet(unet, model_path(out_csv, method, task),
                  data=DataConfig.from_config(cfg), channel=channel, modality=modality_of(channel),
                  profile=str(cfg.get("name")), task=task, source={"trained_by": "hyperkit evaluate",
                                                                   "checkpoint": str(checkpoint)})
    return save


def _tables(summary: dict[tuple[str, str], Stat], tau: float, voxel_mm: float) -> str:
    """Tables 1-2 as Markdown (``results.md``), NSD at ``tau`` mm and at one voxel (``voxel_mm``)."""
    return "\n\n".join(comparison_table(summary, t, tau=tau, voxel_mm=voxel_mm) for t in TABLES)
