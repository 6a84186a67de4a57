"""A sharded model on disk: the plan, the checkpoint store, the deletion ledger and the live ensemble.

Folder layout::

    DIR/exact.json     scheme, model spec, recipe, seed, dataset, shard plan, deleted ids, ledger head
    DIR/store/<key>/   one checkpoint per key (hash of the exact index history it was trained on)
    DIR/ledger.jsonl   hash-chained record of every deletion request

:meth:`ShardedModel.fit` trains every shard through an executor; :meth:`ShardedModel.delete` removes ids
(SISA retrains the affected shards from their first affected slice, S3T deactivates parameter groups);
:meth:`ShardedModel.ensemble` is the model to predict with; :func:`unlearnkit.exact.audit` proves from the
keys that no constituent in use has seen a deleted id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..checkpoint import atomic_write_text
from ..data.tensors import TensorData, as_tensor_data
from ..engine import Recipe
from ..errors import CheckpointError, ConfigError, ForgetSpecError
from ..metrics.accuracy import accuracy
from ..metrics.predict import predict_outputs
from .chains import ChainJob, ChainResult, ModelSpec, ensure_root, key_seed, run_chain
from .ensemble import ShardEnsemble
from .executors import Executor, make_executor
from .ledger import Ledger
from .s3t import S3T, layer_groups
from .sharding import ShardPlan, chain_keys, make_plan, root_key
from .sisa import SISA
from .store import CheckpointStore

STATE = "exact.json"
LEDGER = "ledger.jsonl"
SCHEMES: dict[str, type[SISA]] = {"sisa": SISA, "s3t": S3T}


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
        self.store = CheckpointStore(self.path / "store")
        self.ledger = Ledger(self.path / LEDGER)
        self._data = data
        self._test = test
        self.device = device
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
    ) -> ShardedModel:
        """Shard ``data`` (rows are ids ``0…N-1``), train every constituent and save everything in ``out``.

        Ids deleted by an earlier model in ``out`` (found in its ledger) are left out and stay deleted.
        """
        out = Path(out)
        if (out / STATE).is_file() and not overwrite:
            raise CheckpointError(f"{out} already holds an exact-unlearning model; choose a new folder or overwrite")
        train = as_tensor_data(data, "train")
        deleted = set(Ledger(out / LEDGER).deleted_ids()) if (out / LEDGER).is_file() else set()
        if (out / STATE).is_file():
            deleted |= {int(i) for i in json.loads((out / STATE).read_text()).get("deleted", [])}
        keep = np.array([i for i in range(len(train)) if i not in deleted], dtype=np.int64)
        kept_prior = None if prior is None else np.asarray(prior, dtype=np.float64)[keep]
        plan = make_plan(keep, scheme.shards, scheme.slices, seed=seed, prior=kept_prior)
        spec_dict = model.to_dict()
        config = {"scheme": scheme.to_dict(), "model": spec_dict, "recipe": recipe.to_dict(), "seed": seed}
        old_head = Ledger(out / LEDGER).verify().head if (out / LEDGER).is_file() else None
        state = {
            "format": 1,
            "kind": "exact",
            **config,
            "task": "classification",
            "dataset": dataset,
            "n_train": len(train),
            "plan": plan.to_dict(),
            "deleted": sorted(deleted),
            "roots": [root_key({**config, "shard": s}) for s in range(scheme.shards)],
            "ledger_head": old_head,
        }
        obj = cls(out, state, train, as_tensor_data(test, "test") if test is not None else None, model.factory, device)
        scheme.prepare(model.build(0))
        obj.save_state()
        obj._train(range(scheme.shards), executor, workers, progress=progress)
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
    ) -> ShardedModel:
        """Open a model folder. Without ``data`` the training set is reloaded from the dataset registry entry
        recorded at training time (needed only when a deletion must retrain)."""
        p = Path(path) / STATE
        if not p.is_file():
            raise CheckpointError(f"{path} is not an exact-unlearning model (no {STATE}); create one with exact-train")
        state = json.loads(p.read_text())
        obj = cls(
            path,
            state,
            as_tensor_data(data, "train") if data is not None else None,
            as_tensor_data(test, "test") if test is not None else None,
            factory,
            device,
        )
        check = obj.ledger.verify(expected_head=state.get("ledger_head"))
        if not check.ok:
            raise CheckpointError(
                f"{obj.ledger.path} does not verify ({check.problem}); run `unlearnkit ledger verify` and restore it"
            )
        return obj

    def save_state(self) -> None:
        self.state["plan"] = self.plan.to_dict()
        self.state["deleted"] = sorted(self.deleted)
        atomic_write_text(self.path / STATE, json.dumps(self.state, indent=1) + "\n")

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
            out.append(Selection(s, b, d, self.chain(s, b)[d - 1] if d > 0 else None))
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
                ensure_root(self.store, self.scheme, self.spec, self.state["roots"][s], s)
                jobs.append(
                    ChainJob(
                        self.scheme,
                        self.spec,
                        self.recipe,
                        str(self.store.root),
                        self.state["roots"][s],
                        s,
                        list(seq),
                        self.plan.shards[s],
                        ids,
                        data,
                        forbidden,
                        self.device,
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
        try:
            return ex.map(run_chain, jobs, desc=f"{self.scheme.name} chains" if progress else "")
        finally:
            if not isinstance(executor, Executor):
                ex.close()

    # ---- prediction ---------------------------------------------------------------------------------------
    def constituent(self, sel: Selection) -> nn.Module:
        if sel.key is None:
            raise ConfigError(f"shard {sel.shard} has no usable constituent")
        model = self.spec.build(key_seed(self.state["roots"][sel.shard]))
        self.store.get(sel.key, model)
        return model.eval()

    def ensemble(self, aggregation: str | None = None) -> ShardEnsemble:
        """The aggregate of every usable constituent (an ordinary ``nn.Module`` returning log-probabilities)."""
        sels = self.selection()
        missing = [s.shard for s in sels if s.key is None and self.plan.shard_ids(s.shard)]
        if self.scheme.name == "sisa" and missing:
            raise CheckpointError(
                f"shards {missing} are not trained on the current plan (an interrupted deletion?); "
                "run ShardedModel.resume() or `unlearnkit delete` again"
            )
        members = [self.constituent(s) for s in sels if s.key is not None]
        return ShardEnsemble(members, aggregation or self.scheme.aggregation)

    def resume(self, executor: str | Executor | None = "process", workers: int | None = None) -> None:
        """Train whatever the current plan lacks (after an interrupted deletion)."""
        self._train([s for s in range(self.plan.num_shards) if self._needs_training(s)], executor, workers)

    def accuracy(self, test: object | None = None) -> float | None:
        t = as_tensor_data(test, "test") if test is not None else self.test
        if t is None:
            return None
        return accuracy(predict_outputs(self.ensemble(), t), t.y)

    # ---- deletion -----------------------------------------------------------------------------------------
    def delete(
        self,
        ids: Iterable[int],
        *,
        executor: str | Executor | None = "process",
        workers: int | None = None,
        request_id: str | None = None,
        evaluate: bool = True,
        progress: bool = True,
    ) -> DeletionReport:
        """Delete training examples ``ids`` exactly, record the request in the ledger and return the report."""
        try:
            wanted = sorted({int(i) for i in ids})
        except (TypeError, ValueError) as exc:
            raise ForgetSpecError(f"ids must be integers: {exc}") from exc
        n_total = self.state.get("n_train")
        bad = [i for i in wanted if i < 0 or (n_total is not None and i >= n_total)]
        already = [i for i in wanted if i in self.deleted]
        new = [i for i in wanted if i not in self.deleted]
        where = self.plan.locate(new)
        bad += [i for i in new if i not in where and i not in bad]
        if bad:
            raise ForgetSpecError(
                f"ids {bad[:5]} are not in this model's training set; check the ids file (ids are row numbers "
                f"of the training set, 0…{len(self.plan.all_ids()) + len(self.deleted) - 1})"
            )
        before = self.selection()
        start = time.perf_counter()
        self.plan = self.plan.without(new)
        self.deleted |= set(new)
        self.save_state()  # from here on the ids are gone, even if retraining is interrupted
        affected = sorted({s for s, _ in where.values()})
        results = self._train([s for s in affected if self._needs_training(s)], executor, workers, progress)
        seconds = time.perf_counter() - start
        after = self.selection()
        shards = []
        for s in affected:
            slices = sorted({r for i, (sh, r) in where.items() if sh == s})
            row: dict[str, Any] = {"shard": s, "slices": slices, "depth_before": before[s].depth}
            row["depth_after"] = after[s].depth
            trained = [r for r in results if r.shard == s]
            row["retrained_steps"] = sorted({st for r in trained for st in r.trained_steps})
            row["retrain_seconds"] = sum(r.seconds for r in trained)
            row["optimizer_steps"] = sum(r.optimizer_steps for r in trained)
            if self.scheme.name == "s3t":
                seq = self.scheme.orders()[after[s].order]
                groups = layer_groups(self.spec.build(0), self.plan.num_slices)
                row["order"] = seq
                row["deactivated_groups"] = [groups[p] for p in range(after[s].depth, len(seq))]
                off = [f"{p} ({', '.join(groups[p])})" for p in range(after[s].depth, len(seq))]
                row["parameters"] = "deactivated groups " + "; ".join(off) if off else "none"
            else:
                row["parameters"] = "all parameters of the shard's constituent" if trained else "none"
            shards.append(row)
        report = DeletionReport(
            request_id=request_id or f"req-{len(self.ledger.entries()):05d}",
            scheme=self.scheme.name,
            ids=new,
            already_deleted=already,
            shards=shards,
            seconds=seconds,
            accuracy=self.accuracy() if evaluate else None,
            constituents=sum(1 for s in after if s.key is not None),
            keys_before=[s.key for s in before],
            keys_after=[s.key for s in after],
        )
        entry = self.ledger.append(report.to_dict())
        self.state["ledger_head"] = entry["hash"]
        self.save_state()
        return report

    def refit(
        self, executor: str | Executor | None = "process", workers: int | None = None, progress: bool = True
    ) -> list[ChainResult]:
        """Retrain every constituent from scratch on the current plan (deleted ids are never used again):
        new roots make every key new."""
        gen = int(self.state.get("generation", 0)) + 1
        self.state["generation"] = gen
        config = {k: self.state[k] for k in ("scheme", "model", "recipe", "seed")}
        self.state["roots"] = [root_key({**config, "shard": s, "generation": gen}) for s in range(self.plan.num_shards)]
        self.save_state()
        return self._train(range(self.plan.num_shards), executor, workers, progress)
