"""RMU: representation misdirection of a middle layer on forget data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ...methods.base import hp, register
from ...methods.context import RunContext
from ...runtime import generator
from ..encode import IGNORE
from ..model import decoder_layers
from .base import LMMethod, LMRequest

#: WMDP's published setting (Zephyr-7B, ``rmu/unlearn.py`` of centerforaisafety/wmdp): a steering vector of fixed
#: norm 6.5 and retain weight 1200, lr 5e-5, batch 4, one pass. Pass it as ``unlearn_lm(..., "rmu", **WMDP_PRESET)``
#: or ``--hp rmu.steering=fixed --hp rmu.steering_coeff=6.5 --hp rmu.alpha=1200 --hp rmu.lr=5e-5 ...``.
WMDP_PRESET: dict[str, float | int | str] = {
    "steering": "fixed",
    "steering_coeff": 6.5,
    "alpha": 1200.0,
    "lr": 5e-5,
    "batch_size": 4,
    "epochs": 1,
}

#: the MLP output projection of one block, by architecture: Llama/Mistral/Qwen/Gemma ``mlp.down_proj``,
#: GPT-2 ``mlp.c_proj``, GPT-NeoX/Pythia ``mlp.dense_4h_to_h``, OPT ``fc2``, Falcon ``mlp.dense_4h_to_h``
DOWN_PROJ_NAMES = ("mlp.down_proj.weight", "mlp.c_proj.weight", "mlp.dense_4h_to_h.weight", "fc2.weight")


def block_output(model: nn.Module, block: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The output hidden states of ``block`` (a forward hook, as ``forward_with_cache`` in open-unlearning's RMU)."""
    cache: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        cache.append(output[0] if isinstance(output, tuple) else output)

    handle = block.register_forward_hook(hook)
    try:
        model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    return cache[0]


def activation_loss(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over the feature dimension, summed over the ``mask``ed tokens of each row, divided
    by that row's token count, then averaged over rows: ``compute_activation_loss`` of open-unlearning's
    ``src/trainer/unlearn/rmu.py`` (``mask`` = labelled tokens) as its comments intend; the code there divides a
    ``(b,)`` sum by ``(b, 1)`` counts, which broadcasts to mean(sums)·mean(1/counts) and differs when rows have
    different numbers of labelled tokens."""
    per_token = (a.float() - b.float()).pow(2).mean(-1) * mask.to(torch.float32)
    return (per_token.sum(1) / mask.sum(1).to(torch.float32)).mean()


@torch.no_grad()
def activation_scale(model: nn.Module, block: nn.Module, data, batch_size: int = 32) -> tuple[float, float]:
    """``(mean norm, mean square)`` of ``block``'s output over the labelled tokens of ``data`` (an ``LMData``):
    the mean L2 norm of a token's activation vector and the mean of its squared entries (= mean squared norm / d)."""
    norm_sum, sq_sum, count = 0.0, 0.0, 0
    device = next(model.parameters()).device
    for i in range(0, len(data), batch_size):
        ids = data.input_ids[i : i + batch_size].to(device)
        mask = data.attention_mask[i : i + batch_size].to(device)
        keep = (data.labels[i : i + batch_size] != IGNORE).to(device)
        h = block_output(model, block, ids, mask).float()[keep]
        norm_sum += float(h.norm(dim=-1).sum())
        sq_sum += float(h.pow(2).mean(-1).sum())
        count += int(h.shape[0])
    if not count:
        raise ConfigError("rmu: the forget data have no labelled tokens to measure the activation scale on")
    return norm_sum / count, sq_sum / count


def rmu_parameters(blocks: nn.ModuleList, layers: range, scope: str) -> list[nn.Parameter]:
    """The parameters RMU trains in ``layers``: the MLP output projection weight (``scope="down_proj"``, WMDP's
    ``model.layers.{ℓ-2,ℓ-1,ℓ}.mlp.down_proj.weight``) or every MLP parameter (``"mlp"``)."""
    params = []
    for i in layers:
        named = dict(blocks[i].named_parameters())
        if scope == "down_proj":
            hit = [named[n] for n in DOWN_PROJ_NAMES if n in named]
            if not hit:
                raise ConfigError(
                    f"rmu: block {i} has none of {', '.join(DOWN_PROJ_NAMES)}; pass param_scope='mlp' to train "
                    f"every parameter whose name contains 'mlp' (block parameters: {', '.join(list(named)[:8])} ...)"
                )
            params += hit[:1]
        else:
            params += [p for n, p in named.items() if "mlp" in n]
    if not params:
        raise ConfigError("rmu found no MLP parameters in the chosen blocks (names containing 'mlp')")
    return params


@register
@dataclass(kw_only=True, frozen=True)
class RMU(LMMethod):
    """RMU (Li et al., "The WMDP Benchmark: Measuring and Reducing Malicious Use with Unlearning", ICML 2024;
    code ``rmu/unlearn.py`` of centerforaisafety/wmdp, as ported to open-unlearning's
    ``src/trainer/unlearn/rmu.py``): at block ℓ, push the forget activations towards c·u for a fixed random
    vector u scaled to norm c (MSE) and keep the retain activations at the frozen model's (α·MSE), both averaged
    over labelled tokens per row. Only ``mlp.down_proj.weight`` (or the architecture's equivalent) of blocks
    ℓ−2..ℓ trains, as in WMDP; ``param_scope="mlp"`` trains every MLP parameter of those blocks instead.
    Published setting (Zephyr-7B): ℓ = 7, c = 6.5, α = 1200, lr 5e-5, batch 4 (:data:`WMDP_PRESET`, with
    ``steering="fixed"``); ``layer=-1`` picks the middle block.

    Default ``steering="norm"``: a fixed ``c`` means different things in models whose activations at ℓ have
    different norms (6.5 is small against a GPT-2's middle-layer norms and leaves it unchanged), so ``c`` is
    ``steering_scale ×`` the frozen model's mean token-activation norm at ℓ on the forget data — the adaptive
    coefficient of Dang et al., "On Effects of Steering Latent Representation for Large Language Model
    Unlearning" (AAAI 2025) — and both loss terms are divided by the frozen model's mean squared activation entry
    there, so ``alpha`` weighs two quantities measured in the model's own activation scale and keeps its meaning
    across model sizes. ``steering_scale`` 4 and ``alpha`` 10 were chosen on the tiny benchmark model
    (``benchmarks/lm_defaults.py``; with lr 3e-3 × 10 epochs they forget without losing retain accuracy there, see
    ``benchmarks/RESULTS.md``)."""

    name = "rmu"

    lr: float = hp(5e-5, low=0, low_open=True)
    batch_size: int = hp(4, low=1)
    epochs: int = hp(1, low=1)
    layer: int = hp(-1, low=-1, doc="block whose output is steered; -1 = the middle block")
    steering: str = hp(
        "norm",
        choices=("norm", "fixed"),
        doc="norm: c = steering_scale × the activation norm at the layer; fixed: c = steering_coeff (WMDP)",
    )
    steering_scale: float = hp(4.0, low=0, low_open=True, doc="with steering='norm': c in units of the mean norm")
    steering_coeff: float = hp(6.5, low=0, low_open=True, doc="with steering='fixed': the norm c of the target")
    alpha: float = hp(10.0, low=0, doc="retain weight (WMDP: 1200 with steering='fixed')")
    forget_weight: float = hp(1.0, low=0, doc="γ, the weight of the steering term")
    n_train_layers: int = hp(3, low=1, doc="train blocks layer-n+1 .. layer")
    param_scope: str = hp("down_proj", choices=("down_proj", "mlp"), doc="which weights of those blocks train")

    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> dict[str, Any]:
        if self.lora:
            raise ConfigError("rmu trains the MLPs of chosen blocks directly; run it with lora=False")
        blocks = decoder_layers(model)
        layer = len(blocks) // 2 if self.layer < 0 else self.layer
        if layer >= len(blocks):
            raise ConfigError(f"rmu: layer={layer} but the model has {len(blocks)} blocks; choose 0..{len(blocks) - 1}")
        params = rmu_parameters(blocks, range(max(0, layer - self.n_train_layers + 1), layer + 1), self.param_scope)
        ref = request.frozen_original()
        ref_block = decoder_layers(ref)[layer]
        hidden = ref.config.hidden_size if hasattr(ref.config, "hidden_size") else ref.config.n_embd
        u = torch.rand(hidden, generator=generator(self.seed))
        coeff, unit = self.steering_coeff, 1.0
        if self.steering == "norm":
            norm, mean_sq = activation_scale(ref, ref_block, request.forget)
            coeff, unit = self.steering_scale * norm, max(mean_sq, 1e-12)
        control = (coeff * u / u.norm()).to(request.device)
        resolved = {"steering_coeff": float(coeff), "loss_unit": float(unit)}

        def loss(m, b):
            f_ids, f_mask, f_lab, r_ids, r_mask, r_lab = b
            block = decoder_layers(m)[layer]
            h_f = block_output(m, block, f_ids, f_mask)
            forget = activation_loss(h_f, control.expand_as(h_f), f_lab != IGNORE)
            h_r = block_output(m, block, r_ids, r_mask)
            with torch.no_grad():
                h_ref = block_output(ref, ref_block, r_ids, r_mask)
            retain = activation_loss(h_r, h_ref, r_lab != IGNORE)
            return (self.forget_weight * forget + self.alpha * retain) / unit

        chosen = {id(p) for p in params}
        frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in chosen]
        for p in frozen:  # no gradients for the weights that do not train (memory and time)
            p.requires_grad_(False)
        try:
            self.fit_loss(ctx, model, request, self.paired_batches(request), loss, params=params)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return {"resolved": resolved}
