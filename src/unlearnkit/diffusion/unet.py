"""A small UNet for noise prediction: residual blocks with a timestep embedding and cross-attention on the text
context at every resolution. Width and depth are arguments, so the same code scales to larger images.

Modules carry the names a diffusers ``UNet2DConditionModel`` uses for the same roles — ``time_embedding``,
``time_emb_proj`` (per residual block), ``attn2.to_q/to_k/to_v/to_out`` (cross-attention), ``conv_in``,
``conv_norm_out``, ``conv_out`` — so the methods choose their parameters by name on either model
(:mod:`unlearnkit.diffusion.groups`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, time_dim: int) -> None:
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(time_dim, cout)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class Attention(nn.Module):
    """Multi-head attention of image positions (queries) over a context (keys/values): ``to_q``, ``to_k``,
    ``to_v``, ``to_out`` as in diffusers' ``Attention``."""

    def __init__(self, ch: int, context_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(ch, ch, bias=False)
        self.to_k = nn.Linear(context_dim, ch, bias=False)
        self.to_v = nn.Linear(context_dim, ch, bias=False)
        self.to_out = nn.Linear(ch, ch)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        return self.to_out(out.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    """Image positions attend to the text context: ``norm2`` then ``attn2`` (the cross-attention that ESD-x
    edits), added back to the input."""

    def __init__(self, ch: int, context_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm2 = _norm(ch)
        self.attn2 = Attention(ch, context_dim, heads)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = self.attn2(self.norm2(x).flatten(2).transpose(1, 2), context)
        return x + out.transpose(1, 2).view(b, c, h, w)


class Level(nn.Module):
    """One resolution of the UNet: a residual block, cross-attention, then a resampling convolution."""

    def __init__(self, cin: int, cout: int, time_dim: int, context_dim: int, heads: int, sample: nn.Module) -> None:
        super().__init__()
        self.resnet = ResBlock(cin, cout, time_dim)
        self.attention = CrossAttention(cout, context_dim, heads)
        self.sample = sample


class UNet(nn.Module):
    """ε-prediction UNet: ``forward(x_t, t, context)``. ``mults`` gives one resolution level per entry."""

    def __init__(
        self,
        in_channels: int = 1,
        base: int = 32,
        mults: Sequence[int] = (1, 2),
        context_dim: int = 64,
        heads: int = 4,
    ) -> None:
        super().__init__()
        time_dim = 4 * base
        self.base = base
        self.time_embedding = nn.Sequential(nn.Linear(base, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.conv_in = nn.Conv2d(in_channels, base, 3, padding=1)
        chans = [base * m for m in mults]
        self.down_blocks = nn.ModuleList()
        ch = base
        for i, c in enumerate(chans):
            last = i == len(chans) - 1
            down = nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1)
            self.down_blocks.append(Level(ch, c, time_dim, context_dim, heads, down))
            ch = c
        self.mid_block = nn.ModuleDict(
            {
                "resnet1": ResBlock(ch, ch, time_dim),
                "attention": CrossAttention(ch, context_dim, heads),
                "resnet2": ResBlock(ch, ch, time_dim),
            }
        )
        self.up_blocks = nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):
            up = nn.Identity() if i == 0 else nn.Conv2d(c, chans[i - 1], 3, padding=1)
            self.up_blocks.append(Level(ch + c, c, time_dim, context_dim, heads, up))
            ch = c if i == 0 else chans[i - 1]
        self.conv_norm_out = _norm(ch)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        temb = self.time_embedding(timestep_embedding(t, self.base))
        h = self.conv_in(x)
        skips = []
        for level in self.down_blocks:
            h = level.attention(level.resnet(h, temb), context)
            skips.append(h)
            h = level.sample(h)
        mid = self.mid_block
        h = mid["resnet2"](mid["attention"](mid["resnet1"](h, temb), context), temb)
        for level in self.up_blocks:
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = level.attention(level.resnet(torch.cat([h, skip], dim=1), temb), context)
            h = level.sample(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))
