"""Folder-level workflows behind the ``exact-train``, ``delete``, ``ledger verify`` and ``exact-audit``
commands: a registered dataset and model in, a model folder out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.registry import load_dataset
from ..engine import Recipe
from ..errors import CheckpointError, ConfigError
from ..forget import read_index_file, validate_indices
from ..identifiers import check_identifier
from ..outputs import check_output_folder
from ..training import default_recipe
from .anchors import append_anchor, check_anchor, check_anchor_path, check_certificate_file
from .audit import ExactnessReport, audit
from .certificates import Signer, read_head
from .chains import ModelSpec
from .executors import Executor
from .ledger import Ledger, LedgerCheck
from .sharded import LEDGER, SCHEMES, STATE, DeletionReport, DeletionRequest, ShardedModel, read_state


def train_exact(
    out: str | Path,
    *,
    scheme: str = "sisa",
    scheme_options: dict[str, Any] | None = None,
    dataset: str = "digits",
    train_subset: int | None = None,
    data_dir: str | None = None,
    model: str = "mlp",
    model_kwargs: dict[str, Any] | None = None,
    recipe: Recipe | None = None,
    seed: int = 0,
    prior_file: str | None = None,
    executor: str | Executor = "process",
    workers: int | None = None,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    store: str | None = None,
    protected_file: str | None = None,
) -> ShardedModel:
    """Train a SISA or S3T model on a registered dataset into folder ``out``.

    ``prior_file`` holds one request likelihood per training example (txt/json/npy) for SISA's
    distribution-aware sharding. ``store``: fsspec URL of the checkpoint store. ``protected_file``: ids of
    the declared non-deletable split (S3T's backbone trains on it).
    """
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    # never into (or inside) an original checkpoint, another model or an input (unlearnkit.outputs)
    check_output_folder(out, overwrite=overwrite, inputs=[data_dir, prior_file, protected_file])
    bundle = load_dataset(dataset, data_dir=data_dir, train_subset=train_subset)
    if bundle.task != "classification":
        raise ConfigError(f"exact unlearning aggregates classifiers; {dataset!r} is a {bundle.task} dataset")
    prior = None
    if prior_file is not None:
        prior = np.asarray(read_index_file(prior_file), dtype=np.float64).reshape(-1)
    spec = ModelSpec(model, bundle.input_shape, bundle.num_classes, dict(model_kwargs or {}))
    return ShardedModel.fit(
        out,
        bundle.train,
        SCHEMES[scheme](**(scheme_options or {})),
        model=spec,
        recipe=recipe or default_recipe(dataset),
        seed=seed,
        prior=prior,
        test=bundle.test,
        dataset={"name": dataset, "train_subset": train_subset, "data_dir": data_dir},
        executor=executor,
        workers=workers,
        device=device,
        progress=progress,
        overwrite=overwrite,
        store=store,
        protected=read_index_file(protected_file) if protected_file else None,
    )


REQUEST_SUFFIXES = (".txt", ".json", ".npy")


def request_files(paths: Sequence[str | Path]) -> list[Path]:
    """Request files named directly or found (sorted, ``.txt``/``.json``/``.npy``) in the folders given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix in REQUEST_SUFFIXES)
        else:
            out.append(p)
    return out


def _requests(files: list[Path], n_train: int, request_id: str | None, named: bool) -> list[DeletionRequest]:
    if request_id is not None and (len(files) > 1 or named):
        raise ConfigError("--request-id names a single request; with several files each is named by its file name")
    reqs = []
    for f in files:
        ids = validate_indices(read_index_file(f), n_train, origin=str(f))
        reqs.append(DeletionRequest(ids.tolist(), request_id or (f.stem if named else None), str(f)))
    return reqs


def delete_ids(
    model_dir: str | Path,
    ids_file: str | Path | Sequence[str | Path],
    *,
    request_id: str | None = None,
    executor: str | Executor = "process",
    workers: int | None = None,
    progress: bool = True,
    signer: Signer | None = None,
    watch: bool = False,
    anchor: str | Path | None = None,
    background: bool = False,
    committed: Callable[[list[DeletionReport]], None] | None = None,
) -> list[DeletionReport]:
    """Process deletion requests: every ids file given (or found in a folder given) is one request; all are
    batched into one retraining round, each with its own ledger entries and certificate. With ``watch``,
    request files that appear in the folders while a round retrains are processed in the next round, until
    a round finds nothing new (files already in the ledger, by request id, are skipped). ``anchor``: an
    append-only file kept elsewhere that receives the new signed head (see :mod:`.anchors`).

    ``background`` (S3T): each round commits (and signs) as soon as the affected groups are deactivated,
    hands its reports to ``committed``, then retrains the shards that fell below ``min_depth`` in a background
    thread and waits for it before the next round; if that is interrupted, :func:`resume_folder` finishes it."""
    if request_id is not None:  # before the folder is opened (opening may finish an earlier request)
        check_identifier(request_id, "request id")
    if anchor is not None and signer is None:
        raise ConfigError("--anchor records signed heads: give --signing-key (or $UNLEARNKIT_SIGNING_KEY) too")
    paths = [ids_file] if isinstance(ids_file, str | Path) else list(ids_file)
    if anchor is not None:  # before anything changes: the anchor is never a model's file, a folder or an input
        check_anchor_path(anchor, model_dir, [*paths, signer.path if signer else None])
    # requests from a queue (several files, a folder) are named by their file names; a single file by req-NNNNN
    named = len(paths) > 1 or any(Path(p).is_dir() for p in paths)
    sm = ShardedModel.open(model_dir, executor=executor, workers=workers, signer=signer)
    if background and sm.scheme.name != "s3t":
        raise ConfigError(
            "--background belongs to s3t models (a deactivated group falls back to its prefix); SISA must retrain"
        )
    n_train = int(sm.state.get("n_train", 0))
    reports: list[DeletionReport] = []
    seen: set[Path] = set()
    while True:
        files = [f for f in request_files(paths) if f not in seen]
        if watch:
            done = set(sm.ledger.requests())
            files = [f for f in files if f.stem not in done]
        if not files:
            break
        seen |= set(files)
        reqs = _requests(files, n_train, request_id, named)
        done = sm.delete_many(
            reqs, executor=executor, workers=workers, progress=progress, signer=signer, background=background
        )
        if committed is not None:
            committed(done)
        sm.wait()
        reports += done
        if not watch:
            break
    if anchor is not None:
        append_anchor(anchor, model_dir)
    return reports


def resume_folder(
    model_dir: str | Path,
    *,
    rollback: bool = False,
    executor: str | Executor = "process",
    workers: int | None = None,
    signer: Signer | None = None,
    progress: bool = True,
    anchor: str | Path | None = None,
) -> tuple[list[DeletionReport], list[str]]:
    """Finish (or, with ``rollback``, cancel) the deletion requests a crash left open, purge stored
    checkpoints trained on deleted ids and train whatever the plan lacks. With ``signer``, also issue the
    certificates and sign the head a crash after ``committed`` left out (:meth:`ShardedModel.repair_signing`);
    ``anchor`` then receives the signed head. Returns the finished reports and the cancelled request ids."""
    if anchor is not None and signer is None:
        raise ConfigError("--anchor records signed heads: give --signing-key (or $UNLEARNKIT_SIGNING_KEY) too")
    if anchor is not None:  # before anything changes
        check_anchor_path(anchor, model_dir, [signer.path if signer else None])
    sm = ShardedModel.open(model_dir, recover=False)
    cancelled: list[str] = []
    if rollback:
        cancelled = sm.rollback(signer=signer)
    reports = sm.resume(executor, workers, signer, progress)
    if anchor is not None:
        append_anchor(anchor, model_dir)
    return ([] if rollback else reports), cancelled


def verify_ledger(
    model_dir: str | Path,
    public_key: str | Path | None = None,
    *,
    strict: bool = False,
    anchor: str | Path | None = None,
    certificates: Sequence[str | Path] = (),
) -> LedgerCheck:
    """Verify the hash chain of a ledger, that its head is the one the model folder recorded (also when the
    ledger file itself is given: ``exact.json`` beside it is read), and, with ``public_key``, the signed head
    (``strict``: every entry must be covered by the signature, see :func:`~.certificates.verify_head`).

    Against rollback to an older snapshot (:mod:`.anchors`): every signed head in the ``anchor`` file and
    every certificate in ``certificates`` must still be in the ledger at its place."""
    for cert in certificates:
        if not Path(cert).is_file():
            raise CheckpointError(
                f"no certificate file {cert}; pass the path of a certificate written by `unlearnkit delete`"
            )
    check = _verify_chain(model_dir, public_key, strict)
    if not check.ok or (anchor is None and not certificates):
        return check
    folder = Path(model_dir)
    ledger_path = folder if folder.is_file() else folder / LEDGER
    entries = Ledger(ledger_path).entries()
    if anchor is not None:
        ok, why = check_anchor(anchor, [e["hash"] for e in entries], read_head(ledger_path.parent), public_key)
        if not ok:
            return LedgerCheck(False, check.entries, check.head, why)
        check.notes.append(why)
    for cert in certificates:
        ok, why = check_certificate_file(cert, entries, public_key)
        if not ok:
            return LedgerCheck(False, check.entries, check.head, f"certificate {cert}: {why}")
    if certificates:
        check.notes.append(f"{len(certificates)} certificate(s) are in the ledger at their place")
    return check


def certificate_in_ledger_check(
    certificate: str | Path, model_dir: str | Path, public_key: str | Path | None = None
) -> tuple[bool, str]:
    """Whether ``certificate`` is in the ledger of ``model_dir`` (a folder or its ``ledger.jsonl``) at its
    place; the ledger's hash chain must verify first."""
    folder = Path(model_dir)
    ledger = Ledger(folder if folder.is_file() else folder / LEDGER)
    if not ledger.path.is_file():
        raise CheckpointError(f"no ledger at {ledger.path}; pass the model folder the certificate was issued for")
    check = ledger.verify()
    if not check.ok:
        return False, f"the ledger does not verify at line {check.line} ({check.problem})"
    return check_certificate_file(certificate, ledger.entries(), public_key)


def _verify_chain(model_dir: str | Path, public_key: str | Path | None, strict: bool) -> LedgerCheck:
    folder = Path(model_dir)
    ledger_path = folder if folder.is_file() else folder / LEDGER
    folder = ledger_path.parent
    state = folder / STATE
    if not state.is_file():
        if Path(model_dir).is_file():
            check = Ledger(ledger_path).verify()
            check.notes.append(f"no {STATE} beside the ledger: truncation at the end cannot be detected")
            return _signed(check, folder, ledger_path, public_key, strict)
        raise CheckpointError(f"{folder} is not an exact-unlearning model (no {STATE}); pass the model folder")
    ledger = Ledger(ledger_path)
    check = ledger.verify()
    if check.ok:
        head = read_state(state).get("ledger_head")
        hashes = [e["hash"] for e in ledger.entries()]
        if head is not None and head not in hashes:
            check = LedgerCheck(
                False,
                check.entries,
                check.head,
                "the head exact.json recorded is not in the ledger: entries were removed or rewritten",
            )
        elif ledger.open_requests():
            check.notes.append(
                f"{len(ledger.open_requests())} deletion request(s) left open by an interruption: "
                "run `unlearnkit resume --model DIR`"
            )
        elif head is not None and head != check.head:
            check.notes.append("exact.json lags the ledger head (an interrupted request): run `unlearnkit resume`")
    return _signed(check, folder, ledger_path, public_key, strict)


def _signed(
    check: LedgerCheck, folder: Path, ledger_path: Path, public_key: str | Path | None, strict: bool
) -> LedgerCheck:
    if public_key is None or not check.ok:
        return check
    from .certificates import verify_head

    ok, why = verify_head(folder, [e["hash"] for e in Ledger(ledger_path).entries()], public_key, strict=strict)
    if not ok:
        return LedgerCheck(False, check.entries, check.head, why)
    check.notes.append(f"signed head: {why}")
    return check


def audit_folder(model_dir: str | Path, public_key: str | Path | None = None) -> ExactnessReport:
    """:func:`~unlearnkit.exact.audit` of a model folder, read-only: an open request, a folder whose
    ``exact.json`` disagrees with its ledger, or one that cannot be opened fails the audit. With
    ``public_key`` the ledger's hash chain and its signed head are checked too, strictly: an entry not covered
    by the signature fails the audit."""
    try:
        sm = ShardedModel.open(model_dir, recover=False)
    except CheckpointError as exc:
        return ExactnessReport(0, [], False, [], str(exc))
    report = audit(sm)
    if public_key is not None and not report.ledger_problem:
        try:
            check = verify_ledger(model_dir, public_key, strict=True)
        except CheckpointError as exc:
            report.ledger_problem = str(exc)
        else:
            if not check.ok:
                report.ledger_problem = check.problem
    return report
