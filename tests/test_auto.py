"""``auto``: successive halving within a fraction of an estimated retrain, and what it says when it misses."""

from __future__ import annotations

import copy

import pytest

import unlearnkit as uk
from unlearnkit.budget import Budget
from unlearnkit.cli import main
from unlearnkit.engine import Hook, StepContext
from unlearnkit.errors import ConfigError
from unlearnkit.methods import auto as auto_module
from unlearnkit.methods.auto import TargetNotReachedWarning, promotable
from unlearnkit.methods.base import UnlearnRequest
from unlearnkit.methods.context import RunContext
from unlearnkit.metrics import accuracy, predict_outputs
from unlearnkit.target import Target

from .conftest import state_equal

#: no model gets within the tolerance of a forget accuracy of -100, and no retain accuracy is below 0
UNREACHABLE = Target("heldout", forget_acc=-100.0, forget_conf=None, retain_acc=0.0)
EPOCHS = 30


def _acc(model, data):
    return accuracy(predict_outputs(model, data), data.y)


class CountSteps(Hook):
    """Counts every optimiser step and every example trained on, whichever candidate runs."""

    def __init__(self) -> None:
        self.steps = self.examples = 0

    def after_step(self, ctx: StepContext) -> None:
        self.steps += 1
        self.examples += len(ctx.batch[0])


@pytest.fixture
def slow_clock(monkeypatch):
    """A throughput of one second per example: the estimate is huge, so only the example budget binds."""
    monkeypatch.setattr(auto_module, "seconds_per_example", lambda request, batch_size=128, steps=4: 1.0)


def _search(original, split, digits, target, epochs=EPOCHS, **hparams):
    forget, retain = split.forget(digits.train), split.retain(digits.train)
    count = CountSteps()
    req = UnlearnRequest(
        original, forget, retain, num_classes=10, budget=Budget(original_epochs=epochs), target=target, hooks=(count,)
    )
    algo = uk.make_method("auto", **hparams)
    outcome = algo.run(copy.deepcopy(original), req, RunContext())
    return outcome.report["auto"], outcome.model, count, retain


def test_promotion_keeps_the_best_third():
    assert promotable(5.0, [5.0])  # the first trial at a rung always goes on
    assert promotable(1.0, [3.0, 1.0]) and not promotable(3.0, [3.0, 1.0])
    assert promotable(2.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) and not promotable(3.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])


def test_search_stays_within_its_bound_and_later_rungs_hold_fewer_candidates(original, digits, class_split, slow_clock):
    epochs = 15  # an original this short leaves too little for all five candidates: the bound ends the search
    with pytest.warns(TargetNotReachedWarning):
        choice, _, count, retain = _search(original, class_split, digits, UNREACHABLE, epochs, methods=("rl", "salun"))
    budget = auto_module.FRACTION * epochs * len(retain)  # a fraction of the examples retraining processes
    assert choice["bound"]["examples"] == pytest.approx(budget)
    assert choice["estimate"]["retrain_examples"] == epochs * len(retain)
    trials = choice["candidates"][1:]
    assert choice["stopped"] == "search budget spent" or "search budget" in trials[-1]["status"]
    assert count.steps == choice["spent"]["steps"] == sum(t["steps"] for t in trials) > 0
    assert count.examples <= choice["spent"]["examples"] <= budget  # every example trained on, probes on top
    rungs = [r["candidates"] for r in choice["rungs"]]
    assert rungs[0] > rungs[1] >= rungs[2], rungs
    assert any(t["status"] == "pruned at rung 0" for t in trials)
    assert len(trials) >= 4  # the budget held room for more than the first, full, trial


def test_unreached_target_is_said_plainly_and_the_closest_candidate_returned(original, digits, class_split, slow_clock):
    with pytest.warns(TargetNotReachedWarning, match="auto: target NOT reached"):
        choice, out, _, _ = _search(original, class_split, digits, UNREACHABLE, methods=("rl",))
    assert choice["reached"] is False and choice["verdict"].startswith("target NOT reached")
    assert choice["chosen"]["method"] == "rl" and not state_equal(out, original)
    measured = [r["distance"] for t in choice["candidates"][1:] for r in t["rungs"]]
    assert choice["chosen"]["distance"] == pytest.approx(min(measured), abs=1e-3)
    assert choice["chosen"]["distance"] < choice["original_distance"]


def test_when_every_candidate_collapses_the_original_comes_back_and_it_says_so(
    original, digits, class_split, slow_clock
):
    """A retain accuracy of 200 cannot be kept: every measured state counts as a collapse."""
    target = Target("class", forget_acc=0.0, forget_conf=None, retain_acc=200.0)
    with pytest.warns(TargetNotReachedWarning, match="every candidate tried collapsed"):
        choice, out, _, _ = _search(original, class_split, digits, target, methods=("rl",))
    assert choice["chosen"]["method"] == "none" and "original is returned unchanged" in choice["verdict"]
    assert state_equal(out, original)


def test_unlearn_gives_auto_a_target_and_reports_its_cost(original, digits, class_split, random_split):
    forget, retain = class_split.forget(digits.train), class_split.retain(digits.train)
    res = uk.unlearn(original, forget, retain, "auto", original_epochs=EPOCHS, progress=False)  # stop="budget"
    choice = res.report["auto"]
    assert res.report["target"]["source"] == "class" and choice["reached"] is True
    assert choice["chosen"]["method"] != "none" and choice["verdict"].startswith("target reached by")
    assert choice["estimate"]["retrain_seconds"] > 0 and choice["bound"]["fraction"] == auto_module.FRACTION
    assert _acc(res.model, forget) < 10 and _acc(res.model, retain) > 90
    # no held-out set for a random request: the weaker target, named; this original already meets it
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    res = uk.unlearn(original, forget, retain, "auto", original_epochs=EPOCHS, progress=False)
    choice = res.report["auto"]
    assert choice["target"] == {"source": "retain-confidence", "weaker": True, "tolerance": 3.0}
    assert choice["verdict"].startswith("target reached by the original itself") and choice["spent"]["steps"] == 0
    assert state_equal(res.model, original)
    with pytest.raises(ConfigError, match="candidate"):
        uk.make_method("auto", methods=("iu",))


def test_the_command_line_prints_an_unreached_target(tmp_path, capsys, monkeypatch):
    orig = tmp_path / "orig"
    assert main(["train", "--dataset", "digits", "--epochs", "3", "--out", str(orig), "--no-progress"]) == 0
    monkeypatch.setattr(Target, "reached", lambda self, values: False)
    args = ["unlearn", "--model", str(orig), "--forget", "class:1", "--method", "auto", "--out", str(tmp_path / "u")]
    with pytest.warns(TargetNotReachedWarning):
        assert main([*args, "--hp", "budget_seconds=2", "--hp", "methods=rl", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "auto: target NOT reached" in out
