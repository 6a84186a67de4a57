"""Blindspot unlearning for regression (and attention transfer from a partially trained proxy)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.tensors import TensorData
from ..engine import Batch, Phase, Recipe, train
from ..errors import ModelError
from ..models.utils import reinitialize
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid)


class ActivationTap:
    """Records the outputs of every activation module of a model during its forward passes."""

    def __init__(self, model: nn.Module) -> None:
        self.outputs: list[torch.Tensor] = []
        mods = [m for m in model.modules() if isinstance(m, ACTIVATIONS)]
        if not mods:
            raise ModelError(
                f"{type(model).__name__} has no activation modules (nn.ReLU, nn.GELU, …) to read intermediate "
                "activations from; build its non-linearities as modules instead of functional calls"
            )
        self.handles = [m.register_forward_hook(self._keep) for m in mods]

    def _keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.outputs.append(output.clone() if getattr(module, "inplace", False) else output)

    def take(self) -> list[torch.Tensor]:
        out, self.outputs = self.outputs, []
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def attention_map(a: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis' activation-based attention: channel-mean of squares (element-wise squares
    for flat activations), flattened and L2-normalised per example."""
    m = a.pow(2).mean(dim=1) if a.ndim > 2 else a.pow(2)
    return nn.functional.normalize(m.flatten(1), dim=1)


def attention_transfer(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Σ over layers of the mean squared distance between normalised attention maps."""
    return sum(
        (attention_map(s) - attention_map(t).detach()).pow(2).sum(dim=1).mean() for s, t in zip(student, teacher)
    )


class BlindspotLoss:
    """Batches carry (x, [target…, is_forget]); retain rows: L1 to targets; forget rows: L1 to the proxy's
    output + β·attention transfer to the proxy's activations; weighted by the batch's forget fraction."""

    def __init__(self, proxy: nn.Module, model_tap: ActivationTap, proxy_tap: ActivationTap, beta: float) -> None:
        self.proxy, self.model_tap, self.proxy_tap, self.beta = proxy, model_tap, proxy_tap, beta

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, packed = batch[0], batch[1]
        target, is_forget = packed[:, :-1], packed[:, -1].bool()
        self.model_tap.take()
        out = model(x).reshape(len(x), -1)
        acts = self.model_tap.take()
        frac = is_forget.float().mean()
        loss = out.new_zeros(())
        keep = ~is_forget
        if keep.any():
            loss = loss + (1 - frac) * nn.functional.l1_loss(out[keep], target[keep].to(out.dtype))
        if is_forget.any():
            with torch.no_grad():
                self.proxy_tap.take()
                p_out = self.proxy(x[is_forget]).reshape(int(is_forget.sum()), -1)
                p_acts = self.proxy_tap.take()
            at = attention_transfer([a[is_forget] for a in acts], p_acts)
            loss = loss + frac * (nn.functional.l1_loss(out[is_forget], p_out) + self.beta * at)
        return loss


def l1_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    out = model(batch[0])
    y = batch[1]
    return nn.functional.l1_loss(out.reshape(y.shape), y.to(out.dtype))


@register
@dataclass(kw_only=True, frozen=True)
class Blindspot(Method):
    """Blindspot unlearning (Tarun et al., "Deep Regression Unlearning", ICML 2023).

    A freshly initialised proxy ("blindspot" model) is trained on D_r for ``proxy_epochs`` (2), so it never
    saw D_f. The original is then trained for 1 epoch on D_r ∪ D_f: retain rows with L1 to their targets,
    forget rows with L1 to the proxy's output plus ``beta`` (50) × attention transfer between the model's
    and the proxy's intermediate activations; the two parts are weighted by the forget fraction of each
    batch. Adam lr 1e-3 and batch 32 are our defaults for the optimiser.
    """

    name = "blindspot"
    needs_retain = True
    tasks = ("regression",)
    reference_epochs = 1

    epochs: int = hp(1, low=1)
    proxy_epochs: int = hp(2, low=1)
    beta: float = hp(50.0, low=0)
    lr: float = hp(1e-3, low=0, low_open=True)
    optimizer: str = hp("adam", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, low=0)
    batch_size: int = hp(32, low=1)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        import copy

        proxy = (
            request.model_factory()
            if request.model_factory is not None
            else reinitialize(copy.deepcopy(model), self.seed)
        )
        proxy.to(request.device)
        train(
            proxy,
            Phase("proxy", self.batches(request.retain, salt=2), l1_loss),
            Recipe(**{**self.recipe().to_dict(), "epochs": self.proxy_epochs}),
            device=request.device,
            seed=self.seed,
            progress=request.progress,
            desc=f"{self.name}-proxy",
        )
        proxy.eval()
        for p in proxy.parameters():
            p.requires_grad_(False)

        def packed(d: TensorData, flag: float) -> TensorData:
            y = d.y.reshape(len(d), -1).float()
            return TensorData(d.x, torch.cat([y, torch.full((len(d), 1), flag)], dim=1))

        mixed = TensorData.concat([packed(request.retain, 0.0), packed(request.forget, 1.0)])
        model_tap, proxy_tap = ActivationTap(model), ActivationTap(proxy)
        try:
            loss = BlindspotLoss(proxy, model_tap, proxy_tap, self.beta)
            ctx.fit(self, model, Phase("blindspot", self.batches(mixed), loss), request)
        finally:
            model_tap.remove()
            proxy_tap.remove()
        return Outcome(model)
