"""auto: search methods and learning rates by successive halving on the distance to the target, within a fraction
of an estimated retrain's time.

The search (Jamieson and Talwalkar, "Non-stochastic Best Arm Identification and Hyperparameter Optimization",
AISTATS 2016; Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization", JMLR 2018)
runs its candidates one after the other as Optuna's ``SuccessiveHalvingPruner`` judges trials (the asynchronous
form of Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020; code
``optuna/pruners/_successive_halving.py`` of github.com/optuna/optuna): every trial is one run of a method, and at
each rung (1/9, 1/3 and all of its run, reduction factor 3) it is measured and continues only while it is among
the best third of the trials measured at that rung so far. The value measured is the distance to the held-out
estimate of retraining (:mod:`unlearnkit.target`) on the fixed probes of :mod:`unlearnkit.probe`. The pruner is
written here (a few lines) rather than imported, so that ``auto`` needs no optional dependency.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..budget import Budget
from ..data.tensors import Batches, TensorData
from ..engine import Hook, Phase, Recipe, StepContext, train
from ..errors import ConfigError, UnlearnkitError
from ..forget import request_kind
from ..probe import COLLAPSE_TOLERANCE, ROLLBACK_DROP
from ..target import Target, estimate_target, probe_sets, probe_values
from .base import Method, UnlearnRequest, get_method_class, hp, make_method, register
from .context import Outcome, RunContext

#: default share of the estimated retrain time that the whole of ``auto`` may take. The bar it serves is 25 % of
#: retraining's time; the clock is checked after every optimiser step, but a method's one-off passes (SalUn's
#: saliency, SSD's importances) and the last measurement cannot be cut, so a run may pass its bound by a little
#: (at most 0.23 of the estimate on the zoo of benchmarks/zoo.py): 0.2 keeps it under 0.25
FRACTION = 0.2
#: successive halving's reduction factor (Hyperband's and Optuna's default): a third of the trials go on
ETA = 3
#: the rungs, as fractions of a full trial run: 1/9, 1/3, 1
RUNGS = (1 / 9, 1 / 3, 1.0)
#: where a trial is also measured between rungs (its closest state is kept, with no decision there)
BETWEEN = (2 / 9, 5 / 9, 7 / 9)
#: a full trial run, its measurements included, is this share of the search budget, so that the first trial
#: leaves room for the others
TRIAL_SHARE = 1 / 3
#: examples per optimiser step when timing the throughput, unless the original's batch is given (larger batches
#: are cheaper per example: an original trained at smaller batches is estimated no dearer than it was)
THROUGHPUT_BATCH = 128
THROUGHPUT_STEPS = 6

_NEGGRAD = {"momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine"}
#: candidates for class-wise forgetting, in order (the first runs in full): SSD (trains nothing; its α is chosen
#: on the probes), then RL and SalUn at their published learning rates and at a third of them
CLASS_CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("ssd", {}),
    ("salun", {}),
    ("rl", {}),
    ("salun", {"lr": 0.004}),
    ("rl", {"lr": 0.003}),
    ("l1-sparse", {"lr": 0.05, "alpha": 2e-3, "schedule": "cosine"}),
    ("rl", {"lr": 0.03}),
    ("bad-teacher", {}),
    ("scrub", {}),
)
#: candidates for random forgetting, in order: NegGrad+ (retain descent and forget ascent in every step) with
#: the retain weight and learning rate that landed on retraining on Fashion-MNIST random 10 % (benchmarks/
#: RESULTS.md), its neighbours, then RL and SalUn at published and lower learning rates
RANDOM_CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("neggrad-plus", {"alpha": 0.85, "lr": 0.1, **_NEGGRAD}),
    ("neggrad-plus", {"alpha": 0.9, "lr": 0.1, **_NEGGRAD}),
    ("neggrad-plus", {"alpha": 0.85, "lr": 0.03, **_NEGGRAD}),
    ("neggrad-plus", {"alpha": 0.8, "lr": 0.1, **_NEGGRAD}),
    ("rl", {}),
    ("salun", {}),
    ("rl", {"lr": 0.003}),
    ("salun", {"lr": 0.004}),
    ("neggrad-plus", {"alpha": 0.9, "lr": 0.03, **_NEGGRAD}),
)


class TargetNotReachedWarning(UserWarning):
    """``auto`` ended without any candidate within the target's tolerance."""


def forget_kind(request: UnlearnRequest) -> str:
    """``"class"`` when D_f is one whole class (absent from D_r), else ``"random"``."""
    if len(torch.unique(request.forget.y)) == 1 and request_kind(request.forget.y, request.retain.y) == "class-wise":
        return "class"
    return "random"


class _StepTimes(Hook):
    """The wall-clock seconds of every optimiser step (from the end of the previous one)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last = 0.0

    def on_start(self, ctx: StepContext) -> None:
        self._last = time.perf_counter()

    def after_step(self, ctx: StepContext) -> None:
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now


def seconds_per_example(
    request: UnlearnRequest, batch_size: int = THROUGHPUT_BATCH, steps: int = THROUGHPUT_STEPS
) -> float:
    """Measured training throughput of the original, as retraining would run it: the engine trains a copy on
    ``steps`` batches of D_r (after a one-batch warm-up run); the median step's seconds over its examples (the
    median, so that a moment's load on a shared machine does not inflate the estimate)."""
    retain = request.retain
    n = min(batch_size, len(retain))
    data = retain.subset(np.arange((steps + 1) * n) % len(retain))
    work = copy.deepcopy(request.original)
    recipe = Recipe(epochs=1, batch_size=n)
    timer = _StepTimes()

    def run(part: TensorData, hooks: tuple[Hook, ...] = ()) -> None:
        phase = Phase("throughput", Batches(part, n, shuffle=False), request.task_loss)
        train(work, phase, recipe, device=request.device, hooks=hooks, progress=False)

    run(data.subset(np.arange(n)))  # the first run of a process also pays one-time imports (the optimiser's)
    run(data.subset(np.arange(n, len(data))), (timer,))
    return float(np.median(timer.times)) / n


def promotable(value: float, rung_values: list[float], eta: int = ETA) -> bool:
    """Optuna's successive-halving rule: ``value`` (already among ``rung_values``) goes on when it is at most
    the ``len(rung_values) // eta``-th smallest of them (the smallest while there are fewer than ``eta``)."""
    k = max(0, len(rung_values) // eta - 1)
    return value <= sorted(rung_values)[k]


@dataclass
class Trial:
    """One candidate's run: its measurements at each rung, its cost and how it ended."""

    method: str
    hparams: dict[str, Any]
    rungs: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    examples: float = 0.0
    seconds: float = 0.0
    status: str = "not run"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "hparams": self.hparams,
            "status": self.status,
            "steps": self.steps,
            "examples": round(self.examples),
            "seconds": round(self.seconds, 3),
            "rungs": self.rungs,
        }


class Search:
    """The state of one search: budget, the values measured at each rung, the closest state so far."""

    def __init__(
        self,
        target: Target,
        probes: tuple[Any, Any],
        device: torch.device,
        budget_examples: float,
        trial_examples: float,
        deadline: float,
        eta: int,
    ) -> None:
        self.target, self.probes, self.device = target, probes, device
        self.budget_examples, self.trial_examples, self.deadline, self.eta = (
            budget_examples,
            trial_examples,
            deadline,
            eta,
        )
        self.spent_examples = 0.0
        #: a measurement's forward passes, in training examples (a training step's forward and backward cost
        #: about three forward passes)
        self.probe_cost = (len(probes[0]) + len(probes[1])) / 3
        self.spent_steps = 0
        self.values: list[list[float]] = [[] for _ in RUNGS]
        self.trials: list[Trial] = []
        self.best: tuple[float, dict[str, torch.Tensor], Trial, int] | None = None
        self.reached = False

    def observe(self, model: nn.Module, trial: Trial, step: int, rung: int | None) -> tuple[float, float]:
        """Measure ``model``, record it in ``trial`` and keep its state when it is the closest so far that
        does not lose retain accuracy; returns (distance, retain-accuracy drop)."""
        v = probe_values(model, *self.probes, self.device)
        self.spent_examples += self.probe_cost
        dist, drop = self.target.distance(v), self.target.retain_acc - v.retain_acc
        entry: dict[str, Any] = {"rung": rung, "step": step, **v.to_dict(), "distance": round(dist, 4)}
        trial.rungs.append(entry)
        if drop > COLLAPSE_TOLERANCE:
            entry["action"] = "low retain"
        elif trial.method == "none":  # the original: its distance is the baseline, never a search result
            self.reached = self.reached or self.target.reached(v)
        elif self.best is None or dist < self.best[0]:
            state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            self.best = (dist, state, trial, step)
            if self.target.reached(v):
                self.reached = True
        return dist, drop

    def at_rung(self, model: nn.Module, trial: Trial, rung: int, step: int, next_cost: float) -> str | None:
        """Measure at a rung; the reason to end the trial here, or None to go on (``next_cost`` examples more)."""
        dist, drop = self.observe(model, trial, step, rung)
        if self.reached:
            return "target reached"
        value = float("inf") if drop > ROLLBACK_DROP else dist
        self.values[rung].append(value)
        if drop > ROLLBACK_DROP:
            return f"collapsed at rung {rung}"
        if rung == len(RUNGS) - 1:
            return "completed"
        if not promotable(value, self.values[rung], self.eta):
            return f"pruned at rung {rung}"
        if self.spent_examples + next_cost > self.budget_examples:
            return f"search budget spent at rung {rung}"
        if time.perf_counter() >= self.deadline:
            return f"time bound at rung {rung}"
        return None


def batch_examples(batch: Any) -> int:
    """Examples in one step's batch: the first tensor's, plus those of every later tensor shaped like it
    (NegGrad+'s ``(x_r, y_r, x_f, y_f)`` counts both inputs; labels are not examples)."""
    if not batch:
        return 0
    first = batch[0]
    return sum(len(t) for t in batch if t.ndim == first.ndim and t.shape[1:] == first.shape[1:])


class TrialHook(Hook):
    """Engine hook of one trial: counts its steps and examples, measures it at the rungs, stops it when pruned,
    when the target is reached or when the search's budget or time bound is spent."""

    def __init__(self, search: Search, trial: Trial) -> None:
        self.search, self.trial = search, trial
        self.rung_steps: list[int] = []
        self.between: list[int] = []
        self.next = 0
        self.per_step = 0.0
        self.measured_at = -1

    def on_start(self, ctx: StepContext) -> None:
        total = max(1, ctx.total_steps)
        self.per_step = self.search.trial_examples / total
        self.rung_steps = [max(1, round(total * f)) for f in RUNGS]
        self.between = sorted({max(1, round(total * f)) for f in BETWEEN} - set(self.rung_steps))

    def after_step(self, ctx: StepContext) -> None:
        done = ctx.step + 1
        s, t = self.search, self.trial
        examples = batch_examples(ctx.batch)
        self.per_step = max(self.per_step, examples)  # the next step is taken to be as large as the largest
        t.steps, t.examples = done, t.examples + examples
        s.spent_steps += 1
        s.spent_examples += examples
        while self.next < len(self.rung_steps) and done >= self.rung_steps[self.next]:
            k = self.next
            self.next += 1
            following = self.rung_steps[k + 1] if k + 1 < len(self.rung_steps) else done
            self.measured_at = done
            checks = 1 + sum(done < b < following for b in self.between)
            reason = s.at_rung(ctx.model, t, k, done, (following - done) * self.per_step + checks * s.probe_cost)
            if reason:
                t.status = ctx.stop = reason
                return
        if done in self.between:
            self.measured_at = done
            s.observe(ctx.model, t, done, None)
            if s.reached:
                t.status = ctx.stop = "target reached"
                return
        if s.spent_examples + self.per_step + s.probe_cost > s.budget_examples:  # a step and its measurement
            t.status = ctx.stop = "search budget spent"
        elif time.perf_counter() >= s.deadline:
            t.status = ctx.stop = "time bound"

    def on_end(self, ctx: StepContext) -> None:
        if self.trial.steps and self.measured_at != self.trial.steps:  # stopped between rungs: still a candidate
            self.search.observe(ctx.model, self.trial, self.trial.steps, None)
        if self.trial.status == "not run":
            self.trial.status = "completed"


@register
@dataclass(kw_only=True, frozen=True)
class Auto(Method):
    """auto: choose a method and its learning rate for this request by successive halving on the distance to the
    target, the whole search bounded by a fraction of an estimated retrain's time.

    *Target*: the request's (:mod:`unlearnkit.target`; ``unlearn`` gives ``auto`` one whatever ``stop`` is, from
    ``heldout=`` when given, else the weaker retain-confidence estimate, named in ``report["auto"]["target"]``).
    *Bound*: retraining is estimated as the original's epochs (``unlearn(..., original_epochs=)``) × |D_r|
    examples at the original's throughput, timed on batches of ``original_batch_size``
    (:func:`seconds_per_example`); ``auto`` may spend ``fraction`` of that in all (measuring included), counted
    in examples (``fraction`` of the retrain's) and held by the clock.
    Without the original's epochs there is no estimate: the bound is ``budget_seconds``, and the report says so.
    *Search*: each candidate of :data:`CLASS_CANDIDATES` or :data:`RANDOM_CANDIDATES` (methods × learning rates,
    published values first) is one run of a third of the budget, its fidelity the optimiser steps taken;
    measured at 1/9, 1/3 and the end of its run it goes on only while among the best ``1/eta`` of the trials
    measured there (:func:`promotable`, Optuna's successive-halving rule), so later rungs hold fewer
    candidates. Every measured state is a candidate; one more than ``COLLAPSE_TOLERANCE`` points below the
    original's retain-probe accuracy never is. The search ends at the first state within the target's tolerance.
    A candidate that trains nothing (SSD) has a fixed cost, importance passes over D_f and all of the data; it
    runs only when that is no more than a full trial (on an original of few epochs it would take most of the
    budget).
    *Result*: the closest state measured. When none reached the target, the report's ``reached`` is False, its
    ``verdict`` says so, a :class:`TargetNotReachedWarning` is raised and the command line prints it; the
    original is handed back only when it already met the target before any training, or when every candidate
    collapsed or failed (said in the verdict) — never silently after the search. A candidate that cannot run on
    this model or request (an :class:`~unlearnkit.errors.UnlearnkitError`) is recorded with its error.
    """

    name = "auto"
    reference_epochs = 0
    #: ``unlearn`` estimates a target for ``auto`` whatever ``stop`` is
    needs_target = True
    #: the contract's runs (:func:`unlearnkit.contract.check_method`) have no time for a search: the bound is spent
    #: before any candidate, so they check auto's plumbing and its plain "not reached"
    contract_hparams = {"budget_seconds": 1e-6}

    fraction: float = hp(
        FRACTION, low=0, high=1, low_open=True, doc="share of the estimated retrain time auto may take in all"
    )
    budget_seconds: float = hp(
        60.0, low=0, low_open=True, doc="the bound in seconds when the original's epochs are unknown"
    )
    original_batch_size: int = hp(
        THROUGHPUT_BATCH, low=1, doc="the original's training batch: the throughput is timed at it (bench passes it)"
    )
    eta: int = hp(ETA, low=2, doc="successive halving's reduction factor: 1/eta of the trials go on at each rung")
    methods: tuple[str, ...] = field(
        default=(),
        metadata={"doc": "restrict the candidates to these methods (empty: all of the request's kind)"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        methods = self.methods
        if isinstance(methods, str):  # "rl,salun" from the command line
            methods = tuple(m for m in methods.split(",") if m)
        object.__setattr__(self, "methods", tuple(methods))  # normalised once, while the method is built
        for m in self.methods:
            get_method_class(m)
        if self.methods and not any(m in self.methods for m, _ in RANDOM_CANDIDATES + CLASS_CANDIDATES):
            raise ConfigError(f"auto: none of {list(self.methods)} is a candidate; choose from {_candidate_names()}")

    def candidates(self, kind: str = "class") -> list[tuple[str, dict[str, Any]]]:
        """The candidates of a ``kind`` request, in order (only those of ``methods`` when it is set)."""
        return [(m, h) for m, h in _pool(kind) if not self.methods or m in self.methods]

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        start = time.perf_counter()
        dev = request.device
        kind = forget_kind(request)
        pool = self.candidates(kind)
        if not pool:
            raise ConfigError(
                f"auto: none of {list(self.methods)} is tried for a {kind} request ({kind} candidates: "
                f"{sorted({m for m, _ in _pool(kind)})}); add one of them to methods"
            )
        target = request.target
        if target is None:  # called without unlearn(): the estimate without a held-out set
            target = estimate_target(request.original, request.forget, request.retain, None, dev, seed=self.seed)
        epochs = request.budget.original_epochs if request.budget is not None else None
        per_example = seconds_per_example(request, self.original_batch_size)
        retrain_examples = None if epochs is None else epochs * len(request.retain)
        if retrain_examples is not None:
            estimate: float | None = retrain_examples * per_example
            bound = self.fraction * estimate
            budget_examples = self.fraction * retrain_examples
        else:
            estimate, bound = None, self.budget_seconds
            budget_examples = bound / per_example
        search = Search(
            target,
            probe_sets(request.forget, request.retain, self.seed),
            dev,
            budget_examples,
            0.0,
            start + bound,
            self.eta,
        )
        # the throughput check trained a copy on these
        search.spent_examples = (THROUGHPUT_STEPS + 1) * min(self.original_batch_size, len(request.retain))
        # a full trial: its share of what is left after the throughput check, less its own measurements
        left = budget_examples - search.spent_examples - search.probe_cost  # the original is measured too
        full_trial = TRIAL_SHARE * left
        search.trial_examples = max(1.0, full_trial - (len(RUNGS) + len(BETWEEN)) * search.probe_cost)
        none = Trial("none", {}, status="the original, measured before any training")
        original_distance, _ = search.observe(model, none, 0, None)
        original_reached, search.reached = search.reached, False
        stopped = "target reached by the original" if original_reached else "every candidate tried"
        for name, hps in pool if not original_reached else ():
            if search.reached:
                stopped = "target reached"
                break
            if time.perf_counter() >= search.deadline:
                stopped = "time bound"
                break
            cls = get_method_class(name)
            trains = cls.reference_epochs > 0
            if not trains and (2 * len(request.forget) + len(request.retain)) > full_trial:
                # its cost (importance passes over D_f and all of the data) is fixed: more than a full trial
                search.trials.append(Trial(name, hps, status="skipped: its fixed cost exceeds a full trial"))
                continue
            need = search.trial_examples * RUNGS[0] if trains else 2 * len(request.forget) + len(request.retain)
            need += search.probe_cost
            if search.spent_examples + need > search.budget_examples:
                stopped = "search budget spent"
                break
            trial = Trial(name, hps)
            search.trials.append(trial)
            t0 = time.perf_counter()
            try:
                out = self._run_trial(cls, hps, request, search, trial, trains)
            except UnlearnkitError as err:
                trial.status = f"error: {err}"
                out = None
            trial.seconds = time.perf_counter() - t0
            if not trains:  # its cost is its time, in examples at the measured throughput
                search.spent_examples += trial.seconds / per_example
                if out is not None:
                    search.at_rung(out, trial, 0, 0, 0.0)
                    trial.status = "completed (trains nothing)"
        spent = time.perf_counter() - start
        verdict, result = self._verdict(search, original_distance, original_reached)
        choice = {
            "kind": kind,
            "target": {
                "source": target.source,
                "weaker": target.source == "retain-confidence",
                "tolerance": target.tolerance,
            },
            "estimate": {
                "original_epochs": epochs,
                "retain_examples": len(request.retain),
                "seconds_per_example": per_example,
                "retrain_examples": retrain_examples,
                "retrain_seconds": estimate,
                "basis": "original_epochs × |D_r| at the measured throughput"
                if estimate is not None
                else "original_epochs unknown: the bound is budget_seconds",
            },
            "bound": {
                "fraction": self.fraction if estimate is not None else None,
                "seconds": bound,
                "examples": budget_examples,
            },
            "spent": {
                "seconds": spent,
                "examples": round(search.spent_examples),
                "steps": search.spent_steps,
                "fraction_of_estimate": None if estimate is None else spent / estimate,
            },
            "rungs": [
                {"fraction_of_trial": f, "candidates": len(vals)} for f, vals in zip(RUNGS, search.values, strict=True)
            ],
            "stopped": stopped,
            "original_distance": original_distance,
            "candidates": [none.to_dict()] + [t.to_dict() for t in search.trials],
            "reached": search.reached or original_reached,
            "chosen": result,
            "verdict": verdict,
            "why": verdict,
            "search_seconds": spent,
        }
        if not search.reached and not original_reached:
            warnings.warn(TargetNotReachedWarning(f"auto: {verdict}"), stacklevel=2)
        if not (original_reached or search.best is None):
            model.load_state_dict(search.best[1])
        return Outcome(model, report={"auto": choice})

    def _verdict(self, search: Search, original_distance: float, original_reached: bool) -> tuple[str, dict[str, Any]]:
        tol = search.target.tolerance
        if original_reached:
            return (
                f"target reached by the original itself (distance {original_distance:.2f} ≤ tolerance {tol}); "
                "nothing was trained and the original is returned",
                {"method": "none", "hparams": {}, "distance": original_distance},
            )
        if search.best is None:
            why = (
                "every candidate tried collapsed the model or failed"
                if search.trials
                else "the bound was spent before any candidate could run"
            )
            return (
                f"target NOT reached: {why}; the original is returned unchanged (distance "
                f"{original_distance:.2f} > tolerance {tol})",
                {"method": "none", "hparams": {}, "distance": original_distance},
            )
        dist, _, trial, step = search.best
        chosen = {"method": trial.method, "hparams": trial.hparams, "step": step, "distance": dist}
        label = f"{trial.method} {trial.hparams or '(defaults)'} at step {step}"
        if search.reached:
            return f"target reached by {label}: distance {dist:.2f} ≤ tolerance {tol}", chosen
        if dist >= original_distance:
            return (
                f"target NOT reached, and no candidate came closer to it than the original (the closest, {label}, "
                f"at distance {dist:.2f}; the original at {original_distance:.2f}; tolerance {tol}); the closest "
                "candidate is returned. Every candidate tried moves this model away from the target: keep the "
                "original, or give a held-out set (heldout=) if the target is the weaker retain-confidence one",
                chosen,
            )
        return (
            f"target NOT reached: the closest state, {label}, is at distance {dist:.2f} > tolerance {tol} "
            f"(the original: {original_distance:.2f}); it is returned",
            chosen,
        )

    def _run_trial(
        self,
        cls: type[Method],
        hps: dict[str, Any],
        request: UnlearnRequest,
        search: Search,
        trial: Trial,
        trains: bool,
    ) -> nn.Module:
        """One candidate on a copy of the original. A method that trains runs ``search.trial_examples`` examples
        (the budget's ceiling rule of :mod:`unlearnkit.budget` spreads them over its published epochs), measured
        and stopped by a :class:`TrialHook`; one that trains nothing chooses its knob on the probes."""
        algo = make_method(cls.name, **{**hps, "seed": self.seed})
        req = copy.copy(request)
        req.progress = False
        if trains:
            train_size = len(request.forget) + len(request.retain)
            epochs = max(1, math.ceil(search.trial_examples / train_size))
            req.budget = Budget(
                mode="scaled",
                original_epochs=epochs,
                min_steps=10**9,  # fill the ceiling: the run is ``trial_examples`` long
                max_fraction=min(1.0, search.trial_examples / (epochs * train_size)),
            )
            req.target = None  # measured at the rungs by the trial's hook instead of every few steps
            req.hooks = (*request.hooks, TrialHook(search, trial))
        else:
            req.target = search.target
        algo.check(req)
        work = copy.deepcopy(request.original).to(request.device)
        out = algo.run(work, req, RunContext()).model  # each candidate run has its own context
        out.eval()
        return out


def _pool(kind: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    return RANDOM_CANDIDATES if kind == "random" else CLASS_CANDIDATES


def _candidate_names() -> list[str]:
    return sorted({m for m, _ in RANDOM_CANDIDATES + CLASS_CANDIDATES})
