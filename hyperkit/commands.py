"""The ``hyperkit`` sub-commands: which module registers each, and its one-line summary.

One source for both listings: ``hyperkit --help`` (built from :data:`SUMMARIES` without
importing any command module, so it starts without torch) and each module's
``register(subparsers)``, which passes ``help=SUMMARIES[name]``.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "SUMMARIES", "comma_list"]

#: sub-command -> module with ``register(subparsers)`` (one module may add several)
COMMANDS: dict[str, str] = {
    "tasks": "hyperkit.data.cli",
    "cache": "hyperkit.data.cli",
    "phantoms": "hyperkit.phantoms.cli",
    "reproduce": "hyperkit.reproduce",
    "train": "hyperkit.training.cli",
    "evaluate": "hyperkit.evaluation.cli",
    "ablate": "hyperkit.evaluation.ablation_cli",
    "finetune": "hyperkit.evaluation.finetune_cli",
    "maml": "hyperkit.evaluation.maml_cli",
    "generate": "hyperkit.inference.cli",
    "segment": "hyperkit.inference.cli",
}

#: one line per sub-command, for ``hyperkit --help`` and the sub-command's own parser
SUMMARIES: dict[str, str] = {
    "tasks": "list the binary tasks of a data folder (and check every case's headers and label values)",
    "phantoms": "write the procedural CT/MRI phantoms in the real datasets' layouts (TotalSegmentator + MSD)",
    "reproduce": "run the notebooks headlessly, index their results and write the reproduction report",
    "train": "episodic meta-training of the hypernetwork (Algorithm 1)",
    "evaluate": "one-shot evaluation and baselines on held-out tasks (paper Tables 1-2)",
    "ablate": "ablations (paper Tables 4-6, K-shot, samplings) with paired CIs",
    "finetune": "limited-data fine-tuning (paper Figure 3)",
    "maml": "MAML beside the 5-shot Hyper U-Net, leave-one-organ-out (paper Table 3)",
    "generate": "generate a standalone U-Net from one labelled scan",
    "segment": "segment a scan with a generated U-Net",
    "cache": "what the preprocessing cache holds, by dataset; prune what has not been used",
}


def comma_list(text: str) -> list[str]:
    """The items of a comma-separated option (``"liver, spleen,"`` -> ``["liver", "spleen"]``).

    Items are stripped and empty ones dropped, the same way for every sub-command's list options.
    """
    return [item.strip() for item in text.split(",") if item.strip()]
