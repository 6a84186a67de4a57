"""Argument helpers shared by command modules."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..engine import OPTIMIZERS, SCHEDULES, Recipe
from ..errors import ConfigError

RECIPE_KEYS = ("epochs", "lr", "optimizer", "batch_size", "schedule", "weight_decay")


def parse_value(text: str) -> Any:
    """``"0.1"`` → 0.1, ``"true"`` → True, ``"[1,2]"`` → [1, 2]; anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_hparams(items: list[str] | None, *, nested: bool, method: str | None = None) -> dict[str, Any]:
    """``["lr=0.1"]`` → ``{"lr": 0.1}``; with ``nested``, ``["salun.lr=0.1"]`` → ``{"salun": {"lr": 0.1}}``.
    A command that runs one ``method`` also takes that method's prefix (``npo.lr=…`` = ``lr=…``), as bench does."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"bad --hp {item!r}; write NAME=VALUE" + (" as METHOD.NAME=VALUE" if nested else ""))
        key, value = item.split("=", 1)
        if not nested and method is not None and "." in key:
            prefix, name = key.split(".", 1)
            if prefix != method:
                raise ConfigError(f"--hp {item!r} names method {prefix!r}, but this command runs {method!r}")
            key = name
        if nested:
            if "." not in key:
                raise ConfigError(f"bad --hp {item!r}; name the method: METHOD.NAME=VALUE (e.g. salun.lr=0.02)")
            method, key = key.split(".", 1)
            out.setdefault(method, {})[key] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out


def run_settings(args: argparse.Namespace, out: str) -> dict[str, Any]:
    """The :class:`unlearnkit.runtime.RunSettings` fields of a bench config, from the command's options."""
    return {
        "train_subset": args.train_subset,
        "data_dir": args.data_dir,
        "seed": args.seed,
        "cache_dir": args.cache_dir,
        "out_dir": out,
        "device": args.device,
        "progress": not args.no_progress,
    }


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_recipe(p: argparse.ArgumentParser, title: str = "training recipe (defaults depend on the dataset)") -> None:
    """``--epochs --lr --optimizer --batch-size --schedule --weight-decay``."""
    g = p.add_argument_group(title)
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--optimizer", choices=OPTIMIZERS)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--schedule", choices=SCHEDULES)
    g.add_argument("--weight-decay", type=float)


def recipe_given(args: argparse.Namespace) -> bool:
    """Whether any recipe option was given on the command line."""
    return any(getattr(args, k, None) is not None for k in RECIPE_KEYS)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The dataset's default recipe with the options given on the command line applied."""
    from ..training import default_recipe

    values = default_recipe(args.dataset).to_dict()
    values.update({k: getattr(args, k) for k in RECIPE_KEYS if getattr(args, k, None) is not None})
    return Recipe(**values)


def add_data(p: argparse.ArgumentParser, dataset: bool = True) -> None:
    """``--data-dir``, and with ``dataset`` also ``--dataset`` and ``--train-subset``."""
    if dataset:
        p.add_argument("--dataset", default="digits", help="registered dataset (default: digits)")
        p.add_argument("--train-subset", type=int, help="keep a fixed class-stratified subset of the training set")
    p.add_argument("--data-dir", help="folder with the dataset's files (else $UNLEARNKIT_DATA, then system paths)")


def bench_config_from_args(args: argparse.Namespace, methods: list[str] | tuple[str, ...], kind: str, **extra: Any):
    """A :class:`~unlearnkit.bench.BenchConfig` from the data, recipe, ``--hp`` and run options shared by
    ``bench``, ``audit`` and ``tune``; results go to ``--out`` or ``runs/KIND-DATASET-TIME``."""
    from ..bench import BenchConfig

    out = args.out or str(Path("runs") / f"{kind}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    return BenchConfig(
        dataset=args.dataset,
        model=args.model,
        forget=args.forget,
        methods=methods,
        recipe=recipe_from_args(args) if recipe_given(args) else None,
        hparams=parse_hparams(args.hp, nested=True),
        seed=args.seed,
        data_dir=args.data_dir,
        train_subset=args.train_subset,
        cache_dir=args.cache_dir,
        out_dir=out,
        device=args.device,
        progress=not args.no_progress,
        **extra,
    )
