"""LM unlearning methods on a tiny model: loss formulas, direction (forget NLL rises, retain NLL bounded),
the original left untouched, LoRA, and the registry."""

import math

import pytest
import torch

pytest.importorskip("transformers")

from unlearnkit.errors import ConfigError  # noqa: E402
from unlearnkit.lm import (  # noqa: E402
    LMTrainConfig,
    TinyLMConfig,
    build_tiny_lm,
    encode_qa,
    encode_texts,
    make_benchmark,
    train_lm,
    train_tokenizer,
    unlearn_lm,
)
from unlearnkit.lm.generate import row_logprobs  # noqa: E402
from unlearnkit.lm.methods import LM_METHODS  # noqa: E402
from unlearnkit.lm.methods.idk_dpo import dpo_loss  # noqa: E402
from unlearnkit.lm.methods.npo import npo_loss  # noqa: E402
from unlearnkit.lm.methods.simnpo import simnpo_loss  # noqa: E402
from unlearnkit.lm.methods.undial import undial_targets  # noqa: E402
from unlearnkit.methods.base import available_methods, make_method  # noqa: E402
from unlearnkit.methods.context import RunContext  # noqa: E402


@pytest.fixture(scope="session")
def tiny_lm():
    torch.set_num_threads(1)
    bench = make_benchmark(n_people=8, n_holdout=2, seed=0)
    split = bench.split("forget10")  # one person forgotten: 10 QA
    corpus = [t.get("text") or f"{t['prompt']} {t['target']}" for t in split.train_texts]
    tok = train_tokenizer(corpus, vocab_size=400)
    model = build_tiny_lm(TinyLMConfig(d_model=32, n_layers=2, n_heads=2, max_length=192), tok, seed=0)
    data = encode_texts(tok, split.train_texts, max_length=192)
    train_lm(model, data, LMTrainConfig(epochs=20, lr=1e-2, batch_size=16), seed=0, progress=False)
    return model, tok, split


def mean_nll(model, tok, qa):
    rows = row_logprobs(model, encode_qa(tok, qa))
    return -float(torch.cat(rows).mean())


def test_loss_formulas_at_known_points():
    logp = torch.tensor([-3.0, -5.0], requires_grad=True)
    loss = npo_loss(logp, logp.detach(), beta=0.1)
    assert loss.item() == pytest.approx(2 / 0.1 * math.log(2))
    loss.backward()
    assert torch.all(logp.grad > 0), "descending the NPO loss must lower the forget likelihood"
    lp = torch.tensor([-4.0], requires_grad=True)
    s = simnpo_loss(lp, torch.tensor([4]), beta=4.5, delta=0.0)
    assert s.item() == pytest.approx(-(2 / 4.5) * math.log(1 / (1 + math.exp(-4.5))))
    s.backward()
    assert float(lp.grad) > 0
    z = torch.zeros(2)
    assert float(dpo_loss(z, z, z, z, 0.1)) == pytest.approx(2 / 0.1 * math.log(2))
    teacher = undial_targets(torch.zeros(1, 1, 4), torch.tensor([[2]]), beta=math.log(3))
    assert teacher[0, 0].tolist() == pytest.approx([0.3, 0.3, 0.1, 0.3])


def test_registry_has_lm_methods_next_to_classifier_ga():
    assert set(LM_METHODS) <= set(available_methods(domain="lm"))
    assert "ga" in available_methods()  # the classifier GA still exists
    assert make_method("ga", domain="lm").lr == pytest.approx(1e-5)
    assert make_method("npo", domain="lm").beta == pytest.approx(0.1)
    assert make_method("simnpo", domain="lm").beta == pytest.approx(4.5)
    with pytest.raises(ConfigError, match="out of range"):
        make_method("npo", domain="lm", beta=0.0)


FAST = {"epochs": 3, "batch_size": 4, "lr": 3e-3}
RETAINING = ["grad-diff", "npo", "simnpo", "idk-dpo", "rmu", "undial"]


@pytest.mark.parametrize("method", ["ga", *RETAINING])
def test_forget_nll_rises_and_original_is_untouched(tiny_lm, method):
    model, tok, split = tiny_lm
    before = {k: v.clone() for k, v in model.state_dict().items()}
    f0, r0 = mean_nll(model, tok, split.forget), mean_nll(model, tok, split.retain)
    hps = dict(FAST)
    if method == "rmu":
        hps.update(lr=1e-2, batch_size=4, layer=1, n_train_layers=2)  # steering and alpha at their defaults
    if method == "grad-diff":
        hps.update(lr=1e-3)  # the unbounded −NLL term diverges quickly at higher rates
    if method == "undial":
        hps.update(retain_weight=1.0)
    res = unlearn_lm(model, tok, split, method, progress=False, probe=False, **hps)
    f1, r1 = mean_nll(res.model, tok, split.forget), mean_nll(res.model, tok, split.retain)
    assert f1 > f0 + 0.1, f"{method}: forget NLL {f0:.3f} -> {f1:.3f} did not rise"
    if method in RETAINING:
        assert r1 < r0 + 1.0, f"{method}: retain NLL {r0:.3f} -> {r1:.3f} not bounded"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert res.seconds > 0 and res.hparams["epochs"] == 3


def test_lora_variant_trains_adapters_and_merges(tiny_lm):
    pytest.importorskip("peft")
    model, tok, split = tiny_lm
    f0 = mean_nll(model, tok, split.forget)
    res = unlearn_lm(
        model, tok, split, "ga", progress=False, probe=False, lora=True, lora_rank=4, lr=1e-2, epochs=3, batch_size=4
    )
    assert set(res.model.state_dict()) == set(model.state_dict())
    assert all(p.requires_grad for p in res.model.parameters())
    assert mean_nll(res.model, tok, split.forget) > f0 + 0.1


def test_rmu_trains_only_down_proj_of_the_chosen_blocks(tiny_lm):
    model, tok, split = tiny_lm
    res = unlearn_lm(
        model, tok, split, "rmu", progress=False, probe=False, epochs=1, lr=1e-2, layer=1, n_train_layers=1
    )
    before, after = model.state_dict(), res.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"model.layers.1.mlp.down_proj.weight"}
    assert all(p.requires_grad for p in res.model.parameters())


def test_rmu_steering_coefficient_follows_the_activation_norm(tiny_lm):
    """Default ``steering="norm"``: c = steering_scale × the frozen model's mean activation norm at the layer on
    the forget data; ``steering="fixed"`` (WMDP's preset) keeps the given constant."""
    from unlearnkit.lm.api import lm_request
    from unlearnkit.lm.methods.rmu import WMDP_PRESET, activation_scale
    from unlearnkit.lm.model import decoder_layers

    model, tok, split = tiny_lm
    request = lm_request(model, tok, split, progress=False)
    norm, mean_sq = activation_scale(model, decoder_layers(model)[1], request.forget)
    assert mean_sq == pytest.approx(norm**2 / model.config.hidden_size, rel=0.5)
    for hps, coeff, unit in (({}, 3.0 * norm, mean_sq), (WMDP_PRESET, 6.5, 1.0)):
        m = make_method("rmu", domain="lm", **{"steering_scale": 3.0, "epochs": 1, "layer": 1, **hps})
        outcome = m.run(__import__("copy").deepcopy(model), request, RunContext())
        assert outcome.report["resolved"] == pytest.approx({"steering_coeff": coeff, "loss_unit": unit})


def test_rmu_rejects_lora_and_bad_layer(tiny_lm):
    model, tok, split = tiny_lm
    with pytest.raises(ConfigError, match="lora"):
        unlearn_lm(model, tok, split, "rmu", progress=False, lora=True, epochs=1)
    with pytest.raises(ConfigError, match="blocks"):
        unlearn_lm(model, tok, split, "rmu", progress=False, layer=7, epochs=1)


def test_measure_and_attacks_on_the_tiny_model(tiny_lm):
    from unlearnkit.lm import compare_to_retain_only, measure_lm
    from unlearnkit.lm.attacks import in_context_probe, probe_scores, relearn_attack

    model, tok, split = tiny_lm
    ev = measure_lm(model, tok, split, retain_eval=20)
    m = ev.metrics
    for key in ("forget_rouge", "retain_rouge", "forget_prob", "utility", "mia_loss", "mia_minkpp", "fluency"):
        assert m[key] == m[key], key  # not NaN
    assert 0 <= m["forget_rouge"] <= 1 and 0 <= m["mia_zlib"] <= 1
    assert len(ev.forget_truth_ratios) == len(split.forget)
    self_cmp = compare_to_retain_only(ev, ev)
    assert self_cmp["forget_quality"] == pytest.approx(1.0) and self_cmp["privleak"] == pytest.approx(0.0)
    probes = probe_scores(model, tok, split.probes)
    kinds = ("prefix_injection", "role_play", "reverse_query", "multiple_choice", "in_context_hint", "fill_blank")
    assert set(probes) == {f"probe_{k}" for k in kinds}
    assert all(0 <= v <= 1 for v in probes.values())
    icl = in_context_probe(model, tok, split.forget, split.bios)
    assert set(icl) == {"icl_no_context", "icl_with_context"}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rel = relearn_attack(model, tok, split.forget, n_examples=4, steps=3)
    assert 0 <= rel["relearn_before"] <= 1 and 0 <= rel["relearn_after"] <= 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
