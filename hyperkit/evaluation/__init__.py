"""One-shot evaluation: the protocol, the paper's baselines, and Tables 1-2 (paper §4)."""

from hyperkit.evaluation.baselines import Samples, central_blob, copy_support, predict, train_supervised
from hyperkit.evaluation.centre_prior import centre_prior_table
from hyperkit.evaluation.config import METHODS, ONE_SHOT_METHODS, EvalConfig, SupervisedConfig, protocol_for
from hyperkit.evaluation.protocol import (case_split, evaluate, one_shot_plan, read_results, score, support_draws,
                                          task_split)
from hyperkit.evaluation.run import EvaluationResult, resolve_tasks, run_evaluation
from hyperkit.evaluation.tables import comparison_table, paper_tables, reading, summarize, table_tasks, what_held

__all__ = ["Samples", "central_blob", "copy_support", "predict", "train_supervised", "METHODS", "ONE_SHOT_METHODS",
           "EvalConfig", "SupervisedConfig", "protocol_for", "case_split", "evaluate", "one_shot_plan", "read_results",
           "score", "support_draws", "task_split", "EvaluationResult", "resolve_tasks", "run_evaluation",
           "comparison_table", "paper_tables", "reading", "summarize", "table_tasks", "what_held",
           "centre_prior_table"]
