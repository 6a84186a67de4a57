"""Regression: the diabetes dataset, regression metrics, the regression methods, and every new method
through ``bench`` and the command line."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import unlearnkit as uk
from unlearnkit.bench import BenchConfig, run_bench
from unlearnkit.cli import main
from unlearnkit.errors import ConfigError
from unlearnkit.methods.gaussian_amnesiac import gaussian_targets
from unlearnkit.metrics.regression import REGRESSION_HEADLINE, mean_absolute_error, r2_score
from unlearnkit.training import default_recipe

from .conftest import state_equal


@pytest.fixture(scope="session")
def diabetes() -> uk.DatasetBundle:
    return uk.load_dataset("diabetes")


@pytest.fixture(scope="session")
def reg_split(diabetes) -> uk.ForgetSplit:
    return uk.parse_forget("random:0.1", np.zeros(len(diabetes.train)), seed=0)


@pytest.fixture(scope="session")
def regressor(diabetes) -> torch.nn.Module:
    torch.manual_seed(0)
    model = uk.create_model("mlp", diabetes.input_shape, diabetes.output_dim)
    uk.train_model(model, diabetes.train, default_recipe("diabetes"), task="regression", seed=0, progress=False)
    return model


def _metrics(model, diabetes, split):
    return uk.evaluate(
        model,
        forget=split.forget(diabetes.train),
        retain=split.retain(diabetes.train),
        test=diabetes.test,
        task="regression",
    ).metrics


def test_diabetes_is_standardised_regression(diabetes):
    assert diabetes.task == "regression" and diabetes.output_dim == 1 and diabetes.input_shape == (10,)
    assert len(diabetes.train) == 353 and len(diabetes.test) == 89
    x, y = diabetes.train.x, diabetes.train.y
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    assert torch.allclose(x.mean(0), torch.zeros(10), atol=1e-5) and torch.allclose(
        x.std(0, unbiased=False), torch.ones(10), atol=1e-4
    )
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.std(unbiased=False)) - 1) < 1e-4
    assert torch.equal(uk.load_dataset("diabetes").test.y, diabetes.test.y)  # fixed split


def test_regression_metric_functions():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert mean_absolute_error(y, y) == 0.0 and r2_score(y, y) == 1.0
    assert r2_score(torch.full((4,), 2.5), y) == 0.0
    assert mean_absolute_error(y + 0.5, y) == pytest.approx(0.5)
    assert np.isnan(r2_score(torch.ones(1), torch.ones(1)))


def test_evaluate_regression_headline_and_gaps(regressor, diabetes, reg_split):
    ev = uk.evaluate(
        regressor,
        forget=reg_split.forget(diabetes.train),
        retain=reg_split.retain(diabetes.train),
        test=diabetes.test,
        task="regression",
        reference=regressor,
    )
    assert set(REGRESSION_HEADLINE) <= set(ev.metrics)
    assert ev.avg_gap == 0.0 and 0 <= ev.mia <= 100
    assert ev.retain_r2 > 50 and ev.retain_mae < ev.test_mae  # the original fits its training data


@pytest.mark.parametrize(
    "name,hps",
    [("blindspot", {}), ("gaussian-amnesiac", {}), ("ga", {"epochs": 3, "lr": 2e-2}), ("iu", {"samples": 200})],
)
def test_regression_method_raises_forget_error_more_than_retain(name, hps, regressor, diabetes, reg_split):
    before = copy.deepcopy(regressor)
    res = uk.unlearn(
        regressor,
        reg_split.forget(diabetes.train),
        reg_split.retain(diabetes.train),
        name,
        task="regression",
        progress=False,
        **hps,
    )
    assert state_equal(regressor, before)
    m0, m1 = _metrics(regressor, diabetes, reg_split), _metrics(res.model, diabetes, reg_split)
    forget_up = m1["forget_mae"] - m0["forget_mae"]
    retain_up = m1["retain_mae"] - m0["retain_mae"]
    assert forget_up > 3 and forget_up > retain_up and retain_up < 10


def test_ft_and_retrain_work_for_regression(regressor, diabetes, reg_split):
    f, r = reg_split.forget(diabetes.train), reg_split.retain(diabetes.train)
    m0 = _metrics(regressor, diabetes, reg_split)
    ft = uk.unlearn(regressor, f, r, "ft", task="regression", progress=False, epochs=2, lr=1e-3).model
    assert _metrics(ft, diabetes, reg_split)["retain_mae"] < m0["retain_mae"] + 5
    rec = default_recipe("diabetes").to_dict()
    hps = {k: rec[k] for k in ("epochs", "lr", "optimizer", "weight_decay", "batch_size", "schedule")}
    fresh = uk.unlearn(regressor, f, r, "retrain", task="regression", progress=False, **hps).model
    m = _metrics(fresh, diabetes, reg_split)
    assert m["forget_mae"] > m["retain_mae"] + 10  # the retrained model never saw the forget set


def test_gaussian_targets_follow_the_target_distribution():
    t = torch.randn(5000) * 2 + 3
    draws = gaussian_targets(t, 20000, seed=1)
    assert abs(float(draws.mean()) - 3) < 0.1 and abs(float(draws.std()) - 2) < 0.1
    assert torch.equal(draws, gaussian_targets(t, 20000, seed=1))


def test_regression_methods_reject_classification(original, digits, random_split):
    for name in ("blindspot", "gaussian-amnesiac"):
        with pytest.raises(ConfigError, match="supports"):
            uk.unlearn(original, random_split.forget(digits.train), random_split.retain(digits.train), name)


def test_bench_diabetes_defaults_to_regression_methods(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    cfg = BenchConfig(dataset="diabetes", model="mlp", cache_dir=str(cache), progress=False, budget="published")
    run = run_bench(cfg)
    names = [row["method"] for row in run.table.rows]
    assert names == ["retrain", "original", "ft", "ga", "l1-sparse", "blindspot", "gaussian-amnesiac"]
    for row in run.table.rows:
        assert all(k in row for k in REGRESSION_HEADLINE) and row["avg_gap"] is not None
    assert run.table.rows[0]["avg_gap"] == 0.0


def test_cli_bench_regression(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-reg")
    args = ["bench", "--dataset", "diabetes", "--model", "mlp", "--methods", "blindspot,gaussian-amnesiac,ssd"]
    args += ["--budget", "published"]
    assert main([*args, "--cache-dir", str(tmp / "cache"), "--out", str(tmp / "out"), "--no-progress"]) == 0
    rows = json.loads((tmp / "out" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows][2:] == ["blindspot", "gaussian-amnesiac", "ssd"]


NEW_CLASSIFIERS = (
    "iu,bs,be,scrub,salun-soft,prune-then-unlearn,gradient-surgery,laf,poison,clean-unlearning,ssd,bad-teacher"
)


def test_cli_bench_runs_every_new_classification_method(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-cls")
    args = ["bench", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--methods", NEW_CLASSIFIERS]
    args += ["--budget", "published"]
    args += [
        "--hp",
        "iu.samples=100",
        "--hp",
        "laf.vae_epochs=2",
        "--hp",
        'prune-then-unlearn.inner_hparams={"lr": 0.05}',
    ]
    assert main([*args, "--cache-dir", str(tmp / "cache"), "--out", str(tmp / "out"), "--no-progress"]) == 0
    rows = json.loads((tmp / "out" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows][2:] == NEW_CLASSIFIERS.split(",")
    assert all(r["ra"] is not None and r["avg_gap"] is not None for r in rows)


def test_cli_unlearn_with_be_keeps_a_loadable_checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-be")
    base = ["--no-progress"]
    assert (
        main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--out", str(tmp / "orig"), *base])
        == 0
    )
    cmd = ["unlearn", "--model", str(tmp / "orig"), "--forget", "class:3", "--method", "be", "--hp", "lr=0.001"]
    assert main([*cmd, "--out", str(tmp / "be"), *base]) == 0
    model, meta = uk.load(tmp / "be")
    assert model.classifier.out_features == 10 and meta["method"] == "be"


def test_cli_expose_reports_collapse_label(tmp_path_factory, capsys):
    tmp = tmp_path_factory.mktemp("cli-expose")
    base = ["--no-progress"]
    assert (
        main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--out", str(tmp / "orig"), *base])
        == 0
    )
    capsys.readouterr()
    cmd = [
        "expose",
        "--model",
        str(tmp / "orig"),
        "--clean-fraction",
        "0.05",
        "--hp",
        "lr=0.001",
        "--out",
        str(tmp / "x"),
    ]
    assert main([*cmd, *base]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 <= report["collapse_label"] < 10 and report["clean_examples"] == 72
    assert sum(report["label_counts"]) == 72 and uk.load(tmp / "x")[1]["kind"] == "exposed"
