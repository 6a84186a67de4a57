"""S3T: Sequence-aware Sharded Sliced Training (Chowdhury et al., "Towards Scalable Exact Machine
Unlearning Using Parameter-Efficient Fine-Tuning", arXiv:2406.16257, 2024).

Within a shard, step ``i`` trains only the ``i``-th *parameter group* from the top (a block of layers here;
LoRA adapters in the paper) on slices ``π(1)…π(i)`` while every other group stays fixed. Groups are
disjoint, so the model after ``k`` steps is exactly the final model with groups ``k+1…R`` reset to their
initial values: a deletion in slice ``π(j)`` *deactivates* the groups trained from step ``j`` on instead of
retraining. Each shard trains ``sequences`` slice orders (cyclic rotations, the paper's first sequence
selection strategy) so that after deletions some deep prefix usually survives; inference uses, per shard,
the sequence whose surviving prefix is longest. A shard whose best prefix falls below ``min_depth`` is
retrained from its surviving checkpoints.

With ``backbone=True`` (the paper's setting) every constituent starts from one frozen backbone pre-trained
on a split the user declares non-deletable, and the parameter groups are low-rank adapters: every
``nn.Linear`` / ``nn.Conv2d`` gets a LoRA branch (Hu et al., ICLR 2022; initialised as in peft's
``peft/tuners/lora/layer.py``: ``A`` Kaiming-uniform with ``a=√5``, ``B`` zero, output scaled by
``alpha / rank``). Step ``i`` trains the adapters of the ``i``-th block of layers from the top; an adapter
at its initial value adds exactly zero, so a deactivated group falls back to the backbone, not to noise.
Reference code: https://github.com/brcsomnath/S3T (the paper's sliced training over PEFT layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..data.tensors import Batches, TensorData
from ..engine import Hook, Phase, Recipe, StepContext, TrainLog, train
from ..errors import ConfigError, ModelError
from ..losses import cross_entropy
from .sisa import SISA


def layer_groups(model: nn.Module, count: int) -> list[list[str]]:
    """Split the modules that own parameters into ``count`` contiguous blocks; block 0 is the top (output
    side). Returns the module names of each block."""
    owners = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    if len(owners) < count:
        raise ModelError(
            f"S3T needs at least one parameterised layer per slice: the model has {len(owners)} "
            f"({', '.join(owners)}) for {count} slices; use fewer slices or a deeper model "
            "(e.g. model 'mlp' with hidden=[256, 256, 128])"
        )
    blocks = np.array_split(np.arange(len(owners)), count)
    return [[owners[i] for i in block] for block in reversed(blocks)]


def group_state_names(model: nn.Module, modules: list[str]) -> list[str]:
    """State-dict names (parameters and buffers) owned by ``modules``."""
    wanted = set(modules)
    names = []
    for mname, m in model.named_modules():
        if mname in wanted:
            prefix = f"{mname}." if mname else ""
            names += [prefix + n for n, _ in m.named_parameters(recurse=False)]
            names += [prefix + n for n, _ in m.named_buffers(recurse=False)]
    return names


class LoRALinear(nn.Module):
    """``base(x) + (alpha / rank) · B A x`` with ``base`` frozen (never handed to an optimiser by S3T)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scaling = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


class LoRAConv2d(nn.Module):
    """The convolutional form: ``A`` is a ``rank``-channel convolution with the base's kernel, stride and
    padding, ``B`` a 1×1 convolution back to the output channels (as in peft's ``Conv2d`` LoRA layer)."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scaling = alpha / rank
        k = base.kernel_size
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_channels // base.groups, *k))
        self.lora_B = nn.Parameter(torch.zeros(base.out_channels, rank, 1, 1))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.base
        h = nn.functional.conv2d(x, self.lora_A, None, b.stride, b.padding, b.dilation, b.groups)
        return b(x) + nn.functional.conv2d(h, self.lora_B) * self.scaling


def attach_adapters(model: nn.Module, rank: int, alpha: float) -> list[str]:
    """Wrap every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` in place with a LoRA branch; returns the
    wrapped modules' names in model order."""
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d) and n]
    for name, m in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        wrapped = LoRALinear(m, rank, alpha) if isinstance(m, nn.Linear) else LoRAConv2d(m, rank, alpha)
        setattr(parent, attr, wrapped)
    return [n for n, _ in targets]


def adapter_groups(model: nn.Module, count: int) -> list[list[str]]:
    """The LoRA modules of ``model`` split into ``count`` contiguous blocks, block 0 at the top."""
    owners = [n for n, m in model.named_modules() if isinstance(m, LoRALinear | LoRAConv2d)]
    if len(owners) < count:
        raise ModelError(
            f"S3T needs at least one adapted layer per slice: the model has {len(owners)} linear/convolutional "
            f"layers for {count} slices; use fewer slices or a deeper model"
        )
    blocks = np.array_split(np.arange(len(owners)), count)
    return [[owners[i] for i in block] for block in reversed(blocks)]


class KeepOtherGroups(Hook):
    """Restores every buffer outside the trained group after each step (e.g. BatchNorm running statistics),
    so a step changes nothing but its own group."""

    def __init__(self, model: nn.Module, trained: set[str]) -> None:
        self.saved = {n: b.detach().clone() for n, b in model.named_buffers() if n not in trained}
        self.buffers = dict(model.named_buffers())

    def after_step(self, ctx: StepContext) -> None:
        with torch.no_grad():
            for n, value in self.saved.items():
                self.buffers[n].copy_(value)


@dataclass(kw_only=True)
class S3T(SISA):
    """S3T's layout. ``sequences`` (the budget ``B``) defaults to ``slices``, i.e. every cyclic rotation, so
    one deletion anywhere always leaves a prefix of depth ``R - 1`` in some sequence. ``min_depth``: retrain a
    shard whose best surviving prefix is shorter. ``init``: initialisation of the untrained groups (layer
    groups only). ``backbone``: groups are LoRA adapters of ``rank`` (scale ``alpha / rank``) over a frozen
    backbone pre-trained on the declared non-deletable split."""

    name: ClassVar[str] = "s3t"

    sequences: int | None = None
    min_depth: int = 1
    init: str = "kaiming"
    backbone: bool = False
    rank: int = 8
    alpha: float = 8.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.rank) != self.rank or self.rank < 1 or self.alpha <= 0:
            raise ConfigError(f"s3t: rank must be an integer >= 1 and alpha > 0, got {self.rank}, {self.alpha}")
        if self.sequences is None:
            self.sequences = self.slices
        if int(self.sequences) != self.sequences or not 1 <= self.sequences <= self.slices:
            raise ConfigError(f"s3t: sequences must be an integer in [1, slices={self.slices}], got {self.sequences}")
        if not 0 <= self.min_depth <= self.slices:
            raise ConfigError(f"s3t: min_depth must be in [0, slices={self.slices}], got {self.min_depth}")
        if self.init not in ("kaiming", "default"):
            raise ConfigError(f"s3t: init must be 'kaiming' or 'default', got {self.init!r}")

    def orders(self) -> list[list[int]]:
        """``sequences`` cyclic rotations of the slices, spread evenly over the possible starts."""
        r, b = self.slices, int(self.sequences or self.slices)
        starts = sorted({(k * r) // b for k in range(b)})
        return [[(s + i) % r for i in range(r)] for s in starts]

    def group_names(self, model: nn.Module, count: int) -> list[list[str]]:
        """Module names of every parameter group, top group first."""
        return adapter_groups(model, count) if self.backbone else layer_groups(model, count)

    def attach(self, model: nn.Module) -> None:
        if self.backbone:
            attach_adapters(model, self.rank, self.alpha)

    def prepare(self, model: nn.Module) -> None:
        """Check the model has a group per slice; with ``init="kaiming"`` re-draw linear and convolutional
        weights with He-normal (zero biases), so the still-untrained lower groups give informative random
        features to the groups trained first (the paper starts from a pre-trained backbone instead)."""
        self.group_names(model, self.slices)
        if self.init == "kaiming" and not self.backbone:
            for m in model.modules():
                if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def train_step(
        self,
        model: nn.Module,
        data: TensorData,
        step: int,
        recipe: Recipe,
        *,
        seed: int,
        device: str | torch.device | None = None,
    ) -> tuple[TrainLog, list[str]]:
        """Train only group ``step`` (counted from the top) on ``data`` through the shared engine."""
        modules = self.group_names(model, self.slices)[step]
        names = group_state_names(model, modules)
        trained = set(names)
        params = [p for n, p in model.named_parameters() if n in trained]
        rec = self.step_recipe(recipe)
        batches = Batches(data, rec.batch_size, shuffle=True, seed=seed)
        hook = KeepOtherGroups(model, trained)
        log = train(
            model,
            Phase("train", batches, cross_entropy),
            rec,
            params=params,
            hooks=[hook],
            device=device,
            seed=seed,
            progress=False,
            desc=f"s3t step {step}",
        )
        return log, names
