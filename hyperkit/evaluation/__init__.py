"""One-shot evaluation: the protocol, the paper's baselines, and Tables 1-2 (paper §4)."""

from hyperkit.evaluation.baselines import Samples, copy_support, predict, train_supervised
from hyperkit.evaluation.config import METHODS, ONE_SHOT_METHODS, EvalConfig, SupervisedConfig
from hyperkit.evaluation.protocol import case_split, evaluate, read_results, score, support_draws
from hyperkit.evaluation.run import EvaluationResult, resolve_tasks, run_evaluation
from hyperkit.evaluation.tables import comparison_table, paper_tables, summarize, table_tasks

__all__ = ["Samples", "copy_support", "predict", "train_supervised", "METHODS", "ONE_SHOT_METHODS", "EvalConfig",
           "SupervisedConfig", "case_split", "evaluate", "read_results", "score", "support_draws",
           "EvaluationResult", "resolve_tasks", "run_evaluation", "comparison_table", "paper_tables", "summarize",
           "table_tasks"]
