"""The causal language-model family: a Hugging Face causal LM (a ``config`` and ``generate``) or the folder
it was saved to (``config.json``, loaded with its tokenizer by :func:`unlearnkit.lm.model.load_causal_lm`).

``forget``/``retain`` are file paths, lists of QA records or texts, or an :class:`~unlearnkit.lm.LMSplit`
(then ``retain`` is ignored and may be None). Its own options: ``tokenizer`` (required for a model object),
``max_length`` (tokens per encoded example), ``accelerator`` (data-parallel training), ``inplace`` (train the
given model itself), ``heldout`` (QA rows of never-seen people: the probe's target) and ``probe`` or ``stop``
(``"target"``: probe, ``"budget"``: the whole budget). The lm modules are
imported only when such a model arrives.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..family import Call, Family, register_family, resolve_method
from ..methods.base import Method, UnlearnRequest
from ..methods.context import Outcome, RunContext
from ..result import UnlearnResult

OPTIONS: dict[str, Any] = {
    "tokenizer": None,
    "max_length": None,
    "accelerator": None,
    "inplace": False,
    "heldout": None,
    "probe": None,
    "stop": None,
}


def _is_folder(model: object) -> bool:
    if not isinstance(model, str | Path):
        return False
    p = Path(model)
    return (p / "config.json").is_file() and not (p / "model_index.json").is_file()


def detect(model: object) -> bool:
    if isinstance(model, nn.Module):
        from ..lm.model import is_causal_lm

        return is_causal_lm(model)
    return _is_folder(model)


def method(family: Family, call: Call, name: str | Method, hparams: dict[str, Any]) -> Method:
    """A method by name takes boolean hyper-parameters written as text (from the command line)."""
    if isinstance(name, str):
        from ..lm.api import coerce_hparams

        hparams = coerce_hparams(name, hparams)
    return resolve_method(family.name, name, hparams)


def _probe_setting(opts: dict[str, Any]) -> bool | None:
    """``probe`` as given, or from ``stop``: ``"target"`` probes against the held-out target, ``"budget"`` does
    not; neither: probed only where held-out rows exist."""
    stop, probe = opts["stop"], opts["probe"]
    if stop is None:
        return probe
    if stop not in ("target", "budget"):
        raise ConfigError(f"unknown stop {stop!r}; choose one of target, budget")
    if probe is not None and probe != (stop == "target"):
        raise ConfigError(f"stop={stop!r} and probe={probe!r} disagree; give one of them")
    return stop == "target"


def request(call: Call, algo: Method) -> UnlearnRequest:
    """Load a folder, encode the split, place the model (a ``device_map`` split keeps its devices) and attach the
    held-out target the run is probed against (:mod:`unlearnkit.lm.probe`)."""
    from ..lm.api import as_split, lm_request
    from ..lm.data import LMSplit
    from ..lm.encode import DEFAULT_MAX_LENGTH
    from ..lm.parallel import sharded_device

    opts = call.options
    model, tokenizer = call.model, opts["tokenizer"]
    if not isinstance(model, nn.Module):
        from ..lm.model import load_causal_lm

        with _quiet_loading(call.progress):
            model, own = load_causal_lm(model)
        tokenizer = own if tokenizer is None else tokenizer
    if tokenizer is None:
        raise ConfigError("unlearning a language model needs its tokenizer: unlearn(model, f, r, tokenizer=tok, ...)")
    split = call.forget if isinstance(call.forget, LMSplit) else as_split(call.forget, call.retain)
    accelerator = opts["accelerator"]
    device = call.device
    shard = sharded_device(model)
    if shard is not None:  # split over devices by a device_map: inputs go to its first layer's device
        if accelerator is not None:
            raise ConfigError(
                "a model split over several devices by device_map trains in one process; drop the accelerator "
                "(--accelerate), or load the whole model on each process's device for data-parallel training"
            )
        device = shard
    if accelerator is not None:
        device = accelerator.device
    probe = _probe_setting(opts)
    distributed = accelerator is not None and probe is not False
    if distributed:  # every process would have to take the same stop and rollback decisions at the same step
        probe = False
    heldout = opts["heldout"]
    if isinstance(heldout, str | Path):
        from ..lm.formats import read_records

        heldout = read_records(heldout)
    if heldout is not None:
        from ..lm.formats import normalise_qa

        heldout = normalise_qa(list(heldout), "heldout")
    max_length = opts["max_length"]
    req = lm_request(
        model,
        tokenizer,
        split,
        device=device,
        progress=call.progress,
        max_length=DEFAULT_MAX_LENGTH if max_length is None else max_length,
        accelerator=accelerator,
        callbacks=call.callbacks,
        heldout=heldout,
        probe=probe,
    )
    req.trains_original = bool(opts["inplace"])
    call.state.update(shard=shard, distributed=distributed, probe=probe)
    return req


@contextmanager
def _quiet_loading(progress: bool) -> Iterator[None]:
    """With ``progress=False``, transformers' own loading bars stay off while a folder is read."""
    if progress:
        yield
        return
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def working_copy(call: Call, request: UnlearnRequest) -> nn.Module:
    """A copy of the model on the request's device; with ``inplace`` the model itself (one copy of the weights)."""
    work = request.original if call.options["inplace"] else copy.deepcopy(request.original)
    return work if call.state["shard"] is not None else work.to(request.device)


def finish(
    call: Call, algo: Method, request: UnlearnRequest, outcome: Outcome, ctx: RunContext, seconds: float
) -> UnlearnResult:
    """The result with the mean loss of every epoch (averaged over processes when data-parallel), the probe's
    trace and the method's own findings."""
    log = ctx.last_log
    losses = [sum(e.values()) for e in log.epoch_losses] if log is not None else []
    report: dict[str, Any] = {}
    if ctx.probes:
        report["probe"] = ctx.probe_trace()
    elif call.state["distributed"]:
        report["probe"] = {"stopped": "not probed under an accelerator; the whole budget ran"}
    elif call.state["probe"] and getattr(request, "lm_target", None) is None:
        report["probe"] = {
            "stopped": "no target (it needs QA with held-out rows or perturbed answers); the whole budget ran"
        }
    if outcome.report:  # the method's own findings (e.g. RMU's steering values)
        report["method"] = outcome.report
    hparams = {**algo.hparams(), **outcome.hparams}
    return UnlearnResult(outcome.model.eval(), algo.name, hparams, seconds, report, losses=losses)


FAMILY = register_family(
    Family(
        name="lm",
        methods_module="unlearnkit.lm.methods",
        default_method="npo",
        detect=detect,
        request=request,
        finish=finish,
        method=method,
        working_copy=working_copy,
        options=OPTIONS,
        describes="a Hugging Face causal LM or its folder",
    )
)
