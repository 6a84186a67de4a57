"""Language-model commands: ``lm-data``, ``lm-train``, ``lm-bench`` (thin wrappers over :mod:`unlearnkit.lm`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .options import add_common, parse_hparams


def _add_data(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (built-in fictitious people, or your own QA JSONL)")
    g.add_argument("--people", type=int, default=100, help="number of trained fictitious people (default 100)")
    g.add_argument("--holdout", type=int, default=20, help="never-trained people for the MIAs (default 20)")
    g.add_argument("--split", default="forget10", choices=("forget01", "forget05", "forget10"))
    g.add_argument("--forget-jsonl", help="your forget QA (one {question, answer, ...} per line)")
    g.add_argument("--retain-jsonl", help="your retain QA")
    g.add_argument("--holdout-jsonl", help="QA never trained on (enables the MIAs with your data)")
    g.add_argument("--neighbour-jsonl", help="retained QA close to the forget set (locality)")


def _add_model(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--model", help="local Hugging Face model folder to start from (default: the tiny model)")
    g.add_argument("--arch", default="llama", choices=("llama", "gpt2"))
    g.add_argument("--d-model", type=int, default=128)
    g.add_argument("--layers", type=int, default=2)
    g.add_argument("--epochs", type=int, help="training epochs of the original and retain-only models")
    g.add_argument("--lr", type=float, help="training learning rate")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--cache-dir", help="where trained LMs are cached (default ~/.cache/unlearnkit/lm)")


def _config(args: argparse.Namespace, **extra):
    from ..lm import LMBenchConfig, LMTrainConfig, TinyLMConfig

    train = LMTrainConfig()
    for key in ("epochs", "lr", "batch_size"):
        if getattr(args, key) is not None:
            setattr(train, key, getattr(args, key))
    return LMBenchConfig(
        n_people=args.people,
        n_holdout=args.holdout,
        split=args.split,
        seed=args.seed,
        forget_jsonl=args.forget_jsonl,
        retain_jsonl=args.retain_jsonl,
        holdout_jsonl=args.holdout_jsonl,
        neighbour_jsonl=args.neighbour_jsonl,
        model_path=args.model,
        tiny=TinyLMConfig(arch=args.arch, d_model=args.d_model, n_layers=args.layers),
        train=train,
        cache_dir=args.cache_dir,
        device=args.device,
        progress=not args.no_progress,
        **extra,
    )


def cmd_lm_data(args: argparse.Namespace) -> int:
    from ..lm import make_benchmark

    paths = make_benchmark(args.people, args.holdout, args.seed).to_jsonl(args.out)
    print(f"wrote {len(paths)} JSONL files to {args.out}")
    return 0


def cmd_lm_train(args: argparse.Namespace) -> int:
    from ..lm.bench import train_and_score

    report = train_and_score(_config(args))
    for which in ("original", "retain_only"):
        r = report[which]
        how = "cached" if r["cached"] else "trained"
        print(f"{which}: {r['path']}  ({how}, {r['seconds']:.0f}s; QA accuracy {r['accuracy']:.1%} on {r['n']} QA)")
    return 0


def cmd_lm_bench(args: argparse.Namespace) -> int:
    from ..lm import run_lm_bench

    out = args.out or str(Path("runs") / f"lm-bench-{time.strftime('%Y%m%d-%H%M%S')}")
    extra = {"out_dir": out, "hparams": parse_hparams(args.hp, nested=True), "attacks": not args.no_attacks}
    if args.methods:
        extra["methods"] = args.methods.split(",")
    run = run_lm_bench(_config(args, **extra))
    run.table.print()
    print(f"results: {out}/results.json, {out}/results.csv")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm-data", help="write the fictitious-people benchmark as JSONL")
    p.add_argument("--people", type=int, default=100)
    p.add_argument("--holdout", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the JSONL files")
    p.set_defaults(func=cmd_lm_data)

    p = sub.add_parser("lm-train", help="train (or load cached) original and retain-only LMs; report QA accuracy")
    _add_data(p)
    _add_model(p)
    add_common(p)
    p.set_defaults(func=cmd_lm_train)

    p = sub.add_parser("lm-bench", help="retain-only, original and every LM method in one table")
    _add_data(p)
    _add_model(p)
    p.add_argument("--methods", help="comma-separated (default: ga,grad-diff,npo,simnpo,idk-dpo,rmu,undial)")
    p.add_argument("--hp", action="append", metavar="METHOD.NAME=VALUE", help="method hyper-parameter (repeatable)")
    p.add_argument("--no-attacks", action="store_true", help="skip probes, in-context and relearning attacks")
    p.add_argument("--out", help="results folder (default runs/lm-bench-TIME)")
    add_common(p)
    p.set_defaults(func=cmd_lm_bench)
