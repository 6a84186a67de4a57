"""Per-example scores an attacker reads from a model's outputs (vectorised NumPy, no model in sight)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError


def _arrays(logits: object, labels: object | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    z = torch.as_tensor(logits).detach().cpu().double().numpy() if not isinstance(logits, np.ndarray) else logits
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise DataError(f"expected logits shaped (examples, classes), got shape {z.shape}")
    if labels is None:
        return z, None
    y = np.asarray(torch.as_tensor(labels).cpu().numpy() if not isinstance(labels, np.ndarray) else labels)
    if y.shape != (z.shape[0],):
        raise DataError(f"expected one label per example ({z.shape[0]}), got shape {y.shape}")
    return z, y.astype(np.int64)


def log_softmax(logits: object) -> np.ndarray:
    z, _ = _arrays(logits)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def logit_confidence(logits: object, labels: object) -> np.ndarray:
    """LiRA's logit-scaled confidence φ = log p_y − log Σ_{c≠y} p_c, computed stably from logits."""
    z, y = _arrays(logits, labels)
    rows = np.arange(len(y))
    zy = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    m = others.max(axis=1)
    return zy - (m + np.log(np.exp(others - m[:, None]).sum(axis=1)))


def true_class_probability(logits: object, labels: object) -> np.ndarray:
    """p(true class) per example."""
    z, y = _arrays(logits, labels)
    return np.exp(log_softmax(z)[np.arange(len(y)), y])


def cross_entropy_loss(logits: object, labels: object) -> np.ndarray:
    """Per-example cross-entropy −log p_y."""
    z, y = _arrays(logits, labels)
    return -log_softmax(z)[np.arange(len(y)), y]


def prediction_entropy(logits: object) -> np.ndarray:
    """Shannon entropy of the predicted distribution, in nats."""
    lp = log_softmax(logits)
    return -(np.exp(lp) * lp).sum(axis=1)
