"""How many token positions a causal LM can take, and the check that a batch fits them.

A learned position table (GPT-2's ``wpe``, OPT's ``embed_positions``, BERT-style ``position_embeddings``) indexed
past its end fails deep inside the model with an ``IndexError`` (or a device-side assert); that is caught here,
before the forward pass, as a :class:`~unlearnkit.errors.DataError` that names the width and the fix. Rotary and
ALiBi models (Llama, Mistral, …) compute positions on the fly and take longer rows, so no limit is imposed there."""

from __future__ import annotations

from torch import nn

from ..errors import DataError

_TABLE_NAMES = ("wpe", "embed_positions", "position_embeddings")


def max_positions(model: nn.Module) -> int | None:
    """The positions of the model's learned position table: the config's ``max_position_embeddings`` (GPT-2's
    ``n_positions`` answers to that name too), or the table's size when the config does not say; ``None`` for a
    model without such a table."""
    tables = [
        m for name, m in model.named_modules() if isinstance(m, nn.Embedding) and name.split(".")[-1] in _TABLE_NAMES
    ]
    if not tables:
        return None
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return min(int(t.num_embeddings) for t in tables)


def check_width(model: nn.Module, width: int, what: str = "rows") -> None:
    """Raise :class:`DataError` when ``width`` tokens exceed the model's positions."""
    limit = max_positions(model)
    if limit is not None and width > limit:
        raise DataError(
            f"{what} of {width} tokens exceed the model's {limit} positions (max_position_embeddings); "
            f"pass max_length <= {limit} (--max-length {limit}) or shorter texts"
        )


def new_token_budget(model: nn.Module, prompt_width: int, max_new_tokens: int) -> int:
    """``max_new_tokens``, lowered so that prompt plus continuation fit the model's positions; a prompt that
    alone fills them raises :class:`DataError`."""
    limit = max_positions(model)
    if limit is None:
        return max_new_tokens
    check_width(model, prompt_width + 1, "prompts (plus one generated token)")
    return min(max_new_tokens, limit - prompt_width)
