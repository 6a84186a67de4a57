"""How much of a GAN's output shows the feature, and how good the rest is.

- *feature share*: percent of generated samples the evaluator classifier assigns to the unlearned class
  (Adapt-then-Unlearn's "percentage of negative samples", judged there by a LeNet-5:
  atriguha/Adapt_Unlearn ``Unlearning/Unlearning_MNIST/image_generator_util_unlearning.py``);
- *FD of the rest*: Fréchet distance, in the evaluator's penultimate features, between the generated samples
  that do not show the feature and the real images of the other classes, with the noise floor of that
  distance (:func:`unlearnkit.diffusion.metrics.frechet_distance` and
  :func:`~unlearnkit.diffusion.metrics.fd_noise_floor`, reused);
- *precision and recall* of the same two sets by k-NN manifolds (Kynkäänniemi et al., 2019, "Improved
  Precision and Recall Metric for Assessing Generative Models"; reference code
  kynkaat/improved-precision-and-recall-metric ``precision_recall.py``: ``ManifoldEstimator`` and
  ``knn_precision_recall_features`` with ``nhood_sizes=[3]``).

The evaluator is the diffusion part's object classifier (:func:`unlearnkit.diffusion.evaluators.
cached_evaluators`: a small CNN with an extra *unrecognisable* outcome), trained on the real images in their
plain style only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..diffusion.concepts import build_concept_data
from ..diffusion.evaluators import Evaluators, cached_evaluators
from ..diffusion.metrics import attack_success_rate, fd_noise_floor, frechet_distance
from ..errors import ConfigError
from .models import GAN
from .train import ImageData


def feature_share(pred: torch.Tensor, feature: int) -> float:
    """Percent of predictions equal to ``feature`` (the share of samples that show it)."""
    return attack_success_rate(pred, feature)


@torch.no_grad()
def feature_probability(
    evaluators: Evaluators, images: torch.Tensor, feature: int, batch_size: int = 1024
) -> torch.Tensor:
    """The object classifier's softmax probability of class ``feature`` for each image (on the CPU)."""
    clf = evaluators.object.eval()
    dev = next(clf.parameters()).device
    return torch.cat(
        [
            clf(images[i : i + batch_size].to(dev)).softmax(1)[:, feature].cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def _sq_distances(a: torch.Tensor, b: torch.Tensor, block: int = 2048) -> torch.Tensor:
    """Pairwise squared Euclidean distances ‖a_i‖² − 2 a_i·b_j + ‖b_j‖², clamped at 0 (float64)."""
    a, b = a.double(), b.double()
    nb = (b * b).sum(1)[None, :]
    rows = [
        ((a[i : i + block] * a[i : i + block]).sum(1)[:, None] - 2 * a[i : i + block] @ b.T + nb).clamp_min(0)
        for i in range(0, len(a), block)
    ]
    return torch.cat(rows)


def knn_radii(features: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Squared distance of each row to its ``k``-th nearest other row (index ``k`` of the sorted distances,
    index 0 being the row itself), the radius of its hypersphere in the manifold estimate."""
    if len(features) <= k:
        raise ConfigError(f"the k-NN manifold needs more than k={k} samples, got {len(features)}")
    d = _sq_distances(features, features)
    return d.kthvalue(k + 1, dim=1).values


def in_manifold(reference: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Whether each query lies inside at least one reference hypersphere (squared distance ≤ radius)."""
    return (_sq_distances(queries, reference) <= radii[None, :]).any(1)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """k-NN precision (share of ``fake`` inside the manifold of ``real``) and recall (share of ``real`` inside
    the manifold of ``fake``), as fractions in [0, 1]."""
    real, fake = torch.as_tensor(real), torch.as_tensor(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(
            f"feature sets must be 2-D with equal widths, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    precision = in_manifold(real, knn_radii(real, k), fake).double().mean()
    recall = in_manifold(fake, knn_radii(fake, k), real).double().mean()
    return float(precision), float(recall)


def evaluator_for(
    data: ImageData,
    test: ImageData | None = None,
    *,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Evaluators:
    """The diffusion part's evaluators trained on ``data``'s images in the plain style (cached); the GAN
    metrics use the ``"object"`` classifier (its class = the image's class)."""
    concept = build_concept_data(data.images, data.labels, data.class_names, name=data.name, styles=("plain",))
    test_concept = None
    if test is not None:
        test_concept = build_concept_data(test.images, test.labels, test.class_names, name=test.name, styles=("plain",))
    digest = hashlib.sha256(np.ascontiguousarray(data.images.numpy()).tobytes()).hexdigest()[:12]
    key = f"gan-{data.name}-{len(data)}-{digest}"
    return cached_evaluators(
        concept, test_concept, key=key, cache_dir=cache_dir, seed=seed, device=device, progress=progress
    )


@dataclass
class RealReference:
    """Evaluator features of the real images without the feature class, and their FD noise floor."""

    features: torch.Tensor
    floor: float
    floor_std: float


def real_reference(
    evaluators: Evaluators, data: ImageData, feature: int, n_samples: int, seed: int = 0
) -> RealReference:
    feats = evaluators.features("object", data.without(feature))
    mean, std = fd_noise_floor(feats, n=n_samples, seed=seed)
    return RealReference(feats, mean, std)


def evaluate_gan(
    gan: GAN,
    evaluators: Evaluators,
    reference: RealReference,
    feature: int,
    *,
    n_samples: int = 2000,
    seed: int = 12345,
    k: int = 3,
    draws: int = 1,
) -> dict[str, float]:
    """Feature share (%), unrecognisable share (%), FD of the rest, precision and recall of the rest (%) for
    ``n_samples`` samples drawn with latent seed ``seed``. With ``draws`` > 1, the shares and the FD are means
    over that many sample sets (latent seeds ``seed``, ``seed + 1``, ...) and ``fd_sd`` is the FD's standard
    deviation across them (the noise of one FD at this sample size); precision and recall use the first set."""
    if draws < 1:
        raise ConfigError(f"draws must be >= 1, got {draws}")
    runs = [_evaluate_once(gan, evaluators, reference, feature, n_samples, seed + i, k, i == 0) for i in range(draws)]
    out = dict(runs[0])
    for key in ("feature_share", "unrecognisable", "fd_rest"):
        out[key] = float(np.mean([r[key] for r in runs]))
    out["fd_sd"] = float(np.std([r["fd_rest"] for r in runs], ddof=1)) if draws > 1 else float("nan")
    out["fd_floor"] = reference.floor
    return out


def _evaluate_once(
    gan: GAN,
    evaluators: Evaluators,
    reference: RealReference,
    feature: int,
    n_samples: int,
    seed: int,
    k: int,
    with_pr: bool,
) -> dict[str, float]:
    images = gan.cpu().sample(n_samples, seed=seed)
    dev = next(evaluators.object.parameters()).device
    pred = evaluators.predict("object", images.to(dev))
    none = evaluators.unrecognisable("object")
    rest = pred != feature
    out = {
        "feature_share": feature_share(pred, feature),
        "unrecognisable": 100.0 * float((pred == none).float().mean()) if none is not None else float("nan"),
        "fd_rest": float("nan"),
        "precision": float("nan"),
        "recall": float("nan"),
    }
    if int(rest.sum()) > k + 1:
        feats = evaluators.features("object", images[rest].to(dev))
        out["fd_rest"] = frechet_distance(feats, reference.features)
        if with_pr:
            p, r = precision_recall(reference.features, feats, k=k)
            out["precision"], out["recall"] = 100.0 * p, 100.0 * r
    return out
