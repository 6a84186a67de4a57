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
``nn.Linear`` / ``nn.Conv2d`` gets peft's LoRA layer with the named adapter :data:`ADAPTER` (Hu et al.,
ICLR 2022; peft's ``peft/tuners/lora/layer.py``, ``Linear`` and ``Conv2d``: ``A`` Kaiming-uniform with
``a=√5``, ``B`` zero, output scaled by ``alpha / rank``; the ``exact`` extra). Step ``i`` trains the adapters
of the ``i``-th block of layers from the top; an adapter at its initial value adds exactly zero, so a
deactivated group falls back to the backbone, not to noise. The slice sequencing (which block trains on which
slices, which are deactivated after a deletion) is S3T's own and needs nothing from the adapter layer.
Reference code: https://github.com/brcsomnath/S3T (the paper's sliced training over PEFT layers).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..data.tensors import Batches, TensorData
from ..engine import Hook, Phase, Recipe, StepContext, TrainLog, train
from ..errors import ConfigError, ModelError, require
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


#: the name of S3T's adapter in peft's LoRA layers
ADAPTER = "s3t"


def is_adapter_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a peft LoRA layer carrying S3T's adapter."""
    lora_a = getattr(module, "lora_A", None)
    return isinstance(lora_a, nn.ModuleDict) and ADAPTER in lora_a


def group_state_names(model: nn.Module, modules: list[str]) -> list[str]:
    """State-dict names (parameters and buffers) owned by ``modules``; of an adapted layer, its adapter's
    parameters only (its base layer belongs to the frozen backbone)."""
    wanted = set(modules)
    names = []
    for mname, m in model.named_modules():
        if mname in wanted:
            prefix = f"{mname}." if mname else ""
            if is_adapter_layer(m):
                own = (f"lora_A.{ADAPTER}.", f"lora_B.{ADAPTER}.")
                names += [prefix + n for n, _ in m.named_parameters() if n.startswith(own)]
                continue
            names += [prefix + n for n, _ in m.named_parameters(recurse=False)]
            names += [prefix + n for n, _ in m.named_buffers(recurse=False)]
    return names


def attach_adapters(model: nn.Module, rank: int, alpha: float) -> list[str]:
    """Give every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` (in place) peft's LoRA layer with the named adapter
    :data:`ADAPTER` (rank ``rank``, scale ``alpha / rank``, no dropout; the base layers frozen); returns the
    adapted modules' names in model order. ``A`` is drawn Kaiming-uniform (``a=√5``) from the global CPU
    generator one layer after the other in model order and ``B`` is zero, so the adapters of a seeded build are the same
    whatever peft draws while it creates its layers."""
    targets = [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d) and n]
    if not targets:
        return []
    peft = require("peft", extra="exact")
    config = peft.LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules="(" + "|".join(map(re.escape, targets)) + ")"
    )
    state = torch.get_rng_state()
    peft.inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    torch.set_rng_state(state)
    with torch.no_grad():
        for name in targets:
            layer = model.get_submodule(name)
            a = layer.lora_A[ADAPTER].weight
            a.copy_(nn.init.kaiming_uniform_(torch.empty(a.shape), a=math.sqrt(5)))  # drawn on the CPU generator
            nn.init.zeros_(layer.lora_B[ADAPTER].weight)
    return targets


def adapter_groups(model: nn.Module, count: int) -> list[list[str]]:
    """The adapted layers of ``model`` split into ``count`` contiguous blocks, block 0 at the top."""
    owners = [n for n, m in model.named_modules() if is_adapter_layer(m)]
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
    groups only). ``backbone``: groups are peft LoRA adapters of ``rank`` (scale ``alpha / rank``) over a frozen
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
        if self.backbone:
            require("peft", extra="exact")  # the adapters are peft's: say so before any training

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
