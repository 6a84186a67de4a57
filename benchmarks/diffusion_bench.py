"""Generative unlearning on the miniature text-to-image model: the default ``diff-bench`` on digits.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/diffusion_bench.py [--concept object:three] [--seed 0] [--out DIR]

Prints the results table (UA split into replaced / destroyed, IRA, CRA, Fréchet distance in the evaluator's
feature space with its real-vs-real noise floor, per-prompt attack success before/after UnlearnDiffAtk, seconds,
peak memory, storage), the wall-clock of each stage and where the PNG
grids are. Trained models are cached in ~/.cache/unlearnkit/diffusion, so a second run skips training; pass
``--cache-dir`` to a fresh folder to time training too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from unlearnkit.diffusion import DiffBenchConfig, SamplingConfig, run_diff_bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--concept", default="object:three")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", default="runs/diffusion-bench")
    ap.add_argument("--methods", help="comma-separated subset of the default methods ('' for none)")
    ap.add_argument("--no-retrain", action="store_true", help="skip the retrain reference")
    ap.add_argument("--no-baselines", action="store_true", help="only the methods' rows (split a run over processes)")
    ap.add_argument("--attack-models", help="comma-separated rows to attack with UnlearnDiffAtk (default: all)")
    ap.add_argument("--per-prompt", type=int, default=6, help="images per prompt for the metrics")
    args = ap.parse_args()
    cfg = DiffBenchConfig(
        concept=args.concept,
        seed=args.seed,
        cache_dir=args.cache_dir,
        out_dir=args.out,
        sampling=SamplingConfig(seed=args.seed, per_prompt=args.per_prompt),
        progress=False,
        retrain=not args.no_retrain,
        baselines=not args.no_baselines,
        attack_models=args.attack_models.split(",") if args.attack_models else None,
        **({"methods": [m for m in args.methods.split(",") if m]} if args.methods is not None else {}),
    )
    start = time.perf_counter()
    run = run_diff_bench(cfg)
    total = time.perf_counter() - start
    run.table.print()
    print(f"torch threads: {torch.get_num_threads()}; total wall-clock: {total:.0f}s")
    for r in run.table.rows:
        if r.get("adversarial_prompts"):
            print(f"{r['model']:>20}: adversarial prompts {r['adversarial_prompts'][:2]}")
    print("evaluator accuracy on real test images:", json.dumps(run.table.meta["evaluator_test_accuracy"]))
    print("grids:", ", ".join(str(Path(p)) for p in run.grids.values()))


if __name__ == "__main__":
    main()
