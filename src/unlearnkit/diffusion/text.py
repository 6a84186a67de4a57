"""A tiny text encoder: token and position embeddings followed by 1–2 transformer layers."""

from __future__ import annotations

import torch
from torch import nn


class TextEncoder(nn.Module):
    """Maps token ids (B, L) — or ready token embeddings (B, L, dim) — to a context (B, L, dim).

    Accepting embeddings lets attacks feed relaxed or continuous prompts through the same layers.
    """

    def __init__(self, vocab_size: int, dim: int = 64, layers: int = 1, heads: int = 4, max_len: int = 16) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.normal_(self.position_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dim = dim
        self.max_len = max_len

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(tokens)

    def forward(self, tokens: torch.Tensor | None = None, *, embeds: torch.Tensor | None = None) -> torch.Tensor:
        if embeds is None:
            embeds = self.token_embedding(tokens)
        length = embeds.shape[1]
        if length > self.max_len:
            raise ValueError(f"prompt of {length} tokens is longer than the encoder's max_len {self.max_len}")
        return self.norm(self.layers(embeds + self.position_embedding[:length]))
