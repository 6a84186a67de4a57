"""One unit of parallel work: train (or resume) the checkpoint chain of one slice order of one shard.

:func:`run_chain` is a plain top-level function of a picklable :class:`ChainJob`, so any executor (a local
process pool, Ray, or the calling process) can run it. It resumes from the deepest checkpoint whose key is
already in the store, so a deletion retrains only from the first slice whose ids changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.tensors import TensorData
from ..engine import Recipe
from ..errors import ConfigError
from ..models import create_model
from ..runtime import seed_everything
from .faults import fault_point
from .sharding import chain_keys
from .sisa import SISA
from .store import CheckpointStore, open_store


@dataclass
class ModelSpec:
    """How to build a fresh constituent: a registered model (``name``, ``input_shape``, ``num_classes``,
    ``kwargs``) or, from Python, any picklable ``factory()``."""

    name: str = "mlp"
    input_shape: tuple[int, ...] = ()
    num_classes: int = 10
    kwargs: dict[str, Any] = field(default_factory=dict)
    factory: Callable[[], nn.Module] | None = None

    def build(self, seed: int) -> nn.Module:
        seed_everything(seed)
        if self.factory is not None:
            return self.factory()
        return create_model(self.name, self.input_shape, self.num_classes, **self.kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "input_shape": list(self.input_shape), "num_classes": self.num_classes}
        d["kwargs"] = dict(self.kwargs)
        if self.factory is not None:
            d["factory"] = getattr(self.factory, "__qualname__", repr(self.factory))
        return d


def key_seed(key: str) -> int:
    """A 31-bit seed derived from a checkpoint key: equal keys train identically."""
    return int(key[:8], 16) & 0x7FFFFFFF


@dataclass
class ChainJob:
    """Everything a worker needs; ``data`` holds only this shard's rows, ``ids`` their example ids."""

    scheme: SISA
    spec: ModelSpec
    recipe: Recipe
    store: str
    root: str
    shard: int
    order: list[int]
    slices: list[list[int]]
    ids: list[int]
    data: TensorData
    forbidden: list[int] = field(default_factory=list)
    device: str | None = None
    threads: int | None = None
    backbone: str | None = None


@dataclass
class ChainResult:
    shard: int
    order: list[int]
    keys: list[str]
    trained_steps: list[int]
    trained_params: dict[int, list[str]]
    seconds: float
    optimizer_steps: int = 0


def ensure_root(
    store: CheckpointStore, scheme: SISA, spec: ModelSpec, root: str, shard: int, backbone: str | None = None
) -> nn.Module:
    """The untrained model of a shard, stored under its root key (created once, deterministically). With a
    ``backbone`` key the root is that pre-trained model with the scheme's adapters attached (switched off)."""
    if backbone is not None:
        model = spec.build(key_seed(root))
        store.get(backbone, model)
        scheme.attach(model)
    else:
        model = scheme.build(spec, key_seed(root))
        scheme.prepare(model)
    if not store.has(root):
        store.put(root, model, {"root": root, "shard": shard, "scheme": scheme.to_dict(), "history": [], "step": 0})
    return model


def run_chain(job: ChainJob) -> ChainResult:
    """Make every checkpoint of ``job``'s chain exist in the store, training the missing ones in order."""
    if job.threads:
        torch.set_num_threads(job.threads)
    leaked = set(job.forbidden).intersection(i for sl in job.slices for i in sl)
    if leaked:
        raise ConfigError(
            f"refusing to train shard {job.shard} on deleted ids {sorted(leaked)[:5]}; "
            "deleted ids can never be used again by this model"
        )
    history = [job.slices[o] for o in job.order]
    keys = chain_keys(job.root, history)
    store = open_store(job.store, job.store)
    done = 0
    while done < len(keys) and store.has(keys[done]):
        done += 1
    result = ChainResult(job.shard, list(job.order), keys, [], {}, 0.0)
    if done == len(keys):
        return result
    start = time.perf_counter()
    model = ensure_root(store, job.scheme, job.spec, job.root, job.shard, job.backbone)
    base = {"root": job.root, "shard": job.shard, "scheme": job.scheme.to_dict()}
    if done > 0:
        store.get(keys[done - 1], model)
    else:
        store.get(job.root, model)
    row = {int(i): r for r, i in enumerate(job.ids)}
    for step in range(done, len(keys)):
        seen = [i for sl in history[: step + 1] for i in sl]
        if not seen:  # every id of these slices was deleted: nothing to learn, the state carries over
            names: list[str] = []
        else:
            data = job.data.subset([row[i] for i in seen])
            seed = key_seed(keys[step])
            log, names = job.scheme.train_step(model, data, step, job.recipe, seed=seed, device=job.device)
            result.optimizer_steps += log.steps
        meta = {
            **base,
            "history": [sorted(sl) for sl in history[: step + 1]],
            "order": list(job.order[: step + 1]),
            "step": step + 1,
            "trained": names,
        }
        store.put(keys[step], model.cpu(), meta)
        fault_point("checkpoint")
        result.trained_steps.append(step + 1)
        result.trained_params[step + 1] = names
    result.seconds = time.perf_counter() - start
    return result
