"""Diabetes regression unlearning benchmark ("Deep Regression Unlearning", Tarun et al., ICML 2023 setting,
on scikit-learn's bundled diabetes data): random 10 % forgetting, the `mlp` regressor, the regression
methods with their published settings (epochs scaled to the original's recipe by ``bench``), several seeds.

Prints one table per seed and the mean over seeds (forget/retain/test MAE in % of a target SD, R² × 100,
loss-based MIA, Avg-Gap to retrain, seconds, time/retrain), and writes ``results.{json,csv}`` under ``--out``.

    python benchmarks/regression.py [--seeds 0,1,2] [--methods ft,blindspot] [--forget random:0.1]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from unlearnkit.bench import BenchConfig, run_bench
from unlearnkit.metrics.regression import REGRESSION_HEADLINE
from unlearnkit.results import ResultTable

METHODS = "ft,ga,l1-sparse,blindspot,gaussian-amnesiac,ssd,iu,prune-then-unlearn,gradient-surgery"


def mean_table(tables: list[ResultTable], title: str) -> ResultTable:
    """The per-method mean of every numeric column over ``tables`` (one per seed)."""
    keys = [*REGRESSION_HEADLINE, "avg_gap", "seconds", "time_ratio"]
    rows = []
    for i, first in enumerate(tables[0].rows):
        row = {"method": first["method"]}
        for k in keys:
            vals = [t.rows[i].get(k) for t in tables]
            vals = [v for v in vals if isinstance(v, int | float) and not math.isnan(v)]
            row[k] = sum(vals) / len(vals) if vals else None
        rows.append(row)
    columns = [("method", "method")] + [(k, k) for k in keys]
    return ResultTable(title, rows, columns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--forget", default="random:0.1")
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", default=f"runs/regression-{time.strftime('%Y%m%d-%H%M%S')}")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    tables = []
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = BenchConfig(
            dataset="diabetes",
            model="mlp",
            forget=args.forget,
            methods=args.methods.split(","),
            seed=seed,
            cache_dir=args.cache_dir,
            out_dir=str(Path(args.out) / f"seed{seed}"),
            progress=not args.no_progress,
        )
        run = run_bench(cfg)
        run.table.print()
        tables.append(run.table)
    summary = mean_table(tables, f"diabetes · mlp · forget {args.forget} · mean over seeds {args.seeds}")
    summary.print()
    summary.write(args.out, stem="mean")
    print(f"wall-clock {time.perf_counter() - start:.0f}s · results in {args.out}")


if __name__ == "__main__":
    main()
