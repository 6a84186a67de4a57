"""Evidence commands: ``audit`` (U-LiRA, ε score, population and relearning attacks), ``tune``, ``report``."""

from __future__ import annotations

import argparse

from .options import add_common, add_data, add_recipe, bench_config_from_args


def cmd_audit(args: argparse.Namespace) -> int:
    from ..audit import AuditConfig, run_audit
    from ..bench import DEFAULT_METHODS

    bench = bench_config_from_args(args, args.methods.split(",") if args.methods else list(DEFAULT_METHODS), "audit")
    cfg = AuditConfig(
        bench,
        ulira_pairs=args.pairs,
        ulira_targets=args.targets,
        epsilon_runs=args.eps_runs,
        epsilon_family=args.eps_family,
        relearn_steps=args.relearn_steps,
        relearn_k=args.relearn_k,
        relearn_lr=args.relearn_lr,
        relearn_source=args.relearn_source,
        retrain_reference=not args.no_reference,
    )
    table = run_audit(cfg)
    table.print()
    for note in table.meta.get("notes", []):
        print(f"note: {note}")
    print(
        f"audit: {bench.out_dir}/audit.json, {bench.out_dir}/audit_results.csv; next: unlearnkit report {bench.out_dir}"
    )
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from ..audit import tune_request

    bench = bench_config_from_args(args, [args.method], "tune")
    params = args.params.split(",") if args.params else None
    rep = tune_request(
        bench, args.method, n_trials=args.trials, params=params, objective=args.objective, eps_runs=args.eps_runs
    )
    rep.table.print()
    for warning in rep.warnings:
        print(f"warning: {warning}")
    print(f"tuned {args.method}: {rep.tune.best_hparams}")
    print(f"results: {bench.out_dir}/tune.json, {bench.out_dir}/tune_results.csv")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import build_report

    rep = build_report(args.run_dir, args.out)
    print(f"report: {rep.html} ({len(rep.figures)} figures), {rep.markdown}")
    for note in rep.notes:
        print(f"note: {note}")
    return 0


def _add_run(p: argparse.ArgumentParser) -> None:
    add_data(p)
    p.add_argument("--model", default="cnn")
    p.add_argument("--forget", default="random:0.1", help="forget spec, also worst:METHOD:K[:best|:gap][:classes]")
    p.add_argument("--hp", action="append", metavar="METHOD.NAME=VALUE", help="method hyper-parameter (repeatable)")
    add_recipe(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="where originals and retrains are cached (default ~/.cache/unlearnkit)")
    add_common(p)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="bench plus U-LiRA, the ε score, population and relearning attacks")
    _add_run(p)
    p.add_argument("--methods", help="comma-separated (default: ft,ga,rl,l1-sparse,salun)")
    p.add_argument("--pairs", type=int, default=8, help="U-LiRA shadow pairs K (0 skips U-LiRA; default 8)")
    p.add_argument("--targets", type=int, help="U-LiRA target examples (default min(500, N/4))")
    p.add_argument("--eps-runs", type=int, default=8, help="unlearned and retrained runs N for ε (0 skips; default 8)")
    p.add_argument(
        "--eps-family",
        choices=("challenge", "intervals"),
        default="challenge",
        help="ε attack family: the NeurIPS 2023 challenge scoring (default) or every interval (not comparable)",
    )
    p.add_argument("--relearn-steps", type=int, default=10, help="relearning steps (0 skips; default 10)")
    p.add_argument(
        "--relearn-k",
        type=int,
        help="report forget accuracy after k steps, 1 … --relearn-steps (default: 2 for class-wise requests, where "
        "a retrain relearns the class within a few steps; --relearn-steps for the others)",
    )
    p.add_argument("--relearn-lr", type=float, default=0.05, help="relearning learning rate (default 0.05)")
    p.add_argument(
        "--relearn-source",
        choices=("forget", "neighbours"),
        default="forget",
        help="relearn on a forget slice (default) or on its nearest retain neighbours",
    )
    p.add_argument("--no-reference", action="store_true", help="skip the retrain-vs-retrain reference rows")
    p.add_argument("--out", help="run folder (default runs/audit-DATASET-TIME)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("tune", help="tune a method's hyper-parameters against retrain on a proxy forget set")
    _add_run(p)
    p.add_argument("--method", default="salun")
    p.add_argument("--trials", type=int, default=20, help="Optuna trials; the first is the defaults (default 20)")
    p.add_argument("--params", help="comma-separated hyper-parameters to tune (default: lr, epochs and bounded ones)")
    p.add_argument(
        "--objective",
        choices=("avg_gap", "epsilon"),
        default="avg_gap",
        help="minimise Avg-Gap to the proxy retrain (default) or maximise the ε score",
    )
    p.add_argument("--eps-runs", type=int, default=4, help="runs per trial for --objective epsilon (default 4)")
    p.add_argument("--out", help="run folder (default runs/tune-DATASET-TIME)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("report", help="HTML + Markdown report of a bench/audit folder")
    p.add_argument("run_dir", help="folder written by bench or audit")
    p.add_argument("--out", help="where to write report.html/report.md (default: RUN_DIR)")
    p.set_defaults(func=cmd_report)
