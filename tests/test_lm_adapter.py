"""``lora=True, adapter_only=True`` keeps the LoRA adapter apart from the weights: the saved adapter folder
loads with ``PeftModel.from_pretrained(base, folder)`` and reproduces the unlearned model's logits
(API, ``result.save`` and ``lm-unlearn --adapter-only``)."""

import copy
import json

import pytest
import torch
from peft import PeftModel

import unlearnkit as uk
from unlearnkit.cli import main
from unlearnkit.errors import ConfigError
from unlearnkit.lm import load_causal_lm, save_causal_lm, unlearn_lm

from .tiny_lm import tiny_lm

HP = {"epochs": 2, "lr": 5e-2, "batch_size": 8, "progress": False, "probe": False}  # mechanics: the whole budget


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def lm():
    model, tok, split = tiny_lm()
    ids = torch.tensor([tok(split.forget[0]["question"] + " " + split.forget[0]["answer"])["input_ids"]])
    return model, tok, split, ids


def _files(folder):
    return {p.name for p in folder.iterdir()}


def test_the_adapter_folder_reproduces_the_unlearned_logits(lm, tmp_path):
    model, tok, split, ids = lm
    res = unlearn_lm(model, tok, split, "ga", lora=True, adapter_only=True, **HP)
    assert isinstance(res.model, PeftModel)
    out = save_causal_lm(res.model, tok, tmp_path / "adapter", adapter_only=True)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= _files(out)
    assert "model.safetensors" not in _files(out)  # only the adapter, not the weights
    restored = PeftModel.from_pretrained(copy.deepcopy(model), str(out))  # it puts the adapter into the base
    unlearned = _logits(res.model, ids)
    assert torch.allclose(_logits(restored, ids), unlearned, atol=1e-5)
    assert not torch.allclose(_logits(model, ids), unlearned, atol=1e-3)  # the adapter changed the model
    # saved whole (adapter merged into a copy): the same logits from the weights alone
    whole = save_causal_lm(res.model, tok, tmp_path / "whole")
    assert "adapter_config.json" not in _files(whole)
    assert torch.allclose(_logits(load_causal_lm(whole)[0], ids), unlearned, atol=1e-4)
    assert isinstance(res.model, PeftModel)  # saving whole left the result's adapter in place


def test_unlearn_result_save_adapter_only(lm, tmp_path):
    model, tok, split, ids = lm
    res = uk.unlearn(model, split.forget, split.retain, "ga", tokenizer=tok, lora=True, adapter_only=True, **HP)
    assert len(res.history) == HP["epochs"]  # the LM method's epochs, for res.plot()
    folder = res.save(tmp_path / "a", adapter_only=True, tokenizer=tok)
    assert json.loads((folder / "unlearnkit.json").read_text())["method"] == "ga"
    restored = PeftModel.from_pretrained(copy.deepcopy(model), str(folder))
    assert torch.allclose(_logits(restored, ids), _logits(res.model, ids))


def test_adapter_only_needs_lora_and_an_adapter(lm, tmp_path):
    model, tok, split, _ = lm
    with pytest.raises(ConfigError, match="lora=True"):
        unlearn_lm(model, tok, split, "ga", adapter_only=True, **HP)
    with pytest.raises(ConfigError, match="adapter"):
        save_causal_lm(model, tok, tmp_path / "x", adapter_only=True)
    assert not (tmp_path / "x").exists()


def test_lm_unlearn_adapter_only_writes_a_peft_folder(lm, tmp_path, capsys):
    model, tok, split, ids = lm
    base = save_causal_lm(model, tok, tmp_path / "base")
    for name, rows in (("f", split.forget), ("r", split.retain)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "adapter"
    args = ["lm-unlearn", "--model", str(base), "--method", "ga", "--forget", str(tmp_path / "f.jsonl")]
    args += ["--retain", str(tmp_path / "r.jsonl"), "--out", str(out), "--adapter-only", "--no-progress"]
    assert main([*args, "--hp", "epochs=2", "--hp", "lr=5e-2", "--hp", "batch_size=8"]) == 0
    assert "PeftModel.from_pretrained" in capsys.readouterr().out
    assert {"adapter_config.json", "adapter_model.safetensors"} <= _files(out)
    assert "model.safetensors" not in _files(out)
    meta = json.loads((out / "unlearnkit.json").read_text())
    assert meta["hparams"]["lora"] and meta["hparams"]["adapter_only"]
    same_run = unlearn_lm(load_causal_lm(base)[0], tok, split, "ga", lora=True, adapter_only=True, **HP)
    restored = PeftModel.from_pretrained(load_causal_lm(base)[0], str(out))
    assert torch.allclose(_logits(restored, ids), _logits(same_run.model, ids), atol=1e-5)
