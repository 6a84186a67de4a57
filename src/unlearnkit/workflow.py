"""Checkpoint-level workflows behind the ``train`` / ``unlearn`` / ``evaluate`` commands.

A checkpoint's ``meta.json`` remembers its dataset and recipe, so later steps need only the checkpoint and a
forget spec. The original checkpoint is never modified: unlearned models go to a new folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .api import unlearn
from .checkpoint import load, read_meta, same_path, save
from .data.registry import DatasetBundle, load_dataset
from .engine import Recipe
from .errors import CheckpointError
from .forget import ForgetSplit, parse_forget
from .metrics.accuracy import accuracy
from .metrics.evaluate import Evaluation, evaluate
from .metrics.predict import predict_outputs
from .metrics.regression import mean_absolute_error
from .models import create_model
from .outputs import check_output_folder
from .runtime import seed_everything
from .training import check_training_recipe, default_recipe, train_model


def _bundle(meta: dict[str, Any], data_dir: str | None = None) -> DatasetBundle:
    if not isinstance(meta.get("dataset"), str):
        raise CheckpointError(
            "the checkpoint's meta.json does not name its dataset; it was not made by `unlearnkit train` or is "
            "damaged — train the original again"
        )
    return load_dataset(
        meta["dataset"], data_dir=data_dir or meta.get("data_dir"), train_subset=meta.get("train_subset")
    )


def _split(bundle: DatasetBundle, forget: str, seed: int) -> ForgetSplit:
    return parse_forget(forget, bundle.train.y, class_names=bundle.class_names, seed=seed)


def fit_metrics(net: nn.Module, bundle: DatasetBundle) -> dict[str, float]:
    """How well a trained original fits: train (RA) and test (TA) accuracy, or MAE for regression."""
    if bundle.task == "classification":
        return {
            "ra": accuracy(predict_outputs(net, bundle.train), bundle.train.y),
            "ta": accuracy(predict_outputs(net, bundle.test), bundle.test.y),
        }
    return {
        "retain_mae": mean_absolute_error(predict_outputs(net, bundle.train), bundle.train.y),
        "test_mae": mean_absolute_error(predict_outputs(net, bundle.test), bundle.test.y),
    }


def original_meta(
    *,
    dataset: str,
    data_dir: str | None,
    train_subset: int | None,
    bundle: DatasetBundle,
    model: str,
    model_kwargs: dict[str, Any] | None,
    recipe: Recipe,
    seed: int,
    seconds: float,
    metrics: dict[str, float],
) -> dict[str, Any]:
    """The ``meta.json`` of an original checkpoint: enough to rebuild the model and reload its data."""
    return {
        "kind": "original",
        "dataset": dataset,
        "data_dir": data_dir,
        "train_subset": train_subset,
        "task": bundle.task,
        "model": {
            "name": model,
            "input_shape": list(bundle.input_shape),
            "num_classes": bundle.output_dim,
            "kwargs": model_kwargs or {},
        },
        "recipe": recipe.to_dict(),
        "seed": seed,
        "seconds": seconds,
        "metrics": metrics,
    }


def train_checkpoint(
    out: str | Path,
    *,
    dataset: str = "digits",
    model: str = "cnn",
    model_kwargs: dict[str, Any] | None = None,
    recipe: Recipe | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    train_subset: int | None = None,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Train an original model and save it (safetensors + meta with dataset, model, recipe, seed, metrics)."""
    recipe = recipe or default_recipe(dataset)
    check_training_recipe(recipe)
    check_output_folder(out, overwrite=overwrite, inputs=[data_dir], original=True)
    bundle = load_dataset(dataset, data_dir=data_dir, train_subset=train_subset)
    seed_everything(seed)
    net = create_model(model, bundle.input_shape, bundle.output_dim, **(model_kwargs or {}))
    log = train_model(net, bundle.train, recipe, task=bundle.task, seed=seed, device=device, progress=progress)
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
    return save(net, out, meta, overwrite=overwrite), meta


def unlearn_checkpoint(
    model_dir: str | Path,
    out: str | Path,
    *,
    forget: str,
    method: str = "salun",
    hparams: dict[str, Any] | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Load a checkpoint, unlearn ``forget`` with ``method`` and save the result to a *new* folder.

    ``out`` is checked before any work; it may never be the input or another original checkpoint.
    ``hparams`` may set the method's own ``seed``; ``seed`` alone seeds both the forget draw and the method."""
    if not str(out).strip():
        raise CheckpointError("the output folder is empty; give a new folder name, e.g. --out ckpt/unlearned")
    if same_path(model_dir, out):
        raise CheckpointError("the output folder is the original checkpoint; choose another --out (originals are kept)")
    check_output_folder(out, overwrite=overwrite, inputs=[model_dir, data_dir])
    original, meta = load(model_dir)
    bundle = _bundle(meta, data_dir)
    split = _split(bundle, forget, seed)
    res = unlearn(
        original,
        split.forget(bundle.train),
        split.retain(bundle.train),
        method,
        task=bundle.task,
        num_classes=bundle.num_classes,
        device=device,
        progress=progress,
        check_overlap=False,
        **{"seed": seed, **(hparams or {})},
    )
    ev = evaluate(
        res.model,
        forget=split.forget(bundle.train),
        retain=split.retain(bundle.train),
        test=split.test(bundle.test),
        task=bundle.task,
    )
    new_meta = {
        **meta,
        "kind": "unlearned",
        "parent": str(Path(model_dir).resolve()),
        "forget": split.to_dict(),
        "method": method,
        "hparams": res.hparams,
        "seconds": res.seconds,
        "metrics": ev.metrics,
    }
    if "auto" in res.report:  # what auto chose, what it spent and whether it reached the target
        new_meta["auto"] = res.report["auto"]
    return save(res.model, out, new_meta, overwrite=overwrite), new_meta


def evaluate_checkpoint(
    model_dir: str | Path,
    *,
    forget: str,
    reference: str | Path | None = None,
    seed: int = 0,
    data_dir: str | None = None,
) -> Evaluation:
    """Metrics of a checkpoint for a forget spec, with gaps to a reference checkpoint when one is given."""
    model, meta = load(model_dir)
    bundle = _bundle(meta, data_dir)
    split = _split(bundle, forget, seed)
    ref = load(reference)[0] if reference is not None else None
    if reference is not None and read_meta(reference).get("dataset") != meta.get("dataset"):
        raise CheckpointError(f"{reference} was trained on another dataset than {model_dir}")
    return evaluate(
        model,
        forget=split.forget(bundle.train),
        retain=split.retain(bundle.train),
        test=split.test(bundle.test),
        reference=ref,
        task=bundle.task,
    )
