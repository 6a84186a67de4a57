"""A sharded model on disk: the plan, the checkpoint store, the deletion ledger and the live ensemble.

Folder layout::

    DIR/exact.json     scheme, model spec, recipe, seed, dataset, shard plan, deleted ids, ledger head
    DIR/store/<key>/   one checkpoint per key (hash of the exact index history it was trained on)
    DIR/ledger.jsonl   hash-chained, append-only record of every fit and deletion request
    DIR/.lock          ``fcntl`` lock serialising writers
    DIR/certificates/  signed deletion certificates (with a signing key); DIR/ledger.head.json its signed head

:meth:`ShardedModel.fit` trains every shard through an executor; :meth:`ShardedModel.delete` removes ids
(SISA retrains the affected shards from their first affected slice, S3T deactivates parameter groups);
:meth:`ShardedModel.ensemble` is the model to predict with; :func:`unlearnkit.exact.audit` proves from the
keys that no constituent in use has seen a deleted id.

Deletions follow a write-ahead protocol. Under the folder lock: (1) a ``pending`` ledger entry records the
ids, their shard/slice locations, the request file's hash and the state digests before and after; (2)
``exact.json`` is rewritten with the ids removed; (3) the affected shards retrain; (4) a ``committed`` entry
records the resulting keys; (5) ``exact.json`` records the new head. ``exact.json`` is derived from the
ledger: its digest (:func:`state_digest`) must equal the one the ledger's last entry implies, and its
deleted ids must equal the ledger's. Opening a folder after a crash at any point finishes the open request
(:meth:`ShardedModel.recover`); :meth:`ShardedModel.rollback` cancels it instead, on request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..checkpoint import atomic_write_text, read_json_object
from ..data.tensors import TensorData, as_tensor_data
from ..engine import Recipe
from ..errors import CheckpointError, ConfigError, ForgetSpecError
from ..identifiers import check_identifier
from ..metrics.accuracy import accuracy
from ..metrics.predict import predict_outputs
from ..outputs import staged_folder
from .certificates import (
    Signer,
    certificate_body,
    certificate_path,
    sign_head,
    signed_head_entries,
    write_certificate,
)
from .chains import ChainJob, ChainResult, ModelSpec, ensure_root, key_seed, run_chain
from .ensemble import ShardEnsemble
from .executors import Executor, make_executor, warn_if_store_is_local
from .faults import fault_point
from .ledger import Ledger, file_lock, open_purges, record_type, sha256_hex
from .s3t import S3T
from .sharding import ShardPlan, chain_keys, make_plan, root_key
from .sisa import SISA
from .store import open_store

STATE = "exact.json"
LEDGER = "ledger.jsonl"
LOCK = ".lock"
#: the fields of exact.json that determine which data every constituent may see


def read_state(path: str | Path) -> dict[str, Any]:
    """The parsed ``exact.json`` at ``path``; a damaged or non-object file is one :class:`CheckpointError`."""
    return read_json_object(
        Path(path), "it was damaged: restore it from a backup (the ledger beside it records every deletion)"
    )


DIGEST_FIELDS = (
    "scheme",
    "model",
    "recipe",
    "seed",
    "n_train",
    "plan",
    "deleted",
    "roots",
    "generation",
    "protected",
    "backbone",
)


def state_digest(state: dict[str, Any]) -> str:
    """SHA-256 of the fields of ``exact.json`` that determine training (what the ledger binds)."""
    return sha256_hex({k: state.get(k) for k in DIGEST_FIELDS})


def ids_digest(ids: Iterable[int]) -> str:
    return hashlib.sha256(",".join(str(int(i)) for i in sorted(ids)).encode()).hexdigest()


def file_digest(path: str | Path | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path is not None else None


@dataclass
class DeletionRequest:
    """One request: ``ids`` to delete, its ``request_id`` and (optionally) the file it came from."""

    ids: list[int]
    request_id: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if self.request_id is not None:  # checked before anything is written: an id is never a path
            check_identifier(self.request_id, "request id")


SCHEMES: dict[str, type[SISA]] = {"sisa": SISA, "s3t": S3T}


class _Background(threading.Thread):
    """A thread that keeps its function's return value (or exception) in ``outcome``."""

    def __init__(self, fn: Callable[[], Any], signer: Signer | None = None) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.signer = signer  # signs the head after the ``bound`` entry that binds the retrained weights
        self.outcome: Any = None

    def run(self) -> None:
        try:
            self.outcome = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to wait()
            self.outcome = exc


def scheme_from_dict(d: dict[str, Any]) -> SISA:
    d = dict(d)
    name = d.pop("name", "sisa")
    if name not in SCHEMES:
        raise ConfigError(f"unknown exact-unlearning scheme {name!r}; choose one of {', '.join(SCHEMES)}")
    return SCHEMES[name](**d)


@dataclass
class Selection:
    """The constituent a shard predicts with: slice order ``order`` (index into the scheme's orders),
    trained to ``depth`` steps, stored under ``key`` (``None`` when the shard has nothing usable)."""

    shard: int
    order: int
    depth: int
    key: str | None


@dataclass
class DeletionReport:
    """What one deletion request did (also the ledger record)."""

    request_id: str
    scheme: str
    ids: list[int]
    already_deleted: list[int]
    shards: list[dict[str, Any]]
    seconds: float
    accuracy: float | None = None
    constituents: int = 0
    keys_before: list[str | None] = field(default_factory=list)
    keys_after: list[str | None] = field(default_factory=list)
    model_before: str = ""
    model_after: str = ""
    #: per shard, the SHA-256 of the weights file in use after the request (``None``: no constituent)
    weights_after: list[str | None] = field(default_factory=list)
    certificate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ShardedModel:
    """An exactly-unlearnable model (SISA or S3T) living in folder ``path``."""

    def __init__(
        self,
        path: str | Path,
        state: dict[str, Any],
        data: TensorData | None = None,
        test: TensorData | None = None,
        factory: Callable[[], nn.Module] | None = None,
        device: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.state = state
        self.scheme = scheme_from_dict(state["scheme"])
        m = state["model"]
        self.spec = ModelSpec(m["name"], tuple(m["input_shape"]), int(m["num_classes"]), dict(m["kwargs"]), factory)
        if "factory" in m and factory is None:
            raise ConfigError(f"{self.path} was trained with a custom model factory; pass factory= to open it")
        self.recipe = Recipe(**state["recipe"])
        self.plan = ShardPlan.from_dict(state["plan"])
        self.deleted: set[int] = {int(i) for i in state["deleted"]}
        self.store = open_store(state.get("store"), self.path / "store")
        self.ledger = Ledger(self.path / LEDGER)
        self._data = data
        self._test = test
        self.device = device
        self._locked = False
        self._background: _Background | None = None
        #: what is wrong with the folder when opened with ``recover=False`` ("" when consistent)
        self.problem = ""
        leaked = self.plan.all_ids() & self.deleted
        if leaked:
            raise CheckpointError(
                f"{self.path / STATE}: deleted ids {sorted(leaked)[:5]} are back in the shard plan; "
                "the file was edited by hand. Restore it from backup; deleted ids can never be trained on again"
            )

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        out: str | Path,
        data: object,
        scheme: SISA,
        *,
        model: ModelSpec,
        recipe: Recipe,
        seed: int = 0,
        prior: Sequence[float] | None = None,
        test: object | None = None,
        dataset: dict[str, Any] | None = None,
        executor: str | Executor | None = "process",
        workers: int | None = None,
        device: str | None = None,
        progress: bool = True,
        overwrite: bool = False,
        store: str | None = None,
        protected: Sequence[int] | None = None,
    ) -> ShardedModel:
        """Shard ``data`` (rows are ids ``0…N-1``), train every constituent and save everything in ``out``.

        Ids deleted by an earlier model in ``out`` (found in its ledger) are left out and stay deleted.
        ``store`` is an fsspec URL for the checkpoints (``file://…``, ``s3://bucket/prefix``; default
        ``out/store``), so workers on other machines need no shared filesystem. ``protected``: ids declared
        non-deletable (S3T with a backbone pre-trains on them; they are never sharded and cannot be deleted).
        """
        from ..training import check_training_recipe
        from ..validation import check_training_data

        check_training_recipe(recipe)
        train = as_tensor_data(data, "train")
        check_training_data(model.build(seed), train, "classification", "cpu")  # before anything is written
        out = Path(out)
        if (out / STATE).is_file() and not overwrite:
            raise CheckpointError(f"{out} already holds an exact-unlearning model; choose a new folder or overwrite")
        test_data = as_tensor_data(test, "test") if test is not None else None
        args = (train, test_data, scheme, model, recipe, seed, prior, dataset, executor, workers, device, progress)
        if (out / STATE).is_file() or (out / LEDGER).exists():  # in place: the ledger carries on (deleted ids stay out)
            return cls._fit_in(out, *args, store, protected)
        # a new model is built in a staged folder and swapped in only when complete (unlearnkit.outputs): a
        # failed or interrupted exact-train leaves no folder behind, and a rerun starts afresh
        with staged_folder(out) as tmp:
            cls._fit_in(tmp, *args, store, protected)
        return cls.open(out, data=train, test=test_data, factory=model.factory, device=device, recover=False)

    @classmethod
    def _fit_in(
        cls,
        out: Path,
        train: TensorData,
        test: TensorData | None,
        scheme: SISA,
        model: ModelSpec,
        recipe: Recipe,
        seed: int,
        prior: Sequence[float] | None,
        dataset: dict[str, Any] | None,
        executor: str | Executor | None,
        workers: int | None,
        device: str | None,
        progress: bool,
        store: str | None,
        protected: Sequence[int] | None,
    ) -> ShardedModel:
        """:meth:`fit`'s work, into folder ``out`` (the final folder, or the staged one of a new model)."""
        with file_lock(out / LOCK):
            ledger = Ledger(out / LEDGER)
            deleted: set[int] = set()
            if ledger.path.is_file():
                check = ledger.verify()
                if not check.ok:
                    raise CheckpointError(
                        f"{ledger.path} does not verify ({check.problem}); restore it before training into {out}"
                    )
                deleted = ledger.deleted_ids()
            if (out / STATE).is_file():
                deleted |= {int(i) for i in read_state(out / STATE).get("deleted", [])}
            protected = sorted({int(i) for i in protected or []})
            if deleted & set(protected):
                raise ConfigError(f"ids {sorted(deleted & set(protected))[:5]} were deleted; they cannot be protected")
            if getattr(scheme, "backbone", False) and not protected:
                raise ConfigError(
                    "s3t with backbone=True pre-trains its frozen backbone on non-deletable data: pass protected=ids "
                    "(--non-deletable FILE) of examples that will never be deleted"
                )
            skip = deleted | set(protected)
            keep = np.array([i for i in range(len(train)) if i not in skip], dtype=np.int64)
            kept_prior = None if prior is None else np.asarray(prior, dtype=np.float64)[keep]
            plan = make_plan(keep, scheme.shards, scheme.slices, seed=seed, prior=kept_prior)
            spec_dict = model.to_dict()
            config = {"scheme": scheme.to_dict(), "model": spec_dict, "recipe": recipe.to_dict(), "seed": seed}
            state = {
                "format": 2,
                "kind": "exact",
                **config,
                "task": "classification",
                "dataset": dataset,
                "n_train": len(train),
                "plan": plan.to_dict(),
                "deleted": sorted(deleted),
                "roots": [],
                "generation": 0,
                "backbone": None,
                "protected": sorted(protected) or None,
                "store": store,
                "ledger_head": None,
            }
            obj = cls(out, state, train, test, model.factory, device)
            obj._locked = True
            try:
                # requests left open by an earlier model in this folder are complete: their ids are left out
                for e in ledger.open_requests():
                    ledger.append(
                        {
                            "type": "committed",
                            "request_id": e["record"]["request_id"],
                            "pending_seq": e["seq"],
                            "ids": e["record"]["ids"],
                            "by": "fit",
                        }
                    )
                scheme.prepare(scheme.build(model, 0))  # fails early when the model does not suit the scheme
                obj._prepare_backbone(config)
                entry = ledger.append({"type": "fit", "generation": 0, "state": state_digest(obj.state)})
                obj.state["ledger_head"] = entry["hash"]
                obj.save_state()
                obj._train(range(scheme.shards), executor, workers, progress=progress)
                if deleted:  # checkpoints an earlier model in this folder trained on now-deleted ids
                    obj.purge()
                obj.bind()
            finally:
                obj._locked = False
        return obj

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        data: object | None = None,
        test: object | None = None,
        factory: Callable[[], nn.Module] | None = None,
        device: str | None = None,
        recover: bool = True,
        executor: str | Executor | None = "process",
        workers: int | None = None,
        signer: Signer | None = None,
    ) -> ShardedModel:
        """Open a model folder. Without ``data`` the training set is reloaded from the dataset registry entry
        recorded at training time (needed only when a deletion must retrain).

        ``exact.json`` must agree with the ledger. A deletion request left open by a crash is finished
        (``recover=True``, the default: its shards retrain with ``executor``); with ``recover=False`` nothing
        is written and :attr:`problem` says what is wrong (what ``exact-audit`` reports)."""
        p = Path(path) / STATE
        if not p.is_file():
            raise CheckpointError(f"{path} is not an exact-unlearning model (no {STATE}); create one with exact-train")
        state = read_state(p)
        try:
            obj = cls(
                path,
                state,
                as_tensor_data(data, "train") if data is not None else None,
                as_tensor_data(test, "test") if test is not None else None,
                factory,
                device,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{p} lacks a valid field ({exc}); it was damaged: restore it from a backup") from exc
        if recover:
            obj.recover(executor=executor, workers=workers, signer=signer, progress=False)
        else:
            status, message = obj._reconcile()
            obj.problem = "" if status == "ok" else message
        return obj

    def save_state(self) -> None:
        self.state["plan"] = self.plan.to_dict()
        self.state["deleted"] = sorted(self.deleted)
        atomic_write_text(self.path / STATE, json.dumps(self.state, indent=1) + "\n")

    def _reload(self) -> None:
        self.state = read_state(self.path / STATE)
        self.plan = ShardPlan.from_dict(self.state["plan"])
        self.deleted = {int(i) for i in self.state["deleted"]}

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's writer lock (re-entrant within this object) with ``exact.json`` freshly read."""
        if self._locked:
            yield
            return
        with file_lock(self.path / LOCK):
            self._locked = True
            try:
                self._reload()
                yield
            finally:
                self._locked = False

    # ---- the ledger binding -------------------------------------------------------------------------------
    def _sync(self) -> None:
        self.state["plan"] = self.plan.to_dict()
        self.state["deleted"] = sorted(self.deleted)

    def _reconcile(self) -> tuple[str, str]:
        """Compare ``exact.json`` with the ledger. Status ``ok``; ``stale`` (only the recorded head lags);
        ``unapplied`` (open requests not yet applied to exact.json); ``open`` (applied, not committed);
        ``broken`` (the chain does not verify) or ``inconsistent`` — with a message."""
        check = self.ledger.verify()
        if not check.ok:
            return "broken", f"{self.ledger.path} does not verify at line {check.line} ({check.problem})"
        entries = self.ledger.entries()
        hashes = [e["hash"] for e in entries]
        expected: str | None = None
        for e in entries:
            rec = e["record"]
            kind = record_type(rec)
            if kind == "pending":
                expected = rec.get("state_after")
            elif rec.get("state"):
                expected = rec["state"]
        head = self.state.get("ledger_head")
        self._sync()
        digest = state_digest(self.state)
        opens = self.ledger.open_requests()
        if expected is None:  # a folder from before the write-ahead protocol: the head must match
            if head != (hashes[-1] if hashes else None):
                return "inconsistent", "the last ledger entry is not the head exact.json recorded: entries were removed"
            return "ok", ""
        if head is not None and head not in hashes:
            return "inconsistent", (
                f"exact.json records ledger head {str(head)[:16]}… which is not in {self.ledger.path}: "
                "the ledger was cut or rewritten; restore it"
            )
        ledger_deleted = self.ledger.deleted_ids()
        if digest != expected:
            if opens and digest == opens[0]["record"].get("state_before"):
                return "unapplied", f"{len(opens)} deletion request(s) recorded but not yet applied"
            missing = sorted(ledger_deleted - self.deleted)[:5]
            extra = sorted(self.deleted - ledger_deleted)[:5]
            why = f"; ids {missing} are deleted in the ledger but not in {STATE}" if missing else ""
            why += f"; ids {extra} are deleted in {STATE} but not in the ledger" if extra else ""
            return "inconsistent", (
                f"{self.path / STATE} disagrees with the ledger (its digest is not the one the ledger's last entry "
                f"implies{why}); it was edited by hand. Restore it from backup or rebuild it from the ledger"
            )
        if opens:
            return "open", f"{len(opens)} deletion request(s) not finished; run `unlearnkit resume --model DIR`"
        if head != hashes[-1]:
            return "stale", "exact.json lags the ledger head"
        return "ok", ""

    def _apply(self, entry: dict[str, Any]) -> None:
        ids = [int(i) for i in entry["record"]["ids"]]
        self.plan = self.plan.without(ids)
        self.deleted |= set(ids)
        self._sync()

    def recover(
        self,
        executor: str | Executor | None = "process",
        workers: int | None = None,
        signer: Signer | None = None,
        progress: bool = True,
        evaluate: bool = False,
    ) -> list[DeletionReport]:
        """Bring the folder back to a consistent state after a crash: cut a torn last ledger line, apply
        requests recorded as pending but not yet in ``exact.json``, finish (retrain and commit) every open
        request. Raises :class:`CheckpointError` when ``exact.json`` and the ledger disagree otherwise."""
        with self.locked():
            self.ledger.drop_torn_tail()
            status, message = self._reconcile()
            if status in ("broken", "inconsistent"):
                raise CheckpointError(f"{message}; run `unlearnkit ledger verify`")
            opens = self.ledger.open_requests()
            if status == "unapplied":
                for e in opens:
                    if state_digest(self.state) != e["record"].get("state_before"):
                        raise CheckpointError(f"request {e['record']['request_id']} does not follow exact.json")
                    self._apply(e)
            if status != "ok":
                self.state["ledger_head"] = self.ledger.verify().head
                self.save_state()
            self.problem = ""
            reports = self._complete(opens, executor, workers, progress, evaluate, signer) if opens else []
            if self._purge_due():  # a crash after a commit or during a purge: finish the purge
                self.purge()
            if signer is not None:
                self.repair_signing(signer)
            return reports

    def rollback(self, signer: Signer | None = None) -> list[str]:
        """Cancel every open deletion request instead of finishing it: its ids go back into their slices and
        a ``rolled_back`` entry records that they were *not* deleted. Returns the cancelled request ids."""
        with self.locked():
            self.ledger.drop_torn_tail()
            status, message = self._reconcile()
            if status in ("broken", "inconsistent"):
                raise CheckpointError(f"{message}; run `unlearnkit ledger verify`")
            opens = self.ledger.open_requests()
            if status != "unapplied":
                for e in reversed(opens):
                    shards = [list(map(list, sh)) for sh in self.plan.shards]
                    for i, s, r in e["record"]["locations"]:
                        shards[s][r] = sorted([*shards[s][r], int(i)])
                    self.plan = ShardPlan(shards)
                    self.deleted -= {int(i) for i in e["record"]["ids"]}
                    self._sync()
            done = []
            for e in opens:
                rec = e["record"]
                entry = self.ledger.append(
                    {
                        "type": "rolled_back",
                        "request_id": rec["request_id"],
                        "pending_seq": e["seq"],
                        "ids": rec["ids"],
                        "state": state_digest(self.state),
                    }
                )
                done.append(rec["request_id"])
            if opens:
                self.state["ledger_head"] = entry["hash"]
                self.save_state()
                if signer is not None:
                    sign_head(self.path, entry["hash"], entry["seq"] + 1, signer)
            return done

    def _prepare_backbone(self, config: dict[str, Any]) -> None:
        """Set the shard roots; for a scheme with a backbone, first pre-train it on the protected ids (once,
        through the engine) and store it under a key hashing its configuration and those ids."""
        bb = None
        if getattr(self.scheme, "backbone", False):
            protected = self.state["protected"]
            bb = root_key({**config, "backbone_ids": ids_digest(protected)})
            if not self.store.has(bb):
                from ..training import train_model

                model = self.spec.build(key_seed(bb))
                train_model(
                    model,
                    self.data.subset(protected),
                    self.recipe,
                    seed=key_seed(bb),
                    device=self.device,
                    progress=False,
                )
                self.store.put(
                    bb, model.cpu(), {"root": bb, "history": [], "backbone": True, "ids_sha256": ids_digest(protected)}
                )
        self.state["backbone"] = bb
        extra = {"backbone": bb} if bb else {}
        self.state["roots"] = [root_key({**config, "shard": s, **extra}) for s in range(self.scheme.shards)]

    # ---- data ---------------------------------------------------------------------------------------------
    def _bundle(self) -> Any:
        info = self.state.get("dataset")
        if not info:
            raise ConfigError(
                "this model was trained on in-memory data; open it with ShardedModel.open(path, data=...)"
            )
        from ..data.registry import load_dataset

        return load_dataset(info["name"], data_dir=info.get("data_dir"), train_subset=info.get("train_subset"))

    @property
    def data(self) -> TensorData:
        if self._data is None:
            bundle = self._bundle()
            self._data, self._test = bundle.train, self._test or bundle.test
        return self._data

    @property
    def test(self) -> TensorData | None:
        if self._test is None and self.state.get("dataset"):
            self._test = self._bundle().test
        return self._test

    # ---- chains -------------------------------------------------------------------------------------------
    def chain(self, shard: int, order: int) -> list[str]:
        """Keys of the current plan's checkpoints for slice order ``order`` of ``shard``."""
        seq = self.scheme.orders()[order]
        return chain_keys(self.state["roots"][shard], [self.plan.shards[shard][r] for r in seq])

    def depth(self, shard: int, order: int) -> int:
        """How many leading steps of the chain exist in the store (trained on exactly the current plan)."""
        d = 0
        for k in self.chain(shard, order):
            if not self.store.has(k):
                break
            d += 1
        return d

    def selection(self) -> list[Selection]:
        """Per shard, the constituent used for prediction: the full chain for SISA, the longest surviving
        prefix over the slice orders for S3T (ties go to the first order)."""
        out = []
        for s in range(self.plan.num_shards):
            if not self.plan.shard_ids(s):  # every id of the shard was deleted: it has nothing to contribute
                out.append(Selection(s, 0, 0, None))
                continue
            depths = [self.depth(s, b) for b in range(len(self.scheme.orders()))]
            b = int(np.argmax(depths))
            d = depths[b]
            if self.scheme.name == "sisa" and d < self.plan.num_slices:
                d = 0
            if d > 0:
                key = self.chain(s, b)[d - 1]
            else:  # a frozen backbone with every adapter off is still a (data-free) model
                key = (
                    self.state["roots"][s]
                    if self.state.get("backbone") and self.store.has(self.state["roots"][s])
                    else None
                )
            out.append(Selection(s, b, d, key))
        return out

    def _needs_training(self, shard: int) -> bool:
        if not self.plan.shard_ids(shard):
            return False
        sel = self.selection()[shard]
        if self.scheme.name == "s3t":
            return sel.depth < self.scheme.min_depth  # type: ignore[attr-defined]
        return sel.depth < self.plan.num_slices

    def _jobs(self, shards: Iterable[int]) -> list[ChainJob]:
        jobs = []
        forbidden = sorted(self.deleted)
        for s in shards:
            ids = self.plan.shard_ids(s)
            if not ids:
                continue
            data = self.data.subset(ids)
            for b, seq in enumerate(self.scheme.orders()):
                if self.depth(s, b) == self.plan.num_slices:
                    continue
                # created here, before dispatch, so parallel chains of one shard never race to write it
                ensure_root(self.store, self.scheme, self.spec, self.state["roots"][s], s, self.state.get("backbone"))
                jobs.append(
                    ChainJob(
                        self.scheme,
                        self.spec,
                        self.recipe,
                        self.store.url,
                        self.state["roots"][s],
                        s,
                        list(seq),
                        self.plan.shards[s],
                        ids,
                        data,
                        forbidden,
                        self.device,
                        backbone=self.state.get("backbone"),
                    )
                )
        return jobs

    def _train(
        self, shards: Iterable[int], executor: str | Executor | None, workers: int | None, progress: bool = True
    ) -> list[ChainResult]:
        leaked = self.plan.all_ids() & self.deleted
        if leaked:
            raise ConfigError(f"deleted ids {sorted(leaked)[:5]} are in the shard plan; they can never be trained on")
        jobs = self._jobs(shards)
        if not jobs:
            return []
        ex = make_executor(executor, workers)
        warn_if_store_is_local(ex, self.store.url)
        try:
            return ex.map(run_chain, jobs, desc=f"{self.scheme.name} chains" if progress else "")
        finally:
            if not isinstance(executor, Executor):
                ex.close()

    # ---- prediction ---------------------------------------------------------------------------------------
    def constituent(self, sel: Selection) -> nn.Module:
        if sel.key is None:
            raise ConfigError(f"shard {sel.shard} has no usable constituent")
        model = self.scheme.build(self.spec, key_seed(self.state["roots"][sel.shard]))
        self.store.get(sel.key, model)
        return model.eval()

    def ensemble(self, aggregation: str | None = None) -> ShardEnsemble:
        """The aggregate of every usable constituent (an ordinary ``nn.Module`` returning log-probabilities)."""
        sels = self.selection()
        missing = [s.shard for s in sels if s.key is None and self.plan.shard_ids(s.shard)]
        if self.scheme.name == "sisa" and missing:
            raise CheckpointError(
                f"shards {missing} are not trained on the current plan (an interrupted deletion?); "
                "run `unlearnkit resume --model DIR` (ShardedModel.resume())"
            )
        members = [self.constituent(s) for s in sels if s.key is not None]
        return ShardEnsemble(members, aggregation or self.scheme.aggregation)

    def resume(
        self,
        executor: str | Executor | None = "process",
        workers: int | None = None,
        signer: Signer | None = None,
        progress: bool = True,
    ) -> list[DeletionReport]:
        """Finish open deletion requests (:meth:`recover`) and train whatever the current plan lacks (after an
        interrupted fit). Returns the reports of the requests it finished."""
        with self.locked():
            reports = self.recover(executor, workers, signer, progress)
            self._train(
                [s for s in range(self.plan.num_shards) if self._needs_training(s)], executor, workers, progress
            )
            if self.purge() and signer is not None:  # e.g. checkpoints from before purging existed
                self.repair_signing(signer)
            self.bind(signer)
            return reports

    def accuracy(self, test: object | None = None) -> float | None:
        t = as_tensor_data(test, "test") if test is not None else self.test
        if t is None:
            return None
        return accuracy(predict_outputs(self.ensemble(), t), t.y)

    # ---- deletion -----------------------------------------------------------------------------------------
    def weights_digests(self, selection: list[Selection] | None = None) -> list[str | None]:
        """Per shard, the SHA-256 of the weights file of the constituent in use (``None`` when it has none)."""
        sels = selection if selection is not None else self.selection()
        return [self.store.weights_digest(s.key) if s.key is not None else None for s in sels]

    def model_hash(self, selection: list[Selection] | None = None, digests: list[str | None] | None = None) -> str:
        """SHA-256 over the (shard, key, weights digest) of every constituent in use: what predicts."""
        sels = selection if selection is not None else self.selection()
        digests = digests if digests is not None else self.weights_digests(sels)
        return sha256_hex([[s.shard, s.key, d] for s, d in zip(sels, digests, strict=True) if s.key is not None])

    def delete(
        self,
        ids: Iterable[int],
        *,
        executor: str | Executor | None = "process",
        workers: int | None = None,
        request_id: str | None = None,
        evaluate: bool = True,
        progress: bool = True,
        signer: Signer | None = None,
        source: str | None = None,
        background: bool = False,
    ) -> DeletionReport:
        """Delete training examples ``ids`` exactly, record the request in the ledger and return the report."""
        request = DeletionRequest(list(ids), request_id, source)
        return self.delete_many(
            [request],
            executor=executor,
            workers=workers,
            evaluate=evaluate,
            progress=progress,
            signer=signer,
            background=background,
        )[0]

    def _validate(self, request: DeletionRequest, taken: set[int]) -> tuple[list[int], list[int], dict]:
        try:
            wanted = sorted({int(i) for i in request.ids})
        except (TypeError, ValueError) as exc:
            raise ForgetSpecError(f"ids must be integers: {exc}") from exc
        n_total = self.state.get("n_train")
        bad = [i for i in wanted if i < 0 or (n_total is not None and i >= n_total)]
        protected = set(self.state.get("protected") or [])
        kept = sorted(protected.intersection(wanted))
        if kept:
            raise ForgetSpecError(
                f"ids {kept[:5]} are in the declared non-deletable split the backbone was trained on; "
                "they cannot be deleted without retraining the backbone: train a new model without them"
            )
        already = [i for i in wanted if i in self.deleted or i in taken]
        new = [i for i in wanted if i not in self.deleted and i not in taken]
        where = self.plan.locate(new)
        bad += [i for i in new if i not in where and i not in bad]
        if bad:
            raise ForgetSpecError(
                f"ids {bad[:5]} are not in this model's training set; check the ids file (ids are row numbers "
                f"of the training set, 0…{(n_total or 1) - 1})"
            )
        return new, already, where

    def delete_many(
        self,
        requests: Sequence[DeletionRequest],
        *,
        executor: str | Executor | None = "process",
        workers: int | None = None,
        evaluate: bool = True,
        progress: bool = True,
        signer: Signer | None = None,
        background: bool = False,
    ) -> list[DeletionReport]:
        """Process several requests as one round: each gets its own ``pending`` and ``committed`` ledger entry
        (and certificate), but every affected shard retrains once for all of them.

        ``background`` (S3T): commit as soon as the affected groups are deactivated — constituents fall back
        to their surviving prefix (or the backbone) — and retrain shards below ``min_depth`` in a background
        thread (:meth:`wait` joins it). Retraining only adds checkpoints for keys the committed plan already
        names, so it needs no ledger entry; the ensemble uses the deeper prefixes once they exist."""
        if not requests:
            return []
        with self.locked():
            self.recover(executor, workers, signer, progress)
            known = set(self.ledger.requests())
            names: list[str] = []
            checked = []
            taken: set[int] = set()
            for n, req in enumerate(requests):
                rid = check_identifier(req.request_id or f"req-{len(known) + n:05d}", "request id")
                if rid in known or rid in names:
                    raise ForgetSpecError(f"request id {rid!r} is already in the ledger; give each request a new id")
                new, already, where = self._validate(req, taken)
                taken |= set(new)
                names.append(rid)
                checked.append((rid, req, new, already, where))
            before = self.selection()
            keys_before = [s.key for s in before]
            model_before = self.model_hash(before)
            records = []
            for rid, req, new, already, where in checked:
                state_before = state_digest(self.state)
                self.plan = self.plan.without(new)
                self.deleted |= set(new)
                self._sync()
                record = {
                    "type": "pending",
                    "request_id": rid,
                    "ids": new,
                    "already_deleted": already,
                    "ids_sha256": ids_digest(new),
                    "locations": [[i, *where[i]] for i in new],
                    "request_file": req.source,
                    "request_file_sha256": file_digest(req.source),
                    "state_before": state_before,
                    "state_after": state_digest(self.state),
                    "depth_before": [s.depth for s in before],
                    "keys_before": keys_before,
                    "model_before": model_before,
                    "signed": signer is not None,
                }
                records.append(record)
            # one write and one fsync for the whole round: durable before exact.json changes
            pendings = self.ledger.append_many(records)
            for _ in pendings:
                fault_point("pending")
            # from here on the ids are gone from exact.json, even if retraining is interrupted
            self.state["ledger_head"] = pendings[-1]["hash"]
            self.save_state()
            fault_point("state")
            return self._complete(pendings, executor, workers, progress, evaluate, signer, background)

    def wait(self) -> list[ChainResult]:
        """Wait for background retraining started by ``delete(..., background=True)``; returns its results."""
        thread, self._background = self._background, None
        if thread is None:
            return []
        thread.join()
        if isinstance(thread.outcome, BaseException):
            raise thread.outcome
        self.bind(thread.signer)
        return thread.outcome

    def _complete(
        self,
        pendings: list[dict[str, Any]],
        executor: str | Executor | None,
        workers: int | None,
        progress: bool,
        evaluate: bool,
        signer: Signer | None,
        background: bool = False,
    ) -> list[DeletionReport]:
        """Retrain what the open requests ``pendings`` need (once per shard), then commit each of them."""
        affected = sorted({int(s) for e in pendings for _, s, _ in e["record"]["locations"]})
        start = time.perf_counter()
        todo = [s for s in affected if self._needs_training(s)]
        results = [] if background else self._train(todo, executor, workers, progress)
        fault_point("trained")
        seconds = time.perf_counter() - start
        after = self.selection()
        keys_after = [s.key for s in after]
        weights_after = self.weights_digests(after)
        model_after = self.model_hash(after, weights_after)
        acc = self.accuracy() if evaluate else None
        reports = []
        for e in pendings:
            rec = e["record"]
            shards = self._rows(rec, after, results)
            reports.append(
                DeletionReport(
                    request_id=rec["request_id"],
                    scheme=self.scheme.name,
                    ids=list(rec["ids"]),
                    already_deleted=list(rec["already_deleted"]),
                    shards=shards,
                    seconds=seconds,
                    accuracy=acc,
                    constituents=sum(1 for s in after if s.key is not None),
                    keys_before=list(rec["keys_before"]),
                    keys_after=keys_after,
                    model_before=rec["model_before"],
                    model_after=model_after,
                    weights_after=weights_after,
                )
            )
        digest = state_digest(self.state)
        committed = self.ledger.append_many(
            [
                {**r.to_dict(), "type": "committed", "pending_seq": e["seq"], "state": digest}
                for r, e in zip(reports, pendings, strict=True)
            ]
        )
        for _ in committed:
            fault_point("committed")
        self.purge()
        if signer is not None:
            entries = self.ledger.entries()
            for r, e in zip(reports, committed, strict=True):
                r.certificate = str(self._certify(e, signer, entries))
        self._finish_head(signer)
        fault_point("done")
        if background and todo:
            self.wait()
            self._background = _Background(lambda: self._train(todo, executor, workers, False), signer)
            self._background.start()
        return reports

    # ---- weights bound to the ledger ------------------------------------------------------------------------
    def bindings(self) -> list[tuple[int, dict[str, Any]]]:
        """``(seq, record)`` of every ledger entry that binds weights to keys, in order: ``committed``
        deletions and ``bound`` records (written when training outside a deletion finished)."""
        return [
            (int(e["seq"]), e["record"])
            for e in self.ledger.entries()
            if record_type(e.get("record", {})) in ("committed", "bound") and "keys_after" in e.get("record", {})
        ]

    def bind(self, signer: Signer | None = None) -> dict[str, Any] | None:
        """Append a ``bound`` ledger entry with the key, weights digest and model hash of every constituent in
        use when they are not the ones the latest binding recorded (after background retraining, ``resume``
        or a fresh fit). A weights file whose key an earlier entry bound to other bytes is never re-bound:
        that stays a failure of :func:`~.weights.check_weights`. Returns the entry (``None``: nothing new)."""
        with self.locked():
            sels = self.selection()
            keys = [s.key for s in sels]
            digests = self.weights_digests(sels)
            records = self.bindings()
            if records and records[-1][1].get("keys_after") == keys:
                return None
            earlier = {
                k: d for _, r in records for k, d in zip(r["keys_after"], r.get("weights_after") or [], strict=False)
            }
            if any(k in earlier and earlier[k] is not None and earlier[k] != d for k, d in zip(keys, digests)):
                return None
            entry = self.ledger.append(
                {
                    "type": "bound",
                    "keys_after": keys,
                    "weights_after": digests,
                    "model_after": self.model_hash(sels, digests),
                    "state": state_digest(self.state),
                }
            )
            self._finish_head(signer)
            return entry

    # ---- purge and signatures --------------------------------------------------------------------------------
    def stale_checkpoints(self) -> dict[str, list[int]]:
        """Every stored checkpoint (in use or not) whose recorded training history contains a deleted id,
        with those ids: what :meth:`purge` removes and what ``exact-audit`` refuses."""
        deleted = self.deleted | self.ledger.deleted_ids()
        out: dict[str, list[int]] = {}
        for key in self.store.stored_keys():
            try:
                history = self.store.history(key)
            except (OSError, ValueError) as exc:
                where = f"checkpoint {key[:12]}… in {self.store.url}"
                raise CheckpointError(f"{where} has no readable meta.json ({exc}); remove that folder") from exc
            bad = sorted({int(i) for sl in history for i in sl} & deleted)
            if bad:
                out[key] = bad
        return out

    def purged_keys(self) -> set[str]:
        """Every key any ``purge`` or ``purged`` ledger entry lists: checkpoints trained on deleted ids."""
        return {
            str(k)
            for e in self.ledger.entries()
            if record_type(e.get("record", {})) in ("purge", "purged")
            for k in e["record"].get("keys", [])
        }

    def unverifiable_checkpoints(self) -> dict[str, str]:
        """Stored folders the purge check cannot vouch for, with why: a folder without ``meta.json`` (its
        history is unknown), a checkpoint whose recorded history does not hash to the key it is stored under
        (the history was edited), a key a purge removed that is stored again."""
        out: dict[str, str] = {}
        purged = self.purged_keys() if not self.ledger.open_purges() else set()
        complete = set(self.store.stored_keys())
        for key in self.store.stored_folders():
            if key in purged:
                out[key] = "a purge removed it (trained on deleted ids) and it is stored again"
            elif key not in complete:
                out[key] = "the folder has no meta.json (what it was trained on is unknown)"
            else:
                ok, why = self.store.check(key)
                if not ok:
                    out[key] = why
        return out

    def _purge_due(self) -> bool:
        """Whether a deletion was committed after the last completed purge, or a purge is pending."""
        entries = self.ledger.entries()
        kinds = [record_type(e["record"]) for e in entries]
        last_commit = max((n for n, k in enumerate(kinds) if k == "committed"), default=-1)
        last_purged = max((n for n, k in enumerate(kinds) if k == "purged"), default=-1)
        return last_commit > last_purged or bool(open_purges(entries))

    def purge(self) -> list[str]:
        """Remove every stored checkpoint trained on a deleted id (local and fsspec stores alike). A ``purge``
        ledger entry lists the keys first (pending purge), a ``purged`` entry records that they are gone; a
        crash in between is finished by :meth:`recover`. Returns the removed keys."""
        with self.locked():
            self.wait()  # background retraining must not write a checkpoint of an older plan after the purge
            opened = self.ledger.open_purges()
            back = self.purged_keys() & set(self.store.stored_folders())  # purged checkpoints put back
            keys = sorted({k for e in opened for k in e["record"]["keys"]} | set(self.stale_checkpoints()) | back)
            if not keys and not opened:
                return []
            entry = self.ledger.append(
                {"type": "purge", "keys": keys, "deleted_sha256": ids_digest(self.deleted), "reason": "deleted ids"}
            )
            fault_point("purge")
            for key in keys:
                self.store.remove(key)
            left = sorted(set(self.stale_checkpoints()))
            if left:
                raise CheckpointError(f"checkpoints {[k[:12] for k in left]} could not be purged from {self.store.url}")
            seqs = [e["seq"] for e in opened] + [entry["seq"]]
            done = self.ledger.append({"type": "purged", "purge_seqs": seqs, "keys": keys, "removed": len(keys)})
            self.state["ledger_head"] = done["hash"]
            self.save_state()
            return keys

    def _certify(self, committed: dict[str, Any], signer: Signer, entries: list[dict[str, Any]] | None = None) -> Path:
        """Sign the certificate of the request committed in ledger entry ``committed``: its ledger head is the
        ledger's current last entry, and it states how many checkpoints the purge that followed removed."""
        rec = committed["record"]
        entries = entries if entries is not None else self.ledger.entries()
        purged = [e for e in entries[committed["seq"] :] if record_type(e["record"]) == "purged"]
        pending_purge = bool(open_purges(entries))
        count, head = self.ledger.tail()
        body = certificate_body(
            rec["request_id"],
            [int(i) for i in rec["ids"]],
            rec["model_before"],
            rec["model_after"],
            [int(r["shard"]) for r in rec["shards"]],
            head,
            count,
        )
        body["committed_entry"] = committed["seq"]
        body["purge"] = {
            "complete": not pending_purge,
            "removed_checkpoints": sum(int(e["record"].get("removed", 0)) for e in purged),
        }
        return write_certificate(self.path, body, signer)

    def _finish_head(self, signer: Signer | None) -> None:
        """Record the ledger's last entry in ``exact.json`` and, with ``signer``, sign it as the new head."""
        count, head = self.ledger.tail()
        self.state["ledger_head"] = head
        self.save_state()
        if signer is not None:
            sign_head(self.path, head, count, signer)

    def repair_signing(self, signer: Signer) -> list[str]:
        """After a crash between ``committed`` and signing: issue the certificate of every committed request
        that was made with a signer and has none, and sign the head when the signed head does not cover the
        whole ledger. Returns the request ids certified."""
        with self.locked():
            entries = self.ledger.entries()
            signed = {
                e["record"]["request_id"]
                for e in entries
                if record_type(e["record"]) == "pending" and e["record"].get("signed")
            }
            issued = []
            for e in entries:
                rid = e["record"].get("request_id")
                if record_type(e["record"]) != "committed" or rid not in signed:
                    continue
                if not certificate_path(self.path, rid).is_file():
                    self._certify(e, signer, entries)
                    issued.append(rid)
            count, head = self.ledger.tail()
            if issued or signed_head_entries(self.path) != count:
                self._finish_head(signer)
            return issued

    def _rows(self, rec: dict[str, Any], after: list[Selection], results: list[ChainResult]) -> list[dict[str, Any]]:
        where = {int(i): (int(s), int(r)) for i, s, r in rec["locations"]}
        rows = []
        for s in sorted({sh for sh, _ in where.values()}):
            slices = sorted({r for sh, r in where.values() if sh == s})
            row: dict[str, Any] = {"shard": s, "slices": slices, "depth_before": rec["depth_before"][s]}
            row["depth_after"] = after[s].depth
            trained = [r for r in results if r.shard == s]
            row["retrained_steps"] = sorted({st for r in trained for st in r.trained_steps})
            row["retrain_seconds"] = sum(r.seconds for r in trained)
            row["optimizer_steps"] = sum(r.optimizer_steps for r in trained)
            if self.scheme.name == "s3t":
                seq = self.scheme.orders()[after[s].order]
                groups = self.scheme.group_names(self.scheme.build(self.spec, 0), self.plan.num_slices)
                row["order"] = seq
                row["deactivated_groups"] = [groups[p] for p in range(after[s].depth, len(seq))]
                off = [f"{p} ({', '.join(groups[p])})" for p in range(after[s].depth, len(seq))]
                row["parameters"] = "deactivated groups " + "; ".join(off) if off else "none"
            else:
                row["parameters"] = "all parameters of the shard's constituent" if trained else "none"
            rows.append(row)
        return rows

    def refit(
        self, executor: str | Executor | None = "process", workers: int | None = None, progress: bool = True
    ) -> list[ChainResult]:
        """Retrain every constituent from scratch on the current plan (deleted ids are never used again):
        new roots make every key new."""
        with self.locked():
            self.recover(executor, workers, progress=progress)
            gen = int(self.state.get("generation", 0)) + 1
            self.state["generation"] = gen
            config = {k: self.state[k] for k in ("scheme", "model", "recipe", "seed")}
            bb = self.state.get("backbone")
            roots = [
                root_key({**config, "shard": s, "generation": gen, "backbone": bb}) for s in range(self.plan.num_shards)
            ]
            self.state["roots"] = roots
            entry = self.ledger.append({"type": "fit", "generation": gen, "state": state_digest(self.state)})
            self.state["ledger_head"] = entry["hash"]
            self.save_state()
            results = self._train(range(self.plan.num_shards), executor, workers, progress)
            self.bind()
            return results
