"""Worst-case forget sets as in Fan et al. / OPTML Unlearn-WorstCase: SignSGD lower level, rounding, best-case
mode, class-wise selection and the index-file cache; the gap mode and its held-out losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unlearnkit as uk
from unlearnkit.audit import ForgetContext, worst_case_forget_set
from unlearnkit.audit.common import train_fresh
from unlearnkit.audit.scores import cross_entropy_loss
from unlearnkit.audit.worst_case import SignGradient, gap_score, heldout_losses
from unlearnkit.data.tensors import TensorData
from unlearnkit.engine import Phase, Recipe, train
from unlearnkit.errors import ConfigError
from unlearnkit.metrics.predict import predict_outputs


@pytest.fixture(scope="module")
def data():
    b = uk.load_dataset("digits")
    return b.train.subset(np.arange(600))


@pytest.fixture(scope="module")
def original(data):
    factory = lambda: uk.create_model("mlp", (64,), 10, hidden=(32,))  # noqa: E731
    return train_fresh(factory, data, Recipe(epochs=15, lr=0.05, batch_size=64, schedule="cosine"), 0)


def test_sign_gradient_hook_makes_plain_sgd_a_sign_step():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in lin.parameters()]
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    phase = Phase("one", [(x, y)], lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]))
    train(lin, phase, Recipe(epochs=1, lr=0.01, momentum=0.0, weight_decay=0.0), hooks=[SignGradient()], progress=False)
    for p0, p in zip(before, lin.parameters()):
        assert torch.allclose((p0 - p).abs(), torch.full_like(p, 0.01), atol=1e-7)


def test_lower_level_unlearns_the_weighted_set_before_the_upper_step(original, data):
    # GA lower level: the loss of the (random) starting set after unlearning is far above the original's
    res = worst_case_forget_set(
        original, data, 40, method="ga", outer_steps=1, inner_lr=1e-2, inner_epochs=3, round_every=None, progress=False
    )
    start = np.random.default_rng(0).choice(len(data), size=40, replace=False)
    before = cross_entropy_loss(predict_outputs(original, data), data.y)[start].mean()
    assert res.history[0] > 20 * before + 0.1, (res.history[0], before)


def test_rounding_best_case_and_class_wise_selection(original, data):
    worst = worst_case_forget_set(original, data, 40, method="ft", outer_steps=4, round_every=2, progress=False)
    assert set(np.unique(worst.weights)) <= {0.0, 1.0} and worst.weights.sum() == 40  # rounded at the end
    best = worst_case_forget_set(original, data, 40, method="ft", outer_steps=4, mode="best", progress=False)
    assert best.mode == "best" and len(best.indices) == 40
    loss = cross_entropy_loss(predict_outputs(original, data), data.y)
    assert loss[best.indices].mean() > loss[worst.indices].mean()  # best case: the examples easiest to forget
    cls = worst_case_forget_set(original, data, 2, method="ft", outer_steps=2, classwise=True, progress=False)
    labels = data.y.numpy()
    assert len(cls.classes) == 2 and np.array_equal(cls.indices, np.flatnonzero(np.isin(labels, cls.classes)))
    with pytest.raises(ConfigError, match="mode"):
        worst_case_forget_set(original, data, 40, mode="average", progress=False)


def test_selected_sets_are_cached_as_index_files_that_indices_reads(original, data, tmp_path):
    ctx = ForgetContext(original, data, 10, progress=False, cache_dir=str(tmp_path))
    first = uk.parse_forget("worst:ft:30", data.y, seed=1, context=ctx)
    files = list((tmp_path / "worst-case").glob("worst-ft-*.txt"))
    assert len(files) == 1
    again = uk.parse_forget(f"indices:{files[0]}", data.y)
    assert np.array_equal(again.forget_idx, first.forget_idx)
    cached = uk.parse_forget("worst:ft:30", data.y, seed=1, context=ctx)  # read back, not recomputed
    assert np.array_equal(cached.forget_idx, first.forget_idx)
    best = uk.parse_forget("worst:ft:30:best", data.y, seed=1, context=ctx)
    assert len(list((tmp_path / "worst-case").glob("best-ft-*.txt"))) == 1 and len(best.forget_idx) == 30
    with pytest.raises(uk.errors.ForgetSpecError, match="worst:<method>:<K>"):
        uk.parse_forget("worst:ft:30:middle", data.y, seed=1, context=ctx)


@pytest.fixture(scope="module")
def noisy():
    """400 digits with 20 labels flipped: the original memorises them, a model that never saw them gets them
    wrong."""
    b = uk.load_dataset("digits")
    d = b.train.subset(np.arange(400))
    rng = np.random.default_rng(0)
    flipped = np.sort(rng.choice(400, 20, replace=False))
    y = d.y.clone()
    y[flipped] = (y[flipped] + torch.as_tensor(rng.integers(1, 10, 20))) % 10
    recipe = Recipe(epochs=30, lr=0.1, batch_size=32, schedule="cosine", weight_decay=0.0)
    data = TensorData(d.x, y)
    factory = lambda: uk.create_model("mlp", (64,), 10, hidden=(64,))  # noqa: E731
    return data, flipped, recipe, train_fresh(factory, data, recipe, 0)


def test_heldout_losses_score_each_example_with_a_model_that_never_saw_it(noisy):
    data, flipped, recipe, original = noisy
    ref = heldout_losses(original, data, recipe, folds=2, seed=0)
    seen = cross_entropy_loss(predict_outputs(original, data), data.y)
    clean = np.setdiff1d(np.arange(len(data)), flipped)
    assert seen[flipped].mean() < 0.5  # memorised by the original ...
    assert ref[flipped].mean() > 10 * seen[flipped].mean() + 2  # ... and wrong for the models that did not see them
    assert ref[flipped].mean() > 10 * ref[clean].mean()
    with pytest.raises(ConfigError, match="ref_folds"):
        heldout_losses(original, data, recipe, folds=1)


def test_gap_mode_keeps_what_unlearning_still_fits_but_a_retrain_would_not(noisy, tmp_path):
    data, flipped, recipe, original = noisy
    ref = heldout_losses(original, data, recipe, folds=4, seed=0)
    kw = {"method": "ft", "outer_steps": 4, "progress": False}
    gap = worst_case_forget_set(original, data, 20, mode="gap", ref_loss=ref, **kw)
    worst = worst_case_forget_set(original, data, 20, **kw)
    # the gap set is what a model that never saw it gets wrong (52 of the 400 examples, so 2.6 of a random 20),
    # mislabelled examples among them (random: 1 of 20); Fan et al.'s objective keeps examples every model fits
    wrong = np.exp(-ref) < 0.5
    assert wrong[gap.indices].sum() >= 18 and np.isin(gap.indices, flipped).sum() >= 6, gap.indices
    assert wrong[worst.indices].sum() <= 2 and np.isin(worst.indices, flipped).sum() <= 2
    with pytest.raises(ConfigError, match="ref_loss or ref_recipe"):
        worst_case_forget_set(original, data, 20, mode="gap", **kw)
    # through the forget spec: needs the original's recipe, cached under its own name
    with pytest.raises(uk.errors.ForgetSpecError, match="recipe"):
        uk.parse_forget("worst:ft:20:gap", data.y, context=ForgetContext(original, data, 10, progress=False))
    with pytest.raises(uk.errors.ForgetSpecError, match="best\\|:gap"):
        uk.parse_forget("worst:ft:20:best:gap", data.y, context=ForgetContext(original, data, 10, progress=False))
    ctx = ForgetContext(original, data, 10, progress=False, cache_dir=str(tmp_path), recipe=recipe)
    split = uk.parse_forget("worst:ft:20:gap", data.y, seed=0, context=ctx)
    assert len(list((tmp_path / "worst-case").glob("gap-ft-*.txt"))) == 1
    assert wrong[split.forget_idx].sum() >= 18


def test_with_the_reference_step_size_the_selection_never_leaves_its_random_start(original, data):
    # the reference README's setting (w_lr 0.01, 2 upper steps, rounding every 2): a weight outside the start
    # can only overtake one inside if its summed losses after unlearning are lower by more than 1 / 0.01 = 100
    start = np.sort(np.random.default_rng(0).choice(len(data), size=40, replace=False))
    ref = worst_case_forget_set(original, data, 40, method="ft", outer_steps=2, eta=0.01, round_every=2, progress=False)
    assert np.array_equal(ref.indices, start)
    moved = worst_case_forget_set(original, data, 40, method="ft", outer_steps=2, round_every=2, progress=False)
    assert np.isin(moved.indices, start).sum() <= 35  # η = 10 (the default) does move it


def test_retrain_lower_level_trains_a_fresh_initialisation(original, data):
    # the reference's w_retrain: re-initialise, then train on the weighted retain data (2 short epochs here,
    # so the fresh model is still near chance while fine-tuning the original keeps its fit)
    kw = {"outer_steps": 1, "round_every": None, "progress": False}
    fresh = worst_case_forget_set(original, data, 40, method="retrain", **kw)
    tuned = worst_case_forget_set(original, data, 40, method="ft", **kw)
    assert fresh.history[0] > 1.0 > 0.5 > tuned.history[0], (fresh.history, tuned.history)


def test_gap_score_is_bounded_so_a_collapsed_unlearner_cannot_swamp_the_held_out_term():
    # the pattern of a collapsed ga lower level: every post-unlearning cross-entropy between 28 and 95, while
    # the held-out losses tell 20 atypical examples (p_ref 0.05) from the rest (p_ref 0.95)
    rng = np.random.default_rng(0)
    loss = rng.uniform(28, 95, 200)
    atypical = np.sort(rng.choice(200, 20, replace=False))
    ref = np.full(200, -np.log(0.95))
    ref[atypical] = -np.log(0.05)
    score = gap_score(loss, ref)
    assert np.all(np.abs(score) <= 1)
    np.testing.assert_allclose(score, np.exp(-ref) - np.exp(-loss))  # p_ref - p
    assert np.array_equal(np.sort(np.argsort(score)[:20]), atypical)  # the upper level's lowest scores
    # an example the unlearned model still fits but a held-out model does not scores lowest of all
    fits, misses = gap_score(np.array([0.01]), np.array([5.0]))[0], gap_score(np.array([5.0]), np.array([0.01]))[0]
    assert fits < score.min() and misses > score.max()
