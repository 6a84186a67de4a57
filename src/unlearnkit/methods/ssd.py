"""SSD: Selective Synaptic Dampening, a retrain-free method."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.tensors import Batches, TensorData
from ..probe import choose_knob
from ..target import probe_sets
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext

#: with a target (:mod:`unlearnkit.target`), α is chosen among these multiples of the given α, in this order
#: (smaller α dampens more parameters, larger fewer); the first that reaches the target, else the closest, is kept
ALPHA_FACTORS = (1.0, 0.5, 0.2, 0.1, 0.05, 2.0, 5.0)


def even_batches(data: TensorData, batch_size: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``data`` in a seeded shuffled order, cut into ``ceil(n / batch_size)`` batches of (almost) equal size
    (143 examples at batch 64: 48/48/47 rather than 64/64/15)."""
    n = len(data)
    order = np.random.default_rng(seed).permutation(n)
    return [(data.x[i], data.y[i]) for i in np.array_split(order, max(1, -(-n // batch_size)))]


def empirical_fisher_diagonal(
    model: nn.Module,
    data: TensorData,
    loss,
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    even: bool = False,
) -> dict:
    """Diagonal of the empirical Fisher information of a task loss on data: the mean over batches of the squared
    gradient of ``loss`` for every parameter (model in eval mode, left unchanged). Batches are drawn in a seeded
    shuffled order, so that a batch of the full training set mixes forget and retain examples; with
    ``even`` they have equal sizes (:func:`even_batches`) instead of a short last batch."""
    model.eval()
    imp = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    batches = even_batches(data, batch_size, seed) if even else Batches(data, batch_size, shuffle=True, seed=seed)
    for batch in batches:
        batch = tuple(t.to(device) for t in batch)
        model.zero_grad(set_to_none=True)
        loss(model, batch).backward()
        for n, p in model.named_parameters():
            if p.grad is not None and n in imp:
                imp[n] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    return {n: v / max(1, len(batches)) for n, v in imp.items()}


@torch.no_grad()
def dampen(model: nn.Module, forget_imp: dict, global_imp: dict, alpha: float, lam: float) -> float:
    """Multiply each parameter whose forget importance exceeds ``alpha`` × its global importance by
    ``min(lam · I_D / I_Df, 1)``; return the fraction of parameters dampened."""
    changed = total = 0
    for n, p in model.named_parameters():
        if n not in forget_imp:
            continue
        i_f, i_d = forget_imp[n], global_imp[n]
        sel = i_f > alpha * i_d
        factor = torch.clamp(lam * i_d / i_f.clamp_min(torch.finfo(i_f.dtype).tiny), max=1.0)
        p.copy_(torch.where(sel, p * factor, p))
        changed += int(sel.sum())
        total += p.numel()
    return changed / max(1, total)


@register
@dataclass(kw_only=True, frozen=True)
class SelectiveSynapticDampening(Method):
    """SSD (Foster et al., "Fast Machine Unlearning Without Retraining Through Selective Synaptic
    Dampening", AAAI 2024).

    Diagonal Fisher importances are computed on D_f (I_Df) and on the whole training set D = D_r ∪ D_f
    (I_D). Parameters with I_Df > α·I_D are specialised to the forget set and are multiplied by
    min(λ·I_D/I_Df, 1). No training epochs. Published: α = 10 (selection weighting), λ = 1 (dampening).
    Reference code: if-loops/selective-synaptic-dampening, ``src/ssd.py`` (``calc_importance``,
    ``modify_weight``).

    ``even_batches`` (default on) is a deliberate deviation from the reference's data loaders, whose last
    batch is short: on CIFAR-10 (5 000 forget images at batch 128) it is one batch of 40, but on the
    1 437-image digits (143 forget images at batch 64: 64/64/15) the 15-example batch — its squared mean
    gradient far noisier — makes up a third of I_Df, selects most weights at α = 10 and drives random-10 %
    forgetting to chance (retain accuracy 9.7 %; 100 % with even batches of 48/48/47, forget accuracy
    100 % as for the original). ``even_batches=False`` runs the reference's batching.

    With a target (``unlearn(..., stop="target")``, the default) α is chosen by the probes of
    :func:`unlearnkit.probe.choose_knob` among ``ALPHA_FACTORS`` × the given α (the importances are computed
    once); the trace is in ``result.report["probe"]`` and ``result.hparams["alpha"]`` is the α used (the outcome's
    ``hparams``; the method object keeps the given α). The fraction of dampened parameters is the outcome's
    ``report["dampened_fraction"]``.
    """

    name = "ssd"
    needs_retain = True
    tasks = ("classification", "regression")
    reference_epochs = 0

    alpha: float = hp(10.0, low=0, low_open=True, doc="selection weighting α")
    dampening: float = hp(1.0, low=0, low_open=True, doc="dampening constant λ")
    batch_size: int = hp(64, low=1, doc="batch size of the importance estimates")
    even_batches: bool = hp(True, choices=(True, False), doc="equal-size batches (no short last batch)")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        model.to(request.device)
        full = TensorData.concat([request.retain, request.forget])
        dev, even = request.device, self.even_batches
        fisher = empirical_fisher_diagonal
        forget_imp = fisher(model, request.forget, request.task_loss, self.batch_size, dev, self.seed, even)
        global_imp = fisher(model, full, request.task_loss, self.batch_size, dev, self.seed, even)
        if request.target is None:
            fraction = dampen(model, forget_imp, global_imp, self.alpha, self.dampening)
            return Outcome(model, report={"dampened_fraction": fraction})

        fractions: dict[float, float] = {}

        def apply(m: nn.Module, alpha: float) -> None:
            fractions[alpha] = dampen(m, forget_imp, global_imp, alpha, self.dampening)

        probes = probe_sets(request.forget, request.retain, self.seed)
        grid = [self.alpha * f for f in ALPHA_FACTORS]
        search = choose_knob(model, request.target, *probes, dev, "alpha", grid, apply)
        chosen = search["chosen"]
        report = {"knob_search": search, "dampened_fraction": fractions[chosen] if chosen is not None else 0.0}
        # None: every α collapsed the model, which is left unchanged (and the given α is reported)
        return Outcome(model, report=report, hparams={"alpha": chosen} if chosen is not None else {})
