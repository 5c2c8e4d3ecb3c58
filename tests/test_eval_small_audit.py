"""Mutation-audit tests of the centre prior (``evaluation.centre_prior``) and the fit gap
(``training.fit_gap``): pairings, statistics, ordering and error messages, on tiny synthetic data."""

from __future__ import annotations

import statistics
from types import SimpleNamespace
from typing import Any

import matplotlib
import pytest
import torch

from hyperkit.data.bank import TaskBank
from hyperkit.evaluation.centre_prior import (centre_prior_means, centre_prior_rows, pairwise_dice,
                                              placement_config)
from hyperkit.metrics import dice
from hyperkit.training import fit_gap as fit_gap_module
from hyperkit.training.fit_gap import FitGap, fit_gap, one_task_per_group
from tests.test_centre_prior import LIVER, S, _ball

matplotlib.use("Agg")

SPLEEN = "msd/Task09_Spleen/spleen@CT"


def _masks() -> torch.Tensor:
    """Three different, partly overlapping balls: ``(3, 1, S, S, S)``."""
    return torch.stack([_ball((8, 8, 8), 3.0), _ball((9, 8, 8), 3.5), _ball((6, 9, 8), 2.5)])[:, None]


def _bank_of(masks: dict[str, torch.Tensor]) -> TaskBank:
    return TaskBank({t: m * 2 - 1 for t, m in masks.items()}, dict(masks),
                    {t: [f"{t[-8:]}-{i}" for i in range(len(m))] for t, m in masks.items()}, (4.0, 4.0, 4.0))


# ----------------------------------------------------------------------------- centre prior


def test_pairwise_copy_support_is_support_major_dice_of_single_supports() -> None:
    m = _masks()
    values = pairwise_dice(m, "copy_support")
    expected = [dice(m[s, 0] > 0, m[q]) for s in range(3) for q in range(3) if q != s]
    assert values == pytest.approx(expected)
    assert len(set(round(v, 6) for v in values)) > 1  # the pairs really differ


def test_pairwise_dice_rejects_non_5d_masks_with_their_shape() -> None:
    with pytest.raises(ValueError, match=r"N >= 2, 1, S, S, S\), got shape \(3, 1, 16, 16\)"):
        pairwise_dice(_masks()[..., 0], "copy_support")


def test_placement_config_error_names_the_bad_placement() -> None:
    with pytest.raises(ValueError, match="got 'random'"):
        placement_config({"data": {"placement": "offset"}}, "random")


def test_centre_prior_rows_statistics_and_order() -> None:
    """Tasks in id order (whatever the bank order), ``dsc`` the mean, ``dsc_std`` the population std."""
    liver, spleen = _masks(), torch.stack([_ball((8, 8, 8), 4.0), _ball((7, 8, 8), 4.0)])[:, None]
    centred = _bank_of({SPLEEN: spleen, LIVER: liver})
    offset = _bank_of({LIVER: liver.roll(2, dims=2)})  # a task missing from one placement
    rows = centre_prior_rows({"offset": offset, "centred": centred}, methods=("copy_support",))
    assert [(r["task"], r["placement"]) for r in rows] == [(LIVER, "offset"), (LIVER, "centred"),
                                                            (SPLEEN, "centred")]
    values = pairwise_dice(liver, "copy_support")
    row = rows[1]
    assert row["dsc"] == pytest.approx(statistics.fmean(values))
    assert row["dsc_std"] == pytest.approx(statistics.pstdev(values))
    assert (row["pairs"], row["cases"]) == (6, 3) and rows[2]["pairs"] == 2 and rows[2]["cases"] == 2
    assert rows[2]["target"] == "spleen" and row["target"] == "liver"


def test_centre_prior_means_average_over_tasks_per_placement_and_method() -> None:
    rows: list[dict[str, Any]] = [
        {"placement": "offset", "method": "copy_support", "dsc": 0.2},
        {"placement": "offset", "method": "copy_support", "dsc": 0.6},
        {"placement": "centred", "method": "copy_support", "dsc": 0.9},
        {"placement": "offset", "method": "central_blob", "dsc": 0.1},
    ]
    assert centre_prior_means(rows) == {("offset", "copy_support"): pytest.approx(0.4),
                                        ("centred", "copy_support"): pytest.approx(0.9),
                                        ("offset", "central_blob"): pytest.approx(0.1)}


def test_centre_prior_table_keeps_the_given_placements_in_order(tmp_path) -> None:
    from hyperkit.config import load_profile
    from hyperkit.data.sample import write_sample_msd
    from hyperkit.evaluation import centre_prior_table

    write_sample_msd(tmp_path / "data", "Task03_Liver", n_cases=3, labels=("liver", "cancer"))
    cfg = load_profile("quick", {"data": {"patch_size": 16, "spacing": 2.0}})
    rows = centre_prior_table(tmp_path / "data", cfg, ["liver"], placements=("offset", "centred"),
                              cache_dir=tmp_path / "cache")
    order = [(r["placement"], r["method"]) for r in rows]
    assert order == [("offset", "copy_support"), ("offset", "central_blob"),
                     ("centred", "copy_support"), ("centred", "central_blob")]
    only = centre_prior_table(tmp_path / "data", cfg, ["liver"], placements=("centred",),
                              cache_dir=tmp_path / "cache")
    assert {r["placement"] for r in only} == {"centred"}
    assert [r["dsc"] for r in only] == pytest.approx([r["dsc"] for r in rows[2:]])


# ----------------------------------------------------------------------------- fit gap

TS = "totalseg/TotalSegmentator"
#: not in text order on purpose; stomach is a validation task, liver a held-out one
TASK_IDS = [f"{TS}/rib_left_2@CT", f"{TS}/rib_left_10@CT", f"{TS}/kidney_right@CT", f"{TS}/stomach@CT",
            f"{TS}/rib_left_1@CT", f"{TS}/kidney_left@CT", "msd/Task03_Liver/liver@CT"]


def _datasets() -> list[SimpleNamespace]:
    return [SimpleNamespace(tasks=lambda: [SimpleNamespace(task_id=t) for t in TASK_IDS])]


def test_one_task_per_group_takes_the_first_training_ids_in_text_order(monkeypatch) -> None:
    monkeypatch.setattr(fit_gap_module, "discover_datasets", lambda root: _datasets())
    # text order: "rib_left_10@CT" < "rib_left_1@CT" ("0" sorts before "@")
    assert one_task_per_group("root") == [f"{TS}/kidney_left@CT", f"{TS}/rib_left_10@CT"]
    assert one_task_per_group("root", per_group=2) == [f"{TS}/kidney_left@CT", f"{TS}/kidney_right@CT",
                                                       f"{TS}/rib_left_10@CT", f"{TS}/rib_left_1@CT"]
    with pytest.raises(ValueError, match="got 0"):
        one_task_per_group("root", per_group=0)


def test_fit_gap_pairs_training_and_validation_banks_and_counts(monkeypatch) -> None:
    """Training tasks: the ``train`` role on ``train.train_splits``; validation: ``val`` on ``val_splits``."""
    from hyperkit.config import load_profile

    banks: list[dict[str, Any]] = []
    calls: list[tuple[str, int, int]] = []

    def from_datasets(datasets, role, cfg, case_splits, cache_dir=None, keep=None, root=None):
        chosen = sorted(t for t in TASK_IDS if keep is None or keep(t))
        banks.append({"role": role, "case_splits": tuple(case_splits), "tasks": chosen,
                      "cache_dir": cache_dir, "root": root})
        return SimpleNamespace(name=role)

    def validation(model, bank, n_queries, device, amp=False, n_supports=1):
        calls.append((bank.name, n_queries, n_supports))
        score = {"train": 0.8, "val": 0.3}[bank.name]
        return {"dice": score, "per_task": {f"{bank.name}-task": score}}

    monkeypatch.setattr(fit_gap_module, "discover_datasets", lambda root: _datasets())
    monkeypatch.setattr(fit_gap_module, "TaskBank", SimpleNamespace(from_datasets=from_datasets))
    monkeypatch.setattr(fit_gap_module, "one_shot_validation", validation)
    cfg = load_profile("quick")
    gap = fit_gap(torch.nn.Identity(), cfg, "root", n_supports=2, n_queries=4, per_group=2, cache_dir="c")
    assert [(b["role"], b["case_splits"]) for b in banks] == [("train", ("train",)), ("val", ("val", "test"))]
    assert banks[0]["tasks"] == one_task_per_group("root", per_group=2) and banks[0]["cache_dir"] == "c"
    assert [b["root"] for b in banks] == ["root", "root"]  # an empty bank names the --data folder given
    assert calls == [("train", 4, 2), ("val", 4, 2)]
    assert gap == FitGap(0.8, 0.3, {"train-task": 0.8}, {"val-task": 0.3})
    assert gap.gap == pytest.approx(0.5)
    banks.clear()
    fit_gap_module.group_bank("root", cfg, per_group=2)
    assert banks[0]["tasks"] == one_task_per_group("root", per_group=2)
    for bad in ({"n_supports": 0}, {"n_queries": 0}):
        with pytest.raises(ValueError, match="n_supports and n_queries must be >= 1, got " +
                           f"{bad.get('n_supports', 3)} and {bad.get('n_queries', 5)}"):
            fit_gap(torch.nn.Identity(), cfg, "root", **bad)


# ----------------------------------------------------------------------------- figure 3

LIVER_T, SPLEEN_T = "msd/Task03_Liver/liver@CT", "ts/TotalSegmentator/spleen@CT"


def _curves() -> dict[tuple[str, str], list[tuple[int, float, float, float, int]]]:
    """Spleen first (figure3 sorts the tasks); the liver has N in {1, 2, 4}, the spleen {2, 8}."""
    return {(SPLEEN_T, "rand_ft"): [(2, 0.3, 0.2, 0.4, 3), (8, 0.5, 0.45, 0.6, 3)],
            (LIVER_T, "hyper_ft"): [(1, 0.6, 0.5, 0.7, 3), (2, 0.65, 0.55, 0.75, 3), (4, 0.7, 0.6, 0.8, 3)],
            (LIVER_T, "rand_ft"): [(1, 0.2, 0.1, 0.3, 3), (4, 0.4, 0.35, 0.45, 3)]}


def test_figure3_draws_means_bands_and_reference_lines_per_task() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from hyperkit.evaluation.figure import FIGURE3_STYLE, figure3

    fig = figure3(_curves(), {LIVER_T: {"conv_unet": 0.9, "hyper_unet": 0.55}, SPLEEN_T: {"conv_unet": 0.8}})
    liver_ax, spleen_ax = fig.axes[:2]
    assert [liver_ax.get_title(), spleen_ax.get_title()] == ["liver", "spleen"]
    lines = {ln.get_label(): ln for ln in liver_ax.get_lines()}
    hyper = lines[FIGURE3_STYLE["hyper_ft"]["label"]]
    assert list(hyper.get_xdata()) == [1, 2, 4] and list(hyper.get_ydata()) == pytest.approx([0.6, 0.65, 0.7])
    assert to_hex(hyper.get_color()) == to_hex("tab:blue")
    rand = lines["Rand U-Net (trained encoder), fine-tuned"]
    assert to_hex(rand.get_color()) == to_hex("tab:red")
    assert list(rand.get_ydata()) == pytest.approx([0.2, 0.4])
    band = liver_ax.collections[0].get_paths()[0].vertices  # hyper_ft band: lo .. hi
    assert band[:, 1].min() == pytest.approx(0.5) and band[:, 1].max() == pytest.approx(0.8)
    assert sorted(set(round(y, 6) for y in band[:, 1])) == [0.5, 0.55, 0.6, 0.7, 0.75, 0.8]
    assert to_hex(lines["Conv U-Net, full split"].get_color()) == "#000000"
    assert list(lines["Conv U-Net, full split"].get_ydata()) == [0.9, 0.9]
    assert list(lines["Hyper U-Net, one-shot"].get_ydata()) == [0.55, 0.55]
    assert to_hex(lines["Hyper U-Net, one-shot"].get_color()) == to_hex("tab:green")
    assert "Hyper U-Net, one-shot" not in [ln.get_label() for ln in spleen_ax.get_lines()]
    assert liver_ax.get_xscale() == "log" and list(liver_ax.get_xticks()) == [1, 2, 4]
    assert list(spleen_ax.get_xticks()) == [2, 8]
    assert liver_ax.get_ylim() == (0, 1)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [FIGURE3_STYLE["hyper_ft"]["label"], FIGURE3_STYLE["rand_ft"]["label"],
                      "Conv U-Net, full split", "Hyper U-Net, one-shot"]
    assert fig.legends[0]._ncols == 4
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one curve"):
        figure3({})


def test_figure2_needs_a_target_with_a_conv_unet() -> None:
    from hyperkit.evaluation.figure import figure2

    bank = _bank_of({LIVER: _masks()})
    with pytest.raises(ValueError, match=r"none of \['liver', 'spleen'\] has a held-out task with a trained"):
        figure2(None, bank, None, {}, targets=("liver", "spleen"))  # type: ignore[arg-type]


def test_load_conv_models_leaves_out_tasks_without_a_saved_model(tmp_path) -> None:
    from hyperkit.evaluation.figure import load_conv_models

    assert load_conv_models(tmp_path / "results.csv", [LIVER, SPLEEN]) == {}
