"""Data-parallel LM unlearning with Hugging Face Accelerate.

Every LM method trains through :func:`unlearnkit.engine.train`; given an ``accelerate.Accelerator`` (``LMRequest.
accelerator``, ``unlearn_lm(..., accelerator=...)``, ``lm-unlearn --accelerate``) the engine prepares the model and
optimiser with it (DDP over the launched processes) and each process trains on its own rows of every batch.

``batch_size`` stays the *global* batch: each batch is cut into one row chunk per process exactly as gradient
accumulation cuts it into micro-batches (:func:`micro_batches`), and DDP averages the
chunks' gradients. Each process scales its chunk's loss by ``N`` × its share of the batch (rows, or GA's scored
tokens: the method's ``accumulate_by``), so the average is the weighted sum that gradient accumulation takes. ``N``
processes therefore take the same steps as one process with ``grad_accum=N`` (same batches, same chunks, same
weighted gradient), only faster. Run it with, e.g.::

    accelerate launch --multi_gpu --num_processes 2 -m unlearnkit.cli lm-unlearn --accelerate --device cpu ...

(on CPUs, ``--multi_gpu`` makes the launcher start the processes with torchrun; they synchronise over gloo). A batch
with fewer rows than processes (a short last batch) is skipped by every process alike, so all take the same number
of steps, as DDP requires.

A model too large for one device is split over several GPUs instead by ``device_map="auto"`` at loading
(``load_causal_lm(path, device_map="auto")``, ``lm-unlearn --device-map auto``): one process, layers on different
devices, activations handed from one to the next (:func:`sharded_device`; not combined with an accelerator).
FSDP and DeepSpeed are refused (:func:`check_strategy`).

The classifier counterpart, with a per-process batch, is :mod:`unlearnkit.exact.data_parallel`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from ..engine import TrainLog
from ..errors import ConfigError, require
from .encode import IGNORE, _trim


def micro_batches(batch: tuple[torch.Tensor, ...], n: int) -> list[tuple[torch.Tensor, ...]]:
    """``batch`` (groups of ``(ids, mask, labels)``) cut into ``n`` row chunks, each group trimmed to its own
    longest row as a data loader would pad a micro-batch; empty chunks are dropped."""
    if len(batch) % 3:
        raise ValueError("an LM batch is made of (input_ids, attention_mask, labels) groups")
    groups = [batch[i : i + 3] for i in range(0, len(batch), 3)]
    chunks = [[t.tensor_split(n) for t in g] for g in groups]
    out = []
    for k in range(n):
        parts = [(ids[k], mask[k], lab[k]) for ids, mask, lab in chunks]
        if any(p[0].shape[0] == 0 for p in parts):
            continue
        out.append(tuple(t for p in parts for t in _trim(*p)))
    return out


def batch_units(batch: tuple[torch.Tensor, ...], unit: str) -> int:
    """Rows of a batch's first ``(ids, mask, labels)`` group, or its scored tokens (labels after the first
    position that are not ignored: what a token-mean next-token loss averages over)."""
    if unit == "tokens":
        return int((batch[2][:, 1:] != IGNORE).sum())
    if unit == "rows":
        return int(batch[0].shape[0])
    raise ValueError(f"unknown accumulation unit {unit!r}; use 'tokens' or 'rows'")


class ProcessShard:
    """This process's row chunk (of ``processes``) of every batch of ``batches``: the ``index``-th micro-batch that
    :func:`micro_batches` would cut, so the chunks of all processes together are the
    batch. Batches of any number of ``(ids, mask, labels)`` groups (paired forget/retain batches too)."""

    def __init__(
        self, batches: Iterable[tuple[torch.Tensor, ...]], processes: int, index: int, unit: str = "rows"
    ) -> None:
        if not 0 <= index < processes:
            raise ValueError(f"process index {index} outside 0..{processes - 1}")
        self.batches = batches
        self.processes = processes
        self.index = index
        self.unit = unit
        #: ``processes`` × this chunk's share of the current batch's ``unit``: what its loss is multiplied by
        self.scale = 1.0

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for batch in self.batches:
            if min(t.shape[0] for t in batch) < self.processes:
                continue  # every process sees the same batch, so all skip it
            chunks = micro_batches(batch, self.processes)
            units = [batch_units(c, self.unit) for c in chunks]
            self.scale = self.processes * units[self.index] / sum(units) if sum(units) else 1.0
            yield chunks[self.index]

    def scaled(self, loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``loss`` times :attr:`scale` of the chunk last yielded (the engine calls it on that chunk)."""

        def run(model: Any, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return loss(model, batch) * self.scale

        return run


def make_lm_accelerator(cpu: bool = False) -> Any:
    """An ``accelerate.Accelerator`` for LM methods (optional extra ``accelerate``). DDP is told that some
    parameters may get no gradient (RMU's loss stops at its layer; LoRA freezes the base weights)."""
    accelerate = require("accelerate", "accelerate")
    ddp = accelerate.utils.DistributedDataParallelKwargs(find_unused_parameters=True)
    return check_strategy(accelerate.Accelerator(cpu=cpu, kwargs_handlers=[ddp]))


#: what the LM methods support of Accelerate's distributed types: one process, or DDP over GPUs or CPU processes
DATA_PARALLEL = ("NO", "MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU")


def check_strategy(accelerator: Any) -> Any:
    """``accelerator`` when it runs one process or plain DDP. FSDP and DeepSpeed shard the trained model, while the
    methods' frozen reference (the original, or the LoRA model with its adapters off) is called outside the
    sharded wrapper: that is not supported, so it is refused before any step."""
    kind = getattr(accelerator.distributed_type, "name", str(accelerator.distributed_type))
    if kind not in DATA_PARALLEL:
        raise ConfigError(
            f"LM unlearning runs data-parallel (DDP) through Accelerate, not {kind}: launch with "
            "`accelerate launch --multi_gpu --num_processes N ...`, or load a model too large for one device with "
            "`--device-map auto` (one process)"
        )
    return accelerator


def sharded_device(model: Any) -> torch.device | None:
    """The device that a model split over several devices by ``device_map`` (``from_pretrained(...,
    device_map="auto")``: ``model.hf_device_map``) takes its inputs on, its input embeddings'; ``None`` for a model
    on one device. Weights offloaded to ``"cpu"`` or ``"disk"`` next to GPUs (kept on the ``meta`` device, loaded
    at each call) cannot be trained and are refused."""
    placed = getattr(model, "hf_device_map", None) or {}
    if len({str(d) for d in placed.values()}) <= 1:
        return None
    if any(p.device.type == "meta" for p in model.parameters()):
        raise ConfigError(
            "the model has weights offloaded (to the CPU or disk) by its device_map; training needs every weight on "
            "a device: give device_map GPUs with room for the whole model (max_memory), or use more GPUs"
        )
    return model.get_input_embeddings().weight.device


def shard_for(batches: Any, accelerator: Any | None, unit: str = "rows") -> Any:
    """``batches`` as this process's shard when ``accelerator`` runs several processes, else unchanged."""
    if accelerator is None or accelerator.num_processes <= 1:
        return batches
    return ProcessShard(batches, accelerator.num_processes, accelerator.process_index, unit)


def global_log(log: TrainLog, accelerator: Any | None) -> TrainLog:
    """``log`` with each epoch's mean loss averaged over the processes (the loss of the whole batches: with equal
    chunks, the mean of the chunks' losses, as gradient accumulation logs it)."""
    if accelerator is None or accelerator.num_processes <= 1 or not log.epoch_losses:
        return log
    keys = sorted({k for epoch in log.epoch_losses for k in epoch})
    local = torch.tensor([[e.get(k, float("nan")) for k in keys] for e in log.epoch_losses], dtype=torch.float64)
    mean = accelerator.reduce(local.to(accelerator.device), reduction="mean").cpu()
    log.epoch_losses = [{k: float(v) for k, v in zip(keys, row)} for row in mean]
    return log
