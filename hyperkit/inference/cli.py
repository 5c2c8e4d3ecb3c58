"""``hyperkit generate`` and ``hyperkit segment``: one-shot segmentation of NIfTI files."""

from __future__ import annotations

import argparse
import time

from hyperkit.commands import SUMMARIES

__all__ = ["register"]


def _generate(args: argparse.Namespace) -> int:
    from hyperkit.inference.model_file import load_unet
    from hyperkit.inference.segment import default_checkpoint, generate_model

    t0 = time.perf_counter()
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = default_checkpoint(args.profile)
        print(f"no --checkpoint: using the kit's reference checkpoint of the {checkpoint.stem} profile ({checkpoint})")
    path = generate_model(checkpoint, args.image, args.mask, args.out, profile=args.profile,
                          modality=args.modality, channel_index=args.channel_index, label=args.label,
                          adapt=False if args.no_adapt else None, adapt_lr=args.adapt_lr, task=args.task)
    _, meta = load_unet(path)  # also proves the file reads back
    ad = meta["adaptation"]
    loss = (f"support loss {ad['support_loss_before']:.4f} -> {ad['support_loss_after']:.4f}" if ad["adapted"]
            else f"support loss {ad['support_loss_before']:.4f} (no gradient step)")
    print(f"modality: {meta['modality']} ({meta['source'].get('modality')})")
    print(f"model: {path}  ({path.stat().st_size / 1e6:.2f} MB)  {loss}  [{time.perf_counter() - t0:.1f} s]")
    return 0


def _segment(args: argparse.Namespace) -> int:
    from hyperkit.inference.segment import segment_file

    from hyperkit.inference.localise import DEFAULT_MARGIN_MM

    if args.margin is not None and args.roi is not None and str(args.roi).strip().lower() != "auto":
        raise ValueError(f"--margin {args.margin:g} applies to --roi auto only (the support's target box mapped onto "
                         f"the scan); with --roi {args.roi} it would be ignored: drop one of them")
    keep = "roi" if args.keep_roi_components else "all"
    margin = DEFAULT_MARGIN_MM if args.margin is None else args.margin
    res = segment_file(args.model, args.image, args.out, roi=args.roi, margin_mm=margin,
                       channel_index=args.channel_index, overlap=args.overlap, sw_batch_size=args.sw_batch_size,
                       device=args.device, threshold=args.threshold, largest_component=args.largest_component,
                       keep=keep, fill_holes=args.fill_holes)
    roi = res["roi"]
    where = "whole scan" if roi["box_mm"] is None else \
        f"ROI ({roi['source']}) {','.join(f'{v:.0f}' for v in roi['box_mm'][0] + roi['box_mm'][1])} mm"
    if res.get("registration"):
        where += f", registered in {res['registration']['seconds']:.1f} s"
    print(f"segmentation: {res['output']}  {res['voxels']} voxels segmented  {res['volume_ml']:.1f} ml  "
          f"[{where}; {res['seconds']:.1f} s]  record: {res['sidecar']}")
    return 0


def _modality_arg(value: str) -> str:
    """``--modality``: ``auto``, or a modality in upper case (``hyperkit.data.tasks.MODALITIES``)."""
    v = value.strip()
    return "auto" if v.lower() == "auto" else v.upper()


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help=SUMMARIES["generate"],
                       description="Generate a U-Net from one scan and its mask with a trained hypernetwork "
                                   "(paper: one-shot), take one gradient step on the support (as the "
                                   "checkpoint's evaluate protocol says), save it.")
    g.add_argument("--checkpoint", default=None,
                   help="hypernetwork checkpoint (a training run's best.pt; default: the kit's reference checkpoint "
                        "of the quick profile, hyperkit/reference/quick.pt)")
    g.add_argument("--image", required=True, help="support scan (NIfTI, 3D or 4D)")
    g.add_argument("--mask", required=True, help="its label map on the same grid (target: values > 0)")
    g.add_argument("--out", required=True,
                   help="model file to write (e.g. spleen.pt); an existing file is replaced only if it is a model file")
    g.add_argument("--profile", default=None,
                   help="check that the checkpoint was trained with this profile and take its evaluate section "
                        "(default: the built-in profile the checkpoint names, else the section it records)")
    g.add_argument("--modality", default="auto", type=_modality_arg, choices=["auto", "CT", "MRI"],
                   help="intensity normalisation: CT window + z-score or MRI percentiles; auto: MRI when the support "
                        "has no negative value, else CT (default: auto; the line it prints says why)")
    g.add_argument("--channel-index", type=int, default=None, help="channel of a 4D image")
    g.add_argument("--label", type=int, default=None, metavar="VALUE",
                   help="the label value that is the target (default: every value > 0)")
    g.add_argument("--task", default=None, help="a name for the target, stored in the model file")
    g.add_argument("--no-adapt", action="store_true",
                   help="skip the gradient step on the support (A.1; default: the protocol's evaluate.adapt)")
    g.add_argument("--adapt-lr", type=float, default=None,
                   help="learning rate of that step (default: the protocol's evaluate.adapt_lr; refused where no "
                        "step is taken)")
    g.set_defaults(func=_generate)

    s = sub.add_parser("segment", help=SUMMARIES["segment"],
                       description="Segment a NIfTI scan with a model file from `hyperkit generate`, where the "
                                   "model's support says the target lies (--roi); the mask has the scan's shape "
                                   "and affine, and a .json record beside it says which region, registration "
                                   "and post-processing were used.")
    s.add_argument("--model", required=True, help="model file from `hyperkit generate`")
    s.add_argument("--image", required=True, help="scan to segment (NIfTI, 3D or 4D)")
    s.add_argument("--out", required=True,
                   help="mask to write (.nii or .nii.gz, uint8; never the model or the scan); an existing file is "
                        "replaced only if it is a mask of segment (with its .json record)")
    s.add_argument("--channel-index", type=int, default=None, help="channel of a 4D image")
    s.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap in [0, 1) (default 0.25)")
    s.add_argument("--sw-batch-size", type=int, default=1, help="windows per forward pass (default 1)")
    s.add_argument("--threshold", type=float, default=0.0, help="logit threshold (default 0: probability 0.5)")
    s.add_argument("--roi", default=None, metavar="auto|none|x0,y0,z0,x1,y1,z1",
                   help="where to segment: 'auto' registers the model's support scan to this scan (SimpleITK, "
                        "a similarity transform) and segments around the support's target mapped there; "
                        "'none' the whole scan; "
                        "or a box in mm, world (RAS) coordinates of this image; write --roi=-10,... when the first "
                        "value is negative (default: auto when the model file carries its support, else none)")
    s.add_argument("--margin", type=float, default=None, metavar="MM",
                   help="margin around the support's target box before it is mapped (--roi auto only; default 20 mm)")
    s.add_argument("--keep-roi-components", action="store_true",
                   help="post-processing: keep only the connected regions that overlap the ROI")
    s.add_argument("--fill-holes", action="store_true", help="post-processing: fill enclosed holes")
    s.add_argument("--largest-component", action="store_true",
                   help="post-processing: keep only the largest connected region of the mask")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    s.set_defaults(func=_segment)
