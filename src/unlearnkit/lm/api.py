"""``unlearn_lm``: apply a registered ``lm`` method to a copy of a causal LM (the ``lm`` family of
``unlearnkit.unlearn``, registered in :mod:`unlearnkit.families.lm`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..callbacks import check_callbacks
from ..engine import Hook
from ..errors import ConfigError, DataError
from ..family import get_family, run
from ..methods.base import Method
from ..registry import get_method_class
from ..result import UnlearnResult
from ..runtime import resolve_device
from .data import IDK_ANSWERS, LMSplit
from .encode import DEFAULT_MAX_LENGTH, encode_pairs, encode_qa, encode_texts, prompt_text
from .methods import LMRequest
from .probe import lm_target

#: the result of :func:`unlearn_lm` is the one :class:`~unlearnkit.result.UnlearnResult` (``losses`` filled)
LMUnlearnResult = UnlearnResult


def lm_request(
    model: nn.Module,
    tokenizer,
    split: LMSplit,
    *,
    device=None,
    progress: bool = True,
    max_length: int = DEFAULT_MAX_LENGTH,
    accelerator: Any = None,
    callbacks: Sequence[Hook] | None = None,
    heldout: Sequence[dict[str, Any]] | None = None,
    probe: bool | None = None,
) -> LMRequest:
    """Encode the split's forget and retain data into an :class:`LMRequest`: QA (loss on the answers, plus "I
    don't know" alternatives for the forget questions) or, for raw-text corpora, texts (loss on every token).
    With ``probe`` (QA only) the request carries the held-out target (:func:`unlearnkit.lm.probe.lm_target`): the
    ``heldout`` rows, else the split's ``holdout`` QA, else the forget questions' perturbed answers; ``probe=None``
    uses held-out rows only (no target without them)."""
    if split.forget_corpus:
        forget, forget_alt = encode_texts(tokenizer, split.forget_corpus, max_length), None
    else:
        alt = [IDK_ANSWERS[i % len(IDK_ANSWERS)] for i in range(len(split.forget))]
        forget = encode_qa(tokenizer, split.forget, max_length=max_length)
        prompts = [prompt_text(r["question"], tokenizer) for r in split.forget]
        forget_alt = encode_pairs(tokenizer, prompts, alt, max_length)
    target = None
    rows = list(heldout) if heldout is not None else list(split.holdout)
    wanted = probe if probe is not None else bool(rows)
    if wanted and not split.forget_corpus and not split.retain_corpus:
        target = lm_target(tokenizer, split.forget, split.retain, rows, max_length=max_length)
    retain = (
        encode_texts(tokenizer, split.retain_corpus, max_length)
        if split.retain_corpus
        else encode_qa(tokenizer, split.retain, max_length=max_length)
    )
    return LMRequest(
        original=model,
        forget=forget,
        retain=retain,
        device=resolve_device(device),
        progress=progress,
        tokenizer=tokenizer,
        forget_alt=forget_alt,
        forget_records=list(split.forget),
        retain_records=list(split.retain),
        accelerator=accelerator,
        callbacks=check_callbacks(callbacks),
        lm_target=target,
    )


def coerce_hparams(method: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """Boolean hyper-parameters given as text (``"true"``, ``"True"``, ``"1"``, ``"no"`` …) become booleans."""
    cls = get_method_class(method, family="lm")
    bools = {n for n in cls.hparam_names() if isinstance(getattr(cls, n, None), bool)}
    out = dict(hparams)
    for key in bools & set(out):
        v = out[key]
        if isinstance(v, str):
            low = v.strip().lower()
            if low in ("true", "1", "yes", "on"):
                out[key] = True
            elif low in ("false", "0", "no", "off"):
                out[key] = False
            else:
                raise ConfigError(f"{method}: {key}={v!r} is not a boolean; write true or false")
        elif isinstance(v, int) and not isinstance(v, bool) and v in (0, 1):
            out[key] = bool(v)
    return out


def unlearn_lm(
    model: nn.Module,
    tokenizer,
    split: LMSplit,
    method: str | Method,
    *,
    device=None,
    progress: bool = True,
    max_length: int = DEFAULT_MAX_LENGTH,
    accelerator: Any = None,
    callbacks: Sequence[Hook] | None = None,
    inplace: bool = False,
    heldout: Sequence[dict[str, Any]] | None = None,
    probe: bool | None = None,
    **hparams: Any,
) -> UnlearnResult:
    """Run ``method`` (family ``lm``) on a deep copy of ``model``; ``model`` itself is never modified (it serves
    as the frozen reference of the methods that need one, so at most two copies are in memory). With
    ``inplace=True`` the method trains ``model`` itself and returns it (the caller's original is gone; for models
    too large for two copies): with ``lora=True`` the reference is then ``model`` with its adapters off, so one copy
    of the weights is held; a full-weight method with a reference copies it before training. With an
    ``accelerate.Accelerator`` (:func:`unlearnkit.lm.parallel.make_lm_accelerator`) the method trains data-parallel
    over its processes on its device; ``batch_size`` stays the global batch. ``callbacks``
    (:class:`~unlearnkit.callbacks.Callback`) watch, log or stop the method's training runs. With ``lora=True,
    adapter_only=True`` the result's model is a ``peft.PeftModel`` (write only its adapter with
    :func:`~unlearnkit.lm.model.save_causal_lm` ``(..., adapter_only=True)``).

    A QA request with held-out rows (``heldout``: QA records of people the model never saw; default: the split's
    ``holdout``, which the generated benchmark has) is probed against them by default (:mod:`unlearnkit.lm.probe`):
    the run stops when the forget answers are as likely as those people's, hands back its best state and rolls
    back from a retain collapse; the trace is ``result.report["probe"]``. ``probe=True`` without held-out rows uses
    the weaker target, the forget questions' perturbed answers; ``probe=False`` (and any data-parallel run under an
    ``accelerator``) runs the hyper-parameters' whole budget, as does the default without held-out rows.
    The same run as ``unlearnkit.unlearn(model, split, None, method, tokenizer=tokenizer, ...)``."""
    if not isinstance(split, LMSplit):
        raise ConfigError(
            f"split must be an LMSplit (forget and retain records), got {type(split).__name__}; build one with "
            "unlearnkit.lm.split_from_jsonl or make_benchmark(...).split(...)"
        )
    options = {
        "tokenizer": tokenizer,
        "max_length": max_length,
        "accelerator": accelerator,
        "inplace": inplace,
        "heldout": heldout,
        "probe": probe,
    }
    return run(
        get_family("lm"),
        model,
        split,
        None,
        method,
        device=device,
        progress=progress,
        callbacks=callbacks,
        options=options,
        **hparams,
    )


def as_split(forget: Any, retain: Any) -> LMSplit:
    """Forget/retain as an :class:`LMSplit`: file paths (any format :mod:`unlearnkit.lm.formats` reads), lists
    of QA records or of texts (``{"text": ...}`` or plain strings), or datasets holding them: a Hugging Face
    ``datasets.Dataset`` with TOFU-style ``question``/``answer`` (or ``text``) columns, a ``DatasetDict`` of one
    split, or a torch ``Dataset`` of such records."""
    from torch.utils.data import Dataset

    from ..data.hf_datasets import is_hf_dataset, is_hf_dataset_dict, records
    from .formats import normalise_qa, normalise_texts, record_kind, split_from_files

    if isinstance(forget, str | Path) and isinstance(retain, str | Path):
        return split_from_files(forget, retain)
    forget, retain = (
        records(d, n) if is_hf_dataset(d) or is_hf_dataset_dict(d) or isinstance(d, Dataset) else d
        for d, n in ((forget, "forget"), (retain, "retain"))
    )
    if not isinstance(forget, Sequence) or not isinstance(retain, Sequence) or isinstance(forget, str | bytes):
        raise DataError(
            "for a language model, forget and retain must be file paths or lists of QA records "
            '({"question", "answer", ...}) or texts; got ' + f"{type(forget).__name__} and {type(retain).__name__}"
        )
    kinds = record_kind(list(forget), "forget"), record_kind(list(retain), "retain")
    if kinds[0] != kinds[1]:
        raise DataError(f"forget holds {kinds[0]} records but retain holds {kinds[1]}; give both as QA or as text")
    if kinds[0] == "qa":
        return LMSplit("api", normalise_qa(list(forget), "forget"), normalise_qa(list(retain), "retain"))
    fc, rc = normalise_texts(list(forget), "forget"), normalise_texts(list(retain), "retain")
    return LMSplit("api", [], [], forget_corpus=fc, retain_corpus=rc)
