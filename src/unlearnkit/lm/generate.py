"""Greedy answers and per-example answer log-probabilities of a causal LM (no gradients)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .encode import LMData, encode_qa, prompt_text
from .losses import shifted_logits, token_logprobs
from .positions import check_width, new_token_budget
from .tokenizer import pad_id

#: new tokens a generated answer may take: open-unlearning's ``configs/generation/default.yaml`` (200)
MAX_NEW_TOKENS = 200


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    batch_size: int = 64,
    device=None,
    first_line: bool = False,
) -> list[str]:
    """Greedy continuations of ``prompts`` (left-padded batches) of up to ``max_new_tokens`` tokens, cut at EOS
    only, as open-unlearning generates (``eval_text_similarity`` in ``src/evals/metrics/utils.py`` with
    ``configs/generation/default.yaml``: greedy, 200 new tokens); ``first_line`` also cuts at the first newline.
    Where a prompt plus ``max_new_tokens`` would pass the model's positions, fewer tokens are generated."""
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    dev = device or next(model.parameters()).device
    model.eval()
    out: list[str] = []
    pad = pad_id(tokenizer)
    for i in range(0, len(prompts), batch_size):
        chunk = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[i : i + batch_size]]
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, c in enumerate(chunk):
            ids[j, width - len(c) :] = torch.tensor(c)
            mask[j, width - len(c) :] = 1
        gen = model.generate(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            max_new_tokens=new_token_budget(model, width, max_new_tokens),
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        for row in gen[:, width:]:
            text = tokenizer.decode(row.tolist(), skip_special_tokens=True)
            out.append(text.split("\n")[0].strip() if first_line else text.strip())
    return out


def answer_questions(model: nn.Module, tokenizer, qa: Sequence[dict[str, Any]], **kw) -> list[str]:
    return greedy_generate(model, tokenizer, [prompt_text(r["question"], tokenizer) for r in qa], **kw)


@torch.no_grad()
def row_logprobs(model: nn.Module, data: LMData, batch_size: int = 64, device=None) -> list[torch.Tensor]:
    """For each row, the log-probabilities of its labelled tokens (a 1-D tensor per row)."""
    dev = device or next(model.parameters()).device
    model.eval()
    rows: list[torch.Tensor] = []
    for i in range(0, len(data), batch_size):
        ids, mask, labels = (t[i : i + batch_size].to(dev) for t in data.tensors())
        check_width(model, ids.shape[1])
        logits, target, valid = shifted_logits(model, ids, mask, labels)
        lp = token_logprobs(logits, target, valid)
        rows += [lp[j][valid[j]].cpu() for j in range(lp.shape[0])]
    return rows


@torch.no_grad()
def row_token_stats(model: nn.Module, data: LMData, batch_size: int = 64, device=None) -> list[dict[str, torch.Tensor]]:
    """Per row: token log-probs plus, per position, the mean and std of log p(z) under the model's own
    next-token distribution (what Min-K%++ normalises with)."""
    dev = device or next(model.parameters()).device
    model.eval()
    rows: list[dict[str, torch.Tensor]] = []
    for i in range(0, len(data), batch_size):
        ids, mask, labels = (t[i : i + batch_size].to(dev) for t in data.tensors())
        check_width(model, ids.shape[1])
        logits, target, valid = shifted_logits(model, ids, mask, labels)
        logp = torch.log_softmax(logits.float(), -1)
        p = logp.exp()
        mu = (p * logp).sum(-1)
        sigma = ((p * logp.pow(2)).sum(-1) - mu.pow(2)).clamp(min=1e-6).sqrt()  # as open-unlearning's Min-K%++
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        for j in range(ids.shape[0]):
            v = valid[j]
            rows.append({"logp": picked[j][v].cpu(), "mu": mu[j][v].cpu(), "sigma": sigma[j][v].cpu()})
    return rows


def qa_logprobs(model: nn.Module, tokenizer, qa: Sequence[dict[str, Any]], answer_key: str = "answer", **kw):
    """Token log-probs of ``record[answer_key]`` given the question, one tensor per record."""
    return row_logprobs(model, encode_qa(tokenizer, qa, answer_key), **kw)


@torch.no_grad()
def row_greedy_predictions(
    model: nn.Module, data: LMData, batch_size: int = 64, device=None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per row, the model's argmax next-token predictions at the labelled positions and the labels there, the
    last labelled token (end of sequence) left out as open-unlearning's ``tokenwise_vocab_logprobs`` does."""
    dev = device or next(model.parameters()).device
    model.eval()
    rows: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i in range(0, len(data), batch_size):
        ids, mask, labels = (t[i : i + batch_size].to(dev) for t in data.tensors())
        check_width(model, ids.shape[1])
        logits, target, valid = shifted_logits(model, ids, mask, labels)
        preds = logits.argmax(-1)
        rows += [(preds[j][valid[j]][:-1].cpu(), target[j][valid[j]][:-1].cpu()) for j in range(ids.shape[0])]
    return rows
