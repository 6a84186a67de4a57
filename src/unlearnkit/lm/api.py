"""``unlearn_lm``: apply a registered ``lm`` method to a copy of a causal LM."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..methods.base import make_method
from ..runtime import resolve_device, timed
from .data import IDK_ANSWERS, LMSplit
from .encode import encode_pairs, encode_qa, prompt_text
from .methods import LMRequest


@dataclass
class LMUnlearnResult:
    model: nn.Module
    method: str
    hparams: dict[str, Any]
    seconds: float


def lm_request(model: nn.Module, tokenizer, split: LMSplit, *, device=None, progress: bool = True) -> LMRequest:
    """Encode the split's forget and retain QA (and "I don't know" alternatives) into an :class:`LMRequest`."""
    alt = [IDK_ANSWERS[i % len(IDK_ANSWERS)] for i in range(len(split.forget))]
    return LMRequest(
        original=model,
        forget=encode_qa(tokenizer, split.forget),
        retain=encode_qa(tokenizer, split.retain),
        device=resolve_device(device),
        progress=progress,
        tokenizer=tokenizer,
        forget_alt=encode_pairs(tokenizer, [prompt_text(r["question"]) for r in split.forget], alt),
    )


def unlearn_lm(
    model: nn.Module,
    tokenizer,
    split: LMSplit,
    method: str,
    *,
    device=None,
    progress: bool = True,
    **hparams: Any,
) -> LMUnlearnResult:
    """Run ``method`` (domain ``lm``) on a deep copy of ``model``; ``model`` itself is never modified."""
    m = make_method(method, domain="lm", **hparams)
    request = lm_request(model, tokenizer, split, device=device, progress=progress)
    m.check(request)
    work = copy.deepcopy(model).to(request.device)
    with timed() as t:
        out = m.run(work, request)
    out.eval()
    return LMUnlearnResult(out, method, m.hparams(), t.seconds)
