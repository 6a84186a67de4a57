"""Prune first, then unlearn: one-shot magnitude pruning kept fixed while any other method runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext
from .masking import MaskHook, Masks, top_fraction_masks
from .wrapping import build_inner, check_inner_task, run_with_hooks


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weight tensors that magnitude pruning considers: every parameter with 2 or more dimensions
    (convolution and linear weights; biases and normalisation parameters stay dense)."""
    return {n: p for n, p in model.named_parameters() if p.ndim >= 2}


@torch.no_grad()
def magnitude_prune(model: nn.Module, sparsity: float) -> Masks:
    """One-shot global magnitude pruning (OMP): zero the ``sparsity`` fraction of prunable weights with the
    smallest |w| across all layers at once; returns the masks of kept weights."""
    weights = prunable(model)
    masks = top_fraction_masks({n: p.detach().abs() for n, p in weights.items()}, 1.0 - sparsity)
    for n, p in weights.items():
        p.mul_(masks[n].to(p.device))
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    for n, p in model.named_parameters():
        if n in masks and masks[n].shape == p.shape:
            p.mul_(masks[n].to(p.device))


def sparsity_of(model: nn.Module) -> float:
    """Fraction of zeros among the prunable weights."""
    weights = list(prunable(model).values())
    total = sum(p.numel() for p in weights)
    return sum(int((p == 0).sum()) for p in weights) / max(1, total)


@register
@dataclass(kw_only=True, frozen=True)
class PruneThenUnlearn(Method):
    """ "Prune first, then unlearn" (Jia et al., "Model Sparsity Can Simplify Machine Unlearning",
    NeurIPS 2023): one-shot global magnitude pruning to ``sparsity`` (95 % published), then the registered
    method ``inner`` (default ``ft``) with ``inner_hparams``, while a fixed mask keeps pruned weights at
    zero in every training step; the mask is applied once more to the result, so the returned model has
    exactly the asked sparsity whatever the inner method does. ``epochs``, when set, overrides the inner
    method's epochs (``bench`` sets it from the inner method's published epochs). Composition: the inner method
    runs with a context adding the mask hook (:func:`~unlearnkit.methods.wrapping.run_with_hooks`); the outcome's
    report holds ``achieved_sparsity``.
    """

    name = "prune-then-unlearn"
    tasks = ("classification", "regression")
    reference_epochs = 10

    sparsity: float = hp(0.95, low=0, high=1, doc="fraction of prunable weights set to zero")
    inner: str = hp("ft", doc="registered method run on the pruned model")
    inner_hparams: dict[str, Any] = field(
        default_factory=dict, metadata={"doc": "hyper-parameters of the inner method"}
    )
    epochs: int | None = hp(None, doc="epochs of the inner method (None: its own default)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs is not None and (
            isinstance(self.epochs, bool) or int(self.epochs) != self.epochs or self.epochs < 1
        ):
            raise ConfigError(f"{self.name}: epochs must be a positive integer or None, got {self.epochs!r}")
        self.inner_method()  # an unknown inner method or hyper-parameter is refused when the wrapper is built

    def inner_method(self) -> Method:
        """The inner method these hyper-parameters describe (built afresh: the wrapper holds no run state)."""
        inner = build_inner(self.name, self.inner, self.inner_hparams, seed=self.seed)
        if self.epochs is not None and "epochs" in inner.hparam_names() and "epochs" not in self.inner_hparams:
            inner = build_inner(self.name, self.inner, self.inner_hparams, seed=self.seed, epochs=self.epochs)
        return inner

    def check(self, request: UnlearnRequest) -> None:
        check_inner_task(self, self.inner_method(), request)
        super().check(request)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        model.to(request.device)
        masks = magnitude_prune(model, self.sparsity)
        inner, _ = run_with_hooks(self.inner_method(), model, request, ctx, [MaskHook(model, masks)])
        apply_masks(inner.model, masks)
        report: dict[str, Any] = {"achieved_sparsity": sparsity_of(inner.model)}
        if inner.report:
            report["inner"] = inner.report
        return Outcome(inner.model, report=report)
