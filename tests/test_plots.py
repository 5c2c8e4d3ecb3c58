"""hyperkit.plots: label colours, the helpers the notebooks share, and the marks the plots carry."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hyperkit.plots import (VIEW_LETTERS, best_validation, kernel_mosaic, label_colormap, label_colours,  # noqa: E402
                            label_key, mark_orientation, plot_centre_prior, plot_method_bars,
                            plot_training_curves, show_triplanar)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ label colours


@pytest.mark.parametrize("n", [1, 9, 17, 18, 20, 82, 117, 256, 1000])
def test_label_colours_never_repeat(n: int) -> None:
    colours = label_colours(n)
    assert colours.shape == (n, 4)
    assert np.all((colours >= 0) & (colours <= 1)) and np.all(colours[:, 3] == 1)
    # distinct as a screen shows them (8 bits per channel), not only as floats
    assert len(np.unique(np.round(colours[:, :3] * 255).astype(int), axis=0)) == n


def test_label_colormap_background_then_distinct_colours() -> None:
    cmap = label_colormap(82)  # TotalSegmentator's labelled structures
    assert cmap.N == 83
    assert tuple(cmap(0)) == (0.0, 0.0, 0.0, 0.0)
    rgb = np.array([cmap(v)[:3] for v in range(1, 83)])
    assert len(np.unique(rgb, axis=0)) == 82
    # with more than 17 labels the first ones keep their colour (label 1 stays red) ...
    assert np.allclose(label_colormap(3)(1), cmap(1)) and np.allclose(label_colormap(17)(17), cmap(17))
    # ... and stay apart from each other: no two of 82 colours nearly equal
    dist = np.sqrt(((rgb[:, None] - rgb[None]) ** 2).sum(-1)) + np.eye(82) * 9
    assert dist.min() > 0.05


def test_label_colours_deterministic_and_checked() -> None:
    assert np.array_equal(label_colours(40), label_colours(200)[:40])
    assert label_colours(0).shape == (0, 4)
    with pytest.raises(ValueError):
        label_colours(-1)


# ------------------------------------------------------------------ helpers from the notebooks


def test_mark_orientation_writes_the_patient_directions() -> None:
    fig, axes = plt.subplots(1, 3)
    mark_orientation(axes)
    assert ["".join(t.get_text() for t in ax.texts) for ax in axes] == [VIEW_LETTERS[v] for v in
                                                                        ("axial", "coronal", "sagittal")]
    fig, ax = plt.subplots()
    mark_orientation([ax], ["sagittal"], colour="red")
    assert "".join(t.get_text() for t in ax.texts) == "PAIS" and ax.texts[0].get_color() == "red"
    with pytest.raises(ValueError):
        mark_orientation([ax], ["oblique"])


def test_label_key_lists_the_labels_in_the_slices_largest_first() -> None:
    lab = np.zeros((20, 20, 20), dtype=np.uint8)
    lab[2:18, 2:18, 8:12] = 2      # large, through every slice of the centre
    lab[9:11, 9:11, 9:11] = 5      # small, at the centre
    lab[0, 0, 0] = 7               # not in the slices through the centre
    img = np.random.default_rng(0).normal(size=lab.shape)
    fig = show_triplanar(img, lab, center=(10, 10, 10))
    legend = label_key(fig.axes[2], lab, {2: "big", 5: "small"}, centre=(10, 10, 10))
    assert [t.get_text() for t in legend.get_texts()] == ["big", "small"]
    cmap = label_colormap(7)   # the overlay's colours
    assert np.allclose(legend.legend_handles[0].get_facecolor(), cmap(2))
    legend = label_key(fig.axes[2], lab, None, centre=(10, 10, 10), limit=1)
    assert [t.get_text() for t in legend.get_texts()] == ["2", "+ 1 more"]


def test_kernel_mosaic_tiles_the_middle_slices() -> None:
    w = torch.arange(2 * 3 * 27, dtype=torch.float32).reshape(2, 3, 3, 3, 3)
    m = kernel_mosaic(w)
    assert m.shape == (6, 9)
    for o in range(2):
        for i in range(3):
            np.testing.assert_array_equal(m[3 * o:3 * o + 3, 3 * i:3 * i + 3], w[o, i, :, :, 1].numpy())
    with pytest.raises(ValueError):
        kernel_mosaic(np.zeros((2, 2, 3, 3)))


# ------------------------------------------------------------------ error bars and marks


def _errorbar_lengths(ax) -> list[float]:
    """Vertical lengths of the error bars drawn on ``ax`` (one LineCollection per bar series)."""
    out = []
    for container in ax.containers:
        if getattr(container, "errorbar", None) is not None:
            for seg in container.errorbar.lines[2][0].get_segments():
                if len(seg) == 2:   # a missing (NaN) error draws an empty segment
                    out.append(float(seg[1][1] - seg[0][1]))
    return out


def test_method_bars_carry_error_bars() -> None:
    kit = {"liver": {"Hyper": 0.4, "Rand": 0.2}, "spleen": {"Hyper": 0.3, "Rand": 0.1}}
    err = {"liver": {"Hyper": 0.05, "Rand": 0.02}, "spleen": {"Hyper": 0.1}}
    fig = plot_method_bars(kit, {"liver": {"Hyper": 0.7}}, err=err)
    lengths = _errorbar_lengths(fig.axes[0])
    assert sorted(round(x, 6) for x in lengths) == [0.04, 0.1, 0.2]   # 2 x half-length; none for spleen/Rand
    assert len(plot_method_bars(kit).axes[0].patches) == 4   # without err: bars only


def test_centre_prior_bars_carry_the_pair_std() -> None:
    rows = [{"target": "liver", "task": "t", "placement": p, "method": m, "dsc": 0.5, "dsc_std": s, "pairs": 6}
            for p, s0 in (("centred", 0.1), ("offset", 0.2)) for m, s in (("copy_support", s0), ("central_blob", s0))]
    fig = plot_centre_prior(rows)
    assert len(fig.axes[0].patches) == 4
    assert sorted(round(x, 6) for x in _errorbar_lengths(fig.axes[0])) == [0.2, 0.2, 0.4, 0.4]
    assert _errorbar_lengths(plot_centre_prior(rows, errors=False).axes[0]) == []


def _run(tmp_path: Path, dice: list[tuple[int, float]]) -> Path:
    (tmp_path / "metrics.jsonl").write_text("".join(
        json.dumps({"episode": e, "loss": 1.0 / e, "loss_support": 1.0 / e, "loss_query": 1.0 / e}) + "\n"
        for e in range(1, 31)))
    (tmp_path / "validation.jsonl").write_text("".join(
        json.dumps({"episode": e, "dice": d, "wall_seconds": 6.0 * e, "per_task": {}}) + "\n" for e, d in dice))
    return tmp_path


def test_best_validation_is_the_first_best_episode() -> None:
    rows = [{"episode": 0, "dice": 0.0}, {"episode": 10, "dice": 0.3}, {"episode": 20, "dice": 0.3},
            {"episode": 30, "dice": 0.2}]
    assert best_validation(rows) == (10, 0.3)   # best.pt is replaced only on a strict improvement
    with pytest.raises(ValueError):
        best_validation([])


def test_training_curves_mark_the_best_episode(tmp_path: Path) -> None:
    run = _run(tmp_path, [(0, 0.0), (10, 0.1), (20, 0.3), (30, 0.25)])
    fig = plot_training_curves(run, smooth=5)
    stars = [line for ax in fig.axes[1:] for line in ax.lines if line.get_marker() == "*"]
    assert [(float(s.get_xdata()[0]), float(s.get_ydata()[0])) for s in stars] == [(20.0, 0.3), (2.0, 0.3)]
    assert "episode 20" in stars[0].get_label()
    assert any(line.get_label() == "best.pt" and float(line.get_xdata()[0]) == 20 for line in fig.axes[0].lines)
    # an explicit best episode (e.g. the checkpoint's) is marked instead, and must have been validated
    fig = plot_training_curves(run, best_episode=30)
    assert [float(line.get_xdata()[0]) for line in fig.axes[1].lines if line.get_marker() == "*"] == [30.0]
    with pytest.raises(ValueError, match="episode 25"):
        plot_training_curves(run, best_episode=25)


def test_fit_gap_plot_has_a_bar_per_group_and_the_validation_lines() -> None:
    from hyperkit.plots import plot_fit_gap
    fig = plot_fit_gap({"kidney": 0.2, "heart": 0.6, "rib": 0.1}, {"a/stomach@CT": 0.3, "a/esophagus@CT": 0.1})
    ax = fig.axes[0]
    assert [round(b.get_width(), 3) for b in ax.patches] == [0.1, 0.2, 0.6]  # lowest first, from the bottom
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rib", "kidney", "heart"]
    assert sorted(round(line.get_xdata()[0], 3) for line in ax.lines) == [0.1, 0.2, 0.3]  # two tasks and the mean
    plt.close(fig)
    with pytest.raises(ValueError, match="per_group is empty"):
        plot_fit_gap({}, {})


# ------------------------------------------------------------------ notebook 06: ablation effects and K shots


def _abl(variant: str, target: str, diff: float, lo: float, hi: float, base: float = 0.5,
         metric: str = "dsc") -> dict:
    """One row of ``ablation.csv`` as ``read_ablation`` returns it (the fields the plots read)."""
    return {"variant": variant, "target": target, "metric": metric, "base": base, "variant_score": base - diff,
            "diff": diff, "ci_lo": lo, "ci_hi": hi, "pairs": 20}


def test_ablation_effects_have_a_panel_per_variant_the_seed_band_and_the_paper_cross() -> None:
    from hyperkit.plots import plot_ablation_effects
    targets = ["liver", "spleen", "all"]
    rows = [_abl("seed", "liver", 0.01, -0.02, 0.04), _abl("seed", "spleen", -0.03, -0.06, 0.01),
            _abl("seed", "all", 0.0, -0.01, 0.02)]
    effects = ["step", "norm", "pe", "shots2", "samplings1"]
    rows += [_abl(v, t, 0.1 * (i + 1), 0.1 * (i + 1) - 0.05, 0.1 * (i + 1) + 0.02) for i, v in enumerate(effects)
             for t in targets]
    rows += [_abl("step", "liver", 0.9, 0.8, 1.0, metric="nsd")]  # not drawn: DSC only
    paper = {"t4": {"caption": "Table 4", "liver": {"with": {"dsc": [0.8, 0.1]}, "without": {"dsc": [0.65, 0.1]}}}}
    names = {v: (f"label {v}", "t4" if v == "step" else "") for v in ["seed", *effects]}
    fig = plot_ablation_effects(rows, {"liver": 0.04, "spleen": 0.06, "all": 0.02}, paper, names)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [f"label {v}" for v in effects]  # no panel for the seed
    assert len(fig.axes) == 8  # 2 rows of 4, the last three hidden
    assert [t.get_text() for t in visible[0].get_yticklabels()] == targets
    for i, ax in enumerate(visible):
        bands = [line for line in ax.lines if line.get_color() == "0.85"]
        assert [(list(b.get_xdata()), list(b.get_ydata())) for b in bands] == \
            [([-0.04, 0.04], [0, 0]), ([-0.06, 0.06], [1, 1]), ([-0.02, 0.02], [2, 2])]
        points = [line for line in ax.lines if line.get_marker() == "o"]  # the errorbars' centres
        assert [(round(float(p.get_xdata()[0]), 6), float(p.get_ydata()[0])) for p in points] == \
            [(round(0.1 * (i + 1), 6), y) for y in range(3)]
        crosses = [line for line in ax.lines if line.get_marker() == "x"]
        if effects[i] == "step":  # the paper's with - without at the liver's line
            assert [(float(c.get_xdata()[0]), float(c.get_ydata()[0])) for c in crosses] == [(pytest.approx(0.15), 0)]
        else:
            assert not crosses
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["seed spread", "kit: base − variant, 95 % CI",
                                                                  "paper: with − without"]
    np.testing.assert_allclose(fig.get_size_inches(), (2.9 * 4 + 1.4, (0.4 * 3 + 1.1) * 2 + 0.4))
    with pytest.raises(ValueError, match=r"\['pe'\]"):
        plot_ablation_effects(rows, {}, paper, {v: n for v, n in names.items() if v != "pe"})
    with pytest.raises(ValueError, match="nothing to draw"):
        plot_ablation_effects(rows[:3], {}, paper, names)


def test_kshot_draws_one_line_per_target_over_the_sorted_k() -> None:
    from hyperkit.plots import plot_kshot
    rows = [_abl(v, t, d, d - 0.1, d + 0.1, base=b) for v, d in (("shots5", -0.2), ("seed", 0.0), ("shots2", -0.1),
                                                                 ("step", 0.05))
            for t, b in (("liver", 0.5), ("all", 0.4))]
    rows.append(_abl("shots3", "all", -0.15, -0.2, -0.1, base=0.4))  # K = 3 for the pooled targets only
    logged: list[str] = []
    ax = plot_kshot(rows, log=logged.append).axes[0]
    assert not logged
    assert [line.get_label() for line in ax.lines] == ["liver", "all"]
    liver, pooled = ax.lines
    assert list(liver.get_xdata()) == [1, 2, 5] and list(liver.get_ydata()) == pytest.approx([0.5, 0.6, 0.7])
    assert list(pooled.get_xdata()) == [1, 2, 3, 5]
    assert list(pooled.get_ydata()) == pytest.approx([0.4, 0.5, 0.55, 0.6])
    assert pooled.get_color() == "k" and pooled.get_lw() == 2.5 and liver.get_color() != "k"
    assert list(ax.get_xticks()) == [1, 2, 3, 5] and ax.get_ylim()[0] == 0
    ax = plot_kshot([r for r in rows if not r["variant"].startswith("shots")], log=logged.append).axes[0]
    assert logged == ["no shotsK variant in this run (only): K = 1 alone"]
    assert [list(line.get_xdata()) for line in ax.lines] == [[1], [1]]
