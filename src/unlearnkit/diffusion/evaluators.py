"""Evaluators: an object classifier and a style classifier trained on real (transformed) images.

They judge generations (UA, IRA, CRA, attack success) and give the feature space of the Fréchet distance.
Each has one extra outcome, *unrecognisable* (label ``len(names)``), trained on synthetic images that show no
object — constant grey levels, Gaussian noise and smooth random blobs — so that a destroyed generation is
reported as destroyed instead of as whichever concept a blank image happens to resemble.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
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
    #: label of the "unrecognisable" outcome per axis (None: the classifier has no such outcome)
    none_label: dict[str, int | None] = field(default_factory=dict)

    def unrecognisable(self, axis: str) -> int | None:
        return self.none_label.get(axis)

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
    def probabilities(self, axis: str, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Softmax over the classes (the *unrecognisable* outcome last): the evaluator's confidence."""
        clf = self.classifier(axis).eval()
        dev = next(clf.parameters()).device
        return torch.cat(
            [clf(images[i : i + batch_size].to(dev)).softmax(1).cpu() for i in range(0, len(images), batch_size)]
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


def unrecognisable_images(n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """``n`` images in [-1, 1] that show nothing: a third constant (random level), a third Gaussian noise
    (random σ around a random mean), a third smooth random blobs (4×4 or 2×2 noise upsampled bilinearly)."""
    gen = torch.Generator().manual_seed(seed)
    c, h, w = shape
    kinds = torch.arange(n) % 3
    out = torch.empty(n, c, h, w)
    for i in range(n):
        level = float(torch.rand(1, generator=gen)) * 2 - 1
        if kinds[i] == 0:
            out[i] = level
        elif kinds[i] == 1:
            sigma = 0.1 + 0.9 * float(torch.rand(1, generator=gen))
            out[i] = level + sigma * torch.randn(c, h, w, generator=gen)
        else:
            side = 2 if float(torch.rand(1, generator=gen)) < 0.5 else 4
            low = torch.randn(1, c, side, side, generator=gen)
            out[i] = level + 0.7 * F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out.clamp(-1, 1)


def _share(clf: nn.Module, x: torch.Tensor, label: int) -> float:
    """Percent of ``x`` the classifier assigns to ``label``."""
    return _accuracy(clf, x, torch.full((len(x),), label, dtype=torch.long))


def train_evaluators(
    data: ConceptData,
    test: ConceptData | None = None,
    *,
    epochs: int = 6,
    none_share: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Evaluators:
    """Train the object and style classifiers (small CNNs, Adam, ``epochs`` passes) through the engine, each
    with the extra *unrecognisable* class (``none_share`` × the data size of synthetic images, see
    :func:`unrecognisable_images`)."""
    out: dict[str, nn.Module] = {}
    acc: dict[str, float] = {}
    n_none = max(1, int(none_share * len(data)))
    blanks = unrecognisable_images(n_none, data.image_shape, seed=seed)
    for i, axis in enumerate(AXES):
        torch.manual_seed(seed + i)
        k = len(data.names(axis))
        clf = CNN(data.image_shape, k + 1)
        x = torch.cat([data.images, blanks])
        y = torch.cat([data.labels(axis), torch.full((n_none,), k, dtype=torch.long)])
        td = TensorData(x, y)
        recipe = Recipe(epochs=epochs, lr=2e-3, optimizer="adam", weight_decay=0.0, schedule="cosine", batch_size=128)
        phase = Phase(axis, Batches(td, 128, seed=seed + i), cross_entropy)
        train(clf, phase, recipe, device=device, seed=seed + i, progress=progress, desc=f"{axis} evaluator")
        out[axis] = clf.eval()
        if test is not None:
            acc[axis] = _accuracy(clf, test.images, test.labels(axis))
            acc[f"{axis}_unrecognisable_on_real"] = _share(clf, test.images, k)
    return Evaluators(out["object"], out["style"], acc, _none_labels(data))


def _none_labels(data: ConceptData) -> dict[str, int | None]:
    return {axis: len(data.names(axis)) for axis in AXES}


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
    root = (Path(cache_dir) if cache_dir else default_cache_dir()) / f"evaluators-none-{key}-s{seed}"
    dev = resolve_device(device)
    models, acc = {}, {}
    try:
        for axis in AXES:
            clf = CNN(data.image_shape, len(data.names(axis)) + 1)
            clf, meta = load(root / axis, model=clf)
            models[axis] = clf.to(dev).eval()
            acc[axis] = meta.get("test_accuracy", float("nan"))
        return Evaluators(models["object"], models["style"], acc, _none_labels(data))
    except CheckpointError:
        pass
    ev = train_evaluators(data, test, seed=seed, device=device, progress=progress)
    for axis in AXES:
        save(ev.classifier(axis), root / axis, {"test_accuracy": ev.test_accuracy.get(axis)}, overwrite=True)
    return ev
