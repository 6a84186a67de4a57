"""The UnlearnCanvas-style grid: its UA / IRA / CRA against UnlearnCanvas' accumulation, and the CLI mode."""

from __future__ import annotations

import json

import pytest
import torch

from unlearnkit.cli import main
from unlearnkit.diffusion import grid
from unlearnkit.diffusion.concepts import ConceptSpec
from unlearnkit.diffusion.evaluators import Evaluators
from unlearnkit.diffusion.grid import canvas_scores, summarise
from unlearnkit.errors import ConfigError
from unlearnkit.models.cnn import CNN


def _accuracy_py(pred: torch.Tensor, true: torch.Tensor, n: int, per: int) -> list[float]:
    """UnlearnCanvas ``quantitative/accuracy.py`` written out: for concept c, ``acc[c] += success / (number of
    concepts of the other axis × seeds)`` over each generation prompted with c."""
    acc = [0.0] * n
    for p, t in zip(pred.tolist(), true.tolist()):
        acc[t] += (p == t) / per
    return acc


def _random_answer_set(n_obj: int, n_sty: int, seeds: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    objs = torch.arange(n_obj).repeat_interleave(n_sty * seeds)
    stys = torch.arange(n_sty).repeat_interleave(seeds).repeat(n_obj)
    # mostly right, sometimes wrong, sometimes "unrecognisable" (label n)
    noisy_o = torch.where(torch.rand(len(objs), generator=gen) < 0.3, torch.randint(0, n_obj + 1, objs.shape), objs)
    noisy_s = torch.where(torch.rand(len(stys), generator=gen) < 0.2, torch.randint(0, n_sty + 1, stys.shape), stys)
    return {"object": noisy_o, "style": noisy_s}, {"object": objs, "style": stys}


@pytest.mark.parametrize("axis", ["style", "object"])
def test_canvas_scores_match_unlearncanvas_accuracy_accumulation(axis):
    n_obj, n_sty, seeds = 5, 4, 3
    torch.manual_seed(0)
    pred, true = _random_answer_set(n_obj, n_sty, seeds)
    n = {"object": n_obj, "style": n_sty}
    other = "object" if axis == "style" else "style"
    spec = ConceptSpec(axis, 2, "x")
    got = canvas_scores(pred, true, spec, n, none_label=n[axis])
    acc_same = _accuracy_py(pred[axis], true[axis], n[axis], n[other] * seeds)
    acc_other = _accuracy_py(pred[other], true[other], n[other], n[axis] * seeds)
    assert got["ua"] == pytest.approx(100 * (1 - acc_same[2]))
    assert got["ira"] == pytest.approx(100 * sum(a for c, a in enumerate(acc_same) if c != 2) / (n[axis] - 1))
    assert got["cra"] == pytest.approx(100 * sum(acc_other) / n[other])
    hit = true[axis] == 2
    assert got["ua_destroyed"] == pytest.approx(100 * float((pred[axis][hit] == n[axis]).float().mean()))
    assert got["ua"] == pytest.approx(got["ua_replaced"] + got["ua_destroyed"])


def test_canvas_scores_on_a_hand_made_answer_set():
    # 2 objects x 3 styles, one seed; erase style 1. Style 1's two images: one read as style 0, one destroyed (3).
    true = {"object": torch.tensor([0, 0, 0, 1, 1, 1]), "style": torch.tensor([0, 1, 2, 0, 1, 2])}
    pred = {"object": torch.tensor([0, 0, 1, 1, 1, 1]), "style": torch.tensor([0, 0, 2, 2, 3, 2])}
    s = canvas_scores(pred, true, ConceptSpec("style", 1, "b"), {"object": 2, "style": 3}, none_label=3)
    assert (s["ua"], s["ua_replaced"], s["ua_destroyed"]) == (100.0, 50.0, 50.0)
    assert s["ira"] == 75.0  # style 0: 1 of 2 right, style 2: 2 of 2
    assert s["cra"] == pytest.approx((200 / 3 + 100) / 2)  # object 0: 2 of 3 (all styles), object 1: 3 of 3
    with pytest.raises(ConfigError, match="no generation"):
        canvas_scores(pred, true, ConceptSpec("style", 5, "z"), {"object": 2, "style": 6})


def test_summary_averages_each_axis_over_its_targets():
    rows = [
        {"axis": "style", "ua": 100.0, "ua_replaced": 100.0, "ua_destroyed": 0.0, "ira": 80.0, "cra": 90.0},
        {"axis": "style", "ua": 50.0, "ua_replaced": 25.0, "ua_destroyed": 25.0, "ira": 60.0, "cra": 70.0},
        {"axis": "object", "ua": 10.0, "ua_replaced": 10.0, "ua_destroyed": 0.0, "ira": 40.0, "cra": 30.0},
    ]
    s = summarise("m", rows)
    assert (s["style_ua"], s["style_ira"], s["style_cra"], s["style_ua_destroyed"]) == (75.0, 70.0, 80.0, 12.5)
    assert (s["object_ua"], s["object_ira"], s["object_cra"]) == (10.0, 40.0, 30.0)


def test_cli_diff_bench_grid(tmp_path, capsys, monkeypatch):
    # untrained evaluators: the grid's bookkeeping is under test here, not the classifiers (trained elsewhere)
    ev = Evaluators(CNN((1, 8, 8), 11).eval(), CNN((1, 8, 8), 7).eval(), none_label={"object": 10, "style": 6})
    monkeypatch.setattr(grid, "cached_evaluators", lambda *a, **k: ev)
    cache = str(tmp_path / "cache")
    common = ["--train-subset", "30", "--steps", "4", "--base", "8", "--cache-dir", cache, "--no-progress"]
    out = tmp_path / "grid"
    argv = ["diff-bench", "--grid", *common, "--styles", "inverted", "--objects", "three,seven", "--methods",
            "ga,esd-x", "--hp", "ga.steps=1", "--hp", "esd-x.steps=1", "--hp", "esd-x.ddim_steps=2",
            "--ddim-steps", "2", "--per-prompt", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "style UA" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in res["rows"]] == ["original", "ga", "esd-x"]
    for r in res["rows"]:
        assert r["targets"] == 3
        for key in ("style_ua", "style_ira", "style_cra", "object_ua", "object_ira", "object_cra"):
            assert 0.0 <= r[key] <= 100.0
    per = json.loads((out / "targets.json").read_text())["rows"]
    assert [(r["model"], r["target"]) for r in per[:3]] == [("original", "inverted"), ("original", "three"),
                                                           ("original", "seven")]  # fmt: skip
    obj = [r for r in per if r["model"] == "esd-x" and r["axis"] == "object"]
    assert res["rows"][2]["object_ua"] == pytest.approx(sum(r["ua"] for r in obj) / 2)
    assert all(r["storage_mb"] > 0 for r in per if r["model"] == "esd-x")
    assert main(["diff-bench", "--grid", *common, "--styles", "", "--objects", "", "--out", str(out)]) == 2


@pytest.mark.parametrize("config", ["bench", "grid"])
def test_bench_and_grid_configs_check_hyper_parameters_the_same_way(config):
    from unlearnkit.diffusion.bench import MINIATURE_HPARAMS, DiffBenchConfig

    make = DiffBenchConfig if config == "bench" else grid.GridConfig
    with pytest.raises(ConfigError, match="not among the methods run"):
        make(methods=["ga"], hparams={"rl": {"steps": 5}})
    with pytest.raises(ConfigError, match="ga has no hyper-parameter"):
        make(methods=["ga"], hparams={"ga": {"no_such": 1}})
    cfg = make(methods=["ga"], hparams={"ga": {"steps": 7}}, seed=3)
    assert cfg.method_hparams("ga") == {**MINIATURE_HPARAMS.get("ga", {}), "steps": 7, "seed": 3}
