"""The public Python API: :func:`unlearn` (and :func:`evaluate`, re-exported from metrics)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import result_views
from .budget import Budget, as_budget, budget_hparams
from .callbacks import Callback, LossHistory, check_callbacks
from .data.tensors import as_tensor_data
from .engine import check_outputs
from .errors import ConfigError, ModelError
from .guard import check_collapse
from .methods.base import TASKS, Method, UnlearnRequest, get_method_class, make_method
from .methods.context import RunContext
from .runtime import resolve_device, timed
from .target import estimate_target
from .validation import float32_working_copy, prepare_request_data

#: ``stop="target"``: probed runs that stop at the target; ``"budget"``: the whole budget, as published
STOP_MODES = ("target", "budget")


@dataclass
class UnlearnResult:
    """The unlearned model (a new object) with the method, its hyper-parameters and the seconds it took."""

    model: nn.Module
    method: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: what happened besides the hyper-parameters: budget repeats, the collapse check, ``auto``'s choice, the
    #: method's own findings (``report["method"]``)
    report: dict[str, Any] = field(default_factory=dict)
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


def unlearn(
    model: nn.Module,
    forget: object,
    retain: object,
    method: str | Method = "salun",
    *,
    task: str = "classification",
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    model_factory: Callable[[], nn.Module] | None = None,
    check_overlap: bool = True,
    budget: str | Budget | None = "scaled",
    original_epochs: int | None = None,
    collapse_threshold: float | None = None,
    heldout: object | None = None,
    stop: str | None = None,
    callbacks: Sequence[Callback] | None = None,
    **hparams: Any,
) -> UnlearnResult:
    """Remove the influence of ``forget`` from ``model`` with ``method``; the model passed in is never modified.

    ``forget`` and ``retain`` may each be a ``Dataset``, a ``DataLoader`` or a tuple ``(X, y)``.
    ``method`` is a registered name (see :func:`unlearnkit.available_methods`) or a :class:`Method` instance;
    ``hparams`` are its hyper-parameters (``epochs``, ``lr``, ``batch_size``, ``seed`` are common to all).
    ``model_factory`` builds a fresh model (used by ``retrain``; by default modules are re-initialised).
    Inputs are cast to the model's dtype (a float64 model is unlearned in float32 and returned as float64)
    and labels are checked against its outputs; an example found in both sets is refused unless
    ``check_overlap=False``. A run whose loss or weights stop being finite raises
    :class:`~unlearnkit.errors.DivergenceError`.
    ``budget`` sets how long training methods run (:mod:`unlearnkit.budget`): ``"scaled"`` (default) scales the
    published epochs to ``original_epochs`` (the epochs the original was trained for, when given) and runs at
    least ``MIN_STEPS`` optimiser steps; ``"published"`` runs the published values as they are. An explicit
    ``epochs`` (or a :class:`Method` instance) runs exactly as given.
    After a classification method, the collapse guard (:mod:`unlearnkit.guard`) warns when retain accuracy
    falls below ``collapse_threshold`` (percent; default: the original's minus 20 points).
    ``heldout`` (data the original never trained on, e.g. a validation split; any form ``forget`` accepts) is
    where a classifier's target comes from (:mod:`unlearnkit.target`); without it a weaker target is used and
    named in ``result.report["target"]``. With ``stop="target"`` a training method is
    probed (:mod:`unlearnkit.probe`): the budget is a ceiling, the run stops when the target is reached, the best state
    by distance to the target is handed back and a collapse is rolled back; the trace is in
    ``result.report["probe"]``. ``stop="budget"`` (the default) runs the whole budget as published, without
    probes: on two hold-out models of ``benchmarks/zoo.py`` probed RL and SalUn landed farther from retrain
    than their whole budget on Fashion-MNIST (benchmarks/RESULTS.md), so probing is opt-in until it wins there.
    A causal LM is probed by default against never-seen people's answer probability (:mod:`unlearnkit.lm.probe`;
    ``heldout`` gives those people's QA, ``stop="budget"`` turns it off).
    A Hugging Face causal LM goes to the ``lm`` methods (pass ``tokenizer=``; see :func:`unlearnkit.lm.api.unlearn_hf`).
    Text-to-image models (a diffusers pipeline) take ``forget="object:NAME"`` and ``retain=<ConceptData>``.
    ``callbacks`` (:class:`~unlearnkit.callbacks.Callback` objects: ``on_start``/``on_step``/``on_epoch``/``on_end``)
    watch, log or stop every training run of the method (classifier, language-model and diffusion methods);
    ``result.history`` keeps the mean loss per epoch (``result.plot()``).
    """
    from .diffusion.dispatch import is_text_to_image, unlearn_text_to_image

    history = LossHistory()  # the epochs' losses, for result.plot()
    callbacks = (*check_callbacks(callbacks), history)
    family = {"callbacks": callbacks}  # the other families' entry points take them too
    if is_text_to_image(model):
        res = unlearn_text_to_image(
            model, forget, retain, method, device=device, progress=progress, **family, **hparams
        )
        res.history = history.epochs
        return res
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if hasattr(model, "config") and callable(getattr(model, "generate", None)):  # a Hugging Face causal LM
        from .lm.api import unlearn_hf

        lm_kw = {k: v for k, v in (("heldout", heldout), ("stop", stop)) if v is not None}
        res = unlearn_hf(model, forget, retain, method, device=device, progress=progress, **family, **lm_kw, **hparams)
        res.history = history.epochs
        return res
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if collapse_threshold is not None and not 0 <= collapse_threshold <= 100:
        raise ConfigError(
            f"collapse_threshold is a retain accuracy in percent, in [0, 100]; got {collapse_threshold!r}"
        )
    if stop is not None and stop not in STOP_MODES:
        raise ConfigError(f"unknown stop {stop!r}; choose one of {', '.join(STOP_MODES)}")
    bud = as_budget(budget, original_epochs)
    explicit = isinstance(method, Method) or "epochs" in hparams  # run exactly as given: no scaling, no minimum
    stop = stop or "budget"
    if isinstance(method, Method):
        if hparams:
            raise ConfigError("pass hyper-parameters either in the Method instance or as keywords, not both")
        algo = method
    else:
        algo = make_method(method, **budget_hparams(get_method_class(method), hparams, bud))
    dev = resolve_device(device)
    f = as_tensor_data(forget, "forget")
    r = as_tensor_data(retain, "retain")
    model, return_dtype = float32_working_copy(model)
    f, r, num_classes = prepare_request_data(
        model,
        f,
        r,
        task=task,
        num_classes=num_classes,
        device=dev,
        check_overlap=check_overlap,
        labels=algo.reads_labels,
    )
    target = None
    h = None
    if heldout is not None:  # checked whatever ``stop`` is: a bad held-out set is a mistake either way
        h = as_tensor_data(heldout, "heldout")
        if len(h) == 0:
            raise ConfigError("the heldout set is empty; give examples the original never trained on, or None")
        h, _, _ = prepare_request_data(
            model, h, r, task=task, num_classes=num_classes, device=dev, check_overlap=False, labels=True
        )
    if task == "classification" and algo.probed and (stop == "target" or getattr(algo, "needs_target", False)):
        target = estimate_target(model, f, r, h, dev, seed=algo.seed)
    request = UnlearnRequest(
        original=model,
        forget=f,
        retain=r,
        task=task,
        num_classes=num_classes,
        device=dev,
        progress=progress,
        model_factory=model_factory,
        budget=bud if algo.budgeted and not explicit else None,
        target=target,
        callbacks=callbacks,
    )
    algo.check(request)
    work = copy.deepcopy(model).to(dev)
    ctx = RunContext()
    with timed() as clock:
        outcome = algo.run(work, request, ctx)
    out = outcome.model
    check_outputs(out, f.x[:256].to(dev), desc=algo.name, lr=getattr(algo, "lr", None))
    out.eval()
    found = dict(outcome.report)
    report: dict[str, Any] = {"budget": bud.mode, "budget_repeats": _repeats(ctx.budget_repeats)}
    report["stop"] = stop
    knob_search = found.pop("knob_search", None)
    if target is not None:
        report["target"] = target.to_dict()
        runs = ctx.probes
        if knob_search is not None:  # a method that trains nothing chose its knob by the probes
            report["probe"] = knob_search
        elif runs:
            report["probe"] = runs[-1].report() if len(runs) == 1 else [p.report() for p in runs]
    if "auto" in found:  # auto: what it chose and why
        report["auto"] = found.pop("auto")
    if found:
        report["method"] = found
    if task == "classification" and algo.name != "retrain":
        guard = check_collapse(algo.name, model, out, r, dev, threshold=collapse_threshold, seed=algo.seed)
        report["collapse"] = guard.to_dict()
    if return_dtype is not None:
        out = out.to(return_dtype)
    hps = {**algo.hparams(), **outcome.hparams}
    return UnlearnResult(out, algo.name, hps, clock.seconds, report, history=history.epochs)


def _repeats(factor: float) -> float:
    """How many times as long each pass ran to meet the budget (a fraction under the ceiling of
    :mod:`unlearnkit.budget`)."""
    return int(factor) if factor == int(factor) else round(float(factor), 4)
