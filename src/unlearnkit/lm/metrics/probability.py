"""Answer probability and truth ratio (Maini et al., "TOFU", 2024) from per-token log-probabilities, as
``evaluate_probability``, ``truth_ratio`` and ``probability_w_options`` in open-unlearning's
``src/evals/metrics/utils.py`` and ``src/evals/metrics/memorization.py``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TokenLogps = Sequence[float] | np.ndarray


def normalised_probability(logps: TokenLogps) -> float:
    """P(a|q)^(1/|a|): the geometric-mean token probability of an answer."""
    arr = np.asarray(logps, dtype=np.float64)
    return float(math.exp(arr.mean())) if arr.size else float("nan")


def mean_answer_probability(rows: Sequence[TokenLogps]) -> float:
    """TOFU's "probability" metric averaged over questions."""
    vals = [normalised_probability(r) for r in rows]
    return float(np.mean(vals)) if vals else float("nan")


def truth_ratio(paraphrased: TokenLogps, perturbed: Sequence[TokenLogps]) -> float:
    """R_truth = the *geometric* mean over perturbed answers of P(ã)^(1/|ã|), divided by P(â)^(1/|â|) of the
    paraphrased answer: exp(−mean_i NLL_avg(ã_i)) / (exp(−NLL_avg(â)) + 1e-10), as open-unlearning's
    ``truth_ratio`` (``aggregate_to_1D`` averages the perturbed answers' average losses before ``exp``).

    A model that knows the fact gives the paraphrase more probability than the wrong answers (R < 1)."""
    wrong_avg_loss = float(np.mean([-np.mean(np.asarray(p, dtype=np.float64)) for p in perturbed]))
    correct_avg_loss = -float(np.mean(np.asarray(paraphrased, dtype=np.float64)))
    return math.exp(-wrong_avg_loss) / (math.exp(-correct_avg_loss) + 1e-10)


def choice_probability(correct: TokenLogps, wrong: Sequence[TokenLogps]) -> float:
    """TOFU's normalised probability for the real-authors and world-facts sets: P(a)/(P(a) + Σ P(ã_i)) with
    P = the length-normalised probability, as open-unlearning's ``probability_w_options``."""
    p = normalised_probability(correct)
    return p / (p + sum(normalised_probability(w) for w in wrong) + 1e-10)


def truth_ratio_score(ratios: Sequence[float], forget: bool = False) -> float:
    """TOFU's reported truth-ratio statistic: mean max(0, 1 − R) on retained data (open-unlearning's
    ``true_better`` aggregator); on the forget set mean min(R, 1/R) (``closer_to_1_better``)."""
    r = np.asarray(ratios, dtype=np.float64)
    if not r.size:
        return float("nan")
    if forget:
        return float(np.mean(np.minimum(r, 1.0 / (r + 1e-10))))
    return float(np.mean(np.maximum(0.0, 1.0 - r)))
