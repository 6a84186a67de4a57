"""The aggregate of the constituent models, as one ordinary ``nn.Module``.

:class:`ShardEnsemble` returns log-probabilities, which are valid logits: ``argmax`` is the ensemble's
prediction and ``softmax`` gives back its probabilities. So every metric, attack and ``bench`` treat it like
any other classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from .sisa import AGGREGATIONS

#: weight of the mean softmax in a vote, only to break ties (below one vote for up to 1000 members)
TIE_BREAK = 1e-3


class ShardEnsemble(nn.Module):
    """Aggregates ``members`` by majority ``vote`` (ties broken by mean softmax) or by the mean ``softmax``."""

    def __init__(self, members: Sequence[nn.Module], aggregation: str = "vote") -> None:
        super().__init__()
        if not members:
            raise ModelError("an ensemble needs at least one constituent model; every shard was emptied")
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {list(AGGREGATIONS)}, got {aggregation!r}")
        self.members = nn.ModuleList(members)
        self.aggregation = aggregation

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x).float(), dim=1) for m in self.members])  # (M, B, C)
        mean = probs.mean(0)
        if self.aggregation == "softmax":
            return mean
        votes = nn.functional.one_hot(probs.argmax(2), probs.shape[2]).float().mean(0)
        return (votes + TIE_BREAK * mean) / (1.0 + TIE_BREAK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.probabilities(x).clamp_min(1e-12))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted class of every example (the aggregate's arg-max)."""
        return self.probabilities(x).argmax(1)
