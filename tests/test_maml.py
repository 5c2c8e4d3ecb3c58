"""The MAML baseline of Table 3: the inner loop adapts, the held-out organ never reaches meta-training,
finished folds are reused, and bad input ends with one line."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.config.sections import MamlConfig
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import discover_datasets
from hyperkit.data.sample import write_sample_msd, write_sample_totalseg
from hyperkit.evaluation import maml as emaml
from hyperkit.evaluation.maml import (ORGANS, MamlRun, OrganTask, check_organs, five_shot_reading, five_shot_table,
                                     maml_reading, read_maml, resolve_organs, run_maml)
from hyperkit.evaluation.tables import Stat
from hyperkit.files import save_atomic
from hyperkit.model.adapt import segmentation_loss
from hyperkit.model.unet import UNet3D
from hyperkit.training.maml import adapt, inner_adapt, meta_train, without_task
from tiny import TINY_MODEL, untrained_checkpoint

TINY_MAML = {"shots": 2, "queries": 1, "inner_steps": 1, "inner_lr": 0.1, "meta_iterations": 2, "meta_batch": 2,
             "meta_lr": 0.001, "first_order": True, "augment": False, "bce_weight": 0.1}
S = 16  # patch side of the tiny tests


def _cfg(**changes: object) -> MamlConfig:
    return dataclasses.replace(MamlConfig.from_mapping(TINY_MAML), **changes)


def _patches(n: int, seed: int, fill: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` patches ``(n, 1, S, S, S)``: a bright cube on noise, its mask."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 1, S, S, S, generator=g) * 0.1
    masks = torch.zeros(n, 1, S, S, S)
    for i in range(n):
        a = int(torch.randint(2, 8, (1,), generator=g))
        masks[i, :, a:a + 6, a:a + 6, a:a + 6] = 1
    images += masks
    if fill is not None:
        images.fill_(fill)
    return images, masks


def _bank(poison: str | None = None) -> TaskBank:
    tasks = [f"t/d/{o}@CT" for o in ("a", "b", "c")]
    images, masks = {}, {}
    for k, t in enumerate(tasks):
        images[t], masks[t] = _patches(4, k, float("nan") if t == poison else None)
    return TaskBank(images, masks, {t: [f"c{i}" for i in range(4)] for t in tasks}, (4.0, 4.0, 4.0))


# ------------------------------------------------------------------------------ the inner loop
def test_adaptation_changes_the_weights_and_lowers_the_support_loss() -> None:
    torch.manual_seed(0)
    net = UNet3D(8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images, masks = _patches(2, 1)
    unet, losses = adapt(net, images, masks, _cfg(inner_steps=3))
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert any(not torch.equal(unet.state_dict()[k], before[k]) for k in before)
    assert all(torch.equal(net.state_dict()[k], before[k]) for k in before)  # the meta-learnt weights stay
    assert not unet.training


def test_first_order_meta_gradient_is_the_query_gradient_at_the_adapted_weights() -> None:
    torch.manual_seed(0)
    net = UNet3D(8)
    (xs, ys), (xq, yq) = _patches(2, 1), _patches(1, 2)
    fast, _ = inner_adapt(net, dict(net.named_parameters()), xs, ys, 2, 0.1)
    segmentation_loss(torch.func.functional_call(net, fast, (xq,)), yq).backward()
    meta = {n: p.grad.clone() for n, p in net.named_parameters()}
    adapted = UNet3D(8)
    adapted.load_state_dict({n: v.detach() for n, v in fast.items()})
    segmentation_loss(adapted(xq), yq).backward()
    for n, p in adapted.named_parameters():
        assert torch.allclose(meta[n], p.grad, atol=1e-6), n
    # second order differs: the inner gradients depend on the weights
    net.zero_grad()
    fast2, _ = inner_adapt(net, dict(net.named_parameters()), xs, ys, 2, 0.1, create_graph=True)
    segmentation_loss(torch.func.functional_call(net, fast2, (xq,)), yq).backward()
    assert any(not torch.allclose(meta[n], p.grad, atol=1e-6) for n, p in net.named_parameters())


# ------------------------------------------------------------------------------ no leak
def test_the_held_out_organ_never_reaches_meta_training() -> None:
    held_out = "t/d/b@CT"
    bank = _bank(poison=held_out)  # NaN images: a single patch of it in a batch makes every weight NaN
    fold = without_task(bank, held_out)
    assert held_out not in fold.images and len(fold) == 2
    torch.manual_seed(0)
    net = UNet3D(8)
    result = meta_train(net, fold, _cfg(meta_iterations=3), 0, "b")
    assert result.iterations == 3 and held_out not in result.tasks_seen
    assert all(held_out not in row["tasks"] for row in result.curve)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    # the same training on the whole bank does reach it (the poison works)
    net = UNet3D(8)
    leaked = meta_train(net, bank, _cfg(meta_iterations=3, meta_batch=3), 0, "b")
    assert held_out in leaked.tasks_seen and not all(torch.isfinite(p).all() for p in net.parameters())
    with pytest.raises(ValueError, match="x@CT"):
        without_task(bank, "t/d/x@CT")


# ------------------------------------------------------------------------------ the whole run
def _write_data(root: Path, n_cases: int = 9, spleen_labelled: bool = True) -> Path:
    write_sample_msd(root, "Task03_Liver", n_cases=n_cases, labels=("liver", "cancer"))
    write_sample_msd(root, "Task09_Spleen", n_cases=n_cases, labels=("spleen",),
                     absent=None if spleen_labelled else {i: (1,) for i in range(n_cases)})
    write_sample_totalseg(root, n_cases=n_cases, structures=("kidney_right", "kidney_left"))
    return root


def _checkpoint(path: Path) -> Path:
    cfg = load_profile("quick", {"data": {"patch_size": S}, "model": TINY_MODEL,
                                 "evaluate": {"draws": 2, "maml": TINY_MAML}})
    cfg["name"] = "tiny-maml"  # not a built-in profile: the checkpoint's own evaluate section is the protocol
    return untrained_checkpoint(cfg, path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("maml")
    return _write_data(root / "data"), _checkpoint(root / "best.pt")


def test_maml_command_pairs_both_methods_writes_table3_and_reuses_folds(
        tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    data, ckpt = tiny
    out = tmp_path / "maml"
    argv = ["maml", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    rows = read_maml(out / "maml.csv")
    assert {r["method"] for r in rows} == {"maml", "hyper_unet"}
    keys = {m: {(r["task"], r["draw"], r["case"]) for r in rows if r["method"] == m} for m in ("maml", "hyper_unet")}
    assert keys["maml"] == keys["hyper_unet"] and {k[1] for k in keys["maml"]} == {0, 1}
    assert len({k[0] for k in keys["maml"]}) == 4
    for r in rows:  # a support is never scored
        assert r["case"] not in r["support"].split("+")
    folds = {o: json.loads((out / "folds" / f"{o}.json").read_text()) for o in ORGANS}
    tasks = {o.organ: o.task for o in resolve_organs(discover_datasets(data), ORGANS)}
    for organ, fold in folds.items():
        assert tasks[organ] not in fold["tasks_seen"] and fold["iterations"] == 2
        assert set(fold["tasks_seen"]) <= set(tasks.values())
    table = (out / "table3.md").read_text()
    assert "0.839" in table and "kit Hyper U-Net − kit MAML" in table and "what it saw in training" in table
    record = json.loads((out / "maml.json").read_text())
    assert record["complete"] and record["protocol"]["maml"]["inner_steps"] == 1 and record["commit"]
    capsys.readouterr()

    assert main(argv) == 2 and "--resume" in capsys.readouterr().err
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "folds").glob("*.pt")}

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished fold was meta-trained again")

    monkeypatch.setattr(emaml, "meta_train", no_training)
    (out / "maml.csv").unlink()  # MAML's rows are made again from the reused folds
    assert main(argv + ["--resume"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "folds").glob("*.pt")} == stamps
    again = read_maml(out / "maml.csv")
    assert sorted((r["task"], r["method"], r["draw"], r["case"], r["dsc"]) for r in again) == \
        sorted((r["task"], r["method"], r["draw"], r["case"], r["dsc"]) for r in rows)
    assert all(f["reused"] for f in json.loads((out / "maml.json").read_text())["folds"].values())
    # the data and the run folder copied elsewhere: the same data by content, so the folds are reused
    moved = tmp_path / "moved"
    shutil.copytree(data, moved / "data")
    shutil.copytree(out, moved / "maml")
    assert main(["maml", "--checkpoint", str(ckpt), "--data", str(moved / "data"), "--out", str(moved / "maml"),
                 "--no-progress", "--resume"]) == 0
    assert all(f["reused"] for f in json.loads((moved / "maml" / "maml.json").read_text())["folds"].values())
    # a record and folds written before data.placement_seed and evaluate.rand_adapt existed: read at their
    # defaults (0, false: this run's), so the folds are still reused
    record = json.loads((moved / "maml" / "maml.json").read_text())
    del record["protocol"]["data"]["placement_seed"], record["protocol"]["evaluate"]["rand_adapt"]
    (moved / "maml" / "maml.json").write_text(json.dumps(record))
    for path in (moved / "maml" / "folds").glob("*.pt"):
        fold = torch.load(path, weights_only=True)
        del fold["key"]["data"]["placement_seed"]
        save_atomic(fold, path)
    assert main(["maml", "--checkpoint", str(ckpt), "--data", str(moved / "data"), "--out", str(moved / "maml"),
                 "--no-progress", "--resume"]) == 0
    assert all(f["reused"] for f in json.loads((moved / "maml" / "maml.json").read_text())["folds"].values())
    # another budget in the same folder is refused, not mixed in
    assert main(argv + ["--resume", "--meta-iterations", "3"]) == 2
    assert "another maml.meta_iterations; choose another --out" in capsys.readouterr().err


def test_folds_side_by_side_compute_what_one_thread_computes_one_after_the_other(
        tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """Two folds at once (one torch thread each) give the weights, rows and table of the folds run one
    after the other at one thread: a fold's results do not depend on how many run beside it."""
    data, ckpt = tiny
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = run_maml(ckpt, data, tmp_path / "serial", workers=1, progress=False)
        torch.set_num_threads(2)
        pair = run_maml(ckpt, data, tmp_path / "pair", workers=2, progress=True)  # bars built in the threads
        assert torch.get_num_threads() == 2  # restored after the pool
    finally:
        torch.set_num_threads(threads)

    def cells(rows: list[dict]) -> list[tuple]:
        return [tuple(v for k, v in r.items() if k != "fit_seconds") for r in rows]

    assert cells(pair.rows) == cells(serial.rows) and pair.table == serial.table
    assert [(f["threads"], f["tasks_seen"], f["curve"]) for f in pair.folds.values()] == \
        [(1, f["tasks_seen"], f["curve"]) for f in serial.folds.values()]
    for organ in ORGANS:
        a, b = (torch.load(run.out_dir / "folds" / f"{organ}.pt", weights_only=True)["state_dict"]
                for run in (serial, pair))
        assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ the readings of notebook 07
LIVER, SPLEEN = "msd/Task03_Liver/liver@CT", "msd/Task09_Spleen/spleen@CT"
KIDNEY = "totalseg/TotalSegmentator/kidney_left@CT"


def _stat(dsc: float) -> Stat:
    return Stat(dsc, 0.1, 0.5, 0.1, 0.6, 0.1, 10, 5, "test split")


def _row_cells(text: str, label: str) -> list[str]:
    """The organ columns (spleen, liver, kidney_right, kidney_left) of the table row that starts with ``label``."""
    [row] = [line for line in text.split("\n") if line.startswith(f"| {label} |")]
    return row.split(" | ")[1:5]


def test_five_shot_table_puts_the_kits_numbers_under_their_organs() -> None:
    five = {(LIVER, "hyper_unet"): _stat(0.4123), (SPLEEN, "hyper_unet"): _stat(0.3), (LIVER, "conv_unet"): _stat(0.9),
            (KIDNEY, "hyper_unet"): _stat(0.8)}  # a kidney is no held-out target of the kit: never read
    one = {(LIVER, "hyper_unet"): _stat(0.2), (SPLEEN, "rand_unet"): _stat(0.7)}
    table = five_shot_table(five, one)
    assert table.split("\n")[0] == "| model | spleen | liver | kidney_right | kidney_left | what it saw in training |"
    assert _row_cells(table, "**Hyper U-Net 5-shot, kit** (phantoms)") == ["0.300", "0.412", "—", "—"]
    assert _row_cells(table, "Hyper U-Net 1-shot, kit (notebook 05)") == ["—", "0.200", "—", "—"]
    assert _row_cells(table, "Hyper U-Net 5-shot, paper") == ["0.821", "0.865", "0.753", "0.801"]
    assert _row_cells(table, "MAML 5-shot (Alsaleh et al. 2024; quoted by the paper)") == \
        ["0.839", "0.903", "0.775", "0.870"]
    assert "1-shot" not in five_shot_table(five) and "1-shot" not in five_shot_table(five, {})
    assert table.endswith("— : not a held-out target of the kit.")

    text = five_shot_reading(five, one, 4.0)
    assert text.split("\n")[:2] == [
        "- **liver**: the kit's 5-shot Hyper U-Net scores 0.412 DSC (its 1-shot one 0.200); the paper's 5-shot "
        "Hyper U-Net 0.865, MAML 0.903.",
        "- **spleen**: the kit's 5-shot Hyper U-Net scores 0.300 DSC; the paper's 5-shot Hyper U-Net 0.821, "
        "MAML 0.839."]
    assert "phantoms at 4 mm against real CT" in text and "phantoms at 1.5 mm" in five_shot_reading({}, None, 1.5)
    assert "scores — DSC;" in five_shot_reading({}, None, 1.5)
    for bad in (0, -1.5, "4", None):
        with pytest.raises(ValueError, match=repr(bad)):
            five_shot_reading(five, one, bad)  # type: ignore[arg-type]


def _maml_run() -> MamlRun:
    """spleen: Hyper U-Net 0.2 ahead on every pair; liver: MAML 0.2 ahead; kidney_left (a training task of the
    hypernetwork): +0.1 and -0.1 alternating; kidney_right: no rows."""
    organs = [OrganTask("spleen", SPLEEN, "heldout", frozenset()), OrganTask("liver", LIVER, "heldout", frozenset()),
              OrganTask("kidney_right", KIDNEY.replace("left", "right"), "train", frozenset()),
              OrganTask("kidney_left", KIDNEY, "train", frozenset())]
    rows = []
    for o, shift in (("spleen", 0.2), ("liver", -0.2), ("kidney_left", None)):
        task = next(x.task for x in organs if x.organ == o)
        for draw in range(3):
            for case in range(4):
                base = 0.3 + 0.05 * case
                d = shift if shift is not None else 0.1 if (draw + case) % 2 else -0.1
                rows += [{"task": task, "method": "hyper_unet", "draw": draw, "case": f"c{case}", "dsc": base + d},
                         {"task": task, "method": "maml", "draw": draw, "case": f"c{case}", "dsc": base}]
    folds = {o.organ: {"iterations": 5 if o.organ == "liver" else 3} for o in organs}
    return MamlRun(rows, "", {}, organs, folds, Path("."))


def test_maml_reading_says_who_is_ahead_from_the_interval() -> None:
    lines = maml_reading(_maml_run()).split("\n")
    assert lines[0].startswith("- **spleen** (never seen by the hypernetwork): Hyper U-Net 0.575, MAML 0.375 DSC; "
                               "Hyper − MAML +0.200 [+0.200, +0.200] over 12 (draw, case) pairs: "
                               "the Hyper U-Net is ahead. Paper: Hyper 0.821, MAML (quoted) 0.839.")
    assert "-0.200 [-0.200, -0.200] over 12 (draw, case) pairs: MAML is ahead." in lines[1]
    assert lines[2] == "- **kidney_right** (a training task of the hypernetwork): no paired test cases."
    assert lines[3].startswith("- **kidney_left** (a training task of the hypernetwork)")
    assert "over 12 (draw, case) pairs: the interval includes 0: no difference resolved." in lines[3]
    assert lines[4].startswith("- **All organs pooled**: Hyper − MAML ") and lines[4].endswith(" over 36 pairs.")
    assert lines[5] == "- The paper quotes MAML ahead on 4 of 4 organs."
    assert lines[6].startswith("- Read kidney_right, kidney_left with care: the hypernetwork trained on them ")
    assert lines[7].startswith("- Each MAML fold had 3 or 5 outer step(s) from a random start")
    paper = {"caption": "x", "spleen": {"maml_alsaleh2024": 0.5, "hyper_unet": 0.6},
             "liver": {"maml_alsaleh2024": 0.5, "hyper_unet": 0.4}}
    run = _maml_run()
    run.organs = run.organs[:2]
    text = maml_reading(run, paper)
    assert "MAML ahead on 1 of 2 organs" in text and "with care" not in text and "Paper: Hyper 0.600, MAML" in text
    with pytest.raises(ValueError, match="'kidney_right'"):
        maml_reading(_maml_run(), paper)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_ends_with_one_line(tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, ckpt = tiny
    base = ["maml", "--checkpoint", str(ckpt), "--data", str(data), "--no-progress"]
    for extra, words in ((["--organs", "liver,pancreas"], "'pancreas'"), (["--organs", "liver"], "at least two"),
                         (["--meta-iterations", "-1"], "-1")):
        assert main(base + ["--out", str(tmp_path / "x")] + extra) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    datasets = discover_datasets(data)
    with pytest.raises(ValueError, match="'pancreas'"):
        resolve_organs(datasets, ["liver", "pancreas"])
    with pytest.raises(ValueError, match="'kidney_right': no CT task"):
        resolve_organs([d for d in datasets if d.layout == "msd"], ORGANS)
    organs = resolve_organs(datasets, ORGANS)
    bank = emaml.organ_bank(datasets, organs, load_profile("quick", {"data": {"patch_size": S}}))
    with pytest.raises(ValueError,
                       match=r"'spleen' .*9 labelled case\(s\); 9 supports and a test case need at least 10"):
        check_organs(bank, organs, 9)


def test_an_organ_without_labels_or_with_too_few_cases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = _checkpoint(tmp_path / "best.pt")
    unlabelled = _write_data(tmp_path / "a", n_cases=3, spleen_labelled=False)
    base = ["maml", "--checkpoint", str(ckpt), "--no-progress", "--out", str(tmp_path / "out")]
    assert main(base + ["--data", str(unlabelled)]) == 2
    err = capsys.readouterr().err
    assert "'spleen'" in err and "no case has it labelled" in err and err.count("\n") == 1
    few = _write_data(tmp_path / "b", n_cases=2)
    assert main(base + ["--data", str(few), "--organs", "spleen,liver"]) == 2
    err = capsys.readouterr().err
    assert "'spleen'" in err and "2 labelled case(s)" in err and "at least 3" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing written


def test_the_maml_section_is_optional_checked_and_not_part_of_the_one_shot_protocol() -> None:
    from hyperkit.config import EvalConfig, protocol_for
    from hyperkit.errors import ConfigError

    for name in ("quick", "paper"):
        ecfg = protocol_for(load_profile(name))
        assert ecfg.maml is not None and ecfg.maml.shots == 5 and "maml" not in ecfg.as_dict()
    section = {k: v for k, v in load_profile("quick")["evaluate"].items() if k != "maml"}
    assert EvalConfig.from_config({"evaluate": section}).maml is None  # sections recorded before it existed
    for bad in ({"inner_lr": 0}, {"shots": 0}, {"meta_iterations": -1}, {"bogus": 1}):
        with pytest.raises(ConfigError, match="evaluate.maml"):
            MamlConfig.from_mapping({**TINY_MAML, **bad})
