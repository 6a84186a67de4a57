"""Pure metric math of the audits on hand-made inputs: ROC/AUC, TPR at FPR, φ, the ε score, U-LiRA's
likelihood ratio and the capped-simplex projection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unlearnkit.audit.epsilon import (
    EPSILON_CAP,
    epsilon_from_rates,
    per_example_epsilon,
    threshold_error_rates,
)
from unlearnkit.audit.population import threshold_attacks
from unlearnkit.audit.roc import best_accuracy, evaluate_attack, roc_auc, roc_curve, thin_curve, tpr_at_fpr
from unlearnkit.audit.scores import cross_entropy_loss, logit_confidence, prediction_entropy, true_class_probability
from unlearnkit.audit.ulira import ulira_scores
from unlearnkit.audit.worst_case import project_capped_simplex
from unlearnkit.errors import ConfigError, DataError


def test_roc_curve_and_auc_on_hand_made_scores():
    fpr, tpr = roc_curve([0.9, 0.8, 0.3], [0.7, 0.2])
    assert fpr.tolist() == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0]
    assert np.allclose(tpr, [0.0, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0])
    assert roc_auc([0.9, 0.8, 0.3], [0.7, 0.2]) == pytest.approx(5 / 6)
    assert np.trapezoid(tpr, fpr) == pytest.approx(5 / 6)
    assert roc_auc([1, 1], [1, 1]) == 0.5  # ties count half
    assert roc_auc([2, 3], [0, 1]) == 1.0
    assert tpr_at_fpr(fpr, tpr, 0.0) == pytest.approx(2 / 3)
    assert tpr_at_fpr(fpr, tpr, 0.5) == 1.0
    assert best_accuracy(fpr, tpr) == pytest.approx(5 / 6)  # FPR 0, TPR 2/3


def test_one_auc_equals_the_pairwise_definition_with_ties_infinities_and_missing_sides():
    """The ROC and AUC every part of the package uses (scikit-learn's, behind :mod:`unlearnkit.audit.roc`) against
    their definitions, counted by hand: P(positive > negative) + ½ P(tie), and (FPR, TPR) at every distinct
    threshold."""
    rng = np.random.default_rng(3)
    pos, neg = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 30).astype(float)  # many ties
    pairwise = (pos[:, None] > neg).mean() + 0.5 * (pos[:, None] == neg).mean()
    assert roc_auc(pos, neg) == pytest.approx(pairwise, abs=1e-12)
    fpr, tpr = roc_curve(pos, neg)
    thresholds = np.unique(np.r_[pos, neg])[::-1]
    assert np.array_equal(fpr[1:], [(neg >= t).mean() for t in thresholds])
    assert np.array_equal(tpr[1:], [(pos >= t).mean() for t in thresholds])
    assert roc_curve([5.0], [4.0, 3.0, 2.0])[0].tolist() == [0.0, 0.0, 1 / 3, 2 / 3, 1.0]  # no point dropped
    # infinite scores (a φ of exactly p = 1) keep their order; NaNs are dropped
    inf_pos, inf_neg = np.r_[pos, np.inf, np.nan], np.r_[neg, -np.inf, np.inf]
    p, n = inf_pos[~np.isnan(inf_pos)], inf_neg
    pairwise = (p[:, None] > n).mean() + 0.5 * (p[:, None] == n).mean()
    assert roc_auc(inf_pos, inf_neg) == pytest.approx(pairwise, abs=1e-12)
    assert np.isnan(roc_auc([], [1.0], if_empty=float("nan"))) and roc_auc([np.nan], [1.0], if_empty=0.5) == 0.5
    with pytest.raises(DataError, match="no positive scores"):
        roc_auc([], [1.0])


def test_attack_summary_is_in_percent_and_thinning_keeps_the_ends():
    rng = np.random.default_rng(0)
    res = evaluate_attack("x", rng.normal(1, 1, 3000), rng.normal(0, 1, 3000), max_points=50)
    assert 70 < res.auc < 80  # Φ(1/√2) ≈ 76 %
    assert len(res.fpr) <= 50 and res.fpr[0] == 0.0 and res.fpr[-1] == 1.0
    f, t = thin_curve(np.array([0, 0.5, 1.0]), np.array([0, 0.7, 1.0]))
    assert f == [0, 0.5, 1.0] and t == [0, 0.7, 1.0]
    with pytest.raises(DataError, match="at least one"):
        evaluate_attack("x", [], [1.0])


def test_scores_from_logits():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    y = np.array([0, 2])
    p0 = math.exp(2) / (math.exp(2) + 2)
    assert true_class_probability(logits, y) == pytest.approx([p0, 1 / 3])
    assert logit_confidence(logits, y) == pytest.approx([math.log(p0 / (1 - p0)), math.log(0.5)])
    assert cross_entropy_loss(logits, y) == pytest.approx([-math.log(p0), math.log(3)])
    assert prediction_entropy(logits)[1] == pytest.approx(math.log(3))
    big = logit_confidence(np.array([[1000.0, 0.0]]), [0])  # stable for huge margins
    assert big[0] == pytest.approx(1000.0)


def test_threshold_attacks_separate_members_with_lower_loss():
    members = np.array([[5.0, 0.0], [4.0, 0.0], [0.0, 6.0]])
    non = np.array([[0.5, 0.0], [0.0, 0.2], [0.1, 0.0]])
    res = threshold_attacks(members, [0, 0, 1], non, [0, 1, 1])
    assert res["loss"].auc == 100.0 and res["confidence"].auc == 100.0
    assert res["entropy"].auc == 100.0


def test_epsilon_from_rates_rules():
    assert epsilon_from_rates([0.0], [0.0]) == EPSILON_CAP  # perfect separation
    assert epsilon_from_rates([0.0, 1.0], [0.5, 0.0]) == 0.0  # only skipped attacks
    assert epsilon_from_rates([0.1], [0.5]) == pytest.approx(math.log(0.5 - 1e-5) - math.log(0.1))
    assert epsilon_from_rates([0.5], [0.5]) == 0.0  # chance: ε clipped at 0


def test_threshold_rates_cover_single_and_double_thresholds():
    fpr, fnr = threshold_error_rates(np.array([0.0, 1.0]), np.array([0.5, 2.0]))
    pairs = set(zip(np.round(fpr, 6), np.round(fnr, 6)))
    assert (0.5, 0.0) in pairs  # single threshold "score <= 1": both unlearned, one of two retrained
    assert (0.0, 0.5) in pairs  # interval (0.5, 1]: one unlearned, no retrained score
    assert (1.0, 0.5) in pairs  # its complement
    assert len(fpr) == len(fnr) == 2 * 15  # 5 grid points → 15 intervals (t1 <= t2), each with its complement


def test_per_example_epsilon_checks_shapes():
    with pytest.raises(DataError, match="same"):
        per_example_epsilon(np.zeros((4, 3)), np.zeros((4, 2)))


def test_ulira_scores_leave_one_pair_out():
    rng = np.random.default_rng(0)
    pairs, targets = 10, 50
    mask = rng.random((pairs, targets)) < 0.5
    base = rng.normal(0, 2, targets)
    out = base + rng.normal(0, 0.3, (pairs, targets))
    same = base + rng.normal(0, 0.3, (pairs, targets))
    pos, neg = ulira_scores(same, out, mask)
    assert pos.shape == neg.shape and 0 < pos.size <= mask.sum()
    assert 35 < roc_auc(pos, neg) * 100 < 65  # same distribution: chance
    pos, neg = ulira_scores(base + 1.0 + rng.normal(0, 0.3, (pairs, targets)), out, mask)
    assert roc_auc(pos, neg) > 0.95  # shifted "in" distribution: the attack wins
    pos2, neg2 = ulira_scores(base + 1.0 + rng.normal(0, 0.3, (pairs, targets)), out, mask, fixed_variance=False)
    assert roc_auc(pos2, neg2) > 0.9
    with pytest.raises(ConfigError, match="n_pairs"):
        ulira_scores(same[:1], out[:1], mask[:1])


@pytest.mark.parametrize("k", [1, 7.0, 25, 49])
def test_bisection_projection_satisfies_the_constraints(k):
    rng = np.random.default_rng(int(k))
    v = rng.normal(0, 3, 50)
    w = project_capped_simplex(v, k)
    assert w.min() >= 0 and w.max() <= 1
    assert w.sum() == pytest.approx(k, abs=1e-6)
    # it is the Euclidean projection: no feasible point among random ones is closer to v
    for _ in range(20):
        u = project_capped_simplex(rng.normal(0, 3, 50), k)
        assert np.linalg.norm(v - w) <= np.linalg.norm(v - u) + 1e-9
    # order-preserving and a fixed point on the feasible set
    assert np.all(np.diff(w[np.argsort(v)]) >= -1e-12)
    assert np.allclose(project_capped_simplex(w, k), w, atol=1e-6)
    with pytest.raises(ConfigError):
        project_capped_simplex(v, 51)
