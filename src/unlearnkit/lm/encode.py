"""Token tensors for language-model training and scoring.

A QA pair becomes ``PROMPT + " " + answer + EOS`` with the prompt tokens masked out of the labels (-100), so
losses and probabilities are over the answer only. Batches are tuples ``(input_ids, attention_mask, labels)``
that :func:`unlearnkit.engine.train` moves to the device; two streams are zipped into one 6-tuple batch
(forget first, then retain) for methods with a retain term.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data.tensors import Batches, TensorData
from ..errors import DataError
from .tokenizer import pad_id

IGNORE = -100


#: default token budget of one encoded row (prompt + answer); longer rows are cut, with a warning
DEFAULT_MAX_LENGTH = 256
_warned_truncation: set[int] = set()


def prompt_text(question: str, tokenizer=None) -> str:
    """How a question is put to the model: the tokenizer's chat template (one user turn plus the generation
    prompt) when it has one, else ``"Question: ...\nAnswer:"``."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"Question: {question}\nAnswer:"


@dataclass(frozen=True)
class LMData:
    """Right-padded token rows with their attention mask and labels (-100 where no loss is taken)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if not self.input_ids.shape == self.attention_mask.shape == self.labels.shape:
            raise DataError("input_ids, attention_mask and labels must have the same shape")

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.input_ids, self.attention_mask, self.labels

    def subset(self, idx: Sequence[int] | torch.Tensor) -> LMData:
        i = torch.as_tensor(idx, dtype=torch.long)
        return LMData(self.input_ids[i], self.attention_mask[i], self.labels[i])

    @staticmethod
    def concat(parts: Sequence[LMData]) -> LMData:
        width = max(p.input_ids.shape[1] for p in parts)
        padded = [_pad_to(p, width) for p in parts]
        return LMData(*(torch.cat([p.tensors()[k] for p in padded]) for k in range(3)))


def _pad_to(d: LMData, width: int) -> LMData:
    extra = width - d.input_ids.shape[1]
    if extra == 0:
        return d

    def pad(t: torch.Tensor, v: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, extra), value=v)

    return LMData(pad(d.input_ids, 0), pad(d.attention_mask, 0), pad(d.labels, IGNORE))


def _pack(rows: list[tuple[list[int], list[int]]], pad_id: int, max_length: int) -> LMData:
    if not rows:
        raise DataError("nothing to encode: the list of examples is empty")
    longest = max(len(ids) for ids, _ in rows)
    if longest > max_length and max_length not in _warned_truncation:
        _warned_truncation.add(max_length)
        n = sum(len(ids) > max_length for ids, _ in rows)
        warnings.warn(
            f"{n} of {len(rows)} rows are longer than max_length={max_length} tokens (longest {longest}) and are cut; "
            "raise max_length (e.g. --max-length) to keep them whole (this warning is shown once per max_length)",
            stacklevel=3,
        )
    width = min(max_length, longest)
    # a causal LM scores token i from position i - 1, so a row needs a labelled token after its first position
    lost = [labs for _, labs in rows if any(x != IGNORE for x in labs[1:]) and all(x == IGNORE for x in labs[1:width])]
    if lost:
        need = max(next(i for i, x in enumerate(labs) if i > 0 and x != IGNORE) + 1 for labs in lost)
        raise DataError(
            f"{len(lost)} of {len(rows)} rows keep none of their answer tokens within max_length={max_length} (the "
            f"prompt alone fills it), so there is nothing to score; raise max_length (e.g. --max-length) to at least "
            f"{need}, better to the longest row ({longest})"
        )
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (toks, labs) in enumerate(rows):
        toks, labs = toks[:width], labs[:width]
        ids[i, : len(toks)] = torch.tensor(toks)
        mask[i, : len(toks)] = 1
        labels[i, : len(labs)] = torch.tensor(labs)
    return LMData(ids, mask, labels)


#: a text longer than this many characters per token of the budget is cut to a character prefix before it is
#: tokenised (a token of a byte-level or SentencePiece vocabulary rarely spans more than a few characters)
CHARS_PER_TOKEN = 16


def token_ids(tokenizer, text: str, limit: int | None = None) -> list[int]:
    """Token ids of ``text``; with ``limit``, a long text is tokenised from a prefix only: the first
    ``CHARS_PER_TOKEN · limit`` characters, cut back to a space, doubled until the prefix yields more than
    ``limit`` tokens. Only tokens past the first ``limit`` can differ from tokenising the whole text, and a
    10 MB answer costs what a short one does instead of a tokenisation of all of it."""
    if limit is not None:
        cut = CHARS_PER_TOKEN * max(limit, 8)
        while len(text) > cut:
            head = text[:cut]
            space = head.rfind(" ", cut // 2)
            ids = tokenizer(head[:space] if space > 0 else head, add_special_tokens=False)["input_ids"]
            if len(ids) > limit:
                return ids[: limit + 1]
            cut *= 2
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_pairs(
    tokenizer, prompts: Sequence[str], targets: Sequence[str], max_length: int = DEFAULT_MAX_LENGTH
) -> LMData:
    """Encode ``prompt + " " + target + EOS`` with the loss on the target (and EOS) only."""
    if len(prompts) != len(targets):
        raise DataError(f"{len(prompts)} prompts but {len(targets)} targets; give one target per prompt")
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    rows = []
    for p, t in zip(prompts, targets):
        pi, ti = token_ids(tokenizer, p, max_length), token_ids(tokenizer, " " + t, max_length) + eos
        rows.append((pi + ti, [IGNORE] * len(pi) + ti))
    return _pack(rows, pad_id(tokenizer), max_length)


def encode_raw_pairs(
    tokenizer, prompts: Sequence[str], targets: Sequence[str], max_length: int = DEFAULT_MAX_LENGTH
) -> LMData:
    """Encode ``prompt + target + EOS`` as written (no template, no space between), the loss on the target and
    EOS: a text prefix and its true continuation (MUSE's VerbMem rows)."""
    if len(prompts) != len(targets):
        raise DataError(f"{len(prompts)} prompts but {len(targets)} targets; give one target per prompt")
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    rows = []
    for p, t in zip(prompts, targets):
        pi, ti = token_ids(tokenizer, p, max_length), token_ids(tokenizer, t, max_length) + eos
        rows.append((pi + ti, [IGNORE] * len(pi) + ti))
    return _pack(rows, pad_id(tokenizer), max_length)


def encode_qa(
    tokenizer, qa: Sequence[dict[str, Any]], answer_key: str = "answer", max_length: int = DEFAULT_MAX_LENGTH
) -> LMData:
    """QA records → :class:`LMData` scoring ``record[answer_key]`` (e.g. ``paraphrased_answer``)."""
    prompts = [prompt_text(r["question"], tokenizer) for r in qa]
    return encode_pairs(tokenizer, prompts, [r[answer_key] for r in qa], max_length)


def encode_texts(tokenizer, texts: Sequence[dict[str, str]], max_length: int = DEFAULT_MAX_LENGTH) -> LMData:
    """Training texts: ``{"text": ...}`` (loss on every token) or ``{"prompt", "target"}`` (loss on the target)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    rows = []
    for t in texts:
        if "text" in t:
            ids = token_ids(tokenizer, t["text"], max_length) + eos
            rows.append((ids, list(ids)))
        else:
            prompt = prompt_text(t["prompt"], tokenizer)
            pi, ti = token_ids(tokenizer, prompt, max_length), token_ids(tokenizer, " " + t["target"], max_length) + eos
            rows.append((pi + ti, [IGNORE] * len(pi) + ti))
    return _pack(rows, pad_id(tokenizer), max_length)


def split_by_length(data: LMData, factor: float = 2.0) -> list[LMData]:
    """Rows longer than ``factor`` × the median length in a second :class:`LMData` (both trimmed), so that a few
    long texts (biographies) do not pad every batch of short ones (QA); returns the non-empty groups."""
    lengths = data.attention_mask.sum(1)
    long = lengths > factor * lengths.float().median()
    groups = []
    for sel in (~long, long):
        idx = torch.nonzero(sel).flatten()
        if len(idx):
            sub = data.subset(idx)
            groups.append(LMData(*_trim(*sub.tensors())))
    return groups


def _trim(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    width = int(mask.sum(1).max().clamp(min=1))
    return ids[:, :width], mask[:, :width], labels[:, :width]


class LMBatches:
    """Seeded, re-shuffled mini-batches of one or more row-aligned :class:`LMData` (same rows drawn from each),
    each trimmed to its longest row: a 3-tuple per data set, concatenated."""

    def __init__(self, data: LMData | Sequence[LMData], batch_size: int, *, shuffle: bool = True, seed: int = 0):
        self.datas = [data] if isinstance(data, LMData) else list(data)
        if len({len(d) for d in self.datas}) != 1:
            raise DataError("row-aligned data sets must have the same number of rows")
        index = torch.arange(len(self.datas[0]))
        # reuse the project's seeded index stream: x = row index, y unused
        self._order = Batches(TensorData(index, index), batch_size, shuffle=shuffle, seed=seed)

    @property
    def data(self) -> LMData:
        return self.datas[0]

    @property
    def batch_size(self) -> int:
        return self._order.batch_size

    def __len__(self) -> int:
        return len(self._order)

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out: tuple[torch.Tensor, ...] = ()
        for d in self.datas:
            out += _trim(d.input_ids[idx], d.attention_mask[idx], d.labels[idx])
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for idx, _ in self._order:
            yield self.take(idx)
