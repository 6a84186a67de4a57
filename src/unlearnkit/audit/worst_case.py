"""Worst-case forget sets (Fan et al., "Challenging Forgets: Unveiling the Worst-Case Forget Sets in
Machine Unlearning", ECCV 2024), following OPTML-Group/Unlearn-WorstCase (``data-wise/main_selmu.py``,
``data-wise/unlearn/impl.py``: ``optimize_select`` / ``reverse_optimize_select``, ``utils.bisection``,
``utils.SignSGD``).

A bi-level search over a selection w ∈ [0, 1]^N with Σw = K, started from a random binary set of K:

* lower level: reload the original weights θ₀ and run ``inner_epochs`` full epochs of SignSGD
  (θ ← θ − lr·sign(∇)) on the w-weighted unlearning loss of the method being challenged, summed over each
  mini-batch: ``ft`` Σ(1 − wᵢ)·ℓᵢ (fine-tune on the weighted retain data), ``ga`` −Σwᵢ·ℓᵢ, ``rl``/``salun``
  Σ(1 − wᵢ)·ℓᵢ + wᵢ·ℓ(x_i, random label); ``retrain`` (the reference's ``w_retrain``) re-initialises θ
  and trains Σ(1 − wᵢ)·ℓᵢ from scratch; other methods Σ(1 − wᵢ)·ℓᵢ − wᵢ·ℓᵢ;
* upper level: with ℓᵢ(θ*) the per-example loss after that unlearning, w ← w − η(ℓ(θ*) + 2γw) (worst case:
  weight moves to the examples unlearning leaves easiest to fit, the hardest to forget) or
  w ← w + η(ℓ(θ*) + 2γw) (``mode="best"``, the reference's ``re_optm``), then the Euclidean projection onto
  {0 ≤ w ≤ 1, Σw = K} by bisection;
* every ``round_every`` upper steps w is rounded to the binary indicator of its K largest entries (the
  reference's ``feq_to_bi``); the K largest weights at the end are the forget set.

``mode="gap"`` (spec flag ``:gap``) is this module's own variant, not in the reference: each example is scored
*relative to a model that never saw it*, w ← w − η(p_ref − p(θ*) + 2γw) (:func:`gap_score`), where p(θ*) is
the probability of the true label after unlearning and p_ref the example's cross-fitted held-out probability
(:func:`heldout_losses`: ``ref_folds`` fresh models, each trained with the original's recipe on the other
folds). Fan et al.'s objective keeps the examples that every model fits, retrain included, so a retrain is
as close to the original on them as on any set; the gap mode keeps the examples the challenged unlearner
still fits but a retrain would not, the ones where an unlearned model is furthest from retrain (the Avg-Gap
of the SalUn benchmark). The score is the difference of two error probabilities, 1 − p, rather than of two
cross-entropies: it is bounded in [−1, 1] and on the accuracy scale of the Avg-Gap, so a lower level that
collapses the model (``ga``: post-unlearning cross-entropies in the tens) cannot swamp the held-out term.

``classwise=True`` selects K whole classes instead (Fan et al.'s class-wise setting): one weight per class,
the example weights are their class's weight, and the upper level uses each class's mean loss.

Deviations: the reference's ``w_RL`` unlearns the current binary set with plain SGD steps; here
``rl``/``salun`` use the weighted loss and SignSGD like ``ft``; ``retrain`` re-initialises with each layer's
``reset_parameters`` (the reference's ``weights_init``: Xavier-uniform); the reference has no ``ga`` lower
level. Defaults are sized for small CPU models: ``inner_lr`` 1e-3 and 2 lower-level epochs as in the
reference's README example, 10 upper steps, γ = 0, rounding every 5 steps, and η = 10 instead of the
reference's 0.01: from a binary set a weight outside it overtakes one inside only if its losses after
unlearning, summed over the upper steps since the last rounding, are lower by more than 1/η (100 for 0.01),
so in the reference README's setting (2 upper steps) the selection stays at its random start.

Available as the forget spec ``worst:<method>:<K>[:best|:gap][:classes]`` (K a count or a fraction; with
``classes`` a number of classes). Inside ``bench`` and ``audit`` the selected indices are cached as a text
file under the cache folder that ``indices:<file>`` reads back.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.tensors import TensorData
from ..engine import Hook, Phase, Recipe, StepContext, train
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
    """Shuffled (x, y, w) mini-batches over the whole data (one full epoch per pass)."""

    def __init__(self, data: TensorData, weights: np.ndarray, batch_size: int, seed: int) -> None:
        self.data, self.w = data, torch.as_tensor(weights, dtype=torch.float32)
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.data), generator=self.gen)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.data.x[idx], self.data.y[idx], self.w[idx]


class _WeightedUnlearnLoss:
    """The w-weighted unlearning loss of the challenged method, summed over the batch (as the reference)."""

    def __init__(self, kind: str, num_classes: int, seed: int) -> None:
        self.kind, self.num_classes = kind, num_classes
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y, w = batch
        logits = model(x)
        ce = nn.functional.cross_entropy(logits, y, reduction="none")
        if self.kind in ("ft", "retrain"):
            return ((1 - w) * ce).sum()
        if self.kind == "ga":
            return -(w * ce).sum()
        if self.kind == "rl":
            rand = torch.randint(0, self.num_classes, y.shape, generator=self.gen).to(y.device)
            return ((1 - w) * ce + w * nn.functional.cross_entropy(logits, rand, reduction="none")).sum()
        return ((1 - w) * ce - w * ce).sum()


class SignGradient(Hook):
    """Replace every gradient by its sign: with plain SGD (no momentum, no weight decay) each step is
    θ ← θ − lr·sign(∇), the reference's ``SignSGD.sign_step``."""

    def after_backward(self, ctx: StepContext) -> None:
        for p in ctx.params:
            if p.grad is not None:
                p.grad.sign_()


def lower_level_kind(method: str) -> str:
    return {"ft": "ft", "ga": "ga", "rl": "rl", "salun": "rl", "retrain": "retrain"}.get(method, "ft+ga")


MODES = ("worst", "best", "gap")
#: the gap mode's score, part of the cache key of gap-mode sets
GAP_SCORE = "p_ref-p"


@dataclass
class WorstCaseResult:
    """The selected forget set (sorted indices), the final weights and the upper-level history."""

    indices: np.ndarray
    weights: np.ndarray = field(repr=False)
    method: str = "ft"
    k: int = 0
    #: per upper step, the upper-level score of the selected mass (mean loss after unlearning; gap mode: p_ref − p)
    history: list[float] = field(default_factory=list)
    mode: str = "worst"
    classes: list[int] | None = None
    index_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["indices"], d["weights"] = self.indices.tolist(), self.weights.tolist()
        return d


def heldout_losses(
    model: nn.Module,
    data: TensorData,
    recipe: Recipe,
    *,
    folds: int = 4,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Each example's cross-entropy under a model that never saw it: ``data`` is split into ``folds`` random
    folds, and for each fold a copy of ``model``'s architecture, re-initialised from its own seed
    (:func:`unlearnkit.models.utils.reinitialize`), is trained with ``recipe`` on the other folds and scores
    the held-out fold. A stand-in for the loss a retrain without the example would give it."""
    from ..models.utils import reinitialize
    from ..training import train_model

    n = len(data)
    if not 2 <= folds <= n:
        raise ConfigError(f"ref_folds must be in [2, {n}], got {folds}")
    dev = resolve_device(device)
    fold_of = np.random.default_rng(seed + 104729).permutation(n) % folds
    out = np.empty(n)
    for f in range(folds):
        held, fit = np.flatnonzero(fold_of == f), np.flatnonzero(fold_of != f)
        ref = reinitialize(copy.deepcopy(model), seed + 1009 * (f + 1)).to(dev)
        train_model(ref, data.subset(fit), recipe, seed=seed + f, device=dev, progress=False, desc="held-out")
        part = data.subset(held)
        out[held] = cross_entropy_loss(predict_outputs(ref.eval(), part), part.y)
    return out


def gap_score(loss: np.ndarray, ref_loss: np.ndarray) -> np.ndarray:
    """The gap mode's upper-level score from two cross-entropies (−log p of the true label): the unlearned
    model's error probability minus the held-out model's, (1 − e^(−ℓ)) − (1 − e^(−ℓ_ref)) = p_ref − p, in
    [−1, 1]. Both terms are bounded on the accuracy scale of the Avg-Gap, so a lower level that collapses the
    model (cross-entropies in the tens) cannot swamp the held-out term; lowest for an example the unlearned
    model still fits (p ≈ 1) and a model that never saw it does not (p_ref ≈ 0)."""
    return np.exp(-np.asarray(ref_loss, dtype=np.float64)) - np.exp(-np.asarray(loss, dtype=np.float64))


def _top_k(w: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-w, kind="stable")[:k]


def worst_case_forget_set(
    model: nn.Module,
    data: TensorData,
    k: int,
    *,
    method: str = "ft",
    outer_steps: int = 10,
    inner_epochs: int = 2,
    inner_lr: float = 1e-3,
    eta: float = 10.0,
    gamma: float = 0.0,
    round_every: int | None = 5,
    mode: str = "worst",
    classwise: bool = False,
    batch_size: int = 128,
    num_classes: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    ref_loss: np.ndarray | None = None,
    ref_recipe: Recipe | None = None,
    ref_folds: int = 4,
) -> WorstCaseResult:
    """Select the ``k`` training examples of ``data`` (or ``k`` classes with ``classwise``) that unlearning
    with ``method`` finds hardest to forget (``mode="best"``: easiest; ``mode="gap"``: hardest relative to
    a model that never saw them, with ``ref_loss`` or, if None, :func:`heldout_losses` computed with
    ``ref_recipe`` over ``ref_folds`` folds); see the module docstring. ``model`` is not modified."""
    n = len(data)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if outer_steps < 1 or inner_epochs < 1:
        raise ConfigError("outer_steps and inner_epochs must be >= 1")
    if round_every is not None and round_every < 1:
        raise ConfigError(f"round_every must be >= 1 or None, got {round_every}")
    dev = resolve_device(device)
    base = copy.deepcopy(model).to(dev).eval()
    if num_classes is None:
        num_classes = int(predict_outputs(base, data.subset([0])).shape[1])
    labels = data.y.numpy().astype(np.int64)
    groups = np.unique(labels) if classwise else None
    units = len(groups) if classwise else n
    if not 1 <= k < units:
        what = "classes" if classwise else "training examples"
        raise ConfigError(f"K={k} must be in [1, {units - 1}] for {units} {what}")
    kind = lower_level_kind(method)
    ref = np.zeros(n)
    if mode == "gap":
        if ref_loss is None:
            if ref_recipe is None:
                raise ConfigError("mode='gap' needs ref_loss or ref_recipe (the recipe the original was trained with)")
            ref_loss = heldout_losses(base, data, ref_recipe, folds=ref_folds, seed=seed, device=dev)
        ref = np.asarray(ref_loss, dtype=np.float64)
        if ref.shape != (n,):
            raise ConfigError(f"ref_loss must hold one loss per training example ({n}), got shape {ref.shape}")
    rng = np.random.default_rng(seed)
    w = np.zeros(units)
    w[rng.choice(units, size=k, replace=False)] = 1.0  # a random binary start, as the reference
    sign = 1.0 if mode == "best" else -1.0
    history: list[float] = []
    recipe = Recipe(epochs=inner_epochs, lr=inner_lr, batch_size=batch_size, momentum=0.0, weight_decay=0.0)
    for t in tqdm(range(outer_steps), desc=f"{mode}-case ({method})", disable=not progress, leave=False):
        example_w = w[np.searchsorted(groups, labels)] if classwise else w
        theta = copy.deepcopy(base)
        if kind == "retrain":  # the reference's w_retrain: a fresh initialisation trained on the weighted data
            from ..models.utils import reinitialize

            reinitialize(theta, seed + 7919 * (t + 1))
        batches = _WeightedBatches(data, example_w, batch_size, seed + t)
        loss = _WeightedUnlearnLoss(kind, num_classes, seed + t)
        train(
            theta,
            Phase("weighted-unlearn", batches, loss),
            recipe,
            hooks=[SignGradient()],
            device=dev,
            seed=seed + t,
            progress=False,
        )
        ce = cross_entropy_loss(predict_outputs(theta, data), data.y)
        losses = gap_score(ce, ref) if mode == "gap" else ce
        if classwise:
            losses = np.array([losses[labels == c].mean() for c in groups])
        history.append(float((w * losses).sum() / k))
        w = project_capped_simplex(w + sign * eta * (losses + 2 * gamma * w), k)
        if round_every is not None and (t + 1) % round_every == 0:
            binary = np.zeros(units)
            binary[_top_k(w, k)] = 1.0
            w = binary
    top = _top_k(w, k)
    if classwise:
        chosen = sorted(int(c) for c in groups[top])
        return WorstCaseResult(np.flatnonzero(np.isin(labels, chosen)), w, method, k, history, mode, chosen)
    return WorstCaseResult(np.sort(top), w, method, k, history, mode)


@dataclass
class ForgetContext:
    """What context-needing forget kinds may read (see :func:`unlearnkit.forget.parse_forget`)."""

    model: nn.Module
    train: TensorData
    num_classes: int | None = None
    device: str | torch.device | None = None
    progress: bool = True
    #: where selected sets are cached as index files (None: not cached)
    cache_dir: str | None = None
    #: the recipe the original was trained with (the ``:gap`` flag trains its held-out models with it)
    recipe: Recipe | None = None


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


def _cache_key(model: nn.Module, data: TensorData, settings: dict[str, Any]) -> str:
    """A hash of the model's weights, the data and every selection setting (defaults included)."""
    params = inspect.signature(worst_case_forget_set).parameters
    full = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    full = {k: v for k, v in {**full, **settings}.items() if k not in ("device", "progress", "num_classes")}
    h = hashlib.sha256(repr(sorted(full.items())).encode())
    if full.get("mode") == "gap":
        h.update(GAP_SCORE.encode())  # sets selected with an earlier gap score are not read back
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(data.x.detach().cpu().contiguous().numpy().tobytes())
    h.update(data.y.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cached_selection(context: Any, settings: dict[str, Any]) -> WorstCaseResult:
    """Run :func:`worst_case_forget_set` with ``settings`` on the context's model and data, reading and
    writing ``<cache_dir>/worst-case/<key>.txt`` (one index per line, what ``indices:<file>`` reads)."""
    from ..forget import read_index_file

    path = None
    if getattr(context, "cache_dir", None):
        key = _cache_key(context.model, context.train, settings)
        path = Path(context.cache_dir) / "worst-case" / f"{settings['mode']}-{settings['method']}-{key}.txt"
        if path.is_file():
            idx = np.asarray(read_index_file(path), dtype=np.int64)
            return WorstCaseResult(
                idx, np.zeros(0), settings["method"], settings["k"], mode=settings["mode"], index_file=str(path)
            )
    res = worst_case_forget_set(
        context.model,
        context.train,
        num_classes=context.num_classes,
        device=context.device,
        progress=context.progress,
        **settings,
    )
    if path is not None:
        from ..checkpoint import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "".join(f"{i}\n" for i in res.indices))
        res.index_file = str(path)
    return res


@register_forget_kind("worst", needs_context=True)
def _worst(
    arg: str, y: np.ndarray, names: Sequence[str], seed: int, context: Any = None
) -> tuple[np.ndarray, int | None]:
    spec = f"worst:{arg}"
    parts = arg.split(":")
    flags = parts[2:]
    if len(parts) < 2 or any(f not in ("best", "gap", "classes") for f in flags) or {"best", "gap"} <= set(flags):
        raise ForgetSpecError(
            f"{spec}: write worst:<method>:<K>[:best|:gap][:classes], e.g. worst:ft:100, worst:salun:0.1, "
            "worst:salun:100:gap or worst:ft:2:classes"
        )
    method, k_text = parts[0], parts[1]
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
    classwise = "classes" in flags
    units = len(np.unique(y)) if classwise else len(y)
    k = _count(k_text, units, spec)
    mode = "best" if "best" in flags else "gap" if "gap" in flags else "worst"
    settings: dict[str, Any] = {"k": k, "method": method, "mode": mode, "classwise": classwise, "seed": seed}
    if mode == "gap":
        if getattr(context, "recipe", None) is None:
            raise ForgetSpecError(
                f"{spec}: the gap mode trains held-out models with the original's recipe; pass it as "
                "ForgetContext(..., recipe=...)"
            )
        settings["ref_recipe"] = context.recipe
    res = cached_selection(context, settings)
    if res.index_file:
        print(f"{spec}: selected set cached at {res.index_file} (reuse with --forget indices:{res.index_file})")
    return res.indices, None
