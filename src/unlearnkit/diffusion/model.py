"""The miniature text-to-image model: text encoder + cross-attention UNet + the DDPM noise schedule."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..errors import ConfigError
from .text import TextEncoder
from .unet import UNet


def text_context(model: nn.Module, tokens: torch.Tensor | None, context: torch.Tensor | None) -> torch.Tensor:
    """The denoisers' conditioning: a ready text ``context`` as given, else ``model.encode(tokens)``."""
    if context is not None:
        return context
    if tokens is None:
        raise ConfigError("pass prompt token ids or a ready text context")
    return model.encode(tokens)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a :class:`TextToImage` (stored in checkpoints)."""

    vocab_size: int
    image_shape: tuple[int, int, int] = (1, 8, 8)
    base: int = 32
    mults: tuple[int, ...] = (1, 2)
    text_dim: int = 64
    text_layers: int = 1
    heads: int = 4
    max_len: int = 16
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_shape = tuple(self.image_shape)
        self.mults = tuple(self.mults)
        if self.vocab_size < 2:
            raise ConfigError("vocab_size must be >= 2 (padding plus at least one word)")
        if self.base % self.heads or self.text_dim % self.heads:
            raise ConfigError(f"base ({self.base}) and text_dim ({self.text_dim}) must be multiples of heads")

    def to_dict(self) -> dict:
        return asdict(self)


class TextToImage(nn.Module):
    """``model(x_t, t, tokens)`` predicts the noise ε in x_t at integer timesteps t for the prompts ``tokens``.

    ``context=`` skips the text encoder (used by attacks and for sampling many steps with one prompt).
    ``alphas_cumprod`` (ᾱ_t of the linear DDPM schedule) is a buffer, so the schedule travels with the weights.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.text_encoder = TextEncoder(
            config.vocab_size, config.text_dim, config.text_layers, config.heads, config.max_len
        )
        self.unet = UNet(config.image_shape[0], config.base, config.mults, config.text_dim, config.heads)
        betas = torch.linspace(config.beta_start, config.beta_end, config.timesteps, dtype=torch.float64)
        self.register_buffer("alphas_cumprod", torch.cumprod(1.0 - betas, 0).float())

    #: the DDIM sampler clamps its x0 estimate to [-1, 1] (pixel space)
    clip_sample = True

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """Shape of one sample the UNet denoises (pixels here; latents for a VAE pipeline)."""
        return tuple(self.config.image_shape)  # type: ignore[return-value]

    def to_latents(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] → what the UNet denoises (the identity for this pixel-space model)."""
        return images

    def from_latents(self, samples: torch.Tensor) -> torch.Tensor:
        """What the sampler returns → images in [-1, 1] (the identity for this pixel-space model)."""
        return samples

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings of concept-vocabulary token ids (the space prompt attacks optimise in)."""
        return self.text_encoder.token_embedding(ids)

    def encode(
        self,
        tokens: torch.Tensor | None = None,
        *,
        prefix: torch.Tensor | None = None,
        embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Text context of prompts ``tokens``; ``prefix`` (k, dim) or (B, k, dim) input embeddings are put in
        front of every prompt (prompt attacks); ``embeds`` replaces the token lookup entirely."""
        if prefix is not None:
            emb = self.text_encoder.embed(tokens)
            pre = prefix.unsqueeze(0).expand(len(emb), -1, -1) if prefix.ndim == 2 else prefix
            embeds = torch.cat([pre.to(emb.dtype), emb], dim=1)
        return self.text_encoder(tokens, embeds=embeds)

    def null_tokens(self, batch: int, length: int, device: torch.device | None = None) -> torch.Tensor:
        """The empty prompt (all padding) used for classifier-free guidance."""
        return torch.zeros(batch, length, dtype=torch.long, device=device or self.alphas_cumprod.device)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        tokens: torch.Tensor | None = None,
        *,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        context = text_context(self, tokens, context)
        return self.unet(x, t, context)
