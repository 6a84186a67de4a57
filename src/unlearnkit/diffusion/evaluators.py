"""Evaluators: an object classifier and a style classifier trained on real (transformed) images.

They judge generations (UA, IRA, CRA, attack success) and give the feature space of the Fréchet distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import load, save
from ..data.tensors import Batches, TensorData
from ..engine import Phase, Recipe, train
from ..errors import CheckpointError
from ..losses import cross_entropy
from ..models.cnn import CNN
from ..runtime import resolve_device
from .concepts import ConceptData
from .training import default_cache_dir

AXES = ("object", "style")


@dataclass
class Evaluators:
    """One classifier per concept axis, with their accuracy (percent) on held-out real images."""

    object: nn.Module
    style: nn.Module
    test_accuracy: dict[str, float] = field(default_factory=dict)

    def classifier(self, axis: str) -> nn.Module:
        return self.object if axis == "object" else self.style

    @torch.no_grad()
    def predict(self, axis: str, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        clf = self.classifier(axis).eval()
        dev = next(clf.parameters()).device
        return torch.cat(
            [clf(images[i : i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
        )

    @torch.no_grad()
    def features(self, axis: str, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Penultimate-layer features (the space of the Fréchet distance)."""
        clf = self.classifier(axis).eval()
        dev = next(clf.parameters()).device
        return torch.cat(
            [clf.features(images[i : i + batch_size].to(dev)).cpu() for i in range(0, len(images), batch_size)]
        )


def _accuracy(clf: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    clf.eval()
    dev = next(clf.parameters()).device
    with torch.no_grad():
        pred = torch.cat([clf(x[i : i + 1024].to(dev)).argmax(1).cpu() for i in range(0, len(x), 1024)])
    return 100.0 * float((pred == y).float().mean())


def train_evaluators(
    data: ConceptData,
    test: ConceptData | None = None,
    *,
    epochs: int = 6,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Evaluators:
    """Train the object and style classifiers (small CNNs, Adam, ``epochs`` passes) through the engine."""
    out: dict[str, nn.Module] = {}
    acc: dict[str, float] = {}
    for i, axis in enumerate(AXES):
        torch.manual_seed(seed + i)
        clf = CNN(data.image_shape, len(data.names(axis)))
        td = TensorData(data.images, data.labels(axis))
        recipe = Recipe(epochs=epochs, lr=2e-3, optimizer="adam", weight_decay=0.0, schedule="cosine", batch_size=128)
        phase = Phase(axis, Batches(td, 128, seed=seed + i), cross_entropy)
        train(clf, phase, recipe, device=device, seed=seed + i, progress=progress, desc=f"{axis} evaluator")
        out[axis] = clf.eval()
        if test is not None:
            acc[axis] = _accuracy(clf, test.images, test.labels(axis))
    return Evaluators(out["object"], out["style"], acc)


def cached_evaluators(
    data: ConceptData,
    test: ConceptData | None = None,
    *,
    key: str,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Evaluators:
    """:func:`train_evaluators`, cached under ``<cache_dir>/evaluators-<key>``."""
    root = (Path(cache_dir) if cache_dir else default_cache_dir()) / f"evaluators-{key}-s{seed}"
    dev = resolve_device(device)
    models, acc = {}, {}
    try:
        for axis in AXES:
            clf = CNN(data.image_shape, len(data.names(axis)))
            clf, meta = load(root / axis, model=clf)
            models[axis] = clf.to(dev).eval()
            acc[axis] = meta.get("test_accuracy", float("nan"))
        return Evaluators(models["object"], models["style"], acc)
    except CheckpointError:
        pass
    ev = train_evaluators(data, test, seed=seed, device=device, progress=progress)
    for axis in AXES:
        save(ev.classifier(axis), root / axis, {"test_accuracy": ev.test_accuracy.get(axis)}, overwrite=True)
    return ev
