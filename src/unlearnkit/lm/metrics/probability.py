"""Answer probability and truth ratio (Maini et al., "TOFU", 2024) from per-token log-probabilities."""

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
    """R_truth = mean over perturbed answers of P(ã)^(1/|ã|), divided by P(â)^(1/|â|) of the paraphrased answer.

    A model that knows the fact gives the paraphrase more probability than the wrong answers (R < 1)."""
    num = float(np.mean([normalised_probability(p) for p in perturbed]))
    return num / max(normalised_probability(paraphrased), 1e-300)


def truth_ratio_score(ratios: Sequence[float], forget: bool = False) -> float:
    """TOFU's reported truth-ratio statistic: mean max(0, 1 − R) on retained data; on the forget set
    mean min(R, 1/R)."""
    r = np.asarray(ratios, dtype=np.float64)
    if not r.size:
        return float("nan")
    if forget:
        return float(np.mean(np.minimum(r, 1.0 / np.maximum(r, 1e-300))))
    return float(np.mean(np.maximum(0.0, 1.0 - r)))
