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
"""

from __future__ import annotations

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
    shard whose best surviving prefix is shorter. ``init``: initialisation of the untrained groups."""

    name: ClassVar[str] = "s3t"

    sequences: int | None = None
    min_depth: int = 1
    init: str = "kaiming"

    def __post_init__(self) -> None:
        super().__post_init__()
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
        return layer_groups(model, count)

    def prepare(self, model: nn.Module) -> None:
        """Check the model has a group per slice; with ``init="kaiming"`` re-draw linear and convolutional
        weights with He-normal (zero biases), so the still-untrained lower groups give informative random
        features to the groups trained first (the paper starts from a pre-trained backbone instead)."""
        layer_groups(model, self.slices)
        if self.init == "kaiming":
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
