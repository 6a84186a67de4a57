"""Worst-case forget sets (Fan et al., "Challenging Forgets: Unveiling the Worst-Case Forget Sets in
Machine Unlearning", ECCV 2024).

A bi-level search over a soft selection w ∈ [0, 1]^N with Σw = K. The lower level unlearns from the
original weights θ₀ for a few steps with a w-weighted loss (examples with weight wᵢ count as forget data,
with weight 1 − wᵢ as retain data). The upper level moves w towards the examples that stay easiest to fit
after that unlearning — the hardest to forget — with the first-order step w ← w − η(ℓᵢ(θ*) + 2γw),
then projects onto {0 ≤ w ≤ 1, Σw = K} by bisection. The K largest weights are the forget set.

The lower-level loss follows the method being challenged: ``ft`` (fine-tune on the weighted retain data),
``ga`` (ascent on the weighted forget data), ``rl``/``salun`` (random labels on the forget side, true labels
on the retain side); other methods use fine-tuning plus ascent.

Available as the forget spec ``worst:<method>:<K>`` (K a count or a fraction).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.tensors import TensorData
from ..engine import Phase, Recipe, train
from ..errors import ConfigError, ForgetSpecError
from ..forget import register_forget_kind
from ..metrics.predict import predict_outputs
from ..runtime import resolve_device
from .scores import cross_entropy_loss


def project_capped_simplex(v: np.ndarray, k: float, *, tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """Euclidean projection of ``v`` onto {w : 0 ≤ w ≤ 1, Σw = k}: w = clip(v − μ, 0, 1) with μ found by
    bisection so that the sum is ``k``."""
    v = np.asarray(v, dtype=np.float64)
    if not 0 <= k <= v.size:
        raise ConfigError(f"cannot select K={k} of {v.size} examples; K must be in [0, {v.size}]")
    lo, hi = v.min() - 1.0, v.max()
    for _ in range(max_iter):
        mu = 0.5 * (lo + hi)
        total = np.clip(v - mu, 0.0, 1.0).sum()
        if abs(total - k) <= tol:
            break
        if total > k:
            lo = mu
        else:
            hi = mu
    return np.clip(v - 0.5 * (lo + hi), 0.0, 1.0)


class _WeightedBatches:
    """Shuffled (x, y, w) mini-batches, at most ``max_steps`` per pass."""

    def __init__(self, data: TensorData, weights: np.ndarray, batch_size: int, max_steps: int, seed: int) -> None:
        self.data, self.w = data, torch.as_tensor(weights, dtype=torch.float32)
        self.batch_size, self.max_steps = batch_size, max_steps
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return min(self.max_steps, -(-len(self.data) // self.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.data), generator=self.gen)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.data.x[idx], self.data.y[idx], self.w[idx]


class _WeightedUnlearnLoss:
    """Σ(1−w)·retain term + Σw·forget term, normalised by the batch size."""

    def __init__(self, kind: str, num_classes: int, seed: int) -> None:
        self.kind, self.num_classes = kind, num_classes
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y, w = batch
        logits = model(x)
        ce = nn.functional.cross_entropy(logits, y, reduction="none")
        if self.kind == "ft":
            return ((1 - w) * ce).mean()
        if self.kind == "ga":
            return -(w * ce).mean()
        if self.kind == "rl":
            rand = torch.randint(0, self.num_classes, y.shape, generator=self.gen).to(y.device)
            return ((1 - w) * ce + w * nn.functional.cross_entropy(logits, rand, reduction="none")).mean()
        return ((1 - w) * ce - w * ce).mean()


def lower_level_kind(method: str) -> str:
    return {"ft": "ft", "ga": "ga", "rl": "rl", "salun": "rl"}.get(method, "ft+ga")


@dataclass
class WorstCaseResult:
    """The selected forget set (sorted indices), the final soft weights and the upper-level history."""

    indices: np.ndarray
    weights: np.ndarray = field(repr=False)
    method: str = "ft"
    k: int = 0
    history: list[float] = field(default_factory=list)  # mean lower-level loss of the selected mass per step

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["indices"], d["weights"] = self.indices.tolist(), self.weights.tolist()
        return d


def worst_case_forget_set(
    model: nn.Module,
    data: TensorData,
    k: int,
    *,
    method: str = "ft",
    outer_steps: int = 10,
    inner_steps: int = 20,
    inner_lr: float = 0.01,
    eta: float = 1.0,
    gamma: float = 0.1,
    batch_size: int = 128,
    num_classes: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> WorstCaseResult:
    """Select the ``k`` training examples of ``data`` that ``model`` keeps fitting best after a w-weighted
    unlearning of them (see the module docstring). ``model`` is not modified."""
    n = len(data)
    if not 1 <= k < n:
        raise ConfigError(f"K={k} must be in [1, {n - 1}] for {n} training examples")
    if outer_steps < 1 or inner_steps < 1:
        raise ConfigError("outer_steps and inner_steps must be >= 1")
    dev = resolve_device(device)
    base = copy.deepcopy(model).to(dev).eval()
    if num_classes is None:
        num_classes = int(predict_outputs(base, data.subset([0])).shape[1])
    kind = lower_level_kind(method)
    rng = np.random.default_rng(seed)
    w = project_capped_simplex(np.full(n, k / n) + 1e-3 * rng.standard_normal(n), k)
    history: list[float] = []
    recipe = Recipe(epochs=1, lr=inner_lr, batch_size=batch_size, weight_decay=0.0)
    for t in tqdm(range(outer_steps), desc=f"worst-case ({method})", disable=not progress, leave=False):
        theta = copy.deepcopy(base)
        batches = _WeightedBatches(data, w, batch_size, inner_steps, seed + t)
        loss = _WeightedUnlearnLoss(kind, num_classes, seed + t)
        train(theta, Phase("weighted-unlearn", batches, loss), recipe, device=dev, seed=seed + t, progress=False)
        losses = cross_entropy_loss(predict_outputs(theta, data), data.y)
        history.append(float((w * losses).sum() / k))
        w = project_capped_simplex(w - eta * (losses + 2 * gamma * w), k)
    top = np.argsort(-w, kind="stable")[:k]
    return WorstCaseResult(np.sort(top), w, method, k, history)


@dataclass
class ForgetContext:
    """What context-needing forget kinds may read (see :func:`unlearnkit.forget.parse_forget`)."""

    model: nn.Module
    train: TensorData
    num_classes: int | None = None
    device: str | torch.device | None = None
    progress: bool = True


def _count(arg: str, n: int, spec: str) -> int:
    try:
        value = float(arg)
    except ValueError:
        raise ForgetSpecError(f"{spec}: K must be a count like 100 or a fraction like 0.1") from None
    if 0 < value < 1:
        count = int(round(value * n))
    elif value == int(value):
        count = int(value)
    else:
        raise ForgetSpecError(f"{spec}: K must be a whole count or a fraction in (0, 1)")
    if not 1 <= count < n:
        raise ForgetSpecError(f"{spec}: K={count} must be in [1, {n - 1}]")
    return count


@register_forget_kind("worst", needs_context=True)
def _worst(
    arg: str, y: np.ndarray, names: Sequence[str], seed: int, context: Any = None
) -> tuple[np.ndarray, int | None]:
    spec = f"worst:{arg}"
    if ":" not in arg:
        raise ForgetSpecError(f"{spec}: write worst:<method>:<K>, e.g. worst:ft:100 or worst:salun:0.1")
    method, k_text = arg.rsplit(":", 1)
    if context is None or getattr(context, "model", None) is None:
        raise ForgetSpecError(
            f"{spec} needs the original model and training data; use it through `bench` or pass "
            "context=ForgetContext(model, train) to parse_forget"
        )
    from ..methods.base import get_method_class

    try:
        get_method_class(method)
    except ConfigError as exc:
        raise ForgetSpecError(f"{spec}: {exc}") from None
    k = _count(k_text, len(y), spec)
    res = worst_case_forget_set(
        context.model,
        context.train,
        k,
        method=method,
        num_classes=context.num_classes,
        seed=seed,
        device=context.device,
        progress=context.progress,
    )
    return res.indices, None
