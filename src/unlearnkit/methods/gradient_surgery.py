"""Gradient surgery: drop the part of an unlearning gradient that conflicts with the retain gradient."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.tensors import Cycle
from ..engine import Hook, StepContext
from ..errors import ConfigError
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext
from .wrapping import build_inner, check_inner_task, run_with_hooks


def project_conflict(grads: list[torch.Tensor], retain: list[torch.Tensor]) -> tuple[float, float]:
    """In place: if ⟨g, g_r⟩ < 0, replace g by g − ⟨g, g_r⟩/‖g_r‖² · g_r (its projection on the normal
    plane of g_r), so that ⟨g, g_r⟩ becomes 0. Returns the dot product before and after."""
    dot = sum((g * r).sum() for g, r in zip(grads, retain))
    dot = float(dot) if not isinstance(dot, int) else 0.0
    if dot >= 0:
        return dot, dot
    norm2 = float(sum((r * r).sum() for r in retain))
    if norm2 == 0.0:
        return dot, dot
    coef = dot / norm2
    for g, r in zip(grads, retain):
        g.sub_(coef * r)
    return dot, float(sum((g * r).sum() for g, r in zip(grads, retain)))


class ConceptPreservingGradient(Hook):
    """After ``backward``, compare the step's gradient with the gradient of the task loss on the next
    retain batch; when they conflict (negative dot product over all parameters) remove the conflicting
    component. Phases named in ``skip`` (the inner method's own retain phases) are left untouched."""

    def __init__(self, request: UnlearnRequest, batches, skip: tuple[str, ...] = ("retain",)) -> None:
        self.request = request
        self.retain = Cycle(batches)
        self.skip = skip
        self.dots: list[tuple[float, float]] = []

    def after_backward(self, ctx: StepContext) -> None:
        if ctx.phase in self.skip:
            return
        params = [p for p in ctx.params if p.grad is not None]
        if not params:
            return
        batch = tuple(t.to(ctx.device) for t in self.retain.next())
        loss = self.request.task_loss(ctx.model, batch)
        retain = torch.autograd.grad(loss, params, allow_unused=True)
        retain = [torch.zeros_like(p) if r is None else r for p, r in zip(params, retain)]
        self.dots.append(project_conflict([p.grad for p in params], retain))


@register
@dataclass(kw_only=True, frozen=True)
class GradientSurgery(Method):
    """Concept-preserving gradient (Wu et al., "Unlearning Concepts in Diffusion Model via Concept Domain
    Correction and Concept Preserving Gradient", 2024), as a wrapper for any loss-based method: the
    registered method ``inner`` (default ``ga``) runs with ``inner_hparams``, and at every step of its
    unlearning phases the gradient's component that conflicts with the retain gradient is removed, so
    to first order no step increases the retain loss. ``epochs``, when set, overrides the inner
    method's epochs. Composition: the inner method runs with a context adding the correcting hook
    (:func:`~unlearnkit.methods.wrapping.run_with_hooks`); the outcome's report holds the dot products before and
    after each correction (``dots``).
    """

    name = "gradient-surgery"
    needs_retain = True
    tasks = ("classification", "regression")
    reference_epochs = 5

    inner: str = hp("ga", doc="registered loss-based method whose gradients are corrected")
    inner_hparams: dict[str, Any] = field(
        default_factory=dict, metadata={"doc": "hyper-parameters of the inner method"}
    )
    epochs: int | None = hp(None, doc="epochs of the inner method (None: its own default)")
    retain_batch_size: int = hp(128, low=1, doc="batch size of the retain gradient")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs is not None and (
            isinstance(self.epochs, bool) or int(self.epochs) != self.epochs or self.epochs < 1
        ):
            raise ConfigError(f"{self.name}: epochs must be a positive integer or None, got {self.epochs!r}")
        self.inner_method()  # an unknown inner method or hyper-parameter is refused when the wrapper is built

    def inner_method(self) -> Method:
        """The inner method these hyper-parameters describe (built afresh: the wrapper holds no run state)."""
        extra = {"epochs": self.epochs} if "epochs" not in self.inner_hparams else {}
        return build_inner(self.name, self.inner, self.inner_hparams, seed=self.seed, **extra)

    def check(self, request: UnlearnRequest) -> None:
        check_inner_task(self, self.inner_method(), request)
        super().check(request)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        hook = ConceptPreservingGradient(request, self.batches(request.retain, self.retain_batch_size, salt=7))
        inner, calls = run_with_hooks(self.inner_method(), model, request, ctx, [hook])
        if calls == 0:
            raise ConfigError(
                f"gradient-surgery: inner method {self.inner!r} does not train through the engine, so there is "
                "no gradient to correct; use a loss-based method such as 'ga', 'rl', 'scrub' or 'salun'"
            )
        report: dict[str, Any] = {"dots": [list(d) for d in hook.dots]}
        if inner.report:
            report["inner"] = inner.report
        return Outcome(inner.model, report=report)
