"""Training causal LMs (the original and the retain-only model) through :func:`unlearnkit.engine.train`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ..engine import Phase, Recipe, TrainLog, train
from ..training import check_training_recipe
from .encode import LMBatches, LMData, split_by_length
from .losses import nll
from .positions import check_width


@dataclass
class LMTrainConfig:
    """Recipe for training the tiny LM from scratch (AdamW, cosine decay)."""

    epochs: int = 160
    lr: float = 5e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0

    def recipe(self) -> Recipe:
        return Recipe(
            epochs=self.epochs,
            lr=self.lr,
            optimizer="adamw",
            weight_decay=self.weight_decay,
            schedule="cosine",
            batch_size=self.batch_size,
            grad_clip=self.grad_clip,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def train_lm(
    model: nn.Module,
    data: LMData,
    cfg: LMTrainConfig,
    *,
    seed: int = 0,
    device=None,
    progress: bool = True,
    desc: str = "lm-train",
) -> TrainLog:
    """Minimise next-token NLL on ``data`` (labelled tokens only) in place. Long rows (e.g. biographies) are
    batched apart from short ones (QA), one engine phase per length group, to avoid padding. Rows wider than the
    model's positions raise :class:`~unlearnkit.errors.DataError` before any step."""
    recipe = cfg.recipe()
    check_training_recipe(recipe)
    check_width(model, int(data.input_ids.shape[1]), "training rows")
    phases = [
        Phase(f"lm{i}", LMBatches(group, cfg.batch_size, seed=seed + i), nll)
        for i, group in enumerate(split_by_length(data))
    ]
    return train(model, phases, recipe, device=device, seed=seed, progress=progress, desc=desc)
