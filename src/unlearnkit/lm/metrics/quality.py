"""Forget quality and model utility (Maini et al., "TOFU", 2024)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ks_forget_quality(unlearned_ratios: Sequence[float], retain_only_ratios: Sequence[float]) -> float:
    """TOFU's forget quality: the p-value of the two-sample Kolmogorov–Smirnov test between the forget-set truth
    ratios of the unlearned model and of the retain-only model: ≈ 1 when indistinguishable, small when they
    differ (the NeurIPS 2023 challenge's ε-based score is :func:`unlearnkit.audit.epsilon_forget_quality`)."""
    from scipy.stats import ks_2samp

    a, b = np.asarray(unlearned_ratios, dtype=float), np.asarray(retain_only_ratios, dtype=float)
    if not a.size or not b.size:
        return float("nan")
    return float(ks_2samp(a, b).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean; 0 as soon as one value is 0 (a collapsed metric drags utility to 0), NaNs skipped."""
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    if not v.size:
        return float("nan")
    if np.any(v <= 0):
        return 0.0
    return float(len(v) / np.sum(1.0 / v))


def model_utility(values: Sequence[float]) -> float:
    """Model utility: the harmonic mean of the retain and neighbour probability, ROUGE and truth-ratio scores."""
    return harmonic_mean(values)
