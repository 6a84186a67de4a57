"""``UnlearnResult.save``: write an unlearned model in the form of its family, staged and swapped in whole
(:mod:`unlearnkit.outputs`) — a causal LM as a ``save_pretrained`` folder (or only its LoRA adapter), a
text-to-image model as its pipeline folder or checkpoint, any other model as a safetensors checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError


def save_result(
    result: Any, path: str | Path, *, tokenizer: Any = None, adapter_only: bool = False, overwrite: bool = False
) -> Path:
    """Write ``result.model`` with the method, hyper-parameters and seconds as metadata into the new folder
    ``path`` (an existing model only with ``overwrite``). ``adapter_only``: a language model unlearned with
    ``lora=True, adapter_only=True`` is written as its PEFT adapter folder
    (``peft.PeftModel.from_pretrained(base, path)``); ``tokenizer`` is saved beside a language model."""
    meta = {"method": result.method, "hparams": result.hparams, "seconds": result.seconds}
    model = result.model
    from .lm.model import is_causal_lm

    if is_causal_lm(model):
        from .lm.model import save_causal_lm

        return save_causal_lm(model, tokenizer, path, meta=meta, overwrite=overwrite, adapter_only=adapter_only)
    if adapter_only:
        raise ConfigError(
            "adapter_only saves a language model's LoRA adapter; this result holds a "
            f"{type(model).__name__}, save it without adapter_only"
        )
    from .diffusion.hf import DiffusersTextToImage
    from .diffusion.model import TextToImage
    from .diffusion.one_step import OneStepGenerator

    if isinstance(model, TextToImage | DiffusersTextToImage | OneStepGenerator):
        from .diffusion.io import save_model

        return save_model(model, path, meta, overwrite=overwrite)
    from .checkpoint import save

    return save(model, path, {"kind": "unlearned", **meta}, overwrite=overwrite)
