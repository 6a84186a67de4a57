"""Training budgets that transfer across data sizes and the collapse guard, on digits (``auto``: test_auto.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

import unlearnkit as uk
from unlearnkit.bench import BenchConfig, run_bench
from unlearnkit.budget import MAX_FRACTION, MIN_STEPS, Budget, count_examples, count_steps, scaled_epochs, stretch
from unlearnkit.data.tensors import Batches, TensorData
from unlearnkit.engine import Phase
from unlearnkit.errors import ConfigError
from unlearnkit.guard import CollapseWarning
from unlearnkit.metrics import accuracy, predict_outputs


def _acc(model, data):
    return accuracy(predict_outputs(model, data), data.y)


def _phase(n: int, batch: int) -> Phase:
    data = TensorData(torch.zeros(n, 2), torch.zeros(n, dtype=torch.long))
    return Phase("p", Batches(data, batch, seed=0), lambda m, b: torch.zeros(()))


# ---- budgets -------------------------------------------------------------------------------------------
def test_stretch_repeats_passes_to_the_minimum_and_keeps_activity():
    phases = [_phase(100, 32), _phase(10, 32)]  # 4 + 1 steps per epoch
    phases[1].active = lambda epoch: epoch < 1  # like SCRUB's max-steps
    out, k = stretch(phases, 3, Budget(min_steps=50))
    assert count_steps(phases, 3) == 13 and k == 4  # ceil(50 / 13)
    assert count_steps(out, 3) == 52 and len(list(out[0].batches)) == 16
    assert not out[1].runs_in(1)  # the repeated phase is still active only where it was
    assert stretch(phases, 3, Budget(mode="published"))[1] == 1
    assert stretch(phases, 3, Budget(min_steps=13))[1] == 1
    assert stretch(phases, 3, None)[1] == 1


def test_ceiling_caps_the_minimum_and_the_one_epoch_floor():
    phases = [_phase(100, 32), _phase(10, 32)]  # 110 examples per epoch, 13 steps in 3 epochs
    phases[1].active = lambda epoch: epoch < 1
    # original: 2 epochs over 1 000 examples -> ceiling 0.1 * 2 000 = 200 examples; the run is 310 at k = 1
    out, f = stretch(phases, 3, Budget(min_steps=50, original_epochs=2), train_size=1000)
    assert 0 < f < 1 and count_examples(out, 3) <= MAX_FRACTION * 2 * 1000
    assert count_examples(out, 3) >= 0.5 * MAX_FRACTION * 2 * 1000  # cut to the ceiling, not far below it
    seen = [len(b[0]) for b in out[0].batches] + [len(b[0]) for b in out[0].batches]
    assert len(seen) == 4 and seen[-1] == 4  # two short epochs carry on to the end of one pass (100 = 3·32 + 4)
    # a long original leaves room: the minimum of steps wins again, in whole repeats
    out, k = stretch(phases, 3, Budget(min_steps=50, original_epochs=200), train_size=1000)
    assert k == 4 and count_steps(out, 3) == 52
    # in between (ceiling 800 examples, 310 per run): fewer whole repeats than the minimum asks for
    out, k = stretch(phases, 3, Budget(min_steps=50, original_epochs=8), train_size=1000)
    assert k == 2 and count_examples(out, 3) == 620
    assert stretch(phases, 3, Budget(mode="published", original_epochs=2), train_size=1000)[1] == 1


def test_budget_validation():
    with pytest.raises(ConfigError, match="unknown budget"):
        Budget(mode="fast")
    with pytest.raises(ConfigError, match="original_epochs"):
        Budget(original_epochs=0)
    with pytest.raises(ConfigError, match="min_steps"):
        Budget(min_steps=-1)
    assert scaled_epochs(10, 30) == 2 and scaled_epochs(1, 30) == 1 and scaled_epochs(10, 182) == 10


def test_default_budget_makes_the_bad_teacher_forget(original, digits, class_split):
    """Published "1 epoch, batch 256" is 3 steps on digits and changes nothing; the scaled budget forgets."""
    forget, retain = class_split.forget(digits.train), class_split.retain(digits.train)
    published = uk.unlearn(original, forget, retain, "bad-teacher", budget="published", progress=False)
    scaled = uk.unlearn(original, forget, retain, "bad-teacher", progress=False)
    assert published.report["budget_repeats"] == 1 and scaled.report["budget_repeats"] > 1
    assert _acc(published.model, forget) > 90
    assert _acc(scaled.model, forget) < 40 and _acc(scaled.model, retain) > 85


def test_explicit_epochs_run_as_given_and_original_epochs_scale(original, digits, random_split):
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    given = uk.unlearn(original, forget, retain, "ga", epochs=1, progress=False)
    assert given.report["budget_repeats"] == 1 and given.hparams["epochs"] == 1
    scaled = uk.unlearn(original, forget, retain, "ga", original_epochs=40, lr=1e-6, progress=False)
    assert scaled.hparams["epochs"] == 1  # round(5 * 40 / 182)
    steps_per_epoch = -(-len(forget) // 128)
    # the minimum asks for 100 passes over D_f; the ceiling (8 % of 40 epochs over D_f + D_r) allows 31
    ceiling = int(MAX_FRACTION * 40 * (len(forget) + len(retain)) // len(forget))
    assert ceiling < -(-MIN_STEPS // steps_per_epoch)
    assert scaled.report["budget_repeats"] == ceiling


def test_short_original_caps_the_run_through_the_api(original, digits, random_split):
    """A 3-epoch original: 200 steps of ft would be several times its training; the ceiling keeps a quarter of
    one pass over D_r (8 % of 3 epochs over D_f + D_r)."""
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    res = uk.unlearn(original, forget, retain, "ft", original_epochs=3, progress=False)
    ceiling = MAX_FRACTION * 3 * (len(forget) + len(retain))
    assert res.hparams["epochs"] == 1 and res.report["budget_repeats"] == pytest.approx(ceiling / len(retain), 1e-3)


# ---- collapse guard ------------------------------------------------------------------------------------
def test_guard_warns_names_the_hparam_and_bench_marks_the_row(tmp_path):
    recipe = uk.Recipe(epochs=6, lr=0.05, batch_size=64, schedule="cosine")
    cfg = BenchConfig(
        methods=["ga", "ft"],
        recipe=recipe,
        hparams={"ga": {"epochs": 3, "lr": 0.1}, "ft": {"epochs": 1}},  # collapses, does not diverge
        model_kwargs={"width": 8, "hidden": 32},
        cache_dir=str(tmp_path),
        progress=False,
        mia=False,
    )
    with pytest.warns(CollapseWarning, match=r"ga: the model collapsed.*`lr`"):
        run = run_bench(cfg)
    rows = {r["method"]: r for r in run.table.rows}
    assert "failed" not in rows["ga"], "the setting must collapse the model, not make it diverge"
    assert rows["ga"]["note"] == "collapsed" and "note" not in rows["ft"]
    assert "note" in run.table.render()


def test_guard_threshold_is_settable(original, digits, random_split):
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = uk.unlearn(original, forget, retain, "ft", epochs=1, progress=False)
    assert res.report["collapse"]["collapsed"] is False and res.report["collapse"]["size"] == 512
    with pytest.warns(CollapseWarning, match="ft: "):
        res = uk.unlearn(original, forget, retain, "ft", epochs=1, collapse_threshold=100.0, progress=False)
    assert res.report["collapse"]["collapsed"] == (res.report["collapse"]["accuracy"] < 100)
    with pytest.raises(ConfigError, match="collapse_threshold"):
        uk.unlearn(original, forget, retain, "ft", epochs=1, collapse_threshold=150.0, progress=False)


def test_ssd_even_batches_keep_a_random_forgetting_model(original, digits, random_split):
    """At α = 10 the reference's short last batch (143 = 64 + 64 + 15) drives digits to chance."""
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    with pytest.warns(CollapseWarning, match="ssd: .*`alpha`"):
        # stop="budget": α = 10 as given (with a target, a collapsing α is never chosen)
        short = uk.unlearn(original, forget, retain, "ssd", even_batches=False, progress=False, stop="budget")
    assert _acc(short.model, retain) < 20
    even = uk.unlearn(original, forget, retain, "ssd", progress=False, stop="budget")
    assert _acc(even.model, retain) > 95 and not even.report["collapse"]["collapsed"]
