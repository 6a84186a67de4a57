"""Named recipes for LM unlearning: hyper-parameters applied to every method before the user's own.

``tofu``: the reference TOFU unlearning recipe of open-unlearning (``configs/experiment/unlearn/tofu/*.yaml`` and
``configs/trainer/finetune.yaml`` of locuslab/open-unlearning): 10 epochs, one warm-up epoch then linear decay
(``warmup_epochs: 1``, transformers' ``linear`` schedule; here ``schedule="warmup-linear"``, the first tenth of the
steps), bf16. bf16 is kept only on a CUDA device that supports it; elsewhere (CPU) the preset falls back to fp32
and says so in its note, since CPU bf16 autocast is slow and not what the reference ran.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "tofu": {"epochs": 10, "schedule": "warmup-linear", "precision": "bf16"},
}


def bf16_supported(device: Any) -> bool:
    """Whether ``device`` (a ``torch.device`` or its name) is a CUDA device with bf16 support."""
    import torch

    dev = torch.device(device) if device is not None else None
    if dev is None or dev.type != "cuda" or not torch.cuda.is_available():
        return False
    return bool(torch.cuda.is_bf16_supported())


def preset_hparams(name: str, device: Any = None) -> tuple[dict[str, Any], str]:
    """``(hyper-parameters, note)`` of preset ``name`` for ``device``; the note says what was changed (empty when
    nothing was)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    hps = dict(PRESETS[name])
    note = ""
    if hps.get("precision") == "bf16" and not bf16_supported(device):
        hps["precision"] = "fp32"
        note = f"preset {name}: bf16 needs a CUDA device that supports it; {device or 'this device'} runs fp32"
    return hps, note
