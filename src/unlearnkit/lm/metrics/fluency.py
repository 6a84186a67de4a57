"""Fluency of generations as n-gram entropy (Meng et al., "Locating and Editing Factual Associations in GPT",
NeurIPS 2022): a weighted mean of bigram and trigram entropies; repetitive or empty text scores low."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def ngram_entropy(text: str, ns: Sequence[int] = (2, 3), weights: Sequence[float] = (2 / 3, 4 / 3)) -> float:
    """Weighted mean over ``ns`` of −Σ f·log2 f of the n-gram frequencies of the text's words."""
    words = text.split()
    out = []
    for n in ns:
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        total = sum(grams.values())
        f = np.array(list(grams.values()), dtype=float) / total if total else np.array([1.0])
        out.append(float(-(f * np.log2(f)).sum()))
    return float(np.mean(np.array(out) * np.asarray(weights)))


def mean_ngram_entropy(texts: Sequence[str]) -> float:
    return float(np.mean([ngram_entropy(t) for t in texts])) if texts else float("nan")
