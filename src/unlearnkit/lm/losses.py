"""Token-level log-probabilities and the losses built on them, for batches ``(input_ids, attention_mask, labels)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encode import IGNORE


def shifted_logits(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
    """``(logits[:, :-1], labels[:, 1:], valid)``: the prediction for each next token and where it counts."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    target = labels[:, 1:]
    return logits, target, target != IGNORE


def token_logprobs(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log p(target token) at every position (0 where not ``valid``)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * valid


def sequence_logprob(model: nn.Module, ids, mask, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of each row's labelled tokens and the number of those tokens."""
    logits, target, valid = shifted_logits(model, ids, mask, labels)
    return token_logprobs(logits, target, valid).sum(1), valid.sum(1)


def nll(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled tokens of a batch (the first three tensors)."""
    ids, mask, labels = batch[:3]
    logits, target, _ = shifted_logits(model, ids, mask, labels)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=IGNORE)


def kl_to_reference(model: nn.Module, reference: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """KL(reference ‖ model) of the next-token distributions, summed over the vocabulary and averaged over *every*
    position of the batch (prompt, answer and padding alike: ``kl_div(..., reduction="batchmean")`` over the
    flattened ``(batch·length, vocab)`` logits), as ``compute_kl_divergence`` in open-unlearning's
    ``src/trainer/utils.py`` (the retain term of GradDiff/NPO with ``retain_loss_type: KL``)."""
    ids, mask = batch[:2]
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    with torch.no_grad():
        ref_logp = torch.log_softmax(reference(input_ids=ids, attention_mask=mask).logits.float(), -1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return kl.sum() / kl.numel()


def retain_term(kind: str, model: nn.Module, reference: nn.Module | None, batch) -> torch.Tensor:
    """The retain regulariser: ``"nll"`` on retain data or ``"kl"`` to the frozen original."""
    if kind == "kl":
        assert reference is not None
        return kl_to_reference(model, reference, batch)
    return nll(model, batch)
