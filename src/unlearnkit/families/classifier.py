"""The classifier/regressor family: any other ``torch.nn.Module`` with ``(X, y)`` forget and retain data.

Its own options: ``task``, ``num_classes``, ``model_factory``, ``check_overlap``, ``budget``,
``original_epochs``, ``collapse_threshold``, ``heldout`` and ``stop`` (see :func:`unlearnkit.unlearn`).
Exact unlearning (SISA, S3T: :mod:`unlearnkit.exact`) is a workflow over this family's models.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..budget import as_budget, budget_hparams
from ..data.tensors import as_tensor_data
from ..engine import check_outputs
from ..errors import ConfigError
from ..family import Call, Family, register_family, resolve_method
from ..guard import check_collapse
from ..methods.base import TASKS, Method, UnlearnRequest
from ..methods.context import Outcome, RunContext
from ..registry import get_method_class
from ..result import UnlearnResult
from ..target import estimate_target
from ..validation import float32_working_copy, prepare_request_data

#: ``stop="target"``: probed runs that stop at the target; ``"budget"``: the whole budget, as published
STOP_MODES = ("target", "budget")

OPTIONS: dict[str, Any] = {
    "task": "classification",
    "num_classes": None,
    "model_factory": None,
    "check_overlap": True,
    "budget": "scaled",
    "original_epochs": None,
    "collapse_threshold": None,
    "heldout": None,
    "stop": "budget",
}


def detect(model: object) -> bool:
    return isinstance(model, nn.Module)


def method(family: Family, call: Call, name: str | Method, hparams: dict[str, Any]) -> Method:
    """Validate the options, then build the method; a method given by name gets its epochs from the budget."""
    opts = call.options
    if opts["task"] not in TASKS:
        raise ConfigError(f"unknown task {opts['task']!r}; choose one of {', '.join(TASKS)}")
    threshold = opts["collapse_threshold"]
    if threshold is not None and not 0 <= threshold <= 100:
        raise ConfigError(f"collapse_threshold is a retain accuracy in percent, in [0, 100]; got {threshold!r}")
    if opts["stop"] not in STOP_MODES:
        raise ConfigError(f"unknown stop {opts['stop']!r}; choose one of {', '.join(STOP_MODES)}")
    bud = as_budget(opts["budget"], opts["original_epochs"])
    call.state["budget"] = bud
    call.state["explicit"] = isinstance(name, Method) or "epochs" in hparams  # run exactly as given
    if isinstance(name, str):
        hparams = budget_hparams(get_method_class(name, family=family.name), hparams, bud)
    return resolve_method(family.name, name, hparams)


def request(call: Call, algo: Method) -> UnlearnRequest:
    """Data as tensors checked against the model (float32 working copy), the target when probing."""
    opts, dev = call.options, call.device
    task = opts["task"]
    f = as_tensor_data(call.forget, "forget")
    r = as_tensor_data(call.retain, "retain")
    model, call.state["return_dtype"] = float32_working_copy(call.model)
    f, r, num_classes = prepare_request_data(
        model,
        f,
        r,
        task=task,
        num_classes=opts["num_classes"],
        device=dev,
        check_overlap=opts["check_overlap"],
        labels=algo.reads_labels,
    )
    target = None
    h = None
    if opts["heldout"] is not None:  # checked whatever ``stop`` is: a bad held-out set is a mistake either way
        h = as_tensor_data(opts["heldout"], "heldout")
        if len(h) == 0:
            raise ConfigError("the heldout set is empty; give examples the original never trained on, or None")
        h, _, _ = prepare_request_data(
            model, h, r, task=task, num_classes=num_classes, device=dev, check_overlap=False, labels=True
        )
    if task == "classification" and algo.probed and (opts["stop"] == "target" or getattr(algo, "needs_target", False)):
        target = estimate_target(model, f, r, h, dev, seed=algo.seed)
    bud = call.state["budget"]
    return UnlearnRequest(
        original=model,
        forget=f,
        retain=r,
        task=task,
        num_classes=num_classes,
        device=dev,
        progress=call.progress,
        model_factory=opts["model_factory"],
        budget=bud if algo.budgeted and not call.state["explicit"] else None,
        target=target,
        callbacks=call.callbacks,
    )


def finish(
    call: Call, algo: Method, request: UnlearnRequest, outcome: Outcome, ctx: RunContext, seconds: float
) -> UnlearnResult:
    """Check the outputs, record the budget, the probes, ``auto``'s choice, the method's own findings and the
    collapse guard."""
    out = outcome.model
    f, r, dev = request.forget, request.retain, request.device
    check_outputs(out, f.x[:256].to(dev), desc=algo.name, lr=getattr(algo, "lr", None))
    out.eval()
    found = dict(outcome.report)
    report: dict[str, Any] = {"budget": call.state["budget"].mode, "budget_repeats": _repeats(ctx.budget_repeats)}
    report["stop"] = call.options["stop"]
    knob_search = found.pop("knob_search", None)
    target = request.target
    if target is not None:
        report["target"] = target.to_dict()
        if knob_search is not None:  # a method that trains nothing chose its knob by the probes
            report["probe"] = knob_search
        elif ctx.probes:
            report["probe"] = ctx.probe_trace()
    if "auto" in found:  # auto: what it chose and why
        report["auto"] = found.pop("auto")
    if found:
        report["method"] = found
    if request.task == "classification" and algo.name != "retrain":
        guard = check_collapse(
            algo.name,
            request.original,
            out,
            r,
            dev,
            threshold=call.options["collapse_threshold"],
            seed=algo.seed,
        )
        report["collapse"] = guard.to_dict()
    return_dtype = call.state["return_dtype"]
    if return_dtype is not None:
        out = out.to(return_dtype)
    return UnlearnResult(out, algo.name, {**algo.hparams(), **outcome.hparams}, seconds, report)


def _repeats(factor: float) -> float:
    """How many times as long each pass ran to meet the budget (a fraction under the ceiling of
    :mod:`unlearnkit.budget`)."""
    return int(factor) if factor == int(factor) else round(float(factor), 4)


FAMILY = register_family(
    Family(
        name="classifier",
        methods_module="unlearnkit.methods",
        default_method="salun",
        detect=detect,
        request=request,
        finish=finish,
        method=method,
        options=OPTIONS,
        describes="any other torch.nn.Module with (X, y) data",
        fallback=True,
    )
)
