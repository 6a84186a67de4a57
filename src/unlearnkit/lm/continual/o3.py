"""O3's orthogonal LoRA: one low-rank adapter per unlearning request, each kept orthogonal to the earlier ones.

Reference: Gao et al., "Practical Unlearning for Large Language Models" (O3), code GCYZSL/O3-LLM-UNLEARNING:

* ``TOFU_experiment/src/model_src/lora_layer_hacked_o.py`` (``Linear.forward``): for the adapter being trained,
  every LoRA-wrapped linear layer adds ``Σ_i sum((A_i · A_kᵀ)²)`` over the frozen ``lora_A`` matrices ``A_i`` of
  the earlier requests (``A``: rank × in_features), i.e. the squared Frobenius norm of ``A_i A_kᵀ``; the layer's
  output is ``base(x)·w₀ + (B_k A_k x)·scaling·w₁`` with ``ood_weight = [w₀, w₁] = [1, w]``.
* ``TOFU_experiment/src/model_src/modeling_llama_hacked_o.py``: the per-module terms are summed within a decoder
  block, summed over blocks and divided by the number of blocks; ``LlamaForCausalLM_ood.forward`` adds
  ``scale · o_loss`` to the language-modelling loss with ``scale = orthogonal_loss_weight = 0.1``
  (``TOFU_experiment/src/model/unlearn.py``, ``init_model``). Only ``lora_A`` enters the loss
  (``init_olora``: "only lora_a").
* ``TOFU_experiment/src/model/unlearn.py``: LoRA r = 8, α = 32, dropout 0.05 on q/k/v/o/gate/up/down projections;
  ``configs/TOFU/O3.json``: method ``CL+FT``, 10 epochs, lr 2e-4, weight decay 0.1.
* ``TOFU_experiment/src/unlearn/CL.py`` (``CL_FT.compute_loss``): the unlearning loss of a request is the
  language-modelling loss on the forget questions relabelled with a refusal answer (``forget_data[3]``, the
  polite refusal responses); the retain term is commented out — O3 trains on forget data only.

Differences (this module is named ``O3`` but these are deliberate):

* the reference resumes training from the previous request's adapter file and, at inference, loads one adapter;
  here every request gets a fresh adapter ``(A_k, B_k)``, the earlier ones stay frozen and the output adds all of
  them, ``base(x) + w·scaling·Σ_k B_k A_k x`` (the structure the paper describes: one orthogonal adapter per
  request);
* the base output is never scaled (``w₀ = 1`` as in every reference call);
* LoRA dropout is 0 (tiny models) and the refusal answers are the benchmark's "I don't know" answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ...engine import Hook, Phase, Recipe, StepContext, train
from ...errors import ConfigError, ModelError
from ..encode import LMBatches, LMData
from ..losses import nll
from ..model import decoder_layers

#: the reference's orthogonality weight (``orthogonal_loss_weight``)
ORTHOGONAL_WEIGHT = 0.1


def _in_out(module: nn.Module) -> tuple[int, int] | None:
    """``(in_features, out_features)`` of an ``nn.Linear`` or a GPT-2 ``Conv1D`` (weight stored in × out)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return module.weight.shape[0], module.nf
    return None


class OrthogonalLoRALinear(nn.Module):
    """A linear layer plus a stack of LoRA adapters ``(A_k, B_k)``; only the last one (if any) trains.

    Output ``base(x) + gate · (α/r) · Σ_k B_k A_k x`` where ``gate`` is 1, a scalar, or one weight per row of the
    batch (set by :class:`unlearnkit.lm.continual.gate.GatedLM`). The package's one custom low-rank layer (the
    other adapters, S3T's and the LM methods' ``lora=True``, are peft's): peft's LoRA layers
    (``peft/tuners/lora/layer.py``, ``Linear.forward``) add each active adapter as ``lora_B(lora_A(x)) · scaling``
    with one fixed ``scaling`` per adapter for the whole batch, and their only per-row choice is the discrete
    ``adapter_names`` of a mixed batch (one adapter per row, at full weight). O3 needs a continuous soft weight
    per example, recomputed by the detectors on every forward, on the sum of all the requests' adapters (the
    reference patches peft's ``Linear.forward`` for it, ``lora_layer_hacked_o.py``); it also reads every
    ``A_k`` for the orthogonality loss and draws each new ``A_k`` from the request's own seeded generator."""

    def __init__(self, base: nn.Module, rank: int, alpha: float) -> None:
        super().__init__()
        dims = _in_out(base)
        if dims is None:
            raise ModelError(f"cannot put a LoRA adapter on {type(base).__name__}; only Linear and Conv1D layers")
        self.base = base
        self.in_features, self.out_features = dims
        self.rank = rank
        self.scaling = alpha / rank
        self.lora_A = nn.ParameterList()
        self.lora_B = nn.ParameterList()
        self.gate: torch.Tensor | float = 1.0

    def add_adapter(self, generator: torch.Generator) -> None:
        """Append a new adapter (A Kaiming-uniform as PEFT's default, B zero) and freeze the earlier ones."""
        for p in (*self.lora_A, *self.lora_B):
            p.requires_grad_(False)
        w = self.base.weight
        a = torch.empty(self.rank, self.in_features)
        bound = 1.0 / math.sqrt(self.in_features)  # kaiming_uniform_(a=sqrt(5)) on a (rank, in) matrix
        a.uniform_(-bound, bound, generator=generator)
        self.lora_A.append(nn.Parameter(a.to(w.device, w.dtype)))
        self.lora_B.append(nn.Parameter(torch.zeros(self.out_features, self.rank, device=w.device, dtype=w.dtype)))

    @property
    def n_adapters(self) -> int:
        return len(self.lora_A)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for a, b in zip(self.lora_A, self.lora_B):
            d = (x.to(a.dtype) @ a.t()) @ b.t()
            out = d if out is None else out + d
        assert out is not None
        return out * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if not self.n_adapters:
            return y
        g = self.gate
        if isinstance(g, torch.Tensor):
            if g.ndim == 1 and g.shape[0] != x.shape[0]:
                raise ModelError(f"gate holds {g.shape[0]} weights for a batch of {x.shape[0]} rows")
            g = g.to(y.device, y.dtype).reshape(-1, *([1] * (y.ndim - 1)))
            if not bool((g != 0).any()):
                return y
        elif g == 0:
            return y
        return y + g * self.delta(x).to(y.dtype)

    def orthogonality(self) -> torch.Tensor:
        """``Σ_{i<k} ‖A_i A_kᵀ‖²_F`` for the last adapter ``k`` (zero with fewer than two adapters)."""
        if self.n_adapters < 2:
            return self.lora_A[0].new_zeros(()) if self.n_adapters else torch.zeros(())
        new = self.lora_A[-1]
        return sum(((old @ new.t()) ** 2).sum() for old in list(self.lora_A)[:-1])


def lora_layers(model: nn.Module) -> list[OrthogonalLoRALinear]:
    return [m for m in model.modules() if isinstance(m, OrthogonalLoRALinear)]


def attach_lora(
    model: nn.Module, rank: int = 8, alpha: float = 32.0, targets: Sequence[str] | None = None
) -> list[list[OrthogonalLoRALinear]]:
    """Replace (in place) the linear layers of every decoder block of ``model`` by :class:`OrthogonalLoRALinear`
    (no adapter yet) and return them grouped by block. ``targets``: module-name suffixes to wrap (default: every
    Linear/Conv1D in the blocks, the reference's q/k/v/o/gate/up/down on Llama, c_attn/c_proj/c_fc on GPT-2).
    A model that already carries them is returned as it is."""
    blocks = decoder_layers(model)
    groups: list[list[OrthogonalLoRALinear]] = []
    for block in blocks:
        existing = [m for m in block.modules() if isinstance(m, OrthogonalLoRALinear)]
        if existing:
            groups.append(existing)
            continue
        group = []
        for name, module in list(block.named_modules()):
            if _in_out(module) is None or (targets and not any(name.endswith(t) for t in targets)):
                continue
            parent = block.get_submodule(name.rsplit(".", 1)[0]) if "." in name else block
            wrapped = OrthogonalLoRALinear(module, rank, alpha)
            setattr(parent, name.rsplit(".", 1)[-1], wrapped)
            group.append(wrapped)
        if not group:
            raise ModelError(f"no linear layer matches {list(targets or [])} in the blocks of {type(model).__name__}")
        groups.append(group)
    return groups


def orthogonal_loss(groups: Sequence[Sequence[OrthogonalLoRALinear]]) -> torch.Tensor:
    """The reference's ``o_loss``: per block the sum of the modules' :meth:`~OrthogonalLoRALinear.orthogonality`,
    summed over blocks and divided by the number of blocks."""
    per_block = [sum(m.orthogonality() for m in g) for g in groups]
    return sum(per_block) / len(groups)


def subspace_overlap(layer: OrthogonalLoRALinear, i: int, k: int) -> float:
    """How far the row spaces of ``A_i`` and ``A_k`` overlap: ``‖Q_iᵀ Q_k‖²_F / r`` with ``Q`` orthonormal bases
    (the mean squared cosine of the principal angles; 0 = orthogonal, 1 = the same subspace)."""
    qi = torch.linalg.qr(layer.lora_A[i].detach().float().t())[0]
    qk = torch.linalg.qr(layer.lora_A[k].detach().float().t())[0]
    return float((qi.t() @ qk).pow(2).sum() / min(qi.shape[1], qk.shape[1]))


def max_subspace_overlap(model: nn.Module) -> float:
    """The largest :func:`subspace_overlap` over every wrapped layer and every pair of adapters (0 with < 2)."""
    out = 0.0
    for layer in lora_layers(model):
        for k in range(layer.n_adapters):
            for i in range(k):
                out = max(out, subspace_overlap(layer, i, k))
    return out


def mean_subspace_overlap(model: nn.Module) -> tuple[float, float]:
    """``(overlap, random)``: the mean :func:`subspace_overlap` over every wrapped layer and every pair of adapters,
    and the same mean for independent uniformly random subspaces of the same sizes, ``r / in_features`` per pair
    (the expected mean squared cosine of the principal angles between two random ``r``-dimensional subspaces of
    ``R^d`` is ``r / d``). An overlap below the random value means the adapters were pushed apart; ``(nan, nan)``
    with fewer than two adapters."""
    got, rand = [], []
    for layer in lora_layers(model):
        for k in range(layer.n_adapters):
            for i in range(k):
                got.append(subspace_overlap(layer, i, k))
                rand.append(min(layer.rank, layer.in_features) / layer.in_features)
    if not got:
        return float("nan"), float("nan")
    return float(np.mean(got)), float(np.mean(rand))


@dataclass
class O3Config:
    """Per-request adapter training. Reference values: r 8, α 32, weight decay 0.1, orthogonal weight 0.1,
    10 epochs, lr 2e-4 (7B model); ``lr`` here is raised for tiny models trained from scratch."""

    rank: int = 8
    alpha: float = 32.0
    epochs: int = 10
    lr: float = 2e-4
    batch_size: int = 32
    weight_decay: float = 0.1
    orthogonal_weight: float = ORTHOGONAL_WEIGHT
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        if self.rank < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("O3: rank, epochs and batch_size must be >= 1")
        if self.lr <= 0 or self.alpha <= 0 or self.orthogonal_weight < 0:
            raise ConfigError("O3: lr and alpha must be > 0, orthogonal_weight >= 0")

    def recipe(self) -> Recipe:
        return Recipe(
            epochs=self.epochs,
            lr=self.lr,
            optimizer="adamw",
            weight_decay=self.weight_decay,
            schedule="constant",
            batch_size=self.batch_size,
            grad_clip=self.grad_clip,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class _OrthogonalHook(Hook):
    """Adds ``λ · o_loss`` to every step's loss (the reference adds it inside the model's forward)."""

    def __init__(self, groups: Sequence[Sequence[OrthogonalLoRALinear]], weight: float) -> None:
        self.groups, self.weight = groups, weight

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        if not self.weight:
            return None
        return self.weight * orthogonal_loss(self.groups)


def set_gate(model: nn.Module, gate: torch.Tensor | float) -> None:
    for layer in lora_layers(model):
        layer.gate = gate


def train_request_adapter(
    model: nn.Module,
    forget_alt: LMData,
    cfg: O3Config,
    *,
    seed: int = 0,
    device=None,
    progress: bool = False,
    desc: str = "o3",
) -> float:
    """Add one adapter to every wrapped layer of ``model`` (call :func:`attach_lora` first), freeze everything
    else, and train it on the request's forget questions relabelled with refusals (``forget_alt``) plus
    ``cfg.orthogonal_weight ×`` :func:`orthogonal_loss`. Returns the training seconds."""
    groups = [[m for m in block.modules() if isinstance(m, OrthogonalLoRALinear)] for block in decoder_layers(model)]
    if not any(groups):
        raise ModelError("the model has no LoRA layers; call attach_lora(model) first")
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    for layer in (m for g in groups for m in g):
        layer.add_adapter(gen)
        layer.gate = 1.0
    params: list[nn.Parameter] = [p for m in (x for g in groups for x in g) for p in (m.lora_A[-1], m.lora_B[-1])]
    for p in params:
        p.requires_grad_(True)
    phase = Phase("o3", LMBatches(forget_alt, cfg.batch_size, seed=seed), nll)
    log = train(
        model,
        phase,
        cfg.recipe(),
        device=device,
        hooks=[_OrthogonalHook(groups, cfg.orthogonal_weight)],
        params=params,
        seed=seed,
        progress=progress,
        desc=desc,
    )
    model.eval()
    return log.seconds


def trainable(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params if p.requires_grad)
