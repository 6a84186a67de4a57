"""``expose``: clean unlearning of a checkpoint, reporting the label its predictions collapse to."""

from __future__ import annotations

import argparse
import json

from .options import add_common, parse_hparams


def cmd_expose(args: argparse.Namespace) -> int:
    import numpy as np

    from ..checkpoint import load, save
    from ..data.registry import load_dataset
    from ..methods.clean_unlearning import expose_backdoor
    from ..outputs import check_output_folder

    if args.out:
        check_output_folder(args.out, overwrite=False, inputs=[args.model, args.data_dir])
    model, meta = load(args.model)
    bundle = load_dataset(
        meta["dataset"], data_dir=args.data_dir or meta.get("data_dir"), train_subset=meta.get("train_subset")
    )
    n = max(1, int(round(args.clean_fraction * len(bundle.train))))
    clean = bundle.train.subset(np.sort(np.random.default_rng(args.seed).choice(len(bundle.train), n, replace=False)))
    hps = {"seed": args.seed, **parse_hparams(args.hp, nested=False)}
    exposed, report = expose_backdoor(
        model, clean, num_classes=bundle.num_classes, device=args.device, progress=not args.no_progress, **hps
    )
    print(json.dumps({"clean_examples": n, **report.to_dict()}, indent=2))
    if args.out:
        save(exposed, args.out, {**meta, "kind": "exposed", "exposure": report.to_dict(), "hparams": hps})
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expose", help="clean unlearning of a checkpoint: which label do predictions collapse to?")
    p.add_argument("--model", required=True, help="checkpoint folder (never modified)")
    p.add_argument("--clean-fraction", type=float, default=0.01, help="share of the training set used as clean data")
    p.add_argument("--hp", action="append", metavar="NAME=VALUE", help="clean-unlearning hyper-parameter (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also save the exposed model to this new folder")
    p.add_argument("--data-dir", help="folder with the dataset's files")
    add_common(p)
    p.set_defaults(func=cmd_expose)
