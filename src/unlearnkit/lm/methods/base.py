"""What language-model unlearning methods share: the request they read, the common hyper-parameters
(published TOFU recipe: AdamW, lr 1e-5, batch 32, 5 epochs, weight decay 0.01), optional LoRA training and the
knobs for large models (gradient accumulation, autocast precision, gradient checkpointing)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ...engine import SCHEDULES, Phase
from ...errors import ConfigError, require
from ...methods.base import Method, UnlearnRequest, hp
from ..encode import LMBatches, LMData, PairedBatches
from ..parallel import ProcessShard, batch_units, global_log, micro_batches, shard_for  # noqa: F401  (re-exported)
from ..positions import check_width

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class LMRequest(UnlearnRequest):
    """An :class:`UnlearnRequest` whose ``forget``/``retain`` are :class:`LMData` (answer tokens labelled).

    ``forget_alt`` holds the forget prompts with an alternative answer ("I don't know"), row-aligned with
    ``forget``; ``tokenizer`` is the model's tokenizer; ``forget_records``/``retain_records`` are the QA records
    the data were encoded from (empty for text corpora); with an ``accelerate.Accelerator`` in ``accelerator``
    the methods train data-parallel over its processes (:mod:`unlearnkit.lm.parallel`)."""

    task: str = "lm"
    tokenizer: Any = None
    forget_alt: LMData | None = None
    forget_records: list = field(default_factory=list)
    retain_records: list = field(default_factory=list)
    accelerator: Any = None

    def frozen_original(self) -> nn.Module:
        """The original itself as the frozen reference (eval mode; callers run it under ``torch.no_grad``), so no
        second copy of a large model is made; a copy only when the original sits on another device."""
        first = next(self.original.parameters(), None)
        here = first is None or (
            first.device.type == self.device.type and self.device.index in (None, first.device.index)
        )
        if not here:
            return super().frozen_original()
        return self.original.eval()


@dataclass(kw_only=True)
class LMMethod(Method):
    """Base of the ``lm`` domain. Subclasses implement :meth:`unlearn` with ``self.fit``; with ``lora=True``
    only LoRA adapters (Hu et al., ICLR 2022) train and are merged into the weights afterwards."""

    domain = "lm"
    tasks = ("lm",)
    reference_epochs = 5
    #: what the method's forget loss averages over, so that gradient accumulation weighs each micro-batch by its
    #: share of the batch (:func:`accumulated`): ``"tokens"`` (a token-mean NLL) or ``"rows"`` (a mean over rows)
    accumulate_by: ClassVar[str] = "rows"

    epochs: int = hp(5, low=1)
    lr: float = hp(1e-5, low=0, low_open=True)
    batch_size: int = hp(32, low=1)
    weight_decay: float = hp(0.01, low=0)
    optimizer: str = hp("adamw", choices=("adamw", "adam", "sgd"))
    schedule: str = hp("constant", choices=SCHEDULES, doc="learning-rate schedule (TOFU's recipe: warmup-linear)")
    grad_clip: float = hp(1.0, low=0, low_open=True)
    lora: bool = hp(False, choices=(False, True), doc="train LoRA adapters only (saves optimiser memory)")
    lora_rank: int = hp(8, low=1)
    lora_alpha: float = hp(16.0, low=0, low_open=True)
    grad_accum: int = hp(1, low=1, doc="split each batch into this many micro-batches (same gradient, less memory)")
    precision: str = hp("fp32", choices=tuple(PRECISIONS), doc="autocast dtype of the forward passes")
    gradient_checkpointing: bool = hp(False, choices=(False, True), doc="recompute activations in backward")

    def check(self, request: UnlearnRequest) -> None:
        super().check(request)
        if not isinstance(request.forget, LMData) or not isinstance(request.retain, LMData):
            raise ConfigError(f"{self.name}: forget and retain must be LMData; build the request with unlearn_lm()")

    def run(self, model: nn.Module, request: UnlearnRequest) -> nn.Module:
        assert isinstance(request, LMRequest)
        if not self.lora:
            self.unlearn(model, request)
            return model
        peft = require("peft", extra="lm")
        config = peft.LoraConfig(r=self.lora_rank, lora_alpha=self.lora_alpha, lora_dropout=0.0)
        wrapped = peft.get_peft_model(model, config)
        self.unlearn(wrapped, request)
        merged = wrapped.merge_and_unload()
        for p in merged.parameters():  # PEFT froze the base weights; hand back an ordinary trainable model
            p.requires_grad_(True)
        return merged

    @abstractmethod
    def unlearn(self, model: nn.Module, request: LMRequest) -> None:
        """Modify ``model`` in place through ``self.fit``."""

    # ---- batch streams ---------------------------------------------------------------------------------
    def forget_batches(self, request: LMRequest, *extra: LMData) -> LMBatches:
        return LMBatches([request.forget, *extra], self.batch_size, seed=self.seed)

    def paired_batches(self, request: LMRequest, *extra: LMData) -> PairedBatches:
        """Forget batches (plus row-aligned ``extra``) each followed by a retain batch."""
        retain = LMBatches(request.retain, self.batch_size, seed=self.seed + 1)
        return PairedBatches(self.forget_batches(request, *extra), retain)

    def fit_loss(self, model: nn.Module, request: LMRequest, batches, loss, **kw: Any) -> None:
        """Train ``loss`` on ``batches`` through the engine, with this method's accumulation, precision and
        checkpointing applied to the loss function, data-parallel when the request has an accelerator (each
        process trains on its chunk of every batch); the log, losses averaged over processes, is ``train_log``."""
        for name, data in (("forget", request.forget), ("retain", request.retain), ("forget_alt", request.forget_alt)):
            if data is not None:  # before any step: a position table indexed past its end fails deep in the model
                check_width(model, int(data.input_ids.shape[1]), f"{name} rows")
        acc = request.accelerator
        batches = shard_for(batches, acc, self.accumulate_by)
        wrapped = accumulated(autocast(loss, request.device, self.precision), self.grad_accum, self.accumulate_by)
        if isinstance(batches, ProcessShard):
            wrapped = batches.scaled(wrapped)
        checkpointing = self.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable")
        if checkpointing:
            model.gradient_checkpointing_enable()
            if hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()  # LoRA: the frozen embeddings must still pass gradients
        try:
            self.train_log = global_log(self.fit(model, Phase("unlearn", batches, wrapped), request, **kw), acc)
        finally:
            if checkpointing:
                model.gradient_checkpointing_disable()


LossFn = Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]


def autocast(loss: LossFn, device: torch.device, precision: str) -> LossFn:
    """``loss`` with its forward passes under ``torch.autocast`` in ``precision`` (``fp32``: unchanged). fp16 has
    no loss scaling here; prefer bf16 where the hardware has it."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return loss

    def run(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=dtype):
            out = loss(model, batch)
        return out.float()

    return run


def accumulated(loss: LossFn, n: int, unit: str = "rows") -> LossFn:
    """Gradient accumulation inside one engine step: the loss of each of ``n`` micro-batches is weighted by its
    share of the batch's ``unit`` (:func:`batch_units` of the first group: rows, or scored tokens) and
    back-propagated at once (only one micro-batch's activations live at a time); the last one is returned for the
    engine's ``backward``, plus the others' detached values, so the logged loss is the weighted sum. The gradient
    is that of the full batch for a loss that averages over ``unit`` of the first group (GA's token-mean NLL with
    ``"tokens"``; NPO's, SimNPO's, IdkDPO's and RMU's row means with ``"rows"``); a second term averaged over
    another unit (a retain NLL, a KL over every padded position) takes the same weights and is exact only when the
    micro-batches hold equal shares of that unit too."""
    if n <= 1:
        return loss

    def run(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        parts = micro_batches(batch, n)
        units = [batch_units(part, unit) for part in parts]
        total = sum(units)
        weights = [u / total for u in units] if total else [1 / len(parts)] * len(parts)
        done = torch.zeros(())
        for part, w in zip(parts[:-1], weights[:-1]):
            value = loss(model, part) * w
            value.backward()
            done = done + value.detach().cpu()
        return loss(model, parts[-1]) * weights[-1] + done.to(batch[0].device)

    return run
