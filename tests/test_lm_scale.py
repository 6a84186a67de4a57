"""Large models: the adapters-off reference of a LoRA run computes the original's log-probabilities,
``unlearn_lm(..., inplace=True)`` trains the given model (no copy) to the same weights as the copying run, a model
placed over several devices by a device_map is trained where it is, and sharding accelerators are refused."""

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
    hps = {"lr": 1e-2, "epochs": 2, "batch_size": 5, "seed": 0, "lora": lora, "lora_rank": 4, "probe": False}
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


def test_lm_unlearn_device_map_auto_trains_like_the_plain_command(tiny, tmp_path, capsys):
    pytest.importorskip("accelerate")
    import json

    from unlearnkit.cli import main
    from unlearnkit.lm import load_causal_lm, save_causal_lm
    from unlearnkit.lm.parallel import sharded_device

    split, tok, model = tiny
    save_causal_lm(model, tok, tmp_path / "model")
    for name, rows in (("forget", split.forget), ("retain", split.retain[:20])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["lm-unlearn", "--model", str(tmp_path / "model"), "--method", "npo", "--device", "cpu", "--no-progress"]
    args += ["--forget", str(tmp_path / "forget.jsonl"), "--retain", str(tmp_path / "retain.jsonl")]
    args += ["--hp", "epochs=1", "--hp", "lr=1e-2", "--hp", "batch_size=5"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    # one CPU: from_pretrained puts the whole model on it and records no placement (nothing is split)
    assert sharded_device(load_causal_lm(tmp_path / "model", device_map="auto")[0]) is None
    assert main([*args, "--device-map", "auto", "--out", str(tmp_path / "mapped")]) == 0
    a, b = load_causal_lm(tmp_path / "plain")[0].state_dict(), load_causal_lm(tmp_path / "mapped")[0].state_dict()
    assert any(not torch.equal(a[k], model.state_dict()[k]) for k in a)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    capsys.readouterr()
    assert main([*args, "--device-map", "auto", "--accelerate", "--out", str(tmp_path / "both")]) != 0
    assert "drop --accelerate" in capsys.readouterr().err and not (tmp_path / "both").exists()


def test_a_model_split_over_devices_stays_where_its_layers_are(tiny):
    """A device_map placement (faked on one CPU: ``hf_device_map`` naming two devices) is never moved: inputs go to
    the input embeddings' device and the run equals the plain one."""
    from unlearnkit.errors import ConfigError
    from unlearnkit.lm.parallel import sharded_device

    split, tok, model = tiny
    hps = {"lr": 1e-2, "epochs": 2, "batch_size": 5, "seed": 0}
    plain = unlearn_lm(model, tok, split, "ga", device="cpu", progress=False, **hps)
    split_model = copy.deepcopy(model)
    split_model.hf_device_map = {"transformer.wte": 0, "transformer.h": 1, "lm_head": 1}

    def no_move(*a, **k):
        raise AssertionError("a model placed by a device_map was moved")

    split_model.to = no_move
    assert sharded_device(split_model) == torch.device("cpu") and sharded_device(model) is None
    res = unlearn_lm(split_model, tok, split, "ga", progress=False, inplace=True, **hps)
    assert res.losses == pytest.approx(plain.losses, abs=1e-6)
    want = plain.model.state_dict()
    assert all(torch.allclose(v, want[k], atol=1e-6) for k, v in res.model.state_dict().items())
    with pytest.raises(ConfigError, match="one process"):
        unlearn_lm(split_model, tok, split, "ga", progress=False, accelerator=object(), **hps)
    offloaded = copy.deepcopy(model).to("meta")
    offloaded.hf_device_map = {"transformer.wte": 0, "transformer.h": "disk"}
    with pytest.raises(ConfigError, match="offloaded"):
        sharded_device(offloaded)


def test_fsdp_and_deepspeed_accelerators_are_refused():
    from types import SimpleNamespace

    from unlearnkit.errors import ConfigError
    from unlearnkit.lm.parallel import check_strategy

    for ok in ("NO", "MULTI_CPU", "MULTI_GPU"):
        acc = SimpleNamespace(distributed_type=SimpleNamespace(name=ok))
        assert check_strategy(acc) is acc
    for bad in ("FSDP", "DEEPSPEED"):
        with pytest.raises(ConfigError, match=f"not {bad}.*--multi_gpu"):
            check_strategy(SimpleNamespace(distributed_type=SimpleNamespace(name=bad)))


@pytest.mark.slow
def test_documented_two_process_accelerate_command_equals_two_accumulation_steps(tiny, tmp_path):
    """The command of docs/lm-unlearning.md, ``accelerate launch --multi_gpu --num_processes 2 -m unlearnkit
    lm-unlearn --accelerate --device cpu ...`` (two CPU processes over gloo), writes the model that one process
    with ``grad_accum=2`` writes."""
    pytest.importorskip("accelerate")
    import json
    import os
    import subprocess
    import sys

    from unlearnkit.cli import main
    from unlearnkit.lm import load_causal_lm, save_causal_lm

    split, tok, model = tiny
    save_causal_lm(model, tok, tmp_path / "model")
    for name, rows in (("forget", split.forget), ("retain", split.retain[:20])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["lm-unlearn", "--model", str(tmp_path / "model"), "--method", "grad-diff", "--device", "cpu"]
    args += ["--forget", str(tmp_path / "forget.jsonl"), "--retain", str(tmp_path / "retain.jsonl"), "--no-progress"]
    args += ["--hp", "epochs=2", "--hp", "lr=1e-2", "--hp", "batch_size=10"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", "29617"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    cmd = [*launch, "-m", "unlearnkit", *args, "--accelerate", "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main([*args, "--hp", "grad_accum=2", "--out", str(tmp_path / "one")]) == 0
    a, b = load_causal_lm(tmp_path / "one")[0].state_dict(), load_causal_lm(tmp_path / "two")[0].state_dict()
    assert max((a[k] - model.state_dict()[k]).abs().max() for k in a) > 1e-3  # the run moved the weights
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
