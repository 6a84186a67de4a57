"""Bring your own model and data: a GPT-2 saved with save_pretrained, TOFU-format JSON, MUSE-style raw text,
``lm-unlearn`` / ``lm-eval`` / ``lm-bench --target`` (nothing is trained twice), ``unlearnkit.unlearn`` on a
causal LM, and the large-model knobs (accumulation, autocast, truncation warning, chat template)."""

import json
import warnings

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("rouge_score")

import unlearnkit  # noqa: E402
from unlearnkit.cli import main  # noqa: E402
from unlearnkit.errors import ConfigError, DataError  # noqa: E402
from unlearnkit.lm import (  # noqa: E402
    LMTrainConfig,
    TinyLMConfig,
    build_tiny_lm,
    encode_texts,
    load_causal_lm,
    make_benchmark,
    save_causal_lm,
    train_lm,
    train_tokenizer,
)
from unlearnkit.lm.api import coerce_hparams  # noqa: E402
from unlearnkit.lm.encode import encode_pairs, encode_qa, prompt_text  # noqa: E402
from unlearnkit.lm.formats import read_records, split_from_files  # noqa: E402
from unlearnkit.lm.losses import sequence_logprob  # noqa: E402
from unlearnkit.lm.methods.base import accumulated, micro_batches  # noqa: E402


def _tofu(rows):
    """The generated QA in TOFU's field names (perturbed_answer, a list), as TOFU's *_perturbed.json."""
    return [
        {
            "question": r["question"],
            "answer": r["answer"],
            "paraphrased_answer": r["paraphrased_answer"],
            "perturbed_answer": r["perturbed_answers"],
        }
        for r in rows
    ]


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
    """A user's GPT-2 (built from a config, briefly trained, save_pretrained) and TOFU-format JSON lines."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("byo")
    split = make_benchmark(n_people=6, n_holdout=2, seed=0).split("forget10")
    tok = train_tokenizer([f"{r['question']} {r['answer']}" for r in split.forget + split.retain], vocab_size=300)
    model = build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=32, n_layers=2, n_heads=2), tok, seed=0)
    texts = [{"prompt": r["question"], "target": r["answer"]} for r in split.forget + split.retain[:20]]
    train_lm(model, encode_texts(tok, texts), LMTrainConfig(epochs=3, lr=1e-2, batch_size=16), progress=False)
    save_causal_lm(model, tok, root / "gpt2")
    retain = build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=32, n_layers=2, n_heads=2), tok, seed=1)
    save_causal_lm(retain, tok, root / "gpt2-retain")
    for name, rows in (("forget", split.forget), ("retain", split.retain[:20]), ("holdout", split.holdout[:10])):
        (root / f"{name}.json").write_text("".join(json.dumps(r) + "\n" for r in _tofu(rows)))
    return root, split


def test_tofu_json_keeps_perturbed_answers_and_errors_name_the_field(byo, tmp_path):
    root, split = byo
    s = split_from_files(root / "forget.json", root / "retain.json")
    assert s.forget[0]["perturbed_answers"] == split.forget[0]["perturbed_answers"]
    assert len(s.forget[0]["perturbed_answers"]) == 3
    (tmp_path / "arr.json").write_text(json.dumps([{"question": "Q?", "answer": "A.", "perturbed_answer": "B."}]))
    assert read_records(tmp_path / "arr.json")[0]["perturbed_answer"] == "B."
    (tmp_path / "typo.jsonl").write_text(json.dumps({"question": "Q?", "answer": "A.", "perturbed_answes": []}) + "\n")
    with pytest.raises(DataError, match="unknown field 'perturbed_answes'.*did you mean 'perturbed_answer"):
        split_from_files(tmp_path / "typo.jsonl", root / "retain.json")
    (tmp_path / "noans.jsonl").write_text(json.dumps({"question": "Q?"}) + "\n")
    with pytest.raises(DataError, match="lacks the field 'answer'"):
        split_from_files(tmp_path / "noans.jsonl", root / "retain.json")
    (tmp_path / "text.jsonl").write_text(json.dumps({"text": "some text"}) + "\n")
    with pytest.raises(DataError, match="both as QA or both as text"):
        split_from_files(tmp_path / "text.jsonl", root / "retain.json")


def test_file_options_map_onto_split_from_files_the_same_way_for_the_cli_and_the_bench(byo):
    import argparse

    from unlearnkit.lm import LMBenchConfig
    from unlearnkit.lm.bench import load_split
    from unlearnkit.lm.formats import split_from_options

    root, _ = byo
    files = {"forget_jsonl": root / "forget.json", "retain_jsonl": root / "retain.json"}
    files.update(holdout_jsonl=root / "holdout.json", neighbour_jsonl=root / "retain.json")
    files.update(world_jsonl=root / "holdout.json")
    direct = split_from_files(
        files["forget_jsonl"], files["retain_jsonl"], holdout=root / "holdout.json", neighbour=root / "retain.json",
        world=root / "holdout.json",
    )  # fmt: skip
    from_args = split_from_options(argparse.Namespace(**files))
    from_cfg = load_split(LMBenchConfig(**{k: str(v) for k, v in files.items()}))
    for s in (from_args, from_cfg):
        for part in ("forget", "retain", "holdout", "neighbour", "world"):
            assert getattr(s, part) == getattr(direct, part) and getattr(s, part)
    assert split_from_options(argparse.Namespace(forget_jsonl=None)) is None  # the built-in benchmark then
    with pytest.raises(ConfigError, match="needs a forget file"):
        split_from_options(argparse.Namespace(forget_jsonl=None, retain_jsonl=str(root / "retain.json")))


def test_hf_datasets_folder(byo, tmp_path):
    datasets = pytest.importorskip("datasets")
    root, split = byo
    rows = _tofu(split.forget)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "forget"))
    assert read_records(tmp_path / "forget") == rows
    datasets.DatasetDict({"a": datasets.Dataset.from_list(rows), "b": datasets.Dataset.from_list(rows)}).save_to_disk(
        str(tmp_path / "dd")
    )
    with pytest.raises(DataError, match="splits a, b"):
        read_records(tmp_path / "dd")
    assert len(read_records(tmp_path / "dd" / "b")) == len(rows)


def test_cli_unlearn_and_eval_a_users_gpt2_without_training(byo, tmp_path, capsys):
    root, _ = byo
    data = ["--forget", str(root / "forget.json"), "--retain", str(root / "retain.json")]
    out = tmp_path / "unlearned"
    args = ["lm-unlearn", "--model", str(root / "gpt2"), "--method", "npo", *data, "--out", str(out)]
    args += ["--hp", "lr=1e-2", "--hp", "epochs=2", "--hp", "batch_size=4", "--hp", "npo.lora=True", "--no-progress"]
    args += ["--no-probe"]  # the whole budget: the LoRA weights must be merged
    assert main(args) == 0
    before, _ = load_causal_lm(root / "gpt2")
    after, _ = load_causal_lm(out)
    b, a = before.state_dict(), after.state_dict()
    assert set(a) == set(b) and any(not torch.equal(b[k], a[k]) for k in b)  # LoRA merged into the weights
    assert json.loads((out / "unlearnkit.json").read_text())["hparams"]["lora"] is True
    capsys.readouterr()
    args = ["lm-eval", "--model", str(out), "--retain-model", str(root / "gpt2-retain"), *data]
    args += ["--holdout-qa", str(root / "holdout.json"), "--out", str(tmp_path / "m.json"), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert 0 <= metrics["forget_quality"] <= 1 and "forget_quality" in printed
    assert metrics["privleak"] == metrics["privleak"] and 0 <= metrics["mia_mink"] <= 1


def test_cli_unlearn_checks_its_output_before_training(byo, tmp_path, capsys, monkeypatch):
    root, _ = byo
    import unlearnkit.lm as lm

    monkeypatch.setattr(lm, "unlearn_lm", lambda *a, **k: pytest.fail("trained before the output was checked"))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    data = ["--forget", str(root / "forget.json"), "--retain", str(root / "retain.json"), "--no-progress"]
    base = ["lm-unlearn", "--model", str(root / "gpt2"), "--method", "npo", *data]
    for out, extra, why in [
        (taken, [], "not a checkpoint or model"),
        (taken, ["--overwrite"], "not a checkpoint or model"),  # a folder of other files is never replaced
        (root / "gpt2", ["--overwrite"], "never replaced"),
        (tmp_path / "x", ["--hp", "ga.lr=1"], "names method 'ga'"),
    ]:
        capsys.readouterr()
        assert main([*base, "--out", str(out), *extra]) == 2
        assert why in capsys.readouterr().err
    assert (taken / "notes.txt").read_text() == "mine" and not (tmp_path / "x").exists()


def test_cli_bench_on_target_and_retain_model_skips_training(byo, tmp_path):
    root, _ = byo
    out = tmp_path / "run"
    args = ["lm-bench", "--target", str(root / "gpt2"), "--retain-model", str(root / "gpt2-retain")]
    args += ["--forget", str(root / "forget.json"), "--retain", str(root / "retain.json"), "--methods", "ga"]
    args += ["--hp", "ga.epochs=1", "--relearn-steps", "2", "--relearn-lr", "0.01", "--no-progress", "--out", str(out)]
    assert main([*args, "--max-new-tokens", "40"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["meta"]["generation"] == {"max_new_tokens": 40, "max_length": 256, "stop": "eos"}
    rows = result["rows"]
    assert [r["method"] for r in rows] == ["retain-only", "original", "ga"]
    assert result["meta"]["train"]["original_path"] == str(root / "gpt2")
    assert all(r["peak_rss_mb"] > 0 for r in rows) and "relearn_after" in rows[2]
    assert rows[0]["forget_quality"] == pytest.approx(1.0)


def test_unlearnkit_unlearn_dispatches_a_causal_lm(byo):
    root, split = byo
    model, tok = load_causal_lm(root / "gpt2")
    forget = [{"question": r["question"], "answer": r["answer"]} for r in split.forget]
    retain = [{"question": r["question"], "answer": r["answer"]} for r in split.retain[:8]]
    res = unlearnkit.unlearn(model, forget, retain, method="ga", tokenizer=tok, epochs=1, lr=1e-2, progress=False)
    assert type(res).__name__ == "UnlearnResult" and res.method == "ga" and res.model is not model
    # raw text works the same way (loss on every token)
    res = unlearnkit.unlearn(model, ["a text to forget"], ["a text to keep"], method="ga", tokenizer=tok, epochs=1)
    assert res.hparams["epochs"] == 1
    with pytest.raises(ConfigError, match="tokenizer"):
        unlearnkit.unlearn(model, forget, retain, method="ga")


def test_boolean_hyper_parameters_accept_text():
    assert coerce_hparams("npo", {"lora": "True"})["lora"] is True
    assert coerce_hparams("npo", {"lora": "1"})["lora"] is True
    assert coerce_hparams("npo", {"lora": "true", "gradient_checkpointing": 1})["gradient_checkpointing"] is True
    assert coerce_hparams("npo", {"lora": "0"})["lora"] is False
    with pytest.raises(ConfigError, match="not a boolean"):
        coerce_hparams("npo", {"lora": "maybe"})


def test_gradient_accumulation_gives_the_full_batch_gradient(byo):
    root, _ = byo
    model, tok = load_causal_lm(root / "gpt2")
    data = encode_pairs(
        tok, ["Question: a\nAnswer:", "Q: b", "Question: ccc dd\nAnswer:", "x"], ["one", "two", "t", "four"]
    )
    batch = data.tensors()

    def loss(m, b):
        return -sequence_logprob(m, *b[:3])[0].mean()

    grads = []
    for n in (1, 2):
        model.zero_grad()
        accumulated(loss, n)(model, batch).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    parts = micro_batches(batch, 2)
    assert [p[0].shape[0] for p in parts] == [2, 2]
    assert parts[0][0].shape[1] <= batch[0].shape[1]


def test_bf16_and_accumulation_train_a_method(byo):
    root, split = byo
    model, tok = load_causal_lm(root / "gpt2")
    qa = [{"question": r["question"], "answer": r["answer"]} for r in split.forget]
    hps = {
        "epochs": 1,
        "lr": 1e-2,
        "batch_size": 4,
        "grad_accum": 2,
        "precision": "bf16",
        "gradient_checkpointing": True,
    }
    res = unlearnkit.unlearn(model, qa, qa, method="grad-diff", tokenizer=tok, progress=False, **hps)
    assert res.hparams["precision"] == "bf16" and res.model.transformer.h[0].mlp.c_fc.weight.dtype == torch.float32
    assert not torch.equal(model.transformer.h[0].mlp.c_fc.weight, res.model.transformer.h[0].mlp.c_fc.weight)


def test_truncation_warns_once_and_chat_template_is_used(byo):
    root, _ = byo
    _, tok = load_causal_lm(root / "gpt2")
    with pytest.warns(UserWarning, match="max_length=7"):
        d = encode_texts(tok, [{"text": "a fairly long sentence that is cut somewhere"}], max_length=7)
    assert d.input_ids.shape[1] == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode_texts(tok, [{"text": "another long sentence that is also cut"}], max_length=7)
    tok.chat_template = "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<bot>"
    assert prompt_text("Who?", tok) == "<user>Who?</user><bot>"
    tok.chat_template = None
    assert prompt_text("Who?", tok) == "Question: Who?\nAnswer:"
    long_q = {"question": "a question far longer than the few tokens allowed here", "answer": "yes"}
    with pytest.raises(DataError, match="keep none of their answer tokens within max_length=6"):
        encode_qa(tok, [long_q, {"question": "ok?", "answer": "no"}], max_length=6)  # not a NaN loss later


def test_muse_style_text_corpora_and_verbmem(byo, tmp_path):
    root, split = byo
    bios = list(split.bios.values())
    (tmp_path / "f.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in bios[:2]))
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in bios[2:5]))
    (tmp_path / "fq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _tofu(split.forget[:4])))
    s = split_from_files(tmp_path / "f.jsonl", tmp_path / "r.jsonl", forget_qa=tmp_path / "fq.jsonl")
    assert len(s.forget_corpus) == 2 and len(s.forget) == 4 and not s.retain
    from unlearnkit.lm import measure_lm

    model, tok = load_causal_lm(root / "gpt2")
    m = measure_lm(model, tok, s).metrics
    assert 0 <= m["forget_verbmem"] <= 1 and 0 <= m["forget_knowmem"] <= 1
    (tmp_path / "vm.jsonl").write_text(json.dumps({"prompt": "Alma", "gt": "Juniper"}) + "\n")
    s2 = split_from_files(tmp_path / "f.jsonl", tmp_path / "r.jsonl", verbmem=tmp_path / "vm.jsonl")
    assert s2.verbmem == [{"prompt": "Alma", "gt": "Juniper"}]


def test_lm_bench_keeps_the_rows_scored_before_an_interruption(byo, tmp_path, monkeypatch):
    from unlearnkit.lm import LMBenchConfig, run_lm_bench
    from unlearnkit.lm import bench as lm_bench

    root, _ = byo

    def broken(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(lm_bench, "unlearn_lm", broken)
    cfg = LMBenchConfig(
        target_path=str(root / "gpt2"), retain_model_path=str(root / "gpt2-retain"), methods=["ga"],
        forget_jsonl=str(root / "forget.json"), retain_jsonl=str(root / "retain.json"), attacks=False,
        out_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="interrupted"):
        run_lm_bench(cfg)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["retain-only", "original"] and saved["meta"]["partial"]
