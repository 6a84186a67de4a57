"""The NeurIPS 2023 Machine Unlearning Challenge score (Triantafillou et al., "Are we making progress in
unlearning? Findings from the first NeurIPS unlearning competition", 2024), following the scoring code
google-deepmind/unlearning_evaluation ``metric.py`` (``compute_forget_score_from_confs``) rule by rule.

For every forget example the attacker sees one scalar per model (the logit-scaled confidence φ) from N
unlearned and N retrained runs. The default attack family (``family="challenge"``) is the challenge's:

* the *positive* side is whichever of the two samples has the larger median (ties: the unlearned one);
* **peaky rule**: if the smaller of the two ranges (max − min) is under 1 % of the larger, ε = 50;
* **single thresholds**: ⌈(max − min)·100⌉ evenly spaced thresholds t over both samples (100 per unit),
  predicting positive when φ ≥ t;
* **double thresholds**: the sample with the smaller range (on equal ranges: the median-negative one) is
  predicted inside [l, r]; with w that smaller range, ⌈(range + 4 − w)·100⌉ right ends r from
  min + w − 2 to max + 2 of that sample and, for each, 400 left ends l from r − w − 2 to r − w + 2;
* per attack ε = max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR) clipped below at 0, δ = 1e-5;
  FPR = FNR = 0 gives ∞, attacks with exactly one of FPR, FNR zero (or no finite value) are skipped;
  the example's ε is the largest, capped at 50.

The forgetting quality is the mean over the forget set of 2^(−⌊ε/0.5⌋), counted as 0 when
ε ≥ ⌈ln(N − 1)⌉ (N = number of unlearned runs), and the final score multiplies it by the utility ratios
(RA_unlearned / RA_retrain) · (TA_unlearned / TA_retrain).

Two identically distributed samples still get ε > 0 from finitely many runs, so even perfect unlearning
scores well below 1: :func:`forget_quality_ceiling` estimates that N-dependent ceiling.

``family="intervals"`` is an earlier, deliberately different attack family kept for comparison: every
interval (t1, t2] over the observed values and its complement, no peaky rule. Its scores of identical
distributions fall as N grows, so it is not comparable with challenge numbers.

Deviation: where the reference stops with an assertion because no attack has a finite ε (both samples
constant and equal), ε is 0 here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import ConfigError, DataError

DELTA = 1e-5
EPSILON_CAP = 50.0
BIN_WIDTH = 0.5
THRESHOLDS_PER_UNIT = 100
#: how far (in φ units) the double-threshold ends reach beyond the peakier sample
DOUBLE_BUFFER = 2.0
#: smaller range / larger range below which an example gets the cap (the challenge's "peaky" rule)
PEAKY_RATIO = 0.01
FAMILIES = ("challenge", "intervals")


def _as_matrix(a: object, what: str) -> np.ndarray:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise DataError(f"{what} must be shaped (runs, forget examples); got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise DataError(f"{what} contains nan or inf scores; check the models' outputs")
    return m


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"unknown ε attack family {family!r}; choose one of {', '.join(FAMILIES)}")


def epsilon_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float = DELTA, cap: float = EPSILON_CAP) -> float:
    """ε of one example from the error rates of a family of attacks (any shape), in [0, cap].

    FPR = FNR = 0 on any attack gives the cap; attacks with exactly one zero rate, or for which neither
    log term is defined (a rate of 1 on both sides), are skipped; no usable attack gives 0."""
    fpr, fnr = np.asarray(fpr, dtype=np.float64).ravel(), np.asarray(fnr, dtype=np.float64).ravel()
    if np.any((fpr == 0) & (fnr == 0)):
        return cap
    ok = (fpr > 0) & (fnr > 0)
    if not ok.any():
        return 0.0
    fpr, fnr = fpr[ok], fnr[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.log(1 - delta - fpr) - np.log(fnr)
        e2 = np.log(1 - delta - fnr) - np.log(fpr)
    e = np.fmax(e1, e2)  # nan only where both terms are undefined
    e = e[~np.isnan(e)]
    if e.size == 0:
        return 0.0
    return float(min(max(float(e.max()), 0.0), cap))


def threshold_error_rates(unlearned: np.ndarray, retrained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``family="intervals"``: FPR and FNR of every interval attack "score in (t1, t2]" (t1 ≤ t2 over the
    observed values and ±inf, which includes every single threshold) and of its complement; positive =
    unlearned. Not the challenge's family (see :func:`challenge_error_rates`)."""
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


def _count_in(sorted_values: np.ndarray, left: np.ndarray, right_counts: np.ndarray) -> np.ndarray:
    """How many of ``sorted_values`` lie in [left, right], given the counts ``#(values <= right)``
    (0 where left > right)."""
    return np.maximum(right_counts - np.searchsorted(sorted_values, left, side="left"), 0)


def _distinct_rates(false_pos: np.ndarray, n_neg: int, false_neg: np.ndarray, n_pos: int) -> tuple[np.ndarray, ...]:
    """The distinct (FPR, FNR) pairs among integer error counts: ε depends only on these."""
    code = np.asarray(false_pos, np.int64) * (n_pos + 1) + np.asarray(false_neg, np.int64)
    seen = np.flatnonzero(np.bincount(code, minlength=(n_neg + 1) * (n_pos + 1)))
    return (seen // (n_pos + 1)) / n_neg, (seen % (n_pos + 1)) / n_pos


def challenge_error_rates(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (FPR, FNR) pairs of the challenge's single and fixed-width double thresholds for one
    example (``positive``: the sample with the larger median; the grid is in the module docstring)."""
    pos = np.sort(np.asarray(positive, dtype=np.float64))
    neg = np.sort(np.asarray(negative, dtype=np.float64))
    # single thresholds over both samples: predict positive when φ >= t
    lo, hi = min(pos[0], neg[0]), max(pos[-1], neg[-1])
    t = np.linspace(lo, hi, int(np.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
    fn_single = np.searchsorted(pos, t, side="left")  # positives below t
    fp_single = neg.size - np.searchsorted(neg, t, side="left")  # negatives at or above t
    # double thresholds: the peakier sample (smaller range) is predicted inside [left, right]
    pos_range, neg_range = pos[-1] - pos[0], neg[-1] - neg[0]
    width = min(pos_range, neg_range)
    inner, outer = (neg, pos) if pos_range >= neg_range else (pos, neg)
    r_min, r_max = inner[0] + width - DOUBLE_BUFFER, inner[-1] + DOUBLE_BUFFER
    right = np.linspace(r_min, r_max, int(np.ceil((r_max - r_min) * THRESHOLDS_PER_UNIT)))
    n_left = int(np.ceil(2 * DOUBLE_BUFFER * THRESHOLDS_PER_UNIT))
    # rows: the n_left left ends of every right end (the order of attacks does not matter)
    left = np.linspace(right - width - DOUBLE_BUFFER, right - width + DOUBLE_BUFFER, n_left, axis=0).ravel()
    inner_le = np.tile(np.searchsorted(inner, right, side="right"), n_left)
    outer_le = np.tile(np.searchsorted(outer, right, side="right"), n_left)
    fn_double = inner.size - _count_in(inner, left, inner_le)
    fp_double = _count_in(outer, left, outer_le)
    # in the double family the inner sample plays "positive"; ε is symmetric in (FPR, FNR) so the
    # pairs of both families can be pooled as (errors on the outer/negative side, errors on the other)
    fpr_d, fnr_d = _distinct_rates(fp_double, outer.size, fn_double, inner.size)
    fpr_s, fnr_s = _distinct_rates(fp_single, neg.size, fn_single, pos.size)
    return np.r_[fpr_d, fpr_s], np.r_[fnr_d, fnr_s]


def challenge_epsilon(unlearned: object, retrained: object, delta: float = DELTA) -> float:
    """ε of one forget example from its unlearned and retrained scores under the challenge's rules."""
    u = np.asarray(unlearned, dtype=np.float64).ravel()
    r = np.asarray(retrained, dtype=np.float64).ravel()
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    pos_range, neg_range = np.ptp(pos), np.ptp(neg)
    largest, smallest = max(pos_range, neg_range), min(pos_range, neg_range)
    if largest > 0 and smallest / largest < PEAKY_RATIO:
        return EPSILON_CAP
    fpr, fnr = challenge_error_rates(pos, neg)
    return epsilon_from_rates(fpr, fnr, delta)


def per_example_epsilon(
    unlearned: object, retrained: object, delta: float = DELTA, *, family: str = "challenge"
) -> np.ndarray:
    """ε for every forget example from score matrices shaped (runs, examples), one per model family."""
    _check_family(family)
    u, r = _as_matrix(unlearned, "unlearned scores"), _as_matrix(retrained, "retrained scores")
    if u.shape[1] != r.shape[1]:
        raise DataError(f"unlearned and retrained scores cover {u.shape[1]} and {r.shape[1]} examples; use the same")
    out = np.empty(u.shape[1])
    for j in range(u.shape[1]):
        if family == "challenge":
            out[j] = challenge_epsilon(u[:, j], r[:, j], delta)
        else:
            fpr, fnr = threshold_error_rates(u[:, j], r[:, j])
            out[j] = epsilon_from_rates(fpr, fnr, delta)
    return out


def epsilon_cutoff(n_runs: int) -> int:
    """⌈ln(N − 1)⌉: examples with ε at or above it score 0."""
    if n_runs < 3:
        raise ConfigError(f"the ε score needs at least 3 unlearned and 3 retrained runs, got {n_runs}; raise n_runs")
    return math.ceil(math.log(n_runs - 1))


def epsilon_forget_quality(epsilons: object, n_runs: int) -> float:
    """The challenge's forgetting quality from per-example ε: the mean of 2^(−⌊ε/0.5⌋) over the forget set; an
    example with ε ≥ ⌈ln(N−1)⌉ counts 0 (TOFU's forget quality, a KS p-value, is
    :func:`unlearnkit.lm.metrics.ks_forget_quality`)."""
    cutoff = epsilon_cutoff(n_runs)
    eps = np.asarray(epsilons, dtype=np.float64)
    h = np.power(2.0, -np.floor(eps / BIN_WIDTH))
    h[eps >= cutoff] = 0.0
    return float(h.mean())


@lru_cache(maxsize=64)
def forget_quality_ceiling(n_runs: int, family: str = "challenge", n_examples: int = 400, seed: int = 0) -> float:
    """The forgetting quality that perfect unlearning gets on average with ``n_runs`` runs: the score of two
    independent samples of N standard-normal draws each, averaged over ``n_examples`` examples (seeded;
    the estimate's standard error is about 0.015 at the default 400)."""
    _check_family(family)
    epsilon_cutoff(n_runs)
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n_runs, n_examples))
    r = rng.standard_normal((n_runs, n_examples))
    return epsilon_forget_quality(per_example_epsilon(u, r, family=family), n_runs)


def matched_ceiling(
    reference: object, n_runs: int | None = None, *, family: str = "challenge", reps: int = 2, seed: int = 0
) -> float:
    """The ceiling of :func:`forget_quality_ceiling` on the scale of real scores: for every forget example two
    independent samples of N draws from a normal with the mean and standard deviation of that example's
    ``reference`` scores (runs × examples, e.g. the retrained runs), averaged over ``reps`` repetitions.
    The challenge's attack grid has a fixed width in φ units, so the ceiling depends on the spread."""
    _check_family(family)
    r = _as_matrix(reference, "reference scores")
    n = n_runs or r.shape[0]
    epsilon_cutoff(n)
    mu, sd = r.mean(0), r.std(0, ddof=1) if r.shape[0] > 1 else np.ones(r.shape[1])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        u = mu + sd * rng.standard_normal((n, r.shape[1]))
        v = mu + sd * rng.standard_normal((n, r.shape[1]))
        out.append(epsilon_forget_quality(per_example_epsilon(u, v, family=family), n))
    return float(np.mean(out))


@dataclass
class EpsilonScore:
    """The challenge score of one method and its parts (``ceiling``: what perfect unlearning gets at N)."""

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
    family: str = "challenge"
    ceiling: float = float("nan")
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
    family: str = "challenge",
    with_ceiling: bool = False,
    ceiling: float | None = None,
) -> EpsilonScore:
    """The challenge score from per-run forget-set scores (runs × examples) and mean accuracies.

    N is the number of unlearned runs, as in the challenge's scoring. ``ceiling`` (e.g. from
    :func:`matched_ceiling`) is stored as given; otherwise, with ``with_ceiling``, the standard-normal
    :func:`forget_quality_ceiling` at N (a few seconds per N, cached), else nan."""
    u, r = _as_matrix(unlearned_scores, "unlearned scores"), _as_matrix(retrained_scores, "retrained scores")
    n = u.shape[0]
    eps = per_example_epsilon(u, r, delta, family=family)
    fq = epsilon_forget_quality(eps, n)
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
        family=family,
        ceiling=ceiling if ceiling is not None else forget_quality_ceiling(n, family) if with_ceiling else float("nan"),
        epsilons=eps.tolist(),
    )
