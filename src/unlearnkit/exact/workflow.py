"""Folder-level workflows behind the ``exact-train``, ``delete``, ``ledger verify`` and ``exact-audit``
commands: a registered dataset and model in, a model folder out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data.registry import load_dataset
from ..engine import Recipe
from ..errors import CheckpointError, ConfigError
from ..forget import read_index_file, validate_indices
from ..training import default_recipe
from .audit import ExactnessReport, audit
from .chains import ModelSpec
from .ledger import Ledger, LedgerCheck
from .sharded import LEDGER, SCHEMES, STATE, DeletionReport, ShardedModel


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
    executor: str = "process",
    workers: int | None = None,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> ShardedModel:
    """Train a SISA or S3T model on a registered dataset into folder ``out``.

    ``prior_file`` holds one request likelihood per training example (txt/json/npy) for SISA's
    distribution-aware sharding.
    """
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
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
    )


def delete_ids(
    model_dir: str | Path,
    ids_file: str | Path,
    *,
    request_id: str | None = None,
    executor: str = "process",
    workers: int | None = None,
    progress: bool = True,
) -> DeletionReport:
    """Process one deletion request: the ids (training-row numbers) listed in ``ids_file``."""
    sm = ShardedModel.open(model_dir)
    n_train = int(sm.state.get("n_train", 0))
    ids = validate_indices(read_index_file(ids_file), n_train, origin=str(ids_file))
    return sm.delete(ids.tolist(), request_id=request_id, executor=executor, workers=workers, progress=progress)


def verify_ledger(model_dir: str | Path) -> LedgerCheck:
    """Verify the hash chain of ``model_dir``'s ledger and that its head is the one the folder recorded."""
    folder = Path(model_dir)
    if folder.is_file():  # a ledger file given directly: chain check only
        return Ledger(folder).verify()
    state = folder / STATE
    if not state.is_file():
        raise CheckpointError(f"{folder} is not an exact-unlearning model (no {STATE}); pass the model folder")
    head = json.loads(state.read_text()).get("ledger_head")
    return Ledger(folder / LEDGER).verify(expected_head=head)


def audit_folder(model_dir: str | Path) -> ExactnessReport:
    """:func:`~unlearnkit.exact.audit` of a model folder."""
    return audit(ShardedModel.open(model_dir))
