"""Metrics against closed forms."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hyperkit.metrics import copy_support, dice, nsd, voxel_tolerance


def _sphere(shape, centre, r):
    g = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    return (((g - np.asarray(centre)) ** 2).sum(-1) <= r * r).astype(np.uint8)


def _box(shape, lo, hi):
    m = np.zeros(shape, np.uint8)
    m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
    return m


def test_dice_boxes_closed_form():
    a = _box((20, 20, 20), (2, 2, 2), (12, 12, 12))       # 1000 voxels
    b = _box((20, 20, 20), (7, 2, 2), (17, 12, 12))       # shifted by 5: overlap 500
    assert dice(a, b) == pytest.approx(2 * 500 / 2000)
    assert dice(a, a) == 1.0


def test_dice_sphere_vs_shifted_sphere():
    r, d = 8, 4
    a = _sphere((40, 40, 40), (20, 20, 20), r)
    b = _sphere((40, 40, 40), (20 + d, 20, 20), r)
    # lens volume of two spheres of radius r at distance d: pi (4r + d)(2r - d)^2 / 12
    lens = np.pi * (4 * r + d) * (2 * r - d) ** 2 / 12
    expected = 2 * lens / (2 * 4 / 3 * np.pi * r ** 3)
    assert dice(a, b) == pytest.approx(expected, abs=0.03)


def test_empty_conventions():
    z = np.zeros((8, 8, 8), np.uint8)
    o = _box((8, 8, 8), (2, 2, 2), (5, 5, 5))
    assert dice(z, z) == 1.0 and dice(z, o) == 0.0 and dice(o, z) == 0.0
    assert nsd(z, z, (1, 1, 1)) == 1.0 and nsd(o, z, (1, 1, 1)) == 0.0


def test_nsd_shift_within_and_beyond_tolerance():
    a = _box((30, 30, 30), (5, 5, 5), (20, 20, 20))
    b = _box((30, 30, 30), (6, 5, 5), (21, 20, 20))  # shifted 1 voxel
    assert nsd(a, b, (1.0, 1.0, 1.0), tau=2.0) == pytest.approx(1.0)   # 1 mm < 2 mm
    assert nsd(a, b, (3.0, 3.0, 3.0), tau=2.0) < 1.0                     # 3 mm > 2 mm
    assert nsd(a, a, (1.5, 1.5, 1.5)) == 1.0


def test_nsd_far_apart_is_zero_and_spacing_matters():
    a = _box((40, 20, 20), (2, 5, 5), (10, 15, 15))
    b = _box((40, 20, 20), (25, 5, 5), (33, 15, 15))
    assert nsd(a, b, (1, 1, 1)) == 0.0
    # a 2-voxel shift is inside tau at 0.5 mm spacing, outside at 2 mm
    c = _box((40, 20, 20), (4, 5, 5), (12, 15, 15))
    assert nsd(a, c, (0.5, 0.5, 0.5), tau=2.0) == pytest.approx(1.0)
    assert nsd(a, c, (2.0, 2.0, 2.0), tau=2.0) < 0.9


def test_nsd_at_one_voxel_counts_a_one_voxel_shift():
    """At 4 mm voxels, tau = 2 mm counts only coinciding boundary voxels; tau = one voxel counts a 1-voxel shift."""
    a = _box((30, 30, 30), (5, 5, 5), (20, 20, 20))
    b = _box((30, 30, 30), (6, 5, 5), (21, 20, 20))  # shifted by one 4 mm voxel
    spacing = (4.0, 4.0, 4.0)
    assert voxel_tolerance(spacing) == 4.0
    at_tau, at_voxel = nsd(a, b, spacing, tau=2.0), nsd(a, b, spacing, tau=voxel_tolerance(spacing))
    assert at_voxel == pytest.approx(1.0) and at_tau < 0.7
    c = _box((30, 30, 30), (7, 5, 5), (22, 20, 20))  # two voxels: partly outside one voxel too
    assert nsd(a, c, spacing, 2.0) < nsd(a, c, spacing, 4.0) < 1.0


def test_voxel_tolerance_is_the_largest_side():
    assert voxel_tolerance((1.5, 1.5, 3.0)) == 3.0
    with pytest.raises(ValueError, match="three positive"):
        voxel_tolerance((1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="three positive"):
        voxel_tolerance((1.0, 1.0))
    with pytest.raises(ValueError, match="three positive"):  # max() returned 1.0 for this one
        voxel_tolerance((1.0, float("nan"), 1.0))


@pytest.mark.parametrize("kwargs, match", [
    ({"spacing": (1, 1)}, "three positive"),
    ({"spacing": (1, 0, 1)}, "three positive"),
    ({"spacing": (1, 1, 1), "tau": 0}, "tau must be"),
    # NaN and inf passed the kit's checks (nan <= 0 is false); MONAI then refused them without naming the argument
    ({"spacing": (1, 1, 1), "tau": float("nan")}, r"tau must be a finite number > 0 mm, got nan"),
    ({"spacing": (1, 1, 1), "tau": float("inf")}, r"tau must be a finite number > 0 mm, got inf"),
    ({"spacing": (1, float("nan"), 1)}, r"three positive values in mm, got \[1, nan, 1\]"),
    ({"spacing": (1, 1, float("inf"))}, "three positive"),
])
def test_nsd_bad_arguments(kwargs, match):
    a = _box((8, 8, 8), (2, 2, 2), (5, 5, 5))
    with pytest.raises(ValueError, match=match):
        nsd(a, a, **kwargs)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="differs from target shape"):
        dice(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))


def test_float_predictions_are_thresholded_at_one_half():
    """Guards the 0.5 threshold of float volumes: probabilities below it are background."""
    a = _box((20, 20, 20), (2, 2, 2), (12, 12, 12)).astype(np.float32) * 0.9   # 1000 voxels at 0.9
    a[12:17, 2:12, 2:12] = 0.3                                                   # 500 voxels at 0.3
    target = _box((20, 20, 20), (2, 2, 2), (12, 12, 12))
    assert dice(a, target) == 1.0
    assert nsd(a, target, (1.0, 1.0, 1.0)) == 1.0
    a[12:17, 2:12, 2:12] = 0.6                                                   # now foreground: 1500 voxels
    assert dice(a, target) == pytest.approx(2 * 1000 / 2500)


def test_leading_singleton_axes_and_torch_input_are_accepted():
    """Guards the ``(1, 1, D, H, W)`` / torch path that the evaluation's ``score`` uses."""
    import torch

    a = _box((20, 20, 20), (2, 2, 2), (12, 12, 12))
    b = _box((20, 20, 20), (7, 2, 2), (17, 12, 12))
    assert dice(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one binary volume"):
        dice(np.zeros((2, 4, 4, 4)), np.zeros((2, 4, 4, 4)))


def test_nsd_uses_the_spacing_of_each_axis_in_order():
    """Guards the axis order of an anisotropic ``spacing`` (D, H, W): a shift along D is scaled by spacing[0]."""
    a = _box((30, 30, 30), (5, 5, 5), (20, 20, 20))
    b = _box((30, 30, 30), (6, 5, 5), (21, 20, 20))  # shifted one voxel along axis 0 (D)
    assert nsd(a, b, (1.0, 3.0, 3.0), tau=2.0) == pytest.approx(1.0)  # 1 mm along D: inside 2 mm
    assert nsd(a, b, (3.0, 1.0, 1.0), tau=2.0) < 1.0                   # 3 mm along D: outside 2 mm


def test_copy_support_is_a_strict_majority_vote():
    """Guards copy_support's rule: foreground only where more than half the supports say so (a tie is background)."""
    import torch

    m = torch.zeros(2, 1, 2, 2, 2)
    m[0, 0, 0, 0, 0] = 1                    # one of two supports: a tie
    m[:, 0, 1, 1, 1] = 1                    # both supports
    out = copy_support(m)
    assert out.shape == (1, 2, 2, 2) and out.dtype == torch.bool
    assert not out[0, 0, 0, 0] and out[0, 1, 1, 1] and int(out.sum()) == 1
    assert torch.equal(copy_support(m[:1]), m[0] > 0)  # one support: its own mask
    assert torch.equal(copy_support(m.bool()), out)
    with pytest.raises(ValueError, match=r"K >= 1, got shape \(0, 1, 2, 2, 2\)"):
        copy_support(m[:0])
    with pytest.raises(ValueError, match="must be binary .0 / 1., got values 0, 255"):  # would win every vote
        copy_support(255 * m)


def test_nan_is_refused_not_scored_as_background() -> None:
    """A diverged model's NaN probabilities: ``NaN > 0.5`` is False, so they would count as an empty mask."""
    x = np.zeros((4, 4, 4), np.float32)
    x[0, 0, :2] = np.nan
    with pytest.raises(ValueError, match=r"got 2 NaN value\(s\) of 64"):
        dice(x, np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        nsd(np.zeros((4, 4, 4)), x, (1.0, 1.0, 1.0))


@pytest.mark.parametrize("volume", [np.array([0, 1, 2]), np.array([0.0, 0.4, 3.0]), np.array([-2.0, 0.1, 0.9])])
def test_a_label_map_or_logits_are_refused_not_merged_into_one_mask(volume: np.ndarray) -> None:
    """Guards against scoring labels 1 and 2 (or logits) as one mask: the value range is checked."""
    x = np.zeros((4, 4, 4), volume.dtype)
    x.flat[: volume.size] = volume
    with pytest.raises(ValueError, match=r"binary mask or probabilities in \[0, 1\]"):
        dice(x, (x > 0).astype(np.uint8))


def test_masks_and_probabilities_are_accepted() -> None:
    m = np.zeros((4, 4, 4), np.uint8)
    m[:2] = 1
    assert dice(m.astype(bool), m) == dice(m.astype(np.float32) * 0.9, m) == 1.0


def test_nsd_does_not_pass_on_monais_own_deprecation_warning() -> None:
    """MONAI's surface distance calls one of its functions with an argument it deprecated; that
    FutureWarning is MONAI's, not the user's, so scoring NSD must not show it (here: not raise it)."""
    code = ("import numpy as np\nfrom hyperkit.metrics import nsd\n"
            "a = np.zeros((8, 8, 8), bool); a[2:6, 2:6, 2:6] = True\n"
            "b = np.roll(a, 1, axis=0)\nprint(round(nsd(a, b, (1.0, 1.0, 1.0)), 3))")
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip()) == 1.0  # a 1 mm shift lies within 2 mm


def test_a_volume_one_voxel_deep_is_one_volume_and_a_slice_is_refused() -> None:
    """Guards the squeeze of leading singleton axes: it stops at three axes, so a (1, H, W) volume stays 3-D."""
    m = np.ones((1, 3, 3), np.uint8)
    assert dice(m, m) == 1.0
    assert dice(m[None, None], m) == 1.0
    with pytest.raises(ValueError, match="one binary volume"):
        dice(np.ones((3, 3), np.uint8), np.ones((3, 3), np.uint8))


def test_values_below_zero_are_refused_and_exactly_one_half_is_background() -> None:
    """Guards the [0, 1] check (any negative value, not only below -1) and the strict ``p > 0.5`` threshold."""
    target = _box((6, 6, 6), (0, 0, 0), (3, 6, 6))
    with pytest.raises(ValueError, match="from -0.5 to"):
        dice(np.where(target > 0, 1.0, -0.5), target)
    half = target * 1.0
    half[3:] = 0.5                      # a probability of exactly 0.5 is not foreground
    assert dice(half, target) == 1.0
    half[3:] = 0.45
    assert dice(half, target) == 1.0


def test_spacing_must_have_exactly_three_values() -> None:
    with pytest.raises(ValueError, match="three positive"):
        voxel_tolerance((1.0, 1.0, 1.0, 1.0))


def test_nsd_default_tolerance_is_the_papers_two_mm() -> None:
    """A one-voxel shift at 1.5 mm is inside the paper's 2 mm and outside 1 mm, so the default must be 2 mm."""
    a = _box((30, 30, 30), (5, 5, 5), (20, 20, 20))
    b = _box((30, 30, 30), (6, 5, 5), (21, 20, 20))
    spacing = (1.5, 1.5, 1.5)
    assert nsd(a, b, spacing, tau=1.0) < 1.0
    assert nsd(a, b, spacing) == nsd(a, b, spacing, tau=2.0) == pytest.approx(1.0)


def test_copy_support_refuses_masks_without_the_support_axis() -> None:
    import torch

    with pytest.raises(ValueError, match=r"\(K, 1, S, S, S\)"):
        copy_support(torch.ones(1, 4, 4, 4))
