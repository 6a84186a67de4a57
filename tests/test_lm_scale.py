"""Memory for large models: the adapters-off reference of a LoRA run computes the original's log-probabilities,
and ``unlearn_lm(..., inplace=True)`` trains the given model (no copy) to the same weights as the copying run."""

import copy

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from unlearnkit.lm import TinyLMConfig, build_tiny_lm, make_benchmark, train_tokenizer, unlearn_lm  # noqa: E402
from unlearnkit.lm.api import lm_request  # noqa: E402
from unlearnkit.lm.losses import sequence_logprob  # noqa: E402
from unlearnkit.lm.reference import AdapterOff  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    split = make_benchmark(n_people=6, n_holdout=2, seed=0).split("forget10")
    tok = train_tokenizer([f"{r['question']} {r['answer']}" for r in split.forget + split.retain], vocab_size=300)
    model = build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=32, n_layers=2, n_heads=2), tok, seed=0)
    return split, tok, model


def test_adapters_off_reference_gives_the_original_log_probs(tiny):
    import peft

    split, tok, model = tiny
    req = lm_request(model, tok, split)
    ids, mask, labels = (t[:6] for t in (req.forget.input_ids, req.forget.attention_mask, req.forget.labels))
    with torch.no_grad():
        want, _ = sequence_logprob(model.eval(), ids, mask, labels)
    wrapped = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0))
    for m in wrapped.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.3  # active in train mode: the reference must run in eval mode like the original
    torch.manual_seed(1)
    for name, p in wrapped.named_parameters():
        if "lora_B" in name:  # trained adapters (B starts at zero)
            p.data.normal_(0, 0.5)
    wrapped.train()
    ref = AdapterOff(wrapped)
    with torch.no_grad():
        got, _ = sequence_logprob(ref, ids, mask, labels)
        on, _ = sequence_logprob(wrapped.eval(), ids, mask, labels)
    wrapped.train()
    assert torch.allclose(got, want, atol=1e-5)
    assert (on - want).abs().max() > 0.1  # the adapters do change the model
    with torch.no_grad():  # and the switch is undone: train mode again, adapters on
        sequence_logprob(ref, ids, mask, labels)
    assert all(m.training for m in wrapped.modules())
    with torch.no_grad():
        again, _ = sequence_logprob(wrapped.eval(), ids, mask, labels)
    assert torch.allclose(again, on)
    assert list(ref.parameters()) == []  # the trainable adapters are not the reference's parameters
    with pytest.raises(TypeError, match="PEFT"):
        AdapterOff(model)


@pytest.mark.parametrize("lora", [True, False])
def test_inplace_trains_the_given_model_to_the_copying_runs_weights(tiny, lora):
    split, tok, model = tiny
    hps = {"lr": 1e-2, "epochs": 2, "batch_size": 5, "seed": 0, "lora": lora, "lora_rank": 4}
    torch.manual_seed(0)  # LoRA's A matrices are drawn when the adapters are added
    copied = unlearn_lm(model, tok, split, "npo", device="cpu", progress=False, **hps)
    mine = copy.deepcopy(model)
    torch.manual_seed(0)
    done = unlearn_lm(mine, tok, split, "npo", device="cpu", progress=False, inplace=True, **hps)
    assert done.model is mine and copied.model is not model
    assert done.losses == pytest.approx(copied.losses, abs=1e-5) and copied.losses[1] != copied.losses[0]
    want = copied.model.state_dict()
    assert set(done.model.state_dict()) == set(want)
    for k, v in done.model.state_dict().items():
        assert torch.allclose(v, want[k], atol=1e-5), k
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, want[k])]
    assert moved  # the run changed the weights …
    assert all(p.requires_grad for p in done.model.parameters())  # … and hands back an ordinary model
