"""Exact-unlearning commands: ``exact-train``, ``delete``, ``resume``, ``ledger verify``, ``exact-audit``,
``keygen``, ``certificate verify``, ``dp-train``."""

from __future__ import annotations

import argparse
import json
import os

from ..errors import ConfigError
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
    p.add_argument(
        "--ray-address", help="existing Ray cluster to use (host:port or ray://…; default $RAY_ADDRESS); implies ray"
    )


def _executor(args: argparse.Namespace):  # noqa: ANN202
    """The executor name, or a Ray executor connected to --ray-address / $RAY_ADDRESS."""
    if args.ray_address or (args.executor == "ray" and os.environ.get("RAY_ADDRESS")):
        from ..exact.executors import RayExecutor

        return RayExecutor(address=args.ray_address or os.environ["RAY_ADDRESS"])
    return args.executor


def _close(executor: object) -> None:
    close = getattr(executor, "close", None)
    if close is not None:
        close()


def _add_signing(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--signing-key",
        help="Ed25519 private key (from `unlearnkit keygen`; default $UNLEARNKIT_SIGNING_KEY) "
        "to sign a certificate per request and the ledger head",
    )
    p.add_argument(
        "--anchor",
        metavar="PATH",
        help="append-only file, kept outside the model folder, that receives each new signed head "
        "(`ledger verify --anchor PATH` then detects a rollback; see docs/exact.md)",
    )


def cmd_exact_train(args: argparse.Namespace) -> int:

    options = {"shards": args.shards, "slices": args.slices, "aggregation": args.aggregation}
    if args.scheme == "s3t":
        options.update(sequences=args.sequences, min_depth=args.min_depth, backbone=args.backbone, rank=args.rank)
    elif args.backbone or args.non_deletable:
        raise ConfigError("--backbone and --non-deletable belong to --scheme s3t")
    executor = _executor(args)
    try:
        sm = _train(args, options, executor)
    finally:
        _close(executor)
    print(f"saved {args.out}  ({args.scheme}, {args.shards} shards x {args.slices} slices; TA {sm.accuracy():.2f})")
    return 0


def _train(args: argparse.Namespace, options: dict, executor: object):  # noqa: ANN202
    from ..exact.workflow import train_exact

    return train_exact(
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
        executor=executor,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        store=args.store,
        protected_file=args.non_deletable,
    )


def _signer(args: argparse.Namespace):  # noqa: ANN202
    from ..exact.certificates import Signer

    path = getattr(args, "signing_key", None)
    return Signer(path) if path else Signer.from_env()


def _print_reports(reports: list, as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
        return
    for rep in reports:
        done = f"deleted {len(rep.ids)} ids ({len(rep.already_deleted)} already deleted)"
        print(f"{rep.request_id}: {done} in {rep.seconds:.2f}s")
        for s in rep.shards:
            print(
                f"  shard {s['shard']}: slices {s['slices']}, retrained steps {s['retrained_steps']}, {s['parameters']}"
            )
        if rep.accuracy is not None:
            print(f"  test accuracy {rep.accuracy:.2f} with {rep.constituents} constituents")
        if rep.certificate:
            print(f"  certificate {rep.certificate}")


def cmd_delete(args: argparse.Namespace) -> int:
    from ..exact.workflow import delete_ids

    executor = _executor(args)
    try:
        reports = delete_ids(
            args.model,
            args.ids,
            request_id=args.request_id,
            executor=executor,
            workers=args.workers,
            progress=not args.no_progress,
            signer=_signer(args),
            watch=args.watch,
            anchor=args.anchor,
            background=args.background,
            committed=None if args.json or not args.background else _print_committed,
        )
    finally:
        _close(executor)
    if args.json or not args.background:
        _print_reports(reports, args.json)
    else:
        print("background retraining finished")
    return 0


def _print_committed(reports: list) -> None:
    _print_reports(reports, False)
    print("committed; retraining shards below --min-depth in the background (interrupted: `unlearnkit resume`)")


def cmd_resume(args: argparse.Namespace) -> int:
    from ..exact.workflow import resume_folder

    executor = _executor(args)
    try:
        reports, cancelled = resume_folder(
            args.model,
            rollback=args.rollback,
            executor=executor,
            workers=args.workers,
            signer=_signer(args),
            progress=not args.no_progress,
            anchor=args.anchor,
        )
    finally:
        _close(executor)
    _print_reports(reports, False)
    for rid in cancelled:
        print(f"{rid}: rolled back (its ids were NOT deleted)")
    if not reports and not cancelled:
        print("nothing to resume: every request in the ledger is committed")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from ..exact.certificates import keygen

    pub = keygen(args.out, args.public, overwrite=args.overwrite)
    print(f"private key {args.out} (keep it secret), public key {pub}")
    return 0


def cmd_certificate_verify(args: argparse.Namespace) -> int:
    from ..exact.certificates import verify_certificate

    bad = 0
    for cert in args.certificates:
        ok, why = verify_certificate(cert, args.public_key)
        if ok and args.ledger:
            from ..exact.workflow import certificate_in_ledger_check

            ok, why = certificate_in_ledger_check(cert, args.ledger, args.public_key)
        problems = _certificate_model(cert, args.model) if ok and args.model else []
        ok = ok and not problems
        print(f"{cert}: {'valid' if ok else 'INVALID'} ({why if not problems else problems[0]})")
        for extra in problems[1:]:
            print(f"  {extra}")
        bad += not ok
    return 1 if bad else 0


def _certificate_model(cert: str, model: str) -> list[str]:
    from ..exact.weights import certificate_model_problems

    return certificate_model_problems(cert, model)


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    from ..exact.workflow import verify_ledger

    check = verify_ledger(
        args.model,
        public_key=args.public_key,
        strict=args.strict,
        anchor=args.anchor,
        certificates=args.certificate or (),
    )
    if check.ok:
        print(f"ledger ok: {check.entries} entries, head {check.head[:16]}")
        for note in check.notes:
            print(f"  note: {note}")
        return 0
    where = f" at line {check.line}" if check.line else ""
    print(f"ledger TAMPERED{where}: {check.problem}")
    return 1


def cmd_exact_audit(args: argparse.Namespace) -> int:
    from ..exact.workflow import audit_folder

    report = audit_folder(args.model, public_key=args.public_key)
    for c in report.constituents:
        state = "ok" if c.ok else (c.problem or "FAILED")
        print(f"  shard {c.shard}: order {c.order}, depth {c.depth}, key {str(c.key)[:16]}  {state}")
    if report.missing_shards:
        print(f"  shards {report.missing_shards} hold ids but have no usable model: run `unlearnkit resume`")
    if report.ledger_problem:
        print(f"  ledger: {report.ledger_problem}")
    if report.purge_problem:
        print(f"  store: {report.purge_problem}")
    print(f"exact: {'yes' if report.ok else 'NO'} ({report.deleted} deleted ids)")
    return 0 if report.ok else 1


def cmd_dp_train(args: argparse.Namespace) -> int:
    from ..exact.data_parallel import train_checkpoint_data_parallel
    from ..exact.launch import own_arguments, relaunch_count, run_processes

    count = relaunch_count(args.processes)
    if count is not None:  # `accelerate launch --cpu --num_processes N` started one process: start N
        return run_processes(count, own_arguments("dp-train"))

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
        processes=args.processes,
        scale_lr=args.scale_lr,
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
    p.add_argument("--min-depth", type=int, default=1, help="s3t: retrain a shard whose best prefix is shorter")
    p.add_argument(
        "--backbone",
        action="store_true",
        help="s3t: LoRA adapters per slice over a frozen backbone pre-trained on --non-deletable ids",
    )
    p.add_argument("--rank", type=int, default=8, help="s3t --backbone: adapter rank")
    p.add_argument(
        "--non-deletable",
        metavar="FILE",
        help="ids (txt/json/npy) declared never deletable: the backbone trains on them, they are never sharded",
    )
    p.add_argument("--aggregation", default="vote", choices=("vote", "softmax"))
    p.add_argument("--prior", help="request likelihood per training example (txt/json/npy) to group shards by")
    p.add_argument(
        "--store", help="checkpoint store as an fsspec URL (file:///…, s3://bucket/prefix); default MODEL/store"
    )
    _add_training(p)
    _add_executor(p)
    add_common(p)
    p.set_defaults(func=cmd_exact_train)

    p = sub.add_parser("delete", help="delete training ids from an exact model and record it in its ledger")
    p.add_argument("--model", required=True, help="model folder from exact-train")
    p.add_argument(
        "--ids",
        required=True,
        nargs="+",
        metavar="FILE_OR_DIR",
        help="request files (ids = training-row numbers, .txt/.json/.npy) or folders of them; one request per "
        "file, all retrained in one round",
    )
    p.add_argument("--request-id", help="name of a single request in the ledger (default: file name or req-NNNNN)")
    p.add_argument(
        "--watch", action="store_true", help="after each round, process request files that arrived meanwhile"
    )
    p.add_argument("--json", action="store_true", help="print the full reports as JSON")
    p.add_argument(
        "--background",
        action="store_true",
        help="s3t: commit (and sign) once the affected groups are deactivated, then retrain shards below "
        "--min-depth in the background before exiting",
    )
    _add_executor(p)
    _add_signing(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("resume", help="finish (or --rollback) deletion requests an interruption left open")
    p.add_argument("--model", required=True, help="model folder from exact-train")
    p.add_argument("--rollback", action="store_true", help="cancel open requests instead: their ids are NOT deleted")
    _add_executor(p)
    _add_signing(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("keygen", help="create an Ed25519 key pair for signing deletion certificates")
    p.add_argument("--out", required=True, help="private key file to write (PEM, mode 0600)")
    p.add_argument("--public", help="public key file (default: OUT.pub)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("certificate", help="deletion-certificate tools")
    csub = p.add_subparsers(dest="certificate_command", metavar="ACTION")
    v = csub.add_parser("verify", help="check certificates' signatures (exit 1 when any does not verify)")
    v.add_argument("certificates", nargs="+", metavar="CERT")
    v.add_argument("--public-key", required=True, help="the signer's public key (PEM)")
    v.add_argument(
        "--ledger", metavar="DIR", help="also check that each certificate is in this model folder's ledger at its place"
    )
    v.add_argument("--model", help="also check that this model folder's weights in use are the committed ones")
    v.set_defaults(func=cmd_certificate_verify)

    p = sub.add_parser("ledger", help="deletion-ledger tools")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION")
    v = lsub.add_parser("verify", help="check the ledger's hash chain (exit 1 when tampered)")
    v.add_argument("--model", required=True, help="model folder (or a ledger.jsonl file)")
    v.add_argument("--public-key", help="also check the signed ledger head with this public key (PEM)")
    v.add_argument("--strict", action="store_true", help="with --public-key: fail when entries follow the signed head")
    v.add_argument(
        "--anchor", metavar="PATH", help="anchor file from `delete --anchor`: fail when the ledger is older than it"
    )
    v.add_argument(
        "--certificate",
        nargs="+",
        metavar="CERT",
        help="certificates issued earlier: fail when the ledger no longer holds them at their place (rollback)",
    )
    v.set_defaults(func=cmd_ledger_verify)

    p = sub.add_parser("exact-audit", help="prove from the checkpoint keys that no deleted id is in use")
    p.add_argument("--model", required=True, help="model folder from exact-train")
    p.add_argument("--public-key", help="also verify the ledger and its signed head (PEM); every entry must be signed")
    p.set_defaults(func=cmd_exact_audit)

    p = sub.add_parser("dp-train", help="data-parallel training of one model with Accelerate (`accelerate launch`)")
    _add_training(p)
    p.add_argument("--cpu", action="store_true", help="force CPU processes")
    p.add_argument(
        "--processes",
        type=int,
        help="processes the launcher must have started (error otherwise; default: the launcher's --num_processes)",
    )
    p.add_argument("--scale-lr", action="store_true", help="multiply --lr by the number of processes (linear rule)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_dp_train)
