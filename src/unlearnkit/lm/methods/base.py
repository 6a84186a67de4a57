"""What language-model unlearning methods share: the request they read, the common hyper-parameters
(published TOFU recipe: AdamW, lr 1e-5, batch 32, 5 epochs, weight decay 0.01), optional LoRA training and the
knobs for large models (gradient accumulation, autocast precision, gradient checkpointing)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from ...data.tensors import PairedBatches
from ...engine import SCHEDULES, Phase
from ...errors import ConfigError, require
from ...methods.base import Method, UnlearnRequest, hp
from ...methods.context import Outcome, RunContext
from ..encode import LMBatches, LMData
from ..parallel import ProcessShard, batch_units, global_log, micro_batches, shard_for  # noqa: F401  (re-exported)
from ..positions import check_width
from ..probe import LMProbe
from ..reference import AdapterOff

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
    #: the frozen reference when it is not the original: in a LoRA run, the trained PEFT model with its adapters
    #: off (:class:`unlearnkit.lm.reference.AdapterOff`; set by :meth:`LMMethod.run`)
    reference: nn.Module | None = None
    #: ``original`` is the model being trained (``unlearn_lm(..., inplace=True)``): a reference is copied from it
    #: before the first step unless :attr:`reference` is set
    trains_original: bool = False
    #: the probe samples of the held-out target (:mod:`unlearnkit.lm.probe`); None runs the whole budget
    lm_target: Any = None

    def frozen_original(self) -> nn.Module:
        """The original itself as the frozen reference (eval mode; callers run it under ``torch.no_grad``), so no
        second copy of a large model is made; a copy only when the original sits on another device or is the model
        being trained. In a LoRA run, the trained model with its adapters off (:attr:`reference`)."""
        if self.reference is not None:
            return self.reference
        if self.trains_original:
            return super().frozen_original()
        first = next(self.original.parameters(), None)
        here = first is None or (
            first.device.type == self.device.type and self.device.index in (None, first.device.index)
        )
        if not here:
            return super().frozen_original()
        return self.original.eval()


@dataclass(kw_only=True, frozen=True)
class LMMethod(Method):
    """Base of the ``lm`` domain. Subclasses implement :meth:`unlearn` with ``self.fit_loss``; with ``lora=True``
    only LoRA adapters (Hu et al., ICLR 2022; huggingface/peft ``src/peft/tuners/lora/model.py``) train and are
    merged into the weights afterwards, or with ``adapter_only=True`` kept apart: the result is then a
    ``peft.PeftModel`` whose ``save_pretrained`` writes only the adapter."""

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
    adapter_only: bool = hp(
        False, choices=(False, True), doc="with lora: keep the adapter unmerged (a PeftModel; saved as an adapter)"
    )
    grad_accum: int = hp(1, low=1, doc="split each batch into this many micro-batches (same gradient, less memory)")
    precision: str = hp("fp32", choices=tuple(PRECISIONS), doc="autocast dtype of the forward passes")
    gradient_checkpointing: bool = hp(False, choices=(False, True), doc="recompute activations in backward")

    def check(self, request: UnlearnRequest) -> None:
        super().check(request)
        if self.adapter_only and not self.lora:
            raise ConfigError(f"{self.name}: adapter_only=True keeps a LoRA adapter; pass lora=True with it")
        if not isinstance(request.forget, LMData) or not isinstance(request.retain, LMData):
            raise ConfigError(f"{self.name}: forget and retain must be LMData; build the request with unlearn_lm()")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        assert isinstance(request, LMRequest)
        if not self.lora:
            return Outcome(model, report=self.unlearn(model, request, ctx) or {})
        peft = require("peft", extra="lm")
        config = peft.LoraConfig(r=self.lora_rank, lora_alpha=self.lora_alpha, lora_dropout=0.0)
        with torch.random.fork_rng(devices=[]):  # the adapter's random init follows the method's seed
            torch.manual_seed(self.seed)
            wrapped = peft.get_peft_model(model, config)
        # the base weights stay the original's: the adapters switched off are the reference, no second copy
        report = self.unlearn(wrapped, replace(request, reference=AdapterOff(wrapped)), ctx) or {}
        if self.adapter_only:
            return Outcome(wrapped, report=report)
        merged = wrapped.merge_and_unload()
        for p in merged.parameters():  # PEFT froze the base weights; hand back an ordinary trainable model
            p.requires_grad_(True)
        return Outcome(merged, report=report)

    @abstractmethod
    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> dict[str, Any] | None:
        """Modify ``model`` in place through ``self.fit_loss(ctx, ...)``; return the method's findings for the
        :class:`~unlearnkit.methods.context.Outcome`'s report (JSON-ready), or None."""

    # ---- batch streams ---------------------------------------------------------------------------------
    def forget_batches(self, request: LMRequest, *extra: LMData) -> LMBatches:
        return LMBatches([request.forget, *extra], self.batch_size, seed=self.seed)

    def paired_batches(self, request: LMRequest, *extra: LMData) -> PairedBatches:
        """Forget batches (plus row-aligned ``extra``) each followed by the next batch of an endless retain
        stream (its cycle carries on across epochs)."""
        retain = LMBatches(request.retain, self.batch_size, seed=self.seed + 1)
        return PairedBatches(self.forget_batches(request, *extra), retain, restart_each_pass=False)

    def fit_loss(self, ctx: RunContext, model: nn.Module, request: LMRequest, batches, loss, **kw: Any) -> None:
        """Train ``loss`` on ``batches`` through the engine (``ctx.fit``), with this method's accumulation, precision
        and checkpointing applied to the loss function, data-parallel when the request has an accelerator (each
        process trains on its chunk of every batch); the run's log in ``ctx`` holds the losses averaged over
        processes. With ``request.lm_target`` the run is probed against it (:class:`~unlearnkit.lm.probe.LMProbe`,
        kept in ``ctx.probes``)."""
        for name, data in (("forget", request.forget), ("retain", request.retain), ("forget_alt", request.forget_alt)):
            if data is not None:  # before any step: a position table indexed past its end fails deep in the model
                check_width(model, int(data.input_ids.shape[1]), f"{name} rows")
        acc = request.accelerator
        batches = shard_for(batches, acc, self.accumulate_by)
        wrapped = accumulated(autocast(loss, request.device, self.precision), self.grad_accum, self.accumulate_by)
        if isinstance(batches, ProcessShard):
            wrapped = batches.scaled(wrapped)
        if request.lm_target is not None and self.probed:  # after the method's own hooks (they fix up each step)
            probe = LMProbe(request.lm_target, request.original, request.device)
            kw["hooks"] = [*kw.get("hooks", ()), probe]
            ctx.probes.append(probe)
        checkpointing = self.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable")
        if checkpointing:
            model.gradient_checkpointing_enable()
            if hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()  # LoRA: the frozen embeddings must still pass gradients
        try:
            ctx.fit(self, model, Phase("unlearn", batches, wrapped), request, **kw)
            ctx.fits[-1].log = global_log(ctx.fits[-1].log, acc)
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
