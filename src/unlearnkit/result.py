"""The one result of :func:`unlearnkit.unlearn` in every family."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from . import result_views


@dataclass
class UnlearnResult:
    """The unlearned model (a new object) with the method, its hyper-parameters and the seconds it took."""

    model: nn.Module
    method: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: what happened besides the hyper-parameters: budget repeats, the collapse check, ``auto``'s choice, the
    #: method's own findings (``report["method"]``), the family's own record (a GAN's repulsion distances)
    report: dict[str, Any] = field(default_factory=dict)
    #: mean training loss per epoch where the family's methods log it (language models; averaged over processes
    #: when data-parallel); empty otherwise
    losses: list[float] = field(default_factory=list)
    #: mean loss per epoch of each phase, over the method's training runs in turn (drawn by :meth:`plot`)
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "hparams": self.hparams, "seconds": self.seconds, "report": self.report}

    def _repr_html_(self) -> str:
        return result_views.result_html(self)

    def to_pandas(self) -> Any:
        """One row: method, seconds, ``hparams.*`` and ``report.*`` (nested keys joined by dots); needs pandas."""
        return result_views.data_frame([result_views.result_row(self)])

    def plot(self, ax: Any = None) -> Any:
        """The mean loss per epoch of each phase (matplotlib ``Axes``; drawn on ``ax`` when given)."""
        return result_views.plot_history(self.history, f"{self.method}: training loss", ax)

    def save(self, path: str | Path, *, tokenizer: Any = None, adapter_only: bool = False, overwrite: bool = False):
        """Write the model in its family's form (:func:`unlearnkit.saving.save_result`); ``adapter_only``: only the
        LoRA adapter of a language model unlearned with ``lora=True, adapter_only=True``."""
        from .saving import save_result

        return save_result(self, path, tokenizer=tokenizer, adapter_only=adapter_only, overwrite=overwrite)
