"""The paper's ablations (Appendix A, Tables 4-6) and a few more, as one resumable run.

Every variant is the base hypernetwork with one thing changed, trained with the same
profile, seed, schedule and budget (or, where nothing is retrained, the base model itself),
and scored with the one-shot protocol (:mod:`hyperkit.evaluation.protocol`) on the same
targets, support draws and test cases. Each effect is the **paired** difference
``base - variant`` over the same (task, draw, case) triples with a 95 % bootstrap interval
(:mod:`hyperkit.evaluation.stats`); beside it stands the **seed-to-seed spread**: the same
paired difference between two base models that differ only in their training seed, so that
an effect can be told from noise.

=============  ===========================================  ============  ==================
variant        what changes                                 retrained?    paper
=============  ===========================================  ============  ==================
``step``       no gradient step after generation (A.1)      no            Table 4
``norm``       z_task = MAP(F_enc) without LayerNorm (Eq. 1) yes           Table 5 (A.2)
``pe``         z* = z_pos, no task conditioning (Eq. 6)     yes           Table 6 (A.3)
``seed``       the base recipe with training seed + 1       yes           (noise scale)
``shots2/3/5`` K supports pooled into one context           no            beyond the paper
``samplings1`` one context sampling instead of the profile's no           beyond the paper
``patches8``   8 context patches (4 fg + 4 bg) per vector   yes           beyond the paper
=============  ===========================================  ============  ==================

Layout of ``out``::

    ablation.json          run record (resolved config, seed, versions, commit, variants)
    train-<variant>/       training runs (``train-base`` unless a base run is given)
    eval/<variant>.csv     one-shot results of each model (+ .json/.md)
    ablation.csv           one row per (variant, target, metric): both sides, difference, CI
    tables.md              Tables 4-6 beside the paper's numbers, and the other variants

An interrupted run resumes where it stopped: finished trainings and evaluations are reused.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hyperkit.config import EvalConfig, TrainConfig, differences, load_profile, merge_config
from hyperkit.errors import HyperkitError
from hyperkit.evaluation.run import heldout_tasks, run_evaluation
from hyperkit.evaluation.stats import ALL_TASKS, Paired, paired_tasks, printed_above_zero
from hyperkit.evaluation.centre_prior import target_name
from hyperkit.evaluation.tables import paper_tables
from hyperkit.files import save_atomic, write_csv_atomic, write_text_atomic
from hyperkit.provenance import earlier_sessions, run_record
from hyperkit.training.checkpoint import load_checkpoint
from hyperkit.training.loop import ensure_trained, resolve_run_config, run_state, training_differences

__all__ = ["Variant", "VARIANTS", "DEFAULT_VARIANTS", "ABLATION_TARGETS", "run_ablation", "ablation_rows",
           "ablation_tables", "ablation_reading", "seed_spread", "told_from_noise", "read_ablation", "ABLATION_FIELDS"]

#: the six MSD targets of the paper's Appendix A
ABLATION_TARGETS: tuple[str, ...] = ("liver", "spleen", "hepatic_vessels", "pancreas", "brain_edema_flair",
                                     "heart_bssfp")
#: metrics compared (CSV columns of the results files)
METRICS: tuple[str, ...] = ("dsc", "nsd", "nsd_voxel")


@dataclass(frozen=True)
class Variant:
    """One change to the base hypernetwork or its one-shot use.

    Attributes:
        name: short name (``--only``).
        label: what changes, for tables.
        table: the paper's table key in ``paper_results/tables.yaml`` (``""``: beyond the paper).
        train: profile overrides of a retrained model (``{}``: the base model is used).
        seed_offset: added to the training seed (the seed-to-seed spread).
        evaluate: ``evaluate`` overrides at scoring time.
        shots: supports pooled per draw (``None``: the profile's).
        model: generation-time model settings written into a copy of the checkpoint's config
            (the weights do not depend on them).
    """

    name: str
    label: str
    table: str = ""
    train: Mapping[str, Any] = field(default_factory=dict)
    seed_offset: int = 0
    evaluate: Mapping[str, Any] = field(default_factory=dict)
    shots: int | None = None
    model: Mapping[str, Any] = field(default_factory=dict)

    @property
    def retrained(self) -> bool:
        return bool(self.train) or self.seed_offset != 0


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("step", "without the gradient step", "table4_gradient_step", evaluate={"adapt": False}),
    Variant("norm", "z_task without LayerNorm", "table5_task_norm", train={"model": {"task_norm": False}}),
    Variant("pe", "z* = z_pos (no task-specific codes)", "table6_task_pe", train={"model": {"task_pe": False}}),
    Variant("seed", "training seed + 1 (same recipe)", seed_offset=1),
    Variant("shots2", "2 supports pooled", shots=2),
    Variant("shots3", "3 supports pooled", shots=3),
    Variant("shots5", "5 supports pooled", shots=5),
    Variant("samplings1", "1 context sampling", model={"samplings": 1}),
    Variant("patches8", "8 context patches per context vector (4 fg + 4 bg)", train={"model": {"n_patches": 8}}),
)}
#: what ``hyperkit ablate`` runs without ``--only``
DEFAULT_VARIANTS: tuple[str, ...] = ("step", "norm", "pe", "seed", "shots2", "shots3", "shots5", "samplings1")


def _choose(only: Sequence[str] | None) -> list[Variant]:
    names = list(only) if only is not None else list(DEFAULT_VARIANTS)
    bad = [n for n in names if n not in VARIANTS]
    if bad or not names:  # an empty --only (",") names nothing: not the default list
        raise ValueError(f"unknown ablation variant(s) {bad}; known: {sorted(VARIANTS)}")
    return [VARIANTS[n] for n in dict.fromkeys(names)]


def _with_model_settings(checkpoint: Path, settings: Mapping[str, Any], out: Path) -> Path:
    """A copy of ``checkpoint`` whose recorded model config has ``settings`` (same weights)."""
    if out.is_file():
        return out
    ck = load_checkpoint(checkpoint)
    cfg = dict(ck["config"])
    cfg["model"] = merge_config(cfg["model"], settings, "model")
    save_atomic({**ck, "config": cfg}, out)
    return out


def _check_base_run(base_run: Path, cfg: Mapping[str, Any], data_root: str | Path, episodes: int | None,
                    seed: int) -> None:
    """Refuse a ``--base`` that is not a finished training run of this recipe (nothing is trained into it).

    Raises:
        HyperkitError: no run there, an unfinished one, one with another budget (``--episodes``: named with the
            run's own) or one trained with other settings (named with both values).
    """
    tcfg, _, resolved = resolve_run_config(cfg, episodes, seed)
    state = run_state(base_run)
    if state is None:
        raise HyperkitError(f"--base {base_run}: holds no training run (no last.pt); train one there first "
                            "(hyperkit train --out DIR) or leave --base out")
    differ = training_differences(state["config"], resolved, episodes=False)
    if differ:  # the user's own run: never advise removing it (ensure_trained's message for its own folders)
        named = "; ".join(f"{where}: {theirs!r} there, {ours!r} here" for where, theirs, ours in differ)
        hint = [f"--seed {theirs}" for where, theirs, _ in differ if where == "seed"]
        hint += ["a --profile YAML with its settings"] if any(where != "seed" for where, _, _ in differ) else []
        raise HyperkitError(f"--base {base_run}: its training run was made with other settings ({named}); "
                            f"ablate with its settings ({' and '.join(hint)}) or leave --base out")
    episode, budget = state["episode"], (state["config"].get("train") or {}).get("episodes", tcfg.episodes)
    done = episode >= budget or state["stopped_early"]
    if budget != tcfg.episodes and done:
        how = (f"stopped early at episode {episode} of its own budget of {budget} episodes" if state["stopped_early"]
               else f"stopped at its own budget of {budget} episodes")
        more = (f", or finish it (hyperkit train --out {base_run} --resume --episodes {tcfg.episodes})"
                if tcfg.episodes > budget and not state["stopped_early"] else "")
        raise HyperkitError(f"--base {base_run}: its training run {how}, this ablation trains {tcfg.episodes}; "
                            f"pass --episodes {budget} to ablate against it{more}")
    if not done:
        also = f" and pass --episodes {budget}" if budget != tcfg.episodes else ""
        raise HyperkitError(f"--base {base_run}: its training run is unfinished (episode {episode} of "
                            f"{budget}); finish it (hyperkit train --resume){also} or leave --base out")
    ensure_trained(cfg, data_root, base_run, episodes=episodes, seed=seed)  # a finished run: only its config is checked


#: what a resumed ablation must share with the one in its folder (the variants may differ: a resume may add some)
_RESUMED_SETTINGS: tuple[str, ...] = ("config", "seed", "episodes", "tasks", "draws", "eval_seed")


def _check_resumed_settings(record_path: Path, record: Mapping[str, Any], profile_values: Mapping[str, Any]) -> None:
    """Refuse to resume the ablation recorded in ``record_path`` with other settings (before anything is
    written): its models and scores would be mixed with others, and its evaluations refused one by one.
    ``profile_values``: the profile's ``episodes`` and ``draws``, which an older record's ``None`` stands for.

    Raises:
        HyperkitError: a setting of :data:`_RESUMED_SETTINGS` differs, named with both values (config:
            the sections that differ), or the record cannot be read.
    """
    try:
        old = json.loads(record_path.read_text())
    except (OSError, ValueError) as exc:
        raise HyperkitError(f"{record_path}: not readable as an ablation record ({exc})") from None
    if not isinstance(old, dict):
        raise HyperkitError(f"{record_path}: not an ablation record")
    new = json.loads(json.dumps({k: record[k] for k in _RESUMED_SETTINGS}, default=str))
    differ = []
    for key in _RESUMED_SETTINGS:
        if key not in old or old[key] == new[key]:  # a record of an older kit may lack a setting
            continue
        if old[key] is None and profile_values.get(key) == new[key]:  # an older kit's record of "the profile's"
            continue  # (a profile that differs is named with the config)
        if key == "config" and isinstance(old[key], dict):  # the sections that hold a difference
            sections = sorted({where.split(".")[0] for where in differences(old[key], new[key])})
            differ.append(f"the profile's {', '.join(sections)}")
        else:
            differ.append(f"{key} {old[key]!r}, now {new[key]!r}")
    if differ:
        raise HyperkitError(f"{record_path.parent}: holds an ablation made with other settings "
                            f"({'; '.join(differ)}); resume it with the same settings, or choose another --out")


def run_ablation(profile: str | Path, data_root: str | Path, out_dir: str | Path, *,
                 only: Sequence[str] | None = None, base_run: str | Path | None = None,
                 episodes: int | None = None, seed: int | None = None,
                 tasks: Sequence[str] = ABLATION_TARGETS, draws: int | None = None, eval_seed: int = 0,
                 resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train what the chosen variants need, evaluate every model on the same draws, compare.

    Args:
        profile: ``quick``, ``paper`` or a profile YAML.
        data_root: the data folder (training and held-out datasets).
        out_dir: the ablation folder (layout in the module docstring).
        only: variant names (default :data:`DEFAULT_VARIANTS`).
        base_run: an existing, finished run folder of the base recipe to reuse (its config must equal
            the profile's with ``episodes``/``seed``; otherwise it is refused before anything is written).
        episodes, seed: training budget and seed of every model (default: the profile's).
        tasks: held-out targets (paper names or patterns).
        draws: support draws per target (default: the profile's).
        eval_seed: seed of support draws and test splits (the same for every model).
        resume: continue an existing ``out_dir``.
        progress: progress bars.
        log: where one line per step goes.

    Returns:
        The rows written to ``ablation.csv``.

    Raises:
        HyperkitError: ``out_dir`` holds an ablation and ``resume`` is false, or one made with other settings
            (profile, seed, episodes, targets, draws, evaluation seed), a run folder holds another config,
            or ``base_run`` holds no finished run.
        ValueError: unknown variant names, a negative seed, a target that matches no held-out task.
    """
    variants = _choose(only)
    cfg = load_profile(profile)
    tcfg, base_seed, _ = resolve_run_config(cfg, episodes, seed)  # seed and budget checked before anything is written
    out = Path(out_dir)
    record_path = out / "ablation.json"
    if record_path.exists() and not resume:
        raise HyperkitError(f"{out}: holds an ablation; pass --resume to continue it, or choose another --out")
    # the budget and draws resolved, so that a value spelt out equals the profile's left out
    record = run_record(cfg, base_seed, episodes=tcfg.episodes, variants=[v.name for v in variants],
                        tasks=list(tasks), draws=EvalConfig.from_config(cfg, draws=draws).draws,
                        eval_seed=eval_seed, complete=False,
                        base_run=str(base_run) if base_run else None, earlier=earlier_sessions(record_path))
    if record_path.exists():
        _check_resumed_settings(record_path, record, {"episodes": TrainConfig.from_config(cfg).episodes,
                                                      "draws": EvalConfig.from_config(cfg).draws})
    heldout_tasks(data_root, tasks)  # every target exists before any training
    if base_run:
        _check_base_run(Path(base_run), cfg, data_root, episodes, base_seed)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record_path, json.dumps(record, indent=2, default=str))

    def train(name: str, overrides: Mapping[str, Any], run_seed: int, run_dir: Path) -> Path:
        log(f"[ablate] model {name}: {run_dir}")
        ensure_trained(merge_config(cfg, overrides) if overrides else cfg, data_root, run_dir,
                       episodes=episodes, seed=run_seed, progress=progress)
        return run_dir / "best.pt"

    base_ckpt = train("base", {}, base_seed, Path(base_run) if base_run else out / "train-base")

    def score(name: str, checkpoint: Path, v: Variant | None = None) -> list[dict[str, Any]]:
        log(f"[ablate] scoring {name}")
        res = run_evaluation(checkpoint, data_root, out / "eval" / f"{name}.csv", tasks=list(tasks),
                             methods=["hyper_unet"], draws=draws, shots=v.shots if v else None, seed=eval_seed,
                             overrides=dict(v.evaluate) if v and v.evaluate else None, reuse=True,
                             progress=progress)
        return res.rows

    base_rows = score("base", base_ckpt)
    rows: list[dict[str, Any]] = []
    for v in variants:
        ckpt = base_ckpt
        if v.retrained:
            ckpt = train(v.name, v.train, base_seed + v.seed_offset, out / f"train-{v.name}")
        if v.model:  # generation-time settings on the variant's own weights (the base's unless retrained)
            ckpt = _with_model_settings(ckpt, v.model, out / "models" / f"{v.name}.pt")
        rows += ablation_rows(v, base_rows, score(v.name, ckpt, v))
    _write_csv(rows, out / "ablation.csv")
    write_text_atomic(out / "tables.md", ablation_tables(rows) + "\n")
    record.update(complete=True)
    write_text_atomic(record_path, json.dumps(record, indent=2, default=str))
    log(f"[ablate] wrote {out / 'ablation.csv'} and {out / 'tables.md'}")
    return rows


def ablation_rows(variant: Variant, base_rows: Sequence[Mapping[str, Any]],
                  variant_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (target, metric) and one for all targets pooled: base vs variant, paired.

    ``base`` is the kit's normal model (the paper's "with" column), ``variant`` the changed
    one; ``diff = base - variant`` with its 95 % bootstrap CI over the same draws and test cases
    (:func:`~hyperkit.evaluation.stats.paired_tasks`).
    """
    out = []
    for metric in METRICS:
        for task, p in paired_tasks(base_rows, variant_rows, metric, pool=ALL_TASKS).items():
            out.append(_row(variant, "all" if task == ALL_TASKS else target_name(task), metric, p))
    return out


def _row(v: Variant, target: str, metric: str, p: Paired) -> dict[str, Any]:
    return {"variant": v.name, "label": v.label, "table": v.table, "target": target, "metric": metric,
            "base": round(p.a, 4), "variant_score": round(p.b, 4), "diff": round(p.diff, 4),
            "ci_lo": round(p.lo, 4), "ci_hi": round(p.hi, 4), "pairs": p.n}


#: the columns of ``ablation.csv``, in order
ABLATION_FIELDS: tuple[str, ...] = ("variant", "label", "table", "target", "metric", "base", "variant_score", "diff",
                                    "ci_lo", "ci_hi", "pairs")


def _write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    write_csv_atomic(path, ABLATION_FIELDS, rows, lineterminator="\n")


def read_ablation(path: str | Path) -> list[dict[str, Any]]:
    """Rows of an ``ablation.csv`` (:data:`ABLATION_FIELDS`) with numbers parsed.

    Raises:
        HyperkitError: not an ``ablation.csv`` (other columns), or a row whose values do not parse
            (named by its line).
    """
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != ABLATION_FIELDS:
            raise HyperkitError(f"{path}: not an ablation.csv (columns {reader.fieldnames}, expected "
                                f"{list(ABLATION_FIELDS)})")
        rows = []
        for r in reader:
            try:
                for k in ("base", "variant_score", "diff", "ci_lo", "ci_hi"):
                    r[k] = float(r[k])
                r["pairs"] = int(r["pairs"])
            except (TypeError, ValueError) as exc:
                raise HyperkitError(f"{path}: line {reader.line_num} is not an ablation row ({exc})") from None
            rows.append(r)
    return rows


def seed_spread(rows: Sequence[Mapping[str, Any]], metric: str = "dsc") -> dict[str, float]:
    """Per target (and ``"all"``), how far retraining alone moves the score: ``max(|ci_lo|, |ci_hi|)``
    of the ``seed`` variant's row (base − the same recipe with another training seed).

    An effect whose difference lies inside this band cannot be told from retraining noise.
    Empty when the run has no ``seed`` variant.
    """
    return {r["target"]: max(abs(float(r["ci_lo"])), abs(float(r["ci_hi"]))) for r in rows
            if r["variant"] == "seed" and r["metric"] == metric}


def told_from_noise(row: Mapping[str, Any], spread: Mapping[str, float]) -> tuple[bool, bool]:
    """``(the CI excludes 0, and also |diff| lies beyond the seed spread of its target)`` for one
    row of ``ablation.csv``; the second is False where ``spread`` has no entry for the target
    (:func:`seed_spread`). "Excludes 0" is the report's rule
    (:func:`~hyperkit.evaluation.stats.printed_above_zero`): an end printed as ``+0.000`` or
    ``-0.000`` touches 0."""
    excludes = printed_above_zero(float(row["ci_lo"])) or printed_above_zero(-float(row["ci_hi"]))
    s = spread.get(row["target"])
    return excludes, excludes and s is not None and abs(float(row["diff"])) > s


def _ci(r: Mapping[str, Any]) -> str:
    return f"{r['diff']:+.3f} [{r['ci_lo']:+.3f}, {r['ci_hi']:+.3f}]"


def ablation_tables(rows: Sequence[Mapping[str, Any]], metric: str = "dsc",
                    variants: Sequence[str] | None = None) -> str:
    """Markdown: Tables 4-6 beside the paper's (mean of the paper's "with"/"without"), then the
    seed-to-seed spread and the variants beyond the paper.

    Args:
        rows: rows of ``ablation.csv`` (:func:`read_ablation`).
        metric: ``dsc``, ``nsd`` or ``nsd_voxel``.
        variants: the variants whose tables are shown, in the order of :data:`VARIANTS` (e.g. those with
            a paper table, ``step``, ``norm`` and ``pe``); a named variant without rows has no table.
            ``None``: every variant in ``rows``. The seed spread column and the closing note stay.

    Raises:
        ValueError: ``variants`` names a variant that :data:`VARIANTS` does not know.
    """
    if variants is not None:
        bad = [v for v in variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"unknown ablation variant(s) {bad}; known: {sorted(VARIANTS)}")
    paper = paper_tables()
    by = {(r["variant"], r["target"], r["metric"]): r for r in rows}
    seed = {t: r for (v, t, m), r in by.items() if v == "seed" and m == metric}
    key = metric if metric in ("dsc", "nsd") else "nsd"
    parts = []
    for v in VARIANTS.values():
        mine = [r for r in rows if r["variant"] == v.name and r["metric"] == metric]
        if not mine or (variants is not None and v.name not in variants):
            continue
        ref = paper.get(v.table, {}) if v.table else {}
        title = (f"**{ref.get('caption', v.table)}** — kit base vs {v.label}" if ref
                 else f"**Beyond the paper: {v.label}**")
        head = ["target", f"kit base {metric.upper()}", f"kit {v.label}", "kit base − variant [95 % CI]"]
        if seed:
            head.append("seed spread (seed 0 − seed 1) [95 % CI]")
        if ref:
            head += ["paper with", "paper without", "paper with − without"]
        lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
        for r in mine:
            cells = [r["target"], f"{r['base']:.3f}", f"{r['variant_score']:.3f}", _ci(r)]
            if seed:
                cells.append(_ci(seed[r["target"]]) if r["target"] in seed else "—")
            if ref:
                p = ref.get(r["target"])
                if p:
                    w, wo = p["with"][key][0], p["without"][key][0]
                    cells += [f"{w:.3f}", f"{wo:.3f}", f"{w - wo:+.3f}"]
                else:
                    cells += ["—"] * 3
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    note = ("Kit: mean over test cases × draws; differences are paired over the same (draw, case) with a "
            "bootstrap 95 % CI (2,000 resamples of each target's draws and test cases, with small-sample corrections). "
            "Paper: Appendix A, its mean over cases; its NSD at 2 mm."
            + (" The seed spread is the same paired difference between two base models that differ only in their "
               "training seed: an effect inside it is not told from noise." if seed else ""))
    return "\n\n".join(parts + [note])


def ablation_reading(rows: Sequence[Mapping[str, Any]], paper: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Markdown: the results of an ablation read out, DSC only, one bullet for the seed spread and one per
    variant (all but ``seed``, in the order of ``rows``).

    The seed bullet gives the seed variant's pooled difference with its CI and the largest per-target
    spread (:func:`seed_spread`), or says that the run has none. Each variant's bullet gives its pooled
    difference base − variant with its CI and whether it is told from noise (:func:`told_from_noise`),
    the targets on which the CI excludes 0, those on which the effect is also beyond the seed spread,
    and, for a variant with a paper table, on how many targets the sign agrees with the paper's
    "with − without" (and the targets of opposite or zero sign).

    Args:
        rows: rows of ``ablation.csv`` (:func:`read_ablation`) of variants in :data:`VARIANTS`; every
            variant (and ``seed``, when run) has a row for ``"all"`` targets pooled.
        paper: the paper's tables (:func:`~hyperkit.evaluation.tables.paper_tables`, the default):
            ``table -> target -> {"with"|"without": {"dsc": [mean, std]}}``.
    """
    paper = paper_tables() if paper is None else paper
    by = {(r["variant"], r["target"], r["metric"]): r for r in rows}
    effects = [v for v in dict.fromkeys(r["variant"] for r in rows) if v != "seed"]
    seed_band = seed_spread(rows)
    lines = []
    if seed_band:
        s = by[("seed", "all", "dsc")]
        lines.append(f"- **Seed spread**: two base models that differ only in their training seed differ by "
                     f"{s['diff']:+.3f} [{s['ci_lo']:+.3f}, {s['ci_hi']:+.3f}] DSC over all targets "
                     f"(per target up to ±{max(v for t, v in seed_band.items() if t != 'all'):.3f}).")
    else:
        lines.append("- **No seed spread** in this run (variant `seed` not run): CIs alone cannot separate an "
                     "effect from retraining noise.")
    for v in effects:
        mine = [r for r in rows if r["variant"] == v and r["metric"] == "dsc" and r["target"] != "all"]
        ref = paper.get(VARIANTS[v].table, {}) if VARIANTS[v].table else {}
        excl = [r["target"] for r in mine if told_from_noise(r, seed_band)[0]]
        beyond = [r["target"] for r in mine if told_from_noise(r, seed_band)[1]]
        pooled = by[(v, "all", "dsc")]
        excludes, told = told_from_noise(pooled, seed_band)
        if told:
            verdict = ", told from noise"
        elif excludes:
            verdict = ", CI excludes 0 but inside the seed spread" if seed_band else ", CI excludes 0"
        else:
            verdict = ", not told from 0"
        text = (f"- **{VARIANTS[v].label}** (`{v}`): base − variant {_ci(pooled)} over all targets{verdict}; "
                f"CI excludes 0 on {len(excl)}/{len(mine)} targets ({', '.join(excl) or 'none'})"
                + (f", beyond the seed spread on {len(beyond)} ({', '.join(beyond) or 'none'})" if seed_band else ""))
        signs = {r["target"]: _sign(r["diff"]) * _sign(ref[r["target"]]["with"]["dsc"][0]
                                                      - ref[r["target"]]["without"]["dsc"][0])
                 for r in mine if r["target"] in ref}
        if signs:
            text += (f"; same sign as the paper on {sum(s > 0 for s in signs.values())}/{len(signs)} targets "
                     f"(opposite on {', '.join(t for t, s in signs.items() if s < 0) or 'none'}; "
                     f"zero on {', '.join(t for t, s in signs.items() if s == 0) or 'none'})")
        lines.append(text + ".")
    return "\n".join(lines)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)
