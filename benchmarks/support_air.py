"""How the field of view of a support scan changes the generated U-Net (``generate`` + ``segment``).

CT is z-scored over the whole scan, as in the paper, so a CT support padded far beyond the body is
normalised differently from the phantom CTs the hypernetwork trained on (46-67 % air); MRI maps its
1st-99th percentiles to [0, 1], which padding moves less. For each of five phantom supports (3 mm)
this script pads the support in x and y (air, -1000 HU, for CT; 0 for MRI; label 0 outside),
generates a model from it (:func:`hyperkit.inference.generate_model`, the protocol's gradient step)
and segments the next, unpadded case with ``--roi auto`` (:func:`hyperkit.inference.segment_scan`);
Dice of each mask against that case's label (value 1); a registration the kit refuses (the padded
support no longer looks like the query) is counted, not scored.

- ``--task liver`` (CT, ``liver_000``/``001`` ... ``008``/``009``): padded until the scan holds a given
  air fraction (:func:`hyperkit.data.preprocess.ct_air_fraction`); the warning threshold of
  ``hyperkit generate`` (``segment.SUPPORT_AIR_WARN``).
- ``--task heart`` (MRI, left atrium, ``la_000``/``001`` ...): each side in x and y grown 1.5, 2 and
  3 times (2.25, 4 and 9 times the area).

BENCHMARKS, "The support's field of view".

    python benchmarks/support_air.py --checkpoint runs/reproduce-quick/train-quick/best.pt \\
        --data runs/reproduce-quick/phantoms --out runs/support-air [--task heart]
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
from hyperkit.inference.localise import LocalisationError
from hyperkit.metrics import dice

AIR = (0.70, 0.75, 0.80, 0.85, 0.90, 0.95)
#: side factors in x and y of the MRI padding
SIDES = (1.5, 2.0, 3.0)
#: task -> (MSD folder, case prefix, value outside the body)
TASKS = {"liver": ("Task03_Liver", "liver", -1000.0), "heart": ("Task02_Heart", "la", 0.0)}


def pad_xy(src: Path, label: Path, side: float, fill: float, out: Path, out_label: Path) -> sitk.Image:
    """``src`` padded in x and y to ``side`` times each size with ``fill`` (its label with 0),
    centred; z untouched. Returns the padded scan."""
    if side < 1:
        raise ValueError(f"side must be >= 1 (padding only), got {side}")
    img, lab = sitk.ReadImage(str(src)), sitk.ReadImage(str(label))
    grow = [int(round(n * side)) - n for n in img.GetSize()[:2]] + [0]
    lo = [g // 2 for g in grow]
    hi = [g - a for g, a in zip(grow, lo)]
    padded = sitk.ConstantPad(img, lo, hi, fill)
    sitk.WriteImage(padded, str(out), True)
    sitk.WriteImage(sitk.ConstantPad(lab, lo, hi, 0), str(out_label), True)
    return padded


def pad_to_air(src: Path, label: Path, air: float, out: Path, out_label: Path) -> float:
    """``src`` padded in x and y with -1000 HU (its label with 0) until ``air`` of it is air;
    returns the air fraction reached."""
    a0 = ct_air_fraction(sitk.GetArrayFromImage(sitk.ReadImage(str(src))))
    if not a0 < air < 1:
        raise ValueError(f"air {air} must lie between the scan's own air fraction {a0:.3f} and 1")
    side = math.sqrt((1 - a0) / (1 - air))  # the volume grows by side^2 at the same amount of body
    return ct_air_fraction(sitk.GetArrayFromImage(pad_xy(src, label, side, -1000.0, out, out_label)))


def _change(v: list[float], base: list[float]) -> str:
    """Mean change from the unpadded support over the pairs both have, with a 95 % t-interval."""
    d = np.array([a - b for a, b in zip(v, base) if not (math.isnan(a) or math.isnan(b))])
    if d.size < 2:
        return "—"
    half = float(stats.t.ppf(0.975, d.size - 1)) * d.std(ddof=1) / d.size ** 0.5
    return f"{d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="hypernetwork checkpoint")
    ap.add_argument("--data", type=Path, required=True, help="phantom folder (from `hyperkit phantoms`)")
    ap.add_argument("--out", type=Path, required=True, help="where the padded scans, models and masks go")
    ap.add_argument("--task", choices=sorted(TASKS), default="liver", help="liver (CT) or heart (MRI)")
    ap.add_argument("--pairs", type=int, default=5, help="support/query pairs (cases 0/1, 2/3, ...)")
    args = ap.parse_args()
    folder, prefix, fill = TASKS[args.task]
    root = args.data / folder
    if not (root / "imagesTr" / f"{prefix}_{2 * args.pairs - 1:03d}.nii.gz").exists():
        raise SystemExit(f"{root}: fewer than {2 * args.pairs} phantom cases "
                         f"(run `hyperkit phantoms --out {args.data}`)")
    args.out.mkdir(parents=True, exist_ok=True)
    levels: tuple[float, ...] = AIR if args.task == "liver" else SIDES
    name = (lambda v: f"{v:.0%} air") if args.task == "liver" else (lambda v: f"{v:g}x each side")
    t0 = time.perf_counter()
    rows: dict[float | None, list[float]] = {None: [], **{v: [] for v in levels}}
    reached: dict[float, list[float]] = {v: [] for v in levels}
    refused = {v: 0 for v in levels}
    for p in range(args.pairs):
        s, q = f"{prefix}_{2 * p:03d}", f"{prefix}_{2 * p + 1:03d}"
        image, label = root / "imagesTr" / f"{s}.nii.gz", root / "labelsTr" / f"{s}.nii.gz"
        query = root / "imagesTr" / f"{q}.nii.gz"
        truth = np.asarray(nib.load(str(root / "labelsTr" / f"{q}.nii.gz")).dataobj) == 1
        for level in (None, *levels):
            stem = f"{s}-{'own' if level is None else f'{level:g}'}"
            sup, sup_label = image, label
            if level is not None:
                sup, sup_label = args.out / f"{stem}.nii.gz", args.out / f"{stem}-label.nii.gz"
                if args.task == "liver":
                    reached[level].append(pad_to_air(image, label, level, sup, sup_label))
                else:
                    pad_xy(image, label, level, fill, sup, sup_label)
            with warnings.catch_warnings():  # the air warning: its threshold is what is measured
                warnings.simplefilter("ignore")
                model = generate_model(args.checkpoint, sup, sup_label, args.out / f"{stem}.pt", label=1,
                                       task=args.task)
            try:
                rows[level].append(dice(segment_scan(model, query, roi="auto").mask > 0, truth))
            except LocalisationError:  # the kit refuses the registration: nothing to score
                rows[level].append(float("nan"))
                refused[level] += 1  # type: ignore[index]
        print(f"  pair {s}/{q}: " + ", ".join(f"{'own' if v is None else name(v)} {r[-1]:.3f}"
                                               for v, r in rows.items()), flush=True)
    own = rows[None]
    print(f"\n{args.task}: {args.pairs} support/query pairs, {time.perf_counter() - t0:.0f} s\n")
    print("| support | DSC, mean over the pairs scored | change from the unpadded support [95 % t-CI] "
          "| registrations refused |")
    print("|---|---:|---:|---:|")
    print(f"| own field of view | {np.nanmean(own):.3f} | — | {sum(math.isnan(v) for v in own)} |")
    for level in levels:
        what = name(level) + (f" (reached {min(reached[level]):.1%}-{max(reached[level]):.1%})"
                              if reached[level] else "")
        scored = sum(not math.isnan(v) for v in rows[level])
        mean = f"{np.nanmean(rows[level]):.3f}" + (f" ({scored} pairs)" if scored < args.pairs else "")
        print(f"| {what} | {mean} | {_change(rows[level], own)} | {refused[level]} |")


if __name__ == "__main__":
    main()
