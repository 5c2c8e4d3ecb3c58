"""Peak memory and wall time of ``hyperkit generate`` and ``segment`` on clinical-size CT grids.

The phantoms are stored at 3 mm; a clinical CT is 0.8 x 0.8 x 1.5 mm, 512 x 512 x 300-600.
This script resamples two phantom liver cases (SimpleITK; linear for the scan, nearest for the
label) to 0.8 x 0.8 x 1.5 mm (the phantom's own field of view, about 30 M voxels) and pads them
with air to 512 x 512 x 400 (105 M voxels: a chest-abdomen-pelvis field of view); generates a
liver model from the first case at each size, and runs ``hyperkit segment`` on the second with
``--roi auto`` and ``--roi none``, each command in a fresh process; peak resident memory from
``os.wait4`` (the child's ``ru_maxrss``). Each mask's Dice against the second case's liver label
(resampled the same way, nearest), and the two models crossed over the two query sizes (which of
support and query the field of view acts on), with each support's air fraction and clipped CT
statistics. BENCHMARKS, "Whole-scan segmentation".

    python benchmarks/segment_memory.py --checkpoint runs/reproduce-quick/train-quick/best.pt \\
        --data runs/reproduce-quick/phantoms --out runs/segmem
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hyperkit.data.preprocess import ct_air_fraction
from hyperkit.metrics import dice

CLINICAL_SPACING = (0.8, 0.8, 1.5)
#: the ``hyperkit`` command in a fresh interpreter of this environment
HYPERKIT = [sys.executable, "-c", "import sys; from hyperkit.cli import main; sys.exit(main())"]


def clinical_grid(src: Path, dst: Path, pad_to: tuple[int, int, int] | None = None,
                  label: bool = False) -> tuple[int, ...]:
    """``src`` resampled to :data:`CLINICAL_SPACING`, optionally padded to ``pad_to``: a scan as int16
    (linear, air outside), a label map as uint8 (nearest, 0 outside)."""
    img = sitk.ReadImage(str(src))
    size = [int(round(n * s / t)) for n, s, t in zip(img.GetSize(), img.GetSpacing(), CLINICAL_SPACING)]
    fill = 0 if label else -1000
    out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkNearestNeighbor if label else sitk.sitkLinear,
                        img.GetOrigin(), CLINICAL_SPACING, img.GetDirection(), float(fill),
                        sitk.sitkUInt8 if label else sitk.sitkInt16)
    if pad_to is not None:
        if any(p < s for p, s in zip(pad_to, size)):
            raise ValueError(f"pad_to {pad_to} is smaller than the resampled scan {tuple(size)}")
        lo = [(p - s) // 2 for p, s in zip(pad_to, size)]
        out = sitk.ConstantPad(out, lo, [p - s - a for p, s, a in zip(pad_to, size, lo)], fill)
    sitk.WriteImage(out, str(dst), True)
    return tuple(out.GetSize())


def measured(cmd: list[str]) -> tuple[float, float]:
    """``(wall seconds, peak resident GiB)`` of one command in a fresh process."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block on it
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read().decode()[-2000:]}")
    peak_kib = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return wall, peak_kib / 2 ** 20


def _row(command: str, scan: str, size: tuple[int, ...], wall: float, peak: float, dsc: float | None) -> None:
    print(f"| {command} | {scan} | {size[0] * size[1] * size[2] / 1e6:.1f} M | {wall:.1f} | {peak:.2f} | "
          f"{'—' if dsc is None else f'{dsc:.3f}'} |")


def _dice(mask: Path, truth: Path) -> float:
    """Dice (:func:`hyperkit.metrics.dice`) of a written mask against a label map's value 1 (one grid)."""
    return dice(sitk.GetArrayFromImage(sitk.ReadImage(str(mask))) > 0,
                sitk.GetArrayFromImage(sitk.ReadImage(str(truth))) == 1)


def _ct_numbers(scan: Path) -> tuple[float, float, float]:
    """Air fraction (:func:`~hyperkit.data.preprocess.ct_air_fraction`) and the clipped [-900, 900]
    mean and SD: what the CT z-score sees."""
    x = sitk.GetArrayFromImage(sitk.ReadImage(str(scan))).astype(np.float32)
    c = np.clip(x, -900.0, 900.0)
    return ct_air_fraction(x), float(c.mean()), float(c.std())


def _ct_stats(scan: Path) -> str:
    air, mean, sd = _ct_numbers(scan)
    return f"air {air:.0%}, clipped mean {mean:.0f} HU, SD {sd:.0f}"


def _phantom_ct_range(data: Path) -> str:
    """The same numbers over the phantom CTs (up to 40 TotalSegmentator subjects and 20 MSD CT cases)."""
    scans = (sorted(data.glob("TotalSegmentator/s*/ct.nii.gz"))[:40]
             + sorted(data.glob("Task0[3789]_*/imagesTr/*.nii.gz"))[:20])
    if not scans:
        return "no phantom CTs found"
    n = np.array([_ct_numbers(p) for p in scans])
    return (f"{len(scans)} phantom CTs: air {n[:, 0].min():.0%}-{n[:, 0].max():.0%}, clipped mean "
            f"{n[:, 1].min():.0f}..{n[:, 1].max():.0f} HU, SD {n[:, 2].min():.0f}-{n[:, 2].max():.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="hypernetwork checkpoint")
    ap.add_argument("--data", type=Path, required=True, help="phantom folder (from `hyperkit phantoms`)")
    ap.add_argument("--out", type=Path, required=True, help="where the scans, model and masks go")
    ap.add_argument("--depth", type=int, default=400, help="slices of the padded full field of view")
    args = ap.parse_args()
    liver = args.data / "Task03_Liver"
    if not (liver / "imagesTr" / "liver_001.nii.gz").exists():
        raise SystemExit(f"{liver}: no liver_000/001 phantom cases (run `hyperkit phantoms --out {args.data}`)")
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = {"fine": None, "full": (512, 512, args.depth)}
    names = {"fine": "phantom field of view", "full": "full field"}
    print("| command | scan (0.8 x 0.8 x 1.5 mm) | voxels | wall s | peak RSS GiB | liver DSC |")
    print("|---|---|---:|---:|---:|---:|")
    stats = {}
    for stem, pad in sizes.items():
        support = clinical_grid(liver / "imagesTr" / "liver_000.nii.gz", args.out / f"support-{stem}.nii.gz", pad)
        clinical_grid(liver / "labelsTr" / "liver_000.nii.gz", args.out / f"support-{stem}-label.nii.gz", pad,
                      label=True)
        query = clinical_grid(liver / "imagesTr" / "liver_001.nii.gz", args.out / f"{stem}.nii.gz", pad)
        clinical_grid(liver / "labelsTr" / "liver_001.nii.gz", args.out / f"truth-{stem}.nii.gz", pad, label=True)
        stats[stem] = _ct_stats(args.out / f"support-{stem}.nii.gz")
        wall, peak = measured([*HYPERKIT, "generate", "--checkpoint", str(args.checkpoint), "--image",
                               str(args.out / f"support-{stem}.nii.gz"), "--mask",
                               str(args.out / f"support-{stem}-label.nii.gz"), "--label", "1",
                               "--out", str(args.out / f"liver-{stem}.pt")])
        _row("generate (support)", f"{names[stem]} {' x '.join(map(str, support))}", support, wall, peak, None)
        for roi in ("auto", "none"):
            mask = args.out / f"mask-{stem}-{roi}.nii.gz"
            wall, peak = measured([*HYPERKIT, "segment", "--model", str(args.out / f"liver-{stem}.pt"), "--image",
                                   str(args.out / f"{stem}.nii.gz"), "--roi", roi, "--out", str(mask)])
            _row(f"segment --roi {roi} (query)", f"{names[stem]} {' x '.join(map(str, query))}", query, wall, peak,
                 _dice(mask, args.out / f"truth-{stem}.nii.gz"))
    print("\nThe field of view (--roi auto, liver DSC): model from which support, on which query")
    for model, scan in (("fine", "full"), ("full", "fine")):
        mask = args.out / f"mask-{model}-model-{scan}-query.nii.gz"
        measured([*HYPERKIT, "segment", "--model", str(args.out / f"liver-{model}.pt"), "--image",
                  str(args.out / f"{scan}.nii.gz"), "--out", str(mask)])
        print(f"  {names[model]} support, {names[scan]} query: {_dice(mask, args.out / f'truth-{scan}.nii.gz'):.3f}")
    for stem, text in stats.items():
        print(f"  support, {names[stem]}: {text}")
    print(f"  {_phantom_ct_range(args.data)}")

if __name__ == "__main__":
    main()
