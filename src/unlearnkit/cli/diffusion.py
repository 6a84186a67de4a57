"""Generative-unlearning commands: ``diff-train`` and ``diff-bench`` (miniature text-to-image model)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .options import add_common, parse_hparams


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", choices=("digits", "fashion-mnist"))
    p.add_argument("--train-subset", type=int, help="keep a fixed class-stratified subset of the training images")
    p.add_argument("--data-dir", help="folder with the dataset's files")
    p.add_argument("--steps", type=int, default=3000, help="DDPM training steps (default 3000)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--base", type=int, default=16, help="UNet base width (channels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="model cache (default ~/.cache/unlearnkit/diffusion)")


def _train_config(args: argparse.Namespace):
    from ..diffusion.training import DiffusionTrainConfig

    return DiffusionTrainConfig(
        steps=args.steps, lr=args.lr, batch_size=args.batch_size, base=args.base, seed=args.seed
    )


def cmd_diff_train(args: argparse.Namespace) -> int:
    from ..diffusion import cached_model, load_concept_data, parse_concept
    from ..diffusion.training import cache_key, default_cache_dir

    data = load_concept_data(args.dataset, train_subset=args.train_subset, data_dir=args.data_dir, seed=args.seed)
    exclude = parse_concept(args.exclude, data) if args.exclude else None
    cfg = _train_config(args)
    _, meta = cached_model(
        data, cfg, exclude=exclude, cache_dir=args.cache_dir, device=args.device, progress=not args.no_progress
    )
    path = (Path(args.cache_dir) if args.cache_dir else default_cache_dir()) / cache_key(data, cfg, exclude)
    print(f"model: {path}  (trained in {meta['seconds']:.1f}s on {meta['device']})")
    return 0


def cmd_diff_bench(args: argparse.Namespace) -> int:
    from ..diffusion.bench import DEFAULT_DIFF_METHODS, DiffBenchConfig, run_diff_bench
    from ..diffusion.evaluate import SamplingConfig

    out = args.out or str(Path("runs") / f"diff-bench-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = DiffBenchConfig(
        dataset=args.dataset,
        concept=args.concept,
        methods=args.methods.split(",") if args.methods else DEFAULT_DIFF_METHODS,
        hparams=parse_hparams(args.hp, nested=True),
        train=_train_config(args),
        sampling=SamplingConfig(
            steps=args.ddim_steps, guidance=args.guidance, per_prompt=args.per_prompt, seed=args.seed
        ),
        attack=not args.no_attack,
        attack_steps=args.attack_steps,
        train_subset=args.train_subset,
        data_dir=args.data_dir,
        seed=args.seed,
        cache_dir=args.cache_dir,
        out_dir=out,
        device=args.device,
        progress=not args.no_progress,
    )
    run = run_diff_bench(cfg)
    run.table.print()
    print(f"results: {out}/results.json, {out}/results.csv; sample grids: {out}/samples-*.png")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff-train", help="train (or find in the cache) the miniature text-to-image model")
    _add_train(p)
    p.add_argument("--exclude", help="train without a concept (the retrain reference), e.g. object:three")
    add_common(p)
    p.set_defaults(func=cmd_diff_train)

    p = sub.add_parser("diff-bench", help="original, retrain and every concept-erasure method, with attacks and grids")
    _add_train(p)
    p.add_argument("--concept", default="object:three", help="object:NAME|INDEX or style:NAME (default object:three)")
    p.add_argument("--methods", help="comma-separated (default: ga,rl,salun,esd-x,esd-u,concept-correction,advunlearn)")
    p.add_argument("--hp", action="append", metavar="METHOD.NAME=VALUE", help="method hyper-parameter (repeatable)")
    p.add_argument("--ddim-steps", type=int, default=25, help="DDIM steps for evaluation samples (<= 50)")
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance w")
    p.add_argument("--per-prompt", type=int, default=6, help="images generated per prompt")
    p.add_argument("--attack-steps", type=int, default=40, help="UnlearnDiffAtk optimisation steps per prompt")
    p.add_argument("--no-attack", action="store_true", help="skip UnlearnDiffAtk")
    p.add_argument("--out", help="results folder (default runs/diff-bench-DATASET-TIME)")
    add_common(p)
    p.set_defaults(func=cmd_diff_bench)
