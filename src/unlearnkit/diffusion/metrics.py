"""Generation metrics as pure functions of evaluator predictions and features (UnlearnCanvas-style)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from ..errors import ConfigError


def _check(pred: torch.Tensor) -> torch.Tensor:
    pred = torch.as_tensor(pred)
    if pred.numel() == 0:
        raise ConfigError("no predictions given; generate at least one image")
    return pred


def unlearning_accuracy(pred: torch.Tensor, concept: int) -> float:
    """UA: percent of generations for the erased concept that the evaluator does *not* classify as it."""
    pred = _check(pred)
    return 100.0 * float((pred != concept).float().mean())


def unlearning_split(pred: torch.Tensor, concept: int, none_label: int | None) -> tuple[float, float]:
    """UA split into (replaced, destroyed), percent: generations for the erased concept classified as another
    concept, and classified as *unrecognisable* (``none_label``); their sum is :func:`unlearning_accuracy`."""
    pred = _check(pred)
    not_concept = pred != concept
    destroyed = (pred == none_label) if none_label is not None else torch.zeros_like(not_concept)
    return 100.0 * float((not_concept & ~destroyed).float().mean()), 100.0 * float(destroyed.float().mean())


def attack_success_rate(pred: torch.Tensor, concept: int) -> float:
    """ASR: percent of generations (from attacked or plain prompts) classified as the erased concept."""
    pred = _check(pred)
    return 100.0 * float((pred == concept).float().mean())


def retain_accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """IRA / CRA: percent of generations classified as the concept their prompt asked for."""
    pred, target = _check(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ConfigError(f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape")
    return 100.0 * float((pred == target).float().mean())


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples):
    ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½). In an evaluator's feature space this is *not* Inception FID."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ConfigError(f"feature sets must be 2-D with equal widths, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ConfigError("the Fréchet distance needs at least 2 samples per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    # Tr((Σ_a Σ_b)^½) = Σ √λ_i of the symmetric PSD matrix Σ_a^½ Σ_b Σ_a^½ (stable for singular covariances)
    w, v = linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = linalg.eigvalsh(root_a @ cov_b @ root_a)
    tr_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
    d = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean)
    return max(d, 0.0)


def fd_noise_floor(real: torch.Tensor | np.ndarray, n: int, draws: int = 5, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation over ``draws`` of the Fréchet distance between two disjoint random sets of
    ``n`` real feature rows: the distance two samples of the *same* distribution show at this sample size, below
    which a model's FD difference is noise."""
    real = np.asarray(real, dtype=np.float64)
    n = min(n, len(real) // 2)
    if n < 2:
        raise ConfigError("the noise floor needs at least 4 real feature rows")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        perm = rng.permutation(len(real))
        values.append(frechet_distance(real[perm[:n]], real[perm[n : 2 * n]]))
    return float(np.mean(values)), float(np.std(values, ddof=1)) if draws > 1 else 0.0


def changed_storage_mb(original: torch.nn.Module, edited: torch.nn.Module) -> float:
    """Megabytes of the parameter tensors that differ between two models (what an edit must ship), matched by the
    *original's* parameter names: a one-step generator (``sfd``) is compared through the network it wraps, so
    its ``net.`` prefix does not make every tensor look new."""
    ref = dict(_network(original).named_parameters())
    total = 0
    for n, p in _network(edited).named_parameters():
        q = ref.get(n)
        if q is None or q.shape != p.shape or not torch.equal(q.detach().cpu(), p.detach().cpu()):
            total += p.numel() * p.element_size()
    return total / 2**20


def _network(model: torch.nn.Module) -> torch.nn.Module:
    """The text-to-image network under any one-step wrapper (``OneStepGenerator.net``)."""
    while getattr(model, "one_step", False) and isinstance(getattr(model, "net", None), torch.nn.Module):
        model = model.net
    return model
