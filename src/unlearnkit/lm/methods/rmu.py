"""RMU: representation misdirection of a middle layer on forget data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import ConfigError
from ...methods.base import hp, register
from ...runtime import generator
from ..model import decoder_layers
from .base import LMMethod, LMRequest


def layer_activations(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, layer: int) -> torch.Tensor:
    """Output of transformer block ``layer`` (``hidden_states[layer + 1]``)."""
    return model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer + 1]


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the feature dimension, averaged over the unmasked tokens."""
    per_token = (a.float() - b.float()).pow(2).mean(-1)
    m = mask.to(per_token.dtype)
    return (per_token * m).sum() / m.sum().clamp(min=1)


@register
@dataclass(kw_only=True)
class RMU(LMMethod):
    """RMU (Li et al., "The WMDP Benchmark: Measuring and Reducing Malicious Use with Unlearning", ICML 2024):
    at block ℓ, push the forget activations towards c·u for a fixed random unit vector u (MSE) and keep the
    retain activations at the frozen model's (α·MSE). Only the MLPs of blocks ℓ−2..ℓ train. Published
    setting (Zephyr-7B): ℓ = 7, c = 6.5, α = 1200, lr 5e-5, batch 4; here ``layer=-1`` picks the middle block."""

    name = "rmu"

    lr: float = hp(5e-5, low=0, low_open=True)
    batch_size: int = hp(4, low=1)
    epochs: int = hp(1, low=1)
    layer: int = hp(-1, low=-1, doc="block whose output is steered; -1 = the middle block")
    steering_coeff: float = hp(6.5, low=0, low_open=True)
    alpha: float = hp(1200.0, low=0)
    n_train_layers: int = hp(3, low=1, doc="train the MLPs of this many blocks ending at `layer`")

    def unlearn(self, model: nn.Module, request: LMRequest) -> None:
        if self.lora:
            raise ConfigError("rmu trains the MLPs of chosen blocks directly; run it with lora=False")
        blocks = decoder_layers(model)
        layer = len(blocks) // 2 if self.layer < 0 else self.layer
        if layer >= len(blocks):
            raise ConfigError(f"rmu: layer={layer} but the model has {len(blocks)} blocks; choose 0..{len(blocks) - 1}")
        params = []
        for i in range(max(0, layer - self.n_train_layers + 1), layer + 1):
            params += [p for n, p in blocks[i].named_parameters() if "mlp" in n]
        if not params:
            raise ConfigError("rmu found no MLP parameters in the chosen blocks (names containing 'mlp')")
        ref = request.frozen_original()
        hidden = ref.config.hidden_size if hasattr(ref.config, "hidden_size") else ref.config.n_embd
        u = torch.rand(hidden, generator=generator(self.seed))
        control = (self.steering_coeff * u / u.norm()).to(request.device)

        def loss(m, b):
            f_ids, f_mask, _, r_ids, r_mask, _ = b
            h_f = layer_activations(m, f_ids, f_mask, layer)
            forget = masked_mse(h_f, control.expand_as(h_f), f_mask)
            h_r = layer_activations(m, r_ids, r_mask, layer)
            with torch.no_grad():
                h_ref = layer_activations(ref, r_ids, r_mask, layer)
            return forget + self.alpha * masked_mse(h_r, h_ref, r_mask)

        self.fit_loss(model, request, self.paired_batches(request), loss, params=params)
