"""The notebook panels build and take the protocol from ``protocol_for`` (no notebook needed)."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from hyperkit.config import load_profile
from hyperkit.errors import ConfigError
from hyperkit.model.hypernet import HyperUNet
from hyperkit.data.bank import TaskBank
from hyperkit.widgets import one_shot_panel
from tiny import TINY_MODEL

matplotlib.use("Agg")

TASK = "msd/Task03_Liver/liver@CT"


def _bank() -> TaskBank:
    g = torch.stack(torch.meshgrid(*[torch.arange(16)] * 3, indexing="ij")).float()
    masks = torch.stack([((g - torch.tensor([8.0 + i, 8, 8]).view(3, 1, 1, 1)).norm(dim=0) <= 4).float()
                         for i in range(3)])[:, None]
    return TaskBank({TASK: masks * 2 - 1}, {TASK: masks}, {TASK: ["a", "b", "c"]}, (4.0, 4.0, 4.0))


def test_one_shot_panel_scores_with_the_checkpoints_protocol(capsys):
    torch.manual_seed(0)
    hyper = HyperUNet.from_config(TINY_MODEL).eval()
    cfg = {"name": "mine", "evaluate": {**load_profile("quick")["evaluate"], "tau": 3.0}}
    panel = one_shot_panel(hyper, _bank(), cfg)
    panel.children[1].children[2].click()  # "generate U-Net"
    out = capsys.readouterr().out
    assert "support a -> query b: DSC" in out and "NSD@3mm" in out and "NSD@1 voxel" in out


def test_one_shot_panel_refuses_a_missing_profile():
    hyper = HyperUNet.from_config(TINY_MODEL).eval()
    with pytest.raises(ConfigError, match="'mine'.*--profile"):
        one_shot_panel(hyper, _bank(), {"name": "mine"})


def test_one_shot_panel_falls_back_to_the_reference(monkeypatch, capsys):
    from hyperkit.training import reference

    torch.manual_seed(0)
    hyper = HyperUNet.from_config(TINY_MODEL).eval()
    cfg = {"name": "quick", "evaluate": load_profile("quick")["evaluate"]}
    monkeypatch.setattr(reference, "load_reference", lambda profile="quick": (hyper, cfg))
    panel = one_shot_panel(None, _bank())
    panel.children[1].children[2].click()
    assert "support a -> query b: DSC" in capsys.readouterr().out
    with pytest.raises(ValueError, match="cfg"):
        one_shot_panel(hyper, _bank())


def test_region_overlay_labels_hits_misses_and_the_regions_faces():
    """The whole-scan browser: 1 missed, 2 false positive, 3 hit, 4 the region's 4 mm faces where nothing else is
    (inside the box only), and the kit's Dice (an empty prediction of an empty target is 1, not 0)."""
    import numpy as np

    from hyperkit.widgets import region_overlay

    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # voxel i at 2i mm
    gt, pred = np.zeros((12, 12, 12), np.int64), np.zeros((12, 12, 12), np.uint8)
    gt[5:7, 5:7, 5:7], pred[6:8, 5:7, 5:7] = 1, 1
    box = np.array([[4.0, 4.0, 4.0], [16.0, 16.0, 16.0]])  # voxels 2..8; faces: 2, 3 and 7, 8 (within 4 mm)
    labels, d = region_overlay(pred, gt, box, affine)
    assert d == pytest.approx(0.5)  # 4 hits of 8 + 8 voxels
    assert labels[5, 5, 5] == 1 and labels[6, 5, 5] == 3 and labels[7, 5, 5] == 2
    assert labels[2, 5, 5] == labels[3, 5, 5] == labels[8, 5, 5] == 4 and labels[4, 5, 5] == 0
    assert labels[1, 5, 5] == labels[9, 5, 5] == 0  # outside the box
    assert labels[7, 6, 6] == 2  # a prediction on a face keeps its own label
    empty = np.zeros_like(gt)
    assert region_overlay(empty, empty, box, affine)[1] == 1.0


def test_one_shot_panel_says_when_the_query_is_the_support_and_frees_its_button(capsys):
    """Support = query scores the U-Net's fit to its own case: the panel says so (a student's easy slip); the
    button is disabled while it works and ready again after, also when generation fails."""
    torch.manual_seed(0)
    hyper = HyperUNet.from_config(TINY_MODEL).eval()
    cfg = {"name": "mine", "evaluate": load_profile("quick")["evaluate"]}
    panel = one_shot_panel(hyper, _bank(), cfg)
    support, query, button, _ = panel.children[1].children
    query.value = support.value
    states = []
    original = hyper.generate
    hyper.generate = lambda *a, **k: (states.append((button.disabled, button.description)), original(*a, **k))[1]
    button.click()
    out = capsys.readouterr().out
    assert "the query is the support (a): this scores how well the U-Net fits" in out
    assert "support a -> query a: DSC" in out
    assert states == [(True, "generating …")] and (button.disabled, button.description) == (False, "generate U-Net")
    query.value = 1
    hyper.generate = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("generation failed"))
    button.click()  # the Output widget shows the error; the button is ready for another try
    assert "the query is the support" not in capsys.readouterr().out
    assert (button.disabled, button.description) == (False, "generate U-Net")
