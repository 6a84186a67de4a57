"""Attack curves and summaries: ROC, AUC, TPR at a fixed FPR, best-threshold accuracy.

The project's one ROC and AUC: every attack, detector and membership score in the package (the audits, the
language-model MIAs, O3's gate) is summarised here, with scikit-learn's ``roc_curve`` and ``roc_auc_score``
(``sklearn/metrics/_ranking.py``) on the scores left after dropping NaNs.

Convention: ``positive`` scores belong to the class the attack tries to detect (members, or "unlearned
rather than retrained"); a higher score means "more likely positive". An AUC of 50 % means the attack
cannot tell the two apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as _sk_roc_curve

from ..errors import DataError


def _clean(scores: object, what: str) -> np.ndarray:
    a = np.asarray(scores, dtype=np.float64).ravel()
    a = a[~np.isnan(a)]
    if a.size == 0:
        raise DataError(f"no {what} scores to evaluate the attack on; give at least one example of each class")
    return a


def _labelled(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (positives 1) and scores for scikit-learn, which refuses ±inf: with one present the scores become
    their ranks (the curve and the AUC depend only on the order, ties included)."""
    scores = np.r_[pos, neg]
    if not np.isfinite(scores).all():
        scores = np.unique(scores, return_inverse=True)[1].astype(np.float64)
    return np.r_[np.ones(pos.size), np.zeros(neg.size)], scores


def roc_curve(positive: object, negative: object) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of every threshold ``score >= t`` (every distinct score, none dropped),
    from (0, 0) to (1, 1)."""
    pos, neg = _clean(positive, "positive"), _clean(negative, "negative")
    fpr, tpr, _ = _sk_roc_curve(*_labelled(pos, neg), drop_intermediate=False)
    return fpr, tpr


def roc_auc(positive: object, negative: object, *, if_empty: float | None = None) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative, ties
    counted half. A side without scores raises :class:`~unlearnkit.errors.DataError`, or gives ``if_empty``
    when that is set (e.g. ``float("nan")`` for a metric that may be missing)."""
    try:
        pos, neg = _clean(positive, "positive"), _clean(negative, "negative")
    except DataError:
        if if_empty is None:
            raise
        return float(if_empty)
    return float(roc_auc_score(*_labelled(pos, neg)))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The highest true-positive rate among thresholds whose false-positive rate is at most ``target``."""
    fpr, tpr = np.asarray(fpr), np.asarray(tpr)
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def best_accuracy(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Best balanced accuracy over thresholds, ½(TPR + 1 − FPR); 0.5 = chance."""
    return float(np.max(0.5 * (np.asarray(tpr) + 1.0 - np.asarray(fpr))))


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, max_points: int = 200) -> tuple[list[float], list[float]]:
    """At most ``max_points`` points of a ROC curve, log-spaced in FPR so the low-FPR end stays visible."""
    fpr, tpr = np.asarray(fpr), np.asarray(tpr)
    if fpr.size <= max_points:
        return fpr.tolist(), tpr.tolist()
    grid = np.unique(np.r_[0.0, np.geomspace(max(fpr[fpr > 0].min(), 1e-6), 1.0, max_points - 1)])
    idx = np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, fpr.size - 1)
    return fpr[idx].tolist(), tpr[idx].tolist()


@dataclass
class ROCAttackResult:
    """One score-threshold attack summarised by its ROC curve: AUC, best accuracy and TPR at low FPR (percent),
    and the thinned curve."""

    name: str
    auc: float
    accuracy: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    n_positive: int
    n_negative: int
    fpr: list[float] = field(default_factory=list, repr=False)
    tpr: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict[str, float]:
        return {
            f"{self.name}_auc": self.auc,
            f"{self.name}_acc": self.accuracy,
            f"{self.name}_tpr@1%": self.tpr_at_1pct_fpr,
            f"{self.name}_tpr@0.1%": self.tpr_at_01pct_fpr,
        }


def evaluate_attack(name: str, positive: object, negative: object, max_points: int = 200) -> ROCAttackResult:
    """Summarise an attack whose scores on positives and negatives are given (higher = positive)."""
    pos, neg = _clean(positive, "positive"), _clean(negative, "negative")
    fpr, tpr = roc_curve(pos, neg)
    f, t = thin_curve(fpr, tpr, max_points)
    return ROCAttackResult(
        name=name,
        auc=100.0 * roc_auc(pos, neg),
        accuracy=100.0 * best_accuracy(fpr, tpr),
        tpr_at_1pct_fpr=100.0 * tpr_at_fpr(fpr, tpr, 0.01),
        tpr_at_01pct_fpr=100.0 * tpr_at_fpr(fpr, tpr, 0.001),
        n_positive=int(pos.size),
        n_negative=int(neg.size),
        fpr=f,
        tpr=t,
    )
