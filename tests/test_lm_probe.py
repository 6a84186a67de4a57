"""The held-out target of LM unlearning (unlearnkit.lm.probe): the probe stops when the forget answers are as
likely as never-seen people's, hands back its best state, and rolls back from a collapse of the retained answers."""

import pytest
import torch

pytest.importorskip("transformers")

from unlearnkit.engine import Phase, Recipe, train  # noqa: E402
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
from unlearnkit.lm.encode import LMBatches  # noqa: E402
from unlearnkit.lm.losses import nll  # noqa: E402
from unlearnkit.lm.probe import LMProbe, answer_scores, lm_target, perturbed_rows  # noqa: E402


@pytest.fixture(scope="module")
def small_lm():
    torch.set_num_threads(1)
    split = make_benchmark(n_people=8, n_holdout=2, seed=0).split("forget10")  # one person forgotten: 10 QA
    corpus = [t.get("text") or f"{t['prompt']} {t['target']}" for t in split.train_texts]
    tok = train_tokenizer(corpus, vocab_size=400)
    model = build_tiny_lm(TinyLMConfig(d_model=32, n_layers=2, n_heads=2, max_length=192), tok, seed=0)
    data = encode_texts(tok, split.train_texts, max_length=192)
    train_lm(model, data, LMTrainConfig(epochs=12, lr=1e-2, batch_size=16), seed=0, progress=False)
    return model, tok, split


def forget_prob(model, tok, rows) -> float:
    return 100.0 * float(answer_scores(model, encode_qa(tok, rows))[0].mean())


def test_probe_stops_at_the_heldout_level_and_keeps_that_state(small_lm):
    """Gradient ascent on the forget answers, probed against the held-out people (retain guard off): the run stops
    as soon as the forget answers are no likelier than the never-seen people's (within the probe's tolerance), long
    before its budget, and the model handed back is that state; without the probe the same budget goes far below
    the held-out level."""
    import copy

    original, tok, split = small_lm
    spec = lm_target(tok, split.forget, split.retain, split.holdout)
    assert spec is not None and spec.source == "heldout"
    recipe = Recipe(epochs=40, lr=2e-3, optimizer="adamw", weight_decay=0.0, batch_size=5)

    def run(hooks):
        model = copy.deepcopy(original)
        batches = LMBatches([encode_qa(tok, split.forget)], 5, seed=0)
        log = train(model, Phase("ga", batches, lambda m, b: -nll(m, b)), recipe, hooks=hooks, progress=False)
        return model, log

    probe = LMProbe(spec, original, torch.device("cpu"), collapse_tolerance=100.0, rollback_drop=100.0)
    model, log = run([probe])
    start, last = probe.trace[0], probe.trace[-1]
    assert start["forget_prob"] - start["target_prob"] > 20  # the original knows the forget people
    assert log.stopped == "target reached" and probe.stopped == "target reached"
    assert log.steps < 0.5 * recipe.epochs * 2, f"stopped only after {log.steps} steps"
    assert last["forget_prob"] - last["target_prob"] <= last["tolerance"]
    best = next(c for c in probe.trace if c["step"] == probe.best_step)  # the state handed back
    assert best["distance"] == min(c["distance"] for c in probe.trace)
    assert forget_prob(model, tok, split.forget) == pytest.approx(best["forget_prob"], abs=0.01)
    full, full_log = run([])
    assert full_log.stopped is None
    assert forget_prob(full, tok, split.forget) < 0.5 * last["target_prob"]  # the whole budget overshoots


def test_collapse_is_rolled_back_and_never_handed_back(small_lm):
    """A huge learning rate wrecks the retained answers at the first step: the probe rolls back to the best state
    with half the rate each time, stops after its rollbacks, and hands back the original's weights (no kept state
    ever had the retained answers)."""
    original, tok, split = small_lm
    res = unlearn_lm(original, tok, split, "ga", progress=False, lr=1.0, epochs=3, batch_size=4)
    probe = res.report["probe"]
    assert probe["target"]["source"] == "heldout"
    assert probe["rollbacks"] == 3 and probe["stopped"] == "collapse"
    assert [c.get("action") for c in probe["checks"][1:]] == ["rollback"] * 3
    assert probe["best_step"] == 0
    before, after = original.state_dict(), res.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    unprobed = unlearn_lm(original, tok, split, "ga", progress=False, lr=1.0, epochs=3, batch_size=4, probe=False)
    assert "probe" not in unprobed.report
    assert not all(torch.equal(before[k], v) for k, v in unprobed.model.state_dict().items())


def test_without_heldout_rows_the_perturbed_answers_are_the_weaker_target(small_lm):
    original, tok, split = small_lm
    rows = perturbed_rows(split.forget)
    assert len(rows) == 3 * len(split.forget)
    spec = lm_target(tok, split.forget, split.retain, [])
    assert spec is not None and spec.source == "perturbed" and spec.to_dict()["weaker"]
    # the wrong answers are unlikelier than the true ones under the original, so this level asks for forgetting
    assert forget_prob(original, tok, rows) < forget_prob(original, tok, split.forget) - 10
    bare = [{"question": r["question"], "answer": r["answer"]} for r in split.forget]
    assert lm_target(tok, bare, split.retain, None) is None


def test_unlearn_takes_heldout_rows_and_stop(small_lm):
    """``unlearnkit.unlearn(..., heldout=...)`` probes against the given people; without them (plain QA lists carry
    no holdout) nothing is probed unless ``stop="target"`` asks for the weaker perturbed-answer target;
    ``stop="budget"`` turns the probe off."""
    import unlearnkit

    original, tok, split = small_lm
    kw = dict(tokenizer=tok, method="ga", epochs=1, lr=1e-4, batch_size=8, progress=False)
    given = unlearnkit.unlearn(original, split.forget, split.retain, heldout=split.holdout, **kw)
    assert given.report["probe"]["target"]["source"] == "heldout"
    assert given.report["probe"]["target"]["target_rows"] == len(split.holdout)
    assert "probe" not in unlearnkit.unlearn(original, split.forget, split.retain, **kw).report  # no held-out rows
    weaker = unlearnkit.unlearn(original, split.forget, split.retain, stop="target", **kw)
    assert weaker.report["probe"]["target"]["source"] == "perturbed"
    assert "probe" not in unlearnkit.unlearn(original, split.forget, split.retain, stop="budget", **kw).report


@pytest.mark.slow
def test_tiny_model_defaults_forget_without_collapse(tmp_path):
    """The tiny-model defaults (``TINY_HPARAMS``), probed against the benchmark's never-trained people, on a
    12-person benchmark (tiny Llama trained 40 epochs, about 1 min on an idle core): SimNPO and IdkDPO reach the
    acceptance (forget accuracy ≤ retain-only + 0.1, retain ≥ 0.8 × the original's); RMU and concept ablation
    forget at least half of the forget answers the original gives and keep the retain bound (on 10 forget questions
    they stop one question above the forget bound; benchmarks/RESULTS.md has the 30-person figures)."""
    from unlearnkit.lm import LMBenchConfig, train_pair
    from unlearnkit.lm.bench import TINY_HPARAMS, load_split, qa_accuracy

    torch.set_num_threads(1)
    cfg = LMBenchConfig(
        n_people=12,
        n_holdout=4,
        n_readers=0,
        train=LMTrainConfig(epochs=40),
        methods=[],
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    split = load_split(cfg)
    pair = train_pair(cfg, split)
    retain = split.retain_eval(100)
    f0 = qa_accuracy(pair.original, pair.tokenizer, split.forget)
    r0 = qa_accuracy(pair.original, pair.tokenizer, retain)
    ro = qa_accuracy(pair.retain_only, pair.tokenizer, split.forget)
    assert f0 >= ro + 0.3  # the original knows the forget people
    for method in ("simnpo", "idk-dpo", "rmu", "concept-ablation"):
        res = unlearn_lm(pair.original, pair.tokenizer, split, method, progress=False, **TINY_HPARAMS.get(method, {}))
        assert res.report["probe"]["target"]["source"] == "heldout"
        f, r = qa_accuracy(res.model, pair.tokenizer, split.forget), qa_accuracy(res.model, pair.tokenizer, retain)
        assert r >= 0.8 * r0, f"{method}: retain {r:.3f} below 0.8 x {r0:.3f}"
        bound = ro + 0.1 if method in ("simnpo", "idk-dpo") else f0 / 2
        assert f <= bound + 1e-9, f"{method}: forget {f:.3f} above {bound:.3f}"
