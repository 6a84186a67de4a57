"""The audits on tiny digits models: U-LiRA, ε runs, worst-case forget sets, relearning and tuning."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import unlearnkit as uk
from unlearnkit.audit import (
    ForgetContext,
    epsilon_score,
    method_runs,
    relearn_attack,
    resolve_k,
    retrain_runs,
    train_shadow_pairs,
    tune_hparams,
    ulira,
    worst_case_forget_set,
)
from unlearnkit.audit.common import train_fresh
from unlearnkit.engine import Recipe
from unlearnkit.errors import ConfigError, ForgetSpecError

RECIPE = Recipe(epochs=15, lr=0.05, batch_size=64, schedule="cosine")


@pytest.fixture(scope="session")
def bundle() -> uk.DatasetBundle:
    return uk.load_dataset("digits")


@pytest.fixture(scope="session")
def factory(bundle):
    return lambda: uk.create_model("mlp", bundle.input_shape, bundle.num_classes, hidden=(64,))


@pytest.fixture(scope="session")
def mlp_original(bundle, factory) -> torch.nn.Module:
    return train_fresh(factory, bundle.train, RECIPE, 0)


@pytest.fixture(scope="session")
def split(bundle) -> uk.ForgetSplit:
    return uk.parse_forget("random:100", bundle.train.y, seed=0)


@pytest.fixture(scope="session")
def shadows(bundle, factory):
    return train_shadow_pairs(
        bundle.train, model_factory=factory, recipe=RECIPE, n_pairs=6, n_targets=200, num_classes=10, progress=False
    )


def test_ulira_is_at_chance_for_retrain_and_wins_against_the_original(shadows):
    retrain = ulira("retrain", shadows, progress=False)
    original = ulira("original", shadows, progress=False)
    assert 42 <= retrain.auc <= 58, retrain
    assert original.auc >= 60 and original.auc > retrain.auc + 8, original
    assert original.accuracy > retrain.accuracy
    assert retrain.n_pairs == 6 and retrain.n_targets == 200
    assert 0 <= original.tpr_at_01pct_fpr <= original.tpr_at_1pct_fpr <= 100


def test_ulira_rejects_too_few_pairs(bundle, factory):
    with pytest.raises(ConfigError, match="at least 3 shadow pairs"):
        train_shadow_pairs(bundle.train, model_factory=factory, recipe=RECIPE, n_pairs=2)


def test_epsilon_runs_rank_retrain_above_the_original(bundle, factory, mlp_original, split):
    forget, retain = split.forget(bundle.train), split.retain(bundle.train)
    ref = retrain_runs(retain, forget, bundle.test, model_factory=factory, recipe=RECIPE, n_runs=4)
    again = retrain_runs(retain, forget, bundle.test, model_factory=factory, recipe=RECIPE, n_runs=4, seed=50)
    orig = method_runs(
        "original", mlp_original, forget, retain, bundle.test, model_factory=factory, recipe=RECIPE, n_runs=4
    )
    assert ref.phi.shape == (4, len(forget))
    fair = epsilon_score(again.phi, ref.phi, ra_unlearned=again.ra, ra_retrain=ref.ra)
    unfair = epsilon_score(orig.phi, ref.phi, ra_unlearned=orig.ra, ra_retrain=ref.ra)
    assert fair.forget_quality > unfair.forget_quality
    assert fair.mean_epsilon < unfair.mean_epsilon


def test_worst_case_set_is_harder_to_forget_than_a_random_one(bundle, mlp_original, split):
    before = copy.deepcopy(mlp_original.state_dict())
    res = worst_case_forget_set(mlp_original, bundle.train, 100, method="ft", outer_steps=6, progress=False)
    assert all(torch.equal(v, mlp_original.state_dict()[k]) for k, v in before.items())  # model untouched
    assert len(res.indices) == 100 and len(np.unique(res.indices)) == 100
    assert res.weights.sum() == pytest.approx(100, abs=1e-4) and res.weights.min() >= 0 and res.weights.max() <= 1

    def ua(idx):  # forget error after fine-tuning on the rest: lower = harder to forget
        rest = np.setdiff1d(np.arange(len(bundle.train)), idx)
        forget, retain = bundle.train.subset(idx), bundle.train.subset(rest)
        out = uk.unlearn(mlp_original, forget, retain, "ft", epochs=2, progress=False)
        return float((out.model(forget.x).argmax(1) != forget.y).float().mean())

    assert ua(res.indices) <= ua(split.forget_idx)


def test_worst_spec_goes_through_parse_forget_and_bench(bundle, mlp_original, tmp_path):
    with pytest.raises(ForgetSpecError, match="needs the original model"):
        uk.parse_forget("worst:ft:20", bundle.train.y)
    with pytest.raises(ForgetSpecError, match="worst:<method>:<K>"):
        uk.parse_forget("worst:20", bundle.train.y, context=ForgetContext(mlp_original, bundle.train))
    ctx = ForgetContext(mlp_original, bundle.train, 10, progress=False)
    sp = uk.parse_forget("worst:ga:0.02", bundle.train.y, context=ctx)
    assert len(sp.forget_idx) == round(0.02 * len(bundle.train))
    from unlearnkit.bench import BenchConfig, run_bench

    cfg = BenchConfig(
        model="mlp",
        model_kwargs={"hidden": [32]},
        forget="worst:ft:30",
        methods=["ft"],
        recipe=Recipe(epochs=3, lr=0.05, batch_size=64),
        cache_dir=str(tmp_path / "cache"),
        progress=False,
        mia=False,
    )
    run = run_bench(cfg)
    assert len(run.split.forget_idx) == 30 and [r["method"] for r in run.table.rows] == ["retrain", "original", "ft"]


def test_relearning_brings_back_knowledge_faster_than_after_retraining(bundle, factory, mlp_original, split):
    forget, retain = split.forget(bundle.train), split.retain(bundle.train)
    ga = uk.unlearn(mlp_original, forget, retain, "ga", lr=0.05, epochs=10, progress=False).model
    retrained = train_fresh(factory, retain, RECIPE, 3)
    curves = relearn_attack({"ga": ga, "retrain": retrained}, forget, slice_size=20, steps=5, lr=0.05)
    assert len(curves["ga"].accuracy) == 6 and curves["ga"].heldout_size == 80
    ga_acc, rt_acc = curves["ga"].accuracy, curves["retrain"].accuracy
    assert ga_acc[0] < 60  # GA hid the forget set ...
    assert ga_acc[-1] > ga_acc[0] + 20  # ... and five steps on 20 of its examples bring the rest back
    assert abs(rt_acc[-1] - rt_acc[0]) < 10  # after retraining there was nothing hidden to bring back
    assert curves["ga"].steps_to(ga_acc[0] + 20) is not None and curves["ga"].area > ga_acc[0]
    near = relearn_attack({"ga": ga}, forget, slice_size=20, steps=5, lr=0.05, source="neighbours", retain=retain)
    assert near["ga"].slice_size <= 20 and near["ga"].accuracy[-1] > near["ga"].accuracy[0]
    with pytest.raises(ConfigError, match="needs the retain set"):
        relearn_attack({"ga": ga}, forget, source="neighbours")


def test_classwise_default_k_reads_relearning_before_retrain_learns_the_class(bundle, factory, mlp_original):
    split = uk.parse_forget("class:3", bundle.train.y, seed=0)
    forget, retain = split.forget(bundle.train), split.retain(bundle.train)
    k = resolve_k(None, 10, forget.y, retain.y).k
    retrained = train_fresh(factory, retain, RECIPE, 3)
    curves = relearn_attack({"original": mlp_original, "retrain": retrained}, forget, steps=10, lr=0.05)
    original, retrain = curves["original"], curves["retrain"]
    assert original.accuracy_at(k) - retrain.accuracy_at(k) > 50  # the default k separates them ...
    assert original.accuracy_at(10) - retrain.accuracy_at(10) < 10  # ... all 10 steps would not: the class is back


def test_tuning_never_returns_a_worse_gap_than_the_defaults(bundle, factory, mlp_original, split):
    retain = split.retain(bundle.train)
    res = tune_hparams(
        "ga",
        mlp_original,
        retain,
        bundle.test,
        forget_size=100,
        model_factory=factory,
        recipe=RECIPE,
        n_trials=5,
        num_classes=10,
        progress=False,
        mia=False,
    )
    assert res.n_trials == 5
    assert res.trials[0]["lr"] == pytest.approx(1e-4) and res.trials[0]["value"] == pytest.approx(res.default_value)
    assert res.best_value <= res.default_value
    assert res.best_value == pytest.approx(min(t["value"] for t in res.trials))
    assert set(res.best_hparams) >= {"lr", "epochs", "seed"}
    with pytest.raises(ConfigError, match="no hyper-parameter"):
        tune_hparams(
            "ga",
            mlp_original,
            retain,
            bundle.test,
            forget_size=100,
            model_factory=factory,
            recipe=RECIPE,
            params=["mask_ratio"],
            n_trials=1,
        )


def test_tuning_for_the_epsilon_score_keeps_the_defaults_as_a_floor(bundle, factory, mlp_original, split):
    res = tune_hparams(
        "ga",
        mlp_original,
        split.retain(bundle.train),
        bundle.test,
        forget_size=60,
        model_factory=factory,
        recipe=RECIPE,
        n_trials=3,
        objective="epsilon",
        eps_runs=3,
        num_classes=10,
        progress=False,
    )
    assert res.objective == "epsilon" and -1.0 <= res.best_value <= res.default_value <= 0.0
    with pytest.raises(ConfigError, match="unknown objective"):
        tune_hparams(
            "ga",
            mlp_original,
            split.retain(bundle.train),
            bundle.test,
            forget_size=60,
            model_factory=factory,
            recipe=RECIPE,
            objective="auc",
        )
