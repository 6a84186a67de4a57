"""Data-parallel training of one model with Hugging Face Accelerate, through the shared engine.

Run it on one process, or on many with ``accelerate launch``::

    accelerate launch --cpu --num_processes 2 -m unlearnkit.cli dp-train --cpu --dataset digits --out runs/dp

With ``dp-train --cpu`` the processes run on CPUs and synchronise over gloo. Accelerate's plain launcher
(no ``--multi_gpu``) starts only one process, so ``dp-train`` reads the launcher's count and starts the
processes itself with torchrun (:mod:`.launch`); ``accelerate launch --multi_gpu`` starts them through
torchrun directly. ``--processes N`` is a guard: the run stops with an error unless ``N`` processes train.

The global batch is ``batch_size × processes``. The learning rate is used as given unless ``scale_lr`` is
set, which multiplies it by the number of processes (the linear scaling rule, Goyal et al., "Accurate,
Large Minibatch SGD", 2017): the gradient is averaged over ``N`` times more examples, so a step at rate
``N·lr`` moves the weights about as far as ``N`` single-process steps at rate ``lr``.

Every process draws the same seeded order of global batches of ``batch_size × processes`` examples and
trains on its own contiguous part; Accelerate (DDP) averages the gradients. On one process the batches are
exactly those of :func:`unlearnkit.train_model`, so the result matches the single-process engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import save
from ..data.registry import load_dataset
from ..data.tensors import Batches, TensorData, as_tensor_data
from ..engine import Phase, Recipe, TrainLog, train
from ..errors import ConfigError, require
from ..losses import task_loss
from ..models import create_model
from ..runtime import seed_everything
from ..training import default_recipe
from ..workflow import fit_metrics, original_meta


class ProcessBatches:
    """This process's part of every global batch: ``batch_size`` examples out of ``batch_size × processes``.

    With several processes the last, incomplete global batch is dropped so all processes take the same
    number of steps (DDP requires it)."""

    def __init__(self, data: TensorData, batch_size: int, processes: int, index: int, seed: int = 0) -> None:
        self.batch_size = batch_size
        self.index = index
        self.processes = processes
        self.glob = Batches(data, batch_size * processes, shuffle=True, seed=seed, drop_last=processes > 1)

    def __len__(self) -> int:
        return len(self.glob)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        lo, hi = self.index * self.batch_size, (self.index + 1) * self.batch_size
        for x, y in self.glob:
            yield x[lo:hi], y[lo:hi]


def check_processes(started: int, requested: int | None) -> None:
    """Refuse to train on a number of processes other than the one requested."""
    if requested is not None and started != requested:
        raise ConfigError(
            f"dp-train was asked for {requested} processes but runs in {started}: `accelerate launch --cpu` starts "
            f"one process; launch with `accelerate launch --multi_gpu --num_processes {requested} -m unlearnkit.cli "
            f"dp-train --cpu --processes {requested} ...` (torchrun, gloo on CPUs)"
        )


def make_accelerator(cpu: bool = False) -> Any:
    """An ``accelerate.Accelerator`` (optional extra ``accelerate``)."""
    accelerate = require("accelerate", "accelerate")
    return accelerate.Accelerator(cpu=cpu)


def train_data_parallel(
    model: nn.Module,
    data: object,
    recipe: Recipe,
    *,
    accelerator: Any | None = None,
    cpu: bool = False,
    task: str = "classification",
    seed: int = 0,
    progress: bool = True,
) -> TrainLog:
    """Train ``model`` in place on ``data`` with the shared engine, data-parallel over Accelerate's processes."""
    acc = accelerator if accelerator is not None else make_accelerator(cpu)
    batches = ProcessBatches(
        as_tensor_data(data, "train"), recipe.batch_size, acc.num_processes, acc.process_index, seed
    )
    return train(
        model,
        Phase("train", batches, task_loss(task)),
        recipe,
        seed=seed,
        progress=progress and acc.is_main_process,
        desc="data-parallel",
        accelerator=acc,
    )


def train_checkpoint_data_parallel(
    out: str | Path,
    *,
    dataset: str = "digits",
    train_subset: int | None = None,
    data_dir: str | None = None,
    model: str = "mlp",
    model_kwargs: dict[str, Any] | None = None,
    recipe: Recipe | None = None,
    seed: int = 0,
    cpu: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    processes: int | None = None,
    scale_lr: bool = False,
) -> Path | None:
    """Train an original model data-parallel and save it like ``unlearnkit train`` does (main process only;
    other processes return ``None``). ``processes``: how many processes the launcher must have started
    (error otherwise). ``scale_lr``: multiply the learning rate by the number of processes."""
    acc = make_accelerator(cpu)
    check_processes(acc.num_processes, processes)
    bundle = load_dataset(dataset, data_dir=data_dir, train_subset=train_subset)
    recipe = recipe or default_recipe(dataset)
    if scale_lr:
        recipe = Recipe(**{**recipe.to_dict(), "lr": recipe.lr * acc.num_processes})
    seed_everything(seed)
    net = create_model(model, bundle.input_shape, bundle.output_dim, **(model_kwargs or {}))
    log = train_data_parallel(
        net, bundle.train, recipe, accelerator=acc, task=bundle.task, seed=seed, progress=progress
    )
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return None
    net = acc.unwrap_model(net).cpu()
    meta = original_meta(
        dataset=dataset,
        data_dir=data_dir,
        train_subset=train_subset,
        bundle=bundle,
        model=model,
        model_kwargs=model_kwargs,
        recipe=recipe,
        seed=seed,
        seconds=log.seconds,
        metrics=fit_metrics(net, bundle),
    )
    meta["processes"] = acc.num_processes
    meta["global_batch"] = recipe.batch_size * acc.num_processes
    meta["lr_scaled"] = scale_lr
    return save(net, out, meta, overwrite=overwrite)
