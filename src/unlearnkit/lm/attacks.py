"""Attacks on an unlearned LM: adversarial probes, the in-context "ununlearning" probe and relearning.

Each attack reports how often the forgotten value comes back (accuracy in [0, 1]); lower is better for
the unlearned model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from .data import PROBE_TYPES, with_context
from .encode import encode_pairs, encode_qa, prompt_text
from .generate import answer_questions, greedy_generate, row_logprobs
from .metrics import answer_accuracy
from .training import LMTrainConfig, train_lm


def multiple_choice_accuracy(model: nn.Module, tokenizer, probes: Sequence[dict[str, Any]], **kw) -> float:
    """Pick the option with the highest length-normalised log-likelihood; fraction picking the true one."""
    if not probes:
        return float("nan")
    prompts = [prompt_text(p["question"], tokenizer) for p in probes for _ in p["options"]]
    targets = [o for p in probes for o in p["options"]]
    lps = row_logprobs(model, encode_pairs(tokenizer, prompts, targets), **kw)
    hits, i = 0, 0
    for p in probes:
        k = len(p["options"])
        scores = [float(x.mean()) for x in lps[i : i + k]]
        hits += int(np.argmax(scores) == p["correct"])
        i += k
    return hits / len(probes)


def probe_scores(model: nn.Module, tokenizer, probes: Sequence[dict[str, Any]], **kw) -> dict[str, float]:
    """Accuracy per probe type: adversarial probes (multiple choice by likelihood, the others by greedy
    answers) and fill-in-the-blank probes (greedy continuation of the cut sentence)."""
    out = {}
    for kind in (*PROBE_TYPES, "fill_blank"):
        rows = [p for p in probes if p["type"] == kind]
        if not rows:
            continue
        if kind == "fill_blank":
            gens = greedy_generate(model, tokenizer, [p["prompt"] for p in rows], device=kw.get("device"))
            out[f"probe_{kind}"] = answer_accuracy(gens, [p["value"] for p in rows])
        elif kind == "multiple_choice":
            out[f"probe_{kind}"] = multiple_choice_accuracy(model, tokenizer, rows, **kw)
        else:
            gens = answer_questions(model, tokenizer, rows, device=kw.get("device"))
            out[f"probe_{kind}"] = answer_accuracy(gens, [p["value"] for p in rows])
    return out


def in_context_probe(
    model: nn.Module,
    tokenizer,
    qa: Sequence[dict[str, Any]],
    bios: dict[str, str],
    holdout: Sequence[dict[str, Any]] = (),
    **kw,
) -> dict[str, float]:
    """The "UnUnlearning" probe (Shumailov et al., 2024): forget-QA accuracy without and with the forgotten
    facts (sentences of the person's biography) given in the prompt; with ``holdout`` QA, also the accuracy on
    never-trained people with their biography in the prompt (``icl_holdout``: can the model read context at
    all? the probe only means something when it is high)."""
    dev = kw.get("device")
    plain = answer_accuracy(answer_questions(model, tokenizer, qa, device=dev), [r["value"] for r in qa])
    out = {"icl_no_context": plain, "icl_with_context": float("nan")}
    rows = [r for r in qa if r["person"] in bios]
    if rows:
        gens = answer_questions(model, tokenizer, with_context(rows, bios), device=dev)
        out["icl_with_context"] = answer_accuracy(gens, [r["value"] for r in rows])
    held = [r for r in holdout if r["person"] in bios]
    if held:
        gens = answer_questions(model, tokenizer, with_context(held, bios), device=dev)
        out["icl_holdout"] = answer_accuracy(gens, [r["value"] for r in held])
    return out


def relearn_attack(
    model: nn.Module,
    tokenizer,
    forget_qa: Sequence[dict[str, Any]],
    *,
    n_examples: int = 10,
    steps: int = 10,
    lr: float = 1e-3,
    seed: int = 0,
    device=None,
) -> dict[str, float]:
    """Fine-tune a copy of ``model`` for ``steps`` full-batch steps on ``n_examples`` forget QA and report the
    accuracy on the *other* forget questions before and after (Lynch et al. 2024; Hu et al. 2024)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(forget_qa))
    n = min(n_examples, max(1, len(forget_qa) // 2))
    train_rows = [forget_qa[i] for i in order[:n]]
    held = [forget_qa[i] for i in order[n:]] or train_rows
    before = answer_accuracy(answer_questions(model, tokenizer, held, device=device), [r["value"] for r in held])
    attacked = copy.deepcopy(model)
    cfg = LMTrainConfig(epochs=steps, lr=lr, batch_size=n, grad_clip=1.0)
    train_lm(attacked, encode_qa(tokenizer, train_rows), cfg, seed=seed, device=device, progress=False, desc="relearn")
    after = answer_accuracy(answer_questions(attacked, tokenizer, held, device=device), [r["value"] for r in held])
    return {"relearn_before": before, "relearn_after": after}
