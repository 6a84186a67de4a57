"""LM metrics on hand-made inputs with known answers."""

import math

import numpy as np
import pytest
import torch

from unlearnkit.audit.roc import roc_auc
from unlearnkit.lm.metrics import (
    answer_accuracy,
    harmonic_mean,
    ks_forget_quality,
    loss_score,
    mean_answer_probability,
    min_k_plus_plus_score,
    min_k_score,
    model_utility,
    ngram_entropy,
    normalised_probability,
    privleak,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
    zlib_score,
)

pytest.importorskip("rouge_score")


def test_rouge_l_recall_known_values():
    assert rouge_l_recall("Lisbon is where she lives", "she lives in Lisbon") == pytest.approx(0.5)
    assert rouge_l_recall("she lives in Lisbon", "she lives in Lisbon") == 1.0
    assert rouge_l_recall("", "she lives in Lisbon") == 0.0
    # recall ignores extra words in the prediction
    assert rouge_l_recall("well, she lives in Lisbon today", "she lives in Lisbon") == 1.0


def test_answer_accuracy_is_case_insensitive_containment():
    assert answer_accuracy(["He lives in LISBON.", "Oslo"], ["Lisbon", "Porto"]) == 0.5


def test_probability_and_truth_ratio():
    lp = np.log([0.5, 0.5])
    assert normalised_probability(lp) == pytest.approx(0.5)
    assert mean_answer_probability([np.log([0.5]), np.log([0.25, 0.25])]) == pytest.approx(0.375)
    # paraphrase prob 0.5 per token, perturbed 0.1 and 0.3 → R = geometric mean sqrt(0.03) / 0.5 (TOFU)
    r = truth_ratio(np.log([0.5, 0.5]), [np.log([0.1]), np.log([0.3, 0.3])])
    assert r == pytest.approx(math.sqrt(0.1 * 0.3) / 0.5)
    assert truth_ratio_score([0.4, 1.5]) == pytest.approx((0.6 + 0.0) / 2)
    assert truth_ratio_score([0.5, 2.0], forget=True) == pytest.approx(0.5)


def test_forget_quality_ks():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    assert ks_forget_quality(a, a) == pytest.approx(1.0)
    assert ks_forget_quality(a, a + 3.0) < 1e-10
    assert ks_forget_quality(a, rng.normal(size=200)) > 0.05


def test_harmonic_mean_utility():
    assert harmonic_mean([1.0, 0.5]) == pytest.approx(2 / 3)
    assert model_utility([0.9, 0.0, 0.8]) == 0.0
    assert harmonic_mean([0.5, float("nan")]) == pytest.approx(0.5)


def test_mia_scores_on_a_fixed_logit_table():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 1.0], [3.0, 1.0, -1.0], [0.0, 0.0, 5.0]])
    tokens = torch.tensor([0, 1, 2, 1, 0])
    logp_all = torch.log_softmax(logits, -1)
    lp = logp_all[torch.arange(5), tokens].numpy()
    assert loss_score(lp) == pytest.approx(lp.mean())
    # k = 40 % of 5 tokens → the 2 lowest
    assert min_k_score(lp, 0.4) == pytest.approx(np.sort(lp)[:2].mean())
    assert min_k_score(lp, 1.0) == pytest.approx(lp.mean())
    p = logp_all.exp()
    mu = (p * logp_all).sum(-1)
    sigma = ((p * logp_all**2).sum(-1) - mu**2).sqrt()
    z = ((torch.tensor(lp) - mu) / sigma).numpy()
    assert min_k_plus_plus_score(lp, mu.numpy(), sigma.numpy(), 0.4) == pytest.approx(np.sort(z)[:2].mean(), rel=1e-5)
    # the token the model finds least likely relative to its distribution gets the lowest z
    assert np.argmin(z) == 4
    assert zlib_score(lp, "abc") < 0


def test_auc_and_privleak():
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert roc_auc([0.5, 0.5], [0.5, 0.5]) == 0.5
    assert privleak(0.5, 0.5) == 0.0
    # MUSE's convention: (AUC_r − AUC_u) / (1 − AUC_r); still memorised → negative
    assert privleak(0.9, 0.6) == pytest.approx(-75.0)
    assert privleak(0.75, 0.5) == pytest.approx(-50.0)


def test_ngram_entropy_rewards_variety():
    varied = ngram_entropy("the cat sat on the warm mat near a door")
    repeated = ngram_entropy("the the the the the the the the the the")
    assert repeated == pytest.approx(0.0) and varied > 2.0
    # four distinct bigrams and three distinct trigrams
    expect = np.mean([2 / 3 * math.log2(4), 4 / 3 * math.log2(3)])
    assert ngram_entropy("a b c d e") == pytest.approx(expect)
