"""The run of a method: what it hands back (:class:`Outcome`) and the plumbing it trains through (:class:`RunContext`).

A :class:`~unlearnkit.methods.base.Method` is an immutable set of hyper-parameters. Everything a run produces or
needs besides them lives here, not on the method object: ``method.run(model, request, ctx)`` trains through
:meth:`RunContext.fit`, which applies the training budget (:mod:`unlearnkit.budget`), the hooks a wrapping method
adds (:meth:`RunContext.with_hooks`) and the target probes (:mod:`unlearnkit.probe`), and keeps what they did
(budget repeats, probe traces, training logs) for the caller's report. The method returns an :class:`Outcome`:
the unlearned model, its own JSON-ready findings and any knob it chose while running.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from ..budget import count_examples, stretch
from ..engine import Hook, Phase, TrainLog, train
from ..probe import ProbeHook, TargetProbe
from ..target import probe_sets

if TYPE_CHECKING:
    from .base import Method, UnlearnRequest


@dataclass
class Outcome:
    """What a method's run hands back: the unlearned ``model``, the method's own findings in ``report``
    (JSON-ready values only: numbers, strings, lists, dicts) and in ``hparams`` the knobs it chose while running
    (e.g. SSD's α picked by the probes), which replace the given values in the result's hyper-parameters."""

    model: nn.Module
    report: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitRecord:
    """One engine run made through a context: its log, its budget factor, the phases and epochs it ran (passes
    already resized to the budget) and the examples they were set to process."""

    log: TrainLog
    repeats: float
    phases: list[Phase]
    epochs: int
    examples: int


@dataclass
class RunContext:
    """The plumbing of one run. ``hooks`` are added to every engine run (a wrapping method's mask or gradient
    correction); ``fits`` and ``probes`` collect what those runs did. A context made by :meth:`with_hooks` shares
    both lists with its parent, so a wrapper's report sees its inner method's training."""

    hooks: tuple[Hook, ...] = ()
    fits: list[FitRecord] = field(default_factory=list)
    #: the target probes of the runs (:class:`~unlearnkit.probe.ProbeHook`: a classifier's or a language model's)
    probes: list[ProbeHook] = field(default_factory=list)

    def with_hooks(self, hooks: list[Hook] | tuple[Hook, ...]) -> RunContext:
        """A context adding ``hooks`` to every engine run of the method it is given to (composition: the wrapper
        runs its inner method with this context)."""
        return dataclasses.replace(self, hooks=(*self.hooks, *hooks))

    @property
    def budget_repeats(self) -> float:
        """How many times as long each pass of the last engine run was made to meet the budget (1: no run)."""
        return self.fits[-1].repeats if self.fits else 1

    def probe_trace(self) -> dict[str, Any] | list[dict[str, Any]] | None:
        """The probes' traces for the report: one run's trace, a list for several runs, None without probes."""
        if not self.probes:
            return None
        return self.probes[0].report() if len(self.probes) == 1 else [p.report() for p in self.probes]

    @property
    def last_log(self) -> TrainLog | None:
        return self.fits[-1].log if self.fits else None

    def fit(
        self,
        method: Method,
        model: nn.Module,
        phases: list[Phase] | Phase,
        request: UnlearnRequest,
        *,
        hooks: tuple[Hook, ...] | list[Hook] = (),
        params: list[nn.Parameter] | None = None,
        **recipe_overrides: Any,
    ) -> TrainLog:
        """Run the shared engine with ``method``'s recipe (``recipe_overrides`` on top): passes resized to meet
        ``request.budget``; with a ``request.target`` and a probed method the run is
        probed (:class:`~unlearnkit.probe.TargetProbe`): the budget is a ceiling, the run stops at the target and
        hands back its best state, and the probe is kept in :attr:`probes`."""
        recipe = method.recipe(**recipe_overrides)
        phases, repeats = stretch(
            [phases] if isinstance(phases, Phase) else phases,
            recipe.epochs,
            request.budget,
            train_size=len(request.forget) + len(request.retain),
        )
        run_hooks = [*hooks, *self.hooks, *request.hooks]
        if request.target is not None and method.probed:
            probe = TargetProbe(request.target, *probe_sets(request.forget, request.retain, method.seed))
            run_hooks.append(probe)
            self.probes.append(probe)
        run_hooks += request.callbacks  # the user's last: they see the step after every other hook acted
        log = train(
            model,
            phases,
            recipe,
            device=request.device,
            hooks=run_hooks,
            params=params,
            seed=method.seed,
            progress=request.progress,
            desc=method.name,
            accelerator=getattr(request, "accelerator", None),
        )
        self.fits.append(FitRecord(log, repeats, phases, recipe.epochs, count_examples(phases, recipe.epochs)))
        return log
