"""``unlearnkit demo``: the main job on the embedded digits data, showing what unlearning is for.

Two requests are benchmarked against retraining on the same original: a class-wise request (every example
of one class) and a random one. The original is trained to overfit (an MLP on a 720-example subset, no
weight decay), so that even a random forget set is remembered and retraining changes the model. Each
table states the original's Avg-Gap — doing nothing — as the baseline and marks the methods that beat it.

The run is pinned to one device and thread count (CPU, one thread, by default) because floating-point
results depend on both; with the same torch version they reproduce exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .bench import BenchConfig, run_bench
from .checkpoint import staged_folder
from .engine import Recipe
from .errors import ConfigError
from .results import ResultTable
from .validation import check_results_folder

DEMO_REQUESTS = ("class:3", "random:0.1")
DEMO_MODEL = "mlp"
DEMO_TRAIN_SUBSET = 720
#: trains the MLP to 100 % training accuracy without regularisation: the original memorises its data
DEMO_RECIPE = Recipe(epochs=100, lr=0.05, batch_size=32, schedule="cosine", weight_decay=0.0)
BASELINE = "original"


@dataclass
class DemoResult:
    """One table per request, with the do-nothing baseline and the methods that beat it."""

    tables: list[ResultTable]
    out_dir: Path | None

    def winners(self, request: str) -> dict[str, float]:
        """``{method: how many times smaller its Avg-Gap is than the original's}`` for methods that beat it."""
        for table in self.tables:
            if table.meta.get("forget") == request:
                return {r["method"]: r["gain"] for r in table.rows if r.get("beats")}
        raise KeyError(request)


def mark_baseline(table: ResultTable) -> ResultTable:
    """Add to each method row how it compares with doing nothing (the original's Avg-Gap)."""
    base = next(r["avg_gap"] for r in table.rows if r["method"] == BASELINE)
    rows: list[dict[str, Any]] = []
    for r in table.rows:
        row = dict(r)
        gap = row.get("avg_gap")
        if row["method"] == BASELINE:
            row["method"], row["verdict"] = "original (do nothing)", "baseline"
        elif row["method"] == "retrain":
            row["verdict"] = "reference"
        elif row.get("failed"):
            row["verdict"] = "failed"
        else:
            row["beats"] = gap < base
            row["gain"] = base / gap if gap > 0 else float("inf")
            if row["beats"]:
                row["verdict"] = f"✓ {row['gain']:.1f}× smaller"
            else:
                row["verdict"] = "= no change" if abs(gap - base) < 0.005 else "✗ worse than nothing"
        rows.append(row)
    columns = [c for c in table.columns if c[0] not in ("seconds", "time_ratio")]
    columns += [("verdict", "vs do nothing"), ("seconds", "seconds")]
    title = f"{table.title} — do nothing: Avg-Gap {base:.2f}"
    return ResultTable(title, rows, columns, table.meta)


def run_demo(
    *,
    requests: Sequence[str] = DEMO_REQUESTS,
    out_dir: str | Path | None = None,
    cache_dir: str | None = None,
    device: str = "cpu",
    threads: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> DemoResult:
    """Benchmark each forget request on the demo original; tables are written to ``out_dir`` together."""
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if out_dir is not None:
        check_results_folder(out_dir, inputs=[cache_dir])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tables = [_request_table(spec, seed, cache_dir, device, progress) for spec in requests]
    finally:
        torch.set_num_threads(previous)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        with staged_folder(out, replace=True) as staging:
            for spec, table in zip(requests, tables):
                table.write(staging, stem="demo-" + spec.replace(":", "-").replace(".", "_"))
    return DemoResult(tables, out)


def _request_table(spec: str, seed: int, cache_dir: str | None, device: str, progress: bool) -> ResultTable:
    """The bench table of one forget request on the demo original, marked against doing nothing."""
    cfg = BenchConfig(
        dataset="digits",
        model=DEMO_MODEL,
        forget=spec,
        recipe=DEMO_RECIPE,
        train_subset=DEMO_TRAIN_SUBSET,
        seed=seed,
        cache_dir=cache_dir,
        device=device,
        progress=progress,
        stop="target",  # probed runs against the held-out target (the digits outside the subset)
        heldout="split",
    )
    table = run_bench(cfg).table
    table.meta["forget"] = spec
    return mark_baseline(table)
