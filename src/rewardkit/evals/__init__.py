"""Metrics, runners and reports."""
from .metrics import Outcome, best_of_n_outcome, pair_outcome, summarize
from .runner import evaluate, evaluate_scored, score_dataset

__all__ = ["Outcome", "best_of_n_outcome", "pair_outcome", "summarize", "evaluate", "evaluate_scored", "score_dataset"]
