"""Fashion-MNIST audit figures: U-LiRA and the ε score per method, random vs worst-case forget sets, and
tuned vs default hyper-parameters.

Small enough for a shared 2-core CPU: a fixed class-stratified training subset (default 4 000 images), the
`mlp` model (256-128) trained for 15 epochs, the full 10 000-image test set. Every part prints its table and
writes JSON/CSV under `--out`; the audit folder also gets `report.html`.

    python benchmarks/audit.py [--parts audit,worst,tune] [--methods ft,ga,rl,l1-sparse,salun] [--pairs 8]
        [--eps-runs 8] [--k 200] [--worst-methods ft,salun] [--worst-seeds 0,1,2] [--tune-methods ga,salun]
        [--trials 10] [--dataset fashion-mnist|digits]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from unlearnkit.audit import AuditConfig, run_audit, tune_request
from unlearnkit.bench import BenchConfig, run_bench
from unlearnkit.engine import Recipe
from unlearnkit.report import build_report
from unlearnkit.results import ResultTable

RECIPE = Recipe(epochs=15, lr=0.05, batch_size=128, schedule="cosine")


def _stamp(name: str, start: float) -> None:
    print(f"[{name}] wall-clock {time.perf_counter() - start:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="audit,worst,tune")
    ap.add_argument("--methods", default="ft,ga,rl,l1-sparse,salun")
    ap.add_argument("--subset", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--targets", type=int, default=400)
    ap.add_argument("--eps-runs", type=int, default=8)
    ap.add_argument("--k", type=int, default=200, help="forget-set size for random vs worst-case")
    ap.add_argument("--worst-methods", default="ft,salun")
    ap.add_argument("--worst-seeds", default="0,1,2", help="seeds of the random vs worst-case comparison")
    ap.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (default) or digits")
    ap.add_argument("--tune-methods", default="ga,salun")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", default=f"runs/audit-fashion-mnist-{time.strftime('%Y%m%d-%H%M%S')}")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    parts, out = args.parts.split(","), Path(args.out)
    base = BenchConfig(
        dataset=args.dataset,
        model="mlp",
        forget=f"random:{args.k}",
        methods=args.methods.split(","),
        recipe=RECIPE,
        seed=args.seed,
        train_subset=args.subset if args.dataset == "fashion-mnist" else None,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )
    if "audit" in parts:
        start = time.perf_counter()
        cfg = AuditConfig(
            dataclasses.replace(base, out_dir=str(out / "audit")),
            ulira_pairs=args.pairs,
            ulira_targets=args.targets,
            epsilon_runs=args.eps_runs,
        )
        table = run_audit(cfg)
        table.print()
        rep = build_report(out / "audit")
        print(f"report: {rep.html}")
        _stamp("audit", start)

    if "worst" in parts:
        start = time.perf_counter()
        rows = []
        for method in args.worst_methods.split(","):
            for seed in (int(s) for s in args.worst_seeds.split(",")):
                for spec in (f"random:{args.k}", f"worst:{method}:{args.k}"):
                    name = spec.split(":")[0]
                    run = run_bench(
                        dataclasses.replace(
                            base,
                            forget=spec,
                            methods=[method],
                            seed=seed,
                            out_dir=str(out / "worst" / f"{method}-{name}-{seed}"),
                        )
                    )
                    row = next(r for r in run.table.rows if r["method"] == method)
                    ref = next(r for r in run.table.rows if r["method"] == "retrain")
                    orig = next(r for r in run.table.rows if r["method"] == "original")
                    rows.append(
                        {
                            "method": method,
                            "seed": seed,
                            "forget": spec,
                            "ua": row["ua"],
                            "ua_retrain": ref["ua"],
                            "mia": row["mia"],
                            "mia_retrain": ref["mia"],
                            "avg_gap": row["avg_gap"],
                            "original_gap": orig["avg_gap"],
                        }
                    )
        t = ResultTable(
            f"random vs worst-case forget sets (K={args.k})",
            rows,
            [
                ("method", "method"),
                ("seed", "seed"),
                ("forget", "forget"),
                ("ua", "UA"),
                ("ua_retrain", "UA retrain"),
                ("mia", "MIA"),
                ("mia_retrain", "MIA retrain"),
                ("avg_gap", "Avg-Gap"),
                ("original_gap", "original Avg-Gap"),
            ],
        )
        t.print()
        t.write(out / "worst")
        _stamp("worst", start)

    if "tune" in parts:
        start = time.perf_counter()
        rows = []
        for method in args.tune_methods.split(","):
            rep = tune_request(
                dataclasses.replace(base, out_dir=str(out / "tune" / method)), method, n_trials=args.trials
            )
            rep.table.print()
            for r in rep.table.rows[1:]:
                rows.append(
                    {
                        "setting": r["setting"],
                        "avg_gap": r["avg_gap"],
                        "proxy_gap": r["proxy_gap"],
                        "hparams": r.get("hparams"),
                    }
                )
        t = ResultTable(
            "tuned vs default (Avg-Gap to retrain)",
            rows,
            [("setting", "setting"), ("proxy_gap", "proxy Avg-Gap"), ("avg_gap", "real Avg-Gap")],
        )
        t.print()
        t.write(out / "tune")
        _stamp("tune", start)


if __name__ == "__main__":
    main()
