"""The held-out target, the probes that stop runs at it, keep their best state and roll back a collapse."""

from __future__ import annotations

import json

import pytest
import torch

import unlearnkit as uk
from unlearnkit.data.heldout import heldout_split
from unlearnkit.data.tensors import Batches, TensorData
from unlearnkit.engine import Hook, Phase, Recipe, train
from unlearnkit.errors import ConfigError
from unlearnkit.guard import CollapseWarning, slice_accuracy
from unlearnkit.losses import cross_entropy
from unlearnkit.target import estimate_target


def _toy() -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    return TensorData(x, (x[:, 0] > 0).long())


class _StopAt(Hook):
    def __init__(self, at: int) -> None:
        self.at, self.ends = at, 0

    def on_start(self, ctx) -> None:
        ctx.lr_scale = 0.0  # a hook may scale the learning rate: with 0 nothing moves

    def after_step(self, ctx) -> None:
        if ctx.step + 1 == self.at:
            ctx.stop = "enough"

    def on_end(self, ctx) -> None:
        self.ends += 1


def test_a_hook_stops_the_run_and_scales_the_learning_rate():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hook = _StopAt(3)
    recipe = Recipe(epochs=5, lr=0.1, weight_decay=0.0)
    log = train(model, Phase("t", Batches(_toy(), 16, seed=1), cross_entropy), recipe, hooks=[hook], progress=False)
    assert (log.steps, log.stopped, hook.ends) == (3, "enough", 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_targets_class_heldout_and_the_weaker_fallback(original, digits, class_split, random_split):
    dev = torch.device("cpu")
    cf, cr = class_split.forget(digits.train), class_split.retain(digits.train)
    t = estimate_target(original, cf, cr, digits.test, dev)
    assert (t.source, t.forget_acc, t.forget_conf) == ("class", 0.0, None)
    f, r = random_split.forget(digits.train), random_split.retain(digits.train)
    t = estimate_target(original, f, r, digits.test, dev)
    assert t.source == "heldout" and not t.to_dict()["weaker"]
    assert t.forget_acc == pytest.approx(slice_accuracy(original, digits.test, dev))
    assert t.mia is not None and t.forget_loss["mean"] > 0 and t.heldout_size == len(digits.test)
    weak = estimate_target(original, f, r, None, dev)
    assert weak.source == "retain-confidence" and weak.to_dict()["weaker"]
    assert weak.forget_conf < 100.0


def test_probed_run_stops_at_the_target_and_reports_its_trace(original, digits, class_split):
    f, r = class_split.forget(digits.train), class_split.retain(digits.train)
    res = uk.unlearn(original, f, r, "rl", progress=False, epochs=5, heldout=digits.test, stop="target")
    probe = res.report["probe"]
    assert res.report["target"]["source"] == "class"
    assert probe["stopped"] == "target reached"
    total = 5 * (len(Batches(f, 128)) + len(Batches(r, 128)))
    assert probe["checks"][-1]["step"] < total  # it stopped before the end of its budget
    assert slice_accuracy(res.model, f, torch.device("cpu")) <= 5.0
    full = uk.unlearn(original, f, r, "rl", progress=False, epochs=5, heldout=digits.test)
    assert "probe" not in full.report and full.report["stop"] == "budget"  # explicit epochs: run as given


def test_a_collapsing_run_is_rolled_back_and_never_handed_back(original, digits, class_split):
    f, r = class_split.forget(digits.train), class_split.retain(digits.train)
    kw = dict(progress=False, epochs=3, lr=1.0, heldout=digits.test)
    with pytest.warns(CollapseWarning):
        broken = uk.unlearn(original, f, r, "rl", stop="budget", **kw)
    assert broken.report["collapse"]["collapsed"]
    res = uk.unlearn(original, f, r, "rl", stop="target", **kw)
    probe = res.report["probe"]
    assert probe["rollbacks"] >= 1 and any(c.get("action") == "rollback" for c in probe["checks"])
    assert not res.report["collapse"]["collapsed"]
    orig_acc = slice_accuracy(original, r, torch.device("cpu"))
    assert slice_accuracy(res.model, r, torch.device("cpu")) >= orig_acc - 5.0


def test_bad_stop_and_empty_heldout_are_refused(original, digits, random_split):
    f, r = random_split.forget(digits.train), random_split.retain(digits.train)
    with pytest.raises(ConfigError, match="stop"):
        uk.unlearn(original, f, r, "ft", stop="never", progress=False)
    empty = TensorData(digits.test.x[:0], digits.test.y[:0])
    with pytest.raises(ConfigError, match="heldout"):
        uk.unlearn(original, f, r, "ft", heldout=empty, progress=False)


def test_bench_heldout_is_neither_train_nor_test(digits):
    sub = uk.load_dataset("digits", train_subset=720)
    held = heldout_split("split", sub, train_subset=720)
    assert held.carved == 0 and len(held.train) == 720 and len(held.heldout) == len(digits.train) - 720
    rows = {tuple(x.flatten().tolist()) for x in held.train.x}
    assert not any(tuple(x.flatten().tolist()) in rows for x in held.heldout.x)
    full = uk.load_dataset("digits")
    carved = heldout_split("split", full)
    assert carved.carved == len(carved.heldout) == round(0.1 * len(full.train))
    assert len(carved.train) + carved.carved == len(full.train)
    assert heldout_split("none", full).heldout is None
    with pytest.raises(ConfigError, match="heldout"):
        heldout_split("a,b,c", full)


@pytest.mark.parametrize("method,extra", [("ssd", {}), ("iu", {"samples": 64})])
def test_methods_that_train_nothing_pick_their_knob_by_the_target(original, digits, class_split, method, extra):
    f, r = class_split.forget(digits.train), class_split.retain(digits.train)
    res = uk.unlearn(original, f, r, method, progress=False, heldout=digits.test, stop="target", **extra)
    search = res.report["probe"]
    kept = [c for c in search["checks"] if c.get("action") != "low retain"]  # a collapsing value is never chosen
    dists = [c["distance"] for c in kept]
    assert search["knob"] == "alpha" and res.hparams["alpha"] == (search["chosen"] or 10.0)
    assert search["checks"][0]["alpha"] == 10.0
    if kept:
        assert search["best_distance"] == min(dists) and search["chosen"] == kept[dists.index(min(dists))]["alpha"]
    plain = uk.unlearn(original, f, r, method, progress=False, stop="budget", **extra)
    assert "probe" not in plain.report and plain.hparams["alpha"] == 10.0


def test_a_knob_that_collapses_the_model_is_never_chosen(original, digits, class_split):
    from unlearnkit.probe import choose_knob
    from unlearnkit.target import probe_sets

    f, r = class_split.forget(digits.train), class_split.retain(digits.train)
    dev = torch.device("cpu")
    target = estimate_target(original, f, r, None, dev)
    before = {k: v.clone() for k, v in original.state_dict().items()}

    def wreck(m, scale):  # every value scales the weights to (near) zero: retain accuracy collapses
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(scale)

    search = choose_knob(original, target, *probe_sets(f, r), dev, "scale", [0.0, 1e-6], wreck)
    assert search["chosen"] is None and "original is kept" in search["stopped"]
    assert all(c["action"] == "low retain" for c in search["checks"])
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())


def test_bench_rows_carry_the_target_and_the_probe_trace(tmp_path):
    from unlearnkit.bench import BenchConfig, run_bench

    cfg = BenchConfig(
        train_subset=300,
        recipe=Recipe(epochs=3, lr=0.05, batch_size=64),
        model_kwargs={"width": 8, "hidden": 32},
        forget="class:3",
        methods=("rl",),
        mia=False,
        progress=False,
        cache_dir=str(tmp_path / "cache"),
        out_dir=str(tmp_path / "run"),
        stop="target",
    )
    run = run_bench(cfg)
    assert "outside the subset" in run.table.meta["heldout"] and run.table.meta["stop"] == "target"
    row = next(r for r in json.loads((tmp_path / "run" / "results.json").read_text())["rows"] if r["method"] == "rl")
    assert row["target"]["source"] == "class" and row["probe"]["checks"][0]["step"] == 0
    assert row["probe"]["stopped"] in ("target reached", "budget", "collapse")


def test_budget_is_the_default_and_a_budget_bench_trains_the_original_it_always_did(original, digits, random_split):
    """Probing is opt-in: the default runs the whole budget (no target, no probe trace), and a budget bench
    carves no held-out set out of the training data."""
    from unlearnkit.bench import BenchConfig

    f, r = random_split.forget(digits.train), random_split.retain(digits.train)
    res = uk.unlearn(original, f, r, "rl", progress=False, heldout=digits.test, original_epochs=12)
    assert res.report["stop"] == "budget" and "target" not in res.report and "probe" not in res.report
    assert BenchConfig().stop == "budget" and BenchConfig().heldout is None
