"""The ε score against the NeurIPS 2023 challenge's own scoring code, and its finite-N ceiling."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnkit.audit.epsilon import (
    EPSILON_CAP,
    challenge_epsilon,
    epsilon_cutoff,
    epsilon_forget_quality,
    epsilon_score,
    forget_quality_ceiling,
    matched_ceiling,
    per_example_epsilon,
)
from unlearnkit.errors import ConfigError


def _case(n: int, k: int, shift: float, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, 1.0, size=(n, k)).round(4)
    r = rng.normal(shift, scale, size=(n, k)).round(4)
    return u, r


# Reference values: google-deepmind/unlearning_evaluation metric.py (commit ffae0fff), run unchanged outside this
# repository on CPU (torch.Tensor.cuda replaced by the identity) under `python -O` (its `assert` on a NumPy array
# raises otherwise): per-example ε from `_get_epsilons` on the median-ordered (positive, negative) scores, and
# `compute_forget_score_from_confs(unlearned, retrained)`; ε rounded to 7 decimals.
REFERENCE = {
    # name: (N, examples, shift, retrain scale, seed), reference ε per example, reference forget score
    "same8": ((8, 6, 0.0, 1.0, 11), [1.0985856, 1.0985856, 1.3862743, 1.609422, 1.0985856, 50.0], 0.1875),
    "shift16": (
        (16, 6, 1.0, 1.0, 12),
        [2.0794215, 2.0794215, 2.1972067, 1.7917328, 1.3862543, 2.4848933],
        0.10416666666666667,
    ),
    "same32": ((32, 4, 0.0, 2.0, 13), [2.6390345, 2.5649247, 2.7725687, 3.0445073], 0.02734375),
    "far4": ((4, 3, 3.0, 0.5, 14), [50.0, 50.0, 50.0], 0.0),
    "wide16": ((16, 4, 0.3, 3.0, 15), [2.3025691, 2.1972068, 2.6390459, 2.564937], 0.046875),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_epsilon_agrees_with_the_challenge_scoring_code(name):
    args, ref_eps, ref_score = REFERENCE[name]
    u, r = _case(*args)
    eps = per_example_epsilon(u, r)
    assert np.allclose(eps, ref_eps, rtol=0, atol=1e-6)
    assert epsilon_forget_quality(eps, u.shape[0]) == pytest.approx(ref_score, abs=1e-12)
    assert epsilon_score(u, r).forget_quality == pytest.approx(ref_score, abs=1e-12)


def test_peaky_rule_caps_a_nearly_constant_sample():
    # the unlearned runs barely vary (range 0.002) and one retrained value lies inside their range, so no
    # attack separates them perfectly: only the peaky rule gives the cap (reference metric.py: 50.0;
    # without the rule the attacks would give ε ≈ 1.0986)
    u = [0.299, 0.3005, 0.3, 0.301, 0.2995, 0.3002, 0.2998, 0.3008]
    r = [-1.2, -0.6, 0.3, 0.9, 1.5, -0.1, 0.4, 2.0]
    assert challenge_epsilon(u, r) == EPSILON_CAP
    wider = (np.asarray(u) - 0.3) * 200 + 0.3  # a range of 12 % of the other's: the attacks decide
    assert challenge_epsilon(wider, r) < 3


def test_cut_off_is_the_ceiling_of_log_n_minus_one():
    assert [epsilon_cutoff(n) for n in (3, 8, 16, 32, 128)] == [1, 2, 3, 4, 5]
    # N = 16: ε = 2.6 is below ⌈ln 15⌉ = 3, so it still earns 2^(−5)
    assert epsilon_forget_quality([2.6], n_runs=16) == pytest.approx(2.0**-5)
    assert epsilon_forget_quality([3.0], n_runs=16) == 0.0
    with pytest.raises(ConfigError, match="at least 3"):
        epsilon_cutoff(2)


def test_identical_distributions_do_not_lose_forget_quality_as_n_grows():
    """Independent draws of one distribution: the challenge family's ceiling stays put as N grows (the
    reference gives 0.1825 / 0.165 / 0.185 / 0.195 at N = 8 / 16 / 32 / 128 on 100 examples), while the
    interval family's falls."""
    ceil = {n: forget_quality_ceiling(n, n_examples=60, seed=1) for n in (8, 32)}
    assert all(0.12 < c < 0.26 for c in ceil.values()), ceil
    assert ceil[32] > ceil[8] - 0.04
    intervals = {n: forget_quality_ceiling(n, "intervals", n_examples=60, seed=1) for n in (8, 32)}
    assert intervals[32] < intervals[8] - 0.04 and intervals[32] < ceil[32] - 0.05


def test_epsilon_score_of_independent_draws_sits_at_the_ceiling_and_a_shift_lowers_it():
    rng = np.random.default_rng(0)
    u, r = rng.normal(size=(16, 40)), rng.normal(size=(16, 40))
    same = epsilon_score(u, r, ra_unlearned=90, ra_retrain=90, ta_unlearned=80, ta_retrain=80, with_ceiling=False)
    assert same.family == "challenge" and np.isnan(same.ceiling)
    assert abs(same.forget_quality - forget_quality_ceiling(16, n_examples=40, seed=5)) < 0.1
    assert epsilon_score(u[:4, :3], r[:4, :3], ceiling=0.25).ceiling == 0.25
    assert same.final == pytest.approx(same.forget_quality)
    shifted = epsilon_score(u + 1.5, r, with_ceiling=False)
    assert shifted.forget_quality < same.forget_quality - 0.05
    assert epsilon_score(u + 10.0, r, with_ceiling=False).forget_quality == 0.0
    util = epsilon_score(u, r, ra_unlearned=45, ra_retrain=90, with_ceiling=False)
    assert util.final == pytest.approx(util.forget_quality / 2)
    with pytest.raises(ConfigError, match="family"):
        epsilon_score(u, r, family="bogus")


def test_matched_ceiling_follows_the_spread_of_the_reference_scores():
    rng = np.random.default_rng(2)
    unit = rng.normal(size=(8, 30))
    assert matched_ceiling(unit, reps=1) == pytest.approx(forget_quality_ceiling(8, n_examples=60), abs=0.1)
    # the challenge grid has a fixed width in φ units: a wide spread leaves fewer usable attacks
    wide, narrow = matched_ceiling(unit * 8.0, reps=1), matched_ceiling(unit * 0.05, reps=1)
    assert wide > narrow


def test_audit_notes_name_the_ceiling_retrain_is_read_against():
    from unlearnkit.audit.job import audit_notes

    report = {
        "epsilon": {"retrain": {"family": "challenge", "n_runs": 16, "ceiling": 0.141}},
        "epsilon_ceiling": {"matched": 0.141, "standard_normal": 0.180},
    }
    (note,) = audit_notes(report)
    matched, standard = note.index("0.141"), note.index("0.180")
    assert matched < note.index("estimated on the reference retrains") < standard
    assert "retrain's included" in note and note.index("not the one to compare with") > standard
