"""Batched inference helpers (the only place metrics touch a model)."""

from __future__ import annotations

import torch
from torch import nn

from ..data.tensors import TensorData
from ..runtime import resolve_device


@torch.no_grad()
def predict_outputs(
    model: nn.Module, data: TensorData, batch_size: int = 512, device: str | torch.device | None = None
) -> torch.Tensor:
    """Raw model outputs (logits or regression values) for every example, on the CPU, model in eval mode."""
    dev = resolve_device(device) if device is not None else next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    outs = [model(data.x[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(data), batch_size)]
    model.train(was_training)
    if not outs:
        return torch.empty(0)
    return torch.cat(outs)


def predict_proba(model: nn.Module, data: TensorData, batch_size: int = 512) -> torch.Tensor:
    """Softmax probabilities for every example."""
    return torch.softmax(predict_outputs(model, data, batch_size), dim=1)
