"""SalUn: saliency-based unlearning."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..engine import SCHEDULES
from ..losses import negated
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext
from .masking import MaskHook, Masks, accumulated_gradients, top_fraction_masks
from .rl import random_label_phases


def saliency_masks(model: nn.Module, request: UnlearnRequest, ratio: float, batch_size: int, seed: int) -> Masks:
    """SalUn's weight saliency: |Σ over D_f of ∇(−loss)| at the original weights, model in eval mode;
    one global threshold keeps the top ``ratio`` of weights."""
    from ..data.tensors import Batches

    grads = accumulated_gradients(
        model, Batches(request.forget, batch_size, shuffle=False, seed=seed), negated(request.task_loss), request.device
    )
    return top_fraction_masks({n: g.abs() for n, g in grads.items()}, ratio)


@register
@dataclass(kw_only=True, frozen=True)
class SalUn(Method):
    """SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency",
    ICLR 2024; code OPTML-Group/Unlearn-Saliency, ``Classification/generate_mask.py`` and
    ``Classification/unlearn/RL.py``): random-label
    unlearning (:func:`~unlearnkit.methods.rl.random_label_phases`, RL's phases) composed with a saliency mask
    (:class:`~unlearnkit.methods.masking.MaskHook`). The mask keeps the top ``mask_ratio`` of |∇(−CE)| over D_f;
    gradients outside it are zeroed and those weights stay exactly at their original values. Published CIFAR-10
    setting: mask ratio 0.5, lr 0.013, 10 epochs."""

    name = "salun"
    needs_retain = True
    reference_epochs = 10

    epochs: int = hp(10, low=1)
    lr: float = hp(0.013, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(128, low=1)
    schedule: str = hp("constant", choices=SCHEDULES, doc="learning-rate schedule over the run (published: constant)")
    mask_ratio: float = hp(0.5, low=0, high=1, low_open=True)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        phases = random_label_phases(self, request)
        model.to(request.device)
        masks = saliency_masks(model, request, self.mask_ratio, self.batch_size, self.seed)
        ctx.fit(self, model, phases, request, hooks=[MaskHook(model, masks)])
        return Outcome(model)
