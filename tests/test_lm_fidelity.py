"""Generation and scoring as open-unlearning does them: whole answers (200 new tokens, to EOS), extraction
strength, the privleak fallback, ZLib on the decoded labels; a tokenizer without a pad token; ``max_length`` and
the model's positions."""

import json
import zlib

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("rouge_score")

import unlearnkit  # noqa: E402
from unlearnkit.cli import main  # noqa: E402
from unlearnkit.errors import DataError  # noqa: E402
from unlearnkit.lm import (  # noqa: E402
    LMTrainConfig,
    TinyLMConfig,
    build_tiny_lm,
    compare_to_retain_only,
    measure_lm,
    save_causal_lm,
    train_lm,
    train_tokenizer,
)
from unlearnkit.lm.data import LMSplit  # noqa: E402
from unlearnkit.lm.encode import IGNORE, encode_qa, token_ids  # noqa: E402
from unlearnkit.lm.evaluate import LMEvaluation, mia_scores  # noqa: E402
from unlearnkit.lm.formats import normalise_qa  # noqa: E402
from unlearnkit.lm.generate import row_greedy_predictions, row_token_stats  # noqa: E402
from unlearnkit.lm.metrics import extraction_strength  # noqa: E402

WORDS = [
    "amber",
    "river",
    "lantern",
    "quiet",
    "violet",
    "harbour",
    "copper",
    "meadow",
    "falcon",
    "silver",
    "orchard",
    "thunder",
]


@pytest.fixture(scope="module")
def verbatim():
    """A tiny GPT-2 that reproduces a 60-token answer verbatim, with a tokenizer that has no pad token (as
    GPT-2's own, loaded with from_pretrained)."""
    torch.manual_seed(0)
    tok = train_tokenizer(["Question: Who is Alma Brightwater? Answer: a person", "Who keeps the lighthouse?"], 300)
    tok.pad_token = None
    words: list[str] = []
    while len(token_ids(tok, " " + " ".join(words))) < 60:
        words.append(WORDS[(len(words) * 7) % len(WORDS)])
    rows = [
        {"question": "Who is Alma Brightwater?", "answer": " ".join(words), "value": words[-1]},
        {"question": "Who keeps the lighthouse?", "answer": "Nobody keeps it.", "value": "Nobody"},
        {"question": "Who rows the boat?", "answer": "Only amber rows.", "value": "amber"},
    ]
    qa = normalise_qa(rows, "qa")
    model = build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=64, n_layers=2, n_heads=2), tok, seed=0)
    train_lm(model, encode_qa(tok, qa), LMTrainConfig(epochs=100, lr=4e-3, batch_size=3), progress=False)
    return model, tok, qa


def test_a_verbatim_60_token_answer_scores_rouge_1(verbatim):
    model, tok, qa = verbatim
    assert tok.pad_token_id is None and len(token_ids(tok, " " + qa[0]["answer"])) >= 60
    verbmem = [{"prompt": "Question: Who is Alma Brightwater?\nAnswer:", "gt": " " + qa[0]["answer"]}]
    split = LMSplit("t", qa[:1], qa[1:], verbmem=verbmem)
    with pytest.warns(UserWarning, match="no perturbed answers"):
        ev = measure_lm(model, tok, split)
    assert ev.metrics["forget_verbmem_es"] == 1.0 and ev.metrics["forget_verbmem"] == 1.0  # MUSE's ES and VerbMem
    assert ev.generations["forget"] == [qa[0]["answer"]]
    assert ev.metrics["forget_rouge"] == 1.0 and ev.metrics["forget_acc"] == 1.0
    assert ev.metrics["forget_es"] == 1.0
    assert ev.settings == {"max_new_tokens": 200, "max_length": 256}
    with pytest.warns(UserWarning):
        short = measure_lm(model, tok, split, max_new_tokens=24)
    assert short.metrics["forget_rouge"] < 0.6 and short.settings["max_new_tokens"] == 24
    assert tok.pad_token_id is None  # the user's tokenizer is left as it was


def test_unlearn_works_with_a_tokenizer_without_pad_token(verbatim):
    model, tok, qa = verbatim
    hps = {"epochs": 1, "batch_size": 2, "lr": 1e-3}
    res = unlearnkit.unlearn(model, qa[:1], qa[1:], method="npo", tokenizer=tok, progress=False, **hps)
    assert not torch.equal(res.model.lm_head.weight, model.lm_head.weight) and tok.pad_token_id is None


def test_rows_beyond_the_models_positions_are_a_project_error_and_max_length_is_honoured(verbatim, tmp_path, capsys):
    _, tok, qa = verbatim
    small = build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=32, n_layers=1, n_heads=2, max_length=48), tok, seed=0)
    split = LMSplit("t", qa[:1], qa[1:])
    with pytest.raises(DataError, match="exceed the model's 48 positions"):
        measure_lm(small, tok, split)
    with pytest.raises(DataError, match="48 positions"):
        unlearnkit.unlearn(small, qa[:1], qa[1:], method="ga", tokenizer=tok, progress=False)
    with pytest.raises(DataError, match="training rows of .* exceed the model's 48 positions"):
        train_lm(small, encode_qa(tok, qa), LMTrainConfig(epochs=1), progress=False)
    with pytest.warns(UserWarning):
        ev = measure_lm(small, tok, split, max_length=48)
    assert ev.settings["max_length"] == 48 and 0 <= ev.metrics["forget_rouge"] <= 1
    save_causal_lm(small, tok, tmp_path / "m")
    (tmp_path / "f.json").write_text(json.dumps({k: qa[0][k] for k in ("question", "answer")}) + "\n")
    (tmp_path / "r.json").write_text(json.dumps({k: qa[1][k] for k in ("question", "answer")}) + "\n")
    data = ["--forget", str(tmp_path / "f.json"), "--retain", str(tmp_path / "r.json"), "--no-progress"]
    base = ["lm-eval", "--model", str(tmp_path / "m"), *data]
    assert main(base) == 2
    assert "48 positions" in capsys.readouterr().err
    out = tmp_path / "m.json"
    with pytest.warns(UserWarning):
        assert main([*base, "--max-length", "48", "--max-new-tokens", "5", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["settings"] == {"max_new_tokens": 5, "max_length": 48}


def _reference_extraction_strength(preds: torch.Tensor, labels: torch.Tensor) -> float:
    # open-unlearning src/evals/metrics/memorization.py, extraction_strength, written out again
    valid_len = len(labels)
    k = 0
    for k in range(valid_len):
        if torch.equal(preds[k:], labels[k:]):
            break
    return 0 if valid_len == 0 else 1 - (k / valid_len)


def test_extraction_strength_matches_the_reference_formula(verbatim):
    rng = np.random.default_rng(0)
    cases = [([], []), ([1], [1]), ([2], [1]), ([1, 2, 3], [1, 2, 3]), ([0, 2, 3], [1, 2, 3]), ([1, 2, 0], [1, 2, 3])]
    for _ in range(200):
        n = int(rng.integers(1, 12))
        y = rng.integers(0, 3, n)
        cases.append((np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n)).tolist(), y.tolist()))
    for p, y in cases:
        want = _reference_extraction_strength(torch.tensor(p, dtype=torch.long), torch.tensor(y, dtype=torch.long))
        assert extraction_strength(p, y) == pytest.approx(want, abs=1e-6), (p, y)
    # the model's predictions as the reference takes them: labelled positions, the EOS prediction left out
    model, tok, qa = verbatim
    data = encode_qa(tok, qa)
    logits = model(input_ids=data.input_ids, attention_mask=data.attention_mask).logits
    for j, (pred, lab) in enumerate(row_greedy_predictions(model, data)):
        idx = (data.labels[j] != IGNORE).nonzero().flatten()[:-1]
        ref_preds = logits[j, idx[0] - 1 : idx[-1]].argmax(-1)
        assert torch.equal(pred, ref_preds) and torch.equal(lab, data.labels[j][idx])


def test_privleak_without_retain_model_falls_back_to_auc_one_half_as_the_reference():
    for auc_u in (0.93, 0.5, 0.21):
        ev = LMEvaluation({"mia_mink": auc_u})
        got = compare_to_retain_only(ev)
        score, ref = 1 - auc_u, 1 - 0.5  # open-unlearning src/evals/metrics/privacy.py with ref_value 0.5
        assert got["privleak"] == pytest.approx((score - ref) / (ref + 1e-10) * 100, abs=1e-6)
        assert got["privleak_reference"].startswith("auc=0.5") and np.isnan(got["forget_quality"])
    with_ref = compare_to_retain_only(LMEvaluation({"mia_mink": 0.9}), LMEvaluation({"mia_mink": 0.6}))
    assert with_ref["privleak_reference"] == "retain-only"
    assert with_ref["privleak"] == pytest.approx(((1 - 0.9) - (1 - 0.6)) / ((1 - 0.6) + 1e-10) * 100, abs=1e-6)


def test_zlib_compresses_the_decoded_label_tokens_as_the_reference(verbatim):
    model, tok, qa = verbatim
    got = mia_scores(model, tok, qa)["zlib"]
    data = encode_qa(tok, qa)
    for j, stats in enumerate(row_token_stats(model, data)):
        labels = data.labels[j]
        text = tok.decode(labels[labels != IGNORE].tolist(), skip_special_tokens=True)  # ZLIBAttack's text
        avg_loss = -float(stats["logp"].double().mean())
        assert got[j] == pytest.approx(-avg_loss / len(zlib.compress(text.encode("utf-8"))), abs=1e-6)
        assert text != qa[j]["answer"]  # the decoded labels keep the leading space: not the raw answer


def test_a_ga_update_with_accumulation_equals_the_full_batch_update(verbatim):
    model, tok, qa = verbatim
    rows = [*qa, {**qa[1], "answer": "No."}]  # answers of 60, 5, 5 and 2 tokens: uneven micro-batches
    hps = {"epochs": 1, "batch_size": 4, "lr": 0.5, "optimizer": "sgd", "weight_decay": 0.0, "grad_clip": 1e9}
    runs = {
        n: unlearnkit.unlearn(model, rows, rows, method="ga", tokenizer=tok, progress=False, grad_accum=n, **hps).model
        for n in (1, 2, 4)
    }
    start = model.lm_head.weight
    for n in (2, 4):
        got, want = runs[n].state_dict(), runs[1].state_dict()
        assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want), n
    assert not torch.allclose(runs[1].lm_head.weight, start, atol=1e-4)


def test_data_parallel_chunks_average_to_the_full_batch_ga_gradient(verbatim):
    from unlearnkit.lm.losses import nll
    from unlearnkit.lm.parallel import ProcessShard

    model, tok, qa = verbatim
    batch = encode_qa(tok, [*qa, {**qa[1], "answer": "No."}]).tensors()

    def grad(loss, b):
        model.zero_grad()
        loss(model, b).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    def ga(m, b):
        return -nll(m, b)

    full = grad(ga, batch)
    per_process = []
    for k in range(2):  # what each of two processes computes; DDP averages their gradients
        shard = ProcessShard([batch], 2, k, "tokens")
        chunk = next(iter(shard))
        per_process.append(grad(shard.scaled(ga), chunk))
    assert torch.allclose((per_process[0] + per_process[1]) / 2, full, atol=1e-6)
    model.zero_grad()
