"""LM unlearning benchmark: train the tiny LM pair (timed, QA accuracy) and run lm-bench.

Usage: OMP_NUM_THREADS=1 python benchmarks/lm_unlearning.py [--people N] [--holdout N] [--readers N] [--epochs N]
       [--d-model N] [--vocab N] [--batch-size N] [--lr X] [--cache-dir DIR] [--out DIR] [--methods a,b]
       [--order retain_only,original]
       [--train-only]
Prints the training figures, the results table (with peak RSS) and the attack columns; JSON/CSV go to --out.
To train the two models at once, start a second copy with ``--order retain_only,original --train-only`` and the
same options: both share the cache, and each loads the model the other has finished.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from unlearnkit.cli.options import parse_hparams
from unlearnkit.lm import LMBenchConfig, LMTrainConfig, TinyLMConfig, run_lm_bench
from unlearnkit.lm.api import unlearn_lm
from unlearnkit.lm.bench import load_split, qa_accuracy, train_and_score, train_pair


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", default="runs/lm-bench-benchmark")
    ap.add_argument("--methods")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--people", type=int, default=100)
    ap.add_argument("--readers", type=int, default=200)
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--order", default="original,retain_only", help="which model to train first")
    ap.add_argument("--train-only", action="store_true", help="train (or load) the pair and stop")
    ap.add_argument("--no-probe", action="store_true", help="run every method's whole budget (no held-out target)")
    ap.add_argument(
        "--hp",
        action="append",
        metavar="METHOD.KEY=VALUE",
        help="a method's hyper-parameter for lm-bench, as `unlearnkit lm-bench --hp` (repeatable)",
    )
    ap.add_argument(
        "--tune",
        action="append",
        metavar='METHOD:{"lr":1e-3}',
        help="instead of lm-bench, run METHOD with these hyper-parameters (repeatable) and print forget, retain and "
        "world-facts QA accuracy (how the tiny-model defaults were chosen)",
    )
    args = ap.parse_args()
    extra = {"methods": args.methods.split(",")} if args.methods else {}
    cfg = LMBenchConfig(
        n_people=args.people,
        n_holdout=args.holdout,
        n_readers=args.readers,
        tiny=TinyLMConfig(d_model=args.d_model),
        vocab_size=args.vocab,
        train=LMTrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size),
        seed=args.seed,
        cache_dir=args.cache_dir,
        out_dir=args.out,
        probe=not args.no_probe,
        hparams=parse_hparams(args.hp, nested=True),
        progress=False,
        **extra,
    )
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    start = time.perf_counter()
    report = train_and_score(cfg, order=tuple(args.order.split(",")))
    for which, r in report.items():
        state = "cached" if r["cached"] else "trained"
        print(f"{which}: {state}, train {r['seconds']:.0f}s, QA accuracy {r['accuracy']:.1%} ({r['n']} QA)")
    if args.train_only:
        return
    if args.tune:
        tune(cfg, args.tune)
        return
    t0 = time.perf_counter()
    run = run_lm_bench(cfg)
    print(run.table.render())
    extra_cols = sorted({k for r in run.table.rows for k in r if k.startswith(("probe_", "icl_", "relearn_"))})
    extra_cols += ["retain_acc", "world_acc", "neighbour_acc", "forget_verbmem", "forget_knowmem", "peak_rss_mb"]
    for r in run.table.rows:
        print(r["method"], " ".join(f"{k}={r[k]:.2f}" for k in extra_cols if k in r))
    print(f"lm-bench (after training) {time.perf_counter() - t0:.0f}s; total {time.perf_counter() - start:.0f}s")


def tune(cfg: LMBenchConfig, settings: list[str]) -> None:
    """Forget / retain (60 questions) / world-facts QA accuracy of the pair and of each METHOD:JSON setting."""
    split = load_split(cfg)
    pair = train_pair(cfg, split)
    retain = split.retain_eval(60)

    def score(model) -> str:
        accs = [qa_accuracy(model, pair.tokenizer, qa) for qa in (split.forget, retain, split.world)]
        return "forget {:.2f}  retain {:.2f}  world {:.2f}".format(*accs)

    print(f"original     {score(pair.original)}")
    print(f"retain-only  {score(pair.retain_only)}")
    for setting in settings:
        method, _, raw = setting.partition(":")
        hps = {"seed": cfg.seed, **json.loads(raw or "{}")}
        res = unlearn_lm(pair.original, pair.tokenizer, split, method, progress=False, probe=cfg.probe, **hps)
        print(f"{method} {json.dumps(hps)}  {score(res.model)}  ({res.seconds:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
