"""Figure 2 of the paper: ground truth, Hyper U-Net and Conv U-Net contours on the same slices."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import torch

from hyperkit.config import EvalConfig
from hyperkit.evaluation.protocol import one_shot_model, one_shot_plan
from hyperkit.evaluation.tables import paper_columns
from hyperkit.metrics import dice
from hyperkit.model.hypernet import HyperUNet
from hyperkit.plots import show_contours
from hyperkit.data.bank import TaskBank
from hyperkit.data.tasks import task_parts

__all__ = ["FIGURE2_TARGETS", "FIGURE3_STYLE", "figure2", "figure3", "load_conv_models"]

#: the four targets of the kit's Figure 2 (paper column names)
FIGURE2_TARGETS: tuple[str, ...] = ("liver", "spleen", "heart_bssfp", "pancreas")


def figure2(hyper: HyperUNet, bank: TaskBank, cfg: EvalConfig, conv_models: dict[str, torch.nn.Module],
            targets: Sequence[str] = FIGURE2_TARGETS, seed: int = 0) -> plt.Figure:
    """One row per target: a test case with the three outlines, Dice in the row label.

    The Hyper U-Net is the one of the first support draw of the evaluation (same seed, same
    support, same gradient step: :func:`~hyperkit.evaluation.protocol.one_shot_plan`); the
    Conv U-Net is the trained baseline; the case is the first test case of the target's
    split that is not that support (both methods are scored on the test cases).

    Args:
        hyper: the trained hypernetwork.
        bank: held-out patches containing the targets.
        cfg: the evaluation's protocol.
        conv_models: ``task id -> trained Conv U-Net``.
        targets: paper column names; those without a task in ``bank`` or a Conv U-Net are skipped.
        seed: the evaluation's seed.

    Raises:
        ValueError: none of ``targets`` can be drawn, or a target has no test split.
    """
    cols = paper_columns(bank.task_ids)
    shown = [c for c in targets if cols.get(c) in conv_models]
    if not shown:
        raise ValueError(f"none of {list(targets)} has a held-out task with a trained Conv U-Net")
    fig, axes = plt.subplots(len(shown), 3, figsize=(9, 3 * len(shown)), squeeze=False)
    for row, col in zip(axes, shown):
        t = cols[col]
        assert t is not None
        imgs, msks = bank.images[t], bank.masks[t]
        plan = one_shot_plan(len(bank.case_ids[t]), cfg, seed, t)
        sup = plan.supports[0]
        if plan.split is None:  # a Conv U-Net was given for a task too small to have been trained on
            raise ValueError(f"{t}: {len(bank.case_ids[t])} cases, no test split to draw a case from")
        q = next(i for i in plan.split.test if i not in sup)
        unet = one_shot_model("hyper_unet", hyper, imgs[sup], msks[sup], cfg, None)
        with torch.no_grad():
            hyp = unet(imgs[q:q + 1])[0] > 0
            conv = conv_models[t].eval()(imgs[q:q + 1])[0] > 0
        show_contours(imgs[q], {"ground truth": msks[q], "Hyper U-Net": hyp, "Conv U-Net": conv}, ax_row=row,
                      title=f"{col} ({bank.case_ids[t][q]})\nDSC Hyper {dice(hyp, msks[q]):.2f} · "
                            f"Conv {dice(conv, msks[q]):.2f}")
    axes[0, 0].legend(loc="lower left", fontsize=7)
    fig.suptitle("Ground truth (red), Hyper U-Net (blue), Conv U-Net (green)", fontsize=10)
    fig.tight_layout()
    return fig


def load_conv_models(out_csv: str | Path, task_ids: Sequence[str]) -> dict[str, torch.nn.Module]:
    """The Conv U-Nets an evaluation saved beside its results (tasks without one are left out)."""
    from hyperkit.evaluation.run import model_path
    from hyperkit.inference import load_unet

    out = {}
    for t in task_ids:
        p = model_path(out_csv, "conv_unet", t)
        if p.is_file():
            out[t] = load_unet(p)[0]
    return out


#: colours of Figure 3 (the paper's: blue fine-tuned Hyper U-Net, red fine-tuned Random U-Net)
FIGURE3_STYLE: dict[str, dict[str, str]] = {
    "hyper_ft": {"color": "tab:blue", "label": "Hyper U-Net, fine-tuned"},
    "rand_ft": {"color": "tab:red", "label": "Rand U-Net (trained encoder), fine-tuned"},
    "scratch_ft": {"color": "tab:gray", "label": "U-Net from scratch, fine-tuned"},
}


def figure3(curves: dict[tuple[str, str], list[tuple[int, float, float, float, int]]],
            references: dict[str, dict[str, float]] | None = None) -> plt.Figure:
    """Figure 3: DSC against the number of labelled volumes N, one panel per target.

    Args:
        curves: ``(task, method) -> [(N, mean, lo, hi, repeats)]``
            (:func:`hyperkit.evaluation.finetune.curve`); the band is the 95 % interval across repeats.
        references: ``task -> {"conv_unet": DSC, "hyper_unet": DSC}``: the black (U-Net trained on the
            target's full training split) and green (one-shot Hyper U-Net) horizontal lines.
    """
    tasks = sorted({t for t, _ in curves})
    if not tasks:
        raise ValueError("figure3 needs at least one curve, got none")
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.2), squeeze=False, sharey=True)
    for ax, task in zip(axes[0], tasks):
        for method, style in FIGURE3_STYLE.items():
            pts = curves.get((task, method))
            if not pts:
                continue
            n, mean, lo, hi = (list(v) for v in zip(*[p[:4] for p in pts]))
            ax.plot(n, mean, marker="o", color=style["color"], label=style["label"])
            ax.fill_between(n, lo, hi, color=style["color"], alpha=0.15, linewidth=0)
        ref = (references or {}).get(task, {})
        if "conv_unet" in ref:
            ax.axhline(ref["conv_unet"], color="black", linestyle="--", linewidth=1, label="Conv U-Net, full split")
        if "hyper_unet" in ref:
            ax.axhline(ref["hyper_unet"], color="tab:green", linestyle="--", linewidth=1, label="Hyper U-Net, one-shot")
        ax.set_xscale("log", base=2)
        ns = sorted({p[0] for (t, _), v in curves.items() if t == task for p in v})
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("labelled volumes N")
        ax.set_title(task_parts(task).class_name)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("DSC on held-out cases")
    legend: dict[str, object] = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    labels, handles = list(legend), list(legend.values())
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), bbox_to_anchor=(0.5, -0.12),
               frameon=False, fontsize="small")
    fig.tight_layout()
    return fig
