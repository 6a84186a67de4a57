"""Continual LM unlearning (O3): orthogonal adapters, the contrastive-entropy OOD detector, gated inference,
sequential baselines and ``lm-continual``, on tiny untrained models."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from unlearnkit.audit.roc import roc_auc  # noqa: E402
from unlearnkit.cli import main  # noqa: E402
from unlearnkit.errors import ConfigError  # noqa: E402
from unlearnkit.lm import TinyLMConfig, build_tiny_lm, save_causal_lm, train_tokenizer  # noqa: E402
from unlearnkit.lm.continual import (  # noqa: E402
    ContinualBenchConfig,
    ContrastiveEntropyDetector,
    DetectorConfig,
    GatedLM,
    O3Config,
    attach_lora,
    benchmark_requests,
    max_subspace_overlap,
    mean_subspace_overlap,
    o3_soft_weight,
    orthogonal_loss,
    train_request_adapter,
)
from unlearnkit.lm.continual.o3 import lora_layers, set_gate  # noqa: E402
from unlearnkit.lm.continual.ood import contrastive_entropy, layer_scores  # noqa: E402
from unlearnkit.lm.continual.routing import REWORDINGS, gate_aurocs, reworded_question  # noqa: E402
from unlearnkit.lm.continual.selection import entity_swaps, parse_search, select_detector  # noqa: E402
from unlearnkit.lm.continual.sequence import (  # noqa: E402
    DETECTOR_SEARCH,
    _refusal_data,
    detector_settings,
    no_retain_hparams,
)
from unlearnkit.lm.data import ATTRIBUTE_KEYS  # noqa: E402
from unlearnkit.lm.encode import prompt_text  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    seq = benchmark_requests(2, 2, n_people=8, n_holdout=2, seed=0)
    s = seq.split
    corpus = [f"{r['question']} {r['answer']}" for r in s.forget + s.retain + s.world]
    tok = train_tokenizer(corpus, vocab_size=300)
    return seq, tok


def _model(tok, arch="gpt2", d_model=16, seed=0):
    return build_tiny_lm(TinyLMConfig(arch=arch, d_model=d_model, n_layers=2, n_heads=2), tok, seed=seed)


def test_orthogonal_loss_is_the_reference_sum(tiny):
    """o_loss = Σ_blocks Σ_modules Σ_{i<k} sum((A_i A_kᵀ)²) / n_blocks (lora_layer_hacked_o.py + modeling_llama)."""
    _, tok = tiny
    model = _model(tok, "llama")
    groups = attach_lora(model, rank=2, alpha=4)
    assert len(groups) == 2 and len(groups[0]) == 7  # q k v o gate up down, as the reference targets
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        for layer in lora_layers(model):
            layer.add_adapter(gen)
    expect = 0.0
    for g in groups:
        for m in g:
            a = [p.detach() for p in m.lora_A]
            expect += sum(float(torch.square(torch.matmul(a[i], a[2].t())).sum()) for i in range(2))
    assert float(orthogonal_loss(groups)) == pytest.approx(expect / 2, rel=1e-6)
    assert [p.requires_grad for p in lora_layers(model)[0].lora_A] == [False, False, True]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_adapters_are_orthogonal_only_with_the_loss(tiny, arch):
    seq, tok = tiny
    overlaps = {}
    for weight in (0.0, 10.0):
        model = _model(tok, arch)
        attach_lora(model, rank=4, alpha=8)
        cfg = O3Config(rank=4, alpha=8, epochs=8, lr=2e-2, batch_size=8, orthogonal_weight=weight)
        for k, qa in enumerate(seq.requests):
            train_request_adapter(model, _refusal_data(tok, qa), cfg, seed=k)
        overlaps[weight] = max_subspace_overlap(model)
    # two random rank-4 subspaces of R^16 overlap by ~r/d = 0.25 on average; the loss drives the overlap to ~0
    assert overlaps[0.0] > 0.2
    assert overlaps[10.0] < 0.05, overlaps


def test_subspace_overlap_is_reported_against_random_subspaces(tiny):
    """Untrained adapters are random subspaces: their mean overlap is near the baseline r/d (rank 4 in R^16 for
    the attention projections, R^64 for the MLP's down projection)."""
    _, tok = tiny
    model = _model(tok, "llama")
    attach_lora(model, rank=4, alpha=8)
    assert all(np.isnan(mean_subspace_overlap(model)))
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for layer in lora_layers(model):
            layer.add_adapter(gen)
    d = [layer.in_features for layer in lora_layers(model)]
    got, rand = mean_subspace_overlap(model)
    assert rand == pytest.approx(float(np.mean([4 / x for x in d])), rel=1e-9)
    assert abs(got - rand) < 0.05, (got, rand)


class _StubDetector:
    def __init__(self, table):
        self.table = table

    def closeness(self, texts):
        return np.array([self.table.get(t, -9.0) for t in texts])


def test_gate_aurocs_rank_the_gate_score_of_each_set():
    forget, retain, unrelated, reworded = ["f1", "f2"], ["r1", "r2"], ["u1", "u2"], ["w1", "w2"]
    a = _StubDetector({"f1": 0.0, "f2": -1.0, "r1": -0.5, "r2": -2.0, "w1": -3.0, "w2": -1.0, "u1": -2.0})
    b = _StubDetector({"f1": -5.0, "r1": -5.0, "w1": -5.0, "u2": -1.5})  # the gate takes the max over detectors
    gated = GatedLM(torch.nn.Identity(), None, [a, b])
    got = gate_aurocs(gated, forget, retain, unrelated, reworded)
    # forget (0, -1) vs retain (-0.5, -2): 3 of 4 pairs; vs unrelated (-2, -1.5): 4/4; reworded (-3, -1): 2/4
    assert got == {"forget_retain": 0.75, "forget_unrelated": 1.0, "reworded_unrelated": 0.5}
    assert np.isnan(gate_aurocs(gated, forget, retain, [], reworded)["forget_unrelated"])
    assert all(np.isnan(v) for v in gate_aurocs(GatedLM(torch.nn.Identity(), None), forget, retain, [], []).values())


def test_detector_search_parses_and_rejects_bad_candidates():
    assert parse_search("1e-3x5, 3e-3x10,") == [(1e-3, 5), (3e-3, 10)]
    assert parse_search("") == []
    for bad in ("1e-3", "ax5", "1e-3x0", "-1x2", "1e-3x2.5"):
        with pytest.raises(ConfigError, match="LRxEPOCHS"):
            DetectorConfig(search=bad)
    assert detector_settings({}) == {"search": DETECTOR_SEARCH}  # a user's model: the search
    assert detector_settings({}, tiny=True) == {"lr": 3e-3, "epochs": 10}
    assert detector_settings({"lr": 1e-5, "epochs": 2}) == {"search": "", "lr": 1e-5, "epochs": 2}
    assert detector_settings({"epochs": 2, "search": "1e-3x5"})["search"] == "1e-3x5"


def test_entity_swaps_change_the_names_and_keep_the_template():
    qs = ["In which year was Bruno Ashgrove born?", "Who is the spouse of Bruno Ashgrove?", "what is two?"]
    got = entity_swaps(qs, ["Zed", "Quill", "Ottar"], seed=0)
    assert len(got) == 2  # no capitalised word after the first: no negative
    for q, swapped in zip(qs, got):
        assert "Bruno" not in swapped and "Ashgrove" not in swapped
        kept = [w for w in q.split()[1:] if not w[0].isupper()]
        assert swapped.split()[0] == q.split()[0] and [w for w in swapped.split()[1:] if not w[0].isupper()] == kept
        assert len(swapped.split()) == len(q.split()) and swapped.endswith("?")
    assert entity_swaps(qs, [], seed=0) == []


class _SearchDetector:
    """Separates only when fitted with lr 1e-2 (closeness 0 for the request's names, -1 else); others score all
    texts alike."""

    def __init__(self, base, tok, cfg, device=None):
        self.cfg = cfg

    def fit(self, prompts, seed=0):
        self.calibration = prompts[:2]
        return self

    def closeness(self, texts):
        if self.cfg.lr == 1e-2:
            return np.array([0.0 if "Bruno" in t else -1.0 for t in texts])
        return np.array([0.0 if self.cfg.lr == 1e-3 else -0.5] * len(texts))


def test_detector_search_keeps_the_candidate_that_separates_calibration_from_swapped_names(tiny, monkeypatch):
    _, tok = tiny
    monkeypatch.setattr("unlearnkit.lm.continual.selection.ContrastiveEntropyDetector", _SearchDetector)
    qs = [f"Which {w} does Bruno Ashgrove have?" for w in ("pet", "hobby", "car", "job", "home")]
    det, sel = select_detector(None, tok, qs, DetectorConfig(search="1e-3x5,1e-2x3,3e-3x10"), seed=0)
    assert (sel.lr, sel.epochs, sel.auroc) == (1e-2, 3, 1.0) and det.cfg.lr == 1e-2 and det.cfg.search == ""
    assert [t[:2] for t in sel.tried] == [(1e-3, 5), (1e-2, 3), (3e-3, 10)]
    assert [t[2] for t in sel.tried] == [0.5, 1.0, 0.5]
    _, fixed = select_detector(None, tok, qs, DetectorConfig(lr=3e-3, epochs=4), seed=0)
    assert (fixed.lr, fixed.epochs, len(fixed.tried)) == (3e-3, 4, 1)


def test_every_benchmark_question_has_a_held_out_rewording(tiny):
    seq, _ = tiny
    assert set(REWORDINGS) == set(ATTRIBUTE_KEYS)
    for r in seq.requests[0]:
        q = reworded_question(r)
        assert r["person"] in q and q != r["question"]
    assert reworded_question({"question": "q", "reworded_question": "other q"}) == "other q"
    assert reworded_question({"question": "q", "attribute": "world", "person": "world"}) is None


def test_soft_weight_matches_reference():
    """Values of eval_o3.py's obtain_weights(x, *weighting_func_gmm(train, test)) (GCYZSL/O3-LLM-UNLEARNING
    839afea, its functions run outside this repository with numpy/scipy/sklearn) for train scores
    [1.0, 1.4, 0.8, 1.2, 1.1], held-out scores [0.7, 0.95, 1.3, 0.6], x on linspace(0, 2, 41)."""
    ref = [0.0] * 11 + [0.3243804585448195] + [0.0] * 4 + [1.2] * 9 + [0.0] * 4 + [0.3019500902512078] + [0.0] * 11
    train, held = np.array([1.0, 1.4, 0.8, 1.2, 1.1]), np.array([0.7, 0.95, 1.3, 0.6])
    ours = [o3_soft_weight(float(x), train.mean(), held.mean(), held.std()) for x in np.linspace(0, 2, 41)]
    assert ours == pytest.approx(ref, rel=1e-9)


def test_contrastive_entropy_and_layer_scores_match_reference():
    """Reference values from ood_model_selector.py (839afea): the entropy loop of RobertaForSelector.forward and
    sample_X_estimator + get_unsup_Mah_score (num_layers set to 2, .cuda() a no-op, an encoder stub returning
    these hidden states with full masks), run outside this repository on the tensors drawn below."""
    g = torch.Generator().manual_seed(0)
    z1 = [torch.randn(4, 6, generator=g) for _ in range(3)]
    z2 = [torch.randn(4, 6, generator=g) for _ in range(3)]
    h_train = [torch.randn(6, 3, 4, generator=g) for _ in range(2)]
    h_test = [torch.randn(3, 3, 4, generator=g) for _ in range(2)]
    assert float(contrastive_entropy(z1, z2)) == pytest.approx(2.480996608734131, rel=1e-5)
    tr = [h.mean(1) for h in h_train]
    te = [h.mean(1) for h in h_test]
    means = [f.mean(0) for f in tr]
    precs = [
        torch.linalg.pinv((((f - m).t() @ (f - m)) / len(f)).double(), hermitian=True).float()
        for f, m in zip(tr, means)
    ]
    feats = [torch.nn.functional.normalize(f, dim=-1) for f in tr]
    ref = [[-688.1937255859375, -670.6849365234375], [50.888797760009766, -707.4854125976562],
           [-313.15216064453125, -838.82421875]]  # fmt: skip
    assert layer_scores(te, means, precs, feats) == pytest.approx(np.array(ref), rel=1e-4, abs=1e-2)


@pytest.fixture(scope="module")
def world_detector(tiny):
    """A detector trained on 28 general-knowledge prompts (the unlearned domain), as the reference's OOD setting
    (one subject forgotten, the others kept)."""
    seq, tok = tiny
    world = [prompt_text(r["question"], tok) for r in seq.split.world]
    base = _model(tok, "llama", d_model=32)
    det = ContrastiveEntropyDetector(base, tok, DetectorConfig(epochs=3, lr=1e-3, batch_size=8)).fit(world[:28])
    return base, det, world[28:], [prompt_text(r["question"], tok) for r in seq.split.retain]


def test_ood_scores_separate_held_out_data(world_detector, tiny):
    seq, tok = tiny
    _, det, held, people = world_detector
    train = [prompt_text(r["question"], tok) for r in seq.split.world[:28]]
    w_train, w_held, w_people = det.weights(train), det.weights(held), det.weights(people)
    a_train, a_held = roc_auc(w_train, w_people), roc_auc(w_held, w_people)
    a_raw = roc_auc(det.closeness(held), det.closeness(people))
    print(f"AUROC unlearned vs kept: training prompts {a_train:.3f}, held-out {a_held:.3f} (closeness {a_raw:.3f})")
    assert a_train > 0.9 and w_train.mean() > 0.8
    assert a_held > 0.5 and w_held.mean() > w_people.mean()
    assert w_people.mean() < 0.2


def test_gated_model_leaves_out_of_distribution_outputs_unchanged(world_detector, tiny):
    seq, tok = tiny
    base, det, held, people = world_detector
    work = __import__("copy").deepcopy(base)
    attach_lora(work, rank=4, alpha=8)
    train_request_adapter(work, _refusal_data(tok, seq.split.world[:28]), O3Config(rank=4, epochs=2, lr=1e-2))
    gated = GatedLM(work, tok, [det])
    prompts = people[:12] + [prompt_text(r["question"], tok) for r in seq.split.world[:4]]
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = gated(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        ref = base(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    w = gated.last_weights
    assert (w == 0).sum() >= 8 and (w[-4:] > 0).all()
    for i in range(len(prompts)):
        same = torch.equal(out[i], ref[i])
        assert same == (w[i] == 0), (i, w[i])
    set_gate(work, 1.0)


def test_baselines_without_retain_switch_the_retain_term_off():
    assert no_retain_hparams("npo") == {"retain_weight": 0.0}
    assert no_retain_hparams("ga") == {}
    assert no_retain_hparams("rmu") == {"alpha": 0.0}
    with pytest.raises(ConfigError, match="--retain"):
        ContinualBenchConfig(request_files=["a.jsonl"], model_path="m")


def test_cli_runs_o3_and_a_baseline_on_a_saved_gpt2(tiny, tmp_path, capsys):
    seq, tok = tiny
    save_causal_lm(_model(tok, "gpt2", d_model=32), tok, tmp_path / "gpt2")
    files = []
    for k, qa in enumerate(seq.requests):
        files.append(tmp_path / f"R{k + 1}.jsonl")
        files[-1].write_text("".join(json.dumps(r) + "\n" for r in qa))
    (tmp_path / "retain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in seq.split.retain[:20]))
    out = tmp_path / "out"
    argv = ["lm-continual", "--model", str(tmp_path / "gpt2"), "--requests", ",".join(map(str, files))]
    argv += ["--retain", str(tmp_path / "retain.jsonl"), "--method", "o3,ga", "--out", str(out), "--no-progress"]
    argv += ["--hp", "o3.epochs=1", "--hp", "ood.epochs=1", "--hp", "ga.epochs=1", "--hp", "ga.lr=1e-3"]
    assert main(argv) == 0
    printed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("after request")]
    assert len(printed) == 2 and "gate AUROC forget/retain" in printed[0] and "random subspaces" in printed[1]
    assert "detector lr 1e-05 × 1 epochs" in printed[0]  # ood.epochs given alone: that setting, no search
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["method"], r["request"]) for r in rows] == [
        ("o3", 0), ("o3", 1), ("o3", 2), ("ga (no retain)", 0), ("ga (no retain)", 1), ("ga (no retain)", 2)
    ]  # fmt: skip
    assert {"forget_acc_R1", "forget_acc_R2", "retain_acc", "gate_forget"} <= set(rows[2])
    assert 0.0 <= rows[2]["gate_auroc_forget_retain"] <= 1.0  # the files bring no world questions: f/u is nan
    assert rows[2]["gate_auroc_forget_unrelated"] is None or np.isnan(rows[2]["gate_auroc_forget_unrelated"])
    assert 0.0 <= rows[2]["subspace_overlap_mean"] <= 1.0 and rows[2]["subspace_overlap_random"] > 0
    assert (out / "results.csv").is_file()
    pytest.importorskip("matplotlib")
    assert (out / "continual.png").stat().st_size > 0
