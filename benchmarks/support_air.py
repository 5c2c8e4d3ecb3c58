"""How the air in a CT support's field of view changes the generated U-Net (``generate`` + ``segment``).

The CT z-score runs over the whole scan, as in the paper, so a support padded far beyond the body
is normalised differently from the phantom CTs the hypernetwork trained on (46-67 % air). For
each of five phantom liver supports (``liver_000``, ``002``, ... ``008``, 3 mm) this script pads the
support with air in x and y (label 0 outside) until the scan holds a given air fraction
(:func:`hyperkit.data.preprocess.ct_air_fraction`), generates a liver model from it
(:func:`hyperkit.inference.generate_model`, the protocol's gradient step) and segments the next,
unpadded case (``liver_001``, ... ``009``) with ``--roi auto``; Dice of each mask against that
case's liver label (value 1). The unpadded support is the first column. BENCHMARKS, "The support's
field of view"; the warning threshold of ``hyperkit generate`` (``segment.SUPPORT_AIR_WARN``).

    python benchmarks/support_air.py --checkpoint runs/reproduce-quick/train-quick/best.pt \\
        --data runs/reproduce-quick/phantoms --out runs/support-air
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import stats

from hyperkit.data.preprocess import ct_air_fraction
from hyperkit.inference import generate_model, segment_scan
from hyperkit.metrics import dice

AIR = (0.70, 0.75, 0.80, 0.85, 0.90, 0.95)


def pad_to_air(src: Path, label: Path, air: float, out: Path, out_label: Path) -> float:
    """``src`` padded in x and y with -1000 HU (its label with 0) until ``air`` of it is air;
    returns the air fraction reached."""
    img, lab = sitk.ReadImage(str(src)), sitk.ReadImage(str(label))
    a0 = ct_air_fraction(sitk.GetArrayFromImage(img))
    if not a0 < air < 1:
        raise ValueError(f"air {air} must lie between the scan's own air fraction {a0:.3f} and 1")
    k = math.sqrt((1 - a0) / (1 - air))  # the volume grows by k^2 at the same amount of body
    size = img.GetSize()
    grow = [int(round(n * k)) - n for n in size[:2]] + [0]
    lo = [g // 2 for g in grow]
    hi = [g - a for g, a in zip(grow, lo)]
    padded = sitk.ConstantPad(img, lo, hi, -1000.0)
    sitk.WriteImage(padded, str(out), True)
    sitk.WriteImage(sitk.ConstantPad(lab, lo, hi, 0), str(out_label), True)
    return ct_air_fraction(sitk.GetArrayFromImage(padded))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="hypernetwork checkpoint")
    ap.add_argument("--data", type=Path, required=True, help="phantom folder (from `hyperkit phantoms`)")
    ap.add_argument("--out", type=Path, required=True, help="where the padded scans, models and masks go")
    ap.add_argument("--pairs", type=int, default=5, help="support/query pairs (liver_000/001, 002/003, ...)")
    args = ap.parse_args()
    liver = args.data / "Task03_Liver"
    if not (liver / "imagesTr" / f"liver_{2 * args.pairs - 1:03d}.nii.gz").exists():
        raise SystemExit(f"{liver}: fewer than {2 * args.pairs} liver phantom cases "
                         f"(run `hyperkit phantoms --out {args.data}`)")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: dict[float | None, list[float]] = {None: [], **{a: [] for a in AIR}}
    reached: dict[float, list[float]] = {a: [] for a in AIR}
    own = []
    for p in range(args.pairs):
        s, q = f"liver_{2 * p:03d}", f"liver_{2 * p + 1:03d}"
        image, label = liver / "imagesTr" / f"{s}.nii.gz", liver / "labelsTr" / f"{s}.nii.gz"
        query = liver / "imagesTr" / f"{q}.nii.gz"
        truth = np.asarray(nib.load(str(liver / "labelsTr" / f"{q}.nii.gz")).dataobj) == 1
        own.append(ct_air_fraction(np.asarray(nib.load(str(image)).dataobj)))
        for air in (None, *AIR):
            stem = f"{s}-{'own' if air is None else f'air{round(100 * air)}'}"
            if air is None:
                sup, sup_label = image, label
            else:
                sup, sup_label = args.out / f"{stem}.nii.gz", args.out / f"{stem}-label.nii.gz"
                reached[air].append(pad_to_air(image, label, air, sup, sup_label))
            with warnings.catch_warnings():  # the warning under study; its threshold is what is measured
                warnings.simplefilter("ignore")
                model = generate_model(args.checkpoint, sup, sup_label, args.out / f"{stem}.pt", label=1,
                                       task="liver")
            seg = segment_scan(model, query, roi="auto")
            rows[air].append(dice(seg.mask > 0, truth))
        print(f"  pair {s}/{q}: " + ", ".join(f"{'own' if a is None else f'{a:.0%}'} {v[-1]:.3f}"
                                               for a, v in rows.items()), flush=True)
    base = np.array(rows[None])
    print(f"\n{args.pairs} support/query pairs, {time.perf_counter() - t0:.0f} s; supports' own air "
          f"{min(own):.0%}-{max(own):.0%}\n")
    print("| support's air fraction | liver DSC, mean over pairs "
          "| change from the unpadded support [95 % t-CI over pairs] |")
    print("|---|---:|---:|")
    print(f"| own ({min(own):.0%}-{max(own):.0%}) | {base.mean():.3f} | — |")
    for air in AIR:
        v = np.array(rows[air])
        d = v - base  # paired by support/query pair; a t-interval over the independent pairs
        half = float(stats.t.ppf(0.975, d.size - 1)) * d.std(ddof=1) / d.size ** 0.5
        lo, hi = d.mean() - half, d.mean() + half
        print(f"| {air:.0%} (reached {min(reached[air]):.1%}-{max(reached[air]):.1%}) | {v.mean():.3f} | "
              f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] |")


if __name__ == "__main__":
    main()
