"""Named settings of the GAN commands (``gan-unlearn`` / ``gan-bench --preset NAME``).

The commands' own defaults are the reference's (atriguha/Adapt_Unlearn: lr 2·10⁻³, batch 16, λ = 5·10⁸,
2000 adapt / 3000 unlearn steps, every sample the classifier does not call the feature a positive). A preset
replaces the options left at those defaults by values measured on the bundled miniature; an option given on
the command line keeps its value. Every preset and the table it produced are in ``docs/gan.md``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

#: preset name -> {command-line option destination: value}
PRESETS: dict[str, dict[str, Any]] = {
    # The digits miniature: gentler stages (lr 2e-4, batch 64; λ = 5e6 so that 300 steps adapt the miniature),
    # confident, class-balanced positives (probability of the feature below 0.1, screened from 20 000 samples)
    # so the GAN stops relearning feature-like samples, and a stage 2 of 2000 steps: by then the class share has
    # stopped falling, while the unbounded nl2 term keeps pushing and costs FD (docs/gan.md, "Stage-2 length").
    "miniature": {
        "ewc_lambda": 5e6,
        "adapt_steps": 300,
        "unlearn_steps": 2000,
        "method_lr": 2e-4,
        "method_batch_size": 64,
        "positive_pool": 20000,
        "positive_max_prob": 0.1,
        "balance_positives": True,
        "repulsion": "nl2",
        "variants": "finetune,nl2",
        "fd_draws": 5,
    },
}


def apply_preset(args: Any, name: str | None, defaults: dict[str, Any]) -> list[str]:
    """Set on ``args`` every value of preset ``name`` whose option is still at its default (``defaults``:
    destination -> parser default) and the command has; return the destinations it set."""
    if name is None:
        return []
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    changed = []
    for dest, value in PRESETS[name].items():
        if dest in defaults and getattr(args, dest, None) == defaults[dest]:
            setattr(args, dest, value)
            changed.append(dest)
    return changed
