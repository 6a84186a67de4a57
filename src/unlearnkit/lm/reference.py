"""The frozen reference of a LoRA run without a second copy of the model: the PEFT model with its adapters off.

While only LoRA adapters train, the base weights under them stay the original's, so the wrapped model run inside
peft's ``disable_adapter()`` context computes the original model's outputs. NPO, IdkDPO, UNDIAL and the KL retain
terms use it as their reference when ``lora=True`` (:meth:`unlearnkit.lm.methods.base.LMMethod.run`); with
``unlearn_lm(..., inplace=True)`` one copy of the weights is then held instead of two (the trainable copy and the
original), which halves a LoRA run's memory on a large model (``benchmarks/lm_scale.py``). The same technique as
``trl``'s ``DPOTrainer`` given a PEFT model and no reference model (``null_ref_context`` in
``trl/trainer/dpo_trainer.py``).
"""

from __future__ import annotations

from typing import Any

from torch import nn


class AdapterOff(nn.Module):
    """``peft_model`` run in eval mode with its adapters disabled (then put back in the mode it was in).

    The PEFT model is held outside the module tree, so ``parameters()``, ``eval()`` or ``requires_grad_`` on the
    reference never reach the trainable adapters; call it under ``torch.no_grad()`` like any frozen reference."""

    def __init__(self, peft_model: nn.Module) -> None:
        super().__init__()
        if not hasattr(peft_model, "disable_adapter"):
            raise TypeError(f"AdapterOff needs a PEFT model (with disable_adapter()), got {type(peft_model).__name__}")
        self.__dict__["peft_model"] = peft_model  # not a submodule: its parameters stay its own

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        model = self.__dict__["peft_model"]
        was_training = model.training
        model.eval()  # the original reference runs without dropout
        try:
            with model.disable_adapter():
                return model(*args, **kwargs)
        finally:
            model.train(was_training)
