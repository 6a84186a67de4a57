"""Local checkpoints (save, AutoModelForCausalLM loading) and the lm-data / lm-train / lm-bench commands."""

import json

import pytest
import torch

pytest.importorskip("transformers")

from unlearnkit.cli import main  # noqa: E402
from unlearnkit.errors import CheckpointError, ConfigError  # noqa: E402
from unlearnkit.lm import (  # noqa: E402
    LMBenchConfig,
    TinyLMConfig,
    build_tiny_lm,
    encode_qa,
    load_causal_lm,
    make_benchmark,
    save_causal_lm,
    train_tokenizer,
    write_jsonl,
)
from unlearnkit.lm.encode import IGNORE, prompt_text  # noqa: E402

TINY = ["--people", "6", "--holdout", "2", "--d-model", "32", "--layers", "1", "--epochs", "2", "--no-progress"]


@pytest.fixture(scope="session")
def tokenizer():
    bench = make_benchmark(n_people=6, n_holdout=2, seed=0)
    return train_tokenizer([f"{r['question']} {r['answer']}" for r in bench.qa], vocab_size=300)


def test_tokenizer_round_trip_and_answer_only_labels(tokenizer):
    text = "Question: Where did Alma Juniper study?"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    qa = [{"question": "Who is it?", "answer": "It is me."}]
    d = encode_qa(tokenizer, qa)
    n_prompt = len(tokenizer(prompt_text("Who is it?"), add_special_tokens=False)["input_ids"])
    assert torch.all(d.labels[0, :n_prompt] == IGNORE)
    assert int(d.labels[0, -1]) == tokenizer.eos_token_id
    assert int(d.attention_mask.sum()) == d.input_ids.shape[1]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_save_and_load_local_checkpoint(tokenizer, tmp_path, arch):
    model = build_tiny_lm(TinyLMConfig(arch=arch, d_model=32, n_layers=1, n_heads=2), tokenizer)
    path = save_causal_lm(model, tokenizer, tmp_path / arch)
    with pytest.raises(CheckpointError, match="already exists"):
        save_causal_lm(model, tokenizer, path)
    loaded, tok = load_causal_lm(path)
    ids = torch.tensor([tokenizer("Question: Who?")["input_ids"]])
    assert torch.allclose(model(input_ids=ids).logits, loaded(input_ids=ids).logits, atol=1e-5)
    assert tok.pad_token_id == tokenizer.pad_token_id
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_errors_say_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="lm-train"):
        load_causal_lm(tmp_path)
    with pytest.raises(ConfigError, match="divisible"):
        TinyLMConfig(d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="both"):
        LMBenchConfig(forget_jsonl="f.jsonl")
    with pytest.raises(ConfigError, match="unknown method"):
        LMBenchConfig(methods=["not-a-method"])


def test_cli_lm_data_writes_jsonl(tmp_path, capsys):
    assert main(["lm-data", "--people", "10", "--holdout", "2", "--out", str(tmp_path)]) == 0
    assert "JSONL" in capsys.readouterr().out
    assert len((tmp_path / "qa.jsonl").read_text().splitlines()) == 100


@pytest.fixture(scope="session")
def trained_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("lm-cache")
    assert main(["lm-train", *TINY, "--cache-dir", str(cache)]) == 0
    return cache


def test_cli_lm_train_caches(trained_cache, capsys):
    assert main(["lm-train", *TINY, "--cache-dir", str(trained_cache)]) == 0
    out = capsys.readouterr().out
    assert "original" in out and "retain_only" in out and out.count("cached") == 2


def test_cli_lm_bench_on_a_local_checkpoint_and_user_jsonl(trained_cache, tmp_path, capsys):
    folders = [p for p in trained_cache.iterdir() if (p / "config.json").is_file()]
    meta = [json.loads((p / "unlearnkit.json").read_text()) for p in folders]
    original = next(p for p, m in zip(folders, meta) if m["which"] == "original")
    bench = make_benchmark(n_people=6, n_holdout=2, seed=0)
    s = bench.split("forget10")
    write_jsonl(tmp_path / "f.jsonl", s.forget)
    write_jsonl(tmp_path / "r.jsonl", s.retain[:20])
    write_jsonl(tmp_path / "h.jsonl", s.holdout[:10])
    out = tmp_path / "run"
    args = ["lm-bench", "--model", str(original), "--forget-jsonl", str(tmp_path / "f.jsonl")]
    args += ["--retain-jsonl", str(tmp_path / "r.jsonl"), "--holdout-jsonl", str(tmp_path / "h.jsonl")]
    args += ["--methods", "ga,npo", "--hp", "ga.lr=0.001", "--epochs", "1", "--no-progress", "--no-attacks"]
    args += ["--cache-dir", str(tmp_path / "c"), "--out", str(out)]
    assert main(args) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["retain-only", "original", "ga", "npo"]
    assert rows[0]["forget_quality"] == pytest.approx(1.0)
    assert all(0 <= r["mia_minkpp"] <= 1 for r in rows)
    assert (out / "results.csv").is_file()
    assert main(["lm-bench", "--methods", "ga", "--hp", "npo.beta=1", "--no-progress"]) == 2
