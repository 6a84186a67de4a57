"""SISA: Sharded, Isolated, Sliced and Aggregated training (Bourtoule et al., "Machine Unlearning",
IEEE S&P 2021).

The training set is split into ``shards`` disjoint shards, one constituent model per shard. Each shard is
split into ``slices`` slices; the constituent is trained cumulatively (slice 1, then slices 1–2, …) with a
checkpoint after every step. Deleting an id retrains only its shard, and only from the checkpoint saved
just before its slice was first seen. To keep the total cost of a shard equal to ``e`` epochs over the
whole shard, every step runs ``2e/(R+1)`` epochs (the paper's budget; rounded, at least one).
Predictions aggregate the constituents by majority vote or by the mean of their softmax outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.tensors import TensorData
from ..engine import Recipe, TrainLog
from ..errors import ConfigError
from ..training import train_model

AGGREGATIONS = ("vote", "softmax")


@dataclass(kw_only=True)
class SISA:
    """SISA's layout and training rule. Defaults: ``S = 5`` shards, ``R = 4`` slices, majority vote."""

    name: ClassVar[str] = "sisa"

    shards: int = 5
    slices: int = 4
    aggregation: str = "vote"

    def __post_init__(self) -> None:
        if int(self.shards) != self.shards or self.shards < 1:
            raise ConfigError(f"{self.name}: shards must be an integer >= 1, got {self.shards!r}")
        if int(self.slices) != self.slices or self.slices < 1:
            raise ConfigError(f"{self.name}: slices must be an integer >= 1, got {self.slices!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"{self.name}: aggregation must be one of {list(AGGREGATIONS)}, got {self.aggregation!r}")

    # ---- layout -------------------------------------------------------------------------------------------
    def orders(self) -> list[list[int]]:
        """The slice orders trained per shard: SISA trains one, the natural order."""
        return [list(range(self.slices))]

    def step_epochs(self, epochs: int) -> int:
        """Epochs of every cumulative step: ``2e/(R+1)`` rounded, at least 1."""
        return max(1, round(2 * epochs / (self.slices + 1)))

    def step_recipe(self, recipe: Recipe) -> Recipe:
        return Recipe(**{**recipe.to_dict(), "epochs": self.step_epochs(recipe.epochs)})

    # ---- training -----------------------------------------------------------------------------------------
    def train_step(
        self,
        model: nn.Module,
        data: TensorData,
        step: int,
        recipe: Recipe,
        *,
        seed: int,
        device: str | torch.device | None = None,
    ) -> tuple[TrainLog, list[str]]:
        """Train every parameter of ``model`` on ``data`` (the union of the slices seen so far) through the
        shared engine. Returns the log and the names of the parameters it may have changed."""
        log = train_model(model, data, self.step_recipe(recipe), seed=seed, device=device, progress=False)
        return log, [n for n, _ in model.named_parameters()]

    def prepare(self, model: nn.Module) -> None:
        """Check that ``model`` suits the scheme (nothing to check for SISA)."""

    def attach(self, model: nn.Module) -> None:
        """Add the scheme's extra modules to a freshly built model in place (none for SISA)."""

    def build(self, spec: Any, seed: int) -> nn.Module:
        """A fresh constituent with the scheme's structure: ``spec.build(seed)`` plus :meth:`attach`."""
        model = spec.build(seed)
        self.attach(model)
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}
