"""One-shot evaluation: the protocol, the paper's baselines, and Tables 1-2 (paper §4); the
ablations (Appendix A) and limited-data fine-tuning (Figure 3) built on it.

The names below are imported on first use, so that building the command-line parser (which
imports :mod:`hyperkit.evaluation.cli` and its siblings) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that holds it
_WHERE: dict[str, str] = {
    **dict.fromkeys(("Samples", "central_blob", "copy_support", "predict", "train_supervised"), "baselines"),
    "centre_prior_table": "centre_prior",
    **{n: "hyperkit.config" for n in ("METHODS", "ONE_SHOT_METHODS", "EvalConfig", "SupervisedConfig",
                                      "protocol_for")},
    **dict.fromkeys(("REGISTRY", "OneShotMethod", "SupervisedMethod", "register"), "methods"),
    **dict.fromkeys(("case_split", "evaluate", "one_shot_plan", "score", "support_draws", "task_split"), "protocol"),
    **dict.fromkeys(("read_results", "write_results"), "results_file"),
    **dict.fromkeys(("EvaluationResult", "resolve_tasks", "run_evaluation"), "run"),
    **dict.fromkeys(("comparison_table", "paper_columns", "paper_tables", "reading", "summarize", "table_tasks",
                     "what_held"), "tables"),
    **dict.fromkeys(("run_ablation", "ablation_tables", "ablation_reading"), "ablation"),
    **dict.fromkeys(("run_finetune", "finetune_table"), "finetune"),
    **dict.fromkeys(("paired_difference", "paired_tasks"), "stats"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        where = _WHERE[name]
        module = where if where.startswith("hyperkit.") else f"hyperkit.evaluation.{where}"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'hyperkit.evaluation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
