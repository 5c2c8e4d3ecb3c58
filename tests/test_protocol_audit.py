"""Audit of hyperkit.evaluation.protocol: the seeded splits and support draws replayed by hand, which
cases each method is given and scored on, the results file (column order, rounding, parsing, flushing),
and which rows a resumed evaluation keeps and which trainings it redoes.

Tiny synthetic banks only: the one-shot method is a recorder registered for the test, and the supervised
trainings are replaced by a stub, so nothing here trains a network.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from hyperkit.config import protocol_for
from hyperkit.data.bank import TaskBank
from hyperkit.errors import HyperkitError
from hyperkit.evaluation import protocol
from hyperkit.evaluation import results_file
from hyperkit.evaluation.results_file import ResultsWriter
from hyperkit.evaluation.methods import REGISTRY, Fitted, OneShotMethod, register
from hyperkit.evaluation.protocol import (FIELDS, _complete_pairs, case_split, evaluate, one_shot_plan, read_results,
                                          support_draws, task_split, write_results)
from hyperkit.seeds import torch_generator

LIVER = "msd/Task03_Liver/liver@CT"
HEART = "msd/Task02_Heart/left_atrium@MRI"
SIZE = 6


def _cfg(**kw):
    """The quick profile's protocol (test 40 %, validation 20 %) with 2 draws of one shot (plus ``kw``)."""
    return protocol_for({"name": "quick"}, overrides={"draws": 2, **kw})


def _mask(i: int) -> torch.Tensor:
    """Case i: a 2-voxel-thick slab starting at row i % 4 (cases overlap by known amounts)."""
    m = torch.zeros(1, SIZE, SIZE, SIZE)
    m[0, i % 4:i % 4 + 2, 1:5, 1:5] = 1
    return m


def _bank(tasks: list[str], n_cases: int) -> TaskBank:
    """Every image is constant: case i of every task has the value i, so a method can tell which cases it got."""
    images = {t: torch.stack([torch.full((1, SIZE, SIZE, SIZE), float(i)) for i in range(n_cases)]) for t in tasks}
    masks = {t: torch.stack([_mask(i) for i in range(n_cases)]) for t in tasks}
    ids = {t: [f"{t[4:8]}_{i}" for i in range(n_cases)] for t in tasks}
    return TaskBank(images, masks, ids, (2.0, 2.0, 2.0))


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a * b).sum() / (a.sum() + b.sum()))


# ---------------------------------------------------------------------------- the documented rules, replayed
def _split_by_hand(n: int, f_test: float, f_val: float, gen: torch.Generator) -> tuple[list, list, list]:
    """Test: the first round(f_test * n) of one random order, validation the next ones, train the rest, each sorted."""
    order = torch.randperm(n, generator=gen).tolist()
    n_test = min(max(1, round(f_test * n)), n - 2)
    n_val = min(max(1, round(f_val * n)), n - n_test - 1)
    return sorted(order[n_test + n_val:]), sorted(order[n_test:n_test + n_val]), sorted(order[:n_test])


def _supports_by_hand(pool: list[int], draws: int, shots: int, gen: torch.Generator) -> list[list[int]]:
    order = [pool[i] for i in torch.randperm(len(pool), generator=gen).tolist()]
    return [[order[(d * shots + k) % len(pool)] for k in range(shots)] for d in range(draws)]


@pytest.mark.parametrize("n,f_test,f_val,seed", [(10, 0.4, 0.2, 0), (7, 0.3, 0.3, 3), (12, 0.25, 0.1, 5)])
def test_case_split_is_one_random_order_cut_test_then_validation_then_train(n, f_test, f_val, seed):
    sp = case_split(n, f_test, f_val, torch.Generator().manual_seed(seed))
    train, val, test = _split_by_hand(n, f_test, f_val, torch.Generator().manual_seed(seed))
    assert (sp.train, sp.val, sp.test) == (train, val, test)
    assert all(part == sorted(part) for part in (sp.train, sp.val, sp.test))


@pytest.mark.parametrize("shots,draws", [(1, 4), (2, 3)])
@pytest.mark.parametrize("task,seed", [(LIVER, 0), (HEART, 7)])
def test_one_shot_plan_replays_the_seeded_split_and_support_streams(task, seed, shots, draws):
    """Split from the stream (seed, "split", task); supports from (seed, "supports", task) over train + validation."""
    cfg = _cfg(draws=draws, shots=shots)
    n = 8  # 40 % test -> 3, 20 % validation -> 2, train 3
    train, val, test = _split_by_hand(n, 0.4, 0.2, torch_generator(seed, "split", task))
    assert (len(train), len(val), len(test)) == (3, 2, 3)
    sp = task_split(n, cfg, seed, task)
    assert (sp.train, sp.val, sp.test) == (train, val, test)
    plan = one_shot_plan(n, cfg, seed, task)
    assert plan.split == sp and plan.on_test_split
    assert plan.supports == _supports_by_hand(sorted(train + val), draws, shots,
                                              torch_generator(seed, "supports", task))
    assert plan.queries == [test] * draws


def test_the_small_task_fallback_replays_draws_over_all_cases_and_keeps_the_split():
    """4 cases, 3 shots: the split leaves 2 train + validation cases, too few; supports from all 4 cases."""
    cfg = _cfg(draws=3, shots=3)
    plan = one_shot_plan(4, cfg, 2, LIVER)
    train, val, test = _split_by_hand(4, 0.4, 0.2, torch_generator(2, "split", LIVER))
    assert not plan.on_test_split and (plan.split.train, plan.split.val, plan.split.test) == (train, val, test)
    supports = _supports_by_hand([0, 1, 2, 3], 3, 3, torch_generator(2, "supports", LIVER))
    assert plan.supports == supports
    assert plan.queries == [[i for i in range(4) if i not in s] for s in supports]


def test_support_draws_cycle_through_the_pools_own_order():
    pool = [6, 1, 4]
    d = support_draws(10, 3, 2, torch.Generator().manual_seed(4), pool=pool)
    assert d == _supports_by_hand([1, 4, 6], 3, 2, torch.Generator().manual_seed(4))
    assert len(d) == 3 and all(len(s) == 2 for s in d)
    with pytest.raises(ValueError, match="support"):
        support_draws(2, 1, 2, torch.Generator())  # two cases, two shots: nothing left to query


# ---------------------------------------------------------------------------- the results file
def _row(**kw) -> dict:
    row = {"task": LIVER, "method": "hyper_unet", "draw": 1, "support": "a+b", "case": "c", "in_test_split": False,
           "dsc": 0.1234567, "nsd": 0.5, "nsd_voxel": 0.75, "fit_seconds": 2.0000004}
    return {**row, **kw}


def test_results_file_columns_are_in_the_documented_order_and_read_back_exactly(tmp_path):
    path = tmp_path / "r.csv"
    rows = write_results(path, [_row(), _row(case="d", in_test_split=True, draw=0, extra="not a column")])
    text = path.read_text()
    assert text.splitlines()[0] == "task,method,draw,support,case,in_test_split,dsc,nsd,nsd_voxel,fit_seconds"
    assert "0.123457" in text and "0.1234567" not in text and "extra" not in text and "not a column" not in text
    expected = [_row(dsc=0.123457, fit_seconds=2.0), _row(case="d", in_test_split=True, draw=0, dsc=0.123457,
                                                          fit_seconds=2.0)]
    assert rows == expected  # the rows as stored: 6 decimals, no other key
    back = read_results(path)
    assert back == expected
    assert [type(r["draw"]) for r in back] == [int, int] and back[0]["in_test_split"] is False


def test_read_results_refuses_the_columns_in_another_order(tmp_path):
    path = tmp_path / "r.csv"
    write_results(path, [_row()])
    lines = path.read_text().splitlines()
    swapped = [",".join(c for c in ln.split(",")[::-1]) for ln in lines]
    path.write_text("\n".join(swapped) + "\n")
    with pytest.raises(HyperkitError, match="not a hyperkit results file"):
        read_results(path)


def test_writer_flushes_each_model_and_keeps_the_rows_as_stored(tmp_path):
    path = tmp_path / "r.csv"
    w = ResultsWriter(path, [_row(case="kept")])
    try:
        w.add([_row(case="new", dsc=0.9876543)])
        on_disk = read_results(path)  # before close: an interruption now keeps the model's rows
        assert [r["case"] for r in on_disk] == ["kept", "new"]
        assert w.rows == on_disk and w.rows[1]["dsc"] == 0.987654
    finally:
        w.close()


def test_complete_pairs_keep_an_unregistered_methods_rows():
    """Rows of a method no longer registered cannot be redone: any row keeps them (like a supervised method)."""
    rows = [{"task": LIVER, "method": "gone_method", "draw": 0, "case": "a"}]
    assert _complete_pairs(rows, _cfg(draws=3)) == {(LIVER, "gone_method")}


# ---------------------------------------------------------------------------- evaluate's wiring
class _Recorder(OneShotMethod):
    """Copies its first support mask; records (task, draw, support cases) and the cases it predicts."""

    name = "audit_recorder"

    def __init__(self) -> None:
        self.fits: list[tuple[str, int, list[int]]] = []
        self.predicted: list[list[int]] = []

    def fit(self, ctx, task, draw, images, masks):
        self.fits.append((task, draw, [int(v) for v in images[:, 0, 0, 0, 0]]))
        first = masks[:1].clone()

        def predict(query):
            self.predicted.append([int(v) for v in query[:, 0, 0, 0, 0]])
            return first.expand(len(query), *first.shape[1:]).clone()
        return predict


@pytest.fixture
def recorder():
    rec = register(_Recorder())
    try:
        yield rec
    finally:
        del REGISTRY[rec.name]


def test_one_shot_methods_fit_each_draws_support_and_are_scored_on_the_test_cases(tmp_path, recorder):
    bank, cfg, seed = _bank([LIVER, HEART], 8), _cfg(draws=3), 5
    rows, _ = evaluate(None, bank, cfg, tmp_path / "r.csv", methods=[recorder.name], seed=seed, progress=False)
    expected_fits, expected_rows, tests = [], [], {}
    for t in bank.task_ids:
        train, val, test = _split_by_hand(8, 0.4, 0.2, torch_generator(seed, "split", t))
        tests[t] = test
        supports = _supports_by_hand(sorted(train + val), 3, 1, torch_generator(seed, "supports", t))
        ids = bank.case_ids[t]
        for d, s in enumerate(supports):
            expected_fits.append((t, d, s))
            expected_rows += [(t, d, ids[s[0]], ids[c], True, pytest.approx(_dice(_mask(s[0]), _mask(c)), abs=1e-6))
                              for c in test]
    assert recorder.fits == expected_fits
    assert recorder.predicted == [tests[f[0]] for f in expected_fits]
    assert [(r["task"], r["draw"], r["support"], r["case"], r["in_test_split"], r["dsc"]) for r in rows] == \
        expected_rows
    assert len({r["dsc"] for r in rows}) > 1  # the scores tell supports apart


def test_the_fallback_marks_only_the_splits_test_cases(tmp_path, recorder):
    """4 cases, 3 shots: every other case is scored; in_test_split says which of them are test cases."""
    bank, cfg, seed = _bank([LIVER], 4), _cfg(draws=4, shots=3), 1
    rows, _ = evaluate(None, bank, cfg, tmp_path / "r.csv", methods=[recorder.name], seed=seed, progress=False)
    _, _, test = _split_by_hand(4, 0.4, 0.2, torch_generator(seed, "split", LIVER))
    supports = _supports_by_hand([0, 1, 2, 3], 4, 3, torch_generator(seed, "supports", LIVER))
    expected = [(d, bank.case_ids[LIVER][c], c in test) for d, s in enumerate(supports) for c in range(4) if c not in s]
    assert [(r["draw"], r["case"], r["in_test_split"]) for r in rows] == expected
    assert {flag for *_, flag in expected} == {True, False}
    assert [f[2] for f in recorder.fits] == supports


def test_resume_redoes_only_incomplete_one_shot_pairs_and_keeps_the_others(tmp_path, recorder):
    bank, cfg = _bank([LIVER, HEART], 6), _cfg()
    out = tmp_path / "r.csv"
    methods = ["copy_support", recorder.name]
    first, _ = evaluate(None, bank, cfg, out, methods=methods, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    # interrupted while the recorder's second draw of the heart task was made: that model's rows are missing
    lost = [ln for ln in lines if recorder.name in ln and HEART in ln and ln.split(",")[2] == "1"]
    assert len(lost) == 2  # the 2 test cases of 6
    out.write_text("".join(ln for ln in lines if ln not in lost))
    recorder.fits.clear()
    rows, _ = evaluate(None, bank, cfg, out, methods=methods, resume=True, progress=False)
    assert [(t, d) for t, d, _ in recorder.fits] == [(HEART, 0), (HEART, 1)]  # only the incomplete pair, all draws
    key = lambda r: (r["task"], r["method"], r["draw"], r["case"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, first))  # every row once: nothing lost, nothing doubled
    assert sorted(map(key, read_results(out))) == sorted(map(key, first))
    assert {key(r): r["dsc"] for r in rows} == {key(r): r["dsc"] for r in first}


class _FakeSupervised:
    """Stands in for fit_supervised: records what it is asked to train; every model predicts its target's case 0."""

    def __init__(self, bank: TaskBank, seconds: float) -> None:
        self.bank, self.seconds, self.calls, self.widths = bank, seconds, [], []

    def __call__(self, ctx, todo):
        self.widths.append(ctx.width)
        self.calls.append([(m.name, list(ts)) for m, ts in todo])
        for m, ts in todo:
            for t in ts:
                first = self.bank.masks[t][:1]
                yield m.name, Fitted(t, lambda x, first=first: first.expand(len(x), *first.shape[1:]).clone(),
                                     self.seconds)


def test_supervised_rows_and_resume_train_only_the_missing_targets(tmp_path, monkeypatch):
    bank, cfg, seed = _bank([LIVER, HEART], 6), _cfg(), 3
    fake = _FakeSupervised(bank, 1.25)
    monkeypatch.setattr(protocol, "fit_supervised", fake)
    out = tmp_path / "r.csv"
    rows, _ = evaluate(None, bank, cfg, out, methods=["conv_unet"], base_width=8, seed=seed, progress=False)
    assert fake.calls == [[("conv_unet", bank.task_ids)]]
    expected = []
    for t in bank.task_ids:
        _, _, test = _split_by_hand(6, 0.4, 0.2, torch_generator(seed, "split", t))
        expected += [(t, 0, "", bank.case_ids[t][c], True, 1.25, pytest.approx(_dice(_mask(0), _mask(c)), abs=1e-6))
                     for c in test]
    got = [(r["task"], r["draw"], r["support"], r["case"], r["in_test_split"], r["fit_seconds"], r["dsc"])
           for r in rows]
    assert got == expected
    # resumed with the heart's rows lost: only the heart is trained again
    out.write_text("".join(ln for ln in out.read_text().splitlines(keepends=True) if HEART not in ln))
    rows2, _ = evaluate(None, bank, cfg, out, methods=["conv_unet"], base_width=8, seed=seed, resume=True,
                        progress=False)
    assert fake.calls[1] == [("conv_unet", [HEART])]
    assert sorted(r["case"] for r in rows2) == sorted(r["case"] for r in rows)
    # resumed complete: nothing is trained (not even a model with no target)
    evaluate(None, bank, cfg, out, methods=["conv_unet"], base_width=8, seed=seed, resume=True, progress=False)
    assert fake.calls[2] == []


def test_evaluate_refuses_missing_inputs_before_writing(tmp_path):
    bank = _bank([LIVER], 4)
    with pytest.raises(ValueError, match="hypernetwork"):
        evaluate(None, bank, _cfg(), tmp_path / "a.csv", methods=["hyper_unet"], progress=False)
    with pytest.raises(ValueError, match="train_bank"):
        evaluate(None, bank, _cfg(), tmp_path / "b.csv", methods=["all_unet"], base_width=8, progress=False)
    with pytest.raises(ValueError, match="base_width"):
        evaluate(None, bank, _cfg(), tmp_path / "c.csv", methods=["conv_unet"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_fresh_evaluation_refuses_an_existing_file(tmp_path, recorder):
    out = tmp_path / "r.csv"
    write_results(out, [_row()])
    before = out.read_bytes()
    with pytest.raises(HyperkitError, match="exists"):
        evaluate(None, _bank([LIVER], 4), _cfg(), out, methods=[recorder.name], progress=False)
    assert out.read_bytes() == before and recorder.fits == []


def test_read_results_names_a_missing_file_also_for_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results file"):
        read_results(tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError, match="no results file"):
        read_results(tmp_path)  # a folder is not a results file


def test_write_results_replaces_the_file_whole_and_takes_any_iterable(tmp_path):
    """Atomic: a reader of the earlier file keeps seeing it whole (a new file takes its name, it is not rewritten)."""
    path = tmp_path / "r.csv"
    write_results(path, [_row(case="old")])
    with open(path, newline="") as earlier:
        rows = write_results(path, (_row(case=c) for c in ("x", "y")))  # a generator of rows
        assert [r["case"] for r in csv.DictReader(earlier)] == ["old"]
    assert [r["case"] for r in rows] == ["x", "y"] and rows == read_results(path)
    assert list(tmp_path.iterdir()) == [path]


def test_an_explicit_base_width_overrides_the_hypernetworks(tmp_path, monkeypatch):
    """base_width: the supervised baselines' width; default (None) the hypernetwork's."""
    from hyperkit.model.hypernet import HyperUNet

    hyper = HyperUNet.from_config({"base_width": 8, "hidden": 16, "n_patches": 4, "samplings": 1, "pos_dim": 8,
                                   "zstar_hidden": 8, "zstar_dim": 4, "head_hidden": 8})
    bank = _bank([LIVER], 4)
    fake = _FakeSupervised(bank, 1.0)
    monkeypatch.setattr(protocol, "fit_supervised", fake)
    evaluate(hyper, bank, _cfg(), tmp_path / "a.csv", methods=["conv_unet"], base_width=4, progress=False)
    evaluate(hyper, bank, _cfg(), tmp_path / "b.csv", methods=["conv_unet"], progress=False)
    assert fake.widths == [4, 8]


def test_a_row_cut_by_an_interrupted_write_is_refused_or_redone_on_resume(tmp_path, recorder):
    """A hard stop inside a write left the last row cut short: read_results failed with a bare TypeError and
    --resume could not go on. Now reading names the cut, and a resume drops that row and makes its model again."""
    bank, cfg = _bank([LIVER, HEART], 6), _cfg()
    out = tmp_path / "r.csv"
    first, _ = evaluate(None, bank, cfg, out, methods=[recorder.name], progress=False)
    whole = out.read_text()
    out.write_text(whole[:-20])
    with pytest.raises(HyperkitError, match=r"r\.csv: its last row \(line \d+\) was cut short by an interrupted write"):
        read_results(out)
    out.write_text(whole[:-3])  # cut inside the last number: the row would still parse
    with pytest.raises(HyperkitError, match="cut short"):
        read_results(out)
    recorder.fits.clear()
    rows, _ = evaluate(None, bank, cfg, out, methods=[recorder.name], resume=True, progress=False)
    last = bank.task_ids[-1]  # the task whose model was written last
    assert [(t, d) for t, d, _ in recorder.fits] == [(last, 0), (last, 1)]  # the cut model's pair, all its draws
    key = lambda r: (r["task"], r["method"], r["draw"], r["case"], r["dsc"])  # noqa: E731
    assert sorted(map(key, read_results(out))) == sorted(map(key, first)) == sorted(map(key, rows))


def test_a_draw_with_a_missing_case_row_is_not_complete(tmp_path, recorder):
    """_complete_pairs counted draws, not rows: a draw that had lost one of its test-case rows counted as done
    and the case was never scored."""
    bank, cfg = _bank([LIVER, HEART], 6), _cfg()
    out = tmp_path / "r.csv"
    first, _ = evaluate(None, bank, cfg, out, methods=[recorder.name], progress=False)
    lines = out.read_text().splitlines(keepends=True)
    lost = next(i for i, ln in enumerate(lines) if LIVER in ln and ln.split(",")[2] == "0")
    out.write_text("".join(ln for i, ln in enumerate(lines) if i != lost))
    recorder.fits.clear()
    rows, _ = evaluate(None, bank, cfg, out, methods=[recorder.name], resume=True, progress=False)
    assert [(t, d) for t, d, _ in recorder.fits] == [(LIVER, 0), (LIVER, 1)]
    key = lambda r: (r["task"], r["method"], r["draw"], r["case"], r["dsc"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, first))
    # a pair with every (draw, case) row stays done: the second resume makes nothing
    recorder.fits.clear()
    evaluate(None, bank, cfg, out, methods=[recorder.name], resume=True, progress=False)
    assert recorder.fits == []


def test_a_row_that_does_not_parse_is_named_by_its_line(tmp_path):
    out = tmp_path / "r.csv"
    write_results(out, [])
    with open(out, "a") as fh:
        fh.write("t,hyper_unet,zero,s,c,True,0.5,0.5,0.5,0.1\n")
    with pytest.raises(HyperkitError, match=r"r\.csv: line 2 is not a results row \(invalid literal"):
        read_results(out)


@pytest.mark.parametrize("values, problem", [
    ("True,nan,0.5,0.5,0.1", r"dsc must lie in \[0, 1\], got nan"),
    ("True,0.5,1.2,0.5,0.1", r"nsd must lie in \[0, 1\], got 1.2"),
    ("True,0.5,0.5,-0.1,0.1", r"nsd_voxel must lie in \[0, 1\], got -0.1"),
    ("True,0.5,0.5,0.5,inf", r"fit_seconds must lie in \[0, inf\), got inf"),
    ("true,0.5,0.5,0.5,0.1", r"in_test_split must be True or False, got 'true'"),
])
def test_a_row_with_a_score_out_of_range_is_named_by_its_line(tmp_path, values, problem):
    """A score outside [0, 1] (NaN included) or a test-split flag other than True/False is refused where it is
    read: it used to pass into the means and bootstrap intervals (NaN) or count as outside the test split."""
    out = tmp_path / "r.csv"
    write_results(out, [_row()])
    with open(out, "a") as fh:
        fh.write(f"t,hyper_unet,0,s,c,{values}\n")
    with pytest.raises(HyperkitError, match=rf"r\.csv: line 3 is not a results row \({problem}\)"):
        read_results(out)
    assert len(write_results(tmp_path / "ok.csv", [_row(dsc=0.0, nsd=1.0, fit_seconds=0.0)])) == 1  # the ends pass


def test_reading_results_imports_neither_torch_nor_monai() -> None:
    """The results file's reader, the tables and the statistics load without torch or MONAI (several seconds of
    start-up on a 2-core machine), so the analysis scripts over results files start at once; the protocol
    re-exports the same functions."""
    code = ("import sys; from hyperkit.evaluation.results_file import read_results; "
            "import hyperkit.evaluation.tables, hyperkit.evaluation.stats; "
            "heavy = [m for m in ('torch', 'monai') if m in sys.modules]; sys.exit(str(heavy) if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in results_file.__all__:
        assert getattr(protocol, name) is getattr(results_file, name), name
