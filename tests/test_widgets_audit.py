"""The notebook panels' pictures and numbers: what ``slice_browser`` draws and what ``one_shot_panel`` scores.

A mutation audit of ``hyperkit/widgets.py`` found these unpinned by ``test_widgets.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from hyperkit.model.hypernet import HyperUNet
from hyperkit.widgets import one_shot_panel, slice_browser
from test_widgets import TASK, _bank
from tiny import TINY_MODEL

matplotlib.use("Agg")


@pytest.fixture()
def shown(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the panels show (``plt.show`` records the current figure instead)."""
    figures: list[Any] = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: figures.append(plt.gcf()))
    yield figures
    plt.close("all")


def test_slice_browser_draws_the_middle_axial_slice_with_the_labels_overlaid(shown: list[Any]) -> None:
    img = np.arange(6 * 8 * 10, dtype=np.float64).reshape(6, 8, 10)
    lab = np.zeros((6, 8, 10), np.float32)
    lab[1:3, 2:5, 5], lab[4, 6, 5] = 2, 1
    box = slice_browser(img, lab, title="liver")
    base, overlay = shown[-1].axes[0].images
    np.testing.assert_array_equal(base.get_array(), img[:, :, 5].T)  # (Y, X) with origin="lower": RAS axial
    assert base.origin == "lower" and base.get_clim() == tuple(np.percentile(img, [1, 99]))
    ov = overlay.get_array()
    np.testing.assert_array_equal(ov.mask, lab[:, :, 5].T == 0)  # background is transparent
    np.testing.assert_array_equal(ov.data, lab[:, :, 5].T)
    assert ov.data.dtype == np.int32 and overlay.get_clim() == (0, 2) and overlay.get_alpha() == 0.45
    assert shown[-1].axes[0].get_title() == "liver axial slice 5"

    view, (index, alpha), _ = box.children[0], box.children[1].children, box.children[2]
    view.value = "sagittal"  # 6 slices along x: the slider's range follows
    assert index.max == 5 and index.value == 5
    base = shown[-1].axes[0].images[0]
    np.testing.assert_array_equal(base.get_array(), img[5].T)
    assert shown[-1].axes[0].get_title() == "liver sagittal slice 5"
    alpha.value = 0.8  # every control redraws
    assert shown[-1].axes[0].images[1].get_alpha() == 0.8
    view.value = "axial"
    index.value = 9  # a slice the sagittal view does not have: it opens at its middle, not its last slice
    view.value = "sagittal"
    assert (index.max, index.value) == (5, 3) and shown[-1].axes[0].get_title() == "liver sagittal slice 3"
    view.value = "axial"  # a longer axis keeps the slice
    assert (index.max, index.value) == (9, 3)
    with pytest.raises(ValueError, match=r"mask shape \(6, 8, 9\) does not match image shape \(6, 8, 10\)"):
        slice_browser(img, lab[:, :, :9])


def test_one_shot_panel_scores_the_query_with_the_supports_unet_and_overlays_hits(
        shown: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from hyperkit.config import load_profile, protocol_for
    from hyperkit.evaluation.protocol import one_shot_model, score

    torch.manual_seed(0)
    hyper = HyperUNet.from_config(TINY_MODEL).eval()
    # the checkpoint's step (lr 0.5) empties these untrained U-Nets; the panel's override turns it off
    cfg = {"name": "mine", "evaluate": {**load_profile("quick")["evaluate"], "tau": 6.0, "adapt_lr": 0.5}}
    bank = _bank()
    displayed: list[Any] = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: displayed.append(obj))
    panel = one_shot_panel(hyper, bank, cfg, overrides={"adapt": False})
    task, (support, query, button, whole), _ = panel.children[0], panel.children[1].children, panel.children[2]
    assert (task.value, support.value, query.value) == (TASK, 0, 1) and whole.disabled
    query.value = 2
    button.click()
    protocol = protocol_for(cfg, None, {"adapt": False})
    imgs, msks = bank.images[TASK], bank.masks[TASK]
    unet = one_shot_model("hyper_unet", hyper, imgs[0:1], msks[0:1], protocol, None)
    with torch.no_grad():
        pred = (unet(imgs[2:3])[0] > 0).float()
    assert 0 < pred.mean() < 1
    (d, n_tau, n_voxel), = score(pred[None], msks[2][None], bank.spacing, 6.0)
    said = capsys.readouterr().out
    assert f"support a -> query c: DSC {d:.3f}, NSD@6mm {n_tau:.3f}, NSD@1 voxel {n_voxel:.3f}" in said
    overlay = shown[-1].axes[0].images[1].get_array()
    expected = (msks[2] + 2 * pred)[0].long().numpy()[:, :, 8].T  # 1 missed, 2 false positive, 3 hit
    np.testing.assert_array_equal(overlay.data, expected)
    assert len(displayed) == 1


def test_the_whole_scan_view_names_a_task_missing_from_its_data_folder(tmp_path: Path) -> None:
    from hyperkit.data.sample import write_sample_msd
    from hyperkit.errors import HyperkitError
    from hyperkit.widgets import _show_whole_scan

    write_sample_msd(tmp_path, "Task09_Spleen", n_cases=2, labels=("spleen",))
    with pytest.raises(HyperkitError, match=f"{TASK}: no such task in the data at {tmp_path}"):
        _show_whole_scan(None, tmp_path, TASK, "a", "b", {})
