"""Clean unlearning (backdoor exposure): gradient ascent on a little clean data makes a backdoor show."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..data.tensors import TensorData
from ..engine import Hook, Phase, StepContext
from ..errors import ConfigError
from ..losses import negated
from ..metrics.predict import predict_outputs
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


@dataclass
class ExposureReport:
    """Where the exposed model's predictions on clean inputs went: the label they collapse to, the share
    of clean inputs predicted as it, the clean accuracy left and the epochs run."""

    collapse_label: int
    collapse_share: float
    clean_accuracy: float
    label_counts: list[int] = field(default_factory=list)
    epochs_run: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def exposure_report(model: nn.Module, clean: TensorData, num_classes: int, epochs_run: int = 0) -> ExposureReport:
    """Summarise ``model``'s predictions on ``clean`` inputs (percent)."""
    pred = predict_outputs(model, clean).argmax(dim=1)
    counts = torch.bincount(pred, minlength=num_classes)
    top = int(counts.argmax())
    return ExposureReport(
        collapse_label=top,
        collapse_share=100.0 * float(counts[top]) / max(1, len(pred)),
        clean_accuracy=100.0 * float((pred == clean.y.to(pred.device)).float().mean()),
        label_counts=[int(c) for c in counts],
        epochs_run=epochs_run,
    )


class StopWhenForgotten(Hook):
    """Stop the ascent once the clean accuracy falls to ``threshold`` percent: from then on every step is
    undone (weights and buffers restored), so the run ends where it stopped."""

    def __init__(self, clean: TensorData, threshold: float) -> None:
        self.clean, self.threshold = clean, threshold
        self.frozen: list[torch.Tensor] | None = None
        self.buffers: list[torch.Tensor] = []
        self.epochs_run = 0

    def after_step(self, ctx: StepContext) -> None:
        if self.frozen is not None:
            with torch.no_grad():
                for p, w in zip(ctx.params, self.frozen):
                    p.copy_(w)
                for b, w in zip(ctx.model.buffers(), self.buffers):
                    b.copy_(w)

    def on_epoch_end(self, ctx: StepContext) -> None:
        if self.frozen is not None:
            return
        self.epochs_run = ctx.epoch + 1
        pred = predict_outputs(ctx.model, self.clean).argmax(dim=1)
        acc = 100.0 * float((pred == self.clean.y.to(pred.device)).float().mean())
        if acc <= self.threshold:
            self.frozen = [p.detach().clone() for p in ctx.params]
            self.buffers = [b.detach().clone() for b in ctx.model.buffers()]


@register
@dataclass(kw_only=True, frozen=True)
class CleanUnlearning(Method):
    """Clean unlearning, the backdoor-exposure step of "Expose Before You Defend" (EBYD, Xu et al., 2024):
    gradient ascent on a small clean set (``clean_fraction`` = 1 % of the training data, drawn from D_r)
    with Adam (lr 1e-5, weight decay 5e-4, gradient clipping at 20) for at most 20 epochs, stopping once
    the clean accuracy is at most ``stop_accuracy``. Clean features vanish first; a planted backdoor, if
    any, survives and dominates, so predictions collapse to its target label. The outcome's
    ``report["exposure"]`` (an :class:`ExposureReport` as a dict) names the label clean predictions collapsed to.
    The forget set is not used (the defender does not know the poisoned examples); pass any non-empty one.
    """

    name = "clean-unlearning"
    probed = False  # it is meant to collapse clean accuracy (backdoor exposure)
    needs_retain = True
    reference_epochs = 20

    epochs: int = hp(20, low=1)
    lr: float = hp(1e-5, low=0, low_open=True)
    optimizer: str = hp("adam", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(5e-4, low=0)
    grad_clip: float = hp(20.0, low=0, low_open=True)
    batch_size: int = hp(128, low=1)
    clean_fraction: float = hp(0.01, low=0, high=1, low_open=True, doc="share of the training data used as clean set")
    min_clean: int = hp(10, low=1, doc="smallest clean set")
    stop_accuracy: float = hp(10.0, low=0, high=100, doc="stop once clean accuracy (percent) is at most this")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        if not request.num_classes or request.num_classes < 2:
            raise ConfigError("clean-unlearning needs a classifier with num_classes >= 2")
        n_train = len(request.retain) + len(request.forget)
        n_clean = min(len(request.retain), max(self.min_clean, int(round(self.clean_fraction * n_train))))
        rng = np.random.default_rng(self.seed)
        clean = request.retain.subset(np.sort(rng.choice(len(request.retain), n_clean, replace=False)))
        stop = StopWhenForgotten(clean, self.stop_accuracy)
        ctx.fit(self, model, Phase("ascent", self.batches(clean), negated(request.task_loss)), request, hooks=[stop])
        exposure = exposure_report(model, clean, request.num_classes, stop.epochs_run)
        return Outcome(model, report={"exposure": exposure.to_dict()})


def expose_backdoor(
    model: nn.Module,
    clean: object,
    *,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    **hparams,
) -> tuple[nn.Module, ExposureReport]:
    """Clean-unlearn a copy of ``model`` on the whole ``clean`` set (a Dataset, DataLoader or ``(X, y)``)
    and report which label its predictions collapse to; ``model`` is not modified. ``hparams`` are those
    of :class:`CleanUnlearning` (``clean_fraction`` is fixed to the whole set)."""
    from ..api import unlearn
    from ..data.tensors import as_tensor_data

    data = as_tensor_data(clean, "clean")
    if len(data) == 0:
        raise ConfigError("the clean set is empty; give a few labelled clean examples (about 1 % of the data)")
    method = CleanUnlearning(**{**hparams, "clean_fraction": 1.0, "min_clean": 1})
    res = unlearn(  # the forget set is a placeholder drawn from the clean set, which is all retained
        model,
        data.subset([0]),
        data,
        method,
        num_classes=num_classes,
        device=device,
        progress=progress,
        check_overlap=False,
    )
    return res.model, ExposureReport(**res.report["method"]["exposure"])
