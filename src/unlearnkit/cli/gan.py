"""GAN unlearning commands: ``gan-train`` (the bundled DCGAN-style miniature, cached), ``gan-unlearn``
(Adapt-then-Unlearn on a saved or bundled GAN) and ``gan-bench`` (the baseline and every repulsion variant)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .options import add_common, run_settings

#: the reference's ``accum`` (``gan.train.REFERENCE_EMA_DECAY``, not imported here to keep the parser free of torch)
REFERENCE_EMA_DECAY = 0.5 ** (32 / 10_000)


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", choices=("digits", "fashion-mnist"))
    p.add_argument("--train-subset", type=int, help="keep a fixed class-stratified subset of the training images")
    p.add_argument("--data-dir", help="folder with the dataset's files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="GAN and evaluator cache (default ~/.cache/unlearnkit/gan)")


def _add_train(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the original GAN")
    g.add_argument("--steps", type=int, default=3000, help="adversarial steps of the original (default 3000)")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--width", type=int, default=32, help="channels of the first layer (default 32)")
    g.add_argument("--z-dim", type=int, default=32)
    g.add_argument(
        "--original-ema-decay",
        type=_decay,
        default=REFERENCE_EMA_DECAY,
        help="decay of the generator's moving average the original is (the reference's g_ema), or 'none' for its "
        "trained weights (default 0.5**(32/10000))",
    )


def _add_method(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Adapt-then-Unlearn")
    g.add_argument("--gamma", type=float, default=1.0, help="repulsion scale γ (default 1)")
    g.add_argument("--ewc-lambda", type=float, default=5e8, help="EWC weight λ of stage 1 (default 5e8)")
    g.add_argument("--n-adapted", type=int, default=2, help="adapted models θ_N (default 2)")
    g.add_argument(
        "--ema-decay",
        type=_decay,
        default=REFERENCE_EMA_DECAY,
        help="decay of the generator's moving average both stages hand back, or 'none' for the trained weights "
        "(default 0.5**(32/10000), the reference's)",
    )
    g.add_argument("--adapt-steps", type=int, default=2000, help="stage-1 steps (default 2000)")
    g.add_argument("--unlearn-steps", type=int, default=3000, help="stage-2 steps (default 3000)")
    g.add_argument("--method-batch-size", type=int, default=16, help="batch size of both stages (default 16)")
    g.add_argument("--method-lr", type=float, default=2e-3, help="learning rate of both stages (default 2e-3)")
    g.add_argument("--n-negatives", type=int, default=64, help="negatives drawn for class:N (default 64)")
    g.add_argument("--positive-pool", type=int, default=5000, help="samples screened for positives (default 5000)")
    g.add_argument(
        "--positive-max-prob",
        type=float,
        help="confident positives: also drop samples the evaluator gives the feature this probability or more",
    )
    g.add_argument(
        "--balance-positives",
        action="store_true",
        help="class-balanced positives: restore the argmax positives' class mix after --positive-max-prob",
    )
    g.add_argument(
        "--preset",
        help="named settings for options left at their defaults (see docs/gan.md): miniature",
    )
    g.add_argument("--n-samples", type=int, default=2000, help="samples per model for the metrics (default 2000)")


def _decay(text: str) -> float | None:
    return None if text.strip().lower() == "none" else float(text)


def _train_config(args: argparse.Namespace):
    from ..gan.train import AdversarialRecipe, GANTrainConfig

    recipe = AdversarialRecipe(steps=args.steps, lr=args.lr, batch_size=args.batch_size)
    return GANTrainConfig(
        z_dim=args.z_dim, width=args.width, recipe=recipe, seed=args.seed, ema_decay=args.original_ema_decay
    )


def _method_config(args: argparse.Namespace, repulsion: str | None):
    from ..gan.adapt_unlearn import AdaptUnlearnConfig
    from ..gan.train import AdversarialRecipe

    def recipe(steps: int) -> AdversarialRecipe:
        return AdversarialRecipe(steps=steps, batch_size=args.method_batch_size, lr=args.method_lr)

    return AdaptUnlearnConfig(
        repulsion=repulsion,
        gamma=args.gamma,
        ewc_lambda=args.ewc_lambda,
        n_adapted=args.n_adapted,
        ema_decay=args.ema_decay,
        adapt=recipe(args.adapt_steps),
        unlearn=recipe(args.unlearn_steps),
        seed=args.seed,
    )


def _data(args: argparse.Namespace, split: str = "train"):
    from ..gan.train import load_images

    subset = args.train_subset if split == "train" else None
    return load_images(args.dataset, split=split, train_subset=subset, data_dir=args.data_dir, seed=args.seed)


def cmd_gan_train(args: argparse.Namespace) -> int:
    from ..gan.train import cached_gan

    _, meta, folder = cached_gan(
        _data(args), _train_config(args), cache_dir=args.cache_dir, device=args.device, progress=not args.no_progress
    )
    print(f"GAN: {folder}  (trained in {meta['seconds']:.1f}s on {meta['device']})")
    return 0


def _preset(args: argparse.Namespace) -> None:
    from ..gan.presets import apply_preset

    changed = apply_preset(args, args.preset, args.option_defaults)
    if changed:
        print(f"preset {args.preset}: " + ", ".join(f"{k}={getattr(args, k)}" for k in changed))


def cmd_gan_unlearn(args: argparse.Namespace) -> int:
    from ..data.arrays import read_array_file
    from ..gan.adapt_unlearn import adapt_then_unlearn, resolve_negatives, select_positives
    from ..gan.metrics import evaluate_gan, evaluator_for, feature_probability, real_reference
    from ..gan.train import cached_gan, load_gan, save_gan
    from ..outputs import check_output_folder

    _preset(args)
    repulsion = None if args.repulsion == "none" else args.repulsion
    cfg = _method_config(args, repulsion)
    inputs = [args.model, args.negatives, args.data_dir, args.cache_dir]
    out = check_output_folder(args.out, overwrite=args.overwrite, inputs=inputs)
    if Path(args.negatives).is_file():  # a file of negatives is checked before any GAN is trained or loaded
        read_array_file(args.negatives, what="negative images")
    data, progress = _data(args), not args.no_progress
    if args.model:
        gan, _ = load_gan(args.model)
    else:
        gan, _, _ = cached_gan(
            data, _train_config(args), cache_dir=args.cache_dir, device=args.device, progress=progress
        )
    ev = evaluator_for(data, _data(args, "test"), cache_dir=args.cache_dir, seed=args.seed, device=args.device)

    def predict(x):
        return ev.predict("object", x.to(next(ev.object.parameters()).device))

    negatives, feature = resolve_negatives(
        args.negatives, gan, predict, n=args.n_negatives, feature=args.feature,
        num_classes=len(data.class_names), seed=args.seed + 1,
    )  # fmt: skip
    positives = select_positives(
        gan, predict, feature, args.positive_pool, seed=args.seed + 2,
        feature_prob=lambda x: feature_probability(ev, x, feature),
        max_prob=args.positive_max_prob, balance=args.balance_positives,
    )  # fmt: skip
    res = adapt_then_unlearn(gan, negatives, positives, cfg, device=args.device, progress=progress)
    ref = real_reference(ev, data, feature, args.n_samples, seed=args.seed)
    before = evaluate_gan(gan, ev, ref, feature, n_samples=args.n_samples)
    after = evaluate_gan(res.gan, ev, ref, feature, n_samples=args.n_samples)
    meta = {
        "dataset": data.name,
        "unlearned_class": feature,
        "method": cfg.name,
        "negatives": args.negatives,
        "n_negatives": len(negatives),
        "n_positives": len(positives),
        "metrics_before": before,
        "metrics_after": after,
        "seconds": res.seconds,
    }
    save_gan(res.gan.cpu(), out, meta, overwrite=args.overwrite)
    name = data.class_names[feature]
    print(f"{cfg.name}: class {feature} ({name}) from {len(negatives)} negatives, {len(positives)} positives")
    print(f"  feature share {before['feature_share']:.2f}% -> {after['feature_share']:.2f}%")
    print(f"  FD of the rest {before['fd_rest']:.2f} -> {after['fd_rest']:.2f} (noise floor {ref.floor:.2f})")
    print(f"  precision {after['precision']:.1f}%, recall {after['recall']:.1f}%; saved to {out}")
    return 0


def _gammas(items: list[str] | None) -> dict[str, float]:
    from ..errors import ConfigError

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(f"bad --gamma-for {item!r}; write VARIANT=VALUE, e.g. il2=1e-8")
    return out


def cmd_gan_bench(args: argparse.Namespace) -> int:
    from ..gan.bench import GANBenchConfig, run_gan_bench

    _preset(args)
    out = args.out or str(Path("runs") / f"gan-bench-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = GANBenchConfig(
        dataset=args.dataset,
        feature=args.feature,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        gammas=_gammas(args.gamma_for),
        train=_train_config(args),
        method=_method_config(args, "el2"),
        n_negatives=args.n_negatives,
        positive_pool=args.positive_pool,
        fd_draws=args.fd_draws,
        positive_max_prob=args.positive_max_prob,
        balance_positives=args.balance_positives,
        n_samples=args.n_samples,
        **run_settings(args, out),
    )
    run = run_gan_bench(cfg)
    run.table.print()
    print(f"results: {out}/results.json, {out}/results.csv; samples: {out}/samples.png")
    return 0


def _defaults(p: argparse.ArgumentParser) -> dict:
    return {a.dest: a.default for a in p._actions if a.dest != "help"}


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gan-train", help="train (or find in the cache) the bundled DCGAN-style GAN")
    _add_data(p)
    _add_train(p)
    add_common(p)
    p.set_defaults(func=cmd_gan_train)

    p = sub.add_parser("gan-unlearn", help="Adapt-then-Unlearn: stop a GAN from generating a class or feature")
    p.add_argument("--negatives", required=True, help="class:N, or a folder (or .pt/.npy) of images with the feature")
    p.add_argument("--feature", type=int, help="class index of the feature (default: inferred from the negatives)")
    p.add_argument("--model", help="GAN checkpoint folder (default: the bundled GAN of --dataset)")
    p.add_argument("--repulsion", default="el2", choices=("el2", "nl2", "il2", "none"), help="default el2")
    p.add_argument("--out", required=True, help="new folder for the unlearned GAN")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --out")
    _add_data(p)
    _add_train(p)
    _add_method(p)
    add_common(p)
    p.set_defaults(func=cmd_gan_unlearn, option_defaults=_defaults(p))

    p = sub.add_parser("gan-bench", help="original, fine-tuning baseline and every repulsion variant, one table")
    p.add_argument("--feature", type=int, default=3, help="class index to unlearn (default 3)")
    p.add_argument("--variants", default="finetune,el2,nl2,il2", help="comma-separated (default all four)")
    p.add_argument("--gamma-for", action="append", metavar="VARIANT=VALUE", help="γ of one variant (repeatable)")
    p.add_argument("--out", help="results folder (default runs/gan-bench-DATASET-TIME)")
    p.add_argument(
        "--fd-draws", type=int, default=1, help="sample sets per model averaged for the shares and FD (default 1)"
    )
    _add_data(p)
    _add_train(p)
    _add_method(p)
    add_common(p)
    p.set_defaults(func=cmd_gan_bench, option_defaults=_defaults(p))
