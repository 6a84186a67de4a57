"""The one result of :func:`unlearnkit.unlearn` in every family."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class UnlearnResult:
    """The unlearned model (a new object) with the method, its hyper-parameters and the seconds it took."""

    model: nn.Module
    method: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: what happened besides the hyper-parameters: budget repeats, the collapse check, ``auto``'s choice, the
    #: family's own record (a GAN's repulsion distances, for instance)
    report: dict[str, Any] = field(default_factory=dict)
    #: mean training loss per epoch where the family's methods log it (language models; averaged over processes
    #: when data-parallel); empty otherwise
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "hparams": self.hparams, "seconds": self.seconds, "report": self.report}
