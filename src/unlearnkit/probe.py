"""Probes, stopping, keep-best and rollback: one engine hook shared by every classifier method that trains.

:class:`ProbeHook` holds the logic (cadence, keep-best, stop at the target, collapse guard, rollback); what is
measured comes from a subclass: :class:`TargetProbe` here, :class:`unlearnkit.lm.probe.LMProbe` for language
models.

:class:`TargetProbe` measures cheap probes (:func:`unlearnkit.target.probe_values` on fixed subsamples of D_f
and D_r) every few optimiser steps and compares them with the :class:`~unlearnkit.target.Target`:

* it keeps the state with the smallest distance to the target (the original, measured before the first step,
  is a candidate too) and hands that state back when the run ends;
* it stops the run when the target is reached (``"target reached"``);
* a state whose retain-probe accuracy is more than ``collapse_tolerance`` points below the original's is never
  kept, so a collapsed model is never handed back; the run goes on through such states within an epoch (a
  method's own repair phase, e.g. RL's retain pass, comes later in the epoch). When the drop still exceeds
  ``rollback_drop`` (the collapse guard's 20 points) at the end of an epoch, it rolls back to the best state,
  clears the optimiser's state and halves the learning rate; after ``max_rollbacks`` rollbacks it stops
  (``"collapse"``);
* the method's own budget is the ceiling (``"budget"`` when the run used all of it).

Methods that train nothing pick their one knob with :func:`choose_knob` instead (SSD's α, IU's step size).

Every check is written to :attr:`TargetProbe.trace`; :meth:`TargetProbe.report` is what ``result.report``
and ``bench``'s JSON show. Reference: early stopping with model selection on a validation signal
(Prechelt, "Early Stopping — But When?", 1998), the signal being the distance to the held-out estimate of
retraining (:mod:`unlearnkit.target`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .data.tensors import TensorData
from .engine import Hook, StepContext
from .target import Target, probe_values

#: checks per run (at least one every step for very short runs)
CHECKS = 20
#: a state whose retain-probe accuracy is more than this many points below the original's is never kept
COLLAPSE_TOLERANCE = 5.0
#: a drop this large (the collapse guard's) at the end of an epoch is rolled back
ROLLBACK_DROP = 20.0
MAX_ROLLBACKS = 2
LR_DROP = 0.5


@dataclass
class Check:
    """One probe measurement: the values to trace, the distance to the target, the retain drop (in the units of
    the probe's tolerances) and whether the target is reached."""

    values: dict[str, float]
    distance: float
    drop: float
    reached: bool


class ProbeHook(Hook):
    """Engine hook shared by every probed run (classifiers here, language models in :mod:`unlearnkit.lm.probe`):
    measure every few steps (:meth:`measure`, a subclass's), keep the state closest to the target among those whose
    retain drop is within ``collapse_tolerance``, stop at the target, roll back to the best state and scale the
    learning rate by ``LR_DROP`` when the drop exceeds ``rollback_drop`` (at an epoch end, or at any check with
    ``rollback_any_check``), and stop (``"collapse"``) after ``max_rollbacks`` rollbacks."""

    def __init__(
        self,
        *,
        checks: int = CHECKS,
        collapse_tolerance: float = COLLAPSE_TOLERANCE,
        max_rollbacks: int = MAX_ROLLBACKS,
        rollback_drop: float = ROLLBACK_DROP,
        rollback_any_check: bool = False,
    ) -> None:
        self.checks, self.collapse_tolerance, self.max_rollbacks = checks, collapse_tolerance, max_rollbacks
        self.rollback_drop, self.rollback_any_check = rollback_drop, rollback_any_check
        self.trace: list[dict[str, Any]] = []
        self.stopped = "budget"
        self.rollbacks = 0
        self.every = 1
        self.best_distance = float("inf")
        self.best_step = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        self._last_checked = -1
        self._last: Check | None = None

    def measure(self, ctx: StepContext) -> Check:
        """The probe values of ``ctx.model`` against the target."""
        raise NotImplementedError

    def snapshot(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        """A copy of the state to hand back (the whole ``state_dict`` here)."""
        return {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}

    def restore(self, ctx: StepContext, state: dict[str, torch.Tensor]) -> None:
        ctx.model.load_state_dict(state)

    def _check(self, ctx: StepContext, step: int, epoch_end: bool = False) -> None:
        if self.trace and self._last_checked == step and self._last is not None:  # measured at this step already
            entry, check = self.trace[-1], self._last
        else:
            check = self.measure(ctx)
            entry = {"step": step, **check.values, "distance": round(check.distance, 4)}
            self.trace.append(entry)
            self._last = check
        self._last_checked = step
        if check.drop > self.rollback_drop and (epoch_end or self.rollback_any_check):
            entry["action"] = "rollback"
            self.rollbacks += 1
            if self._best_state is not None:
                self.restore(ctx, self._best_state)
            ctx.optimizer.state.clear()
            ctx.lr_scale *= LR_DROP
            if self.rollbacks > self.max_rollbacks:
                self.stopped = ctx.stop = "collapse"
            return
        if check.drop > self.collapse_tolerance:  # never kept as the best state, never handed back
            entry.setdefault("action", "low retain")
            return
        if check.distance < self.best_distance:
            self.best_distance, self.best_step = check.distance, step
            self._best_state = self.snapshot(ctx)
        if check.reached:
            self.stopped = ctx.stop = "target reached"

    def on_start(self, ctx: StepContext) -> None:
        self.every = max(1, -(-ctx.total_steps // self.checks))
        self._check(ctx, 0)
        if ctx.stop:  # the original already meets the target: nothing to do
            self.stopped = "target reached before the first step"

    def after_step(self, ctx: StepContext) -> None:
        if (ctx.step + 1) % self.every == 0:
            self._check(ctx, ctx.step + 1)

    def on_epoch_end(self, ctx: StepContext) -> None:
        if not ctx.stop:
            self._check(ctx, ctx.step, epoch_end=True)

    def on_end(self, ctx: StepContext) -> None:
        if self._last_checked != ctx.step and not ctx.stop:
            self._check(ctx, ctx.step)
        if self._best_state is not None:
            self.restore(ctx, self._best_state)

    def report(self) -> dict[str, Any]:
        return {
            "stopped": self.stopped,
            "best_step": self.best_step,
            "best_distance": round(self.best_distance, 4),
            "rollbacks": self.rollbacks,
            "every": self.every,
            "checks": copy.deepcopy(self.trace),
        }


class TargetProbe(ProbeHook):
    """Engine hook: measure probes every few steps, keep the best state, stop at the target, never collapse."""

    def __init__(
        self,
        target: Target,
        forget_probe: TensorData,
        retain_probe: TensorData,
        *,
        checks: int = CHECKS,
        collapse_tolerance: float = COLLAPSE_TOLERANCE,
        max_rollbacks: int = MAX_ROLLBACKS,
        rollback_drop: float = ROLLBACK_DROP,
    ) -> None:
        super().__init__(
            checks=checks,
            collapse_tolerance=collapse_tolerance,
            max_rollbacks=max_rollbacks,
            rollback_drop=rollback_drop,
        )
        self.target, self.forget_probe, self.retain_probe = target, forget_probe, retain_probe

    def measure(self, ctx: StepContext) -> Check:
        values = probe_values(ctx.model, self.forget_probe, self.retain_probe, ctx.device)
        return Check(
            values.to_dict(),
            self.target.distance(values),
            self.target.retain_acc - values.retain_acc,
            self.target.reached(values),
        )


def choose_knob(
    model: torch.nn.Module,
    target: Target,
    forget_probe: TensorData,
    retain_probe: TensorData,
    device: torch.device,
    name: str,
    values: Sequence[float],
    apply: Callable[[torch.nn.Module, float], None],
) -> dict[str, Any]:
    """For a method that trains nothing (SSD's α, IU's step size): apply each of ``values`` in turn (the
    published one first) to a copy of ``model``'s state, keep the one whose probes are closest to ``target``
    among those whose retain-probe accuracy stays within ``COLLAPSE_TOLERANCE`` of the original's (``chosen`` is
    None and the model is left unchanged when every value collapses it), stop early when one reaches the target,
    leave ``model`` in the chosen state and return the trace."""
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trials: list[dict[str, Any]] = []
    best: tuple[float | None, float, dict[str, torch.Tensor]] = (None, float("inf"), base)
    stopped = "grid"
    for value in values:
        model.load_state_dict(base)
        apply(model, value)
        probe = probe_values(model, forget_probe, retain_probe, device)
        dist = target.distance(probe)
        trials.append({name: value, **probe.to_dict(), "distance": round(dist, 4)})
        if target.retain_acc - probe.retain_acc > COLLAPSE_TOLERANCE:  # never handed back
            trials[-1]["action"] = "low retain"
            continue
        if dist < best[1]:
            best = (value, dist, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if target.reached(probe):
            stopped = "target reached"
            break
    if best[0] is None:  # every value collapsed the model: the original is handed back unchanged
        stopped = "every value collapsed the model; the original is kept"
    model.load_state_dict(best[2])
    return {"knob": name, "chosen": best[0], "best_distance": round(best[1], 4), "stopped": stopped, "checks": trials}
