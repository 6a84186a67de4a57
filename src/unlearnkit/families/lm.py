"""The causal language-model family: a Hugging Face causal LM (a ``config`` and ``generate``) or the folder
it was saved to (``config.json``, loaded with its tokenizer by :func:`unlearnkit.lm.model.load_causal_lm`).

``forget``/``retain`` are file paths, lists of QA records or texts, or an :class:`~unlearnkit.lm.LMSplit`
(then ``retain`` is ignored and may be None). Its own options: ``tokenizer`` (required for a model object),
``max_length`` (tokens per encoded example) and ``accelerator`` (data-parallel training). The lm modules are
imported only when such a model arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..family import Call, Family, register_family, resolve_method
from ..methods.base import Method, UnlearnRequest
from ..result import UnlearnResult

OPTIONS: dict[str, Any] = {"tokenizer": None, "max_length": None, "accelerator": None}


def _is_folder(model: object) -> bool:
    if not isinstance(model, str | Path):
        return False
    p = Path(model)
    return (p / "config.json").is_file() and not (p / "model_index.json").is_file()


def detect(model: object) -> bool:
    if isinstance(model, nn.Module):
        return hasattr(model, "config") and callable(getattr(model, "generate", None))
    return _is_folder(model)


def method(family: Family, call: Call, name: str | Method, hparams: dict[str, Any]) -> Method:
    """A method by name takes boolean hyper-parameters written as text (from the command line)."""
    if isinstance(name, str):
        from ..lm.api import coerce_hparams

        hparams = coerce_hparams(name, hparams)
    return resolve_method(family.name, name, hparams)


def request(call: Call, algo: Method) -> UnlearnRequest:
    from ..lm.api import as_split, lm_request
    from ..lm.data import LMSplit
    from ..lm.encode import DEFAULT_MAX_LENGTH

    model, tokenizer = call.model, call.options["tokenizer"]
    if not isinstance(model, nn.Module):
        from ..lm.model import load_causal_lm

        model, own = load_causal_lm(model)
        tokenizer = own if tokenizer is None else tokenizer
    if tokenizer is None:
        raise ConfigError("unlearning a language model needs its tokenizer: unlearn(model, f, r, tokenizer=tok, ...)")
    split = call.forget if isinstance(call.forget, LMSplit) else as_split(call.forget, call.retain)
    accelerator = call.options["accelerator"]
    max_length = call.options["max_length"]
    req = lm_request(
        model,
        tokenizer,
        split,
        device=call.device if accelerator is None else accelerator.device,
        progress=call.progress,
        max_length=DEFAULT_MAX_LENGTH if max_length is None else max_length,
        accelerator=accelerator,
    )
    req.callbacks = call.callbacks
    return req


def finish(call: Call, algo: Method, request: UnlearnRequest, out: nn.Module, seconds: float) -> UnlearnResult:
    """The result with the mean loss of every epoch (averaged over processes when data-parallel)."""
    log = getattr(algo, "train_log", None)
    losses = [sum(e.values()) for e in log.epoch_losses] if log is not None else []
    return UnlearnResult(out.eval(), algo.name, algo.hparams(), seconds, losses=losses)


FAMILY = register_family(
    Family(
        name="lm",
        methods_module="unlearnkit.lm.methods",
        default_method="npo",
        detect=detect,
        request=request,
        finish=finish,
        method=method,
        options=OPTIONS,
        describes="a Hugging Face causal LM or its folder",
    )
)
