"""A byte-level BPE tokenizer trained on the benchmark corpus with Hugging Face ``tokenizers``."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigError, require

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 1):
    """Train a byte-level BPE on ``texts`` and wrap it as a ``transformers`` fast tokenizer.

    The result has an end-of-text token (also used as BOS) and a separate padding token, and can be saved with
    ``save_pretrained`` and re-loaded with ``AutoTokenizer.from_pretrained``."""
    if vocab_size < 300:
        raise ConfigError(f"vocab_size must be >= 300 for a byte-level BPE (256 bytes + specials), got {vocab_size}")
    tk = require("tokenizers", extra="lm")
    transformers = require("transformers", extra="lm")
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS, PAD],
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=None, pad_token=PAD
    )


def ensure_pad_token(tokenizer) -> None:
    """Real checkpoints often ship without a padding token; reuse EOS for padding then (labels mask it)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first")
        tokenizer.pad_token = tokenizer.eos_token


def pad_id(tokenizer) -> int:
    """The id that pads rows: the tokenizer's pad token, else its EOS (GPT-2's tokenizer as loaded has no pad
    token), else 0. Padding is masked out of attention and labels, so its id never reaches a score; the
    tokenizer itself is left unchanged."""
    for token_id in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if token_id is not None:
            return int(token_id)
    return 0
