"""ROUGE-L recall of generated answers (``rouge-score``, as in TOFU) and answer containment accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from ...errors import DataError, require


@lru_cache(maxsize=1)
def _scorer():
    rs = require("rouge_score.rouge_scorer", extra="lm")
    return rs.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall: length of the longest common subsequence of tokens over the reference length."""
    return float(_scorer().score(reference, prediction)["rougeL"].recall)


def mean_rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> float:
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions but {len(references)} references; pair them one to one")
    if not predictions:
        return float("nan")
    return sum(rouge_l_recall(p, r) for p, r in zip(predictions, references)) / len(predictions)


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (``rougeL_f1`` of open-unlearning's ``eval_text_similarity``), MUSE's VerbMem and KnowMem score."""
    return float(_scorer().score(reference, prediction)["rougeL"].fmeasure)


def mean_rouge_l_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions but {len(references)} references; pair them one to one")
    if not predictions:
        return float("nan")
    return sum(rouge_l_f1(p, r) for p, r in zip(predictions, references)) / len(predictions)


def contains_answer(prediction: str, value: str) -> bool:
    """Whether the key value of the answer (e.g. "Lisbon") appears in the prediction, case-insensitively."""
    return value.strip().lower() in prediction.lower()


def answer_accuracy(predictions: Sequence[str], values: Sequence[str]) -> float:
    """Fraction of predictions that contain their value."""
    if len(predictions) != len(values):
        raise DataError(f"{len(predictions)} predictions but {len(values)} values; pair them one to one")
    if not predictions:
        return float("nan")
    return sum(contains_answer(p, v) for p, v in zip(predictions, values)) / len(predictions)
