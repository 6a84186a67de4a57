"""Metrics, each a pure function of predictions (all in percent), plus :func:`evaluate` that computes the
headline set for a model."""

from .accuracy import accuracy, per_class_accuracy, true_class_confidence, unlearning_accuracy
from .evaluate import Evaluation, evaluate
from .gap import avg_gap, gaps
from .mia import mia_efficacy
from .predict import predict_outputs, predict_proba
from .regression import mean_absolute_error, r2_score, regression_metrics

__all__ = [
    "Evaluation",
    "accuracy",
    "avg_gap",
    "evaluate",
    "gaps",
    "mean_absolute_error",
    "mia_efficacy",
    "per_class_accuracy",
    "predict_outputs",
    "predict_proba",
    "r2_score",
    "regression_metrics",
    "true_class_confidence",
    "unlearning_accuracy",
]
