"""Exact-unlearning commands: ``exact-train``, ``delete``, ``ledger verify``, ``exact-audit``, ``dp-train``."""

from __future__ import annotations

import argparse
import json

from .options import add_common, add_recipe, parse_hparams, recipe_from_args


def _add_training(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help="registered dataset (default: digits)")
    p.add_argument("--train-subset", type=int, help="keep a fixed class-stratified subset of the training set")
    p.add_argument("--data-dir", help="folder with the dataset's files")
    p.add_argument("--model", default="mlp", help="registered model (default: mlp)")
    p.add_argument("--model-kw", action="append", metavar="NAME=VALUE", help="model argument, e.g. hidden=[256,128]")
    add_recipe(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="model folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace a model in --out (its deleted ids stay deleted)")


def _add_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="process", choices=("process", "serial", "ray"), help="where shards train")
    p.add_argument("--workers", type=int, help="parallel workers (default: CPU count)")


def cmd_exact_train(args: argparse.Namespace) -> int:
    from ..exact.workflow import train_exact

    options = {"shards": args.shards, "slices": args.slices, "aggregation": args.aggregation}
    if args.scheme == "s3t":
        options["sequences"] = args.sequences
    sm = train_exact(
        args.out,
        scheme=args.scheme,
        scheme_options=options,
        dataset=args.dataset,
        train_subset=args.train_subset,
        data_dir=args.data_dir,
        model=args.model,
        model_kwargs=parse_hparams(args.model_kw, nested=False),
        recipe=recipe_from_args(args),
        seed=args.seed,
        prior_file=args.prior,
        executor=args.executor,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print(f"saved {args.out}  ({args.scheme}, {args.shards} shards x {args.slices} slices; TA {sm.accuracy():.2f})")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from ..exact.workflow import delete_ids

    rep = delete_ids(
        args.model,
        args.ids,
        request_id=args.request_id,
        executor=args.executor,
        workers=args.workers,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
        return 0
    done = f"deleted {len(rep.ids)} ids ({len(rep.already_deleted)} already deleted)"
    print(f"{rep.request_id}: {done} in {rep.seconds:.2f}s")
    for s in rep.shards:
        print(f"  shard {s['shard']}: slices {s['slices']}, retrained steps {s['retrained_steps']}, {s['parameters']}")
    if rep.accuracy is not None:
        print(f"  test accuracy {rep.accuracy:.2f} with {rep.constituents} constituents")
    return 0


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    from ..exact.workflow import verify_ledger

    check = verify_ledger(args.model)
    if check.ok:
        print(f"ledger ok: {check.entries} entries, head {check.head[:16]}")
        return 0
    where = f" at line {check.line}" if check.line else ""
    print(f"ledger TAMPERED{where}: {check.problem}")
    return 1


def cmd_exact_audit(args: argparse.Namespace) -> int:
    from ..exact.workflow import audit_folder

    report = audit_folder(args.model)
    for c in report.constituents:
        state = "ok" if c.ok else (c.problem or "FAILED")
        print(f"  shard {c.shard}: order {c.order}, depth {c.depth}, key {str(c.key)[:16]}  {state}")
    print(f"exact: {'yes' if report.ok else 'NO'} ({report.deleted} deleted ids)")
    return 0 if report.ok else 1


def cmd_dp_train(args: argparse.Namespace) -> int:
    from ..exact.data_parallel import train_checkpoint_data_parallel

    path = train_checkpoint_data_parallel(
        args.out,
        dataset=args.dataset,
        train_subset=args.train_subset,
        data_dir=args.data_dir,
        model=args.model,
        model_kwargs=parse_hparams(args.model_kw, nested=False),
        recipe=recipe_from_args(args),
        seed=args.seed,
        cpu=args.cpu,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    if path is not None:
        print(f"saved {path}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exact-train", help="train a SISA or S3T model (sharded, sliced, exactly unlearnable)")
    p.add_argument("--scheme", default="sisa", choices=("sisa", "s3t"))
    p.add_argument("--shards", type=int, default=5)
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--sequences", type=int, help="s3t: slice orders per shard (default: one per slice)")
    p.add_argument("--aggregation", default="vote", choices=("vote", "softmax"))
    p.add_argument("--prior", help="request likelihood per training example (txt/json/npy) to group shards by")
    _add_training(p)
    _add_executor(p)
    add_common(p)
    p.set_defaults(func=cmd_exact_train)

    p = sub.add_parser("delete", help="delete training ids from an exact model and record it in its ledger")
    p.add_argument("--model", required=True, help="model folder from exact-train")
    p.add_argument("--ids", required=True, help="ids (training-row numbers) in a .txt, .json or .npy file")
    p.add_argument("--request-id", help="name of the request in the ledger (default req-NNNNN)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    _add_executor(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("ledger", help="deletion-ledger tools")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION")
    v = lsub.add_parser("verify", help="check the ledger's hash chain (exit 1 when tampered)")
    v.add_argument("--model", required=True, help="model folder (or a ledger.jsonl file)")
    v.set_defaults(func=cmd_ledger_verify)

    p = sub.add_parser("exact-audit", help="prove from the checkpoint keys that no deleted id is in use")
    p.add_argument("--model", required=True, help="model folder from exact-train")
    p.set_defaults(func=cmd_exact_audit)

    p = sub.add_parser("dp-train", help="data-parallel training of one model with Accelerate (`accelerate launch`)")
    _add_training(p)
    p.add_argument("--cpu", action="store_true", help="force CPU processes")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_dp_train)
