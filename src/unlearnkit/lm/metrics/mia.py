"""Membership-inference scores for language models (higher score = more likely a member); their AUC is
:func:`unlearnkit.audit.roc.roc_auc`, members positive.

LOSS (Yeom et al. 2018), ZLib (Carlini et al., USENIX Security 2021), Min-K% (Shi et al., ICLR 2024),
Min-K%++ (Zhang et al., 2024); privacy leakage as in MUSE (Shi et al., 2024). The scores follow open-unlearning's
``src/evals/metrics/mia/{loss,zlib,min_k,min_k_plus_plus}.py`` with the sign flipped (there a higher score means
non-member, here member), which leaves every AUC unchanged; its MUSE and TOFU configurations use k = 0.4."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from ...errors import DataError


def loss_score(logps: Sequence[float]) -> float:
    """Mean token log-likelihood (−loss)."""
    return float(np.mean(logps))


def zlib_score(logps: Sequence[float], text: str) -> float:
    """Log-likelihood over the zlib-compressed length (in bytes, UTF-8) of ``text``; open-unlearning's
    ``ZLIBAttack`` (``src/evals/metrics/mia/zlib.py``) compresses the decoded label tokens of the row, which
    :func:`unlearnkit.lm.evaluate.mia_scores` passes here."""
    return float(np.mean(logps)) / max(1, len(zlib.compress(text.encode("utf-8"))))


#: k of Min-K% and Min-K%++ in open-unlearning's ``configs/eval/{muse,tofu}_metrics/mia_min_k*.yaml``
MIN_K = 0.4


def _lowest_mean(values: np.ndarray, k: float) -> float:
    if not len(values):  # no scored token: open-unlearning's attacks return 0
        return 0.0
    n = max(1, int(len(values) * k))
    return float(np.sort(values)[:n].mean())


def min_k_score(logps: Sequence[float], k: float = MIN_K) -> float:
    """Mean of the k fraction of lowest token log-likelihoods."""
    if not 0 < k <= 1:
        raise DataError(f"k must be in (0, 1], got {k}")
    return _lowest_mean(np.asarray(logps, dtype=float), k)


def min_k_plus_plus_score(
    logps: Sequence[float], mu: Sequence[float], sigma: Sequence[float], k: float = MIN_K
) -> float:
    """Min-K%++: tokens scored by (log p(x_t) − μ_t)/σ_t, where μ_t and σ_t are the mean and standard
    deviation of log p(z) for z drawn from the model's next-token distribution (σ_t = sqrt(max(var, 1e-6)) as
    in open-unlearning); mean of the lowest k fraction."""
    if not 0 < k <= 1:
        raise DataError(f"k must be in (0, 1], got {k}")
    z = (np.asarray(logps, float) - np.asarray(mu, float)) / np.maximum(np.asarray(sigma, float), 1e-6)
    return _lowest_mean(z, k)


#: the retain-only AUC privleak falls back to without a retain-only model (``ref_value`` of open-unlearning's
#: ``configs/eval/{tofu,muse}_metrics/privleak.yaml``): chance
PRIVLEAK_REFERENCE_AUC = 0.5


def privleak(auc_unlearned: float, auc_retain_only: float = PRIVLEAK_REFERENCE_AUC) -> float:
    """MUSE privacy leakage in %, in MUSE's 1 − AUC convention: ((1 − AUC_u) − (1 − AUC_r)) / (1 − AUC_r) · 100
    = (AUC_r − AUC_u) / (1 − AUC_r) · 100 (open-unlearning's ``privleak`` in ``src/evals/metrics/privacy.py``, with
    its 1e-10 in the denominator); without a retain-only model ``auc_retain_only`` is 0.5, as there. ≈ 0 is
    ideal; *negative* means the forget set still looks like training data (under-unlearning), positive that it
    looks less so than never-seen data (over-unlearning)."""
    return ((1.0 - auc_unlearned) - (1.0 - auc_retain_only)) / ((1.0 - auc_retain_only) + 1e-10) * 100.0
