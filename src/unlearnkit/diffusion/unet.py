"""A small UNet for noise prediction: residual blocks with a timestep embedding and cross-attention on the text
context at every resolution. Width and depth are arguments, so the same code scales to larger images."""

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
        self.time = nn.Linear(time_dim, cout)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class CrossAttention(nn.Module):
    """Image positions attend to the text context (queries from pixels, keys/values from tokens).

    These are the parameters ESD-x edits; everything else in the UNet is what ESD-u edits.
    """

    def __init__(self, ch: int, context_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = _norm(ch)
        self.to_q = nn.Linear(ch, ch, bias=False)
        self.to_k = nn.Linear(context_dim, ch, bias=False)
        self.to_v = nn.Linear(context_dim, ch, bias=False)
        self.to_out = nn.Linear(ch, ch)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.to_q(self.norm(x).flatten(2).transpose(1, 2))  # (B, HW, C)
        k, v = self.to_k(context), self.to_v(context)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        out = self.to_out(out.transpose(1, 2).reshape(b, h * w, c))
        return x + out.transpose(1, 2).view(b, c, h, w)


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
        self.time_mlp = nn.Sequential(nn.Linear(base, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.conv_in = nn.Conv2d(in_channels, base, 3, padding=1)
        chans = [base * m for m in mults]
        self.down_blocks, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        ch = base
        for i, c in enumerate(chans):
            self.down_blocks.append(ResBlock(ch, c, time_dim))
            self.down_attn.append(CrossAttention(c, context_dim, heads))
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            ch = c
        self.mid1 = ResBlock(ch, ch, time_dim)
        self.mid_attn = CrossAttention(ch, context_dim, heads)
        self.mid2 = ResBlock(ch, ch, time_dim)
        self.up_blocks, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):
            self.up_blocks.append(ResBlock(ch + c, c, time_dim))
            self.up_attn.append(CrossAttention(c, context_dim, heads))
            self.upsample.append(nn.Identity() if i == 0 else nn.Conv2d(c, chans[i - 1], 3, padding=1))
            ch = c if i == 0 else chans[i - 1]
        self.norm_out = _norm(ch)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.base))
        h = self.conv_in(x)
        skips = []
        for block, attn, down in zip(self.down_blocks, self.down_attn, self.downsample):
            h = attn(block(h, temb), context)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb), context), temb)
        for block, attn, up in zip(self.up_blocks, self.up_attn, self.upsample):
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = attn(block(torch.cat([h, skip], dim=1), temb), context)
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h)))
