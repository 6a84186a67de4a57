"""Causal validation of located concept vectors (ConceptVectors ``Concept_Validation_Experiments.ipynb``).

The reference answers the concept's questions and unrelated questions (those of 5 other concepts) greedily, adds
N(0, 0.1²) noise to the concept vector, answers again, and scores the noisy answers against the clean ones with
BLEU and ROUGE-L: a real concept vector changes its own answers and leaves the unrelated ones alone. Here the same
is measured with ROUGE-L F1 against the clean answers and, because the QA of this package has known answers, with
answer accuracy; the same noise on as many random value vectors of the same layers is the control (the
localisation test the paper's figure makes against random vectors).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..encode import encode_qa
from ..generate import answer_questions, row_logprobs
from ..metrics import answer_accuracy
from ..metrics.rouge import mean_rouge_l_f1
from .ablate import ablate_vectors
from .locate import random_locations


def _answers(model: nn.Module, tokenizer, qa: Sequence[dict[str, Any]], device=None) -> list[str]:
    return answer_questions(model, tokenizer, qa, device=device) if qa else []


def answer_logprob(model: nn.Module, tokenizer, qa: Sequence[dict[str, Any]], device=None) -> float:
    """Mean per-token log-probability of the true answers given their questions."""
    if not qa:
        return float("nan")
    rows = row_logprobs(model, encode_qa(tokenizer, qa), device=device)
    return float(torch.cat(rows).mean())


def noise_validation(
    model: nn.Module,
    tokenizer,
    locations: Sequence[tuple[int, int]],
    concept_qa: Sequence[dict[str, Any]],
    unrelated_qa: Sequence[dict[str, Any]],
    *,
    noise_std: float = 0.1,
    mode: str = "noise",
    token_ids: Sequence[int] | None = None,
    seed: int = 0,
    control: bool = True,
    device=None,
) -> dict[str, float]:
    """Accuracy of the concept's and the unrelated QA before and after ablating ``locations`` (on copies; ``model``
    is not changed), the mean log-probability of their true answers, ROUGE-L F1 of the ablated model's answers
    against the clean ones, and with ``control`` the same for random vectors of the same layers (``random_*``)."""
    clean_c, clean_u = _answers(model, tokenizer, concept_qa, device), _answers(model, tokenizer, unrelated_qa, device)
    vc, vu = [r["value"] for r in concept_qa], [r["value"] for r in unrelated_qa]
    out = {
        "concept_acc_before": answer_accuracy(clean_c, vc) if vc else float("nan"),
        "unrelated_acc_before": answer_accuracy(clean_u, vu) if vu else float("nan"),
        "concept_logp_before": answer_logprob(model, tokenizer, concept_qa, device),
        "unrelated_logp_before": answer_logprob(model, tokenizer, unrelated_qa, device),
    }
    runs = [("", list(locations))]
    if control:
        runs.append(("random_", random_locations(model, list(locations), seed=seed)))
    for prefix, locs in runs:
        m = ablate_vectors(
            copy.deepcopy(model), locs, mode=mode, noise_std=noise_std, token_ids=token_ids, seed=seed
        ).eval()
        gc, gu = _answers(m, tokenizer, concept_qa, device), _answers(m, tokenizer, unrelated_qa, device)
        out[f"{prefix}concept_acc_after"] = answer_accuracy(gc, vc) if vc else float("nan")
        out[f"{prefix}unrelated_acc_after"] = answer_accuracy(gu, vu) if vu else float("nan")
        out[f"{prefix}concept_logp_after"] = answer_logprob(m, tokenizer, concept_qa, device)
        out[f"{prefix}unrelated_logp_after"] = answer_logprob(m, tokenizer, unrelated_qa, device)
        out[f"{prefix}concept_rouge_vs_clean"] = mean_rouge_l_f1(gc, clean_c) if gc else float("nan")
        out[f"{prefix}unrelated_rouge_vs_clean"] = mean_rouge_l_f1(gu, clean_u) if gu else float("nan")
        del m
    return out
