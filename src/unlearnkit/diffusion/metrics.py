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


#: an image is *recognised* as a concept when the evaluator gives that concept at least its confidence threshold:
#: an evaluator's ``confidence_threshold`` when it has one, else this quantile of its top probability on the real
#: images it classifies correctly (:func:`confidence_threshold`) ...
CONFIDENCE_QUANTILE = 0.1
#: ... and never below this probability (an evaluator unsure of real images cannot certify a replacement)
CONFIDENCE_FLOOR = 0.5
#: ... and its evaluator features lie within this quantile of the distances of that concept's real images to their
#: mean (a classifier is confident on images unlike any it was trained on; a broken model's are such images)
TYPICAL_QUANTILE = 0.95
#: a row is ``broken`` when its FD exceeds this many times the real-vs-real noise floor ...
BROKEN_FD_FACTOR = 10.0
#: ... or its IRA falls below this share of the evaluator's accuracy on real images of the same concepts
BROKEN_IRA_SHARE = 0.5
#: a row whose erased-concept images are destroyed (not recognised as anything) at least this often is ``degraded``
DEGRADED_DESTROYED = 20.0


def confidence_threshold(real_probs: torch.Tensor, real_labels: torch.Tensor, q: float = CONFIDENCE_QUANTILE) -> float:
    """The evaluator's own confidence on real images: the ``q`` quantile of its top probability over the real
    images it classifies correctly, at least :data:`CONFIDENCE_FLOOR` (1.0 — nothing recognised — when it
    classifies none correctly)."""
    conf, pred = torch.as_tensor(real_probs).float().max(1)
    right = conf[pred == torch.as_tensor(real_labels)]
    return max(float(torch.quantile(right, q)), CONFIDENCE_FLOOR) if len(right) else 1.0


def recognised(
    probs: torch.Tensor,
    feats: torch.Tensor,
    real_feats: torch.Tensor,
    real_labels: torch.Tensor,
    *,
    threshold: float,
    quantile: float = TYPICAL_QUANTILE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted label, recognised?) per image: recognised when the top probability is at least ``threshold``
    and the image's features are within the ``quantile`` radius of its predicted concept's real images (distance
    to their mean feature). A label with no real images (the erased concept, *unrecognisable*) is never
    recognised."""
    probs, feats = torch.as_tensor(probs).float(), torch.as_tensor(feats).float()
    real_feats, real_labels = torch.as_tensor(real_feats).float(), torch.as_tensor(real_labels)
    if len(probs) != len(feats) or len(real_feats) != len(real_labels):
        raise ConfigError("probabilities and features (and real features and labels) must have as many rows")
    conf, pred = probs.max(1)
    typical = torch.zeros(len(pred), dtype=torch.bool)
    for c in real_labels.unique().tolist():
        ref = real_feats[real_labels == c]
        mu = ref.mean(0)
        radius = torch.quantile((ref - mu).norm(dim=1), quantile)
        hit = pred == c
        typical[hit] = (feats[hit] - mu).norm(dim=1) <= radius
    return pred, (conf >= threshold) & typical


def unlearning_split(
    pred: torch.Tensor, concept: int, none_label: int | None, recognised: torch.Tensor | None = None
) -> tuple[float, float]:
    """UA split into (replaced, destroyed), percent of generations for the erased concept. *Replaced*: classified
    as another concept and ``recognised`` as it (:func:`recognised`; all, when not given); *destroyed*: every
    other generation not classified as the concept — the *unrecognisable* outcome (``none_label``) and images
    recognised as nothing. Their sum is :func:`unlearning_accuracy`; only *replaced* counts as erased."""
    pred = _check(pred)
    not_concept = pred != concept
    other = not_concept & (pred != none_label) if none_label is not None else not_concept
    if recognised is not None:
        other = other & torch.as_tensor(recognised, dtype=torch.bool)
    destroyed = not_concept & ~other
    return 100.0 * float(other.float().mean()), 100.0 * float(destroyed.float().mean())


def quality_flag(metrics: dict[str, float]) -> str:
    """``broken`` when FD exceeds :data:`BROKEN_FD_FACTOR` × the real-vs-real floor (``fd_eval``, ``fd_floor``) or
    IRA falls below :data:`BROKEN_IRA_SHARE` × the evaluator's IRA on real images (``ira_real``); else ``degraded``
    when at least :data:`DEGRADED_DESTROYED` % of the erased concept's images are destroyed; else ``ok``."""
    if metrics["fd_eval"] > BROKEN_FD_FACTOR * metrics["fd_floor"]:
        return "broken"
    if metrics["ira"] < BROKEN_IRA_SHARE * metrics["ira_real"]:
        return "broken"
    return "degraded" if metrics["ua_destroyed"] >= DEGRADED_DESTROYED else "ok"


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
