"""Core commands: ``train``, ``unlearn``, ``evaluate``, ``bench``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_common, add_data, add_recipe, bench_config_from_args, parse_hparams, recipe_from_args


def cmd_train(args: argparse.Namespace) -> int:
    from ..workflow import train_checkpoint

    path, meta = train_checkpoint(
        args.out,
        dataset=args.dataset,
        model=args.model,
        recipe=recipe_from_args(args),
        seed=args.seed,
        data_dir=args.data_dir,
        train_subset=args.train_subset,
        device=args.device,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    m = meta["metrics"]
    print(f"saved {path}  ({meta['seconds']:.1f}s; " + ", ".join(f"{k.upper()} {v:.2f}" for k, v in m.items()) + ")")
    return 0


def cmd_unlearn(args: argparse.Namespace) -> int:
    from ..workflow import unlearn_checkpoint

    path, meta = unlearn_checkpoint(
        args.model,
        args.out,
        forget=args.forget,
        method=args.method,
        hparams=parse_hparams(args.hp, nested=False, method=args.method),
        seed=args.seed,
        data_dir=args.data_dir,
        device=args.device,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    m = meta["metrics"]
    print(
        f"saved {path}  ({args.method}, {meta['seconds']:.1f}s; "
        + ", ".join(f"{k.upper()} {v:.2f}" for k, v in m.items())
        + ")"
    )
    if "auto" in meta:
        print(f"auto: {meta['auto']['verdict']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..results import ResultTable
    from ..workflow import evaluate_checkpoint

    ev = evaluate_checkpoint(
        args.model, forget=args.forget, reference=args.reference, seed=args.seed, data_dir=args.data_dir
    )
    row = {"model": Path(args.model).name, **ev.metrics, "avg_gap": ev.avg_gap}
    columns = [("model", "model")] + [(k, k.upper()) for k in ev.metrics] + [("avg_gap", "Avg-Gap")]
    ResultTable(f"{args.model} · forget {args.forget}", [row], columns).print()
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import DEFAULT_METHODS, run_bench

    methods = args.methods.split(",") if args.methods else DEFAULT_METHODS
    cfg = bench_config_from_args(
        args,
        methods,
        "bench",
        scale_epochs=not args.no_scale_epochs,
        budget=args.budget,
        save_predictions=args.predictions,
        heldout=args.heldout,
        stop=args.stop,
    )
    out = cfg.out_dir
    run = run_bench(cfg)
    run.table.print()
    for row in run.table.rows:
        if row.get("failed"):
            print(f"{row['method']} failed: {row['failed']}")
        if "auto" in row:
            print(f"auto: {row['auto']['verdict']}")
    print(f"results: {out}/results.json, {out}/results.csv")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from ..demo import run_demo

    out = args.out or str(Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    res = run_demo(
        out_dir=out,
        cache_dir=args.cache_dir,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        progress=not args.no_progress,
    )
    for table in res.tables:
        table.print()
        spec = table.meta["forget"]
        wins = res.winners(spec)
        best = max(wins, key=wins.get) if wins else None
        verdict = f"best {best}, Avg-Gap {wins[best]:.1f}× smaller" if best else "none does"
        print(f"{spec}: {len(wins)} method(s) beat doing nothing ({verdict})\n")
    print(f"results: {out}/demo-*.json, {out}/demo-*.csv")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train and save an original model")
    add_data(p)
    p.add_argument("--model", default="cnn", help="registered model (mlp, cnn, resnet18)")
    add_recipe(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("unlearn", help="apply a method to a checkpoint and save the result to a new folder")
    p.add_argument("--model", required=True, help="original checkpoint folder (never modified)")
    p.add_argument("--forget", required=True, help="forget spec: random:0.1, random:450, class:3, indices:FILE")
    p.add_argument("--method", default="salun")
    p.add_argument("--hp", action="append", metavar="NAME=VALUE", help="hyper-parameter (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="new checkpoint folder for the unlearned model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing (non-original) checkpoint at --out")
    add_data(p, dataset=False)
    add_common(p)
    p.set_defaults(func=cmd_unlearn)

    p = sub.add_parser("evaluate", help="UA, RA, TA, MIA of a checkpoint (and gaps to a reference)")
    p.add_argument("--model", required=True)
    p.add_argument("--forget", required=True)
    p.add_argument("--reference", help="retrained checkpoint to compute gaps against")
    p.add_argument("--seed", type=int, default=0, help="seed of the forget spec (random draws)")
    add_data(p, dataset=False)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="class-wise and random forgetting on digits vs doing nothing (make demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default, reproducible), cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (results depend on it; default 1)")
    p.add_argument("--cache-dir", help="where originals and retrains are cached (default ~/.cache/unlearnkit)")
    p.add_argument("--out", help="results folder (default runs/demo-TIME)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="original, retrain and every method in one table (the main job)")
    add_data(p)
    p.add_argument("--model", default="cnn")
    p.add_argument("--forget", default="random:0.1")
    p.add_argument("--methods", help="comma-separated (default: ft,ga,rl,l1-sparse,salun)")
    p.add_argument("--hp", action="append", metavar="METHOD.NAME=VALUE", help="method hyper-parameter (repeatable)")
    p.add_argument(
        "--no-scale-epochs",
        action="store_true",
        help="use methods' published epochs instead of scaling them to the original's recipe",
    )
    p.add_argument(
        "--budget",
        default="scaled",
        choices=("scaled", "published"),
        help="scaled: epochs scaled to the original's and at least 200 optimiser steps; published: raw values",
    )
    add_recipe(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="where originals and retrains are cached (default ~/.cache/unlearnkit)")
    p.add_argument("--out", help="results folder (default runs/bench-DATASET-TIME)")
    p.add_argument("--predictions", action="store_true", help="also write predictions.npz (read by `report`)")
    p.add_argument(
        "--heldout",
        metavar="SPEC",
        help="where the methods' target comes from: split (data neither train nor test; the default with --stop "
        "target), none, or X,Y (.npy/.pt files)",
    )
    p.add_argument(
        "--stop",
        choices=("target", "budget"),
        default="budget",
        help="budget (default): run the whole budget as published; target: probed runs that stop at the target, "
        "keep their best state, never collapse",
    )
    add_common(p)
    p.set_defaults(func=cmd_bench)
