"""Accuracy-type metrics, in percent; pure functions of predictions and labels."""

from __future__ import annotations

import numpy as np
import torch


def accuracy(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Percentage of examples whose arg-max prediction equals the label (nan for no examples)."""
    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels)
    if labels.numel() == 0:
        return float("nan")
    return 100.0 * (logits.argmax(dim=1) == labels).float().mean().item()


def unlearning_accuracy(forget_logits: torch.Tensor, forget_labels: torch.Tensor) -> float:
    """UA = 100 − accuracy on the forget set."""
    return 100.0 - accuracy(forget_logits, forget_labels)


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Accuracy per class in percent (nan for classes with no example)."""
    pred = torch.as_tensor(logits).argmax(dim=1)
    labels = torch.as_tensor(labels)
    out = []
    for c in range(num_classes):
        sel = labels == c
        out.append(100.0 * (pred[sel] == c).float().mean().item() if sel.any() else float("nan"))
    return out


def true_class_confidence(probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """p(true class) per example."""
    return torch.as_tensor(probs).gather(1, torch.as_tensor(labels).long()[:, None]).squeeze(1).numpy()
