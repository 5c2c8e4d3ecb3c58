"""Peak memory and wall time of ``hyperkit generate`` and ``segment`` on clinical-size CT grids.

The phantoms are stored at 3 mm; a clinical CT is 0.8 x 0.8 x 1.5 mm, 512 x 512 x 300-600.
This script resamples two phantom liver cases (SimpleITK; linear for the scan, nearest for the
label) to 0.8 x 0.8 x 1.5 mm (the phantom's own field of view, about 30 M voxels) and pads them
with air to 512 x 512 x 400 (105 M voxels: a chest-abdomen-pelvis field of view); generates a
liver model from the first case at each size, and runs ``hyperkit segment`` on the second with
``--roi auto`` and ``--roi none``, each command in a fresh process; peak resident memory from
``os.wait4`` (the child's ``ru_maxrss``). BENCHMARKS, "Whole-scan segmentation".

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

import SimpleITK as sitk

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


def _row(command: str, scan: str, size: tuple[int, ...], wall: float, peak: float) -> None:
    print(f"| {command} | {scan} | {size[0] * size[1] * size[2] / 1e6:.1f} M | {wall:.1f} | {peak:.2f} |")


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
    print("| command | scan (0.8 x 0.8 x 1.5 mm) | voxels | wall s | peak RSS GiB |")
    print("|---|---|---:|---:|---:|")
    for stem, pad in sizes.items():
        support = clinical_grid(liver / "imagesTr" / "liver_000.nii.gz", args.out / f"support-{stem}.nii.gz", pad)
        clinical_grid(liver / "labelsTr" / "liver_000.nii.gz", args.out / f"support-{stem}-label.nii.gz", pad,
                      label=True)
        query = clinical_grid(liver / "imagesTr" / "liver_001.nii.gz", args.out / f"{stem}.nii.gz", pad)
        wall, peak = measured([*HYPERKIT, "generate", "--checkpoint", str(args.checkpoint), "--image",
                               str(args.out / f"support-{stem}.nii.gz"), "--mask",
                               str(args.out / f"support-{stem}-label.nii.gz"), "--label", "1",
                               "--out", str(args.out / f"liver-{stem}.pt")])
        _row("generate (support)", f"{names[stem]} {' x '.join(map(str, support))}", support, wall, peak)
        for roi in ("auto", "none"):
            wall, peak = measured([*HYPERKIT, "segment", "--model", str(args.out / f"liver-{stem}.pt"), "--image",
                                   str(args.out / f"{stem}.nii.gz"), "--roi", roi,
                                   "--out", str(args.out / f"mask-{stem}-{roi}.nii.gz")])
            _row(f"segment --roi {roi} (query)", f"{names[stem]} {' x '.join(map(str, query))}", query, wall, peak)


if __name__ == "__main__":
    main()
