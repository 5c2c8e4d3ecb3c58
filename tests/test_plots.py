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
