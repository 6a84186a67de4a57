"""The NeurIPS 2023 Machine Unlearning Challenge score (Triantafillou et al., "Are we making progress in
unlearning? Findings from the first NeurIPS unlearning competition", 2024).

For every forget example the attacker sees one scalar per model (here the logit-scaled confidence φ) from
N unlearned and N retrained runs. Every single and double threshold ("score in (t1, t2]", and its
complement) is an attack with a false-positive rate (retrained called unlearned) and a false-negative rate;
the example's privacy degree is

    ε = max over attacks of max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR),   δ = 1e-5,

capped at 50. Attacks with FPR = 0 or FNR = 0 (but not both) are skipped, as no finite ε can be estimated
from them; FPR = FNR = 0 (perfect separation) gives the cap. The forgetting quality is the mean over the
forget set of 2^(−⌊ε/0.5⌋), counted as 0 when ε ≥ ⌈ln(N−1)⌉, and the final score multiplies it by the
utility ratios (RA_unlearned / RA_retrain) · (TA_unlearned / TA_retrain).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError, DataError

DELTA = 1e-5
EPSILON_CAP = 50.0
BIN_WIDTH = 0.5


def _as_matrix(a: object, what: str) -> np.ndarray:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise DataError(f"{what} must be shaped (runs, forget examples); got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise DataError(f"{what} contains nan or inf scores; check the models' outputs")
    return m


def epsilon_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float = DELTA, cap: float = EPSILON_CAP) -> float:
    """ε of one example from the error rates of a family of attacks (any shape), in [0, cap]."""
    fpr, fnr = np.asarray(fpr, dtype=np.float64).ravel(), np.asarray(fnr, dtype=np.float64).ravel()
    if np.any((fpr == 0) & (fnr == 0)):
        return cap
    ok = (fpr > 0) & (fnr > 0)
    if not ok.any():
        return 0.0
    fpr, fnr = fpr[ok], fnr[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.where(1 - delta - fpr > 0, np.log(np.maximum(1 - delta - fpr, 1e-300)) - np.log(fnr), -np.inf)
        e2 = np.where(1 - delta - fnr > 0, np.log(np.maximum(1 - delta - fnr, 1e-300)) - np.log(fpr), -np.inf)
    eps = float(np.max(np.maximum(e1, e2)))
    return float(min(max(eps, 0.0), cap))


def threshold_error_rates(unlearned: np.ndarray, retrained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and FNR of every interval attack "score in (t1, t2]" (t1 ≤ t2 over the observed values and
    ±inf, which includes every single threshold) and of its complement; positive = unlearned."""
    u = np.sort(np.asarray(unlearned, dtype=np.float64))
    r = np.sort(np.asarray(retrained, dtype=np.float64))
    grid = np.r_[-np.inf, np.unique(np.r_[u, r])]
    cu = np.searchsorted(u, grid, side="right") / u.size  # fraction of unlearned with score <= t
    cr = np.searchsorted(r, grid, side="right") / r.size
    tpr = cu[None, :] - cu[:, None]  # rows t1, columns t2: fraction in (t1, t2]
    fpr = cr[None, :] - cr[:, None]
    upper = np.triu(np.ones((grid.size, grid.size), dtype=bool))
    tpr, fpr = tpr[upper], fpr[upper]
    fnr = 1.0 - tpr
    return np.r_[fpr, 1.0 - fpr], np.r_[fnr, 1.0 - fnr]


def per_example_epsilon(unlearned: object, retrained: object, delta: float = DELTA) -> np.ndarray:
    """ε for every forget example from score matrices shaped (runs, examples), one per model family."""
    u, r = _as_matrix(unlearned, "unlearned scores"), _as_matrix(retrained, "retrained scores")
    if u.shape[1] != r.shape[1]:
        raise DataError(f"unlearned and retrained scores cover {u.shape[1]} and {r.shape[1]} examples; use the same")
    out = np.empty(u.shape[1])
    for j in range(u.shape[1]):
        fpr, fnr = threshold_error_rates(u[:, j], r[:, j])
        out[j] = epsilon_from_rates(fpr, fnr, delta)
    return out


def forget_quality(epsilons: object, n_runs: int) -> float:
    """Mean of 2^(−⌊ε/0.5⌋) over the forget set; an example with ε ≥ ⌈ln(N−1)⌉ counts 0."""
    if n_runs < 3:
        raise ConfigError(f"the ε score needs at least 3 unlearned and 3 retrained runs, got {n_runs}; raise n_runs")
    eps = np.asarray(epsilons, dtype=np.float64)
    h = np.power(2.0, -np.floor(eps / BIN_WIDTH))
    h[eps >= math.ceil(math.log(n_runs - 1))] = 0.0
    return float(h.mean())


@dataclass
class EpsilonScore:
    """The challenge score of one method and its parts."""

    method: str
    n_runs: int
    forget_quality: float
    final: float
    ra_ratio: float
    ta_ratio: float
    mean_epsilon: float
    max_epsilon: float
    ra_unlearned: float = float("nan")
    ra_retrain: float = float("nan")
    ta_unlearned: float = float("nan")
    ta_retrain: float = float("nan")
    epsilons: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return asdict(self)


def epsilon_score(
    unlearned_scores: object,
    retrained_scores: object,
    *,
    ra_unlearned: float = 1.0,
    ra_retrain: float = 1.0,
    ta_unlearned: float = 1.0,
    ta_retrain: float = 1.0,
    method: str = "",
    delta: float = DELTA,
) -> EpsilonScore:
    """The challenge score from per-run forget-set scores (runs × examples) and mean accuracies."""
    u, r = _as_matrix(unlearned_scores, "unlearned scores"), _as_matrix(retrained_scores, "retrained scores")
    n = min(u.shape[0], r.shape[0])
    eps = per_example_epsilon(u, r, delta)
    fq = forget_quality(eps, n)
    ra_ratio = ra_unlearned / ra_retrain if ra_retrain > 0 else float("nan")
    ta_ratio = ta_unlearned / ta_retrain if ta_retrain > 0 else float("nan")
    return EpsilonScore(
        method=method,
        n_runs=n,
        forget_quality=fq,
        final=fq * ra_ratio * ta_ratio,
        ra_ratio=ra_ratio,
        ta_ratio=ta_ratio,
        mean_epsilon=float(eps.mean()),
        max_epsilon=float(eps.max()),
        ra_unlearned=ra_unlearned,
        ra_retrain=ra_retrain,
        ta_unlearned=ta_unlearned,
        ta_retrain=ta_retrain,
        epsilons=eps.tolist(),
    )
