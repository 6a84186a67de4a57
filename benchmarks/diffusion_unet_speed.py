"""CPU time of one training step (forward + backward, batch 64, 8×8 grey images, 12-token context of width 32)
of the bundled miniature UNet against diffusers ``UNet2DConditionModel`` configurations of similar size.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/diffusion_unet_speed.py [--rounds 7]

Prints parameters and the median / minimum process CPU seconds per step (CPU time, so that other jobs on a
shared machine inflate it less than wall-clock; the models are timed interleaved, round by round).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from unlearnkit.diffusion.unet import UNet
from unlearnkit.errors import require

XATTN_1 = (("CrossAttnDownBlock2D", "DownBlock2D"), ("UpBlock2D", "CrossAttnUpBlock2D"))
XATTN_2 = (("CrossAttnDownBlock2D",) * 2, ("CrossAttnUpBlock2D",) * 2)


def diffusers_unet(blocks=XATTN_1, mid: str | None = "UNetMidBlock2DCrossAttn", widths=(16, 32), **kw) -> nn.Module:
    from diffusers import UNet2DConditionModel

    down, up = blocks
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=widths,
        layers_per_block=1,
        down_block_types=down,
        up_block_types=up,
        mid_block_type=mid,
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
        **kw,
    )


VARIANTS: dict[str, Callable[[], nn.Module]] = {
    "unlearnkit UNet (base 16, mults 1,2)": lambda: UNet(1, 16, (1, 2), 32, 4),
    "diffusers: tiny_pipeline's (x-attn level 1 + x-attn mid)": lambda: diffusers_unet(),
    "diffusers: x-attn both levels + mid": lambda: diffusers_unet(XATTN_2),
    "diffusers: x-attn level 1, no mid block": lambda: diffusers_unet(mid=None),
    "diffusers: x-attn level 1, no mid, widths 8,16": lambda: diffusers_unet(mid=None, widths=(8, 16)),
    "diffusers: x-attn level 1 + mid, widths 8,16": lambda: diffusers_unet(widths=(8, 16)),
    "diffusers: x-attn level 1, no mid, widths 16,16": lambda: diffusers_unet(mid=None, widths=(16, 16)),
    "diffusers: x-attn level 1 + mid, only_cross_attention": lambda: diffusers_unet(only_cross_attention=True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    require("diffusers", extra="diffusion")
    torch.manual_seed(0)
    b = args.batch
    x, t, ctx = torch.randn(b, 1, 8, 8), torch.randint(0, 1000, (b,)), torch.randn(b, 12, 32)
    models = {name: make() for name, make in VARIANTS.items()}

    def step(m: nn.Module) -> None:
        out = m(x, t, ctx) if isinstance(m, UNet) else m(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
        out.pow(2).mean().backward()

    for m in models.values():  # warm-up
        step(m)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, m in models.items():
            start = time.process_time()
            step(m)
            times[name].append(time.process_time() - start)
    print(f"torch threads: {torch.get_num_threads()}; batch {b}; CPU seconds per training step")
    for name, m in models.items():
        ts = sorted(times[name])
        n = sum(p.numel() for p in m.parameters())
        print(f"{name:58s} params {n:7d}  median {ts[len(ts) // 2]:.3f}  min {ts[0]:.3f}")


if __name__ == "__main__":
    main()
