"""Training an original model with the shared engine, and the default recipes per dataset."""

from __future__ import annotations

import torch
from torch import nn

from .data.tensors import Batches, as_tensor_data
from .engine import Phase, Recipe, TrainLog, train
from .errors import ConfigError
from .losses import task_loss
from .validation import check_training_data

#: original-training recipes that fit each bundled dataset (train accuracy ≥ 98 %) in CPU minutes
DEFAULT_RECIPES: dict[str, Recipe] = {
    "digits": Recipe(epochs=30, lr=0.05, batch_size=64, schedule="cosine"),
    "fashion-mnist": Recipe(epochs=30, lr=0.05, batch_size=128, schedule="cosine"),
    "mnist": Recipe(epochs=20, lr=0.05, batch_size=128, schedule="cosine"),
    "cifar10": Recipe(epochs=182, lr=0.1, batch_size=256, schedule="step"),
    "cifar100": Recipe(epochs=182, lr=0.1, batch_size=256, schedule="step"),
    "diabetes": Recipe(epochs=40, lr=1e-3, optimizer="adam", weight_decay=0.0, batch_size=32, schedule="cosine"),
}


def default_recipe(dataset: str) -> Recipe:
    base = DEFAULT_RECIPES.get(dataset, Recipe(epochs=30, lr=0.05, schedule="cosine"))
    return Recipe(**base.to_dict())


def check_training_recipe(recipe: Recipe) -> None:
    """Refuse a recipe that would hand back an untrained model as if it were trained (``epochs=0``)."""
    if recipe.epochs < 1:
        raise ConfigError(
            f"training a model needs epochs >= 1, got {recipe.epochs}; zero epochs would keep the random "
            "initialisation — give --epochs 1 or more"
        )


def train_model(
    model: nn.Module,
    train_data: object,
    recipe: Recipe,
    *,
    task: str = "classification",
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "train",
) -> TrainLog:
    """Train ``model`` in place on ``train_data`` (Dataset, DataLoader or ``(X, y)``) with ``recipe``
    (at least one epoch: :func:`check_training_recipe`)."""
    check_training_recipe(recipe)
    data = as_tensor_data(train_data, "train")
    check_training_data(model, data, task, device)
    batches = Batches(data, recipe.batch_size, shuffle=True, seed=seed)
    return train(
        model, Phase("train", batches, task_loss(task)), recipe, device=device, seed=seed, progress=progress, desc=desc
    )
