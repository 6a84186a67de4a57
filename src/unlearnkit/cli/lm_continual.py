"""``lm-continual``: a sequence of unlearning requests, with O3 or an LM method applied request after request
(a thin wrapper over :func:`unlearnkit.lm.continual.run_continual_bench`)."""

from __future__ import annotations

import argparse

from .options import add_common, parse_hparams


def add_commands(sub) -> None:
    p = sub.add_parser(
        "lm-continual",
        help="unlearn requests one after another (O3 or a sequential LM method), evaluating after each",
        description="Apply unlearning requests in order and measure after every request: forget accuracy on "
        "every request so far, retain/world accuracy and neighbour locality. Without --requests the generated "
        "benchmark is used (--n-requests groups of --per-request people).",
    )
    p.add_argument("--model", help="local Hugging Face causal LM folder (default: the tiny model, trained here)")
    p.add_argument("--requests", help="comma-separated QA files, one per request (R1.jsonl,R2.jsonl,...)")
    p.add_argument("--retain", help="with --requests: retain QA (evaluation only; O3 never trains on it)")
    p.add_argument("--neighbour", help="with --requests: QA close to the forget people (locality)")
    p.add_argument("--world", help="with --requests: general-knowledge QA")
    p.add_argument("--method", default="o3", help="o3 or LM methods, comma-separated (e.g. o3,npo,ga)")
    p.add_argument("--with-retain", action="store_true", help="baselines use the retain data (O3 never does)")
    p.add_argument("--n-requests", type=int, default=4)
    p.add_argument("--per-request", type=int, default=5, help="people per request (generated benchmark)")
    p.add_argument("--people", type=int, default=60, help="people of the generated benchmark")
    p.add_argument("--epochs", type=int, default=160, help="training epochs of the tiny original/retain-only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", choices=("llama", "gpt2"), help="architecture of the tiny model (default: llama)")
    p.add_argument("--hp", action="append", help="METHOD.NAME=VALUE; o3.* sets the adapters, ood.* the detector")
    p.add_argument("--retain-eval", type=int, default=200, help="retain questions evaluated")
    p.add_argument("--cache-dir", help="where trained LMs are cached (default ~/.cache/unlearnkit/lm)")
    p.add_argument("--out", help="folder for results.json, results.csv and continual.png")
    add_common(p)
    p.set_defaults(func=_continual)


def _continual(args: argparse.Namespace) -> int:
    from ..lm.continual import ContinualBenchConfig, run_continual_bench

    hps = parse_hparams(args.hp, nested=True)
    cfg = ContinualBenchConfig(
        methods=[m.strip() for m in args.method.split(",") if m.strip()],
        with_retain=args.with_retain,
        model_path=args.model,
        request_files=[r for r in (args.requests or "").split(",") if r],
        retain_file=args.retain,
        neighbour_file=args.neighbour,
        world_file=args.world,
        n_requests=args.n_requests,
        per_request=args.per_request,
        n_people=args.people,
        epochs=args.epochs,
        seed=args.seed,
        o3=hps.pop("o3", {}),
        detector=hps.pop("ood", {}),
        hparams=hps,
        retain_eval=args.retain_eval,
        cache_dir=args.cache_dir,
        out_dir=args.out,
        device=args.device,
        progress=not args.no_progress,
        announce=True,
        tiny={"arch": args.arch} if args.arch else {},
    )
    table, _ = run_continual_bench(cfg)
    table.print()
    if args.out:
        print(f"wrote the results (JSON, CSV, plot when matplotlib is installed) to {args.out}")
    return 0
