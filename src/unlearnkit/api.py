"""The public Python API: :func:`unlearn`, the same call for every family of models (and :func:`evaluate`,
re-exported from metrics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import families  # noqa: F401  (registers the families)
from .budget import Budget
from .families.classifier import STOP_MODES
from .family import family_of, option_names, run
from .methods.base import Method
from .result import UnlearnResult

__all__ = ["STOP_MODES", "UnlearnResult", "unlearn"]


def unlearn(
    model: nn.Module | Any,
    forget: object,
    retain: object,
    method: str | Method | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    callbacks: list[Any] | None = None,
    task: str | None = None,
    num_classes: int | None = None,
    model_factory: Callable[[], nn.Module] | None = None,
    check_overlap: bool | None = None,
    budget: str | Budget | None = None,
    original_epochs: int | None = None,
    collapse_threshold: float | None = None,
    heldout: object | None = None,
    stop: str | None = None,
    **hparams: Any,
) -> UnlearnResult:
    """Remove the influence of ``forget`` from ``model`` with ``method``; the model passed in is never modified.

    The model's family (:mod:`unlearnkit.families`) is recognised from the model: a classifier or regressor
    (any ``torch.nn.Module``), a Hugging Face causal LM or its folder (``lm``), a diffusers text-to-image
    pipeline, its folder or a wrapped one (``diffusion``), the bundled GAN (``gan``). ``method`` is a registered
    name of that family (see :func:`unlearnkit.available_methods` with ``family=``; None: the family's default,
    ``salun`` for classifiers) or a :class:`Method` instance; ``hparams`` are its hyper-parameters (``seed`` is
    one of every method; ``epochs``, ``lr``, ``batch_size`` are common). ``device``, ``progress`` and
    ``callbacks`` mean the same in every family. An option of another family is refused with a
    :class:`~unlearnkit.errors.ConfigError` naming it, never dropped.

    Classifiers and regressors: ``forget`` and ``retain`` may each be a ``Dataset``, a ``DataLoader`` or a tuple
    ``(X, y)``. ``task`` is ``"classification"`` (default) or ``"regression"``. ``model_factory`` builds a fresh
    model (used by ``retrain``; by default modules are re-initialised).
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

    Language models (:mod:`unlearnkit.families.lm`): ``forget``/``retain`` are file paths or lists of QA records
    or texts; ``tokenizer=`` is needed for a model object (a folder brings its own), ``max_length=`` and
    ``accelerator=`` are optional. Text-to-image models (:mod:`unlearnkit.families.diffusion`) take
    ``forget="object:NAME"`` and ``retain=<ConceptData>``. The GAN (:mod:`unlearnkit.families.gan`) takes the
    negative samples as ``forget`` and the positive samples as ``retain``.
    """
    given = {
        "task": task,
        "num_classes": num_classes,
        "model_factory": model_factory,
        "check_overlap": check_overlap,
        "budget": budget,
        "original_epochs": original_epochs,
        "collapse_threshold": collapse_threshold,
        "heldout": heldout,
        "stop": stop,
    }
    options = {k: v for k, v in given.items() if v is not None}
    for name in option_names() & set(hparams):  # a family's own option given as a keyword (tokenizer=, ...)
        options[name] = hparams.pop(name)
    family = family_of(model)
    return run(
        family,
        model,
        forget,
        retain,
        method,
        device=device,
        progress=progress,
        callbacks=callbacks,
        options=options,
        **hparams,
    )
