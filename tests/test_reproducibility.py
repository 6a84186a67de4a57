"""What is reproducible: the same seed, thread count, device and torch version give identical metrics; the
environment is recorded in results and is part of the cache key. And the demo's do-nothing baseline."""

from __future__ import annotations

import json

import pytest
import torch

import unlearnkit.bench as bench
from unlearnkit.bench import BenchConfig, run_bench
from unlearnkit.demo import DEMO_REQUESTS, mark_baseline, run_demo
from unlearnkit.engine import Recipe
from unlearnkit.results import ResultTable

METRICS = ("ua", "ra", "ta", "avg_gap")


def _cfg(tmp_path, name: str) -> BenchConfig:
    return BenchConfig(
        train_subset=300,
        recipe=Recipe(epochs=2, lr=0.05, batch_size=32, schedule="cosine"),
        forget="random:0.1",
        methods=("rl",),
        mia=False,
        progress=False,
        cache_dir=str(tmp_path / f"cache-{name}"),
        out_dir=str(tmp_path / f"run-{name}"),
    )


def test_same_seed_threads_device_give_identical_metrics(tmp_path):
    a = run_bench(_cfg(tmp_path, "a"))
    b = run_bench(_cfg(tmp_path, "b"))  # another cache: everything is trained again
    strip = [{k: r[k] for k in ("method", *METRICS)} for r in a.table.rows]
    assert strip == [{k: r[k] for k in ("method", *METRICS)} for r in b.table.rows]
    assert any(r["ua"] > 0 for r in a.table.rows)  # the runs did something that could differ
    meta = json.loads((tmp_path / "run-a" / "results.json").read_text())["meta"]
    assert meta["threads"] == torch.get_num_threads() and meta["torch"] == torch.__version__
    assert meta["device"] == "cpu"


def test_thread_count_is_part_of_the_cache_key(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, "a")
    cfg.methods, cfg.out_dir = ("rl",), None
    run_bench(cfg)
    real = bench.environment
    monkeypatch.setattr(bench, "environment", lambda d: {**real(d), "threads": real(d)["threads"] + 1})
    run_bench(cfg)
    assert len(list((tmp_path / "cache-a" / "originals").iterdir())) == 2


def test_mark_baseline_verdicts():
    rows = [
        {"method": "retrain", "avg_gap": 0.0},
        {"method": "original", "avg_gap": 30.0},
        {"method": "good", "avg_gap": 3.0},
        {"method": "same", "avg_gap": 30.0},
        {"method": "bad", "avg_gap": 31.0},
        {"method": "broken", "failed": "diverged"},
    ]
    table = mark_baseline(ResultTable("t", rows, [("method", "method"), ("avg_gap", "Avg-Gap")]))
    verdicts = {r["method"]: r["verdict"] for r in table.rows}
    assert verdicts == {
        "retrain": "reference",
        "original (do nothing)": "baseline",
        "good": "✓ 10.0× smaller",
        "same": "= no change",
        "bad": "✗ worse than nothing",
        "broken": "failed",
    }
    assert "do nothing: Avg-Gap 30.00" in table.title


@pytest.mark.slow
def test_demo_beats_doing_nothing_threefold_on_the_class_request(tmp_path):
    res = run_demo(out_dir=tmp_path / "demo", cache_dir=str(tmp_path / "cache"), progress=False)
    wins = res.winners(DEMO_REQUESTS[0])
    assert max(wins.values()) >= 3
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "demo-class-3.csv",
        "demo-class-3.json",
        "demo-random-0_1.csv",
        "demo-random-0_1.json",
    ]
