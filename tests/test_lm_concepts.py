"""Concept vectors: value-vector layouts (Linear and GPT-2 Conv1D), localisation against random vectors of the same
layer, the intrinsic metric on hand-made vectors, and concept-ablation from the CLI and the Python API on a tiny
Llama and a tiny GPT-2."""

import json
import math

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("rouge_score")

import unlearnkit  # noqa: E402
from unlearnkit.cli import main  # noqa: E402
from unlearnkit.errors import ConfigError  # noqa: E402
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
    unlearn_lm,
)
from unlearnkit.lm.concepts import (  # noqa: E402
    ablate_vectors,
    concept_drift,
    locate_concept,
    noise_validation,
    out_projections,
    person_concepts,
    project_out_concept,
    specific_tokens,
    value_vectors,
    vector_drift,
)
from unlearnkit.lm.concepts.validate import answer_logprob  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Llama trained on 8 fictitious people (one forgotten), saved with save_pretrained."""
    torch.set_num_threads(1)
    split = make_benchmark(n_people=8, n_holdout=2, seed=0).split("forget10")
    corpus = [t.get("text") or f"{t['prompt']} {t['target']}" for t in split.train_texts]
    tok = train_tokenizer(corpus, vocab_size=400)
    model = build_tiny_lm(TinyLMConfig(d_model=32, n_layers=2, n_heads=2, max_length=192), tok, seed=0)
    data = encode_texts(tok, split.train_texts, max_length=200)
    train_lm(model, data, LMTrainConfig(epochs=30, lr=1e-2, batch_size=16), seed=0, progress=False)
    root = tmp_path_factory.mktemp("cv")
    save_causal_lm(model.eval(), tok, root / "llama")
    for name, rows in (("forget", split.forget), ("retain", split.retain)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model, tok, split, root


def unrelated(split):
    neigh = {r["person"] for r in split.neighbour}
    return [r for r in split.retain if r["person"] not in neigh]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_value_vectors_are_what_one_mlp_unit_writes(arch):
    """Feeding a one-hot activation e_j through the MLP output projection writes value vector j (+ bias), whether
    the weight is stored (out, in) as nn.Linear or (in, out) as GPT-2's Conv1D."""
    tok = train_tokenizer(["alpha beta gamma delta"] * 4, vocab_size=300)
    model = build_tiny_lm(TinyLMConfig(arch=arch, d_model=16, n_layers=2, n_heads=2), tok, seed=0)
    proj = out_projections(model)[1]
    vecs = value_vectors(proj)
    d_ff = 4 * 16
    assert vecs.shape == (d_ff, 16)
    j = 5
    onehot = torch.zeros(1, d_ff)
    onehot[0, j] = 1.0
    with torch.no_grad():
        out = proj(onehot)[0] - proj(torch.zeros(1, d_ff))[0]
    assert torch.allclose(out, vecs[j], atol=1e-6)


def test_intrinsic_metric_on_hand_made_vectors():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
    before, after = torch.tensor([2.0, 0.5]), torch.tensor([0.0, 3.0])
    # logits before: [2, .5, -2, -.5, 2.5] -> top-2 {4, 0}; after: [0, 3, 0, -3, 3] -> top-2 {1, 4}
    d = vector_drift(before, after, emb, emb, concept_ids=[0, 2], k=2)
    assert d["cosine"] == pytest.approx(1.5 / (math.sqrt(4.25) * 3.0))
    assert d["l2"] == pytest.approx(math.sqrt(4 + 6.25))
    assert d["norm_change"] == pytest.approx((3.0 - math.sqrt(4.25)) / math.sqrt(4.25))
    assert d["jaccard"] == pytest.approx(1 / 3)  # {0,4} vs {1,4}
    assert d["concept_token_rate"] == pytest.approx(0.0)  # token 0 was in the top 2, is no more
    same = vector_drift(before, before, emb, emb, concept_ids=[0], k=2)
    assert same["cosine"] == pytest.approx(1.0) and same["l2"] == 0.0 and same["jaccard"] == 1.0
    assert same["concept_token_rate"] == 1.0
    # the after-projection uses the unlearned model's own embedding, as the reference's forget.py::evaluate
    moved_head = vector_drift(before, before, emb, -emb, k=2)
    assert moved_head["cosine"] == pytest.approx(1.0) and moved_head["jaccard"] == 0.0


def test_intrinsic_metric_agrees_with_the_reference_code():
    """Values computed by ConceptVectors' own ``evaluate_util.py`` (``cosine_similarity``, ``norm_distance``,
    ``jaccard_similarity`` with ``preciser_jaccard=True``; functions extracted unchanged and run outside this
    repository on these tensors; "Wikipedia" tokens = every third token id, top_k = 200 as hard-coded there)."""
    g = torch.Generator().manual_seed(0)
    torch.randn(50, 8, generator=g)  # the reference run drew an unused embedding first
    p1 = torch.randn(8, generator=g)
    p2 = p1 + 0.7 * torch.randn(8, generator=g)
    emb = torch.randn(400, 8, generator=torch.Generator().manual_seed(1))
    d = vector_drift(p1, p2, emb, emb, concept_ids=list(range(0, 400, 3)), k=200)
    assert d["cosine"] == pytest.approx(0.9105691909790039, abs=1e-6)
    assert d["l2"] == pytest.approx(1.0934942960739136, abs=1e-6)
    assert d["jaccard"] == pytest.approx(0.7543859649122807, abs=1e-12)
    assert d["concept_token_rate"] == pytest.approx(0.9436619718309859, abs=1e-12)  # the reference's preciser_jaccard


def test_specific_tokens_and_projection_out_of_a_concept():
    from collections import Counter

    concept = Counter({7: 5, 8: 5, 1: 5})  # 1 is a template token, common in the background too
    background = Counter({1: 50, 2: 50, 8: 0})
    assert specific_tokens(concept, background) == [7, 8]
    emb = torch.randn(10, 6, generator=torch.Generator().manual_seed(0))
    v = torch.randn(6, generator=torch.Generator().manual_seed(1))
    out = project_out_concept(v, emb[[2, 5]])
    assert torch.allclose(emb[[2, 5]] @ out, torch.zeros(2), atol=1e-5)
    assert (emb[[0, 1, 3]] @ out).abs().sum() > 0.1  # other tokens keep a projection


def test_located_vectors_carry_the_concept_random_ones_do_not(trained):
    model, tok, split, _ = trained
    (concept,) = person_concepts(model, tok, split.forget, split.retain, top_n=8)
    assert len(concept.vectors) == 8 and concept.name == split.forget[0]["person"]
    r = noise_validation(model, tok, concept.locations(), split.forget, unrelated(split)[:20], mode="zero", seed=0)
    located = r["concept_logp_before"] - r["concept_logp_after"]
    rand = r["concept_logp_before"] - r["random_concept_logp_after"]
    assert located > 2 * rand and located > 0.03, r
    # the paper's check: the concept's answers change, the unrelated ones far less
    assert r["concept_rouge_vs_clean"] < r["unrelated_rouge_vs_clean"] - 0.1, r
    # the paper's Gaussian noise (std 0.3 here: the tiny model's weights are larger than a 7B model's)
    n = noise_validation(model, tok, concept.locations(), split.forget, [], noise_std=0.3, seed=0)
    assert n["concept_logp_before"] - n["concept_logp_after"] > 2 * (
        n["concept_logp_before"] - n["random_concept_logp_after"]
    )


def test_projection_ranking_and_user_terms(trained):
    model, tok, split, _ = trained
    person = split.forget[0]["person"]
    c = locate_concept(model, tok, terms=[person], top_n=3)
    assert len(c.vectors) == 3 and c.vectors[0].score >= c.vectors[-1].score
    # the best vector's projection puts a token of the name in its top tokens
    name_pieces = {tok.decode([i]).strip() for i in c.token_ids}
    assert any(t.strip() in name_pieces for v in c.vectors for t in v.top_tokens)
    (p,) = person_concepts(model, tok, split.forget, split.retain, top_n=4, rank="projection")
    assert p.token_ids and all(0 <= v.layer < 2 for v in p.vectors)
    with pytest.raises(ConfigError, match="either as terms"):
        locate_concept(model, tok, top_n=3)
    with pytest.raises(ConfigError, match="unknown rank"):
        person_concepts(model, tok, split.forget, split.retain, rank="gpt4")


def test_concept_drift_of_ablation_and_of_fine_tuning(trained):
    model, tok, split, _ = trained
    concepts = person_concepts(model, tok, split.forget, split.retain, top_n=8)
    zeroed = ablate_vectors(__import__("copy").deepcopy(model), concepts[0].locations(), mode="zero")
    d = concept_drift(model, zeroed, concepts, k=20)
    assert d["cv_cosine"] == 0.0 and d["cv_norm_change"] == pytest.approx(-1.0)
    assert d["cv_all_cosine"] > 0.9  # 8 of 256 vectors moved
    ga = unlearn_lm(model, tok, split, "ga", progress=False, probe=False, epochs=2, batch_size=4, lr=3e-3)
    g = concept_drift(model, ga.model, concepts, k=20)
    assert 0.5 < g["cv_cosine"] < 1.0 and g["cv_jaccard"] > d["cv_jaccard"]


def _changed_locations(before, after):
    out = set()
    for ly, (p0, p1) in enumerate(zip(out_projections(before), out_projections(after))):
        diff = (value_vectors(p0) - value_vectors(p1)).abs().sum(1)
        out |= {(ly, int(j)) for j in torch.nonzero(diff).flatten()}
    return out


@pytest.mark.parametrize("mode", ["needle", "zero"])
def test_concept_ablation_api_edits_only_the_located_vectors(trained, mode):
    model, tok, split, _ = trained
    before = answer_logprob(model, tok, split.forget)
    res = unlearnkit.unlearn(
        model, split.forget, split.retain, method="concept-ablation", tokenizer=tok, progress=False, mode=mode,
        top_n=8, epochs=2, batch_size=4, lr=1e-2, noise_std=0.3,
    )  # fmt: skip
    assert res.method == "concept-ablation"
    (concept,) = person_concepts(model, tok, split.forget, split.retain, top_n=8)
    assert _changed_locations(model, res.model) == set(concept.locations())
    sa, sb = model.state_dict(), res.model.state_dict()
    others = [k for k in sa if "down_proj" not in k]
    assert all(torch.equal(sa[k], sb[k]) for k in others)
    assert answer_logprob(res.model, tok, split.forget) < before - 0.05


def test_concept_ablation_cli_on_llama_and_gpt2_and_lm_eval_intrinsic(trained, tmp_path, capsys):
    model, tok, split, root = trained
    gpt2 = build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=32, n_layers=2, n_heads=2, max_length=256), tok, seed=0)
    fast = LMTrainConfig(epochs=3, lr=1e-2, batch_size=16)
    train_lm(gpt2, encode_texts(tok, split.train_texts, 200), fast, progress=False)
    save_causal_lm(gpt2, tok, root / "gpt2", overwrite=True)
    data = ["--forget", str(root / "forget.jsonl"), "--retain", str(root / "retain.jsonl"), "--no-progress"]
    for arch in ("llama", "gpt2"):
        out = tmp_path / f"{arch}-cv"
        hps = ["--hp", "mode=project", "--hp", "top_n=8"]
        assert main(["lm-unlearn", "--model", str(root / arch), "--method", "concept-ablation", *data, *hps,
                     "--out", str(out)]) == 0  # fmt: skip
        original, _ = load_causal_lm(root / arch)
        edited, _ = load_causal_lm(out)
        assert len(_changed_locations(original, edited)) == 8, arch
        assert main(["lm-eval", "--model", str(out), "--intrinsic", str(root / arch), *data,
                     "--out", str(tmp_path / f"{arch}.json")]) == 0  # fmt: skip
        metrics = json.loads((tmp_path / f"{arch}.json").read_text())["metrics"]
        assert metrics["cv_concept_token_rate"] < 0.5 and metrics["cv_n_vectors"] == 8.0, (arch, metrics)
        assert "forget_rouge" in metrics and metrics["cv_cosine"] < 1.0
    assert "cv_cosine" in capsys.readouterr().out
    # lm-concepts: locate and validate in the Llama folder; a user's word in the GPT-2 folder
    assert main(["lm-concepts", "--model", str(root / "llama"), *data[:4], "--validate", "--noise-std", "0.3",
                 "--out", str(tmp_path / "cv.json")]) == 0  # fmt: skip
    (found,) = json.loads((tmp_path / "cv.json").read_text())["concepts"]
    check = found["validation"]
    assert len(found["vectors"]) == 8
    assert check["concept_logp_after"] < check["random_concept_logp_after"] - 0.05, check
    person = split.forget[0]["person"]
    assert main(["lm-concepts", "--model", str(root / "gpt2"), "--concept", person, "--top-n", "3"]) == 0
    assert "layer" in capsys.readouterr().out
    assert main(["lm-concepts", "--model", str(root / "gpt2")]) == 2
    assert "give --concept" in capsys.readouterr().err


def test_lm_bench_intrinsic_columns(trained, tmp_path):
    from unlearnkit.lm import LMBenchConfig, run_lm_bench

    _, _, _, root = trained
    cfg = LMBenchConfig(
        forget_jsonl=str(root / "forget.jsonl"),
        retain_jsonl=str(root / "retain.jsonl"),
        target_path=str(root / "llama"),
        retain_model_path=str(root / "llama"),
        methods=["concept-ablation"],
        hparams={"concept-ablation": {"mode": "zero", "top_n": 8}},
        intrinsic=True,
        attacks=False,
        retain_eval=20,
        progress=False,
        out_dir=str(tmp_path / "bench"),
    )
    table = run_lm_bench(cfg).table
    rows = {r["method"]: r for r in table.rows}
    assert ("cv_cosine", "CV cosine") in list(table.columns)
    assert rows["original"]["cv_cosine"] == pytest.approx(1.0) and rows["original"]["cv_jaccard"] == 1.0
    assert rows["concept-ablation"]["cv_cosine"] == 0.0 and rows["concept-ablation"]["cv_norm_change"] == -1.0
    assert rows["concept-ablation"]["cv_n_vectors"] == 8.0
    assert "cv_concept_token_rate" in (tmp_path / "bench" / "results.csv").read_text()


def test_concept_ablation_on_a_text_corpus_uses_forget_specific_tokens(trained):
    """Raw-text forget data (no QA records): one concept from the tokens far more frequent in the forget text than
    in the retain text, located by vocabulary projection; a user's words instead with ``concept=``."""
    from unlearnkit.lm import LMSplit

    model, tok, split, _ = trained
    person = split.forget[0]["person"]
    bios = [{"text": t} for name, t in split.bios.items() if name == person]
    others = [{"text": t} for name, t in split.bios.items() if name != person]
    text = LMSplit("text", [], [], forget_corpus=bios, retain_corpus=others)
    res = unlearn_lm(model, tok, text, "concept-ablation", progress=False, mode="zero", top_n=5)
    assert len(_changed_locations(model, res.model)) == 5
    words = unlearn_lm(model, tok, text, "concept-ablation", progress=False, mode="zero", top_n=3, concept=person)
    expected = locate_concept(model, tok, terms=[person], top_n=3).locations()
    assert _changed_locations(model, words.model) == set(expected)


def test_needle_keeps_each_vector_within_its_norm(trained):
    """Needle's ascent at a high lr: bounded (default) every located vector keeps at most its norm and the forget
    answers still lose probability; unbounded (``max_norm_ratio=0``, the reference) the vectors grow."""
    from unlearnkit.lm.concepts.locate import out_projections, value_vectors

    model, tok, split, _ = trained
    before = answer_logprob(model, tok, split.forget)
    (concept,) = person_concepts(model, tok, split.forget, split.retain, top_n=8)
    norms = {}
    for ratio in (1.0, 0.0):
        res = unlearnkit.unlearn(
            model, split.forget, split.retain, method="concept-ablation", tokenizer=tok, progress=False,
            mode="needle", top_n=8, epochs=3, batch_size=4, lr=0.5, noise_std=0.0, max_norm_ratio=ratio,
        )  # fmt: skip
        p0, p1 = out_projections(model), out_projections(res.model)
        with torch.no_grad():
            norms[ratio] = [
                (float(value_vectors(p1[ly])[i].norm()), float(value_vectors(p0[ly])[i].norm()))
                for ly, i in concept.locations()
            ]
        if ratio:
            assert answer_logprob(res.model, tok, split.forget) < before - 0.05
    assert all(after <= start * (1 + 1e-5) for after, start in norms[1.0])
    assert any(after > start * 1.5 for after, start in norms[0.0])
