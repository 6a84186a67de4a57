"""Extraction strength (Carlini et al., "Quantifying Memorization Across Neural Language Models", ICLR 2023, as
used for unlearning by open-unlearning): how short a prefix of the answer makes the model's greedy next-token
predictions reproduce the rest of it.

Follows ``extraction_strength`` in open-unlearning's ``src/evals/metrics/memorization.py`` (in its default TOFU
and MUSE evaluations, ``configs/eval/{tofu,muse}_metrics/extraction_strength.yaml``): with the argmax
predictions ``p`` and the labels ``y`` of the n scored answer tokens (the end-of-sequence token left out, as
``tokenwise_vocab_logprobs`` does), k is the first index whose suffix matches (``p[k:] == y[k:]``) and the score is
1 − k/n. As there, when no suffix matches the loop ends at k = n − 1 (a score of 1/n), and a row with no scored
token scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def extraction_strength(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """1 − k/n for the first k with ``predictions[k:] == labels[k:]`` (k = n − 1 when none does)."""
    p, y = np.asarray(predictions), np.asarray(labels)
    n = len(y)
    if n == 0:
        return 0.0
    if len(p) != n:
        raise ValueError(f"{len(p)} predictions for {n} labels; give one prediction per scored token")
    wrong = np.nonzero(p != y)[0]
    k = 0 if not len(wrong) else min(int(wrong[-1]) + 1, n - 1)
    return 1.0 - k / n


def mean_extraction_strength(rows: Sequence[tuple[Sequence[int], Sequence[int]]]) -> float:
    """Mean of :func:`extraction_strength` over ``(predictions, labels)`` rows (NaN for none)."""
    if not rows:
        return float("nan")
    return float(np.mean([extraction_strength(p, y) for p, y in rows]))
