"""LM losses and metrics against open-unlearning (locuslab/open-unlearning, commit d3d7cf9).

The expected numbers were obtained by running open-unlearning's own code outside this repository on the same
inputs: ``compute_dpo_loss``, ``compute_kl_divergence``, ``compute_undial_loss`` and ``compute_batch_nll`` from
``src/trainer/utils.py``; ``SimNPO.compute_loss`` (``src/trainer/unlearn/simnpo.py``) and
``RMU.compute_activation_loss`` (``src/trainer/unlearn/rmu.py``); ``truth_ratio`` and ``probability_w_options``
(``src/evals/metrics/memorization.py``), ``privleak`` (``src/evals/metrics/privacy.py``), and the Min-K% /
Min-K%++ / LOSS attacks (``src/evals/metrics/mia/``) on ``tokenwise_logprobs`` / ``evaluate_probability``. The
model is the deterministic table LM below (the same definition was used there).
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from unlearnkit.lm.encode import LMData
from unlearnkit.lm.evaluate import row_mia_scores
from unlearnkit.lm.generate import row_token_stats
from unlearnkit.lm.losses import kl_to_reference, nll, sequence_logprob, shifted_logits
from unlearnkit.lm.methods.idk_dpo import dpo_loss
from unlearnkit.lm.methods.npo import npo_loss
from unlearnkit.lm.methods.rmu import activation_loss
from unlearnkit.lm.methods.simnpo import simnpo_loss
from unlearnkit.lm.methods.undial import undial_loss
from unlearnkit.lm.metrics import (
    choice_probability,
    privleak,
    truth_ratio,
    truth_ratio_score,
)

V = 7


class _Out:
    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


class TableLM(nn.Module):
    """Deterministic causal-LM stand-in: the logits at t depend on tokens t and t−1 through fixed tables."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        i = torch.arange(V, dtype=torch.float64)
        self.cur = nn.Parameter((torch.sin(i[:, None] * 1.3 + i[None, :] * 0.7 + shift) * 2.0).float())
        self.prev = nn.Parameter((torch.cos(i[:, None] * 0.9 - i[None, :] * 0.4 + shift) * 1.0).float())

    def forward(self, input_ids, attention_mask=None, **_):
        prev = torch.cat([input_ids[:, :1], input_ids[:, :-1]], 1)
        return _Out(self.cur[input_ids] + self.prev[prev])


def batch_a() -> tuple[torch.Tensor, ...]:
    ids = torch.tensor([[1, 2, 3, 4, 5], [2, 6, 1, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 6, 1, 3, -100]])
    return ids, mask, labels


def batch_b() -> tuple[torch.Tensor, ...]:
    ids = torch.tensor([[3, 3, 2, 1, 6], [5, 4, 0, 2, 2]])
    labels = torch.tensor([[-100, -100, -100, 1, 6], [-100, -100, 0, 2, 2]])
    return ids, torch.ones(2, 5, dtype=torch.long), labels


@pytest.fixture
def models():
    return TableLM(0.0), TableLM(0.3)


def _seq(model, batch):
    with torch.no_grad():
        return sequence_logprob(model, *batch)


def test_idk_dpo_matches_open_unlearning(models):
    model, ref = models
    win, lose = batch_b(), batch_a()  # preferred = batch b ("I don't know"), rejected = batch a
    (chosen, _), (rejected, _) = _seq(model, win), _seq(model, lose)
    (ref_chosen, _), (ref_rejected, _) = _seq(ref, win), _seq(ref, lose)
    assert float(dpo_loss(chosen, rejected, ref_chosen, ref_rejected, 0.1)) == pytest.approx(14.496003150939941, 1e-5)


def test_npo_matches_open_unlearning(models):
    model, ref = models
    (logp, _), (ref_logp, _) = _seq(model, batch_a()), _seq(ref, batch_a())
    assert float(npo_loss(logp, ref_logp, 0.1)) == pytest.approx(14.086933135986328, 1e-5)


def test_simnpo_matches_open_unlearning(models):
    model, _ = models
    # SimNPO.compute_loss with δ = 0.5, β = 4.5, γ = 0.125, α = 1: γ·SimNPO(forget = a) + α·NLL(retain = b)
    logp, n = _seq(model, batch_a())
    with torch.no_grad():
        total = 0.125 * simnpo_loss(logp, n, 4.5, 0.5) + 1.0 * nll(model, batch_b())
    assert float(total) == pytest.approx(3.100806951522827, 1e-5)


def test_grad_diff_and_kl_match_open_unlearning(models):
    model, ref = models
    with torch.no_grad():
        assert float(-nll(model, batch_a()) + nll(model, batch_b())) == pytest.approx(0.985501766204834, 1e-5)
        # KL over every position of the batch (batchmean of the flattened logits)
        assert float(kl_to_reference(model, ref, batch_b())) == pytest.approx(0.08405639976263046, 1e-5)


def test_undial_matches_open_unlearning(models):
    model, ref = models
    ids = batch_a()[0][:1]
    # every position labelled (the reference mis-indexes label −100), labels = input ids
    with torch.no_grad():
        logits, target, valid = shifted_logits(model, ids, torch.ones_like(ids), ids)
        ref_logits = ref(input_ids=ids).logits[:, :-1]
    assert float(undial_loss(logits, ref_logits, target, valid, 3.0)) == pytest.approx(1.4513239860534668, 1e-5)


def test_undial_averages_over_positions_and_leaves_prompt_teacher_alone(models):
    model, ref = models
    ids, mask, labels = batch_a()
    with torch.no_grad():
        logits, target, valid = shifted_logits(model, ids, mask, labels)
        ref_logits = ref(input_ids=ids).logits[:, :-1]
        got = undial_loss(logits, ref_logits, target, valid, 3.0)
        # by hand: distil the plain teacher where unlabelled, the adjusted one where labelled; mean of all 8
        adj = ref_logits.clone()
        for b, t in zip(*torch.nonzero(valid, as_tuple=True)):
            adj[b, t, target[b, t]] -= 3.0
        ce = -(torch.softmax(adj, -1) * torch.log_softmax(logits, -1)).sum(-1)
    assert float(got) == pytest.approx(float(ce.mean()), 1e-6)
    assert ce.numel() == 8


def test_rmu_activation_loss_matches_open_unlearning():
    g = torch.Generator().manual_seed(0)
    h1, h2 = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    assert float(activation_loss(h1, h2, batch_a()[2] != -100)) == pytest.approx(2.3063018321990967, 1e-5)
    # rows with 2 and 3 labelled tokens: each row is averaged over its own tokens, then rows are averaged. The
    # reference divides a (b,) tensor by (b, 1) counts, which broadcasts to mean(sums)·mean(1/counts) = 3.10018516;
    # the two agree only when every row has the same number of labelled tokens (as in batch a above).
    mask = batch_b()[2] != -100
    rows = []
    for r in range(2):
        toks = [((h1[r, t] - h2[r, t]) ** 2).mean() for t in range(5) if mask[r, t]]
        rows.append(sum(toks) / len(toks))
    got = float(activation_loss(h1, h2, mask))
    assert got == pytest.approx(float(sum(rows) / 2), 1e-6)
    assert got != pytest.approx(3.1001851558685303, 1e-3)


def test_truth_ratio_privleak_and_choice_probability_match_open_unlearning():
    # average losses of the paraphrased (correct) and three perturbed (wrong) answers of three questions
    correct = [0.7, 1.2, 2.0]
    wrong = [[0.5, 2.5, 1.0], [3.0, 0.2, 1.1], [1.0, 1.5, 4.0]]
    ratios = [truth_ratio([-c], [[-w] for w in ws]) for c, ws in zip(correct, wrong)]
    assert ratios == pytest.approx([0.53081945045512, 0.7918895660738647, 0.8464817242651439], 1e-9)
    assert truth_ratio_score(ratios, forget=True) == pytest.approx(0.7230635802647095, 1e-9)
    assert truth_ratio_score(ratios) == pytest.approx(0.27693641973529043, 1e-9)
    assert privleak(0.9, 0.6) == pytest.approx(-74.99999998125001, 1e-9)
    assert privleak(0.35, 0.55) == pytest.approx(44.44444443456792, 1e-9)
    probs = [
        choice_probability([math.log(c)], [[math.log(x)] for x in w])
        for c, w in ((0.5, [0.1, 0.2, 0.05]), (0.1, [0.3, 0.3, 0.2]))
    ]
    assert np.mean(probs) == pytest.approx(0.3496732025736042, 1e-9)


def test_mia_scores_match_open_unlearning(models):
    model, _ = models
    rows = [row_mia_scores(s, "unused", 0.4) for s in row_token_stats(model, LMData(*batch_a()))]
    # open-unlearning's scores are the negatives (higher = non-member); Min-K% drops the last labelled token
    assert [-r["mink"] for r in rows] == pytest.approx([3.5587332, 1.0612413], 1e-5)
    assert [-r["minkpp"] for r in rows] == pytest.approx([2.5190527, -0.566934], 1e-5)
    assert [-r["loss"] for r in rows] == pytest.approx([2.2528131008148193, 1.977704405784607], 1e-5)
