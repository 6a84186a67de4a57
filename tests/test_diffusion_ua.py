"""A UA that a broken model cannot pass: an erased-concept image counts as erased only when it is *replaced*
(recognised as another concept), destroyed images are their own column, and a model whose IRA or FD crosses the
real-image floors is flagged ``broken``."""

from __future__ import annotations

import copy

import pytest
import torch

from unlearnkit.diffusion import DiffusionTrainConfig, load_concept_data, parse_concept, train_diffusion
from unlearnkit.diffusion.evaluate import SamplingConfig, evaluate_erasure
from unlearnkit.diffusion.evaluators import train_evaluators
from unlearnkit.diffusion.metrics import quality_flag, recognised, unlearning_split

SMALL = DiffusionTrainConfig(steps=40, batch_size=32, base=8, text_dim=16, lr=3e-3)


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    data = load_concept_data("digits", train_subset=300)
    evaluators = train_evaluators(data, epochs=10, progress=False)
    trained = train_diffusion(data, SMALL, device="cpu", progress=False)
    return data, evaluators, trained


def _broken(trained, data):
    untrained = train_diffusion(data, DiffusionTrainConfig(**{**SMALL.__dict__, "steps": 1}), progress=False)
    zeroed, noised = copy.deepcopy(trained), copy.deepcopy(trained)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in zeroed.unet.parameters():
            p.zero_()
        for p in noised.unet.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return {"untrained": untrained, "zeroed UNet": zeroed, "noised UNet": noised}


def test_broken_models_score_no_replaced_ua_and_are_flagged(setting):
    data, evaluators, trained = setting
    concept = parse_concept("object:three", data)
    sampling = SamplingConfig(steps=5, per_prompt=3)
    for name, model in _broken(trained, data).items():
        m = evaluate_erasure(model, data, concept, evaluators, sampling).metrics
        assert m["recognised_real"] >= 50, "the evaluator recognises real images: the test is not vacuous"
        assert m["ua"] == m["ua_replaced"] <= 10, f"{name}: UA {m['ua']:.1f} credits a broken model"
        assert m["ua_replaced"] + m["ua_destroyed"] == pytest.approx(m["ua_any"])
        assert m["quality"] == "broken", f"{name}: IRA {m['ira']:.1f} / {m['ira_real']:.1f}, FD {m['fd_eval']:.1f}"


def test_replaced_needs_a_confident_typical_recognition():
    real = torch.tensor([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [5.2, 5.0]])
    labels = torch.tensor([0, 0, 1, 1])
    probs = torch.tensor([[0.05, 0.95], [0.05, 0.95], [0.4, 0.6]])
    feats = torch.tensor([[5.1, 5.0], [40.0, -3.0], [5.1, 5.0]])  # typical, far from every real 1, unsure
    pred, ok = recognised(probs, feats, real, labels, threshold=0.9)
    assert pred.tolist() == [1, 1, 1] and ok.tolist() == [True, False, False]
    # erased concept 2, unrecognisable 3: only the first image is replaced
    replaced, destroyed = unlearning_split(torch.tensor([1, 1, 1, 3, 2]), 2, 3, torch.tensor([1, 0, 0, 0, 0]))
    assert (replaced, destroyed) == (pytest.approx(20.0), pytest.approx(60.0))


def test_quality_flag_uses_the_real_image_floors():
    ok = {"fd_eval": 5.0, "fd_floor": 3.0, "ira": 90.0, "ira_real": 95.0, "ua_destroyed": 0.0}
    assert quality_flag(ok) == "ok"
    assert quality_flag({**ok, "fd_eval": 31.0}) == "broken"
    assert quality_flag({**ok, "ira": 40.0}) == "broken"
    assert quality_flag({**ok, "ua_destroyed": 50.0}) == "degraded"
