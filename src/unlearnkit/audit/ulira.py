"""U-LiRA: a per-example likelihood-ratio membership attack against unlearning (Hayes et al., "Inexact
Unlearning Needs More Careful Evaluations to Avoid a False Sense of Privacy", SaTML 2025), built on LiRA
(Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022).

K shadow pairs are trained on random halves of the data. In pair k a forget set F_k, drawn by the same scheme
as the audited request (see :func:`train_shadow_pairs`), is trained on and then unlearned by the method under
test ("in"), while a model retrained without F_k gives the "out" view; every model has its own initialisation.
For every target example the attacker fits a Gaussian to the logit-scaled confidences
φ = log p_y − log Σ_{c≠y} p_c of the in models and another to those of the out models, and scores a new
observation by the log-likelihood ratio. Here each pair is attacked with Gaussians fitted on the other
pairs (leave-one-pair-out), so every model is a held-out target once. AUC 50 % = indistinguishable from
retraining (perfect unlearning).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.tensors import TensorData
from ..engine import Recipe
from ..errors import ConfigError, DataError
from ..metrics.predict import predict_outputs
from ..runtime import resolve_device, timed
from .common import ModelFactory, check_known_method, run_method, train_fresh
from .roc import ROCAttackResult, evaluate_attack
from .scores import logit_confidence


def _log_normal(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var)


def ulira_scores(
    phi_in: np.ndarray, phi_out: np.ndarray, mask: np.ndarray, *, fixed_variance: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-pair-out likelihood-ratio scores.

    ``phi_in`` / ``phi_out`` are (pairs, targets) confidences of the unlearned / retrained model of each
    pair; ``mask[k, j]`` says whether target j was in pair k's forget set (entries outside it are ignored).
    Returns the scores of the unlearned observations (positives) and of the retrained ones (negatives);
    higher = "this model saw the example". With ``fixed_variance`` one variance per side is pooled over all
    examples (LiRA's choice for few shadow models); otherwise each example gets its own.
    """
    phi_in, phi_out = np.asarray(phi_in, np.float64), np.asarray(phi_out, np.float64)
    m = np.asarray(mask, bool)
    if not (phi_in.shape == phi_out.shape == m.shape) or phi_in.ndim != 2:
        raise DataError(
            f"phi_in, phi_out and mask must share one (pairs, targets) shape; got {phi_in.shape}, "
            f"{phi_out.shape}, {m.shape}"
        )
    w = m.astype(np.float64)
    count = w.sum(0)
    if count.max(initial=0) < 2:
        raise ConfigError("every target example needs at least 2 shadow pairs that forgot it; raise n_pairs")
    s_in, s_out = (w * np.where(m, phi_in, 0)).sum(0), (w * np.where(m, phi_out, 0)).sum(0)
    q_in, q_out = (w * np.where(m, phi_in, 0) ** 2).sum(0), (w * np.where(m, phi_out, 0) ** 2).sum(0)
    loo = count[None, :] - 1  # other pairs that forgot the example
    usable = m & (loo >= 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_in = (s_in[None, :] - np.where(m, phi_in, 0)) / loo
        mu_out = (s_out[None, :] - np.where(m, phi_out, 0)) / loo
        if fixed_variance:
            full = np.maximum(count, 1)
            res_in = np.where(m, phi_in - (s_in / full)[None, :], 0)
            res_out = np.where(m, phi_out - (s_out / full)[None, :], 0)
            dof = max(w.sum() - (count > 0).sum(), 1.0)
            var_in = np.full_like(mu_in, max((res_in**2).sum() / dof, 1e-6))
            var_out = np.full_like(mu_out, max((res_out**2).sum() / dof, 1e-6))
        else:
            sq_in = q_in[None, :] - np.where(m, phi_in, 0) ** 2
            sq_out = q_out[None, :] - np.where(m, phi_out, 0) ** 2
            var_in = np.maximum(sq_in / loo - mu_in**2, 1e-6)
            var_out = np.maximum(sq_out / loo - mu_out**2, 1e-6)
        pos = _log_normal(phi_in, mu_in, var_in) - _log_normal(phi_in, mu_out, var_out)
        neg = _log_normal(phi_out, mu_in, var_in) - _log_normal(phi_out, mu_out, var_out)
    return pos[usable], neg[usable]


@dataclass
class ShadowPairs:
    """Shadow originals and retrains, reusable for auditing several methods. ``scheme`` says how each pair's
    forget set was drawn (the audited request kind); ``seeds`` are the originals' initialisation and data
    seeds (each retrain uses its pair's seed + 1)."""

    data: TensorData
    targets: np.ndarray  # indices into data of the target pool
    forget_masks: np.ndarray  # (pairs, targets) bool: target in pair k's forget set
    retain_sets: list[np.ndarray]  # indices into data of each pair's retain half
    originals: list[nn.Module]
    phi_retrained: np.ndarray  # (pairs, targets)
    seeds: list[int]
    factory: ModelFactory
    recipe: Recipe
    task: str = "classification"
    num_classes: int | None = None
    seconds: float = 0.0
    scheme: str = ""

    @property
    def n_pairs(self) -> int:
        return len(self.originals)

    def forget_indices(self, k: int) -> np.ndarray:
        return self.targets[self.forget_masks[k]]


def _phi(model: nn.Module, data: TensorData) -> np.ndarray:
    return logit_confidence(predict_outputs(model, data), data.y)


def _spec_size(arg: str, n: int) -> int | None:
    """The forget-set size of a ``random:`` / ``worst:…:`` count or fraction over ``n`` examples."""
    try:
        v = float(arg)
    except ValueError:
        return None
    return int(round(v * n)) if 0 < v < 1 else int(v)


def train_shadow_pairs(
    data: TensorData,
    *,
    model_factory: ModelFactory,
    recipe: Recipe,
    n_pairs: int = 8,
    n_targets: int | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    forget_spec: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ShadowPairs:
    """Train ``n_pairs`` (original, retrain) shadow pairs whose forget sets follow ``forget_spec``.

    * ``random:…`` (or no spec): a target pool; each original sees a random half of it (its forget set) plus a
      random half of the remaining data (its retain set), and its retrain sees only the latter. When the
      spec gives a size, the pool is sized so that every shadow forgets that fraction of its training data.
    * ``class:C``: the pool is class C; each original trains on a random half of it and forgets all of it.
    * ``worst:M:K``: each original trains on a random half of the data; its forget set is the worst-case set
      for M selected on that shadow original (K scaled to the half).
    * other kinds: random forget sets of the request's size (``scheme`` says so).

    Every model is initialised from its own seed (originals ``seed + 7919·(k+1)``, retrains that + 1)."""
    from ..forget import parse_forget

    n = len(data)
    if n_pairs < 3:
        raise ConfigError(f"U-LiRA needs at least 3 shadow pairs (leave-one-out needs 2 others), got {n_pairs}")
    kind, _, arg = (forget_spec or "").partition(":")
    labels = data.y.numpy()
    dev = resolve_device(device)
    rng = np.random.default_rng(seed)
    worst = kind == "worst"
    if kind == "class":
        targets = np.sort(parse_forget(forget_spec, labels, seed=seed).forget_idx)
        if targets.size < 4:
            raise ConfigError(f"{forget_spec} has {targets.size} examples; U-LiRA needs at least 4 of them")
        scheme = f"{forget_spec}: each shadow trains on a random half of the class and forgets all of it"
    elif worst:
        targets = np.arange(n)
        scheme = f"{forget_spec}: each shadow's forget set is selected on that shadow original (K scaled to it)"
    else:
        size = _spec_size(arg, n) if kind == "random" else None
        if n_targets is None and size is not None:
            n_targets = size
        elif n_targets is None and forget_spec:
            size = len(parse_forget(forget_spec, labels, seed=seed).forget_idx)
            n_targets = size
        n_targets = n_targets or min(500, n // 4)
        if not 2 <= n_targets <= n // 2:
            raise ConfigError(f"n_targets={n_targets} must be in [2, {n // 2}] for {n} examples")
        targets = np.sort(rng.permutation(n)[:n_targets])
        scheme = (
            f"random forget sets: each shadow forgets a random half of a {n_targets}-example pool "
            f"({n_targets // 2} examples, {n_targets / n:.1%} of its training data)"
        )
        if forget_spec and kind != "random":
            scheme += f"; the request {forget_spec} has no shadow scheme of its own, so its size was matched"
    pool = np.setdiff1d(np.arange(n), targets)
    masks, retains, originals, phis, seeds = [], [], [], [], []
    with timed() as clock:
        for k in tqdm(range(n_pairs), desc="shadow pairs", disable=not progress, leave=False):
            s = seed + 7919 * (k + 1)
            if worst:
                train_idx = np.sort(rng.permutation(n)[: n // 2])
                original = train_fresh(model_factory, data.subset(train_idx), recipe, s, device=dev, desc="shadow")
                from .worst_case import ForgetContext

                method, k_text, *flags = arg.split(":") + [""]
                size = _spec_size(k_text, n)
                keep = "." in k_text or size is None or "classes" in flags  # fractions and class counts carry over
                k_shadow = k_text if keep else str(max(1, size * len(train_idx) // n))
                shadow_spec = ":".join(["worst", method, k_shadow, *[f for f in flags if f]])
                ctx = ForgetContext(
                    original, data.subset(train_idx), num_classes=num_classes, device=dev, recipe=recipe
                )
                local = parse_forget(shadow_spec, labels[train_idx], seed=s, context=ctx).forget_idx
                forget_idx = train_idx[local]
                retain_idx = np.setdiff1d(train_idx, forget_idx)
                mask = np.isin(targets, forget_idx)
            else:
                mask = np.zeros(targets.size, dtype=bool)
                mask[rng.permutation(targets.size)[: targets.size // 2]] = True
                retain_idx = np.sort(rng.choice(pool, size=len(pool) // 2, replace=False))
                train_idx = np.r_[targets[mask], retain_idx]
                original = train_fresh(model_factory, data.subset(train_idx), recipe, s, device=dev, desc="shadow")
            retrained = train_fresh(model_factory, data.subset(retain_idx), recipe, s + 1, device=dev, desc="retrain")
            masks.append(mask)
            retains.append(retain_idx)
            originals.append(original)
            phis.append(_phi(retrained, data.subset(targets)))
            seeds.append(s)
    masks_arr, phi_arr = np.stack(masks), np.stack(phis)
    if worst:  # keep the examples some shadow forgot
        keep = masks_arr.any(0)
        targets, masks_arr, phi_arr = targets[keep], masks_arr[:, keep], phi_arr[:, keep]
    return ShadowPairs(
        data=data,
        targets=targets,
        forget_masks=masks_arr,
        retain_sets=retains,
        originals=originals,
        phi_retrained=phi_arr,
        seeds=seeds,
        factory=model_factory,
        recipe=recipe,
        num_classes=num_classes,
        seconds=clock.seconds,
        scheme=scheme,
    )


@dataclass
class ULiRAResult:
    """U-LiRA against one method: attack AUC / balanced accuracy / TPR at low FPR (percent)."""

    method: str
    n_pairs: int
    n_targets: int
    auc: float
    accuracy: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    seconds: float
    hparams: dict[str, Any] = field(default_factory=dict)
    scheme: str = ""
    seeds: list[int] = field(default_factory=list)
    attack: ROCAttackResult | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return asdict(self)


def ulira(
    method: str,
    shadows: ShadowPairs,
    *,
    hparams: dict[str, Any] | None = None,
    fixed_variance: bool = True,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ULiRAResult:
    """Attack ``method`` (a registered name, or ``"original"`` for no unlearning) with U-LiRA on ``shadows``."""
    check_known_method(method)
    dev = resolve_device(device)
    target_data = shadows.data.subset(shadows.targets)
    phi_in = np.zeros_like(shadows.phi_retrained)
    with timed() as clock:
        for k in tqdm(range(shadows.n_pairs), desc=f"U-LiRA {method}", disable=not progress, leave=False):
            model = run_method(
                method,
                shadows.originals[k],
                shadows.data.subset(shadows.forget_indices(k)),
                shadows.data.subset(shadows.retain_sets[k]),
                factory=shadows.factory,
                recipe=shadows.recipe,
                hparams=hparams,
                seed=shadows.seeds[k] + 2,
                num_classes=shadows.num_classes,
                task=shadows.task,
                device=dev,
            )
            phi_in[k] = _phi(model, target_data)
    pos, neg = ulira_scores(phi_in, shadows.phi_retrained, shadows.forget_masks, fixed_variance=fixed_variance)
    att = evaluate_attack("ulira", pos, neg)
    return ULiRAResult(
        method=method,
        n_pairs=shadows.n_pairs,
        n_targets=len(shadows.targets),
        auc=att.auc,
        accuracy=att.accuracy,
        tpr_at_1pct_fpr=att.tpr_at_1pct_fpr,
        tpr_at_01pct_fpr=att.tpr_at_01pct_fpr,
        seconds=clock.seconds,
        hparams=dict(hparams or {}),
        scheme=shadows.scheme,
        seeds=list(shadows.seeds),
        attack=att,
    )
