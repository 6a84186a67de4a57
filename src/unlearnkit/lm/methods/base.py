"""What language-model unlearning methods share: the request they read, the common hyper-parameters
(published TOFU recipe: AdamW, lr 1e-5, batch 32, 5 epochs, weight decay 0.01) and optional LoRA training."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from torch import nn

from ...engine import Phase
from ...errors import ConfigError, require
from ...methods.base import Method, UnlearnRequest, hp
from ..encode import LMBatches, LMData, PairedBatches


@dataclass
class LMRequest(UnlearnRequest):
    """An :class:`UnlearnRequest` whose ``forget``/``retain`` are :class:`LMData` (answer tokens labelled).

    ``forget_alt`` holds the forget prompts with an alternative answer ("I don't know"), row-aligned with
    ``forget``; ``tokenizer`` is the model's tokenizer."""

    task: str = "lm"
    tokenizer: Any = None
    forget_alt: LMData | None = None


@dataclass(kw_only=True)
class LMMethod(Method):
    """Base of the ``lm`` domain. Subclasses implement :meth:`unlearn` with ``self.fit``; with ``lora=True``
    only LoRA adapters (Hu et al., ICLR 2022) train and are merged into the weights afterwards."""

    domain = "lm"
    tasks = ("lm",)
    reference_epochs = 5

    epochs: int = hp(5, low=1)
    lr: float = hp(1e-5, low=0, low_open=True)
    batch_size: int = hp(32, low=1)
    weight_decay: float = hp(0.01, low=0)
    optimizer: str = hp("adamw", choices=("adamw", "adam", "sgd"))
    grad_clip: float = hp(1.0, low=0, low_open=True)
    lora: bool = hp(False, choices=(False, True), doc="train LoRA adapters only (saves optimiser memory)")
    lora_rank: int = hp(8, low=1)
    lora_alpha: float = hp(16.0, low=0, low_open=True)

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
        self.fit(model, Phase("unlearn", batches, loss), request, **kw)
