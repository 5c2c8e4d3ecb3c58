"""Limited-data fine-tuning (paper §4 "Limited Data", Figure 3).

For a target with ``N`` labelled cases available (``N`` in e.g. {2, 4, 8}): the paper builds
"a minimal train-test split in which 20 % of the samples (at least one) are held out",
generates a Hyper U-Net from the training subset and fine-tunes it on that subset "using
standard supervised training" with early stopping. Here, per target, ``N`` and repeat:

1. **Subset**: ``N`` cases drawn from the target's cases (seeded by target, ``N`` and repeat);
   ``max(1, round(0.2 N))`` of them are the **test** cases, the rest ``T`` the training subset.
2. **Start**: three starting U-Nets of the same architecture, each fine-tuned the same way:

   - ``hyper_ft``: generated from all of ``T`` pooled as one K-shot context (``K = |T|``),
     then the profile's gradient step (A.1), then fine-tuned;
   - ``rand_ft``: the Rand U-Net (the hypernetwork's trained encoder, a random decoder):
     the *encoder-pretrained* baseline;
   - ``scratch_ft``: a U-Net initialised at random (a Conv U-Net trained on ``T`` only).

3. **Fine-tuning**: every parameter, AdamW on Dice + BCE with the training augmentation
   (:func:`~hyperkit.evaluation.baselines.train_supervised`). **Early stopping never sees a
   test case**: with ``|T| >= 3`` one case of ``T`` is held out of the fine-tuning (it still
   serves the generation) and stopping follows its Dice; with ``|T| <= 2`` (``N = 2`` leaves
   one training case) there is no case to spare, and stopping follows the un-augmented Dice
   of the training cases themselves, within the step budget (a fit criterion, not a
   generalisation one: say so when reading ``N = 2``).
4. **Score** on the test cases: DSC, NSD at ``tau`` and at one voxel (as the one-shot protocol).

Rows go to a CSV as they are made; an interrupted run resumes at the first unfinished
(target, N, repeat, method).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import torch

from hyperkit.config import EvalConfig, SupervisedConfig, check_seed, differences, reread
from hyperkit.data.bank import TaskBank
from hyperkit.data.identity import comparable_on_data, data_identity
from hyperkit.data.tasks import task_parts
from hyperkit.errors import HyperkitError
from hyperkit.evaluation.baselines import Samples, SupervisedJob, SupervisedResult, predict, train_supervised_many
from hyperkit.evaluation.methods import one_shot_model
from hyperkit.evaluation.protocol import score
from hyperkit.side_by_side import check_workers
from hyperkit.evaluation.stats import paired_starts
from hyperkit.files import appended_lines, write_csv_atomic, write_text_atomic
from hyperkit.model.hypernet import HyperUNet
from hyperkit.model.unet import UNet3D
from hyperkit.seeds import derive, torch_generator

__all__ = ["FT_METHODS", "FT_FIELDS", "FinetuneSubset", "finetune_subset", "finetune", "read_finetune", "curve",
           "reference_lines", "finetune_table", "run_finetune", "paired_reading", "finetune_reading"]

#: starting points, each fine-tuned the same way
FT_METHODS: tuple[str, ...] = ("hyper_ft", "rand_ft", "scratch_ft")
#: columns of the fine-tuning CSV
FT_FIELDS: tuple[str, ...] = ("task", "n", "repeat", "method", "train_cases", "stop_on", "case", "dsc", "nsd",
                              "nsd_voxel", "zero_shot_dsc", "steps", "best_step", "seconds")


@dataclass(frozen=True)
class FinetuneSubset:
    """The cases of one (target, N, repeat).

    Attributes:
        train: indices that generate and fine-tune (all of ``T`` generates).
        val: held out of fine-tuning for early stopping (empty when ``|T| <= 2``).
        test: scored cases, never seen before scoring.
    """

    train: list[int]
    val: list[int]
    test: list[int]

    @property
    def generate_from(self) -> list[int]:
        """``T``: every non-test case (the K-shot context of ``hyper_ft``)."""
        return sorted(self.train + self.val)


def finetune_subset(n_cases: int, n: int, seed: int, task: str, repeat: int,
                    test_fraction: float = 0.2) -> FinetuneSubset:
    """Draw ``n`` of ``n_cases`` cases and split them (module docstring, step 1 and 3).

    Raises:
        ValueError: ``n < 2`` or ``n > n_cases``.
    """
    if not 2 <= n <= n_cases:
        raise ValueError(f"N must lie in 2..{n_cases} (the target's cases), got {n}")
    order = torch.randperm(n_cases, generator=torch_generator(seed, "finetune", task, n, repeat)).tolist()[:n]
    n_test = max(1, round(test_fraction * n))
    test, rest = sorted(order[:n_test]), order[n_test:]
    if len(rest) >= 3:
        return FinetuneSubset(sorted(rest[1:]), [rest[0]], test)
    return FinetuneSubset(sorted(rest), [], test)


def _start(method: str, hyper: HyperUNet, images: torch.Tensor, masks: torch.Tensor, cfg: EvalConfig,
           seed: int, key: tuple[str, int, int]) -> UNet3D:
    """The U-Net a fine-tuning starts from: the one-shot protocol's Hyper or Rand U-Net
    (:func:`~hyperkit.evaluation.methods.one_shot_model`, gradient step as the protocol says),
    or a U-Net initialised at random."""
    if method in ("hyper_ft", "rand_ft"):
        return one_shot_model("hyper_unet" if method == "hyper_ft" else "rand_unet", hyper, images, masks, cfg,
                              torch_generator(seed, "finetune_rand", *key))
    if method == "scratch_ft":
        torch.manual_seed(derive(seed, "finetune_scratch", *key))
        return UNet3D(hyper.unet.config["base_width"])
    raise ValueError(f"fine-tuning start must be one of {FT_METHODS}, got {method!r}")


def _check(repeats: int, methods: Sequence[str], seed: int, ns: Sequence[int]) -> int:
    """The settings a fine-tuning run needs, checked before anything is read or written; returns the seed
    as the integer it is read as (``4.0`` and ``"4"``: 4, the stream of seed 4)."""
    seed = check_seed(seed)
    small = [n for n in ns if n < 2]
    if not ns or small:
        raise ValueError(f"subset sizes N must be >= 2 (one to train on, one to test), got {list(ns)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    bad = [m for m in methods if m not in FT_METHODS]
    if bad or not methods:
        raise ValueError(f"unknown fine-tuning start(s) {bad or list(methods)}; known: {list(FT_METHODS)}")
    return seed


def _done(rows: Iterable[dict[str, Any]], expected: Mapping[tuple[str, int, int, str], int] | None = None
          ) -> set[tuple[str, int, int, str]]:
    """The (task, N, repeat, start) fine-tunings that ``rows`` hold; for one in ``expected``, only
    with exactly that many test-case rows (an interrupted write may have cut its rows short)."""
    cases: dict[tuple[str, int, int, str], set[str]] = {}
    for r in rows:
        cases.setdefault((r["task"], int(r["n"]), int(r["repeat"]), r["method"]), set()).add(r["case"])
    expected = expected or {}
    return {k for k, c in cases.items() if expected.get(k, len(c)) == len(c)}


def finetune(hyper: HyperUNet, bank: TaskBank, cfg: EvalConfig, budget: SupervisedConfig, out_csv: str | Path, *,
             ns: Sequence[int] = (2, 4, 8), repeats: int = 3, methods: Sequence[str] = FT_METHODS, seed: int = 0,
             resume: bool = False, progress: bool = True, workers: int | None = None) -> list[dict[str, Any]]:
    """Fine-tune every start on every (target, N, repeat) of ``bank``; one CSV row per test case.

    Per target, every start is made (and scored before training) in the calling thread, then
    the trainings run side by side, one per torch thread
    (:func:`~hyperkit.evaluation.baselines.train_supervised_many`): each computes what it
    computes alone at one thread, so the rows do not depend on ``workers``; they are written
    as the trainings finish.

    Args:
        hyper: the trained hypernetwork (eval mode).
        bank: the targets' patches (``(N, 1, S, S, S)`` per task).
        cfg: the one-shot protocol (gradient step, ``tau``).
        budget: the fine-tuning budget (steps, batch, lr, validation interval, patience, warm-up).
        out_csv: results file (:data:`FT_FIELDS`).
        ns: subset sizes; each must fit the target's cases.
        repeats: random subsets per ``N``.
        methods: starts from :data:`FT_METHODS`.
        seed: subsets, random decoders and initialisations.
        resume: keep the complete fine-tunings in ``out_csv`` (a row for each test case; a last row
            cut by an interrupted write is dropped) and do only what is missing.
        progress: a line per finished fine-tuning.
        workers: trainings at once (default: one per torch thread).

    Raises:
        ValueError: a bad ``N``, ``repeats``, method or seed.
        HyperkitError: ``out_csv`` exists and ``resume`` is false.
    """
    seed = _check(repeats, methods, seed, ns)
    out = Path(out_csv)
    if out.exists() and not resume:
        raise HyperkitError(f"{out}: exists; pass --resume to continue it, or choose another --out")
    # an empty file is what a run killed before its header reached the disk leaves: start it afresh
    new = not out.exists() or out.stat().st_size == 0
    rows = [] if new else read_finetune(out, drop_cut_row=True)
    subsets = {(task, n, r): finetune_subset(len(bank.case_ids[task]), n, seed, task, r)
               for task in bank.task_ids for n in ns for r in range(repeats)}
    expected = {(task, n, r, method): len(sub.test) for (task, n, r), sub in subsets.items() for method in methods}
    done = _done(rows, expected)
    rows = [r for r in rows if (r["task"], int(r["n"]), int(r["repeat"]), r["method"]) in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    # the header and the complete fine-tunings kept, written whole (a cut row or a partial training dropped),
    # on disk before the first (long) training: a killed run resumes
    write_csv_atomic(out, FT_FIELDS, rows, lineterminator="\n")
    with open(out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FT_FIELDS, lineterminator="\n")
        for task in bank.task_ids:  # one target at a time: its starts, then their trainings side by side
            todo = [(n, r, method, subsets[task, n, r])
                    for n in ns for r in range(repeats) for method in methods if (task, n, r, method) not in done]
            started = [_prepare(hyper, bank, task, sub, method, cfg, budget, seed, (task, n, r))
                       for n, r, method, sub in todo]
            for k, res in train_supervised_many([s.job for s in started], workers=workers):
                n, r, method, _ = todo[k]
                made = _finish(started[k], res, bank, cfg)
                for row in made:
                    row.update(task=task, n=n, repeat=r, method=method)
                writer.writerows(made)
                fh.flush()
                rows += made
                if progress:
                    d = sum(x["dsc"] for x in made) / len(made)
                    print(f"[finetune] {task} N={n} repeat={r} {method}: DSC {d:.3f} "
                          f"(zero-shot {made[0]['zero_shot_dsc']:.3f}, {made[0]['steps']} steps)", flush=True)
    return rows


@dataclass
class _Started:
    """One fine-tuning before its training: the start, its data and its zero-shot scores."""

    job: SupervisedJob
    sub: FinetuneSubset
    ids: list[str]
    test_images: torch.Tensor  # (T, 1, S, S, S)
    test_masks: torch.Tensor
    zero: list[tuple[float, float, float]]
    seconds: float  # making the start and scoring it


def _prepare(hyper: HyperUNet, bank: TaskBank, task: str, sub: FinetuneSubset, method: str, cfg: EvalConfig,
             budget: SupervisedConfig, seed: int, key: tuple[str, int, int]) -> _Started:
    """The start of one fine-tuning (in the calling thread: ``scratch_ft`` seeds torch's global
    generator), scored on the test cases before training, and its training job."""
    images, masks, ids = bank.images[task], bank.masks[task], bank.case_ids[task]
    t0 = time.perf_counter()
    unet = _start(method, hyper, images[sub.generate_from], masks[sub.generate_from], cfg, seed, key)
    zero = score(predict(unet, images[sub.test]), masks[sub.test], bank.spacing, cfg.tau)

    def samples(idx: Sequence[int]) -> Samples:
        return Samples(images[list(idx)], masks[list(idx)], torch.zeros(len(idx), dtype=torch.long))

    job = SupervisedJob(unet, samples(sub.train), samples(sub.val if sub.val else sub.train), budget,
                        torch_generator(seed, "finetune_steps", method, *key), desc=f"{method} N={key[1]}")
    return _Started(job, sub, list(ids), images[sub.test], masks[sub.test], zero, time.perf_counter() - t0)


def _finish(st: _Started, res: SupervisedResult, bank: TaskBank, cfg: EvalConfig) -> list[dict[str, Any]]:
    """Score the fine-tuned U-Net on the test cases: one row per test case."""
    t0 = time.perf_counter()
    sub, ids = st.sub, st.ids
    scores = score(predict(st.job.net, st.test_images), st.test_masks, bank.spacing, cfg.tau)
    seconds = round(st.seconds + res.seconds + time.perf_counter() - t0, 2)
    return [{"train_cases": "+".join(ids[i] for i in sub.generate_from), "stop_on": "val" if sub.val else "train",
             "case": ids[i], "dsc": round(d, 6), "nsd": round(s, 6), "nsd_voxel": round(v, 6),
             "zero_shot_dsc": round(z[0], 6), "steps": res.steps, "best_step": res.best_step, "seconds": seconds}
            for i, (d, s, v), z in zip(sub.test, scores, st.zero)]


def read_finetune(path: str | Path, *, drop_cut_row: bool = False) -> list[dict[str, Any]]:
    """Rows of a fine-tuning CSV with numbers parsed.

    Args:
        path: the file (:data:`FT_FIELDS`).
        drop_cut_row: leave out a last row cut short by an interrupted write
            (:func:`~hyperkit.files.appended_lines`; a resumed run makes it again); otherwise such
            a file is refused.

    Raises:
        ValueError: not a fine-tuning results file.
        HyperkitError: a cut last row (without ``drop_cut_row``), or a row whose values do not
            parse (named by its line).
    """
    reader = csv.DictReader(appended_lines(path, drop_cut_row=drop_cut_row,
                                           redo="resume the fine-tuning (--resume) to redo that training"))
    if tuple(reader.fieldnames or ()) != FT_FIELDS:
        raise ValueError(f"{path}: not a fine-tuning results file (columns {reader.fieldnames})")
    rows = []
    for r in reader:
        try:
            r["n"], r["repeat"], r["steps"], r["best_step"] = int(r["n"]), int(r["repeat"]), int(r["steps"]), \
                int(r["best_step"])
            for k in ("dsc", "nsd", "nsd_voxel", "zero_shot_dsc", "seconds"):
                r[k] = float(r[k])
        except (TypeError, ValueError) as exc:
            raise HyperkitError(f"{path}: line {reader.line_num} is not a fine-tuning row ({exc})") from None
        rows.append(r)
    return rows


def curve(rows: Sequence[dict[str, Any]], metric: str = "dsc"
          ) -> dict[tuple[str, str], list[tuple[int, float, float, float, int]]]:
    """``(task, method) -> [(N, mean, lo, hi, repeats)]``: the mean over repeats of each repeat's
    mean over its test cases, with a 95 % t-interval across repeats (``lo == hi`` for one repeat)."""
    from scipy import stats

    per: dict[tuple[str, str, int], dict[int, list[float]]] = {}
    for r in rows:
        per.setdefault((r["task"], r["method"], int(r["n"])), {}).setdefault(int(r["repeat"]), []).append(r[metric])
    out: dict[tuple[str, str], list[tuple[int, float, float, float, int]]] = {}
    for (task, method, n), reps in sorted(per.items()):
        means = [sum(v) / len(v) for v in reps.values()]
        m = sum(means) / len(means)
        half = 0.0
        if len(means) > 1:
            sd = (sum((x - m) ** 2 for x in means) / (len(means) - 1)) ** 0.5
            half = float(stats.t.ppf(0.975, len(means) - 1)) * sd / len(means) ** 0.5
        out.setdefault((task, method), []).append((n, m, m - half, m + half, len(means)))
    return out


def reference_lines(results_csv: str | Path) -> dict[str, dict[str, float]]:
    """``task -> {"conv_unet": DSC, "hyper_unet": DSC}`` from a one-shot evaluation's results: the
    black (a U-Net trained on the target's whole training split) and green (one-shot Hyper
    U-Net) lines of Figure 3. They were scored on that evaluation's test split, not on each
    subset's test cases: reference levels, not paired comparisons."""
    from hyperkit.evaluation.results_file import read_results
    from hyperkit.evaluation.tables import summarize

    out: dict[str, dict[str, float]] = {}
    for (task, method), st in summarize(read_results(results_csv)).items():
        if method in ("conv_unet", "hyper_unet"):
            out.setdefault(task, {})[method] = st.dsc
    return out


#: the one-shot protocol's settings that the fine-tuning rows depend on (the starts' gradient step, NSD's tau)
_STEP_KEYS: tuple[str, ...] = ("adapt", "adapt_lr", "rand_adapt", "adapt_bce_weight", "tau")


def _check_same_protocol(old: Mapping[str, Any], protocol: Mapping[str, Any], out: Path) -> None:
    """Refuse to add rows to a run folder whose ``finetune.json`` records another protocol.

    A record written before protocols were recorded gives only its seed and budget, and is
    compared on those. Budgets are read again with today's defaults (:func:`~hyperkit.config.reread`).

    Raises:
        HyperkitError: naming the settings that differ.
    """
    def comparable(p: Mapping[str, Any]) -> dict[str, Any]:
        return {**p, "budget": reread(p.get("budget"), lambda b: SupervisedConfig.from_mapping(b, "budget"))}

    theirs = old.get("protocol") or {"seed": old.get("seed"), "budget": old.get("budget")}
    theirs, ours = comparable_on_data(theirs, protocol)  # the data by content where the record has it
    ours = {k: v for k, v in ours.items() if k in theirs}
    diff = differences(comparable(theirs), comparable(ours))
    if diff:
        raise HyperkitError(f"{out}: holds fine-tuning rows made with another {', '.join(diff)}; "
                            "choose another --out")


def run_finetune(checkpoint: str | Path, data_root: str | Path, out_dir: str | Path, *,
                 tasks: Sequence[str], ns: Sequence[int] = (2, 4, 8), repeats: int = 3,
                 methods: Sequence[str] = FT_METHODS, seed: int = 0, reference_from: str | Path | None = None,
                 budget: Mapping[str, Any] | None = None, resume: bool = False,
                 progress: bool = True, workers: int | None = None) -> list[dict[str, Any]]:
    """``hyperkit finetune``: :func:`finetune` on held-out targets, then ``finetune.json`` (run
    record), ``figure3.png`` and ``finetune.md`` in ``out_dir``, for this call's targets, sizes
    and repeats (``finetune.csv`` keeps the rows of earlier calls too).

    Raises:
        HyperkitError: ``out_dir`` holds results and ``resume`` is false, or results made with
            another checkpoint, data folder, seed, budget or one-shot step (the rows of two such
            runs would mix in one figure).
        ValueError: bad ``ns``/``repeats``/methods/seed/``workers`` (checked before anything is read or
            written), or an ``N`` larger than a target's cases.
        FileNotFoundError, ValueError: ``reference_from`` is not a results file (checked first).
    """
    import matplotlib.pyplot as plt

    from hyperkit.config import protocol_for
    from hyperkit.evaluation.figure import figure3
    from hyperkit.evaluation.run import heldout_bank
    from hyperkit.files import sha256_file
    from hyperkit.provenance import earlier_sessions, run_record
    from hyperkit.training.checkpoint import load_hypernet

    seed = _check(repeats, methods, seed, ns)
    check_workers(workers)
    refs = reference_lines(reference_from) if reference_from else {}  # a bad file fails before the fine-tuning
    out = Path(out_dir)
    csv_path, record_path = out / "finetune.csv", out / "finetune.json"
    if csv_path.exists() and not resume:
        raise HyperkitError(f"{out}: holds fine-tuning results; pass --resume to continue them, "
                            "or choose another --out")
    hyper, cfg = load_hypernet(checkpoint)
    ecfg = protocol_for(cfg, overrides={"finetune": dict(budget)} if budget else None)
    one_shot = ecfg.as_dict()
    protocol = {"checkpoint_sha256": sha256_file(checkpoint), **data_identity(data_root), "seed": seed,
                "budget": ecfg.finetune.as_dict(), "step": {k: one_shot[k] for k in _STEP_KEYS}}
    if csv_path.exists() and record_path.is_file():
        _check_same_protocol(json.loads(record_path.read_text()), protocol, out)
    bank = heldout_bank(data_root, cfg, tasks, progress=progress)
    if not bank.task_ids:
        raise ValueError(f"no held-out task matches {list(tasks)}")
    for t in bank.task_ids:
        if max(ns) > len(bank.case_ids[t]):
            raise ValueError(f"N={max(ns)} exceeds the {len(bank.case_ids[t])} cases of {t}")
    out.mkdir(parents=True, exist_ok=True)
    record = run_record(cfg, seed, protocol=protocol, checkpoint=str(checkpoint), tasks=bank.task_ids, ns=list(ns),
                        repeats=repeats, methods=list(methods), budget=protocol["budget"], complete=False,
                        earlier=earlier_sessions(record_path) if csv_path.exists() else None)
    write_text_atomic(record_path, json.dumps(record, indent=2, default=str))
    t0 = time.perf_counter()
    rows = finetune(hyper, bank, ecfg, ecfg.finetune, csv_path, ns=ns, repeats=repeats, methods=methods, seed=seed,
                    resume=resume, progress=progress, workers=workers)
    # the CSV keeps every target an earlier call ran; this call reports its own targets and sizes
    rows = [r for r in rows if r["task"] in bank.task_ids and r["n"] in ns and r["repeat"] < repeats]
    fig = figure3(curve(rows), refs)
    fig.savefig(out / "figure3.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    write_text_atomic(out / "finetune.md", finetune_table(rows, refs) + "\n")
    record.update(complete=True, wall_seconds=round(time.perf_counter() - t0, 1),
                  reference_from=str(reference_from) if reference_from else None)
    write_text_atomic(record_path, json.dumps(record, indent=2, default=str))
    return rows


def finetune_table(rows: Sequence[dict[str, Any]], refs: dict[str, dict[str, float]] | None = None) -> str:
    """Markdown: per target and N, mean DSC [95 % t-interval over repeats] of each start."""
    c = curve(rows)
    tasks = sorted({t for t, _ in c})
    methods = [m for m in FT_METHODS if any((t, m) in c for t in tasks)]
    head = ["target", "N"] + methods + (["one-shot Hyper (green)", "Conv U-Net, full split (black)"] if refs else [])
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    for t in tasks:
        for n in sorted({p[0] for m in methods for p in c.get((t, m), [])}):
            cells = [task_parts(t).short, str(n)]
            for m in methods:
                pt = next((p for p in c.get((t, m), []) if p[0] == n), None)
                cells.append(f"{pt[1]:.3f} [{pt[2]:.3f}, {pt[3]:.3f}]" if pt else "—")
            if refs:
                r = refs.get(t, {})
                cells += [f"{r['hyper_unet']:.3f}" if "hyper_unet" in r else "—",
                          f"{r['conv_unet']:.3f}" if "conv_unet" in r else "—"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class _Claim(Protocol):
    """What :func:`finetune_reading` quotes of a claim's verdict (a :class:`hyperkit.report.claims.Verdict`,
    passed in: the report's layer sits above this one)."""

    key: str
    claim: str
    verdict: str
    kit: str


#: the baselines of the reading, in its order, and how it names them
_READ_AGAINST: tuple[tuple[str, str], ...] = (("rand_ft", "the Rand U-Net (trained encoder)"),
                                              ("scratch_ft", "a U-Net from scratch"))


def paired_reading(rows: Sequence[dict[str, Any]], name: str,
                   keep: Callable[[Mapping[str, Any]], bool] | None = None) -> str:
    """One Markdown bullet, ``- **name**: the fine-tuned Hyper U-Net is ...``: its paired DSC difference with
    the 95 % CI (:func:`~hyperkit.evaluation.stats.paired_starts`) against the Rand U-Net and against a U-Net
    from scratch, with the pairs, over the rows ``keep`` accepts (all when ``None``)."""
    parts = []
    for other, label in _READ_AGAINST:
        p = paired_starts(rows, "hyper_ft", other, keep=keep)
        if p:
            parts.append(f"{p.text()} DSC above {label} ({p.n} pairs)")
    return f"- **{name}**: the fine-tuned Hyper U-Net is " + "; ".join(parts) + "."


def finetune_reading(rows: Sequence[dict[str, Any]], claim: _Claim,
                     refs: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Markdown bullets: does the Hyper initialisation win at N = 2-4 (notebook 07, section 4)?

    One bullet per group of sizes (N <= 4 pooled, then each N of ``rows``; :func:`paired_reading`);
    then the claim's verdict
    as the report decides it; then how often early stopping kept the generated start itself (best
    step 0) among the Hyper fine-tunings, and the stopping cases at N = 2; then, per target with a
    Conv U-Net reference, the fine-tuned Hyper U-Net's mean DSC at the largest N beside it.

    Args:
        rows: ``read_finetune`` rows (one per test case; each fine-tuning's ``best_step`` is read
            from its rows).
        claim: :func:`hyperkit.report.claims.hyper_init_beats_random` of ``rows`` (its ``claim``,
            ``verdict`` and ``kit`` are quoted); notebook 07 passes ``baselines=("rand_ft", "scratch_ft")``.
        refs: :func:`reference_lines` (``task -> {"conv_unet": DSC, ...}``); ``None``: no reference.

    Raises:
        ValueError: ``rows`` empty, or ``claim`` the verdict of another claim than ``hyper_init``.
    """
    if not rows:
        raise ValueError(f"finetune_reading needs fine-tuning rows, got {list(rows)!r}")
    if claim.key != "hyper_init":
        raise ValueError(f"claim must be the verdict of hyper_init_beats_random, got {claim.key!r}")
    refs = refs or {}
    groups = [("N ≤ 4", lambda r: r["n"] <= 4)] + [(f"N = {n}", lambda r, n=n: r["n"] == n)
                                                  for n in sorted({r["n"] for r in rows})]
    lines = [paired_reading(rows, name, keep) for name, keep in groups]
    lines.append(f"- The claim *{claim.claim}* **{claim.verdict}** on the phantoms ({claim.kit}; the report's rule).")
    runs = {(r["task"], r["n"], r["repeat"], r["method"]): r for r in rows}  # one row per fine-tuning
    hyp = [r for r in runs.values() if r["method"] == "hyper_ft"]
    kept = sum(r["best_step"] == 0 for r in hyp)
    lines.append(f"- Early stopping kept the generated start itself (best step 0) in {kept} of {len(hyp)} Hyper "
                 f"fine-tunings; at N = 2 stopping followed the training case's fit (`stop_on` = "
                 f"{', '.join(sorted({r['stop_on'] for r in rows if r['n'] == 2})) or '—'}).")
    top = max(r["n"] for r in rows)  # every target of a run has every N (run_finetune)
    c = curve(rows)
    for t in sorted({r["task"] for r in rows}):
        pt = {m: next((p for p in points if p[0] == top), None) for (tt, m), points in c.items() if tt == t}
        ref = refs.get(t, {})
        if pt.get("hyper_ft") and "conv_unet" in ref:
            lines.append(f"- {task_parts(t).short}: at N = {top} the fine-tuned Hyper U-Net reaches "
                         f"{pt['hyper_ft'][1]:.3f} DSC; the Conv U-Net trained on the full split (black) "
                         f"{ref['conv_unet']:.3f}.")
    return "\n".join(lines)
