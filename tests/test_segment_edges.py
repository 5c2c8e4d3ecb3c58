"""Edge cases of `hyperkit segment` / `generate`: thin scans, label 0, sheared affines, NIfTI-2."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from hyperkit.data.preprocess import DataConfig
from hyperkit.errors import HyperkitError
from hyperkit.inference.segment import predict_roi, prepare_volume, segment_file, segment_scan

META = {"data": {"spacing": 2.0, "patch_size": 32, "ct_clip": [-900.0, 900.0], "mri_percentiles": [1.0, 99.0]},
        "channel": "MRI", "modality": "MRI"}


class _Identity(torch.nn.Module):
    """A stand-in U-Net: logit = normalised MRI intensity - 0.5 (so the mask is the bright ball)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 0.5


def _ball_scan(path, affine, shape=(40, 40, 40), radius=25.0):
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(np.float64)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    centre = affine[:3, :3] @ (np.asarray(shape) / 2.0) + affine[:3, 3]
    ball = np.linalg.norm(world - centre, axis=-1) <= radius
    nib.save(nib.Nifti1Image(np.where(ball, 100.0, 10.0).astype(np.float32), affine), str(path))
    return ball


def test_whole_scan_windows_are_padded_with_the_scan_minimum():
    """roi 'none' on a scan thinner than the patch: the padded part of a window is the scan's minimum
    (as training patches and the ROI path pad), not 0 (the z-scored mean, i.e. soft tissue in CT)."""
    rng = np.random.default_rng(0)
    vol = (1.0 + rng.random((40, 40, 10))).astype(np.float32)  # minimum ~1, no zeros; z thinner than 16
    seen: list[torch.Tensor] = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return x.clone()  # a new tensor: MONAI weights the output in place

    predict_roi(Spy(), vol, np.eye(4), None, 16)
    low = min(float(t.min()) for t in seen)
    assert low == pytest.approx(float(vol.min())), f"window padded with {low}, scan minimum {vol.min()}"


def test_label_zero_is_refused(tmp_path):
    """--label 0 would make the background the target."""
    a = np.diag([3.0, 3.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), a), str(tmp_path / "img.nii.gz"))
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[8:12, 8:12, 8:12] = 1
    nib.save(nib.Nifti1Image(mask, a), str(tmp_path / "mask.nii.gz"))
    with pytest.raises(HyperkitError, match=r"--label 0"):
        prepare_volume(tmp_path / "img.nii.gz", "CT", DataConfig(spacing=3.0, patch_size=16),
                       tmp_path / "mask.nii.gz", label=0)


def test_volume_ml_of_a_sheared_scan_uses_the_voxel_volume(tmp_path):
    """A gantry-tilt (sheared) affine: one voxel is |det A| mm^3, not the product of the column norms."""
    a = np.diag([3.0, 3.0, 3.0, 1.0])
    a[0, 2] = 1.5
    a[:3, 3] = -60.0
    _ball_scan(tmp_path / "sheared.nii.gz", a)
    seg = segment_scan((_Identity(), META), tmp_path / "sheared.nii.gz", roi="none")
    want = seg.info["voxels"] * abs(np.linalg.det(a[:3, :3])) / 1000.0
    assert seg.info["volume_ml"] == pytest.approx(want, rel=1e-6)


def test_nifti2_scan_gives_a_nifti2_mask(tmp_path, monkeypatch):
    import hyperkit.inference.segment as seg_mod

    monkeypatch.setattr(seg_mod, "_load_model", lambda model, device: (_Identity(), META))
    a = np.diag([-2.0, 2.0, 2.5, 1.0])
    a[:3, 3] = (40.0, -40.0, -30.0)
    x = np.full((40, 40, 30), 10.0, np.float32)
    x[10:30, 10:30, 8:22] = 100.0
    nib.save(nib.Nifti2Image(x, a), str(tmp_path / "scan.nii.gz"))
    (tmp_path / "model.pt").write_bytes(b"unused")
    segment_file(tmp_path / "model.pt", tmp_path / "scan.nii.gz", tmp_path / "mask.nii.gz", roi="none")
    out = nib.load(str(tmp_path / "mask.nii.gz"))
    assert isinstance(out, nib.Nifti2Image) and out.shape == x.shape and np.allclose(out.affine, a)
