"""Relearning attack (Hu et al., "Jogging the Memory of Unlearned LLMs Through Targeted Relearning
Attacks", 2024; Lynch et al., "Eight Methods to Evaluate Robust Unlearning in LLMs", 2024).

Fine-tune a copy of the unlearned model for a few steps on a small slice of the forget set and watch the
accuracy on the *rest* of the forget set. Knowledge that was only hidden comes back within a few steps;
after retraining it returns only as fast as the slice generalises. Compare every curve with retrain's.

Two numbers summarise a curve: the forget accuracy after k steps (:meth:`RelearnCurve.accuracy_at`) and the
area between the curve and retrain's over steps 1 … k (:meth:`RelearnCurve.area_between`, mean difference in
percentage points). Step 0 (before any relearning) is left out of both, so they measure what relearning
brings back rather than what unlearning left. ``audit`` defaults: 10 steps of plain SGD at lr 0.05 on a
slice of a tenth of the forget set (at most 64); k depends on the kind of request (:func:`resolve_k`):

- requests of examples (``random``, ``worst:M:K``, most ``indices`` files): k = the number of relearning
  steps (10 by default). On digits (``mlp``, ``random:0.1``) retrain stays near its generalisation level
  (about 96 %) while the original stays at 100 %, and a model that only hid the forget set climbs back within
  a few steps. The gap between retrain and the original can then be no larger than retrain's test error.
- class-wise requests (no retain example shares a label with the forget set: ``class:C``,
  ``worst:M:K:classes``, an index file of whole classes): k = 2. A retrain that never saw the class learns it
  back from the slice itself within 3–4 steps, so by step 10 its curve is close to the original's; after 2
  steps it is not yet. Measured on Fashion-MNIST (classes 0, 3, 7) and digits (classes 3, 8), three seeds
  each: k = 2 separated retrain from the original in 15 of 15 runs (by 56–100 points); at k = 3 two runs
  were not separated at all, at k = 10 none by more than 8.3 points (docs/audit.md, "Relearning attack").
  These were measured at the default learning rate and slice size; a larger ``--relearn-lr`` or slice makes
  retrain catch up sooner, so read the curves (or lower ``--relearn-k``) when changing them.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..data.tensors import Batches, TensorData
from ..engine import Hook, Phase, Recipe, StepContext, train
from ..errors import ConfigError
from ..forget import request_kind
from ..losses import cross_entropy
from ..metrics.accuracy import accuracy
from ..metrics.predict import predict_outputs
from ..runtime import resolve_device


@dataclass
class RelearnCurve:
    """Accuracy (percent) on the held-out part of the forget set after 0, 1, …, ``steps`` relearning steps."""

    model: str
    accuracy: list[float] = field(default_factory=list)
    slice_size: int = 0
    heldout_size: int = 0

    @property
    def area(self) -> float:
        """Mean accuracy over the relearning steps 1 … end, step 0 excluded (higher = knowledge returns faster)."""
        return float(np.mean(self.accuracy[1:])) if len(self.accuracy) > 1 else float("nan")

    def accuracy_at(self, k: int) -> float:
        """Accuracy after ``k`` relearning steps (``k`` past the end: the last step)."""
        if k < 0 or not self.accuracy:
            raise ConfigError(f"k must be >= 0 and the curve non-empty, got k={k}")
        return float(self.accuracy[min(k, len(self.accuracy) - 1)])

    def area_between(self, reference: RelearnCurve, k: int | None = None) -> float:
        """Mean of (this − ``reference``) accuracy over steps 1 … k (default: every step both have); step 0 is
        excluded. Positive: relearning brings back more than it does for the reference (retrain)."""
        n = min(len(self.accuracy), len(reference.accuracy)) - 1
        k = n if k is None else min(k, n)
        if k < 1:
            return float("nan")
        return float(np.mean(np.subtract(self.accuracy[1 : k + 1], reference.accuracy[1 : k + 1])))

    def steps_to(self, level: float) -> int | None:
        """First step at which the accuracy reaches ``level`` percent (None if never)."""
        hit = [i for i, a in enumerate(self.accuracy) if a >= level]
        return hit[0] if hit else None

    def to_dict(self) -> dict:
        return {**asdict(self), "area": self.area}


class _Probe(Hook):
    def __init__(self, data: TensorData, out: list[float]) -> None:
        self.data, self.out = data, out

    def on_epoch_end(self, ctx: StepContext) -> None:
        self.out.append(accuracy(predict_outputs(ctx.model, self.data), self.data.y))


#: k for class-wise requests: forget accuracy is read after this many relearning steps (docs/audit.md)
CLASSWISE_K = 2


@dataclass(frozen=True)
class RelearnK:
    """The step ``k`` at which forget accuracy is read, the request ``kind`` it was resolved for, and why."""

    k: int
    kind: str
    reason: str


def check_k(k: int | None, steps: int) -> None:
    """Raise :class:`ConfigError` unless ``k`` is None or a step of the curve after step 0 (1 … ``steps``)."""
    if k is not None and not 1 <= k <= steps:
        raise ConfigError(
            f"relearn k={k} must be in [1, {steps}] (the relearning steps; step 0 is before any relearning); "
            + ("use --relearn-k of at least 1" if k < 1 else "lower --relearn-k or raise --relearn-steps")
        )


def resolve_k(
    k: int | None,
    steps: int,
    forget_labels: torch.Tensor | np.ndarray,
    retain_labels: torch.Tensor | np.ndarray,
) -> RelearnK:
    """The relearning step at which to read forget accuracy: ``k`` when given (1 … ``steps``), otherwise
    :data:`CLASSWISE_K` for class-wise requests and ``steps`` for requests of examples."""
    if steps < 1:
        raise ConfigError(f"relearning needs at least one step to read an accuracy after, got steps={steps}")
    check_k(k, steps)
    kind = request_kind(forget_labels, retain_labels)
    if k is not None:
        return RelearnK(k, kind, "set by the caller (--relearn-k)")
    if kind == "class-wise":
        return RelearnK(
            min(CLASSWISE_K, steps),
            kind,
            f"class-wise request: a retrain learns a whole class back from the slice within a few steps, so the "
            f"curves are read after {_steps(min(CLASSWISE_K, steps))}, before retrain's catches up with the original's",
        )
    return RelearnK(
        steps,
        kind,
        f"request of examples: read after all {_steps(steps)} (a retrain gets held-out examples of classes it "
        "knows back only as far as the slice generalises)",
    )


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def split_forget(forget: TensorData, slice_size: int, seed: int = 0) -> tuple[TensorData, TensorData]:
    """A random slice of ``slice_size`` forget examples to relearn on, and the rest to measure on."""
    if not 1 <= slice_size < len(forget):
        raise ConfigError(f"slice_size={slice_size} must be in [1, {len(forget) - 1}] for {len(forget)} examples")
    perm = np.random.default_rng(seed).permutation(len(forget))
    return forget.subset(np.sort(perm[:slice_size])), forget.subset(np.sort(perm[slice_size:]))


def relearn_curve(
    model: nn.Module,
    relearn_on: TensorData,
    measure_on: TensorData,
    *,
    steps: int = 10,
    lr: float = 0.05,
    name: str = "",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> RelearnCurve:
    """Fine-tune a copy of ``model`` on ``relearn_on`` (one full batch per step, plain SGD) and record the
    accuracy on ``measure_on`` before and after each step. ``model`` is not modified."""
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    dev = resolve_device(device)
    work = copy.deepcopy(model).to(dev)
    accs = [accuracy(predict_outputs(work, measure_on), measure_on.y)]
    recipe = Recipe(epochs=steps, lr=lr, momentum=0.0, weight_decay=0.0, batch_size=len(relearn_on))
    batches = Batches(relearn_on, len(relearn_on), shuffle=False, seed=seed)
    # eval mode keeps BatchNorm statistics fixed: the attacker only nudges the weights
    phase = Phase("relearn", batches, cross_entropy, train_mode=False)
    train(work, phase, recipe, device=dev, hooks=[_Probe(measure_on, accs)], seed=seed, progress=False)
    return RelearnCurve(name, accs, len(relearn_on), len(measure_on))


def nearest_neighbours(query: TensorData, pool: TensorData, same_label: bool = True) -> TensorData:
    """For each query example, the closest ``pool`` example in input space (Euclidean), of the same label
    when ``same_label``; duplicates are kept once."""
    q, x = query.x.flatten(1).float(), pool.x.flatten(1).float()
    dist = torch.cdist(q, x)
    if same_label:
        dist = dist.masked_fill(query.y[:, None] != pool.y[None, :], float("inf"))
    best = dist.argmin(dim=1)
    best = best[torch.isfinite(dist.gather(1, best[:, None]).squeeze(1))]
    if best.numel() == 0:
        raise ConfigError("no pool example shares a label with the relearning slice; use source='forget'")
    return pool.subset(np.unique(best.numpy()))


def relearn_attack(
    models: dict[str, nn.Module],
    forget: TensorData,
    *,
    slice_size: int | None = None,
    steps: int = 10,
    lr: float = 0.05,
    source: str = "forget",
    retain: TensorData | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, RelearnCurve]:
    """Relearning curves of several models (include ``"retrain"`` as the reference) on the same data.

    ``source="forget"`` relearns on a random slice of the forget set; ``source="neighbours"`` relearns on
    the nearest same-label ``retain`` examples of that slice (the attacker never touches forget data).
    Accuracy is measured on the forget examples outside the slice."""
    if source not in ("forget", "neighbours"):
        raise ConfigError(f"unknown source {source!r}; choose 'forget' or 'neighbours'")
    slice_size = slice_size or max(1, min(len(forget) // 10, 64))
    part, rest = split_forget(forget, slice_size, seed)
    if source == "neighbours":
        if retain is None:
            raise ConfigError("source='neighbours' needs the retain set to pick neighbours from; pass retain=")
        part = nearest_neighbours(part, retain)
    return {
        name: relearn_curve(m, part, rest, steps=steps, lr=lr, name=name, seed=seed, device=device)
        for name, m in models.items()
    }
