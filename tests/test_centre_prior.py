"""The centre prior: the central-blob reference, its scores with centred and offset patches,
and the table notebook 05 shows (tiny synthetic banks and the tiny sample dataset, no phantoms)."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from hyperkit.config import load_profile
from hyperkit.data.sample import write_sample_msd
from hyperkit.evaluation import central_blob, centre_prior_table
from hyperkit.evaluation.centre_prior import (centre_prior_means, centre_prior_rows, pairwise_dice, placement_config,
                                              target_name)
from hyperkit.plots import plot_centre_prior
from hyperkit.data.bank import TaskBank

matplotlib.use("Agg")

S = 16
LIVER = "msd/Task03_Liver/liver@CT"


def _ball(centre: tuple[int, int, int], r: float, n: int = S) -> torch.Tensor:
    g = torch.stack(torch.meshgrid(*[torch.arange(n)] * 3, indexing="ij")).float()
    return ((g - torch.tensor(centre, dtype=torch.float32).view(3, 1, 1, 1)).norm(dim=0) <= r).float()


def _bank(masks: torch.Tensor) -> TaskBank:
    return TaskBank({LIVER: masks * 2 - 1}, {LIVER: masks}, {LIVER: [f"c{i}" for i in range(len(masks))]},
                    (4.0, 4.0, 4.0))


@pytest.mark.parametrize("centre, r", [((8, 8, 8), 3.5), ((3, 10, 6), 2.2), ((8, 7, 9), 4.7)])
def test_central_blob_has_the_supports_voxels_at_the_centre(centre, r):
    support = _ball(centre, r)[None, None]
    blob = central_blob(support)
    assert blob.shape == (1, S, S, S) and blob.dtype == torch.bool
    assert int(blob.sum()) == int(support.sum())
    mean = blob[0].nonzero().float().mean(0)
    assert torch.all((mean - S // 2).abs() < 1.0), mean  # centred on voxel S // 2 (within a shell's tie-break)


def test_central_blob_of_several_supports_takes_their_mean_size():
    a, b = _ball((8, 8, 8), 2.0)[None], _ball((5, 5, 5), 3.0)[None]
    blob = central_blob(torch.stack([a, b]))
    assert int(blob.sum()) == round((a.sum() + b.sum()).item() / 2)
    assert not central_blob(torch.zeros(1, 1, S, S, S)).any()
    with pytest.raises(ValueError, match=r"\(K, 1, S, S, S\)"):
        central_blob(torch.zeros(1, S, S, S))


def _centred_and_offset(n_cases: int = 5) -> dict[str, TaskBank]:
    """Targets exactly at the patch centre, and the same targets shifted by a seeded offset."""
    gen = torch.Generator().manual_seed(0)
    radii = [3.0 + 0.4 * i for i in range(n_cases)]
    shifts = torch.randint(-4, 5, (n_cases, 3), generator=gen)
    centred = torch.stack([_ball((8, 8, 8), r) for r in radii])[:, None]
    offset = torch.stack([_ball(tuple((8 + s).tolist()), r) for r, s in zip(radii, shifts)])[:, None]
    return {"centred": _bank(centred), "offset": _bank(offset)}


def test_centre_prior_favours_centred_patches():
    rows = centre_prior_rows(_centred_and_offset())
    assert [(r["placement"], r["method"]) for r in rows] == [("centred", "copy_support"), ("centred", "central_blob"),
                                                            ("offset", "copy_support"), ("offset", "central_blob")]
    assert all(r["pairs"] == 5 * 4 and r["cases"] == 5 and r["target"] == "liver" for r in rows)
    dsc = {(r["placement"], r["method"]): r["dsc"] for r in rows}
    for method in ("copy_support", "central_blob"):
        assert dsc[("centred", method)] > dsc[("offset", method)] + 0.2, dsc
    means = centre_prior_means(rows)
    assert means == pytest.approx(dsc)  # one task: the means are its values


def test_pairwise_dice_scores_every_ordered_pair():
    masks = torch.stack([_ball((8, 8, 8), 3.0), _ball((8, 8, 8), 3.0), _ball((2, 2, 2), 1.0)])[:, None]
    values = pairwise_dice(masks, "copy_support")
    assert len(values) == 6 and values[0] == pytest.approx(1.0)  # support 0 -> query 1: identical
    with pytest.raises(ValueError, match="method"):
        pairwise_dice(masks, "hyper_unet")
    with pytest.raises(ValueError, match="N >= 2"):
        pairwise_dice(masks[:1], "copy_support")


def test_placement_config_changes_only_the_placement():
    cfg = load_profile("quick")
    out = placement_config(cfg, "centred")
    assert out["data"] == {**cfg["data"], "placement": "centred"} and out["model"] == cfg["model"]
    assert cfg["data"]["placement"] == "offset"  # not modified in place
    with pytest.raises(ValueError, match="placement"):
        placement_config(cfg, "random")
    assert target_name(LIVER) == "liver" and target_name("ts/TotalSegmentator/aorta@CT") == "aorta@CT"


def test_centre_prior_table_on_a_tiny_dataset(tmp_path):
    data = tmp_path / "data"
    write_sample_msd(data, "Task03_Liver", n_cases=3, labels=("liver", "cancer"))
    cfg = load_profile("quick", {"data": {"patch_size": 16, "spacing": 2.0}})
    rows = centre_prior_table(data, cfg, ["liver"], cache_dir=tmp_path / "cache")
    assert {(r["placement"], r["method"]) for r in rows} == {(p, m) for p in ("centred", "offset")
                                                             for m in ("copy_support", "central_blob")}
    assert all(r["task"] == LIVER and r["pairs"] == 6 and 0.0 <= r["dsc"] <= 1.0 for r in rows)
    fig = plot_centre_prior(rows, title="centre prior")
    assert len(fig.axes[0].patches) == 4
